/*
 * tok_normalize.c - tokenizer.json normalizers: BertNormalizer, Lowercase, NFD/NFC/NFKD/NFKC,
 * StripAccents, Strip, Replace (string pattern), Prepend and Sequence, each matching
 * Hugging Face `tokenizers` character for character. They work on code points; offsets
 * (alignment to the original text) are not tracked yet. Replace with a Regex pattern
 * (tok_regex.c) and Precompiled (tok_precompiled.c) are dispatched from here. The loaded
 * objects are immutable.
 */
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

enum norm_kind {
    N_BERT,
    N_LOWER,
    N_UNICODE,
    N_STRIP_ACCENTS,
    N_STRIP,
    N_REPLACE,
    N_PREPEND,
    N_SEQUENCE,
};

struct norm {
    struct ptm__tok_normalizer base;
    enum norm_kind kind;
    int clean_text, chinese, strip_accents, lowercase; /* BertNormalizer */
    int left, right;                                   /* Strip */
    int uopts;                                         /* NF*: utf8proc options */
    uint32_t *pat, *rep;                               /* Replace; Prepend uses rep */
    size_t pat_len, rep_len;
    struct ptm__tok_normalizer **kids; /* Sequence */
    size_t n_kids;
};

static void swap_cps(struct ptm__tok_cps *a, struct ptm__tok_cps *b)
{
    struct ptm__tok_cps t = *a;
    *a = *b;
    *b = t;
}

/* Canonical or compatibility (de)composition of io through utf8proc. */
static ptm_status unicode_normalize(int uopts, struct ptm__tok_scratch *s, struct ptm__tok_cps *io)
{
    s->bytes.n = 0;
    ptm_status st = ptm__tok_utf8_encode(io->v, io->n, &s->bytes);
    if (st != PTM_OK) {
        return st;
    }
    s->tmp.n = 0;
    for (;;) {
        utf8proc_ssize_t r =
            utf8proc_decompose((const utf8proc_uint8_t *)s->bytes.v, (utf8proc_ssize_t)s->bytes.n,
                               (utf8proc_int32_t *)s->tmp.v, (utf8proc_ssize_t)s->tmp.cap, uopts);
        if (r < 0) {
            return ptm__fail(PTM_E_INTERNAL, "tokenizer: utf8proc: %s", utf8proc_errmsg(r));
        }
        if ((size_t)r <= s->tmp.cap) {
            if (uopts & UTF8PROC_COMPOSE) {
                r = utf8proc_normalize_utf32((utf8proc_int32_t *)s->tmp.v, r, uopts);
                if (r < 0) {
                    return ptm__fail(PTM_E_INTERNAL, "tokenizer: utf8proc: %s", utf8proc_errmsg(r));
                }
            }
            s->tmp.n = (size_t)r;
            break;
        }
        st = ptm__tok_cps_reserve(&s->tmp, (size_t)r);
        if (st != PTM_OK) {
            return st;
        }
    }
    swap_cps(io, &s->tmp);
    return PTM_OK;
}

/* BertNormalizer drops Mn (is_mark_nonspacing); StripAccents drops all of M
 * (unicode-normalization's is_combining_mark), so Devanagari's Mc vowel signs go too. */
static void remove_marks(struct ptm__tok_cps *io, int (*is_mark)(uint32_t))
{
    size_t k = 0;
    for (size_t i = 0; i < io->n; i++) {
        if (!is_mark(io->v[i])) {
            io->v[k++] = io->v[i];
        }
    }
    io->n = k;
}

static ptm_status lowercase(struct ptm__tok_scratch *s, struct ptm__tok_cps *io)
{
    s->tmp.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->tmp, io->n + io->n / 8 + 1);
    for (size_t i = 0; i < io->n && st == PTM_OK; i++) {
        uint32_t lo[2];
        size_t k = ptm__tok_to_lower(io->v[i], lo);
        for (size_t j = 0; j < k && st == PTM_OK; j++) {
            st = ptm__tok_cps_push(&s->tmp, lo[j]);
        }
    }
    if (st == PTM_OK) {
        swap_cps(io, &s->tmp);
    }
    return st;
}

/* clean_text and handle_chinese_chars, in HF's order: filter, then map, then pad CJK. */
static ptm_status clean_text(const struct norm *n, struct ptm__tok_scratch *s,
                             struct ptm__tok_cps *io)
{
    s->tmp.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->tmp, io->n);
    for (size_t i = 0; i < io->n && st == PTM_OK; i++) {
        uint32_t c = io->v[i];
        if (n->clean_text) {
            if (c == 0 || c == 0xFFFD ||
                (c != '\t' && c != '\n' && c != '\r' && ptm__tok_is_other(c))) {
                continue;
            }
            if (ptm__tok_is_whitespace(c)) {
                c = ' ';
            }
        }
        if (n->chinese && ptm__tok_is_chinese(c)) {
            st = ptm__tok_cps_push(&s->tmp, ' ');
            if (st == PTM_OK) {
                st = ptm__tok_cps_push(&s->tmp, c);
            }
            if (st == PTM_OK) {
                st = ptm__tok_cps_push(&s->tmp, ' ');
            }
        } else {
            st = ptm__tok_cps_push(&s->tmp, c);
        }
    }
    if (st == PTM_OK) {
        swap_cps(io, &s->tmp);
    }
    return st;
}

