/*
 * test_quant.c - int8 block-quantized weights (PTM_Q8_0): the CPU kernels of
 * backends/cpu/cpu_q8.c and the runtime's quantize-on-load (runtime/model_quant.c).
 *
 * Kernels: the quantize / dequantize round trip keeps every element within half its block's
 * scale (|x - q d| <= d / 2, the round-to-nearest bound); the VNNI product equals the scalar
 * reference bit for bit (integer dot products are exact and both follow the same lane-defined
 * F32 order, cpu_q8.c); and the product is within the activation-quantization bound of the
 * exact product on the dequantized weights: the activations are rounded to steps of d_a per
 * block, so |y - sum a w'| <= sum_blocks d_a / 2 * sum |w'| (plus F32 rounding).
 *
 * Models: every LLaMA fixture with a greedy continuation (generate.safetensors, made by
 * transformers in F32) is loaded in F32 and with quantize = "int8" and run teacher-forced on
 * transformers' sequences. The int8 model's top-1 must agree with the F32 model's at >= 95% of
 * the continuation positions (issue 6). The max logits error against the F32 model is
 * printed and must stay below a first-order bound derived from the quantization, not fitted to
 * the result: each quantized matmul rounds weights and activations to half a step of
 * amax / 127 per block, i.e. a relative error of at most 1/254 + 1/254 = 1/127 of its output
 * scale, and in a pre-norm residual stack these add along the path a token takes, so
 * |logits_int8 - logits_f32| <= n_q / 127 * max |logits_f32|, with n_q the number of quantized
 * matrices (each lies on every token's path in a decoder).
 */
#include "cpu_test_util.h"

#include <stdio.h>
#include <string.h>

#include "fixture_util.h"
#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static float f16_scale(const unsigned char *row, int64_t k, int64_t b)
{
    uint16_t h;
    memcpy(&h, row + 2 * b, 2); /* scales lead the row */
    return cpu_f16_to_f32(h);
}

/* Row r of n: blocks of very different magnitudes (zeros, F16-subnormal scales, large). */
static float test_value(int64_t r, int64_t i)
{
    static const float mags[] = {0.0f, 1e-7f, 3e-5f, 0.02f, 1.0f, 300.0f, 3e4f};
    float mag = mags[(r + i / 32) % 7];
    return mag * test_uniform(-1.0f, 1.0f);
}

