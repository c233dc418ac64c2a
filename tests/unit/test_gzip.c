/*
 * tests/unit/test_gzip.c - httpd's gzip for playlists: Accept-Encoding
 * parsing (tokens, weights, "*", x-gzip, repeated headers, explicit
 * lengths, hostile and oversized values), the gzip round trip through
 * zlib's inflate, and the compressed-playlist cache (one compression per
 * buffer, references held and dropped, LRU eviction, many threads).
 *
 * Reference counts are read from pd_buf_t's private field to check that
 * the cache holds exactly one reference per entry and drops it on
 * eviction and destroy; run under `make SANITIZE=address,undefined` (with
 * CK_FORK=no for LeakSanitizer) to catch leaks and overreads.
 */
#include "core/buf.h"
#include "core/err.h"
#include "httpd/httpd_int.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Decides on s copied into an exactly sized heap block (no NUL after
 * it), so an overread is an ASan error. */
static bool ok_n(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    ck_assert(copy);
    memcpy(copy, s, len);
    bool r = httpd_accepts_gzip(copy, len);
    free(copy);
    return r;
}

static bool ok(const char *s)
{
    return ok_n(s, strlen(s));
}

static void expect(const char *s, bool want)
{
    if (ok(s) != want)
        ck_abort_msg("Accept-Encoding '%s': gzip %s, want %s", s,
                     want ? "refused" : "accepted", want ? "yes" : "no");
}

static int refs(pd_buf_t *b)
{
    return atomic_load(&b->refs);
}

/* ---- Accept-Encoding ---------------------------------------------------- */

START_TEST(ae_plain_tokens)
{
    expect("gzip", true);
    expect("x-gzip", true);
    expect("GZip", true);
    expect("X-GZIP", true);
    expect("gzip, deflate, br, zstd", true);
    expect("deflate, gzip;q=0.5", true);
    expect("br;q=1.0, gzip;q=0.8, *;q=0.1", true);
    expect("  gzip  ", true);
    expect("\tgzip\t,", true);
    expect(" , ,gzip , ", true);
    expect("identity", false);
    expect("deflate", false);
    expect("deflate, br", false);
    expect("", false);
    expect(",,,", false);
    expect("gzi", false);
    expect("gzipx", false);
    expect("xgzip", false);
    expect("x-gzip2", false);
    ck_assert(!httpd_accepts_gzip(NULL, 0)); /* no header: identity */
}
END_TEST

START_TEST(ae_weights)
{
    expect("gzip;q=0", false);
    expect("gzip; q=0", false);
    expect("gzip ;q=0", false);
    expect("gzip;Q=0", false);
    expect("gzip;q=0.", false);
    expect("gzip;q=0.0", false);
    expect("gzip;q=0.000", false);
    expect("gzip;q=0.001", true);
    expect("gzip;q=0.5", true);
    expect("gzip;q=1", true);
    expect("gzip;q=1.", true);
    expect("gzip;q=1.000", true);
    expect("x-gzip;q=0", false);
    /* the lowest weight of gzip wins; x-gzip is gzip */
    expect("gzip, gzip;q=0", false);
    expect("gzip;q=0, gzip", false);
    expect("x-gzip;q=0, gzip", false);
    expect("gzip;q=0.3, x-gzip;q=0.9", true);
}
END_TEST

START_TEST(ae_star)
{
    expect("*", true);
    expect("*;q=0.1", true);
    expect("*;q=0", false);
    expect("identity, *;q=0", false);
    expect("br, *", true);
    /* an explicit gzip overrides "*" both ways */
    expect("gzip;q=0, *", false);
    expect("*;q=0, gzip", true);
    expect("*;q=0, gzip;q=0.2", true);
    expect("**", false);
}
END_TEST

/* Malformed elements are ignored whole: never gzip from garbage, and a
 * good element next to a bad one still counts. */
