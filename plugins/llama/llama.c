/*
 * llama.c - the LLaMA architecture plugin: LlamaConfig's fields and defaults as transformers 5
 * has them (rope_parameters; legacy rope_scaling / rope_theta keys are read by llama_rope.c),
 * the model classes (LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification) with HF's
 * parameter names, tying and _init_weights rules, and the built-in names. The forward passes
 * are in llama_forward.c.
 */
#include <stdio.h>
#include <string.h>

#include "llama.h"
#include "pk.h"

static const struct ptm_config_field llama_fields[] = {
    PTM_CONFIG_FIELD("vocab_size", PTM_CFG_INT, 0, "32000", "Vocabulary size"),
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "4096", "Width of the decoder layers"),
    PTM_CONFIG_FIELD("intermediate_size", PTM_CFG_INT, 0, "11008", "MLP width"),
    PTM_CONFIG_FIELD("num_hidden_layers", PTM_CFG_INT, 0, "32", "Number of decoder layers"),
    PTM_CONFIG_FIELD("num_attention_heads", PTM_CFG_INT, 0, "32", "Query heads per layer"),
    PTM_CONFIG_FIELD("num_key_value_heads", PTM_CFG_INT, PTM_CFG_NULLABLE, "null",
                     "Key/value heads (GQA); null means num_attention_heads"),
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "\"silu\"", "MLP gate activation"),
    PTM_CONFIG_FIELD("max_position_embeddings", PTM_CFG_INT, 0, "2048", "Longest sequence"),
    PTM_CONFIG_FIELD("initializer_range", PTM_CFG_FLOAT, 0, "0.02", "Std of weight init"),
    PTM_CONFIG_FIELD("rms_norm_eps", PTM_CFG_FLOAT, 0, "1e-06", "RMSNorm epsilon"),
    PTM_CONFIG_FIELD("use_cache", PTM_CFG_BOOL, 0, "true", "Use the key/value cache"),
    PTM_CONFIG_FIELD("pad_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "null", "Padding token id"),
    PTM_CONFIG_FIELD("bos_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "1", "Beginning of sequence"),
    PTM_CONFIG_FIELD("eos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "2",
                     "End of sequence id or ids"),
    PTM_CONFIG_FIELD("pretraining_tp", PTM_CFG_INT, PTM_CFG_NULLABLE, "1",
                     "Tensor parallelism used in pretraining (no effect on results)"),
    PTM_CONFIG_FIELD("tie_word_embeddings", PTM_CFG_BOOL, 0, "false",
                     "lm_head shares the input embeddings"),
    PTM_CONFIG_FIELD("rope_parameters", PTM_CFG_OBJECT, PTM_CFG_NULLABLE, "null",
                     "RoPE: rope_theta, rope_type (default, linear, dynamic, yarn, llama3) and "
                     "its parameters; legacy rope_scaling and rope_theta keys are read too"),
    PTM_CONFIG_FIELD("attention_bias", PTM_CFG_BOOL, 0, "false", "Bias in q/k/v/o projections"),
    PTM_CONFIG_FIELD("attention_dropout", PTM_CFG_FLOAT, PTM_CFG_NULLABLE, "0.0",
                     "Attention dropout (training only)"),
    PTM_CONFIG_FIELD("mlp_bias", PTM_CFG_BOOL, 0, "false", "Bias in gate/up/down projections"),
    PTM_CONFIG_FIELD("head_dim", PTM_CFG_INT, PTM_CFG_NULLABLE, "null",
                     "Per-head width; null means hidden_size / num_attention_heads"),
    PTM_CONFIG_FIELD_END,
};

/* HF PreTrainedModel._init_weights: Linear and Embedding normal(0, initializer_range),
 * biases zero, the padding row zero, RMSNorm weight 1. */
static int flag(const ptm_model *m, const char *key)
{
    int32_t v = 0;
    return ptm_config_get_bool(ptm_model_config(m), key, &v) == PTM_OK && v;
}

static ptm_status declare_layer(const struct pk_declarer *d, const struct llama_hparams *hp,
                                int64_t i)
{
    char n[160];
    int ab = flag(d->m, "attention_bias"), mb = flag(d->m, "mlp_bias");
    int64_t q = hp->heads * hp->head_dim, kv = hp->kv_heads * hp->head_dim;
    static const char *const proj[] = {"q_proj", "k_proj", "v_proj"};
    for (int k = 0; k < 3; k++) {
        snprintf(n, sizeof n, "layers.%lld.self_attn.%s", (long long)i, proj[k]);
        PK_TRY(pk_linear(d, n, k == 0 ? q : kv, hp->hidden, ab));
    }
    snprintf(n, sizeof n, "layers.%lld.self_attn.o_proj", (long long)i);
    PK_TRY(pk_linear(d, n, hp->hidden, q, ab));
    snprintf(n, sizeof n, "layers.%lld.mlp.gate_proj", (long long)i);
    PK_TRY(pk_linear(d, n, hp->inter, hp->hidden, mb));
    snprintf(n, sizeof n, "layers.%lld.mlp.up_proj", (long long)i);
    PK_TRY(pk_linear(d, n, hp->inter, hp->hidden, mb));
    snprintf(n, sizeof n, "layers.%lld.mlp.down_proj", (long long)i);
    PK_TRY(pk_linear(d, n, hp->hidden, hp->inter, mb));
    snprintf(n, sizeof n, "layers.%lld.input_layernorm.weight", (long long)i);
    PK_TRY(pk_param(d, n, 1, hp->hidden, 0, PTM_INIT_ONES, -1));
    snprintf(n, sizeof n, "layers.%lld.post_attention_layernorm.weight", (long long)i);
    return pk_param(d, n, 1, hp->hidden, 0, PTM_INIT_ONES, -1);
}

/* LlamaModel's parameters under prefix, in HF's state_dict order. */
static ptm_status declare_decoder(ptm_model *m, const char *prefix, struct pk_declarer *d,
                                  struct llama_hparams *hp)
{
    PK_TRY(llama_hparams(m, hp));
    double std = 0.02;
    if (ptm_config_get_float(ptm_model_config(m), "initializer_range", &std) != PTM_OK) {
        std = 0.02;
    }
    *d = (struct pk_declarer){m, prefix, (float)std};
    PK_TRY(
        pk_param(d, "embed_tokens.weight", 2, hp->vocab, hp->hidden, PTM_INIT_NORMAL, hp->pad_id));
    for (int64_t i = 0; i < hp->layers; i++) {
        PK_TRY(declare_layer(d, hp, i));
    }
    PK_TRY(pk_param(d, "norm.weight", 1, hp->hidden, 0, PTM_INIT_ONES, -1));
    d->prefix = ""; /* head parameters carry no prefix */
    return PTM_OK;
}

static ptm_status declare_base(ptm_model *m)
{
    struct pk_declarer d;
    struct llama_hparams hp;
    return declare_decoder(m, "", &d, &hp);
}

static ptm_status declare_causal_lm(ptm_model *m)
{
    struct pk_declarer d;
    struct llama_hparams hp;
    PK_TRY(declare_decoder(m, "model.", &d, &hp));
    return pk_linear(&d, "lm_head", hp.vocab, hp.hidden, 0);
}

static ptm_status declare_seqcls(ptm_model *m)
{
    struct pk_declarer d;
    struct llama_hparams hp;
    PK_TRY(declare_decoder(m, "model.", &d, &hp));
    return pk_linear(&d, "score", hp.num_labels, hp.hidden, 0);
}

/* ------------------------------------------------------------------------------------------ */

/* HF LlamaForCausalLM._tied_weights_keys; the runtime ties it only with tie_word_embeddings. */
static const char *const lm_tied[] = {"lm_head.weight", "model.embed_tokens.weight", NULL};
static const char *const no_split[] = {"LlamaDecoderLayer", NULL};
/* Buffers older checkpoints stored in their state dicts. */
static const char *const ignore_unexpected[] = {"rotary_emb.inv_freq", NULL};

#define LLAMA_CLASS(name_, is_base_, gen_, declare_, forward_, ...)                                \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_model_class), .name = (name_), .is_base = (is_base_),     \
        .can_generate = (gen_), .main_input_name = "input_ids", .declare = (declare_),             \
        .forward = (forward_), .no_split_modules = no_split,                                       \
        .ignore_unexpected = ignore_unexpected, __VA_ARGS__                                        \
    }

