/*
 * tests/integration/test_http.c - HTTP-level behaviour of the origin:
 * gzip of playlists (checklist A3: Content-Encoding: gzip when asked,
 * the decompressed body equal to the identity body, Vary:
 * Accept-Encoding on every playlist answer), media never compressed, and
 * keep-alive (one connection for playlists, parts and blocking answers;
 * no Connection: close).
 *
 * Case "shared": one podium + publisher (2 s GOP and segments, 334 ms
 * parts). Playlists change with every part, so "the same body" is checked
 * byte for byte on requests sent back to back (retried until both saw
 * one rendering), and on pairs of identical blocking requests sent
 * together (one asking for gzip, one not): the same publication releases
 * both, so they answer the same rendering, except that an audio part
 * published between their two lookups re-renders the video playlist with
 * a new rendition report: that line alone may differ there.
 *
 * Requests are made with libcurl here (not tl_get) to control the
 * Accept-Encoding header, to see the compressed bytes as sent, and to
 * reuse one connection; URLs are built on 127.0.0.1 only.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define NAME "http"

static tl_fixture_t F;
static const char *const SETS[] = {"segment_target_ms=2000",
                                   "part_target_ms=334",
                                   "grace_period_ms=10000", NULL};

static void setup(void)
{
    int rc = tl_fixture_start(&F, "http", SETS, NAME, 2000, 0, 2, 60000);
    ck_assert_msg(rc == 0, "podium + publisher did not come up");
}

static void teardown(void)
{
    tl_fixture_stop(&F);
}

static int port(void)
{
    return F.podium.http_port;
}

/* ---- a small libcurl client ---------------------------------------------- */

typedef struct gbuf_s {
    char *d;
    size_t len, cap;
} gbuf_t;

static void gappend(gbuf_t *g, const void *p, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *d = realloc(g->d, cap);
        ck_assert(d);
        g->d = d;
        g->cap = cap;
    }
    memcpy(g->d + g->len, p, n);
    g->len += n;
    g->d[g->len] = '\0';
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    gappend(ud, ptr, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    gbuf_t *g = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        g->len = 0; /* a new header block */
    gappend(g, ptr, n);
    return n;
}

/* How a request asks for its encoding. */
typedef enum {
    AE_NONE,   /* no Accept-Encoding */
    AE_RAW,    /* the header `ae` as given; the bytes as sent */
    AE_DECODE, /* CURLOPT_ACCEPT_ENCODING "gzip": curl asks and decodes */
} ae_mode_t;

typedef struct req_s {
    CURL *e; /* borrowed or owned, see req_open */
    bool own;
    struct curl_slist *hl;
    gbuf_t body, hdr;
    char url[600];
} req_t;

/* Prepares a GET (or HEAD) of path on e (NULL: a new handle). */
static void req_open(req_t *q, CURL *e, const char *path, ae_mode_t mode,
                     const char *ae, bool head)
{
    memset(q, 0, sizeof(*q));
    q->own = e == NULL;
    q->e = e ? e : curl_easy_init();
    ck_assert(q->e);
    snprintf(q->url, sizeof(q->url), "http://127.0.0.1:%d%s", port(), path);
    CURL *c = q->e;
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &q->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &q->hdr);
    curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
    if (!head)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING,
                     mode == AE_DECODE ? "gzip" : NULL);
    if (mode == AE_RAW) {
        char h[256];
        snprintf(h, sizeof(h), "Accept-Encoding: %s", ae);
        q->hl = curl_slist_append(NULL, h);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, q->hl);
}

