/*
 * storage/db.c - opening, migrating and closing podium's catalogue.
 *
 * One sqlite3 connection per st_t, serialised by st->lock. The database is
 * in WAL mode so a second process (the `podium keys ...` CLI) can read and
 * write while the server runs; busy_timeout makes either side wait for the
 * other's short transactions instead of failing.
 *
 * Invariants:
 * - PRAGMA user_version is the schema version. MIGRATIONS[v - 1] takes the
 *   database from v - 1 to v inside one BEGIN IMMEDIATE transaction that
 *   also sets user_version, so a crash leaves either version, never a mix.
 *   The version is re-read inside the transaction: two processes opening a
 *   fresh file at once migrate it once.
 * - A database newer than ST_SCHEMA_VERSION is refused (PD_EINVAL), never
 *   touched (the version is checked before anything is written).
 * - Sessions still open when the database is opened were left by a crash
 *   and are closed as "crash", but only by the only opener: every st_t
 *   holds a shared flock() on "<db>.lock" for its lifetime, and the crash
 *   sweep runs only when an exclusive lock can be taken, so the CLI opening
 *   the database next to a running server does not end its live sessions.
 * - Recordings: leftover temporary files and recordings of crashed
 *   sessions are cleaned up by the same only opener (st_rec_sweep); the
 *   recorder's writer thread runs between the database being ready and
 *   its close (rec.c).
 * - Paths are logged; secrets never pass through this file.
 */
#include "st_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const MIGRATIONS[] = {
    ST_SCHEMA_V1, /* 0 -> 1 */
    ST_SCHEMA_V2, /* 1 -> 2: recorded renditions */
    ST_SCHEMA_V3, /* 2 -> 3: per-stream settings (signed playback) */
    ST_SCHEMA_V4, /* 3 -> 4: counters (recording ids never reused) */
};

_Static_assert(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]) ==
                   ST_SCHEMA_VERSION,
               "one migration per schema version");

/* st_t lives inside this wrapper so db.c can keep the lock descriptor
 * without widening st_int.h; only db.c allocates and frees st_t. */
typedef struct st_open_s {
    struct st_s st;       /* first: a st_t * is a st_open_t * */
    int lockfd;           /* "<db>.lock", shared flock held; -1: none */
} st_open_t;

/* mkdir -p of the directory part of path (0700 for what we create). */
int st_make_parents(const char *path)
{
    char dir[1024];
    int n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return PD_EINVAL;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0; /* relative name in the working directory */
    *slash = '\0';
    if (!dir[0])
        return 0; /* "/podium.db" */
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                return PD_EIO;
            *p = saved;
            if (!saved)
                break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return PD_EIO;
    return 0;
}

