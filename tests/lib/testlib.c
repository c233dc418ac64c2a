/*
 * tests/lib/testlib.c - processes, files, podium's CLI, HTTP, ffprobe and
 * waiting for podium's integration tests (see testlib.h for the
 * contracts).
 *
 * Child processes are started with fork+exec; each child asks the kernel
 * for SIGKILL when its parent dies (PR_SET_PDEATHSIG), so a test killed by
 * Check's timer never leaves a podium or ffmpeg behind.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---------------------------------------------------------------- */

void tl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
}

int64_t tl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tl_now_ms(void)
{
    return tl_now_us() / 1000;
}

void tl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void tl_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  [figure] ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* ---- files --------------------------------------------------------------- */

int tl_mkdtemp(char *out, size_t outlen, const char *tag)
{
    int n = snprintf(out, outlen, "/tmp/podium-it-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tl_rmtree(const char *dir)
{
    if (!dir || !dir[0] || getenv("TL_KEEP"))
        return;
    /* Only ever our own temp dirs. */
    if (strncmp(dir, "/tmp/podium-it-", 15) != 0)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tl_write_file(const char *path, const void *a, size_t alen, const void *b,
                  size_t blen)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = 1;
    if (a && alen && fwrite(a, 1, alen, f) != alen)
        ok = 0;
    if (b && blen && fwrite(b, 1, blen, f) != blen)
        ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

void tl_print_tail(const char *path, int lines, const char *prefix)
{
    size_t len;
    char *s = tl_read_file(path, &len);
    if (!s)
        return;
    size_t i = len;
    int seen = 0;
    while (i > 0) {
        if (s[i - 1] == '\n' && i != len && ++seen >= lines)
            break;
        i--;
    }
    char *p = s + i;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        printf("%s%s\n", prefix, p);
        if (!nl)
            break;
        p = nl + 1;
    }
    fflush(stdout);
    free(s);
}

bool tl_find_file_suffix(const char *dir, const char *suffix, char *out,
                         size_t outlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    size_t sl = strlen(suffix);
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        size_t n = strlen(e->d_name);
        struct stat sb;
        if (n >= sl && strcmp(e->d_name + n - sl, suffix) == 0) {
            snprintf(out, outlen, "%s", p);
            found = true;
        } else if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            found = tl_find_file_suffix(p, suffix, out, outlen);
        }
    }
    closedir(d);
    return found;
}

void tl_assert_not_logged(const char *log, const char *secret, const char *what)
{
    char *s = tl_read_file(log, NULL);
    ck_assert_msg(s, "cannot read %s", log);
    bool leaked = strstr(s, secret) != NULL;
    free(s);
    ck_assert_msg(!leaked, "the %s appears in podium's log %s", what, log);
}

/* ---- processes ----------------------------------------------------------- */

/* In the child after fork: die with the parent; never return on failure. */
static void child_prepare(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void buf_append(char **buf, size_t *len, size_t *cap, const char *d,
                       size_t n)
{
    if (!buf)
        return;
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, d, n);
    *len += n;
    (*buf)[*len] = 0;
}

