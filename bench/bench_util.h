/*
 * bench_util.h - what every benchmark program shares: a monotonic clock in milliseconds, the
 * median of repeated measurements (the figure the benchmarks report), and the peer process
 * the comparison benchmarks time other engines in: `python3 SCRIPT DIR THREADS` on a pair of
 * pipes, which prints "ready [ENGINES] [| ABOUT]" once loaded, then answers each request line
 * with one "ms ..." line, and exits on "quit".
 */
#ifndef PTM_BENCH_UTIL_H
#define PTM_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), n >= 1; sorts v. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct peer {
    FILE *to, *from;
    pid_t pid;
    char engines[256]; /* what the peer loaded, between spaces: " torch ct2 " (may be empty) */
    char about[512];   /* what the ready line says after '|': versions, backend choices */
};

/* Start `python3 script dir threads` and wait for its ready line: 0, or -1 when it could not
 * start or ended before saying ready. */
static inline int peer_start(struct peer *p, const char *script, const char *dir, int threads)
{
    int in[2], out[2];
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    if (pipe(in) || pipe(out) || (p->pid = fork()) < 0) {
        return -1;
    }
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, dir, th, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    char line[1024];
    while (fgets(line, sizeof line, p->from) != NULL) {
        if (strncmp(line, "ready", 5) == 0) {
            char *bar = strchr(line, '|'), *nl = strchr(line, '\n');
            if (nl != NULL) {
                *nl = '\0';
            }
            if (bar != NULL) {
                *bar = '\0';
                snprintf(p->about, sizeof p->about, "%.500s", bar + 1);
            }
            snprintf(p->engines, sizeof p->engines, " %.250s ", line + 5);
            return 0;
        }
    }
    return -1;
}

/* Whether the peer's ready line listed engine. */
static inline int peer_has(const struct peer *p, const char *engine)
{
    char word[64];
    snprintf(word, sizeof word, " %s ", engine);
    return strstr(p->engines, word) != NULL;
}

/* Let every engine's spinning threads go idle before the next timed run. */
static inline void settle(void)
{
    usleep(50000);
}

/* After settle(), send "what a b" and read the answer into line[size]: 0 when it is an
 * "ms ..." line, else -1 (line keeps what it held when the peer sent nothing). */
static inline int peer_ask(struct peer *p, const char *what, int64_t a, int64_t b, char *line,
                           size_t size)
{
    settle();
    fprintf(p->to, "%s %lld %lld\n", what, (long long)a, (long long)b);
    fflush(p->to);
    if (fgets(line, (int)size, p->from) == NULL || strncmp(line, "ms ", 3) != 0) {
        return -1;
    }
    return 0;
}

/* Tell the peer to quit and reap it. */
static inline void peer_stop(struct peer *p)
{
    fprintf(p->to, "quit\n");
    fclose(p->to);
    fclose(p->from);
    waitpid(p->pid, NULL, 0);
}

#endif