/* Moves the result into r (free with tl_resp_free) and releases q. */
static void req_close(req_t *q, CURLcode cc, tl_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    long status = 0;
    curl_easy_getinfo(q->e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(q->e, CURLINFO_STARTTRANSFER_TIME, &r->ttfb_s);
    curl_easy_getinfo(q->e, CURLINFO_TOTAL_TIME, &r->total_s);
    r->curl_code = (int)cc;
    r->status = cc == CURLE_OK ? status : 0;
    gappend(&q->body, "", 0);
    gappend(&q->hdr, "", 0);
    r->body = (uint8_t *)q->body.d;
    r->len = q->body.len;
    r->headers = q->hdr.d;
    r->headers_len = q->hdr.len;
    curl_easy_setopt(q->e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(q->hl);
    if (q->own)
        curl_easy_cleanup(q->e);
    memset(q, 0, sizeof(*q));
}

/* One request on e (NULL: its own connection). *new_conns (may be NULL)
 * gets CURLINFO_NUM_CONNECTS. */
static void fetch(CURL *e, const char *path, ae_mode_t mode, const char *ae,
                  bool head, tl_resp_t *r, long *new_conns)
{
    req_t q;
    req_open(&q, e, path, mode, ae, head);
    CURLcode cc = curl_easy_perform(q.e);
    if (new_conns) {
        *new_conns = -1;
        curl_easy_getinfo(q.e, CURLINFO_NUM_CONNECTS, new_conns);
    }
    req_close(&q, cc, r);
}

/* n requests at once (each on its own connection), until all are done. */
static void fetch_together(req_t *q, int n, tl_resp_t *r)
{
    CURLM *m = curl_multi_init();
    ck_assert(m);
    for (int i = 0; i < n; i++)
        curl_multi_add_handle(m, q[i].e);
    CURLcode cc[8];
    ck_assert(n <= 8);
    for (int i = 0; i < n; i++)
        cc[i] = CURLE_OPERATION_TIMEDOUT;
    int running = n;
    int64_t deadline = tl_now_ms() + 25000;
    while (running > 0 && tl_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)))
        for (int i = 0; i < n; i++)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == q[i].e)
                cc[i] = msg->data.result;
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, q[i].e);
        req_close(&q[i], cc[i], &r[i]);
    }
    curl_multi_cleanup(m);
}

/* ---- checks ---------------------------------------------------------------
 */

/* Inflates a gzip body into a new NUL-terminated buffer; NULL if it is
 * not one whole gzip stream. */
static char *gunzip(const uint8_t *z, size_t zlen, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return NULL;
    size_t cap = zlen * 8 + 4096, n = 0;
    char *out = malloc(cap + 1);
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zlen;
    int zr = Z_OK;
    while (out && zr == Z_OK) {
        if (n == cap) {
            cap *= 2;
            char *o = realloc(out, cap + 1);
            if (!o) {
                free(out);
                out = NULL;
                break;
            }
            out = o;
        }
        zs.next_out = (Bytef *)out + n;
        zs.avail_out = (uInt)(cap - n);
        zr = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    }
    inflateEnd(&zs);
    if (!out || zr != Z_STREAM_END || zs.avail_in != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static bool has_header(const tl_resp_t *r, const char *name)
{
    char v[8];
    return tl_header(r, name, v, sizeof(v)) != NULL;
}

/* True if the comma-separated header value lists tok (case-insensitive). */
static bool header_lists(const tl_resp_t *r, const char *name, const char *tok)
{
    char v[256];
    if (!tl_header(r, name, v, sizeof(v)))
        return false;
    size_t tl = strlen(tok);
    for (char *p = v; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        char *e = p;
        while (*e && *e != ',')
            e++;
        char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, tok, tl) == 0)
            return true;
        p = e;
    }
    return false;
}

static void assert_vary(const tl_resp_t *r, const char *what)
{
    ck_assert_msg(header_lists(r, "Vary", "Accept-Encoding"),
                  "A3: %s: no Vary: Accept-Encoding in\n%s", what, r->headers);
}

static void assert_gzip(const tl_resp_t *r, const char *what)
{
    ck_assert_msg(r->status == 200, "%s -> %ld", what, r->status);
    ck_assert_msg(header_lists(r, "Content-Encoding", "gzip"),
                  "A3: %s: not gzip-encoded:\n%s", what, r->headers);
    assert_vary(r, what);
}

