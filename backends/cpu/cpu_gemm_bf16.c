/*
 * cpu_gemm_bf16.c - the prefill GEMM for BF16 weights on AVX512-BF16: C[M, N] (+)= A[M, K] .
 * B^T with B [N, K] BF16 rows (nn.Linear layout) and A F32, on vdpbf16ps, which multiplies
 * BF16 pairs into F32 at twice the F32 FMA rate on Zen 4. F16 weights take the same path,
 * rounded to BF16 (nearest even) as their panel is packed: Zen 4 has no F16 dot product.
 *
 * A is rounded to BF16 once per call (round to nearest even, K padded to even with a zero) into
 * the caller's scratch, as PyTorch does for a bf16 model, whose activations are bf16; the
 * products are exact and accumulate in F32. Each pool task takes a panel of GB_NC columns
 * (rows of B), packs it into its thread's panel as [K / 2][GB_NC] BF16 pairs, so one zmm holds
 * the pair k of 16 columns, and walks all of M in tiles of GB_MR rows: every k pair
 * broadcasts A's pair of each row and runs GB_MR x GB_NV vdpbf16ps into 24 accumulators whose
 * lanes are columns of C, with no horizontal sums; the panel stays in L2 while A streams.
 * Epilogues run per panel through the caller's cpu_cols_fn. This file knows no model.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <string.h>

#define GB_NV 3            /* zmm column vectors per tile */
#define GB_NC (16 * GB_NV) /* columns per panel */
#define GB_MR 8            /* rows of A per tile */

struct gb_job {
    int64_t M, N, K, kp; /* kp: K / 2 rounded up, pairs per row */
    const uint32_t *a;   /* A as BF16 pairs, M rows of kp words */
    uint32_t *panels;    /* one packed panel per pool thread, by thread index */
    const uint16_t *B;
    int f16; /* B holds F16, rounded to BF16 when packed */
    int64_t ldb;
    float *C;
    int64_t ldc;
    int accumulate;
    cpu_cols_fn epi;
    void *epi_arg;
};

/* Rows of A to BF16 pairs; the odd tail element pairs with zero. */
static CPU_AVX512BF16 void gb_convert_rows(const float *A, int64_t lda, int64_t rows, int64_t K,
                                           int64_t kp, uint32_t *out)
{
    for (int64_t m = 0; m < rows; m++) {
        const float *x = A + m * lda;
        uint32_t *o = out + m * kp;
        for (int64_t k = 0; k < 2 * kp; k += 32) {
            int64_t n0 = K - k, n1 = K - k - 16;
            __m512 x0 = _mm512_maskz_loadu_ps(
                n0 >= 16 ? 0xffff : (__mmask16)((1u << (n0 > 0 ? n0 : 0)) - 1u), x + k);
            __m512 x1 = _mm512_maskz_loadu_ps(
                n1 >= 16 ? 0xffff : (__mmask16)((1u << (n1 > 0 ? n1 : 0)) - 1u), x + k + 16);
            __m512i p = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
            int64_t words = kp - k / 2 < 16 ? kp - k / 2 : 16;
            _mm512_mask_storeu_epi32(o + k / 2, (__mmask16)((1u << words) - 1u), p);
        }
    }
}

struct gb_conv {
    const float *A;
    int64_t lda, K, kp;
    uint32_t *out;
};

static void gb_convert_task(void *arg, int64_t lo, int64_t hi)
{
    const struct gb_conv *c = arg;
    gb_convert_rows(c->A + lo * c->lda, c->lda, hi - lo, c->K, c->kp, c->out + lo * c->kp);
}

/* An F16 row of K elements as kp BF16 pairs into panel column q (stride GB_NC words); the odd
 * tail element pairs with zero, as in gb_convert_rows. */
