/*
 * test_t5.c - golden tests of the T5 plugin on the CPU backend. The t5-* fixtures made by
 * tools/make_fixtures.py (v1.0 style relu with tied lm_head and rescale, v1.1 style gated-gelu
 * with untied lm_head, transformers 5's tied head without rescale, a gated-silu
 * T5EncoderModel) are loaded, run on their right-padded batch with decoder_input_ids, and
 * compared with transformers' encoder states, logits, T5Model decoder states and, on request,
 * every stack's hidden states. T5EncoderModel loads a full checkpoint by HF's name rules.
 * Greedy decoding, by hand (no cache, encoder_outputs) and through ptm_generate (KV cache),
 * gives transformers' generate(); so does beam search (num_beams 4, beam.safetensors cases);
 * the decoder's cache in chunks gives the same logits and projects the cross-attention keys
 * and values once per request; a saved model stores tied weights once and reloads to the
 * same outputs.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beam_cases.h"
#include "fixture_util.h"
#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

PTM_API long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

static ptm_model *load_class(const char *dir, const char *cls)
{
    ptm_model *m = NULL;
    struct ptm_load_opts o = {.struct_size = sizeof o, .class_name = cls};
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_MISSING)[0], "%s: missing %s", dir,
                   ptm_model_loading_info(m, PTM_LOAD_MISSING)[0]);
    return m;
}

static ptm_model *load(const char *dir, const char *cls)
{
    ptm_model *m = load_class(dir, cls);
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0], "%s: unexpected %s", dir,
                   ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0]);
    return m;
}

static void set_st_input(ptm_tensor_map *in, ptm_st_file *f, const char *name)
{
    const struct ptm_st_tensor *t = st_get(f, name);
    set_host_input(in, name, t->dtype, t->ndim, t->shape, t->data);
}

/* Max abs difference of output got against the stored want, over every element. */
static double max_error(const ptm_tensor_map *out, const char *got_name, ptm_st_file *expected,
                        const char *want_name)
{
    const struct ptm_st_tensor *want = st_get(expected, want_name);
    ptm_tensor *got = ptm_tensor_map_get(out, got_name);
    cr_assert_not_null(got, "output %s missing", got_name);
    cr_assert_eq((size_t)ptm_tensor_numel(got) * 4, want->nbytes, "%s size", got_name);
    const float *g = ptm_tensor_data(got), *w = want->data;
    double err = 0;
    for (int64_t i = 0; i < ptm_tensor_numel(got); i++) {
        double d = fabs((double)g[i] - (double)w[i]);
        err = d > err || isnan(d) ? d : err;
    }
    return err;
}

/* Run cls on the fixture's inputs (without decoder ids for the encoder class) and compare
 * each {output, stored name} pair. */
static void check(const char *dir, const char *cls, ptm_model *given, const char *const *pairs)
{
    ptm_model *m = given ? given : load(dir, cls);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *expected = open_st(dir, "outputs.safetensors");
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_st_input(in, inputs, "input_ids");
    set_st_input(in, inputs, "attention_mask");
    if (strcmp(ptm_model_class_name(m), "T5EncoderModel") != 0) {
        set_st_input(in, inputs, "decoder_input_ids");
    }
    cr_assert_eq(ptm_model_forward(m, in, out, 0), PTM_OK, "%s: %s", dir, ptm_last_error());
    for (const char *const *p = pairs; p[0] != NULL; p += 2) {
        double err = max_error(out, p[0], expected, p[1]);
        cr_log_info("%s %s: max abs error %.3g", dir, p[0], err);
        cr_expect(err <= PTM_TOL_F32, "%s: %s max abs error %.3g", dir, p[0], err);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inputs);
    ptm_st_close(expected);
    ptm_model_free(m);
}

