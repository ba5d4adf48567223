/*
 * embed.c - sentence embeddings: the sentence-transformers pipeline over a loaded model and
 * its tokenizer. Reads modules.json (which modules, in order), the Pooling module's
 * config.json and sentence_bert_config.json; tokenizes as sentence-transformers does
 * (padding to the longest in the batch, longest_first truncation at max_seq_length), runs
 * the model, pools over the attention mask and optionally L2-normalises. Texts are batched
 * by length so short texts are not padded to long ones.
 */
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "ptm/ptm.h"

#define BATCH 32

enum pooling { POOL_MEAN, POOL_CLS, POOL_MAX, POOL_MEAN_SQRT };
static const char *const pool_names[] = {"mean", "cls", "max", "mean_sqrt_len"};

struct ptm_embedder {
    ptm_model *model;
    ptm_tokenizer *tok;
    int64_t dim;
    int32_t max_len;
    enum pooling pooling;
    int normalize;
    int lowercase;
};

/* Read a JSON file; NULL (no error) when it does not exist. */
static ptm_status read_json(const char *path, json_object **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return PTM_OK;
    }
    fclose(f);
    *out = json_object_from_file(path);
    if (*out == NULL) {
        return ptm__fail(PTM_E_FORMAT, "%s: not valid JSON: %s", path, json_util_get_last_err());
    }
    return PTM_OK;
}

static ptm_status read_pooling(ptm_embedder *e, const char *path)
{
    json_object *cfg = NULL;
    ptm_status st = read_json(path, &cfg);
    if (st != PTM_OK || cfg == NULL) {
        return st != PTM_OK ? st : ptm__fail(PTM_E_NOT_FOUND, "%s: missing", path);
    }
    static const char *const keys[] = {"pooling_mode_mean_tokens", "pooling_mode_cls_token",
                                       "pooling_mode_max_tokens",
                                       "pooling_mode_mean_sqrt_len_tokens"};
    int n_on = 0;
    for (int i = 0; i < 4; i++) {
        json_object *v = json_object_object_get(cfg, keys[i]);
        if (v != NULL && !json_object_is_type(v, json_type_boolean)) {
            st = ptm__fail(PTM_E_FORMAT, "%s: \"%s\": expected boolean", path, keys[i]);
            break;
        }
        if (json_object_get_boolean(v)) {
            e->pooling = (enum pooling)i;
            n_on++;
        }
    }
    if (st == PTM_OK && n_on != 1) {
        st = ptm__fail(PTM_E_UNSUPPORTED, "%s: %d pooling modes are on; ptm supports exactly one",
                       path, n_on);
    }
    json_object_put(cfg);
    return st;
}

/* modules.json: the Transformer first, then an optional Pooling and Normalize. */
static ptm_status read_modules(ptm_embedder *e, const char *dir)
{
    char path[PATH_MAX + 64];
    json_object *mods = NULL;
    snprintf(path, sizeof path, "%s/modules.json", dir);
    ptm_status st = read_json(path, &mods);
    if (st != PTM_OK || mods == NULL) {
        e->pooling = POOL_MEAN; /* sentence-transformers' default for a plain model */
        return st;
    }
    if (!json_object_is_type(mods, json_type_array)) {
        json_object_put(mods);
        return ptm__fail(PTM_E_FORMAT, "%s: expected an array of modules", path);
    }
    for (size_t i = 0; st == PTM_OK && i < json_object_array_length(mods); i++) {
        json_object *m = json_object_array_get_idx(mods, i);
        const char *type = json_object_get_string(json_object_object_get(m, "type"));
        const char *sub = json_object_get_string(json_object_object_get(m, "path"));
        const char *last = type ? strrchr(type, '.') : NULL;
        last = last ? last + 1 : type;
        if (last == NULL || sub == NULL || strstr(sub, "..") || sub[0] == '/') {
            st = ptm__fail(PTM_E_FORMAT, "%s: module %zu: needs \"type\" and a relative \"path\"",
                           path, i);
        } else if (strcmp(last, "Transformer") == 0) {
            continue;
        } else if (strcmp(last, "Pooling") == 0) {
            char pool[PATH_MAX + 64];
            snprintf(pool, sizeof pool, "%s/%s/config.json", dir, sub);
            st = read_pooling(e, pool);
        } else if (strcmp(last, "Normalize") == 0) {
            e->normalize = 1;
        } else {
            st =
                ptm__fail(PTM_E_UNSUPPORTED, "%s: module type \"%s\" is not supported", path, type);
        }
    }
    json_object_put(mods);
    return st;
}

