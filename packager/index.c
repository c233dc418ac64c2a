/*
 * packager/index.c - the segment/part index of each rendition.
 *
 * A rendition keeps its retained segments oldest first in segs[]; the last
 * one may be in progress (r->cur). Publishing a part appends it (and, for
 * the last part, completes the segment: its bytes become the parts
 * concatenated, built once), slides the window, drops what has been out of
 * the playlist long enough, re-renders every playlist of the stream (the
 * rendition reports change) and wakes the waiters whose condition became
 * true. Everything here runs under stream->lock except the waking.
 *
 * Gap parts (no bytes, GAP=YES) stand for a hole in a track's timeline;
 * a segment made only of them is a gap segment (EXT-X-GAP, no bytes).
 * Init sections are kept as long as a retained segment uses one (and the
 * current one always).
 *
 * Invariants: MSNs of a rendition increase by one; parts and segments are
 * immutable once published; a part stays retrievable >= 3 x TD after it
 * left the playlist, a segment >= max(3 x TD, its duration + the window)
 * after it left; the counts are bounded (PKG_RETAIN_EXTRA beyond the
 * window). TD is fixed when the stream's first segment completes.
 */
#include "pkg_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <libavutil/mathematics.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t ticks_us(const pkg_rend_t *r, int64_t t)
{
    return r->timescale > 0 ? av_rescale(t, 1000000, r->timescale) : 0;
}

pkg_seg_t *pkg_idx_find(const pkg_rend_t *r, int64_t msn)
{
    for (int i = r->nsegs - 1; i >= 0; i--) {
        if (r->segs[i]->msn == msn)
            return r->segs[i];
        if (r->segs[i]->msn < msn)
            break;
    }
    return NULL;
}

static void seg_free(pkg_seg_t *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nparts; i++)
        pd_buf_unref(&g->parts[i].buf);
    free(g->parts);
    pd_buf_unref(&g->buf);
    free(g);
}

void pkg_rend_free(pkg_rend_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nsegs; i++)
        seg_free(r->segs[i]);
    free(r->segs);
    for (int i = 0; i < r->ninits; i++)
        pd_buf_unref(&r->inits[i].buf);
    free(r->inits);
    pd_buf_unref(&r->pl_full);
    pd_buf_unref(&r->pl_delta);
    pkg_cmaf_close(&r->mux);
    pkg_writer_free_rend(r);
    free(r);
}

pkg_seg_t *pkg_idx_begin(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                         int64_t start, int64_t pdt_us, bool disc,
                         unsigned init_id)
{
    pkg_seg_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->msn = msn;
    g->start = start;
    g->start_pts = start;
    g->pdt_us = pdt_us;
    g->discontinuity = disc;
    g->init_id = init_id;
    g->removed_edge_us = -1;
    g->parts_gone_edge_us = -1;
    pthread_mutex_lock(&s->lock);
    const pkg_seg_t *prev = r->nsegs ? r->segs[r->nsegs - 1] : NULL;
    g->disc_seq = (prev ? prev->disc_seq : 0) + (disc ? 1 : 0);
    if (r->nsegs == r->segs_cap) {
        int ncap = r->segs_cap ? r->segs_cap * 2 : 32;
        pkg_seg_t **n = realloc(r->segs, (size_t)ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&s->lock);
            free(g);
            return NULL;
        }
        r->segs = n;
        r->segs_cap = ncap;
    }
    r->segs[r->nsegs++] = g;
    r->cur = g;
    pthread_mutex_unlock(&s->lock);
    return g;
}

static bool init_used(const pkg_rend_t *r, unsigned id)
{
    for (int i = 0; i < r->nsegs; i++)
        if (r->segs[i]->init_id == id)
            return true;
    return false;
}

static void init_remove(pkg_rend_t *r, int i)
{
    pd_buf_unref(&r->inits[i].buf);
    memmove(&r->inits[i], &r->inits[i + 1],
            (size_t)(r->ninits - i - 1) * sizeof(r->inits[0]));
    r->ninits--;
}

/* Drops the inits no retained segment uses, except the current (last)
 * one. Stream lock held. */
static void prune_inits(pkg_rend_t *r)
{
    for (int i = r->ninits - 2; i >= 0; i--)
        if (!init_used(r, r->inits[i].id))
            init_remove(r, i);
}

