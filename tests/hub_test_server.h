/*
 * hub_test_server.h - what the Hub test suites share: starting tests/hub_server.py (a local
 * stand-in for the Hub on 127.0.0.1, with a second "CDN" port reached as localhost) on fresh
 * repos made from the fixtures, its control endpoint, and tearing it down. Nothing here
 * reaches another address.
 */
#ifndef PTM_HUB_TEST_SERVER_H
#define PTM_HUB_TEST_SERVER_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SERVER PTM_TEST_SOURCE_DIR "/tests/hub_server.py"

static char tmp[256], repos[300];
static pid_t server_pid = -1;
static int hub_port;

static inline int have_python3(void)
{
    const char *path = getenv("PATH");
    char dir[512];
    while (path != NULL && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/python3", (int)n, path);
        if (access(dir, X_OK) == 0) {
            return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Start tests/hub_server.py on fresh repos under /tmp/<prefix>XXXXXX and point HF_ENDPOINT
 * and HF_HOME (no token file) at it; skips the test without python3. */
static inline void hub_server_start(const char *prefix)
{
    if (!have_python3()) {
        cr_skip_test("python3 is not on PATH: the Hub tests need tests/hub_server.py");
    }
    snprintf(tmp, sizeof tmp, "/tmp/%sXXXXXX", prefix);
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(repos, sizeof repos, "%s/repos", tmp);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *serve[] = {
        "python3",           SERVER, repos, "--make-from", PTM_TEST_FIXTURES, "--timeout", "60",
        "--die-with-parent", NULL};
    cr_assert_eq(posix_spawnp(&server_pid, "python3", &fa, NULL, serve, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    int cdn_port = 0;
    cr_assert(f != NULL && fscanf(f, "PORTS %d %d", &hub_port, &cdn_port) == 2,
              "hub_server.py did not print its ports");
    fclose(f);
    char endpoint[64], home[320];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", hub_port);
    snprintf(home, sizeof home, "%s/hf_home", tmp);
    setenv("HF_ENDPOINT", endpoint, 1);
    setenv("HF_HOME", home, 1); /* no token file there */
    setenv("PTM_HUB_RETRY_BASE_MS", "10", 1);
    unsetenv("HF_HUB_OFFLINE");
}

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    if (tmp[0]) {
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* One request to the server's control endpoint; returns the body (static buffer). */
static inline const char *ctl(const char *path_query)
{
    static char buf[65536];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hub_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0, "control connect");
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET /_ctl/%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path_query);
    cr_assert_eq(write(s, req, (size_t)n), n);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < sizeof buf && (k = read(s, buf + got, sizeof buf - 1 - got)) > 0) {
        got += (size_t)k;
    }
    close(s);
    buf[got] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    return body ? body + 4 : "";
}

static inline long count(const char *query)
{
    char q[256];
    snprintf(q, sizeof q, "count?%s", query);
    return strtol(ctl(q), NULL, 10);
}

static inline int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF) {
            break;
        }
    }
    if (fa) {
        fclose(fa);
    }
    if (fb) {
        fclose(fb);
    }
    return same;
}

#endif
