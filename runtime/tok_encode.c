/*
 * tok_encode.c - the encode pipeline of a loaded tokenizer, in HF Tokenizer::encode's order:
 * decode the bytes (invalid UTF-8 -> U+FFFD), split out raw added tokens, normalize each
 * remaining piece, split out normalized added tokens, pre-tokenize, run the model on each
 * word, then truncate (leaving room for the special tokens), post-process and pad. The
 * caller's options override the file's truncation and padding. All per-call state is in a
 * struct work on the stack plus heap buffers reused across a batch, so concurrent calls on
 * one tokenizer are safe.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

#include "ptm/ptm_tokenizer.h"

/* Options after applying the file's defaults. */
struct resolved {
    int add_special;
    int trunc; /* PTM__TOK_TRUNC_* */
    int trunc_left;
    size_t trunc_max;
    int pad; /* PTM_TOK_PAD_* */
    int pad_left;
    size_t pad_len; /* PTM_TOK_PAD_MAX_LENGTH */
    size_t multiple;
    int32_t pad_id, pad_type_id;
};

struct work {
    const ptm_tokenizer *t;
    struct ptm__tok_scratch s;
    struct ptm__tok_enc a, b, out;
    size_t base; /* arena offset of the normalized piece being split */
};

static void work_free(struct work *w)
{
    ptm__tok_scratch_free(&w->s);
    struct ptm__tok_enc *e[3] = {&w->a, &w->b, &w->out};
    for (int i = 0; i < 3; i++) {
        ptm__free(e[i]->ids);
        ptm__free(e[i]->type_ids);
        ptm__free(e[i]->special);
    }
}

static int32_t opt(const struct ptm_encode_opts *o, size_t off, int32_t dflt)
{
    if (o == NULL || o->struct_size < off + sizeof(int32_t)) {
        return dflt;
    }
    int32_t v;
    memcpy(&v, (const char *)o + off, sizeof v);
    return v;
}
#define OPT(o, field, dflt) opt(o, offsetof(struct ptm_encode_opts, field), dflt)

static ptm_status resolve(const ptm_tokenizer *t, const struct ptm_encode_opts *o,
                          struct resolved *r)
{
    int32_t max_len = OPT(o, max_length, 0), trunc = OPT(o, truncation, -1);
    int32_t pad = OPT(o, padding, -1), mult = OPT(o, pad_to_multiple_of, -1);
    int32_t tside = OPT(o, truncation_side, -1), pside = OPT(o, padding_side, -1);
    if (max_len < 0 || trunc < -1 || trunc > 3 || pad < -1 || pad > 2 || mult < -1) {
        return ptm__fail(PTM_E_INVAL,
                         "encode options: invalid value (max_length %d, truncation "
                         "%d, padding %d, pad_to_multiple_of %d)",
                         max_len, trunc, pad, mult);
    }
    r->add_special = OPT(o, add_special_tokens, 1) != 0;
    r->trunc = trunc == -1 ? (t->has_trunc ? t->trunc_strategy : 0) : trunc;
    r->trunc_left = tside == -1 ? t->trunc_left : tside == PTM_TOK_SIDE_LEFT;
    r->trunc_max = max_len > 0 ? (size_t)max_len : t->has_trunc ? t->trunc_max : 0;
    if (r->trunc && max_len == 0 && !t->has_trunc) {
        return ptm__fail(PTM_E_INVAL, "encode options: truncation needs max_length (the file "
                                      "sets none)");
    }
    r->pad = pad == -1 ? (t->has_pad ? (t->pad_len > 0 ? 2 : 1) : 0) : pad;
    r->pad_left = pside == -1 ? t->pad_left : pside == PTM_TOK_SIDE_LEFT;
    r->multiple = mult == -1 ? t->pad_multiple : (size_t)mult;
    r->pad_len = max_len > 0 ? (size_t)max_len : t->pad_len > 0 ? t->pad_len : t->trunc_max;
    if (r->pad == PTM_TOK_PAD_MAX_LENGTH && r->pad_len == 0) {
        return ptm__fail(PTM_E_INVAL, "encode options: padding to max_length needs max_length "
                                      "(the file sets none)");
    }
    r->pad_id = OPT(o, pad_id, -1);
    r->pad_id = r->pad_id >= 0 ? r->pad_id : t->pad_id;
    r->pad_type_id = OPT(o, pad_type_id, -1);
    r->pad_type_id = r->pad_type_id >= 0 ? r->pad_type_id : t->pad_type_id;
    return PTM_OK;
}