/* With output_hidden_states, every stack's states as transformers gives them (and no more). */
static void check_hidden_states(const char *dir, const char *cls)
{
    ptm_model *m = load(dir, cls);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *expected = open_st(dir, "outputs.safetensors");
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_st_input(in, inputs, "input_ids");
    set_st_input(in, inputs, "attention_mask");
    if (strcmp(ptm_model_class_name(m), "T5EncoderModel") != 0) {
        set_st_input(in, inputs, "decoder_input_ids");
    }
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s: %s", dir, ptm_last_error());
    size_t n_want = 0, n_got = 0;
    for (size_t i = 0; i < ptm_st_count(expected); i++) {
        const char *name = ptm_st_at(expected, i)->name;
        if (strstr(name, "hidden_states.") != NULL) {
            double err = max_error(out, name, expected, name);
            cr_expect(err <= PTM_TOL_F32, "%s: %s max abs error %.3g", dir, name, err);
            n_want++;
        }
    }
    for (size_t i = 0; i < ptm_tensor_map_count(out); i++) {
        const char *name = NULL;
        ptm_tensor_map_at(out, i, &name);
        n_got += strstr(name, "hidden_states.") != NULL;
    }
    cr_expect_gt(n_want, 0);
    cr_expect_eq(n_got, n_want, "%s: %zu hidden states, transformers %zu", dir, n_got, n_want);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inputs);
    ptm_st_close(expected);
    ptm_model_free(m);
}

Test(t5, hidden_states_match_transformers_per_stack)
{
    check_hidden_states(FIXTURE("t5-tiny-v1_1"), NULL);
    check_hidden_states(FIXTURE("t5-tiny"), "T5Model");
    check_hidden_states(FIXTURE("t5-tiny-encoder"), NULL);
}

static const char *const lm_pairs[] = {
    "logits", "logits", "encoder_last_hidden_state", "encoder_last_hidden_state", NULL,
};
static const char *const no_pairs[] = {NULL};
static const char *const base_pairs[] = {
    "last_hidden_state",
    "decoder_last_hidden_state",
    "encoder_last_hidden_state",
    "encoder_last_hidden_state",
    NULL,
};

Test(t5, matches_transformers_v1_0_relu_tied_head_rescaled)
{
    check(FIXTURE("t5-tiny"), NULL, NULL, lm_pairs);
}

Test(t5, matches_transformers_v1_1_gated_gelu_untied_head)
{
    check(FIXTURE("t5-tiny-v1_1"), NULL, NULL, lm_pairs);
}

/* transformers 5's own save of tie_word_embeddings=False: tied head, no rescale. */
Test(t5, matches_transformers_5_saved_tied_head_without_rescale)
{
    check(FIXTURE("t5-tiny-hf5-noscale"), NULL, NULL, lm_pairs);
}

Test(t5, base_model_gives_decoder_states_of_transformers_t5model)
{
    check(FIXTURE("t5-tiny"), "T5Model", NULL, base_pairs);
    check(FIXTURE("t5-tiny-v1_1"), "T5Model", load_class(FIXTURE("t5-tiny-v1_1"), "T5Model"),
          base_pairs);
}

Test(t5, encoder_model_matches_transformers_gated_silu)
{
    static const char *const pairs[] = {"last_hidden_state", "last_hidden_state", NULL};
    check(FIXTURE("t5-tiny-encoder"), NULL, NULL, pairs);
}

/* HF's T5EncoderModel.from_pretrained(<T5ForConditionalGeneration dir>): the decoder and the
 * head are reported unexpected, nothing missing, and the encoder output is the same. */
Test(t5, encoder_model_loads_full_checkpoint_reporting_decoder_unexpected)
{
    const char *dir = FIXTURE("t5-tiny-v1_1");
    ptm_model *m = load_class(dir, "T5EncoderModel");
    const char *const *unexpected = ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED);
    int n = 0, head = 0;
    for (; unexpected[n] != NULL; n++) {
        cr_expect(strncmp(unexpected[n], "decoder.", 8) == 0 ||
                      strcmp(unexpected[n], "lm_head.weight") == 0,
                  "unexpected %s", unexpected[n]);
        head += strcmp(unexpected[n], "lm_head.weight") == 0;
    }
    cr_expect_eq(head, 1, "lm_head.weight not reported unexpected");
    cr_expect_gt(n, 20, "only %d unexpected names", n);
    cr_expect_null(ptm_model_param(m, "decoder.final_layer_norm.weight"));
    static const char *const pairs[] = {"last_hidden_state", "encoder_last_hidden_state", NULL};
    check(dir, NULL, m, pairs);
}

