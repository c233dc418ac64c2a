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
