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

typedef struct ingest_s ingest_t;

/* Binds cfg->bind_addr:cfg->rtmp_port (0 = any free port) and starts the
 * accept thread. Borrows cfg and pkg, which must outlive the server.
 * Returns 0 or a PD_ error (logged). */
int ingest_start(const pd_config_t *cfg, pkg_t *pkg, ingest_t **out);

/* The port actually bound (useful when cfg asked for 0). */
int ingest_port(const ingest_t *in);

/* Stops accepting, closes every publisher connection (each calls
 * pkg_unpublish), joins all threads, frees; *in set to NULL. */
void ingest_stop(ingest_t **in);

#endif
