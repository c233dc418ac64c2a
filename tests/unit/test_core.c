/*
 * tests/unit/test_core.c - core basics: refcounted buffers, status strings,
 * config defaults, file parsing, --set overrides and validation errors.
 */
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strbuf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/podium-cfg-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(buf_refcount)
{
    pd_buf_t *a = pd_buf_from("hello", 5);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->len, 5);
    ck_assert_mem_eq(a->data, "hello", 5);
    pd_buf_t *b = pd_buf_ref(a);
    ck_assert_ptr_eq(a, b);
    pd_buf_unref(&a);
    ck_assert_ptr_null(a);
    ck_assert_mem_eq(b->data, "hello", 5); /* still alive through b */
    pd_buf_unref(&b);
    ck_assert_ptr_null(b);
    pd_buf_unref(&b); /* NULL is fine */
    pd_buf_unref(NULL);
    ck_assert_ptr_null(pd_buf_ref(NULL));
    ck_assert_ptr_null(pd_buf_new((size_t)-1)); /* overflow refused */
}
END_TEST

START_TEST(strerror_all)
{
    for (int c = 0; c >= -12; c--)
        ck_assert_str_ne(pd_strerror(c), "unknown error");
    ck_assert_str_eq(pd_strerror(-999), "unknown error");
}
END_TEST

START_TEST(config_defaults_valid)
{
    pd_config_t c;
    char err[256];
    pd_config_defaults(&c);
    ck_assert_int_eq(c.rtmp_port, 1935);
    ck_assert_int_eq(c.http_port, 8080);
    ck_assert_int_eq(c.part_target_ms, 334);
    ck_assert_int_eq(c.segment_target_ms, 2000);
    ck_assert_int_eq(c.grace_period_ms, 30000);
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
}
END_TEST

START_TEST(config_file_overlay)
{
    pd_config_t c;
    char err[256] = "";
    pd_config_defaults(&c);
    const char *p = write_tmp("# comment\nrtmp_port = 0;\nhttp_port = 9090;\n"
                              "data_dir = \"/var/lib/podium\";\n"
                              "log_level = \"debug\";\n");
    ck_assert_int_eq(pd_config_load(&c, p, err, sizeof(err)), PD_OK);
    unlink(p);
    ck_assert_int_eq(c.rtmp_port, 0);
    ck_assert_int_eq(c.http_port, 9090);
    ck_assert_str_eq(c.data_dir, "/var/lib/podium");
    ck_assert_int_eq(c.log_level, PD_LOG_DEBUG);
    ck_assert_int_eq(c.segment_target_ms, 2000); /* untouched */
}
END_TEST

START_TEST(config_file_errors)
{
    static const char *bad[] = {
        "rtmp_port = 70000;\n",            /* out of range */
        "rtmp_port = \"x\";\n",            /* wrong type */
        "no_such_key = 1;\n",              /* unknown key */
        "http_port = 80\n",                /* syntax: missing ; is ok in
                                              libconfig, so add garbage: */
        "http_port = = 1;\n",              /* syntax error */
        "log_level = \"loud\";\n",         /* bad level */
        "data_dir = 5;\n",                 /* string expected */
        "window_segments = 2;\n",          /* below the minimum of 6 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (i == 3)
            continue; /* libconfig accepts a missing final ';' */
        pd_config_t c;
        char err[256] = "";
        pd_config_defaults(&c);
        const char *p = write_tmp(bad[i]);
        ck_assert_msg(pd_config_load(&c, p, err, sizeof(err)) == PD_EINVAL,
                      "accepted: %s", bad[i]);
        ck_assert_msg(strlen(err) > 0, "no message for: %s", bad[i]);
        unlink(p);
    }
    pd_config_t c;
    char err[256] = "";
    pd_config_defaults(&c);
    ck_assert_int_eq(pd_config_load(&c, "/nonexistent/podium.cfg", err,
                                    sizeof(err)), PD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "cannot read"));
}
END_TEST

START_TEST(config_set_overrides)
{
    pd_config_t c;
    char err[256] = "";
    pd_config_defaults(&c);
    ck_assert_int_eq(pd_config_set(&c, "grace_period_ms=1500", err,
                                   sizeof(err)), PD_OK);
    ck_assert_int_eq(c.grace_period_ms, 1500);
    ck_assert_int_eq(pd_config_set(&c, "bind_addr=127.0.0.1", err,
                                   sizeof(err)), PD_OK);
    ck_assert_str_eq(c.bind_addr, "127.0.0.1");
    ck_assert_int_eq(pd_config_set(&c, "log_level=warn", err, sizeof(err)),
                     PD_OK);
    ck_assert_int_eq(c.log_level, PD_LOG_WARN);
    static const char *bad[] = {"", "=5", "noequals", "rtmp_port=abc1",
                                "rtmp_port=-5", "bogus=1",
                                "data_dir=a\"b", "http_port=1;x=2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pd_config_set(&c, bad[i], err, sizeof(err)) ==
                      PD_EINVAL, "accepted --set %s", bad[i]);
    char huge[2000];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = 0;
    huge[5] = '=';
    ck_assert_int_eq(pd_config_set(&c, huge, err, sizeof(err)), PD_EINVAL);
}
END_TEST

START_TEST(config_validate_cross_field)
{
    pd_config_t c;
    char err[256] = "";
    pd_config_defaults(&c);
    c.part_target_ms = 1500; /* more than half the 2 s segment target */
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    pd_config_defaults(&c);
    c.http_port = c.rtmp_port;
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_EINVAL);
    c.http_port = c.rtmp_port = 0; /* two "any" ports are fine */
    ck_assert_int_eq(pd_config_validate(&c, err, sizeof(err)), PD_OK);
}
END_TEST

/* The text builder: empty, growth past its first 4 KiB (one append
 * larger than the doubled capacity too), exact bytes. */
START_TEST(strbuf_grows)
{
    pd_sb_t b = {0};
    pd_buf_t *out = NULL;
    ck_assert_int_eq(pd_sb_finish(&b, &out), PD_OK);
    ck_assert_uint_eq(out->len, 0);
    pd_buf_unref(&out);
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pd_sb_t c = {0};
    for (int i = 0; i < 1000; i++)
        pd_sb_printf(&c, "%d,", i % 10);
    pd_sb_printf(&c, "%s", big);
    pd_sb_printf(&c, "|%s|", "end");
    ck_assert_int_eq(pd_sb_finish(&c, &out), PD_OK);
    ck_assert_uint_eq(out->len, 2000 + 9999 + 5);
    ck_assert_int_eq(memcmp(out->data, "0,1,2,", 6), 0);
    ck_assert_int_eq(out->data[2000], 'x');
    ck_assert_int_eq(memcmp(out->data + out->len - 5, "|end|", 5), 0);
    pd_buf_unref(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, buf_refcount);
    tcase_add_test(tc, strerror_all);
    tcase_add_test(tc, strbuf_grows);
    tcase_add_test(tc, config_defaults_valid);
    tcase_add_test(tc, config_file_overlay);
    tcase_add_test(tc, config_file_errors);
    tcase_add_test(tc, config_set_overrides);
    tcase_add_test(tc, config_validate_cross_field);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
