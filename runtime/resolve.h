/*
 * resolve.h - from a model name to a directory of files: a local directory, a built-in name
 * registered by an architecture plugin, or a snapshot in the shared Hugging Face cache.
 */
#ifndef PTM_RUNTIME_RESOLVE_H
#define PTM_RUNTIME_RESOLVE_H

#include "ptm/ptm_plugin.h"

struct ptm__resolved {
    char *dir;                              /* where config.json and weights are; or NULL */
    const struct ptm_builtin_name *builtin; /* when the name was a built-in one */
    const struct ptm_arch *builtin_arch;    /* the architecture that registered it */
};

/*
 * Resolve name (with an optional revision for the cache; NULL means "main"). A built-in
 * name resolves to its repo's cached snapshot when there is one, else to no directory (the
 * caller may build the model from the built-in config). Any other name that misses the
 * cache is fetched from the Hub (hub.c) unless local_files_only or HF_HUB_OFFLINE=1.
 * PTM_E_NOT_FOUND lists what was tried. Free with ptm__resolved_clear.
 */
ptm_status ptm__resolve(const char *name, const char *revision, int local_files_only,
                        struct ptm__resolved *out);
void ptm__resolved_clear(struct ptm__resolved *r);

/* The hub cache directory by huggingface_hub's precedence: HF_HUB_CACHE, HF_HOME/hub,
 * XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. Writes into buf. */
int ptm__hf_cache_dir(char *buf, size_t cap);

#endif
