/*
 * model_load.c - from_pretrained: resolve the name, read the config, pick the class,
 * declare, place the parameters on devices (device_map.c), map the safetensors weights and
 * match them to the declared parameters across base_model_prefix, convert dtypes where
 * needed, initialise the rest, tie.
 *
 * The prefix rule is HF's: when the checkpoint's keys carry "<prefix>." and the class's do
 * not, the prefix is stripped (a head checkpoint into the base class; the head's weights are
 * unexpected); when the class's keys carry it and the checkpoint's do not, it is added (a
 * base checkpoint into a head class; the head's weights are missing and initialised).
 * On the CPU, a weight already in the wanted dtype and aligned is used in place in the
 * mapping: loading is O(header) and the pages come from the page cache when touched.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "device_map.h"
#include "error.h"
#include "log.h"
#include "model.h"
#include "resolve.h"
#include "st_copy.h"
#include "tensor.h"

/* The mapping outlives the model while any weight tensor still points into it. */
struct st_ref {
    atomic_int refs;
    ptm_st_file *f;
};

static void st_ref_release(void *user)
{
    struct st_ref *r = user;
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        ptm_st_close(r->f);
        ptm__free(r);
    }
}

static int has_prefix(const char *name, const char *prefix, size_t n)
{
    return strncmp(name, prefix, n) == 0 && name[n] == '.';
}

/* Decide the direction: +1 add the prefix to look up a declared name without it... see the
 * file comment. Returns 1 to strip from the checkpoint, 2 to add to the checkpoint, 0 none. */
static int prefix_mode(const ptm_model *m, const ptm_st_file *f, const char *prefix)
{
    if (prefix == NULL || prefix[0] == '\0') {
        return 0;
    }
    size_t n = strlen(prefix);
    int ckpt_has = 0, model_has = 0;
    for (size_t i = 0; i < ptm_st_count(f) && !ckpt_has; i++) {
        ckpt_has = has_prefix(ptm_st_at(f, i)->name, prefix, n);
    }
    for (size_t i = 0; i < m->n_params && !model_has; i++) {
        model_has = has_prefix(m->params[i].name, prefix, n);
    }
    if (ckpt_has && !model_has) {
        return 1;
    }
    if (!ckpt_has && model_has) {
        return 2;
    }
    return 0;
}

/* The declared parameter a checkpoint key maps to, or -1. */
static long match(const ptm_model *m, const char *key, const char *prefix, int mode)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (mode == 1) {
        return has_prefix(key, prefix, n) ? ptm__model_find(m, key + n + 1) : -1;
    }
    if (mode == 2) {
        char full[1024];
        if (snprintf(full, sizeof full, "%s.%s", prefix, key) >= (int)sizeof full) {
            return -1;
        }
        return ptm__model_find(m, full);
    }
    return ptm__model_find(m, key);
}

static int ignorable(const struct ptm_model_class *cls, const char *key)
{
    size_t n = strlen(key);
    for (const char *const *p = cls->ignore_unexpected; p != NULL && *p != NULL; p++) {
        size_t k = strlen(*p);
        if (n >= k && strcmp(key + n - k, *p) == 0) {
            return 1;
        }
    }
    return 0;
}

static int same_shape(const struct ptm__param *p, const struct ptm_st_tensor *t)
{
    if (p->ndim != t->ndim) {
        return 0;
    }
    for (int32_t i = 0; i < p->ndim; i++) {
        if (p->shape[i] != t->shape[i]) {
            return 0;
        }
    }
    return 1;
}

static void shape_str(char *buf, size_t cap, int32_t ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < ndim && n < cap; i++) {
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    }
    if (n < cap) {
        snprintf(buf + n, cap - n, "]");
    }
}

/* Give parameter p the checkpoint tensor t: in place when possible, else converted. With
 * quantizing, a float weight int8 will quantize stays in the checkpoint's dtype: quantizing
 * from it gives the same int8 as from its float32 widening, without the float32 copy. */
