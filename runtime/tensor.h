/*
 * tensor.h - the layout of a tensor inside the runtime, shared by tensor.c (lifetime, views)
 * and ops.c (dispatch). Architectures and hosts see only the opaque handle.
 */
#ifndef PTM_RUNTIME_TENSOR_H
#define PTM_RUNTIME_TENSOR_H

#include <stdatomic.h>

#include "backend.h"
#include "ptm/ptm_tensor.h"

struct ptm_device {
    struct ptm__backend *backend;
    int32_t index;
    char name[48];
};

struct ptm_tensor {
    atomic_int refs;
    ptm_device *dev;
    void *buf;       /* backend buffer handle (shared with views) */
    uint64_t offset; /* bytes from the start of buf */
    ptm_dtype dtype;
    int32_t ndim;
    int64_t ne[PTM_MAX_DIMS];
    int64_t nb[PTM_MAX_DIMS];
    struct ptm_tensor *base; /* a view's source (a reference held), else NULL */
    int owns_buf;
    void (*release)(void *user); /* wrap_host's release */
    void *release_user;
};

/* The kernel's view of t. */
void ptm__tensor_kview(const ptm_tensor *t, struct ptm_kview *kv);

#endif
