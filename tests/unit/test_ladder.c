/*
 * tests/unit/test_ladder.c - the transcoding ladder: its configuration
 * (core/config.c: defaults, the `ladder` list, its errors, print/load round
 * trip) and its per-source selection (packager/ladder.c: never upscale,
 * portrait, anamorphic, frame rates, H.264 levels, hostile sources).
 */
#include "core/config.h"
#include "core/err.h"
#include "packager/transcode.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/podium-ladder-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads text over the defaults; returns the status, err filled. */
static int load_text(pd_config_t *c, const char *text, char *err, size_t len)
{
    pd_config_defaults(c);
    err[0] = '\0';
    char *p = write_tmp(text);
    int rc = pd_config_load(c, p, err, len);
    unlink(p);
    return rc;
}

/* Selects and checks the invariants every selection keeps: even encoded
 * sizes within the display size, aspect within 1 %, passthrough first,
 * encoded largest first, frame rates not above the source's, no zero
 * bitrates, a valid level. */
static int sel(const pd_config_t *c, int w, int h, int sn, int sd, double fps,
               pkg_rung_t *out)
{
    int n = -1;
    ck_assert_int_eq(pkg_ladder_select(c, w, h, sn, sd, fps, out, &n), PD_OK);
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, PD_LADDER_MAX);
    double sar = (sn > 0 && sd > 0) ? (double)sn / sd : 1.0;
    double dw = w * sar, dh = h;
    double eff_fps = fps > 0 ? fps : 30;
    for (int i = 0; i < n; i++) {
        const pkg_rung_t *r = &out[i];
        ck_assert_int_gt(strlen(r->name), 0);
        ck_assert(r->fps_num > 0 && r->fps_den > 0);
        ck_assert_msg((double)r->fps_num / r->fps_den <= eff_fps + 0.01,
                      "%s: fps %d/%d above source %f", r->name, r->fps_num,
                      r->fps_den, eff_fps);
        if (r->passthrough) {
            ck_assert_int_eq(i, 0);
            ck_assert_int_eq(r->width, w);
            ck_assert_int_eq(r->height, h);
            continue;
        }
        ck_assert_msg(r->width % 2 == 0 && r->height % 2 == 0,
                      "%s: odd size %dx%d", r->name, r->width, r->height);
        ck_assert_msg(r->width <= dw + 1e-6 && r->height <= dh + 1e-6,
                      "%s: %dx%d above source %gx%g", r->name, r->width,
                      r->height, dw, dh);
        double a = (double)r->width / r->height, sa = dw / dh;
        ck_assert_msg(fabs(a / sa - 1) < 0.01, "%s: aspect %f vs %f",
                      r->name, a, sa);
        ck_assert(r->bitrate_kbps > 0 && r->maxrate_kbps >= r->bitrate_kbps &&
                  r->bufsize_kbps > 0);
        ck_assert(r->level >= 10 && r->level <= 62);
        if (i > 0 && !out[i - 1].passthrough)
            ck_assert((long)out[i - 1].width * out[i - 1].height >=
                      (long)r->width * r->height);
    }
    return n;
}

static void expect(const pkg_rung_t *r, const char *name, int w, int h)
{
    ck_assert_str_eq(r->name, name);
    ck_assert_int_eq(r->width, w);
    ck_assert_int_eq(r->height, h);
}

/* ---- selection ---------------------------------------------------------- */

START_TEST(select_1080p)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 4);
    ck_assert(r[0].passthrough);
    expect(&r[0], "source", 1920, 1080);
    expect(&r[1], "720p", 1280, 720);
    expect(&r[2], "480p", 854, 480);
    expect(&r[3], "360p", 640, 360);
    ck_assert_int_eq(r[1].level, 31);
    ck_assert_str_eq(r[1].profile, "high");
    ck_assert_int_eq(r[1].bitrate_kbps, 2800);
    ck_assert_int_eq(r[1].maxrate_kbps, 3000);
    ck_assert_int_eq(r[1].bufsize_kbps, 3000);
    ck_assert_int_eq(r[2].level, 31); /* 54x30 MBs x 30 > 40500 MB/s */
    ck_assert_int_eq(r[3].level, 30);
    ck_assert_int_eq(r[3].fps_num, 30);
    ck_assert_int_eq(r[3].fps_den, 1);
}
END_TEST

START_TEST(select_720p_equal_stays)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 1280, 720, 0, 0, 30, r), 4);
    expect(&r[0], "source", 1280, 720);
    expect(&r[1], "720p", 1280, 720);
    expect(&r[2], "480p", 854, 480);
    expect(&r[3], "360p", 640, 360);
}
END_TEST

