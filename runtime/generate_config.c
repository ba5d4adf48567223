/*
 * generate_config.c - generation options as HF's GenerationConfig holds them: the library
 * defaults (GenerationConfig._get_default_generation_params), generation_config.json read
 * over them, then the model config's bos / eos / pad ids where the file left them unset;
 * and writing generation_config.json back with only the values that differ from the
 * defaults. The decoding loop itself is generate.c.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "atomic_file.h"
#include "error.h"
#include "ptm/ptm.h"

/* HF defaults: max_length 20, temperature 1, top_k 50, top_p 1, repetition_penalty 1,
 * num_beams 1, length_penalty 1, early_stopping false, num_return_sequences 1. */
static void defaults(struct ptm_generate_opts *o)
{
    uint32_t size = o->struct_size;
    memset(o, 0, sizeof *o);
    o->struct_size = size;
    o->max_new_tokens = -1;
    o->max_length = 20;
    o->temperature = 1.0f;
    o->top_k = 50;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
    o->pad_id = -1;
    o->bos_id = -1;
    o->cache_dtype = PTM_F32;
    o->num_beams = 1;
    o->length_penalty = 1.0f;
    o->num_return_sequences = 1;
}

/* An integer or a list of integers into ids[]; PTM_E_TYPE otherwise. */
static ptm_status read_ids(struct json_object *v, const char *file, const char *key, int64_t *ids,
                           int32_t *n)
{
    *n = 0;
    if (json_object_is_type(v, json_type_int)) {
        ids[(*n)++] = json_object_get_int64(v);
        return PTM_OK;
    }
    if (!json_object_is_type(v, json_type_array)) {
        return ptm__fail(PTM_E_TYPE, "%s: \"%s\": expected integer or list of integers", file, key);
    }
    size_t len = json_object_array_length(v);
    for (size_t i = 0; i < len && *n < PTM_GENERATE_MAX_EOS; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_int)) {
            return ptm__fail(PTM_E_TYPE, "%s: \"%s\"[%zu]: expected integer", file, key, i);
        }
        ids[(*n)++] = json_object_get_int64(e);
    }
    return PTM_OK;
}

/* early_stopping: true, false or "never" (HF's three values). */
static ptm_status read_early_stopping(struct json_object *root, const char *file,
                                      struct ptm_generate_opts *o)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(root, "early_stopping", &v) || v == NULL) {
        return PTM_OK;
    }
    if (json_object_is_type(v, json_type_boolean)) {
        o->early_stopping =
            json_object_get_boolean(v) ? PTM_EARLY_STOPPING_TRUE : PTM_EARLY_STOPPING_HEURISTIC;
        return PTM_OK;
    }
    if (json_object_is_type(v, json_type_string) &&
        strcmp(json_object_get_string(v), "never") == 0) {
        o->early_stopping = PTM_EARLY_STOPPING_NEVER;
        return PTM_OK;
    }
    return ptm__fail(PTM_E_TYPE, "%s: \"early_stopping\": expected true, false or \"never\"", file);
}

