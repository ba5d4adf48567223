/*
 * hub.h - runtime-internal side of the Hugging Face Hub client: the per-call context shared by
 * hub.c (what to fetch: from_pretrained's files, a whole repo, offline mode, the public API),
 * hub_http.c (libcurl: HEAD metadata, parallel resumable verified downloads, retries, manual
 * redirects that keep the token on the endpoint's host) and hub_cache.c (huggingface_hub's
 * cache layout: blobs, relative snapshot symlinks, refs, .no_exist markers, .locks), and the
 * upload side: hub_push.c (ptm_hub_push: repo, preupload, commit) with hub_lfs.c (Git LFS).
 */
#ifndef PTM_RUNTIME_HUB_H
#define PTM_RUNTIME_HUB_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "ptm/ptm_base.h"

struct curl_slist;
struct json_object;

/* One call's view of the Hub and of the repo's cache folder. */
struct ptm__hub {
    char endpoint[512]; /* HF_ENDPOINT without a trailing slash */
    char host[256];     /* the endpoint's host[:port]: the only one that sees the token */
    char token[512];    /* "" when none */
    char cache[PATH_MAX];
    char repo_dir[PATH_MAX];  /* {cache}/models--{org}--{name} */
    char locks_dir[PATH_MAX]; /* {cache}/.locks/models--{org}--{name} */
    const char *repo_id;
    char revision[128]; /* as asked: branch, tag or commit */
    char commit[64];    /* the commit it resolved to; "" until known */
    int offline;        /* HF_HUB_OFFLINE or local_files_only */
    long retry_base_ms; /* first backoff; doubles per try */
    int max_tries;
    int soft_only; /* record "not there" failures in why instead of ptm_last_error */
    int soft_failed;
    char why[1024];
};

/* A file of the repo as the Hub describes it (HEAD), or as found in the cache. */
struct ptm__hub_file {
    char path[1024]; /* in the repo, subfolder included */
    char etag[130];  /* normalised: no W/ and no quotes; blob name */
    uint64_t size;
    int has_size;
    int is_lfs; /* X-Linked-Etag given: etag is the sha256 of the content */
    int missing;
    char url[2048]; /* where to GET it (the redirect target for LFS files) */
};

/* --- hub.c --- */
/* Fail with st and a message; when h->soft_only and soft, keep the text in h->why instead. */
ptm_status ptm__hub_fail(struct ptm__hub *h, int soft, ptm_status st, const char *fmt, ...)
    PTM_PRINTF(4, 5);
/*
 * For resolve.c when the cache misses: fetch what from_pretrained needs. When the repo is
 * simply not there (not a repo id, offline, not found on the Hub, no connection) it returns
 * PTM_E_NOT_FOUND or PTM_E_NETWORK with the reason in why and nothing recorded, so the
 * caller lists it among what it tried; other failures are recorded (ptm_last_error).
 */
ptm_status ptm__hub_resolve(const char *repo_id, const char *revision, const char *subfolder,
                            const char *variant, int local_files_only, char **dir_out, char *why,
                            size_t why_cap);
/* Fill h for repo_id at revision (NULL: main): endpoint, host, token (given, else HF_TOKEN,
 * else the token file), retries and cache folders. */
ptm_status ptm__hub_init(struct ptm__hub *h, const char *repo_id, const char *revision,
                         const char *token, int local_files_only);
/* Report progress of one file to the host's callback or the default stderr bar. */
void ptm__hub_progress(const char *file, uint64_t done, uint64_t total, long long start_ms);

/* --- hub_cache.c --- */
/* Whether a repo file name is safe to use as a relative path under the snapshot. */
int ptm__hub_valid_path(const char *path);
int ptm__hub_valid_repo_id(const char *id);

/* huggingface_hub's cache folder name of repo_id: "models--{org}--{name}". 0 if it does not
 * fit cap. */
int ptm__hub_repo_folder(const char *repo_id, char *buf, size_t cap);
/* Fill the cache folders of h from h->cache and h->repo_id. */
ptm_status ptm__hub_cache_init(struct ptm__hub *h);
/* Create every missing parent directory of path. */
ptm_status ptm__hub_mkdirs(const char *path);
/* The commit the cache maps revision to (refs/ or a commit itself); 0 if unknown. */
int ptm__hub_cached_commit(const struct ptm__hub *h, char commit[64]);
ptm_status ptm__hub_write_ref(const struct ptm__hub *h);
/* Paths inside the repo folder. */
int ptm__hub_blob_path(const struct ptm__hub *h, const char *etag, const char *suffix, char *buf,
                       size_t cap);
int ptm__hub_snapshot_path(const struct ptm__hub *h, const char *file, char *buf, size_t cap);
/* Point snapshots/{commit}/{file} at blobs/{etag} with a relative symlink (atomic). */
ptm_status ptm__hub_link(const struct ptm__hub *h, const char *file, const char *etag);
/* .no_exist/{commit}/{file}: remember that file is absent at that commit. */
void ptm__hub_mark_missing(const struct ptm__hub *h, const char *file);
int ptm__hub_is_marked_missing(const struct ptm__hub *h, const char *file);
/* Take / release the inter-process lock of one blob ({cache}/.locks/{repo}/{etag}.lock). */
ptm_status ptm__hub_lock(const struct ptm__hub *h, const char *etag, int *fd);
void ptm__hub_unlock(int fd);

