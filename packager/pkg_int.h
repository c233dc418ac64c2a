/*
 * packager/pkg_int.h - the packager's internal types and the contracts
 * between its files.
 *
 *   registry.c  streams, publish/unpublish, lookup, waiters, housekeeping
 *   writer.c    the write side: timestamp mapping, part/segment cutting,
 *               audio aligned on the video's boundaries
 *   index.c     segment/part index: publication, retention, readiness,
 *               building the playlist inputs from the index
 *   playlist.c  rendering media / delta / multivariant playlists from the
 *               plain pl_* structs below (no index knowledge: tests fill
 *               them by hand)
 *   cmaf.c      libavformat's mp4 muxer writing to memory
 *   codec.c     RFC 6381 codec strings, H.264 resolution (FFmpeg's
 *               parser), AudioSpecificConfig fields
 *
 * Locking: pkg->lock guards the registry (stream table, counters);
 * stream->lock guards a stream's index, playlists, state and waiters. Lock
 * order is pkg->lock then stream->lock. Fields marked "writer" are touched
 * only by the thread that owns the publisher handle (and by pkg_unpublish
 * in that thread), never by readers, so they need no lock. Wake callbacks
 * are always called with no lock held.
 */
#ifndef PKG_INT_H
#define PKG_INT_H

#include "packager.h"

#include "../core/buf.h"
#include "../core/config.h"
#include "transcode.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKG_MOD "pkg"
#define PKG_NAME_MAX 256        /* bytes of a stream name incl. NUL */
#define PKG_MAX_RENDS (PD_LADDER_MAX + 1) /* video rungs + audio */
#define PKG_MAX_INITS 2048      /* init segments kept per rendition: only
                                   those no retained segment uses are
                                   dropped; beyond this (more than the
                                   retained segments can use) the oldest */
#define PKG_MAX_EXTRADATA 65536 /* bytes of avcC / ASC accepted */
#define PKG_MAX_FRAME (32u << 20)   /* bytes of one frame accepted */
#define PKG_PART_MAX_FRAMES 1024    /* a part never holds more frames */
#define PKG_PART_MAX_BYTES (32u << 20) /* ... nor more bytes */
#define PKG_SEG_MAX_PARTS 512       /* a segment never holds more parts */
#define PKG_RETAIN_EXTRA 256    /* segments kept beyond the window, at most */
#define PKG_AQ_MAX 512          /* audio frames queued waiting for video */
#define PKG_AQ_SPAN_MS 3000     /* ... or this much audio: then self-timed */
#define PKG_BQ_MAX 256          /* video boundaries queued for the audio */
#define PKG_AQ_BYTES (1u << 20) /* bytes of audio queued, at most */
#define PKG_FQ_MAX 128          /* follower frames waiting for the lead */
#define PKG_FQ_BYTES (32u << 20) /* ... and their bytes, at most */
#define PKG_AUDIO_PT_EXTRA_MS 24 /* audio PART-TARGET = configured + this:
                                   one AAC frame (1024 samples) at >= 44.1
                                   kHz rounded up, as audio parts end at the
                                   frame nearest each video part end */
#define PKG_AFRAME_MAX 65536    /* bytes of one audio frame accepted */
#define PKG_JUMP_MS 1000        /* a step beyond the expected dts + this is
                                   a jump (or a one-track gap) */
#define PKG_GAP_MAX_MS 30000    /* a one-track gap longer than this
                                   re-bases the timeline instead */
#define PKG_TOMBS 1024          /* removed names remembered (last MSN) */

/* ---- playlist rendering input (playlist.c) ---------------------------- */

typedef struct pl_part_s {
    double dur;       /* seconds */
    bool independent; /* first sample is a sync sample */
    bool gap;         /* no media (GAP=YES) */
} pl_part_t;

typedef struct pl_seg_s {
    int64_t msn;
    bool complete;       /* has EXTINF + URI; false: the in-progress one */
    double dur;          /* seconds (complete segments) */
    int64_t pdt_us;      /* wallclock us since the epoch; < 0: none */
    bool discontinuity;  /* EXT-X-DISCONTINUITY before it */
    bool gap;            /* no media at all (EXT-X-GAP) */
    unsigned init_id;    /* its init section, "init-<id>.mp4" (>= 1) */
    const pl_part_t *parts; /* listed parts (NULL / 0: not listed) */
    int nparts;
} pl_seg_t;

