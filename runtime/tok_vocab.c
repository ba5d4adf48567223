/*
 * tok_vocab.c - the token string <-> id map shared by models and the added vocabulary: an
 * array indexed by id, and an open-addressing hash table (FNV-1a, linear probing, load
 * factor <= 1/2) that finds a token from (bytes, length) without needing a NUL, so the
 * WordPiece search can probe substrings in place. Built once at load, read-only after.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

ptm_status ptm__tok_vocab_init(struct ptm__tok_vocab *v, size_t n_ids, size_t n_tokens)
{
    memset(v, 0, sizeof *v);
    size_t n_slots = 16;
    while (n_slots < 2 * n_tokens) {
        n_slots *= 2;
    }
    v->tokens = ptm__calloc(n_ids ? n_ids : 1, sizeof *v->tokens);
    v->lens = ptm__calloc(n_ids ? n_ids : 1, sizeof *v->lens);
    v->slots = ptm__calloc(n_slots, sizeof *v->slots);
    if (v->tokens == NULL || v->lens == NULL || v->slots == NULL) {
        ptm__tok_vocab_free(v);
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for a vocab of %zu tokens",
                         n_tokens);
    }
    v->n_ids = n_ids;
    v->slot_mask = n_slots - 1;
    return PTM_OK;
}

/* Slot holding tok, or the empty slot where it would go. */
static size_t probe(const struct ptm__tok_vocab *v, const char *tok, size_t len)
{
    size_t i = (size_t)hash_bytes(tok, len) & v->slot_mask;
    for (;;) {
        uint32_t s = v->slots[i];
        if (s == 0) {
            return i;
        }
        size_t id = s - 1;
        if (v->lens[id] == len && memcmp(v->tokens[id], tok, len) == 0) {
            return i;
        }
        i = (i + 1) & v->slot_mask;
    }
}

/* Returns PTM_E_EXISTS (without a message) for a duplicate id or token; callers say which. */
ptm_status ptm__tok_vocab_add(struct ptm__tok_vocab *v, const char *tok, size_t len, int32_t id)
{
    if (id < 0 || (size_t)id >= v->n_ids || v->tokens[id] != NULL) {
        return PTM_E_EXISTS;
    }
    size_t i = probe(v, tok, len);
    if (v->slots[i] != 0) {
        return PTM_E_EXISTS;
    }
    char *copy = ptm__strndup(tok, len);
    if (copy == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for a vocab entry");
    }
    v->tokens[id] = copy;
    v->lens[id] = len;
    v->slots[i] = (uint32_t)id + 1;
    return PTM_OK;
}

int32_t ptm__tok_vocab_find(const struct ptm__tok_vocab *v, const char *tok, size_t len)
{
    if (v->slots == NULL) {
        return -1;
    }
    uint32_t s = v->slots[probe(v, tok, len)];
    return s == 0 ? -1 : (int32_t)(s - 1);
}

void ptm__tok_vocab_free(struct ptm__tok_vocab *v)
{
    if (v->tokens != NULL) {
        for (size_t i = 0; i < v->n_ids; i++) {
            ptm__free(v->tokens[i]);
        }
    }
    ptm__free(v->tokens);
    ptm__free(v->lens);
    ptm__free(v->slots);
    memset(v, 0, sizeof *v);
}