/* Numbers and booleans of generation_config.json over the defaults. */
static ptm_status read_file(struct json_object *root, const char *file, struct ptm_generate_opts *o)
{
    struct {
        const char *key;
        int kind; /* 0 int64, 1 float, 2 bool, 3 int32 */
        void *dst;
    } keys[] = {
        {"max_length", 0, &o->max_length},
        {"max_new_tokens", 0, &o->max_new_tokens},
        {"min_new_tokens", 0, &o->min_new_tokens},
        {"do_sample", 2, &o->do_sample},
        {"temperature", 1, &o->temperature},
        {"top_k", 0, &o->top_k},
        {"top_p", 1, &o->top_p},
        {"min_p", 1, &o->min_p},
        {"repetition_penalty", 1, &o->repetition_penalty},
        {"pad_token_id", 0, &o->pad_id},
        {"bos_token_id", 0, &o->bos_id},
        {"num_beams", 3, &o->num_beams},
        {"length_penalty", 1, &o->length_penalty},
        {"num_return_sequences", 3, &o->num_return_sequences},
        {"no_repeat_ngram_size", 0, &o->no_repeat_ngram_size},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct json_object *v = NULL;
        if (!json_object_object_get_ex(root, keys[i].key, &v) || v == NULL) {
            continue; /* absent or null: the default stands */
        }
        enum json_type t = json_object_get_type(v);
        int ok = keys[i].kind == 0 || keys[i].kind == 3 ? t == json_type_int
                 : keys[i].kind == 1 ? t == json_type_int || t == json_type_double
                                     : t == json_type_boolean;
        if (!ok) {
            static const char *const want[] = {"integer", "number", "boolean", "integer"};
            return ptm__fail(PTM_E_TYPE, "%s: \"%s\": expected %s", file, keys[i].key,
                             want[keys[i].kind]);
        }
        if (keys[i].kind == 0) {
            *(int64_t *)keys[i].dst = json_object_get_int64(v);
        } else if (keys[i].kind == 3) {
            *(int32_t *)keys[i].dst = json_object_get_int(v);
        } else if (keys[i].kind == 1) {
            *(float *)keys[i].dst = (float)json_object_get_double(v);
        } else {
            *(int32_t *)keys[i].dst = json_object_get_boolean(v);
        }
    }
    ptm_status st = read_early_stopping(root, file, o);
    struct json_object *eos = NULL;
    if (st == PTM_OK && json_object_object_get_ex(root, "eos_token_id", &eos) && eos != NULL) {
        return read_ids(eos, file, "eos_token_id", o->eos_ids, &o->n_eos);
    }
    return st;
}

static ptm_status load_file(const char *dir, struct ptm_generate_opts *o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return PTM_OK; /* no file: defaults and the model config */
    }
    fclose(f);
    struct json_object *root = json_object_from_file(path);
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return ptm__fail(PTM_E_FORMAT, "%s: not a JSON object", path);
    }
    ptm_status st = read_file(root, path, o);
    json_object_put(root);
    return st;
}

/* The model config's token ids where the generation config has none. */
static void from_model_config(const ptm_config *c, struct ptm_generate_opts *o)
{
    int64_t v = 0;
    size_t n = 0;
    if (o->n_eos == 0 && ptm_config_has(c, "eos_token_id") &&
        ptm_config_get_int_list(c, "eos_token_id", o->eos_ids, PTM_GENERATE_MAX_EOS, &n) ==
            PTM_OK) {
        o->n_eos = (int32_t)(n < PTM_GENERATE_MAX_EOS ? n : PTM_GENERATE_MAX_EOS);
    }
    if (o->pad_id < 0 && ptm_config_has(c, "pad_token_id") &&
        ptm_config_get_int(c, "pad_token_id", &v) == PTM_OK) {
        o->pad_id = v;
    }
    if (o->bos_id < 0 && ptm_config_has(c, "bos_token_id") &&
        ptm_config_get_int(c, "bos_token_id", &v) == PTM_OK) {
        o->bos_id = v;
    }
}

ptm_status ptm_generate_opts_init(const ptm_model *m, struct ptm_generate_opts *o)
{
    ptm__error_clear();
    if (m == NULL || o == NULL || o->struct_size < PTM_GENERATE_OPTS_SIZE_1_0) {
        return ptm__fail(PTM_E_INVAL, "generate: opts_init needs a model and opts whose "
                                      "struct_size is set");
    }
    /* Filled at full size, handed back at the caller's (a 1.0 caller's struct is smaller). */
    uint32_t size = o->struct_size < sizeof *o ? o->struct_size : (uint32_t)sizeof *o;
    struct ptm_generate_opts full = {.struct_size = sizeof full};
    defaults(&full);
    const char *dir = ptm_model_dir(m);
    ptm_status st = dir != NULL ? load_file(dir, &full) : PTM_OK;
    if (st == PTM_OK) {
        from_model_config(ptm_model_config(m), &full);
    } else {
        defaults(&full);
    }
    full.struct_size = size;
    memcpy(o, &full, size);
    return st;
}

