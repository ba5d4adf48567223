/*
 * cuda_kernels.h - the CUDA backend's device kernels as seen from its C glue: one host-side
 * launcher per kernel, implemented in the .cu files (cuda_elementwise.cu, cuda_norm.cu,
 * cuda_attention.cu) and called from cuda_ops.c. Launchers take plain device pointers already
 * offset to the first element, sizes and strides in elements, and the stream to run on; they
 * enqueue and return the launch status (cudaGetLastError), never waiting for the kernel. They
 * check nothing about layouts: which views reach them is cuda_ops.c's job. Nothing here
 * crosses the plugin ABI, and nothing here knows ptm's error machinery.
 *
 * Numerics follow backends/cpu (cpu_kernels.h): activations are F32, F16/BF16 inputs are
 * widened exactly, conversions to F16/BF16 round to nearest even as the CPU does.
 */
#ifndef PTM_CUDA_KERNELS_H
#define PTM_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types a kernel reads or writes besides F32 activations. */
enum {
    CUDA_K_F32 = 0,
    CUDA_K_F16 = 1,
    CUDA_K_BF16 = 2,
};

/* Activations, with the values of PTM_UNARY_* (ptm_backend.h). */
enum {
    CUDA_K_ACT_NONE = 0,
    CUDA_K_ACT_GELU = 1,
    CUDA_K_ACT_GELU_TANH = 2,
    CUDA_K_ACT_RELU = 3,
    CUDA_K_ACT_SILU = 4,
    CUDA_K_ACT_TANH = 5,
};

/* ---- cuda_elementwise.cu ---- */

/* cuda_k_probe - cudaSuccess when this build holds code the current device can run (SASS for its
 * architecture or PTX it can compile), else the error CUDA gives (cudaErrorNoKernelImageForDevice
 * or cudaErrorInvalidDeviceFunction). Runs nothing. */
cudaError_t cuda_k_probe(void);

/* out[i] = act(x[i]) for n elements; out may equal x. */
cudaError_t cuda_k_unary(cudaStream_t st, int32_t act, float *out, const float *x, int64_t n);

/* out[i] = a[i] (+ or *) b[i % nb] for n elements (b repeats over a's leading dims); mul != 0
 * multiplies. out may equal a. */
cudaError_t cuda_k_binary(cudaStream_t st, int32_t mul, float *out, const float *a, const float *b,
                          int64_t n, int64_t nb);

/* out[i] = x[i] * s for n elements. */
cudaError_t cuda_k_scale(cudaStream_t st, float *out, const float *x, float s, int64_t n);

/* The matmul epilogue in place: c[r, j] = act(c[r, j] + bias[j]) for r < rows, j < cols, row
 * stride ldc; bias may be NULL. */
cudaError_t cuda_k_bias_act(cudaStream_t st, float *c, int64_t ldc, int64_t rows, int64_t cols,
                            const float *bias, int32_t act);

/* rows x cols elements of src (row stride ld, type sdt) into a packed dst of type ddt, both
 * CUDA_K_F32/F16/BF16 and different; rounding as cpu_convert. */
cudaError_t cuda_k_convert(cudaStream_t st, void *dst, int32_t ddt, const void *src, int32_t sdt,
                           int64_t rows, int64_t cols, int64_t ld);

/*
 * PTM_Q8_0 rows (ptm_tensor.h: k / 32 F16 scales, then k int8 quants; rows packed). dequant
 * writes rows x k packed elements of type ddt (CUDA_K_F32/F16/BF16), element q * d; quant
 * reads rows x k elements of type sdt (row stride ld) and writes packed Q8_0 rows exactly as
 * cpu_q8_quantize does (d = amax / 127 rounded up to F16, q = rint(x / d) clamped to 127),
 * setting *bad (a device int) to 1 when a block holds a non-finite value or needs a scale
 * past F16's range.
 */
cudaError_t cuda_k_q8_dequant(cudaStream_t st, void *dst, int32_t ddt, const void *src,
                              int64_t rows, int64_t k);
