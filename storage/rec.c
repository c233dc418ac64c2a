/*
 * storage/rec.c - the recorder: every published init and segment of a
 * recorded session goes to disk and into the index (recordings,
 * rec_segments, rec_renditions), and retention deletes old recordings.
 *
 * Flow: the packager's sink callbacks (a packager writer thread, stream
 * lock held) take a reference to the bytes and append an item to one
 * bounded queue (ST_REC_QUEUE items, ST_REC_BYTES bytes; begin/end markers
 * get REC_MARKERS extra slots); one writer thread pops items and writes.
 *
 * Invariants:
 * - Producers never wait for the disk: a full queue drops the item, counts
 *   it and stops that stream's recording (one log line).
 * - Every recording is identified in memory by a generation (one per
 *   st_rec_begin call); items carry it, so a late item can never land in
 *   another session's recording.
 * - A file is indexed only after it is whole on disk: "<name>.tmp", write,
 *   fsync, rename, fsync of the directory, then the row. Leftover .tmp
 *   files are deleted on open (st_rec_sweep).
 * - Inits are written lazily, when the first segment that needs one
 *   arrives, from the most recent init of that rendition the writer has
 *   seen (the producer side caches the latest init per (stream,
 *   rendition) and replays it at st_rec_begin).
 * - A write or index error stops only that recording (one log line,
 *   errors counted, stopped_full set); st_rec_end still closes it, so what
 *   was written is served as VOD.
 * - Only the writer thread writes files of a recording that is not ended;
 *   deletion (retention, st_rec_delete) only touches ended recordings.
 */
#include "st_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"
#include "../core/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REC_MARKERS 256     /* begin/end markers beyond ST_REC_QUEUE */
#define REC_STREAMS 256     /* streams tracked by the producer side */
#define REC_RENDS 16        /* renditions per stream */
#define REC_NAME 32         /* rendition name incl. NUL */
#define REC_RETAIN_US (60 * 1000000LL)  /* retention period */
#define REC_DRAIN_US (2 * 1000000LL)    /* st_rec_stop drain budget */
#define REC_PATH 1024

enum { IT_BEGIN, IT_INIT, IT_SEG, IT_END };

/* One queued unit of work. */
typedef struct rec_item_s {
    struct rec_item_s *next;
    int kind;
    uint64_t gen;            /* the recording it belongs to */
    int64_t session_id;      /* IT_BEGIN */
    char stream[256];
    char rendition[REC_NAME];
    int64_t msn;             /* IT_SEG: MSN; IT_INIT: init id */
    unsigned init_id;        /* IT_SEG: its init */
    int64_t duration_us;     /* IT_SEG */
    int64_t pdt_us;          /* IT_SEG: wallclock us */
    bool disc;               /* IT_SEG */
    char codecs[64];         /* IT_SEG */
    int width, height;       /* IT_SEG, pixels */
    pd_buf_t *buf;           /* IT_INIT/IT_SEG: own reference */
} rec_item_t;

/* Producer side: the latest init of a rendition. */
typedef struct rec_init_s {
    char rendition[REC_NAME];
    unsigned id;
    pd_buf_t *buf;           /* own reference; NULL: slot free */
} rec_init_t;

/* Producer side: one stream name. */
typedef struct rec_stream_s {
    bool used;
    char stream[256];
    uint64_t gen;            /* 0: not recording */
    bool stopped;            /* recording stopped (queue full, write error) */
    rec_init_t inits[REC_RENDS];
} rec_stream_t;

/* Writer side: one rendition of an open recording. */
typedef struct wrend_s {
    char name[REC_NAME];
    unsigned init_id;        /* of init (latest seen) */
    pd_buf_t *init;          /* own reference, or NULL */
    unsigned written_id;     /* init written to disk; 0: none */
    bool dir_made;
    bool warned;             /* "no init" logged */
    bool described;          /* its first segment updated the session */
} wrend_t;

/* Writer side: an open recording. */
typedef struct wrec_s {
    struct wrec_s *next;
    uint64_t gen;
    int64_t session_id;
    char stream[256];
    int64_t id;              /* recordings.id; 0: no row yet */
    bool failed;             /* stopped by an error: items ignored */
    int nr;
    wrend_t r[REC_RENDS];
} wrec_t;

struct st_recorder_s {
    pthread_mutex_t lock;    /* queue and streams[] */
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stop;
    rec_item_t *head, *tail;
    int n;                   /* items queued */
    size_t bytes;            /* media bytes queued */
    uint64_t next_gen;
    rec_stream_t streams[REC_STREAMS];
    pkg_sink_t sink;
    char root[600];          /* <data_dir>/recordings */
    wrec_t *open;            /* writer thread only */
    atomic_llong written, wbytes, dropped, errors, disk_full;
    atomic_bool stopped_full;
};

/* ---- names and paths ---------------------------------------------------- */

