/*
 * tests/unit/test_rtmp_chunk.c - ingest's RTMP chunk stream parser and
 * writer: header types 0-3 and their timestamp deltas, 1/2/3-byte basic
 * headers, extended timestamps (also on type 3 continuations), wrapping
 * timestamps, Set Chunk Size and Abort, interleaved chunk streams, a real
 * ffmpeg capture, and hostile input (every split and truncation offset,
 * oversized messages, too many chunk streams, buffer exhaustion per
 * connection and across connections sharing one budget, random bytes).
 */
#include "core/err.h"
#include "ingest/ingest_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t ffmpeg_connect[153] = {
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x14, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x07, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x00, 0x3f,
    0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x61, 0x70,
    0x70, 0x02, 0x00, 0x04, 0x6c, 0x69, 0x76, 0x65, 0x00, 0x04, 0x74, 0x79,
    0x70, 0x65, 0x02, 0x00, 0x0a, 0x6e, 0x6f, 0x6e, 0x70, 0x72, 0x69, 0x76,
    0x61, 0x74, 0x65, 0x00, 0x08, 0x66, 0x6c, 0x61, 0x73, 0x68, 0x56, 0x65,
    0x72, 0x02, 0x00, 0x24, 0x46, 0x4d, 0x4c, 0x45, 0x2f, 0x33, 0x2e, 0x30,
    0x20, 0x28, 0x63, 0x6f, 0x6d, 0x70, 0x61, 0x74, 0x69, 0x62, 0x6c, 0x65,
    0x3b, 0x20, 0x4c, 0x61, 0x76, 0x66, 0x35, 0x39, 0x2e, 0x32, 0x37, 0x2e,
    0x31, 0x30, 0x30, 0x29, 0x00, 0x05, 0x74, 0x63, 0x55, 0x72, 0x6c, 0x02,
    0x00, 0x1b, 0x72, 0x74, 0x6d, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32, 0x37,
    0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x34, 0xc3, 0x36, 0x35, 0x37,
    0x37, 0x2f, 0x6c, 0x69, 0x76, 0x65, 0x00, 0x00, 0x09,
};

#define MAX_MSG (1024 * 1024)
#define MAX_CHUNK 65536

static uint32_t rng_state = 987654321;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* A message as the tests expect it, payload copied. */
typedef struct got_s {
    uint32_t csid, stream_id, ts, len;
    uint8_t type;
    uint8_t *payload;
} got_t;

#define MAX_GOT 256

typedef struct run_s {
    got_t m[MAX_GOT];
    int n;
    int rc; /* 0, or the error that ended the run */
} run_t;

static void run_free(run_t *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->m[i].payload);
    r->n = 0;
}

static void keep(run_t *r, const rtmp_msg_t *m)
{
    ck_assert_int_lt(r->n, MAX_GOT);
    got_t *g = &r->m[r->n++];
    g->csid = m->csid;
    g->stream_id = m->stream_id;
    g->ts = m->timestamp;
    g->len = m->len;
    g->type = m->type;
    g->payload = malloc(m->len ? m->len : 1);
    if (m->len)
        memcpy(g->payload, m->payload, m->len);
}

/* Feeds buf in pieces of at most `step` bytes, like a socket would,
 * keeping the unconsumed tail (exact-size copies so ASan catches reads
 * past the end). */
static void feed(rtmp_chunk_parser_t *p, const uint8_t *buf, size_t len,
                 size_t step, run_t *r)
{
    uint8_t *pend = NULL;
    size_t plen = 0, off = 0;
    r->rc = 0;
    while (off < len || plen) {
        size_t n = len - off < step ? len - off : step;
        uint8_t *data = malloc(plen + n + 1);
        if (plen)
            memcpy(data, pend, plen);
        memcpy(data + plen, buf + off, n);
        off += n;
        size_t dlen = plen + n, pos = 0;
        free(pend);
        pend = NULL;
        for (;;) {
            size_t used = 0;
            rtmp_msg_t m;
            int rc = rtmp_chunk_parse(p, data + pos, dlen - pos, &used, &m);
            ck_assert_uint_le(used, dlen - pos);
            pos += used;
            if (rc == 1) {
                keep(r, &m);
                continue;
            }
            if (rc < 0) {
                r->rc = rc;
                free(data);
                return;
            }
            break;
        }
        plen = dlen - pos;
        ck_assert_uint_lt(plen, RTMP_MAX_CHUNK_HEADER);
        if (plen) {
            pend = malloc(plen);
            memcpy(pend, data + pos, plen);
        }
        free(data);
        if (off == len)
            break; /* a truncated tail stays pending */
    }
    free(pend);
}

