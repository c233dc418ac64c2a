#!/usr/bin/env node
/*
 * tools/bench_browser.js URL - what a viewer sees: ingest-to-screen latency
 * of podium's player page (hls.js, low-latency mode) in a real headless
 * Chromium (Debian's /usr/bin/chromium driven by playwright-core from
 * tools/browser/node_modules; installed by `tools/install-deps --browser`).
 *
 * URL is the player page with the stream in its hash,
 *   http://127.0.0.1:HTTP/#live/NAME
 * (with ?token=<token> before the hash for a stream whose playback needs
 * a signed URL), or the stream's multivariant playlist,
 *   http://127.0.0.1:HTTP/live/NAME/index.m3u8
 * (turned into the former). The player page autoplays the stream named in
 * its hash, muted, and keeps its hls.js instance in the global `hls`; this
 * script only reads it. It starts nothing but Chromium (podium and the
 * publisher are the caller's).
 *
 * Invariants: only 127.0.0.1 URLs are ever opened: URL must name 127.0.0.1,
 * every other host name fails to resolve inside Chromium
 * (--host-resolver-rules), and any request to another host counts as a
 * failure. Chromium gets a fresh profile directory (removed at exit) and
 * is closed on every path out; the whole run is bounded by a timer.
 *
 * Once playback starts it samples every BENCH_SAMPLE_MS (500) ms for
 * BENCH_SECONDS (60) s: hls.latency, hls.targetLatency, video.currentTime,
 * buffer ahead, playback rate, and the PROGRAM-DATE-TIME latency
 * Date.now() - hls.playingDate (podium stamps PDT with the wallclock time
 * a segment's first frame reached ingest, and both clocks are this
 * machine's, so this is ingest-to-screen latency). Counts stalls (video
 * 'waiting' events once playing, including the short ones of hls.js's own
 * seeks over buffer holes) and dropped frames, and watches the
 * network: playlist reloads (blocking ones carry _HLS_msn), parts and
 * segments loaded, and how long podium held the blocking reloads.
 * Statistics leave out the first BENCH_WARMUP (10) s of playback.
 *
 * Output: a human report, then "RESULT key=value" lines (read by
 * tools/bench). Exit status 0 when playback started, advanced and was
 * sampled and no non-loopback request was made; 1 otherwise; 2 on usage
 * errors or when Chromium or playwright-core is missing.
 *
 * Environment: BENCH_SECONDS, BENCH_WARMUP, BENCH_SAMPLE_MS (above);
 * BENCH_START_TIMEOUT=30 s to wait for playback to start;
 * BENCH_SCREENSHOT=FILE.png saves the page at the end;
 * BENCH_VERBOSE=1 prints every sample; BENCH_DEBUG=1 prints the buffered
 * ranges and the last parts buffered at each stall and hls.js's errors;
 * BENCH_NETLOG=FILE writes every finished request (start, duration, URL);
 * BENCH_HLS_CONFIG='{"maxLiveSyncPlaybackRate":1.5}' merges these hls.js
 * options into the player's own (an experiment: the report says so; by
 * default the page runs exactly as podium serves it);
 * CHROMIUM=/usr/bin/chromium.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SECONDS = num('BENCH_SECONDS', 60);
const WARMUP = num('BENCH_WARMUP', 10);
const SAMPLE_MS = num('BENCH_SAMPLE_MS', 500);
const START_TIMEOUT = num('BENCH_START_TIMEOUT', 30);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const SHOT = process.env.BENCH_SCREENSHOT || '';
let HLS_CONFIG = null;
if (process.env.BENCH_HLS_CONFIG) {
  try { HLS_CONFIG = JSON.parse(process.env.BENCH_HLS_CONFIG); } catch (e) { HLS_CONFIG = null; }
  if (!HLS_CONFIG || typeof HLS_CONFIG !== 'object' || Array.isArray(HLS_CONFIG))
    usage('BENCH_HLS_CONFIG must be a JSON object');
}

function num(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) usage(`${name} must be a non-negative number`);
  return n;
}

function usage(why) {
  if (why) console.error(`bench_browser: ${why}`);
  console.error('usage: tools/bench_browser.js http://127.0.0.1:PORT/#live/NAME | http://127.0.0.1:PORT/live/NAME/index.m3u8');
  process.exit(2);
}

/* The player page URL for the argument; exits on anything not 127.0.0.1. */
function playerUrl(arg) {
  let u;
  try { u = new URL(arg); } catch (e) { usage(`not a URL: ${arg}`); }
  if (u.protocol !== 'http:' || u.hostname !== '127.0.0.1')
    usage('the URL must be http://127.0.0.1:PORT/...');
  /* the page's query is kept: ?token=... plays a protected stream */
  if (u.hash.length > 1) return { page: `${u.origin}/${u.search}${u.hash}`, stream: decodeURIComponent(u.hash.slice(1)), origin: u.origin };
  const m = /^\/(.+)\/index\.m3u8$/.exec(u.pathname);
  if (!m) usage('give the player page with #live/NAME or the stream\'s index.m3u8');
  return { page: `${u.origin}/#${m[1]}`, stream: m[1], origin: u.origin };
}

