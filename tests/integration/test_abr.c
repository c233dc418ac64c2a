/*
 * tests/integration/test_abr.c - the transcoding ladder as a client sees
 * it (issue 3): the multivariant's rungs, their CODECS against the init
 * segments and the decoded pictures, IDRs and segment boundaries aligned
 * on every rung, audio kept in sync with video, the ladder surviving a
 * publisher that reconnects with another picture size or audio codec, and
 * the latency the encoders add (measured, never asserted).
 *
 * Cases (each starts its own podium; the publisher is the ffmpeg CLI):
 * - "720p": one 1280x720@30 publisher shared by the tests of the case
 *   (30-segment window so that the A/V sync test sees >= 40 s of media:
 *   AAC segment boundaries fall on 1024-sample frames, so audio - video
 *   at one MSN varies by up to 21.3 ms without any drift; the bound is
 *   one video frame).
 * - "1080p": one 1920x1080@30 publisher: rung set, alignment, IDRs.
 * - "240p": a 426x240 source gets the source rung only (never upscale).
 * - "resize": 640x360 for 8 s, then a reconnect at 960x540 within grace.
 * - "mp3": AAC 48 kHz for 8 s, then a reconnect with MP3 44.1 kHz.
 *
 * Segment start times are read from the first moof/traf/tfdt of each
 * segment (baseMediaDecodeTime) and the mdhd timescale of its init.
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define FPS 30
#define FRAME_S (1.0 / FPS)
#define MAX_RUNGS 8

/* ---- publisher ------------------------------------------------------------ */

/* ffmpeg -re testsrc2 WxH@30 + sine, libx264 veryfast zerolatency -g 60,
 * audio AAC 48 kHz (mp3: libmp3lame 44.1 kHz) to live/<name>; duration_s
 * 0 = until stopped. Fills pub so that tl_pub_wait/tl_pub_stop work. */
static int pub_spawn(tl_pub_t *pub, const char *dir, int rtmp_port,
                     const char *name, int w, int h, int duration_s, bool mp3)
{
    memset(pub, 0, sizeof(*pub));
    static int seq;
    snprintf(pub->log, sizeof(pub->log), "%s/ffmpeg-%s-%dx%d-%d.log", dir,
             name, w, h, seq++);
    char src[128], sine[96], url[256], dur[16], vb[16];
    snprintf(src, sizeof(src), "testsrc2=size=%dx%d:rate=%d", w, h, FPS);
    snprintf(sine, sizeof(sine), "sine=frequency=440:sample_rate=%d",
             mp3 ? 44100 : 48000);
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/%s", rtmp_port, name);
    snprintf(dur, sizeof(dur), "%d", duration_s);
    snprintf(vb, sizeof(vb), "%dk", h >= 1080 ? 1500 : h >= 720 ? 1000 : 400);
    char *argv[80];
    int n = 0;
    const char *head[] = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel",
                          "warning", "-re", "-f", "lavfi", "-i", src, "-re",
                          "-f", "lavfi", "-i", sine, NULL};
    for (int i = 0; head[i]; i++)
        argv[n++] = (char *)head[i];
    if (duration_s > 0) {
        argv[n++] = "-t";
        argv[n++] = dur;
    }
    const char *rest[] = {"-map", "0:v", "-map", "1:a", "-c:v", "libx264",
                          "-preset", "veryfast", "-tune", "zerolatency",
                          "-profile:v", "main", "-pix_fmt", "yuv420p", "-b:v",
                          vb, "-g", "60", "-keyint_min", "60", "-sc_threshold",
                          "0", "-bf", "0", "-c:a", mp3 ? "libmp3lame" : "aac",
                          "-b:a", mp3 ? "128k" : "64k", "-ar",
                          mp3 ? "44100" : "48000", "-ac", "2", "-flvflags",
                          "no_duration_filesize", "-f", "flv", url, NULL};
    for (int i = 0; rest[i]; i++)
        argv[n++] = (char *)rest[i];
    argv[n] = NULL;
    int logfd = open(pub->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (logfd < 0)
        return -1;
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(logfd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(logfd);
    pub->pid = pid;
    pub->started_ms = tl_now_ms();
    return 0;
}

/* ---- ISOBMFF: tfdt and timescale ----------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

/* First box of that type among the siblings in d[0..len); its payload. */
static int box_find(const uint8_t *d, size_t len, const char *type,
                    const uint8_t **pl, size_t *plen)
{
    size_t off = 0;
    while (off + 8 <= len) {
        uint64_t sz = be32(d + off);
        size_t hdr = 8;
        if (sz == 1) {
            if (len - off < 16)
                return -1;
            sz = ((uint64_t)be32(d + off + 8) << 32) | be32(d + off + 12);
            hdr = 16;
        } else if (sz == 0) {
            sz = len - off;
        }
        if (sz < hdr || sz > len - off)
            return -1;
        if (memcmp(d + off + 4, type, 4) == 0) {
            *pl = d + off + hdr;
            *plen = (size_t)sz - hdr;
            return 0;
        }
        off += (size_t)sz;
    }
    return -1;
}

/* baseMediaDecodeTime of the first moof/traf/tfdt. */
static int first_tfdt(const uint8_t *d, size_t len, uint64_t *out)
{
    const uint8_t *moof, *traf, *tfdt;
    size_t l1, l2, l3;
    if (box_find(d, len, "moof", &moof, &l1) || box_find(moof, l1, "traf",
                                                         &traf, &l2) ||
        box_find(traf, l2, "tfdt", &tfdt, &l3) || l3 < 8)
        return -1;
    if (tfdt[0] == 1) {
        if (l3 < 12)
            return -1;
        *out = ((uint64_t)be32(tfdt + 4) << 32) | be32(tfdt + 8);
    } else {
        *out = be32(tfdt + 4);
    }
    return 0;
}

/* mdhd timescale of the first track of an init segment. */
static int init_timescale(const uint8_t *d, size_t len, uint32_t *out)
{
    const uint8_t *moov, *trak, *mdia, *mdhd;
    size_t l1, l2, l3, l4;
    if (box_find(d, len, "moov", &moov, &l1) ||
        box_find(moov, l1, "trak", &trak, &l2) ||
        box_find(trak, l2, "mdia", &mdia, &l3) ||
        box_find(mdia, l3, "mdhd", &mdhd, &l4))
        return -1;
    size_t at = mdhd[0] == 1 ? 4 + 16 : 4 + 8;
    if (l4 < at + 4)
        return -1;
    *out = be32(mdhd + at);
    return *out ? 0 : -1;
}

/* ---- ffprobe ---------------------------------------------------------------- */

typedef struct {
    char codec[32];
    char profile[48];
    int level;
    int width, height;       /* stream (from the init) */
    int fwidth, fheight;     /* first decoded frame */
    double rate;             /* r_frame_rate */
    int sample_rate;         /* audio */
    long packets;            /* nb_read_packets */
    long frames;             /* decoded frames */
    int key0;                /* first frame's key_frame, -1 if none */
    char pict0[8];           /* first frame's pict_type */
    char err[256];
} probe_t;

static void flat_str(const char *line, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    if (strncmp(line, key, kl) != 0 || line[kl] != '=')
        return;
    const char *v = line + kl + 1;
    if (*v == '"')
        v++;
    size_t vl = strcspn(v, "\"\n");
    snprintf(out, n, "%.*s", (int)vl, v);
}

/* init + media into a temp file in dir; ffprobe -of flat of the first
 * stream and its frames (the first npackets packets only if > 0). */
static int probe(const char *dir, const void *init, size_t ilen,
                 const void *media, size_t mlen, int npackets, probe_t *p)
{
    memset(p, 0, sizeof(*p));
    p->key0 = -1;
    static int seq;
    char path[400], iv[32];
    snprintf(path, sizeof(path), "%s/abr-%d-%d.mp4", dir, (int)getpid(),
             seq++);
    if (tl_write_file(path, init, ilen, media, mlen) != 0)
        return -1;
    snprintf(iv, sizeof(iv), "%%+#%d", npackets > 0 ? npackets : 1000000);
    char *argv[] = {"ffprobe", "-v", "error", "-count_packets",
                    "-read_intervals", iv, "-select_streams", "0",
                    "-show_entries",
                    "stream=codec_name,profile,level,width,height,"
                    "r_frame_rate,sample_rate,nb_read_packets:"
                    "frame=key_frame,pict_type,width,height",
                    "-of", "flat", path, NULL};
    char *out = NULL, *err = NULL;
    int st = tl_run(argv, 60000, &out, &err);
    unlink(path);
    if (err && err[0])
        snprintf(p->err, sizeof(p->err), "%.*s", (int)strcspn(err, "\n"),
                 err);
    if (st < 0 || !out) {
        free(out);
        free(err);
        return -1;
    }
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char v[64] = "";
        if (strncmp(l, "streams.stream.0.", 17) == 0) {
            const char *k = l + 17;
            flat_str(k, "codec_name", p->codec, sizeof(p->codec));
            flat_str(k, "profile", p->profile, sizeof(p->profile));
            v[0] = 0;
            flat_str(k, "level", v, sizeof(v));
            if (v[0])
                p->level = atoi(v);
            v[0] = 0;
            flat_str(k, "width", v, sizeof(v));
            if (v[0])
                p->width = atoi(v);
            v[0] = 0;
            flat_str(k, "height", v, sizeof(v));
            if (v[0])
                p->height = atoi(v);
            v[0] = 0;
            flat_str(k, "sample_rate", v, sizeof(v));
            if (v[0])
                p->sample_rate = atoi(v);
            v[0] = 0;
            flat_str(k, "nb_read_packets", v, sizeof(v));
            if (v[0])
                p->packets = atol(v);
            v[0] = 0;
            flat_str(k, "r_frame_rate", v, sizeof(v));
            int num = 0, den = 0;
            if (v[0] && sscanf(v, "%d/%d", &num, &den) == 2 && den > 0)
                p->rate = (double)num / den;
        } else if (strncmp(l, "frames.frame.", 13) == 0) {
            char *e;
            long idx = strtol(l + 13, &e, 10);
            if (e == l + 13 || *e != '.')
                continue;
            const char *k = e + 1;
            if (strncmp(k, "key_frame=", 10) == 0) {
                p->frames++;
                if (idx == 0)
                    p->key0 = atoi(k + 10);
            }
            if (idx != 0)
                continue;
            flat_str(k, "pict_type", p->pict0, sizeof(p->pict0));
            flat_str(k, "width", v, sizeof(v));
            if (v[0])
                p->fwidth = atoi(v);
            v[0] = 0;
            flat_str(k, "height", v, sizeof(v));
            if (v[0])
                p->fheight = atoi(v);
        }
    }
    free(out);
    free(err);
    return p->codec[0] ? 0 : -1;
}

