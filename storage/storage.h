/*
 * storage/storage.h - podium's catalogue (sqlite3), stream keys, API
 * tokens, sessions and webhooks.
 *
 * One sqlite3 database in WAL mode (cfg->db_path, default
 * <data_dir>/podium.db), created and migrated by podium itself: the schema
 * version is PRAGMA user_version, each migration runs in one transaction,
 * an older database is upgraded in place, a newer one is refused. On open,
 * sessions left open by a crash are closed as ended ("crash").
 *
 * Secrets (stream keys, API tokens) are random (OpenSSL RAND_bytes),
 * shown once at creation and stored only as SHA-256 hashes; a check
 * compares hashes in constant time. Secrets are never logged.
 *
 * Threads: every function is thread-safe (one connection, serialised by a
 * mutex; queries are short). Webhooks are sent by one worker thread from a
 * bounded queue; st_event() never blocks on the network.
 */
#ifndef ST_STORAGE_H
#define ST_STORAGE_H

#include "../core/buf.h"
#include "../core/config.h"
#include "../core/token.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_s st_t;

#define ST_SCHEMA_VERSION 4
#define ST_SECRET_MAX 64 /* bytes of a secret's text form incl. NUL */

/* ---- lifecycle -------------------------------------------------------- */

/* Opens (creating directories and the file as needed) and migrates the
 * database at path (NULL: cfg->db_path), closes crashed sessions, starts
 * the webhook worker. Borrows cfg (must outlive st). Returns 0, PD_EIO
 * (cannot open/create: message logged), PD_EINVAL (a newer schema) or
 * PD_ENOMEM. */
int st_open(const pd_config_t *cfg, const char *path, st_t **out);

/* The configuration st was opened with (borrowed). */
const pd_config_t *st_config(const st_t *st);

/* Stops the worker (pending webhooks get at most 1 s), closes the
 * database; *st set to NULL. Idempotent. */
void st_close(st_t **st);

/* ---- stream keys ------------------------------------------------------ */

typedef struct st_key_s {
    int64_t id;
    char stream[256];       /* "live/<name>" the key may publish */
    char label[128];        /* free text, may be empty */
    int64_t created_us;     /* wallclock */
    int64_t revoked_us;     /* 0: active */
    int64_t last_used_us;   /* 0: never */
} st_key_t;

/* Creates a key for stream ("live/<name>", validated like a publish name).
 * Writes its secret ("pk_" + 43 base64url chars) into secret (size >=
 * ST_SECRET_MAX) and its id into *id. */
int st_key_create(st_t *st, const char *stream, const char *label,
                  char *secret, size_t secret_size, int64_t *id);

/* All keys, newest first; *out is malloc'ed (caller frees), *n entries.
 * No secrets. */
int st_key_list(st_t *st, st_key_t **out, int *n);

/* Revokes key id (a revoked key cannot start a new publish; a live
 * publisher is not cut). PD_ENOENT if there is no such key. */
int st_key_revoke(st_t *st, int64_t id);

/* Publishing check. stream: "live/<name>" the publisher asked for; key:
 * the key it presented (NULL or "" if none). Key-as-name (how OBS users
 * enter it): when key is empty and <name> itself is a valid active key,
 * the key's stream is written to stream (size stream_size) and 0
 * returned. Returns 0 (allowed: the key is active and for this stream),
 * PD_EPERM (no key, unknown, revoked, or for another stream). Records
 * last use. */
int st_key_check(st_t *st, char *stream, size_t stream_size,
                 const char *key);

/* ---- API tokens ------------------------------------------------------- */

typedef struct st_token_s {
    int64_t id;
    char label[128];
    int64_t created_us, revoked_us, last_used_us;
} st_token_t;

/* Like keys, secrets "pt_..." */
int st_token_create(st_t *st, const char *label, char *secret,
                    size_t secret_size, int64_t *id);
int st_token_list(st_t *st, st_token_t **out, int *n);
int st_token_revoke(st_t *st, int64_t id);
/* 0 if secret is an active token, PD_EPERM otherwise. */
int st_token_check(st_t *st, const char *secret);

/* ---- streams and sessions ---------------------------------------------- */

typedef struct st_session_s {
    int64_t id;
    char stream[256];
    char peer[64];
    int64_t started_us, ended_us; /* ended 0: live */
    char end_reason[32];          /* "left", "crash", "shutdown" */
    char codecs[128];             /* e.g. "avc1.64001f,mp4a.40.2" */
    char renditions[256];         /* comma-separated names */
} st_session_t;

/* A publisher started (or resumed) stream; *id = the session's id. */
int st_session_start(st_t *st, const char *stream, const char *peer,
                     int64_t *id);
