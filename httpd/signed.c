/*
 * httpd/signed.c - carrying a playback token into a playlist's URIs.
 *
 * A protected stream's playlist is rendered once per publication, like
 * any other, without tokens; a request that presented a valid token gets
 * a copy with "<param>=<token>" added to the query of every URI the
 * playlist lists: each URI line (segments, parts in the multivariant's
 * variant lines) and every URI="..." attribute (EXT-X-MAP, EXT-X-PART,
 * EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-MEDIA, ...). A player
 * then fetches everything with the token, and adds its delivery
 * directives after it (HLS2 6.2.5: the client appends to the URI's
 * query).
 *
 * The copies are cached by (source buffer, token): viewers that share a
 * token (one per audience and expiry, the intended use) share one copy,
 * and through it one gzip in httpd's gzip cache. The cache is bounded in
 * entries and in bytes (sources + copies kept alive) and holds a reference
 * to each source, so a cached source address is never reused while its
 * entry lives. Playlists rendered for one request only (a recording in
 * progress) are not cached (httpd.c): their copies could never be hit. Only URI
 * attributes named exactly URI (after ':' or ',') get the token, not
 * SERVER-URI or X-...-URI. Tokens are never logged.
 */
#include "httpd_int.h"

#include "../core/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* True if an attribute URI="..." starts at p[k] of a tag line that
 * starts at p[line]: the name must be a whole attribute name (after the
 * tag's ':' or a ','), so SERVER-URI="..." or X-FOO-URI="..." are left
 * alone (they may name other hosts). */
static bool uri_attr_at(const uint8_t *p, size_t line, size_t k)
{
    return memcmp(p + k, "URI=\"", 5) == 0 && k > line &&
           (p[k - 1] == ':' || p[k - 1] == ',');
}

/* Counts the places a token goes. */
static size_t count_uris(const uint8_t *p, size_t len)
{
    size_t n = 0, i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && p[end] != '\n')
            end++;
        size_t llen = end - i;
        if (llen && p[i] == '#') {
            for (size_t k = i; k + 5 <= end; k++)
                if (uri_attr_at(p, i, k))
                    n++;
        } else if (llen && !(llen == 1 && p[i] == '\r')) {
            n++;
        }
        i = end + 1;
    }
    return n;
}

/* Appends "?" or "&" (the URI uri[0..ulen) has a query or not), then
 * param=token, at *o. */
static uint8_t *add_query(uint8_t *o, const uint8_t *uri, size_t ulen,
                          const char *param, size_t plen, const char *token,
                          size_t tlen)
{
    *o++ = memchr(uri, '?', ulen) ? '&' : '?';
    memcpy(o, param, plen);
    o += plen;
    *o++ = '=';
    memcpy(o, token, tlen);
    return o + tlen;
}

int httpd_playlist_add_token(const uint8_t *src, size_t len, const char *param,
                             const char *token, pd_buf_t **out)
{
    if (!out)
        return PD_EINVAL;
    *out = NULL;
    if (!src || !param || !token)
        return PD_EINVAL;
    size_t plen = strlen(param), tlen = strlen(token);
    if (!plen || !tlen || !pd_token_chars_ok(token, tlen))
        return PD_EINVAL;
    size_t n = count_uris(src, len);
    size_t extra = plen + tlen + 2;
    if (n > (SIZE_MAX - len) / extra)
        return PD_ELIMIT;
    pd_buf_t *b = pd_buf_new(len + n * extra);
    if (!b)
        return PD_ENOMEM;
    uint8_t *o = b->data;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && src[end] != '\n')
            end++;
        size_t llen = end - i;
        if (llen && src[i] == '#') {
            /* attributes: copy up to each URI="...", add before its '"';
             * a CR ending the line stays last */
            size_t cend = src[end - 1] == '\r' ? end - 1 : end;
            size_t k = i;
            while (k < cend) {
                const uint8_t *a = NULL;
                for (size_t m = k; m + 5 <= cend; m++)
                    if (uri_attr_at(src, i, m)) {
                        a = src + m;
                        break;
                    }
                if (!a) {
                    memcpy(o, src + k, cend - k);
                    o += cend - k;
                    break;
                }
                size_t vstart = (size_t)(a - src) + 5;
                size_t vend = vstart;
                while (vend < cend && src[vend] != '"')
                    vend++;
                memcpy(o, src + k, vend - k);
                o += vend - k;
                o = add_query(o, src + vstart, vend - vstart, param, plen,
                              token, tlen);
                k = vend;
                if (k == cend)
                    break; /* unterminated quote: token at the line's end */
                /* copy the closing quote with the rest (next round) */
                *o++ = src[k++];
            }
            if (cend < end)
                *o++ = '\r';
        } else if (llen && !(llen == 1 && src[i] == '\r')) {
            size_t ulen = src[end - 1] == '\r' ? llen - 1 : llen;
            memcpy(o, src + i, ulen);
            o += ulen;
            o = add_query(o, src + i, ulen, param, plen, token, tlen);
            if (ulen < llen)
                *o++ = '\r';
        } else {
            memcpy(o, src + i, llen);
            o += llen;
        }
        if (end < len)
            *o++ = '\n';
        i = end + 1;
    }
    b->len = (size_t)(o - b->data); /* <= the size allocated */
    *out = b;
    return PD_OK;
}

