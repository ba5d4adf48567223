/*
 * cpu_q8_outer.c - the Q8_0 matmul for many activation rows (batched decode, prefill) as an
 * outer product: C[M, N] (+)= A[M, K] . B^T with B [N, K] in Q8_0 (layout in ptm_tensor.h) and
 * A in F32, on AVX512-VNNI.
 *
 * The rows of A become the 16 lanes of a zmm, as in cpu_gemm.c's F32 outer-product kernel. A
 * is quantized per block of 32 as cpu_q8.c quantizes it (ad = amax / 127, q = rint(x * 127 /
 * amax), clamped to +-127) and packed once per call, 16 rows at a time, as [block][group of 4
 * k][row] dwords, beside each row's block scale and its correction -128 * sum(q). Each vpdpbusd
 * then takes four bytes of one weight row broadcast to every lane (made unsigned by xor 0x80,
 * which the correction undoes) against the four activation bytes of each of 16 rows: 64 exact
 * products, none wasted on a horizontal sum. Per block of 32, a tile of QO_NR weight rows has
 * QO_NR int32 accumulators (integer, so exact) which then enter the F32 accumulators once:
 * acc = fma(float(sum), ad * dw, acc). cpu_q8.c's kernel instead sums 4-element partial dots
 * per lane and needs one conversion and FMA per vpdpbusd; this one needs one per 8.
 *
 * Numerics, defined per output element (m, n): for each block b in order, the exact integer dot
 * s_b of the 32 activation and weight quants; acc = fmaf((float)s_b, ad[m][b] * dw[n][b], acc)
 * from acc = 0; C = acc. The tests hold the kernel to that bit for bit. It differs from
 * cpu_q8.c's lane order only in F32 rounding, well inside the int8 error itself.
 *
 * Threads split N into chunks whose weights fit L2, each chunk computed for every row block
 * before the next, so a weight byte is read from memory once per call; the first row block
 * prefetches each next tile's rows as it goes. This file knows no model.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>
#include <string.h>

#define QB       32 /* elements per Q8_0 block */
#define QO_ROWS  16 /* activation rows per packed block: the zmm lanes */
#define QO_NR    12 /* weight rows per tile: 2 x 12 accumulators stay in registers */
#define QO_BLK   (8 * 64 + 64 + 64) /* packed bytes per K block: quants, scales, corrections */
#define QO_L2    (256 << 10)        /* weight bytes per chunk, kept in L2 across the row blocks */
#define CPU_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

struct qo_job {
    int64_t M, N, K, nb;
    const float *A;
    int64_t lda;
    const unsigned char *B;
    size_t row_bytes;
    unsigned char *pack; /* ceil(M / 16) x nb x QO_BLK bytes */
    float *C;
    int64_t ldc;
    int accumulate;
    int64_t chunk; /* weight rows per task */
    cpu_cols_fn epi;
    void *epi_arg;
};

/* Quantize and pack rows [16 mb, 16 mb + 16) of A; rows past M are zero (scale 0). */
static CPU_VNNI void qo_pack_block(const struct qo_job *j, int64_t mb)
{
    unsigned char *dst = j->pack + (size_t)mb * (size_t)j->nb * QO_BLK;
    if (j->M - mb * QO_ROWS < QO_ROWS) { /* a full block writes every byte */
        memset(dst, 0, (size_t)j->nb * QO_BLK);
    }
    for (int r = 0; r < QO_ROWS && mb * QO_ROWS + r < j->M; r++) {
        const float *x = j->A + (mb * QO_ROWS + r) * j->lda;
        for (int64_t b = 0; b < j->nb; b++) {
            unsigned char *blk = dst + (size_t)b * QO_BLK;
            int8_t q[QB];
            float d = cpu_q8_act_block512(x + b * QB, q);
            int32_t sum = 0;
            for (int g = 0; g < 8; g++) {
                memcpy(blk + g * 64 + r * 4, q + 4 * g, 4);
            }
            for (int i = 0; i < QB; i++) {
                sum += q[i];
            }
            int32_t corr = -128 * sum;
            memcpy(blk + 512 + r * 4, &d, 4);
            memcpy(blk + 576 + r * 4, &corr, 4);
        }
    }
}

