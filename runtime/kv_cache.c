/*
 * kv_cache.c - the decoder key/value cache and the forward call that uses it. The runtime
 * owns the cache: per layer a key and a value tensor [batch, max_len, kv_heads, head_dim] on
 * the model's device, allocated when the architecture's forward hook first asks (inside the
 * forward, so with a device_map a layer's slots move to its layer's device at the first write
 * and stay there, xfer.c), and one length shared by every row, advanced here after a hook
 * succeeds; for encoder-decoder models also per layer the cross-attention keys and values [batch,
 * enc_len, heads, head_dim], filled by the first forward of a request and reused by the later ones.
 * Beam search rebuilds rows from rows (ptm_kv_cache_gather). What goes into the slots (rotated
 * keys, projections) is the architecture's business; sampling and beam search are generate.c's and
 * generate_beam.c's.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "generate.h"
#include "model.h"
#include "ptm/ptm.h"

struct kv_layer {
    ptm_tensor *k, *v;
    ptm_tensor *k2, *v2; /* gather's second buffers, kept for the next step; or NULL */
    ptm_tensor *ck, *cv; /* cross-attention keys and values, or NULL */
};

struct ptm_kv_cache {
    ptm_model *m;
    int64_t batch, max_len, len;
    ptm_dtype dtype;
    int64_t n_kv_heads, head_dim;              /* fixed by the first layer asked for */
    int64_t n_cross_heads, cross_dim, enc_len; /* fixed by the first cross layer asked for */
    struct kv_layer *layers;
    int32_t n_layers;
    int32_t touched;     /* the running hook asked for a layer: it honours the cache */
    int32_t cross_asked; /* the running hook asked for a cross layer */
    int32_t cross_ready; /* the cross layers hold this request's keys and values */
    /* cross_src[i]: the request row whose encoder keys cross row i holds (gather moves rows
     * only when that changes). NULL until a cross layer exists. */
    int64_t *cross_src;
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
    if (dtype != PTM_F32 && dtype != PTM_F16 && dtype != PTM_BF16) {
        const char *name = ptm_dtype_name(dtype);
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "kv cache: dtype %s is not supported; expected F32, F16 or BF16",
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
        struct kv_layer *l = &c->layers[i];
        ptm_tensor *all[] = {l->k, l->v, l->k2, l->v2, l->ck, l->cv};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) {
            ptm_tensor_free(all[j]);
        }
    }
    ptm__free(c->layers);
    ptm__free(c->cross_src);
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
        c->cross_ready = 0;
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

/* A key and a value tensor, both or neither (a layer's pair is never half there). */
static ptm_status new_pair(ptm_device *dev, ptm_dtype dtype, const int64_t shape[4], ptm_tensor **k,
                           ptm_tensor **v)
{
    ptm_status st = ptm_tensor_new(dev, dtype, 4, shape, k);
    if (st == PTM_OK && (st = ptm_tensor_new(dev, dtype, 4, shape, v)) != PTM_OK) {
        ptm_tensor_free(*k);
        *k = NULL;
    }
    return st;
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
    if (l->k == NULL && (st = new_pair(dev, c->dtype, shape, &l->k, &l->v)) != PTM_OK) {
        return st;
    }
    *k = l->k;
    *v = l->v;
    c->touched = 1;
    return PTM_OK;
}

