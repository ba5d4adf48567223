/*
 * ops.c - the op set's front door: each ptm_op_* checks its operands (dtypes, shapes) with
 * messages naming the op and the mismatch, brings them onto one device (xfer.c: the device
 * of the op's weight, or of its first input, so that with a device_map each layer runs where
 * its parameters are), builds the kernel views and calls that device's backend kernel. It
 * computes nothing itself.
 */
#include <string.h>

#include "error.h"
#include "ptm/ptm_ops.h"
#include "tensor.h"
#include "xfer.h"

#define KV(name, t)                                                                                \
    struct ptm_kview name;                                                                         \
    ptm__tensor_kview((t), &name)

/* The kernel of the placed op's backend, or PTM_E_UNSUPPORTED naming the backend and the op
 * (after releasing the placement's temporaries). */
#define KERNEL(pl, member, opname)                                                                 \
    const struct ptm_backend *be_ = (pl).dev->backend->be;                                         \
    if (!PTM_HAS(be_, struct ptm_backend, member) || be_->member == NULL) {                        \
        return ptm__xfer_finish(&(pl), ptm__fail(PTM_E_UNSUPPORTED,                                \
                                                 "op %s: backend %s has no kernel for it", opname, \
                                                 be_->name));                                      \
    }                                                                                              \
    void *ctx_ = (pl).dev->backend->ctx

/* Place the op's operands (xfer.h) or return the failure. */
#define PLACE(pl, opname, out, anchor, ...)                                                        \
    struct ptm__placed pl;                                                                         \
    do {                                                                                           \
        const ptm_tensor *const in_[] = {__VA_ARGS__};                                             \
        ptm_status pst_ = ptm__xfer_place(&pl, (opname), (out), in_,                               \
                                          (int)(sizeof in_ / sizeof in_[0]), (anchor));            \
        if (pst_ != PTM_OK) {                                                                      \
            return pst_;                                                                           \
        }                                                                                          \
    } while (0)

/* Kernel view of an optional operand: NULL stays NULL. */
static const struct ptm_kview *opt_kview(const ptm_tensor *t, struct ptm_kview *kv)
{
    if (t == NULL) {
        return NULL;
    }
    ptm__tensor_kview(t, kv);
    return kv;
}

static int64_t rows_of(const ptm_tensor *t)
{
    int64_t r = 1;
    for (int32_t i = 0; i + 1 < t->ndim; i++) {
        r *= t->ne[i];
    }
    return r;
}

static int64_t last_dim(const ptm_tensor *t)
{
    return t->ne[t->ndim - 1];
}

static ptm_status same_shape(const char *op, const ptm_tensor *a, const ptm_tensor *b)
{
    if (a->ndim != b->ndim || memcmp(a->ne, b->ne, sizeof a->ne) != 0) {
        return ptm__fail(PTM_E_INVAL, "op %s: shapes differ ([%lld x %lld] and [%lld x %lld])", op,
                         (long long)rows_of(a), (long long)last_dim(a), (long long)rows_of(b),
                         (long long)last_dim(b));
    }
    return PTM_OK;
}

ptm_status ptm_op_matmul(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b,
                         const ptm_tensor *bias, uint32_t flags)
{
    int trans = (flags & PTM_MM_TRANS_B) != 0;
    int64_t k = last_dim(a);
    int64_t n = b->ndim == 2 ? (trans ? b->ne[0] : b->ne[1]) : -1;
    int64_t bk = b->ndim == 2 ? (trans ? b->ne[1] : b->ne[0]) : -1;
    if (b->ndim != 2 || bk != k || last_dim(out) != n || rows_of(out) != rows_of(a)) {
        return ptm__fail(PTM_E_INVAL,
                         "op matmul: a [%lld x %lld], b %s[%lld x %lld], out [%lld x %lld] "
                         "do not fit",
                         (long long)rows_of(a), (long long)k, trans ? "^T " : "",
                         (long long)b->ne[0], (long long)b->ne[1], (long long)rows_of(out),
                         (long long)last_dim(out));
    }
    if (bias != NULL && ptm_tensor_numel(bias) != n) {
        return ptm__fail(PTM_E_INVAL, "op matmul: bias has %lld elements, expected %lld",
                         (long long)ptm_tensor_numel(bias), (long long)n);
    }
    PLACE(pl, "matmul", out, b, a, b, bias);
    KERNEL(pl, matmul, "matmul");
    KV(ko, pl.out);
    KV(ka, pl.in[0]);
    KV(kb, pl.in[1]);
    struct ptm_kview kbias;
    return ptm__xfer_finish(&pl,
                            be_->matmul(ctx_, &ko, &ka, &kb, opt_kview(pl.in[2], &kbias), flags));
}

ptm_status ptm_op_unary(ptm_tensor *out, const ptm_tensor *x, int32_t op)
{
    ptm_status st = same_shape("unary", out, x);
    if (st != PTM_OK) {
        return st;
    }
    PLACE(pl, "unary", out, x, x);
    KERNEL(pl, unary, "unary");
    KV(ko, pl.out);
    KV(kx, pl.in[0]);
    return ptm__xfer_finish(&pl, be_->unary(ctx_, op, &ko, &kx));
}