int tl_run(char *const argv[], int timeout_ms, char **out, char **err)
{
    int po[2], pe[2];
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (pipe(po) != 0)
        return -1;
    if (pipe(pe) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return -1;
    }
    if (pid == 0) {
        child_prepare(parent);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *ob = NULL, *eb = NULL;
    size_t ol = 0, oc = 0, el = 0, ec = 0;
    int64_t deadline = tl_now_ms() + timeout_ms;
    int open_fds = 2;
    bool timed_out = false;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (open_fds > 0) {
        int64_t left = deadline - tl_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int r = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            char tmp[8192];
            ssize_t n = read(fds[i].fd, tmp, sizeof(tmp));
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                buf_append(&ob, &ol, &oc, tmp, (size_t)n);
            } else {
                buf_append(&eb, &el, &ec, tmp, (size_t)n);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = -1;
    if (timed_out)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!ob)
        buf_append(&ob, &ol, &oc, "", 0);
    if (!eb)
        buf_append(&eb, &el, &ec, "", 0);
    if (out)
        *out = ob;
    else
        free(ob);
    if (err)
        *err = eb;
    else
        free(eb);
    return timed_out ? -1 : status;
}

const char *tl_podium_bin(void)
{
    const char *b = getenv("PODIUM_BIN");
    return (b && b[0]) ? b : "build/podium";
}

int tl_podium_start(tl_podium_t *p, const char *dir, const char *const *sets)
{
    return tl_podium_start_config(p, dir, NULL, sets);
}

int tl_podium_start_config(tl_podium_t *p, const char *dir,
                           const char *config, const char *const *sets)
{
    memset(p, 0, sizeof(*p));
    p->out_fd = -1;
    snprintf(p->dir, sizeof(p->dir), "%s", dir);
    snprintf(p->log, sizeof(p->log), "%s/podium.log", dir);
    const char *bin = tl_podium_bin();
    if (access(bin, X_OK) != 0) {
        printf("podium binary '%s' not found (PODIUM_BIN)\n", bin);
        fflush(stdout);
        return -1;
    }
    char datadir[320];
    snprintf(datadir, sizeof(datadir), "%s/data", dir);
    mkdir(datadir, 0755);

    char *argv[96];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--rtmp-port";
    argv[n++] = "0";
    argv[n++] = "--http-port";
    argv[n++] = "0";
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--data-dir";
    argv[n++] = datadir;
    argv[n++] = "--www-dir";
    argv[n++] = "www";
    /* tests publish without keys unless they say otherwise (a later
     * --set auth=keys wins) */
    argv[n++] = "--set";
    argv[n++] = "auth=open";
    if (config) {
        argv[n++] = "--config";
        argv[n++] = (char *)config;
    }
    for (int i = 0; sets && sets[i] && n < 90; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)sets[i];
    }
    argv[n] = NULL;

    int po[2];
    if (pipe(po) != 0)
        return -1;
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (logfd < 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        child_prepare(parent);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(logfd, 2);
        close(po[0]);
        execv(bin, argv);
        _exit(127);
    }
    close(po[1]);
    close(logfd);
    p->pid = pid;
    p->out_fd = po[0];

    /* Read the ready line. */
    char line[256];
    size_t ll = 0;
    int64_t deadline = tl_now_ms() + 30000;
    for (;;) {
        int64_t left = deadline - tl_now_ms();
        if (left <= 0) {
            printf("podium: no ready line within 30 s\n");
            break;
        }
        struct pollfd pf = {p->out_fd, POLLIN, 0};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char c;
        ssize_t got = read(p->out_fd, &c, 1);
        if (got <= 0) {
            printf("podium: stdout closed before the ready line\n");
            break;
        }
        if (c != '\n') {
            if (ll < sizeof(line) - 1)
                line[ll++] = c;
            continue;
        }
        line[ll] = 0;
        ll = 0;
        int rp = 0, hp = 0, used = 0;
        if (sscanf(line, "podium: ready rtmp=%d http=%d%n", &rp, &hp, &used) ==
                2 &&
            line[used] == 0 && rp > 0 && hp > 0) {
            p->rtmp_port = rp;
            p->http_port = hp;
            return 0;
        }
        printf("podium stdout: %s\n", line);
    }
    int st = tl_podium_reap(p);
    printf("podium did not start (wait status %d); log tail:\n", st);
    tl_print_tail(p->log, 20, "  | ");
    return -1;
}

/* Reads the state and exit code of pid from /proc (for a process that is
 * not our child). Returns 1 if it is a zombie or gone (exit status in
 * *status when known, else -1), 0 if alive. */
static int proc_exit_state(pid_t pid, int *status)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    size_t len;
    char *s = tl_read_file(path, &len);
    if (!s) {
        *status = -1;
        return 1;
    }
    /* comm may contain spaces: fields start after the last ')'. */
    char *rp = strrchr(s, ')');
    int rc = 0;
    if (rp && rp[1] == ' ') {
        char state = rp[2];
        if (state == 'Z' || state == 'X') {
            rc = 1;
            /* field 3 is the state; exit_code is field 52. */
            char *q = rp + 2;
            int field = 3;
            *status = -1;
            while (*q && field < 52) {
                if (*q == ' ')
                    field++;
                q++;
            }
            if (field == 52) {
                char *end;
                long v = strtol(q, &end, 10);
                if (end != q)
                    *status = (int)v;
            }
        }
    }
    free(s);
    return rc;
}

bool tl_podium_alive(const tl_podium_t *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    int st;
    return proc_exit_state(p->pid, &st) == 0;
}

