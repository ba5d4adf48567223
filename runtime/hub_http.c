/*
 * hub_http.c - the Hub's HTTP side with libcurl: request set-up, HEAD metadata of one file,
 * small GETs (the API's file list), retries with exponential backoff, and HTTP errors turned
 * into messages that name the repo, revision or file. Bulk downloads are hub_fetch.c's.
 *
 * Redirects are never followed by libcurl: older libcurl forwards a custom Authorization
 * header to whatever host a redirect names, so we follow them ourselves and attach the token
 * only to requests whose host is the endpoint's (LFS files redirect to a CDN host).
 * The header names are huggingface_hub's (constants.py): X-Repo-Commit, X-Linked-Etag,
 * X-Linked-Size, X-Error-Code, X-Error-Message.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "hub.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ptm__hub_pause(const struct ptm__hub *h, int tries)
{
    long ms = ptm__hub_backoff_ms(h, tries);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        /* interrupted by a signal: sleep the rest */
    }
}

long long ptm__hub_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long ptm__hub_backoff_ms(const struct ptm__hub *h, int tries)
{
    long ms = h->retry_base_ms;
    for (int i = 1; i < tries && ms < 60000; i++) {
        ms *= 2;
    }
    return ms;
}

int ptm__hub_retryable(int curl_code, long status)
{
    switch (curl_code) {
    case CURLE_OK:
        return status == 429 || status >= 500;
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0; /* unresolvable host, TLS trouble, bad URL: trying again will not help */
    }
}

int ptm__hub_url_encode(const char *s, int keep_slash, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (n + 4 > cap) {
            return 0;
        }
        if (plain) {
            buf[n++] = (char)*p;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        }
    }
    buf[n] = '\0';
    return 1;
}

/* The "host[:port]" of an absolute http(s) URL, lower-cased; "" when url has none. */
static void url_host(const char *url, char *buf, size_t cap)
{
    const char *p = strstr(url, "://");
    size_t n = 0;
    buf[0] = '\0';
    if (p == NULL) {
        return;
    }
    p += 3;
    const char *at = p + strcspn(p, "/?#");
    const char *userinfo = memchr(p, '@', (size_t)(at - p));
    if (userinfo != NULL) {
        p = userinfo + 1;
    }
    for (; p < at && n + 1 < cap; p++) {
        buf[n++] = (char)tolower((unsigned char)*p);
    }
    buf[n] = '\0';
}

int ptm__hub_join_url(const char *base, const char *loc, char *buf, size_t cap)
{
    int n;
    if (strstr(loc, "://") != NULL) {
        n = snprintf(buf, cap, "%s", loc);
    } else if (loc[0] == '/') {
        const char *p = strstr(base, "://");
        if (p == NULL) {
            return 0;
        }
        size_t origin = (size_t)(p + 3 - base) + strcspn(p + 3, "/?#");
        n = snprintf(buf, cap, "%.*s%s", (int)origin, base, loc);
    } else {
        return 0; /* the Hub sends absolute or host-relative locations only */
    }
    return n > 0 && (size_t)n < cap;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) {
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* ETag: W/"abc" or "abc" -> abc, as huggingface_hub's _normalize_etag does. */
static void normalize_etag(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= 2 && v[0] == 'W' && v[1] == '/') {
        v += 2;
        n -= 2;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) {
        n--;
    }
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    copy_value(dst, cap, v, n);
}

static int header_is(const char *line, size_t n, const char *name, const char **val, size_t *vn)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) {
        return 0;
    }
    *val = line + k + 1;
    *vn = n - k - 1;
    while (*vn > 0 && (**val == ' ' || **val == '\t')) {
        (*val)++;
        (*vn)--;
    }
    return 1;
}

static uint64_t parse_u64(const char *v, size_t n, int *ok)
{
    char tmp[32];
    copy_value(tmp, sizeof tmp, v, n);
    char *end;
    unsigned long long x = strtoull(tmp, &end, 10);
    *ok = end != tmp && *end == '\0';
    return x;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *user)
{
    struct ptm__hub_resp *r = user;
    size_t n = size * nitems;
    const char *v;
    size_t vn;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) { /* a new response block starts */
        memset(r, 0, sizeof *r);
        const char *sp = memchr(line, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    } else if (header_is(line, n, "X-Repo-Commit", &v, &vn)) {
        copy_value(r->commit, sizeof r->commit, v, vn);
    } else if (header_is(line, n, "X-Linked-Etag", &v, &vn)) {
        normalize_etag(r->linked_etag, sizeof r->linked_etag, v, vn);
    } else if (header_is(line, n, "ETag", &v, &vn)) {
        normalize_etag(r->etag, sizeof r->etag, v, vn);
    } else if (header_is(line, n, "X-Linked-Size", &v, &vn)) {
        r->linked_size = parse_u64(v, vn, &r->has_linked_size);
    } else if (header_is(line, n, "Content-Length", &v, &vn)) {
        r->size = parse_u64(v, vn, &r->has_size);
    } else if (header_is(line, n, "Location", &v, &vn)) {
        copy_value(r->location, sizeof r->location, v, vn);
    } else if (header_is(line, n, "X-Error-Code", &v, &vn)) {
        copy_value(r->error_code, sizeof r->error_code, v, vn);
    } else if (header_is(line, n, "X-Error-Message", &v, &vn)) {
        copy_value(r->error_msg, sizeof r->error_msg, v, vn);
    }
    return n;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    return v && *v && *end == '\0' && x > 0 ? x : dflt;
}

