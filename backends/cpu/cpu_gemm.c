/*
 * cpu_gemm.c - C = act(A . op(B) + bias) + residual for F32 activations and F32/BF16/F16
 * weights, parallelised over output tiles on the backend's pool.
 *
 * Three engines. Large M: on AVX-512 the packed-panel GEMM of cpu_gemm_512.c, which widens
 * half-precision weights as it packs them; below AVX-512, OpenBLAS sgemm, single-threaded per tile
 * (cpu_blas_init), one task per tile, with the epilogue applied while the tile is in cache and
 * half-precision weights first widened to F32 in parallel (O(NK) against the O(MNK) product)
 * into scratch kept across calls.
 * Small M (M < GEMM_SMALL_M, the batch-1 and decode case), AVX-512 and M close to 16 or 32: an
 * outer-product kernel whose zmm lanes are the rows of A (A^T packed per task into thread-local
 * scratch), broadcasting one B element per output column, 24 zmm accumulators and no horizontal
 * sums; F32 rows are read in place when their stride suits L1, else copied per K chunk as
 * half-precision rows are widened. Other small M: a dot-product kernel on B's [N, K] rows, 4x4
 * output tiles of 16-lane FMAs, which reads half-precision rows directly (widened per K chunk), so
 * decode streams each weight byte once; it has AVX-512, AVX2 and scalar forms. M <= 4 on AVX-512
 * goes to the streaming GEMV of cpu_gemv.c, Q8_0 weights to cpu_q8_outer.c (M >= Q8_OUTER_MIN_M
 * with VNNI) or cpu_q8.c, and (opt-in, ctx->bf16_dot) BF16 weights of the large-M case to
 * cpu_gemm_bf16.c and of the GEMV to its vdpbf16ps form, each with this file's epilogue. This
 * file does not know what a model is.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_SMALL_M          32
#define GEMM_KC               512 /* K chunk of the small kernel: 4 widened B rows stay in L1 */
#define GEMM_TILES_PER_THREAD 2
#define GEMM_MIN_MB           64
#define GEMM_NB               2048 /* at most this many columns per OpenBLAS tile */
#define OUT_KC                128  /* K chunk of the outer-product kernel's B panel */
#define OUT_NR                24   /* accumulator zmm registers of the outer-product kernel */
/* From this many rows the Q8_0 outer-product kernel wins (bench_cpu_kernels q8: 1.9x at 12
 * rows, 1.7-3.2x at 16, 1.9-2.5x at 512; at 5 the lane kernel is as fast). */
#define Q8_OUTER_MIN_M 12
#define OUT_PF_AHEAD   2 /* B panels prefetched ahead of the one being packed */
#define OUT_PF_EVERY   5 /* k steps between two rows' prefetches: 24 rows in 120 of 128 */

void cpu_blas_init(void)
{
    openblas_set_num_threads(1);
}

struct gemm_job {
    int32_t isa;
    int64_t M, N, K;
    const float *A;
    int64_t lda;
    const void *B;
    ptm_dtype b_dtype;
    int64_t ldb;
    int32_t b_trans;
    float *C;
    int64_t ldc;
    struct cpu_epilogue ep;
    int accumulate; /* C already holds the residual: add the product to it */
    int64_t mb, nb, n_mblocks;
    int32_t out_nr, out_direct; /* outer-product kernel: columns per tile, B rows read in place */
};

/* ---- epilogue ---- */

static CPU_AVX512 void epi_bias_512(int64_t n, const float *bias, float *c)
{
    for (int64_t j = 0; j < n; j += 16) {
        __m512 v = _mm512_add_ps(cpu_load512(c + j, n - j), cpu_load512(bias + j, n - j));
        cpu_store512(c + j, v, n - j);
    }
}

static CPU_AVX512 void epi_add_512(int64_t n, const float *r, float *c)
{
    for (int64_t j = 0; j < n; j += 16) {
        __m512 v = _mm512_add_ps(cpu_load512(c + j, n - j), cpu_load512(r + j, n - j));
        cpu_store512(c + j, v, n - j);
    }
}

/* Rows [m0, m1) x columns [n0, n1) of C get bias, activation and residual. */
static void gemm_epilogue(const struct gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
    const struct cpu_epilogue *ep = &j->ep;
    int add_res = ep->residual && !j->accumulate;
    if (!ep->bias && ep->act == CPU_ACT_NONE && !add_res) {
        return;
    }
    int64_t n = n1 - n0;
    for (int64_t i = m0; i < m1; i++) {
        float *c = j->C + i * j->ldc + n0;
        const float *r = add_res ? ep->residual + i * ep->ld_residual + n0 : NULL;
        if (j->isa >= CPU_ISA_AVX512) {
            if (ep->bias) {
                epi_bias_512(n, ep->bias + n0, c);
            }
            cpu_act_row(j->isa, ep->act, n, c, c);
            if (r) {
                epi_add_512(n, r, c);
            }
            continue;
        }
        for (int64_t x = 0; x < n && ep->bias; x++) {
            c[x] += ep->bias[n0 + x];
        }
        cpu_act_row(j->isa, ep->act, n, c, c);
        for (int64_t x = 0; x < n && r; x++) {
            c[x] += r[x];
        }
    }
}