int tl_podium_stop(tl_podium_t *p, int timeout_ms, int *status,
                   int64_t *elapsed_ms)
{
    int64_t t0 = tl_now_ms();
    if (elapsed_ms)
        *elapsed_ms = 0;
    if (p->pid <= 0)
        return -1;
    if (p->reaped) {
        if (status)
            *status = p->status;
        return 0;
    }
    kill(p->pid, SIGTERM);
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->reaped = true;
            p->status = st;
            if (status)
                *status = st;
            if (elapsed_ms)
                *elapsed_ms = tl_now_ms() - t0;
            return 0;
        }
        if (r < 0 && errno == ECHILD) {
            /* Not our child (a Check fork): watch /proc. */
            if (proc_exit_state(p->pid, &st)) {
                if (status)
                    *status = st;
                if (elapsed_ms)
                    *elapsed_ms = tl_now_ms() - t0;
                return st == -1 ? -1 : 0;
            }
        }
        if (tl_now_ms() - t0 > timeout_ms)
            break;
        tl_sleep_ms(20);
    }
    if (elapsed_ms)
        *elapsed_ms = tl_now_ms() - t0;
    return -1;
}

int tl_podium_reap(tl_podium_t *p)
{
    if (p->out_fd >= 0) {
        close(p->out_fd);
        p->out_fd = -1;
    }
    if (p->pid <= 0)
        return -1;
    if (!p->reaped) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == 0) {
            kill(p->pid, SIGKILL);
            r = waitpid(p->pid, &st, 0);
        }
        if (r == p->pid) {
            p->reaped = true;
            p->status = st;
        } else {
            return -1;
        }
    }
    return p->status;
}

int tl_pub_start(tl_pub_t *pub, const char *dir, int rtmp_port,
                 const char *name, int gop_ms, int duration_s)
{
    return tl_pub_start_size(pub, dir, rtmp_port, name, gop_ms, duration_s,
                             TL_WIDTH, TL_HEIGHT);
}

