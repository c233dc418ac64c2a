/*
 * tests/integration/test_publishers.c - publishers coming and going:
 * two streams at once, a second publisher on a live name (refused), a
 * reconnect within the grace period (EXT-X-DISCONTINUITY, MSNs go on;
 * after a crash, a clean stop, and with a new picture size, which needs a
 * new init section),
 * hostile bytes on the RTMP port, and the end of a stream after its grace
 * period (ENDLIST, no hint, directives answered at once).
 *
 * One podium (1 s segments, 3 s grace, 2 s RTMP handshake timeout) and
 * one long-running publisher "main" are shared by the case; the tests
 * start their own extra publishers (children of the forked test, killed
 * with it).
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAIN "main"
#define GRACE_MS 3000

static tl_fixture_t F;
static const char *const SETS[] = {
    "segment_target_ms=1000",         "part_target_ms=334",
    "grace_period_ms=3000",           "linger_ms=60000",
    "rtmp_handshake_timeout_ms=2000", NULL};

static void setup(void)
{
    int rc = tl_fixture_start(&F, "pub", SETS, MAIN, 1000, 0, 2, 60000);
    ck_assert_msg(rc == 0, "podium + publisher did not come up");
}

static void teardown(void)
{
    tl_fixture_stop(&F);
}

static int port(void)
{
    return F.podium.http_port;
}

static int64_t last_msn_of(const char *name)
{
    char p[256];
    tl_playlist_path(p, sizeof(p), name, "source");
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port(), p, &m, NULL);
    int64_t l = tl_m3u8_last_msn(&m);
    tl_m3u8_free(&m);
    return l;
}

/* Asserts that stream `name` gets `n` more segments within timeout_ms. */
static void assert_advances(const char *name, int n, int timeout_ms,
                            const char *why)
{
    char p[256];
    tl_playlist_path(p, sizeof(p), name, "source");
    int64_t l = last_msn_of(name);
    int64_t t0 = tl_now_ms();
    int rc = tl_wait_msn_above(port(), p, l + n - 1, timeout_ms);
    tl_note("%s: %d new segments of %s after MSN %lld in %lld ms", why, n, name,
            (long long)l, (long long)(tl_now_ms() - t0));
    if (rc != 0)
        tl_fixture_dump(&F);
    ck_assert_msg(rc == 0, "%s: stream %s stopped advancing at MSN %lld", why,
                  name, (long long)l);
}

START_TEST(test_two_publishers)
{
    tl_pub_t two;
    ck_assert(
        tl_pub_start(&two, F.dir, F.podium.rtmp_port, "second", 1000, 0) == 0);
    char p[256];
    tl_playlist_path(p, sizeof(p), "second", "source");
    int rc = tl_wait_segments(port(), p, 3, 30000);
    if (rc != 0)
        tl_print_tail(two.log, 10, "  ffmpeg | ");
    ck_assert_msg(rc == 0, "second stream never got 3 segments");
    assert_advances(MAIN, 2, 10000, "two publishers");
    assert_advances("second", 2, 10000, "two publishers");
    /* Both listed in /streams.json. */
    tl_resp_t r;
    tl_get_ok(port(), "/streams.json", &r);
    printf("  /streams.json: %.600s\n", (const char *)r.body);
    ck_assert_msg(strstr((const char *)r.body, "live/" MAIN) &&
                      strstr((const char *)r.body, "live/second"),
                  "streams.json does not list both streams");
    tl_resp_free(&r);
    tl_pub_stop(&two, SIGTERM);
}
END_TEST

