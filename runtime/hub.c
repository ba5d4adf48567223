/*
 * hub.c - the Hub client's public face and its decisions: which files from_pretrained needs
 * (config.json, then single or sharded safetensors, then optional tokenizer, generation and
 * sentence-transformers files), a whole-repo download filtered by globs, offline mode from the
 * cache, the environment (HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_OFFLINE), progress
 * reporting, and the step resolve.c takes when the cache misses. HTTP is hub_http.c's and
 * hub_fetch.c's, the cache layout hub_cache.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include "hub.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "resolve.h"
#include "ptm/ptm_hub.h"

static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;
static ptm_hub_progress_fn progress_fn;
static void *progress_user;

PTM_API void ptm_hub_set_progress(ptm_hub_progress_fn fn, void *user)
{
    pthread_mutex_lock(&progress_mu);
    progress_fn = fn;
    progress_user = user;
    pthread_mutex_unlock(&progress_mu);
}

void ptm__hub_progress(const char *file, uint64_t done, uint64_t total, long long start_ms)
{
    pthread_mutex_lock(&progress_mu);
    ptm_hub_progress_fn fn = progress_fn;
    void *user = progress_user;
    pthread_mutex_unlock(&progress_mu);
    if (fn != NULL) {
        fn(file, done, total, user);
        return;
    }
    if (!isatty(STDERR_FILENO)) {
        return;
    }
    double secs = (double)(ptm__hub_now_ms() - start_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r%-40.40s %8.1f/%.1f MB %7.1f MB/s ETA %4.0fs%s", file, (double)done / 1e6,
            (double)total / 1e6, rate / 1e6, eta, done >= total ? "\n" : "");
}

ptm_status ptm__hub_fail(struct ptm__hub *h, int soft, ptm_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (soft && h->soft_only) {
        if (!h->soft_failed) {
            snprintf(h->why, sizeof h->why, "%s", msg);
        }
        h->soft_failed = 1;
        return st;
    }
    return ptm__fail(st, "%s", msg);
}

static int truthy(const char *v)
{
    return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "on") == 0 ||
                         strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0);
}

/* HF_TOKEN, else the first line of HF_TOKEN_PATH or $HF_HOME/token (HF_HOME defaults to
 * ~/.cache/huggingface), as huggingface_hub's constants.py has it. */
static void find_token(struct ptm__hub *h, const char *given)
{
    const char *v = given ? given : getenv("HF_TOKEN");
    char path[PATH_MAX];
    if (v != NULL) {
        snprintf(h->token, sizeof h->token, "%s", v);
        h->token[strcspn(h->token, "\r\n")] = '\0'; /* a header line must stay one line */
        return;
    }
    const char *home = getenv("HF_HOME"), *user_home = getenv("HOME");
    const char *token_path = getenv("HF_TOKEN_PATH");
    int n = token_path && token_path[0] ? snprintf(path, sizeof path, "%s", token_path)
            : home && home[0]           ? snprintf(path, sizeof path, "%s/token", home)
            : user_home && user_home[0]
                ? snprintf(path, sizeof path, "%s/.cache/huggingface/token", user_home)
                : -1;
    FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "r") : NULL;
    if (f != NULL) {
        if (fgets(h->token, sizeof h->token, f) == NULL) {
            h->token[0] = '\0';
        }
        fclose(f);
        h->token[strcspn(h->token, "\r\n")] = '\0';
    }
}

