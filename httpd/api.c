/*
 * httpd/api.c - the admin API under /api/: stream keys, API tokens,
 * webhooks and the streams/sessions overview, JSON in and out (jansson),
 * backed by storage/storage.h.
 *
 * Invariants:
 * - Without a catalogue (st NULL) every /api/ path answers 404.
 * - Every request needs "Authorization: Bearer <token>" with
 *   st_token_check() == 0; otherwise 401 {"error":"unauthorized"} with
 *   WWW-Authenticate: Bearer, and nothing else is done (the body is
 *   discarded unread, the path is not even routed).
 * - A request body is kept up to cfg->api_max_body bytes, in the
 *   request's state (one call of the access handler per chunk); beyond
 *   that it is discarded and the answer is 413. A body declared or sent
 *   beyond API_DISCARD_FACTOR times the limit closes the connection, so a
 *   client cannot keep a thread reading forever.
 * - Input is checked before any change: POST needs Content-Type
 *   application/json (415), a JSON object without unknown fields and
 *   with the right types (400); ids in paths are canonical positive
 *   decimal integers (400); unknown paths 404, wrong methods 405 with
 *   Allow. Every answer is a JSON object (204 has no body), with
 *   Cache-Control: no-store and never Access-Control-Allow-Origin.
 * - Recordings (GET /api/recordings, DELETE /api/recordings/<id>) list
 *   every recording, in progress too (newest first, at most
 *   API_RECORDINGS); a recording still being written cannot be deleted
 *   (409). httpd_recordings_json() builds the public /recordings.json
 *   (ended ones only, no sizes) for the player page.
 * - Secrets: a key's or token's secret appears in exactly one answer, the
 *   201 of its creation; lists never hold one; webhook secrets are never
 *   answered; error messages never quote the body. Nothing here logs a
 *   token, key or body. Refused requests are logged at debug level only.
 * Threads: any libmicrohttpd thread; all state is per request.
 */
#include "httpd_int.h"

#include "../core/err.h"
#include "../core/log.h"
#include "../storage/storage.h"

#include <jansson.h>
#include <microhttpd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MOD "api"
#define API_TOKEN_MAX 256     /* bytes of a bearer token we look at */
#define API_DISCARD_FACTOR 16 /* body bytes discarded before closing */
#define API_SESSIONS 100      /* sessions listed by GET /api/streams */
#define API_RECORDINGS 1000   /* recordings listed by GET /api/recordings */

struct httpd_api_req_s {
    bool authorized; /* decided at the first call */
    bool too_big;    /* the body went over the limit: 413 */
    char *body;      /* up to cfg->api_max_body bytes, NUL-terminated */
    size_t len;      /* bytes in body */
    size_t seen;     /* body bytes received in all */
};

/* ---- answers ------------------------------------------------------------ */

/* Answers with the JSON object o (consumed), or an empty body when o is
 * NULL (204). allow: the Allow header (405), or NULL. */
