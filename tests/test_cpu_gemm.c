/*
 * test_cpu_gemm.c - cpu_gemm (backends/cpu/cpu_gemm.c) against a double-precision reference on
 * odd shapes, for the small-M kernels, the AVX-512 large-M engine and the OpenBLAS tiles, with
 * every epilogue, F32, BF16 and F16 weights, and the scalar and the best SIMD path.
 *
 * Tolerance: |err| <= 1e-5 * sum_k |a_ik b_jk| + 1e-6. F32 accumulation over K terms has a
 * worst-case bound of K * 2^-24 * sum|ab|; for random-sign data the error grows like
 * sqrt(K) * 2^-24, well under 1e-5 * sum|ab| for K of a few thousand. Half-precision weights are
 * compared against the same reference on the widened weights, so the same bound holds.
 */
#include "cpu_test_util.h"

#include <stdio.h>
#include <string.h>

static double ref_act(int32_t act, double x)
{
    switch (act) {
    case CPU_ACT_GELU:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case CPU_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case CPU_ACT_RELU:
        return x > 0 ? x : 0;
    case CPU_ACT_SILU:
        return x / (1.0 + exp(-x));
    default:
        return x;
    }
}

/* b is F32 here (already widened); b_trans as in cpu_gemm. */
static void check_gemm(int64_t M, int64_t N, int64_t K, const float *A, const float *B,
                       int32_t b_trans, const struct cpu_epilogue *ep, const float *res_copy,
                       const float *C, const char *what)
{
    double worst = 0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0, sabs = 0;
            for (int64_t k = 0; k < K; k++) {
                double b = b_trans ? B[j * K + k] : B[k * N + j];
                s += (double)A[i * K + k] * b;
                sabs += fabs((double)A[i * K + k] * b);
            }
            if (ep && ep->bias) {
                s += ep->bias[j];
            }
            s = ref_act(ep ? ep->act : CPU_ACT_NONE, s);
            if (res_copy) {
                s += res_copy[i * N + j];
            }
            double err = fabs(C[i * N + j] - s);
            double tol = 1e-5 * (sabs + 1.0) + 1e-6;
            if (err > tol) {
                cr_assert_fail("%s: M=%lld N=%lld K=%lld C[%lld,%lld]=%.9g expected %.9g (err %.3g "
                               "tol %.3g)",
                               what, (long long)M, (long long)N, (long long)K, (long long)i,
                               (long long)j, C[i * N + j], s, err, tol);
            }
            worst = err > worst ? err : worst;
        }
    }
}

static const int64_t shapes[][3] = {
    {1, 1, 1},    {1, 37, 19},  {3, 17, 5},    {16, 100, 384}, {5, 129, 70},
    {31, 33, 45}, {32, 70, 37}, {100, 70, 37}, {129, 531, 67}, {300, 40, 1536},
};

static void run_case(int32_t isa, int64_t M, int64_t N, int64_t K, int32_t b_trans, ptm_dtype dt,
                     int32_t act, int use_bias, int use_res)
{
    cpu_ctx ctx = test_ctx(isa);
    float *A = test_randn(M * K, -1, 1), *B = test_randn(N * K, -1, 1);
    float *bias = use_bias ? test_randn(N, -1, 1) : NULL;
    float *res = use_res ? test_randn(M * N, -1, 1) : NULL;
    float *C = test_zeros(M * N);
    uint16_t *Bh = malloc((size_t)(N * K) * 2 + 2);
    const void *Bp = B;
    if (dt != PTM_F32) {
        cr_assert_eq(cpu_convert(&ctx, N * K, B, PTM_F32, Bh, dt), PTM_OK);
        cr_assert_eq(cpu_convert(&ctx, N * K, Bh, dt, B, PTM_F32), PTM_OK);
        Bp = Bh;
    }
    struct cpu_epilogue ep = {bias, act, res, N};
    int64_t ldb = b_trans ? K : N;
    cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, Bp, dt, ldb, b_trans, C, N, &ep), PTM_OK, "%s",
                 ptm_last_error());
    char what[96];
    snprintf(what, sizeof(what), "isa=%s trans=%d dtype=%s act=%d bias=%d res=%d",
             cpu_isa_name(isa), b_trans, ptm_dtype_name(dt), act, use_bias, use_res);
    check_gemm(M, N, K, A, B, b_trans, &ep, res, C, what);
    free(A);
    free(B);
    free(bias);
    free(res);
    free(C);
    free(Bh);
    test_ctx_free(&ctx);
}

Test(cpu_gemm, f32_matches_reference_on_odd_shapes)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(1);
    for (int t = 0; t < n; t++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            for (int32_t tr = 0; tr < 2; tr++) {
                run_case(isas[t], shapes[s][0], shapes[s][1], shapes[s][2], tr, PTM_F32,
                         CPU_ACT_NONE, 0, 0);
            }
        }
    }
}