ptm_status ptm__hub_init(struct ptm__hub *h, const char *repo_id, const char *revision,
                         const char *token, int local_files_only)
{
    memset(h, 0, sizeof *h);
    if (repo_id == NULL || !ptm__hub_valid_repo_id(repo_id)) {
        return ptm__hub_fail(h, 1, PTM_E_INVAL, "\"%s\" is not a Hub repo id (org/name)",
                             repo_id ? repo_id : "(null)");
    }
    h->repo_id = repo_id;
    revision = revision ? revision : "main";
    if (!ptm__hub_valid_path(revision) || strlen(revision) >= sizeof h->revision ||
        strchr(revision, '/') != NULL) {
        return ptm__fail(PTM_E_INVAL, "repo %s: bad revision \"%s\"", repo_id, revision);
    }
    snprintf(h->revision, sizeof h->revision, "%s", revision);
    const char *ep = getenv("HF_ENDPOINT");
    snprintf(h->endpoint, sizeof h->endpoint, "%s", ep && ep[0] ? ep : "https://huggingface.co");
    size_t n = strlen(h->endpoint);
    while (n > 0 && h->endpoint[n - 1] == '/') {
        h->endpoint[--n] = '\0';
    }
    const char *p = strstr(h->endpoint, "://");
    p = p ? p + 3 : h->endpoint;
    size_t hn = strcspn(p, "/?#");
    snprintf(h->host, sizeof h->host, "%.*s", (int)hn, p);
    for (char *c = h->host; *c; c++) {
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    }
    find_token(h, token);
    h->offline = local_files_only || truthy(getenv("HF_HUB_OFFLINE"));
    const char *rb = getenv("PTM_HUB_RETRY_BASE_MS");
    char *end;
    long base = rb ? strtol(rb, &end, 10) : 100;
    h->retry_base_ms = rb && *end == '\0' && base >= 0 && base <= 60000 ? base : 100;
    h->max_tries = 5;
    if (!ptm__hf_cache_dir(h->cache, sizeof h->cache)) {
        return ptm__fail(PTM_E_INVAL, "no Hugging Face cache directory: set HF_HUB_CACHE or HOME");
    }
    return ptm__hub_cache_init(h);
}

/* A growable list of files to fetch. */
struct flist {
    struct ptm__hub_file *v;
    size_t n, cap;
};

static ptm_status flist_add(struct flist *l, struct ptm__hub_file **out)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct ptm__hub_file *v = ptm__realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            return ptm__fail(PTM_E_NOMEM, "hub: out of memory for the file list");
        }
        l->v = v;
        l->cap = cap;
    }
    *out = &l->v[l->n++];
    return PTM_OK;
}

static int join_sub(const char *sub, const char *name, char *buf, size_t cap)
{
    int n = sub && sub[0] ? snprintf(buf, cap, "%s/%s", sub, name) : snprintf(buf, cap, "%s", name);
    return n > 0 && (size_t)n < cap && ptm__hub_valid_path(buf);
}

static int in_snapshot(const struct ptm__hub *h, const char *file)
{
    char path[PATH_MAX];
    struct stat sb;
    return ptm__hub_snapshot_path(h, file, path, sizeof path) && stat(path, &sb) == 0;
}

static ptm_status offline_missing(struct ptm__hub *h, const char *file)
{
    return ptm__hub_fail(h, 1, PTM_E_NOT_FOUND,
                         "repo %s revision %s: %s is not in the Hugging Face cache (%s) and "
                         "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only), so the Hub "
                         "was not asked",
                         h->repo_id, h->revision, file, h->repo_dir);
}

/*
 * Want one file: offline, check the cache; online, HEAD it and queue it. *found tells whether
 * it exists; a missing required file fails, naming it.
 */
static ptm_status want(struct ptm__hub *h, struct flist *l, const char *file, int required,
                       int *found)
{
    *found = 0;
    if (h->offline) {
        *found = in_snapshot(h, file);
        return *found || !required ? PTM_OK : offline_missing(h, file);
    }
    struct ptm__hub_file f;
    ptm_status st = ptm__hub_head(h, file, &f);
    if (st != PTM_OK) {
        return st;
    }
    if (f.missing) {
        return required
                   ? ptm__hub_fail(h, 0, PTM_E_NOT_FOUND, "repo %s revision %s: file %s not found",
                                   h->repo_id, h->revision, file)
                   : PTM_OK;
    }
    struct ptm__hub_file *slot = NULL;
    if ((st = flist_add(l, &slot)) != PTM_OK) {
        return st;
    }
    *slot = f;
    *found = 1;
    return PTM_OK;
}

