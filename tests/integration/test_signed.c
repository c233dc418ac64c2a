/*
 * tests/integration/test_signed.c - signed playback URLs end to end: the
 * real podium binary, its CLI (`podium playback protect|sign|list`), the
 * ffmpeg CLI publishing over RTMP, libcurl and ffprobe as viewers, the
 * admin API (/api/playback, /api/sign, /api/streams, /api/recordings).
 *
 * Cost: the suite must stay cheap (it runs plain and sanitized in CI), so
 * ONE podium and ONE publish of PUB_S seconds per stream serve every
 * check. An unchecked fixture (runs once, in the runner process, never
 * asserts) marks live/show protected with the CLI before podium starts,
 * starts podium (passthrough, 1 s segments, short grace so that the
 * recording ends soon after the publisher), publishes live/show and the
 * unprotected live/open for PUB_S seconds, signs a token for show with
 * the CLI and creates an API bearer token. The tests then run in order
 * on that state, each forked (a failed check does not stop the next
 * tests): the live checks first (the stream must still be live for the
 * blocking reload), then the recording once the publishers stopped, and
 * last the unprotection through the API, the log audit and a clean exit.
 *
 * Secrets: no token, key or bearer secret is ever printed. Every message
 * that may quote a URL, a playlist or a tool's output goes through
 * red(), which replaces the known secrets with "<token>" and any run of
 * 32 or more hex digits with "<hex>".
 */
#include "core/token.h"
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GOP_MS 1000
#define PUB_S 10 /* seconds of media per stream */
#define PARAM "token"
static const char *const SETS[] = {"transcode=0",
                                   "recording=1",
                                   "segment_target_ms=1000",
                                   "grace_period_ms=1000",
                                   "linger_ms=60000",
                                   "log_level=\"debug\"",
                                   NULL};

/* ---- the shared state (set by the unchecked fixture, read by tests) ---- */

static struct {
    bool ok;        /* the fixture got everything below */
    char why[512];  /* what went wrong if not ok (no secrets) */
    char dir[256];  /* temp dir */
    char data[320]; /* <dir>/data: podium's data dir */
    tl_podium_t p;
    tl_pub_t show, open;
    int protect_rc;        /* exit code of `playback protect show` */
    char protect_out[512]; /* its stdout */
    char sign_out[2 * PD_TOKEN_MAX + 128]; /* stdout of `playback sign show` */
    char token[PD_TOKEN_MAX + 1];          /* the show token (CLI) */
    char keyhex[256];                      /* <data>/playback.key, trimmed */
    char bearer[128];                      /* API token (pt_...) */
} F;

/* Secrets registered by the running test process for red(). */
#define NSECRETS 16
static char secrets[NSECRETS][PD_TOKEN_MAX + 1];
static int nsecrets;