/* ---- a podium with one stream ----------------------------------------------- */

typedef struct {
    tl_fixture_t f; /* podium; f.pub is the current publisher */
    char name[64];
} abr_t;

static int port_of(const abr_t *a)
{
    return a->f.podium.http_port;
}

/* Starts podium with sets and a WxH publisher to live/<name>; waits for
 * min_segments on the source rung. Prints the logs on failure. */
static int abr_start(abr_t *a, const char *tag, const char *const *sets,
                     const char *name, int w, int h, int duration_s,
                     int min_segments)
{
    memset(a, 0, sizeof(*a));
    if (tl_fixture_start(&a->f, tag, sets, NULL, 0, 0, 0, 0) != 0)
        return -1;
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->f.name, sizeof(a->f.name), "%s", name);
    if (pub_spawn(&a->f.pub, a->f.dir, a->f.podium.rtmp_port, name, w, h,
                  duration_s, false) != 0) {
        printf("could not start ffmpeg\n");
        tl_fixture_stop(&a->f);
        return -1;
    }
    char path[256];
    tl_playlist_path(path, sizeof(path), name, "source");
    if (tl_wait_segments(port_of(a), path, min_segments, 90000) != 0) {
        printf("%s: %d segments did not come within 90 s\n", path,
               min_segments);
        tl_fixture_dump(&a->f);
        tl_fixture_stop(&a->f);
        return -1;
    }
    return 0;
}

/* ---- the ladder as listed -------------------------------------------------- */

typedef struct {
    int n;
    char name[MAX_RUNGS][32];
    int w[MAX_RUNGS], h[MAX_RUNGS];
    double fps[MAX_RUNGS];
    int64_t bw[MAX_RUNGS], abw[MAX_RUNGS];
    char avc1[MAX_RUNGS][32];
    char audio[32]; /* audio rendition name ("audio") */
    char body[4096];
} ladder_t;

/* Asserting: fetches and parses the multivariant of live/<name>. */
static void ladder_get(const abr_t *a, ladder_t *L)
{
    memset(L, 0, sizeof(*L));
    char mv[256];
    tl_playlist_path(mv, sizeof(mv), a->name, NULL);
    tl_m3u8_t m;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port_of(a), mv, &m, &r);
    snprintf(L->body, sizeof(L->body), "%s", (const char *)r.body);
    ck_assert_msg(m.multivariant, "no EXT-X-STREAM-INF:\n%s", L->body);
    for (int i = 0; i < m.nmedia; i++) {
        const char *t = tl_attr(&m.media[i], "TYPE");
        const char *u = tl_attr(&m.media[i], "URI");
        if (t && u && strcmp(t, "AUDIO") == 0)
            snprintf(L->audio, sizeof(L->audio), "%.*s",
                     (int)strcspn(u, "/"), u);
    }
    ck_assert_msg(m.nvariants <= MAX_RUNGS, "%d variants", m.nvariants);
    L->n = m.nvariants;
    for (int i = 0; i < m.nvariants; i++) {
        const tl_attrs_t *at = &m.variants[i].attrs;
        const char *u = m.variants[i].uri;
        ck_assert_msg(strstr(u, "/index.m3u8"), "variant URI %s", u);
        snprintf(L->name[i], sizeof(L->name[i]), "%.*s",
                 (int)(strstr(u, "/index.m3u8") - u), u);
        const char *res = tl_attr(at, "RESOLUTION");
        ck_assert_msg(res && sscanf(res, "%dx%d", &L->w[i], &L->h[i]) == 2,
                      "%s: RESOLUTION %s", L->name[i], res ? res : "(none)");
        const char *fr = tl_attr(at, "FRAME-RATE");
        ck_assert_msg(fr && tl_parse_decimal(fr, &L->fps[i]) == 0,
                      "%s: FRAME-RATE %s", L->name[i], fr ? fr : "(none)");
        ck_assert_msg(tl_parse_int(tl_attr(at, "BANDWIDTH"), &L->bw[i]) == 0,
                      "%s: BANDWIDTH missing", L->name[i]);
        ck_assert_msg(
            tl_parse_int(tl_attr(at, "AVERAGE-BANDWIDTH"), &L->abw[i]) == 0,
            "%s: AVERAGE-BANDWIDTH missing", L->name[i]);
        const char *c = tl_attr(at, "CODECS");
        ck_assert_msg(c, "%s: CODECS missing", L->name[i]);
        const char *avc = strstr(c, "avc1.");
        ck_assert_msg(avc, "%s: CODECS=\"%s\" has no avc1", L->name[i], c);
        snprintf(L->avc1[i], sizeof(L->avc1[i]), "%.*s",
                 (int)strcspn(avc, ","), avc);
    }
    tl_m3u8_free(&m);
    tl_resp_free(&r);
}

