/*
 * test_cpu_q8_outer.c - the many-row Q8_0 kernel (cpu_q8_outer.c) against a scalar transcription
 * of its definition, bit for bit: activations quantized per block of 32 as cpu_q8.c does, the
 * exact integer dot per block, acc = fmaf(float(dot), ad * dw, acc) in block order. Shapes
 * cover partial row blocks (M not a multiple of 16), partial column tiles, chunks split across
 * threads, a zero row and accumulation into C; and the dispatch through cpu_gemm with an
 * epilogue.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"
#include "cpu_test_util.h"

/* Q8_0 row: K / 32 F16 scales, then K int8 quants (ptm_tensor.h). */
static void reference(int64_t M, int64_t N, int64_t K, const float *A, const unsigned char *B,
                      float *C, int accumulate)
{
    int64_t nb = K / 32;
    size_t row_bytes = cpu_q8_row_bytes(K);
    for (int64_t m = 0; m < M; m++) {
        const float *x = A + m * K;
        int8_t qa[32];
        for (int64_t n = 0; n < N; n++) {
            const unsigned char *row = B + (size_t)n * row_bytes;
            const int8_t *qw = (const int8_t *)(row + nb * 2);
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                float amax = 0.0f;
                for (int i = 0; i < 32; i++) {
                    amax = fabsf(x[b * 32 + i]) > amax ? fabsf(x[b * 32 + i]) : amax;
                }
                float id = amax > 0.0f ? 127.0f / amax : 0.0f;
                for (int i = 0; i < 32; i++) {
                    float v = rintf(x[b * 32 + i] * id);
                    qa[i] = (int8_t)(v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v));
                }
                int32_t dot = 0;
                for (int i = 0; i < 32; i++) {
                    dot += qa[i] * qw[b * 32 + i];
                }
                uint16_t h;
                memcpy(&h, row + b * 2, 2);
                acc = fmaf((float)dot, amax / 127.0f * cpu_f16_to_f32(h), acc);
            }
            C[m * N + n] = accumulate ? C[m * N + n] + acc : acc;
        }
    }
}

static unsigned char *quantized(const cpu_ctx *ctx, int64_t N, int64_t K)
{
    float *w = test_randn(N * K, -1, 1);
    unsigned char *q = malloc(cpu_q8_row_bytes(K) * (size_t)N);
    cr_assert_eq(cpu_q8_quantize(ctx, N, K, w, PTM_F32, K, q), PTM_OK);
    free(w);
    return q;
}

Test(cpu_q8_outer, equals_its_definition_bit_for_bit)
{
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    if (ctx.isa < CPU_ISA_AVX512 || !cpu_isa_has_vnni()) {
        test_ctx_free(&ctx);
        cr_skip_test("no AVX512-VNNI on this CPU: the kernel declines and cpu_q8_gemm runs");
    }
    test_seed(71);
    const int64_t Ms[] = {1, 15, 16, 17, 40}, Ns[] = {1, 13, 50}, Ks[] = {32, 96, 512};
    for (size_t a = 0; a < 5; a++) {
        for (size_t b = 0; b < 3; b++) {
            for (size_t c = 0; c < 3; c++) {
                int64_t M = Ms[a], N = Ns[b], K = Ks[c];
                unsigned char *B = quantized(&ctx, N, K);
                float *A = test_randn(M * K, -3, 3);
                memset(A, 0, (size_t)K * sizeof(float)); /* a zero row: scale 0 */
                float *got = test_randn(M * N, -1, 1), *want = malloc((size_t)(M * N) * 4);
                memcpy(want, got, (size_t)(M * N) * 4);
                for (int acc = 0; acc < 2; acc++) {
                    reference(M, N, K, A, B, want, acc);
                    cr_assert_eq(cpu_q8_outer_gemm(&ctx, M, N, K, A, K, B, got, N, acc, NULL, NULL),
                                 1);
                    for (int64_t i = 0; i < M * N; i++) {
                        cr_assert_eq(got[i], want[i],
                                     "M=%lld N=%lld K=%lld acc=%d [%lld]: %.9g, want %.9g",
                                     (long long)M, (long long)N, (long long)K, acc, (long long)i,
                                     got[i], want[i]);
                    }
                }
                free(A);
                free(B);
                free(got);
                free(want);
            }
        }
    }
    test_ctx_free(&ctx);
}

Test(cpu_q8_outer, cpu_gemm_routes_many_rows_here_with_the_epilogue)
{
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    if (ctx.isa < CPU_ISA_AVX512 || !cpu_isa_has_vnni()) {
        test_ctx_free(&ctx);
        cr_skip_test("no AVX512-VNNI on this CPU: cpu_gemm keeps cpu_q8_gemm");
    }
    test_seed(72);
    int64_t M = 19, N = 37, K = 128;
    unsigned char *B = quantized(&ctx, N, K);
    float *A = test_randn(M * K, -2, 2), *bias = test_randn(N, -1, 1);
    float *res = test_randn(M * N, -1, 1), *got = test_zeros(M * N), *want = test_zeros(M * N);
    reference(M, N, K, A, B, want, 0);
    for (int64_t i = 0; i < M * N; i++) {
        float v = want[i] + bias[i % N];
        want[i] = (v > 0.0f ? v : 0.0f) + res[i];
    }
    struct cpu_epilogue ep = {bias, CPU_ACT_RELU, res, N};
    cr_assert_eq(cpu_gemm(&ctx, M, N, K, A, K, B, PTM_Q8_0, K, 1, got, N, &ep), PTM_OK);
    for (int64_t i = 0; i < M * N; i++) {
        cr_assert_eq(got[i], want[i], "[%lld]: %.9g, want %.9g", (long long)i, got[i], want[i]);
    }
    free(A);
    free(B);
    free(bias);
    free(res);
    free(got);
    free(want);
    test_ctx_free(&ctx);
}
