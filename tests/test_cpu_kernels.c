/*
 * test_cpu_kernels.c - the CPU kernels composed the way a BERT encoder uses them (fused QKV
 * GEMM, attention on column slices with a padding mask, output projection with the residual
 * fused into LayerNorm, GELU FFN), six all-MiniLM-L6-v2-shaped layers deep, against a
 * double-precision encoder written out here. Per-kernel behaviour is tested in
 * test_cpu_<file>.c; this checks that the errors of the pieces stay small once chained.
 *
 * Tolerance: 1e-4 absolute on the final hidden states (the budget the golden tests against
 * PyTorch use). Random weights ~U(-0.1, 0.1) keep activations O(1) like a trained model's;
 * LayerNorm renormalises each layer, so F32 errors do not compound.
 */
#include "cpu_test_util.h"

#include <string.h>

#define HID   384
#define HEADS 12
#define HD    32
#define FFN   1536
#define NL    6

struct layer {
    float *wqkv, *bqkv, *wo, *bo, *g1, *b1, *wi, *bi, *w2, *b2, *g2, *b2n;
};

static void layer_new(struct layer *l)
{
    l->wqkv = test_randn(3 * HID * HID, -0.1f, 0.1f), l->bqkv = test_randn(3 * HID, -0.1f, 0.1f);
    l->wo = test_randn(HID * HID, -0.1f, 0.1f), l->bo = test_randn(HID, -0.1f, 0.1f);
    l->g1 = test_randn(HID, 0.8f, 1.2f), l->b1 = test_randn(HID, -0.1f, 0.1f);
    l->wi = test_randn(FFN * HID, -0.1f, 0.1f), l->bi = test_randn(FFN, -0.1f, 0.1f);
    l->w2 = test_randn(HID * FFN, -0.05f, 0.05f), l->b2 = test_randn(HID, -0.1f, 0.1f);
    l->g2 = test_randn(HID, 0.8f, 1.2f), l->b2n = test_randn(HID, -0.1f, 0.1f);
}

static void layer_free(struct layer *l)
{
    float **p = &l->wqkv;
    for (size_t i = 0; i < sizeof(*l) / sizeof(float *); i++) {
        free(p[i]);
    }
}

/* ---- double reference ---- */

static void ref_linear(int64_t M, int64_t N, int64_t K, const double *x, const float *w,
                       const float *b, double *y)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = b[j];
            for (int64_t k = 0; k < K; k++) {
                s += x[i * K + k] * w[j * K + k];
            }
            y[i * N + j] = s;
        }
    }
}

static void ref_ln(int64_t M, double *x, const double *r, const float *g, const float *b)
{
    for (int64_t i = 0; i < M; i++) {
        double *t = x + i * HID, mean = 0, var = 0;
        for (int64_t j = 0; j < HID; j++) {
            t[j] += r[i * HID + j];
            mean += t[j] / HID;
        }
        for (int64_t j = 0; j < HID; j++) {
            var += (t[j] - mean) * (t[j] - mean) / HID;
        }
        for (int64_t j = 0; j < HID; j++) {
            t[j] = (t[j] - mean) / sqrt(var + 1e-12) * g[j] + b[j];
        }
    }
}

static void ref_attention(int64_t B, int64_t S, const double *qkv, const float *mask, double *o)
{
    double s[64];
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < HEADS; h++) {
            for (int64_t i = 0; i < S; i++) {
                const double *q = qkv + (b * S + i) * 3 * HID + h * HD;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < S; j++) {
                    const double *k = qkv + (b * S + j) * 3 * HID + HID + h * HD;
                    double d = 0;
                    for (int64_t c = 0; c < HD; c++) {
                        d += q[c] * k[c];
                    }
                    s[j] = mask[b * S + j] == 0.0f ? -INFINITY : d / sqrt((double)HD);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int64_t j = 0; j < S; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                double *out = o + (b * S + i) * HID + h * HD;
                for (int64_t c = 0; c < HD; c++) {
                    out[c] = 0;
                    for (int64_t j = 0; j < S; j++) {
                        out[c] += s[j] / sum * qkv[(b * S + j) * 3 * HID + 2 * HID + h * HD + c];
                    }
                }
            }
        }
    }
}

static void ref_layer(int64_t B, int64_t S, const struct layer *l, const float *mask, double *x)
{
    int64_t M = B * S;
    double *qkv = calloc((size_t)(M * 3 * HID), sizeof(double));
    double *ctx = calloc((size_t)(M * HID), sizeof(double));
    double *y = calloc((size_t)(M * HID), sizeof(double));
    double *f = calloc((size_t)(M * FFN), sizeof(double));
    ref_linear(M, 3 * HID, HID, x, l->wqkv, l->bqkv, qkv);
    ref_attention(B, S, qkv, mask, ctx);
    ref_linear(M, HID, HID, ctx, l->wo, l->bo, y);
    ref_ln(M, y, x, l->g1, l->b1);
    ref_linear(M, FFN, HID, y, l->wi, l->bi, f);
    for (int64_t i = 0; i < M * FFN; i++) {
        f[i] = 0.5 * f[i] * (1.0 + erf(f[i] / sqrt(2.0)));
    }
    ref_linear(M, HID, FFN, f, l->w2, l->b2, x);
    ref_ln(M, x, y, l->g2, l->b2n);
    free(qkv);
    free(ctx);
    free(y);
    free(f);
}

