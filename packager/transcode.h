/*
 * packager/transcode.h - the transcoding ladder (packager-internal).
 *
 * Two parts:
 *
 * ladder.c (pure functions): which rungs a source gets. The configured
 * ladder (core/config.h pd_rung_t) is resolved against the source's size,
 * aspect and frame rate: never upscale (a rung whose short side exceeds
 * the source's is left out), portrait sources get the rung's height as
 * their width, sizes are even, frame rates never exceed the source's, and
 * the H.264 level is the lowest that fits when the config says 0.
 *
 * transcode.c (threads): per stream, decode the source video once
 * (libavcodec, threaded), scale once per rung (libswscale; a rung is
 * scaled from the nearest larger rung's picture where that is cheaper),
 * encode per rung with libx264 through libavcodec (zerolatency-class: no
 * lookahead, no B-frames, IDRs only where podium forces them), and
 * re-encode audio to AAC when it must. Every queue is bounded; a rung
 * that cannot keep up drops frames (never a forced IDR), and under
 * sustained overload rungs are shed in the configured order; the source
 * publisher is never slowed down.
 *
 * Timestamps in and out are the publisher's milliseconds (pkg_frame_t's
 * dts_ms/cts_ms), so the packager maps encoded frames onto the output
 * timeline exactly as it maps the source's.
 */
#ifndef PKG_TRANSCODE_H
#define PKG_TRANSCODE_H

#include "../core/config.h"
#include "packager.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ladder.c --------------------------------------------------------- */

/* A rung resolved for one source. */
typedef struct pkg_rung_s {
    char name[32];
    bool passthrough;        /* the source itself (no encoder) */
    int width, height;       /* output size in pixels (even; passthrough:
                                the source's) */
    int fps_num, fps_den;    /* output frame rate (<= the source's) */
    int bitrate_kbps, maxrate_kbps, bufsize_kbps; /* resolved (no zeros) */
    char profile[16];        /* "baseline" | "main" | "high" */
    int level;               /* H.264 level x 10, resolved */
} pkg_rung_t;

/* Resolves cfg->ladder for a source of src_w x src_h pixels (sample
 * aspect sar_num:sar_den, 0:0 or 1:1 = square) at src_fps frames/s (0 =
 * unknown: 30 is assumed). With cfg->transcode == 0 only the passthrough
 * rung (or one named "source") is returned. Fills out[0..*n-1], highest
 * first, the passthrough rung (if any) first. Returns PD_OK, or
 * PD_EINVAL for an unusable source size (<= 0 or > 16384). */
int pkg_ladder_select(const pd_config_t *cfg, int src_w, int src_h,
                      int sar_num, int sar_den, double src_fps,
                      pkg_rung_t *out, int *n);

/* The lowest H.264 level (x 10) whose limits (max frame size in
 * macroblocks, macroblocks per second, max bitrate for the profile) fit
 * w x h at fps and maxrate_kbps; 0 if none (above 6.2). */
int pkg_h264_level(int w, int h, double fps, int maxrate_kbps,
                   const char *profile);

/* ---- transcode.c ------------------------------------------------------ */

typedef struct pkg_tc_s pkg_tc_t;

#define PKG_TC_AUDIO (-1) /* pkg_tc_out_t.rung of the re-encoded audio */

/* One encoded frame. Borrowed for the duration of the callback. */
typedef struct pkg_tc_out_s {
    int rung;               /* index into pkg_tc_params_t.rungs, or
                               PKG_TC_AUDIO */
    const uint8_t *data;    /* video: AVCC (4-byte length-prefixed NAL
                               units); audio: one raw AAC access unit */
    size_t len;
    int64_t dts_ms;         /* publisher's timeline (as the input) */
    int32_t cts_ms;         /* pts - dts (0 without B-frames) */
    bool key;               /* video: IDR; audio: true */
    int64_t arrival_us;     /* the source frame's arrival (wallclock) */
} pkg_tc_out_t;

typedef enum {
    PKG_TC_EV_DROPPING = 1, /* the rung started dropping frames */
    PKG_TC_EV_SHED,         /* the rung was shed: no more frames from it */
} pkg_tc_event_t;

