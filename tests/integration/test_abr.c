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
 * - "bframes": an 854x480 source with B-frames (-bf 2, B-pyramid): every
 *   rung's segment presents its first picture (tfdt + trun composition
 *   offsets + edit list) at the source's time, with as many frames.
 * - "drift": source + one 180p rung (config file), 180 s of media read at
 *   3x: audio - video (mean of 4 segments = 375 AAC frames) at the start
 *   and at the end agree within a frame; nothing shed (a dropped picture
 *   is noted: it moves no timestamp).
 * - "shed": 720p source, x264 veryslow: the largest rung is shed, its
 *   playlist goes on with EXT-X-GAP segments at the source's MSNs, the
 *   kept rungs go on with real segments, the source is never shed.
 * - "nopass": a ladder of two encoded rungs (config file) from a source
 *   with 3 s GOPs: podium's own IDRs every 2 s, aligned on both rungs.
 * Podium gets a config file (for `ladder`) via tl_podium_start_config().
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

/* ---- publisher with options --------------------------------------------- */

typedef struct {
    int w, h;
    int duration_s;     /* 0 = until stopped */
    int gop;            /* frames between keyframes (-g, -keyint_min) */
    int bf;             /* B-frames (0: -tune zerolatency, no B-frames) */
    int readrate;       /* input speed x real time (1 = -re) */
    const char *preset; /* publisher's libx264 preset */
} pub_opts_t;

/* ffmpeg testsrc2 WxH@30 + sine 48 kHz AAC to live/<name>, read at
 * o->readrate x real time, libx264 with the given GOP and B-frames
 * (bf > 0: x264's default B-pyramid, no zerolatency). */
static int pub_spawn_opts(tl_pub_t *pub, const char *dir, int rtmp_port,
                          const char *name, const pub_opts_t *o)
{
    memset(pub, 0, sizeof(*pub));
    static int seq;
    snprintf(pub->log, sizeof(pub->log), "%s/ffmpeg-%s-%dx%d-o%d.log", dir,
             name, o->w, o->h, seq++);
    char src[128], url[256], dur[16], vb[16], rr[16], g[16], bf[16];
    snprintf(src, sizeof(src), "testsrc2=size=%dx%d:rate=%d", o->w, o->h,
             FPS);
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/%s", rtmp_port, name);
    snprintf(dur, sizeof(dur), "%d", o->duration_s);
    snprintf(vb, sizeof(vb), "%dk", o->h >= 720 ? 1000 : 400);
    snprintf(rr, sizeof(rr), "%d", o->readrate > 0 ? o->readrate : 1);
    snprintf(g, sizeof(g), "%d", o->gop);
    snprintf(bf, sizeof(bf), "%d", o->bf);
    char *argv[96];
    int n = 0;
    const char *head[] = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel",
                          "warning", "-readrate", rr, "-f", "lavfi", "-i",
                          src, "-readrate", rr, "-f", "lavfi", "-i",
                          "sine=frequency=440:sample_rate=48000", NULL};
    for (int i = 0; head[i]; i++)
        argv[n++] = (char *)head[i];
    if (o->duration_s > 0) {
        argv[n++] = "-t";
        argv[n++] = dur;
    }
    const char *rest[] = {"-map", "0:v", "-map", "1:a", "-c:v", "libx264",
                          "-preset", o->preset ? o->preset : "veryfast",
                          "-profile:v", "main", "-pix_fmt", "yuv420p", "-b:v",
                          vb, "-g", g, "-keyint_min", g, "-sc_threshold", "0",
                          "-bf", bf, NULL};
    for (int i = 0; rest[i]; i++)
        argv[n++] = (char *)rest[i];
    if (o->bf == 0) {
        argv[n++] = "-tune";
        argv[n++] = "zerolatency";
    }
    const char *tail[] = {"-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac",
                          "2", "-flvflags", "no_duration_filesize", "-f",
                          "flv", url, NULL};
    for (int i = 0; tail[i]; i++)
        argv[n++] = (char *)tail[i];
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

/* Starts podium (with config text written to a file in its dir when not
 * NULL, and sets) and a publisher with o to live/<name>; waits for
 * min_segments on rendition `wait_rung`. Prints the logs on failure. */
