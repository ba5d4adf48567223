/*
 * cuda_attention.cu - fused scaled-dot-product attention for the CUDA backend, in two kernels
 * that never build the Sq x Sk score matrix:
 *
 * - The tiled path (any Sq): a block holds BQ = 16 queries of one (batch, head) in shared
 *   memory and walks the keys in tiles of BK = 32 (K and V tiles staged in shared memory).
 *   Each warp owns 4 query rows; lane j scores key j of the tile against them, and the rows
 *   keep an online softmax (running max m, running sum l, unnormalised output acc, rescaled
 *   by exp(m_old - m_new) whenever the max grows), as in FlashAttention. Lane t holds output
 *   dims t, t + 32, ... of each row in registers (DC of them, a template parameter so the
 *   accumulators stay in registers). Causal blocks stop at the last key their last query sees.
 *
 * - The decode path (Sq == 1, one query per (batch, head)): the keys are split into chunks
 *   across blocks (split-K), so a single token still fills the device. Each warp of a block
 *   takes every 4th key of the chunk (lanes split the head dim, a warp reduction gives the
 *   score) with its own online softmax; the 4 warps merge in shared memory and the block
 *   writes (m, l, acc[D]) to scratch. A second kernel merges the chunks per (batch, head).
 *
 * Semantics are cpu_attention's (cpu_kernels.h): masked and causally hidden keys get weight
 * exactly 0 (-inf scores, skipped), and a query that sees no key at all writes zeros, not
 * NaN. Query head h reads kv head h / (H / Hkv). All arithmetic is F32 with accurate expf;
 * the results differ from the CPU's exact two-pass softmax only by summation order.
 */
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"
#include "cuda_warp.cuh"

#define NW  4         /* warps per block */
#define NT  (NW * 32) /* threads per block */
#define RPW 4         /* query rows per warp, tiled path */
#define BQ  (NW * RPW)
#define BK  32 /* keys per tile: one per lane */

/* Default dynamic shared memory limit; more needs an opt-in per kernel. */
#define SMEM_DEFAULT (48 * 1024)

__device__ static int key_kept(const struct cuda_k_attn &a, int64_t b, int64_t j)
{
    if (a.mask == NULL) {
        return 1;
    }
    int64_t i = b * a.m_bs + j * a.m_ss;
    if (a.mask_dt == 0) {
        return ((const float *)a.mask)[i] != 0.0f;
    }
    if (a.mask_dt == 1) {
        return ((const int32_t *)a.mask)[i] != 0;
    }
    return ((const int64_t *)a.mask)[i] != 0;
}

/* One past the last key query i sees. */
__device__ __host__ static int64_t key_end(const struct cuda_k_attn &a, int64_t i)
{
    if (!a.causal) {
        return a.Sk;
    }
    int64_t e = a.q_offset + i + 1;
    return e < 0 ? 0 : e < a.Sk ? e : a.Sk;
}

/* ---- tiled path ---------------------------------------------------------------------------- */

/* Shared memory of the tiled kernel for head dim D: Q [BQ][D], K [BK][D | 1] (an odd row
 * stride, so the 32 lanes reading 32 different key rows at one d hit 32 different banks),
 * V [BK][D] and the tile's keep flags [BK]. */
static size_t tiled_smem_bytes(int64_t D)
{
    return (size_t)(BQ * D + BK * (D | 1) + BK * D + BK) * sizeof(float);
}