static CPU_AVX512BF16 void gb_pack_f16(const uint16_t *row, int64_t K, int64_t kp, uint32_t *col)
{
    for (int64_t k = 0; k < 2 * kp; k += 32) {
        int64_t n = K - k < 32 ? K - k : 32;
        __m512i h = _mm512_maskz_loadu_epi16((__mmask32)(n >= 32 ? ~0u : (1u << n) - 1u), row + k);
        __m512 x0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        __m512 x1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
        uint32_t w[16];
        _mm512_storeu_si512((void *)w, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        int64_t words = kp - k / 2 < 16 ? kp - k / 2 : 16;
        for (int64_t i = 0; i < words; i++) {
            col[(k / 2 + i) * GB_NC] = w[i];
        }
    }
}

/* Columns [n0, n0 + nc) of B into panel[p * GB_NC + q] (pair p of column q); the rest zero. */
static void gb_pack(const struct gb_job *j, int64_t n0, int64_t nc, uint32_t *panel)
{
    for (int64_t q = 0; q < GB_NC; q++) {
        if (q >= nc) {
            for (int64_t p = 0; p < j->kp; p++) {
                panel[p * GB_NC + q] = 0;
            }
            continue;
        }
        const uint16_t *row = j->B + (n0 + q) * j->ldb;
        if (j->f16) {
            gb_pack_f16(row, j->K, j->kp, panel + q);
            continue;
        }
        for (int64_t p = 0; p < j->K / 2; p++) {
            panel[p * GB_NC + q] = (uint32_t)row[2 * p] | (uint32_t)row[2 * p + 1] << 16;
        }
        if (j->K % 2 != 0) {
            panel[(j->kp - 1) * GB_NC + q] = row[j->K - 1];
        }
    }
}

/* MR rows from m times the panel's columns, stored to C (nc of GB_NC valid). */
static inline __attribute__((always_inline)) CPU_AVX512BF16 void
gb_tile(const int MR, const struct gb_job *j, const uint32_t *panel, int64_t m, int64_t n0,
        int64_t nc)
{
    __m512 acc[GB_MR][GB_NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 3
        for (int v = 0; v < GB_NV; v++) {
            acc[i][v] = _mm512_setzero_ps();
        }
    }
    const uint32_t *a = j->a + m * j->kp;
    for (int64_t p = 0; p < j->kp; p++) {
        __m512i b[GB_NV];
#pragma GCC unroll 3
        for (int v = 0; v < GB_NV; v++) {
            b[v] = _mm512_loadu_si512((const void *)(panel + p * GB_NC + 16 * v));
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512i ai = _mm512_set1_epi32((int)a[i * j->kp + p]);
#pragma GCC unroll 3
            for (int v = 0; v < GB_NV; v++) {
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)ai, (__m512bh)b[v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        float *c = j->C + (m + i) * j->ldc + n0;
#pragma GCC unroll 3
        for (int v = 0; v < GB_NV; v++) {
            int64_t left = nc - 16 * v;
            if (left <= 0) {
                break;
            }
            __mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512 r = acc[i][v];
            if (j->accumulate) {
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, c + 16 * v));
            }
            _mm512_mask_storeu_ps(c + 16 * v, mk, r);
        }
    }
}

#define GB_CASE(MR)                                                                                \
    case MR:                                                                                       \
        gb_tile(MR, j, panel, m, n0, nc);                                                          \
        break;

static CPU_AVX512BF16 void gb_tile_any(const struct gb_job *j, int mr, const uint32_t *panel,
                                       int64_t m, int64_t n0, int64_t nc)
{
    switch (mr) {
        GB_CASE(8)
        GB_CASE(7)
        GB_CASE(6)
        GB_CASE(5)
        GB_CASE(4)
        GB_CASE(3)
        GB_CASE(2)
        GB_CASE(1)
    default:
        break;
    }
}

static void gb_task(void *ctx, int64_t task, int32_t thread)
{
    const struct gb_job *j = ctx;
    int64_t n0 = task * GB_NC, nc = j->N - n0 < GB_NC ? j->N - n0 : GB_NC;
    uint32_t *panel = j->panels + (size_t)thread * (size_t)j->kp * GB_NC;
    gb_pack(j, n0, nc, panel);
    for (int64_t m = 0; m < j->M; m += GB_MR) {
        gb_tile_any(j, j->M - m < GB_MR ? (int)(j->M - m) : GB_MR, panel, m, n0, nc);
    }
    if (j->epi != NULL) {
        j->epi(j->epi_arg, 0, j->M, n0, n0 + nc);
    }
}

int cpu_gemm_bf16(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const void *B, ptm_dtype b_dtype, int64_t ldb, float *C, int64_t ldc,
                  int accumulate, cpu_cols_fn epi, void *epi_arg)
{
    if (ctx->isa < CPU_ISA_AVX512 || !cpu_isa_has_bf16() || K < 2 ||
        (b_dtype != PTM_BF16 && b_dtype != PTM_F16)) {
        return 0;
    }
    struct gb_job j = {M,   N, K,   (K + 1) / 2, NULL, NULL,   B, b_dtype == PTM_F16,
                       ldb, C, ldc, accumulate,  epi,  epi_arg};
    /* The caller's scratch holds A's pairs, then one panel per pool thread. */
    size_t a_words = ((size_t)M * (size_t)j.kp + 15) / 16 * 16;
    size_t panel_words = (size_t)j.kp * GB_NC;
    int64_t n_threads = cpu_pool_size(ctx->pool);
    uint32_t *s = cpu_scratch_get(0, (a_words + (size_t)n_threads * panel_words) * 4);
    if (s == NULL) {
        return 0;
    }
    j.a = s;
    j.panels = s + a_words;
    struct gb_conv conv = {A, lda, K, j.kp, s};
    cpu_pool_range(ctx->pool, M, 8, gb_convert_task, &conv);
    cpu_pool_run(ctx->pool, (N + GB_NC - 1) / GB_NC, gb_task, &j);
    return 1;
}
