/*
 * tests/unit/test_token.c - signed playback URLs: the token format and
 * its checks (core/token.c), the '*' glob, hex keys, adding a token to
 * every URI of a playlist and the cache of those copies (httpd/signed.c),
 * and storage's playback protection (storage/playback.c: the key file,
 * the per-stream marks, signing and checking).
 *
 * Expected HMACs are computed here with OpenSSL's one-shot HMAC() over
 * the exact signed bytes, plus two vectors computed outside C (Python's
 * hmac module) and pasted in. Token checks take the time as an argument,
 * so the pure tests use a fixed "now" (T0) and never read the clock; the
 * storage tests that must use the clock keep margins of many seconds or
 * bracket the server's time between two reads of time(NULL). Random
 * inputs come from a fixed-seed generator (reproducible). Storage tests
 * work in their own tl_mkdtemp() directory; Check forks each test. No
 * key is ever printed (assertions on secrets never quote them).
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/token.h"
#include "httpd/httpd_int.h"
#include "storage/st_int.h"
#include "storage/storage.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

#define T0 1700000000LL   /* "now" of the pure tests */
#define EXP (T0 + 3600)   /* 1700003600 */
#define BIG 4096          /* room for any token we build */

static const uint8_t K[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                              11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                              22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t K2[32] = {0xa5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                               11,   12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                               22,   23, 24, 25, 26, 27, 28, 29, 30, 31};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

/* body + "~hmac=" + HMAC-SHA256(key, body) in lowercase hex, computed
 * here independently of token.c. body may hold any bytes (blen). */
static size_t sign_raw_n(const uint8_t *key, size_t keylen, const char *body,
                         size_t blen, char *out, size_t outsize)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)keylen,
                               (const unsigned char *)body, blen, mac,
                               &maclen));
    ck_assert_uint_eq(maclen, 32);
    ck_assert_uint_lt(blen + 6 + 64, outsize);
    memcpy(out, body, blen);
    memcpy(out + blen, "~hmac=", 6);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + blen + 6 + 2 * i, 3, "%02x", mac[i]);
    return blen + 70;
}

static size_t sign_raw(const char *body, char *out, size_t outsize)
{
    return sign_raw_n(K, sizeof(K), body, strlen(body), out, outsize);
}

/* pd_token_check of token[0..tlen) for path at now with key K; checks
 * that the return code agrees with why. Returns why. */
static pd_token_why_t chk_n(const char *tok, size_t tlen, const char *path,
                            int64_t now)
{
    pd_token_why_t why = (pd_token_why_t)-1;
    int rc = pd_token_check(K, sizeof(K), tok, tlen, path,
                            path ? strlen(path) : 0, now, &why);
    if (why == PD_TOKEN_OK)
        ck_assert_int_eq(rc, 0);
    else
        ck_assert_int_eq(rc, PD_EPERM);
    return why;
}

static pd_token_why_t chk(const char *tok, const char *path, int64_t now)
{
    return chk_n(tok, tok ? strlen(tok) : 0, path, now);
}

/* A token for acl (K, no st, exp EXP). */
static void mk(const char *acl, char *out, size_t outsize)
{
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, acl, out, outsize),
                     0);
}

#define ck_why(tok, path, now, want)                                          \
    do {                                                                      \
        pd_token_why_t w_ = chk((tok), (path), (now));                        \
        ck_assert_msg(w_ == (want), "%s for %s: %s, want %s", (tok),         \
                      (path), pd_token_why_name(w_), pd_token_why_name(want)); \
    } while (0)

/* ---- make / check -------------------------------------------------------- */

