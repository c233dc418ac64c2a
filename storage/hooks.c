/*
 * storage/hooks.c - webhooks: subscriptions (table hooks), the bounded
 * delivery queue and its worker thread, signatures, and the synchronous
 * on_publish hook.
 *
 * Invariants:
 * - st->q is a ring of ST_HOOK_QUEUE deliveries (qhead, qn), guarded by
 *   st->hlock. st_event() only appends at the tail; only the worker
 *   removes (and frees) entries, so the slot the worker is sending from
 *   stays put while it sends with hlock released.
 * - A full queue drops the new event (counted in st->dropped, one log line
 *   per 100 drops); st_event() never blocks on the network and never waits
 *   for the worker beyond the short hlock critical section.
 * - A delivery is tried once, then retried after backoff, 2*backoff, ...
 *   16*backoff (backoff = st->backoff_ms, default 1000 ms): six attempts,
 *   then it is given up (st->failed, one log line with the URL's host and
 *   the event type). Secrets are never logged.
 * - st_hooks_stop() gives the pending deliveries at most 1 s in total (each
 *   is tried once more, no back-off), then discards the rest.
 * - The worker owns one curl easy handle inside one multi handle, so a
 *   transfer in progress notices a stop request within 100 ms.
 */
#include "st_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_URL_MAX 511       /* bytes, without the NUL */
#define HOOK_SECRET_MAX 255    /* bytes */
#define HOOK_BODY_MAX 16384    /* bytes of an event's JSON object: with
                                  the queue, bounds memory to ~16 MiB */
#define HOOK_RETRIES 5         /* after the first attempt */
#define HOOK_TIMEOUT_MS 5000L
#define HOOK_CONNECT_MS 2000L
#define HOOK_DRAIN_US 1000000  /* st_hooks_stop's total budget */
#define HOOK_POLL_MS 100       /* stop-check granularity during a send */
#define SIG_MAX 128            /* our own signature buffers */

static const char *const known_events[] = {
    "stream.started", "stream.ended", "recording.ready",
};

/* ---- curl_global_init, once per process ------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_once_rc;

static void curl_init_once(void)
{
    curl_once_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK
                       ? 0 : PD_ERR;
}

static int curl_ready(void)
{
    pthread_once(&curl_once, curl_init_once);
    return curl_once_rc;
}

/* ---- small helpers ---------------------------------------------------- */

/* "2024-05-01T12:00:00.123Z" for wallclock microseconds; out >= 32. */
static void iso_time(int64_t wall_us, char *out, size_t outlen)
{
    time_t s = (time_t)(wall_us / 1000000);
    int ms = (int)((wall_us / 1000) % 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, outlen, "1970-01-01T00:00:00.000Z");
        return;
    }
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, ms);
}

static bool event_known(const char *e, size_t len)
{
    for (size_t i = 0; i < sizeof(known_events) / sizeof(*known_events);
         i++)
        if (strlen(known_events[i]) == len &&
            memcmp(known_events[i], e, len) == 0)
            return true;
    return false;
}

/* An event type goes into a header: [a-z0-9._-], 1..31 bytes. */
static bool type_ok(const char *type)
{
    size_t n = 0;
    for (; type[n]; n++) {
        unsigned char c = (unsigned char)type[n];
        if (n >= 31 || !(islower(c) || isdigit(c) || c == '.' || c == '_' ||
                         c == '-'))
            return false;
    }
    return n > 0;
}

/* events: "*" or a comma-separated list of known names, no blanks. */
static bool events_ok(const char *events)
{
    size_t len = strnlen(events, 128);
    if (len == 0 || len >= 128)
        return false;
    if (strcmp(events, "*") == 0)
        return true;
    const char *p = events;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (!event_known(p, n))
            return false;
        if (!c)
            return true;
        p = c + 1;
    }
}

/* Does subscription list `events` want `type`? */
static bool events_match(const char *events, const char *type)
{
    if (strcmp(events, "*") == 0)
        return true;
    size_t tl = strlen(type);
    const char *p = events;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == tl && memcmp(p, type, n) == 0)
            return true;
        if (!c)
            return false;
        p = c + 1;
    }
}

