/*
 * tests/unit/test_transcode.c - the per-stream transcoder (packager/
 * transcode.c): rung sizes, IDRs at the source keyframes or on an
 * interval (same pts on every rung), pts passed through, frame-rate
 * reduction, a mid-stream source change, MP3 and AAC audio re-encoded to
 * AAC 48 kHz, hostile input, overload (drops, shedding, prompt destroy).
 *
 * Sources are made here with libx264 / libmp3lame / aac through
 * libavcodec; outputs are checked by decoding them with libavcodec.
 * Set TC_BENCH=1 to print encode CPU per frame at 720p/480p/360p.
 */
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "packager/transcode.h"

#include <check.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUD PD_LADDER_MAX /* collector slot of the audio output */
#define NSLOT (PD_LADDER_MAX + 1)

/* ---- helpers: Annex B -> AVCC / avcC (independent of the module) ------ */

static size_t sc_next(const uint8_t *b, size_t n, size_t i)
{
    for (; i + 3 <= n; i++)
        if (!b[i] && !b[i + 1] && b[i + 2] == 1)
            return i;
    return n;
}

typedef struct {
    const uint8_t *p[64];
    size_t l[64];
    int n;
} nals_t;

static void split_annexb(const uint8_t *b, size_t n, nals_t *o)
{
    o->n = 0;
    size_t i = sc_next(b, n, 0);
    while (i < n && o->n < 64) {
        size_t s = i + 3, e = sc_next(b, n, s), t = e;
        while (t > s && !b[t - 1])
            t--;
        if (t > s) {
            o->p[o->n] = b + s;
            o->l[o->n++] = t - s;
        }
        i = e;
    }
}

static uint8_t *to_avcc(const uint8_t *b, size_t n, size_t *olen)
{
    nals_t ns;
    split_annexb(b, n, &ns);
    uint8_t *o = malloc(n + 4 * 64 + 1);
    size_t k = 0;
    for (int i = 0; i < ns.n; i++) {
        uint32_t l = (uint32_t)ns.l[i];
        o[k++] = l >> 24;
        o[k++] = l >> 16;
        o[k++] = l >> 8;
        o[k++] = l;
        memcpy(o + k, ns.p[i], l);
        k += l;
    }
    *olen = k;
    return o;
}

static uint8_t *to_avcc_record(const uint8_t *b, size_t n, size_t *olen)
{
    nals_t ns;
    split_annexb(b, n, &ns);
    const uint8_t *sps = NULL, *pps = NULL;
    size_t sl = 0, pl = 0;
    for (int i = 0; i < ns.n; i++) {
        if ((ns.p[i][0] & 0x1f) == 7 && !sps) {
            sps = ns.p[i];
            sl = ns.l[i];
        } else if ((ns.p[i][0] & 0x1f) == 8 && !pps) {
            pps = ns.p[i];
            pl = ns.l[i];
        }
    }
    ck_assert(sps && pps && sl >= 4);
    uint8_t *r = malloc(11 + sl + pl);
    size_t k = 0;
    r[k++] = 1;
    r[k++] = sps[1];
    r[k++] = sps[2];
    r[k++] = sps[3];
    r[k++] = 0xff;
    r[k++] = 0xe1;
    r[k++] = sl >> 8;
    r[k++] = sl & 0xff;
    memcpy(r + k, sps, sl);
    k += sl;
    r[k++] = 1;
    r[k++] = pl >> 8;
    r[k++] = pl & 0xff;
    memcpy(r + k, pps, pl);
    k += pl;
    *olen = k;
    return r;
}

/* ---- a test source ---------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    int64_t dts, pts; /* ms */
    bool key;
} sfr_t;

typedef struct {
    uint8_t *avcc;
    size_t avcc_len;
    sfr_t *f;
    int n;
} src_t;

static void draw(AVFrame *f, int i)
{
    for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++)
            f->data[0][y * f->linesize[0] + x] =
                (uint8_t)((x + 3 * i) ^ (y + i));
    for (int y = 0; y < f->height / 2; y++)
        for (int x = 0; x < f->width / 2; x++) {
            f->data[1][y * f->linesize[1] + x] = (uint8_t)(128 + x + i);
            f->data[2][y * f->linesize[2] + x] = (uint8_t)(64 + y - i);
        }
    /* a moving box */
    int bx = (i * 4) % (f->width - 32), by = (i * 2) % (f->height - 32);
    for (int y = by; y < by + 32; y++)
        memset(f->data[0] + y * f->linesize[0] + bx, 235, 32);
}

/* Encodes n frames of w x h at fps (ms timestamps from t0_ms), keyframe
 * every gop frames, with bframes B-frames. */