static int abr_start_opts(abr_t *a, const char *tag, const char *config,
                          const char *const *sets, const char *name,
                          const pub_opts_t *o, const char *wait_rung,
                          int min_segments)
{
    memset(a, 0, sizeof(*a));
    if (tl_mkdtemp(a->f.dir, sizeof(a->f.dir), tag) != 0)
        return -1;
    char cfg[400];
    snprintf(cfg, sizeof(cfg), "%s/podium.cfg", a->f.dir);
    if (config && tl_write_file(cfg, config, strlen(config), NULL, 0) != 0) {
        tl_rmtree(a->f.dir);
        return -1;
    }
    if (tl_podium_start_config(&a->f.podium, a->f.dir, config ? cfg : NULL,
                               sets) != 0) {
        tl_rmtree(a->f.dir);
        return -1;
    }
    a->f.started = true;
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->f.name, sizeof(a->f.name), "%s", name);
    if (pub_spawn_opts(&a->f.pub, a->f.dir, a->f.podium.rtmp_port, name, o) !=
        0) {
        printf("could not start ffmpeg\n");
        tl_fixture_stop(&a->f);
        return -1;
    }
    char path[256];
    tl_playlist_path(path, sizeof(path), name, wait_rung);
    if (tl_wait_segments(port_of(a), path, min_segments, 90000) != 0) {
        printf("%s: %d segments did not come within 90 s\n", path,
               min_segments);
        tl_fixture_dump(&a->f);
        tl_fixture_stop(&a->f);
        return -1;
    }
    return 0;
}

/* ---- ISOBMFF: samples of a segment, edit list of an init ------------------ */

/* Next box of that type among siblings from *off; advances *off past it. */
static int box_next(const uint8_t *d, size_t len, size_t *off,
                    const char *type, const uint8_t **pl, size_t *plen)
{
    while (*off + 8 <= len) {
        size_t at = *off;
        uint64_t sz = be32(d + at);
        size_t hdr = 8;
        if (sz == 1) {
            if (len - at < 16)
                return -1;
            sz = ((uint64_t)be32(d + at + 8) << 32) | be32(d + at + 12);
            hdr = 16;
        } else if (sz == 0) {
            sz = len - at;
        }
        if (sz < hdr || sz > len - at)
            return -1;
        *off = at + (size_t)sz;
        if (memcmp(d + at + 4, type, 4) == 0) {
            *pl = d + at + hdr;
            *plen = (size_t)sz - hdr;
            return 0;
        }
    }
    return -1;
}

typedef struct {
    uint64_t tfdt;      /* first moof's baseMediaDecodeTime */
    int64_t first_cto;  /* first sample's composition offset */
    int64_t min_ct;     /* earliest composition time (dts + cto) */
    long samples;       /* every trun of every moof */
    long reordered;     /* samples with a non-zero composition offset */
    int moofs;
} seg_samples_t;

/* Walks every moof/traf/trun of a segment: decode times from tfdt and the
 * sample durations (trun, else tfhd default, else trex_default), the
 * composition offsets (trun v1 signed, v0 unsigned). */
static int seg_samples(const uint8_t *d, size_t len, uint32_t trex_default,
                       seg_samples_t *out)
{
    memset(out, 0, sizeof(*out));
    out->min_ct = INT64_MAX;
    size_t off = 0;
    const uint8_t *moof;
    size_t ml;
    bool first = true;
    while (box_next(d, len, &off, "moof", &moof, &ml) == 0) {
        out->moofs++;
        const uint8_t *traf, *tfhd, *tfdt, *trun;
        size_t tl, hl, dl, rl;
        if (box_find(moof, ml, "traf", &traf, &tl) ||
            box_find(traf, tl, "tfdt", &tfdt, &dl) || dl < 8 ||
            box_find(traf, tl, "tfhd", &tfhd, &hl) || hl < 8)
            return -1;
        int64_t dts = tfdt[0] == 1 && dl >= 12
                          ? (int64_t)(((uint64_t)be32(tfdt + 4) << 32) |
                                      be32(tfdt + 8))
                          : (int64_t)be32(tfdt + 4);
        if (first)
            out->tfdt = (uint64_t)dts;
        uint32_t hf = be32(tfhd) & 0xffffff;
        size_t ho = 8; /* version/flags + track_ID */
        if (hf & 0x1)
            ho += 8;
        if (hf & 0x2)
            ho += 4;
        uint32_t def_dur = trex_default;
        if (hf & 0x8) {
            if (hl < ho + 4)
                return -1;
            def_dur = be32(tfhd + ho);
        }
        size_t toff = 0;
        while (box_next(traf, tl, &toff, "trun", &trun, &rl) == 0) {
            if (rl < 8)
                return -1;
            int ver = trun[0];
            uint32_t f = be32(trun) & 0xffffff;
            uint32_t count = be32(trun + 4);
            size_t p = 8;
            if (f & 0x1)
                p += 4;
            if (f & 0x4)
                p += 4;
            size_t per = ((f & 0x100) ? 4 : 0) + ((f & 0x200) ? 4 : 0) +
                         ((f & 0x400) ? 4 : 0) + ((f & 0x800) ? 4 : 0);
            if (count > 100000 || p + (size_t)count * per > rl)
                return -1;
            for (uint32_t i = 0; i < count; i++) {
                uint32_t dur = def_dur;
                int64_t cto = 0;
                if (f & 0x100) {
                    dur = be32(trun + p);
                    p += 4;
                }
                if (f & 0x200)
                    p += 4;
                if (f & 0x400)
                    p += 4;
                if (f & 0x800) {
                    uint32_t c = be32(trun + p);
                    cto = ver == 1 ? (int64_t)(int32_t)c : (int64_t)c;
                    p += 4;
                }
                if (first) {
                    out->first_cto = cto;
                    first = false;
                }
                if (cto != 0)
                    out->reordered++;
                if (dts + cto < out->min_ct)
                    out->min_ct = dts + cto;
                dts += dur;
                out->samples++;
            }
        }
    }
    return out->moofs > 0 && out->samples > 0 ? 0 : -1;
}

