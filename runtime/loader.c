/*
 * loader.c - finding, opening and checking plugin .so files, and handing them to the
 * registry: the search path (PTM_PLUGIN_PATH, then lib/ptm/plugins beside libptm.so),
 * dlopen(RTLD_NOW | RTLD_LOCAL), the descriptor checks that come before any call into the
 * plugin, and all-or-nothing registration.
 *
 * Plugins are never dlclosed once registered: models and registry entries point into them,
 * and a plugin that is never unloaded cannot be unloaded under a live model. A refused
 * plugin is closed at once. The directory watcher lives in watch.c.
 */
#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "log.h"
#include "ptm/ptm.h"
#include "registry.h"

static pthread_mutex_t load_mutex = PTHREAD_MUTEX_INITIALIZER;

static int valid_plugin_name(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 64) {
        return 0;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-')) {
            return 0;
        }
    }
    return 1;
}

/* The checks that come before any call into the plugin beyond its entry function. */
static ptm_status check_desc(const char *path, const struct ptm_plugin_desc *d)
{
    if (d == NULL) {
        return ptm__fail(PTM_E_ABI, "%s: ptm_plugin_entry returned NULL", path);
    }
    if (d->struct_size < offsetof(struct ptm_plugin_desc, register_fn) + sizeof d->register_fn) {
        return ptm__fail(PTM_E_ABI, "%s: plugin descriptor is %u bytes, expected at least %zu",
                         path, d->struct_size,
                         offsetof(struct ptm_plugin_desc, register_fn) + sizeof d->register_fn);
    }
    if (d->abi_major != PTM_ABI_MAJOR || d->abi_minor > PTM_ABI_MINOR) {
        return ptm__fail(PTM_E_ABI,
                         "%s: built for plugin ABI %u.%u, this runtime supports %u.0-%u.%u", path,
                         d->abi_major, d->abi_minor, PTM_ABI_MAJOR, PTM_ABI_MAJOR, PTM_ABI_MINOR);
    }
    if (d->kind != PTM_PLUGIN_ARCH && d->kind != PTM_PLUGIN_BACKEND) {
        return ptm__fail(PTM_E_ABI, "%s: unknown plugin kind %d", path, (int)d->kind);
    }
    if (!valid_plugin_name(d->name)) {
        return ptm__fail(PTM_E_ABI, "%s: plugin name is missing or not [a-z0-9_-]{1,64}", path);
    }
    if (d->version == NULL || d->register_fn == NULL) {
        return ptm__fail(PTM_E_ABI, "%s: plugin \"%s\" has no version or register function", path,
                         d->name);
    }
    return PTM_OK;
}

static void plugin_free(struct ptm__plugin *p)
{
    if (p == NULL) {
        return;
    }
    if (p->handle != NULL) {
        dlclose(p->handle);
    }
    ptm__free(p->path);
    ptm__free(p->realpath);
    ptm__free(p);
}

/* Run the plugin's register_fn into a staging area and commit it all at once. */
static ptm_status register_plugin(struct ptm__plugin *p)
{
    struct ptm__staging *st = ptm__staging_new(p);
    if (st == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", p->path);
    }
    ptm_status s = p->desc->register_fn(ptm__staging_registrar(st));
    if (s != PTM_OK) {
        if (ptm__error_is_set()) {
            char prefix[PATH_MAX + 64];
            snprintf(prefix, sizeof prefix, "%s: plugin \"%s\" failed to register", p->path,
                     p->desc->name);
            ptm__error_prefix(prefix);
        }
        s = ptm__fail(s == PTM_E_EXISTS ? PTM_E_EXISTS : PTM_E_PLUGIN,
                      "%s: plugin \"%s\" failed to register: %s", p->path, p->desc->name,
                      ptm_status_str(s));
    }
    if (s == PTM_OK) {
        s = ptm__staging_commit(st);
        if (s != PTM_OK) {
            ptm__error_prefix(p->path);
        }
    }
    ptm__staging_free(st);
    return s;
}

