/*
 * json_strict.c - a strict recursive-descent JSON parser (RFC 8259) for untrusted headers.
 *
 * It owns the grammar, UTF-8 validation, duplicate-key detection and the arena that holds a
 * parsed document. It does not interpret the values: safetensors.c decides what a header
 * means. Every fault is a PTM_E_FORMAT naming the label, the fault and the byte offset.
 */
#include "json_strict.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

#define CHUNK_BYTES 16384

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct ptm__jstrict_doc {
    struct chunk *chunks;
    struct ptm__jstrict root;
};

struct parser {
    const unsigned char *start, *p, *end;
    const char *label;
    struct ptm__jstrict_doc *doc;
    int depth;
    /* Members of the objects and arrays being parsed, innermost last. */
    struct ptm__jstrict *vals;
    const char **keys;
    size_t n_stack, cap_stack;
};

static void *arena_alloc(struct ptm__jstrict_doc *doc, size_t n)
{
    size_t align = alignof(max_align_t);
    n = (n + align - 1) / align * align;
    struct chunk *c = doc->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = ptm__malloc(sizeof *c + cap);
        if (c == NULL) {
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

void ptm__jstrict_free(struct ptm__jstrict_doc *doc)
{
    if (doc == NULL) {
        return;
    }
    struct chunk *c = doc->chunks;
    while (c != NULL) {
        struct chunk *next = c->next;
        ptm__free(c);
        c = next;
    }
    ptm__free(doc);
}

static ptm_status fail_at(const struct parser *ps, const unsigned char *at, const char *what)
{
    return ptm__fail(PTM_E_FORMAT, "%s: JSON: %s at byte %zu", ps->label, what,
                     (size_t)(at - ps->start));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid (RFC 3629 table 3-7). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < n; k++) {
        if (p[k] < 0x80 || p[k] > 0xBF) {
            return 0;
        }
    }
    return n;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = p[k], d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return 0;
        }
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decode the escape after a backslash at ps->p (which points at the letter); writes to o. */
static ptm_status parse_escape(struct parser *ps, unsigned char *o, size_t *n_out)
{
    const unsigned char *at = ps->p - 1;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = memchr(from, *ps->p, sizeof from - 1);
    if (hit != NULL) {
        o[0] = (unsigned char)to[hit - from];
        *n_out = 1;
        ps->p++;
        return PTM_OK;
    }
    unsigned cp, lo;
    if (*ps->p != 'u' || ps->end - ps->p < 5 || !hex4(ps->p + 1, &cp)) {
        return fail_at(ps, at, "invalid escape");
    }
    ps->p += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail_at(ps, at, "unpaired surrogate escape");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF) {
            return fail_at(ps, at, "unpaired surrogate escape");
        }
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) {
        return fail_at(ps, at, "NUL character escape in string");
    }
    *n_out = put_utf8(o, cp);
    return PTM_OK;
}

/* Parse a string at ps->p (on the opening quote) into the arena. */
static ptm_status parse_string(struct parser *ps, const char **out, size_t *len_out)
{
    const unsigned char *q = ps->p + 1;
    /* First pass: find the closing quote, so the decoded copy can be sized (never longer). */
    while (q < ps->end && *q != '"') {
        q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    }
    if (q >= ps->end) {
        return fail_at(ps, ps->p, "unterminated string");
    }
    unsigned char *o = arena_alloc(ps->doc, (size_t)(q - ps->p));
    if (o == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory for a string", ps->label);
    }
    size_t n = 0;
    ps->p++;
    while (*ps->p != '"') {
        unsigned char c = *ps->p;
        if (c < 0x20) {
            return fail_at(ps, ps->p, "control character in string");
        }
        if (c == '\\') {
            size_t k = 0;
            ps->p++;
            ptm_status st = parse_escape(ps, o + n, &k);
            if (st != PTM_OK) {
                return st;
            }
            n += k;
        } else {
            o[n++] = c; /* the whole input was checked to be UTF-8 already */
            ps->p++;
        }
    }
    ps->p++;
    o[n] = '\0';
    *out = (const char *)o;
    *len_out = n;
    return PTM_OK;
}

