/*
 * packager/registry.c - the stream registry, the read side and waiters.
 *
 * Streams live in a small array under pkg->lock, refcounted (the registry
 * holds one reference, a publisher one, a lookup one for its duration).
 * States: LIVE -> (publisher leaves) GRACE -> (grace_period_ms) ENDED ->
 * (linger_ms) removed. A publish during GRACE continues the same stream;
 * a publish on an ENDED name replaces it.
 *
 * Object URLs are immutable for a day, so a name published again must
 * never reuse one: a new stream's first MSN is max(1, wallclock ms /
 * segment target) and above the last MSN (and the hinted one) of any
 * earlier stream of that name still remembered: the one it replaces, or
 * one of the last PKG_TOMBS removed (by name hash; a collision only makes
 * the numbers larger). Init sections are named by MSN (writer.c).
 *
 * Waiters: one malloc per registered waiter, on a per-rendition list (the
 * multivariant's on a per-stream list), so a publication scans only its
 * own rendition's waiters. Waking unlinks under the stream lock into a
 * local list and calls the callbacks after unlocking: each exactly once,
 * never with a packager lock held. The housekeeping thread (every 50 ms)
 * times waiters out and advances stream states. The total number of
 * waiters is bounded by cfg->max_waiters.
 *
 * Lookup rules follow draft-pantos-hls-rfc8216bis 6.2.5.2 (see
 * pkg_lookup below). Content types: playlists
 * application/vnd.apple.mpegurl; init, parts and segments video/mp4 or
 * audio/mp4 by rendition (RFC 6381 types also valid for .m4s).
 */
#include "pkg_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CT_M3U8[] = "application/vnd.apple.mpegurl";
static const char CT_VIDEO[] = "video/mp4";
static const char CT_AUDIO[] = "audio/mp4";

/* ---- waiters ---------------------------------------------------------- */

static void w_unlink(pkg_waiter_t *w)
{
    if (!w->head)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        *w->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->head = NULL;
}

static void w_link(pkg_waiter_t **head, pkg_waiter_t *w)
{
    w->head = head;
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
}

void pkg_waiters_collect(pkg_stream_t *s, pkg_rend_t *r, pkg_waiter_t **list,
                         pkg_wake_t why, bool all, pkg_waiter_t **out)
{
    pkg_waiter_t *w = *list;
    while (w) {
        pkg_waiter_t *next = w->next;
        if (all || pkg_idx_waiter_ready(s, r, w)) {
            w_unlink(w);
            w->why = why;
            w->next = *out;
            *out = w;
        }
        w = next;
    }
}

static void collect_timeouts(pkg_waiter_t **list, int64_t now,
                             pkg_waiter_t **out)
{
    pkg_waiter_t *w = *list;
    while (w) {
        pkg_waiter_t *next = w->next;
        if (w->deadline_us <= now) {
            w_unlink(w);
            w->why = PKG_WAKE_TIMEOUT;
            w->next = *out;
            *out = w;
        }
        w = next;
    }
}

static void collect_stream(pkg_stream_t *s, pkg_wake_t why,
                           pkg_waiter_t **out)
{
    for (int i = 0; i < s->nrends; i++)
        pkg_waiters_collect(s, s->rends[i], &s->rends[i]->waiters, why, true,
                            out);
    pkg_waiters_collect(s, NULL, &s->mv_waiters, why, true, out);
}

void pkg_waiters_fire(pkg_t *pkg, pkg_waiter_t *w)
{
    while (w) {
        pkg_waiter_t *next = w->next;
        w->wake(w->opaque, w->why);
        atomic_fetch_sub(&pkg->nwaiters, 1);
        free(w);
        w = next;
    }
}

/* ---- streams ---------------------------------------------------------- */

static void stream_unref(pkg_stream_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int i = 0; i < s->nrends; i++)
        pkg_rend_free(s->rends[i]);
    for (int m = 0; m < 2; m++)
        free(s->decl_extra[m]);
    free(s->src_aextra);
    pd_buf_unref(&s->mv);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static pkg_stream_t *find_locked(pkg_t *pkg, const char *name)
{
    for (int i = 0; i < pkg->nstreams; i++)
        if (strcmp(pkg->streams[i]->name, name) == 0)
            return pkg->streams[i];
    return NULL;
}

