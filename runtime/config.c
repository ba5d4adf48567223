/*
 * config.c - model configs (ptm_config.h): reading config.json, typed get and set by name or
 * alias, "key=value" overrides, and writing the full or diff JSON as transformers does.
 *
 * A config holds one json-c object of canonical key -> value: every field the schema holds
 * (PretrainedConfig's own and the architecture's, at their defaults unless given), model_type,
 * and every other key given, verbatim. Loading follows PretrainedConfig.__init__ in
 * transformers 5.x: aliases (attribute_map) are stored under their field and win over it,
 * "torch_dtype" fills dtype when dtype is null, and id2label/label2id get num_labels (default
 * 2) generated labels when id2label is null. The schema and the type check live in
 * config_common.c, the JSON writer in config_json.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "alloc.h"
#include "atomic_file.h"
#include "error.h"
#include "registry.h"

#define CONFIG_MAX_BYTES (64u << 20)
#define MAX_LABELS       (1 << 20)

struct ptm_config {
    const struct ptm__schema *schema;
    struct json_object *values; /* canonical key -> value; a NULL value is JSON null */
    char *label;                /* names the source in messages */
    const char **keys;          /* values' keys, sorted; borrowed from values */
    size_t n_keys;
};

static ptm_status oom(const struct ptm_config *c)
{
    return ptm__fail(PTM_E_NOMEM, "%s: out of memory", c->label);
}

void ptm_config_free(ptm_config *c)
{
    if (c == NULL) {
        return;
    }
    json_object_put(c->values);
    ptm__free(c->label);
    ptm__free(c->keys);
    ptm__free(c);
}

/* Add key -> v (owned; NULL for null) to c->values, dropping v on failure. */
static ptm_status put_value(ptm_config *c, const char *key, struct json_object *v)
{
    if (json_object_object_add(c->values, key, v) != 0) {
        json_object_put(v);
        return oom(c);
    }
    return PTM_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ptm_status refresh_keys(ptm_config *c)
{
    size_t n = (size_t)json_object_object_length(c->values), k = 0;
    const char **keys = ptm__malloc((n ? n : 1) * sizeof *keys);
    if (keys == NULL) {
        return oom(c);
    }
    for (struct lh_entry *e_ = json_object_get_object(c->values)->head; e_ != NULL; e_ = e_->next) {
        const char *key = lh_entry_k(e_);
        keys[k++] = key;
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    ptm__free(c->keys);
    c->keys = keys;
    c->n_keys = n;
    return PTM_OK;
}

static struct json_object *copy_value(struct json_object *v)
{
    struct json_object *dst = NULL;
    if (v == NULL) {
        return NULL;
    }
    return json_object_deep_copy(v, &dst, NULL) == 0 ? dst : NULL;
}

/* A config of schema s holding every default and model_type. */
static ptm_status config_alloc(const struct ptm__schema *s, const char *label, ptm_config **out)
{
    *out = NULL;
    ptm_config *c = ptm__calloc(1, sizeof *c);
    if (c == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
    }
    c->schema = s;
    c->label = ptm__strdup(label);
    c->values = json_object_new_object();
    ptm_status st = c->label != NULL && c->values != NULL ? PTM_OK : PTM_E_NOMEM;
    for (size_t i = 0; st == PTM_OK && i < s->n_fields; i++) {
        const struct ptm__field *f = &s->fields[i];
        if (f->is_held && f->has_def) {
            struct json_object *v = copy_value(f->def);
            st = v == NULL && f->def != NULL ? PTM_E_NOMEM : put_value(c, f->name, v);
        }
    }
    if (st == PTM_OK) {
        struct json_object *mt = json_object_new_string(s->model_type);
        st = mt == NULL ? PTM_E_NOMEM : put_value(c, "model_type", mt);
    }
    if (st != PTM_OK) {
        ptm_config_free(c);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
    }
    *out = c;
    return PTM_OK;
}

/* HF's num_labels setter: id2label = {i: "LABEL_i"}, label2id its inverse. */
static ptm_status set_labels(ptm_config *c, int64_t n)
{
    struct json_object *id2label = json_object_new_object();
    struct json_object *label2id = json_object_new_object();
    int bad = id2label == NULL || label2id == NULL;
    for (int64_t i = 0; !bad && i < n; i++) {
        char id[32], name[40];
        snprintf(id, sizeof id, "%lld", (long long)i);
        snprintf(name, sizeof name, "LABEL_%lld", (long long)i);
        struct json_object *s = json_object_new_string(name);
        struct json_object *k = json_object_new_int64(i);
        bad = json_object_object_add(id2label, id, s) != 0;
        bad = json_object_object_add(label2id, name, k) != 0 || bad;
    }
    if (bad) {
        json_object_put(id2label);
        json_object_put(label2id);
        return oom(c);
    }
    ptm_status st = put_value(c, "id2label", id2label);
    return st == PTM_OK ? put_value(c, "label2id", label2id) : st;
}

static size_t n_labels(const ptm_config *c, int *is_null)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(c->values, "id2label", &v);
    *is_null = !json_object_is_type(v, json_type_object);
    return *is_null ? 0 : (size_t)json_object_object_length(v);
}

/* Assign num_labels = v (owned): regenerate the labels unless id2label already has v. */
static ptm_status set_num_labels(ptm_config *c, const char *key, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_int)) {
        const char *got = ptm__json_kind(v);
        json_object_put(v);
        return ptm__fail(PTM_E_TYPE, "%s: \"%s\": expected integer, got %s", c->label, key, got);
    }
    int64_t n = json_object_get_int64(v);
    json_object_put(v);
    if (n > MAX_LABELS) {
        return ptm__fail(PTM_E_RANGE, "%s: \"%s\": %lld labels exceeds the limit of %d", c->label,
                         key, (long long)n, MAX_LABELS);
    }
    int is_null;
    size_t have = n_labels(c, &is_null);
    if (!is_null && (int64_t)have == n) {
        return PTM_OK;
    }
    return set_labels(c, n < 0 ? 0 : n);
}

