/*
 * storage/keys.c - stream keys and API tokens: random secrets stored only
 * as SHA-256 hashes.
 *
 * A secret is "<prefix>" + base64url (no padding) of 32 bytes from
 * RAND_bytes: 256 bits, so a SHA-256 without salt or stretching is enough
 * (there is nothing to brute-force), and a check can look the hash up by
 * its UNIQUE index. Equality of the looked-up hash is confirmed with
 * CRYPTO_memcmp anyway.
 *
 * Invariants: a secret is returned once, by *_create, into the caller's
 * buffer; it is never stored, logged or kept in memory here (local copies
 * are wiped with OPENSSL_cleanse). Revocation keeps the first time.
 * Every function takes st->lock around its statements.
 */
#include "st_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_BYTES 32
#define SECRET_B64 43       /* base64url chars of SECRET_BYTES, no padding */
#define NAME_MAX_CHARS 64   /* <name> in "live/<name>": ingest's limit */
#define LABEL_MAX 127       /* bytes */
#define CHECK_MAX 1024      /* longest presented secret worth hashing */

/* ---- secrets ----------------------------------------------------------- */

int st_secret_new(const char *prefix, char *out, size_t outlen)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (!prefix || !out)
        return PD_EINVAL;
    size_t pl = strlen(prefix);
    if (outlen < pl + SECRET_B64 + 1)
        return PD_EINVAL;
    unsigned char raw[SECRET_BYTES + 1] = {0}; /* padded to 33 = 3 * 11 */
    if (RAND_bytes(raw, SECRET_BYTES) != 1) {
        PD_LOGE(ST_MOD, "RAND_bytes failed: no secret created");
        return PD_ERR;
    }
    memcpy(out, prefix, pl);
    char *p = out + pl;
    size_t n = 0;
    for (size_t i = 0; i < sizeof(raw); i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 |
                     raw[i + 2];
        char quad[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                        b64[(v >> 6) & 63], b64[v & 63]};
        for (int k = 0; k < 4 && n < SECRET_B64; k++)
            p[n++] = quad[k];
    }
    p[n] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