static ptm_status replace(const struct norm *n, struct ptm__tok_scratch *s, struct ptm__tok_cps *io)
{
    s->tmp.n = 0;
    ptm_status st = PTM_OK;
    size_t i = 0;
    while (i < io->n && st == PTM_OK) {
        if (io->n - i >= n->pat_len &&
            memcmp(io->v + i, n->pat, n->pat_len * sizeof *n->pat) == 0) {
            for (size_t j = 0; j < n->rep_len && st == PTM_OK; j++) {
                st = ptm__tok_cps_push(&s->tmp, n->rep[j]);
            }
            i += n->pat_len;
        } else {
            st = ptm__tok_cps_push(&s->tmp, io->v[i++]);
        }
    }
    if (st == PTM_OK) {
        swap_cps(io, &s->tmp);
    }
    return st;
}

static ptm_status prepend(const struct norm *n, struct ptm__tok_scratch *s, struct ptm__tok_cps *io)
{
    if (io->n == 0) {
        return PTM_OK;
    }
    s->tmp.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->tmp, io->n + n->rep_len);
    if (st == PTM_OK) {
        memcpy(s->tmp.v, n->rep, n->rep_len * sizeof *n->rep);
        memcpy(s->tmp.v + n->rep_len, io->v, io->n * sizeof *io->v);
        s->tmp.n = io->n + n->rep_len;
        swap_cps(io, &s->tmp);
    }
    return st;
}

static void strip(const struct norm *n, struct ptm__tok_cps *io)
{
    size_t a = 0, b = io->n;
    while (n->left && a < b && ptm__tok_is_whitespace(io->v[a])) {
        a++;
    }
    while (n->right && b > a && ptm__tok_is_whitespace(io->v[b - 1])) {
        b--;
    }
    memmove(io->v, io->v + a, (b - a) * sizeof *io->v);
    io->n = b - a;
}

static ptm_status norm_apply(const struct ptm__tok_normalizer *base, struct ptm__tok_scratch *s,
                             struct ptm__tok_cps *io)
{
    const struct norm *n = (const struct norm *)base;
    ptm_status st = PTM_OK;
    switch (n->kind) {
    case N_BERT:
        st = clean_text(n, s, io);
        if (st == PTM_OK && n->strip_accents) {
            st = unicode_normalize(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, s, io);
            remove_marks(io, ptm__tok_is_mn);
        }
        if (st == PTM_OK && n->lowercase) {
            st = lowercase(s, io);
        }
        return st;
    case N_LOWER:
        return lowercase(s, io);
    case N_UNICODE:
        return unicode_normalize(n->uopts, s, io);
    case N_STRIP_ACCENTS:
        remove_marks(io, ptm__tok_is_mark);
        return PTM_OK;
    case N_STRIP:
        strip(n, io);
        return PTM_OK;
    case N_REPLACE:
        return replace(n, s, io);
    case N_PREPEND:
        return prepend(n, s, io);
    case N_SEQUENCE:
        for (size_t i = 0; i < n->n_kids && st == PTM_OK; i++) {
            st = n->kids[i]->ops->normalize(n->kids[i], s, io);
        }
        return st;
    }
    return st;
}

static void norm_destroy(struct ptm__tok_normalizer *base)
{
    struct norm *n = (struct norm *)base;
    for (size_t i = 0; i < n->n_kids; i++) {
        ptm__tok_normalizer_free(n->kids[i]);
    }
    ptm__free(n->kids);
    ptm__free(n->pat);
    ptm__free(n->rep);
    ptm__free(n);
}

static const struct ptm__tok_normalizer_ops norm_ops = {norm_apply, norm_destroy};

/* A string member decoded to freshly allocated code points. */
static ptm_status jcps(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                       const char *key, uint32_t **out, size_t *n)
{
    const char *str;
    size_t len;
    ptm_status st = ptm__tok_jstr(c, j, path, key, &str, &len);
    if (st != PTM_OK) {
        return st;
    }
    struct ptm__tok_cps b = {0};
    st = ptm__tok_utf8_decode(str, len, &b);
    if (st == PTM_OK) {
        st = ptm__tok_cps_reserve(&b, 0); /* non-NULL even when empty */
    }
    *out = b.v;
    *n = b.n;
    return st;
}