/*
 * Set canonical key to v (owned), checked against its field; key_as_given names it in
 * messages. model_type may only be restated; num_labels regenerates the labels.
 */
static ptm_status assign(ptm_config *c, const char *key, const char *key_as_given,
                         struct json_object *v)
{
    if (strcmp(key, "num_labels") == 0) {
        return set_num_labels(c, key_as_given, v);
    }
    if (strcmp(key, "model_type") == 0) {
        int same = json_object_is_type(v, json_type_string) &&
                   strcmp(json_object_get_string(v), c->schema->model_type) == 0;
        json_object_put(v);
        if (!same) {
            return ptm__fail(PTM_E_INVAL,
                             "%s: \"model_type\": cannot change a \"%s\" config's "
                             "model_type",
                             c->label, c->schema->model_type);
        }
        return PTM_OK;
    }
    const struct ptm__field *f = ptm__schema_field(c->schema, key);
    if (f != NULL) {
        ptm_status st = ptm__field_check(f, c->label, key_as_given, &v);
        if (st != PTM_OK) {
            json_object_put(v);
            return st;
        }
    }
    return put_value(c, key, v);
}

/* Second pass of a load: keys given by alias win over their field (HF sets them last). */
static ptm_status apply_aliases(ptm_config *c, struct json_object *root)
{
    for (struct lh_entry *e_ = json_object_get_object(root)->head; e_ != NULL; e_ = e_->next) {
        const char *key = lh_entry_k(e_);
        struct json_object *val = lh_entry_v(e_);
        const char *name = ptm__schema_resolve(c->schema, key);
        if (name != key && strcmp(key, "torch_dtype") != 0) {
            ptm_status st = assign(c, name, key, json_object_get(val));
            if (st != PTM_OK) {
                return st;
            }
        }
    }
    return PTM_OK;
}

/* After the keys: torch_dtype fills a null dtype, then the labels as __post_init__ sets them. */
static ptm_status apply_dtype_and_labels(ptm_config *c, struct json_object *root)
{
    struct json_object *v = NULL, *dtype = NULL;
    ptm_status st = PTM_OK;
    json_object_object_get_ex(c->values, "dtype", &dtype);
    if (json_object_object_get_ex(root, "torch_dtype", &v) && v != NULL && dtype == NULL) {
        st = assign(c, "dtype", "torch_dtype", json_object_get(v));
    }
    v = NULL;
    int has_n = json_object_object_get_ex(root, "num_labels", &v) && v != NULL;
    int is_null;
    n_labels(c, &is_null);
    if (st == PTM_OK && has_n) {
        st = set_num_labels(c, "num_labels", json_object_get(v));
        n_labels(c, &is_null);
    }
    if (st == PTM_OK && is_null) {
        st = set_labels(c, 2);
    }
    return st;
}

