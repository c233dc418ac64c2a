/*
 * tests/integration/test_auth.c - stream keys, API tokens, webhooks, the
 * on_publish hook, the admin API and the catalogue's crash safety, end to
 * end: the real podium binary, its real CLI (`podium --data-dir D keys
 * create ...`), the ffmpeg CLI publishing over RTMP, libcurl for the API.
 *
 * Every test starts its own podium (auth = "keys" unless said otherwise,
 * transcode = 0, 1 s segments) in its own temp dir, so no state mixes;
 * each uses its own stream names. A tiny HTTP listener thread in the test
 * (blocking socket on 127.0.0.1:0) receives the webhooks and the
 * on_publish requests, records each request's path, headers and body and
 * answers with a status chosen per request.
 *
 * Invariants checked everywhere: podium's log never contains a key or
 * token secret; podium exits 0 on SIGTERM at the end of each test.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GOP_MS 1000
static const char *const BASE_SETS[] = {"transcode=0", "segment_target_ms=1000",
                                        "grace_period_ms=3000", NULL};

/* ---- podium CLI ---------------------------------------------------------- */

/* `keys create name --label t`: secret (pk_...) and id. Asserts. */
static void key_create(const tl_podium_t *p, const char *name, char *secret,
                       size_t slen, char *id, size_t idlen)
{
    char why[1024];
    ck_assert_msg(tl_key_create(p->dir, name, "t", secret, slen, id, idlen, why,
                                sizeof(why)) == 0,
                  "%s", why);
}

/* `tokens create --label ops`: the secret (pt_...). Asserts. */
static void token_create(const tl_podium_t *p, char *secret, size_t slen)
{
    char why[1024];
    ck_assert_msg(
        tl_token_create(p->dir, "ops", secret, slen, why, sizeof(why)) == 0,
        "%s", why);
}

/* ---- podium helpers ------------------------------------------------------ */

/* Starts podium in a new temp dir with BASE_SETS + extra (NULL-terminated,
 * may be NULL). Asserts. */
static void start_podium(tl_podium_t *p, char *dir, size_t dirlen,
                         const char *tag, const char *const *extra)
{
    ck_assert(tl_mkdtemp(dir, dirlen, tag) == 0);
    const char *sets[24];
    int n = 0;
    for (int i = 0; BASE_SETS[i]; i++)
        sets[n++] = BASE_SETS[i];
    for (int i = 0; extra && extra[i] && n < 22; i++)
        sets[n++] = extra[i];
    sets[n] = NULL;
    ck_assert_msg(tl_podium_start(p, dir, sets) == 0, "podium did not start");
}

/* True if /streams.json lists stream "live/<name>" (exactly). */
static bool stream_listed(int http_port, const char *name)
{
    tl_resp_t r;
    if (tl_get(&r, 10000, "http://127.0.0.1:%d/streams.json", http_port) != 0 ||
        r.status != 200) {
        tl_resp_free(&r);
        return false;
    }
    char needle[300];
    snprintf(needle, sizeof(needle), "\"name\":\"live/%s\"", name);
    bool found = strstr((const char *)r.body, needle) != NULL;
    tl_resp_free(&r);
    return found;
}

static void dump_streams(int http_port)
{
    tl_resp_t r;
    if (tl_get(&r, 10000, "http://127.0.0.1:%d/streams.json", http_port) == 0)
        printf("  /streams.json: %.800s\n", (const char *)r.body);
    tl_resp_free(&r);
}

/* Publishes to live/<url_name> (may carry "?key=..."), expects stream
 * live/<stream> to get a complete segment. Leaves the publisher running
 * in *pub. Asserts. */
static void expect_published(tl_podium_t *p, tl_pub_t *pub,
                             const char *url_name, const char *stream,
                             const char *what)
{
    ck_assert(tl_pub_start(pub, p->dir, p->rtmp_port, url_name, GOP_MS, 0) ==
              0);
    char path[256];
    tl_playlist_path(path, sizeof(path), stream, "source");
    int64_t t0 = tl_now_ms();
    int rc = tl_wait_segments(p->http_port, path, 1, 30000);
    tl_note("%s: %s after %lld ms", what,
            rc == 0 ? "first segment" : "NO segment",
            (long long)(tl_now_ms() - t0));
    if (rc != 0) {
        tl_print_tail(pub->log, 6, "  ffmpeg | ");
        tl_print_tail(p->log, 12, "  podium | ");
        dump_streams(p->http_port);
    }
    ck_assert_msg(rc == 0, "%s: live/%s got no segment within 30 s", what,
                  stream);
}

