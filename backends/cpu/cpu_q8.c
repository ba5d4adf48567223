/*
 * cpu_q8.c - int8 block-quantized weights (PTM_Q8_0): quantize and dequantize rows, and the
 * matmul C[M, N] = A[M, K] . B^T with B [N, K] in Q8_0 and A in F32, for decode and prefill.
 *
 * Row layout (ptm_tensor.h): a row of K elements (K a multiple of 32) is K / 32 F16 scales, one
 * per block of 32, then K int8 quants; element k is q[k] * d[k / 32]. The scales lead so that
 * a row reads as one forward stream (with them at the end, every row's first group waited on a
 * second miss). Weights are quantized
 * as Q8_0 does, round to nearest: d = amax / 127, q = round(x / d), except that d is rounded
 * *up* to F16, so |x / d| <= 127 always holds and |x - q d| <= d / 2 for every element.
 *
 * The product quantizes each activation row per block of 32 on the fly (F32 scale ad =
 * amax / 127, q = rint(x * 127 / amax)) and multiplies int8 by int8 exactly. The result is
 * defined lane by lane, so the VNNI kernel and the scalar reference agree bit for bit: for
 * each 64-element chunk c, lane l (0..15) takes the exact integer dot of elements
 * 64c + 4l .. 64c + 4l + 3, converts it to F32 and FMAs it with d_w * d_a of block
 * 2c + l / 8 into its F32 accumulator; a missing second block of a final chunk contributes
 * fma(0, 0, acc); the 16 accumulators are then summed as a tree (i + 8, i + 4, i + 2, i + 1).
 * vpdpbusd multiplies unsigned by signed bytes, so the weights enter as q + 128 (xor 0x80)
 * and each lane starts from -128 times the sum of its four activation quants: the lane sum
 * is then exactly the signed dot. This file knows no model and no tensor.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#define QB     32  /* elements per block */
#define Q8_MB  64  /* activation rows per block of the prefill loop (L2 resident) */
#define Q8_NR  4   /* weight rows per tile */
#define Q8_MR  4   /* activation rows per tile */
#define Q8_MCH 256 /* activation rows quantized per pass, bounding the scratch */
/* Weight rows per tile in decode (M <= Q8_MR), at most Q8_NR. Two row streams per thread
 * instead of four read closer to a plain sequential stream: measured on Zen 4 with the
 * prefetch below, when the machine's read bandwidth was high (52-54 GB/s) M = 1 decode went
 * from 39-43 to 49-56 GB/s (93-105% of it), and it was level with four rows when the shared
 * machine was loaded. */
#ifndef Q8_DNR
#define Q8_DNR 2
#endif
/*
 * Software prefetch, in tiles of weight rows ahead (0: none). A tile's rows are one
 * contiguous block, so each 64-byte chunk of a tile prefetches into L2 its share of the block
 * Q8_PFT tiles on (pf_lines lines: the block's bytes over the tile's chunks, rounded up, so the
 * scales are covered too), and new rows no longer wait on the hardware prefetchers to find
 * their streams. Measured on Zen 4 (2 threads, alternating in one run), M = 1 decode went from
 * 40-75% to 85-99% of the read bandwidth (noisy, shared machine); one tile ahead to three were
 * within noise, an L1 (T0) hint gained nothing, a further L1 prefetch along each row was
 * within noise. These measurements were of the general tile (q8_tile_512), which still runs
 * M = 2..4 and prefill; M = 1 has its own loop and prefetch since (q8_m1_tile).
 */
#ifndef Q8_PFT
#define Q8_PFT 2
#endif
#define CPU_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

size_t cpu_q8_row_bytes(int64_t k)
{
    return (size_t)k + (size_t)(k / QB) * 2;
}

/* ---- weights: quantize and dequantize ---- */

static float q8_src(ptm_dtype dt, const void *src, int64_t i)
{
    if (dt == PTM_F32) {
        return ((const float *)src)[i];
    }
    uint16_t h = ((const uint16_t *)src)[i];
    return dt == PTM_BF16 ? cpu_bf16_to_f32(h) : cpu_f16_to_f32(h);
}