static ptm_status apply(ptm_config *c, struct json_object *root)
{
    for (struct lh_entry *e_ = json_object_get_object(root)->head; e_ != NULL; e_ = e_->next) {
        const char *key = lh_entry_k(e_);
        struct json_object *val = lh_entry_v(e_);
        const char *name = ptm__schema_resolve(c->schema, key);
        if (name != key || strcmp(key, "model_type") == 0 || strcmp(key, "num_labels") == 0 ||
            ptm__config_key_dropped(key)) {
            continue;
        }
        ptm_status st = assign(c, key, key, json_object_get(val));
        if (st != PTM_OK) {
            return st;
        }
    }
    ptm_status st = apply_aliases(c, root);
    if (st == PTM_OK) {
        st = apply_dtype_and_labels(c, root);
    }
    return st == PTM_OK ? refresh_keys(c) : st;
}

static ptm_status lookup_arch(struct json_object *root, const char *label,
                              const struct ptm__schema **s)
{
    struct json_object *mt = NULL;
    if (!json_object_object_get_ex(root, "model_type", &mt)) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: no \"model_type\" key; cannot pick an architecture",
                         label);
    }
    if (!json_object_is_type(mt, json_type_string)) {
        return ptm__fail(PTM_E_TYPE, "%s: \"model_type\": expected string, got %s", label,
                         ptm__json_kind(mt));
    }
    const struct ptm__arch_entry *e = ptm__registry_arch(json_object_get_string(mt));
    if (e == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: model_type \"%s\" is not registered by any plugin",
                         label, json_object_get_string(mt));
    }
    *s = e->schema;
    return PTM_OK;
}

/* text[n] must be '\0'. */
static ptm_status parse_text(const char *text, size_t n, const char *label, ptm_config **out)
{
    struct json_object *root = NULL;
    const struct ptm__schema *s = NULL;
    ptm_config *c = NULL;
    ptm_status st = ptm__json_parse_value(text, n, label, &root);
    if (st == PTM_OK && !json_object_is_type(root, json_type_object)) {
        st = ptm__fail(PTM_E_FORMAT, "%s: expected a JSON object, got %s", label,
                       ptm__json_kind(root));
    }
    if (st == PTM_OK) {
        st = lookup_arch(root, label, &s);
    }
    if (st == PTM_OK) {
        st = config_alloc(s, label, &c);
    }
    if (st == PTM_OK) {
        st = apply(c, root);
    }
    json_object_put(root);
    if (st != PTM_OK) {
        ptm_config_free(c);
        return st;
    }
    *out = c;
    return PTM_OK;
}

ptm_status ptm_config_parse(const char *json, const char *label, ptm_config **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_parse: out is NULL");
    }
    *out = NULL;
    if (json == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_parse: json is NULL");
    }
    return parse_text(json, strlen(json), label != NULL ? label : "config", out);
}

static ptm_status read_all(int fd, const char *path, char **text, size_t *n)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if ((uint64_t)sb.st_size > CONFIG_MAX_BYTES) {
        return ptm__fail(PTM_E_FORMAT, "%s: %lld bytes exceeds the config size limit of %u", path,
                         (long long)sb.st_size, CONFIG_MAX_BYTES);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    char *buf = ptm__malloc(size + 1);
    if (buf == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            ptm__free(buf);
            return ptm__fail(PTM_E_IO, "%s: cannot read: %s", path,
                             k < 0 ? strerror(errno) : "file shrank while read");
        }
        got += (size_t)k;
    }
    buf[size] = '\0';
    *text = buf;
    *n = size;
    return PTM_OK;
}

/* path itself, or path/config.json when path is a directory. */
static char *config_path(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return ptm__strdup(path);
    }
    size_t len = strlen(path) + sizeof "/config.json";
    char *p = ptm__malloc(len);
    if (p != NULL) {
        snprintf(p, len, "%s%sconfig.json", path, path[strlen(path) - 1] == '/' ? "" : "/");
    }
    return p;
}

