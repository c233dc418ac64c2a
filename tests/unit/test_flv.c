/*
 * tests/unit/test_flv.c - FLV audio/video tag headers of RTMP media
 * messages (AVC sequence header, NALUs with signed composition offsets,
 * end of sequence, AAC config and raw frames, other codecs, Enhanced RTMP,
 * truncation, random bytes) and 32-bit timestamp unwrapping.
 */
#include "core/err.h"
#include "ingest/ingest_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(avc_sequence_header)
{
    /* key frame, AVC, packet type 0, cts 0, then an avcC */
    static const uint8_t t[] = {0x17, 0x00, 0,    0,    0,   0x01,
                                0x64, 0x00, 0x1E, 0xFF, 0xE1};
    flv_video_t v;
    ck_assert_int_eq(flv_parse_video(t, sizeof(t), &v), 0);
    ck_assert(!v.ex_header);
    ck_assert_int_eq(v.frame_type, FLV_FRAME_KEY);
    ck_assert_int_eq(v.codec_id, FLV_CODEC_H264);
    ck_assert_int_eq(v.packet_type, FLV_AVC_SEQ_HEADER);
    ck_assert_int_eq(v.cts_ms, 0);
    ck_assert_ptr_eq(v.data, t + 5);
    ck_assert_uint_eq(v.len, 6);
    ck_assert_uint_eq(v.data[0], 1); /* configurationVersion */
}
END_TEST