/* Fills in what became known (either may be NULL). */
int st_session_describe(st_t *st, int64_t id, const char *codecs,
                        const char *renditions);
/* The publisher left (reason "left") or podium stops ("shutdown"). */
int st_session_end(st_t *st, int64_t id, const char *reason);
/* Sessions, newest first, at most limit (live ones first when
 * live_only); caller frees *out. */
int st_session_list(st_t *st, bool live_only, int limit,
                    st_session_t **out, int *n);

/* ---- webhooks ---------------------------------------------------------- */

typedef struct st_hook_s {
    int64_t id;
    char url[512];          /* http(s)://... */
    char events[128];       /* comma-separated, or "*" */
    int64_t created_us;
} st_hook_t;

/* Subscribes url to events ("stream.started,stream.ended,
 * recording.ready" or "*"); secret signs the deliveries (HMAC-SHA256,
 * header X-Podium-Signature: t=<unix s>,v1=<hex of HMAC(secret,
 * "<t>.<body>")>). Only http/https URLs. */
int st_hook_create(st_t *st, const char *url, const char *events,
                   const char *secret, int64_t *id);
int st_hook_list(st_t *st, st_hook_t **out, int *n);
int st_hook_delete(st_t *st, int64_t id);

/* Queues event type with a JSON object body (borrowed; it gets "event"
 * and "time" added) for every subscription that wants it. Never blocks;
 * when the queue (ST_HOOK_QUEUE deliveries) is full the event is dropped
 * and counted. Deliveries retry with back-off (1, 2, 4, 8, 16 s) on a
 * connection error or a non-2xx answer, then give up (logged). */
#define ST_HOOK_QUEUE 1024
void st_event(st_t *st, const char *type, const char *json_object);

/* The synchronous on_publish hook (cfg->on_publish_url, empty = none):
 * POSTs {"stream":...,"peer":...} and waits at most
 * cfg->on_publish_timeout_ms. Returns 0 (2xx: allowed, or no hook),
 * PD_EPERM (any other answer, or no answer in time). */
int st_on_publish(st_t *st, const char *stream, const char *peer);

/* Signature header value for body at unix time t (tests, and the worker).
 * out: >= 96 bytes. */
int st_sign(const char *secret, int64_t t, const char *body, size_t len,
            char *out, size_t outlen);

typedef struct st_stats_s {
    int64_t hooks_sent, hooks_failed, hooks_dropped, hooks_queued;
} st_stats_t;
void st_get_stats(st_t *st, st_stats_t *out);

/* ---- recordings ---------------------------------------------------------
 * Every published init and segment of every rendition of a session is
 * written by one storage thread (bounded queue: ST_REC_QUEUE items and
 * ST_REC_BYTES bytes; live serving never waits for the disk) to
 * <data_dir>/recordings/<recording id>/<rendition>/init-<n>.mp4 and
 * <msn>.m4s: a temporary name, fsync, rename, fsync of the directory,
 * and only then a row in rec_segments (so an indexed file is always
 * whole on disk; temporary files are deleted on open). A full queue or a
 * write error (disk full) stops that recording with one log line and a
 * counter; the live stream goes on. Retention (cfg->rec_max_age_s,
 * cfg->rec_max_mb; 0 = unlimited) deletes the oldest ended recordings
 * (files, then rows) on open and every minute. */

#define ST_REC_QUEUE 4096
#define ST_REC_BYTES (256u << 20)

#include "../packager/packager.h"

/* The packager observer that feeds the recorder (pkg_set_sink(pkg,
 * st_rec_sink(st))). Valid while st is open. */
const pkg_sink_t *st_rec_sink(st_t *st);

/* A session began on stream (after st_session_start): its frames from
 * now on go to a new recording of that session, if cfg->recording. */
void st_rec_begin(st_t *st, const char *stream, int64_t session_id);

/* The session's publisher left: the recording is closed once its queued
 * items are written (ended_us set) and a "recording.ready" webhook is
 * sent with {"recording","stream","session","url"} (url: the VOD
 * multivariant, "/vod/<id>/index.m3u8"). */
void st_rec_end(st_t *st, const char *stream);

typedef struct st_rec_s {
    int64_t id, session_id;
    char stream[256];
    int64_t started_us, ended_us; /* ended 0: still recording */
    int64_t bytes;
    int64_t duration_us;          /* of its longest rendition */
    char renditions[256];         /* comma-separated */
} st_rec_t;

/* Recordings, newest first (at most limit); caller frees *out. */
int st_rec_list(st_t *st, int limit, st_rec_t **out, int *n);
/* Deletes a recording (files, then rows). PD_ENOENT if none; PD_EAGAIN
 * if it is still recording. */
