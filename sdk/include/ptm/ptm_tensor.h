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
 * compute types; the rest exist so every safetensors file can be read and written.
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
    PTM_DTYPE_COUNT
} ptm_dtype;

#define PTM_MAX_DIMS 4

/* ptm_dtype_name - the safetensors spelling ("F32", "BF16", ...), or NULL if out of range. */
PTM_API const char *ptm_dtype_name(ptm_dtype dt);

/* ptm_dtype_size - bytes per element, or 0 if out of range. */
PTM_API size_t ptm_dtype_size(ptm_dtype dt);

/*
 * ptm_dtype_parse - map a name to a dtype. Accepts the safetensors spellings ("F32") and the
 * PyTorch / config spellings ("float32", "float16", "bfloat16", "fp16", "bf16", "f32").
 * Returns PTM_E_INVAL (message names the string) when unknown; *out is untouched then.
 */
PTM_API ptm_status ptm_dtype_parse(const char *name, ptm_dtype *out);

#ifdef __cplusplus
}
#endif
#endif /* PTM_TENSOR_H */