/* The F16 block scale of weights whose largest magnitude is amax: amax / 127 rounded *up* to
 * F16, so |x / d| <= 127 always holds; *d gets its value (not finite: the block is refused). */
static uint16_t q8_scale(float amax, float *d)
{
    float want = amax / 127.0f;
    uint16_t h = cpu_f32_to_f16(want);
    if (cpu_f16_to_f32(h) < want) {
        h++; /* the next F16 up: positive values order like their bits */
    }
    *d = cpu_f16_to_f32(h);
    return h;
}

/* One row; returns -1 (block index in *bad) on a non-finite value or a scale past F16. */
static int q8_quantize_row(int64_t k, ptm_dtype dt, const void *src, unsigned char *dst,
                           int64_t *bad)
{
    unsigned char *d = dst; /* the scales lead the row, then the quants */
    int8_t *q = (int8_t *)(dst + (k / QB) * 2);
    for (int64_t b = 0; b < k / QB; b++) {
        float x[QB], amax = 0.0f;
        for (int i = 0; i < QB; i++) {
            x[i] = q8_src(dt, src, b * QB + i);
            if (!isfinite(x[i])) {
                *bad = b;
                return -1;
            }
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        }
        float dh;
        uint16_t h = q8_scale(amax, &dh);
        if (!isfinite(dh)) {
            *bad = b;
            return -1;
        }
        for (int i = 0; i < QB; i++) {
            float v = dh > 0.0f ? rintf(x[i] / dh) : 0.0f;
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[b * QB + i] = (int8_t)v;
        }
        memcpy(d + 2 * b, &h, 2);
    }
    return 0;
}

/* The same row on AVX-512, byte for byte: x / d is IEEE division and roundscale rounds to
 * nearest even like rintf, so only the loads and the max are vectors. Loading a 1.1B BF16
 * model with int8 spent ~3 s in the scalar loop. */
static CPU_VNNI int q8_quantize_row_512(int64_t k, ptm_dtype dt, const void *src,
                                        unsigned char *dst, int64_t *bad)
{
    int8_t *q = (int8_t *)(dst + (k / QB) * 2);
    const __m512 inf = _mm512_set1_ps(INFINITY), lim = _mm512_set1_ps(127.0f);
    for (int64_t b = 0; b < k / QB; b++) {
        __m512 x[2];
        for (int h = 0; h < 2; h++) {
            int64_t i = b * QB + h * 16;
            if (dt == PTM_F32) {
                x[h] = _mm512_loadu_ps((const float *)src + i);
            } else {
                __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i));
                x[h] = dt == PTM_BF16 ? cpu_bf16x16_to_ps(v) : _mm512_cvtph_ps(v);
            }
        }
        __m512 a0 = _mm512_abs_ps(x[0]), a1 = _mm512_abs_ps(x[1]);
        /* Finite: |x| < inf, false for NaN too. */
        if ((__mmask16)(_mm512_cmp_ps_mask(a0, inf, _CMP_LT_OQ) &
                        _mm512_cmp_ps_mask(a1, inf, _CMP_LT_OQ)) != (__mmask16)0xffff) {
            *bad = b;
            return -1;
        }
        float dh;
        uint16_t h = q8_scale(_mm512_reduce_max_ps(_mm512_max_ps(a0, a1)), &dh);
        if (!isfinite(dh)) {
            *bad = b;
            return -1;
        }
        for (int g = 0; g < 2; g++) {
            __m512 v = _mm512_setzero_ps();
            if (dh > 0.0f) {
                v = _mm512_roundscale_ps(_mm512_div_ps(x[g], _mm512_set1_ps(dh)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0f)), lim);
            }
            _mm_storeu_si128((__m128i *)(q + b * QB + 16 * g),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
        }
        memcpy(dst + 2 * b, &h, 2);
    }
    return 0;
}

struct q8_conv {
    int avx512;
    int64_t k, ld_src;
    ptm_dtype dt;
    const void *src;
    void *dst;
    atomic_llong bad_row; /* a failing row, -1 if none */
};