START_TEST(ae_malformed_elements)
{
    expect("gzip;q=1.001", false);
    expect("gzip;q=1.5", false);
    expect("gzip;q=2", false);
    expect("gzip;q=0.5000", false);
    expect("gzip;q=", false);
    expect("gzip;q=.5", false);
    expect("gzip;q=-1", false);
    expect("gzip;q=0x1", false);
    expect("gzip;q = 0.5", false);
    expect("gzip;q =0.5", false);
    expect("gzip;level=1", false);
    expect("gzip;q=0.5;x=1", false);
    expect("gzip;", false);
    expect("gzip;;", false);
    expect("gzip q=1", false);
    expect("gzip gzip", false);
    expect(";q=1", false);
    expect("=gzip", false);
    expect("gz/ip", false);
    expect("gzip(1)", false);
    /* a malformed gzip;q=0 does not veto a good gzip, and vice versa */
    expect("gzip;q=abc, gzip", true);
    expect("gzip;level=9, deflate", false);
    expect("gzip;q=0;x, gzip;q=0.5", true);
    expect("*;q=zero, gzip;q=0", false);
}
END_TEST

/* Bytes that no valid list holds poison the whole header. */
START_TEST(ae_forbidden_bytes)
{
    expect("gzip\x01", false);
    expect("deflate\x7f, gzip", false);
    expect("gzip, \xc3\xa9", false);
    expect("x;p=\"a, gzip, b\"", false); /* a quoted comma */
    expect("gzip, a\\b", false);
    expect("gzip\r\n", false);
    ck_assert(!ok_n("gzip\0", 5));
    ck_assert(!ok_n("identity\0, gzip", 15));
    ck_assert(!ok_n("\0gzip", 5));
}
END_TEST

/* Only len bytes are read: no terminator needed, none looked for. */
START_TEST(ae_explicit_length)
{
    ck_assert(ok_n("gzip;q=0", 4));
    ck_assert(ok_n("gzipXXXX", 4));
    ck_assert(!ok_n("gzip", 3));
    ck_assert(!ok_n("gzip;q=0.5", 0));
    ck_assert(!ok_n("deflate, gzip", 8));
    ck_assert(ok_n("deflate, gzip", 13));
}
END_TEST

START_TEST(ae_limits)
{
    char big[4096];
    /* exactly HTTPD_AE_MAX_BYTES: still parsed */
    memset(big, ' ', sizeof(big));
    memcpy(big, "gzip", 4);
    ck_assert(ok_n(big, HTTPD_AE_MAX_BYTES));
    /* one byte more: identity */
    ck_assert(!ok_n(big, HTTPD_AE_MAX_BYTES + 1));
    ck_assert(!ok_n(big, sizeof(big)));

    /* HTTPD_AE_MAX_ELEMS elements with gzip last: parsed; one more: no */
    char list[512];
    size_t n = 0;
    for (int i = 0; i < HTTPD_AE_MAX_ELEMS - 1; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "a,");
    n += (size_t)snprintf(list + n, sizeof(list) - n, "gzip");
    ck_assert(ok_n(list, n));
    char more[520];
    int m = snprintf(more, sizeof(more), "b,%s", list);
    ck_assert(!ok_n(more, (size_t)m));
    /* a long run of commas is many empty elements */
    memset(big, ',', sizeof(big));
    memcpy(big + 100, "gzip", 4);
    ck_assert(!ok_n(big, 200));
    /* a huge single token */
    memset(big, 'g', sizeof(big));
    ck_assert(!ok_n(big, sizeof(big)));
    ck_assert(!ok_n(big, 1000));
}
END_TEST