static void add_secret(const char *s)
{
    if (s && s[0] && nsecrets < NSECRETS)
        snprintf(secrets[nsecrets++], sizeof(secrets[0]), "%s", s);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* A copy of s (NULL: "") fit to print: known secrets -> "<token>", runs of
 * >= 32 hex digits -> "<hex>", "pt_..." words -> "<bearer>". Returns one
 * of 4 rotating static buffers (several red() in one message). */
static const char *red(const char *s)
{
    static char bufs[4][4096];
    static int k;
    char *out = bufs[k++ % 4];
    size_t o = 0, cap = sizeof(bufs[0]);
    if (!s)
        s = "";
    while (*s && o + 16 < cap) {
        bool hit = false;
        for (int i = 0; i < nsecrets && !hit; i++) {
            size_t n = strlen(secrets[i]);
            if (strncmp(s, secrets[i], n) == 0) {
                o += (size_t)snprintf(out + o, cap - o, "<token>");
                s += n;
                hit = true;
            }
        }
        if (hit)
            continue;
        if (strncmp(s, "pt_", 3) == 0) {
            o += (size_t)snprintf(out + o, cap - o, "<bearer>");
            s += 3;
            while (*s && *s != ' ' && *s != '\n' && *s != '"')
                s++;
            continue;
        }
        size_t h = 0;
        while (is_hex(s[h]))
            h++;
        if (h >= 32) {
            o += (size_t)snprintf(out + o, cap - o, "<hex>");
            s += h;
            continue;
        }
        if (h > 0) {
            memcpy(out + o, s, h < cap - o - 1 ? h : cap - o - 1);
            o += h < cap - o - 1 ? h : cap - o - 1;
            s += h;
            continue;
        }
        out[o++] = *s++;
    }
    out[o] = 0;
    return out;
}

/* The 64 hex digits after "~hmac=" of token t (a static copy). */
static const char *hmac_of(const char *t)
{
    static char h[65];
    const char *p = t ? strstr(t, "~hmac=") : NULL;
    snprintf(h, sizeof(h), "%s", p ? p + 6 : "");
    return h;
}

/* ---- processes ----------------------------------------------------------- */

/* tl_cli() on the fixture's data dir with the words w0 w1 w2 (NULL ends
 * them early). Returns the exit code (-1: did not exit normally); stdout
 * into *out (caller frees; may be NULL). Prints stderr (redacted) if it
 * failed. */
static int cli(char **out, const char *w0, const char *w1, const char *w2)
{
    char *err = NULL;
    int rc = tl_cli(F.dir, out, &err, w0, w1, w2, NULL);
    if (rc != 0)
        printf("  podium %s %s: exit code %d, stderr: %s\n", w0, w1 ? w1 : "",
               rc, red(err));
    free(err);
    return rc;
}

/* `podium playback sign what`: the token into out. Returns true if the
 * command worked and printed one. */
static bool cli_sign(const char *what, char *out, size_t outlen, char *all,
                     size_t alllen)
{
    char *o = NULL;
    int rc = cli(&o, "playback", "sign", what);
    bool ok = rc == 0 && o && tl_field_after(o, "token", out, outlen);
    if (all)
        snprintf(all, alllen, "%s", o ? o : "");
    free(o);
    return ok;
}

/* ---- HTTP -------------------------------------------------------------- */

/* GET http://127.0.0.1:<port><path> (path may carry a query). */
static long get(const char *path, tl_resp_t *r)
{
    tl_get(r, 15000, "http://127.0.0.1:%d%s", F.p.http_port, path);
    return r->status;
}

/* GET path, expect 200; returns the response (caller frees). */
static void get_200(const char *path, const char *what, tl_resp_t *r)
{
    long st = get(path, r);
    ck_assert_msg(st == 200, "%s: GET %s: status %ld, not 200 (body: %.200s)",
                  what, red(path), st, red((const char *)r->body));
}

/* GET path; expect 403 with Cache-Control private, no-store and a body
 * that quotes none of the token (secret may be NULL). */
static void expect_403(const char *path, const char *what, const char *secret)
{
    tl_resp_t r;
    long st = get(path, &r);
    char cc[128] = "";
    tl_header(&r, "Cache-Control", cc, sizeof(cc));
    ck_assert_msg(st == 403, "%s: GET %s: status %ld, not 403", what, red(path),
                  st);
    ck_assert_msg(strstr(cc, "no-store") && strstr(cc, "private"),
                  "%s: the 403 has Cache-Control '%s', not private, no-store",
                  what, cc);
    const char *body = (const char *)r.body;
    ck_assert_msg(!strstr(body, "hmac") && !strstr(body, "exp=") &&
                      !(secret && secret[0] && strstr(body, secret)) &&
                      !(secret && strstr(secret, "~hmac=") &&
                        strstr(body, hmac_of(secret))),
                  "%s: the 403 body quotes the token: %s", what, red(body));
    tl_resp_free(&r);
}

/* ---- playlists ---------------------------------------------------------- */

#define MAX_URIS 256

typedef struct {
    char kind[32]; /* "SEGMENT", "STREAM-INF" or the tag (EXT-X-MAP...) */
    char uri[512]; /* as written */
} puri_t;

typedef struct {
    puri_t u[MAX_URIS];
    int n;
} uris_t;

static int count_kind(const uris_t *u, const char *kind)
{
    int n = 0;
    for (int i = 0; i < u->n; i++)
        n += strcmp(u->u[i].kind, kind) == 0;
    return n;
}

/* Lists every URI of playlist text (URI lines and URI="..." attributes)
 * into *u and asserts that each ends with "?token=<token>" and carries
 * "token=" exactly once. what names the playlist in messages. */
static void scan_uris(const char *text, const char *token, uris_t *u,
                      const char *what)
{
    char want[PD_TOKEN_MAX + 16];
    snprintf(want, sizeof(want), "?" PARAM "=%s", token);
    size_t wl = strlen(want);
    u->n = 0;
    char prev[32] = "";
    for (const char *l = text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        if (len && l[len - 1] == '\r')
            len--;
        if (len && l[0] == '#') {
            size_t tl = strcspn(l, ":\n");
            if (tl > len)
                tl = len;
            snprintf(prev, sizeof(prev), "%.*s", (int)(tl - 1), l + 1);
            for (const char *a = l; a < l + len;) {
                const char *q = memmem(a, (size_t)(l + len - a), "URI=\"", 5);
                if (!q)
                    break;
                q += 5;
                const char *end = memchr(q, '"', (size_t)(l + len - q));
                ck_assert_msg(end, "%s: unterminated URI=\" in %s", what,
                              red(prev));
                ck_assert_msg(u->n < MAX_URIS, "%s: too many URIs", what);
                puri_t *p = &u->u[u->n++];
                snprintf(p->kind, sizeof(p->kind), "%s", prev);
                snprintf(p->uri, sizeof(p->uri), "%.*s", (int)(end - q), q);
                a = end + 1;
            }
        } else if (len) {
            ck_assert_msg(u->n < MAX_URIS, "%s: too many URIs", what);
            puri_t *p = &u->u[u->n++];
            snprintf(p->kind, sizeof(p->kind), "%s",
                     strcmp(prev, "EXT-X-STREAM-INF") == 0 ? "STREAM-INF"
                                                           : "SEGMENT");
            snprintf(p->uri, sizeof(p->uri), "%.*s", (int)len, l);
        }
        l = e ? e + 1 : NULL;
    }
    for (int i = 0; i < u->n; i++) {
        const char *s = u->u[i].uri;
        size_t sl = strlen(s);
        int times = 0;
        for (const char *t = strstr(s, PARAM "="); t;
             t = strstr(t + 1, PARAM "="))
            times++;
        ck_assert_msg(sl > wl && strcmp(s + sl - wl, want) == 0,
                      "%s: %s URI '%s' does not end with ?" PARAM "=<token>",
                      what, u->u[i].kind, red(s));
        ck_assert_msg(times == 1,
                      "%s: %s URI '%s' carries " PARAM "= %d "
                      "times",
                      what, u->u[i].kind, red(s), times);
    }
}

/* The URI without its query (a static copy). */
static const char *no_query(const char *uri)
{
    static char b[512];
    snprintf(b, sizeof(b), "%.*s", (int)strcspn(uri, "?"), uri);
    return b;
}

/* GETs every URI of *u (resolved against base, the playlist's path
 * without query) and expects 200 and a body. A live part or segment
 * that answers 404 is accepted only if the playlist (base?token=T) no
 * longer lists it (it rolled out of the window meanwhile). Returns the
 * number of URIs fetched. */
static int fetch_all(const char *base, const uris_t *u, const char *token,
                     const char *what)
{
    int fetched = 0;
    for (int i = 0; i < u->n; i++) {
        char abs[1024];
        ck_assert_msg(tl_resolve(base, u->u[i].uri, abs, sizeof(abs)) == 0,
                      "%s: cannot resolve %s", what, red(u->u[i].uri));
        tl_resp_t r;
        long st = get(abs, &r);
        size_t len = r.len;
        tl_resp_free(&r);
        if (st == 404 && (strcmp(u->u[i].kind, "EXT-X-PART") == 0 ||
                          strcmp(u->u[i].kind, "SEGMENT") == 0)) {
            char pl[1024];
            snprintf(pl, sizeof(pl), "%s?" PARAM "=%s", base, token);
            char *body = NULL;
            long s2 =
                tl_http(F.p.http_port, "GET", pl, NULL, NULL, NULL, 0, &body);
            bool listed = s2 == 200 && strstr(body, no_query(u->u[i].uri));
            free(body);
            ck_assert_msg(!listed, "%s: GET %s: 404 though still listed", what,
                          red(abs));
            tl_note("%s: %s rolled out of the window meanwhile", what,
                    no_query(u->u[i].uri));
            continue;
        }
        ck_assert_msg(st == 200, "%s: GET %s (%s): status %ld, not 200", what,
                      red(abs), u->u[i].kind, st);
        ck_assert_msg(len > 0, "%s: GET %s: empty body", what, red(abs));
        fetched++;
    }
    return fetched;
}

/* GET base?token=T (200), scan its URIs (all carry T), fetch them all. */
static void check_signed_playlist(const char *base, const char *token,
                                  uris_t *u, const char *what)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", base, token);
    tl_resp_t r;
    get_200(path, what, &r);
    scan_uris((const char *)r.body, token, u, what);
    tl_resp_free(&r);
    int n = fetch_all(base, u, token, what);
    tl_note("%s: %d URIs carry the token, %d fetched with it (200)", what, u->n,
            n);
}

