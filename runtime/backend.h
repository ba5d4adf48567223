/*
 * backend.h - runtime-internal access to a backend's live context: initialised once, on
 * first use, and kept for the life of the process.
 */
#ifndef PTM_RUNTIME_BACKEND_H
#define PTM_RUNTIME_BACKEND_H

#include "ptm/ptm_backend.h"

struct ptm__backend {
    const struct ptm_backend *be;
    void *ctx;
    int32_t n_devices;
    ptm_status probe_status;
    char probe_msg[256]; /* why n_devices is 0, if it is */
};

/* The live backend named name (initialised and probed on first use). NULL with the error
 * set when unknown or when its init failed. */
struct ptm__backend *ptm__backend_get(const char *name);

#endif