/* Publishes to live/<url_name>; expects ffmpeg to fail (exit non-zero
 * within 20 s) and no stream live/<absent> (NULL: not checked) to be
 * listed. Asserts. */
static void expect_refused(tl_podium_t *p, const char *url_name,
                           const char *absent, const char *what)
{
    tl_pub_t pub;
    int64_t t0 = tl_now_ms();
    ck_assert(tl_pub_start(&pub, p->dir, p->rtmp_port, url_name, GOP_MS, 0) ==
              0);
    int rc = tl_pub_wait(&pub, 20000);
    tl_note("%s: ffmpeg %s after %lld ms (wait status %d)", what,
            rc == 0 ? "exited" : "STILL PUBLISHING",
            (long long)(tl_now_ms() - t0), rc == 0 ? pub.status : -1);
    if (rc != 0) {
        tl_pub_stop(&pub, SIGKILL);
        tl_print_tail(p->log, 10, "  podium | ");
    }
    ck_assert_msg(rc == 0, "%s: publish was not refused (ffmpeg still "
                           "running after 20 s)", what);
    ck_assert_msg(!(WIFEXITED(pub.status) && WEXITSTATUS(pub.status) == 0),
                  "%s: ffmpeg exited 0", what);
    if (absent) {
        bool listed = stream_listed(p->http_port, absent);
        if (listed)
            dump_streams(p->http_port);
        ck_assert_msg(!listed, "%s: live/%s is listed in /streams.json", what,
                      absent);
    }
}

/* ---- a tiny HTTP listener ------------------------------------------------ */

#define LIS_MAX 64

typedef struct {
    char method[16];
    char path[256];
    char headers[8192]; /* raw header block (after the request line) */
    char *body;         /* NUL-terminated */
    size_t len;
    int answered;       /* status sent */
} lreq_t;

typedef struct {
    int fd;
    int port;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    lreq_t reqs[LIS_MAX];
    int n;
    int status;     /* answer (under mu) */
    int fail_first; /* the first N requests of each X-Podium-Event: 500 */
} lis_t;

/* Value of header name in a raw header block (case-insensitive name,
 * trimmed). Returns out or NULL. */
static const char *hdr(const char *headers, const char *name, char *out,
                       size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *l = headers; l && *l;) {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
        const char *e = strchr(l, '\n');
        l = e ? e + 1 : NULL;
    }
    return NULL;
}

static void lis_serve(lis_t *L, int c)
{
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[16384];
    size_t got = 0;
    char *end = NULL;
    while (got < sizeof(buf) - 1) {
        ssize_t r = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        buf[got] = 0;
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
    }
    if (!end)
        return;
    lreq_t q;
    memset(&q, 0, sizeof(q));
    if (sscanf(buf, "%15s %255s", q.method, q.path) != 2)
        return;
    const char *h0 = strstr(buf, "\r\n") + 2;
    size_t hl = (size_t)(end + 2 - h0);
    if (hl >= sizeof(q.headers))
        hl = sizeof(q.headers) - 1;
    memcpy(q.headers, h0, hl);
    q.headers[hl] = 0;
    char v[64];
    long clen = 0;
    if (hdr(q.headers, "Content-Length", v, sizeof(v)))
        clen = strtol(v, NULL, 10);
    if (clen < 0 || clen > 1 << 20)
        return;
    if (hdr(q.headers, "Expect", v, sizeof(v)) &&
        strcasecmp(v, "100-continue") == 0)
        send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, MSG_NOSIGNAL);
    q.body = malloc((size_t)clen + 1);
    if (!q.body)
        return;
    size_t have = got - (size_t)(end + 4 - buf);
    if (have > (size_t)clen)
        have = (size_t)clen;
    memcpy(q.body, end + 4, have);
    while (have < (size_t)clen) {
        ssize_t r = recv(c, q.body + have, (size_t)clen - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    q.body[have] = 0;
    q.len = have;

    pthread_mutex_lock(&L->mu);
    int status = L->status;
    if (L->fail_first > 0) {
        char ev[64], ev2[64];
        int seen = 0;
        if (hdr(q.headers, "X-Podium-Event", ev, sizeof(ev)))
            for (int i = 0; i < L->n; i++)
                if (hdr(L->reqs[i].headers, "X-Podium-Event", ev2,
                        sizeof(ev2)) &&
                    strcmp(ev, ev2) == 0)
                    seen++;
        if (seen < L->fail_first)
            status = 500;
    }
    q.answered = status;
    if (L->n < LIS_MAX)
        L->reqs[L->n++] = q;
    else
        free(q.body);
    pthread_mutex_unlock(&L->mu);

    char resp[160];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     status);
    send(c, resp, (size_t)n, MSG_NOSIGNAL);
}

