/*
 * t5.c - the T5 architecture plugin: T5Config's fields, defaults and attribute_map as
 * transformers 5 has them, the model classes (T5Model, T5ForConditionalGeneration,
 * T5EncoderModel) with HF's parameter names, tying and _init_weights rules
 * (initializer_factor-scaled per weight), and the built-in names. The forward passes are in
 * t5_forward.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pk.h"
#include "t5.h"

static const struct ptm_config_field t5_fields[] = {
    PTM_CONFIG_FIELD("vocab_size", PTM_CFG_INT, 0, "32128", "Vocabulary size"),
    PTM_CONFIG_FIELD("d_model", PTM_CFG_INT, 0, "512", "Width of the encoder and decoder layers"),
    PTM_CONFIG_FIELD("d_kv", PTM_CFG_INT, 0, "64", "Width of each attention head"),
    PTM_CONFIG_FIELD("d_ff", PTM_CFG_INT, 0, "2048", "Feed-forward width"),
    PTM_CONFIG_FIELD("num_layers", PTM_CFG_INT, 0, "6", "Number of encoder blocks"),
    PTM_CONFIG_FIELD("num_decoder_layers", PTM_CFG_INT, PTM_CFG_NULLABLE, "null",
                     "Number of decoder blocks; null means num_layers"),
    PTM_CONFIG_FIELD("num_heads", PTM_CFG_INT, 0, "8", "Attention heads per layer"),
    PTM_CONFIG_FIELD("relative_attention_num_buckets", PTM_CFG_INT, 0, "32",
                     "Buckets of the relative position bias"),
    PTM_CONFIG_FIELD("relative_attention_max_distance", PTM_CFG_INT, 0, "128",
                     "Distance from which all relative positions share one bucket"),
    PTM_CONFIG_FIELD("dropout_rate", PTM_CFG_FLOAT, 0, "0.1", "Dropout (training only)"),
    PTM_CONFIG_FIELD("layer_norm_epsilon", PTM_CFG_FLOAT, 0, "1e-06", "T5LayerNorm epsilon"),
    PTM_CONFIG_FIELD("initializer_factor", PTM_CFG_FLOAT, 0, "1.0",
                     "Scale of every weight's init std"),
    PTM_CONFIG_FIELD("feed_forward_proj", PTM_CFG_STRING, 0, "\"relu\"",
                     "Feed-forward: <act> or gated-<act> (gated-gelu uses gelu_new)"),
    PTM_CONFIG_FIELD("is_encoder_decoder", PTM_CFG_BOOL, 0, "true", "Encoder-decoder model"),
    PTM_CONFIG_FIELD("use_cache", PTM_CFG_BOOL, 0, "true", "Use the key/value cache"),
    PTM_CONFIG_FIELD("pad_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "0", "Padding token id"),
    PTM_CONFIG_FIELD("eos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "1",
                     "End of sequence id or ids"),
    PTM_CONFIG_FIELD("classifier_dropout", PTM_CFG_FLOAT, 0, "0.0",
                     "Classifier dropout (training only)"),
    PTM_CONFIG_FIELD("is_decoder", PTM_CFG_BOOL, 0, "false", "Unused by these classes"),
    PTM_CONFIG_FIELD("tie_word_embeddings", PTM_CFG_BOOL, 0, "true",
                     "lm_head shares shared.weight (and the decoder output is rescaled)"),
    PTM_CONFIG_FIELD_END,
};

static const struct ptm_config_alias t5_aliases[] = {
    PTM_CONFIG_ALIAS("hidden_size", "d_model"),
    PTM_CONFIG_ALIAS("num_attention_heads", "num_heads"),
    PTM_CONFIG_ALIAS("num_hidden_layers", "num_layers"),
    PTM_CONFIG_ALIAS("head_dim", "d_kv"),
    PTM_CONFIG_ALIAS_END,
};

/* feed_forward_proj: "<act>" or "gated-<act>"; gated-gelu means gelu_new, as HF maps it. */
static ptm_status parse_ff(const char *ff, struct t5_hparams *hp)
{
    static const struct {
        const char *name;
        int32_t op;
    } acts[] = {
        {"relu", PTM_UNARY_RELU},          {"gelu", PTM_UNARY_GELU},
        {"gelu_new", PTM_UNARY_GELU_TANH}, {"gelu_pytorch_tanh", PTM_UNARY_GELU_TANH},
        {"silu", PTM_UNARY_SILU},          {"swish", PTM_UNARY_SILU},
    };
    const char *act = ff;
    hp->gated = strncmp(ff, "gated-", 6) == 0;
    if (hp->gated) {
        act = strcmp(ff + 6, "gelu") == 0 ? "gelu_new" : ff + 6;
    }
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(act, acts[i].name) == 0) {
            hp->act = acts[i].op;
            return PTM_OK;
        }
    }
    return ptm_error_set(PTM_E_UNSUPPORTED, "t5: feed_forward_proj \"%s\" is not supported", ff);
}