START_TEST(make_check_round_trip)
{
    char t[BIG];
    mk("/live/show/*", t, sizeof(t));
    const char *pre = "exp=1700003600~acl=/live/show/*~hmac=";
    ck_assert(strncmp(t, pre, strlen(pre)) == 0);
    ck_assert_uint_eq(strlen(t), strlen(pre) + 64);
    for (size_t i = strlen(pre); i < strlen(t); i++)
        ck_assert((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'));
    ck_assert(pd_token_chars_ok(t, strlen(t)));
    ck_why(t, "/live/show/index.m3u8", T0, PD_TOKEN_OK);
    ck_why(t, "/live/show/video/12.3.m4s", T0, PD_TOKEN_OK);
    /* why may be NULL */
    const char *p = "/live/show/video/init-1.mp4";
    ck_assert_int_eq(
        pd_token_check(K, sizeof(K), t, strlen(t), p, strlen(p), T0, NULL), 0);
    ck_assert_int_eq(pd_token_check(K, sizeof(K), t, strlen(t), "/x", 2, T0,
                                    NULL),
                     PD_EPERM);
    /* explicit lengths: bytes after tlen / plen are not looked at */
    char t2[BIG];
    snprintf(t2, sizeof(t2), "%.3000s\"& #junk", t);
    ck_assert_int_eq(chk_n(t2, strlen(t), "/live/show/a", T0), PD_TOKEN_OK);
    ck_assert_int_eq(chk_n(t2, strlen(t) - 1, "/live/show/a", T0),
                     PD_TOKEN_MALFORMED);
    const char *q = "/live/show/a.m4s?x=1";
    ck_assert_int_eq(
        pd_token_check(K, sizeof(K), t, strlen(t), q, 15, T0, NULL), 0);
    /* the longest key works too */
    uint8_t k64[PD_TOKEN_KEY_MAX];
    memset(k64, 7, sizeof(k64));
    ck_assert_int_eq(
        pd_token_make(k64, sizeof(k64), 0, EXP, "/a/*", t, sizeof(t)), 0);
    ck_assert_int_eq(pd_token_check(k64, sizeof(k64), t, strlen(t), "/a/b", 4,
                                    T0, NULL),
                     0);
}
END_TEST

START_TEST(known_answer_vectors)
{
    char t[BIG], want[BIG];
    /* computed with Python: hmac.new(bytes(range(32)), body, sha256) */
    mk("/live/show/*", t, sizeof(t));
    ck_assert_str_eq(t, "exp=1700003600~acl=/live/show/*~hmac="
                        "cab5033549ce03ea179d659910380ad7b8973830d43e3e25587be"
                        "37978bb9688");
    ck_assert_int_eq(pd_token_make(K, sizeof(K), T0, EXP, "/live/show/*!/vod/7/*",
                                   t, sizeof(t)),
                     0);
    ck_assert_str_eq(t, "st=1700000000~exp=1700003600~acl=/live/show/*!/vod/7/"
                        "*~hmac=7ca57f28a3fd52980161715981cc6694ba0b0b6e7d016"
                        "776bf4d3cfcb8034899");
    /* and OpenSSL's one-shot HMAC() over the exact string */
    sign_raw("exp=1700003600~acl=/live/show/*", want, sizeof(want));
    mk("/live/show/*", t, sizeof(t));
    ck_assert_str_eq(t, want);
    sign_raw("exp=1800000000~acl=/a/*!/b/c", want, sizeof(want));
    ck_assert_int_eq(
        pd_token_make(K, sizeof(K), 0, 1800000000, "/a/*!/b/c", t, sizeof(t)),
        0);
    ck_assert_str_eq(t, want);
    /* a token made elsewhere (same bytes) checks */
    ck_why(want, "/b/c", T0, PD_TOKEN_OK);
}
END_TEST

START_TEST(start_time_field)
{
    char t[BIG];
    ck_assert_int_eq(
        pd_token_make(K, sizeof(K), T0 + 100, EXP, "/a/*", t, sizeof(t)), 0);
    const char *pre = "st=1700000100~exp=1700003600~acl=/a/*~hmac=";
    ck_assert(strncmp(t, pre, strlen(pre)) == 0);
    ck_why(t, "/a/x", T0, PD_TOKEN_EARLY);
    ck_why(t, "/a/x", T0 + 99, PD_TOKEN_EARLY);
    ck_why(t, "/a/x", T0 + 100, PD_TOKEN_OK); /* st <= now */
    ck_why(t, "/a/x", EXP - 1, PD_TOKEN_OK);
    ck_why(t, "/a/x", EXP, PD_TOKEN_EXPIRED);
    /* st is signed: dropping it breaks the HMAC */
    ck_why(t + strlen("st=1700000100~"), "/a/x", T0 + 200, PD_TOKEN_BAD_HMAC);
    /* bad times */
    ck_assert_int_eq(pd_token_make(K, sizeof(K), -1, EXP, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), EXP, EXP, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(
        pd_token_make(K, sizeof(K), EXP + 1, EXP, "/a/*", t, sizeof(t)),
        PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, 0, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, -5, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
}
END_TEST

START_TEST(expiry_boundary)
{
    char t[BIG];
    mk("/a/*", t, sizeof(t));
    ck_why(t, "/a/x", EXP, PD_TOKEN_EXPIRED); /* exp == now */
    ck_why(t, "/a/x", EXP - 1, PD_TOKEN_OK);
    ck_why(t, "/a/x", EXP + 1, PD_TOKEN_EXPIRED);
    ck_why(t, "/a/x", INT64_MAX, PD_TOKEN_EXPIRED);
    ck_why(t, "/a/x", 0, PD_TOKEN_OK);
    /* exp=0 is canonical and always expired */
    char r[BIG];
    sign_raw("exp=0~acl=/a/*", r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_EXPIRED);
    /* the checks happen in order: signature, st, exp, path */
    ck_why(t, "/b/x", EXP, PD_TOKEN_EXPIRED);
}
END_TEST

START_TEST(tampered_every_byte)
{
    char t[BIG];
    ck_assert_int_eq(pd_token_make(K, sizeof(K), T0 - 10, EXP,
                                   "/live/show/*!/vod/7/*", t, sizeof(t)),
                     0);
    size_t n = strlen(t);
    ck_why(t, "/live/show/x", T0, PD_TOKEN_OK);
    for (size_t i = 0; i < n; i++) {
        char orig = t[i];
        for (int v = 0; v < 256; v++) {
            if ((char)v == orig)
                continue;
            t[i] = (char)v;
            pd_token_why_t w = chk_n(t, n, "/live/show/x", T0);
            ck_assert_msg(w != PD_TOKEN_OK, "byte %zu = 0x%02x accepted", i, v);
        }
        /* a one-bit flip in the signed part or the digest is caught by
         * the HMAC or the syntax, never accepted */
        t[i] = (char)(orig ^ 1);
        pd_token_why_t w = chk_n(t, n, "/live/show/x", T0);
        ck_assert(w == PD_TOKEN_BAD_HMAC || w == PD_TOKEN_MALFORMED);
        t[i] = orig;
    }
    /* every digit of the digest matters: a valid other hex digit is a bad
     * signature (not a syntax error) */
    for (size_t i = n - 64; i < n; i++) {
        char orig = t[i];
        t[i] = orig == '0' ? '1' : '0';
        ck_assert_int_eq(chk_n(t, n, "/live/show/x", T0), PD_TOKEN_BAD_HMAC);
        t[i] = orig;
    }
    ck_why(t, "/live/show/x", T0, PD_TOKEN_OK);
}
END_TEST

/* Replaces the first occurrence of from in s with to. */
static void replace(char *s, size_t size, const char *from, const char *to)
{
    char *p = strstr(s, from);
    ck_assert_ptr_nonnull(p);
    char rest[BIG];
    snprintf(rest, sizeof(rest), "%s", p + strlen(from));
    snprintf(p, size - (size_t)(p - s), "%s%s", to, rest);
}

START_TEST(changed_fields_keep_hmac)
{
    char t[BIG], x[BIG];
    mk("/live/show/*", t, sizeof(t));
    const char *from[] = {"exp=1700003600", "exp=1700003600", "acl=/live/show/*",
                          "acl=/live/show/*", "acl=/live/show/*",
                          "exp=1700003600~acl=/live/show/*"};
    const char *to[] = {"exp=1900003600", "exp=1700003601", "acl=/live/*",
                        "acl=/live/show/*!/live/other/*", "acl=/*",
                        "acl=/live/show/*~exp=1700003600"};
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        snprintf(x, sizeof(x), "%s", t);
        replace(x, sizeof(x), from[i], to[i]);
        ck_why(x, "/live/show/index.m3u8", T0, PD_TOKEN_BAD_HMAC);
    }
    /* fields added in front of a valid signature */
    snprintf(x, sizeof(x), "st=1~%.3000s", t);
    ck_why(x, "/live/show/index.m3u8", T0, PD_TOKEN_BAD_HMAC);
    snprintf(x, sizeof(x), "%s", t);
    replace(x, sizeof(x), "~hmac=", "~id=me~hmac=");
    ck_why(x, "/live/show/index.m3u8", T0, PD_TOKEN_BAD_HMAC);
}
END_TEST

START_TEST(other_key_refused)
{
    char t[BIG];
    ck_assert_int_eq(pd_token_make(K2, sizeof(K2), 0, EXP, "/a/*", t, sizeof(t)),
                     0);
    ck_why(t, "/a/x", T0, PD_TOKEN_BAD_HMAC);
    ck_assert_int_eq(pd_token_check(K2, sizeof(K2), t, strlen(t), "/a/x", 4, T0,
                                    NULL),
                     0);
    /* a prefix of the right key is another key */
    mk("/a/*", t, sizeof(t));
    pd_token_why_t why;
    ck_assert_int_eq(pd_token_check(K, 16, t, strlen(t), "/a/x", 4, T0, &why),
                     PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_BAD_HMAC);
    /* unusable key lengths never accept */
    ck_assert_int_eq(pd_token_check(K, 15, t, strlen(t), "/a/x", 4, T0, &why),
                     PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MALFORMED);
    uint8_t k65[PD_TOKEN_KEY_MAX + 1] = {0};
    ck_assert_int_eq(
        pd_token_check(k65, sizeof(k65), t, strlen(t), "/a/x", 4, T0, &why),
        PD_EPERM);
    ck_assert_int_eq(pd_token_check(NULL, 32, t, strlen(t), "/a/x", 4, T0, &why),
                     PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(wrong_path_and_star)
{
    char t[BIG];
    mk("/live/a/*", t, sizeof(t));
    ck_why(t, "/live/b/index.m3u8", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/live/ab/index.m3u8", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/live/a", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/LIVE/a/index.m3u8", T0, PD_TOKEN_WRONG_PATH); /* bytes */
    ck_why(t, "live/a/index.m3u8", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/vod/live/a/x", T0, PD_TOKEN_WRONG_PATH); /* anchored */
    ck_why(t, "/live/a/", T0, PD_TOKEN_OK);             /* '*' may be empty */
    ck_why(t, "/live/a/index.m3u8", T0, PD_TOKEN_OK);
    /* '*' runs over '/' too: the whole subtree */
    ck_why(t, "/live/a/video/12.3.m4s", T0, PD_TOKEN_OK);
    /* the match is textual: "/live/a/../b/x" is under "/live/a/" as far as
     * the token knows; httpd's router refuses dot segments before this */
    ck_why(t, "/live/a/../b/x", T0, PD_TOKEN_OK);
    /* no star: exact */
    mk("/live/a", t, sizeof(t));
    ck_why(t, "/live/a", T0, PD_TOKEN_OK);
    ck_why(t, "/live/a/x", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/live/a/", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/live/ab", T0, PD_TOKEN_WRONG_PATH);
    /* the prefix trick: without the '/' before '*', "/live/a*" also
     * covers /live/ab/..., which is why the API signs "/live/<name>/" "*" */
    mk("/live/a*", t, sizeof(t));
    ck_why(t, "/live/ab/index.m3u8", T0, PD_TOKEN_OK);
    ck_why(t, "/live/a/index.m3u8", T0, PD_TOKEN_OK);
    ck_why(t, "/live/b/index.m3u8", T0, PD_TOKEN_WRONG_PATH);
    /* a path NULL is malformed, not a match */
    ck_assert_int_eq(chk(t, NULL, T0), PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(multiple_acl_patterns)
{
    char t[BIG];
    mk("/live/a/*!/live/b/index.m3u8!/vod/7/*", t, sizeof(t));
    ck_why(t, "/live/a/x.m4s", T0, PD_TOKEN_OK);
    ck_why(t, "/live/b/index.m3u8", T0, PD_TOKEN_OK);
    ck_why(t, "/vod/7/video/1.m4s", T0, PD_TOKEN_OK);
    ck_why(t, "/live/b/video/1.m4s", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/vod/70/x", T0, PD_TOKEN_WRONG_PATH);
    ck_why(t, "/live/c/x", T0, PD_TOKEN_WRONG_PATH);
    /* '!' is a separator, never part of a pattern */
    ck_why(t, "/live/b/index.m3u8!/vod/7/x", T0, PD_TOKEN_WRONG_PATH);
    /* empty patterns, patterns without a leading '/' */
    const char *bad[] = {"/a!!/b", "/a!", "!/a", "/a!b", "!", "/a!*", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(pd_token_make(K, sizeof(K), 0, EXP, bad[i], t,
                                    sizeof(t)) == PD_EINVAL,
                      "acl %s", bad[i]);
        char body[256], r[BIG];
        snprintf(body, sizeof(body), "exp=1700003600~acl=%s", bad[i]);
        sign_raw(body, r, sizeof(r));
        ck_assert_msg(chk(r, "/a", T0) == PD_TOKEN_MALFORMED, "acl %s", bad[i]);
    }
}
END_TEST

START_TEST(id_and_data_fields)
{
    char r[BIG], x[BIG];
    sign_raw("exp=1700003600~acl=/a/*~id=viewer42~data=a.b:c,d-e_f=g*h!i/j",
             r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_OK);
    /* covered by the HMAC */
    snprintf(x, sizeof(x), "%s", r);
    replace(x, sizeof(x), "id=viewer42", "id=viewer43");
    ck_why(x, "/a/x", T0, PD_TOKEN_BAD_HMAC);
    snprintf(x, sizeof(x), "%s", r);
    replace(x, sizeof(x), "~data=a.b:c,d-e_f=g*h!i/j", "");
    ck_why(x, "/a/x", T0, PD_TOKEN_BAD_HMAC);
    /* any order the signer chose is fine (it is what was signed) */
    sign_raw("data=1~id=2~acl=/a/*~exp=1700003600~st=1699999999", r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_OK);
    /* empty values and repeats are not */
    const char *bad[] = {"exp=1700003600~acl=/a/*~id=",
                         "exp=1700003600~acl=/a/*~data=",
                         "exp=1700003600~acl=/a/*~id=1~id=1",
                         "exp=1700003600~acl=/a/*~data=1~data=2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sign_raw(bad[i], r, sizeof(r));
        ck_assert_msg(chk(r, "/a/x", T0) == PD_TOKEN_MALFORMED, "%s", bad[i]);
    }
}
END_TEST

/* Every body is correctly signed: the refusal is the syntax's. */
static void expect_malformed_bodies(const char *const *bodies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char r[BIG];
        sign_raw(bodies[i], r, sizeof(r));
        pd_token_why_t w = chk(r, "/a/x", T0);
        ck_assert_msg(w == PD_TOKEN_MALFORMED, "case %zu (%s): %s", i,
                      bodies[i], pd_token_why_name(w));
    }
}

START_TEST(unknown_fields_refused)
{
    const char *b[] = {
        "exp=1700003600~acl=/a/*~ip=127.0.0.1",
        "exp=1700003600~acl=/a/*~url=/a/x",
        "exp=1700003600~acl=/a/*~foo=bar",
        "ip=127.0.0.1~exp=1700003600~acl=/a/*",
        "EXP=1700003600~acl=/a/*",
        "exp=1700003600~ACL=/a/*",
        "exp=1700003600~acl=/a/*~Id=1",
        "exp=1700003600~acl=/a/*~flag",
        "exp=1700003600~acl=/a/*~=x",
        "exp=1700003600~acl=/a/*~ex=1",
        "exp=1700003600~acl=/a/*~expx=1",
        "exp=1700003600~acl=/a/*~sta=1",
    };
    expect_malformed_bodies(b, sizeof(b) / sizeof(b[0]));
}
END_TEST

START_TEST(duplicate_fields_refused)
{
    const char *b[] = {
        "exp=1700003600~exp=1700003600~acl=/a/*",
        "exp=1700003600~acl=/a/*~exp=1900000000",
        "exp=1700003600~acl=/a/*~acl=/a/*",
        "exp=1700003600~acl=/b/*~acl=/a/*",
        "st=1~st=1~exp=1700003600~acl=/a/*",
    };
    expect_malformed_bodies(b, sizeof(b) / sizeof(b[0]));
}
END_TEST

START_TEST(missing_fields_refused)
{
    const char *b[] = {
        "acl=/a/*",
        "exp=1700003600",
        "st=1~acl=/a/*",
        "id=1~data=2",
    };
    expect_malformed_bodies(b, sizeof(b) / sizeof(b[0]));
    char t[BIG], x[BIG];
    mk("/a/*", t, sizeof(t));
    size_t n = strlen(t);
    /* no hmac at all, the body only */
    snprintf(x, sizeof(x), "%.*s", (int)(n - 70), t);
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* the digest only */
    ck_why(t + n - 70, "/a/x", T0, PD_TOKEN_MALFORMED);
    ck_why(t + n - 69, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* a digest one digit short or long */
    snprintf(x, sizeof(x), "%.*s", (int)(n - 1), t);
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    snprintf(x, sizeof(x), "%.3000s0", t);
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* "hmac" spelt otherwise */
    snprintf(x, sizeof(x), "%s", t);
    replace(x, sizeof(x), "~hmac=", "~HMAC=");
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    snprintf(x, sizeof(x), "%s", t);
    replace(x, sizeof(x), "~hmac=", "~mac==");
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(hmac_uppercase_refused)
{
    char t[BIG];
    mk("/a/*", t, sizeof(t));
    size_t n = strlen(t);
    bool letter = false;
    for (size_t i = n - 64; i < n; i++)
        if (t[i] >= 'a' && t[i] <= 'f') {
            letter = true;
            t[i] = (char)(t[i] - 'a' + 'A');
        }
    ck_assert(letter); /* this vector has hex letters */
    ck_why(t, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* one upper-case digit is enough */
    mk("/a/*", t, sizeof(t));
    for (size_t i = n - 64; i < n; i++)
        if (t[i] >= 'a' && t[i] <= 'f') {
            t[i] = (char)(t[i] - 'a' + 'A');
            break;
        }
    ck_why(t, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* non-hex in the digest */
    mk("/a/*", t, sizeof(t));
    t[n - 1] = 'g';
    ck_why(t, "/a/x", T0, PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(hmac_not_last_refused)
{
    char t[BIG], x[BIG], r[BIG];
    mk("/a/*", t, sizeof(t));
    size_t n = strlen(t);
    /* hmac first, the rest after */
    snprintf(x, sizeof(x), "hmac=%.64s~exp=1700003600~acl=/a/*", t + n - 64);
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* a field after the digest */
    snprintf(x, sizeof(x), "%.3000s~id=1", t);
    ck_why(x, "/a/x", T0, PD_TOKEN_MALFORMED);
    /* two digests, the last one correct over everything before it */
    sign_raw(t, r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(empty_fields_and_separators)
{
    const char *b[] = {
        "exp=1700003600~~acl=/a/*",
        "~exp=1700003600~acl=/a/*",
        "exp=1700003600~acl=/a/*~",
        "exp=1700003600~acl=/a/*~~",
        "~",
        "exp=~acl=/a/*",
        "exp=1700003600~acl=",
        "st=~exp=1700003600~acl=/a/*",
        "exp==1700003600~acl=/a/*",
        "exp=1700003600~acl==/a/*",
        "exp=1700003600~acl=/a/*=",
        "exp=1700003600=~acl=/a/*",
    };
    expect_malformed_bodies(b, sizeof(b) / sizeof(b[0]));
    /* empty body: "~hmac=<digest>" (with an HMAC of the empty string) */
    char r[BIG];
    sign_raw_n(K, sizeof(K), "", 0, r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_MALFORMED);
    ck_why("~", "/a/x", T0, PD_TOKEN_MALFORMED);
    ck_why("~~~~~~", "/a/x", T0, PD_TOKEN_MALFORMED);
}
END_TEST

START_TEST(non_canonical_numbers)
{
    const char *b[] = {
        "exp=01700003600~acl=/a/*",
        "exp=+1700003600~acl=/a/*",
        "exp=-1700003600~acl=/a/*",
        "exp=1700003600.0~acl=/a/*",
        "exp=1.7e9~acl=/a/*",
        "exp=0x65536790~acl=/a/*",
        "exp=1700003600a~acl=/a/*",
        "exp=00~acl=/a/*",
        "exp=1000000000000000000~acl=/a/*",  /* 19 digits */
        "exp=9223372036854775807~acl=/a/*",  /* INT64_MAX */
        "exp=18446744073709551617~acl=/a/*", /* wraps 2^64 */
        "exp=99999999999999999999999999999999999999~acl=/a/*",
        "st=01~exp=1700003600~acl=/a/*",
        "st=-1~exp=1700003600~acl=/a/*",
        "st=1,5~exp=1700003600~acl=/a/*",
    };
    expect_malformed_bodies(b, sizeof(b) / sizeof(b[0]));
    char r[BIG];
    /* 18 digits is the longest accepted: far in the future */
    sign_raw("exp=999999999999999999~acl=/a/*", r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_OK);
    sign_raw("st=0~exp=1700003600~acl=/a/*", r, sizeof(r));
    ck_why(r, "/a/x", T0, PD_TOKEN_OK);
}
END_TEST

/* Every token pd_token_make() accepts to make must be one that
 * pd_token_check() can parse: exp_s is allowed up to 2^62 by make. */
START_TEST(made_tokens_always_parse)
{
    const int64_t exps[] = {999999999999999999LL, 1000000000000000000LL,
                            (int64_t)1 << 62};
    for (size_t i = 0; i < sizeof(exps) / sizeof(exps[0]); i++) {
        char t[BIG];
        int rc = pd_token_make(K, sizeof(K), 0, exps[i], "/a/*", t, sizeof(t));
        if (rc != 0) {
            ck_assert_int_eq(rc, PD_EINVAL); /* refusing is fine */
            continue;
        }
        pd_token_why_t w = chk(t, "/a/x", T0);
        ck_assert_msg(w == PD_TOKEN_OK,
                      "pd_token_make(exp_s=%lld) returned 0, but "
                      "pd_token_check says %s",
                      (long long)exps[i], pd_token_why_name(w));
    }
    /* the same for st */
    char t[BIG];
    int rc = pd_token_make(K, sizeof(K), 1000000000000000000LL,
                           ((int64_t)1 << 62), "/a/*", t, sizeof(t));
    if (rc == 0) {
        pd_token_why_t w = chk(t, "/a/x", 1000000000000000001LL);
        ck_assert_msg(w == PD_TOKEN_OK, "st/exp of 19 digits: %s",
                      pd_token_why_name(w));
    }
}
END_TEST

START_TEST(chars_outside_the_set)
{
    /* the allowed set, byte by byte */
    for (int v = 0; v < 256; v++) {
        char c = (char)v;
        bool want = (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') ||
                    (v >= '0' && v <= '9') || strchr("=/*!._:,-~", v) != NULL;
        if (v == 0)
            want = false;
        ck_assert_msg(pd_token_chars_ok(&c, 1) == want, "byte 0x%02x", v);
    }
    ck_assert(!pd_token_chars_ok("", 0));
    ck_assert(!pd_token_chars_ok(NULL, 3));
    /* correctly signed tokens holding a refused byte (in acl or data) */
    const char bytes[] = {'+', '%', ' ', '"', '&', '#', '?', ';', '\n', '\r',
                          '\t', '<', '\'', '\\', '@', '$', '(', '[', '{', '|',
                          '\x7f', '\x80', '\xc3', '\xff', '\x01'};
    for (size_t i = 0; i < sizeof(bytes); i++) {
        char body[128], r[BIG];
        int bl = snprintf(body, sizeof(body),
                          "exp=1700003600~acl=/a/*~data=x%cy", bytes[i]);
        sign_raw_n(K, sizeof(K), body, (size_t)bl, r, sizeof(r));
        ck_assert_msg(chk(r, "/a/x", T0) == PD_TOKEN_MALFORMED, "byte 0x%02x",
                      (unsigned char)bytes[i]);
        bl = snprintf(body, sizeof(body), "exp=1700003600~acl=/a/%c*",
                      bytes[i]);
        sign_raw_n(K, sizeof(K), body, (size_t)bl, r, sizeof(r));
        ck_assert_msg(chk(r, "/a/x", T0) == PD_TOKEN_MALFORMED, "byte 0x%02x",
                      (unsigned char)bytes[i]);
        /* and make refuses such an acl */
        char acl[16], t[BIG];
        snprintf(acl, sizeof(acl), "/a/%c*", bytes[i]);
        ck_assert_int_eq(
            pd_token_make(K, sizeof(K), 0, EXP, acl, t, sizeof(t)), PD_EINVAL);
    }
    /* a NUL inside the length, signed over */
    char body[64] = "exp=1700003600~acl=/a/*~data=x?y";
    size_t bl = strlen(body);
    body[bl - 2] = '\0';
    char r[BIG];
    size_t rl = sign_raw_n(K, sizeof(K), body, bl, r, sizeof(r));
    ck_assert_int_eq(chk_n(r, rl, "/a/x", T0), PD_TOKEN_MALFORMED);
    /* acl: '=' and '~' are refused by make ('~' would split the field) */
    char t[BIG];
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, "/a=b/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, "/a/*~id=1", t,
                                   sizeof(t)),
                     PD_EINVAL);
}
END_TEST

START_TEST(oversize_refused)
{
    /* exactly PD_TOKEN_MAX bytes: fine */
    char acl[BIG], t[BIG];
    size_t prefix = strlen("exp=1700003600~acl=");
    size_t alen = PD_TOKEN_MAX - 70 - prefix;
    acl[0] = '/';
    memset(acl + 1, 'a', alen - 1);
    acl[alen] = '\0';
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, acl, t, sizeof(t)), 0);
    ck_assert_uint_eq(strlen(t), PD_TOKEN_MAX);
    ck_why(t, acl, T0, PD_TOKEN_OK);
    /* out exactly big enough, then one byte short */
    ck_assert_int_eq(
        pd_token_make(K, sizeof(K), 0, EXP, acl, t, PD_TOKEN_MAX + 1), 0);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, acl, t, PD_TOKEN_MAX),
                     PD_ELIMIT);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, acl, t, 0), PD_ELIMIT);
    /* one more byte: make refuses, and a correctly signed one is refused */
    acl[alen] = 'a';
    acl[alen + 1] = '\0';
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, acl, t, sizeof(t)),
                     PD_ELIMIT);
    char body[BIG];
    snprintf(body, sizeof(body), "exp=1700003600~acl=%.3000s", acl);
    size_t n = sign_raw(body, t, sizeof(t));
    ck_assert_uint_eq(n, PD_TOKEN_MAX + 1);
    ck_why(t, acl, T0, PD_TOKEN_MALFORMED);
    /* far over */
    char *huge = malloc(1 << 20);
    ck_assert_ptr_nonnull(huge);
    memset(huge, 'a', 1 << 20);
    ck_assert_int_eq(chk_n(huge, 1 << 20, "/a", T0), PD_TOKEN_MALFORMED);
    free(huge);
    /* an acl far over the limit: make refuses without overflowing */
    char *bigacl = malloc(3 * PD_TOKEN_MAX);
    ck_assert_ptr_nonnull(bigacl);
    bigacl[0] = '/';
    memset(bigacl + 1, 'b', 3 * PD_TOKEN_MAX - 2);
    bigacl[3 * PD_TOKEN_MAX - 1] = '\0';
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, bigacl, t, sizeof(t)),
                     PD_ELIMIT);
    free(bigacl);
}
END_TEST

START_TEST(missing_token)
{
    pd_token_why_t why = PD_TOKEN_OK;
    ck_assert_int_eq(
        pd_token_check(K, sizeof(K), NULL, 0, "/a/x", 4, T0, &why), PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MISSING);
    why = PD_TOKEN_OK;
    ck_assert_int_eq(
        pd_token_check(K, sizeof(K), NULL, 10, "/a/x", 4, T0, &why), PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MISSING);
    why = PD_TOKEN_OK;
    ck_assert_int_eq(pd_token_check(K, sizeof(K), "", 0, "/a/x", 4, T0, &why),
                     PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MISSING);
    /* a real token with length 0 is absent */
    char t[BIG];
    mk("/a/*", t, sizeof(t));
    ck_assert_int_eq(chk_n(t, 0, "/a/x", T0), PD_TOKEN_MISSING);
    ck_assert_int_eq(
        pd_token_check(K, sizeof(K), NULL, 0, "/a/x", 4, T0, NULL), PD_EPERM);
    /* names */
    const pd_token_why_t all[] = {PD_TOKEN_OK,         PD_TOKEN_MISSING,
                                  PD_TOKEN_MALFORMED,  PD_TOKEN_BAD_HMAC,
                                  PD_TOKEN_EXPIRED,    PD_TOKEN_EARLY,
                                  PD_TOKEN_WRONG_PATH};
    for (size_t i = 0; i < 7; i++) {
        ck_assert_str_ne(pd_token_why_name(all[i]), "?");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(pd_token_why_name(all[i]),
                             pd_token_why_name(all[j]));
    }
    ck_assert_str_eq(pd_token_why_name((pd_token_why_t)99), "?");
}
END_TEST

START_TEST(make_rejects_bad_input)
{
    char t[BIG];
    ck_assert_int_eq(pd_token_make(NULL, 32, 0, EXP, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, 15, 0, EXP, "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    uint8_t k65[PD_TOKEN_KEY_MAX + 1] = {0};
    ck_assert_int_eq(
        pd_token_make(k65, sizeof(k65), 0, EXP, "/a/*", t, sizeof(t)),
        PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, 16, 0, EXP, "/a/*", t, sizeof(t)), 0);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, NULL, t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, EXP, "/a/*", NULL, 100),
                     PD_EINVAL);
    const char *acls[] = {"",        "a/*",    "*",     "live/a/*", "/a b",
                          "/a?x=1",  "/a%2f",  "/a\"",  "/a&b",     "/a#b",
                          "/a+b",    "/a\xc3", "/a\n",  "/a~b",     "/a=b"};
    for (size_t i = 0; i < sizeof(acls) / sizeof(acls[0]); i++)
        ck_assert_msg(pd_token_make(K, sizeof(K), 0, EXP, acls[i], t,
                                    sizeof(t)) == PD_EINVAL,
                      "acl case %zu", i);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, ((int64_t)1 << 62) + 1,
                                   "/a/*", t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(
        pd_token_make(K, sizeof(K), 0, INT64_MAX, "/a/*", t, sizeof(t)),
        PD_EINVAL);
}
END_TEST

START_TEST(fuzz_random_strings)
{
    rng_state = 0x1234567887654321ULL;
    static const char alpha[] = "abcdefhimpstxl0123456789=/*!._:,-~~~~";
    char s[512];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rnd() % 300);
        int mode = i % 3;
        for (size_t k = 0; k < len; k++) {
            if (mode == 0)
                s[k] = (char)(rnd() & 0xff);
            else
                s[k] = alpha[rnd() % (sizeof(alpha) - 1)];
        }
        if (mode == 2) {
            /* shaped: fields in place, random digest */
            int n = snprintf(s, sizeof(s), "exp=%llu~acl=/%c*~hmac=",
                             (unsigned long long)(rnd() % 100000000000ULL),
                             alpha[rnd() % 14]);
            for (int k = 0; k < 64; k++)
                s[n + k] = "0123456789abcdef"[rnd() % 16];
            len = (size_t)n + 64;
        }
        pd_token_why_t w = chk_n(s, len, "/a/x", T0);
        ck_assert_msg(w != PD_TOKEN_OK, "random string %d accepted", i);
    }
}
END_TEST

START_TEST(fuzz_mutations)
{
    rng_state = 0xfeedfacecafebeefULL;
    char t[BIG];
    ck_assert_int_eq(pd_token_make(K, sizeof(K), T0 - 5, EXP, "/live/s/*!/vod/*",
                                   t, sizeof(t)),
                     0);
    size_t n = strlen(t);
    static const char pool[] = "~=0123456789abcdefhmacxpst/*!.-_:,";
    char m[BIG];
    int tried = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(m, t, n);
        size_t len = n;
        int ops = 1 + (int)(rnd() % 4);
        for (int o = 0; o < ops; o++) {
            size_t at = len ? (size_t)(rnd() % len) : 0;
            char c = (rnd() & 1) ? (char)(rnd() & 0xff)
                                 : pool[rnd() % (sizeof(pool) - 1)];
            switch (rnd() % 5) {
            case 0: /* replace */
                if (len)
                    m[at] = c;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof(m)) {
                    memmove(m + at + 1, m + at, len - at);
                    m[at] = c;
                    len++;
                }
                break;
            case 2: /* delete */
                if (len) {
                    memmove(m + at, m + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 3: /* truncate */
                len = at;
                break;
            default: { /* duplicate a run */
                size_t run = 1 + (size_t)(rnd() % 20);
                if (at + run <= len && len + run < sizeof(m)) {
                    memmove(m + at + run, m + at, len - at);
                    len += run;
                }
                break;
            }
            }
        }
        if (len == n && memcmp(m, t, n) == 0)
            continue;
        tried++;
        pd_token_why_t w = chk_n(m, len, "/live/s/index.m3u8", T0);
        ck_assert_msg(w != PD_TOKEN_OK, "mutation %d accepted", i);
    }
    ck_assert_int_gt(tried, 19000);
}
END_TEST

/* ---- glob ----------------------------------------------------------------- */

/* Reference: dynamic programming over (pattern, string), small inputs. */
static bool ref_glob(const char *p, size_t pl, const char *s, size_t sl)
{
    bool d[33][33];
    ck_assert(pl <= 32 && sl <= 32);
    memset(d, 0, sizeof(d));
    d[0][0] = true;
    for (size_t i = 1; i <= pl; i++)
        d[i][0] = d[i - 1][0] && p[i - 1] == '*';
    for (size_t i = 1; i <= pl; i++)
        for (size_t j = 1; j <= sl; j++)
            d[i][j] = p[i - 1] == '*' ? (d[i - 1][j] || d[i][j - 1])
                                      : (d[i - 1][j - 1] && p[i - 1] == s[j - 1]);
    return d[pl][sl];
}

static bool g(const char *p, const char *s)
{
    return pd_token_glob(p, strlen(p), s, strlen(s));
}

START_TEST(glob_cases)
{
    struct {
        const char *p, *s;
        bool want;
    } c[] = {
        {"", "", true},
        {"", "a", false},
        {"a", "", false},
        {"*", "", true},
        {"**", "", true},
        {"*", "anything/at/all", true},
        {"/a/b", "/a/b", true},
        {"/a/b", "/a/bc", false},
        {"/a/bc", "/a/b", false},
        {"/a/b", "/a/c", false},
        {"*.m4s", "/live/x/1.m4s", true},
        {"*.m4s", "/live/x/1.m4s.bak", false},
        {"/live/*/index.m3u8", "/live/x/index.m3u8", true},
        {"/live/*/index.m3u8", "/live/x/y/index.m3u8", true},
        {"/live/*/index.m3u8", "/live/x/index.m3u8x", false},
        {"/live/*", "/live/", true},
        {"/live/*", "/live", false},
        {"/*/x/*", "/a/x/b", true},
        {"/*/x/*", "/a/y/b", false},
        {"*a*b*c*", "xxaxxbxxcxx", true},
        {"*a*b*c*", "xxcxxbxxaxx", false},
        {"*ab", "aab", true},
        {"*ab", "abab", true},
        {"*ab", "abba", false},
        {"a*a", "a", false},
        {"a*a", "aa", true},
        {"*/*", "/", true},
        {"*x", "", false},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        ck_assert_msg(g(c[i].p, c[i].s) == c[i].want, "glob(%s, %s)", c[i].p,
                      c[i].s);
        ck_assert(ref_glob(c[i].p, strlen(c[i].p), c[i].s, strlen(c[i].s)) ==
                  c[i].want);
    }
    /* explicit lengths: not NUL-terminated, NUL bytes are plain bytes */
    ck_assert(pd_token_glob("/a/*XYZ", 4, "/a/bQ", 4));
    ck_assert(!pd_token_glob("/a/b", 4, "/a/b\0c", 6));
    ck_assert(pd_token_glob("/a/*", 4, "/a/b\0c", 6));
    ck_assert(pd_token_glob("a\0b", 3, "a\0b", 3));
}
END_TEST

START_TEST(glob_matches_reference)
{
    rng_state = 0x0123456789abcdefULL;
    static const char pa[] = "ab/**";
    static const char sa[] = "ab/";
    char p[16], s[32];
    for (int i = 0; i < 50000; i++) {
        size_t pl = (size_t)(rnd() % 9), sl = (size_t)(rnd() % 13);
        for (size_t k = 0; k < pl; k++)
            p[k] = pa[rnd() % 5];
        for (size_t k = 0; k < sl; k++)
            s[k] = sa[rnd() % 3];
        bool want = ref_glob(p, pl, s, sl);
        ck_assert_msg(pd_token_glob(p, pl, s, sl) == want,
                      "glob(%.*s, %.*s) should be %d", (int)pl, p, (int)sl, s,
                      want);
    }
}
END_TEST

START_TEST(glob_pathological)
{
    /* finishing at all within the test's timeout is the assertion: an
     * exponential backtracker would not */
    size_t n = 200000;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    memset(s, 'a', n);
    ck_assert(!pd_token_glob("*a*a*a*a*a*b", 12, s, n));
    ck_assert(pd_token_glob("*a*a*a*a*a*a", 12, s, n));
    char pat[600];
    size_t pl = 0;
    for (int i = 0; i < 40; i++) {
        pat[pl++] = '*';
        pat[pl++] = 'a';
    }
    pat[pl++] = 'b';
    ck_assert(!pd_token_glob(pat, pl, s, n));
    /* one star and a long literal tail: the O(n*m) worst case */
    pat[0] = '*';
    memset(pat + 1, 'a', 300);
    pat[301] = 'b';
    ck_assert(!pd_token_glob(pat, 302, s, 50000));
    s[49999] = 'b';
    ck_assert(pd_token_glob(pat, 302, s, 50000));
    free(s);
}
END_TEST

/* ---- keys ------------------------------------------------------------------ */

START_TEST(key_from_hex_cases)
{
    uint8_t *key = malloc(PD_TOKEN_KEY_MAX); /* exact size: ASan watches */
    ck_assert_ptr_nonnull(key);
    size_t len = 0;
    char hex[300];
    /* 32 digits (16 bytes), the minimum */
    snprintf(hex, sizeof(hex), "000102030405060708090a0b0c0d0e0f");
    ck_assert_int_eq(pd_token_key_from_hex(hex, key, &len), 0);
    ck_assert_uint_eq(len, 16);
    for (size_t i = 0; i < 16; i++)
        ck_assert_uint_eq(key[i], i);
    /* 128 digits (64 bytes), the maximum */
    for (int i = 0; i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", 255 - i);
    ck_assert_int_eq(pd_token_key_from_hex(hex, key, &len), 0);
    ck_assert_uint_eq(len, 64);
    ck_assert_uint_eq(key[0], 255);
    ck_assert_uint_eq(key[63], 192);
    /* 130 digits */
    snprintf(hex + 128, sizeof(hex) - 128, "00");
    len = 99;
    ck_assert_int_eq(pd_token_key_from_hex(hex, key, &len), PD_EINVAL);
    ck_assert_uint_eq(len, 99); /* untouched on failure */
    /* 30 digits, 31, 33 (odd), 0 */
    const char *bad[] = {
        "000102030405060708090a0b0c0d0e",
        "000102030405060708090a0b0c0d0e0",
        "000102030405060708090a0b0c0d0e0f1",
        "",
        "000102030405060708090a0b0c0d0e0g",
        "000102030405060708090a0b0c0d0e0 ",
        " 000102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0f\n",
        "0x0102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e-f",
        "00010203040506070809:a0b0c0d0e0f",
        "00010203040506070809Ga0b0c0d0e0f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pd_token_key_from_hex(bad[i], key, &len) == PD_EINVAL,
                      "case %zu", i);
    /* either case, the same bytes */
    uint8_t lo[PD_TOKEN_KEY_MAX], up[PD_TOKEN_KEY_MAX];
    size_t lol = 0, upl = 0;
    ck_assert_int_eq(pd_token_key_from_hex("abcdef0123456789ABCDEF0123456789",
                                           up, &upl),
                     0);
    ck_assert_int_eq(pd_token_key_from_hex("abcdef0123456789abcdef0123456789",
                                           lo, &lol),
                     0);
    ck_assert_uint_eq(lol, upl);
    ck_assert(memcmp(lo, up, lol) == 0);
    ck_assert_uint_eq(lo[0], 0xab);
    ck_assert_uint_eq(lo[8], 0xab);
    ck_assert_int_eq(pd_token_key_from_hex("aBcDeF0123456789AbCdEf0123456789",
                                           up, &upl),
                     0);
    ck_assert(memcmp(lo, up, lol) == 0);
    /* NULLs */
    ck_assert_int_eq(pd_token_key_from_hex(NULL, key, &len), PD_EINVAL);
    ck_assert_int_eq(
        pd_token_key_from_hex("000102030405060708090a0b0c0d0e0f", NULL, &len),
        PD_EINVAL);
    ck_assert_int_eq(
        pd_token_key_from_hex("000102030405060708090a0b0c0d0e0f", key, NULL),
        PD_EINVAL);
    free(key);
}
END_TEST

/* ---- playlists ------------------------------------------------------------- */

/* Every allowed special byte. */
#define TK "exp=9~acl=/live/s/*!/vod/*~id=a.b:c,d-e_f~hmac=0a1b"
#define Q "?token=" TK
#define A "&token=" TK

/* p[0..len) printable: \r \n \" and bytes outside ASCII escaped. */
static void escape(const uint8_t *p, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (p[i] == '\n')
            o += (size_t)snprintf(out + o, size - o, "\\n");
        else if (p[i] == '\r')
            o += (size_t)snprintf(out + o, size - o, "\\r");
        else if (p[i] < 0x20 || p[i] >= 0x7f)
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
        else
            out[o++] = (char)p[i];
    }
    out[o] = '\0';
}

/* httpd_playlist_add_token on exactly in[0..len) (an exact-size heap copy,
 * so ASan sees any over-read); expects rc 0 and want (wlen bytes). */
static void expect_pl_n(const char *in, size_t len, const char *want,
                        size_t wlen)
{
    uint8_t *src = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(src);
    memcpy(src, in, len);
    pd_buf_t *out = NULL;
    ck_assert_int_eq(httpd_playlist_add_token(src, len, "token", TK, &out), 0);
    ck_assert_ptr_nonnull(out);
    if (out->len != wlen || memcmp(out->data, want, wlen) != 0) {
        char got_e[4096], want_e[4096];
        escape(out->data, out->len, got_e, sizeof(got_e));
        escape((const uint8_t *)want, wlen, want_e, sizeof(want_e));
        ck_assert_msg(0, "got %zu bytes: %s\nwant %zu bytes: %s", out->len,
                      got_e, wlen, want_e);
    }
    pd_buf_unref(&out);
    free(src);
}

static void expect_pl(const char *in, const char *want)
{
    expect_pl_n(in, strlen(in), want, strlen(want));
}

START_TEST(playlist_llhls_media)
{
    const char *in =
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,"
        "CAN-SKIP-UNTIL=12.0\n"
        "#EXT-X-PART-INF:PART-TARGET=0.334\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-MAP:URI=\"init-1.mp4\"\n"
        "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z\n"
        "#EXTINF:2.000,\n"
        "10.m4s\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"11.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"11.1.m4s\"\n"
        "#EXTINF:2.000,\n"
        "11.m4s\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"12.0.m4s\",INDEPENDENT=YES\n"
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.1.m4s\"\n"
        "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=11,"
        "LAST-PART=0\n";
    const char *want =
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,"
        "CAN-SKIP-UNTIL=12.0\n"
        "#EXT-X-PART-INF:PART-TARGET=0.334\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-MAP:URI=\"init-1.mp4" Q "\"\n"
        "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z\n"
        "#EXTINF:2.000,\n"
        "10.m4s" Q "\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"11.0.m4s" Q "\",INDEPENDENT=YES\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"11.1.m4s" Q "\"\n"
        "#EXTINF:2.000,\n"
        "11.m4s" Q "\n"
        "#EXT-X-PART:DURATION=0.334,URI=\"12.0.m4s" Q "\",INDEPENDENT=YES\n"
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.1.m4s" Q "\"\n"
        "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8" Q "\",LAST-MSN=11,"
        "LAST-PART=0\n";
    expect_pl(in, want);
}
END_TEST

START_TEST(playlist_multivariant)
{
    const char *in =
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"main\",DEFAULT=YES,"
        "AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1200000,CODECS=\"avc1.64001f,mp4a.40.2\","
        "RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"aud\"\n"
        "video/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS=\"avc1.64001e,mp4a.40.2\","
        "RESOLUTION=640x360,AUDIO=\"aud\"\n"
        "360p/index.m3u8\n"
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"video/iframes.m3u8\"\n";
    const char *want =
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"main\",DEFAULT=YES,"
        "AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8" Q "\"\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1200000,CODECS=\"avc1.64001f,mp4a.40.2\","
        "RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"aud\"\n"
        "video/index.m3u8" Q "\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS=\"avc1.64001e,mp4a.40.2\","
        "RESOLUTION=640x360,AUDIO=\"aud\"\n"
        "360p/index.m3u8" Q "\n"
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"video/iframes.m3u8" Q
        "\"\n";
    expect_pl(in, want);
}
END_TEST

/* Only attributes named exactly URI get the token: SERVER-URI (content
 * steering) and X-...-URI (DATERANGE client attributes) may name other
 * hosts, and a token must never travel there. */
START_TEST(playlist_only_uri_attributes)
{
    const char *in =
        "#EXTM3U\n"
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://x.example/s.json\","
        "PATHWAY-ID=\"a\"\n"
        "#EXT-X-DATERANGE:ID=\"ad\",START-DATE=\"2026-01-01T00:00:00Z\","
        "X-AD-URI=\"https://ads.example/1\"\n"
        "#EXT-X-SESSION-DATA:DATA-ID=\"d\",URI=\"data.json\"\n"
        "#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"10@0\"\n";
    const char *want =
        "#EXTM3U\n"
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://x.example/s.json\","
        "PATHWAY-ID=\"a\"\n"
        "#EXT-X-DATERANGE:ID=\"ad\",START-DATE=\"2026-01-01T00:00:00Z\","
        "X-AD-URI=\"https://ads.example/1\"\n"
        "#EXT-X-SESSION-DATA:DATA-ID=\"d\",URI=\"data.json" Q "\"\n"
        "#EXT-X-MAP:URI=\"init.mp4" Q "\",BYTERANGE=\"10@0\"\n";
    expect_pl(in, want);
}
END_TEST

START_TEST(playlist_existing_query)
{
    expect_pl("1.m4s?x=1\n", "1.m4s?x=1" A "\n");
    expect_pl("1.m4s?\n", "1.m4s?" A "\n");
    expect_pl("#EXT-X-MAP:URI=\"init.mp4?v=2\"\n",
              "#EXT-X-MAP:URI=\"init.mp4?v=2" A "\"\n");
    /* two URI attributes on one line, one with a query */
    expect_pl("#X:URI=\"a?q=1\",OTHER=1,URI=\"b\"\n",
              "#X:URI=\"a?q=1" A "\",OTHER=1,URI=\"b" Q "\"\n");
    /* a '?' elsewhere on the tag line does not count */
    expect_pl("#X:Y=\"?\",URI=\"b\"\n", "#X:Y=\"?\",URI=\"b" Q "\"\n");
    /* another param name */
    pd_buf_t *out = NULL;
    ck_assert_int_eq(httpd_playlist_add_token((const uint8_t *)"a\nb?c\n", 6,
                                              "hdnts", "exp=1", &out),
                     0);
    ck_assert_uint_eq(out->len, strlen("a?hdnts=exp=1\nb?c&hdnts=exp=1\n"));
    ck_assert(memcmp(out->data, "a?hdnts=exp=1\nb?c&hdnts=exp=1\n",
                     out->len) == 0);
    pd_buf_unref(&out);
}
END_TEST

START_TEST(playlist_crlf)
{
    expect_pl("#EXTM3U\r\n"
              "#EXT-X-MAP:URI=\"init.mp4\"\r\n"
              "#EXTINF:2.0,\r\n"
              "1.m4s\r\n"
              "\r\n"
              "2.m4s?x=1\r\n"
              "#EXT-X-PART:DURATION=0.3,URI=\"3.0.m4s\"\r\n",
              "#EXTM3U\r\n"
              "#EXT-X-MAP:URI=\"init.mp4" Q "\"\r\n"
              "#EXTINF:2.0,\r\n"
              "1.m4s" Q "\r\n"
              "\r\n"
              "2.m4s?x=1" A "\r\n"
              "#EXT-X-PART:DURATION=0.3,URI=\"3.0.m4s" Q "\"\r\n");
    /* mixed endings, and a last CRLF line without its \n */
    expect_pl("a\nb\r\nc\r", "a" Q "\nb" Q "\r\nc" Q "\r");
}
END_TEST

START_TEST(playlist_empty_lines_and_no_final_newline)
{
    expect_pl("\n\n\n", "\n\n\n");
    expect_pl("\n", "\n");
    expect_pl("\r\n\r\n", "\r\n\r\n");
    expect_pl_n("", 0, "", 0);
    expect_pl("#EXTM3U\n\n1.m4s\n\n\n2.m4s", "#EXTM3U\n\n1.m4s" Q "\n\n\n2.m4s" Q);
    expect_pl("1.m4s", "1.m4s" Q);
    expect_pl("#EXT-X-MAP:URI=\"i.mp4\"", "#EXT-X-MAP:URI=\"i.mp4" Q "\"");
    /* tags and comments without URI="...": byte-identical */
    const char *tags = "#EXTM3U\n#EXT-X-VERSION:9\n#EXTINF:2.000,\n"
                       "# a comment, URI=x and uri=\"y\"\n#EXT-X-ENDLIST\n";
    expect_pl(tags, tags);
    /* many newlines only */
    char nl[5000];
    memset(nl, '\n', sizeof(nl));
    expect_pl_n(nl, sizeof(nl), nl, sizeof(nl));
}
END_TEST

START_TEST(playlist_unterminated_quote)
{
    /* no closing quote: the token goes at the end of the line, and
     * nothing is read beyond it (exact-size source) */
    expect_pl("#EXT-X-MAP:URI=\"init.mp4", "#EXT-X-MAP:URI=\"init.mp4" Q);
    expect_pl("#EXT-X-MAP:URI=\"init.mp4\n1.m4s\n",
              "#EXT-X-MAP:URI=\"init.mp4" Q "\n1.m4s" Q "\n");
    expect_pl("#X:URI=\"", "#X:URI=\"" Q);
    expect_pl("#X:URI=", "#X:URI=");
    expect_pl("#X:URI", "#X:URI");
    /* a quoted value that itself reads URI=" */
    expect_pl("#X:URI=\"URI=\"\n", "#X:URI=\"URI=" Q "\"\n");
    expect_pl("#X:URI=\"a\",URI=\"", "#X:URI=\"a" Q "\",URI=\"" Q);
}
END_TEST

/* The CRLF rule (the \r stays after the added query) also holds when the
 * quote is unterminated. */
START_TEST(playlist_unterminated_quote_crlf)
{
    expect_pl("#EXT-X-MAP:URI=\"init.mp4\r\n1.m4s\r\n",
              "#EXT-X-MAP:URI=\"init.mp4" Q "\r\n1.m4s" Q "\r\n");
}
END_TEST

START_TEST(playlist_refuses_bad_tokens)
{
    const char *bad[] = {"",          "a\"b",     "a&b",   "a#b", "a b",
                         "a\nb",      "a\rb",     "a?b",   "a%b", "a+b",
                         "exp=1\xc3", "a;b",      "a<b>",  "a'b", "a\\b",
                         "a,b\x7f"};
    const uint8_t pl[] = "#EXTM3U\n1.m4s\n";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pd_buf_t *out = (pd_buf_t *)1;
        ck_assert_msg(httpd_playlist_add_token(pl, sizeof(pl) - 1, "token",
                                               bad[i], &out) == PD_EINVAL,
                      "case %zu", i);
        ck_assert_ptr_null(out);
    }
    pd_buf_t *out = (pd_buf_t *)1;
    ck_assert_int_eq(
        httpd_playlist_add_token(pl, sizeof(pl) - 1, "", "exp=1", &out),
        PD_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(
        httpd_playlist_add_token(pl, sizeof(pl) - 1, NULL, "exp=1", &out),
        PD_EINVAL);
    ck_assert_int_eq(
        httpd_playlist_add_token(pl, sizeof(pl) - 1, "token", NULL, &out),
        PD_EINVAL);
    ck_assert_int_eq(httpd_playlist_add_token(NULL, 3, "token", "exp=1", &out),
                     PD_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(
        httpd_playlist_add_token(pl, sizeof(pl) - 1, "token", "exp=1", NULL),
        PD_EINVAL);
}
END_TEST

START_TEST(playlist_random_input)
{
    /* random playlists over a small alphabet (no letter of "token" or of
     * the token): no crash, and the output is the input with whole
     * "?token=T" / "&token=T" insertions only */
    rng_state = 0xdeadbeef12345678ULL;
    static const char *pieces[] = {"#", "URI=\"", "\"", "\r", "\n", "\n",
                                   "a", "?",      "/",  ",", "=",  "\r\n",
                                   "#X:", "1.m4s", "\xff", "\0"};
    const char *tok = "Z:9";
    size_t extra = strlen("?token=") + strlen(tok);
    char *in = malloc(4096);
    ck_assert_ptr_nonnull(in);
    for (int i = 0; i < 3000; i++) {
        size_t len = 0, np = (size_t)(rnd() % 200);
        for (size_t k = 0; k < np; k++) {
            const char *pc = pieces[rnd() % 16];
            size_t pl = pc[0] ? strlen(pc) : 1;
            if (len + pl > 4096)
                break;
            memcpy(in + len, pc, pl);
            len += pl;
        }
        uint8_t *src = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(src);
        memcpy(src, in, len);
        pd_buf_t *out = NULL;
        ck_assert_int_eq(httpd_playlist_add_token(src, len, "token", tok, &out),
                         0);
        ck_assert_uint_ge(out->len, len);
        ck_assert_uint_eq((out->len - len) % extra, 0);
        /* removing every insertion gives back the input */
        char *back = malloc(out->len + 1);
        ck_assert_ptr_nonnull(back);
        size_t bl = 0, ins = 0;
        for (size_t k = 0; k < out->len;) {
            if (k + extra <= out->len &&
                (out->data[k] == '?' || out->data[k] == '&') &&
                memcmp(out->data + k + 1, "token=", 6) == 0 &&
                memcmp(out->data + k + 7, tok, strlen(tok)) == 0) {
                k += extra;
                ins++;
                continue;
            }
            back[bl++] = (char)out->data[k++];
        }
        ck_assert_uint_eq(ins * extra, out->len - len);
        ck_assert_uint_eq(bl, len);
        ck_assert(memcmp(back, src, len) == 0);
        free(back);
        pd_buf_unref(&out);
        free(src);
    }
    free(in);
}
END_TEST

/* ---- the cache of playlist copies ------------------------------------------ */

static pd_buf_t *pl_buf(const char *s)
{
    pd_buf_t *b = pd_buf_from(s, strlen(s));
    ck_assert_ptr_nonnull(b);
    return b;
}

static void expect_bytes(const pd_buf_t *b, const char *want)
{
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(b->len == strlen(want) && memcmp(b->data, want, b->len) == 0,
                  "got %.*s, want %s", (int)b->len, (const char *)b->data,
                  want);
}

START_TEST(tokcache_hit_same_buffer)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(8, 1u << 20, &c), 0);
    pd_buf_t *src = pl_buf("#EXTM3U\n1.m4s\n");
    pd_buf_t *a = NULL, *b = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    expect_bytes(a, "#EXTM3U\n1.m4s?token=exp=1\n");
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &b), 0);
    ck_assert_ptr_eq(a, b);
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    expect_bytes(a, "#EXTM3U\n1.m4s?token=exp=1\n");
    pd_buf_unref(&a);
    pd_buf_unref(&src);
    httpd_tokcache_destroy(&c);
    ck_assert_ptr_null(c);
    httpd_tokcache_destroy(&c);
    httpd_tokcache_destroy(NULL);
}
END_TEST

START_TEST(tokcache_keys)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(8, 1u << 20, &c), 0);
    pd_buf_t *src = pl_buf("1.m4s\n");
    pd_buf_t *twin = pl_buf("1.m4s\n"); /* same bytes, other buffer */
    pd_buf_t *a = NULL, *b = NULL, *d = NULL, *e = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &b), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "hdnts", "exp=1", &d), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, twin, "token", "exp=1", &e), 0);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_ne(a, d);
    ck_assert_ptr_ne(a, e);
    ck_assert_ptr_ne(b, d);
    expect_bytes(a, "1.m4s?token=exp=1\n");
    expect_bytes(b, "1.m4s?token=exp=2\n");
    expect_bytes(d, "1.m4s?hdnts=exp=1\n");
    expect_bytes(e, "1.m4s?token=exp=1\n");
    /* a token that is a prefix of another is another key */
    pd_buf_t *f = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=11", &f), 0);
    ck_assert_ptr_ne(a, f);
    expect_bytes(f, "1.m4s?token=exp=11\n");
    pd_buf_unref(&f);
    /* all still hits */
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &f), 0);
    ck_assert_ptr_eq(f, b);
    pd_buf_unref(&f);
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&d);
    pd_buf_unref(&e);
    pd_buf_unref(&src);
    pd_buf_unref(&twin);
    httpd_tokcache_destroy(&c);
}
END_TEST

