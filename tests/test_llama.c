/*
 * test_llama.c - golden tests of the LLaMA plugin on the CPU backend: every llama-* fixture
 * made by tools/make_fixtures.py (GQA group sizes 1, 2, 4, head_dim != hidden/heads, tied
 * and untied heads, biases, each rope_scaling type, the base model and the sequence
 * classifier) is loaded, run on its left-padded batch, and compared with transformers'
 * output at every non-padded position; causal LMs also generate greedily and must give
 * transformers' tokens exactly. The KV cache must give the same logits as one full pass.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_util.h"
#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_model *load_as(const char *dir, const char *dtype)
{
    ptm_model *m = NULL;
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = dtype};
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_MISSING)[0], "%s: missing %s", dir,
                   ptm_model_loading_info(m, PTM_LOAD_MISSING)[0]);
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0], "%s: unexpected %s", dir,
                   ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0]);
    return m;
}

static ptm_model *load(const char *dir)
{
    return load_as(dir, NULL);
}

static void set_input(ptm_tensor_map *in, const struct ptm_st_tensor *t, const char *name)
{
    set_host_input(in, name, t->dtype, t->ndim, t->shape, t->data);
}

/* Max abs error of got vs want [B, S, ...] over the positions whose mask is 1 (or over all
 * rows when want has no sequence dim). */
static double masked_error(const float *got, const float *want, const int64_t *mask, int64_t B,
                           int64_t S, int64_t row, int has_seq)
{
    double err = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t s = 0; s < (has_seq ? S : 1); s++) {
            if (has_seq && mask[b * S + s] == 0) {
                continue;
            }
            int64_t at = (b * (has_seq ? S : 1) + s) * row;
            for (int64_t k = 0; k < row; k++) {
                double d = fabs((double)got[at + k] - (double)want[at + k]);
                err = d > err || isnan(d) ? d : err;
            }
        }
    }
    return err;
}

static double check_logits_tol(const char *dir, const char *dtype, double tol)
{
    ptm_model *m = load_as(dir, dtype);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *expected = open_st(dir, "outputs.safetensors");
    const struct ptm_st_tensor *ids = st_get(inputs, "input_ids");
    const struct ptm_st_tensor *mask = st_get(inputs, "attention_mask");
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_input(in, ids, "input_ids");
    set_input(in, mask, "attention_mask");
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s: %s", dir, ptm_last_error());
    double worst = 0;
    for (size_t i = 0; i < ptm_st_count(expected); i++) {
        const struct ptm_st_tensor *want = ptm_st_at(expected, i);
        ptm_tensor *got = ptm_tensor_map_get(out, want->name);
        cr_assert_not_null(got, "%s: output %s missing", dir, want->name);
        cr_assert_eq((size_t)ptm_tensor_numel(got) * 4, want->nbytes, "%s: %s size", dir,
                     want->name);
        double err = masked_error(ptm_tensor_data(got), want->data, mask->data, ids->shape[0],
                                  ids->shape[1], want->shape[want->ndim - 1], want->ndim == 3);
        cr_expect(err <= tol, "%s: %s max abs error %.3g", dir, want->name, err);
        worst = err > worst ? err : worst;
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inputs);
    ptm_st_close(expected);
    ptm_model_free(m);
    return worst;
}

static double check_logits(const char *dir, const char *dtype)
{
    return check_logits_tol(dir, dtype, PTM_TOL_F32);
}

/* Greedy generation with the fixture's prompts must give transformers' sequences. */
static void check_greedy(const char *dir, const char *dtype)
{
    ptm_model *m = load_as(dir, dtype);
    ptm_st_file *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *ids = st_get(g, "prompt_ids"), *mask = st_get(g, "prompt_mask");
    const struct ptm_st_tensor *want = st_get(g, "sequences");
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = want->shape[1] - ids->shape[1];
    int64_t *out = NULL, len = 0;
    cr_assert_eq(
        ptm_generate(m, ids->data, mask->data, ids->shape[0], ids->shape[1], &o, &out, &len),
        PTM_OK, "%s: %s", dir, ptm_last_error());
    cr_assert_eq(len, want->shape[1], "%s: %lld tokens, transformers %lld", dir, (long long)len,
                 (long long)want->shape[1]);
    const int64_t *w = want->data;
    for (int64_t i = 0; i < want->shape[0] * len; i++) {
        cr_assert_eq(out[i], w[i], "%s: row %lld position %lld: %lld, transformers %lld", dir,
                     (long long)(i / len), (long long)(i % len), (long long)out[i],
                     (long long)w[i]);
    }
    ptm_free(out);
    ptm_st_close(g);
    ptm_model_free(m);
}

