/*
 * httpd/httpd.h - the HTTP origin.
 *
 * libmicrohttpd with its epoll thread pool serves, from memory: the
 * multivariant and media playlists (with blocking reload and delta
 * updates), init segments, segments and parts, the player page and
 * hls.js. Blocking requests are suspended connections resumed by the
 * packager's wake callback; each carries its own deadline.
 */
#ifndef HTTPD_HTTPD_H
#define HTTPD_HTTPD_H

#include "../core/config.h"
#include "../packager/packager.h"

typedef struct httpd_s httpd_t;
struct st_s; /* storage/storage.h */

/* Starts the server on cfg->bind_addr:cfg->http_port (0 = any free port).
 * Borrows cfg, pkg and st (the catalogue for /api/; NULL: /api/ answers
 * 404). Returns 0 or a PD_ error (logged). */
int httpd_start(const pd_config_t *cfg, pkg_t *pkg, struct st_s *st,
                httpd_t **out);

/* The port actually bound. */
int httpd_port(const httpd_t *h);

/* Stops the daemon and frees; *h set to NULL. Call pkg_shutdown() first so
 * every suspended request has been resumed. */
void httpd_stop(httpd_t **h);

#endif
