/*
 * st_copy.h - putting tensor bytes into a safetensors file being written (st_copy.c): bytes
 * that lie in a live mapping of a safetensors file are copied file to file in the kernel,
 * everything else is written from memory. The table of live mappings it consults is filled
 * by the reader (safetensors.c).
 */
#ifndef PTM_RUNTIME_ST_COPY_H
#define PTM_RUNTIME_ST_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "ptm/ptm_base.h"

/*
 * Record that [base, base + len) maps the whole file open as fd (read-only), named path in
 * messages. Takes fd over, also on failure: it stays open until ptm__st_source_remove(base),
 * which closes it. path is borrowed until then. Returns PTM_E_NOMEM (fd closed) when the
 * table cannot grow.
 */
ptm_status ptm__st_source_add(const void *base, size_t len, int fd, const char *path);

/* Forget the mapping at base and close its descriptor. Unknown bases are ignored. */
void ptm__st_source_remove(const void *base);

/* When p[0..n) lies in a registered mapping, hand the whole pages inside it back to the kernel
 * (MADV_DONTNEED): the process's resident set shrinks, and a later read faults the same bytes
 * in from the file again. For bytes the caller no longer needs (quantized on load). Other
 * memory is left alone. */
void ptm__st_source_drop(const void *p, uint64_t n);

/* One output file being filled from its start. */
struct ptm__st_out {
    int fd;           /* open for writing, at offset written */
    const char *path; /* for messages */
    uint64_t written; /* bytes put so far */
    uint64_t queued;  /* bytes already handed to writeback */
    uint64_t dropped; /* bytes written back and dropped from the page cache */
    int no_copy;      /* the kernel refused a copy into fd: write from memory from now on */
};

/*
 * Append p[0..n) to o. When p lies in a registered mapping, the bytes are copied from that
 * file with copy_file_range(2); a refusal (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, ...) switches o
 * to write(2) from memory for good. The caller keeps the mapping alive for the call. Returns
 * PTM_E_IO naming o->path and the system error, also when a source file turns out shorter
 * than its mapping (truncated after it was opened).
 */
ptm_status ptm__st_out_put(struct ptm__st_out *o, const void *p, uint64_t n);

/* After a successful fsync of o->fd: drop the rest of a streamed (large) output from the page
 * cache too. Small outputs stay cached. */
void ptm__st_out_synced(struct ptm__st_out *o);

/*
 * Test hook, exported for the test suite: from now on every copy_file_range fails with
 * fail_errno (0: copy normally). Returns the bytes copied in the kernel since the last call.
 */
PTM_API uint64_t ptm__st_copy_hook(int fail_errno);

#endif
