/*
 * tok_wordpiece.c - the WordPiece model of tokenizer.json ("model": {"type": "WordPiece"}):
 * its vocab and HF's greedy longest-match-first split of one word, where pieces after the
 * first carry continuing_subword_prefix, a word with no full split becomes unk_token, and a
 * word longer than max_input_chars_per_word characters is unk_token outright. Added tokens
 * and special tokens are not its business (tok_added.c, tok_post.c).
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

struct wordpiece {
    struct ptm__tok_model base;
    struct ptm__tok_vocab vocab;
    char *prefix;
    size_t prefix_len;
    char *unk;
    int32_t unk_id; /* -1: unk_token not in the vocab; an error only if a word needs it */
    size_t max_chars;
    size_t max_token_bytes; /* longer candidates cannot be in the vocab: skip their lookups */
};

static ptm_status push_unk(const struct wordpiece *wp, struct ptm__tok_enc *out)
{
    if (wp->unk_id < 0) {
        return ptm__fail(PTM_E_FORMAT, "tokenizer: WordPiece unk_token \"%s\" is not in the vocab",
                         wp->unk);
    }
    return ptm__tok_enc_push(out, wp->unk_id, 0, 0);
}

static ptm_status wp_tokenize(const struct ptm__tok_model *base, struct ptm__tok_scratch *s,
                              const uint32_t *cps, size_t n, struct ptm__tok_enc *out)
{
    const struct wordpiece *wp = (const struct wordpiece *)base;
    if (n > wp->max_chars) {
        return push_unk(wp, out);
    }
    /* bytes: the word (B bytes), then room for prefix + the rest of the word. */
    s->bytes.n = 0;
    ptm_status st = ptm__tok_utf8_encode(cps, n, &s->bytes);
    size_t nb = s->bytes.n;
    if (st == PTM_OK) {
        st = ptm__tok_bytes_reserve(&s->bytes, nb + wp->prefix_len);
    }
    if (st == PTM_OK && n + 1 > s->seg_cap) {
        size_t *p = ptm__realloc(s->seg, (n + 1) * sizeof *p);
        if (p == NULL) {
            return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for a %zu-char word", n);
        }
        s->seg = p;
        s->seg_cap = n + 1;
    }
    if (st != PTM_OK) {
        return st;
    }
    size_t *at = s->seg; /* at[i]: byte offset of char i */
    at[0] = 0;
    for (size_t i = 0; i < n; i++) {
        at[i + 1] = at[i] + ptm__tok_utf8_len(cps[i]);
    }
    const char *word = s->bytes.v;
    char *cand = s->bytes.v + nb;
    size_t first_id = out->n;
    for (size_t start = 0; start < n;) {
        const char *key = word + at[start];
        size_t pre = 0;
        if (start > 0) {
            memcpy(cand, wp->prefix, wp->prefix_len);
            memcpy(cand + wp->prefix_len, word + at[start], nb - at[start]);
            key = cand;
            pre = wp->prefix_len;
        }
        size_t end = n;
        int32_t id = -1;
        while (end > start && pre + at[end] - at[start] > wp->max_token_bytes) {
            end--;
        }
        for (; end > start; end--) {
            id = ptm__tok_vocab_find(&wp->vocab, key, pre + at[end] - at[start]);
            if (id >= 0) {
                break;
            }
        }
        if (id < 0) {
            out->n = first_id; /* any failed piece makes the whole word unknown */
            return push_unk(wp, out);
        }
        st = ptm__tok_enc_push(out, id, 0, 0);
        if (st != PTM_OK) {
            return st;
        }
        start = end;
    }
    return PTM_OK;
}

static const struct ptm__tok_vocab *wp_vocab(const struct ptm__tok_model *base)
{
    return &((const struct wordpiece *)base)->vocab;
}

static void wp_destroy(struct ptm__tok_model *base)
{
    struct wordpiece *wp = (struct wordpiece *)base;
    ptm__tok_vocab_free(&wp->vocab);
    ptm__free(wp->prefix);
    ptm__free(wp->unk);
    ptm__free(wp);
}

static const struct ptm__tok_model_ops wp_ops = {wp_tokenize, wp_vocab, wp_destroy};

static ptm_status load_fields(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                              struct wordpiece *wp)
{
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, j, path, "unk_token", json_type_string, 0, &m);
    if (st != PTM_OK) {
        return st;
    }
    wp->unk = ptm__strdup(m != NULL ? json_object_get_string(m) : "[UNK]");
    st = ptm__tok_jmember(c, j, path, "continuing_subword_prefix", json_type_string, 0, &m);
    if (st != PTM_OK) {
        return st;
    }
    wp->prefix = ptm__strdup(m != NULL ? json_object_get_string(m) : "##");
    if (wp->unk == NULL || wp->prefix == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    wp->prefix_len = strlen(wp->prefix);
    int64_t max_chars;
    st = ptm__tok_jint(c, j, path, "max_input_chars_per_word", 0, INT64_MAX, 100, &max_chars);
    wp->max_chars = (size_t)max_chars;
    return st;
}

ptm_status ptm__tok_wordpiece_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                        const char *path, struct ptm__tok_model **out)
{
    *out = NULL;
    struct wordpiece *wp = ptm__calloc(1, sizeof *wp);
    if (wp == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    wp->base.ops = &wp_ops;
    ptm_status st = load_fields(c, j, path, wp);
    if (st == PTM_OK) {
        st = ptm__tok_vocab_from_json(c, j, path, &wp->vocab);
    }
    if (st != PTM_OK) {
        wp_destroy(&wp->base);
        return st;
    }
    wp->unk_id = ptm__tok_vocab_find(&wp->vocab, wp->unk, strlen(wp->unk));
    for (size_t i = 0; i < wp->vocab.n_ids; i++) {
        if (wp->vocab.lens[i] > wp->max_token_bytes) {
            wp->max_token_bytes = wp->vocab.lens[i];
        }
    }
    *out = &wp->base;
    return PTM_OK;
}
