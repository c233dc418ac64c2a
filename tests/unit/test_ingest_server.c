/*
 * tests/unit/test_ingest_server.c - the RTMP server over real loopback
 * sockets, with the packager replaced by stubs defined here (so this
 * suite does not depend on the packager): the publish flow and what
 * reaches the packager, key stripping, refused applications and names,
 * a taken stream name, max_publishers, garbage closing one connection
 * only, the packager closing a stream, and ingest_stop with live
 * publishers. A small RTMP client is built from ingest's own chunk writer,
 * parser and AMF0 encoder.
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
#include <pthread.h>
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
} stub_t;

static stub_t stub = {.mu = PTHREAD_MUTEX_INITIALIZER};
static struct pkg_stream_s handles[16];

int pkg_publish(pkg_t *pkg, const char *name, const char *peer,
                pkg_stream_t **out)
{
    (void)pkg;
    (void)peer;
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

static void start_server(int max_publishers)
{
    stub_reset();
    pd_config_defaults(&cfg);
    snprintf(cfg.bind_addr, sizeof(cfg.bind_addr), "127.0.0.1");
    cfg.rtmp_port = 0;
    cfg.max_publishers = max_publishers;
    cfg.rtmp_handshake_timeout_ms = 5000;
    cfg.rtmp_idle_timeout_ms = 5000;
    pd_log_set_level(PD_LOG_WARN);
    ck_assert_int_eq(ingest_start(&cfg, (pkg_t *)&stub, &srv), 0);
    ck_assert_int_gt(ingest_port(srv), 0);
}

typedef struct cli_s {
    int fd;
    rtmp_chunk_parser_t parser;
    uint8_t rbuf[65536];
    size_t rlen;
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
    rtmp_chunk_parser_init(&c->parser, 1 << 20, 1 << 20);
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
    /* unsupported audio: ignored, connection stays */
    static const uint8_t mp3[] = {0x2F, 0xFF};
    cli_msg(&c, 4, RTMP_MSG_AUDIO, 1, 4020, mp3, sizeof(mp3));
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
    cli_t c;
    cli_open(&c);
    cli_connect(&c, "vod");
    ck_assert(cli_expect(&c, "NetConnection.Connect.Rejected"));
    ck_assert(closed_by_server(c.fd));
    cli_close(&c);
    ck_assert_int_eq(stub_get(&stub.npublished), 0);
    ingest_stop(&srv);
}
END_TEST

START_TEST(bad_names_rejected)
{
    static const char *bad[] = {"",
                                "a/b",
                                "x y",
                                "..",
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
