/*
 * tests/unit/test_hooks.c - storage's webhooks: subscriptions, signatures,
 * the delivery worker (headers, body, retries, giving up), the bounded
 * queue and a bounded stop, and the synchronous on_publish hook.
 *
 * A tiny HTTP listener runs inside the test on 127.0.0.1 (port chosen by
 * the kernel): one thread, blocking sockets, one request per connection,
 * answering each request with the next status of a script the test sets
 * (or never answering, to play a hung receiver). Every wait has a
 * deadline; the signature is checked with OpenSSL's one-shot HMAC(), a
 * different code path from st_sign()'s EVP_MAC.
 */
#include "storage/st_int.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the listener ------------------------------------------------------ */

#define SRV_MAX_REQ 64
#define SRV_HDR_MAX 16384
#define SRV_BODY_MAX 65536

typedef struct req_s {
    char *head; /* request line + headers, NUL-terminated */
    char *body; /* NUL-terminated */
} req_t;

typedef struct srv_s {
    int fd, port;
    pthread_t th;
    pthread_mutex_t mu;
    bool stop;
    int script[16], nscript; /* statuses, in order; then dflt */
    int dflt;                /* 0: never answer (hang until stop) */
    req_t req[SRV_MAX_REQ];
    int nreq; /* requests fully received */
} srv_t;

static bool srv_stopping(srv_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool st = s->stop;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Reads one request (headers + Content-Length body); 0 or -1. */
static int read_request(int c, req_t *r)
{
    char *buf = malloc(SRV_HDR_MAX + SRV_BODY_MAX + 1);
    if (!buf)
        return -1;
    size_t n = 0, hlen = 0, clen = 0;
    char *end = NULL;
    while (!end) {
        if (n >= SRV_HDR_MAX)
            goto fail;
        ssize_t k = read(c, buf + n, SRV_HDR_MAX - n);
        if (k <= 0)
            goto fail;
        n += (size_t)k;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    hlen = (size_t)(end - buf) + 4;
    for (char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') &&
            strncasecmp(p, "Content-Length:", 15) == 0) {
            char *e;
            long long v = strtoll(p + 15, &e, 10);
            if (v < 0 || v > SRV_BODY_MAX)
                goto fail;
            clen = (size_t)v;
        }
    }
    while (n < hlen + clen) {
        ssize_t k = read(c, buf + n, hlen + clen - n);
        if (k <= 0)
            goto fail;
        n += (size_t)k;
    }
    r->head = strndup(buf, hlen);
    r->body = strndup(buf + hlen, clen);
    free(buf);
    return r->head && r->body ? 0 : -1;
fail:
    free(buf);
    return -1;
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    while (!srv_stopping(s)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {.tv_sec = 10};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        req_t r = {0};
        if (read_request(c, &r) != 0) {
            free(r.head);
            free(r.body);
            close(c);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        int i = s->nreq;
        int status = i < s->nscript ? s->script[i] : s->dflt;
        if (i < SRV_MAX_REQ) {
            s->req[i] = r;
            s->nreq++;
        } else {
            free(r.head);
            free(r.body);
        }
        pthread_mutex_unlock(&s->mu);
        if (status == 0) {
            while (!srv_stopping(s))
                usleep(20000);
        } else {
            char resp[128];
            int rl = snprintf(resp, sizeof(resp),
                              "HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\nok",
                              status);
            ssize_t w = write(c, resp, (size_t)rl);
            (void)w;
        }
        close(c);
    }
    return NULL;
}

/* Starts a listener answering `script` in order, then dflt. */
static srv_t *srv_start(const int *script, int nscript, int dflt)
{
    srv_t *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    pthread_mutex_init(&s->mu, NULL);
    ck_assert_int_le(nscript, 16);
    for (int i = 0; i < nscript; i++)
        s->script[i] = script[i];
    s->nscript = nscript;
    s->dflt = dflt;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s->fd, 64), 0);
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static int srv_count(srv_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void srv_stop(srv_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < s->nreq; i++) {
        free(s->req[i].head);
        free(s->req[i].body);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A port on 127.0.0.1 with nobody listening (connection refused). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

/* Value of header name in head (into out), or false. */
static bool header(const char *head, const char *name, char *out,
                   size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, outlen, "%.*s", (int)l, v);
            return true;
        }
    }
    return false;
}

