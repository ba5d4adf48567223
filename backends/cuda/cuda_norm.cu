/*
 * cuda_norm.cu - the CUDA backend's row reductions: LayerNorm and RMSNorm with a fused
 * residual add, and softmax over the last dimension. One block of THREADS threads per row:
 * each thread strides over the row, then a warp-shuffle and shared-memory reduction gives every
 * thread the row's sum or max. Statistics are two-pass in F32 (mean, then mean of squared
 * deviations) like the CPU backend (cpu_norm.c), and the per-element formulas are the CPU's, so
 * results agree to F32 rounding (the summation order differs). It owns the arithmetic only;
 * layouts are cuda_ops.c's.
 */
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"
#include "cuda_warp.cuh"

#define THREADS 256
#define WARPS   (THREADS / 32)

/* Rows per launch beyond which blocks loop over rows (grid.x stays well inside its limit). */
#define MAX_BLOCKS (1 << 20)

/* The block's sum of v, returned to every thread. All threads read the WARPS partials in the
 * same order, so they all get the same value. The second barrier lets buf be reused at once. */
__device__ static float block_sum(float v, float *buf)
{
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) {
        buf[threadIdx.x / 32] = v;
    }
    __syncthreads();
    float r = 0.0f;
    for (int w = 0; w < WARPS; w++) {
        r += buf[w];
    }
    __syncthreads();
    return r;
}

__device__ static float block_max(float v, float *buf)
{
    v = warp_max(v);
    if (threadIdx.x % 32 == 0) {
        buf[threadIdx.x / 32] = v;
    }
    __syncthreads();
    float r = -INFINITY;
    for (int w = 0; w < WARPS; w++) {
        r = fmaxf(r, buf[w]);
    }
    __syncthreads();
    return r;
}

/* Each thread reads and writes only its own elements in the last loop, so out may equal x
 * (or res): every read of the row for the statistics happens before the barriers inside
 * block_sum. */
__global__ static void k_norm(int32_t rms, int64_t rows, int64_t n, float *out, int64_t ldo,
                              const float *x, int64_t ldx, const float *res, int64_t ldr,
                              const float *w, const float *b, float eps)
{
    __shared__ float buf[WARPS];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * ldx;
        const float *rr = res != NULL ? res + r * ldr : NULL;
        float *orow = out + r * ldo;
        float mean = 0.0f, s = 0.0f;
        if (!rms) {
            for (int64_t i = threadIdx.x; i < n; i += THREADS) {
                s += xr[i] + (rr != NULL ? rr[i] : 0.0f);
            }
            mean = block_sum(s, buf) / (float)n;
            s = 0.0f;
        }
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            float v = xr[i] + (rr != NULL ? rr[i] : 0.0f) - mean;
            s += v * v;
        }
        float inv = 1.0f / sqrtf(block_sum(s, buf) / (float)n + eps);
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            float v = (xr[i] + (rr != NULL ? rr[i] : 0.0f) - mean) * inv;
            if (w != NULL) {
                v *= w[i];
            }
            if (!rms && b != NULL) {
                v += b[i];
            }
            orow[i] = v;
        }
    }
}

/* As cpu_softmax: a row of -inf (every key masked) gives zeros, not NaN. */
__global__ static void k_softmax(int64_t rows, int64_t n, float *out, int64_t ldo, const float *x,
                                 int64_t ldx)
{
    __shared__ float buf[WARPS];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * ldx;
        float *orow = out + r * ldo;
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            m = fmaxf(m, xr[i]);
        }
        m = block_max(m, buf);
        if (m == -INFINITY) {
            m = 0.0f;
        }
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            s += expf(xr[i] - m);
        }
        s = block_sum(s, buf);
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        for (int64_t i = threadIdx.x; i < n; i += THREADS) {
            orow[i] = expf(xr[i] - m) * inv;
        }
    }
}

static unsigned row_blocks(int64_t rows)
{
    return (unsigned)(rows < MAX_BLOCKS ? rows : MAX_BLOCKS);
}

extern "C" cudaError_t cuda_k_norm(cudaStream_t st, int32_t rms, int64_t rows, int64_t n,
                                   float *out, int64_t ldo, const float *x, int64_t ldx,
                                   const float *res, int64_t ldr, const float *w, const float *b,
                                   float eps)
{
    if (rows <= 0 || n <= 0) {
        return cudaSuccess;
    }
    k_norm<<<row_blocks(rows), THREADS, 0, st>>>(rms, rows, n, out, ldo, x, ldx, res, ldr, w, b,
                                                 eps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_k_softmax(cudaStream_t st, int64_t rows, int64_t n, float *out,
                                      int64_t ldo, const float *x, int64_t ldx)
{
    if (rows <= 0 || n <= 0) {
        return cudaSuccess;
    }
    k_softmax<<<row_blocks(rows), THREADS, 0, st>>>(rows, n, out, ldo, x, ldx);
    return cudaGetLastError();
}
