/*
 * tests/lib/m3u8.c - a strict HLS playlist parser for the integration
 * tests (multivariant and LL-HLS media playlists, full or delta).
 *
 * Strict where podium's output is under test: a syntax slip is an error
 * with its line number, never silently accepted. Unknown tags are ignored
 * (a client must ignore them). Limits: 1 MiB of text, 4096-byte lines,
 * attribute values up to TL_URI_MAX-1 bytes.
 */
#include "testlib.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TEXT (1 << 20)
#define MAX_LINE 4096

/* Copies src into dst (size n), truncating; always NUL-terminates. */
static void scopy(char *dst, size_t n, const char *src)
{
    size_t l = strlen(src);
    if (l >= n)
        l = n - 1;
    memcpy(dst, src, l);
    dst[l] = 0;
}

int tl_parse_int(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 18)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    *out = strtoll(s, NULL, 10);
    return 0;
}

int tl_parse_decimal(const char *s, double *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    const char *p = s;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int tl_attrs_parse(const char *s, tl_attrs_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *p = s;
    if (!*p) {
        snprintf(err, errlen, "empty attribute list");
        return -1;
    }
    while (*p) {
        if (out->n >= TL_ATTRS_MAX) {
            snprintf(err, errlen, "too many attributes");
            return -1;
        }
        tl_attr_t *a = &out->a[out->n];
        size_t nl = 0;
        while (*p && *p != '=') {
            char c = *p;
            if (!(isupper((unsigned char)c) || isdigit((unsigned char)c) ||
                  c == '-')) {
                snprintf(err, errlen, "bad character '%c' in attribute name",
                         c);
                return -1;
            }
            if (nl + 1 >= sizeof(a->name)) {
                snprintf(err, errlen, "attribute name too long");
                return -1;
            }
            a->name[nl++] = c;
            p++;
        }
        a->name[nl] = 0;
        if (*p != '=' || nl == 0) {
            snprintf(err, errlen, "attribute without name or '='");
            return -1;
        }
        p++;
        size_t vl = 0;
        if (*p == '"') {
            a->quoted = true;
            p++;
            while (*p && *p != '"') {
                if (*p == '\r' || *p == '\n') {
                    snprintf(err, errlen, "line break in quoted string");
                    return -1;
                }
                if (vl + 1 >= sizeof(a->value)) {
                    snprintf(err, errlen, "attribute value too long");
                    return -1;
                }
                a->value[vl++] = *p++;
            }
            if (*p != '"') {
                snprintf(err, errlen, "unterminated quoted string");
                return -1;
            }
            p++;
        } else {
            while (*p && *p != ',') {
                if (isspace((unsigned char)*p) || *p == '"') {
                    snprintf(err, errlen, "whitespace or quote in value of %s",
                             a->name);
                    return -1;
                }
                if (vl + 1 >= sizeof(a->value)) {
                    snprintf(err, errlen, "attribute value too long");
                    return -1;
                }
                a->value[vl++] = *p++;
            }
            if (vl == 0) {
                snprintf(err, errlen, "empty value for %s", a->name);
                return -1;
            }
        }
        a->value[vl] = 0;
        for (int i = 0; i < out->n; i++) {
            if (strcmp(out->a[i].name, a->name) == 0) {
                snprintf(err, errlen, "duplicate attribute %s", a->name);
                return -1;
            }
        }
        out->n++;
        if (*p == ',') {
            p++;
            if (!*p) {
                snprintf(err, errlen, "trailing comma");
                return -1;
            }
        } else if (*p) {
            snprintf(err, errlen, "garbage after value of %s", a->name);
            return -1;
        }
    }
    return 0;
}

const char *tl_attr(const tl_attrs_t *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->a[i].name, name) == 0)
            return a->a[i].value;
    return NULL;
}

