/*
 * tests/integration/test_diskfull.c - "a full disk stops recording with a
 * clear log line and a metric, never live serving", end to end.
 *
 * The test process enters a private mount namespace (unshare(CLONE_NEWNS),
 * "/" made MS_REC|MS_PRIVATE) and mounts a small tmpfs (TMPFS_KB) on
 * <data_dir>/recordings, so only the recordings fill up: the catalogue
 * (podium.db in data_dir) stays on the normal disk. podium, spawned after
 * that, inherits the namespace; the mount vanishes with the test process,
 * so a crash leaves no mount behind. Without the privilege to do so
 * (EPERM), the test fails with a clear message, unless
 * PODIUM_TEST_NO_MOUNT=1 is set: then it prints a note and skips.
 *
 * One case (the steps depend on each other and must stay cheap; ~11 s):
 *   1. the real ffmpeg publishes live/dfa (passthrough, a stream key in
 *      the URL) until the tmpfs is full; podium's log then has exactly one
 *      "recording ... stopped ... No space left on device" line naming the
 *      stream, without the key or the API token;
 *   2. GET /api/metrics (bearer token made by `podium tokens create`)
 *      says podium_recorder_disk_full_total 1 and
 *      podium_recorder_write_errors_total 1, and still says so later;
 *   3. live serving goes on: the live media playlist advances by 2 more
 *      segments, a blocking reload for the next part answers 200, the
 *      newest part and segment fetch 200; podium is alive;
 *   4. a second stream live/dfb published on the full disk is served live
 *      (its playlist advances) although its recording stops: the error
 *      counter goes up, one log line for that stream;
 *   5. once live/dfa's publisher leaves (grace_period_ms 1000), the
 *      recording is listed as ended by /api/recordings; its VOD lists only
 *      segments that fetch 200 and decode (ffprobe on init + first
 *      segment, and on the whole VOD over HTTP); no "*.tmp" file remains;
 *      SIGTERM -> exit 0.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define GOP_MS 1000  /* 1 s segments: quick to fill, quick to advance */
#define TMPFS_KB 256 /* ~4 s of the 464 kbit/s test publish */
#define TMPFS_MAGIC_ 0x01021994
#define STREAM_A "dfa"
#define STREAM_B "dfb"

static const char *const SETS[] = {"transcode=0",
                                   "recording=1",
                                   "auth=keys",
                                   "segment_target_ms=1000",
                                   "grace_period_ms=1000",
                                   NULL};

/* ---- the tmpfs ----------------------------------------------------------- */

/* Private mount namespace and a TMPFS_KB tmpfs on rec_dir (created).
 * Returns 0, or the errno of the failed step with its description in
 * why. */
static int mount_recordings(const char *rec_dir, char *why, size_t whylen)
{
    if (unshare(CLONE_NEWNS) != 0) {
        int e = errno;
        snprintf(why, whylen, "unshare(CLONE_NEWNS): %s", strerror(e));
        return e;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        int e = errno;
        snprintf(why, whylen, "mount(/, MS_REC|MS_PRIVATE): %s", strerror(e));
        return e;
    }
    if (mkdir(rec_dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(why, whylen, "mkdir %s: %s", rec_dir, strerror(e));
        return e;
    }
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%dk,mode=0755", TMPFS_KB);
    if (mount("podium-diskfull", rec_dir, "tmpfs", MS_NOSUID | MS_NODEV,
              opts) != 0) {
        int e = errno;
        snprintf(why, whylen, "mount tmpfs (%s) on %s: %s", opts, rec_dir,
                 strerror(e));
        return e;
    }
    return 0;
}

/* ---- metrics ------------------------------------------------------------- */

typedef struct {
    long long written, dropped, errors, disk_full;
} recm_t;

/* Value of sample `name` (a line "<name> <integer>"); -1 if absent or
 * malformed. */
static long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l;) {
        if (strncmp(l, name, n) == 0 && l[n] == ' ') {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(l + n + 1, &end, 10);
            if (errno || end == l + n + 1 || (*end != '\n' && *end != 0))
                return -1;
            return v;
        }
        const char *e = strchr(l, '\n');
        l = e ? e + 1 : NULL;
    }
    return -1;
}