void *ptm__hub_easy(struct ptm__hub *h, const char *url, const char *range, struct ptm__hub_resp *r,
                    struct curl_slist **hdrs)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *e = curl_easy_init();
    struct curl_slist *l = NULL, *t;
    char host[256], auth[600];
    *hdrs = NULL;
    if (e == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof *r);
    url_host(url, host, sizeof host);
    int ok = (t = curl_slist_append(l, "Accept-Encoding: identity")) != NULL;
    l = ok ? t : l;
    if (ok && h->token[0] && strcmp(host, h->host) == 0) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->token);
        ok = (t = curl_slist_append(l, auth)) != NULL;
        l = ok ? t : l;
    }
    if (ok && range != NULL) {
        ok = (t = curl_slist_append(l, range)) != NULL;
        l = ok ? t : l;
    }
    if (!ok) {
        curl_slist_free_all(l);
        curl_easy_cleanup(e);
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ptm/" PTM_VERSION_STRING " (hub client; libcurl)");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, env_long("PTM_HUB_CONNECT_TIMEOUT_MS", 10000));
    /* A transfer stalled below 1 byte/s for this long is cut and retried (resuming). */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, env_long("PTM_HUB_STALL_S", 30));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    *hdrs = l;
    return e;
}

static const char *auth_hint(const struct ptm__hub *h)
{
    return h->token[0] ? "the token sent does not grant access to it"
                       : "no token was sent: set HF_TOKEN or write one to $HF_HOME/token";
}

