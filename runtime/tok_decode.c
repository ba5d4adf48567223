/*
 * tok_decode.c - tokenizer.json decoders: token strings back to text. WordPiece for now
 * (drop continuing_subword_prefix from pieces after the first, a space before every other
 * token, then HF's per-token `cleanup` replacements); ByteLevel, Metaspace, Sequence and the
 * rest load as unsupported. Which ids become tokens, and skipping special tokens, is the
 * caller's job (tokenizer.c).
 */
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

static const struct ptm__tok_decoder_ops wp_decoder_ops = {wp_decode, wp_destroy};

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
    if (strcmp(type, "WordPiece") == 0) {
        return load_wordpiece(c, j, path, out);
    }
    return ptm__tok_junsupported(c, path, "decoder", type);
}

void ptm__tok_decoder_free(struct ptm__tok_decoder *d)
{
    if (d != NULL) {
        d->ops->destroy(d);
    }
}
