/*
 * tests/integration/test_live.c - the live playlists as a client sees
 * them: multivariant attributes, media playlist structure, agreement
 * between renditions, advancing in time, HTTP headers and delta updates.
 *
 * One podium and one ffmpeg publisher (1 s GOP, 1 s segments, 12-segment
 * window so that CAN-SKIP-UNTIL = 6 x TD is shorter than the window) are
 * shared by every test of the case; the setup waits for 9 segments. The
 * checks follow the LL-HLS checklist (shared/reference/llhls-checklist.md,
 * the rule numbers are quoted in the messages).
 */
#include "tests/lib/fixture.h"
#include "tests/lib/testlib.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME "live1"
#define WINDOW 12

static tl_fixture_t F;
static const char *const SETS[] = {"segment_target_ms=1000",
                                   "part_target_ms=334", "window_segments=12",
                                   "grace_period_ms=10000", NULL};

static void setup(void)
{
    int rc = tl_fixture_start(&F, "live", SETS, NAME, 1000, 0, 9, 60000);
    ck_assert_msg(rc == 0, "podium + publisher did not come up");
}

static void teardown(void)
{
    tl_fixture_stop(&F);
}

static int port(void)
{
    return F.podium.http_port;
}

static void path_of(char *out, size_t len, const char *rendition)
{
    tl_playlist_path(out, len, NAME, rendition);
}

/* ---- multivariant ------------------------------------------------------ */