/* Greedy decoding as transformers' generate(num_beams=1): the encoder runs once and its
 * output is passed as encoder_outputs; the decoder is recomputed over all tokens each step;
 * finished rows (eos) get pad ids. */
static void check_greedy(const char *dir)
{
    enum { MAX_T = 64 };
    ptm_model *m = load(dir, NULL);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *want = st_get(g, "sequences");
    int64_t B = want->shape[0], T = want->shape[1];
    cr_assert_leq(T, MAX_T);
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    set_st_input(in, inputs, "input_ids");
    set_st_input(in, inputs, "attention_mask");
    int64_t seq[8 * MAX_T] = {0}, shape[2] = {B, 1}, eos = 1, pad = 0;
    int done[8] = {0};
    cr_assert_leq(B, 8);
    cr_assert_eq(ptm_config_get_int(ptm_model_config(m), "eos_token_id", &eos), PTM_OK);
    for (int64_t t = 1; t < T; t++) {
        shape[1] = t;
        set_host_input(in, "decoder_input_ids", PTM_I64, 2, shape, seq);
        cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
        struct ptm_forward_opts fo = {.struct_size = sizeof fo, .logits_to_keep = 1};
        cr_assert_eq(ptm_model_forward_ex(m, in, out, &fo), PTM_OK, "%s", ptm_last_error());
        if (t == 1) { /* encode once */
            cr_assert_eq(ptm_tensor_map_set(in, "encoder_outputs",
                                            ptm_tensor_map_get(out, "encoder_last_hidden_state")),
                         PTM_OK);
        }
        ptm_tensor *logits = ptm_tensor_map_get(out, "logits");
        cr_assert_eq(ptm_tensor_dim(logits, 1), 1);
        int64_t V = ptm_tensor_dim(logits, 2), next[8];
        const float *l = ptm_tensor_data(logits);
        for (int64_t b = 0; b < B; b++) {
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++) {
                best = l[b * V + v] > l[b * V + best] ? v : best;
            }
            next[b] = done[b] ? pad : best;
            done[b] |= best == eos;
        }
        ptm_tensor_map_free(out);
        int64_t grown[8 * MAX_T]; /* [B, t] -> [B, t + 1] */
        for (int64_t b = 0; b < B; b++) {
            memcpy(grown + b * (t + 1), seq + b * t, (size_t)t * sizeof *seq);
            grown[b * (t + 1) + t] = next[b];
        }
        memcpy(seq, grown, (size_t)(B * (t + 1)) * sizeof *seq);
    }
    const int64_t *w = want->data;
    for (int64_t i = 0; i < B * T; i++) {
        cr_assert_eq(seq[i], w[i], "%s: row %lld position %lld: %lld, transformers %lld", dir,
                     (long long)(i / T), (long long)(i % T), (long long)seq[i], (long long)w[i]);
    }
    ptm_tensor_map_free(in);
    ptm_st_close(inputs);
    ptm_st_close(g);
    ptm_model_free(m);
}

Test(t5, greedy_decoding_matches_transformers_generate_v1_0)
{
    check_greedy(FIXTURE("t5-tiny"));
}

Test(t5, greedy_decoding_matches_transformers_generate_v1_1)
{
    check_greedy(FIXTURE("t5-tiny-v1_1"));
}

/* The decoder fed through a KV cache of dtype dt in two chunks (the encoder output passed back
 * as encoder_outputs) gives the fixture's logits within tol, as one pass does; returns the
 * largest error. */
