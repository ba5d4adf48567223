/*
 * test_cpu_act.c - activations (backends/cpu/cpu_act.c) against double-precision libm, on the
 * scalar and the best SIMD path, including large and special inputs.
 *
 * Tolerance: |err| <= 5e-7 * (1 + |x|). The F32 formulas lose a few ulps of the result, and the
 * SIMD erf/exp approximations are within 2e-7 absolute; GELU multiplies the erf error by |x|/2.
 * That is two orders under the 1e-4 end-to-end budget for six BERT layers.
 */
#include "cpu_test_util.h"

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

static float *act_inputs(int64_t n)
{
    float *x = test_randn(n, -12, 12);
    const float special[] = {0.0f,  -0.0f,  1e-30f, -1e-30f, 1.0f, -1.0f, 3.999f,  4.0f,   -4.001f,
                             30.0f, -30.0f, 90.0f,  -90.0f,  1e4f, -1e4f, 0.9999f, 1.0001f};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        x[i * 7] = special[i];
    }
    for (int64_t i = 200; i < 1200 && i < n; i++) {
        x[i] = test_uniform(-1.2f, 1.2f); /* dense near the erf branch point */
    }
    return x;
}

Test(cpu_act, every_activation_matches_double_reference)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(11);
    int64_t n = 5003;
    float *x = act_inputs(n), *y = test_zeros(n);
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        for (int32_t act = CPU_ACT_NONE; act <= CPU_ACT_SILU; act++) {
            cpu_act(&ctx, act, n, x, y);
            for (int64_t i = 0; i < n; i++) {
                double r = ref_act(act, x[i]);
                double tol = 5e-7 * (1.0 + fabs(x[i]));
                cr_assert(fabs(y[i] - r) <= tol, "isa=%s act=%d x=%.9g got %.9g expected %.9g",
                          cpu_isa_name(isas[t]), act, x[i], y[i], r);
            }
        }
        test_ctx_free(&ctx);
    }
    free(x);
    free(y);
}

Test(cpu_act, gated_forms_multiply_by_up)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(12);
    int64_t n = 1037;
    float *g = act_inputs(n), *u = test_randn(n, -2, 2), *y = test_zeros(n);
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        for (int32_t act = CPU_ACT_GELU; act <= CPU_ACT_SILU; act++) {
            cpu_act_gated(&ctx, act, n, g, u, y);
            for (int64_t i = 0; i < n; i++) {
                double r = ref_act(act, g[i]) * u[i];
                double tol = 5e-7 * (1.0 + fabs(g[i])) * (1.0 + fabs(u[i]));
                cr_assert(fabs(y[i] - r) <= tol, "isa=%s act=%d gate=%.9g up=%.9g got %.9g",
                          cpu_isa_name(isas[t]), act, g[i], u[i], y[i]);
            }
        }
        test_ctx_free(&ctx);
    }
    free(g);
    free(u);
    free(y);
}

Test(cpu_act, works_in_place_and_keeps_nan)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        float x[19];
        for (int i = 0; i < 19; i++) {
            x[i] = (float)i - 9.0f;
        }
        x[3] = NAN;
        cpu_act(&ctx, CPU_ACT_RELU, 19, x, x);
        cr_assert(x[0] == 0.0f && x[18] == 9.0f);
        cr_assert(isnan(x[3]) || x[3] == 0.0f); /* max(NaN, 0) is either; never a number > 0 */
        float g[3] = {NAN, 1.0f, -1.0f};
        cpu_act(&ctx, CPU_ACT_GELU, 3, g, g);
        cr_assert(isnan(g[0]), "isa=%s: GELU(NaN) = %g", cpu_isa_name(isas[t]), g[0]);
        test_ctx_free(&ctx);
    }
}