/* GET /api/metrics. Asserts 200 and that the recorder's samples exist. */
static void metrics(int port, const char *token, recm_t *m)
{
    char *body = NULL;
    long st = tl_http(port, "GET", "/api/metrics", token, NULL, NULL, 0, &body);
    ck_assert_msg(st == 200, "GET /api/metrics: %ld %.300s", st, body);
    m->written = sample(body, "podium_recorder_items_written_total");
    m->dropped = sample(body, "podium_recorder_items_dropped_total");
    m->errors = sample(body, "podium_recorder_write_errors_total");
    m->disk_full = sample(body, "podium_recorder_disk_full_total");
    if (m->errors < 0 || m->disk_full < 0 || m->written < 0)
        printf("---- /api/metrics:\n%s----\n", body);
    ck_assert_msg(m->errors >= 0 && m->disk_full >= 0 && m->written >= 0,
                  "/api/metrics lacks podium_recorder_write_errors_total, "
                  "podium_recorder_disk_full_total or "
                  "podium_recorder_items_written_total");
    free(body);
}

static void dump(const tl_podium_t *p, const tl_pub_t *pub)
{
    printf("---- podium log (tail) %s\n", p->log);
    tl_print_tail(p->log, 25, "  | ");
    if (pub && pub->log[0]) {
        printf("---- publisher log (tail) %s\n", pub->log);
        tl_print_tail(pub->log, 8, "  | ");
    }
    fflush(stdout);
}

/* Polls /api/metrics (every 200 ms, up to timeout_ms) until errors >=
 * want_errors. Fails fast if podium or the publisher is gone. Returns the
 * time it took (ms); asserts. */
static int64_t wait_errors(tl_podium_t *p, tl_pub_t *pub, const char *token,
                           long long want_errors, int timeout_ms, recm_t *m)
{
    int64_t t0 = tl_now_ms();
    for (;;) {
        metrics(p->http_port, token, m);
        if (m->errors >= want_errors)
            return tl_now_ms() - t0;
        const char *why = NULL;
        if (!tl_podium_alive(p))
            why = "podium exited";
        else if (tl_pub_wait(pub, 0) == 0)
            why = "the publisher exited";
        else if (tl_now_ms() - t0 > timeout_ms)
            why = "timed out";
        if (why) {
            dump(p, pub);
            ck_abort_msg("recorder write errors still %lld (disk_full %lld, "
                         "written %lld) after %lld ms, want %lld: %s",
                         m->errors, m->disk_full, m->written,
                         (long long)(tl_now_ms() - t0), want_errors, why);
        }
        tl_sleep_ms(200);
    }
}

/* ---- the log ------------------------------------------------------------- */

/* Lines of podium's log that stop stream's recording ("<stream>: " with
 * "recording" and "stopped"): their count; the first into line. */
static int stop_lines(const char *log, const char *stream, char *line,
                      size_t linelen)
{
    char *text = tl_read_file(log, NULL);
    ck_assert_msg(text, "cannot read podium's log %s", log);
    char needle[128];
    snprintf(needle, sizeof(needle), " %s: ", stream);
    int n = 0;
    line[0] = 0;
    for (char *l = text; l && *l;) {
        char *e = strchr(l, '\n');
        if (e)
            *e = 0;
        if (strstr(l, needle) && strstr(l, "recording") &&
            strstr(l, "stopped")) {
            if (n++ == 0)
                snprintf(line, linelen, "%s", l);
        }
        l = e ? e + 1 : NULL;
    }
    free(text);
    return n;
}

/* Asserts the one stop line of stream names it, carries no secret and
 * (if enospc) says "No space left on device". */
static void check_stop_line(const tl_podium_t *p, const char *stream,
                            bool enospc, const char *const *secrets)
{
    char line[1200];
    int n = stop_lines(p->log, stream, line, sizeof(line));
    tl_note("%s: %d stop line(s): %s", stream, n, line);
    if (n != 1)
        dump(p, NULL);
    ck_assert_msg(n == 1,
                  "podium's log has %d lines saying %s's recording stopped, "
                  "want exactly 1",
                  n, stream);
    if (enospc)
        ck_assert_msg(strstr(line, "No space left on device"),
                      "%s's stop line does not say \"No space left on "
                      "device\": %s",
                      stream, line);
    ck_assert_msg(!strstr(line, "key=") && !strstr(line, "pk_") &&
                      !strstr(line, "pt_"),
                  "%s's stop line carries a key or token: %s", stream, line);
    for (int i = 0; secrets[i]; i++)
        ck_assert_msg(!strstr(line, secrets[i]),
                      "%s's stop line carries a secret: %s", stream, line);
}

/* ---- live ---------------------------------------------------------------- */

/* Asserts the live media playlist of stream advances by 2 segments from
 * now, a blocking reload for the next part answers 200 with it, and the
 * newest part and segment fetch 200. */
