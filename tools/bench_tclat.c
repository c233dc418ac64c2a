/*
 * tools/bench_tclat.c - latency that transcoding adds: for every part
 * (msn, part), the time it becomes available on an encoded rung minus the
 * time the same (msn, part) became available on the reference rung (the
 * passthrough `source`).
 *
 * One libcurl multi handle on 127.0.0.1, one blocking playlist request
 * (index.m3u8?_HLS_msn=M&_HLS_part=P) outstanding per rung, all rungs in
 * parallel. M.P is the rung's preload hint, so the request is sent before
 * the part exists and blocks; its completion time (CLOCK_MONOTONIC) is the
 * part's availability on that rung as seen by a client. As soon as an
 * answer arrives the next request (the new preload hint) goes out. An
 * answer that took under 2 ms did not block (the part already existed when
 * asked): it is counted and left out, never used as an availability time.
 * The first `warm-up` seconds are left out (encoders starting).
 *
 * Prints per rung p50/p99/max of (rung - reference) over the parts both
 * saw, and RESULT key=value lines for tools/bench-transcode. Every request
 * has a timeout; the run has a deadline; buffers have fixed limits.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNGS 8
#define MAX_REC 20000          /* parts recorded per rung */
#define BODY_MAX (1u << 20)    /* playlist bytes kept per answer */
#define NOBLOCK_US 2000        /* an answer faster than this did not block */
#define REQ_TIMEOUT_MS 10000

typedef struct {
    int64_t msn, part, t_us;
} rec_t;

typedef struct {
    char name[32];
    CURL *h;
    char *body;                /* answer so far, NUL-terminated */
    size_t len;
    int64_t want_msn, want_part; /* requested part, -1: plain playlist */
    int64_t sent_us;
    int64_t retry_at_us;       /* >0: send a plain request at this time */
    rec_t *rec;                /* blocked answers, in arrival order */
    size_t nrec;
    long noblock, errors, plain;
} rung_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    rung_t *r = ud;
    size_t k = sz * n;
    if (r->len + k >= BODY_MAX)
        return 0; /* too large: abort this transfer */
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

