/*
 * tests/unit/test_ingest_server.c - the RTMP server over real loopback
 * sockets, with the packager replaced by stubs defined here (so this
 * suite does not depend on the packager): the publish flow and what
 * reaches the packager, key stripping, refused applications and names,
 * a taken stream name, max_publishers, garbage closing one connection
 * only, the packager closing a stream, and ingest_stop with live
 * publishers. Resource limits: one AMF0 value budget and a size limit per
 * command, a publish deadline that frees the slots of connections that
 * never publish, an idle timer that only whole messages restart, the
 * server-wide reassembly budget, ingest_stop joining every thread (and
 * warning by elapsed time), rate-limited connection logs, and the small
 * things (acknowledgements count the handshake, one time line for audio
 * and video, dot names, refused application names never logged). A small
 * RTMP client is built from ingest's own chunk writer, parser and AMF0
 * encoder; some tests read the server's log from a captured stderr.
 * Publishing hooks (fake ones): the `key` query parameter reaches the
 * check decoded, a refusal gets BadName and never reaches the packager,
 * key-as-name rewrites the stream, started/ended pair up once per
 * session, and no key (nor a name that may be one) is ever logged.
 */
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "ingest/ingest.h"
#include "ingest/ingest_int.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- packager stubs ---------------------------------------------------- */

struct pkg_stream_s {
    int id;
};

typedef struct stub_s {
    pthread_mutex_t mu;
    char published[8][80]; /* names passed to pkg_publish, in order */
    int npublished;
    int live; /* handles not yet unpublished */
    int unpublished;
    char taken[80]; /* pkg_publish answers PD_EEXIST for it */
    int write_rc;   /* what pkg_stream_write returns */
    int cfg_video_len, cfg_audio_len;
    int hint_w, hint_h;
    double hint_fps;
    int nvideo, naudio;
    pkg_frame_t last_video, last_audio; /* data pointers not kept */
    uint8_t last_video_byte;
    /* fake ingest hooks (hooks_* tests) */
    int nchecks, nstarted, nended;
    char check_name[256]; /* last name check saw */
    char check_key[160];  /* last key check saw */
    bool check_key_null;
    char check_peer[96];
    char allow_key[160];     /* non-empty: allow exactly this key */
    char rewrite_from[80];   /* key-as-name: this name (no key) ... */
    char rewrite_to[80];     /* ... becomes this one */
    int npublished_at_check; /* stub.npublished when check ran */
    int64_t started_id, ended_id;
    char started_name[80], ended_name[80];
    int block_ms;     /* the k-th pkg_stream_write call sleeps k times
                         this long (outside mu) */
    int writes_begun; /* pkg_stream_write calls entered */
} stub_t;

static stub_t stub = {.mu = PTHREAD_MUTEX_INITIALIZER};
static struct pkg_stream_s handles[16];

