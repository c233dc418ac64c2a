/*
 * tools/bench_waiters.c - how fast podium releases many held blocking
 * playlist requests when the part they wait for is published.
 *
 * Opens N keep-alive connections (raw non-blocking sockets, epoll) plus one
 * reference connection to podium's HTTP port on 127.0.0.1. Each round:
 * read the video playlist, pick a part about `ahead` parts beyond the
 * preload hint, send the blocking request for it
 * (index.m3u8?_HLS_msn=M&_HLS_part=P) on the reference connection and then
 * on all N, and time every complete response. The release spread of a
 * response is its arrival minus the first of the N to arrive; the total is
 * first-to-last. The reference waiter, asked first, approximates the
 * publication time. The spread includes this client's own reading time:
 * client and server share the machine.
 *
 * Only podium's public HTTP interface, only 127.0.0.1. Every wait has a
 * deadline; buffers have fixed limits. Times are CLOCK_MONOTONIC us.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX 2048          /* response header bytes kept per connection */
#define PL_MAX (1u << 20)     /* largest playlist read by the control GET */
#define CONNECT_BATCH 256     /* connects in flight at once */
#define MAX_N 200000

enum { C_CLOSED, C_CONNECTING, C_IDLE, C_WAITING };

typedef struct {
    int fd;
    int state;
    int tries;            /* connect attempts */
    char hdr[HDR_MAX];    /* header bytes so far */
    size_t hlen;
    bool in_body;
    int64_t body_left;    /* bytes */
    int64_t clen;         /* Content-Length of the last response */
    int status;           /* HTTP status of the last response */
    int64_t done_us;      /* when the last response completed */
} conn_t;

static int g_port;
static char g_name[128];
static int g_ep = -1;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

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

static struct sockaddr_in server_addr(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* ---- control: one blocking GET of the playlist ------------------------ */

/* GETs path with Connection: close; fills buf (NUL-terminated body).
 * Returns the HTTP status or -1. */
static int control_get(const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = server_addr();
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    char req[512];
    int l = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Connection: close\r\n\r\n", path, g_port);
    if (l < 0 || (size_t)l >= sizeof(req) ||
        send(fd, req, (size_t)l, MSG_NOSIGNAL) != l) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap)
            break;
        ssize_t g = recv(fd, buf + n, cap - 1 - n, 0);
        if (g < 0 && errno == EINTR)
            continue;
        if (g <= 0)
            break;
        n += (size_t)g;
        buf[n] = 0;
        /* stop at the end of the body even if the server keeps the
         * connection open */
        char *he = strstr(buf, "\r\n\r\n");
        if (he) {
            long long clen = -1;
            for (char *q = buf; (q = strstr(q, "\r\n")) != NULL && q < he;
                 q += 2) {
                if (strncasecmp(q + 2, "content-length:", 15) == 0) {
                    char *e;
                    errno = 0;
                    long long v = strtoll(q + 17, &e, 10);
                    if (!errno && e != q + 17 && v >= 0)
                        clen = v;
                }
            }
            if (clen >= 0 && (long long)n >= (he + 4 - buf) + clen)
                break;
        }
    }
    close(fd);
    buf[n] = 0;
    int status = -1;
    if (n > 12 && strncmp(buf, "HTTP/1.", 7) == 0) {
        char *e;
        long s = strtol(buf + 9, &e, 10);
        if (e != buf + 9 && s >= 100 && s < 600)
            status = (int)s;
    }
    char *body = strstr(buf, "\r\n\r\n");
    if (!body)
        return -1;
    body += 4;
    memmove(buf, body, strlen(body) + 1);
    return status;
}

typedef struct {
    bool has_hint;
    int64_t hint_msn, hint_part;
    int parts_per_seg;    /* most parts seen in a complete segment, 0 = ? */
    bool ended;
} plinfo_t;

