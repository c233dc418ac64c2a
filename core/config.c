/*
 * core/config.c - defaults, libconfig file parsing and validation.
 *
 * The file format is libconfig's ("key = value;"), one flat group whose
 * keys are the field names of pd_config_t. The table below is the single
 * list of settings: parsing, `--set KEY=VALUE` and validation all use it,
 * so a setting cannot be parsed under one name and checked under another.
 *
 * Two settings are not in the table: log_level (a name, stored as a
 * number) and ladder (a list of groups, one per rung). A file's ladder
 * replaces the whole default list, and is accepted only when every rung
 * and the list as a whole pass the same checks pd_config_validate() makes,
 * so a pd_config_t never holds a half-parsed ladder.
 */
#include "config.h"
#include "err.h"
#include "log.h"
#include "token.h"

#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t offset;
    size_t size;  /* 0 for int fields, buffer size for strings */
    long long min, max;
    const char *choices; /* strings: "a|b|c" = the only values allowed;
                            NULL = any string that fits */
} setting_t;

#define INT_SETTING(f, lo, hi) {#f, offsetof(pd_config_t, f), 0, lo, hi, NULL}
#define STR_SETTING(f) {#f, offsetof(pd_config_t, f),                        \
                        sizeof(((pd_config_t *)0)->f), 0, 0, NULL}
#define ENUM_SETTING(f, ch) {#f, offsetof(pd_config_t, f),                   \
                             sizeof(((pd_config_t *)0)->f), 0, 0, ch}

/* x264's preset names (x264.h x264_preset_names). */
#define X264_PRESETS "ultrafast|superfast|veryfast|faster|fast|medium|"     \
                     "slow|slower|veryslow|placebo"

static const setting_t settings[] = {
    STR_SETTING(bind_addr),
    INT_SETTING(rtmp_port, 0, 65535),
    INT_SETTING(http_port, 0, 65535),
    STR_SETTING(data_dir),
    STR_SETTING(www_dir),
    INT_SETTING(part_target_ms, 100, 5000),
    INT_SETTING(segment_target_ms, 500, 30000),
    INT_SETTING(window_segments, 6, 1000),
    INT_SETTING(part_window_segments, 1, 100),
    INT_SETTING(grace_period_ms, 0, 3600000),
    INT_SETTING(linger_ms, 0, 86400000),
    INT_SETTING(transcode, 0, 1),
    ENUM_SETTING(x264_preset, X264_PRESETS),
    INT_SETTING(encoder_threads, 0, 64),
    INT_SETTING(decode_threads, 0, 64),
    ENUM_SETTING(shed_order, "largest|smallest"),
    INT_SETTING(audio_bitrate_kbps, 32, 512),
    STR_SETTING(db_path),
    STR_SETTING(auth),
    STR_SETTING(on_publish_url),
    INT_SETTING(on_publish_timeout_ms, 100, 60000),
    INT_SETTING(api_max_body, 1024, 16 * 1024 * 1024),
    INT_SETTING(recording, 0, 1),
    INT_SETTING(rec_max_age_s, 0, 2000000000),
    INT_SETTING(rec_max_mb, 0, 2000000000),
    INT_SETTING(signed_playback, 0, 1),
    STR_SETTING(playback_key),
    STR_SETTING(playback_token_param),
    INT_SETTING(max_publishers, 1, 10000),
    INT_SETTING(rtmp_max_chunk_size, 128, 16777215),
    INT_SETTING(rtmp_max_message_size, 1024, 256 * 1024 * 1024),
    INT_SETTING(rtmp_handshake_timeout_ms, 100, 600000),
    INT_SETTING(rtmp_idle_timeout_ms, 100, 3600000),
    INT_SETTING(http_threads, 1, 256),
    INT_SETTING(http_max_connections, 16, 1000000),
    INT_SETTING(max_waiters, 0, 1000000),
    INT_SETTING(cache_media_s, 0, 31536000),
    INT_SETTING(cache_error_s, 0, 3600),
};

static void set_rung(pd_rung_t *r, const char *name, int height,
                     int bitrate, int maxrate, int bufsize,
                     const char *profile)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->passthrough = height == 0;
    r->height = height;
    r->bitrate_kbps = bitrate;
    r->maxrate_kbps = maxrate;
    r->bufsize_kbps = bufsize;
    snprintf(r->profile, sizeof(r->profile), "%s", profile);
}

