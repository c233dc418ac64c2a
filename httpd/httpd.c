/*
 * httpd/httpd.c - the HTTP origin on libmicrohttpd: daemon, routing,
 * blocking requests, responses.
 *
 * libmicrohttpd runs its own epoll thread pool (cfg->http_threads). Every
 * request is answered from memory: playlists and media are pd_buf_t
 * references handed over to a free-callback response (no copy of media
 * bytes per request), the player page is static, hls.min.js is read once
 * at start.
 *
 * Blocking requests (a blocking playlist reload, the hinted part, a
 * playlist before the first segment) are suspended connections. The
 * per-request state (httpd_req_t, in *req_cls) carries the deadline, the
 * same for every lookup of that request: now + pkg_hold_limit_us() at the
 * first call. The race between the packager's wake (any packager thread,
 * any time after pkg_lookup registered the waiter) and the handler's
 * MHD_suspend_connection() is settled by an atomic state, so that
 * MHD_resume_connection() is only ever called on a connection that has
 * already been suspended (resuming a connection that is not suspended is
 * undefined in libmicrohttpd):
 *
 *   IDLE      the handler owns the request (before/after a lookup)
 *   SUSPENDED the handler suspended the connection; the wake resumes it
 *   WOKEN     the wake fired; `why` says why. If it fired before the
 *             handler suspended, the handler sees WOKEN and goes on
 *             without suspending (or resumes itself, if it suspended in
 *             between).
 *
 * A suspended connection neither times out nor notices that its client
 * went away: such a waiter lingers until the packager wakes it, at the
 * latest at its deadline (3 target durations), then answers into a closed
 * socket and is freed. That bounds the cost of abandoned waits.
 *
 * Invariants: a request with a registered waiter is never freed before
 * its wake ran (it is suspended or its handler is running); wake_cb
 * touches the request only up to its atomic exchange, except to read what
 * it read before; h->suspended counts connections suspended whose resume
 * was not yet requested, so httpd_stop() can check that none is left
 * before MHD_stop_daemon() (which aborts on a suspended connection).
 *
 * Requests are answered once complete (the second handler call): a
 * response queued at the first call makes libmicrohttpd close the
 * connection, and CDN edges and players want keep-alive.
 *
 * Cache-Control (HLS2 App. B.1; the checklist's section 2): init, parts
 * and segments "public, max-age=<cache_media_s>, immutable"; a blocking
 * playlist answer 6*TD (its URL names the state it describes); a plain
 * playlist reload, the multivariant and an ended playlist TD/2 rounded
 * down, at least 1 s (DESIGN's "about one part" would be 0 s at the
 * defaults; TD/2 is MediaPackage's and B.1's figure); errors (400, 404,
 * 405, 503) <cache_error_s>; /streams.json and the page no-cache;
 * hls.min.js one hour. Every answer carries Access-Control-Allow-Origin:
 * * and Access-Control-Expose-Headers: Age, and never an Age header.
 *
 * gzip (checklist A3): a 200 playlist answer (multivariant or media,
 * plain, blocking or delta) goes out gzip-compressed when the request's
 * Accept-Encoding allows gzip (gzip.c parses it), and every 200 playlist
 * answer carries Vary: Accept-Encoding, compressed or not, so caches keep
 * the two apart. The gzip of a rendered playlist buffer is made once and
 * shared through a bounded cache keyed by the buffer (gzip.c); a body that
 * gzip does not shrink, or a failed compression, goes out as it is. HEAD
 * gets the same headers as GET. Media, init segments, the page, hls.js
 * and /streams.json are never compressed.
 *
 * Stopping: after pkg_shutdown() every held request is resumed and
 * answers 503 on its daemon thread. h->resumed counts requests from their
 * (first) resume until libmicrohttpd's completion notice, which comes
 * after the response was handed to the socket (or the connection died),
 * so httpd_stop() waits (bounded) for it to reach 0 before
 * MHD_stop_daemon() closes every connection: held clients get their 503,
 * not an empty reply.
 *
 * The admin API (/api/, api.c) is routed before everything else, at the
 * first call of a request: its state (an httpd_req_t with `api` set) goes
 * through every call of the request (headers, body chunks, the answer)
 * and is freed by on_completed() like any other. /api/ answers carry no
 * Access-Control-Allow-Origin (and OPTIONS there is a 405).
 *
 * Signed playback (signed.c, storage's st_playback_check): a request for
 * an object of a protected stream (its live routes, and its recordings'
 * /vod/ routes) is answered only when the query parameter
 * cfg->playback_token_param holds a token valid for the request's path;
 * otherwise 403 with "private, no-store" (a CDN that keeps tokens out of
 * its cache key must not hand one viewer's refusal to another). The
 * check is made once, at the first call (a held request is not checked
 * again when it wakes). The playlists such a request gets list every URI
 * with its token (copies cached per playlist and token), gzip as usual.
 * Protected streams and their recordings are left out of /streams.json
 * and /recordings.json.
 *
 * Recordings (VOD) are public like the live routes (CORS) unless their
 * stream is protected, served from storage: /vod/<id>/index.m3u8 (multivariant),
 * /vod/<id>/<rendition>/index.m3u8 (media playlist) and
 * /vod/<id>/<rendition>/<file>, whose on-disk path only st_vod_file()
 * gives (an indexed init-<n>.mp4 or <msn>.m4s of that recording; the URL
 * is never joined into a path here), sent with MHD's fd response (no copy
 * in memory). Ids are canonical positive decimals and names follow the
 * live rules; anything else is 404, as is everything without a catalogue
 * (st NULL). A recording's playlists get max-age HTTPD_VOD_PLAYLIST_S
 * while it is being recorded (an EVENT playlist grows) and cache_media_s
 * once it ended (a media playlist has EXT-X-ENDLIST; for the
 * multivariant the catalogue says so); files cache_media_s, immutable.
 * An ended recording's playlists are rendered once and then served from
 * a bounded cache (vodcache.c) checked against storage's recording
 * generation, so repeated requests for a long recording cost no
 * database work.
 * /recordings.json (no-cache) lists the ended recordings for the page.
 *
 * Logging: nothing per request at info level; refused or odd requests at
 * debug level only, with the path (sanitised) and never the query string,
 * which may carry tokens.
 */