START_TEST(select_small_sources)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 854, 480, 1, 1, 30, r), 3);
    expect(&r[1], "480p", 854, 480);
    expect(&r[2], "360p", 640, 360);
    ck_assert_int_eq(sel(&c, 640, 360, 1, 1, 30, r), 2);
    expect(&r[1], "360p", 640, 360);
    ck_assert_int_eq(sel(&c, 426, 240, 1, 1, 30, r), 1);
    expect(&r[0], "source", 426, 240);
}
END_TEST

START_TEST(select_odd_sizes)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 1366, 768, 1, 1, 30, r), 4);
    expect(&r[1], "720p", 1280, 720);
    expect(&r[2], "480p", 854, 480);
    expect(&r[3], "360p", 640, 360);
    /* 719 < 720: no 720p rung */
    ck_assert_int_eq(sel(&c, 1279, 719, 1, 1, 30, r), 3);
    expect(&r[0], "source", 1279, 719);
    expect(&r[1], "480p", 854, 480);
    expect(&r[2], "360p", 640, 360);
    /* equal short side with an odd long side: clamped below 1279 */
    ck_assert_int_eq(sel(&c, 1279, 720, 1, 1, 30, r), 4);
    expect(&r[1], "720p", 1278, 720);
}
END_TEST

START_TEST(select_portrait)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 720, 1280, 1, 1, 30, r), 4);
    expect(&r[0], "source", 720, 1280);
    expect(&r[1], "720p", 720, 1280);
    expect(&r[2], "480p", 480, 854);
    expect(&r[3], "360p", 360, 640);
    ck_assert_int_eq(sel(&c, 1080, 1920, 1, 1, 30, r), 4);
    expect(&r[1], "720p", 720, 1280);
    ck_assert_int_eq(r[1].level, 31);
}
END_TEST

START_TEST(select_square)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    ck_assert_int_eq(sel(&c, 1080, 1080, 1, 1, 30, r), 4);
    expect(&r[1], "720p", 720, 720);
    expect(&r[2], "480p", 480, 480);
    expect(&r[3], "360p", 360, 360);
}
END_TEST

START_TEST(select_anamorphic)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    /* 1440x1080 with 4:3 pixels displays as 1920x1080 */
    ck_assert_int_eq(sel(&c, 1440, 1080, 4, 3, 25, r), 4);
    expect(&r[0], "source", 1440, 1080);
    expect(&r[1], "720p", 1280, 720);
    expect(&r[3], "360p", 640, 360);
    ck_assert_int_eq(r[1].fps_num, 25);
    /* PAL 4:3: 720x576 SAR 16:15 displays as 768x576 */
    ck_assert_int_eq(sel(&c, 720, 576, 16, 15, 25, r), 3);
    expect(&r[1], "480p", 640, 480);
    expect(&r[2], "360p", 480, 360);
}
END_TEST

START_TEST(select_frame_rates)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    c.ladder[2].fps = 30; /* 480p at most 30 */
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 60, r), 4);
    ck_assert_int_eq(r[0].fps_num, 60);
    ck_assert_int_eq(r[0].fps_den, 1);
    ck_assert_int_eq(r[1].fps_num, 60);
    ck_assert_int_eq(r[2].fps_num, 30);
    ck_assert_int_eq(r[2].fps_den, 1);
    ck_assert_int_eq(r[1].level, 32); /* 720p60 */
    /* a rung fps above the source's: the source's, exact NTSC */
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 29.97, r), 4);
    ck_assert_int_eq(r[0].fps_num, 30000);
    ck_assert_int_eq(r[0].fps_den, 1001);
    ck_assert_int_eq(r[2].fps_num, 30000);
    ck_assert_int_eq(r[2].fps_den, 1001);
    sel(&c, 1920, 1080, 1, 1, 59.94, r);
    ck_assert_int_eq(r[1].fps_num, 60000);
    ck_assert_int_eq(r[1].fps_den, 1001);
    sel(&c, 1920, 1080, 1, 1, 23.976, r);
    ck_assert_int_eq(r[1].fps_num, 24000);
    ck_assert_int_eq(r[1].fps_den, 1001);
    sel(&c, 1920, 1080, 1, 1, 25.004, r); /* near-integer */
    ck_assert_int_eq(r[1].fps_num, 25);
    ck_assert_int_eq(r[1].fps_den, 1);
    sel(&c, 1920, 1080, 1, 1, 12.5, r);
    ck_assert_int_eq(r[1].fps_num, 25);
    ck_assert_int_eq(r[1].fps_den, 2);
    /* unknown: 30 */
    sel(&c, 1920, 1080, 1, 1, 0, r);
    ck_assert_int_eq(r[0].fps_num, 30);
    ck_assert_int_eq(r[0].fps_den, 1);
}
END_TEST