static int answer(struct MHD_Connection *c, unsigned status, json_t *o,
                  const char *allow)
{
    char *text = NULL;
    if (o) {
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
            return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        text ? strlen(text) : 0, text ? text : (void *)"",
        text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    if (text)
        MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    int ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int answer_error(struct MHD_Connection *c, unsigned status,
                        const char *msg, const char *allow)
{
    return answer(c, status, json_pack("{s:s}", "error", msg), allow);
}

/* "2024-05-01T12:00:00Z", or JSON null for 0. */
static json_t *iso_time(int64_t wall_us)
{
    if (wall_us <= 0)
        return json_null();
    time_t secs = (time_t)(wall_us / 1000000);
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&secs, &tm) ||
        !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
        return json_null();
    return json_string(buf);
}

/* ---- input --------------------------------------------------------------- */

/* Parses the body as a JSON object whose members are all in allowed
 * (NULL-terminated). Returns the object (new reference) or NULL with
 * msg (size msg_size) saying why. Never quotes the body. */
static json_t *body_object(const httpd_api_req_t *rq,
                           const char *const *allowed, char *msg,
                           size_t msg_size)
{
    json_error_t err;
    json_t *o = json_loadb(rq->body ? rq->body : "", rq->len,
                           JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        snprintf(msg, msg_size, "invalid JSON at line %d, column %d", err.line,
                 err.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        snprintf(msg, msg_size, "a JSON object is expected");
        json_decref(o);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            ok = ok || strcmp(k, allowed[i]) == 0;
        if (!ok) {
            /* the field name, printable ASCII only and short */
            char safe[33];
            size_t n = 0;
            for (const char *p = k; *p && n < sizeof(safe) - 1; p++)
                safe[n++] = (*p > 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
            safe[n] = 0;
            snprintf(msg, msg_size, "unknown field \"%s\"", safe);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Member name of o as a string: 1 present (*out set), 0 absent, -1 of
 * another type (msg set). */
static int get_str(json_t *o, const char *name, const char **out, char *msg,
                   size_t msg_size)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(msg, msg_size, "\"%s\" must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

static bool name_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
}

/* "x" or "live/x" -> "live/x" in out (x: a valid stream name). */
static bool stream_name(const char *s, char *out, size_t out_size)
{
    if (strncmp(s, "live/", 5) == 0)
        s += 5;
    size_t len = strlen(s);
    if (len < 1 || len > HTTPD_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(s[i]))
            return false;
    snprintf(out, out_size, "live/%s", s);
    return true;
}

static bool content_type_json(struct MHD_Connection *c)
{
    const char *ct =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    char next = ct[n];
    return next == 0 || next == ';' || next == ' ' || next == '\t';
}

/* Bearer token check: true if the request carries an active token. */
static bool authorized(struct MHD_Connection *c, struct st_s *st)
{
    const char *a =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    a += 7;
    while (*a == ' ')
        a++;
    size_t len = strnlen(a, API_TOKEN_MAX + 1);
    while (len && (a[len - 1] == ' ' || a[len - 1] == '\t'))
        len--;
    if (len == 0 || len > API_TOKEN_MAX)
        return false;
    char token[API_TOKEN_MAX + 1];
    memcpy(token, a, len);
    token[len] = 0;
    bool ok = st_token_check(st, token) == 0;
    explicit_bzero(token, sizeof(token));
    return ok;
}

/* ---- routes -------------------------------------------------------------- */

typedef enum {
    COLL_STREAMS,
    COLL_KEYS,
    COLL_TOKENS,
    COLL_HOOKS,
    COLL_RECS,
    COLL_PLAYBACK, /* GET: the settings; POST: protect or open a stream */
    COLL_SIGN,     /* POST: make a signed playback token */
    COLL_METRICS   /* GET: counters in Prometheus' text format */
} coll_t;

/* One recording as JSON (new reference); full adds what only the admin
 * API shows. */
static json_t *rec_json(const st_rec_t *r, bool full)
{
    char url[64];
    snprintf(url, sizeof(url), "/vod/%lld/index.m3u8", (long long)r->id);
    json_t *o =
        json_pack("{s:I,s:s,s:o,s:o,s:f,s:s}", "id", (json_int_t)r->id,
                  "stream", r->stream, "started", iso_time(r->started_us),
                  "ended", iso_time(r->ended_us), "duration_s",
                  (double)r->duration_us / 1e6, "url", url);
    if (!o || !full)
        return o;
    json_t *rends = json_array();
    const char *p = r->renditions;
    while (rends && *p) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(rends, json_stringn(p, n));
        p += n;
        if (*p == ',')
            p++;
    }
    json_object_set_new(o, "session", json_integer((json_int_t)r->session_id));
    json_object_set_new(o, "recording", json_boolean(r->ended_us == 0));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(o, "renditions", rends ? rends : json_array());
    return o;
}

static int list_recordings(struct MHD_Connection *c, struct st_s *st)
{
    st_rec_t *v = NULL;
    int n = 0;
    if (st_rec_list(st, API_RECORDINGS, &v, &n))
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list recordings", NULL);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, rec_json(&v[i], true));
    free(v);
    return answer(c, MHD_HTTP_OK, json_pack("{s:o}", "recordings", a), NULL);
}

static int dump_buf(json_t *a, pd_buf_t **out);

int httpd_recordings_json(struct st_s *st, pd_buf_t **out)
{
    *out = NULL;
    st_rec_t *v = NULL;
    int n = 0;
    /* in-progress ones are skipped: ask for some more than we list */
    int rc = st_rec_list(st, 2 * HTTPD_RECORDINGS_MAX, &v, &n);
    if (rc)
        return rc;
    json_t *a = json_array();
    for (int i = 0; a && i < n && json_array_size(a) < HTTPD_RECORDINGS_MAX;
         i++)
        /* ended, public, and with media (a recording stopped before
         * its first segment has nothing to play) */
        if (v[i].ended_us > 0 && v[i].duration_us > 0 &&
            !st_playback_signed(st, v[i].stream))
            json_array_append_new(a, rec_json(&v[i], false));
    free(v);
    return dump_buf(a, out);
}

int httpd_streams_json_public(struct st_s *st, pd_buf_t *in, pd_buf_t **out)
{
    *out = NULL;
    json_error_t e;
    json_t *a = json_loadb((const char *)in->data, in->len, 0, &e);
    if (!json_is_array(a)) {
        json_decref(a);
        return PD_EINVAL;
    }
    for (size_t i = json_array_size(a); i-- > 0;) {
        const char *name =
            json_string_value(json_object_get(json_array_get(a, i), "name"));
        if (!name || st_playback_signed(st, name))
            json_array_remove(a, i);
    }
    return dump_buf(a, out);
}

/* Serialises the JSON value a (consumed) into a new buffer. */
static int dump_buf(json_t *a, pd_buf_t **out)
{
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!text)
        return PD_ENOMEM;
    size_t len = strlen(text);
    pd_buf_t *b = pd_buf_new(len);
    if (b)
        memcpy(b->data, text, len);
    free(text);
    if (!b)
        return PD_ENOMEM;
    *out = b;
    return 0;
}

static int get_streams(struct MHD_Connection *c, pkg_t *pkg, struct st_s *st)
{
    json_t *streams = NULL;
    pd_buf_t *b = pkg ? pkg_streams_json(pkg) : NULL;
    if (b) {
        streams = json_loadb((const char *)b->data, b->len, 0, NULL);
        pd_buf_unref(&b);
    }
    if (!json_is_array(streams)) {
        json_decref(streams);
        streams = json_array();
    }
    for (size_t i = 0; i < json_array_size(streams); i++) {
        json_t *s = json_array_get(streams, i);
        const char *name = json_string_value(json_object_get(s, "name"));
        json_object_set_new(s, "signed_playback",
                            json_boolean(name && st_playback_signed(st, name)));
    }
    json_t *sess = json_array();
    st_session_t *v = NULL;
    int n = 0;
    st_rec_t *recs = NULL;
    int nrecs = 0;
    if (st_rec_list(st, API_RECORDINGS, &recs, &nrecs))
        nrecs = 0; /* sessions without their recordings' URLs */
    if (st_session_list(st, false, API_SESSIONS, &v, &n) == 0) {
        for (int i = 0; i < n; i++) {
            /* viewer-facing URL: the live playlist while live, then the
             * session's recording (VOD) if there is one */
            char url[300];
            json_t *rec = json_null();
            url[0] = '\0';
            if (!v[i].ended_us)
                snprintf(url, sizeof(url), "/%s/index.m3u8", v[i].stream);
            for (int k = 0; k < nrecs; k++)
                if (recs[k].session_id == v[i].id) {
                    json_decref(rec);
                    rec = json_integer((json_int_t)recs[k].id);
                    if (v[i].ended_us && recs[k].ended_us)
                        snprintf(url, sizeof(url), "/vod/%lld/index.m3u8",
                                 (long long)recs[k].id);
                }
            json_array_append_new(
                sess,
                json_pack("{s:I,s:s,s:s,s:o,s:o,s:s,s:s,s:s,s:o,s:o}", "id",
                          (json_int_t)v[i].id, "stream", v[i].stream, "peer",
                          v[i].peer, "started", iso_time(v[i].started_us),
                          "ended", iso_time(v[i].ended_us), "end_reason",
                          v[i].end_reason, "codecs", v[i].codecs, "renditions",
                          v[i].renditions, "recording", rec, "url",
                          url[0] ? json_string(url) : json_null()));
        }
        free(v);
        free(recs);
    } else {
        free(recs);
        json_decref(streams);
        json_decref(sess);
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list sessions", NULL);
    }
    return answer(c, MHD_HTTP_OK,
                  json_pack("{s:o,s:o}", "streams", streams, "sessions", sess),
                  NULL);
}

static int list_keys(struct MHD_Connection *c, struct st_s *st)
{
    st_key_t *v = NULL;
    int n = 0;
    if (st_key_list(st, &v, &n))
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list keys", NULL);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:I,s:s,s:s,s:o,s:o,s:o}", "id", (json_int_t)v[i].id,
                         "stream", v[i].stream, "label", v[i].label, "created",
                         iso_time(v[i].created_us), "revoked",
                         iso_time(v[i].revoked_us), "last_used",
                         iso_time(v[i].last_used_us)));
    free(v);
    return answer(c, MHD_HTTP_OK, json_pack("{s:o}", "keys", a), NULL);
}

static int list_tokens(struct MHD_Connection *c, struct st_s *st)
{
    st_token_t *v = NULL;
    int n = 0;
    if (st_token_list(st, &v, &n))
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list tokens", NULL);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            a,
            json_pack("{s:I,s:s,s:o,s:o,s:o}", "id", (json_int_t)v[i].id,
                      "label", v[i].label, "created", iso_time(v[i].created_us),
                      "revoked", iso_time(v[i].revoked_us), "last_used",
                      iso_time(v[i].last_used_us)));
    free(v);
    return answer(c, MHD_HTTP_OK, json_pack("{s:o}", "tokens", a), NULL);
}

static int list_hooks(struct MHD_Connection *c, struct st_s *st)
{
    st_hook_t *v = NULL;
    int n = 0;
    if (st_hook_list(st, &v, &n))
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list webhooks", NULL);
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *ev = json_array();
        const char *p = v[i].events;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len)
                json_array_append_new(ev, json_stringn(p, len));
            p += len + (comma ? 1 : 0);
        }
        json_array_append_new(a, json_pack("{s:I,s:s,s:o,s:o}", "id",
                                           (json_int_t)v[i].id, "url", v[i].url,
                                           "events", ev, "created",
                                           iso_time(v[i].created_us)));
    }
    free(v);
    return answer(c, MHD_HTTP_OK, json_pack("{s:o}", "webhooks", a), NULL);
}