/* Finds the preload hint "M.P.m4s" in body. Returns true and sets m, p. */
static bool parse_hint(const char *body, int64_t *m, int64_t *p)
{
    const char *h = strstr(body, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"");
    if (!h)
        return false;
    h += strlen("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"");
    char *e;
    long long a = strtoll(h, &e, 10);
    if (e == h || *e != '.')
        return false;
    const char *q = e + 1;
    long long b = strtoll(q, &e, 10);
    if (e == q || strncmp(e, ".m4s", 4) != 0 || a < 0 || b < 0)
        return false;
    *m = a;
    *p = b;
    return true;
}

static bool lists_part(const char *body, int64_t m, int64_t p)
{
    char u[64];
    snprintf(u, sizeof(u), "URI=\"%" PRId64 ".%" PRId64 ".m4s\"", m, p);
    return strstr(body, u) != NULL;
}

static const char *g_base; /* http://127.0.0.1:PORT/live/NAME */

static void send_req(CURLM *mh, rung_t *r)
{
    char url[512];
    if (r->want_msn < 0)
        snprintf(url, sizeof(url), "%s/%s/index.m3u8", g_base, r->name);
    else
        snprintf(url, sizeof(url),
                 "%s/%s/index.m3u8?_HLS_msn=%" PRId64 "&_HLS_part=%" PRId64,
                 g_base, r->name, r->want_msn, r->want_part);
    curl_multi_remove_handle(mh, r->h);
    curl_easy_setopt(r->h, CURLOPT_URL, url);
    r->len = 0;
    r->body[0] = 0;
    r->sent_us = now_us();
    curl_multi_add_handle(mh, r->h);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static long arg_long(const char *s, long lo, long hi)
{
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || *e || v < lo || v > hi)
        return lo - 1;
    return v;
}

int main(int argc, char **argv)
{
    long port = 0, secs = 30, warm = 4;
    const char *name = NULL, *rungs = "source,720p,480p,360p";
    int o;
    while ((o = getopt(argc, argv, "p:n:r:d:w:")) != -1) {
        switch (o) {
        case 'p': port = arg_long(optarg, 1, 65535); break;
        case 'n': name = optarg; break;
        case 'r': rungs = optarg; break;
        case 'd': secs = arg_long(optarg, 1, 3600); break;
        case 'w': warm = arg_long(optarg, 0, 600); break;
        default: port = -1; break;
        }
    }
    if (port <= 0 || !name || secs <= 0 || warm < 0 || strlen(name) > 200) {
        fprintf(stderr, "usage: bench_tclat -p HTTP_PORT -n NAME [-r "
                        "ref,rung,...] [-d SECONDS] [-w WARMUP_S]\n"
                        "  NAME as published (live/NAME); the first rung is "
                        "the reference\n");
        return 2;
    }
    char base[300];
    snprintf(base, sizeof(base), "http://127.0.0.1:%ld/live/%s", port, name);
    g_base = base;

    rung_t R[MAX_RUNGS];
    int nr = 0;
    memset(R, 0, sizeof(R));
    char list[256];
    snprintf(list, sizeof(list), "%s", rungs);
    for (char *sp = NULL, *t = strtok_r(list, ",", &sp); t && nr < MAX_RUNGS;
         t = strtok_r(NULL, ",", &sp)) {
        if (strlen(t) >= sizeof(R[nr].name))
            continue;
        snprintf(R[nr].name, sizeof(R[nr].name), "%s", t);
        nr++;
    }
    if (nr < 2) {
        fprintf(stderr, "bench_tclat: need a reference and one rung\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *mh = curl_multi_init();
    for (int i = 0; i < nr; i++) {
        R[i].body = malloc(BODY_MAX);
        R[i].rec = calloc(MAX_REC, sizeof(rec_t));
        R[i].h = curl_easy_init();
        if (!R[i].body || !R[i].rec || !R[i].h) {
            fprintf(stderr, "bench_tclat: out of memory\n");
            return 1;
        }
        R[i].body[0] = 0;
        curl_easy_setopt(R[i].h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(R[i].h, CURLOPT_WRITEDATA, &R[i]);
        curl_easy_setopt(R[i].h, CURLOPT_PRIVATE, &R[i]);
        curl_easy_setopt(R[i].h, CURLOPT_TIMEOUT_MS, (long)REQ_TIMEOUT_MS);
        curl_easy_setopt(R[i].h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(R[i].h, CURLOPT_TCP_NODELAY, 1L);
        R[i].want_msn = -1;
        send_req(mh, &R[i]);
    }

    int64_t t0 = now_us(), started = 0;
    int64_t end = t0 + (int64_t)(secs + warm + 30) * 1000000; /* hard cap */
    bool live = false;
    while (now_us() < end) {
        int running = 0;
        curl_multi_perform(mh, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(mh, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            int64_t t = now_us();
            rung_t *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            bool ok = msg->data.result == CURLE_OK && code == 200;
            int64_t m, p;
            if (ok && r->want_msn >= 0) {
                if (!lists_part(r->body, r->want_msn, r->want_part)) {
                    r->errors++;
                } else if (t - r->sent_us < NOBLOCK_US) {
                    if (started)
                        r->noblock++;
                } else if (started && t >= started && r->nrec < MAX_REC) {
                    r->rec[r->nrec++] = (rec_t){r->want_msn, r->want_part, t};
                }
            } else if (!ok) {
                if (live)
                    r->errors++;
            } else {
                r->plain++;
            }
            if (ok && parse_hint(r->body, &m, &p)) {
                if (!live) {
                    live = true;
                    started = t + warm * 1000000;
                    end = started + secs * 1000000;
                }
                r->want_msn = m;
                r->want_part = p;
            } else {
                r->want_msn = -1; /* not there yet: ask plainly again */
                r->retry_at_us = t + 100000;
                continue;
            }
            send_req(mh, r);
        }
        for (int i = 0; i < nr; i++)
            if (R[i].retry_at_us && now_us() >= R[i].retry_at_us) {
                R[i].retry_at_us = 0;
                send_req(mh, &R[i]);
            }
        if (!live && now_us() - t0 > 20000000) {
            fprintf(stderr, "bench_tclat: no live playlist with a preload "
                            "hint within 20 s at %s\n", base);
            return 1;
        }
        curl_multi_poll(mh, NULL, 0, 100, NULL);
    }

    /* join on (msn, part): every rung against the reference R[0] */
    rung_t *ref = &R[0];
    int rc = 0;
    printf("added latency of transcoding, %ld s measured after %ld s warm-up"
           ": part on rung - same part on %s (blocking playlist requests,"
           " all rungs in parallel)\n", secs, warm, ref->name);
    printf("  %s: %zu parts seen (%ld answers did not block and were left "
           "out, %ld errors)\n", ref->name, ref->nrec, ref->noblock,
           ref->errors);
    printf("RESULT tclat_%s_parts=%zu\n", ref->name, ref->nrec);
    int64_t *d = malloc(sizeof(int64_t) * MAX_REC);
    if (!d)
        return 1;
    for (int i = 1; i < nr; i++) {
        rung_t *r = &R[i];
        size_t n = 0;
        for (size_t a = 0; a < r->nrec; a++)
            for (size_t b = 0; b < ref->nrec; b++)
                if (ref->rec[b].msn == r->rec[a].msn &&
                    ref->rec[b].part == r->rec[a].part) {
                    d[n++] = r->rec[a].t_us - ref->rec[b].t_us;
                    break;
                }
        qsort(d, n, sizeof(*d), cmp_i64);
        double mean = 0;
        for (size_t k = 0; k < n; k++)
            mean += (double)d[k] / 1000.0;
        if (n)
            mean /= (double)n;
        printf("  %-6s %4zu parts matched: p50 %7.1f ms  p99 %7.1f ms  "
               "min %7.1f  max %7.1f  mean %7.1f  (%ld did not block, %ld "
               "errors)\n", r->name, n, pct(d, n, 0.5), pct(d, n, 0.99),
               n ? d[0] / 1000.0 : 0.0, n ? d[n - 1] / 1000.0 : 0.0, mean,
               r->noblock, r->errors);
        printf("RESULT tclat_%s_n=%zu\nRESULT tclat_%s_p50_ms=%.1f\n"
               "RESULT tclat_%s_p99_ms=%.1f\nRESULT tclat_%s_max_ms=%.1f\n"
               "RESULT tclat_%s_noblock=%ld\n",
               r->name, n, r->name, pct(d, n, 0.5), r->name, pct(d, n, 0.99),
               r->name, n ? d[n - 1] / 1000.0 : 0.0, r->name, r->noblock);
        if (n == 0)
            rc = 1;
    }
    free(d);
    for (int i = 0; i < nr; i++) {
        curl_multi_remove_handle(mh, R[i].h);
        curl_easy_cleanup(R[i].h);
        free(R[i].body);
        free(R[i].rec);
    }
    curl_multi_cleanup(mh);
    curl_global_cleanup();
    return rc;
}