START_TEST(select_transcode_off)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    c.transcode = 0;
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 1);
    ck_assert(r[0].passthrough);
    expect(&r[0], "source", 1920, 1080);
    /* a ladder without passthrough: still "source" */
    c.ladder[0] = c.ladder[1];
    c.ladder[1] = c.ladder[2];
    c.nrungs = 2;
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 1);
    ck_assert(r[0].passthrough);
    expect(&r[0], "source", 1920, 1080);
    /* a renamed passthrough rung keeps its name */
    pd_config_defaults(&c);
    c.transcode = 0;
    snprintf(c.ladder[0].name, sizeof(c.ladder[0].name), "orig");
    ck_assert_int_eq(sel(&c, 1279, 719, 1, 1, 30, r), 1);
    expect(&r[0], "orig", 1279, 719);
}
END_TEST

START_TEST(select_no_passthrough_small_source)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    char err[256];
    pd_config_defaults(&c);
    for (int i = 1; i < c.nrungs; i++)
        c.ladder[i - 1] = c.ladder[i];
    c.nrungs = 3; /* 720p, 480p, 360p */
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 3);
    ck_assert(!r[0].passthrough);
    expect(&r[0], "720p", 1280, 720);
    /* nothing fits: one rung at the source's size with 720p's settings */
    ck_assert_int_eq(sel(&c, 427, 241, 1, 1, 30, r), 1);
    ck_assert(!r[0].passthrough);
    expect(&r[0], "720p", 426, 240);
    ck_assert_int_eq(r[0].bitrate_kbps, 2800);
    ck_assert_str_eq(r[0].profile, "high");
    /* a 640x360 source still gets 360p only */
    ck_assert_int_eq(sel(&c, 640, 360, 1, 1, 30, r), 1);
    expect(&r[0], "360p", 640, 360);
}
END_TEST

START_TEST(select_duplicates_and_order)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    /* configured smallest first, with a duplicate 360p */
    c.nrungs = 5;
    pd_rung_t l360 = c.ladder[3], l480 = c.ladder[2], l720 = c.ladder[1];
    c.ladder[1] = l360;
    c.ladder[2] = l480;
    c.ladder[3] = l720;
    c.ladder[4] = l360;
    snprintf(c.ladder[4].name, sizeof(c.ladder[4].name), "360b");
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 4);
    expect(&r[1], "720p", 1280, 720);
    expect(&r[2], "480p", 854, 480);
    expect(&r[3], "360p", 640, 360); /* the first of the two */
    /* the same size at another frame rate is another rendition */
    c.ladder[4].fps = 15;
    ck_assert_int_eq(sel(&c, 1920, 1080, 1, 1, 30, r), 5);
    expect(&r[3], "360p", 640, 360);
    expect(&r[4], "360b", 640, 360);
    ck_assert_int_eq(r[4].fps_num, 15);
}
END_TEST

START_TEST(select_resolves_zeros)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    pd_config_defaults(&c);
    c.ladder[1].maxrate_kbps = 0;
    c.ladder[1].bufsize_kbps = 0;
    c.ladder[1].level = 41;
    c.ladder[2].bufsize_kbps = 0;
    sel(&c, 1920, 1080, 1, 1, 30, r);
    ck_assert_int_eq(r[1].maxrate_kbps, 2800);
    ck_assert_int_eq(r[1].bufsize_kbps, 2800);
    ck_assert_int_eq(r[1].level, 41); /* configured: kept */
    ck_assert_int_eq(r[2].bufsize_kbps, 1500);
}
END_TEST

