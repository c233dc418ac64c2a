/*
 * tests/unit/test_rec.c - the recorder (storage/rec.c): files and index of
 * a recorded session, VOD playlists, st_vod_file's validation, cleanup on
 * open, retention, write errors, queue overflow and a bounded close. The
 * packager is not needed: the tests drive st_rec_sink()'s callbacks with
 * small fake buffers. Every test works in its own mkdtemp() directory;
 * Check forks each test.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/clock.h"
#include "storage/st_int.h"
#include "storage/storage.h"
#include "httpd/httpd_int.h"

#include <check.h>
#include <stdatomic.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static pd_config_t cfg;
static char dbpath[600];

#define PDT0 1700000000000000LL /* 2023-11-14T22:13:20.000Z */

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/podium-rec-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    pd_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/data", tmpdir);
    cfg.db_path[0] = '\0';
    cfg.recording = 1;
    cfg.rec_max_age_s = 0;
    cfg.rec_max_mb = 0;
    snprintf(dbpath, sizeof(dbpath), "%s/podium.db", cfg.data_dir);
    pd_log_set_level(PD_LOG_ERROR);
}

static void teardown(void)
{
    rm_rf(tmpdir);
}

static st_t *open_ok(void)
{
    st_t *st = NULL;
    ck_assert_int_eq(st_open(&cfg, NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* mkdir -p path (0700). */
static int system_mkdir_p(const char *path)
{
    char d[1200];
    snprintf(d, sizeof(d), "%s", path);
    for (char *q = d + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        mkdir(d, 0700);
        *q = '/';
    }
    return mkdir(d, 0700);
}

static int64_t raw_int(const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
                                     NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
                                     NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A buffer of len bytes, each (tag + i) & 0xff. */
static pd_buf_t *fake(size_t len, int tag)
{
    pd_buf_t *b = pd_buf_new(len);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len; i++)
        b->data[i] = (uint8_t)(tag + i);
    return b;
}

static void send_init(st_t *st, const char *stream, const char *rend,
                      unsigned id, size_t len, int tag)
{
    const pkg_sink_t *k = st_rec_sink(st);
    ck_assert_ptr_nonnull(k);
    pd_buf_t *b = fake(len, tag);
    k->init(k->opaque, stream, rend, id, b);
    pd_buf_unref(&b); /* the sink took its own reference */
}

static void send_seg(st_t *st, const char *stream, const char *rend,
                     int64_t msn, unsigned init_id, int64_t dur_us,
                     int64_t pdt_us, bool disc, size_t len, int tag)
{
    const pkg_sink_t *k = st_rec_sink(st);
    pd_buf_t *b = fake(len, tag);
    bool audio = strcmp(rend, "audio") == 0;
    pkg_seg_event_t e = {
        .stream = stream, .rendition = rend, .msn = msn,
        .duration_us = dur_us, .pdt_us = pdt_us, .discontinuity = disc,
        .init_id = init_id, .codecs = audio ? "mp4a.40.2" : "avc1.64001f",
        .width = audio ? 0 : 1280, .height = audio ? 0 : 720, .buf = b,
    };
    k->segment(k->opaque, &e);
    pd_buf_unref(&b);
}

static st_rec_stats_t stats(st_t *st)
{
    st_rec_stats_t s;
    st_rec_get_stats(st, &s);
    return s;
}

static void wait_written(st_t *st, int64_t n)
{
    for (int i = 0; i < 2000; i++) {
        if (stats(st).written >= n)
            return;
        usleep(5000);
    }
    ck_abort_msg("only %lld of %lld items written",
                 (long long)stats(st).written, (long long)n);
}

static void wait_errors(st_t *st, int64_t n)
{
    for (int i = 0; i < 2000 && stats(st).errors < n; i++)
        usleep(5000);
    ck_assert_int_ge(stats(st).errors, n);
}

/* The recording of session sid (waits for it to exist; and to be ended
 * when ended). */
static st_rec_t find_rec(st_t *st, int64_t sid, bool ended)
{
    for (int i = 0; i < 2000; i++) {
        st_rec_t *v = NULL;
        int n = 0;
        ck_assert_int_eq(st_rec_list(st, 100, &v, &n), 0);
        for (int j = 0; j < n; j++) {
            if (v[j].session_id == sid && (!ended || v[j].ended_us)) {
                st_rec_t r = v[j];
                free(v);
                return r;
            }
        }
        free(v);
        usleep(5000);
    }
    ck_abort_msg("no recording for session %lld", (long long)sid);
    st_rec_t none = {0};
    return none;
}

static void read_file(const char *path, uint8_t *out, size_t size,
                      size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    *n = fread(out, 1, size, f);
    fclose(f);
}

/* Does path hold exactly fake(len, tag)? */
static void check_file(int64_t id, const char *rend, const char *file,
                       size_t len, int tag)
{
    char p[1200];
    snprintf(p, sizeof(p), "%s/recordings/%lld/%s/%s", cfg.data_dir,
             (long long)id, rend, file);
    static uint8_t buf[1 << 20];
    size_t n = 0;
    read_file(p, buf, sizeof(buf), &n);
    ck_assert_uint_eq(n, len);
    for (size_t i = 0; i < len; i++)
        ck_assert_uint_eq(buf[i], (uint8_t)(tag + i));
}

static int tmp_found;
static int count_tmp(const char *p, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(p);
    if (flag == FTW_F && n > 4 && strcmp(p + n - 4, ".tmp") == 0)
        tmp_found++;
    return 0;
}

static bool exists(const char *fmt, long long id)
{
    char p[1200], rel[256];
    snprintf(rel, sizeof(rel), fmt, id);
    snprintf(p, sizeof(p), "%s/recordings/%s", cfg.data_dir, rel);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Checks body against the lines (NULL-terminated), one by one. */
static void check_lines(const pd_buf_t *b, const char *const *lines)
{
    char *text = strndup((const char *)b->data, b->len);
    ck_assert_ptr_nonnull(text);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    int i = 0;
    for (; lines[i]; i++) {
        ck_assert_msg(line != NULL, "line %d missing: %s", i, lines[i]);
        ck_assert_str_eq(line, lines[i]);
        line = strtok_r(NULL, "\n", &save);
    }
    ck_assert_msg(line == NULL, "extra line: %s", line ? line : "");
    free(text);
}

/* A standard session on "live/a": source + audio, an init change with a
 * discontinuity at 12 and a jump from 12 to 14. Returns its session id;
 * 11 items are written. */
static int64_t record_session(st_t *st, const char *stream)
{
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, stream, "127.0.0.1:1", &sid), 0);
    /* the video init arrives before st_rec_begin: kept and replayed */
    send_init(st, stream, "source", 1, 100, 1);
    st_rec_begin(st, stream, sid);
    send_init(st, stream, "audio", 1, 50, 2);
    send_seg(st, stream, "source", 10, 1, 2000000, PDT0, false, 1000, 10);
    send_seg(st, stream, "audio", 10, 1, 2000000, PDT0, false, 250, 20);
    send_seg(st, stream, "source", 11, 1, 2000000, PDT0 + 2000000, false,
             1000, 11);
    send_seg(st, stream, "audio", 11, 1, 2000000, PDT0 + 2000000, false,
             250, 21);
    send_init(st, stream, "source", 2, 120, 3);
    send_seg(st, stream, "source", 12, 2, 2500000, PDT0 + 4000000, true,
             1000, 12);
    send_seg(st, stream, "audio", 12, 1, 2500000, PDT0 + 4000000, true,
             250, 22);
    send_seg(st, stream, "source", 14, 2, 2000000, PDT0 + 10000000, false,
             1000, 14);
    send_seg(st, stream, "audio", 14, 1, 2000000, PDT0 + 10000000, false,
             250, 24);
    return sid;
}

static const char *const SOURCE_VOD[] = {
    "#EXTM3U",
    "#EXT-X-VERSION:6",
    "#EXT-X-TARGETDURATION:3",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-MEDIA-SEQUENCE:10",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    "#EXT-X-MAP:URI=\"init-1.mp4\"",
    "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z",
    "#EXTINF:2.00000,",
    "10.m4s",
    "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z",
    "#EXTINF:2.00000,",
    "11.m4s",
    "#EXT-X-DISCONTINUITY",
    "#EXT-X-MAP:URI=\"init-2.mp4\"",
    "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z",
    "#EXTINF:2.50000,",
    "12.m4s",
    "#EXT-X-DISCONTINUITY",
    "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z",
    "#EXTINF:2.00000,",
    "14.m4s",
    "#EXT-X-ENDLIST",
    NULL,
};

/* ---- tests ----------------------------------------------------------------- */

START_TEST(session_written_and_indexed)
{
    st_t *st = open_ok();
    int64_t hid = 0;
    ck_assert_int_eq(st_hook_create(st, "http://127.0.0.1:9/hook",
                                    "recording.ready", "s3cret", &hid), 0);
    int64_t sid = record_session(st, "live/a");
    wait_written(st, 11);
    st_rec_t r = find_rec(st, sid, false);
    ck_assert_int_eq(r.ended_us, 0);
    ck_assert_str_eq(r.stream, "live/a");
    check_file(r.id, "source", "init-1.mp4", 100, 1);
    check_file(r.id, "source", "init-2.mp4", 120, 3);
    check_file(r.id, "audio", "init-1.mp4", 50, 2);
    check_file(r.id, "source", "10.m4s", 1000, 10);
    check_file(r.id, "source", "11.m4s", 1000, 11);
    check_file(r.id, "source", "12.m4s", 1000, 12);
    check_file(r.id, "source", "14.m4s", 1000, 14);
    check_file(r.id, "audio", "14.m4s", 250, 24);
    ck_assert(!exists("%lld/source/13.m4s", r.id));
    tmp_found = 0;
    char root[700];
    snprintf(root, sizeof(root), "%s/recordings", cfg.data_dir);
    nftw(root, count_tmp, 16, FTW_PHYS);
    ck_assert_int_eq(tmp_found, 0);

    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_segments WHERE "
                             "kind = 'segment'"), 8);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_segments WHERE "
                             "kind = 'init'"), 3);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_segments WHERE "
                             "file = '12.m4s' AND rendition = 'source' AND "
                             "init_file = 'init-2.mp4' AND discontinuity = 1"
                             " AND duration_us = 2500000 AND bytes = 1000"),
                     1);
    ck_assert_int_eq(raw_int("SELECT bytes FROM recordings"),
                     100 + 120 + 50 + 4 * 1000 + 4 * 250);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_renditions WHERE "
                             "codecs = 'avc1.64001f' AND width = 1280 AND "
                             "height = 720"), 1);

    /* while recording: EVENT, no ENDLIST */
    pd_buf_t *b = NULL;
    ck_assert_int_eq(st_vod_playlist(st, r.id, "source", &b), 0);
    char *text = strndup((const char *)b->data, b->len);
    ck_assert_ptr_nonnull(strstr(text, "#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    ck_assert_ptr_null(strstr(text, "ENDLIST"));
    ck_assert_ptr_null(strstr(text, "TYPE:VOD"));
    free(text);
    pd_buf_unref(&b);

    st_stats_t hs;
    st_get_stats(st, &hs);
    ck_assert_int_eq(hs.hooks_queued + hs.hooks_failed + hs.hooks_sent, 0);
    st_rec_end(st, "live/a");
    r = find_rec(st, sid, true);
    ck_assert_int_gt(r.ended_us, 0);
    ck_assert_int_eq(r.duration_us, 8500000);
    ck_assert_str_eq(r.renditions, "audio,source");
    for (int i = 0; i < 500; i++) {
        st_get_stats(st, &hs);
        if (hs.hooks_queued + hs.hooks_failed + hs.hooks_sent > 0)
            break;
        usleep(5000);
    }
    ck_assert_int_ge(hs.hooks_queued + hs.hooks_failed + hs.hooks_sent, 1);
    ck_assert_int_eq(hs.hooks_dropped, 0);

    ck_assert_int_eq(st_vod_playlist(st, r.id, "source", &b), 0);
    check_lines(b, SOURCE_VOD);
    pd_buf_unref(&b);

    const char *const audio[] = {
        "#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:3",
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MEDIA-SEQUENCE:10",
        "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-MAP:URI=\"init-1.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z",
        "#EXTINF:2.00000,", "10.m4s",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z",
        "#EXTINF:2.00000,", "11.m4s", "#EXT-X-DISCONTINUITY",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z",
        "#EXTINF:2.50000,", "12.m4s", "#EXT-X-DISCONTINUITY",
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z",
        "#EXTINF:2.00000,", "14.m4s", "#EXT-X-ENDLIST", NULL,
    };
    ck_assert_int_eq(st_vod_playlist(st, r.id, "audio", &b), 0);
    check_lines(b, audio);
    pd_buf_unref(&b);

    /* (1000 + 250) * 8 / 2 s peak; 5000 * 8 / 8.5 s average */
    const char *const mv[] = {
        "#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\","
        "LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,"
        "URI=\"audio/index.m3u8\"",
        "#EXT-X-STREAM-INF:BANDWIDTH=5000,AVERAGE-BANDWIDTH=4705,"
        "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,"
        "AUDIO=\"audio\"",
        "source/index.m3u8", NULL,
    };
    ck_assert_int_eq(st_vod_playlist(st, r.id, NULL, &b), 0);
    check_lines(b, mv);
    pd_buf_unref(&b);

    ck_assert_int_eq(st_vod_playlist(st, r.id + 1, NULL, &b), PD_ENOENT);
    ck_assert_int_eq(st_vod_playlist(st, r.id, "720p", &b), PD_ENOENT);
    ck_assert_int_eq(st_vod_playlist(st, r.id, "../source", &b), PD_ENOENT);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(stats(st).dropped, 0);
    ck_assert_int_eq(stats(st).errors, 0);
    st_close(&st);
}
END_TEST

START_TEST(audio_only_multivariant)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/r", "p", &sid), 0);
    st_rec_begin(st, "live/r", sid);
    send_init(st, "live/r", "audio", 3, 40, 1);
    send_seg(st, "live/r", "audio", 3, 3, 1000000, PDT0, false, 500, 2);
    st_rec_end(st, "live/r");
    st_rec_t r = find_rec(st, sid, true);
    pd_buf_t *b = NULL;
    ck_assert_int_eq(st_vod_playlist(st, r.id, NULL, &b), 0);
    const char *const mv[] = {
        "#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=4000,AVERAGE-BANDWIDTH=4000,"
        "CODECS=\"mp4a.40.2\"",
        "audio/index.m3u8", NULL,
    };
    check_lines(b, mv);
    pd_buf_unref(&b);
    st_close(&st);
}
END_TEST

