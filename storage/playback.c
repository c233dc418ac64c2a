/*
 * storage/playback.c - playback protection: the signing key and which
 * streams need signed URLs.
 *
 * The key is cfg->playback_key (hex) or, when that is empty, the hex in
 * <data_dir>/playback.key, made (0600, 32 random bytes) by the first
 * process that opens the catalogue without one; the CLI and the server
 * thus sign and check with the same key, and a CDN is given the file's
 * contents. The key never reaches a log.
 *
 * The marks (stream_settings.signed_playback) are loaded at open and
 * mirrored in a sorted array under st->plock, updated together with the
 * row, so HTTP threads decide without the database. Invariant: the array
 * holds exactly the rows with signed_playback = 1 as of the last change
 * through this handle or the last reload; the recorder's thread reloads
 * every ST_PLAYBACK_RELOAD_US, so another process's change (the CLI while
 * the server runs) applies within that time (the API applies at once).
 */
#include "st_int.h"

#include "../core/err.h"
#include "../core/log.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_FILE "playback.key"
#define KEY_FILE_MAX 512 /* bytes read from it */
#define TTL_MAX_S (10LL * 366 * 86400)

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the hex key file at path into st->pkey. PD_ENOENT if missing. */
static int read_key_file(st_t *st, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? PD_ENOENT : PD_EIO;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
        PD_LOGW(ST_MOD, "%s is readable by others (mode %o): chmod 600 it",
                path, (unsigned)(sb.st_mode & 0777));
    char buf[KEY_FILE_MAX + 1];
    ssize_t n = read(fd, buf, KEY_FILE_MAX);
    close(fd);
    if (n < 0)
        return PD_EIO;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    int rc = pd_token_key_from_hex(buf, st->pkey, &st->pkeylen);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc ? PD_EINVAL : 0;
}

/* Reads the key file, waiting up to 1 s for a concurrent creator (the
 * name may appear empty or half-written where there are no hard
 * links). */
static int read_key_file_settled(st_t *st, const char *path)
{
    int rc = PD_ENOENT;
    for (int i = 0; i < 50; i++) {
        rc = read_key_file(st, path);
        if (rc != PD_ENOENT && rc != PD_EINVAL)
            return rc;
        usleep(20000);
    }
    return rc;
}

/* Creates the key file atomically: the key goes into a private temporary
 * file (fsync), which is then link()ed to the final name, so the name
 * only ever holds a whole key; a concurrent creator that linked first
 * wins (EEXIST) and we read its key. The directory is fsynced. */
static int make_key_file(st_t *st, const char *path)
{
    if (st_make_parents(path))
        return PD_EIO;
    uint8_t raw[32];
    char hex[2 * sizeof(raw) + 2];
    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return PD_ERR;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[2 * sizeof(raw)] = '\n';
    hex[2 * sizeof(raw) + 1] = '\0';
    /* a name of its own (another thread or process may be here too) */
    uint32_t salt = 0;
    RAND_bytes((unsigned char *)&salt, (int)sizeof(salt));
    char tmp[760];
    snprintf(tmp, sizeof(tmp), "%s.%ld.%08x.tmp", path, (long)getpid(),
             (unsigned)salt);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  0600);
    size_t len = 2 * sizeof(raw) + 1;
    bool ok = fd >= 0 && write(fd, hex, len) == (ssize_t)len &&
              fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    int rc = PD_EIO;
    bool made = false;
    if (ok) {
        if (link(tmp, path) == 0) {
            made = true;
        } else if (errno == EEXIST) {
            rc = read_key_file_settled(st, path);
        } else if (errno == EPERM || errno == ENOTSUP ||
                   errno == EOPNOTSUPP || errno == ENOSYS ||
                   errno == EMLINK) {
            /* no hard links here (vfat, some FUSE/SMB): create the name
             * itself; a concurrent reader may then see it half-written
             * for a moment (it retries) */
            int fd2 = open(path,
                           O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                           0600);
            if (fd2 >= 0) {
                made = write(fd2, hex, len) == (ssize_t)len && fsync(fd2) == 0;
                made = close(fd2) == 0 && made;
                if (!made)
                    unlink(path);
            } else if (errno == EEXIST) {
                rc = read_key_file_settled(st, path);
            }
        } else {
            PD_LOGE(ST_MOD, "%s: cannot link the new key into place: %s",
                    path, strerror(errno));
        }
    }
    if (fd >= 0)
        unlink(tmp); /* ours (O_EXCL): never another creator's */
    if (made) {
        memcpy(st->pkey, raw, sizeof(raw));
        st->pkeylen = sizeof(raw);
        rc = 0;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (made) {
        char dir[700];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        PD_LOGI(ST_MOD, "made a playback signing key in %s", path);
    }
    return rc;
}

/* Deletes "playback.key.*.tmp" files older than a minute in dir: left by a
 * creator that crashed between writing and linking (each holds a key
 * nobody uses). */
