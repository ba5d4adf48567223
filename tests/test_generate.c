/*
 * test_generate.c - the generation runtime (generate.c, generate_config.c, kv_cache.c)
 * through the public API: HF's logits processors on fixed score vectors against the values
 * transformers' own processors computed (llama-processors fixture), sampling edge cases
 * (top_k 1 is greedy search, equal seeds give equal tokens), generation_config.json reading
 * and writing with HF's precedence, and the cache's refusals. Beam search on LLaMA fixtures
 * (left-padded prompts of different lengths; one and two eos ids) against transformers'
 * generate() for every beam.safetensors case, the no_repeat_ngram mask on constructed rows,
 * the cache's row gather, the beam options' checks and a 1.0-sized options struct.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beam_cases.h"
#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

PTM_API long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

/* The processors with one case's options (tools/make_fixtures.py LLAMA_PROC_CASES) must
 * remove the same tokens as HF and leave the others equal. */
static void check_case(const char *name, struct ptm_generate_opts o)
{
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("llama-processors/processors.safetensors"), &f), PTM_OK, "%s",
                 ptm_last_error());
    const struct ptm_st_tensor *sc = st_get(f, "scores"), *ids = st_get(f, "ids");
    const struct ptm_st_tensor *want = st_get(f, name);
    int64_t rows = sc->shape[0], vocab = sc->shape[1];
    float *got = malloc(sc->nbytes);
    memcpy(got, sc->data, sc->nbytes);
    o.struct_size = sizeof o;
    cr_assert_eq(ptm_generate_process_logits(&o, ids->data, ids->shape[1], 0, got, rows, vocab),
                 PTM_OK, "%s", ptm_last_error());
    const float *w = want->data;
    int removed = 0;
    for (int64_t i = 0; i < rows * vocab; i++) {
        cr_assert_eq(isinf(got[i]) && got[i] < 0, isinf(w[i]) && w[i] < 0,
                     "%s: element %lld: ptm %g, transformers %g", name, (long long)i, got[i], w[i]);
        removed += isinf(w[i]) != 0;
        if (!isinf(w[i])) {
            cr_assert_float_eq(got[i], w[i], 1e-5, "%s: element %lld", name, (long long)i);
        }
    }
    cr_log_info("%s: %d of %lld removed", name, removed, (long long)(rows * vocab));
    free(got);
    ptm_st_close(f);
}

static struct ptm_generate_opts sampling(void)
{
    struct ptm_generate_opts o = {.struct_size = sizeof o,
                                  .do_sample = 1,
                                  .temperature = 1.0f,
                                  .top_p = 1.0f,
                                  .repetition_penalty = 1.0f};
    return o;
}

Test(generate, repetition_penalty_matches_transformers)
{
    struct ptm_generate_opts o = sampling();
    o.do_sample = 0;
    o.repetition_penalty = 1.3f;
    check_case("repetition_penalty", o);
}

Test(generate, temperature_matches_transformers)
{
    struct ptm_generate_opts o = sampling();
    o.temperature = 0.7f;
    check_case("temperature", o);
}

Test(generate, top_k_matches_transformers)
{
    struct ptm_generate_opts o = sampling();
    o.top_k = 5;
    check_case("top_k", o);
}

Test(generate, top_p_matches_transformers)
{
    struct ptm_generate_opts o = sampling();
    o.top_p = 0.8f;
    check_case("top_p", o);
}

Test(generate, min_p_matches_transformers)
{
    struct ptm_generate_opts o = sampling();
    o.min_p = 0.1f;
    check_case("min_p", o);
}

Test(generate, processor_chain_runs_in_transformers_order)
{
    struct ptm_generate_opts o = sampling();
    o.repetition_penalty = 1.3f;
    o.temperature = 0.7f;
    o.top_k = 10;
    o.top_p = 0.9f;
    o.min_p = 0.05f;
    check_case("chain", o);
}

/* ---- whole generation on a tiny checkpoint ---- */

static ptm_model *load(const char *dir)
{
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, NULL, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    return m;
}

static const int64_t prompt[2 * 4] = {0, 7, 8, 9, 11, 12, 13, 14};
static const int64_t prompt_mask[2 * 4] = {0, 1, 1, 1, 1, 1, 1, 1};

