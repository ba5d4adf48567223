/*
 * hub_cache.c - the shared Hugging Face cache as huggingface_hub lays it out (file_download.py):
 *
 *   {cache}/models--{org}--{name}/blobs/{etag}                 the content, named by etag
 *   {cache}/models--{org}--{name}/snapshots/{commit}/{file}    relative symlink to the blob
 *   {cache}/models--{org}--{name}/refs/{revision}              the commit a branch/tag names
 *   {cache}/models--{org}--{name}/.no_exist/{commit}/{file}    empty: file absent at commit
 *   {cache}/.locks/models--{org}--{name}/{etag}.lock           flock'd while a blob downloads
 *
 * Owns paths, names checks, links, markers and locks; it never talks to the network.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "hub.h"

int ptm__hub_valid_repo_id(const char *id)
{
    size_t n = strlen(id);
    int slashes = 0;
    if (n == 0 || n > 96 || id[0] == '.' || id[0] == '-' || strstr(id, "..") != NULL) {
        return 0;
    }
    for (const char *p = id; *p; p++) {
        if (*p == '/') {
            if (++slashes > 1 || p == id || p[1] == '\0') {
                return 0;
            }
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Repo file names come from the server (index.json, the API's file list): refuse absolute
 * paths, "." and ".." components, empty components, backslashes and control characters
 * before any of them reaches the file system. */
int ptm__hub_valid_path(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n >= 1000 || path[0] == '/' || path[n - 1] == '/') {
        return 0;
    }
    for (const char *p = path; *p; p++) {
        if (*p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }
    for (const char *c = path; c != NULL;) {
        const char *end = strchr(c, '/');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
            return 0;
        }
        c = end ? end + 1 : NULL;
    }
    return 1;
}

static int fmt_ok(int n, size_t cap)
{
    return n > 0 && (size_t)n < cap;
}

int ptm__hub_repo_folder(const char *repo_id, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "models--");
    for (const char *p = repo_id; *p; p++) {
        if (n + 3 > cap) {
            return 0;
        }
        if (*p == '/') {
            buf[n++] = '-';
            buf[n++] = '-';
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    return 1;
}

ptm_status ptm__hub_cache_init(struct ptm__hub *h)
{
    char folder[256];
    if (!ptm__hub_repo_folder(h->repo_id, folder, sizeof folder) ||
        !fmt_ok(snprintf(h->repo_dir, sizeof h->repo_dir, "%s/%s", h->cache, folder),
                sizeof h->repo_dir) ||
        !fmt_ok(snprintf(h->locks_dir, sizeof h->locks_dir, "%s/.locks/%s", h->cache, folder),
                sizeof h->locks_dir)) {
        return ptm__fail(PTM_E_INVAL, "%s: cache path too long", h->cache);
    }
    return PTM_OK;
}

ptm_status ptm__hub_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (!fmt_ok(snprintf(buf, sizeof buf, "%s", path), sizeof buf)) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", path);
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            return ptm__fail(PTM_E_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        }
        *p = '/';
    }
    return PTM_OK;
}

static int is_commit_hash(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 40 && s[40] == '\0';
}

int ptm__hub_cached_commit(const struct ptm__hub *h, char commit[64])
{
    char ref[PATH_MAX + 160];
    if (!fmt_ok(snprintf(ref, sizeof ref, "%s/refs/%s", h->repo_dir, h->revision), sizeof ref)) {
        return 0;
    }
    FILE *f = fopen(ref, "r");
    if (f == NULL) {
        if (is_commit_hash(h->revision)) {
            memcpy(commit, h->revision, 41);
            return 1;
        }
        return 0;
    }
    char line[128] = "";
    if (fgets(line, sizeof line, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    size_t n = strlen(line);
    if (!ptm__hub_valid_path(line) || strchr(line, '/') != NULL || n >= 64) {
        return 0;
    }
    memcpy(commit, line, n + 1);
    return 1;
}

/* huggingface_hub writes refs/{revision} only when the revision is not the commit itself. */
ptm_status ptm__hub_write_ref(const struct ptm__hub *h)
{
    if (strcmp(h->revision, h->commit) == 0) {
        return PTM_OK;
    }
    char ref[PATH_MAX + 160], tmp[PATH_MAX + 200];
    if (!fmt_ok(snprintf(ref, sizeof ref, "%s/refs/%s", h->repo_dir, h->revision), sizeof ref) ||
        !fmt_ok(snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ref, (long)getpid()), sizeof tmp)) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", h->repo_dir);
    }
    ptm_status st = ptm__hub_mkdirs(ref);
    if (st != PTM_OK) {
        return st;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    int bad = fputs(h->commit, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, ref) != 0) {
        unlink(tmp);
        return ptm__fail(PTM_E_IO, "%s: cannot write ref", ref);
    }
    return PTM_OK;
}

