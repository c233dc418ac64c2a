/*
 * tests/integration/test_vod.c - recordings served as VOD, end to end: the
 * real podium binary records a session published by the ffmpeg CLI, and
 * the recording is read back over HTTP by libcurl and ffprobe
 * (/recordings.json, /vod/<id>/..., the admin API's /api/recordings).
 *
 * Every test starts its own podium (auth open, transcode = 0, recording
 * on) in its own temp dir. Cases:
 *   - a finished recording: playlists, segments, decoded frames, the API
 *     (401 without a token, list, DELETE -> 204, then 404 and no files),
 *     and hostile VOD paths (never a file outside the recordings);
 *   - a crash: SIGKILL while recording, restart on the same data dir: no
 *     temporary file left, the recording is a complete VOD.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOP_MS 2000 /* -g 60 at 30 fps */
#define PUB_S 10
static const char *const SETS[] = {"transcode=0", "recording=1", NULL};

/* ---- recordings ---------------------------------------------------------- */

/* Waits for /recordings.json to list the ended recording of stream
 * ("live/<name>") with its VOD URL; returns its id. Asserts. */
static long long wait_recording(int port, const char *stream, int timeout_ms)
{
    tl_rec_t rec;
    ck_assert_msg(
        tl_wait_recording_ended(port, NULL, stream, timeout_ms, &rec) == 0,
        "no ended recording of %s in /recordings.json after %d ms: %.300s",
        stream, timeout_ms, rec.last);
    char want[64];
    snprintf(want, sizeof(want), "/vod/%lld/index.m3u8", rec.id);
    ck_assert_msg(strcmp(rec.url, want) == 0, "url %s, not %s",
                  rec.url[0] ? rec.url : "(none)", want);
    tl_note("recording %lld listed, duration %.3f s", rec.id, rec.duration_s);
    return rec.id;
}

/* What a VOD looks like from outside. */
typedef struct {
    char video[TL_URI_MAX]; /* absolute paths of the media playlists */
    char audio[TL_URI_MAX]; /* "" if none */
    double video_s;         /* EXTINF total of the video playlist */
    int segments;           /* segments fetched (all renditions) */
} vod_t;

/* Fetches one media playlist of a VOD and every file it names; asserts. */
static double check_media(int port, const char *path, int *segments)
{
    tl_m3u8_t m;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port, path, &m, &r);
    ck_assert_msg(tl_content_type_is(&r, "application/vnd.apple.mpegurl"),
                  "%s: wrong Content-Type", path);
    char cc[128];
    ck_assert_msg(tl_header(&r, "Access-Control-Allow-Origin", cc, sizeof(cc)),
                  "%s: no CORS header", path);
    tl_resp_free(&r);
    ck_assert_msg(strcmp(m.playlist_type, "VOD") == 0, "%s: PLAYLIST-TYPE '%s'",
                  path, m.playlist_type);
    ck_assert_msg(m.endlist, "%s: no EXT-X-ENDLIST", path);
    ck_assert_msg(m.nmaps >= 1 && m.map_uri[0], "%s: no EXT-X-MAP", path);
    ck_assert_msg(m.nsegs >= 1, "%s: no segments", path);
    double total = 0;
    char last_map[TL_URI_MAX] = "";
    for (int i = 0; i < m.nsegs; i++) {
        const tl_seg_t *s = &m.segs[i];
        total += s->duration;
        char abs[512];
        if (strcmp(s->map_uri, last_map) != 0) {
            snprintf(last_map, sizeof(last_map), "%s", s->map_uri);
            ck_assert(tl_resolve(path, s->map_uri, abs, sizeof(abs)) == 0);
            tl_get_ok(port, abs, &r);
            ck_assert_msg(tl_content_type_is(&r, "video/mp4"),
                          "%s: not video/mp4", abs);
            tl_resp_free(&r);
        }
        ck_assert(tl_resolve(path, s->uri, abs, sizeof(abs)) == 0);
        tl_get_ok(port, abs, &r);
        ck_assert_msg(tl_content_type_is(&r, "video/mp4"), "%s: not video/mp4",
                      abs);
        ck_assert_msg(r.len > 0, "%s: empty", abs);
        tl_resp_free(&r);
        (*segments)++;
    }
    tl_note("%s: %d segments, %.3f s", path, m.nsegs, total);
    tl_m3u8_free(&m);
    return total;
}

