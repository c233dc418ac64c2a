/*
 * tests/integration/test_clients.c - the RTMP clients presenters use.
 *
 * OBS's RTMP code is librtmp; GStreamer's rtmpsink is librtmp too, so it
 * stands in for OBS here (same handshake, chunking and command sequence).
 * GStreamer's rtmp2sink is an independent implementation. The ffmpeg CLI
 * is covered everywhere else; here it also sends B-frames (as OBS does by
 * default), audio only and video only. Each publisher must produce a
 * stream whose playlists advance and whose media decodes with ffprobe.
 *
 * One podium is shared by the case; each test publishes its own stream.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static tl_fixture_t F;
static const char *const SETS[] = {"segment_target_ms=1000",
                                   "part_target_ms=334", NULL};

static void setup(void)
{
    ck_assert_msg(tl_fixture_start(&F, "clients", SETS, NULL, 0, 0, 0,
                                   30000) == 0,
                  "podium did not start");
}

static void teardown(void)
{
    tl_fixture_stop(&F);
}

/* Starts argv in the background (stdout/stderr to log), killed with the
 * test process. Returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    dup2(2, 1);
    execvp(argv[0], argv);
    _exit(127);
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGINT);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        tl_sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Waits for `rendition` of live/<name> to list 3 segments, then checks the
 * multivariant's CODECS contain `codecs` and that the init plus the last
 * complete segment decode with ffprobe as `codec`. */
static void check_stream(const char *name, const char *rendition,
                         const char *codecs, const char *codec, pid_t pub,
                         const char *log)
{
    char path[256];
    tl_playlist_path(path, sizeof(path), name, rendition);
    int rc = tl_wait_segments(F.podium.http_port, path, 3, 40000);
    if (rc != 0) {
        tl_print_tail(log, 15, "  client | ");
        tl_fixture_dump(&F);
    }
    ck_assert_msg(rc == 0, "live/%s/%s never listed 3 segments", name,
                  rendition);

    char mv[256];
    tl_playlist_path(mv, sizeof(mv), name, NULL);
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(F.podium.http_port, mv, &m, NULL);
    ck_assert_int_ge(m.nvariants, 1);
    const char *c = tl_attr(&m.variants[0].attrs, "CODECS");
    tl_note("live/%s: CODECS=%s", name, c ? c : "(none)");
    ck_assert_msg(c && strstr(c, codecs), "CODECS %s lacks %s",
                  c ? c : "(none)", codecs);
    tl_m3u8_free(&m);

    tl_fetch_m3u8_ok(F.podium.http_port, path, &m, NULL);
    const tl_seg_t *s = &m.segs[m.nsegs - 1];
    char base[256], u[600];
    snprintf(base, sizeof(base), "/live/%s/%s/", name, rendition);
    tl_resp_t init, seg;
    snprintf(u, sizeof(u), "%s%s", base, m.map_uri);
    tl_get_ok(F.podium.http_port, u, &init);
    snprintf(u, sizeof(u), "%s%s", base, s->uri);
    tl_get_ok(F.podium.http_port, u, &seg);
    tl_probe_t p;
    ck_assert_msg(tl_ffprobe(F.dir, init.body, init.len, seg.body, seg.len,
                             &p) == 0, "ffprobe failed: %s", p.err);
    tl_note("live/%s/%s segment %lld: %s %dx%d, %ld frames, key first: %d",
            name, rendition, (long long)s->msn, p.codec, p.width, p.height,
            p.frames, p.first_key);
    ck_assert_str_eq(p.codec, codec);
    ck_assert_int_gt(p.frames, 0);
    ck_assert_msg(p.first_key, "segment does not start with a keyframe");
    tl_resp_free(&init);
    tl_resp_free(&seg);
    tl_m3u8_free(&m);
    ck_assert_msg(waitpid(pub, NULL, WNOHANG) == 0,
                  "the publisher exited early");
}

static void gst_publish(const char *sink, const char *name)
{
    char url[256], log[400], pipeline[1024];
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/%s",
             F.podium.rtmp_port, name);
    snprintf(log, sizeof(log), "%s/%s.log", F.dir, name);
    /* is-live sources pace in real time; 30 s is far more than needed. */
    snprintf(pipeline, sizeof(pipeline),
             "videotestsrc is-live=true num-buffers=900 ! "
             "video/x-raw,width=320,height=240,framerate=30/1 ! "
             "x264enc tune=zerolatency key-int-max=30 bframes=0 "
             "bitrate=400 ! h264parse ! flvmux name=m streamable=true ! "
             "%s location=%s "
             "audiotestsrc is-live=true ! audio/x-raw,rate=48000 ! "
             "audioconvert ! avenc_aac ! aacparse ! m.",
             sink, url);
    char *argv[] = {"sh", "-c", NULL, NULL};
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "exec gst-launch-1.0 -q %s", pipeline);
    argv[2] = cmd;
    pid_t pid = spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    check_stream(name, "source", "avc1.", "h264", pid, log);
    check_stream(name, "audio", "mp4a.40.2", "aac", pid, log);
    stop(pid);
}