void pkg_idx_add_init(pkg_stream_t *s, pkg_rend_t *r, unsigned id,
                      pd_buf_t **init)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < r->ninits; i++)
        if (r->inits[i].id == id) { /* its segment was dropped empty */
            init_remove(r, i);
            break;
        }
    prune_inits(r);
    if (r->ninits == PKG_MAX_INITS) {
        /* more inits in use than retained segments can hold: cannot
         * happen with the retention bound; never grow beyond anyway */
        PD_LOGW(PKG_MOD, "%s: %s: too many init sections in use; dropping "
                "the oldest", s->name, r->name);
        init_remove(r, 0);
    }
    if (r->ninits == r->inits_cap) {
        int ncap = r->inits_cap ? r->inits_cap * 2 : 4;
        if (ncap > PKG_MAX_INITS)
            ncap = PKG_MAX_INITS;
        struct pkg_init_s *n = realloc(r->inits,
                                       (size_t)ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&s->lock);
            pd_buf_unref(init);
            return;
        }
        r->inits = n;
        r->inits_cap = ncap;
    }
    r->inits[r->ninits].id = id;
    r->inits[r->ninits].buf = *init;
    r->ninits++;
    if (s->pkg->sink.init)
        s->pkg->sink.init(s->pkg->sink.opaque, s->name, r->name, id, *init);
    *init = NULL;
    pthread_mutex_unlock(&s->lock);
}

/* ---- window and retention --------------------------------------------- */

static void slide_window(pkg_stream_t *s, pkg_rend_t *r)
{
    const pd_config_t *cfg = s->pkg->cfg;
    int64_t td_us = (int64_t)(s->td_s > 0 ? s->td_s : 1) * 1000000;
    int first = -1, ncomplete = 0;
    int64_t listed_us = 0;
    for (int i = 0; i < r->nsegs; i++) {
        pkg_seg_t *g = r->segs[i];
        if (!g->complete || g->msn < r->first_listed)
            continue;
        if (first < 0)
            first = i;
        ncomplete++;
        listed_us += ticks_us(r, g->dur);
    }
    /* keep >= window_segments and >= 3 x TD of content listed */
    while (first >= 0 && first < r->nsegs && ncomplete > cfg->window_segments) {
        pkg_seg_t *g = r->segs[first];
        if (!g->complete)
            break;
        int64_t d = ticks_us(r, g->dur);
        if (listed_us - d < 3 * td_us && ncomplete <= 1000)
            break;
        g->removed_edge_us = r->edge_us;
        if (g->parts_gone_edge_us < 0)
            g->parts_gone_edge_us = r->edge_us;
        listed_us -= d;
        ncomplete--;
        first++;
        r->first_listed = first < r->nsegs ? r->segs[first]->msn
                                           : r->last_msn + 1;
    }
    /* parts listed only for the last part_window_segments complete ones */
    int seen = 0;
    for (int i = r->nsegs - 1; i >= 0; i--) {
        pkg_seg_t *g = r->segs[i];
        if (!g->complete)
            continue;
        if (++seen > cfg->part_window_segments && g->parts_gone_edge_us < 0)
            g->parts_gone_edge_us = r->edge_us;
    }
    /* listed duration, for the segments' availability after removal */
    int64_t window_us = listed_us;
    int64_t keep_min = 3 * td_us + 1000000;
    int drop = 0;
    int cap = cfg->window_segments + PKG_RETAIN_EXTRA;
    for (int i = 0; i < r->nsegs; i++) {
        pkg_seg_t *g = r->segs[i];
        if (g->removed_edge_us < 0)
            break;
        int64_t keep = window_us + ticks_us(r, g->dur) + 1000000;
        if (keep < keep_min)
            keep = keep_min;
        if (r->edge_us - g->removed_edge_us > keep || r->nsegs - drop > cap)
            drop = i + 1;
        else
            break;
    }
    for (int i = 0; i < drop; i++)
        seg_free(r->segs[i]);
    if (drop) {
        memmove(r->segs, r->segs + drop,
                (size_t)(r->nsegs - drop) * sizeof(r->segs[0]));
        r->nsegs -= drop;
        prune_inits(r);
    }
    for (int i = 0; i < r->nsegs; i++) {
        pkg_seg_t *g = r->segs[i];
        if (g->parts_gone_edge_us < 0)
            break;
        if (r->edge_us - g->parts_gone_edge_us > keep_min)
            for (int j = 0; j < g->nparts; j++)
                pd_buf_unref(&g->parts[j].buf);
    }
}