/* The cache is bounded in bytes too: copies of large playlists push the
 * oldest out, and one larger than the bound is answered, never kept. */
START_TEST(tokcache_byte_bound)
{
    httpd_tokcache_t *c = NULL;
    /* 100 entries allowed, but only ~3 KiB of sources + copies */
    ck_assert_int_eq(httpd_tokcache_create(100, 3000, &c), 0);
    char line[700];
    memset(line, 'a', 600);
    snprintf(line + 600, sizeof(line) - 600, ".m4s\n");
    pd_buf_t *src = pl_buf(line); /* 605 bytes, copy ~617: ~1.2 KB each */
    pd_buf_t *a = NULL, *b = NULL, *x = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &b), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &x), 0);
    ck_assert_ptr_eq(x, a); /* both fit: a hit */
    pd_buf_unref(&x);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=3", &x), 0);
    pd_buf_unref(&x);
    /* the third did not fit with both: B (least recently used) went */
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &x), 0);
    ck_assert_ptr_ne(x, b);
    pd_buf_unref(&x);
    /* too big alone: answered, not kept (two gets, two buffers) */
    char *big = malloc(4000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'b', 3990);
    snprintf(big + 3990, 10, ".m4s\n");
    pd_buf_t *bsrc = pl_buf(big);
    pd_buf_t *y = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, bsrc, "token", "exp=1", &x), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, bsrc, "token", "exp=1", &y), 0);
    ck_assert_ptr_ne(x, y);
    ck_assert_uint_eq(x->len, 3995 + strlen("?token=exp=1"));
    pd_buf_unref(&x);
    pd_buf_unref(&y);
    pd_buf_unref(&bsrc);
    free(big);
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&src);
    httpd_tokcache_destroy(&c);
    ck_assert_int_eq(httpd_tokcache_create(1, 0, &c), PD_EINVAL);
}
END_TEST

