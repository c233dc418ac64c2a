/*
 * tests/unit/test_playlist.c - playlist rendering from a synthetic index:
 * full, delta and ended media playlists and the multivariant playlist,
 * checked line by line against the rulebook's tag order and formats.
 */
#include "core/buf.h"
#include "core/err.h"
#include "packager/pkg_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-11-27T05:43:54.123Z */
#define PDT0 1795758234123000LL

static char *render(const pl_media_t *m, bool delta)
{
    pd_buf_t *b = NULL;
    ck_assert_int_eq(pl_render_media(m, delta, &b), PD_OK);
    ck_assert_ptr_nonnull(b);
    char *s = malloc(b->len + 1);
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    pd_buf_unref(&b);
    return s;
}

/* Compares text with the expected lines, one by one. */
static void expect_lines(const char *text, const char *const *lines)
{
    const char *p = text;
    int i = 0;
    for (; lines[i]; i++) {
        const char *nl = strchr(p, '\n');
        ck_assert_msg(nl != NULL, "missing line %d: %s", i, lines[i]);
        size_t n = (size_t)(nl - p);
        char got[512];
        ck_assert_uint_lt(n, sizeof(got));
        memcpy(got, p, n);
        got[n] = '\0';
        ck_assert_msg(strcmp(got, lines[i]) == 0, "line %d: got '%s' want '%s'",
                      i, got, lines[i]);
        p = nl + 1;
    }
    ck_assert_msg(*p == '\0', "extra text after line %d: %s", i, p);
}

static const pl_part_t parts6[6] = {
    {0.334, true, false},  {0.333, false, false}, {0.333, false, false},
    {0.334, false, false}, {0.333, false, false}, {0.333, false, false},
};

/* segments 10..12 complete (2 s), 13 in progress with 2 parts */
static void fill_basic(pl_seg_t *segs, pl_media_t *m, pl_report_t *rep)
{
    memset(segs, 0, 4 * sizeof(*segs));
    for (int i = 0; i < 3; i++) {
        segs[i].msn = 10 + i;
        segs[i].complete = true;
        segs[i].dur = 2.0;
        segs[i].pdt_us = PDT0 + i * 2000000LL;
        segs[i].init_id = 10;
    }
    segs[2].parts = parts6;
    segs[2].nparts = 6;
    segs[3].msn = 13;
    segs[3].init_id = 10;
    segs[3].pdt_us = PDT0 + 6000000LL;
    segs[3].parts = parts6;
    segs[3].nparts = 2;
    rep[0].rendition = "audio";
    rep[0].last_msn = 13;
    rep[0].last_part = 1;
    memset(m, 0, sizeof(*m));
    m->target_s = 2;
    m->part_target_ms = 334;
    m->disc_seq = 0;
    m->segs = segs;
    m->nsegs = 4;
    m->hint_msn = 13;
    m->hint_part = 2;
    m->reports = rep;
    m->nreports = 1;
}

