/*
 * tools/bench_latency.c - ingest-to-availability benchmark (and the
 * benchmark's RTMP publisher).
 *
 * A minimal RTMP publisher (plain handshake; connect, createStream and
 * publish with AMF0 encoded by hand) sends the tags of an FLV file as RTMP
 * messages paced in real time, and records the moment each video frame
 * left: when the send() of the frame's last byte returned. Meanwhile a
 * follower thread tracks the video media playlist with blocking reloads
 * (libcurl; _HLS_msn/_HLS_part of the preload hint) and records when each
 * part first appears, and a fetcher thread GETs every listed part and
 * counts the samples in its trun boxes. Parts hold consecutive frames from
 * the stream's first frame on, so counting samples maps every part to the
 * frames in it; the tfdt of each part cross-checks that mapping.
 *
 * With -P it only publishes (looping the file) for the other phases of
 * tools/bench.
 *
 * Uses only podium's public interfaces (RTMP in, HTTP out), only on
 * 127.0.0.1. Times are CLOCK_MONOTONIC microseconds. Every read has a
 * deadline, every HTTP request a timeout, every table a fixed limit.
 */
#include <curl/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAMES (1u << 20)      /* video frames recorded (~9.7 h) */
#define MAX_PARTS (1u << 17)       /* parts tracked */
#define MAX_PL_PARTS 4096          /* parts in one playlist */
#define MAX_HTTP_BODY (64u << 20)  /* largest HTTP body we accept */
#define MAX_RTMP_MSG (16u << 20)   /* largest RTMP message we accept */
#define OUT_CHUNK 4096             /* our outgoing chunk size */
#define WARMUP_S 2.0               /* excluded from the figures */
#define TAIL_S 2.0                 /* published after the window */

static atomic_bool g_stop;         /* SIGINT/SIGTERM */
static atomic_bool g_follow_stop;  /* follower: stop now */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000,
                          .tv_nsec = (long)(t % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
        if (atomic_load(&g_stop))
            return;
    }
}

static void sleep_ms(int ms) { sleep_until_us(now_us() + (int64_t)ms * 1000); }

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}
static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}
static void put_be24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    put_be24(p + 1, v);
}

/* ---- FLV file --------------------------------------------------------- */

typedef struct {
    uint8_t type;          /* 8 audio, 9 video, 18 script */
    uint32_t ts_ms;        /* tag timestamp, ms */
    const uint8_t *data;   /* borrowed from flv_t.file */
    uint32_t len;          /* bytes */
} flv_tag_t;

typedef struct {
    uint8_t *file;         /* the whole file, owned */
    size_t size;           /* bytes */
    flv_tag_t *tags;       /* owned */
    size_t ntags;
    size_t nvideo;         /* video frames (AVC NALU packets) */
    double frame_ms;       /* mean video frame interval, ms */
    uint32_t loop_ms;      /* timestamp offset added per loop, ms */
} flv_t;

static bool flv_is_video_frame(const flv_tag_t *t)
{
    return t->type == 9 && t->len >= 5 && (t->data[0] & 0x0f) == 7 &&
           t->data[1] == 1;
}

static int flv_load(const char *path, flv_t *f)
{
    memset(f, 0, sizeof(*f));
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "bench_latency: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return -1;
    }
    long sz = ftell(fp);
    if (sz < 13 || sz > (1L << 31)) {
        fprintf(stderr, "bench_latency: %s: bad size\n", path);
        fclose(fp);
        return -1;
    }
    rewind(fp);
    f->size = (size_t)sz;
    f->file = malloc(f->size);
    if (!f->file || fread(f->file, 1, f->size, fp) != f->size) {
        fclose(fp);
        return -1;
    }
    fclose(fp);
    if (memcmp(f->file, "FLV", 3) != 0) {
        fprintf(stderr, "bench_latency: %s: not an FLV file\n", path);
        return -1;
    }
    size_t pos = be32(f->file + 5);
    if (pos < 9 || pos + 4 > f->size)
        return -1;
    pos += 4; /* PreviousTagSize0 */
    size_t cap = 1024;
    f->tags = malloc(cap * sizeof(*f->tags));
    if (!f->tags)
        return -1;
    uint32_t first_v = 0, last_v = 0;
    while (pos + 11 <= f->size) {
        const uint8_t *h = f->file + pos;
        uint32_t len = be24(h + 1);
        if (pos + 11 + (size_t)len + 4 > f->size)
            break; /* truncated last tag */
        if (f->ntags == cap) {
            cap *= 2;
            flv_tag_t *n = realloc(f->tags, cap * sizeof(*n));
            if (!n)
                return -1;
            f->tags = n;
        }
        flv_tag_t *t = &f->tags[f->ntags++];
        t->type = h[0] & 0x1f;
        t->ts_ms = be24(h + 4) | (uint32_t)h[7] << 24;
        t->data = h + 11;
        t->len = len;
        if (flv_is_video_frame(t)) {
            if (f->nvideo == 0)
                first_v = t->ts_ms;
            last_v = t->ts_ms;
            f->nvideo++;
        }
        pos += 11 + (size_t)len + 4;
    }
    if (f->nvideo < 2) {
        fprintf(stderr, "bench_latency: %s: fewer than 2 video frames\n",
                path);
        return -1;
    }
    f->frame_ms = (double)(last_v - first_v) / (double)(f->nvideo - 1);
    /* the next loop's first frame follows the last one by one frame */
    f->loop_ms = (uint32_t)llround(last_v - first_v + f->frame_ms);
    return 0;
}

/* ---- RTMP client ------------------------------------------------------ */

typedef struct {
    uint32_t csid;
    bool used;
    uint32_t ts;        /* absolute timestamp of the current message */
    uint32_t delta;     /* last timestamp delta */
    uint32_t len;       /* message length, bytes */
    uint8_t type;
    uint32_t msid;
    bool ext;           /* extended timestamp present */
    uint8_t *buf;       /* message being assembled, owned */
    uint32_t got;       /* bytes of it received */
} rtmp_in_t;

