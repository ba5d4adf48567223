/*
 * tok_buf.c - the tokenizer's growable arrays (code points, bytes, words, encodings, the
 * decoders' string lists) and the
 * per-call scratch that holds them. Growth doubles, so an encode call allocates O(log n)
 * times and a batch reuses the same storage for every sequence. Nothing here knows Unicode
 * or JSON.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

/* Grow *v (elem bytes each, *cap elements) to hold need elements. Afterwards *v is never
 * NULL, so callers may memcpy zero elements from or to it. */
static ptm_status grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && *v != NULL) {
        return PTM_OK;
    }
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / elem) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: buffer of %zu elements too large", need);
        }
        cap2 *= 2;
    }
    void *p = ptm__realloc(*v, cap2 * elem);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory growing a buffer to %zu bytes",
                         cap2 * elem);
    }
    *v = p;
    *cap = cap2;
    return PTM_OK;
}

ptm_status ptm__tok_cps_reserve(struct ptm__tok_cps *b, size_t extra)
{
    if (extra > SIZE_MAX - b->n) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: text too long");
    }
    void *v = b->v;
    ptm_status st = grow(&v, &b->cap, b->n + extra, sizeof *b->v);
    b->v = v;
    return st;
}

ptm_status ptm__tok_cps_push(struct ptm__tok_cps *b, uint32_t cp)
{
    if (b->n == b->cap) {
        ptm_status st = ptm__tok_cps_reserve(b, 1);
        if (st != PTM_OK) {
            return st;
        }
    }
    b->v[b->n++] = cp;
    return PTM_OK;
}

ptm_status ptm__tok_bytes_reserve(struct ptm__tok_bytes *b, size_t extra)
{
    if (extra > SIZE_MAX - b->n - 1) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: text too long");
    }
    void *v = b->v;
    ptm_status st = grow(&v, &b->cap, b->n + extra + 1, 1);
    b->v = v;
    return st;
}

ptm_status ptm__tok_bytes_append(struct ptm__tok_bytes *b, const char *s, size_t n)
{
    ptm_status st = ptm__tok_bytes_reserve(b, n);
    if (st != PTM_OK) {
        return st;
    }
    if (n > 0) {
        memcpy(b->v + b->n, s, n);
    }
    b->n += n;
    b->v[b->n] = '\0';
    return PTM_OK;
}

ptm_status ptm__tok_words_push(struct ptm__tok_words *w, size_t off, size_t len, int32_t id)
{
    if (w->n == w->cap) {
        void *v = w->v;
        ptm_status st = grow(&v, &w->cap, w->n + 1, sizeof *w->v);
        w->v = v;
        if (st != PTM_OK) {
            return st;
        }
    }
    w->v[w->n].off = off;
    w->v[w->n].len = len;
    w->v[w->n].id = id;
    w->n++;
    return PTM_OK;
}

ptm_status ptm__tok_enc_push(struct ptm__tok_enc *e, int32_t id, int32_t type_id, int32_t special)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        int32_t *ids = ptm__realloc(e->ids, cap * sizeof *ids);
        if (ids == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        }
        e->ids = ids;
        int32_t *types = ptm__realloc(e->type_ids, cap * sizeof *types);
        if (types == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        }
        e->type_ids = types;
        int32_t *special_mask = ptm__realloc(e->special, cap * sizeof *special_mask);
        if (special_mask == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for %zu tokens", cap);
        }
        e->special = special_mask;
        e->cap = cap;
    }
    e->ids[e->n] = id;
    e->type_ids[e->n] = type_id;
    e->special[e->n] = special;
    e->n++;
    return PTM_OK;
}

ptm_status ptm__tok_strs_append(struct ptm__tok_strs *l, const char *s, size_t n)
{
    return ptm__tok_bytes_append(&l->buf, s, n);
}

ptm_status ptm__tok_strs_close(struct ptm__tok_strs *l)
{
    if (l->n == l->cap) {
        void *v = l->end;
        ptm_status st = grow(&v, &l->cap, l->n + 1, sizeof *l->end);
        l->end = v;
        if (st != PTM_OK) {
            return st;
        }
    }
    ptm_status st = ptm__tok_bytes_reserve(&l->buf, 0); /* buf.v is never NULL after a close */
    if (st == PTM_OK) {
        l->end[l->n++] = l->buf.n;
    }
    return st;
}

ptm_status ptm__tok_strs_push(struct ptm__tok_strs *l, const char *s, size_t n)
{
    ptm_status st = ptm__tok_strs_append(l, s, n);
    return st != PTM_OK ? st : ptm__tok_strs_close(l);
}

void ptm__tok_strs_clear(struct ptm__tok_strs *l)
{
    l->n = 0;
    l->buf.n = 0;
}

void ptm__tok_strs_free(struct ptm__tok_strs *l)
{
    ptm__free(l->buf.v);
    ptm__free(l->end);
    memset(l, 0, sizeof *l);
}

ptm_status ptm__tok_scratch_model(struct ptm__tok_scratch *s, size_t bytes)
{
    if (bytes <= s->model_bytes) {
        return PTM_OK;
    }
    size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
    void *p = ptm__malloc(want);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for %zu bytes of model scratch",
                         want);
    }
    ptm__free(s->model);
    s->model = p;
    s->model_bytes = want;
    return PTM_OK;
}

void ptm__tok_scratch_free(struct ptm__tok_scratch *s)
{
    ptm__free(s->text.v);
    ptm__free(s->norm.v);
    ptm__free(s->tmp.v);
    ptm__free(s->arena.v);
    ptm__free(s->words.v);
    ptm__free(s->words2.v);
    ptm__free(s->bytes.v);
    ptm__free(s->seg);
    ptm__free(s->model);
    memset(s, 0, sizeof *s);
}