START_TEST(test_multivariant)
{
    char mv[256];
    path_of(mv, sizeof(mv), NULL);
    tl_m3u8_t m;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port(), mv, &m, &r);
    printf("---- %s\n%s----\n", mv, (const char *)r.body);
    ck_assert_msg(tl_content_type_is(&r, "application/vnd.apple.mpegurl"),
                  "A1: multivariant Content-Type");
    ck_assert_msg(m.multivariant, "B: no EXT-X-STREAM-INF");
    ck_assert_msg(m.independent_segments,
                  "B9: EXT-X-INDEPENDENT-SEGMENTS missing");
    ck_assert_int_ge(m.nvariants, 1);

    /* The audio group (B8). */
    const char *audio_group = NULL;
    const char *audio_uri = NULL;
    int defaults = 0;
    for (int i = 0; i < m.nmedia; i++) {
        const tl_attrs_t *a = &m.media[i];
        ck_assert_msg(tl_attr(a, "TYPE") && tl_attr(a, "GROUP-ID") &&
                          tl_attr(a, "NAME"),
                      "B8: EXT-X-MEDIA needs TYPE, GROUP-ID and NAME");
        if (strcmp(tl_attr(a, "TYPE"), "AUDIO") != 0)
            continue;
        audio_group = tl_attr(a, "GROUP-ID");
        audio_uri = tl_attr(a, "URI");
        const char *def = tl_attr(a, "DEFAULT");
        const char *autos = tl_attr(a, "AUTOSELECT");
        if (def && strcmp(def, "YES") == 0) {
            defaults++;
            ck_assert_msg(!autos || strcmp(autos, "YES") == 0,
                          "B8: DEFAULT=YES with AUTOSELECT=%s", autos);
        }
    }
    ck_assert_msg(audio_group, "B8: no EXT-X-MEDIA:TYPE=AUDIO");
    ck_assert_msg(audio_uri, "B8: audio rendition without URI");
    ck_assert_int_le(defaults, 1);

    for (int i = 0; i < m.nvariants; i++) {
        const tl_attrs_t *a = &m.variants[i].attrs;
        int64_t bw = 0, abw = 0;
        ck_assert_msg(tl_parse_int(tl_attr(a, "BANDWIDTH"), &bw) == 0 && bw > 0,
                      "B2: BANDWIDTH missing or not a positive integer");
        ck_assert_msg(
            tl_parse_int(tl_attr(a, "AVERAGE-BANDWIDTH"), &abw) == 0 && abw > 0,
            "B4: AVERAGE-BANDWIDTH missing or not positive");
        const char *codecs = tl_attr(a, "CODECS");
        ck_assert_msg(codecs, "B3: CODECS missing");
        /* avc1.xxxxxx and mp4a.40.2, in either order, nothing else. */
        char c[256];
        snprintf(c, sizeof(c), "%s", codecs);
        char *save = NULL;
        int n_avc = 0, n_aac = 0, n_other = 0;
        char avc[32] = "";
        for (char *t = strtok_r(c, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (strncmp(t, "avc1.", 5) == 0 && strlen(t) == 11 &&
                strspn(t + 5, "0123456789abcdefABCDEF") == 6) {
                n_avc++;
                snprintf(avc, sizeof(avc), "%s", t);
            } else if (strcmp(t, "mp4a.40.2") == 0) {
                n_aac++;
            } else {
                n_other++;
            }
        }
        ck_assert_msg(n_avc == 1 && n_aac == 1 && n_other == 0,
                      "B3: CODECS=\"%s\", want avc1.xxxxxx,mp4a.40.2", codecs);
        const char *res = tl_attr(a, "RESOLUTION");
        char want[32];
        snprintf(want, sizeof(want), "%dx%d", TL_WIDTH, TL_HEIGHT);
        ck_assert_msg(res && strcmp(res, want) == 0,
                      "B5: RESOLUTION=%s, the source is %s",
                      res ? res : "(none)", want);
        double fr = 0;
        const char *frs = tl_attr(a, "FRAME-RATE");
        ck_assert_msg(frs && tl_parse_decimal(frs, &fr) == 0,
                      "B6: FRAME-RATE missing or malformed");
        const char *dot = strchr(frs, '.');
        ck_assert_msg(!dot || strlen(dot + 1) <= 3,
                      "B6: FRAME-RATE=%s has more than 3 decimals", frs);
        /* Three decimals of the real rate: 30 fps is 30.000, not 29.970. */
        ck_assert_msg(fabs(fr - TL_FPS) < 0.0015,
                      "B6: FRAME-RATE=%s, the source is %d fps", frs, TL_FPS);
        const char *ag = tl_attr(a, "AUDIO");
        ck_assert_msg(ag && strcmp(ag, audio_group) == 0,
                      "B8: AUDIO=\"%s\" does not name group \"%s\"",
                      ag ? ag : "", audio_group);

        /* The variant's playlist, and CODECS against the init's avcC. */
        char vpath[512], init_path[512];
        ck_assert(tl_resolve(mv, m.variants[i].uri, vpath, sizeof(vpath)) == 0);
        tl_m3u8_t vm;
        tl_fetch_m3u8_ok(port(), vpath, &vm, NULL);
        ck_assert_msg(!vm.multivariant && vm.nsegs > 0,
                      "variant URI %s is not a media playlist",
                      m.variants[i].uri);
        ck_assert(tl_resolve(vpath, vm.map_uri, init_path, sizeof(init_path)) ==
                  0);
        tl_resp_t ir;
        tl_get_ok(port(), init_path, &ir);
        char from_init[32];
        ck_assert_msg(tl_avc1_codec_from_init(ir.body, ir.len, from_init,
                                              sizeof(from_init)) == 0,
                      "no avcC in %s", init_path);
        ck_assert_msg(strcasecmp(from_init, avc) == 0,
                      "B3: CODECS says %s, the init's avcC says %s", avc,
                      from_init);

        /* Measured bitrate (video + audio segments of the window) against
         * the declared ones: loose bounds (B10/B11 need an hour). */
        char apath[512];
        ck_assert(tl_resolve(mv, audio_uri, apath, sizeof(apath)) == 0);
        tl_m3u8_t am;
        tl_fetch_m3u8_ok(port(), apath, &am, NULL);
        double bits = 0, secs = 0, peak = 0;
        for (int s = 0; s < vm.nsegs; s++) {
            const tl_seg_t *as = tl_m3u8_seg(&am, vm.segs[s].msn);
            if (!as)
                continue;
            char p1[512], p2[512];
            tl_resp_t r1, r2;
            ck_assert(tl_resolve(vpath, vm.segs[s].uri, p1, sizeof(p1)) == 0);
            ck_assert(tl_resolve(apath, as->uri, p2, sizeof(p2)) == 0);
            tl_get_ok(port(), p1, &r1);
            tl_get_ok(port(), p2, &r2);
            double b = 8.0 * (double)(r1.len + r2.len);
            bits += b;
            secs += vm.segs[s].duration;
            if (vm.segs[s].duration > 0.5 && b / vm.segs[s].duration > peak)
                peak = b / vm.segs[s].duration;
            tl_resp_free(&r1);
            tl_resp_free(&r2);
        }
        ck_assert(secs > 0);
        double avg = bits / secs;
        tl_note("BANDWIDTH=%lld AVERAGE-BANDWIDTH=%lld measured avg=%.0f "
                "peak(segment)=%.0f bps over %.1f s",
                (long long)bw, (long long)abw, avg, peak, secs);
        ck_assert_msg(avg <= 2.0 * (double)abw,
                      "B10: measured %.0f bps, AVERAGE-BANDWIDTH %lld", avg,
                      (long long)abw);
        ck_assert_msg(peak <= 2.0 * (double)bw,
                      "B11: measured peak %.0f bps, BANDWIDTH %lld", peak,
                      (long long)bw);
        ck_assert_msg(abw <= bw * 2,
                      "AVERAGE-BANDWIDTH %lld far above BANDWIDTH %lld",
                      (long long)abw, (long long)bw);
        tl_resp_free(&ir);
        tl_m3u8_free(&vm);
        tl_m3u8_free(&am);
    }
    tl_resp_free(&r);
    tl_m3u8_free(&m);
}
END_TEST

/* ---- media playlist structure ------------------------------------------ */

