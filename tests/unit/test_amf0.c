/*
 * tests/unit/test_amf0.c - ingest's AMF0 encoder and decoder: every type,
 * round trips, a real ffmpeg connect command, and hostile input
 * (truncation at every offset, huge lengths and counts, deep nesting,
 * too many values in one value and across the values of one message,
 * stray markers, random bytes).
 */
#include "core/err.h"
#include "ingest/ingest_int.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Captured from ffmpeg 5.1 (native RTMP client) publishing to
 * rtmp://127.0.0.1:PORT/live/test: the connect command as chunks (chunk
 * size 128: a type 0 chunk, then a type 3 continuation at offset 140). */
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

/* A fresh value budget for one call (tests of single values). */
#define FRESH (&(size_t){AMF0_MSG_VALUES})

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Decodes exactly one value spanning all of buf. */
static amf0_value_t *decode_all(const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    amf0_value_t *v = NULL;
    ck_assert_int_eq(amf0_decode(buf, len, &pos, FRESH, &v), 0);
    ck_assert_uint_eq(pos, len);
    ck_assert_ptr_nonnull(v);
    return v;
}

START_TEST(number_and_bool)
{
    uint8_t b[64];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_number(&w, -1234.5);
    ck_assert_uint_eq(w.len, 9);
    static const uint8_t want[] = {0x00, 0xC0, 0x93, 0x4A, 0x00,
                                   0x00, 0x00, 0x00, 0x00};
    ck_assert_mem_eq(b, want, 9);
    amf0_value_t *v = decode_all(b, w.len);
    ck_assert_int_eq(v->type, AMF0_NUMBER);
    ck_assert(v->num == -1234.5);
    double d = 0;
    ck_assert(amf0_num(v, &d) && d == -1234.5);
    amf0_free(&v);
    ck_assert_ptr_null(v);

    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_bool(&w, true);
    amf0_put_bool(&w, false);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    size_t pos = 0;
    ck_assert_int_eq(amf0_decode(b, w.len, &pos, FRESH, &v), 0);
    ck_assert_int_eq(v->type, AMF0_BOOLEAN);
    ck_assert(v->boolean);
    ck_assert(!amf0_num(v, &d));
    amf0_free(&v);
    ck_assert_int_eq(amf0_decode(b, w.len, &pos, FRESH, &v), 0);
    ck_assert(!v->boolean);
    ck_assert_uint_eq(pos, w.len);
    amf0_free(&v);
}
END_TEST

START_TEST(strings)
{
    uint8_t b[32];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "live");
    ck_assert_uint_eq(w.len, 7);
    ck_assert_mem_eq(b, "\x02\x00\x04live", 7);
    amf0_value_t *v = decode_all(b, w.len);
    size_t len = 0;
    ck_assert_str_eq(amf0_str(v, &len), "live");
    ck_assert_uint_eq(len, 4);
    amf0_free(&v);

    /* empty string, and embedded NUL kept with its length */
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_string(&w, "a\0b", 3);
    v = decode_all(b, w.len);
    ck_assert_uint_eq(v->str_len, 3);
    ck_assert_mem_eq(v->str, "a\0b", 4);
    amf0_free(&v);
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_string(&w, "", 0);
    v = decode_all(b, w.len);
    ck_assert_uint_eq(v->str_len, 0);
    ck_assert_str_eq(v->str, "");
    amf0_free(&v);
}
END_TEST

START_TEST(long_string)
{
    size_t n = 70000;
    char *s = malloc(n);
    memset(s, 'x', n);
    uint8_t *b = malloc(n + 16);
    amf0_wr_t w;
    amf0_wr_init(&w, b, n + 16);
    amf0_put_string(&w, s, n); /* > 65535: becomes a long string */
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    ck_assert_uint_eq(b[0], AMF0_LONG_STRING);
    ck_assert_uint_eq(w.len, 5 + n);
    amf0_value_t *v = decode_all(b, w.len);
    ck_assert_int_eq(v->type, AMF0_LONG_STRING);
    ck_assert_uint_eq(v->str_len, n);
    ck_assert_ptr_nonnull(amf0_str(v, NULL));
    ck_assert_mem_eq(v->str, s, n);
    amf0_free(&v);

    /* a short long-string keeps its marker through put_value */
    static const uint8_t ls[] = {0x0C, 0, 0, 0, 2, 'h', 'i'};
    v = decode_all(ls, sizeof(ls));
    amf0_wr_init(&w, b, 64);
    amf0_put_value(&w, v);
    ck_assert_uint_eq(w.len, sizeof(ls));
    ck_assert_mem_eq(b, ls, sizeof(ls));
    amf0_free(&v);
    free(b);
    free(s);
}
END_TEST