static void assert_identity(const tl_resp_t *r, const char *what)
{
    ck_assert_msg(r->status == 200, "%s -> %ld", what, r->status);
    ck_assert_msg(!has_header(r, "Content-Encoding"),
                  "%s: Content-Encoding on an identity answer:\n%s", what,
                  r->headers);
}

/* A raw gzip answer: decompresses, the length matches, and it parses as a
 * playlist into *m (freed by the caller). Returns the plain text. */
static char *gz_playlist(const tl_resp_t *r, const char *what, tl_m3u8_t *m)
{
    assert_gzip(r, what);
    char cl[32];
    ck_assert_msg(tl_header(r, "Content-Length", cl, sizeof(cl)) &&
                      strtoull(cl, NULL, 10) == r->len,
                  "%s: Content-Length %s for %zu bytes", what, cl, r->len);
    ck_assert_msg(r->len >= 2 && r->body[0] == 0x1f && r->body[1] == 0x8b,
                  "A3: %s: body is not gzip", what);
    size_t n;
    char *plain = gunzip(r->body, r->len, &n);
    ck_assert_msg(plain, "A3: %s: body does not decompress", what);
    ck_assert_msg(n > r->len, "%s: gzip (%zu) not smaller than %zu", what,
                  r->len, n);
    char err[256];
    int rc = tl_m3u8_parse(plain, n, m, err, sizeof(err));
    if (rc)
        printf("---- %s, decompressed:\n%.2000s\n----\n", what, plain);
    ck_assert_msg(rc == 0, "%s: decompressed playlist: %s", what, err);
    return plain;
}

static void vpath(char *out, size_t len)
{
    tl_playlist_path(out, len, NAME, "source");
}

/* The part two ahead of the last one listed in the playlist at path: a
 * directive every request sent now waits for. */
static void two_ahead(const char *path, long long *msn, int *part)
{
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port(), path, &m, NULL);
    const tl_part_t *lp = tl_m3u8_last_part(&m);
    ck_assert(lp);
    /* after a complete segment the next one's part 1 is two ahead */
    *msn = (long long)lp->msn + (m.ntrailing == 0 ? 1 : 0);
    *part = m.ntrailing == 0 ? 1 : lp->index + 2;
    tl_m3u8_free(&m);
}

/* ---- A3: plain playlists ------------------------------------------------- */

