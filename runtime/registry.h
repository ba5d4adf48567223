/*
 * registry.h - runtime-internal view of the registry: architectures by model_type and class
 * name, backends by name, each with the plugin that registered it.
 */
#ifndef PTM_RUNTIME_REGISTRY_H
#define PTM_RUNTIME_REGISTRY_H

#include "ptm/ptm_plugin.h"

struct ptm__schema; /* config.c: an architecture's parsed config schema */
struct ptm__plugin; /* loader.c: one loaded .so */

struct ptm__arch_entry {
    const struct ptm_arch *arch;
    struct ptm__schema *schema;
    struct ptm__plugin *plugin; /* NULL for architectures a host registered in-process */
};

struct ptm__backend_entry {
    const struct ptm_backend *be;
    struct ptm__plugin *plugin; /* NULL for backends a host registered in-process */
};

/* A registration in progress: what one plugin's register_fn adds, committed all at once. */
struct ptm__staging;

struct ptm__staging *ptm__staging_new(struct ptm__plugin *plugin);
/* Add everything staged to the registry (PTM_E_EXISTS if a name was taken meanwhile). */
ptm_status ptm__staging_commit(struct ptm__staging *st);
void ptm__staging_free(struct ptm__staging *st);
/* The registrar whose callbacks stage into st. */
const struct ptm_registrar *ptm__staging_registrar(struct ptm__staging *st);

/* Add a loaded plugin to the list ptm_plugin_at() walks. */
ptm_status ptm__registry_add_plugin(struct ptm__plugin *p);
/* The plugin already loaded under name, or from the same real path; NULL if none. */
struct ptm__plugin *ptm__registry_plugin_named(const char *name);
struct ptm__plugin *ptm__registry_plugin_at_path(const char *realpath);

/* Backends by name; NULL if none. */
const struct ptm__backend_entry *ptm__registry_backend(const char *name);
size_t ptm__registry_backend_count(void);
const struct ptm__backend_entry *ptm__registry_backend_at(size_t i);

/*
 * Find an architecture by model_type. Entries are never freed while the process runs
 * (plugins stay loaded), so the pointer stays valid. On a miss the plugin search path is scanned
 * once per process and the lookup retried. Returns NULL when none is registered; sets no error.
 */
const struct ptm__arch_entry *ptm__registry_arch(const char *model_type);

/* Find the architecture that registered class_name; *cls gets the class. NULL if none. */
const struct ptm__arch_entry *ptm__registry_class(const char *class_name,
                                                  const struct ptm_model_class **cls);

#endif
