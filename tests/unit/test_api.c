/*
 * tests/unit/test_api.c - the admin API (/api/) over real loopback HTTP:
 * httpd_start with a real catalogue (st_open on a temporary directory)
 * and a real packager, driven with libcurl. Authorisation (no, wrong,
 * revoked or malformed token: 401 and nothing changed), the key, token
 * and webhook life cycles (a secret appears once, in the 201), the
 * streams overview, and hostile input: bad JSON, non-objects, wrong
 * types, unknown fields, oversized bodies (413, also chunked), wrong
 * Content-Type (415), bad ids, SQL-looking strings, unknown paths and
 * methods. Signed playback: /api/playback (the marks) and /api/sign (a
 * token whose HMAC is checked here with the key read from
 * <data_dir>/playback.key), and "signed_playback" in /api/streams.
 * Every answer with a body must be a JSON object, carry
 * Cache-Control: no-store and no Access-Control-Allow-Origin.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "httpd/httpd.h"
#include "packager/packager.h"
#include "storage/storage.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- environment ------------------------------------------------------- */

static pd_config_t cfg;
static char dir[256];
static st_t *st;
static pkg_t *pkg;
static httpd_t *srv;
static char token[ST_SECRET_MAX];
static int64_t token_id;
/* set by a test before env_up(): cfg.signed_playback, and
 * cfg.playback_token_param when not empty */
static bool env_signed_all;
static char env_token_param[32];

static void rmtree(const char *d)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    int rc = system(cmd);
    (void)rc;
}

static void env_up_ex(bool with_st)
{
    pd_config_defaults(&cfg);
    pd_log_set_level(PD_LOG_ERROR);
    cfg.signed_playback = env_signed_all ? 1 : 0;
    if (env_token_param[0])
        snprintf(cfg.playback_token_param, sizeof(cfg.playback_token_param),
                 "%s", env_token_param);
    snprintf(cfg.bind_addr, sizeof(cfg.bind_addr), "127.0.0.1");
    cfg.http_port = 0;
    cfg.http_threads = 1;
    snprintf(dir, sizeof(dir), "/tmp/podium-test-api-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    snprintf(cfg.www_dir, sizeof(cfg.www_dir), "%s", dir);
    char path[400];
    snprintf(path, sizeof(path), "%s/podium.db", dir);
    ck_assert_int_eq(st_open(&cfg, path, &st), 0);
    ck_assert_int_eq(
        st_token_create(st, "test", token, sizeof(token), &token_id), 0);
    ck_assert_int_eq(pkg_create(&cfg, &pkg), 0);
    ck_assert_int_eq(httpd_start(&cfg, pkg, with_st ? st : NULL, &srv), 0);
    ck_assert_int_gt(httpd_port(srv), 0);
}

static void env_up(void)
{
    env_up_ex(true);
}

static void env_down(void)
{
    pkg_shutdown(pkg);
    httpd_stop(&srv);
    pkg_destroy(&pkg);
    st_close(&st);
    rmtree(dir);
    env_signed_all = false;
    env_token_param[0] = '\0';
}

/* ---- HTTP client ------------------------------------------------------- */

typedef struct resp_s {
    long status;
    char body[256 * 1024];
    size_t len;
    char hdrs[8192];
    size_t hlen;
} resp_t;

static resp_t R; /* the last answer */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = 0;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = size * n;
    size_t room = sizeof(r->hdrs) - 1 - r->hlen;
    size_t take = len < room ? len : room;
    memcpy(r->hdrs + r->hlen, p, take);
    r->hlen += take;
    r->hdrs[r->hlen] = 0;
    return len;
}

/* One request; tok NULL: no Authorization; auth_raw overrides the whole
 * header value when not NULL. ctype NULL: none. Returns the status. */
static long req_full(const char *method, const char *path, const char *tok,
                     const char *auth_raw, const char *ctype, const char *body,
                     size_t blen, bool chunked)
{
    memset(&R, 0, sizeof(R));
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", httpd_port(srv), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &R);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &R);
    struct curl_slist *h = NULL;
    char line[512];
    if (auth_raw) {
        snprintf(line, sizeof(line), "Authorization: %s", auth_raw);
        h = curl_slist_append(h, line);
    } else if (tok) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", tok);
        h = curl_slist_append(h, line);
    }
    if (ctype) {
        snprintf(line, sizeof(line), "Content-Type: %s", ctype);
        h = curl_slist_append(h, line);
    } else {
        h = curl_slist_append(h, "Content-Type:"); /* none at all */
    }
    h = curl_slist_append(h, "Expect:");
    if (chunked)
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        if (!chunked)
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    if (strcmp(method, "POST") != 0 || !body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path,
                  curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &R.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return R.status;
}

static long req(const char *method, const char *path, const char *body)
{
    return req_full(method, path, token, NULL, "application/json", body,
                    body ? strlen(body) : 0, false);
}

/* Header value of the last answer (case-insensitive name), or NULL. */
static const char *hdr(const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = R.hdrs; *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = len - (size_t)(v - p);
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return out;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    return NULL;
}

/* The last answer as a JSON object (new reference); checks the rules
 * every /api/ answer follows. */
static json_t *answer_json(void)
{
    char v[256];
    ck_assert_ptr_nonnull(hdr("Cache-Control", v, sizeof(v)));
    ck_assert_str_eq(v, "no-store");
    ck_assert_ptr_null(hdr("Access-Control-Allow-Origin", v, sizeof(v)));
    ck_assert_ptr_nonnull(hdr("Content-Type", v, sizeof(v)));
    ck_assert_str_eq(v, "application/json");
    json_error_t err;
    json_t *o = json_loadb(R.body, R.len, 0, &err);
    ck_assert_msg(o != NULL, "not JSON (%s): %s", err.text, R.body);
    ck_assert_msg(json_is_object(o), "not an object: %s", R.body);
    return o;
}

/* The last answer is {"error": ...} with status want. */
static void expect_error(long want)
{
    ck_assert_msg(R.status == want, "status %ld, want %ld: %s", R.status, want,
                  R.body);
    json_t *o = answer_json();
    ck_assert(json_is_string(json_object_get(o, "error")));
    json_decref(o);
}