static ptm_status place(ptm_model *m, struct ptm__param *p, const struct ptm_st_tensor *t,
                        struct st_ref *ref, int quantizing)
{
    int float_src = t->dtype == PTM_F32 || t->dtype == PTM_F16 || t->dtype == PTM_BF16;
    if (!float_src && t->dtype != p->dtype) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor %s is %s, expected a float type", t->file,
                         t->name, ptm_dtype_name(t->dtype));
    }
    uintptr_t addr = (uintptr_t)t->data;
    size_t esize = ptm_dtype_size(t->dtype);
    ptm_tensor *src = NULL;
    ptm_status st;
    if (addr % esize == 0) {
        atomic_fetch_add(&ref->refs, 1);
        st = ptm_tensor_wrap_host(p->dev, t->dtype, p->ndim, p->shape, (void *)t->data,
                                  st_ref_release, ref, &src);
        if (st != PTM_OK) {
            return st;
        }
    } else { /* misaligned in the file: one copy */
        st = ptm_tensor_from_host(p->dev, t->dtype, p->ndim, p->shape, t->data, &src);
        if (st != PTM_OK) {
            return st;
        }
    }
    if (t->dtype == p->dtype || (quantizing && float_src && ptm__quantize_candidate(m, p))) {
        p->t = src;
        p->mapped = addr % esize == 0 ? t->data : NULL;
        p->mapped_bytes = t->nbytes;
        return PTM_OK;
    }
    st = ptm_tensor_new(p->dev, p->dtype, p->ndim, p->shape, &p->t);
    if (st == PTM_OK && (st = ptm_op_convert(p->t, src)) != PTM_OK) {
        ptm__error_prefix(p->name);
    }
    ptm_tensor_free(src);
    /* Converted: the checkpoint's pages are not needed again (a float32 load of a BF16
     * checkpoint would otherwise keep both copies resident). */
    ptm__st_source_drop(t->data, t->nbytes);
    return st;
}

static ptm_status load_weights(ptm_model *m, ptm_st_file *f, struct st_ref *ref,
                               int ignore_mismatched, int quantizing)
{
    const char *prefix = m->arch->arch->base_model_prefix;
    int mode = prefix_mode(m, f, prefix);
    for (size_t i = 0; i < ptm_st_count(f); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(f, i);
        long k = match(m, t->name, prefix, mode);
        ptm_status st = PTM_OK;
        if (k < 0) {
            if (!ignorable(m->cls, t->name)) {
                st = ptm__name_list_add(&m->info[PTM_LOAD_UNEXPECTED], t->name);
            }
        } else if (m->params[k].t != NULL) {
            continue; /* an alias stored twice: the first wins */
        } else if (!same_shape(&m->params[k], t)) {
            char want[96], got[96];
            shape_str(want, sizeof want, m->params[k].ndim, m->params[k].shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            if (!ignore_mismatched) {
                return ptm__fail(PTM_E_INVAL,
                                 "%s: tensor %s has shape %s, the model expects %s for %s "
                                 "(ignore_mismatched_sizes re-initialises it)",
                                 t->file, t->name, got, want, m->params[k].name);
            }
            st = ptm__name_list_add(&m->info[PTM_LOAD_MISMATCHED], m->params[k].name);
        } else {
            st = place(m, &m->params[k], t, ref, quantizing);
        }
        if (st != PTM_OK) {
            return st;
        }
    }
    return PTM_OK;
}

static ptm_status read_config(const struct ptm__resolved *r, const char *dir,
                              const struct ptm_load_opts *o, ptm_config **cfg)
{
    ptm_status st;
    if (dir != NULL) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/config.json", dir);
        st = ptm_config_load(path, cfg);
    } else {
        st = ptm_config_parse(r->builtin->config_json, r->builtin->name, cfg);
    }
    for (const char *const *kv = o ? o->config_overrides : NULL; st == PTM_OK && kv && *kv; kv++) {
        st = ptm_config_override(*cfg, *kv);
    }
    return st;
}