static ptm_status parse_number(struct parser *ps, struct ptm__jstrict *v)
{
    const unsigned char *s = ps->p;
    int neg = 0, overflow = 0, is_int = 1;
    uint64_t mag = 0;
    if (ps->p < ps->end && *ps->p == '-') {
        neg = 1;
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        return fail_at(ps, s, "invalid number");
    }
    if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9') {
        return fail_at(ps, s, "number with a leading zero");
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        overflow |= __builtin_mul_overflow(mag, 10, &mag);
        overflow |= __builtin_add_overflow(mag, (uint64_t)(*ps->p - '0'), &mag);
        ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        is_int = 0;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            return fail_at(ps, s, "invalid number");
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            ps->p++;
        }
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_int = 0;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) {
            ps->p++;
        }
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
            return fail_at(ps, s, "invalid number");
        }
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            ps->p++;
        }
    }
    v->kind = PTM__JSTRICT_NUM;
    if (is_int && !overflow && mag <= (uint64_t)INT64_MAX + (uint64_t)neg) {
        v->is_int = 1;
        v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    }
    return PTM_OK;
}

static ptm_status push_member(struct parser *ps, const char *key, const struct ptm__jstrict *v)
{
    if (ps->n_stack == ps->cap_stack) {
        size_t cap = ps->cap_stack ? ps->cap_stack * 2 : 32;
        struct ptm__jstrict *vals = ptm__realloc(ps->vals, cap * sizeof *vals);
        if (vals == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", ps->label);
        }
        ps->vals = vals;
        const char **keys = ptm__realloc(ps->keys, cap * sizeof *keys);
        if (keys == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", ps->label);
        }
        ps->keys = keys;
        ps->cap_stack = cap;
    }
    ps->vals[ps->n_stack] = *v;
    ps->keys[ps->n_stack] = key;
    ps->n_stack++;
    return PTM_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reject an object whose keys repeat; keys points at n keys in the arena. */
static ptm_status check_duplicates(struct parser *ps, const char **keys, size_t n, size_t offset)
{
    if (n < 2) {
        return PTM_OK;
    }
    if (n <= 8) { /* tensor entries: a few keys, no allocation */
        for (size_t a = 1; a < n; a++) {
            for (size_t b = 0; b < a; b++) {
                if (strcmp(keys[a], keys[b]) == 0) {
                    return ptm__fail(PTM_E_FORMAT,
                                     "%s: JSON: duplicate key \"%s\" in the object at byte %zu",
                                     ps->label, keys[a], offset);
                }
            }
        }
        return PTM_OK;
    }
    const char **sorted = ptm__malloc(n * sizeof *sorted);
    if (sorted == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", ps->label);
    }
    memcpy(sorted, keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_key);
    ptm_status st = PTM_OK;
    for (size_t k = 1; k < n; k++) {
        if (strcmp(sorted[k - 1], sorted[k]) == 0) {
            st = ptm__fail(PTM_E_FORMAT, "%s: JSON: duplicate key \"%s\" in the object at byte %zu",
                           ps->label, sorted[k], offset);
            break;
        }
    }
    ptm__free(sorted);
    return st;
}

/* Move the members pushed since base into the arena as v's items (and keys for objects). */
static ptm_status pop_members(struct parser *ps, size_t base, struct ptm__jstrict *v)
{
    size_t n = ps->n_stack - base;
    v->len = n;
    if (n > 0) {
        v->items = arena_alloc(ps->doc, n * sizeof *v->items);
        if (v->items == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", ps->label);
        }
        memcpy(v->items, ps->vals + base, n * sizeof *v->items);
        if (v->kind == PTM__JSTRICT_OBJ) {
            v->keys = arena_alloc(ps->doc, n * sizeof *v->keys);
            if (v->keys == NULL) {
                return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", ps->label);
            }
            memcpy(v->keys, ps->keys + base, n * sizeof *v->keys);
        }
    }
    ps->n_stack = base;
    if (v->kind == PTM__JSTRICT_OBJ) {
        return check_duplicates(ps, v->keys, n, v->offset);
    }
    return PTM_OK;
}

static ptm_status parse_value(struct parser *ps, struct ptm__jstrict *v);

/* Parse an array or object; ps->p is on '[' or '{'. */
static ptm_status parse_container(struct parser *ps, struct ptm__jstrict *v)
{
    int is_obj = *ps->p == '{';
    unsigned char close = is_obj ? '}' : ']';
    size_t base = ps->n_stack;
    v->kind = is_obj ? PTM__JSTRICT_OBJ : PTM__JSTRICT_ARR;
    if (++ps->depth > PTM__JSTRICT_MAX_DEPTH) {
        return fail_at(ps, ps->p, "nesting deeper than 64 levels");
    }
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return PTM_OK;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len;
        struct ptm__jstrict member = {0};
        ptm_status st;
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') {
                return fail_at(ps, ps->p, "expected a string key");
            }
            if ((st = parse_string(ps, &key, &key_len)) != PTM_OK) {
                return st;
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                return fail_at(ps, ps->p, "expected ':'");
            }
            ps->p++;
        }
        if ((st = parse_value(ps, &member)) != PTM_OK || (st = push_member(ps, key, &member))) {
            return st;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        return fail_at(ps, ps->p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->depth--;
    return pop_members(ps, base, v);
}

static ptm_status parse_literal(struct parser *ps, struct ptm__jstrict *v)
{
    static const struct {
        const char *word;
        int kind, value;
    } lits[] = {{"true", PTM__JSTRICT_BOOL, 1},
                {"false", PTM__JSTRICT_BOOL, 0},
                {"null", PTM__JSTRICT_NULL, 0}};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(lits[k].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, lits[k].word, n) == 0) {
            v->kind = lits[k].kind;
            v->boolean = lits[k].value;
            ps->p += n;
            return PTM_OK;
        }
    }
    return fail_at(ps, ps->p, "unexpected character");
}

