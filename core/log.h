/*
 * core/log.h - one-line logs to stderr.
 *
 * Log once, where the decision is made, with context (stream, rendition,
 * peer). Never pass a stream key or token to these functions.
 * Thread-safe: each call writes one whole line.
 */
#ifndef PD_LOG_H
#define PD_LOG_H

enum { PD_LOG_ERROR = 0, PD_LOG_WARN = 1, PD_LOG_INFO = 2, PD_LOG_DEBUG = 3 };

/* Sets the most verbose level printed (default PD_LOG_INFO). */
void pd_log_set_level(int level);
int pd_log_get_level(void);

/* Parses "error", "warn", "info", "debug"; returns the level or -1. */
int pd_log_level_from_name(const char *name);

/* Writes "<time> <LEVEL> <module>: <message>\n". module is a short tag such
 * as "rtmp" or "http". */
void pd_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define PD_LOGE(mod, ...) pd_log(PD_LOG_ERROR, mod, __VA_ARGS__)
#define PD_LOGW(mod, ...) pd_log(PD_LOG_WARN, mod, __VA_ARGS__)
#define PD_LOGI(mod, ...) pd_log(PD_LOG_INFO, mod, __VA_ARGS__)
#define PD_LOGD(mod, ...)                                                    \
    do {                                                                     \
        if (pd_log_get_level() >= PD_LOG_DEBUG)                              \
            pd_log(PD_LOG_DEBUG, mod, __VA_ARGS__);                          \
    } while (0)

#endif
