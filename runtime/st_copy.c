/*
 * st_copy.c - putting tensor bytes into a safetensors file being written. Saving a loaded
 * checkpoint hands the writer pointers into the read-only mappings of its files; those bytes
 * are copied file to file with copy_file_range(2), from the descriptor each mapping keeps
 * open, as cp does: they are neither faulted into this process nor copied through it. The
 * descriptor, not the path, names the source, so a file replaced on disk after loading is
 * never read in place of what the mapping holds. Everything else, and every copy the kernel
 * refuses (another file system, no support), is written from memory. A large output streams
 * to disk as it grows. It owns the process-wide table of live mappings and the syscalls that
 * fill the output; the temporary file, fsync and rename are st_write.c's, opening and mapping
 * files safetensors.c's.
 */
#include "st_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

/* Bytes per syscall; also how much is written between hints to start writeback. */
#define CHUNK_BYTES (64u << 20)

/*
 * The kernel copies in rounds of a pipe's worth of pages from where a call starts, and the
 * page cache gives a write large folios only where it starts aligned to their size. A copy
 * whose first call ends at a multiple of this lets every later round start aligned; from a
 * misaligned start it costs about a third more CPU.
 */
#define ALIGN_BYTES (2u << 20)

struct source {
    uintptr_t begin, end; /* the mapping */
    int fd;
    const char *path;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct source *live; /* n_live used of cap_live; freed when it empties */
static size_t n_live, cap_live;

static atomic_int fake_errno;         /* test hook: copy_file_range "fails" with this */
static atomic_uint_fast64_t n_copied; /* bytes copied in the kernel since the hook's last call */

uint64_t ptm__st_copy_hook(int fail_errno)
{
    atomic_store(&fake_errno, fail_errno);
    return (uint64_t)atomic_exchange(&n_copied, 0);
}

ptm_status ptm__st_source_add(const void *base, size_t len, int fd, const char *path)
{
    pthread_mutex_lock(&lock);
    if (n_live == cap_live) {
        size_t cap = cap_live ? 2 * cap_live : 8;
        struct source *p = ptm__realloc(live, cap * sizeof *p);
        if (p != NULL) {
            live = p;
            cap_live = cap;
        }
    }
    int added = n_live < cap_live;
    if (added) {
        live[n_live++] = (struct source){(uintptr_t)base, (uintptr_t)base + len, fd, path};
    }
    pthread_mutex_unlock(&lock);
    if (!added) {
        close(fd);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    return PTM_OK;
}

void ptm__st_source_remove(const void *base)
{
    int fd = -1;
    pthread_mutex_lock(&lock);
    for (size_t k = 0; k < n_live; k++) {
        if (live[k].begin == (uintptr_t)base) {
            fd = live[k].fd;
            live[k] = live[--n_live];
            break;
        }
    }
    if (n_live == 0) {
        ptm__free(live);
        live = NULL;
        cap_live = 0;
    }
    pthread_mutex_unlock(&lock);
    if (fd >= 0) {
        close(fd);
    }
}

/* The registered file holding p[0..n) whole: its descriptor and the file offset of p. */
static int source_find(const void *p, uint64_t n, struct source *src, uint64_t *off)
{
    uintptr_t a = (uintptr_t)p;
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t k = 0; k < n_live && !found; k++) {
        if (a >= live[k].begin && a < live[k].end && n <= live[k].end - a) {
            *src = live[k];
            *off = a - live[k].begin;
            found = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void ptm__st_source_drop(const void *p, uint64_t n)
{
    struct source src;
    uint64_t off;
    long page = sysconf(_SC_PAGESIZE);
    if (n == 0 || page <= 0 || !source_find(p, n, &src, &off)) {
        return;
    }
    uintptr_t start = ((uintptr_t)p + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
    if (end > start) {
        madvise((void *)start, end - start, MADV_DONTNEED); /* a hint: failure changes nothing */
    }
}

/*
 * Stream the output to disk as it grows: each new CHUNK_BYTES stretch is handed to writeback,
 * then the previous stretch is waited for and dropped from the page cache. The final fsync
 * then has little left to do, and a save keeps about two stretches of the new file in memory
 * instead of all of it: the loaded model it saves is usually mapped from a checkpoint just as
 * large, and a second copy in the cache would evict its pages (in a VM whose free memory goes
 * back to the host, allocating that copy also costs about twice the CPU of the copy itself).
 * Hints only: errors surface at fsync.
 */
static void advance(struct ptm__st_out *o, uint64_t n)
{
    o->written += n;
    if (o->written - o->queued < CHUNK_BYTES) {
        return;
    }
    sync_file_range(o->fd, (off_t)o->queued, (off_t)(o->written - o->queued),
                    SYNC_FILE_RANGE_WRITE);
    if (o->queued > o->dropped) {
        sync_file_range(o->fd, (off_t)o->dropped, (off_t)(o->queued - o->dropped),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
        posix_fadvise(o->fd, (off_t)o->dropped, (off_t)(o->queued - o->dropped),
                      POSIX_FADV_DONTNEED);
        o->dropped = o->queued;
    }
    o->queued = o->written;
}

void ptm__st_out_synced(struct ptm__st_out *o)
{
    if (o->dropped > 0) {
        posix_fadvise(o->fd, (off_t)o->dropped, 0, POSIX_FADV_DONTNEED);
    }
}

/* Errors by which the kernel declines this copy as such, not the disk: write instead. */
static int is_refusal(int e)
{
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == EBADF ||
           e == EPERM || e == ETXTBSY;
}

/* Copy from src at off into o until done, or until the kernel refuses (o->no_copy set: the
 * rest goes through memory); *done gets the bytes copied. */
static ptm_status copy_from(struct ptm__st_out *o, const struct source *src, uint64_t off,
                            uint64_t n, uint64_t *done)
{
    off64_t in_off = (off64_t)off;
    *done = 0;
    while (*done < n) {
        size_t chunk = n - *done > CHUNK_BYTES ? CHUNK_BYTES : (size_t)(n - *done);
        size_t misaligned = (size_t)(o->written % ALIGN_BYTES);
        if (misaligned != 0 && ALIGN_BYTES - misaligned < chunk) {
            chunk = ALIGN_BYTES - misaligned;
        }
        int fake = atomic_load(&fake_errno);
        ssize_t k =
            fake ? (errno = fake, -1) : copy_file_range(src->fd, &in_off, o->fd, NULL, chunk, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && is_refusal(errno)) {
            o->no_copy = 1;
            return PTM_OK;
        }
        if (k < 0) {
            return ptm__fail(PTM_E_IO, "%s: copy from %s failed: %s", o->path, src->path,
                             strerror(errno));
        }
        if (k == 0) {
            return ptm__fail(PTM_E_IO,
                             "%s: source %s ends at offset %" PRIu64
                             ", inside the mapped tensor data (truncated after it was opened?)",
                             o->path, src->path, (uint64_t)in_off);
        }
        *done += (uint64_t)k;
        atomic_fetch_add(&n_copied, (uint64_t)k);
        advance(o, (uint64_t)k);
    }
    return PTM_OK;
}

/* Tell the kernel a large range will be read once, in order: when it is a mapping this turns
 * per-page faults into read-ahead. Harmless on heap memory; failures are ignored. */
static void advise_sequential(const void *p, uint64_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    if (n < CHUNK_BYTES / 8 || page <= 0) {
        return;
    }
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    size_t len = (size_t)((uintptr_t)p + n - start);
    madvise((void *)start, len, MADV_SEQUENTIAL);
    madvise((void *)start, len, MADV_WILLNEED);
}

static ptm_status write_from(struct ptm__st_out *o, const char *c, uint64_t n)
{
    advise_sequential(c, n);
    while (n > 0) {
        size_t chunk = n > CHUNK_BYTES ? CHUNK_BYTES : (size_t)n;
        ssize_t w = write(o->fd, c, chunk);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return ptm__fail(PTM_E_IO, "%s: write failed: %s", o->path,
                             w < 0 ? strerror(errno) : "no progress");
        }
        c += w;
        n -= (uint64_t)w;
        advance(o, (uint64_t)w);
    }
    return PTM_OK;
}

ptm_status ptm__st_out_put(struct ptm__st_out *o, const void *p, uint64_t n)
{
    struct source src;
    uint64_t off, done = 0;
    if (n > 0 && !o->no_copy && source_find(p, n, &src, &off)) {
        ptm_status st = copy_from(o, &src, off, n, &done);
        if (st != PTM_OK) {
            return st;
        }
    }
    return write_from(o, (const char *)p + done, n - done);
}
