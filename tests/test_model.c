/*
 * test_model.c - the model lifecycle on the BERT fixtures: save_pretrained round trips
 * (single file, sharded with an index, a variant) give bit-identical weights and store tied
 * weights once; ptm_model_new initialises with HF's _init_weights distributions,
 * deterministically per seed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static void tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/ptm_model_XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void assert_same_weights(const ptm_model *a, const ptm_model *b)
{
    cr_assert_eq(ptm_model_n_params(a), ptm_model_n_params(b));
    for (size_t i = 0; i < ptm_model_n_params(a); i++) {
        const char *name = NULL;
        ptm_tensor *ta = ptm_model_param_at(a, i, &name);
        ptm_tensor *tb = ptm_model_param(b, name);
        cr_assert_not_null(tb, "%s missing after reload", name);
        cr_assert_eq(ptm_tensor_dtype(ta), ptm_tensor_dtype(tb), "%s dtype", name);
        cr_assert_eq(ptm_tensor_nbytes(ta), ptm_tensor_nbytes(tb), "%s size", name);
        cr_assert_eq(memcmp(ptm_tensor_data(ta), ptm_tensor_data(tb), ptm_tensor_nbytes(ta)), 0,
                     "%s differs after the round trip", name);
    }
}

static ptm_model *load(const char *dir, const char *variant)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .variant = variant};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    return m;
}

Test(model, save_round_trip_is_bit_identical_and_stores_tied_weights_once)
{
    char dir[64], path[128];
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("bert-tiny-mlm"), NULL);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert_null(ptm_st_find(f, "cls.predictions.decoder.weight"));
    cr_assert_null(ptm_st_find(f, "cls.predictions.decoder.bias"));
    cr_assert_not_null(ptm_st_find(f, "bert.embeddings.word_embeddings.weight"));
    cr_assert_str_eq(ptm_st_metadata(f, "format"), "pt");
    ptm_st_close(f);
    ptm_model *back = load(dir, NULL);
    cr_assert_str_eq(ptm_model_class_name(back), "BertForMaskedLM");
    assert_same_weights(m, back);
    ptm_model_free(back);
    ptm_model_free(m);
    rm_rf(dir);
}

Test(model, sharded_save_writes_an_index_and_reloads_identically)
{
    char dir[64], path[512];
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    struct ptm_save_opts o = {.struct_size = sizeof o, .max_shard_size = "20KB"};
    cr_assert_eq(ptm_model_save(m, dir, &o), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cr_assert_eq(access(path, R_OK), 0, "no index written");
    /* Several shards, each within 20 KB (20,000 bytes) of tensor data plus its header. */
    DIR *d = opendir(dir);
    int shards = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "model-0", 7) == 0) {
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            cr_assert_eq(stat(path, &sb), 0);
            cr_assert_leq(sb.st_size, 20000 + 4096, "%s is %lld bytes", e->d_name,
                          (long long)sb.st_size);
            shards++;
        }
    }
    closedir(d);
    cr_assert_geq(shards, 2, "%d shards", shards);
    ptm_model *back = load(dir, NULL);
    assert_same_weights(m, back);
    ptm_model_free(back);
    ptm_model_free(m);
    rm_rf(dir);
}

Test(model, variant_names_the_weights_file)
{
    char dir[64], path[160];
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    struct ptm_save_opts o = {.struct_size = sizeof o, .variant = "v2"};
    cr_assert_eq(ptm_model_save(m, dir, &o), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/model.v2.safetensors", dir);
    cr_assert_eq(access(path, R_OK), 0);
    ptm_model *back = load(dir, "v2");
    assert_same_weights(m, back);
    ptm_model_free(back);
    ptm_model_free(m);
    rm_rf(dir);
}

static ptm_model *new_model(uint64_t seed)
{
    ptm_config *cfg = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("bert-tiny-mlm/config.json"), &cfg), PTM_OK, "%s",
                 ptm_last_error());
    struct ptm_load_opts o = {.struct_size = sizeof o, .seed = seed};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_new(cfg, NULL, &o, &m), PTM_OK, "%s", ptm_last_error());
    ptm_config_free(cfg);
    return m;
}

Test(model, equal_seeds_give_bit_identical_weights)
{
    ptm_model *a = new_model(42), *b = new_model(42), *c = new_model(43);
    assert_same_weights(a, b);
    const char *w = "bert.encoder.layer.0.attention.self.query.weight";
    cr_assert_neq(memcmp(ptm_tensor_data(ptm_model_param(a, w)),
                         ptm_tensor_data(ptm_model_param(c, w)),
                         ptm_tensor_nbytes(ptm_model_param(a, w))),
                  0);
    ptm_model_free(a);
    ptm_model_free(b);
    ptm_model_free(c);
}

static void stats(ptm_tensor *t, double *mean, double *std)
{
    const float *x = ptm_tensor_data(t);
    int64_t n = ptm_tensor_numel(t);
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
        ss += (double)x[i] * x[i];
    }
    *mean = s / n;
    *std = sqrt(ss / n - *mean * *mean);
}

Test(model, init_weights_follow_hf_distributions)
{
    ptm_model *m = new_model(7);
    double mean, std;
    /* Linear weights: normal(0, initializer_range = 0.02). 37 x 32 samples: the standard
     * error of the mean is 0.02 / sqrt(1184) = 6e-4, of the std about 4e-4; allow 5 sigma. */
    stats(ptm_model_param(m, "bert.encoder.layer.0.intermediate.dense.weight"), &mean, &std);
    cr_assert(fabs(mean) < 5 * 0.02 / sqrt(37.0 * 32), "mean %g", mean);
    cr_assert(fabs(std - 0.02) < 5 * 0.02 / sqrt(2.0 * 37 * 32), "std %g", std);
    /* Biases zero, LayerNorm weight one and bias zero. */
    stats(ptm_model_param(m, "bert.encoder.layer.0.intermediate.dense.bias"), &mean, &std);
    cr_assert(mean == 0 && std == 0);
    stats(ptm_model_param(m, "bert.embeddings.LayerNorm.weight"), &mean, &std);
    cr_assert(mean == 1 && std == 0);
    stats(ptm_model_param(m, "cls.predictions.bias"), &mean, &std);
    cr_assert(mean == 0 && std == 0);
    /* The padding row (pad_token_id 0) of the word embeddings is zero, the others are not. */
    ptm_tensor *emb = ptm_model_param(m, "bert.embeddings.word_embeddings.weight");
    const float *e = ptm_tensor_data(emb);
    int64_t dim = ptm_tensor_dim(emb, 1);
    for (int64_t j = 0; j < dim; j++) {
        cr_assert(e[j] == 0.0f);
    }
    cr_assert(e[dim] != 0.0f);
    /* A new model is tied too. */
    cr_assert_eq(ptm_tensor_data(ptm_model_param(m, "cls.predictions.decoder.weight")), e);
    ptm_model_free(m);
}

Test(model, num_parameters_counts_tied_weights_once)
{
    ptm_model *m = load(FIXTURE("bert-tiny-mlm"), NULL);
    int64_t all = ptm_model_num_parameters(m, 0);
    int64_t no_emb = ptm_model_num_parameters(m, 1);
    /* vocab 128 x 32 + positions 64 x 32 + types 2 x 32 */
    cr_assert_eq(all - no_emb, 128 * 32 + 64 * 32 + 2 * 32);
    ptm_model_free(m);
}