#include "httpd.h"

#include "httpd_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"
#include "../storage/storage.h"

#include <microhttpd.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD "http"

/* Idle keep-alive connections are closed after this long (seconds).
 * Suspended (blocking) connections are not subject to it. */
#define HTTPD_IDLE_TIMEOUT_S 30
/* Largest hls.min.js we load (bytes). */
#define HTTPD_HLSJS_MAX (16u << 20)
/* How often one request may find its wake already fired and look up
 * again without suspending, before giving up (503): a guard against a
 * packager that keeps answering WAIT with an immediate READY. */
#define HTTPD_MAX_RELOOKUPS 64
/* How long httpd_stop() waits for suspended requests to be resumed. */
#define HTTPD_STOP_WAIT_US (5 * 1000000)
/* How long it then lets resumed requests send their 503 (and transfers
 * in progress finish) before the daemon closes every connection. */
#define HTTPD_DRAIN_WAIT_US (2 * 1000000)
/* Compressed playlists kept: entries, and bytes of sources plus gzips
 * kept alive (a live playlist is a few kB; a long DVR window some
 * hundred). */
#define HTTPD_GZ_CACHE_ENTRIES 256
#define HTTPD_GZ_CACHE_BYTES (32u << 20)
/* Playlists with a playback token kept (one per source playlist and
 * token; a live stream's few playlists times the tokens in use). */
#define HTTPD_TOK_CACHE_ENTRIES 256
#define HTTPD_TOK_CACHE_BYTES (32u << 20)
/* Ended recordings' playlists kept (a 24-hour recording's media playlist
 * is ~8 MB). */
#define HTTPD_VOD_CACHE_ENTRIES 64
#define HTTPD_VOD_CACHE_BYTES (64u << 20)
/* max-age (s) of the playlists of a recording still being written. */
#define HTTPD_VOD_PLAYLIST_S 60

struct httpd_s {
    const pd_config_t *cfg; /* borrowed */
    pkg_t *pkg;             /* borrowed */
    struct st_s *st;        /* borrowed, may be NULL: /api/ is 404 */
    struct MHD_Daemon *daemon;
    int port;             /* bound port */
    pd_buf_t *hlsjs;      /* hls.min.js, NULL if missing */
    atomic_int suspended; /* suspended, resume not yet requested */
    atomic_int inflight;  /* httpd_req_t allocated, not yet completed */
    atomic_int resumed;   /* requests resumed at least once, not yet
                             completed (their answer is not sent yet) */
    httpd_gzcache_t *gz;  /* gzip of playlist buffers */
    httpd_tokcache_t *tok; /* playlists with a playback token added */
    httpd_vodcache_t *vod; /* ended recordings' rendered playlists */
    atomic_bool running;  /* daemon started: MHD's logs go to debug */
};

enum { REQ_IDLE = 0, REQ_SUSPENDED = 1, REQ_WOKEN = 2 };

/* One blocking-capable request (media routes) or one /api/ request
 * (api set), in *req_cls; freed by on_completed(). Other requests are
 * answered at once and keep no state (*req_cls is then &headers_seen). */
typedef struct httpd_req_s {
    httpd_t *h;
    bool is_api;          /* an /api/ request: only `api` is used */
    httpd_api_req_t *api; /* its state (api.c), NULL before the first call */
    struct MHD_Connection *conn;
    httpd_route_t route; /* owns the strings q points to */
    pkg_query_t q;
    int64_t deadline_us; /* monotonic; for every lookup of this request */
    atomic_int state;    /* REQ_* */
    atomic_int why;      /* pkg_wake_t, valid when state is WOKEN */
    atomic_bool resumed; /* counted in h->resumed (until on_completed) */
    char token[PD_TOKEN_MAX + 1]; /* the valid playback token of a
                                     protected stream's request, else "" */
    int64_t token_exp;            /* its expiry (unix s), 0 without */
} httpd_req_t;

/* ---- small helpers --------------------------------------------------- */

/* Copies at most 96 printable bytes of untrusted s into out for logs. */
static const char *sanitize(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size && n < 96; s++)
        out[n++] = (*s > 0x20 && *s < 0x7f) ? *s : '?';
    out[n] = '\0';
    return out;
}

static void free_buf_cb(void *cls)
{
    pd_buf_t *b = cls;
    pd_buf_unref(&b);
}

static void add_common_headers(struct MHD_Response *r, const char *cache)
{
    /* Never an Age header: HLS2 App. C reads a missing Age as "fresh
     * from the origin". Expose Age for what CDNs add (hls.js reads it). */
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "Age");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (cache)
        MHD_add_response_header(r, "Cache-Control", cache);
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *r)
{
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r); /* the queued response holds its own ref */
    return ret;
}

/* Answers with body b (consumed: the response's free callback unrefs).
 * encoding (may be NULL) is the Content-Encoding of b; vary adds
 * Vary: Accept-Encoding. */
