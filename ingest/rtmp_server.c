/*
 * ingest/rtmp_server.c - the RTMP server: listening socket, accept thread,
 * one thread per publisher connection, the command exchange and the
 * hand-off of FLV audio/video frames to the packager.
 *
 * Invariants:
 * - One accept thread; each accepted connection gets its own joinable
 *   thread and an entry in ingest->conns (under ingest->mu). At most
 *   cfg->max_publishers connections exist; an extra one is closed at once
 *   with one (rate-limited) log line.
 * - A connection thread owns its socket, parser and packager handle. It
 *   removes itself from the list, closes its socket (under mu, so
 *   ingest_stop never shuts down a recycled descriptor), moves itself to
 *   ingest->done and signals ingest->cv as the last thing it does with the
 *   ingest object. Whoever takes it off `done` (the accept thread before
 *   each accept and every second, ingest_stop at the end) joins the
 *   thread and frees it, so finished threads never pile up (at most
 *   max_publishers + 1 exist unjoined) and no ingest thread runs once
 *   ingest_stop has returned.
 * - Every wait has a deadline: the handshake has rtmp_handshake_timeout_ms;
 *   then a connection that is not publishing must publish within another
 *   rtmp_handshake_timeout_ms (again after an unpublish), so connections
 *   that never publish cannot hold the max_publishers slots; no complete
 *   message for rtmp_idle_timeout_ms closes (the timer restarts on whole
 *   messages, not on bytes: a trickle does not keep a connection alive);
 *   sends give up after rtmp_idle_timeout_ms; polls wake at least every
 *   second to notice a stop.
 * - Memory per connection is bounded: reassembly buffers by the chunk
 *   parser (one maximal message plus a little) and, together with every
 *   other connection, by one server-wide byte budget (ingest->budget);
 *   command and data messages are decoded only up to AMF_MAX_BYTES and
 *   AMF0_MSG_VALUES values per message.
 * - Any error of one connection (garbage, truncation, a limit, a protocol
 *   violation, the packager closing) ends that connection only, logged
 *   once with the peer address and the reason. Those per-connection lines
 *   (closed, refused) are rate-limited server-wide to CONN_LOG_PER_S per
 *   second, the next line printed says how many were suppressed. After a
 *   successful publish every close calls pkg_unpublish().
 * - The publish name's query string (a stream key) is cut off before the
 *   name is used and is never logged; names are validated before they are
 *   logged; a refused application name is never logged (only its length:
 *   some publishers put the key in the application path).
 * - Publishing authorisation (ingest_hooks_t, optional): the `key` query
 *   parameter (%XX-decoded, at most INGEST_KEY_MAX bytes) and the name go
 *   to hooks->check on the publisher's own thread (it may block, e.g. an
 *   on_publish webhook) before pkg_publish. A refusal answers
 *   NetStream.Publish.BadName "Publishing not authorised." and closes with
 *   one line; that line names the stream only when the publisher sent a
 *   key: without one the name itself may be a key (key-as-name, how OBS
 *   users enter it), so only its length is logged. A check may rewrite
 *   the name (key-as-name); the rewritten name must be valid again. Every
 *   hooks->started (after pkg_publish) is matched by exactly one
 *   hooks->ended (after pkg_unpublish) with the same session id.
 */
#include "ingest.h"
#include "ingest_int.h"

#include "../core/clock.h"
#include "../core/err.h"
#include "../core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD "rtmp"

#define RBUF_SIZE (64 * 1024)     /* receive buffer, bytes */
#define WBUF_SIZE (16 * 1024)     /* one outgoing message as chunks */
#define OUR_CHUNK_SIZE 4096       /* Set Chunk Size we send */
#define OUR_WINDOW 2500000        /* Window Ack Size / peer bandwidth */
#define MAX_CMD_VALUES 8          /* AMF values decoded per command */
#define AMF_MAX_BYTES (64 * 1024) /* largest command/data message decoded */
#define NAME_MAX_LEN 64           /* publish name characters */
#define POLL_SLICE_MS 1000        /* longest single poll: notices stops */
#define HANDSHAKE_BYTES (1 + 2 * RTMP_HS_SIZE) /* C0 + C1 + C2 */
#define CONN_LOG_PER_S 20               /* closed/refused lines per second */
#define STOP_WARN_MS 5000               /* ingest_stop warns every this often */
#define BUDGET_FLOOR ((size_t)64 << 20) /* bytes, see ingest_int.h */
#define BUDGET_PER_PUBLISHER ((size_t)1 << 20) /* bytes */
#define CSID_CONTROL 2
#define CSID_COMMAND 3
#define CSID_STATUS 5

typedef struct conn_s conn_t;

struct ingest_s {
    const pd_config_t *cfg;      /* borrowed */
    pkg_t *pkg;                  /* borrowed */
    const ingest_hooks_t *hooks; /* borrowed, may be NULL: no checks */
    int lfd;                     /* listening socket */
    int port;                    /* bound port */
    int wake[2];                 /* pipe: wakes the accept thread to stop */
    pthread_t acceptor;
    atomic_bool stopping;
    pthread_mutex_t mu; /* guards conns, nconns, done, every fd close */
    pthread_cond_t cv;  /* signalled when a connection ends (monotonic) */
    conn_t *conns;      /* live connections */
    int nconns;
    conn_t *done;         /* finished connections, thread not joined yet */
    rtmp_budget_t budget; /* reassembly bytes of all the connections */

    pthread_mutex_t log_mu; /* guards the three fields below */
    int64_t log_window_us;  /* monotonic us: start of the current second */
    int log_count;          /* lines printed in it */
    int log_suppressed;     /* lines dropped since the last one printed */
};

struct conn_s {
    ingest_t *in;
    conn_t *next; /* in->conns or in->done list (under in->mu) */
    pthread_t th; /* joined by reap() */
    int fd;
    char peer[96];    /* "addr:port" for logs */
    char reason[160]; /* why we close (empty: the peer left) */

    rtmp_chunk_parser_t parser;
    uint8_t rbuf[RBUF_SIZE];
    size_t rlen; /* bytes in rbuf not yet consumed */
    uint8_t wbuf[WBUF_SIZE];
    uint32_t out_chunk_size; /* bytes: our chunk size towards the peer */
    uint64_t bytes_in;       /* bytes received, the handshake included */
    uint64_t acked;          /* bytes_in when we last acknowledged */
    uint32_t ack_window;     /* bytes: acknowledge after this many */