typedef struct pl_report_s {
    const char *rendition; /* other rendition's name, "../<name>/..." */
    int64_t last_msn;      /* msn of its last published part */
    int64_t last_part;     /* that part's index */
} pl_report_t;

typedef struct pl_media_s {
    int target_s;          /* EXT-X-TARGETDURATION */
    int part_target_ms;    /* PART-TARGET in ms */
    int part_hold_back_ms; /* PART-HOLD-BACK in ms (identical in every
                              playlist of a stream); 0: 3 x PART-TARGET */
    int64_t disc_seq;      /* EXT-X-DISCONTINUITY-SEQUENCE */
    const pl_seg_t *segs;  /* listed segments, oldest first; the last may
                              be the in-progress one (complete = false) */
    int nsegs;
    bool ended;            /* EXT-X-ENDLIST, no hint */
    int64_t hint_msn;      /* preload hint (ignored when ended) */
    int64_t hint_part;
    unsigned hint_map_id;  /* > 0: the hinted part uses this new init
                              section (EXT-X-PRELOAD-HINT:TYPE=MAP) */
    const pl_report_t *reports;
    int nreports;
} pl_media_t;

typedef struct pl_variant_s { /* one video rung of the multivariant */
    const char *name;         /* rendition: URI "<name>/index.m3u8" */
    const char *codecs;       /* "avc1.64001f" */
    int width, height;        /* pixels; 0 = unknown (omitted) */
    double fps;               /* 0 = unknown (omitted) */
    int64_t bandwidth;        /* peak bits/s incl. audio */
    int64_t avg_bandwidth;    /* average bits/s incl. audio */
} pl_variant_t;

typedef struct pl_mv_s {
    const pl_variant_t *variants; /* video rungs, in the order listed */
    int nvariants;            /* 0: audio only */
    bool has_audio;
    const char *audio_codecs; /* "mp4a.40.2" */
    int audio_channels;       /* CHANNELS of the audio; 0 = unknown */
    bool independent;         /* every segment so far starts with a sync
                                 sample: EXT-X-INDEPENDENT-SEGMENTS */
    int64_t bandwidth;        /* audio only: peak bits/s */
    int64_t avg_bandwidth;    /* audio only: average bits/s */
} pl_mv_t;

/* Renders the media playlist (delta = an _HLS_skip=YES delta update; an
 * ended playlist is always full). EXT-X-VERSION is 6 in full playlists
 * (EXT-X-MAP) and 9 in delta updates (EXT-X-SKIP). Returns 0 with a new buffer in *out, or
 * PD_ENOMEM / PD_EINVAL (no segments). Borrows m. Any thread. */
int pl_render_media(const pl_media_t *m, bool delta, pd_buf_t **out);

/* Number of leading segments a delta update skips: complete segments that
 * end more than 6 x TD before the end of the last complete segment. */
int pl_skip_count(const pl_media_t *m);

/* Renders the multivariant playlist. Returns 0 or PD_ENOMEM. */
int pl_render_multivariant(const pl_mv_t *mv, pd_buf_t **out);

/* Formats a wallclock time (us since the epoch) as ISO 8601 UTC with ms,
 * "2026-11-27T05:43:54.123Z". Returns 0 or PD_EINVAL (buffer too small). */
int pl_format_pdt(int64_t wall_us, char *buf, size_t len);

/* ---- codec helpers (codec.c) ------------------------------------------ */

typedef struct pkg_h264_info_s {
    char codecs[32]; /* "avc1.PPCCLL" */
    int width, height;
} pkg_h264_info_t;

/* Checks an avcC record and writes its RFC 6381 string. Returns 0 or
 * PD_EINVAL. Borrows avcc. */
int pkg_h264_codecs(const uint8_t *avcc, size_t len, char *out, size_t outlen);

/* Finds the picture size by running FFmpeg's H.264 parser (with the avcC
 * as extradata) over one AVCC-framed access unit. Returns 0 or PD_EINVAL
 * (no size found). Borrows everything. */
int pkg_h264_size(const uint8_t *avcc, size_t avcc_len, const uint8_t *au,
                  size_t au_len, int *width, int *height);