static ptm_status on_norm_piece(void *ctx, size_t start, size_t end, int32_t id)
{
    struct work *w = ctx;
    return ptm__tok_words_push(&w->s.words, w->base + start, end - start, id);
}

/* A piece of the raw text: an added token, or text to normalize and split again. */
static ptm_status on_raw_piece(void *ctx, size_t start, size_t end, int32_t id)
{
    struct work *w = ctx;
    struct ptm__tok_scratch *s = &w->s;
    if (id >= 0) {
        return ptm__tok_words_push(&s->words, 0, 0, id);
    }
    s->norm.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->norm, end - start);
    if (st != PTM_OK) {
        return st;
    }
    memcpy(s->norm.v, s->text.v + start, (end - start) * sizeof *s->norm.v);
    s->norm.n = end - start;
    if (w->t->norm != NULL) {
        st = w->t->norm->ops->normalize(w->t->norm, s, &s->norm);
    }
    if (st == PTM_OK) {
        st = ptm__tok_cps_reserve(&s->arena, s->norm.n);
    }
    if (st != PTM_OK) {
        return st;
    }
    w->base = s->arena.n;
    memcpy(s->arena.v + w->base, s->norm.v, s->norm.n * sizeof *s->norm.v);
    s->arena.n += s->norm.n;
    return ptm__tok_added_split(&w->t->added, 1, s->arena.v + w->base, s->norm.n, on_norm_piece, w);
}

/* One sequence's model tokens (no special tokens) into e. */
static ptm_status encode_seq(struct work *w, const char *text, size_t len, struct ptm__tok_enc *e)
{
    struct ptm__tok_scratch *s = &w->s;
    const ptm_tokenizer *t = w->t;
    s->text.n = s->arena.n = s->words.n = 0;
    e->n = 0;
    ptm_status st = ptm__tok_utf8_decode(text, len, &s->text);
    if (st == PTM_OK) {
        st = ptm__tok_added_split(&t->added, 0, s->text.v, s->text.n, on_raw_piece, w);
    }
    if (st == PTM_OK && t->pre != NULL) {
        st = t->pre->ops->apply(t->pre, s);
    }
    for (size_t i = 0; i < s->words.n && st == PTM_OK; i++) {
        const struct ptm__tok_word *wd = &s->words.v[i];
        if (wd->id >= 0) {
            st = ptm__tok_enc_push(e, wd->id, 0, 0);
        } else if (wd->len > 0) {
            st = t->model->ops->tokenize(t->model, s, s->arena.v + wd->off, wd->len, e);
        }
    }
    return st;
}

static void truncate_to(struct ptm__tok_enc *e, size_t n, int left)
{
    if (n >= e->n) {
        return;
    }
    if (left) {
        size_t drop = e->n - n;
        memmove(e->ids, e->ids + drop, n * sizeof *e->ids);
        memmove(e->type_ids, e->type_ids + drop, n * sizeof *e->type_ids);
        memmove(e->special, e->special + drop, n * sizeof *e->special);
    }
    e->n = n;
}

/* HF utils::truncation::truncate_encodings (stride ignored: overflow is not kept). */
static ptm_status truncate(const struct resolved *r, size_t max, struct ptm__tok_enc *a,
                           struct ptm__tok_enc *b)
{
    size_t total = a->n + (b != NULL ? b->n : 0);
    if (max == 0) {
        truncate_to(a, 0, r->trunc_left);
        if (b != NULL) {
            truncate_to(b, 0, r->trunc_left);
        }
        return PTM_OK;
    }
    if (total <= max) {
        return PTM_OK;
    }
    size_t to_remove = total - max;
    if (r->trunc == PTM__TOK_TRUNC_LONGEST) {
        if (b == NULL) {
            truncate_to(a, max, r->trunc_left);
            return PTM_OK;
        }
        size_t n1 = a->n, n2 = b->n;
        int swap = n1 > n2;
        if (swap) {
            n1 = b->n;
            n2 = a->n;
        }
        n2 = n1 > max ? n1 : (n1 > max - n1 ? n1 : max - n1);
        if (n1 + n2 > max) {
            n1 = max / 2;
            n2 = n1 + max % 2;
        }
        truncate_to(a, swap ? n2 : n1, r->trunc_left);
        truncate_to(b, swap ? n1 : n2, r->trunc_left);
        return PTM_OK;
    }
    struct ptm__tok_enc *target = r->trunc == PTM__TOK_TRUNC_FIRST ? a : b;
    if (target == NULL) {
        return ptm__fail(PTM_E_INVAL, "truncation only_second needs a pair of sequences");
    }
    if (target->n <= to_remove) {
        return ptm__fail(PTM_E_INVAL, "truncation %s: the sequence has %zu tokens, %zu must go",
                         r->trunc == PTM__TOK_TRUNC_FIRST ? "only_first" : "only_second", target->n,
                         to_remove);
    }
    truncate_to(target, target->n - to_remove, r->trunc_left);
    return PTM_OK;
}

