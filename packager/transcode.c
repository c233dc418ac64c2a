/*
 * packager/transcode.c - per-stream transcoder: decode once, scale once
 * per rung, encode per rung (libx264), re-encode audio to AAC.
 *
 * Threads (all owned by one pkg_tc_t, joined by pkg_tc_destroy):
 *   decode  pulls source packets from a bounded queue (TC_SRC_MAX_PKTS /
 *           TC_SRC_MAX_BYTES), decodes (libavcodec h264), converts to
 *           yuv420p, scales once per rung (cascading from the smallest
 *           picture already made that is at least as large), decides the
 *           forced IDRs (the same pictures for every rung) and hands a
 *           reference (av_frame_ref, no copy) to each rung's queue
 *           (TC_RUNG_QUEUE pictures). It also detects overload and sheds.
 *   rung    one per encoded rung: libx264 through libavcodec, Annex B ->
 *           AVCC, cb->config / cb->frame.
 *   audio   decode any libavcodec audio, resample (libswresample) to fltp
 *           at the configured rate/channels, encode AAC-LC (native "aac"),
 *           bounded queue (TC_AUD_MAX_PKTS / TC_AUD_MAX_BYTES).
 *
 * Invariants: the publisher is never slowed down (pkg_tc_video/audio only
 * queue or drop); every queue is bounded; a forced IDR is never dropped
 * in favour of a non-IDR; every rung gets its forced IDRs on the same
 * source pictures, so IDR pts are identical across rungs; timestamps in
 * and out are the publisher's milliseconds; no callback runs after
 * pkg_tc_destroy returns.
 */
#include "transcode.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <libavcodec/avcodec.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TC_MOD "tc"
#define TC_SRC_MAX_PKTS 120
#define TC_SRC_MAX_BYTES ((size_t)32 << 20)
#define TC_AUD_MAX_PKTS 256
#define TC_AUD_MAX_BYTES ((size_t)4 << 20)
#define TC_MAX_FRAME ((size_t)16 << 20) /* one source frame, bytes */
#define TC_MAX_EXTRADATA ((size_t)1 << 16)
#define TC_RUNG_QUEUE 6          /* pictures per rung */
#define TC_RING 64               /* pts -> arrival map entries */
#define TC_WAIT_US 100000        /* every wait has this timeout */
#define TC_SHED_WINDOW_S 5       /* drop-ratio window, seconds */
#define TC_SHED_FULL_US 2000000  /* queue full this long: overloaded */
#define TC_SHED_MIN_AGE_US 2000000 /* no shed decision before this */
#define TC_SHED_GAP_US 5000000   /* at most one shed per this */
#define TC_REANCHOR_MS 500       /* audio pts jump that re-anchors */
#define TC_STEP_BACK_MS 1000     /* smaller step backs drop pictures */

/* ---- small helpers ---------------------------------------------------- */

static int64_t thread_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void deadline_in(struct timespec *ts, int64_t us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    int64_t ns = ts->tv_nsec + (us % 1000000) * 1000;
    ts->tv_sec += (time_t)(us / 1000000 + ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

static int cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return PD_ENOMEM;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc == 0 ? PD_OK : PD_ENOMEM;
}

/* Grows *buf to at least need bytes. Returns PD_OK or PD_ENOMEM. */
static int buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return PD_OK;
    uint8_t *n = realloc(*buf, need);
    if (!n)
        return PD_ENOMEM;
    *buf = n;
    *cap = need;
    return PD_OK;
}

/* Next "00 00 01" at or after i in b[0..n); n if none. */
static size_t next_start_code(const uint8_t *b, size_t n, size_t i)
{
    for (; i + 3 <= n; i++)
        if (b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1)
            return i;
    return n;
}

/* Iterates the NAL units of an Annex B buffer: on each call sets *nal /
 * *len to the next unit (trailing zero bytes trimmed) and returns true;
 * false at the end. *pos is the cursor (start at 0). */
static bool annexb_next(const uint8_t *b, size_t n, size_t *pos,
                        const uint8_t **nal, size_t *len)
{
    for (;;) {
        size_t sc = next_start_code(b, n, *pos);
        if (sc >= n)
            return false;
        size_t s = sc + 3;
        size_t e = next_start_code(b, n, s);
        *pos = e;
        while (e > s && b[e - 1] == 0)
            e--;
        if (e > s) {
            *nal = b + s;
            *len = e - s;
            return true;
        }
    }
}

/* Annex B -> AVCC with 4-byte lengths into *out (grown as needed).
 * Returns PD_OK (*olen set; 0 if no NAL unit), PD_ENOMEM or PD_EINVAL. */
static int annexb_to_avcc(const uint8_t *b, size_t n, uint8_t **out,
                          size_t *cap, size_t *olen)
{
    /* every NAL unit costs at least 4 input bytes (start code + 1), and
     * 4 + len output bytes: the output is at most 2n + 4 */
    if (n > TC_MAX_FRAME)
        return PD_EINVAL;
    if (buf_reserve(out, cap, 2 * n + 16) != PD_OK)
        return PD_ENOMEM;
    size_t pos = 0, o = 0, len;
    const uint8_t *nal;
    while (annexb_next(b, n, &pos, &nal, &len)) {
        if (len > UINT32_MAX || o + 4 + len > *cap)
            return PD_EINVAL;
        (*out)[o] = (uint8_t)(len >> 24);
        (*out)[o + 1] = (uint8_t)(len >> 16);
        (*out)[o + 2] = (uint8_t)(len >> 8);
        (*out)[o + 3] = (uint8_t)len;
        memcpy(*out + o + 4, nal, len);
        o += 4 + len;
    }
    *olen = o;
    return PD_OK;
}

/* Builds an avcC record from Annex B SPS/PPS (an encoder's extradata).
 * Returns PD_OK with *out (malloc'd, caller frees) or PD_EINVAL when no
 * usable SPS and PPS are found, PD_ENOMEM. */
static int annexb_to_avcc_record(const uint8_t *b, size_t n, uint8_t **out,
                                 size_t *olen)
{
    const uint8_t *sps[31], *pps[255];
    size_t sps_len[31], pps_len[255];
    int nsps = 0, npps = 0;
    size_t pos = 0, len, total = 7;
    const uint8_t *nal;
    while (annexb_next(b, n, &pos, &nal, &len)) {
        int type = nal[0] & 0x1f;
        if (len > 0xffff)
            return PD_EINVAL;
        if (type == 7 && nsps < 31 && len >= 4) {
            sps[nsps] = nal;
            sps_len[nsps++] = len;
            total += 2 + len;
        } else if (type == 8 && npps < 255) {
            pps[npps] = nal;
            pps_len[npps++] = len;
            total += 2 + len;
        }
    }
    if (nsps == 0 || npps == 0)
        return PD_EINVAL;
    int prof = sps[0][1];
    bool ext = prof == 100 || prof == 110 || prof == 122 || prof == 144;
    if (ext)
        total += 4;
    uint8_t *r = malloc(total);
    if (!r)
        return PD_ENOMEM;
    size_t o = 0;
    r[o++] = 1;
    r[o++] = sps[0][1]; /* profile_idc */
    r[o++] = sps[0][2]; /* constraint flags */
    r[o++] = sps[0][3]; /* level_idc */
    r[o++] = 0xff;      /* 4-byte NAL lengths */
    r[o++] = (uint8_t)(0xe0 | nsps);
    for (int i = 0; i < nsps; i++) {
        r[o++] = (uint8_t)(sps_len[i] >> 8);
        r[o++] = (uint8_t)sps_len[i];
        memcpy(r + o, sps[i], sps_len[i]);
        o += sps_len[i];
    }
    r[o++] = (uint8_t)npps;
    for (int i = 0; i < npps; i++) {
        r[o++] = (uint8_t)(pps_len[i] >> 8);
        r[o++] = (uint8_t)pps_len[i];
        memcpy(r + o, pps[i], pps_len[i]);
        o += pps_len[i];
    }
    if (ext) {
        /* ISO/IEC 14496-15 5.3.3.1.2: High profiles carry the chroma
         * format and bit depths (our encoders: 4:2:0, 8 bits), no SPS
         * extensions */
        r[o++] = 0xfc | 1;
        r[o++] = 0xf8 | 0;
        r[o++] = 0xf8 | 0;
        r[o++] = 0;
    }
    *out = r;
    *olen = o;
    return PD_OK;
}