static int create_key(struct MHD_Connection *c, struct st_s *st,
                      const httpd_api_req_t *rq)
{
    static const char *const allowed[] = {"stream", "label", NULL};
    char msg[128];
    json_t *o = body_object(rq, allowed, msg, sizeof(msg));
    if (!o)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    const char *stream = NULL, *label = "";
    int r1 = get_str(o, "stream", &stream, msg, sizeof(msg));
    int r2 = r1 < 0 ? 0 : get_str(o, "label", &label, msg, sizeof(msg));
    char name[5 + HTTPD_NAME_MAX + 1];
    int ret;
    if (r1 < 0 || r2 < 0) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    } else if (r1 == 0) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, "\"stream\" is required",
                           NULL);
    } else if (!stream_name(stream, name, sizeof(name))) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                           "\"stream\" must be 1-64 of [A-Za-z0-9_.-], "
                           "optionally after \"live/\"",
                           NULL);
    } else {
        char secret[ST_SECRET_MAX];
        int64_t id = 0;
        int rc = st_key_create(st, name, label, secret, sizeof(secret), &id);
        if (rc == PD_EINVAL)
            ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                               "\"label\" must be at most 127 bytes without "
                               "control characters",
                               NULL);
        else if (rc)
            ret = answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "cannot create the key", NULL);
        else
            ret =
                answer(c, MHD_HTTP_CREATED,
                       json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id,
                                 "stream", name, "label", label, "key", secret),
                       NULL);
        explicit_bzero(secret, sizeof(secret));
    }
    json_decref(o);
    return ret;
}