Test(cpu_gemm, fused_bias_activation_and_residual_match_reference)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(2);
    for (int t = 0; t < n; t++) {
        for (int32_t act = CPU_ACT_NONE; act <= CPU_ACT_SILU; act++) {
            run_case(isas[t], 7, 45, 33, 1, PTM_F32, act, 1, act % 2);
            run_case(isas[t], 67, 45, 33, 1, PTM_F32, act, 1, 1 - act % 2);
            /* Wide and short: the OpenBLAS tiles cut columns, the last ones narrower. */
            run_case(isas[t], 130, 300, 20, 1, PTM_F32, act, 1, act % 2);
        }
    }
}

Test(cpu_gemm, bf16_and_f16_weights_match_reference_on_widened_weights)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(3);
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < 2; h++) {
            ptm_dtype dt = h ? PTM_F16 : PTM_BF16;
            run_case(isas[t], 1, 37, 1100, 1, dt, CPU_ACT_NONE, 1, 0);
            run_case(isas[t], 16, 50, 600, 1, dt, CPU_ACT_SILU, 0, 0);
            run_case(isas[t], 40, 50, 70, 1, dt, CPU_ACT_GELU, 1, 1);
            run_case(isas[t], 40, 50, 70, 0, dt, CPU_ACT_NONE, 0, 0);
        }
    }
}

Test(cpu_gemm, residual_may_alias_output_without_activation)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(4);
    for (int t = 0; t < n; t++) {
        for (int64_t M = 3; M <= 65; M += 62) {
            cpu_ctx ctx = test_ctx(isas[t]);
            int64_t N = 29, K = 41;
            float *A = test_randn(M * K, -1, 1), *B = test_randn(N * K, -1, 1);
            float *bias = test_randn(N, -1, 1), *C = test_randn(M * N, -1, 1);
            float *res = malloc((size_t)(M * N) * sizeof(float));
            memcpy(res, C, (size_t)(M * N) * sizeof(float));
            struct cpu_epilogue ep = {bias, CPU_ACT_NONE, C, N};
            cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, B, PTM_F32, K, 1, C, N, &ep), PTM_OK);
            check_gemm(M, N, K, A, B, 1, &ep, res, C, "aliased residual");
            ep.act = CPU_ACT_GELU;
            cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, B, PTM_F32, K, 1, C, N, &ep), PTM_E_INVAL);
            cr_assert_not_null(strstr(ptm_last_error(), "residual aliases"));
            free(A);
            free(B);
            free(bias);
            free(C);
            free(res);
            test_ctx_free(&ctx);
        }
    }
}

Test(cpu_gemm, rejects_unsupported_weight_dtype)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    float a = 1, c = 0;
    int8_t b = 1;
    cr_assert_eq(cpu_gemm(&ctx, 1, 1, 1, &a, 1, &b, PTM_I8, 1, 1, &c, 1, NULL), PTM_E_UNSUPPORTED);
    cr_assert_not_null(strstr(ptm_last_error(), "I8"));
    test_ctx_free(&ctx);
}

Test(cpu_gemm, rejects_stride_shorter_than_row)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    float a[2] = {1, 2}, b[4] = {0}, c = 0;
    cr_assert_eq(cpu_gemm(&ctx, 1, 1, 2, a, 1, b, PTM_F32, 2, 1, &c, 1, NULL), PTM_E_INVAL);
    cr_assert_not_null(strstr(ptm_last_error(), "lda=1"));
    test_ctx_free(&ctx);
}

Test(cpu_gemm, strided_operands_leave_gaps_untouched)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(5);
    const int64_t rows[] = {5, 16, 28, 70}; /* dot, outer 16 and 32 lanes, large M */
    for (int t = 0; t < n; t++) {
        for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
            int64_t M = rows[r];
            cpu_ctx ctx = test_ctx(isas[t]);
            int64_t N = 19, K = 23, lda = 30, ldb = 27, ldc = 25;
            float *A = test_randn(M * lda, -1, 1), *B = test_randn(N * ldb, -1, 1);
            float *C = test_zeros(M * ldc);
            for (int64_t i = 0; i < M * ldc; i++) {
                C[i] = 7.0f;
            }
            cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, lda, B, PTM_F32, ldb, 1, C, ldc, NULL), PTM_OK);
            float *Ad = test_zeros(M * K), *Bd = test_zeros(N * K), *Cd = test_zeros(M * N);
            for (int64_t i = 0; i < M; i++) {
                memcpy(Ad + i * K, A + i * lda, (size_t)K * 4);
                memcpy(Cd + i * N, C + i * ldc, (size_t)N * 4);
                for (int64_t j = N; j < ldc; j++) {
                    cr_assert_eq(C[i * ldc + j], 7.0f);
                }
            }
            for (int64_t j = 0; j < N; j++) {
                memcpy(Bd + j * K, B + j * ldb, (size_t)K * 4);
            }
            check_gemm(M, N, K, Ad, Bd, 1, NULL, NULL, Cd, "strided");
            free(A);
            free(B);
            free(C);
            free(Ad);
            free(Bd);
            free(Cd);
            test_ctx_free(&ctx);
        }
    }
}

