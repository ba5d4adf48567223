/*
 * test_cpu_attention.c - fused attention (backends/cpu/cpu_attention.c) against a
 * double-precision reference that materialises each score row, on strided Q/K/V views (fused
 * QKV, [B, H, S, D] caches), GQA 4:1, key masks with fully padded rows, causal masks with a
 * decode offset, T5-style bias, D = 20, 32, 64, and Sq = 1.
 *
 * Tolerance: 2e-5 absolute. Outputs are convex combinations of V rows in [-1, 1]; the F32
 * scores (D terms) and the exp approximation each cost a few ulps, and the weighted sum over Sk
 * rows adds ~sqrt(Sk) ulps.
 */
#include "cpu_test_util.h"

#include <string.h>

/* Element i of a K or V buffer of the view's kv_dtype, as F32. */
static double kv_at(const struct cpu_attention *a, const void *p, int64_t i)
{
    if (a->kv_dtype == PTM_F32) {
        return ((const float *)p)[i];
    }
    uint16_t h = ((const uint16_t *)p)[i];
    return a->kv_dtype == PTM_F16 ? cpu_f16_to_f32(h) : cpu_bf16_to_f32(h);
}

static void ref_attention(const struct cpu_attention *a, int64_t b, int64_t h, int64_t i,
                          double *out)
{
    int64_t hk = h / (a->H / a->Hkv);
    const float *q = a->q + b * a->q_bs + i * a->q_ss + h * a->q_hs;
    double *s = calloc((size_t)(a->Sk + 1), sizeof(double));
    double mx = -INFINITY;
    for (int64_t j = 0; j < a->Sk; j++) {
        int64_t k = b * a->k_bs + j * a->k_ss + hk * a->k_hs;
        double acc = 0;
        for (int64_t d = 0; d < a->D; d++) {
            acc += (double)q[d] * kv_at(a, a->k, k + d);
        }
        acc *= a->scale;
        if (a->bias) {
            acc += a->bias[b * a->bias_bs + (h * a->Sq + i) * a->Sk + j];
        }
        int hidden = (a->key_mask && a->key_mask[b * a->Sk + j] == 0.0f) ||
                     (a->is_causal && j > a->causal_offset + i);
        s[j] = hidden ? -INFINITY : acc;
        mx = s[j] > mx ? s[j] : mx;
    }
    double sum = 0;
    for (int64_t j = 0; j < a->Sk; j++) {
        s[j] = mx == -INFINITY ? 0.0 : exp(s[j] - mx);
        sum += s[j];
    }
    for (int64_t d = 0; d < a->D; d++) {
        out[d] = 0;
    }
    for (int64_t j = 0; j < a->Sk && sum > 0; j++) {
        int64_t v = b * a->v_bs + j * a->v_ss + hk * a->v_hs;
        for (int64_t d = 0; d < a->D; d++) {
            out[d] += s[j] / sum * kv_at(a, a->v, v + d);
        }
    }
    free(s);
}

static void check_attention(int32_t isa, const struct cpu_attention *a, const char *what)
{
    cpu_ctx ctx = test_ctx(isa);
    cr_assert_eq(cpu_attention_run(&ctx, a), PTM_OK, "%s: %s", what, ptm_last_error());
    double *ref = calloc((size_t)a->D, sizeof(double));
    for (int64_t b = 0; b < a->B; b++) {
        for (int64_t h = 0; h < a->H; h++) {
            for (int64_t i = 0; i < a->Sq; i++) {
                ref_attention(a, b, h, i, ref);
                const float *o = a->o + b * a->o_bs + i * a->o_ss + h * a->o_hs;
                for (int64_t d = 0; d < a->D; d++) {
                    cr_assert(fabs(o[d] - ref[d]) <= 2e-5,
                              "%s isa=%s b=%lld h=%lld i=%lld d=%lld: got %.9g expected %.9g", what,
                              cpu_isa_name(isa), (long long)b, (long long)h, (long long)i,
                              (long long)d, o[d], ref[d]);
                }
            }
        }
    }
    free(ref);
    test_ctx_free(&ctx);
}

