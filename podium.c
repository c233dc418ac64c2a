/*
 * podium.c - configuration, wiring, signals, start and stop.
 *
 * main() only wires the modules together: it reads the configuration
 * (defaults, then --config FILE, then command-line overrides), starts the
 * packager, the HTTP origin and the RTMP ingest, prints one ready line with
 * the ports it got, and waits for SIGINT/SIGTERM. Stopping runs in the
 * reverse order of the data flow's consumers: ingest stops accepting and
 * closes publishers, the packager releases every waiter, then httpd stops.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "httpd/httpd.h"
#include "ingest/ingest.h"
#include "packager/packager.h"
#include "storage/storage.h"

#include <libavutil/log.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *out)
{
    fprintf(out,
"usage: podium [options]\n"
"       podium [options] keys create NAME [--label L] | keys list |\n"
"                        keys revoke ID\n"
"       podium [options] tokens create [--label L] | tokens list |\n"
"                        tokens revoke ID\n"
"\n"
"podium is a live broadcast origin: RTMP in, Low-Latency HLS out.\n"
"The keys and tokens commands manage stream keys and admin API tokens in\n"
"the catalogue (<data-dir>/podium.db); they work while podium runs.\n"
"\n"
"  -c, --config FILE      read settings from FILE (libconfig syntax,\n"
"                         'key = value;', keys as listed by --print-config)\n"
"  -r, --rtmp-port N      RTMP port (default 1935; 0 = any free port)\n"
"  -p, --http-port N      HTTP port (default 8080; 0 = any free port)\n"
"  -b, --bind ADDR        address both listeners bind (default 0.0.0.0)\n"
"  -d, --data-dir DIR     data directory (default ./data)\n"
"  -w, --www-dir DIR      directory with hls.min.js for the player page\n"
"  -l, --log-level L      error, warn, info (default) or debug\n"
"  -s, --set KEY=VALUE    set any configuration key, e.g.\n"
"                         --set grace_period_ms=5000\n"
"      --print-config     print the effective configuration and exit\n"
"  -h, --help             this text\n"
"\n"
"Once listening, podium prints 'podium: ready rtmp=PORT http=PORT' on\n"
"stdout. SIGINT or SIGTERM stops it cleanly.\n");
}

static int parse_port(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 65535)
        return PD_EINVAL;
    *out = (int)v;
    return PD_OK;
}

static int copy_opt(char *dst, size_t size, const char *src, const char *what)
{
    if (strlen(src) >= size) {
        fprintf(stderr, "podium: %s is too long\n", what);
        return PD_EINVAL;
    }
    memcpy(dst, src, strlen(src) + 1);
    return PD_OK;
}

/* Two passes: the config file first (wherever --config appears), then the
 * other options in order, so the command line always wins. */