/* ---- the key and hand-made tokens --------------------------------------- */

static void load_key(uint8_t *key, size_t *keylen)
{
    ck_assert_msg(pd_token_key_from_hex(F.keyhex, key, keylen) == 0,
                  "<data>/playback.key does not hold a valid hex key");
}

/* A token for acl valid from st (0: no st) until exp (unix s). */
static void make_token(const char *acl, int64_t st, int64_t exp, char *out,
                       size_t outlen)
{
    uint8_t key[PD_TOKEN_KEY_MAX];
    size_t keylen = 0;
    load_key(key, &keylen);
    ck_assert_msg(pd_token_make(key, keylen, st, exp, acl, out, outlen) == 0,
                  "pd_token_make failed for %s", acl);
    add_secret(out);
}

/* Asserts podium's log holds none of the known secrets nor any token. */
static void assert_log_clean(const char *extra1, const char *extra2)
{
    char *s = tl_read_file(F.p.log, NULL);
    ck_assert_msg(s, "cannot read podium's log %s", F.p.log);
    struct {
        const char *v, *what;
    } chk[] = {{F.keyhex, "the playback key (hex)"},
               {hmac_of(F.token), "the hmac of the CLI token"},
               {F.bearer, "the API bearer token"},
               {"~hmac=", "a playback token (~hmac=)"},
               {"~acl=", "a playback token (~acl=)"},
               {PARAM "=exp=", "a token query (" PARAM "=exp=)"}};
    for (size_t i = 0; i < sizeof(chk) / sizeof(chk[0]); i++)
        ck_assert_msg(!chk[i].v[0] || !strstr(s, chk[i].v),
                      "%s appears in podium's log %s", chk[i].what, F.p.log);
    const char *ex[2] = {extra1, extra2};
    for (int i = 0; i < 2; i++) {
        if (!ex[i] || !ex[i][0])
            continue;
        char h[65];
        snprintf(h, sizeof(h), "%s", hmac_of(ex[i]));
        ck_assert_msg(!strstr(s, ex[i]) && !(h[0] && strstr(s, h)),
                      "a token made by the test appears in podium's log %s",
                      F.p.log);
    }
    free(s);
}

/* The fixture worked; else fail with what went wrong. */
static void need_fixture(void)
{
    add_secret(F.token);
    add_secret(F.bearer);
    add_secret(F.keyhex);
    ck_assert_msg(F.ok, "fixture: %s", F.why);
}

/* ---- the fixture -------------------------------------------------------- */

static bool fail_setup(const char *fmt, const char *arg)
{
    snprintf(F.why, sizeof(F.why), fmt, arg ? arg : "");
    printf("  setup failed: %s\n", F.why);
    if (F.p.pid)
        tl_print_tail(F.p.log, 15, "  podium | ");
    return false;
}