/* A request may carry the header more than once: one list. */
START_TEST(ae_repeated_headers)
{
    httpd_ae_t ae;
    httpd_ae_init(&ae);
    ck_assert(!httpd_ae_gzip_ok(&ae));
    httpd_ae_add(&ae, "deflate", 7);
    ck_assert(!httpd_ae_gzip_ok(&ae));
    httpd_ae_add(&ae, "gzip", 4);
    ck_assert(httpd_ae_gzip_ok(&ae));
    httpd_ae_add(&ae, "*;q=0", 5);
    ck_assert(httpd_ae_gzip_ok(&ae)); /* gzip is listed explicitly */
    httpd_ae_add(&ae, "x-gzip;q=0", 10);
    ck_assert(!httpd_ae_gzip_ok(&ae));

    /* the byte limit counts every header */
    char chunk[600];
    memset(chunk, ' ', sizeof(chunk));
    memcpy(chunk, "gzip", 4);
    httpd_ae_init(&ae);
    httpd_ae_add(&ae, chunk, sizeof(chunk));
    ck_assert(httpd_ae_gzip_ok(&ae));
    httpd_ae_add(&ae, chunk, sizeof(chunk));
    ck_assert(!httpd_ae_gzip_ok(&ae));
    /* and once invalid, stays invalid */
    httpd_ae_add(&ae, "gzip", 4);
    ck_assert(!httpd_ae_gzip_ok(&ae));

    httpd_ae_init(&ae);
    httpd_ae_add(&ae, NULL, 0); /* an empty value */
    httpd_ae_add(&ae, "gzip", 4);
    ck_assert(httpd_ae_gzip_ok(&ae));
}
END_TEST

/* Random bytes never crash; lists that cannot name gzip or "*" never
 * turn it on. */
START_TEST(ae_random)
{
    unsigned seed = 12345;
    char s[300];
    static const char alpha[] = "abcdefhijklmnopqrstuvwxyzABCDEFH-;=.,01 \t";
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(s));
        bool raw = round % 2;
        for (size_t i = 0; i < n; i++)
            s[i] = raw ? (char)(rand_r(&seed) & 0xff)
                       : alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
        bool r = ok_n(s, n);
        if (!raw && r)
            ck_abort_msg("gzip accepted from '%.*s'", (int)n, s);
        if (raw && r) {
            /* then it named gzip or "*" somewhere */
            bool named = memchr(s, '*', n) != NULL;
            for (size_t i = 0; !named && i + 4 <= n; i++)
                named = strncasecmp(s + i, "gzip", 4) == 0;
            ck_assert(named);
        }
    }
    /* random lists over the grammar's own alphabet: no crash, and gzip
     * only where "gzip" or "*" occurs */
    static const char gram[] = "gzipx-*;q=0.15, \t";
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 40);
        for (size_t i = 0; i < n; i++)
            s[i] = gram[rand_r(&seed) % (sizeof(gram) - 1)];
        if (ok_n(s, n)) {
            bool named = memchr(s, '*', n) != NULL;
            for (size_t i = 0; !named && i + 4 <= n; i++)
                named = memcmp(s + i, "gzip", 4) == 0;
            if (!named)
                ck_abort_msg("gzip accepted from '%.*s'", (int)n, s);
        }
    }
}
END_TEST

/* ---- compression ----------------------------------------------------------
 */

/* A media playlist-like text of about `lines` parts. */
static pd_buf_t *playlist(int lines, int seed)
{
    size_t cap = (size_t)lines * 80 + 256;
    char *t = malloc(cap);
    ck_assert(t);
    size_t n = (size_t)snprintf(t, cap,
                                "#EXTM3U\n#EXT-X-VERSION:9\n"
                                "#EXT-X-TARGETDURATION:2\n"
                                "#EXT-X-MEDIA-SEQUENCE:%d\n",
                                seed);
    for (int i = 0; i < lines; i++)
        n += (size_t)snprintf(t + n, cap - n,
                              "#EXT-X-PART:DURATION=0.33%d00,URI=\"%d.%d.m4s\""
                              "\n",
                              i % 10, seed + i / 6, i % 6);
    pd_buf_t *b = pd_buf_from(t, n);
    free(t);
    ck_assert(b);
    return b;
}

