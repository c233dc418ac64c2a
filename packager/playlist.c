/*
 * packager/playlist.c - renders LL-HLS playlists from plain structs.
 *
 * Knows nothing about the index: the caller fills a pl_media_t / pl_mv_t
 * and gets back one immutable buffer. The text follows the rulebook
 * (shared/reference/llhls-checklist.md, sections C, E, F, I, J, K, M):
 *   - head order EXTM3U, VERSION, TARGETDURATION, MEDIA-SEQUENCE,
 *     DISCONTINUITY-SEQUENCE, SERVER-CONTROL, PART-INF, (SKIP), MAP;
 *   - DISCONTINUITY, MAP and PROGRAM-DATE-TIME of a segment come before
 *     its first EXT-X-PART;
 *   - decimal floats with '.' (no locale is ever set), no exponent, at
 *     most 5 decimals;
 *   - an ended playlist has ENDLIST, no PRELOAD-HINT, and is never a delta;
 *   - a part with no media has GAP=YES, a segment with none EXT-X-GAP;
 *   - EXT-X-INDEPENDENT-SEGMENTS only while every segment started with a
 *     sync sample.
 * VERSION is the lowest the features need (C6): 6 in full media playlists
 * (EXT-X-MAP), 9 in delta updates (EXT-X-SKIP), 6 in the multivariant.
 */
#include "pkg_int.h"

#include "../core/err.h"
#include "../core/strbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* "%.5f" with trailing zeros (and a bare '.') trimmed: 0.334, 6, 1.002 */
static const char *fmt_dec(char *buf, size_t len, double v)
{
    if (!(v >= 0) || v > 1e12)
        v = 0;
    snprintf(buf, len, "%.5f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
    return buf;
}

int pl_format_pdt(int64_t wall_us, char *buf, size_t len)
{
    if (wall_us < 0)
        wall_us = 0;
    time_t secs = (time_t)(wall_us / 1000000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return PD_EINVAL;
    char ts[32];
    if (!strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm))
        return PD_EINVAL;
    int n = snprintf(buf, len, "%s.%03dZ", ts, (int)(wall_us / 1000 % 1000));
    return n > 0 && (size_t)n < len ? PD_OK : PD_EINVAL;
}

static void init_uri(char *buf, size_t len, unsigned id)
{
    snprintf(buf, len, "init-%u.mp4", id);
}

int pl_skip_count(const pl_media_t *m)
{
    if (m->ended || m->target_s <= 0)
        return 0;
    /* end of each complete segment relative to the first one's start */
    double end_last = 0;
    int ncomplete = 0;
    for (int i = 0; i < m->nsegs && m->segs[i].complete; i++) {
        end_last += m->segs[i].dur;
        ncomplete++;
    }
    double until = 6.0 * m->target_s;
    double end = 0;
    int skip = 0;
    for (int i = 0; i < ncomplete; i++) {
        end += m->segs[i].dur;
        if (end_last - end > until + 1e-9)
            skip = i + 1;
        else
            break;
    }
    /* the last complete segment is never skipped */
    if (skip >= ncomplete && ncomplete > 0)
        skip = ncomplete - 1;
    return skip;
}

int pl_render_media(const pl_media_t *m, bool delta, pd_buf_t **out)
{
    *out = NULL;
    if (!m || m->nsegs <= 0 || !m->segs || m->target_s <= 0 ||
        m->part_target_ms <= 0)
        return PD_EINVAL;
    if (m->ended)
        delta = false;
    pd_sb_t b = {0};
    char d1[32], d2[32], d3[32], d4[32];
    double pt = m->part_target_ms / 1000.0;
    double phb = m->part_hold_back_ms > 0 ? m->part_hold_back_ms / 1000.0
                                          : 3.0 * pt;
    int skip = delta ? pl_skip_count(m) : 0;

    pd_sb_printf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n", delta ? 9 : 6);
    pd_sb_printf(&b, "#EXT-X-TARGETDURATION:%d\n", m->target_s);
    pd_sb_printf(&b, "#EXT-X-MEDIA-SEQUENCE:%" PRId64 "\n", m->segs[0].msn);
    pd_sb_printf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%" PRId64 "\n",
              m->disc_seq);
    pd_sb_printf(&b,
              "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
              "CAN-SKIP-UNTIL=%s,PART-HOLD-BACK=%s,HOLD-BACK=%s\n",
              fmt_dec(d1, sizeof(d1), 6.0 * m->target_s),
              fmt_dec(d2, sizeof(d2), phb),
              fmt_dec(d3, sizeof(d3), 3.0 * m->target_s));
    pd_sb_printf(&b, "#EXT-X-PART-INF:PART-TARGET=%s\n",
              fmt_dec(d4, sizeof(d4), pt));
    if (delta)
        pd_sb_printf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", skip);

    char uri[32];
    bool map_done = false;
    unsigned map_id = 0;
    for (int i = skip; i < m->nsegs; i++) {
        const pl_seg_t *g = &m->segs[i];
        if (!g->complete && g->nparts <= 0)
            continue; /* nothing of it published yet: only the hint */
        if (g->discontinuity)
            pd_sb_printf(&b, "#EXT-X-DISCONTINUITY\n");
        if (!map_done || g->init_id != map_id) {
            init_uri(uri, sizeof(uri), g->init_id);
            pd_sb_printf(&b, "#EXT-X-MAP:URI=\"%s\"\n", uri);
            map_done = true;
            map_id = g->init_id;
        }
        if (g->pdt_us >= 0) {
            char pdt[40];
            if (pl_format_pdt(g->pdt_us, pdt, sizeof(pdt)) == PD_OK)
                pd_sb_printf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt);
        }
        for (int j = 0; j < g->nparts; j++) {
            const pl_part_t *p = &g->parts[j];
            pd_sb_printf(&b,
                      "#EXT-X-PART:DURATION=%.5f,URI=\"%" PRId64
                      ".%d.m4s\"%s%s\n",
                      p->dur > 0 ? p->dur : 0, g->msn, j,
                      p->independent && !p->gap ? ",INDEPENDENT=YES" : "",
                      p->gap ? ",GAP=YES" : "");
        }
        if (g->complete) {
            if (g->gap)
                pd_sb_printf(&b, "#EXT-X-GAP\n");
            pd_sb_printf(&b, "#EXTINF:%.5f,\n%" PRId64 ".m4s\n",
                      g->dur > 0 ? g->dur : 0, g->msn);
        }
    }
    if (m->ended) {
        pd_sb_printf(&b, "#EXT-X-ENDLIST\n");
    } else {
        pd_sb_printf(&b,
                  "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%" PRId64
                  ".%" PRId64 ".m4s\"\n",
                  m->hint_msn, m->hint_part);
        if (m->hint_map_id > 0) {
            init_uri(uri, sizeof(uri), m->hint_map_id);
            pd_sb_printf(&b, "#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"%s\"\n", uri);
        }
        for (int i = 0; i < m->nreports; i++) {
            const pl_report_t *r = &m->reports[i];
            pd_sb_printf(&b,
                      "#EXT-X-RENDITION-REPORT:URI=\"../%s/index.m3u8\","
                      "LAST-MSN=%" PRId64 ",LAST-PART=%" PRId64 "\n",
                      r->rendition, r->last_msn, r->last_part);
        }
    }
    return pd_sb_finish(&b, out);
}