static enum MHD_Result reply_buf_enc(struct MHD_Connection *c, unsigned status,
                                     pd_buf_t *b, const char *ctype,
                                     const char *cache, const char *encoding,
                                     bool vary)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(b->len, b->data,
                                                               free_buf_cb, b);
    if (!r) {
        pd_buf_unref(&b);
        return MHD_NO; /* out of memory: drop the connection */
    }
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (encoding)
        MHD_add_response_header(r, "Content-Encoding", encoding);
    if (vary)
        MHD_add_response_header(r, "Vary", "Accept-Encoding");
    add_common_headers(r, cache);
    return queue(c, status, r);
}

static enum MHD_Result reply_buf(struct MHD_Connection *c, unsigned status,
                                 pd_buf_t *b, const char *ctype,
                                 const char *cache)
{
    return reply_buf_enc(c, status, b, ctype, cache, NULL, false);
}

static enum MHD_Result ae_it(void *cls, enum MHD_ValueKind kind,
                             const char *key, size_t key_size,
                             const char *value, size_t value_size)
{
    (void)kind;
    static const char name[] = "Accept-Encoding";
    if (key && key_size == sizeof(name) - 1 &&
        strncasecmp(key, name, sizeof(name) - 1) == 0)
        httpd_ae_add(cls, value, value ? value_size : 0);
    return MHD_YES;
}

/* True if every Accept-Encoding header of the request, taken as one
 * list, allows gzip. */
static bool wants_gzip(struct MHD_Connection *c)
{
    httpd_ae_t ae;
    httpd_ae_init(&ae);
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, ae_it, &ae);
    return httpd_ae_gzip_ok(&ae);
}

/* A 200 playlist answer: b (consumed) or its gzip, with Vary either way. */
static enum MHD_Result reply_playlist(httpd_t *h, struct MHD_Connection *c,
                                      pd_buf_t *b, const char *ctype,
                                      const char *cache)
{
    if (wants_gzip(c)) {
        pd_buf_t *z = NULL;
        int rc = httpd_gzcache_get(h->gz, b, &z);
        if (rc)
            PD_LOGD(MOD, "gzip of a %zu-byte playlist failed (%s): identity",
                    b->len, pd_strerror(rc));
        if (z) {
            pd_buf_unref(&b);
            return reply_buf_enc(c, MHD_HTTP_OK, z, ctype, cache, "gzip", true);
        }
    }
    return reply_buf_enc(c, MHD_HTTP_OK, b, ctype, cache, NULL, true);
}

static void error_cache(const httpd_t *h, char *buf, size_t size)
{
    if (h->cfg->cache_error_s > 0)
        snprintf(buf, size, "max-age=%d", h->cfg->cache_error_s);
    else
        snprintf(buf, size, "no-cache");
}

/* Short text answers for errors and the like. */
static enum MHD_Result reply_text(httpd_t *h, struct MHD_Connection *c,
                                  unsigned status, const char *text,
                                  bool retry_after)
{
    char cache[48];
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    error_cache(h, cache, sizeof(cache));
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    add_common_headers(r, cache);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", "1");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD, OPTIONS");
    return queue(c, status, r);
}

static enum MHD_Result reply_404(httpd_t *h, struct MHD_Connection *c)
{
    return reply_text(h, c, MHD_HTTP_NOT_FOUND, "not found\n", false);
}

static enum MHD_Result reply_503(httpd_t *h, struct MHD_Connection *c,
                                 bool retry_after)
{
    return reply_text(h, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "not available in time, try again\n", retry_after);
}

/* CORS preflight. The requested headers are echoed only when they are a
 * plain list of header names. */
static enum MHD_Result reply_options(struct MHD_Connection *c)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    add_common_headers(r, "max-age=86400");
    MHD_add_response_header(r, "Access-Control-Allow-Methods",
                            "GET, HEAD, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    MHD_add_response_header(r, "Allow", "GET, HEAD, OPTIONS");
    const char *want = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    bool ok = want && *want && strlen(want) <= 256;
    for (const char *p = want; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             (*p >= '0' && *p <= '9') || *p == '-' || *p == ',' || *p == ' ';
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            ok ? want : "Range, Accept, Content-Type");
    return queue(c, MHD_HTTP_NO_CONTENT, r);
}

/* 403 for a protected object without a valid token. Never cached by
 * anyone (a CDN that leaves the token out of its cache key must not
 * serve one viewer's refusal to another). */
static enum MHD_Result reply_403(struct MHD_Connection *c)
{
    static const char text[] = "a valid signed URL is required\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof(text) - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    add_common_headers(r, "private, no-store");
    return queue(c, MHD_HTTP_FORBIDDEN, r);
}

/* The playback decision for a request of url belonging to stream (NULL:
 * unknown, checked as protected). Returns true if it may go on, with
 * token (size PD_TOKEN_MAX + 1) holding the valid token of a protected
 * stream ("" otherwise) and *exp its expiry (unix s; 0 without a token).
 * Without a catalogue only signed_playback = 0 lets anything through.
 * The token is never logged. */
static bool playback_ok(httpd_t *h, struct MHD_Connection *c,
                        const char *stream, const char *url, char *token,
                        int64_t *exp)
{
    token[0] = '\0';
    *exp = 0;
    if (!h->st)
        return !h->cfg->signed_playback; /* fail closed */
    if (stream && !st_playback_signed(h->st, stream))
        return true;
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                h->cfg->playback_token_param);
    pd_token_why_t why = PD_TOKEN_OK;
    char path[128];
    if (st_playback_check(h->st, stream, url, t, &why)) {
        PD_LOGD(MOD, "403 playback token %s: %s", pd_token_why_name(why),
                sanitize(url, path, sizeof(path)));
        return false;
    }
    if (t && why == PD_TOKEN_OK && (!stream || st_playback_signed(h->st,
                                                                  stream))) {
        snprintf(token, PD_TOKEN_MAX + 1, "%s", t); /* checked: <= MAX */
        if (pd_token_expiry(token, strlen(token), exp))
            *exp = 0;
    }
    return true;
}