ptm_status ptm_kv_cache_cross_layer(ptm_kv_cache *c, int32_t layer, int64_t n_heads,
                                    int64_t head_dim, int64_t enc_len, ptm_tensor **k,
                                    ptm_tensor **v, int32_t *fill)
{
    *k = NULL;
    *v = NULL;
    *fill = 1;
    if (layer < 0) {
        return ptm__fail(PTM_E_RANGE, "kv cache: cross layer %d is negative", (int)layer);
    }
    if (c->n_cross_heads == 0) {
        c->n_cross_heads = n_heads;
        c->cross_dim = head_dim;
        c->enc_len = enc_len;
    } else if (c->n_cross_heads != n_heads || c->cross_dim != head_dim || c->enc_len != enc_len) {
        return ptm__fail(PTM_E_INVAL,
                         "kv cache: cross layer %d asks for %lld positions of %lld heads of "
                         "%lld, the cache holds %lld of %lld of %lld",
                         (int)layer, (long long)enc_len, (long long)n_heads, (long long)head_dim,
                         (long long)c->enc_len, (long long)c->n_cross_heads,
                         (long long)c->cross_dim);
    }
    ptm_status st = PTM_OK;
    if (layer >= c->n_layers && (st = grow_layers(c, layer + 1)) != PTM_OK) {
        return st;
    }
    if (c->cross_src == NULL) {
        if ((c->cross_src = ptm__malloc((size_t)c->batch * sizeof *c->cross_src)) == NULL) {
            return ptm__fail(PTM_E_NOMEM, "kv cache: out of memory");
        }
        for (int64_t i = 0; i < c->batch; i++) {
            c->cross_src[i] = i;
        }
    }
    struct kv_layer *l = &c->layers[layer];
    int64_t shape[4] = {c->batch, enc_len, n_heads, head_dim};
    ptm_device *dev = ptm_model_device(c->m);
    if (l->ck == NULL && (st = new_pair(dev, c->dtype, shape, &l->ck, &l->cv)) != PTM_OK) {
        return st;
    }
    *k = l->ck;
    *v = l->cv;
    *fill = !c->cross_ready;
    c->cross_asked = 1;
    return PTM_OK;
}

ptm_status ptm__rows_copy(ptm_tensor *dst, int64_t dst_row, ptm_tensor *src, int64_t src_row,
                          int64_t len)
{
    ptm_tensor *dr = NULL, *d = NULL, *sr = NULL, *s = NULL;
    ptm_status st = ptm_tensor_narrow(dst, 0, dst_row, 1, &dr);
    if (st == PTM_OK) {
        st = ptm_tensor_narrow(dr, 1, 0, len, &d);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_narrow(src, 0, src_row, 1, &sr);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_narrow(sr, 1, 0, len, &s);
    }
    if (st == PTM_OK) {
        st = ptm_op_convert(d, s);
    }
    ptm_tensor_free(dr);
    ptm_tensor_free(d);
    ptm_tensor_free(sr);
    ptm_tensor_free(s);
    return st;
}

/* *spare = a tensor shaped like t but with n rows: the kept one when it fits, else new. */
static ptm_status spare_for(const ptm_tensor *t, int64_t n, ptm_tensor **spare)
{
    if (*spare != NULL && ptm_tensor_dim(*spare, 0) == n) {
        return PTM_OK;
    }
    ptm_tensor_free(*spare);
    *spare = NULL;
    int64_t shape[4];
    for (int32_t d = 0; d < 4; d++) {
        shape[d] = ptm_tensor_dim(t, d);
    }
    shape[0] = n;
    return ptm_tensor_new(ptm_tensor_device(t), ptm_tensor_dtype(t), 4, shape, spare);
}

/* Rows of src (positions [0, len)) into a fresh or kept buffer *dst of n rows. */
static ptm_status gather_into(ptm_tensor *src, const int64_t *rows, int64_t n, int64_t len,
                              ptm_tensor **dst)
{
    ptm_status st = spare_for(src, n, dst);
    for (int64_t i = 0; st == PTM_OK && len > 0 && i < n; i++) {
        st = ptm__rows_copy(*dst, i, src, rows[i], len);
    }
    return st;
}

/* Whether cross rows must move: a row is to hold another request row's keys, or the batch
 * changes. want[i] receives the request row that new row i stands for. */
static int cross_moves(const ptm_kv_cache *c, const int64_t *rows, int64_t n, int64_t *want)
{
    int moves = n != c->batch;
    for (int64_t i = 0; i < n; i++) {
        want[i] = c->cross_src[rows[i]];
        moves |= i >= c->batch || want[i] != c->cross_src[i];
    }
    return moves;
}

/* Phase one of a gather: every new buffer written; nothing of the cache changed yet. The new
 * self-attention rows go to k2 / v2, moved cross rows to *ck / *cv (arrays of n_layers). */
