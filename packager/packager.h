/*
 * packager/packager.h - streams, renditions, CMAF parts and LL-HLS
 * playlists.
 *
 * The packager owns every live stream. Ingest (one thread per publisher)
 * pushes compressed frames in through the write side; the packager cuts
 * them into CMAF parts and segments per rendition (libavformat's mp4 muxer
 * writing to memory), keeps the segment/part index, renders playlists once
 * per publication into shared immutable buffers, and wakes the blocked
 * requests that waited for a publication. httpd reads through the read
 * side (pkg_lookup) and never sees the index itself.
 *
 * Renditions: a stream has one video rendition per rung of its
 * transcoding ladder (resolved at its first video keyframe: the source
 * passed through as "source" and encoded rungs such as "720p"; see
 * transcode.h) and at most one audio rendition, "audio". Segments of
 * every rendition cover the same time intervals and share media sequence
 * numbers (MSN). A new stream instance starts its MSNs at max(1, wallclock
 * ms / segment target) and above any earlier instance of the name, so no
 * URL is ever reused for other bytes.
 *
 * Threads: the write side is called by the one ingest thread that owns a
 * pkg_stream_t handle; the read side by any thread. A housekeeping thread
 * inside the packager expires waiters and ends/removes streams.
 */
#ifndef PKG_PACKAGER_H
#define PKG_PACKAGER_H

#include "../core/buf.h"
#include "../core/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pkg_s pkg_t;               /* the packager (registry) */
typedef struct pkg_stream_s pkg_stream_t; /* a publisher's handle */

/* ---- lifecycle (main thread) ------------------------------------------ */

/* Creates the packager and starts its housekeeping thread. Borrows cfg,
 * which must outlive the packager. Returns 0 or a PD_ error. */
int pkg_create(const pd_config_t *cfg, pkg_t **out);

/* Ends every stream (publishers see PD_ECLOSED on their next write),
 * releases every waiter with PKG_WAKE_SHUTDOWN. Called before httpd stops,
 * so no request stays suspended. Idempotent. */
void pkg_shutdown(pkg_t *pkg);

/* Frees the packager; *pkg set to NULL. All publisher handles must have
 * been released with pkg_unpublish() first. */
void pkg_destroy(pkg_t **pkg);

/* ---- write side (ingest) ----------------------------------------------
 * Thread-safe per stream (a writer lock): the publisher's ingest thread
 * and the stream's transcoder threads write. */

typedef enum { PKG_MEDIA_VIDEO = 0, PKG_MEDIA_AUDIO = 1 } pkg_media_t;

typedef enum {
    PKG_CODEC_NONE = 0,
    PKG_CODEC_H264, /* extradata: avcC (AVCDecoderConfigurationRecord) */
    PKG_CODEC_AAC,  /* extradata: AudioSpecificConfig */
    PKG_CODEC_MP3,  /* no extradata (NULL, 0); frames: MP3 frames. The
                       packager re-encodes it to AAC */
} pkg_codec_t;

/* One compressed frame as ingest received it. All fields borrowed for the
 * duration of the call. */
typedef struct pkg_frame_s {
    pkg_media_t media;
    int64_t dts_ms;     /* publisher's decode time, unwrapped to 64 bits
                           (ms); may jump or step back: the packager keeps
                           its output monotonic */
    int32_t cts_ms;     /* composition offset (pts - dts), video only, ms */
    bool key;           /* video: IDR / keyframe; audio: always true */
    const uint8_t *data;/* H.264: AVCC length-prefixed NAL units;
                           AAC: one raw access unit (no ADTS) */
    size_t len;
    int64_t arrival_us; /* wallclock when the frame reached ingest */
} pkg_frame_t;

/* Accepts a publisher for stream `name` ("live/<name>"). If the stream is
 * in its grace period the same stream continues (next segment gets
 * EXT-X-DISCONTINUITY, MSNs go on). Returns PD_EEXIST if a publisher is
 * live on that name, PD_ELIMIT if too many streams exist. peer is a
 * printable address for logs. On success *out is the publisher's handle,
 * owned by the calling ingest thread until pkg_unpublish(). */
