/*
 * hub_push.c - ptm_hub_push: upload a directory to a Hub repo in one commit, through the
 * Hub's commit API as huggingface_hub's upload_folder uses it (hf_api.py create_repo,
 * create_commit; _commit_api.py _fetch_upload_modes, _upload_lfs_files; lfs.py):
 *   1. POST {endpoint}/api/repos/create {"name", "organization", "private"}; 409 = exists.
 *   2. POST {endpoint}/api/models/{repo}/preupload/{rev} {"files": [{path, sample, size}]}
 *      answers per file "uploadMode" ("lfs" or "regular") and "shouldIgnore".
 *   3. LFS files: POST {endpoint}/{repo}.git/info/lfs/objects/batch (Git LFS batch API,
 *      sha256 oids); each object without "actions" is already stored; otherwise PUT the
 *      bytes to actions.upload.href with only actions.upload.header (that host may be a
 *      storage service: the Hub token never goes there), then POST {oid, size} to
 *      actions.verify.href when given.
 *   4. POST {endpoint}/api/models/{repo}/commit/{rev}, application/x-ndjson: a "header"
 *      line (summary, description), a "file" line per regular file (base64 content) and an
 *      "lfsFile" line per LFS file (sha256 oid, size); the answer holds commitUrl.
 * It owns the file walk, those four steps and their error messages; request set-up, the
 * token policy, retries and progress come from hub_http.c and hub.c. Multipart LFS uploads
 * (the Hub asks for them for files of several GB) are refused with PTM_E_UNSUPPORTED.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"
#include "log.h"
#include "ptm/ptm_hub.h"

#define SAMPLE_SIZE 512 /* bytes of each file the preupload call sees */
#define MAX_DEPTH   16

int ptm__push_path(const struct ptm__push *p, const char *rel, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", p->dir, rel);
    return n > 0 && (size_t)n < cap;
}

/* --- the file walk ------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Hidden entries (.git, .cache, .locks) and the leftovers of interrupted writes are skipped,
 * as upload_folder's default ignore patterns and our own "<name>.tmp" files require. */
static int skipped(const char *name)
{
    return name[0] == '.' || strstr(name, ".tmp") != NULL || ends_with(name, ".incomplete") ||
           ends_with(name, ".lock");
}

static ptm_status add_file(struct ptm__push *p, const char *rel, uint64_t size)
{
    if (!ptm__hub_valid_path(rel) || strlen(rel) >= sizeof p->f[0].path) {
        return ptm__fail(PTM_E_INVAL, "%s/%s: file name cannot be a Hub path (refused)", p->dir,
                         rel);
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct ptm__push_file *v = ptm__realloc(p->f, cap * sizeof *v);
        if (v == NULL) {
            return ptm__fail(PTM_E_NOMEM, "push: out of memory for the file list of %s", p->dir);
        }
        p->f = v;
        p->cap = cap;
    }
    struct ptm__push_file *f = &p->f[p->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", rel);
    f->size = size;
    return PTM_OK;
}

static ptm_status walk(struct ptm__push *p, const char *rel, int depth)
{
    char dir[PATH_MAX], sub[PATH_MAX], full[PATH_MAX];
    int len = rel[0] ? snprintf(dir, sizeof dir, "%s/%s", p->dir, rel)
                     : snprintf(dir, sizeof dir, "%s", p->dir);
    if (len < 0 || (size_t)len >= sizeof dir) {
        return ptm__fail(PTM_E_INVAL, "%s/%s: path too long", p->dir, rel);
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    }
    ptm_status st = PTM_OK;
    struct dirent *e;
    while (st == PTM_OK && (e = readdir(d)) != NULL) {
        struct stat sb;
        if (skipped(e->d_name)) {
            continue;
        }
        int n = rel[0] ? snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name)
                       : snprintf(sub, sizeof sub, "%s", e->d_name);
        if (n < 0 || (size_t)n >= sizeof sub || !ptm__push_path(p, sub, full, sizeof full)) {
            st = ptm__fail(PTM_E_INVAL, "%s/%s: path too long", dir, e->d_name);
        } else if (stat(full, &sb) != 0) {
            st = ptm__fail(PTM_E_IO, "%s: cannot stat: %s", full, strerror(errno));
        } else if (S_ISDIR(sb.st_mode) && depth >= MAX_DEPTH) {
            st = ptm__fail(PTM_E_INVAL, "%s: nested more than %d folders deep", full, MAX_DEPTH);
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(p, sub, depth + 1);
        } else if (S_ISREG(sb.st_mode)) {
            st = add_file(p, sub, (uint64_t)sb.st_size);
        }
    }
    closedir(d);
    return st;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct ptm__push_file *)a)->path,
                  ((const struct ptm__push_file *)b)->path);
}