/* ---- the same encoder from the kernels ---- */

static void cpu_layer(const cpu_ctx *c, int64_t B, int64_t S, const struct layer *l,
                      const float *mask, float *x, float *qkv, float *ctx, float *y, float *f)
{
    int64_t M = B * S;
    struct cpu_epilogue ep = {l->bqkv, CPU_ACT_NONE, NULL, 0};
    cr_assert_eq(cpu_gemm(c, M, 3 * HID, HID, x, HID, l->wqkv, PTM_F32, HID, 1, qkv, 3 * HID, &ep),
                 PTM_OK);
    struct cpu_attention a = {.B = B, .Sq = S, .Sk = S, .H = HEADS, .Hkv = HEADS, .D = HD};
    a.q = qkv, a.q_bs = S * 3 * HID, a.q_ss = 3 * HID, a.q_hs = HD;
    a.k = qkv + HID, a.k_bs = S * 3 * HID, a.k_ss = 3 * HID, a.k_hs = HD;
    a.v = qkv + 2 * HID, a.v_bs = S * 3 * HID, a.v_ss = 3 * HID, a.v_hs = HD;
    a.o = ctx, a.o_bs = S * HID, a.o_ss = HID, a.o_hs = HD;
    a.scale = 1.0f / sqrtf((float)HD);
    a.key_mask = mask;
    cr_assert_eq(cpu_attention_run(c, &a), PTM_OK);
    ep.bias = l->bo;
    cr_assert_eq(cpu_gemm(c, M, HID, HID, ctx, HID, l->wo, PTM_F32, HID, 1, y, HID, &ep), PTM_OK);
    cpu_layer_norm(c, M, HID, y, HID, x, HID, l->g1, l->b1, 1e-12f, y, HID);
    ep.bias = l->bi, ep.act = CPU_ACT_GELU;
    cr_assert_eq(cpu_gemm(c, M, FFN, HID, y, HID, l->wi, PTM_F32, HID, 1, f, FFN, &ep), PTM_OK);
    ep.bias = l->b2, ep.act = CPU_ACT_NONE;
    cr_assert_eq(cpu_gemm(c, M, HID, FFN, f, FFN, l->w2, PTM_F32, FFN, 1, x, HID, &ep), PTM_OK);
    cpu_layer_norm(c, M, HID, x, HID, y, HID, l->g2, l->b2n, 1e-12f, x, HID);
}

static void run_encoder(int64_t B, int64_t S)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    test_seed(51);
    int64_t M = B * S;
    struct layer layers[NL];
    for (int i = 0; i < NL; i++) {
        layer_new(&layers[i]);
    }
    float *x0 = test_randn(M * HID, -1, 1), *mask = test_zeros(B * S);
    for (int64_t i = 0; i < B * S; i++) {
        mask[i] = (i % S) < S - (i / S) * 3 ? 1.0f : 0.0f; /* batch b has 3b padded keys */
    }
    double *ref = calloc((size_t)(M * HID), sizeof(double));
    for (int64_t i = 0; i < M * HID; i++) {
        ref[i] = x0[i];
    }
    for (int i = 0; i < NL; i++) {
        ref_layer(B, S, &layers[i], mask, ref);
    }
    float *x = test_zeros(M * HID), *qkv = test_zeros(M * 3 * HID), *ctx = test_zeros(M * HID);
    float *y = test_zeros(M * HID), *f = test_zeros(M * FFN);
    for (int t = 0; t < n_isa; t++) {
        cpu_ctx c = test_ctx(isas[t]);
        memcpy(x, x0, (size_t)(M * HID) * sizeof(float));
        for (int i = 0; i < NL; i++) {
            cpu_layer(&c, B, S, &layers[i], mask, x, qkv, ctx, y, f);
        }
        double worst = 0;
        for (int64_t i = 0; i < M * HID; i++) {
            double e = fabs(x[i] - ref[i]);
            worst = e > worst ? e : worst;
        }
        cr_assert(worst <= 1e-4, "isa=%s B=%lld S=%lld: max abs error %.3g after %d layers",
                  cpu_isa_name(isas[t]), (long long)B, (long long)S, worst, NL);
        test_ctx_free(&c);
    }
    for (int i = 0; i < NL; i++) {
        layer_free(&layers[i]);
    }
    free(x0);
    free(mask);
    free(ref);
    free(x);
    free(qkv);
    free(ctx);
    free(y);
    free(f);
}

Test(cpu_kernels, minilm_encoder_batch1_seq16_matches_double_reference)
{
    run_encoder(1, 16);
}

Test(cpu_kernels, minilm_encoder_padded_batch_matches_double_reference)
{
    /* M = 3 * 19 = 57 rows: the large-M GEMM (OpenBLAS below AVX-512), with padding in batches 1
     * and 2. */
    run_encoder(3, 19);
}