static ptm_status fetch_queued(struct ptm__hub *h, struct flist *l)
{
    if (h->offline || l->n == 0) {
        return PTM_OK;
    }
    ptm_status st = ptm__hub_fetch(h, l->v, l->n);
    l->n = 0;
    return st;
}

/* The shard names an index maps weights to: each a plain file name beside the index. */
static ptm_status queue_shards(struct ptm__hub *h, struct flist *l, const char *sub,
                               const char *index_file)
{
    char path[PATH_MAX], file[1024];
    if (!ptm__hub_snapshot_path(h, index_file, path, sizeof path)) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", index_file);
    }
    json_object *root = json_object_from_file(path), *map = NULL;
    if (root == NULL || !json_object_object_get_ex(root, "weight_map", &map) ||
        !json_object_is_type(map, json_type_object)) {
        json_object_put(root);
        return ptm__fail(PTM_E_FORMAT, "%s: not a JSON object with a \"weight_map\" object", path);
    }
    ptm_status st = PTM_OK;
    struct json_object_iterator it = json_object_iter_begin(map);
    struct json_object_iterator end = json_object_iter_end(map);
    for (; st == PTM_OK && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        json_object *v = json_object_iter_peek_value(&it);
        const char *shard =
            json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (shard == NULL || strchr(shard, '/') != NULL || !ptm__hub_valid_path(shard) ||
            !join_sub(sub, shard, file, sizeof file)) {
            st = ptm__fail(PTM_E_FORMAT,
                           "%s: weight_map[\"%s\"] names shard \"%s\", expected a plain file "
                           "name beside the index (hostile path refused)",
                           path, json_object_iter_peek_name(&it), shard ? shard : "(not a string)");
            break;
        }
        int dup = 0, found;
        for (size_t i = 0; i < l->n && !dup; i++) {
            dup = strcmp(l->v[i].path, file) == 0;
        }
        if (!dup && !(h->offline && in_snapshot(h, file))) {
            st = want(h, l, file, 1, &found);
        }
    }
    json_object_put(root);
    return st;
}

static const char *const optional_files[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "generation_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "config_sentence_transformers.json",
    NULL,
};

static ptm_status snapshot_files(struct ptm__hub *h, struct flist *l, const char *sub,
                                 const char *variant)
{
    char file[1024], single[300], index[300], ifile[1024];
    int found = 0, have_index = 0;
    snprintf(single, sizeof single, variant ? "model.%s.safetensors" : "model.safetensors",
             variant);
    snprintf(index, sizeof index,
             variant ? "model.safetensors.index.%s.json" : "model.safetensors.index.json", variant);
    if (!join_sub(sub, "config.json", file, sizeof file) ||
        !join_sub(sub, single, file, sizeof file) || !join_sub(sub, index, ifile, sizeof ifile)) {
        return ptm__fail(PTM_E_INVAL, "repo %s: bad subfolder \"%s\" or variant \"%s\"", h->repo_id,
                         sub ? sub : "", variant ? variant : "");
    }
    join_sub(sub, "config.json", file, sizeof file);
    ptm_status st = want(h, l, file, 0, &found);
    if (st != PTM_OK) {
        return st;
    }
    if (!found) {
        return h->offline ? offline_missing(h, file)
                          : ptm__hub_fail(h, 0, PTM_E_NOT_FOUND,
                                          "repo %s revision %s: has no %s, so it is not a model "
                                          "repo (or subfolder is wrong)",
                                          h->repo_id, h->revision, file);
    }
    join_sub(sub, single, file, sizeof file);
    if ((st = want(h, l, file, 0, &found)) != PTM_OK) {
        return st;
    }
    if (!found) {
        st = want(h, l, ifile, 0, &have_index);
        if (st == PTM_OK && !have_index) {
            return h->offline ? offline_missing(h, file)
                              : ptm__hub_fail(h, 0, PTM_E_NOT_FOUND,
                                              "repo %s revision %s: no weights: neither %s nor %s "
                                              "exists",
                                              h->repo_id, h->revision, file, ifile);
        }
    }
    for (size_t i = 0; st == PTM_OK && optional_files[i] != NULL; i++) {
        if (join_sub(sub, optional_files[i], file, sizeof file) &&
            !(h->offline || ptm__hub_is_marked_missing(h, file))) {
            st = want(h, l, file, 0, &found);
        }
    }
    if (st == PTM_OK) {
        st = fetch_queued(h, l); /* config, weights or index, optional files: in parallel */
    }
    if (st == PTM_OK && have_index) {
        st = queue_shards(h, l, sub, ifile);
    }
    return st == PTM_OK ? fetch_queued(h, l) : st;
}