static int nkeys(void)
{
    st_key_t *v = NULL;
    int n = -1;
    ck_assert_int_eq(st_key_list(st, &v, &n), 0);
    free(v);
    return n;
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(unauthorized_changes_nothing)
{
    env_up();
    char revoked[ST_SECRET_MAX];
    int64_t rid;
    ck_assert_int_eq(st_token_create(st, "old", revoked, sizeof(revoked), &rid),
                     0);
    ck_assert_int_eq(st_token_revoke(st, rid), 0);
    char wrong[ST_SECRET_MAX];
    snprintf(wrong, sizeof(wrong), "%s", token);
    wrong[strlen(wrong) - 1] ^= 1; /* one bit off */
    char longtok[2000];
    memset(longtok, 'a', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = 0;
    char basic[600];
    snprintf(basic, sizeof(basic), "Basic %s", token);
    char lower[600];
    snprintf(lower, sizeof(lower), "bearer%s", token); /* no space */
    const char *raws[] = {NULL, NULL, NULL, NULL, basic, lower, "Bearer "};
    const char *toks[] = {NULL, wrong, revoked, longtok, NULL, NULL, NULL};
    const char *body = "{\"stream\":\"x\",\"label\":\"l\"}";
    for (int i = 0; i < 7; i++) {
        struct {
            const char *m, *p, *b;
        } rq[] = {{"GET", "/api/keys", NULL},
                  {"POST", "/api/keys", body},
                  {"POST", "/api/tokens", "{\"label\":\"x\"}"},
                  {"DELETE", "/api/tokens/1", NULL},
                  {"GET", "/api/streams", NULL},
                  {"GET", "/api/nosuchpath", NULL},
                  {"PUT", "/api/keys", NULL}};
        for (int k = 0; k < 7; k++) {
            req_full(rq[k].m, rq[k].p, toks[i], raws[i], "application/json",
                     rq[k].b, rq[k].b ? strlen(rq[k].b) : 0, false);
            expect_error(401);
            json_t *o = answer_json();
            ck_assert_str_eq(json_string_value(json_object_get(o, "error")),
                             "unauthorized");
            json_decref(o);
            char v[64];
            ck_assert_ptr_nonnull(hdr("WWW-Authenticate", v, sizeof(v)));
            ck_assert_str_eq(v, "Bearer");
        }
    }
    ck_assert_int_eq(nkeys(), 0);
    st_token_t *tv = NULL;
    int tn = 0;
    ck_assert_int_eq(st_token_list(st, &tv, &tn), 0);
    ck_assert_int_eq(tn, 2); /* ours and the revoked one */
    for (int i = 0; i < tn; i++)
        if (tv[i].id == token_id)
            ck_assert_int_eq(tv[i].revoked_us, 0);
    free(tv);
    /* the good token works */
    ck_assert_int_eq(req("GET", "/api/keys", NULL), 200);
    env_down();
}
END_TEST

START_TEST(key_life_cycle)
{
    env_up();
    ck_assert_int_eq(
        req("POST", "/api/keys", "{\"stream\":\"x\",\"label\":\"camera 1\"}"),
        201);
    json_t *o = answer_json();
    json_int_t id = json_integer_value(json_object_get(o, "id"));
    ck_assert_int_gt(id, 0);
    ck_assert_str_eq(json_string_value(json_object_get(o, "stream")), "live/x");
    char secret[ST_SECRET_MAX];
    snprintf(secret, sizeof(secret), "%s",
             json_string_value(json_object_get(o, "key")));
    json_decref(o);
    ck_assert(strncmp(secret, "pk_", 3) == 0);
    /* the key works for its stream */
    char stream[256] = "live/x";
    ck_assert_int_eq(st_key_check(st, stream, sizeof(stream), secret), 0);

    /* "live/y" is accepted as is */
    ck_assert_int_eq(req("POST", "/api/keys", "{\"stream\":\"live/y\"}"), 201);
    o = answer_json();
    ck_assert_str_eq(json_string_value(json_object_get(o, "stream")), "live/y");
    json_decref(o);

    ck_assert_int_eq(req("GET", "/api/keys", NULL), 200);
    ck_assert_ptr_null(strstr(R.body, secret));
    ck_assert_ptr_null(strstr(R.body, "pk_"));
    o = answer_json();
    json_t *keys = json_object_get(o, "keys");
    ck_assert_int_eq(json_array_size(keys), 2);
    bool seen = false;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (json_integer_value(json_object_get(k, "id")) != id)
            continue;
        seen = true;
        ck_assert_str_eq(json_string_value(json_object_get(k, "stream")),
                         "live/x");
        ck_assert_str_eq(json_string_value(json_object_get(k, "label")),
                         "camera 1");
        ck_assert(json_is_string(json_object_get(k, "created")));
        ck_assert(json_is_null(json_object_get(k, "revoked")));
        ck_assert(json_object_get(k, "last_used") != NULL);
        ck_assert_ptr_null(json_object_get(k, "key"));
    }
    ck_assert(seen);
    json_decref(o);

    char path[64];
    snprintf(path, sizeof(path), "/api/keys/%lld", (long long)id);
    ck_assert_int_eq(req("DELETE", path, NULL), 204);
    ck_assert_uint_eq(R.len, 0);
    req("DELETE", path, NULL);
    expect_error(404);
    req("DELETE", "/api/keys/424242", NULL);
    expect_error(404);
    ck_assert_int_eq(st_key_check(st, stream, sizeof(stream), secret),
                     PD_EPERM);
    ck_assert_int_eq(req("GET", "/api/keys", NULL), 200);
    o = answer_json();
    json_array_foreach(json_object_get(o, "keys"), i, k)
    {
        if (json_integer_value(json_object_get(k, "id")) == id)
            ck_assert(json_is_string(json_object_get(k, "revoked")));
    }
    json_decref(o);
    env_down();
}
END_TEST

START_TEST(token_life_cycle)
{
    env_up();
    ck_assert_int_eq(req("POST", "/api/tokens", "{\"label\":\"ci\"}"), 201);
    json_t *o = answer_json();
    json_int_t id = json_integer_value(json_object_get(o, "id"));
    char secret[ST_SECRET_MAX];
    snprintf(secret, sizeof(secret), "%s",
             json_string_value(json_object_get(o, "token")));
    json_decref(o);
    ck_assert(strncmp(secret, "pt_", 3) == 0);
    /* without a label */
    ck_assert_int_eq(req("POST", "/api/tokens", "{}"), 201);
    /* the new token works */
    ck_assert_int_eq(
        req_full("GET", "/api/tokens", secret, NULL, NULL, NULL, 0, false),
        200);
    ck_assert_ptr_null(strstr(R.body, secret));
    ck_assert_ptr_null(strstr(R.body, token));
    ck_assert_ptr_null(strstr(R.body, "pt_"));
    o = answer_json();
    ck_assert_int_eq(json_array_size(json_object_get(o, "tokens")), 3);
    json_decref(o);
    char path[64];
    snprintf(path, sizeof(path), "/api/tokens/%lld", (long long)id);
    ck_assert_int_eq(req("DELETE", path, NULL), 204);
    req("DELETE", path, NULL);
    expect_error(404);
    req_full("GET", "/api/tokens", secret, NULL, NULL, NULL, 0, false);
    expect_error(401);
    env_down();
}
END_TEST

START_TEST(webhook_life_cycle)
{
    env_up();
    ck_assert_int_eq(
        req("POST", "/api/webhooks",
            "{\"url\":\"http://127.0.0.1:9/hook\",\"events\":"
            "[\"stream.started\",\"stream.ended\"],\"secret\":\"s3cr3tHook\"}"),
        201);
    json_t *o = answer_json();
    json_int_t id = json_integer_value(json_object_get(o, "id"));
    ck_assert_int_gt(id, 0);
    json_decref(o);
    ck_assert_int_eq(req("POST", "/api/webhooks",
                         "{\"url\":\"https://127.0.0.1/x\",\"events\":\"*\","
                         "\"secret\":\"another\"}"),
                     201);
    ck_assert_ptr_null(strstr(R.body, "another"));
    ck_assert_int_eq(req("GET", "/api/webhooks", NULL), 200);
    ck_assert_ptr_null(strstr(R.body, "s3cr3tHook"));
    ck_assert_ptr_null(strstr(R.body, "another"));
    o = answer_json();
    json_t *hooks = json_object_get(o, "webhooks");
    ck_assert_int_eq(json_array_size(hooks), 2);
    size_t i;
    json_t *hk;
    bool seen = false;
    json_array_foreach(hooks, i, hk)
    {
        if (json_integer_value(json_object_get(hk, "id")) != id)
            continue;
        seen = true;
        ck_assert_str_eq(json_string_value(json_object_get(hk, "url")),
                         "http://127.0.0.1:9/hook");
        json_t *ev = json_object_get(hk, "events");
        ck_assert_int_eq(json_array_size(ev), 2);
        ck_assert_str_eq(json_string_value(json_array_get(ev, 0)),
                         "stream.started");
    }
    ck_assert(seen);
    json_decref(o);
    /* hostile */
    const char *bad[] = {
        "{\"url\":\"ftp://127.0.0.1/x\",\"secret\":\"s\"}",
        "{\"url\":\"javascript:alert(1)\",\"secret\":\"s\"}",
        "{\"url\":\"http://127.0.0.1/x\",\"events\":[\"nope\"],"
        "\"secret\":\"s\"}",
        "{\"url\":\"http://127.0.0.1/x\",\"events\":[],\"secret\":\"s\"}",
        "{\"url\":\"http://127.0.0.1/x\",\"events\":[1],\"secret\":\"s\"}",
        "{\"url\":\"http://127.0.0.1/x\",\"events\":\"stream.started\","
        "\"secret\":\"s\"}",
        "{\"url\":7,\"secret\":\"s\"}",
        "{\"secret\":\"s\"}",
        "{\"url\":\"http://127.0.0.1/x\",\"secret\":5}",
        "{\"url\":\"http://127.0.0.1/x\",\"secret\":\"s\",\"admin\":1}",
    };
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
        req("POST", "/api/webhooks", bad[b]);
        expect_error(400);
    }
    char path[64];
    snprintf(path, sizeof(path), "/api/webhooks/%lld", (long long)id);
    ck_assert_int_eq(req("DELETE", path, NULL), 204);
    req("DELETE", path, NULL);
    expect_error(404);
    ck_assert_int_eq(req("GET", "/api/webhooks", NULL), 200);
    o = answer_json();
    ck_assert_int_eq(json_array_size(json_object_get(o, "webhooks")), 1);
    json_decref(o);
    env_down();
}
END_TEST

