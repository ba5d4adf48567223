/*
 * opencl_backend.c - the OpenCL backend plugin: the ABI table of ptm_backend.h over the
 * kernels of opencl_kernels.cl. It owns buffers (one cl_mem each; the host never addresses
 * them, so import and host_ptr are absent and the runtime copies), host<->device copies on
 * one in-order queue, and the translation from tensor views (byte offsets and strides) to
 * kernel arguments (element offsets and strides). It refuses, with PTM_E_UNSUPPORTED naming
 * the op, the layouts the kernels do not take - the same set the CPU backend takes. Device
 * discovery and the program build and cache are opencl_device.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl_device.h"
#include "ptm/ptm_backend.h"
#include "ptm/ptm_plugin.h"

struct ocl_buf {
    cl_mem mem;
    size_t bytes;
};

static ptm_status ocl_init(void **out)
{
    struct ocl_state *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "opencl: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    ocl_device_open(s);
    *out = s;
    return PTM_OK;
}

static void ocl_destroy(void *ctx)
{
    struct ocl_state *s = ctx;
    if (s != NULL) {
        ocl_device_close(s);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

static int32_t ocl_score(void *ctx)
{
    const struct ocl_state *s = ctx;
    if (s->device == NULL) {
        return 0;
    }
    /* A CPU device (PoCL) runs, but no faster than the CPU backend, which keeps the default;
     * the score cannot go below the CPU's 1 without meaning "cannot run". */
    return (s->type & CL_DEVICE_TYPE_CPU) ? 1 : (s->type & CL_DEVICE_TYPE_GPU) ? 10 : 5;
}

static ptm_status ocl_probe(void *ctx, int32_t *n)
{
    const struct ocl_state *s = ctx;
    *n = s->device != NULL;
    if (s->device == NULL) {
        ptm_error_set(PTM_OK, "%s", s->why);
    }
    return PTM_OK;
}

static ptm_status ocl_device_name(void *ctx, int32_t dev, char *buf, size_t cap)
{
    const struct ocl_state *s = ctx;
    snprintf(buf, cap, "opencl:%d (%s)", (int)dev, s->name);
    return PTM_OK;
}

static ptm_status ocl_alloc(void *ctx, int32_t dev, size_t bytes, void **out)
{
    struct ocl_state *s = ctx;
    struct ocl_buf *b = malloc(sizeof *b);
    cl_int err = CL_OUT_OF_HOST_MEMORY;
    if (b != NULL) {
        /* Zero-byte buffers are invalid in OpenCL; empty tensors still get a handle. */
        b->bytes = bytes;
        b->mem = clCreateBuffer(s->context, CL_MEM_READ_WRITE, bytes ? bytes : 16, NULL, &err);
    }
    if (err != CL_SUCCESS) {
        free(b);
        return ptm_error_set(PTM_E_NOMEM, "opencl: cannot allocate %zu bytes (%d)", bytes, err);
    }
    *out = b;
    return PTM_OK;
}

static void ocl_free(void *ctx, void *buf)
{
    struct ocl_buf *b = buf;
    if (b != NULL) {
        clReleaseMemObject(b->mem);
        free(b);
    }
}

static ptm_status ocl_write(void *ctx, void *buf, uint64_t off, const void *src, size_t n)
{
    struct ocl_state *s = ctx;
    if (n == 0) {
        return PTM_OK;
    }
    cl_int err = clEnqueueWriteBuffer(s->queue, ((struct ocl_buf *)buf)->mem, CL_TRUE, (size_t)off,
                                      n, src, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        return ptm_error_set(PTM_E_IO, "opencl: write of %zu bytes at %llu failed (%d)", n,
                             (unsigned long long)off, err);
    }
    return PTM_OK;
}

static ptm_status ocl_read(void *ctx, void *buf, uint64_t off, void *dst, size_t n)
{
    struct ocl_state *s = ctx;
    if (n == 0) {
        return PTM_OK;
    }
    cl_int err = clEnqueueReadBuffer(s->queue, ((struct ocl_buf *)buf)->mem, CL_TRUE, (size_t)off,
                                     n, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        return ptm_error_set(PTM_E_IO, "opencl: read of %zu bytes at %llu failed (%d)", n,
                             (unsigned long long)off, err);
    }
    return PTM_OK;
}

