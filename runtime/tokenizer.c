/*
 * tokenizer.c - loading a tokenizer from tokenizer.json (a file, a model directory holding
 * one, or bytes in memory) and the read-only lookups over it: token <-> id, vocab size and
 * decode. It dispatches each component of the file to its loader (tok_normalize.c,
 * tok_pretok.c, tok_wordpiece.c / tok_bpe.c / tok_unigram.c, tok_post.c, tok_decode.c,
 * tok_added.c) and reads the
 * file's default truncation and padding. Encoding lives in tok_encode.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

#include "ptm/ptm_tokenizer.h"

static const struct {
    const char *type;
    ptm_status (*load)(const struct ptm__tok_jctx *, json_object *, const char *,
                       struct ptm__tok_model **);
} model_types[] = {
    {"WordPiece", ptm__tok_wordpiece_from_json},
    {"BPE", ptm__tok_bpe_from_json},
    {"Unigram", ptm__tok_unigram_from_json},
};

ptm_status ptm__tok_model_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_model **out)
{
    const char *type;
    *out = NULL;
    ptm_status st = ptm__tok_jtype(c, j, path, &type);
    if (st != PTM_OK) {
        return st;
    }
    for (size_t i = 0; i < sizeof model_types / sizeof model_types[0]; i++) {
        if (strcmp(type, model_types[i].type) == 0) {
            return model_types[i].load(c, j, path, out);
        }
    }
    return ptm__tok_junsupported(c, path, "model", type);
}

void ptm__tok_model_free(struct ptm__tok_model *m)
{
    if (m != NULL) {
        m->ops->destroy(m);
    }
}

/* Read a whole file into a NUL-terminated heap buffer. */
static ptm_status read_file(const char *path, char **buf, size_t *n)
{
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return ptm__fail(errno == ENOENT ? PTM_E_NOT_FOUND : PTM_E_IO, "%s: cannot open: %s", path,
                         strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return ptm__fail(PTM_E_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    char *p = ptm__malloc(size + 1);
    if (p == NULL) {
        fclose(f);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = fread(p, 1, size, f);
    fclose(f);
    if (got != size) {
        ptm__free(p);
        return ptm__fail(PTM_E_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    p[size] = '\0';
    *buf = p;
    *n = size;
    return PTM_OK;
}

static ptm_status parse_json(const char *label, const char *buf, size_t n, json_object **out)
{
    *out = NULL;
    if (n > INT32_MAX) {
        return ptm__fail(PTM_E_FORMAT, "%s: %zu bytes is too large for a JSON file", label, n);
    }
    json_tokener *tok = json_tokener_new();
    if (tok == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory for the JSON parser", label);
    }
    json_object *root = json_tokener_parse_ex(tok, buf, (int)n);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t at = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (root == NULL || err != json_tokener_success) {
        json_object_put(root);
        return ptm__fail(PTM_E_FORMAT, "%s: invalid JSON at byte %zu: %s", label, at,
                         err == json_tokener_continue ? "unexpected end of input"
                                                      : json_tokener_error_desc(err));
    }
    for (; at < n; at++) {
        if (strchr(" \t\r\n", buf[at]) == NULL || buf[at] == '\0') {
            json_object_put(root);
            return ptm__fail(PTM_E_FORMAT, "%s: invalid JSON: trailing bytes at byte %zu", label,
                             at);
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        ptm_status st = ptm__fail(PTM_E_FORMAT, "%s: expected a JSON object at the top, got %s",
                                  label, ptm__tok_json_type_name(root));
        json_object_put(root);
        return st;
    }
    *out = root;
    return PTM_OK;
}

static ptm_status load_truncation(const struct ptm__tok_jctx *c, json_object *root,
                                  ptm_tokenizer *t)
{
    static const char *names[] = {"LongestFirst", "OnlyFirst", "OnlySecond"};
    json_object *j, *m;
    int64_t max;
    ptm_status st = ptm__tok_jmember(c, root, "", "truncation", json_type_object, 0, &j);
    if (st != PTM_OK || j == NULL) {
        return st;
    }
    st = ptm__tok_jint(c, j, "truncation", "max_length", 0, PTM__TOK_MAX_ID, 512, &max);
    if (st == PTM_OK) {
        st = ptm__tok_jmember(c, j, "truncation", "strategy", json_type_string, 0, &m);
    }
    if (st != PTM_OK) {
        return st;
    }
    t->has_trunc = 1;
    t->trunc_max = (size_t)max;
    t->trunc_strategy = PTM__TOK_TRUNC_LONGEST;
    for (size_t i = 0; m != NULL && i < 3; i++) {
        if (strcmp(json_object_get_string(m), names[i]) == 0) {
            t->trunc_strategy = PTM__TOK_TRUNC_LONGEST + (int)i;
            m = NULL;
        }
    }
    if (m != NULL) {
        return ptm__fail(PTM_E_FORMAT, "%s: truncation.strategy: unknown strategy \"%s\"", c->file,
                         json_object_get_string(m));
    }
    st = ptm__tok_jmember(c, j, "truncation", "direction", json_type_string, 0, &m);
    t->trunc_left = m != NULL && strcmp(json_object_get_string(m), "Left") == 0;
    return st;
}

/* "padding": {"strategy": "BatchLongest" | {"Fixed": n}, "direction": "Right", ...} */
static ptm_status load_padding(const struct ptm__tok_jctx *c, json_object *root, ptm_tokenizer *t)
{
    json_object *j, *m, *fixed;
    int64_t v;
    ptm_status st = ptm__tok_jmember(c, root, "", "padding", json_type_object, 0, &j);
    if (st != PTM_OK || j == NULL) {
        return st;
    }
    t->has_pad = 1;
    if (json_object_object_get_ex(j, "strategy", &m) && json_object_is_type(m, json_type_object)) {
        st = ptm__tok_jmember(c, m, "padding.strategy", "Fixed", json_type_int, 1, &fixed);
        if (st != PTM_OK) {
            return st;
        }
        st = ptm__tok_jint(c, m, "padding.strategy", "Fixed", 0, PTM__TOK_MAX_ID, 0, &v);
        t->pad_len = (size_t)v;
    } else if (m != NULL && !json_object_is_type(m, json_type_string)) {
        return ptm__fail(PTM_E_FORMAT, "%s: padding.strategy: expected string or object, got %s",
                         c->file, ptm__tok_json_type_name(m));
    }
    if (st == PTM_OK) {
        st = ptm__tok_jmember(c, j, "padding", "direction", json_type_string, 0, &m);
        t->pad_left = m != NULL && strcmp(json_object_get_string(m), "Left") == 0;
    }
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, j, "padding", "pad_to_multiple_of", 0, PTM__TOK_MAX_ID, 0, &v);
        t->pad_multiple = (size_t)v;
    }
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, j, "padding", "pad_id", 0, INT32_MAX, 0, &v);
        t->pad_id = (int32_t)v;
    }
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, j, "padding", "pad_type_id", 0, INT32_MAX, 0, &v);
        t->pad_type_id = (int32_t)v;
    }
    return st;
}

