/*
 * tok_metaspace.c - SentencePiece's word boundary marker as tokenizer.json's Metaspace
 * pre-tokenizer and decoder. The pre-tokenizer replaces every space (U+0020 only) with the
 * replacement character ("▁"), prepends one to a word that does not start with it (always, on
 * the first word only, or never), then optionally splits before each replacement character
 * (MergedWithNext). The decoder turns replacement characters back into spaces, dropping them
 * from the first token unless the scheme is never. HF's "first" means "the piece that starts at
 * offset 0 of the input"; ptm, which keeps no offsets, takes the first piece of the sequence,
 * which is the same unless an earlier pre-tokenizer removed the text's first characters.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

struct metaspace {
    uint32_t replacement;
    int scheme, split;
};

struct ms_pretok {
    struct ptm__tok_pretok base;
    struct metaspace m;
};

struct ms_decoder {
    struct ptm__tok_decoder base;
    struct metaspace m;
};

static ptm_status ms_word(const void *ctx, struct ptm__tok_scratch *s,
                          const struct ptm__tok_word *w, size_t i)
{
    const struct metaspace *m = &((const struct ms_pretok *)ctx)->m;
    if (w->len == 0) {
        return PTM_OK;
    }
    ptm_status st = ptm__tok_cps_reserve(&s->arena, w->len + 1);
    if (st != PTM_OK) {
        return st;
    }
    const uint32_t *src = s->arena.v + w->off;
    struct ptm__tok_word nw = {s->arena.n, 0, -1};
    uint32_t *o = s->arena.v + s->arena.n;
    int first_is_rep = src[0] == ' ' || src[0] == m->replacement;
    if (!first_is_rep && (m->scheme == PREPEND_ALWAYS || (m->scheme == PREPEND_FIRST && i == 0))) {
        o[nw.len++] = m->replacement;
    }
    for (size_t k = 0; k < w->len; k++) {
        o[nw.len++] = src[k] == ' ' ? m->replacement : src[k];
    }
    s->arena.n += nw.len;
    if (!m->split) {
        return ptm__tok_words_push(&s->words2, nw.off, nw.len, -1);
    }
    size_t n = 0, last = 0;
    for (size_t k = 0; k < nw.len && st == PTM_OK; k++) {
        if (o[k] == m->replacement) {
            if (last < k) {
                st = ptm__tok_seg_push(s, &n, last, k, 0);
            }
            if (st == PTM_OK) {
                st = ptm__tok_seg_push(s, &n, k, k + 1, 1);
            }
            last = k + 1;
        }
    }
    if (st == PTM_OK && last < nw.len) {
        st = ptm__tok_seg_push(s, &n, last, nw.len, 0);
    }
    return st != PTM_OK ? st : ptm__tok_split_emit(s, &nw, n, PTM__TOK_MERGED_NEXT);
}

static ptm_status ms_apply(const struct ptm__tok_pretok *base, struct ptm__tok_scratch *s)
{
    return ptm__tok_pretok_map(base, s, ms_word);
}

static void ms_pretok_destroy(struct ptm__tok_pretok *p)
{
    ptm__free(p);
}

static const struct ptm__tok_pretok_ops ms_pretok_ops = {ms_apply, ms_pretok_destroy};

static ptm_status ms_chain(const struct ptm__tok_decoder *base, const struct ptm__tok_strs *in,
                           struct ptm__tok_strs *out)
{
    const struct metaspace *m = &((const struct ms_decoder *)base)->m;
    struct ptm__tok_cps cps = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        cps.n = 0;
        st = ptm__tok_utf8_decode(PTM__TOK_STR(in, i), PTM__TOK_STR_LEN(in, i), &cps);
        size_t k = 0;
        for (size_t j = 0; j < cps.n; j++) {
            if (cps.v[j] != m->replacement) {
                cps.v[k++] = cps.v[j];
            } else if (i > 0 || m->scheme == PREPEND_NEVER) {
                cps.v[k++] = ' ';
            }
        }
        if (st == PTM_OK) {
            st = ptm__tok_utf8_encode(cps.v, k, &out->buf);
        }
        if (st == PTM_OK) {
            st = ptm__tok_strs_close(out);
        }
    }
    ptm__free(cps.v);
    return st;
}

static void ms_decoder_destroy(struct ptm__tok_decoder *d)
{
    ptm__free(d);
}

static const struct ptm__tok_decoder_ops ms_decoder_ops = {ptm__tok_decode_by_chain,
                                                           ms_decoder_destroy, ms_chain};

/* replacement, prepend_scheme (or the older add_prefix_space) and split. */
static ptm_status load(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                       struct metaspace *m)
{
    static const char *schemes[] = {"always", "first", "never"};
    json_object *rep, *scheme;
    ptm_status st = ptm__tok_jmember(c, j, path, "replacement", json_type_string, 0, &rep);
    struct ptm__tok_cps cps = {0};
    m->replacement = 0x2581;
    if (st == PTM_OK && rep != NULL) {
        st = ptm__tok_utf8_decode(json_object_get_string(rep),
                                  (size_t)json_object_get_string_len(rep), &cps);
        if (st == PTM_OK && cps.n != 1) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s.replacement: expected one character, got %zu",
                           c->file, path, cps.n);
        }
        m->replacement = st == PTM_OK ? cps.v[0] : 0;
    }
    ptm__free(cps.v);
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "split", 1, &m->split);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jmember(c, j, path, "prepend_scheme", json_type_string, 0, &scheme);
    }
    if (st != PTM_OK) {
        return st;
    }
    if (scheme == NULL) {
        int add;
        st = ptm__tok_jbool(c, j, path, "add_prefix_space", 1, &add);
        m->scheme = add ? PREPEND_ALWAYS : PREPEND_NEVER;
        return st;
    }
    for (int k = 0; k < 3; k++) {
        if (strcmp(json_object_get_string(scheme), schemes[k]) == 0) {
            m->scheme = k;
            return PTM_OK;
        }
    }
    return ptm__fail(PTM_E_FORMAT, "%s: %s.prepend_scheme: unknown scheme \"%s\"", c->file, path,
                     json_object_get_string(scheme));
}

ptm_status ptm__tok_metaspace_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                               const char *path, struct ptm__tok_pretok **out)
{
    *out = NULL;
    struct ms_pretok *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &ms_pretok_ops;
    ptm_status st = load(c, j, path, &p->m);
    if (st != PTM_OK) {
        ptm__free(p);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}

ptm_status ptm__tok_metaspace_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                                const char *path, struct ptm__tok_decoder **out)
{
    *out = NULL;
    struct ms_decoder *d = ptm__calloc(1, sizeof *d);
    if (d == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    d->base.ops = &ms_decoder_ops;
    ptm_status st = load(c, j, path, &d->m);
    if (st != PTM_OK) {
        ptm__free(d);
        return st;
    }
    *out = &d->base;
    return PTM_OK;
}