START_TEST(select_hostile)
{
    pd_config_t c;
    pkg_rung_t r[PD_LADDER_MAX];
    int n = 99;
    pd_config_defaults(&c);
    static const int bad[][2] = {{0, 720}, {1280, 0}, {-1280, 720},
                                 {1280, -720}, {16385, 720}, {1280, 16385},
                                 {2147483647, 2147483647}, {-2147483647 - 1, 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(pkg_ladder_select(&c, bad[i][0], bad[i][1], 1, 1,
                                           30, r, &n), PD_EINVAL);
        ck_assert_int_eq(n, 0);
    }
    ck_assert_int_eq(pkg_ladder_select(NULL, 1280, 720, 1, 1, 30, r, &n),
                     PD_EINVAL);
    ck_assert_int_eq(pkg_ladder_select(&c, 1280, 720, 1, 1, 30, NULL, &n),
                     PD_EINVAL);
    /* SAR 0:0, negative, absurd: square */
    ck_assert_int_eq(sel(&c, 1280, 720, 0, 0, 30, r), 4);
    expect(&r[1], "720p", 1280, 720);
    ck_assert_int_eq(sel(&c, 1280, 720, -4, 3, 30, r), 4);
    expect(&r[1], "720p", 1280, 720);
    n = 0;
    ck_assert_int_eq(pkg_ladder_select(&c, 1280, 720, 1000000, 1, 30, r, &n),
                     PD_OK);
    expect(&r[1], "720p", 1280, 720);
    ck_assert_int_eq(pkg_ladder_select(&c, 16384, 720, 4, 1, 30, r, &n),
                     PD_OK);
    ck_assert_int_eq(r[1].width, 16384);
    /* frame rates: negative, NaN, infinite, huge -> 30 */
    double fps[] = {-1, NAN, INFINITY, 1e12};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(pkg_ladder_select(&c, 1280, 720, 1, 1, fps[i], r,
                                           &n), PD_OK);
        ck_assert_int_eq(r[0].fps_num, 30);
        ck_assert_int_eq(r[1].fps_num, 30);
    }
    /* tiny and extreme sources */
    ck_assert_int_eq(sel(&c, 1, 1, 1, 1, 30, r), 1);
    ck_assert_int_eq(sel(&c, 16384, 16384, 1, 1, 30, r), 4);
    ck_assert_int_eq(r[1].level, 31);
    ck_assert_int_eq(sel(&c, 16384, 2, 1, 1, 30, r), 1);
    /* no passthrough, 1x1 source: the fallback rung is 2x2, not 0x0 */
    for (int i = 1; i < c.nrungs; i++)
        c.ladder[i - 1] = c.ladder[i];
    c.nrungs = 3;
    ck_assert_int_eq(pkg_ladder_select(&c, 1, 1, 0, 0, 0, r, &n), PD_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(r[0].width, 2);
    ck_assert_int_eq(r[0].height, 2);
    /* an invalid config (no rungs) is refused, not read past */
    c.nrungs = 0;
    ck_assert_int_eq(pkg_ladder_select(&c, 1280, 720, 1, 1, 30, r, &n),
                     PD_EINVAL);
    c.nrungs = PD_LADDER_MAX + 1;
    ck_assert_int_eq(pkg_ladder_select(&c, 1280, 720, 1, 1, 30, r, &n),
                     PD_EINVAL);
}
END_TEST

/* ---- levels ------------------------------------------------------------- */

START_TEST(levels_table)
{
    /* 80x45 = 3600 MBs, 108000 MB/s: 3.1 exactly */
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 3000, "main"), 31);
    /* 120x68 = 8160 MBs > 5120 (3.2): 4; 244800 <= 245760 MB/s */
    ck_assert_int_eq(pkg_h264_level(1920, 1080, 30, 6000, "high"), 40);
    /* 489600 MB/s: 4.2 */
    ck_assert_int_eq(pkg_h264_level(1920, 1080, 60, 6000, "high"), 42);
    /* 54x30 = 1620 MBs x 30 = 48600 > 40500 (3): 3.1 */
    ck_assert_int_eq(pkg_h264_level(854, 480, 30, 1500, "main"), 31);
    /* 45x30 = 1350 x 30 = 40500: 3 exactly */
    ck_assert_int_eq(pkg_h264_level(720, 480, 30, 1500, "main"), 30);
    /* 40x23 = 920 MBs x 30 = 27600 > 20250 (2.2): 3 */
    ck_assert_int_eq(pkg_h264_level(640, 360, 30, 850, "main"), 30);
    ck_assert_int_eq(pkg_h264_level(640, 360, 30000.0 / 1001, 850, "main"),
                     30);
    /* 176x144 QCIF at 15: 99 MBs, 1485 MB/s: 1 */
    ck_assert_int_eq(pkg_h264_level(176, 144, 15, 64, "baseline"), 10);
    ck_assert_int_eq(pkg_h264_level(176, 144, 15, 65, "baseline"), 11);
    /* bitrate: 14000 kbps fits 3.1 main; 17500 fits 3.1 high only */
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 14000, "main"), 31);
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 17500, "main"), 32);
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 17500, "high"), 31);
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 17501, "high"), 32);
    /* 4K30: 240x135 = 32400 MBs: 5.1; 4K60: 5.2; 8K60: 6.1 */
    ck_assert_int_eq(pkg_h264_level(3840, 2160, 30, 20000, "high"), 51);
    ck_assert_int_eq(pkg_h264_level(3840, 2160, 60, 20000, "high"), 52);
    ck_assert_int_eq(pkg_h264_level(7680, 4320, 60, 20000, "high"), 61);
    /* a 16x4096 strip: 256 MB rows need 8 x MaxFS >= 65536: level 4 */
    ck_assert_int_eq(pkg_h264_level(16, 4096, 30, 100, "main"), 40);
    /* none fits */
    ck_assert_int_eq(pkg_h264_level(7680, 4320, 300, 20000, "high"), 0);
    ck_assert_int_eq(pkg_h264_level(1280, 720, 30, 1000001, "high"), 0);
    /* hostile */
    ck_assert_int_eq(pkg_h264_level(0, 720, 30, 100, "main"), 0);
    ck_assert_int_eq(pkg_h264_level(-1280, 720, 30, 100, "main"), 0);
    ck_assert_int_eq(pkg_h264_level(2147483647, 2147483647, 30, 100, "main"),
                     0);
    ck_assert_int_eq(pkg_h264_level(1280, 720, 0, 3000, NULL), 31);
    ck_assert_int_eq(pkg_h264_level(1280, 720, NAN, -5, "bogus"), 31);
}
END_TEST

