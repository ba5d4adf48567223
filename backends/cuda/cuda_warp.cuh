/*
 * cuda_warp.cuh - warp-wide reductions shared by the CUDA kernels (norms, softmax,
 * attention): a butterfly over the 32 lanes, so every lane ends with the same bits and
 * branches on the result stay uniform across the warp. Device code only; block-wide
 * reductions and everything op-specific stay in their kernels' files.
 */
#ifndef PTM_CUDA_WARP_CUH
#define PTM_CUDA_WARP_CUH

#define CUDA_WARP_FULL 0xffffffffu

__device__ static inline float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(CUDA_WARP_FULL, v, o);
    }
    return v;
}

__device__ static inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(CUDA_WARP_FULL, v, o));
    }
    return v;
}

#endif /* PTM_CUDA_WARP_CUH */