typedef struct pkg_aac_info_s {
    int aot;          /* audio object type (2 = LC, 5 = SBR, ...) */
    int sample_rate;  /* core sampling rate, Hz */
    int channels;     /* 1..8 (0 in the ASC is taken as 2) */
    char codecs[32];  /* "mp4a.40.<aot>" */
} pkg_aac_info_t;

/* Parses the AudioSpecificConfig fields podium needs. Returns 0 or
 * PD_EINVAL. Borrows asc. */
int pkg_aac_parse(const uint8_t *asc, size_t len, pkg_aac_info_t *out);

/* ---- CMAF muxer (cmaf.c) ---------------------------------------------- */

typedef struct pkg_cmaf_s pkg_cmaf_t;

typedef struct pkg_cmaf_params_s {
    pkg_codec_t codec;
    const uint8_t *extradata; /* borrowed */
    size_t extradata_len;
    int width, height;        /* video */
    int sample_rate, channels;/* audio */
    int timescale;            /* ticks per second of dts/pts/duration */
} pkg_cmaf_params_t;

/* Opens a muxer; *init receives a new reference to the init segment
 * (ftyp+moov). Returns 0, PD_EINVAL or PD_ENOMEM. Writer thread. */
int pkg_cmaf_open(const pkg_cmaf_params_t *p, pkg_cmaf_t **out,
                  pd_buf_t **init);

/* Adds one sample (ticks of the timescale). Returns 0 or PD_EINVAL (the
 * muxer refused it). Borrows data. */
int pkg_cmaf_write(pkg_cmaf_t *c, const uint8_t *data, size_t len,
                   int64_t dts, int64_t pts, int64_t dur, bool key);

/* Cuts a fragment: *part receives a new reference to moof+mdat of the
 * samples written since the last cut. Returns 0, PD_EAGAIN (no samples),
 * PD_EINVAL or PD_ENOMEM. */
int pkg_cmaf_flush(pkg_cmaf_t *c, pd_buf_t **part);

/* Makes the next fragment's tfdt the dts of its first sample (after a gap
 * in the track's timeline). Call only right after a flush (no sample
 * pending). Returns 0 or PD_EINVAL. */
int pkg_cmaf_discont(pkg_cmaf_t *c);

/* Frees the muxer without writing a trailer; *c set to NULL. */
void pkg_cmaf_close(pkg_cmaf_t **c);

/* ---- index ------------------------------------------------------------ */

typedef struct pkg_part_s {
    pd_buf_t *buf;     /* moof+mdat; NULL once dropped from memory, and
                          always NULL for a gap part */
    int64_t dur;       /* ticks */
    bool independent;
    bool gap;          /* no media: the track had a hole here */
} pkg_part_t;

typedef struct pkg_seg_s {
    int64_t msn;
    pkg_part_t *parts; /* published parts, in order */
    int nparts, cap;
    bool complete;
    int64_t start;     /* ticks: dts of the first sample */
    int64_t start_pts; /* ticks: pts of the first real sample (start until
                          one is written); followers place by it */
    int64_t dur;       /* ticks: sum of the parts */
    int64_t pdt_us;    /* wallclock of its first frame */
    bool discontinuity;
    bool gap;          /* complete and every part a gap part (no bytes) */
    int64_t disc_seq;  /* its discontinuity sequence number */
    unsigned init_id;  /* "init-<id>.mp4": the MSN of the first segment
                          that used that init section */
    pd_buf_t *buf;     /* the parts concatenated (complete segments; NULL
                          for a gap segment) */
    int64_t bytes;     /* bytes of media (parts) */
    int64_t frames;    /* samples */
    int64_t removed_edge_us;   /* edge_us when it left the window; -1 */
    int64_t parts_gone_edge_us;/* edge_us when its parts left; -1 */
} pkg_seg_t;

typedef struct pkg_waiter_s pkg_waiter_t;

enum { PKG_W_CONTENT, PKG_W_PLAYLIST, PKG_W_PART, PKG_W_MV };

struct pkg_waiter_s {
    pkg_waiter_t *prev, *next;
    pkg_waiter_t **head;   /* the list it is on (NULL: not on a list) */
    pkg_wake_pt wake;
    void *opaque;
    int64_t deadline_us;   /* monotonic */
    int kind;              /* PKG_W_* */
    int64_t msn, part;     /* what it waits for (part -1: msn only) */
    pkg_wake_t why;        /* set when collected for waking */
};

