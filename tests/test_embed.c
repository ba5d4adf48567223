/*
 * test_embed.c - sentence embeddings on the real all-MiniLM-L6-v2 (the default model, put in
 * the Hugging Face cache by scripts/fetch-default-model): for every sentence of
 * tests/fixtures/minilm/sentences.txt, ptm's vector must have cosine >= 0.9999 with the one
 * sentence-transformers computed (tools/make_minilm_reference.py), >= 0.995 with int8 weights,
 * and the token ids must be the reference tokenizer's exactly.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm.h"
#include "tolerance.h"

#define MODEL "sentence-transformers/all-MiniLM-L6-v2"
#define REF   PTM_TEST_FIXTURES "/minilm/reference.safetensors"
#define SENTS PTM_TEST_FIXTURES "/minilm/sentences.txt"

static size_t read_sentences(char ***out)
{
    FILE *f = fopen(SENTS, "r");
    cr_assert_not_null(f);
    char **lines = NULL, *line = NULL;
    size_t n = 0, cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        lines = realloc(lines, (n + 1) * sizeof *lines);
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    *out = lines;
    return n;
}

static ptm_embedder *load_or_skip(const char *quantize)
{
    ptm_embedder *e = NULL;
    struct ptm_load_opts o = {.struct_size = sizeof o, .quantize = quantize};
    ptm_status st = ptm_embedder_load(MODEL, &o, &e);
    if (st == PTM_E_NOT_FOUND) {
        cr_skip_test("%s is not in the Hugging Face cache (run scripts/fetch-default-model): %s",
                     MODEL, ptm_last_error());
    }
    cr_assert_eq(st, PTM_OK, "%s", ptm_last_error());
    return e;
}

/* Every sentence's vector against sentence-transformers' at cosine >= tol; the lowest is logged. */
static void check_reference(const char *quantize, double tol)
{
    ptm_embedder *e = load_or_skip(quantize);
    cr_assert_eq(ptm_embedder_dim(e), 384);
    cr_assert_str_eq(ptm_embedder_pooling(e), "mean");
    cr_assert_eq(ptm_embedder_normalizes(e), 1);
    char **sents = NULL;
    size_t n = read_sentences(&sents);
    cr_assert_geq(n, 50);
    float *got = malloc(n * 384 * sizeof *got);
    cr_assert_eq(ptm_embedder_encode(e, (const char *const *)sents, n, got), PTM_OK, "%s",
                 ptm_last_error());
    ptm_st_file *ref = NULL;
    cr_assert_eq(ptm_st_open(REF, &ref), PTM_OK, "%s", ptm_last_error());
    const struct ptm_st_tensor *want = ptm_st_find(ref, "embeddings");
    cr_assert_not_null(want);
    cr_assert_eq((size_t)want->shape[0], n);
    const float *w = want->data;
    double worst = 1.0;
    for (size_t i = 0; i < n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (int k = 0; k < 384; k++) {
            dot += (double)got[i * 384 + k] * w[i * 384 + k];
            na += (double)got[i * 384 + k] * got[i * 384 + k];
            nb += (double)w[i * 384 + k] * w[i * 384 + k];
        }
        double cos = dot / sqrt(na * nb);
        cr_expect(cos >= tol, "%s: sentence %zu: cosine %.6f < %.4f: \"%s\"", quantize, i, cos, tol,
                  sents[i]);
        worst = cos < worst ? cos : worst;
    }
    cr_log_info("%s: %zu sentences, lowest cosine %.7f", quantize, n, worst);
    ptm_st_close(ref);
    for (size_t i = 0; i < n; i++) {
        free(sents[i]);
    }
    free(sents);
    free(got);
    ptm_embedder_free(e);
}

Test(embed, real_minilm_matches_sentence_transformers)
{
    check_reference("none", PTM_TOL_COSINE);
}

/* int8 (Q8_0 weights, activations quantized per block of 32): the speed mode of bench_bert. */
Test(embed, real_minilm_int8_stays_close_to_sentence_transformers)
{
    check_reference("int8", PTM_TOL_COSINE_INT8);
}

Test(embed, real_minilm_tokenizes_like_the_reference)
{
    ptm_model *m = NULL;
    ptm_embedder *e = load_or_skip("none");
    ptm_embedder_free(e);
    cr_assert_eq(ptm_model_load(MODEL, NULL, &m), PTM_OK, "%s", ptm_last_error());
    ptm_tokenizer *tok = NULL;
    cr_assert_eq(ptm_tokenizer_load(ptm_model_dir(m), &tok), PTM_OK, "%s", ptm_last_error());
    char **sents = NULL;
    size_t n = read_sentences(&sents);
    ptm_st_file *ref = NULL;
    cr_assert_eq(ptm_st_open(REF, &ref), PTM_OK);
    const struct ptm_st_tensor *ids = ptm_st_find(ref, "input_ids");
    const struct ptm_st_tensor *mask = ptm_st_find(ref, "attention_mask");
    cr_assert(ids && mask && ids->dtype == PTM_I64);
    int64_t L = ids->shape[1];
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_LONGEST;
    o.max_length = 256; /* sentence_bert_config.json max_seq_length */
    o.padding = PTM_TOK_PAD_OFF;
    for (size_t i = 0; i < n; i++) {
        struct ptm_encoding *enc = NULL;
        cr_assert_eq(ptm_tokenizer_encode(tok, sents[i], strlen(sents[i]), NULL, 0, &o, &enc),
                     PTM_OK, "%s", ptm_last_error());
        const int64_t *row = (const int64_t *)ids->data + i * L;
        const int64_t *mrow = (const int64_t *)mask->data + i * L;
        size_t len = 0;
        while ((int64_t)len < L && mrow[len]) {
            len++;
        }
        cr_expect_eq(enc->n, len, "sentence %zu: %zu tokens, reference %zu", i, enc->n, len);
        for (size_t k = 0; k < len && k < enc->n; k++) {
            cr_expect_eq(enc->ids[k], row[k], "sentence %zu token %zu", i, k);
        }
        ptm_encoding_free(enc);
    }
    ptm_st_close(ref);
    for (size_t i = 0; i < n; i++) {
        free(sents[i]);
    }
    free(sents);
    ptm_tokenizer_free(tok);
    ptm_model_free(m);
}