static ptm_status ocl_sync(void *ctx)
{
    struct ocl_state *s = ctx;
    cl_int err = clFinish(s->queue);
    return err == CL_SUCCESS ? PTM_OK
                             : ptm_error_set(PTM_E_INTERNAL, "opencl: clFinish failed (%d)", err);
}

/* ------------------------------------------------------------------------------------------ */
/* Views                                                                                       */

static cl_mem mem_of(const struct ptm_kview *v)
{
    return v != NULL ? ((struct ocl_buf *)v->buf)->mem : NULL;
}

/* The view's offset in elements; kviews of a dtype are always element aligned. */
static cl_ulong eoff(const struct ptm_kview *v)
{
    return v != NULL ? v->offset / ptm_dtype_size(v->dtype) : 0;
}

/* The kernels' weight dtype code (DT_* in the .cl file), or -1. */
static int wdt(int32_t dtype)
{
    return dtype == PTM_F32 ? 0 : dtype == PTM_F16 ? 1 : dtype == PTM_BF16 ? 2 : -1;
}

static ptm_status unsupported(const char *op, const char *what)
{
    return ptm_error_set(PTM_E_UNSUPPORTED, "opencl: %s: %s", op, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch: set arguments and enqueue under the state's mutex.                                */

struct arg {
    size_t size;
    const void *val; /* NULL: a NULL buffer */
};

#define A_MEM(m) ((struct arg){sizeof(cl_mem), (m) != NULL ? &(cl_mem){(m)} : NULL})
#define A_U64(x) ((struct arg){sizeof(cl_ulong), &(cl_ulong){(cl_ulong)(x)}})
#define A_I64(x) ((struct arg){sizeof(cl_long), &(cl_long){(cl_long)(x)}})
#define A_I32(x) ((struct arg){sizeof(cl_int), &(cl_int){(cl_int)(x)}})
#define A_F32(x) ((struct arg){sizeof(cl_float), &(cl_float){(cl_float)(x)}})

static ptm_status launch(struct ocl_state *s, int kernel, const char *op, const struct arg *args,
                         int n_args, cl_uint dims, const size_t *global, const size_t *local)
{
    for (cl_uint d = 0; d < dims; d++) {
        if (global[d] == 0) {
            return PTM_OK;
        }
    }
    cl_kernel k = s->k[kernel];
    cl_int err = CL_SUCCESS;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < n_args && err == CL_SUCCESS; i++) {
        err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].val);
    }
    if (err == CL_SUCCESS) {
        err = clEnqueueNDRangeKernel(s->queue, k, dims, NULL, global, local, 0, NULL, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    if (err != CL_SUCCESS) {
        return ptm_error_set(PTM_E_INTERNAL, "opencl: %s: kernel launch failed (%d)", op, err);
    }
    return PTM_OK;
}

#define LAUNCH(s, k, op, dims, global, local, ...)                                                 \
    launch((s), (k), (op), (const struct arg[]){__VA_ARGS__},                                      \
           (int)(sizeof((const struct arg[]){__VA_ARGS__}) / sizeof(struct arg)), (dims),          \
           (global), (local))

static size_t round_up(int64_t n, size_t m)
{
    return ((size_t)n + m - 1) / m * m;
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels                                                                                     */

static ptm_status ocl_matmul(void *ctx, const struct ptm_kview *out, const struct ptm_kview *a,
                             const struct ptm_kview *b, const struct ptm_kview *bias,
                             uint32_t flags)
{
    int64_t m, k, lda, mo, n, ldo, br, bc, ldb;
    if (a->dtype != PTM_F32 || out->dtype != PTM_F32 || wdt(b->dtype) < 0 ||
        !ptm_kview_rows(a, &m, &k, &lda) || !ptm_kview_rows(out, &mo, &n, &ldo) ||
        !ptm_kview_rows(b, &br, &bc, &ldb)) {
        return unsupported("matmul", "needs F32 a and out, F32/F16/BF16 b, packed rows");
    }
    if (bias != NULL && (bias->dtype != PTM_F32 || !ptm_kview_is_contiguous(bias))) {
        return unsupported("matmul", "bias must be contiguous F32");
    }
    int32_t act = (int32_t)((flags >> PTM_MM_ACT_SHIFT) & 0xffu);
    if (act > PTM_UNARY_TANH) {
        return unsupported("matmul", "fused activation not available");
    }
    const size_t global[2] = {round_up(n, 16), round_up(m, 16)}, local[2] = {16, 16};
    return LAUNCH(ctx, OCL_K_MATMUL, "matmul", 2, global, local, A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_I64(ldo), A_MEM(mem_of(a)), A_U64(eoff(a)), A_I64(lda),
                  A_MEM(mem_of(b)), A_U64(eoff(b)), A_I64(ldb), A_I32(wdt(b->dtype)),
                  A_I32((flags & PTM_MM_TRANS_B) != 0), A_MEM(mem_of(bias)), A_U64(eoff(bias)),
                  A_I32(act), A_I64(m), A_I64(n), A_I64(k));
}

static ptm_status ocl_unary(void *ctx, int32_t op, const struct ptm_kview *out,
                            const struct ptm_kview *x)
{
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || !ptm_kview_is_contiguous(x) ||
        !ptm_kview_is_contiguous(out)) {
        return unsupported("unary", "needs contiguous F32");
    }
    if (op < PTM_UNARY_GELU || op > PTM_UNARY_TANH) {
        return unsupported("unary", "unknown op");
    }
    const size_t global[1] = {(size_t)ptm_kview_numel(x)};
    return LAUNCH(ctx, OCL_K_UNARY, "unary", 1, global, NULL, A_MEM(mem_of(out)), A_U64(eoff(out)),
                  A_MEM(mem_of(x)), A_U64(eoff(x)), A_I32(op), A_I64(ptm_kview_numel(x)));
}

static ptm_status ocl_binary(void *ctx, int32_t op, const struct ptm_kview *out,
                             const struct ptm_kview *a, const struct ptm_kview *b)
{
    if (a->dtype != PTM_F32 || b->dtype != PTM_F32 || out->dtype != PTM_F32 ||
        !ptm_kview_is_contiguous(a) || !ptm_kview_is_contiguous(b) ||
        !ptm_kview_is_contiguous(out)) {
        return unsupported("binary", "needs contiguous F32");
    }
    if (op != PTM_BINARY_ADD && op != PTM_BINARY_MUL) {
        return unsupported("binary", "unknown op");
    }
    int64_t n = ptm_kview_numel(a), nb = ptm_kview_numel(b);
    const size_t global[1] = {nb > 0 ? (size_t)n : 0};
    return LAUNCH(ctx, OCL_K_BINARY, "binary", 1, global, NULL, A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_MEM(mem_of(a)), A_U64(eoff(a)), A_MEM(mem_of(b)),
                  A_U64(eoff(b)), A_I32(op), A_I64(n), A_I64(nb));
}

static ptm_status ocl_scale(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x,
                            float sc)
{
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || !ptm_kview_is_contiguous(x) ||
        !ptm_kview_is_contiguous(out)) {
        return unsupported("scale", "needs contiguous F32");
    }
    const size_t global[1] = {(size_t)ptm_kview_numel(x)};
    return LAUNCH(ctx, OCL_K_SCALE, "scale", 1, global, NULL, A_MEM(mem_of(out)), A_U64(eoff(out)),
                  A_MEM(mem_of(x)), A_U64(eoff(x)), A_F32(sc), A_I64(ptm_kview_numel(x)));
}