/* Every structural rule of one media playlist (C, E, F, I, J). */
static void check_media_playlist(const char *rendition, const char *other)
{
    char path[256];
    path_of(path, sizeof(path), rendition);
    tl_m3u8_t m;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port(), path, &m, &r);
    ck_assert_msg(tl_content_type_is(&r, "application/vnd.apple.mpegurl"),
                  "A1: %s Content-Type", path);
    ck_assert_msg(!m.multivariant, "%s is not a media playlist", path);

    /* C1, C6 */
    ck_assert_msg(m.version >= 6, "C6: EXT-X-VERSION %d < 6 (EXT-X-MAP)",
                  m.version);
    ck_assert_int_ge(m.target_duration, 1);
    double total = 0;
    for (int i = 0; i < m.nsegs; i++) {
        const tl_seg_t *s = &m.segs[i];
        ck_assert_msg(lround(s->duration) <= m.target_duration,
                      "C1: EXTINF %.5f of MSN %lld rounds above TD %d",
                      s->duration, (long long)s->msn, m.target_duration);
        ck_assert_msg(s->duration <= m.target_duration + 0.5,
                      "C1 (A-MUST): EXTINF %.5f exceeds TD %d by > 0.5 s",
                      s->duration, m.target_duration);
        ck_assert_msg(s->duration > 0, "EXTINF of MSN %lld is 0",
                      (long long)s->msn);
        int64_t um, up;
        ck_assert_msg(tl_parse_media_uri(s->uri, &um, &up) == 0 &&
                          um == s->msn && up == -1,
                      "segment URI %s does not name MSN %lld", s->uri,
                      (long long)s->msn);
        total += s->duration;
    }
    /* MSNs start at 1 (checklist 3.4). */
    ck_assert_msg(m.media_sequence >= 1, "MEDIA-SEQUENCE %lld < 1",
                  (long long)m.media_sequence);
    /* G5 */
    ck_assert_msg(m.nsegs >= 6, "G5: only %d segments listed (A-MUST 6)",
                  m.nsegs);
    ck_assert_msg(total >= 3.0 * m.target_duration,
                  "G5: playlist lasts %.3f s < 3 x TD", total);
    ck_assert_msg(m.nsegs <= WINDOW, "%d segments listed, window is %d",
                  m.nsegs, WINDOW);
    /* C7, C9, C10 */
    ck_assert_msg(m.nmaps >= 1 && m.map_uri[0], "C7: no EXT-X-MAP");
    ck_assert_msg(m.segs[0].pdt_ms > 0,
                  "C9: first segment has no EXT-X-PROGRAM-DATE-TIME");
    ck_assert_msg(!m.playlist_type[0], "C10: live playlist has PLAYLIST-TYPE");
    ck_assert_msg(!m.endlist, "live playlist has ENDLIST");
    ck_assert_msg(m.skipped < 0, "plain request answered with EXT-X-SKIP");
    double worst_pdt = 0;
    for (int i = 0; i + 1 < m.nsegs; i++) {
        const tl_seg_t *a = &m.segs[i], *b = &m.segs[i + 1];
        if (a->pdt_ms < 0 || b->pdt_ms < 0 || b->discontinuity)
            continue;
        double d = fabs((double)(b->pdt_ms - a->pdt_ms) - a->duration * 1e3);
        if (d > worst_pdt)
            worst_pdt = d;
    }
    tl_note("%s: %d segments (%.3f s), TD %d, PDT step vs EXTINF worst "
            "%.0f ms",
            rendition, m.nsegs, total, m.target_duration, worst_pdt);
    ck_assert_msg(worst_pdt <= 500,
                  "C9: PDT step differs from EXTINF by %.0f ms", worst_pdt);

    /* F: server control. */
    ck_assert_msg(m.has_server_control, "F: no EXT-X-SERVER-CONTROL");
    const tl_attrs_t *sc = &m.server_control;
    const char *v = tl_attr(sc, "CAN-BLOCK-RELOAD");
    ck_assert_msg(v && strcmp(v, "YES") == 0, "H: CAN-BLOCK-RELOAD=YES");
    double phb = 0, hb = 0, csu = 0;
    ck_assert_msg(tl_parse_decimal(tl_attr(sc, "PART-HOLD-BACK"), &phb) == 0,
                  "E1: PART-HOLD-BACK missing");
    /* E: parts. */
    ck_assert_msg(m.part_target > 0, "E1: no EXT-X-PART-INF");
    ck_assert_msg(phb >= 2 * m.part_target - 1e-9,
                  "F2: PART-HOLD-BACK %.3f < 2 x PART-TARGET %.3f", phb,
                  m.part_target);
    tl_note("%s: PART-TARGET %.5f PART-HOLD-BACK %.3f (%s 3 x PT)", rendition,
            m.part_target, phb,
            phb >= 3 * m.part_target - 1e-9 ? ">=" : "< (Apple 14.3!)");
    if (tl_attr(sc, "HOLD-BACK")) {
        ck_assert(tl_parse_decimal(tl_attr(sc, "HOLD-BACK"), &hb) == 0);
        ck_assert_msg(hb >= 3.0 * m.target_duration - 1e-9,
                      "F1: HOLD-BACK %.3f < 3 x TD", hb);
    }
    if (tl_attr(sc, "CAN-SKIP-UNTIL")) {
        ck_assert(tl_parse_decimal(tl_attr(sc, "CAN-SKIP-UNTIL"), &csu) == 0);
        ck_assert_msg(csu >= 6.0 * m.target_duration - 1e-9,
                      "F3: CAN-SKIP-UNTIL %.3f < 6 x TD", csu);
    }
    ck_assert_msg(m.nparts > 0, "no EXT-X-PART listed");
    int short_parts = 0;
    for (int i = 0; i < m.nparts; i++) {
        const tl_part_t *p = &m.parts[i];
        ck_assert_msg(p->duration <= m.part_target + 1e-9,
                      "E3: part %lld.%d DURATION %.5f > PART-TARGET %.5f",
                      (long long)p->msn, p->index, p->duration, m.part_target);
        ck_assert_msg(p->msn >= 1, "part MSN %lld < 1", (long long)p->msn);
        int64_t um, up;
        ck_assert_msg(tl_parse_media_uri(p->uri, &um, &up) == 0 &&
                          um == p->msn && up == p->index,
                      "part URI %s is not %lld.%d.m4s", p->uri,
                      (long long)p->msn, p->index);
        bool last_of_parent = i + 1 == m.nparts || m.parts[i + 1].msn != p->msn;
        if (!p->independent && !p->gap && !last_of_parent &&
            p->duration < 0.85 * m.part_target - 1e-9)
            short_parts++;
    }
    ck_assert_msg(short_parts == 0,
                  "E4: %d parts shorter than 0.85 x PART-TARGET", short_parts);
    /* E5: a segment's parts (when listed) start at index 0 and sum to its
     * EXTINF. */
    int with_parts = 0;
    for (int i = 0; i < m.nsegs; i++) {
        const tl_seg_t *s = &m.segs[i];
        if (s->nparts == 0)
            continue;
        with_parts++;
        double sum = 0;
        for (int k = 0; k < s->nparts; k++)
            sum += m.parts[s->first_part + k].duration;
        double tol = 0.001 * (s->nparts + 1);
        ck_assert_msg(fabs(sum - s->duration) <= tol,
                      "E5: parts of MSN %lld sum to %.5f, EXTINF %.5f",
                      (long long)s->msn, sum, s->duration);
        if (strcmp(rendition, "source") == 0)
            ck_assert_msg(m.parts[s->first_part].independent,
                          "E6: first part of MSN %lld (starts with the "
                          "segment's IDR) lacks INDEPENDENT=YES",
                          (long long)s->msn);
    }
    ck_assert_msg(with_parts >= 1, "no complete segment lists its parts");
    for (int i = 1; i < m.nsegs; i++)
        ck_assert_msg(!(m.segs[i - 1].nparts > 0 && m.segs[i].nparts == 0),
                      "E9: parts removed out of order (MSN %lld)",
                      (long long)m.segs[i].msn);

    /* I1/I2: exactly one PART hint, naming the next part. */
    ck_assert_msg(m.npreload == 1, "I1: %d PRELOAD-HINTs", m.npreload);
    ck_assert_msg(strcmp(m.preload_type, "PART") == 0,
                  "I1: PRELOAD-HINT TYPE=%s", m.preload_type);
    const tl_part_t *lp = tl_m3u8_last_part(&m);
    int64_t hm, hp;
    ck_assert_msg(tl_parse_media_uri(m.preload_uri, &hm, &hp) == 0,
                  "hint URI %s", m.preload_uri);
    bool next_in_seg = hm == lp->msn && hp == lp->index + 1;
    bool next_seg = hm == lp->msn + 1 && hp == 0;
    ck_assert_msg(next_in_seg || next_seg,
                  "I2: hint %s is not the part after %s", m.preload_uri,
                  lp->uri);
    if (m.ntrailing == 0)
        ck_assert_msg(next_seg,
                      "I2: segment %lld is complete but the hint is %s",
                      (long long)lp->msn, m.preload_uri);

    /* J1/J2: one report for the other rendition. */
    ck_assert_msg(m.nreports == 1, "J1: %d RENDITION-REPORTs, want 1",
                  m.nreports);
    char rp[512], op[256];
    ck_assert(tl_resolve(path, m.reports[0].uri, rp, sizeof(rp)) == 0);
    path_of(op, sizeof(op), other);
    ck_assert_msg(strcmp(rp, op) == 0, "J2: report URI %s resolves to %s",
                  m.reports[0].uri, rp);
    ck_assert_msg(m.reports[0].last_msn >= 1 && m.reports[0].last_part >= 0,
                  "J2: report without LAST-MSN/LAST-PART");
    ck_assert_msg(llabs(m.reports[0].last_msn - lp->msn) <= 1,
                  "J3: report LAST-MSN %lld far from own %lld",
                  (long long)m.reports[0].last_msn, (long long)lp->msn);
    tl_resp_free(&r);
    tl_m3u8_free(&m);
}

