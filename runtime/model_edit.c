/*
 * model_edit.c - changing a loaded model: input/output embeddings and tying, replacing a
 * parameter (for architecture hooks), resize_token_embeddings with HF's semantics, and the
 * dispatch of prune_heads and resize_position_embeddings to the architecture's hooks with
 * the config updates that make the result save and load back. Tags for the model card too.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "model.h"
#include "tensor.h"

ptm_tensor *ptm_model_input_embeddings(const ptm_model *m)
{
    return m->cls->input_embeddings ? ptm_model_param(m, m->cls->input_embeddings) : NULL;
}

ptm_tensor *ptm_model_output_embeddings(const ptm_model *m)
{
    return m->cls->output_embeddings ? ptm_model_param(m, m->cls->output_embeddings) : NULL;
}

ptm_status ptm_model_tie_weights(ptm_model *m)
{
    ptm__error_clear();
    return ptm__model_tie(m);
}

/* Give parameter i tensor t; parameters tied to it follow. */
static void set_param(ptm_model *m, long i, ptm_tensor *t)
{
    struct ptm__param *p = &m->params[i];
    p->ndim = ptm_tensor_ndim(t);
    for (int32_t d = 0; d < p->ndim; d++) {
        p->shape[d] = ptm_tensor_dim(t, d);
    }
    p->dtype = ptm_tensor_dtype(t);
    ptm_tensor_retain(t);
    ptm_tensor_free(p->t);
    p->t = t;
    for (size_t k = 0; k < m->n_params; k++) {
        if (m->params[k].tied_to == i) {
            set_param(m, (long)k, t);
        }
    }
}

ptm_status ptm_model_replace_param(ptm_model *m, const char *name, ptm_tensor *t)
{
    long i = ptm__model_find(m, name);
    if (i < 0) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: no parameter %s", m->cls->name, name);
    }
    if (m->params[i].tied_to >= 0) { /* write through to the storage's owner */
        i = m->params[i].tied_to;
    }
    set_param(m, i, t);
    return PTM_OK;
}

ptm_status ptm_model_set_input_embeddings(ptm_model *m, ptm_tensor *t)
{
    ptm__error_clear();
    ptm_tensor *old = ptm_model_input_embeddings(m);
    if (old == NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED, "%s has no input embeddings", m->cls->name);
    }
    if (ptm_tensor_ndim(t) != 2 || ptm_tensor_dim(t, 1) != ptm_tensor_dim(old, 1)) {
        return ptm__fail(PTM_E_INVAL, "set_input_embeddings: expected [rows, %lld]",
                         (long long)ptm_tensor_dim(old, 1));
    }
    ptm_status st = ptm_model_replace_param(m, m->cls->input_embeddings, t);
    if (st == PTM_OK) {
        st = ptm__model_tie(m);
    }
    if (st == PTM_OK) {
        st = ptm_config_set_int(m->cfg, "vocab_size", ptm_tensor_dim(t, 0));
    }
    return st;
}

/* Rows from the old rows' mean and 1e-9 x covariance (HF mean_resizing); the mean alone
 * when the scaled covariance is not positive definite. Cholesky, then mean + L z. */
static ptm_status mean_rows(const ptm_model *m, const struct ptm__param *p, float *data,
                            int64_t old_rows, int64_t rows, int64_t d)
{
    double *mean = ptm__calloc((size_t)d, sizeof *mean);
    double *cov = ptm__calloc((size_t)(d * d), sizeof *cov);
    if (mean == NULL || cov == NULL) {
        ptm__free(mean);
        ptm__free(cov);
        return ptm__fail(PTM_E_NOMEM, "resize: out of memory for a %lld x %lld covariance",
                         (long long)d, (long long)d);
    }
    for (int64_t r = 0; r < old_rows; r++) {
        for (int64_t j = 0; j < d; j++) {
            mean[j] += data[r * d + j] / (double)old_rows;
        }
    }
    for (int64_t r = 0; r < old_rows; r++) {
        const float *x = data + r * d;
        for (int64_t i = 0; i < d; i++) {
            for (int64_t j = 0; j <= i; j++) {
                cov[i * d + j] += 1e-9 * (x[i] - mean[i]) * (x[j] - mean[j]) / (double)old_rows;
            }
        }
    }
    int pd = 1; /* in-place Cholesky of the lower triangle */
    for (int64_t j = 0; j < d && pd; j++) {
        double s = cov[j * d + j];
        for (int64_t k = 0; k < j; k++) {
            s -= cov[j * d + k] * cov[j * d + k];
        }
        pd = s > 0;
        cov[j * d + j] = pd ? sqrt(s) : 0;
        for (int64_t i = j + 1; i < d && pd; i++) {
            double t = cov[i * d + j];
            for (int64_t k = 0; k < j; k++) {
                t -= cov[i * d + k] * cov[j * d + k];
            }
            cov[i * d + j] = t / cov[j * d + j];
        }
    }
    /* z ~ N(0, 1) from the param's own init stream: a unit normal spec. */
    struct ptm__param unit = *p;
    unit.init = (struct ptm_param_init){sizeof unit.init, PTM_INIT_NORMAL, 0.0f, 1.0f, -1};
    ptm__model_init_rows(m, &unit, data, rows, d, old_rows);
    for (int64_t r = old_rows; r < rows; r++) {
        float *z = data + r * d;
        for (int64_t i = d - 1; i >= 0; i--) { /* x = mean + L z, bottom-up keeps z intact */
            double v = mean[i];
            for (int64_t k = 0; pd && k <= i; k++) {
                v += cov[i * d + k] * z[k];
            }
            z[i] = (float)v;
        }
    }
    ptm__free(mean);
    ptm__free(cov);
    return PTM_OK;
}