static ptm_status load_from(const char *name, const struct ptm__resolved *r,
                            const struct ptm_load_opts *o, ptm_model **out)
{
    char dir[PATH_MAX];
    const char *sub = o && o->subfolder ? o->subfolder : NULL;
    if (r->dir != NULL && sub != NULL && (strstr(sub, "..") || sub[0] == '/')) {
        return ptm__fail(PTM_E_INVAL, "subfolder \"%s\": must be a relative path inside %s", sub,
                         r->dir);
    }
    if (r->dir != NULL) {
        snprintf(dir, sizeof dir, sub ? "%s/%s" : "%s", r->dir, sub);
    }
    ptm_config *cfg = NULL;
    const struct ptm__arch_entry *arch = NULL;
    const struct ptm_model_class *cls = NULL;
    ptm_device *dev = NULL;
    ptm_dtype dtype = PTM_F32;
    ptm_status st = read_config(r, r->dir ? dir : NULL, o, &cfg);
    if (st == PTM_OK) {
        st = ptm__model_pick_class(cfg, o ? o->class_name : NULL, &arch, &cls);
    }
    if (st == PTM_OK) {
        st = ptm__model_dtype(cfg, o ? o->dtype : NULL, &dtype);
    }
    if (st == PTM_OK) {
        st = ptm_device_get(o && o->device ? o->device : "cpu", &dev);
    }
    if (st == PTM_OK) {
        st = ptm__model_attn(dev, o);
    }
    if (st == PTM_OK && r->dir == NULL) {
        st = ptm__fail(PTM_E_NOT_FOUND,
                       "model \"%s\": built-in name of %s (repo %s), but its "
                       "weights are not in the Hugging Face cache",
                       name, r->builtin_arch->model_type, r->builtin->repo_id);
    }
    if (st != PTM_OK) {
        ptm_config_free(cfg);
        return st;
    }
    ptm_model *m = NULL;
    st = ptm__model_create(cfg, arch, cls, dev, dtype, o ? o->seed : 0, &m);
    if (st != PTM_OK) {
        return st;
    }
    ptm_st_file *f = NULL;
    int quantizing = 0;
    st = o != NULL && PTM_HAS(o, struct ptm_load_opts, quantize)
             ? ptm__quantize_wanted(o->quantize, &quantizing) /* refused before any reading */
             : PTM_OK;
    if (st == PTM_OK) {
        st = ptm__device_map_apply(m, o);
    }
    if (st == PTM_OK) {
        st = ptm_st_open_dir(dir, o ? o->variant : NULL, &f);
    }
    struct st_ref *ref = NULL;
    if (st == PTM_OK && (ref = ptm__calloc(1, sizeof *ref)) == NULL) {
        ptm_st_close(f);
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
    }
    if (st == PTM_OK) {
        atomic_init(&ref->refs, 1); /* the loader's own reference, dropped below */
        ref->f = f;
        st = load_weights(m, f, ref, o ? o->ignore_mismatched_sizes : 0, quantizing);
        st_ref_release(ref);
    }
    if (st == PTM_OK) {
        st = ptm__model_finish(m, 1);
    }
    if (st == PTM_OK && o != NULL && PTM_HAS(o, struct ptm_load_opts, quantize)) {
        st = ptm__model_quantize(m, o->quantize);
    }
    if (st == PTM_OK && (m->dir = ptm__strdup(dir)) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
    }
    if (st != PTM_OK) {
        ptm_model_free(m);
        return st;
    }
    *out = m;
    return PTM_OK;
}

ptm_status ptm_model_load(const char *name_or_path, const struct ptm_load_opts *opts,
                          ptm_model **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_model_load: out is NULL");
    }
    *out = NULL;
    struct ptm__resolved r;
    struct ptm__resolve_opts ro = {
        .revision = opts ? opts->revision : NULL,
        .subfolder = opts ? opts->subfolder : NULL,
        .variant = opts ? opts->variant : NULL,
        .local_files_only = opts ? opts->local_files_only : 0,
        .need_weights = 1,
        .need_file = "config.json",
    };
    ptm_status st = ptm__resolve(name_or_path, &ro, &r);
    if (st == PTM_OK) {
        st = load_from(name_or_path, &r, opts, out);
    }
    ptm__resolved_clear(&r);
    if (st == PTM_OK) {
        const char *const *miss = ptm_model_loading_info(*out, PTM_LOAD_MISSING);
        const char *const *unexp = ptm_model_loading_info(*out, PTM_LOAD_UNEXPECTED);
        if (miss[0] != NULL) {
            PTM_INFO("model: %s: weights initialised because missing, e.g. %s", name_or_path,
                     miss[0]);
        }
        if (unexp[0] != NULL) {
            PTM_INFO("model: %s: checkpoint weights not used, e.g. %s", name_or_path, unexp[0]);
        }
    }
    return st;
}