static void *lis_main(void *arg)
{
    lis_t *L = arg;
    while (!atomic_load(&L->stop)) {
        struct pollfd pf = {L->fd, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        int c = accept(L->fd, NULL, NULL);
        if (c < 0)
            continue;
        lis_serve(L, c);
        close(c);
    }
    return NULL;
}

static void lis_start(lis_t *L, int status)
{
    memset(L, 0, sizeof(*L));
    pthread_mutex_init(&L->mu, NULL);
    L->status = status;
    L->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(L->fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ck_assert(bind(L->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(L->fd, 16) == 0);
    socklen_t al = sizeof(a);
    ck_assert(getsockname(L->fd, (struct sockaddr *)&a, &al) == 0);
    L->port = ntohs(a.sin_port);
    ck_assert(pthread_create(&L->th, NULL, lis_main, L) == 0);
}

static void lis_set_status(lis_t *L, int status)
{
    pthread_mutex_lock(&L->mu);
    L->status = status;
    pthread_mutex_unlock(&L->mu);
}

static void lis_stop(lis_t *L)
{
    atomic_store(&L->stop, 1);
    pthread_join(L->th, NULL);
    close(L->fd);
    for (int i = 0; i < L->n; i++)
        free(L->reqs[i].body);
    pthread_mutex_destroy(&L->mu);
}

/* Number of requests to path (NULL: any) with X-Podium-Event event (NULL:
 * any). */
static int lis_count(lis_t *L, const char *path, const char *event)
{
    int c = 0;
    char ev[64];
    pthread_mutex_lock(&L->mu);
    for (int i = 0; i < L->n; i++) {
        const lreq_t *q = &L->reqs[i];
        if (path && strcmp(q->path, path) != 0)
            continue;
        if (event && !(hdr(q->headers, "X-Podium-Event", ev, sizeof(ev)) &&
                       strcmp(ev, event) == 0))
            continue;
        c++;
    }
    pthread_mutex_unlock(&L->mu);
    return c;
}

/* Waits up to timeout_ms for at least n such requests. */
static bool lis_wait(lis_t *L, const char *path, const char *event, int n,
                     int timeout_ms)
{
    int64_t t0 = tl_now_ms();
    while (lis_count(L, path, event) < n) {
        if (tl_now_ms() - t0 > timeout_ms)
            return false;
        tl_sleep_ms(50);
    }
    return true;
}

/* Copies the k-th (from 0) matching request (body duplicated: caller
 * frees q->body). Returns false if there is none. */
static bool lis_get(lis_t *L, const char *path, const char *event, int k,
                    lreq_t *out)
{
    bool found = false;
    char ev[64];
    pthread_mutex_lock(&L->mu);
    for (int i = 0; i < L->n && !found; i++) {
        const lreq_t *q = &L->reqs[i];
        if (path && strcmp(q->path, path) != 0)
            continue;
        if (event && !(hdr(q->headers, "X-Podium-Event", ev, sizeof(ev)) &&
                       strcmp(ev, event) == 0))
            continue;
        if (k-- > 0)
            continue;
        *out = *q;
        out->body = strdup(q->body);
        found = true;
    }
    pthread_mutex_unlock(&L->mu);
    return found;
}

static void lis_dump(lis_t *L)
{
    pthread_mutex_lock(&L->mu);
    for (int i = 0; i < L->n; i++)
        printf("  listener #%d %s %s -> %d\n%s  body: %.400s\n", i,
               L->reqs[i].method, L->reqs[i].path, L->reqs[i].answered,
               L->reqs[i].headers, L->reqs[i].body);
    pthread_mutex_unlock(&L->mu);
}

/* ---- webhook checks -------------------------------------------------------- */

/* Verifies X-Podium-Signature of q with secret: t=<t>,v1=<hex HMAC-SHA256
 * (secret, "<t>.<body>")>. Asserts. */
static void assert_signed(const lreq_t *q, const char *secret)
{
    char sig[256];
    ck_assert_msg(hdr(q->headers, "X-Podium-Signature", sig, sizeof(sig)),
                  "no X-Podium-Signature header:\n%s", q->headers);
    long long t = 0;
    int used = 0;
    ck_assert_msg(sscanf(sig, "t=%lld,v1=%n", &t, &used) == 1 && used > 0,
                  "malformed X-Podium-Signature '%s'", sig);
    const char *hex = sig + used;
    char ts[32];
    int tn = snprintf(ts, sizeof(ts), "%lld.", t);
    size_t mlen = (size_t)tn + q->len;
    unsigned char *msg = malloc(mlen);
    ck_assert(msg);
    memcpy(msg, ts, (size_t)tn);
    memcpy(msg + tn, q->body, q->len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    ck_assert(HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, mlen, mac,
                   &maclen));
    free(msg);
    char want[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    ck_assert_msg(strcasecmp(hex, want) == 0,
                  "X-Podium-Signature v1=%s, HMAC-SHA256(secret, "
                  "\"%lld.<body>\") is %s",
                  hex, t, want);
    /* the timestamp is now-ish (generous: 10 minutes) */
    long long now = (long long)time(NULL);
    ck_assert_msg(t > now - 600 && t < now + 600,
                  "signature timestamp %lld is far from now %lld", t, now);
}

/* Parses q's body, checks event and stream; returns the session id and
 * the peer (into peer). Asserts. */
static long long assert_event_body(const lreq_t *q, const char *event,
                                   const char *stream, char *peer,
                                   size_t peerlen)
{
    json_error_t je;
    json_t *o = json_loadb(q->body, q->len, 0, &je);
    ck_assert_msg(json_is_object(o), "webhook body is not a JSON object: %s",
                  q->body);
    const char *ev = json_string_value(json_object_get(o, "event"));
    const char *st = json_string_value(json_object_get(o, "stream"));
    const char *pe = json_string_value(json_object_get(o, "peer"));
    json_t *se = json_object_get(o, "session");
    ck_assert_msg(ev && strcmp(ev, event) == 0, "body event is not %s: %s",
                  event, q->body);
    ck_assert_msg(st && strcmp(st, stream) == 0, "body stream is not %s: %s",
                  stream, q->body);
    ck_assert_msg(json_is_integer(se) && json_integer_value(se) > 0,
                  "body session is not a positive integer: %s", q->body);
    ck_assert_msg(pe != NULL, "body has no string peer: %s", q->body);
    ck_assert_msg(json_object_get(o, "time") != NULL, "body has no time: %s",
                  q->body);
    char hev[64];
    ck_assert_msg(hdr(q->headers, "X-Podium-Event", hev, sizeof(hev)) &&
                      strcmp(hev, event) == 0,
                  "X-Podium-Event is not %s", event);
    snprintf(peer, peerlen, "%s", pe);
    long long s = (long long)json_integer_value(se);
    json_decref(o);
    return s;
}

/* ---- 1. stream keys through the real CLI ---------------------------------- */

START_TEST(test_keys_cli)
{
    static const char *const sets[] = {"auth=keys", NULL};
    char dir[256];
    tl_podium_t p;
    start_podium(&p, dir, sizeof(dir), "keys", sets);

    char k1[128], id1[32], k2[128], id2[32];
    key_create(&p, "talk", k1, sizeof(k1), id1, sizeof(id1));
    key_create(&p, "talk2", k2, sizeof(k2), id2, sizeof(id2));
    char url[256];

    /* Refusals first, so "live/talk is not listed" means something. */
    expect_refused(&p, "talk", "talk", "no key");
    expect_refused(&p, "talk?key=wrong", "talk", "?key=wrong");
    snprintf(url, sizeof(url), "other?key=%s", k1);
    expect_refused(&p, url, "other", "talk's key on live/other");

    /* The right key. */
    tl_pub_t pub;
    snprintf(url, sizeof(url), "talk?key=%s", k1);
    expect_published(&p, &pub, url, "talk", "?key=<talk's key>");
    ck_assert_msg(stream_listed(p.http_port, "talk"),
                  "live/talk is not in /streams.json");
    tl_pub_stop(&pub, SIGTERM);

    /* Key as the stream name (OBS): published as live/talk2. */
    expect_published(&p, &pub, k2, "talk2", "key as the stream name");
    ck_assert_msg(stream_listed(p.http_port, "talk2"),
                  "key-as-name did not list live/talk2");
    ck_assert_msg(!stream_listed(p.http_port, k2),
                  "key-as-name listed the key itself as a stream");
    tl_pub_stop(&pub, SIGTERM);

    /* keys list: both keys, never a secret. */
    char *out = NULL;
    ck_assert(tl_cli(p.dir, &out, NULL, "keys", "list", NULL) == 0);
    printf("  keys list:\n%s", out);
    ck_assert_msg(strstr(out, "live/talk") && strstr(out, "live/talk2"),
                  "keys list does not list both keys");
    ck_assert_msg(!strstr(out, "pk_"), "keys list shows a secret (pk_)");
    free(out);

    /* Revoke talk's key (CLI): a reconnect within the grace period with
     * it is now refused, as is the revoked key as a name. */
    ck_assert(tl_cli(p.dir, NULL, NULL, "keys", "revoke", id1, NULL) == 0);
    snprintf(url, sizeof(url), "talk?key=%s", k1);
    expect_refused(&p, url, NULL, "revoked key");
    expect_refused(&p, k1, NULL, "revoked key as the name");
    /* a second revoke of the same id is an error (not a silent success) */
    tl_note("second revoke of key %s: exit %d", id1,
            tl_cli(p.dir, NULL, NULL, "keys", "revoke", id1, NULL));
    ck_assert(tl_cli(p.dir, &out, NULL, "keys", "list", NULL) == 0);
    ck_assert_msg(!strstr(out, "pk_"), "keys list shows a secret (pk_)");
    free(out);

    ck_assert_msg(tl_podium_alive(&p), "podium died");
    tl_assert_not_logged(p.log, k1, "stream key");
    tl_assert_not_logged(p.log, k2, "stream key");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    tl_assert_not_logged(p.log, k1, "stream key");
    tl_assert_not_logged(p.log, k2, "stream key");
    tl_rmtree(dir);
}
END_TEST

/* ---- 2. webhooks ------------------------------------------------------------ */

/* Starts podium (auth=keys), a token, a key for name and a subscription
 * of L's /hook with secret "s3cret". */
static void hook_setup(tl_podium_t *p, char *dir, size_t dirlen,
                       const char *tag, lis_t *L, const char *name,
                       char *key, size_t keylen, char *token, size_t toklen)
{
    static const char *const sets[] = {"auth=keys", NULL};
    start_podium(p, dir, dirlen, tag, sets);
    char id[32];
    token_create(p, token, toklen);
    key_create(p, name, key, keylen, id, sizeof(id));
    char body[256];
    snprintf(body, sizeof(body),
             "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":\"*\","
             "\"secret\":\"s3cret\"}",
             L->port);
    char *out = NULL;
    long st = tl_http(p->http_port, "POST", "/api/webhooks", token,
                      "application/json", body, 0, &out);
    ck_assert_msg(st == 201 || st == 200, "POST /api/webhooks: %ld %s", st,
                  out);
    free(out);
    st = tl_http(p->http_port, "GET", "/api/webhooks", token, NULL, NULL, 0,
                 &out);
    ck_assert_msg(st == 200 && strstr(out, "/hook"),
                  "GET /api/webhooks: %ld %s", st, out);
    ck_assert_msg(!strstr(out, "s3cret"), "GET /api/webhooks shows the "
                                          "subscription's secret: %s", out);
    free(out);
}

START_TEST(test_webhooks)
{
    lis_t L;
    lis_start(&L, 200);
    char dir[256], key[128], token[128];
    tl_podium_t p;
    hook_setup(&p, dir, sizeof(dir), "hook", &L, "hooked", key, sizeof(key),
               token, sizeof(token));

    tl_pub_t pub;
    char url[256];
    snprintf(url, sizeof(url), "hooked?key=%s", key);
    expect_published(&p, &pub, url, "hooked", "keyed publish");
    bool got = lis_wait(&L, "/hook", "stream.started", 1, 20000);
    if (!got)
        lis_dump(&L);
    ck_assert_msg(got, "no stream.started webhook within 20 s");
    lreq_t s;
    ck_assert(lis_get(&L, "/hook", "stream.started", 0, &s));
    ck_assert_str_eq(s.method, "POST");
    assert_signed(&s, "s3cret");
    char peer[128], did[128];
    long long sess = assert_event_body(&s, "stream.started", "live/hooked",
                                       peer, sizeof(peer));
    ck_assert_msg(strncmp(peer, "127.0.0.1", 9) == 0,
                  "stream.started peer '%s' is not the publisher's address",
                  peer);
    ck_assert_msg(hdr(s.headers, "X-Podium-Delivery", did, sizeof(did)) &&
                      did[0],
                  "no X-Podium-Delivery header");
    tl_note("stream.started: session %lld peer %s delivery %s", sess, peer,
            did);
    free(s.body);

    int64_t t0 = tl_now_ms();
    tl_pub_stop(&pub, SIGTERM);
    got = lis_wait(&L, "/hook", "stream.ended", 1, 20000);
    if (!got)
        lis_dump(&L);
    ck_assert_msg(got, "no stream.ended webhook within 20 s of the "
                       "publisher leaving");
    tl_note("stream.ended arrived %lld ms after stopping the publisher",
            (long long)(tl_now_ms() - t0));
    lreq_t e;
    ck_assert(lis_get(&L, "/hook", "stream.ended", 0, &e));
    assert_signed(&e, "s3cret");
    char peer2[128], did2[128];
    long long sess2 = assert_event_body(&e, "stream.ended", "live/hooked",
                                        peer2, sizeof(peer2));
    ck_assert_msg(sess2 == sess, "stream.ended session %lld != started %lld",
                  sess2, sess);
    ck_assert_msg(hdr(e.headers, "X-Podium-Delivery", did2, sizeof(did2)) &&
                      strcmp(did, did2) != 0,
                  "stream.ended reuses stream.started's delivery id");
    free(e.body);
    /* exactly one of each (both answered 200: no retries) */
    tl_sleep_ms(1500);
    ck_assert_int_eq(lis_count(&L, "/hook", "stream.started"), 1);
    ck_assert_int_eq(lis_count(&L, "/hook", "stream.ended"), 1);

    tl_assert_not_logged(p.log, key, "stream key");
    tl_assert_not_logged(p.log, token, "API token");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    tl_assert_not_logged(p.log, key, "stream key");
    tl_assert_not_logged(p.log, token, "API token");
    lis_stop(&L);
    tl_rmtree(dir);
}
END_TEST

START_TEST(test_webhook_retries)
{
    lis_t L;
    lis_start(&L, 200);
    L.fail_first = 2; /* before podium exists: no race */
    char dir[256], key[128], token[128];
    tl_podium_t p;
    hook_setup(&p, dir, sizeof(dir), "retry", &L, "retried", key, sizeof(key),
               token, sizeof(token));
    tl_pub_t pub;
    char url[256];
    snprintf(url, sizeof(url), "retried?key=%s", key);
    int64_t t0 = tl_now_ms();
    expect_published(&p, &pub, url, "retried", "keyed publish");
    bool got = lis_wait(&L, "/hook", "stream.started", 3, 20000);
    tl_note("stream.started deliveries: %d within %lld ms of the publish",
            lis_count(&L, "/hook", "stream.started"),
            (long long)(tl_now_ms() - t0));
    if (!got)
        lis_dump(&L);
    ck_assert_msg(got, "stream.started was not retried twice after two 500 "
                       "answers (within 20 s)");
    char first[128] = "";
    for (int i = 0; i < 3; i++) {
        lreq_t q;
        ck_assert(lis_get(&L, "/hook", "stream.started", i, &q));
        char id[128], peer[128];
        ck_assert_msg(hdr(q.headers, "X-Podium-Delivery", id, sizeof(id)),
                      "delivery %d has no X-Podium-Delivery", i);
        assert_signed(&q, "s3cret");
        assert_event_body(&q, "stream.started", "live/retried", peer,
                          sizeof(peer));
        ck_assert_int_eq(q.answered, i < 2 ? 500 : 200);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", id);
        ck_assert_msg(strcmp(first, id) == 0,
                      "retry %d has delivery id %s, the first had %s", i, id,
                      first);
        free(q.body);
    }
    /* answered 200 the third time: no fourth delivery */
    tl_sleep_ms(3000);
    int n = lis_count(&L, "/hook", "stream.started");
    if (n != 3)
        lis_dump(&L);
    ck_assert_msg(n == 3, "stream.started delivered %d times (3 expected: "
                          "500, 500, 200)", n);
    tl_pub_stop(&pub, SIGTERM);
    tl_assert_not_logged(p.log, key, "stream key");
    tl_assert_not_logged(p.log, token, "API token");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    lis_stop(&L);
    tl_rmtree(dir);
}
END_TEST

/* ---- 3. on_publish ------------------------------------------------------------ */

START_TEST(test_on_publish)
{
    lis_t L;
    lis_start(&L, 403);
    char hook[128];
    snprintf(hook, sizeof(hook), "on_publish_url=http://127.0.0.1:%d/auth",
             L.port);
    const char *const sets[] = {"auth=keys", hook, NULL};
    char dir[256];
    tl_podium_t p;
    start_podium(&p, dir, sizeof(dir), "onpub", sets);
    char k[128], id[32], url[256];
    key_create(&p, "gated", k, sizeof(k), id, sizeof(id));

    /* 403: refused although the key is right. */
    snprintf(url, sizeof(url), "gated?key=%s", k);
    expect_refused(&p, url, "gated", "on_publish answers 403");
    ck_assert_msg(lis_count(&L, "/auth", NULL) >= 1,
                  "on_publish_url was never asked");

    /* 200: allowed. */
    lis_set_status(&L, 200);
    tl_pub_t pub;
    expect_published(&p, &pub, url, "gated", "on_publish answers 200");
    tl_pub_stop(&pub, SIGTERM);

    int n = lis_count(&L, "/auth", NULL);
    ck_assert_msg(n >= 2, "on_publish asked %d times for 2 publishes", n);
    for (int i = 0; i < n; i++) {
        lreq_t q;
        ck_assert(lis_get(&L, "/auth", NULL, i, &q));
        if (i == 0)
            printf("  on_publish request: %s %s\n%s  body: %s\n", q.method,
                   q.path, q.headers, q.body);
        ck_assert_str_eq(q.method, "POST");
        json_t *o = json_loadb(q.body, q.len, 0, NULL);
        ck_assert_msg(json_is_object(o), "on_publish body is not JSON: %s",
                      q.body);
        const char *st = json_string_value(json_object_get(o, "stream"));
        ck_assert_msg(st && strcmp(st, "live/gated") == 0,
                      "on_publish body has no \"stream\":\"live/gated\": %s",
                      q.body);
        json_decref(o);
        ck_assert_msg(!strstr(q.body, k) && !strstr(q.headers, k) &&
                          !strstr(q.path, k),
                      "the on_publish request carries the stream key");
        ck_assert_msg(!strstr(q.body, "key="), "on_publish body has key=: %s",
                      q.body);
        free(q.body);
    }
    tl_assert_not_logged(p.log, k, "stream key");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    lis_stop(&L);
    tl_rmtree(dir);
}
END_TEST

/* ---- 4. admin API ----------------------------------------------------------- */

START_TEST(test_api_streams)
{
    static const char *const sets[] = {"auth=keys", NULL};
    char dir[256];
    tl_podium_t p;
    start_podium(&p, dir, sizeof(dir), "api", sets);
    char token[128], k[128], id[32], url[256];
    token_create(&p, token, sizeof(token));
    key_create(&p, "apitest", k, sizeof(k), id, sizeof(id));
    tl_pub_t pub;
    snprintf(url, sizeof(url), "apitest?key=%s", k);
    expect_published(&p, &pub, url, "apitest", "keyed publish");

    char *out = NULL;
    long st =
        tl_http(p.http_port, "GET", "/api/streams", NULL, NULL, NULL, 0, &out);
    ck_assert_msg(st == 401, "GET /api/streams without a token: %ld", st);
    ck_assert_msg(!strstr(out, "apitest"), "401 answer leaks data: %s", out);
    free(out);
    st = tl_http(p.http_port, "GET", "/api/streams", "pt_wrong", NULL, NULL, 0,
                 &out);
    ck_assert_msg(st == 401, "GET /api/streams with a wrong token: %ld", st);
    free(out);
    st =
        tl_http(p.http_port, "GET", "/api/streams", token, NULL, NULL, 0, &out);
    printf("  GET /api/streams: %ld %.800s\n", st, out);
    ck_assert_msg(st == 200, "GET /api/streams with the token: %ld", st);
    json_t *o = json_loads(out, 0, NULL);
    ck_assert_msg(json_is_object(o), "not a JSON object");
    json_t *streams = json_object_get(o, "streams");
    json_t *sess = json_object_get(o, "sessions");
    ck_assert_msg(json_is_array(streams) && json_is_array(sess),
                  "no \"streams\"/\"sessions\" arrays");
    bool live = false;
    size_t i;
    json_t *e;
    json_array_foreach(streams, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        live = live || (n && strcmp(n, "live/apitest") == 0);
    }
    ck_assert_msg(live, "live/apitest is not among \"streams\"");
    bool found = false;
    json_array_foreach(sess, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "stream"));
        if (!n || strcmp(n, "live/apitest") != 0)
            continue;
        found = true;
        const char *peer = json_string_value(json_object_get(e, "peer"));
        const char *started = json_string_value(json_object_get(e, "started"));
        ck_assert_msg(peer && strncmp(peer, "127.0.0.1", 9) == 0,
                      "session peer is '%s'", peer ? peer : "(none)");
        ck_assert_msg(started && started[0], "session has no started time");
        ck_assert_msg(json_is_null(json_object_get(e, "ended")),
                      "the live session has an end");
        ck_assert_msg(json_integer_value(json_object_get(e, "id")) > 0,
                      "session has no id");
    }
    ck_assert_msg(found, "no session of live/apitest");
    json_decref(o);
    free(out);
    tl_pub_stop(&pub, SIGTERM);
    tl_assert_not_logged(p.log, token, "API token");
    tl_assert_not_logged(p.log, k, "stream key");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    tl_rmtree(dir);
}
END_TEST

/* ---- 5. crash safety of the catalogue --------------------------------------- */

static char *sql(const char *db, const char *q)
{
    char *argv[] = {"sqlite3", (char *)db, (char *)q, NULL};
    char *out = NULL, *err = NULL;
    int st = tl_run(argv, 30000, &out, &err);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
        printf("  sqlite3 '%s': wait status %d: %s\n", q, st, err ? err : "");
    free(err);
    return out;
}

START_TEST(test_crash_recovery)
{
    static const char *const sets[] = {"auth=keys", NULL};
    char dir[256];
    tl_podium_t p;
    start_podium(&p, dir, sizeof(dir), "crash", sets);
    char token[128], k[128], id[32], url[256], db[320];
    snprintf(db, sizeof(db), "%s/data/podium.db", dir);
    token_create(&p, token, sizeof(token));
    key_create(&p, "crashy", k, sizeof(k), id, sizeof(id));
    tl_pub_t pub;
    snprintf(url, sizeof(url), "crashy?key=%s", k);
    expect_published(&p, &pub, url, "crashy", "keyed publish");

    char *out = sql(db, "SELECT id FROM sessions WHERE stream='live/crashy' "
                        "AND ended_us=0");
    long long sid = out ? strtoll(out, NULL, 10) : 0;
    free(out);
    ck_assert_msg(sid > 0, "no open session of live/crashy in the catalogue");

    /* SIGKILL with a live, keyed publisher. */
    kill(p.pid, SIGKILL);
    tl_podium_reap(&p);
    ck_assert(WIFSIGNALED(p.status) && WTERMSIG(p.status) == SIGKILL);
    tl_pub_stop(&pub, SIGKILL);
    tl_assert_not_logged(p.log, k, "stream key");
    tl_assert_not_logged(p.log, token, "API token");

    /* Restart on the same data dir (the log file starts afresh). */
    const char *sets2[8];
    int n = 0;
    for (int i = 0; BASE_SETS[i]; i++)
        sets2[n++] = BASE_SETS[i];
    sets2[n++] = "auth=keys";
    sets2[n] = NULL;
    ck_assert_msg(tl_podium_start(&p, dir, sets2) == 0,
                  "podium did not restart after SIGKILL");

    out = sql(db, "PRAGMA integrity_check");
    ck_assert_msg(out && strcmp(out, "ok\n") == 0, "integrity_check: %s",
                  out ? out : "(no output)");
    free(out);
    char q[160];
    snprintf(q, sizeof(q), "SELECT end_reason FROM sessions WHERE id=%lld",
             sid);
    out = sql(db, q);
    tl_note("session %lld after the restart: end_reason %s", sid,
            out ? out : "?");
    ck_assert_msg(out && strcmp(out, "crash\n") == 0,
                  "the interrupted session's end_reason is '%s', not crash",
                  out ? out : "");
    free(out);

    /* The API says so too. */
    long st =
        tl_http(p.http_port, "GET", "/api/streams", token, NULL, NULL, 0, &out);
    ck_assert_msg(st == 200, "GET /api/streams after restart: %ld", st);
    json_t *o = json_loads(out, 0, NULL);
    json_t *sess = json_object_get(o, "sessions");
    bool crashed = false;
    size_t i;
    json_t *e;
    json_array_foreach(sess, i, e)
    {
        if (json_integer_value(json_object_get(e, "id")) != sid)
            continue;
        const char *r = json_string_value(json_object_get(e, "end_reason"));
        crashed = r && strcmp(r, "crash") == 0 &&
                  json_is_string(json_object_get(e, "ended"));
    }
    if (!crashed)
        printf("  /api/streams: %.800s\n", out);
    ck_assert_msg(crashed, "/api/streams does not show session %lld ended "
                           "by crash", sid);
    json_decref(o);
    free(out);

    /* The key survived and still works. */
    expect_published(&p, &pub, url, "crashy", "same key after the restart");
    tl_pub_stop(&pub, SIGTERM);
    tl_assert_not_logged(p.log, k, "stream key");
    tl_assert_not_logged(p.log, token, "API token");
    tl_assert_clean_exit(&p, 15000);
    tl_podium_reap(&p);
    out = sql(db, "PRAGMA integrity_check");
    ck_assert_msg(out && strcmp(out, "ok\n") == 0,
                  "integrity_check after a clean stop: %s", out ? out : "");
    free(out);
    tl_rmtree(dir);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_keys_cli);
    tcase_add_test(tc, test_webhooks);
    tcase_add_test(tc, test_webhook_retries);
    tcase_add_test(tc, test_on_publish);
    tcase_add_test(tc, test_api_streams);
    tcase_add_test(tc, test_crash_recovery);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(auth_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_auth: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