/* Thread-exit work in connection threads, as libcrypto's per-thread state
 * has: pkg_publish (called on the connection thread) sets a thread-local
 * value whose destructor takes a while, then counts the exit. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static atomic_int threads_exited;

static void slow_thread_exit(void *v)
{
    (void)v;
    usleep(300 * 1000);
    atomic_fetch_add(&threads_exited, 1);
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, slow_thread_exit);
}

int pkg_publish(pkg_t *pkg, const char *name, const char *peer,
                pkg_stream_t **out)
{
    (void)pkg;
    (void)peer;
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, (void *)1);
    pthread_mutex_lock(&stub.mu);
    int rc = 0;
    if (strcmp(name, stub.taken) == 0) {
        rc = PD_EEXIST;
    } else if (stub.npublished < 8) {
        snprintf(stub.published[stub.npublished], 80, "%s", name);
        *out = &handles[stub.npublished++];
        stub.live++;
    } else {
        rc = PD_ELIMIT;
    }
    pthread_mutex_unlock(&stub.mu);
    return rc;
}

int pkg_stream_set_config(pkg_stream_t *s, pkg_media_t media, pkg_codec_t codec,
                          const uint8_t *extradata, size_t len)
{
    (void)s;
    (void)extradata;
    pthread_mutex_lock(&stub.mu);
    if (media == PKG_MEDIA_VIDEO && codec == PKG_CODEC_H264)
        stub.cfg_video_len = (int)len;
    if (media == PKG_MEDIA_AUDIO && codec == PKG_CODEC_AAC)
        stub.cfg_audio_len = (int)len;
    pthread_mutex_unlock(&stub.mu);
    return 0;
}

void pkg_stream_set_hints(pkg_stream_t *s, int w, int h, double fps)
{
    (void)s;
    pthread_mutex_lock(&stub.mu);
    stub.hint_w = w;
    stub.hint_h = h;
    stub.hint_fps = fps;
    pthread_mutex_unlock(&stub.mu);
}

int pkg_stream_write(pkg_stream_t *s, const pkg_frame_t *f)
{
    (void)s;
    pthread_mutex_lock(&stub.mu);
    int block_ms = ++stub.writes_begun * stub.block_ms;
    pthread_mutex_unlock(&stub.mu);
    if (block_ms)
        usleep((useconds_t)block_ms * 1000);
    pthread_mutex_lock(&stub.mu);
    if (f->media == PKG_MEDIA_VIDEO) {
        stub.nvideo++;
        stub.last_video = *f;
        stub.last_video_byte = f->len ? f->data[f->len - 1] : 0;
    } else {
        stub.naudio++;
        stub.last_audio = *f;
    }
    stub.last_video.data = stub.last_audio.data = NULL;
    int rc = stub.write_rc;
    pthread_mutex_unlock(&stub.mu);
    return rc;
}

void pkg_unpublish(pkg_stream_t **s)
{
    pthread_mutex_lock(&stub.mu);
    stub.live--;
    stub.unpublished++;
    pthread_mutex_unlock(&stub.mu);
    *s = NULL;
}

static void stub_reset(void)
{
    pthread_mutex_lock(&stub.mu);
    pthread_mutex_t mu = stub.mu;
    memset(&stub, 0, sizeof(stub));
    stub.mu = mu;
    pthread_mutex_unlock(&stub.mu);
}

static int stub_get(int *field)
{
    pthread_mutex_lock(&stub.mu);
    int v = *field;
    pthread_mutex_unlock(&stub.mu);
    return v;
}

/* Waits (up to 10 s) until *field >= want. */
static bool stub_wait(int *field, int want)
{
    int64_t end = pd_mono_us() + 10 * 1000000;
    while (pd_mono_us() < end) {
        if (stub_get(field) >= want)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

/* ---- server and client helpers ---------------------------------------- */

static pd_config_t cfg;
static ingest_t *srv;
static const ingest_hooks_t *test_hooks; /* passed to ingest_start */

/* budget 0: ingest_start's default. */
static void start_server_ex(int max_publishers, int handshake_ms, int idle_ms,
                            int max_msg, size_t budget)
{
    stub_reset();
    pd_config_defaults(&cfg);
    snprintf(cfg.bind_addr, sizeof(cfg.bind_addr), "127.0.0.1");
    cfg.rtmp_port = 0;
    cfg.max_publishers = max_publishers;
    cfg.rtmp_handshake_timeout_ms = handshake_ms;
    cfg.rtmp_idle_timeout_ms = idle_ms;
    if (max_msg)
        cfg.rtmp_max_message_size = max_msg;
    pd_log_set_level(PD_LOG_WARN);
    if (budget)
        ck_assert_int_eq(
            ingest_start_budget(&cfg, (pkg_t *)&stub, test_hooks, budget, &srv),
            0);
    else
        ck_assert_int_eq(ingest_start(&cfg, (pkg_t *)&stub, test_hooks, &srv),
                         0);
    ck_assert_int_gt(ingest_port(srv), 0);
}

static void start_server(int max_publishers)
{
    start_server_ex(max_publishers, 5000, 5000, 0, 0);
}

/* ---- the server's log, captured ---------------------------------------- */

static int saved_stderr = -1;
static FILE *log_file;

/* From now on the server's log lines go to a temporary file. */
static void log_capture(int level)
{
    fflush(stderr);
    log_file = tmpfile();
    ck_assert_ptr_nonnull(log_file);
    saved_stderr = dup(2);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(fileno(log_file), 2), 0);
    pd_log_set_level(level);
}

/* Ends the capture; returns what was logged (free it). */
static char *log_captured(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    long n = ftell(log_file);
    ck_assert_int_ge(n, 0);
    char *text = calloc(1, (size_t)n + 1);
    rewind(log_file);
    size_t got = fread(text, 1, (size_t)n, log_file);
    text[got] = 0;
    fclose(log_file);
    log_file = NULL;
    fputs(text, stderr); /* still visible in the test output */
    return text;
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

typedef struct cli_s {
    int fd;
    rtmp_chunk_parser_t parser;
    uint8_t rbuf[65536];
    size_t rlen;
    int nacks;         /* Acknowledgements received */
    uint32_t last_ack; /* the sequence number of the last one */
} cli_t;

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ingest_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_bytes(int fd, const void *b, size_t n)
{
    ck_assert_int_eq(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void recv_exact(int fd, uint8_t *b, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        ck_assert_int_gt(r, 0);
        b += r;
        n -= (size_t)r;
    }
}

/* true if the server closes the connection within 10 s (data before the
 * close is skipped) */
static bool closed_by_server(int fd)
{
    uint8_t b[4096];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r == 0)
            return true;
        if (r < 0) /* a reset counts as closed; a timeout does not */
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
}

static void cli_open(cli_t *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect();
    rtmp_chunk_parser_init(&c->parser, 1 << 20, 1 << 20, NULL);
    uint8_t c0c1[1 + RTMP_HS_SIZE] = {3};
    for (int i = 1; i < (int)sizeof(c0c1); i++)
        c0c1[i] = (uint8_t)(i * 13);
    memset(c0c1 + 1, 0, 8);
    send_bytes(c->fd, c0c1, sizeof(c0c1));
    uint8_t s[1 + 2 * RTMP_HS_SIZE];
    recv_exact(c->fd, s, sizeof(s));
    ck_assert_uint_eq(s[0], 3);
    ck_assert_mem_eq(s + 1 + RTMP_HS_SIZE, c0c1 + 1, RTMP_HS_SIZE);
    send_bytes(c->fd, s + 1, RTMP_HS_SIZE); /* C2 */
}

static void cli_close(cli_t *c)
{
    close(c->fd);
    rtmp_chunk_parser_free(&c->parser);
}

static void cli_msg(cli_t *c, uint32_t csid, uint8_t type, uint32_t sid,
                    uint32_t ts, const uint8_t *p, size_t n)
{
    uint8_t b[8192];
    int len = rtmp_chunk_write(b, sizeof(b), csid, type, sid, ts, p, n, 128);
    ck_assert_int_gt(len, 0);
    send_bytes(c->fd, b, (size_t)len);
}

static void cli_amf(cli_t *c, uint8_t type, uint32_t sid, amf0_wr_t *w)
{
    ck_assert_int_eq(amf0_wr_status(w), 0);
    cli_msg(c, 3, type, sid, 0, w->buf, w->len);
}

static bool cli_expect(cli_t *c, const char *needle);

/* Serialises a message of any size (chunk size 128) into a new buffer. */
static uint8_t *big_chunks(uint32_t csid, uint8_t type, uint32_t sid,
                           const uint8_t *p, size_t n, size_t *len)
{
    size_t cap = n + n / 128 + 64;
    uint8_t *b = malloc(cap);
    int r = rtmp_chunk_write(b, cap, csid, type, sid, 0, p, n, 128);
    ck_assert_int_gt(r, 0);
    *len = (size_t)r;
    return b;
}

/* Sends a message of any size; false if the server closed meanwhile. */
static bool cli_big(cli_t *c, uint32_t csid, uint8_t type, uint32_t sid,
                    const uint8_t *p, size_t n)
{
    size_t len;
    uint8_t *b = big_chunks(csid, type, sid, p, n, &len);
    size_t off = 0;
    while (off < len) {
        ssize_t r = send(c->fd, b + off, len - off, MSG_NOSIGNAL);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    free(b);
    return off == len;
}

/* Builds name, txn, null, then `arrays` strict arrays of `count` nulls. */
static uint8_t *cmd_with_arrays(const char *name, double txn, int arrays,
                                uint32_t count, size_t *len)
{
    size_t cap = 64 + strlen(name) + (size_t)arrays * (5 + count);
    uint8_t *b = malloc(cap);
    amf0_wr_t w;
    amf0_wr_init(&w, b, cap);
    amf0_put_cstr(&w, name);
    amf0_put_number(&w, txn);
    amf0_put_null(&w);
    for (int i = 0; i < arrays; i++) {
        amf0_put_strict_array_start(&w, count);
        for (uint32_t j = 0; j < count; j++)
            amf0_put_null(&w);
    }
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    *len = w.len;
    return b;
}

/* An unknown command the server answers with _result: proves that every
 * byte sent before it was read and that the connection lives. */
static bool cli_sync(cli_t *c)
{
    uint8_t b[64];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "ping");
    amf0_put_number(&w, 9);
    amf0_put_null(&w);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    size_t len;
    uint8_t *m = big_chunks(3, RTMP_MSG_COMMAND_AMF0, 0, w.buf, w.len, &len);
    bool sent = send(c->fd, m, len, MSG_NOSIGNAL) == (ssize_t)len;
    free(m);
    return sent && cli_expect(c, "_result");
}

/* Sends one byte of a never-ending message to every fd in turn, every
 * 200 ms, until all of them are closed by the server (true) or max_ms
 * passed (false). Each fd first gets the 12-byte header of a 1000-byte
 * command. */
static bool trickle_until_closed(const int *fds, int n, int max_ms)
{
    static const uint8_t hdr[12] = {0x03, 0,    0, 0, 0, 0x03,
                                    0xE8, 0x14, 0, 0, 0, 0};
    bool closed[16] = {0};
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++)
        send(fds[i], hdr, sizeof(hdr), MSG_NOSIGNAL);
    int64_t end = pd_mono_us() + (int64_t)max_ms * 1000;
    int left = n;
    while (left > 0 && pd_mono_us() < end) {
        for (int i = 0; i < n; i++)
            if (!closed[i])
                send(fds[i], "\x02", 1, MSG_NOSIGNAL);
        int64_t slice = pd_mono_us() + 200 * 1000;
        while (left > 0 && pd_mono_us() < slice) {
            struct pollfd pf[16];
            for (int i = 0; i < n; i++)
                pf[i] = (struct pollfd){.fd = closed[i] ? -1 : fds[i],
                                        .events = POLLIN};
            if (poll(pf, (nfds_t)n, 50) <= 0)
                continue;
            for (int i = 0; i < n; i++) {
                if (closed[i] || !pf[i].revents)
                    continue;
                uint8_t b[4096];
                ssize_t r = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    closed[i] = true;
                    left--;
                }
            }
        }
    }
    return left == 0;
}