START_TEST(test_gzip_plain)
{
    char vp[256], ap[256], mv[256];
    vpath(vp, sizeof(vp));
    tl_playlist_path(ap, sizeof(ap), NAME, "audio");
    tl_playlist_path(mv, sizeof(mv), NAME, NULL);
    const char *paths[] = {mv, vp, ap};
    for (int i = 0; i < 3; i++) {
        tl_resp_t r;
        tl_m3u8_t m;
        /* the bytes as sent */
        fetch(NULL, paths[i], AE_RAW, "gzip", false, &r, NULL);
        char *plain = gz_playlist(&r, paths[i], &m);
        tl_note("A3: %s: %zu bytes gzip for %zu", paths[i], r.len,
                strlen(plain));
        ck_assert(i == 0 ? m.multivariant : m.nsegs > 0);
        free(plain);
        tl_m3u8_free(&m);
        tl_resp_free(&r);

        /* libcurl's own decoding */
        fetch(NULL, paths[i], AE_DECODE, NULL, false, &r, NULL);
        assert_gzip(&r, paths[i]);
        char err[256];
        ck_assert_msg(tl_m3u8_parse((const char *)r.body, r.len, &m, err,
                                    sizeof(err)) == 0,
                      "%s decoded by libcurl: %s", paths[i], err);
        tl_m3u8_free(&m);
        tl_resp_free(&r);

        /* no Accept-Encoding: identity, still Vary */
        fetch(NULL, paths[i], AE_NONE, NULL, false, &r, NULL);
        assert_identity(&r, paths[i]);
        assert_vary(&r, paths[i]);
        ck_assert(memcmp(r.body, "#EXTM3U", 7) == 0);
        tl_resp_free(&r);
    }

    /* Accept-Encoding variants on the media playlist */
    struct {
        const char *ae;
        bool gzip;
    } cases[] = {
        {"gzip;q=0", false},
        {"identity", false},
        {"*;q=0", false},
        {"deflate, br", false},
        {"gzip;q=0, *", false},
        {"x-gzip", true},
        {"*", true},
        {"deflate, gzip;q=0.5", true},
        {"br, GZIP;q=0.1", true},
        {"gzip;q=nonsense", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tl_resp_t r;
        fetch(NULL, vp, AE_RAW, cases[i].ae, false, &r, NULL);
        char what[300];
        snprintf(what, sizeof(what), "%s with Accept-Encoding: %s", vp,
                 cases[i].ae);
        if (cases[i].gzip) {
            tl_m3u8_t m;
            free(gz_playlist(&r, what, &m));
            tl_m3u8_free(&m);
        } else {
            assert_identity(&r, what);
            assert_vary(&r, what);
        }
        tl_resp_free(&r);
    }
}
END_TEST

/* The multivariant playlist does not change with every part: its gzip
 * decompresses to the identity body, and HEAD sends GET's headers. */
START_TEST(test_gzip_same_body_and_head)
{
    char mv[256];
    tl_playlist_path(mv, sizeof(mv), NAME, NULL);
    bool same = false;
    for (int round = 0; round < 5 && !same; round++) {
        tl_resp_t gz, id, head;
        tl_m3u8_t m;
        fetch(NULL, mv, AE_RAW, "gzip", false, &gz, NULL);
        fetch(NULL, mv, AE_NONE, NULL, false, &id, NULL);
        fetch(NULL, mv, AE_RAW, "gzip", true, &head, NULL);
        char *plain = gz_playlist(&gz, mv, &m);
        assert_identity(&id, mv);
        same = strlen(plain) == id.len && memcmp(plain, id.body, id.len) == 0;
        /* HEAD: the same headers, no body */
        assert_gzip(&head, "HEAD multivariant");
        char l1[32] = "", l2[32] = "";
        tl_header(&gz, "Content-Length", l1, sizeof(l1));
        tl_header(&head, "Content-Length", l2, sizeof(l2));
        ck_assert_msg(head.len == 0, "HEAD sent %zu body bytes", head.len);
        if (same)
            ck_assert_msg(strcmp(l1, l2) == 0, "HEAD Content-Length %s, GET %s",
                          l2, l1);
        free(plain);
        tl_m3u8_free(&m);
        tl_resp_free(&gz);
        tl_resp_free(&id);
        tl_resp_free(&head);
    }
    ck_assert_msg(same, "A3: decompressed multivariant never equalled the "
                        "identity body");

    /* HEAD of a media playlist: the gzip headers too */
    char vp[256];
    vpath(vp, sizeof(vp));
    tl_resp_t head;
    fetch(NULL, vp, AE_RAW, "gzip", true, &head, NULL);
    assert_gzip(&head, "HEAD media playlist");
    ck_assert(head.len == 0);
    tl_resp_free(&head);
    fetch(NULL, vp, AE_NONE, NULL, true, &head, NULL);
    assert_identity(&head, "HEAD media playlist, identity");
    assert_vary(&head, "HEAD media playlist, identity");
    tl_resp_free(&head);
}
END_TEST

/* A copy of the playlist text without its EXT-X-RENDITION-REPORT lines. */
static char *without_reports(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    ck_assert(out);
    size_t o = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (strncmp(p, "#EXT-X-RENDITION-REPORT:", 24) != 0) {
            memcpy(out + o, p, ll);
            o += ll;
        }
        p += ll;
    }
    out[o] = '\0';
    return out;
}

