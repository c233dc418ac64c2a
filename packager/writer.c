/*
 * packager/writer.c - the write side: frames in, parts and segments out.
 *
 * Runs under the stream's writer lock (the ingest thread that owns the
 * publisher handle, and the stream's transcoder threads). Per
 * frame: map the publisher's dts (ms) onto the output timeline (an
 * offset per track; every track of a session starts with the same one),
 * then cut. A track whose frame steps back or jumps ahead by more than
 * PKG_JUMP_MS is compared with where the other tracks' output is: if
 * another track agrees (within PKG_JUMP_MS), the publisher's timeline did
 * not move and the track alone had a gap (kept: the hole becomes GAP
 * parts, the muxer's next fragment gets its own tfdt) or a step back (the
 * frame is dropped: output stays monotonic); if none agrees, the
 * publisher's timeline jumped and the track re-bases its own offset by
 * the jump so that its output continues where it was. Each track sees
 * the same jump when its own frames carry it, so the tracks stay in sync
 * and a re-base of one never looks like a jump to another.
 *
 * PROGRAM-DATE-TIME: a session's first segment (and a segment after a
 * discontinuity) gets the wallclock arrival of its first frame; every
 * later one gets exactly the previous PDT + the media time between the
 * two segments' starts, so PDT steps equal EXTINF (to the microsecond)
 * and PDT is one linear map of the output timeline. No correction toward
 * later arrivals: players (hls.js) place each new segment by its PDT
 * relative to older ones, and any step != EXTINF shifts their playlist
 * timeline against the media's timestamps (a shift later than the media
 * makes hls.js 1.7 believe the buffer end still lies in a loaded
 * segment and stop loading: a stall). A publisher clock that drifts
 * against ours therefore drifts the PDT until the next discontinuity.
 * Audio takes the PDT of the video segment with the same MSN moved by
 * the difference of the two segments' starts (the same PDT for the same
 * media time in every rendition).
 *
 * Video leads. One frame is held back because its duration is only known
 * when the next arrives. A part is cut before a frame that would make it
 * longer than PART-TARGET (checked again ahead of time with the previous
 * frame's duration, so a full part is published one frame earlier); a
 * segment is cut at a keyframe once it is >= the segment target minus
 * half a frame, or anyway (at a non-keyframe, logged once, and the
 * stream loses EXT-X-INDEPENDENT-SEGMENTS) before it would exceed
 * TARGETDURATION + 0.5 s less 50 ms and one audio frame (so no rendition's
 * segment rounds above TARGETDURATION). Every video part end is queued as a
 * boundary for the audio, which cuts its parts and segments at the AAC
 * frame boundary nearest it (a frame belongs to the part holding its
 * middle, or the part's end when the part would otherwise stay below
 * 0.85 x the audio PART-TARGET), so audio and video have the same parts
 * per segment and no short tail part; an audio part never exceeds the
 * audio PART-TARGET (configured + PKG_AUDIO_PT_EXTRA_MS; the frame is
 * moved to the next part instead).
 * Audio waiting for the video is queued (bounded: PKG_AQ_MAX entries,
 * PKG_AQ_BYTES, PKG_AQ_SPAN_MS of audio; one frame at most
 * PKG_AFRAME_MAX bytes); beyond that it cuts on its own timing.
 * Audio-only streams always cut on their own timing. An audio gap is
 * queued as one gap entry, placed in frame-sized steps like frames. So
 * that every video MSN has an audio segment over the same interval, the
 * audio also gets gap parts where it starts after the video's segment
 * (a session's start) or ends before the video (a session's end); a
 * session whose video never started gives the video gap segments for
 * the audio's MSNs.
 *
 * Init sections are named by the MSN of the first segment that used them
 * ("init-<msn>.mp4"): with the registry's MSN numbering no URL is ever
 * reused across stream instances.
 *
 * Invariants: output dts strictly increase per rendition; pts >= dts;
 * a segment's first video part starts with a keyframe except after a
 * forced cut (or a gap); segments of every rendition share MSNs.
 */
#include "pkg_int.h"

#include "../core/err.h"
#include "../core/log.h"

#include <libavcodec/avcodec.h>
#include <libavutil/mathematics.h>
#include <stdlib.h>
#include <string.h>

enum { CUT_NONE = 0, CUT_PART, CUT_SEG };
enum { MAP_OK = 0, MAP_GAP, MAP_DROP };

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

static int set_config(pkg_stream_t *s, pkg_media_t media, pkg_codec_t codec,
                      const uint8_t *extradata, size_t len);

/* Must this audio configuration be re-encoded to AAC (MP3; AAC at another
 * sample rate than the audio rendition's)? */
static bool audio_needs_tc(pkg_stream_t *s, pkg_codec_t codec,
                           const uint8_t *extradata, size_t len)
{
    if (codec == PKG_CODEC_MP3)
        return true;
    pkg_aac_info_t ai;
    if (!extradata || len == 0 || len > PKG_MAX_EXTRADATA ||
        pkg_aac_parse(extradata, len, &ai) != PD_OK)
        return false; /* refused below */
    pkg_rend_t *a = NULL;
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->media == PKG_MEDIA_AUDIO)
            a = s->rends[i];
    return a && a->timescale != ai.sample_rate;
}

static int atc_start(pkg_stream_t *s);

/* The publisher's audio is re-encoded this session (see audio_needs_tc). */
static int set_audio_tc(pkg_stream_t *s, pkg_codec_t codec,
                        const uint8_t *extradata, size_t len)
{
    uint8_t *copy = NULL;
    if (extradata && len > 0) {
        if (len > PKG_MAX_EXTRADATA)
            return PD_EINVAL;
        copy = malloc(len);
        if (!copy)
            return PD_ENOMEM;
        memcpy(copy, extradata, len);
    }
    bool changed = !s->audio_tc || s->src_acodec != codec ||
                   s->src_alen != len ||
                   (len && memcmp(s->src_aextra, extradata, len) != 0);
    free(s->src_aextra);
    s->src_aextra = copy;
    s->src_alen = copy ? len : 0;
    s->src_acodec = codec;
    if (!s->audio_tc)
        PD_LOGI(PKG_MOD, "%s: the publisher's audio (%s) is re-encoded to "
                "AAC", s->name, codec == PKG_CODEC_MP3 ? "MP3"
                                                       : "AAC, another rate");
    s->audio_tc = true;
    s->declared[PKG_MEDIA_AUDIO] = true;
    if (changed && s->atc)
        pkg_tc_audio_config(s->atc,
                            codec == PKG_CODEC_MP3 ? AV_CODEC_ID_MP3
                                                   : AV_CODEC_ID_AAC,
                            s->src_aextra, s->src_alen, 0, 0);
    return PD_OK;
}