static int complete_segment(pkg_stream_t *s, pkg_rend_t *r, pkg_seg_t *g)
{
    size_t total = 0;
    for (int i = 0; i < g->nparts; i++)
        total += g->parts[i].buf ? g->parts[i].buf->len : 0;
    if (total == 0) {
        g->gap = true; /* gap parts only: EXT-X-GAP, nothing to serve */
    } else {
        pd_buf_t *b = pd_buf_new(total);
        if (!b)
            return PD_ENOMEM;
        size_t off = 0;
        for (int i = 0; i < g->nparts; i++) {
            if (!g->parts[i].buf)
                continue;
            memcpy(b->data + off, g->parts[i].buf->data,
                   g->parts[i].buf->len);
            off += g->parts[i].buf->len;
        }
        g->buf = b;
    }
    g->complete = true;
    r->last_msn = g->msn;
    r->edge_us += ticks_us(r, g->dur);
    r->total_dur += g->dur;
    r->total_bytes += g->bytes; /* complete segments only: the rate's
                                   bytes and duration cover the same */
    r->total_frames += g->frames;
    if (r->first_listed == 0)
        r->first_listed = g->msn;
    if (s->td_s == 0) {
        const pd_config_t *cfg = s->pkg->cfg;
        int td = (cfg->segment_target_ms + 999) / 1000;
        int r1 = (int)floor((double)g->dur / r->timescale + 0.5);
        s->td_s = td > r1 ? td : r1;
        if (s->td_s < 1)
            s->td_s = 1;
        PD_LOGI(PKG_MOD, "%s: target duration %d s", s->name, s->td_s);
    }
    slide_window(s, r);
    if (g->buf && s->pkg->sink.segment) {
        pkg_seg_event_t e = {0};
        e.stream = s->name;
        e.rendition = r->name;
        e.msn = g->msn;
        e.duration_us = ticks_us(r, g->dur);
        e.pdt_us = g->pdt_us;
        e.discontinuity = g->discontinuity;
        e.init_id = g->init_id;
        e.codecs = r->codecs;
        e.width = r->media == PKG_MEDIA_VIDEO ? r->width : 0;
        e.height = r->media == PKG_MEDIA_VIDEO ? r->height : 0;
        e.buf = g->buf;
        s->pkg->sink.segment(s->pkg->sink.opaque, &e);
    }
    return PD_OK;
}

/* ---- readiness -------------------------------------------------------- */

static bool pos_ge(int64_t am, int64_t ap, int64_t bm, int64_t bp)
{
    return am > bm || (am == bm && ap >= bp);
}

void pkg_idx_normalise(const pkg_rend_t *r, int64_t *msn, int64_t *part)
{
    if (*part < 0 || *msn > r->last_msn)
        return;
    const pkg_seg_t *g = pkg_idx_find(r, *msn);
    if (g && g->complete && *part >= g->nparts) {
        (*msn)++; /* past the final part: treat as (M+1, 0) */
        *part = 0;
    }
}

bool pkg_idx_playlist_ready(const pkg_rend_t *r, int64_t msn, int64_t part)
{
    if (part < 0)
        return r->last_msn >= msn;
    for (int guard = 0; guard < 1000000; guard++) {
        if (r->last_msn >= msn) {
            const pkg_seg_t *g = pkg_idx_find(r, msn);
            if (!g || part < g->nparts)
                return true;
            msn++; /* past the final part: treat as (M+1, 0) */
            part = 0;
            continue;
        }
        return r->pm >= 0 && pos_ge(r->pm, r->pn, msn, part);
    }
    return true;
}

static bool part_settled(const pkg_rend_t *r, int64_t msn, int64_t part)
{
    if (r->last_msn >= msn)
        return true;
    return r->pm >= 0 && pos_ge(r->pm, r->pn, msn, part);
}

bool pkg_idx_waiter_ready(const pkg_stream_t *s, const pkg_rend_t *r,
                          const pkg_waiter_t *w)
{
    if (s->removed || s->state == PKG_ENDED)
        return true;
    switch (w->kind) {
    case PKG_W_MV:
        return s->mv != NULL;
    case PKG_W_CONTENT:
        return r && r->pl_full != NULL;
    case PKG_W_PLAYLIST:
        return r && r->pl_full && pkg_idx_playlist_ready(r, w->msn, w->part);
    case PKG_W_PART:
        return r && part_settled(r, w->msn, w->part);
    default:
        return true;
    }
}

