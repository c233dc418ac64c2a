/*
 * tests/lib/fixture.h - one podium plus one publisher shared by the tests
 * of a Check test case, and asserting helpers built on testlib.h.
 *
 * Sharing: a suite starts the fixture in an unchecked fixture (it runs
 * once, in the runner process, before the forked tests), so the tests of
 * a case reuse one warmed-up stream instead of waiting for segments each
 * time. The case's last test calls tl_assert_clean_exit() (SIGTERM, exit
 * status 0); the unchecked teardown only cleans up, it never asserts
 * (an assert there would kill the runner).
 *
 * The tl_*_ok() helpers call ck_assert and so belong in test bodies.
 */
#ifndef TESTS_LIB_FIXTURE_H
#define TESTS_LIB_FIXTURE_H

#include "testlib.h"

typedef struct tl_fixture_s {
    char dir[256]; /* temp dir, removed by tl_fixture_stop */
    tl_podium_t podium;
    tl_pub_t pub;  /* pid 0 if no publisher */
    char name[64]; /* stream name ("live/<name>") */
    bool started;
} tl_fixture_t;

/* Makes a temp dir, starts podium with sets, and (if name is not NULL)
 * a publisher to live/<name> with the given GOP and duration (0 = until
 * stopped); then waits up to timeout_ms for min_segments complete video
 * segments. Returns 0, or -1 after cleaning up and printing the logs. */
int tl_fixture_start(tl_fixture_t *f, const char *tag, const char *const *sets,
                     const char *name, int gop_ms, int duration_s,
                     int min_segments, int timeout_ms);

/* Stops the publisher and podium (if still running), prints podium's exit
 * status if it was not a clean 0, removes the temp dir. Never asserts. */
void tl_fixture_stop(tl_fixture_t *f);

/* Prints the tail of podium's log and of the publisher's log. */
void tl_fixture_dump(const tl_fixture_t *f);

/* Asserting: SIGTERM podium and expect exit status 0 within timeout_ms. */
void tl_assert_clean_exit(tl_podium_t *p, int timeout_ms);

/* "/live/<name>/index.m3u8" or "/live/<name>/<rendition>/index.m3u8". */
void tl_playlist_path(char *out, size_t outlen, const char *name,
                      const char *rendition);

/* Resolves uri (relative, absolute-path or http://127.0.0.1:port/...)
 * against the path of the document that contained it, into an absolute
 * path ("/live/x/video/1.0.m4s"). Returns 0 or -1. */
int tl_resolve(const char *base_path, const char *uri, char *out,
               size_t outlen);

/* Asserting: GET and parse the playlist at path; fails the test with the
 * reason and the body. *resp (may be NULL) receives the response. */
void tl_fetch_m3u8_ok(int http_port, const char *path, tl_m3u8_t *m,
                      tl_resp_t *resp);

/* Asserting: GET path, expect 200; returns the response. */
void tl_get_ok(int http_port, const char *path, tl_resp_t *resp);

/* True if the Content-Type of r starts with type (case-insensitive). */
bool tl_content_type_is(const tl_resp_t *r, const char *type);

#endif