static void ladder_expect(const ladder_t *L, const char *const *names,
                          const int *wh)
{
    int n = 0;
    while (names[n])
        n++;
    char got[256] = "";
    for (int i = 0; i < L->n; i++) {
        size_t gl = strlen(got);
        snprintf(got + gl, sizeof(got) - gl, "%s%s %dx%d", i ? ", " : "",
                 L->name[i], L->w[i], L->h[i]);
    }
    tl_note("rungs: %s", got);
    ck_assert_msg(L->n == n, "%d rungs (%s), want %d:\n%s", L->n, got, n,
                  L->body);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(strcmp(L->name[i], names[i]) == 0,
                      "rung %d is %s, want %s (rungs: %s)", i, L->name[i],
                      names[i], got);
        ck_assert_msg(L->w[i] == wh[2 * i] && L->h[i] == wh[2 * i + 1],
                      "%s: RESOLUTION=%dx%d, want %dx%d", L->name[i], L->w[i],
                      L->h[i], wh[2 * i], wh[2 * i + 1]);
    }
}

/* ---- media fetching --------------------------------------------------------- */

typedef struct {
    char rung[32];
    char path[256];
    tl_m3u8_t m;
} pl_t;

static void pl_get(const abr_t *a, const char *rung, const char *query,
                   pl_t *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->rung, sizeof(p->rung), "%s", rung);
    tl_playlist_path(p->path, sizeof(p->path), a->name, rung);
    char q[400];
    snprintf(q, sizeof(q), "%s%s", p->path, query ? query : "");
    tl_fetch_m3u8_ok(port_of(a), q, &p->m, NULL);
}

/* Asserting: GET a URI of playlist p (segment, part or init). */
static void pl_media(const abr_t *a, const pl_t *p, const char *uri,
                     tl_resp_t *out)
{
    char path[512];
    ck_assert(tl_resolve(p->path, uri, path, sizeof(path)) == 0);
    tl_get_ok(port_of(a), path, out);
    ck_assert_msg(out->len > 0, "%s is empty", path);
}

/* Start (seconds) of segment msn of p: tfdt / init timescale. The raw
 * values go to *tfdt and *ts (may be NULL). */
static double seg_start(const abr_t *a, const pl_t *p, int64_t msn,
                        uint64_t *tfdt, uint32_t *ts)
{
    const tl_seg_t *s = tl_m3u8_seg(&p->m, msn);
    ck_assert(s);
    tl_resp_t init, seg;
    pl_media(a, p, s->map_uri, &init);
    pl_media(a, p, s->uri, &seg);
    uint64_t t = 0;
    uint32_t scale = 0;
    ck_assert_msg(init_timescale(init.body, init.len, &scale) == 0,
                  "%s: no mdhd timescale in %s", p->rung, s->map_uri);
    ck_assert_msg(first_tfdt(seg.body, seg.len, &t) == 0,
                  "%s: no moof/traf/tfdt in %s", p->rung, s->uri);
    tl_resp_free(&init);
    tl_resp_free(&seg);
    if (tfdt)
        *tfdt = t;
    if (ts)
        *ts = scale;
    return (double)t / scale;
}

/* Asserting: probe segment s of p (with its init). */
static void seg_probe(const abr_t *a, const pl_t *p, const tl_seg_t *s,
                      int npackets, probe_t *out)
{
    tl_resp_t init, seg;
    pl_media(a, p, s->map_uri, &init);
    pl_media(a, p, s->uri, &seg);
    ck_assert_msg(probe(a->f.dir, init.body, init.len, seg.body, seg.len,
                        npackets, out) == 0,
                  "ffprobe cannot read %s segment %lld (%s)", p->rung,
                  (long long)s->msn, out->err);
    tl_resp_free(&init);
    tl_resp_free(&seg);
}

/* MSNs complete on every playlist of ps[0..n), ascending; returns count. */
static int common_msns(const pl_t *ps, int n, int64_t *out, int max)
{
    int k = 0;
    for (int i = 0; i < ps[0].m.nsegs && k < max; i++) {
        int64_t msn = ps[0].m.segs[i].msn;
        bool all = true;
        for (int j = 1; j < n && all; j++)
            all = tl_m3u8_seg(&ps[j].m, msn) != NULL;
        if (all)
            out[k++] = msn;
    }
    return k;
}

/* ---- shared checks ------------------------------------------------------ */

/* Same MSN: same tfdt (to 1 ms) and EXTINF within one frame on every
 * video rung. At most `max` of the latest common MSNs. */
static void check_alignment(const abr_t *a, int max)
{
    ladder_t L;
    ladder_get(a, &L);
    ck_assert_int_ge(L.n, 2);
    pl_t ps[MAX_RUNGS];
    for (int i = 0; i < L.n; i++)
        pl_get(a, L.name[i], NULL, &ps[i]);
    int64_t msns[64];
    int n = common_msns(ps, L.n, msns, 64);
    ck_assert_msg(n >= 2, "only %d MSNs complete on every rung", n);
    int from = n > max ? n - max : 0;
    double worst_t = 0, worst_d = 0;
    for (int k = from; k < n; k++) {
        uint64_t t0;
        uint32_t s0;
        double st0 = seg_start(a, &ps[0], msns[k], &t0, &s0);
        double d0 = tl_m3u8_seg(&ps[0].m, msns[k])->duration;
        for (int i = 1; i < L.n; i++) {
            uint64_t t;
            uint32_t s;
            double st = seg_start(a, &ps[i], msns[k], &t, &s);
            double d = tl_m3u8_seg(&ps[i].m, msns[k])->duration;
            worst_t = fmax(worst_t, fabs(st - st0));
            worst_d = fmax(worst_d, fabs(d - d0));
            ck_assert_msg(fabs(st - st0) < 0.001,
                          "segment %lld starts at tfdt %llu/%u (%.4f s) on "
                          "%s but %llu/%u (%.4f s) on %s",
                          (long long)msns[k], (unsigned long long)t, s, st,
                          L.name[i], (unsigned long long)t0, s0, st0,
                          L.name[0]);
            ck_assert_msg(fabs(d - d0) <= FRAME_S + 1e-4,
                          "segment %lld: EXTINF %.5f on %s, %.5f on %s",
                          (long long)msns[k], d, L.name[i], d0, L.name[0]);
        }
        if (k == from)
            tl_note("segment %lld: tfdt %llu (timescale %u) = %.4f s on %s",
                    (long long)msns[k], (unsigned long long)t0, s0, st0,
                    L.name[0]);
    }
    tl_note("%d MSNs on %d rungs: worst start difference %.3f ms, worst "
            "EXTINF difference %.3f ms",
            n - from, L.n, worst_t * 1e3, worst_d * 1e3);
    for (int i = 0; i < L.n; i++)
        tl_m3u8_free(&ps[i].m);
}