static int create_token(struct MHD_Connection *c, struct st_s *st,
                        const httpd_api_req_t *rq)
{
    static const char *const allowed[] = {"label", NULL};
    char msg[128];
    json_t *o = body_object(rq, allowed, msg, sizeof(msg));
    if (!o)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    const char *label = "";
    int ret;
    if (get_str(o, "label", &label, msg, sizeof(msg)) < 0) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    } else {
        char secret[ST_SECRET_MAX];
        int64_t id = 0;
        int rc = st_token_create(st, label, secret, sizeof(secret), &id);
        if (rc == PD_EINVAL)
            ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                               "\"label\" must be at most 127 bytes without "
                               "control characters",
                               NULL);
        else if (rc)
            ret = answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "cannot create the token", NULL);
        else
            ret = answer(c, MHD_HTTP_CREATED,
                         json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id,
                                   "label", label, "token", secret),
                         NULL);
        explicit_bzero(secret, sizeof(secret));
    }
    json_decref(o);
    return ret;
}

static const char *const hook_events[] = {"stream.started", "stream.ended",
                                          "recording.ready", NULL};

/* "events": "*" or a non-empty array of known event names -> "a,b" in
 * out. Returns false with msg set. */
static bool hook_events_text(json_t *ev, char *out, size_t out_size, char *msg,
                             size_t msg_size)
{
    if (!ev ||
        (json_is_string(ev) && strcmp(json_string_value(ev), "*") == 0)) {
        snprintf(out, out_size, "*");
        return true;
    }
    if (!json_is_array(ev) || json_array_size(ev) == 0) {
        snprintf(msg, msg_size,
                 "\"events\" must be \"*\" or a non-empty array of event "
                 "names");
        return false;
    }
    size_t used = 0;
    out[0] = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        const char *name = json_string_value(e);
        bool known = false;
        for (int k = 0; name && hook_events[k]; k++)
            known = known || strcmp(name, hook_events[k]) == 0;
        if (name && strcmp(name, "*") == 0 && json_array_size(ev) == 1)
            known = true;
        if (!known) {
            snprintf(msg, msg_size,
                     "unknown event (stream.started, stream.ended, "
                     "recording.ready or \"*\")");
            return false;
        }
        int n = snprintf(out + used, out_size - used, "%s%s", used ? "," : "",
                         name);
        if (n < 0 || (size_t)n >= out_size - used) {
            snprintf(msg, msg_size, "too many events");
            return false;
        }
        used += (size_t)n;
    }
    return true;
}