static int64_t *run(ptm_model *m, const struct ptm_generate_opts *o, int64_t *len)
{
    int64_t *out = NULL;
    cr_assert_eq(ptm_generate(m, prompt, prompt_mask, 2, 4, o, &out, len), PTM_OK, "%s",
                 ptm_last_error());
    return out;
}

Test(generate, top_k_one_sampling_equals_greedy)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = 12;
    int64_t n1 = 0, n2 = 0;
    int64_t *greedy = run(m, &o, &n1);
    o.do_sample = 1;
    o.top_k = 1;
    o.temperature = 0.5f;
    o.seed = 99;
    int64_t *sampled = run(m, &o, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_arr_eq(greedy, sampled, (size_t)(2 * n1) * sizeof *greedy);
    ptm_free(greedy);
    ptm_free(sampled);
    ptm_model_free(m);
}

Test(generate, same_seed_gives_same_tokens)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = 16;
    o.do_sample = 1;
    o.top_k = 0;
    o.temperature = 1.5f;
    o.seed = 1234;
    int64_t n1 = 0, n2 = 0, n3 = 0;
    int64_t *a = run(m, &o, &n1), *b = run(m, &o, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_arr_eq(a, b, (size_t)(2 * n1) * sizeof *a);
    o.seed = 4321;
    int64_t *c = run(m, &o, &n3);
    cr_assert(n3 != n1 || memcmp(a, c, (size_t)(2 * n1) * sizeof *a) != 0,
              "another seed drew the very same 32 tokens at temperature 1.5");
    ptm_free(a);
    ptm_free(b);
    ptm_free(c);
    ptm_model_free(m);
}

static int32_t count_steps(const int64_t *tokens, const int32_t *running, int64_t n, void *user)
{
    (void)tokens;
    (void)running;
    (void)n;
    return ++*(int *)user >= 3; /* stop after the third step */
}

Test(generate, stream_callback_sees_each_step_and_can_stop)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    int steps = 0;
    o.max_new_tokens = 10;
    o.stream = count_steps;
    o.stream_user = &steps;
    int64_t len = 0;
    int64_t *out = run(m, &o, &len);
    cr_assert_eq(steps, 3);
    cr_assert_eq(len, 4 + 3);
    ptm_free(out);
    ptm_model_free(m);
}

Test(generate, opts_init_reads_generation_config_then_model_config)
{
    ptm_model *m = load(FIXTURE("llama-tiny-mqa"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(o.n_eos, 2); /* generation_config.json: "eos_token_id": [2, 93] */
    cr_assert_eq(o.eos_ids[0], 2);
    cr_assert_eq(o.eos_ids[1], 93);
    cr_assert_eq(o.pad_id, 0);
    cr_assert_eq(o.bos_id, 1);
    cr_assert_eq(o.max_length, 20); /* HF default */
    cr_assert_eq(o.top_k, 50);
    cr_assert_eq(o.do_sample, 0);
    ptm_model_free(m);
}

Test(generate, opts_save_writes_what_differs_and_reads_back)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.do_sample = 1;
    o.top_p = 0.5f;
    o.max_new_tokens = 7;
    char dir[] = "/tmp/ptm-gencfg-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(ptm_generate_opts_save(&o, dir), PTM_OK, "%s", ptm_last_error());
    char path[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char text[2048] = {0};
    cr_assert(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    cr_assert_not_null(strstr(text, "\"top_p\""));
    cr_assert_not_null(strstr(text, "\"do_sample\": true"));
    cr_assert_null(strstr(text, "\"top_k\""), "top_k equals HF's default: not written");
    unlink(path);
    rmdir(dir);
    ptm_model_free(m);
}

Test(generate, rejects_bad_options_naming_them)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.do_sample = 1;
    o.temperature = 0.0f;
    int64_t *out = (int64_t *)1, len = 5;
    cr_assert_eq(ptm_generate(m, prompt, prompt_mask, 2, 4, &o, &out, &len), PTM_E_INVAL);
    cr_assert_null(out);
    cr_assert_not_null(strstr(ptm_last_error(), "temperature"));
    ptm_model_free(m);
}

Test(generate, kv_cache_refuses_other_dtypes_and_other_models)
{
    ptm_model *m = load(FIXTURE("llama-tiny")), *bert = load(FIXTURE("bert-tiny"));
    ptm_kv_cache *c = (ptm_kv_cache *)1;
    cr_assert_eq(ptm_kv_cache_new(m, 1, 8, PTM_I32, &c), PTM_E_UNSUPPORTED);
    cr_assert_null(c);
    cr_assert_not_null(strstr(ptm_last_error(), "I32"), "%s", ptm_last_error());
    const ptm_dtype half[2] = {PTM_F16, PTM_BF16};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ptm_kv_cache_new(m, 1, 8, half[i], &c), PTM_OK, "%s", ptm_last_error());
        ptm_kv_cache_free(c);
    }
    cr_assert_eq(ptm_kv_cache_new(bert, 1, 8, PTM_F32, &c), PTM_OK);
    ptm_device *cpu = NULL;
    cr_assert_eq(ptm_device_get("cpu", &cpu), PTM_OK);
    int64_t ids[3] = {2, 5, 6}, shape[2] = {1, 3};
    ptm_tensor *t = NULL;
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_from_host(cpu, PTM_I64, 2, shape, ids, &t), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    cr_assert_eq(ptm_tensor_map_set(in, "input_ids", t), PTM_OK);
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = c};
    cr_assert_eq(ptm_model_forward_ex(bert, in, out, &fo), PTM_E_UNSUPPORTED);
    cr_assert_not_null(strstr(ptm_last_error(), "BertModel"));
    cr_assert_eq(ptm_kv_cache_len(c), 0);
    ptm_kv_cache_free(c);
    ptm_tensor_free(t);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(bert);
    ptm_model_free(m);
}

