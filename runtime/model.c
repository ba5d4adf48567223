/*
 * model.c - the model object: parameters declared by the architecture (HF names, shapes,
 * init specs), a name index, seeded initialisation (HF _init_weights distributions), tying,
 * the forward call, and the accessors. Loading from files is model_load.c; saving is
 * model_save.c.
 */
#include "model.h"

#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "device_map.h"
#include "error.h"
#include "half.h"
#include "log.h"
#include "tensor.h"
#include "xfer.h"

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static ptm_status reindex(ptm_model *m)
{
    size_t cap = 64;
    while (cap < m->n_params * 2) {
        cap *= 2;
    }
    size_t *index = ptm__malloc(cap * sizeof *index);
    if (index == NULL) {
        return ptm__fail(PTM_E_NOMEM, "model: out of memory");
    }
    memset(index, 0xff, cap * sizeof *index);
    for (size_t i = 0; i < m->n_params; i++) {
        size_t h = hash_name(m->params[i].name) & (cap - 1);
        while (index[h] != SIZE_MAX) {
            h = (h + 1) & (cap - 1);
        }
        index[h] = i;
    }
    ptm__free(m->index);
    m->index = index;
    m->index_cap = cap;
    return PTM_OK;
}

long ptm__model_find(const ptm_model *m, const char *name)
{
    if (m->index == NULL) {
        return -1;
    }
    size_t h = hash_name(name) & (m->index_cap - 1);
    while (m->index[h] != SIZE_MAX) {
        if (strcmp(m->params[m->index[h]].name, name) == 0) {
            return (long)m->index[h];
        }
        h = (h + 1) & (m->index_cap - 1);
    }
    return -1;
}

ptm_status ptm__name_list_add(struct ptm__name_list *l, const char *name)
{
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **names = ptm__realloc(l->names, cap * sizeof *names);
        if (names == NULL) {
            return ptm__fail(PTM_E_NOMEM, "model: out of memory");
        }
        l->names = names;
        l->cap = cap;
    }
    if ((l->names[l->n] = ptm__strdup(name)) == NULL) {
        return ptm__fail(PTM_E_NOMEM, "model: out of memory");
    }
    l->names[++l->n] = NULL;
    return PTM_OK;
}

static int keep_in_fp32(const struct ptm_model_class *cls, const char *name)
{
    for (const char *const *p = cls->keep_in_fp32; p != NULL && *p != NULL; p++) {
        if (strstr(name, *p) != NULL) {
            return 1;
        }
    }
    return 0;
}

ptm_status ptm_model_declare(ptm_model *m, const char *name, int32_t ndim, const int64_t *shape,
                             const struct ptm_param_init *init)
{
    if (m == NULL || name == NULL || shape == NULL || ndim < 1 || ndim > PTM_MAX_DIMS) {
        return ptm__fail(PTM_E_INVAL, "declare: bad arguments for parameter \"%s\"",
                         name ? name : "(null)");
    }
    if (ptm__model_find(m, name) >= 0) {
        return ptm__fail(PTM_E_PLUGIN, "declare: parameter \"%s\" declared twice", name);
    }
    if (m->n_params == m->cap_params) {
        size_t cap = m->cap_params ? m->cap_params * 2 : 64;
        struct ptm__param *p = ptm__realloc(m->params, cap * sizeof *p);
        if (p == NULL) {
            return ptm__fail(PTM_E_NOMEM, "model: out of memory");
        }
        m->params = p;
        m->cap_params = cap;
    }
    struct ptm__param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    if ((p->name = ptm__strdup(name)) == NULL) {
        return ptm__fail(PTM_E_NOMEM, "model: out of memory");
    }
    p->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            ptm__free(p->name);
            return ptm__fail(PTM_E_PLUGIN, "declare: parameter \"%s\" dimension %d is %lld", name,
                             (int)i, (long long)shape[i]);
        }
        p->shape[i] = shape[i];
    }
    if (init != NULL) {
        p->init = *init;
    } else {
        p->init.kind = PTM_INIT_ZEROS;
    }
    p->keep_f32 = keep_in_fp32(m->cls, name);
    /* Vectors (biases, norms) compute in F32; they are saved back in the model's dtype. */
    p->dtype = ndim >= 2 && !p->keep_f32 ? m->dtype : PTM_F32;
    p->tied_to = -1;
    p->dev = m->dev;
    m->n_params++;
    /* Rebuilding the index is O(n) per declare; fine for hundreds of parameters, and the
     * index is exact at every step so duplicates are caught. */
    return reindex(m);
}