static bool url_ok(const char *url)
{
    size_t len = strnlen(url, HOOK_URL_MAX + 1);
    if (len > HOOK_URL_MAX)
        return false;
    size_t skip;
    if (strncmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    if (len == skip || url[skip] == '/')
        return false; /* no host */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* The URL's host only, for logs (never the path or query, which may carry
 * a token). */
static void url_host(const char *url, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    CURLU *u = curl_url();
    if (!u)
        return;
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
        snprintf(out, outlen, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

static void delivery_id(char out[33])
{
    static atomic_llong fallback;
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) == 1) {
        for (int i = 0; i < 16; i++)
            snprintf(out + 2 * i, 3, "%02x", r[i]);
    } else {
        snprintf(out, 33, "%016" PRIx64 "%016llx", (uint64_t)pd_wall_us(),
                 (unsigned long long)atomic_fetch_add(&fallback, 1));
    }
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Options every request of ours shares. */
static void common_opts(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "podium");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
}

/* ---- signatures ------------------------------------------------------- */

int st_sign(const char *secret, int64_t t, const char *body, size_t len,
            char *out, size_t outlen)
{
    if (!secret || (!body && len) || !out || t < 0)
        return PD_EINVAL;
    char ts[24];
    int tn = snprintf(ts, sizeof(ts), "%" PRId64 ".", t);
    /* "t=" <digits> ",v1=" <64 hex> NUL */
    size_t need = 2 + (size_t)(tn - 1) + 4 + 64 + 1;
    if (outlen < need)
        return PD_EINVAL;

    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    int ok = 0;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    if (c) {
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest,
                                             0),
            OSSL_PARAM_construct_end(),
        };
        /* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer. */
        static const unsigned char empty[1];
        size_t kl = strlen(secret);
        ok = EVP_MAC_init(c, kl ? (const unsigned char *)secret : empty, kl,
                          params) == 1 &&
             EVP_MAC_update(c, (const unsigned char *)ts, (size_t)tn) == 1 &&
             (len == 0 ||
              EVP_MAC_update(c, (const unsigned char *)body, len) == 1) &&
             EVP_MAC_final(c, mac, &maclen, sizeof(mac)) == 1 &&
             maclen == 32;
    }
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    if (!ok)
        return PD_ERR;

    int n = snprintf(out, outlen, "t=%" PRId64 ",v1=", t);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + n + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

/* ---- subscriptions ---------------------------------------------------- */