static ptm_status gather_stage(ptm_kv_cache *c, const int64_t *rows, int64_t n, int cross,
                               ptm_tensor **ck, ptm_tensor **cv)
{
    ptm_status st = PTM_OK;
    for (int32_t i = 0; st == PTM_OK && i < c->n_layers; i++) {
        struct kv_layer *l = &c->layers[i];
        if (l->k != NULL) {
            st = gather_into(l->k, rows, n, c->len, &l->k2);
            if (st == PTM_OK) {
                st = gather_into(l->v, rows, n, c->len, &l->v2);
            }
        }
        if (st == PTM_OK && cross && l->ck != NULL) {
            int64_t enc = c->enc_len;
            st = gather_into(l->ck, rows, n, c->cross_ready ? enc : 0, &ck[i]);
            if (st == PTM_OK) {
                st = gather_into(l->cv, rows, n, c->cross_ready ? enc : 0, &cv[i]);
            }
        }
    }
    return st;
}

/* Phase two: swap the staged buffers in. Cannot fail. */
static void gather_commit(ptm_kv_cache *c, int64_t n, int cross, ptm_tensor **ck, ptm_tensor **cv)
{
    for (int32_t i = 0; i < c->n_layers; i++) {
        struct kv_layer *l = &c->layers[i];
        ptm_tensor *t = l->k;
        l->k = l->k2;
        l->k2 = t;
        t = l->v;
        l->v = l->v2;
        l->v2 = t;
        if (n != c->batch) { /* the old buffers have the old batch: no use as spares */
            ptm_tensor_free(l->k2);
            ptm_tensor_free(l->v2);
            l->k2 = l->v2 = NULL;
        }
        if (cross && l->ck != NULL) {
            ptm_tensor_free(l->ck);
            ptm_tensor_free(l->cv);
            l->ck = ck[i];
            l->cv = cv[i];
            ck[i] = cv[i] = NULL;
        }
    }
}

ptm_status ptm_kv_cache_gather(ptm_kv_cache *c, const int64_t *rows, int64_t n_rows)
{
    ptm__error_clear();
    if (c == NULL || rows == NULL || n_rows < 1) {
        return ptm__fail(PTM_E_INVAL, "kv cache: gather: bad arguments (n_rows %lld)",
                         (long long)n_rows);
    }
    for (int64_t i = 0; i < n_rows; i++) {
        if (rows[i] < 0 || rows[i] >= c->batch) {
            return ptm__fail(PTM_E_RANGE, "kv cache: gather: rows[%lld] = %lld outside [0, %lld)",
                             (long long)i, (long long)rows[i], (long long)c->batch);
        }
    }
    int64_t *want = ptm__malloc((size_t)n_rows * sizeof *want);
    ptm_tensor **staged = ptm__calloc((size_t)c->n_layers * 2 + 1, sizeof *staged);
    if (want == NULL || staged == NULL) {
        ptm__free(want);
        ptm__free(staged);
        return ptm__fail(PTM_E_NOMEM, "kv cache: out of memory");
    }
    int cross = c->cross_src != NULL && cross_moves(c, rows, n_rows, want);
    ptm_tensor **ck = staged, **cv = staged + c->n_layers;
    ptm_status st = gather_stage(c, rows, n_rows, cross, ck, cv);
    if (st == PTM_OK) {
        gather_commit(c, n_rows, cross, ck, cv);
        if (c->cross_src != NULL) {
            ptm__free(c->cross_src);
            c->cross_src = want; /* want[i] = the old cross_src[rows[i]] */
            want = NULL;
        }
        c->batch = n_rows;
    }
    for (int32_t i = 0; i < 2 * c->n_layers; i++) {
        ptm_tensor_free(staged[i]);
    }
    ptm__free(staged);
    ptm__free(want);
    return st;
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
        cache->cross_asked = 0;
    }
    st = ptm__model_run(m, &ctx);
    if (st == PTM_OK && cache != NULL && !cache->touched) {
        /* A hook that ignores the cache would leave its slots empty for the next call. */
        st = ptm__fail(PTM_E_UNSUPPORTED, "forward: %s does not use a key/value cache", cls->name);
    }
    if (st == PTM_OK && cache != NULL) {
        cache->len += n_new;
        cache->cross_ready |= cache->cross_asked;
    }
    return st;
}
