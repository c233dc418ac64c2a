/*
 * httpd/gzip.c - gzip for playlists: Accept-Encoding parsing, zlib
 * compression, and a bounded cache of compressed playlists.
 *
 * Playlists are immutable pd_buf_t rendered once per publication and
 * shared by every request that asks for that state (a release of held
 * blocking requests hands the same buffer to thousands of them), so the
 * gzip of a buffer is made once and cached by the buffer's address. An
 * entry holds a reference to its source, so that address cannot be freed
 * and reused while the entry exists; eviction (least recently used, at
 * most `cap` entries and `max_bytes` of sources plus gzips) drops the
 * entry's references.
 *
 * The Accept-Encoding parser is a pure function over explicit lengths
 * (no allocation, no logging) like directives.c: the header is untrusted.
 * The cache is used by every daemon thread under one mutex, held only
 * for a scan of at most `cap` pointers; compression runs outside it.
 */
#define ZLIB_CONST
#include "httpd_int.h"

#include "../core/err.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- Accept-Encoding --------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Bytes that no valid Accept-Encoding list holds. */
static bool is_forbidden(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c >= 0x7f || c == '"' || c == '\\';
}

static bool ieq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), into
 * thousandths. Returns 0 or -1. */
static int parse_qvalue(const char *s, size_t n, int *q)
{
    if (n == 0 || n > 5 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int v = (s[0] - '0') * 1000;
    if (n > 1) {
        if (s[1] != '.')
            return -1;
        int scale = 100;
        for (size_t i = 2; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (v > 1000)
        return -1; /* "1.5" */
    *q = v;
    return 0;
}

/* One list element e[0..n): OWS coding OWS [ ";" OWS "q=" qvalue OWS ].
 * Returns 1 with the coding and its weight, 0 for an empty element, -1
 * for a malformed one. */
static int parse_elem(const char *e, size_t n, const char **coding,
                      size_t *clen, int *q)
{
    size_t i = 0;
    while (i < n && is_ows(e[i]))
        i++;
    if (i == n)
        return 0;
    size_t cs = i;
    while (i < n && is_tchar(e[i]))
        i++;
    if (i == cs)
        return -1;
    *coding = e + cs;
    *clen = i - cs;
    *q = 1000;
    while (i < n && is_ows(e[i]))
        i++;
    if (i == n)
        return 1;
    if (e[i] != ';')
        return -1;
    i++;
    while (i < n && is_ows(e[i]))
        i++;
    if (n - i < 2 || (e[i] != 'q' && e[i] != 'Q') || e[i + 1] != '=')
        return -1;
    i += 2;
    size_t qs = i;
    while (i < n && !is_ows(e[i]) && e[i] != ';')
        i++;
    if (parse_qvalue(e + qs, i - qs, q))
        return -1;
    while (i < n && is_ows(e[i]))
        i++;
    return i == n ? 1 : -1; /* anything else: a parameter that is not q */
}

static void lower_min(int *cur, int q)
{
    if (*cur < 0 || q < *cur)
        *cur = q;
}

void httpd_ae_init(httpd_ae_t *ae)
{
    memset(ae, 0, sizeof(*ae));
    ae->gzip_q = -1;
    ae->star_q = -1;
}

void httpd_ae_add(httpd_ae_t *ae, const char *s, size_t len)
{
    if (ae->invalid)
        return;
    if (!s) {
        if (len)
            ae->invalid = true;
        return;
    }
    if (len > HTTPD_AE_MAX_BYTES - ae->bytes) {
        ae->invalid = true;
        return;
    }
    ae->bytes += len;
    for (size_t i = 0; i < len; i++) {
        if (is_forbidden((unsigned char)s[i])) {
            ae->invalid = true;
            return;
        }
    }
    size_t i = 0;
    for (;;) {
        const char *e = s + i;
        const char *comma = memchr(e, ',', len - i);
        size_t n = comma ? (size_t)(comma - e) : len - i;
        if (++ae->elems > HTTPD_AE_MAX_ELEMS) {
            ae->invalid = true;
            return;
        }
        const char *coding;
        size_t clen;
        int q;
        if (parse_elem(e, n, &coding, &clen, &q) == 1) {
            if (ieq(coding, clen, "gzip") || ieq(coding, clen, "x-gzip"))
                lower_min(&ae->gzip_q, q);
            else if (clen == 1 && coding[0] == '*')
                lower_min(&ae->star_q, q);
        }
        if (!comma)
            break;
        i += n + 1;
    }
}

bool httpd_ae_gzip_ok(const httpd_ae_t *ae)
{
    if (ae->invalid)
        return false;
    if (ae->gzip_q >= 0)
        return ae->gzip_q > 0;
    return ae->star_q > 0;
}

bool httpd_accepts_gzip(const char *s, size_t len)
{
    if (!s)
        return false;
    httpd_ae_t ae;
    httpd_ae_init(&ae);
    httpd_ae_add(&ae, s, len);
    return httpd_ae_gzip_ok(&ae);
}

/* ---- compression ------------------------------------------------------- */

int httpd_gzip(const uint8_t *data, size_t len, pd_buf_t **out)
{
    *out = NULL;
    if ((!data && len) || len > UINT_MAX / 2)
        return PD_EINVAL; /* zlib counts in uInt */
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* windowBits 15 + 16: the gzip wrapper (header and CRC-32 trailer). */
    if (deflateInit2(&zs, HTTPD_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return PD_ENOMEM;
    uLong bound = deflateBound(&zs, (uLong)len);
    uint8_t *tmp = bound <= UINT_MAX ? malloc(bound) : NULL;
    if (!tmp) {
        deflateEnd(&zs);
        return PD_ENOMEM;
    }
    static const uint8_t empty[1];
    zs.next_in = data ? data : empty;
    zs.avail_in = (uInt)len;
    zs.next_out = tmp;
    zs.avail_out = (uInt)bound;
    int zr = deflate(&zs, Z_FINISH);
    size_t n = (size_t)zs.total_out;
    deflateEnd(&zs);
    int rc = PD_OK;
    if (zr != Z_STREAM_END)
        rc = PD_ERR; /* cannot happen with deflateBound's room */
    else if (n >= len)
        rc = PD_EAGAIN;
    else if (!(*out = pd_buf_from(tmp, n)))
        rc = PD_ENOMEM;
    free(tmp);
    return rc;
}

/* ---- the cache ----------------------------------------------------------- */

typedef struct gz_entry_s {
    pd_buf_t *src; /* a reference: keeps the key's address unique */
    pd_buf_t *gz;  /* a reference, or NULL: gzip does not help */
    uint64_t used; /* cache tick of the last lookup (LRU) */
    size_t bytes;  /* src->len + gz->len: what the entry keeps alive */
} gz_entry_t;

struct httpd_gzcache_s {
    pthread_mutex_t lock;
    size_t cap;       /* entries at most */
    size_t max_bytes; /* sum of the entries' bytes at most */
    size_t n;         /* entries used: e[0..n) */
    size_t bytes;     /* sum of the entries' bytes */
    uint64_t tick;    /* bumped on every hit and insert */
    gz_entry_t *e;
    httpd_gzcache_stats_t st;
};

int httpd_gzcache_create(size_t capacity, size_t max_bytes,
                         httpd_gzcache_t **out)
{
    *out = NULL;
    if (capacity == 0 || capacity > 65536 || max_bytes == 0)
        return PD_EINVAL;
    httpd_gzcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return PD_ENOMEM;
    c->e = calloc(capacity, sizeof(*c->e));
    if (!c->e || pthread_mutex_init(&c->lock, NULL)) {
        free(c->e);
        free(c);
        return PD_ENOMEM;
    }
    c->cap = capacity;
    c->max_bytes = max_bytes;
    *out = c;
    return PD_OK;
}

void httpd_gzcache_destroy(httpd_gzcache_t **cp)
{
    if (!cp || !*cp)
        return;
    httpd_gzcache_t *c = *cp;
    for (size_t i = 0; i < c->n; i++) {
        pd_buf_unref(&c->e[i].src);
        pd_buf_unref(&c->e[i].gz);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->e);
    free(c);
    *cp = NULL;
}

/* Index of src's entry or -1. Lock held. */
static long find(const httpd_gzcache_t *c, const pd_buf_t *src)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].src == src)
            return (long)i;
    return -1;
}

int httpd_gzcache_get(httpd_gzcache_t *c, pd_buf_t *src, pd_buf_t **out)
{
    *out = NULL;
    if (!c || !src)
        return PD_EINVAL;

    pthread_mutex_lock(&c->lock);
    long i = find(c, src);
    if (i >= 0) {
        c->e[i].used = ++c->tick;
        c->st.hits++;
        *out = pd_buf_ref(c->e[i].gz);
        pthread_mutex_unlock(&c->lock);
        return PD_OK;
    }
    pthread_mutex_unlock(&c->lock);

    pd_buf_t *gz = NULL;
    int rc = httpd_gzip(src->data, src->len, &gz);
    if (rc != PD_OK && rc != PD_EAGAIN)
        return rc; /* maybe transient (memory): not cached */

    /* References to drop once the lock is released: those of the
     * entries evicted for this one (at most all of them). */
    pd_buf_t **drop = NULL;
    size_t ndrop = 0;
    size_t need = src->len + (gz ? gz->len : 0);
    pthread_mutex_lock(&c->lock);
    c->st.compressions++;
    i = find(c, src);
    if (i >= 0) {
        /* Another thread compressed it meanwhile: keep its entry. */
        c->e[i].used = ++c->tick;
        *out = pd_buf_ref(c->e[i].gz);
        pthread_mutex_unlock(&c->lock);
        pd_buf_unref(&gz);
        return PD_OK;
    }
    *out = pd_buf_ref(gz);
    if (need > c->max_bytes) {
        /* Larger than the whole cache: served, not kept. */
        pthread_mutex_unlock(&c->lock);
        pd_buf_unref(&gz);
        return PD_OK;
    }
    while (c->n > 0 && (c->n == c->cap || c->bytes + need > c->max_bytes)) {
        if (!drop && !(drop = calloc(2 * c->n, sizeof(*drop))))
            break; /* out of memory: keep the entries, skip this one */
        size_t lru = 0;
        for (size_t k = 1; k < c->n; k++)
            if (c->e[k].used < c->e[lru].used)
                lru = k;
        drop[ndrop++] = c->e[lru].src;
        drop[ndrop++] = c->e[lru].gz;
        c->bytes -= c->e[lru].bytes;
        c->e[lru] = c->e[--c->n]; /* keep e[0..n) dense */
        c->st.evictions++;
    }
    if (c->n < c->cap && c->bytes + need <= c->max_bytes) {
        gz_entry_t *e = &c->e[c->n++];
        e->src = pd_buf_ref(src);
        e->gz = gz; /* the entry's reference */
        e->used = ++c->tick;
        e->bytes = need;
        c->bytes += need;
        gz = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    pd_buf_unref(&gz);
    for (size_t k = 0; k < ndrop; k++)
        pd_buf_unref(&drop[k]);
    free(drop);
    return PD_OK;
}

void httpd_gzcache_stats(httpd_gzcache_t *c, httpd_gzcache_stats_t *st)
{
    pthread_mutex_lock(&c->lock);
    *st = c->st;
    st->entries = (int64_t)c->n;
    st->bytes = (int64_t)c->bytes;
    pthread_mutex_unlock(&c->lock);
}