void st_secret_hash(const char *secret, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!secret ||
        EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(),
                   NULL) != 1 ||
        mdlen != 32) {
        /* cannot happen with a working libcrypto; an impossible hash
         * never matches a stored one */
        memset(hex, 'x', 64);
        hex[64] = '\0';
        return;
    }
    for (unsigned int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

/* ---- validation -------------------------------------------------------- */

/* "live/<name>", <name> 1..200 of [A-Za-z0-9_.-], not starting with a dot
 * (the publish-name rule of ingest, with a longer limit). */
bool st_stream_valid(const char *s)
{
    if (!s || strncmp(s, "live/", 5) != 0)
        return false;
    const char *n = s + 5;
    size_t len = strnlen(n, NAME_MAX_CHARS + 1);
    if (len < 1 || len > NAME_MAX_CHARS || n[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* <= 127 bytes of valid UTF-8 without control characters. */
static bool label_valid(const char *s)
{
    size_t len = strnlen(s, LABEL_MAX + 1);
    if (len > LABEL_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t more;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80)
            more = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef)
            more = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3;
        else
            return false;
        if (more && i + more >= len)
            return false;
        for (size_t k = 1; k <= more; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        /* overlongs of 3/4 bytes, surrogates, > U+10FFFF */
        if ((c == 0xc2 && p[i + 1] < 0xa0) || /* C1 controls (CSI...) */
            (c == 0xe0 && p[i + 1] < 0xa0) ||
            (c == 0xed && p[i + 1] > 0x9f) ||
            (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
            return false;
        i += more + 1;
    }
    return true;
}

/* ---- shared by keys and tokens ------------------------------------------ */

/* Inserts a new secret's row; table "keys" (stream non-NULL) or "tokens".
 * Retries with a fresh secret on the (astronomically unlikely) UNIQUE
 * clash. Caller holds no lock. */
static int create_secret(st_t *st, const char *table, const char *prefix,
                         const char *stream, const char *label, char *secret,
                         size_t secret_size, int64_t *id)
{
    if (!st || !secret || secret_size < ST_SECRET_MAX)
        return PD_EINVAL;
    if (!label)
        label = "";
    if (!label_valid(label))
        return PD_EINVAL;
    char sql[160];
    if (stream)
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s (stream, label, hash, created_us) "
                 "VALUES (?3, ?1, ?2, ?4)", table);
    else
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s (label, hash, created_us) "
                 "VALUES (?1, ?2, ?4)", table);
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    for (int attempt = 0; attempt < 3; attempt++) {
        char tmp[ST_SECRET_MAX], hex[65];
        rc = st_secret_new(prefix, tmp, sizeof(tmp));
        if (rc)
            break;
        st_secret_hash(tmp, hex);
        sqlite3_stmt *s = NULL;
        int src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
        if (src == SQLITE_OK) {
            sqlite3_bind_text(s, 1, label, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, hex, -1, SQLITE_TRANSIENT);
            if (stream)
                sqlite3_bind_text(s, 3, stream, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 4, pd_wall_us());
            src = sqlite3_step(s);
        }
        sqlite3_finalize(s);
        if (src == SQLITE_DONE) {
            int64_t rid = sqlite3_last_insert_rowid(st->db);
            if (id)
                *id = rid;
            snprintf(secret, secret_size, "%s", tmp);
            OPENSSL_cleanse(tmp, sizeof(tmp));
            rc = 0;
            if (stream)
                PD_LOGI(ST_MOD, "key %lld created for %s", (long long)rid,
                        stream);
            else
                PD_LOGI(ST_MOD, "API token %lld created", (long long)rid);
            break;
        }
        OPENSSL_cleanse(tmp, sizeof(tmp));
        rc = PD_EIO;
        if (src != SQLITE_CONSTRAINT) {
            PD_LOGE(ST_MOD, "%s: cannot create a %s row: %s", st->path,
                    table, sqlite3_errmsg(st->db));
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int revoke(st_t *st, const char *table, int64_t id)
{
    if (!st)
        return PD_EINVAL;
    if (id <= 0)
        return PD_ENOENT;
    char sql[128];
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET revoked_us = ?1 WHERE id = ?2 AND revoked_us = 0",
             table);
    char exists[64];
    snprintf(exists, sizeof(exists), "SELECT 1 FROM %s WHERE id = ?1", table);
    int rc = PD_EIO;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, pd_wall_us());
        sqlite3_bind_int64(s, 2, id);
        if (sqlite3_step(s) == SQLITE_DONE)
            rc = sqlite3_changes(st->db) > 0 ? 0 : PD_ENOENT;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (rc == PD_ENOENT &&
        sqlite3_prepare_v2(st->db, exists, -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, id);
        int step = sqlite3_step(s);
        rc = step == SQLITE_ROW ? 0 /* already revoked: keep that time */
             : step == SQLITE_DONE ? PD_ENOENT : PD_EIO;
    }
    sqlite3_finalize(s);
    if (rc == PD_EIO)
        PD_LOGE(ST_MOD, "%s: cannot revoke in %s: %s", st->path, table,
                sqlite3_errmsg(st->db));
    pthread_mutex_unlock(&st->lock);
    if (!rc)
        PD_LOGI(ST_MOD, "%s %lld revoked",
                strcmp(table, "keys") == 0 ? "key" : "API token",
                (long long)id);
    return rc;
}

/* Returns the id of the active row whose hash is the secret's, or 0 (no
 * such row, revoked, or no secret). For keys (stream_out non-NULL) the
 * key's stream is copied out. Caller holds db's lock. */
static int64_t find_active(sqlite3 *db, const char *table, const char *secret,
                           char *stream_out, size_t stream_size)
{
    if (!secret || !secret[0] || strnlen(secret, CHECK_MAX + 1) > CHECK_MAX)
        return 0;
    char hex[65];
    st_secret_hash(secret, hex);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT id, hash, revoked_us%s FROM %s "
             "WHERE hash = ?1", stream_out ? ", stream" : "", table);
    sqlite3_stmt *s = NULL;
    int64_t id = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, hex, 64, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW) {
            const unsigned char *h = sqlite3_column_text(s, 1);
            if (h && sqlite3_column_bytes(s, 1) == 64 &&
                CRYPTO_memcmp(h, hex, 64) == 0 &&
                sqlite3_column_int64(s, 2) == 0) {
                id = sqlite3_column_int64(s, 0);
                if (stream_out)
                    st_copy_col(s, 3, stream_out, stream_size);
            }
        }
    }
    sqlite3_finalize(s);
    return id > 0 ? id : 0;
}

/* Records a successful use (best effort: a failure only loses the time). */
/* Records a use, at most once a minute per key/token (a write costs an
 * fsync, and token checks run on the HTTP server's threads), and never
 * waits for the database: a busy database skips the record. */
static void touch_locked(st_t *st, const char *table, int64_t id)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET last_used_us = ?1 WHERE id = ?2 AND "
             "last_used_us < ?1 - 60000000", table);
    sqlite3_stmt *s = NULL;
    sqlite3_busy_timeout(st->db, 0);
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, pd_wall_us());
        sqlite3_bind_int64(s, 2, id);
        sqlite3_step(s);
    }
    sqlite3_finalize(s);
    sqlite3_busy_timeout(st->db, 5000);
}