/* Reads messages until a command whose AMF0 text contains `needle`
 * arrives. Returns false if the connection closed or timed out first. */
static bool cli_expect(cli_t *c, const char *needle)
{
    for (;;) {
        size_t used;
        rtmp_msg_t m;
        int rc = rtmp_chunk_parse(&c->parser, c->rbuf, c->rlen, &used, &m);
        ck_assert_int_ge(rc, 0);
        if (rc == 1) {
            if (m.type == RTMP_MSG_ACK && m.len >= 4) {
                c->nacks++;
                c->last_ack = ((uint32_t)m.payload[0] << 24) |
                              ((uint32_t)m.payload[1] << 16) |
                              ((uint32_t)m.payload[2] << 8) | m.payload[3];
            }
            bool hit = m.type == RTMP_MSG_COMMAND_AMF0 &&
                       memmem(m.payload, m.len, needle, strlen(needle));
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
            if (hit)
                return true;
            continue;
        }
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        ssize_t r =
            recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
        if (r <= 0)
            return false;
        c->rlen += (size_t)r;
    }
}

static void cli_connect(cli_t *c, const char *app)
{
    uint8_t b[512];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "connect");
    amf0_put_number(&w, 1);
    amf0_put_object_start(&w);
    amf0_put_prop_cstr(&w, "app", app);
    amf0_put_prop_cstr(&w, "tcUrl", "rtmp://127.0.0.1/live");
    amf0_put_object_end(&w);
    cli_amf(c, RTMP_MSG_COMMAND_AMF0, 0, &w);
}

static void cli_publish(cli_t *c, const char *name)
{
    uint8_t b[512];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "createStream");
    amf0_put_number(&w, 2);
    amf0_put_null(&w);
    cli_amf(c, RTMP_MSG_COMMAND_AMF0, 0, &w);
    ck_assert(cli_expect(c, "_result"));
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "publish");
    amf0_put_number(&w, 3);
    amf0_put_null(&w);
    amf0_put_cstr(&w, name);
    amf0_put_cstr(&w, "live");
    cli_amf(c, RTMP_MSG_COMMAND_AMF0, 1, &w);
}

/* connect + publish, expecting success */
static void cli_publish_ok(cli_t *c, const char *name)
{
    cli_open(c);
    cli_connect(c, "live");
    ck_assert(cli_expect(c, "NetConnection.Connect.Success"));
    cli_publish(c, name);
    ck_assert(cli_expect(c, "NetStream.Publish.Start"));
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(publish_flow)
{
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "cam1?key=SECRET");
    ck_assert_int_eq(stub_get(&stub.npublished), 1);
    ck_assert_str_eq(stub.published[0], "live/cam1"); /* key cut off */

    uint8_t b[512];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "@setDataFrame");
    amf0_put_cstr(&w, "onMetaData");
    amf0_put_ecma_start(&w, 3);
    amf0_put_prop_number(&w, "width", 640);
    amf0_put_prop_number(&w, "height", 360);
    amf0_put_prop_number(&w, "framerate", 30);
    amf0_put_object_end(&w);
    cli_amf(&c, RTMP_MSG_DATA_AMF0, 1, &w);

    static const uint8_t avcc[] = {0x17, 0,    0,    0,    0,    1,
                                   0x64, 0,    0x1e, 0xff, 0xe1, 0,
                                   4,    0x67, 0x64, 0,    0x1e};
    cli_msg(&c, 6, RTMP_MSG_VIDEO, 1, 0, avcc, sizeof(avcc));
    static const uint8_t asc[] = {0xAF, 0x00, 0x11, 0x90};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 0, asc, sizeof(asc));
    /* a 300-byte key frame with cts -33 (spans three chunks) */
    uint8_t nal[300] = {0x17, 0x01, 0xFF, 0xFF, 0xDF, 0, 0, 1, 0x27, 0x65};
    nal[299] = 0x5A;
    cli_msg(&c, 6, RTMP_MSG_VIDEO, 1, 4000, nal, sizeof(nal));
    static const uint8_t aac[] = {0xAF, 0x01, 0x21, 0x10};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 4010, aac, sizeof(aac));
    /* unsupported audio (Speex): ignored, connection stays */
    static const uint8_t speex[] = {0xB6, 0xFF};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 4020, speex, sizeof(speex));
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 4030, aac, sizeof(aac));

    ck_assert(stub_wait(&stub.naudio, 2));
    ck_assert(stub_wait(&stub.nvideo, 1));
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.cfg_video_len, (int)sizeof(avcc) - 5);
    ck_assert_int_eq(stub.cfg_audio_len, 2);
    ck_assert_int_eq(stub.hint_w, 640);
    ck_assert_int_eq(stub.hint_h, 360);
    ck_assert(stub.hint_fps == 30);
    ck_assert_int_eq(stub.last_video.dts_ms, 4000);
    ck_assert_int_eq(stub.last_video.cts_ms, -33);
    ck_assert(stub.last_video.key);
    ck_assert_uint_eq(stub.last_video.len, 295);
    ck_assert_uint_eq(stub.last_video_byte, 0x5A);
    ck_assert_int_gt(stub.last_video.arrival_us, 0);
    ck_assert_int_eq(stub.last_audio.dts_ms, 4030);
    ck_assert(stub.last_audio.key);
    ck_assert_int_eq(stub.naudio, 2);
    ck_assert_int_eq(stub.unpublished, 0);
    pthread_mutex_unlock(&stub.mu);

    /* MP3 (no sequence header) goes to the packager, which re-encodes */
    static const uint8_t mp3[] = {0x2F, 0xFF, 0xFB, 0x90};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 4040, mp3, sizeof(mp3));
    ck_assert(stub_wait(&stub.naudio, 3));
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.last_audio.dts_ms, 4040);
    ck_assert_uint_eq(stub.last_audio.len, 3);
    pthread_mutex_unlock(&stub.mu);

    /* deleteStream unpublishes; the connection may stay */
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "deleteStream");
    amf0_put_number(&w, 4);
    amf0_put_null(&w);
    amf0_put_number(&w, 1);
    cli_amf(&c, RTMP_MSG_COMMAND_AMF0, 0, &w);
    ck_assert(stub_wait(&stub.unpublished, 1));
    cli_close(&c);
    ingest_stop(&srv);
    ck_assert_ptr_null(srv);
    ck_assert_int_eq(stub_get(&stub.unpublished), 1);
    ck_assert_int_eq(stub_get(&stub.live), 0);
}
END_TEST

