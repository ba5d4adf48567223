/*
 * config_common.c - the config schema: the PretrainedConfig fields the runtime owns, merged
 * with an architecture's typed fields and aliases, and the type check every value passes.
 *
 * Two tables of common fields. "Base" fields are what transformers 5.x PretrainedConfig
 * declares itself (its to_dict() with no subclass): every config holds them and a diff save
 * compares against their defaults. "Legacy" fields are the 4.x PretrainedConfig fields that
 * 5.x moved into the model configs (token ids, tie_word_embeddings, ...): typed when present
 * and giving get_* a default, but held and written only when a file or a caller sets them,
 * or when the architecture restates them (then they are its fields). It does not read
 * files, keep configs or write JSON text (config.c and config_json.c do).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "error.h"

struct common_field {
    const char *name;
    int32_t type;
    uint32_t flags;
    const char *default_json;
    const char *base_json; /* PretrainedConfig().to_dict() value when not default_json */
};

/* transformers 5.23 PretrainedConfig: its dataclass fields, output_attentions (kept as
 * _output_attentions, written back under its public name) and _name_or_path. id2label and
 * label2id start as None and __post_init__ fills both with two labels when id2label is None,
 * so a bare PretrainedConfig().to_dict() holds two labels: that is what a diff compares to. */