/* --- HTTP --------------------------------------------------------------------------------- */

static size_t read_file(char *buf, size_t size, size_t n, void *user)
{
    struct ptm__hub_call *c = user;
    return fread(buf, 1, size * n, c->fp);
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct ptm__hub_call *c = user;
    (void)dltotal;
    (void)dlnow;
    long long now = ptm__hub_now_ms();
    if (ulnow > 0 && now - c->shown_ms >= 100) {
        c->shown_ms = now;
        ptm__hub_progress(c->file, (uint64_t)ulnow, (uint64_t)ultotal, c->start_ms);
    }
    return 0;
}

static CURL *call_easy(struct ptm__hub *h, struct ptm__hub_call *c, struct curl_slist **hdrs)
{
    CURL *e = ptm__hub_easy(h, c->url, NULL, &c->r, hdrs);
    int ok = e != NULL;
    /* No "Expect: 100-continue" round trip before each body. */
    ok = ok && curl_slist_append(*hdrs, "Expect:") != NULL;
    for (const char *const *x = c->headers; ok && x && *x; x++) {
        ok = curl_slist_append(*hdrs, *x) != NULL;
    }
    if (!ok) {
        curl_slist_free_all(*hdrs);
        curl_easy_cleanup(e);
        *hdrs = NULL;
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ptm__hub_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&c->out);
    if (c->fp != NULL) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_file);
        curl_easy_setopt(e, CURLOPT_READDATA, (void *)c);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->fp_size);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)c);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_n);
    }
    return e;
}

ptm_status ptm__hub_call_run(struct ptm__hub *h, struct ptm__hub_call *c)
{
    c->start_ms = ptm__hub_now_ms();
    for (int tries = 1;; tries++) {
        c->tries = tries;
        struct curl_slist *hdrs = NULL;
        c->out.n = 0;
        if (c->fp != NULL && fseek(c->fp, 0, SEEK_SET) != 0) {
            return ptm__fail(PTM_E_IO, "%s: %s: cannot rewind %s", h->repo_id, c->step, c->file);
        }
        CURL *e = call_easy(h, c, &hdrs);
        if (e == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory", c->url);
        }
        CURLcode rc = curl_easy_perform(e);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(e);
        if (c->out.oom) {
            return ptm__fail(PTM_E_NOMEM, "%s: response too large or out of memory", c->url);
        }
        int again = c->once ? rc == CURLE_COULDNT_CONNECT : ptm__hub_retryable(rc, c->r.status);
        if (again && tries < h->max_tries) {
            ptm__hub_pause(h, tries);
            continue;
        }
        if (rc != CURLE_OK) {
            return ptm__fail(PTM_E_NETWORK, "repo %s: %s%s%s: %s: %s (after %d tries)", h->repo_id,
                             c->step, c->file ? " of " : "", c->file ? c->file : "", c->url,
                             curl_easy_strerror(rc), tries);
        }
        if (c->fp != NULL) {
            ptm__hub_progress(c->file, c->fp_size, c->fp_size, c->start_ms);
        }
        return PTM_OK;
    }
}

void ptm__hub_call_done(struct ptm__hub_call *c)
{
    ptm__free(c->out.p);
    c->out.p = NULL;
    c->out.n = c->out.cap = 0;
}

