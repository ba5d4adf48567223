/*
 * tok_bpe.c - the BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, merges
 * (written "a b" or ["a", "b"]) ranked by position, and HF's tokenization of one word: each
 * character becomes a symbol (with continuing_subword_prefix after the first and
 * end_of_word_suffix on the last; unknown ones become <0xXX> byte tokens under byte_fallback,
 * else unk_token, fused when fuse_unk), then the pair of lowest rank, leftmost first, is merged
 * until none is left, with a priority queue over adjacent pairs as HF's Word::merge_all does.
 * ignore_merges takes a word that is itself in the vocab whole. BPE-dropout is refused: it is
 * random. Per-call state lives in the scratch (s->model), so the model is immutable.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

struct merge_slot {
    uint64_t key; /* (left id + 1) << 32 | (right id + 1); 0 = empty */
    uint32_t rank;
    int32_t new_id;
};

struct bpe {
    struct ptm__tok_model base;
    struct ptm__tok_vocab vocab;
    struct merge_slot *merges;
    size_t merge_mask;
    char *unk, *prefix, *suffix; /* NULL when absent */
    size_t prefix_len, suffix_len;
    int32_t unk_id; /* -1: no unk_token, or not in the vocab (an error once a word needs it) */
    int32_t byte_ids[256];
    int fuse_unk, byte_fallback, ignore_merges;
};

struct symbol {
    int32_t id, prev, next;
    uint32_t len; /* 0: merged into its left neighbour */
};
struct qitem {
    uint32_t rank, pos;
    int32_t new_id;
};

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
}

static size_t slot_of(const struct bpe *m, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & m->merge_mask;
    while (m->merges[i].key != 0 && m->merges[i].key != key) {
        i = (i + 1) & m->merge_mask;
    }
    return i;
}

static const struct merge_slot *find_merge(const struct bpe *m, int32_t a, int32_t b)
{
    if (m->merges == NULL) {
        return NULL;
    }
    const struct merge_slot *e = &m->merges[slot_of(m, pair_key(a, b))];
    return e->key != 0 ? e : NULL;
}

/* ---- the merge loop (HF Word::merge_all) ---- */

static int q_less(const struct qitem *a, const struct qitem *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void q_push(struct qitem *q, size_t *n, struct qitem it)
{
    size_t i = (*n)++;
    while (i > 0 && q_less(&it, &q[(i - 1) / 2])) {
        q[i] = q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q[i] = it;
}

static struct qitem q_pop(struct qitem *q, size_t *n)
{
    struct qitem top = q[0], last = q[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) {
            break;
        }
        if (c + 1 < *n && q_less(&q[c + 1], &q[c])) {
            c++;
        }
        if (!q_less(&q[c], &last)) {
            break;
        }
        q[i] = q[c];
        i = c;
    }
    if (*n > 0) {
        q[i] = last;
    }
    return top;
}

static void push_pair(const struct bpe *m, struct qitem *q, size_t *nq, const struct symbol *sym,
                      int32_t pos)
{
    const struct merge_slot *e = find_merge(m, sym[pos].id, sym[sym[pos].next].id);
    if (e != NULL) {
        q_push(q, nq, (struct qitem){e->rank, (uint32_t)pos, e->new_id});
    }
}

/* Every merge adds at most two queue entries, so 3n entries always suffice. */
static void merge_all(const struct bpe *m, struct symbol *sym, size_t n, struct qitem *q)
{
    size_t nq = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        push_pair(m, q, &nq, sym, (int32_t)i);
    }
    while (nq > 0) {
        struct qitem top = q_pop(q, &nq);
        struct symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) {
            continue;
        }
        struct symbol right = sym[cur->next];
        const struct merge_slot *e = find_merge(m, cur->id, right.id);
        if (e == NULL || e->new_id != top.new_id) {
            continue; /* stale: a neighbour changed since it was queued */
        }
        sym[cur->next].len = 0;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next >= 0) {
            sym[right.next].prev = (int32_t)top.pos;
        }
        if (cur->prev >= 0) {
            push_pair(m, q, &nq, sym, cur->prev);
        }
        if (cur->next >= 0) {
            push_pair(m, q, &nq, sym, (int32_t)top.pos);
        }
    }
}