static void free_params(ptm_model *m)
{
    for (size_t i = 0; i < m->n_params; i++) {
        ptm__free(m->params[i].name);
        ptm_tensor_free(m->params[i].t);
    }
    ptm__free(m->params);
    ptm__free(m->index);
}

void ptm_model_free(ptm_model *m)
{
    if (m == NULL) {
        return;
    }
    free_params(m);
    struct ptm__name_list *lists[] = {&m->info[0], &m->info[1], &m->info[2], &m->tags};
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < lists[k]->n; i++) {
            ptm__free(lists[k]->names[i]);
        }
        ptm__free(lists[k]->names);
    }
    ptm__device_report_clear(&m->placed);
    ptm_config_free(m->cfg);
    ptm__free(m->dir);
    ptm__free(m);
}

ptm_status ptm__model_create(ptm_config *cfg, const struct ptm__arch_entry *arch,
                             const struct ptm_model_class *cls, ptm_device *dev, ptm_dtype dtype,
                             uint64_t seed, ptm_model **out)
{
    *out = NULL;
    ptm_model *m = ptm__calloc(1, sizeof *m);
    if (m == NULL) {
        ptm_config_free(cfg);
        return ptm__fail(PTM_E_NOMEM, "model: out of memory");
    }
    m->cfg = cfg;
    m->arch = arch;
    m->cls = cls;
    m->dev = dev;
    m->dtype = dtype;
    m->seed = seed;
    ptm_status st = reindex(m);
    if (st == PTM_OK) {
        st = cls->declare(m);
        if (st != PTM_OK && !ptm__error_is_set()) {
            st = ptm__fail(st, "%s: declare failed", cls->name);
        }
    }
    if (st != PTM_OK) {
        ptm_model_free(m);
        return st;
    }
    *out = m;
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Initialisation: one xoshiro256** stream per parameter, seeded by (seed, name), so a weight's
 * values do not depend on which others were missing. Normal samples by Box-Muller. */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double rng_uniform(struct rng *r) /* in (0, 1) */
{
    return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void fill(float *x, int64_t n, const struct ptm_param_init *init, struct rng *r)
{
    for (int64_t i = 0; i < n; i++) {
        switch (init->kind) {
        case PTM_INIT_NORMAL: {
            double u = rng_uniform(r), v = rng_uniform(r);
            double z = sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
            x[i] = (float)(init->a + init->b * z);
            break;
        }
        case PTM_INIT_UNIFORM:
            x[i] = (float)(init->a + (init->b - init->a) * rng_uniform(r));
            break;
        case PTM_INIT_ONES:
            x[i] = 1.0f;
            break;
        case PTM_INIT_CONST:
            x[i] = init->a;
            break;
        default:
            x[i] = 0.0f;
        }
    }
}

void ptm__model_init_rows(const ptm_model *m, const struct ptm__param *p, float *data, int64_t rows,
                          int64_t cols, int64_t from)
{
    /* A stream of its own (salted) so resized rows differ from the first init's rows. */
    uint64_t x = m->seed ^ hash_name(p->name) ^ 0x7265736f72ull;
    struct rng r = {{splitmix(&x), splitmix(&x), splitmix(&x), splitmix(&x)}};
    fill(data + from * cols, (rows - from) * cols, &p->init, &r);
    int64_t pad = p->init.padding_idx;
    if (p->init.struct_size >= sizeof p->init && pad >= from && pad < rows) {
        memset(data + pad * cols, 0, (size_t)cols * sizeof *data);
    }
}

static ptm_status init_param(ptm_model *m, struct ptm__param *p)
{
    int64_t n = 1;
    for (int32_t i = 0; i < p->ndim; i++) {
        n *= p->shape[i];
    }
    float *host = ptm__malloc((size_t)n * sizeof *host + 1);
    if (host == NULL) {
        return ptm__fail(PTM_E_NOMEM, "model: out of memory initialising %s", p->name);
    }
    uint64_t x = m->seed ^ hash_name(p->name);
    struct rng r = {{splitmix(&x), splitmix(&x), splitmix(&x), splitmix(&x)}};
    fill(host, n, &p->init, &r);
    int64_t pad = p->init.padding_idx;
    if (p->init.struct_size >= sizeof p->init && pad >= 0 && p->ndim == 2 && pad < p->shape[0]) {
        memset(host + pad * p->shape[1], 0, (size_t)p->shape[1] * sizeof *host);
    }
    ptm_status st = ptm_tensor_new(p->dev, p->dtype, p->ndim, p->shape, &p->t);
    if (st == PTM_OK) {
        if (p->dtype != PTM_F32) {
            ptm__f32_to_dtype(host, host, (size_t)n, p->dtype); /* narrows in place */
        }
        st = ptm_tensor_write(p->t, host, ptm_tensor_nbytes(p->t));
    }
    ptm__free(host);
    return st;
}

/* Tie each pair {tied, source} the class lists. The pair that ties the output embeddings
 * follows config tie_word_embeddings (default true); other pairs (a head's bias, T5's
 * embed_tokens to shared) always tie. */
ptm_status ptm__model_tie(ptm_model *m)
{
    int32_t tie_emb = 1;
    if (ptm_config_get_bool(m->cfg, "tie_word_embeddings", &tie_emb) != PTM_OK) {
        tie_emb = 1;
        ptm__error_clear();
    }
    for (const char *const *p = m->cls->tied_weights; p != NULL && p[0] && p[1]; p += 2) {
        long a = ptm__model_find(m, p[0]), b = ptm__model_find(m, p[1]);
        int is_emb = m->cls->output_embeddings && strcmp(p[0], m->cls->output_embeddings) == 0;
        if (a < 0 || b < 0 || (is_emb && !tie_emb)) {
            continue;
        }
        struct ptm__param *pa = &m->params[a];
        ptm_tensor_free(pa->t);
        pa->t = ptm_tensor_retain(m->params[b].t);
        pa->tied_to = b;
    }
    return PTM_OK;
}

int ptm__model_is_tied_target(const ptm_model *m, const char *name)
{
    int32_t tie_emb = 1;
    if (ptm_config_get_bool(m->cfg, "tie_word_embeddings", &tie_emb) != PTM_OK) {
        tie_emb = 1;
        ptm__error_clear();
    }
    for (const char *const *p = m->cls->tied_weights; p != NULL && p[0] && p[1]; p += 2) {
        int is_emb = m->cls->output_embeddings && strcmp(p[0], m->cls->output_embeddings) == 0;
        if (strcmp(p[0], name) == 0 && (!is_emb || tie_emb)) {
            return 1;
        }
    }
    return 0;
}

ptm_status ptm__model_finish(ptm_model *m, int record_missing)
{
    for (size_t i = 0; i < m->n_params; i++) {
        struct ptm__param *p = &m->params[i];
        if (p->t != NULL || ptm__model_is_tied_target(m, p->name)) {
            continue;
        }
        ptm_status st = init_param(m, p);
        if (st == PTM_OK && record_missing) {
            st = ptm__name_list_add(&m->info[PTM_LOAD_MISSING], p->name);
        }
        if (st != PTM_OK) {
            return st;
        }
    }
    ptm_status st = ptm__model_tie(m);
    for (size_t i = 0; st == PTM_OK && i < m->n_params; i++) {
        if (m->params[i].t == NULL) {
            st = ptm__fail(PTM_E_INTERNAL, "model: parameter %s has no tensor after tying",
                           m->params[i].name);
        }
    }
    if (st == PTM_OK && m->cls->init_weights != NULL) {
        st = m->cls->init_weights(m);
    }
    if (st == PTM_OK) {
        st = ptm__device_report_make(m);
    }
    return st;
}

/* ------------------------------------------------------------------------------------------ */

ptm_status ptm__model_dtype(const ptm_config *cfg, const char *want, ptm_dtype *out)
{
    *out = PTM_F32;
    if (want == NULL || want[0] == '\0') {
        return PTM_OK;
    }
    if (strcmp(want, "auto") != 0) {
        ptm_status st = ptm_dtype_parse(want, out);
        if (st == PTM_OK && ptm_dtype_size(*out) == 0) {
            *out = PTM_F32;
            return ptm__fail(PTM_E_INVAL,
                             "dtype %s: a block-quantized type; load a float dtype and set "
                             "quantize=\"int8\" instead",
                             want);
        }
        return st;
    }
    const char *s = NULL;
    if (ptm_config_get_string(cfg, "torch_dtype", &s) != PTM_OK || s == NULL) {
        ptm__error_clear();
        return PTM_OK;
    }
    ptm_dtype dt;
    if (ptm_dtype_parse(s, &dt) == PTM_OK && (dt == PTM_F32 || dt == PTM_F16 || dt == PTM_BF16)) {
        *out = dt;
    }
    ptm__error_clear();
    return PTM_OK;
}

ptm_status ptm__model_attn(ptm_device *dev, const struct ptm_load_opts *o)
{
    const char *want =
        o && PTM_HAS(o, struct ptm_load_opts, attn_implementation) ? o->attn_implementation : NULL;
    const struct ptm_backend *be = dev->backend->be;
    if (want != NULL && strcmp(want, "auto") && strcmp(want, "fused") && strcmp(want, "sdpa")) {
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "attn_implementation \"%s\": ptm has only the "
                         "backend's fused attention (\"fused\"; \"sdpa\" and \"auto\" "
                         "choose it), which computes the same softmax(QK^T)V",
                         want);
    }
    if (!PTM_HAS(be, struct ptm_backend, attention) || be->attention == NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "attn_implementation: backend %s has no fused "
                         "attention kernel",
                         be->name);
    }
    return PTM_OK;
}

