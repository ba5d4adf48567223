/*
 * test_cpu_gemv.c - the decode GEMV (backends/cpu/cpu_gemv.c) against a double-precision
 * reference on the widened weights, for M = 1..4, F32 / BF16 / F16 weights, K with and without
 * a tail past whole 32-element chunks, N not a multiple of the row step, strided operands and
 * accumulation into C, rows that start past a 64-byte boundary; and its vdpbf16ps form, whose
 * activations are rounded to BF16.
 *
 * Tolerances. Exact form: |err| <= 1e-5 * sum_k |a_k w_k| + 1e-6, as test_cpu_gemm (F32
 * accumulation of exact products). vdpbf16ps form: each activation is rounded to BF16 (relative
 * error <= 2^-9), so |err| <= 2^-9 * sum |a_k w_k| plus the same F32 term.
 */
#include "cpu_test_util.h"

#include <string.h>

static void run(cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, ptm_dtype dt, int mode, int acc)
{
    int64_t lda = K + 3, ldb = K + 5, ldc = N + 2;
    float *A = test_randn(M * lda, -1.0f, 1.0f), *B = test_randn(N * ldb, -1.0f, 1.0f);
    float *C = test_randn(M * ldc, -1.0f, 1.0f), *C0 = malloc((size_t)(M * ldc) * 4);
    memcpy(C0, C, (size_t)(M * ldc) * 4);
    uint16_t *h = malloc((size_t)(N * ldb) * 2);
    const void *Bw = B;
    if (dt != PTM_F32) {
        cr_assert_eq(cpu_convert(ctx, N * ldb, B, PTM_F32, h, dt), PTM_OK);
        cr_assert_eq(cpu_convert(ctx, N * ldb, h, dt, B, PTM_F32), PTM_OK);
        Bw = h;
    }
    int done = cpu_gemv(ctx, M, N, K, A, lda, Bw, dt, ldb, C, ldc, acc, mode, NULL, NULL);
    cr_assert_eq(done, 1, "M=%lld K=%lld %s not taken", (long long)M, (long long)K,
                 ptm_dtype_name(dt));
    double rel = mode == CPU_GEMV_DPBF16 ? 1.0 / 512 : 0.0;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? C0[i * ldc + j] : 0.0, sabs = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)A[i * lda + k] * B[j * ldb + k];
                sabs += fabs((double)A[i * lda + k] * B[j * ldb + k]);
            }
            double err = fabs(C[i * ldc + j] - s), tol = (1e-5 + rel) * sabs + 1e-5;
            cr_assert(err <= tol, "M=%lld N=%lld K=%lld %s mode %d: C[%lld,%lld] %.8g vs %.8g",
                      (long long)M, (long long)N, (long long)K, ptm_dtype_name(dt), mode,
                      (long long)i, (long long)j, C[i * ldc + j], s);
        }
        /* The gap past each row of C stays untouched. */
        cr_assert(memcmp(C + i * ldc + N, C0 + i * ldc + N, 8) == 0);
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    free(h);
}

Test(cpu_gemv, matches_reference_for_every_row_count_dtype_and_tail)
{
    if (cpu_isa_best() < CPU_ISA_AVX512) {
        cr_skip_test("no AVX-512: cpu_gemm keeps its own small-M kernel");
    }
    cpu_ctx ctx = test_ctx(CPU_ISA_AVX512);
    const ptm_dtype dts[] = {PTM_F32, PTM_BF16, PTM_F16};
    /* At M = 1, K up to 2048 reads one weight row per step (a short activation row), 2100
     * four (GEMV_R1_BYTES). */
    const int64_t Ks[] = {32, 45, 256, 1100, 2100};
    const int64_t Ns[] = {1, 7, 64, 131};
    test_seed(3);
    for (int64_t M = 1; M <= 4; M++) {
        for (size_t d = 0; d < 3; d++) {
            for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++) {
                for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++) {
                    run(&ctx, M, Ns[n], Ks[k], dts[d], CPU_GEMV_EXACT, (int)((k + n) % 2));
                }
            }
        }
    }
    test_ctx_free(&ctx);
}

/* Rows whose pitch is whole 64-byte lines but which start `shift` elements past a boundary,
 * as weights used in place from a file mapping do: the chunks are laid from the boundary and
 * the first and last load under masks. The padding past K and the bytes before the first row
 * hold NaN, which must not reach C. */