int st_hook_create(st_t *st, const char *url, const char *events,
                   const char *secret, int64_t *id)
{
    if (!st || !url || !events || !secret || !id)
        return PD_EINVAL;
    size_t sl = strnlen(secret, HOOK_SECRET_MAX + 1);
    if (!url_ok(url) || !events_ok(events) || sl == 0 ||
        sl > HOOK_SECRET_MAX)
        return PD_EINVAL;

    int rc = PD_EIO;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO hooks(url, events, secret, "
                           "created_us) VALUES (?, ?, ?, ?)",
                           -1, &s, NULL) == SQLITE_OK &&
        sqlite3_bind_text(s, 1, url, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 2, events, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(s, 3, secret, (int)sl, SQLITE_STATIC) ==
            SQLITE_OK &&
        sqlite3_bind_int64(s, 4, pd_wall_us()) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_DONE) {
        *id = sqlite3_last_insert_rowid(st->db);
        rc = 0;
    } else {
        PD_LOGE(ST_MOD, "hook create: %s", sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void hook_row(sqlite3_stmt *s, void *elem)
{
    st_hook_t *h = elem;
    h->id = sqlite3_column_int64(s, 0);
    st_copy_col(s, 1, h->url, sizeof(h->url));
    st_copy_col(s, 2, h->events, sizeof(h->events));
    h->created_us = sqlite3_column_int64(s, 3);
}

int st_hook_list(st_t *st, st_hook_t **out, int *n)
{
    if (!out)
        return PD_EINVAL;
    void *v = NULL;
    int rc = st_select_all(st,
                           "SELECT id, url, events, created_us FROM hooks "
                           "ORDER BY id",
                           -1, "webhooks", sizeof(st_hook_t), hook_row, &v, n);
    *out = v;
    return rc;
}

int st_hook_delete(st_t *st, int64_t id)
{
    if (!st)
        return PD_EINVAL;
    int rc = PD_EIO;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    if (sqlite3_prepare_v2(st->db, "DELETE FROM hooks WHERE id = ?", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_int64(s, 1, id) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_DONE)
        rc = sqlite3_changes(st->db) > 0 ? 0 : PD_ENOENT;
    else
        PD_LOGE(ST_MOD, "hook delete: %s", sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- the queue -------------------------------------------------------- */

static void delivery_free(st_delivery_t *d)
{
    free(d->url);
    free(d->body);
    if (d->secret) {
        OPENSSL_cleanse(d->secret, strlen(d->secret));
        free(d->secret);
    }
    memset(d, 0, sizeof(*d));
}

/* Counts one dropped event; logs the 1st, 101st, ... Any thread. */
static void count_drop(st_t *st, const char *why, const char *type)
{
    long long n = atomic_fetch_add(&st->dropped, 1) + 1;
    if (n % 100 == 1)
        PD_LOGW(ST_MOD, "webhook event %s dropped (%s); %lld dropped so far",
                type, why, n);
}

/* A matching subscription, copied out of sqlite. */
typedef struct match_s {
    int64_t id;
    char *url, *secret;
} match_t;

void st_event(st_t *st, const char *type, const char *json_object)
{
    if (!st)
        return;
    if (!type || !type_ok(type)) {
        count_drop(st, "bad event type", "?");
        return;
    }
    size_t jl = json_object ? strnlen(json_object, HOOK_BODY_MAX + 1) : 0;
    if (!json_object || jl > HOOK_BODY_MAX) {
        count_drop(st, "missing or oversized body", type);
        return;
    }
    json_t *obj = json_loadb(json_object, jl, JSON_REJECT_DUPLICATES, NULL);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        count_drop(st, "not a JSON object", type);
        return;
    }
    char ts[32];
    iso_time(pd_wall_us(), ts, sizeof(ts));
    json_object_set_new(obj, "event", json_string(type));
    json_object_set_new(obj, "time", json_string(ts));
    char *body = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!body) {
        count_drop(st, "out of memory", type);
        return;
    }
    size_t blen = strlen(body);

    /* Subscriptions that want it (few; read on each event). */
    match_t *m = NULL;
    int mn = 0, mcap = 0;
    bool oom = false;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id, url, events, secret FROM hooks "
                           "ORDER BY id",
                           -1, &s, NULL) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *u = (const char *)sqlite3_column_text(s, 1);
            const char *e = (const char *)sqlite3_column_text(s, 2);
            const char *k = (const char *)sqlite3_column_text(s, 3);
            if (!u || !e || !k || !events_match(e, type))
                continue;
            if (mn == mcap) {
                int nc = mcap ? mcap * 2 : 4;
                match_t *nm = realloc(m, (size_t)nc * sizeof(*nm));
                if (!nm) {
                    oom = true;
                    break;
                }
                m = nm;
                mcap = nc;
            }
            m[mn].id = sqlite3_column_int64(s, 0);
            m[mn].url = strdup(u);
            m[mn].secret = strdup(k);
            mn++;
        }
    } else {
        PD_LOGE(ST_MOD, "event %s: hooks query: %s", type,
                sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    if (oom)
        count_drop(st, "out of memory", type);

    int64_t now = pd_mono_us();
    for (int i = 0; i < mn; i++) {
        st_delivery_t d = {.hook_id = m[i].id,
                           .url = m[i].url,
                           .secret = m[i].secret,
                           .body = strdup(body),
                           .len = blen,
                           .next_us = now};
        snprintf(d.event, sizeof(d.event), "%s", type);
        delivery_id(d.id);
        if (!d.url || !d.secret || !d.body) {
            delivery_free(&d);
            count_drop(st, "out of memory", type);
            continue;
        }
        bool queued = false;
        pthread_mutex_lock(&st->hlock);
        if (st->hrunning && !st->hstop && st->qn < ST_HOOK_QUEUE) {
            st->q[(st->qhead + st->qn) % ST_HOOK_QUEUE] = d;
            st->qn++;
            queued = true;
            pthread_cond_signal(&st->hcond);
        }
        pthread_mutex_unlock(&st->hlock);
        if (!queued) {
            delivery_free(&d);
            count_drop(st, "queue full", type);
        }
    }
    free(m);
    free(body);
}

/* Removes the entry k places after the head, keeping the others' order.
 * Caller holds hlock; only the worker calls it. */
static void queue_remove(st_t *st, int k)
{
    st_delivery_t *q = st->q;
    delivery_free(&q[(st->qhead + k) % ST_HOOK_QUEUE]);
    for (int j = k; j > 0; j--)
        q[(st->qhead + j) % ST_HOOK_QUEUE] =
            q[(st->qhead + j - 1) % ST_HOOK_QUEUE];
    memset(&q[st->qhead], 0, sizeof(*q));
    st->qhead = (st->qhead + 1) % ST_HOOK_QUEUE;
    st->qn--;
}

/* ---- the worker ------------------------------------------------------- */

typedef struct worker_s {
    st_t *st;
    CURLM *multi;
    CURL *easy;
    int64_t drain_until; /* monotonic us; 0 = not stopping */
} worker_t;

/* Notices a stop request (starting the drain clock); true when the current
 * work must be abandoned because the drain budget is spent. */
static bool worker_out_of_time(worker_t *w)
{
    if (!w->drain_until) {
        pthread_mutex_lock(&w->st->hlock);
        bool stop = w->st->hstop;
        pthread_mutex_unlock(&w->st->hlock);
        if (stop)
            w->drain_until = pd_mono_us() + HOOK_DRAIN_US;
    }
    return w->drain_until && pd_mono_us() >= w->drain_until;
}

/* POSTs d once; returns the HTTP status, or 0 (no answer, error, or
 * abandoned). Runs on the worker without hlock; d's strings are borrowed
 * (the slot is not freed while we send). */
static long deliver(worker_t *w, const st_delivery_t *d)
{
    if (!w->multi || !w->easy)
        return 0;
    char sig[SIG_MAX];
    if (st_sign(d->secret, pd_wall_us() / 1000000, d->body, d->len, sig,
                sizeof(sig)) != 0)
        return 0;
    char hsig[SIG_MAX + 32], hev[80], hid[80];
    snprintf(hsig, sizeof(hsig), "X-Podium-Signature: %s", sig);
    snprintf(hev, sizeof(hev), "X-Podium-Event: %s", d->event);
    snprintf(hid, sizeof(hid), "X-Podium-Delivery: %s", d->id);
    struct curl_slist *hd = NULL, *t;
    const char *lines[] = {"Content-Type: application/json", hev, hid, hsig,
                           "Expect:"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
        t = curl_slist_append(hd, lines[i]);
        if (!t) {
            curl_slist_free_all(hd);
            return 0;
        }
        hd = t;
    }
    CURL *h = w->easy;
    curl_easy_setopt(h, CURLOPT_URL, d->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->len);

    long status = 0;
    bool done = false;
    CURLcode res = CURLE_OPERATION_TIMEDOUT;
    if (curl_multi_add_handle(w->multi, h) == CURLM_OK) {
        for (;;) {
            int running = 0;
            if (curl_multi_perform(w->multi, &running) != CURLM_OK)
                break;
            CURLMsg *msg;
            int left;
            while ((msg = curl_multi_info_read(w->multi, &left)))
                if (msg->msg == CURLMSG_DONE) {
                    res = msg->data.result;
                    done = true;
                }
            if (done || !running || worker_out_of_time(w))
                break;
            curl_multi_poll(w->multi, NULL, 0, HOOK_POLL_MS, NULL);
        }
        curl_multi_remove_handle(w->multi, h);
    }
    if (done && res == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hd);
    return status;
}

static worker_t *worker_new(st_t *st)
{
    worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->st = st;
    w->multi = curl_multi_init();
    w->easy = curl_easy_init();
    if (!w->multi || !w->easy) {
        curl_easy_cleanup(w->easy);
        curl_multi_cleanup(w->multi);
        free(w);
        return NULL;
    }
    common_opts(w->easy);
    curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, HOOK_TIMEOUT_MS);
    curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, HOOK_CONNECT_MS);
    return w;
}

static void worker_free(worker_t *w)
{
    if (!w)
        return;
    curl_easy_cleanup(w->easy);
    curl_multi_cleanup(w->multi);
    free(w);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    st_t *st = w->st;
    pthread_mutex_lock(&st->hlock);
    for (;;) {
        pthread_mutex_unlock(&st->hlock);
        bool out_of_time = worker_out_of_time(w);
        pthread_mutex_lock(&st->hlock);
        if (out_of_time)
            break;
        int64_t now = pd_mono_us();
        int k = -1;
        int64_t next = now + 1000000; /* every wait has a timeout */
        /* first attempts before retries: a subscriber that does not
         * answer (its retries come due again and again) must not starve
         * the others */
        for (int pass = 0; pass < 2 && k < 0; pass++)
            for (int i = 0; i < st->qn; i++) {
                const st_delivery_t *d =
                    &st->q[(st->qhead + i) % ST_HOOK_QUEUE];
                if ((pass == 0) != (d->attempts == 0))
                    continue;
                if (w->drain_until || d->next_us <= now) {
                    k = i;
                    break;
                }
                if (d->next_us < next)
                    next = d->next_us;
            }
        if (k < 0) {
            if (w->drain_until || st->hstop)
                break; /* stopping and nothing left */
            struct timespec ts = {.tv_sec = next / 1000000,
                                  .tv_nsec = (next % 1000000) * 1000};
            pthread_cond_timedwait(&st->hcond, &st->hlock, &ts);
            continue;
        }
        st_delivery_t d = st->q[(st->qhead + k) % ST_HOOK_QUEUE];
        pthread_mutex_unlock(&st->hlock);
        long status = deliver(w, &d);
        bool ok = status >= 200 && status < 300;
        pthread_mutex_lock(&st->hlock);
        st_delivery_t *slot = &st->q[(st->qhead + k) % ST_HOOK_QUEUE];
        slot->attempts++;
        if (ok) {
            atomic_fetch_add(&st->sent, 1);
            queue_remove(st, k);
        } else if (w->drain_until) {
            atomic_fetch_add(&st->failed, 1); /* summed up below */
            queue_remove(st, k);
        } else if (slot->attempts > HOOK_RETRIES) {
            char host[256];
            url_host(slot->url, host, sizeof(host));
            PD_LOGW(ST_MOD,
                    "webhook %s to %s (hook %" PRId64 ") failed after %d "
                    "attempts, last status %ld; giving up",
                    slot->event, host, slot->hook_id, slot->attempts, status);
            atomic_fetch_add(&st->failed, 1);
            queue_remove(st, k);
        } else {
            int64_t base = st->backoff_ms > 0 ? st->backoff_ms : 1000;
            slot->next_us = pd_mono_us() +
                            base * 1000 * ((int64_t)1 << (slot->attempts - 1));
        }
    }
    /* Stopping: whatever is left is abandoned. */
    int left = st->qn;
    while (st->qn > 0)
        queue_remove(st, 0);
    pthread_mutex_unlock(&st->hlock);
    if (left > 0) {
        atomic_fetch_add(&st->failed, left);
        PD_LOGW(ST_MOD, "shutdown: %d webhook deliveries abandoned", left);
    }
    worker_free(w); /* the thread owns its context */
    return NULL;
}

int st_hooks_start(st_t *st)
{
    if (!st || st->hrunning)
        return PD_EINVAL;
    if (curl_ready() != 0)
        return PD_ERR;
    st->q = calloc(ST_HOOK_QUEUE, sizeof(*st->q));
    if (!st->q)
        return PD_ENOMEM;
    st->qhead = st->qn = 0;
    st->hstop = false;
    pthread_condattr_t ca;
    bool mutex = false, cond = false;
    worker_t *w = NULL; /* owned by the thread once it runs */
    if (pthread_mutex_init(&st->hlock, NULL) != 0)
        goto fail;
    mutex = true;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cond = pthread_cond_init(&st->hcond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cond)
        goto fail;
    w = worker_new(st);
    if (!w)
        goto fail;
    st->hrunning = true; /* before the thread runs: st_event may queue */
    if (pthread_create(&st->hthread, NULL, worker_main, w) != 0) {
        st->hrunning = false;
        goto fail;
    }
    return 0;
fail:
    worker_free(w);
    if (cond)
        pthread_cond_destroy(&st->hcond);
    if (mutex)
        pthread_mutex_destroy(&st->hlock);
    free(st->q);
    st->q = NULL;
    return PD_ENOMEM;
}

void st_hooks_stop(st_t *st)
{
    if (!st || !st->hrunning)
        return;
    pthread_mutex_lock(&st->hlock);
    st->hstop = true;
    pthread_cond_broadcast(&st->hcond);
    pthread_mutex_unlock(&st->hlock);
    pthread_join(st->hthread, NULL);
    while (st->qn > 0) /* the worker empties it; belt and braces */
        queue_remove(st, 0);
    pthread_mutex_lock(&st->hlock);
    st->hrunning = false;
    pthread_mutex_unlock(&st->hlock);
    pthread_cond_destroy(&st->hcond);
    pthread_mutex_destroy(&st->hlock);
    free(st->q);
    st->q = NULL;
}

void st_get_stats(st_t *st, st_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!st)
        return;
    out->hooks_sent = atomic_load(&st->sent);
    out->hooks_failed = atomic_load(&st->failed);
    out->hooks_dropped = atomic_load(&st->dropped);
    if (st->hrunning) {
        pthread_mutex_lock(&st->hlock);
        out->hooks_queued = st->qn;
        pthread_mutex_unlock(&st->hlock);
    }
}