/* Structural check of an avcC (AVCDecoderConfigurationRecord). */
static bool avcc_valid(const uint8_t *p, size_t n)
{
    if (!p || n < 7 || n > TC_MAX_EXTRADATA || p[0] != 1)
        return false;
    size_t off = 5;
    int nsps = p[off++] & 0x1f;
    if (nsps == 0)
        return false;
    for (int i = 0; i < nsps; i++) {
        if (off + 2 > n)
            return false;
        size_t l = (size_t)p[off] << 8 | p[off + 1];
        off += 2;
        if (l < 4 || off + l > n || (p[off] & 0x1f) != 7)
            return false;
        off += l;
    }
    if (off + 1 > n)
        return false;
    int npps = p[off++];
    if (npps == 0)
        return false;
    for (int i = 0; i < npps; i++) {
        if (off + 2 > n)
            return false;
        size_t l = (size_t)p[off] << 8 | p[off + 1];
        off += 2;
        if (l < 1 || off + l > n || (p[off] & 0x1f) != 8)
            return false;
        off += l;
    }
    return true;
}

/* ---- packet queue (source video, audio) ------------------------------- */

typedef struct tc_item_s {
    struct tc_item_s *next;
    AVPacket *pkt;       /* pts/dts in ms; AV_PKT_FLAG_KEY from publisher */
    AVBufferRef *cfg;    /* the configuration in force (own reference) */
    int64_t arrival_us;  /* wallclock arrival of the source frame */
} tc_item_t;

typedef struct tc_pq_s {
    tc_item_t *head, *tail;
    int n;               /* items queued (<= max_n) */
    size_t bytes;        /* payload bytes queued (<= max_bytes) */
    int max_n;
    size_t max_bytes;
    bool skip_to_key;    /* dropping until the next keyframe (video) */
    bool logged;         /* overflow logged once */
} tc_pq_t;

static void item_free(tc_item_t *it)
{
    if (!it)
        return;
    av_packet_free(&it->pkt);
    av_buffer_unref(&it->cfg);
    free(it);
}

static void pq_clear(tc_pq_t *q)
{
    while (q->head) {
        tc_item_t *it = q->head;
        q->head = it->next;
        item_free(it);
    }
    q->tail = NULL;
    q->n = 0;
    q->bytes = 0;
}

static tc_item_t *pq_pop(tc_pq_t *q)
{
    tc_item_t *it = q->head;
    if (!it)
        return NULL;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    q->bytes -= (size_t)it->pkt->size;
    it->next = NULL;
    return it;
}

/* ---- per-rung state --------------------------------------------------- */

typedef struct tc_pic_s {
    AVFrame *f;          /* a reference; pts in ms, pict_type I if forced */
    bool idr;            /* forced IDR */
    int64_t arrival_us;
} tc_pic_t;

typedef struct tc_arr_s {
    int64_t pts;         /* ms */
    int64_t arrival_us;
    bool key;            /* source packet's key flag */
    bool used;
} tc_arr_t;

typedef struct tc_rung_st {
    struct pkg_tc_s *tc;
    int idx;
    pkg_rung_t r;
    pthread_t thr;
    bool started;

    pthread_mutex_t lock;    /* q, stats, shed */
    pthread_cond_t cond;
    tc_pic_t q[TC_RUNG_QUEUE];
    int qn;
    atomic_bool shed;
    int64_t frames_in, frames_out, dropped, encode_us;

    /* decode thread only */
    struct SwsContext *sws;
    int sws_w, sws_h;        /* source size sws was made for */
    bool grid_init;
    int64_t next_due_us;     /* frame grid, us of pts */
    int64_t win_sec[TC_SHED_WINDOW_S], win_in[TC_SHED_WINDOW_S],
        win_drop[TC_SHED_WINDOW_S];
    int64_t full_since_us;   /* monotonic; 0 = not full */
    int64_t first_us;        /* monotonic, first offer (0 = none) */
    bool drop_evented;

    /* rung thread only */
    AVCodecContext *enc;
    bool enc_failed;
    AVPacket *pkt;
    uint8_t *out;
    size_t out_cap;
    tc_arr_t ring[TC_RING];
    unsigned ring_pos;
    bool err_logged;
} tc_rung_t;

/* ---- audio thread state ----------------------------------------------- */

typedef struct tc_acfg_s {
    int codec_id, rate, channels;
    size_t len;
    uint8_t data[];          /* extradata */
} tc_acfg_t;

typedef struct tc_aud_s {
    AVCodecContext *dec;
    AVBufferRef *cfg;        /* config the decoder was opened with */
    bool dec_failed;
    SwrContext *swr;
    int swr_fmt, swr_rate;
    AVChannelLayout swr_layout;
    AVAudioFifo *fifo;
    AVCodecContext *enc;
    bool enc_failed;
    AVFrame *df, *cf, *ef;   /* decoded, converted, encoder input */
    AVPacket *pkt;
    int64_t pushed;          /* samples (output rate) written to fifo */
    int64_t encoded;         /* samples sent to the encoder */
    bool anchored;
    int64_t base_ms, base_s;       /* sample base_s plays at base_ms */
    int64_t prev_ms, prev_s;       /* the mapping before the last jump */
    int64_t in_base_ms, in_samples;
    int in_rate;
    int64_t arrival_us;            /* wallclock arrival of the last input */
    bool err_logged;
} tc_aud_t;

/* ---- the transcoder --------------------------------------------------- */

struct pkg_tc_s {
    char stream[96];         /* for logs (query string cut off) */
    pkg_tc_cb_t cb;
    int nrungs;
    bool follow;
    int idr_interval_ms;
    char preset[32];
    int enc_threads, dec_threads;
    int keep_rung;            /* never shed: index + 1; 0 none */
    bool shed_largest_first;
    int arate, achannels, abitrate_kbps;

    atomic_bool stop;
    pthread_mutex_t lock;    /* queues, configs, tc stats */
    pthread_cond_t src_cond, aud_cond;
    tc_pq_t srcq, audq;
    AVBufferRef *vcfg;       /* current avcC (NULL: none / invalid) */
    AVBufferRef *acfg;       /* current tc_acfg_t */
    int64_t decoded, decode_dropped, decode_us, audio_in, audio_out;
    bool audq_logged;

    pthread_t dec_thr, aud_thr;
    bool dec_started, aud_started;

    tc_rung_t rung[PD_LADDER_MAX];
    int order[PD_LADDER_MAX]; /* rung indexes, largest area first */

    /* decode thread only */
    AVCodecContext *dec;
    AVBufferRef *dec_cfg;
    AVPacket *dpkt;
    AVFrame *dfr;
    struct SwsContext *conv; /* to yuv420p at source size */
    tc_arr_t ring[TC_RING];
    unsigned ring_pos;
    bool have_last;
    int64_t last_pts;        /* ms, last picture distributed */
    bool idr_first_done;
    bool idr_reanchor;       /* interval mode: restart the grid */
    int64_t idr_anchor, idr_next; /* ms */
    int64_t last_shed_us;
    bool dec_err_logged;

    tc_aud_t a;
};

static void tc_event(pkg_tc_t *tc, int rung, pkg_tc_event_t ev)
{
    if (tc->cb.event)
        tc->cb.event(tc->cb.opaque, rung, ev);
}

