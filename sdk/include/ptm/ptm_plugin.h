/*
 * ptm_plugin.h - the plugin ABI: the one entry point every plugin .so exports, the registrar
 * the host hands it, and what an architecture plugin registers (config schema, model classes,
 * built-in names, hooks). Backends register through ptm_backend.h.
 *
 * ABI rules (append only): every struct here starts with uint32_t struct_size, set by the
 * plugin to sizeof as it was built; members are only ever appended, under a comment naming
 * the ABI minor that added them; the host reads no member past struct_size and treats a
 * missing one as NULL / 0. Only fixed-width types cross: no bool, no enums, no bitfields.
 * Arrays of records (config fields, aliases, built-in names) are walked with the first
 * element's struct_size as stride and end at the first record whose name is NULL.
 */
#ifndef PTM_PLUGIN_H
#define PTM_PLUGIN_H

#include "ptm_base.h"
#include "ptm_tensor.h"
#include "ptm_ops.h"
#include "ptm_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin kinds (ptm_plugin_desc.kind). */
enum {
    PTM_PLUGIN_ARCH = 1,
    PTM_PLUGIN_BACKEND = 2,
};

struct ptm_registrar;

/* What ptm_plugin_entry returns. The host checks it before calling anything else. */
struct ptm_plugin_desc {
    uint32_t struct_size;
    /* ABI 1.0 */
    uint32_t abi_major; /* PTM_ABI_MAJOR the plugin was built against */
    uint32_t abi_minor; /* PTM_ABI_MINOR the plugin was built against */
    int32_t kind;       /* PTM_PLUGIN_ARCH or PTM_PLUGIN_BACKEND */
    const char *name;   /* unique plugin name, e.g. "bert"; [a-z0-9_-]+ */
    const char *version;
    /* Called once after the checks; registers the plugin's architectures or backends. */
    ptm_status (*register_fn)(const struct ptm_registrar *reg);
};

/* The symbol name every plugin exports, and the macro that defines it. */
#define PTM_PLUGIN_ENTRY_SYMBOL "ptm_plugin_entry"
#define PTM_PLUGIN_DEFINE(kind_, name_, version_, register_)                                       \
    PTM_API const struct ptm_plugin_desc *ptm_plugin_entry(void);                                  \
    const struct ptm_plugin_desc *ptm_plugin_entry(void)                                           \
    {                                                                                              \
        static const struct ptm_plugin_desc desc = {sizeof(struct ptm_plugin_desc),                \
                                                    PTM_ABI_MAJOR,                                 \
                                                    PTM_ABI_MINOR,                                 \
                                                    (kind_),                                       \
                                                    (name_),                                       \
                                                    (version_),                                    \
                                                    (register_)};                                  \
        return &desc;                                                                              \
    }

/* ------------------------------------------------------------------------------------------ */
/* Config schema                                                                               */

/* Config field types (ptm_config_field.type). */
enum {
    PTM_CFG_INT = 1,
    PTM_CFG_FLOAT = 2,
    PTM_CFG_BOOL = 3,
    PTM_CFG_STRING = 4,
    PTM_CFG_INT_LIST = 5,
    PTM_CFG_FLOAT_LIST = 6,
    PTM_CFG_STRING_LIST = 7,
    PTM_CFG_OBJECT = 8,       /* any JSON object, e.g. rope_scaling */
    PTM_CFG_ANY = 9,          /* any JSON value, no check */
    PTM_CFG_INT_OR_LIST = 10, /* an integer or a list of integers, e.g. eos_token_id */
};

/* Field flags (ptm_config_field.flags). */
#define PTM_CFG_NULLABLE 1u /* null is a valid value */

/*
 * One typed config field. default_json is HF's default as JSON text ("768", "\"gelu\"",
 * "null", "[1, 2]"); the runtime parses it once at registration and refuses a default that
 * does not match the type. A float field accepts JSON integers (HF writes 1 for 1.0).
 */
struct ptm_config_field {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *name;
    int32_t type;
    uint32_t flags;
    const char *default_json;
    const char *doc;
};

#define PTM_CONFIG_FIELD(name, type, flags, default_json, doc)                                     \
    {                                                                                              \
        sizeof(struct ptm_config_field), (name), (type), (flags), (default_json), (doc)            \
    }
#define PTM_CONFIG_FIELD_END                                                                       \
    {                                                                                              \
        sizeof(struct ptm_config_field), NULL, 0, 0, NULL, NULL                                    \
    }

/* attribute_map: alias -> canonical field name (T5: "hidden_size" -> "d_model"). */
struct ptm_config_alias {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *alias;
    const char *name;
};

#define PTM_CONFIG_ALIAS(alias, name)                                                              \
    {                                                                                              \
        sizeof(struct ptm_config_alias), (alias), (name)                                           \
    }
#define PTM_CONFIG_ALIAS_END                                                                       \
    {                                                                                              \
        sizeof(struct ptm_config_alias), NULL, NULL                                                \
    }

/* A built-in name (pretrained_init_configuration): "bert-base-uncased" -> config + repo id. */
struct ptm_builtin_name {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *name;        /* what users type */
    const char *repo_id;     /* Hub repo, e.g. "google-bert/bert-base-uncased" */
    const char *config_json; /* the config as JSON text (diff from defaults is enough) */
};

#define PTM_BUILTIN_NAME(name, repo, json)                                                         \
    {                                                                                              \
        sizeof(struct ptm_builtin_name), (name), (repo), (json)                                    \
    }
#define PTM_BUILTIN_NAME_END                                                                       \
    {                                                                                              \
        sizeof(struct ptm_builtin_name), NULL, NULL, NULL                                          \
    }

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                      */

