/*
 * hub_fetch.c - downloading blobs into the cache: several files at once with libcurl multi,
 * each into blobs/{etag}.incomplete, resumed with "Range: bytes=N-" after a cut, retried with
 * exponential backoff on 5xx, resets and timeouts, checked against the LFS etag (the hex
 * sha256 of the content), renamed into place, then linked from the snapshot. A blob being
 * downloaded is flock'd ({cache}/.locks/{repo}/{etag}.lock, as huggingface_hub does) so a
 * second process waits and then finds it complete. Redirects are followed here, by hand,
 * so the token never leaves the endpoint's host (see hub_http.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"
#include "log.h"
#include "sha256.h"

#define MAX_PARALLEL 8

enum { X_WAIT, X_RUN, X_DONE };

struct xfer {
    struct ptm__hub_file *f;
    char part[PATH_MAX + 16];
    char blob[PATH_MAX];
    char url[2048];
    FILE *fp;
    uint64_t have; /* bytes in part */
    int tries, hops, state, lock_fd, wrote_any, overflow;
    long long wake_ms, start_ms, shown_ms;
    CURL *e;
    struct curl_slist *hdrs;
    struct ptm__hub_resp r;
};

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    struct xfer *x = user;
    size_t k = size * n;
    if (x->r.status != 200 && x->r.status != 206) {
        return k; /* an error page or a redirect body */
    }
    if (!x->wrote_any && x->r.status == 200 && x->have > 0) {
        /* We asked for a range and got the whole file: start over. */
        if (fflush(x->fp) != 0 || ftruncate(fileno(x->fp), 0) != 0) {
            return 0;
        }
        rewind(x->fp);
        x->have = 0;
    }
    x->wrote_any = 1;
    if (x->f->has_size && x->have + k > x->f->size) {
        x->overflow = 1;
        return 0;
    }
    if (fwrite(p, 1, k, x->fp) != k) {
        return 0;
    }
    x->have += k;
    long long now = ptm__hub_now_ms();
    if (now - x->shown_ms >= 100) {
        x->shown_ms = now;
        ptm__hub_progress(x->f->path, x->have, x->f->size, x->start_ms);
    }
    return k;
}

static void xfer_stop(CURLM *m, struct xfer *x)
{
    if (x->e != NULL) {
        curl_multi_remove_handle(m, x->e);
        curl_easy_cleanup(x->e);
        x->e = NULL;
    }
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    if (x->fp != NULL) {
        fclose(x->fp);
        x->fp = NULL;
    }
}

static ptm_status xfer_start(struct ptm__hub *h, CURLM *m, struct xfer *x)
{
    char range[64];
    struct stat sb;
    x->fp = fopen(x->part, "ab");
    if (x->fp == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot open: %s", x->part, strerror(errno));
    }
    x->have = fstat(fileno(x->fp), &sb) == 0 ? (uint64_t)sb.st_size : 0;
    snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-", x->have);
    x->e = ptm__hub_easy(h, x->url, x->have > 0 ? range : NULL, &x->r, &x->hdrs);
    if (x->e == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", x->url);
    }
    x->wrote_any = x->overflow = 0;
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, (void *)x);
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, (void *)x);
    if (curl_multi_add_handle(m, x->e) != CURLM_OK) {
        return ptm__fail(PTM_E_NETWORK, "%s: cannot start transfer", x->url);
    }
    x->state = X_RUN;
    return PTM_OK;
}

/* The part file is whole: check it, move it into blobs/ (the lock is held). */
static ptm_status xfer_finish(struct ptm__hub *h, struct xfer *x)
{
    if (x->f->is_lfs && strlen(x->f->etag) == 64) {
        char got[65];
        ptm_status st = ptm__sha256_file(x->part, got);
        if (st != PTM_OK) {
            return st;
        }
        if (strcmp(got, x->f->etag) != 0) {
            unlink(x->part);
            return ptm__fail(PTM_E_FORMAT,
                             "repo %s: file %s: sha256 of the download is %s, expected %s (the "
                             "LFS etag); discarded",
                             h->repo_id, x->f->path, got, x->f->etag);
        }
    }
    if (rename(x->part, x->blob) != 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot rename into place: %s", x->blob, strerror(errno));
    }
    ptm__hub_progress(x->f->path, x->have, x->have, x->start_ms);
    x->state = X_DONE;
    return PTM_OK;
}

