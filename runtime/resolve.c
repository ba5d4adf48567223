/*
 * resolve.c - name resolution for from_pretrained: a local directory first, then the names
 * architecture plugins register (pretrained_init_configuration), then the shared Hugging
 * Face cache in huggingface_hub's layout (models--{org}--{name}/refs/{revision} holds a
 * commit; snapshots/{commit}/ holds the files). Downloading from the Hub is hub.c's job.
 */
#include "resolve.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"
#include "loader.h"
#include "ptm/ptm.h"

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int ptm__hf_cache_dir(char *buf, size_t cap)
{
    const char *v;
    int n;
    if ((v = getenv("HF_HUB_CACHE")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s", v);
    } else if ((v = getenv("HF_HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/hub", v);
    } else if ((v = getenv("XDG_CACHE_HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/huggingface/hub", v);
    } else if ((v = getenv("HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/.cache/huggingface/hub", v);
    } else {
        return 0;
    }
    return n > 0 && (size_t)n < cap;
}

/* A revision names a ref file or a snapshot directory: no path separators, no "..". */
static int valid_revision(const char *rev)
{
    return rev[0] != '\0' && rev[0] != '.' && strchr(rev, '/') == NULL && strlen(rev) < 128;
}

/* Find repo_id's snapshot directory for revision in the cache; writes the path into buf. */
static int cached_snapshot(const char *repo_id, const char *revision, char *buf, size_t cap,
                           char *tried, size_t tried_cap)
{
    char cache[PATH_MAX - 300], folder[256], repo[PATH_MAX], commit[128] = "";
    if (!ptm__hub_valid_repo_id(repo_id) || !valid_revision(revision) ||
        !ptm__hf_cache_dir(cache, sizeof cache) ||
        !ptm__hub_repo_folder(repo_id, folder, sizeof folder)) {
        return 0;
    }
    snprintf(repo, sizeof repo, "%s/%s", cache, folder);
    snprintf(tried, tried_cap, "the Hugging Face cache (%s, revision %s)", repo, revision);
    char ref[PATH_MAX + 160];
    snprintf(ref, sizeof ref, "%s/refs/%s", repo, revision);
    FILE *f = fopen(ref, "r");
    if (f != NULL) {
        if (fgets(commit, sizeof commit, f) == NULL) {
            commit[0] = '\0';
        }
        fclose(f);
        commit[strcspn(commit, "\r\n")] = '\0';
    } else {
        snprintf(commit, sizeof commit, "%s", revision); /* maybe a commit hash itself */
    }
    if (!valid_revision(commit)) {
        return 0;
    }
    int n = snprintf(buf, cap, "%s/snapshots/%s", repo, commit);
    return n > 0 && (size_t)n < cap && is_dir(buf);
}

static const struct ptm_builtin_name *find_builtin(const char *name,
                                                   const struct ptm_arch **arch_out)
{
    ptm__plugins_scan_once();
    for (size_t i = 0; i < ptm_arch_count(); i++) {
        const struct ptm_arch *a = ptm_arch_at(i);
        if (a->builtins == NULL || a->builtins->struct_size < sizeof(uint32_t)) {
            continue;
        }
        for (size_t k = 0;; k++) {
            const struct ptm_builtin_name *b =
                (const void *)((const char *)a->builtins + k * a->builtins->struct_size);
            if (b->name == NULL) {
                break;
            }
            if (strcmp(b->name, name) == 0) {
                *arch_out = a;
                return b;
            }
        }
    }
    return NULL;
}

/* Whether a cached snapshot holds what the caller needs (else the Hub fills the gaps). */
static int snapshot_has(const char *snap, const struct ptm__resolve_opts *o)
{
    char path[PATH_MAX + 512];
    const char *sub = o->subfolder ? o->subfolder : "", *slash = o->subfolder ? "/" : "";
    struct stat sb;
    if (o->need_file != NULL) {
        snprintf(path, sizeof path, "%s/%s%s%s", snap, sub, slash, o->need_file);
        if (stat(path, &sb) != 0) {
            return 0;
        }
    }
    if (!o->need_weights) {
        return 1;
    }
    const char *v = o->variant, *dot = o->variant ? "." : "";
    snprintf(path, sizeof path, "%s/%s%smodel%s%s.safetensors", snap, sub, slash, dot, v ? v : "");
    if (stat(path, &sb) == 0) {
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s%smodel.safetensors.index%s%s.json", snap, sub, slash, dot,
             v ? v : "");
    return stat(path, &sb) == 0;
}

ptm_status ptm__resolve(const char *name, const struct ptm__resolve_opts *opts,
                        struct ptm__resolved *out)
{
    static const struct ptm__resolve_opts defaults = {0};
    const struct ptm__resolve_opts *o = opts ? opts : &defaults;
    const char *revision = o->revision;
    memset(out, 0, sizeof *out);
    if (name == NULL || name[0] == '\0') {
        return ptm__fail(PTM_E_INVAL, "model name is empty");
    }
    if (revision == NULL) {
        revision = "main";
    }
    if (is_dir(name)) {
        out->dir = ptm__strdup(name);
        return out->dir ? PTM_OK : ptm__fail(PTM_E_NOMEM, "%s: out of memory", name);
    }
    char snap[PATH_MAX], tried_cache[PATH_MAX + 64] = "the Hugging Face cache (no valid repo id)";
    const char *repo_id = name;
    out->builtin = find_builtin(name, &out->builtin_arch);
    if (out->builtin != NULL && out->builtin->repo_id != NULL) {
        repo_id = out->builtin->repo_id;
    }
    int cached =
        cached_snapshot(repo_id, revision, snap, sizeof snap, tried_cache, sizeof tried_cache);
    if (cached && (snapshot_has(snap, o) || o->local_files_only)) {
        out->dir = ptm__strdup(snap);
        return out->dir ? PTM_OK : ptm__fail(PTM_E_NOMEM, "%s: out of memory", name);
    }
    char hub_why[1024] = "";
    ptm_status st = ptm__hub_resolve(repo_id, revision, o->subfolder, o->variant,
                                     o->local_files_only, &out->dir, hub_why, sizeof hub_why);
    if (st == PTM_OK || hub_why[0] == '\0') {
        return st; /* downloaded, or a failure the Hub client recorded (gated, corrupt...) */
    }
    if (cached) { /* incomplete, and the Hub is out of reach: let the loader say what lacks */
        out->dir = ptm__strdup(snap);
        return out->dir ? PTM_OK : ptm__fail(PTM_E_NOMEM, "%s: out of memory", name);
    }
    if (out->builtin != NULL) {
        return PTM_OK; /* no files, but the plugin's config can build it */
    }
    return ptm__fail(PTM_E_NOT_FOUND,
                     "model \"%s\" not found; tried: a local directory of that name (none), "
                     "built-in names of the loaded plugins (none matches), %s (not cached), "
                     "the Hub (%s)",
                     name, tried_cache, hub_why);
}

void ptm__resolved_clear(struct ptm__resolved *r)
{
    ptm__free(r->dir);
    memset(r, 0, sizeof *r);
}
