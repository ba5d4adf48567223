/*
 * tok_decode.c - tokenizer.json decoders: token strings back to text. WordPiece (drop
 * continuing_subword_prefix from pieces after the first, a space before every other token,
 * then HF's per-token `cleanup` replacements), and HF's token-list rewriters (decode_chain):
 * ByteFallback (runs of <0xXX> tokens to UTF-8, one U+FFFD per byte when invalid), Fuse,
 * Strip, Replace and Sequence; the result is the list concatenated. ByteLevel and Metaspace
 * decoders live with their pre-tokenizers and are dispatched from here. Which ids become
 * tokens, and skipping special tokens, is the caller's job (tokenizer.c).
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

struct wp_decoder {
    struct ptm__tok_decoder base;
    char *prefix;
    size_t prefix_len;
    int cleanup;
};

/* HF decoders::wordpiece::cleanup, applied in this order with str::replace semantics. */
static const char *const cleanup_pairs[][2] = {
    {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
    {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
    {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

/* Replace every non-overlapping from with to in b[start..), left to right. */
static ptm_status replace_all(struct ptm__tok_bytes *b, size_t start, const char *from,
                              const char *to)
{
    size_t nf = strlen(from), nt = strlen(to);
    char *hit = start < b->n ? memmem(b->v + start, b->n - start, from, nf) : NULL;
    while (hit != NULL) {
        size_t at = (size_t)(hit - b->v);
        if (nt > nf) {
            ptm_status st = ptm__tok_bytes_reserve(b, nt - nf);
            if (st != PTM_OK) {
                return st;
            }
        }
        memmove(b->v + at + nt, b->v + at + nf, b->n - at - nf + 1);
        memcpy(b->v + at, to, nt);
        b->n = b->n - nf + nt;
        size_t next = at + nt;
        hit = next < b->n ? memmem(b->v + next, b->n - next, from, nf) : NULL;
    }
    return PTM_OK;
}

static ptm_status wp_decode(const struct ptm__tok_decoder *base, const char *const *tokens,
                            const size_t *lens, size_t n, struct ptm__tok_bytes *out)
{
    const struct wp_decoder *d = (const struct wp_decoder *)base;
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        const char *t = tokens[i];
        size_t len = lens[i], start = out->n;
        if (i != 0) {
            if (len >= d->prefix_len && memcmp(t, d->prefix, d->prefix_len) == 0) {
                t += d->prefix_len;
                len -= d->prefix_len;
            } else {
                st = ptm__tok_bytes_append(out, " ", 1);
            }
        }
        if (st == PTM_OK) {
            st = ptm__tok_bytes_append(out, t, len);
        }
        for (size_t k = 0;
             d->cleanup && st == PTM_OK && k < sizeof cleanup_pairs / sizeof cleanup_pairs[0];
             k++) {
            st = replace_all(out, start, cleanup_pairs[k][0], cleanup_pairs[k][1]);
        }
    }
    return st;
}

static void wp_destroy(struct ptm__tok_decoder *base)
{
    struct wp_decoder *d = (struct wp_decoder *)base;
    ptm__free(d->prefix);
    ptm__free(d);
}

/* Inside a Sequence the WordPiece decoder hands on its text as one token: HF hands on the
 * pieces, which differs only if a later decoder works per token. */
static ptm_status wp_chain(const struct ptm__tok_decoder *d, const struct ptm__tok_strs *in,
                           struct ptm__tok_strs *out)
{
    const char **toks = ptm__malloc((in->n ? in->n : 1) * sizeof *toks);
    size_t *lens = ptm__malloc((in->n ? in->n : 1) * sizeof *lens);
    ptm_status st = PTM_OK;
    if (toks == NULL || lens == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory decoding %zu tokens", in->n);
    }
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        toks[i] = PTM__TOK_STR(in, i);
        lens[i] = PTM__TOK_STR_LEN(in, i);
    }
    if (st == PTM_OK) {
        st = wp_decode(d, toks, lens, in->n, &out->buf);
    }
    if (st == PTM_OK) {
        st = ptm__tok_strs_close(out);
    }
    ptm__free(toks);
    ptm__free(lens);
    return st;
}

static const struct ptm__tok_decoder_ops wp_decoder_ops = {wp_decode, wp_destroy, wp_chain};

static ptm_status load_wordpiece(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                 struct ptm__tok_decoder **out)
{
    struct wp_decoder *d = ptm__calloc(1, sizeof *d);
    if (d == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    d->base.ops = &wp_decoder_ops;
    json_object *m;
    ptm_status st = ptm__tok_jmember(c, j, path, "prefix", json_type_string, 0, &m);
    if (st == PTM_OK) {
        d->prefix = ptm__strdup(m != NULL ? json_object_get_string(m) : "##");
        if (d->prefix == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
        }
    }
    if (st == PTM_OK) {
        d->prefix_len = strlen(d->prefix);
        st = ptm__tok_jbool(c, j, path, "cleanup", 1, &d->cleanup);
    }
    if (st != PTM_OK) {
        wp_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return PTM_OK;
}

ptm_status ptm__tok_decode_by_chain(const struct ptm__tok_decoder *d, const char *const *tokens,
                                    const size_t *lens, size_t n, struct ptm__tok_bytes *out)
{
    struct ptm__tok_strs in = {0}, res = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        st = ptm__tok_strs_push(&in, tokens[i], lens[i]);
    }
    if (st == PTM_OK) {
        st = d->ops->chain(d, &in, &res);
    }
    if (st == PTM_OK) {
        st = ptm__tok_bytes_append(out, res.buf.v, res.buf.n);
    }
    ptm__tok_strs_free(&in);
    ptm__tok_strs_free(&res);
    return st;
}

enum chain_kind { D_BYTE_FALLBACK, D_FUSE, D_STRIP, D_REPLACE, D_SEQUENCE };

struct chain_decoder {
    struct ptm__tok_decoder base;
    enum chain_kind kind;
    uint32_t content; /* Strip */
    size_t start, stop;
    struct ptm__tok_regex *re; /* Replace */
    uint32_t *rep;
    size_t n_rep;
    struct ptm__tok_decoder **kids; /* Sequence */
    size_t n_kids;
};

/* "<0x41>" -> 0x41, else -1 (HF: six bytes, "<0x" prefix, '>' last, hex in between). */
static int byte_token(const char *t, size_t len)
{
    if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') {
        return -1;
    }
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = t[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* Whether b[0..n) is valid UTF-8 (Rust String::from_utf8: no overlongs, no surrogates). */
static int is_utf8(const char *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned c = b[i];
        size_t k = c < 0x80                 ? 0
                   : c >= 0xC2 && c <= 0xDF ? 1
                   : c >= 0xE0 && c <= 0xEF ? 2
                   : c >= 0xF0 && c <= 0xF4 ? 3
                                            : 9;
        if (k == 9 || n - i - 1 < k) {
            return 0;
        }
        unsigned lo = 0x80, hi = 0xBF; /* bounds of the second byte */
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        } else if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
        for (size_t j = 1; j <= k; j++) {
            unsigned lo_j = j == 1 ? lo : 0x80, hi_j = j == 1 ? hi : 0xBF;
            if (b[i + j] < lo_j || b[i + j] > hi_j) {
                return 0;
            }
        }
        i += k + 1;
    }
    return 1;
}

static ptm_status flush_bytes(struct ptm__tok_bytes *pending, struct ptm__tok_strs *out)
{
    ptm_status st = PTM_OK;
    if (pending->n == 0) {
        return st;
    }
    if (is_utf8(pending->v, pending->n)) {
        st = ptm__tok_strs_push(out, pending->v, pending->n);
    } else {
        for (size_t i = 0; i < pending->n && st == PTM_OK; i++) {
            st = ptm__tok_strs_push(out, "\xEF\xBF\xBD", 3);
        }
    }
    pending->n = 0;
    return st;
}

static ptm_status byte_fallback(const struct ptm__tok_strs *in, struct ptm__tok_strs *out)
{
    struct ptm__tok_bytes pending = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        const char *t = PTM__TOK_STR(in, i);
        size_t len = PTM__TOK_STR_LEN(in, i);
        int b = byte_token(t, len);
        if (b >= 0) {
            char c = (char)b;
            st = ptm__tok_bytes_append(&pending, &c, 1);
            continue;
        }
        st = flush_bytes(&pending, out);
        if (st == PTM_OK) {
            st = ptm__tok_strs_push(out, t, len);
        }
    }
    if (st == PTM_OK) {
        st = flush_bytes(&pending, out);
    }
    ptm__free(pending.v);
    return st;
}

/* Strip: up to start leading and stop trailing copies of content off every token. */
static ptm_status strip_tokens(const struct chain_decoder *d, const struct ptm__tok_strs *in,
                               struct ptm__tok_strs *out)
{
    struct ptm__tok_cps cps = {0};
    struct ptm__tok_bytes b = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        cps.n = 0;
        st = ptm__tok_utf8_decode(PTM__TOK_STR(in, i), PTM__TOK_STR_LEN(in, i), &cps);
        size_t a = 0, e = cps.n;
        while (st == PTM_OK && a < d->start && a < e && cps.v[a] == d->content) {
            a++;
        }
        for (size_t k = 0; st == PTM_OK && k < d->stop && e > a && cps.v[e - 1] == d->content;
             k++) {
            e--;
        }
        b.n = 0;
        if (st == PTM_OK) {
            st = ptm__tok_utf8_encode(cps.v + a, e - a, &b);
        }
        if (st == PTM_OK) {
            st = ptm__tok_strs_push(out, b.v, b.n);
        }
    }
    ptm__free(cps.v);
    ptm__free(b.v);
    return st;
}

