/*
 * tensor.c - tensor objects: creation on a device's backend, reference counting, views
 * (reshape, narrow), host copies, and the named tensor maps that carry a forward pass's
 * inputs and outputs. Op dispatch is in ops.c.
 */
#include "tensor.h"

#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ptm/ptm_backend.h"
#include "xfer.h"

/* Bytes of the innermost dimension's stride: the element size, or 1 for a block type (its
 * rows are addressed in bytes and only whole rows may be viewed). */
static int64_t inner_stride(ptm_dtype dtype)
{
    return ptm_dtype_size(dtype) ? (int64_t)ptm_dtype_size(dtype) : 1;
}

static ptm_status check_shape(ptm_dtype dtype, int32_t ndim, const int64_t *shape, size_t *bytes)
{
    if (ptm_dtype_block(dtype) == 0) {
        return ptm__fail(PTM_E_INVAL, "tensor: unknown dtype %d", (int)dtype);
    }
    if (ndim < 1 || ndim > PTM_MAX_DIMS || shape == NULL) {
        return ptm__fail(PTM_E_INVAL, "tensor: %d dimensions, expected 1 to %d", (int)ndim,
                         PTM_MAX_DIMS);
    }
    size_t n = ptm_dtype_row_bytes(dtype, shape[ndim - 1]);
    if (n == 0 && shape[ndim - 1] != 0) {
        return ptm__fail(PTM_E_INVAL,
                         "tensor: last dimension %lld of a %s tensor; expected a "
                         "multiple of %lld",
                         (long long)shape[ndim - 1], ptm_dtype_name(dtype),
                         (long long)ptm_dtype_block(dtype));
    }
    for (int32_t i = 0; i + 1 < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, (size_t)shape[i], &n)) {
            return ptm__fail(PTM_E_INVAL, "tensor: dimension %d is %lld", (int)i,
                             (long long)shape[i]);
        }
    }
    *bytes = n;
    return PTM_OK;
}

static void set_layout(ptm_tensor *t, ptm_dtype dtype, int32_t ndim, const int64_t *shape)
{
    t->dtype = dtype;
    t->ndim = ndim;
    for (int32_t i = PTM_MAX_DIMS - 1; i >= 0; i--) {
        t->ne[i] = i < ndim ? shape[i] : 1;
    }
    t->nb[ndim - 1] = inner_stride(dtype);
    int64_t stride = (int64_t)ptm_dtype_row_bytes(dtype, shape[ndim - 1]);
    for (int32_t i = ndim - 2; i >= 0; i--) {
        t->nb[i] = stride;
        stride *= t->ne[i];
    }
    for (int32_t i = ndim; i < PTM_MAX_DIMS; i++) {
        t->nb[i] = t->nb[ndim - 1];
    }
}

static ptm_tensor *tensor_alloc(ptm_device *dev)
{
    ptm_tensor *t = ptm__calloc(1, sizeof *t);
    if (t != NULL) {
        atomic_init(&t->refs, 1);
        t->dev = dev;
    }
    return t;
}

ptm_status ptm_tensor_new(ptm_device *dev, ptm_dtype dtype, int32_t ndim, const int64_t *shape,
                          ptm_tensor **out)
{
    *out = NULL;
    size_t bytes = 0;
    if (dev == NULL) {
        return ptm__fail(PTM_E_INVAL, "tensor: no device given");
    }
    ptm_status st = check_shape(dtype, ndim, shape, &bytes);
    if (st != PTM_OK) {
        return st;
    }
    ptm_tensor *t = tensor_alloc(dev);
    if (t == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tensor: out of memory");
    }
    const struct ptm_backend *be = dev->backend->be;
    st = be->buffer_alloc(dev->backend->ctx, dev->index, bytes, &t->buf);
    if (st != PTM_OK) {
        ptm__free(t);
        return ptm__fail(st, "tensor: %s: cannot allocate %zu bytes", dev->name, bytes);
    }
    t->owns_buf = 1;
    t->movable = ptm__xfer_in_scope();
    set_layout(t, dtype, ndim, shape);
    *out = t;
    return PTM_OK;
}