/* ---- rendering -------------------------------------------------------- */

static double snap_fps(double f)
{
    static const double common[] = {23.976, 24, 25, 29.97, 30, 48, 50,
                                    59.94, 60, 120};
    double best = 0, dist = 1e9;
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        if (fabs(f - common[i]) < dist) {
            dist = fabs(f - common[i]);
            best = common[i];
        }
    if (dist <= best * 0.005)
        return best;
    return floor(f * 1000 + 0.5) / 1000;
}

/* Peak and average bits/s of video rendition v plus the audio a (may be
 * NULL), measured over the lead's listed segments; before v has complete
 * segments, its rung's configured maxrate stands in for it. */
static void measure_bw(const pkg_stream_t *s, const pkg_rend_t *lead,
                       const pkg_rend_t *v, const pkg_rend_t *a,
                       int64_t *peak_out, int64_t *avg_out)
{
    double peak = 0;
    for (int i = 0; i < lead->nsegs; i++) {
        const pkg_seg_t *g = lead->segs[i];
        if (!g->complete || g->msn < lead->first_listed || g->dur <= 0)
            continue;
        const pkg_rend_t *rs[2] = {v, a};
        double bytes = 0;
        bool have = true;
        for (int k = 0; k < 2; k++) {
            const pkg_rend_t *o = rs[k];
            if (!o)
                continue;
            const pkg_seg_t *og = o == lead ? g : pkg_idx_find(o, g->msn);
            if (og && og->complete && !og->gap)
                bytes += (double)og->bytes;
            else if (o->total_dur > 0) /* estimate from its rate */
                bytes += (double)o->total_bytes *
                         ((double)g->dur / lead->timescale) /
                         ((double)o->total_dur / o->timescale);
            else if (o == v)
                have = false;
        }
        if (!have)
            continue;
        double bps = bytes * 8.0 / ((double)g->dur / lead->timescale);
        if (bps > peak)
            peak = bps;
    }
    double avg = 0;
    const pkg_rend_t *rs[2] = {v, a};
    for (int k = 0; k < 2; k++)
        if (rs[k] && rs[k]->total_dur > 0)
            avg += (double)rs[k]->total_bytes * 8.0 /
                   ((double)rs[k]->total_dur / rs[k]->timescale);
    if (v && v->total_dur <= 0 && v->rung >= 0 && v->rung < s->nrungs &&
        !s->rungs[v->rung].passthrough) {
        double conf = (double)s->rungs[v->rung].maxrate_kbps * 1000.0;
        double aud = a && a->total_dur > 0 ? avg : 0;
        peak = conf + aud * 1.1;
        avg = (double)s->rungs[v->rung].bitrate_kbps * 1000.0 + aud;
    }
    *peak_out = (int64_t)ceil(peak);
    *avg_out = (int64_t)ceil(avg);
    if (*avg_out > *peak_out)
        *peak_out = *avg_out;
}

/* The multivariant: one variant per video rendition, in ladder order
 * (the lead first), sharing the audio group. Rendered once the lead has
 * a complete segment and every working rung has its codec string (or,
 * after 3 segments, without the rungs still missing one). */