static double check_cache_chunks(ptm_dtype dt, double tol)
{
    enum { SPLIT = 4 };
    const char *dir = FIXTURE("t5-tiny-v1_1");
    ptm_model *m = load(dir, NULL);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *expected = open_st(dir, "outputs.safetensors");
    const struct ptm_st_tensor *dec = st_get(inputs, "decoder_input_ids");
    const struct ptm_st_tensor *want = st_get(expected, "logits");
    int64_t B = dec->shape[0], T = dec->shape[1], V = want->shape[2];
    ptm_kv_cache *cache = NULL;
    cr_assert_eq(ptm_kv_cache_new(m, B, T, dt, &cache), PTM_OK, "%s", ptm_last_error());
    ptm_tensor_map *in = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    set_st_input(in, inputs, "input_ids");
    set_st_input(in, inputs, "attention_mask");
    double err = 0;
    for (int64_t at = 0; at < T; at = at == 0 ? SPLIT : T) {
        int64_t n = at == 0 ? SPLIT : T - SPLIT, shape[2] = {B, n}, buf[64];
        cr_assert_leq(B * n, 64);
        for (int64_t b = 0; b < B; b++) {
            memcpy(buf + b * n, (const int64_t *)dec->data + b * T + at, (size_t)n * sizeof *buf);
        }
        set_host_input(in, "decoder_input_ids", PTM_I64, 2, shape, buf);
        ptm_tensor_map *out = NULL;
        cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
        struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = cache};
        cr_assert_eq(ptm_model_forward_ex(m, in, out, &fo), PTM_OK, "%s", ptm_last_error());
        cr_assert_eq(ptm_kv_cache_len(cache), at + n);
        if (at == 0) {
            cr_assert_eq(ptm_tensor_map_set(in, "encoder_outputs",
                                            ptm_tensor_map_get(out, "encoder_last_hidden_state")),
                         PTM_OK);
        }
        const float *got = ptm_tensor_data(ptm_tensor_map_get(out, "logits"));
        const float *w = want->data;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t k = 0; k < n * V; k++) {
                double d = fabs((double)got[b * n * V + k] - (double)w[(b * T + at) * V + k]);
                err = d > err || isnan(d) ? d : err;
            }
        }
        ptm_tensor_map_free(out);
    }
    cr_expect(err <= tol, "%s cache: max abs error %.3g", ptm_dtype_name(dt), err);
    /* The cross-attention keys and values came from the first chunk's forward and were kept;
     * a reset makes the next request project them again. */
    ptm_tensor *ck = NULL, *cv = NULL;
    int32_t fill = -1;
    int64_t S = ptm_tensor_dim(ptm_tensor_map_get(in, "encoder_outputs"), 1);
    cr_assert_eq(ptm_kv_cache_cross_layer(cache, 1, 2, 12, S, &ck, &cv, &fill), PTM_OK, "%s",
                 ptm_last_error());
    cr_expect_eq(fill, 0);
    cr_expect_eq(ptm_tensor_dim(ck, 0), B);
    cr_expect_eq(ptm_kv_cache_cross_layer(cache, 1, 4, 12, S, &ck, &cv, &fill), PTM_E_INVAL);
    ptm_kv_cache_reset(cache);
    cr_assert_eq(ptm_kv_cache_cross_layer(cache, 1, 2, 12, S, &ck, &cv, &fill), PTM_OK);
    cr_expect_eq(fill, 1);
    ptm_tensor_map_free(in);
    ptm_kv_cache_free(cache);
    ptm_st_close(inputs);
    ptm_st_close(expected);
    ptm_model_free(m);
    return err;
}

Test(t5, decoder_cache_in_two_chunks_matches_transformers)
{
    check_cache_chunks(PTM_F32, PTM_TOL_F32);
}

/* Self- and cross-attention keys and values rounded as a half-precision cache stores them:
 * within the BF16 tolerance. */
Test(t5, half_precision_cache_stays_within_bf16_tolerance)
{
    check_half_caches(check_cache_chunks, PTM_TOL_BF16, "t5-tiny-v1_1");
}

Test(t5, encoder_model_refuses_a_cache)
{
    ptm_model *m = load(FIXTURE("t5-tiny-encoder"), NULL);
    ptm_kv_cache *cache = NULL;
    cr_assert_eq(ptm_kv_cache_new(m, 1, 4, PTM_F32, &cache), PTM_OK);
    int64_t ids[3] = {5, 6, 1}, shape[2] = {1, 3};
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, shape, ids);
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = cache};
    cr_expect_eq(ptm_model_forward_ex(m, in, out, &fo), PTM_E_UNSUPPORTED);
    cr_expect_eq(ptm_kv_cache_len(cache), 0);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_kv_cache_free(cache);
    ptm_model_free(m);
}

