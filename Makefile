# podium - one plain Makefile.
#
#   make            build ./podium (build/)
#   make run        install missing deps, build, start podium + demo stream
#   make test       install missing deps, build, run every test, plain and
#                   under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks (tools/bench)
#   make SANITIZE=address,undefined   sanitizer build (into build-san/)
#   V=1             show full command lines

CC      ?= cc
PKGS    := libavformat libavcodec libavutil libswscale libswresample libmicrohttpd libconfig libcurl libcrypto zlib sqlite3 jansson
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -MMD -MP
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

ifdef SANITIZE
BUILD   ?= build-san
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD   ?= build
endif

ifndef V
Q := @
endif

MODULES  := core ingest packager storage httpd
LIB_SRC  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libpodium.a

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/%)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

all: $(BUILD)/podium podium-link

podium-link: $(BUILD)/podium
	$(Q)[ "$(BUILD)" != build ] || ln -sf build/podium podium

$(BUILD)/podium: $(BUILD)/podium.o $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -I. $(LDFLAGS) -o $@ $< $(TESTLIB_OBJ) $(LIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/integration/%.c $(LIB) $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -I. $(LDFLAGS) -o $@ $< $(TESTLIB_OBJ) $(LIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -I. $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

tests: $(UNIT_BIN) $(INTEG_BIN)
tools: $(TOOL_BIN)

deps:
	$(Q)tools/install-deps

# the test suite also plays the stream in headless Chromium (hls.js)
deps-test:
	$(Q)tools/install-deps --browser

# Unit suites plain and sanitized, then the integration suite against the
# sanitized binary (it finds memory errors under real traffic) and the
# plain one. tools/run-tests prints the closing "N passed, N failed" line.
test: deps-test
	$(Q)$(MAKE) --no-print-directory all tests tools
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all tests
	$(Q)tools/run-tests build build-san

run: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tools/demo

bench: deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tools/bench

clean:
	rm -rf build build-san podium

.PHONY: all podium-link tests tools deps deps-test test run bench clean

# keep tests/lib objects (make would delete them as intermediates)
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
