/*
 * tests/unit/test_directives.c - httpd's delivery-directive parser
 * (_HLS_msn, _HLS_part, _HLS_skip), its number parser, percent-decoding
 * and the playlist Cache-Control policy. Every 400 case of the LL-HLS
 * checklist (H7, H8, H12) plus hostile and random input.
 */
#include "core/err.h"
#include "httpd/httpd_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses qs as a playlist query; returns 0 or PD_EINVAL and fills q. */
static int parse(const char *qs, pkg_query_t *q)
{
    httpd_directives_t d;
    memset(q, 0x5a, sizeof(*q)); /* garbage the parser must overwrite */
    httpd_directives_init(&d);
    int rc = httpd_directives_parse_query(qs, strlen(qs), &d);
    int rc2 = httpd_directives_finish(&d, q);
    if (rc)
        ck_assert_int_eq(rc2, rc); /* an error stays an error */
    return rc2;
}

static void expect_bad(const char *qs)
{
    pkg_query_t q;
    if (parse(qs, &q) != PD_EINVAL)
        ck_abort_msg("query '%s' was accepted", qs);
}

static void expect(const char *qs, int64_t msn, int64_t part, bool skip)
{
    pkg_query_t q;
    int rc = parse(qs, &q);
    if (rc)
        ck_abort_msg("query '%s' refused (%d)", qs, rc);
    ck_assert_int_eq(q.hls_msn, msn);
    ck_assert_int_eq(q.hls_part, part);
    ck_assert_int_eq(q.hls_skip, skip);
}

START_TEST(none)
{
    expect("", -1, -1, false);
    expect("&&", -1, -1, false);
    expect("token=abc", -1, -1, false);
}
END_TEST

START_TEST(msn_only)
{
    expect("_HLS_msn=0", 0, -1, false);
    expect("_HLS_msn=7", 7, -1, false);
    expect("_HLS_msn=123456", 123456, -1, false);
}
END_TEST

START_TEST(msn_and_part)
{
    expect("_HLS_msn=12&_HLS_part=0", 12, 0, false);
    expect("_HLS_msn=12&_HLS_part=3", 12, 3, false);
}
END_TEST

START_TEST(order_independent)
{
    expect("_HLS_part=3&_HLS_msn=12", 12, 3, false);
    expect("_HLS_skip=YES&_HLS_part=3&_HLS_msn=12", 12, 3, true);
    expect("_HLS_part=3&_HLS_skip=YES&_HLS_msn=12", 12, 3, true);
}
END_TEST

START_TEST(unknown_ignored)
{
    expect("token=x&_HLS_msn=5&foo=&bar&_HLS_part=1&z=%00", 5, 1, false);
    expect("_HLS_msn=5&_HLS_other=abc", 5, -1, false);
    /* names are case-sensitive: these are someone else's parameters */
    expect("_hls_msn=abc&_HLS_MSN=1&_HLS_Part=x", -1, -1, false);
    /* a long unknown parameter is still fine */
    char qs[400];
    memset(qs, 'a', sizeof(qs) - 1);
    qs[sizeof(qs) - 1] = '\0';
    qs[10] = '=';
    expect(qs, -1, -1, false);
}
END_TEST

START_TEST(part_without_msn)
{
    expect_bad("_HLS_part=1");
    expect_bad("_HLS_part=0");
    expect_bad("_HLS_part=1&_HLS_skip=YES");
}
END_TEST