/* Every complete segment of every video rung starts with an IDR. */
static void check_idr(const abr_t *a, int max_per_rung)
{
    ladder_t L;
    ladder_get(a, &L);
    int checked = 0;
    for (int i = 0; i < L.n; i++) {
        pl_t p;
        pl_get(a, L.name[i], NULL, &p);
        int from = p.m.nsegs > max_per_rung ? p.m.nsegs - max_per_rung : 0;
        for (int k = from; k < p.m.nsegs; k++) {
            probe_t pr;
            seg_probe(a, &p, &p.m.segs[k], 3, &pr);
            ck_assert_msg(pr.key0 == 1 && strcmp(pr.pict0, "I") == 0,
                          "%s segment %lld starts with key_frame=%d "
                          "pict_type=%s (%s)",
                          L.name[i], (long long)p.m.segs[k].msn, pr.key0,
                          pr.pict0, pr.err);
            checked++;
        }
        tl_m3u8_free(&p.m);
    }
    tl_note("%d segments on %d rungs start with an IDR", checked, L.n);
    ck_assert_int_ge(checked, L.n);
}

/* ---- case "720p" -------------------------------------------------------- */

#define N720 "abr720"
static abr_t A7;
static const char *const SETS720[] = {"window_segments=30",
                                      "grace_period_ms=10000", NULL};

static void setup720(void)
{
    ck_assert_msg(abr_start(&A7, "abr720", SETS720, N720, 1280, 720, 0, 3) ==
                      0,
                  "podium + 720p publisher did not come up");
    /* Let the encoded rungs produce a few segments too. */
    char path[256];
    tl_playlist_path(path, sizeof(path), N720, "360p");
    tl_wait_segments(port_of(&A7), path, 3, 60000);
}

static void teardown720(void)
{
    tl_fixture_stop(&A7.f);
}

START_TEST(test_720_multivariant)
{
    ladder_t L;
    ladder_get(&A7, &L);
    printf("---- multivariant\n%s----\n", L.body);
    const char *names[] = {"source", "720p", "480p", "360p", NULL};
    const int wh[] = {1280, 720, 1280, 720, 854, 480, 640, 360};
    ladder_expect(&L, names, wh);
    for (int i = 0; i < L.n; i++) {
        ck_assert_msg(fabs(L.fps[i] - 30.0) < 0.0005,
                      "%s: FRAME-RATE %.3f, want 30.000", L.name[i], L.fps[i]);
        ck_assert_msg(L.abw[i] > 0 && L.bw[i] >= L.abw[i],
                      "%s: BANDWIDTH=%lld AVERAGE-BANDWIDTH=%lld", L.name[i],
                      (long long)L.bw[i], (long long)L.abw[i]);
        tl_note("%s: BANDWIDTH=%lld AVERAGE-BANDWIDTH=%lld CODECS %s",
                L.name[i], (long long)L.bw[i], (long long)L.abw[i],
                L.avc1[i]);
    }
    for (int i = 2; i < L.n; i++)
        ck_assert_msg(L.bw[i] < L.bw[i - 1],
                      "encoded rungs not in decreasing BANDWIDTH: %s %lld, "
                      "then %s %lld",
                      L.name[i - 1], (long long)L.bw[i - 1], L.name[i],
                      (long long)L.bw[i]);
    ck_assert_msg(strcmp(L.audio, "audio") == 0, "audio rendition '%s'",
                  L.audio);
}
END_TEST

/* avc1.PPCCLL against the init's avcC and ffprobe's profile/level; the
 * encoded rungs against the README's ladder (profile, level "auto"). */
static void check_codecs(const abr_t *a, const char *const *want)
{
    ladder_t L;
    ladder_get(a, &L);
    for (int i = 0; i < L.n; i++) {
        pl_t p;
        pl_get(a, L.name[i], NULL, &p);
        ck_assert(p.m.nsegs > 0);
        const tl_seg_t *s = &p.m.segs[p.m.nsegs - 1];
        tl_resp_t init;
        pl_media(a, &p, s->map_uri, &init);
        char from_init[32];
        ck_assert_msg(tl_avc1_codec_from_init(init.body, init.len, from_init,
                                              sizeof(from_init)) == 0,
                      "%s: no avcC in the init", L.name[i]);
        ck_assert_msg(strcasecmp(from_init, L.avc1[i]) == 0,
                      "%s: CODECS says %s, the init's avcC %s", L.name[i],
                      L.avc1[i], from_init);
        tl_resp_free(&init);
        probe_t pr;
        seg_probe(a, &p, s, 3, &pr);
        unsigned pp = 0, cc = 0, ll = 0;
        ck_assert(sscanf(L.avc1[i] + 5, "%2x%2x%2x", &pp, &cc, &ll) == 3);
        const char *pname = pp == 100 ? "High" : pp == 77 ? "Main"
                          : pp == 66 ? (cc & 0x40 ? "Constrained Baseline"
                                                  : "Baseline")
                                     : "?";
        tl_note("%s: %s = %s level %d; ffprobe: %s %s level %d", L.name[i],
                L.avc1[i], pname, ll, pr.codec, pr.profile, pr.level);
        ck_assert_msg(strcmp(pr.codec, "h264") == 0, "%s: codec %s",
                      L.name[i], pr.codec);
        ck_assert_msg(strcmp(pr.profile, pname) == 0,
                      "%s: CODECS %s means %s, ffprobe says %s", L.name[i],
                      L.avc1[i], pname, pr.profile);
        ck_assert_msg(pr.level == (int)ll,
                      "%s: CODECS %s means level %u, ffprobe says %d",
                      L.name[i], L.avc1[i], ll, pr.level);
        if (want && want[i])
            ck_assert_msg(strcasecmp(L.avc1[i], want[i]) == 0,
                          "%s: %s, the ladder says %s", L.name[i], L.avc1[i],
                          want[i]);
        tl_m3u8_free(&p.m);
    }
}

START_TEST(test_720_codecs)
{
    /* README: 720p high, 480p/360p main; auto level 3.1, 3.1, 3.0. */
    const char *want[] = {NULL, "avc1.64001f", "avc1.4d401f", "avc1.4d401e",
                          NULL};
    check_codecs(&A7, want);
}
END_TEST