static void render_mv(pkg_stream_t *s)
{
    pkg_rend_t *lead = s->rends[s->lead];
    if (!lead || lead->last_msn == 0)
        return;
    pkg_rend_t *vids[PKG_MAX_RENDS];
    int nv = 0;
    pkg_rend_t *a = NULL;
    if (lead->media == PKG_MEDIA_VIDEO)
        vids[nv++] = lead;
    for (int rung = 1; rung <= PD_LADDER_MAX; rung++)
        for (int i = 0; i < s->nrends; i++)
            if (s->rends[i] != lead && s->rends[i]->media == PKG_MEDIA_VIDEO &&
                s->rends[i]->rung == rung)
                vids[nv++] = s->rends[i];
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->media == PKG_MEDIA_AUDIO && !a)
            a = s->rends[i];
    bool early = lead->last_msn - lead->first_listed < 2;
    pl_variant_t vars[PKG_MAX_RENDS];
    int n = 0;
    for (int i = 0; i < nv; i++) {
        pkg_rend_t *v = vids[i];
        if (!v->codecs[0]) {
            if (early && !v->shed)
                return; /* wait for this rung's first segment */
            continue;
        }
        pl_variant_t *o = &vars[n++];
        memset(o, 0, sizeof(*o));
        o->name = v->name;
        o->codecs = v->codecs;
        o->width = v->width;
        o->height = v->height;
        /* FRAME-RATE: an encoded rung's is its encoder's (a rung that
         * drops frames under load still has that maximum); the source's
         * is measured */
        if (v->encoded && v->rung >= 0 && v->rung < s->nrungs &&
            s->rungs[v->rung].fps_den > 0)
            o->fps = (double)s->rungs[v->rung].fps_num /
                     s->rungs[v->rung].fps_den;
        else if (v->total_dur > 0 && v->total_frames > 0)
            o->fps = snap_fps((double)v->total_frames * v->timescale /
                              (double)v->total_dur);
        measure_bw(s, lead, v, a, &o->bandwidth, &o->avg_bandwidth);
    }
    pl_mv_t mv = {0};
    mv.variants = vars;
    mv.nvariants = n;
    mv.has_audio = a != NULL;
    if (a) {
        mv.audio_codecs = a->codecs;
        mv.audio_channels = a->aac.channels;
        if (n == 0)
            measure_bw(s, lead, NULL, a, &mv.bandwidth, &mv.avg_bandwidth);
    }
    mv.independent = s->all_indep;
    pd_buf_t *b = NULL;
    if (pl_render_multivariant(&mv, &b) == PD_OK) {
        pd_buf_unref(&s->mv);
        s->mv = b;
    }
}

static void render_rend(pkg_stream_t *s, pkg_rend_t *r)
{
    if (r->last_msn == 0 || r->first_listed == 0 || s->td_s == 0)
        return;
    const pd_config_t *cfg = s->pkg->cfg;
    bool ended = s->state == PKG_ENDED;
    int first = -1, nparts = 0;
    for (int i = 0; i < r->nsegs; i++) {
        if (r->segs[i]->msn >= r->first_listed && first < 0)
            first = i;
        if (first >= 0)
            nparts += r->segs[i]->nparts;
    }
    if (first < 0)
        return;
    int n = r->nsegs - first;
    pl_seg_t *segs = calloc((size_t)n, sizeof(*segs));
    pl_part_t *parts = calloc((size_t)(nparts ? nparts : 1), sizeof(*parts));
    pl_report_t reports[PKG_MAX_RENDS];
    if (!segs || !parts) {
        free(segs);
        free(parts);
        return;
    }
    int ns = 0, np = 0;
    for (int i = first; i < r->nsegs; i++) {
        const pkg_seg_t *g = r->segs[i];
        if (!g->complete && (ended || g->nparts == 0))
            continue;
        pl_seg_t *o = &segs[ns++];
        o->msn = g->msn;
        o->complete = g->complete;
        o->dur = (double)g->dur / r->timescale;
        o->pdt_us = g->pdt_us;
        o->discontinuity = g->discontinuity;
        o->gap = g->gap;
        o->init_id = g->init_id;
        bool list_parts = !g->complete ||
                          g->msn > r->last_msn - cfg->part_window_segments;
        if (list_parts && g->nparts > 0) {
            o->parts = &parts[np];
            o->nparts = g->nparts;
            for (int j = 0; j < g->nparts; j++) {
                parts[np].dur = (double)g->parts[j].dur / r->timescale;
                parts[np].independent = g->parts[j].independent;
                parts[np].gap = g->parts[j].gap;
                np++;
            }
        }
    }
    pl_media_t m = {0};
    m.target_s = s->td_s;
    /* audio parts end at the AAC frame nearest each video part end, so
     * they may run one frame past the configured target: the audio gets
     * a larger PART-TARGET; PART-HOLD-BACK is 3 x the largest, in every
     * playlist of the stream (SERVER-CONTROL identical everywhere) */
    m.part_target_ms = cfg->part_target_ms +
                       (r->media == PKG_MEDIA_AUDIO ? PKG_AUDIO_PT_EXTRA_MS
                                                    : 0);
    m.part_hold_back_ms = 3 * (cfg->part_target_ms + PKG_AUDIO_PT_EXTRA_MS);
    m.segs = segs;
    m.nsegs = ns;
    m.disc_seq = r->segs[first]->disc_seq -
                 (r->segs[first]->discontinuity ? 1 : 0);
    m.ended = ended;
    if (r->cur && !r->cur->complete) {
        m.hint_msn = r->cur->msn;
        m.hint_part = r->cur->nparts;
        /* the next part is the first with a new init section (I6) */
        if (r->cur->nparts == 0 && ns > 0 &&
            segs[ns - 1].init_id != r->cur->init_id)
            m.hint_map_id = r->cur->init_id;
    } else {
        m.hint_msn = r->last_msn + 1;
        m.hint_part = 0;
    }
    int nr = 0;
    for (int k = 0; k < s->nrends; k++) {
        const pkg_rend_t *o = s->rends[k];
        if (o == r || o->pm < 0)
            continue;
        reports[nr].rendition = o->name;
        reports[nr].last_msn = o->pm;
        reports[nr].last_part = o->pn;
        nr++;
    }
    m.reports = reports;
    m.nreports = nr;
    pd_buf_t *full = NULL, *delta = NULL;
    if (pl_render_media(&m, false, &full) == PD_OK) {
        pd_buf_unref(&r->pl_full);
        r->pl_full = full;
    }
    if (!ended && pl_render_media(&m, true, &delta) == PD_OK) {
        pd_buf_unref(&r->pl_delta);
        r->pl_delta = delta;
    } else if (ended) {
        pd_buf_unref(&r->pl_delta);
        r->pl_delta = pd_buf_ref(r->pl_full);
    }
    free(segs);
    free(parts);
}