/* Contiguous [B, S, H, D] views. */
static void set_bshd(struct cpu_attention *a, float *q, float *k, float *v, float *o)
{
    a->q = q;
    a->q_hs = a->D, a->q_ss = a->H * a->D, a->q_bs = a->Sq * a->q_ss;
    a->k = k;
    a->k_hs = a->D, a->k_ss = a->Hkv * a->D, a->k_bs = a->Sk * a->k_ss;
    a->v = v;
    a->v_hs = a->D, a->v_ss = a->Hkv * a->D, a->v_bs = a->Sk * a->v_ss;
    a->o = o;
    a->o_hs = a->D, a->o_ss = a->H * a->D, a->o_bs = a->Sq * a->o_ss;
}

static void run_bshd(int32_t isa, struct cpu_attention a, const char *what)
{
    float *q = test_randn(a.B * a.Sq * a.H * a.D, -1, 1);
    float *k = test_randn(a.B * a.Sk * a.Hkv * a.D, -1, 1);
    float *v = test_randn(a.B * a.Sk * a.Hkv * a.D, -1, 1);
    float *o = test_zeros(a.B * a.Sq * a.H * a.D);
    a.scale = 1.0f / sqrtf((float)a.D);
    set_bshd(&a, q, k, v, o);
    check_attention(isa, &a, what);
    free(q);
    free(k);
    free(v);
    free(o);
}

Test(cpu_attention, plain_attention_matches_reference)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(31);
    for (int t = 0; t < n; t++) {
        run_bshd(isas[t],
                 (struct cpu_attention){.B = 2, .Sq = 37, .Sk = 37, .H = 4, .Hkv = 4, .D = 32},
                 "d32");
        run_bshd(isas[t],
                 (struct cpu_attention){.B = 1, .Sq = 70, .Sk = 70, .H = 2, .Hkv = 2, .D = 64},
                 "d64 two query blocks");
        run_bshd(isas[t],
                 (struct cpu_attention){.B = 3, .Sq = 1, .Sk = 1, .H = 1, .Hkv = 1, .D = 20},
                 "seq 1, d20");
    }
}

Test(cpu_attention, fused_qkv_slices_with_padding_mask_and_empty_rows)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(32);
    int64_t B = 3, S = 19, H = 3, D = 64, w = 3 * H * D;
    float *qkv = test_randn(B * S * w, -1, 1), *o = test_zeros(B * S * H * D);
    float *mask = test_zeros(B * S);
    for (int64_t j = 0; j < S; j++) {
        mask[j] = 1.0f;                     /* batch 0: no padding */
        mask[S + j] = j < 11 ? 1.0f : 0.0f; /* batch 1: right padding */
        mask[2 * S + j] = 0.0f;             /* batch 2: fully padded */
    }
    struct cpu_attention a = {.B = B, .Sq = S, .Sk = S, .H = H, .Hkv = H, .D = D};
    a.q = qkv, a.q_bs = S * w, a.q_ss = w, a.q_hs = D;
    a.k = qkv + H * D, a.k_bs = S * w, a.k_ss = w, a.k_hs = D;
    a.v = qkv + 2 * H * D, a.v_bs = S * w, a.v_ss = w, a.v_hs = D;
    a.o = o, a.o_bs = S * H * D, a.o_ss = H * D, a.o_hs = D;
    a.scale = 0.125f;
    a.key_mask = mask;
    for (int t = 0; t < n; t++) {
        memset(o, 0xff, (size_t)(B * S * H * D) * sizeof(float)); /* NaN until written */
        check_attention(isas[t], &a, "fused qkv");
        for (int64_t i = 2 * S * H * D; i < B * S * H * D; i++) {
            cr_assert_eq(o[i], 0.0f, "a fully padded row must give zeros, got %g", o[i]);
        }
    }
    free(qkv);
    free(o);
    free(mask);
}

