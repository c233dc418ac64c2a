/*
 * tests/unit/test_storage.c - storage's catalogue: opening and migrating
 * the database, crash recovery, stream keys, API tokens, sessions and the
 * `podium keys|tokens` CLI. Every test works in its own mkdtemp()
 * directory; Check forks each test.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "storage/st_int.h"
#include "storage/storage.h"

#include <check.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static pd_config_t cfg;
static char dbpath[600];

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/podium-st-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    pd_config_defaults(&cfg);
    /* a nested directory that does not exist yet: st_open creates it */
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/data/x", tmpdir);
    cfg.db_path[0] = '\0';
    snprintf(dbpath, sizeof(dbpath), "%s/podium.db", cfg.data_dir);
    pd_log_set_level(PD_LOG_ERROR);
}

static void teardown(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static st_t *open_ok(void)
{
    st_t *st = NULL;
    ck_assert_int_eq(st_open(&cfg, NULL, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* One integer from a query on a separate raw connection. */
static int64_t raw_int(const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
                                     NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void raw_text(const char *sql, char *out, size_t size)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
                                     NULL),
                     SQLITE_OK);
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out, size, "%s", t ? (const char *)t : "");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Does any of the database's files (db, -wal) contain needle? */
static bool db_files_contain(const char *needle)
{
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s%s", dbpath, suffix[i]);
        FILE *f = fopen(p, "rb");
        if (!f)
            continue;
        static char buf[8 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (memmem(buf, n, needle, strlen(needle)))
            return true;
    }
    return false;
}

/* Runs st_cli(argv) with stdout and stderr captured (NUL-terminated). */
static int run_cli(char **argv, char *out, size_t outsize, char *err,
                   size_t errsize)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char op[600], ep[600];
    snprintf(op, sizeof(op), "%s/cli.out", tmpdir);
    snprintf(ep, sizeof(ep), "%s/cli.err", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int o = open(op, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int e = open(ep, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(o, 0);
    ck_assert_int_ge(e, 0);
    int so = dup(1), se = dup(2);
    dup2(o, 1);
    dup2(e, 2);
    int rc = st_cli(&cfg, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    ssize_t n = pread(o, out, outsize - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    n = pread(e, err, errsize - 1, 0);
    err[n > 0 ? n : 0] = '\0';
    close(o);
    close(e);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

START_TEST(schema_created)
{
    st_t *st = open_ok();
    struct stat sb;
    ck_assert_int_eq(stat(cfg.data_dir, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), ST_SCHEMA_VERSION);
    ck_assert_int_eq(ST_SCHEMA_VERSION, 4);
    const char *tables[] = {"keys", "tokens", "sessions", "hooks",
                            "recordings", "rec_segments", "rec_renditions",
                            "stream_settings", "counters"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                 "AND name = '%s'", tables[i]);
        ck_assert_msg(raw_int(sql) == 1, "table %s", tables[i]);
    }
    char mode[16];
    raw_text("PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "wal");
    /* private: the hooks table holds HMAC secrets */
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    char wal[700];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    ck_assert_int_eq(stat(wal, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    st_close(&st);
    ck_assert_ptr_null(st);
    st_close(&st); /* idempotent */
    st_close(NULL);
}
END_TEST

START_TEST(explicit_and_cfg_path)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/other/dir/cat.db", tmpdir);
    st_t *st = NULL;
    ck_assert_int_eq(st_open(&cfg, p, &st), 0);
    st_close(&st);
    ck_assert_int_eq(access(p, F_OK), 0);
    snprintf(cfg.db_path, sizeof(cfg.db_path), "%s/cfg.db", tmpdir);
    ck_assert_int_eq(st_open(&cfg, NULL, &st), 0);
    st_close(&st);
    ck_assert_int_eq(access(cfg.db_path, F_OK), 0);
    ck_assert_int_eq(st_open(NULL, NULL, &st), PD_EINVAL);
    ck_assert_int_eq(st_open(&cfg, NULL, NULL), PD_EINVAL);
}
END_TEST

START_TEST(reopen_keeps_rows)
{
    st_t *st = open_ok();
    char secret[ST_SECRET_MAX];
    int64_t id = 0, sid = 0;
    ck_assert_int_eq(st_key_create(st, "live/cam", "studio", secret,
                                   sizeof(secret), &id), 0);
    ck_assert_int_eq(st_session_start(st, "live/cam", "127.0.0.1:5000",
                                      &sid), 0);
    ck_assert_int_eq(st_session_end(st, sid, "left"), 0);
    st_close(&st);
    st = open_ok();
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(k[0].id, id);
    ck_assert_str_eq(k[0].stream, "live/cam");
    ck_assert_str_eq(k[0].label, "studio");
    free(k);
    char s2[256] = "live/cam";
    ck_assert_int_eq(st_key_check(st, s2, sizeof(s2), secret), 0);
    st_session_t *ss = NULL;
    ck_assert_int_eq(st_session_list(st, false, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(ss[0].end_reason, "left");
    free(ss);
    st_close(&st);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), ST_SCHEMA_VERSION);
}
END_TEST

START_TEST(migrates_v1_to_v2)
{
    /* a version 1 database as an older podium left it, with a key */
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data", tmpdir);
    mkdir(dir, 0700);
    mkdir(cfg.data_dir, 0700);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, ST_SCHEMA_V1
                                  "PRAGMA user_version = 1;"
                                  "INSERT INTO keys (stream, label, hash,"
                                  " created_us) VALUES ('live/old', 'kept',"
                                  " 'abc', 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE "
                             "name = 'rec_renditions'"), 0);
    st_t *st = open_ok();
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(k[0].stream, "live/old");
    ck_assert_str_eq(k[0].label, "kept");
    free(k);
    st_close(&st);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), 4);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE "
                             "name = 'rec_renditions'"), 1);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE "
                             "name = 'stream_settings'"), 1);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM keys WHERE "
                             "stream = 'live/old' AND hash = 'abc'"), 1);
}
END_TEST