static bool parse_part_uri(const char *s, int64_t *msn, int64_t *part)
{
    /* s points at the URI value, ends at '"' */
    const char *end = strchr(s, '"');
    if (!end)
        return false;
    const char *b = s;
    for (const char *q = s; q < end; q++)
        if (*q == '/')
            b = q + 1;
    char tmp[64];
    size_t l = (size_t)(end - b);
    if (l == 0 || l >= sizeof(tmp))
        return false;
    memcpy(tmp, b, l);
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

static void parse_playlist(char *text, plinfo_t *pi)
{
    memset(pi, 0, sizeof(*pi));
    int run = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (strncmp(line, "#EXT-X-PART:", 12) == 0) {
            run++;
        } else if (strncmp(line, "#EXTINF:", 8) == 0) {
            if (run > pi->parts_per_seg)
                pi->parts_per_seg = run;
            run = 0;
        } else if (strncmp(line, "#EXT-X-PRELOAD-HINT:", 20) == 0 &&
                   strstr(line, "TYPE=PART")) {
            const char *u = strstr(line, "URI=\"");
            if (u && parse_part_uri(u + 5, &pi->hint_msn, &pi->hint_part))
                pi->has_hint = true;
        } else if (strcmp(line, "#EXT-X-ENDLIST") == 0) {
            pi->ended = true;
        }
    }
}

static int get_plinfo(plinfo_t *pi)
{
    static char buf[PL_MAX];
    char path[256];
    snprintf(path, sizeof(path), "/live/%s/source/index.m3u8", g_name);
    int st = control_get(path, buf, sizeof(buf));
    if (st != 200)
        return -1;
    parse_playlist(buf, pi);
    return 0;
}

/* ---- connections ------------------------------------------------------ */

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
}

static int conn_start(conn_t *c, uint32_t idx)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        fprintf(stderr, "bench_waiters: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = server_addr();
    c->tries++;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) &&
        errno != EINPROGRESS) {
        fprintf(stderr, "bench_waiters: connect: %s\n", strerror(errno));
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = idx};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = C_CONNECTING;
    return 0;
}

/* Connects every closed connection; returns how many are idle. */
static size_t connect_all(conn_t *cs, size_t n, int timeout_ms)
{
    int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
    size_t next = 0, inflight = 0, idle = 0;
    int passes = 0;
    static struct epoll_event evs[1024];
    for (size_t i = 0; i < n; i++) {
        cs[i].tries = 0;
        if (cs[i].state == C_IDLE)
            idle++;
    }
    for (;;) {
        while (inflight < CONNECT_BATCH && next < n) {
            conn_t *c = &cs[next];
            if (c->state == C_CLOSED) {
                if (conn_start(c, (uint32_t)next))
                    return idle;
                inflight++;
            }
            next++;
        }
        if (inflight == 0 && next >= n) {
            if (idle >= n || ++passes >= 5)
                return idle;
            next = 0; /* some were dropped meanwhile: another pass */
        }
        int64_t left = deadline - now_us();
        if (left <= 0)
            return idle;
        int k = epoll_wait(g_ep, evs, 1024, (int)(left / 1000) + 1);
        if (k < 0 && errno != EINTR)
            return idle;
        for (int i = 0; i < k; i++) {
            conn_t *c = &cs[evs[i].data.u32];
            if (c->state == C_IDLE &&
                (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                conn_close(c); /* the server dropped an idle connection */
                idle--;
                continue;
            }
            if (c->state != C_CONNECTING)
                continue;
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            inflight--;
            if (err) {
                conn_close(c);
                if (c->tries < 5 && conn_start(c, evs[i].data.u32) == 0)
                    inflight++;
                else
                    fprintf(stderr, "bench_waiters: connect: %s\n",
                            strerror(err));
                continue;
            }
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                     .data.u32 = evs[i].data.u32};
            epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
            c->state = C_IDLE;
            idle++;
        }
    }
}

/* Feeds received bytes to c's response parser. Returns 1 when a response
 * completed, 0 when more is needed, -1 on a protocol error. */