static void ring_put(tc_arr_t *ring, unsigned *pos, int64_t pts,
                     int64_t arrival_us, bool key)
{
    tc_arr_t *e = &ring[*pos % TC_RING];
    (*pos)++;
    e->pts = pts;
    e->arrival_us = arrival_us;
    e->key = key;
    e->used = true;
}

static const tc_arr_t *ring_get(const tc_arr_t *ring, unsigned pos,
                                int64_t pts)
{
    for (unsigned i = 0; i < TC_RING; i++) {
        const tc_arr_t *e = &ring[(pos - 1 - i) % TC_RING];
        if (e->used && e->pts == pts)
            return e;
    }
    return NULL;
}

/* ---- rung (encode) thread --------------------------------------------- */

static int rung_open(tc_rung_t *rg)
{
    pkg_tc_t *tc = rg->tc;
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    if (!c)
        return PD_EUNSUP;
    AVCodecContext *e = avcodec_alloc_context3(c);
    if (!e)
        return PD_ENOMEM;
    e->width = rg->r.width;
    e->height = rg->r.height;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->time_base = (AVRational){1, 1000};
    e->framerate = (AVRational){rg->r.fps_num, rg->r.fps_den};
    e->bit_rate = (int64_t)rg->r.bitrate_kbps * 1000;
    e->rc_max_rate = (int64_t)rg->r.maxrate_kbps * 1000;
    e->rc_buffer_size = rg->r.bufsize_kbps * 1000;
    e->max_b_frames = 0;
    e->level = rg->r.level > 0 ? rg->r.level : FF_LEVEL_UNKNOWN;
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    e->thread_count = tc->enc_threads > 0 ? tc->enc_threads : 0;
    AVDictionary *o = NULL;
    av_dict_set(&o, "preset", tc->preset, 0);
    av_dict_set(&o, "tune", "zerolatency", 0);
    if (rg->r.profile[0])
        av_dict_set(&o, "profile", rg->r.profile, 0);
    av_dict_set(&o, "forced-idr", "1", 0);
    av_dict_set(&o, "x264-params",
                "keyint=infinite:scenecut=0:rc-lookahead=0:bframes=0", 0);
    int ret = avcodec_open2(e, c, &o);
    av_dict_free(&o);
    if (ret < 0) {
        char eb[64];
        av_strerror(ret, eb, sizeof(eb));
        PD_LOGW(TC_MOD, "%s: rung %s: cannot open libx264 %dx%d: %s",
                tc->stream, rg->r.name, rg->r.width, rg->r.height, eb);
        avcodec_free_context(&e);
        return PD_EINVAL;
    }
    uint8_t *avcc = NULL;
    size_t alen = 0;
    if (!e->extradata ||
        annexb_to_avcc_record(e->extradata, (size_t)e->extradata_size, &avcc,
                              &alen) != PD_OK) {
        PD_LOGW(TC_MOD, "%s: rung %s: encoder gave no SPS/PPS", tc->stream,
                rg->r.name);
        avcodec_free_context(&e);
        return PD_EINVAL;
    }
    rg->enc = e;
    tc->cb.config(tc->cb.opaque, rg->idx, avcc, alen);
    free(avcc);
    PD_LOGI(TC_MOD, "%s: rung %s: libx264 %dx%d@%d/%d %d kbps %s %s L%d",
            tc->stream, rg->r.name, rg->r.width, rg->r.height, rg->r.fps_num,
            rg->r.fps_den, rg->r.bitrate_kbps, tc->preset, rg->r.profile,
            rg->r.level);
    return PD_OK;
}

static void rung_emit(tc_rung_t *rg, const AVPacket *pkt)
{
    pkg_tc_t *tc = rg->tc;
    size_t len = 0;
    if (annexb_to_avcc(pkt->data, (size_t)pkt->size, &rg->out, &rg->out_cap,
                       &len) != PD_OK ||
        len == 0)
        return;
    const tc_arr_t *a = ring_get(rg->ring, rg->ring_pos, pkt->pts);
    pkg_tc_out_t o = {
        .rung = rg->idx,
        .data = rg->out,
        .len = len,
        .dts_ms = pkt->dts,
        .cts_ms = (int32_t)(pkt->pts - pkt->dts),
        .key = (pkt->flags & AV_PKT_FLAG_KEY) != 0,
        .arrival_us = a ? a->arrival_us : 0,
    };
    tc->cb.frame(tc->cb.opaque, &o);
    pthread_mutex_lock(&rg->lock);
    rg->frames_out++;
    pthread_mutex_unlock(&rg->lock);
}

static void rung_encode(tc_rung_t *rg, tc_pic_t *p)
{
    ring_put(rg->ring, &rg->ring_pos, p->f->pts, p->arrival_us, p->idr);
    int ret = avcodec_send_frame(rg->enc, p->f);
    if (ret < 0) {
        if (!rg->err_logged)
            PD_LOGW(TC_MOD, "%s: rung %s: encode error %d", rg->tc->stream,
                    rg->r.name, ret);
        rg->err_logged = true;
        return;
    }
    while (avcodec_receive_packet(rg->enc, rg->pkt) >= 0) {
        rung_emit(rg, rg->pkt);
        av_packet_unref(rg->pkt);
    }
}

static void *rung_main(void *arg)
{
    tc_rung_t *rg = arg;
    pkg_tc_t *tc = rg->tc;
    for (;;) {
        pthread_mutex_lock(&rg->lock);
        while (rg->qn == 0 && !atomic_load(&tc->stop) &&
               !atomic_load(&rg->shed)) {
            struct timespec ts;
            deadline_in(&ts, TC_WAIT_US);
            pthread_cond_timedwait(&rg->cond, &rg->lock, &ts);
        }
        if (atomic_load(&tc->stop) || atomic_load(&rg->shed)) {
            pthread_mutex_unlock(&rg->lock);
            break;
        }
        tc_pic_t p = rg->q[0];
        rg->qn--;
        memmove(&rg->q[0], &rg->q[1], sizeof(rg->q[0]) * (size_t)rg->qn);
        pthread_mutex_unlock(&rg->lock);

        int64_t c0 = thread_cpu_us();
        if (!rg->enc && !rg->enc_failed && rung_open(rg) != PD_OK) {
            rg->enc_failed = true;
            atomic_store(&rg->shed, true);
            tc_event(tc, rg->idx, PKG_TC_EV_SHED);
        }
        if (rg->enc)
            rung_encode(rg, &p);
        int64_t c1 = thread_cpu_us();
        av_frame_free(&p.f);
        pthread_mutex_lock(&rg->lock);
        rg->encode_us += c1 - c0;
        pthread_mutex_unlock(&rg->lock);
    }
    return NULL;
}

/* ---- decode thread: pictures to rungs --------------------------------- */

static void rung_window_reset(tc_rung_t *rg, int64_t now)
{
    memset(rg->win_sec, 0, sizeof(rg->win_sec));
    memset(rg->win_in, 0, sizeof(rg->win_in));
    memset(rg->win_drop, 0, sizeof(rg->win_drop));
    rg->full_since_us = 0;
    rg->first_us = now;
}

static void rung_window_add(tc_rung_t *rg, int64_t now, bool dropped)
{
    int64_t sec = now / 1000000;
    int b = (int)(sec % TC_SHED_WINDOW_S);
    if (rg->win_sec[b] != sec) {
        rg->win_sec[b] = sec;
        rg->win_in[b] = 0;
        rg->win_drop[b] = 0;
    }
    rg->win_in[b]++;
    if (dropped)
        rg->win_drop[b]++;
}

static bool rung_overloaded(const tc_rung_t *rg, int64_t now)
{
    if (rg->first_us == 0 || now - rg->first_us < TC_SHED_MIN_AGE_US)
        return false;
    if (rg->full_since_us && now - rg->full_since_us >= TC_SHED_FULL_US)
        return true;
    int64_t sec = now / 1000000, in = 0, drop = 0;
    for (int b = 0; b < TC_SHED_WINDOW_S; b++) {
        if (rg->win_sec[b] > sec - TC_SHED_WINDOW_S) {
            in += rg->win_in[b];
            drop += rg->win_drop[b];
        }
    }
    return in >= 10 && drop * 10 > in;
}