/* "2024-05-01T12:00:00.123Z" / "+01:00" / "+0100" -> epoch ms. */
static int parse_pdt(const char *s, int64_t *out_ms)
{
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) !=
            6 ||
        n != 19)
        return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        int64_t frac = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        if (digits == 0)
            return -1;
        while (digits < 3) {
            frac *= 10;
            digits++;
        }
        ms = frac;
    }
    int tz = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int th, tm;
        p++;
        if (sscanf(p, "%2d:%2d", &th, &tm) == 2 && strlen(p) == 5)
            p += 5;
        else if (sscanf(p, "%2d%2d", &th, &tm) == 2 && strlen(p) == 4)
            p += 4;
        else
            return -1;
        tz = sign * (th * 60 + tm);
    } else {
        return -1; /* a timezone is required */
    }
    if (*p)
        return -1;
    struct tm t;
    memset(&t, 0, sizeof(t));
    t.tm_year = Y - 1900;
    t.tm_mon = M - 1;
    t.tm_mday = D;
    t.tm_hour = h;
    t.tm_min = m;
    t.tm_sec = sec;
    time_t tt = timegm(&t);
    *out_ms = (int64_t)tt * 1000 + ms - (int64_t)tz * 60000;
    return 0;
}

typedef struct {
    tl_m3u8_t *m;
    char *err;
    size_t errlen;
    int line;
    /* state */
    int seen_version, seen_td, seen_ms, seen_ds, seen_sc, seen_pi, seen_skip,
        seen_end, seen_pt, seen_is;
    int first_media_line; /* first EXTINF/PART/segment tag line, 0 if none */
    bool pending_extinf;
    double extinf;
    bool pending_disc, pending_gap;
    int64_t pending_pdt;
    bool pending_stream_inf;
    tl_attrs_t stream_inf;
    int part_start; /* index in parts[] of the current segment's
                       first part */
    int seg_cap, part_cap;
    bool media_tags; /* saw a media-playlist-only tag */
} pstate_t;

static int fail(pstate_t *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(pstate_t *ps, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "line %d: %s", ps->line, msg);
    return -1;
}

static int once(pstate_t *ps, int *seen, const char *tag)
{
    if ((*seen)++)
        return fail(ps, "%s appears more than once", tag);
    return 0;
}

/* A header tag must come before any segment/part line. */
static int header_tag(pstate_t *ps, const char *tag)
{
    ps->media_tags = true;
    if (ps->first_media_line)
        return fail(ps, "%s after the first segment (line %d)", tag,
                    ps->first_media_line);
    return 0;
}

static void mark_media(pstate_t *ps)
{
    ps->media_tags = true;
    if (!ps->first_media_line)
        ps->first_media_line = ps->line;
}

static int attrs(pstate_t *ps, const char *s, tl_attrs_t *a, const char *tag)
{
    char e[160];
    if (tl_attrs_parse(s, a, e, sizeof(e)) != 0)
        return fail(ps, "%s: %s", tag, e);
    return 0;
}

