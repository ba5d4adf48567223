/*
 * ptm_backend.h - the backend ABI: what a compute backend plugin (CPU, CUDA, OpenCL, a third
 * party's) registers so that every architecture runs on it.
 *
 * A backend never knows an architecture: it sees buffers and kernel calls on tensor views.
 * The runtime allocates through it, copies through it and dispatches each ptm_op_* on a
 * tensor it holds to the matching kernel here. Same ABI rules as ptm_plugin.h: struct_size
 * first, members only appended, a missing or NULL kernel means "not supported" (the runtime
 * reports PTM_E_UNSUPPORTED naming the backend and the op).
 */
#ifndef PTM_BACKEND_H
#define PTM_BACKEND_H

#include "ptm_base.h"
#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A tensor as a kernel sees it: a backend buffer, a byte offset into it, a dtype, a shape
 * (outermost first, unused trailing dims 1) and byte strides. Row-contiguous tensors have
 * nb[ndim-1] == element size; kernels state which layouts they accept and return
 * PTM_E_UNSUPPORTED for others.
 */
struct ptm_kview {
    uint32_t struct_size;
    /* ABI 1.0 */
    void *buf;       /* the backend's buffer handle (from buffer_alloc / buffer_import) */
    uint64_t offset; /* bytes from the start of buf */
    int32_t dtype;   /* ptm_dtype */
    int32_t ndim;
    int64_t ne[PTM_MAX_DIMS]; /* shape */
    int64_t nb[PTM_MAX_DIMS]; /* strides in bytes */
};

/* Helpers for backends (implemented in libptm), so each backend need not rewrite them. */

/* ptm_kview_numel - the number of elements of v. */
PTM_API int64_t ptm_kview_numel(const struct ptm_kview *v);

/* ptm_kview_is_contiguous - 1 if v's elements are packed row-major from its offset (dims of
 * size 1 ignored) and the offset is a whole number of elements; else 0. */
PTM_API int32_t ptm_kview_is_contiguous(const struct ptm_kview *v);

/*
 * ptm_kview_rows - v as rows x cols with one row stride ld (in elements): the last dim packed,
 * the leading dims collapsible into one (dims of size 1 do not count), the offset a whole
 * number of elements. Returns 1 and fills the outputs, or 0 when v does not fold that way.
 */
PTM_API int32_t ptm_kview_rows(const struct ptm_kview *v, int64_t *rows, int64_t *cols,
                               int64_t *ld);

/* Matmul flags. */
#define PTM_MM_TRANS_B 1u /* b is [N, K] (nn.Linear weight layout): out = a . b^T */
/* An activation fused after bias: (flags >> PTM_MM_ACT_SHIFT) & 0xff is a PTM_UNARY_* op. */
#define PTM_MM_ACT_SHIFT 8

/* Unary ops. */
enum {
    PTM_UNARY_NONE = 0,
    PTM_UNARY_GELU = 1,      /* exact: x/2 (1 + erf(x/sqrt 2)) */
    PTM_UNARY_GELU_TANH = 2, /* gelu_new / gelu_pytorch_tanh */
    PTM_UNARY_RELU = 3,
    PTM_UNARY_SILU = 4,
    PTM_UNARY_TANH = 5,
};

/* Binary ops; b broadcasts over a's leading dims when its shape is a suffix of a's. */
enum {
    PTM_BINARY_ADD = 1,
    PTM_BINARY_MUL = 2,
};

/* Norms. */
enum {
    PTM_NORM_LAYER = 1, /* (x - mean) / sqrt(var + eps) * w + b */
    PTM_NORM_RMS = 2,   /* x / sqrt(mean(x^2) + eps) * w */
};

/* Attention: q [B, Sq, H, D], k and v [B, Sk, Hkv, D] (H % Hkv == 0), out [B, Sq, H, D]. */
struct ptm_attn_args {
    uint32_t struct_size;
    /* ABI 1.0 */
    const struct ptm_kview *out, *q, *k, *v;
    const struct ptm_kview *key_mask; /* [B, Sk] I32/I64/F32: 1 attend, 0 masked; or NULL */
    const struct ptm_kview *bias;     /* additive [H, Sq, Sk] F32 (T5), or NULL */
    float scale;                      /* multiplies q.k */
    int32_t causal;                   /* 1: query i sees keys <= q_offset + i */
    int64_t q_offset;
};