static bool setup_steps(void)
{
    if (tl_mkdtemp(F.dir, sizeof(F.dir), "signed") != 0)
        return fail_setup("cannot make a temp dir%s", NULL);
    snprintf(F.data, sizeof(F.data), "%s/data", F.dir);
    mkdir(F.data, 0755);

    /* 1. protect show with the CLI before the server runs */
    char set[400];
    snprintf(set, sizeof(set), "data_dir=%s", F.data);
    char *argv[] = {(char *)tl_podium_bin(),
                    "--set",
                    set,
                    "playback",
                    "protect",
                    "show",
                    NULL};
    char *out = NULL, *err = NULL;
    int st = tl_run(argv, 30000, &out, &err);
    F.protect_rc = (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    snprintf(F.protect_out, sizeof(F.protect_out), "%s", out ? out : "");
    if (F.protect_rc != 0)
        printf("  playback protect show: stderr %s\n", red(err));
    free(out);
    free(err);
    if (F.protect_rc != 0)
        return fail_setup("`podium --set data_dir=D playback protect show` "
                          "failed%s",
                          NULL);

    char kpath[400];
    snprintf(kpath, sizeof(kpath), "%s/playback.key", F.data);
    char *k = tl_read_file(kpath, NULL);
    if (!k)
        return fail_setup("no %s after `playback protect`", kpath);
    size_t n = strcspn(k, " \t\r\n");
    snprintf(F.keyhex, sizeof(F.keyhex), "%.*s", (int)n, k);
    free(k);
    add_secret(F.keyhex);

    if (tl_podium_start(&F.p, F.dir, SETS) != 0)
        return fail_setup("podium did not start%s", NULL);
    if (tl_pub_start(&F.show, F.dir, F.p.rtmp_port, "show", GOP_MS, PUB_S) ||
        tl_pub_start(&F.open, F.dir, F.p.rtmp_port, "open", GOP_MS, PUB_S))
        return fail_setup("cannot start ffmpeg%s", NULL);

    /* the CLI signs while the server runs; and an API bearer token */
    if (!cli_sign("show", F.token, sizeof(F.token), F.sign_out,
                  sizeof(F.sign_out)))
        return fail_setup("`podium playback sign show` failed or printed no "
                          "'token ...' line%s",
                          NULL);
    add_secret(F.token);
    char why[1024];
    if (tl_token_create(F.dir, NULL, F.bearer, sizeof(F.bearer), why,
                        sizeof(why)) != 0)
        return fail_setup("`podium tokens create` failed: %s", red(why));
    add_secret(F.bearer);

    char path[2048];
    snprintf(path, sizeof(path), "/live/show/source/index.m3u8?" PARAM "=%s",
             F.token);
    int64_t t0 = tl_now_ms();
    if (tl_wait_segments(F.p.http_port, path, 2, 30000) != 0)
        return fail_setup("live/show/source (signed URL) got no 2 segments in "
                          "30 s%s",
                          NULL);
    if (tl_wait_segments(F.p.http_port, "/live/open/source/index.m3u8", 1,
                         30000) != 0)
        return fail_setup("live/open/source got no segment in 30 s%s", NULL);
    tl_note("setup: segments on both streams %lld ms after podium started",
            (long long)(tl_now_ms() - t0));
    return true;
}

static void setup(void)
{
    memset(&F, 0, sizeof(F));
    F.ok = setup_steps();
}

static void teardown(void)
{
    tl_pub_stop(&F.show, SIGKILL);
    tl_pub_stop(&F.open, SIGKILL);
    if (F.p.pid)
        tl_podium_reap(&F.p);
    tl_rmtree(F.dir);
}

/* ---- 1. the CLI and the listings ----------------------------------------- */

START_TEST(test_cli_and_listings)
{
    need_fixture();
    ck_assert_msg(strstr(F.protect_out, "live/show"),
                  "`playback protect show` did not name live/show: %s",
                  red(F.protect_out));
    char kpath[400];
    snprintf(kpath, sizeof(kpath), "%s/playback.key", F.data);
    struct stat sb;
    ck_assert_msg(stat(kpath, &sb) == 0 && (sb.st_mode & 077) == 0,
                  "%s is readable by group or others (mode %o)", kpath,
                  (unsigned)(sb.st_mode & 0777));

    /* `playback sign show` prints token, param and url lines */
    char param[64] = "", url[2 * PD_TOKEN_MAX], want[2 * PD_TOKEN_MAX];
    ck_assert_msg(tl_field_after(F.sign_out, "param", param, sizeof(param)) &&
                      strcmp(param, PARAM) == 0,
                  "`playback sign show` printed param '%s', not " PARAM, param);
    snprintf(want, sizeof(want), "/live/show/index.m3u8?" PARAM "=%s", F.token);
    ck_assert_msg(tl_field_after(F.sign_out, "url", url, sizeof(url)) &&
                      strcmp(url, want) == 0,
                  "`playback sign show` printed url '%s', not "
                  "/live/show/index.m3u8?" PARAM "=<token>",
                  red(url));
    ck_assert_msg(strstr(F.token, "acl=/live/show/*"),
                  "the CLI token's acl is not /live/show/*: %s", red(F.token));

    /* `playback list` */
    char *o = NULL;
    ck_assert_msg(cli(&o, "playback", "list", NULL) == 0,
                  "`playback list` failed");
    ck_assert_msg(o && strstr(o, "live/show") && !strstr(o, "live/open"),
                  "`playback list` does not list exactly live/show: %s",
                  red(o));
    free(o);

    /* /streams.json hides show, lists open */
    tl_resp_t r;
    get_200("/streams.json", "/streams.json", &r);
    json_t *a = json_loadb((const char *)r.body, r.len, 0, NULL);
    bool has_show = false, has_open = false;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        has_show |= n && strcmp(n, "live/show") == 0;
        has_open |= n && strcmp(n, "live/open") == 0;
    }
    ck_assert_msg(json_is_array(a), "/streams.json is not an array: %s",
                  red((const char *)r.body));
    ck_assert_msg(!has_show, "/streams.json lists the protected live/show: %s",
                  red((const char *)r.body));
    ck_assert_msg(has_open, "/streams.json does not list live/open: %s",
                  red((const char *)r.body));
    json_decref(a);
    tl_resp_free(&r);

    /* /api/streams: 401 without bearer; signed_playback per stream */
    char *out = NULL;
    long st = tl_http(F.p.http_port, "GET", "/api/streams", NULL, NULL, NULL, 0,
                      &out);
    ck_assert_msg(st == 401, "GET /api/streams without a bearer: %ld", st);
    free(out);
    st = tl_http(F.p.http_port, "GET", "/api/streams", F.bearer, NULL, NULL, 0,
                 &out);
    ck_assert_msg(st == 200, "GET /api/streams: %ld", st);
    json_t *o2 = json_loads(out, 0, NULL);
    int show_signed = -1, open_signed = -1;
    json_array_foreach(json_object_get(o2, "streams"), i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        json_t *sp = json_object_get(e, "signed_playback");
        int v = json_is_boolean(sp) ? json_is_true(sp) : -2;
        if (n && strcmp(n, "live/show") == 0)
            show_signed = v;
        if (n && strcmp(n, "live/open") == 0)
            open_signed = v;
    }
    ck_assert_msg(show_signed == 1,
                  "/api/streams: live/show has no "
                  "\"signed_playback\": true (%d): %.600s",
                  show_signed, red(out));
    ck_assert_msg(open_signed == 0,
                  "/api/streams: live/open has no "
                  "\"signed_playback\": false (%d)",
                  open_signed);
    json_decref(o2);
    free(out);

    /* GET /api/playback lists the mark */
    st = tl_http(F.p.http_port, "GET", "/api/playback", F.bearer, NULL, NULL, 0,
                 &out);
    ck_assert_msg(st == 200 && strstr(out, "\"live/show\"") &&
                      strstr(out, "\"token_param\":\"" PARAM "\""),
                  "GET /api/playback: %ld %s", st, red(out));
    free(out);
    assert_log_clean(NULL, NULL);
}
END_TEST

/* ---- 2. without a token: 403 --------------------------------------------- */

START_TEST(test_unsigned_refused)
{
    need_fixture();
    /* real URLs from a playlist fetched with the token */
    char path[2048];
    snprintf(path, sizeof(path), "/live/show/source/index.m3u8?" PARAM "=%s",
             F.token);
    tl_resp_t r;
    get_200(path, "signed source playlist", &r);
    tl_m3u8_t m;
    char err[256];
    ck_assert_msg(
        tl_m3u8_parse((const char *)r.body, r.len, &m, err, sizeof(err)) == 0,
        "signed source playlist does not parse: %s", red(err));
    tl_resp_free(&r);
    ck_assert_msg(m.map_uri[0] && m.nsegs > 0 && m.nparts > 0,
                  "signed source playlist: no map, segment or part");
    char init[512], seg[512], part[512];
    const char *base = "/live/show/source/index.m3u8";
    ck_assert(tl_resolve(base, no_query(m.map_uri), init, sizeof(init)) == 0);
    ck_assert(tl_resolve(base, no_query(m.segs[m.nsegs - 1].uri), seg,
                         sizeof(seg)) == 0);
    ck_assert(tl_resolve(base, no_query(m.parts[m.nparts - 1].uri), part,
                         sizeof(part)) == 0);
    tl_m3u8_free(&m);

    const char *paths[] = {"/live/show/index.m3u8",
                           "/live/show/source/index.m3u8",
                           "/live/show/audio/index.m3u8",
                           init,
                           seg,
                           part};
    const char *names[] = {"multivariant", "source playlist", "audio playlist",
                           "init",         "segment",         "part"};
    for (int i = 0; i < 6; i++) {
        char what[64];
        snprintf(what, sizeof(what), "no token: %s", names[i]);
        expect_403(paths[i], what, NULL);
    }
    /* the same objects with the token: 200 (the refusals were about it) */
    for (int i = 3; i < 6; i++) {
        snprintf(path, sizeof(path), "%s?" PARAM "=%s", paths[i], F.token);
        get_200(path, names[i], &r);
        tl_resp_free(&r);
    }
    assert_log_clean(NULL, NULL);
}
END_TEST