/* --- hub_http.c --- */
/* What the response headers of one request said (the last response block wins). */
struct ptm__hub_resp {
    long status;
    char commit[64];
    char etag[130];
    char linked_etag[130];
    char error_code[64];
    char error_msg[256];
    char location[2048];
    uint64_t size, linked_size;
    int has_size, has_linked_size;
};
/* A curl easy handle set up for url: no redirect following, timeouts, the token only when
 * url's host is the endpoint's, headers captured into r. Returns NULL when out of memory. */
void *ptm__hub_easy(struct ptm__hub *h, const char *url, const char *range, struct ptm__hub_resp *r,
                    struct curl_slist **hdrs);
/* Whether a failed attempt (curl code, HTTP status) is worth another try. */
int ptm__hub_retryable(int curl_code, long status);
long ptm__hub_backoff_ms(const struct ptm__hub *h, int tries);
long long ptm__hub_now_ms(void);
/* Sleep the backoff of attempt tries (1: the first retry). */
void ptm__hub_pause(const struct ptm__hub *h, int tries);
/* A growing NUL-terminated response body (at most 64 MiB), filled by ptm__hub_collect as a
 * CURLOPT_WRITEFUNCTION; oom is set when it could not grow. Free p with ptm__free. */
struct ptm__hub_text {
    char *p;
    size_t n, cap;
    int oom;
};
size_t ptm__hub_collect(char *p, size_t size, size_t n, void *user);
/* Resolve a Location header against the URL that sent it. */
int ptm__hub_join_url(const char *base, const char *loc, char *buf, size_t cap);
/* Turn a 4xx/5xx response for file (NULL: the repo itself) into a clear failure. */
ptm_status ptm__hub_http_error(struct ptm__hub *h, const struct ptm__hub_resp *r, const char *url,
                               const char *file);
/* HEAD {endpoint}/{repo}/resolve/{revision}/{path}. A 404 EntryNotFound sets f->missing,
 * writes the .no_exist marker and returns PTM_OK; other failures are returned. */
ptm_status ptm__hub_head(struct ptm__hub *h, const char *path, struct ptm__hub_file *f);
/* Download the n files whose blobs are not cached, in parallel, and link them all. */
ptm_status ptm__hub_fetch(struct ptm__hub *h, struct ptm__hub_file *files, size_t n);
/* GET an API URL under the endpoint into a NUL-terminated heap buffer (ptm__free). */
ptm_status ptm__hub_get_text(struct ptm__hub *h, const char *url, char **body);
/* Percent-encode s for a URL path; keep_slash keeps '/' (file paths) or encodes it. */
int ptm__hub_url_encode(const char *s, int keep_slash, char *buf, size_t cap);

/* --- hub_push.c: ptm_hub_push, with the LFS step in hub_lfs.c --- */
#define PTM__PUSH_BATCH_MAX 256 /* files per preupload or LFS batch request, as huggingface_hub */

/* A file of the folder being pushed. */
struct ptm__push_file {
    char path[1000]; /* relative to the directory, '/' separated */
    uint64_t size;
    int is_lfs, ignore, sent;
    char oid[65]; /* sha256, LFS files only */
};

/* One push: the Hub context, the folder and its files in path order. */
struct ptm__push {
    struct ptm__hub h;
    const char *dir;
    char rev[400]; /* URL-encoded revision */
    struct ptm__push_file *f;
    size_t n, cap;
};

/* One HTTP exchange of a step: what to send and what came back. */
struct ptm__hub_call {
    const char *step, *file; /* for messages; file may be NULL */
    const char *url;
    const char *const *headers; /* extra header lines, NULL-terminated; may be NULL */
    const char *body;           /* POST body (body_n bytes), or NULL to PUT file fp */
    size_t body_n;
    FILE *fp;
    uint64_t fp_size;
    long long start_ms, shown_ms;
    int tries;
    int once; /* not idempotent (the commit): retry only a connection that failed to open */
    struct ptm__hub_resp r;
    struct ptm__hub_text out;
};

/* {dir}/{rel} into buf; 0 if it does not fit. */
int ptm__push_path(const struct ptm__push *p, const char *rel, char *buf, size_t cap);
/* Run c with retries on 5xx, 429 and network errors; PTM_OK once an answer came (any status:
 * the caller judges it). c->out holds the last answer's body; free it with
 * ptm__hub_call_done. */
ptm_status ptm__hub_call_run(struct ptm__hub *h, struct ptm__hub_call *c);
void ptm__hub_call_done(struct ptm__hub_call *c);
/* A refused step (status >= 300), named with the repo, the step, the file and the status. */
ptm_status ptm__hub_step_error(struct ptm__hub *h, const struct ptm__hub_call *c);
/* POST body as JSON; a 2xx answer other than ok_status must be a JSON object, returned in
 * *answer (json_object_put it); ok_status (e.g. 409 "exists") is accepted, *answer NULL. */
ptm_status ptm__hub_post_json(struct ptm__hub *h, struct ptm__hub_call *c, struct json_object *body,
                              long ok_status, struct json_object **answer);
/* hub_lfs.c: hash the files preupload sent to LFS, ask the LFS batch API about them, upload
 * (and verify) those the Hub lacks. */
ptm_status ptm__hub_lfs_push(struct ptm__push *p);

#endif