typedef struct pkg_aframe_s { /* a queued audio frame (writer) */
    uint8_t *data;         /* NULL for a gap entry */
    size_t len;
    int64_t dts;           /* ticks; a gap entry: start of what is left */
    int64_t gap_end;       /* ticks: a gap entry's end; 0 for a frame */
    int64_t arrival_us;    /* a gap entry: arrival of the frame after it */
    bool hole_checked;     /* a hole before it was looked for (once) */
} pkg_aframe_t;

typedef struct pkg_bound_s {  /* a video part boundary, for the audio */
    int64_t end90;         /* 90 kHz: end of the video part */
    int64_t msn;
    bool seg_end;          /* last part of its segment */
} pkg_bound_t;

typedef struct pkg_vframe_s { /* a follower frame waiting for the lead */
    uint8_t *data;
    size_t len;
    int64_t dts, pts, dur;  /* ticks */
    bool key;
    int64_t arrival_us;
} pkg_vframe_t;

typedef struct pkg_rend_s {
    char name[32];          /* the rung's name ("source", "720p", ...) or
                               "audio" */
    pkg_media_t media;
    int index;              /* in stream->rends */
    int timescale;          /* ticks per second */

    bool active;            /* a track of the current session (writer) */
    bool follower;          /* a video rung that is not the lead: it takes
                               its segment boundaries (and MSNs) from the
                               lead's segments (writer.c, ladder) */
    bool encoded;           /* fed by the transcoder, not the source */
    int rung;               /* its index in stream->rungs; -1 audio */
    uint8_t *own_extra;     /* encoded rungs: the encoder's avcC (writer) */
    size_t own_len;
    bool own_changed;       /* differs from what the muxer was opened with */
    bool shed;              /* the transcoder gave this rung up: it gets gap
                               segments mirroring the lead's (writer) */
    bool dropping;          /* the transcoder dropped frames of it */
    pkg_vframe_t fq[PKG_FQ_MAX]; /* follower frames waiting for the lead */
    int fq_head, fq_n;
    size_t fq_bytes;

    /* description (stream lock) */
    char codecs[32];
    int width, height;
    pkg_aac_info_t aac;

    /* muxer and cutting state (writer) */
    pkg_cmaf_t *mux;
    unsigned cur_init_id;    /* id of the muxer's init; 0 none yet */
    bool mux_discont;        /* the next real sample follows a gap: its
                                fragment gets its own tfdt */
    bool have_held;          /* one frame held back (video) */
    uint8_t *held;           /* its bytes (own copy), capacity held_cap */
    size_t held_len, held_cap;
    int64_t held_dts, held_pts, held_arrival;
    bool held_key;
    int64_t last_dts;        /* ticks of the last mapped frame; -1 none */
    int64_t last_dur;        /* ticks: last known frame duration */
    int64_t tl_end;          /* ticks: end of the output so far */
    pkg_seg_t *cur;          /* segment being filled (also in segs[]) */
    int64_t part_start, part_dur, part_frames, part_bytes;
    bool part_indep;
    bool part_open;
    bool part_gap;           /* the open part is a gap part (no frames) */
    bool seg_real;           /* cur holds a real sample */
    bool disc_pending;       /* non-lead: a discontinuity is owed to the
                                first segment it begins at or after
                                stream->disc_msn */
    int64_t offset_ms;       /* publisher dts + offset = output ms; all
                                tracks start a session with the same one,
                                each re-bases only on its own jump */
    bool self_timed;         /* audio cutting on its own */
    int64_t next_msn;        /* audio: msn after its last closed segment */
    int64_t last_key_dts;    /* ticks of the last keyframe; -1 */
    bool seen;               /* a frame arrived this session */
    int64_t last_arrival_us; /* wallclock arrival of the last frame */
    pkg_aframe_t aq[PKG_AQ_MAX]; /* audio waiting for video boundaries */
    int aq_head, aq_n;
    size_t aq_bytes;         /* bytes of the queued frames, bounded by
                                PKG_AQ_BYTES */

    /* index (stream lock) */
    pkg_seg_t **segs;        /* retained segments, oldest first */
    int nsegs, segs_cap;
    int64_t first_listed;    /* msn of the first listed segment; 0 none */
    int64_t last_msn;        /* L: last complete msn; 0 none */
    int64_t pm, pn;          /* last published part (msn, index); -1 */
    int64_t edge_us;         /* us of complete content ever published */
    struct pkg_init_s { unsigned id; pd_buf_t *buf; } *inits; /* oldest
                                first; the last one is the current one */
    int ninits, inits_cap;   /* ninits <= PKG_MAX_INITS */
    int64_t total_bytes;     /* over the stream's life */
    int64_t total_dur;       /* ticks, complete segments */
    int64_t total_frames;
    pd_buf_t *pl_full;       /* rendered playlists (NULL until content) */
    pd_buf_t *pl_delta;
    pkg_waiter_t *waiters;
} pkg_rend_t;