static bool rendition_ok(const char *r)
{
    if (!r)
        return false;
    size_t n = 0;
    for (; r[n]; n++) {
        char c = r[n];
        if (n >= REC_NAME - 1 ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return n > 0;
}

static bool digits(const char *s, size_t n)
{
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "init-[0-9]+.mp4" or "[0-9]+.m4s" */
static bool file_ok(const char *f)
{
    if (!f)
        return false;
    size_t n = strnlen(f, 64);
    if (n >= 64)
        return false;
    if (n > 9 && strncmp(f, "init-", 5) == 0 &&
        strcmp(f + n - 4, ".mp4") == 0)
        return digits(f + 5, n - 9);
    if (n > 4 && strcmp(f + n - 4, ".m4s") == 0)
        return digits(f, n - 4);
    return false;
}

static void set_root(st_t *st, char *root, size_t size)
{
    snprintf(root, size, "%s/recordings",
             st->cfg->data_dir[0] ? st->cfg->data_dir : ".");
}

/* ---- retention and deletion (st->lock held) ----------------------------- */

/* Deletes an ended recording: files, directories, then rows. */
static int delete_rows_and_files(st_t *st, const char *root, int64_t id);

/* Deletes recording id (files, then rows). The generation moves before
 * anything goes and again once the rows are gone: a playlist rendered in
 * between (readers do not wait for st->lock) is cached under the middle
 * value and never served afterwards. st->lock held. */
static int delete_locked(st_t *st, const char *root, int64_t id)
{
    atomic_fetch_add(&st->rec_gen, 1);
    int rc = delete_rows_and_files(st, root, id);
    atomic_fetch_add(&st->rec_gen, 1);
    return rc;
}

static int delete_rows_and_files(st_t *st, const char *root, int64_t id)
{
    sqlite3_stmt *s = NULL;
    int rc = PD_ENOENT;
    char dir[32] = "";
    if (sqlite3_prepare_v2(st->db, "SELECT dir, ended_us FROM recordings "
                           "WHERE id = ?", -1, &s, NULL) != SQLITE_OK)
        return PD_EIO;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(s, 0);
        if (sqlite3_column_int64(s, 1) == 0)
            rc = PD_EAGAIN;
        else if (d && digits(d, strlen(d))) {
            snprintf(dir, sizeof(dir), "%s", d);
            rc = 0;
        } else
            rc = 0; /* no directory yet: rows only */
    }
    sqlite3_finalize(s);
    if (rc)
        return rc;
    if (dir[0] && sqlite3_prepare_v2(st->db, "SELECT rendition, file FROM "
                                     "rec_segments WHERE recording_id = ? "
                                     "ORDER BY rendition", -1, &s,
                                     NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        char last[REC_NAME] = "";
        char p[REC_PATH];
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(s, 0);
            const char *f = (const char *)sqlite3_column_text(s, 1);
            if (!rendition_ok(r) || !file_ok(f))
                continue;
            if (last[0] && strcmp(last, r) != 0) {
                snprintf(p, sizeof(p), "%s/%s/%s", root, dir, last);
                rmdir(p);
            }
            snprintf(last, sizeof(last), "%s", r);
            snprintf(p, sizeof(p), "%s/%s/%s/%s", root, dir, r, f);
            if (unlink(p) != 0 && errno != ENOENT)
                PD_LOGW(ST_MOD, "recording %" PRId64 ": cannot delete %s: %s",
                        id, p, strerror(errno));
        }
        sqlite3_finalize(s);
        if (last[0]) {
            snprintf(p, sizeof(p), "%s/%s/%s", root, dir, last);
            rmdir(p);
        }
        snprintf(p, sizeof(p), "%s/%s", root, dir);
        rmdir(p); /* fails (harmlessly) if something unindexed remains */
    }
    if (sqlite3_prepare_v2(st->db, "DELETE FROM recordings WHERE id = ?", -1,
                           &s, NULL) != SQLITE_OK)
        return PD_EIO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : PD_EIO;
    sqlite3_finalize(s);
    return rc;
}

/* Ids from a query with at most one int64 parameter; up to max. */
static int select_ids(sqlite3 *db, const char *sql, int64_t arg,
                      int64_t *ids, int max)
{
    sqlite3_stmt *s = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_bind_parameter_count(s) > 0)
        sqlite3_bind_int64(s, 1, arg);
    while (n < max && sqlite3_step(s) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* Applies cfg->rec_max_age_s and cfg->rec_max_mb. Any thread. */
static void retention(st_t *st, const char *root)
{
    int64_t age = st->cfg->rec_max_age_s, mb = st->cfg->rec_max_mb;
    if (age <= 0 && mb <= 0)
        return;
    int deleted = 0;
    int64_t ids[256];
    pthread_mutex_lock(&st->lock);
    if (age > 0) {
        int64_t cut = pd_wall_us() - age * 1000000;
        int n = select_ids(st->db, "SELECT id FROM recordings WHERE ended_us > 0"
                           " AND ended_us < ? ORDER BY ended_us", cut, ids,
                           256);
        for (int i = 0; i < n; i++)
            if (delete_locked(st, root, ids[i]) == 0)
                deleted++;
    }
    if (mb > 0) {
        int64_t limit = mb * 1024 * 1024;
        for (int guard = 0; guard < 100000; guard++) {
            int64_t total = 0;
            if (select_ids(st->db, "SELECT total(bytes) FROM recordings", 0,
                           &total, 1) != 1 || total <= limit)
                break;
            int64_t id = 0;
            if (select_ids(st->db, "SELECT id FROM recordings WHERE ended_us > 0"
                           " ORDER BY ended_us, id LIMIT 1", 0, &id, 1) != 1)
                break;
            if (delete_locked(st, root, id) != 0)
                break;
            deleted++;
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (deleted)
        PD_LOGI(ST_MOD, "retention: %d recording(s) deleted", deleted);
}

/* ---- open-time sweep ----------------------------------------------------- */

static _Thread_local int tmp_deleted;

static int tmp_one(const char *p, const struct stat *sb, int flag,
                   struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(p);
    if (flag == FTW_F && n > 4 && strcmp(p + n - 4, ".tmp") == 0 &&
        unlink(p) == 0)
        tmp_deleted++;
    return 0;
}

void st_rec_sweep(st_t *st)
{
    char root[600];
    set_root(st, root, sizeof(root));
    tmp_deleted = 0;
    struct stat sb;
    if (stat(root, &sb) == 0 && S_ISDIR(sb.st_mode))
        nftw(root, tmp_one, 16, FTW_PHYS);
    if (tmp_deleted)
        PD_LOGW(ST_MOD, "%s: %d leftover temporary file(s) deleted", root,
                tmp_deleted);
    /* Recordings whose session is over but were never closed (crash):
     * ended at their last segment's end, so they are served as VOD. */
    char *msg = NULL;
    if (sqlite3_exec(st->db,
                     "UPDATE recordings SET ended_us = max(started_us, 1,"
                     " coalesce((SELECT max(pdt_us + duration_us) FROM"
                     " rec_segments WHERE recording_id = recordings.id AND"
                     " kind = 'segment'), 0))"
                     " WHERE ended_us = 0 AND session_id NOT IN"
                     " (SELECT id FROM sessions WHERE ended_us = 0)",
                     NULL, NULL, &msg) != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: cannot close crashed recordings: %s", st->path,
                msg ? msg : "?");
        sqlite3_free(msg);
    } else if (sqlite3_changes(st->db) > 0) {
        PD_LOGW(ST_MOD, "%s: %d recording(s) left open by a crash closed",
                st->path, sqlite3_changes(st->db));
    }
    retention(st, root);
}

/* ---- queue (producer side) ----------------------------------------------- */

static rec_stream_t *find_stream(struct st_recorder_s *r, const char *stream,
                                 bool create)
{
    rec_stream_t *spare = NULL, *idle = NULL;
    for (int i = 0; i < REC_STREAMS; i++) {
        rec_stream_t *s = &r->streams[i];
        if (!s->used) {
            if (!spare)
                spare = s;
        } else if (strcmp(s->stream, stream) == 0) {
            return s;
        } else if (!s->gen && !idle) {
            idle = s;
        }
    }
    if (!create)
        return NULL;
    rec_stream_t *s = spare ? spare : idle; /* evict an idle stream's inits */
    if (!s)
        return NULL;
    for (int i = 0; i < REC_RENDS; i++)
        pd_buf_unref(&s->inits[i].buf);
    memset(s, 0, sizeof(*s));
    s->used = true;
    snprintf(s->stream, sizeof(s->stream), "%s", stream);
    return s;
}

/* Appends it (consumed) unless the queue is over its limits: then drops
 * it, counts it and stops s's recording. r->lock held. */
static void enqueue_locked(struct st_recorder_s *r, rec_stream_t *s,
                           rec_item_t *it)
{
    size_t len = it->buf ? it->buf->len : 0;
    bool marker = it->kind == IT_BEGIN || it->kind == IT_END;
    bool full = marker ? r->n >= ST_REC_QUEUE + REC_MARKERS
                       : (r->n >= ST_REC_QUEUE ||
                          len > ST_REC_BYTES - r->bytes);
    if (full || r->stop) {
        atomic_fetch_add(&r->dropped, 1);
        if (s && s->gen == it->gen && !s->stopped) {
            s->stopped = true;
            PD_LOGW(ST_MOD, "%s: recording stopped: queue full (%d items, "
                    "%zu bytes)", it->stream, r->n, r->bytes);
        }
        pd_buf_unref(&it->buf);
        free(it);
        return;
    }
    it->next = NULL;
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    r->n++;
    r->bytes += len;
    pthread_cond_signal(&r->cond);
}

static rec_item_t *item_new(int kind, uint64_t gen, const char *stream,
                            const char *rendition)
{
    rec_item_t *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->kind = kind;
    it->gen = gen;
    snprintf(it->stream, sizeof(it->stream), "%s", stream);
    if (rendition)
        snprintf(it->rendition, sizeof(it->rendition), "%s", rendition);
    return it;
}

/* Queues s's cached inits for its current recording. r->lock held. */
static void replay_inits_locked(struct st_recorder_s *r, rec_stream_t *s)
{
    for (int i = 0; i < REC_RENDS && !s->stopped; i++) {
        rec_init_t *c = &s->inits[i];
        if (!c->buf)
            continue;
        rec_item_t *it = item_new(IT_INIT, s->gen, s->stream, c->rendition);
        if (!it) {
            atomic_fetch_add(&r->dropped, 1);
            continue;
        }
        it->msn = c->id;
        it->buf = pd_buf_ref(c->buf);
        enqueue_locked(r, s, it);
    }
}

static void sink_init(void *opaque, const char *stream,
                      const char *rendition, unsigned init_id,
                      pd_buf_t *buf)
{
    st_t *st = opaque;
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r || !st->cfg->recording || !stream || !buf ||
        !rendition_ok(rendition) || strlen(stream) >= 256)
        return;
    pthread_mutex_lock(&r->lock);
    rec_stream_t *s = find_stream(r, stream, true);
    if (s) {
        rec_init_t *slot = NULL;
        for (int i = 0; i < REC_RENDS && !slot; i++)
            if (s->inits[i].buf &&
                strcmp(s->inits[i].rendition, rendition) == 0)
                slot = &s->inits[i];
        for (int i = 0; i < REC_RENDS && !slot; i++)
            if (!s->inits[i].buf)
                slot = &s->inits[i];
        if (slot) {
            pd_buf_unref(&slot->buf);
            snprintf(slot->rendition, sizeof(slot->rendition), "%s",
                     rendition);
            slot->id = init_id;
            slot->buf = pd_buf_ref(buf);
        }
        if (s->gen && !s->stopped) {
            rec_item_t *it = item_new(IT_INIT, s->gen, stream, rendition);
            if (it) {
                it->msn = init_id;
                it->buf = pd_buf_ref(buf);
                enqueue_locked(r, s, it);
            } else {
                atomic_fetch_add(&r->dropped, 1);
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
}

static void sink_segment(void *opaque, const pkg_seg_event_t *e)
{
    st_t *st = opaque;
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r || !st->cfg->recording || !e || !e->stream || !e->buf ||
        !rendition_ok(e->rendition) || strlen(e->stream) >= 256 ||
        e->msn < 0)
        return;
    pthread_mutex_lock(&r->lock);
    rec_stream_t *s = find_stream(r, e->stream, false);
    if (s && s->gen && !s->stopped) {
        rec_item_t *it = item_new(IT_SEG, s->gen, e->stream, e->rendition);
        if (it) {
            it->msn = e->msn;
            it->init_id = e->init_id;
            it->duration_us = e->duration_us > 0 ? e->duration_us : 0;
            it->pdt_us = e->pdt_us;
            it->disc = e->discontinuity;
            snprintf(it->codecs, sizeof(it->codecs), "%s",
                     e->codecs ? e->codecs : "");
            it->width = e->width > 0 ? e->width : 0;
            it->height = e->height > 0 ? e->height : 0;
            it->buf = pd_buf_ref(e->buf);
            enqueue_locked(r, s, it);
        } else {
            atomic_fetch_add(&r->dropped, 1);
        }
    }
    pthread_mutex_unlock(&r->lock);
}

const pkg_sink_t *st_rec_sink(st_t *st)
{
    return st && st->rec ? &st->rec->sink : NULL;
}

/* Queues the end marker of s's current recording. r->lock held. */
static void end_locked(struct st_recorder_s *r, rec_stream_t *s)
{
    if (!s->gen)
        return;
    rec_item_t *it = item_new(IT_END, s->gen, s->stream, NULL);
    if (it)
        enqueue_locked(r, s, it);
    else
        atomic_fetch_add(&r->dropped, 1);
    s->gen = 0;
    s->stopped = false;
}

void st_rec_begin(st_t *st, const char *stream, int64_t session_id)
{
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r || !st->cfg->recording || !stream || strlen(stream) >= 256)
        return;
    pthread_mutex_lock(&r->lock);
    rec_stream_t *s = find_stream(r, stream, true);
    if (!s) {
        pthread_mutex_unlock(&r->lock);
        PD_LOGW(ST_MOD, "%s: not recorded: %d streams already tracked",
                stream, REC_STREAMS);
        return;
    }
    end_locked(r, s); /* a begin without an end: close the previous one */
    s->gen = ++r->next_gen;
    s->stopped = false;
    rec_item_t *it = item_new(IT_BEGIN, s->gen, stream, NULL);
    if (it) {
        it->session_id = session_id;
        enqueue_locked(r, s, it);
        replay_inits_locked(r, s);
    } else {
        s->gen = 0;
    }
    pthread_mutex_unlock(&r->lock);
}

void st_rec_end(st_t *st, const char *stream)
{
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r || !stream)
        return;
    pthread_mutex_lock(&r->lock);
    rec_stream_t *s = find_stream(r, stream, false);
    if (s)
        end_locked(r, s);
    pthread_mutex_unlock(&r->lock);
}

/* ---- writer thread --------------------------------------------------------- */

/* Writes b to dir/name whole: tmp, fsync, rename, fsync(dir). Returns 0
 * or an errno value. */
static int write_file(const char *dir, const char *name, const pd_buf_t *b)
{
    char tmp[REC_PATH + 80], fin[REC_PATH + 80];
    int n1 = snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    int n2 = snprintf(fin, sizeof(fin), "%s/%s", dir, name);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(tmp) ||
        (size_t)n2 >= sizeof(fin))
        return ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    int err = 0;
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        off += (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, fin) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return err;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno;
    if (fsync(dfd) != 0)
        err = errno;
    close(dfd);
    return err;
}

static int mkdir_ok(const char *p)
{
    if (mkdir(p, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            return 0;
        return ENOTDIR;
    }
    return errno;
}

/* Stops w after an error (what: the failed step, err: errno or 0). */
static void wrec_fail(st_t *st, wrec_t *w, const char *rendition,
                      const char *what, int err)
{
    struct st_recorder_s *r = st->rec;
    if (w->failed)
        return;
    w->failed = true;
    atomic_fetch_add(&r->errors, 1);
    atomic_store(&r->stopped_full, true);
    if (err == ENOSPC || err == EDQUOT)
        atomic_fetch_add(&r->disk_full, 1);
    PD_LOGE(ST_MOD, "%s: recording %" PRId64 " stopped: %s%s%s failed%s%s",
            w->stream, w->id, rendition ? rendition : "",
            rendition ? ": " : "", what, err ? ": " : "",
            err ? strerror(err) : "");
    pthread_mutex_lock(&r->lock);
    rec_stream_t *s = find_stream(r, w->stream, false);
    if (s && s->gen == w->gen)
        s->stopped = true;
    pthread_mutex_unlock(&r->lock);
}

/* Creates w's row and directory if not done yet. */
static int ensure_row(st_t *st, wrec_t *w)
{
    if (w->id)
        return 0;
    sqlite3_stmt *s = NULL;
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    /* the id from the counter, never reused (schema v4); the directory is
     * named after it */
    int64_t id = 0;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
            SQLITE_OK &&
        sqlite3_exec(st->db, "UPDATE counters SET value = max(value,"
                     " (SELECT coalesce(max(id), 0) FROM recordings)) + 1"
                     " WHERE name = 'recording'", NULL, NULL, NULL) ==
            SQLITE_OK &&
        select_ids(st->db, "SELECT value FROM counters WHERE name ="
                   " 'recording'", 0, &id, 1) == 1 && id > 0 &&
        sqlite3_prepare_v2(st->db, "INSERT INTO recordings (id, session_id,"
                           " stream, dir, started_us) VALUES (?1, ?2, ?3,"
                           " ?1, ?4)", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, w->session_id);
        sqlite3_bind_text(s, 3, w->stream, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 4, pd_wall_us());
        if (sqlite3_step(s) == SQLITE_DONE &&
            sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
            w->id = id;
            rc = 0;
        }
    }
    if (rc)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    const char *msg = rc ? sqlite3_errmsg(st->db) : "";
    char emsg[160];
    snprintf(emsg, sizeof(emsg), "creating the row (%s)", msg);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    if (rc) {
        wrec_fail(st, w, NULL, emsg, 0);
        return rc;
    }
    char p[REC_PATH];
    snprintf(p, sizeof(p), "%s/%" PRId64, st->rec->root, w->id);
    int err = mkdir_ok(st->rec->root);
    if (!err)
        err = mkdir_ok(p);
    if (err) {
        wrec_fail(st, w, NULL, "creating its directory", err);
        return PD_EIO;
    }
    PD_LOGI(ST_MOD, "%s: recording %" PRId64 " started (session %" PRId64
            ")", w->stream, w->id, w->session_id);
    return 0;
}

/* Indexes one written file (and for segments, the rendition). */
static int index_file(st_t *st, wrec_t *w, const rec_item_t *it,
                      const char *kind, int64_t msn, const char *file,
                      const char *init_file, size_t bytes)
{
    sqlite3_stmt *s = NULL;
    int ok = 1;
    bool seg_row = strcmp(kind, "segment") == 0;
    pthread_mutex_lock(&st->lock);
    ok = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    if (ok && sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO rec_segments"
                                 " (recording_id, rendition, msn, kind, file,"
                                 " duration_us, pdt_us, discontinuity,"
                                 " init_file, bytes) VALUES"
                                 " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &s,
                                 NULL) == SQLITE_OK) {
        /* an init is stored with its first segment's item: the row
         * kind, not the item's, says which this is */
        bool seg = seg_row;
        sqlite3_bind_int64(s, 1, w->id);
        sqlite3_bind_text(s, 2, it->rendition, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, msn);
        sqlite3_bind_text(s, 4, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, file, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 6, seg ? it->duration_us : 0);
        sqlite3_bind_int64(s, 7, seg ? it->pdt_us : 0);
        sqlite3_bind_int(s, 8, seg && it->disc);
        sqlite3_bind_text(s, 9, init_file, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 10, (int64_t)bytes);
        ok = sqlite3_step(s) == SQLITE_DONE;
    } else {
        ok = 0;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (ok && seg_row) {
        ok = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO"
                                " rec_renditions (recording_id, rendition,"
                                " codecs, width, height) VALUES"
                                " (?, ?, ?, ?, ?)", -1, &s,
                                NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(s, 1, w->id);
            sqlite3_bind_text(s, 2, it->rendition, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, it->codecs, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(s, 4, it->width);
            sqlite3_bind_int(s, 5, it->height);
            ok = sqlite3_step(s) == SQLITE_DONE;
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    if (ok) {
        char sql[128];
        snprintf(sql, sizeof(sql), "UPDATE recordings SET bytes = bytes + %"
                 PRId64 " WHERE id = %" PRId64, (int64_t)bytes, w->id);
        ok = sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK;
    }
    if (ok)
        ok = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->lock);
    return ok ? 0 : PD_EIO;
}

/* Writes one file of rendition d and indexes it. */
/* Writes what the recording learned of its renditions into its session
 * (codecs, renditions: video by height, then audio), so a live session,
 * and one a crash ended, has them; the publisher's leaving writes the
 * packager's final description over it. Best effort. */
static void describe_session(st_t *st, const wrec_t *w)
{
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    if (sqlite3_prepare_v2(
            st->db,
            "UPDATE sessions SET"
            " codecs = coalesce((SELECT group_concat(c) FROM"
            "  (SELECT codecs c FROM rec_renditions WHERE recording_id = ?1"
            "   AND codecs != '' GROUP BY codecs ORDER BY max(height) DESC,"
            "   codecs)), ''),"
            " renditions = coalesce((SELECT group_concat(rendition) FROM"
            "  (SELECT rendition FROM rec_renditions WHERE recording_id = ?1"
            "   ORDER BY height DESC, rendition)), '')"
            " WHERE id = ?2",
            -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, w->id);
        sqlite3_bind_int64(s, 2, w->session_id);
        if (sqlite3_step(s) != SQLITE_DONE)
            PD_LOGD(ST_MOD, "%s: session %" PRId64 " not described: %s",
                    w->stream, w->session_id, sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
}

static int store(st_t *st, wrec_t *w, wrend_t *d, const rec_item_t *it,
                 const char *kind, int64_t msn, const char *file,
                 const char *init_file, const pd_buf_t *b)
{
    struct st_recorder_s *r = st->rec;
    char dir[REC_PATH];
    snprintf(dir, sizeof(dir), "%s/%" PRId64 "/%s", r->root, w->id, d->name);
    if (!d->dir_made) {
        int err = mkdir_ok(dir);
        if (err) {
            wrec_fail(st, w, d->name, "creating its directory", err);
            return PD_EIO;
        }
        d->dir_made = true;
    }
    int err = write_file(dir, file, b);
    if (err) {
        char what[96];
        snprintf(what, sizeof(what), "writing %s", file);
        wrec_fail(st, w, d->name, what, err);
        return PD_EIO;
    }
    if (index_file(st, w, it, kind, msn, file, init_file, b->len) != 0) {
        wrec_fail(st, w, d->name, "indexing", 0);
        return PD_EIO;
    }
    atomic_fetch_add(&r->written, 1);
    atomic_fetch_add(&r->wbytes, (long long)b->len);
    if (!d->described && strcmp(kind, "segment") == 0) {
        d->described = true;
        describe_session(st, w);
    }
    return 0;
}

static wrend_t *wrend(wrec_t *w, const char *name)
{
    for (int i = 0; i < w->nr; i++)
        if (strcmp(w->r[i].name, name) == 0)
            return &w->r[i];
    if (w->nr >= REC_RENDS)
        return NULL;
    wrend_t *d = &w->r[w->nr++];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    return d;
}

static void wrec_free(wrec_t *w)
{
    for (int i = 0; i < w->nr; i++)
        pd_buf_unref(&w->r[i].init);
    free(w);
}

static void do_segment(st_t *st, wrec_t *w, rec_item_t *it)
{
    wrend_t *d = wrend(w, it->rendition);
    if (!d) {
        atomic_fetch_add(&st->rec->dropped, 1);
        return;
    }
    if (ensure_row(st, w) != 0)
        return;
    char init_file[32];
    snprintf(init_file, sizeof(init_file), "init-%u.mp4", it->init_id);
    if (d->written_id != it->init_id || !d->written_id) {
        if (!d->init || d->init_id != it->init_id) {
            if (!d->warned)
                PD_LOGW(ST_MOD, "%s: recording %" PRId64 ": %s: segment %"
                        PRId64 " needs init %u, which was not received: "
                        "skipped", w->stream, w->id, d->name, it->msn,
                        it->init_id);
            d->warned = true;
            atomic_fetch_add(&st->rec->dropped, 1);
            return;
        }
        if (store(st, w, d, it, "init", it->init_id, init_file, "",
                  d->init) != 0)
            return;
        d->written_id = it->init_id;
    }
    char file[32];
    snprintf(file, sizeof(file), "%" PRId64 ".m4s", it->msn);
    store(st, w, d, it, "segment", it->msn, file, init_file, it->buf);
}

static void do_end(st_t *st, wrec_t *w)
{
    if (!w->id)
        return; /* nothing was recorded */
    int64_t now = pd_wall_us();
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE recordings SET ended_us = %" PRId64
             " WHERE id = %" PRId64, now, w->id);
    pthread_mutex_lock(&st->lock);
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc != SQLITE_OK) {
        PD_LOGE(ST_MOD, "%s: recording %" PRId64 " could not be closed",
                w->stream, w->id);
        atomic_fetch_add(&st->rec->errors, 1);
        return;
    }
    char url[64];
    snprintf(url, sizeof(url), "/vod/%" PRId64 "/index.m3u8", w->id);
    json_t *o = json_pack("{s:I,s:s,s:I,s:s}", "recording", (json_int_t)w->id,
                          "stream", w->stream, "session",
                          (json_int_t)w->session_id, "url", url);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (body)
        st_event(st, "recording.ready", body);
    free(body);
    json_decref(o);
    PD_LOGI(ST_MOD, "%s: recording %" PRId64 " ready: %s", w->stream, w->id,
            url);
}

static void process(st_t *st, rec_item_t *it)
{
    struct st_recorder_s *r = st->rec;
    wrec_t **pp = &r->open, *w = NULL;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->gen == it->gen) {
            w = *pp;
            break;
        }
    switch (it->kind) {
    case IT_BEGIN:
        if (w)
            break;
        w = calloc(1, sizeof(*w));
        if (!w) {
            atomic_fetch_add(&r->dropped, 1);
            break;
        }
        w->gen = it->gen;
        w->session_id = it->session_id;
        snprintf(w->stream, sizeof(w->stream), "%s", it->stream);
        w->next = r->open;
        r->open = w;
        break;
    case IT_INIT:
        if (w && !w->failed) {
            wrend_t *d = wrend(w, it->rendition);
            if (d) {
                pd_buf_unref(&d->init);
                d->init = pd_buf_ref(it->buf);
                d->init_id = (unsigned)it->msn;
            }
        }
        break;
    case IT_SEG:
        if (w && !w->failed)
            do_segment(st, w, it);
        break;
    case IT_END:
        if (w) {
            do_end(st, w);
            *pp = w->next;
            wrec_free(w);
        }
        break;
    }
}

static void *writer_main(void *arg)
{
    st_t *st = arg;
    struct st_recorder_s *r = st->rec;
    int64_t next_retain = pd_mono_us() + REC_RETAIN_US;
    int64_t next_marks = pd_mono_us() + ST_PLAYBACK_RELOAD_US;
    int64_t deadline = 0; /* drain deadline once stopping */
    pthread_mutex_lock(&r->lock);
    for (;;) {
        if (r->stop && !deadline)
            deadline = pd_mono_us() + REC_DRAIN_US;
        /* the timers first: a backlog (slow disk, many streams) must not
         * starve them */
        int64_t tnow = pd_mono_us();
        if (!r->stop && tnow >= next_marks) {
            /* not the recorder's business, but its thread: another
             * process's playback settings (the CLI) apply within 5 s */
            pthread_mutex_unlock(&r->lock);
            if (st_playback_reload(st))
                PD_LOGW(ST_MOD, "cannot reload the playback settings");
            pthread_mutex_lock(&r->lock);
            next_marks = pd_mono_us() + ST_PLAYBACK_RELOAD_US;
            continue;
        }
        if (!r->stop && tnow >= next_retain) {
            pthread_mutex_unlock(&r->lock);
            retention(st, r->root);
            pthread_mutex_lock(&r->lock);
            next_retain = pd_mono_us() + REC_RETAIN_US;
            continue;
        }
        if (r->head && (!deadline || pd_mono_us() < deadline)) {
            rec_item_t *it = r->head;
            r->head = it->next;
            if (!r->head)
                r->tail = NULL;
            r->n--;
            r->bytes -= it->buf ? it->buf->len : 0;
            pthread_mutex_unlock(&r->lock);
            process(st, it);
            pd_buf_unref(&it->buf);
            free(it);
            pthread_mutex_lock(&r->lock);
            continue;
        }
        if (r->stop)
            break;
        int64_t now = pd_mono_us();
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t next = next_marks < next_retain ? next_marks : next_retain;
        int64_t wait_us = next - now;
        if (wait_us > 1000000)
            wait_us = 1000000;
        if (wait_us < 1000)
            wait_us = 1000;
        ts.tv_sec += wait_us / 1000000;
        ts.tv_nsec += (wait_us % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    /* out of time: what is still queued is dropped */
    int dropped = 0;
    while (r->head) {
        rec_item_t *it = r->head;
        r->head = it->next;
        if (it->kind == IT_INIT || it->kind == IT_SEG)
            dropped++;
        pd_buf_unref(&it->buf);
        free(it);
    }
    r->tail = NULL;
    r->n = 0;
    r->bytes = 0;
    pthread_mutex_unlock(&r->lock);
    if (dropped) {
        atomic_fetch_add(&r->dropped, dropped);
        PD_LOGW(ST_MOD, "recorder stopping: %d queued item(s) dropped",
                dropped);
    }
    return NULL;
}

int st_rec_start(st_t *st)
{
    struct st_recorder_s *r = calloc(1, sizeof(*r));
    if (!r)
        return PD_ENOMEM;
    set_root(st, r->root, sizeof(r->root));
    r->sink.opaque = st;
    r->sink.init = sink_init;
    r->sink.segment = sink_segment;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return PD_ENOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    if (pthread_cond_init(&r->cond, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return PD_ENOMEM;
    }
    pthread_condattr_destroy(&ca);
    st->rec = r;
    if (pthread_create(&r->thread, NULL, writer_main, st) != 0) {
        st->rec = NULL;
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return PD_ENOMEM;
    }
    r->running = true;
    return 0;
}

void st_rec_stop(st_t *st)
{
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->running)
        pthread_join(r->thread, NULL);
    st->rec = NULL;
    while (r->open) { /* left open: closed by the next open's sweep */
        wrec_t *w = r->open;
        r->open = w->next;
        wrec_free(w);
    }
    for (int i = 0; i < REC_STREAMS; i++)
        for (int j = 0; j < REC_RENDS; j++)
            pd_buf_unref(&r->streams[i].inits[j].buf);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void st_rec_get_stats(st_t *st, st_rec_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    struct st_recorder_s *r = st ? st->rec : NULL;
    if (!r)
        return;
    out->written = atomic_load(&r->written);
    out->bytes = atomic_load(&r->wbytes);
    out->dropped = atomic_load(&r->dropped);
    out->errors = atomic_load(&r->errors);
    out->stopped_full = atomic_load(&r->stopped_full);
    out->disk_full = atomic_load(&r->disk_full);
}

/* ---- catalogue --------------------------------------------------------- */

int st_rec_list(st_t *st, int limit, st_rec_t **out, int *n)
{
    if (!st || !out || !n)
        return PD_EINVAL;
    *out = NULL;
    *n = 0;
    if (limit <= 0 || limit > 10000)
        limit = 10000;
    st_rec_t *v = calloc((size_t)limit, sizeof(*v));
    if (!v)
        return PD_ENOMEM;
    sqlite3_stmt *s = NULL;
    int rc = 0, k = 0;
    sqlite3 *db = st_reader_lock(st);
    if (sqlite3_prepare_v2(db,
                           "SELECT id, session_id, stream, started_us,"
                           " ended_us, bytes,"
                           " (SELECT max(d) FROM (SELECT sum(duration_us) d"
                           "  FROM rec_segments WHERE recording_id = r.id"
                           "  AND kind = 'segment' GROUP BY rendition)),"
                           " (SELECT group_concat(rendition) FROM"
                           "  (SELECT rendition FROM rec_renditions WHERE"
                           "   recording_id = r.id ORDER BY rendition))"
                           " FROM recordings r ORDER BY id DESC LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = PD_EIO;
    } else {
        sqlite3_bind_int(s, 1, limit);
        while (k < limit && sqlite3_step(s) == SQLITE_ROW) {
            st_rec_t *e = &v[k++];
            e->id = sqlite3_column_int64(s, 0);
            e->session_id = sqlite3_column_int64(s, 1);
            const char *t = (const char *)sqlite3_column_text(s, 2);
            snprintf(e->stream, sizeof(e->stream), "%s", t ? t : "");
            e->started_us = sqlite3_column_int64(s, 3);
            e->ended_us = sqlite3_column_int64(s, 4);
            e->bytes = sqlite3_column_int64(s, 5);
            e->duration_us = sqlite3_column_int64(s, 6);
            t = (const char *)sqlite3_column_text(s, 7);
            snprintf(e->renditions, sizeof(e->renditions), "%s",
                     t ? t : "");
        }
    }
    sqlite3_finalize(s);
    st_reader_unlock(st);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int st_rec_delete(st_t *st, int64_t id)
{
    if (!st)
        return PD_EINVAL;
    char root[600];
    set_root(st, root, sizeof(root));
    pthread_mutex_lock(&st->lock);
    int rc = delete_locked(st, root, id);
    pthread_mutex_unlock(&st->lock);
    if (!rc)
        PD_LOGI(ST_MOD, "recording %" PRId64 " deleted", id);
    return rc;
}

/* ---- VOD ------------------------------------------------------------------ */


/* ended_us of recording id via *ended; PD_ENOENT if none. db's lock
 * held. */
static int rec_ended(sqlite3 *db, int64_t id, int64_t *ended)
{
    return select_ids(db, "SELECT ended_us FROM recordings WHERE id = ?", id,
                      ended, 1) == 1 ? 0 : PD_ENOENT;
}

static void iso8601(int64_t us, char *out, size_t size)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char d[32];
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", d, (int)((us % 1000000) / 1000));
}

static int media_playlist(sqlite3 *db, int64_t id, const char *rendition,
                          pd_sb_t *b)
{
    int64_t ended = 0;
    if (rec_ended(db, id, &ended))
        return PD_ENOENT;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT max(duration_us), min(msn),"
                           " count(*) FROM rec_segments WHERE recording_id"
                           " = ? AND rendition = ? AND kind = 'segment'",
                           -1, &s, NULL) != SQLITE_OK)
        return PD_EIO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, rendition, -1, SQLITE_TRANSIENT);
    int64_t maxd = 0, first = 0, count = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        maxd = sqlite3_column_int64(s, 0);
        first = sqlite3_column_int64(s, 1);
        count = sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    if (count == 0)
        return PD_ENOENT;
    int64_t target = (maxd + 999999) / 1000000;
    if (target < 1)
        target = 1;
    pd_sb_printf(b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:%" PRId64
              "\n#EXT-X-PLAYLIST-TYPE:%s\n#EXT-X-MEDIA-SEQUENCE:%" PRId64
              "\n#EXT-X-INDEPENDENT-SEGMENTS\n", target,
              ended ? "VOD" : "EVENT", first);
    if (sqlite3_prepare_v2(db, "SELECT msn, duration_us, pdt_us,"
                           " discontinuity, init_file FROM rec_segments"
                           " WHERE recording_id = ? AND rendition = ? AND"
                           " kind = 'segment' ORDER BY msn", -1, &s,
                           NULL) != SQLITE_OK)
        return PD_EIO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, rendition, -1, SQLITE_TRANSIENT);
    char map[64] = "";
    int64_t prev = -1;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t msn = sqlite3_column_int64(s, 0);
        int64_t dur = sqlite3_column_int64(s, 1);
        int64_t pdt = sqlite3_column_int64(s, 2);
        bool disc = sqlite3_column_int(s, 3) != 0;
        const char *init = (const char *)sqlite3_column_text(s, 4);
        if (prev >= 0 && (disc || msn != prev + 1))
            pd_sb_printf(b, "#EXT-X-DISCONTINUITY\n");
        if (init && strcmp(init, map) != 0) {
            snprintf(map, sizeof(map), "%s", init);
            pd_sb_printf(b, "#EXT-X-MAP:URI=\"%s\"\n", map);
        }
        if (pdt > 0) {
            char d[48];
            iso8601(pdt, d, sizeof(d));
            pd_sb_printf(b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", d);
        }
        pd_sb_printf(b, "#EXTINF:%.5f,\n%" PRId64 ".m4s\n", dur / 1e6, msn);
        prev = msn;
    }
    sqlite3_finalize(s);
    if (ended)
        pd_sb_printf(b, "#EXT-X-ENDLIST\n");
    return 0;
}

/* Bandwidths (bits/s) of video rendition v (audio bytes of the same MSN
 * added when has_audio), or of "audio" alone when v is "audio". */
static void bandwidth(sqlite3 *db, int64_t id, const char *v, bool has_audio,
                      int64_t *peak, int64_t *avg)
{
    *peak = *avg = 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT v.bytes + CASE WHEN ? THEN"
                           " coalesce((SELECT a.bytes FROM rec_segments a"
                           " WHERE a.recording_id = v.recording_id AND"
                           " a.rendition = 'audio' AND a.kind = 'segment'"
                           " AND a.msn = v.msn), 0) ELSE 0 END,"
                           " v.duration_us FROM rec_segments v WHERE"
                           " v.recording_id = ? AND v.rendition = ? AND"
                           " v.kind = 'segment'", -1, &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int(s, 1, has_audio);
    sqlite3_bind_int64(s, 2, id);
    sqlite3_bind_text(s, 3, v, -1, SQLITE_TRANSIENT);
    int64_t tb = 0, td = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t by = sqlite3_column_int64(s, 0);
        int64_t du = sqlite3_column_int64(s, 1);
        tb += by;
        td += du;
        if (du > 0) {
            int64_t bw = (int64_t)((double)by * 8e6 / (double)du);
            if (bw > *peak)
                *peak = bw;
        }
    }
    sqlite3_finalize(s);
    if (td > 0)
        *avg = (int64_t)((double)tb * 8e6 / (double)td);
    if (*peak < 1)
        *peak = 1;
    if (*avg < 1)
        *avg = *peak;
}

typedef struct vrend_s {
    char name[REC_NAME];
    char codecs[64];
    int width, height;
} vrend_t;

static int multivariant(sqlite3 *db, int64_t id, pd_sb_t *b)
{
    int64_t ended = 0;
    if (rec_ended(db, id, &ended))
        return PD_ENOENT;
    vrend_t v[REC_RENDS], audio;
    int nv = 0;
    bool has_audio = false;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT rendition, codecs, width, height"
                           " FROM rec_renditions WHERE recording_id = ?"
                           " ORDER BY height DESC, rendition", -1, &s,
                           NULL) != SQLITE_OK)
        return PD_EIO;
    sqlite3_bind_int64(s, 1, id);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *n = (const char *)sqlite3_column_text(s, 0);
        const char *c = (const char *)sqlite3_column_text(s, 1);
        if (!rendition_ok(n))
            continue;
        vrend_t *e = strcmp(n, "audio") == 0 ? &audio
                     : nv < REC_RENDS        ? &v[nv++]
                                             : NULL;
        if (!e)
            continue;
        if (e == &audio)
            has_audio = true;
        snprintf(e->name, sizeof(e->name), "%s", n);
        snprintf(e->codecs, sizeof(e->codecs), "%s", c ? c : "");
        e->width = sqlite3_column_int(s, 2);
        e->height = sqlite3_column_int(s, 3);
    }
    sqlite3_finalize(s);
    if (nv == 0 && !has_audio)
        return PD_ENOENT;
    pd_sb_printf(b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (nv > 0 && has_audio)
        pd_sb_printf(b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\","
                  "NAME=\"audio\",LANGUAGE=\"und\",DEFAULT=YES,"
                  "AUTOSELECT=YES,URI=\"audio/index.m3u8\"\n");
    for (int i = 0; i < nv; i++) {
        int64_t peak, avg;
        bandwidth(db, id, v[i].name, has_audio, &peak, &avg);
        pd_sb_printf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64
                  ",AVERAGE-BANDWIDTH=%" PRId64 ",CODECS=\"%s%s%s\"", peak,
                  avg, v[i].codecs, has_audio ? "," : "",
                  has_audio ? audio.codecs : "");
        if (v[i].width > 0 && v[i].height > 0)
            pd_sb_printf(b, ",RESOLUTION=%dx%d", v[i].width, v[i].height);
        if (has_audio)
            pd_sb_printf(b, ",AUDIO=\"audio\"");
        pd_sb_printf(b, "\n%s/index.m3u8\n", v[i].name);
    }
    if (nv == 0) {
        int64_t peak, avg;
        bandwidth(db, id, "audio", false, &peak, &avg);
        pd_sb_printf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRId64
                  ",AVERAGE-BANDWIDTH=%" PRId64 ",CODECS=\"%s\"\n"
                  "audio/index.m3u8\n", peak, avg, audio.codecs);
    }
    return 0;
}

