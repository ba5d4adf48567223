/*
 * fixture_util.h - what the golden suites share for reading transformers' fixtures: open a
 * fixture's safetensors file, require a tensor in it, and put host data into an input map on
 * the CPU device.
 */
#ifndef PTM_FIXTURE_UTIL_H
#define PTM_FIXTURE_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>

#include "ptm/ptm.h"

static inline ptm_st_file *open_st(const char *dir, const char *file)
{
    char path[512];
    ptm_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    return f;
}

/* The tensor name of f; the test fails when it is absent. */
static inline const struct ptm_st_tensor *st_get(const ptm_st_file *f, const char *name)
{
    const struct ptm_st_tensor *t = ptm_st_find(f, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    return t;
}

/* in[name] = a CPU tensor holding a copy of data. */
static inline void set_host_input(ptm_tensor_map *in, const char *name, ptm_dtype dt, int32_t nd,
                                  const int64_t *shape, const void *data)
{
    ptm_device *cpu = NULL;
    ptm_tensor *x = NULL;
    cr_assert_eq(ptm_device_get("cpu", &cpu), PTM_OK);
    cr_assert_eq(ptm_tensor_from_host(cpu, dt, nd, shape, data, &x), PTM_OK);
    cr_assert_eq(ptm_tensor_map_set(in, name, x), PTM_OK);
    ptm_tensor_free(x);
}

/*
 * check(dt, tol) for an F16 and a BF16 KV cache within tol (the BF16 tolerance: a half cache
 * rounds the keys and values it stores), logging both largest errors; check returns its error.
 */
static inline void check_half_caches(double (*check)(ptm_dtype, double), double tol,
                                     const char *what)
{
    double f16 = check(PTM_F16, tol), bf16 = check(PTM_BF16, tol);
    cr_log_info("%s through an F16 cache: max abs error %.3g, BF16 cache %.3g", what, f16, bf16);
}

#endif
