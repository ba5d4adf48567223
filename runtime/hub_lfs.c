/*
 * hub_lfs.c - the LFS step of ptm_hub_push: the sha256 of each file that preupload sent to
 * LFS, the Git LFS batch API (github.com/git-lfs/git-lfs docs/api/batch.md, as the Hub
 * serves it and huggingface_hub's lfs.py calls it: POST {endpoint}/{repo}.git/info/lfs/
 * objects/batch, operation "upload", transfer "basic", hash_algo "sha256", ref the branch),
 * then for each object the answer gives actions for: PUT the bytes to actions.upload.href
 * with only that action's headers (the href is a storage host's; the Hub token never goes
 * there, which ptm__hub_easy ensures), then POST {oid, size} to actions.verify.href. An
 * object without actions is stored already, so nothing is sent for it. Multipart transfers
 * (header "chunk_size") are not offered and are refused if the Hub asks for one anyway.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "hub.h"
#include "log.h"
#include "sha256.h"

static ptm_status hash_lfs_files(struct ptm__push *p)
{
    char full[PATH_MAX];
    for (size_t i = 0; i < p->n; i++) {
        struct ptm__push_file *f = &p->f[i];
        if (!f->is_lfs || f->ignore) {
            continue;
        }
        if (!ptm__push_path(p, f->path, full, sizeof full)) {
            return ptm__fail(PTM_E_INVAL, "%s/%s: path too long", p->dir, f->path);
        }
        ptm_status st = ptm__sha256_file(full, f->oid);
        if (st != PTM_OK) {
            return st;
        }
    }
    return PTM_OK;
}

/* The "header" object of an action as "Name: value" lines; refuses line breaks. An
 * Authorization header is dropped for the endpoint's own host, which gets the token. */
static ptm_status action_headers(struct ptm__push *p, json_object *action, const char *href,
                                 const char *file, char lines[][600], const char *ptrs[],
                                 size_t max)
{
    json_object *hdr = NULL;
    size_t n = 0, ep = strlen(p->h.endpoint);
    int own_host = p->h.token[0] && strncmp(href, p->h.endpoint, ep) == 0 && href[ep] == '/';
    if (json_object_object_get_ex(action, "header", &hdr) &&
        json_object_is_type(hdr, json_type_object)) {
        json_object_object_foreach(hdr, k, v)
        {
            const char *s = json_object_get_string(v);
            if (own_host && strcasecmp(k, "Authorization") == 0) {
                continue;
            }
            int len = snprintf(lines[n], 600, "%s: %s", k, s ? s : "");
            if (n + 1 >= max || len < 0 || len >= 600 || strpbrk(lines[n], "\r\n") != NULL) {
                return ptm__fail(PTM_E_FORMAT,
                                 "repo %s: lfs batch: bad upload header \"%s\" for %s",
                                 p->h.repo_id, k, file);
            }
            ptrs[n] = lines[n];
            n++;
        }
    }
    ptrs[n] = NULL;
    return PTM_OK;
}

static const char *href_of(json_object *action)
{
    json_object *href = NULL;
    json_object_object_get_ex(action, "href", &href);
    const char *s =
        json_object_is_type(href, json_type_string) ? json_object_get_string(href) : NULL;
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
                   strlen(s) < 2048
               ? s
               : NULL;
}

static ptm_status upload(struct ptm__push *p, struct ptm__push_file *f, json_object *action)
{
    char lines[32][600], full[PATH_MAX];
    const char *hdrs[32], *href = href_of(action);
    json_object *hdr = NULL, *chunk = NULL;
    if (href == NULL) {
        return ptm__fail(PTM_E_FORMAT, "repo %s: lfs batch: no http(s) upload href for %s",
                         p->h.repo_id, f->path);
    }
    if (json_object_object_get_ex(action, "header", &hdr) &&
        json_object_object_get_ex(hdr, "chunk_size", &chunk)) {
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "repo %s: upload of %s (%" PRIu64 " bytes): the Hub asks for a multipart "
                         "LFS upload, which ptm does not implement; upload it with huggingface_hub",
                         p->h.repo_id, f->path, f->size);
    }
    ptm_status st = action_headers(p, action, href, f->path, lines, hdrs, 32);
    if (st != PTM_OK) {
        return st;
    }
    FILE *fp = ptm__push_path(p, f->path, full, sizeof full) ? fopen(full, "rb") : NULL;
    if (fp == NULL) {
        return ptm__fail(PTM_E_IO, "%s/%s: cannot open", p->dir, f->path);
    }
    struct ptm__hub_call c = {.step = "upload",
                              .file = f->path,
                              .url = href,
                              .headers = hdrs,
                              .fp = fp,
                              .fp_size = f->size};
    st = ptm__hub_call_run(&p->h, &c);
    fclose(fp);
    if (st == PTM_OK && (c.r.status < 200 || c.r.status >= 300)) {
        st = ptm__hub_step_error(&p->h, &c);
    }
    ptm__hub_call_done(&c);
    return st;
}