static ptm_status replace_tokens(const struct chain_decoder *d, const struct ptm__tok_strs *in,
                                 struct ptm__tok_strs *out)
{
    struct ptm__tok_scratch s = {0};
    struct ptm__tok_cps cps = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        cps.n = 0;
        st = ptm__tok_utf8_decode(PTM__TOK_STR(in, i), PTM__TOK_STR_LEN(in, i), &cps);
        if (st == PTM_OK) {
            st = ptm__tok_regex_replace(d->re, &s, &cps, d->rep, d->n_rep);
        }
        s.bytes.n = 0;
        if (st == PTM_OK) {
            st = ptm__tok_utf8_encode(cps.v, cps.n, &s.bytes);
        }
        if (st == PTM_OK) {
            st = ptm__tok_strs_push(out, s.bytes.v, s.bytes.n);
        }
    }
    ptm__free(cps.v);
    ptm__tok_scratch_free(&s);
    return st;
}

static ptm_status sequence_chain(const struct chain_decoder *d, const struct ptm__tok_strs *in,
                                 struct ptm__tok_strs *out)
{
    struct ptm__tok_strs a = {0}, b = {0};
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < in->n && st == PTM_OK; i++) {
        st = ptm__tok_strs_push(&a, PTM__TOK_STR(in, i), PTM__TOK_STR_LEN(in, i));
    }
    for (size_t k = 0; k < d->n_kids && st == PTM_OK; k++) {
        ptm__tok_strs_clear(&b);
        st = d->kids[k]->ops->chain(d->kids[k], &a, &b);
        struct ptm__tok_strs t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < a.n && st == PTM_OK; i++) {
        st = ptm__tok_strs_push(out, PTM__TOK_STR(&a, i), PTM__TOK_STR_LEN(&a, i));
    }
    ptm__tok_strs_free(&a);
    ptm__tok_strs_free(&b);
    return st;
}