/* From an init: the first track's trex default_sample_duration (0 if
 * none) and the edit list's shift in media timescale units (presentation
 * = composition time + shift: empty edits add, the first media edit's
 * media_time subtracts). */
static int init_edits(const uint8_t *d, size_t len, uint32_t *trex_default,
                      int64_t *shift)
{
    *trex_default = 0;
    *shift = 0;
    const uint8_t *moov, *mvhd, *trak, *mdia, *mdhd, *edts, *elst, *mvex,
        *trex;
    size_t l1, l2, l3, l4, l5, l6, l7, l8, l9;
    if (box_find(d, len, "moov", &moov, &l1) ||
        box_find(moov, l1, "mvhd", &mvhd, &l2) || l2 < 24 ||
        box_find(moov, l1, "trak", &trak, &l3) ||
        box_find(trak, l3, "mdia", &mdia, &l4) ||
        box_find(mdia, l4, "mdhd", &mdhd, &l5))
        return -1;
    uint32_t movie_ts = be32(mvhd + (mvhd[0] == 1 ? 20 : 12));
    uint32_t media_ts = 0;
    if (init_timescale(d, len, &media_ts) != 0 || movie_ts == 0)
        return -1;
    if (box_find(moov, l1, "mvex", &mvex, &l8) == 0 &&
        box_find(mvex, l8, "trex", &trex, &l9) == 0 && l9 >= 16)
        *trex_default = be32(trex + 12);
    if (box_find(trak, l3, "edts", &edts, &l6) != 0 ||
        box_find(edts, l6, "elst", &elst, &l7) != 0 || l7 < 8)
        return 0;
    int ver = elst[0];
    uint32_t n = be32(elst + 4);
    size_t es = ver == 1 ? 20 : 12, p = 8;
    for (uint32_t i = 0; i < n && p + es <= l7; i++, p += es) {
        int64_t dur = ver == 1 ? (int64_t)(((uint64_t)be32(elst + p) << 32) |
                                           be32(elst + p + 4))
                               : (int64_t)be32(elst + p);
        int64_t mt = ver == 1
                         ? (int64_t)(((uint64_t)be32(elst + p + 8) << 32) |
                                     be32(elst + p + 12))
                         : (int64_t)(int32_t)be32(elst + p + 4);
        if (mt == -1) {
            *shift += dur * (int64_t)media_ts / (int64_t)movie_ts;
            continue;
        }
        *shift -= mt;
        break;
    }
    return 0;
}

typedef struct {
    double pres_s;   /* first presented picture (edit list applied) */
    double tfdt_s;   /* tfdt */
    int64_t cto0;    /* first sample's composition offset (ticks) */
    int64_t shift;   /* edit list shift (ticks) */
    uint32_t ts;     /* media timescale */
    long frames;     /* samples in the segment */
    long reordered;  /* samples with a composition offset */
} seg_pres_t;