ptm_status ptm__hub_http_error(struct ptm__hub *h, const struct ptm__hub_resp *r, const char *url,
                               const char *file)
{
    const char *code = r->error_code;
    const char *rev = h->revision;
    if (strcmp(code, "GatedRepo") == 0 || (r->status == 403 && !code[0])) {
        return ptm__hub_fail(h, 0, PTM_E_NOT_FOUND,
                             "repo %s is gated or private (HTTP %ld from %s): %s; request access "
                             "on the Hub",
                             h->repo_id, r->status, url, auth_hint(h));
    }
    if (r->status == 401 || r->status == 403) {
        return ptm__hub_fail(h, !h->token[0], PTM_E_NOT_FOUND,
                             "repo %s: not found, or private or gated (HTTP %ld%s%s from %s): %s",
                             h->repo_id, r->status, code[0] ? " " : "", code, url, auth_hint(h));
    }
    if (strcmp(code, "RevisionNotFound") == 0) {
        return ptm__hub_fail(h, 0, PTM_E_NOT_FOUND, "repo %s: revision \"%s\" not found (%s)",
                             h->repo_id, rev, url);
    }
    if (strcmp(code, "EntryNotFound") == 0 && file != NULL) {
        return ptm__hub_fail(h, 0, PTM_E_NOT_FOUND, "repo %s revision %s: file %s not found (%s)",
                             h->repo_id, rev, file, url);
    }
    if (r->status == 404) {
        return ptm__hub_fail(h, 1, PTM_E_NOT_FOUND, "repo %s not found on %s (HTTP 404%s%s, %s)",
                             h->repo_id, h->endpoint, code[0] ? " " : "", code, url);
    }
    return ptm__hub_fail(h, 0, PTM_E_NETWORK, "repo %s: HTTP %ld from %s%s%s", h->repo_id,
                         r->status, url, r->error_msg[0] ? ": " : "", r->error_msg);
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

size_t ptm__hub_collect(char *p, size_t size, size_t n, void *user)
{
    struct ptm__hub_text *b = user;
    size_t k = size * n;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *q = cap > ((size_t)64 << 20) ? NULL : ptm__realloc(b->p, cap);
        if (q == NULL) {
            b->oom = 1;
            return 0;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

/* One request with retries; follows same-host relative redirects, every redirect when
 * follow_all. body (may be NULL) collects the response. */
static ptm_status request(struct ptm__hub *h, const char *url0, int head, int follow_all,
                          struct ptm__hub_resp *r, char *final_url, size_t cap,
                          struct ptm__hub_text *body)
{
    char url[2048], next[2048];
    snprintf(url, sizeof url, "%s", url0);
    for (int tries = 1, hops = 0;;) {
        struct curl_slist *hdrs;
        CURL *e = ptm__hub_easy(h, url, NULL, r, &hdrs);
        if (e == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory", url);
        }
        curl_easy_setopt(e, CURLOPT_NOBODY, head ? 1L : 0L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body ? ptm__hub_collect : discard);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)body);
        if (body != NULL) {
            body->n = 0;
        }
        CURLcode rc = curl_easy_perform(e);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(e);
        if (body != NULL && body->oom) {
            return ptm__fail(PTM_E_NOMEM, "%s: response too large or out of memory", url);
        }
        if (rc == CURLE_OK && r->status >= 300 && r->status < 400 && r->location[0] &&
            (follow_all || r->location[0] == '/') && hops++ < 10) {
            if (!ptm__hub_join_url(url, r->location, next, sizeof next)) {
                return ptm__fail(PTM_E_NETWORK, "%s: bad redirect to \"%s\"", url, r->location);
            }
            snprintf(url, sizeof url, "%s", next);
            continue;
        }
        if (ptm__hub_retryable(rc, r->status) && tries < h->max_tries) {
            ptm__hub_pause(h, tries++);
            continue;
        }
        if (rc != CURLE_OK) {
            int soft = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT;
            return ptm__hub_fail(h, soft, PTM_E_NETWORK, "%s: %s (after %d tries)", url,
                                 curl_easy_strerror(rc), tries);
        }
        snprintf(final_url, cap, "%s", url);
        return PTM_OK;
    }
}

ptm_status ptm__hub_head(struct ptm__hub *h, const char *path, struct ptm__hub_file *f)
{
    char rev[400], file[3000], url[2048];
    const char *want = h->commit[0] ? h->commit : h->revision;
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (!ptm__hub_url_encode(want, 0, rev, sizeof rev) ||
        !ptm__hub_url_encode(path, 1, file, sizeof file) ||
        snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", h->endpoint, h->repo_id, rev, file) >=
            (int)sizeof url) {
        return ptm__fail(PTM_E_INVAL, "repo %s: file %s: URL too long", h->repo_id, path);
    }
    struct ptm__hub_resp r;
    char final[2048];
    ptm_status st = request(h, url, 1, 0, &r, final, sizeof final, NULL);
    if (st != PTM_OK) {
        return st;
    }
    if (r.status >= 400) {
        if (r.status == 404 && strcmp(r.error_code, "EntryNotFound") == 0) {
            f->missing = 1;
            if (!h->commit[0] && r.commit[0] && ptm__hub_valid_path(r.commit) &&
                !strchr(r.commit, '/')) {
                snprintf(h->commit, sizeof h->commit, "%s", r.commit);
            }
            ptm__hub_mark_missing(h, path);
            return PTM_OK;
        }
        return ptm__hub_http_error(h, &r, url, path);
    }
    if (!r.commit[0] || !ptm__hub_valid_path(r.commit) || strchr(r.commit, '/')) {
        return ptm__fail(PTM_E_NETWORK,
                         "%s: response has no valid X-Repo-Commit header; is HF_ENDPOINT (%s) a "
                         "Hugging Face Hub?",
                         url, h->endpoint);
    }
    if (h->commit[0] && strcmp(h->commit, r.commit) != 0) {
        return ptm__fail(PTM_E_NETWORK, "%s: commit %s, expected %s", url, r.commit, h->commit);
    }
    snprintf(h->commit, sizeof h->commit, "%s", r.commit);
    const char *etag = r.linked_etag[0] ? r.linked_etag : r.etag;
    if (!etag[0] || !ptm__hub_valid_path(etag) || strchr(etag, '/')) {
        return ptm__fail(PTM_E_NETWORK, "%s: response has no usable ETag", url);
    }
    snprintf(f->etag, sizeof f->etag, "%s", etag);
    f->is_lfs = r.linked_etag[0] != '\0';
    f->has_size = r.has_linked_size || (r.status < 300 && r.has_size);
    f->size = r.has_linked_size ? r.linked_size : r.size;
    if (r.status >= 300 && r.location[0]) {
        if (!ptm__hub_join_url(final, r.location, f->url, sizeof f->url)) {
            return ptm__fail(PTM_E_NETWORK, "%s: bad redirect to \"%s\"", url, r.location);
        }
    } else {
        snprintf(f->url, sizeof f->url, "%s", final);
    }
    return PTM_OK;
}

ptm_status ptm__hub_get_text(struct ptm__hub *h, const char *url, char **out)
{
    struct ptm__hub_resp r;
    struct ptm__hub_text b = {0};
    char final[2048];
    *out = NULL;
    ptm_status st = request(h, url, 0, 1, &r, final, sizeof final, &b);
    if (st == PTM_OK && r.status >= 400) {
        st = ptm__hub_http_error(h, &r, url, NULL);
    }
    if (st == PTM_OK && b.p == NULL && (b.p = ptm__strdup("")) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", url);
    }
    if (st != PTM_OK) {
        ptm__free(b.p);
        return st;
    }
    *out = b.p;
    return PTM_OK;
}