/* ---- the cache ----------------------------------------------------------- */

typedef struct {
    pd_buf_t *src; /* reference; NULL: free slot */
    pd_buf_t *out; /* reference */
    char *token;   /* malloc'ed */
    char *param;   /* malloc'ed */
    uint64_t used; /* LRU clock */
} tok_entry_t;

struct httpd_tokcache_s {
    pthread_mutex_t lock;
    size_t cap;       /* entries */
    size_t max_bytes; /* sources + copies kept alive */
    size_t bytes;     /* now */
    uint64_t clock;
    tok_entry_t *e;
};

int httpd_tokcache_create(size_t capacity, size_t max_bytes,
                          httpd_tokcache_t **out)
{
    if (!out || capacity < 1 || max_bytes < 1)
        return PD_EINVAL;
    httpd_tokcache_t *c = calloc(1, sizeof(*c));
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

static size_t entry_bytes(const tok_entry_t *e)
{
    return e->src ? e->src->len + e->out->len : 0;
}

static void drop(httpd_tokcache_t *c, tok_entry_t *e)
{
    c->bytes -= entry_bytes(e);
    pd_buf_unref(&e->src);
    pd_buf_unref(&e->out);
    free(e->token);
    free(e->param);
    memset(e, 0, sizeof(*e));
}

void httpd_tokcache_destroy(httpd_tokcache_t **c)
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

/* The least recently used entry in use, or NULL. c->lock held. */
static tok_entry_t *oldest(httpd_tokcache_t *c)
{
    tok_entry_t *v = NULL;
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].src && (!v || c->e[i].used < v->used))
            v = &c->e[i];
    return v;
}

int httpd_tokcache_get(httpd_tokcache_t *c, pd_buf_t *src, const char *param,
                       const char *token, pd_buf_t **out)
{
    if (!out)
        return PD_EINVAL;
    *out = NULL;
    if (!c || !src || !param || !token)
        return PD_EINVAL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap; i++) {
        tok_entry_t *e = &c->e[i];
        if (e->src == src && strcmp(e->token, token) == 0 &&
            strcmp(e->param, param) == 0) {
            e->used = ++c->clock;
            *out = pd_buf_ref(e->out);
            pthread_mutex_unlock(&c->lock);
            return PD_OK;
        }
    }
    pthread_mutex_unlock(&c->lock);

    pd_buf_t *b = NULL;
    int rc = httpd_playlist_add_token(src->data, src->len, param, token, &b);
    if (rc)
        return rc;
    size_t need = src->len + b->len;
    if (need > c->max_bytes) {
        *out = b; /* too big to keep: answered, not cached */
        return PD_OK;
    }
    char *t = strdup(token), *p = strdup(param);
    if (!t || !p) {
        free(t);
        free(p);
        *out = b; /* answer uncached */
        return PD_OK;
    }
    pthread_mutex_lock(&c->lock);
    /* room: a free slot, and the bytes under the bound */
    tok_entry_t *slot = NULL;
    for (size_t i = 0; i < c->cap && !slot; i++)
        if (!c->e[i].src)
            slot = &c->e[i];
    if (!slot) {
        slot = oldest(c);
        drop(c, slot);
    }
    while (c->bytes + need > c->max_bytes) {
        tok_entry_t *v = oldest(c);
        if (!v)
            break;
        drop(c, v);
    }
    slot->src = pd_buf_ref(src);
    slot->out = pd_buf_ref(b);
    slot->token = t;
    slot->param = p;
    slot->used = ++c->clock;
    c->bytes += need;
    pthread_mutex_unlock(&c->lock);
    *out = b;
    return PD_OK;
}