/* Rotary embedding on x [B, S, H, D] in place over the first rot_dims of D (rot_dims even). */
struct ptm_rope_args {
    uint32_t struct_size;
    /* ABI 1.0 */
    const struct ptm_kview *x;
    const struct ptm_kview *positions; /* [B, S] I32/I64 */
    const struct ptm_kview *inv_freq;  /* [rot_dims / 2] F32, scaling already applied */
    float attn_factor;                 /* multiplies cos and sin (YaRN); 1 otherwise */
    int32_t rot_dims;
    int32_t neox; /* 1: rotate halves (HF rotate_half); 0: interleaved pairs */
};

/* The table a backend registers. ctx is what init returned. */
struct ptm_backend {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *name; /* "cpu", "cuda", "opencl" */
    /* Create the backend's context. Must be cheap when no device is present. */
    ptm_status (*init)(void **ctx);
    void (*destroy)(void *ctx);
    /* How well this backend suits this machine: 0 = cannot run here; higher wins. */
    int32_t (*score)(void *ctx);
    /* Count devices; when none, PTM_OK with *n = 0 and a reason via ptm_error_set is fine. */
    ptm_status (*probe)(void *ctx, int32_t *n_devices);
    /* A human name for device dev, written into buf (NUL-terminated, truncated to cap). */
    ptm_status (*device_name)(void *ctx, int32_t dev, char *buf, size_t cap);

    /* Memory. A buffer handle is opaque to the runtime. */
    ptm_status (*buffer_alloc)(void *ctx, int32_t dev, size_t bytes, void **buf);
    void (*buffer_free)(void *ctx, void *buf);
    /* Optional: wrap host memory without copying (mmapped weights); NULL means copy. */
    ptm_status (*buffer_import)(void *ctx, int32_t dev, void *host, size_t bytes, void **buf);
    /* Host address of buf if the host can read and write it directly, else NULL. */
    void *(*buffer_host_ptr)(void *ctx, void *buf);
    ptm_status (*write)(void *ctx, void *buf, uint64_t offset, const void *src, size_t bytes);
    ptm_status (*read)(void *ctx, void *buf, uint64_t offset, void *dst, size_t bytes);
    /* Wait for queued work to finish. */
    ptm_status (*sync)(void *ctx);

    /* Kernels. out is written; inputs are read. */
    ptm_status (*matmul)(void *ctx, const struct ptm_kview *out, const struct ptm_kview *a,
                         const struct ptm_kview *b, const struct ptm_kview *bias, uint32_t flags);
    ptm_status (*unary)(void *ctx, int32_t op, const struct ptm_kview *out,
                        const struct ptm_kview *x);
    ptm_status (*binary)(void *ctx, int32_t op, const struct ptm_kview *out,
                         const struct ptm_kview *a, const struct ptm_kview *b);
    ptm_status (*scale)(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x, float s);
    /* out = norm(x + residual) with residual NULL allowed; bias NULL allowed. */
    ptm_status (*norm)(void *ctx, int32_t kind, const struct ptm_kview *out,
                       const struct ptm_kview *x, const struct ptm_kview *residual,
                       const struct ptm_kview *weight, const struct ptm_kview *bias, float eps);
    ptm_status (*softmax)(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x);
    /* out[i, :] = table[ids[i], :]; ids I32 or I64. */
    ptm_status (*embedding)(void *ctx, const struct ptm_kview *out, const struct ptm_kview *table,
                            const struct ptm_kview *ids);
    ptm_status (*attention)(void *ctx, const struct ptm_attn_args *args);
    ptm_status (*rope)(void *ctx, const struct ptm_rope_args *args);
    /* Copy x into out, converting dtype and gathering strides (out contiguous). */
    ptm_status (*convert)(void *ctx, const struct ptm_kview *out, const struct ptm_kview *x);
};

#ifdef __cplusplus
}
#endif
#endif /* PTM_BACKEND_H */