/* Queues a reference to pic for rung rg (decode thread). Borrows pic. */
static void rung_offer(pkg_tc_t *tc, tc_rung_t *rg, const AVFrame *pic,
                       bool idr, int64_t arrival_us, int64_t now)
{
    AVFrame *ref = av_frame_alloc();
    if (!ref || av_frame_ref(ref, pic) < 0) {
        av_frame_free(&ref);
        return;
    }
    ref->pict_type = idr ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    ref->key_frame = idr;
    AVFrame *victim = NULL;
    bool dropped = false;
    if (rg->first_us == 0)
        rg->first_us = now;
    pthread_mutex_lock(&rg->lock);
    rg->frames_in++;
    if (rg->qn == TC_RUNG_QUEUE) {
        if (!rg->full_since_us)
            rg->full_since_us = now;
        int v = -1;
        if (idr) {
            for (int i = 0; i < rg->qn && v < 0; i++)
                if (!rg->q[i].idr)
                    v = i;
            if (v < 0)
                v = 0;
        }
        if (v >= 0) {
            victim = rg->q[v].f;
            rg->qn--;
            memmove(&rg->q[v], &rg->q[v + 1],
                    sizeof(rg->q[0]) * (size_t)(rg->qn - v));
        } else {
            victim = ref;
            ref = NULL;
        }
        rg->dropped++;
        dropped = true;
    } else {
        rg->full_since_us = 0;
    }
    if (ref) {
        rg->q[rg->qn++] = (tc_pic_t){ref, idr, arrival_us};
        pthread_cond_signal(&rg->cond);
    }
    pthread_mutex_unlock(&rg->lock);
    av_frame_free(&victim);
    rung_window_add(rg, now, dropped);
    if (dropped && !rg->drop_evented) {
        rg->drop_evented = true;
        PD_LOGW(TC_MOD, "%s: rung %s cannot keep up: dropping pictures",
                tc->stream, rg->r.name);
        tc_event(tc, rg->idx, PKG_TC_EV_DROPPING);
    }
}

/* Sheds one rung by the configured order if some rung is overloaded. */
static void maybe_shed(pkg_tc_t *tc, int64_t now)
{
    if (tc->last_shed_us && now - tc->last_shed_us < TC_SHED_GAP_US)
        return;
    int active = 0;
    bool over = false;
    for (int i = 0; i < tc->nrungs; i++) {
        tc_rung_t *rg = &tc->rung[i];
        if (atomic_load(&rg->shed))
            continue;
        active++;
        if (rung_overloaded(rg, now))
            over = true;
    }
    if (!over || active < 2)
        return;
    tc_rung_t *pick = NULL;
    for (int k = 0; k < tc->nrungs; k++) {
        int i = tc->order[tc->shed_largest_first ? k : tc->nrungs - 1 - k];
        if (!atomic_load(&tc->rung[i].shed) && i + 1 != tc->keep_rung) {
            pick = &tc->rung[i];
            break;
        }
    }
    if (!pick)
        return;
    tc_pic_t q[TC_RUNG_QUEUE];
    int qn;
    pthread_mutex_lock(&pick->lock);
    atomic_store(&pick->shed, true);
    qn = pick->qn;
    memcpy(q, pick->q, sizeof(q[0]) * (size_t)qn);
    pick->qn = 0;
    pthread_cond_signal(&pick->cond);
    pthread_mutex_unlock(&pick->lock);
    for (int i = 0; i < qn; i++)
        av_frame_free(&q[i].f);
    tc->last_shed_us = now;
    for (int i = 0; i < tc->nrungs; i++)
        rung_window_reset(&tc->rung[i], now);
    PD_LOGW(TC_MOD, "%s: overloaded: shedding rung %s (%dx%d)", tc->stream,
            pick->r.name, pick->r.width, pick->r.height);
    tc_event(tc, pick->idx, PKG_TC_EV_SHED);
}

/* Frame grid of a rung with a lower frame rate than the source. */
static bool rung_grid_keep(tc_rung_t *rg, int64_t pts_ms, bool force)
{
    int64_t iv = (int64_t)1000000 * rg->r.fps_den / rg->r.fps_num;
    int64_t t = pts_ms * 1000;
    if (force || !rg->grid_init || t < rg->next_due_us - 2 * iv) {
        rg->grid_init = true;
        rg->next_due_us = t + iv;
        return true;
    }
    if (t < rg->next_due_us - iv / 4)
        return false;
    rg->next_due_us += iv;
    if (rg->next_due_us <= t)
        rg->next_due_us = t + iv;
    return true;
}

static bool decide_idr(pkg_tc_t *tc, int64_t pts, const tc_arr_t *src,
                       const AVFrame *fr)
{
    bool force;
    if (!tc->idr_first_done) {
        force = true;
    } else if (tc->follow) {
        force = src ? src->key : fr->key_frame != 0;
    } else if (tc->idr_reanchor || pts < tc->idr_anchor) {
        force = true;
    } else {
        force = pts >= tc->idr_next;
    }
    if (force && !tc->follow) {
        int64_t iv = tc->idr_interval_ms;
        if (!tc->idr_first_done || tc->idr_reanchor || pts < tc->idr_anchor)
            tc->idr_anchor = pts;
        tc->idr_next = tc->idr_anchor + ((pts - tc->idr_anchor) / iv + 1) * iv;
    }
    tc->idr_first_done = true;
    tc->idr_reanchor = false;
    return force;
}

/* Scales src into a new frame of w x h yuv420p. Returns NULL on error. */
static AVFrame *scale_to(struct SwsContext **sws, const AVFrame *src, int w,
                         int h)
{
    *sws = sws_getCachedContext(*sws, src->width, src->height, src->format, w,
                                h, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL,
                                NULL, NULL);
    if (!*sws)
        return NULL;
    AVFrame *d = av_frame_alloc();
    if (!d)
        return NULL;
    d->width = w;
    d->height = h;
    d->format = AV_PIX_FMT_YUV420P;
    if (av_frame_get_buffer(d, 0) < 0 ||
        sws_scale(*sws, (const uint8_t *const *)src->data, src->linesize, 0,
                  src->height, d->data, d->linesize) <= 0) {
        av_frame_free(&d);
        return NULL;
    }
    d->pts = src->pts;
    return d;
}

static void dec_picture(pkg_tc_t *tc, AVFrame *fr)
{
    int64_t pts = fr->best_effort_timestamp != AV_NOPTS_VALUE
                      ? fr->best_effort_timestamp
                      : fr->pts;
    if (pts == AV_NOPTS_VALUE || fr->width <= 0 || fr->height <= 0)
        return;
    pthread_mutex_lock(&tc->lock);
    tc->decoded++;
    pthread_mutex_unlock(&tc->lock);
    if (tc->have_last && pts <= tc->last_pts &&
        tc->last_pts - pts < TC_STEP_BACK_MS)
        return; /* the encoders need increasing pts */
    const tc_arr_t *src = ring_get(tc->ring, tc->ring_pos, pts);
    bool force = decide_idr(tc, pts, src, fr);
    int64_t arrival = src ? src->arrival_us : 0;
    tc->have_last = true;
    tc->last_pts = pts;

    AVFrame *made[PD_LADDER_MAX + 1];
    int nmade = 0;
    AVFrame *base;
    if (fr->format == AV_PIX_FMT_YUV420P) {
        base = av_frame_alloc();
        if (!base || av_frame_ref(base, fr) < 0) {
            av_frame_free(&base);
            return;
        }
    } else {
        base = scale_to(&tc->conv, fr, fr->width, fr->height);
        if (!base)
            return;
    }
    base->pts = pts;
    made[nmade++] = base;
    int64_t now = pd_mono_us();
    for (int k = 0; k < tc->nrungs; k++) {
        tc_rung_t *rg = &tc->rung[tc->order[k]];
        if (atomic_load(&rg->shed))
            continue;
        if (!rung_grid_keep(rg, pts, force))
            continue;
        AVFrame *from = NULL;
        for (int m = 0; m < nmade; m++) {
            AVFrame *c = made[m];
            if (c->width >= rg->r.width && c->height >= rg->r.height &&
                (!from || (int64_t)c->width * c->height <
                              (int64_t)from->width * from->height))
                from = c;
        }
        if (!from)
            from = base; /* smaller source (after a change): upscale */
        AVFrame *pic = from;
        if (from->width != rg->r.width || from->height != rg->r.height) {
            pic = scale_to(&rg->sws, from, rg->r.width, rg->r.height);
            if (!pic)
                continue;
            made[nmade++] = pic;
        }
        rung_offer(tc, rg, pic, force, arrival, now);
    }
    for (int m = 0; m < nmade; m++)
        av_frame_free(&made[m]);
    maybe_shed(tc, now);
}