static void q8_quantize_rows(void *arg, int64_t lo, int64_t hi)
{
    struct q8_conv *c = arg;
    size_t es = c->dt == PTM_F32 ? 4 : 2, rb = cpu_q8_row_bytes(c->k);
    for (int64_t r = lo; r < hi; r++) {
        int64_t b;
        const char *s = (const char *)c->src + (size_t)(r * c->ld_src) * es;
        unsigned char *d = (unsigned char *)c->dst + r * rb;
        if ((c->avx512 ? q8_quantize_row_512(c->k, c->dt, s, d, &b)
                       : q8_quantize_row(c->k, c->dt, s, d, &b)) != 0) {
            atomic_store(&c->bad_row, (long long)r);
        }
    }
}

ptm_status cpu_q8_quantize(const cpu_ctx *ctx, int64_t rows, int64_t k, const void *src,
                           ptm_dtype src_dtype, int64_t ld_src, void *dst)
{
    if (k % QB != 0 || (src_dtype != PTM_F32 && src_dtype != PTM_BF16 && src_dtype != PTM_F16)) {
        const char *name = ptm_dtype_name(src_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: q8 quantize: %lld columns of %s; expected a multiple of %d "
                             "columns of F32, BF16 or F16",
                             (long long)k, name ? name : "?", QB);
    }
    struct q8_conv c = {.avx512 = ctx->isa >= CPU_ISA_AVX512 && cpu_isa_has_vnni(),
                        .k = k,
                        .ld_src = ld_src,
                        .dt = src_dtype,
                        .src = src,
                        .dst = dst};
    atomic_init(&c.bad_row, -1);
    cpu_pool_range(ctx->pool, rows, 16, q8_quantize_rows, &c);
    long long bad = atomic_load(&c.bad_row);
    if (bad >= 0) {
        int64_t b = 0;
        size_t es = src_dtype == PTM_F32 ? 4 : 2;
        q8_quantize_row(k, src_dtype, (const char *)src + (size_t)(bad * ld_src) * es,
                        (unsigned char *)dst + bad * (int64_t)cpu_q8_row_bytes(k), &b);
        return ptm_error_set(PTM_E_RANGE,
                             "cpu: q8 quantize: row %lld block %lld holds a non-finite value or "
                             "a magnitude past what an F16 scale can hold (127 x 65504)",
                             bad, (long long)b);
    }
    return PTM_OK;
}

static void q8_dequantize_rows(void *arg, int64_t lo, int64_t hi)
{
    struct q8_conv *c = arg;
    size_t rb = cpu_q8_row_bytes(c->k);
    for (int64_t r = lo; r < hi; r++) {
        const unsigned char *row = (const unsigned char *)c->src + r * rb;
        for (int64_t b = 0; b < c->k / QB; b++) {
            uint16_t h;
            memcpy(&h, row + 2 * b, 2);
            float d = cpu_f16_to_f32(h);
            for (int64_t i = b * QB; i < (b + 1) * QB; i++) {
                float x = (float)(int8_t)row[(c->k / QB) * 2 + i] * d;
                int64_t o = r * c->k + i;
                if (c->dt == PTM_F32) {
                    ((float *)c->dst)[o] = x;
                } else {
                    ((uint16_t *)c->dst)[o] =
                        c->dt == PTM_BF16 ? cpu_f32_to_bf16(x) : cpu_f32_to_f16(x);
                }
            }
        }
    }
}

ptm_status cpu_q8_dequantize(const cpu_ctx *ctx, int64_t rows, int64_t k, const void *src,
                             void *dst, ptm_dtype dst_dtype)
{
    if (k % QB != 0 || (dst_dtype != PTM_F32 && dst_dtype != PTM_BF16 && dst_dtype != PTM_F16)) {
        const char *name = ptm_dtype_name(dst_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: q8 dequantize: %lld columns to %s; expected a multiple of %d "
                             "columns to F32, BF16 or F16",
                             (long long)k, name ? name : "?", QB);
    }
    struct q8_conv c = {.k = k, .ld_src = k, .dt = dst_dtype, .src = src, .dst = dst};
    atomic_init(&c.bad_row, -1);
    cpu_pool_range(ctx->pool, rows, 16, q8_dequantize_rows, &c);
    return PTM_OK;
}

/* ---- activations: quantized per call ---- */

/* The quantized activation rows: M rows of K int8, K / 32 F32 scales, K / 4 lane offsets. */
struct q8_acts {
    int64_t K, nb;
    int8_t *q;
    float *d;
    int32_t *corr;
};

