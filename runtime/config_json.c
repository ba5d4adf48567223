/*
 * config_json.c - JSON text in and out for configs, with Python's semantics: parsing one
 * value with json-c, equality as Python's ==, and a serialiser that writes what transformers'
 * to_json_string writes (json.dumps(d, indent=2, sort_keys=True) + "\n"), byte for byte.
 *
 * json-c's own printer differs from Python's (spacing, float digits, "\/"), so the writer is
 * here: floats as Python's repr (shortest round trip, exponent below 1e-4 and from 1e16),
 * ensure_ascii escapes (\uXXXX, surrogate pairs beyond the BMP), keys sorted by code point.
 * It knows nothing of schemas or fields.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "error.h"

int ptm__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || i + k >= n + (k == 0)) {
            return 0;
        }
        uint32_t cp = k == 0 ? c : c & (0x3f >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

ptm_status ptm__json_parse_value(const char *text, size_t n, const char *label,
                                 struct json_object **out)
{
    *out = NULL;
    struct json_tokener *tok = json_tokener_new();
    if (tok == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* json-c cannot tell that a number ends at the end of its input, so it is handed the
     * terminating NUL too; the caller guarantees text[n] == '\0'. */
    struct json_object *v = json_tokener_parse_ex(tok, text, (int)(n + 1));
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (err != json_tokener_success) {
        json_object_put(v);
        return ptm__fail(PTM_E_FORMAT, "%s: not JSON: %s at byte %zu", label,
                         json_tokener_error_desc(err), end < n ? end : n);
    }
    /* Python's json.loads allows only these blanks after the value; a NUL is garbage. */
    while (end < n &&
           (text[end] == ' ' || text[end] == '\t' || text[end] == '\n' || text[end] == '\r')) {
        end++;
    }
    if (end < n) {
        json_object_put(v);
        return ptm__fail(PTM_E_FORMAT, "%s: not JSON: trailing characters at byte %zu", label, end);
    }
    *out = v;
    return PTM_OK;
}

static int num_equal(struct json_object *a, struct json_object *b)
{
    if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int)) {
        return json_object_get_int64(a) == json_object_get_int64(b) &&
               json_object_get_uint64(a) == json_object_get_uint64(b);
    }
    return json_object_get_double(a) == json_object_get_double(b);
}

int ptm__json_equal(struct json_object *a, struct json_object *b)
{
    enum json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
    int na = ta == json_type_int || ta == json_type_double;
    int nb = tb == json_type_int || tb == json_type_double;
    if (na && nb) {
        return num_equal(a, b);
    }
    if (ta != tb) {
        return 0;
    }
    switch (ta) {
    case json_type_null:
        return 1;
    case json_type_boolean:
        return json_object_get_boolean(a) == json_object_get_boolean(b);
    case json_type_string:
        return json_object_get_string_len(a) == json_object_get_string_len(b) &&
               memcmp(json_object_get_string(a), json_object_get_string(b),
                      (size_t)json_object_get_string_len(a)) == 0;
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b)) {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (!ptm__json_equal(json_object_array_get_idx(a, i),
                                 json_object_array_get_idx(b, i))) {
                return 0;
            }
        }
        return 1;
    }
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b)) {
            return 0;
        }
        for (struct lh_entry *e_ = json_object_get_object(a)->head; e_ != NULL; e_ = e_->next) {
            const char *key = lh_entry_k(e_);
            struct json_object *va = lh_entry_v(e_);
            struct json_object *vb;
            if (!json_object_object_get_ex(b, key, &vb) || !ptm__json_equal(va, vb)) {
                return 0;
            }
        }
        return 1;
    }
    default:
        return 0;
    }
}

/* ---- writer ------------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t n, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) {
            cap *= 2;
        }
        char *p = ptm__realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Python's float.__repr__: the shortest digits that round-trip, positional for exponents
 * in [-4, 16), else d.ddde+XX with at least two exponent digits. */