/* *set: whether key holds a non-null value. Asked first so that an absent or null optional
 * key never goes through a failing getter, whose message would outlive the fallback. */
static ptm_status is_set(const ptm_config *c, const char *key, int *set)
{
    char *json = NULL;
    *set = 0;
    if (!ptm_config_has(c, key)) {
        return PTM_OK;
    }
    PK_TRY(ptm_config_get_json(c, key, &json));
    *set = strcmp(json, "null") != 0;
    ptm_free(json);
    return PTM_OK;
}

ptm_status t5_hparams(const ptm_model *m, struct t5_hparams *hp)
{
    const ptm_config *c = ptm_model_config(m);
    struct {
        const char *key;
        int64_t *dst;
    } ints[] = {
        {"vocab_size", &hp->vocab},
        {"d_model", &hp->d_model},
        {"d_kv", &hp->d_kv},
        {"d_ff", &hp->d_ff},
        {"num_layers", &hp->layers},
        {"num_heads", &hp->heads},
        {"relative_attention_num_buckets", &hp->buckets},
        {"relative_attention_max_distance", &hp->max_distance},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        PK_TRY(ptm_config_get_int(c, ints[i].key, ints[i].dst));
    }
    int set = 0;
    hp->dec_layers = hp->layers; /* null: symmetric */
    PK_TRY(is_set(c, "num_decoder_layers", &set));
    if (set) {
        PK_TRY(ptm_config_get_int(c, "num_decoder_layers", &hp->dec_layers));
    }
    if (hp->heads <= 0 || hp->d_kv <= 0 || hp->buckets < 4 || hp->max_distance < 2) {
        return ptm_error_set(PTM_E_INVAL,
                             "t5: num_heads %lld, d_kv %lld, relative_attention_num_buckets "
                             "%lld and relative_attention_max_distance %lld must be positive "
                             "(buckets at least 4, distance at least 2)",
                             (long long)hp->heads, (long long)hp->d_kv, (long long)hp->buckets,
                             (long long)hp->max_distance);
    }
    PK_TRY(ptm_config_get_float(c, "layer_norm_epsilon", &hp->eps));
    PK_TRY(ptm_config_get_float(c, "initializer_factor", &hp->factor));
    const char *ff = NULL;
    PK_TRY(ptm_config_get_string(c, "feed_forward_proj", &ff));
    PK_TRY(parse_ff(ff, hp));
    /* transformers 5 writes scale_decoder_outputs (kept as an unknown key, so that a config
     * without it is saved without it: HF then derives it from tie_word_embeddings too). */
    PK_TRY(ptm_config_get_bool(c, "tie_word_embeddings", &hp->scale_out));
    PK_TRY(is_set(c, "scale_decoder_outputs", &set));
    return set ? ptm_config_get_bool(c, "scale_decoder_outputs", &hp->scale_out) : PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Parameters: names exactly as transformers' T5 classes spell them; init std per weight as
 * T5PreTrainedModel._init_weights scales it by initializer_factor. */

static ptm_status normal(struct pk_declarer *d, const char *name, int64_t a, int64_t b, double std)
{
    d->std = (float)std;
    return pk_param(d, name, 2, a, b, PTM_INIT_NORMAL, -1);
}

/* A T5LayerNorm weight: constant initializer_factor. */
static ptm_status norm(const struct pk_declarer *d, const char *name, int64_t n, double factor)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", d->prefix, name);
    int64_t shape[1] = {n};
    struct ptm_param_init init = {sizeof init, PTM_INIT_CONST, (float)factor, 0.0f, -1};
    return ptm_model_declare(d->m, full, 1, shape, &init);
}

