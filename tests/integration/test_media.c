/*
 * tests/integration/test_media.c - the media bytes: init segments, every
 * segment and part of the live window decoded by ffprobe, segments equal
 * to their parts, truthful INDEPENDENT=YES, and the whole ended stream
 * read back by the ffmpeg CLI's HLS demuxer (checklist D, E5-E7).
 *
 * Case "live": one podium + publisher (1 s GOP and segments, 6-segment
 * window). Case "ended": its own podium; a publisher that stops after 8 s
 * (240 frames) and a 1.5 s grace period, so the stream gets ENDLIST; then
 * `ffmpeg -i .../index.m3u8 -c copy` reads it from start to end.
 *
 * A part that does not start with a keyframe cannot be decoded alone (the
 * decoder drops frames until a keyframe), so for those "decodes" means:
 * ffprobe parses its samples alone, and init + the parts of its segment up
 * to it decode completely (every packet gives a frame).
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define NAME "media"

static tl_fixture_t F;
static const char *const SETS[] = {"segment_target_ms=1000",
                                   "part_target_ms=334", "window_segments=6",
                                   "grace_period_ms=10000", NULL};

static void setup(void)
{
    int rc = tl_fixture_start(&F, "media", SETS, NAME, 1000, 0, 5, 60000);
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

typedef struct {
    const char *rendition;
    bool video;
    char path[256];
    tl_m3u8_t m;
    tl_resp_t init;
} rend_t;

static void load(rend_t *r, const char *rendition)
{
    memset(r, 0, sizeof(*r));
    r->rendition = rendition;
    r->video = strcmp(rendition, "source") == 0;
    tl_playlist_path(r->path, sizeof(r->path), NAME, rendition);
    tl_fetch_m3u8_ok(port(), r->path, &r->m, NULL);
    char ip[512];
    ck_assert(tl_resolve(r->path, r->m.map_uri, ip, sizeof(ip)) == 0);
    tl_get_ok(port(), ip, &r->init);
}

static void unload(rend_t *r)
{
    tl_m3u8_free(&r->m);
    tl_resp_free(&r->init);
}

static void get_media(const rend_t *r, const char *uri, tl_resp_t *out)
{
    char p[512];
    ck_assert(tl_resolve(r->path, uri, p, sizeof(p)) == 0);
    tl_get_ok(port(), p, out);
    ck_assert_msg(out->len > 0, "%s is empty", p);
}

/* Samples expected in `dur` seconds of this rendition. */
static double expected_samples(const rend_t *r, double dur)
{
    return r->video ? dur * TL_FPS : dur * TL_AUDIO_RATE / (double)TL_AAC_FRAME;
}

static void check_codec(const rend_t *r, const tl_probe_t *p, const char *what)
{
    if (r->video) {
        ck_assert_msg(strcmp(p->codec, "h264") == 0, "%s: codec %s", what,
                      p->codec);
        ck_assert_msg(p->width == TL_WIDTH && p->height == TL_HEIGHT,
                      "%s: %dx%d", what, p->width, p->height);
    } else {
        ck_assert_msg(strcmp(p->codec, "aac") == 0, "%s: codec %s", what,
                      p->codec);
    }
}

/* ---- D1: init segments ----------------------------------------------------
 */

static void check_init(const char *rendition)
{
    rend_t r;
    load(&r, rendition);
    char boxes[256];
    int n = tl_box_list(r.init.body, r.init.len, boxes, sizeof(boxes));
    tl_note("%s init: %zu bytes, boxes %s", rendition, r.init.len, boxes);
    ck_assert_msg(n >= 2, "D1: init box structure broken (%s)", boxes);
    ck_assert_msg(strncmp(boxes, "ftyp,moov", 9) == 0,
                  "D1: init is %s, want ftyp then moov", boxes);
    ck_assert_msg(!strstr(boxes, "mdat") && !strstr(boxes, "moof"),
                  "D1: init carries samples (%s)", boxes);
    ck_assert_msg(memmem(r.init.body, r.init.len, "mvex", 4),
                  "D1: moov without mvex");
    tl_probe_t p;
    ck_assert_msg(tl_ffprobe(F.dir, r.init.body, r.init.len, NULL, 0, &p) == 0,
                  "ffprobe cannot read the %s init", rendition);
    check_codec(&r, &p, "init");
    unload(&r);
}

START_TEST(test_init_video)
{
    check_init("source");
}
END_TEST

START_TEST(test_init_audio)
{
    check_init("audio");
}
END_TEST

/* ---- D2/D4: every segment of the window decodes ----------------------------
 */