/* A recording whose first segment cannot be written holds only its init:
 * it must not claim a rendition (its VOD multivariant lists no variant
 * that would 404) and the public list leaves it out. */
START_TEST(init_only_recording_has_no_variant)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/i", "p", &sid), 0);
    st_rec_begin(st, "live/i", sid);
    /* the first recording of a fresh catalogue is id 1, directory "1":
     * a directory where the segment's temporary file goes makes its
     * write fail (EISDIR), after the init was written */
    char p[1200];
    snprintf(p, sizeof(p), "%s/recordings/1/source/1.m4s.tmp", cfg.data_dir);
    ck_assert_int_eq(system_mkdir_p(p), 0);
    send_init(st, "live/i", "source", 1, 10, 1);
    send_seg(st, "live/i", "source", 1, 1, 1000000, PDT0, false, 100, 1);
    wait_errors(st, 1);
    st_rec_end(st, "live/i");
    st_rec_t r = find_rec(st, sid, true);
    ck_assert_int_eq(r.id, 1);
    ck_assert_int_eq(r.duration_us, 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_renditions"), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_segments WHERE "
                             "kind = 'init' AND duration_us = 0"), 1);
    pd_buf_t *b = NULL;
    /* nothing to play: no multivariant (404), not one with a dead link */
    ck_assert_int_eq(st_vod_playlist(st, r.id, NULL, &b), PD_ENOENT);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(httpd_recordings_json(st, &b), 0);
    ck_assert_int_eq(b->len, 2); /* "[]" */
    pd_buf_unref(&b);
    st_close(&st);
}
END_TEST

