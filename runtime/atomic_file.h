/*
 * atomic_file.h - write a whole file so that readers see the old content or the new one,
 * never a torn mix: bytes go to "<path>.tmp.<pid>" in the same directory, are fsynced, renamed
 * over path, and the directory is fsynced so the rename survives a crash.
 */
#ifndef PTM_RUNTIME_ATOMIC_FILE_H
#define PTM_RUNTIME_ATOMIC_FILE_H

#include <stddef.h>

#include "ptm/ptm_base.h"

/*
 * Replace path with data[0..n). On failure path is unchanged, the temporary file is removed,
 * and PTM_E_IO names the file, the step and strerror (PTM_E_NOMEM if a name cannot be built).
 */
ptm_status ptm__atomic_write(const char *path, const void *data, size_t n);

#endif