static ptm_status chain_apply(const struct ptm__tok_decoder *base, const struct ptm__tok_strs *in,
                              struct ptm__tok_strs *out)
{
    const struct chain_decoder *d = (const struct chain_decoder *)base;
    switch (d->kind) {
    case D_BYTE_FALLBACK:
        return byte_fallback(in, out);
    case D_FUSE:
        return ptm__tok_strs_push(out, in->buf.v, in->n > 0 ? in->end[in->n - 1] : 0);
    case D_STRIP:
        return strip_tokens(d, in, out);
    case D_REPLACE:
        return replace_tokens(d, in, out);
    case D_SEQUENCE:
        return sequence_chain(d, in, out);
    }
    return PTM_OK;
}

static void chain_destroy(struct ptm__tok_decoder *base)
{
    struct chain_decoder *d = (struct chain_decoder *)base;
    for (size_t i = 0; i < d->n_kids; i++) {
        ptm__tok_decoder_free(d->kids[i]);
    }
    ptm__free(d->kids);
    ptm__tok_regex_free(d->re);
    ptm__free(d->rep);
    ptm__free(d);
}

static const struct ptm__tok_decoder_ops chain_ops = {ptm__tok_decode_by_chain, chain_destroy,
                                                      chain_apply};

static ptm_status load_strip(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                             struct chain_decoder *d)
{
    const char *content;
    size_t len;
    int64_t v;
    struct ptm__tok_cps cps = {0};
    ptm_status st = ptm__tok_jstr(c, j, path, "content", &content, &len);
    if (st == PTM_OK) {
        st = ptm__tok_utf8_decode(content, len, &cps);
    }
    if (st == PTM_OK && cps.n != 1) {
        st = ptm__fail(PTM_E_FORMAT, "%s: %s.content: expected one character, got %zu", c->file,
                       path, cps.n);
    }
    d->content = st == PTM_OK ? cps.v[0] : 0;
    ptm__free(cps.v);
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, j, path, "start", 0, INT32_MAX, 0, &v);
        d->start = (size_t)v;
    }
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, j, path, "stop", 0, INT32_MAX, 0, &v);
        d->stop = (size_t)v;
    }
    return st;
}