Test(cpu_attention, gqa_causal_decode_on_bhsd_cache)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(33);
    /* KV cache [B, Hkv, max_len, D] holding Sk = 21 positions; 5 new queries at 16..20. */
    int64_t B = 2, H = 8, Hkv = 2, D = 32, max_len = 24, Sk = 21, Sq = 5;
    float *q = test_randn(B * Sq * H * D, -1, 1);
    float *k = test_randn(B * Hkv * max_len * D, -1, 1);
    float *v = test_randn(B * Hkv * max_len * D, -1, 1);
    float *o = test_zeros(B * Sq * H * D);
    struct cpu_attention a = {.B = B, .Sq = Sq, .Sk = Sk, .H = H, .Hkv = Hkv, .D = D};
    set_bshd(&a, q, k, v, o);
    a.k_bs = Hkv * max_len * D, a.k_hs = max_len * D, a.k_ss = D;
    a.v_bs = Hkv * max_len * D, a.v_hs = max_len * D, a.v_ss = D;
    a.scale = 1.0f / sqrtf((float)D);
    a.is_causal = 1;
    a.causal_offset = Sk - Sq;
    for (int t = 0; t < n; t++) {
        check_attention(isas[t], &a, "gqa decode");
        a.Sq = 1, a.causal_offset = Sk - 1; /* one-token decode */
        check_attention(isas[t], &a, "gqa decode, one token");
        a.Sq = Sq, a.causal_offset = Sk - Sq;
    }
    free(q);
    free(k);
    free(v);
    free(o);
}