static int conn_feed(conn_t *c, const char *p, size_t n, size_t *used)
{
    size_t off = 0;
    if (!c->in_body) {
        /* copy header bytes until CRLFCRLF */
        while (off < n && !c->in_body) {
            if (c->hlen >= HDR_MAX - 1)
                return -1;
            c->hdr[c->hlen++] = p[off++];
            if (c->hlen >= 4 && memcmp(c->hdr + c->hlen - 4, "\r\n\r\n", 4) == 0) {
                c->hdr[c->hlen] = 0;
                c->status = -1;
                if (c->hlen > 12 && strncmp(c->hdr, "HTTP/1.", 7) == 0)
                    c->status = (int)strtol(c->hdr + 9, NULL, 10);
                c->clen = -1;
                for (char *q = c->hdr; (q = strstr(q, "\r\n")) != NULL; q += 2) {
                    if (strncasecmp(q + 2, "content-length:", 15) == 0) {
                        char *e;
                        errno = 0;
                        long long v = strtoll(q + 17, &e, 10);
                        if (!errno && e != q + 17 && v >= 0)
                            c->clen = v;
                    }
                }
                if (c->clen < 0) {
                    fprintf(stderr, "bench_waiters: response without "
                                    "Content-Length (status %d)\n", c->status);
                    return -1;
                }
                c->in_body = true;
                c->body_left = c->clen;
            }
        }
    }
    if (c->in_body) {
        size_t take = n - off;
        if ((int64_t)take > c->body_left)
            take = (size_t)c->body_left;
        off += take;
        c->body_left -= (int64_t)take;
        *used = off;
        if (c->body_left == 0) {
            c->in_body = false;
            c->hlen = 0;
            return 1;
        }
        return 0;
    }
    *used = off;
    return 0;
}

/* ---- one round -------------------------------------------------------- */

typedef struct {
    double p50, p99, max, total, ref_total, held;
    size_t ok, bad_status, missing, early;
    int64_t clen_min, clen_max;
} round_t;

/* cs[0..n-1] are the waiters, cs[n] the reference. spreads gets the n
 * spreads (us) of this round appended at *nspread. */
static int run_round(conn_t *cs, size_t n, int64_t msn, int64_t part,
                     int64_t *spreads, size_t *nspread, round_t *r)
{
    memset(r, 0, sizeof(*r));
    char req[512];
    int l = snprintf(req, sizeof(req),
                     "GET /live/%s/source/index.m3u8?_HLS_msn=%" PRId64
                     "&_HLS_part=%" PRId64 " HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\n\r\n", g_name, msn, part, g_port);
    if (l < 0 || (size_t)l >= sizeof(req))
        return -1;
    size_t total = n + 1, waiting = 0;
    /* reference first, then the N */
    for (size_t k = 0; k < total; k++) {
        size_t i = k == 0 ? n : k - 1;
        conn_t *c = &cs[i];
        c->done_us = 0;
        c->hlen = 0;
        c->in_body = false;
        if (c->state != C_IDLE)
            continue;
        ssize_t w = send(c->fd, req, (size_t)l, MSG_NOSIGNAL);
        if (w != l) {
            conn_close(c);
            continue;
        }
        c->state = C_WAITING;
        waiting++;
    }
    int64_t t_sent = now_us();
    int64_t deadline = t_sent + 15000000;
    static struct epoll_event evs[1024];
    static char rbuf[65536];
    while (waiting > 0) {
        int64_t left = deadline - now_us();
        if (left <= 0)
            break;
        int k = epoll_wait(g_ep, evs, 1024, (int)(left / 1000) + 1);
        if (k < 0 && errno != EINTR)
            break;
        for (int e = 0; e < k; e++) {
            conn_t *c = &cs[evs[e].data.u32];
            if (c->state != C_WAITING) {
                if (evs[e].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    conn_close(c);
                continue;
            }
            for (;;) {
                ssize_t g = recv(c->fd, rbuf, sizeof(rbuf), 0);
                if (g < 0 && errno == EINTR)
                    continue;
                if (g < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (g <= 0) {
                    conn_close(c);
                    waiting--;
                    break;
                }
                size_t used = 0;
                int fr = conn_feed(c, rbuf, (size_t)g, &used);
                if (fr < 0) {
                    conn_close(c);
                    waiting--;
                    break;
                }
                if (fr == 1) {
                    c->done_us = now_us();
                    c->state = C_IDLE;
                    waiting--;
                    if (used != (size_t)g) {
                        fprintf(stderr, "bench_waiters: extra bytes after "
                                        "a response\n");
                        conn_close(c);
                    }
                    break;
                }
            }
        }
    }
    conn_t *ref = &cs[n];
    int64_t t_first = INT64_MAX, t_last = 0;
    r->clen_min = INT64_MAX;
    r->clen_max = -1;
    size_t base = *nspread;
    for (size_t i = 0; i < n; i++) {
        conn_t *c = &cs[i];
        if (!c->done_us) {
            r->missing++;
            continue;
        }
        if (c->status != 200)
            r->bad_status++;
        else
            r->ok++;
        if (c->clen < r->clen_min)
            r->clen_min = c->clen;
        if (c->clen > r->clen_max)
            r->clen_max = c->clen;
        if (c->done_us < t_first)
            t_first = c->done_us;
        if (c->done_us > t_last)
            t_last = c->done_us;
    }
    if (t_last == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (cs[i].done_us)
            spreads[(*nspread)++] = cs[i].done_us - t_first;
    qsort(spreads + base, *nspread - base, sizeof(int64_t), cmp_i64);
    size_t m = *nspread - base;
    r->p50 = pct_ms(spreads + base, m, 50);
    r->p99 = pct_ms(spreads + base, m, 99);
    r->max = (double)(t_last - t_first) / 1000.0;
    r->total = r->max;
    r->ref_total = ref->done_us ? (double)(t_last - ref->done_us) / 1000.0
                                : NAN;
    int64_t t0 = ref->done_us && ref->done_us < t_first ? ref->done_us
                                                         : t_first;
    r->held = (double)(t0 - t_sent) / 1000.0;
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_waiters -p HTTP_PORT -N WAITERS [-n NAME] "
                    "[-r ROUNDS] [-a AHEAD]\n"
                    "  -a  parts beyond the preload hint to wait for "
                    "(default 1; 2 for N >= 5000)\n");
}

static long arg_long(const char *s, long lo, long hi)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s || v < lo || v > hi)
        return lo - 1;
    return v;
}

