/*
 * packager/writer.c - the write side: frames in, parts and segments out.
 *
 * Runs only in the ingest thread that owns the publisher handle. Per
 * frame: map the publisher's dts (ms) onto the stream's output timeline
 * (a per-stream offset; a backward step or a forward jump > 1 s re-bases
 * it so output continues where it was), then cut.
 *
 * Video leads. One frame is held back because its duration is only known
 * when the next arrives. A part is cut before a frame that would make it
 * longer than PART-TARGET (checked again ahead of time with the previous
 * frame's duration, so a full part is published one frame earlier); a
 * segment is cut at a keyframe once it is >= the segment target minus
 * half a frame, or anyway (at a non-keyframe, logged once) when it would
 * round above TARGETDURATION. Every video part end is queued as a
 * boundary for the audio, which cuts its parts and segments there: an
 * audio frame belongs to the part in which it starts, a part never
 * exceeds PART-TARGET (the frame is moved to the next part instead).
 * Audio waiting for the video is queued (bounded: PKG_AQ_MAX frames,
 * PKG_AQ_SPAN_MS of audio); beyond that it cuts on its own timing.
 * Audio-only streams always cut on their own timing.
 *
 * Invariants: output dts strictly increase per rendition; pts >= dts;
 * a segment's first video part starts with a keyframe except after a
 * forced cut; segments of every rendition share MSNs.
 */
#include "pkg_int.h"

#include "../core/err.h"
#include "../core/log.h"

#include <libavutil/mathematics.h>
#include <stdlib.h>
#include <string.h>

enum { CUT_NONE = 0, CUT_PART, CUT_SEG };

static int64_t ms2t(const pkg_rend_t *r, int64_t ms)
{
    return av_rescale(ms, r->timescale, 1000);
}

static int64_t t2ms_up(const pkg_rend_t *r, int64_t t)
{
    return av_rescale_rnd(t, 1000, r->timescale, AV_ROUND_UP);
}

static pkg_rend_t *rend_of(pkg_stream_t *s, pkg_media_t m)
{
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->media == m)
            return s->rends[i];
    return NULL;
}

static bool is_lead(const pkg_stream_t *s, const pkg_rend_t *r)
{
    return s->rends[s->lead] == r;
}

static void log_reject(pkg_stream_t *s, const char *what)
{
    if (!s->logged_reject) {
        s->logged_reject = true;
        PD_LOGW(PKG_MOD, "%s (peer %s): %s; dropping such frames (logged "
                "once)", s->name, s->peer, what);
    }
}

/* ---- declared configuration ------------------------------------------- */

int pkg_stream_set_config(pkg_stream_t *s, pkg_media_t media,
                          pkg_codec_t codec, const uint8_t *extradata,
                          size_t len)
{
    if (!s || (media != PKG_MEDIA_VIDEO && media != PKG_MEDIA_AUDIO))
        return PD_EINVAL;
    if ((media == PKG_MEDIA_VIDEO && codec != PKG_CODEC_H264) ||
        (media == PKG_MEDIA_AUDIO && codec != PKG_CODEC_AAC))
        return PD_EUNSUP;
    if (!extradata || len == 0 || len > PKG_MAX_EXTRADATA)
        return PD_EINVAL;
    char cs[32];
    pkg_aac_info_t ai;
    if (codec == PKG_CODEC_H264 &&
        pkg_h264_codecs(extradata, len, cs, sizeof(cs)) != PD_OK)
        return PD_EINVAL;
    if (codec == PKG_CODEC_AAC && pkg_aac_parse(extradata, len, &ai) != PD_OK)
        return PD_EINVAL;
    s->declared[media] = true;
    if (s->decl_extra[media] && s->decl_len[media] == len &&
        memcmp(s->decl_extra[media], extradata, len) == 0)
        return PD_OK;
    uint8_t *copy = malloc(len);
    if (!copy)
        return PD_ENOMEM;
    memcpy(copy, extradata, len);
    free(s->decl_extra[media]);
    s->decl_extra[media] = copy;
    s->decl_len[media] = len;
    s->decl_codec[media] = codec;
    s->decl_changed[media] = true;
    pkg_rend_t *r = rend_of(s, media);
    if (r && r->mux) {
        /* mid-stream change: new init at the next segment, marked */
        s->disc_next = true;
        PD_LOGI(PKG_MOD, "%s: %s configuration changed; new init segment "
                "at the next segment", s->name, r->name);
    }
    return PD_OK;
}