/* The Hub's reason for a refusal: X-Error-Message, else the body's {"error": "..."}. */
static void reason(const struct ptm__hub_call *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", c->r.error_msg);
    json_object *root = buf[0] || c->out.p == NULL ? NULL : json_tokener_parse(c->out.p), *v;
    if (root && json_object_object_get_ex(root, "error", &v) &&
        json_object_is_type(v, json_type_string)) {
        snprintf(buf, cap, "%s", json_object_get_string(v));
    }
    json_object_put(root);
}

/* A refused step, named with the repo, the file and the HTTP status. */
ptm_status ptm__hub_step_error(struct ptm__hub *h, const struct ptm__hub_call *c)
{
    char why[300];
    reason(c, why, sizeof why);
    const char *of = c->file ? " of " : "", *file = c->file ? c->file : "";
    if ((c->r.status == 401 || c->r.status == 403) && c->fp != NULL) {
        return ptm__fail(
            PTM_E_NETWORK,
            "repo %s: upload of %s refused by the storage host (HTTP %ld from %s%s%s): "
            "the upload URL the Hub gave was not accepted",
            h->repo_id, file, c->r.status, c->url, why[0] ? ": " : "", why);
    }
    if (c->r.status == 401 || c->r.status == 403) {
        return ptm__fail(PTM_E_NOT_FOUND, "repo %s: %s%s%s refused (HTTP %ld from %s%s%s): %s",
                         h->repo_id, c->step, of, file, c->r.status, c->url, why[0] ? ": " : "",
                         why,
                         h->token[0] ? "the token lacks write access to this repo (a write "
                                       "token is needed)"
                                     : "no token was sent: set HF_TOKEN to a write token");
    }
    if (c->r.status == 404) {
        return ptm__fail(PTM_E_NOT_FOUND, "repo %s: %s%s%s: not found (HTTP 404 from %s%s%s)",
                         h->repo_id, c->step, of, file, c->url, why[0] ? ": " : "", why);
    }
    return ptm__fail(PTM_E_NETWORK, "repo %s: %s%s%s failed: HTTP %ld from %s%s%s (after %d tries)",
                     h->repo_id, c->step, of, file, c->r.status, c->url, why[0] ? ": " : "", why,
                     c->tries);
}

/* POST a JSON object to url; the answer's body, parsed, in *answer (NULL allowed when
 * ok_status is the status that came). */
ptm_status ptm__hub_post_json(struct ptm__hub *h, struct ptm__hub_call *c, json_object *body,
                              long ok_status, json_object **answer)
{
    c->body = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    c->body_n = c->body ? strlen(c->body) : 0;
    *answer = NULL;
    if (c->body == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", c->url);
    }
    ptm_status st = ptm__hub_call_run(h, c);
    if (st == PTM_OK && (c->r.status < 200 || c->r.status >= 300) && c->r.status != ok_status) {
        st = ptm__hub_step_error(h, c);
    }
    if (st == PTM_OK && c->r.status != ok_status) {
        *answer = c->out.p ? json_tokener_parse(c->out.p) : NULL;
        if (*answer == NULL || !json_object_is_type(*answer, json_type_object)) {
            json_object_put(*answer);
            *answer = NULL;
            st = ptm__fail(PTM_E_FORMAT, "repo %s: %s: %s answered HTTP %ld without a JSON object",
                           h->repo_id, c->step, c->url, c->r.status);
        }
    }
    ptm__hub_call_done(c);
    return st;
}

/* --- 1. create the repo ------------------------------------------------------------------- */

static ptm_status create_repo(struct ptm__push *p, int is_private)
{
    char url[1024];
    const char *slash = strchr(p->h.repo_id, '/');
    snprintf(url, sizeof url, "%s/api/repos/create", p->h.endpoint);
    json_object *body = json_object_new_object(), *answer = NULL;
    if (body == NULL) {
        return ptm__fail(PTM_E_NOMEM, "push: out of memory");
    }
    json_object_object_add(body, "name", json_object_new_string(slash ? slash + 1 : p->h.repo_id));
    if (slash != NULL) {
        json_object_object_add(
            body, "organization",
            json_object_new_string_len(p->h.repo_id, (int)(slash - p->h.repo_id)));
    }
    json_object_object_add(body, "private", json_object_new_boolean(is_private != 0));
    const char *const hdrs[] = {"Content-Type: application/json", NULL};
    struct ptm__hub_call c = {.step = "create repo", .url = url, .headers = hdrs};
    ptm_status st = ptm__hub_post_json(&p->h, &c, body, 409, &answer); /* 409: it exists already */
    json_object_put(body);
    json_object_put(answer);
    return st;
}

