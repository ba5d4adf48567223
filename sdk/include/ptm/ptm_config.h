/*
 * ptm_config.h - model configs: HF PretrainedConfig's common fields (owned by the runtime)
 * plus the typed fields an architecture plugin registers (ptm_plugin.h), read from and
 * written to config.json.
 *
 * A config is validated against its architecture's schema when loaded or set: a wrong type
 * is an error naming the file, the key and the expected type. Keys the schema does not know
 * are kept and written back unchanged. Aliases (attribute_map) resolve to their field for
 * every get and set. A config is not thread safe for writes; concurrent reads are fine.
 */
#ifndef PTM_CONFIG_H
#define PTM_CONFIG_H

#include "ptm_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_config ptm_config;

/*
 * ptm_config_load - read a config.json (path is the file, or a directory holding one).
 *
 * The architecture is chosen by "model_type" through the registry (load plugins first);
 * a config with no model_type, or one no plugin registered, is PTM_E_NOT_FOUND naming it.
 * out: on PTM_OK a new config owned by the caller (ptm_config_free); else NULL.
 * Returns PTM_E_IO (unreadable), PTM_E_FORMAT (not JSON / not an object), PTM_E_TYPE
 * (`config.json: "hidden_size": expected integer, got string`), PTM_E_NOT_FOUND (also when
 * the file does not exist). Messages name the file read (for a directory, its config.json).
 */
PTM_API ptm_status ptm_config_load(const char *path, ptm_config **out);

/* ptm_config_parse - the same from JSON text; label names the source in messages. */
PTM_API ptm_status ptm_config_parse(const char *json, const char *label, ptm_config **out);

/* ptm_config_new - a config of model_type holding every default (HF's Config()). */
PTM_API ptm_status ptm_config_new(const char *model_type, ptm_config **out);

/* ptm_config_copy - a deep copy; out owned by the caller. */
PTM_API ptm_status ptm_config_copy(const ptm_config *c, ptm_config **out);

/* ptm_config_free - release c; NULL is fine. Strings borrowed from c die with it. */
PTM_API void ptm_config_free(ptm_config *c);

/* ptm_config_model_type - the model_type; borrowed, lives as long as c. */
PTM_API const char *ptm_config_model_type(const ptm_config *c);

/*
 * Getters by field name or alias. A field set to null, or absent with no default, is
 * PTM_E_NOT_FOUND; a value of another type is PTM_E_TYPE naming the key and both types.
 * Integers convert to float on get_float. *out is untouched on failure.
 */
PTM_API ptm_status ptm_config_get_int(const ptm_config *c, const char *key, int64_t *out);
PTM_API ptm_status ptm_config_get_float(const ptm_config *c, const char *key, double *out);
PTM_API ptm_status ptm_config_get_bool(const ptm_config *c, const char *key, int32_t *out);
/* out: borrowed; valid until the key is set again or c is freed. */
PTM_API ptm_status ptm_config_get_string(const ptm_config *c, const char *key, const char **out);
/* An integer or a list of integers (eos_token_id): copies up to cap values, *n = count. */
PTM_API ptm_status ptm_config_get_int_list(const ptm_config *c, const char *key, int64_t *buf,
                                           size_t cap, size_t *n);
/* Any value as compact JSON text; *out freed with ptm_free. */
PTM_API ptm_status ptm_config_get_json(const ptm_config *c, const char *key, char **out);

/* ptm_config_has - 1 if key (or its alias) has a value, null included; else 0. */
PTM_API int32_t ptm_config_has(const ptm_config *c, const char *key);

/*
 * ptm_config_set_json - set key to a JSON value (text), validated against the schema.
 * PTM_E_FORMAT if value is not JSON, PTM_E_TYPE if the field's type differs; c unchanged then.
 */
PTM_API ptm_status ptm_config_set_json(ptm_config *c, const char *key, const char *value);
PTM_API ptm_status ptm_config_set_int(ptm_config *c, const char *key, int64_t v);

/*
 * ptm_config_override - apply "key=value" as HF's from_pretrained(**kwargs) does. The value is
 * read as JSON when it parses (42, 1e-5, true, null, [1,2], "x"), else as a bare string.
 * key must be a field, an alias, num_labels or a key c holds: PTM_E_NOT_FOUND otherwise, so
 * a typo is not silently kept. PTM_E_INVAL without '='; c is unchanged on any failure.
 */
PTM_API ptm_status ptm_config_override(ptm_config *c, const char *assignment);

/*
 * ptm_config_to_json - serialise as transformers does: keys sorted, 2-space indent, trailing
 * newline. diff_only: as HF to_diff_dict: PretrainedConfig's own fields only where they
 * differ from PretrainedConfig's default (or from the architecture's restated one); the
 * architecture's fields, model_type, transformers_version (when set) and unknown keys always;
 * _name_or_path never. Else every key. *out freed with ptm_free.
 */
PTM_API ptm_status ptm_config_to_json(const ptm_config *c, int32_t diff_only, char **out);

/* ptm_config_save - write to_json to path atomically (temp file, fsync, rename); a directory
 * path gets <path>/config.json. PTM_E_IO names the file and the failed step. */
PTM_API ptm_status ptm_config_save(const ptm_config *c, const char *path, int32_t diff_only);

/* Enumerate the keys that have values, in sorted order; borrowed names. */
PTM_API size_t ptm_config_n_keys(const ptm_config *c);
PTM_API const char *ptm_config_key_at(const ptm_config *c, size_t i);

#ifdef __cplusplus
}
#endif
#endif /* PTM_CONFIG_H */