static void make_src(src_t *s, int w, int h, int fps, int gop, int bframes,
                     int n, int64_t t0_ms)
{
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    ck_assert_ptr_nonnull(c);
    AVCodecContext *e = avcodec_alloc_context3(c);
    e->width = w;
    e->height = h;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->time_base = (AVRational){1, 1000};
    e->framerate = (AVRational){fps, 1};
    e->gop_size = gop;
    e->keyint_min = gop;
    e->max_b_frames = bframes;
    e->bit_rate = 400000;
    e->thread_count = 1;
    e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary *o = NULL;
    av_dict_set(&o, "preset", "ultrafast", 0);
    av_dict_set(&o, "x264-params", "scenecut=0", 0);
    ck_assert_int_ge(avcodec_open2(e, c, &o), 0);
    av_dict_free(&o);
    s->avcc = to_avcc_record(e->extradata, (size_t)e->extradata_size,
                             &s->avcc_len);
    s->f = calloc((size_t)n, sizeof(sfr_t));
    s->n = 0;
    AVFrame *f = av_frame_alloc();
    f->width = w;
    f->height = h;
    f->format = AV_PIX_FMT_YUV420P;
    ck_assert_int_ge(av_frame_get_buffer(f, 0), 0);
    AVPacket *p = av_packet_alloc();
    for (int i = 0; i <= n; i++) {
        if (i < n) {
            ck_assert_int_ge(av_frame_make_writable(f), 0);
            draw(f, i);
            f->pts = t0_ms + av_rescale(i, 1000, fps);
            ck_assert_int_ge(avcodec_send_frame(e, f), 0);
        } else {
            avcodec_send_frame(e, NULL);
        }
        while (avcodec_receive_packet(e, p) >= 0) {
            ck_assert_int_lt(s->n, n);
            sfr_t *o2 = &s->f[s->n++];
            o2->data = to_avcc(p->data, (size_t)p->size, &o2->len);
            o2->dts = p->dts;
            o2->pts = p->pts;
            o2->key = p->flags & AV_PKT_FLAG_KEY;
            av_packet_unref(p);
        }
    }
    ck_assert_int_eq(s->n, n);
    av_packet_free(&p);
    av_frame_free(&f);
    avcodec_free_context(&e);
}

static void free_src(src_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->f[i].data);
    free(s->f);
    free(s->avcc);
    memset(s, 0, sizeof(*s));
}

/* ---- a collector (the callbacks) -------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len;
    int64_t dts;
    int32_t cts;
    bool key;
    int64_t arrival_us;
} ofr_t;

typedef struct {
    pthread_mutex_t m;
    uint8_t *cfg[NSLOT];
    size_t cfg_len[NSLOT];
    int ncfg[NSLOT];
    bool frame_before_cfg;
    ofr_t *fr[NSLOT];
    int n[NSLOT], cap[NSLOT];
    int ev[NSLOT][3];
    int sheds;
} col_t;

static int slot(int rung)
{
    ck_assert(rung == PKG_TC_AUDIO || (rung >= 0 && rung < PD_LADDER_MAX));
    return rung == PKG_TC_AUDIO ? AUD : rung;
}

static void cb_config(void *op, int rung, const uint8_t *x, size_t len)
{
    col_t *c = op;
    pthread_mutex_lock(&c->m);
    int s = slot(rung);
    free(c->cfg[s]);
    c->cfg[s] = malloc(len);
    memcpy(c->cfg[s], x, len);
    c->cfg_len[s] = len;
    c->ncfg[s]++;
    pthread_mutex_unlock(&c->m);
}

static void cb_frame(void *op, const pkg_tc_out_t *f)
{
    col_t *c = op;
    pthread_mutex_lock(&c->m);
    int s = slot(f->rung);
    if (!c->ncfg[s])
        c->frame_before_cfg = true;
    if (c->n[s] == c->cap[s]) {
        c->cap[s] = c->cap[s] ? 2 * c->cap[s] : 256;
        c->fr[s] = realloc(c->fr[s], sizeof(ofr_t) * (size_t)c->cap[s]);
    }
    ofr_t *o = &c->fr[s][c->n[s]++];
    o->data = malloc(f->len);
    memcpy(o->data, f->data, f->len);
    o->len = f->len;
    o->dts = f->dts_ms;
    o->cts = f->cts_ms;
    o->key = f->key;
    o->arrival_us = f->arrival_us;
    pthread_mutex_unlock(&c->m);
}

static void cb_event(void *op, int rung, pkg_tc_event_t ev)
{
    col_t *c = op;
    pthread_mutex_lock(&c->m);
    c->ev[slot(rung)][ev]++;
    if (ev == PKG_TC_EV_SHED)
        c->sheds++;
    pthread_mutex_unlock(&c->m);
}

static col_t *col_new(pkg_tc_cb_t *cb)
{
    col_t *c = calloc(1, sizeof(*c));
    pthread_mutex_init(&c->m, NULL);
    *cb = (pkg_tc_cb_t){c, cb_config, cb_frame, cb_event};
    return c;
}

static void col_free(col_t *c)
{
    for (int s = 0; s < NSLOT; s++) {
        for (int i = 0; i < c->n[s]; i++)
            free(c->fr[s][i].data);
        free(c->fr[s]);
        free(c->cfg[s]);
    }
    pthread_mutex_destroy(&c->m);
    free(c);
}

/* ---- params and feeding ----------------------------------------------- */

static pkg_rung_t mkrung(const char *name, int w, int h, int fps)
{
    pkg_rung_t r = {0};
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.width = w;
    r.height = h;
    r.fps_num = fps;
    r.fps_den = 1;
    r.bitrate_kbps = 300;
    r.maxrate_kbps = 400;
    r.bufsize_kbps = 600;
    snprintf(r.profile, sizeof(r.profile), "main");
    r.level = 0;
    return r;
}