/* Runs one statement that returns one integer (PRAGMA user_version). */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* Runs one statement that returns one text (PRAGMA journal_mode). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(out, size, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* Applies every missing migration; each in its own transaction. */
static int migrate(st_t *st)
{
    for (;;) {
        int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            PD_LOGE(ST_MOD, "%s: cannot start migration: %s", st->path,
                    sqlite3_errmsg(st->db));
            return PD_EIO;
        }
        int64_t v = 0;
        rc = query_int(st->db, "PRAGMA user_version", &v);
        if (rc != SQLITE_OK || v < 0 || v > ST_SCHEMA_VERSION) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                PD_LOGE(ST_MOD, "%s: cannot read schema version: %s",
                        st->path, sqlite3_errmsg(st->db));
            else
                PD_LOGE(ST_MOD, "%s: schema version %lld is not %d or "
                        "older (a newer podium made it): refusing it",
                        st->path, (long long)v, ST_SCHEMA_VERSION);
            return rc != SQLITE_OK ? PD_EIO : PD_EINVAL;
        }
        if (v == ST_SCHEMA_VERSION) {
            sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
            return 0;
        }
        char setv[64];
        snprintf(setv, sizeof(setv), "PRAGMA user_version = %lld",
                 (long long)(v + 1));
        char *msg = NULL;
        rc = sqlite3_exec(st->db, MIGRATIONS[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(st->db, setv, NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            PD_LOGE(ST_MOD, "%s: migration to schema %lld failed: %s",
                    st->path, (long long)(v + 1), msg ? msg : "?");
            sqlite3_free(msg);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return PD_EIO;
        }
        PD_LOGI(ST_MOD, "%s: schema migrated to version %lld", st->path,
                (long long)(v + 1));
    }
}

/* Takes the shared lock on "<db>.lock"; *alone is set when no other st_t
 * (in any process) had the database open, i.e. open sessions are from a
 * crash. Failure to lock is not fatal: we then never sweep. */
static void take_lock(st_open_t *o, bool *alone)
{
    *alone = false;
    char lp[1100];
    snprintf(lp, sizeof(lp), "%s.lock", o->st.path);
    o->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (o->lockfd < 0) {
        PD_LOGW(ST_MOD, "%s: cannot open lock file (%s): crashed sessions "
                "are not swept", lp, strerror(errno));
        return;
    }
    if (flock(o->lockfd, LOCK_EX | LOCK_NB) == 0) {
        *alone = true; /* downgraded to shared after the sweep */
        return;
    }
    /* Another st_t is open. It may hold the exclusive lock for its
     * (short) sweep: wait for our shared lock with a bound. */
    for (int i = 0; i < 500; i++) {
        if (flock(o->lockfd, LOCK_SH | LOCK_NB) == 0)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    PD_LOGW(ST_MOD, "%s: lock busy for 5 s; continuing without it", lp);
}

/* Closes sessions left open by a podium that died (only when alone). */
static int sweep_crashed(st_t *st)
{
    char sql[128];
    snprintf(sql, sizeof(sql),
             "UPDATE sessions SET ended_us = %lld, end_reason = 'crash' "
             "WHERE ended_us = 0",
             (long long)pd_wall_us());
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: cannot close crashed sessions: %s", st->path,
                msg ? msg : "?");
        sqlite3_free(msg);
        return PD_EIO;
    }
    int n = sqlite3_changes(st->db);
    if (n > 0)
        PD_LOGW(ST_MOD, "%s: %d session(s) left open by a crash closed",
                st->path, n);
    return 0;
}