static const struct common_field base_fields[] = {
    {"_name_or_path", PTM_CFG_STRING, 0, "\"\"", NULL},
    {"architectures", PTM_CFG_STRING_LIST, PTM_CFG_NULLABLE, "null", NULL},
    {"chunk_size_feed_forward", PTM_CFG_INT, 0, "0", NULL},
    {"dtype", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
    {"id2label", PTM_CFG_OBJECT, PTM_CFG_NULLABLE | PTM__CFG_INT_KEYS, "null",
     "{\"0\": \"LABEL_0\", \"1\": \"LABEL_1\"}"},
    {"is_encoder_decoder", PTM_CFG_BOOL, 0, "false", NULL},
    {"label2id", PTM_CFG_OBJECT, PTM_CFG_NULLABLE, "null", "{\"LABEL_0\": 0, \"LABEL_1\": 1}"},
    {"output_attentions", PTM_CFG_BOOL, PTM_CFG_NULLABLE, "false", NULL},
    {"output_hidden_states", PTM_CFG_BOOL, PTM_CFG_NULLABLE, "false", NULL},
    {"problem_type", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
    {"return_dict", PTM_CFG_BOOL, PTM_CFG_NULLABLE, "true", NULL},
    {"transformers_version", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
};

/* transformers 4.x PretrainedConfig.__init__ fields that 5.x no longer declares. The
 * generation parameters (max_length, num_beams, ...) are left out: they are kept as unknown
 * keys, untyped, as 4.x wrote them. */
static const struct common_field legacy_fields[] = {
    {"add_cross_attention", PTM_CFG_BOOL, 0, "false", NULL},
    {"bos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "null", NULL},
    {"cross_attention_hidden_size", PTM_CFG_INT, PTM_CFG_NULLABLE, "null", NULL},
    {"decoder_start_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "null", NULL},
    {"eos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "null", NULL},
    {"finetuning_task", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
    {"is_decoder", PTM_CFG_BOOL, 0, "false", NULL},
    {"pad_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "null", NULL},
    {"prefix", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
    {"pruned_heads", PTM_CFG_OBJECT, 0, "{}", NULL},
    {"sep_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "null", NULL},
    {"task_specific_params", PTM_CFG_OBJECT, PTM_CFG_NULLABLE, "null", NULL},
    {"tf_legacy_loss", PTM_CFG_BOOL, 0, "false", NULL},
    {"tie_encoder_decoder", PTM_CFG_BOOL, 0, "false", NULL},
    {"tie_word_embeddings", PTM_CFG_BOOL, 0, "true", NULL},
    {"tokenizer_class", PTM_CFG_STRING, PTM_CFG_NULLABLE, "null", NULL},
    {"torchscript", PTM_CFG_BOOL, 0, "false", NULL},
    {"use_bfloat16", PTM_CFG_BOOL, 0, "false", NULL},
};

#define N_BASE   (sizeof base_fields / sizeof base_fields[0])
#define N_LEGACY (sizeof legacy_fields / sizeof legacy_fields[0])

/* HF 5 reads a config's "torch_dtype" into dtype (and keeps dtype when both are given). */
static const struct ptm__alias builtin_alias = {"torch_dtype", "dtype"};

/* Keys HF consumes on load and never writes back (_remove_keys_not_serialized and the
 * kwargs __post_init__ pops); keeping them would make a saved config differ from HF's. */
static const char *const dropped_keys[] = {
    "_commit_hash",
    "_attn_implementation_internal",
    "_experts_implementation_internal",
    "attn_implementation",
    "experts_implementation",
    "_is_quantized",
    "_auto_class",
    "_post_init_done",
    "ignore_keys_at_rope_validation",
    "base_model_tp_plan",
    "base_model_pp_plan",
    "base_model_fsdp_plan",
    "distributed_config",
};

int ptm__config_key_dropped(const char *key)
{
    for (size_t i = 0; i < sizeof dropped_keys / sizeof dropped_keys[0]; i++) {
        if (strcmp(key, dropped_keys[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *ptm__cfg_type_name(int32_t type)
{
    switch (type) {
    case PTM_CFG_INT:
        return "integer";
    case PTM_CFG_FLOAT:
        return "number";
    case PTM_CFG_BOOL:
        return "boolean";
    case PTM_CFG_STRING:
        return "string";
    case PTM_CFG_INT_LIST:
        return "list of integers";
    case PTM_CFG_FLOAT_LIST:
        return "list of numbers";
    case PTM_CFG_STRING_LIST:
        return "list of strings";
    case PTM_CFG_OBJECT:
        return "object";
    case PTM_CFG_ANY:
        return "any value";
    case PTM_CFG_INT_OR_LIST:
        return "integer or list of integers";
    default:
        return "unknown type";
    }
}

const char *ptm__json_kind(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_int:
        return "integer";
    case json_type_double:
        return "number";
    case json_type_string:
        return "string";
    case json_type_array:
        return "list";
    case json_type_object:
        return "object";
    }
    return "unknown";
}

/* HF writes NaN and +-Infinity as {"__float__": "NaN"} (PretrainedConfig._encode_special_floats).
 */
static int float_tag(struct json_object *v, double *d)
{
    struct json_object *t;
    if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 1 ||
        !json_object_object_get_ex(v, "__float__", &t) ||
        !json_object_is_type(t, json_type_string)) {
        return 0;
    }
    const char *s = json_object_get_string(t);
    if (strcmp(s, "NaN") == 0) {
        *d = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
        *d = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
        *d = -INFINITY;
    } else {
        return 0;
    }
    return 1;
}

static int is_number(struct json_object *v)
{
    double d;
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ||
           float_tag(v, &d);
}

/* Python's int(key) for the keys of id2label: optional blanks and sign, decimal digits. */
static int int_key(const char *k, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(k, &end, 10);
    if (end == k || errno == ERANGE) {
        return 0;
    }
    while (*end == ' ' || *end == '\t' || *end == '\n') {
        end++;
    }
    *out = v;
    return *end == '\0';
}

static int elem_ok(int32_t type, struct json_object *e)
{
    switch (type) {
    case PTM_CFG_INT_LIST:
    case PTM_CFG_INT_OR_LIST:
        return json_object_is_type(e, json_type_int);
    case PTM_CFG_FLOAT_LIST:
        return is_number(e);
    default:
        return json_object_is_type(e, json_type_string);
    }
}

/* Why v does not fit (type, flags), written to why; 0 when it fits. */
static int type_fault(int32_t type, uint32_t flags, struct json_object *v, char *why, size_t n)
{
    const char *want = ptm__cfg_type_name(type);
    const char *null = (flags & PTM_CFG_NULLABLE) ? " or null" : "";
    int ok = 0;
    if (v == NULL) {
        ok = (flags & PTM_CFG_NULLABLE) || type == PTM_CFG_ANY;
    } else if (type == PTM_CFG_INT) {
        ok = json_object_is_type(v, json_type_int);
    } else if (type == PTM_CFG_FLOAT) {
        ok = is_number(v);
    } else if (type == PTM_CFG_BOOL) {
        ok = json_object_is_type(v, json_type_boolean);
    } else if (type == PTM_CFG_STRING) {
        ok = json_object_is_type(v, json_type_string);
    } else if (type == PTM_CFG_OBJECT) {
        ok = json_object_is_type(v, json_type_object);
    } else if (type == PTM_CFG_ANY) {
        ok = 1;
    } else if (type == PTM_CFG_INT_OR_LIST && json_object_is_type(v, json_type_int)) {
        ok = 1;
    } else if (json_object_is_type(v, json_type_array)) {
        size_t len = json_object_array_length(v);
        for (size_t i = 0; i < len; i++) {
            struct json_object *e = json_object_array_get_idx(v, i);
            if (!elem_ok(type, e)) {
                snprintf(why, n, "expected %s%s, got %s at index %zu", want, null,
                         ptm__json_kind(e), i);
                return 1;
            }
        }
        ok = 1;
    }
    if (!ok) {
        snprintf(why, n, "expected %s%s, got %s", want, null, ptm__json_kind(v));
        return 1;
    }
    if ((flags & PTM__CFG_INT_KEYS) && v != NULL) {
        for (struct lh_entry *e_ = json_object_get_object(v)->head; e_ != NULL; e_ = e_->next) {
            const char *key = lh_entry_k(e_);
            long long k;
            if (!int_key(key, &k)) {
                snprintf(why, n, "expected object with integer keys, got key \"%s\"", key);
                return 1;
            }
        }
    }
    return 0;
}

/* Replace float tags by doubles in a float field or list. */
static ptm_status normalise_floats(struct json_object **v)
{
    double d;
    if (float_tag(*v, &d)) {
        struct json_object *n = json_object_new_double(d);
        if (n == NULL) {
            return ptm__fail(PTM_E_NOMEM, "config: out of memory");
        }
        json_object_put(*v);
        *v = n;
        return PTM_OK;
    }
    size_t len = json_object_is_type(*v, json_type_array) ? json_object_array_length(*v) : 0;
    for (size_t i = 0; i < len; i++) {
        if (float_tag(json_object_array_get_idx(*v, i), &d)) {
            struct json_object *n = json_object_new_double(d);
            if (n == NULL || json_object_array_put_idx(*v, i, n) != 0) {
                json_object_put(n);
                return ptm__fail(PTM_E_NOMEM, "config: out of memory");
            }
        }
    }
    return PTM_OK;
}

/* HF turns id2label keys into ints; json.dumps writes them back as plain decimals. */
static ptm_status normalise_int_keys(struct json_object **v)
{
    struct json_object *n = json_object_new_object();
    if (n == NULL) {
        return ptm__fail(PTM_E_NOMEM, "config: out of memory");
    }
    for (struct lh_entry *e_ = json_object_get_object(*v)->head; e_ != NULL; e_ = e_->next) {
        const char *key = lh_entry_k(e_);
        struct json_object *val = lh_entry_v(e_);
        long long k = 0;
        char buf[32];
        int_key(key, &k);
        snprintf(buf, sizeof buf, "%lld", k);
        if (json_object_object_add(n, buf, json_object_get(val)) != 0) {
            json_object_put(n);
            return ptm__fail(PTM_E_NOMEM, "config: out of memory");
        }
    }
    json_object_put(*v);
    *v = n;
    return PTM_OK;
}

ptm_status ptm__field_check(const struct ptm__field *f, const char *label, const char *key,
                            struct json_object **v)
{
    char why[256];
    if (type_fault(f->type, f->flags, *v, why, sizeof why)) {
        return ptm__fail(PTM_E_TYPE, "%s: \"%s\": %s", label, key, why);
    }
    if (*v == NULL) {
        return PTM_OK;
    }
    if (f->type == PTM_CFG_FLOAT || f->type == PTM_CFG_FLOAT_LIST) {
        return normalise_floats(v);
    }
    if (f->flags & PTM__CFG_INT_KEYS) {
        return normalise_int_keys(v);
    }
    return PTM_OK;
}

const struct ptm__field *ptm__schema_field(const struct ptm__schema *s, const char *name)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        if (strcmp(s->fields[i].name, name) == 0) {
            return &s->fields[i];
        }
    }
    return NULL;
}

const char *ptm__schema_resolve(const struct ptm__schema *s, const char *key)
{
    for (size_t i = 0; i < s->n_aliases; i++) {
        if (strcmp(s->aliases[i].alias, key) == 0) {
            return s->aliases[i].name;
        }
    }
    return key;
}

void ptm__schema_free(struct ptm__schema *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        json_object_put(s->fields[i].def);
        json_object_put(s->fields[i].base_def);
    }
    ptm__free(s->fields);
    ptm__free(s->aliases);
    ptm__free(s);
}

/* Parse one default (NULL text means "no default") and check it against (type, flags). */
static ptm_status parse_default(const char *mt, const char *name, int32_t type, uint32_t flags,
                                const char *text, struct ptm__field *f)
{
    char why[256];
    if (text == NULL) {
        return PTM_OK;
    }
    struct json_object *v = NULL;
    ptm_status st = ptm__json_parse_value(text, strlen(text), "default", &v);
    if (st == PTM_E_NOMEM) {
        return st;
    }
    if (st != PTM_OK) {
        ptm__error_clear();
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": field \"%s\": default '%s' is not JSON",
                         mt, name, text);
    }
    if (type_fault(type, flags, v, why, sizeof why)) {
        json_object_put(v);
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": field \"%s\": default '%s': %s", mt,
                         name, text, why);
    }
    json_object_put(f->def);
    f->def = v;
    f->has_def = 1;
    return PTM_OK;
}

static ptm_status add_common(struct ptm__schema *s, const struct common_field *c, int is_base)
{
    struct ptm__field *f = &s->fields[s->n_fields++];
    memset(f, 0, sizeof *f);
    f->name = c->name;
    f->type = c->type;
    f->flags = c->flags;
    f->is_held = is_base;
    f->is_base = is_base;
    ptm_status st = parse_default("(runtime)", c->name, c->type, c->flags, c->default_json, f);
    if (st == PTM_OK && is_base) {
        const char *b = c->base_json != NULL ? c->base_json : c->default_json;
        st = ptm__json_parse_value(b, strlen(b), c->name, &f->base_def);
    }
    return st;
}

/* The i-th record of an END-terminated array, copied so members past its struct_size read as 0. */
static int field_at(const struct ptm_config_field *arr, size_t i, struct ptm_config_field *out)
{
    memset(out, 0, sizeof *out);
    size_t stride = arr->struct_size;
    size_t n = stride < sizeof *out ? stride : sizeof *out;
    memcpy(out, (const char *)arr + i * stride, n);
    return out->name != NULL;
}

static int alias_at(const struct ptm_config_alias *arr, size_t i, struct ptm_config_alias *out)
{
    memset(out, 0, sizeof *out);
    size_t stride = arr->struct_size;
    size_t n = stride < sizeof *out ? stride : sizeof *out;
    memcpy(out, (const char *)arr + i * stride, n);
    return out->alias != NULL;
}

static ptm_status add_arch_field(struct ptm__schema *s, const struct ptm_config_field *rec)
{
    const char *mt = s->model_type;
    if (rec->type < PTM_CFG_INT || rec->type > PTM_CFG_INT_OR_LIST) {
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": field \"%s\": unknown type %d", mt,
                         rec->name, (int)rec->type);
    }
    if (rec->name[0] == '\0' || strcmp(rec->name, "model_type") == 0 ||
        strcmp(rec->name, "num_labels") == 0) {
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": field \"%s\": name is reserved", mt,
                         rec->name);
    }
    if (ptm__schema_resolve(s, rec->name) != rec->name) {
        return ptm__fail(PTM_E_PLUGIN,
                         "model_type \"%s\": field \"%s\": name is an alias of \"%s\"", mt,
                         rec->name, ptm__schema_resolve(s, rec->name));
    }
    size_t at = 0;
    while (at < s->n_fields && strcmp(s->fields[at].name, rec->name) != 0) {
        at++;
    }
    struct ptm__field *f = &s->fields[at];
    if (at < s->n_fields && at >= N_BASE + N_LEGACY) {
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": field \"%s\": declared twice", mt,
                         rec->name);
    }
    if (at < N_BASE && f->type != rec->type) {
        return ptm__fail(PTM_E_PLUGIN,
                         "model_type \"%s\": field \"%s\": restates a common field as %s, "
                         "PretrainedConfig has %s",
                         mt, rec->name, ptm__cfg_type_name(rec->type), ptm__cfg_type_name(f->type));
    }
    uint32_t keep = at < N_BASE ? (f->flags & PTM__CFG_INT_KEYS) : 0;
    if (at == s->n_fields) {
        memset(f, 0, sizeof *f);
        s->n_fields++;
    }
    f->name = rec->name;
    f->type = rec->type;
    f->flags = (rec->flags & PTM_CFG_NULLABLE) | keep;
    f->doc = rec->doc;
    f->is_held = 1;
    json_object_put(f->def);
    f->def = NULL;
    f->has_def = 0;
    return parse_default(mt, rec->name, f->type, f->flags, rec->default_json, f);
}

static ptm_status add_alias(struct ptm__schema *s, const char *alias, const char *name)
{
    const char *mt = s->model_type;
    if (name == NULL || ptm__schema_field(s, name) == NULL) {
        return ptm__fail(PTM_E_PLUGIN,
                         "model_type \"%s\": alias \"%s\" points to no field (\"%s\")", mt, alias,
                         name != NULL ? name : "(null)");
    }
    if (ptm__schema_field(s, alias) != NULL || strcmp(alias, "model_type") == 0 ||
        strcmp(alias, "num_labels") == 0) {
        return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": alias \"%s\" is also a field name", mt,
                         alias);
    }
    for (size_t i = 0; i < s->n_aliases; i++) {
        if (strcmp(s->aliases[i].alias, alias) == 0) {
            return ptm__fail(PTM_E_PLUGIN, "model_type \"%s\": alias \"%s\" declared twice", mt,
                             alias);
        }
    }
    s->aliases[s->n_aliases].alias = alias;
    s->aliases[s->n_aliases].name = name;
    s->n_aliases++;
    return PTM_OK;
}

/* Count the records of the arch's arrays and check their struct_size can hold a name. */
static ptm_status count_records(const struct ptm_arch *arch, size_t *n_fields, size_t *n_aliases)
{
    struct ptm_config_field f;
    struct ptm_config_alias a;
    size_t min_f = offsetof(struct ptm_config_field, name) + sizeof f.name;
    size_t min_a = offsetof(struct ptm_config_alias, name) + sizeof a.name;
    *n_fields = 0;
    *n_aliases = 0;
    if (arch->fields != NULL) {
        if (arch->fields->struct_size < min_f) {
            return ptm__fail(PTM_E_PLUGIN,
                             "model_type \"%s\": config field struct_size %u is "
                             "too small",
                             arch->model_type, arch->fields->struct_size);
        }
        while (field_at(arch->fields, *n_fields, &f)) {
            (*n_fields)++;
        }
    }
    if (arch->aliases != NULL) {
        if (arch->aliases->struct_size < min_a) {
            return ptm__fail(PTM_E_PLUGIN,
                             "model_type \"%s\": config alias struct_size %u is "
                             "too small",
                             arch->model_type, arch->aliases->struct_size);
        }
        while (alias_at(arch->aliases, *n_aliases, &a)) {
            (*n_aliases)++;
        }
    }
    return PTM_OK;
}

static ptm_status build(struct ptm__schema *s, const struct ptm_arch *arch, size_t n_f, size_t n_a)
{
    ptm_status st = PTM_OK;
    for (size_t i = 0; st == PTM_OK && i < N_BASE; i++) {
        st = add_common(s, &base_fields[i], 1);
    }
    for (size_t i = 0; st == PTM_OK && i < N_LEGACY; i++) {
        st = add_common(s, &legacy_fields[i], 0);
    }
    if (st == PTM_OK) {
        st = add_alias(s, builtin_alias.alias, builtin_alias.name);
    }
    for (size_t i = 0; st == PTM_OK && i < n_f; i++) {
        struct ptm_config_field f;
        field_at(arch->fields, i, &f);
        st = add_arch_field(s, &f);
    }
    for (size_t i = 0; st == PTM_OK && i < n_a; i++) {
        struct ptm_config_alias a;
        alias_at(arch->aliases, i, &a);
        st = add_alias(s, a.alias, a.name);
    }
    return st;
}

ptm_status ptm__schema_new(const struct ptm_arch *arch, struct ptm__schema **out)
{
    *out = NULL;
    size_t n_f, n_a;
    ptm_status st = count_records(arch, &n_f, &n_a);
    if (st != PTM_OK) {
        return st;
    }
    struct ptm__schema *s = ptm__calloc(1, sizeof *s);
    if (s != NULL) {
        s->fields = ptm__calloc(N_BASE + N_LEGACY + n_f, sizeof *s->fields);
        s->aliases = ptm__calloc(n_a + 1, sizeof *s->aliases); /* + torch_dtype */
    }
    if (s == NULL || s->fields == NULL || s->aliases == NULL) {
        ptm__schema_free(s);
        return ptm__fail(PTM_E_NOMEM, "model_type \"%s\": out of memory for the config schema",
                         arch->model_type);
    }
    s->model_type = arch->model_type;
    st = build(s, arch, n_f, n_a);
    if (st != PTM_OK) {
        ptm__schema_free(s);
        return st;
    }
    *out = s;
    return PTM_OK;
}