/* Callbacks, called from transcoder threads (never from the caller of
 * pkg_tc_video/pkg_tc_audio, never after pkg_tc_destroy returns). They
 * may block briefly (the packager's writer lock) but must not call back
 * into the transcoder. For each output, config() comes before its first
 * frame() and again whenever the encoder's configuration changes. */
typedef struct pkg_tc_cb_s {
    void *opaque;
    void (*config)(void *opaque, int rung, const uint8_t *extradata,
                   size_t len); /* video: avcC; audio: AudioSpecificConfig */
    void (*frame)(void *opaque, const pkg_tc_out_t *f);
    void (*event)(void *opaque, int rung, pkg_tc_event_t ev); /* may be NULL */
} pkg_tc_cb_t;

typedef struct pkg_tc_params_s {
    const char *stream;        /* for logs; borrowed for the call */
    const pkg_rung_t *rungs;   /* the encoded rungs (no passthrough);
                                  copied */
    int nrungs;                /* 0..PD_LADDER_MAX (0: audio only) */
    bool idr_follow_source;    /* true (a passthrough rung exists): an IDR
                                  on every rung at every source keyframe;
                                  false: at the first frame at or after
                                  each idr_interval_ms (and the first) */
    int idr_interval_ms;       /* the segment target */
    const char *preset;        /* x264 preset, e.g. "veryfast"; copied */
    int encoder_threads;       /* per rung; 0 = auto */
    int decode_threads;        /* 0 = auto */
    bool shed_largest_first;   /* shed order under overload */
    int keep_rung;             /* a rung never shed, as its index + 1 (the
                                  encoded lead, which every other rung
                                  follows); 0: none */
    /* audio re-encoding (pkg_tc_audio*): AAC-LC at this format */
    int audio_rate;            /* Hz, e.g. 48000 */
    int audio_channels;        /* 1 or 2 */
    int audio_bitrate_kbps;
} pkg_tc_params_t;

/* Starts a transcoder (its threads). Returns PD_OK, PD_ENOMEM, or
 * PD_EUNSUP when libx264 or the AAC encoder is missing. */
int pkg_tc_create(const pkg_tc_params_t *p, const pkg_tc_cb_t *cb,
                  pkg_tc_t **out);

/* The source's video configuration (avcC); again when it changes (the
 * decoder is re-opened; rung sizes stay). Borrows avcc. Never blocks. */
int pkg_tc_video_config(pkg_tc_t *tc, const uint8_t *avcc, size_t len);

/* One source video frame (f->data is AVCC). Never blocks: when the
 * decoder's queue is full the frame is dropped, and then every frame up
 * to the next keyframe (counted, logged once). Borrows f. */
int pkg_tc_video(pkg_tc_t *tc, const pkg_frame_t *f);

/* Source audio to re-encode: codec is an FFmpeg AVCodecID (e.g.
 * AV_CODEC_ID_MP3, AV_CODEC_ID_AAC with another sample rate), extradata
 * may be NULL; rate/channels as the publisher declared them (0 =
 * unknown: the decoder finds out). Never blocks. */
int pkg_tc_audio_config(pkg_tc_t *tc, int codec_id, const uint8_t *extradata,
                        size_t len, int rate, int channels);
int pkg_tc_audio(pkg_tc_t *tc, const pkg_frame_t *f);

typedef struct pkg_tc_rung_stats_s {
    int64_t frames_in;       /* pictures offered to the rung */
    int64_t frames_out;      /* encoded frames emitted */
    int64_t dropped;         /* pictures dropped (queue full, overload) */
    int64_t encode_us;       /* thread CPU time spent encoding */
    bool shed;
} pkg_tc_rung_stats_t;

typedef struct pkg_tc_stats_s {
    int64_t decoded;          /* source pictures decoded */
    int64_t decode_dropped;   /* source frames dropped before decoding */
    int64_t decode_us;        /* thread CPU time decoding + scaling */
    int nrungs;
    pkg_tc_rung_stats_t rung[PD_LADDER_MAX];
    int64_t audio_in, audio_out;
} pkg_tc_stats_t;

void pkg_tc_get_stats(pkg_tc_t *tc, pkg_tc_stats_t *st);

/* Stops the threads (frames still queued are dropped), frees everything;
 * no callback runs after it returns. *tc set to NULL. Idempotent. */
void pkg_tc_destroy(pkg_tc_t **tc);

#endif