static int handle_line(pstate_t *ps, const char *l)
{
    tl_m3u8_t *m = ps->m;
    if (l[0] == 0)
        return 0;
    if (l[0] != '#') {
        /* A URI line. */
        if (ps->pending_stream_inf) {
            if (m->nvariants >= TL_MAX_VARIANTS)
                return fail(ps, "too many variants");
            tl_variant_t *v = &m->variants[m->nvariants++];
            v->attrs = ps->stream_inf;
            scopy(v->uri, sizeof(v->uri), l);
            ps->pending_stream_inf = false;
            return 0;
        }
        if (!ps->pending_extinf)
            return fail(ps, "URI line without EXTINF or STREAM-INF");
        if (m->nsegs == ps->seg_cap) {
            int nc = ps->seg_cap ? ps->seg_cap * 2 : 32;
            tl_seg_t *ns = realloc(m->segs, (size_t)nc * sizeof(*ns));
            if (!ns)
                return fail(ps, "out of memory");
            m->segs = ns;
            ps->seg_cap = nc;
        }
        tl_seg_t *s = &m->segs[m->nsegs++];
        memset(s, 0, sizeof(*s));
        s->duration = ps->extinf;
        scopy(s->uri, sizeof(s->uri), l);
        s->discontinuity = ps->pending_disc;
        s->gap = ps->pending_gap;
        s->pdt_ms = ps->pending_pdt;
        scopy(s->map_uri, sizeof(s->map_uri), m->map_uri);
        s->first_part = ps->part_start;
        s->nparts = m->nparts - ps->part_start;
        ps->part_start = m->nparts;
        ps->pending_extinf = false;
        ps->pending_disc = ps->pending_gap = false;
        ps->pending_pdt = -1;
        return 0;
    }
    if (strncmp(l, "#EXT", 4) != 0)
        return 0; /* comment */
    if (ps->pending_extinf && strncmp(l, "#EXT-X-", 7) == 0 &&
        strncmp(l, "#EXT-X-BYTERANGE", 16) != 0 &&
        strncmp(l, "#EXT-X-GAP", 10) != 0 &&
        strncmp(l, "#EXT-X-BITRATE", 14) != 0)
        return fail(ps, "tag between EXTINF and its URI: %.40s", l);

    const char *v;
    if (strcmp(l, "#EXTM3U") == 0) {
        return fail(ps, "#EXTM3U repeated");
    } else if (strncmp(l, "#EXT-X-VERSION:", 15) == 0) {
        int64_t x;
        if (once(ps, &ps->seen_version, "EXT-X-VERSION") ||
            tl_parse_int(l + 15, &x))
            return fail(ps, "bad or repeated EXT-X-VERSION");
        m->version = (int)x;
    } else if (strncmp(l, "#EXT-X-TARGETDURATION:", 22) == 0) {
        int64_t x;
        if (once(ps, &ps->seen_td, "EXT-X-TARGETDURATION") ||
            header_tag(ps, "EXT-X-TARGETDURATION"))
            return -1;
        if (tl_parse_int(l + 22, &x) || x < 1)
            return fail(ps, "bad TARGETDURATION '%s'", l + 22);
        m->target_duration = (int)x;
    } else if (strncmp(l, "#EXT-X-MEDIA-SEQUENCE:", 22) == 0) {
        if (once(ps, &ps->seen_ms, "EXT-X-MEDIA-SEQUENCE") ||
            header_tag(ps, "EXT-X-MEDIA-SEQUENCE"))
            return -1;
        if (tl_parse_int(l + 22, &m->media_sequence))
            return fail(ps, "bad MEDIA-SEQUENCE");
        if (ps->seen_skip)
            return fail(ps, "MEDIA-SEQUENCE after EXT-X-SKIP");
    } else if (strncmp(l, "#EXT-X-DISCONTINUITY-SEQUENCE:", 30) == 0) {
        if (once(ps, &ps->seen_ds, "EXT-X-DISCONTINUITY-SEQUENCE") ||
            header_tag(ps, "EXT-X-DISCONTINUITY-SEQUENCE"))
            return -1;
        if (tl_parse_int(l + 30, &m->disc_sequence))
            return fail(ps, "bad DISCONTINUITY-SEQUENCE");
        if (ps->seen_skip)
            return fail(ps, "DISCONTINUITY-SEQUENCE after EXT-X-SKIP");
    } else if (strncmp(l, "#EXT-X-SERVER-CONTROL:", 22) == 0) {
        if (once(ps, &ps->seen_sc, "EXT-X-SERVER-CONTROL") ||
            header_tag(ps, "EXT-X-SERVER-CONTROL") ||
            attrs(ps, l + 22, &m->server_control, "SERVER-CONTROL"))
            return -1;
        m->has_server_control = true;
        scopy(m->server_control_raw, sizeof(m->server_control_raw), l + 22);
    } else if (strncmp(l, "#EXT-X-PART-INF:", 16) == 0) {
        tl_attrs_t a;
        if (once(ps, &ps->seen_pi, "EXT-X-PART-INF") ||
            header_tag(ps, "EXT-X-PART-INF") ||
            attrs(ps, l + 16, &a, "PART-INF"))
            return -1;
        if (tl_parse_decimal(tl_attr(&a, "PART-TARGET"), &m->part_target))
            return fail(ps, "PART-INF without a valid PART-TARGET");
        scopy(m->part_inf_raw, sizeof(m->part_inf_raw), l + 16);
    } else if (strncmp(l, "#EXT-X-SKIP:", 12) == 0) {
        tl_attrs_t a;
        int64_t x;
        if (once(ps, &ps->seen_skip, "EXT-X-SKIP") ||
            header_tag(ps, "EXT-X-SKIP") || attrs(ps, l + 12, &a, "SKIP"))
            return -1;
        if (tl_parse_int(tl_attr(&a, "SKIPPED-SEGMENTS"), &x))
            return fail(ps, "SKIP without SKIPPED-SEGMENTS");
        m->skipped = (int)x;
    } else if (strcmp(l, "#EXT-X-ENDLIST") == 0) {
        if (once(ps, &ps->seen_end, "EXT-X-ENDLIST"))
            return -1;
        ps->media_tags = true;
        m->endlist = true;
    } else if (strncmp(l, "#EXT-X-PLAYLIST-TYPE:", 21) == 0) {
        if (once(ps, &ps->seen_pt, "EXT-X-PLAYLIST-TYPE") ||
            header_tag(ps, "EXT-X-PLAYLIST-TYPE"))
            return -1;
        scopy(m->playlist_type, sizeof(m->playlist_type), l + 21);
    } else if (strcmp(l, "#EXT-X-INDEPENDENT-SEGMENTS") == 0) {
        if (once(ps, &ps->seen_is, "EXT-X-INDEPENDENT-SEGMENTS"))
            return -1;
        m->independent_segments = true;
    } else if (strncmp(l, "#EXT-X-MAP:", 11) == 0) {
        tl_attrs_t a;
        if (attrs(ps, l + 11, &a, "MAP"))
            return -1;
        if (m->nparts > ps->part_start)
            return fail(ps, "EXT-X-MAP after the segment's first PART");
        if (!(v = tl_attr(&a, "URI")))
            return fail(ps, "EXT-X-MAP without URI");
        scopy(m->map_uri, sizeof(m->map_uri), v);
        m->nmaps++;
    } else if (strcmp(l, "#EXT-X-DISCONTINUITY") == 0) {
        mark_media(ps);
        if (m->nparts > ps->part_start)
            return fail(ps, "DISCONTINUITY after the segment's first PART");
        ps->pending_disc = true;
    } else if (strcmp(l, "#EXT-X-GAP") == 0) {
        mark_media(ps);
        ps->pending_gap = true;
    } else if (strncmp(l, "#EXT-X-PROGRAM-DATE-TIME:", 25) == 0) {
        mark_media(ps);
        if (m->nparts > ps->part_start)
            return fail(ps, "PROGRAM-DATE-TIME after the segment's first "
                            "PART");
        if (parse_pdt(l + 25, &ps->pending_pdt))
            return fail(ps, "bad PROGRAM-DATE-TIME '%s'", l + 25);
        m->pdt_count++;
    } else if (strncmp(l, "#EXTINF:", 8) == 0) {
        mark_media(ps);
        char num[64];
        size_t n = strcspn(l + 8, ",");
        if (l[8 + n] != ',' || n == 0 || n >= sizeof(num))
            return fail(ps, "EXTINF without ','");
        memcpy(num, l + 8, n);
        num[n] = 0;
        if (tl_parse_decimal(num, &ps->extinf))
            return fail(ps, "bad EXTINF duration '%s'", num);
        ps->pending_extinf = true;
    } else if (strncmp(l, "#EXT-X-PART:", 12) == 0) {
        tl_attrs_t a;
        mark_media(ps);
        if (attrs(ps, l + 12, &a, "PART"))
            return -1;
        if (m->nparts == ps->part_cap) {
            int nc = ps->part_cap ? ps->part_cap * 2 : 64;
            tl_part_t *np = realloc(m->parts, (size_t)nc * sizeof(*np));
            if (!np)
                return fail(ps, "out of memory");
            m->parts = np;
            ps->part_cap = nc;
        }
        tl_part_t *p = &m->parts[m->nparts];
        memset(p, 0, sizeof(*p));
        if (!(v = tl_attr(&a, "URI")))
            return fail(ps, "PART without URI");
        scopy(p->uri, sizeof(p->uri), v);
        if (tl_parse_decimal(tl_attr(&a, "DURATION"), &p->duration))
            return fail(ps, "PART without a valid DURATION");
        if ((v = tl_attr(&a, "INDEPENDENT"))) {
            if (strcmp(v, "YES") != 0)
                return fail(ps, "INDEPENDENT=%s (only YES is allowed)", v);
            p->independent = true;
        }
        if ((v = tl_attr(&a, "GAP"))) {
            if (strcmp(v, "YES") != 0)
                return fail(ps, "GAP=%s (only YES is allowed)", v);
            p->gap = true;
        }
        p->index = m->nparts - ps->part_start;
        m->nparts++;
    } else if (strncmp(l, "#EXT-X-PRELOAD-HINT:", 20) == 0) {
        tl_attrs_t a;
        ps->media_tags = true;
        if (attrs(ps, l + 20, &a, "PRELOAD-HINT"))
            return -1;
        if (!tl_attr(&a, "TYPE") || !tl_attr(&a, "URI"))
            return fail(ps, "PRELOAD-HINT without TYPE or URI");
        if (m->npreload == 0) {
            scopy(m->preload_type, sizeof(m->preload_type),
                  tl_attr(&a, "TYPE"));
            scopy(m->preload_uri, sizeof(m->preload_uri), tl_attr(&a, "URI"));
        }
        m->npreload++;
    } else if (strncmp(l, "#EXT-X-RENDITION-REPORT:", 24) == 0) {
        tl_attrs_t a;
        ps->media_tags = true;
        if (attrs(ps, l + 24, &a, "RENDITION-REPORT"))
            return -1;
        if (m->nreports >= TL_MAX_REPORTS)
            return fail(ps, "too many RENDITION-REPORTs");
        tl_report_t *r = &m->reports[m->nreports++];
        if (!(v = tl_attr(&a, "URI")))
            return fail(ps, "RENDITION-REPORT without URI");
        scopy(r->uri, sizeof(r->uri), v);
        r->last_msn = r->last_part = -1;
        if ((v = tl_attr(&a, "LAST-MSN")) && tl_parse_int(v, &r->last_msn))
            return fail(ps, "bad LAST-MSN");
        if ((v = tl_attr(&a, "LAST-PART")) && tl_parse_int(v, &r->last_part))
            return fail(ps, "bad LAST-PART");
    } else if (strncmp(l, "#EXT-X-STREAM-INF:", 18) == 0) {
        m->multivariant = true;
        if (ps->pending_stream_inf)
            return fail(ps, "STREAM-INF without URI");
        if (attrs(ps, l + 18, &ps->stream_inf, "STREAM-INF"))
            return -1;
        ps->pending_stream_inf = true;
    } else if (strncmp(l, "#EXT-X-MEDIA:", 13) == 0) {
        m->multivariant = true;
        if (m->nmedia >= TL_MAX_MEDIA)
            return fail(ps, "too many EXT-X-MEDIA");
        if (attrs(ps, l + 13, &m->media[m->nmedia], "MEDIA"))
            return -1;
        m->nmedia++;
    }
    /* Other tags: ignored, as a client would. */
    return 0;
}

