/*
 * ingest/ingest.h - podium's RTMP server.
 *
 * Accepts RTMP publishers (OBS/librtmp, the ffmpeg CLI, GStreamer's
 * rtmpsink) on one listening socket, runs the handshake, chunk stream and
 * AMF0 command exchange, parses FLV audio/video tags and hands frames to
 * the packager's write side. One thread accepts; each publisher gets its
 * own thread, so one slow or hostile peer never stalls another. Every
 * limit (chunk size, message size, timeouts, publisher count) closes only
 * the offending connection, with one log line.
 */
#ifndef INGEST_INGEST_H
#define INGEST_INGEST_H

#include "../core/config.h"
#include "../packager/packager.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ingest_s ingest_t;

/* What main plugs in around a publish (all optional; called from the
 * publisher's thread, never with an ingest lock held).
 * - check: before the publish is accepted. name is "live/<name>" as the
 *   publisher asked (the part before '?'), writable (name_size bytes):
 *   key-as-name (an OBS user who entered the stream key as the stream
 *   name) rewrites it to the key's stream. key is the publish name's
 *   `key` query parameter, or NULL. Returns 0 to allow, PD_EPERM to refuse
 *   (the publisher gets NetStream.Publish.BadName and is closed). May
 *   block (an on_publish webhook) up to its own timeout. Must never log
 *   the key.
 * - started: after the packager accepted the publish (*session receives
 *   an id handed back to ended).
 * - ended: after pkg_unpublish. */
typedef struct ingest_hooks_s {
    void *opaque;
    int (*check)(void *opaque, char *name, size_t name_size, const char *key,
                 const char *peer);
    void (*started)(void *opaque, const char *name, const char *peer,
                    int64_t *session);
    void (*ended)(void *opaque, const char *name, int64_t session);
} ingest_hooks_t;

/* Binds cfg->bind_addr:cfg->rtmp_port (0 = any free port) and starts the
 * accept thread. Borrows cfg, pkg and hooks (NULL: anyone may publish),
 * which must outlive the server. Returns 0 or a PD_ error (logged). */
int ingest_start(const pd_config_t *cfg, pkg_t *pkg,
                 const ingest_hooks_t *hooks, ingest_t **out);

/* The port actually bound (useful when cfg asked for 0). */
int ingest_port(const ingest_t *in);

/* Stops accepting, closes every publisher connection (each calls
 * pkg_unpublish), joins all threads, frees; *in set to NULL. */
void ingest_stop(ingest_t **in);

#endif