static void check_live(tl_podium_t *p, tl_pub_t *pub, const char *name)
{
    char vp[256], q[400], abs[512];
    tl_playlist_path(vp, sizeof(vp), name, "source");
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(p->http_port, vp, &m, NULL);
    int64_t msn0 = tl_m3u8_last_msn(&m);
    tl_m3u8_free(&m);
    int64_t t0 = tl_now_ms();
    int rc = tl_wait_msn_above(p->http_port, vp, msn0 + 1, 15000);
    if (rc != 0)
        dump(p, pub);
    ck_assert_msg(rc == 0,
                  "%s: the live playlist did not advance 2 segments past "
                  "MSN %lld within 15 s after the recording stopped",
                  vp, (long long)msn0);
    tl_note("%s: last MSN went past %lld + 1 in %lld ms", vp, (long long)msn0,
            (long long)(tl_now_ms() - t0));

    /* blocking reload for the part after the last one listed */
    tl_fetch_m3u8_ok(p->http_port, vp, &m, NULL);
    const tl_part_t *lp = tl_m3u8_last_part(&m);
    ck_assert_msg(lp, "%s lists no part", vp);
    int64_t pm = lp->msn;
    int pn = lp->index + 1;
    tl_m3u8_free(&m);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d", vp, (long long)pm,
             pn);
    tl_resp_t r;
    char err[512];
    rc = tl_fetch_m3u8(p->http_port, q, 15000, &m, &r, err, sizeof(err));
    ck_assert_msg(rc == 0 && r.status == 200,
                  "blocking reload %s: status %ld (curl %d): %s", q, r.status,
                  r.curl_code, err);
    const tl_part_t *got = tl_m3u8_part(&m, pm, pn);
    if (!got) /* segment pm ended with pn parts: the next is (pm+1, 0) */
        got = tl_m3u8_part(&m, pm + 1, 0);
    ck_assert_msg(got, "blocking reload %s: the answer lacks the part", q);
    tl_note("blocking reload %s: 200 after %.0f ms", q, r.ttfb_s * 1e3);
    tl_resp_free(&r);

    /* newest part and newest complete segment */
    const tl_part_t *np = tl_m3u8_last_part(&m);
    ck_assert(np && tl_resolve(vp, np->uri, abs, sizeof(abs)) == 0);
    tl_get_ok(p->http_port, abs, &r);
    ck_assert_msg(r.len > 0, "%s: empty part", abs);
    tl_resp_free(&r);
    ck_assert_msg(m.nsegs > 0, "%s: no complete segment", vp);
    ck_assert(tl_resolve(vp, m.segs[m.nsegs - 1].uri, abs, sizeof(abs)) == 0);
    tl_get_ok(p->http_port, abs, &r);
    ck_assert_msg(r.len > 0, "%s: empty segment", abs);
    tl_resp_free(&r);
    tl_m3u8_free(&m);
    ck_assert_msg(tl_podium_alive(p), "podium is not running any more");
}

/* ---- the recording ------------------------------------------------------- */

/* Asserts every segment of the VOD's source playlist fetches 200 (init
 * too), init + first segment decode, and ffprobe reads the whole VOD over
 * HTTP without an error. Returns the EXTINF total (s). */
