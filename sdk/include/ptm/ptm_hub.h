/*
 * ptm_hub.h - the Hugging Face Hub client: download a model's files (or a whole repo) into
 * the shared Hugging Face cache, in huggingface_hub's layout, so that ptm and the Python
 * libraries read each other's downloads; and find them again offline.
 *
 * Environment, as huggingface_hub reads it: HF_ENDPOINT (default https://huggingface.co),
 * HF_TOKEN (else the file $HF_HOME/token), HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME for the
 * cache, HF_HUB_OFFLINE=1 to never touch the network. PTM_HUB_RETRY_BASE_MS (default 100)
 * sets the first retry delay; it doubles per try, 5 tries in all. PTM_HUB_CONNECT_TIMEOUT_MS
 * (default 10000) bounds a connection attempt and PTM_HUB_STALL_S (default 30) cuts a
 * transfer that received nothing for that long (then it is retried, resuming).
 * The token is sent only to HF_ENDPOINT's host: redirects to another host (LFS files go to
 * a CDN) are followed without it.
 */
#ifndef PTM_HUB_H
#define PTM_HUB_H

#include "ptm_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of ptm_hub_snapshot and ptm_hub_download; NULL or zero members mean the default.
 * Strings are read during the call only. */
struct ptm_hub_opts {
    uint32_t struct_size;       /* sizeof(struct ptm_hub_opts) */
    const char *revision;       /* branch, tag or commit; default "main" */
    const char *subfolder;      /* ptm_hub_snapshot: the model's folder inside the repo */
    const char *variant;        /* ptm_hub_snapshot: model.<variant>.safetensors */
    const char *token;          /* NULL: HF_TOKEN, else $HF_HOME/token, else none */
    const char *const *include; /* ptm_hub_download: NULL-terminated fnmatch globs; NULL all */
    int32_t local_files_only;   /* use the cache only, as HF_HUB_OFFLINE=1 does */
};

/*
 * ptm_hub_snapshot - make sure the files from_pretrained needs are in the cache: config.json
 * (its absence means "not a model repo"), the weights (model[.variant].safetensors, else
 * model[.variant].safetensors.index.json and every shard it names), and the tokenizer,
 * generation and sentence-transformers files the repo has. Files the repo lacks are recorded
 * as .no_exist markers. Weight shards download in parallel; downloads resume after a cut,
 * are retried on 5xx and network errors, and LFS files are checked against their sha256.
 * Offline (local_files_only or HF_HUB_OFFLINE=1) the same files are looked up in the cache.
 *
 * repo_id: "org/name" or "name". o: may be NULL.
 * dir_out: on PTM_OK the snapshot directory (subfolder not included), free with ptm_free();
 *          else NULL.
 * Returns PTM_E_NOT_FOUND (repo, revision or file missing, no access: ptm_last_error() names
 * which, and says whether a token was sent; offline: names the missing file and says offline
 * mode is on), PTM_E_NETWORK (after retries; names the URL), PTM_E_FORMAT (sha256 mismatch,
 * a malformed index or a hostile file name in it; nothing is left in the cache), PTM_E_IO,
 * PTM_E_INVAL. Thread safe; processes sharing a cache coordinate through lock files.
 */
PTM_API ptm_status ptm_hub_snapshot(const char *repo_id, const struct ptm_hub_opts *o,
                                    char **dir_out);

/*
 * ptm_hub_download - download every file of a repo at a revision (listed by
 * {endpoint}/api/models/{repo_id}/revision/{revision}), or those matching o->include, into
 * the cache. Offline, checks that the cached snapshot holds the matching files instead (the
 * file list is then the snapshot's). Same parameters, ownership and errors as
 * ptm_hub_snapshot. Thread safe.
 */
PTM_API ptm_status ptm_hub_download(const char *repo_id, const struct ptm_hub_opts *o,
                                    char **dir_out);

/* Told of download progress: file (borrowed for the call), bytes done and total (0 when
 * unknown). Called from the downloading thread, at most ~10 times a second per file and once
 * when a file completes. */
typedef void (*ptm_hub_progress_fn)(const char *file, uint64_t done, uint64_t total, void *user);

/*
 * ptm_hub_set_progress - send progress to fn (NULL restores the default: a one-line bar with
 * bytes, rate and ETA on stderr, shown only when stderr is a terminal). Call before starting
 * downloads from other threads.
 */
PTM_API void ptm_hub_set_progress(ptm_hub_progress_fn fn, void *user);

/* Options of ptm_hub_push; NULL or zero members mean the default. Strings are read during
 * the call only. */
struct ptm_hub_push_opts {
    uint32_t struct_size;       /* sizeof(struct ptm_hub_push_opts) */
    const char *revision;       /* the branch to commit to; default "main" (must exist) */
    const char *commit_message; /* default "Upload model with ptm" */
    const char *token;          /* NULL: HF_TOKEN, else $HF_HOME/token; needs write access */
    int32_t private_repo;       /* create the repo private (ignored when it exists) */
};

/*
 * ptm_hub_push - upload a saved model directory to a Hub repo in one commit, as
 * huggingface_hub's upload_folder does: create the repo (an existing one is fine), ask the
 * Hub which files go to LFS (preupload), upload LFS files through the Git LFS batch API
 * (basic transfer; objects the Hub already holds are not sent again), then commit every
 * file. Every regular file under dir is sent, path relative to dir; names starting with a
 * dot (.git, .cache, .locks), and *.tmp*, *.incomplete and *.lock files are skipped. The
 * token goes only to HF_ENDPOINT's host, never to the LFS upload host. Requests are retried
 * on 5xx and network errors; upload progress goes to the ptm_hub_set_progress callback.
 *
 * dir: a directory written by ptm_model_save (or any folder). repo_id: "org/name".
 * o: may be NULL.
 * commit_url: may be NULL; on PTM_OK the commit's URL ({endpoint}/{repo_id}/commit/{oid}),
 *             free with ptm_free(); else NULL.
 * Returns PTM_E_NOT_FOUND (no write access: 401/403, ptm_last_error() names the repo and says
 * the token lacks write access or none was sent; a missing branch), PTM_E_NETWORK (after
 * retries, or a refused step: names the step (create repo, preupload, lfs batch, upload,
 * verify, commit), the file where there is one and the HTTP status), PTM_E_FORMAT (a
 * malformed Hub answer), PTM_E_UNSUPPORTED (the Hub asks for a multipart LFS upload, files of
 * several GB), PTM_E_IO (dir or a file cannot be read), PTM_E_INVAL (bad repo id, revision or
 * file name under dir). Thread safe.
 */
PTM_API ptm_status ptm_hub_push(const char *dir, const char *repo_id,
                                const struct ptm_hub_push_opts *o, char **commit_url);

#ifdef __cplusplus
}
#endif
#endif /* PTM_HUB_H */