/* Sends the same held request twice at once, with and without gzip, and
 * compares: the decompressed gzip answer equals the identity answer, but
 * for the rendition report (see below). extra is appended to the query
 * after the directives. Returns true if they were equal byte for byte. */
static bool held_pair(const char *extra, bool want_skip)
{
    char vp[256], q[512];
    vpath(vp, sizeof(vp));
    long long msn;
    int part;
    two_ahead(vp, &msn, &part);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d%s", vp, msn, part,
             extra);
    req_t rq[2];
    tl_resp_t r[2];
    req_open(&rq[0], NULL, q, AE_RAW, "gzip", false);
    req_open(&rq[1], NULL, q, AE_NONE, NULL, false);
    fetch_together(rq, 2, r);
    tl_m3u8_t m;
    char *plain = gz_playlist(&r[0], q, &m);
    assert_identity(&r[1], q);
    assert_vary(&r[1], q);
    ck_assert_msg(tl_m3u8_part(&m, msn, part) || tl_m3u8_part(&m, msn + 1, 0),
                  "%s: blocking answer lacks the part", q);
    if (want_skip)
        ck_assert_msg(m.skipped >= 0, "%s: not a delta update", q);
    else
        ck_assert_msg(m.skipped < 0, "%s: a delta update", q);
    bool same =
        strlen(plain) == r[1].len && memcmp(plain, r[1].body, r[1].len) == 0;
    /* A publication of the other rendition between the two lookups
     * changes the rendition report only: that is a new rendering, not a
     * gzip fault. Anything else must be equal. */
    char *a = without_reports(plain);
    char *b = without_reports((const char *)r[1].body);
    bool nearly = strcmp(a, b) == 0;
    if (!nearly)
        printf("---- %s, gzip decompressed:\n%s\n---- identity:\n%s\n", q,
               plain, (const char *)r[1].body);
    ck_assert_msg(nearly,
                  "A3: %s: gzip answer differs from the identity "
                  "one beyond the rendition report",
                  q);
    tl_note("A3: %s held %.0f ms: gzip %zu bytes for %zu, %s the identity "
            "answer",
            q, r[0].ttfb_s * 1e3, r[0].len, strlen(plain),
            same ? "equal to" : "(but for the rendition report) equal to");
    free(a);
    free(b);
    free(plain);
    tl_m3u8_free(&m);
    tl_resp_free(&r[0]);
    tl_resp_free(&r[1]);
    return same;
}

/* Fetches path with gzip then without, back to back, until the two are
 * one rendering (the playlist changes every part, 334 ms; two requests a
 * few ms apart nearly always see the same one). Returns true if the
 * decompressed gzip answer equalled the identity answer byte for byte. */
static bool same_back_to_back(const char *path, int tries)
{
    for (int i = 0; i < tries; i++) {
        tl_resp_t gz, id;
        tl_m3u8_t m;
        fetch(NULL, path, AE_RAW, "gzip", false, &gz, NULL);
        fetch(NULL, path, AE_NONE, NULL, false, &id, NULL);
        char *plain = gz_playlist(&gz, path, &m);
        assert_identity(&id, path);
        assert_vary(&id, path);
        bool same =
            strlen(plain) == id.len && memcmp(plain, id.body, id.len) == 0;
        free(plain);
        tl_m3u8_free(&m);
        tl_resp_free(&gz);
        tl_resp_free(&id);
        if (same) {
            tl_note("A3: %s: gzip decompresses to the identity body (try "
                    "%d)",
                    path, i + 1);
            return true;
        }
    }
    return false;
}