Test(generate, forward_refuses_more_tokens_than_the_cache_holds)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    ptm_kv_cache *c = NULL;
    cr_assert_eq(ptm_kv_cache_new(m, 1, 2, PTM_F32, &c), PTM_OK);
    ptm_device *cpu = NULL;
    cr_assert_eq(ptm_device_get("cpu", &cpu), PTM_OK);
    int64_t ids[3] = {2, 5, 6}, shape[2] = {1, 3};
    ptm_tensor *t = NULL;
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_from_host(cpu, PTM_I64, 2, shape, ids, &t), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    cr_assert_eq(ptm_tensor_map_set(in, "input_ids", t), PTM_OK);
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = c};
    cr_assert_eq(ptm_model_forward_ex(m, in, out, &fo), PTM_E_RANGE);
    cr_assert_not_null(strstr(ptm_last_error(), "max_len 2"));
    ptm_kv_cache_free(c);
    ptm_tensor_free(t);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(m);
}

/* Generation with o on the test prompts: every allocation, failed in turn, gives PTM_E_NOMEM
 * and no output, until none fails and the rows ([rows, len]) equal an unfailed run's. */
static void expect_survives_allocation_failures(ptm_model *m, const struct ptm_generate_opts *o,
                                                int64_t rows)
{
    int64_t len = 0, *want = run(m, o, &len);
    for (long n = 1;; n++) {
        int64_t *out = (int64_t *)1, got_len = 0;
        ptm__alloc_fail_at(n);
        ptm_status st = ptm_generate(m, prompt, prompt_mask, 2, 4, o, &out, &got_len);
        long made = ptm__alloc_fail_at(0);
        if (st == PTM_OK) {
            cr_assert_lt(made, n, "succeeded although allocation %ld failed", n);
            cr_assert_eq(got_len, len);
            cr_assert_arr_eq(out, want, (size_t)(rows * len) * sizeof *out);
            ptm_free(out);
            break;
        }
        cr_assert_eq(st, PTM_E_NOMEM, "allocation %ld: %s", n, ptm_last_error());
        cr_assert_null(out);
    }
    ptm_free(want);
}

Test(generate, survives_every_allocation_failure)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 3;
    expect_survives_allocation_failures(m, &o, 2);
    ptm_model_free(m);
}

/* ---- beam search ---- */

Test(generate, beam_search_matches_transformers_llama)
{
    check_beam_fixture(FIXTURE("llama-tiny"));
}

Test(generate, beam_search_matches_transformers_llama_two_eos_ids)
{
    check_beam_fixture(FIXTURE("llama-tiny-mqa"));
}