static double check_vod(const tl_podium_t *p, long long id, int *nsegs)
{
    char vp[128], abs[512];
    snprintf(vp, sizeof(vp), "/vod/%lld/source/index.m3u8", id);
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(p->http_port, vp, &m, NULL);
    ck_assert_msg(strcmp(m.playlist_type, "VOD") == 0 && m.endlist,
                  "%s: PLAYLIST-TYPE '%s', ENDLIST %d", vp, m.playlist_type,
                  m.endlist);
    ck_assert_msg(m.nsegs >= 1,
                  "%s: no segment was recorded before the disk "
                  "filled (TMPFS_KB too small?)",
                  vp);
    tl_resp_t init = {0}, first = {0}, r;
    char last_map[TL_URI_MAX] = "";
    double total = 0;
    for (int i = 0; i < m.nsegs; i++) {
        const tl_seg_t *s = &m.segs[i];
        total += s->duration;
        if (strcmp(s->map_uri, last_map) != 0) {
            snprintf(last_map, sizeof(last_map), "%s", s->map_uri);
            ck_assert(tl_resolve(vp, s->map_uri, abs, sizeof(abs)) == 0);
            tl_get_ok(p->http_port, abs, &r);
            ck_assert_msg(r.len > 0, "%s: empty init", abs);
            if (!init.body)
                init = r;
            else
                tl_resp_free(&r);
        }
        ck_assert(tl_resolve(vp, s->uri, abs, sizeof(abs)) == 0);
        tl_get_ok(p->http_port, abs, &r);
        ck_assert_msg(r.len > 0, "%s: empty segment", abs);
        if (i == 0)
            first = r;
        else
            tl_resp_free(&r);
    }
    *nsegs = m.nsegs;
    tl_m3u8_free(&m);

    tl_probe_t pr;
    int rc =
        tl_ffprobe(p->dir, init.body, init.len, first.body, first.len, &pr);
    tl_note("VOD init + first segment: %s %dx%d, %ld frames, first key %d%s%s",
            pr.codec, pr.width, pr.height, pr.frames, pr.first_key,
            pr.err[0] ? ", ffprobe: " : "", pr.err);
    ck_assert_msg(rc == 0 && strcmp(pr.codec, "h264") == 0 && pr.frames > 0 &&
                      pr.first_key,
                  "VOD init + first segment do not decode: codec '%s', %ld "
                  "frames, first key %d: %s",
                  pr.codec, pr.frames, pr.first_key, pr.err);
    tl_resp_free(&init);
    tl_resp_free(&first);

    char mv[96], err[1024];
    snprintf(mv, sizeof(mv), "/vod/%lld/index.m3u8", id);
    long frames = 0;
    ck_assert_msg(tl_ffprobe_http_frames(p->http_port, mv, &frames, err,
                                         sizeof(err)) == 0,
                  "%s", err);
    long expect = lround(total * TL_FPS);
    tl_note("VOD %lld: %d segments, %.3f s, ffprobe decoded %ld frames", id,
            *nsegs, total, frames);
    ck_assert_msg(frames > 0 && labs(frames - expect) <= 2,
                  "ffprobe decoded %ld frames of the VOD; its playlist says "
                  "%ld",
                  frames, expect);
    return total;
}

/* ---- the test ------------------------------------------------------------ */