START_TEST(streams_overview)
{
    env_up();
    ck_assert_int_eq(req("GET", "/api/streams", NULL), 200);
    json_t *o = answer_json();
    ck_assert(json_is_array(json_object_get(o, "streams")));
    ck_assert_int_eq(json_array_size(json_object_get(o, "sessions")), 0);
    json_decref(o);

    pkg_stream_t *s = NULL;
    ck_assert_int_eq(pkg_publish(pkg, "live/demo", "127.0.0.1:1", &s), 0);
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/demo", "127.0.0.1:1", &sid), 0);
    ck_assert_int_eq(req("GET", "/api/streams", NULL), 200);
    o = answer_json();
    json_t *streams = json_object_get(o, "streams");
    ck_assert_int_eq(json_array_size(streams), 1);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(streams, 0), "name")),
        "live/demo");
    json_t *sess = json_object_get(o, "sessions");
    ck_assert_int_eq(json_array_size(sess), 1);
    json_t *s0 = json_array_get(sess, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(s0, "id")), sid);
    ck_assert_str_eq(json_string_value(json_object_get(s0, "stream")),
                     "live/demo");
    ck_assert(json_is_null(json_object_get(s0, "ended")));
    json_decref(o);
    pkg_unpublish(&s);
    ck_assert_int_eq(st_session_end(st, sid, "left"), 0);
    ck_assert_int_eq(req("GET", "/api/streams", NULL), 200);
    o = answer_json();
    s0 = json_array_get(json_object_get(o, "sessions"), 0);
    ck_assert(json_is_string(json_object_get(s0, "ended")));
    json_decref(o);
    env_down();
}
END_TEST