/* The n-gram mask on a row 5 6 7 5 6: size 3 bans what followed "5 6" (7); size 2 what
 * followed "6" (7); size 1 every id so far; size 6 (longer than the row) nothing. */
Test(generate, no_repeat_ngram_bans_what_followed_the_last_ngram_prefix)
{
    static const int64_t ids[5] = {5, 6, 7, 5, 6};
    static const struct {
        int64_t n;
        const char *banned; /* ids 0..9 */
    } cases[] = {{3, "0000000100"}, {2, "0000000100"}, {1, "0000011100"}, {6, "0000000000"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct ptm_generate_opts o = {.struct_size = sizeof o,
                                      .temperature = 1.0f,
                                      .top_p = 1.0f,
                                      .repetition_penalty = 1.0f,
                                      .no_repeat_ngram_size = cases[c].n};
        float s[10];
        for (int i = 0; i < 10; i++) {
            s[i] = (float)i * 0.25f - 1.0f;
        }
        cr_assert_eq(ptm_generate_process_logits(&o, ids, 5, 0, s, 1, 10), PTM_OK, "%s",
                     ptm_last_error());
        for (int i = 0; i < 10; i++) {
            int banned = isinf(s[i]) && s[i] < 0;
            cr_assert_eq(banned, cases[c].banned[i] == '1', "n %lld: id %d banned %d",
                         (long long)cases[c].n, i, banned);
        }
    }
}

static void expect_refused(ptm_model *m, struct ptm_generate_opts o, ptm_status want,
                           const char *word)
{
    int64_t *out = (int64_t *)1, len = 5;
    cr_assert_eq(ptm_generate(m, prompt, prompt_mask, 2, 4, &o, &out, &len), want, "%s: %s", word,
                 ptm_last_error());
    cr_assert_null(out);
    cr_assert_eq(len, 0);
    cr_assert_not_null(strstr(ptm_last_error(), word), "%s not in: %s", word, ptm_last_error());
}

static int32_t never_called(const int64_t *t, const int32_t *r, int64_t n, void *user)
{
    (void)t;
    (void)r;
    (void)n;
    (void)user;
    return 0;
}

Test(generate, rejects_bad_beam_options_naming_them)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o}, bad;
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 2;
    bad = o;
    bad.num_beams = 0;
    expect_refused(m, bad, PTM_E_INVAL, "num_beams 0");
    bad = o;
    bad.num_beams = 2;
    bad.num_return_sequences = 3;
    expect_refused(m, bad, PTM_E_INVAL, "num_return_sequences 3 must be <= num_beams 2");
    bad = o;
    bad.num_return_sequences = 2; /* greedy search */
    expect_refused(m, bad, PTM_E_INVAL, "num_return_sequences 2");
    bad = o;
    bad.num_return_sequences = 0;
    expect_refused(m, bad, PTM_E_INVAL, "num_return_sequences 0");
    bad = o;
    bad.no_repeat_ngram_size = -1;
    expect_refused(m, bad, PTM_E_INVAL, "no_repeat_ngram_size -1");
    bad = o;
    bad.early_stopping = 3;
    expect_refused(m, bad, PTM_E_INVAL, "early_stopping 3");
    bad = o;
    bad.num_beams = 2;
    bad.do_sample = 1;
    expect_refused(m, bad, PTM_E_UNSUPPORTED, "do_sample");
    bad = o;
    bad.num_beams = 2;
    bad.stream = never_called;
    expect_refused(m, bad, PTM_E_UNSUPPORTED, "stream");
    bad = o;
    bad.struct_size = 8;
    expect_refused(m, bad, PTM_E_INVAL, "struct_size 8");
    ptm_model_free(m);
}

/* A caller built against ABI 1.0 passes the shorter struct: the beam members (garbage here)
 * are not read, HF's defaults stand, and greedy search runs. */
