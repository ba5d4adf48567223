/*
 * bert.c - the BERT architecture plugin: BertConfig's fields and defaults as transformers
 * has them, the model classes (BertModel and its heads) with HF's parameter names and
 * _init_weights rules, and the built-in names. The forward passes are in bert_forward.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert.h"
#include "pk.h"

static const struct ptm_config_field bert_fields[] = {
    PTM_CONFIG_FIELD("vocab_size", PTM_CFG_INT, 0, "30522", "Vocabulary size"),
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "768", "Width of the encoder layers"),
    PTM_CONFIG_FIELD("num_hidden_layers", PTM_CFG_INT, 0, "12", "Number of encoder layers"),
    PTM_CONFIG_FIELD("num_attention_heads", PTM_CFG_INT, 0, "12", "Attention heads per layer"),
    PTM_CONFIG_FIELD("intermediate_size", PTM_CFG_INT, 0, "3072", "Feed-forward width"),
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "\"gelu\"",
                     "Activation: gelu, gelu_new, gelu_pytorch_tanh, relu, silu"),
    PTM_CONFIG_FIELD("hidden_dropout_prob", PTM_CFG_FLOAT, 0, "0.1", "Dropout (training only)"),
    PTM_CONFIG_FIELD("attention_probs_dropout_prob", PTM_CFG_FLOAT, 0, "0.1",
                     "Attention dropout (training only)"),
    PTM_CONFIG_FIELD("max_position_embeddings", PTM_CFG_INT, 0, "512", "Longest sequence"),
    PTM_CONFIG_FIELD("type_vocab_size", PTM_CFG_INT, 0, "2", "Number of token types"),
    PTM_CONFIG_FIELD("initializer_range", PTM_CFG_FLOAT, 0, "0.02", "Std of weight init"),
    PTM_CONFIG_FIELD("layer_norm_eps", PTM_CFG_FLOAT, 0, "1e-12", "LayerNorm epsilon"),
    PTM_CONFIG_FIELD("pad_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "0", "Padding token id"),
    PTM_CONFIG_FIELD("position_embedding_type", PTM_CFG_STRING, 0, "\"absolute\"",
                     "absolute (relative_key variants are not supported)"),
    PTM_CONFIG_FIELD("use_cache", PTM_CFG_BOOL, 0, "true", "Decoder cache (unused here)"),
    PTM_CONFIG_FIELD("classifier_dropout", PTM_CFG_FLOAT, PTM_CFG_NULLABLE, "null",
                     "Classifier dropout (training only)"),
    PTM_CONFIG_FIELD_END,
};

/* ------------------------------------------------------------------------------------------ */
/* Parameters: names exactly as transformers' BertModel and heads spell them. */

/* HF BertPreTrainedModel._init_weights: Linear and Embedding normal(0, initializer_range),
 * biases zero, the padding row of word embeddings zero, LayerNorm weight 1, bias 0. */
static ptm_status layer_norm(const struct pk_declarer *d, const char *name, int64_t n)
{
    char w[200], b[200];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    PK_TRY(pk_param(d, w, 1, n, 0, PTM_INIT_ONES, -1));
    return pk_param(d, b, 1, n, 0, PTM_INIT_ZEROS, -1);
}

