/*
 * test_cpu_misc.c - conversions, embedding gather, RoPE and elementwise kernels
 * (backends/cpu/cpu_misc.c). Conversions are checked bit for bit: every F16 pattern is decoded
 * against its defining formula, and F32 -> F16/BF16 results are checked to be the nearest
 * representable value with ties to even, as torch rounds. RoPE is compared with a double
 * reference that takes HF's F32 inv_freq and angle (tolerance 1e-6: cos/sin of an F32 angle
 * within 1 ulp).
 */
#include "cpu_test_util.h"

#include <string.h>

static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 31) {
        return m ? NAN : s * INFINITY;
    }
    return e == 0 ? s * ldexp(m, -24) : s * ldexp(1024 + m, e - 25);
}

static double bf16_value(uint16_t h)
{
    return (double)cpu_bf16_to_f32(h);
}

Test(cpu_misc, f16_decodes_every_pattern_and_round_trips)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cpu_f16_to_f32((uint16_t)h);
        double want = f16_value((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(f));
            continue;
        }
        cr_assert_eq((double)f, want, "f16 0x%04x: got %.9g expected %.9g", h, f, want);
        cr_assert_eq(cpu_f32_to_f16(f), h, "f16 0x%04x does not round trip", h);
    }
}

/* r is the nearest to x among its neighbours, ties to the even pattern. */
static void check_nearest(double x, uint16_t r, double (*val)(uint16_t), const char *what)
{
    double got = val(r);
    if (isinf(got) && fabs(x) < 65520.0 && val == f16_value) {
        cr_assert_fail("%s: %.9g rounded to inf", what, x);
    }
    if (isinf(got)) {
        return;
    }
    double err = fabs(x - got);
    for (int d = -1; d <= 1; d += 2) {
        uint16_t nb = (uint16_t)(r + d);
        if (((nb ^ r) & 0x8000) || isnan(val(nb)) || isinf(val(nb))) {
            continue;
        }
        double e2 = fabs(x - val(nb));
        cr_assert(err < e2 || (err == e2 && (r & 1) == 0),
                  "%s: %.9g -> 0x%04x (%.9g) but 0x%04x (%.9g) is nearer or even", what, x, r, got,
                  nb, val(nb));
    }
}

Test(cpu_misc, f32_to_half_rounds_to_nearest_even_on_both_paths)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(41);
    int64_t n = 20000;
    float *x = test_zeros(n);
    for (int64_t i = 0; i < n; i++) {
        /* Random mantissas across exponents 2^-30 .. 2^17, both signs, plus exact ties. */
        float m = test_uniform(1.0f, 2.0f);
        x[i] = ldexpf(m, (int)(test_next() % 48) - 30) * ((test_next() & 1) ? -1.0f : 1.0f);
        if (i % 10 == 0) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            u = (u & 0xffff0000u) | 0x8000u; /* bf16 tie */
            memcpy(&x[i], &u, 4);
        }
    }
    x[1] = 65519.0f, x[2] = 65520.0f, x[3] = -1e9f, x[4] = 0.0f, x[5] = ldexpf(1.5f, -25);
    uint16_t *h = malloc((size_t)n * 2), *hs = malloc((size_t)n * 2);
    for (int dt = 0; dt < 2; dt++) {
        ptm_dtype d = dt ? PTM_F16 : PTM_BF16;
        for (int t = 0; t < n_isa; t++) {
            cpu_ctx ctx = test_ctx(isas[t]);
            cr_assert_eq(cpu_convert(&ctx, n, x, PTM_F32, h, d), PTM_OK);
            for (int64_t i = 0; i < n; i++) {
                check_nearest(x[i], h[i], dt ? f16_value : bf16_value, ptm_dtype_name(d));
            }
            if (t == 0) {
                memcpy(hs, h, (size_t)n * 2);
            } else {
                cr_assert_eq(memcmp(hs, h, (size_t)n * 2), 0, "scalar and simd differ");
            }
            float *back = test_zeros(n);
            cr_assert_eq(cpu_convert(&ctx, n, h, d, back, PTM_F32), PTM_OK);
            for (int64_t i = 0; i < n; i++) {
                double want = dt ? f16_value(h[i]) : bf16_value(h[i]);
                cr_assert((double)back[i] == want || (isnan(want) && isnan(back[i])));
            }
            free(back);
            test_ctx_free(&ctx);
        }
    }
    cr_assert_eq(cpu_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(cpu_f32_to_bf16(NAN) & 0x7f80, 0x7f80);
    cr_assert_neq(cpu_f32_to_bf16(NAN) & 0x7f, 0);
    free(x);
    free(h);
    free(hs);
}