/* Cache-Control of a 200: "public, max-age=<max_age>[, immutable]", the
 * age capped at the token's remaining life (exp, unix s; 0: no token) so
 * no cache keeps serving a URL past its token's expiry; "private,
 * no-store" once that is under a second. */
static void cache_control(char *buf, size_t size, int max_age, bool immutable,
                          int64_t exp)
{
    if (exp > 0) {
        int64_t left = exp - (int64_t)time(NULL);
        if (left < 1) {
            snprintf(buf, size, "private, no-store");
            return;
        }
        if (left < max_age)
            max_age = (int)left;
    }
    snprintf(buf, size, "public, max-age=%d%s", max_age,
             immutable ? ", immutable" : "");
}

/* b (consumed) with the request's token in its URIs, if it has one. NULL
 * on failure (logged). cached: b is a playlist buffer other requests get
 * too (live playlists, ended recordings' from vodcache.c); a playlist
 * rendered for this request alone (a recording in progress) is copied
 * uncached, as its copies could never be hit. */
static pd_buf_t *with_token(httpd_t *h, pd_buf_t *b, const char *token,
                            bool cached)
{
    if (!token[0] || !b)
        return b;
    pd_buf_t *t = NULL;
    int rc = cached ? httpd_tokcache_get(h->tok, b,
                                         h->cfg->playback_token_param, token,
                                         &t)
                    : httpd_playlist_add_token(b->data, b->len,
                                               h->cfg->playback_token_param,
                                               token, &t);
    pd_buf_unref(&b);
    if (rc)
        PD_LOGW(MOD, "cannot add the playback token to a playlist: %s",
                pd_strerror(rc));
    return t;
}

/* ---- recordings (VOD) --------------------------------------------------- */

/* A name as in the live routes: 1..HTTPD_NAME_MAX of [A-Za-z0-9_.-], not
 * "." or "..". */
static bool vod_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > HTTPD_NAME_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* Splits path (after "/vod/") into id, rendition ("" for the
 * multivariant) and file ("index.m3u8" or a media file name). Returns 0
 * or PD_ENOENT. */
