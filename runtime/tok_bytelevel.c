/*
 * tok_bytelevel.c - GPT-2's byte-level alphabet (every byte stands for one printable code
 * point: bytes_to_unicode) and the two ByteLevel components built on it: the pre-tokenizer
 * (add_prefix_space, then optionally GPT-2's split regex with each match isolated, then every
 * byte of the UTF-8 text replaced by its stand-in) and the decoder (stand-ins back to bytes,
 * then UTF-8 with invalid sequences replaced, as Rust's from_utf8_lossy does). The ByteLevel
 * post-processor only trims offsets, which ptm does not produce; tok_post.c treats it as a
 * pass-through.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

/* GPT-2's pre-tokenization pattern, as HF's ByteLevel compiles it. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* bytes_to_unicode: printable Latin-1 bytes stand for themselves; the 68 others (0-32,
 * 127-160, 173) take 256, 257, ... in byte order. */
uint32_t ptm__tok_byte_char(unsigned char b)
{
    if (b <= 32) {
        return 256u + b;
    }
    if (b >= 127 && b <= 160) {
        return 256u + 33u + (b - 127u);
    }
    if (b == 173) {
        return 256u + 33u + 34u;
    }
    return b;
}

int ptm__tok_char_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) {
        return (int)cp;
    }
    if (cp >= 256 && cp < 256 + 33) {
        return (int)(cp - 256);
    }
    if (cp >= 256 + 33 && cp < 256 + 67) {
        return (int)(cp - 256 - 33 + 127);
    }
    return cp == 256 + 67 ? 173 : -1;
}

/* ---- pre-tokenizer ---- */

struct bl_pretok {
    struct ptm__tok_pretok base;
    int add_prefix_space;
    struct ptm__tok_regex *re; /* NULL: use_regex false */
};

/* Append the byte-level form of cps[0..n) to the arena as a new word. */
static ptm_status push_mapped(struct ptm__tok_scratch *s, const uint32_t *cps, size_t n)
{
    size_t start = s->arena.n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        uint32_t *o = s->arena.v + s->arena.n;
        if (c < 0x80) {
            o[0] = ptm__tok_byte_char((unsigned char)c);
            s->arena.n += 1;
        } else if (c < 0x800) {
            o[0] = ptm__tok_byte_char((unsigned char)(0xC0 | (c >> 6)));
            o[1] = ptm__tok_byte_char((unsigned char)(0x80 | (c & 0x3F)));
            s->arena.n += 2;
        } else if (c < 0x10000) {
            o[0] = ptm__tok_byte_char((unsigned char)(0xE0 | (c >> 12)));
            o[1] = ptm__tok_byte_char((unsigned char)(0x80 | ((c >> 6) & 0x3F)));
            o[2] = ptm__tok_byte_char((unsigned char)(0x80 | (c & 0x3F)));
            s->arena.n += 3;
        } else {
            o[0] = ptm__tok_byte_char((unsigned char)(0xF0 | (c >> 18)));
            o[1] = ptm__tok_byte_char((unsigned char)(0x80 | ((c >> 12) & 0x3F)));
            o[2] = ptm__tok_byte_char((unsigned char)(0x80 | ((c >> 6) & 0x3F)));
            o[3] = ptm__tok_byte_char((unsigned char)(0x80 | (c & 0x3F)));
            s->arena.n += 4;
        }
    }
    return ptm__tok_words_push(&s->words2, start, s->arena.n - start, -1);
}