/* Inflates a gzip stream; returns a malloc'd buffer and its length. */
static uint8_t *gunzip(const uint8_t *z, size_t zlen, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK); /* gzip only */
    size_t cap = zlen * 20 + 1024, n = 0;
    uint8_t *out = malloc(cap);
    ck_assert(out);
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zlen;
    int zr;
    do {
        if (n == cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert(out);
        }
        zs.next_out = out + n;
        zs.avail_out = (uInt)(cap - n);
        zr = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    } while (zr == Z_OK);
    ck_assert_msg(zr == Z_STREAM_END, "inflate: %d", zr);
    ck_assert_int_eq(zs.avail_in, 0); /* nothing after the trailer */
    inflateEnd(&zs);
    *out_len = n;
    return out;
}

static void check_round_trip(const pd_buf_t *src, const pd_buf_t *gz)
{
    ck_assert(gz);
    ck_assert_uint_lt(gz->len, src->len);
    ck_assert_uint_ge(gz->len, 18);
    /* gzip magic, deflate */
    ck_assert_int_eq(gz->data[0], 0x1f);
    ck_assert_int_eq(gz->data[1], 0x8b);
    ck_assert_int_eq(gz->data[2], 8);
    size_t n;
    uint8_t *plain = gunzip(gz->data, gz->len, &n);
    ck_assert_uint_eq(n, src->len);
    ck_assert(memcmp(plain, src->data, n) == 0);
    free(plain);
}

START_TEST(gzip_round_trip)
{
    int sizes[] = {3, 40, 400, 4000};
    for (int i = 0; i < 4; i++) {
        pd_buf_t *src = playlist(sizes[i], i + 1);
        pd_buf_t *gz = NULL;
        ck_assert_int_eq(httpd_gzip(src->data, src->len, &gz), PD_OK);
        check_round_trip(src, gz);
        ck_assert_int_eq(refs(gz), 1);
        pd_buf_unref(&gz);
        pd_buf_unref(&src);
    }
}
END_TEST

/* Nothing to gain: PD_EAGAIN and no buffer. */
START_TEST(gzip_not_smaller)
{
    pd_buf_t *gz = (pd_buf_t *)1;
    ck_assert_int_eq(httpd_gzip((const uint8_t *)"", 0, &gz), PD_EAGAIN);
    ck_assert(gz == NULL);
    ck_assert_int_eq(httpd_gzip(NULL, 0, &gz), PD_EAGAIN);
    ck_assert_int_eq(httpd_gzip((const uint8_t *)"#EXTM3U\n", 8, &gz),
                     PD_EAGAIN);
    ck_assert(gz == NULL);
    uint8_t noise[4096];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)rand_r(&seed);
    ck_assert_int_eq(httpd_gzip(noise, sizeof(noise), &gz), PD_EAGAIN);
    ck_assert(gz == NULL);
    ck_assert_int_eq(httpd_gzip(NULL, 5, &gz), PD_EINVAL);
}
END_TEST

/* ---- the cache ----------------------------------------------------------- */

#define MB ((size_t)1 << 20)

START_TEST(cache_same_pointer_same_gzip)
{
    httpd_gzcache_t *c;
    ck_assert_int_eq(httpd_gzcache_create(4, MB, &c), PD_OK);
    pd_buf_t *src = playlist(200, 1);
    pd_buf_t *a = NULL, *b = NULL;
    ck_assert_int_eq(httpd_gzcache_get(c, src, &a), PD_OK);
    ck_assert_int_eq(httpd_gzcache_get(c, src, &b), PD_OK);
    ck_assert(a && a == b);
    check_round_trip(src, a);
    ck_assert_int_eq(refs(src), 2); /* ours + the entry's */
    ck_assert_int_eq(refs(a), 3);   /* a, b + the entry's */
    httpd_gzcache_stats_t st;
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.compressions, 1);
    ck_assert_int_eq(st.hits, 1);
    ck_assert_int_eq(st.entries, 1);

    /* same bytes, other buffer: its own entry (keyed by the buffer) */
    pd_buf_t *twin = pd_buf_from(src->data, src->len);
    pd_buf_t *t = NULL;
    ck_assert_int_eq(httpd_gzcache_get(c, twin, &t), PD_OK);
    ck_assert(t && t != a);
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.compressions, 2);
    ck_assert_int_eq(st.entries, 2);

    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&t);
    httpd_gzcache_destroy(&c);
    ck_assert(c == NULL);
    ck_assert_int_eq(refs(src), 1); /* the cache let go */
    ck_assert_int_eq(refs(twin), 1);
    pd_buf_unref(&src);
    pd_buf_unref(&twin);
    httpd_gzcache_destroy(&c); /* NULL: no-op */
}
END_TEST