START_TEST(newer_schema_refused)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data", tmpdir);
    mkdir(dir, 0700);
    mkdir(cfg.data_dir, 0700);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE future(x);"
                                      "PRAGMA user_version = 99;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st_t *st = (st_t *)1;
    ck_assert_int_eq(st_open(&cfg, NULL, &st), PD_EINVAL);
    ck_assert_ptr_null(st);
    /* untouched: same version, no schema of ours, not switched to WAL */
    ck_assert_int_eq(raw_int("PRAGMA user_version"), 99);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE "
                             "name = 'keys'"), 0);
    char mode[16];
    raw_text("PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "delete");
}
END_TEST

START_TEST(not_a_database_refused)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/data", tmpdir);
    mkdir(dir, 0700);
    mkdir(cfg.data_dir, 0700);
    FILE *f = fopen(dbpath, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919 + 13) & 0xff, f);
    fclose(f);
    st_t *st = NULL;
    int rc = st_open(&cfg, NULL, &st);
    ck_assert_msg(rc == PD_EIO || rc == PD_EINVAL, "rc %d", rc);
    ck_assert_ptr_null(st);

    /* a path that cannot be a directory: a file in the way */
    char p[600];
    snprintf(p, sizeof(p), "%s/podium.db/sub/x.db", cfg.data_dir);
    ck_assert_int_eq(st_open(&cfg, p, &st), PD_EIO);
    ck_assert_ptr_null(st);
    /* an over-long path */
    char longp[2048];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    ck_assert_int_eq(st_open(&cfg, longp, &st), PD_EINVAL);
}
END_TEST