static int configure(pd_config_t *cfg, int argc, char **argv, int *print,
                     int *cmd)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"rtmp-port", required_argument, 0, 'r'},
        {"http-port", required_argument, 0, 'p'},
        {"bind", required_argument, 0, 'b'},
        {"data-dir", required_argument, 0, 'd'},
        {"www-dir", required_argument, 0, 'w'},
        {"log-level", required_argument, 0, 'l'},
        {"set", required_argument, 0, 's'},
        {"print-config", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    /* '+': options stop at the first word (a subcommand) */
    const char *short_opts = "+c:r:p:b:d:w:l:s:h";
    char err[512];
    int c;

    pd_config_defaults(cfg);
    while ((c = getopt_long(argc, argv, short_opts, opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == '?') {
            usage(stderr);
            return PD_EINVAL;
        }
        if (c == 'c' && pd_config_load(cfg, optarg, err, sizeof(err))) {
            fprintf(stderr, "podium: %s\n", err);
            return PD_EINVAL;
        }
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, short_opts, opts, NULL)) != -1) {
        int rc = PD_OK;
        switch (c) {
        case 'r':
        case 'p':
            rc = parse_port(optarg, c == 'r' ? &cfg->rtmp_port
                                             : &cfg->http_port);
            if (rc)
                fprintf(stderr, "podium: bad port '%s'\n", optarg);
            break;
        case 'b':
            rc = copy_opt(cfg->bind_addr, sizeof(cfg->bind_addr), optarg,
                          "--bind");
            break;
        case 'd':
            rc = copy_opt(cfg->data_dir, sizeof(cfg->data_dir), optarg,
                          "--data-dir");
            break;
        case 'w':
            rc = copy_opt(cfg->www_dir, sizeof(cfg->www_dir), optarg,
                          "--www-dir");
            break;
        case 'l':
            cfg->log_level = pd_log_level_from_name(optarg);
            if (cfg->log_level < 0) {
                fprintf(stderr, "podium: bad log level '%s'\n", optarg);
                rc = PD_EINVAL;
            }
            break;
        case 's':
            rc = pd_config_set(cfg, optarg, err, sizeof(err));
            if (rc)
                fprintf(stderr, "podium: %s\n", err);
            break;
        case 'P':
            *print = 1;
            break;
        default:
            break;
        }
        if (rc)
            return rc;
    }
    *cmd = 0;
    if (optind < argc) {
        if (strcmp(argv[optind], "keys") != 0 &&
            strcmp(argv[optind], "tokens") != 0 &&
            strcmp(argv[optind], "playback") != 0) {
            fprintf(stderr, "podium: unexpected argument '%s'\n",
                    argv[optind]);
            return PD_EINVAL;
        }
        *cmd = optind;
    }
    if (pd_config_validate(cfg, err, sizeof(err))) {
        fprintf(stderr, "podium: %s\n", err);
        return PD_EINVAL;
    }
    return PD_OK;
}

/* FFmpeg's (and libx264's, through it) messages go through podium's log,
 * one line each, warnings and worse unless the log level is debug. */
static void av_to_log(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > av_log_get_level())
        return;
    char line[1024];
    int prefix = 1;
    av_log_format_line(avcl, level, fmt, vl, line, sizeof(line), &prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0)
        return;
    if (level <= AV_LOG_ERROR)
        PD_LOGE("av", "%s", line);
    else if (level <= AV_LOG_WARNING)
        PD_LOGW("av", "%s", line);
    else
        PD_LOGD("av", "%s", line);
}

/* ---- publishing: keys, sessions, webhooks (ingest's hooks) ---------- */

typedef struct {
    st_t *st;
    pkg_t *pkg; /* for what a session was made of */
    bool open;
    atomic_bool stopping; /* podium is stopping: sessions end "shutdown" */
} gate_t;

static int gate_check(void *opaque, char *name, size_t name_size,
                      const char *key, const char *peer)
{
    gate_t *g = opaque;
    if (!g->open && st_key_check(g->st, name, name_size, key) != PD_OK)
        return PD_EPERM; /* ingest logs the refusal (never the key) */
    return st_on_publish(g->st, name, peer) == PD_OK ? PD_OK : PD_EPERM;
}

static void event_json(const char *type, st_t *st, const char *name,
                       const char *peer, int64_t session)
{
    char body[2048];
    char esc_name[600], esc_peer[160];
    /* names are validated ([A-Za-z0-9_.-/]); peers are addresses: JSON
     * escaping is still done for safety */
    size_t j = 0;
    for (const char *p = name; *p && j + 7 < sizeof(esc_name); p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            esc_name[j++] = '\\';
            esc_name[j++] = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            esc_name[j++] = (char)ch;
        }
    }
    esc_name[j] = '\0';
    j = 0;
    for (const char *p = peer ? peer : ""; *p && j + 2 < sizeof(esc_peer);
         p++)
        if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 &&
            (unsigned char)*p < 0x7f)
            esc_peer[j++] = *p;
    esc_peer[j] = '\0';
    snprintf(body, sizeof(body),
             "{\"stream\":\"%s\",\"session\":%lld,\"peer\":\"%s\","
             "\"url\":\"/%s/index.m3u8\"}",
             esc_name, (long long)session, esc_peer, esc_name);
    st_event(st, type, body);
}

