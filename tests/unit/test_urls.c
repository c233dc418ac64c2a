/*
 * tests/unit/test_urls.c - httpd's URL routing: every valid path form,
 * and hostile paths ("..", "//", overlong, non-canonical numbers,
 * encoded characters, empty names, random bytes) that must all be 404.
 *
 * Paths reach the router already percent-decoded by httpd_unescape()
 * (libmicrohttpd's unescape callback); the encoded cases run through the
 * same decoding first.
 */
#include "core/err.h"
#include "httpd/httpd_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int route(const char *path, httpd_route_t *r)
{
    return httpd_route_parse(path, strlen(path), r);
}

/* Decodes like libmicrohttpd with our callback, then routes. */
static int route_raw(const char *raw, httpd_route_t *r)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s", raw);
    size_t n = httpd_unescape(buf);
    return httpd_route_parse(buf, n, r);
}

static void expect_404(const char *path)
{
    httpd_route_t r;
    int rc = route(path, &r);
    if (rc != PD_ENOENT)
        ck_abort_msg("path '%s' was routed (kind %d)", path, r.kind);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_NONE);
}

static void expect_raw_404(const char *raw)
{
    httpd_route_t r;
    if (route_raw(raw, &r) != PD_ENOENT)
        ck_abort_msg("raw path '%s' was routed (kind %d)", raw, r.kind);
}

static void expect_media(const char *path, pkg_obj_t obj, const char *stream,
                         const char *rendition)
{
    httpd_route_t r;
    int rc = route(path, &r);
    if (rc)
        ck_abort_msg("path '%s' refused", path);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_MEDIA);
    ck_assert_int_eq(r.obj, obj);
    ck_assert_str_eq(r.stream, stream);
    ck_assert_str_eq(r.rendition, rendition);
}

START_TEST(static_routes)
{
    httpd_route_t r;
    ck_assert_int_eq(route("/", &r), PD_OK);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_PLAYER);
    ck_assert_int_eq(route("/hls.min.js", &r), PD_OK);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_HLSJS);
    ck_assert_int_eq(route("/streams.json", &r), PD_OK);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_STREAMS);
    expect_404("");
    expect_404("//");
    expect_404("/index.html");
    expect_404("/favicon.ico");
    expect_404("/hls.min.js/");
    expect_404("/streams.json/x");
    expect_404("/Streams.json");
    expect_404("hls.min.js");
    expect_404("*");
    expect_404("http://127.0.0.1/");
}
END_TEST

START_TEST(multivariant)
{
    expect_media("/live/x/index.m3u8", PKG_OBJ_MULTIVARIANT, "live/x", "");
    expect_media("/live/My_Stream-1.0/index.m3u8", PKG_OBJ_MULTIVARIANT,
                 "live/My_Stream-1.0", "");
    /* "index.m3u8" is a legal stream name too */
    expect_media("/live/index.m3u8/index.m3u8", PKG_OBJ_MULTIVARIANT,
                 "live/index.m3u8", "");
    httpd_route_t r;
    pkg_query_t q;
    ck_assert_int_eq(route("/live/x/index.m3u8", &r), PD_OK);
    httpd_route_to_query(&r, &q);
    ck_assert_int_eq(q.obj, PKG_OBJ_MULTIVARIANT);
    ck_assert_str_eq(q.stream, "live/x");
    ck_assert_ptr_null(q.rendition);
    ck_assert_int_eq(q.hls_msn, -1);
    ck_assert_int_eq(q.hls_part, -1);
    ck_assert(!q.hls_skip);
}
END_TEST

START_TEST(media_playlist)
{
    expect_media("/live/x/video/index.m3u8", PKG_OBJ_PLAYLIST, "live/x",
                 "video");
    expect_media("/live/x/audio/index.m3u8", PKG_OBJ_PLAYLIST, "live/x",
                 "audio");
    expect_media("/live/x/720p/index.m3u8", PKG_OBJ_PLAYLIST, "live/x", "720p");
    httpd_route_t r;
    pkg_query_t q;
    ck_assert_int_eq(route("/live/cam/video/index.m3u8", &r), PD_OK);
    httpd_route_to_query(&r, &q);
    ck_assert_int_eq(q.obj, PKG_OBJ_PLAYLIST);
    ck_assert_str_eq(q.stream, "live/cam");
    ck_assert_str_eq(q.rendition, "video");
}
END_TEST