static ptm_status parse_value(struct parser *ps, struct ptm__jstrict *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return fail_at(ps, ps->p, "unexpected end of input");
    }
    v->offset = (size_t)(ps->p - ps->start);
    switch (*ps->p) {
    case '{':
    case '[':
        return parse_container(ps, v);
    case '"':
        v->kind = PTM__JSTRICT_STR;
        return parse_string(ps, &v->str, &v->len);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(ps, v);
    default:
        return parse_literal(ps, v);
    }
}

ptm_status ptm__jstrict_parse(const char *buf, size_t n, const char *label,
                              struct ptm__jstrict_doc **doc, const struct ptm__jstrict **root)
{
    struct parser ps = {.start = (const unsigned char *)buf, .label = label};
    ps.p = ps.start;
    ps.end = ps.start + n;
    *doc = NULL;
    *root = NULL;
    for (const unsigned char *q = ps.start; q < ps.end;) {
        size_t k = utf8_seq(q, ps.end);
        if (k == 0) {
            return fail_at(&ps, q, "invalid UTF-8");
        }
        q += k;
    }
    ps.doc = ptm__calloc(1, sizeof *ps.doc);
    if (ps.doc == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: JSON: out of memory", label);
    }
    ptm_status st = parse_value(&ps, &ps.doc->root);
    if (st == PTM_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            st = fail_at(&ps, ps.p, "trailing characters after the value");
        }
    }
    ptm__free(ps.vals);
    ptm__free(ps.keys);
    if (st != PTM_OK) {
        ptm__jstrict_free(ps.doc);
        return st;
    }
    *doc = ps.doc;
    *root = &ps.doc->root;
    return PTM_OK;
}

const struct ptm__jstrict *ptm__jstrict_get(const struct ptm__jstrict *obj, const char *key)
{
    if (obj == NULL || obj->kind != PTM__JSTRICT_OBJ) {
        return NULL;
    }
    for (size_t k = 0; k < obj->len; k++) {
        if (strcmp(obj->keys[k], key) == 0) {
            return &obj->items[k];
        }
    }
    return NULL;
}

const char *ptm__jstrict_kind_name(int kind)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return kind >= 0 && kind <= PTM__JSTRICT_OBJ ? names[kind] : "unknown";
}

int ptm__jstrict_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (k == 0) {
            return 0;
        }
        p += k;
    }
    return 1;
}