/* ---- initial symbols (HF BPE::merge_word) ---- */

struct word_state {
    struct symbol *sym;
    size_t n;
    int32_t unk_id; /* pending unknown run, -1 none */
    uint32_t unk_len;
};

static void add_symbol(struct word_state *w, int32_t id, uint32_t len)
{
    struct symbol *s = &w->sym[w->n];
    s->id = id;
    s->len = len;
    s->prev = (int32_t)w->n - 1;
    s->next = (int32_t)w->n + 1;
    w->n++;
}

static ptm_status unk_id_or_fail(const struct bpe *m, int32_t *id)
{
    if (m->unk_id < 0) {
        return ptm__fail(PTM_E_FORMAT, "tokenizer: BPE unk_token \"%s\" is not in the vocab",
                         m->unk);
    }
    *id = m->unk_id;
    return PTM_OK;
}

/* One character: key[0..klen) is its vocab form (with prefix/suffix), blen its UTF-8 bytes. */
static ptm_status add_char(const struct bpe *m, struct word_state *w, const char *key, size_t klen,
                           uint32_t blen)
{
    int32_t id = ptm__tok_vocab_find(&m->vocab, key, klen);
    if (id >= 0) {
        if (w->unk_id >= 0) {
            add_symbol(w, w->unk_id, w->unk_len);
            w->unk_id = -1;
        }
        add_symbol(w, id, blen);
        return PTM_OK;
    }
    if (m->byte_fallback) {
        size_t k = 0;
        while (k < klen && m->byte_ids[(unsigned char)key[k]] >= 0) {
            k++;
        }
        if (k == klen) {
            /* HF adds the bytes without flushing a pending unknown run first. */
            for (k = 0; k < klen; k++) {
                add_symbol(w, m->byte_ids[(unsigned char)key[k]], 1);
            }
            return PTM_OK;
        }
    }
    if (m->unk == NULL) {
        return PTM_OK;
    }
    if (w->unk_id >= 0 && m->fuse_unk) {
        w->unk_len += blen;
        return PTM_OK;
    }
    if (w->unk_id >= 0) {
        add_symbol(w, w->unk_id, w->unk_len);
    }
    w->unk_len = blen;
    return unk_id_or_fail(m, &w->unk_id);
}

static ptm_status bpe_tokenize(const struct ptm__tok_model *base, struct ptm__tok_scratch *s,
                               const uint32_t *cps, size_t n, struct ptm__tok_enc *out)
{
    const struct bpe *m = (const struct bpe *)base;
    s->bytes.n = 0;
    ptm_status st = ptm__tok_utf8_encode(cps, n, &s->bytes);
    size_t nb = s->bytes.n;
    if (st == PTM_OK) {
        st = ptm__tok_bytes_reserve(&s->bytes, m->prefix_len + 4 + m->suffix_len);
    }
    if (st != PTM_OK) {
        return st;
    }
    if (m->ignore_merges) {
        int32_t id = ptm__tok_vocab_find(&m->vocab, s->bytes.v, nb);
        if (id >= 0) {
            return ptm__tok_enc_push(out, id, 0, 0);
        }
    }
    /* At most one symbol per byte of a character (+ prefix/suffix under byte_fallback). */
    size_t max_sym = nb * (1 + m->prefix_len + m->suffix_len) + 1;
    st = ptm__tok_scratch_model(s, max_sym * (sizeof(struct symbol) + 3 * sizeof(struct qitem)));
    if (st != PTM_OK) {
        return st;
    }
    struct word_state w = {s->model, 0, -1, 0};
    char *key = s->bytes.v + nb;
    for (size_t i = 0, at = 0; i < n && st == PTM_OK; i++) {
        size_t blen = ptm__tok_utf8_len(cps[i]), k = 0;
        if (i > 0 && m->prefix != NULL) {
            memcpy(key, m->prefix, m->prefix_len);
            k = m->prefix_len;
        }
        memcpy(key + k, s->bytes.v + at, blen);
        k += blen;
        if (i + 1 == n && m->suffix != NULL) {
            memcpy(key + k, m->suffix, m->suffix_len);
            k += m->suffix_len;
        }
        st = add_char(m, &w, key, k, (uint32_t)blen);
        at += blen;
    }
    if (st == PTM_OK && w.unk_id >= 0) {
        add_symbol(&w, w.unk_id, w.unk_len);
    }
    if (st != PTM_OK || w.n == 0) {
        return st;
    }
    w.sym[w.n - 1].next = -1;
    merge_all(m, w.sym, w.n, (struct qitem *)(w.sym + max_sym));
    for (size_t i = 0; i < w.n && st == PTM_OK; i++) {
        if (w.sym[i].len != 0) {
            st = ptm__tok_enc_push(out, w.sym[i].id, 0, 0);
        }
    }
    return st;
}