    bool connected;              /* connect accepted */
    pkg_stream_t *stream;        /* while published */
    int64_t publish_by_us;       /* monotonic: close unless published */
    char name[8 + NAME_MAX_LEN]; /* "live/<name>" once published */
    bool in_session;             /* hooks->started called, ended not yet */
    int64_t session;             /* its id, from hooks->started */
    flv_ts_t ts_video, ts_audio;
    int hint_w, hint_h; /* onMetaData, pixels (0 unknown) */
    double hint_fps;    /* onMetaData, frames per second */
    bool warned_vcodec, warned_acodec, warned_aggr, warned_vcfg, warned_acfg;
    bool mp3_declared; /* MP3 audio declared to the packager */
    bool warned_data;
};

/* ---- small helpers ----------------------------------------------------- */

static void set_reason(conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_reason(conn_t *c, const char *fmt, ...)
{
    if (c->reason[0])
        return; /* the first decision is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
}

/* Per-connection lines (closed, refused, ignored): at most CONN_LOG_PER_S
 * a second for the whole server, so a connect loop cannot flood the log;
 * the next line printed carries the count of those suppressed. Any
 * thread. */
static void conn_log(ingest_t *in, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_log(ingest_t *in, int level, const char *fmt, ...)
{
    if (level > pd_log_get_level())
        return;
    pthread_mutex_lock(&in->log_mu);
    int64_t now = pd_mono_us();
    if (now - in->log_window_us >= 1000000) {
        in->log_window_us = now;
        in->log_count = 0;
    }
    int suppressed = 0;
    bool ok = in->log_count < CONN_LOG_PER_S;
    if (ok) {
        in->log_count++;
        suppressed = in->log_suppressed;
        in->log_suppressed = 0;
    } else {
        in->log_suppressed++;
    }
    pthread_mutex_unlock(&in->log_mu);
    if (!ok)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed)
        pd_log(level, MOD, "%s (%d more suppressed)", line, suppressed);
    else
        pd_log(level, MOD, "%s", line);
}

static void format_peer(const struct sockaddr *sa, socklen_t len, char *out,
                        size_t outlen)
{
    char host[64], serv[16];
    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, serv);
    else
        snprintf(out, outlen, "%s:%s", host, serv);
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static int ms_until(int64_t deadline_us)
{
    int64_t left = (deadline_us - pd_mono_us() + 999) / 1000;
    if (left < 0)
        return 0;
    return left > POLL_SLICE_MS ? POLL_SLICE_MS : (int)left;
}

/* Waits for events on c->fd until deadline (monotonic us). Returns 0 when
 * ready, PD_ETIMEDOUT, PD_ECLOSED when the server stops, PD_EIO. */
static int wait_fd(conn_t *c, short events, int64_t deadline_us)
{
    for (;;) {
        if (atomic_load(&c->in->stopping))
            return PD_ECLOSED;
        if (pd_mono_us() >= deadline_us)
            return PD_ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, ms_until(deadline_us));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return PD_EIO;
        }
        if (r > 0)
            return 0; /* readable, writable, or an error recv/send sees */
    }
}

/* Sends all of buf within the idle timeout. */
static int send_all(conn_t *c, const uint8_t *buf, size_t len)
{
    int64_t deadline =
        pd_mono_us() + (int64_t)c->in->cfg->rtmp_idle_timeout_ms * 1000;
    while (len) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c, POLLOUT, deadline);
            if (rc == PD_ETIMEDOUT)
                set_reason(c, "send timed out");
            else if (rc == PD_ECLOSED)
                set_reason(c, "server stopping");
            if (rc)
                return rc;
            continue;
        }
        set_reason(c, "send failed: %s", n < 0 ? strerror(errno) : "closed");
        return PD_EIO;
    }
    return 0;
}

/* Receives exactly len bytes before deadline (the handshake). */
static int recv_exact(conn_t *c, uint8_t *buf, size_t len, int64_t deadline_us)
{
    while (len) {
        int rc = wait_fd(c, POLLIN, deadline_us);
        if (rc)
            return rc;
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n == 0)
            return PD_ECLOSED;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return PD_EIO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends one message as chunks with our chunk size. */
static int send_msg(conn_t *c, uint32_t csid, uint8_t type, uint32_t sid,
                    const uint8_t *payload, size_t len)
{
    int n = rtmp_chunk_write(c->wbuf, sizeof(c->wbuf), csid, type, sid, 0,
                             payload, len, c->out_chunk_size);
    if (n < 0) {
        set_reason(c, "internal: reply too large");
        return n;
    }
    return send_all(c, c->wbuf, (size_t)n);
}

static int send_control32(conn_t *c, uint8_t type, uint32_t v)
{
    uint8_t p[4];
    put32be(p, v);
    return send_msg(c, CSID_CONTROL, type, 0, p, 4);
}

static int send_user_control(conn_t *c, uint16_t event, uint32_t v)
{
    uint8_t p[6] = {(uint8_t)(event >> 8), (uint8_t)event};
    put32be(p + 2, v);
    return send_msg(c, CSID_CONTROL, RTMP_MSG_USER_CONTROL, 0, p, 6);
}

static int send_amf(conn_t *c, uint32_t csid, uint32_t sid, amf0_wr_t *w)
{
    if (amf0_wr_status(w)) {
        set_reason(c, "internal: reply does not fit");
        return PD_ELIMIT;
    }
    return send_msg(c, csid, RTMP_MSG_COMMAND_AMF0, sid, w->buf, w->len);
}

/* onStatus(0, null, {level, code, description}) on message stream sid. */
static int send_status(conn_t *c, uint32_t sid, const char *level,
                       const char *code, const char *desc)
{
    uint8_t b[512];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "onStatus");
    amf0_put_number(&w, 0);
    amf0_put_null(&w);
    amf0_put_object_start(&w);
    amf0_put_prop_cstr(&w, "level", level);
    amf0_put_prop_cstr(&w, "code", code);
    amf0_put_prop_cstr(&w, "description", desc);
    amf0_put_object_end(&w);
    return send_amf(c, CSID_STATUS, sid, &w);
}

