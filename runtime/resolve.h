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

/* What the caller wants resolved; NULL members mean the defaults. */
struct ptm__resolve_opts {
    const char *revision;  /* branch, tag or commit; default "main" */
    const char *subfolder; /* inside the repo */
    const char *variant;   /* model.<variant>.safetensors */
    int local_files_only;  /* or HF_HUB_OFFLINE=1: never touch the network */
    int need_weights;      /* a cached snapshot without weights is a miss (from_pretrained) */
    const char *need_file; /* a cached snapshot without this file is a miss ("config.json") */
};

/*
 * Resolve name: a local directory; else a repo id (a built-in name's repo for built-in
 * names) in the Hugging Face cache, where a snapshot lacking what the caller needs counts as
 * a miss; else the Hub (hub.c) unless offline. A built-in name that cannot be fetched resolves
 * to no directory (the caller may build the model from the built-in config).
 * PTM_E_NOT_FOUND lists what was tried. Free with ptm__resolved_clear.
 */
ptm_status ptm__resolve(const char *name, const struct ptm__resolve_opts *o,
                        struct ptm__resolved *out);
void ptm__resolved_clear(struct ptm__resolved *r);

/* The hub cache directory by huggingface_hub's precedence: HF_HUB_CACHE, HF_HOME/hub,
 * XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. Writes into buf. */
int ptm__hf_cache_dir(char *buf, size_t cap);

#endif
