/*
 * storage/sessions.c - the publishing sessions of the catalogue: one row
 * per publish, from start to end.
 *
 * Invariants: ended_us = 0 means live; a session ends once (the first
 * end's time and reason are kept); reasons are "left" and "shutdown" here,
 * "crash" only from db.c's sweep on open. Text columns are bounded by the
 * sizes of st_session_t's fields, so a listed row is never truncated.
 * Every function takes st->lock around its statements.
 */
#include "st_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSIONS_LIST_MAX 10000 /* rows one st_session_list may return */

/* true when s (may be NULL) fits a field of size bytes. */
static bool fits(const char *s, size_t size)
{
    return !s || strnlen(s, size) < size;
}

/* Does session id exist? 1 yes, 0 no, PD_EIO. Caller holds st->lock. */
static int exists_locked(st_t *st, int64_t id)
{
    sqlite3_stmt *s = NULL;
    int rc = PD_EIO;
    if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM sessions WHERE id = ?1",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        int step = sqlite3_step(s);
        rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : PD_EIO;
    }
    sqlite3_finalize(s);
    return rc;
}

int st_session_start(st_t *st, const char *stream, const char *peer,
                     int64_t *id)
{
    st_session_t *f = NULL; /* field sizes only */
    if (!st || !stream || !stream[0] || !fits(stream, sizeof(f->stream)) ||
        !fits(peer, sizeof(f->peer)))
        return PD_EINVAL;
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO sessions (stream, peer, started_us)"
                           " VALUES (?1, ?2, ?3)",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, stream, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, peer ? peer : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, pd_wall_us());
        if (sqlite3_step(s) == SQLITE_DONE) {
            rc = 0;
            if (id)
                *id = sqlite3_last_insert_rowid(st->db);
        }
    }
    sqlite3_finalize(s);
    if (rc)
        PD_LOGE(ST_MOD, "%s: cannot record the session of %s: %s",
                st->path, stream, sqlite3_errmsg(st->db));
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int st_session_describe(st_t *st, int64_t id, const char *codecs,
                        const char *renditions)
{
    st_session_t *f = NULL;
    if (!st || !fits(codecs, sizeof(f->codecs)) ||
        !fits(renditions, sizeof(f->renditions)))
        return PD_EINVAL;
    if (id <= 0)
        return PD_ENOENT;
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    /* NULL keeps the column: COALESCE(NULL, col) = col */
    if (sqlite3_prepare_v2(st->db,
                           "UPDATE sessions SET"
                           " codecs = COALESCE(?1, codecs),"
                           " renditions = COALESCE(?2, renditions)"
                           " WHERE id = ?3",
                           -1, &s, NULL) == SQLITE_OK) {
        if (codecs)
            sqlite3_bind_text(s, 1, codecs, -1, SQLITE_TRANSIENT);
        if (renditions)
            sqlite3_bind_text(s, 2, renditions, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, id);
        if (sqlite3_step(s) == SQLITE_DONE)
            rc = sqlite3_changes(st->db) > 0 ? 0 : PD_ENOENT;
    }
    sqlite3_finalize(s);
    if (rc == PD_EIO)
        PD_LOGE(ST_MOD, "%s: cannot describe session %lld: %s", st->path,
                (long long)id, sqlite3_errmsg(st->db));
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int st_session_end(st_t *st, int64_t id, const char *reason)
{
    if (!st || !reason ||
        (strcmp(reason, "left") != 0 && strcmp(reason, "shutdown") != 0))
        return PD_EINVAL;
    if (id <= 0)
        return PD_ENOENT;
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "UPDATE sessions SET ended_us = ?1,"
                           " end_reason = ?2 WHERE id = ?3 AND ended_us = 0",
                           -1, &s, NULL) == SQLITE_OK) {
        int64_t now = pd_wall_us();
        sqlite3_bind_int64(s, 1, now > 0 ? now : 1); /* 0 means live */
        sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, id);
        if (sqlite3_step(s) == SQLITE_DONE)
            rc = sqlite3_changes(st->db) > 0 ? 0 : PD_ENOENT;
    }
    sqlite3_finalize(s);
    if (rc == PD_ENOENT) { /* already ended (keep the first) or unknown */
        int e = exists_locked(st, id);
        rc = e == 1 ? 0 : e == 0 ? PD_ENOENT : PD_EIO;
    }
    if (rc == PD_EIO)
        PD_LOGE(ST_MOD, "%s: cannot end session %lld: %s", st->path,
                (long long)id, sqlite3_errmsg(st->db));
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void session_row(sqlite3_stmt *s, void *elem)
{
    st_session_t *x = elem;
    x->id = sqlite3_column_int64(s, 0);
    st_copy_col(s, 1, x->stream, sizeof(x->stream));
    st_copy_col(s, 2, x->peer, sizeof(x->peer));
    x->started_us = sqlite3_column_int64(s, 3);
    x->ended_us = sqlite3_column_int64(s, 4);
    st_copy_col(s, 5, x->end_reason, sizeof(x->end_reason));
    st_copy_col(s, 6, x->codecs, sizeof(x->codecs));
    st_copy_col(s, 7, x->renditions, sizeof(x->renditions));
}

int st_session_list(st_t *st, bool live_only, int limit, st_session_t **out,
                    int *n)
{
    if (!st || !out || !n || limit <= 0)
        return PD_EINVAL;
    *out = NULL;
    *n = 0;
    if (limit > SESSIONS_LIST_MAX)
        limit = SESSIONS_LIST_MAX;
    const char *sql =
        live_only
            ? "SELECT id, stream, peer, started_us, ended_us, end_reason,"
              " codecs, renditions FROM sessions WHERE ended_us = 0"
              " ORDER BY started_us DESC, id DESC LIMIT ?1"
            : "SELECT id, stream, peer, started_us, ended_us, end_reason,"
              " codecs, renditions FROM sessions"
              " ORDER BY started_us DESC, id DESC LIMIT ?1";
    void *v = NULL;
    int rc = st_select_all(st, sql, limit, "sessions", sizeof(st_session_t),
                         session_row, &v, n);
    *out = v;
    return rc;
}