static void remove_locked(pkg_t *pkg, pkg_stream_t *s)
{
    for (int i = 0; i < pkg->nstreams; i++) {
        if (pkg->streams[i] == s) {
            memmove(&pkg->streams[i], &pkg->streams[i + 1],
                    (size_t)(pkg->nstreams - i - 1) * sizeof(s));
            pkg->nstreams--;
            return;
        }
    }
}

static bool name_ok(const char *name)
{
    size_t n = name ? strnlen(name, PKG_NAME_MAX) : 0;
    if (n == 0 || n >= PKG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '?' ||
            c == '#' || c == '%')
            return false;
    }
    return true;
}

static uint64_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Highest MSN a stream used or advertised (its hint). Stream lock. */
static int64_t last_used_msn(const pkg_stream_t *s)
{
    int64_t m = s->next_msn;
    for (int i = 0; i < s->nrends; i++) {
        const pkg_rend_t *r = s->rends[i];
        if (r->last_msn + 1 > m)
            m = r->last_msn + 1;
        if (r->cur && r->cur->msn > m)
            m = r->cur->msn;
        if (r->next_msn > m)
            m = r->next_msn;
    }
    return m;
}

/* Remembers a stream leaving the registry (pkg->lock held). */
static void tomb_add(pkg_t *pkg, pkg_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t last = last_used_msn(s);
    pthread_mutex_unlock(&s->lock);
    pkg->tombs[pkg->tomb_next].name_hash = name_hash(s->name);
    pkg->tombs[pkg->tomb_next].last_msn = last;
    pkg->tomb_next = (pkg->tomb_next + 1) % PKG_TOMBS;
    if (pkg->ntombs < PKG_TOMBS)
        pkg->ntombs++;
}

/* First MSN of a new stream named name (pkg->lock held). */
static int64_t first_msn(pkg_t *pkg, const char *name)
{
    int64_t now = pkg->msn_clock_ms ? pkg->msn_clock_ms() : 0;
    int64_t m = now > 0 ? now / pkg->cfg->segment_target_ms : 0;
    if (m < 1)
        m = 1;
    uint64_t h = name_hash(name);
    for (int i = 0; i < pkg->ntombs; i++)
        if (pkg->tombs[i].name_hash == h && pkg->tombs[i].last_msn >= m)
            m = pkg->tombs[i].last_msn + 1;
    return m;
}

static int64_t wall_ms(void)
{
    return pd_wall_us() / 1000;
}

static pkg_stream_t *stream_new(pkg_t *pkg, const char *name)
{
    pkg_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->lock, NULL)) {
        free(s);
        return NULL;
    }
    if (pthread_mutex_init(&s->wlock, NULL)) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    s->pkg = pkg;
    snprintf(s->name, sizeof(s->name), "%s", name);
    atomic_init(&s->refs, 1);
    s->state = PKG_LIVE;
    s->next_msn = first_msn(pkg, name);
    s->all_indep = true;
    s->rebase_next = true;
    s->disc_msn = -1;
    return s;
}

int pkg_publish(pkg_t *pkg, const char *name, const char *peer,
                pkg_stream_t **out)
{
    *out = NULL;
    if (!pkg || !name_ok(name))
        return PD_EINVAL;
    pkg_waiter_t *fire = NULL;
    pkg_stream_t *old = NULL;
    int rc = PD_OK;
    pthread_mutex_lock(&pkg->lock);
    if (atomic_load(&pkg->shut)) {
        rc = PD_ECLOSED;
        goto out;
    }
    pkg_stream_t *s = find_locked(pkg, name);
    if (s) {
        pthread_mutex_lock(&s->lock);
        if (s->publisher) {
            pthread_mutex_unlock(&s->lock);
            rc = PD_EEXIST;
            goto out;
        }
        if (s->state == PKG_GRACE) {
            s->state = PKG_LIVE;
            s->publisher = true;
            s->session++;
            snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "?");
            s->logged_reject = s->logged_rebase = false;
            pthread_mutex_unlock(&s->lock);
            atomic_fetch_add(&s->refs, 1);
            *out = s;
            PD_LOGI(PKG_MOD, "%s: publisher %s resumed the stream "
                    "(session %u)", name, s->peer, s->session + 1);
            goto out;
        }
        /* ended: a new stream replaces it */
        s->removed = true;
        collect_stream(s, PKG_WAKE_READY, &fire);
        pthread_mutex_unlock(&s->lock);
        remove_locked(pkg, s);
        tomb_add(pkg, s);
        old = s;
    }
    int limit = pkg->cfg->max_publishers * 4 + 16;
    if (pkg->nstreams >= limit) {
        rc = PD_ELIMIT;
        goto out;
    }
    if (pkg->nstreams == pkg->cap) {
        int ncap = pkg->cap ? pkg->cap * 2 : 16;
        pkg_stream_t **n = realloc(pkg->streams, (size_t)ncap * sizeof(*n));
        if (!n) {
            rc = PD_ENOMEM;
            goto out;
        }
        pkg->streams = n;
        pkg->cap = ncap;
    }
    s = stream_new(pkg, name);
    if (!s) {
        rc = PD_ENOMEM;
        goto out;
    }
    s->publisher = true;
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "?");
    atomic_fetch_add(&s->refs, 1); /* the publisher's */
    pkg->streams[pkg->nstreams++] = s;
    *out = s;
    PD_LOGI(PKG_MOD, "%s: publisher %s started the stream", name, s->peer);