typedef struct {
    int fd;
    uint32_t in_chunk;  /* peer's chunk size */
    uint8_t *wbuf;      /* scratch for one outgoing message, owned */
    size_t wcap;
    rtmp_in_t in[16];
} rtmp_t;

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes before deadline (monotonic us). */
static int read_full(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        int64_t left = deadline - now_us();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left / 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t g = recv(fd, p, n, 0);
        if (g < 0 && errno == EINTR)
            continue;
        if (g <= 0)
            return -1;
        p += g;
        n -= (size_t)g;
    }
    return 0;
}

/* Sends one message as fmt-0 chunk then fmt-3 continuation chunks, in a
 * single send(). */
static int rtmp_send(rtmp_t *c, uint32_t csid, uint8_t type, uint32_t msid,
                     uint32_t ts, const uint8_t *data, size_t len)
{
    bool ext = ts >= 0xffffff;
    size_t nchunks = len ? (len + OUT_CHUNK - 1) / OUT_CHUNK : 1;
    size_t need = 12 + (ext ? 4 : 0) + len + (nchunks - 1) * (1 + (ext ? 4 : 0));
    if (need > c->wcap) {
        uint8_t *n = realloc(c->wbuf, need);
        if (!n)
            return -1;
        c->wbuf = n;
        c->wcap = need;
    }
    uint8_t *p = c->wbuf;
    *p++ = (uint8_t)(csid & 0x3f); /* fmt 0, csid 2..63 */
    put_be24(p, ext ? 0xffffff : ts);
    p += 3;
    put_be24(p, (uint32_t)len);
    p += 3;
    *p++ = type;
    p[0] = (uint8_t)msid; /* little endian */
    p[1] = (uint8_t)(msid >> 8);
    p[2] = (uint8_t)(msid >> 16);
    p[3] = (uint8_t)(msid >> 24);
    p += 4;
    if (ext) {
        put_be32(p, ts);
        p += 4;
    }
    size_t off = 0;
    for (;;) {
        size_t n = len - off < OUT_CHUNK ? len - off : OUT_CHUNK;
        memcpy(p, data + off, n);
        p += n;
        off += n;
        if (off >= len)
            break;
        *p++ = (uint8_t)(0xc0 | (csid & 0x3f));
        if (ext) {
            put_be32(p, ts);
            p += 4;
        }
    }
    return write_all(c->fd, c->wbuf, (size_t)(p - c->wbuf));
}

/* Reads chunks until one message is complete. On success *msg points into
 * the chunk stream's buffer (valid until the next call). */
static int rtmp_read_msg(rtmp_t *c, uint8_t *type, const uint8_t **msg,
                         uint32_t *len, int64_t deadline)
{
    for (;;) {
        uint8_t b[4];
        if (read_full(c->fd, b, 1, deadline))
            return -1;
        unsigned fmt = b[0] >> 6;
        uint32_t csid = b[0] & 0x3f;
        if (csid == 0) {
            if (read_full(c->fd, b + 1, 1, deadline))
                return -1;
            csid = 64 + b[1];
        } else if (csid == 1) {
            if (read_full(c->fd, b + 1, 2, deadline))
                return -1;
            csid = 64 + b[1] + 256u * b[2];
        }
        rtmp_in_t *st = NULL;
        for (size_t i = 0; i < 16; i++) {
            if (c->in[i].used && c->in[i].csid == csid) {
                st = &c->in[i];
                break;
            }
        }
        if (!st) {
            for (size_t i = 0; i < 16 && !st; i++) {
                if (!c->in[i].used) {
                    st = &c->in[i];
                    memset(st, 0, sizeof(*st));
                    st->used = true;
                    st->csid = csid;
                }
            }
            if (!st) {
                fprintf(stderr, "bench_latency: too many chunk streams\n");
                return -1;
            }
        }
        uint8_t h[11];
        static const size_t hlen[4] = {11, 7, 3, 0};
        if (hlen[fmt] && read_full(c->fd, h, hlen[fmt], deadline))
            return -1;
        bool starting = st->got == 0;
        if (fmt <= 2) {
            uint32_t field = be24(h);
            st->ext = field == 0xffffff;
            if (fmt <= 1) {
                st->len = be24(h + 3);
                st->type = h[6];
            }
            if (fmt == 0)
                st->msid = (uint32_t)h[7] | (uint32_t)h[8] << 8 |
                           (uint32_t)h[9] << 16 | (uint32_t)h[10] << 24;
            if (st->ext) {
                if (read_full(c->fd, b, 4, deadline))
                    return -1;
                field = be32(b);
            }
            if (fmt == 0) {
                st->ts = field;
                st->delta = 0;
            } else {
                st->delta = field;
                st->ts += field;
            }
        } else {
            if (st->ext && read_full(c->fd, b, 4, deadline))
                return -1;
            if (starting)
                st->ts += st->delta;
        }
        if (st->len > MAX_RTMP_MSG) {
            fprintf(stderr, "bench_latency: oversized RTMP message\n");
            return -1;
        }
        if (starting) {
            free(st->buf);
            st->buf = malloc(st->len ? st->len : 1);
            if (!st->buf)
                return -1;
        }
        uint32_t n = st->len - st->got;
        if (n > c->in_chunk)
            n = c->in_chunk;
        if (n && read_full(c->fd, st->buf + st->got, n, deadline))
            return -1;
        st->got += n;
        if (st->got == st->len) {
            st->got = 0;
            *type = st->type;
            *msg = st->buf;
            *len = st->len;
            return 0;
        }
    }
}

/* AMF0 writer over a fixed buffer; overflow is sticky. */
typedef struct {
    uint8_t b[2048];
    size_t n;
    bool overflow;
} amf_w_t;