static void check_segments(const char *rendition)
{
    rend_t r;
    load(&r, rendition);
    long total = 0;
    double total_dur = 0;
    for (int i = 0; i < r.m.nsegs; i++) {
        const tl_seg_t *s = &r.m.segs[i];
        tl_resp_t b;
        get_media(&r, s->uri, &b);
        char boxes[256], what[64];
        snprintf(what, sizeof(what), "%s segment %lld", rendition,
                 (long long)s->msn);
        tl_box_list(b.body, b.len, boxes, sizeof(boxes));
        ck_assert_msg(strstr(boxes, "moof") && strstr(boxes, "mdat"),
                      "D2: %s boxes %s", what, boxes);
        tl_probe_t p;
        ck_assert_msg(
            tl_ffprobe(F.dir, r.init.body, r.init.len, b.body, b.len, &p) == 0,
            "ffprobe cannot read %s", what);
        check_codec(&r, &p, what);
        double want = expected_samples(&r, s->duration);
        ck_assert_msg(fabs((double)p.packets - want) <= 2.5,
                      "%s: %ld samples for EXTINF %.5f (want ~%.1f)", what,
                      p.packets, s->duration, want);
        ck_assert_msg(p.frames >= p.packets - (r.video ? 0 : 1),
                      "%s: only %ld of %ld samples decode (%s)", what, p.frames,
                      p.packets, p.err);
        if (r.video)
            ck_assert_msg(p.first_key,
                          "D4: %s does not start with a "
                          "keyframe",
                          what);
        total += p.frames;
        total_dur += s->duration;
        tl_resp_free(&b);
    }
    tl_note("%s: %d segments, %.3f s, %ld frames decoded", rendition, r.m.nsegs,
            total_dur, total);
    unload(&r);
}

START_TEST(test_segments_decode_video)
{
    check_segments("source");
}
END_TEST

START_TEST(test_segments_decode_audio)
{
    check_segments("audio");
}
END_TEST

/* ---- E6/E7: every part decodes; INDEPENDENT is truthful --------------------
 */

static void check_parts(const char *rendition)
{
    rend_t r;
    load(&r, rendition);
    int nindep = 0, key_unmarked = 0;
    /* Concatenation of the parts of the current parent, for in-context
     * decoding of non-independent parts. */
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    int64_t ctx_msn = -1;
    long ctx_packets = 0;
    for (int i = 0; i < r.m.nparts; i++) {
        const tl_part_t *pt = &r.m.parts[i];
        char what[64];
        snprintf(what, sizeof(what), "%s part %lld.%d", rendition,
                 (long long)pt->msn, pt->index);
        tl_resp_t b;
        get_media(&r, pt->uri, &b);
        char boxes[256];
        tl_box_list(b.body, b.len, boxes, sizeof(boxes));
        ck_assert_msg(strstr(boxes, "moof") && strstr(boxes, "mdat"),
                      "E7: %s boxes %s", what, boxes);
        tl_probe_t p;
        ck_assert_msg(
            tl_ffprobe(F.dir, r.init.body, r.init.len, b.body, b.len, &p) == 0,
            "E7: ffprobe cannot read %s", what);
        check_codec(&r, &p, what);
        double want = expected_samples(&r, pt->duration);
        ck_assert_msg(p.packets >= 1 && fabs((double)p.packets - want) <= 2.5,
                      "E3/E7: %s: %ld samples for DURATION %.5f (~%.1f)", what,
                      p.packets, pt->duration, want);
        if (pt->msn != ctx_msn) {
            ctx_len = 0;
            ctx_packets = 0;
            ctx_msn = pt->msn;
        }
        uint8_t *nc = realloc(ctx, ctx_len + b.len);
        ck_assert(nc);
        ctx = nc;
        memcpy(ctx + ctx_len, b.body, b.len);
        ctx_len += b.len;
        ctx_packets += p.packets;
        if (r.video) {
            if (pt->independent) {
                nindep++;
                ck_assert_msg(p.first_key,
                              "E6: %s is INDEPENDENT=YES but does not start "
                              "with a keyframe",
                              what);
                ck_assert_msg(p.frames == p.packets,
                              "E6: INDEPENDENT %s decodes %ld of %ld frames "
                              "alone",
                              what, p.frames, p.packets);
            } else {
                if (p.first_key)
                    key_unmarked++;
                /* In context: the segment's parts up to this one. */
                if (tl_m3u8_part(&r.m, pt->msn, 0)) {
                    tl_probe_t c;
                    ck_assert(tl_ffprobe(F.dir, r.init.body, r.init.len, ctx,
                                         ctx_len, &c) == 0);
                    ck_assert_msg(c.packets == ctx_packets &&
                                      c.frames == c.packets,
                                  "E7: %s: parts 0..%d decode %ld frames of "
                                  "%ld samples",
                                  what, pt->index, c.frames, ctx_packets);
                }
            }
        } else {
            ck_assert_msg(p.frames >= p.packets - 1,
                          "E7: %s decodes %ld of %ld frames", what, p.frames,
                          p.packets);
        }
        tl_resp_free(&b);
    }
    free(ctx);
    tl_note("%s: %d parts decoded, %d INDEPENDENT=YES, %d start with a "
            "keyframe without INDEPENDENT=YES",
            rendition, r.m.nparts, nindep, key_unmarked);
    ck_assert_msg(key_unmarked == 0,
                  "E6: %d parts start with a keyframe but lack "
                  "INDEPENDENT=YES",
                  key_unmarked);
    if (r.video)
        ck_assert_msg(nindep >= 1, "E6: no video part is INDEPENDENT=YES");
    unload(&r);
}

