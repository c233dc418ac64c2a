/*
 * httpd/httpd_int.h - httpd's internals shared between its files and its
 * unit tests.
 *
 * directives.c holds the pure functions: URL routing, percent-decoding,
 * delivery-directive parsing (_HLS_msn, _HLS_part, _HLS_skip) and the
 * Cache-Control policy. They take explicit lengths, never allocate, never
 * log and touch no global state, so any thread may call them and the
 * tests drive them with hostile input. player.c holds the player page.
 * httpd.c is the only file that talks to libmicrohttpd or the packager.
 *
 * Syntax decisions (one URL per object, so CDN cache keys never split):
 * numbers in paths and directives are canonical decimal: "0" or a
 * non-zero digit followed by digits; no sign, no leading zeros, no
 * spaces, and no value above the type's range. A path that breaks a rule
 * is 404; a directive that does is 400.
 */
#ifndef HTTPD_HTTPD_INT_H
#define HTTPD_HTTPD_INT_H

#include "../packager/packager.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest stream name / rendition name (bytes, [A-Za-z0-9_.-]). */
#define HTTPD_NAME_MAX 64
/* Longest request path (decoded, bytes) that can name anything. */
#define HTTPD_PATH_MAX 512

typedef enum {
    HTTPD_ROUTE_NONE = 0, /* nothing here: 404 */
    HTTPD_ROUTE_PLAYER,   /* "/" */
    HTTPD_ROUTE_HLSJS,    /* "/hls.min.js" */
    HTTPD_ROUTE_STREAMS,  /* "/streams.json" */
    HTTPD_ROUTE_MEDIA,    /* "/live/..." : obj and the fields below */
} httpd_route_kind_t;

/* A routed path. For HTTPD_ROUTE_MEDIA the strings are NUL-terminated
 * copies (the path is not borrowed). */
typedef struct httpd_route_s {
    httpd_route_kind_t kind;
    pkg_obj_t obj;
    char stream[5 + HTTPD_NAME_MAX + 1]; /* "live/<name>" */
    char rendition[HTTPD_NAME_MAX + 1];  /* "" for the multivariant */
    int64_t msn;                         /* segment, part */
    int64_t part;                        /* part */
    unsigned init_id;                    /* init: 0 = init.mp4 */
} httpd_route_t;

/* Routes the decoded request path path[0..len) (no query string).
 * Returns 0 with *out filled, or PD_ENOENT (out->kind NONE) for anything
 * that is not one of the forms below:
 *   /  /hls.min.js  /streams.json
 *   /live/<name>/index.m3u8
 *   /live/<name>/<rendition>/index.m3u8 | init.mp4 | init-<n>.mp4 (n>=1)
 *                           | <msn>.m4s | <msn>.<part>.m4s
 * Names are 1..HTTPD_NAME_MAX of [A-Za-z0-9_.-], not "." or "..".
 * Borrows path (which need not be NUL-terminated). */
int httpd_route_parse(const char *path, size_t len, httpd_route_t *out);

/* Fills the object part of a packager query from a MEDIA route; the
 * directives are set to "absent". q borrows r's strings. */
void httpd_route_to_query(const httpd_route_t *r, pkg_query_t *q);

/* Parses canonical decimal s[0..len) no greater than max (max >= 0).
 * Returns 0 with *out set, or PD_EINVAL. Borrows s. */
int httpd_parse_dec(const char *s, size_t len, int64_t max, int64_t *out);

/* Decodes %XX escapes in the NUL-terminated s in place and returns the
 * new length. "%00" and malformed escapes ("%", "%4", "%zz") are left as
 * they are, so the result never holds an embedded NUL and a bad escape
 * fails the name or number checks later. Used as libmicrohttpd's
 * unescape callback for the path and the query arguments. */
size_t httpd_unescape(char *s);

/* Delivery directives of a media playlist request, accumulated one query
 * argument at a time. */
typedef struct httpd_directives_s {
    int64_t msn;  /* _HLS_msn, -1 if absent */
    int64_t part; /* _HLS_part, -1 if absent */
    bool skip;    /* _HLS_skip=YES or v2 (v2 = YES: no DATERANGEs) */
    int n_msn;    /* occurrences seen of each parameter */
    int n_part;
    int n_skip;
    int err; /* first error (PD_EINVAL), sticky */
} httpd_directives_t;

void httpd_directives_init(httpd_directives_t *d);

/* Feeds one decoded query argument. val is NULL for an argument without
 * '=' (treated like an empty value). Unknown keys are ignored; keys are
 * case-sensitive. A malformed or repeated directive sets d->err. Borrows
 * key and val. */
void httpd_directives_add(httpd_directives_t *d, const char *key, size_t klen,
                          const char *val, size_t vlen);

/* Checks the whole set (e.g. _HLS_part needs _HLS_msn) and fills the
 * directive fields of q. Returns 0 or PD_EINVAL (400). */
int httpd_directives_finish(const httpd_directives_t *d, pkg_query_t *q);

/* Parses a raw query string qs[0..len) (without the '?') the way
 * libmicrohttpd does ('&' separates, the first '=' splits, '+' is a
 * space, then %XX-decoding) and feeds every argument to d. Returns
 * d->err after all arguments (0 or PD_EINVAL). Keys too long to be ours
 * are skipped; our keys with overlong values are PD_EINVAL, as they
 * would be through libmicrohttpd. Borrows qs. For tests and tools;
 * httpd itself gets the arguments from libmicrohttpd. */
int httpd_directives_parse_query(const char *qs, size_t len,
                                 httpd_directives_t *d);

/* Cache lifetimes (seconds) for a successful playlist answer, from the
 * stream's target duration td_s (0 = not known yet):
 *   ended or multivariant or plain reload: max(1, td_s / 2)
 *   blocking reload (the URL names the state): max(1, 6 * td_s)  */
int httpd_playlist_max_age(int td_s, bool blocked, bool ended);

/* The player page (static HTML, NUL-terminated); *len its length. */
const char *httpd_player_page(size_t *len);

#endif