/* Asserting: timing of segment msn of p. */
static void seg_pres(const abr_t *a, const pl_t *p, int64_t msn,
                     seg_pres_t *out)
{
    const tl_seg_t *s = tl_m3u8_seg(&p->m, msn);
    ck_assert_msg(s, "%s: no segment %lld", p->rung, (long long)msn);
    tl_resp_t init, seg;
    pl_media(a, p, s->map_uri, &init);
    pl_media(a, p, s->uri, &seg);
    uint32_t trex_def = 0;
    int64_t shift = 0;
    ck_assert_msg(init_timescale(init.body, init.len, &out->ts) == 0 &&
                      init_edits(init.body, init.len, &trex_def, &shift) == 0,
                  "%s: cannot read moov of %s", p->rung, s->map_uri);
    seg_samples_t ss;
    ck_assert_msg(seg_samples(seg.body, seg.len, trex_def, &ss) == 0,
                  "%s: cannot walk the moof/trun boxes of %s", p->rung,
                  s->uri);
    out->shift = shift;
    out->cto0 = ss.first_cto;
    out->frames = ss.samples;
    out->reordered = ss.reordered;
    out->tfdt_s = (double)ss.tfdt / out->ts;
    out->pres_s = (double)(ss.min_ct + shift) / out->ts;
    tl_resp_free(&init);
    tl_resp_free(&seg);
}

/* The inside of the "key":[...] list of live/<name> in /streams.json
 * into out. Returns 0, or -1 if the stream or the key is absent. */
static int streams_list(const char *body, const char *name, const char *key,
                        char *out, size_t outlen)
{
    char q[96];
    snprintf(q, sizeof(q), "\"live/%s\"", name);
    const char *s = strstr(body, q);
    if (!s)
        return -1;
    const char *next = strstr(s + 1, "{\"name\"");
    snprintf(q, sizeof(q), "\"%s\":[", key);
    const char *k = strstr(s, q);
    if (!k || (next && k > next))
        return -1;
    k += strlen(q);
    snprintf(out, outlen, "%.*s", (int)strcspn(k, "]"), k);
    return 0;
}

/* ---- case "bframes": a source with B-frames ------------------------------- */