/* --- 2. preupload: which files go to LFS -------------------------------------------------- */

/* Standard base64 (RFC 4648, padded) of n bytes into out; returns the characters written,
 * 4 per 3 bytes begun. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[k++] = tab[v >> 18 & 63];
        out[k++] = tab[v >> 12 & 63];
        out[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? tab[v & 63] : '=';
    }
    return k;
}

/* out: (SAMPLE_SIZE + 2) / 3 * 4 + 1 characters. */
static ptm_status sample_b64(const struct ptm__push *p, const struct ptm__push_file *f, char *out)
{
    unsigned char buf[SAMPLE_SIZE];
    char full[PATH_MAX];
    FILE *fp = ptm__push_path(p, f->path, full, sizeof full) ? fopen(full, "rb") : NULL;
    if (fp == NULL) {
        return ptm__fail(PTM_E_IO, "%s/%s: cannot open", p->dir, f->path);
    }
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    out[b64_encode(buf, n, out)] = '\0';
    return PTM_OK;
}

static ptm_status read_modes(struct ptm__push *p, json_object *answer, const char *url)
{
    json_object *files = NULL;
    if (!json_object_object_get_ex(answer, "files", &files) ||
        !json_object_is_type(files, json_type_array)) {
        return ptm__fail(PTM_E_FORMAT, "repo %s: preupload: %s answered without a \"files\" list",
                         p->h.repo_id, url);
    }
    for (size_t i = 0; i < json_object_array_length(files); i++) {
        json_object *o = json_object_array_get_idx(files, i), *path, *mode, *ign;
        if (!json_object_object_get_ex(o, "path", &path) ||
            !json_object_object_get_ex(o, "uploadMode", &mode) ||
            !json_object_is_type(path, json_type_string) ||
            !json_object_is_type(mode, json_type_string)) {
            return ptm__fail(PTM_E_FORMAT,
                             "repo %s: preupload: files[%zu] lacks a string path or uploadMode",
                             p->h.repo_id, i);
        }
        for (size_t k = 0; k < p->n; k++) {
            if (strcmp(p->f[k].path, json_object_get_string(path)) == 0) {
                /* Empty files cannot go through LFS; huggingface_hub commits them inline. */
                p->f[k].is_lfs = strcmp(json_object_get_string(mode), "lfs") == 0 && p->f[k].size;
                p->f[k].ignore = json_object_object_get_ex(o, "shouldIgnore", &ign) &&
                                 json_object_get_boolean(ign);
            }
        }
    }
    return PTM_OK;
}

static ptm_status preupload(struct ptm__push *p, size_t from, size_t n)
{
    char url[1024], sample[(SAMPLE_SIZE + 2) / 3 * 4 + 1];
    snprintf(url, sizeof url, "%s/api/models/%s/preupload/%s", p->h.endpoint, p->h.repo_id, p->rev);
    json_object *body = json_object_new_object(), *files = json_object_new_array(), *answer;
    ptm_status st = body && files ? PTM_OK : ptm__fail(PTM_E_NOMEM, "push: out of memory");
    for (size_t i = from; st == PTM_OK && i < from + n; i++) {
        json_object *o = json_object_new_object();
        st = sample_b64(p, &p->f[i], sample);
        json_object_object_add(o, "path", json_object_new_string(p->f[i].path));
        json_object_object_add(o, "sample", json_object_new_string(sample));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)p->f[i].size));
        json_object_array_add(files, o);
    }
    json_object_object_add(body, "files", files);
    const char *const hdrs[] = {"Content-Type: application/json", NULL};
    struct ptm__hub_call c = {.step = "preupload", .url = url, .headers = hdrs};
    if (st == PTM_OK && (st = ptm__hub_post_json(&p->h, &c, body, -1, &answer)) == PTM_OK) {
        st = read_modes(p, answer, url);
        json_object_put(answer);
    }
    json_object_put(body);
    return st;
}