/* The API's file list ("siblings"[].rfilename) and commit ("sha") of the revision. */
static ptm_status list_repo(struct ptm__hub *h, struct flist *l, const char *const *include)
{
    char rev[400], url[1024], *body = NULL;
    if (!ptm__hub_url_encode(h->revision, 0, rev, sizeof rev)) {
        return ptm__fail(PTM_E_INVAL, "repo %s: revision too long", h->repo_id);
    }
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", h->endpoint, h->repo_id, rev);
    ptm_status st = ptm__hub_get_text(h, url, &body);
    if (st != PTM_OK) {
        return st;
    }
    json_object *root = json_tokener_parse(body), *sha = NULL, *sib = NULL;
    ptm__free(body);
    if (root == NULL || !json_object_object_get_ex(root, "sha", &sha) ||
        !json_object_is_type(sha, json_type_string) ||
        !json_object_object_get_ex(root, "siblings", &sib) ||
        !json_object_is_type(sib, json_type_array) ||
        !ptm__hub_valid_path(json_object_get_string(sha)) ||
        strchr(json_object_get_string(sha), '/') || strlen(json_object_get_string(sha)) >= 64) {
        json_object_put(root);
        return ptm__fail(PTM_E_FORMAT, "%s: expected a JSON object with \"sha\" and \"siblings\"",
                         url);
    }
    snprintf(h->commit, sizeof h->commit, "%s", json_object_get_string(sha));
    for (size_t i = 0; st == PTM_OK && i < json_object_array_length(sib); i++) {
        json_object *name = NULL;
        json_object_object_get_ex(json_object_array_get_idx(sib, i), "rfilename", &name);
        const char *f =
            json_object_is_type(name, json_type_string) ? json_object_get_string(name) : NULL;
        if (f == NULL || !ptm__hub_valid_path(f)) {
            st = ptm__fail(PTM_E_FORMAT, "%s: siblings[%zu] names \"%s\" (hostile path refused)",
                           url, i, f ? f : "(not a string)");
            break;
        }
        int keep = include == NULL, found;
        for (const char *const *g = include; g && *g && !keep; g++) {
            keep = fnmatch(*g, f, 0) == 0;
        }
        if (keep) {
            st = want(h, l, f, 1, &found);
        }
    }
    json_object_put(root);
    return st == PTM_OK ? fetch_queued(h, l) : st;
}

/* Offline whole-repo check: every include pattern that names one file must be cached. */
static ptm_status check_cached(struct ptm__hub *h, const char *const *include)
{
    for (const char *const *g = include; g && *g; g++) {
        if (strpbrk(*g, "*?[") == NULL && !in_snapshot(h, *g)) {
            return offline_missing(h, *g);
        }
    }
    return PTM_OK;
}

