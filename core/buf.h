/*
 * core/buf.h - immutable, reference-counted byte buffers.
 *
 * Media bytes (init segments, parts, segments) and rendered playlists are
 * pd_buf_t. The creator fills data[] once, before sharing it, and holds one
 * reference; every HTTP response, recording write or push takes its own
 * reference and drops it when done. After the first pd_buf_ref() the bytes
 * never change. Reference counts are C11 atomics: any thread may ref/unref.
 */
#ifndef PD_BUF_H
#define PD_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pd_buf_s {
    atomic_int refs; /* private: use pd_buf_ref / pd_buf_unref */
    size_t len;      /* bytes in data[]; read-only once shared */
    uint8_t data[];  /* the bytes; read-only once shared */
} pd_buf_t;

/* Returns a new buffer of len bytes (uninitialised) with one reference,
 * or NULL on allocation failure. */
pd_buf_t *pd_buf_new(size_t len);

/* Returns a new buffer holding a copy of data[0..len). Borrows data. */
pd_buf_t *pd_buf_from(const void *data, size_t len);

/* Takes a new reference; returns b. b may be NULL (returns NULL). */
pd_buf_t *pd_buf_ref(pd_buf_t *b);

/* Drops the reference held in *b and sets *b to NULL; frees on the last.
 * b and *b may be NULL. */
void pd_buf_unref(pd_buf_t **b);

#endif
