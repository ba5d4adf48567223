/*
 * cuda_backend.c - the CUDA backend plugin: the ABI table of ptm_backend.h over cuBLAS and the
 * kernels of cuda_kernels.h. It owns the translation from tensor views (byte offsets and
 * strides) to kernel arguments (typed device pointers, element strides) and refuses, with
 * PTM_E_UNSUPPORTED naming the op, the layouts the kernels do not take - the set the CPU
 * backend takes. Buffers live in device memory (the host never addresses them, so import and
 * host_ptr are absent and the runtime copies); they and the device setup are cuda_device.c's.
 *
 * GEMM: cuBLAS has no F32 x F16/BF16 GEMM, and rounding activations to 16 bits would break
 * the CPU's contract (activations stay F32), so F16/BF16 weights are widened exactly into a
 * scratch F32 copy and multiplied with cublasGemmEx in F32 (no TF32). Bias and the fused
 * activation run as one small kernel after it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_device.h"
#include "cuda_kernels.h"
#include "ptm/ptm_backend.h"
#include "ptm/ptm_plugin.h"

static ptm_status cuda_init(void **out)
{
    struct cuda_state *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cuda: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    cuda_device_open(s);
    *out = s;
    return PTM_OK;
}

static void cuda_destroy(void *ctx)
{
    struct cuda_state *s = ctx;
    if (s != NULL) {
        cuda_device_close(s);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

static int32_t cuda_score(void *ctx)
{
    const struct cuda_state *s = ctx;
    return s->n_devices > 0 ? 20 : 0; /* above OpenCL's GPU score of 10 */
}

static ptm_status cuda_probe(void *ctx, int32_t *n)
{
    const struct cuda_state *s = ctx;
    *n = s->n_devices;
    if (s->n_devices == 0) {
        ptm_error_set(PTM_OK, "%s", s->why);
    }
    return PTM_OK;
}