START_TEST(test_720_streams_json)
{
    tl_resp_t r;
    tl_get_ok(port_of(&A7), "/streams.json", &r);
    const char *body = (const char *)r.body;
    const char *s = strstr(body, "\"live/" N720 "\"");
    ck_assert_msg(s, "live/" N720 " not in /streams.json: %s", body);
    const char *rr = strstr(s, "\"renditions\":[");
    ck_assert_msg(rr, "no \"renditions\" array: %s", body);
    size_t rl = strcspn(rr, "]");
    char arr[256];
    snprintf(arr, sizeof(arr), "%.*s", (int)rl, rr);
    const char *want[] = {"source", "720p", "480p", "360p", "audio", NULL};
    for (int i = 0; want[i]; i++) {
        char q[40];
        snprintf(q, sizeof(q), "\"%s\"", want[i]);
        ck_assert_msg(strstr(arr, q), "renditions lack %s: %s", want[i], body);
    }
    const char *shed = strstr(s, "\"shed\":");
    const char *drop = strstr(s, "\"dropping\":");
    ck_assert_msg(shed && drop, "no \"shed\" / \"dropping\": %s", body);
    tl_note("streams.json: %.*s; %.*s; %.*s", (int)rl + 1, rr,
            (int)strcspn(shed, "]") + 1, shed, (int)strcspn(drop, "]") + 1,
            drop);
    tl_resp_free(&r);
}
END_TEST

START_TEST(test_720_rendition_reports)
{
    ladder_t L;
    ladder_get(&A7, &L);
    char all[MAX_RUNGS + 1][32];
    int n = 0;
    for (int i = 0; i < L.n; i++)
        snprintf(all[n++], 32, "%s", L.name[i]);
    snprintf(all[n++], 32, "%s", L.audio);
    for (int i = 0; i < n; i++) {
        pl_t p;
        pl_get(&A7, all[i], NULL, &p);
        for (int j = 0; j < n; j++) {
            char want[320];
            snprintf(want, sizeof(want), "%s/index.m3u8", all[j]);
            int found = 0;
            for (int k = 0; k < p.m.nreports; k++) {
                const char *u = p.m.reports[k].uri;
                size_t ul = strlen(u), wl = strlen(want);
                if (ul >= wl && strcmp(u + ul - wl, want) == 0 &&
                    (ul == wl || u[ul - wl - 1] == '/'))
                    found++;
            }
            if (i == j)
                ck_assert_msg(found == 0, "%s reports itself", all[i]);
            else
                ck_assert_msg(found == 1,
                              "%s: %d rendition reports for %s (%d "
                              "reports)",
                              all[i], found, all[j], p.m.nreports);
        }
        tl_m3u8_free(&p.m);
    }
}
END_TEST

/* _HLS_msn=<next> on every rendition at once: each answers 200 with it. */
START_TEST(test_720_blocking_each_rung)
{
    ladder_t L;
    ladder_get(&A7, &L);
    char all[MAX_RUNGS + 1][32];
    int n = 0;
    for (int i = 0; i < L.n; i++)
        snprintf(all[n++], 32, "%s", L.name[i]);
    snprintf(all[n++], 32, "%s", L.audio);
    for (int round = 0; round < 2; round++) {
        tl_async_t *as[MAX_RUNGS + 1];
        int64_t want[MAX_RUNGS + 1], t0 = tl_now_ms();
        for (int i = 0; i < n; i++) {
            pl_t p;
            pl_get(&A7, all[i], NULL, &p);
            want[i] = tl_m3u8_last_msn(&p.m) + 1;
            as[i] = tl_get_async(30000, "http://127.0.0.1:%d%s?_HLS_msn=%lld",
                                 port_of(&A7), p.path, (long long)want[i]);
            tl_m3u8_free(&p.m);
        }
        for (int i = 0; i < n; i++) {
            tl_resp_t r;
            int64_t done;
            tl_async_join(as[i], &r, &done);
            ck_assert_msg(r.status == 200,
                          "%s?_HLS_msn=%lld: status %ld (curl %d) after "
                          "%lld ms",
                          all[i], (long long)want[i], r.status, r.curl_code,
                          (long long)(done - t0));
            tl_m3u8_t m;
            char err[256];
            ck_assert_msg(tl_m3u8_parse((const char *)r.body, r.len, &m, err,
                                        sizeof(err)) == 0,
                          "%s: %s", all[i], err);
            ck_assert_msg(tl_m3u8_seg(&m, want[i]),
                          "%s?_HLS_msn=%lld answered without segment %lld "
                          "(last %lld)",
                          all[i], (long long)want[i], (long long)want[i],
                          (long long)tl_m3u8_last_msn(&m));
            if (round == 1)
                tl_note("%s: blocking reload for segment %lld held %lld ms",
                        all[i], (long long)want[i], (long long)(done - t0));
            tl_m3u8_free(&m);
            tl_resp_free(&r);
        }
    }
}
END_TEST

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Blocking requests for the source's next part on source and every
 * encoded rung; the encoded rung's answer minus the source's is the
 * latency the transcoder adds. Measured, not asserted (only that the
 * part arrives within the hold). */
START_TEST(test_720_transcode_latency)
{
    ladder_t L;
    ladder_get(&A7, &L);
    ck_assert_int_ge(L.n, 2);
    enum { ROUNDS = 8 };
    int64_t lat[MAX_RUNGS][ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        pl_t src;
        pl_get(&A7, L.name[0], NULL, &src);
        int64_t msn, part;
        ck_assert_msg(src.m.npreload > 0 &&
                          tl_parse_media_uri(src.m.preload_uri, &msn, &part) ==
                              0 &&
                          part >= 0,
                      "source: no part preload hint (%s)",
                      src.m.preload_uri);
        tl_m3u8_free(&src.m);
        tl_async_t *as[MAX_RUNGS];
        for (int i = 0; i < L.n; i++) {
            char p[256];
            tl_playlist_path(p, sizeof(p), A7.name, L.name[i]);
            as[i] = tl_get_async(30000,
                                 "http://127.0.0.1:%d%s?_HLS_msn=%lld&_HLS_"
                                 "part=%lld",
                                 port_of(&A7), p, (long long)msn,
                                 (long long)part);
        }
        int64_t done[MAX_RUNGS];
        for (int i = 0; i < L.n; i++) {
            tl_resp_t r;
            tl_async_join(as[i], &r, &done[i]);
            ck_assert_msg(r.status == 200,
                          "%s: part %lld.%lld: status %ld (curl %d)",
                          L.name[i], (long long)msn, (long long)part,
                          r.status, r.curl_code);
            tl_m3u8_t m;
            char err[256];
            ck_assert(tl_m3u8_parse((const char *)r.body, r.len, &m, err,
                                    sizeof(err)) == 0);
            ck_assert_msg(tl_m3u8_part(&m, msn, (int)part),
                          "%s: answer lacks part %lld.%lld", L.name[i],
                          (long long)msn, (long long)part);
            tl_m3u8_free(&m);
            tl_resp_free(&r);
        }
        for (int i = 1; i < L.n; i++)
            lat[i][round] = done[i] - done[0];
    }
    for (int i = 1; i < L.n; i++) {
        qsort(lat[i], ROUNDS, sizeof(int64_t), cmp_i64);
        tl_note("transcode added latency, %s vs %s: min %lld ms, median "
                "%lld ms, max %lld ms (%d parts)",
                L.name[i], L.name[0], (long long)lat[i][0],
                (long long)lat[i][ROUNDS / 2], (long long)lat[i][ROUNDS - 1],
                ROUNDS);
    }
}
END_TEST