static void sweep_key_tmps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    time_t now = time(NULL);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, KEY_FILE ".", sizeof(KEY_FILE)) != 0 || n < 4 ||
            strcmp(e->d_name + n - 4, ".tmp") != 0)
            continue;
        char p[1200];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) &&
            now - sb.st_mtime > 60)
            unlink(p);
    }
    closedir(d);
}

static int load_key(st_t *st)
{
    if (st->cfg->playback_key[0]) {
        if (pd_token_key_from_hex(st->cfg->playback_key, st->pkey,
                                  &st->pkeylen)) {
            PD_LOGE(ST_MOD, "playback_key is not %d-%d hex digits",
                    2 * PD_TOKEN_KEY_MIN, 2 * PD_TOKEN_KEY_MAX);
            return PD_EINVAL;
        }
        return 0;
    }
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s",
             st->cfg->data_dir[0] ? st->cfg->data_dir : ".");
    int n = snprintf(path, sizeof(path), "%s/" KEY_FILE, dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return PD_EINVAL;
    sweep_key_tmps(dir);
    int rc = read_key_file(st, path);
    if (rc == PD_ENOENT)
        rc = make_key_file(st, path);
    if (rc)
        PD_LOGE(ST_MOD, "%s: %s (it must hold %d-%d hex digits)", path,
                rc == PD_EINVAL ? "not a valid key" : "cannot read or create",
                2 * PD_TOKEN_KEY_MIN, 2 * PD_TOKEN_KEY_MAX);
    return rc;
}

static void free_marks(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The marked streams, sorted, as a new array (*out, *n; NULL when none).
 * st->lock held. */
static int load_marks_locked(st_t *st, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    char **v = NULL;
    int count = 0, rc = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT stream FROM stream_settings WHERE "
                           "signed_playback = 1 ORDER BY stream",
                           -1, &q, NULL) != SQLITE_OK)
        rc = PD_EIO;
    while (!rc) {
        int s = sqlite3_step(q);
        if (s == SQLITE_DONE)
            break;
        if (s != SQLITE_ROW) {
            rc = PD_EIO;
            break;
        }
        const char *name = (const char *)sqlite3_column_text(q, 0);
        char **grown = realloc(v, sizeof(char *) * (size_t)(count + 1));
        char *copy = name ? strdup(name) : NULL;
        if (grown)
            v = grown;
        if (!grown || !copy) {
            free(copy);
            rc = PD_ENOMEM;
            break;
        }
        v[count++] = copy;
    }
    sqlite3_finalize(q);
    if (rc) {
        free_marks(v, count);
        return rc;
    }
    if (count > 1) /* SQL's order is the same, but strcmp is the rule */
        qsort(v, (size_t)count, sizeof(char *), cmp_names);
    *out = v;
    *n = count;
    return 0;
}

int st_playback_reload(st_t *st)
{
    char **v = NULL;
    int n = 0;
    pthread_mutex_lock(&st->lock); /* serialises with st_playback_set */
    int rc = load_marks_locked(st, &v, &n);
    if (!rc) {
        pthread_mutex_lock(&st->plock);
        bool same = n == st->npsigned;
        for (int i = 0; same && i < n; i++)
            same = strcmp(v[i], st->psigned[i]) == 0;
        if (!same) {
            char **old = st->psigned;
            int oldn = st->npsigned;
            st->psigned = v;
            st->npsigned = n;
            v = old;
            n = oldn;
            PD_LOGI(ST_MOD, "playback settings changed in the catalogue: %d "
                    "stream(s) need a signed URL", st->npsigned);
        }
        pthread_mutex_unlock(&st->plock);
    }
    pthread_mutex_unlock(&st->lock);
    free_marks(v, n);
    return rc;
}

int st_playback_open(st_t *st)
{
    if (pthread_mutex_init(&st->plock, NULL) != 0)
        return PD_ENOMEM;
    st->pkeylen = 0;
    st->psigned = NULL;
    st->npsigned = 0;
    int rc = load_key(st);
    if (rc) {
        pthread_mutex_destroy(&st->plock);
        return rc;
    }
    char **v = NULL;
    int n = 0;
    pthread_mutex_lock(&st->lock);
    rc = load_marks_locked(st, &v, &n);
    pthread_mutex_unlock(&st->lock);
    if (rc) {
        PD_LOGE(ST_MOD, "%s: cannot load the stream settings", st->path);
        st_playback_close(st);
        return rc;
    }
    st->psigned = v;
    st->npsigned = n;
    if (st->cfg->signed_playback)
        PD_LOGI(ST_MOD, "playback of every stream needs a signed URL");
    else if (st->npsigned)
        PD_LOGI(ST_MOD, "playback of %d stream(s) needs a signed URL",
                st->npsigned);
    return 0;
}

void st_playback_close(st_t *st)
{
    free_marks(st->psigned, st->npsigned);
    st->psigned = NULL;
    st->npsigned = 0;
    OPENSSL_cleanse(st->pkey, sizeof(st->pkey));
    st->pkeylen = 0;
    pthread_mutex_destroy(&st->plock);
}