static void dec_drain_frames(pkg_tc_t *tc)
{
    int ret;
    while ((ret = avcodec_receive_frame(tc->dec, tc->dfr)) >= 0) {
        dec_picture(tc, tc->dfr);
        av_frame_unref(tc->dfr);
        if (atomic_load(&tc->stop))
            break;
    }
}

static void dec_close(pkg_tc_t *tc, bool drain)
{
    if (tc->dec && drain) {
        if (avcodec_send_packet(tc->dec, NULL) >= 0)
            dec_drain_frames(tc);
    }
    avcodec_free_context(&tc->dec);
    av_buffer_unref(&tc->dec_cfg);
}

static int dec_open(pkg_tc_t *tc, AVBufferRef *cfg)
{
    const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (!c)
        return PD_EUNSUP;
    AVCodecContext *d = avcodec_alloc_context3(c);
    if (!d)
        return PD_ENOMEM;
    d->extradata = av_mallocz((size_t)cfg->size + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!d->extradata) {
        avcodec_free_context(&d);
        return PD_ENOMEM;
    }
    memcpy(d->extradata, cfg->data, cfg->size);
    d->extradata_size = (int)cfg->size;
    d->pkt_timebase = (AVRational){1, 1000};
    /* frame threads: each extra thread adds one frame of latency */
    d->thread_count = tc->dec_threads;
    d->thread_type = tc->dec_threads > 1 ? FF_THREAD_FRAME : FF_THREAD_SLICE;
    int ret = avcodec_open2(d, c, NULL);
    if (ret < 0) {
        avcodec_free_context(&d);
        PD_LOGW(TC_MOD, "%s: cannot open the H.264 decoder (%d)", tc->stream,
                ret);
        return PD_EINVAL;
    }
    tc->dec = d;
    tc->dec_cfg = av_buffer_ref(cfg);
    return PD_OK;
}

static void dec_item(pkg_tc_t *tc, tc_item_t *it)
{
    if (!it->cfg) {
        return;
    }
    if (!tc->dec_cfg || tc->dec_cfg->data != it->cfg->data) {
        bool first = tc->dec_cfg == NULL;
        dec_close(tc, true);
        if (dec_open(tc, it->cfg) != PD_OK)
            return;
        if (!first)
            PD_LOGI(TC_MOD, "%s: source configuration changed: decoder "
                            "re-opened",
                    tc->stream);
        tc->idr_reanchor = true;
    }
    AVPacket *p = it->pkt;
    ring_put(tc->ring, &tc->ring_pos, p->pts, it->arrival_us,
             (p->flags & AV_PKT_FLAG_KEY) != 0);
    int ret = avcodec_send_packet(tc->dec, p);
    if (ret == AVERROR(EAGAIN)) {
        dec_drain_frames(tc);
        ret = avcodec_send_packet(tc->dec, p);
    }
    if (ret < 0 && ret != AVERROR(EAGAIN) && !tc->dec_err_logged) {
        tc->dec_err_logged = true;
        PD_LOGW(TC_MOD, "%s: undecodable source frame at %lld ms (logged "
                        "once)",
                tc->stream, (long long)p->dts);
    }
    dec_drain_frames(tc);
}

static void *dec_main(void *arg)
{
    pkg_tc_t *tc = arg;
    for (;;) {
        pthread_mutex_lock(&tc->lock);
        while (!tc->srcq.head && !atomic_load(&tc->stop)) {
            struct timespec ts;
            deadline_in(&ts, TC_WAIT_US);
            pthread_cond_timedwait(&tc->src_cond, &tc->lock, &ts);
        }
        tc_item_t *it = atomic_load(&tc->stop) ? NULL : pq_pop(&tc->srcq);
        pthread_mutex_unlock(&tc->lock);
        if (!it)
            break;
        int64_t c0 = thread_cpu_us();
        dec_item(tc, it);
        int64_t c1 = thread_cpu_us();
        item_free(it);
        pthread_mutex_lock(&tc->lock);
        tc->decode_us += c1 - c0;
        pthread_mutex_unlock(&tc->lock);
    }
    dec_close(tc, false);
    return NULL;
}

/* ---- audio thread ----------------------------------------------------- */

static int aud_open_enc(pkg_tc_t *tc)
{
    tc_aud_t *a = &tc->a;
    const AVCodec *c = avcodec_find_encoder_by_name("aac");
    if (!c)
        return PD_EUNSUP;
    AVCodecContext *e = avcodec_alloc_context3(c);
    if (!e)
        return PD_ENOMEM;
    e->sample_fmt = AV_SAMPLE_FMT_FLTP;
    e->sample_rate = tc->arate;
    av_channel_layout_default(&e->ch_layout, tc->achannels);
    e->bit_rate = (int64_t)tc->abitrate_kbps * 1000;
    e->profile = FF_PROFILE_AAC_LOW;
    e->time_base = (AVRational){1, tc->arate};
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (avcodec_open2(e, c, NULL) < 0 || !e->extradata ||
        e->extradata_size <= 0 || e->frame_size <= 0) {
        PD_LOGW(TC_MOD, "%s: cannot open the AAC encoder (%d Hz, %d ch)",
                tc->stream, tc->arate, tc->achannels);
        avcodec_free_context(&e);
        return PD_EINVAL;
    }
    a->ef = av_frame_alloc();
    a->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, tc->achannels,
                                  e->frame_size * 4);
    if (!a->ef || !a->fifo) {
        avcodec_free_context(&e);
        return PD_ENOMEM;
    }
    a->ef->format = AV_SAMPLE_FMT_FLTP;
    a->ef->sample_rate = tc->arate;
    a->ef->nb_samples = e->frame_size;
    if (av_channel_layout_copy(&a->ef->ch_layout, &e->ch_layout) < 0 ||
        av_frame_get_buffer(a->ef, 0) < 0) {
        avcodec_free_context(&e);
        return PD_ENOMEM;
    }
    a->enc = e;
    tc->cb.config(tc->cb.opaque, PKG_TC_AUDIO, e->extradata,
                  (size_t)e->extradata_size);
    PD_LOGI(TC_MOD, "%s: audio: AAC-LC %d Hz %d ch %d kbps", tc->stream,
            tc->arate, tc->achannels, tc->abitrate_kbps);
    return PD_OK;
}

static int64_t aud_sample_ms(const tc_aud_t *a, int64_t s, int rate)
{
    if (s >= a->base_s)
        return a->base_ms + av_rescale(s - a->base_s, 1000, rate);
    return a->prev_ms + av_rescale(s - a->prev_s, 1000, rate);
}