/* What HTTP threads read (VOD playlists and files, the recordings list)
 * never waits for a write: here the writer's connection is held (its
 * mutex, as during a slow commit) and another connection holds the
 * database's write lock in an open transaction; the reads still finish. */
typedef struct {
    st_t *st;
    int64_t id;
    atomic_int done; /* 1: all reads answered, 2: one failed */
} reads_t;

static void *vod_reads(void *arg)
{
    reads_t *r = arg;
    pd_buf_t *b = NULL;
    int ok = st_vod_playlist(r->st, r->id, NULL, &b) == 0 && b;
    pd_buf_unref(&b);
    ok = ok && st_vod_playlist(r->st, r->id, "source", &b) == 0 && b;
    pd_buf_unref(&b);
    char path[1200], stream[256];
    int64_t ended = 0;
    ok = ok && st_vod_file(r->st, r->id, "source", "1.m4s", path,
                           sizeof(path)) == 0;
    ok = ok && st_rec_stream(r->st, r->id, stream, sizeof(stream),
                             &ended) == 0 && ended > 0;
    st_rec_t *v = NULL;
    int n = 0;
    ok = ok && st_rec_list(r->st, 10, &v, &n) == 0 && n == 1;
    free(v);
    atomic_store(&r->done, ok ? 1 : 2);
    return NULL;
}