START_TEST(test_media_playlist_video)
{
    check_media_playlist("source", "audio");
}
END_TEST

START_TEST(test_media_playlist_audio)
{
    check_media_playlist("audio", "source");
}
END_TEST

/* ---- renditions agree (F4, J4, J5) --------------------------------------- */

START_TEST(test_renditions_agree)
{
    char vp[256], ap[256], q[700];
    path_of(vp, sizeof(vp), "source");
    path_of(ap, sizeof(ap), "audio");
    tl_m3u8_t v, a;
    tl_fetch_m3u8_ok(port(), vp, &v, NULL);
    /* Ask audio for the same state (blocking until it has it). */
    const tl_part_t *lp = tl_m3u8_last_part(&v);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d", ap,
             (long long)lp->msn, lp->index);
    tl_fetch_m3u8_ok(port(), q, &a, NULL);

    ck_assert_msg(v.target_duration == a.target_duration,
                  "F4: TD video %d audio %d", v.target_duration,
                  a.target_duration);
    ck_assert_msg(strcmp(v.server_control_raw, a.server_control_raw) == 0,
                  "F4: SERVER-CONTROL differs:\n video %s\n audio %s",
                  v.server_control_raw, a.server_control_raw);
    tl_note("PART-INF video %s audio %s", v.part_inf_raw, a.part_inf_raw);
    ck_assert_msg(llabs(v.media_sequence - a.media_sequence) <= 1,
                  "MEDIA-SEQUENCE video %lld audio %lld",
                  (long long)v.media_sequence, (long long)a.media_sequence);
    int common = 0;
    double worst_pdt = 0, worst_dur = 0;
    for (int i = 0; i < v.nsegs; i++) {
        const tl_seg_t *sv = &v.segs[i];
        const tl_seg_t *sa = tl_m3u8_seg(&a, sv->msn);
        if (!sa)
            continue;
        common++;
        ck_assert_msg(sv->discontinuity == sa->discontinuity,
                      "J4: discontinuity differs at MSN %lld",
                      (long long)sv->msn);
        if (sv->pdt_ms >= 0 && sa->pdt_ms >= 0) {
            double d = fabs((double)(sv->pdt_ms - sa->pdt_ms));
            if (d > worst_pdt)
                worst_pdt = d;
        }
        ck_assert_msg((sv->pdt_ms >= 0) == (sa->pdt_ms >= 0),
                      "J4: PDT on MSN %lld in one rendition only",
                      (long long)sv->msn);
        double dd = fabs(sv->duration - sa->duration);
        if (dd > worst_dur)
            worst_dur = dd;
    }
    tl_note("renditions: %d common MSNs, worst PDT difference %.0f ms, "
            "worst EXTINF difference %.1f ms",
            common, worst_pdt, worst_dur * 1e3);
    ck_assert_msg(common >= v.nsegs - 1, "J4: only %d of %d MSNs in common",
                  common, v.nsegs);
    ck_assert_msg(worst_pdt <= 100, "J4: PDTs differ by %.0f ms for one MSN",
                  worst_pdt);
    ck_assert_msg(worst_dur <= 0.06,
                  "J5: audio/video EXTINF differ by %.1f ms for one MSN",
                  worst_dur * 1e3);

    /* J3: the report is as fresh as its playlist: asking the other
     * rendition for the reported part needs no wait. */
    const tl_report_t *rep = &v.reports[0];
    ck_assert(v.nreports == 1 && rep->last_msn >= 1 && rep->last_part >= 0);
    char rp[512];
    ck_assert(tl_resolve(vp, rep->uri, rp, sizeof(rp)) == 0);
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%lld", rp,
             (long long)rep->last_msn, (long long)rep->last_part);
    tl_m3u8_t o;
    tl_resp_t r;
    tl_fetch_m3u8_ok(port(), q, &o, &r);
    tl_note("J3: report %lld.%lld -> answered in %.0f ms",
            (long long)rep->last_msn, (long long)rep->last_part,
            r.ttfb_s * 1e3);
    ck_assert_msg(tl_m3u8_part(&o, rep->last_msn, (int)rep->last_part),
                  "J3: reported part %lld.%lld not in %s",
                  (long long)rep->last_msn, (long long)rep->last_part, rp);
    ck_assert_msg(r.ttfb_s < 1.0, "J3: reported part needed a %.3f s wait",
                  r.ttfb_s);
    tl_resp_free(&r);
    tl_m3u8_free(&o);
    tl_m3u8_free(&v);
    tl_m3u8_free(&a);
}
END_TEST