static ptm_status cuda_device_name(void *ctx, int32_t dev, char *buf, size_t cap)
{
    const struct cuda_state *s = ctx;
    snprintf(buf, cap, "cuda:%d (%s)", (int)dev, s->name);
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Views                                                                                       */

static void *at(const struct ptm_kview *v)
{
    return v != NULL ? (char *)((struct cuda_buf *)v->buf)->ptr + v->offset : NULL;
}

/* The kernels' dtype code (CUDA_K_*), or -1. */
static int32_t cdt(int32_t dtype)
{
    return dtype == PTM_F32    ? CUDA_K_F32
           : dtype == PTM_F16  ? CUDA_K_F16
           : dtype == PTM_BF16 ? CUDA_K_BF16
                               : -1;
}

static ptm_status unsupported(const char *op, const char *what)
{
    return ptm_error_set(PTM_E_UNSUPPORTED, "cuda: %s: %s", op, what);
}

static ptm_status launched(const char *op, cudaError_t err)
{
    return err == cudaSuccess ? PTM_OK : cuda_fail(PTM_E_INTERNAL, op, "kernel launch", err);
}

static int is_f32(const struct ptm_kview *v)
{
    return v->dtype == PTM_F32;
}

/* Contiguous F32, the layout of the pointwise ops. */
static int packed_f32(const struct ptm_kview *v)
{
    return v->dtype == PTM_F32 && ptm_kview_is_contiguous(v);
}

/* v as rows x cols with row stride ld, the rows not overlapping. */
static int rows_of(const struct ptm_kview *v, int64_t *rows, int64_t *cols, int64_t *ld)
{
    return ptm_kview_rows(v, rows, cols, ld) && (*rows <= 1 || *ld >= *cols);
}

/* v as rows x cols packed PTM_Q8_0 rows (whole rows only, ptm_tensor.h); 0 if it is not. */
static int q8_rows_of(const struct ptm_kview *v, int64_t *rows, int64_t *cols)
{
    int32_t last = v->ndim - 1;
    int64_t stride = last >= 0 ? (int64_t)ptm_dtype_row_bytes(PTM_Q8_0, v->ne[last]) : 0;
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

/* ------------------------------------------------------------------------------------------ */
/* Kernels                                                                                     */

/* out[m, n] = a[m, k] . op(b) on row-major data, as the column-major product
 * out^T[n, m] = op(b)^T[n, k] . a^T[k, m]: a row-major matrix with row stride ld is its
 * transpose in column-major with leading dimension ld, so no data moves. */
static ptm_status gemm(struct cuda_state *s, int trans, int64_t m, int64_t n, int64_t k,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float *out,
                       int64_t ldo)
{
    if (k == 0) {
        cudaError_t err = cudaMemset2DAsync(out, (size_t)ldo * sizeof(float), 0,
                                            (size_t)n * sizeof(float), (size_t)m, s->stream);
        return err == cudaSuccess ? PTM_OK
                                  : cuda_fail(PTM_E_INTERNAL, "matmul", "cudaMemset2DAsync", err);
    }
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st =
        cuda_blas.gemm_ex(s->blas, trans ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)m,
                          (int)k, &alpha, b, CUDA_R_32F, (int)ldb, a, CUDA_R_32F, (int)lda, &beta,
                          out, CUDA_R_32F, (int)ldo, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? PTM_OK : cuda_blas_fail("matmul", "cublasGemmEx", st);
}

/* The widened copy of b is made in slices of output columns, so scratch stays bounded (an
 * LM head's F32 copy alone would be hundreds of MiB). */
#define WIDEN_MAX_BYTES ((size_t)64 << 20)

/* gemm with F16/BF16/Q8_0 b (k > 0; Q8_0 only as [N, K] rows, trans): each slice of b is
 * widened (dequantized) into scratch, then multiplied in F32, so activations stay F32. The
 * caller holds s->mu; every use of the scratch is enqueued before it drops the lock, and the
 * stream runs them in order. */
static ptm_status gemm_widened(struct cuda_state *s, int trans, int64_t m, int64_t n, int64_t k,
                               const float *a, int64_t lda, const struct ptm_kview *b, int64_t ldb,
                               float *out, int64_t ldo)
{
    int64_t nc = (int64_t)(WIDEN_MAX_BYTES / sizeof(float)) / k;
    nc = nc < 1 ? 1 : nc > n ? n : nc;
    void *wide = NULL;
    ptm_status st = cuda_scratch(s, "matmul", (size_t)(nc * k) * sizeof(float), &wide);
    const char *w = at(b);
    size_t es = ptm_dtype_size(b->dtype), q8_row = ptm_dtype_row_bytes(PTM_Q8_0, k);
    for (int64_t n0 = 0; st == PTM_OK && n0 < n; n0 += nc) {
        int64_t cn = n - n0 < nc ? n - n0 : nc;
        /* trans: rows n0.. of b [N, K] -> wide [cn, k]; else columns n0.. of b [K, N] -> wide
         * [k, cn]. */
        const char *src = w + (size_t)(trans ? n0 * ldb : n0) * es;
        cudaError_t err =
            b->dtype == PTM_Q8_0
                ? cuda_k_q8_dequant(s->stream, wide, CUDA_K_F32, w + (size_t)n0 * q8_row, cn, k)
            : trans ? cuda_k_convert(s->stream, wide, CUDA_K_F32, src, cdt(b->dtype), cn, k, ldb)
                    : cuda_k_convert(s->stream, wide, CUDA_K_F32, src, cdt(b->dtype), k, cn, ldb);
        st = launched("matmul", err);
        if (st == PTM_OK) {
            st = gemm(s, trans, m, cn, k, a, lda, wide, trans ? k : cn, out + n0, ldo);
        }
    }
    return st;
}

static ptm_status cuda_matmul(void *ctx, const struct ptm_kview *out, const struct ptm_kview *a,
                              const struct ptm_kview *b, const struct ptm_kview *bias,
                              uint32_t flags)
{
    struct cuda_state *s = ctx;
    int64_t m, k, lda, mo, n, ldo, br = 0, bc = 0, ldb = 0;
    int trans = (flags & PTM_MM_TRANS_B) != 0;
    int b_ok = b->dtype == PTM_Q8_0 ? trans && q8_rows_of(b, &br, &bc)
                                    : cdt(b->dtype) >= 0 && rows_of(b, &br, &bc, &ldb);
    if (b->dtype == PTM_Q8_0) {
        ldb = bc;
    }
    if (!is_f32(a) || !is_f32(out) || !b_ok || !rows_of(a, &m, &k, &lda) ||
        !rows_of(out, &mo, &n, &ldo)) {
        return unsupported("matmul", "needs F32 a and out, F32/F16/BF16 b or Q8_0 [N, K] b, "
                                     "packed rows");
    }
    if (mo != m || (trans ? (br != n || bc != k) : (br != k || bc != n))) {
        return ptm_error_set(PTM_E_INVAL,
                             "cuda: matmul: a [%lld x %lld], b [%lld x %lld], "
                             "out [%lld x %lld] do not fit",
                             (long long)m, (long long)k, (long long)br, (long long)bc,
                             (long long)mo, (long long)n);
    }
    if (bias != NULL && (!packed_f32(bias) || ptm_kview_numel(bias) != n)) {
        return unsupported("matmul", "bias must be contiguous F32 [N]");
    }
    int32_t act = (int32_t)((flags >> PTM_MM_ACT_SHIFT) & 0xffu);
    if (act > PTM_UNARY_TANH) {
        return unsupported("matmul", "fused activation not available");
    }
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldo > INT_MAX) {
        return unsupported("matmul", "a dimension or row stride above 2^31 - 1");
    }
    if (m == 0 || n == 0) {
        return PTM_OK;
    }
    pthread_mutex_lock(&s->mu);
    ptm_status st = b->dtype == PTM_F32 || k == 0
                        ? gemm(s, trans, m, n, k, at(a), lda, at(b), ldb, at(out), ldo)
                        : gemm_widened(s, trans, m, n, k, at(a), lda, b, ldb, at(out), ldo);
    pthread_mutex_unlock(&s->mu);
    if (st == PTM_OK) {
        st = launched("matmul", cuda_k_bias_act(s->stream, at(out), ldo, m, n, at(bias), act));
    }
    return st;
}

static ptm_status cuda_unary(void *ctx, int32_t op, const struct ptm_kview *out,
                             const struct ptm_kview *x)
{
    struct cuda_state *s = ctx;
    if (!packed_f32(x) || !packed_f32(out)) {
        return unsupported("unary", "needs contiguous F32");
    }
    if (op < PTM_UNARY_GELU || op > PTM_UNARY_TANH) {
        return unsupported("unary", "unknown op");
    }
    return launched("unary", cuda_k_unary(s->stream, op, at(out), at(x), ptm_kview_numel(x)));
}

static ptm_status cuda_binary(void *ctx, int32_t op, const struct ptm_kview *out,
                              const struct ptm_kview *a, const struct ptm_kview *b)
{
    struct cuda_state *s = ctx;
    if (!packed_f32(a) || !packed_f32(b) || !packed_f32(out)) {
        return unsupported("binary", "needs contiguous F32");
    }
    if (op != PTM_BINARY_ADD && op != PTM_BINARY_MUL) {
        return unsupported("binary", "unknown op");
    }
    int64_t n = ptm_kview_numel(a), nb = ptm_kview_numel(b);
    if (n == 0) {
        return PTM_OK;
    }
    if (nb == 0 || n % nb != 0) {
        return ptm_error_set(PTM_E_INVAL, "cuda: binary: b's %lld elements do not tile a's %lld",
                             (long long)nb, (long long)n);
    }
    return launched("binary",
                    cuda_k_binary(s->stream, op == PTM_BINARY_MUL, at(out), at(a), at(b), n, nb));
}

static ptm_status cuda_scale(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x,
                             float sc)
{
    struct cuda_state *s = ctx;
    if (!packed_f32(x) || !packed_f32(out)) {
        return unsupported("scale", "needs contiguous F32");
    }
    return launched("scale", cuda_k_scale(s->stream, at(out), at(x), sc, ptm_kview_numel(x)));
}

static ptm_status cuda_norm(void *ctx, int32_t kind, const struct ptm_kview *out,
                            const struct ptm_kview *x, const struct ptm_kview *res,
                            const struct ptm_kview *w, const struct ptm_kview *b, float eps)
{
    struct cuda_state *s = ctx;
    int64_t rows, n, ldx, ro, no, ldo, rr = 0, nr = 0, ldr = 0;
    if (!is_f32(x) || !is_f32(out) || (w && !packed_f32(w)) || (b && !packed_f32(b)) ||
        (res && !is_f32(res)) || !rows_of(x, &rows, &n, &ldx) || !rows_of(out, &ro, &no, &ldo) ||
        (res && !rows_of(res, &rr, &nr, &ldr))) {
        return unsupported("norm", "needs F32 operands with packed rows");
    }
    if (ro != rows || no != n || (res && (rr != rows || nr != n)) ||
        (w && ptm_kview_numel(w) != n) || (b && ptm_kview_numel(b) != n)) {
        return ptm_error_set(PTM_E_INVAL, "cuda: norm: operand shapes differ from [%lld x %lld]",
                             (long long)rows, (long long)n);
    }
    if (kind != PTM_NORM_LAYER && kind != PTM_NORM_RMS) {
        return unsupported("norm", "unknown kind");
    }
    return launched("norm", cuda_k_norm(s->stream, kind == PTM_NORM_RMS, rows, n, at(out), ldo,
                                        at(x), ldx, at(res), ldr, at(w), at(b), eps));
}

static ptm_status cuda_softmax(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    struct cuda_state *s = ctx;
    int64_t rows, n, ldx, ro, no, ldo;
    if (!is_f32(x) || !is_f32(out) || !rows_of(x, &rows, &n, &ldx) ||
        !rows_of(out, &ro, &no, &ldo)) {
        return unsupported("softmax", "needs F32 with packed rows");
    }
    if (ro != rows || no != n) {
        return ptm_error_set(PTM_E_INVAL, "cuda: softmax: out is not [%lld x %lld]",
                             (long long)rows, (long long)n);
    }
    return launched("softmax", cuda_k_softmax(s->stream, rows, n, at(out), ldo, at(x), ldx));
}

/* Ids are checked on the host: an out-of-range id must fail the call, not read past the
 * table, and reading back a few ids costs less than a flag buffer round trip. */
static ptm_status check_ids(struct cuda_state *s, const struct ptm_kview *ids, int64_t n_rows)
{
    int64_t n = ptm_kview_numel(ids);
    size_t es = ptm_dtype_size(ids->dtype);
    void *host = malloc((size_t)n * es + 1);
    if (host == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cuda: embedding: out of memory");
    }
    ptm_status st = cuda_read(s, ids->buf, ids->offset, host, (size_t)n * es);
    for (int64_t i = 0; st == PTM_OK && i < n; i++) {
        int64_t id =
            ids->dtype == PTM_I64 ? ((const int64_t *)host)[i] : ((const int32_t *)host)[i];
        if (id < 0 || id >= n_rows) {
            st = ptm_error_set(PTM_E_RANGE,
                               "cuda: embedding: id %lld at position %lld outside the "
                               "table's %lld rows",
                               (long long)id, (long long)i, (long long)n_rows);
        }
    }
    free(host);
    return st;
}

static ptm_status cuda_embedding(void *ctx, const struct ptm_kview *out,
                                 const struct ptm_kview *table, const struct ptm_kview *ids)
{
    struct cuda_state *s = ctx;
    if (!packed_f32(out) || cdt(table->dtype) < 0 || !ptm_kview_is_contiguous(table) ||
        !ptm_kview_is_contiguous(ids) || table->ndim != 2 ||
        (ids->dtype != PTM_I32 && ids->dtype != PTM_I64)) {
        return unsupported("embedding", "needs contiguous operands, F32 out, I32/I64 ids");
    }
    int64_t n_ids = ptm_kview_numel(ids), dim = table->ne[1];
    if (ptm_kview_numel(out) != n_ids * dim) {
        return ptm_error_set(PTM_E_INVAL, "cuda: embedding: out has %lld elements, expected %lld",
                             (long long)ptm_kview_numel(out), (long long)(n_ids * dim));
    }
    ptm_status st = check_ids(s, ids, table->ne[0]);
    if (st != PTM_OK) {
        return st;
    }
    return launched("embedding", cuda_k_embedding(s->stream, at(out), at(table), cdt(table->dtype),
                                                  at(ids), ids->dtype == PTM_I64, n_ids, dim));
}

/* Element strides of a [B, S, H, D] F32 view whose last dim is packed. */
static int bshd(const struct ptm_kview *v, int64_t *bs, int64_t *ss, int64_t *hs)
{
    if (v->dtype != PTM_F32 || v->ndim != 4 || (v->ne[3] != 1 && v->nb[3] != 4) ||
        v->offset % 4 != 0 || v->nb[0] % 4 != 0 || v->nb[1] % 4 != 0 || v->nb[2] % 4 != 0) {
        return 0;
    }
    *bs = v->nb[0] / 4;
    *ss = v->nb[1] / 4;
    *hs = v->nb[2] / 4;
    return 1;
}

/* The key mask's dtype code and element strides; 0 when it is not I32/I64/F32 [B, Sk]. */
static int mask_dims(const struct ptm_kview *m, struct cuda_k_attn *a)
{
    if (m == NULL) {
        return 1;
    }
    int64_t es = (int64_t)ptm_dtype_size(m->dtype);
    if ((m->dtype != PTM_F32 && m->dtype != PTM_I32 && m->dtype != PTM_I64) || m->ndim != 2 ||
        m->ne[0] != a->B || m->ne[1] != a->Sk || m->offset % (uint64_t)es != 0 ||
        m->nb[0] % es != 0 || m->nb[1] % es != 0) {
        return 0;
    }
    a->mask = at(m);
    a->mask_dt = m->dtype == PTM_F32 ? 0 : m->dtype == PTM_I32 ? 1 : 2;
    a->m_bs = m->nb[0] / es;
    a->m_ss = m->nb[1] / es;
    return 1;
}

static ptm_status cuda_attention(void *ctx, const struct ptm_attn_args *x)
{
    struct cuda_state *s = ctx;
    struct cuda_k_attn a = {
        .B = x->q->ne[0],
        .Sq = x->q->ne[1],
        .H = x->q->ne[2],
        .D = x->q->ne[3],
        .Sk = x->k->ne[1],
        .Hkv = x->k->ne[2],
        .q = at(x->q),
        .k = at(x->k),
        .v = at(x->v),
        .o = at(x->out),
        .scale = x->scale,
        .causal = x->causal != 0,
        .q_offset = x->q_offset,
    };
    if (!bshd(x->q, &a.q_bs, &a.q_ss, &a.q_hs) || !bshd(x->k, &a.k_bs, &a.k_ss, &a.k_hs) ||
        !bshd(x->v, &a.v_bs, &a.v_ss, &a.v_hs) || !bshd(x->out, &a.o_bs, &a.o_ss, &a.o_hs)) {
        return unsupported("attention", "needs F32 [B, S, H, D] views with packed heads");
    }
    if (a.Hkv <= 0 || a.H % a.Hkv != 0 || x->k->ne[0] != a.B || x->k->ne[3] != a.D ||
        memcmp(x->k->ne, x->v->ne, sizeof x->k->ne) != 0 ||
        memcmp(x->q->ne, x->out->ne, sizeof x->q->ne) != 0) {
        return ptm_error_set(PTM_E_INVAL, "cuda: attention: q, k, v, out shapes do not fit");
    }
    if (a.D > CUDA_K_ATTN_MAX_D || a.H > 65535 || a.B > 65535) {
        return unsupported("attention", "head dim above 256, or more than 65535 heads or batches");
    }
    if (x->bias != NULL &&
        (!packed_f32(x->bias) || ptm_kview_numel(x->bias) != a.H * a.Sq * a.Sk)) {
        return unsupported("attention", "bias must be contiguous F32 [H, Sq, Sk]");
    }
    a.bias = at(x->bias);
    if (!mask_dims(x->key_mask, &a)) {
        return unsupported("attention", "key mask must be I32/I64/F32 [B, Sk]");
    }
    int64_t n_splits = cuda_k_attention_splits(&a, s->n_sm);
    if (n_splits == 0) {
        return launched("attention", cuda_k_attention(s->stream, &a, 0, NULL));
    }
    /* The decode path's partial results live in scratch until the merge kernel reads them. */
    pthread_mutex_lock(&s->mu);
    void *scratch = NULL;
    ptm_status st = cuda_scratch(
        s, "attention", cuda_k_attention_scratch_floats(&a, n_splits) * sizeof(float), &scratch);
    if (st == PTM_OK) {
        st = launched("attention", cuda_k_attention(s->stream, &a, n_splits, scratch));
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static ptm_status cuda_rope(void *ctx, const struct ptm_rope_args *r)
{
    struct cuda_state *s = ctx;
    const struct ptm_kview *x = r->x, *p = r->positions;
    int64_t bs, ss, hs;
    if (!bshd(x, &bs, &ss, &hs) || !packed_f32(r->inv_freq) || !ptm_kview_is_contiguous(p) ||
        (p->dtype != PTM_I32 && p->dtype != PTM_I64)) {
        return unsupported("rope", "needs an F32 [B, S, H, D] view with packed heads");
    }
    if (r->rot_dims <= 0 || r->rot_dims % 2 != 0 || r->rot_dims > x->ne[3] ||
        ptm_kview_numel(r->inv_freq) != r->rot_dims / 2 ||
        ptm_kview_numel(p) != x->ne[0] * x->ne[1]) {
        return ptm_error_set(PTM_E_INVAL,
                             "cuda: rope: rot_dims %d, inv_freq or positions do "
                             "not fit x",
                             (int)r->rot_dims);
    }
    struct cuda_k_rope k = {
        .x = at(x),
        .bs = bs,
        .ss = ss,
        .hs = hs,
        .B = x->ne[0],
        .S = x->ne[1],
        .H = x->ne[2],
        .half = r->rot_dims / 2,
        .pos = at(p),
        .pos_i64 = p->dtype == PTM_I64,
        .inv_freq = at(r->inv_freq),
        .attn_factor = r->attn_factor,
        .neox = r->neox != 0,
    };
    return launched("rope", cuda_k_rope(s->stream, &k));
}

/* Quantize packed float rows to Q8_0, dequantize, or copy Q8_0 rows. */
static ptm_status cuda_convert_q8(struct cuda_state *s, const struct ptm_kview *out,
                                  const struct ptm_kview *x)
{
    int64_t rows, cols, ld, qr, qc;
    if (x->dtype == PTM_Q8_0) {
        if (!q8_rows_of(x, &rows, &cols)) {
            return unsupported("convert", "Q8_0 input must be packed rows");
        }
        if (out->dtype == PTM_Q8_0) {
            if (!q8_rows_of(out, &qr, &qc) || qr != rows || qc != cols) {
                return unsupported("convert", "Q8_0 to Q8_0 needs packed rows of one shape");
            }
            cudaError_t err =
                cudaMemcpyAsync(at(out), at(x), (size_t)rows * ptm_dtype_row_bytes(PTM_Q8_0, cols),
                                cudaMemcpyDeviceToDevice, s->stream);
            return err == cudaSuccess
                       ? PTM_OK
                       : cuda_fail(PTM_E_INTERNAL, "convert", "cudaMemcpyAsync", err);
        }
        if (cdt(out->dtype) < 0 || !ptm_kview_is_contiguous(out) ||
            ptm_kview_numel(out) != rows * cols) {
            return unsupported("convert", "dequantizing Q8_0 needs a packed F32/F16/BF16 out");
        }
        return launched("convert",
                        cuda_k_q8_dequant(s->stream, at(out), cdt(out->dtype), at(x), rows, cols));
    }
    if (cdt(x->dtype) < 0 || !rows_of(x, &rows, &cols, &ld) || !q8_rows_of(out, &qr, &qc) ||
        qr != rows || qc != cols) {
        return unsupported("convert", "quantizing to Q8_0 needs F32/F16/BF16 rows of one shape");
    }
    pthread_mutex_lock(&s->mu);
    int32_t bad = 0;
    void *flag = NULL;
    ptm_status st = cuda_scratch(s, "convert", sizeof bad, &flag);
    cudaError_t err = st == PTM_OK ? cudaMemsetAsync(flag, 0, sizeof bad, s->stream) : cudaSuccess;
    if (st == PTM_OK && err == cudaSuccess) {
        err = cuda_k_q8_quant(s->stream, at(out), at(x), cdt(x->dtype), rows, cols, ld, flag);
    }
    if (st == PTM_OK && err == cudaSuccess) {
        err = cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, s->stream);
    }
    if (st == PTM_OK && err == cudaSuccess) {
        err = cudaStreamSynchronize(s->stream);
    }
    pthread_mutex_unlock(&s->mu);
    if (st == PTM_OK && err != cudaSuccess) {
        st = cuda_fail(PTM_E_INTERNAL, "convert", "quantizing to Q8_0", err);
    }
    if (st == PTM_OK && bad) {
        st = ptm_error_set(PTM_E_RANGE, "cuda: convert: a block to quantize holds a non-finite "
                                        "value or a magnitude past what an F16 scale can hold "
                                        "(127 x 65504)");
    }
    return st;
}

static ptm_status cuda_convert(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x)
{
    struct cuda_state *s = ctx;
    int64_t rows, cols, ld;
    if (out->dtype == PTM_Q8_0 || x->dtype == PTM_Q8_0) {
        return cuda_convert_q8(s, out, x);
    }
    if (!ptm_kview_is_contiguous(out) || !rows_of(x, &rows, &cols, &ld)) {
        return unsupported("convert", "needs packed rows");
    }
    if (ptm_kview_numel(out) != rows * cols) {
        return ptm_error_set(PTM_E_INVAL, "cuda: convert: out has %lld elements, x %lld",
                             (long long)ptm_kview_numel(out), (long long)(rows * cols));
    }
    if (out->dtype == x->dtype) {
        /* Any dtype: a 2D copy gathers the rows. */
        size_t es = ptm_dtype_size(x->dtype);
        if (rows * cols == 0) {
            return PTM_OK;
        }
        cudaError_t err =
            cudaMemcpy2DAsync(at(out), (size_t)cols * es, at(x), (size_t)ld * es, (size_t)cols * es,
                              (size_t)rows, cudaMemcpyDeviceToDevice, s->stream);
        return err == cudaSuccess ? PTM_OK
                                  : cuda_fail(PTM_E_INTERNAL, "convert", "cudaMemcpy2DAsync", err);
    }
    if (cdt(out->dtype) < 0 || cdt(x->dtype) < 0) {
        return ptm_error_set(PTM_E_UNSUPPORTED, "cuda: convert: %s to %s not available",
                             ptm_dtype_name(x->dtype), ptm_dtype_name(out->dtype));
    }
    return launched("convert", cuda_k_convert(s->stream, at(out), cdt(out->dtype), at(x),
                                              cdt(x->dtype), rows, cols, ld));
}

static const struct ptm_backend cuda_backend = {
    .struct_size = sizeof(struct ptm_backend),
    .name = "cuda",
    .init = cuda_init,
    .destroy = cuda_destroy,
    .score = cuda_score,
    .probe = cuda_probe,
    .device_name = cuda_device_name,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .buffer_import = NULL,
    .buffer_host_ptr = NULL,
    .write = cuda_write,
    .read = cuda_read,
    .sync = cuda_sync,
    .matmul = cuda_matmul,
    .unary = cuda_unary,
    .binary = cuda_binary,
    .scale = cuda_scale,
    .norm = cuda_norm,
    .softmax = cuda_softmax,
    .embedding = cuda_embedding,
    .attention = cuda_attention,
    .rope = cuda_rope,
    .convert = cuda_convert,
};

static ptm_status cuda_register(const struct ptm_registrar *reg)
{
    return reg->add_backend(reg, &cuda_backend);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_BACKEND, "cuda", PTM_VERSION_STRING, cuda_register)
