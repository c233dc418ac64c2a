/*
 * tests/integration/test_browser.c - browser smoke test: podium's player
 * page plays a live stream with hls.js in low-latency mode in a real
 * headless Chromium (tools/bench_browser.js, playwright-core driving
 * Debian's /usr/bin/chromium).
 *
 * `make test` installs Chromium and playwright-core (`tools/install-deps
 * --browser`), so a missing browser is a failure here, not a skip: a
 * suite that silently ran nothing would hide a broken player. With them:
 * one podium + publisher
 * (2 s GOP), the page plays for 20 s, and the test checks what
 * bench_browser.js measured: playback started and advanced, every request
 * went to 127.0.0.1, hls.js used blocking playlist reloads and loaded
 * parts, and the ingest-to-screen latency from PROGRAM-DATE-TIME is
 * positive (PDT not in the future) and below a generous 15 s (a sanity
 * bound, not a performance assert: `make bench` measures it).
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define NAME "browser"

static tl_fixture_t F;

static void setup(void)
{
    int rc = tl_fixture_start(&F, "browser", NULL, NAME, 2000, 0, 2, 60000);
    ck_assert_msg(rc == 0, "podium + publisher did not come up");
}

static void teardown(void)
{
    tl_fixture_stop(&F);
}

/* Value of "RESULT key=<int>" in out; fails the test if absent. */
static int64_t result_int(const char *out, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof(pat), "RESULT %s=", key);
    const char *p = strstr(out, pat);
    ck_assert_msg(p != NULL, "bench_browser.js printed no %s", key);
    p += strlen(pat);
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char num[32];
    ck_assert_msg(n > 0 && n < sizeof(num), "bad %s value", key);
    memcpy(num, p, n);
    num[n] = '\0';
    int64_t v = 0;
    ck_assert_msg(tl_parse_int(num, &v) == 0, "%s is not a number: %s", key,
                  num);
    return v;
}

START_TEST(test_player_plays_low_latency)
{
    char url[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/%s/index.m3u8",
             F.podium.http_port, NAME);
    setenv("BENCH_SECONDS", "20", 1);
    setenv("BENCH_WARMUP", "5", 1);
    unsetenv("BENCH_HLS_CONFIG");
    char *const argv[] = {"node", "tools/bench_browser.js", url, NULL};
    char *out = NULL, *err = NULL;
    int st = tl_run(argv, 100000, &out, &err);
    bool ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) {
        printf("--- bench_browser.js stdout:\n%s--- stderr:\n%s---\n",
               out ? out : "", err ? err : "");
        fflush(stdout);
    }
    ck_assert_msg(st >= 0, "bench_browser.js did not run or timed out");
    ck_assert_msg(ok, "bench_browser.js failed (status %d)", st);

    int64_t pdt = result_int(out, "browser_pdt_p50_ms");
    ck_assert_msg(pdt > 0, "PDT latency %lld ms: PROGRAM-DATE-TIME ahead "
                  "of the wallclock", (long long)pdt);
    ck_assert_msg(pdt < 15000, "PDT latency %lld ms: not a live edge player",
                  (long long)pdt);
    ck_assert_msg(result_int(out, "browser_blocking_reloads") > 0,
                  "hls.js made no blocking playlist reload");
    ck_assert_msg(result_int(out, "browser_parts") > 0,
                  "hls.js loaded no part");
    ck_assert_msg(result_int(out, "browser_samples") > 0, "no samples");
    tl_note("hls.js in Chromium: ingest-to-screen p50 %lld ms, p95 %lld ms, "
            "hls.latency p50 %lld ms, stalls %lld",
            (long long)pdt, (long long)result_int(out, "browser_pdt_p95_ms"),
            (long long)result_int(out, "browser_hls_latency_p50_ms"),
            (long long)result_int(out, "browser_stalls"));
    free(out);
    free(err);
}
END_TEST

START_TEST(test_browser_installed)
{
    ck_abort_msg("Chromium or playwright-core is not installed: run "
                 "tools/install-deps --browser (make test does)");
}
END_TEST

START_TEST(test_zz_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

static bool browser_available(void)
{
    char *const argv[] = {"tools/bench-browser", "--available", NULL};
    int st = tl_run(argv, 10000, NULL, NULL);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static Suite *browser_suite(bool available)
{
    Suite *s = suite_create("browser");
    TCase *tc = tcase_create("player");
    if (available) {
        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 150);
        tcase_add_test(tc, test_player_plays_low_latency);
        tcase_add_test(tc, test_zz_clean_exit);
    } else {
        tcase_add_test(tc, test_browser_installed);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    bool available = browser_available();
    if (!available)
        printf("test_browser: Chromium or playwright-core not installed "
               "(tools/install-deps --browser)\n");
    SRunner *sr = srunner_create(browser_suite(available));
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_browser: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
