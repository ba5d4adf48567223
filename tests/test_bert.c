/*
 * test_bert.c - golden tests of the BERT plugin on the CPU backend: every fixture made by
 * tools/make_fixtures.py (tiny random checkpoints of each class and activation) is loaded
 * by name of its directory, run on the fixture's inputs, and every output transformers
 * wrote must match within the dtype's tolerance. Also the base_model_prefix rules both ways.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_tensor_map *load_inputs(const char *dir, ptm_st_file **keep)
{
    char path[512];
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, keep), PTM_OK, "%s", ptm_last_error());
    ptm_device *cpu = NULL;
    cr_assert_eq(ptm_device_get("cpu", &cpu), PTM_OK, "%s", ptm_last_error());
    ptm_tensor_map *in = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    for (size_t i = 0; i < ptm_st_count(*keep); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(*keep, i);
        ptm_tensor *x = NULL;
        cr_assert_eq(ptm_tensor_from_host(cpu, t->dtype, t->ndim, t->shape, t->data, &x), PTM_OK);
        cr_assert_eq(ptm_tensor_map_set(in, t->name, x), PTM_OK);
        ptm_tensor_free(x);
    }
    return in;
}

/* Run the fixture in dir and compare every expected output; returns the worst error. */
static double check_fixture(const char *dir, const char *dtype, double tol,
                            const char *missing_prefix)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = dtype};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    /* Only what the fixture's own class lacked may be missing (HF reports the same). */
    for (const char *const *miss = ptm_model_loading_info(m, PTM_LOAD_MISSING); *miss; miss++) {
        cr_assert(missing_prefix && strncmp(*miss, missing_prefix, strlen(missing_prefix)) == 0,
                  "%s: missing %s", dir, *miss);
    }
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0], "%s: unexpected %s", dir,
                   ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0]);
    ptm_st_file *inputs_file = NULL, *expected = NULL;
    ptm_tensor_map *in = load_inputs(dir, &inputs_file), *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s: %s", dir, ptm_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/outputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &expected), PTM_OK, "%s", ptm_last_error());
    double worst = 0;
    for (size_t i = 0; i < ptm_st_count(expected); i++) {
        const struct ptm_st_tensor *want = ptm_st_at(expected, i);
        ptm_tensor *got = ptm_tensor_map_get(out, want->name);
        cr_assert_not_null(got, "%s: output %s missing", dir, want->name);
        cr_assert_eq(want->dtype, PTM_F32);
        size_t n = want->nbytes / 4;
        cr_assert_eq((size_t)ptm_tensor_numel(got), n, "%s: %s size", dir, want->name);
        const float *g = ptm_tensor_data(got), *w = want->data;
        cr_assert(ptm_tensor_is_contiguous(got));
        double err = 0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)g[k] - (double)w[k]);
            err = d > err || isnan(d) ? d : err;
        }
        cr_expect(err <= tol, "%s: %s max abs error %.3g > %.3g", dir, want->name, err, tol);
        worst = err > worst ? err : worst;
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inputs_file);
    ptm_st_close(expected);
    ptm_model_free(m);
    return worst;
}

#define GOLDEN(name, fixture, dtype, tol, missing)                                                 \
    Test(bert, name)                                                                               \
    {                                                                                              \
        double e = check_fixture(FIXTURE(fixture), dtype, tol, missing);                           \
        cr_log_info("%s: max abs error %.3g", fixture, e);                                         \
    }

GOLDEN(matches_transformers_base_with_hidden_states, "bert-tiny", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_gelu_new, "bert-tiny-gelu-new", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_relu, "bert-tiny-relu", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_without_pooler, "bert-tiny-nopool", NULL, PTM_TOL_F32, "pooler.")
GOLDEN(matches_transformers_masked_lm, "bert-tiny-mlm", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_sequence_classification, "bert-tiny-seqcls", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_token_classification, "bert-tiny-tokcls", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_question_answering, "bert-tiny-qa", NULL, PTM_TOL_F32, NULL)
GOLDEN(matches_transformers_bf16_weights, "bert-tiny-bf16", "auto", PTM_TOL_BF16, NULL)

Test(bert, base_checkpoint_loads_into_a_head_class_with_head_missing)
{
    struct ptm_load_opts o = {.struct_size = sizeof o,
                              .class_name = "BertForSequenceClassification"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny"), &o, &m), PTM_OK, "%s", ptm_last_error());
    const char *const *miss = ptm_model_loading_info(m, PTM_LOAD_MISSING);
    cr_assert_str_eq(miss[0], "classifier.weight");
    cr_assert_str_eq(miss[1], "classifier.bias");
    cr_assert_null(miss[2]);
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)[0]);
    cr_assert_not_null(ptm_model_param(m, "bert.pooler.dense.weight"));
    ptm_model_free(m);
}

Test(bert, head_checkpoint_loads_into_the_base_class_with_head_unexpected)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .class_name = "BertModel"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny-seqcls"), &o, &m), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_null(ptm_model_loading_info(m, PTM_LOAD_MISSING)[0]);
    const char *const *unexp = ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED);
    cr_assert_str_eq(unexp[0], "classifier.bias");
    cr_assert_str_eq(unexp[1], "classifier.weight");
    cr_assert_null(unexp[2]);
    /* The encoder's weights are the head checkpoint's, prefix stripped. */
    cr_assert_not_null(ptm_model_param(m, "embeddings.word_embeddings.weight"));
    ptm_model_free(m);
}

Test(bert, masked_lm_decoder_shares_the_word_embeddings)
{
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny-mlm"), NULL, &m), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_tensor_data(ptm_model_param(m, "cls.predictions.decoder.weight")),
                 ptm_tensor_data(ptm_model_param(m, "bert.embeddings.word_embeddings.weight")));
    cr_assert_eq(ptm_tensor_data(ptm_model_param(m, "cls.predictions.decoder.bias")),
                 ptm_tensor_data(ptm_model_param(m, "cls.predictions.bias")));
    ptm_model_free(m);
}

Test(bert, a_mismatched_shape_is_an_error_naming_both_shapes)
{
    const char *over[] = {"vocab_size=100", NULL};
    struct ptm_load_opts o = {.struct_size = sizeof o, .config_overrides = over};
    ptm_model *m = (ptm_model *)1;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny"), &o, &m), PTM_E_INVAL);
    cr_assert_null(m);
    cr_assert(strstr(ptm_last_error(), "embeddings.word_embeddings.weight") != NULL, "%s",
              ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "[99, 32]") && strstr(ptm_last_error(), "[100, 32]"), "%s",
              ptm_last_error());
    o.ignore_mismatched_sizes = 1;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny"), &o, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_str_eq(ptm_model_loading_info(m, PTM_LOAD_MISMATCHED)[0],
                     "embeddings.word_embeddings.weight");
    ptm_model_free(m);
}

Test(bert, unknown_name_lists_what_was_tried)
{
    ptm_model *m = (ptm_model *)1;
    cr_assert_eq(ptm_model_load("no-such-org/no-such-model", NULL, &m), PTM_E_NOT_FOUND);
    cr_assert_null(m);
    cr_assert(strstr(ptm_last_error(), "no-such-org/no-such-model") != NULL);
    cr_assert(strstr(ptm_last_error(), "tried") != NULL, "%s", ptm_last_error());
}