START_TEST(tokcache_lru_eviction)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(2, 1u << 20, &c), 0);
    pd_buf_t *src = pl_buf("x.m4s\n");
    /* our own references keep every copy alive, so a new copy can never
     * reuse an old one's address */
    pd_buf_t *a = NULL, *b = NULL, *cc = NULL, *x = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &b), 0);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &x), 0);
    ck_assert_ptr_eq(x, a); /* A is now the most recently used */
    pd_buf_unref(&x);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=3", &cc), 0);
    /* B (least recently used) went; A and C stay */
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &x), 0);
    ck_assert_ptr_eq(x, a);
    pd_buf_unref(&x);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=3", &x), 0);
    ck_assert_ptr_eq(x, cc);
    pd_buf_unref(&x);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=2", &x), 0);
    ck_assert_ptr_ne(x, b); /* a miss: made again */
    expect_bytes(x, "x.m4s?token=exp=2\n");
    pd_buf_t *b2 = x;
    x = NULL;
    /* that evicted A (C was used after A's last use) */
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=3", &x), 0);
    ck_assert_ptr_eq(x, cc);
    pd_buf_unref(&x);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &x), 0);
    ck_assert_ptr_ne(x, a);
    pd_buf_unref(&x);
    pd_buf_unref(&b2);
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&cc);
    pd_buf_unref(&src);
    httpd_tokcache_destroy(&c);
}
END_TEST

