/*
 * error.h - runtime-internal side of ptm_last_error(): formatting a failure and clearing the
 * message at each public entry point. The public half is ptm_error_set() in ptm_base.h.
 */
#ifndef PTM_RUNTIME_ERROR_H
#define PTM_RUNTIME_ERROR_H

#include "ptm/ptm_base.h"

/* Record the first failure of this call on this thread and return st (PTM_OK is refused). */
ptm_status ptm__fail(ptm_status st, const char *fmt, ...) PTM_PRINTF(2, 3);

/* Forget this thread's message. Every public entry point calls it first. */
void ptm__error_clear(void);

/* Whether a message is already recorded (a callee failed first). */
int ptm__error_is_set(void);

/* Prefix the recorded message with "<prefix>: " (used to name the file around a parse error). */
void ptm__error_prefix(const char *prefix);

#endif