static const struct ptm__tok_vocab *bpe_vocab(const struct ptm__tok_model *base)
{
    return &((const struct bpe *)base)->vocab;
}

static void bpe_destroy(struct ptm__tok_model *base)
{
    struct bpe *m = (struct bpe *)base;
    ptm__tok_vocab_free(&m->vocab);
    ptm__free(m->merges);
    ptm__free(m->unk);
    ptm__free(m->prefix);
    ptm__free(m->suffix);
    ptm__free(m);
}

static const struct ptm__tok_model_ops bpe_ops = {bpe_tokenize, bpe_vocab, bpe_destroy};

/* ---- loading ---- */

/* merges[i] as its two halves: "a b" (exactly one space) or ["a", "b"]. */
static ptm_status merge_parts(const struct ptm__tok_jctx *c, const char *path, size_t i,
                              json_object *e, const char **a, size_t *na, const char **b,
                              size_t *nb)
{
    if (json_object_is_type(e, json_type_string)) {
        const char *s = json_object_get_string(e), *sp = strchr(s, ' ');
        if (sp == NULL || strchr(sp + 1, ' ') != NULL) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.merges[%zu]: expected \"a b\", got \"%s\"",
                             c->file, path, i, s);
        }
        *a = s;
        *na = (size_t)(sp - s);
        *b = sp + 1;
        *nb = strlen(sp + 1);
        return PTM_OK;
    }
    json_object *x = json_object_array_get_idx(e, 0), *y = json_object_array_get_idx(e, 1);
    if (!json_object_is_type(e, json_type_array) || json_object_array_length(e) != 2 ||
        !json_object_is_type(x, json_type_string) || !json_object_is_type(y, json_type_string)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]",
                         c->file, path, i);
    }
    *a = json_object_get_string(x);
    *na = (size_t)json_object_get_string_len(x);
    *b = json_object_get_string(y);
    *nb = (size_t)json_object_get_string_len(y);
    return PTM_OK;
}

static ptm_status merge_ids(const struct ptm__tok_jctx *c, const char *path, size_t i,
                            const struct bpe *m, json_object *e, struct merge_slot *out)
{
    const char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ptm_status st = merge_parts(c, path, i, e, &a, &na, &b, &nb);
    if (st != PTM_OK) {
        return st;
    }
    int32_t ia = ptm__tok_vocab_find(&m->vocab, a, na), ib = ptm__tok_vocab_find(&m->vocab, b, nb);
    size_t cut = nb >= m->prefix_len && m->prefix != NULL ? m->prefix_len : 0;
    char *joined = ptm__malloc(na + nb + 1);
    if (joined == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s.merges: out of memory", c->file, path);
    }
    memcpy(joined, a, na);
    memcpy(joined + na, b + cut, nb - cut);
    int32_t inew = ptm__tok_vocab_find(&m->vocab, joined, na + nb - cut);
    if (ia < 0 || ib < 0 || inew < 0) {
        st = ptm__fail(PTM_E_FORMAT, "%s: %s.merges[%zu]: token \"%.*s\" is not in the vocab",
                       c->file, path, i,
                       ia < 0   ? (int)na
                       : ib < 0 ? (int)nb
                                : (int)(na + nb - cut),
                       ia < 0   ? a
                       : ib < 0 ? b
                                : joined);
    }
    ptm__free(joined);
    if (st != PTM_OK) {
        return st;
    }
    out->key = pair_key(ia, ib);
    out->rank = (uint32_t)i;
    out->new_id = inew;
    return PTM_OK;
}