static void check_round_trip(ptm_dtype src_dt)
{
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    const int64_t rows = 9, k = 224;
    float *x = test_zeros(rows * k), *back = test_zeros(rows * k);
    uint16_t *h = calloc((size_t)(rows * k), 2);
    unsigned char *q = malloc((size_t)rows * cpu_q8_row_bytes(k));
    test_seed(7);
    for (int64_t i = 0; i < rows * k; i++) {
        x[i] = test_value(i / k, i % k);
    }
    const void *src = x;
    if (src_dt != PTM_F32) {
        cr_assert_eq(cpu_convert(&ctx, rows * k, x, PTM_F32, h, src_dt), PTM_OK);
        cr_assert_eq(cpu_convert(&ctx, rows * k, h, src_dt, x, PTM_F32), PTM_OK); /* widened */
        src = h;
    }
    cr_assert_eq(cpu_q8_quantize(&ctx, rows, k, src, src_dt, k, q), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(cpu_q8_dequantize(&ctx, rows, k, q, back, PTM_F32), PTM_OK);
    for (int64_t r = 0; r < rows; r++) {
        const unsigned char *row = q + r * cpu_q8_row_bytes(k);
        for (int64_t b = 0; b < k / 32; b++) {
            float d = f16_scale(row, k, b), amax = 0;
            for (int64_t i = b * 32; i < b * 32 + 32; i++) {
                amax = fabsf(x[r * k + i]) > amax ? fabsf(x[r * k + i]) : amax;
            }
            cr_assert(d >= amax / 127.0f, "row %lld block %lld: scale %g below amax/127 %g",
                      (long long)r, (long long)b, d, amax / 127.0f);
            for (int64_t i = b * 32; i < b * 32 + 32; i++) {
                double err = fabs((double)x[r * k + i] - (double)back[r * k + i]);
                cr_assert(err <= d / 2.0, "%s row %lld elem %lld: %g -> %g, err %g > d/2 = %g",
                          ptm_dtype_name(src_dt), (long long)r, (long long)i, x[r * k + i],
                          back[r * k + i], err, d / 2.0);
            }
        }
    }
    free(x);
    free(back);
    free(h);
    free(q);
    test_ctx_free(&ctx);
}

Test(quant, round_trip_keeps_each_element_within_half_a_scale)
{
    check_round_trip(PTM_F32);
    check_round_trip(PTM_BF16);
    check_round_trip(PTM_F16);
}

Test(quant, vector_quantizer_equals_scalar_byte_for_byte)
{
    /* Every magnitude class of test_value, values on rounding ties (x / d = n + 0.5 for the
     * block's own d), subnormals, and each source dtype: the AVX-512 rows must be the scalar
     * rows exactly. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    if (isas[n - 1] < CPU_ISA_AVX512 || !cpu_isa_has_vnni()) {
        cr_skip_test("no AVX-512 VNNI: only the scalar quantizer runs here");
    }
    cpu_ctx vec = test_ctx(isas[n - 1]), sca = test_ctx(CPU_ISA_SCALAR);
    const int64_t rows = 40, k = 256;
    float *x = test_zeros(rows * k);
    test_seed(11);
    for (int64_t i = 0; i < rows * k; i++) {
        x[i] = test_value(i / k, i % k);
    }
    for (int64_t r = 30; r < 35; r++) { /* ties: amax 127 / 8 gives d = 1 / 8 exactly */
        for (int64_t i = 0; i < k; i++) {
            x[r * k + i] = i % 32 == 0 ? 127.0f / 8 : ((float)(i % 64) - 32.0f + 0.5f) / 8;
        }
    }
    for (int64_t i = 35 * k; i < rows * k; i++) {
        x[i] = test_uniform(-1.0f, 1.0f) * 1e-40f; /* F32 subnormals */
    }
    const ptm_dtype dts[] = {PTM_F32, PTM_BF16, PTM_F16};
    size_t bytes = (size_t)rows * cpu_q8_row_bytes(k);
    uint16_t *h = calloc((size_t)(rows * k), 2);
    unsigned char *qv = malloc(bytes), *qs = malloc(bytes);
    for (size_t d = 0; d < 3; d++) {
        const void *src = x;
        if (dts[d] != PTM_F32) {
            cpu_convert(&sca, rows * k, x, PTM_F32, h, dts[d]);
            src = h;
        }
        cr_assert_eq(cpu_q8_quantize(&vec, rows, k, src, dts[d], k, qv), PTM_OK);
        cr_assert_eq(cpu_q8_quantize(&sca, rows, k, src, dts[d], k, qs), PTM_OK);
        for (size_t i = 0; i < bytes; i++) {
            cr_assert_eq(qv[i], qs[i], "%s: byte %zu: %d, scalar %d", ptm_dtype_name(dts[d]), i,
                         qv[i], qs[i]);
        }
    }
    free(x);
    free(h);
    free(qv);
    free(qs);
    test_ctx_free(&vec);
    test_ctx_free(&sca);
}

Test(quant, refuses_non_finite_weights_and_ragged_rows)
{
    cpu_ctx ctx = test_ctx(cpu_isa_best());
    float x[64] = {0};
    unsigned char q[68];
    x[40] = NAN;
    cr_assert_eq(cpu_q8_quantize(&ctx, 1, 64, x, PTM_F32, 64, q), PTM_E_RANGE);
    cr_assert_not_null(strstr(ptm_last_error(), "block 1"), "%s", ptm_last_error());
    cr_assert_eq(cpu_q8_quantize(&ctx, 1, 48, x, PTM_F32, 48, q), PTM_E_UNSUPPORTED);
    test_ctx_free(&ctx);
}