START_TEST(null_undefined_date_reference)
{
    uint8_t b[64];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_null(&w);
    amf0_put_undefined(&w);
    amf0_put_date(&w, 1.5e12, -60);
    ck_assert_uint_eq(w.len, 1 + 1 + 11);
    size_t pos = 0;
    amf0_value_t *v;
    ck_assert_int_eq(amf0_decode(b, w.len, &pos, FRESH, &v), 0);
    ck_assert_int_eq(v->type, AMF0_NULL);
    amf0_free(&v);
    ck_assert_int_eq(amf0_decode(b, w.len, &pos, FRESH, &v), 0);
    ck_assert_int_eq(v->type, AMF0_UNDEFINED);
    amf0_free(&v);
    ck_assert_int_eq(amf0_decode(b, w.len, &pos, FRESH, &v), 0);
    ck_assert_int_eq(v->type, AMF0_DATE);
    ck_assert(v->num == 1.5e12);
    ck_assert_int_eq(v->tz, -60);
    amf0_free(&v);

    /* a reference is kept as an opaque index, never resolved */
    static const uint8_t ref[] = {0x07, 0x12, 0x34};
    v = decode_all(ref, sizeof(ref));
    ck_assert_int_eq(v->type, AMF0_REFERENCE);
    ck_assert_uint_eq(v->ref, 0x1234);
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_value(&w, v);
    ck_assert_mem_eq(b, ref, sizeof(ref));
    amf0_free(&v);
}
END_TEST

START_TEST(object_and_lookup)
{
    uint8_t b[256];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_object_start(&w);
    amf0_put_prop_cstr(&w, "app", "live");
    amf0_put_prop_number(&w, "width", 640);
    amf0_put_key(&w, "nested", 6);
    amf0_put_object_start(&w);
    amf0_put_key(&w, "ok", 2);
    amf0_put_bool(&w, true);
    amf0_put_object_end(&w);
    amf0_put_object_end(&w);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    amf0_value_t *v = decode_all(b, w.len);
    ck_assert_int_eq(v->type, AMF0_OBJECT);
    ck_assert_uint_eq(v->nprops, 3);
    ck_assert_str_eq(amf0_str(amf0_get(v, "app"), NULL), "live");
    double d;
    ck_assert(amf0_num(amf0_get(v, "width"), &d) && d == 640);
    const amf0_value_t *n = amf0_get(v, "nested");
    ck_assert_ptr_nonnull(n);
    ck_assert(amf0_get(n, "ok")->boolean);
    ck_assert_ptr_null(amf0_get(v, "missing"));
    ck_assert_ptr_null(amf0_get(v, "ap")); /* prefix is no match */
    ck_assert_ptr_null(amf0_get(amf0_get(v, "app"), "x")); /* not obj */
    ck_assert_ptr_null(amf0_str(amf0_get(v, "width"), NULL));
    amf0_free(&v);

    /* empty object */
    static const uint8_t empty[] = {0x03, 0, 0, 0x09};
    v = decode_all(empty, sizeof(empty));
    ck_assert_uint_eq(v->nprops, 0);
    amf0_free(&v);
}
END_TEST