static ptm_status declare_encoder(const struct pk_declarer *d, const struct bert_hparams *hp,
                                  int with_pooler)
{
    int64_t pad = -1;
    if (ptm_config_get_int(ptm_model_config(d->m), "pad_token_id", &pad) != PTM_OK) {
        pad = -1; /* null: no padding row */
    }
    PK_TRY(pk_param(d, "embeddings.word_embeddings.weight", 2, hp->vocab, hp->hidden,
                    PTM_INIT_NORMAL, pad));
    PK_TRY(pk_param(d, "embeddings.position_embeddings.weight", 2, hp->max_pos, hp->hidden,
                    PTM_INIT_NORMAL, -1));
    PK_TRY(pk_param(d, "embeddings.token_type_embeddings.weight", 2, hp->type_vocab, hp->hidden,
                    PTM_INIT_NORMAL, -1));
    PK_TRY(layer_norm(d, "embeddings.LayerNorm", hp->hidden));
    int64_t head_dim = hp->hidden / hp->heads;
    for (int64_t i = 0; i < hp->layers; i++) {
        char n[160];
        static const char *const qkv[] = {"query", "key", "value"};
        /* A pruned layer (config pruned_heads) is narrower. */
        int64_t width = (hp->heads - ptm_model_n_pruned_heads(d->m, (int32_t)i)) * head_dim;
        for (int k = 0; k < 3; k++) {
            snprintf(n, sizeof n, "encoder.layer.%lld.attention.self.%s", (long long)i, qkv[k]);
            PK_TRY(pk_linear(d, n, width, hp->hidden, 1));
        }
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.dense", (long long)i);
        PK_TRY(pk_linear(d, n, hp->hidden, width, 1));
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.LayerNorm", (long long)i);
        PK_TRY(layer_norm(d, n, hp->hidden));
        snprintf(n, sizeof n, "encoder.layer.%lld.intermediate.dense", (long long)i);
        PK_TRY(pk_linear(d, n, hp->inter, hp->hidden, 1));
        snprintf(n, sizeof n, "encoder.layer.%lld.output.dense", (long long)i);
        PK_TRY(pk_linear(d, n, hp->hidden, hp->inter, 1));
        snprintf(n, sizeof n, "encoder.layer.%lld.output.LayerNorm", (long long)i);
        PK_TRY(layer_norm(d, n, hp->hidden));
    }
    return with_pooler ? pk_linear(d, "pooler.dense", hp->hidden, hp->hidden, 1) : PTM_OK;
}

static ptm_status setup(ptm_model *m, const char *prefix, struct pk_declarer *d,
                        struct bert_hparams *hp)
{
    PK_TRY(bert_hparams(m, hp));
    double std = 0.02;
    if (ptm_config_get_float(ptm_model_config(m), "initializer_range", &std) != PTM_OK) {
        std = 0.02;
    }
    *d = (struct pk_declarer){m, prefix, (float)std};
    return PTM_OK;
}

static ptm_status declare_base(ptm_model *m)
{
    struct pk_declarer d;
    struct bert_hparams hp;
    PK_TRY(setup(m, "", &d, &hp));
    return declare_encoder(&d, &hp, 1);
}

/* A head: the encoder under "bert.", then the head's own parameters without prefix. */
static ptm_status declare_head(ptm_model *m, int with_pooler, struct pk_declarer *d,
                               struct bert_hparams *hp)
{
    PK_TRY(setup(m, "bert.", d, hp));
    PK_TRY(declare_encoder(d, hp, with_pooler));
    d->prefix = "";
    return PTM_OK;
}

static ptm_status declare_mlm(ptm_model *m)
{
    struct pk_declarer d;
    struct bert_hparams hp;
    PK_TRY(declare_head(m, 0, &d, &hp));
    PK_TRY(pk_linear(&d, "cls.predictions.transform.dense", hp.hidden, hp.hidden, 1));
    PK_TRY(layer_norm(&d, "cls.predictions.transform.LayerNorm", hp.hidden));
    PK_TRY(pk_param(&d, "cls.predictions.bias", 1, hp.vocab, 0, PTM_INIT_ZEROS, -1));
    return pk_linear(&d, "cls.predictions.decoder", hp.vocab, hp.hidden, 1);
}

static ptm_status declare_seqcls(ptm_model *m)
{
    struct pk_declarer d;
    struct bert_hparams hp;
    PK_TRY(declare_head(m, 1, &d, &hp));
    return pk_linear(&d, "classifier", hp.num_labels, hp.hidden, 1);
}

static ptm_status declare_tokcls(ptm_model *m)
{
    struct pk_declarer d;
    struct bert_hparams hp;
    PK_TRY(declare_head(m, 0, &d, &hp));
    return pk_linear(&d, "classifier", hp.num_labels, hp.hidden, 1);
}