/* A body gzip cannot shrink is remembered as such: NULL, once. */
START_TEST(cache_incompressible)
{
    httpd_gzcache_t *c;
    ck_assert_int_eq(httpd_gzcache_create(4, MB, &c), PD_OK);
    pd_buf_t *src = pd_buf_from("#EXTM3U\n", 8);
    for (int i = 0; i < 3; i++) {
        pd_buf_t *z = (pd_buf_t *)1;
        ck_assert_int_eq(httpd_gzcache_get(c, src, &z), PD_OK);
        ck_assert(z == NULL);
    }
    httpd_gzcache_stats_t st;
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.compressions, 1);
    ck_assert_int_eq(st.hits, 2);
    ck_assert_int_eq(refs(src), 2);
    httpd_gzcache_destroy(&c);
    ck_assert_int_eq(refs(src), 1);
    pd_buf_unref(&src);
}
END_TEST

/* Bounded: the least recently used entry goes, with its references. */
START_TEST(cache_eviction_lru)
{
    enum { CAP = 4 };
    httpd_gzcache_t *c;
    ck_assert_int_eq(httpd_gzcache_create(CAP, MB, &c), PD_OK);
    pd_buf_t *src[CAP + 2];
    pd_buf_t *gz[CAP + 2];
    for (int i = 0; i < CAP + 2; i++)
        src[i] = playlist(50, 10 * i);
    for (int i = 0; i < CAP; i++) {
        ck_assert_int_eq(httpd_gzcache_get(c, src[i], &gz[i]), PD_OK);
        ck_assert_int_eq(refs(src[i]), 2);
    }
    /* touch 0: now 1 is the least recently used */
    pd_buf_t *again = NULL;
    ck_assert_int_eq(httpd_gzcache_get(c, src[0], &again), PD_OK);
    ck_assert(again == gz[0]);
    pd_buf_unref(&again);

    ck_assert_int_eq(httpd_gzcache_get(c, src[CAP], &gz[CAP]), PD_OK);
    httpd_gzcache_stats_t st;
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.entries, CAP);
    ck_assert_int_eq(st.evictions, 1);
    ck_assert_int_eq(refs(src[1]), 1); /* evicted: the cache let go */
    ck_assert_int_eq(refs(gz[1]), 1);  /* only our reference is left */
    ck_assert_int_eq(refs(src[0]), 2);
    ck_assert_int_eq(refs(gz[0]), 2);

    /* the next miss evicts 2 (0 was touched after it) */
    ck_assert_int_eq(httpd_gzcache_get(c, src[CAP + 1], &gz[CAP + 1]), PD_OK);
    ck_assert_int_eq(refs(src[2]), 1);
    ck_assert_int_eq(refs(src[0]), 2);

    /* an evicted buffer comes back as a new compression */
    pd_buf_t *back = NULL;
    ck_assert_int_eq(httpd_gzcache_get(c, src[1], &back), PD_OK);
    ck_assert(back && back != gz[1]);
    check_round_trip(src[1], back);
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.compressions, CAP + 3);
    ck_assert_int_eq(st.entries, CAP);
    pd_buf_unref(&back);

    httpd_gzcache_destroy(&c);
    for (int i = 0; i < CAP + 2; i++) {
        ck_assert_int_eq(refs(src[i]), 1);
        ck_assert_int_eq(refs(gz[i]), 1);
        pd_buf_unref(&src[i]);
        pd_buf_unref(&gz[i]);
    }
}
END_TEST

