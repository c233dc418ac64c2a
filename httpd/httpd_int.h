/*
 * httpd/httpd_int.h - httpd's internals shared between its files and its
 * unit tests.
 *
 * directives.c holds the pure functions: URL routing, percent-decoding,
 * delivery-directive parsing (_HLS_msn, _HLS_part, _HLS_skip) and the
 * Cache-Control policy. They take explicit lengths, never allocate, never
 * log and touch no global state, so any thread may call them and the
 * tests drive them with hostile input. player.c holds the player page.
 * gzip.c holds Accept-Encoding parsing (pure, like directives.c) and the
 * zlib compression of playlists with its bounded cache (thread-safe).
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

#include "../core/token.h"
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
    unsigned init_id;                    /* init: n of init-<n>.mp4 */
} httpd_route_t;

/* Routes the decoded request path path[0..len) (no query string).
 * Returns 0 with *out filled, or PD_ENOENT (out->kind NONE) for anything
 * that is not one of the forms below:
 *   /  /hls.min.js  /streams.json
 *   /live/<name>/index.m3u8
 *   /live/<name>/<rendition>/index.m3u8 | init-<n>.mp4 (n>=1)
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

/* ---- gzip for playlists (gzip.c) --------------------------------------
 *
 * Accept-Encoding (RFC 9110 12.5.3), fed one header value at a time (a
 * request may repeat the header; the values form one list). Codings are
 * case-insensitive tokens with an optional weight ";q=<qvalue>"; "x-gzip"
 * counts as "gzip"; "*" stands for every coding not listed. A listed
 * coding with q=0 is not acceptable; when gzip is listed more than once
 * the lowest weight wins. A malformed element (bad token, bad qvalue,
 * another parameter, spaces around '=') is ignored as a whole, so
 * garbage never turns gzip on. A byte that no valid list holds (DQUOTE,
 * backslash, a control byte other than HTAB, non-ASCII: a quoted string
 * could hide a comma) makes the whole list invalid, as do more than
 * HTTPD_AE_MAX_BYTES in all or more than HTTPD_AE_MAX_ELEMS elements:
 * the request then gets identity. No header at all also gets identity
 * (RFC 9110 would allow any coding; clients that want gzip say so). */
#define HTTPD_AE_MAX_BYTES 1024
#define HTTPD_AE_MAX_ELEMS 32

typedef struct httpd_ae_s {
    int gzip_q;   /* lowest weight given to gzip/x-gzip (0..1000), -1 if
                     not listed */
    int star_q;   /* lowest weight given to "*" (0..1000), -1 if not
                     listed */
    size_t bytes; /* value bytes seen so far */
    int elems;    /* list elements seen so far (empty ones included) */
    bool invalid; /* a limit was passed or a forbidden byte seen:
                     identity */
} httpd_ae_t;

void httpd_ae_init(httpd_ae_t *ae);

/* Feeds one Accept-Encoding value s[0..len) (not NUL-terminated, may hold
 * any bytes). Borrows s. */
void httpd_ae_add(httpd_ae_t *ae, const char *s, size_t len);

/* True if the list fed so far allows a gzip answer. */
bool httpd_ae_gzip_ok(const httpd_ae_t *ae);

/* One-shot: true if the single Accept-Encoding value s[0..len) allows
 * gzip; s NULL (no header) means no. */
bool httpd_accepts_gzip(const char *s, size_t len);

/* Compresses data[0..len) into a new buffer in the gzip format (zlib
 * deflate, level HTTPD_GZIP_LEVEL). Returns 0 with *out a new reference
 * (exactly sized), PD_EAGAIN if the result would not be smaller than the
 * input (no point sending it), PD_ENOMEM, PD_EINVAL (len too large for
 * zlib) or PD_ERR. Borrows data. Any thread. */
#define HTTPD_GZIP_LEVEL 6
int httpd_gzip(const uint8_t *data, size_t len, pd_buf_t **out);

/* A bounded, mutex-protected cache from a source buffer (by pointer) to
 * its gzip, so a playlist rendered once and served to thousands of
 * waiters is compressed once. Every entry holds a reference to its
 * source, so the address cannot be reused while it is cached, and to its
 * gzip (or NULL when gzip did not help). Bounded in entries and in bytes
 * kept alive (sources plus gzips); eviction is least recently used and
 * drops both references of the entry. */
typedef struct httpd_gzcache_s httpd_gzcache_t;

typedef struct httpd_gzcache_stats_s {
    int64_t entries;      /* cached now */
    int64_t hits;         /* lookups answered from the cache */
    int64_t compressions; /* httpd_gzip() calls made by misses */
    int64_t evictions;    /* entries dropped to make room */
    int64_t bytes;        /* sources + gzips kept alive by the entries */
} httpd_gzcache_stats_t;

/* Creates a cache of at most capacity entries (>= 1) keeping at most
 * max_bytes (>= 1) of sources plus gzips alive; a buffer whose entry
 * alone would exceed max_bytes is compressed but not kept. Returns 0 or
 * PD_ENOMEM / PD_EINVAL. */
int httpd_gzcache_create(size_t capacity, size_t max_bytes,
                         httpd_gzcache_t **out);

/* Drops every entry (and its references) and frees; *c set to NULL. No
 * other thread may be using it. c and *c may be NULL. */
void httpd_gzcache_destroy(httpd_gzcache_t **c);