START_TEST(ecma_and_strict_arrays)
{
    uint8_t b[256];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_ecma_start(&w, 2);
    amf0_put_prop_number(&w, "height", 360);
    amf0_put_prop_number(&w, "framerate", 29.97);
    amf0_put_object_end(&w);
    amf0_value_t *v = decode_all(b, w.len);
    ck_assert_int_eq(v->type, AMF0_ECMA_ARRAY);
    ck_assert_uint_eq(v->ecma_count, 2);
    double d;
    ck_assert(amf0_num(amf0_get(v, "framerate"), &d) && d == 29.97);
    amf0_free(&v);

    /* the ECMA count is advisory: a wrong one still decodes */
    b[4] = 99;
    v = decode_all(b, w.len);
    ck_assert_uint_eq(v->nprops, 2);
    amf0_free(&v);

    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_strict_array_start(&w, 3);
    amf0_put_number(&w, 1);
    amf0_put_cstr(&w, "two");
    amf0_put_null(&w);
    v = decode_all(b, w.len);
    ck_assert_int_eq(v->type, AMF0_STRICT_ARRAY);
    ck_assert_uint_eq(v->nprops, 3);
    ck_assert_ptr_null(v->props[0].key);
    ck_assert_str_eq(amf0_str(v->props[1].val, NULL), "two");
    ck_assert_int_eq(v->props[2].val->type, AMF0_NULL);
    ck_assert_ptr_null(amf0_get(v, "x")); /* not keyed */
    amf0_free(&v);
}
END_TEST

/* A tree holding every encodable type, nested. */
static size_t build_everything(uint8_t *b, size_t cap)
{
    amf0_wr_t w;
    amf0_wr_init(&w, b, cap);
    amf0_put_object_start(&w);
    amf0_put_prop_number(&w, "n", 3.25);
    amf0_put_key(&w, "b", 1);
    amf0_put_bool(&w, true);
    amf0_put_prop_cstr(&w, "s", "str");
    amf0_put_key(&w, "nil", 3);
    amf0_put_null(&w);
    amf0_put_key(&w, "u", 1);
    amf0_put_undefined(&w);
    amf0_put_key(&w, "d", 1);
    amf0_put_date(&w, 1e12, 0);
    amf0_put_key(&w, "e", 1);
    amf0_put_ecma_start(&w, 1);
    amf0_put_prop_number(&w, "x", 1);
    amf0_put_object_end(&w);
    amf0_put_key(&w, "a", 1);
    amf0_put_strict_array_start(&w, 2);
    amf0_put_cstr(&w, "el");
    amf0_put_object_start(&w);
    amf0_put_object_end(&w);
    amf0_put_object_end(&w);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    return w.len;
}

START_TEST(round_trip_every_type)
{
    uint8_t b[512], b2[512];
    size_t len = build_everything(b, sizeof(b));
    amf0_value_t *v = decode_all(b, len);
    amf0_wr_t w;
    amf0_wr_init(&w, b2, sizeof(b2));
    amf0_put_value(&w, v);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    ck_assert_uint_eq(w.len, len);
    ck_assert_mem_eq(b2, b, len);
    amf0_free(&v);
}
END_TEST

START_TEST(real_ffmpeg_connect)
{
    /* strip the chunk headers: 12-byte type 0 header, 1-byte type 3 */
    uint8_t p[200];
    size_t n = 0;
    memcpy(p, ffmpeg_connect + 12, 128);
    n = 128;
    ck_assert_uint_eq(ffmpeg_connect[140], 0xC3);
    memcpy(p + n, ffmpeg_connect + 141, sizeof(ffmpeg_connect) - 141);
    n += sizeof(ffmpeg_connect) - 141;
    ck_assert_uint_eq(n, 0x8c);

    size_t pos = 0;
    amf0_value_t *name, *txn, *obj;
    ck_assert_int_eq(amf0_decode(p, n, &pos, FRESH, &name), 0);
    ck_assert_int_eq(amf0_decode(p, n, &pos, FRESH, &txn), 0);
    ck_assert_int_eq(amf0_decode(p, n, &pos, FRESH, &obj), 0);
    ck_assert_uint_eq(pos, n);
    ck_assert_str_eq(amf0_str(name, NULL), "connect");
    ck_assert(txn->num == 1);
    ck_assert_str_eq(amf0_str(amf0_get(obj, "app"), NULL), "live");
    ck_assert_str_eq(amf0_str(amf0_get(obj, "type"), NULL), "nonprivate");
    ck_assert_ptr_nonnull(amf0_get(obj, "tcUrl"));
    amf0_free(&name);
    amf0_free(&txn);
    amf0_free(&obj);
}
END_TEST

