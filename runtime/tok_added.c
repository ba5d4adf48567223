/*
 * tok_added.c - the added vocabulary of tokenizer.json ("added_tokens"): tokens matched in
 * the raw text (normalized: false) or in each normalized piece (normalized: true) before
 * the pre-tokenizer and model see it, with HF AddedVocabulary's rules: leftmost-longest
 * matching, non-overlapping from the end of the previous match, single_word (no \w on
 * either side), lstrip/rstrip (swallow adjacent whitespace) and the special flag (skipped
 * on decode). Matching is a scan with a first-character filter; that is fine for the tens of
 * tokens BERT-style files have, a trie would be needed for thousands.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

static ptm_status load_token(const struct ptm__tok_jctx *c, json_object *e, const char *sub,
                             struct ptm__tok_added_token *t)
{
    const char *content;
    size_t len;
    int64_t id;
    ptm_status st = PTM_OK;
    if (!json_object_is_type(e, json_type_object)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got %s", c->file, sub,
                         ptm__tok_json_type_name(e));
    }
    st = ptm__tok_jint(c, e, sub, "id", 0, PTM__TOK_MAX_ID - 1, -1, &id);
    if (st == PTM_OK && id < 0) {
        st = ptm__fail(PTM_E_FORMAT, "%s: %s.id: missing required integer", c->file, sub);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jstr(c, e, sub, "content", &content, &len);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, e, sub, "special", 0, &t->is_special);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, e, sub, "lstrip", 0, &t->lstrip);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, e, sub, "rstrip", 0, &t->rstrip);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, e, sub, "single_word", 0, &t->single_word);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, e, sub, "normalized", !t->is_special, &t->is_normalized);
    }
    if (st != PTM_OK) {
        return st;
    }
    t->id = (int32_t)id;
    t->content = ptm__strndup(content, len);
    if (t->content == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, sub);
    }
    return PTM_OK;
}

/* The pattern: the content's code points, through the normalizer if the token is normalized. */
static ptm_status make_pattern(struct ptm__tok_added_token *t,
                               const struct ptm__tok_normalizer *norm, struct ptm__tok_scratch *s)
{
    s->norm.n = 0;
    ptm_status st = ptm__tok_utf8_decode(t->content, strlen(t->content), &s->norm);
    if (st == PTM_OK && t->is_normalized && norm != NULL) {
        st = norm->ops->normalize(norm, s, &s->norm);
    }
    if (st != PTM_OK) {
        return st;
    }
    t->pattern = ptm__malloc((s->norm.n ? s->norm.n : 1) * sizeof *t->pattern);
    if (t->pattern == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for added token \"%s\"",
                         t->content);
    }
    memcpy(t->pattern, s->norm.v, s->norm.n * sizeof *t->pattern);
    t->pattern_len = s->norm.n;
    /* HF maps the id back to the normalized form: "Zürich" under StripAccents is "Zurich". */
    s->bytes.n = 0;
    st = ptm__tok_utf8_encode(s->norm.v, s->norm.n, &s->bytes);
    if (st == PTM_OK) {
        t->text = ptm__strndup(s->bytes.v != NULL ? s->bytes.v : "", s->bytes.n);
        if (t->text == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for added token \"%s\"",
                           t->content);
        }
    }
    return st;
}

static ptm_status build_vocab(struct ptm__tok_added *a)
{
    size_t n_ids = 0;
    for (size_t i = 0; i < a->n; i++) {
        n_ids = (size_t)a->v[i].id + 1 > n_ids ? (size_t)a->v[i].id + 1 : n_ids;
    }
    ptm_status st = ptm__tok_vocab_init(&a->vocab, n_ids, a->n);
    if (st != PTM_OK) {
        return st;
    }
    a->id_text = ptm__calloc(n_ids ? n_ids : 1, sizeof *a->id_text);
    if (a->id_text == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for %zu added tokens", a->n);
    }
    for (size_t i = a->n; i-- > 0;) {
        a->id_text[a->v[i].id] = a->v[i].text; /* the first entry for an id wins */
    }
    for (size_t i = 0; i < a->n && st == PTM_OK; i++) {
        const struct ptm__tok_added_token *t = &a->v[i];
        st = ptm__tok_vocab_add(&a->vocab, t->content, strlen(t->content), t->id);
        if (st == PTM_E_EXISTS) {
            st = PTM_OK; /* HF keeps the first of duplicate entries */
        }
    }
    return st;
}