/* Work-group size for row reductions: a power of two up to 256, about the row length. */
static size_t row_group(int64_t n)
{
    size_t g = 32;
    while (g < 256 && (int64_t)g < n) {
        g *= 2;
    }
    return g;
}

static ptm_status ocl_norm(void *ctx, int32_t kind, const struct ptm_kview *out,
                           const struct ptm_kview *x, const struct ptm_kview *res,
                           const struct ptm_kview *w, const struct ptm_kview *b, float eps)
{
    int64_t rows, n, ldx, ro, no, ldo, rr = 0, nr = 0, ldr = 0;
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || w->dtype != PTM_F32 ||
        (b && b->dtype != PTM_F32) || (res && res->dtype != PTM_F32) ||
        !ptm_kview_is_contiguous(w) || (b && !ptm_kview_is_contiguous(b)) ||
        !ptm_kview_rows(x, &rows, &n, &ldx) || !ptm_kview_rows(out, &ro, &no, &ldo) ||
        (res && !ptm_kview_rows(res, &rr, &nr, &ldr))) {
        return unsupported("norm", "needs F32 operands with packed rows");
    }
    if (kind != PTM_NORM_LAYER && kind != PTM_NORM_RMS) {
        return unsupported("norm", "unknown kind");
    }
    size_t g = row_group(n);
    const size_t global[1] = {(size_t)rows * g}, local[1] = {g};
    return LAUNCH(ctx, OCL_K_NORM, "norm", 1, global, local, A_I32(kind), A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_I64(ldo), A_MEM(mem_of(x)), A_U64(eoff(x)), A_I64(ldx),
                  A_MEM(mem_of(res)), A_U64(eoff(res)), A_I64(ldr), A_MEM(mem_of(w)),
                  A_U64(eoff(w)), A_MEM(mem_of(b)), A_U64(eoff(b)), A_F32(eps), A_I64(n));
}

