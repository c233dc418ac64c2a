/*
 * tests/lib/testlib.h - shared helpers for podium's integration tests.
 *
 * The integration suites drive the real binary with real clients: podium
 * is spawned on port 0 of 127.0.0.1 (its "podium: ready rtmp=N http=N"
 * line gives the ports), the ffmpeg CLI publishes over RTMP, libcurl and
 * ffprobe are the viewers. Everything here is plain C for the test
 * process: nothing is shared with podium's own code.
 *
 * Invariants:
 * - Network traffic goes to 127.0.0.1 only: tl_get() refuses any other
 *   URL (the test aborts), sockets connect to 127.0.0.1.
 * - Every wait has a deadline; every child process (podium, ffmpeg,
 *   ffprobe) is killed when the test process that spawned it dies
 *   (PR_SET_PDEATHSIG), so a timed-out test leaves nothing running.
 * - Helpers return int status codes (0 ok, -1 failure with a message in
 *   the object's err field or on stderr); the tests assert. The few
 *   tl_*_ok() and tl_assert_*() helpers assert themselves (they call
 *   ck_assert), so they belong in test bodies, never in an unchecked
 *   fixture.
 *
 * Threads: everything is for the test's main thread, except tl_get(),
 * tl_http() and tl_get_async(), which any thread may use once tl_init()
 * ran.
 */
#ifndef TESTS_LIB_TESTLIB_H
#define TESTS_LIB_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Video the publisher sends; tests compare against these. */
#define TL_WIDTH 320
#define TL_HEIGHT 240
#define TL_FPS 30
#define TL_AUDIO_RATE 48000
#define TL_AAC_FRAME 1024 /* samples per AAC frame */

/* Call once from main() before the suite runs (curl_global_init). */
void tl_init(void);

/* ---- time -------------------------------------------------------------- */

int64_t tl_now_ms(void); /* monotonic milliseconds */
int64_t tl_now_us(void); /* monotonic microseconds */
void tl_sleep_ms(int ms);

/* Prints one line to stdout (flushed) prefixed with "  [figure] ": the
 * measured figures the tests report (holds, frame counts...). */
void tl_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- files ------------------------------------------------------------- */

/* Creates a fresh directory /tmp/podium-it-<tag>-XXXXXX; path into out.
 * Returns 0 or -1. */
int tl_mkdtemp(char *out, size_t outlen, const char *tag);

/* Removes dir and everything below it (unless TL_KEEP is set in the
 * environment, for debugging). dir may be empty (no-op). */
void tl_rmtree(const char *dir);

/* Writes a then b (either may be NULL/0) to path. Returns 0 or -1. */
int tl_write_file(const char *path, const void *a, size_t alen, const void *b,
                  size_t blen);

/* Reads a whole file into a new NUL-terminated buffer (caller frees).
 * Returns NULL on error. *len may be NULL. */
char *tl_read_file(const char *path, size_t *len);

/* Prints the last `lines` lines of a text file to stdout, each prefixed
 * with prefix (diagnostics when a test fails). */
void tl_print_tail(const char *path, int lines, const char *prefix);

/* Looks below dir (recursively, not following symbolic links) for an entry
 * whose name ends with suffix (e.g. ".tmp"); the first one's path into
 * out. Returns true if there is one (false too if dir cannot be read). */
bool tl_find_file_suffix(const char *dir, const char *suffix, char *out,
                         size_t outlen);

/* Asserting: the file log (podium's log) can be read and does not contain
 * secret; the failure message names what ("stream key", "API token") but
 * never quotes the secret. */
void tl_assert_not_logged(const char *log, const char *secret,
                          const char *what);

/* ---- processes --------------------------------------------------------- */

/* Runs argv (argv[0] searched in PATH) with stdin /dev/null, captures
 * stdout and stderr into new NUL-terminated buffers (caller frees; either
 * out pointer may be NULL to discard). Kills it after timeout_ms. Returns
 * the wait status (>= 0), or -1 if it could not run or timed out. */
int tl_run(char *const argv[], int timeout_ms, char **out, char **err);

/* A podium under test. */
typedef struct tl_podium_s {
    pid_t pid; /* 0 when not running */
    int rtmp_port;
    int http_port;
    int out_fd;    /* read end of podium's stdout */
    char dir[256]; /* working dir (data dir below it) */
    char log[320]; /* podium's stderr */
    bool reaped;   /* waited for */
    int status;    /* wait status once reaped */
} tl_podium_t;