/* Decide what a finished attempt means: done, retry later, follow a redirect, or fail. */
static ptm_status xfer_done(struct ptm__hub *h, CURLM *m, struct xfer *x, CURLcode rc)
{
    struct ptm__hub_resp r = x->r;
    int overflow = x->overflow;
    xfer_stop(m, x);
    if (rc == CURLE_OK && r.status >= 300 && r.status < 400 && r.location[0]) {
        char next[2048];
        if (x->hops++ >= 10 || !ptm__hub_join_url(x->url, r.location, next, sizeof next)) {
            return ptm__fail(PTM_E_NETWORK, "repo %s: file %s: bad or too many redirects (%s)",
                             h->repo_id, x->f->path, x->url);
        }
        snprintf(x->url, sizeof x->url, "%s", next);
        x->state = X_WAIT;
        x->wake_ms = 0;
        return PTM_OK;
    }
    if (overflow) {
        unlink(x->part);
        return ptm__fail(PTM_E_FORMAT,
                         "repo %s: file %s: server sent more than the %" PRIu64
                         " bytes announced (%s); discarded",
                         h->repo_id, x->f->path, x->f->size, x->url);
    }
    if (rc == CURLE_OK && r.status == 416 && x->f->has_size && x->have == x->f->size) {
        return xfer_finish(h, x); /* the part file was already whole */
    }
    if (rc == CURLE_OK && r.status == 416) {
        unlink(x->part); /* our part file does not fit the remote file: start over */
    }
    int short_body = rc == CURLE_OK && r.status < 300 && x->f->has_size && x->have < x->f->size;
    if (rc == CURLE_OK && r.status < 300 && !short_body) {
        return xfer_finish(h, x);
    }
    if (ptm__hub_retryable(rc, r.status) || short_body || r.status == 416) {
        if (x->tries < h->max_tries) {
            long wait = ptm__hub_backoff_ms(h, x->tries++);
            PTM_INFO("hub: %s: %s: try %d failed (%s, HTTP %ld); retrying in %ld ms", h->repo_id,
                     x->f->path, x->tries - 1,
                     rc != CURLE_OK ? curl_easy_strerror(rc) : "short body", r.status, wait);
            x->state = X_WAIT;
            x->wake_ms = ptm__hub_now_ms() + wait;
            return PTM_OK;
        }
        return ptm__fail(PTM_E_NETWORK,
                         "repo %s: file %s: download failed after %d tries: %s (HTTP %ld, %s); "
                         "%" PRIu64 " bytes kept in %s for resuming",
                         h->repo_id, x->f->path, x->tries,
                         rc != CURLE_OK ? curl_easy_strerror(rc) : "short body", r.status, x->url,
                         x->have, x->part);
    }
    if (rc != CURLE_OK) {
        return ptm__fail(PTM_E_NETWORK, "repo %s: file %s: %s (%s)", h->repo_id, x->f->path,
                         curl_easy_strerror(rc), x->url);
    }
    return ptm__hub_http_error(h, &r, x->url, x->f->path);
}