static int vod_parse(const char *p, int64_t *id, char *rend, size_t rend_size,
                     char *file, size_t file_size)
{
    const char *seg[3];
    size_t len[3];
    int n = 0;
    while (n < 3) {
        const char *slash = strchr(p, '/');
        seg[n] = p;
        len[n] = slash ? (size_t)(slash - p) : strlen(p);
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if ((n == 3 && strchr(seg[2], '/')) || n < 2)
        return PD_ENOENT;
    if (httpd_parse_dec(seg[0], len[0], INT64_MAX, id) || *id <= 0)
        return PD_ENOENT;
    const char *f = seg[n - 1];
    size_t flen = len[n - 1];
    if (!vod_name_ok(f, flen) || flen >= file_size)
        return PD_ENOENT;
    memcpy(file, f, flen);
    file[flen] = '\0';
    rend[0] = '\0';
    if (n == 2)
        return strcmp(file, "index.m3u8") == 0 ? 0 : PD_ENOENT;
    if (!vod_name_ok(seg[1], len[1]) || len[1] >= rend_size)
        return PD_ENOENT;
    memcpy(rend, seg[1], len[1]);
    rend[len[1]] = '\0';
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static enum MHD_Result reply_vod(httpd_t *h, struct MHD_Connection *c,
                                 const char *url)
{
    char path[128], rend[HTTPD_NAME_MAX + 1], file[HTTPD_NAME_MAX + 1];
    char cache[64];
    char token[PD_TOKEN_MAX + 1] = "";
    int64_t id = 0, exp = 0;
    if (!h->st ||
        vod_parse(url + 5, &id, rend, sizeof(rend), file, sizeof(file))) {
        PD_LOGD(MOD, "404 no recording route: %s",
                sanitize(url, path, sizeof(path)));
        return reply_404(h, c);
    }
    /* the generation before anything is read from the catalogue: a
     * playlist rendered after a deletion began is never cached under a
     * generation that outlives it */
    uint64_t gen = st_rec_generation(h->st);
    /* A recording is protected when its stream is (now). */
    char stream[256];
    int64_t ended_us = 0;
    int src = st_rec_stream(h->st, id, stream, sizeof(stream), &ended_us);
    if (src == PD_ENOENT) {
        /* with protection in use, an unknown id answers like a protected
         * one to a request without a valid token: ids of protected
         * recordings cannot be enumerated by 403 versus 404 */
        if (st_playback_any(h->st) &&
            !playback_ok(h, c, NULL, url, token, &exp))
            return reply_403(c);
        PD_LOGD(MOD, "404 recording %lld", (long long)id);
        return reply_404(h, c);
    }
    if (src) {
        PD_LOGW(MOD, "recording %lld: %s", (long long)id, pd_strerror(src));
        return reply_503(h, c, true);
    }
    if (!playback_ok(h, c, stream, url, token, &exp))
        return reply_403(c);
    if (strcmp(file, "index.m3u8") == 0) {
        /* an ended recording's playlists never change: rendered once */
        pd_buf_t *b = ended_us > 0 ? httpd_vodcache_get(h->vod, id, rend, gen)
                                   : NULL;
        int rc = 0;
        if (!b) {
            rc = st_vod_playlist(h->st, id, rend[0] ? rend : NULL, &b);
            if (rc == 0 && b && ended_us > 0 &&
                st_rec_generation(h->st) == gen)
                httpd_vodcache_put(h->vod, id, rend, gen, b);
        }
        if (rc == PD_ENOENT || (rc == 0 && !b)) {
            PD_LOGD(MOD, "404 recording %lld %s", (long long)id,
                    rend[0] ? rend : "-");
            return reply_404(h, c);
        }
        if (rc) {
            PD_LOGW(MOD, "recording %lld playlist: %s", (long long)id,
                    pd_strerror(rc));
            return reply_503(h, c, true);
        }
        /* ended (the catalogue says; its media playlists then hold
         * ENDLIST): cached long, and the same buffer for every request, so
         * token-carrying copies are cached too */
        bool ended = ended_us > 0;
        cache_control(cache, sizeof(cache),
                      ended ? h->cfg->cache_media_s : HTTPD_VOD_PLAYLIST_S,
                      false, exp);
        b = with_token(h, b, token, ended);
        if (!b)
            return reply_503(h, c, true);
        return reply_playlist(h, c, b, "application/vnd.apple.mpegurl", cache);
    }
    if (!has_suffix(file, ".m4s") &&
        !(strncmp(file, "init-", 5) == 0 && has_suffix(file, ".mp4"))) {
        PD_LOGD(MOD, "404 not a recording file: %s",
                sanitize(url, path, sizeof(path)));
        return reply_404(h, c);
    }
    char fpath[1024];
    int rc = st_vod_file(h->st, id, rend, file, fpath, sizeof(fpath));
    if (rc) {
        PD_LOGD(MOD, "404 recording %lld %s/%s: %s", (long long)id, rend, file,
                pd_strerror(rc));
        return reply_404(h, c);
    }
    int fd = open(fpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        /* indexed but gone: deleted (or retention) meanwhile */
        PD_LOGD(MOD, "404 recording %lld %s/%s: cannot open", (long long)id,
                rend, file);
        if (fd >= 0)
            close(fd);
        return reply_404(h, c);
    }
    struct MHD_Response *r =
        MHD_create_response_from_fd((uint64_t)sb.st_size, fd); /* owns fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    cache_control(cache, sizeof(cache), h->cfg->cache_media_s, true, exp);
    MHD_add_response_header(r, "Content-Type", "video/mp4");
    add_common_headers(r, cache);
    return queue(c, MHD_HTTP_OK, r);
}

static enum MHD_Result reply_recordings(httpd_t *h, struct MHD_Connection *c)
{
    if (!h->st)
        return reply_404(h, c);
    pd_buf_t *b = NULL;
    int rc = httpd_recordings_json(h->st, &b);
    if (rc) {
        PD_LOGW(MOD, "cannot list recordings: %s", pd_strerror(rc));
        return reply_503(h, c, true);
    }
    return reply_buf(c, MHD_HTTP_OK, b, "application/json", "no-cache");
}

/* ---- answers from the packager --------------------------------------- */

static enum MHD_Result reply_answer(httpd_t *h, httpd_req_t *req,
                                    pkg_answer_t *ans)
{
    struct MHD_Connection *c = req->conn;
    char cache[96];
    char path[128];

    switch (ans->status) {
    case PKG_ANS_OK:
        break;
    case PKG_ANS_NOT_FOUND:
        pd_buf_unref(&ans->body);
        PD_LOGD(MOD, "404 %s %s", req->route.stream,
                req->route.rendition[0] ? req->route.rendition : "-");
        return reply_404(h, c);
    case PKG_ANS_BAD_REQUEST:
        pd_buf_unref(&ans->body);
        PD_LOGD(MOD, "400 (directive out of range) %s %s", req->route.stream,
                req->route.rendition);
        return reply_text(h, c, MHD_HTTP_BAD_REQUEST,
                          "delivery directive out of range\n", false);
    default: /* UNAVAILABLE; WAIT is handled by the caller */
        pd_buf_unref(&ans->body);
        PD_LOGD(MOD, "503 %s %s", req->route.stream,
                req->route.rendition[0] ? req->route.rendition : "-");
        return reply_503(h, c, false);
    }
    if (!ans->body) {
        PD_LOGW(MOD, "packager answered OK without a body for %s",
                sanitize(req->route.stream, path, sizeof(path)));
        return reply_503(h, c, false);
    }

    switch (req->q.obj) {
    case PKG_OBJ_INIT:
    case PKG_OBJ_SEGMENT:
    case PKG_OBJ_PART:
        cache_control(cache, sizeof(cache), h->cfg->cache_media_s, true,
                      req->token_exp);
        break;
    case PKG_OBJ_MULTIVARIANT:
        cache_control(
            cache, sizeof(cache),
            httpd_playlist_max_age(ans->target_duration_s, false, ans->ended),
            false, req->token_exp);
        break;
    default:
        cache_control(cache, sizeof(cache),
                      httpd_playlist_max_age(ans->target_duration_s,
                                             ans->blocked, ans->ended),
                      false, req->token_exp);
        break;
    }
    pd_buf_t *b = ans->body;
    ans->body = NULL;
    const char *ctype =
        ans->content_type ? ans->content_type : "application/octet-stream";
    if (req->q.obj == PKG_OBJ_MULTIVARIANT || req->q.obj == PKG_OBJ_PLAYLIST) {
        b = with_token(h, b, req->token, true);
        if (!b)
            return reply_503(h, c, false);
        return reply_playlist(h, c, b, ctype, cache);
    }
    return reply_buf(c, MHD_HTTP_OK, b, ctype, cache);
}

/* Counts req in h->resumed once, however often it is resumed; on_completed
 * uncounts it. Called by whoever resumes req, before the resume. */
static void count_resume(httpd_t *h, httpd_req_t *req)
{
    if (!atomic_exchange(&req->resumed, true))
        atomic_fetch_add(&h->resumed, 1);
}

/* Runs on a packager thread, exactly once per registered waiter, with no
 * packager lock held. Must not touch req after the exchange unless it
 * found the connection suspended (then nothing but us can resume it, so
 * req lives until the resume is processed by the daemon's thread). */
static void wake_cb(void *opaque, pkg_wake_t why)
{
    httpd_req_t *req = opaque;
    httpd_t *h = req->h;
    struct MHD_Connection *c = req->conn;
    atomic_store_explicit(&req->why, (int)why, memory_order_relaxed);
    int prev = atomic_exchange(&req->state, REQ_WOKEN);
    if (prev == REQ_SUSPENDED) {
        count_resume(h, req);     /* before the resume: req is ours till then */
        MHD_resume_connection(c); /* thread-safe with MHD_USE_ITC */
        atomic_fetch_sub(&h->suspended, 1);
    }
}

/* Looks q up and answers, or suspends the connection until the wake. */
static enum MHD_Result lookup(httpd_t *h, httpd_req_t *req)
{
    for (int round = 0; round < HTTPD_MAX_RELOOKUPS; round++) {
        pkg_answer_t ans;
        memset(&ans, 0, sizeof(ans));
        atomic_store(&req->state, REQ_IDLE);
        int rc =
            pkg_lookup(h->pkg, &req->q, req->deadline_us, wake_cb, req, &ans);
        if (rc == PD_ELIMIT) {
            PD_LOGD(MOD, "503 too many waiters: %s", req->route.stream);
            return reply_503(h, req->conn, true);
        }
        if (rc) {
            PD_LOGD(MOD, "503 lookup failed (%s): %s", pd_strerror(rc),
                    req->route.stream);
            return reply_503(h, req->conn, false);
        }
        if (ans.status != PKG_ANS_WAIT)
            return reply_answer(h, req, &ans);

        /* A waiter is registered; its wake may already have run. */
        pd_buf_unref(&ans.body); /* none expected with WAIT */
        if (atomic_load(&req->state) == REQ_IDLE) {
            atomic_fetch_add(&h->suspended, 1);
            MHD_suspend_connection(req->conn);
            int expected = REQ_IDLE;
            if (atomic_compare_exchange_strong(&req->state, &expected,
                                               REQ_SUSPENDED))
                return MHD_YES; /* wake_cb resumes us */
            /* Woken between the check and the exchange: nobody else
             * will resume a connection we suspended, so do it now; the
             * next call of the handler finds the state WOKEN. */
            count_resume(h, req);
            MHD_resume_connection(req->conn);
            atomic_fetch_sub(&h->suspended, 1);
            return MHD_YES;
        }
        /* Woken already, before we suspended. */
        if (atomic_load_explicit(&req->why, memory_order_relaxed) !=
            PKG_WAKE_READY) {
            PD_LOGD(MOD, "503 wait ended: %s", req->route.stream);
            return reply_503(h, req->conn, false);
        }
    }
    PD_LOGD(MOD, "503 wait kept waking: %s", req->route.stream);
    return reply_503(h, req->conn, false);
}

/* ---- the handler ------------------------------------------------------ */

struct args_ctx {
    httpd_directives_t d;
};

static enum MHD_Result arg_it(void *cls, enum MHD_ValueKind kind,
                              const char *key, size_t key_size,
                              const char *value, size_t value_size)
{
    (void)kind;
    struct args_ctx *a = cls;
    /* Values were decoded by httpd_unescape(): no embedded NULs. */
    httpd_directives_add(&a->d, key, key_size, value, value ? value_size : 0);
    return MHD_YES;
}

static bool has_body(struct MHD_Connection *c)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    return te || (cl && strcmp(cl, "0") != 0);
}

/* The request is complete: route it and answer, or start a lookup. */
static enum MHD_Result first_call(httpd_t *h, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  void **req_cls)
{
    char path[128], what[32];
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return reply_options(c);
    if (!get && !head) {
        PD_LOGD(MOD, "405 %s %s", sanitize(method, what, sizeof(what)),
                sanitize(url, path, sizeof(path)));
        return reply_text(h, c, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed\n", false);
    }
    if (has_body(c)) {
        PD_LOGD(MOD, "400 body on a %s", method);
        return reply_text(h, c, MHD_HTTP_BAD_REQUEST,
                          "no request body expected\n", false);
    }

    if (strncmp(url, "/vod/", 5) == 0)
        return reply_vod(h, c, url);
    if (strcmp(url, "/recordings.json") == 0)
        return reply_recordings(h, c);

    httpd_route_t route;
    if (httpd_route_parse(url, strlen(url), &route)) {
        PD_LOGD(MOD, "404 no route: %s", sanitize(url, path, sizeof(path)));
        return reply_404(h, c);
    }
    switch (route.kind) {
    case HTTPD_ROUTE_PLAYER: {
        size_t len;
        const char *page = httpd_player_page(&len);
        struct MHD_Response *r = MHD_create_response_from_buffer(
            len, (void *)page, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
        add_common_headers(r, "no-cache");
        return queue(c, MHD_HTTP_OK, r);
    }
    case HTTPD_ROUTE_HLSJS:
        if (!h->hlsjs) {
            PD_LOGD(MOD, "404 hls.min.js is missing");
            return reply_404(h, c);
        }
        return reply_buf(c, MHD_HTTP_OK, pd_buf_ref(h->hlsjs),
                         "text/javascript; charset=utf-8",
                         "public, max-age=3600");
    case HTTPD_ROUTE_STREAMS: {
        pd_buf_t *b = pkg_streams_json(h->pkg);
        if (!b)
            return reply_503(h, c, true);
        if (h->st && st_playback_any(h->st)) {
            pd_buf_t *pub = NULL;
            int rc = httpd_streams_json_public(h->st, b, &pub);
            pd_buf_unref(&b);
            if (rc)
                return reply_503(h, c, true);
            b = pub;
        }
        return reply_buf(c, MHD_HTTP_OK, b, "application/json", "no-cache");
    }
    case HTTPD_ROUTE_MEDIA:
        break;
    default:
        return reply_404(h, c);
    }

    httpd_req_t *req = calloc(1, sizeof(*req));
    if (!req)
        return reply_503(h, c, true);
    atomic_fetch_add(&h->inflight, 1);
    req->h = h;
    req->conn = c;
    req->route = route;
    httpd_route_to_query(&req->route, &req->q);
    atomic_init(&req->state, REQ_IDLE);
    atomic_init(&req->why, PKG_WAKE_READY);
    atomic_init(&req->resumed, false);
    *req_cls = req; /* freed by on_completed() whatever happens next */
    if (!playback_ok(h, c, req->route.stream, url, req->token,
                     &req->token_exp))
        return reply_403(c);

    if (req->q.obj == PKG_OBJ_PLAYLIST) {
        /* Directives matter on media playlists only; elsewhere the query
         * carries nothing of ours (tokens later) and is ignored. */
        struct args_ctx a;
        httpd_directives_init(&a.d);
        MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, arg_it, &a);
        if (httpd_directives_finish(&a.d, &req->q)) {
            PD_LOGD(MOD, "400 bad delivery directives: %s %s",
                    req->route.stream, req->route.rendition);
            return reply_text(h, c, MHD_HTTP_BAD_REQUEST,
                              "bad delivery directives\n", false);
        }
    }
    req->deadline_us =
        pd_mono_us() + pkg_hold_limit_us(h->pkg, req->route.stream);
    return lookup(h, req);
}

/* *req_cls of a request whose headers arrived but which is not complete
 * yet (its body, if any, is still coming). */
static char headers_seen;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    httpd_t *h = cls;

    if (*req_cls == NULL && httpd_api_path(url)) {
        httpd_req_t *req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        atomic_fetch_add(&h->inflight, 1);
        req->h = h;
        req->conn = c;
        req->is_api = true;
        atomic_init(&req->state, REQ_IDLE);
        atomic_init(&req->why, PKG_WAKE_READY);
        atomic_init(&req->resumed, false);
        *req_cls = req; /* freed by on_completed() */
    }
    if (*req_cls != NULL && *req_cls != &headers_seen &&
        ((httpd_req_t *)*req_cls)->is_api) {
        httpd_req_t *req = *req_cls;
        return (enum MHD_Result)httpd_api_call(h->cfg, h->pkg, h->st, c, url,
                                               method, upload_data,
                                               upload_data_size, &req->api);
    }

    /* Answer only once the whole request is in: a response queued
     * earlier makes libmicrohttpd close the connection after it, and
     * CDN edges and players want keep-alive. */
    if (*req_cls == NULL) {
        *req_cls = &headers_seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a body on GET: refused below; discard */
        return MHD_YES;
    }
    if (*req_cls == &headers_seen)
        return first_call(h, c, url, method, req_cls);

    /* Called again: after our resume (state WOKEN). */
    httpd_req_t *req = *req_cls;
    int st = atomic_load(&req->state);
    if (st != REQ_WOKEN) {
        PD_LOGW(MOD, "request called again without a wake (state %d)", st);
        return reply_503(h, c, false);
    }
    atomic_store(&req->state, REQ_IDLE);
    if (atomic_load_explicit(&req->why, memory_order_relaxed) !=
        PKG_WAKE_READY) {
        PD_LOGD(MOD, "503 wait ended: %s", req->route.stream);
        return reply_503(h, c, false);
    }
    return lookup(h, req);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    httpd_t *h = cls;
    (void)c;
    (void)toe;
    httpd_req_t *req = *req_cls;
    *req_cls = NULL;
    if (!req || req == (void *)&headers_seen)
        return;
    /* No waiter refers to req any more: it was either never registered,
     * or woken (the connection is resumed only by or after the wake). */
    if (atomic_load(&req->resumed))
        atomic_fetch_sub(&h->resumed, 1);
    httpd_api_req_free(&req->api);
    free(req);
    atomic_fetch_sub(&h->inflight, 1);
}

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return httpd_unescape(s);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    httpd_t *h = cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* At start MHD explains why it could not listen; later its messages
     * are about single clients. */
    if (atomic_load(&h->running))
        PD_LOGD(MOD, "libmicrohttpd: %s", line);
    else
        PD_LOGE(MOD, "libmicrohttpd: %s", line);
}

/* ---- start and stop --------------------------------------------------- */

static pd_buf_t *load_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    pd_buf_t *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > 0 && (unsigned long)size <= max &&
            fseek(f, 0, SEEK_SET) == 0) {
            b = pd_buf_new((size_t)size);
            if (b && fread(b->data, 1, (size_t)size, f) != (size_t)size)
                pd_buf_unref(&b);
        }
    }
    fclose(f);
    return b;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl))
            PD_LOGW(MOD, "cannot raise the open file limit: %s",
                    strerror(errno));
    }
}