int pl_render_multivariant(const pl_mv_t *mv, pd_buf_t **out)
{
    *out = NULL;
    pd_sb_t b = {0};
    pd_sb_printf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n");
    if (mv->independent)
        pd_sb_printf(&b, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (mv->nvariants > 0 && mv->has_audio) {
        pd_sb_printf(&b,
                  "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\","
                  "NAME=\"audio\",LANGUAGE=\"und\",DEFAULT=YES,"
                  "AUTOSELECT=YES");
        if (mv->audio_channels > 0 && mv->audio_channels <= 64)
            pd_sb_printf(&b, ",CHANNELS=\"%d\"", mv->audio_channels);
        pd_sb_printf(&b, ",URI=\"audio/index.m3u8\"\n");
    }
    for (int i = 0; i < mv->nvariants; i++) {
        const pl_variant_t *v = &mv->variants[i];
        int64_t bw = v->bandwidth > 0 ? v->bandwidth : 1;
        int64_t avg = v->avg_bandwidth > 0 ? v->avg_bandwidth : bw;
        pd_sb_printf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64
                  ",AVERAGE-BANDWIDTH=%" PRId64 ",CODECS=\"%s%s%s\"",
                  bw, avg, v->codecs ? v->codecs : "",
                  mv->has_audio ? "," : "",
                  mv->has_audio && mv->audio_codecs ? mv->audio_codecs : "");
        if (v->width > 0 && v->height > 0)
            pd_sb_printf(&b, ",RESOLUTION=%dx%d", v->width, v->height);
        if (v->fps > 0)
            pd_sb_printf(&b, ",FRAME-RATE=%.3f", v->fps);
        if (mv->has_audio)
            pd_sb_printf(&b, ",AUDIO=\"audio\"");
        pd_sb_printf(&b, "\n%s/index.m3u8\n", v->name ? v->name : "");
    }
    if (mv->nvariants == 0 && mv->has_audio) {
        int64_t bw = mv->bandwidth > 0 ? mv->bandwidth : 1;
        int64_t avg = mv->avg_bandwidth > 0 ? mv->avg_bandwidth : bw;
        pd_sb_printf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64
                  ",AVERAGE-BANDWIDTH=%" PRId64 ",CODECS=\"%s\"\n"
                  "audio/index.m3u8\n",
                  bw, avg, mv->audio_codecs ? mv->audio_codecs : "");
    }
    return pd_sb_finish(&b, out);
}