/* ---- config ------------------------------------------------------------- */

START_TEST(config_defaults)
{
    pd_config_t c;
    char err[256];
    pd_config_defaults(&c);
    ck_assert_int_eq(c.transcode, 1);
    ck_assert_str_eq(c.x264_preset, "veryfast");
    ck_assert_int_eq(c.encoder_threads, 0);
    ck_assert_int_eq(c.decode_threads, 0);
    ck_assert_str_eq(c.shed_order, "largest");
    ck_assert_int_eq(c.audio_bitrate_kbps, 128);
    ck_assert_int_eq(c.nrungs, 4);
    ck_assert(c.ladder[0].passthrough);
    ck_assert_str_eq(c.ladder[0].name, "source");
    ck_assert_str_eq(c.ladder[1].name, "720p");
    ck_assert_int_eq(c.ladder[1].height, 720);
    ck_assert_int_eq(c.ladder[1].bitrate_kbps, 2800);
    ck_assert_int_eq(c.ladder[1].maxrate_kbps, 3000);
    ck_assert_int_eq(c.ladder[1].bufsize_kbps, 3000);
    ck_assert_str_eq(c.ladder[1].profile, "high");
    ck_assert_int_eq(c.ladder[1].level, 0);
    ck_assert_str_eq(c.ladder[2].name, "480p");
    ck_assert_int_eq(c.ladder[2].bitrate_kbps, 1400);
    ck_assert_str_eq(c.ladder[2].profile, "main");
    ck_assert_str_eq(c.ladder[3].name, "360p");
    ck_assert_int_eq(c.ladder[3].maxrate_kbps, 850);
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
}
END_TEST