/* ---- advancing in time (G2-G4, D6, C2, E13) ------------------------------ */

typedef struct {
    int port;
    const char *path;
    int64_t ms;
} ms_arg_t;

static bool media_sequence_above(void *arg)
{
    ms_arg_t *w = arg;
    tl_m3u8_t m;
    char err[256];
    bool ok = tl_fetch_m3u8(w->port, w->path, 5000, &m, NULL, err,
                            sizeof(err)) == 0 &&
              m.media_sequence > w->ms;
    tl_m3u8_free(&m);
    return ok;
}

/* Everything both versions list must be identical (D6, G3). */
static void check_stable(const tl_m3u8_t *a, const tl_m3u8_t *b)
{
    for (int i = 0; i < a->nsegs; i++) {
        const tl_seg_t *sa = &a->segs[i];
        const tl_seg_t *sb = tl_m3u8_seg(b, sa->msn);
        if (!sb)
            continue;
        ck_assert_msg(strcmp(sa->uri, sb->uri) == 0 &&
                          fabs(sa->duration - sb->duration) < 1e-6 &&
                          sa->pdt_ms == sb->pdt_ms &&
                          sa->discontinuity == sb->discontinuity,
                      "D6/G3: MSN %lld changed between reloads",
                      (long long)sa->msn);
    }
}

