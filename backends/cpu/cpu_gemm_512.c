/*
 * cpu_gemm_512.c - the large-M GEMM on AVX-512 with F32 arithmetic: C[M, N] (+)= A[M, K] . op(B)
 * with A F32 and B F32, BF16 or F16, either [N, K] rows (nn.Linear, b_trans) or [K, N].
 *
 * B is packed once per call, shared by every thread, into panels of G5_NR columns laid out as
 * [k][G5_NR] F32 (half-precision widened, [N, K] rows transposed 16 x 16 in registers), so one k
 * step of a panel is four aligned zmm loads. Each pool task takes a block of at most G5_MT tiles
 * of G5_MR rows of A and a group of panels; the block stays in L2 while each panel in turn is
 * walked by its tiles, which broadcast A's elements straight from its rows (A is not packed) into
 * 24 accumulators whose lanes are columns of C. Every tile covers all of a K chunk and is stored
 * once, so C is written once per chunk, the last chunk through the epilogue (bias, activation,
 * residual) in registers. K beyond G5_KC is cut into chunks with C accumulating; N beyond G5_NC
 * is packed a slice at a time, which bounds the scratch. OpenBLAS (sgemm_kernel_COOPERLAKE)
 * packs both operands per call and tile and reaches about 190 GFLOP/s on BERT's shapes here;
 * this reaches 207-222 of a 228 FMA peak (bench_cpu_kernels, gemm_m4096_*). This file knows no
 * model.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#define G5_NV 4            /* zmm column vectors per tile */
#define G5_NR (16 * G5_NV) /* columns per panel */
#define G5_MR 6            /* rows of A per tile: 24 accumulators */
#define G5_MT 16           /* tiles of rows per task at most: its block of A stays in L2 */
#define G5_KC 1536         /* longest K chunk: block + panel stay under 1 MiB of L2 */
#define G5_PF 64           /* elements of a B row prefetched ahead while packing */
#define G5_NC 4096         /* most columns packed at once (24 MiB of scratch at G5_KC) */

struct g5_job {
    int64_t M, N, K;
    const float *A;
    int64_t lda;
    const void *B;
    ptm_dtype b_dtype;
    int64_t ldb;
    int32_t b_trans;
    float *C;
    int64_t ldc;
    int accumulate;
    struct cpu_epilogue ep; /* applied in registers as the last K chunk is stored */
    /* the slice being packed and multiplied */
    float *panels; /* [n_panels][kc][G5_NR] */
    int64_t n0, nc, k0, kc, n_panels;
    int64_t m_blocks, group; /* tasks: m_blocks x ceil(n_panels / group) */
    int add, last;           /* add to C (a later chunk, or accumulate); the last K chunk */
};

/* 16 elements of row p from k, widened to F32; zero past n. */
static inline __attribute__((always_inline)) CPU_AVX512 __m512 g5_load(ptm_dtype dt, const void *p,
                                                                       int64_t k, int64_t n)
{
    __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
    return cpu_load_wide512(dt, p, k, m);
}

/* Rows col.. col + cols of B ([N, K]) over the chunk's K, transposed 16 x 16 into the panel;
 * dt is a compile-time constant after inlining, so each block stays in registers. */
static inline __attribute__((always_inline)) CPU_AVX512 void
g5_pack_rows(const ptm_dtype dt, const struct g5_job *j, int64_t col, int64_t cols, float *panel)
{
    size_t es = dt == PTM_F32 ? 4 : 2;
    for (int64_t q = 0; q < G5_NR; q += 16) {
        int64_t rows = cols - q < 16 ? cols - q : 16;
        const char *row[16];
        for (int64_t i = 0; i < 16; i++) {
            row[i] = (const char *)j->B + ((col + q + (i < rows ? i : 0)) * j->ldb + j->k0) * es;
        }
        for (int64_t k = 0; k < j->kc; k += 16) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int64_t i = 0; i < 16; i++) {
                _mm_prefetch(row[i] + (k + G5_PF) * es, _MM_HINT_T0);
                r[i] = i < rows ? g5_load(dt, row[i], k, j->kc - k) : _mm512_setzero_ps();
            }
            cpu_tr16_512(r);
#pragma GCC unroll 16
            for (int64_t i = 0; i < 16; i++) {
                if (k + i < j->kc) {
                    _mm512_store_ps(panel + (k + i) * G5_NR + q, r[i]);
                }
            }
        }
    }
}