/* Resize parameter name's first dim to rows: old rows kept, new rows by mean or init. */
static ptm_status resize_rows(ptm_model *m, const char *name, int64_t rows, int mean_resizing)
{
    long i = ptm__model_find(m, name);
    if (i < 0) {
        return PTM_OK;
    }
    if (m->params[i].tied_to >= 0) {
        return PTM_OK; /* follows its source */
    }
    struct ptm__param *p = &m->params[i];
    int64_t old_rows = p->shape[0], cols = p->ndim == 2 ? p->shape[1] : 1;
    float *data = ptm__malloc((size_t)(rows * cols) * sizeof *data + 1);
    float *old = ptm__malloc((size_t)(old_rows * cols) * sizeof *old + 1);
    ptm_tensor *t = NULL, *f32 = NULL;
    int64_t old_shape[2] = {old_rows, cols}, shape[2] = {rows, cols};
    ptm_status st = data && old ? PTM_OK : ptm__fail(PTM_E_NOMEM, "resize: out of memory");
    if (st == PTM_OK) { /* widen to F32 on the device, then read */
        st = ptm_tensor_new(p->dev, PTM_F32, p->ndim, old_shape, &f32);
    }
    if (st == PTM_OK && (st = ptm_op_convert(f32, p->t)) == PTM_OK) {
        st = ptm_tensor_read(f32, old, (size_t)(old_rows * cols) * sizeof *old);
    }
    if (st == PTM_OK) {
        int64_t keep = old_rows < rows ? old_rows : rows;
        memcpy(data, old, (size_t)(keep * cols) * sizeof *data);
        if (rows > old_rows && mean_resizing && p->ndim == 2) {
            memcpy(data, old, (size_t)(old_rows * cols) * sizeof *data);
            st = mean_rows(m, p, data, old_rows, rows, cols);
        } else if (rows > old_rows && p->ndim == 2) {
            ptm__model_init_rows(m, p, data, rows, cols, old_rows);
        } else if (rows > old_rows) { /* a bias: zeros, as HF's resized lm head bias */
            memset(data + old_rows, 0, (size_t)(rows - old_rows) * sizeof *data);
        }
    }
    if (st == PTM_OK && (st = ptm_tensor_new(p->dev, PTM_F32, p->ndim, shape, &t)) == PTM_OK) {
        st = ptm_tensor_write(t, data, (size_t)(rows * cols) * sizeof *data);
    }
    if (st == PTM_OK && p->dtype != PTM_F32) { /* back to the parameter's dtype */
        ptm_tensor *narrow = NULL;
        st = ptm_tensor_new(p->dev, p->dtype, p->ndim, shape, &narrow);
        if (st == PTM_OK && (st = ptm_op_convert(narrow, t)) == PTM_OK) {
            ptm_tensor_free(t);
            t = narrow;
        } else {
            ptm_tensor_free(narrow);
        }
    }
    if (st == PTM_OK) {
        set_param(m, i, t);
    }
    ptm_tensor_free(t);
    ptm_tensor_free(f32);
    ptm__free(data);
    ptm__free(old);
    return st;
}

ptm_status ptm_model_resize_param(ptm_model *m, const char *name, int64_t rows)
{
    long i = ptm__model_find(m, name);
    if (i < 0 || rows < 0) {
        return ptm__fail(PTM_E_NOT_FOUND, "%s: no parameter %s to resize", m->cls->name, name);
    }
    ptm_status st = resize_rows(
        m, m->params[i].tied_to >= 0 ? m->params[m->params[i].tied_to].name : name, rows, 0);
    return st == PTM_OK ? ptm__model_tie(m) : st;
}