START_TEST(test_playlist_advances)
{
    char vp[256];
    path_of(vp, sizeof(vp), "source");
    tl_m3u8_t m1, m2, m3;
    tl_fetch_m3u8_ok(port(), vp, &m1, NULL);
    int64_t last1 = tl_m3u8_last_msn(&m1);
    /* The oldest listed part, to fetch again once its tag is gone. */
    char old_part[512];
    tl_resp_t old_bytes;
    ck_assert(m1.nparts > 0);
    ck_assert(tl_resolve(vp, m1.parts[0].uri, old_part, sizeof(old_part)) == 0);
    tl_get_ok(port(), old_part, &old_bytes);
    int64_t t0 = tl_now_ms();
    ck_assert_msg(tl_wait_msn_above(port(), vp, last1 + 1, 15000) == 0,
                  "G2: last MSN stuck at %lld", (long long)last1);
    tl_note("2 segments appeared in %lld ms (TD %d)",
            (long long)(tl_now_ms() - t0), m1.target_duration);
    tl_fetch_m3u8_ok(port(), vp, &m2, NULL);
    ck_assert_int_gt(tl_m3u8_last_msn(&m2), last1);
    ck_assert_int_ge(m2.media_sequence, m1.media_sequence);
    ck_assert_msg(m1.target_duration == m2.target_duration,
                  "C2: TARGETDURATION changed %d -> %d", m1.target_duration,
                  m2.target_duration);
    ck_assert_msg(m1.part_target == m2.part_target, "E13: PART-TARGET changed");
    check_stable(&m1, &m2);

    /* Once the window is full, MEDIA-SEQUENCE moves (G4). */
    ms_arg_t w = {port(), vp, m2.media_sequence};
    t0 = tl_now_ms();
    ck_assert_msg(tl_wait_until(media_sequence_above, &w, 30000, 200),
                  "G4: MEDIA-SEQUENCE stuck at %lld with a %d-segment "
                  "window",
                  (long long)m2.media_sequence, WINDOW);
    tl_fetch_m3u8_ok(port(), vp, &m3, NULL);
    tl_note("MEDIA-SEQUENCE %lld -> %lld -> %lld, last MSN %lld -> %lld, "
            "%d segments listed",
            (long long)m1.media_sequence, (long long)m2.media_sequence,
            (long long)m3.media_sequence, (long long)last1,
            (long long)tl_m3u8_last_msn(&m3), m3.nsegs);
    ck_assert_msg(m3.nsegs >= 6 && m3.nsegs <= WINDOW,
                  "G5: %d segments listed with window %d", m3.nsegs, WINDOW);
    check_stable(&m2, &m3);

    /* E10: a part whose tag was removed stays downloadable (3 x TD). */
    bool listed = false;
    for (int i = 0; i < m3.nparts; i++)
        if (strcmp(m3.parts[i].uri, m1.parts[0].uri) == 0)
            listed = true;
    if (!listed) {
        tl_resp_t again;
        tl_get(&again, 10000, "http://127.0.0.1:%d%s", port(), old_part);
        tl_note("E10: part %s unlisted, GET -> %ld", m1.parts[0].uri,
                again.status);
        ck_assert_msg(again.status == 200 && again.len == old_bytes.len &&
                          memcmp(again.body, old_bytes.body, again.len) == 0,
                      "E10: removed part %s -> %ld (%zu bytes, was %zu)",
                      m1.parts[0].uri, again.status, again.len, old_bytes.len);
        tl_resp_free(&again);
    }
    tl_resp_free(&old_bytes);
    tl_m3u8_free(&m1);
    tl_m3u8_free(&m2);
    tl_m3u8_free(&m3);
}
END_TEST

/* ---- headers (A1, A7, A9, A13, L1, L2) ---------------------------------- */

static void check_cors(const tl_resp_t *r, const char *what)
{
    char v[256];
    ck_assert_msg(tl_header(r, "Access-Control-Allow-Origin", v, sizeof(v)) &&
                      strcmp(v, "*") == 0,
                  "A9: %s: Access-Control-Allow-Origin missing or not *", what);
    ck_assert_msg(tl_header(r, "Access-Control-Expose-Headers", v, sizeof(v)) &&
                      strcasestr(v, "age"),
                  "A9: %s: Access-Control-Expose-Headers lacks Age", what);
    if (tl_header(r, "Age", v, sizeof(v)))
        ck_assert_msg(strcmp(v, "0") == 0, "A13: %s: origin sent Age: %s", what,
                      v);
}

static bool is_mp4_type(const tl_resp_t *r)
{
    return tl_content_type_is(r, "video/mp4") ||
           tl_content_type_is(r, "audio/mp4") ||
           tl_content_type_is(r, "video/iso.segment") ||
           tl_content_type_is(r, "application/mp4");
}

static void check_short_error(const tl_resp_t *r, const char *what, int td)
{
    char v[256];
    const char *cc = tl_header(r, "Cache-Control", v, sizeof(v));
    long age = tl_max_age(r);
    tl_note("%s: status %ld, Cache-Control: %s", what, r->status,
            cc ? cc : "(none)");
    ck_assert_msg(cc, "L1: %s: no Cache-Control", what);
    ck_assert_msg(strcasestr(cc, "no-store") || strcasestr(cc, "no-cache") ||
                      (age >= 0 && age <= (td > 10 ? td : 10)),
                  "L1: %s: error cached too long (%s)", what, cc);
}