/* ---- fixture ----------------------------------------------------------- */

static pd_config_t cfg;
static char dir[256];
static st_t *st;

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void setup(void)
{
    pd_config_defaults(&cfg);
    snprintf(dir, sizeof(dir), "/tmp/podium-hooks-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    char path[300];
    snprintf(path, sizeof(path), "%s/podium.db", dir);
    ck_assert_int_eq(st_open(&cfg, path, &st), 0);
    ck_assert_ptr_nonnull(st);
}

static void teardown(void)
{
    st_close(&st);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void hook_to(int port, const char *events, const char *secret)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook?x=1", port);
    int64_t id = 0;
    ck_assert_int_eq(st_hook_create(st, url, events, secret, &id), 0);
    ck_assert_int_gt(id, 0);
}

/* Waits (at most ms) until f(st) reaches want; returns the last value. */
static long long wait_stat(int which, long long want, int ms)
{
    st_stats_t s;
    int64_t end = pd_mono_us() + (int64_t)ms * 1000;
    for (;;) {
        st_get_stats(st, &s);
        long long v = which == 0   ? s.hooks_sent
                      : which == 1 ? s.hooks_failed
                      : which == 2 ? s.hooks_dropped
                                   : s.hooks_queued;
        if (v >= want || pd_mono_us() > end)
            return v;
        usleep(20000);
    }
}

static int wait_requests(srv_t *s, int want, int ms)
{
    int64_t end = pd_mono_us() + (int64_t)ms * 1000;
    while (srv_count(s) < want && pd_mono_us() < end)
        usleep(20000);
    return srv_count(s);
}

static void expect_sig(const char *secret, const char *sig,
                       const char *body)
{
    long long t = 0;
    char hex[80] = "";
    ck_assert_int_eq(sscanf(sig, "t=%lld,v1=%70s", &t, hex), 2);
    ck_assert_int_eq((int)strlen(hex), 64);
    long long now = pd_wall_us() / 1000000;
    ck_assert(t > now - 600 && t <= now + 1);
    char msg[SRV_BODY_MAX + 32];
    int ml = snprintf(msg, sizeof(msg), "%lld.%s", t, body);
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg,
         (size_t)ml, mac, &maclen);
    ck_assert_uint_eq(maclen, 32);
    char want[65];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    ck_assert_str_eq(hex, want);
}

/* ---- st_sign ----------------------------------------------------------- */

START_TEST(sign_vector)
{
    const char *secret = "whsec_test";
    const char *body = "{\"event\":\"stream.started\"}";
    char out[128];
    ck_assert_int_eq(
        st_sign(secret, 1700000000, body, strlen(body), out, sizeof(out)),
        0);
    ck_assert(strncmp(out, "t=1700000000,v1=", 16) == 0);
    for (const char *p = out + 16; *p; p++)
        ck_assert(isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f'));
    /* recomputed with HMAC(), and the fixed value from `printf
     * '1700000000.{"event":"stream.started"}' | openssl dgst -sha256
     * -hmac whsec_test` */
    unsigned char mac[32];
    unsigned int ml;
    const char *msg = "1700000000.{\"event\":\"stream.started\"}";
    HMAC(EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)msg, strlen(msg), mac, &ml);
    char want[65];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    ck_assert_str_eq(out + 16, want);
    ck_assert_str_eq(out + 16, "4fd754ca77cb4dfba35e7212d993e488"
                               "26bc921ae6b293dc75a8d1d326b9dab3");

    /* too small: exactly one byte short, then exact */
    size_t need = strlen(out) + 1;
    ck_assert_int_eq(
        st_sign(secret, 1700000000, body, strlen(body), out, need - 1),
        PD_EINVAL);
    ck_assert_int_eq(
        st_sign(secret, 1700000000, body, strlen(body), out, need), 0);
    ck_assert_int_eq(st_sign(NULL, 1, body, 1, out, sizeof(out)),
                     PD_EINVAL);
    /* a different secret or time gives a different signature */
    char other[128];
    st_sign("whsec_tesu", 1700000000, body, strlen(body), other,
            sizeof(other));
    ck_assert_str_ne(other, out);
    st_sign(secret, 1700000001, body, strlen(body), other, sizeof(other));
    ck_assert_str_ne(other + 16, out + 16);
}
END_TEST