static ptm_status read_limits(ptm_embedder *e, const char *dir)
{
    char path[PATH_MAX + 64];
    json_object *cfg = NULL;
    int64_t max_pos = 512;
    if (ptm_config_get_int(ptm_model_config(e->model), "max_position_embeddings", &max_pos) !=
        PTM_OK) {
        max_pos = INT32_MAX;
    }
    int64_t tok_max = ptm_tokenizer_model_max_length(e->tok);
    e->max_len = (int32_t)(tok_max > 0 && tok_max < max_pos ? tok_max : max_pos);
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    ptm_status st = read_json(path, &cfg);
    if (st == PTM_OK && cfg != NULL) {
        json_object *v = json_object_object_get(cfg, "max_seq_length");
        if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0) {
            e->max_len =
                (int32_t)(json_object_get_int64(v) < max_pos ? json_object_get_int64(v) : max_pos);
        }
        e->lowercase = json_object_get_boolean(json_object_object_get(cfg, "do_lower_case"));
    }
    json_object_put(cfg);
    return st;
}

ptm_status ptm_embedder_load(const char *name, const struct ptm_load_opts *opts, ptm_embedder **out)
{
    *out = NULL;
    ptm_embedder *e = ptm__calloc(1, sizeof *e);
    if (e == NULL) {
        return ptm__fail(PTM_E_NOMEM, "embed: out of memory");
    }
    ptm_status st = ptm_model_load(name, opts, &e->model);
    const char *dir = e->model ? ptm_model_dir(e->model) : NULL;
    if (st == PTM_OK) {
        st = ptm_tokenizer_load(dir, &e->tok);
    }
    if (st == PTM_OK) {
        st = read_modules(e, dir);
    }
    if (st == PTM_OK) {
        st = read_limits(e, dir);
    }
    if (st == PTM_OK &&
        ptm_config_get_int(ptm_model_config(e->model), "hidden_size", &e->dim) != PTM_OK) {
        st = ptm__fail(PTM_E_FORMAT, "%s: config.json has no hidden_size", dir);
    }
    if (st != PTM_OK) {
        ptm_embedder_free(e);
        return st;
    }
    *out = e;
    return PTM_OK;
}

void ptm_embedder_free(ptm_embedder *e)
{
    if (e != NULL) {
        ptm_tokenizer_free(e->tok);
        ptm_model_free(e->model);
        ptm__free(e);
    }
}

int64_t ptm_embedder_dim(const ptm_embedder *e)
{
    return e->dim;
}

const char *ptm_embedder_pooling(const ptm_embedder *e)
{
    return pool_names[e->pooling];
}

int32_t ptm_embedder_normalizes(const ptm_embedder *e)
{
    return e->normalize;
}

/* Pool one sequence's token vectors h [len, dim] under its mask into out [dim]. */
static void pool_one(const ptm_embedder *e, const float *h, const int32_t *mask, int64_t len,
                     float *out)
{
    int64_t d = e->dim, n = 0;
    for (int64_t j = 0; j < d; j++) {
        out[j] = e->pooling == POOL_MAX ? -INFINITY : 0.0f;
    }
    if (e->pooling == POOL_CLS) {
        memcpy(out, h, (size_t)d * sizeof *out);
    } else {
        for (int64_t t = 0; t < len; t++) {
            if (!mask[t]) {
                continue;
            }
            n++;
            for (int64_t j = 0; j < d; j++) {
                float v = h[t * d + j];
                out[j] = e->pooling == POOL_MAX ? (v > out[j] ? v : out[j]) : out[j] + v;
            }
        }
        /* sentence-transformers clamps the token count at 1e-9 */
        float div = e->pooling == POOL_MEAN        ? (float)(n > 0 ? n : 1e-9)
                    : e->pooling == POOL_MEAN_SQRT ? sqrtf((float)(n > 0 ? n : 1e-9))
                                                   : 1.0f;
        for (int64_t j = 0; e->pooling != POOL_MAX && j < d; j++) {
            out[j] /= div;
        }
    }
    if (e->normalize) { /* torch.nn.functional.normalize: v / max(||v||, 1e-12) */
        double ss = 0;
        for (int64_t j = 0; j < d; j++) {
            ss += (double)out[j] * out[j];
        }
        float norm = (float)sqrt(ss);
        norm = norm > 1e-12f ? norm : 1e-12f;
        for (int64_t j = 0; j < d; j++) {
            out[j] /= norm;
        }
    }
}

static ptm_status wrap_i32(ptm_device *dev, int64_t b, int64_t s, int32_t *data, ptm_tensor_map *in,
                           const char *name)
{
    int64_t shape[2] = {b, s};
    ptm_tensor *t = NULL;
    ptm_status st = ptm_tensor_wrap_host(dev, PTM_I32, 2, shape, data, NULL, NULL, &t);
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(in, name, t);
    }
    ptm_tensor_free(t);
    return st;
}