static int setup(st_open_t *o)
{
    st_t *st = &o->st;
    int rc = st_make_parents(st->path);
    if (rc) {
        PD_LOGE(ST_MOD, "%s: cannot create the directory: %s", st->path,
                strerror(errno));
        return PD_EIO;
    }
    /* Create a new file 0600 ourselves (sqlite would use 0666 & ~umask):
     * the hooks table holds HMAC secrets. sqlite gives -wal and -shm the
     * database's mode. O_EXCL: an existing file is never opened (and then
     * closed) here, as closing any descriptor of a file drops this
     * process's POSIX locks on it, sqlite's included. */
    int cfd = open(st->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (cfd >= 0)
        close(cfd);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                SQLITE_OPEN_NOMUTEX; /* serialised by st->lock */
    if (sqlite3_open_v2(st->path, &st->db, flags, NULL) != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: cannot open: %s", st->path,
                st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return st->db ? PD_EIO : PD_ENOMEM;
    }
    sqlite3_busy_timeout(st->db, 5000);
    sqlite3_extended_result_codes(st->db, 0);

    /* The version first: a newer (or foreign) file is refused before we
     * write anything to it, even the WAL switch. Not a database: NOTADB. */
    int64_t v = 0;
    if (query_int(st->db, "PRAGMA user_version", &v) != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: cannot read: %s", st->path,
                sqlite3_errmsg(st->db));
        return PD_EIO;
    }
    if (v > ST_SCHEMA_VERSION || v < 0) {
        PD_LOGE(ST_MOD, "%s: schema version %lld is newer than this podium "
                "understands (%d): refusing it", st->path, (long long)v,
                ST_SCHEMA_VERSION);
        return PD_EINVAL;
    }

    /* Two processes opening a new file at once (the server and the CLI)
     * may both try the switch; sqlite then answers BUSY at once, without
     * its busy handler (it would deadlock): retry for up to 5 s. */
    char mode[16] = "";
    int qrc = SQLITE_BUSY;
    for (int i = 0; i < 100; i++) {
        qrc = query_text(st->db, "PRAGMA journal_mode = WAL", mode,
                         sizeof(mode));
        if (!((qrc & 0xff) == SQLITE_BUSY || (qrc & 0xff) == SQLITE_LOCKED))
            break;
        usleep(50000);
    }
    if (qrc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        PD_LOGE(ST_MOD, "%s: cannot switch to WAL mode (%s)", st->path,
                sqlite3_errmsg(st->db));
        return PD_EIO;
    }
    /* synchronous = FULL: every commit fsyncs the WAL. NORMAL would be
     * enough for what a process kill (kill -9, OOM, segfault) can do:
     * committed transactions sit in the OS page cache and survive, and the
     * database is always consistent. But on power loss or a kernel crash
     * NORMAL may drop the last commits, and here those are the ones that
     * matter: a revoked key coming back, or a key whose secret was already
     * shown (once) vanishing. Our write rate is a handful of small
     * transactions per second at most, so one fsync each is cheap. */
    const char *pragmas = "PRAGMA synchronous = FULL;"
                          "PRAGMA foreign_keys = ON;";
    char *msg = NULL;
    if (sqlite3_exec(st->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: cannot set pragmas: %s", st->path,
                msg ? msg : "?");
        sqlite3_free(msg);
        return PD_EIO;
    }
    rc = migrate(st);
    if (rc)
        return rc;

    bool alone = false;
    take_lock(o, &alone);
    if (alone) {
        rc = sweep_crashed(st);
        if (!rc)
            st_rec_sweep(st); /* needs the sessions swept first */
        if (flock(o->lockfd, LOCK_SH) != 0) /* downgrade, never blocks */
            PD_LOGW(ST_MOD, "%s: cannot downgrade the lock", st->path);
        if (rc)
            return rc;
    }
    return 0;
}

static void open_reader(st_t *st);

int st_open(const pd_config_t *cfg, const char *path, st_t **out)
{
    if (!out)
        return PD_EINVAL;
    *out = NULL;
    if (!cfg)
        return PD_EINVAL;
    st_open_t *o = calloc(1, sizeof(*o));
    if (!o)
        return PD_ENOMEM;
    o->lockfd = -1;
    st_t *st = &o->st;
    st->cfg = cfg;
    int n;
    if (path && path[0])
        n = snprintf(st->path, sizeof(st->path), "%s", path);
    else if (cfg->db_path[0])
        n = snprintf(st->path, sizeof(st->path), "%s", cfg->db_path);
    else
        n = snprintf(st->path, sizeof(st->path), "%s/podium.db",
                     cfg->data_dir[0] ? cfg->data_dir : ".");
    if (n < 0 || (size_t)n >= sizeof(st->path)) {
        PD_LOGE(ST_MOD, "database path too long (%d bytes)", n);
        free(o);
        return PD_EINVAL;
    }
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(o);
        return PD_ENOMEM;
    }
    if (pthread_mutex_init(&st->rlock, NULL) != 0) {
        pthread_mutex_destroy(&st->lock);
        free(o);
        return PD_ENOMEM;
    }
    int rc = setup(o);
    if (!rc)
        open_reader(st);
    bool pb = false;
    if (!rc) {
        rc = st_playback_open(st);
        pb = rc == 0;
    }
    if (!rc) {
        rc = st_hooks_start(st);
        if (rc)
            PD_LOGE(ST_MOD, "%s: webhook worker failed to start: %s",
                    st->path, pd_strerror(rc));
    }
    if (!rc) {
        rc = st_rec_start(st);
        if (rc) {
            PD_LOGE(ST_MOD, "%s: recorder failed to start: %s", st->path,
                    pd_strerror(rc));
            st_hooks_stop(st);
        }
    }
    if (rc) {
        if (pb)
            st_playback_close(st);
        sqlite3_close(st->rdb); /* NULL is fine */
        sqlite3_close(st->db);
        pthread_mutex_destroy(&st->rlock);
        if (o->lockfd >= 0)
            close(o->lockfd);
        pthread_mutex_destroy(&st->lock);
        free(o);
        return rc;
    }
    *out = st;
    return 0;
}