START_TEST(hostile_bodies)
{
    env_up();
    const char *bad[] = {
        "",
        "{",
        "{\"stream\":\"x\"",
        "[]",
        "[{\"stream\":\"x\"}]",
        "null",
        "\"x\"",
        "42",
        "{\"stream\":\"x\"} trailing",
        "{\"stream\":5}",
        "{\"stream\":null}",
        "{\"stream\":[\"x\"]}",
        "{\"stream\":\"x\",\"label\":7}",
        "{\"stream\":\"x\",\"admin\":true}",
        "{\"stream\":\"x\",\"stream\":\"y\"}",
        "{}",
        "{\"label\":\"only\"}",
        "{\"stream\":\"\"}",
        "{\"stream\":\"live/\"}",
        "{\"stream\":\"../etc\"}",
        "{\"stream\":\".hidden\"}",
        "{\"stream\":\"a b\"}",
        "{\"stream\":\"x?key=1\"}",
        "{\"stream\":\"x\\u0000y\"}",
        "{\"stream\":\"x\",\"label\":\"bell\\u0007\"}",
        "{\"stream\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
        "}",
        "\xff\xfe{}",
        "{\"stream\":\"\xc3\x28\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req("POST", "/api/keys", bad[i]);
        ck_assert_msg(R.status == 400, "case %zu: status %ld", i, R.status);
        expect_error(400);
    }
    /* label over 127 bytes */
    char big[512];
    int n = snprintf(big, sizeof(big), "{\"stream\":\"x\",\"label\":\"");
    for (int i = 0; i < 200; i++)
        big[n++] = 'l';
    snprintf(big + n, sizeof(big) - (size_t)n, "\"}");
    req("POST", "/api/keys", big);
    expect_error(400);
    /* deep nesting */
    char deep[4096];
    n = snprintf(deep, sizeof(deep), "{\"stream\":");
    for (int i = 0; i < 1500; i++)
        deep[n++] = '[';
    deep[n] = 0;
    req("POST", "/api/keys", deep);
    expect_error(400);
    /* an error message never quotes the body */
    req("POST", "/api/keys", "{\"stream\":\"x\", SECRETSTUFF}");
    expect_error(400);
    ck_assert_ptr_null(strstr(R.body, "SECRETSTUFF"));
    ck_assert_int_eq(nkeys(), 0);
    env_down();
}
END_TEST

START_TEST(oversized_bodies)
{
    env_up();
    size_t len = 2 * (size_t)cfg.api_max_body;
    char *body = malloc(len + 1);
    ck_assert_ptr_nonnull(body);
    /* a valid object, just too large */
    size_t n =
        (size_t)snprintf(body, len + 1, "{\"stream\":\"x\",\"label\":\"");
    memset(body + n, 'a', len - n - 2);
    memcpy(body + len - 2, "\"}", 3);
    req_full("POST", "/api/keys", token, NULL, "application/json", body, len,
             false);
    expect_error(413);
    /* the same, chunked (no Content-Length) */
    req_full("POST", "/api/keys", token, NULL, "application/json", body, len,
             true);
    expect_error(413);
    /* far beyond: declared length refused at once, or the connection
     * closed; either way nothing is created */
    free(body);
    ck_assert_int_eq(nkeys(), 0);
    /* exactly the limit is fine as far as size goes (label then too
     * long: 400, not 413) */
    len = (size_t)cfg.api_max_body;
    body = malloc(len + 1);
    n = (size_t)snprintf(body, len + 1, "{\"stream\":\"x\",\"label\":\"");
    memset(body + n, 'a', len - n - 2);
    memcpy(body + len - 2, "\"}", 3);
    req_full("POST", "/api/keys", token, NULL, "application/json", body, len,
             false);
    expect_error(400);
    free(body);
    /* a small one after all that still works */
    ck_assert_int_eq(req("POST", "/api/keys", "{\"stream\":\"x\"}"), 201);
    ck_assert_int_eq(nkeys(), 1);
    env_down();
}
END_TEST

START_TEST(content_type_checked)
{
    env_up();
    const char *body = "{\"stream\":\"x\"}";
    const char *bad[] = {NULL, "text/plain",
                         "application/x-www-form-urlencoded",
                         "application/jsonp", "multipart/form-data"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req_full("POST", "/api/keys", token, NULL, bad[i], body, strlen(body),
                 false);
        expect_error(415);
    }
    ck_assert_int_eq(nkeys(), 0);
    ck_assert_int_eq(req_full("POST", "/api/keys", token, NULL,
                              "Application/JSON; charset=utf-8", body,
                              strlen(body), false),
                     201);
    ck_assert_int_eq(nkeys(), 1);
    env_down();
}
END_TEST

START_TEST(bad_ids)
{
    env_up();
    ck_assert_int_eq(req("POST", "/api/keys", "{\"stream\":\"x\"}"), 201);
    const char *ids[] = {"-1",   "abc",  "99999999999999999999",
                         "0",    "007",  "1.5",
                         "1e3",  "%201", "+1",
                         "0x10", "1%00", "9223372036854775808"};
    const char *colls[] = {"keys", "tokens", "webhooks"};
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            char path[128];
            snprintf(path, sizeof(path), "/api/%s/%s", colls[c], ids[i]);
            req("DELETE", path, NULL);
            ck_assert_msg(R.status == 400, "%s: status %ld", path, R.status);
            expect_error(400);
        }
    }
    /* the largest id is well-formed: simply not there */
    req("DELETE", "/api/keys/9223372036854775807", NULL);
    expect_error(404);
    ck_assert_int_eq(nkeys(), 1);
    env_down();
}
END_TEST

START_TEST(sql_looking_strings)
{
    env_up();
    const char *label = "x'; DROP TABLE keys;--";
    char body[256];
    snprintf(body, sizeof(body), "{\"stream\":\"x\",\"label\":\"%s\"}", label);
    ck_assert_int_eq(req("POST", "/api/keys", body), 201);
    req("POST", "/api/keys", "{\"stream\":\"x'; DROP TABLE keys;--\"}");
    expect_error(400);
    ck_assert_int_eq(
        req("POST", "/api/tokens", "{\"label\":\"\\\" OR 1=1 --\"}"), 201);
    st_key_t *v = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(v[0].label, label); /* verbatim */
    free(v);
    ck_assert_int_eq(req("GET", "/api/keys", NULL), 200);
    json_t *o = answer_json();
    ck_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(o, "keys"), 0), "label")),
        label);
    json_decref(o);
    env_down();
}
END_TEST

