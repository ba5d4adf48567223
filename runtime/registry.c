/*
 * registry.c - the tables of plugins, architectures (by model_type and by class name) and
 * backends, and the staging that makes one plugin's registration all-or-nothing.
 *
 * Readers take a shared lock, writers an exclusive one, so lookups from many threads are
 * safe. Entries are never removed while the process runs: plugins stay loaded, so pointers
 * handed out stay valid. It does not open files or call dlopen (loader.c does).
 */
#include "registry.h"

#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "loader.h"
#include "ptm/ptm.h"
#include "ptm/ptm_backend.h"

/* A growable array of pointers. */
struct vec {
    void **items;
    size_t n, cap;
};

static ptm_status vec_push(struct vec *v, void *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void **items = ptm__realloc(v->items, cap * sizeof *items);
        if (items == NULL) {
            return ptm__fail(PTM_E_NOMEM, "registry: out of memory");
        }
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = item;
    return PTM_OK;
}

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct vec plugins;  /* struct ptm__plugin * */
static struct vec archs;    /* struct ptm__arch_entry * */
static struct vec backends; /* struct ptm__backend_entry * */

struct ptm__staging {
    struct ptm_registrar reg;
    struct ptm__plugin *plugin;
    struct vec archs;
    struct vec backends;
};

/* Walk an END-terminated record array with the first record's struct_size as stride. */
#define RECORD_AT(arr, i) ((const void *)((const char *)(arr) + (i) * (arr)->struct_size))

static const struct ptm_model_class *class_at(const struct ptm_arch *a, size_t i)
{
    if (a->classes == NULL || a->classes->struct_size < sizeof(uint32_t) + sizeof(char *)) {
        return NULL;
    }
    const struct ptm_model_class *c = RECORD_AT(a->classes, i);
    return c->name != NULL ? c : NULL;
}