static void q8_act_row_scalar(const float *x, int64_t K, int8_t *q, float *d, int32_t *corr)
{
    for (int64_t b = 0; b < K / QB; b++) {
        float amax = 0.0f;
        for (int i = 0; i < QB; i++) {
            float a = fabsf(x[b * QB + i]);
            amax = a > amax ? a : amax;
        }
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        for (int i = 0; i < QB; i++) {
            float v = rintf(x[b * QB + i] * id);
            v = v >= -127.0f ? (v <= 127.0f ? v : 127.0f) : -127.0f; /* NaN goes to -127 */
            q[b * QB + i] = (int8_t)v;
        }
    }
    for (int64_t l = 0; l < K / 4; l++) {
        corr[l] = -128 * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    }
}

static CPU_VNNI void q8_act_row_512(const float *x, int64_t K, int8_t *q, float *d, int32_t *corr)
{
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t b = 0; b < K / QB; b++) {
        d[b] = cpu_q8_act_block512(x + b * QB, q + b * QB);
    }
    int64_t l = 0;
    for (; l + 16 <= K / 4; l += 16) {
        __m512i v = _mm512_loadu_si512((const void *)(q + 4 * l));
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, v);
        _mm512_storeu_si512((void *)(corr + l), _mm512_mullo_epi32(s, _mm512_set1_epi32(-128)));
    }
    for (; l < K / 4; l++) {
        corr[l] = -128 * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    }
}

/* ---- the product ---- */

struct q8_job {
    int vnni;
    int64_t M, N, K, nb; /* nb: blocks per row */
    const unsigned char *B;
    size_t row_bytes;
    const float *A;
    int64_t lda;
    struct q8_acts acts; /* rows [m_base, m_base + M) of the caller's A */
    int64_t m_base;
    float *C;
    int64_t ldc;
    int accumulate;
    int64_t slice;   /* prefill: weight rows per task */
    cpu_steal steal; /* decode: who reads which weight rows */
    int nr;          /* weight rows per tile: Q8_DNR in decode, Q8_NR in prefill */
    int pf_lines;    /* lines prefetched per chunk: a tile's bytes over its chunks, rounded up */
    cpu_cols_fn epi;
    void *epi_arg;
};

static void q8_act_rows(void *arg, int64_t lo, int64_t hi)
{
    struct q8_job *j = arg;
    for (int64_t m = lo; m < hi; m++) {
        const float *x = j->A + (j->m_base + m) * j->lda;
        int8_t *q = j->acts.q + m * j->K;
        float *d = j->acts.d + m * j->nb;
        int32_t *c = j->acts.corr + m * (j->K / 4);
        if (j->vnni) {
            q8_act_row_512(x, j->K, q, d, c);
        } else {
            q8_act_row_scalar(x, j->K, q, d, c);
        }
    }
}

/* The lane-defined dot of one activation row and one weight row (see the file comment). */
static float q8_dot_scalar(const struct q8_job *j, int64_t m, const unsigned char *w)
{
    const int8_t *a = j->acts.q + m * j->K;
    const float *ad = j->acts.d + m * j->nb;
    float acc[16] = {0};
    for (int64_t c = 0; 2 * c < j->nb; c++) {
        for (int l = 0; l < 16; l++) {
            int64_t blk = 2 * c + l / 8;
            int32_t isum = 0;
            float s = 0.0f;
            if (blk < j->nb) {
                for (int i = 0; i < 4; i++) {
                    int64_t k = 64 * c + 4 * l + i;
                    isum += (int32_t)a[k] * (int32_t)(int8_t)w[2 * j->nb + k];
                }
                uint16_t h;
                memcpy(&h, w + 2 * blk, 2);
                s = cpu_f16_to_f32(h) * ad[blk];
            }
            acc[l] = fmaf((float)isum, s, acc[l]);
        }
    }
    for (int h = 8; h >= 1; h /= 2) {
        for (int i = 0; i < h; i++) {
            acc[i] += acc[i + h];
        }
    }
    return acc[0];
}