static int create_hook(struct MHD_Connection *c, struct st_s *st,
                       const httpd_api_req_t *rq)
{
    static const char *const allowed[] = {"url", "events", "secret", NULL};
    char msg[128];
    json_t *o = body_object(rq, allowed, msg, sizeof(msg));
    if (!o)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    const char *url = NULL, *secret = "";
    char events[128];
    int r1 = get_str(o, "url", &url, msg, sizeof(msg));
    int r2 = r1 < 0 ? 0 : get_str(o, "secret", &secret, msg, sizeof(msg));
    int ret;
    if (r1 < 0 || r2 < 0) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    } else if (r1 == 0) {
        ret =
            answer_error(c, MHD_HTTP_BAD_REQUEST, "\"url\" is required", NULL);
    } else if (strlen(url) >= sizeof(((st_hook_t *)0)->url) ||
               (strncmp(url, "http://", 7) != 0 &&
                strncmp(url, "https://", 8) != 0)) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                           "\"url\" must be an http:// or https:// URL "
                           "(at most 511 bytes)",
                           NULL);
    } else if (strlen(secret) > 255) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                           "\"secret\" must be at most 255 bytes", NULL);
    } else if (!hook_events_text(json_object_get(o, "events"), events,
                                 sizeof(events), msg, sizeof(msg))) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    } else {
        int64_t id = 0;
        int rc = st_hook_create(st, url, events, secret, &id);
        if (rc == PD_EINVAL)
            ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                               "webhook refused: check \"url\" and \"secret\"",
                               NULL);
        else if (rc)
            ret = answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "cannot create the webhook", NULL);
        else
            ret = answer(c, MHD_HTTP_CREATED,
                         json_pack("{s:I}", "id", (json_int_t)id), NULL);
    }
    json_decref(o);
    return ret;
}

/* ---- metrics -------------------------------------------------------------- */

/* GET /api/metrics: Prometheus text exposition format 0.0.4 (scrapers
 * send the API token as a bearer token). */
static int get_metrics(struct MHD_Connection *c, pkg_t *pkg, struct st_s *st)
{
    pkg_stats_t p;
    st_stats_t h;
    st_rec_stats_t r;
    pkg_get_stats(pkg, &p);
    st_get_stats(st, &h);
    st_rec_get_stats(st, &r);
    static const char fmt[] =
        "# HELP podium_streams Streams in the registry (live, in grace or "
        "lingering).\n# TYPE podium_streams gauge\npodium_streams %lld\n"
        "# HELP podium_waiters Blocking playlist/part requests held.\n"
        "# TYPE podium_waiters gauge\npodium_waiters %lld\n"
        "# HELP podium_parts_published_total Parts published, all "
        "renditions.\n# TYPE podium_parts_published_total counter\n"
        "podium_parts_published_total %lld\n"
        "# HELP podium_recorder_items_written_total Init and media segments "
        "written to disk.\n# TYPE podium_recorder_items_written_total "
        "counter\npodium_recorder_items_written_total %lld\n"
        "# HELP podium_recorder_bytes_written_total Bytes of recordings "
        "written.\n# TYPE podium_recorder_bytes_written_total counter\n"
        "podium_recorder_bytes_written_total %lld\n"
        "# HELP podium_recorder_items_dropped_total Items not recorded (queue "
        "full, or their recording had stopped).\n"
        "# TYPE podium_recorder_items_dropped_total counter\n"
        "podium_recorder_items_dropped_total %lld\n"
        "# HELP podium_recorder_write_errors_total Recordings stopped by a "
        "write error.\n# TYPE podium_recorder_write_errors_total counter\n"
        "podium_recorder_write_errors_total %lld\n"
        "# HELP podium_recorder_disk_full_total Recordings stopped because "
        "the disk (or quota) was full.\n"
        "# TYPE podium_recorder_disk_full_total counter\n"
        "podium_recorder_disk_full_total %lld\n"
        "# HELP podium_webhooks_sent_total Webhook deliveries answered 2xx."
        "\n# TYPE podium_webhooks_sent_total counter\n"
        "podium_webhooks_sent_total %lld\n"
        "# HELP podium_webhooks_failed_total Webhook deliveries given up "
        "after their retries.\n# TYPE podium_webhooks_failed_total counter\n"
        "podium_webhooks_failed_total %lld\n"
        "# HELP podium_webhooks_dropped_total Webhook deliveries dropped "
        "(queue full).\n# TYPE podium_webhooks_dropped_total counter\n"
        "podium_webhooks_dropped_total %lld\n"
        "# HELP podium_webhooks_queued Webhook deliveries waiting.\n"
        "# TYPE podium_webhooks_queued gauge\npodium_webhooks_queued %lld\n";
    char *text = NULL;
    int n = asprintf(&text, fmt, (long long)p.streams, (long long)p.waiters,
                     (long long)p.parts_published, (long long)r.written,
                     (long long)r.bytes, (long long)r.dropped,
                     (long long)r.errors, (long long)r.disk_full,
                     (long long)h.hooks_sent, (long long)h.hooks_failed,
                     (long long)h.hooks_dropped, (long long)h.hooks_queued);
    if (n < 0)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        (size_t)n, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type",
                            "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    int ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- playback protection ------------------------------------------------- */

static int get_playback(struct MHD_Connection *c, struct st_s *st)
{
    char(*v)[256] = NULL;
    int n = 0;
    if (st_playback_list(st, &v, &n))
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot list the settings", NULL);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    free(v);
    const pd_config_t *cfg = st_config(st);
    return answer(c, MHD_HTTP_OK,
                  json_pack("{s:b,s:s,s:o}", "signed_all",
                            cfg->signed_playback, "token_param",
                            cfg->playback_token_param, "signed_streams", a),
                  NULL);
}

/* {"stream": "<name>", "signed": true|false} */
static int set_playback(struct MHD_Connection *c, struct st_s *st,
                        const httpd_api_req_t *rq)
{
    static const char *const allowed[] = {"stream", "signed", NULL};
    char msg[128];
    json_t *o = body_object(rq, allowed, msg, sizeof(msg));
    if (!o)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    const char *stream = NULL;
    char name[5 + HTTPD_NAME_MAX + 1];
    json_t *on = json_object_get(o, "signed");
    int r1 = get_str(o, "stream", &stream, msg, sizeof(msg));
    int ret;
    if (r1 < 0) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    } else if (r1 == 0 || !stream_name(stream, name, sizeof(name))) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                           "\"stream\" must be 1-64 of [A-Za-z0-9_.-], "
                           "optionally after \"live/\"",
                           NULL);
    } else if (!json_is_boolean(on)) {
        ret = answer_error(c, MHD_HTTP_BAD_REQUEST,
                           "\"signed\" must be true or false", NULL);
    } else if (st_playback_set(st, name, json_is_true(on))) {
        ret = answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "cannot store the setting", NULL);
    } else {
        ret = answer(c, MHD_HTTP_OK,
                     json_pack("{s:s,s:b}", "stream", name, "signed",
                               json_is_true(on)),
                     NULL);
    }
    json_decref(o);
    return ret;
}