/* ptm_generate on an encoder-decoder model: the same tokens as transformers' generate(). */
static void check_generate(const char *dir)
{
    ptm_model *m = load(dir, NULL);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *ids = st_get(inputs, "input_ids");
    const struct ptm_st_tensor *mask = st_get(inputs, "attention_mask");
    const struct ptm_st_tensor *want = st_get(g, "sequences");
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = want->shape[1] - 1;
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
    ptm_st_close(inputs);
    ptm_st_close(g);
    ptm_model_free(m);
}

Test(t5, generate_matches_transformers_v1_0)
{
    check_generate(FIXTURE("t5-tiny"));
}

Test(t5, generate_matches_transformers_v1_1)
{
    check_generate(FIXTURE("t5-tiny-v1_1"));
}

Test(t5, generate_matches_transformers_5_saved_no_rescale)
{
    check_generate(FIXTURE("t5-tiny-hf5-noscale"));
}

Test(t5, beam_search_matches_transformers_v1_0)
{
    check_beam_fixture(FIXTURE("t5-tiny"));
}

Test(t5, beam_search_matches_transformers_v1_1)
{
    check_beam_fixture(FIXTURE("t5-tiny-v1_1"));
}

/* Every allocation of an encoder-decoder generate() failing in turn: PTM_E_NOMEM and no
 * output, until the sweep passes the last one and the tokens are the same. */
static void sweep_allocations(int32_t num_beams)
{
    ptm_model *m = load(FIXTURE("t5-tiny-v1_1"), NULL);
    int64_t ids[2 * 4] = {5, 9, 1, 0, 7, 3, 8, 1}, mask[2 * 4] = {1, 1, 1, 0, 1, 1, 1, 1};
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 3;
    o.num_beams = num_beams;
    int64_t *want = NULL, len = 0;
    cr_assert_eq(ptm_generate(m, ids, mask, 2, 4, &o, &want, &len), PTM_OK, "%s", ptm_last_error());
    for (long n = 1;; n++) {
        int64_t *out = (int64_t *)1, got_len = 0;
        ptm__alloc_fail_at(n);
        ptm_status st = ptm_generate(m, ids, mask, 2, 4, &o, &out, &got_len);
        long made = ptm__alloc_fail_at(0);
        if (st == PTM_OK) {
            cr_assert_lt(made, n, "succeeded although allocation %ld failed", n);
            cr_assert_eq(got_len, len);
            cr_assert_arr_eq(out, want, (size_t)(2 * len) * sizeof *out);
            ptm_free(out);
            break;
        }
        cr_assert_eq(st, PTM_E_NOMEM, "allocation %ld: %s", n, ptm_last_error());
        cr_assert_null(out);
    }
    ptm_free(want);
    ptm_model_free(m);
}

Test(t5, generate_survives_every_allocation_failure)
{
    sweep_allocations(1);
}

Test(t5, beam_search_survives_every_allocation_failure)
{
    sweep_allocations(3);
}