START_TEST(config_ladder_valid)
{
    pd_config_t c;
    char err[256];
    int rc = load_text(&c,
        "transcode = true;\n"
        "ladder = ( { name = \"source\"; passthrough = true; },\n"
        "  { name = \"720p\"; height = 720; bitrate_kbps = 2800;\n"
        "    maxrate_kbps = 3000; bufsize_kbps = 3000; profile = \"high\";\n"
        "    level = \"auto\"; fps = 30; },\n"
        "  { name = \"540p_x-1\"; height = 540; bitrate_kbps = 2000;\n"
        "    level = \"3.1\"; },\n"
        "  { name = \"low\"; height = 240; bitrate_kbps = 300; level = 21;\n"
        "    profile = \"baseline\"; passthrough = false; },\n"
        "  { name = \"l4\"; height = 144; bitrate_kbps = 100; level = \"4\"; },\n"
        "  { name = \"lf\"; height = 160; bitrate_kbps = 100; level = 1.3; } );\n",
        err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    ck_assert_int_eq(c.transcode, 1);
    ck_assert_int_eq(c.nrungs, 6);
    ck_assert(c.ladder[0].passthrough);
    ck_assert_int_eq(c.ladder[1].fps, 30);
    ck_assert_int_eq(c.ladder[1].level, 0);
    ck_assert_str_eq(c.ladder[2].name, "540p_x-1");
    ck_assert_int_eq(c.ladder[2].level, 31);
    ck_assert_str_eq(c.ladder[2].profile, "main"); /* default */
    ck_assert_int_eq(c.ladder[2].maxrate_kbps, 0);
    ck_assert_int_eq(c.ladder[3].level, 21);
    ck_assert(!c.ladder[3].passthrough);
    ck_assert_str_eq(c.ladder[3].profile, "baseline");
    ck_assert_int_eq(c.ladder[4].level, 40);
    ck_assert_int_eq(c.ladder[5].level, 13);
    ck_assert_int_eq(c.ladder[6].height, 0); /* cleared past nrungs */
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);

    /* a file's ladder replaces the default list entirely */
    rc = load_text(&c, "ladder = ( { name = \"only\"; height = 360;\n"
                       "  bitrate_kbps = 800; level = 0; } );\n", err,
                   sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    ck_assert_int_eq(c.nrungs, 1);
    ck_assert(!c.ladder[0].passthrough);
    ck_assert_int_eq(c.ladder[0].level, 0); /* integer 0 = auto */
    ck_assert_int_eq(c.ladder[1].height, 0);
    /* passthrough-only with transcode on: fine */
    rc = load_text(&c, "ladder = ( { name = \"src\"; passthrough = true; } );"
                       "\ntranscode = 1;\n", err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
}
END_TEST

START_TEST(config_scalars)
{
    pd_config_t c;
    char err[256];
    int rc = load_text(&c, "transcode = 0;\nx264_preset = \"ultrafast\";\n"
                       "encoder_threads = 4;\ndecode_threads = 64;\n"
                       "shed_order = \"smallest\";\naudio_bitrate_kbps = 96;\n",
                       err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    ck_assert_int_eq(c.transcode, 0);
    ck_assert_str_eq(c.x264_preset, "ultrafast");
    ck_assert_int_eq(c.encoder_threads, 4);
    ck_assert_int_eq(c.decode_threads, 64);
    ck_assert_str_eq(c.shed_order, "smallest");
    ck_assert_int_eq(c.audio_bitrate_kbps, 96);
    ck_assert_int_eq(c.nrungs, 4); /* ladder untouched */
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);

    pd_config_defaults(&c);
    ck_assert_int_eq(pd_config_set(&c, "transcode=0", err, sizeof(err)),
                     PD_OK);
    ck_assert_int_eq(c.transcode, 0);
    ck_assert_int_eq(pd_config_set(&c, "x264_preset=placebo", err,
                                   sizeof(err)), PD_OK);
    ck_assert_str_eq(c.x264_preset, "placebo");
    ck_assert_int_eq(pd_config_set(&c, "shed_order=smallest", err,
                                   sizeof(err)), PD_OK);
    ck_assert_int_eq(pd_config_set(&c, "audio_bitrate_kbps=512", err,
                                   sizeof(err)), PD_OK);
    static const char *bad[] = {
        "transcode=2", "transcode=-1", "x264_preset=turbo",
        "x264_preset=VERYFAST", "x264_preset=", "encoder_threads=65",
        "decode_threads=-1", "shed_order=random", "audio_bitrate_kbps=31",
        "audio_bitrate_kbps=513", "shed_order=largestx",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(pd_config_set(&c, bad[i], err, sizeof(err)) ==
                      PD_EINVAL, "accepted --set %s", bad[i]);
        ck_assert_msg(strlen(err) > 0, "no message for %s", bad[i]);
    }
    ck_assert_str_eq(c.x264_preset, "placebo"); /* failures change nothing */
    err[0] = '\0';
    ck_assert_int_eq(pd_config_set(&c, "ladder=()", err, sizeof(err)),
                     PD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "config file only"));
    ck_assert_int_eq(c.nrungs, 4);

    /* validate catches a struct filled by code */
    pd_config_defaults(&c);
    snprintf(c.x264_preset, sizeof(c.x264_preset), "fastest");
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    pd_config_defaults(&c);
    c.audio_bitrate_kbps = 0;
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    pd_config_defaults(&c);
    c.ladder[1].height = 719;
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    pd_config_defaults(&c);
    c.nrungs = 0;
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    pd_config_defaults(&c);
    c.transcode = 0;
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
}
END_TEST

/* Every rejected ladder, with the line its message must name. */
START_TEST(config_ladder_errors)
{
#define R720 "name = \"720p\"; height = 720; bitrate_kbps = 2800; "
    static const struct {
        const char *text;
        int line;
    } bad[] = {
        {"ladder = ();\n", 1},
        {"ladder = 5;\n", 1},
        {"ladder = \"720p\";\n", 1},
        {"ladder = { name = \"a\"; passthrough = true; };\n", 1},
        {"ladder = ( 5 );\n", 1},
        {"ladder = (\n { height = 720; bitrate_kbps = 100; } );\n", 2},
        {"ladder = (\n { name = \"\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"720P\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"a b\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"a/b\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"abcdefghijabcdefghijabcdefghij12\"; "
         "passthrough = true; } );\n", 2},
        {"ladder = (\n { name = 5; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"index\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"init\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"init-7\"; passthrough = true; } );\n", 2},
        {"ladder = (\n { name = \"audio\"; passthrough = true; } );\n", 2},
        {"ladder = ( { name = \"a\"; passthrough = true; },\n"
         " { name = \"b\"; passthrough = true; } );\n", 2},
        {"ladder = ( { " R720 "},\n { " R720 "} );\n", 2},
        {"ladder = (\n { name = \"a\"; passthrough = 2; } );\n", 2},
        {"ladder = (\n { name = \"a\"; passthrough = true;\n"
         "   height = 720; } );\n", 3},
        {"ladder = (\n { name = \"a\"; bitrate_kbps = 100; } );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 720; } );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 721; bitrate_kbps = 100; "
         "} );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 14; bitrate_kbps = 100; "
         "} );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 4322; bitrate_kbps = 100; "
         "} );\n", 2},
        {"ladder = (\n { name = \"a\"; height = -720; bitrate_kbps = 100; "
         "} );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 99999999999; "
         "bitrate_kbps = 100; } );\n", 2},
        {"ladder = (\n { name = \"a\"; height = \"720\"; bitrate_kbps = 100;"
         " } );\n", 2},
        {"ladder = (\n { " R720 "fps = 241; } );\n", 2},
        {"ladder = (\n { " R720 "fps = -1; } );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 720; bitrate_kbps = 49; "
         "} );\n", 2},
        {"ladder = (\n { name = \"a\"; height = 720; bitrate_kbps = 100001; "
         "} );\n", 2},
        {"ladder = (\n { " R720 "maxrate_kbps = 2799; } );\n", 2},
        {"ladder = (\n { " R720 "bufsize_kbps = 9; } );\n", 2},
        {"ladder = (\n { " R720 "bufsize_kbps = -5; } );\n", 2},
        {"ladder = (\n { " R720 "profile = \"high10\"; } );\n", 2},
        {"ladder = (\n { " R720 "profile = 1; } );\n", 2},
        {"ladder = (\n { " R720 "level = \"1b\"; } );\n", 2},
        {"ladder = (\n { " R720 "level = \"3.3\"; } );\n", 2},
        {"ladder = (\n { " R720 "level = \"7\"; } );\n", 2},
        {"ladder = (\n { " R720 "level = \"3.\"; } );\n", 2},
        {"ladder = (\n { " R720 "level = \"31\"; } );\n", 2},
        {"ladder = (\n { " R720 "level = 33; } );\n", 2},
        {"ladder = (\n { " R720 "level = -31; } );\n", 2},
        {"ladder = (\n { " R720 "level = 3.15; } );\n", 2},
        {"ladder = (\n { " R720 "level = true; } );\n", 2},
        {"ladder = (\n { " R720 "\n  speed = 3; } );\n", 3},
        {"ladder = (\n { " R720 "nested = { a = 1; }; } );\n", 2},
    };
#undef R720
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pd_config_t c;
        char err[256];
        int rc = load_text(&c, bad[i].text, err, sizeof(err));
        ck_assert_msg(rc == PD_EINVAL, "accepted: %s", bad[i].text);
        char want[32];
        snprintf(want, sizeof(want), "line %d:", bad[i].line);
        ck_assert_msg(strstr(err, want) != NULL, "%s: message '%s' lacks %s",
                      bad[i].text, err, want);
        ck_assert_msg(strchr(err, '\n') == NULL, "multi-line: %s", err);
        /* a rejected ladder leaves the previous one */
        ck_assert_int_eq(c.nrungs, 4);
        ck_assert_str_eq(c.ladder[1].name, "720p");
    }
    /* messages say what is wrong */
    pd_config_t c;
    char err[256];
    load_text(&c, "ladder = (\n { name = \"a\"; height = 720; "
                  "bitrate_kbps = 100; color = 1; } );\n", err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "unknown ladder rung setting 'color'"));
    load_text(&c, "ladder = ( { name = \"a\"; passthrough = true; },\n"
                  "{ name = \"a\"; height = 720; bitrate_kbps = 100; } );\n",
              err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "'a' is used twice"));
}
END_TEST