const char *ptm_model_attn_implementation(const ptm_model *m)
{
    return "fused";
}

static const struct ptm_model_class *base_class(const struct ptm_arch *a)
{
    for (size_t i = 0;; i++) {
        const struct ptm_model_class *c =
            (const void *)((const char *)a->classes + i * a->classes->struct_size);
        if (c->name == NULL) {
            return NULL;
        }
        if (c->is_base) {
            return c;
        }
    }
}

ptm_status ptm__model_pick_class(const ptm_config *cfg, const char *class_name,
                                 const struct ptm__arch_entry **arch,
                                 const struct ptm_model_class **cls)
{
    const char *mt = ptm_config_model_type(cfg);
    *arch = ptm__registry_arch(mt);
    if (*arch == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "model_type \"%s\": no plugin registers it",
                         mt ? mt : "(none)");
    }
    char first[128] = "";
    if (class_name == NULL) {
        char *json = NULL;
        if (ptm_config_get_json(cfg, "architectures", &json) == PTM_OK && json != NULL) {
            json_object *arr = json_tokener_parse(json);
            json_object *f = json_object_is_type(arr, json_type_array)
                                 ? json_object_array_get_idx(arr, 0)
                                 : NULL;
            if (json_object_is_type(f, json_type_string)) {
                snprintf(first, sizeof first, "%s", json_object_get_string(f));
                class_name = first;
            }
            json_object_put(arr);
        }
        ptm_free(json);
        ptm__error_clear();
    }
    if (class_name == NULL) {
        *cls = base_class((*arch)->arch);
        return *cls ? PTM_OK : ptm__fail(PTM_E_NOT_FOUND, "model_type \"%s\": no base class", mt);
    }
    const struct ptm__arch_entry *owner = ptm__registry_class(class_name, cls);
    if (owner == NULL) {
        return ptm__fail(PTM_E_NOT_FOUND, "class \"%s\" is not registered by any plugin",
                         class_name);
    }
    if (owner != *arch) {
        return ptm__fail(PTM_E_INVAL,
                         "class \"%s\" belongs to model_type \"%s\", the config "
                         "says \"%s\"",
                         class_name, owner->arch->model_type, mt);
    }
    return PTM_OK;
}