static ptm_status declare_qa(ptm_model *m)
{
    struct pk_declarer d;
    struct bert_hparams hp;
    PK_TRY(declare_head(m, 0, &d, &hp));
    return pk_linear(&d, "qa_outputs", 2, hp.hidden, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Hooks */

/* The encoder's parameter prefix of m's class: "" for BertModel, "bert." for heads. */
static const char *encoder_prefix(const ptm_model *m)
{
    return ptm_model_class(m)->is_base ? "" : "bert.";
}

/* Copy the kept blocks of a [rows, cols] tensor: along rows (by_rows) or columns, blocks of
 * `block` rows/columns, keep[k] saying whether block k stays. Byte copies, any dtype. */
static ptm_status keep_blocks(ptm_model *m, const char *name, int by_rows, int64_t block,
                              const unsigned char *keep, int64_t n_blocks)
{
    ptm_tensor *t = ptm_model_param(m, name), *nt = NULL;
    int32_t nd = ptm_tensor_ndim(t);
    int64_t rows = ptm_tensor_dim(t, 0), cols = nd == 2 ? ptm_tensor_dim(t, 1) : 1;
    size_t es = ptm_dtype_size(ptm_tensor_dtype(t));
    int64_t kept = 0;
    for (int64_t k = 0; k < n_blocks; k++) {
        kept += keep[k];
    }
    int64_t shape[2] = {by_rows ? kept * block : rows, by_rows ? cols : kept * block};
    char *src = malloc(ptm_tensor_nbytes(t) + 1), *dst = malloc(ptm_tensor_nbytes(t) + 1);
    ptm_status st = src && dst ? ptm_tensor_read(t, src, ptm_tensor_nbytes(t))
                               : ptm_error_set(PTM_E_NOMEM, "bert: out of memory pruning");
    size_t w = 0;
    for (int64_t r = 0; st == PTM_OK && r < (by_rows ? n_blocks : rows); r++) {
        if (by_rows && keep[r]) { /* a block of `block` rows */
            memcpy(dst + w, src + (size_t)(r * block * cols) * es, (size_t)(block * cols) * es);
            w += (size_t)(block * cols) * es;
        }
        for (int64_t k = 0; !by_rows && k < n_blocks; k++) {
            if (keep[k]) {
                memcpy(dst + w, src + (size_t)(r * cols + k * block) * es, (size_t)block * es);
                w += (size_t)block * es;
            }
        }
    }
    if (st == PTM_OK) {
        st = ptm_tensor_new(ptm_tensor_device(t), ptm_tensor_dtype(t), nd, shape, &nt);
    }
    if (st == PTM_OK && (st = ptm_tensor_write(nt, dst, w)) == PTM_OK) {
        st = ptm_model_replace_param(m, name, nt);
    }
    ptm_tensor_free(nt);
    free(src);
    free(dst);
    return st;
}

/* Remove heads (indices among the layer's current heads) from Q, K, V and the output
 * projection's input columns, as HF's BertSelfAttention.prune_heads does. */
static ptm_status bert_prune_heads(ptm_model *m, int32_t layer, const int32_t *heads, int32_t n)
{
    struct bert_hparams hp;
    PK_TRY(bert_hparams(m, &hp));
    int64_t hd = hp.hidden / hp.heads;
    char name[200];
    const char *pf = encoder_prefix(m);
    snprintf(name, sizeof name, "%sencoder.layer.%d.attention.self.query.weight", pf, (int)layer);
    int64_t cur = ptm_tensor_dim(ptm_model_param(m, name), 0) / hd;
    unsigned char keep[4096];
    if (cur <= 0 || cur > 4096) {
        return ptm_error_set(PTM_E_INTERNAL, "bert: layer %d has %lld heads", (int)layer,
                             (long long)cur);
    }
    memset(keep, 1, (size_t)cur);
    for (int32_t i = 0; i < n; i++) {
        if (heads[i] >= 0 && heads[i] < cur) {
            keep[heads[i]] = 0;
        }
    }
    static const char *const qkv[] = {"query", "key", "value"};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%sencoder.layer.%d.attention.self.%s.weight", pf, (int)layer,
                 qkv[k]);
        PK_TRY(keep_blocks(m, name, 1, hd, keep, cur));
        snprintf(name, sizeof name, "%sencoder.layer.%d.attention.self.%s.bias", pf, (int)layer,
                 qkv[k]);
        PK_TRY(keep_blocks(m, name, 1, hd, keep, cur));
    }
    snprintf(name, sizeof name, "%sencoder.layer.%d.attention.output.dense.weight", pf, (int)layer);
    return keep_blocks(m, name, 0, hd, keep, cur);
}

