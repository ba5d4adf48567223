/*
 * alloc.h - the runtime's allocator wrappers. All heap allocation in runtime/ goes through
 * these so the allocation-failure sweep (tests/test_alloc_fail.c) can fail the Nth call and
 * check that every loader returns PTM_E_NOMEM cleanly and leaks nothing.
 */
#ifndef PTM_RUNTIME_ALLOC_H
#define PTM_RUNTIME_ALLOC_H

#include <stddef.h>

void *ptm__malloc(size_t n);
void *ptm__calloc(size_t count, size_t size);
void *ptm__realloc(void *p, size_t n);
char *ptm__strdup(const char *s);
char *ptm__strndup(const char *s, size_t n);
void ptm__free(void *p);

/*
 * Test hook: make the n-th allocation from now fail (n >= 1), or disable with 0. Returns the
 * number of allocations made since the last call, so a sweep knows when it has covered all.
 */
long ptm__alloc_fail_at(long n);

#endif