static ptm_status ocl_softmax(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    int64_t rows, n, ldx, ro, no, ldo;
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || !ptm_kview_rows(x, &rows, &n, &ldx) ||
        !ptm_kview_rows(out, &ro, &no, &ldo)) {
        return unsupported("softmax", "needs F32 with packed rows");
    }
    size_t g = row_group(n);
    const size_t global[1] = {(size_t)rows * g}, local[1] = {g};
    return LAUNCH(ctx, OCL_K_SOFTMAX, "softmax", 1, global, local, A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_I64(ldo), A_MEM(mem_of(x)), A_U64(eoff(x)), A_I64(ldx),
                  A_I64(n));
}

/* Ids are checked on the host: an out-of-range id must fail the call, not read past the
 * table, and reading back a few ids costs less than a flag buffer round trip. */
static ptm_status check_ids(struct ocl_state *s, const struct ptm_kview *ids, int64_t n_rows)
{
    int64_t n = ptm_kview_numel(ids);
    size_t es = ptm_dtype_size(ids->dtype);
    void *host = malloc((size_t)n * es + 1);
    if (host == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "opencl: embedding: out of memory");
    }
    ptm_status st = ocl_read(s, ids->buf, ids->offset, host, (size_t)n * es);
    for (int64_t i = 0; st == PTM_OK && i < n; i++) {
        int64_t id =
            ids->dtype == PTM_I64 ? ((const int64_t *)host)[i] : ((const int32_t *)host)[i];
        if (id < 0 || id >= n_rows) {
            st = ptm_error_set(PTM_E_RANGE,
                               "opencl: embedding: id %lld at position %lld outside the "
                               "table's %lld rows",
                               (long long)id, (long long)i, (long long)n_rows);
        }
    }
    free(host);
    return st;
}

static ptm_status ocl_embedding(void *ctx, const struct ptm_kview *out,
                                const struct ptm_kview *table, const struct ptm_kview *ids)
{
    if (out->dtype != PTM_F32 || wdt(table->dtype) < 0 || !ptm_kview_is_contiguous(out) ||
        !ptm_kview_is_contiguous(table) || !ptm_kview_is_contiguous(ids) || table->ndim != 2 ||
        (ids->dtype != PTM_I32 && ids->dtype != PTM_I64)) {
        return unsupported("embedding", "needs contiguous operands, F32 out, I32/I64 ids");
    }
    ptm_status st = check_ids(ctx, ids, table->ne[0]);
    if (st != PTM_OK) {
        return st;
    }
    int64_t n_ids = ptm_kview_numel(ids), dim = table->ne[1];
    const size_t global[1] = {(size_t)(n_ids * dim)};
    return LAUNCH(ctx, OCL_K_EMBEDDING, "embedding", 1, global, NULL, A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_MEM(mem_of(table)), A_U64(eoff(table)),
                  A_I32(wdt(table->dtype)), A_MEM(mem_of(ids)), A_U64(eoff(ids)),
                  A_I32(ids->dtype == PTM_I64), A_I64(n_ids), A_I64(dim));
}