START_TEST(init_segments)
{
    httpd_route_t r;
    /* init sections are named by MSN; "init.mp4" no longer exists (its
     * bytes would differ between stream instances under one URL) */
    expect_404("/live/x/video/init.mp4");
    expect_media("/live/x/video/init-900000000.mp4", PKG_OBJ_INIT, "live/x",
                 "video");
    ck_assert_int_eq(route("/live/x/video/init-900000000.mp4", &r), PD_OK);
    ck_assert_uint_eq(r.init_id, 900000000u);
    ck_assert_int_eq(route("/live/x/audio/init-1.mp4", &r), PD_OK);
    ck_assert_int_eq(r.obj, PKG_OBJ_INIT);
    ck_assert_uint_eq(r.init_id, 1);
    ck_assert_int_eq(route("/live/x/audio/init-4294967295.mp4", &r), PD_OK);
    ck_assert_uint_eq(r.init_id, 4294967295u);
    expect_404("/live/x/video/init-0.mp4"); /* MSNs start at 1 */
    expect_404("/live/x/video/init-01.mp4");
    expect_404("/live/x/video/init-4294967296.mp4");
    expect_404("/live/x/video/init-.mp4");
    expect_404("/live/x/video/init--1.mp4");
    expect_404("/live/x/video/init-1.5.mp4");
    expect_404("/live/x/video/init-a.mp4");
    expect_404("/live/x/video/init.mp4x");
    expect_404("/live/x/video/init.MP4");
    expect_404("/live/x/video/init");
    expect_404("/live/x/init.mp4"); /* needs a rendition */
}
END_TEST

START_TEST(segments_and_parts)
{
    httpd_route_t r;
    pkg_query_t q;
    ck_assert_int_eq(route("/live/x/video/1.m4s", &r), PD_OK);
    ck_assert_int_eq(r.obj, PKG_OBJ_SEGMENT);
    ck_assert_int_eq(r.msn, 1);
    ck_assert_int_eq(route("/live/x/video/0.m4s", &r), PD_OK);
    ck_assert_int_eq(r.msn, 0);
    ck_assert_int_eq(route("/live/x/audio/123.4.m4s", &r), PD_OK);
    ck_assert_int_eq(r.obj, PKG_OBJ_PART);
    ck_assert_int_eq(r.msn, 123);
    ck_assert_int_eq(r.part, 4);
    ck_assert_str_eq(r.rendition, "audio");
    httpd_route_to_query(&r, &q);
    ck_assert_int_eq(q.obj, PKG_OBJ_PART);
    ck_assert_int_eq(q.msn, 123);
    ck_assert_int_eq(q.part, 4);
    ck_assert_int_eq(route("/live/x/video/7.0.m4s", &r), PD_OK);
    ck_assert_int_eq(r.part, 0);
    ck_assert_int_eq(route("/live/x/video/9223372036854775807.m4s", &r), PD_OK);
    ck_assert_int_eq(r.msn, INT64_MAX);
}
END_TEST