/* ---- 3. with the token: every URI carries it --------------------------- */

/* The (msn, part) of the preload hint of a live media playlist. */
static void preload_of(const char *text, int64_t *msn, int64_t *part,
                       const char *what)
{
    tl_m3u8_t m;
    char err[256];
    ck_assert_msg(tl_m3u8_parse(text, strlen(text), &m, err, sizeof(err)) == 0,
                  "%s does not parse: %s", what, red(err));
    ck_assert_msg(m.npreload == 1 && !m.endlist,
                  "%s has no preload hint (%d) or has ENDLIST (%d): the "
                  "stream ended before the check (publisher too short?)",
                  what, m.npreload, m.endlist);
    ck_assert_msg(tl_parse_media_uri(no_query(m.preload_uri), msn, part) == 0 &&
                      *part >= 0,
                  "%s: preload hint URI %s is not <msn>.<part>.m4s", what,
                  red(m.preload_uri));
    tl_m3u8_free(&m);
}

START_TEST(test_signed_uris)
{
    need_fixture();
    uris_t *u = calloc(1, sizeof(*u));
    ck_assert(u);

    /* blocking reload first (the stream must be live): token first, then
     * the directives, as a player appends them */
    const char *src = "/live/show/source/index.m3u8";
    char path[2048];
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", src, F.token);
    tl_resp_t r;
    get_200(path, "signed source playlist", &r);
    int64_t msn, part;
    preload_of((const char *)r.body, &msn, &part, "signed source playlist");
    tl_resp_free(&r);
    for (int round = 0; round < 2; round++) {
        /* round 0: token then directives; round 1: directives first */
        if (round == 0)
            snprintf(path, sizeof(path),
                     "%s?" PARAM "=%s&_HLS_msn=%lld&_HLS_part=%lld", src,
                     F.token, (long long)msn, (long long)part);
        else
            snprintf(path, sizeof(path),
                     "%s?_HLS_msn=%lld&_HLS_part=%lld&" PARAM "=%s", src,
                     (long long)msn, (long long)part, F.token);
        char what[96];
        snprintf(what, sizeof(what), "blocking reload %s for part %lld.%lld",
                 round ? "(directives first)" : "(token first)", (long long)msn,
                 (long long)part);
        int64_t t0 = tl_now_ms();
        get_200(path, what, &r);
        tl_m3u8_t m;
        char err[256];
        ck_assert_msg(tl_m3u8_parse((const char *)r.body, r.len, &m, err,
                                    sizeof(err)) == 0,
                      "%s: does not parse: %s", what, red(err));
        ck_assert_msg(tl_m3u8_part(&m, msn, (int)part) != NULL,
                      "%s: the answer does not list that part", what);
        tl_m3u8_free(&m);
        scan_uris((const char *)r.body, F.token, u, what);
        tl_note("%s: 200 after %lld ms, %d URIs with the token", what,
                (long long)(tl_now_ms() - t0), u->n);
        if (round == 0) /* the next part, for round 1 */
            preload_of((const char *)r.body, &msn, &part, what);
        tl_resp_free(&r);
    }

    /* delta update with the token */
    snprintf(path, sizeof(path), "%s?" PARAM "=%s&_HLS_skip=YES", src, F.token);
    get_200(path, "delta update (_HLS_skip=YES)", &r);
    scan_uris((const char *)r.body, F.token, u, "delta update");
    tl_resp_free(&r);

    /* the multivariant, then each media playlist */
    check_signed_playlist("/live/show/index.m3u8", F.token, u,
                          "signed multivariant");
    ck_assert_msg(count_kind(u, "STREAM-INF") >= 1 &&
                      count_kind(u, "EXT-X-MEDIA") >= 1,
                  "signed multivariant: %d variant URIs, %d EXT-X-MEDIA URIs",
                  count_kind(u, "STREAM-INF"), count_kind(u, "EXT-X-MEDIA"));
    const char *media[] = {"/live/show/source/index.m3u8",
                           "/live/show/audio/index.m3u8"};
    for (int i = 0; i < 2; i++) {
        check_signed_playlist(media[i], F.token, u, media[i]);
        const char *kinds[] = {"SEGMENT", "EXT-X-MAP", "EXT-X-PART",
                               "EXT-X-PRELOAD-HINT", "EXT-X-RENDITION-REPORT"};
        for (int k = 0; k < 5; k++)
            ck_assert_msg(count_kind(u, kinds[k]) >= 1,
                          "%s lists no %s URI to check", media[i], kinds[k]);
    }

    /* a token from the API works too, and each token gets its own copy of
     * a playlist, gzipped or not (no mix-up through the caches) */
    char *out = NULL;
    long st = tl_http(F.p.http_port, "POST", "/api/sign", F.bearer,
                      "application/json", "{\"stream\":\"show\",\"ttl_s\":60}",
                      0, &out);
    json_t *o = json_loads(out, 0, NULL);
    const char *t2 = json_string_value(json_object_get(o, "token"));
    add_secret(t2);
    ck_assert_msg(st == 200 && t2, "POST /api/sign {stream}: %ld %s", st,
                  red(out));
    const char *acl = json_string_value(json_object_get(o, "acl"));
    const char *p2 = json_string_value(json_object_get(o, "param"));
    const char *url2 = json_string_value(json_object_get(o, "url"));
    ck_assert_msg(acl && strcmp(acl, "/live/show/*") == 0 && p2 &&
                      strcmp(p2, PARAM) == 0 &&
                      json_is_string(json_object_get(o, "expires")),
                  "POST /api/sign: acl/param/expires wrong: %s", red(out));
    char want[2048];
    snprintf(want, sizeof(want), "/live/show/index.m3u8?" PARAM "=%s", t2);
    ck_assert_msg(url2 && strcmp(url2, want) == 0,
                  "POST /api/sign: url %s, not /live/show/index.m3u8?" PARAM
                  "=<token>",
                  red(url2));
    char tok2[PD_TOKEN_MAX + 1];
    snprintf(tok2, sizeof(tok2), "%s", t2);
    json_decref(o);
    free(out);
    for (int g = 0; g < 2; g++)
        for (int t = 0; t < 2; t++) {
            const char *tk = t ? tok2 : F.token;
            snprintf(path, sizeof(path), "%s?" PARAM "=%s", src, tk);
            st = tl_http(F.p.http_port, "GET", path, NULL, NULL, NULL,
                         g == 1 ? TL_HTTP_GZIP : 0, &out);
            char what[96];
            snprintf(what, sizeof(what), "source playlist, %s token%s",
                     t ? "API" : "CLI", g ? ", gzip" : "");
            ck_assert_msg(st == 200, "%s: status %ld", what, st);
            scan_uris(out, tk, u, what);
            free(out);
        }
    free(u);
    assert_log_clean(tok2, NULL);
}
END_TEST