START_TEST(test_gzip_blocking)
{
    /* held requests, released together */
    int same = 0;
    for (int round = 0; round < 3; round++)
        same += held_pair("", false);
    tl_note("A3: %d of 3 held pairs byte for byte equal", same);

    /* answered at once: directives naming the present (H4) */
    char vp[256], q[400];
    vpath(vp, sizeof(vp));
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port(), vp, &m, NULL);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld", vp,
             (long long)tl_m3u8_last_msn(&m));
    tl_m3u8_free(&m);
    ck_assert_msg(same_back_to_back(q, 10),
                  "A3: %s: gzip never decompressed to the identity body", q);
    ck_assert_msg(same_back_to_back(vp, 10),
                  "A3: %s: gzip never decompressed to the identity body", vp);
}
END_TEST

START_TEST(test_gzip_delta)
{
    /* plain delta reload */
    char vp[256], q[300];
    vpath(vp, sizeof(vp));
    snprintf(q, sizeof(q), "%s?_HLS_skip=YES", vp);
    tl_resp_t r;
    tl_m3u8_t m;
    fetch(NULL, q, AE_RAW, "gzip", false, &r, NULL);
    free(gz_playlist(&r, q, &m));
    ck_assert_msg(m.skipped >= 0, "%s: not a delta update", q);
    tl_m3u8_free(&m);
    tl_resp_free(&r);
    fetch(NULL, q, AE_NONE, NULL, false, &r, NULL);
    assert_identity(&r, q);
    assert_vary(&r, q);
    tl_resp_free(&r);

    ck_assert_msg(same_back_to_back(q, 10),
                  "A3: %s: gzip never decompressed to the identity body", q);

    /* blocking delta reload, held pairs */
    int same = 0;
    for (int round = 0; round < 3; round++)
        same += held_pair("&_HLS_skip=YES", true);
    tl_note("A3: %d of 3 held delta pairs byte for byte equal", same);
}
END_TEST

/* ---- media is never compressed --------------------------------------------
 */

static void media_identity(const char *path, const char *what)
{
    tl_resp_t gz, id;
    fetch(NULL, path, AE_RAW, "gzip, deflate, br, *", false, &gz, NULL);
    fetch(NULL, path, AE_NONE, NULL, false, &id, NULL);
    char why[400];
    snprintf(why, sizeof(why), "%s %s", what, path);
    assert_identity(&gz, why);
    assert_identity(&id, why);
    char boxes[128];
    ck_assert_msg(tl_box_list(gz.body, gz.len, boxes, sizeof(boxes)) > 0,
                  "%s: not ISOBMFF", why);
    ck_assert_msg(gz.len == id.len && memcmp(gz.body, id.body, id.len) == 0,
                  "%s: bytes differ with Accept-Encoding", why);
    tl_note("%s: %zu bytes (%s), no Content-Encoding", why, gz.len, boxes);
    tl_resp_free(&gz);
    tl_resp_free(&id);
}

START_TEST(test_media_not_compressed)
{
    char vp[256], p[512];
    vpath(vp, sizeof(vp));
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port(), vp, &m, NULL);
    ck_assert(tl_resolve(vp, m.map_uri, p, sizeof(p)) == 0);
    media_identity(p, "init");
    ck_assert(m.nsegs > 0);
    ck_assert(tl_resolve(vp, m.segs[m.nsegs - 1].uri, p, sizeof(p)) == 0);
    media_identity(p, "segment");
    const tl_part_t *lp = tl_m3u8_last_part(&m);
    ck_assert(lp);
    ck_assert(tl_resolve(vp, lp->uri, p, sizeof(p)) == 0);
    media_identity(p, "part");

    /* the hinted part, held until it exists */
    ck_assert(m.npreload == 1);
    ck_assert(tl_resolve(vp, m.preload_uri, p, sizeof(p)) == 0);
    tl_resp_t r;
    fetch(NULL, p, AE_RAW, "gzip", false, &r, NULL);
    if (r.status == 404) {
        tl_note("hinted part %s was never published (404)", p);
    } else {
        assert_identity(&r, "hinted part");
        ck_assert(r.len > 0);
    }
    tl_resp_free(&r);
    tl_m3u8_free(&m);
}
END_TEST

/* ---- keep-alive ------------------------------------------------------------
 */

