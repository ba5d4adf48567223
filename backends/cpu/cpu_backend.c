/*
 * cpu_backend.c - the CPU backend plugin: the ABI table of ptm_backend.h over the kernels
 * of cpu_kernels.h. It owns the translation from tensor views (byte strides, dtypes) to the
 * kernels' plain pointers and element strides, and refuses, with PTM_E_UNSUPPORTED naming
 * the op, the layouts the kernels do not take. Buffers are host memory: allocated 64-byte
 * aligned, or imported (mmapped weights) without a copy.
 *
 * Freed large buffers are kept in a small cache and handed out again for the same size:
 * a forward pass allocates the same activation buffers every call, and returning them to
 * the kernel each time costs a page fault and a page clear per 4 KiB on the next call.
 *
 * Buffers of 2 MiB and more start on a 2 MiB boundary and ask the kernel for transparent huge
 * pages (madvise, honoured where THP is "madvise" or "always"). Decode streams its weights once
 * per token, and on 4 KiB pages it takes a TLB miss every 4 KiB: int8 decode of a 1.1B LLaMA
 * (the weights live in such buffers) went from 25.9 to 28.5 tokens/s, medians of 11
 * alternating runs (bench_llama --child int8). Mapped checkpoint weights are the page cache's
 * pages and keep whatever size it gave them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu_kernels.h"
#include "ptm/ptm_backend.h"
#include "ptm/ptm_plugin.h"

struct cpu_buf {
    void *ptr;
    size_t bytes; /* rounded allocation size; 0 for imported memory */
    int owned;
};

#define CACHE_SLOTS     16
#define CACHE_MIN_BYTES (64u << 10)
#define CACHE_MAX_BYTES (512u << 20)
#define HUGE_BYTES      ((size_t)2 << 20)

struct cpu_state {
    cpu_ctx k;
    pthread_mutex_t mu;
    void *cached[CACHE_SLOTS];
    size_t cached_bytes[CACHE_SLOTS];
    size_t cache_total;
};

static ptm_status cpu_init(void **out)
{
    struct cpu_state *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: out of memory");
    }
    ptm_status st = cpu_pool_new(0, &s->k.pool);
    if (st != PTM_OK) {
        free(s);
        return st;
    }
    s->k.isa = cpu_isa_detect();
    /* Opt-in: BF16 and F16 prefill, and BF16 decode, on vdpbf16ps round activations (and F16
     * weights) to BF16, which the F32-compute golden fixtures do not allow; see
     * cpu_gemm_bf16.c and cpu_gemv.c. */
    const char *dot = getenv("PTM_CPU_BF16_DOT");
    s->k.bf16_dot = dot != NULL && strcmp(dot, "1") == 0;
    pthread_mutex_init(&s->mu, NULL);
    cpu_blas_init();
    *out = s;
    return PTM_OK;
}

static void cpu_destroy(void *ctx)
{
    struct cpu_state *s = ctx;
    if (s != NULL) {
        for (int i = 0; i < CACHE_SLOTS; i++) {
            free(s->cached[i]);
        }
        pthread_mutex_destroy(&s->mu);
        cpu_pool_free(s->k.pool);
        free(s);
    }
}

