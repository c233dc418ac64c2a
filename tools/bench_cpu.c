/*
 * tools/bench_cpu.c - runs one command and writes the CPU time it used.
 *
 *   bench_cpu OUTFILE COMMAND [ARGS...]
 *
 * Forks and execs COMMAND, waits for it (wait4) and writes one line to
 * OUTFILE: "<user s> <system s> <wall s> <exit status>", CPU times from the
 * child's rusage (every thread, up to its exit; not its own children).
 * SIGINT/SIGTERM/SIGHUP received meanwhile are forwarded to the child, so
 * a script that stops this process stops the command too. Exits with the
 * command's status (128+signal if it was killed).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_child;

static void forward(int sig)
{
    if (g_child > 0)
        kill((pid_t)g_child, sig);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_cpu OUTFILE COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_cpu: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("bench_cpu: exec");
        _exit(127);
    }
    g_child = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int st = 0;
    struct rusage ru;
    pid_t w;
    do {
        w = wait4(pid, &st, 0, &ru);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        perror("bench_cpu: wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("bench_cpu: output file");
        return 1;
    }
    fprintf(f, "%.3f %.3f %.3f %d\n",
            (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            rc);
    fclose(f);
    return rc;
}