static void parse_all(const uint8_t *buf, size_t len, size_t step, run_t *r)
{
    rtmp_chunk_parser_t p;
    rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
    feed(&p, buf, len, step, r);
    rtmp_chunk_parser_free(&p);
}

/* Appends a message with the writer (type 0 + type 3 chunks). */
static size_t put_msg(uint8_t *out, size_t cap, uint32_t csid, uint8_t type,
                      uint32_t sid, uint32_t ts, const uint8_t *pl, size_t plen,
                      uint32_t chunk)
{
    int n = rtmp_chunk_write(out, cap, csid, type, sid, ts, pl, plen, chunk);
    ck_assert_int_gt(n, 0);
    return (size_t)n;
}

static void fill(uint8_t *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed + i * 7);
}

START_TEST(type0_single_and_multi_chunk)
{
    uint8_t pl[300], buf[1024];
    fill(pl, sizeof(pl), 1);
    size_t n =
        put_msg(buf, sizeof(buf), 4, RTMP_MSG_VIDEO, 1, 1000, pl, 100, 128);
    ck_assert_uint_eq(n, 12 + 100);
    n += put_msg(buf + n, sizeof(buf) - n, 4, RTMP_MSG_VIDEO, 1, 1033, pl, 300,
                 128);
    ck_assert_uint_eq(n, 112 + 12 + 300 + 2); /* two type 3 headers */
    run_t r = {0};
    parse_all(buf, n, n, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert_uint_eq(r.m[0].csid, 4);
    ck_assert_uint_eq(r.m[0].type, RTMP_MSG_VIDEO);
    ck_assert_uint_eq(r.m[0].stream_id, 1);
    ck_assert_uint_eq(r.m[0].ts, 1000);
    ck_assert_uint_eq(r.m[0].len, 100);
    ck_assert_mem_eq(r.m[0].payload, pl, 100);
    ck_assert_uint_eq(r.m[1].ts, 1033);
    ck_assert_uint_eq(r.m[1].len, 300);
    ck_assert_mem_eq(r.m[1].payload, pl, 300);
    run_free(&r);
}
END_TEST

/* Hand-made headers: type 0, then 1, 2 and 3 starting new messages. */
static size_t header_types_stream(uint8_t *b)
{
    size_t n = 0;
    /* type 0, csid 6: ts 1000, len 3, audio, stream 1 */
    static const uint8_t h0[] = {0x06, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x03, 0x08,
                                 0x01, 0x00, 0x00, 0x00, 'a',  'b',  'c'};
    memcpy(b + n, h0, sizeof(h0));
    n += sizeof(h0);
    /* type 1: delta 21, len 2, video */
    static const uint8_t h1[] = {0x46, 0x00, 0x00, 0x15, 0x00,
                                 0x00, 0x02, 0x09, 'd',  'e'};
    memcpy(b + n, h1, sizeof(h1));
    n += sizeof(h1);
    /* type 2: delta 40, same length/type */
    static const uint8_t h2[] = {0x86, 0x00, 0x00, 0x28, 'f', 'g'};
    memcpy(b + n, h2, sizeof(h2));
    n += sizeof(h2);
    /* type 3: everything repeats, delta 40 again */
    static const uint8_t h3[] = {0xC6, 'h', 'i'};
    memcpy(b + n, h3, sizeof(h3));
    n += sizeof(h3);
    return n;
}

START_TEST(header_types_and_deltas)
{
    uint8_t b[64];
    size_t n = header_types_stream(b);
    run_t r = {0};
    parse_all(b, n, n, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 4);
    ck_assert_uint_eq(r.m[0].ts, 1000);
    ck_assert_uint_eq(r.m[0].type, 8);
    ck_assert_uint_eq(r.m[1].ts, 1021);
    ck_assert_uint_eq(r.m[1].type, 9);
    ck_assert_uint_eq(r.m[1].len, 2);
    ck_assert_uint_eq(r.m[1].stream_id, 1); /* inherited */
    ck_assert_uint_eq(r.m[2].ts, 1061);
    ck_assert_uint_eq(r.m[3].ts, 1101);
    ck_assert_mem_eq(r.m[3].payload, "hi", 2);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(r.m[i].csid, 6);
    run_free(&r);
}
END_TEST

START_TEST(type3_after_type0_repeats_its_time)
{
    /* spec: a type 3 chunk after a type 0 uses the type 0 time as delta */
    static const uint8_t b[] = {0x05, 0x00, 0x00, 0x64, 0x00, 0x00, 0x01, 0x08,
                                0x01, 0x00, 0x00, 0x00, 'x',  0xC5, 'y'};
    run_t r = {0};
    parse_all(b, sizeof(b), sizeof(b), &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_uint_eq(r.m[0].ts, 100);
    ck_assert_uint_eq(r.m[1].ts, 200);
    run_free(&r);
}
END_TEST

START_TEST(basic_header_sizes)
{
    static const uint32_t ids[] = {2,   3,   63,  64,   65,    318,
                                   319, 320, 321, 1000, 65598, 65599};
    static const int sizes[] = {1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        uint8_t h[3];
        ck_assert_int_eq(rtmp_chunk_basic_header(h, 0, ids[i]), sizes[i]);
        uint8_t b[600], pl[200];
        fill(pl, sizeof(pl), (uint8_t)i);
        size_t n =
            put_msg(b, sizeof(b), ids[i], RTMP_MSG_AUDIO, 1, 5, pl, 200, 128);
        ck_assert_uint_eq(n, 2 * (size_t)sizes[i] + 11 + 200);
        run_t r = {0};
        parse_all(b, n, 7, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 1);
        ck_assert_uint_eq(r.m[0].csid, ids[i]);
        ck_assert_mem_eq(r.m[0].payload, pl, 200);
        run_free(&r);
    }
    uint8_t h[3];
    ck_assert_int_eq(rtmp_chunk_basic_header(h, 0, 1), PD_EINVAL);
    ck_assert_int_eq(rtmp_chunk_basic_header(h, 0, 65600), PD_EINVAL);
    ck_assert_int_eq(rtmp_chunk_basic_header(h, 4, 3), PD_EINVAL);
}
END_TEST

START_TEST(extended_timestamp_on_continuations)
{
    uint8_t pl[1000], b[2048];
    fill(pl, sizeof(pl), 9);
    uint32_t ts = 0x01234567; /* above 0xFFFFFF */
    size_t n = put_msg(b, sizeof(b), 4, RTMP_MSG_VIDEO, 1, ts, pl, 300, 128);
    /* type 0 (12) + ext (4), two type 3 continuations (1 + 4 each) */
    ck_assert_uint_eq(n, 16 + 2 * 5 + 300);
    ck_assert_uint_eq(b[12], 0x01); /* the extended field follows */
    /* a type 3 starting the next message also carries it: the delta */
    static const uint8_t t3[] = {0xC4, 0x00, 0x00, 0x00, 0x10};
    memcpy(b + n, t3, sizeof(t3));
    n += sizeof(t3);
    memcpy(b + n, pl, 128);
    n += 128;
    memcpy(b + n, t3, sizeof(t3)); /* continuation: value ignored */
    n += sizeof(t3);
    memcpy(b + n, pl + 128, 128);
    n += 128;
    memcpy(b + n, t3, sizeof(t3));
    n += sizeof(t3);
    memcpy(b + n, pl + 256, 44);
    n += 44;
    for (size_t step = 1; step <= n; step += (step < 40 ? 1 : 97)) {
        run_t r = {0};
        parse_all(b, n, step, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 2);
        ck_assert_uint_eq(r.m[0].ts, ts);
        ck_assert_mem_eq(r.m[0].payload, pl, 300);
        ck_assert_uint_eq(r.m[1].ts, ts + 0x10);
        ck_assert_mem_eq(r.m[1].payload, pl, 300);
        run_free(&r);
    }
}
END_TEST

START_TEST(extended_delta_and_wrap)
{
    /* type 0 at 0xFFFFFFF0 (extended), then a type 1 delta of 0x20: the
     * 32-bit time wraps to 0x10 */
    static const uint8_t b[] = {
        0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x09, 0x01, 0, 0, 0, 0xFF,
        0xFF, 0xFF, 0xF0, 'a', 0x44, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x09,
        'b',
        /* type 2 with an extended delta of 0x01000000 */
        0x84, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 'c',
        /* type 3 new message: the last header was extended, so is it */
        0xC4, 0x00, 0x00, 0x00, 0x05, 'd'};
    run_t r = {0};
    parse_all(b, sizeof(b), 1, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 4);
    ck_assert_uint_eq(r.m[0].ts, 0xFFFFFFF0u);
    ck_assert_uint_eq(r.m[1].ts, 0x10);
    ck_assert_uint_eq(r.m[2].ts, 0x01000010);
    ck_assert_uint_eq(r.m[3].ts, 0x01000015);
    run_free(&r);

    /* unwrapping to 64 bits across the wrap */
    flv_ts_t u = {0};
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, r.m[0].ts), 0xFFFFFFF0LL);
    ck_assert_int_eq(flv_ts_unwrap(&u, NULL, 0x10), 0x100000010LL);
}
END_TEST