START_TEST(config_ladder_too_many)
{
    char text[4096];
    size_t o = 0;
    o += (size_t)snprintf(text + o, sizeof(text) - o, "ladder = (\n");
    for (int i = 0; i <= PD_LADDER_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              " { name = \"r%d\"; height = %d; "
                              "bitrate_kbps = 500; }%s\n", i, 1000 - 100 * i,
                              i < PD_LADDER_MAX ? "," : "");
    snprintf(text + o, sizeof(text) - o, ");\n");
    pd_config_t c;
    char err[256];
    ck_assert_int_eq(load_text(&c, text, err, sizeof(err)), PD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "rungs"));
    ck_assert_ptr_nonnull(strstr(err, "line 1:"));
    /* exactly PD_LADDER_MAX is fine */
    char *last = strrchr(text, '{');
    ck_assert_ptr_nonnull(last);
    /* cut the last rung: "...},\n { last }\n);" -> "...}\n);" */
    char *comma = last;
    while (comma > text && *comma != ',')
        comma--;
    snprintf(comma, sizeof(text) - (size_t)(comma - text), "\n);\n");
    int rc = load_text(&c, text, err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    ck_assert_int_eq(c.nrungs, PD_LADDER_MAX);
}
END_TEST

static void print_to(const pd_config_t *c, char *buf, size_t len)
{
    FILE *f = fmemopen(buf, len, "w");
    ck_assert_ptr_nonnull(f);
    pd_config_print(c, f);
    ck_assert(!ferror(f));
    fclose(f);
}