START_TEST(sign_known_answer)
{
    /* RFC 4231 test case 2's key and data, with our "<t>." prefix. */
    char out[128];
    ck_assert_int_eq(st_sign("Jefe", 0, "what do ya want for nothing?", 28,
                             out, sizeof(out)),
                     0);
    /* HMAC of "0.what do ya want for nothing?" computed independently */
    unsigned char mac[32];
    unsigned int ml;
    const char *msg = "0.what do ya want for nothing?";
    HMAC(EVP_sha256(), "Jefe", 4, (const unsigned char *)msg, strlen(msg),
         mac, &ml);
    char want[100] = "t=0,v1=";
    for (int i = 0; i < 32; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
    ck_assert_str_eq(out, want);
    /* `printf '0.what do ya want for nothing?' | openssl dgst -sha256
     *  -hmac Jefe` */
    ck_assert_str_eq(out, "t=0,v1=37f471929915ccd2cbbe79feb84ffcff"
                          "4f2bb25e15fc41c2506687331ae179cc");
}
END_TEST

/* ---- subscriptions ----------------------------------------------------- */

START_TEST(hook_crud)
{
    int64_t a, b;
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1:1/a",
                                    "stream.started,stream.ended", "k1", &a),
                     0);
    ck_assert_int_eq(st_hook_create(st, "https://127.0.0.1:2/b", "*", "k2",
                                    &b),
                     0);
    st_hook_t *v = NULL;
    int n = 0;
    ck_assert_int_eq(st_hook_list(st, &v, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(v[0].id, a);
    ck_assert_str_eq(v[0].url, "http://127.0.0.1:1/a");
    ck_assert_str_eq(v[0].events, "stream.started,stream.ended");
    ck_assert_int_gt(v[0].created_us, 0);
    ck_assert_str_eq(v[1].events, "*");
    free(v);
    ck_assert_int_eq(st_hook_delete(st, a), 0);
    ck_assert_int_eq(st_hook_delete(st, a), PD_ENOENT);
    ck_assert_int_eq(st_hook_list(st, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(v[0].id, b);
    free(v);
}
END_TEST

START_TEST(hook_create_hostile)
{
    int64_t id;
    const char *bad_urls[] = {
        "",
        "http://",
        "http:///path",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1:70/",
        "HTTP//127.0.0.1/",
        "http://127.0.0.1/a b",
        " http://127.0.0.1/",
        "http://127.0.0.1/\r\nX-Evil: 1",
        "http://127.0.0.1/\t",
        "http://127.0.0.1/\x7f",
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(*bad_urls); i++)
        ck_assert_msg(st_hook_create(st, bad_urls[i], "*", "k", &id) ==
                          PD_EINVAL,
                      "accepted url #%zu", i);
    char lng[600];
    memset(lng, 'a', sizeof(lng));
    memcpy(lng, "http://127.0.0.1/", 17);
    lng[512] = '\0'; /* 512 chars: one too many */
    ck_assert_int_eq(st_hook_create(st, lng, "*", "k", &id), PD_EINVAL);
    lng[511] = '\0'; /* 511: fine */
    ck_assert_int_eq(st_hook_create(st, lng, "*", "k", &id), 0);

    const char *bad_events[] = {
        "", "stream.bogus", "stream.started,", ",stream.started",
        "stream.started,,stream.ended", "stream.started, stream.ended",
        "*,stream.started", "STREAM.STARTED", "**",
    };
    for (size_t i = 0; i < sizeof(bad_events) / sizeof(*bad_events); i++)
        ck_assert_msg(st_hook_create(st, "http://127.0.0.1/", bad_events[i],
                                     "k", &id) == PD_EINVAL,
                      "accepted events #%zu", i);
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/",
                                    "recording.ready", "k", &id),
                     0);

    char sec[300];
    memset(sec, 's', sizeof(sec));
    sec[256] = '\0';
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/", "*", sec, &id),
                     PD_EINVAL);
    sec[255] = '\0';
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/", "*", sec, &id),
                     0);
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/", "*", "", &id),
                     PD_EINVAL);
    ck_assert_int_eq(st_hook_create(st, NULL, "*", "k", &id), PD_EINVAL);
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/", NULL, "k", &id),
                     PD_EINVAL);
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1/", "*", NULL, &id),
                     PD_EINVAL);

    st_hook_t *v;
    int n;
    ck_assert_int_eq(st_hook_list(st, &v, &n), 0);
    ck_assert_int_eq(n, 3);
    free(v);
}
END_TEST