ptm_status ptm_tensor_from_host(ptm_device *dev, ptm_dtype dtype, int32_t ndim,
                                const int64_t *shape, const void *data, ptm_tensor **out)
{
    ptm_status st = ptm_tensor_new(dev, dtype, ndim, shape, out);
    if (st == PTM_OK && (st = ptm_tensor_write(*out, data, ptm_tensor_nbytes(*out))) != PTM_OK) {
        ptm_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

ptm_status ptm_tensor_wrap_host(ptm_device *dev, ptm_dtype dtype, int32_t ndim,
                                const int64_t *shape, void *data, void (*release)(void *user),
                                void *user, ptm_tensor **out)
{
    *out = NULL;
    size_t bytes = 0;
    ptm_status st = dev ? check_shape(dtype, ndim, shape, &bytes)
                        : ptm__fail(PTM_E_INVAL, "tensor: no device given");
    if (st != PTM_OK) {
        return st;
    }
    const struct ptm_backend *be = dev->backend->be;
    if (!PTM_HAS(be, struct ptm_backend, buffer_import) || be->buffer_import == NULL) {
        st = ptm_tensor_from_host(dev, dtype, ndim, shape, data, out);
        if (st == PTM_OK && release != NULL) {
            release(user);
        }
        return st;
    }
    ptm_tensor *t = tensor_alloc(dev);
    if (t == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tensor: out of memory");
    }
    st = be->buffer_import(dev->backend->ctx, dev->index, data, bytes, &t->buf);
    if (st != PTM_OK) {
        ptm__free(t);
        return ptm__fail(st, "tensor: %s: cannot import %zu bytes of host memory", dev->name,
                         bytes);
    }
    t->owns_buf = 1;
    t->release = release;
    t->release_user = user;
    set_layout(t, dtype, ndim, shape);
    *out = t;
    return PTM_OK;
}

ptm_tensor *ptm_tensor_retain(ptm_tensor *t)
{
    if (t != NULL) {
        atomic_fetch_add(&t->refs, 1);
    }
    return t;
}

void ptm_tensor_free(ptm_tensor *t)
{
    while (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1) {
        ptm_tensor *base = t->base;
        if (t->owns_buf) {
            t->dev->backend->be->buffer_free(t->dev->backend->ctx, t->buf);
        }
        if (t->release != NULL) {
            t->release(t->release_user);
        }
        ptm__free(t);
        t = base; /* a view held one reference to its source */
    }
}

ptm_dtype ptm_tensor_dtype(const ptm_tensor *t)
{
    return t->dtype;
}

int32_t ptm_tensor_ndim(const ptm_tensor *t)
{
    return t->ndim;
}

int64_t ptm_tensor_dim(const ptm_tensor *t, int32_t i)
{
    return i >= 0 && i < t->ndim ? t->ne[i] : 0;
}

int64_t ptm_tensor_numel(const ptm_tensor *t)
{
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++) {
        n *= t->ne[i];
    }
    return n;
}

size_t ptm_tensor_nbytes(const ptm_tensor *t)
{
    int64_t rows = ptm_tensor_numel(t) / (t->ne[t->ndim - 1] ? t->ne[t->ndim - 1] : 1);
    return (size_t)rows * ptm_dtype_row_bytes(t->dtype, t->ne[t->ndim - 1]);
}

int32_t ptm_tensor_is_contiguous(const ptm_tensor *t)
{
    int32_t last = t->ndim - 1;
    if (t->ne[last] != 1 && t->nb[last] != inner_stride(t->dtype)) {
        return 0;
    }
    int64_t stride = (int64_t)ptm_dtype_row_bytes(t->dtype, t->ne[last]);
    for (int32_t i = last - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != stride) {
            return 0;
        }
        stride *= t->ne[i];
    }
    return 1;
}

ptm_device *ptm_tensor_device(const ptm_tensor *t)
{
    return ptm__tensor_dev(t);
}