START_TEST(paths_and_methods)
{
    env_up();
    const char *nf[] = {"/api",       "/api/",         "/api/nope",
                        "/api/keys/", "/api/keys/1/x", "/api/streams/1",
                        "/api/KEYS",  "/api/keys/1/",  "/api//keys",
                        "/api/keysx"};
    for (size_t i = 0; i < sizeof(nf) / sizeof(nf[0]); i++) {
        req("GET", nf[i], NULL);
        ck_assert_msg(R.status == 404, "%s: %ld", nf[i], R.status);
        expect_error(404);
    }
    char v[64];
    struct {
        const char *m, *p, *allow;
    } na[] = {{"PUT", "/api/keys", "GET, POST"},
              {"DELETE", "/api/keys", "GET, POST"},
              {"PATCH", "/api/tokens", "GET, POST"},
              {"POST", "/api/streams", "GET"},
              {"DELETE", "/api/streams", "GET"},
              {"GET", "/api/keys/1", "DELETE"},
              {"POST", "/api/webhooks/1", "DELETE"},
              {"OPTIONS", "/api/keys", "GET, POST"}};
    for (size_t i = 0; i < sizeof(na) / sizeof(na[0]); i++) {
        req(na[i].m, na[i].p, NULL);
        ck_assert_msg(R.status == 405, "%s %s: %ld", na[i].m, na[i].p,
                      R.status);
        expect_error(405);
        ck_assert_ptr_nonnull(hdr("Allow", v, sizeof(v)));
        ck_assert_str_eq(v, na[i].allow);
    }
    /* the media side is untouched: it still has CORS */
    ck_assert_int_eq(
        req_full("GET", "/streams.json", NULL, NULL, NULL, NULL, 0, false),
        200);
    ck_assert_ptr_nonnull(hdr("Access-Control-Allow-Origin", v, sizeof(v)));
    env_down();
}
END_TEST

START_TEST(no_catalogue_is_404)
{
    env_up_ex(false);
    req("GET", "/api/keys", NULL);
    expect_error(404);
    req("POST", "/api/keys", "{\"stream\":\"x\"}");
    expect_error(404);
    req_full("GET", "/api/streams", NULL, NULL, NULL, NULL, 0, false);
    expect_error(404);
    ck_assert_int_eq(nkeys(), 0);
    env_down();
}
END_TEST

START_TEST(keep_alive_requests)
{
    /* many requests in a row on one handle: state per request is fresh */
    env_up();
    for (int i = 0; i < 20; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"stream\":\"s%d\"}", i);
        ck_assert_int_eq(req("POST", "/api/keys", body), 201);
        req("POST", "/api/keys", "{");
        expect_error(400);
    }
    ck_assert_int_eq(nkeys(), 20);
    env_down();
}
END_TEST

/* ---- signed playback: /api/playback and /api/sign ----------------------- */

/* The answer's JSON equals the JSON text want (any member order). */
static void expect_json(long status, const char *want)
{
    ck_assert_msg(R.status == status, "status %ld, want %ld: %s", R.status,
                  status, R.body);
    json_t *o = answer_json();
    json_t *w = json_loads(want, 0, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_msg(json_equal(o, w), "got %s, want %s", R.body, want);
    json_decref(w);
    json_decref(o);
}

/* The catalogue's marks, as "live/a,live/b" (sorted). */
static void marks(char *out, size_t size)
{
    char(*v)[256] = NULL;
    int n = -1;
    ck_assert_int_eq(st_playback_list(st, &v, &n), 0);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, size - o, "%s%s", i ? "," : "", v[i]);
    free(v);
}

/* The signing key from <data_dir>/playback.key; never printed. */
static size_t playback_key(uint8_t key[PD_TOKEN_KEY_MAX])
{
    char path[400], hex[300];
    snprintf(path, sizeof(path), "%s/playback.key", dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(hex, 1, sizeof(hex) - 1, f);
    fclose(f);
    ck_assert_uint_eq(n, 65);
    ck_assert(hex[64] == '\n');
    hex[64] = '\0';
    size_t len = 0;
    ck_assert_int_eq(pd_token_key_from_hex(hex, key, &len), 0);
    explicit_bzero(hex, sizeof(hex));
    return len;
}

/* pd_token_check of tok for path at now with the catalogue's key. */
static pd_token_why_t check_tok(const char *tok, const char *path, int64_t now)
{
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t klen = playback_key(key);
    pd_token_why_t why = PD_TOKEN_MISSING;
    pd_token_check(key, klen, tok, strlen(tok), path, strlen(path), now, &why);
    explicit_bzero(key, sizeof(key));
    return why;
}

START_TEST(playback_get_needs_auth)
{
    env_up();
    req_full("GET", "/api/playback", NULL, NULL, NULL, NULL, 0, false);
    expect_error(401);
    const char *body = "{\"stream\":\"show\",\"signed\":true}";
    req_full("POST", "/api/playback", NULL, NULL, "application/json", body,
             strlen(body), false);
    expect_error(401);
    req_full("POST", "/api/sign", NULL, NULL, "application/json",
             "{\"stream\":\"show\"}", 17, false);
    expect_error(401);
    ck_assert_ptr_null(strstr(R.body, "hmac"));
    ck_assert(!st_playback_any(st));
    req("GET", "/api/playback", NULL);
    expect_json(200, "{\"signed_all\":false,\"token_param\":\"token\","
                     "\"signed_streams\":[]}");
    env_down();
}
END_TEST

START_TEST(playback_set_and_list)
{
    env_up();
    char m[512];
    req("POST", "/api/playback", "{\"stream\":\"show\",\"signed\":true}");
    expect_json(200, "{\"stream\":\"live/show\",\"signed\":true}");
    req("GET", "/api/playback", NULL);
    expect_json(200, "{\"signed_all\":false,\"token_param\":\"token\","
                     "\"signed_streams\":[\"live/show\"]}");
    ck_assert(st_playback_signed(st, "live/show"));
    /* "live/<name>" is accepted as is; the list is sorted; again is fine */
    req("POST", "/api/playback", "{\"signed\":true,\"stream\":\"live/a-1.b_c\"}");
    expect_json(200, "{\"stream\":\"live/a-1.b_c\",\"signed\":true}");
    req("POST", "/api/playback", "{\"stream\":\"show\",\"signed\":true}");
    expect_json(200, "{\"stream\":\"live/show\",\"signed\":true}");
    req("GET", "/api/playback", NULL);
    expect_json(200, "{\"signed_all\":false,\"token_param\":\"token\","
                     "\"signed_streams\":[\"live/a-1.b_c\",\"live/show\"]}");
    req("POST", "/api/playback", "{\"stream\":\"show\",\"signed\":false}");
    expect_json(200, "{\"stream\":\"live/show\",\"signed\":false}");
    ck_assert(!st_playback_signed(st, "live/show"));
    marks(m, sizeof(m));
    ck_assert_str_eq(m, "live/a-1.b_c");
    /* a 64-byte name is the longest */
    char body[256], name[80];
    memset(name, 'n', 64);
    name[64] = '\0';
    snprintf(body, sizeof(body), "{\"stream\":\"%s\",\"signed\":true}", name);
    ck_assert_int_eq(req("POST", "/api/playback", body), 200);
    env_down();
}
END_TEST

START_TEST(playback_set_bad_inputs)
{
    env_up();
    req("POST", "/api/playback", "{\"stream\":\"keep\",\"signed\":true}");
    expect_json(200, "{\"stream\":\"live/keep\",\"signed\":true}");
    char over[256];
    snprintf(over, sizeof(over), "{\"stream\":\"%065d\",\"signed\":true}", 0);
    const char *bad[] = {
        "{\"signed\":true}",
        "{\"stream\":\"show\"}",
        "{\"stream\":\"show\",\"signed\":\"yes\"}",
        "{\"stream\":\"show\",\"signed\":1}",
        "{\"stream\":\"show\",\"signed\":0}",
        "{\"stream\":\"show\",\"signed\":null}",
        "{\"stream\":\"show\",\"signed\":[true]}",
        "{\"stream\":\"show\",\"signed\":true,\"admin\":true}",
        "{\"stream\":\"show\",\"signed\":true,\"stream\":\"x\"}",
        "{\"stream\":5,\"signed\":true}",
        "{\"stream\":null,\"signed\":true}",
        "{\"stream\":\"\",\"signed\":true}",
        "{\"stream\":\"live/\",\"signed\":true}",
        "{\"stream\":\"../x\",\"signed\":true}",
        "{\"stream\":\".hidden\",\"signed\":true}",
        "{\"stream\":\"a b\",\"signed\":true}",
        "{\"stream\":\"a/b\",\"signed\":true}",
        "{\"stream\":\"x?key=1\",\"signed\":true}",
        "{\"stream\":\"x\\u0000y\",\"signed\":true}",
        "{\"stream\":\"live/live/x\",\"signed\":true}",
        "{\"stream\":\"x';DROP TABLE keys;--\",\"signed\":true}",
        "{\"stream\":\"keep\\\" OR 1=1 --\",\"signed\":false}",
        over,
        "[{\"stream\":\"show\",\"signed\":true}]",
        "\"show\"",
        "null",
        "",
        "{",
        "{\"stream\":\"show\",\"signed\":true",
        "{\"stream\":\"show\",\"signed\":tru}",
        "{\"stream\":\"keep\",\"signed\":false} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req("POST", "/api/playback", bad[i]);
        ck_assert_msg(R.status == 400, "case %zu: status %ld", i, R.status);
        expect_error(400);
    }
    /* Content-Type */
    const char *body = "{\"stream\":\"keep\",\"signed\":false}";
    const char *ctypes[] = {NULL, "text/plain", "application/jsonp",
                            "application/x-www-form-urlencoded"};
    for (size_t i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]); i++) {
        req_full("POST", "/api/playback", token, NULL, ctypes[i], body,
                 strlen(body), false);
        expect_error(415);
    }
    /* methods and paths */
    char v[64];
    req("PUT", "/api/playback", body);
    expect_error(405);
    ck_assert_ptr_nonnull(hdr("Allow", v, sizeof(v)));
    ck_assert_str_eq(v, "GET, POST");
    req("DELETE", "/api/playback", NULL);
    expect_error(405);
    req("GET", "/api/playback/live/keep", NULL);
    expect_error(404);
    req("DELETE", "/api/playback/1", NULL);
    expect_error(404);
    /* nothing changed */
    char m[512];
    marks(m, sizeof(m));
    ck_assert_str_eq(m, "live/keep");
    ck_assert(!st_playback_signed(st, "live/show"));
    env_down();
}
END_TEST