/* Random weights [N, K] quantized, activations [M, K]. */
struct q8_case {
    int64_t M, N, K;
    float *A, *C, *C2;
    unsigned char *B;
};

static struct q8_case q8_case_new(cpu_ctx *ctx, int64_t M, int64_t N, int64_t K)
{
    struct q8_case c = {M, N, K, NULL, NULL, NULL, NULL};
    float *w = test_randn(N * K, -0.5f, 0.5f);
    c.A = test_randn(M * K, -2.0f, 2.0f);
    for (int64_t i = 0; i < M * K; i += 97) {
        c.A[i] *= 40.0f; /* outliers, as real activations have */
    }
    c.B = malloc((size_t)N * cpu_q8_row_bytes(K));
    cr_assert_eq(cpu_q8_quantize(ctx, N, K, w, PTM_F32, K, c.B), PTM_OK);
    c.C = test_randn(M * N, -1.0f, 1.0f);
    c.C2 = malloc((size_t)(M * N) * sizeof(float));
    memcpy(c.C2, c.C, (size_t)(M * N) * sizeof(float));
    free(w);
    return c;
}

static void q8_case_free(struct q8_case *c)
{
    free(c->A);
    free(c->B);
    free(c->C);
    free(c->C2);
}

Test(quant, vnni_product_equals_scalar_reference_bit_for_bit)
{
    if (cpu_isa_best() < CPU_ISA_AVX512 || !cpu_isa_has_vnni()) {
        cr_skip_test("no AVX512-VNNI on this CPU: only the scalar path runs");
    }
    cpu_ctx simd = test_ctx(CPU_ISA_AVX512), scalar = test_ctx(CPU_ISA_SCALAR);
    const int64_t Ms[] = {1, 2, 3, 4, 5, 9, 70};
    const int64_t Ns[] = {1, 6, 37};
    /* 512, 2048: whole groups of 16 blocks only (the unrolled M = 1 loop); 544, 1056: a
     * shorter last group, of an odd number of blocks. */
    const int64_t Ks[] = {32, 64, 96, 512, 544, 1056, 2048};
    test_seed(11);
    for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++) {
        for (size_t b = 0; b < sizeof Ns / sizeof Ns[0]; b++) {
            for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++) {
                struct q8_case c = q8_case_new(&simd, Ms[a], Ns[b], Ks[k]);
                int acc = (a + b + k) % 2;
                cr_assert_eq(
                    cpu_q8_gemm(&simd, c.M, c.N, c.K, c.A, c.K, c.B, c.C, c.N, acc, NULL, NULL),
                    PTM_OK);
                cr_assert_eq(
                    cpu_q8_gemm(&scalar, c.M, c.N, c.K, c.A, c.K, c.B, c.C2, c.N, acc, NULL, NULL),
                    PTM_OK);
                for (int64_t i = 0; i < c.M * c.N; i++) {
                    cr_assert(memcmp(&c.C[i], &c.C2[i], 4) == 0,
                              "M=%lld N=%lld K=%lld acc=%d C[%lld]: vnni %.9g scalar %.9g",
                              (long long)c.M, (long long)c.N, (long long)c.K, acc, (long long)i,
                              c.C[i], c.C2[i]);
                }
                q8_case_free(&c);
            }
        }
    }
    test_ctx_free(&simd);
    test_ctx_free(&scalar);
}

