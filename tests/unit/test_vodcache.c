/*
 * tests/unit/test_vodcache.c - the cache of ended recordings' playlists
 * (httpd/vodcache.c): hits by (id, rendition, generation), a newer
 * generation never served the old entry, bounds in entries and bytes,
 * references, threads.
 */
#include "core/buf.h"
#include "core/err.h"
#include "httpd/httpd_int.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pd_buf_t *buf_of(const char *s)
{
    pd_buf_t *b = pd_buf_from(s, strlen(s));
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(hit_by_id_rendition_generation)
{
    httpd_vodcache_t *c = NULL;
    ck_assert_int_eq(httpd_vodcache_create(8, 1 << 20, &c), 0);
    pd_buf_t *mv = buf_of("#EXTM3U\nmv\n"), *src = buf_of("#EXTM3U\nsrc\n");
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "", 0));
    httpd_vodcache_put(c, 1, "", 0, mv);
    httpd_vodcache_put(c, 1, "source", 0, src);
    pd_buf_t *x = httpd_vodcache_get(c, 1, "", 0);
    ck_assert_ptr_eq(x, mv);
    pd_buf_unref(&x);
    x = httpd_vodcache_get(c, 1, "source", 0);
    ck_assert_ptr_eq(x, src);
    pd_buf_unref(&x);
    ck_assert_ptr_null(httpd_vodcache_get(c, 2, "", 0));   /* other id */
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "720p", 0)); /* other name */
    /* a deletion happened (generation 1): nothing made before is served,
     * and the stale entries are gone for good */
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "", 1));
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "", 0));
    /* an entry newer than a request's view is not served to it, nor
     * replaced by an older render */
    pd_buf_t *n5 = buf_of("#EXTM3U\nnew\n"), *o4 = buf_of("#EXTM3U\nold\n");
    httpd_vodcache_put(c, 9, "", 5, n5);
    ck_assert_ptr_null(httpd_vodcache_get(c, 9, "", 4));
    httpd_vodcache_put(c, 9, "", 4, o4);
    x = httpd_vodcache_get(c, 9, "", 5);
    ck_assert_ptr_eq(x, n5);
    pd_buf_unref(&x);
    pd_buf_unref(&n5);
    pd_buf_unref(&o4);
    x = httpd_vodcache_get(c, 1, "source", 0); /* not looked up at 1 yet */
    ck_assert_ptr_eq(x, src);
    pd_buf_unref(&x);
    /* a re-render under the new generation replaces it */
    pd_buf_t *src2 = buf_of("#EXTM3U\nsrc2\n");
    httpd_vodcache_put(c, 1, "source", 1, src2);
    x = httpd_vodcache_get(c, 1, "source", 1);
    ck_assert_ptr_eq(x, src2);
    pd_buf_unref(&x);
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "source", 0));
    pd_buf_unref(&mv);
    pd_buf_unref(&src);
    pd_buf_unref(&src2);
    httpd_vodcache_destroy(&c);
    ck_assert_ptr_null(c);
    httpd_vodcache_destroy(&c);
    httpd_vodcache_destroy(NULL);
}
END_TEST

START_TEST(holds_its_references)
{
    httpd_vodcache_t *c = NULL;
    ck_assert_int_eq(httpd_vodcache_create(4, 1 << 20, &c), 0);
    pd_buf_t *b = buf_of("#EXTM3U\nkept\n");
    httpd_vodcache_put(c, 7, "audio", 3, b);
    pd_buf_unref(&b); /* ours gone: the cache's keeps it alive */
    pd_buf_t *x = httpd_vodcache_get(c, 7, "audio", 3);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(memcmp(x->data, "#EXTM3U\nkept\n", x->len), 0);
    httpd_vodcache_destroy(&c);
    /* and ours outlives the cache */
    ck_assert_int_eq(memcmp(x->data, "#EXTM3U\nkept\n", x->len), 0);
    pd_buf_unref(&x);
}
END_TEST