int st_vod_playlist(st_t *st, int64_t id, const char *rendition,
                    pd_buf_t **out)
{
    if (!out)
        return PD_EINVAL;
    *out = NULL;
    if (!st)
        return PD_EINVAL;
    if (rendition && !rendition_ok(rendition))
        return PD_ENOENT;
    pd_sb_t b = {0};
    sqlite3 *db = st_reader_lock(st);
    int rc = rendition ? media_playlist(db, id, rendition, &b)
                       : multivariant(db, id, &b);
    st_reader_unlock(st);
    if (rc) {
        free(b.p);
        return rc;
    }
    return pd_sb_finish(&b, out);
}

int st_vod_file(st_t *st, int64_t id, const char *rendition,
                const char *file, char *path, size_t path_size)
{
    if (!st || !path || path_size == 0)
        return PD_EINVAL;
    path[0] = '\0';
    if (!rendition_ok(rendition) || !file_ok(file))
        return PD_ENOENT;
    sqlite3_stmt *s = NULL;
    int rc = PD_ENOENT;
    char dir[32] = "";
    sqlite3 *db = st_reader_lock(st);
    if (sqlite3_prepare_v2(db, "SELECT r.dir FROM rec_segments s JOIN"
                           " recordings r ON r.id = s.recording_id WHERE"
                           " s.recording_id = ? AND s.rendition = ? AND"
                           " s.file = ?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_text(s, 2, rendition, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, file, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(s, 0);
            if (d && digits(d, strlen(d))) {
                snprintf(dir, sizeof(dir), "%s", d);
                rc = 0;
            }
        }
    } else {
        rc = PD_EIO;
    }
    sqlite3_finalize(s);
    st_reader_unlock(st);
    if (rc)
        return rc;
    char root[600];
    set_root(st, root, sizeof(root));
    int n = snprintf(path, path_size, "%s/%s/%s/%s", root, dir, rendition,
                     file);
    if (n < 0 || (size_t)n >= path_size) {
        path[0] = '\0';
        return PD_EINVAL;
    }
    return 0;
}

uint64_t st_rec_generation(st_t *st)
{
    return st ? (uint64_t)atomic_load(&st->rec_gen) : 0;
}

int st_rec_stream(st_t *st, int64_t id, char *stream, size_t size,
                  int64_t *ended_us)
{
    if (!st || !stream || size == 0 || !ended_us)
        return PD_EINVAL;
    stream[0] = '\0';
    *ended_us = 0;
    sqlite3_stmt *s = NULL;
    int rc = PD_ENOENT;
    sqlite3 *db = st_reader_lock(st);
    if (sqlite3_prepare_v2(db,
                           "SELECT stream, ended_us FROM recordings "
                           "WHERE id = ?",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(s, 0);
            *ended_us = sqlite3_column_int64(s, 1);
            int n = snprintf(stream, size, "%s", v ? v : "");
            rc = n > 0 && (size_t)n < size ? 0 : PD_EINVAL;
        }
    } else {
        rc = PD_EIO;
    }
    sqlite3_finalize(s);
    st_reader_unlock(st);
    return rc;
}