static const struct ptm_model_class llama_classes[] = {
    LLAMA_CLASS("LlamaModel", 1, 0, declare_base, llama_forward_base,
                .input_embeddings = "embed_tokens.weight"),
    LLAMA_CLASS("LlamaForCausalLM", 0, 1, declare_causal_lm, llama_forward_causal_lm,
                .input_embeddings = "model.embed_tokens.weight",
                .output_embeddings = "lm_head.weight", .tied_weights = lm_tied),
    LLAMA_CLASS("LlamaForSequenceClassification", 0, 0, declare_seqcls, llama_forward_seqcls,
                .input_embeddings = "model.embed_tokens.weight"),
    {.struct_size = sizeof(struct ptm_model_class)},
};

#define LLAMA_CFG(extra)                                                                           \
    "{\"model_type\": \"llama\", \"architectures\": [\"LlamaForCausalLM\"]" extra "}"

static const struct ptm_builtin_name llama_builtins[] = {
    PTM_BUILTIN_NAME("llama-2-7b", "meta-llama/Llama-2-7b-hf", LLAMA_CFG("")),
    PTM_BUILTIN_NAME("tinyllama-1.1b-chat", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                     LLAMA_CFG(", \"hidden_size\": 2048, \"intermediate_size\": 5632, "
                               "\"num_hidden_layers\": 22, \"num_key_value_heads\": 4, "
                               "\"rms_norm_eps\": 1e-05, \"vocab_size\": 32000")),
    PTM_BUILTIN_NAME_END,
};

static const struct ptm_arch llama_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "llama",
    .base_model_prefix = "model",
    .fields = llama_fields,
    .classes = llama_classes,
    .builtins = llama_builtins,
};

static ptm_status llama_register(const struct ptm_registrar *reg)
{
    return reg->add_arch(reg, &llama_arch);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "llama", PTM_VERSION_STRING, llama_register)
