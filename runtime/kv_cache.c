/*
 * kv_cache.c - the decoder key/value cache and the forward call that uses it. The runtime
 * owns the cache: per layer a key and a value tensor [batch, max_len, kv_heads, head_dim] on
 * the model's device, allocated when the architecture's forward hook first asks, and one
 * length shared by every row, advanced here after a hook succeeds. What goes into the slots
 * (rotated keys, projections) is the architecture's business; sampling is generate.c's.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ptm/ptm.h"

struct kv_layer {
    ptm_tensor *k, *v;
};

struct ptm_kv_cache {
    ptm_model *m;
    int64_t batch, max_len, len;
    ptm_dtype dtype;
    int64_t n_kv_heads, head_dim; /* fixed by the first layer asked for */
    struct kv_layer *layers;
    int32_t n_layers;
    int32_t touched; /* the running hook asked for a layer: it honours the cache */
};

ptm_status ptm_kv_cache_new(ptm_model *m, int64_t batch, int64_t max_len, ptm_dtype dtype,
                            ptm_kv_cache **out)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (m == NULL || out == NULL || batch < 1 || max_len < 1) {
        return ptm__fail(PTM_E_INVAL, "kv cache: bad arguments (batch %lld, max_len %lld)",
                         (long long)batch, (long long)max_len);
    }
    if (dtype != PTM_F32) {
        const char *name = ptm_dtype_name(dtype);
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "kv cache: dtype %s is not supported (the attention kernels read F32 "
                         "keys and values)",
                         name ? name : "?");
    }
    ptm_kv_cache *c = ptm__calloc(1, sizeof *c);
    if (c == NULL) {
        return ptm__fail(PTM_E_NOMEM, "kv cache: out of memory");
    }
    c->m = m;
    c->batch = batch;
    c->max_len = max_len;
    c->dtype = dtype;
    *out = c;
    return PTM_OK;
}

void ptm_kv_cache_free(ptm_kv_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (int32_t i = 0; i < c->n_layers; i++) {
        ptm_tensor_free(c->layers[i].k);
        ptm_tensor_free(c->layers[i].v);
    }
    ptm__free(c->layers);
    ptm__free(c);
}

int64_t ptm_kv_cache_len(const ptm_kv_cache *c)
{
    return c ? c->len : 0;
}

int64_t ptm_kv_cache_max_len(const ptm_kv_cache *c)
{
    return c ? c->max_len : 0;
}

int64_t ptm_kv_cache_batch(const ptm_kv_cache *c)
{
    return c ? c->batch : 0;
}

void ptm_kv_cache_reset(ptm_kv_cache *c)
{
    if (c != NULL) {
        c->len = 0;
    }
}

static ptm_status grow_layers(ptm_kv_cache *c, int32_t n)
{
    struct kv_layer *l = ptm__realloc(c->layers, (size_t)n * sizeof *l);
    if (l == NULL) {
        return ptm__fail(PTM_E_NOMEM, "kv cache: out of memory");
    }
    memset(l + c->n_layers, 0, (size_t)(n - c->n_layers) * sizeof *l);
    c->layers = l;
    c->n_layers = n;
    return PTM_OK;
}

ptm_status ptm_kv_cache_layer(ptm_kv_cache *c, int32_t layer, int64_t n_kv_heads, int64_t head_dim,
                              ptm_tensor **k, ptm_tensor **v)
{
    *k = NULL;
    *v = NULL;
    if (layer < 0) {
        return ptm__fail(PTM_E_RANGE, "kv cache: layer %d is negative", (int)layer);
    }
    if (c->n_kv_heads == 0) {
        c->n_kv_heads = n_kv_heads;
        c->head_dim = head_dim;
    } else if (c->n_kv_heads != n_kv_heads || c->head_dim != head_dim) {
        return ptm__fail(PTM_E_INVAL,
                         "kv cache: layer %d asks for %lld heads of %lld, the cache holds %lld "
                         "of %lld",
                         (int)layer, (long long)n_kv_heads, (long long)head_dim,
                         (long long)c->n_kv_heads, (long long)c->head_dim);
    }
    ptm_status st = PTM_OK;
    if (layer >= c->n_layers && (st = grow_layers(c, layer + 1)) != PTM_OK) {
        return st;
    }
    struct kv_layer *l = &c->layers[layer];
    int64_t shape[4] = {c->batch, c->max_len, n_kv_heads, head_dim};
    ptm_device *dev = ptm_model_device(c->m);
    if (l->k == NULL && (st = ptm_tensor_new(dev, c->dtype, 4, shape, &l->k)) != PTM_OK) {
        return st;
    }
    if (l->v == NULL && (st = ptm_tensor_new(dev, c->dtype, 4, shape, &l->v)) != PTM_OK) {
        return st;
    }
    *k = l->k;
    *v = l->v;
    c->touched = 1;
    return PTM_OK;
}