static void qo_pack_range(void *arg, int64_t lo, int64_t hi)
{
    for (int64_t mb = lo; mb < hi; mb++) {
        qo_pack_block(arg, mb);
    }
}

/* Weight rows [n, n + NR) against the 16 packed rows at p: C^T into ct[c * 16 + lane]. With pf,
 * its pf_lines cache lines are prefetched, spread over the blocks. */
static inline __attribute__((always_inline)) CPU_VNNI void
qo_tile(const int NR, const struct qo_job *j, const unsigned char *p, int64_t n, float *ct,
        const char *pf, int64_t pf_lines)
{
    int64_t pf_per = (pf_lines + j->nb - 1) / j->nb;
    const unsigned char *w[QO_NR];
    const uint16_t *dw[QO_NR];
    for (int c = 0; c < NR; c++) {
        dw[c] = (const uint16_t *)(j->B + (size_t)(n + c) * j->row_bytes);
        w[c] = (const unsigned char *)(dw[c] + j->nb);
    }
    const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
    __m512 acc[QO_NR];
#pragma GCC unroll 12
    for (int c = 0; c < NR; c++) {
        acc[c] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < j->nb; b++, p += QO_BLK) {
        for (int64_t l = b * pf_per; pf != NULL && l < (b + 1) * pf_per && l < pf_lines; l++) {
            _mm_prefetch(pf + 64 * l, _MM_HINT_T0);
        }
        __m512i corr = _mm512_load_si512((const void *)(p + 576)), s[QO_NR];
#pragma GCC unroll 12
        for (int c = 0; c < NR; c++) {
            s[c] = corr;
        }
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i av = _mm512_load_si512((const void *)(p + g * 64));
#pragma GCC unroll 12
            for (int c = 0; c < NR; c++) {
                int32_t q4;
                memcpy(&q4, w[c] + b * QB + 4 * g, 4);
                __m512i wv = _mm512_xor_si512(_mm512_set1_epi32(q4), flip);
                s[c] = _mm512_dpbusd_epi32(s[c], wv, av);
            }
        }
        __m512 ad = _mm512_load_ps((const float *)(p + 512));
#pragma GCC unroll 12
        for (int c = 0; c < NR; c++) {
            __m512 scale = _mm512_mul_ps(ad, _mm512_set1_ps(_cvtsh_ss(dw[c][b])));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[c]), scale, acc[c]);
        }
    }
#pragma GCC unroll 12
    for (int c = 0; c < NR; c++) {
        _mm512_store_ps(ct + c * 16, acc[c]);
    }
}

#define QO_CASE(NR)                                                                                \
    case NR:                                                                                       \
        qo_tile(NR, j, p, n, ct, pf, pf_lines);                                                    \
        break;

static CPU_VNNI void qo_tile_any(int nr, const struct qo_job *j, const unsigned char *p, int64_t n,
                                 float *ct, const char *pf, int64_t pf_lines)
{
    switch (nr) {
        QO_CASE(12)
        QO_CASE(11)
        QO_CASE(10)
        QO_CASE(9)
        QO_CASE(8)
        QO_CASE(7)
        QO_CASE(6)
        QO_CASE(5)
        QO_CASE(4)
        QO_CASE(3)
        QO_CASE(2)
    default:
        qo_tile(1, j, p, n, ct, pf, pf_lines);
        break;
    }
}