static pkg_tc_params_t mkparams(const pkg_rung_t *r, int n)
{
    pkg_tc_params_t p = {
        .stream = "live/test?key=secret",
        .rungs = r,
        .nrungs = n,
        .idr_follow_source = true,
        .idr_interval_ms = 2000,
        .preset = "ultrafast",
        .encoder_threads = 1,
        .decode_threads = 1,
        .shed_largest_first = true,
        .audio_rate = 48000,
        .audio_channels = 2,
        .audio_bitrate_kbps = 96,
    };
    return p;
}

/* Waits (generous timeout) until the pipeline has little in flight:
 * decoded >= want_decoded and every live rung emitted or dropped all but
 * `slack` of what it was offered. Returns false on timeout. */
static bool wait_settled(pkg_tc_t *tc, int64_t want_decoded, int slack,
                         int timeout_ms)
{
    int64_t end = pd_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        pkg_tc_stats_t st;
        pkg_tc_get_stats(tc, &st);
        bool ok = st.decoded >= want_decoded;
        for (int i = 0; i < st.nrungs && ok; i++)
            if (!st.rung[i].shed &&
                st.rung[i].frames_out + st.rung[i].dropped <
                    st.rung[i].frames_in - slack)
                ok = false;
        if (ok)
            return true;
        if (pd_mono_us() > end)
            return false;
        usleep(2000);
    }
}

static void push_video(pkg_tc_t *tc, const sfr_t *f)
{
    pkg_frame_t pf = {
        .media = PKG_MEDIA_VIDEO,
        .dts_ms = f->dts,
        .cts_ms = (int32_t)(f->pts - f->dts),
        .key = f->key,
        .data = f->data,
        .len = f->len,
        .arrival_us = pd_wall_us(),
    };
    ck_assert_int_eq(pkg_tc_video(tc, &pf), PD_OK);
}

/* The source picture an output frame came from (by pts); -1 if none. */
static int src_index(const src_t *s, int64_t pts)
{
    for (int i = 0; i < s->n; i++)
        if (s->f[i].pts == pts)
            return i;
    return -1;
}

/* Feeds s paced (never more than a few pictures in flight). delay: the
 * decoder's reorder delay in frames. */
static void feed_paced(pkg_tc_t *tc, const src_t *s, int64_t decoded_before,
                       int delay)
{
    for (int i = 0; i < s->n; i++) {
        ck_assert(wait_settled(tc, decoded_before + i - delay - 1, 2, 20000));
        push_video(tc, &s->f[i]);
    }
}

/* Decodes every frame of slot s; checks each picture is w x h; returns
 * the number of pictures. */
static int decode_out(col_t *c, int s, int w, int h)
{
    const AVCodec *dc = avcodec_find_decoder(AV_CODEC_ID_H264);
    AVCodecContext *d = avcodec_alloc_context3(dc);
    ck_assert_ptr_nonnull(c->cfg[s]);
    d->extradata = av_mallocz(c->cfg_len[s] + AV_INPUT_BUFFER_PADDING_SIZE);
    memcpy(d->extradata, c->cfg[s], c->cfg_len[s]);
    d->extradata_size = (int)c->cfg_len[s];
    d->thread_count = 1;
    ck_assert_int_ge(avcodec_open2(d, dc, NULL), 0);
    AVPacket *p = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int got = 0;
    for (int i = 0; i <= c->n[s]; i++) {
        if (i < c->n[s]) {
            ck_assert_int_ge(av_new_packet(p, (int)c->fr[s][i].len), 0);
            memcpy(p->data, c->fr[s][i].data, c->fr[s][i].len);
            ck_assert_int_ge(avcodec_send_packet(d, p), 0);
            av_packet_unref(p);
        } else {
            avcodec_send_packet(d, NULL);
        }
        while (avcodec_receive_frame(d, f) >= 0) {
            ck_assert_int_eq(f->width, w);
            ck_assert_int_eq(f->height, h);
            got++;
            av_frame_unref(f);
        }
    }
    av_frame_free(&f);
    av_packet_free(&p);
    avcodec_free_context(&d);
    return got;
}

static int64_t opts(const ofr_t *o) { return o->dts + o->cts; }

/* ---- video tests ------------------------------------------------------ */

