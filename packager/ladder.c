/*
 * packager/ladder.c - which rungs of the configured ladder a source gets.
 *
 * Pure functions, no state, any thread. The configured ladder (pd_rung_t,
 * already validated by core/config.c) is resolved against the source's
 * display size and frame rate:
 *   - a rung's height is the output's short side; the long side follows
 *     the source's display aspect (pixels x SAR), rounded to even;
 *   - never upscale: a rung whose short side exceeds the source's display
 *     short side is left out (an equal one stays);
 *   - outputs have square pixels and even sizes within the display size;
 *   - the frame rate never exceeds the source's; NTSC rates stay exact;
 *   - zero maxrate / bufsize / level are resolved (level from Table A-1).
 * The passthrough rung (if any) comes first with the source's own pixel
 * size, then the encoded rungs, largest first.
 */
#include "transcode.h"

#include "../core/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- H.264 levels ------------------------------------------------------ */

/* ITU-T H.264 Table A-1 (level 1b left out): max macroblocks per second,
 * max frame size in macroblocks, max video bitrate in kbit/s for the
 * Baseline/Main profiles (High: x 1.25, Table A-2 cpbBrVclFactor). */
static const struct {
    int level;
    long max_mbps;
    long max_fs;
    long max_br;
} levels[] = {
    {10, 1485, 99, 64},          {11, 3000, 396, 192},
    {12, 6000, 396, 384},        {13, 11880, 396, 768},
    {20, 11880, 396, 2000},      {21, 19800, 792, 4000},
    {22, 20250, 1620, 4000},     {30, 40500, 1620, 10000},
    {31, 108000, 3600, 14000},   {32, 216000, 5120, 20000},
    {40, 245760, 8192, 20000},   {41, 245760, 8192, 50000},
    {42, 522240, 8704, 50000},   {50, 589824, 22080, 135000},
    {51, 983040, 36864, 240000}, {52, 2073600, 36864, 240000},
    {60, 4177920, 139264, 240000}, {61, 8355840, 139264, 480000},
    {62, 16711680, 139264, 800000},
};

int pkg_h264_level(int w, int h, double fps, int maxrate_kbps,
                   const char *profile)
{
    if (w <= 0 || h <= 0 || w > 65536 || h > 65536)
        return 0;
    if (!(fps > 0) || !isfinite(fps))
        fps = 30; /* unknown: the same assumption as pkg_ladder_select */
    long mbw = (w + 15) / 16, mbh = (h + 15) / 16;
    long fs = mbw * mbh;
    double mbps = (double)fs * fps;
    double factor = profile && strcmp(profile, "high") == 0 ? 1.25 : 1.0;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        long max_fs = levels[i].max_fs;
        /* A.3.1/A.3.2: frame size, and each side at most sqrt(8 MaxFS). */
        if (fs > max_fs || mbw * mbw > 8 * max_fs || mbh * mbh > 8 * max_fs)
            continue;
        if (mbps > (double)levels[i].max_mbps * (1 + 1e-9))
            continue;
        if (maxrate_kbps > 0 &&
            (double)maxrate_kbps > (double)levels[i].max_br * factor)
            continue;
        return levels[i].level;
    }
    return 0;
}

/* ---- selection ---------------------------------------------------------- */

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* fps (> 0) as a rational: NTSC rates exact, near-integers as n/1, else
 * thousandths. */
static void fps_rational(double fps, int *num, int *den)
{
    static const int ntsc[] = {24000, 30000, 48000, 60000, 120000};
    for (size_t i = 0; i < sizeof(ntsc) / sizeof(ntsc[0]); i++)
        if (fabs(fps - ntsc[i] / 1001.0) < 0.005) {
            *num = ntsc[i];
            *den = 1001;
            return;
        }
    double r = round(fps);
    if (r >= 1 && fabs(fps - r) < 0.01) {
        *num = (int)r;
        *den = 1;
        return;
    }
    int n = (int)lround(fps * 1000);
    if (n < 1)
        n = 1;
    int g = gcd(n, 1000);
    *num = n / g;
    *den = 1000 / g;
}

/* x rounded to the nearest even number, at least 2. */
static int even_round(double x)
{
    long v = 2 * lround(x / 2);
    return v < 2 ? 2 : (int)v;
}

/* x rounded down to even, at least 2. */
static int even_floor(double x)
{
    long v = (long)floor(x) & ~1L;
    return v < 2 ? 2 : (int)v;
}

/* Fills an encoded rung from its configuration at w x h. */
static void resolve(const pd_rung_t *c, int w, int h, double src_fps,
                    int src_num, int src_den, pkg_rung_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%.31s", c->name);
    r->width = w;
    r->height = h;
    if (c->fps > 0 && c->fps < src_fps) {
        r->fps_num = c->fps;
        r->fps_den = 1;
    } else {
        r->fps_num = src_num;
        r->fps_den = src_den;
    }
    r->bitrate_kbps = c->bitrate_kbps > 0 ? c->bitrate_kbps : 1;
    r->maxrate_kbps = c->maxrate_kbps > 0 ? c->maxrate_kbps : r->bitrate_kbps;
    r->bufsize_kbps = c->bufsize_kbps > 0 ? c->bufsize_kbps : r->maxrate_kbps;
    const char *p = c->profile;
    if (strcmp(p, "baseline") && strcmp(p, "main") && strcmp(p, "high"))
        p = "main";
    snprintf(r->profile, sizeof(r->profile), "%s", p);
    r->level = c->level;
    if (r->level <= 0) {
        r->level = pkg_h264_level(w, h, (double)r->fps_num / r->fps_den,
                                  r->maxrate_kbps, r->profile);
        if (r->level == 0)
            r->level = 62;
    }
}