static ptm_status load_bert(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                            struct norm *n)
{
    ptm_status st = ptm__tok_jbool(c, j, path, "clean_text", 1, &n->clean_text);
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "handle_chinese_chars", 1, &n->chinese);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "lowercase", 1, &n->lowercase);
    }
    /* strip_accents: null (or absent) means "do what lowercase does". */
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "strip_accents", n->lowercase, &n->strip_accents);
    }
    return st;
}

static ptm_status load_replace(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                               struct norm *n)
{
    json_object *pat;
    char sub[256];
    ptm_status st = ptm__tok_jmember(c, j, path, "pattern", json_type_object, 1, &pat);
    if (st != PTM_OK) {
        return st;
    }
    snprintf(sub, sizeof sub, "%s.pattern", path);
    if (!json_object_object_get_ex(pat, "String", NULL)) {
        return ptm__tok_junsupported(c, sub, "Replace pattern (only String is)", "Regex");
    }
    st = jcps(c, pat, sub, "String", &n->pat, &n->pat_len);
    if (st == PTM_OK && n->pat_len == 0) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.String: empty pattern", c->file, sub);
    }
    if (st == PTM_OK) {
        st = jcps(c, j, path, "content", &n->rep, &n->rep_len);
    }
    return st;
}

static ptm_status load_sequence(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct norm *n)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "normalizers", json_type_array, 1, &arr);
    if (st != PTM_OK) {
        return st;
    }
    size_t k = json_object_array_length(arr);
    n->kids = ptm__calloc(k, sizeof *n->kids);
    if (n->kids == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    for (size_t i = 0; i < k && st == PTM_OK; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
        st = ptm__tok_normalizer_from_json(c, json_object_array_get_idx(arr, i), sub, &n->kids[i]);
        if (st == PTM_OK && n->kids[i] == NULL) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got null", c->file, sub);
        }
        n->n_kids = i + 1;
    }
    return st;
}

static ptm_status load_kind(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                            const char *type, struct norm *n)
{
    static const struct {
        const char *name;
        int uopts;
    } forms[] = {
        {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
        {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
        {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
        {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (strcmp(type, forms[i].name) == 0) {
            n->kind = N_UNICODE;
            n->uopts = forms[i].uopts;
            return PTM_OK;
        }
    }
    if (strcmp(type, "BertNormalizer") == 0) {
        n->kind = N_BERT;
        return load_bert(c, j, path, n);
    }
    if (strcmp(type, "Lowercase") == 0) {
        n->kind = N_LOWER;
        return PTM_OK;
    }
    if (strcmp(type, "StripAccents") == 0) {
        n->kind = N_STRIP_ACCENTS;
        return PTM_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        n->kind = N_STRIP;
        ptm_status st = ptm__tok_jbool(c, j, path, "strip_left", 1, &n->left);
        return st != PTM_OK ? st : ptm__tok_jbool(c, j, path, "strip_right", 1, &n->right);
    }
    if (strcmp(type, "Replace") == 0) {
        n->kind = N_REPLACE;
        return load_replace(c, j, path, n);
    }
    if (strcmp(type, "Prepend") == 0) {
        n->kind = N_PREPEND;
        return jcps(c, j, path, "prepend", &n->rep, &n->rep_len);
    }
    if (strcmp(type, "Sequence") == 0) {
        n->kind = N_SEQUENCE;
        return load_sequence(c, j, path, n);
    }
    return ptm__tok_junsupported(c, path, "normalizer", type);
}

ptm_status ptm__tok_normalizer_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                         const char *path, struct ptm__tok_normalizer **out)
{
    *out = NULL;
    if (j == NULL || json_object_is_type(j, json_type_null)) {
        return PTM_OK;
    }
    const char *type;
    json_object *pat;
    ptm_status st = ptm__tok_jtype(c, j, path, &type);
    if (st != PTM_OK) {
        return st;
    }
    if (strcmp(type, "Precompiled") == 0) {
        return ptm__tok_precompiled_from_json(c, j, path, out);
    }
    if (strcmp(type, "Replace") == 0 && json_object_object_get_ex(j, "pattern", &pat) &&
        json_object_object_get_ex(pat, "Regex", NULL)) {
        return ptm__tok_replace_regex_from_json(c, j, path, out);
    }
    struct norm *n = ptm__calloc(1, sizeof *n);
    if (n == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    n->base.ops = &norm_ops;
    st = load_kind(c, j, path, type, n);
    if (st != PTM_OK) {
        norm_destroy(&n->base);
        return st;
    }
    *out = &n->base;
    return PTM_OK;
}

void ptm__tok_normalizer_free(struct ptm__tok_normalizer *n)
{
    if (n != NULL) {
        n->ops->destroy(n);
    }
}