START_TEST(test_headers)
{
    char vp[256], mv[256], ap[256], url[512];
    char v[256];
    path_of(vp, sizeof(vp), "source");
    path_of(ap, sizeof(ap), "audio");
    path_of(mv, sizeof(mv), NULL);
    tl_m3u8_t m;
    tl_resp_t r;

    /* Multivariant. */
    tl_fetch_m3u8_ok(port(), mv, &m, &r);
    ck_assert(tl_content_type_is(&r, "application/vnd.apple.mpegurl"));
    check_cors(&r, "multivariant");
    tl_note("multivariant Cache-Control: %s",
            tl_header(&r, "Cache-Control", v, sizeof(v)) ? v : "(none)");
    ck_assert_msg(tl_max_age(&r) >= 0 && tl_max_age(&r) <= 60,
                  "L2: multivariant max-age %ld", tl_max_age(&r));
    tl_resp_free(&r);
    tl_m3u8_free(&m);

    /* Plain media playlist: short. */
    tl_fetch_m3u8_ok(port(), vp, &m, &r);
    int td = m.target_duration;
    ck_assert(tl_content_type_is(&r, "application/vnd.apple.mpegurl"));
    check_cors(&r, "media playlist");
    long plain_age = tl_max_age(&r);
    tl_note("plain playlist Cache-Control: %s",
            tl_header(&r, "Cache-Control", v, sizeof(v)) ? v : "(none)");
    ck_assert_msg(plain_age >= 0 && plain_age <= td,
                  "L2: plain playlist max-age %ld, TD %d", plain_age, td);
    tl_resp_free(&r);

    /* Blocking playlist: several TD (its URL names the state). */
    const tl_part_t *lp = tl_m3u8_last_part(&m);
    ck_assert(lp);
    snprintf(url, sizeof(url), "%s?_HLS_msn=%lld&_HLS_part=%d", vp,
             (long long)lp->msn, lp->index);
    tl_get_ok(port(), url, &r);
    ck_assert(tl_content_type_is(&r, "application/vnd.apple.mpegurl"));
    check_cors(&r, "blocking playlist");
    long block_age = tl_max_age(&r);
    tl_note("blocking playlist Cache-Control: %s",
            tl_header(&r, "Cache-Control", v, sizeof(v)) ? v : "(none)");
    ck_assert_msg(block_age >= 2L * td,
                  "L: blocking playlist max-age %ld < 2 x TD %d", block_age,
                  td);
    tl_resp_free(&r);

    /* Init, segment, part: immutable, long max-age. */
    char p_init[512], p_seg[512], p_part[512];
    ck_assert(tl_resolve(vp, m.map_uri, p_init, sizeof(p_init)) == 0);
    ck_assert(tl_resolve(vp, m.segs[m.nsegs - 1].uri, p_seg, sizeof(p_seg)) ==
              0);
    ck_assert(tl_resolve(vp, lp->uri, p_part, sizeof(p_part)) == 0);
    const char *objs[] = {p_init, p_seg, p_part};
    const char *names[] = {"init", "segment", "part"};
    for (int i = 0; i < 3; i++) {
        tl_get_ok(port(), objs[i], &r);
        char ct[128];
        tl_note("%s: Content-Type %s, Cache-Control %s", names[i],
                tl_header(&r, "Content-Type", ct, sizeof(ct)) ? ct : "-",
                tl_header(&r, "Cache-Control", v, sizeof(v)) ? v : "-");
        ck_assert_msg(is_mp4_type(&r), "A7: %s Content-Type %s", names[i], ct);
        check_cors(&r, names[i]);
        ck_assert_msg(tl_max_age(&r) >= 3600,
                      "L2: %s max-age %ld (immutable object)", names[i],
                      tl_max_age(&r));
        tl_resp_free(&r);
    }
    /* Audio init too. */
    tl_m3u8_t am;
    tl_fetch_m3u8_ok(port(), ap, &am, NULL);
    ck_assert(tl_resolve(ap, am.map_uri, p_init, sizeof(p_init)) == 0);
    tl_get_ok(port(), p_init, &r);
    ck_assert_msg(is_mp4_type(&r), "A7: audio init Content-Type");
    tl_resp_free(&r);
    tl_m3u8_free(&am);

    /* Errors: short lifetimes. */
    tl_get(&r, 10000, "http://127.0.0.1:%d/live/nosuchstream/index.m3u8",
           port());
    ck_assert_int_eq(r.status, 404);
    check_short_error(&r, "404 unknown stream", td);
    tl_resp_free(&r);
    tl_get(&r, 10000, "http://127.0.0.1:%d%s?_HLS_msn=%lld", port(), vp,
           (long long)tl_m3u8_last_msn(&m) + 10);
    ck_assert_int_eq(r.status, 400);
    check_short_error(&r, "400 msn too far", td);
    tl_resp_free(&r);
    tl_m3u8_free(&m);
}
END_TEST

/* ---- delta updates (K1-K4, K7) ------------------------------------------- */

static void compare_delta(const tl_m3u8_t *full, const tl_m3u8_t *d)
{
    ck_assert_msg(d->skipped >= 1, "K1: no EXT-X-SKIP in the delta");
    ck_assert_msg(d->version >= 9, "K2: delta EXT-X-VERSION %d < 9",
                  d->version);
    ck_assert_msg(d->media_sequence == full->media_sequence,
                  "K3: delta MEDIA-SEQUENCE %lld, full %lld",
                  (long long)d->media_sequence,
                  (long long)full->media_sequence);
    ck_assert_msg(d->disc_sequence == full->disc_sequence,
                  "K3: DISCONTINUITY-SEQUENCE changed in the delta");
    ck_assert_msg(d->nsegs == full->nsegs - d->skipped,
                  "K4: delta lists %d segments, full %d, skipped %d", d->nsegs,
                  full->nsegs, d->skipped);
    for (int i = 0; i < d->nsegs; i++) {
        const tl_seg_t *ds = &d->segs[i];
        const tl_seg_t *fs = &full->segs[d->skipped + i];
        ck_assert_msg(ds->msn == fs->msn && strcmp(ds->uri, fs->uri) == 0 &&
                          fabs(ds->duration - fs->duration) < 1e-6 &&
                          ds->pdt_ms == fs->pdt_ms &&
                          ds->discontinuity == fs->discontinuity &&
                          ds->nparts == fs->nparts,
                      "K4: delta segment %d (%s) differs from the full "
                      "playlist's tail (%s)",
                      i, ds->uri, fs->uri);
    }
    ck_assert_int_eq(d->nparts, full->nparts);
    for (int i = 0; i < d->nparts; i++)
        ck_assert_msg(strcmp(d->parts[i].uri, full->parts[i].uri) == 0 &&
                          d->parts[i].independent == full->parts[i].independent,
                      "K4: delta part %s differs", d->parts[i].uri);
    ck_assert_msg(strcmp(d->preload_uri, full->preload_uri) == 0,
                  "K4: hints differ");
    ck_assert_int_eq(d->nreports, full->nreports);
    ck_assert_int_eq(d->target_duration, full->target_duration);
    ck_assert_str_eq(d->server_control_raw, full->server_control_raw);
    /* Only segments beyond the skip boundary are skipped. */
    double csu = 0, kept = 0;
    ck_assert(tl_parse_decimal(tl_attr(&full->server_control, "CAN-SKIP-UNTIL"),
                               &csu) == 0);
    for (int i = 0; i < d->nsegs; i++)
        kept += d->segs[i].duration;
    double last_skipped = full->segs[d->skipped - 1].duration;
    tl_note("delta: skipped %d of %d segments, kept %.3f s, CAN-SKIP-UNTIL "
            "%.3f",
            d->skipped, full->nsegs, kept, csu);
    ck_assert_msg(kept + last_skipped >= csu - 0.01,
                  "K4: skipped segments closer than the skip boundary "
                  "(kept %.3f s + %.3f s < CAN-SKIP-UNTIL %.3f)",
                  kept, last_skipped, csu);
}