/* A cached block of exactly `bytes`, or NULL. */
static void *cache_take(struct cpu_state *s, size_t bytes)
{
    void *p = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < CACHE_SLOTS && p == NULL; i++) {
        if (s->cached[i] != NULL && s->cached_bytes[i] == bytes) {
            p = s->cached[i];
            s->cached[i] = NULL;
            s->cache_total -= bytes;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return p;
}

/* Keep a freed block for reuse if it is large and fits; 1 if kept. */
static int cache_put(struct cpu_state *s, void *p, size_t bytes)
{
    int kept = 0;
    if (bytes < CACHE_MIN_BYTES) {
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < CACHE_SLOTS && !kept; i++) {
        if (s->cached[i] == NULL && s->cache_total + bytes <= CACHE_MAX_BYTES) {
            s->cached[i] = p;
            s->cached_bytes[i] = bytes;
            s->cache_total += bytes;
            kept = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return kept;
}

static int32_t cpu_score(void *ctx)
{
    return 1; /* always runs; any accelerator that probes present should win */
}

static ptm_status cpu_probe(void *ctx, int32_t *n)
{
    *n = 1;
    return PTM_OK;
}

static ptm_status cpu_device_name(void *ctx, int32_t dev, char *buf, size_t cap)
{
    struct cpu_state *s = ctx;
    snprintf(buf, cap, "cpu:%d (%s, %d threads)", (int)dev, cpu_isa_name(s->k.isa),
             (int)cpu_pool_size(s->k.pool));
    return PTM_OK;
}

/* `bytes` (a multiple of 64) of host memory, on huge pages where it spans one; free() frees. */
static void *host_alloc(size_t bytes)
{
    if (bytes < HUGE_BYTES) {
        return aligned_alloc(64, bytes);
    }
    /* aligned_alloc wants a multiple of the alignment; the tail past `bytes` is never touched */
    void *p = aligned_alloc(HUGE_BYTES, (bytes + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1));
    if (p != NULL) {
        madvise(p, bytes & ~(HUGE_BYTES - 1), MADV_HUGEPAGE); /* a hint: failure changes nothing */
    }
    return p;
}

static ptm_status cpu_alloc(void *ctx, int32_t dev, size_t bytes, void **out)
{
    struct cpu_buf *b = malloc(sizeof *b);
    size_t rounded = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    void *p = b ? cache_take(ctx, rounded) : NULL;
    if (b != NULL && p == NULL) {
        p = host_alloc(rounded);
    }
    if (p == NULL) {
        free(b);
        return ptm_error_set(PTM_E_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    }
    b->ptr = p;
    b->bytes = rounded;
    b->owned = 1;
    *out = b;
    return PTM_OK;
}

static ptm_status cpu_import(void *ctx, int32_t dev, void *host, size_t bytes, void **out)
{
    struct cpu_buf *b = malloc(sizeof *b);
    if (b == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: out of memory");
    }
    b->ptr = host;
    b->bytes = 0;
    b->owned = 0;
    *out = b;
    return PTM_OK;
}

static void cpu_free(void *ctx, void *buf)
{
    struct cpu_buf *b = buf;
    if (b != NULL && b->owned && !cache_put(ctx, b->ptr, b->bytes)) {
        free(b->ptr);
    }
    free(b);
}

static void *cpu_host_ptr(void *ctx, void *buf)
{
    return ((struct cpu_buf *)buf)->ptr;
}

static ptm_status cpu_write(void *ctx, void *buf, uint64_t off, const void *src, size_t n)
{
    memcpy((char *)cpu_host_ptr(ctx, buf) + off, src, n);
    return PTM_OK;
}

static ptm_status cpu_read(void *ctx, void *buf, uint64_t off, void *dst, size_t n)
{
    memcpy(dst, (char *)cpu_host_ptr(ctx, buf) + off, n);
    return PTM_OK;
}

static ptm_status cpu_sync(void *ctx)
{
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Views */

static void *at(const struct ptm_kview *v)
{
    return (char *)((struct cpu_buf *)v->buf)->ptr + v->offset;
}

static ptm_status unsupported(const char *op, const char *what)
{
    return ptm_error_set(PTM_E_UNSUPPORTED, "cpu: %s: %s", op, what);
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

/* A PTM_Q8_0 view as rows x cols packed rows (whole rows only, ptm_tensor.h); 0 if not. */
static int q8_rows(const struct ptm_kview *v, int64_t *rows, int64_t *cols)
{
    int32_t last = v->ndim - 1;
    int64_t stride = (int64_t)ptm_dtype_row_bytes(PTM_Q8_0, v->ne[last]);
    if (v->dtype != PTM_Q8_0 || stride == 0) {
        return 0;
    }
    *cols = v->ne[last];
    *rows = 1;
    for (int32_t i = last - 1; i >= 0; i--) {
        if (v->ne[i] != 1 && v->nb[i] != stride) {
            return 0;
        }
        stride *= v->ne[i];
        *rows *= v->ne[i];
    }
    return 1;
}

/* The rows of a weight view: packed Q8_0 rows (ldb = cols), else ptm_kview_rows. */
static int weight_rows(const struct ptm_kview *b, int64_t *rows, int64_t *cols, int64_t *ld)
{
    if (b->dtype == PTM_Q8_0) {
        *ld = 0;
        return q8_rows(b, rows, cols) && (*ld = *cols) > 0;
    }
    return ptm_kview_rows(b, rows, cols, ld);
}

static ptm_status cpu_matmul(void *ctx, const struct ptm_kview *out, const struct ptm_kview *a,
                             const struct ptm_kview *b, const struct ptm_kview *bias,
                             uint32_t flags)
{
    struct cpu_state *s = ctx;
    int64_t m, k, lda, mo, n, ldo, br, bc, ldb;
    if (a->dtype != PTM_F32 || out->dtype != PTM_F32 || !ptm_kview_rows(a, &m, &k, &lda) ||
        !ptm_kview_rows(out, &mo, &n, &ldo) || !weight_rows(b, &br, &bc, &ldb)) {
        return unsupported("matmul", "needs F32 a and out with packed rows");
    }
    if (bias != NULL && (bias->dtype != PTM_F32 || !ptm_kview_is_contiguous(bias))) {
        return unsupported("matmul", "bias must be contiguous F32");
    }
    int32_t act = (int32_t)((flags >> PTM_MM_ACT_SHIFT) & 0xffu);
    if (act > PTM_UNARY_SILU) {
        return unsupported("matmul", "fused activation not available");
    }
    /* PTM_UNARY_{GELU, GELU_TANH, RELU, SILU} and CPU_ACT_* share their values. */
    struct cpu_epilogue ep = {.bias = bias ? at(bias) : NULL, .act = act};
    return cpu_gemm(&s->k, m, n, k, at(a), lda, at(b), (ptm_dtype)b->dtype, ldb,
                    (flags & PTM_MM_TRANS_B) != 0, at(out), ldo, &ep);
}

static ptm_status cpu_unary(void *ctx, int32_t op, const struct ptm_kview *out,
                            const struct ptm_kview *x)
{
    struct cpu_state *s = ctx;
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || !ptm_kview_is_contiguous(x) ||
        !ptm_kview_is_contiguous(out)) {
        return unsupported("unary", "needs contiguous F32");
    }
    float *o = at(out);
    const float *in = at(x);
    int64_t n = ptm_kview_numel(x);
    if (op == PTM_UNARY_TANH) {
        for (int64_t i = 0; i < n; i++) {
            o[i] = tanhf(in[i]);
        }
        return PTM_OK;
    }
    if (op < PTM_UNARY_GELU || op > PTM_UNARY_SILU) {
        return unsupported("unary", "unknown op");
    }
    cpu_act(&s->k, op, n, in, o);
    return PTM_OK;
}

static ptm_status cpu_binary(void *ctx, int32_t op, const struct ptm_kview *out,
                             const struct ptm_kview *a, const struct ptm_kview *b)
{
    struct cpu_state *s = ctx;
    if (a->dtype != PTM_F32 || b->dtype != PTM_F32 || out->dtype != PTM_F32 ||
        !ptm_kview_is_contiguous(a) || !ptm_kview_is_contiguous(b) ||
        !ptm_kview_is_contiguous(out)) {
        return unsupported("binary", "needs contiguous F32");
    }
    int64_t n = ptm_kview_numel(a), nb = ptm_kview_numel(b);
    const float *pa = at(a), *pb = at(b);
    float *po = at(out);
    for (int64_t i = 0; nb > 0 && i < n; i += nb) {
        if (op == PTM_BINARY_ADD) {
            cpu_add(&s->k, nb, pa + i, pb, po + i);
        } else {
            cpu_mul(&s->k, nb, pa + i, pb, po + i);
        }
    }
    return PTM_OK;
}

static ptm_status cpu_scale_op(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x,
                               float sc)
{
    struct cpu_state *s = ctx;
    if (x->dtype != PTM_F32 || !ptm_kview_is_contiguous(x) || !ptm_kview_is_contiguous(out)) {
        return unsupported("scale", "needs contiguous F32");
    }
    cpu_scale(&s->k, ptm_kview_numel(x), at(x), sc, at(out));
    return PTM_OK;
}

static ptm_status cpu_norm(void *ctx, int32_t kind, const struct ptm_kview *out,
                           const struct ptm_kview *x, const struct ptm_kview *res,
                           const struct ptm_kview *w, const struct ptm_kview *b, float eps)
{
    struct cpu_state *s = ctx;
    int64_t rows, n, ldx, ro, no, ldo, rr = 0, nr = 0, ldr = 0;
    if (x->dtype != PTM_F32 || out->dtype != PTM_F32 || w->dtype != PTM_F32 ||
        (b && b->dtype != PTM_F32) || !ptm_kview_rows(x, &rows, &n, &ldx) ||
        !ptm_kview_rows(out, &ro, &no, &ldo) || (res && !ptm_kview_rows(res, &rr, &nr, &ldr))) {
        return unsupported("norm", "needs F32 operands with packed rows");
    }
    if (kind == PTM_NORM_LAYER) {
        cpu_layer_norm(&s->k, rows, n, at(x), ldx, res ? at(res) : NULL, ldr, at(w),
                       b ? at(b) : NULL, eps, at(out), ldo);
    } else {
        cpu_rms_norm(&s->k, rows, n, at(x), ldx, res ? at(res) : NULL, ldr, at(w), eps, at(out),
                     ldo, NULL, 0);
    }
    return PTM_OK;
}

static ptm_status cpu_softmax_op(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    struct cpu_state *s = ctx;
    int64_t rows, n, ldx, ro, no, ldo;
    if (x->dtype != PTM_F32 || !ptm_kview_rows(x, &rows, &n, &ldx) ||
        !ptm_kview_rows(out, &ro, &no, &ldo)) {
        return unsupported("softmax", "needs F32 with packed rows");
    }
    cpu_softmax(&s->k, rows, n, at(x), ldx, at(out), ldo);
    return PTM_OK;
}

static ptm_status cpu_embedding(void *ctx, const struct ptm_kview *out,
                                const struct ptm_kview *table, const struct ptm_kview *ids)
{
    struct cpu_state *s = ctx;
    if (out->dtype != PTM_F32 || !ptm_kview_is_contiguous(out) || !ptm_kview_is_contiguous(table) ||
        !ptm_kview_is_contiguous(ids)) {
        return unsupported("embedding", "needs contiguous operands and F32 out");
    }
    return cpu_embed_gather(&s->k, ptm_kview_numel(ids), at(ids), (ptm_dtype)ids->dtype, at(table),
                            (ptm_dtype)table->dtype, table->ne[0], table->ne[1], at(out));
}

/* Element strides of a [B, S, H, D] view of dtype dt whose last dim is packed. */
static int bshd(const struct ptm_kview *v, ptm_dtype dt, int64_t *bs, int64_t *ss, int64_t *hs)
{
    int64_t es = dt == PTM_F32 ? 4 : 2;
    if ((ptm_dtype)v->dtype != dt || v->ndim != 4 || (v->ne[3] != 1 && v->nb[3] != es) ||
        v->nb[0] % es != 0 || v->nb[1] % es != 0 || v->nb[2] % es != 0) {
        return 0;
    }
    *bs = v->nb[0] / es;
    *ss = v->nb[1] / es;
    *hs = v->nb[2] / es;
    return 1;
}

/* The key mask as floats (1 keep, 0 drop), converted from I32 / I64 / F32. */
static float *mask_floats(const struct ptm_kview *m, int64_t n)
{
    float *f = malloc((size_t)n * sizeof *f + 1);
    for (int64_t i = 0; f != NULL && i < n; i++) {
        const char *p = (const char *)at(m) + (i / m->ne[1]) * m->nb[0] + (i % m->ne[1]) * m->nb[1];
        if (m->dtype == PTM_I64) {
            f[i] = *(const int64_t *)p != 0;
        } else if (m->dtype == PTM_I32) {
            f[i] = *(const int32_t *)p != 0;
        } else {
            f[i] = *(const float *)p != 0.0f;
        }
    }
    return f;
}

static ptm_status cpu_attention_op(void *ctx, const struct ptm_attn_args *x)
{
    struct cpu_state *s = ctx;
    struct cpu_attention a = {
        .B = x->q->ne[0],
        .Sq = x->q->ne[1],
        .H = x->q->ne[2],
        .D = x->q->ne[3],
        .Sk = x->k->ne[1],
        .Hkv = x->k->ne[2],
        .scale = x->scale,
        .is_causal = x->causal,
        .causal_offset = x->q_offset,
        .kv_dtype = (ptm_dtype)x->k->dtype,
    };
    int kv_ok = a.kv_dtype == PTM_F32 || a.kv_dtype == PTM_F16 || a.kv_dtype == PTM_BF16;
    if (!kv_ok || !bshd(x->q, PTM_F32, &a.q_bs, &a.q_ss, &a.q_hs) ||
        !bshd(x->k, a.kv_dtype, &a.k_bs, &a.k_ss, &a.k_hs) ||
        !bshd(x->v, a.kv_dtype, &a.v_bs, &a.v_ss, &a.v_hs) ||
        !bshd(x->out, PTM_F32, &a.o_bs, &a.o_ss, &a.o_hs)) {
        return unsupported("attention", "needs F32 [B, S, H, D] views with packed heads (K and V "
                                        "may be both F16 or both BF16)");
    }
    if (x->bias != NULL && (x->bias->dtype != PTM_F32 || !ptm_kview_is_contiguous(x->bias))) {
        return unsupported("attention", "bias must be contiguous F32 [H, Sq, Sk]");
    }
    a.q = at(x->q);
    a.k = at(x->k);
    a.v = at(x->v);
    a.o = at(x->out);
    a.bias = x->bias ? at(x->bias) : NULL;
    float *mask = NULL;
    if (x->key_mask != NULL && (mask = mask_floats(x->key_mask, a.B * a.Sk)) == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: attention: out of memory");
    }
    a.key_mask = mask;
    ptm_status st = cpu_attention_run(&s->k, &a);
    free(mask);
    return st;
}

/* Conversions to and from PTM_Q8_0: quantize packed float rows, or dequantize. */
static ptm_status cpu_convert_q8(struct cpu_state *s, const struct ptm_kview *out,
                                 const struct ptm_kview *x)
{
    int64_t rows, cols, ld, qr, qc;
    if (out->dtype == PTM_Q8_0 && x->dtype == PTM_Q8_0) {
        if (!q8_rows(x, &rows, &cols) || !q8_rows(out, &qr, &qc) || qr != rows || qc != cols) {
            return unsupported("convert", "Q8_0 to Q8_0 needs packed rows of one shape");
        }
        memmove(at(out), at(x), (size_t)rows * ptm_dtype_row_bytes(PTM_Q8_0, cols));
        return PTM_OK;
    }
    if (out->dtype == PTM_Q8_0) {
        if (!ptm_kview_rows(x, &rows, &cols, &ld) || !q8_rows(out, &qr, &qc) || qr != rows ||
            qc != cols) {
            return unsupported("convert", "quantizing to Q8_0 needs packed rows of one shape");
        }
        return cpu_q8_quantize(&s->k, rows, cols, at(x), (ptm_dtype)x->dtype, ld, at(out));
    }
    if (!q8_rows(x, &rows, &cols) || !ptm_kview_is_contiguous(out) ||
        ptm_kview_numel(out) != rows * cols) {
        return unsupported("convert", "dequantizing Q8_0 needs packed rows into a packed tensor");
    }
    return cpu_q8_dequantize(&s->k, rows, cols, at(x), at(out), (ptm_dtype)out->dtype);
}

static ptm_status cpu_convert_op(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    struct cpu_state *s = ctx;
    int64_t rows, cols, ld;
    if (out->dtype == PTM_Q8_0 || x->dtype == PTM_Q8_0) {
        return cpu_convert_q8(s, out, x);
    }
    if (!ptm_kview_is_contiguous(out) || !ptm_kview_rows(x, &rows, &cols, &ld)) {
        return unsupported("convert", "needs packed rows");
    }
    size_t in_es = ptm_dtype_size(x->dtype), out_es = ptm_dtype_size(out->dtype);
    if (ld == cols) {
        return cpu_convert(&s->k, rows * cols, at(x), (ptm_dtype)x->dtype, at(out),
                           (ptm_dtype)out->dtype);
    }
    for (int64_t r = 0; r < rows; r++) {
        ptm_status st =
            cpu_convert(&s->k, cols, (const char *)at(x) + r * ld * in_es, (ptm_dtype)x->dtype,
                        (char *)at(out) + r * cols * out_es, (ptm_dtype)out->dtype);
        if (st != PTM_OK) {
            return st;
        }
    }
    return PTM_OK;
}

static ptm_status cpu_rope_op(void *ctx, const struct ptm_rope_args *r)
{
    struct cpu_state *s = ctx;
    const struct ptm_kview *x = r->x, *p = r->positions;
    if (x->dtype != PTM_F32 || x->ndim != 4 || (x->ne[3] > 1 && x->nb[3] != 4) ||
        r->inv_freq->dtype != PTM_F32 || !ptm_kview_is_contiguous(r->inv_freq) ||
        !ptm_kview_is_contiguous(p)) {
        return unsupported("rope", "needs an F32 [B, S, H, D] view with packed heads");
    }
    int64_t B = x->ne[0], S = x->ne[1];
    int64_t *pos = malloc((size_t)(B * S) * sizeof *pos + 1);
    if (pos == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: rope: out of memory");
    }
    for (int64_t i = 0; i < B * S; i++) {
        pos[i] = p->dtype == PTM_I64 ? ((const int64_t *)at(p))[i] : ((const int32_t *)at(p))[i];
    }
    for (int64_t b = 0; b < B; b++) {
        cpu_rope_freqs(&s->k, S, x->ne[2], r->rot_dims, (float *)((char *)at(x) + b * x->nb[0]),
                       x->nb[1] / 4, x->nb[2] / 4, pos + b * S, at(r->inv_freq), r->attn_factor,
                       r->neox);
    }
    free(pos);
    return PTM_OK;
}

static const struct ptm_backend cpu_backend = {
    .struct_size = sizeof(struct ptm_backend),
    .name = "cpu",
    .init = cpu_init,
    .destroy = cpu_destroy,
    .score = cpu_score,
    .probe = cpu_probe,
    .device_name = cpu_device_name,
    .buffer_alloc = cpu_alloc,
    .buffer_free = cpu_free,
    .buffer_import = cpu_import,
    .buffer_host_ptr = cpu_host_ptr,
    .write = cpu_write,
    .read = cpu_read,
    .sync = cpu_sync,
    .matmul = cpu_matmul,
    .unary = cpu_unary,
    .binary = cpu_binary,
    .scale = cpu_scale_op,
    .norm = cpu_norm,
    .softmax = cpu_softmax_op,
    .embedding = cpu_embedding,
    .attention = cpu_attention_op,
    .rope = cpu_rope_op,
    .convert = cpu_convert_op,
};

static ptm_status cpu_register(const struct ptm_registrar *reg)
{
    return reg->add_backend(reg, &cpu_backend);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_BACKEND, "cpu", PTM_VERSION_STRING, cpu_register)