ptm_status ptm__tok_added_from_json(const struct ptm__tok_jctx *c, json_object *arr,
                                    const struct ptm__tok_normalizer *norm,
                                    struct ptm__tok_added *out)
{
    memset(out, 0, sizeof *out);
    if (arr == NULL) {
        return ptm__tok_vocab_init(&out->vocab, 0, 0);
    }
    size_t n = json_object_array_length(arr);
    out->v = ptm__calloc(n, sizeof *out->v);
    if (out->v == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: added_tokens: out of memory", c->file);
    }
    struct ptm__tok_scratch s = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "added_tokens[%zu]", i);
        st = load_token(c, json_object_array_get_idx(arr, i), sub, &out->v[i]);
        out->n = i + 1;
        if (st == PTM_OK) {
            st = make_pattern(&out->v[i], norm, &s);
        }
    }
    ptm__tok_scratch_free(&s);
    if (st == PTM_OK) {
        st = build_vocab(out);
    }
    if (st != PTM_OK) {
        ptm__tok_added_free(out);
    }
    return st;
}

void ptm__tok_added_free(struct ptm__tok_added *a)
{
    for (size_t i = 0; i < a->n; i++) {
        ptm__free(a->v[i].content);
        ptm__free(a->v[i].pattern);
        ptm__free(a->v[i].text);
    }
    ptm__free(a->v);
    ptm__free(a->id_text);
    ptm__tok_vocab_free(&a->vocab);
    memset(a, 0, sizeof *a);
}

int ptm__tok_added_is_special(const struct ptm__tok_added *a, const char *tok, size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].is_special && strlen(a->v[i].content) == len &&
            memcmp(a->v[i].content, tok, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Longest token of the given kind matching at cps[pos..n), or NULL. */
static const struct ptm__tok_added_token *match_at(const struct ptm__tok_added *a, int normalized,
                                                   const uint32_t *cps, size_t pos, size_t n)
{
    const struct ptm__tok_added_token *best = NULL;
    for (size_t i = 0; i < a->n; i++) {
        const struct ptm__tok_added_token *t = &a->v[i];
        if (t->is_normalized != normalized || t->pattern_len == 0 || t->pattern[0] != cps[pos] ||
            t->pattern_len > n - pos || (best != NULL && t->pattern_len <= best->pattern_len)) {
            continue;
        }
        if (memcmp(t->pattern, cps + pos, t->pattern_len * sizeof *cps) == 0) {
            best = t;
        }
    }
    return best;
}

ptm_status ptm__tok_added_split(const struct ptm__tok_added *a, int normalized, const uint32_t *cps,
                                size_t n, ptm__tok_piece_fn emit, void *ctx)
{
    size_t done = 0; /* end of the last emitted piece */
    ptm_status st = PTM_OK;
    for (size_t pos = 0; pos < n && st == PTM_OK;) {
        const struct ptm__tok_added_token *t = match_at(a, normalized, cps, pos, n);
        if (t == NULL) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + t->pattern_len;
        pos = stop; /* the next match is searched after this one, used or not */
        if (t->single_word && ((start > 0 && ptm__tok_is_word(cps[start - 1])) ||
                               (stop < n && ptm__tok_is_word(cps[stop])))) {
            continue;
        }
        if (t->lstrip) {
            while (start > done && ptm__tok_is_whitespace(cps[start - 1])) {
                start--;
            }
        }
        if (t->rstrip) {
            while (stop < n && ptm__tok_is_whitespace(cps[stop])) {
                stop++;
            }
        }
        if (done < start) {
            st = emit(ctx, done, start, -1);
        }
        if (st == PTM_OK) {
            st = emit(ctx, start, stop, t->id);
        }
        done = stop;
    }
    if (st == PTM_OK && done < n) {
        st = emit(ctx, done, n, -1);
    }
    return st;
}