START_TEST(test_second_publisher_refused)
{
    tl_pub_t dup;
    int64_t t0 = tl_now_ms();
    ck_assert(tl_pub_start(&dup, F.dir, F.podium.rtmp_port, MAIN, 1000, 0) ==
              0);
    int rc = tl_pub_wait(&dup, 15000);
    tl_note("second publisher on live/%s: %s after %lld ms, wait status %d",
            MAIN, rc == 0 ? "exited" : "still running",
            (long long)(tl_now_ms() - t0), dup.status);
    tl_print_tail(dup.log, 4, "  ffmpeg | ");
    if (rc != 0)
        tl_pub_stop(&dup, SIGKILL);
    ck_assert_msg(rc == 0, "a second publisher on a live name was not "
                           "refused (ffmpeg still publishing after 15 s)");
    ck_assert_msg(!(WIFEXITED(dup.status) && WEXITSTATUS(dup.status) == 0),
                  "the refused ffmpeg exited 0");
    assert_advances(MAIN, 2, 10000, "after the refused publisher");
    /* The refused attempt left no mark on the live stream. */
    char p[256];
    tl_playlist_path(p, sizeof(p), MAIN, "source");
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port(), p, &m, NULL);
    for (int i = 0; i < m.nsegs; i++)
        ck_assert_msg(!m.segs[i].discontinuity,
                      "refused publisher caused a DISCONTINUITY at %lld",
                      (long long)m.segs[i].msn);
    tl_m3u8_free(&m);
}
END_TEST

/* xorshift: the same "random" bytes on every run. */
static void fill_random(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

static void send_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* podium closed it: fine */
        b += w;
        n -= (size_t)w;
    }
}

