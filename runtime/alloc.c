/*
 * alloc.c - malloc wrappers with a failure-injection counter for the allocation sweep.
 * The counter is process wide and only meant for single-threaded tests.
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm_base.h"

static atomic_long fail_at;  /* 0: never fail */
static atomic_long n_allocs; /* allocations since the last ptm__alloc_fail_at() */

static int should_fail(void)
{
    long k = atomic_fetch_add(&n_allocs, 1) + 1;
    long f = atomic_load(&fail_at);
    return f > 0 && k == f;
}

PTM_API long ptm__alloc_fail_at(long n)
{
    atomic_store(&fail_at, n);
    return atomic_exchange(&n_allocs, 0);
}

void *ptm__malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *ptm__calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *ptm__realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *ptm__strndup(const char *s, size_t n)
{
    char *d = ptm__malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *ptm__strdup(const char *s)
{
    return ptm__strndup(s, strlen(s));
}

void ptm__free(void *p)
{
    free(p);
}