START_TEST(test_720_aligned)
{
    check_alignment(&A7, 8);
}
END_TEST

START_TEST(test_720_idr)
{
    check_idr(&A7, 12);
}
END_TEST

/* The decoded pictures match RESOLUTION and FRAME-RATE. */
START_TEST(test_720_decoded)
{
    ladder_t L;
    ladder_get(&A7, &L);
    for (int i = 0; i < L.n; i++) {
        pl_t p;
        pl_get(&A7, L.name[i], NULL, &p);
        ck_assert(p.m.nsegs >= 2);
        for (int k = p.m.nsegs - 2; k < p.m.nsegs; k++) {
            const tl_seg_t *s = &p.m.segs[k];
            probe_t pr;
            seg_probe(&A7, &p, s, 0, &pr);
            double per_s = (double)pr.packets / s->duration;
            tl_note("%s segment %lld: %dx%d decoded, %ld/%ld frames, "
                    "r_frame_rate %.3f, %.2f frames/EXTINF s",
                    L.name[i], (long long)s->msn, pr.fwidth, pr.fheight,
                    pr.frames, pr.packets, pr.rate, per_s);
            ck_assert_msg(pr.fwidth == L.w[i] && pr.fheight == L.h[i],
                          "%s: decodes %dx%d, RESOLUTION=%dx%d", L.name[i],
                          pr.fwidth, pr.fheight, L.w[i], L.h[i]);
            ck_assert_msg(pr.packets > 0 && pr.frames == pr.packets,
                          "%s segment %lld: %ld of %ld frames decode (%s)",
                          L.name[i], (long long)s->msn, pr.frames, pr.packets,
                          pr.err);
            ck_assert_msg(fabs(pr.rate - L.fps[i]) < 0.01,
                          "%s: r_frame_rate %.3f, FRAME-RATE %.3f", L.name[i],
                          pr.rate, L.fps[i]);
            ck_assert_msg(fabs(per_s - L.fps[i]) * s->duration <= 1.01,
                          "%s segment %lld: %ld frames in EXTINF %.5f",
                          L.name[i], (long long)s->msn, pr.packets,
                          s->duration);
        }
        tl_m3u8_free(&p.m);
    }
}
END_TEST

/* After >= 40 s of publishing: per MSN, audio start - video start does not
 * drift by a frame between the first and last MSN listed on every
 * rendition; PDT of one MSN equal on every video rung. */
START_TEST(test_720_av_sync)
{
    char sp[256];
    tl_playlist_path(sp, sizeof(sp), N720, "source");
    int64_t t0 = tl_now_ms();
    for (;;) {
        tl_m3u8_t m;
        tl_fetch_m3u8_ok(port_of(&A7), sp, &m, NULL);
        double span = 0;
        for (int i = 0; i < m.nsegs; i++)
            span += m.segs[i].duration;
        tl_m3u8_free(&m);
        /* 44 s on the source: >= 40 s common to every rendition. */
        if (span >= 44.0)
            break;
        ck_assert_msg(tl_now_ms() - t0 < 150000,
                      "the source playlist spans %.1f s after %lld ms more",
                      span, (long long)(tl_now_ms() - t0));
        ck_assert_msg(tl_podium_alive(&A7.f.podium), "podium died");
        tl_sleep_ms(1000);
    }
    ladder_t L;
    ladder_get(&A7, &L);
    pl_t ps[MAX_RUNGS + 1];
    int n = L.n;
    for (int i = 0; i < L.n; i++)
        pl_get(&A7, L.name[i], NULL, &ps[i]);
    pl_get(&A7, L.audio, NULL, &ps[n++]);
    int64_t msns[64];
    int nc = common_msns(ps, n, msns, 64);
    ck_assert_msg(nc >= 2, "only %d MSNs on every rendition", nc);
    int64_t first = msns[0], last = msns[nc - 1];
    double a0 = seg_start(&A7, &ps[n - 1], first, NULL, NULL);
    double a1 = seg_start(&A7, &ps[n - 1], last, NULL, NULL);
    double worst = 0;
    for (int i = 0; i < L.n; i++) {
        double v0 = seg_start(&A7, &ps[i], first, NULL, NULL);
        double v1 = seg_start(&A7, &ps[i], last, NULL, NULL);
        double d0 = a0 - v0, d1 = a1 - v1;
        tl_note("%s: audio - video at segment %lld: %+.2f ms, at %lld "
                "(%.1f s later): %+.2f ms; drift %+.2f ms",
                L.name[i], (long long)first, d0 * 1e3, (long long)last,
                v1 - v0, d1 * 1e3, (d1 - d0) * 1e3);
        worst = fmax(worst, fabs(d1 - d0));
        ck_assert_msg(v1 - v0 >= 36.0,
                      "%s: only %.1f s between the first and last common "
                      "segment",
                      L.name[i], v1 - v0);
        ck_assert_msg(fabs(d1 - d0) < FRAME_S,
                      "%s: audio drifted %.2f ms against video over %.1f s "
                      "(segment %lld: audio %.4f video %.4f; segment %lld: "
                      "audio %.4f video %.4f)",
                      L.name[i], (d1 - d0) * 1e3, v1 - v0, (long long)first,
                      a0, v0, (long long)last, a1, v1);
    }
    /* The whole series on the first rung (quantisation vs trend). */
    char series[1024] = "";
    double ds[64];
    for (int k = 0; k < nc; k++) {
        ds[k] = seg_start(&A7, &ps[n - 1], msns[k], NULL, NULL) -
                seg_start(&A7, &ps[0], msns[k], NULL, NULL);
        size_t sl = strlen(series);
        snprintf(series + sl, sizeof(series) - sl, "%s%+.1f", k ? " " : "",
                 ds[k] * 1e3);
    }
    tl_note("audio - %s per segment (ms): %s", L.name[0], series);
    /* 4 segments = 8 s = 375 AAC frames: a mean over 4 cancels the
     * boundary quantisation; the stream's first segment is left out. */
    if (nc >= 9) {
        double m0 = 0, m1 = 0;
        for (int k = 0; k < 4; k++) {
            m0 += ds[1 + k] / 4;
            m1 += ds[nc - 4 + k] / 4;
        }
        tl_note("A/V trend (mean of 4 segments, 2nd..5th vs last 4): "
                "%+.2f ms -> %+.2f ms",
                m0 * 1e3, m1 * 1e3);
    }
    int pdt_checked = 0;
    for (int k = 0; k < nc; k++) {
        const tl_seg_t *s0 = tl_m3u8_seg(&ps[0].m, msns[k]);
        for (int i = 1; i < L.n; i++) {
            const tl_seg_t *s = tl_m3u8_seg(&ps[i].m, msns[k]);
            ck_assert_msg(s->pdt_ms == s0->pdt_ms,
                          "segment %lld: PROGRAM-DATE-TIME %lld on %s, %lld "
                          "on %s",
                          (long long)msns[k], (long long)s->pdt_ms, L.name[i],
                          (long long)s0->pdt_ms, L.name[0]);
            if (s->pdt_ms >= 0)
                pdt_checked++;
        }
    }
    tl_note("A/V drift: worst %.2f ms over segments %lld..%lld; %d PDTs "
            "equal across video rungs",
            worst * 1e3, (long long)first, (long long)last, pdt_checked);
    ck_assert_msg(pdt_checked > 0, "no EXT-X-PROGRAM-DATE-TIME to compare");
    for (int i = 0; i < n; i++)
        tl_m3u8_free(&ps[i].m);
}
END_TEST