static ptm_status binary(const char *name, int32_t op, ptm_tensor *out, const ptm_tensor *a,
                         const ptm_tensor *b)
{
    ptm_status st = same_shape(name, out, a);
    if (st != PTM_OK) {
        return st;
    }
    /* b's shape must be a suffix of a's (broadcast over a's leading dims). */
    int ok = b->ndim <= a->ndim;
    for (int32_t i = 0; ok && i < b->ndim; i++) {
        ok = b->ne[b->ndim - 1 - i] == a->ne[a->ndim - 1 - i];
    }
    if (!ok) {
        return ptm__fail(PTM_E_INVAL, "op %s: b's shape is not a suffix of a's", name);
    }
    PLACE(pl, name, out, a, a, b);
    KERNEL(pl, binary, name);
    KV(ko, pl.out);
    KV(ka, pl.in[0]);
    KV(kb, pl.in[1]);
    return ptm__xfer_finish(&pl, be_->binary(ctx_, op, &ko, &ka, &kb));
}

ptm_status ptm_op_add(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b)
{
    return binary("add", PTM_BINARY_ADD, out, a, b);
}

ptm_status ptm_op_mul(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b)
{
    return binary("mul", PTM_BINARY_MUL, out, a, b);
}

ptm_status ptm_op_scale(ptm_tensor *out, const ptm_tensor *x, float s)
{
    ptm_status st = same_shape("scale", out, x);
    if (st != PTM_OK) {
        return st;
    }
    PLACE(pl, "scale", out, x, x);
    KERNEL(pl, scale, "scale");
    KV(ko, pl.out);
    KV(kx, pl.in[0]);
    return ptm__xfer_finish(&pl, be_->scale(ctx_, &ko, &kx, s));
}

static ptm_status norm(const char *name, int32_t kind, ptm_tensor *out, const ptm_tensor *x,
                       const ptm_tensor *residual, const ptm_tensor *weight, const ptm_tensor *bias,
                       float eps)
{
    ptm_status st = same_shape(name, out, x);
    if (st == PTM_OK && residual != NULL) {
        st = same_shape(name, x, residual);
    }
    if (st != PTM_OK) {
        return st;
    }
    int64_t d = last_dim(x);
    if (ptm_tensor_numel(weight) != d || (bias != NULL && ptm_tensor_numel(bias) != d)) {
        return ptm__fail(PTM_E_INVAL, "op %s: weight or bias size differs from %lld", name,
                         (long long)d);
    }
    PLACE(pl, name, out, weight, x, residual, weight, bias);
    KERNEL(pl, norm, name);
    KV(ko, pl.out);
    KV(kx, pl.in[0]);
    KV(kw, pl.in[2]);
    struct ptm_kview kr, kb;
    return ptm__xfer_finish(&pl, be_->norm(ctx_, kind, &ko, &kx, opt_kview(pl.in[1], &kr), &kw,
                                           opt_kview(pl.in[3], &kb), eps));
}

ptm_status ptm_op_layer_norm(ptm_tensor *out, const ptm_tensor *x, const ptm_tensor *residual,
                             const ptm_tensor *weight, const ptm_tensor *bias, float eps)
{
    return norm("layer_norm", PTM_NORM_LAYER, out, x, residual, weight, bias, eps);
}

ptm_status ptm_op_rms_norm(ptm_tensor *out, const ptm_tensor *x, const ptm_tensor *residual,
                           const ptm_tensor *weight, float eps)
{
    return norm("rms_norm", PTM_NORM_RMS, out, x, residual, weight, NULL, eps);
}

ptm_status ptm_op_softmax(ptm_tensor *out, const ptm_tensor *x)
{
    ptm_status st = same_shape("softmax", out, x);
    if (st != PTM_OK) {
        return st;
    }
    PLACE(pl, "softmax", out, x, x);
    KERNEL(pl, softmax, "softmax");
    KV(ko, pl.out);
    KV(kx, pl.in[0]);
    return ptm__xfer_finish(&pl, be_->softmax(ctx_, &ko, &kx));
}

ptm_status ptm_op_embedding(ptm_tensor *out, const ptm_tensor *table, const ptm_tensor *ids)
{
    if (table->ndim != 2 || (ids->dtype != PTM_I32 && ids->dtype != PTM_I64) ||
        ptm_tensor_numel(ids) != rows_of(out) || last_dim(out) != table->ne[1]) {
        return ptm__fail(PTM_E_INVAL,
                         "op embedding: table [%lld x %lld], %lld ids, out "
                         "[%lld x %lld] do not fit",
                         (long long)table->ne[0], (long long)table->ne[1],
                         (long long)ptm_tensor_numel(ids), (long long)rows_of(out),
                         (long long)last_dim(out));
    }
    PLACE(pl, "embedding", out, table, table, ids);
    KERNEL(pl, embedding, "embedding");
    KV(ko, pl.out);
    KV(kt, pl.in[0]);
    KV(ki, pl.in[1]);
    return ptm__xfer_finish(&pl, be_->embedding(ctx_, &ko, &kt, &ki));
}

