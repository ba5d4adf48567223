/*
 * cpu_test_util.h - helpers shared by the CPU kernel tests (tests/test_cpu_*.c): a seeded PRNG,
 * buffers of random values, contexts for the scalar and the best SIMD path, and error
 * measures. Header-only and test-only; references themselves live in each test file.
 */
#ifndef PTM_CPU_TEST_UTIL_H
#define PTM_CPU_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "cpu_kernels.h"

/* splitmix64: small, seedable, good enough for test data. */
static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static inline void test_seed(uint64_t s)
{
    test_rng_state = s;
}

static inline uint64_t test_next(void)
{
    uint64_t z = (test_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline float test_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(test_next() >> 40) / (double)(1ull << 24));
}

static inline float *test_randn(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++) {
        p[i] = test_uniform(lo, hi);
    }
    return p;
}

static inline float *test_zeros(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    cr_assert_not_null(p);
    return p;
}

/* The code paths every kernel test runs: scalar and each SIMD ISA this CPU has (<= 3). */
static inline int test_n_isas(int32_t *isas)
{
    int n = 0;
    for (int32_t isa = CPU_ISA_SCALAR; isa <= cpu_isa_best(); isa++) {
        isas[n++] = isa;
    }
    return n;
}

/* A context with a 2-thread pool (so task splitting is exercised even on one core). */
static inline cpu_ctx test_ctx(int32_t isa)
{
    cpu_ctx c = {NULL, isa, 0};
    cr_assert_eq(cpu_pool_new(2, &c.pool), PTM_OK);
    cpu_blas_init();
    return c;
}

static inline void test_ctx_free(cpu_ctx *c)
{
    cpu_pool_free(c->pool);
    c->pool = NULL;
}

#endif /* PTM_CPU_TEST_UTIL_H */
