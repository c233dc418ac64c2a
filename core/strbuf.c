/*
 * core/strbuf.c - the growing text buffer (see strbuf.h).
 */
#include "strbuf.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void pd_sb_printf(pd_sb_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = room ? vsnprintf(b->p + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        if (n > 0 && ncap < b->len + (size_t)n + 1)
            ncap = b->len + (size_t)n + 1;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

int pd_sb_finish(pd_sb_t *b, pd_buf_t **out)
{
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return PD_ENOMEM;
    }
    pd_buf_t *r = pd_buf_from(b->p ? b->p : "", b->len);
    free(b->p);
    b->p = NULL;
    if (!r)
        return PD_ENOMEM;
    *out = r;
    return PD_OK;
}