typedef enum { PKG_LIVE = 0, PKG_GRACE, PKG_ENDED } pkg_state_t;

struct pkg_stream_s {
    pkg_t *pkg;
    char name[PKG_NAME_MAX];
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_mutex_t wlock;   /* the writer lock: everything marked
                                "writer" is touched under it (the ingest
                                thread and the transcoder's threads write) */

    /* stream lock */
    pkg_state_t state;
    bool removed;            /* out of the registry */
    int64_t deadline_us;     /* monotonic: end of grace / linger */
    bool publisher;          /* a publisher is attached */
    pkg_rend_t *rends[PKG_MAX_RENDS];
    int nrends;
    int lead;                /* index of the rendition that cuts */
    int td_s;                /* TARGETDURATION, 0 until fixed */
    bool all_indep;          /* every video segment so far began with a
                                sync sample (sticky false) */
    pd_buf_t *mv;            /* multivariant (NULL until content) */
    pkg_waiter_t *mv_waiters;
    int64_t disc_msn;        /* msn that carries the last discontinuity */

    /* ladder (writer; rungs[] fixed for the stream's life at the first
     * video keyframe, read under the stream lock afterwards) */
    bool ladder_fixed;
    pkg_rung_t rungs[PD_LADDER_MAX]; /* resolved, highest first */
    int nrungs;
    int rung_rend[PD_LADDER_MAX];    /* rungs[i] -> index in rends[] */
    int tc_rung[PD_LADDER_MAX];      /* transcoder rung j -> rungs[] index */
    int ntc;                 /* encoded rungs (transcoder rungs) */
    pkg_tc_t *tc;            /* this session's transcoder (NULL: none) */
    bool tc_failed;          /* it could not start this session */
    /* audio re-encoding (this session's audio is not AAC at the audio
     * rendition's sample rate): the source audio goes to atc, whose AAC
     * comes back through the callbacks as the audio track */
    bool audio_tc;
    pkg_codec_t src_acodec;  /* the publisher's audio codec */
    uint8_t *src_aextra;     /* its configuration (AAC: ASC; MP3: NULL) */
    size_t src_alen;
    pkg_tc_t *atc;
    bool atc_failed;
    bool logged_tc, logged_ahead;

    /* writer */
    char peer[64];
    unsigned session;        /* publish count */
    bool tracks_fixed;       /* this session's tracks are decided */
    bool declared[2];        /* config declared this session, by media */
    pkg_codec_t decl_codec[2];  /* the declared configuration, by media */
    uint8_t *decl_extra[2];
    size_t decl_len[2];
    bool decl_changed[2];    /* differs from what the muxer was opened with */
    bool disc_next;          /* next segment starts a discontinuity */
    bool rebase_next;        /* next frame re-bases the timeline */
    int64_t offset_ms;       /* the session's first offset (ms), given to
                                every track (see pkg_rend_t.offset_ms) */
    bool logged_reject, logged_kf, logged_rebase, logged_track;
    bool logged_abig, logged_aq, logged_gap;
    int hint_w, hint_h;
    double hint_fps;         /* onMetaData frame rate (informational) */
    pkg_bound_t bq[PKG_BQ_MAX]; /* video boundaries for the audio */
    int bq_head, bq_n;
    int64_t next_msn;        /* msn of the next segment to begin */
};