/* The epilogue as a cpu_cols_fn, for the GEMV and Q8_0 kernels of their own files. */
static void gemm_epilogue_cols(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
    gemm_epilogue(arg, m0, m1, n0, n1);
}

/* ---- small-M dot-product kernel ---- */

/* mr x nr dot products over kn elements; mr, nr, BT are compile-time after inlining, so the
 * accumulators live in registers. Half-precision rows are widened in registers, so decode
 * (M = 1) streams each weight byte once. */
static inline __attribute__((always_inline)) CPU_AVX512 void
dot_tile_512(const int BT, int mr, int nr, const float *a, int64_t lda, const void *const *b,
             int64_t kn, float *c, int64_t ldc, int add)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            acc[r][q] = _mm512_setzero_ps();
        }
    }
    for (int64_t k = 0; k < kn; k += 16) {
        __mmask16 m = kn - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - k)) - 1u);
        __m512 bv[4];
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            bv[q] = cpu_load_wide512(BT == 0 ? PTM_F32 : BT == 1 ? PTM_BF16 : PTM_F16, b[q], k, m);
        }
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_maskz_loadu_ps(m, a + r * lda + k);
#pragma GCC unroll 4
            for (int q = 0; q < nr; q++) {
                acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            float s = _mm512_reduce_add_ps(acc[r][q]);
            c[r * ldc + q] = add ? c[r * ldc + q] + s : s;
        }
    }
}

#define DOT_CASE(BT, MR, NR)                                                                       \
    case (BT)*64 + (MR)*8 + (NR):                                                                  \
        dot_tile_512(BT, MR, NR, a, lda, b, kn, c, ldc, add);                                      \
        break;
#define DOT_CASES(BT)                                                                              \
    DOT_CASE(BT, 4, 4)                                                                             \
    DOT_CASE(BT, 4, 3)                                                                             \
    DOT_CASE(BT, 4, 2)                                                                             \
    DOT_CASE(BT, 4, 1)                                                                             \
    DOT_CASE(BT, 3, 4)                                                                             \
    DOT_CASE(BT, 3, 3)                                                                             \
    DOT_CASE(BT, 3, 2)                                                                             \
    DOT_CASE(BT, 3, 1)                                                                             \
    DOT_CASE(BT, 2, 4)                                                                             \
    DOT_CASE(BT, 2, 3)                                                                             \
    DOT_CASE(BT, 2, 2)                                                                             \
    DOT_CASE(BT, 2, 1)                                                                             \
    DOT_CASE(BT, 1, 4)                                                                             \
    DOT_CASE(BT, 1, 3)                                                                             \
    DOT_CASE(BT, 1, 2)                                                                             \
    DOT_CASE(BT, 1, 1)

static CPU_AVX512 void dot_tile_any_512(ptm_dtype dt, int mr, int nr, const float *a, int64_t lda,
                                        const void *const *b, int64_t kn, float *c, int64_t ldc,
                                        int add)
{
    int bt = dt == PTM_F32 ? 0 : (dt == PTM_BF16 ? 1 : 2);
    switch (bt * 64 + mr * 8 + nr) {
        DOT_CASES(0)
        DOT_CASES(1)
        DOT_CASES(2)
    default:
        break;
    }
}

static inline __attribute__((always_inline)) CPU_AVX2 void
dot_tile_256(int mr, int nr, const float *a, int64_t lda, const float *const *b, int64_t kn,
             float *c, int64_t ldc, int add)
{
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            acc[r][q] = _mm256_setzero_ps();
        }
    }
    for (int64_t k = 0; k < kn; k += 8) {
        __m256 bv[4];
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            bv[q] = cpu_load256(b[q] + k, kn - k);
        }
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m256 av = cpu_load256(a + r * lda + k, kn - k);
#pragma GCC unroll 4
            for (int q = 0; q < nr; q++) {
                acc[r][q] = _mm256_fmadd_ps(av, bv[q], acc[r][q]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nr; q++) {
            float s = cpu_hsum256(acc[r][q]);
            c[r * ldc + q] = add ? c[r * ldc + q] + s : s;
        }
    }
}

#define DOT_CASE_256(MR, NR)                                                                       \
    case (MR)*8 + (NR):                                                                            \
        dot_tile_256(MR, NR, a, lda, b, kn, c, ldc, add);                                          \
        break;