/* Reads up to n bytes within timeout_ms; returns bytes read. */
static size_t recv_some(int fd, uint8_t *b, size_t n, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = tl_now_ms() + timeout_ms;
    while (got < n) {
        int64_t left = deadline - tl_now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

START_TEST(test_garbage_rtmp)
{
    int rport = F.podium.rtmp_port;
    static uint8_t junk[65536];
    fill_random(junk, sizeof(junk), 12345);

    /* 1: random bytes, then close. */
    int fd = tl_tcp_connect(rport);
    ck_assert(fd >= 0);
    send_all(fd, junk, 4096);
    close(fd);
    /* 2: bad version byte and garbage. */
    fd = tl_tcp_connect(rport);
    ck_assert(fd >= 0);
    uint8_t bad[1537];
    bad[0] = 0xff;
    memcpy(bad + 1, junk + 100, 1536);
    send_all(fd, bad, sizeof(bad));
    close(fd);
    /* 3: a valid C0+C1, read S0S1S2, then random chunk stream bytes. */
    fd = tl_tcp_connect(rport);
    ck_assert(fd >= 0);
    uint8_t c01[1537];
    c01[0] = 3;
    memset(c01 + 1, 0, 1536);
    send_all(fd, c01, sizeof(c01));
    uint8_t s012[3073];
    size_t got = recv_some(fd, s012, sizeof(s012), 5000);
    tl_note("handshake: podium sent %zu of 3073 bytes of S0S1S2", got);
    uint8_t c2[1536];
    memcpy(c2, s012 + 1, sizeof(c2));
    send_all(fd, c2, sizeof(c2));
    send_all(fd, junk, sizeof(junk));
    close(fd);
    /* 4: connect and close at once. */
    fd = tl_tcp_connect(rport);
    ck_assert(fd >= 0);
    close(fd);
    /* 5: half a handshake (C0 + part of C1), then stall. */
    int stall = tl_tcp_connect(rport);
    ck_assert(stall >= 0);
    send_all(stall, c01, 700);
    int64_t t_stall = tl_now_ms();

    /* The live stream goes on and podium serves. */
    assert_advances(MAIN, 2, 10000, "garbage on the RTMP port");
    ck_assert_msg(tl_podium_alive(&F.podium), "podium died");
    /* The stalled handshake is closed by the handshake timeout (2 s). */
    uint8_t tmp[4096];
    int64_t closed_at = -1;
    while (tl_now_ms() - t_stall < 15000) {
        struct pollfd pf = {stall, POLLIN, 0};
        if (poll(&pf, 1, 500) > 0) {
            ssize_t r = recv(stall, tmp, sizeof(tmp), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                closed_at = tl_now_ms();
                break;
            }
        }
    }
    close(stall);
    tl_note("stalled half handshake closed by podium after %lld ms "
            "(rtmp_handshake_timeout_ms=2000)",
            closed_at < 0 ? -1LL : (long long)(closed_at - t_stall));
    ck_assert_msg(closed_at >= 0, "a stalled handshake was kept open for 15 s");
    assert_advances(MAIN, 1, 10000, "after the garbage");
}
END_TEST

/* Decodes segment msn of the video playlist with the EXT-X-MAP that
 * applies to it and checks the picture size. */
static void check_decodes_as(const char *vp, const tl_m3u8_t *m, int64_t msn,
                             int w, int h)
{
    const tl_seg_t *s = tl_m3u8_seg(m, msn);
    ck_assert_msg(s, "segment %lld not listed", (long long)msn);
    char ip[512], sp[512];
    ck_assert(tl_resolve(vp, s->map_uri, ip, sizeof(ip)) == 0);
    ck_assert(tl_resolve(vp, s->uri, sp, sizeof(sp)) == 0);
    tl_resp_t ir, sr;
    tl_get_ok(port(), ip, &ir);
    tl_get_ok(port(), sp, &sr);
    tl_probe_t p;
    ck_assert(tl_ffprobe(F.dir, ir.body, ir.len, sr.body, sr.len, &p) == 0);
    tl_note("segment %lld with map %s: %s %dx%d, %ld/%ld frames",
            (long long)msn, s->map_uri, p.codec, p.width, p.height, p.frames,
            p.packets);
    ck_assert_msg(p.width == w && p.height == h,
                  "M3: segment %lld decodes as %dx%d with map %s, the "
                  "publisher sent %dx%d",
                  (long long)msn, p.width, p.height, s->map_uri, w, h);
    ck_assert_msg(p.frames == p.packets && p.frames > 0,
                  "segment %lld: %ld of %ld frames decode", (long long)msn,
                  p.frames, p.packets);
    tl_resp_free(&ir);
    tl_resp_free(&sr);
}

/* Loop 0: the publisher dies (SIGKILL: the TCP connection just closes).
 * Loop 1: it stops cleanly (SIGTERM: ffmpeg unpublishes), as OBS's "Stop
 * Streaming" then "Start Streaming" does.
 * Loop 2: it comes back with another picture size (new codec
 * configuration: a new init section, a new EXT-X-MAP). */
START_TEST(test_reconnect_in_grace)
{
    const char *names[] = {"re", "re2", "re3"};
    const char *name = names[_i];
    int sig = _i == 0 ? SIGKILL : SIGTERM;
    int w2 = _i == 2 ? 640 : TL_WIDTH, h2 = _i == 2 ? 360 : TL_HEIGHT;
    tl_pub_t p1, p2;
    ck_assert(tl_pub_start(&p1, F.dir, F.podium.rtmp_port, name, 1000, 0) == 0);
    char vp[256], ap[256];
    tl_playlist_path(vp, sizeof(vp), name, "source");
    tl_playlist_path(ap, sizeof(ap), name, "audio");
    ck_assert_msg(tl_wait_segments(port(), vp, 3, 30000) == 0,
                  "first session never got 3 segments");
    tl_m3u8_t m1;
    tl_fetch_m3u8_ok(port(), vp, &m1, NULL);
    int64_t l1 = tl_m3u8_last_msn(&m1);
    tl_pub_stop(&p1, sig);
    int64_t t_kill = tl_now_ms();
    tl_sleep_ms(1000);
    tl_m3u8_t mid;
    tl_fetch_m3u8_ok(port(), vp, &mid, NULL);
    int64_t l_mid = tl_m3u8_last_msn(&mid);
    ck_assert_msg(!mid.endlist, "ENDLIST 1 s into a %d ms grace period",
                  GRACE_MS);
    ck_assert(tl_pub_start_size(&p2, F.dir, F.podium.rtmp_port, name, 1000, 0,
                                w2, h2) == 0);
    tl_note("reconnect %lld ms after %s; last MSN %lld before, %lld "
            "after the disconnect",
            (long long)(tl_now_ms() - t_kill),
            sig == SIGKILL ? "SIGKILL" : "SIGTERM", (long long)l1,
            (long long)l_mid);
    int rc = tl_wait_msn_above(port(), vp, l_mid + 2, 30000);
    if (rc != 0)
        tl_print_tail(p2.log, 10, "  ffmpeg | ");
    ck_assert_msg(rc == 0,
                  "the stream did not continue after the "
                  "reconnect (last MSN %lld)",
                  (long long)l_mid);
    const char *paths[] = {vp, ap};
    for (int r = 0; r < 2; r++) {
        tl_m3u8_t m2;
        tl_fetch_m3u8_ok(port(), paths[r], &m2, NULL);
        ck_assert_msg(!m2.endlist, "ENDLIST after the reconnect");
        ck_assert_msg(m2.media_sequence >= m1.media_sequence,
                      "M3: MEDIA-SEQUENCE went back %lld -> %lld",
                      (long long)m1.media_sequence,
                      (long long)m2.media_sequence);
        int discs = 0;
        int64_t disc_msn = -1;
        for (int i = 0; i < m2.nsegs; i++) {
            const tl_seg_t *s = &m2.segs[i];
            int64_t um, up;
            ck_assert_msg(tl_parse_media_uri(s->uri, &um, &up) == 0 &&
                              um == s->msn,
                          "segment URI %s at MSN %lld: numbering broken",
                          s->uri, (long long)s->msn);
            if (s->discontinuity) {
                discs++;
                disc_msn = s->msn;
            }
        }
        /* The first session's segments are unchanged. */
        if (r == 0) {
            for (int i = 0; i < m1.nsegs; i++) {
                const tl_seg_t *o = &m1.segs[i];
                const tl_seg_t *n = tl_m3u8_seg(&m2, o->msn);
                if (n)
                    ck_assert_msg(strcmp(o->uri, n->uri) == 0 &&
                                      fabs(o->duration - n->duration) < 1e-6,
                                  "MSN %lld changed across the reconnect",
                                  (long long)o->msn);
            }
        }
        const tl_seg_t *ds = disc_msn >= 0 ? tl_m3u8_seg(&m2, disc_msn) : NULL;
        tl_note("%s after reconnect: MEDIA-SEQUENCE %lld, last %lld, %d "
                "discontinuities (at %lld, PDT %s)",
                paths[r], (long long)m2.media_sequence,
                (long long)tl_m3u8_last_msn(&m2), discs, (long long)disc_msn,
                ds && ds->pdt_ms >= 0 ? "yes" : "no");
        ck_assert_msg(discs == 1,
                      "M3: %d EXT-X-DISCONTINUITY after one "
                      "reconnect",
                      discs);
        ck_assert_msg(disc_msn == l_mid + 1,
                      "M3: DISCONTINUITY at MSN %lld, the new session "
                      "starts at %lld",
                      (long long)disc_msn, (long long)l_mid + 1);
        ck_assert_msg(ds->pdt_ms >= 0,
                      "C9: no PROGRAM-DATE-TIME after the discontinuity");
        tl_m3u8_free(&m2);
    }
    /* Both sessions decode, each with its own init section. */
    tl_m3u8_t m3;
    tl_fetch_m3u8_ok(port(), vp, &m3, NULL);
    check_decodes_as(vp, &m3, l_mid, TL_WIDTH, TL_HEIGHT);
    check_decodes_as(vp, &m3, l_mid + 1, w2, h2);
    tl_m3u8_free(&m3);
    tl_m3u8_free(&m1);
    tl_m3u8_free(&mid);
    tl_pub_stop(&p2, SIGTERM);
}
END_TEST

START_TEST(test_end_after_grace)
{
    const char *name = "end";
    tl_pub_t p;
    ck_assert(tl_pub_start(&p, F.dir, F.podium.rtmp_port, name, 1000, 3) == 0);
    ck_assert_msg(tl_pub_wait(&p, 30000) == 0,
                  "publisher with -t 3 still running");
    int64_t t_end = tl_now_ms();
    char vp[256], ap[256];
    tl_playlist_path(vp, sizeof(vp), name, "source");
    tl_playlist_path(ap, sizeof(ap), name, "audio");
    tl_m3u8_t during;
    tl_fetch_m3u8_ok(port(), vp, &during, NULL);
    ck_assert_msg(!during.endlist || tl_now_ms() - t_end > GRACE_MS,
                  "ENDLIST before the grace period ended");
    tl_m3u8_free(&during);
    ck_assert_msg(tl_wait_endlist(port(), vp, GRACE_MS + 10000) == 0,
                  "M2: no ENDLIST %d ms after the grace period",
                  GRACE_MS + 10000);
    tl_note("ENDLIST %lld ms after the publisher left (grace %d ms)",
            (long long)(tl_now_ms() - t_end), GRACE_MS);
    const char *paths[] = {vp, ap};
    for (int i = 0; i < 2; i++) {
        tl_m3u8_t m;
        tl_fetch_m3u8_ok(port(), paths[i], &m, NULL);
        ck_assert_msg(m.endlist, "M2: %s without ENDLIST", paths[i]);
        ck_assert_msg(m.npreload == 0, "M2/I5: %s: PRELOAD-HINT with ENDLIST",
                      paths[i]);
        long long last = (long long)tl_m3u8_last_msn(&m);
        char q[4][300];
        snprintf(q[0], 300, "%s?_HLS_msn=%lld", paths[i], last + 1);
        snprintf(q[1], 300, "%s?_HLS_msn=%lld&_HLS_part=0", paths[i], last + 1);
        snprintf(q[2], 300, "%s?_HLS_skip=YES", paths[i]);
        snprintf(q[3], 300, "%s?_HLS_msn=%lld&_HLS_part=2&_HLS_skip=YES",
                 paths[i], last + 2);
        for (int k = 0; k < 4; k++) {
            tl_m3u8_t b;
            tl_resp_t r;
            tl_fetch_m3u8_ok(port(), q[k], &b, &r);
            tl_note("H10: %s -> %ld in %.0f ms", q[k], r.status,
                    r.ttfb_s * 1e3);
            ck_assert_msg(r.ttfb_s < 1.0,
                          "H10: %s held %.3f s on an ended "
                          "stream",
                          q[k], r.ttfb_s);
            ck_assert_msg(b.endlist && b.skipped < 0 && b.nsegs == m.nsegs,
                          "H10/K6: %s did not return the full ended "
                          "playlist",
                          q[k]);
            tl_resp_free(&r);
            tl_m3u8_free(&b);
        }
        tl_m3u8_free(&m);
    }
    tl_resp_t r;
    tl_get_ok(port(), "/streams.json", &r);
    const char *s = strstr((const char *)r.body, "\"live/end\"");
    printf("  /streams.json: %.600s\n", (const char *)r.body);
    ck_assert_msg(s && strstr(s, "ended") && (strstr(s, "ended") - s) < 200,
                  "streams.json does not show live/end as ended");
    tl_resp_free(&r);
}
END_TEST

/* The publish name's query string (a stream key) is not part of the name
 * and never reaches the log (team rule). */
START_TEST(test_stream_key_not_logged)
{
    const char *secret = "S3cr3tK3y4711";
    char name[64];
    snprintf(name, sizeof(name), "keyed?key=%s", secret);
    tl_pub_t p;
    ck_assert(tl_pub_start(&p, F.dir, F.podium.rtmp_port, name, 1000, 0) == 0);
    char vp[256];
    tl_playlist_path(vp, sizeof(vp), "keyed", "source");
    int rc = tl_wait_segments(port(), vp, 1, 20000);
    if (rc != 0)
        tl_print_tail(p.log, 5, "  ffmpeg | ");
    tl_pub_stop(&p, SIGTERM);
    ck_assert_msg(rc == 0, "publishing to live/keyed?key=... did not create "
                           "live/keyed");
    tl_sleep_ms(300); /* the unpublish log line */
    char *log = tl_read_file(F.podium.log, NULL);
    ck_assert(log);
    bool leaked = strstr(log, secret) != NULL;
    free(log);
    ck_assert_msg(!leaked, "the stream key appears in podium's log");
}
END_TEST

START_TEST(test_zz_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

static Suite *publishers_suite(void)
{
    Suite *s = suite_create("publishers");
    TCase *tc = tcase_create("publishers");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_two_publishers);
    tcase_add_test(tc, test_second_publisher_refused);
    tcase_add_test(tc, test_garbage_rtmp);
    tcase_add_loop_test(tc, test_reconnect_in_grace, 0, 3);
    tcase_add_test(tc, test_end_after_grace);
    tcase_add_test(tc, test_stream_key_not_logged);
    tcase_add_test(tc, test_zz_clean_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(publishers_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_publishers: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