START_TEST(test_bframes_source)
{
    abr_t a;
    const char *sets[] = {"x264_preset=ultrafast", "grace_period_ms=10000",
                          NULL};
    pub_opts_t o = {.w = 854, .h = 480, .gop = 60, .bf = 2, .readrate = 1,
                    .preset = "veryfast"};
    ck_assert(abr_start_opts(&a, "abrbf", NULL, sets, "abrbf", &o, "source",
                             2) == 0);
    char p360[256];
    tl_playlist_path(p360, sizeof(p360), a.name, "360p");
    ck_assert_msg(tl_wait_segments(port_of(&a), p360, 4, 60000) == 0,
                  "360p: no 4 segments within 60 s");
    ladder_t L;
    ladder_get(&a, &L);
    const char *names[] = {"source", "480p", "360p", NULL};
    const int wh[] = {854, 480, 854, 480, 640, 360};
    ladder_expect(&L, names, wh);

    /* The source really has B-frames (else this case proves nothing). */
    pl_t ps[MAX_RUNGS];
    for (int i = 0; i < L.n; i++)
        pl_get(&a, L.name[i], NULL, &ps[i]);
    int64_t msns[64];
    int nc = common_msns(ps, L.n, msns, 64);
    ck_assert_msg(nc >= 3, "only %d MSNs complete on every rung", nc);
    int checked = 0;
    for (int k = 0; k < nc; k++) {
        seg_pres_t t0;
        seg_pres(&a, &ps[0], msns[k], &t0);
        if (k == 0)
            tl_note("source segment %lld: tfdt %.4f s, first sample cto %lld "
                    "ticks, edit shift %lld ticks (timescale %u), first "
                    "picture %.4f s, %ld frames (%ld with a composition "
                    "offset)",
                    (long long)msns[k], t0.tfdt_s, (long long)t0.cto0,
                    (long long)t0.shift, t0.ts, t0.pres_s, t0.frames,
                    t0.reordered);
        ck_assert_msg(t0.reordered > 0,
                      "source segment %lld: no sample has a composition "
                      "offset: is the source without B-frames?",
                      (long long)msns[k]);
        for (int i = 1; i < L.n; i++) {
            seg_pres_t t;
            seg_pres(&a, &ps[i], msns[k], &t);
            if (k == 0)
                tl_note("%s segment %lld: tfdt %.4f s, cto %lld, shift %lld "
                        "(timescale %u), first picture %.4f s, %ld frames",
                        L.name[i], (long long)msns[k], t.tfdt_s,
                        (long long)t.cto0, (long long)t.shift, t.ts, t.pres_s,
                        t.frames);
            ck_assert_msg(fabs(t.pres_s - t0.pres_s) < 0.001,
                          "segment %lld: first picture at %.4f s on %s (tfdt "
                          "%.4f, cto %lld, shift %lld /%u) but %.4f s on "
                          "source (tfdt %.4f, cto %lld, shift %lld /%u)",
                          (long long)msns[k], t.pres_s, L.name[i], t.tfdt_s,
                          (long long)t.cto0, (long long)t.shift, t.ts,
                          t0.pres_s, t0.tfdt_s, (long long)t0.cto0,
                          (long long)t0.shift, t0.ts);
            if (t.frames != t0.frames) {
                /* Allowed only where podium says it dropped pictures of
                 * that rung (overload, e.g. under the sanitizers). */
                tl_resp_t r;
                tl_get_ok(port_of(&a), "/streams.json", &r);
                char drop[256] = "", q[40];
                streams_list((const char *)r.body, a.name, "dropping", drop,
                             sizeof(drop));
                tl_resp_free(&r);
                snprintf(q, sizeof(q), "\"%s\"", L.name[i]);
                ck_assert_msg(strstr(drop, q),
                              "segment %lld: %ld frames on %s, %ld on source "
                              "(dropping [%s])",
                              (long long)msns[k], t.frames, L.name[i],
                              t0.frames, drop);
                tl_note("segment %lld: %ld frames on %s, %ld on source: "
                        "streams.json lists %s as dropping [%s]",
                        (long long)msns[k], t.frames, L.name[i], t0.frames,
                        L.name[i], drop);
            }
            checked++;
        }
    }
    tl_note("%d MSNs x %d encoded rungs: first picture and frame count equal "
            "to the source's",
            nc, L.n - 1);
    for (int i = 0; i < L.n; i++)
        tl_m3u8_free(&ps[i].m);
    ck_assert_int_ge(checked, 2 * (L.n - 1));
    check_idr(&a, 12);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- case "drift": 180 s of media at 3x ------------------------------------ */

#define DRIFT_RATE 3
#define DRIFT_SECONDS 180

START_TEST(test_drift_long_run)
{
    abr_t a;
    const char *cfg =
        "window_segments = 120;\n"
        "grace_period_ms = 10000;\n"
        "x264_preset = \"ultrafast\";\n"
        "ladder = ( { name = \"source\"; passthrough = true; },\n"
        "           { name = \"180p\"; height = 180; bitrate_kbps = 200; } );\n";
    pub_opts_t o = {.w = 640, .h = 360, .duration_s = DRIFT_SECONDS,
                    .gop = 60, .bf = 0, .readrate = DRIFT_RATE,
                    .preset = "veryfast"};
    ck_assert(abr_start_opts(&a, "abrdrift", cfg, NULL, "abrdrift", &o,
                             "source", 1) == 0);
    int64_t t0 = tl_now_ms();
    int polls = 0;
    bool noted_drop = false;
    char last_shed[256] = "", last_drop[256] = "";
    for (;;) {
        tl_resp_t r;
        tl_get_ok(port_of(&a), "/streams.json", &r);
        char shed[256], drop[256];
        const char *body = (const char *)r.body;
        bool ok = streams_list(body, a.name, "shed", shed, sizeof(shed)) == 0 &&
                  streams_list(body, a.name, "dropping", drop,
                               sizeof(drop)) == 0;
        if (ok) {
            polls++;
            snprintf(last_shed, sizeof(last_shed), "%s", shed);
            snprintf(last_drop, sizeof(last_drop), "%s", drop);
        }
        if (ok && drop[0] && !shed[0] && !noted_drop) {
            /* a busy machine may make the rung drop a picture: that
             * lengthens a frame, it moves no timestamp (what this case
             * measures); a shed rung would (gap segments): that fails */
            noted_drop = true;
            tl_note("%lld ms into the %dx publish: dropping [%s] (noted, "
                    "not a failure)", (long long)(tl_now_ms() - t0),
                    DRIFT_RATE, drop);
        }
        if (ok && shed[0]) {
            tl_fixture_dump(&a.f);
            ck_assert_msg(0,
                          "%lld ms into the %dx publish: shed [%s] dropping "
                          "[%s]: %s",
                          (long long)(tl_now_ms() - t0), DRIFT_RATE, shed,
                          drop, body);
        }
        tl_resp_free(&r);
        if (tl_pub_wait(&a.f.pub, 0) == 0)
            break;
        ck_assert_msg(tl_podium_alive(&a.f.podium), "podium died");
        ck_assert_msg(tl_now_ms() - t0 < 150000,
                      "the publisher of %d s at %dx still runs after 150 s",
                      DRIFT_SECONDS, DRIFT_RATE);
        tl_sleep_ms(1000);
    }
    ck_assert_msg(WIFEXITED(a.f.pub.status) && WEXITSTATUS(a.f.pub.status) == 0,
                  "publisher failed (wait status %d)", a.f.pub.status);
    tl_note("%d s of media published at %dx in %lld ms; %d streams.json polls, "
            "shed [%s] dropping [%s] throughout",
            DRIFT_SECONDS, DRIFT_RATE, (long long)(tl_now_ms() - t0), polls,
            last_shed, last_drop);
    ck_assert_int_ge(polls, 5);
    tl_sleep_ms(2000); /* the transcoder's tail */

    ladder_t L;
    ladder_get(&a, &L);
    const char *names[] = {"source", "180p", NULL};
    const int wh[] = {640, 360, 320, 180};
    ladder_expect(&L, names, wh);
    pl_t ps[3];
    pl_get(&a, "source", NULL, &ps[0]);
    pl_get(&a, "180p", NULL, &ps[1]);
    pl_get(&a, L.audio, NULL, &ps[2]);
    int64_t msns[128];
    int nc = common_msns(ps, 3, msns, 128);
    tl_note("%d MSNs on source, 180p and audio (%lld..%lld)", nc,
            nc ? (long long)msns[0] : -1LL,
            nc ? (long long)msns[nc - 1] : -1LL);
    /* the stream's first segment is left out (as in test_720_av_sync) */
    ck_assert_msg(nc >= 13, "only %d MSNs on every rendition", nc);
    double a_first[4], a_last[4];
    for (int k = 0; k < 4; k++) {
        a_first[k] = seg_start(&a, &ps[2], msns[1 + k], NULL, NULL);
        a_last[k] = seg_start(&a, &ps[2], msns[nc - 4 + k], NULL, NULL);
    }
    for (int i = 0; i < 2; i++) {
        double m0 = 0, m1 = 0;
        char s0[160] = "", s1[160] = "";
        for (int k = 0; k < 4; k++) {
            double d0 = a_first[k] - seg_start(&a, &ps[i], msns[1 + k], NULL,
                                               NULL);
            double d1 = a_last[k] - seg_start(&a, &ps[i], msns[nc - 4 + k],
                                              NULL, NULL);
            m0 += d0 / 4;
            m1 += d1 / 4;
            size_t l0 = strlen(s0), l1 = strlen(s1);
            snprintf(s0 + l0, sizeof(s0) - l0, "%s%+.1f", k ? " " : "",
                     d0 * 1e3);
            snprintf(s1 + l1, sizeof(s1) - l1, "%s%+.1f", k ? " " : "",
                     d1 * 1e3);
        }
        double span = seg_start(&a, &ps[i], msns[nc - 4], NULL, NULL) -
                      seg_start(&a, &ps[i], msns[1], NULL, NULL);
        tl_note("%s: audio - video, segments %lld..%lld: %s ms (mean %+.2f); "
                "%lld..%lld (%.1f s later): %s ms (mean %+.2f); change "
                "%+.2f ms",
                L.name[i], (long long)msns[1], (long long)msns[4], s0,
                m0 * 1e3, (long long)msns[nc - 4], (long long)msns[nc - 1],
                span, s1, m1 * 1e3, (m1 - m0) * 1e3);
        ck_assert_msg(span >= 0.8 * DRIFT_SECONDS - 20,
                      "%s: only %.1f s between the first and the last window",
                      L.name[i], span);
        ck_assert_msg(fabs(m1 - m0) < FRAME_S,
                      "%s: audio - video moved %+.2f ms over %.1f s of media "
                      "(mean of 4 segments: %+.2f ms at %lld, %+.2f ms at "
                      "%lld)",
                      L.name[i], (m1 - m0) * 1e3, span, m0 * 1e3,
                      (long long)msns[1], m1 * 1e3, (long long)msns[nc - 4]);
    }
    for (int i = 0; i < 3; i++)
        tl_m3u8_free(&ps[i].m);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- case "shed": overload sheds the largest rung ---------------------------- */

START_TEST(test_shed_overload)
{
    abr_t a;
    const char *sets[] = {"x264_preset=veryslow", "grace_period_ms=10000",
                          NULL};
    pub_opts_t o = {.w = 1280, .h = 720, .gop = 60, .bf = 0, .readrate = 1,
                    .preset = "ultrafast"};
    ck_assert(abr_start_opts(&a, "abrshed", NULL, sets, "abrshed", &o,
                             "source", 1) == 0);
    char sp[256];
    tl_playlist_path(sp, sizeof(sp), a.name, "source");
    int64_t t0 = tl_now_ms();
    char shed[256] = "", drop[256] = "";
    char body[4096] = "";
    for (;;) {
        tl_resp_t r;
        tl_get_ok(port_of(&a), "/streams.json", &r);
        snprintf(body, sizeof(body), "%s", (const char *)r.body);
        tl_resp_free(&r);
        if (streams_list(body, a.name, "shed", shed, sizeof(shed)) == 0 &&
            shed[0])
            break;
        ck_assert_msg(tl_podium_alive(&a.f.podium), "podium died");
        if (tl_now_ms() - t0 > 30000) {
            tl_fixture_dump(&a.f);
            ck_assert_msg(0, "no rung shed within 30 s at veryslow: %s", body);
        }
        tl_sleep_ms(500);
    }
    streams_list(body, a.name, "dropping", drop, sizeof(drop));
    tl_m3u8_t m;
    tl_fetch_m3u8_ok(port_of(&a), sp, &m, NULL);
    int64_t p_msn = tl_m3u8_last_msn(&m);
    tl_m3u8_free(&m);
    tl_note("shed [%s] (dropping [%s]) seen %lld ms after the source's "
            "first segment; source's last segment then %lld",
            shed, drop, (long long)(tl_now_ms() - t0), (long long)p_msn);
    ck_assert_msg(strstr(shed, "\"source\"") == NULL, "source shed: [%s]",
                  shed);
    char first_shed[32];
    snprintf(first_shed, sizeof(first_shed), "%.*s",
             (int)strcspn(shed + 1, "\""), shed + 1);
    ck_assert_msg(strcmp(first_shed, "720p") == 0,
                  "shed_order largest shed %s first, want 720p", first_shed);
    /* The segment in progress at the shed may hold real pictures; from
     * the one after it on, every source segment is a gap on the rung. */
    int64_t from = p_msn + 2;
    ck_assert_msg(tl_wait_msn_above(port_of(&a), sp, from + 3, 40000) == 0,
                  "source did not reach segment %lld", (long long)from + 4);

    ladder_t L;
    ladder_get(&a, &L);
    const char *names[] = {"source", "720p", "480p", "360p", NULL};
    const int wh[] = {1280, 720, 1280, 720, 854, 480, 640, 360};
    ladder_expect(&L, names, wh);
    pl_t ps[MAX_RUNGS];
    for (int i = 0; i < L.n; i++)
        pl_get(&a, L.name[i], NULL, &ps[i]);
    tl_resp_t r;
    tl_get_ok(port_of(&a), "/streams.json", &r);
    ck_assert(streams_list((const char *)r.body, a.name, "shed", shed,
                           sizeof(shed)) == 0);
    streams_list((const char *)r.body, a.name, "dropping", drop, sizeof(drop));
    tl_resp_free(&r);
    tl_note("at the end: shed [%s], dropping [%s]", shed, drop);
    ck_assert_msg(strstr(shed, "\"source\"") == NULL, "source shed: [%s]",
                  shed);
    int64_t src_last = tl_m3u8_last_msn(&ps[0].m);
    for (int k = 0; k < ps[0].m.nsegs; k++) {
        const tl_seg_t *s = &ps[0].m.segs[k];
        ck_assert_msg(!s->gap, "source segment %lld is a GAP",
                      (long long)s->msn);
    }
    for (int i = 1; i < L.n; i++) {
        char q[40];
        snprintf(q, sizeof(q), "\"%s\"", L.name[i]);
        bool is_shed = strstr(shed, q) != NULL;
        int gaps = 0, real = 0;
        for (int k = 0; k < ps[0].m.nsegs; k++) {
            int64_t msn = ps[0].m.segs[k].msn;
            if (msn < from)
                continue;
            const tl_seg_t *s = tl_m3u8_seg(&ps[i].m, msn);
            if (strcmp(L.name[i], first_shed) == 0) {
                if (!s || !s->gap) {
                    printf("---- %s\n", ps[i].path);
                    tl_resp_t pr;
                    tl_get_ok(port_of(&a), ps[i].path, &pr);
                    printf("%s----\n", (const char *)pr.body);
                    tl_resp_free(&pr);
                }
                ck_assert_msg(s, "shed rung %s lacks segment %lld (source "
                              "has it; shed at ~%lld, rung's last %lld)",
                              L.name[i], (long long)msn, (long long)p_msn,
                              (long long)tl_m3u8_last_msn(&ps[i].m));
                ck_assert_msg(s->gap, "shed rung %s: segment %lld without "
                              "EXT-X-GAP (shed at ~%lld)",
                              L.name[i], (long long)msn, (long long)p_msn);
            }
            if (s && s->gap)
                gaps++;
            else if (s)
                real++;
        }
        tl_note("%s (%s): from segment %lld to the source's %lld: %d real, "
                "%d gap; last %lld",
                L.name[i], is_shed ? "shed" : "kept", (long long)from,
                (long long)src_last, real, gaps,
                (long long)tl_m3u8_last_msn(&ps[i].m));
        if (is_shed)
            ck_assert_msg(tl_m3u8_last_msn(&ps[i].m) >= src_last,
                          "shed rung %s stopped at %lld, source at %lld",
                          L.name[i], (long long)tl_m3u8_last_msn(&ps[i].m),
                          (long long)src_last);
        if (!is_shed) {
            ck_assert_msg(gaps == 0,
                          "%s is not shed but has %d gap segments after the "
                          "shed point %lld",
                          L.name[i], gaps, (long long)from);
            ck_assert_msg(real >= 2,
                          "%s: only %d real segments after the shed point "
                          "%lld (source at %lld, rung at %lld)",
                          L.name[i], real, (long long)from,
                          (long long)src_last,
                          (long long)tl_m3u8_last_msn(&ps[i].m));
        }
    }
    for (int i = 0; i < L.n; i++)
        tl_m3u8_free(&ps[i].m);
    tl_assert_clean_exit(&a.f.podium, 20000);
    tl_fixture_stop(&a.f);
}
END_TEST

/* ---- case "nopass": a ladder without a passthrough rung ---------------------- */

START_TEST(test_no_passthrough)
{
    abr_t a;
    const char *cfg =
        "grace_period_ms = 10000;\n"
        "x264_preset = \"ultrafast\";\n"
        "ladder = ( { name = \"360p\"; height = 360; bitrate_kbps = 800; },\n"
        "           { name = \"240p\"; height = 240; bitrate_kbps = 400; } );\n";
    pub_opts_t o = {.w = 640, .h = 360, .gop = 90, .bf = 0, .readrate = 1,
                    .preset = "veryfast"};
    ck_assert(abr_start_opts(&a, "abrnopass", cfg, NULL, "abrnopass", &o,
                             "360p", 4) == 0);
    ladder_t L;
    ladder_get(&a, &L);
    printf("---- multivariant\n%s----\n", L.body);
    const char *names[] = {"360p", "240p", NULL};
    const int wh[] = {640, 360, 426, 240};
    ladder_expect(&L, names, wh);
    tl_resp_t r;
    ck_assert(tl_get(&r, 10000, "http://127.0.0.1:%d/live/abrnopass/source/"
                     "index.m3u8", port_of(&a)) == 0);
    ck_assert_msg(r.status == 404, "no passthrough rung, yet source/ "
                  "answers %ld", r.status);
    tl_resp_free(&r);
    int64_t last[2];
    for (int i = 0; i < 2; i++) {
        pl_t p;
        pl_get(&a, L.name[i], NULL, &p);
        last[i] = tl_m3u8_last_msn(&p.m);
        ck_assert_msg(p.m.target_duration == 2, "%s: TARGETDURATION %d",
                      L.name[i], p.m.target_duration);
        char durs[512] = "";
        for (int k = 0; k < p.m.nsegs; k++) {
            const tl_seg_t *s = &p.m.segs[k];
            size_t dl = strlen(durs);
            snprintf(durs + dl, sizeof(durs) - dl, "%s%.3f", k ? " " : "",
                     s->duration);
            ck_assert_msg(fabs(s->duration - 2.0) <= FRAME_S + 1e-3,
                          "%s segment %lld: EXTINF %.5f, the segment target "
                          "is 2 s (source keyframes every 3 s)",
                          L.name[i], (long long)s->msn, s->duration);
        }
        tl_note("%s EXTINFs: %s", L.name[i], durs);
        tl_m3u8_free(&p.m);
    }
    check_alignment(&a, 6);
    check_idr(&a, 12);
    for (int i = 0; i < 2; i++) {
        char p[256];
        tl_playlist_path(p, sizeof(p), a.name, L.name[i]);
        ck_assert_msg(tl_wait_msn_above(port_of(&a), p, last[i] + 1, 30000) ==
                          0,
                      "%s did not advance past %lld", L.name[i],
                      (long long)last[i] + 1);
    }
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

    tc = tcase_create("bframes");
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_bframes_source);
    suite_add_tcase(s, tc);

    tc = tcase_create("drift");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_drift_long_run);
    suite_add_tcase(s, tc);

    tc = tcase_create("shed");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_shed_overload);
    suite_add_tcase(s, tc);

    tc = tcase_create("nopass");
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_no_passthrough);
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