Test(cpu_misc, convert_rejects_integer_types)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    float f = 0;
    int32_t i = 0;
    cr_assert_eq(cpu_convert(&ctx, 1, &f, PTM_F32, &i, PTM_I32), PTM_E_UNSUPPORTED);
    cr_assert_not_null(strstr(ptm_last_error(), "F32 to I32"));
    test_ctx_free(&ctx);
}

Test(cpu_misc, embedding_gather_widens_rows_for_every_table_type)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(42);
    int64_t rows = 50, dim = 37, n_ids = 9;
    float *table = test_randn(rows * dim, -2, 2), *out = test_zeros(n_ids * dim);
    uint16_t *half = malloc((size_t)(rows * dim) * 2);
    int32_t ids32[9] = {0, 49, 3, 3, 17, 0, 48, 1, 25};
    int64_t ids64[9];
    for (int i = 0; i < 9; i++) {
        ids64[i] = ids32[i];
    }
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        for (int td = 0; td < 3; td++) {
            ptm_dtype d = td == 0 ? PTM_F32 : (td == 1 ? PTM_BF16 : PTM_F16);
            const void *tab = table;
            if (d != PTM_F32) {
                cr_assert_eq(cpu_convert(&ctx, rows * dim, table, PTM_F32, half, d), PTM_OK);
                tab = half;
            }
            for (int w = 0; w < 2; w++) {
                const void *ids = w ? (const void *)ids64 : (const void *)ids32;
                cr_assert_eq(cpu_embed_gather(&ctx, n_ids, ids, w ? PTM_I64 : PTM_I32, tab, d, rows,
                                              dim, out),
                             PTM_OK);
                for (int64_t i = 0; i < n_ids; i++) {
                    for (int64_t c = 0; c < dim; c++) {
                        int64_t src = ids32[i] * dim + c;
                        float want = d == PTM_F32    ? table[src]
                                     : d == PTM_BF16 ? cpu_bf16_to_f32(half[src])
                                                     : cpu_f16_to_f32(half[src]);
                        cr_assert_eq(out[i * dim + c], want);
                    }
                }
            }
        }
        test_ctx_free(&ctx);
    }
    free(table);
    free(out);
    free(half);
}

Test(cpu_misc, embedding_gather_rejects_out_of_range_id)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    float table[6] = {0}, out[6];
    int64_t ids[3] = {0, 2, 1};
    cr_assert_eq(cpu_embed_gather(&ctx, 3, ids, PTM_I64, table, PTM_F32, 2, 3, out), PTM_E_RANGE);
    cr_assert_not_null(strstr(ptm_last_error(), "id 2 at position 1"));
    int32_t neg[1] = {-1};
    cr_assert_eq(cpu_embed_gather(&ctx, 1, neg, PTM_I32, table, PTM_F32, 2, 3, out), PTM_E_RANGE);
    test_ctx_free(&ctx);
}

Test(cpu_misc, rope_matches_hf_rotate_half)
{
    test_seed(43);
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    int64_t T = 6, H = 3, D = 64, rot = 64, ts = H * D + 5;
    float *x = test_randn(T * ts, -1, 1), *orig = malloc((size_t)(T * ts) * 4);
    memcpy(orig, x, (size_t)(T * ts) * 4);
    int64_t pos[6] = {0, 1, 7, 100, 2047, 5};
    cpu_rope(&ctx, T, H, rot, x, ts, D, pos, 10000.0f);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < rot / 2; i++) {
                float inv = 1.0f / powf(10000.0f, (float)(2 * i) / (float)rot);
                double ang = (double)((float)pos[t] * inv);
                const float *o = orig + t * ts + h * D;
                double a = o[i] * cos(ang) - o[i + rot / 2] * sin(ang);
                double b = o[i + rot / 2] * cos(ang) + o[i] * sin(ang);
                cr_assert(fabs(x[t * ts + h * D + i] - a) <= 1e-6);
                cr_assert(fabs(x[t * ts + h * D + i + rot / 2] - b) <= 1e-6);
            }
        }
        for (int64_t g = H * D; g < ts; g++) {
            cr_assert_eq(x[t * ts + g], orig[t * ts + g]); /* gap between tokens untouched */
        }
    }
    free(x);
    free(orig);
    test_ctx_free(&ctx);
}

Test(cpu_misc, elementwise_ops_equal_f32_arithmetic)
{
    test_seed(44);
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    int64_t n = 40001;
    float *a = test_randn(n, -5, 5), *b = test_randn(n, -5, 5), *o = test_zeros(n);
    cpu_add(&ctx, n, a, b, o);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(o[i], a[i] + b[i]);
    }
    cpu_mul(&ctx, n, a, b, o);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(o[i], a[i] * b[i]);
    }
    cpu_scale(&ctx, n, a, 0.125f, a);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(o[i], o[i]);
        cr_assert_eq(a[i] * 8.0f * b[i], o[i]);
    }
    free(a);
    free(b);
    free(o);
    test_ctx_free(&ctx);
}