static inline __attribute__((always_inline)) CPU_VNNI float q8_hsum(__m512 v)
{
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* Where a tile reads: NR weight rows (scales, quants) and MR activation rows (quants, lane
 * offsets, scales), hoisted so the loops index plain pointers. */
struct q8_ptrs {
    const unsigned char *wd[Q8_NR], *wq[Q8_NR];
    const int8_t *aq[Q8_MR];
    const int32_t *ac[Q8_MR];
    const float *ad[Q8_MR];
};

/*
 * One 64-element chunk at element k into acc: lanes 0..7 of the scale vectors belong to the
 * chunk's first block, 8..15 to its second (idx picks them from a group's 16). A half chunk
 * (the odd last block of a row) loads under masks; a full one loads plainly.
 */
static inline __attribute__((always_inline)) CPU_VNNI void
q8_chunk(const int MR, const int NR, const int half, const struct q8_ptrs *p, int64_t k,
         __m512i idx, const __m512 *dw, const __m512 *da, __m512 sc[2][Q8_NR],
         __m512 acc[Q8_MR][Q8_NR])
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __mmask64 km = (__mmask64)0xffffffffu;
    __m512i wv[Q8_NR];
    __m512 sw[Q8_NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        __m512i q = half ? _mm512_maskz_loadu_epi8(km, p->wq[r] + k)
                         : _mm512_loadu_si512((const void *)(p->wq[r] + k));
        wv[r] = _mm512_xor_si512(q, flip);
        if (MR > 2) {
            sw[r] = _mm512_permutexvar_ps(idx, dw[r]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
        __m512i av = half ? _mm512_maskz_loadu_epi8(km, p->aq[i] + k)
                          : _mm512_loadu_si512((const void *)(p->aq[i] + k));
        __m512i cv = half ? _mm512_maskz_loadu_epi32(0xff, p->ac[i] + k / 4)
                          : _mm512_loadu_si512((const void *)(p->ac[i] + k / 4));
        __m512 sa = MR > 2 ? _mm512_permutexvar_ps(idx, da[i]) : da[i];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m512i d = _mm512_dpbusd_epi32(cv, wv[r], av);
            __m512 s = MR > 2 ? _mm512_mul_ps(sw[r], sa)
                              : _mm512_permutexvar_ps(idx, sc[i < 2 ? i : 0][r]);
            acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, acc[i][r]);
        }
    }
}

/* MR activation rows from m times NR weight rows from n into out[r * Q8_MR + i]. */
static inline __attribute__((always_inline)) CPU_VNNI void
q8_tile_512(const int MR, const int NR, const struct q8_job *j, int64_t m, int64_t n, float *out)
{
    const int64_t nb = j->nb;
    struct q8_ptrs p;
    __m512 acc[Q8_MR][Q8_NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        p.wd[r] = j->B + (size_t)(n + r) * j->row_bytes;
        p.wq[r] = p.wd[r] + 2 * nb;
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
        p.aq[i] = j->acts.q + (m + i) * j->K;
        p.ac[i] = j->acts.corr + (m + i) * (j->K / 4);
        p.ad[i] = j->acts.d + (m + i) * nb;
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            acc[i][r] = _mm512_setzero_ps();
        }
    }
    /* Lanes 0..7 read block 2c of a group's scales, lanes 8..15 block 2c + 1. */
    const __m512i idx0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i two = _mm512_set1_epi32(2);
    /* An integer: past the matrix C forbids the pointer, and a prefetch there is dropped. Only
     * the first tile of a block of activation rows prefetches; the others find the lines. */
    uintptr_t pf = (uintptr_t)j->B + (uintptr_t)(n + Q8_PFT * NR) * j->row_bytes;
    const int pf_lines = Q8_PFT > 0 && m % Q8_MB == 0 ? j->pf_lines : 0;
    for (int64_t g = 0; g < nb; g += 16) {
        int64_t gb = nb - g < 16 ? nb - g : 16; /* blocks in this group */
        __mmask16 bm = (__mmask16)((1u << gb) - 1u);
        __m512 dw[Q8_NR], da[Q8_MR], sc[2][Q8_NR];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            dw[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(bm, p.wd[r] + 2 * g));
        }
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            da[i] = _mm512_maskz_loadu_ps(bm, p.ad[i] + g);
        }
        /* Few rows: the products d_w * d_a once per group, one permute per chunk each. */
        for (int i = 0; i < (MR <= 2 ? MR : 0); i++) {
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                sc[i][r] = _mm512_mul_ps(dw[r], da[i]);
            }
        }
        __m512i idx = idx0;
        int64_t k = g * QB;
        for (int64_t c = 0; 2 * c < gb; c++, k += 2 * QB, idx = _mm512_add_epi32(idx, two)) {
#pragma GCC unroll 4
            for (int l = 0; l < pf_lines; l++) {
                _mm_prefetch((const char *)(pf + (uintptr_t)l * 64), _MM_HINT_T1);
            }
            pf += (uintptr_t)pf_lines * 64;
            if (2 * c + 1 < gb) {
                q8_chunk(MR, NR, 0, &p, k, idx, dw, da, sc, acc);
            } else {
                q8_chunk(MR, NR, 1, &p, k, idx, dw, da, sc, acc);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            out[r * Q8_MR + i] = q8_hsum(acc[i][r]);
        }
    }
}

