/*
 * core/strbuf.h - a growing text buffer for rendering (playlists).
 *
 * pd_sb_printf() appends formatted text, doubling the capacity as needed
 * (4 KiB first); an allocation failure makes the builder sticky out of
 * memory (further appends do nothing) and pd_sb_finish() reports it, so
 * callers check once at the end. One thread at a time.
 */
#ifndef PD_STRBUF_H
#define PD_STRBUF_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct pd_sb_s {
    char *p;      /* the text (not NUL-terminated), malloc'ed */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    bool oom;     /* an allocation failed: everything after is dropped */
} pd_sb_t;        /* zero-initialise: pd_sb_t b = {0}; */

void pd_sb_printf(pd_sb_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Frees b's memory and returns 0 with *out a new buffer holding its text
 * (empty if nothing was appended), or PD_ENOMEM (*out untouched). */
int pd_sb_finish(pd_sb_t *b, pd_buf_t **out);

#endif