void pkg_stream_set_hints(pkg_stream_t *s, int width, int height,
                          double fps)
{
    if (!s)
        return;
    if (width > 0 && width <= 16384 && height > 0 && height <= 16384) {
        s->hint_w = width;
        s->hint_h = height;
    }
    if (fps > 0 && fps < 1000)
        s->hint_fps = fps;
}

/* ---- tracks ----------------------------------------------------------- */

static pkg_rend_t *rend_new(pkg_media_t m, int index)
{
    pkg_rend_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    snprintf(r->name, sizeof(r->name), "%s",
             m == PKG_MEDIA_VIDEO ? "video" : "audio");
    r->media = m;
    r->index = index;
    r->timescale = 90000;
    r->last_dts = -1;
    r->pm = r->pn = -1;
    r->last_key_dts = -1;
    return r;
}

/* Decides this session's tracks at its first frame. */
static int fix_tracks(pkg_stream_t *s)
{
    s->tracks_fixed = true;
    if (s->nrends == 0) {
        pkg_rend_t *nr[2] = {NULL, NULL};
        int n = 0;
        for (int m = 0; m < 2; m++) {
            if (!s->declared[m])
                continue;
            nr[n] = rend_new((pkg_media_t)m, n);
            if (!nr[n]) {
                free(nr[0]);
                return PD_ENOMEM;
            }
            if (m == PKG_MEDIA_AUDIO) {
                pkg_aac_info_t ai;
                if (pkg_aac_parse(s->decl_extra[m], s->decl_len[m], &ai) ==
                    PD_OK)
                    nr[n]->timescale = ai.sample_rate;
            }
            n++;
        }
        if (n == 0)
            return PD_EINVAL;
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < n; i++)
            s->rends[i] = nr[i];
        s->nrends = n;
        s->lead = 0; /* video if declared (it comes first), else audio */
        pthread_mutex_unlock(&s->lock);
    }
    for (int i = 0; i < s->nrends; i++)
        s->rends[i]->active = s->declared[s->rends[i]->media];
    for (int m = 0; m < 2; m++)
        if (s->declared[m] && !rend_of(s, (pkg_media_t)m) &&
            !s->logged_track) {
            s->logged_track = true;
            PD_LOGW(PKG_MOD, "%s: a %s track appeared after the stream "
                    "started; ignored", s->name, m ? "audio" : "video");
        }
    return PD_OK;
}

/* ---- timestamps ------------------------------------------------------- */

static int64_t nominal_dur(const pkg_rend_t *r)
{
    return r->media == PKG_MEDIA_AUDIO ? 1024 : r->timescale / 30;
}

static int64_t map_dts(pkg_stream_t *s, pkg_rend_t *r, int64_t dts_ms)
{
    const int64_t lim = (int64_t)1 << 50; /* keep the arithmetic sane */
    if (dts_ms > lim)
        dts_ms = lim;
    if (dts_ms < -lim)
        dts_ms = -lim;
    if (s->rebase_next) {
        int64_t end_ms = 0;
        for (int i = 0; i < s->nrends; i++) {
            int64_t e = t2ms_up(s->rends[i], s->rends[i]->tl_end);
            if (e > end_ms)
                end_ms = e;
        }
        s->offset_ms = end_ms - dts_ms;
        s->rebase_next = false;
    }
    int64_t t = ms2t(r, dts_ms + s->offset_ms);
    bool rebase = false;
    int64_t want = 0;
    if (r->last_dts < 0) {
        if (t < r->tl_end) {
            rebase = true;
            want = r->tl_end;
        }
    } else {
        int64_t step = r->media == PKG_MEDIA_AUDIO
                           ? nominal_dur(r)
                           : (r->last_dur > 0 ? r->last_dur : nominal_dur(r));
        int64_t expect = r->last_dts + step;
        if (t <= r->last_dts || t > expect + r->timescale) {
            rebase = true;
            want = expect;
        } else if (r->media == PKG_MEDIA_AUDIO &&
                   llabs(t - expect) <= ms2t(r, 2)) {
            t = expect; /* ms rounding: keep the exact sample timeline */
        }
    }
    if (rebase) {
        if (!s->logged_rebase && r->last_dts >= 0) {
            s->logged_rebase = true;
            PD_LOGI(PKG_MOD, "%s: %s timestamp jump (%lld ms); output "
                    "timeline continues (logged once)", s->name, r->name,
                    (long long)((t - want) * 1000 / r->timescale));
        }
        s->offset_ms = t2ms_up(r, want) - dts_ms;
        t = want;
    }
    if (r->last_dts >= 0)
        r->last_dur = t - r->last_dts;
    r->last_dts = t;
    return t;
}