static int st_has(ptm_st_file *f, const char *name)
{
    for (size_t i = 0; i < ptm_st_count(f); i++) {
        if (strcmp(ptm_st_at(f, i)->name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* save_pretrained and back: tied weights stored once as HF does (the stacks' embed_tokens
 * never, lm_head only when untied), and the reloaded model gives transformers' outputs. */
static void check_save_round_trip(const char *fixture, int untied)
{
    char dir[64], cmd[128];
    snprintf(dir, sizeof dir, "/tmp/ptm_t5_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    ptm_model *m = load(fixture, NULL);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
    ptm_st_file *f = open_st(dir, "model.safetensors");
    cr_expect(st_has(f, "shared.weight"));
    cr_expect(!st_has(f, "encoder.embed_tokens.weight"));
    cr_expect(!st_has(f, "decoder.embed_tokens.weight"));
    cr_expect_eq(st_has(f, "lm_head.weight"), untied);
    ptm_st_close(f);
    check(fixture, NULL, load(dir, NULL), lm_pairs);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(t5, save_round_trip_stores_tied_weights_once)
{
    check_save_round_trip(FIXTURE("t5-tiny"), 0);
    check_save_round_trip(FIXTURE("t5-tiny-v1_1"), 1);
}

/* resize_token_embeddings resizes shared.weight, which the stacks' embed_tokens share, and
 * an untied lm_head; the model still runs and vocab_size follows. */
Test(t5, resize_token_embeddings_resizes_shared_and_head)
{
    static const char *const names[] = {"shared.weight", "encoder.embed_tokens.weight",
                                        "decoder.embed_tokens.weight", "lm_head.weight"};
    static const char *const fixtures[] = {FIXTURE("t5-tiny"), FIXTURE("t5-tiny-v1_1")};
    for (int f = 0; f < 2; f++) {
        ptm_model *m = load(fixtures[f], NULL);
        cr_assert_eq(ptm_model_resize_token_embeddings(m, 120, 0, 0), PTM_OK, "%s",
                     ptm_last_error());
        for (int i = 0; i < 4; i++) {
            cr_expect_eq(ptm_tensor_dim(ptm_model_param(m, names[i]), 0), 120, "%s: %s",
                         fixtures[f], names[i]);
        }
        int64_t v = 0;
        cr_assert_eq(ptm_config_get_int(ptm_model_config(m), "vocab_size", &v), PTM_OK);
        cr_expect_eq(v, 120);
        check(fixtures[f], NULL, m, no_pairs);
    }
}

Test(t5, config_defaults_and_attribute_map_are_transformers)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("t5", &c), PTM_OK, "%s", ptm_last_error());
    int64_t v = 0;
    double f = 0;
    const char *s = NULL;
    cr_assert_eq(ptm_config_get_int(c, "vocab_size", &v), PTM_OK);
    cr_expect_eq(v, 32128);
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &v), PTM_OK, "%s", ptm_last_error());
    cr_expect_eq(v, 512);
    cr_assert_eq(ptm_config_get_int(c, "num_attention_heads", &v), PTM_OK);
    cr_expect_eq(v, 8);
    cr_assert_eq(ptm_config_get_int(c, "num_hidden_layers", &v), PTM_OK);
    cr_expect_eq(v, 6);
    cr_assert_eq(ptm_config_get_int(c, "relative_attention_num_buckets", &v), PTM_OK);
    cr_expect_eq(v, 32);
    cr_assert_eq(ptm_config_get_int(c, "relative_attention_max_distance", &v), PTM_OK);
    cr_expect_eq(v, 128);
    cr_assert_eq(ptm_config_get_int(c, "eos_token_id", &v), PTM_OK);
    cr_expect_eq(v, 1);
    cr_assert_eq(ptm_config_get_int(c, "pad_token_id", &v), PTM_OK);
    cr_expect_eq(v, 0);
    cr_expect_eq(ptm_config_get_int(c, "num_decoder_layers", &v), PTM_E_NOT_FOUND);
    cr_assert_eq(ptm_config_get_float(c, "layer_norm_epsilon", &f), PTM_OK);
    cr_expect_float_eq(f, 1e-6, 1e-12);
    cr_assert_eq(ptm_config_get_string(c, "feed_forward_proj", &s), PTM_OK);
    cr_expect_str_eq(s, "relu");
    int32_t b = 0;
    cr_assert_eq(ptm_config_get_bool(c, "is_encoder_decoder", &b), PTM_OK);
    cr_expect_eq(b, 1);
    ptm_config_free(c);
}

/* A model built from a config (every weight from the _init_weights specs) runs, with the
 * stacks' embed_tokens sharing shared.weight and num_decoder_layers honoured. */
Test(t5, new_model_from_config_runs_with_tied_embeddings)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_parse("{\"model_type\": \"t5\", \"vocab_size\": 50, \"d_model\": 16, "
                                  "\"d_kv\": 4, \"d_ff\": 24, \"num_layers\": 2, "
                                  "\"num_decoder_layers\": 3, \"num_heads\": 2, "
                                  "\"feed_forward_proj\": \"gated-silu\"}",
                                  "t5 test", &c),
                 PTM_OK, "%s", ptm_last_error());
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_new(c, "T5ForConditionalGeneration", NULL, &m), PTM_OK, "%s",
                 ptm_last_error());
    const void *shared = ptm_tensor_data(ptm_model_param(m, "shared.weight"));
    cr_expect_eq(ptm_tensor_data(ptm_model_param(m, "encoder.embed_tokens.weight")), shared);
    cr_expect_eq(ptm_tensor_data(ptm_model_param(m, "decoder.embed_tokens.weight")), shared);
    cr_expect_eq(ptm_tensor_data(ptm_model_param(m, "lm_head.weight")), shared);
    cr_expect_not_null(ptm_model_param(m, "decoder.block.2.layer.2.DenseReluDense.wi_1.weight"));
    cr_expect_null(ptm_model_param(m, "encoder.block.2.layer.0.SelfAttention.q.weight"));
    cr_expect_null(ptm_model_param(m, "decoder.block.1.layer.0.SelfAttention."
                                      "relative_attention_bias.weight"));
    int64_t ids[2 * 5] = {4, 8, 15, 16, 1, 23, 42, 1, 0, 0}, dec[2 * 3] = {0, 7, 9, 0, 3, 5};
    int64_t mask[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    int64_t s_ids[2] = {2, 5}, s_dec[2] = {2, 3};
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, s_ids, ids);
    set_host_input(in, "attention_mask", PTM_I64, 2, s_ids, mask);
    set_host_input(in, "decoder_input_ids", PTM_I64, 2, s_dec, dec);
    cr_assert_eq(ptm_model_forward(m, in, out, 0), PTM_OK, "%s", ptm_last_error());
    ptm_tensor *logits = ptm_tensor_map_get(out, "logits");
    cr_assert_not_null(logits);
    cr_expect_eq(ptm_tensor_dim(logits, 1), 3);
    cr_expect_eq(ptm_tensor_dim(logits, 2), 50);
    const float *l = ptm_tensor_data(logits);
    for (int64_t i = 0; i < ptm_tensor_numel(logits); i++) {
        cr_assert(isfinite(l[i]), "logit %lld is %g", (long long)i, l[i]);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(m);
    ptm_config_free(c);
}