static void put_double(struct buf *b, double d)
{
    char tmp[64], digits[24], out[64];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
    const char *s = tmp[0] == '-' ? tmp + 1 : tmp;
    size_t nd = 0;
    for (; *s != 'e'; s++) {
        if (*s != '.') {
            digits[nd++] = *s;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    digits[nd] = '\0';
    int decpt = (int)strtol(s + 1, NULL, 10) + 1;
    size_t o = 0;
    if (tmp[0] == '-') {
        out[o++] = '-';
    }
    if (decpt > -4 && decpt <= 16 && decpt <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -decpt; i++) {
            out[o++] = '0';
        }
        memcpy(out + o, digits, nd);
        o += nd;
    } else if (decpt > -4 && decpt <= 16 && (size_t)decpt >= nd) {
        memcpy(out + o, digits, nd);
        o += nd;
        for (size_t i = nd; i < (size_t)decpt; i++) {
            out[o++] = '0';
        }
        out[o++] = '.';
        out[o++] = '0';
    } else if (decpt > -4 && decpt <= 16) {
        memcpy(out + o, digits, (size_t)decpt);
        o += (size_t)decpt;
        out[o++] = '.';
        memcpy(out + o, digits + decpt, nd - (size_t)decpt);
        o += nd - (size_t)decpt;
    } else {
        int e = decpt - 1;
        o += (size_t)snprintf(out + o, sizeof out - o, "%c%s%se%c%02d", digits[0],
                              nd > 1 ? "." : "", digits + 1, e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    put(b, out, o);
}

static void put_number(struct buf *b, struct json_object *v)
{
    char tmp[32];
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
            snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)json_object_get_uint64(v));
        } else {
            snprintf(tmp, sizeof tmp, "%lld", (long long)i);
        }
        puts_(b, tmp);
        return;
    }
    put_double(b, json_object_get_double(v));
}

static void newline(struct buf *b, int indent);

/* HF's _encode_special_floats turns NaN and +-inf into {"__float__": "..."} before json.dumps,
 * so the tag is laid out as any one-member object. */
static void put_special(struct buf *b, double d, int indent)
{
    const char *tag = isnan(d) ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    put(b, "{", 1);
    newline(b, indent >= 0 ? indent + 1 : -1);
    puts_(b, indent >= 0 ? "\"__float__\": " : "\"__float__\":");
    puts_(b, tag);
    newline(b, indent);
    put(b, "}", 1);
}

/* Decode one UTF-8 sequence at s[*i]; invalid bytes read as U+FFFD. */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned c = s[*i];
    size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (k == 9 || *i + k >= n + (k == 0) || !ptm__utf8_valid((const char *)s + *i, k + 1)) {
        (*i)++;
        return 0xfffd;
    }
    uint32_t cp = k == 0 ? c : c & (0x3f >> k);
    for (size_t j = 1; j <= k; j++) {
        cp = (cp << 6) | (s[*i + j] & 0x3f);
    }
    *i += k + 1;
    return cp;
}

/* json.dumps with ensure_ascii: escapes '"', '\\', the five C escapes, and every code point
 * outside ' '..'~' as lower-case \uXXXX (a surrogate pair above U+FFFF). */
static void put_string(struct buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char tmp[16];
    put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] <= 0x7e && s[run] != '"' && s[run] != '\\') {
            run++;
        }
        put(b, str + i, run - i);
        if (run == n) {
            break;
        }
        i = run;
        uint32_t cp = next_cp(s, n, &i);
        const char *esc = cp == '"'    ? "\\\""
                          : cp == '\\' ? "\\\\"
                          : cp == '\n' ? "\\n"
                          : cp == '\r' ? "\\r"
                          : cp == '\t' ? "\\t"
                          : cp == '\b' ? "\\b"
                          : cp == '\f' ? "\\f"
                                       : NULL;
        if (esc != NULL) {
            puts_(b, esc);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            puts_(b, tmp);
        } else {
            snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            puts_(b, tmp);
        }
    }
    put(b, "\"", 1);
}