/* ---- cutting ---------------------------------------------------------- */

static int decide(pkg_stream_t *s, pkg_rend_t *r, int64_t start, int64_t dur,
                  bool key, bool self_timed)
{
    const pd_config_t *cfg = s->pkg->cfg;
    if (!r->cur)
        return CUT_NONE;
    int64_t seg_len = start - r->cur->start;
    if (self_timed && seg_len > 0) {
        int64_t target = ms2t(r, cfg->segment_target_ms);
        if (r->media == PKG_MEDIA_VIDEO) {
            if (key && (seg_len >= target - dur / 2 ||
                        s->decl_changed[PKG_MEDIA_VIDEO]))
                return CUT_SEG;
        } else if (seg_len >= target - dur / 2 ||
                   (s->disc_next && s->decl_changed[PKG_MEDIA_AUDIO])) {
            return CUT_SEG;
        }
        int64_t max = s->td_s > 0
                          ? ms2t(r, (int64_t)s->td_s * 1000 + 500)
                          : ms2t(r, cfg->segment_target_ms * 4 > 10000
                                        ? cfg->segment_target_ms * 4
                                        : 10000);
        if (seg_len + dur >= max || r->cur->nparts >= PKG_SEG_MAX_PARTS - 1) {
            if (!s->logged_kf && r->media == PKG_MEDIA_VIDEO) {
                s->logged_kf = true;
                double ki = r->last_key_dts >= 0
                                ? (double)(start - r->last_key_dts) /
                                      r->timescale
                                : (double)seg_len / r->timescale;
                PD_LOGW(PKG_MOD, "%s: keyframe interval %.2f s does not fit "
                        "the segment target (%d ms, target duration %d s); "
                        "cutting at non-keyframes", s->name, ki,
                        cfg->segment_target_ms, s->td_s);
            }
            return CUT_SEG;
        }
    }
    if (r->part_open && r->part_frames > 0 &&
        (r->part_dur + dur > ms2t(r, cfg->part_target_ms) ||
         r->part_frames >= PKG_PART_MAX_FRAMES ||
         r->part_bytes >= (int64_t)PKG_PART_MAX_BYTES))
        return CUT_PART;
    return CUT_NONE;
}

static void pump_audio(pkg_stream_t *s, pkg_rend_t *a, bool final);

/* Publishes the open part (and completes the segment for CUT_SEG). */
static void do_cut(pkg_stream_t *s, pkg_rend_t *r, int cut)
{
    if (cut == CUT_NONE || !r->cur)
        return;
    int64_t msn = r->cur->msn;
    pd_buf_t *part = NULL;
    bool have = false;
    if (r->part_open && r->part_frames > 0) {
        int rc = pkg_cmaf_flush(r->mux, &part);
        if (rc == PD_OK)
            have = true;
        else if (rc != PD_EAGAIN)
            log_reject(s, "the muxer failed to cut a fragment");
    }
    bool empty = !have && r->cur->nparts == 0; /* dropped, not closed */
    if (have || cut == CUT_SEG)
        pkg_idx_publish(s, r, have ? &part : NULL, r->part_dur,
                        r->part_frames, r->part_indep, cut == CUT_SEG);
    pd_buf_unref(&part);
    if (empty && cut == CUT_SEG) {
        r->part_open = false;
        r->part_frames = r->part_dur = r->part_bytes = 0;
        return; /* its msn is reused by the next segment */
    }
    r->part_open = false;
    r->part_frames = r->part_dur = r->part_bytes = 0;
    if (cut == CUT_SEG) {
        if (is_lead(s, r))
            s->next_msn = msn + 1;
        else
            r->next_msn = msn + 1;
    }
    /* the video's part ends are the audio's boundaries */
    if (r->media == PKG_MEDIA_VIDEO && is_lead(s, r) &&
        (have || cut == CUT_SEG)) {
        pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
        if (a && a->active) {
            pkg_bound_t *last =
                s->bq_n ? &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX]
                        : NULL;
            if (!have && last && last->msn == msn) {
                last->seg_end = true;
            } else {
                if (s->bq_n == PKG_BQ_MAX) { /* no audio: forget oldest */
                    s->bq_head = (s->bq_head + 1) % PKG_BQ_MAX;
                    s->bq_n--;
                }
                pkg_bound_t *b = &s->bq[(s->bq_head + s->bq_n) % PKG_BQ_MAX];
                b->end90 = r->tl_end;
                b->msn = msn;
                b->seg_end = cut == CUT_SEG;
                s->bq_n++;
            }
            pump_audio(s, a, false);
        }
    }
}