/* The podium binary under test: $PODIUM_BIN if set and not empty, else
 * "build/podium" (relative to the repo root, the tests' working
 * directory). Borrowed (the environment's or a literal). */
const char *tl_podium_bin(void);

/* Spawns tl_podium_bin() with --rtmp-port 0 --http-port 0 --bind
 * 127.0.0.1, its data dir and log inside dir, and one --set per entry of
 * the NULL-terminated sets ("key=value"; sets may be NULL). Waits (up to
 * 30 s) for the ready line and fills the ports. Returns 0, or -1 (podium
 * not ready: it is killed, the reason and its log tail are printed). */
int tl_podium_start(tl_podium_t *p, const char *dir, const char *const *sets);

/* Same with --config config (a libconfig file, e.g. for a `ladder`,
 * which --set cannot give) before the --set options; config NULL is
 * tl_podium_start(). */
int tl_podium_start_config(tl_podium_t *p, const char *dir,
                           const char *config, const char *const *sets);

/* True while the process exists and has not exited (works whether or not
 * the caller is podium's parent). */
bool tl_podium_alive(const tl_podium_t *p);

/* Sends SIGTERM and waits up to timeout_ms for the exit. Works from the
 * parent (waitpid) and from a forked Check child (reads the exit status of
 * the zombie from /proc/<pid>/stat). Returns 0 with *status the wait
 * status, or -1 if podium did not exit in time (then it is SIGKILLed when
 * the caller is the parent). *elapsed_ms (may be NULL) is the time it
 * took. */
int tl_podium_stop(tl_podium_t *p, int timeout_ms, int *status,
                   int64_t *elapsed_ms);

/* Parent only: kills (SIGKILL) if still running, reaps, closes fds. Safe
 * to call twice. Returns the wait status if known, else -1. */
int tl_podium_reap(tl_podium_t *p);

/* The ffmpeg CLI publishing a test pattern and a tone over RTMP. */
typedef struct tl_pub_s {
    pid_t pid;     /* 0 when not running */
    char log[320]; /* ffmpeg's stderr */
    bool reaped;
    int status; /* wait status once reaped */
    int64_t started_ms;
} tl_pub_t;

/* Starts `ffmpeg -re` testsrc2 320x240@30 + sine 48 kHz, libx264 with a
 * keyframe every gop_ms (-g, -keyint_min, -sc_threshold 0, -bf 0,
 * -tune zerolatency), AAC, to rtmp://127.0.0.1:rtmp_port/live/<name>.
 * duration_s > 0 adds -t (the publisher then stops by itself). Its log
 * goes to dir. Returns 0 or -1. */
int tl_pub_start(tl_pub_t *pub, const char *dir, int rtmp_port,
                 const char *name, int gop_ms, int duration_s);

/* Same with another picture size (a publisher that changed settings). */
int tl_pub_start_size(tl_pub_t *pub, const char *dir, int rtmp_port,
                      const char *name, int gop_ms, int duration_s, int width,
                      int height);

/* Waits up to timeout_ms for the publisher to exit. Returns 0 with
 * pub->status set, or -1 if it is still running. */
int tl_pub_wait(tl_pub_t *pub, int timeout_ms);

/* Sends sig (if still running) and reaps (waits up to 5 s, then
 * SIGKILL). Safe to call when not running. */
void tl_pub_stop(tl_pub_t *pub, int sig);

/* ---- podium's CLI ------------------------------------------------------ */

/* Runs `tl_podium_bin() --data-dir <dir>/data word...` (the words are
 * NULL-terminated, at most 16; dir is the directory given to
 * tl_podium_start(), whether or not that podium runs) with a 30 s limit.
 * stdout and stderr into new NUL-terminated buffers (caller frees; either
 * pointer may be NULL to discard). If it does not exit 0 and err is NULL,
 * prints the first two words, the wait status and its stderr to stdout
 * (a caller whose stderr may hold secrets passes err and prints it
 * redacted). Returns the exit code, or -1 if it could not run, timed out
 * or died of a signal. */
int tl_cli(const char *dir, char **out, char **err, ...)
    __attribute__((sentinel));

/* Copies the word after "<label> " at the start of a line of text (the
 * CLI's "key pk_...", "token pt_...", "id 3" lines) into out. Returns
 * false if there is no such line, the word is empty or does not fit. */
bool tl_field_after(const char *text, const char *label, char *out,
                    size_t outlen);

/* `podium --data-dir <dir>/data tokens create [--label label]` (label may
 * be NULL): the API token (pt_..., more than 20 characters) into secret.
 * Returns 0, or -1 with the reason in err (it may quote the command's
 * stdout and stderr: redact before printing where that matters). */
