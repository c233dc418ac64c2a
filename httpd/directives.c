/*
 * httpd/directives.c - request-line parsing for the HTTP origin: routing
 * of paths, percent-decoding, LL-HLS delivery directives and the
 * Cache-Control policy for playlists.
 *
 * Everything here is a pure function over explicit lengths: no
 * allocation, no logging, no libmicrohttpd. Input is untrusted; every
 * number is canonical decimal with an explicit upper bound (see
 * httpd_int.h for the rules and why).
 */
#include "httpd_int.h"

#include "../core/err.h"

#include <string.h>

/* ---- numbers and names ------------------------------------------------ */

int httpd_parse_dec(const char *s, size_t len, int64_t max, int64_t *out)
{
    if (!s || len == 0 || len > 19 || max < 0)
        return PD_EINVAL;
    if (s[0] == '0' && len > 1)
        return PD_EINVAL; /* one spelling per number */
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PD_EINVAL;
        int d = s[i] - '0';
        if (v > (max - d) / 10)
            return PD_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return PD_OK;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > HTTPD_NAME_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

static bool eq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}

static bool ends_with(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s + len - n, lit, n) == 0;
}

/* ---- routing ---------------------------------------------------------- */

/* The file name of a media object inside a rendition directory. */
static int route_file(const char *f, size_t n, httpd_route_t *out)
{
    int64_t v;
    if (eq(f, n, "index.m3u8")) {
        out->obj = PKG_OBJ_PLAYLIST;
        return PD_OK;
    }
    /* init sections are only "init-<n>.mp4", n >= 1 the MSN of the first
     * segment that used it (never reused across stream instances); there
     * is no "init.mp4" */
    if (n > 9 && memcmp(f, "init-", 5) == 0 && ends_with(f, n, ".mp4")) {
        if (httpd_parse_dec(f + 5, n - 9, (int64_t)UINT32_MAX, &v) || v == 0)
            return PD_ENOENT;
        out->obj = PKG_OBJ_INIT;
        out->init_id = (unsigned)v;
        return PD_OK;
    }
    if (n > 4 && ends_with(f, n, ".m4s")) {
        size_t stem = n - 4;
        const char *dot = memchr(f, '.', stem);
        if (!dot) {
            if (httpd_parse_dec(f, stem, INT64_MAX, &out->msn))
                return PD_ENOENT;
            out->obj = PKG_OBJ_SEGMENT;
            return PD_OK;
        }
        size_t a = (size_t)(dot - f);
        if (httpd_parse_dec(f, a, INT64_MAX, &out->msn) ||
            httpd_parse_dec(dot + 1, stem - a - 1, INT64_MAX, &out->part))
            return PD_ENOENT;
        out->obj = PKG_OBJ_PART;
        return PD_OK;
    }
    return PD_ENOENT;
}

int httpd_route_parse(const char *path, size_t len, httpd_route_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = HTTPD_ROUTE_NONE;
    if (!path || len == 0 || len > HTTPD_PATH_MAX || path[0] != '/' ||
        memchr(path, '\0', len))
        return PD_ENOENT;
    if (len == 1) {
        out->kind = HTTPD_ROUTE_PLAYER;
        return PD_OK;
    }
    if (eq(path, len, "/hls.min.js")) {
        out->kind = HTTPD_ROUTE_HLSJS;
        return PD_OK;
    }
    if (eq(path, len, "/streams.json")) {
        out->kind = HTTPD_ROUTE_STREAMS;
        return PD_OK;
    }

    /* Split "/a/b/c" into at most 5 segments; any empty one ("//", a
     * trailing '/') means no match. */
    const char *seg[5];
    size_t seglen[5];
    size_t nseg = 0;
    size_t i = 1;
    while (i <= len) {
        const char *s = path + i;
        const char *slash = memchr(s, '/', len - i);
        size_t n = slash ? (size_t)(slash - s) : len - i;
        if (n == 0 || nseg == 5)
            return PD_ENOENT;
        seg[nseg] = s;
        seglen[nseg] = n;
        nseg++;
        i += n + 1;
    }
    if (nseg < 3 || !eq(seg[0], seglen[0], "live") ||
        !name_ok(seg[1], seglen[1]))
        return PD_ENOENT;

    if (nseg == 3) {
        if (!eq(seg[2], seglen[2], "index.m3u8"))
            return PD_ENOENT;
        out->obj = PKG_OBJ_MULTIVARIANT;
    } else {
        if (nseg != 4 || !name_ok(seg[2], seglen[2]) ||
            route_file(seg[3], seglen[3], out))
            return PD_ENOENT;
        memcpy(out->rendition, seg[2], seglen[2]);
        out->rendition[seglen[2]] = '\0';
    }
    memcpy(out->stream, "live/", 5);
    memcpy(out->stream + 5, seg[1], seglen[1]);
    out->stream[5 + seglen[1]] = '\0';
    out->kind = HTTPD_ROUTE_MEDIA;
    return PD_OK;
}