static CPU_AVX2 void dot_tile_any_256(int mr, int nr, const float *a, int64_t lda,
                                      const float *const *b, int64_t kn, float *c, int64_t ldc,
                                      int add)
{
    switch (mr * 8 + nr) {
        DOT_CASE_256(4, 4)
        DOT_CASE_256(4, 3)
        DOT_CASE_256(4, 2)
        DOT_CASE_256(4, 1)
        DOT_CASE_256(3, 4)
        DOT_CASE_256(3, 3)
        DOT_CASE_256(3, 2)
        DOT_CASE_256(3, 1)
        DOT_CASE_256(2, 4)
        DOT_CASE_256(2, 3)
        DOT_CASE_256(2, 2)
        DOT_CASE_256(2, 1)
        DOT_CASE_256(1, 4)
        DOT_CASE_256(1, 3)
        DOT_CASE_256(1, 2)
        DOT_CASE_256(1, 1)
    default:
        break;
    }
}

static CPU_AVX2 void widen_256(ptm_dtype dt, const void *src, int64_t n, float *dst)
{
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i v = _mm_loadu_si128((const __m128i *)(h + i));
        __m256 f = dt == PTM_BF16
                       ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
                       : _mm256_cvtph_ps(v);
        _mm256_storeu_ps(dst + i, f);
    }
    for (; i < n; i++) {
        dst[i] = dt == PTM_BF16 ? cpu_bf16_to_f32(h[i]) : cpu_f16_to_f32(h[i]);
    }
}

static void dot_tile_scalar(int mr, int nr, const float *a, int64_t lda, const float *const *b,
                            int64_t kn, float *c, int64_t ldc, int add)
{
    for (int r = 0; r < mr; r++) {
        for (int q = 0; q < nr; q++) {
            float s = 0.0f;
            for (int64_t k = 0; k < kn; k++) {
                s += a[r * lda + k] * b[q][k];
            }
            c[r * ldc + q] = add ? c[r * ldc + q] + s : s;
        }
    }
}

/* Widen n half-precision values to F32 with the isa's code path. */
static void gemm_widen(int32_t isa, ptm_dtype dt, const void *src, int64_t n, float *dst)
{
    if (isa >= CPU_ISA_AVX512) {
        cpu_widen512(dt, src, n, dst);
        return;
    }
    if (isa == CPU_ISA_AVX2) {
        widen_256(dt, src, n, dst);
        return;
    }
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = dt == PTM_BF16 ? cpu_bf16_to_f32(h[i]) : cpu_f16_to_f32(h[i]);
    }
}

/* Columns [n0, n1) of C for all M rows. */
/* Columns [n0, n1) of C for all M rows. AVX-512 reads half-precision rows directly; the other
 * paths widen four rows at a time, GEMM_KC elements per chunk, into buf. */
static void gemm_small_block(const struct gemm_job *j, int64_t n0, int64_t n1, float *buf)
{
    size_t esize = j->b_dtype == PTM_F32 ? 4 : 2;
    int direct = j->b_dtype == PTM_F32 || j->isa >= CPU_ISA_AVX512;
    int64_t kc_step = direct ? j->K : GEMM_KC;
    for (int64_t n = n0; n < n1; n += 4) {
        int nr = n1 - n < 4 ? (int)(n1 - n) : 4;
        for (int64_t kc = 0; kc < j->K; kc += kc_step) {
            int64_t kn = j->K - kc < kc_step ? j->K - kc : kc_step;
            const void *b[4];
            const float *bf[4];
            for (int q = 0; q < nr; q++) {
                const char *row = (const char *)j->B + ((n + q) * j->ldb + kc) * esize;
                b[q] = row;
                bf[q] = (const float *)row;
                if (!direct) {
                    gemm_widen(j->isa, j->b_dtype, row, kn, buf + q * GEMM_KC);
                    bf[q] = buf + q * GEMM_KC;
                }
            }
            int add = kc > 0 || j->accumulate;
            for (int64_t m = 0; m < j->M; m += 4) {
                int mr = j->M - m < 4 ? (int)(j->M - m) : 4;
                const float *a = j->A + m * j->lda + kc;
                float *c = j->C + m * j->ldc + n;
                if (j->isa >= CPU_ISA_AVX512) {
                    dot_tile_any_512(j->b_dtype, mr, nr, a, j->lda, b, kn, c, j->ldc, add);
                } else if (j->isa == CPU_ISA_AVX2) {
                    dot_tile_any_256(mr, nr, a, j->lda, bf, kn, c, j->ldc, add);
                } else {
                    dot_tile_scalar(mr, nr, a, j->lda, bf, kn, c, j->ldc, add);
                }
            }
        }
    }
    gemm_epilogue(j, 0, j->M, n0, n1);
}