START_TEST(set_chunk_size)
{
    uint8_t b[16384], pl[9000], scs[4] = {0, 0, 0x10, 0}; /* 4096 */
    fill(pl, sizeof(pl), 3);
    size_t n =
        put_msg(b, sizeof(b), 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0, scs, 4, 128);
    n += put_msg(b + n, sizeof(b) - n, 6, RTMP_MSG_VIDEO, 1, 0, pl, 9000, 4096);
    ck_assert_uint_eq(n, 16 + 12 + 9000 + 2);
    for (size_t step = 1; step < n; step = step * 3 + 1) {
        rtmp_chunk_parser_t p;
        rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
        run_t r = {0};
        feed(&p, b, n, step, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 2);
        ck_assert_uint_eq(r.m[0].type, RTMP_MSG_SET_CHUNK_SIZE);
        ck_assert_uint_eq(p.chunk_size, 4096);
        ck_assert_mem_eq(r.m[1].payload, pl, 9000);
        run_free(&r);
        rtmp_chunk_parser_free(&p);
    }
}
END_TEST

START_TEST(set_chunk_size_invalid)
{
    static const uint8_t bad[][4] = {
        {0, 0, 0, 0},          /* zero */
        {0x80, 0, 0x10, 0},    /* top bit set */
        {0, 0x01, 0x00, 0x01}, /* 65537 > MAX_CHUNK */
    };
    static const int want[] = {PD_EPROTO, PD_EPROTO, PD_ELIMIT};
    for (int i = 0; i < 3; i++) {
        uint8_t b[64];
        size_t n = put_msg(b, sizeof(b), 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0,
                           bad[i], 4, 128);
        run_t r = {0};
        parse_all(b, n, n, &r);
        ck_assert_int_eq(r.rc, want[i]);
        run_free(&r);
    }
    /* short payload */
    uint8_t b[64];
    size_t n = put_msg(b, sizeof(b), 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0,
                       (const uint8_t *)"\x01\x00", 2, 128);
    run_t r = {0};
    parse_all(b, n, n, &r);
    ck_assert_int_eq(r.rc, PD_EPROTO);
    run_free(&r);
}
END_TEST