static void passthrough(const char *name, int src_w, int src_h, int src_num,
                        int src_den, pkg_rung_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%.31s", name);
    r->passthrough = true;
    r->width = src_w;
    r->height = src_h;
    r->fps_num = src_num;
    r->fps_den = src_den;
    /* bitrates, profile, level: 0 / "" (the source's, not known here) */
}

int pkg_ladder_select(const pd_config_t *cfg, int src_w, int src_h,
                      int sar_num, int sar_den, double src_fps,
                      pkg_rung_t *out, int *n)
{
    if (!cfg || !out || !n)
        return PD_EINVAL;
    *n = 0;
    if (src_w <= 0 || src_h <= 0 || src_w > 16384 || src_h > 16384)
        return PD_EINVAL;
    if (cfg->nrungs < 1 || cfg->nrungs > PD_LADDER_MAX)
        return PD_EINVAL;
    if (!(src_fps > 0) || !isfinite(src_fps) || src_fps > 1000)
        src_fps = 30;
    int src_num, src_den;
    fps_rational(src_fps, &src_num, &src_den);

    /* Display size. A SAR that is unset, absurd (beyond 8:1 either way) or
     * would make the picture wider than 16384 is taken as square. */
    double sar = 1.0;
    if (sar_num > 0 && sar_den > 0) {
        double s = (double)sar_num / sar_den;
        if (s >= 0.125 && s <= 8 && src_w * s <= 16384 && src_w * s >= 2)
            sar = s;
    }
    double dw = src_w * sar, dh = src_h;
    bool portrait = dh > dw;
    double short_side = portrait ? dw : dh, long_side = portrait ? dh : dw;

    const pd_rung_t *pass = NULL;
    for (int i = 0; i < cfg->nrungs; i++)
        if (cfg->ladder[i].passthrough && !pass)
            pass = &cfg->ladder[i];

    pkg_rung_t tmp[PD_LADDER_MAX];
    int k = 0;
    if (pass || !cfg->transcode)
        passthrough(pass ? pass->name : "source", src_w, src_h, src_num,
                    src_den, &tmp[k++]);
    if (!cfg->transcode) {
        memcpy(out, tmp, sizeof(tmp[0]));
        *n = 1;
        return PD_OK;
    }

    int first_enc = k;
    const pd_rung_t *first_cfg = NULL;
    for (int i = 0; i < cfg->nrungs; i++) {
        const pd_rung_t *c = &cfg->ladder[i];
        if (c->passthrough || c->height < 2)
            continue;
        if (!first_cfg)
            first_cfg = c;
        int s = c->height & ~1;
        if (s > short_side + 1e-6)
            continue; /* never upscale */
        int l = even_round(s * long_side / short_side);
        int lmax = even_floor(long_side + 1e-6);
        if (l > lmax)
            l = lmax;
        if (l < s)
            l = s;
        pkg_rung_t r;
        resolve(c, portrait ? s : l, portrait ? l : s, src_fps, src_num,
                src_den, &r);
        bool dup = false;
        for (int j = first_enc; j < k; j++)
            dup |= tmp[j].width == r.width && tmp[j].height == r.height &&
                   (int64_t)tmp[j].fps_num * r.fps_den ==
                       (int64_t)r.fps_num * tmp[j].fps_den;
        if (!dup)
            tmp[k++] = r;
    }
    if (k == 0 && first_cfg) /* small source, no passthrough */
        resolve(first_cfg, even_floor(dw + 1e-6), even_floor(dh), src_fps,
                src_num, src_den, &tmp[k++]);
    if (k == 0)
        return PD_EINVAL; /* not reachable with a validated config */

    /* Encoded rungs largest first (pixels, then frame rate); stable. */
    for (int i = first_enc + 1; i < k; i++) {
        pkg_rung_t r = tmp[i];
        int64_t px = (int64_t)r.width * r.height;
        int j = i;
        while (j > first_enc) {
            const pkg_rung_t *p = &tmp[j - 1];
            int64_t ppx = (int64_t)p->width * p->height;
            bool after = ppx > px ||
                         (ppx == px && (int64_t)p->fps_num * r.fps_den >=
                                           (int64_t)r.fps_num * p->fps_den);
            if (after)
                break;
            tmp[j] = tmp[j - 1];
            j--;
        }
        tmp[j] = r;
    }
    memcpy(out, tmp, sizeof(tmp[0]) * (size_t)k);
    *n = k;
    return PD_OK;
}