static void aud_encode_ready(pkg_tc_t *tc)
{
    tc_aud_t *a = &tc->a;
    int fs = a->enc->frame_size;
    while (av_audio_fifo_size(a->fifo) >= fs && !atomic_load(&tc->stop)) {
        if (av_frame_make_writable(a->ef) < 0)
            return;
        if (av_audio_fifo_read(a->fifo, (void **)a->ef->data, fs) != fs)
            return;
        a->ef->pts = a->encoded;
        a->encoded += fs;
        if (avcodec_send_frame(a->enc, a->ef) < 0)
            continue;
        while (avcodec_receive_packet(a->enc, a->pkt) >= 0) {
            pkg_tc_out_t o = {
                .rung = PKG_TC_AUDIO,
                .data = a->pkt->data,
                .len = (size_t)a->pkt->size,
                .dts_ms = aud_sample_ms(a, a->pkt->pts, tc->arate),
                .cts_ms = 0,
                .key = true,
                .arrival_us = a->arrival_us,
            };
            if (o.len > 0) {
                tc->cb.frame(tc->cb.opaque, &o);
                pthread_mutex_lock(&tc->lock);
                tc->audio_out++;
                pthread_mutex_unlock(&tc->lock);
            }
            av_packet_unref(a->pkt);
        }
    }
}

static void aud_frame(pkg_tc_t *tc, AVFrame *f)
{
    tc_aud_t *a = &tc->a;
    if (f->nb_samples <= 0 || f->sample_rate <= 0 ||
        f->ch_layout.nb_channels <= 0)
        return;
    if (!a->enc && !a->enc_failed && aud_open_enc(tc) != PD_OK)
        a->enc_failed = true;
    if (!a->enc)
        return;
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = f->ch_layout.nb_channels;
        av_channel_layout_uninit(&f->ch_layout);
        av_channel_layout_default(&f->ch_layout, n);
    }
    /* timestamps: anchor at the first input, re-anchor on jumps */
    int64_t pts = f->best_effort_timestamp != AV_NOPTS_VALUE
                      ? f->best_effort_timestamp
                      : f->pts;
    if (!a->anchored) {
        if (pts == AV_NOPTS_VALUE)
            pts = 0;
        a->anchored = true;
        a->base_ms = a->prev_ms = pts;
        a->base_s = a->prev_s = a->pushed;
        a->in_base_ms = pts;
        a->in_samples = 0;
        a->in_rate = f->sample_rate;
    } else {
        if (f->sample_rate != a->in_rate) {
            a->in_base_ms += av_rescale(a->in_samples, 1000, a->in_rate);
            a->in_samples = 0;
            a->in_rate = f->sample_rate;
        }
        int64_t expect =
            a->in_base_ms + av_rescale(a->in_samples, 1000, a->in_rate);
        if (pts != AV_NOPTS_VALUE && llabs(pts - expect) > TC_REANCHOR_MS) {
            PD_LOGI(TC_MOD, "%s: audio timestamps jump %lld -> %lld ms: "
                            "re-anchored",
                    tc->stream, (long long)expect, (long long)pts);
            a->prev_ms = a->base_ms;
            a->prev_s = a->base_s;
            a->base_ms = pts;
            a->base_s = a->pushed;
            a->in_base_ms = pts;
            a->in_samples = 0;
        }
    }
    a->in_samples += f->nb_samples;

    if (a->swr && (a->swr_fmt != f->format || a->swr_rate != f->sample_rate ||
                   av_channel_layout_compare(&a->swr_layout,
                                             &f->ch_layout) != 0))
        swr_free(&a->swr);
    if (!a->swr) {
        AVChannelLayout out;
        av_channel_layout_default(&out, tc->achannels);
        int ret = swr_alloc_set_opts2(&a->swr, &out, AV_SAMPLE_FMT_FLTP,
                                      tc->arate, &f->ch_layout, f->format,
                                      f->sample_rate, 0, NULL);
        av_channel_layout_uninit(&out);
        if (ret < 0 || swr_init(a->swr) < 0) {
            swr_free(&a->swr);
            return;
        }
        a->swr_fmt = f->format;
        a->swr_rate = f->sample_rate;
        av_channel_layout_uninit(&a->swr_layout);
        av_channel_layout_copy(&a->swr_layout, &f->ch_layout);
    }
    int max_out = swr_get_out_samples(a->swr, f->nb_samples);
    if (max_out <= 0)
        return;
    av_frame_unref(a->cf);
    a->cf->format = AV_SAMPLE_FMT_FLTP;
    a->cf->sample_rate = tc->arate;
    a->cf->nb_samples = max_out;
    av_channel_layout_default(&a->cf->ch_layout, tc->achannels);
    if (av_frame_get_buffer(a->cf, 0) < 0)
        return;
    int n = swr_convert(a->swr, a->cf->data, max_out,
                        (const uint8_t **)f->extended_data, f->nb_samples);
    if (n <= 0)
        return;
    if (av_audio_fifo_write(a->fifo, (void **)a->cf->data, n) != n)
        return;
    a->pushed += n;
    aud_encode_ready(tc);
}

static void aud_item(pkg_tc_t *tc, tc_item_t *it)
{
    tc_aud_t *a = &tc->a;
    if (!it->cfg)
        return;
    if (!a->cfg || a->cfg->data != it->cfg->data) {
        avcodec_free_context(&a->dec);
        av_buffer_unref(&a->cfg);
        a->cfg = av_buffer_ref(it->cfg);
        a->dec_failed = false;
        const tc_acfg_t *c = (const tc_acfg_t *)it->cfg->data;
        const AVCodec *dc = avcodec_find_decoder(c->codec_id);
        AVCodecContext *d = dc ? avcodec_alloc_context3(dc) : NULL;
        if (d && c->len > 0) {
            d->extradata = av_mallocz(c->len + AV_INPUT_BUFFER_PADDING_SIZE);
            if (d->extradata) {
                memcpy(d->extradata, c->data, c->len);
                d->extradata_size = (int)c->len;
            }
        }
        if (d) {
            d->pkt_timebase = (AVRational){1, 1000};
            if (c->rate > 0)
                d->sample_rate = c->rate;
            if (c->channels > 0)
                av_channel_layout_default(&d->ch_layout, c->channels);
        }
        if (!d || avcodec_open2(d, dc, NULL) < 0) {
            avcodec_free_context(&d);
            PD_LOGW(TC_MOD, "%s: cannot open the audio decoder (codec %d)",
                    tc->stream, c->codec_id);
            a->dec_failed = true;
        }
        a->dec = d;
    }
    if (!a->dec)
        return;
    a->arrival_us = it->arrival_us;
    int ret = avcodec_send_packet(a->dec, it->pkt);
    if (ret < 0 && ret != AVERROR(EAGAIN) && !a->err_logged) {
        a->err_logged = true;
        PD_LOGW(TC_MOD, "%s: undecodable audio frame at %lld ms (logged "
                        "once)",
                tc->stream, (long long)it->pkt->dts);
    }
    while (avcodec_receive_frame(a->dec, a->df) >= 0) {
        aud_frame(tc, a->df);
        av_frame_unref(a->df);
    }
}

static void *aud_main(void *arg)
{
    pkg_tc_t *tc = arg;
    for (;;) {
        pthread_mutex_lock(&tc->lock);
        while (!tc->audq.head && !atomic_load(&tc->stop)) {
            struct timespec ts;
            deadline_in(&ts, TC_WAIT_US);
            pthread_cond_timedwait(&tc->aud_cond, &tc->lock, &ts);
        }
        tc_item_t *it = atomic_load(&tc->stop) ? NULL : pq_pop(&tc->audq);
        pthread_mutex_unlock(&tc->lock);
        if (!it)
            break;
        aud_item(tc, it);
        item_free(it);
    }
    return NULL;
}

static void aud_free(tc_aud_t *a)
{
    avcodec_free_context(&a->dec);
    avcodec_free_context(&a->enc);
    av_buffer_unref(&a->cfg);
    swr_free(&a->swr);
    av_channel_layout_uninit(&a->swr_layout);
    if (a->fifo)
        av_audio_fifo_free(a->fifo);
    a->fifo = NULL;
    av_frame_free(&a->df);
    av_frame_free(&a->cf);
    av_frame_free(&a->ef);
    av_packet_free(&a->pkt);
}

