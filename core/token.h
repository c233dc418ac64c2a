/*
 * core/token.h - signed playback tokens: HMAC-SHA256 over an expiry and a
 * path pattern, in the form CDNs check (Akamai's EdgeAuth token 2.0).
 *
 * A token is "~"-separated fields, "hmac=" last:
 *
 *   [st=<unix s>~]exp=<unix s>~acl=<pattern>[!<pattern>...]
 *   [~id=<v>][~data=<v>]~hmac=<64 lowercase hex>
 *
 * hmac = HMAC-SHA256(key, every byte before "~hmac="), key being raw
 * bytes (given in hex in the configuration, as CDNs take it). A pattern
 * is a path where '*' stands for any run of bytes, '/' included
 * ("/live/show/" + "*" covers the stream's playlists, parts and
 * segments; one token can then serve a whole audience, so CDN caches
 * stay shared). A
 * token is valid for a request path when the HMAC matches, st <= now <
 * exp, and a pattern matches the whole path. The token travels in one
 * query parameter (cfg->playback_token_param, "token" by default;
 * "hdnts" is Akamai's) and podium copies it into every URI of the
 * playlists it serves with it.
 *
 * Fields other than st, exp, acl, id, data and hmac (Akamai's ip and url
 * among them) are refused: an IP binding cannot be checked at an origin
 * that sees only CDN edges. Values use letters, digits and the bytes
 * = / * ! . _ : , - only, so a token never needs escaping inside a query
 * string or a quoted playlist attribute. All functions are pure (no globals, no logging): any thread.
 */
#ifndef PD_TOKEN_H
#define PD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_TOKEN_MAX 1024      /* bytes of a token, without the NUL */
#define PD_TOKEN_KEY_MAX 64    /* bytes of a key (128 hex digits) */
#define PD_TOKEN_KEY_MIN 16    /* bytes (32 hex digits) */
#define PD_TOKEN_TIME_MAX 999999999999999999LL /* st, exp: 18 digits */

/* Why a check failed (for debug logs and tests; the client only ever
 * sees 403). */
typedef enum {
    PD_TOKEN_OK = 0,
    PD_TOKEN_MISSING,   /* no token presented */
    PD_TOKEN_MALFORMED, /* syntax, unknown field, bad characters, size */
    PD_TOKEN_BAD_HMAC,  /* tampered, or signed with another key */
    PD_TOKEN_EXPIRED,   /* now >= exp */
    PD_TOKEN_EARLY,     /* now < st */
    PD_TOKEN_WRONG_PATH /* no pattern of acl matches the path */
} pd_token_why_t;

/* A static name for why ("expired", ...). */
const char *pd_token_why_name(pd_token_why_t why);

/* Decodes the hex key hex (PD_TOKEN_KEY_MIN..PD_TOKEN_KEY_MAX bytes, an
 * even number of digits, either case) into key[PD_TOKEN_KEY_MAX]; *len
 * its length. Returns 0 or PD_EINVAL. */
int pd_token_key_from_hex(const char *hex, uint8_t *key, size_t *len);

/* True if every byte of s[0..len) is allowed in a token value (the set
 * above) and len > 0. */
bool pd_token_chars_ok(const char *s, size_t len);

/* Makes a token for acl (one or more patterns joined by '!', each
 * starting with '/'), valid from start_s (0: no st field) until exp_s
 * (> start_s, <= PD_TOKEN_TIME_MAX). Writes it NUL-terminated into out (size >= the token +
 * 1). Returns 0, PD_EINVAL (bad acl or times, key length) or PD_ELIMIT
 * (out too small or over PD_TOKEN_MAX). Borrows everything. */
int pd_token_make(const uint8_t *key, size_t keylen, int64_t start_s,
                  int64_t exp_s, const char *acl, char *out, size_t outsize);

/* Checks token[0..tlen) (NULL or empty: PD_TOKEN_MISSING) for the
 * request path path[0..plen) at unix time now_s against key. Returns 0
 * (valid) or PD_EPERM with *why set (why may be NULL). Constant-time
 * HMAC comparison. Borrows everything. */
int pd_token_check(const uint8_t *key, size_t keylen, const char *token,
                   size_t tlen, const char *path, size_t plen, int64_t now_s,
                   pd_token_why_t *why);

/* The exp field of token[0..tlen) (unix seconds) into *exp. For a token
 * that passed pd_token_check(); returns 0 or PD_EINVAL. Borrows token. */
int pd_token_expiry(const char *token, size_t tlen, int64_t *exp);

/* True if the '*'-pattern pat[0..patlen) matches all of s[0..len). */
bool pd_token_glob(const char *pat, size_t patlen, const char *s, size_t len);

#endif