int tl_token_create(const char *dir, const char *label, char *secret,
                    size_t slen, char *err, size_t errlen);

/* `podium --data-dir <dir>/data keys create name [--label label]`: the
 * stream key (pk_..., more than 20 characters) into secret and its id into
 * id (id may be NULL). Returns 0, or -1 with the reason in err (as
 * tl_token_create()). */
int tl_key_create(const char *dir, const char *name, const char *label,
                  char *secret, size_t slen, char *id, size_t idlen, char *err,
                  size_t errlen);

/* ---- HTTP (libcurl) ---------------------------------------------------- */

typedef struct tl_resp_s {
    long status;   /* HTTP status, 0 if no response (see curl_code) */
    int curl_code; /* CURLcode */
    char *headers; /* raw header block of the final response */
    size_t headers_len;
    uint8_t *body;  /* NUL-terminated for convenience */
    size_t len;     /* body bytes (without the NUL) */
    double ttfb_s;  /* request start to first byte */
    double total_s; /* request start to last byte */
} tl_resp_t;

/* GET http://127.0.0.1... (printf-style URL); timeout_ms is the whole
 * request's limit. Aborts the test if the URL is not on 127.0.0.1.
 * Returns 0 if an HTTP response arrived (any status), -1 otherwise
 * (r->status 0, r->curl_code set). Free with tl_resp_free(). */