int tl_pub_start_size(tl_pub_t *pub, const char *dir, int rtmp_port,
                      const char *name, int gop_ms, int duration_s, int width,
                      int height)
{
    memset(pub, 0, sizeof(*pub));
    static int seq;
    snprintf(pub->log, sizeof(pub->log), "%s/ffmpeg-%s-%d-%d.log", dir, name,
             (int)getpid(), seq++);
    char src[128], gop[16], url[256], dur[16];
    snprintf(src, sizeof(src), "testsrc2=size=%dx%d:rate=%d", width, height,
             TL_FPS);
    int g = gop_ms * TL_FPS / 1000;
    if (g < 1)
        g = 1;
    snprintf(gop, sizeof(gop), "%d", g);
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/%s", rtmp_port, name);
    snprintf(dur, sizeof(dur), "%d", duration_s);
    char sine[96];
    snprintf(sine, sizeof(sine), "sine=frequency=440:sample_rate=%d",
             TL_AUDIO_RATE);

    char *argv[80];
    int n = 0;
    argv[n++] = "ffmpeg";
    argv[n++] = "-hide_banner";
    argv[n++] = "-nostdin";
    argv[n++] = "-loglevel";
    argv[n++] = "warning";
    argv[n++] = "-re";
    argv[n++] = "-f";
    argv[n++] = "lavfi";
    argv[n++] = "-i";
    argv[n++] = src;
    argv[n++] = "-re";
    argv[n++] = "-f";
    argv[n++] = "lavfi";
    argv[n++] = "-i";
    argv[n++] = sine;
    if (duration_s > 0) {
        argv[n++] = "-t";
        argv[n++] = dur;
    }
    const char *rest[] = {"-map",
                          "0:v",
                          "-map",
                          "1:a",
                          "-c:v",
                          "libx264",
                          "-preset",
                          "veryfast",
                          "-tune",
                          "zerolatency",
                          "-profile:v",
                          "main",
                          "-pix_fmt",
                          "yuv420p",
                          "-b:v",
                          "400k",
                          "-g",
                          gop,
                          "-keyint_min",
                          gop,
                          "-sc_threshold",
                          "0",
                          "-bf",
                          "0",
                          "-c:a",
                          "aac",
                          "-b:a",
                          "64k",
                          "-ar",
                          "48000",
                          "-ac",
                          "2",
                          "-flvflags",
                          "no_duration_filesize",
                          "-f",
                          "flv",
                          url,
                          NULL};
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
        child_prepare(parent);
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

int tl_pub_wait(tl_pub_t *pub, int timeout_ms)
{
    if (pub->pid <= 0)
        return -1;
    if (pub->reaped)
        return 0;
    int64_t t0 = tl_now_ms();
    for (;;) {
        int st;
        pid_t r = waitpid(pub->pid, &st, WNOHANG);
        if (r == pub->pid) {
            pub->reaped = true;
            pub->status = st;
            return 0;
        }
        if (r < 0 && errno == ECHILD) {
            /* Not our child (started by the unchecked fixture). */
            if (proc_exit_state(pub->pid, &st)) {
                pub->status = st;
                return 0;
            }
        }
        if (tl_now_ms() - t0 >= timeout_ms)
            return -1;
        tl_sleep_ms(20);
    }
}

void tl_pub_stop(tl_pub_t *pub, int sig)
{
    if (pub->pid <= 0 || pub->reaped)
        return;
    kill(pub->pid, sig);
    if (tl_pub_wait(pub, 5000) != 0) {
        kill(pub->pid, SIGKILL);
        tl_pub_wait(pub, 5000);
    }
}

/* ---- podium's CLI ------------------------------------------------------- */

#define CLI_WORDS 16

int tl_cli(const char *dir, char **out, char **err, ...)
{
    char data[320];
    snprintf(data, sizeof(data), "%s/data", dir);
    char *argv[CLI_WORDS + 4];
    int n = 0;
    argv[n++] = (char *)tl_podium_bin();
    argv[n++] = "--data-dir";
    argv[n++] = data;
    va_list ap;
    va_start(ap, err);
    for (const char *w; (w = va_arg(ap, const char *)) != NULL;) {
        if (n == CLI_WORDS + 3) {
            fprintf(stderr, "testlib: tl_cli: more than %d words\n", CLI_WORDS);
            abort();
        }
        argv[n++] = (char *)w;
    }
    va_end(ap);
    argv[n] = NULL;
    char *e = NULL;
    int st = tl_run(argv, 30000, out, &e);
    int rc = (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    if (rc != 0 && !err) {
        printf("  podium %s %s: wait status %d, stderr: %s\n",
               n > 3 ? argv[3] : "", n > 4 ? argv[4] : "", st, e ? e : "");
        fflush(stdout);
    }
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

bool tl_field_after(const char *text, const char *label, char *out,
                    size_t outlen)
{
    size_t ll = strlen(label);
    for (const char *l = text; l && *l;) {
        if (strncmp(l, label, ll) == 0 && l[ll] == ' ') {
            const char *v = l + ll + 1;
            size_t n = strcspn(v, " \r\n");
            if (n == 0 || n >= outlen)
                return false;
            memcpy(out, v, n);
            out[n] = 0;
            return true;
        }
        const char *e = strchr(l, '\n');
        l = e ? e + 1 : NULL;
    }
    return false;
}

/* The end of tl_token_create() and tl_key_create(): what (the command's
 * words) exited rc with stdout out and stderr err; the word after
 * "<label> " must start with prefix and be longer than 20 characters.
 * Consumes out and err. Returns 0 or -1 with the reason in why. */
static int cli_secret(const char *what, int rc, char *out, char *err,
                      const char *label, const char *prefix, char *secret,
                      size_t slen, char *why, size_t whylen)
{
    int ret = -1;
    if (whylen)
        why[0] = 0;
    if (rc != 0)
        snprintf(why, whylen, "podium %s exited %d, stderr: %s", what, rc,
                 err ? err : "");
    else if (!out || !tl_field_after(out, label, secret, slen))
        snprintf(why, whylen, "podium %s printed no '%s %s...' line: %s", what,
                 label, prefix, out ? out : "");
    else if (strncmp(secret, prefix, strlen(prefix)) != 0 ||
             strlen(secret) <= 20)
        snprintf(why, whylen, "podium %s: %s '%s' does not look like %s...",
                 what, label, secret, prefix);
    else
        ret = 0;
    free(out);
    free(err);
    return ret;
}

int tl_token_create(const char *dir, const char *label, char *secret,
                    size_t slen, char *err, size_t errlen)
{
    char *out = NULL, *e = NULL;
    /* without a label the NULL in its place ends the words */
    int rc = tl_cli(dir, &out, &e, "tokens", "create", label ? "--label" : NULL,
                    label, NULL);
    return cli_secret("tokens create", rc, out, e, "token", "pt_", secret, slen,
                      err, errlen);
}

int tl_key_create(const char *dir, const char *name, const char *label,
                  char *secret, size_t slen, char *id, size_t idlen, char *err,
                  size_t errlen)
{
    char *out = NULL, *e = NULL;
    int rc = tl_cli(dir, &out, &e, "keys", "create", name,
                    label ? "--label" : NULL, label, NULL);
    if (rc == 0 && id && (!out || !tl_field_after(out, "id", id, idlen))) {
        snprintf(err, errlen,
                 "podium keys create %s printed no 'id N' line: %s", name,
                 out ? out : "");
        free(out);
        free(e);
        return -1;
    }
    char what[128];
    snprintf(what, sizeof(what), "keys create %s", name);
    return cli_secret(what, rc, out, e, "key", "pk_", secret, slen, err,
                      errlen);
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct {
    char *d;
    size_t len, cap;
} grow_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    grow_t *g = ud;
    size_t n = size * nmemb;
    buf_append(&g->d, &g->len, &g->cap, ptr, n);
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    grow_t *g = ud;
    size_t n = size * nmemb;
    /* A new status line starts a new header block (1xx, redirects). */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        g->len = 0;
    buf_append(&g->d, &g->len, &g->cap, ptr, n);
    return n;
}

int tl_get_url(tl_resp_t *r, int timeout_ms, const char *url)
{
    memset(r, 0, sizeof(*r));
    if (strncmp(url, "http://127.0.0.1:", 17) != 0) {
        fprintf(stderr, "testlib: refusing non-loopback URL %s\n", url);
        abort();
    }
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    grow_t body = {0}, hdr = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdr);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    CURLcode cc = curl_easy_perform(c);
    r->curl_code = (int)cc;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME, &r->ttfb_s);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->total_s);
    curl_easy_cleanup(c);
    if (!body.d)
        buf_append(&body.d, &body.len, &body.cap, "", 0);
    if (!hdr.d)
        buf_append(&hdr.d, &hdr.len, &hdr.cap, "", 0);
    r->body = (uint8_t *)body.d;
    r->len = body.len;
    r->headers = hdr.d;
    r->headers_len = hdr.len;
    r->status = cc == CURLE_OK ? status : 0;
    return cc == CURLE_OK ? 0 : -1;
}