int tl_m3u8_parse(const char *text, size_t len, tl_m3u8_t *m, char *err,
                  size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->version = -1;
    m->target_duration = -1;
    m->part_target = -1;
    m->skipped = -1;
    pstate_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.m = m;
    ps.err = err;
    ps.errlen = errlen;
    ps.pending_pdt = -1;
    if (errlen)
        err[0] = 0;
    if (len > MAX_TEXT)
        return fail(&ps, "playlist larger than 1 MiB");
    if (len >= 3 && (uint8_t)text[0] == 0xEF && (uint8_t)text[1] == 0xBB)
        return fail(&ps, "BOM");
    size_t off = 0;
    char line[MAX_LINE];
    while (off < len) {
        ps.line++;
        size_t n = 0;
        while (off + n < len && text[off + n] != '\n')
            n++;
        size_t ll = n;
        if (ll > 0 && text[off + ll - 1] == '\r')
            ll--;
        if (ll >= sizeof(line))
            return fail(&ps, "line too long");
        memcpy(line, text + off, ll);
        line[ll] = 0;
        off += n + (off + n < len ? 1 : 0);
        for (size_t i = 0; i < ll; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c < 0x20 && c != '\t')
                return fail(&ps, "control character 0x%02x", c);
        }
        if (strlen(line) != ll)
            return fail(&ps, "NUL byte");
        if (ps.line == 1) {
            if (strcmp(line, "#EXTM3U") != 0)
                return fail(&ps, "first line is not #EXTM3U");
            continue;
        }
        if (handle_line(&ps, line))
            return -1;
    }
    if (ps.line == 0)
        return fail(&ps, "empty playlist");
    if (ps.pending_extinf)
        return fail(&ps, "EXTINF without URI at the end");
    if (ps.pending_stream_inf)
        return fail(&ps, "STREAM-INF without URI at the end");
    if (m->multivariant && ps.media_tags)
        return fail(&ps, "media playlist tags in a multivariant playlist");
    if (!m->multivariant) {
        if (m->target_duration < 0)
            return fail(&ps, "no EXT-X-TARGETDURATION");
        if (m->nparts > 0 && m->part_target < 0)
            return fail(&ps, "EXT-X-PART without EXT-X-PART-INF");
    }
    /* Number everything. */
    int64_t base = m->media_sequence + (m->skipped > 0 ? m->skipped : 0);
    for (int i = 0; i < m->nsegs; i++) {
        tl_seg_t *s = &m->segs[i];
        s->msn = base + i;
        for (int k = 0; k < s->nparts; k++)
            m->parts[s->first_part + k].msn = s->msn;
    }
    m->ntrailing = m->nparts - ps.part_start;
    for (int k = ps.part_start; k < m->nparts; k++)
        m->parts[k].msn = base + m->nsegs;
    return 0;
}