START_TEST(truncated_every_offset)
{
    uint8_t b[512];
    size_t len = build_everything(b, sizeof(b));
    for (size_t cut = 0; cut < len; cut++) {
        /* an exact-size copy so ASan sees any read past the cut */
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, b, cut);
        size_t pos = 0;
        amf0_value_t *v = (amf0_value_t *)1;
        ck_assert_int_eq(amf0_decode(t, cut, &pos, FRESH, &v), PD_EAGAIN);
        ck_assert_ptr_null(v);
        ck_assert_uint_eq(pos, 0);
        free(t);
    }
}
END_TEST

START_TEST(huge_lengths)
{
    size_t pos = 0;
    amf0_value_t *v;
    static const uint8_t s[] = {0x02, 0xFF, 0xFF, 'a'};
    ck_assert_int_eq(amf0_decode(s, sizeof(s), &pos, FRESH, &v), PD_EAGAIN);
    static const uint8_t ls[] = {0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 'a'};
    ck_assert_int_eq(amf0_decode(ls, sizeof(ls), &pos, FRESH, &v), PD_EAGAIN);
    /* a count of 4 billion elements allocates nothing */
    static const uint8_t sa[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05};
    ck_assert_int_eq(amf0_decode(sa, sizeof(sa), &pos, FRESH, &v), PD_EAGAIN);
    static const uint8_t key[] = {0x03, 0xFF, 0xFF, 'k'};
    ck_assert_int_eq(amf0_decode(key, sizeof(key), &pos, FRESH, &v), PD_EAGAIN);
    static const uint8_t ecma[] = {0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 9};
    ck_assert_int_eq(amf0_decode(ecma, sizeof(ecma), &pos, FRESH, &v), 0);
    ck_assert_uint_eq(v->nprops, 0);
    amf0_free(&v);
    ck_assert_int_eq(amf0_decode(NULL, 0, &pos, FRESH, &v), PD_EINVAL);
    pos = 10;
    ck_assert_int_eq(amf0_decode(s, sizeof(s), &pos, FRESH, &v), PD_EINVAL);
}
END_TEST

/* depth objects nested inside each other: {"k":{"k":...{}}} */
static size_t nested_objects(uint8_t *b, size_t cap, int depth)
{
    amf0_wr_t w;
    amf0_wr_init(&w, b, cap);
    for (int i = 0; i < depth; i++) {
        amf0_put_object_start(&w);
        if (i < depth - 1)
            amf0_put_key(&w, "k", 1);
    }
    for (int i = 0; i < depth; i++)
        amf0_put_object_end(&w);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    return w.len;
}

START_TEST(nesting_limit)
{
    uint8_t b[4096];
    size_t pos = 0;
    amf0_value_t *v;
    size_t len = nested_objects(b, sizeof(b), AMF0_MAX_DEPTH + 1);
    ck_assert_int_eq(amf0_decode(b, len, &pos, FRESH, &v), 0);
    amf0_free(&v);
    pos = 0;
    len = nested_objects(b, sizeof(b), AMF0_MAX_DEPTH + 2);
    ck_assert_int_eq(amf0_decode(b, len, &pos, FRESH, &v), PD_ELIMIT);
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(pos, 0);

    /* strict arrays nested 1000 deep (would blow the stack unchecked) */
    uint8_t deep[5 * 1000 + 1];
    for (int i = 0; i < 1000; i++) {
        deep[i * 5] = AMF0_STRICT_ARRAY;
        deep[i * 5 + 1] = 0;
        deep[i * 5 + 2] = 0;
        deep[i * 5 + 3] = 0;
        deep[i * 5 + 4] = 1;
    }
    deep[5000] = AMF0_NULL;
    ck_assert_int_eq(amf0_decode(deep, sizeof(deep), &pos, FRESH, &v),
                     PD_ELIMIT);
}
END_TEST

/* A strict array of n nulls: 5 + n bytes, n + 1 values. */
static uint8_t *null_array(size_t n, size_t *len)
{
    uint8_t *b = malloc(5 + n);
    b[0] = AMF0_STRICT_ARRAY;
    b[1] = (uint8_t)(n >> 24);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    memset(b + 5, AMF0_NULL, n);
    *len = 5 + n;
    return b;
}