/* print -> load -> the same struct (and the same text). */
static void round_trip(const pd_config_t *a)
{
    static char t1[16384], t2[16384];
    memset(t1, 0, sizeof(t1));
    memset(t2, 0, sizeof(t2));
    print_to(a, t1, sizeof(t1) - 1);
    pd_config_t b;
    char err[256];
    int rc = load_text(&b, t1, err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s\n%s", err, t1);
    ck_assert_int_eq(b.nrungs, a->nrungs);
    for (int i = 0; i < a->nrungs; i++) {
        const pd_rung_t *x = &a->ladder[i], *y = &b.ladder[i];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->passthrough, y->passthrough);
        if (x->passthrough)
            continue;
        ck_assert_int_eq(x->height, y->height);
        ck_assert_int_eq(x->fps, y->fps);
        ck_assert_int_eq(x->bitrate_kbps, y->bitrate_kbps);
        ck_assert_int_eq(x->maxrate_kbps, y->maxrate_kbps);
        ck_assert_int_eq(x->bufsize_kbps, y->bufsize_kbps);
        ck_assert_str_eq(x->profile, y->profile);
        ck_assert_int_eq(x->level, y->level);
    }
    ck_assert_int_eq(b.transcode, a->transcode);
    ck_assert_str_eq(b.x264_preset, a->x264_preset);
    ck_assert_int_eq(b.encoder_threads, a->encoder_threads);
    ck_assert_int_eq(b.decode_threads, a->decode_threads);
    ck_assert_str_eq(b.shed_order, a->shed_order);
    ck_assert_int_eq(b.audio_bitrate_kbps, a->audio_bitrate_kbps);
    ck_assert_int_eq(b.rtmp_port, a->rtmp_port);
    ck_assert_int_eq(b.log_level, a->log_level);
    print_to(&b, t2, sizeof(t2) - 1);
    ck_assert_str_eq(t1, t2);
}

START_TEST(config_print_round_trip)
{
    pd_config_t a;
    char err[256];
    pd_config_defaults(&a);
    round_trip(&a);
    char t[16384] = "";
    print_to(&a, t, sizeof(t) - 1);
    ck_assert_ptr_nonnull(strstr(t, "transcode = 1;"));
    ck_assert_ptr_nonnull(strstr(t, "x264_preset = \"veryfast\";"));
    ck_assert_ptr_nonnull(strstr(t, "{ name = \"source\"; passthrough = true; }"));
    ck_assert_ptr_nonnull(strstr(t, "level = \"auto\";"));

    int rc = load_text(&a,
        "transcode = 0; x264_preset = \"slow\"; encoder_threads = 3;\n"
        "decode_threads = 2; shed_order = \"smallest\";\n"
        "audio_bitrate_kbps = 64; rtmp_port = 0;\n"
        "ladder = ( { name = \"hd\"; height = 1080; fps = 60;\n"
        "  bitrate_kbps = 6000; maxrate_kbps = 6500; bufsize_kbps = 3000;\n"
        "  profile = \"high\"; level = \"4.2\"; },\n"
        "  { name = \"mid\"; height = 540; bitrate_kbps = 1800; level = 40; },\n"
        "  { name = \"pass\"; passthrough = true; },\n"
        "  { name = \"low\"; height = 240; bitrate_kbps = 400;\n"
        "    profile = \"baseline\"; level = \"1.3\"; } );\n",
        err, sizeof(err));
    ck_assert_msg(rc == PD_OK, "%s", err);
    round_trip(&a);
    print_to(&a, t, sizeof(t) - 1);
    ck_assert_ptr_nonnull(strstr(t, "level = \"4.2\";"));
    ck_assert_ptr_nonnull(strstr(t, "level = \"4\";"));
    ck_assert_ptr_nonnull(strstr(t, "level = \"1.3\";"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ladder");
    TCase *tc = tcase_create("ladder");
    tcase_add_test(tc, select_1080p);
    tcase_add_test(tc, select_720p_equal_stays);
    tcase_add_test(tc, select_small_sources);
    tcase_add_test(tc, select_odd_sizes);
    tcase_add_test(tc, select_portrait);
    tcase_add_test(tc, select_square);
    tcase_add_test(tc, select_anamorphic);
    tcase_add_test(tc, select_frame_rates);
    tcase_add_test(tc, select_transcode_off);
    tcase_add_test(tc, select_no_passthrough_small_source);
    tcase_add_test(tc, select_duplicates_and_order);
    tcase_add_test(tc, select_resolves_zeros);
    tcase_add_test(tc, select_hostile);
    tcase_add_test(tc, levels_table);
    tcase_add_test(tc, config_defaults);
    tcase_add_test(tc, config_ladder_valid);
    tcase_add_test(tc, config_scalars);
    tcase_add_test(tc, config_ladder_errors);
    tcase_add_test(tc, config_ladder_too_many);
    tcase_add_test(tc, config_print_round_trip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