void pd_config_defaults(pd_config_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->bind_addr, sizeof(c->bind_addr), "0.0.0.0");
    c->rtmp_port = 1935;
    c->http_port = 8080;
    snprintf(c->data_dir, sizeof(c->data_dir), "./data");
    snprintf(c->www_dir, sizeof(c->www_dir), "./www");
    c->log_level = PD_LOG_INFO;
    c->part_target_ms = 334;
    c->segment_target_ms = 2000;
    c->window_segments = 12;
    c->part_window_segments = 2;
    c->grace_period_ms = 30000;
    c->linger_ms = 60000;
    /* VBV buffers of about 1 s of maxrate: bounded encoder delay. */
    set_rung(&c->ladder[0], "source", 0, 0, 0, 0, "");
    set_rung(&c->ladder[1], "720p", 720, 2800, 3000, 3000, "high");
    set_rung(&c->ladder[2], "480p", 480, 1400, 1500, 1500, "main");
    set_rung(&c->ladder[3], "360p", 360, 800, 850, 850, "main");
    c->nrungs = 4;
    c->transcode = 1;
    snprintf(c->x264_preset, sizeof(c->x264_preset), "veryfast");
    c->encoder_threads = 0;
    c->decode_threads = 0;
    snprintf(c->shed_order, sizeof(c->shed_order), "largest");
    c->audio_bitrate_kbps = 128;
    snprintf(c->auth, sizeof(c->auth), "keys");
    c->on_publish_timeout_ms = 2000;
    c->api_max_body = 65536;
    c->recording = 1;
    snprintf(c->playback_token_param, sizeof(c->playback_token_param),
             "token");
    c->max_publishers = 64;
    c->rtmp_max_chunk_size = 65536;
    c->rtmp_max_message_size = 8 * 1024 * 1024;
    c->rtmp_handshake_timeout_ms = 5000;
    c->rtmp_idle_timeout_ms = 10000;
    c->http_threads = 2;
    c->http_max_connections = 20000;
    c->max_waiters = 20000;
    c->cache_media_s = 86400;
    c->cache_error_s = 1;
}

/* ---- helpers ---------------------------------------------------------- */

/* True when v is one of the '|'-separated words of choices. */
static bool in_choices(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    for (const char *p = choices; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == vl && strncmp(p, v, l) == 0)
            return true;
        p += l + (e ? 1 : 0);
    }
    return false;
}

