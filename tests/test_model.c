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
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Run dir's fixture inputs through m; return the max abs error against the fixture outputs. */
static double fixture_error(ptm_model *m, const char *dir)
{
    char path[512];
    ptm_device *cpu = ptm_model_device(m);
    ptm_st_file *inf = NULL, *outf = NULL;
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &inf), PTM_OK);
    snprintf(path, sizeof path, "%s/outputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &outf), PTM_OK);
    ptm_tensor_map *in = NULL, *out = NULL;
    ptm_tensor_map_new(&in);
    ptm_tensor_map_new(&out);
    for (size_t i = 0; i < ptm_st_count(inf); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(inf, i);
        ptm_tensor *x = NULL;
        cr_assert_eq(ptm_tensor_from_host(cpu, t->dtype, t->ndim, t->shape, t->data, &x), PTM_OK);
        ptm_tensor_map_set(in, t->name, x);
        ptm_tensor_free(x);
    }
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s", ptm_last_error());
    double worst = 0;
    for (size_t i = 0; i < ptm_st_count(outf); i++) {
        const struct ptm_st_tensor *w = ptm_st_at(outf, i);
        ptm_tensor *g = ptm_tensor_map_get(out, w->name);
        cr_assert_not_null(g, "%s missing", w->name);
        const float *gv = ptm_tensor_data(g), *wv = w->data;
        for (size_t k = 0; k < w->nbytes / 4; k++) {
            double d = fabs((double)gv[k] - wv[k]);
            worst = d > worst ? d : worst;
        }
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inf);
    ptm_st_close(outf);
    return worst;
}

Test(model, a_pruned_checkpoint_loads_back_and_matches_transformers)
{
    ptm_model *m = load(FIXTURE("bert-tiny-pruned"), NULL);
    cr_assert_eq(
        ptm_tensor_dim(ptm_model_param(m, "encoder.layer.0.attention.self.query.weight"), 0), 16);
    cr_assert_eq(ptm_model_n_pruned_heads(m, 0), 2);
    double e = fixture_error(m, FIXTURE("bert-tiny-pruned"));
    cr_assert(e <= 1e-4, "max abs error %g", e);
    ptm_model_free(m);
}

Test(model, pruning_heads_matches_transformers_and_saves_loadably)
{
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    const int32_t l0[] = {0, 2}, l1[] = {3};
    cr_assert_eq(ptm_model_prune_heads(m, 0, l0, 2), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_prune_heads(m, 1, l1, 1), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_prune_heads(m, 0, l0, 1), PTM_OK); /* already pruned: no-op */
    double e = fixture_error(m, FIXTURE("bert-tiny-pruned"));
    cr_assert(e <= 1e-4, "max abs error %g", e);
    const int32_t bad[] = {9};
    cr_assert_eq(ptm_model_prune_heads(m, 0, bad, 1), PTM_E_RANGE);
    char dir[64];
    tmpdir(dir, sizeof dir);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    ptm_model *back = load(dir, NULL);
    assert_same_weights(m, back);
    e = fixture_error(back, FIXTURE("bert-tiny-pruned"));
    cr_assert(e <= 1e-4, "reloaded: max abs error %g", e);
    ptm_model_free(back);
    ptm_model_free(m);
    rm_rf(dir);
}

Test(model, resize_token_embeddings_keeps_old_rows_and_follows_hf)
{
    ptm_model *m = load(FIXTURE("bert-tiny-mlm"), NULL);
    ptm_tensor *old = ptm_model_input_embeddings(m);
    int64_t dim = ptm_tensor_dim(old, 1), rows = ptm_tensor_dim(old, 0);
    float *before = malloc(ptm_tensor_nbytes(old));
    memcpy(before, ptm_tensor_data(old), ptm_tensor_nbytes(old));
    cr_assert_eq(ptm_model_resize_token_embeddings(m, rows + 3, 8, 1), PTM_OK, "%s",
                 ptm_last_error());
    int64_t want = (rows + 3 + 7) / 8 * 8;
    ptm_tensor *emb = ptm_model_input_embeddings(m);
    cr_assert_eq(ptm_tensor_dim(emb, 0), want);
    int64_t v = 0;
    cr_assert_eq(ptm_config_get_int(ptm_model_config(m), "vocab_size", &v), PTM_OK);
    cr_assert_eq(v, want);
    const float *e = ptm_tensor_data(emb);
    cr_assert_eq(memcmp(e, before, (size_t)(rows * dim) * 4), 0, "old rows changed");
    /* mean_resizing: new rows are the old mean plus noise of 1e-9 x covariance. */
    for (int64_t j = 0; j < dim; j++) {
        double mean = 0;
        for (int64_t r = 0; r < rows; r++) {
            mean += before[r * dim + j] / (double)rows;
        }
        cr_assert(fabs(e[rows * dim + j] - mean) < 1e-3, "dim %lld: %g vs mean %g", (long long)j,
                  e[rows * dim + j], mean);
    }
    /* Tied output embeddings and the output bias follow. */
    cr_assert_eq(ptm_tensor_data(ptm_model_output_embeddings(m)), e);
    ptm_tensor *bias = ptm_model_param(m, "cls.predictions.bias");
    cr_assert_eq(ptm_tensor_dim(bias, 0), want);
    cr_assert_eq(((const float *)ptm_tensor_data(bias))[want - 1], 0.0f);
    cr_assert_eq(ptm_tensor_data(ptm_model_param(m, "cls.predictions.decoder.bias")),
                 ptm_tensor_data(bias));
    free(before);
    ptm_model_free(m);
}