/* Run the transfers until all are done or one fails; waiting ones start when due. */
static ptm_status run_all(struct ptm__hub *h, CURLM *m, struct xfer *xs, size_t n)
{
    ptm_status st = PTM_OK;
    for (;;) {
        size_t running = 0, waiting = 0;
        long long now = ptm__hub_now_ms(), next_wake = now + 100;
        for (size_t i = 0; i < n; i++) {
            running += xs[i].state == X_RUN;
        }
        for (size_t i = 0; i < n && st == PTM_OK; i++) {
            struct xfer *x = &xs[i];
            if (x->state != X_WAIT) {
                continue;
            }
            waiting++;
            if (x->wake_ms <= now && running < MAX_PARALLEL) {
                st = xfer_start(h, m, x);
                running++;
            } else if (x->wake_ms < next_wake) {
                next_wake = x->wake_ms;
            }
        }
        if (st != PTM_OK || (running == 0 && waiting == 0)) {
            return st;
        }
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while (st == PTM_OK && (msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                struct xfer *x = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                st = xfer_done(h, m, x, msg->data.result);
            }
        }
        if (st != PTM_OK) {
            return st;
        }
        long wait = (long)(next_wake - ptm__hub_now_ms());
        curl_multi_poll(m, NULL, 0, wait < 1 ? 1 : (int)(wait > 100 ? 100 : wait), NULL);
    }
}

static int by_etag(const void *a, const void *b)
{
    return strcmp(((const struct xfer *)a)->f->etag, ((const struct xfer *)b)->f->etag);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Lock each blob to fetch (in etag order, so two processes cannot deadlock), and drop the
 * ones another process finished meanwhile. Returns how many remain to download. */
static ptm_status lock_all(struct ptm__hub *h, struct xfer *xs, size_t n)
{
    qsort(xs, n, sizeof *xs, by_etag);
    for (size_t i = 0; i < n; i++) {
        struct xfer *x = &xs[i];
        ptm_status st = ptm__hub_lock(h, x->f->etag, &x->lock_fd);
        if (st != PTM_OK) {
            return st;
        }
        if (exists(x->blob)) {
            x->state = X_DONE;
        }
    }
    return PTM_OK;
}

ptm_status ptm__hub_fetch(struct ptm__hub *h, struct ptm__hub_file *files, size_t n)
{
    struct xfer *xs = ptm__calloc(n ? n : 1, sizeof *xs);
    size_t nx = 0;
    ptm_status st = xs ? PTM_OK : ptm__fail(PTM_E_NOMEM, "repo %s: out of memory", h->repo_id);
    for (size_t i = 0; st == PTM_OK && i < n; i++) {
        struct ptm__hub_file *f = &files[i];
        struct xfer *x = &xs[nx];
        int dup = 0;
        for (size_t k = 0; k < nx; k++) {
            dup |= strcmp(xs[k].f->etag, f->etag) == 0;
        }
        if (f->missing || dup) {
            continue;
        }
        x->f = f;
        x->lock_fd = -1;
        x->tries = 1;
        x->start_ms = ptm__hub_now_ms();
        snprintf(x->url, sizeof x->url, "%s", f->url);
        if (!ptm__hub_blob_path(h, f->etag, "", x->blob, sizeof x->blob) ||
            !ptm__hub_blob_path(h, f->etag, ".incomplete", x->part, sizeof x->part)) {
            st = ptm__fail(PTM_E_INVAL, "%s: cache path too long", h->repo_dir);
        } else if (!exists(x->blob)) {
            nx++;
        }
    }
    if (st == PTM_OK && nx > 0 && (st = ptm__hub_mkdirs(xs[0].blob)) == PTM_OK) {
        st = lock_all(h, xs, nx);
    }
    CURLM *m = NULL;
    if (st == PTM_OK && nx > 0) {
        m = curl_multi_init();
        st = m ? run_all(h, m, xs, nx) : ptm__fail(PTM_E_NOMEM, "curl_multi_init failed");
    }
    for (size_t i = 0; i < nx; i++) {
        xfer_stop(m, &xs[i]);
        ptm__hub_unlock(xs[i].lock_fd);
    }
    if (m != NULL) {
        curl_multi_cleanup(m);
    }
    ptm__free(xs);
    for (size_t i = 0; st == PTM_OK && i < n; i++) {
        if (!files[i].missing) {
            st = ptm__hub_link(h, files[i].path, files[i].etag);
        }
    }
    return st;
}
