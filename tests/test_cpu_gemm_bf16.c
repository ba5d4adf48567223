/*
 * test_cpu_gemm_bf16.c - the vdpbf16ps prefill GEMM (backends/cpu/cpu_gemm_bf16.c) against a
 * double-precision reference on the BF16 weights (or the F16 weights rounded to BF16) and the
 * BF16-rounded activations (the kernel's exact inputs), over row tails (M not a multiple of 8),
 * column tails (N not a multiple of the 48-column panel), odd K, strided operands and
 * accumulation into C; and which GEMV form an opted-in cpu_gemm takes for decode rows.
 *
 * Tolerance: |err| <= 1e-5 * sum_k |a_k b_k| + 1e-6, as test_cpu_gemm: the products of BF16
 * values are exact in F32 and only the F32 accumulation order differs from the reference.
 */
#include "cpu_test_util.h"

#include <string.h>

static void run(cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, int acc, ptm_dtype dt)
{
    int64_t lda = K + 1, ldb = K + 3, ldc = N + 5;
    float *A = test_randn(M * lda, -1.0f, 1.0f), *B = test_randn(N * ldb, -1.0f, 1.0f);
    float *C = test_randn(M * ldc, -1.0f, 1.0f), *C0 = malloc((size_t)(M * ldc) * 4);
    uint16_t *h = malloc((size_t)((M * lda > N * ldb ? M * lda : N * ldb)) * 2);
    memcpy(C0, C, (size_t)(M * ldc) * 4);
    cr_assert_eq(cpu_convert(ctx, N * ldb, B, PTM_F32, h, dt), PTM_OK);
    cr_assert_eq(cpu_convert(ctx, N * ldb, h, dt, B, PTM_F32), PTM_OK);
    cr_assert_eq(cpu_gemm_bf16(ctx, M, N, K, A, lda, h, dt, ldb, C, ldc, acc, NULL, NULL), 1);
    /* The weights the kernel multiplies: F16 rounded to BF16 (a no-op for BF16). */
    cr_assert_eq(cpu_convert(ctx, N * ldb, B, PTM_F32, h, PTM_BF16), PTM_OK);
    cr_assert_eq(cpu_convert(ctx, N * ldb, h, PTM_BF16, B, PTM_F32), PTM_OK);
    cr_assert_eq(cpu_convert(ctx, M * lda, A, PTM_F32, h, PTM_BF16), PTM_OK);
    cr_assert_eq(cpu_convert(ctx, M * lda, h, PTM_BF16, A, PTM_F32), PTM_OK);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? C0[i * ldc + j] : 0.0, sabs = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)A[i * lda + k] * B[j * ldb + k];
                sabs += fabs((double)A[i * lda + k] * B[j * ldb + k]);
            }
            double err = fabs(C[i * ldc + j] - s);
            cr_assert(err <= 1e-5 * sabs + 1e-6, "M=%lld N=%lld K=%lld C[%lld,%lld] %.8g vs %.8g",
                      (long long)M, (long long)N, (long long)K, (long long)i, (long long)j,
                      C[i * ldc + j], s);
        }
        cr_assert(memcmp(C + i * ldc + N, C0 + i * ldc + N, 5 * 4) == 0, "gap written");
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    free(h);
}

Test(cpu_gemm_bf16, matches_reference_on_row_column_and_k_tails)
{
    if (cpu_isa_best() < CPU_ISA_AVX512 || !cpu_isa_has_bf16()) {
        cr_skip_test("no AVX512-BF16 on this CPU: BF16 weights are widened to F32 instead");
    }
    cpu_ctx ctx = test_ctx(CPU_ISA_AVX512);
    test_seed(9);
    const int64_t shapes[][3] = {{1, 1, 2},    {8, 48, 64},    {9, 49, 65},
                                 {33, 97, 71}, {70, 150, 300}, {13, 5, 1031}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        run(&ctx, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 2), PTM_BF16);
        run(&ctx, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 2), PTM_F16);
    }
    test_ctx_free(&ctx);
}

Test(cpu_gemm_bf16, declines_without_the_isa_or_for_other_weights)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    float a[4] = {0}, c[1] = {0};
    uint16_t b[4] = {0};
    cr_assert_eq(cpu_gemm_bf16(&ctx, 1, 1, 4, a, 4, b, PTM_BF16, 4, c, 1, 0, NULL, NULL), 0);
    test_ctx_free(&ctx);
    ctx = test_ctx(cpu_isa_best());
    cr_assert_eq(cpu_gemm_bf16(&ctx, 1, 1, 4, a, 4, b, PTM_F32, 4, c, 1, 0, NULL, NULL), 0);
    test_ctx_free(&ctx);
}

/* The decode rows (M <= 4) of an opted-in cpu_gemm: BF16 weights take the GEMV's vdpbf16ps
 * form, bit for bit, which differs from the exact form; F16 weights, and BF16 without the
 * opt-in, stay exact. */
Test(cpu_gemm_bf16, opt_in_decode_gemv_rounds_activations_for_bf16_weights_only)
{
    if (cpu_isa_best() < CPU_ISA_AVX512 || !cpu_isa_has_bf16()) {
        cr_skip_test("no AVX512-BF16 on this CPU: BF16 weights are widened to F32 instead");
    }
    cpu_ctx ctx = test_ctx(CPU_ISA_AVX512);
    test_seed(11);
    enum { N = 67, K = 1064 };
    float *A = test_randn(4 * K, -1.0f, 1.0f), *B = test_randn(N * K, -1.0f, 1.0f);
    float C[4 * N], G[4 * N], X[4 * N];
    uint16_t *h = malloc((size_t)(N * K) * 2);
    const ptm_dtype dts[] = {PTM_BF16, PTM_F16};
    for (int64_t M = 1; M <= 4; M++) {
        for (size_t d = 0; d < 2; d++) {
            cr_assert_eq(cpu_convert(&ctx, N * K, B, PTM_F32, h, dts[d]), PTM_OK);
            cr_assert_eq(
                cpu_gemv(&ctx, M, N, K, A, K, h, dts[d], K, X, N, 0, CPU_GEMV_EXACT, NULL, NULL),
                1);
            for (int dot = 0; dot <= 1; dot++) {
                ctx.bf16_dot = dot;
                cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, h, dts[d], K, 1, C, N, NULL), PTM_OK);
                int rounded = dot && dts[d] == PTM_BF16;
                if (rounded) {
                    cr_assert_eq(cpu_gemv(&ctx, M, N, K, A, K, h, dts[d], K, G, N, 0,
                                          CPU_GEMV_DPBF16, NULL, NULL),
                                 1);
                }
                cr_assert(memcmp(C, rounded ? G : X, (size_t)(M * N) * 4) == 0,
                          "M=%lld %s bf16_dot=%d: not the %s GEMV", (long long)M,
                          ptm_dtype_name(dts[d]), dot, rounded ? "vdpbf16ps" : "exact");
                cr_assert(!rounded || memcmp(C, X, (size_t)(M * N) * 4) != 0,
                          "M=%lld: the vdpbf16ps form gave the exact results", (long long)M);
            }
        }
    }
    free(A);
    free(B);
    free(h);
    test_ctx_free(&ctx);
}