out:
    pthread_mutex_unlock(&pkg->lock);
    pkg_waiters_fire(pkg, fire);
    stream_unref(old);
    return rc;
}

void pkg_unpublish(pkg_stream_t **sp)
{
    if (!sp || !*sp)
        return;
    pkg_stream_t *s = *sp;
    *sp = NULL;
    pkg_t *pkg = s->pkg;
    /* the transcoder first, with no lock held: its threads may be waiting
     * for the writer lock; nothing of it runs after this */
    pkg_tc_t *tc = NULL, *atc = NULL;
    pkg_writer_take_tc(s, &tc, &atc);
    pkg_tc_destroy(&tc);
    pkg_tc_destroy(&atc);
    pthread_mutex_lock(&s->wlock);
    pkg_writer_finish(s);
    pthread_mutex_unlock(&s->wlock);
    pkg_waiter_t *fire = NULL;
    pthread_mutex_lock(&s->lock);
    s->publisher = false;
    int64_t now = pd_mono_us();
    if (atomic_load(&pkg->shut) || pkg->cfg->grace_period_ms <= 0 ||
        s->state == PKG_ENDED) {
        if (s->state != PKG_ENDED) {
            s->state = PKG_ENDED;
            s->deadline_us = now + (int64_t)pkg->cfg->linger_ms * 1000;
        }
        pkg_idx_render_all(s);
        collect_stream(s, PKG_WAKE_READY, &fire);
        PD_LOGI(PKG_MOD, "%s: publisher %s left; stream ended", s->name,
                s->peer);
    } else {
        s->state = PKG_GRACE;
        s->deadline_us = now + (int64_t)pkg->cfg->grace_period_ms * 1000;
        pkg_idx_render_all(s);
        PD_LOGI(PKG_MOD, "%s: publisher %s left; waiting %d ms for it to "
                "come back", s->name, s->peer, pkg->cfg->grace_period_ms);
    }
    pthread_mutex_unlock(&s->lock);
    pkg_waiters_fire(pkg, fire);
    stream_unref(s);
}

/* ---- housekeeping ----------------------------------------------------- */

static void housekeep(pkg_t *pkg)
{
    pkg_waiter_t *fire = NULL;
    pkg_stream_t *dead[64];
    int ndead = 0;
    int64_t now = pd_mono_us();
    pthread_mutex_lock(&pkg->lock);
    for (int i = 0; i < pkg->nstreams; i++) {
        pkg_stream_t *s = pkg->streams[i];
        pthread_mutex_lock(&s->lock);
        for (int k = 0; k < s->nrends; k++)
            collect_timeouts(&s->rends[k]->waiters, now, &fire);
        collect_timeouts(&s->mv_waiters, now, &fire);
        if (s->state == PKG_GRACE && !s->publisher && now >= s->deadline_us) {
            s->state = PKG_ENDED;
            s->deadline_us = now + (int64_t)pkg->cfg->linger_ms * 1000;
            pkg_idx_render_all(s);
            collect_stream(s, PKG_WAKE_READY, &fire);
            PD_LOGI(PKG_MOD, "%s: grace period over; stream ended", s->name);
        } else if (s->state == PKG_ENDED && !s->publisher &&
                   now >= s->deadline_us && ndead < 64) {
            s->removed = true;
            collect_stream(s, PKG_WAKE_READY, &fire);
            dead[ndead++] = s;
            PD_LOGI(PKG_MOD, "%s: removed", s->name);
        }
        pthread_mutex_unlock(&s->lock);
    }
    for (int i = 0; i < ndead; i++) {
        remove_locked(pkg, dead[i]);
        tomb_add(pkg, dead[i]);
    }
    pthread_mutex_unlock(&pkg->lock);
    pkg_waiters_fire(pkg, fire);
    for (int i = 0; i < ndead; i++)
        stream_unref(dead[i]);
}