/* {"stream": "<name>" | "recording": <id> | "acl": "<patterns>",
 *  "ttl_s": <1..315360000, default 3600>} -> a token for the stream's
 * live objects ("/live/<name>/" + "*"), a recording's ("/vod/<id>/" +
 * "*"), or the patterns given. */
static int sign(struct MHD_Connection *c, struct st_s *st,
                const httpd_api_req_t *rq)
{
    static const char *const allowed[] = {"stream", "recording", "acl",
                                          "ttl_s", NULL};
    char msg[128];
    json_t *o = body_object(rq, allowed, msg, sizeof(msg));
    if (!o)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, msg, NULL);
    const char *stream = NULL, *aclin = NULL;
    int r1 = get_str(o, "stream", &stream, msg, sizeof(msg));
    int r2 = r1 < 0 ? 0 : get_str(o, "acl", &aclin, msg, sizeof(msg));
    json_t *rec = json_object_get(o, "recording");
    json_t *ttl = json_object_get(o, "ttl_s");
    char name[5 + HTTPD_NAME_MAX + 1];
    char acl[PD_TOKEN_MAX], url[PD_TOKEN_MAX];
    const char *bad = NULL;
    int given = (r1 > 0) + (r2 > 0) + (rec != NULL);
    json_int_t ttl_s = ttl ? (json_is_integer(ttl) ? json_integer_value(ttl)
                                                   : -1)
                           : 3600;
    if (r1 < 0 || r2 < 0)
        bad = msg;
    else if (given != 1)
        bad = "give exactly one of \"stream\", \"recording\", \"acl\"";
    else if (ttl_s < 1 || ttl_s > 315360000)
        bad = "\"ttl_s\" must be an integer from 1 to 315360000";
    else if (r1 > 0 && !stream_name(stream, name, sizeof(name)))
        bad = "\"stream\" must be 1-64 of [A-Za-z0-9_.-], optionally "
              "after \"live/\"";
    else if (rec && (!json_is_integer(rec) || json_integer_value(rec) <= 0))
        bad = "\"recording\" must be a positive integer";
    else if (r2 > 0 && (strlen(aclin) >= sizeof(acl) ||
                        !pd_token_chars_ok(aclin, strlen(aclin)) ||
                        aclin[0] != '/' || strchr(aclin, '~') ||
                        strchr(aclin, '=')))
        bad = "\"acl\" must be paths starting with '/', joined by '!', "
              "'*' as a wildcard";
    if (bad) {
        int ret = answer_error(c, MHD_HTTP_BAD_REQUEST, bad, NULL);
        json_decref(o);
        return ret;
    }
    if (r1 > 0) {
        snprintf(acl, sizeof(acl), "/%s/*", name);
        snprintf(url, sizeof(url), "/%s/index.m3u8", name);
    } else if (rec) {
        long long id = (long long)json_integer_value(rec);
        snprintf(acl, sizeof(acl), "/vod/%lld/*", id);
        snprintf(url, sizeof(url), "/vod/%lld/index.m3u8", id);
    } else {
        snprintf(acl, sizeof(acl), "%s", aclin);
        url[0] = '\0';
    }
    json_decref(o);
    char token[PD_TOKEN_MAX + 1];
    int rc = st_playback_sign(st, acl, (int64_t)ttl_s, token, sizeof(token));
    if (rc == PD_EINVAL || rc == PD_ELIMIT)
        return answer_error(c, MHD_HTTP_BAD_REQUEST, "cannot sign that acl",
                            NULL);
    if (rc)
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "no signing key", NULL);
    const pd_config_t *cfg = st_config(st);
    /* the token's own expiry (st_playback_sign writes no st field) */
    long long exp = 0;
    if (sscanf(token, "exp=%lld~", &exp) != 1)
        exp = (long long)time(NULL) + ttl_s;
    json_t *r = json_pack("{s:s,s:s,s:s,s:o}", "token", token, "param",
                          cfg->playback_token_param, "acl", acl, "expires",
                          iso_time((int64_t)exp * 1000000));
    if (r && url[0]) {
        char full[2 * PD_TOKEN_MAX + 64];
        snprintf(full, sizeof(full), "%s?%s=%s", url,
                 cfg->playback_token_param, token);
        json_object_set_new(r, "url", json_string(full));
    }
    explicit_bzero(token, sizeof(token));
    return answer(c, MHD_HTTP_OK, r, NULL);
}