/* The cache's checks before a forward: batch and room for the new tokens. The cache holds
 * the decoder's tokens: decoder_input_ids for an encoder-decoder model, else input_ids. */
static ptm_status check_room(const ptm_kv_cache *c, const ptm_tensor_map *inputs, int64_t *n_new)
{
    const char *main_name =
        ptm_tensor_map_get(inputs, "decoder_input_ids") ? "decoder_input_ids" : "input_ids";
    const ptm_tensor *ids = ptm_tensor_map_get(inputs, main_name);
    if (ids == NULL || ptm_tensor_ndim(ids) != 2) {
        return ptm__fail(PTM_E_INVAL, "forward: a cache needs input_ids [batch, seq]");
    }
    *n_new = ptm_tensor_dim(ids, 1);
    if (ptm_tensor_dim(ids, 0) != c->batch) {
        return ptm__fail(PTM_E_INVAL, "forward: %s has %lld rows, the cache %lld", main_name,
                         (long long)ptm_tensor_dim(ids, 0), (long long)c->batch);
    }
    if (c->len + *n_new > c->max_len) {
        return ptm__fail(PTM_E_RANGE,
                         "forward: %lld cached + %lld new tokens exceed the cache's max_len %lld",
                         (long long)c->len, (long long)*n_new, (long long)c->max_len);
    }
    return PTM_OK;
}

ptm_status ptm_model_forward_ex(ptm_model *m, const ptm_tensor_map *inputs, ptm_tensor_map *outputs,
                                const struct ptm_forward_opts *opts)
{
    ptm__error_clear();
    if (m == NULL || inputs == NULL || outputs == NULL) {
        return ptm__fail(PTM_E_INVAL, "forward: NULL argument");
    }
    const struct ptm_model_class *cls = ptm_model_class(m);
    ptm_kv_cache *cache = opts ? opts->cache : NULL;
    int64_t n_new = 0;
    ptm_status st = PTM_OK;
    if (cache != NULL && cache->m != m) {
        return ptm__fail(PTM_E_INVAL, "forward: the cache was made for another model");
    }
    if (cache != NULL && (st = check_room(cache, inputs, &n_new)) != PTM_OK) {
        return st;
    }
    struct ptm_forward_ctx ctx = {
        .struct_size = sizeof ctx,
        .inputs = inputs,
        .outputs = outputs,
        .output_hidden_states = opts ? opts->output_hidden_states : 0,
        .cache = cache,
        .logits_to_keep = opts ? opts->logits_to_keep : 0,
    };
    if (cache != NULL) {
        cache->touched = 0;
    }
    st = cls->forward(m, &ctx);
    if (st != PTM_OK && !ptm__error_is_set()) {
        st = ptm__fail(st, "%s: forward failed: %s", cls->name, ptm_status_str(st));
    }
    if (st == PTM_OK && cache != NULL && !cache->touched) {
        /* A hook that ignores the cache would leave its slots empty for the next call. */
        st = ptm__fail(PTM_E_UNSUPPORTED, "forward: %s does not use a key/value cache", cls->name);
    }
    if (st == PTM_OK && cache != NULL) {
        cache->len += n_new;
    }
    return st;
}