START_TEST(test_parts_decode_video)
{
    check_parts("source");
}
END_TEST

START_TEST(test_parts_decode_audio)
{
    check_parts("audio");
}
END_TEST

/* ---- E5: a segment holds exactly its parts' samples ------------------------
 */

static void check_segment_vs_parts(const char *rendition)
{
    rend_t r;
    load(&r, rendition);
    int checked = 0, bytes_equal = 0;
    for (int i = 0; i < r.m.nsegs; i++) {
        const tl_seg_t *s = &r.m.segs[i];
        if (s->nparts == 0 || r.m.parts[s->first_part].index != 0)
            continue;
        tl_resp_t sb;
        get_media(&r, s->uri, &sb);
        uint8_t *cat = NULL;
        size_t cl = 0;
        long part_packets = 0;
        for (int k = 0; k < s->nparts; k++) {
            tl_resp_t pb;
            get_media(&r, r.m.parts[s->first_part + k].uri, &pb);
            tl_probe_t pp;
            ck_assert(tl_ffprobe(F.dir, r.init.body, r.init.len, pb.body,
                                 pb.len, &pp) == 0);
            part_packets += pp.packets;
            uint8_t *nc = realloc(cat, cl + pb.len);
            ck_assert(nc);
            cat = nc;
            memcpy(cat + cl, pb.body, pb.len);
            cl += pb.len;
            tl_resp_free(&pb);
        }
        tl_probe_t ps, pc;
        ck_assert(tl_ffprobe(F.dir, r.init.body, r.init.len, sb.body, sb.len,
                             &ps) == 0);
        ck_assert(tl_ffprobe(F.dir, r.init.body, r.init.len, cat, cl, &pc) ==
                  0);
        bool same = cl == sb.len && memcmp(cat, sb.body, cl) == 0;
        bytes_equal += same;
        tl_note("%s segment %lld: %zu bytes, %ld samples/%ld frames; its %d "
                "parts: %zu bytes, %ld samples (sum %ld)/%ld frames; "
                "bytes %s",
                rendition, (long long)s->msn, sb.len, ps.packets, ps.frames,
                s->nparts, cl, pc.packets, part_packets, pc.frames,
                same ? "identical" : "differ");
        ck_assert_msg(ps.packets == part_packets && ps.packets == pc.packets,
                      "E5: segment %lld has %ld samples, its parts %ld",
                      (long long)s->msn, ps.packets, part_packets);
        ck_assert_msg(ps.frames == pc.frames,
                      "E5: segment %lld decodes %ld frames, its parts %ld",
                      (long long)s->msn, ps.frames, pc.frames);
        checked++;
        free(cat);
        tl_resp_free(&sb);
    }
    tl_note("%s: %d segments compared with their parts, %d byte-identical",
            rendition, checked, bytes_equal);
    ck_assert_msg(checked >= 1, "no complete segment with listed parts");
    unload(&r);
}

START_TEST(test_segment_equals_parts_video)
{
    check_segment_vs_parts("source");
}
END_TEST

START_TEST(test_segment_equals_parts_audio)
{
    check_segment_vs_parts("audio");
}
END_TEST

/* ---- D3, J4: timestamps continuous and audio aligned with video ---------- */

typedef struct {
    int64_t msn;
    double pts;
    double dts;
    double extinf;
} first_ts_t;