static ptm_status load_replace(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                               struct chain_decoder *d)
{
    json_object *pat;
    const char *content;
    size_t len;
    char sub[256];
    snprintf(sub, sizeof sub, "%s.pattern", path);
    ptm_status st = ptm__tok_jmember(c, j, path, "pattern", json_type_object, 1, &pat);
    if (st == PTM_OK) {
        st = ptm__tok_regex_from_json(c, pat, sub, &d->re);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jstr(c, j, path, "content", &content, &len);
    }
    struct ptm__tok_cps cps = {0};
    if (st == PTM_OK) {
        st = ptm__tok_utf8_decode(content, len, &cps);
    }
    d->rep = cps.v;
    d->n_rep = cps.n;
    return st;
}

static ptm_status load_sequence(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct chain_decoder *d)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "decoders", json_type_array, 1, &arr);
    if (st != PTM_OK) {
        return st;
    }
    size_t k = json_object_array_length(arr);
    d->kids = ptm__calloc(k ? k : 1, sizeof *d->kids);
    if (d->kids == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    for (size_t i = 0; i < k && st == PTM_OK; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.decoders[%zu]", path, i);
        st = ptm__tok_decoder_from_json(c, json_object_array_get_idx(arr, i), sub, &d->kids[i]);
        if (st == PTM_OK && d->kids[i] == NULL) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got null", c->file, sub);
        }
        d->n_kids = i + 1;
    }
    return st;
}

static ptm_status load_chain(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                             enum chain_kind kind, struct ptm__tok_decoder **out)
{
    struct chain_decoder *d = ptm__calloc(1, sizeof *d);
    if (d == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    d->base.ops = &chain_ops;
    d->kind = kind;
    ptm_status st = PTM_OK;
    if (kind == D_STRIP) {
        st = load_strip(c, j, path, d);
    } else if (kind == D_REPLACE) {
        st = load_replace(c, j, path, d);
    } else if (kind == D_SEQUENCE) {
        st = load_sequence(c, j, path, d);
    }
    if (st != PTM_OK) {
        chain_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return PTM_OK;
}

ptm_status ptm__tok_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                      const char *path, struct ptm__tok_decoder **out)
{
    *out = NULL;
    if (j == NULL || json_object_is_type(j, json_type_null)) {
        return PTM_OK;
    }
    const char *type;
    ptm_status st = ptm__tok_jtype(c, j, path, &type);
    if (st != PTM_OK) {
        return st;
    }
    static const char *chains[] = {"ByteFallback", "Fuse", "Strip", "Replace", "Sequence"};
    if (strcmp(type, "WordPiece") == 0) {
        return load_wordpiece(c, j, path, out);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        return ptm__tok_bytelevel_decoder_from_json(c, j, path, out);
    }
    if (strcmp(type, "Metaspace") == 0) {
        return ptm__tok_metaspace_decoder_from_json(c, j, path, out);
    }
    for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
        if (strcmp(type, chains[i]) == 0) {
            return load_chain(c, j, path, (enum chain_kind)i, out);
        }
    }
    return ptm__tok_junsupported(c, path, "decoder", type);
}

void ptm__tok_decoder_free(struct ptm__tok_decoder *d)
{
    if (d != NULL) {
        d->ops->destroy(d);
    }
}