/* Index of name in the sorted array, or -(insertion point) - 1. plock. */
static int find_locked(st_t *st, const char *name)
{
    int lo = 0, hi = st->npsigned - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->psigned[mid], name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

int st_playback_set(st_t *st, const char *stream, bool on)
{
    if (!st || !st_stream_valid(stream))
        return PD_EINVAL;
    char *copy = on ? strdup(stream) : NULL;
    if (on && !copy)
        return PD_ENOMEM;
    /* st->lock is held from the reservation to the insertion: every
     * change of the array (set, reload) holds it, so the room reserved
     * here is still there, and the row and the array cannot disagree. */
    pthread_mutex_lock(&st->lock);
    pthread_mutex_lock(&st->plock);
    char **grown = on ? realloc(st->psigned, sizeof(char *) *
                                                 (size_t)(st->npsigned + 1))
                      : st->psigned;
    if (grown)
        st->psigned = grown;
    pthread_mutex_unlock(&st->plock);
    if (!grown && on) {
        pthread_mutex_unlock(&st->lock);
        free(copy);
        return PD_ENOMEM;
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    sqlite3_stmt *q = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(
            st->db,
            "INSERT INTO stream_settings(stream, signed_playback, updated_us) "
            "VALUES(?1, ?2, ?3) ON CONFLICT(stream) DO UPDATE SET "
            "signed_playback = excluded.signed_playback, "
            "updated_us = excluded.updated_us",
            -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, stream, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(q, 2, on ? 1 : 0) != SQLITE_OK ||
        sqlite3_bind_int64(q, 3, now_us) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE)
        rc = PD_EIO;
    if (rc)
        PD_LOGW(ST_MOD, "%s: cannot store the setting of %s: %s", st->path,
                stream, sqlite3_errmsg(st->db));
    sqlite3_finalize(q);
    if (!rc) {
        /* Still under st->lock: concurrent sets apply in the rows' order. */
        pthread_mutex_lock(&st->plock);
        int i = find_locked(st, stream);
        if (on && i < 0) {
            int at = -i - 1;
            memmove(st->psigned + at + 1, st->psigned + at,
                    sizeof(char *) * (size_t)(st->npsigned - at));
            st->psigned[at] = copy;
            st->npsigned++;
            copy = NULL;
        } else if (!on && i >= 0) {
            free(st->psigned[i]);
            memmove(st->psigned + i, st->psigned + i + 1,
                    sizeof(char *) * (size_t)(st->npsigned - i - 1));
            st->npsigned--;
        }
        pthread_mutex_unlock(&st->plock);
    }
    pthread_mutex_unlock(&st->lock);
    free(copy);
    if (!rc)
        PD_LOGI(ST_MOD, "playback of %s %s", stream,
                on ? "needs a signed URL" : "is public");
    return rc;
}

bool st_playback_signed(st_t *st, const char *stream)
{
    if (!st || !stream)
        return false;
    if (st->cfg->signed_playback)
        return true;
    pthread_mutex_lock(&st->plock);
    bool on = st->npsigned > 0 && find_locked(st, stream) >= 0;
    pthread_mutex_unlock(&st->plock);
    return on;
}

bool st_playback_any(st_t *st)
{
    if (!st)
        return false;
    if (st->cfg->signed_playback)
        return true;
    pthread_mutex_lock(&st->plock);
    bool any = st->npsigned > 0;
    pthread_mutex_unlock(&st->plock);
    return any;
}

int st_playback_list(st_t *st, char (**out)[256], int *n)
{
    if (!st || !out || !n)
        return PD_EINVAL;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&st->plock);
    int count = st->npsigned;
    char(*a)[256] = calloc((size_t)(count ? count : 1), sizeof(*a));
    if (a)
        for (int i = 0; i < count; i++)
            snprintf(a[i], sizeof(a[i]), "%s", st->psigned[i]);
    pthread_mutex_unlock(&st->plock);
    if (!a)
        return PD_ENOMEM;
    *out = a;
    *n = count;
    return 0;
}

int st_playback_sign(st_t *st, const char *acl, int64_t ttl_s, char *out,
                     size_t outsize)
{
    if (!st || !acl || !out || ttl_s < 1 || ttl_s > TTL_MAX_S)
        return PD_EINVAL;
    if (!st->pkeylen)
        return PD_ENOENT;
    int64_t now = (int64_t)time(NULL);
    return pd_token_make(st->pkey, st->pkeylen, 0, now + ttl_s, acl, out,
                         outsize);
}

int st_playback_check(st_t *st, const char *stream, const char *path,
                      const char *token, pd_token_why_t *why)
{
    if (why)
        *why = PD_TOKEN_OK;
    if (!st || (stream && !st_playback_signed(st, stream)))
        return 0;
    if (!path)
        return PD_EINVAL;
    /* pkey is written only at open and close: no lock needed here. */
    return pd_token_check(st->pkey, st->pkeylen, token,
                          token ? strlen(token) : 0, path, strlen(path),
                          (int64_t)time(NULL), why);
}