/* The multivariant and everything below it; asserts. */
static void check_vod(int port, long long id, vod_t *v)
{
    memset(v, 0, sizeof(*v));
    char mv[128];
    snprintf(mv, sizeof(mv), "/vod/%lld/index.m3u8", id);
    tl_m3u8_t m;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port, mv, &m, &r);
    ck_assert_msg(tl_content_type_is(&r, "application/vnd.apple.mpegurl"),
                  "multivariant: wrong Content-Type");
    tl_resp_free(&r);
    ck_assert_msg(m.multivariant && m.nvariants >= 1,
                  "no variant in the VOD multivariant");
    ck_assert(tl_resolve(mv, m.variants[0].uri, v->video, sizeof(v->video)) ==
              0);
    for (int i = 0; i < m.nmedia; i++) {
        const char *type = tl_attr(&m.media[i], "TYPE");
        const char *uri = tl_attr(&m.media[i], "URI");
        if (type && strcmp(type, "AUDIO") == 0 && uri)
            ck_assert(tl_resolve(mv, uri, v->audio, sizeof(v->audio)) == 0);
    }
    tl_m3u8_free(&m);
    v->video_s = check_media(port, v->video, &v->segments);
    if (v->audio[0])
        check_media(port, v->audio, &v->segments);
}

/* ffprobe counts the decoded video frames of the VOD over HTTP; asserts
 * it read to the end without errors. */
static long count_frames(int port, long long id)
{
    char path[96], err[1024];
    snprintf(path, sizeof(path), "/vod/%lld/index.m3u8", id);
    long frames = 0;
    ck_assert_msg(
        tl_ffprobe_http_frames(port, path, &frames, err, sizeof(err)) == 0,
        "%s", err);
    return frames;
}

/* ---- 1. a finished recording --------------------------------------------- */

START_TEST(test_vod_roundtrip)
{
    char dir[256];
    tl_podium_t p;
    tl_pub_t pub;
    ck_assert(tl_mkdtemp(dir, sizeof(dir), "vod") == 0);
    ck_assert_msg(tl_podium_start(&p, dir, SETS) == 0, "podium did not start");
    ck_assert(tl_pub_start(&pub, dir, p.rtmp_port, "rec", GOP_MS, PUB_S) == 0);
    ck_assert_msg(tl_pub_wait(&pub, (PUB_S + 20) * 1000) == 0,
                  "the publisher did not finish");
    long long id = wait_recording(p.http_port, "live/rec", 20000);

    vod_t v;
    check_vod(p.http_port, id, &v);
    ck_assert_msg(v.video_s > PUB_S * 0.8 && v.video_s < PUB_S + 1.0,
                  "video EXTINF total %.3f s for a %d s publish", v.video_s,
                  PUB_S);
    long frames = count_frames(p.http_port, id);
    long expect = lround(v.video_s * TL_FPS);
    tl_note("decoded %ld frames; EXTINF total says %ld; published %d", frames,
            expect, PUB_S * TL_FPS);
    ck_assert_msg(frames >= PUB_S * TL_FPS * 9 / 10,
                  "decoded %ld frames of %d published", frames, PUB_S * TL_FPS);
    ck_assert_msg(labs(frames - expect) <= 2,
                  "decoded %ld frames, the playlist says %ld", frames, expect);

    /* Hostile paths: 4xx, never a file (the catalogue least of all). */
    char rend[640];
    snprintf(rend, sizeof(rend), "%s", v.video + strlen("/vod/"));
    char *slash = strchr(rend, '/');
    ck_assert(slash);
    char *rname = slash + 1;
    *strchr(rname, '/') = 0;
    char bad[12][TL_URI_MAX * 3];
    int nb = 0;
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/abc/index.m3u8");
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/0/index.m3u8");
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/0%lld/index.m3u8", id);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/../../x", id);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/%s/../../podium.db", id,
             rname);
    snprintf(bad[nb++], sizeof(bad[0]),
             "/vod/%lld/%s/..%%2F..%%2F..%%2Fpodium.db", id, rname);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/%s/1.m4s%%00", id, rname);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/%s/1.m4s%%00.mp4", id,
             rname);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/..%%2F..%%2Fpodium.db", id);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/%s/podium.db", id, rname);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/99999/%s/index.m3u8", rname);
    snprintf(bad[nb++], sizeof(bad[0]), "/vod/%lld/%s/999999.m4s", id, rname);
    for (int i = 0; i < nb; i++) {
        char *body = NULL;
        long st =
            tl_http(p.http_port, "GET", bad[i], NULL, NULL, NULL, 0, &body);
        ck_assert_msg(st >= 400 && st < 500, "GET %s: %ld", bad[i], st);
        ck_assert_msg(!strstr(body, "SQLite"), "GET %s served the catalogue",
                      bad[i]);
        free(body);
    }

    /* The admin API. */
    char *out = NULL;
    long st = tl_http(p.http_port, "GET", "/api/recordings", NULL, NULL, NULL,
                      0, &out);
    ck_assert_msg(st == 401, "GET /api/recordings without a token: %ld", st);
    free(out);
    char token[128], why[1024];
    ck_assert_msg(
        tl_token_create(dir, NULL, token, sizeof(token), why, sizeof(why)) == 0,
        "%s", why);
    st = tl_http(p.http_port, "GET", "/api/recordings", token, NULL, NULL, 0,
                 &out);
    ck_assert_msg(st == 200, "GET /api/recordings: %ld %s", st, out);
    json_t *o = json_loads(out, 0, NULL);
    json_t *e = json_array_get(json_object_get(o, "recordings"), 0);
    ck_assert_msg(e && json_integer_value(json_object_get(e, "id")) == id &&
                      json_integer_value(json_object_get(e, "bytes")) > 0 &&
                      json_array_size(json_object_get(e, "renditions")) >= 1,
                  "GET /api/recordings does not list %lld: %s", id, out);
    json_decref(o);
    free(out);

    char path[128];
    snprintf(path, sizeof(path), "/api/recordings/%lld", id);
    st = tl_http(p.http_port, "DELETE", path, token, NULL, NULL, 0, NULL);
    ck_assert_msg(st == 204, "DELETE %s: %ld", path, st);
    st = tl_http(p.http_port, "DELETE", path, token, NULL, NULL, 0, NULL);
    ck_assert_msg(st == 404, "second DELETE %s: %ld", path, st);
    snprintf(path, sizeof(path), "/vod/%lld/index.m3u8", id);
    ck_assert_int_eq(
        tl_http(p.http_port, "GET", path, NULL, NULL, NULL, 0, NULL), 404);
    ck_assert_int_eq(
        tl_http(p.http_port, "GET", v.video, NULL, NULL, NULL, 0, NULL), 404);
    char rdir[600];
    snprintf(rdir, sizeof(rdir), "%s/data/recordings/%lld", dir, id);
    struct stat sb;
    ck_assert_msg(stat(rdir, &sb) != 0 && errno == ENOENT,
                  "%s still exists after DELETE", rdir);

    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    tl_pub_stop(&pub, SIGKILL);
    tl_rmtree(dir);
}
END_TEST