/* One T5Attention module "<at>": q, k, v, o, and the bias table when has_bias. */
static ptm_status attention(struct pk_declarer *d, const struct t5_hparams *hp, const char *at,
                            int has_bias)
{
    char n[256];
    int64_t inner = hp->heads * hp->d_kv;
    double f = hp->factor;
    static const char *const qkv[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s.%s.weight", at, qkv[i]);
        double std =
            i == 0 ? f / sqrt((double)(hp->d_model * hp->d_kv)) : f / sqrt((double)hp->d_model);
        PK_TRY(normal(d, n, inner, hp->d_model, std));
    }
    snprintf(n, sizeof n, "%s.o.weight", at);
    PK_TRY(normal(d, n, hp->d_model, inner, f / sqrt((double)inner)));
    if (!has_bias) {
        return PTM_OK;
    }
    snprintf(n, sizeof n, "%s.relative_attention_bias.weight", at);
    return normal(d, n, hp->buckets, hp->heads, f / sqrt((double)hp->d_model));
}

/* T5LayerFF "<at>": DenseReluDense (wi, wo) or the gated form (wi_0, wi_1, wo), then norm. */
static ptm_status feed_forward(struct pk_declarer *d, const struct t5_hparams *hp, const char *at)
{
    char n[256];
    double in_std = hp->factor / sqrt((double)hp->d_model);
    for (int i = 0; i < (hp->gated ? 2 : 1); i++) {
        snprintf(n, sizeof n,
                 hp->gated ? "%s.DenseReluDense.wi_%d.weight" : "%s.DenseReluDense.wi.weight", at,
                 i);
        PK_TRY(normal(d, n, hp->d_ff, hp->d_model, in_std));
    }
    snprintf(n, sizeof n, "%s.DenseReluDense.wo.weight", at);
    PK_TRY(normal(d, n, hp->d_model, hp->d_ff, hp->factor / sqrt((double)hp->d_ff)));
    snprintf(n, sizeof n, "%s.layer_norm.weight", at);
    return norm(d, n, hp->d_model, hp->factor);
}

/* A T5Stack "encoder" or "decoder": embed_tokens (tied to shared), blocks, final norm. */
static ptm_status stack(struct pk_declarer *d, const struct t5_hparams *hp, const char *which)
{
    int dec = strcmp(which, "decoder") == 0;
    char n[200];
    snprintf(n, sizeof n, "%s.embed_tokens.weight", which);
    PK_TRY(normal(d, n, hp->vocab, hp->d_model, hp->factor));
    for (int64_t i = 0; i < (dec ? hp->dec_layers : hp->layers); i++) {
        snprintf(n, sizeof n, "%s.block.%lld.layer.0.SelfAttention", which, (long long)i);
        PK_TRY(attention(d, hp, n, i == 0));
        snprintf(n, sizeof n, "%s.block.%lld.layer.0.layer_norm.weight", which, (long long)i);
        PK_TRY(norm(d, n, hp->d_model, hp->factor));
        if (dec) {
            snprintf(n, sizeof n, "%s.block.%lld.layer.1.EncDecAttention", which, (long long)i);
            PK_TRY(attention(d, hp, n, 0));
            snprintf(n, sizeof n, "%s.block.%lld.layer.1.layer_norm.weight", which, (long long)i);
            PK_TRY(norm(d, n, hp->d_model, hp->factor));
        }
        snprintf(n, sizeof n, "%s.block.%lld.layer.%d", which, (long long)i, dec ? 2 : 1);
        PK_TRY(feed_forward(d, hp, n));
    }
    snprintf(n, sizeof n, "%s.final_layer_norm.weight", which);
    return norm(d, n, hp->d_model, hp->factor);
}

static ptm_status declare(ptm_model *m, int with_decoder, int with_head)
{
    struct t5_hparams hp;
    PK_TRY(t5_hparams(m, &hp));
    struct pk_declarer d = {m, "", 0.0f};
    PK_TRY(normal(&d, "shared.weight", hp.vocab, hp.d_model, hp.factor));
    PK_TRY(stack(&d, &hp, "encoder"));
    if (with_decoder) {
        PK_TRY(stack(&d, &hp, "decoder"));
    }
    return with_head ? normal(&d, "lm_head.weight", hp.vocab, hp.d_model, hp.factor) : PTM_OK;
}

static ptm_status declare_base(ptm_model *m)
{
    return declare(m, 1, 0);
}