START_TEST(sign_methods_and_paths)
{
    env_up();
    char v[64];
    const char *methods[] = {"GET", "PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        req(methods[i], "/api/sign", NULL);
        ck_assert_msg(R.status == 405, "%s: %ld", methods[i], R.status);
        expect_error(405);
        ck_assert_ptr_nonnull(hdr("Allow", v, sizeof(v)));
        ck_assert_str_eq(v, "POST");
    }
    req("POST", "/api/sign/live/show", "{\"stream\":\"show\"}");
    expect_error(404);
    req("POST", "/api/sign/", "{\"stream\":\"show\"}");
    expect_error(404);
    req_full("POST", "/api/sign", token, NULL, "text/plain",
             "{\"stream\":\"show\"}", 17, false);
    expect_error(415);
    env_down();
}
END_TEST

START_TEST(sign_stream)
{
    env_up();
    int64_t t0 = (int64_t)time(NULL);
    ck_assert_int_eq(
        req("POST", "/api/sign", "{\"stream\":\"show\",\"ttl_s\":60}"), 200);
    int64_t t1 = (int64_t)time(NULL);
    json_t *o = answer_json();
    const char *tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    ck_assert(pd_token_chars_ok(tok, strlen(tok)));
    ck_assert_str_eq(json_string_value(json_object_get(o, "param")), "token");
    ck_assert_str_eq(json_string_value(json_object_get(o, "acl")),
                     "/live/show/*");
    const char *exp_s = json_string_value(json_object_get(o, "expires"));
    ck_assert_ptr_nonnull(exp_s);
    ck_assert_uint_eq(strlen(exp_s), 20); /* 2024-05-01T12:00:00Z */
    ck_assert(exp_s[10] == 'T' && exp_s[19] == 'Z');
    char want_url[2048];
    snprintf(want_url, sizeof(want_url), "/live/show/index.m3u8?token=%s", tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "url")), want_url);
    ck_assert_int_eq(json_object_size(o), 5);
    /* the token is valid for the stream's objects, for 60 s */
    ck_assert_int_eq(check_tok(tok, "/live/show/source/1.m4s", t1),
                     PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/live/show/index.m3u8", t0),
                     PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/live/show/index.m3u8", t0 + 59),
                     PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/live/show/index.m3u8", t1 + 60),
                     PD_TOKEN_EXPIRED);
    ck_assert_int_eq(check_tok(tok, "/live/other/index.m3u8", t1),
                     PD_TOKEN_WRONG_PATH);
    ck_assert_int_eq(check_tok(tok, "/live/showx/index.m3u8", t1),
                     PD_TOKEN_WRONG_PATH);
    ck_assert_int_eq(check_tok(tok, "/vod/1/index.m3u8", t1),
                     PD_TOKEN_WRONG_PATH);
    /* and the catalogue accepts it for a protected stream */
    ck_assert_int_eq(st_playback_set(st, "live/show", true), 0);
    ck_assert_int_eq(st_playback_check(st, "live/show",
                                       "/live/show/video/3.2.m4s", tok, NULL),
                     0);
    json_decref(o);
    /* "live/<name>", the default ttl (3600 s) */
    t0 = (int64_t)time(NULL);
    ck_assert_int_eq(req("POST", "/api/sign", "{\"stream\":\"live/show\"}"),
                     200);
    t1 = (int64_t)time(NULL);
    o = answer_json();
    tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "acl")),
                     "/live/show/*");
    ck_assert_int_eq(check_tok(tok, "/live/show/a", t0 + 3599), PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/live/show/a", t1 + 3600),
                     PD_TOKEN_EXPIRED);
    json_decref(o);
    /* the bounds of ttl_s */
    ck_assert_int_eq(req("POST", "/api/sign", "{\"stream\":\"show\",\"ttl_s\":1}"),
                     200);
    ck_assert_int_eq(
        req("POST", "/api/sign", "{\"stream\":\"show\",\"ttl_s\":315360000}"),
        200);
    env_down();
}
END_TEST