START_TEST(follow_source_keyframes)
{
    src_t s;
    make_src(&s, 320, 180, 30, 30, 0, 90, 1000);
    pkg_rung_t r[3] = {mkrung("a", 320, 180, 30), mkrung("b", 256, 144, 30),
                       mkrung("c", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 3);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    feed_paced(tc, &s, 0, 0);
    ck_assert(wait_settled(tc, s.n, 0, 20000));
    pkg_tc_stats_t st;
    pkg_tc_get_stats(tc, &st);
    pkg_tc_destroy(&tc);
    ck_assert_ptr_null(tc);
    pkg_tc_destroy(&tc); /* idempotent */
    ck_assert(!c->frame_before_cfg);
    ck_assert_int_eq(st.decoded, s.n);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(c->ncfg[k], 1);
        /* "main" caps the profile (ultrafast fits in Baseline) */
        ck_assert(c->cfg[k][1] == 66 || c->cfg[k][1] == 77);
        /* every picture out, unless a busy machine made the rung drop
         * one (counted; never a forced IDR): then the frames that came
         * out are checked by their pts */
        ck_assert_int_eq(c->n[k], st.rung[k].frames_out);
        ck_assert_int_eq(c->n[k] + st.rung[k].dropped, s.n);
        ck_assert_int_le(st.rung[k].dropped, s.n / 10);
        int prev = -1;
        for (int j = 0; j < c->n[k]; j++) {
            int i = src_index(&s, opts(&c->fr[k][j]));
            ck_assert_int_gt(i, prev); /* the source's order, no repeats */
            prev = i;
            ck_assert_int_eq(c->fr[k][j].cts, 0);
            ck_assert_int_eq(c->fr[k][j].key, s.f[i].key);
            ck_assert_int_gt(c->fr[k][j].arrival_us, 0);
        }
        for (int i = 0; i < s.n; i++) /* every source keyframe is there */
            if (s.f[i].key) {
                bool seen = false;
                for (int j = 0; j < c->n[k] && !seen; j++)
                    seen = opts(&c->fr[k][j]) == s.f[i].pts;
                ck_assert_msg(seen, "rung %d lacks the keyframe at %lld", k,
                              (long long)s.f[i].pts);
            }
        ck_assert_int_eq(decode_out(c, k, r[k].width, r[k].height),
                         c->n[k]);
    }
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(follow_source_with_bframes)
{
    src_t s;
    make_src(&s, 320, 180, 30, 30, 2, 90, 0);
    pkg_rung_t r[2] = {mkrung("b", 256, 144, 30), mkrung("c", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 2);
    p.decode_threads = 0; /* auto (frame threads) */
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    feed_paced(tc, &s, 0, 4);
    ck_assert(wait_settled(tc, s.n - 4, 0, 20000));
    pkg_tc_destroy(&tc);
    /* source key pts, in presentation order */
    int64_t keys[16];
    int nk = 0;
    for (int i = 0; i < s.n; i++)
        if (s.f[i].key)
            keys[nk++] = s.f[i].pts;
    ck_assert_int_eq(nk, 3);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_ge(c->n[k], s.n - 4);
        int ki = 0;
        for (int i = 0; i < c->n[k]; i++) {
            const ofr_t *o = &c->fr[k][i];
            ck_assert_int_eq(o->cts, 0);
            if (i > 0)
                ck_assert_int_gt(opts(o), opts(&c->fr[k][i - 1]));
            ck_assert_int_eq(opts(o) % 1, 0);
            if (o->key) {
                ck_assert_int_lt(ki, nk);
                ck_assert_int_eq(opts(o), keys[ki++]);
            }
        }
        ck_assert_int_eq(ki, nk);
        ck_assert_int_eq(decode_out(c, k, r[k].width, r[k].height), c->n[k]);
    }
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(interval_idrs)
{
    src_t s;
    make_src(&s, 320, 180, 30, 45, 0, 120, 500);
    pkg_rung_t r[2] = {mkrung("b", 256, 144, 30), mkrung("c", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 2);
    p.idr_follow_source = false;
    p.idr_interval_ms = 1000;
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    feed_paced(tc, &s, 0, 0);
    ck_assert(wait_settled(tc, s.n, 0, 20000));
    pkg_tc_destroy(&tc);
    /* expected: the first picture, then the first at or after 1500, 2500,
     * 3500 ms (anchor 500) */
    int nk = 0;
    for (int k = 0; k < 2; k++) {
        /* expected IDRs over the source's pictures (decided before any
         * rung could drop one; forced IDRs are never dropped) */
        bool want[1024] = {false};
        ck_assert_int_le(s.n, 1024);
        nk = 0;
        int64_t next = 500;
        for (int i = 0; i < s.n; i++) {
            want[i] = s.f[i].pts >= next;
            if (want[i])
                next += 1000;
        }
        ck_assert_int_ge(c->n[k], s.n - s.n / 10);
        for (int j = 0; j < c->n[k]; j++) {
            int i = src_index(&s, opts(&c->fr[k][j]));
            ck_assert_int_ge(i, 0);
            ck_assert_int_eq(c->fr[k][j].key, want[i]);
            nk += want[i];
        }
    }
    ck_assert_int_eq(nk, 4);
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(half_frame_rate_rung)
{
    src_t s;
    make_src(&s, 320, 180, 60, 60, 0, 150, 0);
    pkg_rung_t r[2] = {mkrung("hi", 256, 144, 60), mkrung("lo", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 2);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    feed_paced(tc, &s, 0, 0);
    ck_assert(wait_settled(tc, s.n, 0, 20000));
    pkg_tc_destroy(&tc);
    ck_assert_int_eq(c->n[0], s.n);
    ck_assert_int_ge(c->n[1], s.n / 2 - 1);
    ck_assert_int_le(c->n[1], s.n / 2 + 3);
    int keys_hi = 0, keys_lo = 0;
    for (int i = 0; i < c->n[0]; i++)
        keys_hi += c->fr[0][i].key;
    for (int i = 0; i < c->n[1]; i++) {
        const ofr_t *o = &c->fr[1][i];
        if (i > 0 && !o->key)
            ck_assert_int_ge(opts(o) - opts(&c->fr[1][i - 1]), 30);
        if (o->key) {
            keys_lo++;
            /* the same pts as a source keyframe */
            bool found = false;
            for (int j = 0; j < s.n; j++)
                found |= s.f[j].key && s.f[j].pts == opts(o);
            ck_assert(found);
        }
    }
    ck_assert_int_eq(keys_hi, 3);
    ck_assert_int_eq(keys_lo, 3);
    ck_assert_int_eq(decode_out(c, 1, 160, 90), c->n[1]);
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(source_change_mid_stream)
{
    src_t a, b;
    make_src(&a, 320, 180, 30, 30, 0, 45, 0);
    make_src(&b, 640, 360, 30, 30, 0, 45, 1500);
    pkg_rung_t r[2] = {mkrung("b", 256, 144, 30), mkrung("c", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 2);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, a.avcc, a.avcc_len), PD_OK);
    feed_paced(tc, &a, 0, 0);
    ck_assert_int_eq(pkg_tc_video_config(tc, b.avcc, b.avcc_len), PD_OK);
    feed_paced(tc, &b, a.n, 0);
    ck_assert(wait_settled(tc, a.n + b.n, 0, 20000));
    pkg_tc_destroy(&tc);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(c->n[k], a.n + b.n);
        ck_assert_int_eq(opts(&c->fr[k][a.n]), 1500);
        ck_assert(c->fr[k][a.n].key);
        ck_assert_int_eq(decode_out(c, k, r[k].width, r[k].height),
                         a.n + b.n);
    }
    col_free(c);
    free_src(&a);
    free_src(&b);
}
END_TEST

/* ---- audio ------------------------------------------------------------ */

typedef struct {
    uint8_t **data;
    size_t *len;
    int64_t *dts;
    int n;
    int frame_size, rate;
    uint8_t *extra;
    size_t extra_len;
} asrc_t;

static void make_audio(asrc_t *s, const char *enc, int rate, double secs)
{
    const AVCodec *c = avcodec_find_encoder_by_name(enc);
    if (!c && !strcmp(enc, "libmp3lame"))
        c = avcodec_find_encoder_by_name("libshine");
    ck_assert_ptr_nonnull(c);
    AVCodecContext *e = avcodec_alloc_context3(c);
    e->sample_rate = rate;
    e->sample_fmt = c->sample_fmts ? c->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    av_channel_layout_default(&e->ch_layout, 2);
    e->bit_rate = 128000;
    e->time_base = (AVRational){1, rate};
    if (!strcmp(enc, "aac"))
        e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ck_assert_int_ge(avcodec_open2(e, c, NULL), 0);
    memset(s, 0, sizeof(*s));
    s->frame_size = e->frame_size;
    s->rate = rate;
    if (e->extradata_size > 0) {
        s->extra = malloc((size_t)e->extradata_size);
        memcpy(s->extra, e->extradata, (size_t)e->extradata_size);
        s->extra_len = (size_t)e->extradata_size;
    }
    int total = (int)(secs * rate), cap = total / e->frame_size + 16;
    s->data = calloc((size_t)cap, sizeof(*s->data));
    s->len = calloc((size_t)cap, sizeof(*s->len));
    s->dts = calloc((size_t)cap, sizeof(*s->dts));
    AVFrame *f = av_frame_alloc();
    f->format = e->sample_fmt;
    f->sample_rate = rate;
    f->nb_samples = e->frame_size;
    av_channel_layout_copy(&f->ch_layout, &e->ch_layout);
    ck_assert_int_ge(av_frame_get_buffer(f, 0), 0);
    AVPacket *p = av_packet_alloc();
    int64_t t = 0;
    for (bool done = false; !done;) {
        if (t + e->frame_size <= total) {
            av_frame_make_writable(f);
            for (int ch = 0; ch < 2; ch++)
                for (int i = 0; i < e->frame_size; i++) {
                    double v = 0.3 * sin(2 * M_PI * 440 * (double)(t + i) /
                                         rate);
                    if (e->sample_fmt == AV_SAMPLE_FMT_FLTP)
                        ((float *)f->data[ch])[i] = (float)v;
                    else if (e->sample_fmt == AV_SAMPLE_FMT_S16P)
                        ((int16_t *)f->data[ch])[i] = (int16_t)(v * 32767);
                    else if (e->sample_fmt == AV_SAMPLE_FMT_S32P)
                        ((int32_t *)f->data[ch])[i] = (int32_t)(v * 2e9);
                    else
                        ck_abort_msg("sample format %d", e->sample_fmt);
                }
            f->pts = t;
            t += e->frame_size;
            ck_assert_int_ge(avcodec_send_frame(e, f), 0);
        } else {
            avcodec_send_frame(e, NULL);
            done = true;
        }
        while (avcodec_receive_packet(e, p) >= 0) {
            ck_assert_int_lt(s->n, cap);
            s->data[s->n] = malloc((size_t)p->size);
            memcpy(s->data[s->n], p->data, (size_t)p->size);
            s->len[s->n] = (size_t)p->size;
            s->dts[s->n] = av_rescale(p->pts, 1000, rate);
            s->n++;
            av_packet_unref(p);
        }
    }
    av_packet_free(&p);
    av_frame_free(&f);
    avcodec_free_context(&e);
}

static void free_audio(asrc_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->data[i]);
    free(s->data);
    free(s->len);
    free(s->dts);
    free(s->extra);
}

/* Feeds s, waits for the output, decodes it; returns decoded samples. */
static int64_t run_audio(const asrc_t *s, int codec_id, col_t **cout)
{
    pkg_tc_params_t p = mkparams(NULL, 0);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_audio_config(tc, codec_id, s->extra, s->extra_len,
                                         s->rate, 2),
                     PD_OK);
    for (int i = 0; i < s->n; i++) {
        pkg_frame_t f = {.media = PKG_MEDIA_AUDIO,
                         .dts_ms = s->dts[i],
                         .key = true,
                         .data = s->data[i],
                         .len = s->len[i],
                         .arrival_us = pd_wall_us()};
        ck_assert_int_eq(pkg_tc_audio(tc, &f), PD_OK);
    }
    /* wait until the output stops growing */
    int last = -1;
    for (int tries = 0; tries < 400; tries++) {
        usleep(50000);
        pthread_mutex_lock(&c->m);
        int n = c->n[AUD];
        pthread_mutex_unlock(&c->m);
        if (n > 0 && n == last)
            break;
        last = n;
    }
    pkg_tc_stats_t st;
    pkg_tc_get_stats(tc, &st);
    pkg_tc_destroy(&tc);
    ck_assert_int_eq(st.audio_in, s->n);
    ck_assert_int_eq(st.audio_out, c->n[AUD]);
    ck_assert(!c->frame_before_cfg);
    ck_assert_int_eq(c->ncfg[AUD], 1);
    /* decode the AAC output */
    const AVCodec *dc = avcodec_find_decoder(AV_CODEC_ID_AAC);
    AVCodecContext *d = avcodec_alloc_context3(dc);
    d->extradata = av_mallocz(c->cfg_len[AUD] + AV_INPUT_BUFFER_PADDING_SIZE);
    memcpy(d->extradata, c->cfg[AUD], c->cfg_len[AUD]);
    d->extradata_size = (int)c->cfg_len[AUD];
    ck_assert_int_ge(avcodec_open2(d, dc, NULL), 0);
    AVPacket *pk = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int64_t samples = 0;
    for (int i = 0; i < c->n[AUD]; i++) {
        const ofr_t *o = &c->fr[AUD][i];
        ck_assert(o->key);
        ck_assert_int_gt(o->arrival_us, 0);
        if (i > 0) {
            int64_t step = o->dts - c->fr[AUD][i - 1].dts;
            ck_assert_int_ge(step, 21);
            ck_assert_int_le(step, 22);
        }
        ck_assert_int_ge(av_new_packet(pk, (int)o->len), 0);
        memcpy(pk->data, o->data, o->len);
        ck_assert_int_ge(avcodec_send_packet(d, pk), 0);
        av_packet_unref(pk);
        while (avcodec_receive_frame(d, f) >= 0) {
            ck_assert_int_eq(f->sample_rate, 48000);
            ck_assert_int_eq(f->ch_layout.nb_channels, 2);
            samples += f->nb_samples;
            av_frame_unref(f);
        }
    }
    /* the first AU sits at the first input time (minus the AAC priming) */
    ck_assert_int_le(llabs(c->fr[AUD][0].dts - s->dts[0]), 50);
    av_frame_free(&f);
    av_packet_free(&pk);
    avcodec_free_context(&d);
    *cout = c;
    return samples;
}

START_TEST(mp3_to_aac48)
{
    asrc_t s;
    make_audio(&s, "libmp3lame", 44100, 2.0);
    col_t *c;
    int64_t out = run_audio(&s, AV_CODEC_ID_MP3, &c);
    double in_s = (double)s.n * s.frame_size / 44100;
    double out_s = (double)out / 48000;
    ck_assert_msg(fabs(in_s - out_s) <= 0.050, "in %.3f out %.3f", in_s,
                  out_s);
    col_free(c);
    free_audio(&s);
}
END_TEST

START_TEST(aac44_to_aac48)
{
    asrc_t s;
    make_audio(&s, "aac", 44100, 2.0);
    col_t *c;
    int64_t out = run_audio(&s, AV_CODEC_ID_AAC, &c);
    double in_s = (double)s.n * s.frame_size / 44100;
    double out_s = (double)out / 48000;
    ck_assert_msg(fabs(in_s - out_s) <= 0.050, "in %.3f out %.3f", in_s,
                  out_s);
    col_free(c);
    free_audio(&s);
}
END_TEST

/* ---- hostile input ---------------------------------------------------- */

START_TEST(hostile_video)
{
    src_t s;
    make_src(&s, 320, 180, 30, 15, 0, 45, 0);
    pkg_rung_t r[1] = {mkrung("c", 160, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 1);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    /* frames before any configuration */
    pkg_frame_t f = {.media = PKG_MEDIA_VIDEO, .key = true,
                     .data = s.f[0].data, .len = s.f[0].len};
    ck_assert_int_eq(pkg_tc_video(tc, &f), PD_EINVAL);
    /* garbage and truncated avcC */
    uint8_t junk[64];
    srand(7);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rand();
    ck_assert_int_eq(pkg_tc_video_config(tc, junk, sizeof(junk)), PD_EINVAL);
    ck_assert_int_eq(pkg_tc_video_config(tc, NULL, 0), PD_EINVAL);
    for (size_t l = 0; l < s.avcc_len; l++)
        ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, l), PD_EINVAL);
    ck_assert_int_eq(pkg_tc_video(tc, &f), PD_EINVAL);
    /* a well-formed avcC with garbage SPS/PPS bytes */
    uint8_t bad[] = {1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 6, 0x67, 0xff, 0xff,
                     0xff, 0xff, 0xff, 1, 0, 2, 0x68, 0xff};
    ck_assert_int_eq(pkg_tc_video_config(tc, bad, sizeof(bad)), PD_OK);
    for (int i = 0; i < 10; i++)
        push_video(tc, &s.f[i]);
    /* the real configuration; zero-length, random and truncated frames */
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    pkg_frame_t z = {.media = PKG_MEDIA_VIDEO, .key = true, .data = junk};
    ck_assert_int_eq(pkg_tc_video(tc, &z), PD_EINVAL);
    for (int i = 0; i < 40; i++) {
        uint8_t rnd[200];
        for (size_t k = 0; k < sizeof(rnd); k++)
            rnd[k] = (uint8_t)rand();
        if (i % 2)
            rnd[0] = rnd[1] = rnd[2] = 0; /* small lengths */
        pkg_frame_t g = {.media = PKG_MEDIA_VIDEO, .dts_ms = i, .key = i % 3,
                         .data = rnd, .len = 1 + (size_t)rand() % 200};
        ck_assert_int_eq(pkg_tc_video(tc, &g), PD_OK);
    }
    for (int i = 0; i < 15; i++) {
        sfr_t t = s.f[i];
        t.len = t.len / 2 + 1; /* the NAL length points past the end */
        push_video(tc, &t);
    }
    ck_assert(wait_settled(tc, 0, 0, 20000));
    /* the stream recovers at the next keyframe (two more GOP runs: the
     * garbage may have raised the decoder's reorder delay) */
    for (int i = 15; i < 2 * s.n; i++) {
        sfr_t t = s.f[i % s.n];
        t.dts += i < s.n ? 5000 : 6500;
        t.pts += i < s.n ? 5000 : 6500;
        ck_assert(wait_settled(tc, 0, 2, 20000));
        push_video(tc, &t);
    }
    /* hostile audio */
    ck_assert_int_eq(pkg_tc_audio_config(tc, 999999, NULL, 0, 0, 0),
                     PD_EUNSUP);
    pkg_frame_t af = {.media = PKG_MEDIA_AUDIO, .key = true, .data = junk,
                      .len = sizeof(junk)};
    ck_assert_int_eq(pkg_tc_audio(tc, &af), PD_EINVAL); /* no config */
    ck_assert_int_eq(pkg_tc_audio_config(tc, AV_CODEC_ID_MP3, NULL, 0, 0, 0),
                     PD_OK);
    ck_assert_int_eq(pkg_tc_audio_config(tc, AV_CODEC_ID_AAC, junk, 5, 44100,
                                         2),
                     PD_OK);
    for (int i = 0; i < 30; i++) {
        af.dts_ms = i * 23;
        af.len = 1 + (size_t)(rand() % (int)sizeof(junk));
        ck_assert_int_eq(pkg_tc_audio(tc, &af), PD_OK);
    }
    af.len = 0;
    ck_assert_int_eq(pkg_tc_audio(tc, &af), PD_EINVAL);
    int64_t end = pd_mono_us() + 20000000;
    for (;;) {
        pthread_mutex_lock(&c->m);
        int n = c->n[0];
        pthread_mutex_unlock(&c->m);
        if (n > 0 && opts(&c->fr[0][n - 1]) >= 7000)
            break;
        if (pd_mono_us() > end) {
            pkg_tc_stats_t st;
            pkg_tc_get_stats(tc, &st);
            ck_abort_msg("ddrop %lld n %d last %lld dec %lld in %lld out %lld drop %lld",
                         (long long)st.decode_dropped, n, n ? (long long)opts(&c->fr[0][n - 1]) : -1LL,
                         (long long)st.decoded, (long long)st.rung[0].frames_in,
                         (long long)st.rung[0].frames_out,
                         (long long)st.rung[0].dropped);
        }
        usleep(5000);
    }
    pkg_tc_destroy(&tc);
    ck_assert_int_gt(c->n[0], 0);
    ck_assert_int_eq(decode_out(c, 0, 160, 90), c->n[0]);
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(bad_params)
{
    pkg_rung_t r[1] = {mkrung("c", 161, 90, 30)};
    pkg_tc_params_t p = mkparams(r, 1);
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_EINVAL); /* odd */
    r[0] = mkrung("c", 160, 90, 0);
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_EINVAL); /* no fps */
    r[0] = mkrung("c", 160, 90, 30);
    p.nrungs = PD_LADDER_MAX + 1;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_EINVAL);
    p.nrungs = 1;
    p.audio_channels = 0;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_EINVAL);
    ck_assert_ptr_null(tc);
    p.audio_channels = 2;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    pkg_tc_destroy(&tc); /* no frames at all */
    ck_assert_int_eq(c->ncfg[0], 0);
    col_free(c);
}
END_TEST