START_TEST(reads_do_not_wait_for_writes)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/w", "p", &sid), 0);
    st_rec_begin(st, "live/w", sid);
    send_init(st, "live/w", "source", 1, 10, 1);
    send_seg(st, "live/w", "source", 1, 1, 1000000, PDT0, false, 100, 1);
    wait_written(st, 2);
    st_rec_end(st, "live/w");
    st_rec_t rec = find_rec(st, sid, true);

    sqlite3 *w = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &w, SQLITE_OPEN_READWRITE, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(w, "BEGIN IMMEDIATE; INSERT INTO "
                                  "stream_settings VALUES ('live/z', 1, 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    pthread_mutex_lock(&st->lock);
    reads_t r = {.st = st, .id = rec.id};
    atomic_init(&r.done, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, vod_reads, &r), 0);
    for (int i = 0; i < 500 && !atomic_load(&r.done); i++)
        usleep(10000);
    int done = atomic_load(&r.done);
    pthread_mutex_unlock(&st->lock); /* unblocks the reads if they wait */
    sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(w);
    pthread_join(t, NULL);
    ck_assert_msg(done == 1, "reads %s while a write was in progress",
                  done == 0 ? "waited" : "failed");
    st_close(&st);
}
END_TEST

/* A deleted recording's id (and so its /vod/<id>/ URLs, cached by CDNs
 * for a day, and its directory) is never given to another, even when it
 * was the newest. */
