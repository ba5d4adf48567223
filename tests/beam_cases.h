/*
 * beam_cases.h - the beam search cases of tools/make_fixtures.py (BEAM_CASES: the same names
 * and options) and the check test_generate.c (LLaMA) and test_t5.c (T5) run on each: ptm_generate
 * on the fixture's beam.safetensors prompts must give transformers' sequences token for token,
 * shape included.
 */
#ifndef PTM_BEAM_CASES_H
#define PTM_BEAM_CASES_H

#include <criterion/criterion.h>
#include <stdio.h>

#include "fixture_util.h"
#include "ptm/ptm.h"

struct beam_case {
    const char *name;
    int32_t num_beams;
    float length_penalty;
    int32_t early_stopping;
    int32_t num_return_sequences;
    int64_t no_repeat_ngram_size;
    float repetition_penalty;
};

static const struct beam_case beam_cases[] = {
    {"beam4", 4, 1.0f, PTM_EARLY_STOPPING_HEURISTIC, 1, 0, 1.0f},
    {"lp2_early", 4, 2.0f, PTM_EARLY_STOPPING_TRUE, 1, 0, 1.0f},
    {"lpneg_never", 4, -0.5f, PTM_EARLY_STOPPING_NEVER, 1, 0, 1.0f},
    {"never_ret2", 4, 1.0f, PTM_EARLY_STOPPING_NEVER, 2, 0, 1.0f},
    {"ngram2_ret3", 4, 1.0f, PTM_EARLY_STOPPING_HEURISTIC, 3, 2, 1.0f},
    {"ngram3_lp05_ret4", 4, 0.5f, PTM_EARLY_STOPPING_HEURISTIC, 4, 3, 1.0f},
    {"rep13", 4, 1.0f, PTM_EARLY_STOPPING_HEURISTIC, 1, 0, 1.3f},
    {"greedy_ngram2_rep13", 1, 1.0f, PTM_EARLY_STOPPING_HEURISTIC, 1, 2, 1.3f},
};

#define BEAM_NEW_TOKENS 32 /* make_fixtures.py BEAM_NEW_TOKENS */

static inline void check_beam_case(ptm_model *m, const char *dir, const struct beam_case *c)
{
    ptm_st_file *f = open_st(dir, "beam.safetensors");
    const struct ptm_st_tensor *ids = st_get(f, "input_ids"), *mask = st_get(f, "attention_mask");
    char key[96];
    snprintf(key, sizeof key, "%s.sequences", c->name);
    const struct ptm_st_tensor *want = st_get(f, key);
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = BEAM_NEW_TOKENS;
    o.num_beams = c->num_beams;
    o.length_penalty = c->length_penalty;
    o.early_stopping = c->early_stopping;
    o.num_return_sequences = c->num_return_sequences;
    o.no_repeat_ngram_size = c->no_repeat_ngram_size;
    o.repetition_penalty = c->repetition_penalty;
    int64_t *out = NULL, len = 0, B = ids->shape[0];
    cr_assert_eq(ptm_generate(m, ids->data, mask->data, B, ids->shape[1], &o, &out, &len), PTM_OK,
                 "%s %s: %s", dir, c->name, ptm_last_error());
    int64_t rows = B * c->num_return_sequences;
    cr_assert_eq(want->shape[0], rows);
    cr_assert_eq(len, want->shape[1], "%s %s: %lld tokens, transformers %lld", dir, c->name,
                 (long long)len, (long long)want->shape[1]);
    const int64_t *w = want->data;
    for (int64_t i = 0; i < rows * len; i++) {
        cr_assert_eq(out[i], w[i], "%s %s: row %lld position %lld: %lld, transformers %lld", dir,
                     c->name, (long long)(i / len), (long long)(i % len), (long long)out[i],
                     (long long)w[i]);
    }
    ptm_free(out);
    ptm_st_close(f);
}

/* Every case of beam_cases on the fixture dir. */
static inline void check_beam_fixture(const char *dir)
{
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, NULL, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    for (size_t i = 0; i < sizeof beam_cases / sizeof beam_cases[0]; i++) {
        check_beam_case(m, dir, &beam_cases[i]);
    }
    ptm_model_free(m);
}

#endif