int tl_get(tl_resp_t *r, int timeout_ms, const char *fmt, ...)
{
    char url[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof(url), fmt, ap);
    va_end(ap);
    return tl_get_url(r, timeout_ms, url);
}

void tl_resp_free(tl_resp_t *r)
{
    free(r->headers);
    free(r->body);
    r->headers = NULL;
    r->body = NULL;
    r->len = r->headers_len = 0;
}

const char *tl_header(const tl_resp_t *r, const char *name, char *out,
                      size_t outlen)
{
    if (!r->headers || outlen == 0)
        return NULL;
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            const char *e = p + ll;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t vl = (size_t)(e - v);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return out;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

long tl_max_age(const tl_resp_t *r)
{
    char v[256];
    if (!tl_header(r, "Cache-Control", v, sizeof(v)))
        return -1;
    const char *m = strcasestr(v, "max-age=");
    if (!m)
        return -1;
    m += 8;
    char *end;
    long a = strtol(m, &end, 10);
    if (end == m || a < 0)
        return -1;
    return a;
}

struct tl_async_s {
    pthread_t th;
    char url[1024];
    int timeout_ms;
    tl_resp_t resp;
    int64_t done_ms;
};

static void *async_main(void *arg)
{
    tl_async_t *a = arg;
    tl_get_url(&a->resp, a->timeout_ms, a->url);
    a->done_ms = tl_now_ms();
    return NULL;
}

tl_async_t *tl_get_async(int timeout_ms, const char *fmt, ...)
{
    tl_async_t *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->url, sizeof(a->url), fmt, ap);
    va_end(ap);
    if (strncmp(a->url, "http://127.0.0.1:", 17) != 0)
        abort();
    a->timeout_ms = timeout_ms;
    if (pthread_create(&a->th, NULL, async_main, a) != 0)
        abort();
    return a;
}

void tl_async_join(tl_async_t *a, tl_resp_t *out, int64_t *done_ms)
{
    pthread_join(a->th, NULL);
    *out = a->resp;
    if (done_ms)
        *done_ms = a->done_ms;
    free(a);
}

int tl_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

long tl_http(int port, const char *method, const char *path, const char *bearer,
             const char *ctype, const char *body, int flags, char **out)
{
    if (out)
        *out = NULL;
    if (path[0] != '/') {
        fprintf(stderr, "testlib: tl_http: path '%s' does not start with /\n",
                path);
        abort();
    }
    char url[4096], auth[512], ct[256];
    int ul = snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = ul > 0 && (size_t)ul < sizeof(url) ? curl_easy_init() : NULL;
    if (!c) {
        printf("  tl_http: %s %.80s...: URL too long or no curl handle\n",
               method, path);
        if (out)
            *out = strdup("");
        return 0;
    }
    struct curl_slist *hd = NULL;
    if (bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        hd = curl_slist_append(hd, auth);
    }
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        hd = curl_slist_append(hd, ct);
    }
    grow_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    if (flags & TL_HTTP_GZIP)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    if (!b.d)
        buf_append(&b.d, &b.len, &b.cap, "", 0);
    if (out)
        *out = b.d;
    else
        free(b.d);
    return status;
}