/*
 * Decode at M = 1: q8_tile_512's result for MR = 1, bit for bit (the same q8_chunk), from a
 * tighter loop: a whole group's eight chunks are unrolled with their scale indices in
 * registers, and the prefetch is a fixed Q8_M1_PL lines per chunk.
 * cpu_q8_gemm at M = 1 from L2 (2 threads, 1.4 MB of rows) went from 50-55 to 77-96 GB/s: the
 * general tile spent about as many instructions on indexing and prefetch control as on the
 * product, which showed once DRAM fed it faster than ~50 GB/s.
 *
 * Prefetch: from Q8_M1_PFT tiles ahead, Q8_M1_PL lines per chunk, where a chunk reads
 * NR * 68 bytes (NR = 2: 2.1 lines), so the prefetch front runs ahead of the reads through each
 * tile. Measured at 32000 x 2048 from DRAM (2 threads, 28-33 GB/s), each setting alternating
 * with the general tile (3 lines per chunk from 2 tiles ahead), medians of 40 pairs, two runs:
 * 2 lines from 3 tiles 0.72-0.76 (a tile's last lines were left to demand misses), 2 from 6
 * tiles 0.87, 3 from 2 tiles 0.94-0.97, 4 from 2 tiles 0.98-1.01, 4 from 3 tiles 1.01-1.02,
 * 5 from 2 tiles 1.01-1.02, 4 from 1 tile 1.03, 5 from 1 tile 1.03-1.04.
 */
#ifndef Q8_M1_PFT
#define Q8_M1_PFT 1
#endif
#ifndef Q8_M1_PL
#define Q8_M1_PL 4
#endif

/* NR weight rows from n against the one activation row into out[r * Q8_MR]. */
static inline __attribute__((always_inline)) CPU_VNNI void
q8_m1_tile(const int NR, const struct q8_job *j, int64_t n, float *out)
{
    const int64_t nb = j->nb;
    const size_t rb = j->row_bytes;
    const unsigned char *wd = j->B + (size_t)n * rb;
    struct q8_ptrs p = {.aq = {j->acts.q}, .ac = {j->acts.corr}, .ad = {j->acts.d}};
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        p.wd[r] = wd + (size_t)r * rb;
        p.wq[r] = p.wd[r] + 2 * nb;
    }
    /* Chunk c of a group reads block 2c of its scales in lanes 0..7, 2c + 1 in lanes 8..15. */
    __m512i idx[8];
    idx[0] = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
#pragma GCC unroll 8
    for (int c = 1; c < 8; c++) {
        idx[c] = _mm512_add_epi32(idx[c - 1], _mm512_set1_epi32(2));
    }
    __m512 acc[Q8_MR][Q8_NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        acc[0][r] = _mm512_setzero_ps();
    }
    /* An integer, as in q8_tile_512: past the matrix the prefetches are dropped. */
    uintptr_t pf = (uintptr_t)j->B + (uintptr_t)(n + Q8_M1_PFT * NR) * rb;
    for (int64_t g = 0; g < nb; g += 16) {
        int64_t gb = nb - g < 16 ? nb - g : 16;
        __mmask16 bm = (__mmask16)((1u << gb) - 1u);
        __m512 sc[2][Q8_NR], da = _mm512_maskz_loadu_ps(bm, p.ad[0] + g);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            __m256i h = _mm256_maskz_loadu_epi16(bm, p.wd[r] + 2 * g);
            sc[0][r] = _mm512_mul_ps(_mm512_cvtph_ps(h), da);
        }
        if (gb == 16) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