/* Open, check and register one file. Caller holds load_mutex. */
static ptm_status load_locked(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot resolve path: %s", path, strerror(errno));
    }
    if (ptm__registry_plugin_at_path(real) != NULL) {
        return PTM_OK; /* the same file is already loaded */
    }
    struct ptm__plugin *p = ptm__calloc(1, sizeof *p);
    if (p == NULL || (p->path = ptm__strdup(path)) == NULL ||
        (p->realpath = ptm__strdup(real)) == NULL) {
        plugin_free(p);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    p->handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (p->handle == NULL) {
        const char *why = dlerror();
        plugin_free(p);
        return ptm__fail(PTM_E_IO, "%s: not a loadable plugin: %s", path, why ? why : "?");
    }
    const struct ptm_plugin_desc *(*entry)(void) = NULL;
    *(void **)&entry = dlsym(p->handle, PTM_PLUGIN_ENTRY_SYMBOL);
    if (entry == NULL) {
        plugin_free(p);
        return ptm__fail(PTM_E_ABI, "%s: no entry point %s; not a ptm plugin", path,
                         PTM_PLUGIN_ENTRY_SYMBOL);
    }
    p->desc = entry();
    ptm_status s = check_desc(path, p->desc);
    if (s == PTM_OK) {
        const struct ptm__plugin *dup = ptm__registry_plugin_named(p->desc->name);
        if (dup != NULL) {
            s = ptm__fail(PTM_E_EXISTS, "%s: plugin \"%s\" is already loaded from %s", path,
                          p->desc->name, dup->path);
        }
    }
    if (s == PTM_OK) {
        s = register_plugin(p);
    }
    if (s == PTM_OK && (s = ptm__registry_add_plugin(p)) == PTM_OK) {
        PTM_INFO("loader: %s: loaded plugin \"%s\" %s", path, p->desc->name, p->desc->version);
        return PTM_OK;
    }
    plugin_free(p);
    return s;
}

ptm_status ptm_plugin_load(const char *path)
{
    ptm__error_clear();
    if (path == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_plugin_load: path is NULL");
    }
    pthread_mutex_lock(&load_mutex);
    ptm_status s = load_locked(path);
    pthread_mutex_unlock(&load_mutex);
    return s;
}

static int is_so_name(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && name[0] != '.' && strcmp(name + n - 3, ".so") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every *.so in dir, sorted by name; refusals are logged, not returned. */
static ptm_status scan_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        PTM_DEBUG("loader: %s: not scanned: %s", dir, strerror(errno));
        return PTM_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    ptm_status s = PTM_OK;
    for (struct dirent *e; s == PTM_OK && (e = readdir(d)) != NULL;) {
        if (!is_so_name(e->d_name)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = ptm__realloc(names, cap * sizeof *names);
            if (grown == NULL) {
                s = ptm__fail(PTM_E_NOMEM, "loader: %s: out of memory", dir);
                break;
            }
            names = grown;
        }
        if ((names[n] = ptm__strdup(e->d_name)) == NULL) {
            s = ptm__fail(PTM_E_NOMEM, "loader: %s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1) { /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(names, n, sizeof *names, cmp_names);
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (s == PTM_OK && snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path) {
            ptm__error_clear();
            if (load_locked(path) != PTM_OK) {
                PTM_WARN("loader: %s; skipped", ptm_last_error());
            }
            ptm__error_clear();
        }
        ptm__free(names[i]);
    }
    ptm__free(names);
    return s;
}

/* lib/ptm/plugins beside the libptm.so this code runs from (build and install trees alike). */
static const char anchor; /* any object inside libptm.so, for dladdr */

static int install_dir(char *buf, size_t cap)
{
    Dl_info info;
    if (dladdr(&anchor, &info) == 0 || info.dli_fname == NULL) {
        return 0;
    }
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL) {
        return 0;
    }
    int n = snprintf(buf, cap, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     PTM_PLUGIN_RELDIR);
    return n > 0 && (size_t)n < cap;
}

ptm_status ptm_plugins_scan(void)
{
    ptm__error_clear();
    pthread_mutex_lock(&load_mutex);
    ptm_status s = PTM_OK;
    const char *env = getenv("PTM_PLUGIN_PATH");
    if (env != NULL && env[0] != '\0') {
        char *copy = ptm__strdup(env);
        if (copy == NULL) {
            s = ptm__fail(PTM_E_NOMEM, "loader: out of memory");
        }
        for (char *dir = copy, *next; s == PTM_OK && dir != NULL; dir = next) {
            next = strchr(dir, ':');
            if (next != NULL) {
                *next++ = '\0';
            }
            if (dir[0] != '\0') {
                s = scan_dir(dir);
            }
        }
        ptm__free(copy);
    }
    char dir[PATH_MAX];
    if (s == PTM_OK && install_dir(dir, sizeof dir)) {
        s = scan_dir(dir);
    }
    pthread_mutex_unlock(&load_mutex);
    return s;
}

static pthread_once_t scan_once = PTHREAD_ONCE_INIT;

static void scan_once_fn(void)
{
    ptm_plugins_scan();
}

void ptm__plugins_scan_once(void)
{
    pthread_once(&scan_once, scan_once_fn);
}