static const struct ptm_model_class *arch_class(const struct ptm_arch *a, const char *name)
{
    for (size_t i = 0;; i++) {
        const struct ptm_model_class *c = class_at(a, i);
        if (c == NULL) {
            return NULL;
        }
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
}

/* Lookups over an array of arch entries; callers hold the lock. */
static struct ptm__arch_entry *find_arch_in(const struct vec *v, const char *model_type)
{
    for (size_t i = 0; i < v->n; i++) {
        struct ptm__arch_entry *e = v->items[i];
        if (strcmp(e->arch->model_type, model_type) == 0) {
            return e;
        }
    }
    return NULL;
}

static struct ptm__arch_entry *find_class_in(const struct vec *v, const char *name,
                                             const struct ptm_model_class **cls)
{
    for (size_t i = 0; i < v->n; i++) {
        struct ptm__arch_entry *e = v->items[i];
        const struct ptm_model_class *c = arch_class(e->arch, name);
        if (c != NULL) {
            if (cls != NULL) {
                *cls = c;
            }
            return e;
        }
    }
    return NULL;
}

static struct ptm__backend_entry *find_backend_in(const struct vec *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++) {
        struct ptm__backend_entry *e = v->items[i];
        if (strcmp(e->be->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

static const char *owner_of(const struct ptm__plugin *p)
{
    return p != NULL ? p->path : "the host";
}

/* Check that arch can join: well formed, model_type and class names free. Lock held. */
static ptm_status check_arch(const struct ptm_arch *a, const struct ptm__staging *st)
{
    if (a == NULL || a->struct_size < offsetof(struct ptm_arch, builtins) ||
        a->model_type == NULL || a->model_type[0] == '\0' || a->classes == NULL) {
        return ptm__fail(PTM_E_PLUGIN, "architecture descriptor is incomplete (struct_size %u)",
                         a != NULL ? a->struct_size : 0);
    }
    const struct ptm__arch_entry *dup = find_arch_in(&archs, a->model_type);
    if (dup == NULL && st != NULL) {
        dup = find_arch_in(&st->archs, a->model_type);
    }
    if (dup != NULL) {
        return ptm__fail(PTM_E_EXISTS, "model_type \"%s\" is already registered by %s",
                         a->model_type, owner_of(dup->plugin));
    }
    for (size_t i = 0; class_at(a, i) != NULL; i++) {
        const struct ptm_model_class *c = class_at(a, i);
        const struct ptm__arch_entry *e = find_class_in(&archs, c->name, NULL);
        if (e == NULL && st != NULL) {
            e = find_class_in(&st->archs, c->name, NULL);
        }
        if (e != NULL) {
            return ptm__fail(PTM_E_EXISTS,
                             "class \"%s\" of model_type \"%s\" is already "
                             "registered by model_type \"%s\"",
                             c->name, a->model_type, e->arch->model_type);
        }
        if (c->forward == NULL || c->declare == NULL) {
            return ptm__fail(PTM_E_PLUGIN, "class \"%s\" has no declare or forward hook", c->name);
        }
    }
    return PTM_OK;
}

static ptm_status make_arch_entry(const struct ptm_arch *a, struct ptm__plugin *plugin,
                                  struct ptm__arch_entry **out)
{
    struct ptm__arch_entry *e = ptm__calloc(1, sizeof *e);
    if (e == NULL) {
        return ptm__fail(PTM_E_NOMEM, "registry: out of memory");
    }
    ptm_status st = ptm__schema_new(a, &e->schema);
    if (st != PTM_OK) {
        ptm__free(e);
        return st;
    }
    e->arch = a;
    e->plugin = plugin;
    *out = e;
    return PTM_OK;
}

static void free_arch_entry(struct ptm__arch_entry *e)
{
    if (e != NULL) {
        ptm__schema_free(e->schema);
        ptm__free(e);
    }
}

static ptm_status stage_arch(const struct ptm_registrar *reg, const struct ptm_arch *a)
{
    struct ptm__staging *st = reg->host;
    pthread_rwlock_rdlock(&lock);
    ptm_status s = check_arch(a, st);
    pthread_rwlock_unlock(&lock);
    struct ptm__arch_entry *e = NULL;
    if (s == PTM_OK) {
        s = make_arch_entry(a, st->plugin, &e);
    }
    if (s == PTM_OK && (s = vec_push(&st->archs, e)) != PTM_OK) {
        free_arch_entry(e);
    }
    return s;
}

static ptm_status check_backend(const struct ptm_backend *be, const struct ptm__staging *st)
{
    if (be == NULL || be->struct_size < offsetof(struct ptm_backend, sync) || be->name == NULL ||
        be->init == NULL || be->buffer_alloc == NULL || be->buffer_free == NULL) {
        return ptm__fail(PTM_E_PLUGIN, "backend descriptor is incomplete");
    }
    const struct ptm__backend_entry *dup = find_backend_in(&backends, be->name);
    if (dup == NULL && st != NULL) {
        dup = find_backend_in(&st->backends, be->name);
    }
    if (dup != NULL) {
        return ptm__fail(PTM_E_EXISTS, "backend \"%s\" is already registered by %s", be->name,
                         owner_of(dup->plugin));
    }
    return PTM_OK;
}

static ptm_status stage_backend(const struct ptm_registrar *reg, const struct ptm_backend *be)
{
    struct ptm__staging *st = reg->host;
    pthread_rwlock_rdlock(&lock);
    ptm_status s = check_backend(be, st);
    pthread_rwlock_unlock(&lock);
    if (s != PTM_OK) {
        return s;
    }
    struct ptm__backend_entry *e = ptm__calloc(1, sizeof *e);
    if (e == NULL) {
        return ptm__fail(PTM_E_NOMEM, "registry: out of memory");
    }
    e->be = be;
    e->plugin = st->plugin;
    if ((s = vec_push(&st->backends, e)) != PTM_OK) {
        ptm__free(e);
    }
    return s;
}

struct ptm__staging *ptm__staging_new(struct ptm__plugin *plugin)
{
    struct ptm__staging *st = ptm__calloc(1, sizeof *st);
    if (st == NULL) {
        return NULL;
    }
    st->reg.struct_size = sizeof st->reg;
    st->reg.host = st;
    st->reg.add_arch = stage_arch;
    st->reg.add_backend = stage_backend;
    st->plugin = plugin;
    return st;
}

const struct ptm_registrar *ptm__staging_registrar(struct ptm__staging *st)
{
    return &st->reg;
}

void ptm__staging_free(struct ptm__staging *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < st->archs.n; i++) {
        free_arch_entry(st->archs.items[i]);
    }
    for (size_t i = 0; i < st->backends.n; i++) {
        ptm__free(st->backends.items[i]);
    }
    ptm__free(st->archs.items);
    ptm__free(st->backends.items);
    ptm__free(st);
}

/* Grow both tables first so the commit itself cannot fail half way. Lock held. */
static ptm_status reserve(struct vec *v, size_t extra)
{
    while (v->cap < v->n + extra) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void **items = ptm__realloc(v->items, cap * sizeof *items);
        if (items == NULL) {
            return ptm__fail(PTM_E_NOMEM, "registry: out of memory");
        }
        v->items = items;
        v->cap = cap;
    }
    return PTM_OK;
}

ptm_status ptm__staging_commit(struct ptm__staging *st)
{
    pthread_rwlock_wrlock(&lock);
    ptm_status s = PTM_OK;
    /* Re-check under the write lock: another thread may have registered the same names. */
    for (size_t i = 0; s == PTM_OK && i < st->archs.n; i++) {
        s = check_arch(((struct ptm__arch_entry *)st->archs.items[i])->arch, NULL);
    }
    for (size_t i = 0; s == PTM_OK && i < st->backends.n; i++) {
        s = check_backend(((struct ptm__backend_entry *)st->backends.items[i])->be, NULL);
    }
    if (s == PTM_OK) {
        s = reserve(&archs, st->archs.n);
    }
    if (s == PTM_OK) {
        s = reserve(&backends, st->backends.n);
    }
    if (s == PTM_OK) {
        for (size_t i = 0; i < st->archs.n; i++) {
            archs.items[archs.n++] = st->archs.items[i];
        }
        for (size_t i = 0; i < st->backends.n; i++) {
            backends.items[backends.n++] = st->backends.items[i];
        }
        st->archs.n = 0;
        st->backends.n = 0;
    }
    pthread_rwlock_unlock(&lock);
    return s;
}

ptm_status ptm__registry_add_plugin(struct ptm__plugin *p)
{
    pthread_rwlock_wrlock(&lock);
    ptm_status s = vec_push(&plugins, p);
    pthread_rwlock_unlock(&lock);
    return s;
}

struct ptm__plugin *ptm__registry_plugin_named(const char *name)
{
    struct ptm__plugin *found = NULL;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < plugins.n && found == NULL; i++) {
        struct ptm__plugin *p = plugins.items[i];
        if (strcmp(p->desc->name, name) == 0) {
            found = p;
        }
    }
    pthread_rwlock_unlock(&lock);
    return found;
}

struct ptm__plugin *ptm__registry_plugin_at_path(const char *realpath)
{
    struct ptm__plugin *found = NULL;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < plugins.n && found == NULL; i++) {
        struct ptm__plugin *p = plugins.items[i];
        if (strcmp(p->realpath, realpath) == 0) {
            found = p;
        }
    }
    pthread_rwlock_unlock(&lock);
    return found;
}