typedef struct ptm_model ptm_model;
typedef struct ptm_tensor_map ptm_tensor_map;
typedef struct ptm_kv_cache ptm_kv_cache; /* ptm_generate.h */

/* What a forward hook receives. */
struct ptm_forward_ctx {
    uint32_t struct_size;
    /* ABI 1.0 */
    const ptm_tensor_map *inputs; /* by HF argument name: "input_ids", "attention_mask", ... */
    ptm_tensor_map *outputs;      /* the hook adds by HF output name: "logits", ... */
    int32_t output_hidden_states; /* add "hidden_states.<i>" for every layer's output too */
    /* ABI 1.0 (added for generation, issue 6) */
    /* Decoder key/value cache (ptm_generate.h), or NULL: the inputs are the whole sequence.
     * With a cache, the inputs continue ptm_kv_cache_len() earlier tokens; the hook writes
     * the new keys and values through ptm_kv_cache_layer and the runtime advances the
     * length after the hook succeeds. A hook that cannot use a cache fails when given one. */
    ptm_kv_cache *cache;
    /* HF logits_to_keep: 0 = logits for every position, n > 0 = only the last n. */
    int32_t logits_to_keep;
};

/* One model class (HF's BertModel, BertForMaskedLM, ...). */
struct ptm_model_class {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *name;            /* "BertForMaskedLM" */
    int32_t is_base;             /* 1 for the base model (no base_model_prefix on its names) */
    int32_t can_generate;        /* 1 if generate() applies (a causal or seq2seq LM head) */
    const char *main_input_name; /* "input_ids"; NULL means "input_ids" */
    /* Parameter names as HF spells them for this class (head classes include the prefix). */
    const char *input_embeddings;  /* e.g. "bert.embeddings.word_embeddings.weight" */
    const char *output_embeddings; /* e.g. "cls.predictions.decoder.weight", or NULL */
    /* NULL-terminated pairs {tied, source, tied, source, ..., NULL}: "tied" shares "source". */
    const char *const *tied_weights;
    const char *const *no_split_modules; /* NULL-terminated module name patterns */
    const char *const *keep_in_fp32;     /* NULL-terminated name fragments kept in F32 */
    /* NULL-terminated name suffixes a checkpoint may hold that are not parameters (buffers
     * such as "embeddings.position_ids"): not reported as unexpected (HF's
     * _keys_to_ignore_on_load_unexpected). */
    const char *const *ignore_unexpected;
    /* Declare every parameter with ptm_model_declare(), in HF's state_dict order. */
    ptm_status (*declare)(ptm_model *m);
    /* Optional: post-init fix-ups beyond the declared init specs (HF _init_weights specials). */
    ptm_status (*init_weights)(ptm_model *m);
    /* Run the model. */
    ptm_status (*forward)(ptm_model *m, const struct ptm_forward_ctx *ctx);
};

/* What an architecture plugin registers. */
struct ptm_arch {
    uint32_t struct_size;
    /* ABI 1.0 */
    const char *model_type;                  /* config.json "model_type", e.g. "bert" */
    const char *base_model_prefix;           /* "bert", "model", "transformer" */
    const struct ptm_config_field *fields;   /* typed fields with HF defaults; END-terminated */
    const struct ptm_config_alias *aliases;  /* attribute_map, END-terminated; may be NULL */
    const struct ptm_model_class *classes;   /* END-terminated (name NULL) */
    const struct ptm_builtin_name *builtins; /* END-terminated; may be NULL */
    /* Optional hooks; NULL means PTM_E_UNSUPPORTED with a message naming the model type.
     * prune_heads gets the heads to remove as indices into the layer's current heads (the
     * runtime maps HF's original numbering, and records it in config pruned_heads); it
     * replaces the layer's parameters with ptm_model_replace_param. Declare hooks size pruned
     * layers with ptm_model_n_pruned_heads. */
    ptm_status (*prune_heads)(ptm_model *m, int32_t layer, const int32_t *heads, int32_t n);
    ptm_status (*resize_position_embeddings)(ptm_model *m, int64_t n_positions);
};

/* Parameter initialisation, declared with each parameter (HF _init_weights per module). */
enum {
    PTM_INIT_NORMAL = 1, /* normal(mean = a, std = b) */
    PTM_INIT_ZEROS = 2,
    PTM_INIT_ONES = 3,
    PTM_INIT_CONST = 4,   /* every element = a */
    PTM_INIT_UNIFORM = 5, /* uniform(a, b) */
};

struct ptm_param_init {
    uint32_t struct_size;
    /* ABI 1.0 */
    int32_t kind;
    float a, b;
    int64_t padding_idx; /* row zeroed after init (embeddings); -1 for none */
};

/* ------------------------------------------------------------------------------------------ */
/* The registrar handed to register_fn                                                         */

struct ptm_backend; /* ptm_backend.h */

struct ptm_registrar {
    uint32_t struct_size;
    /* ABI 1.0 */
    void *host; /* opaque to the plugin */
    /* Register an architecture. The descriptor and everything it points to must stay valid
     * while the plugin is loaded (static const data). Refused if model_type is taken. */
    ptm_status (*add_arch)(const struct ptm_registrar *reg, const struct ptm_arch *arch);
    /* Register a backend (ptm_backend.h); same lifetime rule. */
    ptm_status (*add_backend)(const struct ptm_registrar *reg, const struct ptm_backend *be);
};

#ifdef __cplusplus
}
#endif
#endif /* PTM_PLUGIN_H */