static void newline(struct buf *b, int indent)
{
    if (indent < 0) {
        return;
    }
    put(b, "\n", 1);
    for (int i = 0; i < indent; i++) {
        put(b, "  ", 2);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_int(const void *a, const void *b)
{
    long long x = strtoll(*(const char *const *)a, NULL, 10);
    long long y = strtoll(*(const char *const *)b, NULL, 10);
    return x < y ? -1 : x > y;
}

struct keep {
    ptm__json_keep_fn fn;
    const void *ctx;
};

static void put_value(struct buf *b, struct json_object *v, int indent, const char *int_keyed,
                      const struct keep *keep);

static void put_object(struct buf *b, struct json_object *v, int indent, const char *int_keyed,
                       int numeric, const struct keep *keep)
{
    size_t n = (size_t)json_object_object_length(v), k = 0;
    if (n == 0) {
        puts_(b, "{}");
        return;
    }
    const char **keys = ptm__malloc(n * sizeof *keys);
    if (keys == NULL) {
        b->oom = 1;
        return;
    }
    for (struct lh_entry *e_ = json_object_get_object(v)->head; e_ != NULL; e_ = e_->next) {
        const char *key = lh_entry_k(e_);
        if (keep == NULL || keep->fn(key, lh_entry_v(e_), keep->ctx)) {
            keys[k++] = key;
        }
    }
    n = k;
    if (n == 0) {
        ptm__free(keys);
        puts_(b, "{}");
        return;
    }
    qsort(keys, n, sizeof *keys, numeric ? cmp_int : cmp_str);
    put(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            put(b, ",", 1);
        }
        newline(b, indent >= 0 ? indent + 1 : -1);
        put_string(b, keys[i], strlen(keys[i]));
        put(b, ": ", indent >= 0 ? 2 : 1);
        struct json_object *m = json_object_object_get(v, keys[i]);
        int deeper = indent >= 0 ? indent + 1 : -1;
        if (int_keyed != NULL && strcmp(keys[i], int_keyed) == 0 &&
            json_object_is_type(m, json_type_object)) {
            put_object(b, m, deeper, NULL, 1, NULL);
        } else {
            put_value(b, m, deeper, NULL, NULL);
        }
    }
    newline(b, indent);
    put(b, "}", 1);
    ptm__free(keys);
}

static void put_value(struct buf *b, struct json_object *v, int indent, const char *int_keyed,
                      const struct keep *keep)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        puts_(b, "null");
        break;
    case json_type_boolean:
        puts_(b, json_object_get_boolean(v) ? "true" : "false");
        break;
    case json_type_int:
    case json_type_double:
        if (json_object_is_type(v, json_type_double) && !isfinite(json_object_get_double(v))) {
            put_special(b, json_object_get_double(v), indent);
        } else {
            put_number(b, v);
        }
        break;
    case json_type_string:
        put_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(v);
        if (n == 0) {
            puts_(b, "[]");
            break;
        }
        put(b, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                put(b, ",", 1);
            }
            newline(b, indent >= 0 ? indent + 1 : -1);
            put_value(b, json_object_array_get_idx(v, i), indent >= 0 ? indent + 1 : -1, NULL,
                      NULL);
        }
        newline(b, indent);
        put(b, "]", 1);
        break;
    }
    case json_type_object:
        put_object(b, v, indent, int_keyed, 0, keep);
        break;
    }
}

ptm_status ptm__json_dump(struct json_object *v, int pretty, const char *int_keyed,
                          ptm__json_keep_fn keep, const void *ctx, char **out)
{
    struct buf b = {0};
    struct keep k = {keep, ctx};
    *out = NULL;
    put_value(&b, v, pretty ? 0 : -1, int_keyed, keep != NULL ? &k : NULL);
    if (pretty) {
        put(&b, "\n", 1);
    }
    if (b.oom) {
        ptm__free(b.p);
        return ptm__fail(PTM_E_NOMEM, "config: out of memory writing JSON");
    }
    *out = b.p;
    return PTM_OK;
}