ptm_status ptm_config_load(const char *path, ptm_config **out)
{
    ptm__error_clear();
    if (out == NULL || path == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_load: %s is NULL", path ? "out" : "path");
    }
    *out = NULL;
    char *file = config_path(path);
    if (file == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        ptm_status st = ptm__fail(err == ENOENT ? PTM_E_NOT_FOUND : PTM_E_IO, "%s: cannot open: %s",
                                  file, strerror(err));
        ptm__free(file);
        return st;
    }
    char *text = NULL;
    size_t n = 0;
    ptm_status st = read_all(fd, file, &text, &n);
    close(fd);
    if (st == PTM_OK) {
        st = parse_text(text, n, file, out);
    }
    ptm__free(text);
    ptm__free(file);
    return st;
}

ptm_status ptm_config_new(const char *model_type, ptm_config **out)
{
    ptm__error_clear();
    if (out == NULL || model_type == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_new: %s is NULL", out ? "model_type" : "out");
    }
    *out = NULL;
    const struct ptm__arch_entry *e = ptm__registry_arch(model_type);
    if (e == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "model_type \"%s\" is not registered by any plugin",
                         model_type);
    }
    char label[256];
    snprintf(label, sizeof label, "%s config", model_type);
    ptm_config *c = NULL;
    ptm_status st = config_alloc(e->schema, label, &c);
    if (st == PTM_OK) {
        st = set_labels(c, 2);
    }
    if (st == PTM_OK) {
        st = refresh_keys(c);
    }
    if (st != PTM_OK) {
        ptm_config_free(c);
        return st;
    }
    *out = c;
    return PTM_OK;
}

ptm_status ptm_config_copy(const ptm_config *c, ptm_config **out)
{
    ptm__error_clear();
    if (out == NULL || c == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_copy: %s is NULL", c ? "out" : "c");
    }
    *out = NULL;
    ptm_config *d = ptm__calloc(1, sizeof *d);
    if (d == NULL) {
        return oom(c);
    }
    d->schema = c->schema;
    d->label = ptm__strdup(c->label);
    d->values = copy_value(c->values);
    ptm_status st = d->label != NULL && d->values != NULL ? refresh_keys(d) : oom(c);
    if (st != PTM_OK) {
        ptm_config_free(d);
        return st;
    }
    *out = d;
    return PTM_OK;
}

const char *ptm_config_model_type(const ptm_config *c)
{
    return c != NULL ? c->schema->model_type : NULL;
}

size_t ptm_config_n_keys(const ptm_config *c)
{
    return c != NULL ? c->n_keys : 0;
}

const char *ptm_config_key_at(const ptm_config *c, size_t i)
{
    return c != NULL && i < c->n_keys ? c->keys[i] : NULL;
}

/* ---- get and set --------------------------------------------------------------------------- */

/* The value of key (alias resolved): held, else the field's default. Borrowed; NULL is null. */
static ptm_status find(const ptm_config *c, const char *key, struct json_object **v)
{
    if (c == NULL || key == NULL) {
        return ptm__fail(PTM_E_INVAL, "config get: %s is NULL", c ? "key" : "config");
    }
    const char *name = ptm__schema_resolve(c->schema, key);
    if (json_object_object_get_ex(c->values, name, v)) {
        return PTM_OK;
    }
    const struct ptm__field *f = ptm__schema_field(c->schema, name);
    if (f != NULL && f->has_def) {
        *v = f->def;
        return PTM_OK;
    }
    return ptm__fail(PTM_E_NOT_FOUND, "%s: \"%s\": not set", c->label, key);
}

/* find, then refuse null and any type but want (json_type_double also takes integers). */
static ptm_status find_typed(const ptm_config *c, const char *key, enum json_type want,
                             const char *want_name, struct json_object **v)
{
    ptm_status st = find(c, key, v);
    if (st != PTM_OK) {
        return st;
    }
    if (*v == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: \"%s\": is null", c->label, key);
    }
    enum json_type t = json_object_get_type(*v);
    if (t != want && !(want == json_type_double && t == json_type_int)) {
        return ptm__fail(PTM_E_TYPE, "%s: \"%s\": expected %s, got %s", c->label, key, want_name,
                         ptm__json_kind(*v));
    }
    return PTM_OK;
}