/* The gzip of src: *out is a new reference to it, or NULL when src is
 * better sent as it is (gzip not smaller, or compression failed). A miss
 * compresses outside the lock and inserts; two threads missing on the
 * same src may both compress, but one entry is kept. Returns 0, or an
 * error with *out NULL (the caller sends identity). Borrows src (takes
 * its own reference when inserting). Any thread. */
int httpd_gzcache_get(httpd_gzcache_t *c, pd_buf_t *src, pd_buf_t **out);

void httpd_gzcache_stats(httpd_gzcache_t *c, httpd_gzcache_stats_t *st);

/* ---- signed playback (signed.c) -----------------------------------------
 *
 * Requests of a protected stream (storage's st_playback_check) carry a
 * token in the query parameter cfg->playback_token_param; the playlists
 * they get list every URI with that token added. */

/* A copy of the playlist src[0..len) with "<param>=<token>" added to the
 * query of every URI line and every URI="..." attribute (named exactly
 * URI: after the tag's ':' or a ',') ('?' or '&' as
 * the URI already has a query). token must pass pd_token_chars_ok (so
 * nothing needs escaping); param is a plain name. Returns 0 with *out a
 * new buffer, PD_EINVAL, PD_ELIMIT or PD_ENOMEM. Pure; borrows
 * everything. */
int httpd_playlist_add_token(const uint8_t *src, size_t len, const char *param,
                             const char *token, pd_buf_t **out);

/* A bounded cache of those copies by (source buffer, param, token): at
 * most capacity entries and max_bytes of sources plus copies kept alive
 * (least recently used go first; a copy that alone exceeds max_bytes is
 * answered but not kept). Thread-safe. */
typedef struct httpd_tokcache_s httpd_tokcache_t;
int httpd_tokcache_create(size_t capacity, size_t max_bytes,
                          httpd_tokcache_t **out);
void httpd_tokcache_destroy(httpd_tokcache_t **c);
/* The copy of src (borrowed; the entry takes its own reference) for
 * token: *out a new reference. A miss makes it outside the lock. Returns
 * 0 or httpd_playlist_add_token()'s error with *out NULL. */
int httpd_tokcache_get(httpd_tokcache_t *c, pd_buf_t *src, const char *param,
                       const char *token, pd_buf_t **out);

/* ---- ended recordings' playlists (vodcache.c) ---------------------------
 *
 * A bounded cache (capacity entries, max_bytes of playlists; least
 * recently used first; a playlist over max_bytes is not kept) from
 * (recording id, rendition: "" for the multivariant) to its rendered
 * playlist, valid for one storage generation (st_rec_generation()).
 * Only ended recordings go in (they never change). Thread-safe. */
typedef struct httpd_vodcache_s httpd_vodcache_t;
int httpd_vodcache_create(size_t capacity, size_t max_bytes,
                          httpd_vodcache_t **out);
void httpd_vodcache_destroy(httpd_vodcache_t **c);
/* A new reference to the cached playlist, or NULL (none, or made under
 * another generation: then dropped). */
pd_buf_t *httpd_vodcache_get(httpd_vodcache_t *c, int64_t id,
                             const char *rendition, uint64_t gen);
/* Keeps b (borrowed; the cache takes its own reference), rendered when the
 * generation was gen (read before rendering). */
void httpd_vodcache_put(httpd_vodcache_t *c, int64_t id, const char *rendition,
                        uint64_t gen, pd_buf_t *b);

/* ---- the admin API (api.c) --------------------------------------------
 *
 * Everything under /api/ (see api.c for the routes and rules). httpd.c
 * sends every call of libmicrohttpd's access handler for such a request
 * here, with the request's own state. */
struct MHD_Connection;
struct st_s;
typedef struct httpd_api_req_s httpd_api_req_t;

/* True for "/api", "/api/..." and "/metrics" (the same counters as
 * /api/metrics, behind the same bearer token) (the decoded path).
 * Borrows url. */
bool httpd_api_path(const char *url);

/* One access-handler call of an /api/ request: *state is NULL at the
 * first call (allocated here, freed by httpd_api_req_free() when the
 * request completes), then the body arrives in chunks (upload_data,
 * *upload_data_size: consumed here), then the final call answers.
 * Returns an enum MHD_Result. st NULL: every path answers 404. Borrows
 * everything else. Any libmicrohttpd thread. */
int httpd_api_call(const pd_config_t *cfg, pkg_t *pkg, struct st_s *st,
                   struct MHD_Connection *c, const char *url,
                   const char *method, const char *upload_data,
                   size_t *upload_data_size, httpd_api_req_t **state);

/* Frees a request's state; *state set to NULL. NULL-safe. */
void httpd_api_req_free(httpd_api_req_t **state);

/* The public /recordings.json: a JSON array of the ended recordings,
 * newest first, at most HTTPD_RECORDINGS_MAX, each
 * {"id","stream","started","ended","duration_s","url"} (url: the VOD
 * multivariant "/vod/<id>/index.m3u8"). Returns 0 with *out a new
 * buffer, or PD_ENOMEM / the storage error. Borrows st. Any thread. */
#define HTTPD_RECORDINGS_MAX 100
int httpd_recordings_json(struct st_s *st, pd_buf_t **out);

/* The public /streams.json: the packager's list in (borrowed) without the
 * streams whose playback needs a signed URL (the recordings of those are
 * left out of /recordings.json too). Returns 0 with *out a new buffer,
 * PD_EINVAL (in is not a JSON array) or PD_ENOMEM. Any thread. */
int httpd_streams_json_public(struct st_s *st, pd_buf_t *in, pd_buf_t **out);

#endif