cudaError_t cuda_k_q8_quant(cudaStream_t st, void *dst, const void *src, int32_t sdt, int64_t rows,
                            int64_t k, int64_t ld, int32_t *bad);

/* out[i, :] = table[ids[i], :] widened to F32; ids are I64 when ids_i64, else I32, and were
 * checked to lie in the table. table is packed with row length dim. */
cudaError_t cuda_k_embedding(cudaStream_t st, float *out, const void *table, int32_t tdt,
                             const void *ids, int32_t ids_i64, int64_t n_ids, int64_t dim);

/* RoPE in place on x [B, S, H, D] (strides in elements, D packed), over the first 2 * half dims
 * of each head; see ptm_rope_args. */
struct cuda_k_rope {
    float *x;
    int64_t bs, ss, hs; /* x's strides */
    int64_t B, S, H, half;
    const void *pos; /* [B, S] packed */
    int32_t pos_i64;
    const float *inv_freq; /* [half] */
    float attn_factor;
    int32_t neox;
};
cudaError_t cuda_k_rope(cudaStream_t st, const struct cuda_k_rope *r);

/* ---- cuda_norm.cu ---- */

/* out = norm(x + res) * w (+ b) per row of n elements; rms != 0 is RMSNorm (b ignored), else
 * LayerNorm with two-pass mean and biased variance. res, w, b may be NULL. out may equal x. */
cudaError_t cuda_k_norm(cudaStream_t st, int32_t rms, int64_t rows, int64_t n, float *out,
                        int64_t ldo, const float *x, int64_t ldx, const float *res, int64_t ldr,
                        const float *w, const float *b, float eps);

/* Numerically stable softmax over each row of n elements; out may equal x. */
cudaError_t cuda_k_softmax(cudaStream_t st, int64_t rows, int64_t n, float *out, int64_t ldo,
                           const float *x, int64_t ldx);

/* ---- cuda_attention.cu ---- */

/* The widest head the attention kernels take. */
#define CUDA_K_ATTN_MAX_D 256

/*
 * Attention as cpu_attention: q [B, Sq, H, D], k and v [B, Sk, Hkv, D], o like q, each with
 * its own element strides and D packed. Scores are scale * q.k + bias[(h * Sq + i) * Sk + j];
 * key j of batch b is dropped when mask[b * m_bs + j * m_ss] is 0; causal: query i sees keys
 * j <= q_offset + i. Query head h reads kv head h / (H / Hkv). A query that sees no key gets
 * zeros.
 */
struct cuda_k_attn {
    int64_t B, Sq, Sk, H, Hkv, D;
    const float *q, *k, *v;
    float *o;
    int64_t q_bs, q_ss, q_hs, k_bs, k_ss, k_hs, v_bs, v_ss, v_hs, o_bs, o_ss, o_hs;
    const void *mask; /* NULL: none */
    int32_t mask_dt;  /* 0 F32, 1 I32, 2 I64 */
    int64_t m_bs, m_ss;
    const float *bias; /* [H, Sq, Sk] packed, or NULL */
    float scale;
    int32_t causal;
    int64_t q_offset;
};

/* cuda_k_attention_splits - how many key chunks the decode path (Sq == 1) splits each query
 * into, for a device of n_sm multiprocessors; 0 when a takes the tiled path. */
int64_t cuda_k_attention_splits(const struct cuda_k_attn *a, int32_t n_sm);

/* cuda_k_attention_scratch_floats - device scratch the decode path needs for n_splits. */
size_t cuda_k_attention_scratch_floats(const struct cuda_k_attn *a, int64_t n_splits);

/* cuda_k_attention - run it. n_splits from cuda_k_attention_splits (0: tiled path, scratch unused),
 * scratch at least cuda_k_attention_scratch_floats floats. */
cudaError_t cuda_k_attention(cudaStream_t st, const struct cuda_k_attn *a, int64_t n_splits,
                             float *scratch);

#ifdef __cplusplus
}
#endif
#endif /* PTM_CUDA_KERNELS_H */