START_TEST(node_limit)
{
    /* one value larger than the budget */
    size_t len;
    uint8_t *b = null_array(AMF0_MSG_VALUES + 10, &len);
    size_t pos = 0, budget = AMF0_MSG_VALUES;
    amf0_value_t *v = (amf0_value_t *)1;
    ck_assert_int_eq(amf0_decode(b, len, &pos, &budget, &v), PD_ELIMIT);
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(pos, 0);
    ck_assert_uint_eq(budget, AMF0_MSG_VALUES); /* unchanged on error */
    free(b);
    /* exactly the budget: the array and its n elements */
    b = null_array(99, &len);
    budget = 100;
    ck_assert_int_eq(amf0_decode(b, len, &pos, &budget, &v), 0);
    ck_assert_uint_eq(budget, 0);
    ck_assert_uint_eq(v->nprops, 99);
    amf0_free(&v);
    pos = 0;
    budget = 99; /* one short */
    ck_assert_int_eq(amf0_decode(b, len, &pos, &budget, &v), PD_ELIMIT);
    /* a NULL budget is a caller error */
    ck_assert_int_eq(amf0_decode(b, len, &pos, NULL, &v), PD_EINVAL);
    free(b);
}
END_TEST

/* The reviewer's message: a string, then 7 strict arrays of 65535 nulls
 * (458 KB). With one budget for the whole message, decoding stops at the
 * first array instead of building ~460,000 nodes; and values that each fit
 * the budget still fail together. */
START_TEST(budget_shared_across_values)
{
    size_t alen;
    uint8_t *arr = null_array(65535, &alen);
    size_t len = 4 + 7 * alen;
    uint8_t *msg = malloc(len);
    memcpy(msg, "\x02\x00\x01x", 4);
    for (int i = 0; i < 7; i++)
        memcpy(msg + 4 + (size_t)i * alen, arr, alen);
    free(arr);
    size_t pos = 0, budget = AMF0_MSG_VALUES;
    amf0_value_t *v[8] = {0};
    int n = 0, rc = 0;
    while (n < 8 && pos < len &&
           (rc = amf0_decode(msg, len, &pos, &budget, &v[n])) == 0)
        n++;
    ck_assert_int_eq(rc, PD_ELIMIT);
    ck_assert_int_eq(n, 1); /* only the string */
    ck_assert_uint_eq(budget, AMF0_MSG_VALUES - 1);
    amf0_free(&v[0]);
    free(msg);

    /* three arrays of 2000 nulls: each fits 4096 alone, not together */
    arr = null_array(2000, &alen);
    msg = malloc(3 * alen);
    for (int i = 0; i < 3; i++)
        memcpy(msg + (size_t)i * alen, arr, alen);
    pos = 0;
    budget = AMF0_MSG_VALUES;
    n = 0;
    while (n < 3 &&
           (rc = amf0_decode(msg, 3 * alen, &pos, &budget, &v[n])) == 0)
        n++;
    ck_assert_int_eq(rc, PD_ELIMIT);
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(budget, AMF0_MSG_VALUES - 2 * 2001);
    ck_assert_uint_eq(pos, 2 * alen);
    for (int i = 0; i < n; i++)
        amf0_free(&v[i]);
    /* each alone decodes with a fresh budget */
    pos = 0;
    ck_assert_int_eq(amf0_decode(msg, alen, &pos, FRESH, &v[0]), 0);
    amf0_free(&v[0]);
    free(arr);
    free(msg);
}
END_TEST