/* First timestamps of every complete segment of the window; returns n. */
static int load_ts(const rend_t *r, first_ts_t *out, int max)
{
    int n = 0;
    for (int i = 0; i < r->m.nsegs && n < max; i++) {
        const tl_seg_t *s = &r->m.segs[i];
        tl_resp_t b;
        get_media(r, s->uri, &b);
        first_ts_t *t = &out[n++];
        t->msn = s->msn;
        t->extinf = s->duration;
        ck_assert_msg(tl_ffprobe_first_ts(F.dir, r->init.body, r->init.len,
                                          b.body, b.len, &t->pts, &t->dts) == 0,
                      "no timestamps in %s segment %lld", r->rendition,
                      (long long)s->msn);
        tl_resp_free(&b);
    }
    return n;
}

START_TEST(test_timestamps)
{
    rend_t v, a;
    load(&v, "source");
    /* The same state for audio: block until it has video's last part. */
    const tl_part_t *lp = tl_m3u8_last_part(&v.m);
    memset(&a, 0, sizeof(a));
    a.rendition = "audio";
    tl_playlist_path(a.path, sizeof(a.path), NAME, "audio");
    char q[400], ip[512];
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d", a.path,
             (long long)lp->msn, lp->index);
    tl_fetch_m3u8_ok(port(), q, &a.m, NULL);
    ck_assert(tl_resolve(a.path, a.m.map_uri, ip, sizeof(ip)) == 0);
    tl_get_ok(port(), ip, &a.init);

    first_ts_t tv[64], ta[64];
    int nv = load_ts(&v, tv, 64);
    int na = load_ts(&a, ta, 64);
    const rend_t *rs[] = {&v, &a};
    const first_ts_t *ts[] = {tv, ta};
    int ns[] = {nv, na};
    for (int k = 0; k < 2; k++) {
        double worst = 0;
        for (int i = 0; i + 1 < ns[k]; i++) {
            double d = ts[k][i + 1].dts - ts[k][i].dts;
            double err = fabs(d - ts[k][i].extinf);
            if (err > worst)
                worst = err;
            ck_assert_msg(err <= 0.002,
                          "D3: %s: segment %lld starts %.4f s after %lld, "
                          "whose EXTINF is %.5f",
                          rs[k]->rendition, (long long)ts[k][i + 1].msn, d,
                          (long long)ts[k][i].msn, ts[k][i].extinf);
        }
        tl_note("%s: %d segments, first dts %.4f s, worst "
                "|dts step - EXTINF| %.2f ms",
                rs[k]->rendition, ns[k], ns[k] ? ts[k][0].dts : 0.0,
                worst * 1e3);
    }
    /* Same MSN, same media time (lip sync): within about one AAC frame. */
    double worst_av = 0;
    int common = 0;
    for (int i = 0; i < nv; i++)
        for (int j = 0; j < na; j++)
            if (tv[i].msn == ta[j].msn) {
                double d = fabs(tv[i].pts - ta[j].pts);
                if (d > worst_av)
                    worst_av = d;
                common++;
            }
    tl_note("J4: %d common segments, worst audio/video start difference "
            "%.1f ms",
            common, worst_av * 1e3);
    ck_assert_msg(common >= 2, "J4: only %d MSNs in both renditions", common);
    ck_assert_msg(worst_av <= 0.030,
                  "J4: audio and video segments of one MSN start %.1f ms "
                  "apart",
                  worst_av * 1e3);
    unload(&v);
    unload(&a);
}
END_TEST