/* Opens the muxer if the rendition needs one, begins segment msn. */
static int begin_segment(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                         int64_t start, int64_t pdt_us, const uint8_t *au,
                         size_t au_len, bool key)
{
    bool disc;
    if (is_lead(s, r)) {
        disc = s->disc_next;
        if (disc) {
            s->disc_next = false;
            s->disc_msn = msn;
        }
    } else {
        disc = msn == s->disc_msn;
    }
    pkg_media_t m = r->media;
    bool reinit = !r->mux || (disc && s->decl_changed[m] &&
                              (m != PKG_MEDIA_VIDEO || key));
    if (reinit) {
        if (!s->decl_extra[m])
            return PD_EINVAL;
        pkg_cmaf_params_t p = {0};
        p.codec = s->decl_codec[m];
        p.extradata = s->decl_extra[m];
        p.extradata_len = s->decl_len[m];
        char cs[32] = "";
        pkg_aac_info_t ai = {0};
        int w = r->width, h = r->height;
        if (m == PKG_MEDIA_VIDEO) {
            if (pkg_h264_codecs(p.extradata, p.extradata_len, cs,
                                sizeof(cs)) != PD_OK)
                return PD_EINVAL;
            if (pkg_h264_size(p.extradata, p.extradata_len, au, au_len, &w,
                              &h) != PD_OK) {
                w = s->hint_w > 0 ? s->hint_w : r->width;
                h = s->hint_h > 0 ? s->hint_h : r->height;
            }
            if (w <= 0 || h <= 0)
                return PD_EINVAL;
            p.width = w;
            p.height = h;
            p.timescale = 90000;
        } else {
            if (pkg_aac_parse(p.extradata, p.extradata_len, &ai) != PD_OK)
                return PD_EINVAL;
            if (ai.sample_rate != r->timescale && r->mux)
                PD_LOGW(PKG_MOD, "%s: audio sample rate changed to %d Hz; "
                        "timestamps keep %d Hz", s->name, ai.sample_rate,
                        r->timescale);
            snprintf(cs, sizeof(cs), "%s", ai.codecs);
            p.sample_rate = r->timescale;
            p.channels = ai.channels;
            p.timescale = r->timescale;
        }
        pkg_cmaf_t *mux = NULL;
        pd_buf_t *init = NULL;
        int rc = pkg_cmaf_open(&p, &mux, &init);
        if (rc)
            return rc;
        pkg_cmaf_close(&r->mux);
        r->mux = mux;
        s->decl_changed[m] = false;
        if (r->next_init_id > 0 && !disc)
            disc = true; /* a new init always comes with a discontinuity */
        pthread_mutex_lock(&s->lock);
        snprintf(r->codecs, sizeof(r->codecs), "%s", cs);
        r->width = w;
        r->height = h;
        r->aac = ai;
        pthread_mutex_unlock(&s->lock);
        pkg_idx_add_init(s, r, r->next_init_id, &init);
        r->next_init_id++;
    }
    unsigned init_id = r->next_init_id ? r->next_init_id - 1 : 0;
    if (!pkg_idx_begin(s, r, msn, start, pdt_us, disc, init_id))
        return PD_ENOMEM;
    return PD_OK;
}

/* Writes one sample into the open part of r (opening part and segment as
 * needed; msn for a new segment). */