static ptm_status bl_word(const void *ctx, struct ptm__tok_scratch *s,
                          const struct ptm__tok_word *w, size_t i)
{
    const struct bl_pretok *p = ctx;
    (void)i;
    if (w->len == 0) {
        return PTM_OK;
    }
    /* s->norm is free once normalization is over: it holds the word, maybe with a space. */
    int prefix = p->add_prefix_space && s->arena.v[w->off] != ' ';
    s->norm.n = 0;
    ptm_status st = ptm__tok_cps_reserve(&s->norm, w->len + 1);
    if (st == PTM_OK) {
        st = ptm__tok_cps_reserve(&s->arena, 4 * (w->len + 1));
    }
    if (st != PTM_OK) {
        return st;
    }
    if (prefix) {
        s->norm.v[s->norm.n++] = ' ';
    }
    memcpy(s->norm.v + s->norm.n, s->arena.v + w->off, w->len * sizeof *s->norm.v);
    s->norm.n += w->len;
    if (p->re == NULL) {
        return push_mapped(s, s->norm.v, s->norm.n);
    }
    size_t n;
    st = ptm__tok_regex_segments(p->re, s, s->norm.v, s->norm.n, 0, &n);
    for (size_t k = 0; k < n && st == PTM_OK; k++) {
        size_t a = s->seg[3 * k], b = s->seg[3 * k + 1];
        if (b > a) {
            st = push_mapped(s, s->norm.v + a, b - a);
        }
    }
    return st;
}

static ptm_status bl_apply(const struct ptm__tok_pretok *base, struct ptm__tok_scratch *s)
{
    return ptm__tok_pretok_map(base, s, bl_word);
}

static void bl_destroy(struct ptm__tok_pretok *base)
{
    struct bl_pretok *p = (struct bl_pretok *)base;
    ptm__tok_regex_free(p->re);
    ptm__free(p);
}

static const struct ptm__tok_pretok_ops bl_ops = {bl_apply, bl_destroy};

ptm_status ptm__tok_bytelevel_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                               const char *path, struct ptm__tok_pretok **out)
{
    int use_regex;
    *out = NULL;
    struct bl_pretok *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &bl_ops;
    ptm_status st = ptm__tok_jbool(c, j, path, "add_prefix_space", 1, &p->add_prefix_space);
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "use_regex", 1, &use_regex);
    }
    if (st == PTM_OK && use_regex) {
        st = ptm__tok_regex_new(gpt2_pattern, 0, "ByteLevel", &p->re);
    }
    if (st != PTM_OK) {
        bl_destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}

/* ---- decoder ---- */

/* One string of every token's bytes; a token with a character outside the alphabet (an added
 * token such as " new york") gives its own UTF-8 bytes, as HF does. */
static ptm_status bl_chain(const struct ptm__tok_decoder *d, const struct ptm__tok_strs *in,
                           struct ptm__tok_strs *out)
{
    struct ptm__tok_bytes raw = {0};
    struct ptm__tok_cps cps = {0};
    ptm_status st = ptm__tok_bytes_reserve(&raw, in->buf.n);
    (void)d;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        const char *t = PTM__TOK_STR(in, i);
        size_t len = PTM__TOK_STR_LEN(in, i), start = raw.n;
        cps.n = 0;
        st = ptm__tok_utf8_decode(t, len, &cps);
        int all = 1;
        for (size_t k = 0; k < cps.n && all && st == PTM_OK; k++) {
            int b = ptm__tok_char_byte(cps.v[k]);
            all = b >= 0;
            raw.v[raw.n++] = (char)b; /* a token's stand-ins never outnumber its bytes */
        }
        if (!all && st == PTM_OK) {
            raw.n = start;
            st = ptm__tok_bytes_append(&raw, t, len);
        }
    }
    cps.n = 0;
    if (st == PTM_OK) {
        st = ptm__tok_utf8_decode(raw.v, raw.n, &cps);
    }
    if (st == PTM_OK) {
        st = ptm__tok_utf8_encode(cps.v, cps.n, &out->buf);
    }
    if (st == PTM_OK) {
        st = ptm__tok_strs_close(out);
    }
    ptm__free(raw.v);
    ptm__free(cps.v);
    return st;
}

static void bl_decoder_destroy(struct ptm__tok_decoder *d)
{
    ptm__free(d);
}

static const struct ptm__tok_decoder_ops bl_decoder_ops = {ptm__tok_decode_by_chain,
                                                           bl_decoder_destroy, bl_chain};

ptm_status ptm__tok_bytelevel_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                                const char *path, struct ptm__tok_decoder **out)
{
    (void)j;
    *out = NULL;
    struct ptm__tok_decoder *d = ptm__calloc(1, sizeof *d);
    if (d == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    d->ops = &bl_decoder_ops;
    *out = d;
    return PTM_OK;
}