static void *hk_main(void *arg)
{
    pkg_t *pkg = arg;
    pthread_mutex_lock(&pkg->lock);
    while (!pkg->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&pkg->cond, &pkg->lock, &ts);
        if (pkg->stop)
            break;
        pthread_mutex_unlock(&pkg->lock);
        housekeep(pkg);
        pthread_mutex_lock(&pkg->lock);
    }
    pthread_mutex_unlock(&pkg->lock);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

int pkg_create(const pd_config_t *cfg, pkg_t **out)
{
    *out = NULL;
    if (!cfg || cfg->part_target_ms <= 0 || cfg->segment_target_ms <= 0)
        return PD_EINVAL;
    pkg_t *pkg = calloc(1, sizeof(*pkg));
    if (!pkg)
        return PD_ENOMEM;
    pkg->cfg = cfg;
    pkg->msn_clock_ms = wall_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&pkg->lock, NULL) ||
        pthread_cond_init(&pkg->cond, &ca)) {
        pthread_condattr_destroy(&ca);
        free(pkg);
        return PD_ERR;
    }
    pthread_condattr_destroy(&ca);
    atomic_init(&pkg->nwaiters, 0);
    atomic_init(&pkg->parts_published, 0);
    atomic_init(&pkg->last_publish_us, 0);
    atomic_init(&pkg->shut, false);
    if (pthread_create(&pkg->hk, NULL, hk_main, pkg)) {
        pthread_cond_destroy(&pkg->cond);
        pthread_mutex_destroy(&pkg->lock);
        free(pkg);
        return PD_ERR;
    }
    pkg->hk_running = true;
    *out = pkg;
    return PD_OK;
}

void pkg_shutdown(pkg_t *pkg)
{
    if (!pkg)
        return;
    pthread_mutex_lock(&pkg->lock);
    atomic_store(&pkg->shut, true);
    pkg->stop = true;
    pthread_cond_broadcast(&pkg->cond);
    bool join = pkg->hk_running;
    pkg->hk_running = false;
    pthread_mutex_unlock(&pkg->lock);
    if (join)
        pthread_join(pkg->hk, NULL);

    pkg_waiter_t *fire = NULL;
    pthread_mutex_lock(&pkg->lock);
    for (int i = 0; i < pkg->nstreams; i++) {
        pkg_stream_t *s = pkg->streams[i];
        pthread_mutex_lock(&s->lock);
        if (s->state != PKG_ENDED) {
            s->state = PKG_ENDED;
            pkg_idx_render_all(s);
        }
        collect_stream(s, PKG_WAKE_SHUTDOWN, &fire);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&pkg->lock);
    pkg_waiters_fire(pkg, fire);
}

void pkg_destroy(pkg_t **pp)
{
    if (!pp || !*pp)
        return;
    pkg_t *pkg = *pp;
    pkg_shutdown(pkg);
    for (int i = 0; i < pkg->nstreams; i++)
        stream_unref(pkg->streams[i]);
    free(pkg->streams);
    pthread_cond_destroy(&pkg->cond);
    pthread_mutex_destroy(&pkg->lock);
    free(pkg);
    *pp = NULL;
}

/* ---- read side -------------------------------------------------------- */

static pkg_stream_t *get_stream(pkg_t *pkg, const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&pkg->lock);
    pkg_stream_t *s = find_locked(pkg, name);
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&pkg->lock);
    return s;
}

static pkg_rend_t *rend_named(pkg_stream_t *s, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < s->nrends; i++)
        if (strcmp(s->rends[i]->name, name) == 0)
            return s->rends[i];
    return NULL;
}