template <int DC> __global__ static void __launch_bounds__(NT) k_attn_tiled(struct cuda_k_attn a)
{
    extern __shared__ float smem[];
    const int D = (int)a.D, Dp = D | 1;
    float *sQ = smem;
    float *sK = sQ + BQ * D;
    float *sV = sK + BK * Dp;
    float *sKeep = sV + BK * D;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int64_t q0 = (int64_t)blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
    const int64_t hk = h / (a.H / a.Hkv);
    const float *qb = a.q + b * a.q_bs + h * a.q_hs;
    const float *kb = a.k + b * a.k_bs + hk * a.k_hs;
    const float *vb = a.v + b * a.v_bs + hk * a.v_hs;

    for (int e = tid; e < BQ * D; e += NT) {
        int r = e / D, d = e % D;
        int64_t i = q0 + r;
        sQ[e] = i < a.Sq ? qb[i * a.q_ss + d] : 0.0f;
    }
    float m[RPW], l[RPW], acc[RPW][DC];
#pragma unroll
    for (int r = 0; r < RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            acc[r][c] = 0.0f;
        }
    }
    /* Keys past what the block's last query sees are hidden from all of its queries. */
    const int64_t q_last = (q0 + BQ < a.Sq ? q0 + BQ : a.Sq) - 1;
    const int64_t k_stop = key_end(a, q_last);
    for (int64_t k0 = 0; k0 < k_stop; k0 += BK) {
        /* The previous tile's readers are done (and, the first time, sQ is complete). */
        __syncthreads();
        for (int e = tid; e < BK * D; e += NT) {
            int jj = e / D, d = e % D;
            int64_t j = k0 + jj;
            sK[jj * Dp + d] = j < a.Sk ? kb[j * a.k_ss + d] : 0.0f;
            sV[jj * D + d] = j < a.Sk ? vb[j * a.v_ss + d] : 0.0f;
        }
        if (tid < BK) {
            int64_t j = k0 + tid;
            sKeep[tid] = j < a.Sk && key_kept(a, b, j) ? 1.0f : 0.0f;
        }
        __syncthreads();

        /* Lane j: q.k of key k0 + j against this warp's rows. */
        float s[RPW];
#pragma unroll
        for (int r = 0; r < RPW; r++) {
            s[r] = 0.0f;
        }
        for (int d = 0; d < D; d++) {
            float kd = sK[lane * Dp + d];
#pragma unroll
            for (int r = 0; r < RPW; r++) {
                s[r] = fmaf(sQ[(warp * RPW + r) * D + d], kd, s[r]);
            }
        }

        /* Online softmax update per row; p[r] is key (k0 + lane)'s weight at the new max. */
        const int64_t j = k0 + lane;
        float p[RPW];
#pragma unroll
        for (int r = 0; r < RPW; r++) {
            const int64_t i = q0 + warp * RPW + r;
            float v = -INFINITY;
            if (i < a.Sq && sKeep[lane] != 0.0f && j < key_end(a, i)) {
                v = s[r] * a.scale;
                if (a.bias != NULL) {
                    v += a.bias[(h * a.Sq + i) * a.Sk + j];
                }
            }
            /* Every lane takes part in the reductions, whatever its key. */
            const float m_new = fmaxf(m[r], warp_max(v));
            p[r] = v == -INFINITY ? 0.0f : expf(v - m_new);
            const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
            l[r] = l[r] * alpha + warp_sum(p[r]);
            m[r] = m_new;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                acc[r][c] *= alpha;
            }
        }

        /* acc += P . V: key jj's weight for row r sits in lane jj; V row jj is shared. */
        for (int jj = 0; jj < BK; jj++) {
            float vv[DC];
#pragma unroll
            for (int c = 0; c < DC; c++) {
                int d = c * 32 + lane;
                vv[c] = d < D ? sV[jj * D + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < RPW; r++) {
                const float pj = __shfl_sync(CUDA_WARP_FULL, p[r], jj);
#pragma unroll
                for (int c = 0; c < DC; c++) {
                    acc[r][c] = fmaf(pj, vv[c], acc[r][c]);
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < RPW; r++) {
        const int64_t i = q0 + warp * RPW + r;
        if (i >= a.Sq) {
            continue;
        }
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        float *op = a.o + b * a.o_bs + i * a.o_ss + h * a.o_hs;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            int d = c * 32 + lane;
            if (d < D) {
                op[d] = acc[r][c] * inv;
            }
        }
    }
}

/* ---- decode path (Sq == 1) ----------------------------------------------------------------- */

/* Scratch per (batch, head, split): m, l, then acc[D] (unnormalised, at max m). */
__host__ __device__ static int64_t rec_floats(int64_t D)
{
    return D + 2;
}

template <int DC>
__global__ static void __launch_bounds__(NT) k_attn_decode(struct cuda_k_attn a, float *part)
{
    __shared__ float s_m[NW], s_l[NW], s_acc[NW][DC * 32];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int64_t split = blockIdx.x, n_splits = gridDim.x, h = blockIdx.y, b = blockIdx.z;
    const int64_t D = a.D, hk = h / (a.H / a.Hkv);
    const int64_t k_stop = key_end(a, 0);
    const int64_t chunk = (k_stop + n_splits - 1) / n_splits;
    const int64_t j0 = split * chunk, j1 = j0 + chunk < k_stop ? j0 + chunk : k_stop;
    const float *qp = a.q + b * a.q_bs + h * a.q_hs;
    const float *kb = a.k + b * a.k_bs + hk * a.k_hs;
    const float *vb = a.v + b * a.v_bs + hk * a.v_hs;

    float qv[DC], acc[DC];
#pragma unroll
    for (int c = 0; c < DC; c++) {
        int64_t d = c * 32 + lane;
        qv[c] = d < D ? qp[d] : 0.0f;
        acc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    /* j, the mask and the score are the same in every lane, so each `continue` is taken by
     * the whole warp. */
    for (int64_t j = j0 + warp; j < j1; j += NW) {
        if (!key_kept(a, b, j)) {
            continue;
        }
        const float *kp = kb + j * a.k_ss;
        float dot = 0.0f;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            int64_t d = c * 32 + lane;
            if (d < D) {
                dot = fmaf(qv[c], kp[d], dot);
            }
        }
        float s = warp_sum(dot) * a.scale;
        if (a.bias != NULL) {
            s += a.bias[h * a.Sq * a.Sk + j];
        }
        if (s == -INFINITY) {
            continue;
        }
        const float m_new = fmaxf(m, s);
        const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
        const float p = expf(s - m_new);
        const float *vp = vb + j * a.v_ss;
        l = l * alpha + p;
#pragma unroll
        for (int c = 0; c < DC; c++) {
            int64_t d = c * 32 + lane;
            acc[c] = fmaf(p, d < D ? vp[d] : 0.0f, acc[c] * alpha);
        }
        m = m_new;
    }

    /* Merge the 4 warps at the block's max. */
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
#pragma unroll
    for (int c = 0; c < DC; c++) {
        s_acc[warp][c * 32 + lane] = acc[c];
    }
    __syncthreads();
    float mx = -INFINITY, wt[NW], sum = 0.0f;
    for (int w = 0; w < NW; w++) {
        mx = fmaxf(mx, s_m[w]);
    }
    for (int w = 0; w < NW; w++) {
        wt[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - mx);
        sum += s_l[w] * wt[w];
    }
    float *rec = part + ((b * a.H + h) * n_splits + split) * rec_floats(D);
    if (tid == 0) {
        rec[0] = mx;
        rec[1] = sum;
    }
    for (int64_t d = tid; d < D; d += NT) {
        float o = 0.0f;
        for (int w = 0; w < NW; w++) {
            o += s_acc[w][d] * wt[w];
        }
        rec[2 + d] = o;
    }
}

/* One block per (batch, head): merge the n_splits records and write the output row. */
__global__ static void __launch_bounds__(NT)
    k_attn_combine(struct cuda_k_attn a, int64_t n_splits, const float *part)
{
    const int64_t h = blockIdx.x, b = blockIdx.y, D = a.D, rf = rec_floats(D);
    const float *base = part + (b * a.H + h) * n_splits * rf;
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t s = 0; s < n_splits; s++) {
        mx = fmaxf(mx, base[s * rf]);
    }
    for (int64_t s = 0; s < n_splits; s++) {
        float ms = base[s * rf];
        if (ms != -INFINITY) {
            sum += base[s * rf + 1] * expf(ms - mx);
        }
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    float *op = a.o + b * a.o_bs + h * a.o_hs;
    for (int64_t d = threadIdx.x; d < D; d += NT) {
        float o = 0.0f;
        for (int64_t s = 0; s < n_splits; s++) {
            float ms = base[s * rf];
            if (ms != -INFINITY) {
                o += base[s * rf + 2 + d] * expf(ms - mx);
            }
        }
        op[d] = o * inv;
    }
}

/* ---- launchers ----------------------------------------------------------------------------- */

extern "C" int64_t cuda_k_attention_splits(const struct cuda_k_attn *a, int32_t n_sm)
{
    if (a->Sq != 1) {
        return 0;
    }
    /* About two blocks per multiprocessor, but at least 32 keys (8 per warp) per split. */
    int64_t keys = key_end(*a, 0), bh = a->B * a->H > 0 ? a->B * a->H : 1;
    int64_t want = (2 * (int64_t)(n_sm > 0 ? n_sm : 1) + bh - 1) / bh;
    int64_t most = (keys + 31) / 32;
    int64_t n = want < most ? want : most;
    return n < 1 ? 1 : n > 1024 ? 1024 : n;
}

extern "C" size_t cuda_k_attention_scratch_floats(const struct cuda_k_attn *a, int64_t n_splits)
{
    return n_splits > 0 ? (size_t)(a->B * a->H * n_splits * rec_floats(a->D)) : 0;
}

template <int DC>
static cudaError_t launch_dc(cudaStream_t st, const struct cuda_k_attn *a, int64_t n_splits,
                             float *scratch)
{
    if (n_splits > 0) {
        k_attn_decode<DC>
            <<<dim3((unsigned)n_splits, (unsigned)a->H, (unsigned)a->B), NT, 0, st>>>(*a, scratch);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) {
            return err;
        }
        k_attn_combine<<<dim3((unsigned)a->H, (unsigned)a->B), NT, 0, st>>>(*a, n_splits, scratch);
        return cudaGetLastError();
    }
    size_t smem = tiled_smem_bytes(a->D);
    if (smem > SMEM_DEFAULT) {
        /* Cheap, and done per call so it holds for whichever device is current. */
        cudaError_t err = cudaFuncSetAttribute(
            k_attn_tiled<DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err != cudaSuccess) {
            return err;
        }
    }
    unsigned qblocks = (unsigned)((a->Sq + BQ - 1) / BQ);
    k_attn_tiled<DC><<<dim3(qblocks, (unsigned)a->H, (unsigned)a->B), NT, smem, st>>>(*a);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_k_attention(cudaStream_t st, const struct cuda_k_attn *a,
                                        int64_t n_splits, float *scratch)
{
    if (a->B <= 0 || a->H <= 0 || a->Sq <= 0 || a->D <= 0) {
        return cudaSuccess;
    }
    /* grid.y and grid.z are limited to 65535; cuda_ops.c checks these first. */
    if (a->D > CUDA_K_ATTN_MAX_D || a->H > 65535 || a->B > 65535 || a->Hkv <= 0 ||
        a->H % a->Hkv != 0 || (a->Sq + BQ - 1) / BQ > 0x7fffffff) {
        return cudaErrorInvalidValue;
    }
    if (a->D <= 64) {
        return launch_dc<2>(st, a, n_splits, scratch);
    }
    if (a->D <= 128) {
        return launch_dc<4>(st, a, n_splits, scratch);
    }
    return launch_dc<8>(st, a, n_splits, scratch);
}
