/*
 * tok_precompiled.c - the Precompiled normalizer of tokenizer.json: SentencePiece's compiled
 * normalization rules ("precompiled_charsmap", base64), a darts-clone double-array trie over
 * UTF-8 whose values index a blob of NUL-terminated replacement strings. Applied as HF does
 * (spm_precompiled + tokenizers' Precompiled::normalize): per extended grapheme cluster
 * (utf8proc's segmentation), a cluster under 6 bytes whose UTF-8 has a key as prefix becomes
 * that key's replacement, the shortest key winning and the rest of the cluster dropping, as
 * HF's does; otherwise each character is looked up alone and kept when it has no key. Lookups
 * stay in bounds on any trie, where HF would panic; a blob that is not UTF-8 loads (HF
 * refuses it) and its bad bytes come out as U+FFFD.
 */
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

struct precompiled {
    struct ptm__tok_normalizer base;
    uint32_t *units; /* the double array */
    size_t n_units;
    char *blob; /* replacement strings, NUL separated, valid UTF-8 */
    size_t blob_len;
};

/* darts-clone unit fields */
static int has_leaf(uint32_t u)
{
    return (u >> 8) & 1;
}
static uint32_t unit_value(uint32_t u)
{
    return u & 0x7FFFFFFFu;
}
static uint32_t unit_label(uint32_t u)
{
    return u & (0x80000000u | 0xFFu);
}
static size_t unit_offset(uint32_t u)
{
    return (size_t)((u >> 10) << ((u & (1u << 9)) >> 6));
}

/* The replacement for the shortest key that prefixes key[0..n), or NULL. */
static const char *lookup(const struct precompiled *p, const unsigned char *key, size_t n,
                          size_t *len)
{
    if (p->n_units == 0) {
        return NULL;
    }
    size_t pos = unit_offset(p->units[0]);
    for (size_t i = 0; i < n && key[i] != 0; i++) {
        pos ^= key[i];
        if (pos >= p->n_units) {
            return NULL;
        }
        uint32_t u = p->units[pos];
        if (unit_label(u) != key[i]) {
            return NULL;
        }
        pos ^= unit_offset(u);
        if (pos >= p->n_units) {
            return NULL;
        }
        if (has_leaf(u)) {
            size_t at = unit_value(p->units[pos]);
            if (at > p->blob_len) {
                return NULL;
            }
            size_t end = at;
            while (end < p->blob_len && p->blob[end] != '\0') {
                end++;
            }
            *len = end - at;
            return p->blob + at;
        }
    }
    return NULL;
}

static ptm_status append_utf8(struct ptm__tok_cps *out, const char *s, size_t n)
{
    return ptm__tok_utf8_decode(s, n, out);
}

/* One grapheme cps[0..n) into s->tmp. */
static ptm_status grapheme(const struct precompiled *p, struct ptm__tok_scratch *s,
                           const uint32_t *cps, size_t n)
{
    size_t len;
    s->bytes.n = 0;
    ptm_status st = ptm__tok_utf8_encode(cps, n, &s->bytes);
    if (st != PTM_OK) {
        return st;
    }
    const char *rep;
    if (s->bytes.n < 6 &&
        (rep = lookup(p, (const unsigned char *)s->bytes.v, s->bytes.n, &len)) != NULL) {
        return append_utf8(&s->tmp, rep, len);
    }
    for (size_t i = 0, at = 0; i < n && st == PTM_OK; i++) {
        size_t cl = ptm__tok_utf8_len(cps[i]);
        rep = lookup(p, (const unsigned char *)s->bytes.v + at, cl, &len);
        st = rep != NULL ? append_utf8(&s->tmp, rep, len) : ptm__tok_cps_push(&s->tmp, cps[i]);
        at += cl;
    }
    return st;
}

static ptm_status pc_normalize(const struct ptm__tok_normalizer *base, struct ptm__tok_scratch *s,
                               struct ptm__tok_cps *io)
{
    const struct precompiled *p = (const struct precompiled *)base;
    s->tmp.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->tmp, io->n);
    utf8proc_int32_t state = 0;
    size_t start = 0;
    for (size_t i = 1; i <= io->n && st == PTM_OK; i++) {
        if (i == io->n || utf8proc_grapheme_break_stateful((utf8proc_int32_t)io->v[i - 1],
                                                           (utf8proc_int32_t)io->v[i], &state)) {
            st = grapheme(p, s, io->v + start, i - start);
            start = i;
        }
    }
    if (st == PTM_OK) {
        struct ptm__tok_cps t = *io;
        *io = s->tmp;
        s->tmp = t;
    }
    return st;
}

static void pc_destroy(struct ptm__tok_normalizer *base)
{
    struct precompiled *p = (struct precompiled *)base;
    ptm__free(p->units);
    ptm__free(p->blob);
    ptm__free(p);
}

static const struct ptm__tok_normalizer_ops pc_ops = {pc_normalize, pc_destroy};

static int b64_value(char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

/* Standard base64 with padding into out (at least 3 * n / 4 bytes); -1 on a bad character. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=') {
            break;
        }
        int v = b64_value(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)k;
}

static ptm_status parse(const struct ptm__tok_jctx *c, const char *path, const unsigned char *b,
                        size_t n, struct precompiled *p)
{
    if (n < 4) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.precompiled_charsmap: %zu bytes, need at least 4",
                         c->file, path, n);
    }
    size_t trie_bytes = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
    if (trie_bytes / 4 * 4 > n - 4) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: %s.precompiled_charsmap: trie of %zu bytes exceeds the "
                         "%zu bytes given",
                         c->file, path, trie_bytes, n - 4);
    }
    p->n_units = trie_bytes / 4;
    p->units = ptm__malloc((p->n_units ? p->n_units : 1) * sizeof *p->units);
    size_t at = 4 + p->n_units * 4;
    p->blob_len = n - at;
    p->blob = ptm__malloc(p->blob_len + 1);
    if (p->units == NULL || p->blob == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    for (size_t i = 0; i < p->n_units; i++) {
        const unsigned char *u = b + 4 + 4 * i;
        p->units[i] =
            (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(p->blob, b + at, p->blob_len);
    p->blob[p->blob_len] = '\0';
    return PTM_OK;
}

ptm_status ptm__tok_precompiled_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                          const char *path, struct ptm__tok_normalizer **out)
{
    const char *b64;
    size_t len;
    *out = NULL;
    ptm_status st = ptm__tok_jstr(c, j, path, "precompiled_charsmap", &b64, &len);
    if (st != PTM_OK) {
        return st;
    }
    struct precompiled *p = ptm__calloc(1, sizeof *p);
    unsigned char *raw = ptm__malloc(len / 4 * 3 + 3);
    if (p == NULL || raw == NULL) {
        ptm__free(p);
        ptm__free(raw);
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &pc_ops;
    long n = b64_decode(b64, len, raw);
    if (n < 0) {
        st = ptm__fail(PTM_E_FORMAT, "%s: %s.precompiled_charsmap: invalid base64", c->file, path);
    } else {
        st = parse(c, path, raw, (size_t)n, p);
    }
    ptm__free(raw);
    if (st != PTM_OK) {
        pc_destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}