START_TEST(test_720_zz_clean_exit)
{
    tl_assert_clean_exit(&A7.f.podium, 20000);
}
END_TEST

/* ---- case "1080p" ------------------------------------------------------- */

#define N1080 "abr1080"
static abr_t A10;
static const char *const SETS1080[] = {"grace_period_ms=10000", NULL};

static void setup1080(void)
{
    ck_assert_msg(abr_start(&A10, "abr1080", SETS1080, N1080, 1920, 1080, 0,
                            3) == 0,
                  "podium + 1080p publisher did not come up");
    char path[256];
    tl_playlist_path(path, sizeof(path), N1080, "360p");
    tl_wait_segments(port_of(&A10), path, 3, 60000);
}

static void teardown1080(void)
{
    tl_fixture_stop(&A10.f);
}

START_TEST(test_1080_rungs)
{
    ladder_t L;
    ladder_get(&A10, &L);
    const char *names[] = {"source", "720p", "480p", "360p", NULL};
    const int wh[] = {1920, 1080, 1280, 720, 854, 480, 640, 360};
    ladder_expect(&L, names, wh);
    const char *want[] = {NULL, "avc1.64001f", "avc1.4d401f", "avc1.4d401e",
                          NULL};
    check_codecs(&A10, want);
}
END_TEST

START_TEST(test_1080_aligned)
{
    check_alignment(&A10, 4);
}
END_TEST

START_TEST(test_1080_idr)
{
    check_idr(&A10, 4);
}
END_TEST

START_TEST(test_1080_zz_clean_exit)
{
    tl_assert_clean_exit(&A10.f.podium, 20000);
}
END_TEST

/* ---- case "240p": never upscale ----------------------------------------- */