sqlite3 *st_reader_lock(st_t *st)
{
    if (st->rdb) {
        pthread_mutex_lock(&st->rlock);
        return st->rdb;
    }
    pthread_mutex_lock(&st->lock);
    return st->db;
}

void st_reader_unlock(st_t *st)
{
    pthread_mutex_unlock(st->rdb ? &st->rlock : &st->lock);
}

/* Opens the reader connection (after the schema is in place). Failure is
 * not fatal: reads then share the writer's connection. */
static void open_reader(st_t *st)
{
    sqlite3 *r = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(st->path, &r, flags, NULL) != SQLITE_OK ||
        sqlite3_exec(r, "PRAGMA query_only = ON", NULL, NULL, NULL) !=
            SQLITE_OK) {
        PD_LOGW(ST_MOD, "%s: no separate reader connection (%s): reads wait "
                "for writes", st->path, r ? sqlite3_errmsg(r) : "no memory");
        sqlite3_close(r);
        return;
    }
    sqlite3_busy_timeout(r, 5000);
    st->rdb = r;
}

void st_copy_col(sqlite3_stmt *s, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

int st_select_all(st_t *st, const char *sql, int limit, const char *what,
                  size_t elem_size, st_row_fn fn, void **out, int *n)
{
    if (!st || !sql || !fn || !out || !n || elem_size == 0)
        return PD_EINVAL;
    *out = NULL;
    *n = 0;
    char *v = NULL;
    int cnt = 0, cap = 0, rc = PD_EIO, step = SQLITE_DONE;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK &&
        (limit < 0 || sqlite3_bind_int(s, 1, limit) == SQLITE_OK)) {
        rc = 0;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            if (cnt == cap) {
                int nc = cap ? cap * 2 : 16;
                char *nv = realloc(v, (size_t)nc * elem_size);
                if (!nv) {
                    rc = PD_ENOMEM;
                    break;
                }
                v = nv;
                cap = nc;
            }
            void *e = v + (size_t)cnt++ * elem_size;
            memset(e, 0, elem_size);
            fn(s, e);
        }
        if (!rc && step != SQLITE_DONE)
            rc = PD_EIO;
    }
    if (rc == PD_EIO)
        PD_LOGE(ST_MOD, "%s: cannot list %s: %s", st->path, what,
                sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

const pd_config_t *st_config(const st_t *st)
{
    return st->cfg;
}

void st_close(st_t **pst)
{
    if (!pst || !*pst)
        return;
    st_t *st = *pst;
    *pst = NULL;
    st_rec_stop(st); /* first: it may still queue recording.ready */
    st_hooks_stop(st);
    st_playback_close(st);
    pthread_mutex_lock(&st->rlock);
    sqlite3_close(st->rdb);
    st->rdb = NULL;
    pthread_mutex_unlock(&st->rlock);
    pthread_mutex_destroy(&st->rlock);
    pthread_mutex_lock(&st->lock);
    if (sqlite3_close(st->db) != SQLITE_OK)
        PD_LOGW(ST_MOD, "%s: close: %s", st->path, sqlite3_errmsg(st->db));
    st->db = NULL;
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_destroy(&st->lock);
    st_open_t *o = (st_open_t *)st;
    if (o->lockfd >= 0)
        close(o->lockfd); /* releases the shared flock */
    free(o);
}