/* ---- 2. a crash while recording ------------------------------------------ */

START_TEST(test_vod_after_crash)
{
    char dir[256];
    tl_podium_t p;
    tl_pub_t pub;
    ck_assert(tl_mkdtemp(dir, sizeof(dir), "vodcrash") == 0);
    ck_assert_msg(tl_podium_start(&p, dir, SETS) == 0, "podium did not start");
    ck_assert(tl_pub_start(&pub, dir, p.rtmp_port, "crash", GOP_MS, 0) == 0);
    tl_sleep_ms(6000);
    kill(p.pid, SIGKILL);
    tl_podium_reap(&p);
    tl_pub_stop(&pub, SIGKILL);

    ck_assert_msg(tl_podium_start(&p, dir, SETS) == 0,
                  "podium did not restart after SIGKILL");
    char rdir[600], tmp[1024];
    snprintf(rdir, sizeof(rdir), "%s/data/recordings", dir);
    ck_assert_msg(!tl_find_file_suffix(rdir, ".tmp", tmp, sizeof(tmp)),
                  "temporary file left after the restart: %s", tmp);

    long long id = wait_recording(p.http_port, "live/crash", 20000);
    vod_t v;
    check_vod(p.http_port, id, &v); /* ENDLIST, every file there */
    long frames = count_frames(p.http_port, id);
    long expect = lround(v.video_s * TL_FPS);
    tl_note("after the crash: %d segments, %.3f s of video, %ld frames",
            v.segments, v.video_s, frames);
    ck_assert_msg(v.video_s > 0 && labs(frames - expect) <= 2,
                  "decoded %ld frames, the playlist says %ld", frames, expect);

    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    tl_rmtree(dir);
}
END_TEST

static Suite *vod_suite(void)
{
    Suite *s = suite_create("vod");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_vod_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("crash");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_vod_after_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(vod_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_vod: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
