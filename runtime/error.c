/*
 * error.c - status names and the per-thread "last error" buffer.
 *
 * Owns the first-failure-wins rule: the innermost failure writes the message, outer layers
 * return the status unchanged. It does not log; a failure is returned or logged, not both.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PTM_ERROR_BYTES 2048

static _Thread_local char err_msg[PTM_ERROR_BYTES];

const char *ptm_status_name(ptm_status st)
{
    switch (st) {
#define PTM_STATUS_NAME_(name, code, str)                                                          \
    case name:                                                                                     \
        return #name;
        PTM_STATUS_LIST(PTM_STATUS_NAME_)
#undef PTM_STATUS_NAME_
    }
    return "PTM_E_UNKNOWN";
}

const char *ptm_status_str(ptm_status st)
{
    switch (st) {
#define PTM_STATUS_STR_(name, code, str)                                                           \
    case name:                                                                                     \
        return str;
        PTM_STATUS_LIST(PTM_STATUS_STR_)
#undef PTM_STATUS_STR_
    }
    return "unknown status";
}

const char *ptm_last_error(void)
{
    return err_msg;
}

static ptm_status verror(ptm_status st, const char *fmt, va_list ap)
{
    if (st == PTM_OK) {
        st = PTM_E_INTERNAL;
    }
    if (err_msg[0] == '\0') {
        vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    }
    return st;
}

ptm_status ptm__fail(ptm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st = verror(st, fmt, ap);
    va_end(ap);
    return st;
}

ptm_status ptm_error_set(ptm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st = verror(st, fmt, ap);
    va_end(ap);
    return st;
}

void ptm__error_clear(void)
{
    err_msg[0] = '\0';
}

int ptm__error_is_set(void)
{
    return err_msg[0] != '\0';
}

void ptm__error_prefix(const char *prefix)
{
    /* Truncation is acceptable here: the message is for people and stays NUL terminated. */
    char tmp[PTM_ERROR_BYTES];
    size_t n = strlen(prefix);
    if (n > sizeof tmp - 3) {
        n = sizeof tmp - 3;
    }
    memcpy(tmp, prefix, n);
    memcpy(tmp + n, ": ", 2);
    size_t rest = strnlen(err_msg, sizeof err_msg - 1);
    if (rest > sizeof tmp - n - 3) {
        rest = sizeof tmp - n - 3;
    }
    memcpy(tmp + n + 2, err_msg, rest);
    tmp[n + 2 + rest] = '\0';
    memcpy(err_msg, tmp, sizeof err_msg);
}

void ptm_free(void *p)
{
    free(p);
}