static int add(struct json_object *root, const char *key, struct json_object *v)
{
    return v != NULL && json_object_object_add(root, key, v) == 0;
}

ptm_status ptm_generate_opts_save(const struct ptm_generate_opts *o, const char *dir)
{
    ptm__error_clear();
    if (o == NULL || dir == NULL || o->struct_size < PTM_GENERATE_OPTS_SIZE_1_0) {
        return ptm__fail(PTM_E_INVAL, "generate: opts_save: NULL argument or struct_size unset");
    }
    struct ptm_generate_opts d = {.struct_size = sizeof d}, full = d;
    defaults(&d);
    defaults(&full); /* the members a 1.0 caller's struct lacks keep HF's defaults */
    memcpy(&full, o, o->struct_size < sizeof full ? o->struct_size : sizeof full);
    o = &full;
    struct json_object *root = json_object_new_object();
    int ok = root != NULL;
    if (ok && o->bos_id >= 0) {
        ok = add(root, "bos_token_id", json_object_new_int64(o->bos_id));
    }
    if (ok && o->n_eos == 1) {
        ok = add(root, "eos_token_id", json_object_new_int64(o->eos_ids[0]));
    } else if (ok && o->n_eos > 1) {
        struct json_object *a = json_object_new_array();
        ok = add(root, "eos_token_id", a);
        for (int32_t i = 0; ok && i < o->n_eos; i++) {
            ok = json_object_array_add(a, json_object_new_int64(o->eos_ids[i])) == 0;
        }
    }
    if (ok && o->pad_id >= 0) {
        ok = add(root, "pad_token_id", json_object_new_int64(o->pad_id));
    }
#define DIFF(field, key, make)                                                                     \
    if (ok && o->field != d.field) {                                                               \
        ok = add(root, key, make(o->field));                                                       \
    }
    DIFF(do_sample, "do_sample", json_object_new_boolean)
    DIFF(max_length, "max_length", json_object_new_int64)
    DIFF(max_new_tokens, "max_new_tokens", json_object_new_int64)
    DIFF(min_new_tokens, "min_new_tokens", json_object_new_int64)
    DIFF(temperature, "temperature", json_object_new_double)
    DIFF(top_k, "top_k", json_object_new_int64)
    DIFF(top_p, "top_p", json_object_new_double)
    DIFF(min_p, "min_p", json_object_new_double)
    DIFF(repetition_penalty, "repetition_penalty", json_object_new_double)
    DIFF(num_beams, "num_beams", json_object_new_int)
    DIFF(length_penalty, "length_penalty", json_object_new_double)
    DIFF(num_return_sequences, "num_return_sequences", json_object_new_int)
    DIFF(no_repeat_ngram_size, "no_repeat_ngram_size", json_object_new_int64)
#undef DIFF
    if (ok && o->early_stopping != d.early_stopping) {
        ok = add(root, "early_stopping",
                 o->early_stopping == PTM_EARLY_STOPPING_NEVER
                     ? json_object_new_string("never")
                     : json_object_new_boolean(o->early_stopping == PTM_EARLY_STOPPING_TRUE));
    }
    const char *text = ok ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                     JSON_C_TO_STRING_SPACED |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE)
                          : NULL;
    ptm_status st = PTM_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (text == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    } else {
        size_t n = strlen(text);
        char *buf = ptm__malloc(n + 2);
        if (buf == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
        } else {
            memcpy(buf, text, n);
            buf[n] = '\n';
            st = ptm__atomic_write(path, buf, n + 1);
            ptm__free(buf);
        }
    }
    json_object_put(root);
    return st;
}