/* ---- 4. tokens that must be refused ------------------------------------ */

START_TEST(test_refused_tokens)
{
    need_fixture();
    const char *mv = "/live/show/index.m3u8";
    char path[2048], tok[PD_TOKEN_MAX + 1];
    int64_t now = (int64_t)time(NULL);
    tl_resp_t r;

    /* control: a token the test makes with the key file works */
    make_token("/live/show/*", 0, now + 600, tok, sizeof(tok));
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, tok);
    get_200(path, "a token made with <data>/playback.key", &r);
    tl_resp_free(&r);
    char good[PD_TOKEN_MAX + 1];
    snprintf(good, sizeof(good), "%s", tok);

    /* tampered: one hex digit of the hmac changed */
    snprintf(tok, sizeof(tok), "%s", F.token);
    size_t n = strlen(tok);
    tok[n - 1] = tok[n - 1] == '0' ? '1' : '0';
    add_secret(tok);
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, tok);
    expect_403(path, "tampered hmac", tok);
    /* tampered acl (hmac kept) */
    snprintf(tok, sizeof(tok), "%s", F.token);
    char *acl = strstr(tok, "acl=/live/show/*");
    ck_assert(acl);
    memcpy(acl + 4, "/live/shoW/*", 12);
    add_secret(tok);
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, tok);
    expect_403(path, "tampered acl", tok);

    /* expired, not yet valid */
    make_token("/live/show/*", 0, now - 10, tok, sizeof(tok));
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, tok);
    expect_403(path, "expired token (exp = now - 10)", tok);
    make_token("/live/show/*", now + 3600, now + 7200, tok, sizeof(tok));
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, tok);
    expect_403(path, "not yet valid token (st = now + 3600)", tok);

    /* another stream's token (CLI) */
    char other[PD_TOKEN_MAX + 1];
    ck_assert_msg(cli_sign("other", other, sizeof(other), NULL, 0),
                  "`playback sign other` failed");
    add_secret(other);
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, other);
    expect_403(path, "token signed for live/other", other);

    /* the right token in another parameter; garbage; empty */
    snprintf(path, sizeof(path), "%s?tok=%s", mv, F.token);
    expect_403(path, "token in ?tok= instead of ?" PARAM "=", F.token);
    snprintf(path, sizeof(path), "%s?" PARAM "=abc", mv);
    expect_403(path, "garbage token", NULL);
    snprintf(path, sizeof(path), "%s?" PARAM "=", mv);
    expect_403(path, "empty token", NULL);

    /* unprotected stream: no token needed, a token does no harm */
    get_200("/live/open/index.m3u8", "live/open without a token", &r);
    ck_assert_msg(!strstr((const char *)r.body, PARAM "="),
                  "live/open's multivariant carries a token query");
    tl_resp_free(&r);
    get_200("/live/open/source/index.m3u8", "live/open media playlist", &r);
    tl_resp_free(&r);
    snprintf(path, sizeof(path), "/live/open/index.m3u8?" PARAM "=%s", F.token);
    get_200(path, "live/open with show's token", &r);
    tl_resp_free(&r);

    /* a short-lived token: what it fetches is cacheable only until it
     * expires (max-age capped at exp - now), media and playlists */
    char shortt[PD_TOKEN_MAX + 1];
    make_token("/live/show/*", 0, (int64_t)time(NULL) + 30, shortt,
               sizeof(shortt));
    snprintf(path, sizeof(path), "/live/show/source/index.m3u8?" PARAM "=%s",
             shortt);
    get_200(path, "media playlist with a 30-s token", &r);
    long age = tl_max_age(&r);
    ck_assert_msg(age >= 0 && age <= 30,
                  "playlist with a 30-s token: max-age %ld, want <= 30", age);
    char seg[256] = "";
    for (const char *l = (const char *)r.body; l && *l && !seg[0];) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        if (len && l[0] != '#' && len < sizeof(seg)) {
            memcpy(seg, l, len);
            seg[len] = '\0';
        }
        l = e ? e + 1 : NULL;
    }
    tl_resp_free(&r);
    ck_assert_msg(seg[0], "no segment line in the signed playlist");
    snprintf(path, sizeof(path), "/live/show/source/%s", seg);
    get_200(path, "segment with a 30-s token", &r);
    age = tl_max_age(&r);
    ck_assert_msg(age >= 0 && age <= 30,
                  "segment with a 30-s token: max-age %ld, want <= 30", age);
    tl_resp_free(&r);
    /* a long-lived token keeps the long max-age of immutable media */
    snprintf(path, sizeof(path), "/live/show/source/%s", seg);
    char *q = strstr(path, "?");
    ck_assert(q);
    snprintf(q, sizeof(path) - (size_t)(q - path), "?" PARAM "=%s", good);
    get_200(path, "segment with a 600-s token", &r);
    age = tl_max_age(&r);
    ck_assert_msg(age > 30 && age <= 600,
                  "segment with a 600-s token: max-age %ld", age);
    tl_resp_free(&r);

    /* the CLI never widens a stream name into patterns */
    char *o = NULL;
    char *err = NULL;
    const char *const bad[] = {"x!/vod", "*", "a/b", "../x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = tl_cli(F.dir, &o, &err, "playback", "sign", bad[i], NULL);
        ck_assert_msg(rc != 0 && !(o && strstr(o, "token ")),
                      "`playback sign %s` made a token", bad[i]);
        free(o);
        free(err);
        o = err = NULL;
    }
    assert_log_clean(good, other);
}
END_TEST