/* "a|b|c" -> "a, b, c" into buf (for messages). */
static const char *choices_text(const char *choices, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < len; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* The H.264 levels (x 10) of Table A-1, without 1b. */
static const int h264_levels[] = {10, 11, 12, 13, 20, 21, 22, 30, 31, 32,
                                  40, 41, 42, 50, 51, 52, 60, 61, 62};

static bool level_valid(int l)
{
    if (l == 0)
        return true; /* auto */
    for (size_t i = 0; i < sizeof(h264_levels) / sizeof(h264_levels[0]); i++)
        if (h264_levels[i] == l)
            return true;
    return false;
}

#define RUNG_PROFILES "baseline|main|high"

/* Checks one rung on its own. Writes "ladder rung 'x': reason" into msg. */
static int check_rung(const pd_rung_t *r, char *msg, size_t len)
{
    size_t nl = strnlen(r->name, sizeof(r->name));
    bool name_ok = nl >= 1 && nl <= 31;
    for (size_t i = 0; name_ok && i < nl; i++) {
        char ch = r->name[i];
        name_ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-';
    }
    if (!name_ok) {
        snprintf(msg, len, "ladder rung name '%.31s' must be 1-31 of "
                 "[a-z0-9_-]", nl < sizeof(r->name) ? r->name : "?");
        return PD_EINVAL;
    }
    /* The name is a URL path segment beside the stream's index.m3u8, its
     * init-<n>.mp4 files and the audio rendition. */
    if (strcmp(r->name, "index") == 0 || strcmp(r->name, "audio") == 0 ||
        strncmp(r->name, "init", 4) == 0) {
        snprintf(msg, len, "ladder rung name '%s' is reserved (index, audio, "
                 "init*)", r->name);
        return PD_EINVAL;
    }
    if (r->passthrough)
        return PD_OK;
    const char *n = r->name;
    if (r->height < 16 || r->height > 4320 || r->height % 2) {
        snprintf(msg, len, "ladder rung '%s': height = %d must be even and "
                 "within [16, 4320]", n, r->height);
        return PD_EINVAL;
    }
    if (r->fps < 0 || r->fps > 240) {
        snprintf(msg, len, "ladder rung '%s': fps = %d is outside [0, 240]",
                 n, r->fps);
        return PD_EINVAL;
    }
    if (r->bitrate_kbps < 50 || r->bitrate_kbps > 100000) {
        snprintf(msg, len, "ladder rung '%s': bitrate_kbps = %d is outside "
                 "[50, 100000]", n, r->bitrate_kbps);
        return PD_EINVAL;
    }
    if (r->maxrate_kbps != 0 && (r->maxrate_kbps < r->bitrate_kbps ||
                                 r->maxrate_kbps > 1000000)) {
        snprintf(msg, len, "ladder rung '%s': maxrate_kbps = %d must be 0 or "
                 "within [bitrate_kbps, 1000000]", n, r->maxrate_kbps);
        return PD_EINVAL;
    }
    if (r->bufsize_kbps != 0 && (r->bufsize_kbps < 10 ||
                                 r->bufsize_kbps > 1000000)) {
        snprintf(msg, len, "ladder rung '%s': bufsize_kbps = %d must be 0 or "
                 "within [10, 1000000]", n, r->bufsize_kbps);
        return PD_EINVAL;
    }
    if (strnlen(r->profile, sizeof(r->profile)) >= sizeof(r->profile) ||
        !in_choices(RUNG_PROFILES, r->profile)) {
        snprintf(msg, len, "ladder rung '%s': profile must be baseline, main "
                 "or high", n);
        return PD_EINVAL;
    }
    if (!level_valid(r->level)) {
        snprintf(msg, len, "ladder rung '%s': level %d is not an H.264 level "
                 "(\"auto\", \"1\" .. \"6.2\")", n, r->level);
        return PD_EINVAL;
    }
    return PD_OK;
}

/* Checks a whole ladder. lines (may be NULL) gives each rung's line in
 * the file, for the message prefix; list_line the `ladder` key's. */
static int check_ladder(const pd_rung_t *l, int n, const int *lines,
                        int list_line, char *err, size_t errlen)
{
    char pre[32] = "";
    if (list_line > 0)
        snprintf(pre, sizeof(pre), "line %d: ", list_line);
    if (n < 1 || n > PD_LADDER_MAX) {
        snprintf(err, errlen, "%sladder has %d rungs; 1 to %d are allowed",
                 pre, n, PD_LADDER_MAX);
        return PD_EINVAL;
    }
    int npass = 0;
    for (int i = 0; i < n; i++) {
        char msg[200];
        if (lines)
            snprintf(pre, sizeof(pre), "line %d: ", lines[i]);
        if (check_rung(&l[i], msg, sizeof(msg))) {
            snprintf(err, errlen, "%s%s", pre, msg);
            return PD_EINVAL;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(l[i].name, l[j].name) == 0) {
                snprintf(err, errlen, "%sladder rung name '%s' is used twice",
                         pre, l[i].name);
                return PD_EINVAL;
            }
        if (l[i].passthrough && ++npass > 1) {
            snprintf(err, errlen, "%sladder has more than one passthrough "
                     "rung ('%s')", pre, l[i].name);
            return PD_EINVAL;
        }
    }
    return PD_OK;
}

/* An integer setting (int or int64) within [-1e9, 1e9] into *v. */
static bool get_int(const config_setting_t *s, int *v)
{
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_INT) {
        *v = config_setting_get_int(s);
        return true;
    }
    if (type == CONFIG_TYPE_INT64) {
        long long x = config_setting_get_int64(s);
        if (x < -1000000000LL || x > 1000000000LL)
            return false;
        *v = (int)x;
        return true;
    }
    return false;
}

/* level: "auto", "3.1"-style, an integer x 10 (31; 0 = auto) or a float
 * (3.1). */