/* The bias that goes with an output embedding "x.weight": "x.bias", if declared. */
static const char *output_bias(const ptm_model *m, char *buf, size_t cap)
{
    const char *w = m->cls->output_embeddings;
    size_t n = w ? strlen(w) : 0;
    if (n < 7 || strcmp(w + n - 7, ".weight") != 0 || n + 1 > cap) {
        return NULL;
    }
    snprintf(buf, cap, "%.*s.bias", (int)(n - 7), w);
    return ptm__model_find(m, buf) >= 0 ? buf : NULL;
}

ptm_status ptm_model_resize_token_embeddings(ptm_model *m, int64_t n, int64_t pad_to_multiple_of,
                                             int32_t mean_resizing)
{
    ptm__error_clear();
    ptm_tensor *in = ptm_model_input_embeddings(m);
    if (in == NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED, "%s has no input embeddings", m->cls->name);
    }
    if (n <= 0) {
        n = ptm_tensor_dim(in, 0);
    }
    if (pad_to_multiple_of > 0) {
        n = (n + pad_to_multiple_of - 1) / pad_to_multiple_of * pad_to_multiple_of;
    }
    char bias[256];
    const char *b = output_bias(m, bias, sizeof bias);
    ptm_status st = resize_rows(m, m->cls->input_embeddings, n, mean_resizing);
    if (st == PTM_OK && m->cls->output_embeddings) {
        st = resize_rows(m, m->cls->output_embeddings, n, mean_resizing);
    }
    if (st == PTM_OK && b != NULL) {
        long i = ptm__model_find(m, b);
        const char *src = m->params[i].tied_to >= 0 ? m->params[m->params[i].tied_to].name : b;
        st = resize_rows(m, src, n, 0);
    }
    if (st == PTM_OK) {
        st = ptm__model_tie(m);
    }
    if (st == PTM_OK) {
        st = ptm_config_set_int(m->cfg, "vocab_size", n);
    }
    return st;
}

ptm_status ptm_model_resize_position_embeddings(ptm_model *m, int64_t n)
{
    ptm__error_clear();
    const struct ptm_arch *a = m->arch->arch;
    if (!PTM_HAS(a, struct ptm_arch, resize_position_embeddings) ||
        a->resize_position_embeddings == NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "model_type \"%s\" has no absolute position "
                         "embeddings to resize",
                         a->model_type);
    }
    if (n <= 0) {
        return ptm__fail(PTM_E_RANGE, "resize_position_embeddings: %lld positions", (long long)n);
    }
    ptm_status st = a->resize_position_embeddings(m, n);
    return st == PTM_OK ? ptm_config_set_int(m->cfg, "max_position_embeddings", n) : st;
}

#define MAX_HEADS 4096

/* config pruned_heads[layer] as a set over original head numbers; returns the count. */
static int32_t pruned_set(const ptm_config *cfg, int32_t layer, unsigned char *set)
{
    char *json = NULL, key[16];
    int32_t n = 0;
    memset(set, 0, MAX_HEADS);
    if (ptm_config_get_json(cfg, "pruned_heads", &json) != PTM_OK || json == NULL) {
        ptm__error_clear();
        return 0;
    }
    json_object *obj = json_tokener_parse(json);
    ptm_free(json);
    snprintf(key, sizeof key, "%d", (int)layer);
    json_object *list = json_object_object_get(obj, key);
    for (size_t i = 0;
         json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
        int h = json_object_get_int(json_object_array_get_idx(list, i));
        if (h >= 0 && h < MAX_HEADS && !set[h]) {
            set[h] = 1;
            n++;
        }
    }
    json_object_put(obj);
    return n;
}

int32_t ptm_model_n_pruned_heads(const ptm_model *m, int32_t layer)
{
    unsigned char set[MAX_HEADS];
    return pruned_set(m->cfg, layer, set);
}

/* Write set back as config pruned_heads[layer] (keys strings, lists sorted, as HF). */
static ptm_status store_pruned(ptm_model *m, int32_t layer, const unsigned char *set)
{
    char *json = NULL, key[16];
    json_object *obj = NULL;
    if (ptm_config_get_json(m->cfg, "pruned_heads", &json) == PTM_OK && json != NULL) {
        obj = json_tokener_parse(json);
    }
    ptm_free(json);
    ptm__error_clear();
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        obj = json_object_new_object();
    }
    json_object *list = json_object_new_array();
    for (int h = 0; h < MAX_HEADS; h++) {
        if (set[h]) {
            json_object_array_add(list, json_object_new_int(h));
        }
    }
    snprintf(key, sizeof key, "%d", (int)layer);
    json_object_object_add(obj, key, list);
    ptm_status st = ptm_config_set_json(m->cfg, "pruned_heads", json_object_to_json_string(obj));
    json_object_put(obj);
    return st;
}