static void aw_bytes(amf_w_t *w, const void *p, size_t n)
{
    if (w->overflow || n > sizeof(w->b) - w->n) {
        w->overflow = true;
        return;
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void aw_u8(amf_w_t *w, uint8_t v) { aw_bytes(w, &v, 1); }
static void aw_u16s(amf_w_t *w, const char *s) /* u16 length + bytes */
{
    size_t l = strlen(s);
    uint8_t h[2] = {(uint8_t)(l >> 8), (uint8_t)l};
    aw_bytes(w, h, 2);
    aw_bytes(w, s, l);
}
static void aw_str(amf_w_t *w, const char *s)
{
    aw_u8(w, 0x02);
    aw_u16s(w, s);
}
static void aw_num(amf_w_t *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    uint8_t b[9];
    b[0] = 0x00;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
    aw_bytes(w, b, 9);
}
static void aw_null(amf_w_t *w) { aw_u8(w, 0x05); }
static void aw_obj_end(amf_w_t *w)
{
    static const uint8_t e[3] = {0, 0, 9};
    aw_bytes(w, e, 3);
}

/* AMF0 reader: bounded, depth-limited. */
typedef struct {
    const uint8_t *p;
    size_t n, off;
} amf_r_t;

static int ar_skip(amf_r_t *r, int depth);

static int ar_props(amf_r_t *r, int depth, const char *want, char *out,
                    size_t outlen, double *num_out)
{
    for (;;) {
        if (r->n - r->off < 2)
            return -1;
        size_t kl = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
        r->off += 2;
        if (kl == 0) {
            if (r->off < r->n && r->p[r->off] == 0x09) {
                r->off++;
                return 0;
            }
            return -1;
        }
        if (r->n - r->off < kl)
            return -1;
        bool match = want && strlen(want) == kl &&
                     memcmp(r->p + r->off, want, kl) == 0;
        r->off += kl;
        if (match && r->off < r->n && r->p[r->off] == 0x02 && out) {
            if (r->n - r->off < 3)
                return -1;
            size_t sl = (size_t)r->p[r->off + 1] << 8 | r->p[r->off + 2];
            if (r->n - r->off - 3 < sl)
                return -1;
            size_t cl = sl < outlen - 1 ? sl : outlen - 1;
            memcpy(out, r->p + r->off + 3, cl);
            out[cl] = 0;
        }
        if (match && r->off < r->n && r->p[r->off] == 0x00 && num_out &&
            r->n - r->off >= 9) {
            uint64_t u = be64(r->p + r->off + 1);
            memcpy(num_out, &u, 8);
        }
        if (ar_skip(r, depth + 1))
            return -1;
    }
}

static int ar_skip(amf_r_t *r, int depth)
{
    if (depth > 16 || r->off >= r->n)
        return -1;
    uint8_t t = r->p[r->off++];
    size_t left = r->n - r->off;
    switch (t) {
    case 0x00: /* number */
        if (left < 8)
            return -1;
        r->off += 8;
        return 0;
    case 0x01: /* boolean */
        if (left < 1)
            return -1;
        r->off += 1;
        return 0;
    case 0x02: { /* string */
        if (left < 2)
            return -1;
        size_t l = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
        if (left - 2 < l)
            return -1;
        r->off += 2 + l;
        return 0;
    }
    case 0x03: /* object */
        return ar_props(r, depth, NULL, NULL, 0, NULL);
    case 0x05: /* null */
    case 0x06: /* undefined */
        return 0;
    case 0x08: /* ECMA array */
        if (left < 4)
            return -1;
        r->off += 4;
        return ar_props(r, depth, NULL, NULL, 0, NULL);
    case 0x0a: { /* strict array */
        if (left < 4)
            return -1;
        uint32_t cnt = be32(r->p + r->off);
        r->off += 4;
        for (uint32_t i = 0; i < cnt; i++)
            if (ar_skip(r, depth + 1))
                return -1;
        return 0;
    }
    case 0x0b: /* date */
        if (left < 10)
            return -1;
        r->off += 10;
        return 0;
    case 0x0c: { /* long string */
        if (left < 4)
            return -1;
        uint32_t l = be32(r->p + r->off);
        if (left - 4 < l)
            return -1;
        r->off += 4 + l;
        return 0;
    }
    default:
        return -1;
    }
}

static int ar_str(amf_r_t *r, char *out, size_t outlen)
{
    if (r->n - r->off < 3 || r->p[r->off] != 0x02)
        return -1;
    size_t l = (size_t)r->p[r->off + 1] << 8 | r->p[r->off + 2];
    if (r->n - r->off - 3 < l)
        return -1;
    size_t cl = l < outlen - 1 ? l : outlen - 1;
    memcpy(out, r->p + r->off + 3, cl);
    out[cl] = 0;
    r->off += 3 + l;
    return 0;
}

static int ar_num(amf_r_t *r, double *d)
{
    if (r->n - r->off < 9 || r->p[r->off] != 0x00)
        return -1;
    uint64_t u = be64(r->p + r->off + 1);
    memcpy(d, &u, 8);
    r->off += 9;
    return 0;
}

/* A decoded command: name, transaction id, and what we need of the rest. */
typedef struct {
    char name[64];
    double txn;
    double num;          /* first number after the command object */
    char code[128];      /* info object "code" (onStatus/_error) */
    char desc[256];      /* info object "description" */
} rtmp_cmd_t;

static int parse_cmd(const uint8_t *p, uint32_t len, rtmp_cmd_t *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->num = -1;
    amf_r_t r = {.p = p, .n = len};
    if (ar_str(&r, cmd->name, sizeof(cmd->name)) || ar_num(&r, &cmd->txn))
        return -1;
    /* the rest: command object (or null), then arguments */
    while (r.off < r.n) {
        uint8_t t = r.p[r.off];
        if (t == 0x00 && cmd->num < 0) {
            if (ar_num(&r, &cmd->num))
                return -1;
        } else if (t == 0x03) {
            size_t save = r.off;
            r.off++;
            if (ar_props(&r, 0, "code", cmd->code, sizeof(cmd->code), NULL))
                return -1;
            size_t end = r.off;
            r.off = save + 1;
            if (ar_props(&r, 0, "description", cmd->desc, sizeof(cmd->desc),
                         NULL))
                return -1;
            r.off = end;
        } else if (ar_skip(&r, 0)) {
            return -1;
        }
    }
    return 0;
}

/* Reads messages until a command named one of want1/want2 (or _error)
 * with transaction txn (txn < 0: any) arrives. Answers pings, follows the
 * peer's chunk size. */
static int rtmp_wait_cmd(rtmp_t *c, const char *want, double txn,
                         rtmp_cmd_t *cmd, int timeout_ms)
{
    int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        uint8_t type;
        const uint8_t *m;
        uint32_t len;
        if (rtmp_read_msg(c, &type, &m, &len, deadline)) {
            fprintf(stderr, "bench_latency: no '%s' from the server\n", want);
            return -1;
        }
        if (type == 1 && len >= 4) {
            uint32_t cs = be32(m) & 0x7fffffff;
            if (cs < 1 || cs > MAX_RTMP_MSG)
                return -1;
            c->in_chunk = cs;
        } else if (type == 4 && len >= 6 && m[0] == 0 && m[1] == 6) {
            uint8_t pong[6] = {0, 7, m[2], m[3], m[4], m[5]};
            if (rtmp_send(c, 2, 4, 0, 0, pong, sizeof(pong)))
                return -1;
        } else if (type == 20) {
            if (parse_cmd(m, len, cmd)) {
                fprintf(stderr, "bench_latency: bad AMF0 command\n");
                continue;
            }
            if (strcmp(cmd->name, "_error") == 0 &&
                (txn < 0 || cmd->txn == txn)) {
                fprintf(stderr, "bench_latency: server refused: %s %s\n",
                        cmd->code, cmd->desc);
                return -1;
            }
            if (strcmp(cmd->name, want) == 0 && (txn < 0 || cmd->txn == txn))
                return 0;
        }
    }
}

/* Connects and publishes live/<name>. Returns the message stream id or -1. */
static int rtmp_publish(rtmp_t *c, int port, const char *app,
                        const char *name)
{
    memset(c, 0, sizeof(*c));
    c->in_chunk = 128;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
        fprintf(stderr, "bench_latency: connect 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        return -1;
    }
    /* plain handshake: C0 C1, S0 S1, C2 (echo of S1), S2 */
    static uint8_t hs[1 + 1536];
    hs[0] = 3;
    memset(hs + 1, 0, 8);
    for (size_t i = 9; i < sizeof(hs); i++)
        hs[i] = (uint8_t)rand();
    int64_t dl = now_us() + 5000000;
    if (write_all(c->fd, hs, sizeof(hs)))
        return -1;
    static uint8_t s01[1 + 1536], s2[1536];
    if (read_full(c->fd, s01, sizeof(s01), dl)) {
        fprintf(stderr, "bench_latency: handshake: no S0/S1\n");
        return -1;
    }
    if (s01[0] != 3) {
        fprintf(stderr, "bench_latency: handshake: S0 version %u\n", s01[0]);
        return -1;
    }
    if (write_all(c->fd, s01 + 1, 1536) || read_full(c->fd, s2, 1536, dl)) {
        fprintf(stderr, "bench_latency: handshake: no S2\n");
        return -1;
    }

    uint8_t cs[4];
    put_be32(cs, OUT_CHUNK);
    if (rtmp_send(c, 2, 1, 0, 0, cs, 4))
        return -1;

    char tc[128];
    snprintf(tc, sizeof(tc), "rtmp://127.0.0.1:%d/%s", port, app);
    amf_w_t w = {0};
    aw_str(&w, "connect");
    aw_num(&w, 1);
    aw_u8(&w, 0x03);
    aw_u16s(&w, "app");
    aw_str(&w, app);
    aw_u16s(&w, "type");
    aw_str(&w, "nonprivate");
    aw_u16s(&w, "flashVer");
    aw_str(&w, "FMLE/3.0 (compatible; podium-bench)");
    aw_u16s(&w, "tcUrl");
    aw_str(&w, tc);
    aw_obj_end(&w);
    if (w.overflow || rtmp_send(c, 3, 20, 0, 0, w.b, w.n))
        return -1;
    rtmp_cmd_t cmd;
    if (rtmp_wait_cmd(c, "_result", 1, &cmd, 5000))
        return -1;

    w = (amf_w_t){0};
    aw_str(&w, "createStream");
    aw_num(&w, 2);
    aw_null(&w);
    if (w.overflow || rtmp_send(c, 3, 20, 0, 0, w.b, w.n))
        return -1;
    if (rtmp_wait_cmd(c, "_result", 2, &cmd, 5000))
        return -1;
    if (cmd.num < 0 || cmd.num > 1e6) {
        fprintf(stderr, "bench_latency: createStream: no stream id\n");
        return -1;
    }
    uint32_t sid = (uint32_t)cmd.num;

    w = (amf_w_t){0};
    aw_str(&w, "publish");
    aw_num(&w, 3);
    aw_null(&w);
    aw_str(&w, name);
    aw_str(&w, "live");
    if (w.overflow || rtmp_send(c, 8, 20, sid, 0, w.b, w.n))
        return -1;
    for (;;) {
        if (rtmp_wait_cmd(c, "onStatus", -1, &cmd, 5000))
            return -1;
        if (strcmp(cmd.code, "NetStream.Publish.Start") == 0)
            break;
        if (strstr(cmd.code, "Publish.") || strstr(cmd.code, "Failed") ||
            strstr(cmd.code, "Rejected")) {
            fprintf(stderr, "bench_latency: publish refused: %s %s\n",
                    cmd.code, cmd.desc);
            return -1;
        }
    }
    return (int)sid;
}

/* Discards whatever the server sent (acks, pings) without blocking. */
static void rtmp_drain(rtmp_t *c)
{
    uint8_t junk[4096];
    while (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
    }
}

static void rtmp_close(rtmp_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->wbuf);
    c->wbuf = NULL;
    for (size_t i = 0; i < 16; i++) {
        free(c->in[i].buf);
        c->in[i].buf = NULL;
    }
}