Test(model, set_input_embeddings_reties_the_output_embeddings)
{
    ptm_model *m = load(FIXTURE("bert-tiny-mlm"), NULL);
    int64_t shape[2] = {130, 32};
    ptm_tensor *t = NULL;
    cr_assert_eq(ptm_tensor_new(ptm_model_device(m), PTM_F32, 2, shape, &t), PTM_OK);
    memset(ptm_tensor_data(t), 0, ptm_tensor_nbytes(t));
    cr_assert_eq(ptm_model_set_input_embeddings(m, t), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_input_embeddings(m), t);
    cr_assert_eq(ptm_tensor_data(ptm_model_output_embeddings(m)), ptm_tensor_data(t));
    int64_t bad_shape[2] = {130, 31};
    ptm_tensor *bad = NULL;
    cr_assert_eq(ptm_tensor_new(ptm_model_device(m), PTM_F32, 2, bad_shape, &bad), PTM_OK);
    cr_assert_eq(ptm_model_set_input_embeddings(m, bad), PTM_E_INVAL);
    ptm_tensor_free(bad);
    ptm_tensor_free(t);
    ptm_model_free(m);
}

Test(model, resize_position_embeddings_goes_through_the_architecture)
{
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    cr_assert_eq(ptm_model_resize_position_embeddings(m, 80), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_tensor_dim(ptm_model_param(m, "embeddings.position_embeddings.weight"), 0),
                 80);
    int64_t v = 0;
    ptm_config_get_int(ptm_model_config(m), "max_position_embeddings", &v);
    cr_assert_eq(v, 80);
    /* The first 64 rows are unchanged, so outputs on the 12-token fixture are too. */
    double e = fixture_error(m, FIXTURE("bert-tiny"));
    cr_assert(e <= 1e-4, "max abs error %g", e);
    ptm_model_free(m);
}

Test(model, a_bf16_checkpoint_saves_back_bit_identically)
{
    char dir[64], path[160];
    tmpdir(dir, sizeof dir);
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = "auto"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny-bf16"), &o, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    ptm_st_file *a = NULL, *b = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("bert-tiny-bf16/model.safetensors"), &a), PTM_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &b), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_count(a), ptm_st_count(b));
    for (size_t i = 0; i < ptm_st_count(a); i++) {
        const struct ptm_st_tensor *ta = ptm_st_at(a, i), *tb = ptm_st_find(b, ta->name);
        cr_assert_not_null(tb, "%s not saved", ta->name);
        cr_assert_eq(ta->dtype, tb->dtype, "%s: dtype %s saved as %s", ta->name,
                     ptm_dtype_name(ta->dtype), ptm_dtype_name(tb->dtype));
        cr_assert_eq(ta->nbytes, tb->nbytes);
        cr_assert_eq(memcmp(ta->data, tb->data, ta->nbytes), 0, "%s differs", ta->name);
    }
    ptm_st_close(a);
    ptm_st_close(b);
    ptm_model_free(m);
    rm_rf(dir);
}

Test(model, tags_land_in_the_model_card_and_accessors_answer)
{
    char dir[64], path[128], card[512] = "";
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("bert-tiny-seqcls"), NULL);
    cr_assert_str_eq(ptm_model_main_input_name(m), "input_ids");
    cr_assert_eq(ptm_model_can_generate(m), 0);
    cr_assert_str_eq(ptm_model_base_model_prefix(m), "bert.");
    cr_assert_str_eq(ptm_arch_builtin_name_at(ptm_model_arch(m), 0), "bert-base-uncased");
    const char *tags[] = {"ptm", "text-classification", "ptm", NULL};
    cr_assert_eq(ptm_model_add_tags(m, tags), PTM_OK);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/README.md", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(card, 1, sizeof card - 1, f);
    card[n] = '\0';
    fclose(f);
    cr_assert_str_eq(card, "---\nlibrary_name: transformers\ntags:\n- ptm\n- text-classification\n"
                           "---\n");
    ptm_model_free(m);
    rm_rf(dir);
}

Test(model, attn_implementation_is_chosen_and_reported)
{
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    cr_assert_str_eq(ptm_model_attn_implementation(m), "fused");
    ptm_model_free(m);
    struct ptm_load_opts o = {.struct_size = sizeof o, .attn_implementation = "sdpa"};
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny"), &o, &m), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
    o.attn_implementation = "eager";
    m = (ptm_model *)1;
    cr_assert_eq(ptm_model_load(FIXTURE("bert-tiny"), &o, &m), PTM_E_UNSUPPORTED);
    cr_assert_null(m);
    cr_assert(strstr(ptm_last_error(), "\"eager\"") != NULL, "%s", ptm_last_error());
}