static void run_shifted(cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, ptm_dtype dt, int64_t shift)
{
    int64_t es = dt == PTM_F32 ? 4 : 2, per = 64 / es, ldb = (K + per - 1) / per * per;
    size_t bytes = (size_t)((N * ldb + 2 * per) * es);
    float *A = test_randn(M * K, -1.0f, 1.0f), *B = test_randn(N * ldb, -1.0f, 1.0f);
    float *C = malloc((size_t)(M * N) * 4);
    char *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
    memset(buf, 0xff, bytes); /* all-ones: NaN in F32, BF16 and F16 alike */
    for (int64_t j = 0; j < N; j++) {
        for (int64_t k = K; k < ldb; k++) {
            B[j * ldb + k] = NAN;
        }
    }
    char *Bw = buf + shift * es;
    if (dt == PTM_F32) {
        memcpy(Bw, B, (size_t)(N * ldb) * 4);
    } else {
        cr_assert_eq(cpu_convert(ctx, N * ldb, B, PTM_F32, Bw, dt), PTM_OK);
        cr_assert_eq(cpu_convert(ctx, N * ldb, Bw, dt, B, PTM_F32), PTM_OK);
    }
    cr_assert_eq(cpu_gemv(ctx, M, N, K, A, K, Bw, dt, ldb, C, N, 0, CPU_GEMV_EXACT, NULL, NULL), 1);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0, sabs = 0.0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)A[i * K + k] * B[j * ldb + k];
                sabs += fabs((double)A[i * K + k] * B[j * ldb + k]);
            }
            double err = fabs(C[i * N + j] - s);
            cr_assert(err <= 1e-5 * sabs + 1e-5,
                      "M=%lld N=%lld K=%lld %s shift %lld: C[%lld,%lld] %.8g vs %.8g", (long long)M,
                      (long long)N, (long long)K, ptm_dtype_name(dt), (long long)shift,
                      (long long)i, (long long)j, C[i * N + j], s);
        }
    }
    free(A);
    free(B);
    free(C);
    free(buf);
}

Test(cpu_gemv, rows_starting_past_a_line_boundary_match_reference)
{
    if (cpu_isa_best() < CPU_ISA_AVX512) {
        cr_skip_test("no AVX-512: cpu_gemm keeps its own small-M kernel");
    }
    cpu_ctx ctx = test_ctx(CPU_ISA_AVX512);
    const ptm_dtype dts[] = {PTM_F32, PTM_BF16, PTM_F16};
    const int64_t Ks[] = {32, 45, 64, 100, 1100};
    const int64_t shifts[] = {1, 3, 8, 15, 31};
    test_seed(5);
    for (int64_t M = 1; M <= 4; M++) {
        for (size_t d = 0; d < 3; d++) {
            for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++) {
                for (size_t t = 0; t < sizeof shifts / sizeof shifts[0]; t++) {
                    int64_t shift = shifts[t] % (dts[d] == PTM_F32 ? 16 : 32);
                    run_shifted(&ctx, M, 9 + (int64_t)t, Ks[k], dts[d], shift);
                }
            }
        }
    }
    test_ctx_free(&ctx);
}

Test(cpu_gemv, dpbf16_form_within_bf16_rounding_of_activations)
{
    if (cpu_isa_best() < CPU_ISA_AVX512 || !cpu_isa_has_bf16()) {
        cr_skip_test("no AVX512-BF16 on this CPU");
    }
    cpu_ctx ctx = test_ctx(CPU_ISA_AVX512);
    test_seed(4);
    for (int64_t M = 1; M <= 4; M++) {
        run(&ctx, M, 67, 1024 + 40, PTM_BF16, CPU_GEMV_DPBF16, M % 2);
    }
    test_ctx_free(&ctx);
}

Test(cpu_gemv, declines_what_is_not_its_case)
{
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    float a[5 * 64] = {0}, b[64] = {0}, c[5] = {0};
    cr_assert_eq(cpu_gemv(&ctx, 5, 1, 64, a, 64, b, PTM_F32, 64, c, 1, 0, 0, NULL, NULL), 0);
    cr_assert_eq(cpu_gemv(&ctx, 1, 1, 16, a, 16, b, PTM_F32, 16, c, 1, 0, 0, NULL, NULL), 0);
    test_ctx_free(&ctx);
}
