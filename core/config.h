/*
 * core/config.h - podium's configuration.
 *
 * One plain struct with every setting; pd_config_defaults() fills the
 * documented defaults (README lists them), pd_config_load() overlays a
 * libconfig file, and main() overlays command-line options. The struct is
 * filled before any module starts and read-only afterwards, so modules may
 * keep a pointer to it.
 */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* One rung of the transcoding ladder as configured (the `ladder` list of
 * the config file; README documents the default). */
#define PD_LADDER_MAX 8
typedef struct pd_rung_s {
    char name[32];          /* rendition name, also its URL path segment:
                               [a-z0-9_-], 1-31 chars, unique */
    bool passthrough;       /* the source as is (at most one rung; the
                               fields below are then ignored) */
    int height;             /* short side in pixels (720 for "720p"; a
                               portrait source gets this as its width) */
    int fps;                /* highest frame rate; 0 = the source's */
    int bitrate_kbps;       /* x264 target bitrate */
    int maxrate_kbps;       /* VBV max rate; 0 = bitrate_kbps */
    int bufsize_kbps;       /* VBV buffer size; 0 = maxrate */
    char profile[16];       /* "baseline", "main" or "high" */
    int level;              /* H.264 level x 10 (31 = 3.1); 0 = the lowest
                               that fits size, frame rate and maxrate */
} pd_rung_t;

typedef struct pd_config_s {
    /* network */
    char bind_addr[64];     /* address both listeners bind, "0.0.0.0" */
    int rtmp_port;          /* 1935; 0 = pick a free port */
    int http_port;          /* 8080; 0 = pick a free port */
    char data_dir[512];     /* "./data" (used by storage later) */
    char www_dir[512];      /* directory holding hls.min.js for the player */
    int log_level;          /* PD_LOG_* */

    /* packager (all times in milliseconds) */
    int part_target_ms;     /* 334: PART-TARGET; parts hold whole frames */
    int segment_target_ms;  /* 2000: segments cut at the first keyframe
                               at or after this duration */
    int window_segments;    /* 12: segments listed in a live playlist (>= 6,
                               and >= 3 target durations) */
    int part_window_segments; /* 3: complete segments whose parts are still
                               listed (plus the segment in progress) */
    int grace_period_ms;    /* 30000: a stream whose publisher left waits
                               this long for a reconnect before ENDLIST */
    int linger_ms;          /* 60000: an ended stream is served (with
                               ENDLIST) this long, then removed */

    /* transcoding (packager) */
    pd_rung_t ladder[PD_LADDER_MAX]; /* rungs, highest first; default:
                               source (passthrough), 720p, 480p, 360p */
    int nrungs;             /* entries used in ladder[] (>= 1) */
    int transcode;          /* 1: encode the ladder's rungs; 0: publish the
                               source only (as the passthrough rung's
                               name, "source" if the ladder has none) */
    char x264_preset[16];   /* "veryfast": libx264 preset of every rung */
    int encoder_threads;    /* x264 threads per rung; 0 = auto (cores /
                               encoded rungs, at least 1) */
    int decode_threads;     /* libavcodec decoder threads; 0 = auto */
    char shed_order[16];    /* which rung goes first when the machine
                               cannot keep up: "largest" (frees the most
                               CPU) or "smallest" (keeps quality) */
    int audio_bitrate_kbps; /* 128: AAC bitrate when the source's audio
                               is re-encoded (not AAC, or another sample
                               rate than the stream's audio rendition) */

    /* catalogue, keys, hooks (storage) */
    char db_path[512];      /* "" = <data_dir>/podium.db */
    char auth[8];           /* "keys": a publisher must present a valid
                               stream key; "open": anyone may publish
                               (local use; logged loudly) */
    char on_publish_url[512]; /* "" = none: POSTed synchronously before a
                               publish is accepted; non-2xx refuses */
    int on_publish_timeout_ms; /* 2000 */
    int api_max_body;       /* 65536: bytes of an /api/ request body */
    int recording;          /* 1: record every session (VOD afterwards) */
    int rec_max_age_s;      /* 0 = keep forever: delete older recordings */
    int rec_max_mb;         /* 0 = no limit: delete the oldest recordings
                               beyond this many MiB in total */

    /* playback protection (storage, httpd; core/token.h) */
    int signed_playback;    /* 1: every stream needs a signed URL; 0 (the
                               default): only streams so marked in the
                               catalogue (podium playback protect NAME) */
    char playback_key[132]; /* hex HMAC key (32-128 digits) CDNs share;
                               "" = <data_dir>/playback.key, made at
                               first start. A secret: never printed */
    char playback_token_param[32]; /* "token": the query parameter that
                               carries a token ("hdnts" for Akamai) */

    /* ingest limits */
    int max_publishers;     /* 64 concurrent RTMP connections */
    int rtmp_max_chunk_size;   /* 65536: largest chunk size a peer may set */
    int rtmp_max_message_size; /* 8 MiB: largest RTMP message accepted */
    int rtmp_handshake_timeout_ms; /* 5000 */
    int rtmp_idle_timeout_ms;      /* 10000: no complete message for this
                                      long closes the connection */

    /* httpd */
    int http_threads;       /* 2: libmicrohttpd thread pool size */
    int http_max_connections; /* 20000 */
    int max_waiters;        /* 20000 suspended blocking requests in all */
    int cache_media_s;      /* 86400: max-age of parts, segments, inits */
    int cache_error_s;      /* 1: max-age of error answers */
} pd_config_t;

/* Fills c with the defaults. */
void pd_config_defaults(pd_config_t *c);

/* Overlays the settings of the libconfig file at path onto c (settings
 * absent from the file keep their value). On error returns PD_EINVAL and
 * writes a one-line message (file, line, reason) into err. Borrows path. */
int pd_config_load(pd_config_t *c, const char *path, char *err, size_t errlen);

/* Applies one "KEY=VALUE" (the --set option) with the file's syntax and
 * checks. Returns PD_EINVAL with a message in err. Borrows assignment. */
int pd_config_set(pd_config_t *c, const char *assignment, char *err,
                  size_t errlen);

/* Prints every setting in the file's syntax (podium --print-config). */
void pd_config_print(const pd_config_t *c, FILE *out);

/* Checks ranges and cross-field rules (e.g. part target below segment
 * target). On error returns PD_EINVAL with a message in err. */
int pd_config_validate(const pd_config_t *c, char *err, size_t errlen);

#endif
