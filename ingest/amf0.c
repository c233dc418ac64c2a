/*
 * ingest/amf0.c - AMF0 encoder and decoder for RTMP commands and metadata.
 *
 * The decoder builds a small tree from untrusted bytes. Invariants: every
 * read is checked against the explicit length; nesting is limited to
 * AMF0_MAX_DEPTH, and every value decoded spends one unit of a budget the
 * caller passes in and shares across all the values of one message (so
 * a message of n bytes builds at most min(n, budget) nodes, whatever its
 * shape), so a hostile message cannot exhaust the stack or memory; counts
 * announced by the peer (strict arrays) are checked against the bytes left
 * before anything is allocated; references are kept as opaque indexes
 * and never resolved (no cycles possible). The encoder writes into a
 * fixed caller buffer and records overflow instead of writing past it.
 */
#include "ingest_int.h"

#include "../core/err.h"

#include <stdlib.h>
#include <string.h>

/* ---- decoder ----------------------------------------------------------- */

typedef struct dec_s {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    size_t budget; /* values that may still be created */
} dec_t;

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static double rd_double(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static int need(const dec_t *d, size_t n)
{
    return d->len - d->pos >= n ? 0 : PD_EAGAIN;
}

/* Copies n bytes at the cursor into a new NUL-terminated string. */
static int take_str(dec_t *d, size_t n, char **out)
{
    if (need(d, n))
        return PD_EAGAIN;
    char *s = malloc(n + 1);
    if (!s)
        return PD_ENOMEM;
    memcpy(s, d->buf + d->pos, n);
    s[n] = 0;
    d->pos += n;
    *out = s;
    return 0;
}

static void free_value(amf0_value_t *v)
{
    if (!v)
        return;
    free(v->str);
    for (size_t i = 0; i < v->nprops; i++) {
        free(v->props[i].key);
        free_value(v->props[i].val);
    }
    free(v->props);
    free(v);
}

void amf0_free(amf0_value_t **v)
{
    if (!v)
        return;
    free_value(*v);
    *v = NULL;
}

static int add_prop(amf0_value_t *v, char *key, size_t key_len,
                    amf0_value_t *val)
{
    if (v->nprops == v->props_cap) {
        size_t ncap = v->props_cap ? v->props_cap * 2 : 8;
        amf0_prop_t *np = realloc(v->props, ncap * sizeof(*np));
        if (!np)
            return PD_ENOMEM;
        v->props = np;
        v->props_cap = ncap;
    }
    v->props[v->nprops].key = key;
    v->props[v->nprops].key_len = key_len;
    v->props[v->nprops].val = val;
    v->nprops++;
    return 0;
}

static int decode_value(dec_t *d, int depth, amf0_value_t **out);

/* key/value pairs up to the empty key + OBJECT_END terminator. */
static int decode_props(dec_t *d, int depth, amf0_value_t *v)
{
    for (;;) {
        if (need(d, 2))
            return PD_EAGAIN;
        size_t klen = rd16(d->buf + d->pos);
        if (klen == 0) {
            if (need(d, 3))
                return PD_EAGAIN;
            if (d->buf[d->pos + 2] != AMF0_OBJECT_END)
                return PD_EPROTO; /* an empty key is only the terminator */
            d->pos += 3;
            return 0;
        }
        d->pos += 2;
        char *key = NULL;
        int rc = take_str(d, klen, &key);
        if (rc)
            return rc;
        amf0_value_t *val = NULL;
        rc = decode_value(d, depth + 1, &val);
        if (rc == 0)
            rc = add_prop(v, key, klen, val);
        if (rc) {
            free(key);
            free_value(val);
            return rc;
        }
    }
}

static int decode_value(dec_t *d, int depth, amf0_value_t **out)
{
    *out = NULL;
    if (depth > AMF0_MAX_DEPTH)
        return PD_ELIMIT;
    if (need(d, 1))
        return PD_EAGAIN;
    if (d->budget == 0)
        return PD_ELIMIT;
    d->budget--;
    uint8_t marker = d->buf[d->pos];
    switch (marker) {
    case AMF0_NUMBER:
    case AMF0_BOOLEAN:
    case AMF0_STRING:
    case AMF0_OBJECT:
    case AMF0_NULL:
    case AMF0_UNDEFINED:
    case AMF0_REFERENCE:
    case AMF0_ECMA_ARRAY:
    case AMF0_STRICT_ARRAY:
    case AMF0_DATE:
    case AMF0_LONG_STRING:
        break;
    default: /* OBJECT_END out of place, movieclip, AMF3 switch, ... */
        return PD_EPROTO;
    }
    amf0_value_t *v = calloc(1, sizeof(*v));
    if (!v)
        return PD_ENOMEM;
    v->type = (amf0_type_t)marker;
    d->pos++;
    int rc = 0;
    switch (marker) {
    case AMF0_NUMBER:
        if (!(rc = need(d, 8))) {
            v->num = rd_double(d->buf + d->pos);
            d->pos += 8;
        }
        break;
    case AMF0_BOOLEAN:
        if (!(rc = need(d, 1)))
            v->boolean = d->buf[d->pos++] != 0;
        break;
    case AMF0_STRING:
        if (!(rc = need(d, 2))) {
            size_t n = rd16(d->buf + d->pos);
            d->pos += 2;
            v->str_len = n;
            rc = take_str(d, n, &v->str);
        }
        break;
    case AMF0_LONG_STRING:
        if (!(rc = need(d, 4))) {
            size_t n = rd32(d->buf + d->pos);
            d->pos += 4;
            v->str_len = n;
            rc = take_str(d, n, &v->str); /* checks n against what is left */
        }
        break;
    case AMF0_NULL:
    case AMF0_UNDEFINED:
        break;
    case AMF0_REFERENCE:
        if (!(rc = need(d, 2))) {
            v->ref = rd16(d->buf + d->pos);
            d->pos += 2;
        }
        break;
    case AMF0_DATE:
        if (!(rc = need(d, 10))) {
            v->num = rd_double(d->buf + d->pos);
            v->tz = (int16_t)rd16(d->buf + d->pos + 8);
            d->pos += 10;
        }
        break;
    case AMF0_OBJECT:
        rc = decode_props(d, depth, v);
        break;
    case AMF0_ECMA_ARRAY:
        if (!(rc = need(d, 4))) {
            v->ecma_count = rd32(d->buf + d->pos);
            d->pos += 4;
            /* the count is advisory: read up to the terminator */
            rc = decode_props(d, depth, v);
        }
        break;
    case AMF0_STRICT_ARRAY:
        if (!(rc = need(d, 4))) {
            uint32_t n = rd32(d->buf + d->pos);
            d->pos += 4;
            /* every element takes at least one byte */
            if (n > d->len - d->pos) {
                rc = PD_EAGAIN;
                break;
            }
            for (uint32_t i = 0; i < n && !rc; i++) {
                amf0_value_t *e = NULL;
                rc = decode_value(d, depth + 1, &e);
                if (!rc && (rc = add_prop(v, NULL, 0, e)))
                    free_value(e);
            }
        }
        break;
    }
    if (rc) {
        free_value(v);
        return rc;
    }
    *out = v;
    return 0;
}

int amf0_decode(const uint8_t *buf, size_t len, size_t *pos, size_t *budget,
                amf0_value_t **out)
{
    *out = NULL;
    if (!buf || !budget || *pos > len)
        return PD_EINVAL;
    dec_t d = {.buf = buf, .len = len, .pos = *pos, .budget = *budget};
    int rc = decode_value(&d, 0, out);
    if (rc == 0) {
        *pos = d.pos;
        *budget = d.budget;
    }
    return rc;
}

const amf0_value_t *amf0_get(const amf0_value_t *obj, const char *key)
{
    if (!obj || !key ||
        (obj->type != AMF0_OBJECT && obj->type != AMF0_ECMA_ARRAY))
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < obj->nprops; i++) {
        const amf0_prop_t *p = &obj->props[i];
        if (p->key_len == klen && memcmp(p->key, key, klen) == 0)
            return p->val;
    }
    return NULL;
}