int pkg_stream_set_config(pkg_stream_t *s, pkg_media_t media,
                          pkg_codec_t codec, const uint8_t *extradata,
                          size_t len)
{
    if (!s)
        return PD_EINVAL;
    pthread_mutex_lock(&s->wlock);
    int rc = set_config(s, media, codec, extradata, len);
    if (rc == PD_OK && media == PKG_MEDIA_VIDEO && s->tc)
        pkg_tc_video_config(s->tc, extradata, len);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

static int set_config(pkg_stream_t *s, pkg_media_t media, pkg_codec_t codec,
                      const uint8_t *extradata, size_t len)
{
    if (!s || (media != PKG_MEDIA_VIDEO && media != PKG_MEDIA_AUDIO))
        return PD_EINVAL;
    if ((media == PKG_MEDIA_VIDEO && codec != PKG_CODEC_H264) ||
        (media == PKG_MEDIA_AUDIO && codec != PKG_CODEC_AAC &&
         codec != PKG_CODEC_MP3))
        return PD_EUNSUP;
    if (media == PKG_MEDIA_AUDIO && audio_needs_tc(s, codec, extradata, len))
        return set_audio_tc(s, codec, extradata, len);
    if (!extradata || len == 0 || len > PKG_MAX_EXTRADATA)
        return PD_EINVAL;
    if (media == PKG_MEDIA_AUDIO)
        s->audio_tc = false;
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
    pkg_rend_t *r = rend_of(s, media);
    if (r && r->encoded)
        return PD_OK; /* an encoded lead: the transcoder's output goes on
                         unchanged (the transcoder gets the new one) */
    s->decl_changed[media] = true;
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
    pthread_mutex_lock(&s->wlock);
    if (width > 0 && width <= 16384 && height > 0 && height <= 16384) {
        s->hint_w = width;
        s->hint_h = height;
    }
    if (fps > 0 && fps < 1000)
        s->hint_fps = fps;
    pthread_mutex_unlock(&s->wlock);
}

/* ---- tracks ----------------------------------------------------------- */

static pkg_rend_t *rend_new(pkg_media_t m, int index, int64_t first_msn)
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
    r->next_msn = first_msn;
    r->rung = -1;
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
            nr[n] = rend_new((pkg_media_t)m, n, s->next_msn);
            if (!nr[n]) {
                free(nr[0]);
                return PD_ENOMEM;
            }
            if (m == PKG_MEDIA_AUDIO) {
                pkg_aac_info_t ai;
                if (s->audio_tc) /* re-encoded: AAC at 48 kHz */
                    nr[n]->timescale = 48000;
                else if (pkg_aac_parse(s->decl_extra[m], s->decl_len[m],
                                       &ai) == PD_OK)
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

/* Keeps the publisher's ms in a range where every sum and tick
 * conversion below stays far from overflow. */
static int64_t clamp_ms(int64_t ms)
{
    const int64_t lim = (int64_t)1 << 50;
    return ms > lim ? lim : (ms < -lim ? -lim : ms);
}

/* Does output time t (ticks of r) agree with the latest frame of another
 * track of this session (within PKG_JUMP_MS)? Then a jump or step back
 * seen on r alone is r's own, not the publisher's timeline moving. */
static bool others_agree(const pkg_stream_t *s, const pkg_rend_t *r,
                         int64_t t)
{
    int64_t t_ms = av_rescale(t, 1000, r->timescale);
    for (int i = 0; i < s->nrends; i++) {
        const pkg_rend_t *o = s->rends[i];
        if (o == r || !o->active || o->last_dts < 0)
            continue;
        int64_t d = t_ms - av_rescale(o->last_dts, 1000, o->timescale);
        if (d >= -PKG_JUMP_MS && d <= PKG_JUMP_MS)
            return true;
    }
    return false;
}

/* Maps a frame's publisher dts (ms) onto r's output timeline: *out ticks.
 * Returns MAP_OK; MAP_GAP when r alone has a hole of more than
 * PKG_JUMP_MS (up to PKG_GAP_MAX_MS) before the frame: *out stays where
 * r's offset puts it and *gap_from is where the hole starts (the end r
 * would have had without it); or MAP_DROP when r alone stepped back (the
 * frame would overlap r's output, or a non-lead track's first frame lands
 * before its end). Otherwise a step back or jump re-bases r's offset so
 * that the frame continues r's output. */
static int map_dts(pkg_stream_t *s, pkg_rend_t *r, int64_t dts_ms,
                   int64_t *out, int64_t *gap_from)
{
    dts_ms = clamp_ms(dts_ms);
    if (s->rebase_next) {
        int64_t end_ms = 0;
        for (int i = 0; i < s->nrends; i++) {
            int64_t e = t2ms_up(s->rends[i], s->rends[i]->tl_end);
            if (e > end_ms)
                end_ms = e;
        }
        s->offset_ms = end_ms - dts_ms;
        for (int i = 0; i < s->nrends; i++)
            s->rends[i]->offset_ms = s->offset_ms;
        s->rebase_next = false;
    }
    int64_t t = ms2t(r, dts_ms + r->offset_ms);
    bool agree = others_agree(s, r, t);
    int res = MAP_OK;
    bool rebase = false;
    int64_t want = 0;
    if (r->last_dts < 0) {
        if (t < r->tl_end) {
            if (agree && !is_lead(s, r))
                return MAP_DROP; /* comes in line within PKG_JUMP_MS */
            rebase = true;
            want = r->tl_end;
        }
    } else {
        int64_t step = r->media == PKG_MEDIA_AUDIO
                           ? nominal_dur(r)
                           : (r->last_dur > 0 ? r->last_dur : nominal_dur(r));
        int64_t expect = r->last_dts + step;
        bool back = t <= r->last_dts;
        bool jump = t > expect + ms2t(r, PKG_JUMP_MS);
        if (back && agree)
            return MAP_DROP;
        if (jump && agree && t - expect <= ms2t(r, PKG_GAP_MAX_MS)) {
            res = MAP_GAP;
            *gap_from = expect;
        } else if (back || jump) {
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
                    (long long)av_rescale(t - want, 1000, r->timescale));
        }
        int64_t off = t2ms_up(r, want) - dts_ms;
        if (r->last_dts < 0 && is_lead(s, r)) {
            /* the session's start: the lead's first frame fixes where the
             * session lies, for every track alike */
            for (int i = 0; i < s->nrends; i++)
                if (s->rends[i] != r)
                    s->rends[i]->offset_ms += off - r->offset_ms;
        }
        r->offset_ms = off;
        t = want;
    }
    if (r->last_dts >= 0 && res != MAP_GAP)
        r->last_dur = t - r->last_dts;
    r->last_dts = t;
    *out = t;
    return res;
}

/* ---- cutting ---------------------------------------------------------- */

static bool part_nonempty(const pkg_rend_t *r)
{
    return r->part_open && (r->part_frames > 0 || (r->part_gap &&
                                                   r->part_dur > 0));
}

/* Longest a segment of r may get (ticks) before a forced cut. */
static int64_t seg_max(pkg_stream_t *s, pkg_rend_t *r)
{
    const pd_config_t *cfg = s->pkg->cfg;
    if (s->td_s <= 0)
        return ms2t(r, cfg->segment_target_ms * 4 > 10000
                           ? cfg->segment_target_ms * 4
                           : 10000);
    /* TD + 0.5 s is the limit; 50 ms of margin, and room for the audio
     * segment of the same MSN, which may end one frame later */
    int64_t max = ms2t(r, (int64_t)s->td_s * 1000 + 500 - 50);
    pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
    if (a && a != r && a->active && a->timescale > 0)
        max -= av_rescale(nominal_dur(a), r->timescale, a->timescale);
    return max;
}

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
        if (seg_len + dur >= seg_max(s, r) ||
            r->cur->nparts >= PKG_SEG_MAX_PARTS - 1) {
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
    /* audio cut at the video's boundaries may run one frame over the
     * configured target (its PART-TARGET is larger by that much) */
    int64_t pt_ms = cfg->part_target_ms;
    if (r->media == PKG_MEDIA_AUDIO && !self_timed)
        pt_ms += PKG_AUDIO_PT_EXTRA_MS;
    if (part_nonempty(r) &&
        (r->part_dur + dur > ms2t(r, pt_ms) ||
         r->part_frames >= PKG_PART_MAX_FRAMES ||
         r->part_bytes >= (int64_t)PKG_PART_MAX_BYTES))
        return CUT_PART;
    return CUT_NONE;
}

static void pump_audio(pkg_stream_t *s, pkg_rend_t *a, bool final);
static void mirror_shed(pkg_stream_t *s, int64_t msn);

/* Publishes the open part (and completes the segment for CUT_SEG). */
static void do_cut(pkg_stream_t *s, pkg_rend_t *r, int cut)
{
    if (cut == CUT_NONE || !r->cur)
        return;
    int64_t msn = r->cur->msn;
    pd_buf_t *part = NULL;
    bool have = false;
    bool gap = r->part_open && r->part_gap && r->part_dur > 0;
    if (r->part_open && !r->part_gap && r->part_frames > 0) {
        int rc = pkg_cmaf_flush(r->mux, &part);
        if (rc == PD_OK)
            have = true;
        else if (rc != PD_EAGAIN)
            log_reject(s, "the muxer failed to cut a fragment");
    }
    bool pub = have || gap;
    bool empty = !pub && r->cur->nparts == 0; /* dropped, not closed */
    if (pub || cut == CUT_SEG)
        pkg_idx_publish(s, r, have ? &part : NULL, r->part_dur,
                        r->part_frames, r->part_indep, gap, cut == CUT_SEG);
    pd_buf_unref(&part);
    r->part_open = false;
    r->part_gap = false;
    r->part_frames = r->part_dur = r->part_bytes = 0;
    if (cut == CUT_SEG)
        r->seg_real = false;
    if (empty && cut == CUT_SEG)
        return; /* its msn is reused by the next segment */
    if (cut == CUT_SEG) {
        if (is_lead(s, r))
            s->next_msn = msn + 1;
        else
            r->next_msn = msn + 1;
        if (is_lead(s, r) && r->media == PKG_MEDIA_VIDEO)
            mirror_shed(s, msn);
    }
    /* the video's part ends are the audio's boundaries */
    if (r->media == PKG_MEDIA_VIDEO && is_lead(s, r) &&
        (pub || cut == CUT_SEG)) {
        pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
        if (a && a->active) {
            pkg_bound_t *last =
                s->bq_n ? &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX]
                        : NULL;
            if (!pub && last && last->msn == msn) {
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

/* The discontinuity of the lead's segment msn is owed to every other
 * rendition's first segment at or after msn. */
static void mark_disc(pkg_stream_t *s, int64_t msn)
{
    s->disc_msn = msn;
    for (int i = 0; i < s->nrends; i++)
        if (i != s->lead)
            s->rends[i]->disc_pending = true;
}

/* PROGRAM-DATE-TIME of r's segment msn starting at start (ticks of r;
 * see the file comment). */
static int64_t next_pdt(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                        int64_t start, bool disc, int64_t arrival_us)
{
    if (!is_lead(s, r)) {
        const pkg_rend_t *l = s->rends[s->lead];
        const pkg_seg_t *g = pkg_idx_find(l, msn);
        if (g && g->pdt_us >= 0)
            return g->pdt_us + av_rescale(start, 1000000, r->timescale) -
                   av_rescale(g->start, 1000000, l->timescale);
        if (g)
            return g->pdt_us;
    }
    const pkg_seg_t *p = r->nsegs ? r->segs[r->nsegs - 1] : NULL;
    if (disc || !p || !p->complete || p->msn != msn - 1 || p->pdt_us < 0 ||
        start < p->start)
        return arrival_us;
    return p->pdt_us + av_rescale(start - p->start, 1000000, r->timescale);
}

/* Init id of a segment msn: the MSN itself (>= 1), folded into 32 bits
 * (unique for 2^32 - 1 segments). */
static unsigned init_id_of(int64_t msn)
{
    if (msn >= 1 && msn <= (int64_t)UINT32_MAX)
        return (unsigned)msn;
    return (unsigned)((uint64_t)msn % UINT32_MAX) + 1;
}

/* Opens the muxer if the rendition needs one, begins segment msn. A gap
 * segment (gap) never opens a muxer nor takes the lead's discontinuity. */
static int begin_segment(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                         int64_t start, int64_t arrival_us,
                         const uint8_t *au, size_t au_len, bool key,
                         bool gap)
{
    bool lead = is_lead(s, r);
    bool disc;
    if (lead) {
        disc = s->disc_next && !gap;
        if (disc) {
            s->disc_next = false;
            mark_disc(s, msn);
        }
    } else {
        disc = r->disc_pending && msn >= s->disc_msn;
        if (disc)
            r->disc_pending = false;
    }
    pkg_media_t m = r->media;
    if (gap && !r->mux && m == PKG_MEDIA_VIDEO)
        return PD_EINVAL; /* a video init needs a frame (picture size) */
    bool reinit;
    if (r->encoded) /* the encoder's configuration, not the source's */
        reinit = !r->mux || (!gap && r->own_changed && key);
    else
        reinit = !r->mux || (!gap && disc && s->decl_changed[m] &&
                             (m != PKG_MEDIA_VIDEO || key));
    if (reinit) {
        const uint8_t *ex = r->encoded ? r->own_extra : s->decl_extra[m];
        size_t exlen = r->encoded ? r->own_len : s->decl_len[m];
        if (!ex)
            return PD_EINVAL;
        pkg_cmaf_params_t p = {0};
        p.codec = r->encoded ? PKG_CODEC_H264 : s->decl_codec[m];
        p.extradata = ex;
        p.extradata_len = exlen;
        char cs[32] = "";
        pkg_aac_info_t ai = {0};
        int w = r->width, h = r->height;
        if (m == PKG_MEDIA_VIDEO) {
            if (pkg_h264_codecs(p.extradata, p.extradata_len, cs,
                                sizeof(cs)) != PD_OK)
                return PD_EINVAL;
            if (pkg_h264_size(p.extradata, p.extradata_len, au, au_len, &w,
                              &h) != PD_OK) {
                w = s->hint_w > 0 && !r->encoded ? s->hint_w : r->width;
                h = s->hint_h > 0 && !r->encoded ? s->hint_h : r->height;
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
        r->mux_discont = false; /* a new muxer starts at the first dts */
        if (r->encoded)
            r->own_changed = false;
        else
            s->decl_changed[m] = false;
        if (r->cur_init_id != 0 && !disc) {
            disc = true; /* a new init always comes with a discontinuity */
            if (lead)
                mark_disc(s, msn);
            else
                r->disc_pending = false;
        }
        pthread_mutex_lock(&s->lock);
        snprintf(r->codecs, sizeof(r->codecs), "%s", cs);
        r->width = w;
        r->height = h;
        r->aac = ai;
        pthread_mutex_unlock(&s->lock);
        r->cur_init_id = init_id_of(msn);
        pkg_idx_add_init(s, r, r->cur_init_id, &init);
    }
    int64_t pdt = next_pdt(s, r, msn, start, disc, arrival_us);
    if (!pkg_idx_begin(s, r, msn, start, pdt, disc, r->cur_init_id))
        return PD_ENOMEM;
    if (reinit && r->nsegs > 1) {
        /* the hint now names a part with a new init: TYPE=MAP hint */
        pthread_mutex_lock(&s->lock);
        pkg_idx_render_all(s);
        pthread_mutex_unlock(&s->lock);
    }
    return PD_OK;
}

/* Writes one sample (or, gap, dur ticks of nothing) into the open part of
 * r, opening part and segment as needed (msn for a new segment). A part
 * holds samples or gap only: switching cuts a part. */
static int put_sample(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                      const uint8_t *data, size_t len, int64_t dts,
                      int64_t pts, int64_t dur, bool key, int64_t arrival_us,
                      bool gap)
{
    if (r->part_open && r->part_gap != gap && part_nonempty(r))
        do_cut(s, r, CUT_PART);
    if (!r->cur) {
        int rc = begin_segment(s, r, msn, dts, arrival_us, data, len, key,
                               gap);
        if (rc) {
            if (!gap)
                log_reject(s, "cannot open the mp4 muxer for this track");
            return rc;
        }
    }
    if (!r->part_open) {
        r->part_open = true;
        r->part_gap = gap;
        r->part_start = dts;
        r->part_dur = r->part_frames = r->part_bytes = 0;
        r->part_indep = key && !gap;
    }
    if (gap) {
        r->part_dur += dur;
        r->tl_end = dts + dur;
        r->mux_discont = true;
        return PD_OK;
    }
    if (r->mux_discont) {
        r->mux_discont = false;
        if (pkg_cmaf_discont(r->mux) != PD_OK)
            log_reject(s, "the muxer cannot start a fragment after a gap");
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
    if (!r->seg_real) {
        r->seg_real = true;
        r->cur->start_pts = pts;
        if (r->media == PKG_MEDIA_VIDEO && !key && s->all_indep) {
            pthread_mutex_lock(&s->lock);
            s->all_indep = false; /* no more INDEPENDENT-SEGMENTS */
            pthread_mutex_unlock(&s->lock);
        }
    }
    return PD_OK;
}

/* ---- video ------------------------------------------------------------ */

static int place_video(pkg_stream_t *s, pkg_rend_t *r, int64_t dur)
{
    bool lead = is_lead(s, r);
    do_cut(s, r, decide(s, r, r->held_dts, dur, r->held_key, lead));
    return put_sample(s, r, s->next_msn, r->held, r->held_len, r->held_dts,
                      r->held_pts, dur, r->held_key, r->held_arrival, false);
}

static void log_gap(pkg_stream_t *s, const pkg_rend_t *r, int64_t ticks)
{
    if (s->logged_gap)
        return;
    s->logged_gap = true;
    PD_LOGW(PKG_MOD, "%s: no %s for %lld ms while the other track went on; "
            "the hole is published as GAP parts (logged once)", s->name,
            r->name, (long long)av_rescale(ticks, 1000, r->timescale));
}

/* Fills the lead video's hole from its end to until (ticks) with gap
 * parts: parts of at most PART-TARGET, segments cut on the segment
 * target's grid, boundaries queued for the audio as for real parts.
 * arrival_us is the arrival of the frame at until. */
static void fill_gap_video(pkg_stream_t *s, pkg_rend_t *r, int64_t until,
                           int64_t arrival_us)
{
    const pd_config_t *cfg = s->pkg->cfg;
    int64_t pt = ms2t(r, cfg->part_target_ms);
    int64_t target = ms2t(r, cfg->segment_target_ms);
    int64_t pos = r->tl_end;
    log_gap(s, r, until - pos);
    /* bounded: the hole is at most PKG_GAP_MAX_MS, each step >= 1 ms */
    for (int guard = 0; pos < until && guard < 2 * PKG_GAP_MAX_MS; guard++) {
        if (r->cur && pos - r->cur->start >= target)
            do_cut(s, r, CUT_SEG);
        else if (r->part_open && r->part_gap && r->part_dur >= pt)
            do_cut(s, r, CUT_PART);
        int64_t d = until - pos;
        int64_t room = pt - (r->part_open && r->part_gap ? r->part_dur : 0);
        if (d > room)
            d = room;
        if (r->cur) {
            int64_t seg_room = target - (pos - r->cur->start);
            if (seg_room > 0 && d > seg_room)
                d = seg_room;
        }
        if (d < ms2t(r, 1))
            d = until - pos < ms2t(r, 1) ? until - pos : ms2t(r, 1);
        int64_t arr = arrival_us -
                      av_rescale(until - pos, 1000000, r->timescale);
        if (put_sample(s, r, s->next_msn, NULL, 0, pos, pos, d, false, arr,
                       true) != PD_OK)
            break;
        pos += d;
    }
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
    int64_t dts = 0, gap_from = 0;
    int m = map_dts(s, r, f->dts_ms, &dts, &gap_from);
    if (m == MAP_DROP)
        return PD_OK;
    int64_t cts = f->cts_ms > 0 ? ms2t(r, f->cts_ms) : 0;
    int rc = PD_OK;
    if (r->have_held) {
        int64_t dur = dts - r->held_dts;
        if (m == MAP_GAP) {
            /* the held frame keeps its usual duration; the rest is gap */
            dur = gap_from - r->held_dts;
            if (dur <= 0 || dur > dts - r->held_dts)
                dur = 1;
        }
        rc = place_video(s, r, dur);
        if (m == MAP_GAP && is_lead(s, r))
            fill_gap_video(s, r, dts, f->arrival_us);
        /* ahead of time: will the new frame start a part or segment? */
        do_cut(s, r, decide(s, r, dts, dur, f->key, is_lead(s, r)));
    }
    int hrc = hold(r, f, dts, dts + cts);
    return hrc ? hrc : rc;
}

/* ---- audio ------------------------------------------------------------ */

static void aq_pop(pkg_rend_t *a)
{
    pkg_aframe_t *af = &a->aq[a->aq_head];
    a->aq_bytes -= af->len <= a->aq_bytes ? af->len : a->aq_bytes;
    free(af->data);
    memset(af, 0, sizeof(*af));
    a->aq_head = (a->aq_head + 1) % PKG_AQ_MAX;
    a->aq_n--;
}

/* The head entry has had dur ticks placed (or dropped): a frame is gone,
 * a gap entry shrinks. */
static void aq_consume(pkg_rend_t *a, int64_t dur)
{
    pkg_aframe_t *af = &a->aq[a->aq_head];
    if (af->gap_end > 0) {
        af->dts += dur;
        if (af->dts < af->gap_end)
            return;
    }
    aq_pop(a);
}

/* Estimated arrival of the head entry's start (a gap entry carries the
 * arrival of the frame after it). */
static int64_t af_arrival(const pkg_rend_t *a, const pkg_aframe_t *af)
{
    if (af->gap_end <= 0)
        return af->arrival_us;
    return af->arrival_us -
           av_rescale(af->gap_end - af->dts, 1000000, a->timescale);
}

static void place_audio(pkg_stream_t *s, pkg_rend_t *a, pkg_aframe_t *af,
                        int64_t dur, int64_t msn)
{
    bool gap = af->gap_end > 0;
    if (a->cur && a->cur->msn != msn)
        do_cut(s, a, CUT_SEG); /* missed its boundary: close it */
    do_cut(s, a, decide(s, a, af->dts, dur, true, false));
    put_sample(s, a, msn, af->data, af->len, af->dts, af->dts, dur, true,
               af_arrival(a, af), gap);
}

static void place_audio_self(pkg_stream_t *s, pkg_rend_t *a,
                             pkg_aframe_t *af, int64_t dur)
{
    bool gap = af->gap_end > 0;
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
               af_arrival(a, af), gap);
}

/* The first video boundary the audio has not passed (NULL: none). */
static pkg_bound_t *next_bound(pkg_stream_t *s, const pkg_rend_t *a)
{
    int64_t cur_msn = a->cur ? a->cur->msn : a->next_msn;
    for (int i = 0; i < s->bq_n; i++) {
        pkg_bound_t *b = &s->bq[(s->bq_head + i) % PKG_BQ_MAX];
        if (b->msn >= cur_msn)
            return b;
    }
    return NULL;
}

/* Would the audio, going on at t90, pass the end of a whole video
 * segment it has no segment for (its MSN skipped)? */
static bool audio_would_skip(pkg_stream_t *s, const pkg_rend_t *a,
                             int64_t t90)
{
    int64_t have = a->cur ? a->cur->msn : a->last_msn;
    int64_t cur_msn = a->cur ? a->cur->msn : a->next_msn;
    for (int i = 0; i < s->bq_n; i++) {
        const pkg_bound_t *b = &s->bq[(s->bq_head + i) % PKG_BQ_MAX];
        if (b->msn < cur_msn)
            continue;
        if (b->end90 > t90)
            return false;
        if (b->seg_end && b->msn > have)
            return true;
    }
    return false;
}

/* Where the audio's next segment should start (90 kHz): where its own
 * output ends if it has output this session, else where the video's
 * segment of the next boundary starts. -1: unknown, or no video boundary
 * lies beyond it (nothing to follow). */
static int64_t audio_from90(pkg_stream_t *s, const pkg_rend_t *a)
{
    int64_t from = -1;
    const pkg_bound_t *b = next_bound(s, a);
    if (!b)
        return -1;
    pkg_rend_t *v = rend_of(s, PKG_MEDIA_VIDEO);
    const pkg_seg_t *vg = b && v ? pkg_idx_find(v, b->msn) : NULL;
    if (vg)
        from = vg->start;
    if (a->mux) {
        int64_t e = av_rescale(a->tl_end, 90000, a->timescale);
        if (e > from)
            from = e;
    }
    const pkg_bound_t *last = &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX];
    return from >= 0 && last->end90 > from ? from : -1;
}

/* 10 a: the audio starts a segment later than the video's (its first
 * frames come late, a session's start): the hole before the frame at the
 * head becomes a gap entry placed first, so every MSN of the video gets
 * an audio segment covering the same interval. Returns true if one was
 * inserted (at the head). */
static bool audio_hole_before(pkg_stream_t *s, pkg_rend_t *a,
                              const pkg_aframe_t *af, int64_t t90)
{
    if (a->cur || af->gap_end > 0 || af->hole_checked ||
        a->aq_n >= PKG_AQ_MAX)
        return false;
    int64_t from = audio_from90(s, a);
    if (from < 0)
        return false; /* no video boundary to follow yet: ask again */
    a->aq[a->aq_head].hole_checked = true; /* at most one gap per frame */
    int64_t frame90 = av_rescale(nominal_dur(a), 90000, a->timescale);
    if ((t90 - from <= frame90 && !audio_would_skip(s, a, t90)) ||
        t90 - from > (int64_t)PKG_GAP_MAX_MS * 90)
        return false;
    a->aq_head = (a->aq_head + PKG_AQ_MAX - 1) % PKG_AQ_MAX;
    a->aq_n++;
    pkg_aframe_t *g = &a->aq[a->aq_head];
    memset(g, 0, sizeof(*g));
    g->dts = av_rescale(from, a->timescale, 90000);
    g->gap_end = af->dts;
    g->arrival_us = af->arrival_us;
    if (g->dts >= g->gap_end) {
        aq_pop(a);
        return false;
    }
    return true;
}

static void pump_audio(pkg_stream_t *s, pkg_rend_t *a, bool final)
{
    bool lead = is_lead(s, a);
    /* bounded: every pass consumes a frame or >= 1 tick of a gap entry of
     * at most PKG_GAP_MAX_MS, in steps of up to one frame */
    while (a->aq_n > 0) {
        pkg_aframe_t *af = &a->aq[a->aq_head];
        bool gap = af->gap_end > 0;
        int64_t dur;
        if (gap) {
            dur = af->gap_end - af->dts;
            if (dur > nominal_dur(a))
                dur = nominal_dur(a);
            if (dur <= 0) {
                aq_pop(a);
                continue;
            }
        } else if (a->aq_n >= 2) {
            dur = a->aq[(a->aq_head + 1) % PKG_AQ_MAX].dts - af->dts;
        } else if (final) {
            dur = nominal_dur(a);
        } else {
            break;
        }
        if (dur <= 0)
            dur = 1;
        if (lead) {
            place_audio_self(s, a, af, dur);
            aq_consume(a, dur);
            continue;
        }
        int64_t t90 = av_rescale(af->dts, 90000, a->timescale);
        if (!a->self_timed && audio_hole_before(s, a, af, t90))
            continue; /* the gap entry now at the head goes first */
        bool placed = false;
        while (s->bq_n > 0) {
            pkg_bound_t *b = &s->bq[s->bq_head];
            int64_t cur_msn = a->cur ? a->cur->msn : a->next_msn;
            if (b->msn < cur_msn) { /* behind us (self-timed earlier) */
                s->bq_head = (s->bq_head + 1) % PKG_BQ_MAX;
                s->bq_n--;
                continue;
            }
            /* the part ends at the frame boundary nearest the video
             * part's end: a frame whose middle is at or past it goes
             * to the next part (audio parts then match the video's in
             * number, at most one frame over the video's duration) */
            int64_t d90 = av_rescale(dur, 90000, a->timescale);
            bool past = t90 + d90 / 2 >= b->end90;
            if (past && t90 < b->end90 + d90) {
                /* ... unless the part would stay below 0.85 x its
                 * PART-TARGET without it and fits with it (the cut
                 * then lands at most one frame past the boundary) */
                int64_t pt_a = ms2t(a, s->pkg->cfg->part_target_ms +
                                           PKG_AUDIO_PT_EXTRA_MS);
                past = b->seg_end || !a->cur || a->cur->msn != b->msn ||
                       !part_nonempty(a) || a->part_dur * 100 >= pt_a * 85 ||
                       a->part_dur + dur > pt_a;
            }
            if (past) {
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
            if (a->cur && a->cur->msn == b->msn && part_nonempty(a) &&
                a->part_dur + dur >
                    ms2t(a, s->pkg->cfg->part_target_ms +
                                PKG_AUDIO_PT_EXTRA_MS)) {
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
                            a->aq_bytes > PKG_AQ_BYTES ||
                            span > ms2t(a, PKG_AQ_SPAN_MS);
            if (final && video_seen && !a->self_timed) {
                /* beyond the video's end: dropped */
            } else if (!final && overflow && v && v->seen &&
                       a->aq[(a->aq_head + a->aq_n - 1) % PKG_AQ_MAX]
                                   .arrival_us - v->last_arrival_us <
                           1000000) {
                /* video frames arrive but decide nothing yet (waiting for
                 * a keyframe, or far behind): the oldest audio goes */
            } else if (final || overflow) {
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
        aq_consume(a, dur);
    }
    if (s->bq_n > 0 && a->self_timed) {
        /* video is back: follow it again from its next segment */
        pkg_bound_t *b = &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX];
        if (b->msn >= (a->cur ? a->cur->msn : a->next_msn))
            a->self_timed = false;
    }
}

/* Appends an entry to the audio queue (bounded: never more than
 * PKG_AQ_MAX entries; the oldest goes first). Consumes data. */
static void aq_push(pkg_stream_t *s, pkg_rend_t *a, uint8_t *data,
                    size_t len, int64_t dts, int64_t gap_end,
                    int64_t arrival_us)
{
    if (a->aq_n == PKG_AQ_MAX) {
        /* cannot happen with pump's bound, but never grow */
        if (!s->logged_aq) {
            s->logged_aq = true;
            PD_LOGW(PKG_MOD, "%s: audio queue full; dropping the oldest "
                    "(logged once)", s->name);
        }
        aq_pop(a);
    }
    pkg_aframe_t *af = &a->aq[(a->aq_head + a->aq_n) % PKG_AQ_MAX];
    af->data = data;
    af->len = len;
    af->dts = dts;
    af->gap_end = gap_end;
    af->arrival_us = arrival_us;
    af->hole_checked = false;
    a->aq_bytes += len;
    a->aq_n++;
}

static int audio_frame(pkg_stream_t *s, pkg_rend_t *a, const pkg_frame_t *f)
{
    if (f->len > PKG_AFRAME_MAX) {
        if (!s->logged_abig) {
            s->logged_abig = true;
            PD_LOGW(PKG_MOD, "%s (peer %s): audio frame of %zu bytes (more "
                    "than %d); dropping such frames (logged once)", s->name,
                    s->peer, f->len, PKG_AFRAME_MAX);
        }
        return PD_EINVAL;
    }
    a->last_arrival_us = f->arrival_us;
    int64_t dts = 0, gap_from = 0;
    int m = map_dts(s, a, f->dts_ms, &dts, &gap_from);
    if (m == MAP_DROP)
        return PD_OK;
    uint8_t *copy = malloc(f->len);
    if (!copy)
        return PD_ENOMEM;
    memcpy(copy, f->data, f->len);
    if (m == MAP_GAP) {
        log_gap(s, a, dts - gap_from);
        aq_push(s, a, NULL, 0, gap_from, dts, f->arrival_us);
    }
    aq_push(s, a, copy, f->len, dts, 0, f->arrival_us);
    pump_audio(s, a, false);
    return PD_OK;
}

/* ---- entry points ----------------------------------------------------- */


/* ---- the ladder --------------------------------------------------------
 *
 * The ladder is resolved once per stream, at its first video keyframe
 * (pkg_ladder_select on the source's picture size and onMetaData frame
 * rate): rung 0 is the lead video rendition (the source passed through,
 * or the top encoded rung when the ladder has no passthrough rung); every
 * other rung is a follower rendition fed by the session's transcoder.
 * Followers decide no segment boundary: each of their frames goes into
 * the lead's segment that covers the frame's middle (same MSN, same
 * start, PDT and discontinuity), so segments of every rung cover the same
 * interval. The transcoder forces IDRs where the lead cuts (the source's
 * keyframes, or the segment target), so a follower's segment starts with
 * an IDR. A follower frame the lead has not covered yet waits (bounded:
 * PKG_FQ_MAX frames / PKG_FQ_BYTES). Parts are cut per rung by the same
 * rules as the lead's (decide). A rung the transcoder sheds gets gap
 * segments mirroring the lead's, so its playlist stays valid and players
 * move to another rung. All of it runs under the writer lock, taken by
 * the ingest thread and by the transcoder's threads.
 */

static void fq_pop(pkg_rend_t *r)
{
    pkg_vframe_t *e = &r->fq[r->fq_head];
    r->fq_bytes -= e->len <= r->fq_bytes ? e->len : r->fq_bytes;
    free(e->data);
    e->data = NULL;
    r->fq_head = (r->fq_head + 1) % PKG_FQ_MAX;
    r->fq_n--;
}

static int fq_push(pkg_rend_t *r, const uint8_t *data, size_t len,
                   int64_t dts, int64_t pts, int64_t dur, bool key,
                   int64_t arrival_us)
{
    if (r->fq_n == PKG_FQ_MAX)
        return PD_ELIMIT;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return PD_ENOMEM;
    memcpy(copy, data, len);
    pkg_vframe_t *e = &r->fq[(r->fq_head + r->fq_n) % PKG_FQ_MAX];
    e->data = copy;
    e->len = len;
    e->dts = dts;
    e->pts = pts;
    e->dur = dur > 0 ? dur : 1;
    e->key = key;
    e->arrival_us = arrival_us;
    r->fq_n++;
    r->fq_bytes += len;
    return PD_OK;
}

/* What a follower needs of a lead segment (copied: the lead's index may
 * change while the follower places). Followers have no B-frames (their
 * dts is their pts) and place by presentation time: a lead segment spans
 * [start_pts, the next one's start_pts) (its keyframe's pts onward), so
 * a follower's segment holds the same pictures as the lead's, beginning
 * with the IDR the transcoder forced on that keyframe's picture. */
typedef struct {
    int64_t msn, start, start_pts, dur, pdt_us;
    int64_t next_pts;   /* start_pts of the next lead segment; -1 none yet */
    bool complete, found;
    int nparts;
    int64_t part_dur[PKG_SEG_MAX_PARTS];
} lead_seg_t;

static void lead_seg_fill(const pkg_rend_t *l, int i, lead_seg_t *out)
{
    const pkg_seg_t *g = l->segs[i];
    out->found = true;
    out->msn = g->msn;
    out->start = g->start;
    out->start_pts = g->start_pts;
    out->dur = g->dur;
    out->pdt_us = g->pdt_us;
    out->complete = g->complete;
    out->next_pts = i + 1 < l->nsegs ? l->segs[i + 1]->start_pts : -1;
    out->nparts = g->nparts;
    for (int j = 0; j < g->nparts; j++)
        out->part_dur[j] = g->parts[j].dur;
}

/* The lead's segment holding presentation time t (the latest one whose
 * first picture is at or before t). known: no later lead segment can
 * start at or before t (a next one exists, or the lead has placed every
 * frame decoded before t: a future keyframe's pts >= its dts >= the
 * lead's end). too_old: t is before every retained lead segment. */
static bool lead_seg_at(pkg_stream_t *s, int64_t t, lead_seg_t *out,
                        bool *known, bool *too_old)
{
    pkg_rend_t *l = s->rends[s->lead];
    *known = false;
    *too_old = false;
    out->found = false;
    for (int i = l->nsegs - 1; i >= 0; i--) {
        if (l->segs[i]->start_pts > t)
            continue;
        lead_seg_fill(l, i, out);
        *known = i + 1 < l->nsegs || t < l->tl_end;
        return true;
    }
    *too_old = l->nsegs > 0;
    return false;
}

/* Copies the lead's segment msn (with its part durations). */
static bool lead_seg_copy(pkg_stream_t *s, int64_t msn, lead_seg_t *out)
{
    pkg_rend_t *l = s->rends[s->lead];
    out->found = false;
    for (int i = l->nsegs - 1; i >= 0; i--)
        if (l->segs[i]->msn == msn) {
            lead_seg_fill(l, i, out);
            return true;
        }
    return false;
}

/* A gap segment on follower r mirroring the lead's complete segment msn
 * (r has an init and no segment in progress). */
static void mirror_gap_seg(pkg_stream_t *s, pkg_rend_t *r, int64_t msn)
{
    lead_seg_t g;
    if (r->cur || r->cur_init_id == 0 || msn <= r->last_msn ||
        !lead_seg_copy(s, msn, &g) || !g.complete || g.nparts == 0)
        return;
    bool disc = r->disc_pending && msn >= s->disc_msn;
    if (disc)
        r->disc_pending = false;
    if (!pkg_idx_begin(s, r, msn, g.start_pts, g.pdt_us, disc,
                       r->cur_init_id))
        return;
    for (int j = 0; j < g.nparts; j++)
        pkg_idx_publish(s, r, NULL, g.part_dur[j], 0, false, true, false);
    pkg_idx_publish(s, r, NULL, 0, 0, false, false, true);
    r->tl_end = g.start_pts + g.dur;
    r->mux_discont = true;
    r->next_msn = msn + 1;
}

/* Ends follower r's segment in progress (msn) where the lead's ends: a
 * gap part covers what it lacks (frames lost in the transcoder at a
 * session's end, a rung shed mid-segment). */
static void fol_close(pkg_stream_t *s, pkg_rend_t *r)
{
    if (!r->cur)
        return;
    lead_seg_t g;
    if (r->mux && lead_seg_copy(s, r->cur->msn, &g) && g.complete) {
        int64_t end = g.next_pts >= 0 ? g.next_pts : g.start_pts + g.dur;
        if (end > r->tl_end && end - r->tl_end <= ms2t(r, PKG_GAP_MAX_MS))
            put_sample(s, r, r->cur->msn, NULL, 0, r->tl_end, r->tl_end,
                       end - r->tl_end, false, r->last_arrival_us, true);
    }
    do_cut(s, r, CUT_SEG);
}

/* The lead completed segment msn: shed followers, and followers starved
 * of frames (two segments behind: the transcoder gives them nothing),
 * mirror it, so their playlists go on with the lead's. */
static void mirror_shed(pkg_stream_t *s, int64_t msn)
{
    for (int i = 0; i < s->nrends; i++) {
        pkg_rend_t *r = s->rends[i];
        if (!r->follower || !r->active)
            continue;
        int64_t at = r->cur ? r->cur->msn : r->last_msn;
        bool starved = r->cur_init_id != 0 && at < msn - 1;
        if (!r->shed && !starved)
            continue;
        if (r->cur && r->cur->msn <= msn)
            fol_close(s, r);
        for (int64_t m = r->last_msn + 1 > msn - 64 ? r->last_msn + 1
                                                    : msn - 64;
             m <= msn; m++)
            mirror_gap_seg(s, r, m);
    }
}

/* Places follower r's queued frame e into the lead's segment g. */
static void fol_place(pkg_stream_t *s, pkg_rend_t *r, pkg_vframe_t *e,
                      const lead_seg_t *g)
{
    if (r->cur && r->cur->msn != g->msn)
        fol_close(s, r);
    if (!r->cur) {
        if (g->msn <= r->last_msn)
            return; /* its segment is closed (mirrored): dropped */
        /* lead segments this rung has no frames for: gap segments */
        int64_t from = r->last_msn + 1;
        if (from < g->msn - 64)
            from = g->msn - 64;
        for (int64_t m = from; m < g->msn; m++)
            mirror_gap_seg(s, r, m);
        int64_t from_t = r->tl_end > g->start_pts ? r->tl_end : g->start_pts;
        if (r->mux && e->dts > from_t + e->dur / 2) /* a late start */
            put_sample(s, r, g->msn, NULL, 0, from_t, from_t,
                       e->dts - from_t, false, e->arrival_us, true);
    } else if (e->dts > r->tl_end + e->dur / 2 && r->mux) {
        /* a hole inside the segment (the rung's input jumped) */
        put_sample(s, r, g->msn, NULL, 0, r->tl_end, r->tl_end,
                   e->dts - r->tl_end, false, e->arrival_us, true);
    }
    do_cut(s, r, decide(s, r, e->dts, e->dur, e->key, false));
    put_sample(s, r, g->msn, e->data, e->len, e->dts, e->pts, e->dur, e->key,
               e->arrival_us, false);
    /* ahead of time: the frame ends where the lead's next segment begins
     * (its duration comes from the next frame, so it ends exactly) */
    if (g->next_pts >= 0 && r->cur && e->pts + e->dur >= g->next_pts)
        do_cut(s, r, CUT_SEG);
}

/* Places the follower's queued frames the lead has covered. final: the
 * session ends (what cannot be placed is dropped). */
static void pump_follower(pkg_stream_t *s, pkg_rend_t *r, bool final)
{
    lead_seg_t g;
    /* bounded: each pass pops a frame or stops */
    while (r->fq_n > 0) {
        pkg_vframe_t *e = &r->fq[r->fq_head];
        bool known = false, old = false;
        bool full = r->fq_n >= PKG_FQ_MAX || r->fq_bytes > PKG_FQ_BYTES;
        if (!lead_seg_at(s, e->pts + e->dur / 2, &g, &known, &old)) {
            if (old || final || full) {
                fq_pop(r); /* before the lead's first retained segment */
                continue;
            }
            break;
        }
        if (!known && !final) {
            if (!full)
                break; /* the lead has not decided about it yet */
            if (!s->logged_ahead) {
                s->logged_ahead = true;
                PD_LOGW(PKG_MOD, "%s: rendition %s ran %d frames ahead of "
                        "%s; dropping (logged once)", s->name, r->name,
                        r->fq_n, s->rends[s->lead]->name);
            }
            fq_pop(r);
            continue;
        }
        if (!r->shed)
            fol_place(s, r, e, &g);
        fq_pop(r);
    }
}

static void pump_followers(pkg_stream_t *s, bool final)
{
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->follower && s->rends[i]->active)
            pump_follower(s, s->rends[i], final);
}

/* One encoded frame for follower r (publisher ms timestamps). */
static int follower_frame(pkg_stream_t *s, pkg_rend_t *r, const pkg_frame_t *f)
{
    r->seen = true;
    r->last_arrival_us = f->arrival_us;
    if (r->shed)
        return PD_OK;
    if (!r->have_held && !r->mux && r->fq_n == 0 && !f->key)
        return PD_OK; /* a rung starts at an IDR */
    int64_t dts = 0, gap_from = 0;
    int m = map_dts(s, r, f->dts_ms, &dts, &gap_from);
    if (m == MAP_DROP)
        return PD_OK;
    int64_t cts = f->cts_ms > 0 ? ms2t(r, f->cts_ms) : 0;
    if (r->have_held) {
        int64_t dur = dts - r->held_dts;
        if (m == MAP_GAP) {
            dur = gap_from - r->held_dts;
            if (dur <= 0 || dur > dts - r->held_dts)
                dur = 1;
        }
        if (r->fq_n == PKG_FQ_MAX)
            pump_follower(s, r, false); /* drops the oldest when full */
        if (fq_push(r, r->held, r->held_len, r->held_dts, r->held_pts, dur,
                    r->held_key, r->held_arrival) != PD_OK)
            log_reject(s, "a rendition's frame queue is full");
    }
    int rc = hold(r, f, dts, dts + cts);
    pump_follower(s, r, false);
    return rc;
}

/* ---- transcoder callbacks (transcoder threads) ------------------------ */

static pkg_rend_t *tc_rend(pkg_stream_t *s, int j)
{
    if (j < 0 || j >= s->ntc)
        return NULL;
    int k = s->tc_rung[j];
    if (k < 0 || k >= s->nrungs)
        return NULL;
    int ri = s->rung_rend[k];
    return ri >= 0 && ri < s->nrends ? s->rends[ri] : NULL;
}

/* The re-encoded audio's AudioSpecificConfig becomes the audio track's
 * declared configuration (writer lock held). */
static void tc_audio_config(pkg_stream_t *s, const uint8_t *extra, size_t len)
{
    pkg_aac_info_t ai;
    if (!extra || len == 0 || len > PKG_MAX_EXTRADATA ||
        pkg_aac_parse(extra, len, &ai) != PD_OK)
        return;
    if (s->decl_extra[PKG_MEDIA_AUDIO] && s->decl_len[PKG_MEDIA_AUDIO] == len &&
        memcmp(s->decl_extra[PKG_MEDIA_AUDIO], extra, len) == 0)
        return;
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, extra, len);
    free(s->decl_extra[PKG_MEDIA_AUDIO]);
    s->decl_extra[PKG_MEDIA_AUDIO] = copy;
    s->decl_len[PKG_MEDIA_AUDIO] = len;
    s->decl_codec[PKG_MEDIA_AUDIO] = PKG_CODEC_AAC;
    s->decl_changed[PKG_MEDIA_AUDIO] = true;
    pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
    if (a && a->mux)
        s->disc_next = true;
}

static void tc_on_config(void *opaque, int j, const uint8_t *extra,
                         size_t len)
{
    pkg_stream_t *s = opaque;
    pthread_mutex_lock(&s->wlock);
    if (j == PKG_TC_AUDIO) {
        tc_audio_config(s, extra, len);
        pthread_mutex_unlock(&s->wlock);
        return;
    }
    pkg_rend_t *r = tc_rend(s, j);
    char cs[32];
    if (r && extra && len > 0 && len <= PKG_MAX_EXTRADATA &&
        pkg_h264_codecs(extra, len, cs, sizeof(cs)) == PD_OK &&
        !(r->own_extra && r->own_len == len &&
          memcmp(r->own_extra, extra, len) == 0)) {
        uint8_t *copy = malloc(len);
        if (copy) {
            memcpy(copy, extra, len);
            free(r->own_extra);
            r->own_extra = copy;
            r->own_len = len;
            r->own_changed = true;
        }
    }
    pthread_mutex_unlock(&s->wlock);
}

static void tc_on_frame(void *opaque, const pkg_tc_out_t *o)
{
    pkg_stream_t *s = opaque;
    if (!o->data || o->len == 0 || o->len > PKG_MAX_FRAME)
        return;
    pthread_mutex_lock(&s->wlock);
    if (atomic_load(&s->pkg->shut)) { /* playlists ended: nothing more */
        pthread_mutex_unlock(&s->wlock);
        return;
    }
    if (o->rung == PKG_TC_AUDIO) {
        pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
        if (a && a->active && s->audio_tc && s->decl_extra[PKG_MEDIA_AUDIO] &&
            o->len <= PKG_AFRAME_MAX) {
            pkg_frame_t f = {0};
            f.media = PKG_MEDIA_AUDIO;
            f.dts_ms = o->dts_ms;
            f.key = true;
            f.data = o->data;
            f.len = o->len;
            f.arrival_us = o->arrival_us;
            audio_frame(s, a, &f);
        }
        pthread_mutex_unlock(&s->wlock);
        return;
    }
    pkg_rend_t *r = tc_rend(s, o->rung);
    if (r && r->active && r->own_extra) {
        pkg_frame_t f = {0};
        f.media = PKG_MEDIA_VIDEO;
        f.dts_ms = o->dts_ms;
        f.cts_ms = o->cts_ms;
        f.key = o->key;
        f.data = o->data;
        f.len = o->len;
        f.arrival_us = o->arrival_us;
        if (r->follower) {
            follower_frame(s, r, &f);
        } else {
            video_frame(s, r, &f);
            pump_followers(s, false);
        }
    }
    pthread_mutex_unlock(&s->wlock);
}

static void tc_on_event(void *opaque, int j, pkg_tc_event_t ev)
{
    pkg_stream_t *s = opaque;
    pthread_mutex_lock(&s->wlock);
    pkg_rend_t *r = tc_rend(s, j);
    if (r) {
        pthread_mutex_lock(&s->lock);
        if (ev == PKG_TC_EV_SHED && r->follower)
            r->shed = true;
        else if (ev == PKG_TC_EV_DROPPING)
            r->dropping = true;
        pthread_mutex_unlock(&s->lock);
        if (ev == PKG_TC_EV_SHED && r->follower)
            PD_LOGW(PKG_MOD, "%s: rendition %s shed (the machine cannot "
                    "encode every rung in real time); its playlist gets "
                    "gap segments from the next segment on", s->name,
                    r->name);
    }
    pthread_mutex_unlock(&s->wlock);
}

/* Resolves the ladder at the stream's first video keyframe f. */
static void ladder_fix(pkg_stream_t *s, pkg_rend_t *lead, const pkg_frame_t *f)
{
    const pd_config_t *cfg = s->pkg->cfg;
    s->ladder_fixed = true;
    int w = 0, h = 0;
    if (pkg_h264_size(s->decl_extra[PKG_MEDIA_VIDEO],
                      s->decl_len[PKG_MEDIA_VIDEO], f->data, f->len, &w,
                      &h) != PD_OK) {
        w = s->hint_w;
        h = s->hint_h;
    }
    pkg_rung_t rungs[PD_LADDER_MAX];
    int n = 0;
    if (w <= 0 || h <= 0 ||
        pkg_ladder_select(cfg, w, h, 1, 1, s->hint_fps, rungs, &n) != PD_OK ||
        n < 1 || n > PD_LADDER_MAX) {
        memset(rungs, 0, sizeof(rungs[0]));
        snprintf(rungs[0].name, sizeof(rungs[0].name), "source");
        rungs[0].passthrough = true;
        rungs[0].width = w;
        rungs[0].height = h;
        n = 1;
        PD_LOGW(PKG_MOD, "%s: source size unknown; no transcoding ladder",
                s->name);
    }
    if (s->nrends + n - 1 > PKG_MAX_RENDS)
        n = PKG_MAX_RENDS - s->nrends + 1;
    pkg_rend_t *nr[PD_LADDER_MAX] = {0};
    int made = 1;
    for (int i = 1; i < n; i++) {
        nr[i] = rend_new(PKG_MEDIA_VIDEO, s->nrends + i - 1, s->next_msn);
        if (!nr[i])
            break;
        made++;
    }
    pthread_mutex_lock(&s->lock);
    snprintf(lead->name, sizeof(lead->name), "%s", rungs[0].name);
    lead->rung = 0;
    lead->encoded = !rungs[0].passthrough;
    if (lead->encoded) {
        lead->width = rungs[0].width;
        lead->height = rungs[0].height;
    }
    s->rung_rend[0] = s->lead;
    for (int i = 1; i < made; i++) {
        pkg_rend_t *r = nr[i];
        snprintf(r->name, sizeof(r->name), "%s", rungs[i].name);
        r->follower = true;
        r->encoded = true;
        r->rung = i;
        r->width = rungs[i].width;
        r->height = rungs[i].height;
        r->offset_ms = lead->offset_ms;
        r->active = true;
        r->index = s->nrends;
        s->rung_rend[i] = s->nrends;
        s->rends[s->nrends++] = r;
    }
    memcpy(s->rungs, rungs, sizeof(rungs[0]) * (size_t)made);
    s->nrungs = made;
    s->ntc = 0;
    for (int i = 0; i < made; i++)
        if (!rungs[i].passthrough)
            s->tc_rung[s->ntc++] = i;
    pthread_mutex_unlock(&s->lock);
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; i < made && used < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s %dx%d",
                                 i ? ", " : "", rungs[i].name,
                                 rungs[i].width, rungs[i].height);
    PD_LOGI(PKG_MOD, "%s: source %dx%d; renditions: %s", s->name, w, h, list);
}

/* Starts this session's transcoder (at a video keyframe). */
static void tc_start(pkg_stream_t *s)
{
    const pd_config_t *cfg = s->pkg->cfg;
    pkg_rung_t enc[PD_LADDER_MAX];
    for (int j = 0; j < s->ntc; j++)
        enc[j] = s->rungs[s->tc_rung[j]];
    pkg_tc_params_t p = {0};
    p.stream = s->name;
    p.rungs = enc;
    p.nrungs = s->ntc;
    p.idr_follow_source = s->nrungs > 0 && s->rungs[0].passthrough;
    p.idr_interval_ms = cfg->segment_target_ms;
    p.preset = cfg->x264_preset;
    p.encoder_threads = cfg->encoder_threads;
    p.decode_threads = cfg->decode_threads;
    p.shed_largest_first = strcmp(cfg->shed_order, "smallest") != 0;
    /* an encoded lead is never shed: every other rung follows it */
    p.keep_rung = s->nrungs > 0 && !s->rungs[0].passthrough ? 1 : 0;
    p.audio_rate = 48000;
    p.audio_channels = 2;
    p.audio_bitrate_kbps = cfg->audio_bitrate_kbps;
    pkg_tc_cb_t cb = {s, tc_on_config, tc_on_frame, tc_on_event};
    int rc = pkg_tc_create(&p, &cb, &s->tc);
    if (rc != PD_OK) {
        s->tc = NULL;
        s->tc_failed = true;
        if (!s->logged_tc) {
            s->logged_tc = true;
            PD_LOGE(PKG_MOD, "%s: cannot start the transcoder (%d); the "
                    "encoded renditions get gap segments", s->name, rc);
        }
        pkg_rend_t *lead = s->rends[s->lead];
        pthread_mutex_lock(&s->lock);
        for (int j = 0; j < s->ntc; j++) {
            pkg_rend_t *r = tc_rend(s, j);
            if (r && r->follower)
                r->shed = true;
        }
        pthread_mutex_unlock(&s->lock);
        if (lead->encoded) {
            /* the lead must go on: it carries the source instead */
            lead->encoded = false;
            PD_LOGE(PKG_MOD, "%s: rendition %s carries the source as is",
                    s->name, lead->name);
        }
        return;
    }
    pkg_tc_video_config(s->tc, s->decl_extra[PKG_MEDIA_VIDEO],
                        s->decl_len[PKG_MEDIA_VIDEO]);
}

/* Starts this session's audio transcoder. */
static int atc_start(pkg_stream_t *s)
{
    const pd_config_t *cfg = s->pkg->cfg;
    pkg_rend_t *a = rend_of(s, PKG_MEDIA_AUDIO);
    pkg_tc_params_t p = {0};
    p.stream = s->name;
    p.nrungs = 0;
    p.idr_interval_ms = cfg->segment_target_ms;
    p.preset = cfg->x264_preset;
    p.audio_rate = a ? a->timescale : 48000;
    p.audio_channels = 2;
    p.audio_bitrate_kbps = cfg->audio_bitrate_kbps;
    pkg_tc_cb_t cb = {s, tc_on_config, tc_on_frame, tc_on_event};
    int rc = pkg_tc_create(&p, &cb, &s->atc);
    if (rc == PD_OK)
        rc = pkg_tc_audio_config(s->atc,
                                 s->src_acodec == PKG_CODEC_MP3
                                     ? AV_CODEC_ID_MP3
                                     : AV_CODEC_ID_AAC,
                                 s->src_aextra, s->src_alen, 0, 0);
    if (rc != PD_OK) {
        pkg_tc_destroy(&s->atc);
        s->atc_failed = true;
        PD_LOGE(PKG_MOD, "%s: cannot re-encode the publisher's audio (%s); "
                "audio dropped this session", s->name, pd_strerror(rc));
    }
    return rc;
}

/* One source audio frame to re-encode. */
static int source_audio_tc(pkg_stream_t *s, pkg_rend_t *a,
                           const pkg_frame_t *f)
{
    a->seen = true;
    a->last_arrival_us = f->arrival_us;
    if (!s->atc && !s->atc_failed)
        atc_start(s);
    if (s->atc)
        pkg_tc_audio(s->atc, f);
    return PD_OK;
}

/* One source video frame: the passthrough lead and the transcoder. */
static int source_video(pkg_stream_t *s, pkg_rend_t *lead,
                        const pkg_frame_t *f)
{
    if (!s->ladder_fixed) {
        if (!f->key) { /* a stream starts at a keyframe */
            lead->seen = true; /* (the audio waits for it) */
            lead->last_arrival_us = f->arrival_us;
            return PD_OK;
        }
        ladder_fix(s, lead, f);
    }
    if (s->ntc > 0 && !s->tc && f->key && !s->tc_failed)
        tc_start(s);
    if (s->tc)
        pkg_tc_video(s->tc, f);
    int rc = PD_OK;
    if (!lead->encoded)
        rc = video_frame(s, lead, f);
    pump_followers(s, false);
    return rc;
}

void pkg_writer_take_tc(pkg_stream_t *s, pkg_tc_t **video, pkg_tc_t **audio)
{
    pthread_mutex_lock(&s->wlock);
    *video = s->tc;
    *audio = s->atc;
    s->tc = NULL;
    s->atc = NULL;
    pthread_mutex_unlock(&s->wlock);
}

static int stream_write(pkg_stream_t *s, const pkg_frame_t *f)
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
    if (f->media == PKG_MEDIA_AUDIO && s->audio_tc)
        return source_audio_tc(s, r, f);
    return f->media == PKG_MEDIA_VIDEO ? source_video(s, r, f)
                                       : audio_frame(s, r, f);
}

int pkg_stream_write(pkg_stream_t *s, const pkg_frame_t *f)
{
    if (!s)
        return PD_EINVAL;
    pthread_mutex_lock(&s->wlock);
    int rc = stream_write(s, f);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

/* 10 a: the video of this session never started (declared, no keyframe
 * came) but the audio, cutting on its own, made segments: the video gets
 * a gap segment of the same MSN, duration, PDT and discontinuity for
 * each, so both playlists number their segments alike. */
static void mirror_audio_as_video_gaps(pkg_stream_t *s, pkg_rend_t *v,
                                       pkg_rend_t *a)
{
    const pd_config_t *cfg = s->pkg->cfg;
    if (v->mux || !v->active || v->cur_init_id == 0 || v->cur)
        return;
    int64_t pt = ms2t(v, cfg->part_target_ms);
    for (int i = 0; i < a->nsegs; i++) {
        const pkg_seg_t *g = a->segs[i];
        if (!g->complete || g->msn < s->next_msn || g->msn <= v->last_msn)
            continue;
        int64_t left = av_rescale(g->dur, v->timescale, a->timescale);
        if (left <= 0)
            continue;
        if (!pkg_idx_begin(s, v, g->msn, v->tl_end, g->pdt_us,
                           g->discontinuity, v->cur_init_id))
            return;
        if (g->discontinuity)
            s->disc_next = false; /* carried by this one */
        for (int k = 0; left > 0 && k < PKG_SEG_MAX_PARTS - 1; k++) {
            int64_t d = left < pt ? left : pt;
            pkg_idx_publish(s, v, NULL, d, 0, false, true, false);
            v->tl_end += d;
            left -= d;
        }
        pkg_idx_publish(s, v, NULL, 0, 0, false, false, true);
        s->next_msn = g->msn + 1;
    }
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
    for (int i = 0; i < s->nrends; i++) {
        pkg_rend_t *r = s->rends[i];
        if (!r->follower || !r->active)
            continue;
        if (r->have_held) {
            int64_t dur = r->last_dur > 0 ? r->last_dur : nominal_dur(r);
            fq_push(r, r->held, r->held_len, r->held_dts, r->held_pts, dur,
                    r->held_key, r->held_arrival);
            r->have_held = false;
        }
        pump_follower(s, r, true);
        fol_close(s, r);
        /* the lead's segments the transcoder's last frames never reached */
        pkg_rend_t *l = s->rends[s->lead];
        if (l->last_msn > r->last_msn)
            for (int64_t m = r->last_msn + 1 > l->last_msn - 64
                                 ? r->last_msn + 1
                                 : l->last_msn - 64;
                 m <= l->last_msn; m++)
                mirror_gap_seg(s, r, m);
    }
    if (a) {
        pump_audio(s, a, true);
        /* 10 a: the video ran past the audio (its last frames never
         * came): gap up to the video's end, so every MSN has audio */
        if (a->active && !is_lead(s, a) && !a->self_timed && s->bq_n > 0 &&
            a->aq_n == 0) {
            const pkg_bound_t *last =
                &s->bq[(s->bq_head + s->bq_n - 1) % PKG_BQ_MAX];
            int64_t from = audio_from90(s, a);
            int64_t frame90 = av_rescale(nominal_dur(a), 90000,
                                         a->timescale);
            if (from >= 0 && (last->end90 - from > frame90 ||
                              audio_would_skip(s, a, last->end90))) {
                int64_t d0 = av_rescale(from, a->timescale, 90000);
                int64_t d1 = av_rescale(last->end90, a->timescale, 90000);
                if (d1 - d0 <= ms2t(a, PKG_GAP_MAX_MS)) {
                    aq_push(s, a, NULL, 0, d0, d1, a->last_arrival_us);
                    pump_audio(s, a, true);
                }
            }
        }
        if (a->cur)
            do_cut(s, a, CUT_SEG);
        if (v && v != a)
            mirror_audio_as_video_gaps(s, v, a);
    }
    int64_t last = 0;
    for (int i = 0; i < s->nrends; i++) {
        pkg_rend_t *r = s->rends[i];
        pkg_cmaf_close(&r->mux);
        while (r->aq_n > 0)
            aq_pop(r);
        r->aq_head = 0;
        r->aq_bytes = 0;
        while (r->fq_n > 0)
            fq_pop(r);
        r->fq_head = 0;
        r->fq_bytes = 0;
        pthread_mutex_lock(&s->lock);
        r->shed = false;
        r->dropping = false;
        pthread_mutex_unlock(&s->lock);
        if (r->encoded)
            r->own_changed = true; /* the next session's encoder: new init */
        r->have_held = false;
        r->part_open = false;
        r->part_gap = false;
        r->seg_real = false;
        r->mux_discont = false;
        r->last_dts = -1;
        r->last_dur = 0;
        r->active = false;
        r->self_timed = false;
        r->seen = false;
        if (r->last_msn > last)
            last = r->last_msn;
    }
    s->bq_n = s->bq_head = 0;
    if (s->next_msn < last + 1)
        s->next_msn = last + 1;
    for (int i = 0; i < s->nrends; i++)
        if (s->rends[i]->next_msn < s->next_msn)
            s->rends[i]->next_msn = s->next_msn;
    s->tracks_fixed = false;
    s->tc_failed = false;
    s->atc_failed = false;
    s->audio_tc = false;
    s->declared[0] = s->declared[1] = false;
    s->rebase_next = true;
    s->disc_next = s->nrends > 0;
}

void pkg_writer_free_rend(pkg_rend_t *r)
{
    while (r->aq_n > 0)
        aq_pop(r);
    while (r->fq_n > 0)
        fq_pop(r);
    free(r->own_extra);
    r->own_extra = NULL;
    free(r->held);
    r->held = NULL;
    r->held_cap = 0;
}
