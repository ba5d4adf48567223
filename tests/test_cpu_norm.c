/*
 * test_cpu_norm.c - LayerNorm, RMSNorm and softmax (backends/cpu/cpu_norm.c) against double
 * references on odd widths, with fused residuals, strides, offsets that stress the variance,
 * and rows of -inf.
 *
 * Tolerances: norms 2e-5 absolute on outputs of magnitude <= ~10 (F32 sums over up to 1537
 * terms lose ~sqrt(n) ulps in the mean and variance); softmax 1e-6 absolute on probabilities
 * (exp within 2 ulp, sum of n terms).
 */
#include "cpu_test_util.h"

static void ref_norm(int rms, int64_t n, const float *x, const float *r, const float *g,
                     const float *b, double eps, double *out)
{
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) {
        mean += (double)x[i] + (r ? r[i] : 0);
    }
    mean = rms ? 0 : mean / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)x[i] + (r ? r[i] : 0) - mean;
        var += t * t;
    }
    double inv = 1.0 / sqrt(var / (double)n + eps);
    for (int64_t i = 0; i < n; i++) {
        double t = ((double)x[i] + (r ? r[i] : 0) - mean) * inv;
        out[i] = t * (g ? g[i] : 1.0) + (b && !rms ? b[i] : 0.0);
    }
}

static void run_norm(int32_t isa, int rms, int64_t rows, int64_t n, int use_res, int affine)
{
    cpu_ctx ctx = test_ctx(isa);
    int64_t ld = n + 3;
    float *x = test_randn(rows * ld, 2, 8); /* mean ~5: the variance must not cancel */
    float *r = use_res ? test_randn(rows * ld, -1, 1) : NULL;
    float *g = affine ? test_randn(n, 0.5f, 1.5f) : NULL;
    float *b = affine ? test_randn(n, -1, 1) : NULL;
    float *out = test_zeros(rows * ld), *sum = test_zeros(rows * ld);
    double *ref = calloc((size_t)n, sizeof(double));
    if (rms) {
        cpu_rms_norm(&ctx, rows, n, x, ld, r, ld, g, 1e-6f, out, ld, sum, ld);
    } else {
        cpu_layer_norm(&ctx, rows, n, x, ld, r, ld, g, b, 1e-12f, out, ld);
    }
    for (int64_t row = 0; row < rows; row++) {
        ref_norm(rms, n, x + row * ld, r ? r + row * ld : NULL, g, b, rms ? 1e-6 : 1e-12, ref);
        for (int64_t i = 0; i < n; i++) {
            cr_assert(fabs(out[row * ld + i] - ref[i]) <= 2e-5,
                      "isa=%s rms=%d n=%lld row %lld col %lld: got %.9g expected %.9g",
                      cpu_isa_name(isa), rms, (long long)n, (long long)row, (long long)i,
                      out[row * ld + i], ref[i]);
            if (rms) {
                float want = x[row * ld + i] + (r ? r[row * ld + i] : 0.0f);
                cr_assert_eq(sum[row * ld + i], want);
            }
        }
    }
    free(x);
    free(r);
    free(g);
    free(b);
    free(out);
    free(sum);
    free(ref);
    test_ctx_free(&ctx);
}

Test(cpu_norm, layer_norm_matches_reference_with_and_without_residual)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(21);
    const int64_t widths[] = {1, 7, 16, 33, 384, 1537};
    for (int t = 0; t < n_isa; t++) {
        for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
            run_norm(isas[t], 0, 5, widths[w], (int)(w % 2), 1);
            run_norm(isas[t], 0, 3, widths[w], 1, 0);
        }
        run_norm(isas[t], 0, 70, 1000, 1, 1); /* enough rows to split across threads */
    }
}

Test(cpu_norm, rms_norm_matches_reference_and_writes_residual_sum)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(22);
    const int64_t widths[] = {1, 17, 64, 129, 4099};
    for (int t = 0; t < n_isa; t++) {
        for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
            run_norm(isas[t], 1, 4, widths[w], (int)(w % 2), 1);
            run_norm(isas[t], 1, 2, widths[w], 1, 0);
        }
        run_norm(isas[t], 1, 70, 1000, 1, 1);
    }
}

Test(cpu_norm, layer_norm_in_place_equals_out_of_place)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(23);
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        int64_t n = 45;
        float *x = test_randn(3 * n, -3, 3), *r = test_randn(3 * n, -1, 1);
        float *g = test_randn(n, 0, 2), *b = test_randn(n, -1, 1), *out = test_zeros(3 * n);
        cpu_layer_norm(&ctx, 3, n, x, n, r, n, g, b, 1e-5f, out, n);
        cpu_layer_norm(&ctx, 3, n, x, n, r, n, g, b, 1e-5f, x, n);
        for (int64_t i = 0; i < 3 * n; i++) {
            cr_assert_eq(x[i], out[i]);
        }
        free(x);
        free(r);
        free(g);
        free(b);
        free(out);
        test_ctx_free(&ctx);
    }
}

Test(cpu_norm, softmax_matches_reference_and_survives_infinities)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(24);
    const int64_t widths[] = {1, 5, 16, 31, 128, 1000};
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
            int64_t n = widths[w], rows = 4;
            float *x = test_randn(rows * n, -20, 20), *y = test_zeros(rows * n);
            for (int64_t i = 0; i < n; i++) {
                x[2 * n + i] = -INFINITY; /* a fully masked row */
            }
            x[3 * n] = -INFINITY;
            cpu_softmax(&ctx, rows, n, x, n, y, n);
            for (int64_t row = 0; row < rows; row++) {
                double m = -INFINITY, s = 0;
                for (int64_t i = 0; i < n; i++) {
                    m = x[row * n + i] > m ? x[row * n + i] : m;
                }
                for (int64_t i = 0; i < n && m != -INFINITY; i++) {
                    s += exp(x[row * n + i] - m);
                }
                for (int64_t i = 0; i < n; i++) {
                    double r = m == -INFINITY ? 0.0 : exp(x[row * n + i] - m) / s;
                    cr_assert(fabs(y[row * n + i] - r) <= 1e-6,
                              "isa=%s n=%lld row %lld col %lld: got %.9g expected %.9g",
                              cpu_isa_name(isas[t]), (long long)n, (long long)row, (long long)i,
                              y[row * n + i], r);
                }
            }
            free(x);
            free(y);
        }
        test_ctx_free(&ctx);
    }
}