START_TEST(test_zz_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

/* ---- the ended stream, read by ffmpeg from start to ENDLIST ---------------
 */

#define PUBLISH_S 8

START_TEST(test_ffmpeg_reads_ended_stream)
{
    tl_fixture_t f;
    const char *sets[] = {"segment_target_ms=2000", "part_target_ms=334",
                          "grace_period_ms=1500", "linger_ms=120000", NULL};
    ck_assert(
        tl_fixture_start(&f, "ended", sets, "vod", 2000, PUBLISH_S, 0, 0) == 0);
    int hp = f.podium.http_port;
    int rc = tl_pub_wait(&f.pub, 40000);
    if (rc != 0)
        tl_fixture_dump(&f);
    ck_assert_msg(rc == 0, "publisher with -t %d still running after 40 s",
                  PUBLISH_S);
    tl_note("publisher exited after %lld ms, wait status %d",
            (long long)(tl_now_ms() - f.pub.started_ms), f.pub.status);
    ck_assert_msg(WIFEXITED(f.pub.status) && WEXITSTATUS(f.pub.status) == 0,
                  "publisher failed (wait status %d)", f.pub.status);
    char vp[256], ap[256], mv[256];
    tl_playlist_path(vp, sizeof(vp), "vod", "source");
    tl_playlist_path(ap, sizeof(ap), "vod", "audio");
    tl_playlist_path(mv, sizeof(mv), "vod", NULL);
    int64_t t0 = tl_now_ms();
    ck_assert_msg(tl_wait_endlist(hp, vp, 15000) == 0,
                  "M2: no ENDLIST 15 s after the publisher left (grace "
                  "1.5 s)");
    tl_note("ENDLIST %lld ms after the publisher exited",
            (long long)(tl_now_ms() - t0));
    const char *paths[] = {vp, ap};
    for (int i = 0; i < 2; i++) {
        tl_m3u8_t m;
        tl_fetch_m3u8_ok(hp, paths[i], &m, NULL);
        double total = 0;
        for (int k = 0; k < m.nsegs; k++)
            total += m.segs[k].duration;
        tl_note("%s: ENDLIST=%d, %d segments, %.3f s, %d hints", paths[i],
                m.endlist, m.nsegs, total, m.npreload);
        ck_assert_msg(m.endlist, "M2: %s lacks ENDLIST", paths[i]);
        ck_assert_msg(m.npreload == 0, "M2/I5: ENDLIST with PRELOAD-HINT");
        ck_assert_msg(total >= PUBLISH_S - 1.5 && total <= PUBLISH_S + 1.5,
                      "%s lasts %.3f s for a %d s publish", paths[i], total,
                      PUBLISH_S);
        tl_m3u8_free(&m);
    }

    /* ffmpeg's HLS demuxer reads the whole stream. */
    char url[400], out[400];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", hp, mv);
    snprintf(out, sizeof(out), "%s/read.mp4", f.dir);
    char *argv[] = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel",
                    "error",  "-i",           url,        "-map",
                    "0",      "-c",           "copy",     "-f",
                    "mp4",    "-y",           out,        NULL};
    char *err = NULL;
    t0 = tl_now_ms();
    int st = tl_run(argv, 90000, NULL, &err);
    tl_note("ffmpeg read the ended stream in %lld ms, wait status %d%s%s",
            (long long)(tl_now_ms() - t0), st, err && err[0] ? ": " : "",
            err ? err : "");
    free(err);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "ffmpeg -i %s failed (wait status %d)", url, st);
    tl_probe_t v, a;
    ck_assert_msg(tl_ffprobe_file(out, &v, &a) == 0, "ffprobe %s", out);
    long want_v = PUBLISH_S * TL_FPS;
    long want_a = PUBLISH_S * TL_AUDIO_RATE / TL_AAC_FRAME;
    tl_note("read back: video %ld frames (%.1f%% of %ld published), audio "
            "%ld frames (%.1f%% of ~%ld)",
            v.frames, 100.0 * (double)v.frames / (double)want_v, want_v,
            a.frames, 100.0 * (double)a.frames / (double)want_a, want_a);
    ck_assert_msg(strcmp(v.codec, "h264") == 0, "no video read back");
    ck_assert_msg(v.width == TL_WIDTH && v.height == TL_HEIGHT,
                  "read back %dx%d", v.width, v.height);
    ck_assert_msg(v.frames >= want_v * 95 / 100 && v.frames <= want_v,
                  "video: %ld frames read back, %ld published", v.frames,
                  want_v);
    ck_assert_msg(strcmp(a.codec, "aac") == 0, "no audio read back");
    ck_assert_msg(a.frames >= want_a * 90 / 100 && a.frames <= want_a + 3,
                  "audio: %ld frames read back, ~%ld published", a.frames,
                  want_a);
    tl_assert_clean_exit(&f.podium, 15000);
    tl_fixture_stop(&f);
}
END_TEST

static Suite *media_suite(void)
{
    Suite *s = suite_create("media");
    TCase *tc = tcase_create("live");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_init_video);
    tcase_add_test(tc, test_init_audio);
    tcase_add_test(tc, test_segments_decode_video);
    tcase_add_test(tc, test_segments_decode_audio);
    tcase_add_test(tc, test_parts_decode_video);
    tcase_add_test(tc, test_parts_decode_audio);
    tcase_add_test(tc, test_segment_equals_parts_video);
    tcase_add_test(tc, test_segment_equals_parts_audio);
    tcase_add_test(tc, test_timestamps);
    tcase_add_test(tc, test_zz_clean_exit);
    suite_add_tcase(s, tc);

    tc = tcase_create("ended");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ffmpeg_reads_ended_stream);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(media_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_media: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
