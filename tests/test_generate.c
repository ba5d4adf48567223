/*
 * test_generate.c - the generation runtime (generate.c, generate_config.c, kv_cache.c)
 * through the public API: HF's logits processors on fixed score vectors against the values
 * transformers' own processors computed (llama-processors fixture), sampling edge cases
 * (top_k 1 is greedy search, equal seeds give equal tokens), generation_config.json reading
 * and writing with HF's precedence, and the cache's refusals.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

PTM_API long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

static const struct ptm_st_tensor *st_get(ptm_st_file *f, const char *name)
{
    for (size_t i = 0; i < ptm_st_count(f); i++) {
        if (strcmp(ptm_st_at(f, i)->name, name) == 0) {
            return ptm_st_at(f, i);
        }
    }
    cr_assert_fail("tensor %s missing", name);
    return NULL;
}

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

Test(generate, kv_cache_refuses_half_precision_and_other_models)
{
    ptm_model *m = load(FIXTURE("llama-tiny")), *bert = load(FIXTURE("bert-tiny"));
    ptm_kv_cache *c = (ptm_kv_cache *)1;
    cr_assert_eq(ptm_kv_cache_new(m, 1, 8, PTM_F16, &c), PTM_E_UNSUPPORTED);
    cr_assert_null(c);
    cr_assert_not_null(strstr(ptm_last_error(), "F16"));
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

Test(generate, survives_every_allocation_failure)
{
    ptm_model *m = load(FIXTURE("llama-tiny"));
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK);
    o.max_new_tokens = 3;
    int64_t len = 0, *want = run(m, &o, &len);
    for (long n = 1;; n++) {
        int64_t *out = (int64_t *)1, got_len = 0;
        ptm__alloc_fail_at(n);
        ptm_status st = ptm_generate(m, prompt, prompt_mask, 2, 4, &o, &out, &got_len);
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