START_TEST(tokcache_holds_references)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(4, 1u << 20, &c), 0);
    pd_buf_t *src = pl_buf("#EXT-X-MAP:URI=\"i.mp4\"\n1.m4s\n");
    pd_buf_t *raw = src; /* the address, no reference of ours */
    pd_buf_t *a = NULL;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "exp=1", &a), 0);
    pd_buf_unref(&src);
    pd_buf_unref(&a);
    /* the entry keeps both alive: a hit through the old address reads
     * valid bytes (ASan would flag a use after free) */
    ck_assert_int_eq(httpd_tokcache_get(c, raw, "token", "exp=1", &a), 0);
    expect_bytes(a, "#EXT-X-MAP:URI=\"i.mp4?token=exp=1\"\n1.m4s?token=exp=1\n");
    ck_assert_uint_eq(raw->len, strlen("#EXT-X-MAP:URI=\"i.mp4\"\n1.m4s\n"));
    httpd_tokcache_destroy(&c);
    /* our copy outlives the cache */
    expect_bytes(a, "#EXT-X-MAP:URI=\"i.mp4?token=exp=1\"\n1.m4s?token=exp=1\n");
    pd_buf_unref(&a);
}
END_TEST

START_TEST(tokcache_bad_input)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(0, 1u << 20, &c), PD_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(httpd_tokcache_create(1, 1u << 20, NULL), PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_create(1, 1u << 20, &c), 0);
    pd_buf_t *src = pl_buf("1.m4s\n");
    pd_buf_t *o = (pd_buf_t *)1;
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "a\"b", &o), PD_EINVAL);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "", &o), PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_get(c, NULL, "token", "a", &o), PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_get(NULL, src, "token", "a", &o),
                     PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_get(c, src, NULL, "a", &o), PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", NULL, &o), PD_EINVAL);
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "a", NULL), PD_EINVAL);
    ck_assert_ptr_null(o);
    /* capacity 1 still works */
    ck_assert_int_eq(httpd_tokcache_get(c, src, "token", "a", &o), 0);
    expect_bytes(o, "1.m4s?token=a\n");
    pd_buf_unref(&o);
    pd_buf_unref(&src);
    httpd_tokcache_destroy(&c);
}
END_TEST