struct pkg_s {
    const pd_config_t *cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t hk;
    bool hk_running;
    bool stop;
    atomic_bool shut;        /* pkg_shutdown() ran */
    pkg_stream_t **streams;
    int nstreams, cap;
    atomic_long nwaiters;
    atomic_llong parts_published;
    atomic_llong last_publish_us;
    /* a new stream's first MSN is max(1, msn_clock_ms() / segment target)
     * and above the last MSN a removed stream of the same name used
     * (pkg->lock) */
    pkg_sink_t sink;         /* recording observer (all NULL: none); set
                                before any publish, read-only after */
    int64_t (*msn_clock_ms)(void); /* wallclock ms; tests may replace it
                                      before the first publish */
    struct { uint64_t name_hash; int64_t last_msn; } tombs[PKG_TOMBS];
    int ntombs, tomb_next;   /* ring: the oldest entry is overwritten */
};

/* ---- index.c ---------------------------------------------------------- */

/* Finds a retained segment by msn (stream lock). NULL if not retained. */
pkg_seg_t *pkg_idx_find(const pkg_rend_t *r, int64_t msn);

/* Appends a new, empty in-progress segment (writer, takes the stream
 * lock itself). Returns it, or NULL on allocation failure. */
pkg_seg_t *pkg_idx_begin(pkg_stream_t *s, pkg_rend_t *r, int64_t msn,
                         int64_t start, int64_t pdt_us, bool disc,
                         unsigned init_id);

/* Publishes one part (consumes *part, may be NULL) into r->cur and, when
 * complete, completes the segment. gap: a gap part of dur ticks (no
 * bytes; *part must be NULL). Re-renders the playlists, collects the
 * waiters that became ready and wakes them after unlocking. Writer. */
int pkg_idx_publish(pkg_stream_t *s, pkg_rend_t *r, pd_buf_t **part,
                    int64_t dur, int64_t frames, bool indep, bool gap,
                    bool complete);

/* Stores an init segment (consumes *init) under id (an existing entry with
 * that id is replaced) and drops the inits no retained segment uses.
 * Writer. */
void pkg_idx_add_init(pkg_stream_t *s, pkg_rend_t *r, unsigned id,
                      pd_buf_t **init);

/* Re-renders every playlist of the stream (stream lock held). */
void pkg_idx_render_all(pkg_stream_t *s);

/* Is the waiter's condition met (stream lock held)? */
bool pkg_idx_waiter_ready(const pkg_stream_t *s, const pkg_rend_t *r,
                          const pkg_waiter_t *w);

/* Normalises a blocking request's (M, P): a part index past the last part
 * of a complete segment M means (M+1, 0). P -1 (msn only) is left alone.
 * Stream lock held. */
void pkg_idx_normalise(const pkg_rend_t *r, int64_t *msn, int64_t *part);

/* Readiness of a blocking playlist request (M, P) (P -1: msn only). */
bool pkg_idx_playlist_ready(const pkg_rend_t *r, int64_t msn, int64_t part);

/* Frees a rendition and everything it holds (no lock needed: last ref). */
void pkg_rend_free(pkg_rend_t *r);

/* ---- registry.c ------------------------------------------------------- */

/* Unlinks every waiter of the list for which pick(s, r, w) (or all, with
 * pick NULL) holds, stamps it with why and pushes it on *out (singly
 * linked through next). Stream lock held. */
void pkg_waiters_collect(pkg_stream_t *s, pkg_rend_t *r, pkg_waiter_t **list,
                         pkg_wake_t why, bool all, pkg_waiter_t **out);

/* Calls and frees the collected waiters. No lock may be held. */
void pkg_waiters_fire(pkg_t *pkg, pkg_waiter_t *out);

/* ---- writer.c --------------------------------------------------------- */

/* Ends the session: places the held frames, closes the segment in
 * progress, frees the muxers. Writer, no lock held. */
void pkg_writer_finish(pkg_stream_t *s);

/* Detaches the session's transcoders (video, audio; NULL if none) for the
 * caller to destroy with no lock held; takes the writer lock itself. */
void pkg_writer_take_tc(pkg_stream_t *s, pkg_tc_t **video, pkg_tc_t **audio);

/* Frees writer-side buffers of a rendition (held frame, audio queue). */
void pkg_writer_free_rend(pkg_rend_t *r);

#endif