START_TEST(interleaved_streams)
{
    /* audio (csid 4) and video (csid 6) chunks alternate */
    uint8_t va[400], au[300], b[2048];
    fill(va, sizeof(va), 50);
    fill(au, sizeof(au), 150);
    uint8_t vb[600], ab[600];
    size_t vn = put_msg(vb, sizeof(vb), 6, RTMP_MSG_VIDEO, 1, 40, va, 400, 128);
    size_t an = put_msg(ab, sizeof(ab), 4, RTMP_MSG_AUDIO, 1, 23, au, 300, 128);
    /* chunk boundaries: video 12+128, 1+128, 1+128, 1+16; audio 12+128,
     * 1+128, 1+44 */
    size_t vcut[] = {0, 140, 269, 398, vn}, acut[] = {0, 140, 269, an};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(b + n, vb + vcut[i], vcut[i + 1] - vcut[i]);
        n += vcut[i + 1] - vcut[i];
        if (i < 3) {
            memcpy(b + n, ab + acut[i], acut[i + 1] - acut[i]);
            n += acut[i + 1] - acut[i];
        }
    }
    for (size_t step = 1; step <= n; step += 13) {
        run_t r = {0};
        parse_all(b, n, step, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 2);
        /* audio's last chunk arrives before video's */
        ck_assert_uint_eq(r.m[0].csid, 4);
        ck_assert_uint_eq(r.m[0].ts, 23);
        ck_assert_mem_eq(r.m[0].payload, au, 300);
        ck_assert_uint_eq(r.m[1].csid, 6);
        ck_assert_uint_eq(r.m[1].ts, 40);
        ck_assert_mem_eq(r.m[1].payload, va, 400);
        run_free(&r);
    }
}
END_TEST