/* ---- stream keys --------------------------------------------------------- */

int st_key_create(st_t *st, const char *stream, const char *label,
                  char *secret, size_t secret_size, int64_t *id)
{
    if (!st_stream_valid(stream))
        return PD_EINVAL;
    return create_secret(st, "keys", "pk_", stream, label, secret,
                         secret_size, id);
}

static void key_row(sqlite3_stmt *s, void *elem)
{
    st_key_t *k = elem;
    k->id = sqlite3_column_int64(s, 0);
    st_copy_col(s, 1, k->stream, sizeof(k->stream));
    st_copy_col(s, 2, k->label, sizeof(k->label));
    k->created_us = sqlite3_column_int64(s, 3);
    k->revoked_us = sqlite3_column_int64(s, 4);
    k->last_used_us = sqlite3_column_int64(s, 5);
}

int st_key_list(st_t *st, st_key_t **out, int *n)
{
    if (!out)
        return PD_EINVAL;
    void *v = NULL;
    int rc = st_select_all(st,
                         "SELECT id, stream, label, created_us, revoked_us,"
                         " last_used_us FROM keys ORDER BY id DESC",
                         -1, "keys", sizeof(st_key_t), key_row,
                         &v, n);
    *out = v;
    return rc;
}

int st_key_revoke(st_t *st, int64_t id)
{
    return revoke(st, "keys", id);
}

int st_key_check(st_t *st, char *stream, size_t stream_size, const char *key)
{
    if (!st || !stream || stream_size == 0 ||
        strnlen(stream, stream_size) >= stream_size)
        return PD_EPERM;
    char found[256] = "";
    int rc = PD_EPERM;
    pthread_mutex_lock(&st->lock);
    if (key && key[0]) {
        int64_t id = find_active(st->db, "keys", key, found, sizeof(found));
        if (id > 0 && strcmp(found, stream) == 0) {
            touch_locked(st, "keys", id);
            rc = 0;
        }
    } else if (strncmp(stream, "live/", 5) == 0) {
        /* key-as-name: the whole <name> may be the secret */
        int64_t id = find_active(st->db, "keys", stream + 5, found,
                                 sizeof(found));
        size_t fl = strlen(found);
        if (id > 0 && st_stream_valid(found) && fl < stream_size) {
            touch_locked(st, "keys", id);
            memcpy(stream, found, fl + 1);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- API tokens ---------------------------------------------------------- */

int st_token_create(st_t *st, const char *label, char *secret,
                    size_t secret_size, int64_t *id)
{
    return create_secret(st, "tokens", "pt_", NULL, label, secret,
                         secret_size, id);
}

static void token_row(sqlite3_stmt *s, void *elem)
{
    st_token_t *t = elem;
    t->id = sqlite3_column_int64(s, 0);
    st_copy_col(s, 1, t->label, sizeof(t->label));
    t->created_us = sqlite3_column_int64(s, 2);
    t->revoked_us = sqlite3_column_int64(s, 3);
    t->last_used_us = sqlite3_column_int64(s, 4);
}

int st_token_list(st_t *st, st_token_t **out, int *n)
{
    if (!out)
        return PD_EINVAL;
    void *v = NULL;
    int rc = st_select_all(st,
                         "SELECT id, label, created_us, revoked_us,"
                         " last_used_us FROM tokens ORDER BY id DESC",
                         -1, "tokens", sizeof(st_token_t), token_row,
                         &v, n);
    *out = v;
    return rc;
}

int st_token_revoke(st_t *st, int64_t id)
{
    return revoke(st, "tokens", id);
}

int st_token_check(st_t *st, const char *secret)
{
    if (!st)
        return PD_EPERM;
    /* HTTP threads: the check reads through the reader connection (never
     * behind a commit), and the use is recorded only if the writer is
     * free right now */
    sqlite3 *db = st_reader_lock(st);
    int64_t id = find_active(db, "tokens", secret, NULL, 0);
    st_reader_unlock(st);
    if (id > 0 && pthread_mutex_trylock(&st->lock) == 0) {
        touch_locked(st, "tokens", id);
        pthread_mutex_unlock(&st->lock);
    }
    return id > 0 ? 0 : PD_EPERM;
}