START_TEST(crashed_sessions_closed)
{
    /* a podium that dies by SIGKILL with a live session and a fresh key */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        st_t *st = NULL;
        int64_t sid = 0, kid = 0;
        char secret[ST_SECRET_MAX];
        if (st_open(&cfg, NULL, &st) ||
            st_session_start(st, "live/crashy", "127.0.0.1:1", &sid) ||
            st_key_create(st, "live/crashy", "", secret, sizeof(secret),
                          &kid))
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGKILL);

    st_t *st = open_ok();
    char ok[32];
    raw_text("PRAGMA integrity_check", ok, sizeof(ok));
    ck_assert_str_eq(ok, "ok");
    st_session_t *ss = NULL;
    int n = 0;
    ck_assert_int_eq(st_session_list(st, false, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(ss[0].stream, "live/crashy");
    ck_assert_str_eq(ss[0].end_reason, "crash");
    ck_assert_int_gt(ss[0].ended_us, 0);
    free(ss);
    ck_assert_int_eq(st_session_list(st, true, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 0);
    free(ss);
    st_key_t *k = NULL;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0); /* committed key kept */
    ck_assert_int_eq(n, 1);
    free(k);
    st_close(&st);
}
END_TEST

START_TEST(two_handles_share_the_file)
{
    /* the server's handle with a live session, then the CLI's */
    st_t *server = open_ok();
    int64_t sid = 0;
    ck_assert_int_eq(st_session_start(server, "live/on", "p", &sid), 0);
    st_t *cli = open_ok();
    st_session_t *ss = NULL;
    int n = 0;
    ck_assert_int_eq(st_session_list(cli, true, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 1); /* the second open did not "crash" it */
    ck_assert_int_eq(ss[0].ended_us, 0);
    free(ss);
    char secret[ST_SECRET_MAX];
    int64_t kid = 0;
    ck_assert_int_eq(st_key_create(cli, "live/on", "cli", secret,
                                   sizeof(secret), &kid), 0);
    char s[256] = "live/on";
    ck_assert_int_eq(st_key_check(server, s, sizeof(s), secret), 0);
    ck_assert_int_eq(st_key_revoke(cli, kid), 0);
    ck_assert_int_eq(st_key_check(server, s, sizeof(s), secret), PD_EPERM);
    st_close(&cli);
    ck_assert_int_eq(st_session_end(server, sid, "shutdown"), 0);
    st_close(&server);
}
END_TEST

/* Several opens of a brand-new catalogue at once (a server and a CLI
 * started together): every one succeeds (the WAL switch is retried when
 * sqlite answers BUSY at once), and the schema is made once. */
static void *open_close(void *arg)
{
    (void)arg;
    st_t *st = NULL;
    if (st_open(&cfg, NULL, &st) != 0)
        return (void *)1;
    st_close(&st);
    return NULL;
}

START_TEST(concurrent_first_opens)
{
    for (int round = 0; round < 5; round++) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cfg.data_dir);
        ck_assert_int_eq(system(cmd), 0);
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, open_close, NULL), 0);
        int failed = 0;
        for (int i = 0; i < 6; i++) {
            void *r = NULL;
            pthread_join(t[i], &r);
            failed += r != NULL;
        }
        ck_assert_msg(failed == 0, "round %d: %d of 6 opens failed", round,
                      failed);
        ck_assert_int_eq(raw_int("PRAGMA user_version"), ST_SCHEMA_VERSION);
    }
}
END_TEST

/* ---- secrets ------------------------------------------------------------- */

static bool b64url(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

START_TEST(secret_helpers)
{
    char a[ST_SECRET_MAX], b[ST_SECRET_MAX];
    ck_assert_int_eq(st_secret_new("pk_", a, sizeof(a)), 0);
    ck_assert_int_eq(st_secret_new("pk_", b, sizeof(b)), 0);
    ck_assert_uint_eq(strlen(a), 46);
    ck_assert(strncmp(a, "pk_", 3) == 0 && b64url(a + 3));
    ck_assert_str_ne(a, b);
    char small[46];
    ck_assert_int_eq(st_secret_new("pk_", small, sizeof(small)), PD_EINVAL);
    char hex[65];
    st_secret_hash("abc", hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                          "b00361a396177a9cb410ff61f20015ad");
    st_secret_hash("", hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                          "27ae41e4649b934ca495991b7852b855");
}
END_TEST

/* ---- keys ---------------------------------------------------------------- */

START_TEST(key_create_list)
{
    st_t *st = open_ok();
    char s1[ST_SECRET_MAX], s2[ST_SECRET_MAX];
    int64_t id1 = 0, id2 = 0;
    ck_assert_int_eq(st_key_create(st, "live/a", NULL, s1, sizeof(s1), &id1),
                     0);
    ck_assert_int_eq(st_key_create(st, "live/b.cam-2_x", "Ünïcode ok",
                                   s2, sizeof(s2), &id2), 0);
    ck_assert_int_gt(id2, id1);
    ck_assert_uint_eq(strlen(s1), 46);
    ck_assert(strncmp(s1, "pk_", 3) == 0 && b64url(s1 + 3));
    ck_assert_str_ne(s1, s2);
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(k[0].id, id2); /* newest first */
    ck_assert_str_eq(k[0].stream, "live/b.cam-2_x");
    ck_assert_str_eq(k[0].label, "Ünïcode ok");
    ck_assert_str_eq(k[1].label, "");
    ck_assert_int_gt(k[1].created_us, 0);
    ck_assert_int_eq(k[1].revoked_us, 0);
    ck_assert_int_eq(k[1].last_used_us, 0);
    free(k);
    /* secrets are not stored, their hashes are */
    st_close(&st);
    ck_assert(!db_files_contain(s1));
    ck_assert(!db_files_contain(s2));
    ck_assert(!db_files_contain(s1 + 3));
    char hex[65];
    st_secret_hash(s1, hex);
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM keys WHERE hash = '%s'",
             hex);
    ck_assert_int_eq(raw_int(sql), 1);
}
END_TEST