static ptm_status snapshot_dir(struct ptm__hub *h, char **dir_out)
{
    char dir[PATH_MAX];
    if (!h->commit[0] && !ptm__hub_cached_commit(h, h->commit)) {
        return h->offline ? offline_missing(h, "the snapshot")
                          : ptm__fail(PTM_E_INTERNAL, "repo %s: no commit", h->repo_id);
    }
    if (!h->offline) {
        ptm_status st = ptm__hub_write_ref(h);
        if (st != PTM_OK) {
            return st;
        }
    }
    struct stat sb;
    int n = snprintf(dir, sizeof dir, "%s/snapshots/%s", h->repo_dir, h->commit);
    if (n < 0 || (size_t)n >= sizeof dir || stat(dir, &sb) != 0) {
        return h->offline ? offline_missing(h, "the snapshot")
                          : ptm__fail(PTM_E_NOT_FOUND, "repo %s: no files at revision %s",
                                      h->repo_id, h->revision);
    }
    *dir_out = ptm__strdup(dir);
    return *dir_out ? PTM_OK : ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
}

/* Offline, the commit comes from the cache before any file is looked at. */
static ptm_status offline_commit(struct ptm__hub *h)
{
    if (h->offline && !ptm__hub_cached_commit(h, h->commit)) {
        return offline_missing(h, "the snapshot");
    }
    return PTM_OK;
}

static ptm_status run(const char *repo_id, const struct ptm_hub_opts *o, int whole, int soft,
                      char *why, size_t why_cap, char **dir_out)
{
    struct ptm__hub *h = ptm__calloc(1, sizeof *h);
    struct flist l = {0};
    if (h == NULL) {
        return ptm__fail(PTM_E_NOMEM, "hub: out of memory");
    }
    h->soft_only = soft;
    int lfo = o && PTM_HAS(o, struct ptm_hub_opts, local_files_only) ? o->local_files_only : 0;
    ptm_status st = ptm__hub_init(h, repo_id, o ? o->revision : NULL, o ? o->token : NULL, lfo);
    h->soft_only = soft; /* ptm__hub_init cleared it */
    if (st == PTM_OK) {
        st = offline_commit(h);
    }
    if (st == PTM_OK && whole) {
        st = h->offline ? check_cached(h, o ? o->include : NULL)
                        : list_repo(h, &l, o ? o->include : NULL);
    } else if (st == PTM_OK) {
        st = snapshot_files(h, &l, o ? o->subfolder : NULL, o ? o->variant : NULL);
    }
    if (st == PTM_OK) {
        st = snapshot_dir(h, dir_out);
    }
    if (why != NULL) {
        snprintf(why, why_cap, "%s", h->soft_failed ? h->why : "");
    }
    ptm__free(l.v);
    ptm__free(h);
    return st;
}

static ptm_status entry(const char *repo_id, const struct ptm_hub_opts *o, int whole,
                        char **dir_out)
{
    ptm__error_clear();
    if (dir_out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_hub: dir_out is NULL");
    }
    *dir_out = NULL;
    if (o != NULL && o->struct_size < sizeof(uint32_t)) {
        return ptm__fail(PTM_E_INVAL, "ptm_hub: opts->struct_size is %" PRIu32, o->struct_size);
    }
    return run(repo_id, o, whole, 0, NULL, 0, dir_out);
}

PTM_API ptm_status ptm_hub_snapshot(const char *repo_id, const struct ptm_hub_opts *o,
                                    char **dir_out)
{
    return entry(repo_id, o, 0, dir_out);
}

PTM_API ptm_status ptm_hub_download(const char *repo_id, const struct ptm_hub_opts *o,
                                    char **dir_out)
{
    return entry(repo_id, o, 1, dir_out);
}

ptm_status ptm__hub_resolve(const char *repo_id, const char *revision, const char *subfolder,
                            const char *variant, int local_files_only, char **dir_out, char *why,
                            size_t why_cap)
{
    struct ptm_hub_opts o = {.struct_size = sizeof o,
                             .revision = revision,
                             .subfolder = subfolder,
                             .variant = variant,
                             .local_files_only = local_files_only};
    *dir_out = NULL;
    return run(repo_id, &o, 0, 1, why, why_cap, dir_out);
}
