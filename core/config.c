/*
 * core/config.c - defaults, libconfig file parsing and validation.
 *
 * The file format is libconfig's ("key = value;"), one flat group whose
 * keys are the field names of pd_config_t. The table below is the single
 * list of settings: parsing, `--set KEY=VALUE` and validation all use it,
 * so a setting cannot be parsed under one name and checked under another.
 */
#include "config.h"
#include "err.h"
#include "log.h"

#include <libconfig.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t offset;
    size_t size;  /* 0 for int fields, buffer size for strings */
    long long min, max;
} setting_t;

#define INT_SETTING(f, lo, hi) {#f, offsetof(pd_config_t, f), 0, lo, hi}
#define STR_SETTING(f) {#f, offsetof(pd_config_t, f),                        \
                        sizeof(((pd_config_t *)0)->f), 0, 0}

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
            memcpy(field, v, strlen(v) + 1);
        } else {
            int type = config_setting_type(s);
            if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
                snprintf(err, errlen, "line %d: %s must be an integer",
                         config_setting_source_line(s), name);
                return PD_EINVAL;
            }
            long long v = config_setting_get_int64(s);
            if (type == CONFIG_TYPE_INT)
                v = config_setting_get_int(s);
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
    if (!c->bind_addr[0]) {
        snprintf(err, errlen, "bind_addr is empty");
        return PD_EINVAL;
    }
    return PD_OK;
}

void pd_config_print(const pd_config_t *c, FILE *out)
{
    for (size_t k = 0; k < sizeof(settings) / sizeof(settings[0]); k++) {
        const setting_t *st = &settings[k];
        const char *field = (const char *)c + st->offset;
        if (st->size)
            fprintf(out, "%s = \"%s\";\n", st->name, field);
        else
            fprintf(out, "%s = %d;\n", st->name, *(const int *)field);
    }
    static const char *lv[] = {"error", "warn", "info", "debug"};
    fprintf(out, "log_level = \"%s\";\n",
            lv[c->log_level >= 0 && c->log_level <= 3 ? c->log_level : 2]);
}