static void gemm_small_task(void *ctx, int64_t task, int32_t thread)
{
    const struct gemm_job *j = ctx;
    float buf[4 * GEMM_KC];
    int64_t n0 = task * j->nb;
    int64_t n1 = n0 + j->nb < j->N ? n0 + j->nb : j->N;
    gemm_small_block(j, n0, n1, buf);
}

/* ---- small-M outer-product kernel (AVX-512) ---- */

/* The rows of A become the lanes: A^T is packed once per task as [K][W] (W = 16 lanes for
 * M <= 16, else 32; rows past M zero). Each k broadcasts one B element per output column and
 * FMAs it with the A^T vector(s), so a tile of OUT_NR / (W / 16) columns keeps OUT_NR zmm
 * accumulators holding C^T, with no horizontal reduction; the tile is transposed 16x16 in
 * registers on the way out. F32 B rows are read in place (out_direct) when OUT_NR rows at
 * stride ldb do not crowd an L1 set, prefetching the next tile's rows into L2 a line per 16 k
 * (at batch 1 the weights come from DRAM, and 24 short streams defeat the hardware prefetcher;
 * into L1, the next tile's 24 rows evicted this tile's and weights streamed from DRAM at 12-14
 * GB/s instead of 20-22, M = 16, K = 384); otherwise
 * (half precision, or F32 rows whose stride aliases in L1: K = 512, 1536, 2048) an OUT_KC chunk
 * of the rows is widened or copied into a [OUT_NR][OUT_KC] panel while the chunk OUT_PF_AHEAD
 * further is prefetched into L2 (into L1 the aliasing rows would evict each other). At M <= 16
 * and K = 512 or 1536, tiles of OUT_NR / 2 rows are read in place instead, their next tile
 * prefetched into L2 (bench_cpu_kernels t5: 160-168 -> 183-205 GFLOP/s, lm_head 136 -> 183).
 * Measured on Zen 4 at M = 16 it runs near the FMA peak where the dot kernel loses a third to
 * reductions. */

/* This thread's scratch of at least n floats, 64-byte aligned, kept across calls and freed
 * when the thread exits. NULL when out of memory (the caller falls back to the dot kernel). */
struct out_scratch {
    float *p;
    size_t cap;
};

static pthread_key_t out_key;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;
static int out_key_ok;

static void out_scratch_free(void *p)
{
    struct out_scratch *s = p;
    free(s->p);
    free(s);
}

static void out_key_init(void)
{
    out_key_ok = pthread_key_create(&out_key, out_scratch_free) == 0;
}

static float *out_scratch_get(size_t n)
{
    pthread_once(&out_once, out_key_init);
    if (!out_key_ok) {
        return NULL;
    }
    struct out_scratch *s = pthread_getspecific(out_key);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            return NULL;
        }
        if (pthread_setspecific(out_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < n) {
        size_t cap = (n + 4095) / 4096 * 4096; /* a multiple of 64 bytes, as aligned_alloc wants */
        float *p = aligned_alloc(64, cap * sizeof(float));
        if (!p) {
            return NULL;
        }
        free(s->p);
        s->p = p;
        s->cap = cap;
    }
    return s->p;
}

/* at[k * W + m] = A[m, k] for m < M, zero for M <= m < W; 16x16 blocks at a time. */
static CPU_AVX512 void out_pack_a(const struct gemm_job *j, int W, float *at)
{
    for (int64_t k0 = 0; k0 < j->K; k0 += 16) {
        int64_t kn = j->K - k0 < 16 ? j->K - k0 : 16;
        for (int g = 0; g < W; g += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) {
                int64_t m = g + i;
                r[i] = m < j->M ? cpu_load512(j->A + m * j->lda + k0, kn) : _mm512_setzero_ps();
            }
            cpu_tr16_512(r);
            for (int64_t c = 0; c < kn; c++) {
                _mm512_store_ps(at + (k0 + c) * W + g, r[c]);
            }
        }
    }
}

/* B rows [n, n + nr), elements [kc, kc + kn), widened into bp[q * OUT_KC + k]; rows nr..nr_max
 * are zero so the tile kernel never reads uninitialised memory. */
static CPU_AVX512 void out_pack_b(const struct gemm_job *j, int64_t n, int nr, int nr_max,
                                  int64_t kc, int64_t kn, float *bp)
{
    size_t esize = j->b_dtype == PTM_F32 ? 4 : 2;
    for (int q = 0; q < nr; q++) {
        const char *row = (const char *)j->B + ((n + q) * j->ldb + kc) * esize;
        float *d = bp + q * OUT_KC;
        if (j->b_dtype != PTM_F32) {
            cpu_widen512(j->b_dtype, row, kn, d);
            continue;
        }
        for (int64_t k = 0; k < kn; k += 16) {
            cpu_store512(d + k, cpu_load512((const float *)row + k, kn - k), kn - k);
        }
    }
    for (int q = nr; q < nr_max; q++) {
        memset(bp + q * OUT_KC, 0, (size_t)kn * sizeof(float));
    }
}