/* Encode text (and pair) into w->out, unpadded. */
static ptm_status encode_one(struct work *w, const struct resolved *r, const char *text, size_t len,
                             const char *pair, size_t pair_len)
{
    const ptm_tokenizer *t = w->t;
    ptm_status st = encode_seq(w, text, len, &w->a);
    if (st == PTM_OK && pair != NULL) {
        st = encode_seq(w, pair, pair_len, &w->b);
        /* HF encodes the second sequence with type id 1 before any post-processor runs, so a
         * pair keeps it even when no special tokens are added. */
        for (size_t i = 0; st == PTM_OK && i < w->b.n; i++) {
            w->b.type_ids[i] = 1;
        }
    }
    struct ptm__tok_enc *b = pair != NULL ? &w->b : NULL;
    if (st == PTM_OK && r->trunc) {
        size_t added =
            r->add_special && t->post != NULL ? t->post->ops->n_added(t->post, b != NULL) : 0;
        if (added > r->trunc_max) {
            return ptm__fail(PTM_E_INVAL,
                             "truncation: max_length %zu is less than the %zu "
                             "special tokens",
                             r->trunc_max, added);
        }
        st = truncate(r, r->trunc_max - added, &w->a, b);
    }
    w->out.n = 0;
    if (st == PTM_OK) {
        st = t->post != NULL ? t->post->ops->process(t->post, &w->a, b, r->add_special, &w->out)
                             : ptm__tok_post_default(&w->a, b, &w->out);
    }
    return st;
}

static size_t round_up(size_t n, size_t multiple)
{
    return multiple > 0 && n % multiple != 0 ? n + multiple - n % multiple : n;
}

/* Write e padded to len into the four rows (len elements each). */
static void write_row(const struct resolved *r, const struct ptm__tok_enc *e, size_t len,
                      int32_t *ids, int32_t *types, int32_t *attn, int32_t *special)
{
    size_t pad = len - e->n, at = r->pad_left ? pad : 0, p0 = r->pad_left ? 0 : e->n;
    if (e->n > 0) {
        memcpy(ids + at, e->ids, e->n * sizeof *ids);
        memcpy(types + at, e->type_ids, e->n * sizeof *types);
        memcpy(special + at, e->special, e->n * sizeof *special);
    }
    for (size_t i = 0; i < e->n; i++) {
        attn[at + i] = 1;
    }
    for (size_t i = p0; i < p0 + pad; i++) {
        ids[i] = r->pad_id;
        types[i] = r->pad_type_id;
        attn[i] = 0;
        special[i] = 1;
    }
}

PTM_API ptm_status ptm_tokenizer_encode(const ptm_tokenizer *t, const char *text, size_t len,
                                        const char *pair, size_t pair_len,
                                        const struct ptm_encode_opts *o, struct ptm_encoding **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (t == NULL || out == NULL || (text == NULL && len > 0)) {
        return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_encode: tokenizer, text and out must not be "
                                      "NULL");
    }
    struct resolved r;
    struct work w = {.t = t};
    ptm_status st = resolve(t, o, &r);
    if (st == PTM_OK) {
        st = encode_one(&w, &r, text != NULL ? text : "", len, pair, pair_len);
    }
    if (st != PTM_OK) {
        work_free(&w);
        return st;
    }
    size_t n = w.out.n;
    if (r.pad) {
        size_t target = round_up(r.pad == PTM_TOK_PAD_MAX_LENGTH ? r.pad_len : n, r.multiple);
        n = target > n ? target : n;
    }
    struct ptm_encoding *e = ptm__malloc(sizeof *e + 4 * (n ? n : 1) * sizeof(int32_t));
    if (e == NULL) {
        work_free(&w);
        return ptm__fail(PTM_E_NOMEM, "ptm_tokenizer_encode: out of memory for %zu tokens", n);
    }
    e->n = n;
    e->ids = (int32_t *)(e + 1);
    e->type_ids = e->ids + n;
    e->attention_mask = e->type_ids + n;
    e->special_tokens_mask = e->attention_mask + n;
    write_row(&r, &w.out, n, e->ids, e->type_ids, e->attention_mask, e->special_tokens_mask);
    work_free(&w);
    *out = e;
    return PTM_OK;
}