/* ---- deliveries -------------------------------------------------------- */

START_TEST(delivered_signed)
{
    srv_t *s = srv_start(NULL, 0, 200);
    hook_to(s->port, "stream.started", "s3cret-key");
    st_event(st, "stream.started",
             "{\"stream\":\"live/a\",\"session\":7,\"peer\":\"127.0.0.1\"}");
    ck_assert_int_eq(wait_requests(s, 1, 10000), 1);
    ck_assert_int_eq(wait_stat(0, 1, 5000), 1);

    req_t *r = &s->req[0];
    ck_assert(strncmp(r->head, "POST /hook?x=1 HTTP/1.1\r\n", 25) == 0);
    char v[256];
    ck_assert(header(r->head, "Content-Type", v, sizeof(v)));
    ck_assert_str_eq(v, "application/json");
    ck_assert(header(r->head, "User-Agent", v, sizeof(v)));
    ck_assert_str_eq(v, "podium");
    ck_assert(header(r->head, "X-Podium-Event", v, sizeof(v)));
    ck_assert_str_eq(v, "stream.started");
    ck_assert(header(r->head, "X-Podium-Delivery", v, sizeof(v)));
    ck_assert_int_ge((int)strlen(v), 16);
    ck_assert(header(r->head, "X-Podium-Signature", v, sizeof(v)));
    expect_sig("s3cret-key", v, r->body);
    ck_assert_ptr_null(strstr(r->head, "s3cret"));
    ck_assert_ptr_null(strstr(r->body, "s3cret"));

    json_t *j = json_loads(r->body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "event")),
                     "stream.started");
    ck_assert_str_eq(json_string_value(json_object_get(j, "stream")),
                     "live/a");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "session")), 7);
    const char *t = json_string_value(json_object_get(j, "time"));
    ck_assert_ptr_nonnull(t);
    /* 2024-05-01T12:00:00.123Z */
    ck_assert_int_eq((int)strlen(t), 24);
    ck_assert(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    json_decref(j);
    ck_assert_ptr_null(strchr(r->body, '\n')); /* compact */

    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_eq(ss.hooks_failed, 0);
    ck_assert_int_eq(ss.hooks_dropped, 0);
    st_close(&st);
    srv_stop(s);
}
END_TEST

START_TEST(subscription_filter)
{
    srv_t *s = srv_start(NULL, 0, 204);
    hook_to(s->port, "stream.ended", "k");
    srv_t *all = srv_start(NULL, 0, 200);
    hook_to(all->port, "*", "k");
    st_event(st, "stream.started", "{\"stream\":\"live/a\"}");
    st_event(st, "stream.ended", "{\"stream\":\"live/a\"}");
    ck_assert_int_eq(wait_stat(0, 3, 10000), 3);
    ck_assert_int_eq(srv_count(s), 1);
    char v[64];
    ck_assert(header(s->req[0].head, "X-Podium-Event", v, sizeof(v)));
    ck_assert_str_eq(v, "stream.ended");
    ck_assert_int_eq(wait_requests(all, 2, 5000), 2);
    /* different deliveries have different ids */
    char d0[64], d1[64];
    ck_assert(header(all->req[0].head, "X-Podium-Delivery", d0, sizeof(d0)));
    ck_assert(header(all->req[1].head, "X-Podium-Delivery", d1, sizeof(d1)));
    ck_assert_str_ne(d0, d1);
    st_close(&st);
    srv_stop(s);
    srv_stop(all);
}
END_TEST

START_TEST(retried_then_delivered)
{
    st->backoff_ms = 100; /* 100, 200 ms instead of 1, 2 s */
    int script[] = {500, 500, 200};
    srv_t *s = srv_start(script, 3, 200);
    hook_to(s->port, "stream.started", "k");
    st_event(st, "stream.started", "{\"stream\":\"live/a\"}");
    ck_assert_int_eq(wait_stat(0, 1, 10000), 1);
    ck_assert_int_eq(srv_count(s), 3);
    char d0[64], d2[64], s0[200], s2[200];
    ck_assert(header(s->req[0].head, "X-Podium-Delivery", d0, sizeof(d0)));
    ck_assert(header(s->req[2].head, "X-Podium-Delivery", d2, sizeof(d2)));
    ck_assert_str_eq(d0, d2); /* one delivery, three attempts */
    ck_assert_str_eq(s->req[0].body, s->req[2].body);
    ck_assert(header(s->req[2].head, "X-Podium-Signature", s2, sizeof(s2)));
    ck_assert(header(s->req[0].head, "X-Podium-Signature", s0, sizeof(s0)));
    expect_sig("k", s2, s->req[2].body);
    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_eq(ss.hooks_failed, 0);
    ck_assert_int_eq(ss.hooks_queued, 0);
    st_close(&st);
    srv_stop(s);
}
END_TEST

