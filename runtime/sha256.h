/*
 * sha256.h - SHA-256 (FIPS 180-4) for checking downloaded blobs against the Hub's LFS etags,
 * which are the hex SHA-256 of the file's bytes. Streaming interface plus a one-shot helper
 * that hashes a whole file; nothing here allocates.
 */
#ifndef PTM_RUNTIME_SHA256_H
#define PTM_RUNTIME_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "ptm/ptm_base.h"

struct ptm__sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t n_block; /* bytes waiting in block */
};

void ptm__sha256_init(struct ptm__sha256 *s);
void ptm__sha256_update(struct ptm__sha256 *s, const void *data, size_t n);
/* Finish and write the 64 lower-case hex digits and a NUL into hex[65]. */
void ptm__sha256_final_hex(struct ptm__sha256 *s, char hex[65]);

/* Hash n bytes in one call; exported as a test hook (tests/test_sha256.c). */
PTM_API void ptm__sha256_hex(const void *data, size_t n, char hex[65]);

/* Hash the file at path into hex; PTM_E_IO naming the file when it cannot be read. */
ptm_status ptm__sha256_file(const char *path, char hex[65]);

#endif