START_TEST(test_skip_delta)
{
    char vp[256];
    path_of(vp, sizeof(vp), "source");
    tl_m3u8_t cur;
    tl_fetch_m3u8_ok(port(), vp, &cur, NULL);
    ck_assert_msg(tl_attr(&cur.server_control, "CAN-SKIP-UNTIL"),
                  "F5/K1: no CAN-SKIP-UNTIL with a %d-segment window (%s)",
                  WINDOW, cur.server_control_raw);
    tl_m3u8_free(&cur);
    /* Full and delta of the same state: directives naming a part that
     * exists answer at once; retry if a part landed in between. */
    for (int attempt = 0; attempt < 6; attempt++) {
        tl_fetch_m3u8_ok(port(), vp, &cur, NULL);
        const tl_part_t *lp = tl_m3u8_last_part(&cur);
        char q1[400], q2[400];
        snprintf(q1, sizeof(q1), "%s?_HLS_msn=%lld&_HLS_part=%d", vp,
                 (long long)lp->msn, lp->index);
        snprintf(q2, sizeof(q2), "%s?_HLS_msn=%lld&_HLS_part=%d&_HLS_skip=YES",
                 vp, (long long)lp->msn, lp->index);
        tl_m3u8_t full, delta;
        tl_resp_t rf, rd;
        tl_fetch_m3u8_ok(port(), q1, &full, &rf);
        tl_fetch_m3u8_ok(port(), q2, &delta, &rd);
        const tl_part_t *fl = tl_m3u8_last_part(&full);
        const tl_part_t *dl = tl_m3u8_last_part(&delta);
        bool same = fl && dl && strcmp(fl->uri, dl->uri) == 0 &&
                    full.media_sequence == delta.media_sequence;
        if (same || attempt == 5) {
            if (!same)
                printf("delta and full never showed the same state\n");
            ck_assert_msg(full.skipped < 0, "full playlist has EXT-X-SKIP");
            tl_note("full %zu bytes, delta %zu bytes", rf.len, rd.len);
            compare_delta(&full, &delta);
            tl_resp_free(&rf);
            tl_resp_free(&rd);
            tl_m3u8_free(&full);
            tl_m3u8_free(&delta);
            tl_m3u8_free(&cur);
            return;
        }
        tl_resp_free(&rf);
        tl_resp_free(&rd);
        tl_m3u8_free(&full);
        tl_m3u8_free(&delta);
        tl_m3u8_free(&cur);
    }
}
END_TEST

START_TEST(test_skip_blocking)
{
    char vp[256], q[400];
    path_of(vp, sizeof(vp), "source");
    tl_m3u8_t cur, d;
    tl_fetch_m3u8_ok(port(), vp, &cur, NULL);
    const tl_part_t *lp = tl_m3u8_last_part(&cur);
    int64_t pm = lp->msn;
    int pn = lp->index + 1;
    snprintf(q, sizeof(q), "%s?_HLS_msn=%lld&_HLS_part=%d&_HLS_skip=YES", vp,
             (long long)pm, pn);
    tl_resp_t r;
    tl_fetch_m3u8_ok(port(), q, &d, &r);
    tl_note("K7: blocking delta for %lld.%d answered after %.0f ms",
            (long long)pm, pn, r.ttfb_s * 1e3);
    ck_assert_msg(r.ttfb_s < 3.0, "H1: held %.3f s for the next part",
                  r.ttfb_s);
    ck_assert_msg(d.skipped >= 1, "K7: blocking delta without EXT-X-SKIP");
    ck_assert_msg(tl_m3u8_part(&d, pm, pn) || tl_m3u8_part(&d, pm + 1, 0),
                  "H1: answer lacks part %lld.%d", (long long)pm, pn);
    ck_assert_int_eq(d.media_sequence + d.skipped, d.segs[0].msn);
    ck_assert_msg(d.npreload == 1, "H11: blocking delta without the hint");
    tl_resp_free(&r);
    tl_m3u8_free(&cur);
    tl_m3u8_free(&d);
}
END_TEST

START_TEST(test_zz_clean_exit)
{
    tl_assert_clean_exit(&F.podium, 15000);
}
END_TEST

static Suite *live_suite(void)
{
    Suite *s = suite_create("live");
    TCase *tc = tcase_create("live");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_multivariant);
    tcase_add_test(tc, test_media_playlist_video);
    tcase_add_test(tc, test_media_playlist_audio);
    tcase_add_test(tc, test_renditions_agree);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_skip_delta);
    tcase_add_test(tc, test_skip_blocking);
    tcase_add_test(tc, test_playlist_advances);
    tcase_add_test(tc, test_zz_clean_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tl_init();
    SRunner *sr = srunner_create(live_suite());
    srunner_set_fork_status(sr, CK_FORK);
    int64_t t0 = tl_now_ms();
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("test_live: %.1f s\n", (double)(tl_now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}