static bool get_level(const config_setting_t *s, int *level)
{
    int type = config_setting_type(s);
    int v = -1;
    if (type == CONFIG_TYPE_STRING) {
        const char *t = config_setting_get_string(s);
        size_t tl = strlen(t);
        if (strcmp(t, "auto") == 0)
            v = 0;
        else if (tl == 1 && t[0] >= '1' && t[0] <= '9')
            v = (t[0] - '0') * 10;
        else if (tl == 3 && t[0] >= '1' && t[0] <= '9' && t[1] == '.' &&
                 t[2] >= '0' && t[2] <= '9')
            v = (t[0] - '0') * 10 + (t[2] - '0');
    } else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
        if (!get_int(s, &v))
            v = -1; /* 0 is "auto", as in pd_rung_t */
    } else if (type == CONFIG_TYPE_FLOAT) {
        double d = config_setting_get_float(s) * 10.0;
        if (d > 0 && d < 100 && fabs(d - round(d)) < 1e-6)
            v = (int)round(d);
    }
    if (v < 0 || !level_valid(v))
        return false;
    *level = v;
    return true;
}

/* One rung from a group of the `ladder` list. Messages carry the line of
 * the offending key. */
static int parse_rung(const config_setting_t *g, int idx, pd_rung_t *r,
                      char *err, size_t errlen)
{
    int gline = config_setting_source_line(g);
    memset(r, 0, sizeof(*r));
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        snprintf(err, errlen, "line %d: ladder entry %d must be a group "
                 "{ name = ...; ... }", gline, idx + 1);
        return PD_EINVAL;
    }
    bool has_name = false, has_height = false, has_bitrate = false;
    bool has_profile = false;
    const char *encoded_only = NULL; /* first key a passthrough rung
                                        must not have */
    int eline = gline;
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *k = config_setting_name(s);
        int line = config_setting_source_line(s);
        int *ip = NULL;
        k = k ? k : "?";
        if (strcmp(k, "name") == 0) {
            const char *v = config_setting_get_string(s);
            if (!v || strlen(v) >= sizeof(r->name)) {
                snprintf(err, errlen, "line %d: ladder rung name must be a "
                         "string of 1-31 of [a-z0-9_-]", line);
                return PD_EINVAL;
            }
            memcpy(r->name, v, strlen(v) + 1);
            has_name = true;
            continue;
        }
        if (strcmp(k, "passthrough") == 0) {
            int type = config_setting_type(s), v = -1;
            if (type == CONFIG_TYPE_BOOL)
                v = config_setting_get_bool(s);
            else if (!get_int(s, &v))
                v = -1;
            if (v != 0 && v != 1) {
                snprintf(err, errlen, "line %d: ladder rung passthrough must "
                         "be true or false", line);
                return PD_EINVAL;
            }
            r->passthrough = v;
            continue;
        }
        if (!encoded_only) {
            encoded_only = k;
            eline = line;
        }
        if (strcmp(k, "profile") == 0) {
            const char *v = config_setting_get_string(s);
            if (!v || strlen(v) >= sizeof(r->profile) ||
                !in_choices(RUNG_PROFILES, v)) {
                snprintf(err, errlen, "line %d: ladder rung profile must be "
                         "\"baseline\", \"main\" or \"high\"", line);
                return PD_EINVAL;
            }
            memcpy(r->profile, v, strlen(v) + 1);
            has_profile = true;
            continue;
        }
        if (strcmp(k, "level") == 0) {
            if (!get_level(s, &r->level)) {
                snprintf(err, errlen, "line %d: ladder rung level must be "
                         "\"auto\" or an H.264 level \"1\" .. \"6.2\" (or "
                         "31 for 3.1)", line);
                return PD_EINVAL;
            }
            continue;
        }
        if (strcmp(k, "height") == 0) {
            ip = &r->height;
            has_height = true;
        } else if (strcmp(k, "fps") == 0) {
            ip = &r->fps;
        } else if (strcmp(k, "bitrate_kbps") == 0) {
            ip = &r->bitrate_kbps;
            has_bitrate = true;
        } else if (strcmp(k, "maxrate_kbps") == 0) {
            ip = &r->maxrate_kbps;
        } else if (strcmp(k, "bufsize_kbps") == 0) {
            ip = &r->bufsize_kbps;
        } else {
            snprintf(err, errlen, "line %d: unknown ladder rung setting '%s' "
                     "(name, passthrough, height, fps, bitrate_kbps, "
                     "maxrate_kbps, bufsize_kbps, profile, level)", line, k);
            return PD_EINVAL;
        }
        if (!get_int(s, ip)) {
            snprintf(err, errlen, "line %d: ladder rung %s must be an "
                     "integer", line, k);
            return PD_EINVAL;
        }
    }
    if (!has_name) {
        snprintf(err, errlen, "line %d: ladder rung %d has no name", gline,
                 idx + 1);
        return PD_EINVAL;
    }
    if (r->passthrough) {
        if (encoded_only) {
            snprintf(err, errlen, "line %d: ladder rung '%s' is passthrough: "
                     "%s does not apply", eline, r->name, encoded_only);
            return PD_EINVAL;
        }
        return PD_OK;
    }
    if (!has_height || !has_bitrate) {
        snprintf(err, errlen, "line %d: ladder rung '%s' needs height and "
                 "bitrate_kbps (or passthrough = true)", gline, r->name);
        return PD_EINVAL;
    }
    if (!has_profile)
        snprintf(r->profile, sizeof(r->profile), "main");
    return PD_OK;
}