/* C^T for NR columns from n into ct[q * 16 * MV + m]; MV zmm lanes groups per column. */
static inline __attribute__((always_inline)) CPU_AVX512 void
out_tile_512(const int MV, const int NR, const int DIRECT, const struct gemm_job *j,
             const float *at, int64_t n, int nr, float *bp, float *ct)
{
    const int W = 16 * MV;
    const float *brow[OUT_NR], *bnext[OUT_NR]; /* this tile's rows, the next tile's */
    for (int q = 0; q < NR; q++) {
        brow[q] = (const float *)j->B + (n + (q < nr ? q : nr - 1)) * j->ldb;
        int64_t r = n + NR + q < j->N ? n + NR + q : j->N - 1;
        bnext[q] = (const float *)j->B + r * j->ldb;
    }
    __m512 acc[2 * OUT_NR];
#pragma GCC unroll 48
    for (int i = 0; i < NR * MV; i++) {
        acc[i] = _mm512_setzero_ps();
    }
    size_t esize = j->b_dtype == PTM_F32 ? 4 : 2;
    int64_t cpr = (j->K + OUT_KC - 1) / OUT_KC;
    for (int64_t kc = 0; kc < j->K; kc += OUT_KC) {
        int64_t kn = j->K - kc < OUT_KC ? j->K - kc : OUT_KC;
        /* Packed rows: the chunk OUT_PF_AHEAD further (these rows further along K, or the next
         * tiles' rows) is fetched into L2 a row every OUT_PF_EVERY k, spread over this chunk's
         * work rather than in one burst the miss queues cannot hold. */
        int64_t pf_row = j->N, pf_k = 0, pf_lines = 0;
        if (!DIRECT) {
            out_pack_b(j, n, nr, NR, kc, kn, bp);
            int64_t t = kc / OUT_KC + OUT_PF_AHEAD;
            pf_row = n + (t / cpr) * NR;
            pf_k = (t % cpr) * OUT_KC;
            pf_lines = ((j->K - pf_k < OUT_KC ? j->K - pf_k : OUT_KC) * (int64_t)esize + 63) / 64;
        }
        const float *a = at + kc * W;
        for (int64_t k = 0; k < kn; k++) {
            /* Direct rows stream from memory: fetch the next tile's line for these 16 k, into
             * L2 only, where the next tile's lines would evict this one's from L1. */
            if (DIRECT && (k & 15) == 0) {
#pragma GCC unroll 24
                for (int q = 0; q < NR; q++) {
                    _mm_prefetch((const char *)(bnext[q] + kc + k), _MM_HINT_T1);
                }
            }
            if (!DIRECT && k % OUT_PF_EVERY == 0 && k / OUT_PF_EVERY < NR &&
                pf_row + k / OUT_PF_EVERY < j->N) {
                const char *r = (const char *)j->B +
                                ((pf_row + k / OUT_PF_EVERY) * j->ldb + pf_k) * (int64_t)esize;
                for (int64_t l = 0; l < pf_lines; l++) {
                    _mm_prefetch(r + l * 64, _MM_HINT_T1);
                }
            }
            __m512 a0 = _mm512_load_ps(a + k * W);
            __m512 a1 = MV > 1 ? _mm512_load_ps(a + k * W + 16) : a0;
#pragma GCC unroll 24
            for (int q = 0; q < NR; q++) {
                __m512 b = _mm512_set1_ps(DIRECT ? brow[q][kc + k] : bp[q * OUT_KC + k]);
                acc[q * MV] = _mm512_fmadd_ps(a0, b, acc[q * MV]);
                if (MV > 1) {
                    acc[q * MV + 1] = _mm512_fmadd_ps(a1, b, acc[q * MV + 1]);
                }
            }
        }
    }
#pragma GCC unroll 48
    for (int i = 0; i < NR * MV; i++) {
        _mm512_store_ps(ct + i * 16, acc[i]);
    }
}

/* Columns [n, n + nr) of C from the transposed tile ct (W lanes per column, nr_max columns),
 * transposed back 16x16 at a time. */