/* ---- shared tables ---------------------------------------------------- */

typedef struct {
    int64_t msn, part;   /* address */
    double dur_s;        /* DURATION attribute, s */
    int64_t listed_us;   /* when a playlist first listed it */
    bool initial;        /* in the first playlist (time unknown) */
    int samples;         /* trun sample count, -1 unknown */
    int64_t tfdt;        /* first traf's tfdt, -1 unknown */
} part_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static part_t *g_parts;          /* MAX_PARTS, guarded by g_mu */
static size_t g_nparts;
static bool g_fetch_done;        /* no more parts will come */
static int64_t *g_frame_us;      /* send time of video frame i */
static atomic_size_t g_nframes;  /* frames sent */
static int64_t g_timescale = -1; /* video track timescale (its init) */

static char g_base[256];         /* http://127.0.0.1:P/live/NAME/source/ */
static char g_map_uri[128];      /* the first EXT-X-MAP URI seen (g_mu) */

/* follower statistics */
static int g_http_errors, g_early, g_gaps;

/* ---- HTTP (libcurl) --------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} body_t;

static size_t body_cb(char *ptr, size_t sz, size_t nm, void *ud)
{
    body_t *b = ud;
    size_t n = sz * nm;
    if (b->n + n + 1 > MAX_HTTP_BODY)
        return 0;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

static int abort_cb(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                    curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&g_follow_stop) ? 1 : 0;
}

static CURL *http_new(body_t *b, bool abortable)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (abortable) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_cb);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    return h;
}

/* GET url into b; returns the HTTP status or -1. */
static long http_get(CURL *h, body_t *b, const char *url)
{
    b->n = 0;
    if (b->p)
        b->p[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (curl_easy_perform(h) != CURLE_OK)
        return -1;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* ---- playlist parsing ------------------------------------------------- */

typedef struct {
    int64_t msn, part;
    double dur_s;
} pl_part_t;

typedef struct {
    pl_part_t parts[MAX_PL_PARTS];
    size_t nparts;
    bool has_hint;
    int64_t hint_msn, hint_part;
    char map_uri[128];   /* the last EXT-X-MAP URI ("" none) */
    bool ended;
} playlist_t;

/* Parses "<msn>.<part>.m4s" (the last path element of uri). */
static bool parse_part_uri(const char *uri, size_t len, int64_t *msn,
                           int64_t *part)
{
    const char *s = uri, *end = uri + len;
    for (const char *q = uri; q < end; q++)
        if (*q == '/')
            s = q + 1;
    char tmp[64];
    size_t l = (size_t)(end - s);
    if (l == 0 || l >= sizeof(tmp))
        return false;
    memcpy(tmp, s, l);
    tmp[l] = 0;
    char *e;
    errno = 0;
    long long m = strtoll(tmp, &e, 10);
    if (errno || e == tmp || *e != '.')
        return false;
    char *s2 = e + 1;
    long long p = strtoll(s2, &e, 10);
    if (errno || e == s2 || strcmp(e, ".m4s") != 0 || m < 0 || p < 0)
        return false;
    *msn = m;
    *part = p;
    return true;
}

/* Finds ATTR="value" (quoted) in an attribute list line. */
static bool attr_quoted(const char *line, const char *attr, const char **v,
                        size_t *vlen)
{
    size_t al = strlen(attr);
    for (const char *q = line; (q = strstr(q, attr)) != NULL; q += al) {
        if (q != line && q[-1] != ',' && q[-1] != ':')
            continue;
        if (q[al] != '=' || q[al + 1] != '"')
            continue;
        const char *s = q + al + 2;
        const char *e = strchr(s, '"');
        if (!e)
            return false;
        *v = s;
        *vlen = (size_t)(e - s);
        return true;
    }
    return false;
}

static bool attr_num(const char *line, const char *attr, double *out)
{
    size_t al = strlen(attr);
    for (const char *q = line; (q = strstr(q, attr)) != NULL; q += al) {
        if (q != line && q[-1] != ',' && q[-1] != ':')
            continue;
        if (q[al] != '=')
            continue;
        char *e;
        errno = 0;
        double d = strtod(q + al + 1, &e);
        if (errno || e == q + al + 1)
            return false;
        *out = d;
        return true;
    }
    return false;
}

static void parse_playlist(char *text, playlist_t *pl)
{
    pl->nparts = 0;
    pl->has_hint = false;
    pl->ended = false;
    pl->map_uri[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        const char *v;
        size_t vl;
        if (strncmp(line, "#EXT-X-PART:", 12) == 0) {
            pl_part_t pp = {0};
            if (!attr_quoted(line + 12, "URI", &v, &vl) ||
                !parse_part_uri(v, vl, &pp.msn, &pp.part))
                continue;
            if (!attr_num(line + 12, "DURATION", &pp.dur_s))
                pp.dur_s = 0;
            if (pl->nparts < MAX_PL_PARTS)
                pl->parts[pl->nparts++] = pp;
        } else if (strncmp(line, "#EXT-X-PRELOAD-HINT:", 20) == 0) {
            if (strstr(line, "TYPE=PART") &&
                attr_quoted(line + 20, "URI", &v, &vl) &&
                parse_part_uri(v, vl, &pl->hint_msn, &pl->hint_part))
                pl->has_hint = true;
        } else if (strncmp(line, "#EXT-X-MAP:", 11) == 0) {
            /* init sections are "init-<n>.mp4": take the playlist's */
            if (attr_quoted(line + 11, "URI", &v, &vl) &&
                vl < sizeof(pl->map_uri)) {
                memcpy(pl->map_uri, v, vl);
                pl->map_uri[vl] = '\0';
            }
        } else if (strcmp(line, "#EXT-X-ENDLIST") == 0) {
            pl->ended = true;
        }
    }
}

static bool part_after(int64_t m1, int64_t p1, int64_t m2, int64_t p2)
{
    return m1 > m2 || (m1 == m2 && p1 > p2);
}

/* ---- follower and fetcher threads ------------------------------------- */

/* Appends the parts of pl newer than the last known, listed at t. */
static void record_parts(const playlist_t *pl, int64_t t, bool initial)
{
    pthread_mutex_lock(&g_mu);
    if (pl->map_uri[0] && !g_map_uri[0])
        snprintf(g_map_uri, sizeof(g_map_uri), "%s", pl->map_uri);
    for (size_t i = 0; i < pl->nparts; i++) {
        const pl_part_t *pp = &pl->parts[i];
        if (g_nparts > 0) {
            const part_t *last = &g_parts[g_nparts - 1];
            if (!part_after(pp->msn, pp->part, last->msn, last->part))
                continue;
            bool next = (pp->msn == last->msn && pp->part == last->part + 1) ||
                        (pp->msn == last->msn + 1 && pp->part == 0);
            if (!next)
                g_gaps++;
        }
        if (g_nparts >= MAX_PARTS)
            break;
        g_parts[g_nparts++] = (part_t){.msn = pp->msn,
                                       .part = pp->part,
                                       .dur_s = pp->dur_s,
                                       .listed_us = t,
                                       .initial = initial,
                                       .samples = -1,
                                       .tfdt = -1};
    }
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void *follower_main(void *arg)
{
    (void)arg;
    static playlist_t pl;
    body_t b = {0};
    CURL *h = http_new(&b, true);
    char url[512];
    if (!h)
        goto out;
    /* wait for the stream's first playlist */
    int64_t deadline = now_us() + 20000000;
    snprintf(url, sizeof(url), "%sindex.m3u8", g_base);
    for (;;) {
        if (atomic_load(&g_follow_stop))
            goto out;
        long code = http_get(h, &b, url);
        int64_t t = now_us();
        if (code == 200 && b.p) {
            parse_playlist(b.p, &pl);
            if (pl.nparts > 0) {
                record_parts(&pl, t, true);
                break;
            }
        }
        if (t > deadline) {
            fprintf(stderr, "bench_latency: no playlist with parts at %s "
                            "after 20 s (last status %ld)\n", url, code);
            goto out;
        }
        sleep_ms(5);
    }
    while (!atomic_load(&g_follow_stop) && !pl.ended) {
        int64_t m, p;
        if (pl.has_hint) {
            m = pl.hint_msn;
            p = pl.hint_part;
        } else {
            pthread_mutex_lock(&g_mu);
            m = g_parts[g_nparts - 1].msn;
            p = g_parts[g_nparts - 1].part + 1;
            pthread_mutex_unlock(&g_mu);
        }
        snprintf(url, sizeof(url), "%sindex.m3u8?_HLS_msn=%" PRId64
                 "&_HLS_part=%" PRId64, g_base, m, p);
        long code = http_get(h, &b, url);
        int64_t t = now_us();
        if (atomic_load(&g_follow_stop))
            break;
        if (code != 200 || !b.p) {
            g_http_errors++;
            sleep_ms(10);
            continue;
        }
        parse_playlist(b.p, &pl);
        bool has = false;
        for (size_t i = 0; i < pl.nparts; i++)
            if (!part_after(m, p, pl.parts[i].msn, pl.parts[i].part))
                has = true;
        if (!has) {
            /* answered without the part it was asked to wait for */
            g_early++;
            sleep_ms(1);
        }
        record_parts(&pl, t, false);
    }
out:
    if (h)
        curl_easy_cleanup(h);
    free(b.p);
    return NULL;
}

/* Sums trun sample counts, takes the first tfdt and the mdhd timescale. */
static void scan_boxes(const uint8_t *p, size_t n, int depth, int *samples,
                       int64_t *tfdt, int64_t *timescale)
{
    size_t off = 0;
    while (n - off >= 8) {
        uint64_t size = be32(p + off);
        size_t hdr = 8;
        if (size == 1) {
            if (n - off < 16)
                return;
            size = be64(p + off + 8);
            hdr = 16;
        } else if (size == 0) {
            size = n - off;
        }
        if (size < hdr || size > n - off)
            return;
        const uint8_t *type = p + off + 4;
        const uint8_t *body = p + off + hdr;
        size_t blen = (size_t)size - hdr;
        if (depth < 8 && (!memcmp(type, "moof", 4) || !memcmp(type, "traf", 4) ||
                          !memcmp(type, "moov", 4) || !memcmp(type, "trak", 4) ||
                          !memcmp(type, "mdia", 4))) {
            scan_boxes(body, blen, depth + 1, samples, tfdt, timescale);
        } else if (!memcmp(type, "trun", 4) && blen >= 8) {
            *samples += (int)be32(body + 4);
        } else if (!memcmp(type, "tfdt", 4) && blen >= 8 && *tfdt < 0) {
            if (body[0] == 1 && blen >= 12)
                *tfdt = (int64_t)be64(body + 4);
            else
                *tfdt = be32(body + 4);
        } else if (!memcmp(type, "mdhd", 4) && blen >= 4 && timescale) {
            size_t o = body[0] == 1 ? 4 + 16 : 4 + 8;
            if (blen >= o + 4)
                *timescale = be32(body + o);
        }
        off += (size_t)size;
    }
}

static void *fetcher_main(void *arg)
{
    (void)arg;
    body_t b = {0};
    CURL *h = http_new(&b, false);
    char url[512];
    if (!h)
        return NULL;
    size_t next = 0;
    bool have_init = false;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        while (next >= g_nparts && !g_fetch_done)
            pthread_cond_wait(&g_cv, &g_mu);
        if (next >= g_nparts) {
            pthread_mutex_unlock(&g_mu);
            break;
        }
        int64_t m = g_parts[next].msn, p = g_parts[next].part;
        char map[sizeof(g_map_uri)];
        snprintf(map, sizeof(map), "%s", g_map_uri);
        pthread_mutex_unlock(&g_mu);
        if (!have_init && map[0]) {
            snprintf(url, sizeof(url), "%s%s", g_base, map);
            if (http_get(h, &b, url) == 200 && b.p) {
                int s = 0;
                int64_t tf = -1, ts = -1;
                scan_boxes((const uint8_t *)b.p, b.n, 0, &s, &tf, &ts);
                g_timescale = ts;
            }
            have_init = true;
        }
        snprintf(url, sizeof(url), "%s%" PRId64 ".%" PRId64 ".m4s", g_base, m,
                 p);
        int samples = -1;
        int64_t tfdt = -1;
        if (http_get(h, &b, url) == 200 && b.p) {
            samples = 0;
            scan_boxes((const uint8_t *)b.p, b.n, 0, &samples, &tfdt, NULL);
        }
        pthread_mutex_lock(&g_mu);
        g_parts[next].samples = samples;
        g_parts[next].tfdt = tfdt;
        pthread_mutex_unlock(&g_mu);
        next++;
    }
    curl_easy_cleanup(h);
    free(b.p);
    return NULL;
}

/* ---- publishing ------------------------------------------------------- */

/* Sends the file's tags paced in real time for `seconds` (0: until
 * stopped), looping the file with a timestamp offset when it runs out. */
static int publish_paced(rtmp_t *c, uint32_t sid, const flv_t *f,
                         double seconds)
{
    int64_t t0 = now_us();
    uint32_t off = 0;
    int64_t last_audio = -1; /* ts of the last audio tag sent */
    static const uint8_t setdf[] = {0x02, 0, 13, '@', 's', 'e', 't', 'D', 'a',
                                    't', 'a', 'F', 'r', 'a', 'm', 'e'};
    for (int loop = 0;; loop++) {
        for (size_t i = 0; i < f->ntags; i++) {
            const flv_tag_t *t = &f->tags[i];
            bool vframe = false;
            if (t->type == 18) {
                if (loop > 0)
                    continue;
                uint8_t *m = malloc(sizeof(setdf) + t->len);
                if (!m)
                    return -1;
                memcpy(m, setdf, sizeof(setdf));
                memcpy(m + sizeof(setdf), t->data, t->len);
                int r = rtmp_send(c, 4, 18, sid, 0, m, sizeof(setdf) + t->len);
                free(m);
                if (r)
                    return -1;
                continue;
            } else if (t->type == 9) {
                if (t->len < 2 || t->data[1] == 2)
                    continue; /* end of sequence */
                if (t->data[1] == 0 && loop > 0)
                    continue; /* sequence header: once */
                vframe = flv_is_video_frame(t);
            } else if (t->type == 8) {
                if (t->len < 2)
                    continue;
                if ((t->data[0] >> 4) == 10 && t->data[1] == 0 && loop > 0)
                    continue;
                /* the file's audio may run past its video: keep audio
                 * timestamps increasing across a loop */
                if ((int64_t)t->ts_ms + off <= last_audio)
                    continue;
                last_audio = (int64_t)t->ts_ms + off;
            } else {
                continue;
            }
            uint32_t ts = t->ts_ms + off;
            if (seconds > 0 && ts >= seconds * 1000)
                return 0;
            if (atomic_load(&g_stop))
                return 0;
            rtmp_drain(c);
            sleep_until_us(t0 + (int64_t)ts * 1000);
            if (rtmp_send(c, t->type == 9 ? 6 : 5, t->type, sid, ts, t->data,
                          t->len)) {
                fprintf(stderr, "bench_latency: RTMP send failed: %s\n",
                        strerror(errno));
                return -1;
            }
            if (vframe) {
                int64_t sent = now_us();
                size_t n = atomic_load(&g_nframes);
                if (g_frame_us && n < MAX_FRAMES) {
                    g_frame_us[n] = sent;
                    atomic_store(&g_nframes, n + 1);
                }
            }
        }
        off += f->loop_ms;
    }
}

/* ---- statistics ------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n], in ms. */
static double pct_ms(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t k = (size_t)ceil(q / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_latency -f FILE.flv -r RTMP_PORT [-H HTTP_PORT]\n"
            "                     [-n NAME] [-d SECONDS] [-P]\n"
            "  -d  measured seconds (default 60; a %.0f s warm-up and a "
            "%.0f s tail are added)\n"
            "  -P  publish only (loop the file) for -d seconds, 0 = until "
            "SIGTERM\n", WARMUP_S, TAIL_S);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *name = "bench";
    int rtmp_port = 0, http_port = 0, opt;
    double seconds = 60;
    bool publish_only = false;
    while ((opt = getopt(argc, argv, "f:r:H:n:d:P")) != -1) {
        char *e;
        switch (opt) {
        case 'f': file = optarg; break;
        case 'n': name = optarg; break;
        case 'P': publish_only = true; break;
        case 'r':
        case 'H': {
            long v = strtol(optarg, &e, 10);
            if (*e || v <= 0 || v > 65535) {
                usage();
                return 2;
            }
            if (opt == 'r')
                rtmp_port = (int)v;
            else
                http_port = (int)v;
            break;
        }
        case 'd':
            seconds = strtod(optarg, &e);
            if (*e || seconds < 0 || seconds > 86400) {
                usage();
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!file || !rtmp_port || (!publish_only && !http_port) ||
        strlen(name) > 100 || strchr(name, '/')) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    srand((unsigned)now_us());

    static flv_t f;
    if (flv_load(file, &f))
        return 1;

    rtmp_t c;
    if (publish_only) {
        int sid = rtmp_publish(&c, rtmp_port, "live", name);
        if (sid < 0)
            return 1;
        int r = publish_paced(&c, (uint32_t)sid, &f, seconds);
        rtmp_close(&c);
        return r ? 1 : 0;
    }

    double fps = 1000.0 / f.frame_ms;
    g_parts = calloc(MAX_PARTS, sizeof(*g_parts));
    g_frame_us = calloc(MAX_FRAMES, sizeof(*g_frame_us));
    if (!g_parts || !g_frame_us)
        return 1;
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d/live/%s/source/",
             http_port, name);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    pthread_t fol, fet;
    pthread_create(&fol, NULL, follower_main, NULL);
    pthread_create(&fet, NULL, fetcher_main, NULL);

    int rc = 0;
    int sid = rtmp_publish(&c, rtmp_port, "live", name);
    int64_t t_pub = now_us();
    if (sid < 0) {
        rc = 1;
    } else if (publish_paced(&c, (uint32_t)sid, &f,
                             WARMUP_S + seconds + TAIL_S)) {
        rc = 1;
    }
    /* stop following before the publisher leaves: unpublishing closes the
     * part in progress early, which is not what we measure */
    atomic_store(&g_follow_stop, true);
    pthread_join(fol, NULL);
    if (sid >= 0)
        rtmp_close(&c);
    pthread_mutex_lock(&g_mu);
    g_fetch_done = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(fet, NULL);
    if (rc)
        return rc;

    /* map parts to frames */
    size_t nframes = atomic_load(&g_nframes);
    int64_t win_lo = t_pub + (int64_t)(WARMUP_S * 1e6);
    int64_t win_hi = win_lo + (int64_t)(seconds * 1e6);
    int64_t *last_lat = calloc(g_nparts + 1, sizeof(int64_t));
    int64_t *frame_lat = calloc(nframes + 1, sizeof(int64_t));
    int64_t *ival = calloc(g_nparts + 1, sizeof(int64_t));
    if (!last_lat || !frame_lat || !ival)
        return 1;
    size_t nlast = 0, nfl = 0, nival = 0, fallback = 0, overflow = 0;
    size_t negative = 0, tfdt_mismatch = 0, counted_frames = 0;
    size_t parts_in_window = 0;
    int64_t cum = 0, tfdt0 = -1, min_lat = INT64_MAX, max_lat = INT64_MIN;
    int samples_min = 1 << 30, samples_max = 0;
    if (g_nparts > 0 && g_parts[0].part != 0)
        fprintf(stderr, "bench_latency: warning: first listed part is %" PRId64
                ".%" PRId64 ", not a segment's part 0; the frame mapping "
                "assumes it holds the first frame\n", g_parts[0].msn,
                g_parts[0].part);
    for (size_t i = 0; i < g_nparts; i++) {
        part_t *pt = &g_parts[i];
        int n = pt->samples;
        if (n <= 0) {
            n = (int)lround(pt->dur_s * fps);
            fallback++;
        }
        if (pt->tfdt >= 0 && tfdt0 < 0)
            tfdt0 = pt->tfdt;
        if (pt->tfdt >= 0 && g_timescale > 0) {
            double idx = (double)(pt->tfdt - tfdt0) * fps / (double)g_timescale;
            if (llabs(llround(idx) - cum) > 0)
                tfdt_mismatch++;
        }
        int64_t first = cum, last = cum + n - 1;
        cum += n;
        if (n > 0 && n < samples_min)
            samples_min = n;
        if (n > samples_max)
            samples_max = n;
        if (i > 0 && !pt->initial && !g_parts[i - 1].initial &&
            pt->listed_us != g_parts[i - 1].listed_us &&
            g_frame_us[first] >= win_lo && (size_t)last < nframes &&
            g_frame_us[last] < win_hi)
            ival[nival++] = pt->listed_us - g_parts[i - 1].listed_us;
        if ((size_t)last >= nframes) {
            overflow++;
            continue;
        }
        if (pt->initial || g_frame_us[first] < win_lo ||
            g_frame_us[last] >= win_hi)
            continue;
        parts_in_window++;
        int64_t l = pt->listed_us - g_frame_us[last];
        if (l < 0)
            negative++;
        last_lat[nlast++] = l;
        if (l < min_lat)
            min_lat = l;
        if (l > max_lat)
            max_lat = l;
        for (int64_t k = first; k <= last; k++)
            frame_lat[nfl++] = pt->listed_us - g_frame_us[k];
        counted_frames += (size_t)n;
    }
    qsort(last_lat, nlast, sizeof(int64_t), cmp_i64);
    qsort(frame_lat, nfl, sizeof(int64_t), cmp_i64);
    qsort(ival, nival, sizeof(int64_t), cmp_i64);

    printf("ingest-to-availability, video rendition, %.0f s measured after a "
           "%.0f s warm-up\n", seconds, WARMUP_S);
    printf("  source: %zu video frames in the file, %.3f fps; sent %zu "
           "frames; %zu parts listed, %zu in the window (%zu frames)\n",
           f.nvideo, fps, nframes, g_nparts, parts_in_window, counted_frames);
    printf("  frames per part: %d..%d (from trun sample counts%s)\n",
           samples_min, samples_max,
           fallback ? ", some from DURATION" : "");
    printf("  A. part listed - send of the part's LAST frame (what a player "
           "waiting on the\n     blocking reload sees beyond the part's own "
           "duration):\n"
           "       p50 %7.1f ms   p99 %7.1f ms   min %.1f  max %.1f  "
           "(n=%zu parts)\n",
           pct_ms(last_lat, nlast, 50), pct_ms(last_lat, nlast, 99),
           nlast ? (double)min_lat / 1000 : NAN,
           nlast ? (double)max_lat / 1000 : NAN, nlast);
    printf("     A minus one frame interval (%.1f ms): p50 %.1f ms  p99 %.1f ms"
           "\n     (a part is complete only when the frame after it arrives "
           "if the server\n     holds each frame until the next one gives "
           "its duration)\n", f.frame_ms,
           pct_ms(last_lat, nlast, 50) - f.frame_ms,
           pct_ms(last_lat, nlast, 99) - f.frame_ms);
    printf("  B. part listed - send of EACH frame in it (a frame's wait to "
           "become\n     available, including waiting for its part to fill):\n"
           "       p50 %7.1f ms   p99 %7.1f ms   (n=%zu frames)\n",
           pct_ms(frame_lat, nfl, 50), pct_ms(frame_lat, nfl, 99), nfl);
    printf("  part listing interval: p50 %.1f ms  p99 %.1f ms\n",
           pct_ms(ival, nival, 50), pct_ms(ival, nival, 99));
    if (g_http_errors || g_early || g_gaps || fallback || overflow ||
        negative || tfdt_mismatch)
        printf("  checks: http errors %d, blocking answers without the "
               "awaited part %d, gaps in part sequence %d, parts without "
               "trun count %zu, parts beyond sent frames %zu, negative "
               "latencies %zu, tfdt/frame-count mismatches %zu\n",
               g_http_errors, g_early, g_gaps, fallback, overflow, negative,
               tfdt_mismatch);
    else
        printf("  checks: no HTTP errors, every blocking answer held the "
               "awaited part, no gaps, trun counts agree with tfdt\n");
    printf("RESULT lat_last_p50_ms=%.1f\n", pct_ms(last_lat, nlast, 50));
    printf("RESULT lat_last_p99_ms=%.1f\n", pct_ms(last_lat, nlast, 99));
    printf("RESULT lat_frame_p50_ms=%.1f\n", pct_ms(frame_lat, nfl, 50));
    printf("RESULT lat_frame_p99_ms=%.1f\n", pct_ms(frame_lat, nfl, 99));
    printf("RESULT lat_parts=%zu\n", nlast);
    printf("RESULT lat_frame_ms=%.1f\n", f.frame_ms);
    printf("RESULT lat_server_p50_ms=%.1f\n",
           pct_ms(last_lat, nlast, 50) - f.frame_ms);
    printf("RESULT lat_server_p99_ms=%.1f\n",
           pct_ms(last_lat, nlast, 99) - f.frame_ms);
    free(last_lat);
    free(frame_lat);
    free(ival);
    curl_global_cleanup();
    return nlast > 0 ? 0 : 1;
}