START_TEST(test_gstreamer_librtmp)
{
    /* rtmpsink is built on librtmp, the RTMP code OBS uses */
    gst_publish("rtmpsink", "gst-librtmp");
}
END_TEST

START_TEST(test_gstreamer_rtmp2)
{
    gst_publish("rtmp2sink", "gst-rtmp2");
}
END_TEST

/* ffmpeg with extra arguments: "video" and/or "audio" tracks, B-frames. */
static void ffmpeg_publish(const char *name, bool video, bool audio, int bf)
{
    char url[256], log[400], bfs[8];
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/%s",
             F.podium.rtmp_port, name);
    snprintf(log, sizeof(log), "%s/%s.log", F.dir, name);
    snprintf(bfs, sizeof(bfs), "%d", bf);
    char *argv[64];
    int n = 0;
    argv[n++] = "ffmpeg";
    argv[n++] = "-hide_banner";
    argv[n++] = "-nostdin";
    argv[n++] = "-loglevel";
    argv[n++] = "warning";
    if (video) {
        char *v[] = {"-re", "-f", "lavfi", "-i",
                     "testsrc2=size=320x240:rate=30"};
        for (int i = 0; i < 5; i++)
            argv[n++] = v[i];
    }
    if (audio) {
        char *a[] = {"-re", "-f", "lavfi", "-i",
                     "sine=frequency=440:sample_rate=44100"};
        for (int i = 0; i < 5; i++)
            argv[n++] = a[i];
    }
    argv[n++] = "-t";
    argv[n++] = "40";
    if (video) {
        char *v[] = {"-c:v", "libx264", "-preset", "veryfast", "-g", "30",
                     "-keyint_min", "30", "-sc_threshold", "0", "-bf", bfs,
                     "-pix_fmt", "yuv420p", "-b:v", "400k"};
        for (int i = 0; i < 16; i++)
            argv[n++] = v[i];
    }
    if (audio) {
        char *a[] = {"-c:a", "aac", "-b:a", "96k"};
        for (int i = 0; i < 4; i++)
            argv[n++] = a[i];
    }
    argv[n++] = "-f";
    argv[n++] = "flv";
    argv[n++] = url;
    argv[n] = NULL;
    pid_t pid = spawn(argv, log);
    ck_assert_int_gt(pid, 0);
    if (video)
        check_stream(name, "source", "avc1.", "h264", pid, log);
    if (audio)
        check_stream(name, "audio", "mp4a.40.2", "aac", pid, log);
    if (!audio || !video) {
        /* the multivariant must not mention the missing track */
        char mv[256];
        tl_playlist_path(mv, sizeof(mv), name, NULL);
        tl_resp_t r;
        tl_get_ok(F.podium.http_port, mv, &r);
        const char *body = (const char *)r.body;
        if (!audio)
            ck_assert_msg(!strstr(body, "mp4a") && !strstr(body, "AUDIO="),
                          "video-only stream lists audio:\n%s", body);
        if (!video)
            ck_assert_msg(!strstr(body, "avc1") && !strstr(body, "RESOLUTION"),
                          "audio-only stream lists video:\n%s", body);
        tl_resp_free(&r);
    }
    stop(pid);
}

START_TEST(test_ffmpeg_bframes)
{
    ffmpeg_publish("bframes", true, true, 3);
}
END_TEST

START_TEST(test_ffmpeg_audio_only)
{
    ffmpeg_publish("audioonly", false, true, 0);
}
END_TEST

START_TEST(test_ffmpeg_video_only)
{
    ffmpeg_publish("videoonly", true, false, 0);
}
END_TEST

START_TEST(test_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

int main(void)
{
    tl_init();
    Suite *s = suite_create("clients");
    TCase *tc = tcase_create("clients");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gstreamer_librtmp);
    tcase_add_test(tc, test_gstreamer_rtmp2);
    tcase_add_test(tc, test_ffmpeg_bframes);
    tcase_add_test(tc, test_ffmpeg_audio_only);
    tcase_add_test(tc, test_ffmpeg_video_only);
    tcase_add_test(tc, test_clean_exit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
