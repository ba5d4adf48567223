/*
 * tok_pretok.c - tokenizer.json pre-tokenizers that split words at character classes:
 * BertPreTokenizer, Whitespace (\w+|[^\w\s]+), WhitespaceSplit, Punctuation, Digits and
 * Sequence. Splitting follows HF NormalizedString::split for a char predicate: each matching
 * character is one match, then the delimiter behavior (Removed, Isolated, MergedWithPrevious,
 * MergedWithNext, Contiguous) decides where it goes, and empty pieces are dropped. Words that
 * are added tokens (id >= 0) pass through. The splitting and word-walking helpers are shared
 * with the pre-tokenizers that rewrite text or use a regex, which live in their own files
 * (ByteLevel: tok_bytelevel.c, Metaspace: tok_metaspace.c, Split: tok_regex.c) and are
 * dispatched from here.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

enum pre_kind { P_BERT, P_WHITESPACE, P_WS_SPLIT, P_PUNCT, P_DIGITS, P_SEQUENCE };
enum behavior {
    B_REMOVED = PTM__TOK_REMOVED,
    B_ISOLATED = PTM__TOK_ISOLATED,
    B_MERGED_PREV = PTM__TOK_MERGED_PREV,
    B_MERGED_NEXT = PTM__TOK_MERGED_NEXT,
    B_CONTIGUOUS = PTM__TOK_CONTIGUOUS
};

struct pretok {
    struct ptm__tok_pretok base;
    enum pre_kind kind;
    enum behavior behavior;
    struct ptm__tok_pretok **kids;
    size_t n_kids;
};

ptm_status ptm__tok_seg_push(struct ptm__tok_scratch *s, size_t *n, size_t a, size_t b, size_t m)
{
    if (3 * (*n + 1) > s->seg_cap) {
        size_t cap = s->seg_cap ? 2 * s->seg_cap : 96;
        size_t *p = ptm__realloc(s->seg, cap * sizeof *p);
        if (p == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory splitting a word");
        }
        s->seg = p;
        s->seg_cap = cap;
    }
    s->seg[3 * *n] = a;
    s->seg[3 * *n + 1] = b;
    s->seg[3 * *n + 2] = m;
    (*n)++;
    return PTM_OK;
}

/* HF's fold for MergedWithPrevious / Contiguous, in place; returns the new count. */
static size_t fold_forward(size_t *seg, size_t n, int contiguous)
{
    size_t k = 0;
    int prev = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = seg[3 * i], b = seg[3 * i + 1];
        int m = (int)seg[3 * i + 2];
        int merge = contiguous ? (m == prev) : (m && !prev);
        if (merge && k > 0) {
            seg[3 * (k - 1) + 1] = b;
        } else {
            seg[3 * k] = a;
            seg[3 * k + 1] = b;
            seg[3 * k + 2] = 0;
            k++;
        }
        prev = m;
    }
    return k;
}

/* HF's fold for MergedWithNext (right to left), in place; returns the first kept index. */
static size_t fold_backward(size_t *seg, size_t n)
{
    size_t k = n; /* kept: seg[k..n) */
    int prev = 0;
    for (size_t i = n; i-- > 0;) {
        size_t a = seg[3 * i], b = seg[3 * i + 1];
        int m = (int)seg[3 * i + 2];
        if (m && !prev && k < n) {
            seg[3 * k] = a;
        } else {
            k--;
            seg[3 * k] = a;
            seg[3 * k + 1] = b;
            seg[3 * k + 2] = 0;
        }
        prev = m;
    }
    return k;
}

static ptm_status split_pred(struct ptm__tok_scratch *s, const struct ptm__tok_word *w,
                             int (*pred)(uint32_t), enum behavior bh)
{
    const uint32_t *c = s->arena.v + w->off;
    size_t n = 0, last = 0;
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < w->len && st == PTM_OK; i++) {
        if (pred(c[i])) {
            if (last < i) {
                st = ptm__tok_seg_push(s, &n, last, i, 0);
            }
            if (st == PTM_OK) {
                st = ptm__tok_seg_push(s, &n, i, i + 1, 1);
            }
            last = i + 1;
        }
    }
    if (st == PTM_OK && last < w->len) {
        st = ptm__tok_seg_push(s, &n, last, w->len, 0);
    }
    return st != PTM_OK ? st : ptm__tok_split_emit(s, w, n, (int)bh);
}