ptm_status ptm_model_new(const ptm_config *cfg, const char *class_name,
                         const struct ptm_load_opts *opts, ptm_model **out)
{
    ptm__error_clear();
    *out = NULL;
    const struct ptm__arch_entry *arch = NULL;
    const struct ptm_model_class *cls = NULL;
    ptm_device *dev = NULL;
    ptm_dtype dtype = PTM_F32;
    ptm_config *copy = NULL;
    const char *devname = opts && opts->device ? opts->device : "cpu";
    ptm_status st = ptm__model_pick_class(cfg, class_name, &arch, &cls);
    if (st == PTM_OK) {
        st = ptm__model_dtype(cfg, opts ? opts->dtype : NULL, &dtype);
    }
    if (st == PTM_OK) {
        st = ptm_device_get(devname, &dev);
    }
    if (st == PTM_OK) {
        st = ptm__model_attn(dev, opts);
    }
    if (st == PTM_OK) {
        st = ptm_config_copy(cfg, &copy);
    }
    if (st == PTM_OK) {
        st = ptm__model_create(copy, arch, cls, dev, dtype, opts ? opts->seed : 0, out);
    }
    if (st == PTM_OK && (st = ptm__device_map_apply(*out, opts)) != PTM_OK) {
        ptm_model_free(*out);
        *out = NULL;
    }
    if (st == PTM_OK && (st = ptm__model_finish(*out, 0)) != PTM_OK) {
        ptm_model_free(*out);
        *out = NULL;
    }
    return st;
}