static int put_sample(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                      const uint8_t *data, size_t len, int64_t dts,
                      int64_t pts, int64_t dur, bool key, int64_t pdt_us)
{
    if (!r->cur) {
        int rc = begin_segment(s, r, msn, dts, pdt_us, data, len, key);
        if (rc) {
            log_reject(s, "cannot open the mp4 muxer for this track");
            return rc;
        }
    }
    if (!r->part_open) {
        r->part_open = true;
        r->part_start = dts;
        r->part_dur = r->part_frames = r->part_bytes = 0;
        r->part_indep = key;
    }
    int rc = pkg_cmaf_write(r->mux, data, len, dts, pts, dur, key);
    if (rc) {
        log_reject(s, "the mp4 muxer refused a frame");
        return PD_EINVAL;
    }
    r->part_dur += dur;
    r->part_frames++;
    r->part_bytes += (int64_t)len;
    r->tl_end = dts + dur;
    if (key && r->media == PKG_MEDIA_VIDEO)
        r->last_key_dts = dts;
    return PD_OK;
}

/* ---- video ------------------------------------------------------------ */

static int place_video(pkg_stream_t *s, pkg_rend_t *r, int64_t dur)
{
    bool lead = is_lead(s, r);
    do_cut(s, r, decide(s, r, r->held_dts, dur, r->held_key, lead));
    return put_sample(s, r, s->next_msn, r->held, r->held_len, r->held_dts,
                      r->held_pts, dur, r->held_key, r->held_arrival);
}

static int hold(pkg_rend_t *r, const pkg_frame_t *f, int64_t dts,
                int64_t pts)
{
    if (r->held_cap < f->len) {
        size_t cap = f->len < 65536 ? 65536 : f->len;
        uint8_t *n = realloc(r->held, cap);
        if (!n)
            return PD_ENOMEM;
        r->held = n;
        r->held_cap = cap;
    }
    memcpy(r->held, f->data, f->len);
    r->held_len = f->len;
    r->held_dts = dts;
    r->held_pts = pts;
    r->held_key = f->key;
    r->held_arrival = f->arrival_us;
    r->have_held = true;
    return PD_OK;
}

static int video_frame(pkg_stream_t *s, pkg_rend_t *r, const pkg_frame_t *f)
{
    r->seen = true;
    r->last_arrival_us = f->arrival_us;
    if (!r->have_held && !r->mux && !f->key)
        return PD_OK; /* a session's video starts at a keyframe */
    int64_t dts = map_dts(s, r, f->dts_ms);
    int64_t cts = f->cts_ms > 0 ? ms2t(r, f->cts_ms) : 0;
    int rc = PD_OK;
    if (r->have_held) {
        int64_t dur = dts - r->held_dts;
        rc = place_video(s, r, dur);
        /* ahead of time: will the new frame start a part or segment? */
        do_cut(s, r, decide(s, r, dts, dur, f->key, is_lead(s, r)));
    }
    int hrc = hold(r, f, dts, dts + cts);
    return hrc ? hrc : rc;
}

/* ---- audio ------------------------------------------------------------ */

static void aq_pop(pkg_rend_t *a)
{
    free(a->aq[a->aq_head].data);
    a->aq[a->aq_head].data = NULL;
    a->aq_head = (a->aq_head + 1) % PKG_AQ_MAX;
    a->aq_n--;
}

static int64_t seg_pdt(pkg_stream_t *s, int64_t msn, int64_t fallback)
{
    pkg_rend_t *v = rend_of(s, PKG_MEDIA_VIDEO);
    const pkg_seg_t *g = v ? pkg_idx_find(v, msn) : NULL;
    return g ? g->pdt_us : fallback;
}

static void place_audio(pkg_stream_t *s, pkg_rend_t *a, pkg_aframe_t *af,
                        int64_t dur, int64_t msn)
{
    if (a->cur && a->cur->msn != msn)
        do_cut(s, a, CUT_SEG); /* missed its boundary: close it */
    do_cut(s, a, decide(s, a, af->dts, dur, true, false));
    put_sample(s, a, msn, af->data, af->len, af->dts, af->dts, dur, true,
               seg_pdt(s, msn, af->arrival_us));
}