/* ---- podium convenience -------------------------------------------------- */

int tl_fetch_m3u8(int http_port, const char *path, int timeout_ms, tl_m3u8_t *m,
                  tl_resp_t *resp, char *err, size_t errlen)
{
    tl_resp_t r;
    memset(m, 0, sizeof(*m));
    int rc = tl_get(&r, timeout_ms, "http://127.0.0.1:%d%s", http_port, path);
    if (rc != 0 || r.status != 200) {
        snprintf(err, errlen, "GET %s: status %ld (curl %d)", path, r.status,
                 r.curl_code);
        if (resp)
            *resp = r;
        else
            tl_resp_free(&r);
        return -1;
    }
    char perr[256];
    rc = tl_m3u8_parse((const char *)r.body, r.len, m, perr, sizeof(perr));
    if (rc != 0)
        snprintf(err, errlen, "GET %s: parse error: %s", path, perr);
    if (resp)
        *resp = r;
    else
        tl_resp_free(&r);
    return rc;
}

bool tl_wait_until(tl_pred_pt fn, void *arg, int timeout_ms, int poll_ms)
{
    int64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        if (fn(arg))
            return true;
        if (tl_now_ms() >= deadline)
            return false;
        tl_sleep_ms(poll_ms);
    }
}

typedef struct {
    int port;
    const char *path;
    int min_segments;
    int64_t msn;
    int mode; /* 0 segments, 1 endlist, 2 msn above */
} wait_arg_t;

static bool wait_pred(void *arg)
{
    wait_arg_t *w = arg;
    tl_m3u8_t m;
    char err[256];
    bool ok = false;
    if (tl_fetch_m3u8(w->port, w->path, 5000, &m, NULL, err, sizeof(err)) ==
        0) {
        if (w->mode == 0)
            ok = m.nsegs >= w->min_segments;
        else if (w->mode == 1)
            ok = m.endlist;
        else
            ok = tl_m3u8_last_msn(&m) > w->msn;
    }
    tl_m3u8_free(&m);
    return ok;
}

int tl_wait_segments(int http_port, const char *path, int min_segments,
                     int timeout_ms)
{
    wait_arg_t w = {http_port, path, min_segments, 0, 0};
    return tl_wait_until(wait_pred, &w, timeout_ms, 200) ? 0 : -1;
}

int tl_wait_endlist(int http_port, const char *path, int timeout_ms)
{
    wait_arg_t w = {http_port, path, 0, 0, 1};
    return tl_wait_until(wait_pred, &w, timeout_ms, 200) ? 0 : -1;
}

int tl_wait_msn_above(int http_port, const char *path, int64_t msn,
                      int timeout_ms)
{
    wait_arg_t w = {http_port, path, 0, msn, 2};
    return tl_wait_until(wait_pred, &w, timeout_ms, 200) ? 0 : -1;
}

typedef struct {
    int port;
    const char *bearer;
    const char *stream;
    tl_rec_t *rec;
} recwait_t;

static bool rec_ended(void *arg)
{
    recwait_t *w = arg;
    char *body = NULL;
    long st = tl_http(w->port, "GET",
                      w->bearer ? "/api/recordings" : "/recordings.json",
                      w->bearer, NULL, NULL, 0, &body);
    snprintf(w->rec->last, sizeof(w->rec->last), "%ld %s", st,
             body ? body : "");
    json_t *o = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    /* the admin API wraps the list: {"recordings": [...]} */
    json_t *a = w->bearer ? json_object_get(o, "recordings") : o;
    bool ok = false;
    for (size_t i = 0; i < json_array_size(a) && !ok; i++) {
        json_t *e = json_array_get(a, i);
        const char *s = json_string_value(json_object_get(e, "stream"));
        long long id = json_integer_value(json_object_get(e, "id"));
        if (!s || strcmp(s, w->stream) != 0 || id <= 0 ||
            !json_is_string(json_object_get(e, "ended")) ||
            json_is_true(json_object_get(e, "recording")))
            continue;
        const char *url = json_string_value(json_object_get(e, "url"));
        w->rec->id = id;
        w->rec->bytes = json_integer_value(json_object_get(e, "bytes"));
        w->rec->duration_s =
            json_number_value(json_object_get(e, "duration_s"));
        snprintf(w->rec->url, sizeof(w->rec->url), "%s", url ? url : "");
        ok = true;
    }
    json_decref(o);
    return ok;
}