/* ---- overload --------------------------------------------------------- */

START_TEST(overload_drops_and_prompt_destroy)
{
    src_t s;
    make_src(&s, 640, 360, 30, 30, 0, 60, 0);
    pkg_rung_t r[3] = {mkrung("a", 640, 360, 30), mkrung("b", 480, 270, 30),
                       mkrung("c", 320, 180, 30)};
    pkg_tc_params_t p = mkparams(r, 3);
    p.preset = "medium";
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    int64_t t0 = pd_mono_us();
    for (int i = 0; i < 3000; i++) {
        sfr_t f = s.f[i % s.n];
        int64_t off = (int64_t)(i / s.n) * 2000;
        f.dts += off;
        f.pts += off;
        push_video(tc, &f);
    }
    int64_t t1 = pd_mono_us();
    ck_assert_int_lt(t1 - t0, 30000000); /* never blocked */
    usleep(300000);
    pkg_tc_stats_t st;
    pkg_tc_get_stats(tc, &st);
    int64_t drops = st.decode_dropped;
    for (int i = 0; i < 3; i++)
        drops += st.rung[i].dropped;
    ck_assert_int_gt(drops, 0);
    ck_assert_int_gt(st.decode_dropped, 0);
    ck_assert_int_le(st.decoded, 3000);
    int64_t d0 = pd_mono_us();
    pkg_tc_destroy(&tc);
    int64_t d1 = pd_mono_us();
    ck_assert_msg(d1 - d0 < 1000000, "destroy took %lld us",
                  (long long)(d1 - d0));
    col_free(c);
    free_src(&s);
}
END_TEST