/* --- 4. the commit ------------------------------------------------------------------------ */

static int buf_add(struct ptm__hub_text *b, const char *s, size_t n)
{
    if (b->n + n + 2 > b->cap) {
        size_t cap = (b->n + n + 2) * 2;
        char *q = ptm__realloc(b->p, cap);
        if (q == NULL) {
            return 0;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n++] = '\n';
    b->p[b->n] = '\0';
    return 1;
}

/* Append {"key": key, "value": value} as one line; takes value. */
static int line_add(struct ptm__hub_text *b, const char *key, json_object *value)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "key", json_object_new_string(key));
    json_object_object_add(o, "value", value);
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int ok = o != NULL && s != NULL && buf_add(b, s, strlen(s));
    json_object_put(o);
    return ok;
}

/* The base64 of a regular file, which the commit carries inline. */
static ptm_status base64_file(const struct ptm__push *p, const struct ptm__push_file *f, char **out)
{
    char full[PATH_MAX];
    unsigned char in[3 * 1024];
    size_t cap = (size_t)(f->size + 2) / 3 * 4, k = 0, n;
    *out = NULL;
    if (f->size > ((uint64_t)1 << 30) || !ptm__push_path(p, f->path, full, sizeof full)) {
        return ptm__fail(PTM_E_INVAL, "%s/%s: %" PRIu64 " bytes: too large for an inline commit",
                         p->dir, f->path, f->size);
    }
    char *b = ptm__malloc(cap + 1);
    if (b == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s/%s: out of memory for the commit", p->dir, f->path);
    }
    FILE *fp = fopen(full, "rb");
    while (fp != NULL && (n = fread(in, 1, sizeof in, fp)) > 0 && k + (n + 2) / 3 * 4 <= cap) {
        k += b64_encode(in, n, b + k);
    }
    if (fp == NULL || ferror(fp) || k != cap) {
        if (fp != NULL) {
            fclose(fp);
        }
        ptm__free(b);
        return ptm__fail(PTM_E_IO,
                         "%s/%s: cannot read it all for the commit (changed while "
                         "pushing?)",
                         p->dir, f->path);
    }
    fclose(fp);
    b[k] = '\0';
    *out = b;
    return PTM_OK;
}

static ptm_status commit_body(struct ptm__push *p, const char *message, struct ptm__hub_text *b)
{
    json_object *hdr = json_object_new_object();
    json_object_object_add(hdr, "summary", json_object_new_string(message));
    json_object_object_add(hdr, "description", json_object_new_string(""));
    if (!line_add(b, "header", hdr)) {
        return ptm__fail(PTM_E_NOMEM, "push: out of memory for the commit of %s", p->dir);
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct ptm__push_file *f = &p->f[i];
        json_object *v = json_object_new_object();
        json_object_object_add(v, "path", json_object_new_string(f->path));
        if (f->ignore) {
            json_object_put(v);
            continue;
        }
        if (f->is_lfs) {
            json_object_object_add(v, "algo", json_object_new_string("sha256"));
            json_object_object_add(v, "oid", json_object_new_string(f->oid));
            json_object_object_add(v, "size", json_object_new_int64((int64_t)f->size));
        } else {
            char *b64 = NULL;
            ptm_status st = base64_file(p, f, &b64);
            if (st != PTM_OK) {
                json_object_put(v);
                return st;
            }
            json_object_object_add(v, "content", json_object_new_string(b64));
            json_object_object_add(v, "encoding", json_object_new_string("base64"));
            ptm__free(b64);
        }
        if (!line_add(b, f->is_lfs ? "lfsFile" : "file", v)) {
            return ptm__fail(PTM_E_NOMEM, "push: out of memory for the commit of %s", p->dir);
        }
    }
    return PTM_OK;
}