Test(cpu_gemm, small_m_kernels_match_reference_on_every_row_count_and_edge)
{
    /* M = 1..31 crosses both small-M kernels (dot product, outer product with 16 or 32 lanes);
     * N = 61 leaves partial column tiles on each thread, K = 301 is odd and spans K chunks, and
     * K = 1536 makes F32 rows a bad L1 stride so the outer kernel packs them as it widens half
     * precision, or at M <= 16 (K = 512 too) reads 12 of them in place. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(6);
    const ptm_dtype dts[] = {PTM_F32, PTM_BF16, PTM_F16};
    for (int t = 0; t < n; t++) {
        for (int64_t M = 1; M < 32; M++) {
            ptm_dtype dt = dts[M % 3];
            int32_t act = (int32_t)(M % 5);
            run_case(isas[t], M, 61, 301, 1, dt, act, (int)(M % 2), act == CPU_ACT_NONE);
        }
        for (size_t d = 0; d < 3; d++) {
            run_case(isas[t], 16, 50, 1536, 1, dts[d], CPU_ACT_GELU, 1, 1);
            run_case(isas[t], 27, 50, 1536, 1, dts[d], CPU_ACT_NONE, 0, 1);
            run_case(isas[t], 14, 40, 512, 1, dts[d], CPU_ACT_NONE, 1, 0);
            run_case(isas[t], 29, 25, 7, 1, dts[d], CPU_ACT_RELU, 1, 0);
            run_case(isas[t], 15, 24, 16, 1, dts[d], CPU_ACT_NONE, 0, 1);
        }
    }
}

Test(cpu_gemm, large_m_engine_covers_k_chunks_n_slices_and_edges)
{
    /* On AVX-512, M >= 32 runs cpu_gemm_512: M = 200 is 33 tiles of 6 rows and one of 2, in four
     * row blocks; N = 4100 packs two slices, the second a 4-column panel; K = 3100 runs in
     * three chunks, the later ones adding to C, the epilogue after the last; M = 33..38 ends in
     * every tile height, with panel groups splitting N between the threads. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(8);
    const ptm_dtype dts[] = {PTM_F32, PTM_BF16, PTM_F16};
    for (int t = 0; t < n; t++) {
        for (int32_t tr = 0; tr < 2; tr++) {
            run_case(isas[t], 200, 4100, 20, tr, PTM_F32, CPU_ACT_NONE, 1, 0);
            run_case(isas[t], 97, 130, 3100, tr, dts[1 + tr], CPU_ACT_GELU, 1, 1);
            for (int64_t M = 33; M <= 38; M++) {
                run_case(isas[t], M, 200, 37, tr, dts[M % 3], (int32_t)(M % 5), 1, (int)(M % 2));
            }
        }
        /* C accumulating across K chunks on top of the residual it already holds. */
        cpu_ctx ctx = test_ctx(isas[t]);
        int64_t M = 70, N = 90, K = 1700;
        float *A = test_randn(M * K, -1, 1), *B = test_randn(N * K, -1, 1);
        float *C = test_randn(M * N, -1, 1), *res = malloc((size_t)(M * N) * sizeof(float));
        memcpy(res, C, (size_t)(M * N) * sizeof(float));
        struct cpu_epilogue ep = {NULL, CPU_ACT_NONE, C, N};
        cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, B, PTM_F32, K, 1, C, N, &ep), PTM_OK);
        check_gemm(M, N, K, A, B, 1, &ep, res, C, "aliased residual, K chunks");
        /* Without a pool every task runs on the caller, one row block per 16 tiles. */
        cpu_ctx alone = {NULL, isas[t], 0};
        memcpy(C, res, (size_t)(M * N) * sizeof(float));
        cr_assert_eq(cpu_gemm(&alone, M, N, K, A, K, B, PTM_F32, K, 1, C, N, &ep), PTM_OK);
        check_gemm(M, N, K, A, B, 1, &ep, res, C, "no pool");
        free(A);
        free(B);
        free(C);
        free(res);
        test_ctx_free(&ctx);
    }
}

Test(cpu_gemm, small_m_residual_may_alias_output_in_every_kernel)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(7);
    const int64_t rows[] = {1, 8, 16, 28};
    for (int t = 0; t < n; t++) {
        for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
            cpu_ctx ctx = test_ctx(isas[t]);
            int64_t M = rows[r], N = 53, K = 133;
            float *A = test_randn(M * K, -1, 1), *B = test_randn(N * K, -1, 1);
            float *C = test_randn(M * N, -1, 1);
            float *res = malloc((size_t)(M * N) * sizeof(float));
            memcpy(res, C, (size_t)(M * N) * sizeof(float));
            struct cpu_epilogue ep = {NULL, CPU_ACT_NONE, C, N};
            cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, B, PTM_F32, K, 1, C, N, &ep), PTM_OK);
            check_gemm(M, N, K, A, B, 1, &ep, res, C, "aliased residual, small M");
            free(A);
            free(B);
            free(C);
            free(res);
            test_ctx_free(&ctx);
        }
    }
}