#pragma GCC unroll 8
                for (int l = 0; l < Q8_M1_PL; l++) {
                    _mm_prefetch((const char *)(pf + (uintptr_t)l * 64), _MM_HINT_T1);
                }
                pf += (uintptr_t)Q8_M1_PL * 64;
                q8_chunk(1, NR, 0, &p, g * QB + 64 * c, idx[c], sc[0], &da, sc, acc);
            }
            continue;
        }
        /* The row's last group, of fewer blocks: its chunks one by one, an odd last block as a
         * half chunk. */
        for (int c = 0; 2 * c < gb; c++) {
#pragma GCC unroll 8
            for (int l = 0; l < Q8_M1_PL; l++) {
                _mm_prefetch((const char *)(pf + (uintptr_t)l * 64), _MM_HINT_T1);
            }
            pf += (uintptr_t)Q8_M1_PL * 64;
            __m512i ic = _mm512_add_epi32(idx[0], _mm512_set1_epi32(2 * c));
            if (2 * c + 1 < gb) {
                q8_chunk(1, NR, 0, &p, g * QB + 64 * c, ic, sc[0], &da, sc, acc);
            } else {
                q8_chunk(1, NR, 1, &p, g * QB + 64 * c, ic, sc[0], &da, sc, acc);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        out[r * Q8_MR] = q8_hsum(acc[0][r]);
    }
}

_Static_assert(Q8_DNR <= 2, "q8_m1_any instantiates decode tiles of 1 and 2 rows");

static CPU_VNNI void q8_m1_any(const struct q8_job *j, int nr, int64_t n, float *out)
{
    if (nr == 2) {
        q8_m1_tile(2, j, n, out);
    } else {
        q8_m1_tile(1, j, n, out);
    }
}

#define Q8_CASE(MR, NR)                                                                            \
    case (MR)*8 + (NR):                                                                            \
        q8_tile_512(MR, NR, j, m, n, out);                                                         \
        break;
#define Q8_CASES(MR) Q8_CASE(MR, 4) Q8_CASE(MR, 3) Q8_CASE(MR, 2) Q8_CASE(MR, 1)

static CPU_VNNI void q8_tile_any(const struct q8_job *j, int mr, int nr, int64_t m, int64_t n,
                                 float *out)
{
    switch (mr * 8 + nr) {
        Q8_CASES(1)
        Q8_CASES(2)
        Q8_CASES(3)
        Q8_CASES(4)
    default:
        break;
    }
}

/* Rows [m, m + mr) x columns [n, n + nr) of C. */
static void q8_tile(const struct q8_job *j, int mr, int nr, int64_t m, int64_t n)
{
    float out[Q8_MR * Q8_NR];
    if (j->vnni && j->M == 1) {
        q8_m1_any(j, nr, n, out);
    } else if (j->vnni) {
        q8_tile_any(j, mr, nr, m, n, out);
    } else {
        for (int r = 0; r < nr; r++) {
            for (int i = 0; i < mr; i++) {
                out[r * Q8_MR + i] = q8_dot_scalar(j, m + i, j->B + (n + r) * j->row_bytes);
            }
        }
    }
    for (int i = 0; i < mr; i++) {
        float *c = j->C + (j->m_base + m + i) * j->ldc + n;
        for (int r = 0; r < nr; r++) {
            c[r] = j->accumulate ? c[r] + out[r * Q8_MR + i] : out[r * Q8_MR + i];
        }
    }
}