static void assert_kept(const tl_resp_t *r, long conns, bool first,
                        const char *what)
{
    char v[64] = "";
    ck_assert_msg(r->status == 200, "%s -> %ld", what, r->status);
    ck_assert_msg(!header_lists(r, "Connection", "close"),
                  "%s: Connection: %s (keep-alive matters to CDN edges)", what,
                  tl_header(r, "Connection", v, sizeof(v)));
    ck_assert_msg(conns == (first ? 1 : 0),
                  "%s: %ld new connections (want %d: the connection should "
                  "be reused)",
                  what, conns, first ? 1 : 0);
}

START_TEST(test_keep_alive)
{
    char vp[256], mv[256], p[512], q[512];
    vpath(vp, sizeof(vp));
    tl_playlist_path(mv, sizeof(mv), NAME, NULL);
    CURL *e = curl_easy_init();
    ck_assert(e);
    tl_resp_t r;
    long conns;

    fetch(e, vp, AE_DECODE, NULL, false, &r, &conns);
    assert_kept(&r, conns, true, "first playlist");
    tl_m3u8_t m;
    char err[256];
    ck_assert(
        tl_m3u8_parse((const char *)r.body, r.len, &m, err, sizeof(err)) == 0);
    tl_resp_free(&r);

    fetch(e, vp, AE_NONE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "second playlist (identity)");
    tl_resp_free(&r);

    fetch(e, vp, AE_DECODE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "third playlist (gzip)");
    tl_resp_free(&r);

    const tl_part_t *lp = tl_m3u8_last_part(&m);
    ck_assert(lp);
    ck_assert(tl_resolve(vp, lp->uri, p, sizeof(p)) == 0);
    fetch(e, p, AE_NONE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "part");
    tl_resp_free(&r);

    ck_assert(tl_resolve(vp, m.map_uri, p, sizeof(p)) == 0);
    fetch(e, p, AE_NONE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "init");
    tl_resp_free(&r);

    /* a blocking reload for the next part, held then answered */
    long long msn;
    int part;
    two_ahead(vp, &msn, &part);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d", vp, msn, part);
    fetch(e, q, AE_DECODE, NULL, false, &r, &conns);
    tl_note("keep-alive: blocking reload held %.0f ms on the reused "
            "connection",
            r.ttfb_s * 1e3);
    assert_kept(&r, conns, false, "blocking playlist");
    tl_resp_free(&r);

    /* the hinted part (blocking too) */
    tl_m3u8_t m2;
    tl_fetch_m3u8_ok(port(), vp, &m2, NULL);
    ck_assert(tl_resolve(vp, m2.preload_uri, p, sizeof(p)) == 0);
    fetch(e, p, AE_NONE, NULL, false, &r, &conns);
    if (r.status != 404)
        assert_kept(&r, conns, false, "hinted part");
    tl_resp_free(&r);

    fetch(e, mv, AE_DECODE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "multivariant");
    tl_resp_free(&r);

    /* HEAD keeps the connection too */
    fetch(e, vp, AE_DECODE, NULL, true, &r, &conns);
    assert_kept(&r, conns, false, "HEAD playlist");
    tl_resp_free(&r);
    fetch(e, vp, AE_NONE, NULL, false, &r, &conns);
    assert_kept(&r, conns, false, "playlist after HEAD");
    tl_resp_free(&r);

    tl_m3u8_free(&m);
    tl_m3u8_free(&m2);
    curl_easy_cleanup(e);
}
END_TEST

START_TEST(test_zz_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("shared");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gzip_plain);
    tcase_add_test(tc, test_gzip_same_body_and_head);
    tcase_add_test(tc, test_gzip_blocking);
    tcase_add_test(tc, test_gzip_delta);
    tcase_add_test(tc, test_media_not_compressed);
    tcase_add_test(tc, test_keep_alive);
    tcase_add_test(tc, test_zz_clean_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(http_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_http: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