static ptm_status load_merges(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                              struct bpe *m)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "merges", json_type_array, 0, &arr);
    size_t n = arr != NULL ? json_object_array_length(arr) : 0, slots = 16;
    while (slots < 2 * n) {
        slots *= 2;
    }
    if (st != PTM_OK) {
        return st;
    }
    m->merges = ptm__calloc(slots, sizeof *m->merges);
    if (m->merges == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s.merges: out of memory for %zu merges", c->file, path,
                         n);
    }
    m->merge_mask = slots - 1;
    size_t rank = 0;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        if (json_object_is_type(e, json_type_string) &&
            strncmp(json_object_get_string(e), "#version", 8) == 0) {
            continue;
        }
        struct merge_slot ms;
        st = merge_ids(c, path, rank, m, e, &ms);
        if (st == PTM_OK) {
            m->merges[slot_of(m, ms.key)] = ms; /* a repeated pair: the later one wins, as in HF */
            rank++;
        }
    }
    return st;
}

static ptm_status opt_string(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                             const char *key, char **out, size_t *len)
{
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, j, path, key, json_type_string, 0, &m);
    if (st != PTM_OK || m == NULL) {
        return st;
    }
    *out = ptm__strdup(json_object_get_string(m));
    if (*out == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    if (len != NULL) {
        *len = strlen(*out);
    }
    return PTM_OK;
}

static ptm_status load_fields(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                              struct bpe *m)
{
    json_object *dropout = NULL;
    ptm_status st = PTM_OK;
    if (json_object_object_get_ex(j, "dropout", &dropout) && dropout != NULL) {
        if (!json_object_is_type(dropout, json_type_double) &&
            !json_object_is_type(dropout, json_type_int)) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.dropout: expected number or null, got %s",
                             c->file, path, ptm__tok_json_type_name(dropout));
        }
        if (json_object_get_double(dropout) != 0.0) {
            return ptm__fail(PTM_E_UNSUPPORTED,
                             "%s: %s.dropout: BPE-dropout (%g) is random; only null is "
                             "supported",
                             c->file, path, json_object_get_double(dropout));
        }
    }
    if (st == PTM_OK) {
        st = opt_string(c, j, path, "unk_token", &m->unk, NULL);
    }
    if (st == PTM_OK) {
        st = opt_string(c, j, path, "continuing_subword_prefix", &m->prefix, &m->prefix_len);
    }
    if (st == PTM_OK) {
        st = opt_string(c, j, path, "end_of_word_suffix", &m->suffix, &m->suffix_len);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "fuse_unk", 0, &m->fuse_unk);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "byte_fallback", 0, &m->byte_fallback);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "ignore_merges", 0, &m->ignore_merges);
    }
    return st;
}

ptm_status ptm__tok_bpe_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                  struct ptm__tok_model **out)
{
    *out = NULL;
    struct bpe *m = ptm__calloc(1, sizeof *m);
    if (m == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    m->base.ops = &bpe_ops;
    ptm_status st = load_fields(c, j, path, m);
    if (st == PTM_OK) {
        st = ptm__tok_vocab_from_json(c, j, path, &m->vocab);
    }
    if (st == PTM_OK) {
        st = load_merges(c, j, path, m);
    }
    if (st != PTM_OK) {
        bpe_destroy(&m->base);
        return st;
    }
    m->unk_id = m->unk != NULL ? ptm__tok_vocab_find(&m->vocab, m->unk, strlen(m->unk)) : -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = ptm__tok_vocab_find(&m->vocab, name, 6);
    }
    *out = &m->base;
    return PTM_OK;
}