int httpd_start(const pd_config_t *cfg, pkg_t *pkg, struct st_s *st,
                httpd_t **out)
{
    *out = NULL;
    raise_nofile();

    struct addrinfo hints, *ai = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", cfg->http_port);
    int gai = getaddrinfo(cfg->bind_addr, port, &hints, &ai);
    if (gai || !ai) {
        PD_LOGE(MOD, "bad bind address '%s': %s", cfg->bind_addr,
                gai_strerror(gai));
        return PD_EINVAL;
    }

    httpd_t *h = calloc(1, sizeof(*h));
    if (!h) {
        freeaddrinfo(ai);
        return PD_ENOMEM;
    }
    h->cfg = cfg;
    h->pkg = pkg;
    h->st = st;
    atomic_init(&h->suspended, 0);
    atomic_init(&h->inflight, 0);
    atomic_init(&h->resumed, 0);
    atomic_init(&h->running, false);
    if (httpd_gzcache_create(HTTPD_GZ_CACHE_ENTRIES, HTTPD_GZ_CACHE_BYTES,
                             &h->gz) ||
        httpd_tokcache_create(HTTPD_TOK_CACHE_ENTRIES, HTTPD_TOK_CACHE_BYTES,
                              &h->tok) ||
        httpd_vodcache_create(HTTPD_VOD_CACHE_ENTRIES, HTTPD_VOD_CACHE_BYTES,
                              &h->vod)) {
        httpd_gzcache_destroy(&h->gz);
        httpd_tokcache_destroy(&h->tok);
        httpd_vodcache_destroy(&h->vod);
        freeaddrinfo(ai);
        free(h);
        return PD_ENOMEM;
    }

    char path[600];
    snprintf(path, sizeof(path), "%s/hls.min.js", cfg->www_dir);
    h->hlsjs = load_file(path, HTTPD_HLSJS_MAX);
    if (!h->hlsjs)
        PD_LOGW(MOD,
                "%s is missing or unreadable: the player page will "
                "say so (tools/install-deps puts it there)",
                path);

    /* Limit connections below the descriptors we have. */
    unsigned limit =
        cfg->http_max_connections > 0 ? (unsigned)cfg->http_max_connections : 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)limit + 256) {
        unsigned fit = rl.rlim_cur > 512 ? (unsigned)rl.rlim_cur - 256 : 256;
        PD_LOGW(MOD,
                "open file limit %llu: serving at most %u connections "
                "instead of %u",
                (unsigned long long)rl.rlim_cur, fit, limit);
        limit = fit;
    }

    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                         MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = cfg->http_threads > 1 ? (unsigned)cfg->http_threads : 1;
    /* A pool of one is no pool (MHD warns about it): pass it only > 1. */
    struct MHD_OptionItem pool[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h, /* first, MHD says */
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_ARRAY, pool,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTPD_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, h,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        PD_LOGE(MOD, "cannot listen on %s:%d", cfg->bind_addr, cfg->http_port);
        pd_buf_unref(&h->hlsjs);
        httpd_gzcache_destroy(&h->gz);
        httpd_tokcache_destroy(&h->tok);
        httpd_vodcache_destroy(&h->vod);
        free(h);
        return PD_EIO;
    }
    atomic_store(&h->running, true);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : cfg->http_port;
    PD_LOGI(MOD, "listening on %s:%d (%u threads)", cfg->bind_addr, h->port,
            threads);
    *out = h;
    return PD_OK;
}