static CPU_AVX512 void out_store(const struct gemm_job *j, int W, int nr_max, const float *ct,
                                 int64_t n, int nr)
{
    for (int g = 0; g < W && g < j->M; g += 16) {
        for (int q0 = 0; q0 < nr; q0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) {
                r[i] =
                    q0 + i < nr_max ? _mm512_load_ps(ct + (q0 + i) * W + g) : _mm512_setzero_ps();
            }
            cpu_tr16_512(r);
            int64_t cols = nr - q0 < 16 ? nr - q0 : 16;
            for (int i = 0; i < 16 && g + i < j->M; i++) {
                float *c = j->C + (g + i) * j->ldc + n + q0;
                __m512 v = j->accumulate ? _mm512_add_ps(r[i], cpu_load512(c, cols)) : r[i];
                cpu_store512(c, v, cols);
            }
        }
    }
}

/* Whether nr F32 rows ldb apart, read in step, share no L1 set (64 sets of 64-byte lines, 8
 * ways) more than ways times, leaving the other ways for A and the prefetched lines. */
static int out_rows_fit_l1(int64_t ldb, int nr, int ways)
{
    int count[64] = {0};
    for (int q = 0; q < nr; q++) {
        int set = (int)(((uint64_t)q * (uint64_t)ldb * 4u / 64u) % 64u);
        if (++count[set] > ways) {
            return 0;
        }
    }
    return 1;
}

/* Whether the outer-product kernel beats the dot kernel for M rows: it computes 16 or 32 rows
 * whatever M is, so it needs M close to that (measured on Zen 4: 14..16 and 24..31). */
static int out_wins(int64_t M)
{
    return (M >= 14 && M <= 16) || (M >= 24 && M < GEMM_SMALL_M);
}

/* Floats of scratch out_block_512 needs for a job. */
static size_t out_scratch_size(const struct gemm_job *j)
{
    return (size_t)j->K * 32 + (size_t)OUT_NR * OUT_KC + (size_t)OUT_NR * 32;
}

/* Columns [n0, n1) of C for all M (< 32) rows, then the epilogue. */
static CPU_AVX512 void out_block_512(const struct gemm_job *j, int64_t n0, int64_t n1,
                                     float *scratch)
{
    int mv = j->M > 16 ? 2 : 1;
    int W = 16 * mv, nr_max = j->out_nr;
    float *at = scratch;
    float *bp = at + j->K * W;
    float *ct = bp + OUT_NR * OUT_KC;
    out_pack_a(j, W, at);
    for (int64_t n = n0; n < n1; n += nr_max) {
        int nr = n1 - n < nr_max ? (int)(n1 - n) : nr_max;
        if (mv == 2) {
            if (j->out_direct) {
                out_tile_512(2, OUT_NR / 2, 1, j, at, n, nr, bp, ct);
            } else {
                out_tile_512(2, OUT_NR / 2, 0, j, at, n, nr, bp, ct);
            }
        } else if (j->out_direct && nr_max == OUT_NR / 2) {
            out_tile_512(1, OUT_NR / 2, 1, j, at, n, nr, bp, ct);
        } else if (j->out_direct) {
            out_tile_512(1, OUT_NR, 1, j, at, n, nr, bp, ct);
        } else {
            out_tile_512(1, OUT_NR, 0, j, at, n, nr, bp, ct);
        }
        out_store(j, W, nr_max, ct, n, nr);
    }
    gemm_epilogue(j, 0, j->M, n0, n1);
}

static void gemm_out_task(void *ctx, int64_t task, int32_t thread)
{
    const struct gemm_job *j = ctx;
    int64_t n0 = task * j->nb;
    int64_t n1 = n0 + j->nb < j->N ? n0 + j->nb : j->N;
    float *scratch = out_scratch_get(out_scratch_size(j));
    if (scratch) {
        out_block_512(j, n0, n1, scratch);
        return;
    }
    float buf[4 * GEMM_KC];
    gemm_small_block(j, n0, n1, buf);
}

/* ---- OpenBLAS tiles ---- */

static void gemm_blas_task(void *ctx, int64_t task, int32_t thread)
{
    const struct gemm_job *j = ctx;
    int64_t m0 = (task % j->n_mblocks) * j->mb;
    int64_t n0 = (task / j->n_mblocks) * j->nb;
    int64_t m1 = m0 + j->mb < j->M ? m0 + j->mb : j->M;
    int64_t n1 = n0 + j->nb < j->N ? n0 + j->nb : j->N;
    const float *B = j->B;
    const float *b = j->b_trans ? B + n0 * j->ldb : B + n0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, j->b_trans ? CblasTrans : CblasNoTrans, (int)(m1 - m0),
                (int)(n1 - n0), (int)j->K, 1.0f, j->A + m0 * j->lda, (int)j->lda, b, (int)j->ldb,
                j->accumulate ? 1.0f : 0.0f, j->C + m0 * j->ldc + n0, (int)j->ldc);
    gemm_epilogue(j, m0, m1, n0, n1);
}

struct widen_job {
    int32_t isa;
    ptm_dtype dt;
    const uint16_t *src;
    int64_t ld_src, cols;
    float *dst;
};