static ptm_status commit(struct ptm__push *p, const char *message, char **commit_url)
{
    char url[1024];
    struct ptm__hub_text b = {0};
    snprintf(url, sizeof url, "%s/api/models/%s/commit/%s", p->h.endpoint, p->h.repo_id, p->rev);
    ptm_status st = commit_body(p, message, &b);
    if (st != PTM_OK) {
        ptm__free(b.p);
        return st;
    }
    const char *const hdrs[] = {"Content-Type: application/x-ndjson", NULL};
    struct ptm__hub_call c = {
        .step = "commit", .url = url, .headers = hdrs, .body = b.p, .body_n = b.n, .once = 1};
    st = ptm__hub_call_run(&p->h, &c);
    ptm__free(b.p);
    if (st == PTM_OK && (c.r.status < 200 || c.r.status >= 300)) {
        st = ptm__hub_step_error(&p->h, &c);
    }
    json_object *root = st == PTM_OK && c.out.p ? json_tokener_parse(c.out.p) : NULL, *cu = NULL;
    if (st == PTM_OK && (!json_object_object_get_ex(root, "commitUrl", &cu) ||
                         !json_object_is_type(cu, json_type_string))) {
        st = ptm__fail(PTM_E_FORMAT, "repo %s: commit: %s answered without \"commitUrl\"",
                       p->h.repo_id, url);
    }
    if (st == PTM_OK && commit_url != NULL &&
        (*commit_url = ptm__strdup(json_object_get_string(cu))) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "push: out of memory");
    }
    json_object_put(root);
    ptm__hub_call_done(&c);
    return st;
}

/* --- the whole push ----------------------------------------------------------------------- */

static ptm_status push_run(struct ptm__push *p, const struct ptm_hub_push_opts *o,
                           char **commit_url)
{
    ptm_status st = walk(p, "", 0);
    if (st == PTM_OK && p->n == 0) {
        st = ptm__fail(PTM_E_NOT_FOUND, "%s: no files to upload", p->dir);
    }
    if (st == PTM_OK) {
        qsort(p->f, p->n, sizeof *p->f, by_path);
        st = create_repo(p, o ? o->private_repo : 0);
    }
    for (size_t i = 0; st == PTM_OK && i < p->n; i += PTM__PUSH_BATCH_MAX) {
        st = preupload(p, i, p->n - i < PTM__PUSH_BATCH_MAX ? p->n - i : PTM__PUSH_BATCH_MAX);
    }
    if (st == PTM_OK) {
        st = ptm__hub_lfs_push(p);
    }
    const char *msg = o && o->commit_message ? o->commit_message : "Upload model with ptm";
    return st == PTM_OK ? commit(p, msg, commit_url) : st;
}

PTM_API ptm_status ptm_hub_push(const char *dir, const char *repo_id,
                                const struct ptm_hub_push_opts *o, char **commit_url)
{
    ptm__error_clear();
    if (commit_url != NULL) {
        *commit_url = NULL;
    }
    if (dir == NULL || (o != NULL && o->struct_size < sizeof(uint32_t))) {
        return ptm__fail(PTM_E_INVAL, "ptm_hub_push: dir is NULL or opts->struct_size is %" PRIu32,
                         o ? o->struct_size : 0);
    }
    /* A caller built against an older, shorter struct leaves the newer members zero. */
    struct ptm_hub_push_opts opts = {.struct_size = sizeof opts};
    if (o != NULL) {
        memcpy(&opts, o, o->struct_size < sizeof opts ? o->struct_size : sizeof opts);
    }
    o = &opts;
    struct ptm__push *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "push: out of memory");
    }
    p->dir = dir;
    ptm_status st = ptm__hub_init(&p->h, repo_id, o ? o->revision : NULL, o ? o->token : NULL, 0);
    if (st == PTM_OK && !ptm__hub_url_encode(p->h.revision, 0, p->rev, sizeof p->rev)) {
        st = ptm__fail(PTM_E_INVAL, "repo %s: revision too long", repo_id);
    }
    if (st == PTM_OK) {
        st = push_run(p, o, commit_url);
    }
    if (st == PTM_OK) {
        PTM_INFO("hub: %s: pushed %zu files from %s", repo_id, p->n, dir);
    }
    ptm__free(p->f);
    ptm__free(p);
    return st;
}