/* ---- public API ------------------------------------------------------- */

void pkg_tc_destroy(pkg_tc_t **tcp)
{
    if (!tcp || !*tcp)
        return;
    pkg_tc_t *tc = *tcp;
    *tcp = NULL;
    atomic_store(&tc->stop, true);
    pthread_mutex_lock(&tc->lock);
    pthread_cond_broadcast(&tc->src_cond);
    pthread_cond_broadcast(&tc->aud_cond);
    pthread_mutex_unlock(&tc->lock);
    for (int i = 0; i < tc->nrungs; i++) {
        tc_rung_t *rg = &tc->rung[i];
        pthread_mutex_lock(&rg->lock);
        pthread_cond_broadcast(&rg->cond);
        pthread_mutex_unlock(&rg->lock);
    }
    if (tc->dec_started)
        pthread_join(tc->dec_thr, NULL);
    if (tc->aud_started)
        pthread_join(tc->aud_thr, NULL);
    for (int i = 0; i < tc->nrungs; i++) {
        tc_rung_t *rg = &tc->rung[i];
        if (rg->started)
            pthread_join(rg->thr, NULL);
        for (int k = 0; k < rg->qn; k++)
            av_frame_free(&rg->q[k].f);
        rg->qn = 0;
        avcodec_free_context(&rg->enc);
        av_packet_free(&rg->pkt);
        sws_freeContext(rg->sws);
        free(rg->out);
        pthread_mutex_destroy(&rg->lock);
        pthread_cond_destroy(&rg->cond);
    }
    dec_close(tc, false);
    av_packet_free(&tc->dpkt);
    av_frame_free(&tc->dfr);
    sws_freeContext(tc->conv);
    aud_free(&tc->a);
    pq_clear(&tc->srcq);
    pq_clear(&tc->audq);
    av_buffer_unref(&tc->vcfg);
    av_buffer_unref(&tc->acfg);
    pthread_mutex_destroy(&tc->lock);
    pthread_cond_destroy(&tc->src_cond);
    pthread_cond_destroy(&tc->aud_cond);
    free(tc);
}

static bool rung_usable(const pkg_rung_t *r)
{
    return r->width > 0 && r->height > 0 && r->width <= 16384 &&
           r->height <= 16384 && r->width % 2 == 0 && r->height % 2 == 0 &&
           r->fps_num > 0 && r->fps_den > 0 && r->bitrate_kbps > 0 &&
           r->maxrate_kbps > 0 && r->bufsize_kbps > 0;
}

int pkg_tc_create(const pkg_tc_params_t *p, const pkg_tc_cb_t *cb,
                  pkg_tc_t **out)
{
    if (!p || !cb || !cb->config || !cb->frame || !out || p->nrungs < 0 ||
        p->nrungs > PD_LADDER_MAX || (p->nrungs > 0 && !p->rungs) ||
        p->audio_rate <= 0 || p->audio_rate > 192000 ||
        p->audio_channels < 1 || p->audio_channels > 2 ||
        p->audio_bitrate_kbps <= 0 ||
        (!p->idr_follow_source && p->idr_interval_ms <= 0))
        return PD_EINVAL;
    for (int i = 0; i < p->nrungs; i++)
        if (!rung_usable(&p->rungs[i]))
            return PD_EINVAL;
    if ((p->nrungs > 0 && !avcodec_find_encoder_by_name("libx264")) ||
        !avcodec_find_encoder_by_name("aac") ||
        !avcodec_find_decoder(AV_CODEC_ID_H264))
        return PD_EUNSUP;
    pkg_tc_t *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return PD_ENOMEM;
    /* the name only: never anything after a '?' */
    const char *name = p->stream ? p->stream : "?";
    size_t nl = strcspn(name, "?");
    if (nl >= sizeof(tc->stream))
        nl = sizeof(tc->stream) - 1;
    memcpy(tc->stream, name, nl);
    tc->stream[nl] = 0;
    tc->cb = *cb;
    tc->nrungs = p->nrungs;
    tc->follow = p->idr_follow_source;
    tc->idr_interval_ms = p->idr_interval_ms;
    snprintf(tc->preset, sizeof(tc->preset), "%s",
             p->preset && p->preset[0] ? p->preset : "veryfast");
    tc->enc_threads = p->encoder_threads > 0 ? p->encoder_threads : 0;
    /* auto: 2 frame threads (one frame of added latency) */
    tc->dec_threads = p->decode_threads > 0 ? p->decode_threads : 2;
    if (tc->dec_threads > 16)
        tc->dec_threads = 16;
    tc->shed_largest_first = p->shed_largest_first;
    tc->keep_rung = p->keep_rung;
    tc->arate = p->audio_rate;
    tc->achannels = p->audio_channels;
    tc->abitrate_kbps = p->audio_bitrate_kbps;
    tc->srcq.max_n = TC_SRC_MAX_PKTS;
    tc->srcq.max_bytes = TC_SRC_MAX_BYTES;
    tc->audq.max_n = TC_AUD_MAX_PKTS;
    tc->audq.max_bytes = TC_AUD_MAX_BYTES;
    atomic_init(&tc->stop, false);
    int rc = PD_ENOMEM;
    bool lock_ok = pthread_mutex_init(&tc->lock, NULL) == 0;
    bool c1 = cond_init_mono(&tc->src_cond) == PD_OK;
    bool c2 = cond_init_mono(&tc->aud_cond) == PD_OK;
    if (!lock_ok || !c1 || !c2) {
        /* partially initialised primitives: leak-free enough for an
         * allocation failure at start; nothing was started */
        free(tc);
        return PD_ENOMEM;
    }
    int nr = tc->nrungs;
    tc->nrungs = 0; /* counts the rungs initialised (destroy's bound) */
    for (int i = 0; i < nr; i++) {
        tc_rung_t *rg = &tc->rung[i];
        rg->tc = tc;
        rg->idx = i;
        rg->r = p->rungs[i];
        rg->r.name[sizeof(rg->r.name) - 1] = 0;
        rg->r.profile[sizeof(rg->r.profile) - 1] = 0;
        atomic_init(&rg->shed, false);
        if (pthread_mutex_init(&rg->lock, NULL) != 0)
            goto fail;
        if (cond_init_mono(&rg->cond) != PD_OK) {
            pthread_mutex_destroy(&rg->lock);
            goto fail;
        }
        tc->nrungs = i + 1;
        rg->pkt = av_packet_alloc();
        if (!rg->pkt)
            goto fail;
        tc->order[i] = i;
    }
    /* largest area first (stable) */
    for (int i = 1; i < nr; i++)
        for (int j = i; j > 0; j--) {
            const pkg_rung_t *x = &tc->rung[tc->order[j]].r,
                             *y = &tc->rung[tc->order[j - 1]].r;
            if ((int64_t)x->width * x->height <=
                (int64_t)y->width * y->height)
                break;
            int t = tc->order[j];
            tc->order[j] = tc->order[j - 1];
            tc->order[j - 1] = t;
        }
    tc->dpkt = av_packet_alloc();
    tc->dfr = av_frame_alloc();
    tc->a.df = av_frame_alloc();
    tc->a.cf = av_frame_alloc();
    tc->a.pkt = av_packet_alloc();
    if (!tc->dpkt || !tc->dfr || !tc->a.df || !tc->a.cf || !tc->a.pkt)
        goto fail;
    rc = PD_ERR;
    if (nr > 0) {
        if (pthread_create(&tc->dec_thr, NULL, dec_main, tc) != 0)
            goto fail;
        tc->dec_started = true;
    }
    for (int i = 0; i < nr; i++) {
        if (pthread_create(&tc->rung[i].thr, NULL, rung_main,
                           &tc->rung[i]) != 0)
            goto fail;
        tc->rung[i].started = true;
    }
    if (pthread_create(&tc->aud_thr, NULL, aud_main, tc) != 0)
        goto fail;
    tc->aud_started = true;
    PD_LOGI(TC_MOD, "%s: transcoder started: %d rung(s), preset %s, IDR %s",
            tc->stream, nr, tc->preset,
            tc->follow ? "at source keyframes" : "on an interval");
    *out = tc;
    return PD_OK;
fail:
    pkg_tc_destroy(&tc);
    return rc;
}