ptm_status ptm_model_prune_heads(ptm_model *m, int32_t layer, const int32_t *heads, int32_t n)
{
    ptm__error_clear();
    const struct ptm_arch *a = m->arch->arch;
    int64_t n_heads = 0, n_layers = 0;
    if (!PTM_HAS(a, struct ptm_arch, prune_heads) || a->prune_heads == NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED, "model_type \"%s\" does not support pruning heads",
                         a->model_type);
    }
    if (ptm_config_get_int(m->cfg, "num_attention_heads", &n_heads) != PTM_OK ||
        ptm_config_get_int(m->cfg, "num_hidden_layers", &n_layers) != PTM_OK) {
        return PTM_E_NOT_FOUND;
    }
    if (layer < 0 || layer >= n_layers || n_heads > MAX_HEADS || n < 0 || (n && !heads)) {
        return ptm__fail(PTM_E_RANGE, "prune_heads: layer %d of %lld", (int)layer,
                         (long long)n_layers);
    }
    unsigned char done[MAX_HEADS], want[MAX_HEADS];
    pruned_set(m->cfg, layer, done);
    memcpy(want, done, sizeof want);
    for (int32_t i = 0; i < n; i++) {
        if (heads[i] < 0 || heads[i] >= n_heads) {
            return ptm__fail(PTM_E_RANGE, "prune_heads: head %d of %lld in layer %d", (int)heads[i],
                             (long long)n_heads, (int)layer);
        }
        want[heads[i]] = 1;
    }
    /* The new heads, as indices among the layer's remaining heads. */
    int32_t current[MAX_HEADS], n_cur = 0, pos = 0, kept = 0;
    for (int h = 0; h < n_heads; h++) {
        if (!done[h]) {
            if (want[h]) {
                current[n_cur++] = pos;
            } else {
                kept++;
            }
            pos++;
        }
    }
    if (n_cur == 0) {
        return PTM_OK;
    }
    if (kept == 0) {
        return ptm__fail(PTM_E_RANGE, "prune_heads: pruning every head of layer %d", (int)layer);
    }
    ptm_status st = a->prune_heads(m, layer, current, n_cur);
    return st == PTM_OK ? store_pruned(m, layer, want) : st;
}

int64_t ptm_model_memory_footprint(const ptm_model *m)
{
    int64_t bytes = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        if (m->params[i].tied_to < 0) {
            bytes += (int64_t)ptm_tensor_nbytes(m->params[i].t);
        }
    }
    return bytes;
}

ptm_status ptm_model_add_tags(ptm_model *m, const char *const *tags)
{
    ptm__error_clear();
    for (; tags != NULL && *tags != NULL; tags++) {
        int dup = 0;
        for (size_t i = 0; i < m->tags.n && !dup; i++) {
            dup = strcmp(m->tags.names[i], *tags) == 0;
        }
        ptm_status st = dup ? PTM_OK : ptm__name_list_add(&m->tags, *tags);
        if (st != PTM_OK) {
            return st;
        }
    }
    return PTM_OK;
}

const char *ptm_model_main_input_name(const ptm_model *m)
{
    return m->cls->main_input_name ? m->cls->main_input_name : "input_ids";
}

int32_t ptm_model_can_generate(const ptm_model *m)
{
    return m->cls->can_generate;
}

const char *ptm_model_base_model_prefix(const ptm_model *m)
{
    static _Thread_local char buf[128];
    const char *p = m->arch->arch->base_model_prefix;
    if (m->cls->is_base || p == NULL || p[0] == '\0') {
        return "";
    }
    snprintf(buf, sizeof buf, "%s.", p);
    return buf;
}

const char *ptm_arch_builtin_name_at(const struct ptm_arch *arch, size_t i)
{
    if (arch == NULL || arch->builtins == NULL) {
        return NULL;
    }
    for (size_t k = 0;; k++) {
        const struct ptm_builtin_name *b =
            (const void *)((const char *)arch->builtins + k * arch->builtins->struct_size);
        if (b->name == NULL) {
            return NULL;
        }
        if (k == i) {
            return b->name;
        }
    }
}
