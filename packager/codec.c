/*
 * packager/codec.c - what the multivariant playlist says about codecs.
 *
 * RFC 6381 strings come from the real configuration records: the avcC's
 * profile / compatibility / level bytes and the AudioSpecificConfig's
 * object type. The picture size comes from FFmpeg's H.264 parser run over
 * the first keyframe with the avcC as extradata (no hand-written SPS
 * parsing). All inputs are untrusted bytes read with explicit lengths.
 */
#include "pkg_int.h"

#include "../core/err.h"

#include <libavcodec/avcodec.h>
#include <stdio.h>
#include <string.h>

int pkg_h264_codecs(const uint8_t *avcc, size_t len, char *out, size_t outlen)
{
    /* configurationVersion(1) profile(1) compat(1) level(1) lengthSize(1)
     * numSPS(1) spsLen(2) sps... */
    if (!avcc || len < 7 || avcc[0] != 1)
        return PD_EINVAL;
    if ((avcc[5] & 0x1f) < 1 || len < 8)
        return PD_EINVAL;
    size_t sps_len = (size_t)avcc[6] << 8 | avcc[7];
    if (sps_len < 4 || 8 + sps_len > len)
        return PD_EINVAL;
    int n = snprintf(out, outlen, "avc1.%02x%02x%02x", avcc[1], avcc[2],
                     avcc[3]);
    return n > 0 && (size_t)n < outlen ? PD_OK : PD_EINVAL;
}

int pkg_h264_size(const uint8_t *avcc, size_t avcc_len, const uint8_t *au,
                  size_t au_len, int *width, int *height)
{
    if (!avcc || !au || avcc_len == 0 || au_len == 0 ||
        avcc_len > PKG_MAX_EXTRADATA || au_len > PKG_MAX_FRAME)
        return PD_EINVAL;
    int rc = PD_EINVAL;
    AVCodecParserContext *pc = av_parser_init(AV_CODEC_ID_H264);
    AVCodecContext *cc = avcodec_alloc_context3(NULL);
    uint8_t *copy = av_malloc(au_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!pc || !cc || !copy) {
        rc = PD_ENOMEM;
        goto out;
    }
    cc->codec_type = AVMEDIA_TYPE_VIDEO;
    cc->codec_id = AV_CODEC_ID_H264;
    cc->extradata = av_mallocz(avcc_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!cc->extradata) {
        rc = PD_ENOMEM;
        goto out;
    }
    memcpy(cc->extradata, avcc, avcc_len);
    cc->extradata_size = (int)avcc_len;
    memcpy(copy, au, au_len);
    memset(copy + au_len, 0, AV_INPUT_BUFFER_PADDING_SIZE);
    pc->flags |= PARSER_FLAG_COMPLETE_FRAMES;
    uint8_t *pout = NULL;
    int pout_len = 0;
    av_parser_parse2(pc, cc, &pout, &pout_len, copy, (int)au_len,
                     AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
    int w = pc->width > 0 ? pc->width : cc->width;
    int h = pc->height > 0 ? pc->height : cc->height;
    if (w > 0 && h > 0 && w <= 16384 && h <= 16384) {
        *width = w;
        *height = h;
        rc = PD_OK;
    }
out:
    av_free(copy);
    if (pc)
        av_parser_close(pc);
    avcodec_free_context(&cc);
    return rc;
}

/* MSB-first bit reader over an explicit length */
typedef struct br_s {
    const uint8_t *p;
    size_t len, pos; /* pos in bits */
    bool over;
} br_t;

static unsigned br_get(br_t *b, int n)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (b->pos >= b->len * 8) {
            b->over = true;
            return 0;
        }
        v = v << 1 | ((b->p[b->pos / 8] >> (7 - b->pos % 8)) & 1);
        b->pos++;
    }
    return v;
}

int pkg_aac_parse(const uint8_t *asc, size_t len, pkg_aac_info_t *out)
{
    static const int rates[13] = {96000, 88200, 64000, 48000, 44100,
                                  32000, 24000, 22050, 16000, 12000,
                                  11025, 8000,  7350};
    if (!asc || len < 2 || len > PKG_MAX_EXTRADATA)
        return PD_EINVAL;
    br_t b = {asc, len, 0, false};
    int aot = (int)br_get(&b, 5);
    if (aot == 31)
        aot = 32 + (int)br_get(&b, 6);
    unsigned fi = br_get(&b, 4);
    int rate;
    if (fi == 15)
        rate = (int)br_get(&b, 24);
    else if (fi < 13)
        rate = rates[fi];
    else
        return PD_EINVAL;
    int ch = (int)br_get(&b, 4);
    if (b.over || aot == 0 || rate < 1000 || rate > 192000 || ch > 7)
        return PD_EINVAL;
    memset(out, 0, sizeof(*out));
    out->aot = aot;
    out->sample_rate = rate;
    out->channels = ch == 0 ? 2 : (ch == 7 ? 8 : ch);
    snprintf(out->codecs, sizeof(out->codecs), "mp4a.40.%d", aot);
    return PD_OK;
}
