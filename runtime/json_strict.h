/*
 * json_strict.h - a small, strict JSON parser for untrusted file headers (safetensors headers
 * and their index files). It owns the parse tree and its memory; it knows nothing of
 * safetensors. Unlike json-c it rejects duplicate object keys (json-c keeps the last one
 * silently, which would let a file hide a tensor), invalid UTF-8 anywhere in the input,
 * unpaired surrogates, "\u0000" (names are handed out as C strings), nesting deeper than
 * PTM__JSTRICT_MAX_DEPTH and trailing characters other than whitespace.
 */
#ifndef PTM_RUNTIME_JSON_STRICT_H
#define PTM_RUNTIME_JSON_STRICT_H

#include <stddef.h>
#include <stdint.h>

#include "ptm/ptm_base.h"

#define PTM__JSTRICT_MAX_DEPTH 64

enum ptm__jstrict_kind {
    PTM__JSTRICT_NULL,
    PTM__JSTRICT_BOOL,
    PTM__JSTRICT_NUM,
    PTM__JSTRICT_STR,
    PTM__JSTRICT_ARR,
    PTM__JSTRICT_OBJ,
};

/* One value. Everything it points to lives in the document's arena. */
struct ptm__jstrict {
    int kind;
    int is_int;                 /* NUM: integer literal (no fraction/exponent) within int64 */
    int boolean;                /* BOOL */
    int64_t i;                  /* NUM with is_int */
    const char *str;            /* STR: decoded, NUL-terminated, no embedded NUL */
    size_t len;                 /* STR: bytes; ARR and OBJ: number of members */
    const char **keys;          /* OBJ: member names in document order (all distinct) */
    struct ptm__jstrict *items; /* ARR and OBJ: the members' values */
    size_t offset;              /* byte offset of the value in the parsed buffer */
};

struct ptm__jstrict_doc;

/*
 * Parse buf[0..n) as one JSON value surrounded by optional whitespace. label names the input
 * in error messages ("<label>: JSON: <fault> at byte <k>"). On PTM_OK *doc owns the tree and
 * *root points into it; on failure (PTM_E_FORMAT or PTM_E_NOMEM) both are NULL.
 */
ptm_status ptm__jstrict_parse(const char *buf, size_t n, const char *label,
                              struct ptm__jstrict_doc **doc, const struct ptm__jstrict **root);

/* Free a document and every value in it. NULL ok. */
void ptm__jstrict_free(struct ptm__jstrict_doc *doc);

/* The member named key of an object, or NULL (also when obj is not an object). */
const struct ptm__jstrict *ptm__jstrict_get(const struct ptm__jstrict *obj, const char *key);

/* Whether s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int ptm__jstrict_utf8_valid(const char *s, size_t n);

/* "null", "boolean", "number", "string", "array", "object". */
const char *ptm__jstrict_kind_name(int kind);

#endif
