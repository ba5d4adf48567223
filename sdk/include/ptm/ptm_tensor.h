/*
 * ptm_tensor.h - element types and tensors.
 *
 * A ptm_tensor is an opaque, reference-counted n-d array (up to PTM_MAX_DIMS) that lives on
 * one backend's device. Shapes are given outermost first, as in PyTorch: a [batch, seq,
 * hidden] tensor has shape {batch, seq, hidden}. Tensors made by ptm_tensor_new are
 * contiguous, row-major. Architectures build their forward passes from these and the ops in
 * ptm_ops.h; they never see device memory directly.
 */
#ifndef PTM_TENSOR_H
#define PTM_TENSOR_H

#include "ptm_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Element types. Values cross the ABI as int32_t and are append only. The first six are the
 * compute types; the rest exist so every safetensors file can be read and written, except
 * PTM_Q8_0.
 *
 * PTM_Q8_0 is a block-quantized weight type (ptm_load_opts.quantize = "int8"): the last
 * dimension, a multiple of 32 elements, is split into blocks of 32, each with one F16 scale d.
 * A row of K elements is K / 32 little-endian F16 scales, then K bytes of int8 quants q; rows
 * are contiguous. Element k of a row is q[k] * d[k / 32]. Quantizing sets d = amax / 127 of
 * the block (rounded up to F16) and q = round(x / d), so |x - q d| <= d / 2. It is not a
 * safetensors type (ptm_model_save refuses a quantized model); ptm_dtype_size returns 0 for
 * it and ptm_dtype_row_bytes gives a row's size.
 */
typedef enum {
    PTM_F32 = 0,
    PTM_F16 = 1,
    PTM_BF16 = 2,
    PTM_I8 = 3,
    PTM_I32 = 4,
    PTM_I64 = 5,
    PTM_F64 = 6,
    PTM_I16 = 7,
    PTM_U8 = 8,
    PTM_BOOL = 9,
    PTM_F8_E4M3 = 10,
    PTM_F8_E5M2 = 11,
    PTM_Q8_0 = 12, /* ABI 1.x: block-quantized int8, see above */
    PTM_DTYPE_COUNT
} ptm_dtype;

#define PTM_MAX_DIMS 4

/* ptm_dtype_name - the safetensors spelling ("F32", "BF16", ...), or NULL if out of range. */
PTM_API const char *ptm_dtype_name(ptm_dtype dt);

/* ptm_dtype_size - bytes per element, or 0 if out of range or a block type (PTM_Q8_0). */
PTM_API size_t ptm_dtype_size(ptm_dtype dt);

/* ptm_dtype_block - elements per block: 32 for PTM_Q8_0, 1 for the other types, 0 if out of
 * range. A block type's last dimension must be a multiple of it. */
PTM_API int64_t ptm_dtype_block(ptm_dtype dt);

/* ptm_dtype_row_bytes - bytes of a packed row of n elements (n * size, or for PTM_Q8_0
 * n + n / 16); 0 if dt is out of range or n is not a whole number of blocks. */
PTM_API size_t ptm_dtype_row_bytes(ptm_dtype dt, int64_t n);

/*
 * ptm_dtype_parse - map a name to a dtype. Accepts the safetensors spellings ("F32") and the
 * PyTorch / config spellings ("float32", "float16", "bfloat16", "fp16", "bf16", "f32").
 * Returns PTM_E_INVAL (message names the string) when unknown; *out is untouched then.
 */
PTM_API ptm_status ptm_dtype_parse(const char *name, ptm_dtype *out);

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                     */

/* A device of a backend ("cpu:0", "cuda:0"). Handles live as long as the process. */
typedef struct ptm_device ptm_device;

/*
 * ptm_device_get - the device named "backend" or "backend:index" ("cpu", "cuda:1").
 * Loads plugins on first need. PTM_E_NOT_FOUND if no such backend is registered or it has
 * no such device (the message says why: "no CUDA device: ..."). Thread safe.
 */
PTM_API ptm_status ptm_device_get(const char *name, ptm_device **out);

/* ptm_device_name - "cpu:0"; borrowed, lives as long as the process. */
PTM_API const char *ptm_device_name(const ptm_device *dev);

/* ------------------------------------------------------------------------------------------ */
/* Tensors                                                                                     */

typedef struct ptm_tensor ptm_tensor;

/*
 * ptm_tensor_new - an uninitialised contiguous tensor on dev.
 * shape: ndim (1..PTM_MAX_DIMS) sizes, each >= 0. out: a new reference (ptm_tensor_free).
 * Returns PTM_E_INVAL (bad shape), PTM_E_NOMEM. Thread safe.
 */
