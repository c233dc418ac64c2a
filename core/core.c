/*
 * core/core.c - status strings, refcounted buffers, clocks and logging.
 *
 * These are the basics every module needs; nothing here depends on any
 * other part of podium.
 */
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *pd_strerror(int code)
{
    switch (code) {
    case PD_OK: return "ok";
    case PD_ERR: return "error";
    case PD_EAGAIN: return "try again";
    case PD_EINVAL: return "invalid input";
    case PD_ENOMEM: return "out of memory";
    case PD_ENOENT: return "not found";
    case PD_EEXIST: return "already exists";
    case PD_ELIMIT: return "limit reached";
    case PD_EIO: return "i/o error";
    case PD_ECLOSED: return "closed";
    case PD_ETIMEDOUT: return "timed out";
    case PD_EPROTO: return "protocol error";
    case PD_EUNSUP: return "unsupported";
    case PD_EPERM: return "not allowed";
    default: return "unknown error";
    }
}

pd_buf_t *pd_buf_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(pd_buf_t))
        return NULL;
    pd_buf_t *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    return b;
}

pd_buf_t *pd_buf_from(const void *data, size_t len)
{
    pd_buf_t *b = pd_buf_new(len);
    if (b && len)
        memcpy(b->data, data, len);
    return b;
}

pd_buf_t *pd_buf_ref(pd_buf_t *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void pd_buf_unref(pd_buf_t **b)
{
    if (!b || !*b)
        return;
    if (atomic_fetch_sub_explicit(&(*b)->refs, 1, memory_order_acq_rel) == 1)
        free(*b);
    *b = NULL;
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pd_mono_us(void) { return clock_us(CLOCK_MONOTONIC); }
int64_t pd_wall_us(void) { return clock_us(CLOCK_REALTIME); }

static atomic_int log_level = PD_LOG_INFO;

void pd_log_set_level(int level) { atomic_store(&log_level, level); }
int pd_log_get_level(void) { return atomic_load(&log_level); }

int pd_log_level_from_name(const char *name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (name && strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

void pd_log(int level, const char *module, const char *fmt, ...)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > pd_log_get_level())
        return;
    if (level < 0 || level > PD_LOG_DEBUG)
        level = PD_LOG_ERROR;

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    int64_t now = pd_wall_us();
    time_t secs = (time_t)(now / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    /* one fprintf per line: stdio locks the stream, so lines never mix */
    fprintf(stderr, "%s.%03dZ %s %s: %s\n", ts, (int)(now / 1000 % 1000),
            tags[level], module, msg);
}