/* Registers a waiter (stream lock held) or says why not. */
static int add_waiter(pkg_t *pkg, pkg_waiter_t **list, int kind, int64_t msn,
                      int64_t part, int64_t deadline_us, pkg_wake_pt wake,
                      void *opaque, pkg_answer_t *ans)
{
    if (!wake || atomic_load(&pkg->shut)) {
        ans->status = PKG_ANS_UNAVAILABLE;
        return PD_OK;
    }
    long n = atomic_fetch_add(&pkg->nwaiters, 1);
    if (n >= pkg->cfg->max_waiters) {
        atomic_fetch_sub(&pkg->nwaiters, 1);
        ans->status = PKG_ANS_UNAVAILABLE;
        return PD_ELIMIT;
    }
    pkg_waiter_t *w = calloc(1, sizeof(*w));
    if (!w) {
        atomic_fetch_sub(&pkg->nwaiters, 1);
        ans->status = PKG_ANS_UNAVAILABLE;
        return PD_ENOMEM;
    }
    w->wake = wake;
    w->opaque = opaque;
    w->deadline_us = deadline_us;
    w->kind = kind;
    w->msn = msn;
    w->part = part;
    w_link(list, w);
    ans->status = PKG_ANS_WAIT;
    return PD_OK;
}

static void answer(pkg_answer_t *ans, pd_buf_t *body, const char *ct)
{
    ans->status = PKG_ANS_OK;
    ans->body = pd_buf_ref(body);
    ans->content_type = ct;
}

/* Is the blocking request (msn, part) too far ahead (400)? */
static bool too_far(const pkg_t *pkg, const pkg_rend_t *r, int64_t msn,
                    int64_t part)
{
    if (msn > r->last_msn + 2)
        return true;
    if (part < 0)
        return false;
    if (part > 1000000)
        return true; /* and no overflow below */
    const pd_config_t *cfg = pkg->cfg;
    int64_t est = (cfg->segment_target_ms + cfg->part_target_ms - 1) /
                  cfg->part_target_ms;
    int64_t pm = r->pm, pn = r->pn;
    if (pm < 0) {
        pm = r->cur ? r->cur->msn : r->last_msn + 1;
        pn = -1;
    }
    int64_t d;
    if (msn == pm) {
        d = part - pn;
    } else if (msn > pm) {
        int64_t rest = est - 1 - pn;
        if (rest < 0)
            rest = 0;
        d = rest + (msn - pm - 1) * est + part + 1;
    } else {
        d = 0;
    }
    if (cfg->part_target_ms < 1000)
        return d * cfg->part_target_ms > 3000;
    return d > 3;
}

static int lookup_playlist(pkg_t *pkg, pkg_stream_t *s, pkg_rend_t *r,
                           const pkg_query_t *q, int64_t deadline_us,
                           pkg_wake_pt wake, void *opaque, pkg_answer_t *ans)
{
    bool ended = s->state == PKG_ENDED;
    if (q->hls_part >= 0 && q->hls_msn < 0) {
        ans->status = PKG_ANS_BAD_REQUEST;
        return PD_OK;
    }
    if (!r->pl_full) {
        if (ended) {
            ans->status = PKG_ANS_NOT_FOUND;
            return PD_OK;
        }
        return add_waiter(pkg, &r->waiters, PKG_W_CONTENT, 0, -1,
                          deadline_us, wake, opaque, ans);
    }
    if (ended) {
        answer(ans, r->pl_full, CT_M3U8);
        ans->ended = true;
        return PD_OK;
    }
    pd_buf_t *body = q->hls_skip && r->pl_delta ? r->pl_delta : r->pl_full;
    if (q->hls_msn < 0) {
        answer(ans, body, CT_M3U8);
        return PD_OK;
    }
    int64_t msn = q->hls_msn;
    int64_t part = q->hls_part < 0 ? -1 : q->hls_part;
    /* past the last part of a complete segment means (M+1, 0): before
     * any limit is applied */
    pkg_idx_normalise(r, &msn, &part);
    if (pkg_idx_playlist_ready(r, msn, part)) {
        answer(ans, body, CT_M3U8);
        ans->blocked = true;
        return PD_OK;
    }
    if (too_far(pkg, r, msn, part)) {
        ans->status = PKG_ANS_BAD_REQUEST;
        return PD_OK;
    }
    return add_waiter(pkg, &r->waiters, PKG_W_PLAYLIST, msn, part,
                      deadline_us, wake, opaque, ans);
}