#define GOLDEN_AS(name, fixture, dtype, greedy)                                                    \
    Test(llama, name)                                                                              \
    {                                                                                              \
        double e = check_logits(FIXTURE(fixture), dtype);                                          \
        cr_log_info("%s: max abs error %.3g", fixture, e);                                         \
        if (greedy) {                                                                              \
            check_greedy(FIXTURE(fixture), dtype);                                                 \
        }                                                                                          \
    }
#define GOLDEN(name, fixture, greedy) GOLDEN_AS(name, fixture, NULL, greedy)

GOLDEN(matches_transformers_mha, "llama-tiny", 1)
GOLDEN(matches_transformers_gqa_group_2_tied, "llama-tiny-gqa2", 1)
GOLDEN(matches_transformers_mqa_two_eos_ids, "llama-tiny-mqa", 1)
GOLDEN(matches_transformers_head_dim_not_hidden_over_heads, "llama-tiny-headdim", 1)
GOLDEN(matches_transformers_attention_and_mlp_bias, "llama-tiny-bias", 1)
GOLDEN(matches_transformers_legacy_rope_scaling_linear, "llama-tiny-rope-linear", 1)
GOLDEN(matches_transformers_rope_dynamic, "llama-tiny-rope-dynamic", 1)
GOLDEN(matches_transformers_rope_yarn, "llama-tiny-rope-yarn", 1)
GOLDEN(matches_transformers_rope_llama3, "llama-tiny-rope-llama3", 1)
GOLDEN(matches_transformers_base_model_with_hidden_states, "llama-tiny-base", 0)
/* BF16 weights kept as BF16 ("auto" = config dtype) and widened by the GEMM: the same as
 * transformers with the BF16 weights widened to F32, within F32 tolerance. */
GOLDEN_AS(matches_transformers_bf16_weights, "llama-tiny-bf16", "auto", 1)
GOLDEN(matches_transformers_sequence_classification, "llama-tiny-seqcls", 0)

/* PTM_CPU_BF16_DOT=1 lets prefill-sized matmuls on BF16 weights round their activations to
 * BF16 for vdpbf16ps (as PyTorch's bf16 models do everywhere): the logits leave the F32
 * contract but stay within the BF16 tolerance of transformers. The variable is read when the
 * CPU backend starts, so this test's own process sets it first. */
Test(llama, bf16_dot_prefill_stays_within_bf16_tolerance)
{
    cr_assert_eq(setenv("PTM_CPU_BF16_DOT", "1", 1), 0);
    double e = check_logits_tol(FIXTURE("llama-tiny-bf16"), "auto", PTM_TOL_BF16);
    cr_log_info("llama-tiny-bf16 with PTM_CPU_BF16_DOT=1: max abs error %.3g (F32 contract "
                "%.1g, BF16 tolerance %.1g)",
                e, PTM_TOL_F32, PTM_TOL_BF16);
}

/* F16 weights take the same opt-in path, rounded to BF16 as they are packed (Zen 4 has no F16
 * dot product): within the BF16 tolerance too. */
Test(llama, bf16_dot_prefill_on_f16_weights_stays_within_bf16_tolerance)
{
    cr_assert_eq(setenv("PTM_CPU_BF16_DOT", "1", 1), 0);
    double e = check_logits_tol(FIXTURE("llama-tiny-bf16"), "float16", PTM_TOL_BF16);
    cr_log_info("llama-tiny-bf16 as float16 with PTM_CPU_BF16_DOT=1: max abs error %.3g", e);
}

/* Prefill of the first n tokens through a cache of dtype dt, then the rest: the same logits as
 * one pass without a cache (rows without padding, so every position is compared) within tol;
 * returns the largest error. */