int tl_wait_recording_ended(int http_port, const char *bearer,
                            const char *stream, int timeout_ms, tl_rec_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    recwait_t w = {http_port, bearer, stream, rec};
    return tl_wait_until(rec_ended, &w, timeout_ms, 250) ? 0 : -1;
}

/* ---- ffprobe ------------------------------------------------------------- */

static void first_line(const char *s, char *out, size_t outlen)
{
    size_t n = strcspn(s, "\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* Parses ffprobe "compact" lines
 * "stream|codec_name=h264|codec_type=video|width=320|...|nb_read_packets=10"
 * (fields absent for audio). With first set, the first stream goes there;
 * otherwise the first video stream into v and the first audio into a. */
static void parse_stream_lines(const char *out, tl_probe_t *v, tl_probe_t *a,
                               tl_probe_t *first)
{
    const char *p = out;
    int count = 0;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (ll >= sizeof(line))
            ll = sizeof(line) - 1;
        memcpy(line, p, ll);
        line[ll] = 0;
        if (strncmp(line, "stream|", 7) == 0) {
            tl_probe_t cur;
            memset(&cur, 0, sizeof(cur));
            char type[32] = "";
            char *save = NULL;
            for (char *tok = strtok_r(line + 7, "|", &save); tok;
                 tok = strtok_r(NULL, "|", &save)) {
                char *eq = strchr(tok, '=');
                if (!eq)
                    continue;
                *eq = 0;
                const char *val = eq + 1;
                if (strcmp(tok, "codec_name") == 0)
                    snprintf(cur.codec, sizeof(cur.codec), "%s", val);
                else if (strcmp(tok, "codec_type") == 0)
                    snprintf(type, sizeof(type), "%s", val);
                else if (strcmp(tok, "width") == 0)
                    cur.width = atoi(val);
                else if (strcmp(tok, "height") == 0)
                    cur.height = atoi(val);
                else if (strcmp(tok, "nb_read_frames") == 0)
                    cur.frames = atol(val); /* "N/A" gives 0 */
                else if (strcmp(tok, "nb_read_packets") == 0)
                    cur.packets = atol(val);
            }
            tl_probe_t *dst = NULL;
            if (first && count == 0)
                dst = first;
            else if (!first && strcmp(type, "video") == 0 && v && !v->codec[0])
                dst = v;
            else if (!first && strcmp(type, "audio") == 0 && a && !a->codec[0])
                dst = a;
            if (dst)
                *dst = cur;
            count++;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    if (first)
        first->nstreams = count;
}

int tl_ffprobe_file(const char *path, tl_probe_t *v, tl_probe_t *a)
{
    if (v)
        memset(v, 0, sizeof(*v));
    if (a)
        memset(a, 0, sizeof(*a));
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-count_frames",
                    "-count_packets",
                    "-show_entries",
                    "stream=codec_type,codec_name,width,height,"
                    "nb_read_frames,nb_read_packets",
                    "-of",
                    "compact",
                    (char *)path,
                    NULL};
    char *out = NULL, *err = NULL;
    int st = tl_run(argv, 120000, &out, &err);
    if (st < 0) {
        free(out);
        free(err);
        return -1;
    }
    parse_stream_lines(out, v, a, NULL);
    if (v && err)
        first_line(err, v->err, sizeof(v->err));
    if (a && err)
        first_line(err, a->err, sizeof(a->err));
    free(out);
    free(err);
    return ((v && v->codec[0]) || (a && a->codec[0])) ? 0 : -1;
}

int tl_ffprobe_http_frames(int http_port, const char *path, long *frames,
                           char *err, size_t errlen)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", http_port, path);
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-count_frames",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "stream=nb_read_frames",
                    "-of",
                    "csv=p=0",
                    url,
                    NULL};
    char *out = NULL, *serr = NULL;
    int st = tl_run(argv, 60000, &out, &serr);
    *frames = out ? strtol(out, NULL, 10) : 0;
    if (errlen)
        err[0] = 0;
    int rc = -1;
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
        snprintf(err, errlen, "ffprobe on %s: status %d: %s", path, st,
                 serr ? serr : "");
    else if (serr && strstr(serr, "rror"))
        snprintf(err, errlen, "ffprobe reported errors on %s: %s", path, serr);
    else
        rc = 0;
    free(out);
    free(serr);
    return rc;
}