START_TEST(cache_bad_arguments)
{
    httpd_gzcache_t *c = (httpd_gzcache_t *)1;
    ck_assert_int_eq(httpd_gzcache_create(0, MB, &c), PD_EINVAL);
    ck_assert(c == NULL);
    ck_assert_int_eq(httpd_gzcache_create(1, 0, &c), PD_EINVAL);
    ck_assert_int_eq(httpd_gzcache_create(1, MB, &c), PD_OK);
    pd_buf_t *z = (pd_buf_t *)1;
    ck_assert_int_eq(httpd_gzcache_get(c, NULL, &z), PD_EINVAL);
    ck_assert(z == NULL);
    /* capacity 1: every new buffer evicts the previous one */
    pd_buf_t *a = playlist(30, 1), *b = playlist(30, 2);
    pd_buf_t *za = NULL, *zb = NULL;
    ck_assert_int_eq(httpd_gzcache_get(c, a, &za), PD_OK);
    ck_assert_int_eq(httpd_gzcache_get(c, b, &zb), PD_OK);
    ck_assert_int_eq(refs(a), 1);
    ck_assert_int_eq(refs(b), 2);
    httpd_gzcache_destroy(&c);
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&za);
    pd_buf_unref(&zb);
}
END_TEST

/* Bounded in bytes too: sources plus gzips kept alive stay under the
 * budget, the least recently used entries go first, and a buffer larger
 * than the whole budget is compressed but not kept. */
START_TEST(cache_byte_budget)
{
    pd_buf_t *src[4];
    pd_buf_t *gz[4];
    for (int i = 0; i < 4; i++)
        src[i] = playlist(100, 100 * i); /* same size, ~5 kB */
    pd_buf_t *probe = NULL;
    ck_assert_int_eq(httpd_gzip(src[0]->data, src[0]->len, &probe), PD_OK);
    size_t one = src[0]->len + probe->len;
    pd_buf_unref(&probe);

    /* room for two entries and a half */
    size_t budget = one * 5 / 2;
    httpd_gzcache_t *c;
    ck_assert_int_eq(httpd_gzcache_create(64, budget, &c), PD_OK);
    httpd_gzcache_stats_t st;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(httpd_gzcache_get(c, src[i], &gz[i]), PD_OK);
        ck_assert(gz[i]);
        httpd_gzcache_stats(c, &st);
        ck_assert_int_le(st.bytes, (int64_t)budget);
        ck_assert_int_le(st.entries, 2);
    }
    ck_assert_int_eq(st.entries, 2);
    ck_assert_int_eq(st.evictions, 2);
    ck_assert_int_eq(refs(src[0]), 1);
    ck_assert_int_eq(refs(src[1]), 1);
    ck_assert_int_eq(refs(src[2]), 2);
    ck_assert_int_eq(refs(src[3]), 2);
    httpd_gzcache_destroy(&c);

    /* a budget smaller than one entry: answered, never kept */
    ck_assert_int_eq(httpd_gzcache_create(64, one - 1, &c), PD_OK);
    for (int k = 0; k < 2; k++) {
        pd_buf_t *z = NULL;
        ck_assert_int_eq(httpd_gzcache_get(c, src[0], &z), PD_OK);
        check_round_trip(src[0], z);
        ck_assert_int_eq(refs(z), 1);
        pd_buf_unref(&z);
    }
    httpd_gzcache_stats(c, &st);
    ck_assert_int_eq(st.entries, 0);
    ck_assert_int_eq(st.bytes, 0);
    ck_assert_int_eq(st.compressions, 2);
    ck_assert_int_eq(refs(src[0]), 1);
    httpd_gzcache_destroy(&c);

    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(refs(src[i]), 1);
        ck_assert_int_eq(refs(gz[i]), 1);
        pd_buf_unref(&src[i]);
        pd_buf_unref(&gz[i]);
    }
}
END_TEST

/* Many threads on few buffers (as a released crowd of held requests):
 * one entry per buffer, every answer right. */