START_TEST(avc_nalu_cts_sign)
{
    static const struct {
        uint8_t b[3];
        int32_t want;
    } cases[] = {
        {{0x00, 0x00, 0x21}, 33},      {{0xFF, 0xFF, 0xDF}, -33},
        {{0x7F, 0xFF, 0xFF}, 8388607}, {{0x80, 0x00, 0x00}, -8388608},
        {{0xFF, 0xFF, 0xFF}, -1},      {{0x00, 0x00, 0x00}, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t t[] = {
            0x27, 0x01, cases[i].b[0], cases[i].b[1], cases[i].b[2], 0, 0,
            0,    1,    0x41};
        flv_video_t v;
        ck_assert_int_eq(flv_parse_video(t, sizeof(t), &v), 0);
        ck_assert_int_eq(v.frame_type, 2); /* inter frame */
        ck_assert_int_eq(v.packet_type, FLV_AVC_NALU);
        ck_assert_int_eq(v.cts_ms, cases[i].want);
        ck_assert_uint_eq(v.len, 5);
        ck_assert_uint_eq(v.data[4], 0x41);
    }
}
END_TEST

START_TEST(avc_end_of_sequence_and_command)
{
    static const uint8_t eos[] = {0x17, 0x02, 0, 0, 0};
    flv_video_t v;
    ck_assert_int_eq(flv_parse_video(eos, sizeof(eos), &v), 0);
    ck_assert_int_eq(v.packet_type, FLV_AVC_END_OF_SEQ);
    ck_assert_uint_eq(v.len, 0);
    /* a video info/command frame may be shorter than an AVC header */
    static const uint8_t cmd[] = {0x57, 0x00};
    ck_assert_int_eq(flv_parse_video(cmd, sizeof(cmd), &v), 0);
    ck_assert_int_eq(v.frame_type, FLV_FRAME_COMMAND);
    ck_assert_int_eq(v.packet_type, -1);
}
END_TEST

START_TEST(video_truncated)
{
    static const uint8_t t[] = {0x17, 0x01, 0x00, 0x00, 0x21};
    flv_video_t v;
    ck_assert_int_eq(flv_parse_video(t, 0, &v), PD_EPROTO);
    for (size_t n = 1; n < sizeof(t); n++) {
        uint8_t *c = malloc(n); /* exact size: ASan sees overreads */
        memcpy(c, t, n);
        ck_assert_int_eq(flv_parse_video(c, n, &v), PD_EPROTO);
        free(c);
    }
    ck_assert_int_eq(flv_parse_video(t, sizeof(t), &v), 0);
    ck_assert_uint_eq(v.len, 0);
}
END_TEST

START_TEST(video_other_codecs)
{
    static const uint8_t vp6[] = {0x14, 0xAA, 0xBB};
    flv_video_t v;
    ck_assert_int_eq(flv_parse_video(vp6, sizeof(vp6), &v), 0);
    ck_assert_int_eq(v.codec_id, 4);
    ck_assert_int_eq(v.packet_type, -1);
    ck_assert_uint_eq(v.len, 2);
    static const uint8_t h263[] = {0x22};
    ck_assert_int_eq(flv_parse_video(h263, 1, &v), 0);
    ck_assert_int_eq(v.codec_id, 2);
    ck_assert_uint_eq(v.len, 0);
    /* Enhanced RTMP: IsExHeader, key frame, coded frames, FourCC hvc1 */
    static const uint8_t ex[] = {0x91, 'h', 'v', 'c', '1', 0, 0, 0};
    ck_assert_int_eq(flv_parse_video(ex, sizeof(ex), &v), 0);
    ck_assert(v.ex_header);
    ck_assert_uint_eq(v.fourcc, 0x68766331u);
    ck_assert_int_eq(v.frame_type, 1);
    ck_assert_int_eq(v.packet_type, 1);
    static const uint8_t exshort[] = {0x90, 'h'};
    ck_assert_int_eq(flv_parse_video(exshort, sizeof(exshort), &v), 0);
    ck_assert(v.ex_header);
    ck_assert_uint_eq(v.fourcc, 0);
}
END_TEST

START_TEST(aac)
{
    static const uint8_t cfg[] = {0xAF, 0x00, 0x11, 0x90};
    flv_audio_t a;
    ck_assert_int_eq(flv_parse_audio(cfg, sizeof(cfg), &a), 0);
    ck_assert_int_eq(a.sound_format, FLV_SOUND_AAC);
    ck_assert_int_eq(a.packet_type, FLV_AAC_SEQ_HEADER);
    ck_assert_ptr_eq(a.data, cfg + 2);
    ck_assert_uint_eq(a.len, 2);
    static const uint8_t raw[] = {0xAF, 0x01, 0x21, 0x10, 0x04};
    ck_assert_int_eq(flv_parse_audio(raw, sizeof(raw), &a), 0);
    ck_assert_int_eq(a.packet_type, FLV_AAC_RAW);
    ck_assert_uint_eq(a.len, 3);
    /* truncated */
    ck_assert_int_eq(flv_parse_audio(raw, 0, &a), PD_EPROTO);
    uint8_t one = 0xAF;
    ck_assert_int_eq(flv_parse_audio(&one, 1, &a), PD_EPROTO);
    /* header only: an empty raw frame parses (the server skips it) */
    ck_assert_int_eq(flv_parse_audio(raw, 2, &a), 0);
    ck_assert_uint_eq(a.len, 0);
}
END_TEST

START_TEST(audio_other_codecs)
{
    static const uint8_t mp3[] = {0x2F, 0xFF, 0xFB};
    flv_audio_t a;
    ck_assert_int_eq(flv_parse_audio(mp3, sizeof(mp3), &a), 0);
    ck_assert_int_eq(a.sound_format, 2);
    ck_assert_int_eq(a.packet_type, -1);
    ck_assert_uint_eq(a.len, 2);
    uint8_t speex = 0xB6;
    ck_assert_int_eq(flv_parse_audio(&speex, 1, &a), 0);
    ck_assert_int_eq(a.sound_format, 11);
    ck_assert_uint_eq(a.len, 0);
}
END_TEST

START_TEST(timestamp_unwrap)
{
    flv_ts_t u = {0};
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 1000), 1000);
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 1033), 1033);
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 1020), 1020); /* small step back */
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 0x7FFFFFFF), 0x7FFFFFFFLL);
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 0xFFFFFFF0u), 0xFFFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 5), 0x100000005LL); /* wrapped */
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 0xFFFFFFFEu),
                     0xFFFFFFFELL); /* back */
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 40), 0x100000028LL);
    /* 31-bit wraps (ffmpeg's FLV muxer keeps 31 bits) go forward too */
    flv_ts_t f = {0};
    ck_assert_int_eq(flv_ts_unwrap(&f, NULL, 0x7FFFFFF0u), 0x7FFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&f, NULL, 0x10), 0x80000010LL);
    ck_assert_int_eq(flv_ts_unwrap(&f, NULL, 0x7FFFFFFFu), 0xFFFFFFFFLL);
    ck_assert_int_eq(flv_ts_unwrap(&f, NULL, 0x20), 0x100000020LL);
    /* keeps going over many wraps */
    flv_ts_t w = {0};
    int64_t want = 0;
    uint32_t t = 0;
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(flv_ts_unwrap(&w, NULL, t), want);
        t += 0x10000001u; /* big forward steps, < 2^31 */
        want += 0x10000001LL;
    }
    ck_assert_int_gt(want, 0x100000000LL * 100);
}
END_TEST