int tl_get(tl_resp_t *r, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like tl_get() on an already formatted URL. */
int tl_get_url(tl_resp_t *r, int timeout_ms, const char *url);

void tl_resp_free(tl_resp_t *r);

/* Copies the value of header `name` (case-insensitive, trimmed) into out.
 * Returns out, or NULL if absent. */
const char *tl_header(const tl_resp_t *r, const char *name, char *out,
                      size_t outlen);

/* max-age from Cache-Control, or -1 if absent/unparsable. */
long tl_max_age(const tl_resp_t *r);

/* A GET running on its own thread. */
typedef struct tl_async_s tl_async_t;
tl_async_t *tl_get_async(int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Waits for the request; moves the response into *out; *done_ms (may be
 * NULL) is the monotonic ms at which it completed. Frees a. */
void tl_async_join(tl_async_t *a, tl_resp_t *out, int64_t *done_ms);

/* A TCP connection to 127.0.0.1:port (blocking socket). Returns fd or -1. */
int tl_tcp_connect(int port);

/* tl_http() flags. */
#define TL_HTTP_GZIP 0x1 /* Accept-Encoding: gzip; the body comes decoded */

/* method (GET, POST, DELETE...) http://127.0.0.1:<port><path>, path sent
 * as it is (no dot-segment removal, so tests can send hostile paths; it
 * must start with '/', else the test aborts), with Authorization: Bearer
 * bearer (NULL: none), Content-Type: ctype (NULL: none) and body (NULL:
 * none), 15 s limit. Returns the HTTP status, 0 if no answer came; the
 * body into *out as a new NUL-terminated buffer ("" if none; caller
 * frees; out may be NULL to discard). */
long tl_http(int port, const char *method, const char *path, const char *bearer,
             const char *ctype, const char *body, int flags, char **out);

/* ---- m3u8 -------------------------------------------------------------- */

#define TL_URI_MAX 256
#define TL_ATTRS_MAX 24

typedef struct tl_attr_s {
    char name[40];
    char value[TL_URI_MAX]; /* quotes removed */
    bool quoted;
} tl_attr_t;

typedef struct tl_attrs_s {
    tl_attr_t a[TL_ATTRS_MAX];
    int n;
} tl_attrs_t;

/* Parses an attribute list strictly (HLS2 4.2: no whitespace, no duplicate
 * names, quoted strings closed). Returns 0 or -1 with a reason in err. */
int tl_attrs_parse(const char *s, tl_attrs_t *out, char *err, size_t errlen);
/* The value of attribute name, or NULL. */
const char *tl_attr(const tl_attrs_t *a, const char *name);

typedef struct tl_part_s {
    int64_t msn; /* parent segment's MSN */
    int index;   /* position within the parent (from 0) */
    double duration;
    bool independent;
    bool gap;
    char uri[TL_URI_MAX];
} tl_part_t;

typedef struct tl_seg_s {
    int64_t msn;
    double duration; /* EXTINF */
    char uri[TL_URI_MAX];
    bool discontinuity; /* EXT-X-DISCONTINUITY before it */
    bool gap;
    int64_t pdt_ms; /* EXT-X-PROGRAM-DATE-TIME (epoch ms), -1 if none */
    char map_uri[TL_URI_MAX]; /* the EXT-X-MAP that applies to it */
    int first_part;           /* index into parts[] */
    int nparts;               /* parts listed for it (0 if none) */
} tl_seg_t;

typedef struct tl_report_s {
    char uri[TL_URI_MAX];
    int64_t last_msn;  /* -1 if absent */
    int64_t last_part; /* -1 if absent */
} tl_report_t;

typedef struct tl_variant_s {
    tl_attrs_t attrs;
    char uri[TL_URI_MAX];
} tl_variant_t;

#define TL_MAX_REPORTS 8
#define TL_MAX_VARIANTS 8
#define TL_MAX_MEDIA 8

typedef struct tl_m3u8_s {
    bool multivariant;      /* has EXT-X-STREAM-INF */
    int version;            /* -1 if absent */
    int target_duration;    /* -1 if absent */
    int64_t media_sequence; /* 0 if absent (the spec default) */
    int64_t disc_sequence;  /* 0 if absent */
    bool has_server_control;
    tl_attrs_t server_control;
    char server_control_raw[512];
    double part_target; /* -1 if no PART-INF */
    char part_inf_raw[128];
    int skipped; /* SKIPPED-SEGMENTS, -1 without EXT-X-SKIP */
    bool endlist;
    bool independent_segments;
    char playlist_type[16];
    char map_uri[TL_URI_MAX];
    int nmaps;
    int pdt_count;

    tl_seg_t *segs; /* complete segments, in order */
    int nsegs;
    tl_part_t *parts; /* every part, in order; the trailing ones
                         (after the last segment) belong to the
                         segment in progress, MSN last+1 */
    int nparts;
    int ntrailing; /* parts of the segment in progress */

    int npreload;          /* EXT-X-PRELOAD-HINT count */
    char preload_type[16]; /* of the first */
    char preload_uri[TL_URI_MAX];

    tl_report_t reports[TL_MAX_REPORTS];
    int nreports;

    tl_variant_t variants[TL_MAX_VARIANTS];
    int nvariants;
    tl_attrs_t media[TL_MAX_MEDIA];
    int nmedia;
} tl_m3u8_t;

/* Parses a playlist strictly: #EXTM3U first; once-only tags (VERSION,
 * TARGETDURATION, MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE, SERVER-CONTROL,
 * PART-INF, SKIP, ENDLIST, PLAYLIST-TYPE, INDEPENDENT-SEGMENTS) at most
 * once; strict attribute lists and decimals; EXTINF/STREAM-INF followed by
 * a URI; header tags before the first segment and MEDIA-SEQUENCE before
 * SKIP; DISCONTINUITY/MAP/PDT of a segment before its first PART; PART
 * with URI and DURATION and a PART-INF; no media-playlist tags in a
 * multivariant. Returns 0, or -1 with the reason (and line) in err.
 * Free with tl_m3u8_free() in both cases. */
int tl_m3u8_parse(const char *text, size_t len, tl_m3u8_t *m, char *err,
                  size_t errlen);
void tl_m3u8_free(tl_m3u8_t *m);

/* MSN of the last complete segment, or -1 if none. */
int64_t tl_m3u8_last_msn(const tl_m3u8_t *m);
/* The segment with that MSN, or NULL. */
const tl_seg_t *tl_m3u8_seg(const tl_m3u8_t *m, int64_t msn);
/* The part (msn, index), or NULL. */
const tl_part_t *tl_m3u8_part(const tl_m3u8_t *m, int64_t msn, int index);
/* The last part listed, or NULL. */
const tl_part_t *tl_m3u8_last_part(const tl_m3u8_t *m);
/* Number of parts listed for msn (complete or in progress). */
int tl_m3u8_nparts_of(const tl_m3u8_t *m, int64_t msn);

/* Parses "<msn>.<part>.m4s" (part_out -1 for "<msn>.m4s") at the end of a
 * URI. Returns 0 or -1. */
int tl_parse_media_uri(const char *uri, int64_t *msn_out, int64_t *part_out);

/* Strict decimal-floating-point ([0-9]+(.[0-9]+)?). Returns 0 or -1. */
int tl_parse_decimal(const char *s, double *out);
/* Strict decimal-integer. Returns 0 or -1. */
int tl_parse_int(const char *s, int64_t *out);

/* ---- podium convenience ------------------------------------------------ */

/* GETs http://127.0.0.1:<port><path> and parses it as a playlist. Returns
 * 0 if the status was 200 and it parsed; else -1 (the reason in err). The
 * response is stored in *resp if resp is not NULL (caller frees). */
int tl_fetch_m3u8(int http_port, const char *path, int timeout_ms, tl_m3u8_t *m,
                  tl_resp_t *resp, char *err, size_t errlen);

/* Waits (polling every 200 ms, up to timeout_ms) until the media playlist
 * at path lists at least min_segments complete segments. Returns 0, or -1
 * on timeout. */
int tl_wait_segments(int http_port, const char *path, int min_segments,
                     int timeout_ms);

/* Waits until the playlist at path has EXT-X-ENDLIST. Returns 0 or -1. */
int tl_wait_endlist(int http_port, const char *path, int timeout_ms);

/* Waits until the playlist's last complete MSN exceeds msn. Returns 0 or
 * -1. */
int tl_wait_msn_above(int http_port, const char *path, int64_t msn,
                      int timeout_ms);

/* Generic predicate wait: polls fn(arg) every poll_ms until it returns
 * true or timeout_ms passes. Returns true if it became true. */
typedef bool (*tl_pred_pt)(void *arg);
bool tl_wait_until(tl_pred_pt fn, void *arg, int timeout_ms, int poll_ms);

/* A recording as podium lists it. */
typedef struct tl_rec_s {
    long long id;         /* > 0 once found */
    long long bytes;      /* size on disk, bytes (admin list only, else 0) */
    double duration_s;    /* seconds */
    char url[TL_URI_MAX]; /* its VOD playlist, "/vod/<id>/index.m3u8" */
    char last[2048];      /* the last answer, "<status> <body>"
                             (diagnostics; truncated) */
} tl_rec_t;

/* Polls (every 250 ms, up to timeout_ms) the list of recordings until it
 * holds an ended one ("ended" a time, "recording" not true) of stream
 * ("live/<name>"): /api/recordings with the bearer token, or the public
 * /recordings.json if bearer is NULL. Fills *rec (rec->last also when it
 * fails). Returns 0, or -1 on timeout. */
int tl_wait_recording_ended(int http_port, const char *bearer,
                            const char *stream, int timeout_ms, tl_rec_t *rec);

/* ---- ffprobe ----------------------------------------------------------- */

typedef struct tl_probe_s {
    char codec[32]; /* codec_name of the first stream */
    int width, height;
    long frames;    /* nb_read_frames (decoded), 0 if N/A */
    long packets;   /* nb_read_packets */
    bool first_key; /* the first packet carries the key flag */
    int nstreams;
    char err[256]; /* first line ffprobe wrote to stderr, if any */
} tl_probe_t;

/* Writes init then media to a temp file in dir and runs ffprobe -count_frames
 * -count_packets on it (and a packet-flags pass for first_key). Returns 0
 * if ffprobe ran and reported a stream, else -1. */
int tl_ffprobe(const char *dir, const void *init, size_t ilen,
               const void *media, size_t mlen, tl_probe_t *out);

/* The first packet's pts and dts (seconds, as ffprobe computes them from
 * tfdt and the init's edit list) of init + media written to a temp file in
 * dir. Returns 0 or -1. */
int tl_ffprobe_first_ts(const char *dir, const void *init, size_t ilen,
                        const void *media, size_t mlen, double *pts,
                        double *dts);

/* Runs ffprobe on an existing file: per-stream results (video and audio)
 * into v and a (either may be NULL; codec[0] == 0 when absent). */
int tl_ffprobe_file(const char *path, tl_probe_t *v, tl_probe_t *a);

/* ffprobe -count_frames on the first video stream of the playlist at
 * http://127.0.0.1:<http_port><path> (60 s limit): the decoded frames
 * into *frames. Returns 0 if ffprobe exited 0 and its stderr says no
 * "error"/"Error", else -1 with the reason (its wait status and stderr)
 * in err. */
int tl_ffprobe_http_frames(int http_port, const char *path, long *frames,
                           char *err, size_t errlen);

/* avc1.PPCCLL from the avcC box found in an init segment, into out
 * ("avc1.64001f"). Returns 0 or -1. */
int tl_avc1_codec_from_init(const uint8_t *init, size_t len, char *out,
                            size_t outlen);

/* Top-level ISOBMFF box types in order, e.g. "ftyp,moov" into out.
 * Returns the number of boxes, -1 if the box structure is broken. */
int tl_box_list(const uint8_t *data, size_t len, char *out, size_t outlen);

#endif
