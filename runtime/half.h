/*
 * half.h - host-side conversions between F32 and the 16-bit float formats, for the few
 * places the runtime itself touches weight bytes (initialisation, saving in another dtype).
 * Kernels do their own, vectorised.
 */
#ifndef PTM_RUNTIME_HALF_H
#define PTM_RUNTIME_HALF_H

#include <stddef.h>

#include "ptm/ptm_tensor.h"

/* Narrow n floats from src into dst (may alias src) as dtype (F32, F16, BF16), rounding to
 * nearest even as PyTorch does. */
void ptm__f32_to_dtype(void *dst, const float *src, size_t n, ptm_dtype dtype);

/* Widen n values of dtype (F32, F16, BF16) from src into dst. */
void ptm__dtype_to_f32(float *dst, const void *src, size_t n, ptm_dtype dtype);

#endif