/* True if the key/token id exists and is not revoked yet (a second
 * revoke is 404, not a silent success). */
static bool active_id(struct st_s *st, coll_t coll, int64_t id)
{
    bool found = false;
    int n = 0;
    if (coll == COLL_KEYS) {
        st_key_t *v = NULL;
        if (st_key_list(st, &v, &n) == 0)
            for (int i = 0; i < n; i++)
                found = found || (v[i].id == id && v[i].revoked_us == 0);
        free(v);
    } else {
        st_token_t *v = NULL;
        if (st_token_list(st, &v, &n) == 0)
            for (int i = 0; i < n; i++)
                found = found || (v[i].id == id && v[i].revoked_us == 0);
        free(v);
    }
    return found;
}

static int delete_item(struct MHD_Connection *c, struct st_s *st, coll_t coll,
                       int64_t id)
{
    int rc;
    if (coll == COLL_HOOKS)
        rc = st_hook_delete(st, id);
    else if (coll == COLL_RECS)
        rc = st_rec_delete(st, id);
    else if (!active_id(st, coll, id))
        rc = PD_ENOENT;
    else if (coll == COLL_KEYS)
        rc = st_key_revoke(st, id);
    else
        rc = st_token_revoke(st, id);
    if (rc == 0)
        return answer(c, MHD_HTTP_NO_CONTENT, NULL, NULL);
    if (rc == PD_ENOENT)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no such id", NULL);
    if (rc == PD_EAGAIN)
        return answer_error(c, MHD_HTTP_CONFLICT, "still recording", NULL);
    return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot delete",
                        NULL);
}