void httpd_route_to_query(const httpd_route_t *r, pkg_query_t *q)
{
    memset(q, 0, sizeof(*q));
    q->obj = r->obj;
    q->stream = r->stream;
    q->rendition = r->obj == PKG_OBJ_MULTIVARIANT ? NULL : r->rendition;
    q->msn = r->msn;
    q->part = r->part;
    q->init_id = r->init_id;
    q->hls_msn = -1;
    q->hls_part = -1;
    q->hls_skip = false;
}

/* ---- percent-decoding ------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t httpd_unescape(char *s)
{
    char *r = s, *w = s;
    while (*r) {
        if (r[0] == '%') {
            int hi = hexval(r[1]);
            int lo = hi < 0 ? -1 : hexval(r[2]);
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                *w++ = (char)(hi * 16 + lo);
                r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* ---- delivery directives ---------------------------------------------- */

void httpd_directives_init(httpd_directives_t *d)
{
    memset(d, 0, sizeof(*d));
    d->msn = -1;
    d->part = -1;
}

void httpd_directives_add(httpd_directives_t *d, const char *key, size_t klen,
                          const char *val, size_t vlen)
{
    int64_t *num = NULL;
    int *count;
    if (!key)
        return;
    if (eq(key, klen, "_HLS_msn")) {
        num = &d->msn;
        count = &d->n_msn;
    } else if (eq(key, klen, "_HLS_part")) {
        num = &d->part;
        count = &d->n_part;
    } else if (eq(key, klen, "_HLS_skip")) {
        count = &d->n_skip;
    } else {
        return; /* other parameters (tokens) are not ours */
    }
    if (++*count > 1) {
        d->err = PD_EINVAL; /* which one would the client mean? */
        return;
    }
    if (!val)
        vlen = 0;
    if (num) {
        if (httpd_parse_dec(val, vlen, INT64_MAX, num))
            d->err = PD_EINVAL;
        return;
    }
    if (eq(val ? val : "", vlen, "YES") || eq(val ? val : "", vlen, "v2"))
        d->skip = true;
    else
        d->err = PD_EINVAL;
}

int httpd_directives_finish(const httpd_directives_t *d, pkg_query_t *q)
{
    if (d->err)
        return d->err;
    if (d->n_part && !d->n_msn)
        return PD_EINVAL; /* HLS2 6.2.5.2: _HLS_part requires _HLS_msn */
    q->hls_msn = d->n_msn ? d->msn : -1;
    q->hls_part = d->n_part ? d->part : -1;
    q->hls_skip = d->skip;
    return PD_OK;
}

int httpd_directives_parse_query(const char *qs, size_t len,
                                 httpd_directives_t *d)
{
    /* Our keys are at most 9 bytes, so their escaped form at most 27;
     * valid values at most 19 digits (57 escaped). Longer keys are not
     * ours and are skipped unread; longer values of ours are invalid. */
    char key[28], val[64];
    size_t i = 0;
    if (!qs)
        return d->err;
    while (i < len) {
        const char *s = qs + i;
        const char *amp = memchr(s, '&', len - i);
        size_t n = amp ? (size_t)(amp - s) : len - i;
        i += n + 1;
        if (n == 0)
            continue; /* "a=1&&b=2" */
        const char *eqs = memchr(s, '=', n);
        size_t kn = eqs ? (size_t)(eqs - s) : n;
        if (kn >= sizeof(key) || memchr(s, '\0', kn))
            continue;
        memcpy(key, s, kn);
        key[kn] = '\0';
        for (size_t k = 0; k < kn; k++)
            if (key[k] == '+')
                key[k] = ' ';
        size_t klen = httpd_unescape(key);
        if (!eqs) {
            httpd_directives_add(d, key, klen, NULL, 0);
            continue;
        }
        size_t vn = n - kn - 1;
        if (vn >= sizeof(val) || memchr(eqs + 1, '\0', vn)) {
            /* too long to be valid: an error if the key is ours */
            httpd_directives_add(d, key, klen, "x", 1);
            continue;
        }
        memcpy(val, eqs + 1, vn);
        val[vn] = '\0';
        for (size_t k = 0; k < vn; k++)
            if (val[k] == '+')
                val[k] = ' ';
        size_t vlen = httpd_unescape(val);
        httpd_directives_add(d, key, klen, val, vlen);
    }
    return d->err;
}

/* ---- cache policy ------------------------------------------------------ */

int httpd_playlist_max_age(int td_s, bool blocked, bool ended)
{
    if (td_s < 0)
        td_s = 0;
    if (td_s > 3600)
        td_s = 3600; /* no int overflow from a silly target */
    int age = (blocked && !ended) ? 6 * td_s : td_s / 2;
    return age < 1 ? 1 : age;
}