/* ---- 5. ffprobe through the signed URL --------------------------------- */

START_TEST(test_ffprobe_signed)
{
    need_fixture();
    char url[2048];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/live/show/index.m3u8?" PARAM "=%s",
             F.p.http_port, F.token);
    /* decode the first 2 s of media of every stream it finds */
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-count_frames",
                    "-read_intervals",
                    "%+2",
                    "-show_entries",
                    "stream=codec_name,codec_type,nb_read_frames",
                    "-of",
                    "csv=p=0",
                    url,
                    NULL};
    char *out = NULL, *err = NULL;
    int64_t t0 = tl_now_ms();
    int st = tl_run(argv, 30000, &out, &err);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "ffprobe on the signed multivariant: status %d: %s", st,
                  red(err));
    const char *v = out ? strstr(out, "h264,video,") : NULL;
    const char *au = out ? strstr(out, "aac,audio,") : NULL;
    long vf = v ? strtol(v + 11, NULL, 10) : 0;
    long af = au ? strtol(au + 10, NULL, 10) : 0;
    tl_note("ffprobe through the signed multivariant: %ld video and %ld audio "
            "frames decoded in %lld ms",
            vf, af, (long long)(tl_now_ms() - t0));
    /* 2 s: 60 video frames, 94 AAC frames; generous floors */
    ck_assert_msg(vf >= TL_FPS && af >= TL_AUDIO_RATE / TL_AAC_FRAME,
                  "ffprobe through the signed URL decoded %ld h264 video and "
                  "%ld aac audio frames, expected >= %d and >= %d: '%s' "
                  "(stderr %s)",
                  vf, af, TL_FPS, TL_AUDIO_RATE / TL_AAC_FRAME, red(out),
                  red(err));
    ck_assert_msg(!err || !strstr(err, "403"),
                  "ffprobe met a 403 behind the signed URL: %s", red(err));
    free(out);
    free(err);

    /* the same without the token: ffprobe cannot open it */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/live/show/index.m3u8",
             F.p.http_port);
    st = tl_run(argv, 30000, &out, &err);
    ck_assert_msg(st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "ffprobe opened the protected stream without a token");
    free(out);
    free(err);

    /* decode one whole segment fetched with the token */
    const char *src = "/live/show/source/index.m3u8";
    char path[2048];
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", src, F.token);
    tl_resp_t r, ri, rs;
    get_200(path, "signed source playlist", &r);
    tl_m3u8_t m;
    char perr[256];
    ck_assert_msg(
        tl_m3u8_parse((const char *)r.body, r.len, &m, perr, sizeof(perr)) == 0,
        "signed source playlist does not parse: %s", red(perr));
    tl_resp_free(&r);
    ck_assert_msg(m.nsegs >= 1, "signed source playlist: no segment");
    const tl_seg_t *s = &m.segs[m.nsegs - 1];
    char abs[1024];
    ck_assert(tl_resolve(src, s->map_uri, abs, sizeof(abs)) == 0);
    get_200(abs, "init (signed)", &ri);
    ck_assert(tl_resolve(src, s->uri, abs, sizeof(abs)) == 0);
    get_200(abs, "segment (signed)", &rs);
    tl_probe_t pr;
    int rc = tl_ffprobe(F.dir, ri.body, ri.len, rs.body, rs.len, &pr);
    long expect = lround(s->duration * TL_FPS);
    tl_note("segment %lld: %.3f s, %ld frames decoded (expected %ld)",
            (long long)s->msn, s->duration, pr.frames, expect);
    ck_assert_msg(rc == 0 && strcmp(pr.codec, "h264") == 0,
                  "ffprobe on a signed segment: rc %d codec '%s' (%s)", rc,
                  pr.codec, red(pr.err));
    ck_assert_msg(labs(pr.frames - expect) <= 1,
                  "segment of %.3f s decoded %ld frames, expected %ld",
                  s->duration, pr.frames, expect);
    tl_resp_free(&ri);
    tl_resp_free(&rs);
    tl_m3u8_free(&m);
    assert_log_clean(NULL, NULL);
}
END_TEST

/* ---- 6. the recording ---------------------------------------------------- */

typedef struct {
    long long show_id, open_id;
} recs_t;

/* The recordings of show and open, once both ended (asserts). */
static recs_t wait_recordings(void)
{
    int64_t t0 = tl_now_ms();
    ck_assert_msg(tl_pub_wait(&F.show, (PUB_S + 20) * 1000) == 0 &&
                      tl_pub_wait(&F.open, 20000) == 0,
                  "a publisher did not finish");
    tl_rec_t rs = {0}, ro = {0};
    bool ok = tl_wait_recording_ended(F.p.http_port, F.bearer, "live/show",
                                      20000, &rs) == 0 &&
              tl_wait_recording_ended(F.p.http_port, F.bearer, "live/open",
                                      20000, &ro) == 0;
    ck_assert_msg(ok,
                  "/api/recordings lists no ended recording of live/show "
                  "(%lld) and live/open (%lld) after 20 s",
                  rs.id, ro.id);
    recs_t w = {rs.id, ro.id};
    tl_note("recordings %lld (show) and %lld (open) ended, %lld ms after the "
            "check began",
            w.show_id, w.open_id, (long long)(tl_now_ms() - t0));
    return w;
}