Test(quant, product_within_activation_rounding_of_dequantized_weights)
{
    int32_t isas[3];
    int n_isas = test_n_isas(isas);
    test_seed(5);
    for (int t = 0; t < n_isas; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        struct q8_case c = q8_case_new(&ctx, 6, 19, 320);
        float *w = malloc((size_t)(c.N * c.K) * sizeof(float));
        cr_assert_eq(cpu_q8_dequantize(&ctx, c.N, c.K, c.B, w, PTM_F32), PTM_OK);
        cr_assert_eq(cpu_q8_gemm(&ctx, c.M, c.N, c.K, c.A, c.K, c.B, c.C, c.N, 0, NULL, NULL),
                     PTM_OK);
        for (int64_t i = 0; i < c.M; i++) {
            for (int64_t j = 0; j < c.N; j++) {
                double exact = 0, bound = 0, sabs = 0;
                for (int64_t b = 0; b < c.K / 32; b++) {
                    double amax = 0, wabs = 0;
                    for (int64_t k = b * 32; k < b * 32 + 32; k++) {
                        double a = c.A[i * c.K + k], x = w[j * c.K + k];
                        exact += a * x;
                        sabs += fabs(a * x);
                        amax = fabs(a) > amax ? fabs(a) : amax;
                        wabs += fabs(x);
                    }
                    bound += amax / 127.0 / 2.0 * wabs;
                }
                double err = fabs(c.C[i * c.N + j] - exact);
                double tol = bound * (1 + 1e-5) + 1e-5 * (sabs + bound);
                cr_assert(err <= tol, "%s: C[%lld,%lld] = %.7g, exact %.7g: err %.3g > %.3g",
                          cpu_isa_name(isas[t]), (long long)i, (long long)j, c.C[i * c.N + j],
                          exact, err, tol);
            }
        }
        free(w);
        q8_case_free(&c);
        test_ctx_free(&ctx);
    }
}

/* ---- models ---- */

static ptm_model *load_q(const char *dir, const char *quantize)
{
    ptm_model *m = NULL;
    /* The reference computes in F32; the int8 model quantizes the checkpoint's own dtype. */
    struct ptm_load_opts o = {
        .struct_size = sizeof o, .dtype = quantize ? "auto" : "float32", .quantize = quantize};
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    return m;
}

/* Logits [B, S, V] of m on the fixture's generated sequences, teacher-forced. */
static ptm_tensor_map *run_sequences(ptm_model *m, const struct ptm_st_tensor *seq,
                                     const int64_t *mask)
{
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, seq->shape, seq->data);
    set_host_input(in, "attention_mask", PTM_I64, 2, seq->shape, mask);
    cr_assert_eq(ptm_model_forward(m, in, out, 0), PTM_OK, "%s", ptm_last_error());
    ptm_tensor_map_free(in);
    return out;
}

static int64_t argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) {
        best = x[i] > x[best] ? i : best;
    }
    return best;
}