int main(int argc, char **argv)
{
    long n = 1000, rounds = 5, ahead = -1;
    int opt;
    snprintf(g_name, sizeof(g_name), "bench");
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((opt = getopt(argc, argv, "p:N:n:r:a:")) != -1) {
        switch (opt) {
        case 'p': g_port = (int)arg_long(optarg, 1, 65535); break;
        case 'N': n = arg_long(optarg, 1, MAX_N); break;
        case 'r': rounds = arg_long(optarg, 1, 1000); break;
        case 'a': ahead = arg_long(optarg, 0, 8); if (ahead < 0) ahead = -2; break;
        case 'n':
            if (strlen(optarg) >= sizeof(g_name) || strchr(optarg, '/')) {
                usage();
                return 2;
            }
            snprintf(g_name, sizeof(g_name), "%s", optarg);
            break;
        default: usage(); return 2;
        }
    }
    if (g_port <= 0 || n <= 0 || rounds <= 0 || ahead == -2) {
        usage();
        return 2;
    }
    /* the server must have read and parked every request before the part
     * appears: give many waiters one more part (~PART-TARGET) of time */
    if (ahead < 0)
        ahead = n >= 5000 ? 2 : 1;

    /* file descriptors: N + reference + control + slack */
    struct rlimit rl;
    rlim_t need = (rlim_t)n + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        if (rl.rlim_max < need)
            rl.rlim_max = need; /* works as root */
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl)) {
            fprintf(stderr, "bench_waiters: cannot raise RLIMIT_NOFILE to "
                            "%lu: %s\n", (unsigned long)need, strerror(errno));
            return 1;
        }
    }

    g_ep = epoll_create1(0);
    conn_t *cs = calloc((size_t)n + 1, sizeof(*cs));
    int64_t *spreads = calloc((size_t)(n * rounds), sizeof(int64_t));
    double *totals = calloc((size_t)rounds, sizeof(double));
    double *refs = calloc((size_t)rounds, sizeof(double));
    if (g_ep < 0 || !cs || !spreads || !totals || !refs)
        return 1;
    for (long i = 0; i <= n; i++) {
        cs[i].fd = -1;
        cs[i].state = C_CLOSED;
    }

    /* the stream must be live and have complete segments with parts */
    plinfo_t pi;
    int64_t dl = now_us() + 20000000;
    for (;;) {
        if (get_plinfo(&pi) == 0 && pi.has_hint && pi.parts_per_seg > 0)
            break;
        if (now_us() > dl) {
            fprintf(stderr, "bench_waiters: no live playlist with complete "
                            "segments at /live/%s/source/index.m3u8\n", g_name);
            return 1;
        }
        usleep(100000);
    }

    int64_t t = now_us();
    size_t idle = connect_all(cs, (size_t)n + 1, 60000);
    printf("waiters N=%ld: %zu connections open in %.0f ms\n", n, idle,
           (double)(now_us() - t) / 1000.0);
    if (idle < (size_t)n + 1) {
        fprintf(stderr, "bench_waiters: only %zu of %ld connections open\n",
                idle, n + 1);
        return 1;
    }

    size_t nspread = 0, nrounds = 0, fails = 0;
    double worst_max = 0;
    /* round 0 is a warm-up on fresh connections (first-touch costs on both
     * sides), printed and discarded */
    for (long rd = -1; rd < rounds && fails < 5;) {
        size_t closed = 0;
        for (long i = 0; i <= n; i++)
            closed += cs[i].state == C_CLOSED;
        if (closed)
            printf("  (%zu connections were closed by the server after "
                   "their answer: reconnecting; keep-alive expected)\n",
                   closed);
        if (connect_all(cs, (size_t)n + 1, 30000) < (size_t)n + 1) {
            fprintf(stderr, "bench_waiters: reconnecting failed\n");
            return 1;
        }
        if (get_plinfo(&pi) || !pi.has_hint || pi.ended) {
            fprintf(stderr, "bench_waiters: playlist unavailable or ended\n");
            return 1;
        }
        int64_t m = pi.hint_msn, p = pi.hint_part + ahead;
        int k = pi.parts_per_seg > 0 ? pi.parts_per_seg : 1;
        while (p >= k) {
            p -= k;
            m++;
        }
        round_t r;
        size_t before = nspread;
        if (run_round(cs, (size_t)n, m, p, spreads, &nspread, &r)) {
            fprintf(stderr, "bench_waiters: round %ld: no answers\n", rd + 1);
            fails++;
            continue;
        }
        if (rd < 0)
            printf("  warm-up (discarded):");
        else
            printf("  round %ld:", rd + 1);
        printf(" waited for %" PRId64 ".%" PRId64 ", held %.0f ms;"
               " release spread p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
               "single waiter->last %.2f ms; %zu x 200",
               m, p, r.held, r.p50, r.p99, r.max, r.ref_total, r.ok);
        if (r.bad_status || r.missing)
            printf(", %zu other status, %zu unanswered", r.bad_status,
                   r.missing);
        if (r.clen_min != r.clen_max)
            printf(", bodies of %" PRId64 "..%" PRId64 " bytes (expected one "
                   "size)", r.clen_min, r.clen_max);
        printf("\n");
        if (r.held < 20.0) {
            printf("  (round discarded: the part was published before the "
                   "requests were all in; retrying with the next part)\n");
            nspread = before;
            fails++;
            continue;
        }
        if (rd < 0) {
            nspread = before;
            rd++;
            continue;
        }
        totals[nrounds] = r.total;
        refs[nrounds] = r.ref_total;
        if (r.max > worst_max)
            worst_max = r.max;
        nrounds++;
        rd++;
    }
    if (nrounds == 0)
        return 1;
    qsort(spreads, nspread, sizeof(int64_t), cmp_i64);
    qsort(totals, nrounds, sizeof(double), cmp_dbl);
    qsort(refs, nrounds, sizeof(double), cmp_dbl);
    double p50 = pct_ms(spreads, nspread, 50), p99 = pct_ms(spreads, nspread, 99);
    double tot = totals[(nrounds - 1) / 2], ref = refs[(nrounds - 1) / 2];
    printf("waiters N=%ld over %zu rounds: release spread (arrival - first "
           "arrival) p50 %.2f ms, p99 %.2f ms, max %.2f ms; first->last "
           "(median round) %.2f ms; single waiter->last (median) %.2f ms\n",
           n, nrounds, p50, p99, worst_max, tot, ref);
    printf("RESULT waiters_%ld_p50_ms=%.2f\n", n, p50);
    printf("RESULT waiters_%ld_p99_ms=%.2f\n", n, p99);
    printf("RESULT waiters_%ld_max_ms=%.2f\n", n, worst_max);
    printf("RESULT waiters_%ld_total_ms=%.2f\n", n, tot);
    printf("RESULT waiters_%ld_ref_total_ms=%.2f\n", n, ref);
    for (long i = 0; i <= n; i++)
        conn_close(&cs[i]);
    free(cs);
    free(spreads);
    free(totals);
    free(refs);
    close(g_ep);
    return 0;
}