Test(cpu_attention, gqa_decode_groups_heads_per_kv_head)
{
    /* A few queries of many heads per kv head take one task per kv head on AVX-512
     * (attn_group_512): groups of 8 and 6 heads, one and three queries, padded keys, head sizes
     * that fill and straddle a vector. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(37);
    const int64_t Hs[2] = {16, 12}, Hkvs[2] = {2, 2}, Ds[2] = {64, 40}, Sqs[2] = {1, 3};
    int64_t B = 2, Sk = 45;
    float *mask = test_zeros(B * Sk);
    for (int64_t j = 0; j < B * Sk; j++) {
        mask[j] = (j % 7 == 3) ? 0.0f : 1.0f;
    }
    for (int c = 0; c < 2; c++) {
        for (int sq = 0; sq < 2; sq++) {
            struct cpu_attention a = {.B = B,
                                      .Sq = Sqs[sq],
                                      .Sk = Sk,
                                      .H = Hs[c],
                                      .Hkv = Hkvs[c],
                                      .D = Ds[c],
                                      .key_mask = mask,
                                      .is_causal = 1,
                                      .causal_offset = Sk - Sqs[sq]};
            for (int t = 0; t < n; t++) {
                run_bshd(isas[t], a, "gqa grouped decode");
            }
        }
    }
    free(mask);
}

Test(cpu_attention, half_precision_kv_cache_matches_reference)
{
    /* An F16 or BF16 KV cache [B, max_len, Hkv, D]: decode (K and V rows widened as they are
     * loaded for one query per head; grouped heads on AVX-512 for three) and prefill-sized
     * blocks, against the reference on the same half-precision values; D = 40 ends in a
     * partial vector. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(38);
    int64_t B = 2, H = 8, Hkv = 2, max_len = 80, Sk = 70;
    const int64_t Sqs[3] = {1, 3, 40}, Ds[2] = {48, 40};
    const ptm_dtype dts[2] = {PTM_F16, PTM_BF16};
    float *mask = test_zeros(B * Sk);
    for (int64_t j = 0; j < B * Sk; j++) {
        mask[j] = (j % 9 == 4) ? 0.0f : 1.0f;
    }
    for (int e = 0; e < 2; e++) {
        int64_t D = Ds[e];
        float *kf = test_randn(B * max_len * Hkv * D, -1, 1);
        float *vf = test_randn(B * max_len * Hkv * D, -1, 1);
        uint16_t *k = malloc((size_t)(B * max_len * Hkv * D) * 2);
        uint16_t *v = malloc((size_t)(B * max_len * Hkv * D) * 2);
        for (int d = 0; d < 2; d++) {
            for (int64_t i = 0; i < B * max_len * Hkv * D; i++) {
                k[i] = dts[d] == PTM_F16 ? cpu_f32_to_f16(kf[i]) : cpu_f32_to_bf16(kf[i]);
                v[i] = dts[d] == PTM_F16 ? cpu_f32_to_f16(vf[i]) : cpu_f32_to_bf16(vf[i]);
            }
            for (int c = 0; c < 3; c++) {
                int64_t Sq = Sqs[c];
                float *q = test_randn(B * Sq * H * D, -1, 1);
                float *o = test_zeros(B * Sq * H * D);
                struct cpu_attention a = {.B = B, .Sq = Sq, .Sk = Sk, .H = H, .Hkv = Hkv, .D = D};
                set_bshd(&a, q, NULL, NULL, o);
                a.k = k, a.v = v, a.kv_dtype = dts[d];
                a.k_ss = a.v_ss = Hkv * D, a.k_bs = a.v_bs = max_len * Hkv * D;
                a.scale = 1.0f / sqrtf((float)D);
                a.key_mask = mask;
                a.is_causal = 1;
                a.causal_offset = Sk - Sq;
                for (int t = 0; t < n; t++) {
                    check_attention(isas[t], &a, dts[d] == PTM_F16 ? "f16 cache" : "bf16 cache");
                }
                free(q);
                free(o);
            }
        }
        free(kf);
        free(vf);
        free(k);
        free(v);
    }
    free(mask);
}

Test(cpu_attention, gqa_decode_splits_long_caches_between_threads)
{
    /* At 256 keys and more, grouped decode splits the keys between the pool's threads and
     * merges the parts: F32 and F16 caches, one and three queries (their causal limits fall in
     * different splits), masked keys, and a batch row whose second split sees no key. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(39);
    int64_t B = 2, H = 16, Hkv = 2, D = 64, Sk = 300;
    float *mask = test_zeros(B * Sk);
    for (int64_t j = 0; j < B * Sk; j++) {
        mask[j] = (j % 11 == 5 || (j >= Sk && j % Sk >= 120)) ? 0.0f : 1.0f;
    }
    float *kf = test_randn(2 * B * Sk * Hkv * D, -1, 1);
    uint16_t *kh = malloc((size_t)(2 * B * Sk * Hkv * D) * 2);
    for (int64_t i = 0; i < 2 * B * Sk * Hkv * D; i++) {
        kh[i] = cpu_f32_to_f16(kf[i]);
    }
    for (int half = 0; half < 2; half++) {
        for (int64_t Sq = 1; Sq <= 3; Sq += 2) {
            float *q = test_randn(B * Sq * H * D, -1, 1), *o = test_zeros(B * Sq * H * D);
            struct cpu_attention a = {.B = B, .Sq = Sq, .Sk = Sk, .H = H, .Hkv = Hkv, .D = D};
            set_bshd(&a, q, NULL, NULL, o);
            a.k = half ? (const void *)kh : (const void *)kf;
            a.v = half ? (const void *)(kh + B * Sk * Hkv * D)
                       : (const void *)(kf + B * Sk * Hkv * D);
            a.kv_dtype = half ? PTM_F16 : PTM_F32;
            a.scale = 1.0f / sqrtf((float)D);
            a.key_mask = mask;
            a.is_causal = 1;
            a.causal_offset = Sk - Sq;
            for (int t = 0; t < n; t++) {
                check_attention(isas[t], &a, half ? "split decode, f16" : "split decode, f32");
            }
            free(q);
            free(o);
        }
    }
    free(kf);
    free(kh);
    free(mask);
}

Test(cpu_attention, causal_prefill_across_query_blocks)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(34);
    for (int t = 0; t < n; t++) {
        run_bshd(isas[t],
                 (struct cpu_attention){
                     .B = 1, .Sq = 131, .Sk = 131, .H = 2, .Hkv = 1, .D = 64, .is_causal = 1},
                 "causal prefill");
        /* A negative offset hides every key from the first queries: they output zeros. */
        run_bshd(isas[t],
                 (struct cpu_attention){.B = 1,
                                        .Sq = 9,
                                        .Sk = 6,
                                        .H = 1,
                                        .Hkv = 1,
                                        .D = 32,
                                        .is_causal = 1,
                                        .causal_offset = -3},
                 "causal negative offset");
    }
}

Test(cpu_attention, additive_bias_per_head_broadcast_and_per_batch)
{
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(35);
    int64_t B = 2, Sq = 7, Sk = 23, H = 4, D = 32;
    float *bias = test_randn(B * H * Sq * Sk, -3, 3);
    float *mask = test_zeros(B * Sk);
    for (int64_t j = 0; j < B * Sk; j++) {
        mask[j] = (j % 5) ? 1.0f : 0.0f;
    }
    for (int t = 0; t < n; t++) {
        for (int per_batch = 0; per_batch < 2; per_batch++) {
            struct cpu_attention a = {.B = B, .Sq = Sq, .Sk = Sk, .H = H, .Hkv = H, .D = D};
            a.bias = bias;
            a.bias_bs = per_batch ? H * Sq * Sk : 0;
            a.key_mask = mask;
            run_bshd(isas[t], a, per_batch ? "bias per batch" : "bias broadcast");
        }
    }
    free(bias);
    free(mask);
}