START_TEST(abort_message)
{
    uint8_t b[1024], pl[300];
    fill(pl, sizeof(pl), 1);
    uint8_t full[600];
    size_t fn =
        put_msg(full, sizeof(full), 6, RTMP_MSG_VIDEO, 1, 0, pl, 300, 128);
    size_t n = 0;
    memcpy(b, full, 140); /* first chunk only */
    n = 140;
    uint8_t ab[4] = {0, 0, 0, 6};
    n += put_msg(b + n, sizeof(b) - n, 2, RTMP_MSG_ABORT, 0, 0, ab, 4, 128);
    memcpy(b + n, full, fn); /* a fresh type 0 is fine after the abort */
    n += fn;
    run_t r = {0};
    parse_all(b, n, n, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert_uint_eq(r.m[0].type, RTMP_MSG_ABORT);
    ck_assert_uint_eq(r.m[1].len, 300);
    ck_assert_mem_eq(r.m[1].payload, pl, 300);
    run_free(&r);

    /* without the abort, a type 0 inside a message is a violation */
    memcpy(b, full, 140);
    memcpy(b + 140, full, fn);
    parse_all(b, 140 + fn, 140 + fn, &r);
    ck_assert_int_eq(r.rc, PD_EPROTO);
    ck_assert_int_eq(r.n, 0);
    run_free(&r);
}
END_TEST

START_TEST(real_ffmpeg_capture)
{
    for (size_t step = 1; step <= sizeof(ffmpeg_connect); step++) {
        run_t r = {0};
        parse_all(ffmpeg_connect, sizeof(ffmpeg_connect), step, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 1);
        ck_assert_uint_eq(r.m[0].csid, 3);
        ck_assert_uint_eq(r.m[0].type, RTMP_MSG_COMMAND_AMF0);
        ck_assert_uint_eq(r.m[0].len, 140);
        ck_assert_mem_eq(r.m[0].payload,
                         "\x02\x00\x07"
                         "connect",
                         10);
        run_free(&r);
    }
}
END_TEST

/* A stream with every feature, for the split/truncation tests. */
static size_t mixed_stream(uint8_t *b, size_t cap, uint8_t *pl)
{
    size_t n = header_types_stream(b);
    uint8_t scs[4] = {0, 0, 0, 200};
    n += put_msg(b + n, cap - n, 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0, scs, 4, 128);
    n +=
        put_msg(b + n, cap - n, 4, RTMP_MSG_VIDEO, 1, 0x02000000, pl, 500, 200);
    n += put_msg(b + n, cap - n, 400, RTMP_MSG_AUDIO, 1, 7, pl, 0, 200);
    n += put_msg(b + n, cap - n, 70000 - 4470, RTMP_MSG_DATA_AMF0, 1, 9, pl,
                 201, 200);
    return n;
}

START_TEST(split_at_every_offset)
{
    uint8_t b[4096], pl[600];
    fill(pl, sizeof(pl), 77);
    size_t n = mixed_stream(b, sizeof(b), pl);
    run_t whole = {0};
    parse_all(b, n, n, &whole);
    ck_assert_int_eq(whole.rc, 0);
    ck_assert_int_eq(whole.n, 8);
    ck_assert_uint_eq(whole.m[6].len, 0); /* zero-length message */
    ck_assert_uint_eq(whole.m[7].csid, 70000 - 4470);
    for (size_t cut = 1; cut < n; cut++) {
        /* two reads: [0, cut) then the rest */
        rtmp_chunk_parser_t p;
        rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
        run_t r = {0};
        feed(&p, b, n, cut, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, whole.n);
        for (int i = 0; i < r.n; i++) {
            ck_assert_uint_eq(r.m[i].ts, whole.m[i].ts);
            ck_assert_uint_eq(r.m[i].csid, whole.m[i].csid);
            ck_assert_uint_eq(r.m[i].len, whole.m[i].len);
            ck_assert_mem_eq(r.m[i].payload, whole.m[i].payload, r.m[i].len);
        }
        run_free(&r);
        rtmp_chunk_parser_free(&p);
    }
    run_free(&whole);
}
END_TEST

START_TEST(truncated_at_every_offset)
{
    uint8_t b[4096], pl[600];
    fill(pl, sizeof(pl), 5);
    size_t n = mixed_stream(b, sizeof(b), pl);
    int prev = 0;
    for (size_t cut = 0; cut < n; cut++) {
        /* a prefix is never an error: only "need more" */
        run_t r = {0};
        parse_all(b, cut, cut ? cut : 1, &r);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_ge(r.n, prev);
        ck_assert_int_lt(r.n, 8);
        prev = r.n;
        run_free(&r);
    }
}
END_TEST

START_TEST(oversized_message)
{
    /* a header announcing MAX_MSG + 1 bytes is refused at once */
    uint8_t b[] = {0x04, 0, 0, 0, 0x10, 0x00, 0x01, 0x09, 1, 0, 0, 0};
    run_t r = {0};
    parse_all(b, sizeof(b), sizeof(b), &r);
    ck_assert_int_eq(r.rc, PD_ELIMIT);
    /* exactly the limit is accepted (needs the bytes to complete) */
    b[4] = 0x10;
    b[5] = 0x00;
    b[6] = 0x00;
    parse_all(b, sizeof(b), sizeof(b), &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 0);
    /* a type 1 header can grow the length too */
    static const uint8_t t1[] = {0x04, 0, 0, 0,    0,    0,    1,
                                 9,    1, 0, 0,    0,    'x',  0x44,
                                 0,    0, 0, 0xFF, 0xFF, 0xFF, 9};
    parse_all(t1, sizeof(t1), sizeof(t1), &r);
    ck_assert_int_eq(r.rc, PD_ELIMIT);
    ck_assert_int_eq(r.n, 1);
    run_free(&r);
}
END_TEST

START_TEST(too_many_chunk_streams)
{
    uint8_t b[4096];
    size_t n = 0;
    for (uint32_t i = 0; i <= RTMP_MAX_CSIDS; i++)
        n += put_msg(b + n, sizeof(b) - n, 10 + i, RTMP_MSG_AUDIO, 1, 0,
                     (const uint8_t *)"z", 1, 128);
    run_t r = {0};
    parse_all(b, n, n, &r);
    ck_assert_int_eq(r.rc, PD_ELIMIT);
    ck_assert_int_eq(r.n, RTMP_MAX_CSIDS);
    run_free(&r);
    /* reusing the same ones is fine */
    n = 0;
    for (uint32_t i = 0; i < 3 * RTMP_MAX_CSIDS; i++)
        n += put_msg(b + n, sizeof(b) - n, 10 + i % RTMP_MAX_CSIDS,
                     RTMP_MSG_AUDIO, 1, 0, (const uint8_t *)"z", 1, 128);
    parse_all(b, n, n, &r);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 3 * RTMP_MAX_CSIDS);
    run_free(&r);
}
END_TEST