static int is_eos(const struct ptm_generate_opts *g, int64_t id)
{
    for (int32_t i = 0; i < g->n_eos; i++) {
        if (g->eos_ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

static int n_quantized(const ptm_model *m)
{
    int n = 0;
    for (size_t i = 0; i < ptm_model_n_params(m); i++) {
        n += ptm_tensor_dtype(ptm_model_param_at(m, i, NULL)) == PTM_Q8_0;
    }
    return n;
}

/* Top-1 agreement of the int8 model with the F32 model, teacher-forced on transformers' greedy
 * sequences, over the continuation positions of every row (issue 6: >= 95%), added to *agree
 * and *total; the logits error against the F32 model must stay within the bound of the file
 * comment. Each flip is logged with its F32 margin (a flip needs a margin below twice the
 * error). The reference is ptm's F32 forward on the same input rather than transformers'
 * tokens: with dynamic NTK RoPE a full-sequence forward rescales the frequencies by the whole
 * length, which generate() did not at earlier steps, so the tokens are not its argmax there. */
static void check_fixture(const char *dir, const char *name, int64_t *agree_all, int64_t *total_all)
{
    ptm_model *f = load_q(dir, NULL), *q = load_q(dir, "int8");
    cr_assert_str_eq(ptm_model_quantization(q), "int8");
    cr_assert_null(ptm_model_quantization(f));
    int nq = n_quantized(q);
    cr_assert_gt(nq, 0, "%s: nothing was quantized", name);
    ptm_st_file *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *pm = st_get(g, "prompt_mask"), *seq = st_get(g, "sequences");
    int64_t B = seq->shape[0], S = seq->shape[1], P = pm->shape[1];
    int64_t *mask = malloc((size_t)(B * S) * sizeof(int64_t));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t s = 0; s < S; s++) {
            mask[b * S + s] = s < P ? ((const int64_t *)pm->data)[b * P + s] : 1;
        }
    }
    struct ptm_generate_opts go = {.struct_size = sizeof go};
    cr_assert_eq(ptm_generate_opts_init(f, &go), PTM_OK);
    ptm_tensor_map *lf = run_sequences(f, seq, mask), *lq = run_sequences(q, seq, mask);
    const float *yf = ptm_tensor_data(ptm_tensor_map_get(lf, "logits"));
    const float *yq = ptm_tensor_data(ptm_tensor_map_get(lq, "logits"));
    int64_t V = ptm_tensor_dim(ptm_tensor_map_get(lf, "logits"), 2);
    const int64_t *ids = seq->data;
    int64_t agree = 0, total = 0;
    double err = 0, scale = 0;
    for (int64_t b = 0; b < B; b++) {
        /* Position s - 1 predicts token s; a row is done after its first eos. */
        for (int64_t s = P; s < S && !is_eos(&go, ids[b * S + s - 1]); s++) {
            const float *rf = yf + (b * S + s - 1) * V, *rq = yq + (b * S + s - 1) * V;
            int64_t pick = argmax(rq, V), want = argmax(rf, V);
            agree += pick == want;
            total++;
            if (pick != want) {
                cr_log_info("%s: row %lld position %lld: int8 picks %lld, F32 %lld; their F32 "
                            "logits differ by %.4g",
                            name, (long long)b, (long long)s, (long long)pick, (long long)want,
                            (double)rf[want] - (double)rf[pick]);
            }
            for (int64_t v = 0; v < V; v++) {
                double d = fabs((double)rq[v] - (double)rf[v]);
                err = d > err || isnan(d) ? d : err;
                scale = fabs(rf[v]) > scale ? fabs(rf[v]) : scale;
            }
        }
    }
    double bound = nq / 127.0 * scale;
    cr_log_info("%s: int8 top-1 agrees with F32 at %lld of %lld "
                "positions (%.1f%%); max logits error %.4g (bound %.4g = %d quantized matrices "
                "/ 127 x max |logit| %.3g)",
                name, (long long)agree, (long long)total, 100.0 * (double)agree / (double)total,
                err, bound, nq, scale);
    cr_expect_gt(total, 0, "%s: no continuation positions", name);
    cr_expect(err <= bound, "%s: max logits error %.4g above the bound %.4g", name, err, bound);
    cr_expect(agree * 100 >= total * 95, "%s: top-1 agreement %lld / %lld below 95%%", name,
              (long long)agree, (long long)total);
    *agree_all += agree;
    *total_all += total;
    free(mask);
    ptm_tensor_map_free(lf);
    ptm_tensor_map_free(lq);
    ptm_st_close(g);
    ptm_model_free(f);
    ptm_model_free(q);
}

/* Every LLaMA fixture with a greedy continuation: >= 95% agreement on each, and pooled. On these
 * 100-token random models the top two logits are often within the quantization error, so the
 * flips logged are all near-ties. */
Test(quant, int8_top1_agrees_with_f32_on_the_llama_fixtures, .timeout = 120)
{
    static const char *const fixtures[] = {
        "llama-tiny",
        "llama-tiny-bf16",
        "llama-tiny-bias",
        "llama-tiny-gqa2",
        "llama-tiny-headdim",
        "llama-tiny-mqa",
        "llama-tiny-rope-dynamic",
        "llama-tiny-rope-linear",
        "llama-tiny-rope-llama3",
        "llama-tiny-rope-yarn",
    };
    int64_t agree = 0, total = 0;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char dir[300];
        snprintf(dir, sizeof dir, "%.200s/%.60s", PTM_TEST_FIXTURES, fixtures[i]);
        check_fixture(dir, fixtures[i], &agree, &total);
    }
    cr_log_info("all fixtures: int8 top-1 agrees at %lld of %lld positions (%.1f%%)",
                (long long)agree, (long long)total, 100.0 * (double)agree / (double)total);
    cr_assert(agree * 100 >= total * 95, "top-1 agreement %lld / %lld below 95%%", (long long)agree,
              (long long)total);
}