static ptm_status bert_resize_positions(ptm_model *m, int64_t n)
{
    char name[96];
    snprintf(name, sizeof name, "%sembeddings.position_embeddings.weight", encoder_prefix(m));
    return ptm_model_resize_param(m, name, n);
}

/* ------------------------------------------------------------------------------------------ */

static const char *const mlm_tied[] = {
    "cls.predictions.decoder.weight",
    "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias",
    "cls.predictions.bias",
    NULL,
};

/* Buffers HF keeps in state dicts of older checkpoints. */
static const char *const ignore_unexpected[] = {
    "embeddings.position_ids",
    "embeddings.token_type_ids",
    NULL,
};

#define BERT_CLASS(name_, is_base_, declare_, forward_, ...)                                       \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_model_class), .name = (name_), .is_base = (is_base_),     \
        .main_input_name = "input_ids", .declare = (declare_), .forward = (forward_),              \
        .ignore_unexpected = ignore_unexpected, __VA_ARGS__                                        \
    }

static const struct ptm_model_class bert_classes[] = {
    BERT_CLASS("BertModel", 1, declare_base, bert_forward_base,
               .input_embeddings = "embeddings.word_embeddings.weight"),
    BERT_CLASS("BertForMaskedLM", 0, declare_mlm, bert_forward_mlm,
               .input_embeddings = "bert.embeddings.word_embeddings.weight",
               .output_embeddings = "cls.predictions.decoder.weight", .tied_weights = mlm_tied),
    BERT_CLASS("BertForSequenceClassification", 0, declare_seqcls, bert_forward_seqcls,
               .input_embeddings = "bert.embeddings.word_embeddings.weight"),
    BERT_CLASS("BertForTokenClassification", 0, declare_tokcls, bert_forward_tokcls,
               .input_embeddings = "bert.embeddings.word_embeddings.weight"),
    BERT_CLASS("BertForQuestionAnswering", 0, declare_qa, bert_forward_qa,
               .input_embeddings = "bert.embeddings.word_embeddings.weight"),
    {.struct_size = sizeof(struct ptm_model_class)},
};

#define BASE_CFG(extra)                                                                            \
    "{\"model_type\": \"bert\", \"architectures\": [\"BertForMaskedLM\"]" extra "}"

static const struct ptm_builtin_name bert_builtins[] = {
    PTM_BUILTIN_NAME("bert-base-uncased", "google-bert/bert-base-uncased", BASE_CFG("")),
    PTM_BUILTIN_NAME("bert-base-cased", "google-bert/bert-base-cased",
                     BASE_CFG(", \"vocab_size\": 28996")),
    PTM_BUILTIN_NAME("bert-large-uncased", "google-bert/bert-large-uncased",
                     BASE_CFG(", \"hidden_size\": 1024, \"num_hidden_layers\": 24, "
                              "\"num_attention_heads\": 16, \"intermediate_size\": 4096")),
    PTM_BUILTIN_NAME("bert-large-cased", "google-bert/bert-large-cased",
                     BASE_CFG(", \"vocab_size\": 28996, \"hidden_size\": 1024, "
                              "\"num_hidden_layers\": 24, \"num_attention_heads\": 16, "
                              "\"intermediate_size\": 4096")),
    PTM_BUILTIN_NAME("bert-base-multilingual-cased", "google-bert/bert-base-multilingual-cased",
                     BASE_CFG(", \"vocab_size\": 119547")),
    PTM_BUILTIN_NAME("bert-base-chinese", "google-bert/bert-base-chinese",
                     BASE_CFG(", \"vocab_size\": 21128")),
    PTM_BUILTIN_NAME_END,
};

static const struct ptm_arch bert_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "bert",
    .base_model_prefix = "bert",
    .fields = bert_fields,
    .classes = bert_classes,
    .builtins = bert_builtins,
    .prune_heads = bert_prune_heads,
    .resize_position_embeddings = bert_resize_positions,
};

static ptm_status bert_register(const struct ptm_registrar *reg)
{
    return reg->add_arch(reg, &bert_arch);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "bert", PTM_VERSION_STRING, bert_register)