static void place_audio_self(pkg_stream_t *s, pkg_rend_t *a,
                             pkg_aframe_t *af, int64_t dur)
{
    do_cut(s, a, decide(s, a, af->dts, dur, true, true));
    int64_t msn;
    if (is_lead(s, a)) {
        msn = s->next_msn;
    } else {
        msn = a->next_msn > a->last_msn + 1 ? a->next_msn : a->last_msn + 1;
        if (msn < 1)
            msn = 1;
    }
    put_sample(s, a, msn, af->data, af->len, af->dts, af->dts, dur, true,
               seg_pdt(s, msn, af->arrival_us));
}

static void pump_audio(pkg_stream_t *s, pkg_rend_t *a, bool final)
{
    bool lead = is_lead(s, a);
    while (a->aq_n > 0) {
        pkg_aframe_t *af = &a->aq[a->aq_head];
        int64_t dur;
        if (a->aq_n >= 2)
            dur = a->aq[(a->aq_head + 1) % PKG_AQ_MAX].dts - af->dts;
        else if (final)
            dur = nominal_dur(a);
        else
            break;
        if (dur <= 0)
            dur = 1;
        if (lead) {
            place_audio_self(s, a, af, dur);
            aq_pop(a);
            continue;
        }
        int64_t t90 = av_rescale(af->dts, 90000, a->timescale);
        bool placed = false;
        while (s->bq_n > 0) {
            pkg_bound_t *b = &s->bq[s->bq_head];
            int64_t cur_msn = a->cur ? a->cur->msn : a->next_msn;
            if (b->msn < cur_msn) { /* behind us (self-timed earlier) */
                s->bq_head = (s->bq_head + 1) % PKG_BQ_MAX;
                s->bq_n--;
                continue;
            }
            if (t90 >= b->end90) {
                if (a->cur && a->cur->msn == b->msn)
                    do_cut(s, a, b->seg_end ? CUT_SEG : CUT_PART);
                else if (a->cur)
                    do_cut(s, a, CUT_SEG);
                if (b->seg_end && a->next_msn < b->msn + 1)
                    a->next_msn = b->msn + 1;
                s->bq_head = (s->bq_head + 1) % PKG_BQ_MAX;
                s->bq_n--;
                continue;
            }
            if (a->cur && a->cur->msn == b->msn && a->part_open &&
                a->part_frames > 0 &&
                a->part_dur + dur > ms2t(a, s->pkg->cfg->part_target_ms)) {
                /* the part is full one frame early: that cut stands for
                 * this boundary (no sliver part at the boundary itself);
                 * a segment's end is kept, its last part may be short */
                do_cut(s, a, CUT_PART);
                if (!b->seg_end) {
                    s->bq_head = (s->bq_head + 1) % PKG_BQ_MAX;
                    s->bq_n--;
                    continue;
                }
            }
            if (!a->cur) {
                /* audio from before the video's segment started (the
                 * session's start) belongs to no segment */
                pkg_rend_t *vv = rend_of(s, PKG_MEDIA_VIDEO);
                const pkg_seg_t *vg = vv ? pkg_idx_find(vv, b->msn) : NULL;
                if (vg && t90 + av_rescale(dur, 90000, a->timescale) <=
                              vg->start) {
                    placed = true; /* dropped */
                    break;
                }
            }
            place_audio(s, a, af, dur, b->msn);
            placed = true;
            break;
        }
        if (!placed) {
            int64_t span = a->aq_n >= 2
                               ? a->aq[(a->aq_head + a->aq_n - 1) %
                                       PKG_AQ_MAX].dts - af->dts
                               : 0;
            pkg_rend_t *v = rend_of(s, PKG_MEDIA_VIDEO);
            bool video_seen = v && v->mux; /* started this session */
            bool overflow = a->aq_n >= PKG_AQ_MAX ||
                            span > ms2t(a, PKG_AQ_SPAN_MS);
            if (final && video_seen && !a->self_timed) {
                /* beyond the video's end: dropped */
            } else if (!final && overflow && v && v->seen &&
                       a->aq[(a->aq_head + a->aq_n - 1) % PKG_AQ_MAX]
                                   .arrival_us - v->last_arrival_us <
                           1000000) {
                /* video frames arrive but decide nothing yet (waiting for
                 * a keyframe, or far behind): the oldest audio goes */
            } else if (final || a->aq_n >= PKG_AQ_MAX ||
                       span > ms2t(a, PKG_AQ_SPAN_MS)) {
                if (!a->self_timed && !final) {
                    a->self_timed = true;
                    PD_LOGW(PKG_MOD, "%s: no video for %d ms; audio cuts "
                            "on its own", s->name, PKG_AQ_SPAN_MS);
                }
                place_audio_self(s, a, af, dur);
            } else {
                break; /* wait for the video to decide */
            }
        }
        aq_pop(a);
    }
    if (s->bq_n > 0 && a->self_timed) {
        /* video is back: follow it again from its next segment */
        pkg_bound_t *b = &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX];
        if (b->msn >= (a->cur ? a->cur->msn : a->next_msn))
            a->self_timed = false;
    }
}