Test(cpu_attention, blocks_of_few_queries_read_keys_in_place)
{
    /* Blocks of <= 4 queries (decode) score against K's rows without the transpose: every
     * feature on that path, with head sizes that fill, straddle and undershoot a vector. */
    int32_t isas[3];
    int n = test_n_isas(isas);
    test_seed(36);
    int64_t B = 2, Sk = 37, H = 4, D_max = 128;
    float *bias = test_randn(B * H * 4 * Sk, -3, 3);
    float *mask = test_zeros(B * Sk);
    for (int64_t j = 0; j < B * Sk; j++) {
        mask[j] = (j % 7) ? 1.0f : 0.0f;
    }
    const int64_t dims[] = {20, 64, D_max};
    for (int t = 0; t < n; t++) {
        for (int64_t Sq = 1; Sq <= 4; Sq++) {
            for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
                struct cpu_attention a = {
                    .B = B, .Sq = Sq, .Sk = Sk, .H = H, .Hkv = 2, .D = dims[d]};
                a.is_causal = 1;
                a.causal_offset = Sk - Sq;
                a.bias = bias;
                a.bias_bs = H * Sq * Sk;
                a.key_mask = mask;
                run_bshd(isas[t], a, "few queries, causal, bias, mask, gqa");
                a.is_causal = 0;
                a.bias = NULL;
                run_bshd(isas[t], a, "few queries, cross-attention");
            }
        }
    }
    free(bias);
    free(mask);
}

Test(cpu_attention, rejects_heads_not_multiple_of_kv_heads)
{
    cpu_ctx ctx = test_ctx(CPU_ISA_SCALAR);
    struct cpu_attention a = {.B = 1, .Sq = 1, .Sk = 1, .H = 6, .Hkv = 4, .D = 8};
    cr_assert_eq(cpu_attention_run(&ctx, &a), PTM_E_INVAL);
    cr_assert_not_null(strstr(ptm_last_error(), "H=6 Hkv=4"));
    test_ctx_free(&ctx);
}

Test(cpu_attention, scalar_and_simd_agree_on_minilm_shape)
{
    int32_t isas[3];
    int n_isa = test_n_isas(isas);
    if (n_isa < 2) {
        cr_skip_test("no SIMD path on this CPU: %s only", cpu_isa_name(isas[0]));
    }
    isas[1] = isas[n_isa - 1];
    test_seed(36);
    int64_t B = 2, S = 128, H = 12, D = 32;
    float *q = test_randn(B * S * H * D, -2, 2), *k = test_randn(B * S * H * D, -2, 2);
    float *v = test_randn(B * S * H * D, -1, 1), *mask = test_zeros(B * S);
    float *o[2] = {test_zeros(B * S * H * D), test_zeros(B * S * H * D)};
    for (int64_t j = 0; j < B * S; j++) {
        mask[j] = j < S + 100 ? 1.0f : 0.0f;
    }
    for (int t = 0; t < 2; t++) {
        cpu_ctx ctx = test_ctx(isas[t]);
        struct cpu_attention a = {.B = B, .Sq = S, .Sk = S, .H = H, .Hkv = H, .D = D};
        set_bshd(&a, q, k, v, o[t]);
        a.scale = 1.0f / sqrtf((float)D);
        a.key_mask = mask;
        cr_assert_eq(cpu_attention_run(&ctx, &a), PTM_OK);
        test_ctx_free(&ctx);
    }
    for (int64_t i = 0; i < B * S * H * D; i++) {
        cr_assert(fabs(o[0][i] - o[1][i]) <= 1e-5, "element %lld: scalar %.9g simd %.9g",
                  (long long)i, o[0][i], o[1][i]);
    }
    free(q);
    free(k);
    free(v);
    free(mask);
    free(o[0]);
    free(o[1]);
}
