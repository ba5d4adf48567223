/*
 * log.c - the one logging entry point: level threshold (PTM_LOG or ptm_log_set_level), a host
 * callback or stderr. Never stdout: a host's stdout is its own data channel.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ptm_log_fn log_fn;
static void *log_user;
static atomic_int log_level = -1; /* -1: not yet read from PTM_LOG */

static int level_from_env(void)
{
    static const char *names[] = {"debug", "info", "warn", "error", "none"};
    const char *v = getenv("PTM_LOG");
    if (v != NULL) {
        for (int i = 0; i < 5; i++) {
            if (strcmp(v, names[i]) == 0) {
                return i;
            }
        }
    }
    return PTM_LOG_WARN;
}

int32_t ptm_log_get_level(void)
{
    int lvl = atomic_load(&log_level);
    if (lvl < 0) {
        lvl = level_from_env();
        atomic_store(&log_level, lvl);
    }
    return lvl;
}

void ptm_log_set_level(int32_t level)
{
    if (level < PTM_LOG_DEBUG || level > PTM_LOG_NONE) {
        level = PTM_LOG_WARN;
    }
    atomic_store(&log_level, level);
}

void ptm_log_set(ptm_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void ptm_log(int32_t level, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (level < ptm_log_get_level() || level < PTM_LOG_DEBUG || level >= PTM_LOG_NONE) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fn != NULL) {
        log_fn(level, msg, log_user);
        return;
    }
    fprintf(stderr, "ptm %s: %s\n", tags[level], msg);
}