START_TEST(recording_ids_never_reused)
{
    st_t *st = open_ok();
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        int64_t sid = 0;
        ck_assert_int_eq(st_session_start(st, "live/n", "p", &sid), 0);
        st_rec_begin(st, "live/n", sid);
        send_init(st, "live/n", "source", 1, 10, 1);
        send_seg(st, "live/n", "source", 1, 1, 1000000, PDT0, false, 100, 1);
        st_rec_end(st, "live/n");
        st_rec_t r = find_rec(st, sid, true);
        ids[i] = r.id;
        ck_assert_int_eq(st_session_end(st, sid, "left"), 0);
        if (i < 2)
            ck_assert_int_eq(st_rec_delete(st, r.id), 0); /* the newest */
    }
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 2);
    ck_assert_int_eq(ids[2], 3);
    st_close(&st);
    /* and across a restart */
    st = open_ok();
    ck_assert_int_eq(st_rec_delete(st, 3), 0);
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/n", "p", &sid), 0);
    st_rec_begin(st, "live/n", sid);
    send_init(st, "live/n", "source", 1, 10, 1);
    send_seg(st, "live/n", "source", 1, 1, 1000000, PDT0, false, 100, 1);
    st_rec_end(st, "live/n");
    ck_assert_int_eq(find_rec(st, sid, true).id, 4);
    st_close(&st);
}
END_TEST

/* A recorded session is described (codecs, renditions) as soon as each
 * rendition's first segment is written: while it is live, and after a
 * crash (which never reaches the publisher's leaving). */