static void widen_rows(void *arg, int64_t lo, int64_t hi)
{
    const struct widen_job *w = arg;
    for (int64_t r = lo; r < hi; r++) {
        gemm_widen(w->isa, w->dt, w->src + r * w->ld_src, w->cols, w->dst + r * w->cols);
    }
}

static void gemm_blas(const cpu_ctx *ctx, struct gemm_job *j)
{
    int64_t n_threads = cpu_pool_size(ctx->pool);
    /* GEMM_TILES_PER_THREAD tiles per thread (dynamic claiming evens out a slow thread), cut
     * as rows x columns to pack the least: each sgemm call packs its own rows of A and columns
     * of B, so a grid of tm x tn tiles packs B tm times and A tn times. Tall M (BERT, prefill)
     * keeps whole rows of C; M = 512 against 2048 columns (the T5 encoder) cuts columns, which
     * halves the packing (bench_cpu_kernels t5, prefill). Blocks keep at least GEMM_MIN_MB rows
     * and at most GEMM_NB columns. */
    int64_t tiles = GEMM_TILES_PER_THREAD * n_threads;
    int64_t best = 0;
    for (int64_t tn = 1; tn <= tiles; tn++) {
        if (tiles % tn != 0) {
            continue;
        }
        int64_t mb = (j->M + tiles / tn - 1) / (tiles / tn);
        mb = mb < GEMM_MIN_MB ? GEMM_MIN_MB : (mb + 15) / 16 * 16;
        int64_t nb = (j->N + tn - 1) / tn;
        nb = nb < GEMM_MIN_MB ? GEMM_MIN_MB : (nb + 15) / 16 * 16;
        nb = nb < GEMM_NB ? nb : GEMM_NB;
        nb = nb < j->N ? nb : j->N;
        int64_t m_blocks = (j->M + mb - 1) / mb, n_blocks = (j->N + nb - 1) / nb;
        int64_t packed = m_blocks * j->N + n_blocks * j->M; /* elements, per unit of K */
        if (tn == 1 || packed < best) {
            best = packed;
            j->mb = mb;
            j->nb = nb;
            j->n_mblocks = m_blocks;
        }
    }
    int64_t n_tiles = j->n_mblocks * ((j->N + j->nb - 1) / j->nb);
    cpu_pool_run(ctx->pool, n_tiles, gemm_blas_task, j);
}

static ptm_status gemm_check(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                             int32_t b_trans, ptm_dtype b_dtype, const struct cpu_epilogue *ep,
                             const float *C)
{
    /* OpenBLAS takes int dimensions and strides. */
    if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda < K ||
        ldc < N || ldb < (b_trans ? K : N) || lda > INT32_MAX || ldb > INT32_MAX ||
        ldc > INT32_MAX) {
        return ptm_error_set(PTM_E_INVAL,
                             "cpu: gemm: M=%lld N=%lld K=%lld lda=%lld ldb=%lld ldc=%lld; expected "
                             "sizes and strides in 0..INT32_MAX with each stride >= its row",
                             (long long)M, (long long)N, (long long)K, (long long)lda,
                             (long long)ldb, (long long)ldc);
    }
    if (b_dtype != PTM_F32 && b_dtype != PTM_BF16 && b_dtype != PTM_F16 && b_dtype != PTM_Q8_0) {
        const char *name = ptm_dtype_name(b_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: gemm: weight dtype %s; expected F32, BF16, F16 or Q8_0",
                             name ? name : "?");
    }
    if (b_dtype == PTM_Q8_0 && (!b_trans || ldb != K || K % 32 != 0)) {
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: gemm: Q8_0 weights need packed [N, K] rows with K a multiple "
                             "of 32; got K=%lld ldb=%lld%s",
                             (long long)K, (long long)ldb, b_trans ? "" : " untransposed");
    }
    if (ep && ep->residual == C && ep->act != CPU_ACT_NONE) {
        return ptm_error_set(PTM_E_INVAL, "cpu: gemm: residual aliases the output while an "
                                          "activation is fused; expected distinct buffers");
    }
    return PTM_OK;
}