/* The tile's C^T (ct[q * 16 + r]) into rows [m, m + rows) x columns [n, n + nr) of C. */
static CPU_VNNI void qo_store(const struct qo_job *j, const float *ct, int64_t m, int64_t rows,
                              int64_t n, int nr)
{
    __m512 r[16];
    for (int q = 0; q < 16; q++) {
        r[q] = q < nr ? _mm512_load_ps(ct + q * 16) : _mm512_setzero_ps();
    }
    cpu_tr16_512(r);
    for (int64_t i = 0; i < rows; i++) {
        float *c = j->C + (m + i) * j->ldc + n;
        cpu_store512(c, j->accumulate ? _mm512_add_ps(r[i], cpu_load512(c, nr)) : r[i], nr);
    }
}

static void qo_task(void *ctx, int64_t task, int32_t thread)
{
    (void)thread;
    const struct qo_job *j = ctx;
    int64_t n0 = task * j->chunk;
    int64_t n1 = n0 + j->chunk < j->N ? n0 + j->chunk : j->N;
    float ct[QO_NR * QO_ROWS] __attribute__((aligned(64)));
    for (int64_t mb = 0; mb * QO_ROWS < j->M; mb++) {
        const unsigned char *p = j->pack + (size_t)mb * (size_t)j->nb * QO_BLK;
        int64_t rows = j->M - mb * QO_ROWS < QO_ROWS ? j->M - mb * QO_ROWS : QO_ROWS;
        for (int64_t n = n0; n < n1; n += QO_NR) {
            int nr = n1 - n < QO_NR ? (int)(n1 - n) : QO_NR;
            /* The first row block reads the chunk from memory: the next tile's rows (one
             * contiguous run) are fetched while this one computes, where the 12 short
             * interleaved row streams left the hardware prefetcher idle (BERT int8 at batch 1,
             * weights cold: the up projection read 2.6 GB/s). Later blocks find them in L2. */
            int64_t next = n + nr < n1 ? n + nr : n1, nn = n1 - next < QO_NR ? n1 - next : QO_NR;
            const char *pf =
                mb == 0 && nn > 0 ? (const char *)j->B + (size_t)next * j->row_bytes : NULL;
            qo_tile_any(nr, j, p, n, ct, pf, ((int64_t)j->row_bytes * nn + 63) / 64);
            qo_store(j, ct, mb * QO_ROWS, rows, n, nr);
        }
        /* While the block's 16 rows of this chunk are still in L1/L2: after the whole chunk
         * they are megabytes behind, and bias and GELU were a pass of their own over memory
         * (9% of BERT int8 at batch 32). */
        if (j->epi != NULL && n1 > n0) {
            j->epi(j->epi_arg, mb * QO_ROWS, mb * QO_ROWS + rows, n0, n1);
        }
    }
}

int cpu_q8_outer_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const void *B, float *C, int64_t ldc, int accumulate,
                      cpu_cols_fn epi, void *epi_arg)
{
    if (ctx->isa < CPU_ISA_AVX512 || !cpu_isa_has_vnni() || K % QB != 0 || K == 0 || M <= 0) {
        return 0;
    }
    struct qo_job j = {M,    N, K,   K / QB,     A, lda, B,      cpu_q8_row_bytes(K),
                       NULL, C, ldc, accumulate, 0, epi, epi_arg};
    int64_t mblocks = (M + QO_ROWS - 1) / QO_ROWS;
    j.pack = cpu_scratch_get(0, (size_t)mblocks * (size_t)j.nb * QO_BLK);
    if (j.pack == NULL) {
        return 0;
    }
    int64_t n_threads = cpu_pool_size(ctx->pool);
    /* Chunks of whole tiles that fit L2, and at least two per thread to even out the load. */
    int64_t fit = (int64_t)(QO_L2 / j.row_bytes) / QO_NR * QO_NR;
    int64_t even = ((N + 2 * n_threads - 1) / (2 * n_threads) + QO_NR - 1) / QO_NR * QO_NR;
    j.chunk = fit < QO_NR ? QO_NR : (fit < even ? fit : even);
    cpu_pool_range(mblocks > 1 ? ctx->pool : NULL, mblocks, 1, qo_pack_range, &j);
    cpu_pool_run(ctx->pool, (N + j.chunk - 1) / j.chunk, qo_task, &j);
    return 1;
}