Test(generate, options_struct_of_abi_1_0_is_accepted)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 6;
    int64_t n1 = 0, n2 = 0;
    int64_t *want = run(m, &o, &n1);
    struct ptm_generate_opts old;
    memset(&old, 0x5a, sizeof old);
    old.struct_size = PTM_GENERATE_OPTS_SIZE_1_0;
    cr_assert_eq(ptm_generate_opts_init(m, &old), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(old.num_beams, 0x5a5a5a5a, "opts_init wrote past the caller's struct_size");
    old.max_new_tokens = 6;
    int64_t *got = run(m, &old, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_arr_eq(got, want, (size_t)(2 * n1) * sizeof *got);
    ptm_free(want);
    ptm_free(got);
    ptm_model_free(m);
}

/* Forward one token per row of ids through c; the logits into host memory. */
static void step_logits(ptm_model *m, ptm_kv_cache *c, const int64_t *ids, int64_t B, int64_t S,
                        float *logits, int64_t V)
{
    ptm_tensor_map *in = NULL, *out = NULL;
    int64_t shape[2] = {B, S};
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    set_host_input(in, "input_ids", PTM_I64, 2, shape, ids);
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = c, .logits_to_keep = 1};
    cr_assert_eq(ptm_model_forward_ex(m, in, out, &fo), PTM_OK, "%s", ptm_last_error());
    ptm_tensor *l = ptm_tensor_map_get(out, "logits");
    cr_assert_eq(ptm_tensor_dim(l, 2), V);
    cr_assert_eq(ptm_tensor_read(l, logits, (size_t)(B * V) * sizeof *logits), PTM_OK);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
}

/* Rows gathered [1, 1, 0] from a two-row cache continue as rows 1, 1, 0 would: the next
 * token's logits equal those of a cache that saw those prompts itself. */
Test(generate, kv_cache_gather_moves_and_repeats_rows)
{
    enum { V = 100 };
    ptm_model *m = load(FIXTURE("llama-tiny"));
    static const int64_t p2[2 * 3] = {5, 6, 7, 9, 10, 11},
                                p3[3 * 3] = {9, 10, 11, 9, 10, 11, 5, 6, 7};
    static const int64_t next[3] = {12, 13, 14}, rows[3] = {1, 1, 0};
    static float a[3 * V], b[3 * V], tmp[3 * V];
    ptm_kv_cache *c2 = NULL, *c3 = NULL;
    cr_assert_eq(ptm_kv_cache_new(m, 2, 8, PTM_F32, &c2), PTM_OK);
    cr_assert_eq(ptm_kv_cache_new(m, 3, 8, PTM_F32, &c3), PTM_OK);
    step_logits(m, c2, p2, 2, 3, tmp, V);
    step_logits(m, c3, p3, 3, 3, tmp, V);
    static const int64_t bad[1] = {2};
    cr_assert_eq(ptm_kv_cache_gather(c2, bad, 1), PTM_E_RANGE);
    cr_assert_not_null(strstr(ptm_last_error(), "rows[0] = 2"));
    cr_assert_eq(ptm_kv_cache_gather(c2, rows, 3), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_kv_cache_batch(c2), 3);
    cr_assert_eq(ptm_kv_cache_len(c2), 3);
    step_logits(m, c2, next, 3, 1, a, V);
    step_logits(m, c3, next, 3, 1, b, V);
    for (int i = 0; i < 3 * V; i++) {
        cr_assert_float_eq(a[i], b[i], 1e-5, "logit %d: gathered %g, direct %g", i, a[i], b[i]);
    }
    ptm_kv_cache_free(c2);
    ptm_kv_cache_free(c3);
    ptm_model_free(m);
}

Test(generate, generation_config_beam_keys_read_and_written)
{
    char dir[] = "/tmp/ptm-beamcfg-XXXXXX", path[512];
    cr_assert_not_null(mkdtemp(dir));
    static const char *const files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char target[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(target, sizeof target, "%s/%s", FIXTURE("llama-tiny"), files[i]);
        cr_assert_eq(symlink(target, path), 0, "%s", path);
    }
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"num_beams\": 3, \"early_stopping\": \"never\", \"length_penalty\": 0.5,\n"
          " \"no_repeat_ngram_size\": 2, \"num_return_sequences\": 2}\n",
          f);
    fclose(f);
    ptm_model *m = load(dir);
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(o.num_beams, 3);
    cr_assert_eq(o.early_stopping, PTM_EARLY_STOPPING_NEVER);
    cr_assert_float_eq(o.length_penalty, 0.5f, 1e-7);
    cr_assert_eq(o.no_repeat_ngram_size, 2);
    cr_assert_eq(o.num_return_sequences, 2);
    ptm_model_free(m);
    o.early_stopping = PTM_EARLY_STOPPING_TRUE;
    cr_assert_eq(ptm_generate_opts_save(&o, dir), PTM_OK, "%s", ptm_last_error());
    char text[2048] = {0};
    f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    cr_assert_not_null(strstr(text, "\"num_beams\": 3"), "%s", text);
    cr_assert_not_null(strstr(text, "\"early_stopping\": true"), "%s", text);
    cr_assert_not_null(strstr(text, "\"num_return_sequences\": 2"), "%s", text);
    f = fopen(path, "w");
    fputs("{\"early_stopping\": \"sometimes\"}\n", f);
    fclose(f);
    m = load(dir);
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_E_TYPE);
    cr_assert_not_null(strstr(ptm_last_error(), "early_stopping"));
    ptm_model_free(m);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    unlink(path);
    rmdir(dir);
}

