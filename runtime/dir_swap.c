/*
 * dir_swap.c - atomic replacement of a directory's contents (see dir_swap.h). Owns the mirror
 * of the old tree by hard links, the exchange, the fallback for filesystems that cannot
 * exchange, and removing temporary trees. It writes no file contents itself.
 */
#include "dir_swap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void ptm__rm_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Mirror src into dst (which exists): directories recreated, files hard-linked, symlinks
 * copied. */
static ptm_status mirror(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (d == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot read directory: %s", src, strerror(errno));
    }
    ptm_status st = PTM_OK;
    for (struct dirent *e; st == PTM_OK && (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        char from[PATH_MAX], to[PATH_MAX], target[PATH_MAX];
        struct stat sb;
        if (snprintf(from, sizeof from, "%s/%s", src, e->d_name) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s/%s", dst, e->d_name) >= (int)sizeof to) {
            st = ptm__fail(PTM_E_INVAL, "%s/%s: path too long", src, e->d_name);
        } else if (lstat(from, &sb) != 0) {
            st = ptm__fail(PTM_E_IO, "%s: %s", from, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = mkdir(to, sb.st_mode & 07777) == 0
                     ? mirror(from, to)
                     : ptm__fail(PTM_E_IO, "%s: %s", to, strerror(errno));
        } else if (S_ISLNK(sb.st_mode)) {
            ssize_t n = readlink(from, target, sizeof target - 1);
            if (n < 0 || (target[n] = '\0', symlink(target, to)) != 0) {
                st = ptm__fail(PTM_E_IO, "%s: cannot copy link: %s", from, strerror(errno));
            }
        } else if (link(from, to) != 0) {
            st = ptm__fail(PTM_E_IO, "%s: cannot link into %s: %s", from, dst, strerror(errno));
        }
    }
    closedir(d);
    return st;
}

static ptm_status fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        ptm_status st = ptm__fail(PTM_E_IO, "%s: fsync failed: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return st;
    }
    close(fd);
    return PTM_OK;
}

static void parent_of(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(buf, cap, ".");
    } else {
        snprintf(buf, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
}

ptm_status ptm__dir_swap_begin(const char *dir, struct ptm__dir_swap *s)
{
    memset(s, 0, sizeof *s);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') { /* "out/" names the same directory as "out" */
        n--;
    }
    if (n + 24 >= sizeof s->dir) {
        return ptm__fail(PTM_E_INVAL, "%s: path too long", dir);
    }
    memcpy(s->dir, dir, n);
    s->dir[n] = '\0';
    memcpy(s->tmp, s->dir, n); /* n + 24 < PATH_MAX was checked above */
    memcpy(s->tmp + n, ".ptm-save-XXXXXX", sizeof ".ptm-save-XXXXXX");
    if (mkdtemp(s->tmp) == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot create a directory beside it: %s", s->dir,
                         strerror(errno));
    }
    struct stat sb;
    if (stat(s->dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            ptm__dir_swap_abort(s);
            return ptm__fail(PTM_E_IO, "%s: not a directory", s->dir);
        }
        s->existed = 1;
        chmod(s->tmp, sb.st_mode & 07777);
        ptm_status st = mirror(s->dir, s->tmp);
        if (st != PTM_OK) {
            ptm__dir_swap_abort(s);
            return st;
        }
    } else {
        chmod(s->tmp, 0755);
    }
    return PTM_OK;
}

/* Without RENAME_EXCHANGE: move tmp's entries over dir's, each rename atomic on its own. */
static ptm_status move_entries(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (d == NULL) {
        return ptm__fail(PTM_E_IO, "%s: %s", src, strerror(errno));
    }
    ptm_status st = PTM_OK;
    for (struct dirent *e; st == PTM_OK && (e = readdir(d)) != NULL;) {
        char from[PATH_MAX], to[PATH_MAX];
        struct stat sb, tb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            snprintf(from, sizeof from, "%s/%s", src, e->d_name) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s/%s", dst, e->d_name) >= (int)sizeof to ||
            lstat(from, &sb) != 0) {
            continue;
        }
        if (S_ISDIR(sb.st_mode) && stat(to, &tb) == 0 && S_ISDIR(tb.st_mode)) {
            st = move_entries(from, to);
        } else if (rename(from, to) != 0) {
            st = ptm__fail(PTM_E_IO, "%s: cannot move into place: %s", to, strerror(errno));
        }
    }
    closedir(d);
    return st;
}

ptm_status ptm__dir_swap_commit(struct ptm__dir_swap *s)
{
    char parent[PATH_MAX];
    parent_of(s->dir, parent, sizeof parent);
    ptm_status st = fsync_path(s->tmp);
    if (st != PTM_OK) {
        ptm__dir_swap_abort(s);
        return st;
    }
    if (!s->existed) {
        if (rename(s->tmp, s->dir) != 0) {
            st = ptm__fail(PTM_E_IO, "%s: cannot move into place: %s", s->dir, strerror(errno));
            ptm__dir_swap_abort(s);
            return st;
        }
        return fsync_path(parent);
    }
    if (renameat2(AT_FDCWD, s->tmp, AT_FDCWD, s->dir, RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
            st = ptm__fail(PTM_E_IO, "%s: cannot swap in the new contents: %s", s->dir,
                           strerror(errno));
            ptm__dir_swap_abort(s);
            return st;
        }
        st = move_entries(s->tmp, s->dir); /* this filesystem cannot exchange */
        if (st == PTM_OK) {
            st = fsync_path(s->dir);
        }
    } else {
        st = fsync_path(parent);
    }
    ptm__rm_tree(s->tmp); /* the old contents now, or what is left of tmp */
    return st;
}

void ptm__dir_swap_abort(struct ptm__dir_swap *s)
{
    if (s->tmp[0] != '\0') {
        ptm__rm_tree(s->tmp);
    }
}