START_TEST(timestamp_shared_reference)
{
    /* audio starts just before the 32-bit wrap, video just after it: one
     * time line, not 2^32 ms apart */
    flv_ts_t a = {0}, v = {0};
    ck_assert_int_eq(flv_ts_unwrap(&a, &v, 0xFFFFFFF0u), 0xFFFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&v, &a, 0x10), 0x100000010LL);
    ck_assert_int_eq(flv_ts_unwrap(&a, &v, 0x05), 0x100000005LL);
    ck_assert_int_eq(flv_ts_unwrap(&v, &a, 0x30), 0x100000030LL);
    /* and the other way round: video first after the wrap, audio's first
     * value just before it stays before it */
    flv_ts_t a2 = {0}, v2 = {0};
    ck_assert_int_eq(flv_ts_unwrap(&v2, &a2, 0x10), 0x10);
    ck_assert_int_eq(flv_ts_unwrap(&a2, &v2, 0xFFFFFFF0u), -0x10);
    ck_assert_int_eq(flv_ts_unwrap(&a2, &v2, 0x20), 0x20);
    /* ffmpeg's 31-bit wrap between the tracks' first values */
    flv_ts_t a3 = {0}, v3 = {0};
    ck_assert_int_eq(flv_ts_unwrap(&a3, &v3, 0x7FFFFFF0u), 0x7FFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&v3, &a3, 0x10), 0x80000010LL);
    /* each track then goes on against its own history: video's 31-bit
     * wrap while audio is still before it stays a wrap */
    flv_ts_t a4 = {0}, v4 = {0};
    ck_assert_int_eq(flv_ts_unwrap(&v4, &a4, 0x7FFFFF00u), 0x7FFFFF00LL);
    ck_assert_int_eq(flv_ts_unwrap(&a4, &v4, 0x7FFFFF10u), 0x7FFFFF10LL);
    ck_assert_int_eq(flv_ts_unwrap(&v4, &a4, 0x00000020u), 0x80000020LL);
    ck_assert_int_eq(flv_ts_unwrap(&a4, &v4, 0x7FFFFFF0u), 0x7FFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&a4, &v4, 0x00000030u), 0x80000030LL);
    /* close starts stay close, either order */
    flv_ts_t a5 = {0}, v5 = {0};
    ck_assert_int_eq(flv_ts_unwrap(&v5, &a5, 1000), 1000);
    ck_assert_int_eq(flv_ts_unwrap(&a5, &v5, 980), 980);
}
END_TEST

START_TEST(random_tags)
{
    uint8_t b[64];
    uint32_t x = 7;
    for (int iter = 0; iter < 50000; iter++) {
        size_t len = (x = x * 1103515245u + 12345u) >> 16 & 31;
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
        flv_video_t v;
        if (flv_parse_video(b, len, &v) == 0) {
            ck_assert(v.data >= b && v.data + v.len <= b + len);
            ck_assert(v.cts_ms >= -8388608 && v.cts_ms <= 8388607);
        }
        flv_audio_t a;
        if (flv_parse_audio(b, len, &a) == 0)
            ck_assert(a.data >= b && a.data + a.len <= b + len);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("flv");
    TCase *t = tcase_create("flv");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, avc_sequence_header);
    tcase_add_test(t, avc_nalu_cts_sign);
    tcase_add_test(t, avc_end_of_sequence_and_command);
    tcase_add_test(t, video_truncated);
    tcase_add_test(t, video_other_codecs);
    tcase_add_test(t, aac);
    tcase_add_test(t, audio_other_codecs);
    tcase_add_test(t, timestamp_unwrap);
    tcase_add_test(t, timestamp_shared_reference);
    tcase_add_test(t, random_tags);
    suite_add_tcase(s, t);
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