/* ---- on_publish --------------------------------------------------------- */

int st_on_publish(st_t *st, const char *stream, const char *peer)
{
    if (!st || !st->cfg || st->cfg->on_publish_url[0] == '\0')
        return 0;
    if (!stream)
        return PD_EPERM;
    /* The name only: a query string (?key=...) is neither sent nor logged. */
    char name[256];
    size_t nl = strcspn(stream, "?");
    snprintf(name, sizeof(name), "%.*s",
             (int)(nl < sizeof(name) ? nl : sizeof(name) - 1), stream);
    char ts[32];
    iso_time(pd_wall_us(), ts, sizeof(ts));
    /* Invalid UTF-8 makes json_pack fail: refused below (fail closed). */
    json_t *obj = json_pack("{s:s, s:s, s:s}", "stream", name, "peer",
                            peer ? peer : "", "time", ts);
    char *body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    CURL *h = NULL;
    struct curl_slist *hd = NULL;
    long status = 0;
    CURLcode res = CURLE_FAILED_INIT;
    if (body && curl_ready() == 0 && (h = curl_easy_init()) != NULL) {
        long tmo = st->cfg->on_publish_timeout_ms > 0
                       ? st->cfg->on_publish_timeout_ms : 2000;
        struct curl_slist *t;
        hd = curl_slist_append(NULL, "Content-Type: application/json");
        if (hd && (t = curl_slist_append(hd, "X-Podium-Event: "
                                             "stream.publish")) != NULL)
            hd = t;
        if (hd && (t = curl_slist_append(hd, "Expect:")) != NULL)
            hd = t;
        common_opts(h);
        curl_easy_setopt(h, CURLOPT_URL, st->cfg->on_publish_url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)strlen(body));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo);
        res = curl_easy_perform(h);
        if (res == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    free(body);
    bool ok = status >= 200 && status < 300;
    for (char *p = name; *p; p++) /* logs stay one line */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    if (ok)
        PD_LOGI(ST_MOD, "on_publish %s from %s: HTTP %ld, allowed", name,
                peer ? peer : "?", status);
    else if (res != CURLE_OK)
        PD_LOGW(ST_MOD, "on_publish %s from %s: %s, refused", name,
                peer ? peer : "?",
                res == CURLE_FAILED_INIT ? "cannot build the request"
                                         : curl_easy_strerror(res));
    else
        PD_LOGW(ST_MOD, "on_publish %s from %s: HTTP %ld, refused", name,
                peer ? peer : "?", status);
    return ok ? 0 : PD_EPERM;
}