/* Embed texts[order[0..n)] into out rows order[i]. */
static ptm_status encode_batch(ptm_embedder *e, const char *const *texts, const size_t *order,
                               size_t n, float *out)
{
    const char *batch[BATCH];
    for (size_t i = 0; i < n; i++) {
        batch[i] = texts[order[i]];
    }
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_LONGEST;
    o.max_length = e->max_len;
    o.padding = PTM_TOK_PAD_LONGEST;
    o.pad_to_multiple_of = 0;
    struct ptm_batch_encoding *enc = NULL;
    ptm_tensor_map *in = NULL, *outs = NULL;
    ptm_device *dev = ptm_model_device(e->model);
    ptm_status st = ptm_tokenizer_encode_batch(e->tok, batch, NULL, n, &o, &enc);
    if (st == PTM_OK && (st = ptm_tensor_map_new(&in)) == PTM_OK) {
        st = ptm_tensor_map_new(&outs);
    }
    int64_t b = (int64_t)n, s = enc ? (int64_t)enc->seq_len : 0;
    if (st == PTM_OK) {
        st = wrap_i32(dev, b, s, enc->ids, in, "input_ids");
    }
    if (st == PTM_OK) {
        st = wrap_i32(dev, b, s, enc->attention_mask, in, "attention_mask");
    }
    if (st == PTM_OK) {
        st = wrap_i32(dev, b, s, enc->type_ids, in, "token_type_ids");
    }
    if (st == PTM_OK) {
        st = ptm_model_forward(e->model, in, outs, 0);
    }
    ptm_tensor *h = st == PTM_OK ? ptm_tensor_map_get(outs, "last_hidden_state") : NULL;
    float *host = NULL;
    if (st == PTM_OK && (h == NULL || ptm_tensor_dim(h, 2) != e->dim)) {
        st = ptm__fail(PTM_E_INTERNAL, "embed: the model gave no [batch, seq, %lld] output",
                       (long long)e->dim);
    }
    if (st == PTM_OK && (host = ptm__malloc(ptm_tensor_nbytes(h))) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "embed: out of memory");
    }
    if (st == PTM_OK) {
        st = ptm_tensor_read(h, host, ptm_tensor_nbytes(h));
    }
    for (size_t i = 0; st == PTM_OK && i < n; i++) {
        pool_one(e, host + (int64_t)i * s * e->dim, enc->attention_mask + (int64_t)i * s, s,
                 out + order[i] * (size_t)e->dim);
    }
    ptm__free(host);
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(outs);
    ptm_batch_encoding_free(enc);
    return st;
}

/* Longest first; equal lengths keep input order, so batching is deterministic. */
static int by_length_desc(const void *a, const void *b, void *texts)
{
    const char *const *sort_texts = texts;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    size_t la = strlen(sort_texts[ia]), lb = strlen(sort_texts[ib]);
    if (la != lb) {
        return la < lb ? 1 : -1;
    }
    return (ia > ib) - (ia < ib);
}

/* Python's str.lower(), code point by code point; invalid UTF-8 becomes U+FFFD. */
static char *lowercase(const char *s)
{
    size_t len = strlen(s);
    char *res = ptm__malloc(len * 3 + 1), *w = res; /* a byte may become U+FFFD (3 bytes) */
    for (size_t i = 0; res != NULL && i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) {
            cp = 0xFFFD;
            k = 1;
        }
        w += utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)w);
        i += (size_t)k;
    }
    if (res != NULL) {
        *w = '\0';
    }
    return res;
}

ptm_status ptm_embedder_encode(ptm_embedder *e, const char *const *texts, size_t n, float *out)
{
    ptm__error_clear();
    if (e == NULL || (n > 0 && (texts == NULL || out == NULL))) {
        return ptm__fail(PTM_E_INVAL, "ptm_embedder_encode: NULL argument");
    }
    size_t *order = ptm__malloc((n + 1) * sizeof *order);
    char **lowered = e->lowercase ? ptm__calloc(n + 1, sizeof *lowered) : NULL;
    ptm_status st = PTM_OK;
    if (order == NULL || (e->lowercase && lowered == NULL)) {
        st = ptm__fail(PTM_E_NOMEM, "embed: out of memory");
    }
    for (size_t i = 0; st == PTM_OK && i < n; i++) {
        order[i] = i;
        if (texts[i] == NULL) {
            st = ptm__fail(PTM_E_INVAL, "ptm_embedder_encode: text %zu is NULL", i);
        } else if (lowered && (lowered[i] = lowercase(texts[i])) == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "embed: out of memory");
        }
    }
    const char *const *src = lowered ? (const char *const *)lowered : texts;
    if (st == PTM_OK) {
        qsort_r(order, n, sizeof *order, by_length_desc, (void *)src);
    }
    for (size_t i = 0; st == PTM_OK && i < n; i += BATCH) {
        st = encode_batch(e, src, order + i, n - i < BATCH ? n - i : BATCH, out);
    }
    for (size_t i = 0; lowered && i < n; i++) {
        ptm__free(lowered[i]);
    }
    ptm__free(lowered);
    ptm__free(order);
    return st;
}