START_TEST(first_chunk_must_be_type0)
{
    static const uint8_t t1[] = {0x44, 0, 0, 1, 0, 0, 1, 9, 'x'};
    static const uint8_t t2[] = {0x84, 0, 0, 1, 'x'};
    static const uint8_t t3[] = {0xC4, 'x'};
    run_t r = {0};
    parse_all(t1, sizeof(t1), sizeof(t1), &r);
    ck_assert_int_eq(r.rc, PD_EPROTO);
    parse_all(t2, sizeof(t2), sizeof(t2), &r);
    ck_assert_int_eq(r.rc, PD_EPROTO);
    parse_all(t3, sizeof(t3), sizeof(t3), &r);
    ck_assert_int_eq(r.rc, PD_EPROTO);
}
END_TEST

START_TEST(buffer_budget)
{
    /* 64 chunk streams each holding part of a 1 MiB message: the
     * reassembly budget runs out before memory does */
    rtmp_chunk_parser_t p;
    rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
    uint8_t scs[4] = {0, 1, 0, 0}; /* 65536 */
    uint8_t *chunk = calloc(1, MAX_CHUNK + 32);
    size_t n = put_msg(chunk, MAX_CHUNK + 32, 2, RTMP_MSG_SET_CHUNK_SIZE, 0, 0,
                       scs, 4, 128);
    run_t r = {0};
    feed(&p, chunk, n, n, &r);
    ck_assert_int_eq(r.rc, 0);
    int rc = 0;
    for (int round = 0; round < 8 && rc == 0; round++) {
        for (uint32_t cs = 3; cs < 3 + 60 && rc == 0; cs++) {
            size_t hl;
            if (round == 0) {
                chunk[0] = (uint8_t)cs;
                memcpy(chunk + 1, "\0\0\0\x10\0\0\x09\x01\0\0\0", 11);
                hl = 12;
            } else {
                chunk[0] = (uint8_t)(0xC0 | cs);
                hl = 1;
            }
            size_t used;
            rtmp_msg_t m;
            rc = rtmp_chunk_parse(&p, chunk, hl + MAX_CHUNK, &used, &m);
            ck_assert_int_le(p.buffered, p.max_buffered);
        }
    }
    ck_assert_int_eq(rc, PD_ELIMIT);
    ck_assert_str_eq(p.error, "reassembly buffers over their limit");
    rtmp_chunk_parser_free(&p);
    ck_assert_uint_eq(p.buffered, 0);
    free(chunk);
    run_free(&r);
}
END_TEST