START_TEST(key_check_cases)
{
    st_t *st = open_ok();
    char sec[ST_SECRET_MAX], other[ST_SECRET_MAX];
    int64_t id = 0, oid = 0;
    ck_assert_int_eq(st_key_create(st, "live/cam1", "", sec, sizeof(sec),
                                   &id), 0);
    ck_assert_int_eq(st_key_create(st, "live/cam2", "", other,
                                   sizeof(other), &oid), 0);
    char s[256];

    /* right key */
    snprintf(s, sizeof(s), "live/cam1");
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), sec), 0);
    ck_assert_str_eq(s, "live/cam1");
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_gt(k[1].last_used_us, 0); /* cam1 (older) was used */
    ck_assert_int_eq(k[0].last_used_us, 0);
    free(k);

    /* wrong key, a near miss, garbage */
    char near[ST_SECRET_MAX];
    snprintf(near, sizeof(near), "%s", sec);
    near[10] = near[10] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), near), PD_EPERM);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), "pk_nope"), PD_EPERM);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), "' OR 1=1 --"),
                     PD_EPERM);
    /* key for another stream */
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), other), PD_EPERM);
    ck_assert_str_eq(s, "live/cam1");
    /* no key */
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), NULL), PD_EPERM);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), ""), PD_EPERM);

    /* key-as-name: rewritten to the key's stream */
    snprintf(s, sizeof(s), "live/%s", sec);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), NULL), 0);
    ck_assert_str_eq(s, "live/cam1");
    snprintf(s, sizeof(s), "live/%s", other);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), ""), 0);
    ck_assert_str_eq(s, "live/cam2");
    /* key-as-name needs room for the rewrite */
    char longname[300], lsec[ST_SECRET_MAX];
    int64_t lid = 0;
    memcpy(longname, "live/", 5);
    memset(longname + 5, 'L', 60);
    longname[65] = '\0';
    ck_assert_int_eq(st_key_create(st, longname, "", lsec, sizeof(lsec),
                                   &lid), 0);
    char exact[5 + 46 + 1];
    ck_assert_uint_eq(strlen(lsec), 46);
    memcpy(exact, "live/", 5);
    memcpy(exact + 5, lsec, 47);
    ck_assert_int_eq(st_key_check(st, exact, sizeof(exact), NULL), PD_EPERM);
    ck_assert_str_eq(exact + 5, lsec); /* untouched */
    snprintf(s, sizeof(s), "live/%s", lsec);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), NULL), 0);
    ck_assert_str_eq(s, longname);
    /* a key as name *with* a key is not a rewrite */
    snprintf(s, sizeof(s), "live/%s", sec);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), other), PD_EPERM);
    /* a secret without the live/ prefix is not a name */
    snprintf(s, sizeof(s), "%s", sec);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), NULL), PD_EPERM);

    /* revoked key: refused, both ways */
    ck_assert_int_eq(st_key_revoke(st, id), 0);
    snprintf(s, sizeof(s), "live/cam1");
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), sec), PD_EPERM);
    snprintf(s, sizeof(s), "live/%s", sec);
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), NULL), PD_EPERM);
    ck_assert_str_eq(s + 5, sec); /* not rewritten */

    /* bad arguments */
    ck_assert_int_eq(st_key_check(NULL, s, sizeof(s), sec), PD_EPERM);
    ck_assert_int_eq(st_key_check(st, NULL, 0, sec), PD_EPERM);
    char unterminated[4] = {'l', 'i', 'v', 'e'};
    ck_assert_int_eq(st_key_check(st, unterminated, sizeof(unterminated),
                                  NULL), PD_EPERM);
    static char huge[100000];
    memset(huge, 'A', sizeof(huge) - 1);
    snprintf(s, sizeof(s), "live/cam2");
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), huge), PD_EPERM);
    st_close(&st);
}
END_TEST

