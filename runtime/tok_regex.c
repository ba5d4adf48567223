/*
 * tok_regex.c - regex patterns for tokenizer.json: compiling a {"String"} or {"Regex"} pattern
 * once at load with PCRE2 (UTF-32 code units, so it matches the tokenizer's code points with
 * no conversion or offset mapping; UCP so \s, \w and \d are Unicode's, as in Oniguruma, which
 * HF uses; JIT-compiled), HF's find_matches over a word, and the two components that are only
 * a pattern: the Split pre-tokenizer and the Replace normalizer with a Regex pattern. A compiled
 * pattern is immutable; each match call makes its own match data, so matching is thread safe.
 * Known difference from Oniguruma: PCRE2 10.42 counts U+180E as \s.
 */
#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

struct ptm__tok_regex {
    pcre2_general_context *gctx;
    pcre2_code *code;
};

/* PCRE2's heap goes through ptm__malloc so the allocation-failure sweep reaches it. */
static void *re_malloc(PCRE2_SIZE n, void *data)
{
    (void)data;
    return ptm__malloc(n);
}

static void re_free(void *p, void *data)
{
    (void)data;
    ptm__free(p);
}

void ptm__tok_regex_free(struct ptm__tok_regex *re)
{
    if (re == NULL) {
        return;
    }
    pcre2_code_free(re->code);
    pcre2_general_context_free(re->gctx);
    ptm__free(re);
}

static ptm_status compile(const uint32_t *pat, size_t n, int literal, const char *label,
                          struct ptm__tok_regex *re)
{
    re->gctx = pcre2_general_context_create(re_malloc, re_free, NULL);
    pcre2_compile_context *cc = re->gctx ? pcre2_compile_context_create(re->gctx) : NULL;
    if (cc == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory compiling a regex", label);
    }
    int err;
    PCRE2_SIZE at;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    re->code = pcre2_compile((PCRE2_SPTR)pat, n, opts, &err, &at, cc);
    pcre2_compile_context_free(cc);
    if (re->code == NULL) {
        if (err == PCRE2_ERROR_NOMEMORY || err == PCRE2_ERROR_HEAP_FAILED) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory compiling a regex", label);
        }
        PCRE2_UCHAR msg[256];
        char text[256];
        pcre2_get_error_message(err, msg, 256);
        size_t k = 0;
        for (; msg[k] != 0 && k < sizeof text - 1; k++) {
            text[k] = msg[k] < 0x80 ? (char)msg[k] : '?';
        }
        text[k] = '\0';
        return ptm__fail(PTM_E_FORMAT, "%s: invalid regex at character %zu: %s", label, (size_t)at,
                         text);
    }
    /* Without JIT (no support on this CPU, or no executable memory) the interpreter gives the
     * same matches, only slower: not an error. */
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    return PTM_OK;
}

static ptm_status regex_new_cps(const uint32_t *pat, size_t n, int literal, const char *label,
                                struct ptm__tok_regex **out)
{
    *out = NULL;
    struct ptm__tok_regex *re = ptm__calloc(1, sizeof *re);
    if (re == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
    }
    ptm_status st = compile(pat, n, literal, label, re);
    if (st != PTM_OK) {
        ptm__tok_regex_free(re);
        return st;
    }
    *out = re;
    return PTM_OK;
}

ptm_status ptm__tok_regex_new(const char *pattern, int literal, const char *label,
                              struct ptm__tok_regex **out)
{
    struct ptm__tok_cps cps = {0};
    *out = NULL;
    ptm_status st = ptm__tok_utf8_decode(pattern, strlen(pattern), &cps);
    if (st == PTM_OK) {
        st = ptm__tok_cps_reserve(&cps, 0);
    }
    if (st == PTM_OK) {
        st = regex_new_cps(cps.v, cps.n, literal, label, out);
    }
    ptm__free(cps.v);
    return st;
}

ptm_status ptm__tok_regex_from_json(const struct ptm__tok_jctx *c, json_object *pattern,
                                    const char *path, struct ptm__tok_regex **out)
{
    json_object *m = NULL;
    *out = NULL;
    int literal = json_object_object_get_ex(pattern, "String", &m);
    if (!literal && !json_object_object_get_ex(pattern, "Regex", &m)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s: expected {\"String\": ...} or {\"Regex\": ...}",
                         c->file, path);
    }
    if (!json_object_is_type(m, json_type_string)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.%s: expected string, got %s", c->file, path,
                         literal ? "String" : "Regex", ptm__tok_json_type_name(m));
    }
    struct ptm__tok_cps cps = {0};
    char label[512];
    snprintf(label, sizeof label, "%s: %s.%s", c->file, path, literal ? "String" : "Regex");
    ptm_status st = ptm__tok_utf8_decode(json_object_get_string(m),
                                         (size_t)json_object_get_string_len(m), &cps);
    if (st == PTM_OK) {
        st = ptm__tok_cps_reserve(&cps, 0);
    }
    if (st == PTM_OK) {
        st = regex_new_cps(cps.v, cps.n, literal, label, out);
    }
    ptm__free(cps.v);
    return st;
}