ptm_status ptm_model_forward(ptm_model *m, const ptm_tensor_map *inputs, ptm_tensor_map *outputs,
                             int32_t output_hidden_states)
{
    ptm__error_clear();
    if (m == NULL || inputs == NULL || outputs == NULL) {
        return ptm__fail(PTM_E_INVAL, "forward: NULL argument");
    }
    struct ptm_forward_ctx ctx = {
        .struct_size = sizeof ctx,
        .inputs = inputs,
        .outputs = outputs,
        .output_hidden_states = output_hidden_states,
    };
    return ptm__model_run(m, &ctx);
}

ptm_status ptm__model_run(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm__xfer_scope_enter();
    ptm_status st = m->cls->forward(m, ctx);
    ptm__xfer_scope_leave();
    if (st != PTM_OK && !ptm__error_is_set()) {
        st = ptm__fail(st, "%s: forward failed: %s", m->cls->name, ptm_status_str(st));
    }
    if (st == PTM_OK) { /* with a device_map the last layers may have left them elsewhere */
        st = ptm__xfer_home(ctx->outputs, m->dev);
    }
    return st;
}

const ptm_config *ptm_model_config(const ptm_model *m)
{
    return m->cfg;
}

ptm_config *ptm_model_config_mut(ptm_model *m)
{
    return m->cfg;
}

const char *ptm_model_class_name(const ptm_model *m)
{
    return m->cls->name;
}

const struct ptm_model_class *ptm_model_class(const ptm_model *m)
{
    return m->cls;
}

const struct ptm_arch *ptm_model_arch(const ptm_model *m)
{
    return m->arch->arch;
}

ptm_device *ptm_model_device(const ptm_model *m)
{
    return m->dev;
}

const char *ptm_model_dir(const ptm_model *m)
{
    return m->dir;
}

const char *const *ptm_model_loading_info(const ptm_model *m, int32_t which)
{
    static const char *const empty[] = {NULL};
    if (which < 0 || which > 2 || m->info[which].names == NULL) {
        return empty;
    }
    return (const char *const *)m->info[which].names;
}

ptm_tensor *ptm_model_param(const ptm_model *m, const char *name)
{
    long i = ptm__model_find(m, name);
    return i >= 0 ? m->params[i].t : NULL;
}

size_t ptm_model_n_params(const ptm_model *m)
{
    return m->n_params;
}

ptm_tensor *ptm_model_param_at(const ptm_model *m, size_t i, const char **name)
{
    if (i >= m->n_params) {
        return NULL;
    }
    if (name != NULL) {
        *name = m->params[i].name;
    }
    return m->params[i].t;
}

int64_t ptm_model_num_parameters(const ptm_model *m, int32_t exclude_embeddings)
{
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const struct ptm__param *p = &m->params[i];
        if (p->tied_to >= 0) {
            continue;
        }
        size_t len = strlen(p->name);
        int is_emb = (len >= 17 && strcmp(p->name + len - 17, "embeddings.weight") == 0) ||
                     (m->cls->input_embeddings && !strcmp(p->name, m->cls->input_embeddings)) ||
                     (m->cls->output_embeddings && !strcmp(p->name, m->cls->output_embeddings));
        if (exclude_embeddings && is_emb) {
            continue;
        }
        int64_t n = 1;
        for (int32_t d = 0; d < p->ndim; d++) {
            n *= p->shape[d];
        }
        total += n;
    }
    return total;
}