START_TEST(key_revoke_cases)
{
    st_t *st = open_ok();
    char sec[ST_SECRET_MAX];
    int64_t id = 0;
    ck_assert_int_eq(st_key_create(st, "live/r", "", sec, sizeof(sec), &id),
                     0);
    ck_assert_int_eq(st_key_revoke(st, id), 0);
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    int64_t first = k[0].revoked_us;
    ck_assert_int_gt(first, 0);
    free(k);
    usleep(2000);
    ck_assert_int_eq(st_key_revoke(st, id), 0); /* twice: keeps the first */
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_eq(k[0].revoked_us, first);
    free(k);
    ck_assert_int_eq(st_key_revoke(st, id + 100), PD_ENOENT);
    ck_assert_int_eq(st_key_revoke(st, 0), PD_ENOENT);
    ck_assert_int_eq(st_key_revoke(st, -1), PD_ENOENT);
    st_close(&st);
}
END_TEST

START_TEST(key_hostile_inputs)
{
    st_t *st = open_ok();
    char sec[ST_SECRET_MAX];
    int64_t id = 0;
    const char *bad_streams[] = {
        NULL, "", "live/", "cam", "live", "LIVE/cam", "live/a/b",
        "live/../x", "live/.hidden", "live/a b", "live/a?key=1",
        "live/\xc3\xa9", "/live/a", "live/a\n",
        "live/'; DROP TABLE keys; --",
    };
    for (size_t i = 0; i < sizeof(bad_streams) / sizeof(bad_streams[0]);
         i++)
        ck_assert_msg(st_key_create(st, bad_streams[i], "", sec, sizeof(sec),
                                    &id) == PD_EINVAL,
                      "stream %zu accepted", i);
    char name[300];
    memcpy(name, "live/", 5);
    /* ingest's limit: 64 characters */
    memset(name + 5, 'n', 64);
    name[69] = '\0';
    ck_assert_int_eq(st_key_create(st, name, "", sec, sizeof(sec), &id), 0);
    name[69] = 'n';
    name[70] = '\0';
    ck_assert_int_eq(st_key_create(st, name, "", sec, sizeof(sec), &id),
                     PD_EINVAL);
    static char huge[1 << 20];
    memset(huge, 'x', sizeof(huge) - 1);
    memcpy(huge, "live/", 5);
    ck_assert_int_eq(st_key_create(st, huge, "", sec, sizeof(sec), &id),
                     PD_EINVAL);
    ck_assert_int_eq(st_key_create(st, "live/ok", huge + 5, sec, sizeof(sec),
                                   &id), PD_EINVAL);

    /* labels: control characters, invalid UTF-8, too long: refused */
    const char *bad_labels[] = {"a\nb", "tab\there", "\x7f", "\xff",
                                "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
        ck_assert_msg(st_key_create(st, "live/ok", bad_labels[i], sec,
                                    sizeof(sec), &id) == PD_EINVAL,
                      "label %zu accepted", i);
    char lab[200];
    memset(lab, 'l', 127);
    lab[127] = '\0';
    ck_assert_int_eq(st_key_create(st, "live/ok", lab, sec, sizeof(sec),
                                   &id), 0);
    lab[127] = 'l';
    lab[128] = '\0';
    ck_assert_int_eq(st_key_create(st, "live/ok", lab, sec, sizeof(sec),
                                   &id), PD_EINVAL);

    /* C1 controls (an escape sequence for a terminal's `keys list`) are
     * refused; other non-ASCII text is fine */
    ck_assert_int_eq(st_key_create(st, "live/ok", "a\xc2\x9b" "2J", sec,
                                   sizeof(sec), &id), PD_EINVAL);
    ck_assert_int_eq(st_key_create(st, "live/ok", "caf\xc3\xa9", sec,
                                   sizeof(sec), &id), 0);

    /* SQL as a label is stored verbatim, the table survives */
    const char *inj = "'; DROP TABLE keys; --";
    ck_assert_int_eq(st_key_create(st, "live/ok", inj, sec, sizeof(sec),
                                   &id), 0);
    /* the secret buffer must be big enough; NULL st; NULL id is fine */
    char smallsec[10];
    ck_assert_int_eq(st_key_create(st, "live/ok", "", smallsec,
                                   sizeof(smallsec), &id), PD_EINVAL);
    ck_assert_int_eq(st_key_create(st, "live/ok", "", NULL, 64, &id),
                     PD_EINVAL);
    ck_assert_int_eq(st_key_create(NULL, "live/ok", "", sec, sizeof(sec),
                                   &id), PD_EINVAL);
    ck_assert_int_eq(st_key_create(st, "live/ok", "", sec, sizeof(sec),
                                   NULL), 0);
    st_key_t *k = NULL;
    int n = 0;
    ck_assert_int_eq(st_key_list(st, &k, &n), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(k[1].label, inj);
    free(k);
    ck_assert_int_eq(st_key_list(st, NULL, &n), PD_EINVAL);
    ck_assert_int_eq(st_key_list(NULL, &k, &n), PD_EINVAL);
    st_close(&st);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM keys"), 5);
}
END_TEST

/* ---- tokens -------------------------------------------------------------- */

START_TEST(token_cases)
{
    st_t *st = open_ok();
    char t1[ST_SECRET_MAX], t2[ST_SECRET_MAX];
    int64_t id1 = 0, id2 = 0;
    ck_assert_int_eq(st_token_create(st, "ci", t1, sizeof(t1), &id1), 0);
    ck_assert_int_eq(st_token_create(st, "'; DROP TABLE tokens; --", t2,
                                     sizeof(t2), &id2), 0);
    ck_assert_uint_eq(strlen(t1), 46);
    ck_assert(strncmp(t1, "pt_", 3) == 0 && b64url(t1 + 3));
    ck_assert_int_eq(st_token_check(st, t1), 0);
    ck_assert_int_eq(st_token_check(st, t2), 0);
    ck_assert_int_eq(st_token_check(st, "pt_wrong"), PD_EPERM);
    ck_assert_int_eq(st_token_check(st, ""), PD_EPERM);
    ck_assert_int_eq(st_token_check(st, NULL), PD_EPERM);
    ck_assert_int_eq(st_token_check(NULL, t1), PD_EPERM);
    /* a stream key is not a token, nor the other way round */
    char key[ST_SECRET_MAX];
    int64_t kid = 0;
    ck_assert_int_eq(st_key_create(st, "live/t", "", key, sizeof(key), &kid),
                     0);
    ck_assert_int_eq(st_token_check(st, key), PD_EPERM);
    char s[256] = "live/t";
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), t1), PD_EPERM);

    ck_assert_int_eq(st_token_create(st, "a\x01", t2, sizeof(t2), &id2),
                     PD_EINVAL);
    ck_assert_int_eq(st_token_revoke(st, id1), 0);
    ck_assert_int_eq(st_token_revoke(st, id1), 0);
    ck_assert_int_eq(st_token_revoke(st, 9999), PD_ENOENT);
    ck_assert_int_eq(st_token_check(st, t1), PD_EPERM);
    st_token_t *t = NULL;
    int n = 0;
    ck_assert_int_eq(st_token_list(st, &t, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(t[0].label, "'; DROP TABLE tokens; --");
    ck_assert_int_gt(t[0].last_used_us, 0);
    ck_assert_str_eq(t[1].label, "ci");
    ck_assert_int_gt(t[1].revoked_us, 0);
    free(t);
    st_close(&st);
    ck_assert(!db_files_contain(t1));
    ck_assert_int_eq(raw_int("SELECT count(*) FROM tokens"), 2);
}
END_TEST

/* ---- sessions ------------------------------------------------------------ */

START_TEST(session_cases)
{
    st_t *st = open_ok();
    int64_t a = 0, b = 0;
    ck_assert_int_eq(st_session_start(st, "live/a", "127.0.0.1:1", &a), 0);
    ck_assert_int_eq(st_session_start(st, "live/b", NULL, &b), 0);
    ck_assert_int_gt(b, a);
    ck_assert_int_eq(st_session_describe(st, a, "avc1.64001f,mp4a.40.2",
                                         NULL), 0);
    ck_assert_int_eq(st_session_describe(st, a, NULL, "720p,480p"), 0);
    ck_assert_int_eq(st_session_describe(st, 999, "x", NULL), PD_ENOENT);
    ck_assert_int_eq(st_session_end(st, a, "left"), 0);
    ck_assert_int_eq(st_session_end(st, a, "shutdown"), 0); /* keeps left */
    ck_assert_int_eq(st_session_end(st, a, "crash"), PD_EINVAL);
    ck_assert_int_eq(st_session_end(st, b, NULL), PD_EINVAL);
    ck_assert_int_eq(st_session_end(st, 999, "left"), PD_ENOENT);

    st_session_t *ss = NULL;
    int n = 0;
    ck_assert_int_eq(st_session_list(st, false, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ss[0].id, b); /* newest first */
    ck_assert_int_eq(ss[0].ended_us, 0);
    ck_assert_str_eq(ss[0].peer, "");
    ck_assert_str_eq(ss[1].stream, "live/a");
    ck_assert_str_eq(ss[1].peer, "127.0.0.1:1");
    ck_assert_str_eq(ss[1].end_reason, "left");
    ck_assert_str_eq(ss[1].codecs, "avc1.64001f,mp4a.40.2");
    ck_assert_str_eq(ss[1].renditions, "720p,480p");
    ck_assert_int_ge(ss[1].ended_us, ss[1].started_us);
    free(ss);
    ck_assert_int_eq(st_session_list(st, true, 10, &ss, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ss[0].id, b);
    free(ss);
    ck_assert_int_eq(st_session_list(st, false, 1, &ss, &n), 0);
    ck_assert_int_eq(n, 1);
    free(ss);
    ck_assert_int_eq(st_session_list(st, false, 0, &ss, &n), PD_EINVAL);

    /* hostile: oversized fields refused, SQL stored verbatim */
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(st_session_start(st, big, "p", &a), PD_EINVAL);
    ck_assert_int_eq(st_session_start(st, "live/a", big, &a), PD_EINVAL);
    ck_assert_int_eq(st_session_start(st, NULL, "p", &a), PD_EINVAL);
    ck_assert_int_eq(st_session_describe(st, b, big, NULL), PD_EINVAL);
    ck_assert_int_eq(st_session_start(st, "live/x", "'); DROP TABLE "
                                      "sessions; --", &a), 0);
    ck_assert_int_eq(st_session_list(st, false, 100, &ss, &n), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(ss[0].peer, "'); DROP TABLE sessions; --");
    free(ss);
    st_close(&st);
}
END_TEST

/* ---- CLI ----------------------------------------------------------------- */

START_TEST(cli_keys)
{
    static char out[65536], err[65536];
    char *create[] = {"keys", "create", "studio", "--label", "main cam",
                      NULL};
    ck_assert_int_eq(run_cli(create, out, sizeof(out), err, sizeof(err)),
                     0);
    ck_assert_msg(strncmp(out, "id 1\nkey pk_", 12) == 0, "%s", out);
    char secret[ST_SECRET_MAX];
    const char *k = strstr(out, "key ") + 4;
    size_t sl = strcspn(k, "\n");
    ck_assert_uint_eq(sl, 46);
    memcpy(secret, k, sl);
    secret[sl] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "/live/studio?key="));
    ck_assert_ptr_null(strstr(err, secret)); /* never logged */

    char *create2[] = {"keys", "create", "live/other", NULL};
    ck_assert_int_eq(run_cli(create2, out, sizeof(out), err, sizeof(err)),
                     0);
    ck_assert(strncmp(out, "id 2\n", 5) == 0);

    char *list[] = {"keys", "list", NULL};
    ck_assert_int_eq(run_cli(list, out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "live/studio"));
    ck_assert_ptr_nonnull(strstr(out, "main cam"));
    ck_assert_ptr_nonnull(strstr(out, "live/other"));
    ck_assert_ptr_null(strstr(out, secret));
    ck_assert_ptr_null(strstr(out, "pk_"));
    ck_assert_ptr_nonnull(strstr(out, "T")); /* ISO 8601 times */
    ck_assert_ptr_nonnull(strstr(out, "Z "));

    /* the secret works for that stream */
    st_t *st = open_ok();
    char s[256] = "live/studio";
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), secret), 0);
    st_close(&st);

    char *revoke[] = {"keys", "revoke", "1", NULL};
    ck_assert_int_eq(run_cli(revoke, out, sizeof(out), err, sizeof(err)), 0);
    char *revoke_missing[] = {"keys", "revoke", "77", NULL};
    ck_assert_int_eq(run_cli(revoke_missing, out, sizeof(out), err,
                             sizeof(err)), 1);
    ck_assert_ptr_nonnull(strchr(err, '\n'));
    st = open_ok();
    ck_assert_int_eq(st_key_check(st, s, sizeof(s), secret), PD_EPERM);
    st_close(&st);

    /* errors and usage */
    char *badname[] = {"keys", "create", "a/b", NULL};
    ck_assert_int_eq(run_cli(badname, out, sizeof(out), err, sizeof(err)),
                     1);
    ck_assert_str_eq(out, "");
    char *u1[] = {"keys", NULL};
    char *u2[] = {"keys", "frob", NULL};
    char *u3[] = {"keys", "create", NULL};
    char *u4[] = {"keys", "revoke", "abc", NULL};
    char *u5[] = {"keys", "revoke", "1x", NULL};
    char *u6[] = {"keys", "create", "a", "--label", NULL};
    char *u7[] = {"keys", "create", "a", "b", NULL};
    char *u8[] = {"keys", "list", "--bogus", NULL};
    char *u9[] = {"nothing", NULL};
    char *u10[] = {"keys", "revoke", "-3", NULL};
    char **usages[] = {u1, u2, u3, u4, u5, u6, u7, u8, u9, u10};
    for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
        ck_assert_msg(run_cli(usages[i], out, sizeof(out), err,
                              sizeof(err)) == 2,
                      "usage case %zu", i);
    ck_assert_int_eq(st_cli(&cfg, 0, list), 2);
}
END_TEST