int pkg_publish(pkg_t *pkg, const char *name, const char *peer,
                pkg_stream_t **out);

/* Declares a track and its codec configuration (sequence header). May be
 * called again mid-stream; a changed configuration starts a new segment
 * with a discontinuity. Tracks are fixed when the first frame is written:
 * a track whose configuration was not declared by then is ignored.
 * The audio rendition is AAC at the sample rate of the stream's first
 * audio: AAC at that rate passes through; MP3, or AAC at another rate (a
 * later publisher), is re-encoded to it (the first audio being MP3: AAC
 * at 48 kHz). Returns PD_EUNSUP for codecs other than H.264/AAC/MP3,
 * PD_EINVAL for unusable extradata. Borrows extradata. */
int pkg_stream_set_config(pkg_stream_t *s, pkg_media_t media,
                          pkg_codec_t codec, const uint8_t *extradata,
                          size_t len);

/* Optional hints from onMetaData (0 = unknown). */
void pkg_stream_set_hints(pkg_stream_t *s, int width, int height,
                          double fps);

/* Packages one frame. Returns 0, PD_EINVAL for a frame the packager could
 * not use (logged once per stream, the stream goes on), or PD_ECLOSED when
 * the packager is shutting down (the publisher should disconnect). */
int pkg_stream_write(pkg_stream_t *s, const pkg_frame_t *f);

/* The publisher left (cleanly or not). Closes the segment in progress,
 * starts the grace period. Consumes *s and sets it to NULL. */
void pkg_unpublish(pkg_stream_t **s);

/* ---- recording side (storage) ------------------------------------------
 * An optional observer of everything published (recordings). Set once,
 * before any publish. Its callbacks run on a writer thread with the
 * stream's lock held: they must be quick (take a reference, queue) and
 * must not call into the packager. */

typedef struct pkg_seg_event_s {
    const char *stream;      /* "live/<name>" */
    const char *rendition;   /* "source", "720p", ..., "audio" */
    int64_t msn;
    int64_t duration_us;     /* its EXTINF */
    int64_t pdt_us;          /* its PROGRAM-DATE-TIME */
    bool discontinuity;      /* EXT-X-DISCONTINUITY before it */
    unsigned init_id;        /* its init section ("init-<id>.mp4") */
    const char *codecs;      /* the rendition's, "avc1.64001f" / "mp4a.40.2" */
    int width, height;       /* video; 0 for audio */
    pd_buf_t *buf;           /* the segment's bytes; borrowed: pd_buf_ref()
                                to keep them */
} pkg_seg_event_t;

typedef struct pkg_sink_s {
    void *opaque;
    /* a new init section of a rendition (buf borrowed) */
    void (*init)(void *opaque, const char *stream, const char *rendition,
                 unsigned init_id, pd_buf_t *buf);
    /* a complete segment with media (gap segments are not reported) */
    void (*segment)(void *opaque, const pkg_seg_event_t *e);
} pkg_sink_t;

/* Installs the observer (copied; NULL removes it). Main thread, before
 * any publisher connects. */
void pkg_set_sink(pkg_t *pkg, const pkg_sink_t *sink);

/* ---- read side (httpd) ------------------------------------------------ */

typedef enum {
    PKG_OBJ_MULTIVARIANT, /* live/<name>/index.m3u8 */
    PKG_OBJ_PLAYLIST,     /* live/<name>/<rendition>/index.m3u8 */
    PKG_OBJ_INIT,         /* .../init-<id>.mp4, id = MSN of its first segment */
    PKG_OBJ_SEGMENT,      /* .../<msn>.m4s */
    PKG_OBJ_PART,         /* .../<msn>.<part>.m4s */
} pkg_obj_t;

/* A request, already parsed and validated for syntax by httpd. */
typedef struct pkg_query_s {
    pkg_obj_t obj;
    const char *stream;    /* "live/<name>"; borrowed */
    const char *rendition; /* NULL for the multivariant; borrowed */
    int64_t msn;           /* segment/part: its MSN */
    int64_t part;          /* part: its index in the segment */
    unsigned init_id;      /* init: n for init-<n>.mp4 (n >= 1) */
    /* delivery directives (playlists only) */
    int64_t hls_msn;       /* _HLS_msn, or -1 if absent */
    int64_t hls_part;      /* _HLS_part, or -1 if absent */
    bool hls_skip;         /* _HLS_skip=YES */
} pkg_query_t;