void pkg_idx_render_all(pkg_stream_t *s)
{
    for (int i = 0; i < s->nrends; i++)
        render_rend(s, s->rends[i]);
    render_mv(s);
}

/* ---- publication ------------------------------------------------------ */

int pkg_idx_publish(pkg_stream_t *s, pkg_rend_t *r, pd_buf_t **part,
                    int64_t dur, int64_t frames, bool indep, bool gap,
                    bool complete)
{
    int rc = PD_OK;
    pkg_waiter_t *fire = NULL;
    pthread_mutex_lock(&s->lock);
    pkg_seg_t *g = r->cur;
    if (!g) {
        pthread_mutex_unlock(&s->lock);
        pd_buf_unref(part);
        return PD_EINVAL;
    }
    bool add = part && *part;
    if (gap && !add && dur > 0)
        add = true;
    else
        gap = false;
    if (add) {
        if (g->nparts == g->cap) {
            int ncap = g->cap ? g->cap * 2 : 8;
            pkg_part_t *n = realloc(g->parts, (size_t)ncap * sizeof(*n));
            if (!n) {
                pthread_mutex_unlock(&s->lock);
                pd_buf_unref(part);
                return PD_ENOMEM;
            }
            g->parts = n;
            g->cap = ncap;
        }
        pkg_part_t *p = &g->parts[g->nparts];
        p->buf = gap ? NULL : *part;
        if (!gap)
            *part = NULL;
        p->dur = dur;
        p->independent = indep && !gap;
        p->gap = gap;
        size_t len = p->buf ? p->buf->len : 0;
        g->dur += dur;
        g->bytes += (int64_t)len;
        g->frames += frames;
        r->pm = g->msn;
        r->pn = g->nparts;
        g->nparts++;
        atomic_fetch_add(&s->pkg->parts_published, 1);
        atomic_store(&s->pkg->last_publish_us, pd_mono_us());
    }
    if (complete) {
        if (g->nparts > 0)
            rc = complete_segment(s, r, g);
        if (g->nparts == 0 || rc) {
            /* nothing published in it: forget it */
            if (r->nsegs && r->segs[r->nsegs - 1] == g)
                r->nsegs--;
            seg_free(g);
        }
        r->cur = NULL;
    }
    pkg_idx_render_all(s);
    pkg_waiters_collect(s, r, &r->waiters, PKG_WAKE_READY, false, &fire);
    if (s->mv)
        pkg_waiters_collect(s, NULL, &s->mv_waiters, PKG_WAKE_READY, false,
                            &fire);
    pthread_mutex_unlock(&s->lock);
    pkg_waiters_fire(s->pkg, fire);
    return rc;
}