Test(quant, quantizes_matrices_only_and_dequantizes_back)
{
    ptm_model *m = load_q(FIXTURE("llama-tiny"), "int8");
    ptm_model *f = load_q(FIXTURE("llama-tiny"), NULL);
    for (size_t i = 0; i < ptm_model_n_params(m); i++) {
        const char *name = NULL;
        ptm_tensor *t = ptm_model_param_at(m, i, &name);
        int64_t k = ptm_tensor_dim(t, ptm_tensor_ndim(t) - 1);
        int want = ptm_tensor_ndim(t) == 2 && k % 32 == 0 && !strstr(name, "embed_tokens");
        cr_expect_eq(ptm_tensor_dtype(t) == PTM_Q8_0, want, "%s: dtype %s", name,
                     ptm_dtype_name(ptm_tensor_dtype(t)));
    }
    /* The untied LM head is quantized (as llama.cpp's Q8_0 does). */
    cr_assert_eq(ptm_tensor_dtype(ptm_model_param(m, "lm_head.weight")), PTM_Q8_0);
    cr_assert_eq(ptm_model_save(m, "/nonexistent-ptm-quant-save", NULL), PTM_E_UNSUPPORTED);
    cr_assert_not_null(strstr(ptm_last_error(), "dequantize"), "%s", ptm_last_error());
    cr_assert_eq(ptm_model_dequantize(m), PTM_OK, "%s", ptm_last_error());
    cr_assert_null(ptm_model_quantization(m));
    /* Dequantized weights are q * d: within half a block scale of the originals. */
    ptm_tensor *wq = ptm_model_param(m, "model.layers.0.self_attn.q_proj.weight");
    ptm_tensor *wf = ptm_model_param(f, "model.layers.0.self_attn.q_proj.weight");
    cr_assert_eq(ptm_tensor_dtype(wq), PTM_F32);
    const float *a = ptm_tensor_data(wq), *b = ptm_tensor_data(wf);
    int64_t n = ptm_tensor_numel(wf), k = ptm_tensor_dim(wf, 1);
    for (int64_t i = 0; i < n; i += 32) {
        double amax = 0;
        for (int64_t j = i; j < i + 32 && j < n && (j - i) < k; j++) {
            amax = fabs(b[j]) > amax ? fabs(b[j]) : amax;
        }
        for (int64_t j = i; j < i + 32 && j < n; j++) {
            /* d <= amax / 127 rounded up to F16: below amax / 127 * (1 + 2^-10). */
            cr_assert(fabs(a[j] - b[j]) <= amax / 127.0 / 2.0 * (1 + 1.0 / 1024) + 1e-12,
                      "element %lld: %g vs %g", (long long)j, a[j], b[j]);
        }
    }
    ptm_model_free(m);
    ptm_model_free(f);
}