/* Panel p of the slice: columns n0 + p * G5_NR .. of B over the chunk's K, zero past N. */
static CPU_AVX512 void g5_pack(const struct g5_job *j, int64_t p, float *panel)
{
    int64_t col = j->n0 + p * G5_NR, cols = j->N - col < G5_NR ? j->N - col : G5_NR;
    if (!j->b_trans) {
        size_t es = j->b_dtype == PTM_F32 ? 4 : 2;
        for (int64_t k = 0; k < j->kc; k++) {
            const char *row = (const char *)j->B + ((j->k0 + k) * j->ldb + col) * es;
            for (int v = 0; v < G5_NV; v++) {
                _mm512_store_ps(panel + k * G5_NR + 16 * v,
                                g5_load(j->b_dtype, row, 16 * v, cols - 16 * v));
            }
        }
    } else if (j->b_dtype == PTM_F32) {
        g5_pack_rows(PTM_F32, j, col, cols, panel);
    } else if (j->b_dtype == PTM_BF16) {
        g5_pack_rows(PTM_BF16, j, col, cols, panel);
    } else {
        g5_pack_rows(PTM_F16, j, col, cols, panel);
    }
}

static void g5_pack_task(void *ctx, int64_t p, int32_t thread)
{
    (void)thread;
    const struct g5_job *j = ctx;
    g5_pack(j, p, j->panels + p * j->kc * G5_NR);
}

/* Rows m .. m + mr of a finished tile t into C, columns n .. n + nc: added to C after the first K
 * chunk (or when accumulating), and on the last chunk through the epilogue, bias, activation
 * and residual, while the values are in registers. Not inlined: one copy serves every tile. */
static __attribute__((noinline)) CPU_AVX512 void g5_store(const struct g5_job *j, float (*t)[G5_NR],
                                                          int mr, int64_t m, int64_t n, int64_t nc)
{
    const struct cpu_epilogue *ep = &j->ep;
    const float *bias = j->last && ep->bias ? ep->bias + n : NULL;
    int32_t act = j->last ? ep->act : CPU_ACT_NONE;
    int add_res = j->last && ep->residual && !j->accumulate;
    for (int i = 0; i < mr; i++) {
        float *c = j->C + (m + i) * j->ldc + n;
        const float *res = add_res ? ep->residual + (m + i) * ep->ld_residual + n : NULL;
        for (int64_t v = 0; v < nc; v += 16) {
            __mmask16 mk = nc - v >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (nc - v)) - 1u);
            __m512 r = _mm512_load_ps(t[i] + v);
            if (j->add) {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, c + v));
            }
            if (bias) {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, bias + v));
            }
            r = cpu_act512(act, r);
            if (res) {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, res + v));
            }
            _mm512_mask_storeu_ps(c + v, mk, r);
        }
    }
}

/* MR rows from m times panel p; nc of its columns are valid. */
static inline __attribute__((always_inline)) CPU_AVX512 void
g5_tile(const int MR, const struct g5_job *j, const float *panel, int64_t m, int64_t n, int64_t nc)
{
    __m512 acc[G5_MR][G5_NV];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < G5_NV; v++) {
            acc[i][v] = _mm512_setzero_ps();
        }
    }
    const float *a[G5_MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        a[i] = j->A + (m + i) * j->lda + j->k0;
    }
    for (int64_t k = 0; k < j->kc; k++) {
        __m512 b[G5_NV];
#pragma GCC unroll 4
        for (int v = 0; v < G5_NV; v++) {
            b[v] = _mm512_load_ps(panel + k * G5_NR + 16 * v);
        }
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512 x = _mm512_set1_ps(a[i][k]);
#pragma GCC unroll 4
            for (int v = 0; v < G5_NV; v++) {
                acc[i][v] = _mm512_fmadd_ps(x, b[v], acc[i][v]);
            }
        }
    }
    float t[G5_MR][G5_NR] __attribute__((aligned(64)));
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < G5_NV; v++) {
            _mm512_store_ps(t[i] + 16 * v, acc[i][v]);
        }
    }
    g5_store(j, t, MR, m, n, nc);
}

#define G5_CASE(MR)                                                                                \
    case MR:                                                                                       \
        g5_tile(MR, j, panel, m, n, nc);                                                           \
        break;