ptm_status ptm__tok_split_emit(struct ptm__tok_scratch *s, const struct ptm__tok_word *w, size_t n,
                               int bh)
{
    ptm_status st = PTM_OK;
    size_t first = 0;
    if (bh == B_MERGED_PREV || bh == B_CONTIGUOUS) {
        n = fold_forward(s->seg, n, bh == B_CONTIGUOUS);
    } else if (bh == B_MERGED_NEXT) {
        first = fold_backward(s->seg, n);
    }
    for (size_t i = first; i < n && st == PTM_OK; i++) {
        size_t a = s->seg[3 * i], b = s->seg[3 * i + 1];
        if (b > a && !(bh == B_REMOVED && s->seg[3 * i + 2])) {
            st = ptm__tok_words_push(&s->words2, w->off + a, b - a, -1);
        }
    }
    return st;
}

/* BertPreTokenizer: whitespace removed, then each punctuation character isolated. */
static ptm_status split_bert(struct ptm__tok_scratch *s, const struct ptm__tok_word *w)
{
    const uint32_t *c = s->arena.v + w->off;
    size_t start = 0;
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < w->len && st == PTM_OK; i++) {
        int ws = ptm__tok_is_whitespace(c[i]);
        if (ws || ptm__tok_is_punct(c[i])) {
            if (start < i) {
                st = ptm__tok_words_push(&s->words2, w->off + start, i - start, -1);
            }
            if (!ws && st == PTM_OK) {
                st = ptm__tok_words_push(&s->words2, w->off + i, 1, -1);
            }
            start = i + 1;
        }
    }
    if (st == PTM_OK && start < w->len) {
        st = ptm__tok_words_push(&s->words2, w->off + start, w->len - start, -1);
    }
    return st;
}

/* Whitespace: the matches of \w+|[^\w\s]+ are kept, the whitespace between them dropped. */
static ptm_status split_whitespace(struct ptm__tok_scratch *s, const struct ptm__tok_word *w)
{
    const uint32_t *c = s->arena.v + w->off;
    size_t i = 0;
    ptm_status st = PTM_OK;
    while (i < w->len && st == PTM_OK) {
        if (ptm__tok_is_whitespace(c[i])) {
            i++;
            continue;
        }
        int word = ptm__tok_is_word(c[i]);
        size_t j = i + 1;
        while (j < w->len && !ptm__tok_is_whitespace(c[j]) && ptm__tok_is_word(c[j]) == word) {
            j++;
        }
        st = ptm__tok_words_push(&s->words2, w->off + i, j - i, -1);
        i = j;
    }
    return st;
}

static ptm_status split_word(const struct pretok *p, struct ptm__tok_scratch *s,
                             const struct ptm__tok_word *w)
{
    switch (p->kind) {
    case P_BERT:
        return split_bert(s, w);
    case P_WHITESPACE:
        return split_whitespace(s, w);
    case P_WS_SPLIT:
        return split_pred(s, w, ptm__tok_is_whitespace, B_REMOVED);
    case P_PUNCT:
        return split_pred(s, w, ptm__tok_is_punct, p->behavior);
    case P_DIGITS:
        return split_pred(s, w, ptm__tok_is_numeric, p->behavior);
    case P_SEQUENCE:
        break;
    }
    return ptm__fail(PTM_E_INTERNAL, "tokenizer: pre-tokenizer kind %d cannot split", p->kind);
}

ptm_status ptm__tok_pretok_map(const void *ctx, struct ptm__tok_scratch *s, ptm__tok_word_fn fn)
{
    ptm_status st = PTM_OK;
    s->words2.n = 0;
    for (size_t i = 0; i < s->words.n && st == PTM_OK; i++) {
        const struct ptm__tok_word *w = &s->words.v[i];
        if (w->id >= 0) {
            st = ptm__tok_words_push(&s->words2, w->off, w->len, w->id);
        } else {
            st = fn(ctx, s, w, i);
        }
    }
    struct ptm__tok_words t = s->words;
    s->words = s->words2;
    s->words2 = t;
    return st;
}

static ptm_status split_one(const void *ctx, struct ptm__tok_scratch *s,
                            const struct ptm__tok_word *w, size_t i)
{
    (void)i;
    return split_word(ctx, s, w);
}