START_TEST(media_full_order)
{
    pl_seg_t segs[4];
    pl_media_t m;
    pl_report_t rep[1];
    fill_basic(segs, &m, rep);
    char *t = render(&m, false);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:6", /* C6: MAP needs 6, nothing here needs more */
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:10",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,"
        "PART-HOLD-BACK=1.002,HOLD-BACK=6",
        "#EXT-X-PART-INF:PART-TARGET=0.334",
        "#EXT-X-MAP:URI=\"init-10.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:54.123Z",
        "#EXTINF:2.00000,",
        "10.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:56.123Z",
        "#EXTINF:2.00000,",
        "11.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:58.123Z",
        "#EXT-X-PART:DURATION=0.33400,URI=\"12.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.1.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.2.m4s\"",
        "#EXT-X-PART:DURATION=0.33400,URI=\"12.3.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.4.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.5.m4s\"",
        "#EXTINF:2.00000,",
        "12.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:00.123Z",
        "#EXT-X-PART:DURATION=0.33400,URI=\"13.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.33300,URI=\"13.1.m4s\"",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"13.2.m4s\"",
        "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=13,"
        "LAST-PART=1",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

START_TEST(media_discontinuity_new_map)
{
    pl_seg_t segs[4];
    pl_media_t m;
    pl_report_t rep[1];
    fill_basic(segs, &m, rep);
    segs[0].discontinuity = true; /* first listed one carries the tag */
    m.disc_seq = 4;
    segs[2].discontinuity = true;
    segs[2].init_id = 12;
    segs[3].init_id = 12;
    m.nreports = 0;
    char *t = render(&m, false);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:10",
        "#EXT-X-DISCONTINUITY-SEQUENCE:4",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,"
        "PART-HOLD-BACK=1.002,HOLD-BACK=6",
        "#EXT-X-PART-INF:PART-TARGET=0.334",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-MAP:URI=\"init-10.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:54.123Z",
        "#EXTINF:2.00000,",
        "10.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:56.123Z",
        "#EXTINF:2.00000,",
        "11.m4s",
        /* tags of segment 12 precede its first PART */
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-MAP:URI=\"init-12.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:43:58.123Z",
        "#EXT-X-PART:DURATION=0.33400,URI=\"12.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.1.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.2.m4s\"",
        "#EXT-X-PART:DURATION=0.33400,URI=\"12.3.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.4.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.5.m4s\"",
        "#EXTINF:2.00000,",
        "12.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:00.123Z",
        "#EXT-X-PART:DURATION=0.33400,URI=\"13.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.33300,URI=\"13.1.m4s\"",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"13.2.m4s\"",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

/* 10 complete 2 s segments (msn 1..10), TD 2: skip boundary 12 s */
static void fill_long(pl_seg_t *segs, pl_media_t *m)
{
    memset(segs, 0, 11 * sizeof(*segs));
    for (int i = 0; i < 10; i++) {
        segs[i].msn = 1 + i;
        segs[i].complete = true;
        segs[i].dur = 2.0;
        segs[i].pdt_us = PDT0 + i * 2000000LL;
        segs[i].init_id = i >= 5 ? 6 : 1;
        segs[i].discontinuity = i == 5;
    }
    segs[9].parts = parts6;
    segs[9].nparts = 6;
    segs[10].msn = 11;
    segs[10].pdt_us = PDT0 + 20000000LL;
    segs[10].init_id = 6;
    memset(m, 0, sizeof(*m));
    m->target_s = 2;
    m->part_target_ms = 334;
    m->segs = segs;
    m->nsegs = 11; /* in-progress 11 has no part yet: only the hint */
    m->hint_msn = 11;
    m->hint_part = 0;
}

START_TEST(media_delta_skip)
{
    pl_seg_t segs[11];
    pl_media_t m;
    fill_long(segs, &m);
    /* ends 2,4,..,20; skipped: end more than 12 s before 20 -> 2,4,6 */
    ck_assert_int_eq(pl_skip_count(&m), 3);
    char *t = render(&m, true);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,"
        "PART-HOLD-BACK=1.002,HOLD-BACK=6",
        "#EXT-X-PART-INF:PART-TARGET=0.334",
        "#EXT-X-SKIP:SKIPPED-SEGMENTS=3",
        "#EXT-X-MAP:URI=\"init-1.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:00.123Z",
        "#EXTINF:2.00000,",
        "4.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:02.123Z",
        "#EXTINF:2.00000,",
        "5.m4s",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-MAP:URI=\"init-6.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:04.123Z",
        "#EXTINF:2.00000,",
        "6.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:06.123Z",
        "#EXTINF:2.00000,",
        "7.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:08.123Z",
        "#EXTINF:2.00000,",
        "8.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:10.123Z",
        "#EXTINF:2.00000,",
        "9.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-27T05:44:12.123Z",
        "#EXT-X-PART:DURATION=0.33400,URI=\"10.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.33300,URI=\"10.1.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"10.2.m4s\"",
        "#EXT-X-PART:DURATION=0.33400,URI=\"10.3.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"10.4.m4s\"",
        "#EXT-X-PART:DURATION=0.33300,URI=\"10.5.m4s\"",
        "#EXTINF:2.00000,",
        "10.m4s",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"11.0.m4s\"",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

START_TEST(media_delta_nothing_to_skip)
{
    pl_seg_t segs[4];
    pl_media_t m;
    pl_report_t rep[1];
    fill_basic(segs, &m, rep);
    ck_assert_int_eq(pl_skip_count(&m), 0);
    char *t = render(&m, true);
    ck_assert_ptr_nonnull(strstr(t, "#EXT-X-PART-INF:PART-TARGET=0.334\n"
                                    "#EXT-X-SKIP:SKIPPED-SEGMENTS=0\n"
                                    "#EXT-X-MAP:URI=\"init-10.mp4\"\n"));
    /* a delta update has EXT-X-SKIP: VERSION 9 (K2) */
    ck_assert_ptr_nonnull(strstr(t, "#EXTM3U\n#EXT-X-VERSION:9\n"));
    free(t);
}
END_TEST

START_TEST(media_ended)
{
    pl_seg_t segs[11];
    pl_media_t m;
    fill_long(segs, &m);
    m.nsegs = 10;
    m.ended = true;
    pl_report_t rep = {"audio", 10, 5};
    m.reports = &rep;
    m.nreports = 1;
    ck_assert_int_eq(pl_skip_count(&m), 0);
    char *full = render(&m, false);
    char *delta = render(&m, true); /* skip is ignored once ended */
    ck_assert_str_eq(full, delta);
    ck_assert_ptr_null(strstr(full, "PRELOAD-HINT"));
    ck_assert_ptr_null(strstr(full, "RENDITION-REPORT"));
    ck_assert_ptr_null(strstr(full, "EXT-X-SKIP"));
    size_t n = strlen(full);
    const char *tail = "10.m4s\n#EXT-X-ENDLIST\n";
    ck_assert_uint_ge(n, strlen(tail));
    ck_assert_str_eq(full + n - strlen(tail), tail);
    free(full);
    free(delta);
}
END_TEST

START_TEST(media_number_formats)
{
    pl_part_t p[2] = {{0.0000001, true, false}, {0.19999999, false, false}};
    pl_seg_t seg = {.msn = 1, .complete = true, .dur = 0.2, .pdt_us = -1,
                    .parts = p, .nparts = 2};
    pl_media_t m = {.target_s = 1, .part_target_ms = 200, .segs = &seg,
                    .nsegs = 1, .hint_msn = 2, .hint_part = 0};
    char *t = render(&m, false);
    ck_assert_ptr_nonnull(strstr(t, "CAN-SKIP-UNTIL=6,PART-HOLD-BACK=0.6,"
                                    "HOLD-BACK=3\n"));
    ck_assert_ptr_nonnull(strstr(t, "#EXT-X-PART-INF:PART-TARGET=0.2\n"));
    ck_assert_ptr_nonnull(strstr(t, "DURATION=0.00000,"));
    ck_assert_ptr_nonnull(strstr(t, "DURATION=0.20000,"));
    ck_assert_ptr_null(strstr(t, "e-"));
    ck_assert_ptr_null(strstr(t, "PROGRAM-DATE-TIME")); /* none given */
    for (const char *c = t; *c; c++)
        ck_assert(*c == '\n' || (*c >= 0x20 && *c < 0x7f));
    free(t);
}
END_TEST

START_TEST(media_invalid_input)
{
    pd_buf_t *b = NULL;
    pl_media_t m = {.target_s = 2, .part_target_ms = 334};
    ck_assert_int_eq(pl_render_media(&m, false, &b), PD_EINVAL);
    ck_assert_ptr_null(b);
    pl_seg_t seg = {.msn = 1, .complete = true, .dur = 2};
    m.segs = &seg;
    m.nsegs = 1;
    m.target_s = 0;
    ck_assert_int_eq(pl_render_media(&m, false, &b), PD_EINVAL);
    ck_assert_int_eq(pl_render_media(NULL, false, &b), PD_EINVAL);
}
END_TEST

START_TEST(pdt_format)
{
    char buf[40];
    ck_assert_int_eq(pl_format_pdt(PDT0, buf, sizeof(buf)), PD_OK);
    ck_assert_str_eq(buf, "2026-11-27T05:43:54.123Z");
    ck_assert_int_eq(pl_format_pdt(0, buf, sizeof(buf)), PD_OK);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    ck_assert_int_eq(pl_format_pdt(PDT0, buf, 10), PD_EINVAL);
}
END_TEST

static char *render_mv(const pl_mv_t *mv)
{
    pd_buf_t *b = NULL;
    ck_assert_int_eq(pl_render_multivariant(mv, &b), PD_OK);
    char *s = malloc(b->len + 1);
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    pd_buf_unref(&b);
    return s;
}

START_TEST(multivariant_av)
{
    pl_variant_t var[] = {
        {.name = "source", .codecs = "avc1.64001f", .width = 1280,
         .height = 720, .fps = 29.97, .bandwidth = 2500000,
         .avg_bandwidth = 2000000},
        {.name = "360p", .codecs = "avc1.4d401e", .width = 640,
         .height = 360, .fps = 30, .bandwidth = 900000,
         .avg_bandwidth = 850000},
    };
    pl_mv_t mv = {.variants = var, .nvariants = 2, .has_audio = true,
                  .audio_codecs = "mp4a.40.2", .audio_channels = 2,
                  .independent = true};
    char *t = render_mv(&mv);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\","
        "LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\","
        "URI=\"audio/index.m3u8\"",
        "#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,"
        "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,"
        "FRAME-RATE=29.970,AUDIO=\"audio\"",
        "source/index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=850000,"
        "CODECS=\"avc1.4d401e,mp4a.40.2\",RESOLUTION=640x360,"
        "FRAME-RATE=30.000,AUDIO=\"audio\"",
        "360p/index.m3u8",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

START_TEST(multivariant_video_only)
{
    pl_variant_t var = {.name = "video", .codecs = "avc1.42c01e",
                        .width = 320, .height = 240, .fps = 25,
                        .bandwidth = 300000, .avg_bandwidth = 250000};
    pl_mv_t mv = {.variants = &var, .nvariants = 1, .independent = true};
    char *t = render_mv(&mv);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=250000,"
        "CODECS=\"avc1.42c01e\",RESOLUTION=320x240,FRAME-RATE=25.000",
        "video/index.m3u8",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

START_TEST(multivariant_audio_only)
{
    pl_mv_t mv = {.has_audio = true, .audio_codecs = "mp4a.40.2",
                  .bandwidth = 130000, .avg_bandwidth = 128000,
                  .independent = true};
    char *t = render_mv(&mv);
    static const char *const want[] = {
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,"
        "CODECS=\"mp4a.40.2\"",
        "audio/index.m3u8",
        NULL,
    };
    expect_lines(t, want);
    free(t);
}
END_TEST

START_TEST(media_gap_parts_and_segments)
{
    /* 10 real, 11 a gap segment, 12 real after a gap, 13 in progress */
    static const pl_part_t gp[3] = {{0.334, false, true},
                                    {0.334, false, true},
                                    {0.332, false, true}};
    static const pl_part_t mixed[3] = {{0.334, false, true},
                                       {0.333, true, false},
                                       {0.333, false, false}};
    pl_seg_t segs[4];
    pl_media_t m;
    pl_report_t rep[1];
    fill_basic(segs, &m, rep);
    segs[1].gap = true;
    segs[1].dur = 1.0;
    segs[1].parts = gp;
    segs[1].nparts = 3;
    segs[2].dur = 1.0;
    segs[2].parts = mixed;
    segs[2].nparts = 3;
    m.nreports = 0;
    char *t = render(&m, false);
    ck_assert_ptr_nonnull(strstr(t,
        "#EXT-X-PART:DURATION=0.33400,URI=\"11.0.m4s\",GAP=YES\n"
        "#EXT-X-PART:DURATION=0.33400,URI=\"11.1.m4s\",GAP=YES\n"
        "#EXT-X-PART:DURATION=0.33200,URI=\"11.2.m4s\",GAP=YES\n"
        "#EXT-X-GAP\n#EXTINF:1.00000,\n11.m4s\n"));
    ck_assert_ptr_nonnull(strstr(t,
        "#EXT-X-PART:DURATION=0.33400,URI=\"12.0.m4s\",GAP=YES\n"
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.1.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.33300,URI=\"12.2.m4s\"\n"
        "#EXTINF:1.00000,\n12.m4s\n"));
    /* only the gap segment carries EXT-X-GAP */
    const char *g = strstr(t, "#EXT-X-GAP");
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_null(strstr(g + 1, "#EXT-X-GAP"));
    free(t);
}
END_TEST

START_TEST(media_preload_hint_map)
{
    pl_seg_t segs[4];
    pl_media_t m;
    pl_report_t rep[1];
    fill_basic(segs, &m, rep);
    m.nsegs = 3; /* segment 13 begun with a new init, nothing published */
    m.hint_msn = 13;
    m.hint_part = 0;
    m.hint_map_id = 13;
    m.nreports = 0;
    char *t = render(&m, false);
    size_t n = strlen(t);
    const char *tail = "12.m4s\n"
                       "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"13.0.m4s\"\n"
                       "#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init-13.mp4\"\n";
    ck_assert_uint_ge(n, strlen(tail));
    ck_assert_str_eq(t + n - strlen(tail), tail);
    free(t);
    m.hint_map_id = 0;
    t = render(&m, false);
    ck_assert_ptr_null(strstr(t, "TYPE=MAP"));
    free(t);
}
END_TEST

START_TEST(multivariant_not_independent)
{
    /* a segment began at a non-keyframe: no EXT-X-INDEPENDENT-SEGMENTS */
    pl_variant_t var = {.name = "video", .codecs = "avc1.42c01e",
                        .bandwidth = 300000, .avg_bandwidth = 250000};
    pl_mv_t mv = {.variants = &var, .nvariants = 1, .has_audio = true,
                  .audio_codecs = "mp4a.40.2", .audio_channels = 1,
                  .independent = false};
    char *t = render_mv(&mv);
    ck_assert_ptr_null(strstr(t, "INDEPENDENT-SEGMENTS"));
    ck_assert_ptr_nonnull(strstr(t, "AUTOSELECT=YES,CHANNELS=\"1\",URI="));
    free(t);
    mv.audio_channels = 0; /* unknown: omitted */
    t = render_mv(&mv);
    ck_assert_ptr_null(strstr(t, "CHANNELS"));
    free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("playlist");
    TCase *tc = tcase_create("media");
    tcase_add_test(tc, media_full_order);
    tcase_add_test(tc, media_discontinuity_new_map);
    tcase_add_test(tc, media_delta_skip);
    tcase_add_test(tc, media_delta_nothing_to_skip);
    tcase_add_test(tc, media_ended);
    tcase_add_test(tc, media_number_formats);
    tcase_add_test(tc, media_invalid_input);
    tcase_add_test(tc, pdt_format);
    tcase_add_test(tc, media_gap_parts_and_segments);
    tcase_add_test(tc, media_preload_hint_map);
    suite_add_tcase(s, tc);
    TCase *mv = tcase_create("multivariant");
    tcase_add_test(mv, multivariant_av);
    tcase_add_test(mv, multivariant_video_only);
    tcase_add_test(mv, multivariant_audio_only);
    tcase_add_test(mv, multivariant_not_independent);
    suite_add_tcase(s, mv);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
