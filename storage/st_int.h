/*
 * storage/st_int.h - storage's internals, shared by its files (db.c,
 * keys.c, sessions.c, hooks.c, cli.c). Not for other modules.
 */
#ifndef ST_INT_H
#define ST_INT_H

#include "storage.h"

#include "../core/token.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#define ST_MOD "store"

/* The schema, one entry per version: MIGRATIONS[v - 1] takes a database
 * from user_version v - 1 to v, in one transaction (db.c). Never edit a
 * released entry; append a new one and bump ST_SCHEMA_VERSION. */
#define ST_SCHEMA_V1                                                         \
    "CREATE TABLE keys ("                                                    \
    " id INTEGER PRIMARY KEY,"                                               \
    " stream TEXT NOT NULL,"                                                 \
    " label TEXT NOT NULL DEFAULT '',"                                       \
    " hash TEXT NOT NULL UNIQUE,"          /* hex SHA-256 of the secret */   \
    " created_us INTEGER NOT NULL,"                                          \
    " revoked_us INTEGER NOT NULL DEFAULT 0,"                                \
    " last_used_us INTEGER NOT NULL DEFAULT 0);"                             \
    "CREATE INDEX keys_stream ON keys(stream);"                              \
    "CREATE TABLE tokens ("                                                  \
    " id INTEGER PRIMARY KEY,"                                               \
    " label TEXT NOT NULL DEFAULT '',"                                       \
    " hash TEXT NOT NULL UNIQUE,"                                            \
    " created_us INTEGER NOT NULL,"                                          \
    " revoked_us INTEGER NOT NULL DEFAULT 0,"                                \
    " last_used_us INTEGER NOT NULL DEFAULT 0);"                             \
    "CREATE TABLE sessions ("                                                \
    " id INTEGER PRIMARY KEY,"                                               \
    " stream TEXT NOT NULL,"                                                 \
    " peer TEXT NOT NULL DEFAULT '',"                                        \
    " started_us INTEGER NOT NULL,"                                          \
    " ended_us INTEGER NOT NULL DEFAULT 0,"                                  \
    " end_reason TEXT NOT NULL DEFAULT '',"                                  \
    " codecs TEXT NOT NULL DEFAULT '',"                                      \
    " renditions TEXT NOT NULL DEFAULT '');"                                 \
    "CREATE INDEX sessions_stream ON sessions(stream, started_us);"          \
    "CREATE TABLE hooks ("                                                   \
    " id INTEGER PRIMARY KEY,"                                               \
    " url TEXT NOT NULL,"                                                    \
    " events TEXT NOT NULL,"                                                 \
    " secret TEXT NOT NULL,"   /* HMAC key: must be readable to sign */      \
    " created_us INTEGER NOT NULL);"                                         \
    "CREATE TABLE recordings ("                                              \
    " id INTEGER PRIMARY KEY,"                                               \
    " session_id INTEGER NOT NULL REFERENCES sessions(id),"                  \
    " stream TEXT NOT NULL,"                                                 \
    " dir TEXT NOT NULL,"      /* below <data_dir>/recordings */             \
    " started_us INTEGER NOT NULL,"                                          \
    " ended_us INTEGER NOT NULL DEFAULT 0,"                                  \
    " bytes INTEGER NOT NULL DEFAULT 0);"                                    \
    "CREATE TABLE rec_segments ("                                            \
    " id INTEGER PRIMARY KEY,"                                               \
    " recording_id INTEGER NOT NULL REFERENCES recordings(id)"               \
    "  ON DELETE CASCADE,"                                                   \
    " rendition TEXT NOT NULL,"                                              \
    " msn INTEGER NOT NULL,"                                                 \
    " kind TEXT NOT NULL,"     /* 'init' or 'segment' */                     \
    " file TEXT NOT NULL,"     /* relative to the recording's dir */         \
    " duration_us INTEGER NOT NULL DEFAULT 0,"                               \
    " pdt_us INTEGER NOT NULL DEFAULT 0,"                                    \
    " discontinuity INTEGER NOT NULL DEFAULT 0,"                             \
    " init_file TEXT NOT NULL DEFAULT '',"                                   \
    " bytes INTEGER NOT NULL,"                                               \
    " UNIQUE(recording_id, rendition, kind, msn));"

/* v2: what the recorder learned of each recorded rendition (the VOD
 * multivariant's CODECS and RESOLUTION). */
#define ST_SCHEMA_V2                                                         \
    "CREATE TABLE rec_renditions ("                                          \
    " recording_id INTEGER NOT NULL REFERENCES recordings(id)"               \
    "  ON DELETE CASCADE,"                                                   \
    " rendition TEXT NOT NULL,"                                              \
    " codecs TEXT NOT NULL DEFAULT '',"                                      \
    " width INTEGER NOT NULL DEFAULT 0,"                                     \
    " height INTEGER NOT NULL DEFAULT 0,"                                    \
    " PRIMARY KEY(recording_id, rendition));"

/* v3: per-stream settings (playback.c): streams whose playback needs a
 * signed URL. */
#define ST_SCHEMA_V3                                                         \
    "CREATE TABLE stream_settings ("                                         \
    " stream TEXT PRIMARY KEY,"                                              \
    " signed_playback INTEGER NOT NULL DEFAULT 0,"                           \
    " updated_us INTEGER NOT NULL);"

/* v4: counters that never go back (rec.c): a recording's id (and so its
 * /vod/<id>/ URLs and its directory) is never given to another recording,
 * even after the newest one was deleted (INTEGER PRIMARY KEY alone would
 * reuse max(id) + 1, and CDNs keep VOD answers for a day). */