START_TEST(cli_tokens)
{
    static char out[65536], err[65536];
    char *create[] = {"tokens", "create", "--label=deploy", NULL};
    ck_assert_int_eq(run_cli(create, out, sizeof(out), err, sizeof(err)),
                     0);
    ck_assert_msg(strncmp(out, "id 1\ntoken pt_", 14) == 0, "%s", out);
    char secret[ST_SECRET_MAX];
    const char *t = strstr(out, "token ") + 6;
    size_t sl = strcspn(t, "\n");
    ck_assert_uint_eq(sl, 46);
    memcpy(secret, t, sl);
    secret[sl] = '\0';
    char *list[] = {"tokens", "list", NULL};
    ck_assert_int_eq(run_cli(list, out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(out, "deploy"));
    ck_assert_ptr_null(strstr(out, secret));
    ck_assert_ptr_null(strstr(out, "pt_"));
    st_t *st = open_ok();
    ck_assert_int_eq(st_token_check(st, secret), 0);
    st_close(&st);
    char *revoke[] = {"tokens", "revoke", "1", NULL};
    ck_assert_int_eq(run_cli(revoke, out, sizeof(out), err, sizeof(err)), 0);
    st = open_ok();
    ck_assert_int_eq(st_token_check(st, secret), PD_EPERM);
    st_close(&st);
    char *u1[] = {"tokens", "create", "name", NULL};
    ck_assert_int_eq(run_cli(u1, out, sizeof(out), err, sizeof(err)), 2);
    char *bad[] = {"tokens", "create", "--label", "x\x01y", NULL};
    ck_assert_int_eq(run_cli(bad, out, sizeof(out), err, sizeof(err)), 1);
}
END_TEST

START_TEST(cli_db_unusable)
{
    static char out[4096], err[4096];
    char p[600];
    snprintf(p, sizeof(p), "%s/file", tmpdir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(cfg.db_path, sizeof(cfg.db_path), "%s/file/sub/podium.db",
             tmpdir);
    char *list[] = {"keys", "list", NULL};
    ck_assert_int_eq(run_cli(list, out, sizeof(out), err, sizeof(err)), 1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open the database"));
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"schema_created", schema_created},
        {"explicit_and_cfg_path", explicit_and_cfg_path},
        {"reopen_keeps_rows", reopen_keeps_rows},
        {"migrates_v1_to_v2", migrates_v1_to_v2},
        {"newer_schema_refused", newer_schema_refused},
        {"not_a_database_refused", not_a_database_refused},
        {"crashed_sessions_closed", crashed_sessions_closed},
        {"two_handles_share_the_file", two_handles_share_the_file},
        {"concurrent_first_opens", concurrent_first_opens},
        {"secret_helpers", secret_helpers},
        {"key_create_list", key_create_list},
        {"key_check_cases", key_check_cases},
        {"key_revoke_cases", key_revoke_cases},
        {"key_hostile_inputs", key_hostile_inputs},
        {"token_cases", token_cases},
        {"session_cases", session_cases},
        {"cli_keys", cli_keys},
        {"cli_tokens", cli_tokens},
        {"cli_db_unusable", cli_db_unusable},
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
    SRunner *sr = srunner_create(storage_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