START_TEST(bounded_in_entries_and_bytes)
{
    httpd_vodcache_t *c = NULL;
    ck_assert_int_eq(httpd_vodcache_create(2, 100, &c), 0);
    pd_buf_t *a = buf_of("aaaaaaaaaa"), *b = buf_of("bbbbbbbbbb"),
             *d = buf_of("dddddddddd");
    httpd_vodcache_put(c, 1, "", 0, a);
    httpd_vodcache_put(c, 2, "", 0, b);
    pd_buf_t *x = httpd_vodcache_get(c, 1, "", 0); /* 1 is now newest */
    ck_assert_ptr_eq(x, a);
    pd_buf_unref(&x);
    httpd_vodcache_put(c, 3, "", 0, d); /* two entries: 2 goes */
    ck_assert_ptr_null(httpd_vodcache_get(c, 2, "", 0));
    x = httpd_vodcache_get(c, 1, "", 0);
    ck_assert_ptr_eq(x, a);
    pd_buf_unref(&x);
    /* bytes: 95 more do not fit with 20: both older go */
    char big[96];
    memset(big, 'x', 95);
    big[95] = '\0';
    pd_buf_t *e = buf_of(big);
    httpd_vodcache_put(c, 4, "", 0, e);
    ck_assert_ptr_null(httpd_vodcache_get(c, 1, "", 0));
    ck_assert_ptr_null(httpd_vodcache_get(c, 3, "", 0));
    x = httpd_vodcache_get(c, 4, "", 0);
    ck_assert_ptr_eq(x, e);
    pd_buf_unref(&x);
    /* over the bound alone: not kept */
    char huge[200];
    memset(huge, 'y', 199);
    huge[199] = '\0';
    pd_buf_t *f = buf_of(huge);
    httpd_vodcache_put(c, 5, "", 0, f);
    ck_assert_ptr_null(httpd_vodcache_get(c, 5, "", 0));
    /* a rendition name over HTTPD_NAME_MAX is not kept either */
    char name[HTTPD_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    httpd_vodcache_put(c, 6, name, 0, a);
    ck_assert_ptr_null(httpd_vodcache_get(c, 6, name, 0));
    pd_buf_unref(&a);
    pd_buf_unref(&b);
    pd_buf_unref(&d);
    pd_buf_unref(&e);
    pd_buf_unref(&f);
    httpd_vodcache_destroy(&c);
    ck_assert_int_eq(httpd_vodcache_create(0, 1, &c), PD_EINVAL);
    ck_assert_int_eq(httpd_vodcache_create(1, 0, &c), PD_EINVAL);
    ck_assert_int_eq(httpd_vodcache_create(1, 1, NULL), PD_EINVAL);
    ck_assert_ptr_null(httpd_vodcache_get(NULL, 1, "", 0));
    httpd_vodcache_put(NULL, 1, "", 0, NULL);
}
END_TEST

static httpd_vodcache_t *shared;

static void *worker(void *arg)
{
    int base = *(int *)arg;
    char text[64];
    for (int i = 0; i < 3000; i++) {
        int64_t id = (base + i) % 17;
        uint64_t gen = (uint64_t)(i / 500);
        pd_buf_t *x = httpd_vodcache_get(shared, id, "source", gen);
        if (x) {
            /* whatever is served was put for that id and generation */
            snprintf(text, sizeof(text), "%lld/%llu", (long long)id,
                     (unsigned long long)gen);
            if (x->len != strlen(text) || memcmp(x->data, text, x->len)) {
                pd_buf_unref(&x);
                return (void *)1;
            }
            pd_buf_unref(&x);
            continue;
        }
        snprintf(text, sizeof(text), "%lld/%llu", (long long)id,
                 (unsigned long long)gen);
        pd_buf_t *b = pd_buf_from(text, strlen(text));
        httpd_vodcache_put(shared, id, "source", gen, b);
        pd_buf_unref(&b);
    }
    return NULL;
}

START_TEST(threads)
{
    ck_assert_int_eq(httpd_vodcache_create(8, 1 << 20, &shared), 0);
    pthread_t t[4];
    int base[4] = {0, 5, 9, 13};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &base[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    httpd_vodcache_destroy(&shared);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vodcache");
    TCase *t = tcase_create("vodcache");
    tcase_add_test(t, hit_by_id_rendition_generation);
    tcase_add_test(t, holds_its_references);
    tcase_add_test(t, bounded_in_entries_and_bytes);
    tcase_add_test(t, threads);
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
