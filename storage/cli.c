/*
 * storage/cli.c - `podium keys ...`, `podium tokens ...` and `podium
 * playback ...`: manage stream keys, API tokens and playback protection
 * from the shell.
 *
 * The CLI opens the database itself (st_open), so it works while a podium
 * server runs on the same file (WAL + busy_timeout; db.c's lock keeps it
 * from closing the server's live sessions). A secret is printed once, on
 * create, to stdout; lists never print secrets (they are not stored).
 * Errors: one line on stderr. Exit status: 0 ok, 1 error, 2 usage.
 */
#include "st_int.h"

#include <openssl/crypto.h>

#include "../core/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(const char *what)
{
    if (what && strcmp(what, "tokens") == 0)
        fprintf(stderr, "usage: podium tokens create [--label L] | list | "
                        "revoke <id>\n");
    else
        fprintf(stderr, "usage: podium keys create <name|live/name> "
                        "[--label L] | list | revoke <id>\n");
    return 2;
}

/* ISO 8601 UTC of a wallclock time in microseconds, "-" for 0. */
static const char *iso(int64_t us, char *buf, size_t size)
{
    if (us <= 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "?");
    return buf;
}

/* Parses a positive decimal id; false on anything else. */
static bool parse_id(const char *s, int64_t *id)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || v <= 0)
        return false;
    *id = v;
    return true;
}

/* Splits argv[from..) into one positional argument and --label. Returns
 * false on an unknown option, a missing value or too many positionals. */
static bool parse_args(int argc, char **argv, int from, const char **pos,
                       const char **label)
{
    *pos = NULL;
    *label = NULL;
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            return false;
        if (strcmp(a, "--label") == 0) {
            if (i + 1 >= argc || !argv[i + 1] || *label)
                return false;
            *label = argv[++i];
        } else if (strncmp(a, "--label=", 8) == 0) {
            if (*label)
                return false;
            *label = a + 8;
        } else if (a[0] == '-' && a[1]) {
            return false;
        } else if (*pos) {
            return false;
        } else {
            *pos = a;
        }
    }
    return true;
}

static int fail(const char *what, const char *msg, int rc)
{
    fprintf(stderr, "podium %s: %s (%s)\n", what, msg, pd_strerror(rc));
    return 1;
}

