/*
 * ptm_ops.h - the op set: what an architecture's forward pass is written in.
 *
 * Each op checks its operands (shapes, dtypes, one device for all), then runs on the
 * backend that holds them. out is always allocated by the caller; an op never allocates a
 * result. An op a backend lacks returns PTM_E_UNSUPPORTED naming the backend and the op.
 * Shapes are outermost first; "rows" means all leading dims flattened.
 */
#ifndef PTM_OPS_H
#define PTM_OPS_H

#include "ptm_backend.h"
#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ptm_op_matmul - out[rows, N] = a[rows, K] . b + bias, then an optional fused activation.
 * b is [N, K] with PTM_MM_TRANS_B (nn.Linear weights), else [K, N]. bias [N] or NULL.
 * flags: PTM_MM_TRANS_B | (PTM_UNARY_x << PTM_MM_ACT_SHIFT). a and out F32; b F32, F16 or
 * BF16 (widened by the backend).
 */
PTM_API ptm_status ptm_op_matmul(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b,
                                 const ptm_tensor *bias, uint32_t flags);

/* ptm_op_unary - out = op(x) elementwise (PTM_UNARY_*); out may be x. */
PTM_API ptm_status ptm_op_unary(ptm_tensor *out, const ptm_tensor *x, int32_t op);

/* ptm_op_add / ptm_op_mul - out = a (+|*) b; b's shape equals a's or a suffix of it
 * (broadcast over leading dims). out may be a. */
PTM_API ptm_status ptm_op_add(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b);
PTM_API ptm_status ptm_op_mul(ptm_tensor *out, const ptm_tensor *a, const ptm_tensor *b);

/* ptm_op_scale - out = x * s. */
PTM_API ptm_status ptm_op_scale(ptm_tensor *out, const ptm_tensor *x, float s);

/* ptm_op_layer_norm - out = LayerNorm(x + residual) over the last dim; residual and bias
 * may be NULL. ptm_op_rms_norm - out = x / rms(x + residual) * weight. */
PTM_API ptm_status ptm_op_layer_norm(ptm_tensor *out, const ptm_tensor *x,
                                     const ptm_tensor *residual, const ptm_tensor *weight,
                                     const ptm_tensor *bias, float eps);
PTM_API ptm_status ptm_op_rms_norm(ptm_tensor *out, const ptm_tensor *x, const ptm_tensor *residual,
                                   const ptm_tensor *weight, float eps);

/* ptm_op_softmax - over the last dim. */
PTM_API ptm_status ptm_op_softmax(ptm_tensor *out, const ptm_tensor *x);

/* ptm_op_embedding - out[..., :] = table[ids[...], :]; ids I32 or I64 of any shape, out of
 * shape ids + [dim]. An id outside [0, rows) is PTM_E_RANGE naming it. */
PTM_API ptm_status ptm_op_embedding(ptm_tensor *out, const ptm_tensor *table,
                                    const ptm_tensor *ids);

/* Options of ptm_op_attention; NULL means none of them. */
struct ptm_attention_opts {
    uint32_t struct_size;
    /* ABI 1.0 */
    const ptm_tensor *key_mask; /* [B, Sk]: 1 attend, 0 ignore */
    const ptm_tensor *bias;     /* [H, Sq, Sk] added to the scores (T5) */
    int32_t causal;             /* query i sees keys <= q_offset + i */
    int64_t q_offset;
};

/*
 * ptm_op_attention - fused scaled dot-product attention. q [B, Sq, H, D]; k, v
 * [B, Sk, Hkv, D] with H a multiple of Hkv (grouped queries); out [B, Sq, H, D]. The scores
 * are scale * q.k plus the options' bias and masks, softmaxed over keys. q, k, v may be
 * views with row strides (slices of one fused projection).
 */
PTM_API ptm_status ptm_op_attention(ptm_tensor *out, const ptm_tensor *q, const ptm_tensor *k,
                                    const ptm_tensor *v, float scale,
                                    const struct ptm_attention_opts *opts);

/*
 * ptm_op_rope - rotary position embedding on x [B, S, H, D] in place, over the first rot_dims
 * (even, <= D) of each head. positions [B, S] I32 or I64; inv_freq [rot_dims / 2] F32 with any
 * scaling (linear, NTK, YaRN, llama3) already applied by the caller; cos and sin of
 * position * inv_freq are multiplied by attn_factor (YaRN; 1 otherwise). neox 1: rotate halves
 * (HF rotate_half, LLaMA); 0: interleaved pairs (GPT-J). x may be a view whose heads are packed.
 */
PTM_API ptm_status ptm_op_rope(ptm_tensor *x, const ptm_tensor *positions,
                               const ptm_tensor *inv_freq, float attn_factor, int32_t rot_dims,
                               int32_t neox);

/* ptm_op_convert - copy x into out (same shape), converting dtype; out contiguous. */
PTM_API ptm_status ptm_op_convert(ptm_tensor *out, const ptm_tensor *x);

#ifdef __cplusplus
}
#endif
#endif /* PTM_OPS_H */