/* num_decoder_layers null (the default) means num_layers, and a failed forward names its
 * own fault, not the null key the plugin looked at. */
Test(t5, decoder_layers_default_to_num_layers)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_parse("{\"model_type\": \"t5\", \"vocab_size\": 40, \"d_model\": 8, "
                                  "\"d_kv\": 4, \"d_ff\": 8, \"num_layers\": 2, \"num_heads\": 2}",
                                  "t5 test", &c),
                 PTM_OK, "%s", ptm_last_error());
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_new(c, "T5Model", NULL, &m), PTM_OK, "%s", ptm_last_error());
    cr_expect_not_null(ptm_model_param(m, "decoder.block.1.layer.2.layer_norm.weight"));
    cr_expect_null(ptm_model_param(m, "decoder.block.2.layer.0.layer_norm.weight"));
    int64_t ids[3] = {5, 6, 1}, shape[2] = {1, 3};
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, shape, ids);
    cr_expect_eq(ptm_model_forward(m, in, out, 0), PTM_E_INVAL);
    cr_expect(strstr(ptm_last_error(), "decoder_input_ids") != NULL, "%s", ptm_last_error());
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(m);
    ptm_config_free(c);
}

Test(t5, seq2seq_without_decoder_input_ids_is_refused)
{
    ptm_model *m = load(FIXTURE("t5-tiny"), NULL);
    int64_t ids[3] = {5, 6, 1}, shape[2] = {1, 3};
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, shape, ids);
    cr_expect_eq(ptm_model_forward(m, in, out, 0), PTM_E_INVAL);
    cr_expect(strstr(ptm_last_error(), "decoder_input_ids") != NULL, "%s", ptm_last_error());
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(m);
}