static ptm_status load_components(const struct ptm__tok_jctx *c, json_object *root,
                                  ptm_tokenizer *t)
{
    json_object *j = NULL, *added;
    ptm_status st;
    json_object_object_get_ex(root, "normalizer", &j);
    st = ptm__tok_normalizer_from_json(c, j, "normalizer", &t->norm);
    j = NULL;
    json_object_object_get_ex(root, "pre_tokenizer", &j);
    if (st == PTM_OK) {
        st = ptm__tok_pretok_from_json(c, j, "pre_tokenizer", &t->pre);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jmember(c, root, "", "model", json_type_object, 1, &j);
    }
    if (st == PTM_OK) {
        st = ptm__tok_model_from_json(c, j, "model", &t->model);
    }
    j = NULL;
    json_object_object_get_ex(root, "post_processor", &j);
    if (st == PTM_OK) {
        st = ptm__tok_post_from_json(c, j, "post_processor", &t->post);
    }
    j = NULL;
    json_object_object_get_ex(root, "decoder", &j);
    if (st == PTM_OK) {
        st = ptm__tok_decoder_from_json(c, j, "decoder", &t->dec);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jmember(c, root, "", "added_tokens", json_type_array, 0, &added);
    }
    if (st == PTM_OK) {
        st = ptm__tok_added_from_json(c, added, t->norm, &t->added);
    }
    if (st == PTM_OK) {
        st = load_truncation(c, root, t);
    }
    if (st == PTM_OK) {
        st = load_padding(c, root, t);
    }
    return st;
}