START_TEST(sustained_overload_sheds_one_rung)
{
    src_t s;
    make_src(&s, 640, 360, 30, 30, 0, 60, 0);
    pkg_rung_t r[3] = {mkrung("a", 640, 360, 30), mkrung("b", 480, 270, 30),
                       mkrung("c", 320, 180, 30)};
    pkg_tc_params_t p = mkparams(r, 3);
    p.preset = "veryslow";
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    /* 120 frames/s of 640x360 for up to 6 s: far beyond veryslow */
    int64_t t0 = pd_mono_us();
    for (int i = 0; i < 720; i++) {
        sfr_t f = s.f[i % s.n];
        int64_t off = (int64_t)(i / s.n) * 2000;
        f.dts += off;
        f.pts += off;
        push_video(tc, &f);
        int64_t due = t0 + (int64_t)(i + 1) * 1000000 / 120;
        int64_t now = pd_mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        pthread_mutex_lock(&c->m);
        int sheds = c->sheds;
        pthread_mutex_unlock(&c->m);
        if (sheds)
            break;
    }
    pkg_tc_stats_t st;
    pkg_tc_get_stats(tc, &st);
    int64_t d0 = pd_mono_us();
    pkg_tc_destroy(&tc);
    ck_assert_int_lt(pd_mono_us() - d0, 1000000);
    ck_assert_int_eq(c->sheds, 1);
    ck_assert(st.rung[0].shed); /* largest first */
    ck_assert(!st.rung[1].shed && !st.rung[2].shed);
    ck_assert_int_eq(c->ev[0][PKG_TC_EV_SHED], 1);
    int dropping = 0;
    for (int i = 0; i < 3; i++)
        dropping += c->ev[i][PKG_TC_EV_DROPPING];
    ck_assert_int_ge(dropping, 1);
    col_free(c);
    free_src(&s);
}
END_TEST