size_t ptm_plugin_count(void)
{
    pthread_rwlock_rdlock(&lock);
    size_t n = plugins.n;
    pthread_rwlock_unlock(&lock);
    return n;
}

ptm_status ptm_plugin_at(size_t i, struct ptm_plugin_info *info)
{
    ptm__error_clear();
    if (info == NULL || info->struct_size < sizeof(uint32_t)) {
        return ptm__fail(PTM_E_INVAL, "ptm_plugin_at: info is NULL or its struct_size is unset");
    }
    pthread_rwlock_rdlock(&lock);
    struct ptm__plugin *p = i < plugins.n ? plugins.items[i] : NULL;
    size_t n = plugins.n;
    pthread_rwlock_unlock(&lock);
    if (p == NULL) {
        return ptm__fail(PTM_E_RANGE, "ptm_plugin_at: index %zu past the %zu loaded plugins", i, n);
    }
    struct ptm_plugin_info full = {
        .struct_size = info->struct_size,
        .name = p->desc->name,
        .version = p->desc->version,
        .path = p->path,
        .kind = p->desc->kind,
        .abi_major = p->desc->abi_major,
        .abi_minor = p->desc->abi_minor,
    };
    size_t n_copy = info->struct_size < sizeof full ? info->struct_size : sizeof full;
    memcpy(info, &full, n_copy);
    return PTM_OK;
}