START_TEST(bad_markers)
{
    size_t pos = 0;
    amf0_value_t *v;
    static const uint8_t end[] = {0x09};
    ck_assert_int_eq(amf0_decode(end, 1, &pos, FRESH, &v), PD_EPROTO);
    static const uint8_t clip[] = {0x04};
    ck_assert_int_eq(amf0_decode(clip, 1, &pos, FRESH, &v), PD_EPROTO);
    static const uint8_t amf3[] = {0x11, 0x01};
    ck_assert_int_eq(amf0_decode(amf3, 2, &pos, FRESH, &v), PD_EPROTO);
    static const uint8_t hi[] = {0xFF};
    ck_assert_int_eq(amf0_decode(hi, 1, &pos, FRESH, &v), PD_EPROTO);
    /* empty key not followed by the end marker */
    static const uint8_t nokey[] = {0x03, 0, 0, 0x05};
    ck_assert_int_eq(amf0_decode(nokey, 4, &pos, FRESH, &v), PD_EPROTO);
    /* bad marker deep inside: the partial tree is freed (ASan checks) */
    static const uint8_t inner[] = {0x03, 0, 1,    'a', 0x0A, 0,   0,
                                    0,    2, 0x02, 0,   1,    'x', 0x0D};
    ck_assert_int_eq(amf0_decode(inner, sizeof(inner), &pos, FRESH, &v),
                     PD_EPROTO);
    ck_assert_uint_eq(pos, 0);
}
END_TEST

START_TEST(writer_overflow)
{
    uint8_t b[10];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_number(&w, 1); /* 9 bytes: fits */
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    amf0_put_cstr(&w, "no room");
    ck_assert_int_eq(amf0_wr_status(&w), PD_ELIMIT);
    ck_assert_uint_eq(w.len, 9);
    amf0_put_null(&w); /* sticky: nothing more is written */
    ck_assert_uint_eq(w.len, 9);

    char big[70000];
    memset(big, 'k', sizeof(big));
    uint8_t b2[100000];
    amf0_wr_init(&w, b2, sizeof(b2));
    amf0_put_key(&w, big, sizeof(big)); /* keys are limited to 16 bits */
    ck_assert_int_eq(amf0_wr_status(&w), PD_ELIMIT);
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t b[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng() % sizeof(b);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)rng();
        /* bias towards valid markers so the decoder gets deeper */
        if (len)
            b[0] = (uint8_t)(rng() % 13);
        size_t pos = 0, budget = AMF0_MSG_VALUES;
        while (pos < len) {
            amf0_value_t *v = NULL;
            size_t before = budget;
            int rc = amf0_decode(b, len, &pos, &budget, &v);
            if (rc) {
                ck_assert(rc == PD_EAGAIN || rc == PD_EPROTO ||
                          rc == PD_ELIMIT);
                ck_assert_ptr_null(v);
                break;
            }
            ck_assert_uint_le(pos, len);
            ck_assert_uint_lt(budget, before); /* every value costs */
            amf0_free(&v);
        }
    }
}
END_TEST

START_TEST(mutated_valid)
{
    uint8_t orig[512], b[512];
    size_t len = build_everything(orig, sizeof(orig));
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(b, orig, len);
        int flips = 1 + (int)(rng() % 4);
        for (int i = 0; i < flips; i++)
            b[rng() % len] = (uint8_t)rng();
        size_t pos = 0;
        amf0_value_t *v = NULL;
        if (amf0_decode(b, len, &pos, FRESH, &v) == 0) {
            ck_assert_uint_le(pos, len);
            /* whatever decoded re-encodes within bounds */
            uint8_t out[2048];
            amf0_wr_t w;
            amf0_wr_init(&w, out, sizeof(out));
            amf0_put_value(&w, v);
            ck_assert_uint_le(w.len, sizeof(out));
            amf0_free(&v);
        }
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amf0");
    TCase *t = tcase_create("amf0");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, number_and_bool);
    tcase_add_test(t, strings);
    tcase_add_test(t, long_string);
    tcase_add_test(t, null_undefined_date_reference);
    tcase_add_test(t, object_and_lookup);
    tcase_add_test(t, ecma_and_strict_arrays);
    tcase_add_test(t, round_trip_every_type);
    tcase_add_test(t, real_ffmpeg_connect);
    tcase_add_test(t, truncated_every_offset);
    tcase_add_test(t, huge_lengths);
    tcase_add_test(t, nesting_limit);
    tcase_add_test(t, node_limit);
    tcase_add_test(t, budget_shared_across_values);
    tcase_add_test(t, bad_markers);
    tcase_add_test(t, writer_overflow);
    tcase_add_test(t, random_bytes);
    tcase_add_test(t, mutated_valid);
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
