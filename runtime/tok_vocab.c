/*
 * tok_vocab.c - the token string <-> id map shared by models and the added vocabulary: an
 * array indexed by id, and an open-addressing hash table (FNV-1a, linear probing, load
 * factor <= 1/2) that finds a token from (bytes, length) without needing a NUL, so the
 * WordPiece search can probe substrings in place. Built once at load (from a {"token": id}
 * object for WordPiece and BPE), read-only after.
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

/* model.vocab: {"token": id, ...}; ids need not be dense but must be distinct. */
ptm_status ptm__tok_vocab_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_vocab *v)
{
    json_object *obj;
    ptm_status st = ptm__tok_jmember(c, j, path, "vocab", json_type_object, 1, &obj);
    if (st != PTM_OK) {
        return st;
    }
    int64_t max_id = -1;
    size_t n = 0;
    json_object_object_foreach(obj, key, val)
    {
        if (!json_object_is_type(val, json_type_int)) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.vocab[\"%s\"]: expected integer, got %s",
                             c->file, path, key, ptm__tok_json_type_name(val));
        }
        int64_t id = json_object_get_int64(val);
        if (id < 0 || id >= PTM__TOK_MAX_ID) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.vocab[\"%s\"]: id %lld out of range [0, %d)",
                             c->file, path, key, (long long)id, PTM__TOK_MAX_ID);
        }
        max_id = id > max_id ? id : max_id;
        n++;
    }
    st = ptm__tok_vocab_init(v, (size_t)(max_id + 1), n);
    json_object_object_foreach(obj, k2, v2)
    {
        if (st != PTM_OK) {
            break;
        }
        int32_t id = (int32_t)json_object_get_int64(v2);
        /* json-c cuts object keys at NUL, so "\u0000" arrives as ""; an empty token can never
         * match a word, so reading "" as the one-byte "\0" loses nothing and keeps that id. */
        size_t len = k2[0] != '\0' ? strlen(k2) : 1;
        st = ptm__tok_vocab_add(v, k2, len, id);
        if (st == PTM_E_EXISTS) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s.vocab[\"%s\"]: id %d used twice", c->file, path,
                           k2, (int)id);
        }
    }
    return st;
}