/* The `ladder` list: replaces c's ladder only when all of it is valid. */
static int parse_ladder(pd_config_t *c, const config_setting_t *s, char *err,
                        size_t errlen)
{
    int line = config_setting_source_line(s);
    if (config_setting_type(s) != CONFIG_TYPE_LIST) {
        snprintf(err, errlen, "line %d: ladder must be a list of groups: "
                 "( { name = \"720p\"; height = 720; ... }, ... )", line);
        return PD_EINVAL;
    }
    int n = config_setting_length(s);
    if (n < 1 || n > PD_LADDER_MAX) {
        snprintf(err, errlen, "line %d: ladder has %d rungs; 1 to %d are "
                 "allowed", line, n, PD_LADDER_MAX);
        return PD_EINVAL;
    }
    pd_rung_t l[PD_LADDER_MAX];
    int lines[PD_LADDER_MAX];
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        lines[i] = config_setting_source_line(g);
        int rc = parse_rung(g, i, &l[i], err, errlen);
        if (rc)
            return rc;
    }
    int rc = check_ladder(l, n, lines, line, err, errlen);
    if (rc)
        return rc;
    memcpy(c->ladder, l, sizeof(l[0]) * (size_t)n);
    memset(c->ladder + n, 0, sizeof(l[0]) * (size_t)(PD_LADDER_MAX - n));
    c->nrungs = n;
    return PD_OK;
}

static int apply(pd_config_t *c, const config_t *cf, char *err, size_t errlen)
{
    config_setting_t *root = config_root_setting(cf);
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(root, i);
        const char *name = config_setting_name(s);
        const setting_t *st = NULL;
        for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++)
            if (name && strcmp(name, settings[k].name) == 0)
                st = &settings[k];
        if (name && strcmp(name, "log_level") == 0) {
            const char *v = config_setting_get_string(s);
            int lvl = v ? pd_log_level_from_name(v) : -1;
            if (lvl < 0) {
                snprintf(err, errlen, "line %d: log_level must be one of "
                         "error, warn, info, debug",
                         config_setting_source_line(s));
                return PD_EINVAL;
            }
            c->log_level = lvl;
            continue;
        }
        if (name && strcmp(name, "ladder") == 0) {
            int rc = parse_ladder(c, s, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        if (!st) {
            snprintf(err, errlen, "line %d: unknown setting '%s'",
                     config_setting_source_line(s), name ? name : "?");
            return PD_EINVAL;
        }
        char *field = (char *)c + st->offset;
        if (st->size) {
            const char *v = config_setting_get_string(s);
            if (!v || strlen(v) >= st->size) {
                snprintf(err, errlen, "line %d: %s must be a string shorter "
                         "than %zu bytes", config_setting_source_line(s),
                         name, st->size);
                return PD_EINVAL;
            }
            if (st->choices && !in_choices(st->choices, v)) {
                char ch[160];
                snprintf(err, errlen, "line %d: %s must be one of %s",
                         config_setting_source_line(s), name,
                         choices_text(st->choices, ch, sizeof(ch)));
                return PD_EINVAL;
            }
            memcpy(field, v, strlen(v) + 1);
        } else {
            int type = config_setting_type(s);
            long long v;
            if (type == CONFIG_TYPE_BOOL && st->min == 0 && st->max == 1) {
                v = config_setting_get_bool(s); /* transcode = true; */
            } else if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
                snprintf(err, errlen, "line %d: %s must be an integer",
                         config_setting_source_line(s), name);
                return PD_EINVAL;
            } else {
                v = config_setting_get_int64(s);
                if (type == CONFIG_TYPE_INT)
                    v = config_setting_get_int(s);
            }
            if (v < st->min || v > st->max) {
                snprintf(err, errlen, "line %d: %s = %lld is outside "
                         "[%lld, %lld]", config_setting_source_line(s),
                         name, v, st->min, st->max);
                return PD_EINVAL;
            }
            *(int *)field = (int)v;
        }
    }
    return PD_OK;
}