PTM_API void ptm_encoding_free(struct ptm_encoding *e)
{
    ptm__free(e);
}

/* Every row encoded and kept back to back in all (row i: all[off[i] .. off[i + 1])). */
static ptm_status encode_rows(struct work *w, const struct resolved *r, const char *const *texts,
                              const char *const *pairs, size_t n, struct ptm__tok_enc *all,
                              size_t *off)
{
    ptm_status st = PTM_OK;
    off[0] = 0;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        if (texts[i] == NULL || (pairs != NULL && pairs[i] == NULL)) {
            return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_encode_batch: text %zu is NULL", i);
        }
        st = encode_one(w, r, texts[i], strlen(texts[i]), pairs != NULL ? pairs[i] : NULL,
                        pairs != NULL ? strlen(pairs[i]) : 0);
        for (size_t k = 0; k < w->out.n && st == PTM_OK; k++) {
            st = ptm__tok_enc_push(all, w->out.ids[k], w->out.type_ids[k], w->out.special[k]);
        }
        off[i + 1] = all->n;
        if (st != PTM_OK) {
            char row[64];
            snprintf(row, sizeof row, "ptm_tokenizer_encode_batch: row %zu", i);
            ptm__error_prefix(row);
        }
    }
    return st;
}

static ptm_status batch_build(const struct resolved *r, const struct ptm__tok_enc *all,
                              const size_t *off, size_t n, struct ptm_batch_encoding **out)
{
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        longest = off[i + 1] - off[i] > longest ? off[i + 1] - off[i] : longest;
    }
    size_t len = round_up(r->pad == PTM_TOK_PAD_MAX_LENGTH ? r->pad_len : longest, r->multiple);
    len = len > longest ? len : longest; /* a rectangle must hold every row */
    if (n > 0 && len > SIZE_MAX / 16 / n) {
        return ptm__fail(PTM_E_NOMEM, "ptm_tokenizer_encode_batch: %zu x %zu is too large", n, len);
    }
    size_t cells = n * len;
    struct ptm_batch_encoding *b = ptm__malloc(sizeof *b + 4 * (cells ? cells : 1) * 4);
    if (b == NULL) {
        return ptm__fail(PTM_E_NOMEM, "ptm_tokenizer_encode_batch: out of memory for %zu x %zu", n,
                         len);
    }
    b->n_seq = n;
    b->seq_len = len;
    b->ids = (int32_t *)(b + 1);
    b->type_ids = b->ids + cells;
    b->attention_mask = b->type_ids + cells;
    b->special_tokens_mask = b->attention_mask + cells;
    for (size_t i = 0; i < n; i++) {
        struct ptm__tok_enc row = {all->ids + off[i], all->type_ids + off[i], all->special + off[i],
                                   off[i + 1] - off[i], 0};
        write_row(r, &row, len, b->ids + i * len, b->type_ids + i * len,
                  b->attention_mask + i * len, b->special_tokens_mask + i * len);
    }
    *out = b;
    return PTM_OK;
}

PTM_API ptm_status ptm_tokenizer_encode_batch(const ptm_tokenizer *t, const char *const *texts,
                                              const char *const *pairs, size_t n,
                                              const struct ptm_encode_opts *o,
                                              struct ptm_batch_encoding **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (t == NULL || out == NULL || (texts == NULL && n > 0)) {
        return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_encode_batch: tokenizer, texts and out must "
                                      "not be NULL");
    }
    struct resolved r;
    struct work w = {.t = t};
    struct ptm__tok_enc all = {0};
    size_t *off = ptm__malloc((n + 1) * sizeof *off);
    ptm_status st = off != NULL ? resolve(t, o, &r)
                                : ptm__fail(PTM_E_NOMEM,
                                            "ptm_tokenizer_encode_batch: out of "
                                            "memory for %zu rows",
                                            n);
    if (st == PTM_OK) {
        st = encode_rows(&w, &r, texts, pairs, n, &all, off);
    }
    if (st == PTM_OK) {
        st = batch_build(&r, &all, off, n, out);
    }
    work_free(&w);
    ptm__free(all.ids);
    ptm__free(all.type_ids);
    ptm__free(all.special);
    ptm__free(off);
    return st;
}

PTM_API void ptm_batch_encoding_free(struct ptm_batch_encoding *b)
{
    ptm__free(b);
}