static CPU_AVX512 void g5_tile_any(const struct g5_job *j, int mr, const float *panel, int64_t m,
                                   int64_t n, int64_t nc)
{
    switch (mr) {
        G5_CASE(6)
        G5_CASE(5)
        G5_CASE(4)
        G5_CASE(3)
        G5_CASE(2)
        G5_CASE(1)
    default:
        break;
    }
}

static void g5_task(void *ctx, int64_t task, int32_t thread)
{
    (void)thread;
    const struct g5_job *j = ctx;
    int64_t tiles = (j->M + G5_MR - 1) / G5_MR, b = task % j->m_blocks;
    int64_t m0 = b * tiles / j->m_blocks * G5_MR, m1 = (b + 1) * tiles / j->m_blocks * G5_MR;
    m1 = m1 < j->M ? m1 : j->M;
    int64_t p0 = (task / j->m_blocks) * j->group;
    int64_t p1 = p0 + j->group < j->n_panels ? p0 + j->group : j->n_panels;
    for (int64_t p = p0; p < p1; p++) {
        const float *panel = j->panels + p * j->kc * G5_NR;
        int64_t n = j->n0 + p * G5_NR, nc = j->N - n < G5_NR ? j->N - n : G5_NR;
        for (int64_t m = m0; m < m1; m += G5_MR) {
            g5_tile_any(j, m1 - m < G5_MR ? (int)(m1 - m) : G5_MR, panel, m, n, nc);
        }
    }
}

int cpu_gemm_512(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const void *B, ptm_dtype b_dtype, int64_t ldb, int32_t b_trans, float *C,
                 int64_t ldc, int accumulate, const struct cpu_epilogue *ep)
{
    if (ctx->isa < CPU_ISA_AVX512 || M == 0 || N == 0 || K == 0) {
        return 0;
    }
    /* K cut into equal chunks of at most G5_KC, each a multiple of 16 but the last. */
    int64_t chunks = (K + G5_KC - 1) / G5_KC, kc_max = (K + chunks - 1) / chunks;
    kc_max = (kc_max + 15) / 16 * 16;
    int64_t nc_max = N < G5_NC ? N : G5_NC;
    int64_t panels_max = (nc_max + G5_NR - 1) / G5_NR;
    float *panels = cpu_scratch_get(0, (size_t)panels_max * (size_t)kc_max * G5_NR * sizeof(float));
    if (panels == NULL) {
        return 0;
    }
    struct g5_job j = {.M = M,
                       .N = N,
                       .K = K,
                       .A = A,
                       .lda = lda,
                       .B = B,
                       .b_dtype = b_dtype,
                       .ldb = ldb,
                       .b_trans = b_trans,
                       .C = C,
                       .ldc = ldc,
                       .accumulate = accumulate,
                       .panels = panels};
    if (ep != NULL) {
        j.ep = *ep;
    }
    int64_t threads = cpu_pool_size(ctx->pool);
    /* Row blocks of at most G5_MT tiles, as many as a multiple of the threads, so that each
     * thread gets the same number of tiles give or take one. */
    int64_t tiles = (M + G5_MR - 1) / G5_MR;
    j.m_blocks = threads * ((tiles + threads * G5_MT - 1) / (threads * G5_MT));
    for (j.n0 = 0; j.n0 < N; j.n0 += nc_max) {
        j.nc = N - j.n0 < nc_max ? N - j.n0 : nc_max;
        j.n_panels = (j.nc + G5_NR - 1) / G5_NR;
        /* Panel groups only when there are too few row blocks to keep every thread busy. */
        int64_t groups = (4 * threads + j.m_blocks - 1) / j.m_blocks;
        groups = groups < j.n_panels ? groups : j.n_panels;
        j.group = (j.n_panels + groups - 1) / groups;
        for (j.k0 = 0; j.k0 < K; j.k0 += kc_max) {
            j.kc = K - j.k0 < kc_max ? K - j.k0 : kc_max;
            j.add = accumulate || j.k0 > 0;
            j.last = j.k0 + j.kc == K;
            cpu_pool_run(ctx->pool, j.n_panels, g5_pack_task, &j);
            cpu_pool_run(ctx->pool, j.m_blocks * ((j.n_panels + j.group - 1) / j.group), g5_task,
                         &j);
        }
    }
    return 1;
}