typedef struct {
    httpd_tokcache_t *c;
    pd_buf_t **srcs;
    int seed;
    int bad; /* wrong answers seen */
} tc_arg_t;

static void *tc_worker(void *p)
{
    tc_arg_t *a = p;
    unsigned s = (unsigned)a->seed;
    for (int i = 0; i < 2000; i++) {
        s = s * 1103515245u + 12345u;
        int k = (int)((s >> 8) % 3), t = (int)((s >> 16) % 4);
        char tok[16], want[64];
        snprintf(tok, sizeof(tok), "t%d", t);
        snprintf(want, sizeof(want), "s%d.m4s?token=t%d\n", k, t);
        pd_buf_t *o = NULL;
        if (httpd_tokcache_get(a->c, a->srcs[k], "token", tok, &o) != 0 || !o ||
            o->len != strlen(want) || memcmp(o->data, want, o->len) != 0)
            a->bad++;
        pd_buf_unref(&o);
    }
    return NULL;
}

START_TEST(tokcache_threads)
{
    httpd_tokcache_t *c = NULL;
    ck_assert_int_eq(httpd_tokcache_create(5, 1u << 20, &c), 0); /* < 12 keys: churn */
    pd_buf_t *srcs[3] = {pl_buf("s0.m4s\n"), pl_buf("s1.m4s\n"),
                         pl_buf("s2.m4s\n")};
    pthread_t th[4];
    tc_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (tc_arg_t){c, srcs, 1000 + i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, tc_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].bad, 0);
    }
    for (int i = 0; i < 3; i++)
        pd_buf_unref(&srcs[i]);
    httpd_tokcache_destroy(&c);
}
END_TEST

/* ---- storage: the key and the marks ---------------------------------------- */

static char tmpdir[256];
static pd_config_t cfg;

static void st_setup(void)
{
    pd_log_set_level(PD_LOG_ERROR);
    ck_assert_int_eq(tl_mkdtemp(tmpdir, sizeof(tmpdir), "token"), 0);
    pd_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", tmpdir);
    cfg.db_path[0] = '\0';
}

static void st_teardown(void)
{
    tl_rmtree(tmpdir);
}