function loadPlaywright() {
  const dir = path.join(__dirname, 'browser', 'node_modules', 'playwright-core');
  try { return require(dir); } catch (e) {
    console.error('bench_browser: playwright-core is not installed: run tools/install-deps --browser');
    process.exit(2);
  }
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1));
  return sorted[i];
}
function stats(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p95: pct(s, 95), max: s.length ? s[s.length - 1] : NaN,
    min: s.length ? s[0] : NaN };
}
const ms = (x) => (Number.isFinite(x) ? Math.round(x).toString() : '-');
const s2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');

/* Runs in the page once the player exists: counts stalls and keeps the
 * samples; everything is computed with the page's own clock. */
function installSampler(sampleMs) {
  const video = document.getElementById('video');
  const b = window.__bench = { samples: [], stalls: [], playingAt: 0, waitingAt: 0, errors: [] };
  video.addEventListener('playing', () => {
    const now = Date.now();
    if (!b.playingAt) b.playingAt = now;
    if (b.waitingAt) { b.stalls[b.stalls.length - 1].ms = now - b.waitingAt; b.waitingAt = 0; }
  });
  const ranges = (r) => {
    const a = [];
    try { for (let i = 0; i < r.length; i++) a.push([+r.start(i).toFixed(3), +r.end(i).toFixed(3)]); } catch (e) { /* removed */ }
    return a;
  };
  /* buffered ranges of the media element and of each SourceBuffer
   * (hls.js internals: diagnostics only, absent in other versions) */
  b.buffers = () => {
    const o = { video: ranges(video.buffered) };
    const bc = window.hls && window.hls.bufferController;
    const tr = bc && bc.tracks;
    if (tr) for (const k of Object.keys(tr)) if (tr[k] && tr[k].buffer) o[k] = ranges(tr[k].buffer.buffered);
    return o;
  };
  b.frags = [];
  video.addEventListener('waiting', () => {
    if (!b.playingAt || b.waitingAt) return;   /* start-up is not a stall */
    b.waitingAt = Date.now();
    b.stalls.push({ at: b.waitingAt, t: +video.currentTime.toFixed(3), ms: -1, buffers: b.buffers(),
      frags: b.frags.slice(-12) });
  });
  function ahead() {
    const r = video.buffered, t = video.currentTime;
    for (let i = 0; i < r.length; i++)
      if (r.start(i) <= t + 0.1 && t < r.end(i)) return r.end(i) - t;
    return 0;
  }
  let hooked = null;
  setInterval(() => {
    const h = window.hls;
    if (h && h !== hooked && typeof Hls !== 'undefined') {
      hooked = h;
      h.on(Hls.Events.ERROR, (ev, d) => {
        if (b.errors.length < 50) b.errors.push({ at: Date.now(), fatal: !!d.fatal, details: String(d.details),
          reason: String(d.reason || (d.error && d.error.message) || ''), t: +video.currentTime.toFixed(3),
          buffers: b.buffers() });
      });
      h.on(Hls.Events.FRAG_BUFFERED, (ev, d) => {
        const f = d.frag, p = d.part;
        b.frags.push({ at: Date.now(), type: f.type, sn: f.sn, part: p ? p.index : -1,
          start: +(p ? p.start : f.start).toFixed(3), dur: +(p ? p.duration : f.duration).toFixed(3) });
        if (b.frags.length > 200) b.frags.splice(0, 100);
      });
    }
    const now = Date.now();
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const pd = h && h.playingDate;
    b.samples.push({
      at: now,
      pdt: pd && !isNaN(pd.getTime()) ? now - pd.getTime() : null,
      lat: h ? h.latency : null,
      tgt: h ? h.targetLatency : null,
      ct: video.currentTime,
      buf: ahead(),
      rate: video.playbackRate,
      paused: video.paused,
      dropped: q ? q.droppedVideoFrames : null,
      frames: q ? q.totalVideoFrames : null,
    });
  }, sampleMs);
}