int st_rec_delete(st_t *st, int64_t id);

/* The stream ("live/<name>") recording id belongs to, into stream
 * (size >= 256), and when it ended (*ended_us, 0: still recording).
 * PD_ENOENT if there is no such recording. */
int st_rec_stream(st_t *st, int64_t id, char *stream, size_t size,
                  int64_t *ended_us);

/* A counter bumped before and after any recording is deleted (API or
 * retention): whatever was derived from the catalogue's recordings under
 * an older value, or while it moved, may describe a deleted one. Any
 * thread; no database access. */
uint64_t st_rec_generation(st_t *st);

/* VOD playlists of recording id, rendered from the index: rendition
 * NULL = the multivariant (one variant per video rendition with
 * BANDWIDTH/AVERAGE-BANDWIDTH from the recorded bytes, CODECS,
 * RESOLUTION, the audio group); else that rendition's media playlist
 * (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-MAP per init, EXT-X-DISCONTINUITY,
 * EXT-X-PROGRAM-DATE-TIME, EXTINF, EXT-X-ENDLIST once ended). *out: a new
 * buffer. PD_ENOENT if unknown. */
int st_vod_playlist(st_t *st, int64_t id, const char *rendition,
                    pd_buf_t **out);

/* The on-disk path of an indexed file of recording id (file is
 * "init-<n>.mp4" or "<msn>.m4s", validated; nothing else is served).
 * PD_ENOENT if it is not indexed. */
int st_vod_file(st_t *st, int64_t id, const char *rendition,
                const char *file, char *path, size_t path_size);

typedef struct st_rec_stats_s {
    int64_t written, bytes, dropped, errors; /* items, bytes */
    int64_t disk_full;   /* recordings stopped by ENOSPC / EDQUOT */
    bool stopped_full;   /* a recording was stopped by a write error
                            (disk full or another) since start */
} st_rec_stats_t;
void st_rec_get_stats(st_t *st, st_rec_stats_t *out);

/* ---- playback protection -------------------------------------------------
 * A protected stream's playlists, parts, segments and inits (live, and its
 * recordings under /vod/) are served only with a valid signed token
 * (core/token.h) in the query parameter cfg->playback_token_param. A
 * stream is protected when cfg->signed_playback is set (every stream) or
 * the catalogue marks it (st_playback_set). The marks are kept in memory
 * too, so a check never touches the database. */

/* Marks stream ("live/<name>", validated like a publish name) as needing
 * signed URLs (on) or not. Returns 0, PD_EINVAL, or a storage error. */
int st_playback_set(st_t *st, const char *stream, bool on);

/* True if stream ("live/<name>") needs a signed URL. Any thread; no
 * database access. */
bool st_playback_signed(st_t *st, const char *stream);

/* True if any stream may need a signed URL (cfg->signed_playback, or at
 * least one mark): lets callers skip the work of finding a stream's
 * name. Any thread; no database access. */
bool st_playback_any(st_t *st);

/* The streams marked in the catalogue (sorted); *out is malloc'ed
 * (caller frees), each entry a "live/<name>" string of 256 bytes. */
int st_playback_list(st_t *st, char (**out)[256], int *n);

/* Makes a token for acl (token.h: patterns joined by '!') valid for
 * ttl_s seconds from now (1 .. 10 years), with the catalogue's key, into
 * out (size >= PD_TOKEN_MAX + 1). Returns 0, PD_EINVAL (acl, ttl) or
 * PD_ENOENT (no key). */
int st_playback_sign(st_t *st, const char *acl, int64_t ttl_s, char *out,
                     size_t outsize);

/* The playback decision for a request of path (the decoded URL path)
 * belonging to stream ("live/<name>"; NULL: a stream not known, e.g. the
 * recording asked for does not exist, checked as if protected so that
 * 403/404 tell nothing about protected objects): 0 if stream is not
 * protected or token (NULL if absent) is valid for path now; PD_EPERM
 * otherwise, with *why (may be NULL) saying why. Any thread. */
int st_playback_check(st_t *st, const char *stream, const char *path,
                      const char *token, pd_token_why_t *why);

/* ---- CLI --------------------------------------------------------------- */

/* `podium keys create <name> [--label L] | list | revoke <id>`,
 * `podium tokens create [--label L] | list | revoke <id>` and
 * `podium playback protect|unprotect <name> | list | sign <acl> [--ttl S]`:
 * argv[0] is "keys", "tokens" or "playback". Prints to stdout (the secret once, on create).
 * Returns the process exit status (0, 1 error, 2 usage). */
int st_cli(const pd_config_t *cfg, int argc, char **argv);

#endif