/* Queues pkt (consumed) with a reference to cfg. Caller holds tc->lock. */
static int pq_push_locked(tc_pq_t *q, AVPacket *pkt, AVBufferRef *cfg,
                          int64_t arrival_us)
{
    tc_item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        av_packet_free(&pkt);
        return PD_ENOMEM;
    }
    it->pkt = pkt;
    it->cfg = av_buffer_ref(cfg);
    it->arrival_us = arrival_us;
    if (!it->cfg) {
        item_free(it);
        return PD_ENOMEM;
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    q->bytes += (size_t)pkt->size;
    return PD_OK;
}

static AVPacket *make_packet(const pkg_frame_t *f, bool video)
{
    AVPacket *pkt = av_packet_alloc();
    if (!pkt || av_new_packet(pkt, (int)f->len) < 0) {
        av_packet_free(&pkt);
        return NULL;
    }
    memcpy(pkt->data, f->data, f->len);
    pkt->dts = f->dts_ms;
    pkt->pts = f->dts_ms + (video ? f->cts_ms : 0);
    pkt->time_base = (AVRational){1, 1000};
    if (f->key || !video)
        pkt->flags |= AV_PKT_FLAG_KEY;
    return pkt;
}

int pkg_tc_video_config(pkg_tc_t *tc, const uint8_t *avcc, size_t len)
{
    if (!tc)
        return PD_EINVAL;
    bool ok = avcc_valid(avcc, len);
    AVBufferRef *b = NULL;
    if (ok) {
        b = av_buffer_alloc(len);
        if (!b)
            return PD_ENOMEM;
        memcpy(b->data, avcc, len);
    }
    pthread_mutex_lock(&tc->lock);
    bool same = ok && tc->vcfg && (size_t)tc->vcfg->size == len &&
                memcmp(tc->vcfg->data, avcc, len) == 0;
    if (!same) {
        av_buffer_unref(&tc->vcfg);
        tc->vcfg = b;
        b = NULL;
    }
    pthread_mutex_unlock(&tc->lock);
    av_buffer_unref(&b);
    if (!ok) {
        PD_LOGW(TC_MOD, "%s: unusable source avcC (%zu bytes): video "
                        "frames ignored until the next configuration",
                tc->stream, len);
        return PD_EINVAL;
    }
    return PD_OK;
}

int pkg_tc_video(pkg_tc_t *tc, const pkg_frame_t *f)
{
    if (!tc || !f || !f->data || f->len == 0 || f->len > TC_MAX_FRAME)
        return PD_EINVAL;
    if (tc->nrungs == 0)
        return PD_OK;
    pthread_mutex_lock(&tc->lock);
    tc_pq_t *q = &tc->srcq;
    if (!tc->vcfg) {
        pthread_mutex_unlock(&tc->lock);
        return PD_EINVAL;
    }
    if (q->skip_to_key && !f->key) {
        tc->decode_dropped++;
        pthread_mutex_unlock(&tc->lock);
        return PD_OK;
    }
    if (q->n >= q->max_n || q->bytes + f->len > q->max_bytes) {
        q->skip_to_key = true;
        tc->decode_dropped++;
        bool log = !q->logged;
        q->logged = true;
        pthread_mutex_unlock(&tc->lock);
        if (log)
            PD_LOGW(TC_MOD, "%s: decoder cannot keep up: dropping source "
                            "frames up to the next keyframe (logged once)",
                    tc->stream);
        return PD_OK;
    }
    q->skip_to_key = false;
    pthread_mutex_unlock(&tc->lock);
    /* copy outside the lock; only this thread pushes, so the room stays */
    AVPacket *pkt = make_packet(f, true);
    if (!pkt)
        return PD_ENOMEM;
    pthread_mutex_lock(&tc->lock);
    int rc = pq_push_locked(q, pkt, tc->vcfg, f->arrival_us);
    pthread_cond_signal(&tc->src_cond);
    pthread_mutex_unlock(&tc->lock);
    return rc;
}

int pkg_tc_audio_config(pkg_tc_t *tc, int codec_id, const uint8_t *extradata,
                        size_t len, int rate, int channels)
{
    if (!tc || (len > 0 && !extradata) || len > TC_MAX_EXTRADATA ||
        rate < 0 || rate > 384000 || channels < 0 || channels > 8)
        return PD_EINVAL;
    if (!avcodec_find_decoder((enum AVCodecID)codec_id))
        return PD_EUNSUP;
    AVBufferRef *b = av_buffer_allocz(sizeof(tc_acfg_t) + len);
    if (!b)
        return PD_ENOMEM;
    tc_acfg_t *c = (tc_acfg_t *)b->data;
    c->codec_id = codec_id;
    c->rate = rate;
    c->channels = channels;
    c->len = len;
    if (len)
        memcpy(c->data, extradata, len);
    pthread_mutex_lock(&tc->lock);
    bool same = tc->acfg && tc->acfg->size == b->size &&
                memcmp(tc->acfg->data, b->data, (size_t)b->size) == 0;
    if (!same) {
        av_buffer_unref(&tc->acfg);
        tc->acfg = b;
        b = NULL;
    }
    pthread_mutex_unlock(&tc->lock);
    av_buffer_unref(&b);
    return PD_OK;
}

int pkg_tc_audio(pkg_tc_t *tc, const pkg_frame_t *f)
{
    if (!tc || !f || !f->data || f->len == 0 || f->len > TC_MAX_FRAME)
        return PD_EINVAL;
    pthread_mutex_lock(&tc->lock);
    tc_pq_t *q = &tc->audq;
    if (!tc->acfg) {
        pthread_mutex_unlock(&tc->lock);
        return PD_EINVAL;
    }
    if (q->n >= q->max_n || q->bytes + f->len > q->max_bytes) {
        bool log = !q->logged;
        q->logged = true;
        pthread_mutex_unlock(&tc->lock);
        if (log)
            PD_LOGW(TC_MOD, "%s: audio re-encoder cannot keep up: dropping "
                            "audio (logged once)",
                    tc->stream);
        return PD_OK;
    }
    pthread_mutex_unlock(&tc->lock);
    AVPacket *pkt = make_packet(f, false);
    if (!pkt)
        return PD_ENOMEM;
    pthread_mutex_lock(&tc->lock);
    int rc = pq_push_locked(q, pkt, tc->acfg, f->arrival_us);
    if (rc == PD_OK)
        tc->audio_in++;
    pthread_cond_signal(&tc->aud_cond);
    pthread_mutex_unlock(&tc->lock);
    return rc;
}

void pkg_tc_get_stats(pkg_tc_t *tc, pkg_tc_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    if (!tc)
        return;
    pthread_mutex_lock(&tc->lock);
    st->decoded = tc->decoded;
    st->decode_dropped = tc->decode_dropped;
    st->decode_us = tc->decode_us;
    st->audio_in = tc->audio_in;
    st->audio_out = tc->audio_out;
    pthread_mutex_unlock(&tc->lock);
    st->nrungs = tc->nrungs;
    for (int i = 0; i < tc->nrungs; i++) {
        tc_rung_t *rg = &tc->rung[i];
        pthread_mutex_lock(&rg->lock);
        st->rung[i] = (pkg_tc_rung_stats_t){
            .frames_in = rg->frames_in,
            .frames_out = rg->frames_out,
            .dropped = rg->dropped,
            .encode_us = rg->encode_us,
            .shed = atomic_load(&rg->shed),
        };
        pthread_mutex_unlock(&rg->lock);
    }
}