/* ---- CPU per rung (TC_BENCH=1) ---------------------------------------- */

START_TEST(bench_cpu_per_rung)
{
    if (!getenv("TC_BENCH"))
        return;
    src_t s;
    make_src(&s, 1280, 720, 30, 60, 0, 150, 0);
    pkg_rung_t r[3] = {mkrung("720p", 1280, 720, 30),
                       mkrung("480p", 854, 480, 30),
                       mkrung("360p", 640, 360, 30)};
    r[0].bitrate_kbps = 3000;
    r[0].maxrate_kbps = 3300;
    r[0].bufsize_kbps = 6000;
    r[1].bitrate_kbps = 1500;
    r[1].maxrate_kbps = 1650;
    r[1].bufsize_kbps = 3000;
    r[2].bitrate_kbps = 800;
    r[2].maxrate_kbps = 880;
    r[2].bufsize_kbps = 1600;
    pkg_tc_params_t p = mkparams(r, 3);
    p.preset = "veryfast";
    pkg_tc_cb_t cb;
    col_t *c = col_new(&cb);
    pkg_tc_t *tc = NULL;
    ck_assert_int_eq(pkg_tc_create(&p, &cb, &tc), PD_OK);
    ck_assert_int_eq(pkg_tc_video_config(tc, s.avcc, s.avcc_len), PD_OK);
    feed_paced(tc, &s, 0, 0);
    ck_assert(wait_settled(tc, s.n, 0, 60000));
    pkg_tc_stats_t st;
    pkg_tc_get_stats(tc, &st);
    pkg_tc_destroy(&tc);
    fprintf(stderr, "bench: decode+scale %.2f ms/frame (%lld frames)\n",
            (double)st.decode_us / 1000 / (double)st.decoded,
            (long long)st.decoded);
    for (int i = 0; i < 3; i++)
        fprintf(stderr, "bench: rung %s: %.2f ms encode CPU/frame (%lld)\n",
                r[i].name,
                (double)st.rung[i].encode_us / 1000 /
                    (double)st.rung[i].frames_out,
                (long long)st.rung[i].frames_out);
    col_free(c);
    free_src(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("transcode");
    const TTest *const tests[] = {
        follow_source_keyframes,
        follow_source_with_bframes,
        interval_idrs,
        half_frame_rate_rung,
        source_change_mid_stream,
        mp3_to_aac48,
        aac44_to_aac48,
        hostile_video,
        bad_params,
        overload_drops_and_prompt_destroy,
        sustained_overload_sheds_one_rung,
        bench_cpu_per_rung,
    };
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        TCase *t = tcase_create(tests[i]->name); /* CK_RUN_CASE=<name> */
        tcase_set_timeout(t, 240);
        tcase_add_test(t, tests[i]);
        suite_add_tcase(s, t);
    }
    return s;
}

int main(void)
{
    pd_log_set_level(PD_LOG_WARN);
    av_log_set_level(AV_LOG_QUIET);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