static void gate_started(void *opaque, const char *name, const char *peer,
                         int64_t *session)
{
    gate_t *g = opaque;
    *session = 0;
    if (st_session_start(g->st, name, peer, session) != PD_OK)
        *session = 0;
    if (*session > 0)
        st_rec_begin(g->st, name, *session);
    event_json("stream.started", g->st, name, peer, *session);
}

static void gate_ended(void *opaque, const char *name, int64_t session)
{
    gate_t *g = opaque;
    st_rec_end(g->st, name);
    /* The stream is still registered (grace period): its renditions and
     * codecs as they were when the publisher left. */
    char codecs[128], rends[256];
    if (session > 0 && g->pkg &&
        pkg_stream_describe(g->pkg, name, codecs, sizeof(codecs), rends,
                            sizeof(rends)) == PD_OK)
        st_session_describe(g->st, session, codecs, rends);
    if (session > 0)
        st_session_end(g->st, session,
                       atomic_load(&g->stopping) ? "shutdown" : "left");
    event_json("stream.ended", g->st, name, NULL, session);
}

int main(int argc, char **argv)
{
    pd_config_t cfg;
    int print = 0, cmd = 0;
    if (configure(&cfg, argc, argv, &print, &cmd))
        return 2;
    if (print) {
        pd_config_print(&cfg, stdout);
        return 0;
    }
    pd_log_set_level(cfg.log_level);
    if (cmd > 0)
        return st_cli(&cfg, argc - cmd, argv + cmd);
    av_log_set_level(cfg.log_level >= PD_LOG_DEBUG ? AV_LOG_INFO
                                                   : AV_LOG_WARNING);
    av_log_set_callback(av_to_log);

    /* Signals are taken synchronously by sigwait() below: block them before
     * any thread starts so every thread inherits the mask. A dead peer must
     * not kill us either. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Thousands of suspended viewers need thousands of descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    st_t *st = NULL;
    pkg_t *pkg = NULL;
    httpd_t *http = NULL;
    ingest_t *in = NULL;
    gate_t gate = {0};
    ingest_hooks_t hooks = {&gate, gate_check, gate_started, gate_ended};
    int rc = st_open(&cfg, NULL, &st);
    if (!rc) {
        gate.st = st;
        gate.open = strcmp(cfg.auth, "open") == 0;
        if (gate.open)
            PD_LOGW("podium", "OPEN MODE: anyone who reaches the RTMP port "
                    "may publish any stream (auth = \"open\"); for a public "
                    "network set auth = \"keys\" and create stream keys "
                    "(podium keys create NAME)");
        rc = pkg_create(&cfg, &pkg);
        if (!rc) {
            pkg_set_sink(pkg, st_rec_sink(st)); /* recordings */
            gate.pkg = pkg;
        }
    }
    if (!rc)
        rc = httpd_start(&cfg, pkg, st, &http);
    if (!rc)
        rc = ingest_start(&cfg, pkg, &hooks, &in);
    if (rc) {
        PD_LOGE("podium", "start failed: %s", pd_strerror(rc));
    } else {
        printf("podium: ready rtmp=%d http=%d\n", ingest_port(in),
               httpd_port(http));
        fflush(stdout);
        PD_LOGI("podium", "ready: rtmp port %d, http port %d",
                ingest_port(in), httpd_port(http));
        int sig = 0;
        sigwait(&sigs, &sig);
        PD_LOGI("podium", "signal %d: stopping", sig);
    }

    atomic_store(&gate.stopping, true);
    if (in)
        ingest_stop(&in);
    if (pkg)
        pkg_shutdown(pkg);
    if (http)
        httpd_stop(&http);
    if (pkg)
        pkg_destroy(&pkg);
    st_close(&st);
    PD_LOGI("podium", "stopped");
    return rc ? 1 : 0;
}