static void q8_task(void *ctx, int64_t task, int32_t thread)
{
    const struct q8_job *j = ctx;
    int64_t n0 = task * j->slice;
    int64_t n1 = n0 + j->slice < j->N ? n0 + j->slice : j->N;
    for (int64_t mb = 0; mb < j->M; mb += Q8_MB) {
        int64_t me = mb + Q8_MB < j->M ? mb + Q8_MB : j->M;
        for (int64_t n = n0; n < n1; n += j->nr) {
            int nr = n1 - n < j->nr ? (int)(n1 - n) : j->nr;
            for (int64_t m = mb; m < me; m += Q8_MR) {
                q8_tile(j, me - m < Q8_MR ? (int)(me - m) : Q8_MR, nr, m, n);
            }
        }
    }
    if (j->epi != NULL && n1 > n0) {
        j->epi(j->epi_arg, j->m_base, j->m_base + j->M, n0, n1);
    }
}

/* Decode (M <= Q8_MR): the rows of one thread's region, then grains of the others' (cpu_steal). */
static void q8_task_decode(void *ctx, int64_t task, int32_t thread)
{
    struct q8_job *j = ctx;
    int64_t cursor = 0, n0, n1;
    while (cpu_steal_next(&j->steal, task, &cursor, &n0, &n1)) {
        for (int64_t n = n0; n < n1; n += j->nr) {
            q8_tile(j, (int)j->M, n1 - n < j->nr ? (int)(n1 - n) : j->nr, 0, n);
        }
        if (j->epi != NULL) {
            j->epi(j->epi_arg, j->m_base, j->m_base + j->M, n0, n1);
        }
    }
}

ptm_status cpu_q8_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                       int64_t lda, const void *B, float *C, int64_t ldc, int accumulate,
                       cpu_cols_fn epi, void *epi_arg)
{
    if (K % QB != 0) {
        return ptm_error_set(PTM_E_INVAL, "cpu: q8 gemm: K=%lld; expected a multiple of %d",
                             (long long)K, QB);
    }
    struct q8_job j = {0};
    j.vnni = ctx->isa >= CPU_ISA_AVX512 && cpu_isa_has_vnni();
    j.N = N;
    j.K = K;
    j.nb = K / QB;
    j.B = B;
    j.row_bytes = cpu_q8_row_bytes(K);
    int64_t chunks = (j.nb + 1) / 2;
    j.A = A;
    j.lda = lda;
    j.C = C;
    j.ldc = ldc;
    j.accumulate = accumulate;
    j.epi = epi;
    j.epi_arg = epi_arg;
    int64_t mch = M < Q8_MCH ? M : Q8_MCH;
    size_t bytes = (size_t)mch * ((size_t)K + (size_t)j.nb * 4 + (size_t)K) + 256;
    unsigned char *scratch = cpu_scratch_get(0, bytes);
    if (scratch == NULL) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: q8 gemm: %zu bytes of scratch: out of memory",
                             bytes);
    }
    j.acts.K = K;
    j.acts.nb = j.nb;
    j.acts.corr = (int32_t *)scratch;
    j.acts.d = (float *)(scratch + (size_t)mch * (size_t)K);
    j.acts.q = (int8_t *)(scratch + (size_t)mch * ((size_t)K + (size_t)j.nb * 4));
    for (j.m_base = 0; j.m_base < M; j.m_base += mch) {
        j.M = M - j.m_base < mch ? M - j.m_base : mch;
        if (j.M <= Q8_MR) {
            q8_act_rows(&j, 0, j.M);
            j.nr = Q8_DNR;
            j.pf_lines = (int)((j.nr * (int64_t)j.row_bytes + 64 * chunks - 1) / (64 * chunks));
            /* Decode: one contiguous region per thread, claimed CPU_STEAL_BYTES at a time. */
            int64_t grain = cpu_steal_grain((int64_t)j.row_bytes, Q8_DNR);
            cpu_pool_run(ctx->pool, cpu_steal_init(&j.steal, ctx->pool, N, grain), q8_task_decode,
                         &j);
            continue;
        }
        cpu_pool_range(ctx->pool, j.M, 1, q8_act_rows, &j);
        j.slice = 64;
        j.nr = Q8_NR;
        j.pf_lines = (int)((j.nr * (int64_t)j.row_bytes + 64 * chunks - 1) / (64 * chunks));
        cpu_pool_run(ctx->pool, (N + j.slice - 1) / j.slice, q8_task, &j);
    }
    return PTM_OK;
}