int pd_config_load(pd_config_t *c, const char *path, char *err, size_t errlen)
{
    config_t cf;
    config_init(&cf);
    int rc = PD_OK;
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&cf),
                     config_error_text(&cf));
        rc = PD_EINVAL;
    } else {
        char msg[256];
        rc = apply(c, &cf, msg, sizeof(msg));
        if (rc)
            snprintf(err, errlen, "%s: %s", path, msg);
    }
    config_destroy(&cf);
    return rc;
}

int pd_config_set(pd_config_t *c, const char *assignment, char *err,
                  size_t errlen)
{
    /* "KEY=VALUE" becomes the libconfig text "KEY = VALUE;" so that values
     * follow the file's syntax; a bare word value is quoted as a string. */
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment || strlen(assignment) > 1000) {
        snprintf(err, errlen, "--set wants KEY=VALUE");
        return PD_EINVAL;
    }
    if (eq - assignment == 6 && strncmp(assignment, "ladder", 6) == 0) {
        snprintf(err, errlen, "--set: ladder is set in the config file only "
                 "(--config FILE)");
        return PD_EINVAL;
    }
    const char *val = eq + 1;
    int is_num = *val != '\0';
    for (const char *p = val; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (p == val && *p == '-')))
            is_num = 0;
    int quoted = val[0] == '"';
    if (!is_num && !quoted && strchr(val, '"')) {
        snprintf(err, errlen, "--set: value must not contain quotes");
        return PD_EINVAL;
    }
    char text[1100];
    snprintf(text, sizeof(text), "%.*s = %s%s%s;", (int)(eq - assignment),
             assignment, (is_num || quoted) ? "" : "\"", val,
             (is_num || quoted) ? "" : "\"");
    config_t cf;
    config_init(&cf);
    int rc = PD_OK;
    if (!config_read_string(&cf, text)) {
        snprintf(err, errlen, "--set %.*s: %s", (int)(eq - assignment),
                 assignment, config_error_text(&cf));
        rc = PD_EINVAL;
    } else {
        char msg[256];
        rc = apply(c, &cf, msg, sizeof(msg));
        if (rc)
            snprintf(err, errlen, "--set: %s", msg + (strncmp(msg, "line", 4)
                                                       ? 0 : 8));
    }
    config_destroy(&cf);
    return rc;
}