void tl_m3u8_free(tl_m3u8_t *m)
{
    free(m->segs);
    free(m->parts);
    m->segs = NULL;
    m->parts = NULL;
    m->nsegs = m->nparts = 0;
}

int64_t tl_m3u8_last_msn(const tl_m3u8_t *m)
{
    return m->nsegs ? m->segs[m->nsegs - 1].msn : -1;
}

const tl_seg_t *tl_m3u8_seg(const tl_m3u8_t *m, int64_t msn)
{
    for (int i = 0; i < m->nsegs; i++)
        if (m->segs[i].msn == msn)
            return &m->segs[i];
    return NULL;
}

const tl_part_t *tl_m3u8_part(const tl_m3u8_t *m, int64_t msn, int index)
{
    for (int i = 0; i < m->nparts; i++)
        if (m->parts[i].msn == msn && m->parts[i].index == index)
            return &m->parts[i];
    return NULL;
}

const tl_part_t *tl_m3u8_last_part(const tl_m3u8_t *m)
{
    return m->nparts ? &m->parts[m->nparts - 1] : NULL;
}

int tl_m3u8_nparts_of(const tl_m3u8_t *m, int64_t msn)
{
    int n = 0;
    for (int i = 0; i < m->nparts; i++)
        if (m->parts[i].msn == msn)
            n++;
    return n;
}

int tl_parse_media_uri(const char *uri, int64_t *msn_out, int64_t *part_out)
{
    const char *base = strrchr(uri, '/');
    base = base ? base + 1 : uri;
    size_t bl = strlen(base);
    if (bl < 5 || strcmp(base + bl - 4, ".m4s") != 0)
        return -1;
    char tmp[64];
    if (bl - 4 >= sizeof(tmp))
        return -1;
    memcpy(tmp, base, bl - 4);
    tmp[bl - 4] = 0;
    char *dot = strchr(tmp, '.');
    *part_out = -1;
    if (dot) {
        *dot = 0;
        if (tl_parse_int(dot + 1, part_out))
            return -1;
    }
    return tl_parse_int(tmp, msn_out);
}
