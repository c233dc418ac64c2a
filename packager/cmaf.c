/*
 * packager/cmaf.c - one track's fragmented MP4 (CMAF) written to memory.
 *
 * libavformat's "mp4" muxer with frag_custom + empty_moov +
 * default_base_moof + omit_tfhd_offset + cmaf (+ skip_sidx) writes into an
 * avio dynamic buffer. The bytes after avformat_write_header() are the
 * init segment (ftyp+moov); the bytes after each av_write_frame(ctx, NULL)
 * are one fragment (moof+mdat): a part. frag_discont makes the first
 * fragment's tfdt the first sample's dts (the output timeline continues
 * across sessions); set again mid-stream (pkg_cmaf_discont) it does the
 * same for the fragment after a gap in the track. The trailer is never written: the context is freed
 * with its output discarded. FFmpeg errors become PD_ codes here.
 *
 * Invariants: samples arrive with strictly increasing dts and pts >= dts;
 * dts/pts/duration are ticks of the timescale the caller chose (90 kHz
 * video, the sample rate for audio). Writer thread only.
 */
#include "pkg_int.h"

#include "../core/err.h"
#include "../core/log.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <string.h>

struct pkg_cmaf_s {
    AVFormatContext *fc;
    AVStream *st;
    AVRational tb;      /* caller's time base */
    int pending;        /* samples written since the last flush */
    AVPacket *pkt;
};

static int take_dyn(AVFormatContext *fc, pd_buf_t **out)
{
    uint8_t *data = NULL;
    int len = avio_close_dyn_buf(fc->pb, &data);
    fc->pb = NULL;
    int rc = PD_OK;
    if (len <= 0 || !data) {
        rc = PD_EINVAL;
    } else {
        *out = pd_buf_from(data, (size_t)len);
        if (!*out)
            rc = PD_ENOMEM;
    }
    av_free(data);
    if (avio_open_dyn_buf(&fc->pb) < 0)
        return PD_ENOMEM;
    return rc;
}

void pkg_cmaf_close(pkg_cmaf_t **cp)
{
    if (!cp || !*cp)
        return;
    pkg_cmaf_t *c = *cp;
    if (c->fc) {
        if (c->fc->pb) {
            uint8_t *data = NULL;
            avio_close_dyn_buf(c->fc->pb, &data);
            av_free(data);
            c->fc->pb = NULL;
        }
        avformat_free_context(c->fc);
    }
    av_packet_free(&c->pkt);
    av_free(c);
    *cp = NULL;
}

int pkg_cmaf_open(const pkg_cmaf_params_t *p, pkg_cmaf_t **out,
                  pd_buf_t **init)
{
    *out = NULL;
    *init = NULL;
    if (!p || p->timescale <= 0 || !p->extradata || !p->extradata_len ||
        p->extradata_len > PKG_MAX_EXTRADATA)
        return PD_EINVAL;
    pkg_cmaf_t *c = av_mallocz(sizeof(*c));
    if (!c)
        return PD_ENOMEM;
    int rc = PD_ENOMEM;
    c->tb = (AVRational){1, p->timescale};
    c->pkt = av_packet_alloc();
    if (!c->pkt || avformat_alloc_output_context2(&c->fc, NULL, "mp4",
                                                  NULL) < 0 || !c->fc)
        goto fail;
    c->st = avformat_new_stream(c->fc, NULL);
    if (!c->st)
        goto fail;
    AVCodecParameters *par = c->st->codecpar;
    par->extradata = av_mallocz(p->extradata_len +
                                AV_INPUT_BUFFER_PADDING_SIZE);
    if (!par->extradata)
        goto fail;
    memcpy(par->extradata, p->extradata, p->extradata_len);
    par->extradata_size = (int)p->extradata_len;
    rc = PD_EINVAL;
    if (p->codec == PKG_CODEC_H264) {
        if (p->width <= 0 || p->height <= 0)
            goto fail;
        par->codec_type = AVMEDIA_TYPE_VIDEO;
        par->codec_id = AV_CODEC_ID_H264;
        par->codec_tag = 0;
        par->width = p->width;
        par->height = p->height;
    } else if (p->codec == PKG_CODEC_AAC) {
        if (p->sample_rate <= 0 || p->channels <= 0)
            goto fail;
        par->codec_type = AVMEDIA_TYPE_AUDIO;
        par->codec_id = AV_CODEC_ID_AAC;
        par->sample_rate = p->sample_rate;
        av_channel_layout_default(&par->ch_layout, p->channels);
        par->frame_size = 1024;
    } else {
        goto fail;
    }
    c->st->time_base = c->tb;

    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags",
                "frag_custom+empty_moov+default_base_moof+omit_tfhd_offset"
                "+cmaf+skip_sidx+skip_trailer+frag_discont", 0);
    /* our timestamps are already non-negative and continuous */
    av_dict_set(&opts, "avoid_negative_ts", "disabled", 0);
    av_dict_set(&opts, "use_editlist", "0", 0);
    if (avio_open_dyn_buf(&c->fc->pb) < 0) {
        av_dict_free(&opts);
        rc = PD_ENOMEM;
        goto fail;
    }
    int err = avformat_write_header(c->fc, &opts);
    av_dict_free(&opts);
    if (err < 0) {
        char msg[128];
        av_strerror(err, msg, sizeof(msg));
        PD_LOGW(PKG_MOD, "mp4 muxer refused the track: %s", msg);
        rc = PD_EINVAL;
        goto fail;
    }
    rc = take_dyn(c->fc, init);
    if (rc)
        goto fail;
    *out = c;
    return PD_OK;
fail:
    pd_buf_unref(init);
    pkg_cmaf_close(&c);
    return rc;
}

int pkg_cmaf_write(pkg_cmaf_t *c, const uint8_t *data, size_t len,
                   int64_t dts, int64_t pts, int64_t dur, bool key)
{
    if (!c || !data || !len || len > PKG_MAX_FRAME)
        return PD_EINVAL;
    AVPacket *pkt = c->pkt;
    av_packet_unref(pkt);
    if (av_new_packet(pkt, (int)len) < 0)
        return PD_ENOMEM;
    memcpy(pkt->data, data, len);
    pkt->stream_index = 0;
    pkt->dts = av_rescale_q(dts, c->tb, c->st->time_base);
    pkt->pts = av_rescale_q(pts < dts ? dts : pts, c->tb, c->st->time_base);
    pkt->duration = av_rescale_q(dur > 0 ? dur : 1, c->tb, c->st->time_base);
    if (key)
        pkt->flags |= AV_PKT_FLAG_KEY;
    int err = av_write_frame(c->fc, pkt);
    av_packet_unref(pkt);
    if (err < 0)
        return PD_EINVAL;
    c->pending++;
    return PD_OK;
}

int pkg_cmaf_discont(pkg_cmaf_t *c)
{
    if (!c || c->pending)
        return PD_EINVAL;
    /* movenc turns the flag into "next fragment: tfdt = its first dts"
     * (frag_start = dts - start_dts, start_dts 0 without an edit list)
     * and clears it again */
    if (av_opt_set(c->fc->priv_data, "movflags", "+frag_discont", 0) < 0)
        return PD_EINVAL;
    return PD_OK;
}

int pkg_cmaf_flush(pkg_cmaf_t *c, pd_buf_t **part)
{
    *part = NULL;
    if (!c)
        return PD_EINVAL;
    if (c->pending == 0)
        return PD_EAGAIN;
    int err = av_write_frame(c->fc, NULL);
    c->pending = 0;
    if (err < 0)
        return PD_EINVAL;
    return take_dyn(c->fc, part);
}