START_TEST(test_disk_full)
{
    char dir[256], data[320], rec_dir[400], why[512];
    ck_assert(tl_mkdtemp(dir, sizeof(dir), "diskfull") == 0);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(rec_dir, sizeof(rec_dir), "%s/recordings", data);
    ck_assert_msg(mkdir(data, 0755) == 0, "mkdir %s: %s", data,
                  strerror(errno));
    int merr = mount_recordings(rec_dir, why, sizeof(why));
    if (merr)
        tl_rmtree(dir); /* nothing mounted on it */
    if (merr == EPERM || merr == EACCES) {
        const char *skip = getenv("PODIUM_TEST_NO_MOUNT");
        if (skip && strcmp(skip, "1") == 0) {
            tl_note("SKIPPED: cannot mount a tmpfs (%s); "
                    "PODIUM_TEST_NO_MOUNT=1 is set",
                    why);
            return;
        }
        ck_abort_msg("cannot make a full disk: %s. This test needs root "
                     "(CAP_SYS_ADMIN) for a private tmpfs; set "
                     "PODIUM_TEST_NO_MOUNT=1 to skip it explicitly",
                     why);
    }
    ck_assert_msg(merr == 0, "cannot make a full disk: %s", why);
    struct statfs sf;
    ck_assert_msg(statfs(rec_dir, &sf) == 0 &&
                      (unsigned long)sf.f_type == TMPFS_MAGIC_,
                  "%s is not the tmpfs just mounted", rec_dir);
    ck_assert_msg((long long)sf.f_blocks * sf.f_bsize <= TMPFS_KB * 1024LL,
                  "the tmpfs is %lld bytes, not %d KiB",
                  (long long)sf.f_blocks * sf.f_bsize, TMPFS_KB);

    /* secrets, through the CLI, before the server starts */
    char token[128], ka[128], kb[128];
    ck_assert_msg(tl_token_create(dir, "diskfull", token, sizeof(token), why,
                                  sizeof(why)) == 0,
                  "%s", why);
    ck_assert_msg(tl_key_create(dir, STREAM_A, "a", ka, sizeof(ka), NULL, 0,
                                why, sizeof(why)) == 0,
                  "%s", why);
    ck_assert_msg(tl_key_create(dir, STREAM_B, "b", kb, sizeof(kb), NULL, 0,
                                why, sizeof(why)) == 0,
                  "%s", why);
    const char *const secrets[] = {token, ka, kb, NULL};

    tl_podium_t p;
    ck_assert_msg(tl_podium_start(&p, dir, SETS) == 0, "podium did not start");
    recm_t m0;
    metrics(p.http_port, token, &m0);
    ck_assert_msg(m0.errors == 0 && m0.disk_full == 0,
                  "at start: write errors %lld, disk_full %lld", m0.errors,
                  m0.disk_full);

    /* 1-2. publish live/dfa until the disk is full */
    char url[256];
    tl_pub_t pa, pb;
    snprintf(url, sizeof(url), "%s?key=%s", STREAM_A, ka);
    ck_assert(tl_pub_start(&pa, dir, p.rtmp_port, url, GOP_MS, 0) == 0);
    recm_t m;
    int64_t fill_ms = wait_errors(&p, &pa, token, 1, 25000, &m);
    tl_note("tmpfs %d KiB full %lld ms after the publish started: %lld items "
            "written, write errors %lld, disk_full %lld",
            TMPFS_KB, (long long)fill_ms, m.written, m.errors, m.disk_full);
    ck_assert_msg(m.written >= 2,
                  "only %lld items were recorded before the disk filled",
                  m.written);
    ck_assert_msg(m.disk_full == 1 && m.errors == 1,
                  "after the disk filled: podium_recorder_disk_full_total "
                  "%lld, podium_recorder_write_errors_total %lld (want 1, 1)",
                  m.disk_full, m.errors);
    check_stop_line(&p, "live/" STREAM_A, true, secrets);

    /* 3. live serving goes on */
    check_live(&p, &pa, STREAM_A);
    metrics(p.http_port, token, &m);
    ck_assert_msg(m.disk_full == 1 && m.errors == 1,
                  "later: podium_recorder_disk_full_total %lld, "
                  "podium_recorder_write_errors_total %lld (want still 1, 1)",
                  m.disk_full, m.errors);
    check_stop_line(&p, "live/" STREAM_A, true, secrets);

    /* 4. a second stream on the full disk */
    snprintf(url, sizeof(url), "%s?key=%s", STREAM_B, kb);
    ck_assert(tl_pub_start(&pb, dir, p.rtmp_port, url, GOP_MS, 0) == 0);
    tl_pub_stop(&pa, SIGTERM); /* live/dfa's recording closes meanwhile */
    recm_t mb;
    int64_t b_ms = wait_errors(&p, &pb, token, 2, 25000, &mb);
    tl_note("live/%s's recording stopped %lld ms after its publish started: "
            "write errors %lld, disk_full %lld, written %lld",
            STREAM_B, (long long)b_ms, mb.errors, mb.disk_full, mb.written);
    ck_assert_msg(mb.errors == 2 && mb.disk_full >= 1,
                  "after live/%s: write errors %lld, disk_full %lld (want 2, "
                  ">= 1)",
                  STREAM_B, mb.errors, mb.disk_full);
    check_live(&p, &pb, STREAM_B);
    check_stop_line(&p, "live/" STREAM_B, false, secrets);

    /* 5. live/dfa's recording: ended, a VOD that decodes */
    tl_rec_t w;
    bool ended = tl_wait_recording_ended(p.http_port, token, "live/" STREAM_A,
                                         20000, &w) == 0;
    if (!ended)
        dump(&p, &pa);
    ck_assert_msg(ended,
                  "/api/recordings does not list live/%s's recording as "
                  "ended 20 s after its publisher left: %s",
                  STREAM_A, w.last);
    ck_assert_msg(w.bytes > 0, "recording %lld: %lld bytes", w.id, w.bytes);
    int nsegs = 0;
    double vod_s = check_vod(&p, w.id, &nsegs);
    tl_note("recording %lld: %lld bytes, %d segments, %.3f s before the disk "
            "filled",
            w.id, w.bytes, nsegs, vod_s);

    tl_pub_stop(&pb, SIGTERM);
    char tmp[1024];
    ck_assert_msg(!tl_find_file_suffix(rec_dir, ".tmp", tmp, sizeof(tmp)),
                  "temporary file left in the recordings: %s", tmp);
    metrics(p.http_port, token, &m);
    ck_assert_msg(m.errors == 2, "at the end: write errors %lld (want 2)",
                  m.errors);
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);

    /* after the exit: still one line per stream, no secret anywhere */
    check_stop_line(&p, "live/" STREAM_A, true, secrets);
    check_stop_line(&p, "live/" STREAM_B, false, secrets);
    tl_assert_not_logged(p.log, token, "API token");
    tl_assert_not_logged(p.log, ka, "stream key");
    tl_assert_not_logged(p.log, kb, "stream key");
    ck_assert_msg(!tl_find_file_suffix(rec_dir, ".tmp", tmp, sizeof(tmp)),
                  "temporary file left in the recordings after the exit: %s",
                  tmp);

    umount2(rec_dir, MNT_DETACH);
    tl_rmtree(dir);
}
END_TEST

static Suite *diskfull_suite(void)
{
    Suite *s = suite_create("diskfull");
    TCase *tc = tcase_create("diskfull");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_disk_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(diskfull_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_diskfull: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