START_TEST(bad_numbers)
{
    static const char *bad[] = {
        "/live/x/video/01.m4s", /* leading zeros: one name per object */
        "/live/x/video/00.m4s",
        "/live/x/video/1.01.m4s",
        "/live/x/video/1.00.m4s",
        "/live/x/video/-1.m4s",
        "/live/x/video/+1.m4s",
        "/live/x/video/1.-1.m4s",
        "/live/x/video/ 1.m4s",
        "/live/x/video/1 .m4s",
        "/live/x/video/1e3.m4s",
        "/live/x/video/0x1.m4s",
        "/live/x/video/a.m4s",
        "/live/x/video/.m4s",
        "/live/x/video/..m4s",
        "/live/x/video/1..m4s",
        "/live/x/video/.1.m4s",
        "/live/x/video/1.2.3.m4s",
        "/live/x/video/1.a.m4s",
        "/live/x/video/1.m4",
        "/live/x/video/1.M4S",
        "/live/x/video/1.m4s.m4s",
        "/live/x/video/1.mp4",
        "/live/x/video/m4s",
        "/live/x/video/9223372036854775808.m4s",
        "/live/x/video/1.9223372036854775808.m4s",
        "/live/x/video/99999999999999999999999.m4s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_404(bad[i]);
}
END_TEST

START_TEST(bad_structure)
{
    static const char *bad[] = {
        "/live",
        "/live/",
        "/live/x",
        "/live/x/",
        "/live//index.m3u8",
        "//live/x/index.m3u8",
        "/live/x//index.m3u8",
        "/live/x/video//index.m3u8",
        "/live/x/video/",
        "/live/x/video/index.m3u8/",
        "/live/x/video/index.m3u8/extra",
        "/live/x/a/b/index.m3u8",
        "/Live/x/index.m3u8",
        "/vod/x/index.m3u8",
        "live/x/index.m3u8",
        "/live/x/index.m3u",
        "/live/x/index.M3U8",
        "/live/x/playlist.m3u8",
        "/live/x/video/playlist.m3u8",
        "/live/x/video/index.m3u8x",
        "/live/x/1.m4s", /* segment without rendition */
        "/live/./index.m3u8",
        "/live/../index.m3u8",
        "/live/x/./index.m3u8",
        "/live/x/../index.m3u8",
        "/live/../../etc/passwd",
        "/live/x/../../../etc/passwd",
        "/../live/x/index.m3u8",
        "/live/x y/index.m3u8",
        "/live/x\\y/index.m3u8",
        "/live/x:y/index.m3u8",
        "/live/x%y/index.m3u8",
        "/live/x?y/index.m3u8",
        "/live/x#y/index.m3u8",
        "/live/\xc3\xa9t\xc3\xa9/index.m3u8",
        "/live/x/vid\teo/index.m3u8",
        "/live/x/video/index.m3u8\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_404(bad[i]);
    /* names with dots that are not "." or ".." are fine */
    expect_media("/live/.../index.m3u8", PKG_OBJ_MULTIVARIANT, "live/...", "");
    expect_media("/live/.x/..y/index.m3u8", PKG_OBJ_PLAYLIST, "live/.x", "..y");
}
END_TEST

START_TEST(name_lengths)
{
    char name[HTTPD_NAME_MAX + 2];
    char path[512];
    char stream[128];
    memset(name, 'n', sizeof(name));
    name[HTTPD_NAME_MAX] = '\0'; /* 64: the longest allowed */
    snprintf(path, sizeof(path), "/live/%s/%s/1.2.m4s", name, name);
    snprintf(stream, sizeof(stream), "live/%s", name);
    expect_media(path, PKG_OBJ_PART, stream, name);
    name[HTTPD_NAME_MAX] = 'n';
    name[HTTPD_NAME_MAX + 1] = '\0'; /* 65 */
    snprintf(path, sizeof(path), "/live/%s/index.m3u8", name);
    expect_404(path);
    snprintf(path, sizeof(path), "/live/x/%s/index.m3u8", name);
    expect_404(path);
    expect_media("/live/a/b/init-7.mp4", PKG_OBJ_INIT, "live/a", "b");
}
END_TEST

START_TEST(overlong)
{
    /* far beyond any valid path; also past HTTPD_PATH_MAX */
    static char path[8192];
    memcpy(path, "/live/", 6);
    memset(path + 6, 'a', sizeof(path) - 7);
    path[sizeof(path) - 1] = '\0';
    expect_404(path);
    /* the length argument wins over the NUL */
    httpd_route_t r;
    ck_assert_int_eq(httpd_route_parse("/live/x/index.m3u8", 7, &r), PD_ENOENT);
    ck_assert_int_eq(httpd_route_parse("/streams.jsonXYZ", 13, &r), PD_OK);
    ck_assert_int_eq(r.kind, HTTPD_ROUTE_STREAMS);
    ck_assert_int_eq(httpd_route_parse(NULL, 0, &r), PD_ENOENT);
    ck_assert_int_eq(httpd_route_parse("/\0", 2, &r), PD_ENOENT);
    ck_assert_int_eq(httpd_route_parse("/live/x\0/index.m3u8", 19, &r),
                     PD_ENOENT);
    ck_assert_int_eq(httpd_route_parse(path, HTTPD_PATH_MAX + 1, &r),
                     PD_ENOENT);
}
END_TEST

START_TEST(encoded)
{
    httpd_route_t r;
    /* escapes of allowed characters decode to the same object */
    ck_assert_int_eq(route_raw("/live/%78/vide%6F/%31.%32.m4s", &r), PD_OK);
    ck_assert_str_eq(r.stream, "live/x");
    ck_assert_str_eq(r.rendition, "video");
    ck_assert_int_eq(r.msn, 1);
    ck_assert_int_eq(r.part, 2);
    /* escapes that decode to something hostile stay hostile */
    expect_raw_404("/live/%2e%2e/index.m3u8");
    expect_raw_404("/live/%2E/index.m3u8");
    /* an escaped '/' is a '/' once decoded: it cannot hide a level */
    ck_assert_int_eq(route_raw("/live/x%2Fy/index.m3u8", &r), PD_OK);
    ck_assert_str_eq(r.stream, "live/x");
    ck_assert_str_eq(r.rendition, "y");
    expect_raw_404("/live/x%2Fy%2Fz/index.m3u8");
    expect_raw_404("/live/x%00/index.m3u8"); /* no NUL smuggling */
    expect_raw_404("/live/x/video/index.m3u8%00.js");
    expect_raw_404("/live/x/video/1.m4s%00");
    expect_raw_404("/live/%/index.m3u8");
    expect_raw_404("/live/%zz/index.m3u8");
    expect_raw_404("/live/x%20y/index.m3u8");
    expect_raw_404("/live/%252e%252e/index.m3u8"); /* decoded once: %2e */
    expect_raw_404("/live/x/video/%2B1.m4s");
    expect_raw_404("/live/x/video/%30%31.m4s"); /* "01" */
    expect_raw_404("/live/%C3%A9/index.m3u8");
    expect_raw_404("%2F%2E%2E%2Flive/x/index.m3u8");
}
END_TEST

START_TEST(random_bytes)
{
    /* random paths: never crash; whatever routes is well-formed */
    srand(4321);
    static const char alphabet[] = "/live/xvideo.m4s0123456789init-mp4%.";
    for (int n = 0; n < 50000; n++) {
        char p[96];
        size_t len = (size_t)(rand() % 95);
        for (size_t i = 0; i < len; i++)
            p[i] = (rand() % 5) ? alphabet[rand() % (sizeof(alphabet) - 1)]
                                : (char)(rand() % 256);
        p[len] = '\0';
        if (len && rand() % 2)
            p[0] = '/';
        if (len > 6 && rand() % 2)
            memcpy(p, "/live/", 6);
        httpd_route_t r;
        if (httpd_route_parse(p, len, &r) == PD_OK &&
            r.kind == HTTPD_ROUTE_MEDIA) {
            size_t sl = strlen(r.stream);
            ck_assert(sl > 5 && sl <= 5 + HTTPD_NAME_MAX);
            ck_assert(strncmp(r.stream, "live/", 5) == 0);
            ck_assert(strchr(r.stream + 5, '/') == NULL);
            ck_assert(strcmp(r.stream, "live/.") != 0);
            ck_assert(strcmp(r.stream, "live/..") != 0);
            ck_assert(strlen(r.rendition) <= HTTPD_NAME_MAX);
            ck_assert(strchr(r.rendition, '/') == NULL);
            ck_assert(r.msn >= 0 && r.part >= 0);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("urls");
    TCase *tc = tcase_create("urls");
    tcase_add_test(tc, static_routes);
    tcase_add_test(tc, multivariant);
    tcase_add_test(tc, media_playlist);
    tcase_add_test(tc, init_segments);
    tcase_add_test(tc, segments_and_parts);
    tcase_add_test(tc, bad_numbers);
    tcase_add_test(tc, bad_structure);
    tcase_add_test(tc, name_lengths);
    tcase_add_test(tc, overlong);
    tcase_add_test(tc, encoded);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