/* Mirrors struct attn_dims in opencl_kernels.cl, field for field. */
struct attn_dims {
    cl_long B, Sq, Sk, H, Hkv, D;
    cl_long q_bs, q_ss, q_hs, k_bs, k_ss, k_hs, v_bs, v_ss, v_hs, o_bs, o_ss, o_hs;
    cl_long m_bs, m_ss;
    cl_long q_off, k_off, v_off, o_off, m_off, bias_off;
    cl_long causal_offset;
    cl_int is_causal, mask_dt;
    cl_float scale;
};

#define ATTN_MAX_D 256

/* Element strides of a [B, S, H, D] F32 view whose last dim is packed. */
static int bshd(const struct ptm_kview *v, cl_long *bs, cl_long *ss, cl_long *hs, cl_long *off)
{
    if (v->dtype != PTM_F32 || v->ndim != 4 || (v->ne[3] != 1 && v->nb[3] != 4) ||
        v->offset % 4 != 0) {
        return 0;
    }
    *bs = v->nb[0] / 4;
    *ss = v->nb[1] / 4;
    *hs = v->nb[2] / 4;
    *off = (cl_long)(v->offset / 4);
    return 1;
}

static int mask_dims(const struct ptm_kview *m, struct attn_dims *d)
{
    d->mask_dt = -1;
    if (m == NULL) {
        return 1;
    }
    int64_t es = (int64_t)ptm_dtype_size(m->dtype);
    if ((m->dtype != PTM_F32 && m->dtype != PTM_I32 && m->dtype != PTM_I64) ||
        m->offset % (uint64_t)es != 0 || m->nb[0] % es != 0 || m->nb[1] % es != 0) {
        return 0;
    }
    d->mask_dt = m->dtype == PTM_F32 ? 0 : m->dtype == PTM_I32 ? 1 : 2;
    d->m_bs = m->nb[0] / es;
    d->m_ss = m->nb[1] / es;
    d->m_off = (cl_long)(m->offset / (uint64_t)es);
    return 1;
}

static ptm_status ocl_attention(void *ctx, const struct ptm_attn_args *x)
{
    struct attn_dims d = {
        .B = x->q->ne[0],
        .Sq = x->q->ne[1],
        .H = x->q->ne[2],
        .D = x->q->ne[3],
        .Sk = x->k->ne[1],
        .Hkv = x->k->ne[2],
        .scale = x->scale,
        .is_causal = x->causal,
        .causal_offset = x->q_offset,
    };
    if (!bshd(x->q, &d.q_bs, &d.q_ss, &d.q_hs, &d.q_off) ||
        !bshd(x->k, &d.k_bs, &d.k_ss, &d.k_hs, &d.k_off) ||
        !bshd(x->v, &d.v_bs, &d.v_ss, &d.v_hs, &d.v_off) ||
        !bshd(x->out, &d.o_bs, &d.o_ss, &d.o_hs, &d.o_off)) {
        return unsupported("attention", "needs F32 [B, S, H, D] views with packed heads");
    }
    if (d.D > ATTN_MAX_D) {
        return unsupported("attention", "head dim above 256");
    }
    if (x->bias != NULL && (x->bias->dtype != PTM_F32 || !ptm_kview_is_contiguous(x->bias) ||
                            ptm_kview_numel(x->bias) != d.H * d.Sq * d.Sk)) {
        return unsupported("attention", "bias must be contiguous F32 [H, Sq, Sk]");
    }
    if (!mask_dims(x->key_mask, &d)) {
        return unsupported("attention", "key mask must be I32/I64/F32 [B, Sk]");
    }
    d.bias_off = (cl_long)eoff(x->bias);
    const size_t global[1] = {(size_t)(d.B * d.H * d.Sq)};
    return LAUNCH(ctx, OCL_K_ATTENTION, "attention", 1, global, NULL, A_MEM(mem_of(x->out)),
                  A_MEM(mem_of(x->q)), A_MEM(mem_of(x->k)), A_MEM(mem_of(x->v)),
                  A_MEM(mem_of(x->key_mask)), A_MEM(mem_of(x->bias)), ((struct arg){sizeof d, &d}));
}