START_TEST(close_unpublishes)
{
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "gone");
    cli_close(&c); /* no deleteStream */
    ck_assert(stub_wait(&stub.unpublished, 1));
    ingest_stop(&srv);
}
END_TEST

START_TEST(wrong_app_rejected)
{
    start_server(8);
    log_capture(PD_LOG_INFO);
    cli_t c;
    cli_open(&c);
    cli_connect(&c, "vod");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Rejected"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    /* a key in the application path is never logged: only its length */
    cli_open(&c);
    cli_connect(&c, "k3yS3cr3t/live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Rejected"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ck_assert_int_eq(stub_get(&stub.npublished), 0);
    ingest_stop(&srv); /* every close line is written by now */
    char *log = log_captured();
    ck_assert_ptr_null(strstr(log, "k3yS3cr3t"));
    ck_assert_ptr_null(strstr(log, "vod"));
    ck_assert_ptr_nonnull(strstr(log, "(14 bytes)"));
    ck_assert_ptr_nonnull(strstr(log, "(3 bytes)"));
    free(log);
}
END_TEST

START_TEST(bad_names_rejected)
{
    static const char *bad[] = {"",
                                "a/b",
                                "x y",
                                "..",
                                "...",
                                ".x",
                                ".hidden?key=1",
                                "?key=only",
                                "0123456789012345678901234567890123456789"
                                "01234567890123456789012345"};
    start_server(8);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_t c;
        cli_open(&c);
        cli_connect(&c, "live");
        ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
        cli_publish(&c, bad[i]);
        ck_assert_msg(cli_expect(&c, "NetStream.Publish.BadName"), "name %zu",
                      i);
        ck_assert(closed_by_server(c.fd));
        cli_close(&c);
    }
    ck_assert_int_eq(stub_get(&stub.npublished), 0);
    /* 64 characters of the whole alphabet are fine */
    cli_t c;
    cli_publish_ok(&c, "Az09_-.Az09_-.Az09_-.Az09_-.Az09_-.Az09_-.Az09_-."
                       "Az09_-.Az09_-.A");
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(taken_name)
{
    start_server(8);
    snprintf(stub.taken, sizeof(stub.taken), "live/busy");
    cli_t c;
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    cli_publish(&c, "busy?key=x");
    ck_assert(cli_expect(&c, "NetStream.Publish.BadName"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ck_assert_int_eq(stub_get(&stub.unpublished), 0);
    ingest_stop(&srv);
}
END_TEST

START_TEST(max_publishers)
{
    start_server(2);
    int a = tcp_connect(), b = tcp_connect();
    usleep(200 * 1000); /* both accepted before the third arrives */
    int x = tcp_connect();
    ck_assert(closed_by_server(x)); /* refused at once */
    close(x);
    close(a);
    /* a slot frees up once a connection ends */
    int64_t end = pd_mono_us() + 10 * 1000000;
    bool ok = false;
    while (!ok && pd_mono_us() < end) {
        cli_t c;
        memset(&c, 0, sizeof(c));
        c.fd = tcp_connect();
        uint8_t c0c1[1 + RTMP_HS_SIZE] = {3};
        send_bytes(c.fd, c0c1, sizeof(c0c1));
        uint8_t s;
        ok = recv(c.fd, &s, 1, 0) == 1;
        close(c.fd);
        if (!ok)
            usleep(50 * 1000);
    }
    ck_assert(ok);
    close(b);
    ingest_stop(&srv);
}
END_TEST

START_TEST(garbage_closes_only_its_connection)
{
    start_server(8);
    cli_t good;
    cli_publish_ok(&good, "steady");
    cli_t bad;
    cli_open(&bad);
    uint8_t junk[3000];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 151 + 7);
    junk[0] = 0xC5; /* a type 3 chunk on an unknown stream */
    send_bytes(bad.fd, junk, sizeof(junk));
    ck_assert(closed_by_server(bad.fd));
    cli_close(&bad);
    /* an oversized message closes too */
    cli_open(&bad);
    static const uint8_t big[] = {0x04, 0,    0, 0, 0xFF, 0xFF,
                                  0xFF, 0x09, 1, 0, 0,    0};
    cli_connect(&bad, "live");
    send_bytes(bad.fd, big, sizeof(big));
    ck_assert(closed_by_server(bad.fd));
    cli_close(&bad);
    /* the good publisher still works */
    static const uint8_t aac[] = {0xAF, 0x01, 0x21};
    cli_msg(&good, 4, RTMP_MSG_AUDIO, 1, 5, aac, sizeof(aac));
    ck_assert(stub_wait(&stub.naudio, 1));
    ck_assert_int_eq(stub_get(&stub.unpublished), 0);
    cli_close(&good);
    ingest_stop(&srv);
}
END_TEST

START_TEST(packager_closed_disconnects)
{
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "ending");
    pthread_mutex_lock(&stub.mu);
    stub.write_rc = PD_ECLOSED;
    pthread_mutex_unlock(&stub.mu);
    static const uint8_t aac[] = {0xAF, 0x01, 0x21};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 5, aac, sizeof(aac));
    ck_assert(closed_by_server(c.fd));
    ck_assert(stub_wait(&stub.unpublished, 1));
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(stop_with_live_publishers)
{
    start_server(8);
    cli_t a, b, h;
    cli_publish_ok(&a, "one");
    cli_publish_ok(&b, "two");
    h.fd = tcp_connect(); /* stuck before the handshake */
    ingest_stop(&srv);
    ck_assert_ptr_null(srv);
    ck_assert_int_eq(stub_get(&stub.unpublished), 2);
    ck_assert_int_eq(stub_get(&stub.live), 0);
    ck_assert(closed_by_server(a.fd));
    ck_assert(closed_by_server(h.fd));
    cli_close(&a);
    cli_close(&b);
    close(h.fd);
}
END_TEST

START_TEST(amf_message_limits)
{
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "amf");
    /* an unknown command is answered, the connection stays */
    ck_assert(cli_sync(&c));
    /* data messages over the limits are ignored, the connection stays:
     * metadata with 6000 values (about 6 KB), then 70 KB of it */
    size_t len;
    uint8_t *m = cmd_with_arrays("onMetaData", 0, 2, 3000, &len);
    ck_assert(cli_big(&c, 4, RTMP_MSG_DATA_AMF0, 1, m, len));
    free(m);
    ck_assert(cli_sync(&c));
    m = cmd_with_arrays("onMetaData", 0, 1, 70000, &len);
    ck_assert(cli_big(&c, 4, RTMP_MSG_DATA_AMF0, 1, m, len));
    free(m);
    ck_assert(cli_sync(&c));
    ck_assert_int_eq(stub_get(&stub.unpublished), 0);
    /* a command whose values together pass the budget (two arrays of
     * 3000, each fine alone) closes: no _result for it */
    m = cmd_with_arrays("probe", 5, 2, 3000, &len);
    ck_assert_uint_lt(len, 64 * 1024);
    cli_big(&c, 3, RTMP_MSG_COMMAND_AMF0, 0, m, len);
    free(m);
    ck_assert(!cli_expect(&c, "_result"));
    ck_assert(stub_wait(&stub.unpublished, 1));
    cli_close(&c);

    /* a command of 70 KB (a long string: few values) is refused for
     * its size alone */
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    uint8_t *big = malloc(70100);
    amf0_wr_t w;
    amf0_wr_init(&w, big, 70100);
    amf0_put_cstr(&w, "probe");
    amf0_put_number(&w, 7);
    amf0_put_null(&w);
    char *text = malloc(70000);
    memset(text, 'a', 70000);
    amf0_put_string(&w, text, 70000);
    free(text);
    ck_assert_int_eq(amf0_wr_status(&w), 0);
    cli_big(&c, 3, RTMP_MSG_COMMAND_AMF0, 0, big, w.len);
    free(big);
    ck_assert(!cli_expect(&c, "_result"));
    cli_close(&c);

    /* the reviewer's message: a string, 7 strict arrays of 65535 nulls
     * (458 KB): refused before any decoding */
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    m = cmd_with_arrays("probe", 6, 7, 65535, &len);
    ck_assert_uint_gt(len, 450000);
    cli_big(&c, 3, RTMP_MSG_COMMAND_AMF0, 0, m, len);
    free(m);
    ck_assert(!cli_expect(&c, "_result"));
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(unpublished_connections_lose_their_slot)
{
    /* max_publishers 2, held by two connections that connect but never
     * publish, trickling a byte every 200 ms; idle timeout 30 s. The
     * publish deadline (handshake timeout, 1 s, after the handshake)
     * closes them and a real publisher gets in. */
    start_server_ex(2, 1000, 30000, 0, 0);
    cli_t a, b;
    cli_open(&a);
    cli_connect(&a, "live");
    ck_assert(cli_expect(&a, "NetConnection.Connect.Success"));
    cli_open(&b);
    int fds[2] = {a.fd, b.fd};
    ck_assert(trickle_until_closed(fds, 2, 10000));
    cli_close(&a);
    cli_close(&b);
    cli_t p;
    cli_publish_ok(&p, "real");
    cli_close(&p);
    ingest_stop(&srv);
}
END_TEST

START_TEST(deadline_again_after_unpublish)
{
    start_server_ex(8, 1000, 30000, 0, 0);
    cli_t c;
    cli_publish_ok(&c, "brief");
    uint8_t b[64];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "deleteStream");
    amf0_put_number(&w, 4);
    amf0_put_null(&w);
    amf0_put_number(&w, 1);
    cli_amf(&c, RTMP_MSG_COMMAND_AMF0, 0, &w);
    ck_assert(stub_wait(&stub.unpublished, 1));
    ck_assert(trickle_until_closed(&c.fd, 1, 10000));
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(idle_timer_needs_whole_messages)
{
    /* a publisher whose message takes longer than the idle timeout (1 s)
     * to arrive is closed, however steadily its bytes trickle in */
    start_server_ex(8, 5000, 1000, 0, 0);
    cli_t c;
    cli_publish_ok(&c, "slow");
    ck_assert(trickle_until_closed(&c.fd, 1, 10000));
    ck_assert(stub_wait(&stub.unpublished, 1));
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(server_wide_reassembly_budget)
{
    /* messages up to 1 MiB, 2.5 MiB of reassembly for the whole server:
     * two connections part-way through a 1 MiB message fit, a third
     * does not and is closed; the others go on */
    enum { MSG = 1024 * 1024 };
    start_server_ex(8, 5000, 5000, MSG, MSG * 5 / 2);
    uint8_t *pl = calloc(1, MSG);
    pl[0] = 0x27; /* inter frame, AVC NALU */
    pl[1] = 1;
    size_t len;
    uint8_t *wire = big_chunks(6, RTMP_MSG_VIDEO, 1, pl, MSG, &len);
    size_t cut = 12 + 128 + 6999 * 129; /* 7000 chunks: ~896 KB, then a
                                           chunk boundary */
    cli_t c[3];
    const char *names[3] = {"b1", "b2", "b3"};
    for (int i = 0; i < 3; i++) {
        cli_publish_ok(&c[i], names[i]);
        ck_assert_int_eq(send(c[i].fd, wire, cut, MSG_NOSIGNAL), (ssize_t)cut);
    }
    ck_assert(cli_sync(&c[0]));
    ck_assert(cli_sync(&c[1]));
    ck_assert(!cli_sync(&c[2])); /* over the server-wide budget: closed */
    /* the first completes its frame, which reaches the packager */
    ck_assert_int_eq(send(c[0].fd, wire + cut, len - cut, MSG_NOSIGNAL),
                     (ssize_t)(len - cut));
    ck_assert(stub_wait(&stub.nvideo, 1));
    ck_assert(cli_sync(&c[0]));
    ck_assert(cli_sync(&c[1]));
    for (int i = 0; i < 3; i++)
        cli_close(&c[i]);
    free(wire);
    free(pl);
    ingest_stop(&srv);
}
END_TEST

START_TEST(stop_joins_every_thread)
{
    /* connection threads have thread-exit work (as libcrypto's state);
     * ingest_stop returns only after it is done */
    atomic_store(&threads_exited, 0);
    start_server(8);
    cli_t a, b;
    cli_publish_ok(&a, "j1");
    cli_publish_ok(&b, "j2");
    ingest_stop(&srv);
    int exited = atomic_load(&threads_exited);
    ck_assert_int_eq(exited, 2);
    cli_close(&a);
    cli_close(&b);
    /* finished threads are joined as the server goes on, too */
    atomic_store(&threads_exited, 0);
    start_server(8);
    for (int i = 0; i < 5; i++) {
        cli_t c;
        cli_publish_ok(&c, "again");
        cli_close(&c);
        ck_assert(stub_wait(&stub.unpublished, i + 1));
    }
    ingest_stop(&srv);
    exited = atomic_load(&threads_exited);
    ck_assert_int_eq(exited, 5);
}
END_TEST

START_TEST(stop_warns_by_elapsed_time)
{
    /* six publishers stay in the packager at stop, ending one by one
     * 0.4, 0.8, ... 2.4 s later (six wakeups of ingest_stop): no "still
     * waiting" warning before 5 s have passed */
    start_server(16);
    cli_t p[6];
    static const char *names[6] = {"s1", "s2", "s3", "s4", "s5", "s6"};
    for (int i = 0; i < 6; i++)
        cli_publish_ok(&p[i], names[i]);
    pthread_mutex_lock(&stub.mu);
    stub.block_ms = 400;
    pthread_mutex_unlock(&stub.mu);
    static const uint8_t aac[] = {0xAF, 0x01, 0x21};
    for (int i = 0; i < 6; i++)
        cli_msg(&p[i], 4, RTMP_MSG_AUDIO, 1, 5, aac, sizeof(aac));
    ck_assert(stub_wait(&stub.writes_begun, 6));
    log_capture(PD_LOG_WARN);
    ingest_stop(&srv);
    char *log = log_captured();
    int warnings = count_substr(log, "still waiting");
    ck_assert_int_eq(warnings, 0);
    free(log);
    for (int i = 0; i < 6; i++)
        cli_close(&p[i]);

    /* one stuck for 6 s: one warning, after 5 s */
    start_server(16);
    cli_publish_ok(&p[0], "stuck");
    pthread_mutex_lock(&stub.mu);
    stub.block_ms = 6000;
    pthread_mutex_unlock(&stub.mu);
    cli_msg(&p[0], 4, RTMP_MSG_AUDIO, 1, 5, aac, sizeof(aac));
    ck_assert(stub_wait(&stub.writes_begun, 1));
    log_capture(PD_LOG_WARN);
    int64_t t0 = pd_mono_us();
    ingest_stop(&srv);
    int64_t took_ms = (pd_mono_us() - t0) / 1000;
    log = log_captured();
    ck_assert_int_ge(took_ms, 5000);
    warnings = count_substr(log, "still waiting");
    ck_assert_int_eq(warnings, 1);
    ck_assert_ptr_nonnull(
        strstr(log, "still waiting for 1 connection(s) after 5"));
    free(log);
    cli_close(&p[0]);
}
END_TEST

START_TEST(connection_logs_rate_limited)
{
    /* a connect loop (200 connections closing at once) cannot flood the
     * log: at most 20 lines a second, and a count of the rest */
    start_server(64);
    log_capture(PD_LOG_INFO);
    int64_t t0 = pd_mono_us();
    for (int i = 0; i < 200; i++)
        close(tcp_connect());
    ingest_stop(&srv);
    int64_t secs = (pd_mono_us() - t0) / 1000000;
    char *log = log_captured();
    int lines = count_substr(log, " closed: ") +
                count_substr(log, " disconnected") +
                count_substr(log, " refused: ");
    ck_assert_int_gt(lines, 0);
    ck_assert_int_le(lines, 20 * (secs + 2));
    ck_assert_ptr_nonnull(strstr(log, "suppressed"));
    free(log);
}
END_TEST

START_TEST(truncated_amf_logged_as_truncated)
{
    start_server(8);
    log_capture(PD_LOG_INFO);
    cli_t c;
    cli_open(&c);
    /* a string that announces 10 bytes and carries 3 */
    static const uint8_t cut[] = {0x02, 0x00, 0x0A, 'c', 'o', 'n'};
    cli_msg(&c, 3, RTMP_MSG_COMMAND_AMF0, 0, 0, cut, sizeof(cut));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ingest_stop(&srv);
    char *log = log_captured();
    ck_assert_ptr_nonnull(strstr(log, "(truncated)"));
    free(log);
}
END_TEST

START_TEST(acks_count_the_handshake)
{
    start_server(8);
    cli_t c;
    cli_open(&c);                        /* 3073 bytes: C0, C1, C2 */
    uint8_t win[4] = {0, 0, 0x03, 0xE8}; /* acknowledge every 1000 bytes */
    cli_msg(&c, 2, RTMP_MSG_WINDOW_ACK_SIZE, 0, 0, win, 4);
    /* the window takes effect once parsed; the next bytes received
     * (these syncs, 29 bytes each) trigger an acknowledgement */
    for (int i = 0; i < 3 && c.nacks == 0; i++)
        ck_assert(cli_sync(&c));
    ck_assert_int_eq(c.nacks, 1);
    /* it counts everything sent: the handshake, the 16 bytes of the
     * window message, one to three syncs */
    ck_assert_uint_gt(c.last_ack, 3073 + 16);
    ck_assert_uint_le(c.last_ack, 3073 + 16 + 3 * 29);
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(audio_video_one_time_line)
{
    /* audio starts just before the 32-bit wrap, video just after */
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "wrap");
    static const uint8_t aac[] = {0xAF, 0x01, 0x21};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 0xFFFFFFF0u, aac, sizeof(aac));
    ck_assert(stub_wait(&stub.naudio, 1));
    static const uint8_t nal[] = {0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65};
    cli_msg(&c, 6, RTMP_MSG_VIDEO, 1, 0x10, nal, sizeof(nal));
    ck_assert(stub_wait(&stub.nvideo, 1));
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.last_audio.dts_ms, 0xFFFFFFF0LL);
    ck_assert_int_eq(stub.last_video.dts_ms, 0x100000010LL);
    pthread_mutex_unlock(&stub.mu);
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

/* ---- publishing hooks -------------------------------------------------- */

static int fake_check(void *opaque, char *name, size_t name_size,
                      const char *key, const char *peer)
{
    (void)opaque;
    pthread_mutex_lock(&stub.mu);
    stub.nchecks++;
    stub.npublished_at_check = stub.npublished;
    snprintf(stub.check_name, sizeof(stub.check_name), "%s", name);
    snprintf(stub.check_key, sizeof(stub.check_key), "%s", key ? key : "");
    stub.check_key_null = key == NULL;
    snprintf(stub.check_peer, sizeof(stub.check_peer), "%s", peer);
    int rc = 0;
    if (stub.rewrite_from[0] && !key && strcmp(name, stub.rewrite_from) == 0)
        snprintf(name, name_size, "%s", stub.rewrite_to);
    else if (stub.allow_key[0])
        rc = key && strcmp(key, stub.allow_key) == 0 ? 0 : PD_EPERM;
    pthread_mutex_unlock(&stub.mu);
    return rc;
}

static void fake_started(void *opaque, const char *name, const char *peer,
                         int64_t *session)
{
    (void)opaque;
    (void)peer;
    pthread_mutex_lock(&stub.mu);
    stub.nstarted++;
    *session = 4200 + stub.nstarted;
    stub.started_id = *session;
    snprintf(stub.started_name, sizeof(stub.started_name), "%s", name);
    pthread_mutex_unlock(&stub.mu);
}

static void fake_ended(void *opaque, const char *name, int64_t session)
{
    (void)opaque;
    pthread_mutex_lock(&stub.mu);
    stub.nended++;
    stub.ended_id = session;
    snprintf(stub.ended_name, sizeof(stub.ended_name), "%s", name);
    pthread_mutex_unlock(&stub.mu);
}

static const ingest_hooks_t fake_hooks = {
    .check = fake_check, .started = fake_started, .ended = fake_ended};

START_TEST(query_key_parsing)
{
    char k[INGEST_KEY_MAX + 1];
    ck_assert_int_eq(ingest_query_key("key=abc", 7, k, sizeof(k)), 1);
    ck_assert_str_eq(k, "abc");
    const char *q = "a=1&keyx=2&key=%41b%2b+c&key=second";
    ck_assert_int_eq(ingest_query_key(q, strlen(q), k, sizeof(k)), 1);
    ck_assert_str_eq(k, "Ab++c"); /* decoded, '+' kept, first key wins */
    q = "other=x&k=y";
    ck_assert_int_eq(ingest_query_key(q, strlen(q), k, sizeof(k)), 0);
    ck_assert_str_eq(k, "");
    ck_assert_int_eq(ingest_query_key("key", 3, k, sizeof(k)), 1);
    ck_assert_str_eq(k, "");
    ck_assert_int_eq(ingest_query_key("", 0, k, sizeof(k)), 0);
    q = "key=%00%4%zz%";
    ck_assert_int_eq(ingest_query_key(q, strlen(q), k, sizeof(k)), 1);
    ck_assert_str_eq(k, "%00%4%zz%"); /* never an embedded NUL */
    /* explicit length: bytes after len are not read */
    ck_assert_int_eq(ingest_query_key("key=abcdef", 6, k, sizeof(k)), 1);
    ck_assert_str_eq(k, "ab");
    char big[3 * 200 + 8];
    int n = snprintf(big, sizeof(big), "key=");
    for (int i = 0; i < INGEST_KEY_MAX; i++)
        big[n++] = 'k';
    ck_assert_int_eq(ingest_query_key(big, (size_t)n, k, sizeof(k)), 1);
    ck_assert_uint_eq(strlen(k), INGEST_KEY_MAX);
    big[n++] = 'k';
    ck_assert_int_eq(ingest_query_key(big, (size_t)n, k, sizeof(k)), PD_ELIMIT);
    /* 129 decoded bytes written as escapes */
    n = snprintf(big, sizeof(big), "key=");
    for (int i = 0; i <= INGEST_KEY_MAX; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "%%41");
    ck_assert_int_eq(ingest_query_key(big, (size_t)n, k, sizeof(k)), PD_ELIMIT);
    ck_assert_int_eq(ingest_query_key("key=a", 5, k, 16), PD_EINVAL);
    ck_assert_int_eq(ingest_query_key("key=a\0b", 7, k, sizeof(k)), PD_EINVAL);
    /* random bytes: never crashes, always NUL-terminated within bounds */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        char rnd[300];
        size_t rl = (size_t)(rand() % (int)sizeof(rnd));
        for (size_t i = 0; i < rl; i++)
            rnd[i] = (char)(rand() % 8 == 0 ? '%' : rand() % 256);
        if (rl >= 4 && rand() % 2)
            memcpy(rnd, "key=", 4);
        int r = ingest_query_key(rnd, rl, k, sizeof(k));
        ck_assert(r == 0 || r == 1 || r == PD_ELIMIT || r == PD_EINVAL);
        ck_assert_uint_le(strlen(k), INGEST_KEY_MAX);
    }
}
END_TEST