ptm_status ptm_op_attention(ptm_tensor *out, const ptm_tensor *q, const ptm_tensor *k,
                            const ptm_tensor *v, float scale, const struct ptm_attention_opts *opts)
{
    const ptm_tensor *mask = opts ? opts->key_mask : NULL;
    const ptm_tensor *bias = opts ? opts->bias : NULL;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || out->ndim != 4 ||
        memcmp(out->ne, q->ne, sizeof q->ne) != 0 || memcmp(k->ne, v->ne, sizeof k->ne) != 0 ||
        k->ne[0] != q->ne[0] || k->ne[3] != q->ne[3] || k->ne[2] == 0 || q->ne[2] % k->ne[2] != 0) {
        return ptm__fail(PTM_E_INVAL, "op attention: q, k, v, out shapes do not fit "
                                      "[B, S, H, D] with H a multiple of the key heads");
    }
    if (mask != NULL && (mask->ndim != 2 || mask->ne[0] != q->ne[0] || mask->ne[1] != k->ne[1])) {
        return ptm__fail(PTM_E_INVAL, "op attention: key mask is not [batch, keys]");
    }
    PLACE(pl, "attention", out, q, q, k, v, mask, bias);
    KERNEL(pl, attention, "attention");
    KV(ko, pl.out);
    KV(kq, pl.in[0]);
    KV(kk, pl.in[1]);
    KV(kvv, pl.in[2]);
    struct ptm_kview km, kb;
    struct ptm_attn_args args = {
        .struct_size = sizeof args,
        .out = &ko,
        .q = &kq,
        .k = &kk,
        .v = &kvv,
        .key_mask = opt_kview(pl.in[3], &km),
        .bias = opt_kview(pl.in[4], &kb),
        .scale = scale,
        .causal = opts ? opts->causal : 0,
        .q_offset = opts ? opts->q_offset : 0,
    };
    return ptm__xfer_finish(&pl, be_->attention(ctx_, &args));
}

ptm_status ptm_op_convert(ptm_tensor *out, const ptm_tensor *x)
{
    if (ptm_tensor_numel(out) != ptm_tensor_numel(x) || !ptm_tensor_is_contiguous(out)) {
        return ptm__fail(PTM_E_INVAL, "op convert: out must be contiguous with x's size");
    }
    PLACE(pl, "convert", out, x, x);
    KERNEL(pl, convert, "convert");
    KV(ko, pl.out);
    KV(kx, pl.in[0]);
    return ptm__xfer_finish(&pl, be_->convert(ctx_, &ko, &kx));
}

ptm_status ptm_op_rope(ptm_tensor *x, const ptm_tensor *positions, const ptm_tensor *inv_freq,
                       float attn_factor, int32_t rot_dims, int32_t neox)
{
    if (x->ndim != 4 || x->dtype != PTM_F32) {
        return ptm__fail(PTM_E_INVAL, "op rope: x must be F32 [B, S, H, D]");
    }
    if (rot_dims <= 0 || rot_dims % 2 != 0 || rot_dims > x->ne[3]) {
        return ptm__fail(PTM_E_INVAL, "op rope: rot_dims %d must be even and in (0, %lld]",
                         (int)rot_dims, (long long)x->ne[3]);
    }
    if (positions->ndim != 2 || positions->ne[0] != x->ne[0] || positions->ne[1] != x->ne[1] ||
        (positions->dtype != PTM_I32 && positions->dtype != PTM_I64)) {
        return ptm__fail(PTM_E_INVAL, "op rope: positions must be I32/I64 [%lld, %lld]",
                         (long long)x->ne[0], (long long)x->ne[1]);
    }
    if (inv_freq->dtype != PTM_F32 || ptm_tensor_numel(inv_freq) != rot_dims / 2) {
        return ptm__fail(PTM_E_INVAL, "op rope: inv_freq must be F32 with %d elements, got %lld",
                         (int)(rot_dims / 2), (long long)ptm_tensor_numel(inv_freq));
    }
    /* x is read and written in place: it anchors the op, so it is never a stand-in. */
    PLACE(pl, "rope", x, x, positions, inv_freq);
    KERNEL(pl, rope, "rope");
    KV(kx, pl.out);
    KV(kp, pl.in[0]);
    KV(kf, pl.in[1]);
    struct ptm_rope_args args = {
        .struct_size = sizeof args,
        .x = &kx,
        .positions = &kp,
        .inv_freq = &kf,
        .attn_factor = attn_factor,
        .rot_dims = rot_dims,
        .neox = neox,
    };
    return ptm__xfer_finish(&pl, be_->rope(ctx_, &args));
}