Test(quant, tied_head_gets_its_own_int8_copy_and_stays_tied)
{
    /* llama-tiny-gqa2 ties lm_head to the embeddings: the head is quantized, the table the
     * gather reads stays float, and the pair is tied again by dequantize and by any edit. */
    const char *emb = "model.embed_tokens.weight", *head = "lm_head.weight";
    ptm_model *m = load_q(FIXTURE("llama-tiny-gqa2"), "int8");
    ptm_model *f = load_q(FIXTURE("llama-tiny-gqa2"), NULL);
    cr_assert_eq(ptm_tensor_dtype(ptm_model_param(m, head)), PTM_Q8_0);
    cr_assert_eq(ptm_tensor_dtype(ptm_model_param(m, emb)),
                 ptm_tensor_dtype(ptm_model_param(f, emb)));
    cr_assert_eq(ptm_model_num_parameters(m, 0), ptm_model_num_parameters(f, 0),
                 "the head's copy is no parameter of its own");
    cr_assert_eq(ptm_model_dequantize(m), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_param(m, head), ptm_model_param(m, emb), "dequantize re-shares");
    ptm_model_free(m);

    m = load_q(FIXTURE("llama-tiny-gqa2"), "int8");
    cr_assert_eq(ptm_model_resize_token_embeddings(m, 130, 0, 0), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_param(m, head), ptm_model_param(m, emb), "an edit re-ties the head");
    cr_assert_eq(ptm_tensor_dim(ptm_model_param(m, head), 0), 130);
    ptm_model_free(m);
    ptm_model_free(f);
}

Test(quant, float32_load_quantizes_from_the_checkpoint_dtype_without_a_float32_copy)
{
    /* dtype float32 + int8: the matrices go BF16 -> Q8_0 directly, byte for byte what the
     * "auto" load quantizes; everything else honours float32, and dequantize gives it too. */
    const char *dir = FIXTURE("llama-tiny-bf16");
    ptm_model *a = NULL, *f = NULL;
    struct ptm_load_opts oa = {.struct_size = sizeof oa, .dtype = "auto", .quantize = "int8"};
    struct ptm_load_opts of = {.struct_size = sizeof of, .dtype = "float32", .quantize = "int8"};
    cr_assert_eq(ptm_model_load(dir, &oa, &a), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_load(dir, &of, &f), PTM_OK, "%s", ptm_last_error());
    int nq = 0;
    for (size_t i = 0; i < ptm_model_n_params(f); i++) {
        const char *name = NULL;
        ptm_tensor *tf = ptm_model_param_at(f, i, &name), *ta = ptm_model_param(a, name);
        if (ptm_tensor_dtype(tf) == PTM_Q8_0) {
            cr_assert_eq(ptm_tensor_dtype(ta), PTM_Q8_0, "%s", name);
            cr_assert_eq(ptm_tensor_nbytes(tf), ptm_tensor_nbytes(ta), "%s", name);
            cr_assert_eq(memcmp(ptm_tensor_data(tf), ptm_tensor_data(ta), ptm_tensor_nbytes(tf)), 0,
                         "%s: int8 differs from the auto load's", name);
            nq++;
        } else {
            cr_assert_eq(ptm_tensor_dtype(tf), PTM_F32, "%s: %s", name,
                         ptm_dtype_name(ptm_tensor_dtype(tf)));
        }
    }
    cr_assert_gt(nq, 0);
    cr_assert_eq(ptm_model_dequantize(f), PTM_OK, "%s", ptm_last_error());
    for (size_t i = 0; i < ptm_model_n_params(f); i++) {
        cr_assert_eq(ptm_tensor_dtype(ptm_model_param_at(f, i, NULL)), PTM_F32);
    }
    ptm_model_free(a);
    ptm_model_free(f);
}

Test(quant, rejects_an_unknown_quantization)
{
    ptm_model *m = (ptm_model *)1;
    struct ptm_load_opts o = {.struct_size = sizeof o, .quantize = "int4"};
    cr_assert_eq(ptm_model_load(FIXTURE("llama-tiny"), &o, &m), PTM_E_INVAL);
    cr_assert_null(m);
    cr_assert_not_null(strstr(ptm_last_error(), "int4"), "%s", ptm_last_error());
}