START_TEST(gives_up_after_retries)
{
    st->backoff_ms = 10; /* 10..160 ms */
    srv_t *s = srv_start(NULL, 0, 503);
    hook_to(s->port, "stream.ended", "k");
    st_event(st, "stream.ended", "{}");
    ck_assert_int_eq(wait_stat(1, 1, 15000), 1);
    /* one attempt and five retries, then nothing more */
    usleep(500000);
    ck_assert_int_eq(srv_count(s), 6);
    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_eq(ss.hooks_sent, 0);
    ck_assert_int_eq(ss.hooks_queued, 0);
    st_close(&st);
    srv_stop(s);
}
END_TEST

START_TEST(gives_up_listener_down)
{
    st->backoff_ms = 10;
    hook_to(dead_port(), "*", "k");
    st_event(st, "recording.ready", "{\"id\":1}");
    ck_assert_int_eq(wait_stat(1, 1, 15000), 1);
    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_eq(ss.hooks_sent, 0);
    ck_assert_int_eq(ss.hooks_queued, 0);
}
END_TEST

START_TEST(queue_bounded_and_stop_bounded)
{
    /* a receiver that accepts and never answers: the worker is stuck in
     * a transfer, the queue fills up, stop must still be quick */
    srv_t *s = srv_start(NULL, 0, 0);
    hook_to(s->port, "stream.started", "k");
    for (int i = 0; i < 3000; i++)
        st_event(st, "stream.started", "{\"stream\":\"live/a\"}");
    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_le(ss.hooks_queued, ST_HOOK_QUEUE);
    ck_assert_int_ge(ss.hooks_dropped, 3000 - ST_HOOK_QUEUE - 1);
    /* each event is exactly one of these (one subscription) */
    ck_assert_int_eq(ss.hooks_dropped + ss.hooks_queued + ss.hooks_sent +
                         ss.hooks_failed,
                     3000);
    wait_requests(s, 1, 5000);
    int64_t t0 = pd_mono_us();
    st_close(&st);
    int64_t took = pd_mono_us() - t0;
    ck_assert_msg(took < 2500000, "st_close took %lld us", (long long)took);
    srv_stop(s);
}
END_TEST

START_TEST(queue_bounded_listener_down)
{
    hook_to(dead_port(), "stream.started", "k"); /* refused, retried 1 s */
    for (int i = 0; i < 3000; i++)
        st_event(st, "stream.started", "{\"stream\":\"live/a\"}");
    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_le(ss.hooks_queued, ST_HOOK_QUEUE);
    ck_assert_int_ge(ss.hooks_dropped, 3000 - ST_HOOK_QUEUE);
    int64_t t0 = pd_mono_us();
    st_close(&st);
    int64_t took = pd_mono_us() - t0;
    ck_assert_msg(took < 2500000, "st_close took %lld us", (long long)took);
}
END_TEST

START_TEST(hostile_events)
{
    srv_t *s = srv_start(NULL, 0, 200);
    hook_to(s->port, "*", "k");
    const char *bad[] = {
        "",      "{",     "[1,2]", "\"str\"", "42",   "null",
        "{\"a\":", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "\xff\xfe{}",
        "{\"a\":\"\xc3\"}",
    };
    int nbad = (int)(sizeof(bad) / sizeof(*bad));
    for (int i = 0; i < nbad; i++)
        st_event(st, "stream.started", bad[i]);
    st_event(st, "stream.started", NULL);
    st_event(st, "bad\r\ntype", "{}");
    st_event(st, "", "{}");
    st_event(st, NULL, "{}");
    /* random bytes */
    unsigned int seed = 1234;
    for (int i = 0; i < 200; i++) {
        char b[64];
        for (size_t k = 0; k < sizeof(b) - 1; k++)
            b[k] = (char)(1 + rand_r(&seed) % 255);
        b[sizeof(b) - 1] = '\0';
        b[0] = '['; /* never an object */
        st_event(st, "stream.started", b);
    }
    /* oversized */
    size_t big = 200000;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    st_event(st, "stream.started", huge);
    free(huge);

    st_stats_t ss;
    st_get_stats(st, &ss);
    ck_assert_int_eq(ss.hooks_dropped, nbad + 4 + 200 + 1);
    /* a good one still goes through, and nothing else did */
    st_event(st, "stream.started", "{\"ok\":true}");
    ck_assert_int_eq(wait_stat(0, 1, 10000), 1);
    usleep(200000);
    ck_assert_int_eq(srv_count(s), 1);
    st_close(&st);
    srv_stop(s);
}
END_TEST