int pd_config_validate(const pd_config_t *c, char *err, size_t errlen)
{
    if (c->part_target_ms * 2 > c->segment_target_ms) {
        snprintf(err, errlen, "part_target_ms (%d) must be at most half of "
                 "segment_target_ms (%d)", c->part_target_ms,
                 c->segment_target_ms);
        return PD_EINVAL;
    }
    if (c->rtmp_port != 0 && c->rtmp_port == c->http_port) {
        snprintf(err, errlen, "rtmp_port and http_port are both %d",
                 c->rtmp_port);
        return PD_EINVAL;
    }
    if (strcmp(c->auth, "keys") != 0 && strcmp(c->auth, "open") != 0) {
        snprintf(err, errlen, "auth must be \"keys\" or \"open\"");
        return PD_EINVAL;
    }
    if (c->on_publish_url[0] && strncmp(c->on_publish_url, "http://", 7) != 0 &&
        strncmp(c->on_publish_url, "https://", 8) != 0) {
        snprintf(err, errlen, "on_publish_url must be an http(s) URL");
        return PD_EINVAL;
    }
    if (c->playback_key[0]) {
        uint8_t key[PD_TOKEN_KEY_MAX];
        size_t klen;
        if (pd_token_key_from_hex(c->playback_key, key, &klen)) {
            snprintf(err, errlen, "playback_key must be %d to %d hex digits "
                     "(an even number)", 2 * PD_TOKEN_KEY_MIN,
                     2 * PD_TOKEN_KEY_MAX);
            return PD_EINVAL;
        }
    }
    size_t tp = strlen(c->playback_token_param);
    bool tp_ok = tp > 0 && strncmp(c->playback_token_param, "_HLS_", 5) != 0;
    for (size_t i = 0; i < tp; i++) {
        char ch = c->playback_token_param[i];
        tp_ok = tp_ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-');
    }
    if (!tp_ok) {
        snprintf(err, errlen, "playback_token_param must be 1-31 of "
                 "[A-Za-z0-9_-], not starting with _HLS_");
        return PD_EINVAL;
    }
    if (!c->bind_addr[0]) {
        snprintf(err, errlen, "bind_addr is empty");
        return PD_EINVAL;
    }
    /* The transcoding settings, for a struct filled by code rather than
     * parsed (parsing already checked them). */
    for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++) {
        const setting_t *st = &settings[k];
        const char *field = (const char *)c + st->offset;
        if (st->choices && (strnlen(field, st->size) >= st->size ||
                            !in_choices(st->choices, field))) {
            char ch[160];
            snprintf(err, errlen, "%s must be one of %s", st->name,
                     choices_text(st->choices, ch, sizeof(ch)));
            return PD_EINVAL;
        }
    }
    if (c->transcode < 0 || c->transcode > 1 || c->encoder_threads < 0 ||
        c->encoder_threads > 64 || c->decode_threads < 0 ||
        c->decode_threads > 64 || c->audio_bitrate_kbps < 32 ||
        c->audio_bitrate_kbps > 512) {
        snprintf(err, errlen, "transcode, encoder_threads, decode_threads or "
                 "audio_bitrate_kbps out of range");
        return PD_EINVAL;
    }
    /* Any ladder of valid rungs works with either transcode value: a
     * passthrough-only ladder simply encodes nothing. */
    return check_ladder(c->ladder, c->nrungs, NULL, 0, err, errlen);
}

void pd_config_print(const pd_config_t *c, FILE *out)
{
    for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++) {
        const setting_t *st = &settings[k];
        const char *field = (const char *)c + st->offset;
        if (st->size && st->offset == offsetof(pd_config_t, playback_key))
            fprintf(out, "%s = \"%s\";\n", st->name,
                    field[0] ? "(hidden)" : ""); /* a secret */
        else if (st->size)
            fprintf(out, "%s = \"%s\";\n", st->name, field);
        else
            fprintf(out, "%s = %d;\n", st->name, *(const int *)field);
    }
    static const char *lv[] = {"error", "warn", "info", "debug"};
    fprintf(out, "log_level = \"%s\";\n",
            lv[c->log_level >= 0 && c->log_level <= 3 ? c->log_level : 2]);
    /* The ladder as the file spells it, every key explicit, so the output
     * loads back into the same struct. */
    int n = c->nrungs < 0 ? 0 : c->nrungs > PD_LADDER_MAX ? PD_LADDER_MAX
                                                          : c->nrungs;
    fprintf(out, "ladder = (\n");
    for (int i = 0; i < n; i++) {
        const pd_rung_t *r = &c->ladder[i];
        const char *sep = i + 1 < n ? "," : "";
        if (r->passthrough) {
            fprintf(out, "    { name = \"%.31s\"; passthrough = true; }%s\n",
                    r->name, sep);
            continue;
        }
        char level[16] = "auto";
        if (r->level > 0 && r->level % 10)
            snprintf(level, sizeof(level), "%d.%d", r->level / 10,
                     r->level % 10);
        else if (r->level > 0)
            snprintf(level, sizeof(level), "%d", r->level / 10);
        fprintf(out, "    { name = \"%.31s\"; height = %d; fps = %d; "
                "bitrate_kbps = %d; maxrate_kbps = %d; bufsize_kbps = %d; "
                "profile = \"%.15s\"; level = \"%s\"; }%s\n", r->name,
                r->height, r->fps, r->bitrate_kbps, r->maxrate_kbps,
                r->bufsize_kbps, r->profile, level, sep);
    }
    fprintf(out, ");\n");
}