PTM_API void ptm_tokenizer_free(ptm_tokenizer *t)
{
    if (t == NULL) {
        return;
    }
    ptm__tok_normalizer_free(t->norm);
    ptm__tok_pretok_free(t->pre);
    ptm__tok_model_free(t->model);
    ptm__tok_post_free(t->post);
    ptm__tok_decoder_free(t->dec);
    ptm__tok_added_free(&t->added);
    ptm__free(t);
}

static ptm_status load_memory(const char *json, size_t n, const char *label, ptm_tokenizer **out)
{
    json_object *root;
    ptm_status st = parse_json(label, json, n, &root);
    if (st != PTM_OK) {
        return st;
    }
    ptm_tokenizer *t = ptm__calloc(1, sizeof *t);
    if (t == NULL) {
        json_object_put(root);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
    }
    struct ptm__tok_jctx c = {label};
    st = load_components(&c, root, t);
    json_object_put(root);
    if (st != PTM_OK) {
        ptm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PTM_OK;
}

PTM_API ptm_status ptm_tokenizer_load_from_memory(const char *json, size_t n, const char *label,
                                                  ptm_tokenizer **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (json == NULL || out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_load_from_memory: json and out must not be "
                                      "NULL");
    }
    return load_memory(json, n, label != NULL ? label : "tokenizer.json", out);
}

/* A JSON file beside tokenizer.json, or NULL (absent or unreadable: these are optional). */
static json_object *read_optional_json(const char *dir, const char *name)
{
    char path[4096];
    char *buf;
    size_t n;
    json_object *root = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, R_OK) == 0 && read_file(path, &buf, &n) == PTM_OK) {
        if (parse_json(path, buf, n, &root) != PTM_OK) {
            root = NULL;
        }
        ptm__free(buf);
    }
    ptm__error_clear(); /* a bad optional file is not the caller's failure */
    return root;
}

/* A special token entry: "<pad>" or {"content": "<pad>", ...}; NULL if neither. */
static const char *token_content(json_object *v)
{
    json_object *c = NULL;
    if (json_object_is_type(v, json_type_object) && json_object_object_get_ex(v, "content", &c)) {
        v = c;
    }
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/*
 * tokenizer_config.json and special_tokens_map.json next to tokenizer.json, as transformers'
 * fast tokenizers read them: model_max_length, and, when tokenizer.json has no padding
 * section, the pad token (tokenizer_config.json first, then special_tokens_map.json).
 */
static void read_model_max_length(const char *dir, ptm_tokenizer *t)
{
    json_object *cfg = read_optional_json(dir, "tokenizer_config.json"), *m = NULL;
    json_object *map = t->has_pad ? NULL : read_optional_json(dir, "special_tokens_map.json");
    if (json_object_object_get_ex(cfg, "model_max_length", &m) &&
        json_object_is_type(m, json_type_int)) {
        t->model_max_length = json_object_get_int64(m);
    }
    const char *pad = NULL;
    if (!t->has_pad && json_object_object_get_ex(cfg, "pad_token", &m)) {
        pad = token_content(m);
    }
    if (!t->has_pad && pad == NULL && json_object_object_get_ex(map, "pad_token", &m)) {
        pad = token_content(m);
    }
    int32_t id = pad != NULL ? ptm_tokenizer_token_to_id(t, pad) : -1;
    if (id >= 0) {
        t->pad_id = id;
    }
    json_object_put(cfg);
    json_object_put(map);
}

PTM_API ptm_status ptm_tokenizer_load(const char *path, ptm_tokenizer **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (path == NULL || out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_load: path and out must not be NULL");
    }
    struct stat sb;
    char file[4096];
    int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    snprintf(file, sizeof file, is_dir ? "%s/tokenizer.json" : "%s", path);
    char *buf;
    size_t n;
    ptm_status st = read_file(file, &buf, &n);
    if (st != PTM_OK) {
        return st;
    }
    st = load_memory(buf, n, file, out);
    ptm__free(buf);
    if (st == PTM_OK && is_dir) {
        read_model_max_length(path, *out);
    }
    return st;
}

static const char *id_token(const ptm_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0) {
        return NULL;
    }
    if ((size_t)id < t->added.vocab.n_ids && t->added.id_text[id] != NULL) {
        *len = strlen(t->added.id_text[id]);
        return t->added.id_text[id];
    }
    const struct ptm__tok_vocab *v = t->model->ops->vocab(t->model);
    if ((size_t)id < v->n_ids && v->tokens[id] != NULL) {
        *len = v->lens[id];
        return v->tokens[id];
    }
    return NULL;
}