static int keys_create(st_t *st, const pd_config_t *cfg, const char *name,
                       const char *label)
{
    char stream[256];
    int n = strncmp(name, "live/", 5) == 0
                ? snprintf(stream, sizeof(stream), "%s", name)
                : snprintf(stream, sizeof(stream), "live/%s", name);
    if (n < 0 || (size_t)n >= sizeof(stream))
        return fail("keys", "stream name too long", PD_EINVAL);
    char secret[ST_SECRET_MAX];
    int64_t id = 0;
    int rc = st_key_create(st, stream, label, secret, sizeof(secret), &id);
    if (rc == PD_EINVAL)
        return fail("keys", "invalid stream name (live/<name>, 1-64 of "
                    "A-Z a-z 0-9 _ . -, not starting with '.') or label "
                    "(at most 127 bytes of printable UTF-8)", rc);
    if (rc)
        return fail("keys", "cannot create the key", rc);
    int port = cfg->rtmp_port > 0 ? cfg->rtmp_port : 1935;
    /* which database: a relative data_dir elsewhere is another one */
    fprintf(stderr, "database %s\n", st->path);
    printf("id %" PRId64 "\nkey %s\n", id, secret);
    printf("publish with rtmp://HOST:%d/%s?key=%s\n"
           "or in OBS: server rtmp://HOST:%d/live, stream key %s\n"
           "(the key is shown only now; it is stored as a hash)\n",
           port, stream, secret, port, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    return 0;
}

static int keys_list(st_t *st)
{
    st_key_t *k = NULL;
    int n = 0;
    int rc = st_key_list(st, &k, &n);
    if (rc)
        return fail("keys", "cannot list keys", rc);
    printf("%-6s %-30s %-20s %-20s %-20s %-20s\n", "id", "stream", "label",
           "created", "revoked", "last used");
    for (int i = 0; i < n; i++) {
        char c[32], r[32], u[32];
        printf("%-6" PRId64 " %-30s %-20s %-20s %-20s %-20s\n", k[i].id,
               k[i].stream, k[i].label[0] ? k[i].label : "-",
               iso(k[i].created_us, c, sizeof(c)),
               iso(k[i].revoked_us, r, sizeof(r)),
               iso(k[i].last_used_us, u, sizeof(u)));
    }
    free(k);
    return 0;
}

static int tokens_create(st_t *st, const char *label)
{
    char secret[ST_SECRET_MAX];
    int64_t id = 0;
    int rc = st_token_create(st, label, secret, sizeof(secret), &id);
    if (rc == PD_EINVAL)
        return fail("tokens", "invalid label (at most 127 bytes of "
                    "printable UTF-8)", rc);
    if (rc)
        return fail("tokens", "cannot create the token", rc);
    printf("id %" PRId64 "\ntoken %s\n", id, secret);
    printf("use it as: Authorization: Bearer %s\n"
           "(the token is shown only now; it is stored as a hash)\n",
           secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    return 0;
}

static int tokens_list(st_t *st)
{
    st_token_t *t = NULL;
    int n = 0;
    int rc = st_token_list(st, &t, &n);
    if (rc)
        return fail("tokens", "cannot list tokens", rc);
    printf("%-6s %-30s %-20s %-20s %-20s\n", "id", "label", "created",
           "revoked", "last used");
    for (int i = 0; i < n; i++) {
        char c[32], r[32], u[32];
        printf("%-6" PRId64 " %-30s %-20s %-20s %-20s\n", t[i].id,
               t[i].label[0] ? t[i].label : "-",
               iso(t[i].created_us, c, sizeof(c)),
               iso(t[i].revoked_us, r, sizeof(r)),
               iso(t[i].last_used_us, u, sizeof(u)));
    }
    free(t);
    return 0;
}

static int playback_usage(void)
{
    fprintf(stderr, "usage: podium playback protect <name> | unprotect "
                    "<name> | list | sign <name|/acl> [--ttl SECONDS]\n");
    return 2;
}

/* "live/<name>" from "<name>" or "live/<name>"; false if too long. */
static bool stream_arg(const char *name, char *out, size_t size)
{
    int n = strncmp(name, "live/", 5) == 0
                ? snprintf(out, size, "%s", name)
                : snprintf(out, size, "live/%s", name);
    return n > 0 && (size_t)n < size;
}

/* `podium playback ...` (argv[0] is "playback"). */
static int playback_cli(const pd_config_t *cfg, int argc, char **argv)
{
    if (argc < 2 || !argv[1])
        return playback_usage();
    const char *cmd = argv[1], *pos = NULL;
    int64_t ttl = 3600;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            return playback_usage();
        if (strcmp(a, "--ttl") == 0 && i + 1 < argc && argv[i + 1]) {
            if (!parse_id(argv[++i], &ttl) || ttl > 315360000) {
                fprintf(stderr, "podium playback: --ttl takes 1 to "
                        "315360000 seconds\n");
                return 2;
            }
        } else if (a[0] == '-' || pos) {
            return playback_usage();
        } else {
            pos = a;
        }
    }
    bool protect = strcmp(cmd, "protect") == 0;
    bool unprotect = strcmp(cmd, "unprotect") == 0;
    bool list = strcmp(cmd, "list") == 0;
    bool sign = strcmp(cmd, "sign") == 0;
    if (!(protect || unprotect || list || sign) || (list && pos) ||
        (!list && !pos))
        return playback_usage();
    char stream[256] = "", acl[PD_TOKEN_MAX] = "";
    if ((protect || unprotect) && !stream_arg(pos, stream, sizeof(stream)))
        return fail("playback", "stream name too long", PD_EINVAL);
    if (sign) {
        int n;
        if (pos[0] == '/') {
            n = snprintf(acl, sizeof(acl), "%s", pos);
        } else {
            /* a name, never patterns: "x!/vod" or "*" would widen it */
            if (!stream_arg(pos, stream, sizeof(stream)) ||
                !st_stream_valid(stream))
                return fail("playback", "invalid stream name (live/<name>, "
                            "1-64 of A-Z a-z 0-9 _ . -, not starting with "
                            "'.'); an acl starts with '/'", PD_EINVAL);
            n = snprintf(acl, sizeof(acl), "/%s/*", stream);
        }
        if (n < 0 || (size_t)n >= sizeof(acl))
            return fail("playback", "acl too long", PD_EINVAL);
    }

    st_t *st = NULL;
    int rc = st_open(cfg, NULL, &st);
    if (rc)
        return fail("playback", "cannot open the database", rc);
    int status = 0;
    if (protect || unprotect) {
        rc = st_playback_set(st, stream, protect);
        if (rc == PD_EINVAL)
            status = fail("playback", "invalid stream name (live/<name>, "
                          "1-64 of A-Z a-z 0-9 _ . -, not starting with "
                          "'.')", rc);
        else if (rc)
            status = fail("playback", "cannot store the setting", rc);
        else
            printf("%s: playback %s\n(a running podium applies this within "
                   "5 s; POST /api/playback applies it at once)\n",
                   stream, protect ? "needs a signed URL" : "is public");
    } else if (list) {
        char(*v)[256] = NULL;
        int n = 0;
        rc = st_playback_list(st, &v, &n);
        if (rc) {
            status = fail("playback", "cannot list", rc);
        } else {
            if (cfg->signed_playback)
                printf("every stream needs a signed URL (signed_playback = "
                       "1)\n");
            for (int i = 0; i < n; i++)
                printf("%s\n", v[i]);
        }
        free(v);
    } else {
        char token[PD_TOKEN_MAX + 1];
        rc = st_playback_sign(st, acl, ttl, token, sizeof(token));
        if (rc == PD_EINVAL || rc == PD_ELIMIT) {
            status = fail("playback", "cannot sign that (an acl is paths "
                          "starting with '/', joined by '!', '*' as a "
                          "wildcard)", rc);
        } else if (rc) {
            status = fail("playback", "no signing key", rc);
        } else {
            printf("token %s\nparam %s\n", token, cfg->playback_token_param);
            if (stream[0])
                printf("url /%s/index.m3u8?%s=%s\n", stream,
                       cfg->playback_token_param, token);
        }
        OPENSSL_cleanse(token, sizeof(token));
    }
    fflush(stdout);
    st_close(&st);
    return status;
}

int st_cli(const pd_config_t *cfg, int argc, char **argv)
{
    if (!cfg || argc < 1 || !argv || !argv[0])
        return usage(NULL);
    if (strcmp(argv[0], "playback") == 0)
        return playback_cli(cfg, argc, argv);
    const char *what = argv[0];
    bool keys = strcmp(what, "keys") == 0;
    if (!keys && strcmp(what, "tokens") != 0)
        return usage(NULL);
    if (argc < 2 || !argv[1])
        return usage(what);
    const char *cmd = argv[1];
    const char *pos = NULL, *label = NULL;
    if (!parse_args(argc, argv, 2, &pos, &label))
        return usage(what);
    int64_t id = 0;
    /* validate the command line before touching the database */
    if (strcmp(cmd, "create") == 0) {
        if ((keys && !pos) || (!keys && pos))
            return usage(what);
    } else if (strcmp(cmd, "list") == 0) {
        if (pos || label)
            return usage(what);
    } else if (strcmp(cmd, "revoke") == 0) {
        if (label || !pos)
            return usage(what);
        if (!parse_id(pos, &id)) {
            fprintf(stderr, "podium %s: revoke: not an id: the numbers are "
                    "in `podium %s list`\n", what, what);
            return 2;
        }
    } else {
        return usage(what);
    }

    st_t *st = NULL;
    int rc = st_open(cfg, NULL, &st);
    if (rc)
        return fail(what, "cannot open the database", rc);
    int status;
    if (strcmp(cmd, "create") == 0)
        status = keys ? keys_create(st, cfg, pos, label)
                      : tokens_create(st, label);
    else if (strcmp(cmd, "list") == 0)
        status = keys ? keys_list(st) : tokens_list(st);
    else {
        rc = keys ? st_key_revoke(st, id) : st_token_revoke(st, id);
        if (rc == PD_ENOENT) {
            fprintf(stderr, "podium %s: no %s with id %" PRId64 "\n", what,
                    keys ? "key" : "token", id);
            status = 1;
        } else if (rc) {
            status = fail(what, "cannot revoke", rc);
        } else {
            printf("revoked %s %" PRId64 "\n", keys ? "key" : "token", id);
            status = 0;
        }
    }
    fflush(stdout);
    st_close(&st);
    return status;
}