static ptm_status pretok_apply(const struct ptm__tok_pretok *base, struct ptm__tok_scratch *s)
{
    const struct pretok *p = (const struct pretok *)base;
    ptm_status st = PTM_OK;
    if (p->kind == P_SEQUENCE) {
        for (size_t i = 0; i < p->n_kids && st == PTM_OK; i++) {
            st = p->kids[i]->ops->apply(p->kids[i], s);
        }
        return st;
    }
    return ptm__tok_pretok_map(p, s, split_one);
}

static void pretok_destroy(struct ptm__tok_pretok *base)
{
    struct pretok *p = (struct pretok *)base;
    for (size_t i = 0; i < p->n_kids; i++) {
        ptm__tok_pretok_free(p->kids[i]);
    }
    ptm__free(p->kids);
    ptm__free(p);
}

static const struct ptm__tok_pretok_ops pretok_ops = {pretok_apply, pretok_destroy};

ptm_status ptm__tok_jbehavior(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                              int dflt, int *out)
{
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    json_object *m;
    *out = dflt;
    ptm_status st = ptm__tok_jmember(c, j, path, "behavior", json_type_string, 0, &m);
    if (st != PTM_OK || m == NULL) {
        return st;
    }
    const char *v = json_object_get_string(m);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return PTM_OK;
        }
    }
    return ptm__fail(PTM_E_FORMAT, "%s: %s.behavior: unknown split behavior \"%s\"", c->file, path,
                     v);
}

static ptm_status load_sequence(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct pretok *p)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "pretokenizers", json_type_array, 1, &arr);
    if (st != PTM_OK) {
        return st;
    }
    size_t k = json_object_array_length(arr);
    p->kids = ptm__calloc(k, sizeof *p->kids);
    if (p->kids == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    for (size_t i = 0; i < k && st == PTM_OK; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
        st = ptm__tok_pretok_from_json(c, json_object_array_get_idx(arr, i), sub, &p->kids[i]);
        if (st == PTM_OK && p->kids[i] == NULL) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got null", c->file, sub);
        }
        p->n_kids = i + 1;
    }
    return st;
}

static ptm_status load_kind(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                            const char *type, struct pretok *p)
{
    if (strcmp(type, "BertPreTokenizer") == 0) {
        p->kind = P_BERT;
    } else if (strcmp(type, "Whitespace") == 0) {
        p->kind = P_WHITESPACE;
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p->kind = P_WS_SPLIT;
    } else if (strcmp(type, "Punctuation") == 0) {
        p->kind = P_PUNCT;
        int bh;
        ptm_status st = ptm__tok_jbehavior(c, j, path, B_ISOLATED, &bh);
        p->behavior = (enum behavior)bh;
        return st;
    } else if (strcmp(type, "Digits") == 0) {
        int individual;
        p->kind = P_DIGITS;
        ptm_status st = ptm__tok_jbool(c, j, path, "individual_digits", 0, &individual);
        p->behavior = individual ? B_ISOLATED : B_CONTIGUOUS;
        return st;
    } else if (strcmp(type, "Sequence") == 0) {
        p->kind = P_SEQUENCE;
        return load_sequence(c, j, path, p);
    } else {
        return ptm__tok_junsupported(c, path, "pre-tokenizer", type);
    }
    return PTM_OK;
}

ptm_status ptm__tok_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                     const char *path, struct ptm__tok_pretok **out)
{
    *out = NULL;
    if (j == NULL || json_object_is_type(j, json_type_null)) {
        return PTM_OK;
    }
    static const struct {
        const char *type;
        ptm_status (*load)(const struct ptm__tok_jctx *, json_object *, const char *,
                           struct ptm__tok_pretok **);
    } others[] = {
        {"ByteLevel", ptm__tok_bytelevel_pretok_from_json},
        {"Metaspace", ptm__tok_metaspace_pretok_from_json},
        {"Split", ptm__tok_split_from_json},
    };
    const char *type;
    ptm_status st = ptm__tok_jtype(c, j, path, &type);
    if (st != PTM_OK) {
        return st;
    }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (strcmp(type, others[i].type) == 0) {
            return others[i].load(c, j, path, out);
        }
    }
    struct pretok *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &pretok_ops;
    st = load_kind(c, j, path, type, p);
    if (st != PTM_OK) {
        pretok_destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}

void ptm__tok_pretok_free(struct ptm__tok_pretok *p)
{
    if (p != NULL) {
        p->ops->destroy(p);
    }
}
