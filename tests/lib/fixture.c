/*
 * tests/lib/fixture.c - shared podium + publisher fixture and asserting
 * helpers for the integration suites (see fixture.h).
 */
#include "fixture.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

void tl_playlist_path(char *out, size_t outlen, const char *name,
                      const char *rendition)
{
    if (rendition)
        snprintf(out, outlen, "/live/%s/%s/index.m3u8", name, rendition);
    else
        snprintf(out, outlen, "/live/%s/index.m3u8", name);
}

void tl_fixture_dump(const tl_fixture_t *f)
{
    if (f->podium.log[0]) {
        printf("---- podium log (tail) %s\n", f->podium.log);
        tl_print_tail(f->podium.log, 25, "  | ");
    }
    if (f->pub.log[0]) {
        printf("---- publisher log (tail) %s\n", f->pub.log);
        tl_print_tail(f->pub.log, 10, "  | ");
    }
    fflush(stdout);
}

int tl_fixture_start(tl_fixture_t *f, const char *tag, const char *const *sets,
                     const char *name, int gop_ms, int duration_s,
                     int min_segments, int timeout_ms)
{
    memset(f, 0, sizeof(*f));
    if (tl_mkdtemp(f->dir, sizeof(f->dir), tag) != 0) {
        printf("fixture: mkdtemp failed\n");
        return -1;
    }
    if (tl_podium_start(&f->podium, f->dir, sets) != 0) {
        tl_rmtree(f->dir);
        return -1;
    }
    f->started = true;
    if (!name)
        return 0;
    snprintf(f->name, sizeof(f->name), "%s", name);
    if (tl_pub_start(&f->pub, f->dir, f->podium.rtmp_port, name, gop_ms,
                     duration_s) != 0) {
        printf("fixture: could not start ffmpeg\n");
        tl_fixture_stop(f);
        return -1;
    }
    if (min_segments > 0) {
        char path[256];
        tl_playlist_path(path, sizeof(path), name, "source");
        int64_t t0 = tl_now_ms();
        const char *why = NULL;
        for (;;) {
            tl_m3u8_t m;
            char err[256];
            int rc = tl_fetch_m3u8(f->podium.http_port, path, 5000, &m, NULL,
                                   err, sizeof(err));
            int n = m.nsegs;
            tl_m3u8_free(&m);
            if (rc == 0 && n >= min_segments)
                break;
            /* Fail fast when a process is gone. */
            if (!tl_podium_alive(&f->podium))
                why = "podium exited";
            else if (duration_s == 0 && tl_pub_wait(&f->pub, 0) == 0)
                why = "the publisher exited";
            else if (tl_now_ms() - t0 > timeout_ms)
                why = "timed out";
            if (why) {
                printf("fixture: %s did not reach %d segments: %s after "
                       "%lld ms (last: %s)\n",
                       path, min_segments, why, (long long)(tl_now_ms() - t0),
                       rc ? err : "parsed");
                tl_fixture_dump(f);
                tl_fixture_stop(f);
                return -1;
            }
            tl_sleep_ms(200);
        }
        tl_note("fixture %s: %d segments after %lld ms", tag, min_segments,
                (long long)(tl_now_ms() - t0));
    }
    return 0;
}

void tl_fixture_stop(tl_fixture_t *f)
{
    if (f->pub.pid > 0)
        tl_pub_stop(&f->pub, SIGTERM);
    if (f->podium.pid > 0) {
        int st = 0;
        if (!f->podium.reaped)
            tl_podium_stop(&f->podium, 10000, &st, NULL);
        st = tl_podium_reap(&f->podium);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            printf("fixture: podium ended with wait status %d\n", st);
            tl_print_tail(f->podium.log, 25, "  | ");
        }
    }
    tl_rmtree(f->dir);
    f->started = false;
}

void tl_assert_clean_exit(tl_podium_t *p, int timeout_ms)
{
    int st = -1;
    int64_t ms = 0;
    ck_assert_msg(tl_podium_alive(p), "podium is not running any more");
    int rc = tl_podium_stop(p, timeout_ms, &st, &ms);
    tl_note("podium stopped %lld ms after SIGTERM, wait status %d",
            (long long)ms, st);
    if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        tl_print_tail(p->log, 25, "  | ");
    ck_assert_msg(rc == 0, "podium did not exit within %d ms of SIGTERM",
                  timeout_ms);
    ck_assert_msg(WIFEXITED(st), "podium was killed by signal %d",
                  WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    ck_assert_msg(WEXITSTATUS(st) == 0, "podium exited with status %d",
                  WEXITSTATUS(st));
}

int tl_resolve(const char *base_path, const char *uri, char *out, size_t outlen)
{
    char tmp[1024];
    if (strncmp(uri, "http://127.0.0.1:", 17) == 0) {
        const char *p = strchr(uri + 17, '/');
        if (!p)
            return -1;
        snprintf(tmp, sizeof(tmp), "%s", p);
    } else if (strstr(uri, "://")) {
        return -1;
    } else if (uri[0] == '/') {
        snprintf(tmp, sizeof(tmp), "%s", uri);
    } else {
        const char *slash = strrchr(base_path, '/');
        int dl = slash ? (int)(slash - base_path) : 0;
        snprintf(tmp, sizeof(tmp), "%.*s/%s", dl, base_path, uri);
    }
    /* Normalise "." and ".." segments (query strings kept as they are). */
    char *q = strchr(tmp, '?');
    char query[512] = "";
    if (q) {
        snprintf(query, sizeof(query), "%s", q);
        *q = 0;
    }
    char *segs[64];
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(tmp, "/", &save); s;
         s = strtok_r(NULL, "/", &save)) {
        if (strcmp(s, ".") == 0)
            continue;
        if (strcmp(s, "..") == 0) {
            if (n > 0)
                n--;
            continue;
        }
        if (n < 64)
            segs[n++] = s;
    }
    size_t ol = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + ol, outlen - ol, "/%s", segs[i]);
        if (w < 0 || ol + (size_t)w >= outlen)
            return -1;
        ol += (size_t)w;
    }
    int w = snprintf(out + ol, outlen - ol, "%s", query);
    if (w < 0 || ol + (size_t)w >= outlen)
        return -1;
    return 0;
}

void tl_fetch_m3u8_ok(int http_port, const char *path, tl_m3u8_t *m,
                      tl_resp_t *resp)
{
    char err[512];
    tl_resp_t r;
    int rc = tl_fetch_m3u8(http_port, path, 15000, m, &r, err, sizeof(err));
    if (rc != 0)
        printf("---- body of %s:\n%.3000s\n----\n", path,
               r.body ? (const char *)r.body : "");
    ck_assert_msg(rc == 0, "%s", err);
    if (resp)
        *resp = r;
    else
        tl_resp_free(&r);
}

void tl_get_ok(int http_port, const char *path, tl_resp_t *resp)
{
    int rc = tl_get(resp, 15000, "http://127.0.0.1:%d%s", http_port, path);
    ck_assert_msg(rc == 0 && resp->status == 200,
                  "GET %s: status %ld (curl %d)", path, resp->status,
                  resp->curl_code);
}

bool tl_content_type_is(const tl_resp_t *r, const char *type)
{
    char v[128];
    if (!tl_header(r, "Content-Type", v, sizeof(v)))
        return false;
    return strncasecmp(v, type, strlen(type)) == 0;
}