static int audio_frame(pkg_stream_t *s, pkg_rend_t *a, const pkg_frame_t *f)
{
    int64_t dts = map_dts(s, a, f->dts_ms);
    if (a->aq_n == PKG_AQ_MAX) {
        /* cannot happen with pump's bound, but never grow */
        aq_pop(a);
    }
    uint8_t *copy = malloc(f->len);
    if (!copy)
        return PD_ENOMEM;
    memcpy(copy, f->data, f->len);
    pkg_aframe_t *af = &a->aq[(a->aq_head + a->aq_n) % PKG_AQ_MAX];
    af->data = copy;
    af->len = f->len;
    af->dts = dts;
    af->arrival_us = f->arrival_us;
    a->aq_n++;
    pump_audio(s, a, false);
    return PD_OK;
}

/* ---- entry points ----------------------------------------------------- */

int pkg_stream_write(pkg_stream_t *s, const pkg_frame_t *f)
{
    if (!s || !f)
        return PD_EINVAL;
    if (atomic_load(&s->pkg->shut))
        return PD_ECLOSED;
    if ((f->media != PKG_MEDIA_VIDEO && f->media != PKG_MEDIA_AUDIO) ||
        !f->data || f->len == 0 || f->len > PKG_MAX_FRAME) {
        log_reject(s, "unusable frame");
        return PD_EINVAL;
    }
    if (!s->tracks_fixed) {
        int rc = fix_tracks(s);
        if (rc) {
            s->tracks_fixed = false;
            log_reject(s, "frame before any codec configuration");
            return rc;
        }
    }
    pkg_rend_t *r = rend_of(s, f->media);
    if (!r || !r->active)
        return PD_OK; /* a track not declared at the first frame */
    return f->media == PKG_MEDIA_VIDEO ? video_frame(s, r, f)
                                       : audio_frame(s, r, f);
}

void pkg_writer_finish(pkg_stream_t *s)
{
    pkg_rend_t *v = rend_of(s, PKG_MEDIA_VIDEO);
    pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
    if (v && v->have_held) {
        int64_t dur = v->last_dur > 0 ? v->last_dur : nominal_dur(v);
        place_video(s, v, dur);
        v->have_held = false;
    }
    if (v && v->cur)
        do_cut(s, v, CUT_SEG);
    if (a) {
        pump_audio(s, a, true);
        if (a->cur)
            do_cut(s, a, CUT_SEG);
    }
    int64_t last = 0;
    for (int i = 0; i < s->nrends; i++) {
        pkg_rend_t *r = s->rends[i];
        pkg_cmaf_close(&r->mux);
        while (r->aq_n > 0)
            aq_pop(r);
        r->aq_head = 0;
        r->have_held = false;
        r->part_open = false;
        r->last_dts = -1;
        r->last_dur = 0;
        r->active = false;
        r->self_timed = false;
        r->seen = false;
        if (r->last_msn > last)
            last = r->last_msn;
    }
    s->bq_n = s->bq_head = 0;
    s->next_msn = last + 1;
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->next_msn < last + 1)
            s->rends[i]->next_msn = last + 1;
    s->tracks_fixed = false;
    s->declared[0] = s->declared[1] = false;
    s->rebase_next = true;
    s->disc_next = s->nrends > 0;
}

void pkg_writer_free_rend(pkg_rend_t *r)
{
    while (r->aq_n > 0)
        aq_pop(r);
    free(r->held);
    r->held = NULL;
    r->held_cap = 0;
}