static double check_cache_chunks(ptm_dtype dt, double tol)
{
    ptm_model *m = load(FIXTURE("llama-tiny-gqa2"));
    ptm_device *cpu = NULL;
    cr_assert_eq(ptm_device_get("cpu", &cpu), PTM_OK);
    enum { B = 2, S = 9, SPLIT = 5 };
    int64_t ids[B * S];
    for (int i = 0; i < B * S; i++) {
        ids[i] = 3 + (i * 37) % 90;
    }
    int64_t shape[2] = {B, S};
    ptm_tensor *all = NULL;
    ptm_tensor_map *in = NULL, *full = NULL;
    cr_assert_eq(ptm_tensor_from_host(cpu, PTM_I64, 2, shape, ids, &all), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&full), PTM_OK);
    cr_assert_eq(ptm_tensor_map_set(in, "input_ids", all), PTM_OK);
    cr_assert_eq(ptm_model_forward(m, in, full, 0), PTM_OK, "%s", ptm_last_error());
    const float *want = ptm_tensor_data(ptm_tensor_map_get(full, "logits"));
    int64_t V = ptm_tensor_dim(ptm_tensor_map_get(full, "logits"), 2);

    ptm_kv_cache *cache = NULL;
    cr_assert_eq(ptm_kv_cache_new(m, B, S, dt, &cache), PTM_OK, "%s", ptm_last_error());
    int64_t at = 0;
    double worst = 0;
    for (int chunk = 0; chunk < 2; chunk++) {
        int64_t n = chunk == 0 ? SPLIT : S - SPLIT;
        ptm_tensor_map *pin = NULL, *pout = NULL;
        int64_t pshape[2] = {B, n}, buf[B * S];
        for (int64_t b = 0; b < B; b++) {
            memcpy(buf + b * n, ids + b * S + at, (size_t)n * sizeof *buf);
        }
        ptm_tensor *packed = NULL;
        cr_assert_eq(ptm_tensor_from_host(cpu, PTM_I64, 2, pshape, buf, &packed), PTM_OK);
        cr_assert_eq(ptm_tensor_map_new(&pin), PTM_OK);
        cr_assert_eq(ptm_tensor_map_new(&pout), PTM_OK);
        cr_assert_eq(ptm_tensor_map_set(pin, "input_ids", packed), PTM_OK);
        struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = cache};
        cr_assert_eq(ptm_model_forward_ex(m, pin, pout, &fo), PTM_OK, "%s", ptm_last_error());
        cr_assert_eq(ptm_kv_cache_len(cache), at + n);
        const float *got = ptm_tensor_data(ptm_tensor_map_get(pout, "logits"));
        double err = 0;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t s = 0; s < n; s++) {
                for (int64_t v = 0; v < V; v++) {
                    double d = fabs(got[(b * n + s) * V + v] - want[(b * S + at + s) * V + v]);
                    err = d > err ? d : err;
                }
            }
        }
        cr_expect(err <= tol, "%s cache, chunk %d: max abs error %.3g", ptm_dtype_name(dt), chunk,
                  err);
        worst = err > worst ? err : worst;
        at += n;
        ptm_tensor_free(packed);
        ptm_tensor_map_free(pin);
        ptm_tensor_map_free(pout);
    }
    ptm_kv_cache_free(cache);
    ptm_tensor_free(all);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(full);
    ptm_model_free(m);
    return worst;
}

Test(llama, cache_in_two_chunks_equals_one_pass)
{
    check_cache_chunks(PTM_F32, PTM_TOL_F32);
}

/* A half-precision cache rounds the keys and values it stores: within the BF16 tolerance. */
Test(llama, half_precision_cache_stays_within_bf16_tolerance)
{
    check_half_caches(check_cache_chunks, PTM_TOL_BF16, "llama-tiny-gqa2");
}