START_TEST(session_described_while_recording)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/d", "p", &sid), 0);
    st_rec_begin(st, "live/d", sid);
    send_init(st, "live/d", "source", 1, 10, 1);
    send_init(st, "live/d", "audio", 1, 10, 2);
    send_seg(st, "live/d", "audio", 1, 1, 1000000, PDT0, false, 100, 3);
    send_seg(st, "live/d", "source", 1, 1, 1000000, PDT0, false, 100, 4);
    wait_written(st, 4);
    st_session_t *v = NULL;
    int n = 0;
    ck_assert_int_eq(st_session_list(st, true, 10, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(v[0].ended_us, 0); /* live */
    ck_assert_str_eq(v[0].codecs, "avc1.64001f,mp4a.40.2");
    ck_assert_str_eq(v[0].renditions, "source,audio");
    free(v);
    st_close(&st); /* no st_rec_end, no st_session_end: as after kill -9 */
    st = open_ok();
    ck_assert_int_eq(st_session_list(st, false, 10, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(v[0].end_reason, "crash");
    ck_assert_str_eq(v[0].codecs, "avc1.64001f,mp4a.40.2");
    ck_assert_str_eq(v[0].renditions, "source,audio");
    free(v);
    st_close(&st);
}
END_TEST

START_TEST(not_recording_ignored)
{
    st_t *st = open_ok();
    /* no st_rec_begin: nothing is written */
    send_init(st, "live/x", "source", 1, 10, 1);
    send_seg(st, "live/x", "source", 1, 1, 1000000, PDT0, false, 10, 1);
    st_rec_end(st, "live/x");
    /* recording off */
    cfg.recording = 0;
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/y", "p", &sid), 0);
    st_rec_begin(st, "live/y", sid);
    send_seg(st, "live/y", "source", 1, 1, 1000000, PDT0, false, 10, 1);
    st_rec_end(st, "live/y");
    usleep(200000);
    ck_assert_int_eq(stats(st).written, 0);
    ck_assert_int_eq(stats(st).dropped, 0);
    st_close(&st);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM recordings"), 0);
}
END_TEST

START_TEST(vod_file_validation)
{
    st_t *st = open_ok();
    int64_t sid = record_session(st, "live/a");
    st_rec_end(st, "live/a");
    st_rec_t r = find_rec(st, sid, true);
    char p[1200], want[1200];
    ck_assert_int_eq(st_vod_file(st, r.id, "source", "10.m4s", p,
                                 sizeof(p)), 0);
    snprintf(want, sizeof(want), "%s/recordings/%lld/source/10.m4s",
             cfg.data_dir, (long long)r.id);
    ck_assert_str_eq(p, want);
    ck_assert_int_eq(st_vod_file(st, r.id, "source", "init-2.mp4", p,
                                 sizeof(p)), 0);
    ck_assert_int_eq(st_vod_file(st, r.id, "audio", "init-1.mp4", p,
                                 sizeof(p)), 0);
    const char *bad[] = {"../x", "1.m4s/../..", "13.m4s", "init-3.mp4",
                         "10.m4s.tmp", "10.M4S", "", ".m4s", "init-.mp4",
                         "-1.m4s", "10.m4s\n", "/etc/passwd",
                         "99999999999999999999.m4s", "index.m3u8",
                         "init-1.mp4/../10.m4s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(st_vod_file(st, r.id, "source", bad[i], p,
                                  sizeof(p)) == PD_ENOENT, "%s", bad[i]);
        ck_assert_str_eq(p, "");
    }
    const char *badr[] = {"..", "../source", "Source", "", "a/b",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "720p"};
    for (size_t i = 0; i < sizeof(badr) / sizeof(badr[0]); i++)
        ck_assert_int_eq(st_vod_file(st, r.id, badr[i], "10.m4s", p,
                                     sizeof(p)), PD_ENOENT);
    ck_assert_int_eq(st_vod_file(st, r.id, NULL, "10.m4s", p, sizeof(p)),
                     PD_ENOENT);
    ck_assert_int_eq(st_vod_file(st, r.id, "source", NULL, p, sizeof(p)),
                     PD_ENOENT);
    ck_assert_int_eq(st_vod_file(st, r.id + 7, "source", "10.m4s", p,
                                 sizeof(p)), PD_ENOENT);
    /* validation does not rely on the index: hostile rows are refused */
    char sql[400];
    snprintf(sql, sizeof(sql), "INSERT INTO rec_segments (recording_id,"
             " rendition, msn, kind, file, bytes) VALUES (%lld, 'source',"
             " 900, 'segment', '../../x.m4s', 1), (%lld, 'source', 901,"
             " 'segment', 'a.m4s', 1), (%lld, '../..', 902, 'segment',"
             " '902.m4s', 1)", (long long)r.id, (long long)r.id,
             (long long)r.id);
    raw_exec(sql);
    ck_assert_int_eq(st_vod_file(st, r.id, "source", "../../x.m4s", p,
                                 sizeof(p)), PD_ENOENT);
    ck_assert_int_eq(st_vod_file(st, r.id, "source", "a.m4s", p,
                                 sizeof(p)), PD_ENOENT);
    ck_assert_int_eq(st_vod_file(st, r.id, "../..", "902.m4s", p,
                                 sizeof(p)), PD_ENOENT);
    st_close(&st);
}
END_TEST

START_TEST(tmp_deleted_on_open)
{
    char p[1200];
    snprintf(p, sizeof(p), "%s", cfg.data_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/recordings", cfg.data_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/recordings/5", cfg.data_dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/recordings/5/source", cfg.data_dir);
    mkdir(p, 0700);
    const char *files[] = {"5/source/7.m4s.tmp", "5/source/7.m4s",
                           "5/source/init-1.mp4.tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/recordings/%s", cfg.data_dir, files[i]);
        FILE *f = fopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        fputs("x", f);
        fclose(f);
    }
    st_t *st = open_ok();
    ck_assert(!exists("%lld/source/7.m4s.tmp", 5));
    ck_assert(!exists("%lld/source/init-1.mp4.tmp", 5));
    ck_assert(exists("%lld/source/7.m4s", 5));
    st_close(&st);
}
END_TEST

START_TEST(crashed_recording_closed_on_open)
{
    st_t *st = open_ok();
    int64_t sid = record_session(st, "live/a");
    wait_written(st, 11);
    st_rec_t r = find_rec(st, sid, false);
    st_close(&st); /* no st_rec_end, no st_session_end: as after a crash */
    ck_assert_int_eq(raw_int("SELECT ended_us FROM recordings"), 0);
    st = open_ok();
    st_rec_t r2 = find_rec(st, sid, true);
    ck_assert_int_eq(r2.id, r.id);
    int64_t want = PDT0 + 12000000;
    if (r2.started_us > want)
        want = r2.started_us;
    ck_assert_int_eq(r2.ended_us, want);
    pd_buf_t *b = NULL;
    ck_assert_int_eq(st_vod_playlist(st, r.id, "source", &b), 0);
    check_lines(b, SOURCE_VOD);
    pd_buf_unref(&b);
    st_close(&st);
}
END_TEST

START_TEST(retention_by_age)
{
    st_t *st = open_ok();
    int64_t s1 = record_session(st, "live/a");
    st_rec_end(st, "live/a");
    st_rec_t r1 = find_rec(st, s1, true);
    int64_t s2 = record_session(st, "live/b");
    st_rec_end(st, "live/b");
    st_rec_t r2 = find_rec(st, s2, true);
    ck_assert_int_eq(st_rec_delete(st, r1.id + r2.id + 5), PD_ENOENT);
    st_close(&st);
    ck_assert(exists("%lld/source/10.m4s", r1.id));
    char sql[200];
    snprintf(sql, sizeof(sql), "UPDATE recordings SET ended_us = %lld "
             "WHERE id = %lld", (long long)(pd_wall_us() - 7200000000LL),
             (long long)r1.id);
    raw_exec(sql);
    cfg.rec_max_age_s = 3600;
    st = open_ok();
    ck_assert(!exists("%lld/source/10.m4s", r1.id));
    ck_assert(!exists("%lld", r1.id));
    ck_assert(exists("%lld/source/10.m4s", r2.id));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM rec_segments WHERE "
             "recording_id = %lld", (long long)r1.id);
    ck_assert_int_eq(raw_int(sql), 0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM rec_renditions WHERE "
             "recording_id = %lld", (long long)r1.id);
    ck_assert_int_eq(raw_int(sql), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM recordings"), 1);
    /* explicit delete of the other: the generation moves before and after
     * (playlists cached before or during must not be served) */
    uint64_t gen = st_rec_generation(st);
    ck_assert_int_eq(st_rec_delete(st, r2.id), 0);
    ck_assert_uint_eq(st_rec_generation(st), gen + 2);
    ck_assert(!exists("%lld", r2.id));
    ck_assert_int_eq(st_rec_delete(st, r2.id), PD_ENOENT);
    st_close(&st);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM recordings"), 0);
}
END_TEST

START_TEST(retention_by_size)
{
    st_t *st = open_ok();
    int64_t sid[3];
    st_rec_t r[3];
    const char *names[] = {"live/a", "live/b", "live/c"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(st_session_start(st, names[i], "p", &sid[i]), 0);
        st_rec_begin(st, names[i], sid[i]);
        send_init(st, names[i], "source", 1, 10, 1);
        send_seg(st, names[i], "source", 1, 1, 2000000, PDT0, false,
                 400 * 1024, i);
        st_rec_end(st, names[i]);
        r[i] = find_rec(st, sid[i], true);
        usleep(2000); /* distinct ended_us */
    }
    /* a delete while recording is refused */
    int64_t s4 = 0;
    ck_assert_int_eq(st_session_start(st, "live/d", "p", &s4), 0);
    st_rec_begin(st, "live/d", s4);
    send_init(st, "live/d", "source", 1, 10, 1);
    send_seg(st, "live/d", "source", 1, 1, 2000000, PDT0, false, 10, 1);
    st_rec_t r4 = find_rec(st, s4, false);
    ck_assert_int_eq(st_rec_delete(st, r4.id), PD_EAGAIN);
    st_rec_end(st, "live/d");
    find_rec(st, s4, true);
    st_close(&st);
    /* 3 x 400 KiB > 1 MiB: the oldest goes, the two others stay */
    cfg.rec_max_mb = 1;
    st = open_ok();
    ck_assert(!exists("%lld", r[0].id));
    ck_assert(exists("%lld/source/1.m4s", r[1].id));
    ck_assert(exists("%lld/source/1.m4s", r[2].id));
    st_close(&st);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM recordings"), 3);
}
END_TEST

START_TEST(write_error_stops_recording)
{
    st_t *st = open_ok();
    int64_t s1 = 0;
    ck_assert_int_eq(st_session_start(st, "live/a", "p", &s1), 0);
    st_rec_begin(st, "live/a", s1);
    send_init(st, "live/a", "source", 1, 10, 1);
    send_seg(st, "live/a", "source", 1, 1, 1000000, PDT0, false, 100, 1);
    wait_written(st, 2);
    st_rec_t r1 = find_rec(st, s1, false);
    /* the rendition directory becomes a file: writes fail (ENOTDIR),
     * even for root */
    char p[1200];
    snprintf(p, sizeof(p), "%s/recordings/%lld/source", cfg.data_dir,
             (long long)r1.id);
    rm_rf(p);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    send_seg(st, "live/a", "source", 2, 1, 1000000, PDT0, false, 100, 2);
    wait_errors(st, 1);
    st_rec_stats_t s = stats(st);
    ck_assert_int_eq(s.errors, 1);
    ck_assert(s.stopped_full);
    ck_assert_int_eq(s.written, 2);
    /* stopped: later segments are ignored, no more errors */
    send_seg(st, "live/a", "source", 3, 1, 1000000, PDT0, false, 100, 3);
    st_rec_end(st, "live/a");
    r1 = find_rec(st, s1, true);
    ck_assert_int_eq(stats(st).errors, 1);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM rec_segments WHERE "
                             "kind = 'segment'"), 1);
    /* the next session records fine */
    int64_t s2 = 0;
    ck_assert_int_eq(st_session_start(st, "live/a", "p", &s2), 0);
    st_rec_begin(st, "live/a", s2);
    send_seg(st, "live/a", "source", 4, 1, 1000000, PDT0, false, 100, 4);
    st_rec_end(st, "live/a");
    st_rec_t r2 = find_rec(st, s2, true);
    ck_assert_int_ne(r2.id, r1.id);
    check_file(r2.id, "source", "init-1.mp4", 10, 1); /* the cached init */
    check_file(r2.id, "source", "4.m4s", 100, 4);
    ck_assert_int_eq(stats(st).errors, 1);
    st_close(&st);
}
END_TEST