START_TEST(hooks_key_passed_through)
{
    test_hooks = &fake_hooks;
    start_server(8);
    pthread_mutex_lock(&stub.mu);
    snprintf(stub.allow_key, sizeof(stub.allow_key), "abc");
    pthread_mutex_unlock(&stub.mu);
    cli_t c;
    cli_publish_ok(&c, "x?foo=1&key=a%62c&bar=2&key=zzz");
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.nchecks, 1);
    ck_assert_str_eq(stub.check_name, "live/x");
    ck_assert(!stub.check_key_null);
    ck_assert_str_eq(stub.check_key, "abc");
    ck_assert(strncmp(stub.check_peer, "127.0.0.1:", 10) == 0);
    ck_assert_int_eq(stub.npublished_at_check, 0); /* before pkg_publish */
    ck_assert_int_eq(stub.npublished, 1);
    ck_assert_str_eq(stub.published[0], "live/x");
    pthread_mutex_unlock(&stub.mu);
    cli_close(&c);

    /* no key parameter at all: check sees NULL */
    pthread_mutex_lock(&stub.mu);
    stub.allow_key[0] = 0;
    pthread_mutex_unlock(&stub.mu);
    cli_publish_ok(&c, "y?other=1");
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.nchecks, 2);
    ck_assert(stub.check_key_null);
    ck_assert_str_eq(stub.check_name, "live/y");
    pthread_mutex_unlock(&stub.mu);
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(hooks_refused_publish)
{
    test_hooks = &fake_hooks;
    start_server(8);
    pthread_mutex_lock(&stub.mu);
    snprintf(stub.allow_key, sizeof(stub.allow_key), "good");
    pthread_mutex_unlock(&stub.mu);
    const char *names[] = {"x?key=bad", "x", "x?key=", "x?key=goodX"};
    for (int i = 0; i < 4; i++) {
        cli_t c;
        cli_open(&c);
        cli_connect(&c, "live");
        ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
        cli_publish(&c, names[i]);
        ck_assert(cli_expect(&c, "Publishing not authorised."));
        ck_assert(closed_by_server(c.fd));
        cli_close(&c);
    }
    /* an overlong key never reaches the check, and is refused */
    char big[300];
    int n = snprintf(big, sizeof(big), "x?key=");
    for (int i = 0; i <= INGEST_KEY_MAX; i++)
        big[n++] = 'g';
    big[n] = 0;
    cli_t c;
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    cli_publish(&c, big);
    ck_assert(cli_expect(&c, "NetStream.Publish.BadName"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.nchecks, 4);
    ck_assert_int_eq(stub.npublished, 0); /* the packager never saw one */
    ck_assert_int_eq(stub.nstarted, 0);
    ck_assert_int_eq(stub.nended, 0);
    pthread_mutex_unlock(&stub.mu);
    /* the right key still gets in */
    cli_publish_ok(&c, "x?key=good");
    ck_assert_int_eq(stub_get(&stub.npublished), 1);
    cli_close(&c);
    ingest_stop(&srv);
}
END_TEST

START_TEST(hooks_key_as_name_rewrite)
{
    test_hooks = &fake_hooks;
    start_server(8);
    pthread_mutex_lock(&stub.mu);
    snprintf(stub.rewrite_from, sizeof(stub.rewrite_from), "live/pk_xxx");
    snprintf(stub.rewrite_to, sizeof(stub.rewrite_to), "live/talk");
    pthread_mutex_unlock(&stub.mu);
    log_capture(PD_LOG_DEBUG);
    cli_t c;
    cli_publish_ok(&c, "pk_xxx");
    pthread_mutex_lock(&stub.mu);
    ck_assert(stub.check_key_null);
    ck_assert_int_eq(stub.npublished, 1);
    ck_assert_str_eq(stub.published[0], "live/talk");
    ck_assert_str_eq(stub.started_name, "live/talk");
    pthread_mutex_unlock(&stub.mu);
    cli_close(&c);
    ck_assert(stub_wait(&stub.nended, 1));
    ingest_stop(&srv);
    char *log = log_captured();
    ck_assert_ptr_null(strstr(log, "pk_xxx")); /* the name was the key */
    ck_assert_ptr_nonnull(strstr(log, "live/talk"));
    free(log);
}
END_TEST

/* A rewrite to an invalid name is never published. */
static int bad_rewrite_check(void *opaque, char *name, size_t name_size,
                             const char *key, const char *peer)
{
    (void)opaque;
    (void)key;
    (void)peer;
    snprintf(name, name_size, "live/../etc");
    return 0;
}

START_TEST(hooks_bad_rewrite_refused)
{
    static const ingest_hooks_t h = {.check = bad_rewrite_check};
    test_hooks = &h;
    start_server(8);
    cli_t c;
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    cli_publish(&c, "x");
    ck_assert(cli_expect(&c, "NetStream.Publish.Failed"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ck_assert_int_eq(stub_get(&stub.npublished), 0);
    ingest_stop(&srv);
}
END_TEST

START_TEST(hooks_started_ended_once)
{
    test_hooks = &fake_hooks;
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "sess");
    ck_assert_int_eq(stub_get(&stub.nstarted), 1);
    ck_assert_int_eq(stub_get(&stub.nended), 0);
    /* deleteStream ends it; the close afterwards does not end it again */
    uint8_t b[128];
    amf0_wr_t w;
    amf0_wr_init(&w, b, sizeof(b));
    amf0_put_cstr(&w, "deleteStream");
    amf0_put_number(&w, 4);
    amf0_put_null(&w);
    amf0_put_number(&w, 1);
    cli_amf(&c, RTMP_MSG_COMMAND_AMF0, 0, &w);
    ck_assert(stub_wait(&stub.nended, 1));
    cli_close(&c);
    /* a second session on a new connection, ended by the close */
    cli_publish_ok(&c, "sess");
    ck_assert(stub_wait(&stub.nstarted, 2));
    cli_close(&c);
    ck_assert(stub_wait(&stub.nended, 2));
    ingest_stop(&srv);
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.nstarted, 2);
    ck_assert_int_eq(stub.nended, 2);
    ck_assert_int_eq(stub.started_id, 4202);
    ck_assert_int_eq(stub.ended_id, 4202);
    ck_assert_str_eq(stub.ended_name, "live/sess");
    pthread_mutex_unlock(&stub.mu);
}
END_TEST

START_TEST(hooks_ended_at_stop)
{
    test_hooks = &fake_hooks;
    start_server(8);
    cli_t c;
    cli_publish_ok(&c, "stopme");
    ingest_stop(&srv);
    pthread_mutex_lock(&stub.mu);
    ck_assert_int_eq(stub.nstarted, 1);
    ck_assert_int_eq(stub.nended, 1);
    ck_assert_int_eq(stub.ended_id, 4201);
    pthread_mutex_unlock(&stub.mu);
    cli_close(&c);
}
END_TEST

START_TEST(hooks_key_never_logged)
{
    test_hooks = &fake_hooks;
    start_server(8);
    pthread_mutex_lock(&stub.mu);
    snprintf(stub.allow_key, sizeof(stub.allow_key), "SuperSecretOk!");
    pthread_mutex_unlock(&stub.mu);
    log_capture(PD_LOG_DEBUG);
    cli_t c;
    /* accepted with a key, then unpublished and closed */
    cli_publish_ok(&c, "named?key=SuperSecretOk%21&x=SuperSecretOther");
    cli_close(&c);
    ck_assert(stub_wait(&stub.nended, 1));
    /* refused with a key: the name may be logged, never the key */
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    cli_publish(&c, "shown?key=SuperSecretWrong");
    ck_assert(cli_expect(&c, "NetStream.Publish.BadName"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    /* refused without a key: the name may be a key, never logged */
    cli_open(&c);
    cli_connect(&c, "live");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Success"));
    cli_publish(&c, "SuperSecretName42");
    ck_assert(cli_expect(&c, "NetStream.Publish.BadName"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ingest_stop(&srv);
    char *log = log_captured();
    ck_assert_ptr_null(strstr(log, "SuperSecret"));
    ck_assert_ptr_null(strstr(log, "key="));
    ck_assert_ptr_nonnull(strstr(log, "live/named"));
    ck_assert_ptr_nonnull(strstr(log, "publish refused for live/shown"));
    ck_assert_int_eq(count_substr(log, "publish refused (no valid key)"), 1);
    ck_assert_ptr_nonnull(strstr(log, "name of 17 bytes"));
    free(log);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ingest_server");
    TCase *t = tcase_create("ingest_server");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, publish_flow);
    tcase_add_test(t, close_unpublishes);
    tcase_add_test(t, wrong_app_rejected);
    tcase_add_test(t, bad_names_rejected);
    tcase_add_test(t, taken_name);
    tcase_add_test(t, max_publishers);
    tcase_add_test(t, garbage_closes_only_its_connection);
    tcase_add_test(t, packager_closed_disconnects);
    tcase_add_test(t, stop_with_live_publishers);
    tcase_add_test(t, amf_message_limits);
    tcase_add_test(t, unpublished_connections_lose_their_slot);
    tcase_add_test(t, deadline_again_after_unpublish);
    tcase_add_test(t, idle_timer_needs_whole_messages);
    tcase_add_test(t, server_wide_reassembly_budget);
    tcase_add_test(t, stop_joins_every_thread);
    tcase_add_test(t, stop_warns_by_elapsed_time);
    tcase_add_test(t, connection_logs_rate_limited);
    tcase_add_test(t, truncated_amf_logged_as_truncated);
    tcase_add_test(t, acks_count_the_handshake);
    tcase_add_test(t, audio_video_one_time_line);
    tcase_add_test(t, query_key_parsing);
    tcase_add_test(t, hooks_key_passed_through);
    tcase_add_test(t, hooks_refused_publish);
    tcase_add_test(t, hooks_key_as_name_rewrite);
    tcase_add_test(t, hooks_bad_rewrite_refused);
    tcase_add_test(t, hooks_started_ended_once);
    tcase_add_test(t, hooks_ended_at_stop);
    tcase_add_test(t, hooks_key_never_logged);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