/* Runs before the page's scripts when BENCH_HLS_CONFIG is set: when
 * hls.min.js defines window.Hls, replace it by a subclass whose
 * constructor merges the extra options into the player's. */
function overrideHlsConfig(extra) {
  let real;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get() { return real; },
    set(v) {
      if (typeof v !== 'function') { real = v; return; }
      real = class extends v {
        constructor(cfg) { super(Object.assign({}, cfg, extra)); }
      };
    },
  });
}

/* hls.js's view of the stream: is it really low-latency? */
function hlsInfo() {
  const h = window.hls;
  if (!h) return null;
  const lv = h.levels && h.levels[h.currentLevel >= 0 ? h.currentLevel : 0];
  const d = (lv && lv.details) || h.latestLevelDetails || null;
  return {
    version: typeof Hls !== 'undefined' ? Hls.version : '?',
    lowLatencyMode: h.lowLatencyMode,
    maxLiveSyncPlaybackRate: h.config.maxLiveSyncPlaybackRate,
    canBlockReload: d ? !!d.canBlockReload : null,
    canSkipUntil: d ? d.canSkipUntil : null,
    partHoldBack: d ? d.partHoldBack : null,
    holdBack: d ? d.holdBack : null,
    partTarget: d ? d.partTarget : null,
    targetDuration: d ? d.targetduration : null,
    parts: d && d.partList ? d.partList.length : 0,
    audioTracks: h.audioTracks ? h.audioTracks.length : 0,
    width: document.getElementById('video').videoWidth,
    height: document.getElementById('video').videoHeight,
  };
}