static ptm_status declare_cond_gen(ptm_model *m)
{
    return declare(m, 1, 1);
}

static ptm_status declare_encoder(ptm_model *m)
{
    return declare(m, 0, 0);
}

/* ------------------------------------------------------------------------------------------ */

/* HF's _tied_weights_keys: the stacks' embed_tokens always share shared.weight; lm_head
 * (the output embeddings) only with tie_word_embeddings, as the runtime ties that pair. */
static const char *const enc_tied[] = {"encoder.embed_tokens.weight", "shared.weight", NULL};
static const char *const base_tied[] = {
    "encoder.embed_tokens.weight",
    "shared.weight",
    "decoder.embed_tokens.weight",
    "shared.weight",
    NULL,
};
static const char *const lm_tied[] = {
    "encoder.embed_tokens.weight",
    "shared.weight",
    "decoder.embed_tokens.weight",
    "shared.weight",
    "lm_head.weight",
    "shared.weight",
    NULL,
};
static const char *const no_split[] = {"T5Block", NULL};
static const char *const keep_fp32[] = {".wo.", NULL};
/* HF's _keys_to_ignore_on_load_unexpected: old checkpoints stored a cross-attention bias. */
static const char *const ignore_unexpected[] = {
    "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
    NULL,
};

#define T5_CLASS(name_, gen_, declare_, forward_, tied_, output_)                                  \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_model_class), .name = (name_), .is_base = 1,              \
        .can_generate = (gen_), .main_input_name = "input_ids",                                    \
        .input_embeddings = "shared.weight", .tied_weights = (tied_),                              \
        .no_split_modules = no_split, .keep_in_fp32 = keep_fp32,                                   \
        .ignore_unexpected = ignore_unexpected, .declare = (declare_), .forward = (forward_),      \
        .output_embeddings = (output_)                                                             \
    }

static const struct ptm_model_class t5_classes[] = {
    T5_CLASS("T5Model", 0, declare_base, t5_forward_base, base_tied, NULL),
    T5_CLASS("T5ForConditionalGeneration", 1, declare_cond_gen, t5_forward_cond_gen, lm_tied,
             "lm_head.weight"),
    T5_CLASS("T5EncoderModel", 0, declare_encoder, t5_forward_encoder, enc_tied, NULL),
    {.struct_size = sizeof(struct ptm_model_class)},
};

#define T5_CFG(extra)                                                                              \
    "{\"model_type\": \"t5\", \"architectures\": [\"T5ForConditionalGeneration\"], "               \
    "\"decoder_start_token_id\": 0" extra "}"
#define T5_V11(extra)                                                                              \
    T5_CFG(", \"feed_forward_proj\": \"gated-gelu\", \"tie_word_embeddings\": false, "             \
           "\"vocab_size\": 32128" extra)

static const struct ptm_builtin_name t5_builtins[] = {
    PTM_BUILTIN_NAME("t5-small", "google-t5/t5-small", T5_CFG("")),
    PTM_BUILTIN_NAME("t5-base", "google-t5/t5-base",
                     T5_CFG(", \"d_model\": 768, \"d_ff\": 3072, \"num_layers\": 12, "
                            "\"num_heads\": 12")),
    PTM_BUILTIN_NAME("t5-large", "google-t5/t5-large",
                     T5_CFG(", \"d_model\": 1024, \"d_ff\": 4096, \"num_layers\": 24, "
                            "\"num_heads\": 16")),
    PTM_BUILTIN_NAME("flan-t5-small", "google/flan-t5-small",
                     T5_V11(", \"d_model\": 512, \"d_ff\": 1024, \"num_layers\": 8, "
                            "\"num_decoder_layers\": 8, \"num_heads\": 6")),
    PTM_BUILTIN_NAME("flan-t5-base", "google/flan-t5-base",
                     T5_V11(", \"d_model\": 768, \"d_ff\": 2048, \"num_layers\": 12, "
                            "\"num_heads\": 12")),
    PTM_BUILTIN_NAME_END,
};

static const struct ptm_arch t5_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "t5",
    .base_model_prefix = "transformer",
    .fields = t5_fields,
    .aliases = t5_aliases,
    .classes = t5_classes,
    .builtins = t5_builtins,
};

static ptm_status t5_register(const struct ptm_registrar *reg)
{
    return reg->add_arch(reg, &t5_arch);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "t5", PTM_VERSION_STRING, t5_register)