PTM_API int32_t ptm_tokenizer_token_to_id(const ptm_tokenizer *t, const char *token)
{
    ptm__error_clear();
    if (t == NULL || token == NULL) {
        return -1;
    }
    int32_t id = ptm__tok_vocab_find(&t->added.vocab, token, strlen(token));
    return id >= 0 ? id : ptm__tok_vocab_find(t->model->ops->vocab(t->model), token, strlen(token));
}

PTM_API const char *ptm_tokenizer_id_to_token(const ptm_tokenizer *t, int32_t id)
{
    size_t len;
    ptm__error_clear();
    return t != NULL ? id_token(t, id, &len) : NULL;
}

PTM_API size_t ptm_tokenizer_vocab_size(const ptm_tokenizer *t)
{
    ptm__error_clear();
    if (t == NULL) {
        return 0;
    }
    size_t a = t->added.vocab.n_ids, m = t->model->ops->vocab(t->model)->n_ids;
    return a > m ? a : m;
}

PTM_API int64_t ptm_tokenizer_model_max_length(const ptm_tokenizer *t)
{
    ptm__error_clear();
    return t != NULL ? t->model_max_length : 0;
}

static ptm_status decode_tokens(const ptm_tokenizer *t, const char **toks, const size_t *lens,
                                size_t k, struct ptm__tok_bytes *b)
{
    if (t->dec != NULL) {
        return t->dec->ops->decode(t->dec, toks, lens, k, b);
    }
    ptm_status st = ptm__tok_bytes_reserve(b, 0);
    for (size_t i = 0; i < k && st == PTM_OK; i++) {
        if (i > 0) {
            st = ptm__tok_bytes_append(b, " ", 1);
        }
        if (st == PTM_OK) {
            st = ptm__tok_bytes_append(b, toks[i], lens[i]);
        }
    }
    return st;
}

PTM_API ptm_status ptm_tokenizer_decode(const ptm_tokenizer *t, const int32_t *ids, size_t n,
                                        int32_t skip_special_tokens, char **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (t == NULL || out == NULL || (ids == NULL && n > 0)) {
        return ptm__fail(PTM_E_INVAL,
                         "ptm_tokenizer_decode: tokenizer, out and ids (n %zu) must "
                         "not be NULL",
                         n);
    }
    const char **toks = ptm__malloc((n ? n : 1) * sizeof *toks);
    size_t *lens = toks != NULL ? ptm__malloc((n ? n : 1) * sizeof *lens) : NULL;
    if (lens == NULL) {
        ptm__free(toks);
        return ptm__fail(PTM_E_NOMEM, "ptm_tokenizer_decode: out of memory for %zu ids", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *tok = id_token(t, ids[i], &len);
        if (tok != NULL &&
            !(skip_special_tokens && ptm__tok_added_is_special(&t->added, tok, len))) {
            lens[k] = len;
            toks[k++] = tok;
        }
    }
    struct ptm__tok_bytes b = {0};
    ptm_status st = ptm__tok_bytes_reserve(&b, 0);
    if (st == PTM_OK) {
        b.v[0] = '\0';
        st = decode_tokens(t, toks, lens, k, &b);
    }
    ptm__free(toks);
    ptm__free(lens);
    if (st != PTM_OK) {
        ptm__free(b.v);
        return st;
    }
    *out = b.v;
    return PTM_OK;
}