static ptm_tensor *view_of(ptm_tensor *t)
{
    ptm_tensor *v = tensor_alloc(NULL); /* storage is reached through the root */
    if (v != NULL) {
        v->offset = t->offset;
        v->dtype = t->dtype;
        v->ndim = t->ndim;
        memcpy(v->ne, t->ne, sizeof v->ne);
        memcpy(v->nb, t->nb, sizeof v->nb);
        v->base = ptm_tensor_retain(t);
    }
    return v;
}

ptm_status ptm_tensor_reshape(ptm_tensor *t, int32_t ndim, const int64_t *shape, ptm_tensor **out)
{
    *out = NULL;
    if (!ptm_tensor_is_contiguous(t)) {
        return ptm__fail(PTM_E_INVAL, "tensor: reshape of a non-contiguous view");
    }
    int64_t dims[PTM_MAX_DIMS], known = 1, numel = ptm_tensor_numel(t);
    int32_t infer = -1;
    if (ndim < 1 || ndim > PTM_MAX_DIMS) {
        return ptm__fail(PTM_E_INVAL, "tensor: reshape to %d dimensions", (int)ndim);
    }
    for (int32_t i = 0; i < ndim; i++) {
        dims[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
        } else if (shape[i] < 0) {
            return ptm__fail(PTM_E_INVAL, "tensor: reshape dimension %d is %lld", (int)i,
                             (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0 && known > 0) {
        dims[infer] = numel / known;
        known *= dims[infer];
    }
    if (known != numel) {
        return ptm__fail(PTM_E_INVAL, "tensor: cannot reshape %lld elements to %lld",
                         (long long)numel, (long long)known);
    }
    if (ptm_dtype_block(t->dtype) > 1 && dims[ndim - 1] != t->ne[t->ndim - 1]) {
        return ptm__fail(PTM_E_INVAL,
                         "tensor: reshape of a %s tensor changes its rows (%lld "
                         "to %lld elements); only the leading dimensions may change",
                         ptm_dtype_name(t->dtype), (long long)t->ne[t->ndim - 1],
                         (long long)dims[ndim - 1]);
    }
    ptm_tensor *v = view_of(t);
    if (v == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tensor: out of memory");
    }
    set_layout(v, t->dtype, ndim, dims);
    *out = v;
    return PTM_OK;
}

ptm_status ptm_tensor_narrow(ptm_tensor *t, int32_t dim, int64_t start, int64_t len,
                             ptm_tensor **out)
{
    *out = NULL;
    if (dim < 0 || dim >= t->ndim || start < 0 || len < 0 || start + len > t->ne[dim]) {
        return ptm__fail(PTM_E_INVAL, "tensor: narrow dim %d [%lld, %lld) of size %lld", (int)dim,
                         (long long)start, (long long)(start + len),
                         (long long)(dim >= 0 && dim < t->ndim ? t->ne[dim] : 0));
    }
    if (ptm_dtype_block(t->dtype) > 1 && dim == t->ndim - 1 && len != t->ne[dim]) {
        return ptm__fail(PTM_E_INVAL,
                         "tensor: narrow of a %s tensor along its rows; only "
                         "whole rows may be viewed",
                         ptm_dtype_name(t->dtype));
    }
    ptm_tensor *v = view_of(t);
    if (v == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tensor: out of memory");
    }
    v->offset += (uint64_t)(start * t->nb[dim]);
    v->ne[dim] = len;
    *out = v;
    return PTM_OK;
}

void *ptm_tensor_data(const ptm_tensor *t)
{
    const ptm_tensor *r = ptm__tensor_root(t);
    const struct ptm_backend *be = r->dev->backend->be;
    if (be->buffer_host_ptr == NULL) {
        return NULL;
    }
    char *p = be->buffer_host_ptr(r->dev->backend->ctx, r->buf);
    return p != NULL ? p + t->offset : NULL;
}

static ptm_status check_copy(const ptm_tensor *t, size_t bytes, const char *what)
{
    if (!ptm_tensor_is_contiguous(t)) {
        return ptm__fail(PTM_E_INVAL, "tensor: %s of a non-contiguous view", what);
    }
    if (bytes != ptm_tensor_nbytes(t)) {
        return ptm__fail(PTM_E_INVAL, "tensor: %s of %zu bytes, the tensor has %zu", what, bytes,
                         ptm_tensor_nbytes(t));
    }
    return PTM_OK;
}

ptm_status ptm_tensor_read(const ptm_tensor *t, void *dst, size_t bytes)
{
    ptm_status st = check_copy(t, bytes, "read");
    if (st != PTM_OK) {
        return st;
    }
    const ptm_tensor *r = ptm__tensor_root(t);
    const struct ptm__backend *b = r->dev->backend;
    return b->be->read(b->ctx, r->buf, t->offset, dst, bytes);
}

ptm_status ptm_tensor_write(ptm_tensor *t, const void *src, size_t bytes)
{
    ptm_status st = check_copy(t, bytes, "write");
    if (st != PTM_OK) {
        return st;
    }
    const ptm_tensor *r = ptm__tensor_root(t);
    const struct ptm__backend *b = r->dev->backend;
    return b->be->write(b->ctx, r->buf, t->offset, src, bytes);
}

void ptm__tensor_kview(const ptm_tensor *t, struct ptm_kview *kv)
{
    kv->struct_size = sizeof *kv;
    kv->buf = ptm__tensor_root(t)->buf;
    kv->offset = t->offset;
    kv->dtype = t->dtype;
    kv->ndim = t->ndim;
    memcpy(kv->ne, t->ne, sizeof kv->ne);
    memcpy(kv->nb, t->nb, sizeof kv->nb);
}

/* ------------------------------------------------------------------------------------------ */

struct ptm_tensor_map {
    char **names;
    ptm_tensor **tensors;
    size_t n, cap;
};

ptm_status ptm_tensor_map_new(ptm_tensor_map **out)
{
    *out = ptm__calloc(1, sizeof **out);
    return *out ? PTM_OK : ptm__fail(PTM_E_NOMEM, "tensor map: out of memory");
}

void ptm_tensor_map_free(ptm_tensor_map *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        ptm__free(m->names[i]);
        ptm_tensor_free(m->tensors[i]);
    }
    ptm__free(m->names);
    ptm__free(m->tensors);
    ptm__free(m);
}

ptm_status ptm_tensor_map_set(ptm_tensor_map *m, const char *name, ptm_tensor *t)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->names[i], name) == 0) {
            ptm_tensor_retain(t);
            ptm_tensor_free(m->tensors[i]);
            m->tensors[i] = t;
            return PTM_OK;
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        char **names = ptm__realloc(m->names, cap * sizeof *names);
        if (names == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tensor map: out of memory");
        }
        m->names = names;
        ptm_tensor **tensors = ptm__realloc(m->tensors, cap * sizeof *tensors);
        if (tensors == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tensor map: out of memory");
        }
        m->tensors = tensors;
        m->cap = cap;
    }
    if ((m->names[m->n] = ptm__strdup(name)) == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tensor map: out of memory");
    }
    m->tensors[m->n++] = ptm_tensor_retain(t);
    return PTM_OK;
}

ptm_tensor *ptm_tensor_map_get(const ptm_tensor_map *m, const char *name)
{
    for (size_t i = 0; m != NULL && i < m->n; i++) {
        if (strcmp(m->names[i], name) == 0) {
            return m->tensors[i];
        }
    }
    return NULL;
}

size_t ptm_tensor_map_count(const ptm_tensor_map *m)
{
    return m != NULL ? m->n : 0;
}

ptm_tensor *ptm_tensor_map_at(const ptm_tensor_map *m, size_t i, const char **name)
{
    if (m == NULL || i >= m->n) {
        return NULL;
    }
    if (name != NULL) {
        *name = m->names[i];
    }
    return m->tensors[i];
}