ptm_status ptm_arch_register(const struct ptm_arch *arch)
{
    ptm__error_clear();
    struct ptm__staging *st = ptm__staging_new(NULL);
    if (st == NULL) {
        return ptm__fail(PTM_E_NOMEM, "registry: out of memory");
    }
    ptm_status s = stage_arch(&st->reg, arch);
    if (s == PTM_OK) {
        s = ptm__staging_commit(st);
    }
    ptm__staging_free(st);
    return s;
}

static const struct ptm__arch_entry *arch_lookup(const char *model_type)
{
    pthread_rwlock_rdlock(&lock);
    const struct ptm__arch_entry *e = find_arch_in(&archs, model_type);
    pthread_rwlock_unlock(&lock);
    return e;
}

const struct ptm__arch_entry *ptm__registry_arch(const char *model_type)
{
    if (model_type == NULL) {
        return NULL;
    }
    const struct ptm__arch_entry *e = arch_lookup(model_type);
    if (e == NULL) {
        ptm__plugins_scan_once();
        e = arch_lookup(model_type);
    }
    return e;
}

const struct ptm__arch_entry *ptm__registry_class(const char *class_name,
                                                  const struct ptm_model_class **cls)
{
    if (class_name == NULL) {
        return NULL;
    }
    for (int pass = 0; pass < 2; pass++) {
        pthread_rwlock_rdlock(&lock);
        const struct ptm__arch_entry *e = find_class_in(&archs, class_name, cls);
        pthread_rwlock_unlock(&lock);
        if (e != NULL || pass == 1) {
            return e;
        }
        ptm__plugins_scan_once();
    }
    return NULL;
}

size_t ptm_arch_count(void)
{
    pthread_rwlock_rdlock(&lock);
    size_t n = archs.n;
    pthread_rwlock_unlock(&lock);
    return n;
}

const struct ptm_arch *ptm_arch_at(size_t i)
{
    pthread_rwlock_rdlock(&lock);
    const struct ptm__arch_entry *e = i < archs.n ? archs.items[i] : NULL;
    pthread_rwlock_unlock(&lock);
    return e != NULL ? e->arch : NULL;
}

const struct ptm_arch *ptm_arch_find(const char *model_type)
{
    const struct ptm__arch_entry *e = ptm__registry_arch(model_type);
    return e != NULL ? e->arch : NULL;
}

const struct ptm_arch *ptm_arch_find_class(const char *class_name,
                                           const struct ptm_model_class **cls)
{
    const struct ptm__arch_entry *e = ptm__registry_class(class_name, cls);
    return e != NULL ? e->arch : NULL;
}

const char *ptm_arch_plugin(const struct ptm_arch *arch)
{
    const char *name = NULL;
    pthread_rwlock_rdlock(&lock);
    for (size_t i = 0; i < archs.n; i++) {
        const struct ptm__arch_entry *e = archs.items[i];
        if (e->arch == arch && e->plugin != NULL) {
            name = e->plugin->desc->name;
        }
    }
    pthread_rwlock_unlock(&lock);
    return name;
}

const struct ptm__backend_entry *ptm__registry_backend(const char *name)
{
    pthread_rwlock_rdlock(&lock);
    const struct ptm__backend_entry *e = find_backend_in(&backends, name);
    pthread_rwlock_unlock(&lock);
    if (e == NULL) {
        ptm__plugins_scan_once();
        pthread_rwlock_rdlock(&lock);
        e = find_backend_in(&backends, name);
        pthread_rwlock_unlock(&lock);
    }
    return e;
}

size_t ptm__registry_backend_count(void)
{
    pthread_rwlock_rdlock(&lock);
    size_t n = backends.n;
    pthread_rwlock_unlock(&lock);
    return n;
}

const struct ptm__backend_entry *ptm__registry_backend_at(size_t i)
{
    pthread_rwlock_rdlock(&lock);
    const struct ptm__backend_entry *e = i < backends.n ? backends.items[i] : NULL;
    pthread_rwlock_unlock(&lock);
    return e;
}