int pkg_lookup(pkg_t *pkg, const pkg_query_t *q, int64_t deadline_us,
               pkg_wake_pt wake, void *opaque, pkg_answer_t *ans)
{
    if (!ans)
        return PD_EINVAL;
    memset(ans, 0, sizeof(*ans));
    ans->status = PKG_ANS_NOT_FOUND;
    if (!pkg || !q)
        return PD_EINVAL;
    pkg_stream_t *s = get_stream(pkg, q->stream);
    if (!s)
        return PD_OK;
    int rc = PD_OK;
    pthread_mutex_lock(&s->lock);
    if (s->removed)
        goto out;
    ans->target_duration_s = s->td_s;
    bool ended = s->state == PKG_ENDED;
    pkg_rend_t *r = NULL;
    if (q->obj != PKG_OBJ_MULTIVARIANT) {
        r = rend_named(s, q->rendition);
        if (!r)
            goto out;
    }
    const char *ct = r && r->media == PKG_MEDIA_AUDIO ? CT_AUDIO : CT_VIDEO;
    switch (q->obj) {
    case PKG_OBJ_MULTIVARIANT:
        if (s->mv)
            answer(ans, s->mv, CT_M3U8);
        else if (!ended)
            rc = add_waiter(pkg, &s->mv_waiters, PKG_W_MV, 0, -1,
                            deadline_us, wake, opaque, ans);
        ans->ended = ended && s->mv;
        break;
    case PKG_OBJ_PLAYLIST:
        rc = lookup_playlist(pkg, s, r, q, deadline_us, wake, opaque, ans);
        break;
    case PKG_OBJ_PART: {
        const pkg_seg_t *g = pkg_idx_find(r, q->msn);
        if (g && q->part >= 0 && q->part < g->nparts &&
            g->parts[q->part].buf) {
            answer(ans, g->parts[q->part].buf, ct);
            break;
        }
        int64_t hm, hp;
        if (r->cur && !r->cur->complete) {
            hm = r->cur->msn;
            hp = r->cur->nparts;
        } else {
            hm = r->last_msn + 1;
            hp = 0;
        }
        if (!ended && q->msn == hm && q->part == hp)
            rc = add_waiter(pkg, &r->waiters, PKG_W_PART, hm, hp,
                            deadline_us, wake, opaque, ans);
        break;
    }
    case PKG_OBJ_SEGMENT: {
        const pkg_seg_t *g = pkg_idx_find(r, q->msn);
        if (g && g->complete && g->buf)
            answer(ans, g->buf, ct);
        break;
    }
    case PKG_OBJ_INIT:
        for (int i = 0; i < r->ninits; i++)
            if (r->inits[i].id == q->init_id) {
                answer(ans, r->inits[i].buf, ct);
                break;
            }
        break;
    default:
        ans->status = PKG_ANS_BAD_REQUEST;
        break;
    }
out:
    pthread_mutex_unlock(&s->lock);
    stream_unref(s);
    return rc;
}

int64_t pkg_hold_limit_us(pkg_t *pkg, const char *stream)
{
    int64_t td_ms = pkg ? ((int64_t)pkg->cfg->segment_target_ms + 999) /
                              1000 * 1000
                        : 2000;
    pkg_stream_t *s = pkg ? get_stream(pkg, stream) : NULL;
    if (s) {
        pthread_mutex_lock(&s->lock);
        if (s->td_s > 0)
            td_ms = (int64_t)s->td_s * 1000;
        pthread_mutex_unlock(&s->lock);
        stream_unref(s);
    }
    return 3 * td_ms * 1000;
}

/* ---- JSON and stats --------------------------------------------------- */

typedef struct jb_s {
    char *p;
    size_t len, cap;
    bool oom;
} jb_t;

static void jb_put(jb_t *b, const char *str, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, str, n);
    b->len += n;
}

static void jb_str(jb_t *b, const char *s)
{
    jb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            jb_put(b, esc, 6);
        } else {
            jb_put(b, (const char *)&c, 1);
        }
    }
    jb_put(b, "\"", 1);
}