int httpd_port(const httpd_t *h)
{
    return h ? h->port : 0;
}

void httpd_stop(httpd_t **hp)
{
    if (!hp || !*hp)
        return;
    httpd_t *h = *hp;
    /* Stop accepting first; then every suspended request must have been
     * resumed (pkg_shutdown() wakes all waiters) before MHD_stop_daemon,
     * which aborts on a connection still suspended. A request that was
     * mid-lookup during pkg_shutdown() may still be in flight: give it a
     * moment. */
    MHD_socket lsock = MHD_quiesce_daemon(h->daemon);
    int64_t until = pd_mono_us() + HTTPD_STOP_WAIT_US;
    while (atomic_load(&h->suspended) > 0 && pd_mono_us() < until)
        usleep(10000);
    int left = atomic_load(&h->suspended);
    if (left > 0) {
        /* Stopping now would abort the process; leaking the daemon at
         * exit is the lesser harm. */
        PD_LOGE(MOD,
                "%d requests still suspended at stop: daemon left "
                "running",
                left);
        *hp = NULL;
        return;
    }
    /* Resumed waiters answer 503 on their daemon thread: wait until
     * every one was sent (on_completed), so clients see an answer rather
     * than an empty reply; let transfers in progress finish meanwhile. */
    until = pd_mono_us() + HTTPD_DRAIN_WAIT_US;
    while ((atomic_load(&h->resumed) > 0 || atomic_load(&h->inflight) > 0) &&
           pd_mono_us() < until)
        usleep(5000);
    int unsent = atomic_load(&h->resumed);
    int busy = atomic_load(&h->inflight);
    if (unsent > 0)
        PD_LOGW(MOD,
                "%d held requests had not sent their answer after %d ms: "
                "closing them",
                unsent, HTTPD_DRAIN_WAIT_US / 1000);
    else if (busy > 0)
        PD_LOGD(MOD, "%d transfers still running at stop: closing them", busy);
    MHD_stop_daemon(h->daemon);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock); /* quiesced: ours to close, after the stop */
    pd_buf_unref(&h->hlsjs);
    httpd_gzcache_destroy(&h->gz);
    httpd_tokcache_destroy(&h->tok);
    httpd_vodcache_destroy(&h->vod);
    free(h);
    *hp = NULL;
}