const char *amf0_str(const amf0_value_t *v, size_t *len)
{
    if (!v || (v->type != AMF0_STRING && v->type != AMF0_LONG_STRING))
        return NULL;
    if (len)
        *len = v->str_len;
    return v->str;
}

bool amf0_num(const amf0_value_t *v, double *out)
{
    if (!v || v->type != AMF0_NUMBER)
        return false;
    *out = v->num;
    return true;
}

/* ---- encoder ----------------------------------------------------------- */

void amf0_wr_init(amf0_wr_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
}

int amf0_wr_status(const amf0_wr_t *w)
{
    return w->overflow ? PD_ELIMIT : 0;
}

static uint8_t *wr_reserve(amf0_wr_t *w, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void wr_double(uint8_t *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)u;
        u >>= 8;
    }
}

void amf0_put_number(amf0_wr_t *w, double v)
{
    uint8_t *p = wr_reserve(w, 9);
    if (p) {
        p[0] = AMF0_NUMBER;
        wr_double(p + 1, v);
    }
}

void amf0_put_bool(amf0_wr_t *w, bool v)
{
    uint8_t *p = wr_reserve(w, 2);
    if (p) {
        p[0] = AMF0_BOOLEAN;
        p[1] = v ? 1 : 0;
    }
}

void amf0_put_string(amf0_wr_t *w, const char *s, size_t len)
{
    uint8_t *p;
    if (len <= 0xFFFF) {
        if (!(p = wr_reserve(w, 3 + len)))
            return;
        p[0] = AMF0_STRING;
        wr16(p + 1, (uint16_t)len);
        p += 3;
    } else {
        if (len > 0xFFFFFFFFu || !(p = wr_reserve(w, 5 + len))) {
            w->overflow = true;
            return;
        }
        p[0] = AMF0_LONG_STRING;
        wr32(p + 1, (uint32_t)len);
        p += 5;
    }
    if (len)
        memcpy(p, s, len);
}