Test(llama, config_defaults_are_transformers)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("llama", &c), PTM_OK, "%s", ptm_last_error());
    int64_t v = 0;
    double f = 0;
    cr_assert_eq(ptm_config_get_int(c, "vocab_size", &v), PTM_OK);
    cr_assert_eq(v, 32000);
    cr_assert_eq(ptm_config_get_int(c, "intermediate_size", &v), PTM_OK);
    cr_assert_eq(v, 11008);
    cr_assert_eq(ptm_config_get_int(c, "bos_token_id", &v), PTM_OK);
    cr_assert_eq(v, 1);
    cr_assert_eq(ptm_config_get_int(c, "eos_token_id", &v), PTM_OK);
    cr_assert_eq(v, 2);
    cr_assert_eq(ptm_config_get_float(c, "rms_norm_eps", &f), PTM_OK);
    cr_assert_float_eq(f, 1e-6, 1e-12);
    int32_t b = 1;
    cr_assert_eq(ptm_config_get_bool(c, "tie_word_embeddings", &b), PTM_OK);
    cr_assert_eq(b, 0);
    cr_assert_eq(ptm_config_get_int(c, "num_key_value_heads", &v), PTM_E_NOT_FOUND);
    ptm_config_free(c);
}

Test(llama, base_model_cannot_generate)
{
    ptm_model *m = load(FIXTURE("llama-tiny-base"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    int64_t ids[2] = {5, 6}, *out = (int64_t *)1, len = 7;
    cr_assert_eq(ptm_generate(m, ids, NULL, 1, 2, &o, &out, &len), PTM_E_UNSUPPORTED);
    cr_assert_null(out);
    cr_assert_not_null(strstr(ptm_last_error(), "LlamaModel"));
    ptm_model_free(m);
}

Test(llama, auto_dtype_keeps_bf16_matrices_and_f32_norms)
{
    ptm_model *m = load_as(FIXTURE("llama-tiny-bf16"), "auto");
    cr_assert_eq(ptm_tensor_dtype(ptm_model_param(m, "model.layers.0.self_attn.q_proj.weight")),
                 PTM_BF16);
    cr_assert_eq(ptm_tensor_dtype(ptm_model_param(m, "model.norm.weight")), PTM_F32);
    ptm_model_free(m);
}

Test(llama, tied_lm_head_shares_the_embeddings)
{
    ptm_model *m = load(FIXTURE("llama-tiny-gqa2"));
    cr_assert_eq(ptm_tensor_data(ptm_model_param(m, "lm_head.weight")),
                 ptm_tensor_data(ptm_model_param(m, "model.embed_tokens.weight")));
    ptm_model_free(m);
    m = load(FIXTURE("llama-tiny"));
    cr_assert_neq(ptm_tensor_data(ptm_model_param(m, "lm_head.weight")),
                  ptm_tensor_data(ptm_model_param(m, "model.embed_tokens.weight")));
    ptm_model_free(m);
}

/* HF _init_weights: RMSNorm weights 1, the pad_token_id row of the embeddings 0, linear and
 * embedding weights normal(0, initializer_range); biases are declared only when asked. */
Test(llama, new_model_follows_hf_init_weights)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("llama-tiny-bias"), &c), PTM_OK, "%s", ptm_last_error());
    struct ptm_load_opts o = {.struct_size = sizeof o, .seed = 7};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_new(c, NULL, &o, &m), PTM_OK, "%s", ptm_last_error());
    const float *norm = ptm_tensor_data(ptm_model_param(m, "model.norm.weight"));
    for (int i = 0; i < 32; i++) {
        cr_assert_eq(norm[i], 1.0f);
    }
    const float *emb = ptm_tensor_data(ptm_model_param(m, "model.embed_tokens.weight"));
    double sq = 0;
    for (int i = 0; i < 32; i++) {
        cr_assert_eq(emb[i], 0.0f, "pad row (pad_token_id 0) not zero");
    }
    for (int i = 32; i < 100 * 32; i++) {
        sq += (double)emb[i] * emb[i];
    }
    double std = sqrt(sq / (99 * 32));
    cr_assert(std > 0.015 && std < 0.025, "embedding std %g, initializer_range 0.02", std);
    const float *bias = ptm_tensor_data(ptm_model_param(m, "model.layers.1.mlp.down_proj.bias"));
    cr_assert_not_null(bias);
    cr_assert_eq(bias[0], 0.0f);
    cr_assert_null(ptm_model_param(m, "score.weight"));
    ptm_model_free(m);
    ptm_config_free(c);
}