START_TEST(malformed_numbers)
{
    static const char *bad[] = {
        "_HLS_msn=abc",
        "_HLS_msn=-1",
        "_HLS_msn=1.5",
        "_HLS_msn=",
        "_HLS_msn",
        "_HLS_msn=+1",
        "_HLS_msn=%2B1",
        "_HLS_msn= 1",
        "_HLS_msn=1 ",
        "_HLS_msn=0x10",
        "_HLS_msn=1e3",
        "_HLS_msn=01",
        "_HLS_msn=00",
        "_HLS_msn=%00",
        "_HLS_msn=1%00",
        "_HLS_msn=%31%00",
        "_HLS_msn=1a",
        "_HLS_msn=\xff",
        "_HLS_msn=%",
        "_HLS_msn=--1",
        "_HLS_msn=1&_HLS_part=abc",
        "_HLS_msn=1&_HLS_part=-1",
        "_HLS_msn=1&_HLS_part=1.5",
        "_HLS_msn=1&_HLS_part=",
        "_HLS_msn=1&_HLS_part",
        "_HLS_msn=1&_HLS_part=+1",
        "_HLS_msn=1&_HLS_part=01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i]);
}
END_TEST

START_TEST(huge_numbers)
{
    expect("_HLS_msn=9223372036854775807", INT64_MAX, -1, false);
    expect_bad("_HLS_msn=9223372036854775808");
    expect_bad("_HLS_msn=18446744073709551616");
    expect_bad("_HLS_msn=99999999999999999999999999999999999999");
    expect("_HLS_msn=1&_HLS_part=9223372036854775807", 1, INT64_MAX, false);
    expect_bad("_HLS_msn=1&_HLS_part=9223372036854775808");
}
END_TEST

START_TEST(percent_encoded_digits)
{
    /* %31 is '1': the same number, decoded before parsing */
    expect("_HLS_msn=%31%32", 12, -1, false);
    expect("%5FHLS_msn=4", 4, -1, false);
}
END_TEST

START_TEST(duplicates)
{
    expect_bad("_HLS_msn=1&_HLS_msn=1");
    expect_bad("_HLS_msn=1&_HLS_msn=2");
    expect_bad("_HLS_msn=1&_HLS_part=1&_HLS_part=1");
    expect_bad("_HLS_skip=YES&_HLS_skip=YES");
    expect_bad("_HLS_msn=1&%5FHLS_msn=1"); /* same name once decoded */
    expect_bad("_HLS_msn&_HLS_msn=1");
}
END_TEST

START_TEST(skip_values)
{
    expect("_HLS_skip=YES", -1, -1, true);
    expect("_HLS_skip=v2", -1, -1, true); /* no DATERANGEs: same as YES */
    expect("_HLS_msn=3&_HLS_skip=YES", 3, -1, true);
    static const char *bad[] = {
        "_HLS_skip=",       "_HLS_skip",      "_HLS_skip=yes",
        "_HLS_skip=NO",     "_HLS_skip=V2",   "_HLS_skip=v3",
        "_HLS_skip=YES%00", "_HLS_skip=YES ", "_HLS_skip=1",
        "_HLS_skip=YESYES", "_HLS_skip=v",    "_HLS_skip=+YES",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad(bad[i]);
}
END_TEST

START_TEST(error_is_sticky)
{
    /* a later good argument does not repair an earlier bad one */
    httpd_directives_t d;
    pkg_query_t q;
    httpd_directives_init(&d);
    httpd_directives_add(&d, "_HLS_msn", 8, "x", 1);
    httpd_directives_add(&d, "_HLS_part", 9, "1", 1);
    ck_assert_int_eq(httpd_directives_finish(&d, &q), PD_EINVAL);
    /* NULL value, as libmicrohttpd gives for "?_HLS_msn" */
    httpd_directives_init(&d);
    httpd_directives_add(&d, "_HLS_msn", 8, NULL, 0);
    ck_assert_int_eq(httpd_directives_finish(&d, &q), PD_EINVAL);
    /* explicit lengths: the bytes after vlen are not read */
    httpd_directives_init(&d);
    httpd_directives_add(&d, "_HLS_msnXXX", 8, "42junk", 2);
    ck_assert_int_eq(httpd_directives_finish(&d, &q), PD_OK);
    ck_assert_int_eq(q.hls_msn, 42);
}
END_TEST

START_TEST(overlong_argument)
{
    char qs[HTTPD_PATH_MAX + 64];
    memset(qs, '1', sizeof(qs) - 1);
    qs[sizeof(qs) - 1] = '\0';
    memcpy(qs, "_HLS_msn=", 9); /* a 566-digit number */
    expect_bad(qs);
    memcpy(qs, "tokenxxx=", 9); /* not ours: ignored, however long */
    expect(qs, -1, -1, false);
    memcpy(qs + 100, "&_HLS_msn=7&", 12); /* ours between long ones */
    expect(qs, 7, -1, false);
    memset(qs, 'k', 100); /* a long key is not ours either */
    expect(qs, 7, -1, false);
    /* 57 escaped bytes decode to 19 digits: still a valid number */
    char enc[128] = "_HLS_msn=%31";
    for (int i = 0; i < 18; i++)
        memcpy(enc + 12 + 3 * i, "%30", 4);
    expect(enc, 1000000000000000000LL, -1, false);
}
END_TEST

START_TEST(random_bytes)
{
    /* random queries: never crash, and whatever is accepted is sane */
    srand(1234);
    for (int n = 0; n < 20000; n++) {
        char qs[64];
        static const char alphabet[] = "_HLSmsnpartkiYESv2=&%+-.0123456789ab";
        size_t len = (size_t)(rand() % 63);
        for (size_t i = 0; i < len; i++)
            qs[i] = (rand() % 4) ? alphabet[rand() % (sizeof(alphabet) - 1)]
                                 : (char)(rand() % 255 + 1);
        qs[len] = '\0';
        pkg_query_t q;
        if (parse(qs, &q) == PD_OK) {
            ck_assert(q.hls_msn >= -1);
            ck_assert(q.hls_part >= -1);
            ck_assert(q.hls_part == -1 || q.hls_msn >= 0);
        }
    }
}
END_TEST

START_TEST(parse_dec_rules)
{
    int64_t v = -5;
    ck_assert_int_eq(httpd_parse_dec("0", 1, 10, &v), PD_OK);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(httpd_parse_dec("10", 2, 10, &v), PD_OK);
    ck_assert_int_eq(v, 10);
    ck_assert_int_eq(httpd_parse_dec("11", 2, 10, &v), PD_EINVAL);
    ck_assert_int_eq(httpd_parse_dec("", 0, 10, &v), PD_EINVAL);
    ck_assert_int_eq(httpd_parse_dec(NULL, 0, 10, &v), PD_EINVAL);
    ck_assert_int_eq(httpd_parse_dec("05", 2, 10, &v), PD_EINVAL);
    ck_assert_int_eq(httpd_parse_dec("12345678901234567890", 20, INT64_MAX, &v),
                     PD_EINVAL);
    ck_assert_int_eq(httpd_parse_dec("4294967295", 10, UINT32_MAX, &v), 0);
    ck_assert_int_eq(httpd_parse_dec("4294967296", 10, UINT32_MAX, &v),
                     PD_EINVAL);
    ck_assert_int_eq(v, 4294967295LL); /* untouched on error */
}
END_TEST

START_TEST(unescape_rules)
{
    char s[64];
    snprintf(s, sizeof(s), "a%%2Fb%%2e%%2E%%41");
    ck_assert_uint_eq(httpd_unescape(s), 6);
    ck_assert_str_eq(s, "a/b..A");
    snprintf(s, sizeof(s), "x%%00y");
    ck_assert_uint_eq(httpd_unescape(s), 5); /* %00 stays as it is */
    ck_assert_str_eq(s, "x%00y");
    snprintf(s, sizeof(s), "%%zz%%4%%");
    ck_assert_uint_eq(httpd_unescape(s), 6);
    ck_assert_str_eq(s, "%zz%4%");
    snprintf(s, sizeof(s), "%%252e"); /* decoded once only */
    httpd_unescape(s);
    ck_assert_str_eq(s, "%2e");
    s[0] = '\0';
    ck_assert_uint_eq(httpd_unescape(s), 0);
}
END_TEST

START_TEST(playlist_cache_policy)
{
    /* plain reload and multivariant: TD/2 rounded down, at least 1 */
    ck_assert_int_eq(httpd_playlist_max_age(2, false, false), 1);
    ck_assert_int_eq(httpd_playlist_max_age(4, false, false), 2);
    ck_assert_int_eq(httpd_playlist_max_age(5, false, false), 2);
    ck_assert_int_eq(httpd_playlist_max_age(1, false, false), 1);
    ck_assert_int_eq(httpd_playlist_max_age(0, false, false), 1);
    /* blocking reload: 6 TD */
    ck_assert_int_eq(httpd_playlist_max_age(2, true, false), 12);
    ck_assert_int_eq(httpd_playlist_max_age(0, true, false), 1);
    /* ended: TD/2 even when directives were sent */
    ck_assert_int_eq(httpd_playlist_max_age(4, true, true), 2);
    ck_assert_int_eq(httpd_playlist_max_age(4, false, true), 2);
    /* nonsense target durations do not overflow */
    ck_assert_int_gt(httpd_playlist_max_age(2147483647, true, false), 0);
    ck_assert_int_eq(httpd_playlist_max_age(-3, true, false), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("directives");
    TCase *tc = tcase_create("directives");
    tcase_add_test(tc, none);
    tcase_add_test(tc, msn_only);
    tcase_add_test(tc, msn_and_part);
    tcase_add_test(tc, order_independent);
    tcase_add_test(tc, unknown_ignored);
    tcase_add_test(tc, part_without_msn);
    tcase_add_test(tc, malformed_numbers);
    tcase_add_test(tc, huge_numbers);
    tcase_add_test(tc, percent_encoded_digits);
    tcase_add_test(tc, duplicates);
    tcase_add_test(tc, skip_values);
    tcase_add_test(tc, error_is_sticky);
    tcase_add_test(tc, overlong_argument);
    tcase_add_test(tc, random_bytes);
    tcase_add_test(tc, parse_dec_rules);
    tcase_add_test(tc, unescape_rules);
    tcase_add_test(tc, playlist_cache_policy);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
