/*
 * atomic_file.c - the temp-file, fsync, rename, fsync-the-directory sequence behind every file
 * the runtime writes (configs, weights indexes), so a crash or a full disk never leaves a
 * half-written file under the real name. It does not know what the bytes are.
 */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

static ptm_status io_fail(const char *path, const char *step, int err)
{
    return ptm__fail(PTM_E_IO, "%s: cannot %s: %s", path, step, strerror(err));
}

static ptm_status write_all(int fd, const char *tmp, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, data, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return io_fail(tmp, "write", errno);
        }
        data += k;
        n -= (size_t)k;
    }
    return fsync(fd) == 0 ? PTM_OK : io_fail(tmp, "fsync", errno);
}

/* fsync the directory holding path, so the rename itself is durable. */
static ptm_status sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? ptm__strdup(".")
                              : ptm__strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (dir == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    ptm_status st = PTM_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        st = io_fail(dir, "sync directory", errno);
    }
    if (fd >= 0) {
        close(fd);
    }
    ptm__free(dir);
    return st;
}

ptm_status ptm__atomic_write(const char *path, const void *data, size_t n)
{
    size_t len = strlen(path) + 32;
    char *tmp = ptm__malloc(len);
    if (tmp == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        ptm_status st = io_fail(tmp, "create", errno);
        ptm__free(tmp);
        return st;
    }
    ptm_status st = write_all(fd, tmp, data, n);
    if (close(fd) != 0 && st == PTM_OK) {
        st = io_fail(tmp, "close", errno);
    }
    if (st == PTM_OK && rename(tmp, path) != 0) {
        st = io_fail(path, "rename the temporary file over", errno);
    }
    if (st != PTM_OK) {
        unlink(tmp);
    } else {
        st = sync_dir(path);
    }
    ptm__free(tmp);
    return st;
}