void amf0_put_cstr(amf0_wr_t *w, const char *s)
{
    amf0_put_string(w, s, strlen(s));
}

void amf0_put_null(amf0_wr_t *w)
{
    uint8_t *p = wr_reserve(w, 1);
    if (p)
        p[0] = AMF0_NULL;
}

void amf0_put_undefined(amf0_wr_t *w)
{
    uint8_t *p = wr_reserve(w, 1);
    if (p)
        p[0] = AMF0_UNDEFINED;
}

void amf0_put_date(amf0_wr_t *w, double ms, int16_t tz)
{
    uint8_t *p = wr_reserve(w, 11);
    if (p) {
        p[0] = AMF0_DATE;
        wr_double(p + 1, ms);
        wr16(p + 9, (uint16_t)tz);
    }
}

void amf0_put_object_start(amf0_wr_t *w)
{
    uint8_t *p = wr_reserve(w, 1);
    if (p)
        p[0] = AMF0_OBJECT;
}

void amf0_put_ecma_start(amf0_wr_t *w, uint32_t count)
{
    uint8_t *p = wr_reserve(w, 5);
    if (p) {
        p[0] = AMF0_ECMA_ARRAY;
        wr32(p + 1, count);
    }
}

void amf0_put_strict_array_start(amf0_wr_t *w, uint32_t count)
{
    uint8_t *p = wr_reserve(w, 5);
    if (p) {
        p[0] = AMF0_STRICT_ARRAY;
        wr32(p + 1, count);
    }
}

void amf0_put_key(amf0_wr_t *w, const char *key, size_t len)
{
    if (len > 0xFFFF) {
        w->overflow = true;
        return;
    }
    uint8_t *p = wr_reserve(w, 2 + len);
    if (p) {
        wr16(p, (uint16_t)len);
        if (len)
            memcpy(p + 2, key, len);
    }
}

void amf0_put_object_end(amf0_wr_t *w)
{
    uint8_t *p = wr_reserve(w, 3);
    if (p) {
        p[0] = 0;
        p[1] = 0;
        p[2] = AMF0_OBJECT_END;
    }
}

void amf0_put_prop_cstr(amf0_wr_t *w, const char *key, const char *val)
{
    amf0_put_key(w, key, strlen(key));
    amf0_put_cstr(w, val);
}

void amf0_put_prop_number(amf0_wr_t *w, const char *key, double val)
{
    amf0_put_key(w, key, strlen(key));
    amf0_put_number(w, val);
}

void amf0_put_value(amf0_wr_t *w, const amf0_value_t *v)
{
    uint8_t *p;
    switch (v->type) {
    case AMF0_NUMBER:
        amf0_put_number(w, v->num);
        break;
    case AMF0_BOOLEAN:
        amf0_put_bool(w, v->boolean);
        break;
    case AMF0_STRING:
        amf0_put_string(w, v->str, v->str_len);
        break;
    case AMF0_LONG_STRING: /* keep the marker even for short strings */
        if ((p = wr_reserve(w, 5 + v->str_len))) {
            p[0] = AMF0_LONG_STRING;
            wr32(p + 1, (uint32_t)v->str_len);
            if (v->str_len)
                memcpy(p + 5, v->str, v->str_len);
        }
        break;
    case AMF0_NULL:
        amf0_put_null(w);
        break;
    case AMF0_UNDEFINED:
        amf0_put_undefined(w);
        break;
    case AMF0_REFERENCE:
        if ((p = wr_reserve(w, 3))) {
            p[0] = AMF0_REFERENCE;
            wr16(p + 1, v->ref);
        }
        break;
    case AMF0_DATE:
        amf0_put_date(w, v->num, v->tz);
        break;
    case AMF0_OBJECT:
    case AMF0_ECMA_ARRAY:
        if (v->type == AMF0_OBJECT)
            amf0_put_object_start(w);
        else
            amf0_put_ecma_start(w, v->ecma_count);
        for (size_t i = 0; i < v->nprops; i++) {
            amf0_put_key(w, v->props[i].key, v->props[i].key_len);
            amf0_put_value(w, v->props[i].val);
        }
        amf0_put_object_end(w);
        break;
    case AMF0_STRICT_ARRAY:
        amf0_put_strict_array_start(w, (uint32_t)v->nprops);
        for (size_t i = 0; i < v->nprops; i++)
            amf0_put_value(w, v->props[i].val);
        break;
    default:
        w->overflow = true; /* not encodable */
        break;
    }
}