/* A video message of msg_len bytes on csid, serialised with chunk size
 * 128: a 12-byte type 0 chunk header, then 1-byte type 3 headers. */
static uint8_t *big_msg(uint32_t csid, uint32_t msg_len, size_t *len)
{
    uint8_t *pl = malloc(msg_len);
    fill(pl, msg_len, (uint8_t)csid);
    size_t cap = msg_len + msg_len / 128 + 64;
    uint8_t *out = malloc(cap);
    *len = put_msg(out, cap, csid, RTMP_MSG_VIDEO, 1, 0, pl, msg_len, 128);
    free(pl);
    return out;
}

/* Byte offset of the end of the first `chunks` chunks of big_msg (a chunk
 * boundary, so another chunk stream may follow). */
static size_t after_chunks(size_t chunks)
{
    return 12 + 128 + (chunks - 1) * 129;
}

/* Parses buf[0..len) to the end; returns the last status (1 message,
 * 0 need more, < 0 error). */
static int parse_span(rtmp_chunk_parser_t *p, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
        size_t used;
        rtmp_msg_t m;
        rc = rtmp_chunk_parse(p, buf + pos, len - pos, &used, &m);
        pos += used;
        if (rc < 0 || (rc == 0 && used == 0))
            break;
    }
    return rc;
}

START_TEST(conn_budget_one_max_message)
{
    /* A connection may have one maximal message in progress plus a
     * little, not two (it used to be 2 x max + 4 MiB) */
    rtmp_chunk_parser_t p;
    rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
    size_t alen, blen;
    uint8_t *a = big_msg(6, MAX_MSG, &alen);
    uint8_t *b = big_msg(7, MAX_MSG, &blen);
    size_t cut = after_chunks(7000); /* ~896 KB of each */
    ck_assert_int_eq(parse_span(&p, a, cut), 0);
    ck_assert_uint_eq(p.buffered, MAX_MSG);
    ck_assert_int_eq(parse_span(&p, b, cut), PD_ELIMIT);
    ck_assert_str_eq(p.error, "reassembly buffers over their limit");
    ck_assert_uint_le(p.buffered, p.max_buffered);
    rtmp_chunk_parser_free(&p);
    ck_assert_uint_eq(p.buffered, 0);

    /* one after the other is fine: a finished big buffer is released */
    rtmp_chunk_parser_init(&p, MAX_CHUNK, MAX_MSG, NULL);
    ck_assert_int_eq(parse_span(&p, a, alen), 1);
    ck_assert_int_eq(parse_span(&p, b, blen), 1);
    ck_assert_uint_le(p.buffered, MAX_MSG);
    rtmp_chunk_parser_free(&p);
    free(a);
    free(b);
}
END_TEST

static size_t used(rtmp_budget_t *b)
{
    return atomic_load(&b->used);
}