static ptm_status ocl_rope(void *ctx, const struct ptm_rope_args *r)
{
    const struct ptm_kview *x = r->x, *p = r->positions;
    if (x->dtype != PTM_F32 || x->ndim != 4 || (x->ne[3] > 1 && x->nb[3] != 4) ||
        x->offset % 4 != 0 || r->inv_freq->dtype != PTM_F32 ||
        !ptm_kview_is_contiguous(r->inv_freq) || !ptm_kview_is_contiguous(p) ||
        (p->dtype != PTM_I32 && p->dtype != PTM_I64)) {
        return unsupported("rope", "needs an F32 [B, S, H, D] view with packed heads");
    }
    int64_t half = r->rot_dims / 2, n = x->ne[0] * x->ne[1] * x->ne[2] * half;
    const size_t global[1] = {(size_t)n};
    return LAUNCH(ctx, OCL_K_ROPE, "rope", 1, global, NULL, A_MEM(mem_of(x)), A_U64(eoff(x)),
                  A_I64(x->nb[0] / 4), A_I64(x->nb[1] / 4), A_I64(x->nb[2] / 4), A_I64(x->ne[1]),
                  A_I64(x->ne[2]), A_I64(half), A_MEM(mem_of(p)), A_U64(eoff(p)),
                  A_I32(p->dtype == PTM_I64), A_MEM(mem_of(r->inv_freq)), A_U64(eoff(r->inv_freq)),
                  A_F32(r->attn_factor), A_I32(r->neox != 0), A_I64(n));
}

static ptm_status ocl_convert(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    int64_t rows, cols, ld;
    if (!ptm_kview_is_contiguous(out) || !ptm_kview_rows(x, &rows, &cols, &ld)) {
        return unsupported("convert", "needs packed rows");
    }
    int64_t n = rows * cols;
    if (out->dtype == x->dtype) {
        int64_t es = (int64_t)ptm_dtype_size(x->dtype);
        const size_t global[1] = {(size_t)(n * es)};
        return LAUNCH(ctx, OCL_K_COPY_ROWS, "convert", 1, global, NULL, A_MEM(mem_of(out)),
                      A_U64(out->offset), A_MEM(mem_of(x)), A_U64(x->offset), A_I64(ld * es),
                      A_I64(cols * es), A_I64(n * es));
    }
    if (wdt(out->dtype) < 0 || wdt(x->dtype) < 0) {
        return ptm_error_set(PTM_E_UNSUPPORTED, "opencl: convert: %s to %s not available",
                             ptm_dtype_name(x->dtype), ptm_dtype_name(out->dtype));
    }
    const size_t global[1] = {(size_t)n};
    return LAUNCH(ctx, OCL_K_CONVERT, "convert", 1, global, NULL, A_MEM(mem_of(out)),
                  A_U64(eoff(out)), A_I32(wdt(out->dtype)), A_MEM(mem_of(x)), A_U64(eoff(x)),
                  A_I32(wdt(x->dtype)), A_I64(ld), A_I64(cols), A_I64(n));
}

static const struct ptm_backend ocl_backend = {
    .struct_size = sizeof(struct ptm_backend),
    .name = "opencl",
    .init = ocl_init,
    .destroy = ocl_destroy,
    .score = ocl_score,
    .probe = ocl_probe,
    .device_name = ocl_device_name,
    .buffer_alloc = ocl_alloc,
    .buffer_free = ocl_free,
    .buffer_import = NULL,
    .buffer_host_ptr = NULL,
    .write = ocl_write,
    .read = ocl_read,
    .sync = ocl_sync,
    .matmul = ocl_matmul,
    .unary = ocl_unary,
    .binary = ocl_binary,
    .scale = ocl_scale,
    .norm = ocl_norm,
    .softmax = ocl_softmax,
    .embedding = ocl_embedding,
    .attention = ocl_attention,
    .rope = ocl_rope,
    .convert = ocl_convert,
};

static ptm_status ocl_register(const struct ptm_registrar *reg)
{
    return reg->add_backend(reg, &ocl_backend);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_BACKEND, "opencl", PTM_VERSION_STRING, ocl_register)