START_TEST(queue_overflow_drops)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/a", "p", &sid), 0);
    /* hold the database: the writer blocks at its first row */
    pthread_mutex_lock(&st->lock);
    st_rec_begin(st, "live/a", sid);
    send_init(st, "live/a", "source", 1, 10, 1);
    for (int i = 1; i <= ST_REC_QUEUE + 100; i++)
        send_seg(st, "live/a", "source", i, 1, 1000000, PDT0, false, 16, i);
    st_rec_stats_t s = stats(st);
    ck_assert_int_ge(s.dropped, 1);
    /* stopped: one drop counted, later items ignored (not counted) */
    ck_assert_int_le(s.dropped, 2);
    for (int i = 0; i < 10; i++)
        send_seg(st, "live/a", "source", 10000 + i, 1, 1000000, PDT0, false,
                 16, i);
    ck_assert_int_eq(stats(st).dropped, s.dropped);
    pthread_mutex_unlock(&st->lock);
    /* the backlog is written (or dropped at close); no error either way */
    wait_written(st, 2);
    ck_assert_int_eq(stats(st).errors, 0);
    int64_t t0 = pd_mono_us();
    st_close(&st);
    ck_assert_int_lt(pd_mono_us() - t0, 5000000);
}
END_TEST

START_TEST(close_with_full_queue_is_bounded)
{
    st_t *st = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(st, "live/a", "p", &sid), 0);
    pthread_mutex_lock(&st->lock);
    st_rec_begin(st, "live/a", sid);
    send_init(st, "live/a", "source", 1, 10, 1);
    for (int i = 1; i < ST_REC_QUEUE - 10; i++)
        send_seg(st, "live/a", "source", i, 1, 1000000, PDT0, false, 4096,
                 i);
    ck_assert_int_eq(stats(st).dropped, 0);
    pthread_mutex_unlock(&st->lock);
    int64_t t0 = pd_mono_us();
    st_close(&st);
    int64_t took = pd_mono_us() - t0;
    ck_assert_msg(took < 5000000, "st_close took %lld us", (long long)took);
    ck_assert_ptr_null(st);
}
END_TEST

static Suite *rec_suite(void)
{
    Suite *s = suite_create("rec");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"session_written_and_indexed", session_written_and_indexed},
        {"audio_only_multivariant", audio_only_multivariant},
        {"init_only_recording_has_no_variant",
         init_only_recording_has_no_variant},
        {"reads_do_not_wait_for_writes", reads_do_not_wait_for_writes},
        {"recording_ids_never_reused", recording_ids_never_reused},
        {"session_described_while_recording",
         session_described_while_recording},
        {"not_recording_ignored", not_recording_ignored},
        {"vod_file_validation", vod_file_validation},
        {"tmp_deleted_on_open", tmp_deleted_on_open},
        {"crashed_recording_closed_on_open",
         crashed_recording_closed_on_open},
        {"retention_by_age", retention_by_age},
        {"retention_by_size", retention_by_size},
        {"write_error_stops_recording", write_error_stops_recording},
        {"queue_overflow_drops", queue_overflow_drops},
        {"close_with_full_queue_is_bounded",
         close_with_full_queue_is_bounded},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
