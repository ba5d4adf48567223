/*
 * tok_json.c - typed member access over json-c for the tokenizer's loaders. Each helper
 * checks one member's presence and type and, on a fault, fails with a message naming the
 * file and the JSON path ("tokenizer.json: normalizer.lowercase: expected boolean, got
 * string"), so the component loaders stay one line per field. It owns no state.
 */
#include <inttypes.h>
#include <string.h>

#include "error.h"
#include "tokenizer.h"

const char *ptm__tok_json_type_name(json_object *j)
{
    switch (json_object_get_type(j)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
        return "number";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "unknown";
}

static const char *type_word(json_type t)
{
    switch (t) {
    case json_type_boolean:
        return "boolean";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    default:
        return "value";
    }
}

ptm_status ptm__tok_jmember(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                            const char *key, json_type type, int required, json_object **out)
{
    json_object *m = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &m) || m == NULL) {
        if (required) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s%s%s: missing required %s", c->file, path,
                             *path ? "." : "", key, type_word(type));
        }
        return PTM_OK;
    }
    if (!json_object_is_type(m, type)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s%s%s: expected %s, got %s", c->file, path,
                         *path ? "." : "", key, type_word(type), ptm__tok_json_type_name(m));
    }
    *out = m;
    return PTM_OK;
}

ptm_status ptm__tok_jbool(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                          const char *key, int dflt, int *out)
{
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, obj, path, key, json_type_boolean, 0, &m);
    *out = m != NULL ? json_object_get_boolean(m) : dflt;
    return st;
}

ptm_status ptm__tok_jint(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                         const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, obj, path, key, json_type_int, 0, &m);
    *out = dflt;
    if (st != PTM_OK || m == NULL) {
        return st;
    }
    int64_t v = json_object_get_int64(m);
    if (v < lo || v > hi) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: %s%s%s: value %" PRId64 " out of range [%" PRId64 ", %" PRId64 "]",
                         c->file, path, *path ? "." : "", key, v, lo, hi);
    }
    *out = v;
    return PTM_OK;
}

ptm_status ptm__tok_jstr(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                         const char *key, const char **out, size_t *len)
{
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, obj, path, key, json_type_string, 1, &m);
    *out = NULL;
    if (st != PTM_OK) {
        return st;
    }
    *out = json_object_get_string(m);
    if (len != NULL) {
        *len = (size_t)json_object_get_string_len(m);
    }
    return PTM_OK;
}

ptm_status ptm__tok_jtype(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                          const char **out)
{
    *out = NULL;
    if (!json_object_is_type(obj, json_type_object)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got %s", c->file, path,
                         ptm__tok_json_type_name(obj));
    }
    return ptm__tok_jstr(c, obj, path, "type", out, NULL);
}

ptm_status ptm__tok_junsupported(const struct ptm__tok_jctx *c, const char *path, const char *what,
                                 const char *type)
{
    return ptm__fail(PTM_E_UNSUPPORTED, "%s: %s: unsupported %s type \"%s\"", c->file, path, what,
                     type);
}