START_TEST(sign_recording_and_acl)
{
    env_up();
    int64_t t1;
    ck_assert_int_eq(req("POST", "/api/sign", "{\"recording\":5}"), 200);
    t1 = (int64_t)time(NULL);
    json_t *o = answer_json();
    const char *tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "acl")), "/vod/5/*");
    char want_url[2048];
    snprintf(want_url, sizeof(want_url), "/vod/5/index.m3u8?token=%s", tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "url")), want_url);
    ck_assert_int_eq(check_tok(tok, "/vod/5/video/1.m4s", t1), PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/vod/50/index.m3u8", t1),
                     PD_TOKEN_WRONG_PATH);
    ck_assert_int_eq(check_tok(tok, "/live/5/index.m3u8", t1),
                     PD_TOKEN_WRONG_PATH);
    json_decref(o);
    ck_assert_int_eq(
        req("POST", "/api/sign", "{\"recording\":9223372036854775807}"), 200);
    o = answer_json();
    ck_assert_str_eq(json_string_value(json_object_get(o, "acl")),
                     "/vod/9223372036854775807/*");
    json_decref(o);
    /* patterns as given; no url then */
    ck_assert_int_eq(
        req("POST", "/api/sign", "{\"acl\":\"/a/*!/b/*\",\"ttl_s\":120}"), 200);
    t1 = (int64_t)time(NULL);
    o = answer_json();
    tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "acl")), "/a/*!/b/*");
    ck_assert_ptr_null(json_object_get(o, "url"));
    ck_assert_int_eq(check_tok(tok, "/a/x", t1), PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/b/y/z", t1), PD_TOKEN_OK);
    ck_assert_int_eq(check_tok(tok, "/c/z", t1), PD_TOKEN_WRONG_PATH);
    json_decref(o);
    env_down();
}
END_TEST

START_TEST(sign_bad_inputs)
{
    env_up();
    char longacl[PD_TOKEN_MAX + 64], body[PD_TOKEN_MAX + 128];
    longacl[0] = '/';
    memset(longacl + 1, 'a', PD_TOKEN_MAX + 10);
    longacl[PD_TOKEN_MAX + 11] = '\0';
    snprintf(body, sizeof(body), "{\"acl\":\"%s\"}", longacl);
    /* just short enough for the API, too long for a token */
    char acl2[PD_TOKEN_MAX + 64], body2[PD_TOKEN_MAX + 128];
    acl2[0] = '/';
    memset(acl2 + 1, 'a', PD_TOKEN_MAX - 2);
    acl2[PD_TOKEN_MAX - 1] = '\0';
    snprintf(body2, sizeof(body2), "{\"acl\":\"%s\"}", acl2);
    const char *bad[] = {
        "{}",
        "{\"ttl_s\":60}",
        "{\"stream\":\"show\",\"recording\":5}",
        "{\"stream\":\"show\",\"acl\":\"/a/*\"}",
        "{\"recording\":5,\"acl\":\"/a/*\"}",
        "{\"stream\":\"show\",\"recording\":5,\"acl\":\"/a/*\"}",
        "{\"stream\":\"show\",\"ttl_s\":0}",
        "{\"stream\":\"show\",\"ttl_s\":-1}",
        "{\"stream\":\"show\",\"ttl_s\":315360001}",
        "{\"stream\":\"show\",\"ttl_s\":9223372036854775807}",
        "{\"stream\":\"show\",\"ttl_s\":\"60\"}",
        "{\"stream\":\"show\",\"ttl_s\":1.5}",
        "{\"stream\":\"show\",\"ttl_s\":60.0}",
        "{\"stream\":\"show\",\"ttl_s\":true}",
        "{\"stream\":\"show\",\"ttl_s\":null}",
        "{\"recording\":0}",
        "{\"recording\":-3}",
        "{\"recording\":\"5\"}",
        "{\"recording\":1.5}",
        "{\"recording\":null}",
        "{\"recording\":true}",
        "{\"recording\":99999999999999999999}",
        "{\"stream\":5}",
        "{\"stream\":null}",
        "{\"stream\":\"\"}",
        "{\"stream\":\"../x\"}",
        "{\"stream\":\"a b\"}",
        "{\"stream\":\"a/b\"}",
        "{\"stream\":\"x';DROP TABLE keys;--\"}",
        "{\"acl\":5}",
        "{\"acl\":\"\"}",
        "{\"acl\":\"a/*\"}",
        "{\"acl\":\"*\"}",
        "{\"acl\":\"/a~b\"}",
        "{\"acl\":\"/a/*~id=1\"}",
        "{\"acl\":\"/a=b\"}",
        "{\"acl\":\"/a%20b\"}",
        "{\"acl\":\"/a b\"}",
        "{\"acl\":\"/a?x\"}",
        "{\"acl\":\"/a\\\"b\"}",
        "{\"acl\":\"/a!!/b\"}",
        "{\"acl\":\"/a!b\"}",
        "{\"acl\":\"/\\u00e9\"}",
        body,
        body2,
        "{\"stream\":\"show\",\"admin\":true}",
        "{\"stream\":\"show\",\"stream\":\"x\"}",
        "[\"show\"]",
        "null",
        "",
        "{\"stream\":\"show\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req("POST", "/api/sign", bad[i]);
        ck_assert_msg(R.status == 400, "case %zu: status %ld", i, R.status);
        expect_error(400);
        ck_assert_msg(strstr(R.body, "hmac") == NULL, "case %zu", i);
    }
    env_down();
}
END_TEST