/* _result(txn, null, undefined|number). */
static int send_simple_result(conn_t *c, double txn, bool has_num, double num)
{
    uint8_t b[64];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "_result");
    amf0_put_number(&w, txn);
    amf0_put_null(&w);
    if (has_num)
        amf0_put_number(&w, num);
    else
        amf0_put_undefined(&w);
    return send_amf(c, CSID_COMMAND, 0, &w);
}

/* The part of a publish name before '?': its length. The rest (a key or
 * token) is never used or logged here. */
static size_t name_base_len(const char *s, size_t len)
{
    const char *q = memchr(s, '?', len);
    return q ? (size_t)(q - s) : len;
}

/* 1-64 characters of [A-Za-z0-9_.-], not starting with a dot (so never
 * ".", "..", "..." or a hidden name). */
static bool name_valid(const char *s, size_t len)
{
    if (len < 1 || len > NAME_MAX_LEN)
        return false;
    if (s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_connect(conn_t *c, double txn, const amf0_value_t *obj)
{
    if (c->connected) {
        set_reason(c, "protocol: second connect");
        return PD_EPROTO;
    }
    size_t alen = 0;
    const char *app = amf0_str(amf0_get(obj, "app"), &alen);
    if (app) {
        alen = name_base_len(app, alen);
        while (alen > 0 && app[alen - 1] == '/')
            alen--;
    }
    if (!app || alen != 4 || memcmp(app, "live", 4) != 0) {
        uint8_t b[512];
        amf0_wr_t w;
        amf0_wr_init(&w, b, sizeof(b));
        amf0_put_cstr(&w, "_error");
        amf0_put_number(&w, txn);
        amf0_put_null(&w);
        amf0_put_object_start(&w);
        amf0_put_prop_cstr(&w, "level", "error");
        amf0_put_prop_cstr(&w, "code", "NetConnection.Connect.Rejected");
        amf0_put_prop_cstr(&w, "description", "Unknown application.");
        amf0_put_object_end(&w);
        send_amf(c, CSID_COMMAND, 0, &w);
        /* never the name itself: a stream key may be in the app path */
        if (app)
            set_reason(c,
                       "connect rejected: application name (%zu bytes) "
                       "is not 'live'",
                       alen);
        else
            set_reason(c, "connect rejected: no application name");
        return PD_EPROTO;
    }
    double enc = 0;
    amf0_num(amf0_get(obj, "objectEncoding"), &enc);

    int rc;
    if ((rc = send_control32(c, RTMP_MSG_WINDOW_ACK_SIZE, OUR_WINDOW)))
        return rc;
    uint8_t bw[5];
    put32be(bw, OUR_WINDOW);
    bw[4] = 2; /* dynamic */
    if ((rc = send_msg(c, CSID_CONTROL, RTMP_MSG_SET_PEER_BW, 0, bw, 5)))
        return rc;
    if ((rc = send_control32(c, RTMP_MSG_SET_CHUNK_SIZE, OUR_CHUNK_SIZE)))
        return rc;
    c->out_chunk_size = OUR_CHUNK_SIZE;

    uint8_t b[512];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "_result");
    amf0_put_number(&w, txn);
    amf0_put_object_start(&w);
    amf0_put_prop_cstr(&w, "fmsVer", "FMS/3,0,1,123");
    amf0_put_prop_number(&w, "capabilities", 31);
    amf0_put_object_end(&w);
    amf0_put_object_start(&w);
    amf0_put_prop_cstr(&w, "level", "status");
    amf0_put_prop_cstr(&w, "code", "NetConnection.Connect.Success");
    amf0_put_prop_cstr(&w, "description", "Connection succeeded.");
    amf0_put_prop_number(&w, "objectEncoding", enc);
    amf0_put_object_end(&w);
    if ((rc = send_amf(c, CSID_COMMAND, 0, &w)))
        return rc;
    c->connected = true;
    PD_LOGD(MOD, "%s connected to app live", c->peer);
    return 0;
}

static void apply_hints(conn_t *c)
{
    if (c->stream && (c->hint_w || c->hint_h || c->hint_fps > 0))
        pkg_stream_set_hints(c->stream, c->hint_w, c->hint_h, c->hint_fps);
}

static void unpublish(conn_t *c)
{
    if (c->stream)
        pkg_unpublish(&c->stream);
    c->stream = NULL;
    const ingest_hooks_t *h = c->in->hooks;
    if (c->in_session) {
        c->in_session = false;
        if (h && h->ended)
            h->ended(h->opaque, c->name, c->session);
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int ingest_query_key(const char *qs, size_t len, char *key, size_t key_size)
{
    if (key_size < INGEST_KEY_MAX + 1)
        return PD_EINVAL;
    key[0] = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *amp = memchr(qs + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - qs) : len;
        const char *arg = qs + pos;
        size_t alen = end - pos;
        pos = end + 1;
        const char *eq = memchr(arg, '=', alen);
        size_t klen = eq ? (size_t)(eq - arg) : alen;
        if (klen != 3 || memcmp(arg, "key", 3) != 0)
            continue;
        const char *v = eq ? eq + 1 : arg + alen;
        size_t vlen = eq ? alen - klen - 1 : 0;
        size_t n = 0;
        for (size_t i = 0; i < vlen; i++) {
            char ch = v[i];
            if (ch == '%' && i + 2 < vlen) {
                int hi = hexval(v[i + 1]), lo = hexval(v[i + 2]);
                /* "%00" stays as it is: no embedded NUL */
                if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                    ch = (char)(hi * 16 + lo);
                    i += 2;
                }
            }
            if (ch == 0) { /* a raw NUL would cut the key short */
                key[0] = 0;
                return PD_EINVAL;
            }
            if (n >= INGEST_KEY_MAX) {
                key[0] = 0;
                return PD_ELIMIT;
            }
            key[n++] = ch;
        }
        key[n] = 0;
        return 1;
    }
    return 0;
}

/* Runs hooks->check for the valid publish name raw[0..len) (blen bytes
 * before '?'; name holds "live/<base>", name_size bytes). On success name
 * may have been rewritten (key-as-name) to another valid name. On a
 * refusal answers the publisher, sets the close reason (the name only if
 * a key was presented: otherwise the name may be the key) and returns
 * the error. The key lives on this stack frame only and is wiped. */
static int check_publish(conn_t *c, uint32_t sid, const char *raw, size_t len,
                         size_t blen, char *name, size_t name_size)
{
    const ingest_hooks_t *h = c->in->hooks;
    if (!h || !h->check)
        return 0;
    char key[INGEST_KEY_MAX + 1] = "";
    int found = 0;
    if (blen < len)
        found =
            ingest_query_key(raw + blen + 1, len - blen - 1, key, sizeof(key));
    bool has_key = found == 1 && key[0];
    int rc = PD_EPERM;
    char checked[256]; /* what the check may rewrite (a key's stream) */
    snprintf(checked, sizeof(checked), "%s", name);
    if (found >= 0)
        rc = h->check(h->opaque, checked, sizeof(checked), has_key ? key : NULL,
                      c->peer);
    /* no copy of the key survives this function */
    explicit_bzero(key, sizeof(key));
    if (rc == 0) {
        checked[sizeof(checked) - 1] = 0;
        size_t clen = strlen(checked);
        if (clen < 5 || memcmp(checked, "live/", 5) != 0 ||
            !name_valid(checked + 5, clen - 5) || clen >= name_size) {
            rc = PD_ERR; /* a broken rewrite: never publish under it */
        } else {
            memcpy(name, checked, clen + 1);
            explicit_bzero(checked, sizeof(checked)); /* it held the name,
                                                         maybe a key */
            return 0;
        }
    }
    explicit_bzero(checked, sizeof(checked));
    if (rc == PD_EPERM)
        send_status(c, sid, "error", "NetStream.Publish.BadName",
                    "Publishing not authorised.");
    else
        send_status(c, sid, "error", "NetStream.Publish.Failed",
                    "Publish refused.");
    /* a key over INGEST_KEY_MAX never reaches the check: PD_EPERM */
    const char *why = rc == PD_EPERM ? "not authorised" : pd_strerror(rc);
    if (has_key)
        set_reason(c, "publish refused for %s: %s", name, why);
    else if (rc == PD_EPERM)
        set_reason(c, "publish refused (no valid key): name of %zu bytes",
                   blen);
    else
        set_reason(c, "publish refused (check failed: %s): name of %zu bytes",
                   why, blen);
    return rc;
}

static int cmd_publish(conn_t *c, uint32_t sid, const amf0_value_t *namev)
{
    if (!c->connected) {
        set_reason(c, "protocol: publish before connect");
        return PD_EPROTO;
    }
    if (c->stream) {
        set_reason(c, "protocol: second publish on one connection");
        return PD_EPROTO;
    }
    size_t len = 0;
    const char *raw = amf0_str(namev, &len);
    size_t blen = raw ? name_base_len(raw, len) : 0;
    if (!raw || !name_valid(raw, blen)) {
        send_status(c, sid, "error", "NetStream.Publish.BadName",
                    "Invalid stream name.");
        /* the name failed validation: show its length only */
        set_reason(c, "invalid publish name (%zu bytes before '?')", blen);
        return PD_EPROTO;
    }
    char name[sizeof(c->name)];
    snprintf(name, sizeof(name), "live/%.*s", (int)blen, raw);
    int rc = check_publish(c, sid, raw, len, blen, name, sizeof(name));
    if (rc)
        return rc;
    pkg_stream_t *s = NULL;
    rc = pkg_publish(c->in->pkg, name, c->peer, &s);
    if (rc == PD_EEXIST) {
        send_status(c, sid, "error", "NetStream.Publish.BadName",
                    "Stream already publishing.");
        set_reason(c, "publish refused: %s already has a publisher", name);
        return PD_EEXIST;
    }
    if (rc) {
        send_status(c, sid, "error", "NetStream.Publish.Failed",
                    "Publish refused.");
        set_reason(c, "publish refused for %s: %s", name, pd_strerror(rc));
        return rc;
    }
    c->stream = s;
    memcpy(c->name, name, sizeof(c->name));
    const ingest_hooks_t *h = c->in->hooks;
    if (h && h->started) {
        c->session = 0;
        h->started(h->opaque, c->name, c->peer, &c->session);
    }
    c->in_session = h && h->started;
    c->ts_video = (flv_ts_t){0};
    c->ts_audio = (flv_ts_t){0};
    PD_LOGI(MOD, "%s publishing %s", c->peer, c->name);
    if ((rc = send_user_control(c, 0 /* StreamBegin */, sid)))
        return rc;
    if ((rc = send_status(c, sid, "status", "NetStream.Publish.Start",
                          "Publishing.")))
        return rc;
    apply_hints(c);
    return 0;
}

/* onMetaData: width, height, framerate hints. */
static void take_metadata(conn_t *c, const amf0_value_t *meta)
{
    double v;
    int ow = c->hint_w, oh = c->hint_h;
    double ofps = c->hint_fps;
    if (amf0_num(amf0_get(meta, "width"), &v) && v > 0 && v <= 16384)
        c->hint_w = (int)v;
    if (amf0_num(amf0_get(meta, "height"), &v) && v > 0 && v <= 16384)
        c->hint_h = (int)v;
    if ((amf0_num(amf0_get(meta, "framerate"), &v) ||
         amf0_num(amf0_get(meta, "videoframerate"), &v)) &&
        v > 0 && v <= 1000)
        c->hint_fps = v;
    if (ow == c->hint_w && oh == c->hint_h && ofps == c->hint_fps)
        return; /* some muxers repeat onMetaData: nothing new */
    PD_LOGD(MOD, "%s metadata %dx%d %.3f fps", c->peer, c->hint_w, c->hint_h,
            c->hint_fps);
    apply_hints(c);
}

static bool str_is(const amf0_value_t *v, const char *s)
{
    size_t len;
    const char *p = amf0_str(v, &len);
    return p && len == strlen(s) && memcmp(p, s, len) == 0;
}

/* Why the AMF0 decoder refused a message, for the log. */
static const char *amf_error_text(int rc)
{
    switch (rc) {
    case PD_EAGAIN:
        return "truncated";
    case PD_ELIMIT:
        return "too many values or too deeply nested";
    case PD_EPROTO:
        return "malformed";
    default:
        return pd_strerror(rc);
    }
}

/* A data message we do not use (too large, too many values): dropped, one
 * line per connection. */
static void ignore_data(conn_t *c, const rtmp_msg_t *m, const char *why)
{
    if (c->warned_data)
        return;
    c->warned_data = true;
    conn_log(c->in, PD_LOG_WARN,
             "%s: data message of %u bytes ignored: %s (further ones "
             "silently)",
             c->peer, m->len, why);
}

/* Command (20/17) and data (18/15) messages. Decoding is bounded by
 * AMF_MAX_BYTES and one budget of AMF0_MSG_VALUES values per message. */
static int on_amf_message(conn_t *c, const rtmp_msg_t *m)
{
    bool data = m->type == RTMP_MSG_DATA_AMF0 || m->type == RTMP_MSG_DATA_AMF3;
    if (m->len > AMF_MAX_BYTES) {
        if (data) {
            ignore_data(c, m, "over the size limit");
            return 0;
        }
        set_reason(c, "protocol: command message of %u bytes (limit %d)",
                   m->len, AMF_MAX_BYTES);
        return PD_ELIMIT;
    }
    size_t pos = 0;
    if (m->type == RTMP_MSG_COMMAND_AMF3 || m->type == RTMP_MSG_DATA_AMF3)
        pos = 1; /* a leading 0 switches to AMF0 for the whole message */
    amf0_value_t *v[MAX_CMD_VALUES] = {0};
    size_t budget = AMF0_MSG_VALUES; /* shared by all values of the message */
    int n = 0, rc = 0;
    while (n < MAX_CMD_VALUES && pos < m->len) {
        rc = amf0_decode(m->payload, m->len, &pos, &budget, &v[n]);
        if (rc)
            break;
        n++;
    }
    if (rc == PD_ELIMIT && data) {
        ignore_data(c, m, amf_error_text(rc));
        rc = 0;
        goto out;
    }
    if (rc || n == 0 || !amf0_str(v[0], NULL)) {
        set_reason(c, "protocol: bad AMF0 in message type %u (%s)", m->type,
                   rc ? amf_error_text(rc) : "no command name");
        rc = rc == PD_ELIMIT ? PD_ELIMIT : PD_EPROTO;
        goto out;
    }
    if (data) {
        if (str_is(v[0], "@setDataFrame") && n >= 3 &&
            str_is(v[1], "onMetaData"))
            take_metadata(c, v[2]);
        else if (str_is(v[0], "onMetaData") && n >= 2)
            take_metadata(c, v[1]);
        goto out;
    }
    double txn = 0;
    if (n >= 2)
        amf0_num(v[1], &txn);
    const amf0_value_t *arg3 = n >= 4 ? v[3] : NULL;
    if (str_is(v[0], "connect")) {
        rc = cmd_connect(c, txn, n >= 3 ? v[2] : NULL);
    } else if (str_is(v[0], "releaseStream")) {
        rc = send_simple_result(c, txn, false, 0);
    } else if (str_is(v[0], "FCPublish")) {
        size_t len = 0;
        const char *raw = amf0_str(arg3, &len);
        size_t blen = raw ? name_base_len(raw, len) : 0;
        char desc[NAME_MAX_LEN + 1] = "";
        if (raw && name_valid(raw, blen))
            snprintf(desc, sizeof(desc), "%.*s", (int)blen, raw);
        uint8_t b[512];
        amf0_wr_t w;
        amf0_wr_init(&w, b, sizeof(b));
        amf0_put_cstr(&w, "onFCPublish");
        amf0_put_number(&w, 0);
        amf0_put_null(&w);
        amf0_put_object_start(&w);
        amf0_put_prop_cstr(&w, "code", "NetStream.Publish.Start");
        amf0_put_prop_cstr(&w, "description", desc);
        amf0_put_object_end(&w);
        rc = send_amf(c, CSID_COMMAND, 0, &w);
    } else if (str_is(v[0], "createStream")) {
        rc = send_simple_result(c, txn, true, 1);
    } else if (str_is(v[0], "publish")) {
        rc = cmd_publish(c, m->stream_id, arg3);
    } else if (str_is(v[0], "deleteStream") || str_is(v[0], "closeStream")) {
        if (c->stream) {
            PD_LOGI(MOD, "%s unpublished %s", c->peer, c->name);
            unpublish(c);
            /* publish again soon, or leave the slot to someone else */
            c->publish_by_us =
                pd_mono_us() +
                (int64_t)c->in->cfg->rtmp_handshake_timeout_ms * 1000;
        }
    } else if (str_is(v[0], "FCUnpublish")) {
        /* deleteStream (or the close) ends the publication */
    } else if (str_is(v[0], "play")) {
        set_reason(c, "play is not supported (publish-only server)");
        rc = PD_EUNSUP;
    } else if (txn > 0) {
        /* unknown but answerable: a polite empty result */
        rc = send_simple_result(c, txn, false, 0);
    }
out:
    for (int i = 0; i < n; i++)
        amf0_free(&v[i]);
    return rc;
}

/* ---- media ------------------------------------------------------------- */

static int write_frame(conn_t *c, pkg_media_t media, int64_t dts, int32_t cts,
                       bool key, const uint8_t *data, size_t len,
                       int64_t arrival)
{
    pkg_frame_t f = {.media = media,
                     .dts_ms = dts,
                     .cts_ms = cts,
                     .key = key,
                     .data = data,
                     .len = len,
                     .arrival_us = arrival};
    int rc = pkg_stream_write(c->stream, &f);
    if (rc == PD_ECLOSED) {
        set_reason(c, "packager closed %s", c->name);
        return rc;
    }
    return 0; /* PD_EINVAL: the packager logged it, the stream goes on */
}

static int on_video(conn_t *c, const rtmp_msg_t *m, int64_t arrival)
{
    if (!c->stream || m->len == 0)
        return 0; /* not publishing (yet / any more), or an empty tag */
    flv_video_t v;
    if (flv_parse_video(m->payload, m->len, &v)) {
        set_reason(c, "protocol: truncated video tag (%u bytes)", m->len);
        return PD_EPROTO;
    }
    if (v.ex_header || v.codec_id != FLV_CODEC_H264) {
        if (!c->warned_vcodec) {
            c->warned_vcodec = true;
            if (v.ex_header)
                PD_LOGW(MOD,
                        "%s %s: enhanced RTMP video (fourcc %08x) "
                        "not supported, ignored",
                        c->peer, c->name, v.fourcc);
            else
                PD_LOGW(MOD,
                        "%s %s: video codec id %d not supported, "
                        "ignored",
                        c->peer, c->name, v.codec_id);
        }
        return 0;
    }
    if (v.frame_type == FLV_FRAME_COMMAND)
        return 0;
    if (v.packet_type == FLV_AVC_SEQ_HEADER) {
        int rc = pkg_stream_set_config(c->stream, PKG_MEDIA_VIDEO,
                                       PKG_CODEC_H264, v.data, v.len);
        if (rc && !c->warned_vcfg) {
            c->warned_vcfg = true;
            PD_LOGW(MOD, "%s %s: H.264 sequence header refused: %s", c->peer,
                    c->name, pd_strerror(rc));
        }
        return 0;
    }
    if (v.packet_type != FLV_AVC_NALU || v.len == 0)
        return 0; /* end of sequence, or nothing in it */
    int64_t dts = flv_ts_unwrap(&c->ts_video, &c->ts_audio, m->timestamp);
    return write_frame(c, PKG_MEDIA_VIDEO, dts, v.cts_ms,
                       v.frame_type == FLV_FRAME_KEY, v.data, v.len, arrival);
}

static int on_audio(conn_t *c, const rtmp_msg_t *m, int64_t arrival)
{
    if (!c->stream || m->len == 0)
        return 0;
    flv_audio_t a;
    if (flv_parse_audio(m->payload, m->len, &a)) {
        set_reason(c, "protocol: truncated audio tag (%u bytes)", m->len);
        return PD_EPROTO;
    }
    if (a.sound_format == FLV_SOUND_MP3 || a.sound_format == FLV_SOUND_MP3_8K) {
        /* no sequence header: the packager re-encodes it to AAC */
        if (!c->mp3_declared) {
            c->mp3_declared = true;
            int rc = pkg_stream_set_config(c->stream, PKG_MEDIA_AUDIO,
                                           PKG_CODEC_MP3, NULL, 0);
            if (rc && !c->warned_acfg) {
                c->warned_acfg = true;
                PD_LOGW(MOD, "%s %s: MP3 audio refused: %s", c->peer, c->name,
                        pd_strerror(rc));
            }
        }
        if (a.len == 0)
            return 0;
        int64_t dts = flv_ts_unwrap(&c->ts_audio, &c->ts_video, m->timestamp);
        return write_frame(c, PKG_MEDIA_AUDIO, dts, 0, true, a.data, a.len,
                           arrival);
    }
    if (a.sound_format != FLV_SOUND_AAC) {
        if (!c->warned_acodec) {
            c->warned_acodec = true;
            PD_LOGW(MOD, "%s %s: audio format %d not supported, ignored",
                    c->peer, c->name, a.sound_format);
        }
        return 0;
    }
    if (a.packet_type == FLV_AAC_SEQ_HEADER) {
        int rc = pkg_stream_set_config(c->stream, PKG_MEDIA_AUDIO,
                                       PKG_CODEC_AAC, a.data, a.len);
        if (rc && !c->warned_acfg) {
            c->warned_acfg = true;
            PD_LOGW(MOD, "%s %s: AAC sequence header refused: %s", c->peer,
                    c->name, pd_strerror(rc));
        }
        return 0;
    }
    if (a.packet_type != FLV_AAC_RAW || a.len == 0)
        return 0;
    int64_t dts = flv_ts_unwrap(&c->ts_audio, &c->ts_video, m->timestamp);
    return write_frame(c, PKG_MEDIA_AUDIO, dts, 0, true, a.data, a.len,
                       arrival);
}

static int on_message(conn_t *c, const rtmp_msg_t *m)
{
    int64_t arrival = pd_wall_us();
    switch (m->type) {
    case RTMP_MSG_SET_CHUNK_SIZE: /* applied by the parser */
    case RTMP_MSG_ABORT:
    case RTMP_MSG_ACK:
    case RTMP_MSG_SET_PEER_BW:
        return 0;
    case RTMP_MSG_WINDOW_ACK_SIZE:
        if (m->len < 4) {
            set_reason(c, "protocol: short Window Acknowledgement Size");
            return PD_EPROTO;
        }
        c->ack_window = get32be(m->payload);
        return 0;
    case RTMP_MSG_USER_CONTROL:
        /* PingRequest (6) -> PingResponse (7) with the same time */
        if (m->len >= 6 && m->payload[0] == 0 && m->payload[1] == 6)
            return send_user_control(c, 7, get32be(m->payload + 2));
        return 0;
    case RTMP_MSG_AUDIO:
        return on_audio(c, m, arrival);
    case RTMP_MSG_VIDEO:
        return on_video(c, m, arrival);
    case RTMP_MSG_COMMAND_AMF0:
    case RTMP_MSG_COMMAND_AMF3:
    case RTMP_MSG_DATA_AMF0:
    case RTMP_MSG_DATA_AMF3:
        return on_amf_message(c, m);
    case RTMP_MSG_AGGREGATE:
        if (!c->warned_aggr) {
            c->warned_aggr = true;
            PD_LOGW(MOD, "%s: aggregate messages not supported, ignored",
                    c->peer);
        }
        return 0;
    default:
        PD_LOGD(MOD, "%s: message type %u ignored", c->peer, m->type);
        return 0;
    }
}

/* ---- connection thread ------------------------------------------------- */

static int handshake(conn_t *c)
{
    int64_t deadline =
        pd_mono_us() + (int64_t)c->in->cfg->rtmp_handshake_timeout_ms * 1000;
    uint8_t c0c1[1 + RTMP_HS_SIZE];
    int rc = recv_exact(c, c0c1, sizeof(c0c1), deadline);
    if (rc == 0 && c0c1[0] != 3) {
        set_reason(c, "handshake: unsupported RTMP version %u", c0c1[0]);
        return PD_EPROTO;
    }
    uint8_t out[1 + 2 * RTMP_HS_SIZE];
    bool digest = false;
    if (rc == 0 && rtmp_hs_response(c0c1 + 1, (uint32_t)(pd_mono_us() / 1000),
                                    out, &digest)) {
        set_reason(c, "handshake: crypto failure");
        return PD_ERR;
    }
    if (rc == 0 && (rc = send_all(c, out, sizeof(out))))
        return rc;
    uint8_t c2[RTMP_HS_SIZE];
    if (rc == 0)
        rc = recv_exact(c, c2, sizeof(c2), deadline);
    if (rc == PD_ETIMEDOUT)
        set_reason(c, "handshake timed out");
    else if (rc == PD_ECLOSED && atomic_load(&c->in->stopping))
        set_reason(c, "server stopping");
    else if (rc == PD_ECLOSED)
        set_reason(c, "peer left during the handshake");
    else if (rc)
        set_reason(c, "handshake: receive failed");
    if (rc == 0)
        PD_LOGD(MOD, "%s handshake done (%s)", c->peer,
                digest ? "digest" : "plain");
    return rc;
}

/* Feeds rbuf to the parser and handles every complete message; *nmsg
 * counts them. */
static int drain(conn_t *c, int *nmsg)
{
    size_t off = 0;
    int rc = 0;
    *nmsg = 0;
    while (rc == 0) {
        size_t used = 0;
        rtmp_msg_t m;
        int r = rtmp_chunk_parse(&c->parser, c->rbuf + off, c->rlen - off,
                                 &used, &m);
        off += used;
        if (r == 1) {
            (*nmsg)++;
            rc = on_message(c, &m);
        } else if (r == 0) {
            break;
        } else {
            set_reason(c, "chunk stream: %s",
                       c->parser.error ? c->parser.error : pd_strerror(r));
            rc = r;
        }
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return rc;
}

static void serve(conn_t *c)
{
    if (handshake(c))
        return;
    c->bytes_in = HANDSHAKE_BYTES; /* acknowledgements count C0, C1, C2 */
    const pd_config_t *cfg = c->in->cfg;
    int64_t idle_us = (int64_t)cfg->rtmp_idle_timeout_ms * 1000;
    int64_t now = pd_mono_us();
    int64_t idle_by = now + idle_us; /* restarts on each whole message */
    c->publish_by_us = now + (int64_t)cfg->rtmp_handshake_timeout_ms * 1000;
    for (;;) {
        int64_t deadline = idle_by;
        if (!c->stream && c->publish_by_us < deadline)
            deadline = c->publish_by_us;
        int rc = wait_fd(c, POLLIN, deadline);
        if (rc == PD_ETIMEDOUT) {
            if (!c->stream && pd_mono_us() >= c->publish_by_us)
                set_reason(c, "not publishing %d ms after the %s",
                           cfg->rtmp_handshake_timeout_ms,
                           c->name[0] ? "unpublish" : "handshake");
            else
                set_reason(c, "no complete message for %d ms",
                           cfg->rtmp_idle_timeout_ms);
            return;
        }
        if (rc == PD_ECLOSED) {
            set_reason(c, "server stopping");
            return;
        }
        if (rc) {
            set_reason(c, "poll failed");
            return;
        }
        ssize_t n =
            recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
        if (n == 0) {
            if (atomic_load(&c->in->stopping))
                set_reason(c, "server stopping");
            return; /* the peer left */
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            set_reason(c, "receive failed: %s", strerror(errno));
            return;
        }
        c->rlen += (size_t)n;
        c->bytes_in += (uint64_t)n;
        if (c->ack_window && c->bytes_in - c->acked >= c->ack_window) {
            c->acked = c->bytes_in;
            if (send_control32(c, RTMP_MSG_ACK, (uint32_t)c->bytes_in))
                return;
        }
        int nmsg = 0;
        if (drain(c, &nmsg))
            return;
        if (nmsg > 0)
            idle_by = pd_mono_us() + idle_us;
    }
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    ingest_t *in = c->in;
    serve(c);
    bool published = c->stream != NULL;
    if (c->reason[0])
        conn_log(in, PD_LOG_INFO, "%s%s%s closed: %s", c->peer,
                 published ? " " : "", published ? c->name : "", c->reason);
    else
        conn_log(in, PD_LOG_INFO, "%s%s%s disconnected", c->peer,
                 published ? " " : "", published ? c->name : "");
    unpublish(c);
    rtmp_chunk_parser_free(&c->parser);
    rtmp_hs_thread_done();

    pthread_mutex_lock(&in->mu);
    for (conn_t **pp = &in->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    close(c->fd);
    c->fd = -1;
    in->nconns--;
    c->next = in->done; /* reap() joins this thread and frees c */
    in->done = c;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

/* Joins and frees every finished connection. The accept thread while it
 * runs, then ingest_stop (never both at once). */
static void reap(ingest_t *in)
{
    pthread_mutex_lock(&in->mu);
    conn_t *d = in->done;
    in->done = NULL;
    pthread_mutex_unlock(&in->mu);
    while (d) {
        conn_t *next = d->next;
        pthread_join(d->th, NULL); /* it is past its last use of `in` */
        free(d);
        d = next;
    }
}

/* ---- accept thread ----------------------------------------------------- */

static void accept_one(ingest_t *in)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(in->lfd, (struct sockaddr *)&ss, &sl,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED) {
            PD_LOGW(MOD, "accept failed: %s", strerror(errno));
            usleep(100 * 1000); /* e.g. EMFILE: do not spin */
        }
        return;
    }
    char peer[96];
    format_peer((struct sockaddr *)&ss, sl, peer, sizeof(peer));

    pthread_mutex_lock(&in->mu);
    bool full = in->nconns >= in->cfg->max_publishers;
    pthread_mutex_unlock(&in->mu);
    if (full) {
        conn_log(in, PD_LOG_WARN,
                 "%s refused: max_publishers (%d) connections open", peer,
                 in->cfg->max_publishers);
        close(fd);
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        conn_log(in, PD_LOG_ERROR, "%s refused: out of memory", peer);
        close(fd);
        return;
    }
    c->in = in;
    c->fd = fd;
    memcpy(c->peer, peer, sizeof(c->peer));
    c->out_chunk_size = RTMP_DEFAULT_CHUNK_SIZE;
    c->ack_window = OUR_WINDOW; /* until the peer announces its own */
    rtmp_chunk_parser_init(&c->parser, (uint32_t)in->cfg->rtmp_max_chunk_size,
                           (uint32_t)in->cfg->rtmp_max_message_size,
                           &in->budget);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    pthread_mutex_lock(&in->mu);
    c->next = in->conns;
    in->conns = c;
    in->nconns++;
    int err = pthread_create(&c->th, NULL, conn_main, c);
    if (err) {
        in->conns = c->next;
        in->nconns--;
    }
    pthread_mutex_unlock(&in->mu);
    if (err) {
        conn_log(in, PD_LOG_ERROR, "%s refused: cannot start a thread: %s",
                 peer, strerror(err));
        close(fd);
        free(c);
        return;
    }
    PD_LOGD(MOD, "%s connected", peer);
}

static void *accept_main(void *arg)
{
    ingest_t *in = arg;
    while (!atomic_load(&in->stopping)) {
        reap(in); /* before each accept: unjoined threads stay bounded */
        struct pollfd pfd[2] = {{.fd = in->lfd, .events = POLLIN},
                                {.fd = in->wake[0], .events = POLLIN}};
        int r = poll(pfd, 2, POLL_SLICE_MS);
        if (r <= 0)
            continue;
        if (pfd[1].revents)
            break;
        if (pfd[0].revents)
            accept_one(in);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------ */

size_t ingest_default_budget(const pd_config_t *cfg)
{
    size_t per_conn =
        (size_t)cfg->rtmp_max_message_size + (size_t)RTMP_CONN_EXTRA_BUFFERED;
    size_t b = BUDGET_FLOOR;
    if (4 * per_conn > b)
        b = 4 * per_conn;
    if (cfg->max_publishers > 0 &&
        (size_t)cfg->max_publishers * BUDGET_PER_PUBLISHER > b)
        b = (size_t)cfg->max_publishers * BUDGET_PER_PUBLISHER;
    return b;
}

int ingest_start(const pd_config_t *cfg, pkg_t *pkg,
                 const ingest_hooks_t *hooks, ingest_t **out)
{
    return ingest_start_budget(cfg, pkg, hooks, ingest_default_budget(cfg),
                               out);
}

int ingest_start_budget(const pd_config_t *cfg, pkg_t *pkg,
                        const ingest_hooks_t *hooks, size_t reassembly_budget,
                        ingest_t **out)
{
    *out = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", cfg->rtmp_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags =
                                 AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(cfg->bind_addr, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        PD_LOGE(MOD, "bad bind address %s: %s", cfg->bind_addr,
                gai_strerror(gai));
        return PD_EINVAL;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        PD_LOGE(MOD, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return PD_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        PD_LOGE(MOD, "cannot listen on %s:%d: %s", cfg->bind_addr,
                cfg->rtmp_port, strerror(errno));
        close(fd);
        freeaddrinfo(ai);
        return PD_EIO;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ss.ss_family == AF_INET6
                   ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                   : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    ingest_t *in = calloc(1, sizeof(*in));
    if (!in) {
        close(fd);
        return PD_ENOMEM;
    }
    in->cfg = cfg;
    in->pkg = pkg;
    in->hooks = hooks;
    in->lfd = fd;
    in->port = port;
    atomic_init(&in->stopping, false);
    atomic_init(&in->budget.used, 0);
    in->budget.limit = reassembly_budget;
    if (pipe2(in->wake, O_CLOEXEC) < 0) {
        PD_LOGE(MOD, "pipe: %s", strerror(errno));
        close(fd);
        free(in);
        return PD_EIO;
    }
    pthread_mutex_init(&in->mu, NULL);
    pthread_mutex_init(&in->log_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&in->cv, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&in->acceptor, NULL, accept_main, in);
    if (err) {
        PD_LOGE(MOD, "cannot start the accept thread: %s", strerror(err));
        close(in->wake[0]);
        close(in->wake[1]);
        close(fd);
        pthread_mutex_destroy(&in->mu);
        pthread_mutex_destroy(&in->log_mu);
        pthread_cond_destroy(&in->cv);
        free(in);
        return PD_ERR;
    }
    bool v6 = strchr(cfg->bind_addr, ':') != NULL;
    PD_LOGI(MOD, "listening on %s%s%s:%d", v6 ? "[" : "", cfg->bind_addr,
            v6 ? "]" : "", port);
    *out = in;
    return 0;
}

int ingest_port(const ingest_t *in)
{
    return in ? in->port : 0;
}

void ingest_stop(ingest_t **inp)
{
    if (!inp || !*inp)
        return;
    ingest_t *in = *inp;
    atomic_store(&in->stopping, true);
    ssize_t w = write(in->wake[1], "x", 1);
    (void)w; /* the accept loop also polls the flag every second */
    pthread_join(in->acceptor, NULL);
    close(in->lfd);

    /* Wake every connection thread; each unpublishes, closes and leaves.
     * The wait has a deadline per round; a thread stuck in the packager
     * is reported every STOP_WARN_MS of wall time, and waited for (its
     * memory is still in use). */
    pthread_mutex_lock(&in->mu);
    for (conn_t *c = in->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    int64_t start = pd_mono_us();
    int64_t next_warn_ms = STOP_WARN_MS;
    while (in->nconns > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&in->cv, &in->mu, &ts);
        int64_t elapsed_ms = (pd_mono_us() - start) / 1000;
        if (in->nconns > 0 && elapsed_ms >= next_warn_ms) {
            PD_LOGW(MOD,
                    "stopping: still waiting for %d connection(s) "
                    "after %lld ms",
                    in->nconns, (long long)elapsed_ms);
            next_warn_ms = (elapsed_ms / STOP_WARN_MS + 1) * STOP_WARN_MS;
        }
    }
    pthread_mutex_unlock(&in->mu);
    reap(in); /* every connection thread has ended: join them all */

    size_t held = atomic_load(&in->budget.used);
    if (held)
        PD_LOGE(MOD, "internal: %zu reassembly bytes unaccounted at stop",
                held);
    if (in->log_suppressed)
        PD_LOGI(MOD, "%d connection log line(s) suppressed before stop",
                in->log_suppressed);
    close(in->wake[0]);
    close(in->wake[1]);
    pthread_mutex_destroy(&in->mu);
    pthread_mutex_destroy(&in->log_mu);
    pthread_cond_destroy(&in->cv);
    free(in);
    *inp = NULL;
}