int tl_ffprobe(const char *dir, const void *init, size_t ilen,
               const void *media, size_t mlen, tl_probe_t *out)
{
    memset(out, 0, sizeof(*out));
    static int seq;
    char path[400];
    snprintf(path, sizeof(path), "%s/probe-%d-%d.mp4", dir, (int)getpid(),
             seq++);
    if (tl_write_file(path, init, ilen, media, mlen) != 0)
        return -1;
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-count_frames",
                    "-count_packets",
                    "-show_entries",
                    "stream=codec_type,codec_name,width,height,"
                    "nb_read_frames,nb_read_packets",
                    "-of",
                    "compact",
                    path,
                    NULL};
    char *sout = NULL, *serr = NULL;
    int st = tl_run(argv, 60000, &sout, &serr);
    int rc = -1;
    if (st >= 0) {
        parse_stream_lines(sout, NULL, NULL, out);
        if (serr)
            first_line(serr, out->err, sizeof(out->err));
        rc = out->codec[0] ? 0 : -1;
    }
    free(sout);
    free(serr);
    if (rc == 0) {
        char *argv2[] = {"ffprobe",       "-v",           "error",
                         "-show_entries", "packet=flags", "-of",
                         "csv=p=0",       path,           NULL};
        st = tl_run(argv2, 60000, &sout, &serr);
        if (st >= 0 && sout)
            out->first_key = sout[0] == 'K';
        free(sout);
        free(serr);
    }
    unlink(path);
    return rc;
}

int tl_ffprobe_first_ts(const char *dir, const void *init, size_t ilen,
                        const void *media, size_t mlen, double *pts,
                        double *dts)
{
    static int seq;
    char path[400];
    snprintf(path, sizeof(path), "%s/ts-%d-%d.mp4", dir, (int)getpid(), seq++);
    if (tl_write_file(path, init, ilen, media, mlen) != 0)
        return -1;
    char *argv[] = {"ffprobe",
                    "-v",
                    "error",
                    "-show_entries",
                    "packet=pts_time,dts_time",
                    "-read_intervals",
                    "%+#1",
                    "-of",
                    "csv=p=0",
                    path,
                    NULL};
    char *out = NULL;
    int st = tl_run(argv, 60000, &out, NULL);
    unlink(path);
    int rc = -1;
    if (st >= 0 && out) {
        char *end;
        *pts = strtod(out, &end);
        if (end != out && *end == ',') {
            char *p2 = end + 1;
            *dts = strtod(p2, &end);
            if (end != p2)
                rc = 0;
        }
    }
    free(out);
    return rc;
}

int tl_avc1_codec_from_init(const uint8_t *init, size_t len, char *out,
                            size_t outlen)
{
    /* avcC box: size(4) 'avcC' version(1) profile(1) compat(1) level(1) */
    for (size_t i = 4; i + 8 <= len; i++) {
        if (memcmp(init + i, "avcC", 4) == 0 && init[i + 4] == 1) {
            snprintf(out, outlen, "avc1.%02x%02x%02x", init[i + 5], init[i + 6],
                     init[i + 7]);
            return 0;
        }
    }
    return -1;
}

int tl_box_list(const uint8_t *data, size_t len, char *out, size_t outlen)
{
    size_t off = 0, ol = 0;
    int n = 0;
    if (outlen)
        out[0] = 0;
    while (off < len) {
        if (len - off < 8)
            return -1;
        uint64_t sz = ((uint64_t)data[off] << 24) | (data[off + 1] << 16) |
                      (data[off + 2] << 8) | data[off + 3];
        size_t hdr = 8;
        if (sz == 1) {
            if (len - off < 16)
                return -1;
            sz = 0;
            for (int i = 0; i < 8; i++)
                sz = (sz << 8) | data[off + 8 + i];
            hdr = 16;
        } else if (sz == 0) {
            sz = len - off;
        }
        if (sz < hdr || sz > len - off)
            return -1;
        char type[5];
        for (int i = 0; i < 4; i++) {
            char c = (char)data[off + 4 + i];
            type[i] = isprint((unsigned char)c) ? c : '?';
        }
        type[4] = 0;
        int w = snprintf(out + ol, outlen > ol ? outlen - ol : 0, "%s%s",
                         n ? "," : "", type);
        if (w > 0 && ol + (size_t)w < outlen)
            ol += (size_t)w;
        n++;
        off += (size_t)sz;
    }
    return n;
}