enum { NTHREADS = 8, NBUFS = 16, ROUNDS = 3000 };
static pd_buf_t *shared_src[NBUFS];
static size_t shared_plain_len[NBUFS];

struct worker {
    httpd_gzcache_t *c;
    unsigned seed;
    int bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int k = (int)(rand_r(&w->seed) % NBUFS);
        pd_buf_t *z = NULL;
        if (httpd_gzcache_get(w->c, shared_src[k], &z) || !z) {
            w->bad++;
            continue;
        }
        /* cheap check every time (the gzip trailer's ISIZE), a full
         * inflate now and then */
        const uint8_t *t = z->data + z->len - 4;
        size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 |
                       (size_t)t[3] << 24;
        if (isize != shared_plain_len[k])
            w->bad++;
        if (i % 500 == 0) {
            size_t n;
            uint8_t *p = gunzip(z->data, z->len, &n);
            if (n != shared_src[k]->len ||
                memcmp(p, shared_src[k]->data, n) != 0)
                w->bad++;
            free(p);
        }
        pd_buf_unref(&z);
    }
    return NULL;
}

START_TEST(cache_threads)
{
    size_t caps[] = {NBUFS * 2, NBUFS / 2};
    for (int ci = 0; ci < 2; ci++) {
        httpd_gzcache_t *c;
        ck_assert_int_eq(httpd_gzcache_create(caps[ci], MB, &c), PD_OK);
        for (int k = 0; k < NBUFS; k++) {
            shared_src[k] = playlist(100 + k * 10, k);
            shared_plain_len[k] = shared_src[k]->len;
        }
        pthread_t th[NTHREADS];
        struct worker w[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) {
            w[i] = (struct worker){c, (unsigned)(i + 1) * 7919u, 0};
            ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]),
                             0);
        }
        int bad = 0;
        for (int i = 0; i < NTHREADS; i++) {
            pthread_join(th[i], NULL);
            bad += w[i].bad;
        }
        ck_assert_int_eq(bad, 0);
        httpd_gzcache_stats_t st;
        httpd_gzcache_stats(c, &st);
        if (caps[ci] >= NBUFS) {
            /* concurrent misses may compress twice, but keep one entry */
            ck_assert_int_eq(st.entries, NBUFS);
            ck_assert_int_eq(st.evictions, 0);
            ck_assert_int_ge(st.compressions, NBUFS);
            for (int k = 0; k < NBUFS; k++)
                ck_assert_int_eq(refs(shared_src[k]), 2);
        } else {
            ck_assert_int_eq(st.entries, (int64_t)caps[ci]);
            ck_assert_int_gt(st.evictions, 0);
        }
        ck_assert_int_eq(st.hits + st.compressions, (int64_t)NTHREADS * ROUNDS);
        httpd_gzcache_destroy(&c);
        for (int k = 0; k < NBUFS; k++) {
            ck_assert_int_eq(refs(shared_src[k]), 1);
            pd_buf_unref(&shared_src[k]);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gzip");
    TCase *tc = tcase_create("accept_encoding");
    tcase_add_test(tc, ae_plain_tokens);
    tcase_add_test(tc, ae_weights);
    tcase_add_test(tc, ae_star);
    tcase_add_test(tc, ae_malformed_elements);
    tcase_add_test(tc, ae_forbidden_bytes);
    tcase_add_test(tc, ae_explicit_length);
    tcase_add_test(tc, ae_limits);
    tcase_add_test(tc, ae_repeated_headers);
    tcase_add_test(tc, ae_random);
    suite_add_tcase(s, tc);

    tc = tcase_create("compress");
    tcase_add_test(tc, gzip_round_trip);
    tcase_add_test(tc, gzip_not_smaller);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cache_same_pointer_same_gzip);
    tcase_add_test(tc, cache_incompressible);
    tcase_add_test(tc, cache_eviction_lru);
    tcase_add_test(tc, cache_bad_arguments);
    tcase_add_test(tc, cache_byte_budget);
    tcase_add_test(tc, cache_threads);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
