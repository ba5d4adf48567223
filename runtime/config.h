/*
 * config.h - runtime-internal side of configs: the parsed schema of an architecture, built
 * once at registration so bad defaults are refused there, not at every load.
 */
#ifndef PTM_RUNTIME_CONFIG_H
#define PTM_RUNTIME_CONFIG_H

#include "ptm/ptm_config.h"
#include "ptm/ptm_plugin.h"

struct ptm__schema;

/*
 * Parse arch's fields and aliases: each default_json must be JSON of the field's type, names
 * unique and not clashing with the common PretrainedConfig fields unless the type agrees
 * (an architecture may restate a common field to change its default, e.g. pad_token_id).
 * Returns PTM_E_PLUGIN naming the model type, the field and the fault.
 */
ptm_status ptm__schema_new(const struct ptm_arch *arch, struct ptm__schema **out);
void ptm__schema_free(struct ptm__schema *s);

/* ---- Shared by config.c, config_common.c and config_json.c only ------------------------- */

struct json_object;

/* Internal flag beside PTM_CFG_NULLABLE: the object's keys are integers (HF id2label). */
#define PTM__CFG_INT_KEYS 0x100u

/* One field of a parsed schema: a PretrainedConfig field, a legacy one, or the arch's. */
struct ptm__field {
    const char *name;
    int32_t type;
    uint32_t flags;
    const char *doc;
    struct json_object *def;      /* effective default (the arch's when it restates); owned */
    struct json_object *base_def; /* PretrainedConfig().to_dict() value (when is_base) */
    int is_base;                  /* declared by PretrainedConfig itself (transformers 5.x) */
    int has_def;                  /* 0: no default (def unused) */
    int is_held;                  /* every config holds it (base and arch fields, not legacy) */
};

struct ptm__alias {
    const char *alias;
    const char *name;
};

struct ptm__schema {
    const char *model_type;
    struct ptm__field *fields;
    size_t n_fields;
    struct ptm__alias *aliases;
    size_t n_aliases;
};

/* The field called name (no alias resolution), or NULL. */
const struct ptm__field *ptm__schema_field(const struct ptm__schema *s, const char *name);

/* The canonical name for key: the alias target, or key itself. */
const char *ptm__schema_resolve(const struct ptm__schema *s, const char *key);

/*
 * Check *v (a reference the caller owns; NULL is JSON null) against f. Values are normalised
 * in place of *v where HF does so (id2label keys, {"__float__": "NaN"} in float fields); the
 * old reference is then dropped. PTM_E_TYPE: "<label>: \"<key>\": expected <type>, got <type>".
 */
ptm_status ptm__field_check(const struct ptm__field *f, const char *label, const char *key,
                            struct json_object **v);

/* Whether HF drops key on load and never writes it (_commit_hash, attn_implementation, ...). */
int ptm__config_key_dropped(const char *key);

/* "integer", "string", "list of integers", ... as messages spell a field type. */
const char *ptm__cfg_type_name(int32_t type);

/* "null", "boolean", "integer", "number", "string", "list", "object" for a JSON value. */
const char *ptm__json_kind(struct json_object *v);

/* Deep equality with Python's == on JSON data (1 == 1.0). */
int ptm__json_equal(struct json_object *a, struct json_object *b);

/*
 * Parse text[0..n) as exactly one JSON value (whitespace around it allowed) into *out (NULL
 * for null). PTM_E_FORMAT "<label>: not JSON: <fault> at byte <k>" when it does not parse.
 */
ptm_status ptm__json_parse_value(const char *text, size_t n, const char *label,
                                 struct json_object **out);

/* Which top-level members ptm__json_dump writes; NULL writes all. */
typedef int (*ptm__json_keep_fn)(const char *key, struct json_object *v, const void *ctx);

/*
 * Serialise v as Python's json.dumps(v, indent=2 if pretty else None, sort_keys=True,
 * separators compact when not pretty), ensure_ascii on, NaN/Infinity written as HF's
 * {"__float__": ...} tags. The top-level member named int_keyed (may be NULL) has integer
 * keys and sorts numerically, as Python sorts HF's int-keyed id2label. Only top-level members
 * for which keep says 1 are written. v is only read (no reference counts change), so
 * several threads may dump one value. *out: ptm__malloc'd.
 */
ptm_status ptm__json_dump(struct json_object *v, int pretty, const char *int_keyed,
                          ptm__json_keep_fn keep, const void *ctx, char **out);

/* Whether s[0..n) is valid UTF-8. */
int ptm__utf8_valid(const char *s, size_t n);

#endif