START_TEST(test_recording)
{
    need_fixture();
    recs_t w = wait_recordings();
    long long id = w.show_id, open_id = w.open_id;

    /* /recordings.json hides show's, lists open's */
    tl_resp_t r;
    get_200("/recordings.json", "/recordings.json", &r);
    json_t *a = json_loadb((const char *)r.body, r.len, 0, NULL);
    bool has_show = false, has_open = false;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        long long rid = json_integer_value(json_object_get(e, "id"));
        has_show |= rid == id;
        has_open |= rid == open_id;
    }
    ck_assert_msg(!has_show,
                  "/recordings.json lists the protected recording "
                  "%lld: %s",
                  id, red((const char *)r.body));
    ck_assert_msg(has_open,
                  "/recordings.json does not list live/open's "
                  "recording %lld: %s",
                  open_id, red((const char *)r.body));
    json_decref(a);
    tl_resp_free(&r);

    char mv[128], path[2048];
    snprintf(mv, sizeof(mv), "/vod/%lld/index.m3u8", id);
    expect_403(mv, "VOD multivariant without a token", NULL);
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, F.token);
    expect_403(path, "VOD with the live token (acl /live/show/*)", F.token);
    /* a recording that does not exist answers like a protected one
     * without a valid token (no enumeration of protected ids by 403 vs
     * 404), and 404 with a token valid for its path */
    expect_403("/vod/999999/index.m3u8", "unknown recording, no token", NULL);
    char t999[PD_TOKEN_MAX + 1];
    make_token("/vod/999999/*", 0, (int64_t)time(NULL) + 600, t999,
               sizeof(t999));
    snprintf(path, sizeof(path), "/vod/999999/index.m3u8?" PARAM "=%s", t999);
    tl_resp_t r404;
    ck_assert_msg(get(path, &r404) == 404,
                  "unknown recording with a valid token: %ld, want 404",
                  r404.status);
    tl_resp_free(&r404);

    /* a token for the recording from the API */
    char body[128];
    snprintf(body, sizeof(body), "{\"recording\":%lld,\"ttl_s\":60}", id);
    char *out = NULL;
    long st = tl_http(F.p.http_port, "POST", "/api/sign", F.bearer,
                      "application/json", body, 0, &out);
    json_t *o = json_loads(out, 0, NULL);
    const char *t = json_string_value(json_object_get(o, "token"));
    add_secret(t);
    ck_assert_msg(st == 200 && t, "POST /api/sign {recording}: %ld %s", st,
                  red(out));
    char vt[PD_TOKEN_MAX + 1], want[160];
    snprintf(vt, sizeof(vt), "%s", t);
    snprintf(want, sizeof(want), "/vod/%lld/*", id);
    const char *acl = json_string_value(json_object_get(o, "acl"));
    ck_assert_msg(acl && strcmp(acl, want) == 0,
                  "POST /api/sign {recording}: acl %s, not %s", red(acl), want);
    json_decref(o);
    free(out);

    uris_t *u = calloc(1, sizeof(*u));
    ck_assert(u);
    check_signed_playlist(mv, vt, u, "signed VOD multivariant");
    ck_assert_msg(count_kind(u, "STREAM-INF") >= 1,
                  "signed VOD multivariant lists no variant");
    uris_t *u2 = calloc(1, sizeof(*u2));
    ck_assert(u2);
    int playlists = 0;
    for (int k = 0; k < u->n; k++) {
        char base[512];
        ck_assert(tl_resolve(mv, no_query(u->u[k].uri), base, sizeof(base)) ==
                  0);
        check_signed_playlist(base, vt, u2, base);
        ck_assert_msg(count_kind(u2, "SEGMENT") >= 1 &&
                          count_kind(u2, "EXT-X-MAP") >= 1,
                      "%s lists no segment or map", base);
        if (playlists++ == 0) {
            /* a media file without the token */
            char f[1024];
            ck_assert(tl_resolve(base, no_query(u2->u[u2->n - 1].uri), f,
                                 sizeof(f)) == 0);
            expect_403(f, "VOD segment without a token", NULL);
        }
    }
    ck_assert_msg(playlists >= 2,
                  "VOD: %d media playlists, expected video "
                  "and audio",
                  playlists);
    free(u2);
    free(u);

    /* the CLI signs an acl too */
    char ct[PD_TOKEN_MAX + 1];
    ck_assert_msg(cli_sign(want, ct, sizeof(ct), NULL, 0),
                  "`playback sign %s` failed", want);
    add_secret(ct);
    snprintf(path, sizeof(path), "%s?" PARAM "=%s", mv, ct);
    get_200(path, "VOD with a CLI token for /vod/<id>/*", &r);
    tl_resp_free(&r);
    assert_log_clean(vt, ct);
}
END_TEST

/* ---- 7. unprotect through the API; the log; a clean exit ---------------- */

START_TEST(test_unprotect_and_log)
{
    need_fixture();
    long long id = wait_recordings().show_id; /* ended already */
    char vod[128];
    snprintf(vod, sizeof(vod), "/vod/%lld/index.m3u8", id);
    expect_403(vod, "VOD before unprotecting", NULL);
    expect_403("/live/show/index.m3u8", "live before unprotecting", NULL);

    char *out = NULL;
    long st = tl_http(F.p.http_port, "POST", "/api/playback", NULL,
                      "application/json",
                      "{\"stream\":\"show\",\"signed\":false}", 0, &out);
    ck_assert_msg(st == 401, "POST /api/playback without a bearer: %ld", st);
    free(out);
    st = tl_http(F.p.http_port, "POST", "/api/playback", F.bearer,
                 "application/json", "{\"stream\":\"show\",\"signed\":false}",
                 0, &out);
    ck_assert_msg(st == 200 && strstr(out, "\"signed\":false"),
                  "POST /api/playback signed=false: %ld %s", st, red(out));
    free(out);

    tl_resp_t r;
    get_200(vod, "VOD without a token after signed=false", &r);
    ck_assert_msg(!strstr((const char *)r.body, PARAM "="),
                  "the public VOD's playlist still carries a token query");
    tl_resp_free(&r);
    get_200("/live/show/index.m3u8",
            "live/show (ended, lingering) without a token after signed=false",
            &r);
    tl_resp_free(&r);
    get_200("/recordings.json", "/recordings.json", &r);
    char needle[64];
    snprintf(needle, sizeof(needle), "\"id\":%lld", id);
    ck_assert_msg(strstr((const char *)r.body, needle),
                  "/recordings.json does not list recording %lld once public",
                  id);
    tl_resp_free(&r);

    /* and back: applies at once too */
    st = tl_http(F.p.http_port, "POST", "/api/playback", F.bearer,
                 "application/json",
                 "{\"stream\":\"live/show\",\"signed\":true}", 0, &out);
    ck_assert_msg(st == 200, "POST /api/playback signed=true: %ld %s", st,
                  red(out));
    free(out);
    expect_403(vod, "VOD after signed=true again", NULL);

    assert_log_clean(NULL, NULL);
    tl_assert_clean_exit(&F.p, 15000);
    assert_log_clean(NULL, NULL);
}
END_TEST

static Suite *signed_suite(void)
{
    Suite *s = suite_create("signed");
    TCase *tc = tcase_create("signed");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cli_and_listings);
    tcase_add_test(tc, test_unsigned_refused);
    tcase_add_test(tc, test_signed_uris);
    tcase_add_test(tc, test_refused_tokens);
    tcase_add_test(tc, test_ffprobe_signed);
    tcase_add_test(tc, test_recording);
    tcase_add_test(tc, test_unprotect_and_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(signed_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_signed: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