ptm_status cpu_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t lda, const void *B, ptm_dtype b_dtype, int64_t ldb, int32_t b_trans,
                    float *C, int64_t ldc, const struct cpu_epilogue *ep)
{
    ptm_status st = gemm_check(M, N, K, lda, ldb, ldc, b_trans, b_dtype, ep, C);
    if (st != PTM_OK || M == 0 || N == 0) {
        return st;
    }
    struct gemm_job j = {
        ctx->isa, M, N, K, A, lda, B, b_dtype, ldb, b_trans, C, ldc, {NULL, CPU_ACT_NONE, NULL, 0},
        0,        0, 0, 1, 0, 0};
    if (ep) {
        j.ep = *ep;
    }
    j.accumulate = j.ep.residual != NULL && j.ep.residual == C;
    if (K == 0) {
        for (int64_t i = 0; i < M && !j.accumulate; i++) {
            memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        }
        gemm_epilogue(&j, 0, M, 0, N);
        return PTM_OK;
    }
    if (b_dtype == PTM_Q8_0) {
        if (M >= Q8_OUTER_MIN_M && cpu_q8_outer_gemm(ctx, M, N, K, A, lda, B, C, ldc, j.accumulate,
                                                     gemm_epilogue_cols, &j)) {
            return PTM_OK;
        }
        return cpu_q8_gemm(ctx, M, N, K, A, lda, B, C, ldc, j.accumulate, gemm_epilogue_cols, &j);
    }
    /* Opt-in, BF16 weights: the vdpbf16ps form (0 where the CPU lacks it), else exact. */
    if (b_trans && ctx->bf16_dot && b_dtype == PTM_BF16 &&
        cpu_gemv(ctx, M, N, K, A, lda, B, b_dtype, ldb, C, ldc, j.accumulate, CPU_GEMV_DPBF16,
                 gemm_epilogue_cols, &j)) {
        return PTM_OK;
    }
    if (b_trans && cpu_gemv(ctx, M, N, K, A, lda, B, b_dtype, ldb, C, ldc, j.accumulate,
                            CPU_GEMV_EXACT, gemm_epilogue_cols, &j)) {
        return PTM_OK;
    }
    j.out_nr = M > 16 ? OUT_NR / 2 : OUT_NR;
    j.out_direct = b_dtype == PTM_F32 && out_rows_fit_l1(ldb, j.out_nr, 4);
    /* Rows 2 KiB or 6 KiB apart (K = 512, 1536) fall in two L1 sets: 12 of them fit, read in
     * place, with the next tile's lines prefetched into L2 only (out_tile_512), where 24 would
     * need the copy. K = 2048 (one set) still copies. */
    if (b_dtype == PTM_F32 && !j.out_direct && M <= 16 && out_rows_fit_l1(ldb, OUT_NR / 2, 6)) {
        j.out_nr = OUT_NR / 2;
        j.out_direct = 1;
    }
    if (b_trans && out_wins(M) && ctx->isa >= CPU_ISA_AVX512) {
        int64_t n_threads = cpu_pool_size(ctx->pool), nr = j.out_nr;
        j.nb = ((N + n_threads - 1) / n_threads + nr - 1) / nr * nr;
        cpu_pool_run(ctx->pool, (N + j.nb - 1) / j.nb, gemm_out_task, &j);
        return PTM_OK;
    }
    if (M < GEMM_SMALL_M && b_trans) {
        int64_t n_threads = cpu_pool_size(ctx->pool);
        j.nb = (N + 4 * n_threads - 1) / (4 * n_threads);
        j.nb = (j.nb + 3) / 4 * 4;
        if (j.nb < 16) {
            j.nb = 16;
        }
        cpu_pool_run(ctx->pool, (N + j.nb - 1) / j.nb, gemm_small_task, &j);
        return PTM_OK;
    }
    if ((b_dtype == PTM_BF16 || b_dtype == PTM_F16) && b_trans && ctx->bf16_dot &&
        cpu_gemm_bf16(ctx, M, N, K, A, lda, B, b_dtype, ldb, C, ldc, j.accumulate,
                      gemm_epilogue_cols, &j)) {
        return PTM_OK;
    }
    if (cpu_gemm_512(ctx, M, N, K, A, lda, B, b_dtype, ldb, b_trans, C, ldc, j.accumulate, &j.ep)) {
        return PTM_OK;
    }
    if (b_dtype != PTM_F32) {
        /* The caller's scratch, kept across calls: a fresh allocation per matmul (46 MB for a
         * TinyLlama MLP weight) cost more in page faults and zeroing than the widening. */
        int64_t rows = b_trans ? N : K, cols = b_trans ? K : N;
        float *wide = cpu_scratch_get(0, (size_t)rows * (size_t)cols * sizeof(float));
        if (!wide) {
            return ptm_error_set(PTM_E_NOMEM,
                                 "cpu: gemm: widening a %lldx%lld %s weight: out "
                                 "of memory",
                                 (long long)rows, (long long)cols, ptm_dtype_name(b_dtype));
        }
        struct widen_job w = {ctx->isa, b_dtype, B, ldb, cols, wide};
        cpu_pool_range(ctx->pool, rows, 1, widen_rows, &w);
        j.B = wide;
        j.ldb = cols;
        j.b_dtype = PTM_F32;
    }
    gemm_blas(ctx, &j);
    return PTM_OK;
}