START_TEST(shared_budget_across_parsers)
{
    /* two connections sharing a server-wide budget of 1.5 MiB: the second
     * one to grow past it fails, the first goes on; every byte comes
     * back when the parsers are freed */
    rtmp_budget_t bud;
    atomic_init(&bud.used, 0);
    bud.limit = MAX_MSG + MAX_MSG / 2;
    rtmp_chunk_parser_t p1, p2;
    rtmp_chunk_parser_init(&p1, MAX_CHUNK, MAX_MSG, &bud);
    rtmp_chunk_parser_init(&p2, MAX_CHUNK, MAX_MSG, &bud);
    size_t len;
    uint8_t *a = big_msg(6, MAX_MSG, &len);
    size_t cut = after_chunks(7000);
    ck_assert_int_eq(parse_span(&p1, a, cut), 0);
    ck_assert_uint_eq(used(&bud), p1.buffered);
    ck_assert_int_eq(parse_span(&p2, a, cut), PD_ELIMIT);
    ck_assert_str_eq(p2.error, "reassembly buffers over the server-wide limit");
    ck_assert_uint_le(used(&bud), bud.limit);
    ck_assert_uint_eq(used(&bud), p1.buffered + p2.buffered);
    rtmp_chunk_parser_free(&p2);
    ck_assert_uint_eq(used(&bud), p1.buffered);
    /* the first completes its message */
    ck_assert_int_eq(parse_span(&p1, a + cut, len - cut), 1);
    rtmp_chunk_parser_free(&p1);
    ck_assert_uint_eq(used(&bud), 0);
    /* with the budget free again, another parser gets its message */
    rtmp_chunk_parser_init(&p2, MAX_CHUNK, MAX_MSG, &bud);
    ck_assert_int_eq(parse_span(&p2, a, len), 1);
    rtmp_chunk_parser_free(&p2);
    ck_assert_uint_eq(used(&bud), 0);
    free(a);
}
END_TEST

START_TEST(writer_limits)
{
    uint8_t b[64], pl[100] = {0};
    ck_assert_int_eq(rtmp_chunk_write(b, sizeof(b), 3, 20, 0, 0, pl, 100, 128),
                     PD_ELIMIT);
    ck_assert_int_eq(rtmp_chunk_write(b, sizeof(b), 1, 20, 0, 0, pl, 10, 128),
                     PD_EINVAL);
    ck_assert_int_eq(rtmp_chunk_write(b, sizeof(b), 3, 20, 0, 0, pl, 10, 0),
                     PD_EINVAL);
    ck_assert_int_eq(rtmp_chunk_write(b, sizeof(b), 3, 20, 0, 0, pl, 0, 128),
                     12);
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t b[2048];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 1 + rng() % sizeof(b);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)rng();
        run_t r = {0};
        parse_all(b, len, 1 + rng() % 300, &r);
        ck_assert(r.rc == 0 || r.rc == PD_EPROTO || r.rc == PD_ELIMIT);
        run_free(&r);
    }
}
END_TEST

START_TEST(mutated_stream)
{
    uint8_t orig[4096], b[4096], pl[600];
    fill(pl, sizeof(pl), 11);
    size_t n = mixed_stream(orig, sizeof(orig), pl);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(b, orig, n);
        int flips = 1 + (int)(rng() % 3);
        for (int i = 0; i < flips; i++)
            b[rng() % n] = (uint8_t)rng();
        run_t r = {0};
        parse_all(b, n, 1 + rng() % 64, &r);
        ck_assert(r.rc == 0 || r.rc == PD_EPROTO || r.rc == PD_ELIMIT);
        run_free(&r);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("rtmp_chunk");
    TCase *t = tcase_create("rtmp_chunk");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, type0_single_and_multi_chunk);
    tcase_add_test(t, header_types_and_deltas);
    tcase_add_test(t, type3_after_type0_repeats_its_time);
    tcase_add_test(t, basic_header_sizes);
    tcase_add_test(t, extended_timestamp_on_continuations);
    tcase_add_test(t, extended_delta_and_wrap);
    tcase_add_test(t, set_chunk_size);
    tcase_add_test(t, set_chunk_size_invalid);
    tcase_add_test(t, interleaved_streams);
    tcase_add_test(t, abort_message);
    tcase_add_test(t, real_ffmpeg_capture);
    tcase_add_test(t, split_at_every_offset);
    tcase_add_test(t, truncated_at_every_offset);
    tcase_add_test(t, oversized_message);
    tcase_add_test(t, too_many_chunk_streams);
    tcase_add_test(t, first_chunk_must_be_type0);
    tcase_add_test(t, buffer_budget);
    tcase_add_test(t, conn_budget_one_max_message);
    tcase_add_test(t, shared_budget_across_parsers);
    tcase_add_test(t, writer_limits);
    tcase_add_test(t, random_bytes);
    tcase_add_test(t, mutated_stream);
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