static ptm_status verify(struct ptm__push *p, const struct ptm__push_file *f, json_object *action)
{
    char lines[32][600];
    const char *hdrs[33], *href = href_of(action);
    if (href == NULL) {
        return ptm__fail(PTM_E_FORMAT, "repo %s: lfs batch: no http(s) verify href for %s",
                         p->h.repo_id, f->path);
    }
    ptm_status st = action_headers(p, action, href, f->path, lines, hdrs + 1, 32);
    if (st != PTM_OK) {
        return st;
    }
    hdrs[0] = "Content-Type: application/vnd.git-lfs+json";
    json_object *body = json_object_new_object(), *answer = NULL;
    if (body == NULL) {
        return ptm__fail(PTM_E_NOMEM, "push: out of memory");
    }
    json_object_object_add(body, "oid", json_object_new_string(f->oid));
    json_object_object_add(body, "size", json_object_new_int64((int64_t)f->size));
    struct ptm__hub_call c = {.step = "verify", .file = f->path, .url = href, .headers = hdrs};
    st = ptm__hub_post_json(&p->h, &c, body, 200, &answer);
    json_object_put(body);
    json_object_put(answer);
    return st;
}

static struct ptm__push_file *by_oid(struct ptm__push *p, const char *oid)
{
    for (size_t i = 0; oid != NULL && i < p->n; i++) {
        if (p->f[i].is_lfs && !p->f[i].ignore && !p->f[i].sent && !strcmp(p->f[i].oid, oid)) {
            return &p->f[i];
        }
    }
    return NULL;
}

/* Act on the batch answer: objects with no actions are stored already. */
static ptm_status lfs_objects(struct ptm__push *p, json_object *answer, const char *url)
{
    json_object *objs = NULL;
    if (!json_object_object_get_ex(answer, "objects", &objs) ||
        !json_object_is_type(objs, json_type_array)) {
        return ptm__fail(PTM_E_FORMAT, "repo %s: lfs batch: %s answered without \"objects\"",
                         p->h.repo_id, url);
    }
    ptm_status st = PTM_OK;
    for (size_t i = 0; st == PTM_OK && i < json_object_array_length(objs); i++) {
        json_object *o = json_object_array_get_idx(objs, i), *oid, *err, *acts, *up, *ver;
        json_object_object_get_ex(o, "oid", &oid);
        struct ptm__push_file *f = by_oid(p, oid ? json_object_get_string(oid) : NULL);
        if (f == NULL) {
            continue; /* an oid we did not ask about, or one of two identical files */
        }
        f->sent = 1;
        if (json_object_object_get_ex(o, "error", &err) && err != NULL) {
            json_object *msg = NULL;
            json_object_object_get_ex(err, "message", &msg);
            return ptm__fail(PTM_E_NETWORK, "repo %s: lfs batch refused %s (oid %s): %s",
                             p->h.repo_id, f->path, f->oid,
                             msg ? json_object_get_string(msg) : json_object_get_string(err));
        }
        if (!json_object_object_get_ex(o, "actions", &acts)) {
            PTM_DEBUG("hub: %s: %s: already on the Hub; not uploaded", p->h.repo_id, f->path);
            continue;
        }
        if (json_object_object_get_ex(acts, "upload", &up)) {
            st = upload(p, f, up);
        }
        if (st == PTM_OK && json_object_object_get_ex(acts, "verify", &ver)) {
            st = verify(p, f, ver);
        }
    }
    return st;
}

static ptm_status lfs_batch(struct ptm__push *p, size_t from, size_t n)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/%s.git/info/lfs/objects/batch", p->h.endpoint, p->h.repo_id);
    json_object *body = json_object_new_object(), *objs = json_object_new_array(), *answer;
    json_object *tr = json_object_new_array(), *r = json_object_new_object();
    size_t k = 0;
    for (size_t i = from; i < from + n; i++) {
        if (p->f[i].is_lfs && !p->f[i].ignore) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "oid", json_object_new_string(p->f[i].oid));
            json_object_object_add(o, "size", json_object_new_int64((int64_t)p->f[i].size));
            json_object_array_add(objs, o);
            k++;
        }
    }
    json_object_array_add(tr, json_object_new_string("basic"));
    json_object_object_add(r, "name",
                           json_object_new_string(p->h.revision)); /* as huggingface_hub sends it */
    json_object_object_add(body, "operation", json_object_new_string("upload"));
    json_object_object_add(body, "transfers", tr);
    json_object_object_add(body, "objects", objs);
    json_object_object_add(body, "hash_algo", json_object_new_string("sha256"));
    json_object_object_add(body, "ref", r);
    const char *const hdrs[] = {"Accept: application/vnd.git-lfs+json",
                                "Content-Type: application/vnd.git-lfs+json", NULL};
    struct ptm__hub_call c = {.step = "lfs batch", .url = url, .headers = hdrs};
    ptm_status st = PTM_OK;
    if (k > 0 && (st = ptm__hub_post_json(&p->h, &c, body, -1, &answer)) == PTM_OK) {
        st = lfs_objects(p, answer, url);
        json_object_put(answer);
    }
    json_object_put(body);
    return st;
}

ptm_status ptm__hub_lfs_push(struct ptm__push *p)
{
    ptm_status st = hash_lfs_files(p);
    for (size_t i = 0; st == PTM_OK && i < p->n; i += PTM__PUSH_BATCH_MAX) {
        st = lfs_batch(p, i, p->n - i < PTM__PUSH_BATCH_MAX ? p->n - i : PTM__PUSH_BATCH_MAX);
    }
    return st;
}