START_TEST(streams_show_signed_playback)
{
    env_up();
    pkg_stream_t *a = NULL, *b = NULL;
    ck_assert_int_eq(pkg_publish(pkg, "live/demo", "127.0.0.1:1", &a), 0);
    ck_assert_int_eq(pkg_publish(pkg, "live/open", "127.0.0.1:2", &b), 0);
    req("POST", "/api/playback", "{\"stream\":\"demo\",\"signed\":true}");
    expect_json(200, "{\"stream\":\"live/demo\",\"signed\":true}");
    ck_assert_int_eq(req("GET", "/api/streams", NULL), 200);
    json_t *o = answer_json();
    json_t *streams = json_object_get(o, "streams");
    ck_assert_int_eq(json_array_size(streams), 2);
    int seen = 0;
    size_t i;
    json_t *s;
    json_array_foreach(streams, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        json_t *sp = json_object_get(s, "signed_playback");
        ck_assert_msg(json_is_boolean(sp), "%s", name);
        if (strcmp(name, "live/demo") == 0) {
            ck_assert(json_is_true(sp));
            seen |= 1;
        } else if (strcmp(name, "live/open") == 0) {
            ck_assert(json_is_false(sp));
            seen |= 2;
        }
    }
    ck_assert_int_eq(seen, 3);
    json_decref(o);
    /* the public list leaves the protected stream out */
    ck_assert_int_eq(
        req_full("GET", "/streams.json", NULL, NULL, NULL, NULL, 0, false),
        200);
    ck_assert_ptr_null(strstr(R.body, "live/demo"));
    ck_assert_ptr_nonnull(strstr(R.body, "live/open"));
    pkg_unpublish(&a);
    pkg_unpublish(&b);
    env_down();
}
END_TEST

START_TEST(playback_config_signed_all_and_param)
{
    env_signed_all = true;
    snprintf(env_token_param, sizeof(env_token_param), "hdnts");
    env_up();
    req("GET", "/api/playback", NULL);
    expect_json(200, "{\"signed_all\":true,\"token_param\":\"hdnts\","
                     "\"signed_streams\":[]}");
    ck_assert_int_eq(req("POST", "/api/sign", "{\"stream\":\"show\"}"), 200);
    json_t *o = answer_json();
    const char *tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "param")), "hdnts");
    char want_url[2048];
    snprintf(want_url, sizeof(want_url), "/live/show/index.m3u8?hdnts=%s", tok);
    ck_assert_str_eq(json_string_value(json_object_get(o, "url")), want_url);
    json_decref(o);
    env_down();
}
END_TEST

/* The counters, at /api/metrics and DESIGN's /metrics: bearer token or
 * 401; Prometheus text; every sample line "name value" with a HELP and
 * TYPE line before it. */
START_TEST(metrics_text)
{
    env_up();
    const char *const paths[] = {"/api/metrics", "/metrics"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(req_full("GET", paths[i], NULL, NULL, NULL, NULL, 0,
                                  false), 401);
        ck_assert_ptr_null(strstr(R.body, "podium_"));
        ck_assert_int_eq(req_full("GET", paths[i], "pt_wrong", NULL, NULL,
                                  NULL, 0, false), 401);
        ck_assert_int_eq(req("GET", paths[i], NULL), 200);
        char v[256];
        ck_assert_ptr_nonnull(hdr("Content-Type", v, sizeof(v)));
        ck_assert_str_eq(v, "text/plain; version=0.0.4; charset=utf-8");
        ck_assert_ptr_nonnull(hdr("Cache-Control", v, sizeof(v)));
        ck_assert_str_eq(v, "no-store");
        const char *const names[] = {
            "podium_streams", "podium_waiters",
            "podium_parts_published_total",
            "podium_recorder_items_written_total",
            "podium_recorder_bytes_written_total",
            "podium_recorder_items_dropped_total",
            "podium_recorder_write_errors_total",
            "podium_recorder_disk_full_total", "podium_webhooks_sent_total",
            "podium_webhooks_failed_total", "podium_webhooks_dropped_total",
            "podium_webhooks_queued"};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            char want[128];
            snprintf(want, sizeof(want), "\n%s ", names[k]);
            const char *at = strstr(R.body, want);
            ck_assert_msg(at, "%s: no sample %s in:\n%s", paths[i], names[k],
                          R.body);
            snprintf(want, sizeof(want), "# TYPE %s ", names[k]);
            ck_assert_msg(strstr(R.body, want), "no TYPE for %s", names[k]);
            snprintf(want, sizeof(want), "# HELP %s ", names[k]);
            ck_assert_msg(strstr(R.body, want), "no HELP for %s", names[k]);
            /* the value: a non-negative integer, then the line's end */
            const char *val = at + 1 + strlen(names[k]) + 1;
            char *end = NULL;
            long long x = strtoll(val, &end, 10);
            ck_assert_msg(end != val && *end == '\n' && x >= 0,
                          "%s: bad value", names[k]);
        }
        ck_assert_ptr_nonnull(
            strstr(R.body, "\npodium_recorder_disk_full_total 0\n"));
        ck_assert_int_eq(req("POST", paths[i], "{}"), 405);
    }
    ck_assert_int_eq(req("GET", "/metrics/x", NULL), 404);
    ck_assert_int_eq(req("GET", "/api/metrics/x", NULL), 404);
    env_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *t = tcase_create("api");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, unauthorized_changes_nothing);
    tcase_add_test(t, key_life_cycle);
    tcase_add_test(t, token_life_cycle);
    tcase_add_test(t, webhook_life_cycle);
    tcase_add_test(t, streams_overview);
    tcase_add_test(t, hostile_bodies);
    tcase_add_test(t, oversized_bodies);
    tcase_add_test(t, content_type_checked);
    tcase_add_test(t, bad_ids);
    tcase_add_test(t, sql_looking_strings);
    tcase_add_test(t, paths_and_methods);
    tcase_add_test(t, no_catalogue_is_404);
    tcase_add_test(t, keep_alive_requests);
    tcase_add_test(t, playback_get_needs_auth);
    tcase_add_test(t, playback_set_and_list);
    tcase_add_test(t, playback_set_bad_inputs);
    tcase_add_test(t, sign_methods_and_paths);
    tcase_add_test(t, sign_stream);
    tcase_add_test(t, sign_recording_and_acl);
    tcase_add_test(t, sign_bad_inputs);
    tcase_add_test(t, streams_show_signed_playback);
    tcase_add_test(t, playback_config_signed_all_and_param);
    tcase_add_test(t, metrics_text);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