async function main() {
  const arg = process.argv[2];
  if (!arg || process.argv.length > 3) usage();
  const target = playerUrl(arg);
  if (!fs.existsSync(CHROMIUM)) {
    console.error(`bench_browser: ${CHROMIUM} not found: run tools/install-deps --browser`);
    process.exit(2);
  }
  const { chromium } = loadPlaywright();

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'podium-chromium-'));
  let ctx = null;
  let failed = false;
  const fail = (m) => { console.error(`bench_browser: ${m}`); failed = true; };
  /* the profile goes whatever the way out (playwright itself kills the
   * browser on exit and on SIGINT/SIGTERM/SIGHUP) */
  process.on('exit', () => { try { fs.rmSync(profile, { recursive: true, force: true }); } catch (e) { /* best effort */ } });
  const hard = setTimeout(async () => {
    console.error('bench_browser: overall time limit reached; giving up');
    if (ctx) await Promise.race([ctx.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    process.exit(1);
  }, (START_TIMEOUT + SECONDS + 60) * 1000);

  /* network log, by the wallclock of this process (same machine) */
  const net = { playlists: 0, blocking: 0, skip: 0, parts: 0, segments: 0, other: 0,
    held: [], foreign: [], failedReq: [], firstPartAt: 0, playlistSeen: new Set() };
  const started = new Map();
  const kind = (u) => {
    const p = u.pathname;
    if (p.endsWith('.m3u8')) return 'playlist';
    if (/\/\d+\.\d+\.m4s$/.test(p)) return 'part';
    if (/\/\d+\.m4s$/.test(p)) return 'segment';
    return 'other';
  };

  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
        '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
        /* nothing but 127.0.0.1 resolves */
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    if (HLS_CONFIG) {
      await page.addInitScript(overrideHlsConfig, HLS_CONFIG);
      console.log(`bench_browser: EXPERIMENT: hls.js options ${JSON.stringify(HLS_CONFIG)} merged into the player's`);
    }
    page.on('request', (r) => {
      let u;
      try { u = new URL(r.url()); } catch (e) { return; }
      if (u.protocol === 'data:' || u.protocol === 'blob:') return;
      if (u.hostname !== '127.0.0.1') { net.foreign.push(r.url()); return; }
      const k = kind(u);
      started.set(r, Date.now());
      if (k === 'playlist') {
        net.playlists++;
        if (u.searchParams.has('_HLS_msn')) net.blocking++;
        if (u.searchParams.has('_HLS_skip')) net.skip++;
        net.playlistSeen.add(u.pathname);
      } else if (k === 'part') {
        net.parts++;
        if (!net.firstPartAt) net.firstPartAt = Date.now();
      } else if (k === 'segment') net.segments++;
      else net.other++;
    });
    const netlog = process.env.BENCH_NETLOG ? fs.openSync(process.env.BENCH_NETLOG, 'w') : null;
    const done = (r) => {
      const t0 = started.get(r);
      started.delete(r);
      if (t0 === undefined) return;
      const u = new URL(r.url());
      if (netlog !== null)
        fs.writeSync(netlog, `${new Date(t0).toISOString()} +${Date.now() - t0}ms ${u.pathname}${u.search}\n`);
      if (kind(u) === 'playlist' && u.searchParams.has('_HLS_msn'))
        net.held.push(Date.now() - t0);
    };
    page.on('requestfinished', done);
    page.on('requestfailed', (r) => {
      started.delete(r);
      if (net.failedReq.length < 20) net.failedReq.push(`${r.url()} (${r.failure() && r.failure().errorText})`);
    });
    page.on('pageerror', (e) => console.error(`bench_browser: page error: ${e.message}`));

    console.log(`bench_browser: ${CHROMIUM} (${ctx.browser() ? ctx.browser().version() : 'chromium'}), opening ${target.page}`);
    await page.goto(target.page, { waitUntil: 'load', timeout: 20000 });
    await page.evaluate(installSampler, SAMPLE_MS);

    /* playback start: the player finds the stream through /streams.json
     * (polled every 3 s), so allow for that */
    const t0 = Date.now();
    try {
      await page.waitForFunction(() => window.__bench.playingAt > 0 &&
        document.getElementById('video').currentTime > 0, null,
        { timeout: START_TIMEOUT * 1000, polling: 200 });
    } catch (e) {
      const st = await page.evaluate(() => ({ msg: document.getElementById('msg').textContent,
        note: document.getElementById('note').textContent, hls: !!window.hls,
        errors: window.__bench.errors })).catch(() => ({}));
      throw new Error(`playback did not start within ${START_TIMEOUT} s (page: ${JSON.stringify(st)})`);
    }
    const startup = Date.now() - t0;
    const info0 = await page.evaluate(hlsInfo);
    console.log(`playing after ${startup} ms (page load -> first frame playing, including the player's stream list poll)`);
    console.log(`hls.js ${info0.version}: lowLatencyMode=${info0.lowLatencyMode} canBlockReload=${info0.canBlockReload} ` +
      `PART-HOLD-BACK=${info0.partHoldBack} HOLD-BACK=${info0.holdBack} PART-TARGET=${info0.partTarget} ` +
      `TARGETDURATION=${info0.targetDuration} parts listed=${info0.parts} audio tracks=${info0.audioTracks} ` +
      `maxLiveSyncPlaybackRate=${info0.maxLiveSyncPlaybackRate}`);

    /* sample for SECONDS of playback, printing a line every 5 s */
    const end = Date.now() + SECONDS * 1000;
    let shown = 0;
    while (Date.now() < end) {
      await page.waitForTimeout(Math.min(1000, Math.max(10, end - Date.now())));
      const b = await page.evaluate(() => ({ s: window.__bench.samples.slice(-1)[0], n: window.__bench.samples.length,
        stalls: window.__bench.stalls.length }));
      const el = Math.floor((Date.now() - (end - SECONDS * 1000)) / 1000);
      if (b.s && (VERBOSE || el >= shown + 5)) {
        shown = el;
        console.log(`  t=${String(el).padStart(3)} s  pdt ${ms(b.s.pdt).padStart(5)} ms  hls.latency ${s2(b.s.lat)} s  ` +
          `target ${s2(b.s.tgt)} s  buffer ${s2(b.s.buf)} s  rate ${s2(b.s.rate)}  stalls ${b.stalls}  dropped ${b.s.dropped}/${b.s.frames}`);
      }
    }

    const res = await page.evaluate(() => window.__bench);
    const info = await page.evaluate(hlsInfo);
    if (SHOT) { await page.screenshot({ path: SHOT }); console.log(`screenshot: ${SHOT}`); }

    const from = res.playingAt + WARMUP * 1000;
    const meas = res.samples.filter((x) => x.at >= from);
    const playing = res.samples.filter((x) => x.at >= res.playingAt);
    const pdt = stats(meas.map((x) => x.pdt));
    const lat = stats(meas.map((x) => (x.lat === null ? NaN : x.lat * 1000)));
    const tgt = stats(meas.map((x) => (x.tgt === null ? NaN : x.tgt * 1000)));
    const buf = stats(meas.map((x) => x.buf * 1000));
    const stallsAll = res.stalls.length;
    const stallsMeas = res.stalls.filter((x) => x.at >= from).length;
    const stallMs = res.stalls.reduce((a, x) => a + Math.max(0, x.ms), 0);
    const last = res.samples[res.samples.length - 1] || {};
    const first = meas[0] || {};
    const dropped = last.dropped === null || last.dropped === undefined ? NaN : last.dropped;
    const frames = last.frames === null || last.frames === undefined ? NaN : last.frames;
    const wall = meas.length > 1 ? (meas[meas.length - 1].at - meas[0].at) / 1000 : NaN;
    const advanced = meas.length > 1 ? meas[meas.length - 1].ct - first.ct : NaN;
    const held = stats(net.held);
    const rates = stats(meas.map((x) => x.rate));

    console.log('');
    console.log(`hls.js ${info.version} in Chromium (headless), ${info.width}x${info.height}; ` +
      `${meas.length} samples every ${SAMPLE_MS} ms over ${s2(wall)} s after a ${WARMUP} s warm-up ` +
      `(${playing.length} since playback started)`);
    console.log(`  ingest-to-screen (now - PROGRAM-DATE-TIME of the frame on screen): p50 ${ms(pdt.p50)} ms  p95 ${ms(pdt.p95)} ms  max ${ms(pdt.max)} ms  min ${ms(pdt.min)} ms`);
    console.log(`  hls.latency (live edge - playhead):                            p50 ${ms(lat.p50)} ms  p95 ${ms(lat.p95)} ms  max ${ms(lat.max)} ms`);
    console.log(`  hls.targetLatency:                                             p50 ${ms(tgt.p50)} ms  max ${ms(tgt.max)} ms`);
    console.log(`  buffer ahead:                                                  p50 ${ms(buf.p50)} ms  min ${ms(buf.min)} ms`);
    console.log(`  playback rate p50 ${s2(rates.p50)} max ${s2(rates.max)}; media time advanced ${s2(advanced)} s in ${s2(wall)} s of wallclock`);
    console.log(`  stalls (video 'waiting' once playing): ${stallsMeas} after warm-up, ${stallsAll} in all, ${stallMs} ms stalled in all`);
    console.log(`  dropped frames: ${Number.isFinite(dropped) ? dropped : '-'} of ${Number.isFinite(frames) ? frames : '-'}`);
    console.log(`  network: ${net.playlists} playlist requests (${net.blocking} blocking _HLS_msn, ${net.skip} delta _HLS_skip) ` +
      `on ${[...net.playlistSeen].join(', ')}; ${net.parts} parts, ${net.segments} whole segments, ${net.other} other`);
    console.log(`  blocking reloads held by podium (request -> finished, as seen by playwright): p50 ${ms(held.p50)} ms  p95 ${ms(held.p95)} ms  max ${ms(held.max)} ms`);
    if (res.errors.length)
      console.log(`  hls.js errors: ${res.errors.length} (${res.errors.filter((e) => e.fatal).length} fatal): ` +
        [...new Set(res.errors.map((e) => e.details))].join(', '));
    if (process.env.BENCH_DEBUG === '1') {
      for (const x of res.stalls) console.log(`  stall at +${((x.at - res.playingAt) / 1000).toFixed(1)} s, t=${x.t}, ${x.ms} ms: ` +
        `buffered ${JSON.stringify(x.buffers)}; last buffered: ${JSON.stringify(x.frags)}`);
      for (const x of res.errors) console.log(`  hls.js ${x.fatal ? 'FATAL ' : ''}${x.details} at +${((x.at - res.playingAt) / 1000).toFixed(1)} s ` +
        `t=${x.t}: ${x.reason}; buffered ${JSON.stringify(x.buffers)}`);
    }
    if (net.failedReq.length) console.log(`  failed requests: ${net.failedReq.length}, e.g. ${net.failedReq[0]}`);

    if (net.foreign.length) fail(`requests to hosts other than 127.0.0.1: ${net.foreign.slice(0, 3).join(' ')}`);
    if (meas.length < 2) fail('no samples after the warm-up (BENCH_SECONDS too small?)');
    if (!(pdt.n > 0)) fail('hls.playingDate never set: no PROGRAM-DATE-TIME latency');
    if (!(advanced > 0)) fail('the playhead did not advance');

    const R = {
      browser_hlsjs_version: info.version,
      browser_pdt_p50_ms: ms(pdt.p50), browser_pdt_p95_ms: ms(pdt.p95), browser_pdt_max_ms: ms(pdt.max),
      browser_hls_latency_p50_ms: ms(lat.p50), browser_hls_latency_p95_ms: ms(lat.p95),
      browser_target_latency_ms: ms(tgt.p50), browser_buffer_p50_ms: ms(buf.p50),
      browser_stalls: stallsMeas, browser_stalls_all: stallsAll,
      browser_dropped: Number.isFinite(dropped) ? dropped : '-', browser_frames: Number.isFinite(frames) ? frames : '-',
      browser_blocking_reloads: net.blocking, browser_playlist_requests: net.playlists,
      browser_parts: net.parts, browser_segments: net.segments, browser_startup_ms: startup,
      browser_samples: meas.length,
    };
    for (const [k, v] of Object.entries(R)) console.log(`RESULT ${k}=${v}`);
  } catch (e) {
    fail(e && e.message ? e.message : String(e));
  } finally {
    clearTimeout(hard);
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