Test(generate, beam_search_survives_every_allocation_failure)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 3;
    o.num_beams = 3;
    o.num_return_sequences = 2;
    expect_survives_allocation_failures(m, &o, 4);
    ptm_model_free(m);
}

/* Sampling with num_return_sequences 3: three rows per prompt (HF expands the prompts), each
 * with its prompt in front, drawn from one seeded stream so they are reproducible. */
Test(generate, sampling_returns_num_return_sequences_rows_per_prompt)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 8;
    o.do_sample = 1;
    o.top_k = 0;
    o.temperature = 1.5f;
    o.seed = 7;
    o.num_return_sequences = 3;
    int64_t *out = NULL, *again = NULL, len = 0, len2 = 0;
    cr_assert_eq(ptm_generate(m, prompt, prompt_mask, 2, 4, &o, &out, &len), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_generate(m, prompt, prompt_mask, 2, 4, &o, &again, &len2), PTM_OK);
    cr_assert_eq(len, len2);
    cr_assert_arr_eq(out, again, (size_t)(6 * len) * sizeof *out);
    for (int64_t r = 0; r < 6; r++) {
        cr_assert_arr_eq(out + r * len, prompt + (r / 3) * 4, 4 * sizeof *out, "row %lld",
                         (long long)r);
    }
    ptm_free(out);
    ptm_free(again);
    ptm_model_free(m);
}

int64_t ptm__argmax(const float *s, int64_t n); /* exported by libptm for this test */

/* Greedy picks as the old one-pass loop did (first maximum under '>', as torch): ties go to the
 * first, NaN never wins unless it stands at 0, whatever the row length (vector body and tail). */
static int64_t argmax_ref(const float *s, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++) {
        b = s[i] > s[b] ? i : b;
    }
    return b;
}

Test(generate, argmax_is_the_first_maximum_nan_never_wins)
{
    float s[64];
    for (int64_t n = 1; n <= 64; n++) {
        for (int64_t at = 0; at < n; at++) {
            for (int64_t i = 0; i < n; i++) {
                s[i] = (float)((i * 7) % 5) - 2.0f;
            }
            s[at] = 9.0f;
            if (at + 3 < n) {
                s[at + 3] = 9.0f; /* a later tie */
            }
            if (at > 1) {
                s[at - 1] = NAN; /* before the maximum (index 0 is the case below) */
            }
            if (at + 1 < n) {
                s[at + 1] = NAN;
            }
            cr_assert_eq(ptm__argmax(s, n), argmax_ref(s, n), "n=%lld at=%lld", (long long)n,
                         (long long)at);
            cr_assert_eq(ptm__argmax(s, n), at, "n=%lld at=%lld", (long long)n, (long long)at);
        }
    }
    float z[20] = {-0.0f, 0.0f, -1.0f};
    for (int i = 3; i < 20; i++) {
        z[i] = -INFINITY;
    }
    cr_assert_eq(ptm__argmax(z, 20), 0, "-0 and +0 tie: the first");
    z[0] = NAN;
    cr_assert_eq(ptm__argmax(z, 20), argmax_ref(z, 20), "a NaN at 0 stays");
    for (int i = 0; i < 20; i++) {
        z[i] = -INFINITY;
    }
    cr_assert_eq(ptm__argmax(z, 20), 0, "all -inf: 0");
}