ptm_status ptm__tok_regex_segments(const struct ptm__tok_regex *re, struct ptm__tok_scratch *s,
                                   const uint32_t *cps, size_t n, int invert, size_t *n_seg)
{
    size_t k = 0;
    *n_seg = 0;
    if (n == 0) {
        ptm_status st = ptm__tok_seg_push(s, &k, 0, 0, invert != 0);
        *n_seg = k;
        return st;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, re->gctx);
    if (md == NULL) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: out of memory for regex match data");
    }
    static const uint32_t empty = 0;
    PCRE2_SPTR subject = (PCRE2_SPTR)(cps != NULL ? cps : &empty);
    ptm_status st = PTM_OK;
    size_t at = 0, prev = 0, last_end = SIZE_MAX;
    while (at <= n && st == PTM_OK) {
        int rc = pcre2_match(re->code, subject, n, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            st = ptm__fail(rc == PCRE2_ERROR_NOMEMORY ? PTM_E_NOMEM : PTM_E_INTERNAL,
                           "tokenizer: regex match failed (PCRE2 error %d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        /* Oniguruma's find_iter: an empty match right where the last one ended is skipped. */
        if (a == b && last_end == b) {
            at++;
            continue;
        }
        if (prev != a) {
            st = ptm__tok_seg_push(s, &k, prev, a, invert != 0);
        }
        if (st == PTM_OK) {
            st = ptm__tok_seg_push(s, &k, a, b, invert == 0);
        }
        prev = at = last_end = b;
    }
    if (st == PTM_OK && prev != n) {
        st = ptm__tok_seg_push(s, &k, prev, n, invert != 0);
    }
    pcre2_match_data_free(md);
    *n_seg = k;
    return st;
}

ptm_status ptm__tok_regex_replace(const struct ptm__tok_regex *re, struct ptm__tok_scratch *s,
                                  struct ptm__tok_cps *io, const uint32_t *rep, size_t n_rep)
{
    size_t n;
    ptm_status st = ptm__tok_regex_segments(re, s, io->v, io->n, 0, &n);
    s->tmp.n = 0;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        size_t a = s->seg[3 * i], b = s->seg[3 * i + 1];
        const uint32_t *src = s->seg[3 * i + 2] ? rep : io->v + a;
        size_t len = s->seg[3 * i + 2] ? n_rep : b - a;
        st = ptm__tok_cps_reserve(&s->tmp, len);
        if (st == PTM_OK && len > 0) {
            memcpy(s->tmp.v + s->tmp.n, src, len * sizeof *src);
            s->tmp.n += len;
        }
    }
    if (st == PTM_OK) {
        struct ptm__tok_cps t = *io;
        *io = s->tmp;
        s->tmp = t;
    }
    return st;
}

/* ---- Split pre-tokenizer ---- */

struct split {
    struct ptm__tok_pretok base;
    struct ptm__tok_regex *re;
    int behavior, invert;
};

static ptm_status split_word(const void *ctx, struct ptm__tok_scratch *s,
                             const struct ptm__tok_word *w, size_t i)
{
    const struct split *p = ctx;
    size_t n;
    (void)i;
    ptm_status st = ptm__tok_regex_segments(p->re, s, s->arena.v + w->off, w->len, p->invert, &n);
    return st != PTM_OK ? st : ptm__tok_split_emit(s, w, n, p->behavior);
}

static ptm_status split_apply(const struct ptm__tok_pretok *base, struct ptm__tok_scratch *s)
{
    return ptm__tok_pretok_map(base, s, split_word);
}

static void split_destroy(struct ptm__tok_pretok *base)
{
    struct split *p = (struct split *)base;
    ptm__tok_regex_free(p->re);
    ptm__free(p);
}

static const struct ptm__tok_pretok_ops split_ops = {split_apply, split_destroy};

ptm_status ptm__tok_split_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_pretok **out)
{
    json_object *pat;
    char sub[256];
    *out = NULL;
    struct split *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &split_ops;
    snprintf(sub, sizeof sub, "%s.pattern", path);
    ptm_status st = ptm__tok_jmember(c, j, path, "pattern", json_type_object, 1, &pat);
    if (st == PTM_OK) {
        st = ptm__tok_regex_from_json(c, pat, sub, &p->re);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbehavior(c, j, path, PTM__TOK_REMOVED, &p->behavior);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "invert", 0, &p->invert);
    }
    if (st != PTM_OK) {
        split_destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}

/* ---- Replace normalizer with a Regex pattern ---- */

struct replace {
    struct ptm__tok_normalizer base;
    struct ptm__tok_regex *re;
    uint32_t *rep;
    size_t n_rep;
};

static ptm_status replace_apply(const struct ptm__tok_normalizer *base, struct ptm__tok_scratch *s,
                                struct ptm__tok_cps *io)
{
    const struct replace *r = (const struct replace *)base;
    return ptm__tok_regex_replace(r->re, s, io, r->rep, r->n_rep);
}

static void replace_destroy(struct ptm__tok_normalizer *base)
{
    struct replace *r = (struct replace *)base;
    ptm__tok_regex_free(r->re);
    ptm__free(r->rep);
    ptm__free(r);
}

static const struct ptm__tok_normalizer_ops replace_ops = {replace_apply, replace_destroy};

ptm_status ptm__tok_replace_regex_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                            const char *path, struct ptm__tok_normalizer **out)
{
    json_object *pat;
    const char *content;
    size_t len;
    char sub[256];
    *out = NULL;
    struct replace *r = ptm__calloc(1, sizeof *r);
    if (r == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    r->base.ops = &replace_ops;
    snprintf(sub, sizeof sub, "%s.pattern", path);
    ptm_status st = ptm__tok_jmember(c, j, path, "pattern", json_type_object, 1, &pat);
    if (st == PTM_OK) {
        st = ptm__tok_regex_from_json(c, pat, sub, &r->re);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jstr(c, j, path, "content", &content, &len);
    }
    struct ptm__tok_cps cps = {0};
    if (st == PTM_OK) {
        st = ptm__tok_utf8_decode(content, len, &cps);
    }
    r->rep = cps.v;
    r->n_rep = cps.n;
    if (st != PTM_OK) {
        replace_destroy(&r->base);
        return st;
    }
    *out = &r->base;
    return PTM_OK;
}