#define ST_SCHEMA_V4                                                         \
    "CREATE TABLE counters ("                                                \
    " name TEXT PRIMARY KEY,"                                                \
    " value INTEGER NOT NULL);"                                              \
    "INSERT INTO counters VALUES ('recording',"                              \
    " (SELECT coalesce(max(id), 0) FROM recordings));"

/* A queued webhook delivery (hooks.c). */
typedef struct st_delivery_s {
    int64_t hook_id;
    char *url;
    char *secret;
    char *body;              /* JSON */
    size_t len;
    char event[32];          /* type, for X-Podium-Event */
    char id[33];             /* hex, X-Podium-Delivery (same on retries) */
    int attempts;            /* done so far */
    int64_t next_us;         /* monotonic: when to (re)try */
} st_delivery_t;

struct st_s {
    const pd_config_t *cfg;
    sqlite3 *db;
    pthread_mutex_t lock;    /* serialises every use of db */
    sqlite3 *rdb;            /* a second connection for what HTTP threads
                                read (VOD playlists and files, recording
                                lists): in WAL mode a reader never waits
                                for the writer's commit (and its fsync), so
                                a slow disk cannot stall serving threads;
                                NULL: db is used */
    pthread_mutex_t rlock;   /* serialises every use of rdb */
    char path[1024];

    /* webhooks (hooks.c): a ring of deliveries, one worker */
    pthread_mutex_t hlock;
    pthread_cond_t hcond;
    pthread_t hthread;
    bool hrunning, hstop;
    st_delivery_t *q;        /* ST_HOOK_QUEUE entries */
    int qhead, qn;
    atomic_llong sent, failed, dropped;
    int backoff_ms;          /* first retry delay, doubled per retry; 0 =
                                1000 (tests set it smaller before events) */

    /* recordings (rec.c): queue, per-stream state and the writer thread;
     * NULL until st_rec_start() */
    struct st_recorder_s *rec;
    atomic_ullong rec_gen;   /* st_rec_generation(): bumped before and
                                after any recording is deleted */

    /* playback protection (playback.c): the signing key and the sorted
     * names of the streams marked signed, read by HTTP threads without
     * touching the database */
    pthread_mutex_t plock;
    uint8_t pkey[PD_TOKEN_KEY_MAX];
    size_t pkeylen;          /* 0: no key (cannot sign or check) */
    char **psigned;          /* sorted "live/<name>" strings */
    int npsigned;
};

/* hooks.c: start/stop the worker (called by st_open / st_close). */
int st_hooks_start(st_t *st);
void st_hooks_stop(st_t *st);

/* rec.c: st_rec_sweep() runs on open, only in the process that holds the
 * database alone (exclusive lock; st->lock not needed yet): deletes
 * leftover "*.tmp" files under <data_dir>/recordings, closes recordings
 * whose session is no longer live (crash: ended at their last segment's
 * end), applies retention. st_rec_start() allocates the recorder and starts
 * its writer thread (after the database is ready); st_rec_stop() drains the
 * queue for at most ~2 s, drops the rest, joins the thread and frees the
 * recorder (before the database closes). Idempotent. Main thread. */
void st_rec_sweep(st_t *st);
int st_rec_start(st_t *st);
void st_rec_stop(st_t *st);

/* playback.c: loads the key (cfg->playback_key or <data_dir>/playback.key,
 * made if missing) and the signed streams at open; frees at close. */
int st_playback_open(st_t *st);
void st_playback_close(st_t *st);
/* Reads the marks again (another process may have changed them) and
 * swaps them in if they differ. Any thread but an HTTP one (it queries). */
#define ST_PLAYBACK_RELOAD_US (5 * 1000000LL)
int st_playback_reload(st_t *st);

/* db.c: the connection for reads from HTTP threads (rdb, or db when
 * there is none), locked; st_reader_unlock() releases it. Read-only use:
 * a query on it sees every transaction committed before it began. */
sqlite3 *st_reader_lock(st_t *st);
void st_reader_unlock(st_t *st);

/* db.c: text column col of the current row into dst (size bytes, cut;
 * "" for NULL). */
void st_copy_col(sqlite3_stmt *s, int col, char *dst, size_t size);

/* db.c: runs sql under st->lock (with limit bound to ?1 when >= 0) and
 * collects one element of elem_size bytes per row, zeroed and then filled
 * by fn from the row, into a malloc'ed array (*out, *n; the caller frees;
 * NULL when no rows). Returns 0, PD_EINVAL (a NULL argument), PD_ENOMEM
 * or PD_EIO (logged with what, e.g. "keys"). */
typedef void (*st_row_fn)(sqlite3_stmt *s, void *elem);
int st_select_all(st_t *st, const char *sql, int limit, const char *what,
                  size_t elem_size, st_row_fn fn, void **out, int *n);

/* db.c: mkdir -p of the directory part of path (0700 for what it
 * creates). Returns 0, PD_EINVAL (too long) or PD_EIO. */
int st_make_parents(const char *path);

/* keys.c: "live/<name>", <name> 1..200 of [A-Za-z0-9_.-], not starting
 * with a dot (ingest's publish-name rule with a longer limit). */
bool st_stream_valid(const char *s);

/* keys.c: a random secret "<prefix>" + 43 base64url chars, and the hex
 * SHA-256 of a secret (hex: 65 bytes). */
int st_secret_new(const char *prefix, char *out, size_t outlen);
void st_secret_hash(const char *secret, char hex[65]);

#endif
