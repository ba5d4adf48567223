/*
 * tensor.h - the layout of a tensor inside the runtime, shared by tensor.c (lifetime, views),
 * ops.c (dispatch) and xfer.c (moving tensors between devices). Architectures and hosts see
 * only the opaque handle.
 *
 * Storage belongs to the root of a view chain (the tensor whose base is NULL): a view keeps
 * no device or buffer of its own and reaches them through ptm__tensor_root(), so that
 * xfer.c can move a root's storage to another device and every view of it follows.
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
    ptm_device *dev; /* root only; NULL in a view (use ptm__tensor_dev) */
    void *buf;       /* root only: the backend buffer handle; NULL in a view */
    uint64_t offset; /* bytes from the start of the root's buffer */
    ptm_dtype dtype;
    int32_t ndim;
    int64_t ne[PTM_MAX_DIMS];
    int64_t nb[PTM_MAX_DIMS];
    struct ptm_tensor *base; /* a view's source (a reference held), else NULL */
    int owns_buf;
    void (*release)(void *user); /* wrap_host's release */
    void *release_user;
    /* Root only: made during a forward pass (an activation, a cache slot), so the runtime may
     * move its storage to the device of the op that uses it (xfer.c). Parameters, wrapped
     * host memory and the caller's own tensors never move. */
    int movable;
};

/* The tensor owning t's storage: t itself, or the source at the end of t's view chain. */
static inline const ptm_tensor *ptm__tensor_root(const ptm_tensor *t)
{
    while (t->base != NULL) {
        t = t->base;
    }
    return t;
}

/* The device holding t's storage. */
static inline ptm_device *ptm__tensor_dev(const ptm_tensor *t)
{
    return ptm__tensor_root(t)->dev;
}

/* The kernel's view of t. */
void ptm__tensor_kview(const ptm_tensor *t, struct ptm_kview *kv);

#endif