START_TEST(test_240p_source_only)
{
    abr_t a;
    ck_assert(abr_start(&a, "abr240", NULL, "abr240", 426, 240, 0, 2) == 0);
    ladder_t L;
    ladder_get(&a, &L);
    printf("---- multivariant\n%s----\n", L.body);
    const char *names[] = {"source", NULL};
    const int wh[] = {426, 240};
    ladder_expect(&L, names, wh);
    const char *absent[] = {"720p", "480p", "360p"};
    for (int i = 0; i < 3; i++) {
        char p[256];
        tl_playlist_path(p, sizeof(p), a.name, absent[i]);
        tl_resp_t r;
        ck_assert(tl_get(&r, 10000, "http://127.0.0.1:%d%s", port_of(&a), p) ==
                  0);
        ck_assert_msg(r.status == 404, "%s: status %ld, want 404", p,
                      r.status);
        tl_resp_free(&r);
    }
    pl_t au;
    pl_get(&a, L.audio, NULL, &au);
    ck_assert_msg(au.m.nsegs > 0, "no audio segments");
    tl_m3u8_free(&au.m);
    tl_resp_t r;
    tl_get_ok(port_of(&a), "/streams.json", &r);
    const char *rr = strstr((const char *)r.body, "\"renditions\":[");
    ck_assert_msg(rr, "no renditions: %s", (const char *)r.body);
    int rl = (int)strcspn(rr, "]");
    tl_note("240p streams.json: %.*s]", rl, rr);
    ck_assert_msg(strncmp(rr, "\"renditions\":[\"source\",\"audio\"]", 31) ==
                          0 ||
                      strncmp(rr, "\"renditions\":[\"audio\",\"source\"]",
                              31) == 0,
                  "renditions %.*s], want source and audio only", rl, rr);
    tl_resp_free(&r);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- reconnect helpers ------------------------------------------------------ */

/* Waits until every rendition in names has a segment after a
 * discontinuity and `after` segments from it on. */
static bool disc_ready(const abr_t *a, char names[][32], int n, int after)
{
    for (int i = 0; i < n; i++) {
        char p[256];
        tl_playlist_path(p, sizeof(p), a->name, names[i]);
        tl_m3u8_t m;
        char err[256];
        if (tl_fetch_m3u8(port_of(a), p, 5000, &m, NULL, err, sizeof(err))) {
            tl_m3u8_free(&m);
            return false;
        }
        int d = -1;
        for (int k = 0; k < m.nsegs; k++)
            if (m.segs[k].discontinuity)
                d = k;
        bool ok = d >= 0 && m.nsegs - d >= after;
        tl_m3u8_free(&m);
        if (!ok)
            return false;
    }
    return true;
}

/* Publishes (w1 x h1, mp3=false) for secs, then reconnects with w2 x h2
 * and mp3 for 14 s. Returns the last MSN per rendition before the switch
 * in last_before (names in L order, audio last). */
static void publish_then_switch(abr_t *a, const char *tag, const char *name,
                                int w1, int h1, int w2, int h2, bool mp3,
                                ladder_t *L, int64_t *last_before)
{
    ck_assert(abr_start(a, tag, NULL, name, w1, h1, 8, 2) == 0);
    ladder_get(a, L);
    ck_assert_msg(tl_pub_wait(&a->f.pub, 30000) == 0,
                  "first publisher (-t 8) still running");
    ck_assert_msg(WIFEXITED(a->f.pub.status) &&
                      WEXITSTATUS(a->f.pub.status) == 0,
                  "first publisher failed (wait status %d)", a->f.pub.status);
    /* What the first connection produced, once it is all in. */
    tl_sleep_ms(1500);
    for (int i = 0; i <= L->n; i++) {
        pl_t p;
        pl_get(a, i < L->n ? L->name[i] : L->audio, NULL, &p);
        last_before[i] = tl_m3u8_last_msn(&p.m);
        tl_m3u8_free(&p.m);
    }
    ck_assert(pub_spawn(&a->f.pub, a->f.dir, a->f.podium.rtmp_port, name, w2,
                        h2, 14, mp3) == 0);
    char names[MAX_RUNGS + 1][32];
    for (int i = 0; i < L->n; i++)
        snprintf(names[i], 32, "%s", L->name[i]);
    snprintf(names[L->n], 32, "%s", L->audio);
    int64_t t0 = tl_now_ms();
    while (!disc_ready(a, names, L->n + 1, 3)) {
        if (tl_now_ms() - t0 > 60000) {
            tl_fixture_dump(&a->f);
            for (int i = 0; i <= L->n; i++) {
                char p[256];
                tl_resp_t r;
                tl_playlist_path(p, sizeof(p), a->name, names[i]);
                if (tl_get(&r, 5000, "http://127.0.0.1:%d%s", port_of(a), p) ==
                    0)
                    printf("---- %s (last before the switch %lld)\n%s", p,
                           (long long)last_before[i], (const char *)r.body);
                tl_resp_free(&r);
            }
            ck_assert_msg(0, "60 s after the reconnect, not every rendition "
                             "has 3 segments after a discontinuity");
        }
        ck_assert_msg(tl_podium_alive(&a->f.podium), "podium died");
        tl_sleep_ms(500);
    }
    tl_note("%s: every rendition has 3 segments after the discontinuity "
            "%lld ms after the reconnect",
            tag, (long long)(tl_now_ms() - t0));
}

/* ---- case "resize" ------------------------------------------------------ */

START_TEST(test_resize_reconnect)
{
    abr_t a;
    ladder_t L;
    int64_t before[MAX_RUNGS + 1];
    publish_then_switch(&a, "abrresize", "abrresize", 640, 360, 960, 540,
                        false, &L, before);
    const char *names[] = {"source", "360p", NULL};
    const int wh[] = {640, 360, 640, 360};
    ladder_expect(&L, names, wh);

    ladder_t L2;
    ladder_get(&a, &L2);
    printf("---- multivariant after the reconnect\n%s----\n", L2.body);
    ck_assert_msg(L2.n == L.n, "%d rungs after the reconnect, %d before",
                  L2.n, L.n);
    pl_t ps[MAX_RUNGS];
    int64_t disc_msn = -1;
    for (int i = 0; i < L.n; i++) {
        ck_assert_msg(strcmp(L2.name[i], L.name[i]) == 0,
                      "rung %d: %s after the reconnect, %s before", i,
                      L2.name[i], L.name[i]);
        pl_get(&a, L.name[i], NULL, &ps[i]);
        const tl_seg_t *d = NULL;
        for (int k = 0; k < ps[i].m.nsegs; k++)
            if (ps[i].m.segs[k].discontinuity)
                d = &ps[i].m.segs[k];
        ck_assert_msg(d, "%s: no EXT-X-DISCONTINUITY", L.name[i]);
        tl_note("%s: last segment before %lld, discontinuity at %lld, "
                "now %lld, map %s",
                L.name[i], (long long)before[i], (long long)d->msn,
                (long long)tl_m3u8_last_msn(&ps[i].m), d->map_uri);
        if (i == 0)
            disc_msn = d->msn;
        ck_assert_msg(d->msn == disc_msn,
                      "discontinuity at %lld on %s, %lld on %s",
                      (long long)d->msn, L.name[i], (long long)disc_msn,
                      L.name[0]);
        ck_assert_msg(tl_m3u8_last_msn(&ps[i].m) >= before[i] + 2,
                      "%s did not advance after the reconnect (%lld -> "
                      "%lld)",
                      L.name[i], (long long)before[i],
                      (long long)tl_m3u8_last_msn(&ps[i].m));
        /* Every segment after it decodes, at the rung's size. */
        for (int k = 0; k < ps[i].m.nsegs; k++) {
            const tl_seg_t *s = &ps[i].m.segs[k];
            if (s->msn < disc_msn)
                continue;
            probe_t pr;
            seg_probe(&a, &ps[i], s, 0, &pr);
            int ww = i == 0 ? 960 : L.w[i], wh2 = i == 0 ? 540 : L.h[i];
            ck_assert_msg(pr.fwidth == ww && pr.fheight == wh2,
                          "%s segment %lld decodes %dx%d, want %dx%d",
                          L.name[i], (long long)s->msn, pr.fwidth, pr.fheight,
                          ww, wh2);
            ck_assert_msg(pr.packets > 0 && pr.frames == pr.packets &&
                              pr.key0 == 1,
                          "%s segment %lld: %ld of %ld frames decode, first "
                          "key %d (%s)",
                          L.name[i], (long long)s->msn, pr.frames, pr.packets,
                          pr.key0, pr.err);
        }
        if (i > 0)
            ck_assert_msg(L2.w[i] == L.w[i] && L2.h[i] == L.h[i],
                          "%s: RESOLUTION %dx%d after, %dx%d before",
                          L.name[i], L2.w[i], L2.h[i], L.w[i], L.h[i]);
    }
    tl_note("source RESOLUTION after the reconnect: %dx%d", L2.w[0], L2.h[0]);
    for (int i = 0; i < L.n; i++)
        tl_m3u8_free(&ps[i].m);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- case "mp3" --------------------------------------------------------- */

START_TEST(test_mp3_switch)
{
    abr_t a;
    ladder_t L;
    int64_t before[MAX_RUNGS + 1];
    publish_then_switch(&a, "abrmp3", "abrmp3", 320, 240, 320, 240, true, &L,
                        before);
    pl_t au;
    pl_get(&a, L.audio, NULL, &au);
    int64_t last = tl_m3u8_last_msn(&au.m);
    tl_note("audio: last segment %lld before the switch, %lld now",
            (long long)before[L.n], (long long)last);
    ck_assert_msg(last >= before[L.n] + 2,
                  "audio did not advance after the MP3 reconnect (%lld -> "
                  "%lld)",
                  (long long)before[L.n], (long long)last);
    int checked = 0;
    for (int k = 0; k < au.m.nsegs; k++) {
        const tl_seg_t *s = &au.m.segs[k];
        if (s->msn <= before[L.n])
            continue;
        probe_t pr;
        seg_probe(&a, &au, s, 0, &pr);
        tl_note("audio segment %lld (map %s): %s %d Hz, %ld/%ld frames "
                "decode",
                (long long)s->msn, s->map_uri, pr.codec, pr.sample_rate,
                pr.frames, pr.packets);
        ck_assert_msg(strcmp(pr.codec, "aac") == 0,
                      "audio segment %lld after the switch is %s, want aac",
                      (long long)s->msn, pr.codec);
        ck_assert_msg(pr.sample_rate == 48000,
                      "audio segment %lld after the switch at %d Hz, the "
                      "rendition started at 48000",
                      (long long)s->msn, pr.sample_rate);
        ck_assert_msg(pr.packets > 0 && pr.frames >= pr.packets - 1,
                      "audio segment %lld: %ld of %ld frames decode (%s)",
                      (long long)s->msn, pr.frames, pr.packets, pr.err);
        checked++;
    }
    ck_assert_msg(checked >= 2, "only %d audio segments after the switch",
                  checked);
    tl_m3u8_free(&au.m);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

static Suite *abr_suite(void)
{
    Suite *s = suite_create("abr");
    TCase *tc = tcase_create("720p");
    tcase_add_unchecked_fixture(tc, setup720, teardown720);
    tcase_set_timeout(tc, 200);
    tcase_add_test(tc, test_720_multivariant);
    tcase_add_test(tc, test_720_codecs);
    tcase_add_test(tc, test_720_streams_json);
    tcase_add_test(tc, test_720_rendition_reports);
    tcase_add_test(tc, test_720_blocking_each_rung);
    tcase_add_test(tc, test_720_transcode_latency);
    tcase_add_test(tc, test_720_aligned);
    tcase_add_test(tc, test_720_idr);
    tcase_add_test(tc, test_720_decoded);
    tcase_add_test(tc, test_720_av_sync);
    tcase_add_test(tc, test_720_zz_clean_exit);
    suite_add_tcase(s, tc);

    tc = tcase_create("1080p");
    tcase_add_unchecked_fixture(tc, setup1080, teardown1080);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_1080_rungs);
    tcase_add_test(tc, test_1080_aligned);
    tcase_add_test(tc, test_1080_idr);
    tcase_add_test(tc, test_1080_zz_clean_exit);
    suite_add_tcase(s, tc);

    tc = tcase_create("240p");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_240p_source_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("resize");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_resize_reconnect);
    suite_add_tcase(s, tc);

    tc = tcase_create("mp3");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_mp3_switch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(abr_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_abr: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