ptm_status ptm_config_get_int(const ptm_config *c, const char *key, int64_t *out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_get_int: out is NULL");
    }
    struct json_object *v;
    if (c != NULL && key != NULL && strcmp(key, "num_labels") == 0) {
        int is_null;
        size_t n = n_labels(c, &is_null);
        if (is_null) {
            return ptm__fail(PTM_E_NOT_FOUND, "%s: \"num_labels\": id2label is null", c->label);
        }
        *out = (int64_t)n;
        return PTM_OK;
    }
    ptm_status st = find_typed(c, key, json_type_int, "integer", &v);
    if (st != PTM_OK) {
        return st;
    }
    int64_t i = json_object_get_int64(v);
    if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
        return ptm__fail(PTM_E_RANGE, "%s: \"%s\": %llu does not fit in int64", c->label, key,
                         (unsigned long long)json_object_get_uint64(v));
    }
    *out = i;
    return PTM_OK;
}

ptm_status ptm_config_get_float(const ptm_config *c, const char *key, double *out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_get_float: out is NULL");
    }
    struct json_object *v;
    ptm_status st = find_typed(c, key, json_type_double, "number", &v);
    if (st == PTM_OK) {
        *out = json_object_get_double(v);
    }
    return st;
}

ptm_status ptm_config_get_bool(const ptm_config *c, const char *key, int32_t *out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_get_bool: out is NULL");
    }
    struct json_object *v;
    ptm_status st = find_typed(c, key, json_type_boolean, "boolean", &v);
    if (st == PTM_OK) {
        *out = json_object_get_boolean(v) ? 1 : 0;
    }
    return st;
}

ptm_status ptm_config_get_string(const ptm_config *c, const char *key, const char **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_get_string: out is NULL");
    }
    struct json_object *v;
    ptm_status st = find_typed(c, key, json_type_string, "string", &v);
    if (st == PTM_OK) {
        *out = json_object_get_string(v);
    }
    return st;
}

ptm_status ptm_config_get_int_list(const ptm_config *c, const char *key, int64_t *buf, size_t cap,
                                   size_t *n)
{
    ptm__error_clear();
    struct json_object *v;
    ptm_status st = find(c, key, &v);
    if (st != PTM_OK) {
        return st;
    }
    if (v == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: \"%s\": is null", c->label, key);
    }
    int is_list = json_object_is_type(v, json_type_array);
    size_t len = is_list ? json_object_array_length(v) : 1;
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = is_list ? json_object_array_get_idx(v, i) : v;
        if (!json_object_is_type(e, json_type_int)) {
            return ptm__fail(PTM_E_TYPE, "%s: \"%s\": expected integer or list of integers, got %s",
                             c->label, key, ptm__json_kind(e));
        }
    }
    for (size_t i = 0; i < len && i < cap && buf != NULL; i++) {
        buf[i] = json_object_get_int64(is_list ? json_object_array_get_idx(v, i) : v);
    }
    if (n != NULL) {
        *n = len;
    }
    return PTM_OK;
}

ptm_status ptm_config_get_json(const ptm_config *c, const char *key, char **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_get_json: out is NULL");
    }
    *out = NULL;
    struct json_object *v;
    ptm_status st = find(c, key, &v);
    return st == PTM_OK ? ptm__json_dump(v, 0, NULL, NULL, NULL, out) : st;
}

int32_t ptm_config_has(const ptm_config *c, const char *key)
{
    if (c == NULL || key == NULL) {
        return 0;
    }
    if (strcmp(key, "num_labels") == 0) {
        int is_null;
        n_labels(c, &is_null);
        return !is_null;
    }
    return json_object_object_get_ex(c->values, ptm__schema_resolve(c->schema, key), NULL) ? 1 : 0;
}

/* Set key (alias resolved) to v (owned), then refresh the sorted key list. */
static ptm_status set_owned(ptm_config *c, const char *key, struct json_object *v)
{
    ptm_status st = assign(c, ptm__schema_resolve(c->schema, key), key, v);
    return st == PTM_OK ? refresh_keys(c) : st;
}

ptm_status ptm_config_set_json(ptm_config *c, const char *key, const char *value)
{
    ptm__error_clear();
    if (c == NULL || key == NULL || value == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_set_json: %s is NULL",
                         c == NULL     ? "c"
                         : key == NULL ? "key"
                                       : "value");
    }
    char label[300];
    snprintf(label, sizeof label, "%s: \"%s\"", c->label, key);
    struct json_object *v = NULL;
    ptm_status st = ptm__json_parse_value(value, strlen(value), label, &v);
    return st == PTM_OK ? set_owned(c, key, v) : st;
}