Test(model, resize_without_mean_initialises_new_rows_from_the_init_spec)
{
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    ptm_tensor *old = ptm_model_input_embeddings(m);
    int64_t rows = ptm_tensor_dim(old, 0), dim = ptm_tensor_dim(old, 1);
    cr_assert_eq(ptm_model_resize_token_embeddings(m, rows + 200, 0, 0), PTM_OK, "%s",
                 ptm_last_error());
    const float *e = ptm_tensor_data(ptm_model_input_embeddings(m));
    double s = 0, ss = 0;
    int64_t n = 200 * dim;
    for (int64_t i = 0; i < n; i++) {
        s += e[rows * dim + i];
        ss += (double)e[rows * dim + i] * e[rows * dim + i];
    }
    double mean = s / n, std = sqrt(ss / n - mean * mean);
    /* normal(0, initializer_range 0.02): 6400 samples, 5 standard errors. */
    cr_assert(fabs(mean) < 5 * 0.02 / sqrt((double)n), "mean %g", mean);
    cr_assert(fabs(std - 0.02) < 5 * 0.02 / sqrt(2.0 * n), "std %g", std);
    /* Shrinking keeps the first rows. */
    cr_assert_eq(ptm_model_resize_token_embeddings(m, 10, 0, 0), PTM_OK);
    cr_assert_eq(ptm_tensor_dim(ptm_model_input_embeddings(m), 0), 10);
    ptm_model_free(m);
}

Test(model, a_generative_model_saves_its_generation_config)
{
    char dir[64], path[160];
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("llama-tiny-gqa2"), NULL);
    cr_assert_eq(ptm_model_can_generate(m), 1);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    cr_assert_eq(access(path, R_OK), 0, "no generation_config.json");
    ptm_model *back = load(dir, NULL);
    struct ptm_generate_opts a = {.struct_size = sizeof a}, b = {.struct_size = sizeof b};
    cr_assert_eq(ptm_generate_opts_init(m, &a), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_generate_opts_init(back, &b), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(a.bos_id, b.bos_id);
    cr_assert_eq(a.pad_id, b.pad_id);
    cr_assert_eq(a.eos_ids[0], b.eos_ids[0]);
    cr_assert_eq(a.n_eos, b.n_eos);
    ptm_model_free(back);
    ptm_model_free(m);
    rm_rf(dir);
}

/* The dtype the config says, and the dtype the weights have, of the checkpoint in dir. */
static void checkpoint_dtypes(const char *dir, char *cfg_dtype, size_t cap, ptm_dtype *weights)
{
    char path[160];
    ptm_config *cfg = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    cr_assert_eq(ptm_config_load(path, &cfg), PTM_OK, "%s", ptm_last_error());
    const char *dt = NULL;
    cr_assert_eq(ptm_config_get_string(cfg, "dtype", &dt), PTM_OK, "%s", ptm_last_error());
    snprintf(cfg_dtype, cap, "%s", dt);
    ptm_config_free(cfg);
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "%s", ptm_last_error());
    *weights = ptm_st_find(f, "embeddings.word_embeddings.weight")->dtype;
    ptm_st_close(f);
}

Test(model, a_save_killed_at_any_instant_leaves_the_old_or_the_new_checkpoint)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    ptm_model *m = load(FIXTURE("bert-tiny"), NULL);
    struct ptm_save_opts f32 = {.struct_size = sizeof f32, .dtype = "float32"};
    struct ptm_save_opts bf16 = {
        .struct_size = sizeof bf16, .dtype = "bfloat16", .max_shard_size = "20KB"};
    cr_assert_eq(ptm_model_save(m, dir, &f32), PTM_OK, "%s", ptm_last_error());
    srand(1234);
    for (int round = 0; round < 24; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) { /* the child saves F32, then sharded BF16, until killed */
            for (;;) {
                ptm_model_save(m, dir, &f32);
                ptm_model_save(m, dir, &bf16);
            }
        }
        usleep((useconds_t)(rand() % 30000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char cfg_dtype[32];
        ptm_dtype w;
        checkpoint_dtypes(dir, cfg_dtype, sizeof cfg_dtype, &w);
        cr_assert(w == PTM_F32 || w == PTM_BF16);
        cr_assert_str_eq(cfg_dtype, w == PTM_F32 ? "float32" : "bfloat16",
                         "round %d: config says %s, weights are %s", round, cfg_dtype,
                         ptm_dtype_name(w));
        ptm_model *back = load(dir, NULL);
        ptm_model_free(back);
    }
    ptm_model_free(m);
    rm_rf(dir);
    /* Killed saves leave their temporary siblings behind; clean them up for the test. */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'.ptm-save-*", dir);
    cr_assert_eq(system(cmd), 0);
}