/* ---- on_publish -------------------------------------------------------- */

static void on_publish_to(int port)
{
    snprintf(cfg.on_publish_url, sizeof(cfg.on_publish_url),
             "http://127.0.0.1:%d/auth", port);
}

START_TEST(on_publish_none)
{
    cfg.on_publish_url[0] = '\0';
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), 0);
}
END_TEST

START_TEST(on_publish_allowed)
{
    srv_t *s = srv_start(NULL, 0, 200);
    on_publish_to(s->port);
    ck_assert_int_eq(
        st_on_publish(st, "live/cam?key=SEKRIT", "127.0.0.1:5555"), 0);
    ck_assert_int_eq(srv_count(s), 1);
    req_t *r = &s->req[0];
    ck_assert(strncmp(r->head, "POST /auth HTTP/1.1", 19) == 0);
    json_t *j = json_loads(r->body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "stream")),
                     "live/cam");
    ck_assert_str_eq(json_string_value(json_object_get(j, "peer")),
                     "127.0.0.1:5555");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "time")));
    json_decref(j);
    ck_assert_ptr_null(strstr(r->body, "SEKRIT"));
    ck_assert_ptr_null(strstr(r->head, "SEKRIT"));
    char v[64];
    ck_assert(header(r->head, "Content-Type", v, sizeof(v)));
    ck_assert_str_eq(v, "application/json");
    ck_assert(!header(r->head, "X-Podium-Signature", v, sizeof(v)));
    srv_stop(s);
}
END_TEST

START_TEST(on_publish_refused)
{
    int script[] = {403, 500, 302};
    srv_t *s = srv_start(script, 3, 403);
    on_publish_to(s->port);
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), PD_EPERM);
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), PD_EPERM);
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), PD_EPERM);
    ck_assert_int_eq(srv_count(s), 3);
    srv_stop(s);
    on_publish_to(dead_port());
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), PD_EPERM);
}
END_TEST

START_TEST(on_publish_timeout)
{
    srv_t *s = srv_start(NULL, 0, 0); /* never answers */
    on_publish_to(s->port);
    cfg.on_publish_timeout_ms = 300;
    int64_t t0 = pd_mono_us();
    ck_assert_int_eq(st_on_publish(st, "live/a", "127.0.0.1:1"), PD_EPERM);
    int64_t took = pd_mono_us() - t0;
    ck_assert_msg(took >= 250000 && took < 5000000, "took %lld us",
                  (long long)took);
    srv_stop(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("hooks");
    TCase *tc = tcase_create("sign");
    tcase_add_test(tc, sign_vector);
    tcase_add_test(tc, sign_known_answer);
    suite_add_tcase(su, tc);

    tc = tcase_create("hooks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hook_crud);
    tcase_add_test(tc, hook_create_hostile);
    tcase_add_test(tc, delivered_signed);
    tcase_add_test(tc, subscription_filter);
    tcase_add_test(tc, retried_then_delivered);
    tcase_add_test(tc, gives_up_after_retries);
    tcase_add_test(tc, gives_up_listener_down);
    tcase_add_test(tc, queue_bounded_and_stop_bounded);
    tcase_add_test(tc, queue_bounded_listener_down);
    tcase_add_test(tc, hostile_events);
    tcase_add_test(tc, on_publish_none);
    tcase_add_test(tc, on_publish_allowed);
    tcase_add_test(tc, on_publish_refused);
    tcase_add_test(tc, on_publish_timeout);
    suite_add_tcase(su, tc);

    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