ptm_status ptm_config_set_int(ptm_config *c, const char *key, int64_t v)
{
    ptm__error_clear();
    if (c == NULL || key == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_set_int: %s is NULL", c ? "key" : "c");
    }
    struct json_object *o = json_object_new_int64(v);
    return o != NULL ? set_owned(c, key, o) : oom(c);
}

/* Whether an override may name key: a field, an alias, a pseudo-key, or a key c holds. */
static int is_known(const ptm_config *c, const char *key)
{
    const char *name = ptm__schema_resolve(c->schema, key);
    return ptm__schema_field(c->schema, name) != NULL || strcmp(key, "num_labels") == 0 ||
           json_object_object_get_ex(c->values, name, NULL);
}

/* The override's value: JSON when value parses as JSON, else the text as a string. */
static ptm_status override_value(const ptm_config *c, const char *value, const char *label,
                                 struct json_object **v)
{
    ptm_status st = ptm__json_parse_value(value, strlen(value), label, v);
    if (st != PTM_E_FORMAT) {
        return st;
    }
    ptm__error_clear(); /* not JSON: a bare string, as the header promises */
    if (!ptm__utf8_valid(value, strlen(value))) {
        return ptm__fail(PTM_E_FORMAT, "%s: value is not valid UTF-8", label);
    }
    *v = json_object_new_string(value);
    return *v != NULL ? PTM_OK : oom(c);
}

ptm_status ptm_config_override(ptm_config *c, const char *assignment)
{
    ptm__error_clear();
    if (c == NULL || assignment == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_override: %s is NULL", c ? "assignment" : "c");
    }
    const char *eq = strchr(assignment, '=');
    if (eq == NULL || eq == assignment) {
        return ptm__fail(PTM_E_INVAL, "override \"%s\": expected key=value", assignment);
    }
    char *key = ptm__strndup(assignment, (size_t)(eq - assignment));
    if (key == NULL) {
        return oom(c);
    }
    char label[300];
    snprintf(label, sizeof label, "override \"%s\"", assignment);
    struct json_object *v = NULL;
    ptm_status st = PTM_OK;
    if (!is_known(c, key)) {
        st = ptm__fail(PTM_E_NOT_FOUND, "%s: %s has no key \"%s\"", label, c->label, key);
    }
    if (st == PTM_OK) {
        st = override_value(c, eq + 1, label, &v);
    }
    if (st == PTM_OK) {
        st = set_owned(c, key, v);
    }
    ptm__free(key);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

/*
 * HF to_diff_dict: keys PretrainedConfig itself does not declare (the architecture's, legacy
 * and unknown keys) are always written; PretrainedConfig's own only when they differ from
 * PretrainedConfig().to_dict() or from the architecture's restated default. transformers_version
 * is always kept (here: when set), _name_or_path never.
 */
static int in_diff(const char *key, struct json_object *v, const void *ctx)
{
    const ptm_config *c = ctx;
    if (strcmp(key, "_name_or_path") == 0) {
        return 0;
    }
    if (strcmp(key, "transformers_version") == 0) {
        return v != NULL;
    }
    const struct ptm__field *f = ptm__schema_field(c->schema, key);
    if (f == NULL || !f->is_base) {
        return 1;
    }
    return !ptm__json_equal(v, f->base_def) ||
           (f->has_def && f->def != NULL && !ptm__json_equal(v, f->def));
}

ptm_status ptm_config_to_json(const ptm_config *c, int32_t diff_only, char **out)
{
    ptm__error_clear();
    if (c == NULL || out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_to_json: %s is NULL", c ? "out" : "c");
    }
    *out = NULL;
    return ptm__json_dump(c->values, 1, "id2label", diff_only ? in_diff : NULL, c, out);
}

ptm_status ptm_config_save(const ptm_config *c, const char *path, int32_t diff_only)
{
    ptm__error_clear();
    if (c == NULL || path == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_config_save: %s is NULL", c ? "path" : "c");
    }
    char *text = NULL;
    char *file = config_path(path);
    ptm_status st = file != NULL ? ptm_config_to_json(c, diff_only, &text) : oom(c);
    if (st == PTM_OK) {
        st = ptm__atomic_write(file, text, strlen(text));
    }
    ptm__free(text);
    ptm__free(file);
    return st;
}
