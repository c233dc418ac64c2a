/*
 * httpd/vodcache.c - rendered playlists of ended recordings.
 *
 * An ended recording never changes (only deletion, by the API or
 * retention, removes it), so its multivariant and media playlists are
 * rendered once from the catalogue and then served from memory: a long
 * recording's playlist costs milliseconds of database work and rendering
 * (about 95 ms for 24 hours of 2-s segments), which repeated requests
 * would otherwise pay each time. Entries carry storage's recording
 * generation (st_rec_generation(), bumped before and after any deletion,
 * read by httpd before it looks anything up): an entry made under an
 * older generation is never served and a request never caches what it
 * rendered if the generation moved meanwhile, so a deleted recording's
 * playlist cannot outlive it. (Recording ids are never reused either.) Bounded in entries and bytes,
 * least recently used first. Thread-safe (one mutex; lookups are a scan
 * of at most capacity entries).
 */
#include "httpd_int.h"

#include "../core/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pd_buf_t *buf; /* reference; NULL: free slot */
    int64_t id;
    char rendition[HTTPD_NAME_MAX + 1]; /* "" for the multivariant */
    uint64_t gen;
    uint64_t used; /* LRU clock */
} vod_entry_t;

struct httpd_vodcache_s {
    pthread_mutex_t lock;
    size_t cap, max_bytes, bytes;
    uint64_t clock;
    vod_entry_t *e;
};

int httpd_vodcache_create(size_t capacity, size_t max_bytes,
                          httpd_vodcache_t **out)
{
    if (!out || capacity < 1 || max_bytes < 1)
        return PD_EINVAL;
    httpd_vodcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return PD_ENOMEM;
    c->e = calloc(capacity, sizeof(*c->e));
    if (!c->e || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->e);
        free(c);
        return PD_ENOMEM;
    }
    c->cap = capacity;
    c->max_bytes = max_bytes;
    *out = c;
    return PD_OK;
}

static void drop(httpd_vodcache_t *c, vod_entry_t *e)
{
    if (e->buf)
        c->bytes -= e->buf->len;
    pd_buf_unref(&e->buf);
    memset(e, 0, sizeof(*e));
}

void httpd_vodcache_destroy(httpd_vodcache_t **c)
{
    if (!c || !*c)
        return;
    for (size_t i = 0; i < (*c)->cap; i++)
        drop(*c, &(*c)->e[i]);
    pthread_mutex_destroy(&(*c)->lock);
    free((*c)->e);
    free(*c);
    *c = NULL;
}

pd_buf_t *httpd_vodcache_get(httpd_vodcache_t *c, int64_t id,
                             const char *rendition, uint64_t gen)
{
    if (!c || !rendition)
        return NULL;
    pd_buf_t *b = NULL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap; i++) {
        vod_entry_t *e = &c->e[i];
        if (!e->buf || e->id != id || strcmp(e->rendition, rendition) != 0)
            continue;
        if (e->gen < gen) {
            drop(c, e); /* made before a deletion: maybe gone */
            continue;
        }
        if (e->gen != gen)
            continue; /* newer than this request's view: not for it */
        e->used = ++c->clock;
        b = pd_buf_ref(e->buf);
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return b;
}

/* The least recently used entry in use, or NULL. c->lock held. */
static vod_entry_t *oldest(httpd_vodcache_t *c)
{
    vod_entry_t *v = NULL;
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].buf && (!v || c->e[i].used < v->used))
            v = &c->e[i];
    return v;
}

void httpd_vodcache_put(httpd_vodcache_t *c, int64_t id, const char *rendition,
                        uint64_t gen, pd_buf_t *b)
{
    if (!c || !rendition || !b || b->len > c->max_bytes ||
        strlen(rendition) > HTTPD_NAME_MAX)
        return;
    pthread_mutex_lock(&c->lock);
    vod_entry_t *slot = NULL;
    for (size_t i = 0; i < c->cap; i++) {
        vod_entry_t *e = &c->e[i];
        if (e->buf && e->id == id && strcmp(e->rendition, rendition) == 0) {
            if (e->gen > gen) { /* a newer one is there: keep it */
                pthread_mutex_unlock(&c->lock);
                return;
            }
            drop(c, e); /* replaced (another thread rendered it too) */
        }
        if (!e->buf && !slot)
            slot = e;
    }
    if (!slot) {
        slot = oldest(c);
        drop(c, slot);
    }
    while (c->bytes + b->len > c->max_bytes) {
        vod_entry_t *v = oldest(c);
        if (!v)
            break;
        drop(c, v);
    }
    slot->buf = pd_buf_ref(b);
    slot->id = id;
    memcpy(slot->rendition, rendition, strlen(rendition) + 1);
    slot->gen = gen;
    slot->used = ++c->clock;
    c->bytes += b->len;
    pthread_mutex_unlock(&c->lock);
}