/* The complete request: route and answer. */
static int dispatch(struct MHD_Connection *c, pkg_t *pkg, struct st_s *st,
                    const char *url, const char *method,
                    const httpd_api_req_t *rq)
{
    static const struct {
        const char *name;
        coll_t coll;
    } colls[] = {{"streams", COLL_STREAMS},
                 {"keys", COLL_KEYS},
                 {"tokens", COLL_TOKENS},
                 {"webhooks", COLL_HOOKS},
                 {"recordings", COLL_RECS},
                 {"playback", COLL_PLAYBACK},
                 {"sign", COLL_SIGN},
                 {"metrics", COLL_METRICS}};
    const char *rest = url + 5; /* after "/api/" (httpd_api_path) */
    const char *slash = strchr(rest, '/');
    size_t clen = slash ? (size_t)(slash - rest) : strlen(rest);
    int ci = -1;
    for (int i = 0; i < (int)(sizeof(colls) / sizeof(colls[0])); i++)
        if (strlen(colls[i].name) == clen &&
            memcmp(rest, colls[i].name, clen) == 0)
            ci = i;
    bool item = slash != NULL;
    if (ci < 0 || (item && (colls[ci].coll == COLL_STREAMS ||
                            colls[ci].coll == COLL_PLAYBACK ||
                            colls[ci].coll == COLL_SIGN ||
                            colls[ci].coll == COLL_METRICS || !slash[1] ||
                            strchr(slash + 1, '/'))))
        return answer_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
    coll_t coll = colls[ci].coll;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;

    if (item) {
        if (!del)
            return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "method not allowed", "DELETE");
        int64_t id = 0;
        const char *s = slash + 1;
        if (httpd_parse_dec(s, strlen(s), INT64_MAX, &id) || id <= 0)
            return answer_error(c, MHD_HTTP_BAD_REQUEST,
                                "the id must be a positive integer", NULL);
        return delete_item(c, st, coll, id);
    }
    bool ro = coll == COLL_STREAMS || coll == COLL_RECS ||
              coll == COLL_METRICS; /* no POST */
    bool wo = coll == COLL_SIGN;                         /* no GET */
    const char *allow = ro ? "GET" : wo ? "POST" : "GET, POST";
    if (!(get && !wo) && !(post && !ro))
        return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method not allowed", allow);
    if (get) {
        switch (coll) {
        case COLL_STREAMS:
            return get_streams(c, pkg, st);
        case COLL_KEYS:
            return list_keys(c, st);
        case COLL_TOKENS:
            return list_tokens(c, st);
        case COLL_RECS:
            return list_recordings(c, st);
        case COLL_PLAYBACK:
            return get_playback(c, st);
        case COLL_METRICS:
            return get_metrics(c, pkg, st);
        default:
            return list_hooks(c, st);
        }
    }
    if (rq->too_big)
        return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                            "request body too large", NULL);
    if (!content_type_json(c))
        return answer_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                            "Content-Type must be application/json", NULL);
    switch (coll) {
    case COLL_KEYS:
        return create_key(c, st, rq);
    case COLL_TOKENS:
        return create_token(c, st, rq);
    case COLL_PLAYBACK:
        return set_playback(c, st, rq);
    case COLL_SIGN:
        return sign(c, st, rq);
    default:
        return create_hook(c, st, rq);
    }
}

/* ---- the handler --------------------------------------------------------- */

bool httpd_api_path(const char *url)
{
    return (strncmp(url, "/api", 4) == 0 && (url[4] == 0 || url[4] == '/')) ||
           strcmp(url, "/metrics") == 0;
}

int httpd_api_call(const pd_config_t *cfg, pkg_t *pkg, struct st_s *st,
                   struct MHD_Connection *c, const char *url,
                   const char *method, const char *upload_data,
                   size_t *upload_data_size, httpd_api_req_t **state)
{
    size_t max = cfg->api_max_body > 0 ? (size_t)cfg->api_max_body : 0;
    size_t hard = max * API_DISCARD_FACTOR + 4096;
    httpd_api_req_t *rq = *state;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        *state = rq;
        rq->authorized = st && authorized(c, st);
        /* nothing of an unauthorised request is read: answer at once
         * (MHD then closes the connection if a body was announced) */
        if (!st)
            return answer_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
        if (!rq->authorized)
            return answer_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                NULL);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        char *end = NULL;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && end != cl && n > hard) {
            /* we would not read that much anyway: answer now (MHD closes
             * the connection after it) */
            PD_LOGD(MOD, "413 declared body of %llu bytes", n);
            if (!st)
                return answer_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
            if (!rq->authorized)
                return answer_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                    NULL);
            return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                                "request body too large", NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        rq->seen += n;
        if (rq->seen > hard) {
            PD_LOGD(MOD, "closing: body over %zu bytes", hard);
            return MHD_NO; /* stop reading: close */
        }
        /* keep the body only when it can matter */
        if (!st || !rq->authorized || rq->too_big)
            return MHD_YES;
        if (rq->len + n > max) {
            rq->too_big = true;
            free(rq->body);
            rq->body = NULL;
            rq->len = 0;
            return MHD_YES;
        }
        if (!rq->body) {
            rq->body = malloc(max + 1);
            if (!rq->body)
                return MHD_NO;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    if (!st)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
    if (!rq->authorized) {
        PD_LOGD(MOD, "401 %s", method);
        return answer_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL);
    }
    if (strcmp(url, "/metrics") == 0) {
        /* DESIGN's /metrics: the same counters, the same bearer token */
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
            return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "method not allowed", "GET");
        return get_metrics(c, pkg, st);
    }
    if (strncmp(url, "/api/", 5) != 0)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
    return dispatch(c, pkg, st, url, method, rq);
}

void httpd_api_req_free(httpd_api_req_t **state)
{
    if (!state || !*state)
        return;
    if ((*state)->body) /* may hold a webhook secret */
        explicit_bzero((*state)->body, (*state)->len);
    free((*state)->body);
    free(*state);
    *state = NULL;
}