PTM_API ptm_status ptm_tensor_new(ptm_device *dev, ptm_dtype dtype, int32_t ndim,
                                  const int64_t *shape, ptm_tensor **out);

/* ptm_tensor_from_host - the same, filled with a copy of data (ptm_tensor_nbytes bytes). */
PTM_API ptm_status ptm_tensor_from_host(ptm_device *dev, ptm_dtype dtype, int32_t ndim,
                                        const int64_t *shape, const void *data, ptm_tensor **out);

/*
 * ptm_tensor_wrap_host - a tensor over host memory the caller keeps alive, without a copy
 * when the device can address host memory (the CPU backend), else copied at once. release
 * (may be NULL) is called with user when the tensor no longer needs data.
 */
PTM_API ptm_status ptm_tensor_wrap_host(ptm_device *dev, ptm_dtype dtype, int32_t ndim,
                                        const int64_t *shape, void *data,
                                        void (*release)(void *user), void *user, ptm_tensor **out);

/* ptm_tensor_retain - add a reference; returns t. ptm_tensor_free drops one (NULL ok); the
 * memory goes when the last reference and the last view of it are gone. */
PTM_API ptm_tensor *ptm_tensor_retain(ptm_tensor *t);
PTM_API void ptm_tensor_free(ptm_tensor *t);

/* Shape queries. ptm_tensor_dim returns 0 for i out of range. */
PTM_API ptm_dtype ptm_tensor_dtype(const ptm_tensor *t);
PTM_API int32_t ptm_tensor_ndim(const ptm_tensor *t);
PTM_API int64_t ptm_tensor_dim(const ptm_tensor *t, int32_t i);
PTM_API int64_t ptm_tensor_numel(const ptm_tensor *t);
PTM_API size_t ptm_tensor_nbytes(const ptm_tensor *t);
PTM_API int32_t ptm_tensor_is_contiguous(const ptm_tensor *t);
PTM_API ptm_device *ptm_tensor_device(const ptm_tensor *t);

/*
 * ptm_tensor_reshape - a view with another shape over the same elements (t contiguous;
 * one size may be -1 to be inferred). ptm_tensor_narrow - a view of [start, start+len) along
 * dim. Views hold a reference to their source. PTM_E_INVAL on a bad shape or range.
 */
PTM_API ptm_status ptm_tensor_reshape(ptm_tensor *t, int32_t ndim, const int64_t *shape,
                                      ptm_tensor **out);
PTM_API ptm_status ptm_tensor_narrow(ptm_tensor *t, int32_t dim, int64_t start, int64_t len,
                                     ptm_tensor **out);

/*
 * ptm_tensor_data - the host address of t's first element when the host can address it
 * directly (CPU backend), else NULL. Borrowed, valid while t lives. Mind the strides of
 * views; ptm_tensor_is_contiguous says whether rows are packed.
 */
PTM_API void *ptm_tensor_data(const ptm_tensor *t);

/* ptm_tensor_read / ptm_tensor_write - copy a contiguous t to or from host memory of
 * exactly ptm_tensor_nbytes bytes (PTM_E_INVAL otherwise). */
PTM_API ptm_status ptm_tensor_read(const ptm_tensor *t, void *dst, size_t bytes);
PTM_API ptm_status ptm_tensor_write(ptm_tensor *t, const void *src, size_t bytes);

/* ------------------------------------------------------------------------------------------ */
/* Named tensor maps: a forward pass's inputs and outputs ("input_ids", "logits", ...)         */

typedef struct ptm_tensor_map ptm_tensor_map;

PTM_API ptm_status ptm_tensor_map_new(ptm_tensor_map **out);
/* Free the map and drop the references it holds; NULL ok. */
PTM_API void ptm_tensor_map_free(ptm_tensor_map *m);
/* Set name to t (a reference is taken; a previous value is released). name is copied. */
PTM_API ptm_status ptm_tensor_map_set(ptm_tensor_map *m, const char *name, ptm_tensor *t);
/* Borrowed; NULL if absent. */
PTM_API ptm_tensor *ptm_tensor_map_get(const ptm_tensor_map *m, const char *name);
/* Entries in insertion order; borrowed. */
PTM_API size_t ptm_tensor_map_count(const ptm_tensor_map *m);
PTM_API ptm_tensor *ptm_tensor_map_at(const ptm_tensor_map *m, size_t i, const char **name);

#ifdef __cplusplus
}
#endif
#endif /* PTM_TENSOR_H */
