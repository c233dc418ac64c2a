/*
 * ingest/flv.c - FLV audio/video tag headers of RTMP media messages, and
 * RTMP timestamp unwrapping (32-bit RTMP wraps, and the 31-bit wraps of
 * publishers that pass FLV timestamps through).
 *
 * An RTMP audio (8) or video (9) message body is an FLV tag body: one
 * header byte (codec, frame type / sound format), for AVC a packet type
 * and a 24-bit signed composition time offset, for AAC a packet type.
 * Invariants: explicit lengths; the returned data pointer always lies
 * inside the input; nothing is copied or allocated. A connection's audio
 * and video timestamps are unwrapped per track, each track's first value
 * against the other track's, so both share one time line.
 */
#include "ingest_int.h"

#include "../core/err.h"

int flv_parse_video(const uint8_t *p, size_t len, flv_video_t *out)
{
    *out = (flv_video_t){.packet_type = -1};
    if (len < 1)
        return PD_EPROTO;
    if (p[0] & 0x80) {
        /* Enhanced RTMP: [1|frame type 3|packet type 4] FourCC ... */
        out->ex_header = true;
        out->frame_type = (p[0] >> 4) & 0x07;
        out->packet_type = p[0] & 0x0F;
        if (len >= 5)
            out->fourcc = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                          ((uint32_t)p[3] << 8) | p[4];
        out->data = p + 1;
        out->len = len - 1;
        return 0;
    }
    out->frame_type = p[0] >> 4;
    out->codec_id = p[0] & 0x0F;
    if (out->codec_id != FLV_CODEC_H264) {
        out->data = p + 1;
        out->len = len - 1;
        return 0;
    }
    if (out->frame_type == FLV_FRAME_COMMAND) {
        /* video info/command frame: may be shorter than an AVC header */
        out->data = p + 1;
        out->len = len - 1;
        return 0;
    }
    if (len < 5)
        return PD_EPROTO;
    out->packet_type = p[1];
    uint32_t c = ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
    /* sign-extend 24 bits without relying on implementation-defined
     * conversions */
    out->cts_ms = (c & 0x800000) ? (int32_t)c - 0x1000000 : (int32_t)c;
    out->data = p + 5;
    out->len = len - 5;
    return 0;
}

int flv_parse_audio(const uint8_t *p, size_t len, flv_audio_t *out)
{
    *out = (flv_audio_t){.packet_type = -1};
    if (len < 1)
        return PD_EPROTO;
    out->sound_format = p[0] >> 4;
    if (out->sound_format != FLV_SOUND_AAC) {
        out->data = p + 1;
        out->len = len - 1;
        return 0;
    }
    if (len < 2)
        return PD_EPROTO;
    out->packet_type = p[1];
    out->data = p + 2;
    out->len = len - 2;
    return 0;
}

int64_t flv_ts_unwrap(flv_ts_t *u, const flv_ts_t *ref, uint32_t ts)
{
    if (!u->started && ref && ref->started) {
        /* the first value of this track continues the other's time line */
        u->last = ref->last;
        u->value = ref->value;
        u->started = true;
    }
    if (!u->started) {
        u->started = true;
        u->value = ts;
    } else {
        uint32_t d = ts - u->last; /* modulo 2^32 */
        int64_t sd = d & 0x80000000u ? (int64_t)d - 0x100000000LL : (int64_t)d;
        /* FLV muxers (ffmpeg's among them) keep 31 bits: 0x7FFFFFxx is
         * followed by small values. A step back of more than 2^30 ms
         * between two values below 2^31 is that wrap, not a rewind. */
        if (sd < -(1LL << 30) && ts < 0x80000000u && u->last < 0x80000000u)
            sd += 1LL << 31;
        u->value += sd;
    }
    u->last = ts;
    return u->value;
}