typedef enum {
    PKG_ANS_OK = 0,        /* body holds the answer */
    PKG_ANS_WAIT,          /* not there yet; a waiter was registered */
    PKG_ANS_NOT_FOUND,     /* 404 */
    PKG_ANS_BAD_REQUEST,   /* 400: directive out of the allowed range */
    PKG_ANS_UNAVAILABLE,   /* 503: cannot be satisfied in time */
} pkg_status_t;

typedef struct pkg_answer_s {
    pkg_status_t status;
    pd_buf_t *body;           /* PKG_ANS_OK: a new reference, caller unrefs */
    const char *content_type; /* static string, for PKG_ANS_OK */
    int target_duration_s;    /* the stream's TARGETDURATION (0 if none yet),
                                 for Cache-Control */
    bool blocked;             /* the query carried directives that were
                                 honoured (a blocking-reload response) */
    bool ended;               /* the playlist has EXT-X-ENDLIST */
} pkg_answer_t;

typedef enum {
    PKG_WAKE_READY = 0,   /* something the waiter waited for happened:
                             call pkg_lookup again */
    PKG_WAKE_TIMEOUT,     /* the deadline passed: answer 503 */
    PKG_WAKE_SHUTDOWN,    /* podium is stopping: answer 503 */
} pkg_wake_t;

/* Called exactly once per registered waiter, from a packager thread (an
 * ingest thread or the housekeeping thread), with no packager lock held.
 * Must be quick and must not call back into the packager: typically it
 * records `why` and calls MHD_resume_connection(). */
typedef void (*pkg_wake_pt)(void *opaque, pkg_wake_t why);

/* Answers q. If the object is not there yet but will be (a blocking
 * playlist request, the part named by the preload hint, a playlist before
 * the first segment is complete) and wake is not NULL, registers a waiter
 * and returns PKG_ANS_WAIT: wake(opaque, ...) is then called exactly once,
 * at the latest at deadline_us (monotonic). With wake NULL, such a query
 * answers PKG_ANS_UNAVAILABLE instead. Fills *ans; returns 0, or
 * PD_ELIMIT (nothing registered) when max_waiters are already held. */
int pkg_lookup(pkg_t *pkg, const pkg_query_t *q, int64_t deadline_us,
               pkg_wake_pt wake, void *opaque, pkg_answer_t *ans);

/* The longest a blocking request may be held: 3 target durations of the
 * stream (or of the segment target before the stream has one), in us. */
int64_t pkg_hold_limit_us(pkg_t *pkg, const char *stream);

/* Returns a new reference to a JSON document listing the streams:
 * [{"name":"live/x","state":"live|grace|ended","url":"/live/x/index.m3u8",
 *   "renditions":[...],"shed":[...],"dropping":[...]}] (shed: rungs the
 * transcoder gave up; dropping: rungs it dropped frames of). Never NULL
 * unless out of memory. */
pd_buf_t *pkg_streams_json(pkg_t *pkg);

/* Counters for logs, metrics and benchmarks. */
/* What stream ("live/<name>", live or in its grace period) is made of:
 * its distinct codecs ("avc1.64001f,mp4a.40.2") and its renditions'
 * names ("source,720p,audio"), comma-separated, cut to csize / rsize
 * at a whole entry. Returns 0, PD_ENOENT (no such stream) or PD_EINVAL.
 * Any thread. */
int pkg_stream_describe(pkg_t *pkg, const char *name, char *codecs,
                        size_t csize, char *rends, size_t rsize);

typedef struct pkg_stats_s {
    int64_t streams;         /* streams in the registry */
    int64_t waiters;         /* waiters currently held */
    int64_t parts_published; /* since start, all renditions */
    int64_t last_publish_us; /* monotonic time of the last part */
} pkg_stats_t;
void pkg_get_stats(pkg_t *pkg, pkg_stats_t *st);

#endif