int ptm__hub_blob_path(const struct ptm__hub *h, const char *etag, const char *suffix, char *buf,
                       size_t cap)
{
    return fmt_ok(snprintf(buf, cap, "%s/blobs/%s%s", h->repo_dir, etag, suffix), cap);
}

int ptm__hub_snapshot_path(const struct ptm__hub *h, const char *file, char *buf, size_t cap)
{
    return fmt_ok(snprintf(buf, cap, "%s/snapshots/%s/%s", h->repo_dir, h->commit, file), cap);
}

ptm_status ptm__hub_link(const struct ptm__hub *h, const char *file, const char *etag)
{
    char dst[PATH_MAX], tmp[PATH_MAX + 32], target[PATH_MAX];
    /* From snapshots/{commit}/a/b/file back to the repo folder: two levels, plus one per '/'. */
    int n = snprintf(target, sizeof target, "../../");
    for (const char *p = file; *p; p++) {
        if (*p == '/' && n < (int)sizeof target - 4) {
            n += snprintf(target + n, sizeof target - (size_t)n, "../");
        }
    }
    if (!fmt_ok(snprintf(target + n, sizeof target - (size_t)n, "blobs/%s", etag),
                sizeof target - (size_t)n) ||
        !ptm__hub_snapshot_path(h, file, dst, sizeof dst) ||
        !fmt_ok(snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid()), sizeof tmp)) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", file);
    }
    ptm_status st = ptm__hub_mkdirs(dst);
    if (st != PTM_OK) {
        return st;
    }
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return ptm__fail(PTM_E_IO, "%s: cannot link to %s: %s", dst, target, strerror(e));
    }
    return PTM_OK;
}

static int no_exist_path(const struct ptm__hub *h, const char *file, char *buf, size_t cap)
{
    return h->commit[0] &&
           fmt_ok(snprintf(buf, cap, "%s/.no_exist/%s/%s", h->repo_dir, h->commit, file), cap);
}

void ptm__hub_mark_missing(const struct ptm__hub *h, const char *file)
{
    char path[PATH_MAX];
    if (!no_exist_path(h, file, path, sizeof path) || ptm__hub_mkdirs(path) != PTM_OK) {
        return; /* a cache hint only: the next online call asks the Hub again */
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
    }
}

int ptm__hub_is_marked_missing(const struct ptm__hub *h, const char *file)
{
    char path[PATH_MAX];
    struct stat sb;
    return no_exist_path(h, file, path, sizeof path) && stat(path, &sb) == 0;
}

ptm_status ptm__hub_lock(const struct ptm__hub *h, const char *etag, int *fd)
{
    char path[PATH_MAX];
    *fd = -1;
    if (!fmt_ok(snprintf(path, sizeof path, "%s/%s.lock", h->locks_dir, etag), sizeof path)) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", h->locks_dir);
    }
    ptm_status st = ptm__hub_mkdirs(path);
    if (st != PTM_OK) {
        return st;
    }
    int d = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (d < 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot open lock file: %s", path, strerror(errno));
    }
    while (flock(d, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(d);
            return ptm__fail(PTM_E_IO, "%s: cannot lock: %s", path, strerror(e));
        }
    }
    *fd = d;
    return PTM_OK;
}

void ptm__hub_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}