static st_t *st_up(void)
{
    st_t *st = NULL;
    ck_assert_int_eq(st_open(&cfg, NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

static void key_path(char *out, size_t size)
{
    snprintf(out, size, "%s/playback.key", tmpdir);
}

/* The key in <data_dir>/playback.key (asserted: 64 hex + "\n"). */
static size_t file_key(uint8_t key[PD_TOKEN_KEY_MAX])
{
    char p[400];
    key_path(p, sizeof(p));
    size_t n = 0;
    char *s = tl_read_file(p, &n);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(n, 65);
    ck_assert(s[64] == '\n');
    s[64] = '\0';
    size_t len = 0;
    ck_assert_int_eq(pd_token_key_from_hex(s, key, &len), 0);
    memset(s, 0, n);
    free(s);
    return len;
}

START_TEST(st_key_file_created)
{
    st_t *st = st_up();
    char p[400];
    key_path(p, sizeof(p));
    struct stat sb;
    ck_assert_int_eq(lstat(p, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(sb.st_size, 65);
    char *s = tl_read_file(p, NULL);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 64; i++)
        ck_assert((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'));
    ck_assert(s[64] == '\n');
    /* not all zeros, not a constant */
    ck_assert(strspn(s, "0") < 64);
    memset(s, 0, 65);
    free(s);
    /* the store signs with that key */
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t klen = file_key(key);
    ck_assert_uint_eq(klen, 32);
    char t[PD_TOKEN_MAX + 1];
    ck_assert_int_eq(st_playback_sign(st, "/live/show/*", 600, t, sizeof(t)), 0);
    const char *path = "/live/show/index.m3u8";
    int64_t now = (int64_t)time(NULL);
    ck_assert_int_eq(pd_token_check(key, klen, t, strlen(t), path, strlen(path),
                                    now, NULL),
                     0);
    ck_assert_int_eq(pd_token_check(K, sizeof(K), t, strlen(t), path,
                                    strlen(path), now, NULL),
                     PD_EPERM);
    st_close(&st);
    /* another store in another directory gets another key */
    char other[256];
    ck_assert_int_eq(tl_mkdtemp(other, sizeof(other), "token2"), 0);
    pd_config_t cfg2 = cfg;
    snprintf(cfg2.data_dir, sizeof(cfg2.data_dir), "%s", other);
    st_t *st2 = NULL;
    ck_assert_int_eq(st_open(&cfg2, NULL, &st2), 0);
    char t2[PD_TOKEN_MAX + 1];
    ck_assert_int_eq(st_playback_sign(st2, "/live/show/*", 600, t2, sizeof(t2)),
                     0);
    ck_assert_int_eq(pd_token_check(key, klen, t2, strlen(t2), path,
                                    strlen(path), now, NULL),
                     PD_EPERM);
    st_close(&st2);
    tl_rmtree(other);
    memset(key, 0, sizeof(key));
}
END_TEST

START_TEST(st_key_reused_on_reopen)
{
    st_t *st = st_up();
    char t[PD_TOKEN_MAX + 1];
    ck_assert_int_eq(st_playback_sign(st, "/live/show/*", 3600, t, sizeof(t)),
                     0);
    ck_assert_int_eq(st_playback_set(st, "live/show", true), 0);
    ck_assert_int_eq(st_playback_check(st, "live/show", "/live/show/index.m3u8",
                                       t, NULL),
                     0);
    char p[400];
    key_path(p, sizeof(p));
    char *before = tl_read_file(p, NULL);
    ck_assert_ptr_nonnull(before);
    st_close(&st);
    st = st_up();
    char *after = tl_read_file(p, NULL);
    ck_assert_ptr_nonnull(after);
    ck_assert(strcmp(before, after) == 0); /* not rewritten */
    free(before);
    free(after);
    pd_token_why_t why = PD_TOKEN_MISSING;
    ck_assert_int_eq(st_playback_check(st, "live/show", "/live/show/index.m3u8",
                                       t, &why),
                     0);
    ck_assert_int_eq(why, PD_TOKEN_OK);
    st_close(&st);
}
END_TEST

START_TEST(st_cfg_key_used)
{
    /* 36 bytes, upper case in places */
    const char *hex = "00112233445566778899AABBCCDDEEFF0011223344556677"
                      "8899aabbccddeeff00112233";
    snprintf(cfg.playback_key, sizeof(cfg.playback_key), "%s", hex);
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t klen = 0;
    ck_assert_int_eq(pd_token_key_from_hex(hex, key, &klen), 0);
    ck_assert_uint_eq(klen, 36);
    st_t *st = st_up();
    char p[400];
    key_path(p, sizeof(p));
    ck_assert_int_eq(access(p, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* a token made outside with that key is accepted */
    int64_t now = (int64_t)time(NULL);
    char t[PD_TOKEN_MAX + 1];
    ck_assert_int_eq(
        pd_token_make(key, klen, 0, now + 3600, "/live/x/*", t, sizeof(t)), 0);
    ck_assert_int_eq(st_playback_set(st, "live/x", true), 0);
    ck_assert_int_eq(
        st_playback_check(st, "live/x", "/live/x/video/1.m4s", t, NULL), 0);
    /* and the store's tokens check with it */
    ck_assert_int_eq(st_playback_sign(st, "/live/x/*", 60, t, sizeof(t)), 0);
    ck_assert_int_eq(pd_token_check(key, klen, t, strlen(t), "/live/x/a", 9,
                                    now, NULL),
                     0);
    st_close(&st);
    ck_assert_int_eq(access(p, F_OK), -1);
    /* a bad configured key: st_open fails */
    const char *bad[] = {"zz", "0011223344556677889900112233445",
                         "00112233445566778899aabbccddeeff0",
                         "00112233445566778899aabbccddeeg0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cfg.playback_key, sizeof(cfg.playback_key), "%s", bad[i]);
        st = NULL;
        ck_assert_msg(st_open(&cfg, NULL, &st) != 0, "case %zu", i);
        ck_assert_ptr_null(st);
    }
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

START_TEST(st_corrupt_key_file_refused)
{
    char p[400];
    key_path(p, sizeof(p));
    const char *bad[] = {
        "",
        "\n",
        "not a key\n",
        "000102030405060708090a0b0c0d0e\n",       /* 15 bytes */
        "000102030405060708090a0b0c0d0e0f0\n",    /* odd */
        "000102030405060708090a0b0c0d0e0g\n",     /* non-hex */
        " 000102030405060708090a0b0c0d0e0f\n",    /* leading space */
        "000102030405060708090a0b0c0d0e0f\nxx\n", /* trailing junk */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(tl_write_file(p, bad[i], strlen(bad[i]), NULL, 0), 0);
        st_t *st = NULL;
        ck_assert_msg(st_open(&cfg, NULL, &st) != 0, "case %zu", i);
        ck_assert_ptr_null(st);
        /* left as it was: never replaced by a new key */
        size_t n = 0;
        char *s = tl_read_file(p, &n);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(n, strlen(bad[i]));
        ck_assert(memcmp(s, bad[i], n) == 0);
        free(s);
    }
    /* a symlink is not followed */
    char real[400];
    snprintf(real, sizeof(real), "%s/real.key", tmpdir);
    const char *good = "000102030405060708090a0b0c0d0e0f\n";
    ck_assert_int_eq(tl_write_file(real, good, strlen(good), NULL, 0), 0);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(symlink(real, p), 0);
    st_t *st = NULL;
    ck_assert_int_ne(st_open(&cfg, NULL, &st), 0);
    ck_assert_ptr_null(st);
    /* the accepted forms: trailing CR/LF/blank, 16 and 64 bytes, upper case */
    ck_assert_int_eq(unlink(p), 0);
    const char *ok[] = {"000102030405060708090A0B0C0D0E0F\r\n",
                        "000102030405060708090a0b0c0d0e0f",
                        "000102030405060708090a0b0c0d0e0f \t\n\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_int_eq(tl_write_file(p, ok[i], strlen(ok[i]), NULL, 0), 0);
        st = NULL;
        ck_assert_msg(st_open(&cfg, NULL, &st) == 0, "ok case %zu", i);
        /* it is the key used */
        char t[PD_TOKEN_MAX + 1];
        ck_assert_int_eq(st_playback_sign(st, "/a/*", 600, t, sizeof(t)), 0);
        uint8_t key[PD_TOKEN_KEY_MAX];
        size_t klen = 0;
        ck_assert_int_eq(
            pd_token_key_from_hex("000102030405060708090a0b0c0d0e0f", key,
                                  &klen),
            0);
        ck_assert_int_eq(pd_token_check(key, klen, t, strlen(t), "/a/b", 4,
                                        (int64_t)time(NULL), NULL),
                         0);
        st_close(&st);
    }
}
END_TEST

static int count_rows(const char *sql)
{
    char db[400];
    snprintf(db, sizeof(db), "%s/podium.db", tmpdir);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
}

/* The list, as "a,b,c". */
static void list_str(st_t *st, char *out, size_t size)
{
    char(*v)[256] = NULL;
    int n = -1;
    ck_assert_int_eq(st_playback_list(st, &v, &n), 0);
    ck_assert_ptr_nonnull(v);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, size - o, "%s%s", i ? "," : "", v[i]);
    free(v);
}

START_TEST(st_playback_marks)
{
    st_t *st = st_up();
    char l[2048];
    ck_assert(!st_playback_any(st));
    ck_assert(!st_playback_signed(st, "live/a"));
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "");
    ck_assert_int_eq(st_playback_set(st, "live/m", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/c", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/x", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/a", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/c", true), 0); /* again */
    ck_assert(st_playback_any(st));
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "live/a,live/c,live/m,live/x");
    ck_assert(st_playback_signed(st, "live/a"));
    ck_assert(st_playback_signed(st, "live/x"));
    ck_assert(!st_playback_signed(st, "live/b"));
    ck_assert(!st_playback_signed(st, "live/A"));
    ck_assert(!st_playback_signed(st, "live/aa"));
    ck_assert(!st_playback_signed(st, "a"));
    ck_assert(!st_playback_signed(st, ""));
    ck_assert(!st_playback_signed(st, NULL));
    ck_assert(!st_playback_signed(NULL, "live/a"));
    ck_assert_int_eq(st_playback_set(st, "live/c", false), 0);
    ck_assert_int_eq(st_playback_set(st, "live/never", false), 0);
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "live/a,live/m,live/x");
    ck_assert(!st_playback_signed(st, "live/c"));
    ck_assert_int_eq(count_rows("SELECT count(*) FROM stream_settings WHERE "
                                "signed_playback = 1"),
                     3);
    ck_assert_int_eq(st_playback_set(st, "live/a", false), 0);
    ck_assert_int_eq(st_playback_set(st, "live/m", false), 0);
    ck_assert_int_eq(st_playback_set(st, "live/x", false), 0);
    ck_assert(!st_playback_any(st));
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "");
    /* NULLs */
    ck_assert_int_eq(st_playback_set(NULL, "live/a", true), PD_EINVAL);
    ck_assert(!st_playback_any(NULL));
    char(*v)[256] = NULL;
    int n = 0;
    ck_assert_int_eq(st_playback_list(st, NULL, &n), PD_EINVAL);
    ck_assert_int_eq(st_playback_list(st, &v, NULL), PD_EINVAL);
    ck_assert_int_eq(st_playback_list(NULL, &v, &n), PD_EINVAL);
    st_close(&st);
}
END_TEST

START_TEST(st_playback_marks_persist)
{
    st_t *st = st_up();
    ck_assert_int_eq(st_playback_set(st, "live/zeta", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/alpha", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/mid", true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/mid", false), 0);
    st_close(&st);
    st = st_up();
    char l[2048];
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "live/alpha,live/zeta");
    ck_assert(st_playback_signed(st, "live/zeta"));
    ck_assert(!st_playback_signed(st, "live/mid"));
    ck_assert(st_playback_any(st));
    ck_assert_int_eq(st_playback_set(st, "live/alpha", false), 0);
    ck_assert_int_eq(st_playback_set(st, "live/beta", true), 0);
    st_close(&st);
    st = st_up();
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "live/beta,live/zeta");
    st_close(&st);
}
END_TEST

/* Another process (the CLI) changes the marks while the server runs: the
 * server's handle sees them after a reload (its recorder thread reloads
 * every ST_PLAYBACK_RELOAD_US), not before, and never half. */
START_TEST(st_playback_marks_reloaded)
{
    st_t *a = st_up();
    st_t *b = st_up(); /* a second handle on the same catalogue */
    ck_assert_int_eq(st_playback_set(b, "live/late", true), 0);
    ck_assert(st_playback_signed(b, "live/late"));
    ck_assert_int_eq(st_playback_reload(a), 0);
    ck_assert(st_playback_signed(a, "live/late"));
    ck_assert_int_eq(st_playback_set(b, "live/late", false), 0);
    ck_assert_int_eq(st_playback_set(b, "live/other", true), 0);
    ck_assert(st_playback_signed(a, "live/late")); /* not reloaded yet */
    ck_assert_int_eq(st_playback_reload(a), 0);
    ck_assert(!st_playback_signed(a, "live/late"));
    ck_assert(st_playback_signed(a, "live/other"));
    char l[2048];
    list_str(a, l, sizeof(l));
    ck_assert_str_eq(l, "live/other");
    ck_assert_int_eq(st_playback_reload(a), 0); /* unchanged: harmless */
    list_str(a, l, sizeof(l));
    ck_assert_str_eq(l, "live/other");
    st_close(&b);
    st_close(&a);
}
END_TEST

/* Many API threads protecting streams at once (each set reserves room
 * and inserts under the catalogue's lock: no overflow under ASan, no mark
 * lost). */
typedef struct {
    st_t *st;
    int base;
} marker_arg_t;

static void *marker(void *arg)
{
    marker_arg_t *m = arg;
    for (int i = 0; i < 100; i++) {
        char name[64];
        snprintf(name, sizeof(name), "live/s%d_%d", m->base, i);
        if (st_playback_set(m->st, name, true) != 0)
            return (void *)1;
        if (i % 3 == 0) {
            snprintf(name, sizeof(name), "live/s%d_%d", m->base, i / 2);
            if (st_playback_set(m->st, name, false) != 0)
                return (void *)1;
            snprintf(name, sizeof(name), "live/s%d_%d", m->base, i / 2);
            if (st_playback_set(m->st, name, true) != 0)
                return (void *)1;
        }
    }
    return NULL;
}

START_TEST(st_playback_marks_concurrent)
{
    st_t *st = st_up();
    pthread_t t[8];
    marker_arg_t args[8];
    for (int i = 0; i < 8; i++) {
        args[i].st = st;
        args[i].base = i;
        ck_assert_int_eq(pthread_create(&t[i], NULL, marker, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    char(*v)[256] = NULL;
    int n = 0;
    ck_assert_int_eq(st_playback_list(st, &v, &n), 0);
    ck_assert_int_eq(n, 800);
    for (int i = 1; i < n; i++)
        ck_assert_int_lt(strcmp(v[i - 1], v[i]), 0);
    free(v);
    ck_assert(st_playback_signed(st, "live/s7_99"));
    st_close(&st);
}
END_TEST

/* Processes opening a catalogue without a key at once (the server and
 * the CLI) all end up with the one key that was made. */
static void *opener(void *arg)
{
    (void)arg;
    st_t *st = NULL;
    if (st_open(&cfg, NULL, &st) != 0)
        return (void *)1;
    char tok[PD_TOKEN_MAX + 1];
    int rc = st_playback_sign(st, "/live/x/*", 60, tok, sizeof(tok));
    st_close(&st);
    return rc ? (void *)1 : strdup(tok);
}

START_TEST(st_key_made_once_concurrently)
{
    /* the database made first (concurrent first opens of the database
     * itself are another matter), then no key: they race to make it */
    st_t *st0 = st_up();
    st_close(&st0);
    char kp[400];
    key_path(kp, sizeof(kp));
    ck_assert_int_eq(unlink(kp), 0);
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, opener, NULL), 0);
    char *toks[6];
    for (int i = 0; i < 6; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        ck_assert_msg(r != NULL && r != (void *)1, "open %d failed", i);
        toks[i] = r;
    }
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t klen = file_key(key);
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(pd_token_check(key, klen, toks[i], strlen(toks[i]),
                                        "/live/x/a.m4s", 13, now, NULL),
                         0);
        free(toks[i]);
    }
    /* no temporary file left next to it */
    ck_assert(!tl_find_file_suffix(tmpdir, ".tmp", (char[512]){0}, 512));
}
END_TEST

START_TEST(st_playback_hostile_names)
{
    st_t *st = st_up();
    char over[128];
    snprintf(over, sizeof(over), "live/%065d", 0); /* 65 chars */
    char max[128];
    snprintf(max, sizeof(max), "live/%064d", 0); /* 64: fine */
    const char *bad[] = {"../x",
                         "live/../x",
                         "live/",
                         "",
                         "live/.x",
                         "live/.",
                         "live/..",
                         over,
                         "live/a b",
                         "live/x';DROP TABLE keys;--",
                         "live/x\"",
                         "live/a/b",
                         "live/a?key=1",
                         "live/a\n",
                         "live/\xc3\xa9",
                         "show",
                         "vod/1",
                         "LIVE/a",
                         "/live/a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(st_playback_set(st, bad[i], true) == PD_EINVAL,
                      "case %zu", i);
        ck_assert_msg(st_playback_set(st, bad[i], false) == PD_EINVAL,
                      "case %zu", i);
    }
    ck_assert_int_eq(st_playback_set(st, NULL, true), PD_EINVAL);
    ck_assert(!st_playback_any(st));
    char l[2048];
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "");
    ck_assert_int_eq(count_rows("SELECT count(*) FROM stream_settings"), 0);
    ck_assert_int_eq(count_rows("SELECT count(*) FROM sqlite_master WHERE "
                                "name = 'keys'"),
                     1);
    ck_assert_int_eq(st_playback_set(st, max, true), 0);
    ck_assert_int_eq(st_playback_set(st, "live/A-z_0.9", true), 0);
    list_str(st, l, sizeof(l));
    char want[300];
    snprintf(want, sizeof(want), "%s,live/A-z_0.9", max); /* '0' < 'A' */
    ck_assert_str_eq(l, want);
    st_close(&st);
}
END_TEST

START_TEST(st_signed_all_config)
{
    cfg.signed_playback = 1;
    st_t *st = st_up();
    ck_assert(st_playback_any(st));
    ck_assert(st_playback_signed(st, "live/anything"));
    ck_assert(st_playback_signed(st, "live/other"));
    /* the marks list stays the catalogue's */
    char l[256];
    list_str(st, l, sizeof(l));
    ck_assert_str_eq(l, "");
    /* and "off" for one stream does not open it */
    ck_assert_int_eq(st_playback_set(st, "live/x", false), 0);
    ck_assert(st_playback_signed(st, "live/x"));
    pd_token_why_t why = PD_TOKEN_OK;
    ck_assert_int_eq(
        st_playback_check(st, "live/x", "/live/x/index.m3u8", NULL, &why),
        PD_EPERM);
    ck_assert_int_eq(why, PD_TOKEN_MISSING);
    st_close(&st);
    cfg.signed_playback = 0;
    st = st_up();
    ck_assert(!st_playback_any(st));
    ck_assert(!st_playback_signed(st, "live/x"));
    st_close(&st);
}
END_TEST

static pd_token_why_t st_why(st_t *st, const char *stream, const char *path,
                             const char *tok)
{
    pd_token_why_t why = (pd_token_why_t)-1;
    int rc = st_playback_check(st, stream, path, tok, &why);
    if (why == PD_TOKEN_OK)
        ck_assert_int_eq(rc, 0);
    else
        ck_assert_int_eq(rc, PD_EPERM);
    return why;
}

START_TEST(st_playback_check_cases)
{
    st_t *st = st_up();
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t klen = file_key(key);
    int64_t now = (int64_t)time(NULL);
    char good[PD_TOKEN_MAX + 1], old[PD_TOKEN_MAX + 1], early[PD_TOKEN_MAX + 1],
        other[PD_TOKEN_MAX + 1], foreign[PD_TOKEN_MAX + 1];
    ck_assert_int_eq(st_playback_sign(st, "/live/p/*", 3600, good, sizeof(good)),
                     0);
    ck_assert_int_eq(pd_token_make(key, klen, 0, now - 1000, "/live/p/*", old,
                                   sizeof(old)),
                     0);
    ck_assert_int_eq(pd_token_make(key, klen, now + 1000, now + 5000,
                                   "/live/p/*", early, sizeof(early)),
                     0);
    ck_assert_int_eq(st_playback_sign(st, "/live/q/*", 3600, other,
                                      sizeof(other)),
                     0);
    ck_assert_int_eq(pd_token_make(K, sizeof(K), 0, now + 3600, "/live/p/*",
                                   foreign, sizeof(foreign)),
                     0);
    /* not protected: anything goes, no token needed */
    const char *path = "/live/p/video/3.m4s";
    ck_assert_int_eq(st_why(st, "live/p", path, NULL), PD_TOKEN_OK);
    ck_assert_int_eq(st_why(st, "live/p", path, "garbage"), PD_TOKEN_OK);
    ck_assert_int_eq(st_why(st, "live/p", path, old), PD_TOKEN_OK);
    /* protected */
    ck_assert_int_eq(st_playback_set(st, "live/p", true), 0);
    ck_assert_int_eq(st_why(st, "live/p", path, NULL), PD_TOKEN_MISSING);
    ck_assert_int_eq(st_why(st, "live/p", path, ""), PD_TOKEN_MISSING);
    ck_assert_int_eq(st_why(st, "live/p", path, good), PD_TOKEN_OK);
    ck_assert_int_eq(st_why(st, "live/p", "/live/p/index.m3u8", good),
                     PD_TOKEN_OK);
    ck_assert_int_eq(st_why(st, "live/p", "/vod/3/index.m3u8", good),
                     PD_TOKEN_WRONG_PATH);
    ck_assert_int_eq(st_why(st, "live/p", path, old), PD_TOKEN_EXPIRED);
    ck_assert_int_eq(st_why(st, "live/p", path, early), PD_TOKEN_EARLY);
    ck_assert_int_eq(st_why(st, "live/p", path, other), PD_TOKEN_WRONG_PATH);
    ck_assert_int_eq(st_why(st, "live/p", path, foreign), PD_TOKEN_BAD_HMAC);
    ck_assert_int_eq(st_why(st, "live/p", path, "exp=1~acl=/*"),
                     PD_TOKEN_MALFORMED);
    ck_assert_int_eq(st_playback_check(st, "live/p", NULL, good, NULL),
                     PD_EINVAL);
    ck_assert_int_eq(st_playback_check(st, "live/p", path, NULL, NULL),
                     PD_EPERM);
    /* the other stream is still open */
    ck_assert_int_eq(st_why(st, "live/q", "/live/q/index.m3u8", NULL),
                     PD_TOKEN_OK);
    /* opened again */
    ck_assert_int_eq(st_playback_set(st, "live/p", false), 0);
    ck_assert_int_eq(st_why(st, "live/p", path, NULL), PD_TOKEN_OK);
    memset(key, 0, sizeof(key));
    st_close(&st);
}
END_TEST

/* exp of a token made by us (no st field): "exp=<n>~...". */
static int64_t token_exp(const char *t)
{
    ck_assert(strncmp(t, "exp=", 4) == 0);
    char *end = NULL;
    long long v = strtoll(t + 4, &end, 10);
    ck_assert(end && *end == '~');
    return v;
}

START_TEST(st_playback_sign_bounds)
{
    st_t *st = st_up();
    char t[PD_TOKEN_MAX + 1];
    const int64_t ttl_max = 10LL * 366 * 86400;
    ck_assert_int_eq(st_playback_sign(st, "/live/a/*", 0, t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(st_playback_sign(st, "/live/a/*", -1, t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(st_playback_sign(st, "/live/a/*", INT64_MIN, t, sizeof(t)),
                     PD_EINVAL);
    ck_assert_int_eq(
        st_playback_sign(st, "/live/a/*", ttl_max + 1, t, sizeof(t)),
        PD_EINVAL);
    ck_assert_int_eq(st_playback_sign(st, "/live/a/*", INT64_MAX, t, sizeof(t)),
                     PD_EINVAL);
    /* 1 s and 10 years are fine; exp is now + ttl */
    const int64_t ttls[] = {1, 60, 3600, ttl_max};
    for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
        int64_t before = (int64_t)time(NULL);
        ck_assert_int_eq(st_playback_sign(st, "/live/a/*", ttls[i], t, sizeof(t)),
                         0);
        int64_t after = (int64_t)time(NULL);
        int64_t exp = token_exp(t);
        ck_assert_int_ge(exp, before + ttls[i]);
        ck_assert_int_le(exp, after + ttls[i]);
    }
    /* acl validation */
    const char *bad[] = {"",       "live/a/*", "*",      "/a~b", "/a=b",
                         "/a b",   "/a%20",    "/a?x",   "/a!",  "/a!!/b",
                         "/a\"",   "/a&b",     "/\xc3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(st_playback_sign(st, bad[i], 60, t, sizeof(t)) ==
                          PD_EINVAL,
                      "acl case %zu", i);
    ck_assert_int_eq(st_playback_sign(st, NULL, 60, t, sizeof(t)), PD_EINVAL);
    ck_assert_int_eq(st_playback_sign(st, "/a/*", 60, NULL, 100), PD_EINVAL);
    ck_assert_int_eq(st_playback_sign(NULL, "/a/*", 60, t, sizeof(t)),
                     PD_EINVAL);
    /* too long for a token, too small a buffer */
    char acl[PD_TOKEN_MAX + 8];
    acl[0] = '/';
    memset(acl + 1, 'a', sizeof(acl) - 2);
    acl[sizeof(acl) - 1] = '\0';
    ck_assert_int_eq(st_playback_sign(st, acl, 60, t, sizeof(t)), PD_ELIMIT);
    ck_assert_int_eq(st_playback_sign(st, "/a/*", 60, t, 10), PD_ELIMIT);
    ck_assert_int_eq(st_playback_sign(st, "/a/*!/b/c", 60, t, sizeof(t)), 0);
    st_close(&st);
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    const struct {
        const char *name;
        const TTest *fn;
        bool storage;
    } cases[] = {
        {"make_check_round_trip", make_check_round_trip, false},
        {"known_answer_vectors", known_answer_vectors, false},
        {"start_time_field", start_time_field, false},
        {"expiry_boundary", expiry_boundary, false},
        {"tampered_every_byte", tampered_every_byte, false},
        {"changed_fields_keep_hmac", changed_fields_keep_hmac, false},
        {"other_key_refused", other_key_refused, false},
        {"wrong_path_and_star", wrong_path_and_star, false},
        {"multiple_acl_patterns", multiple_acl_patterns, false},
        {"id_and_data_fields", id_and_data_fields, false},
        {"unknown_fields_refused", unknown_fields_refused, false},
        {"duplicate_fields_refused", duplicate_fields_refused, false},
        {"missing_fields_refused", missing_fields_refused, false},
        {"hmac_uppercase_refused", hmac_uppercase_refused, false},
        {"hmac_not_last_refused", hmac_not_last_refused, false},
        {"empty_fields_and_separators", empty_fields_and_separators, false},
        {"non_canonical_numbers", non_canonical_numbers, false},
        {"made_tokens_always_parse", made_tokens_always_parse, false},
        {"chars_outside_the_set", chars_outside_the_set, false},
        {"oversize_refused", oversize_refused, false},
        {"missing_token", missing_token, false},
        {"make_rejects_bad_input", make_rejects_bad_input, false},
        {"fuzz_random_strings", fuzz_random_strings, false},
        {"fuzz_mutations", fuzz_mutations, false},
        {"glob_cases", glob_cases, false},
        {"glob_matches_reference", glob_matches_reference, false},
        {"glob_pathological", glob_pathological, false},
        {"key_from_hex_cases", key_from_hex_cases, false},
        {"playlist_llhls_media", playlist_llhls_media, false},
        {"playlist_multivariant", playlist_multivariant, false},
        {"playlist_existing_query", playlist_existing_query, false},
        {"playlist_only_uri_attributes", playlist_only_uri_attributes, false},
        {"playlist_crlf", playlist_crlf, false},
        {"playlist_empty_lines_and_no_final_newline",
         playlist_empty_lines_and_no_final_newline, false},
        {"playlist_unterminated_quote", playlist_unterminated_quote, false},
        {"playlist_unterminated_quote_crlf", playlist_unterminated_quote_crlf,
         false},
        {"playlist_refuses_bad_tokens", playlist_refuses_bad_tokens, false},
        {"playlist_random_input", playlist_random_input, false},
        {"tokcache_hit_same_buffer", tokcache_hit_same_buffer, false},
        {"tokcache_keys", tokcache_keys, false},
        {"tokcache_lru_eviction", tokcache_lru_eviction, false},
        {"tokcache_byte_bound", tokcache_byte_bound, false},
        {"tokcache_holds_references", tokcache_holds_references, false},
        {"tokcache_bad_input", tokcache_bad_input, false},
        {"tokcache_threads", tokcache_threads, false},
        {"st_key_file_created", st_key_file_created, true},
        {"st_key_reused_on_reopen", st_key_reused_on_reopen, true},
        {"st_cfg_key_used", st_cfg_key_used, true},
        {"st_corrupt_key_file_refused", st_corrupt_key_file_refused, true},
        {"st_playback_marks", st_playback_marks, true},
        {"st_playback_marks_persist", st_playback_marks_persist, true},
        {"st_playback_marks_reloaded", st_playback_marks_reloaded, true},
        {"st_playback_marks_concurrent", st_playback_marks_concurrent, true},
        {"st_key_made_once_concurrently", st_key_made_once_concurrently,
         true},
        {"st_playback_hostile_names", st_playback_hostile_names, true},
        {"st_signed_all_config", st_signed_all_config, true},
        {"st_playback_check_cases", st_playback_check_cases, true},
        {"st_playback_sign_bounds", st_playback_sign_bounds, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        if (cases[i].storage)
            tcase_add_checked_fixture(tc, st_setup, st_teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(token_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