pd_buf_t *pkg_streams_json(pkg_t *pkg)
{
    static const char *states[] = {"live", "grace", "ended"};
    jb_t b = {0};
    jb_put(&b, "[", 1);
    pthread_mutex_lock(&pkg->lock);
    for (int i = 0; i < pkg->nstreams; i++) {
        pkg_stream_t *s = pkg->streams[i];
        pthread_mutex_lock(&s->lock);
        if (i)
            jb_put(&b, ",", 1);
        jb_put(&b, "{\"name\":", 8);
        jb_str(&b, s->name);
        jb_put(&b, ",\"state\":", 9);
        jb_str(&b, states[s->state]);
        char url[PKG_NAME_MAX + 32];
        snprintf(url, sizeof(url), "/%s/index.m3u8", s->name);
        jb_put(&b, ",\"url\":", 7);
        jb_str(&b, url);
        jb_put(&b, ",\"renditions\":[", 15);
        for (int k = 0; k < s->nrends; k++) {
            if (k)
                jb_put(&b, ",", 1);
            jb_str(&b, s->rends[k]->name);
        }
        /* rungs the transcoder gave up (gap segments) or drops frames of */
        static const char *const keys[2] = {"],\"shed\":[", "],\"dropping\":["};
        for (int t = 0; t < 2; t++) {
            jb_put(&b, keys[t], strlen(keys[t]));
            int n = 0;
            for (int k = 0; k < s->nrends; k++) {
                const pkg_rend_t *r = s->rends[k];
                if (t == 0 ? !r->shed : !r->dropping)
                    continue;
                if (n++)
                    jb_put(&b, ",", 1);
                jb_str(&b, r->name);
            }
        }
        jb_put(&b, "]}", 2);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&pkg->lock);
    jb_put(&b, "]", 1);
    pd_buf_t *out = b.oom ? NULL : pd_buf_from(b.p, b.len);
    free(b.p);
    return out;
}

int pkg_stream_describe(pkg_t *pkg, const char *name, char *codecs,
                        size_t csize, char *rends, size_t rsize)
{
    if (!pkg || !name || !codecs || !rends || !csize || !rsize)
        return PD_EINVAL;
    codecs[0] = rends[0] = '\0';
    size_t cl = 0, rl = 0;
    pthread_mutex_lock(&pkg->lock);
    pkg_stream_t *s = find_locked(pkg, name);
    if (!s) {
        pthread_mutex_unlock(&pkg->lock);
        return PD_ENOENT;
    }
    pthread_mutex_lock(&s->lock);
    for (int k = 0; k < s->nrends; k++) {
        const pkg_rend_t *r = s->rends[k];
        int n = snprintf(rends + rl, rsize - rl, "%s%s", rl ? "," : "",
                         r->name);
        if (n > 0 && (size_t)n < rsize - rl)
            rl += (size_t)n;
        if (!r->codecs[0])
            continue;
        /* each codec once, in rendition order */
        bool seen = false;
        for (const char *p = codecs; *p && !seen;) {
            size_t len = strcspn(p, ",");
            seen = len == strlen(r->codecs) && memcmp(p, r->codecs, len) == 0;
            p += len + (p[len] == ',');
        }
        if (seen)
            continue;
        n = snprintf(codecs + cl, csize - cl, "%s%s", cl ? "," : "",
                     r->codecs);
        if (n > 0 && (size_t)n < csize - cl)
            cl += (size_t)n;
        else
            codecs[cl] = '\0';
    }
    rends[rl] = '\0';
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&pkg->lock);
    return PD_OK;
}

void pkg_set_sink(pkg_t *pkg, const pkg_sink_t *sink)
{
    if (!pkg)
        return;
    if (sink)
        pkg->sink = *sink;
    else
        memset(&pkg->sink, 0, sizeof(pkg->sink));
}

void pkg_get_stats(pkg_t *pkg, pkg_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    if (!pkg)
        return;
    pthread_mutex_lock(&pkg->lock);
    st->streams = pkg->nstreams;
    pthread_mutex_unlock(&pkg->lock);
    st->waiters = atomic_load(&pkg->nwaiters);
    st->parts_published = atomic_load(&pkg->parts_published);
    st->last_publish_us = atomic_load(&pkg->last_publish_us);
}
