/*
 * test_xfer.c - ops whose operands live on different devices (runtime/xfer.c, issue 8): the
 * runtime brings them together on the op's device and writes the result where out lives,
 * exactly as if every operand had been on one device; the caller's tensors stay where the
 * caller put them. Exact ops (add, convert) are compared bit for bit with the CPU alone.
 * Needs an OpenCL device besides the CPU; skipped, saying why, without one.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ptm/ptm.h"

static ptm_device *dev(const char *name)
{
    ptm_device *d = NULL;
    if (ptm_device_get(name, &d) != PTM_OK) {
        cr_skip_test("no %s device: %s", name, ptm_last_error());
    }
    return d;
}

static ptm_tensor *filled(ptm_device *d, int64_t rows, int64_t cols, float base)
{
    float v[64];
    for (int64_t i = 0; i < rows * cols; i++) {
        v[i] = base + 0.25f * (float)i;
    }
    int64_t shape[2] = {rows, cols};
    ptm_tensor *t = NULL;
    cr_assert_eq(ptm_tensor_from_host(d, PTM_F32, 2, shape, v, &t), PTM_OK, "%s", ptm_last_error());
    return t;
}

static void read_all(const ptm_tensor *t, float *dst)
{
    cr_assert_eq(ptm_tensor_read(t, dst, ptm_tensor_nbytes(t)), PTM_OK, "%s", ptm_last_error());
}

Test(xfer, add_across_devices_equals_the_cpu_alone)
{
    ptm_device *cpu = dev("cpu"), *ocl = dev("opencl");
    ptm_tensor *a = filled(cpu, 4, 8, 1.0f), *b_cpu = filled(cpu, 4, 8, -3.0f);
    ptm_tensor *b = filled(ocl, 4, 8, -3.0f);
    ptm_tensor *want = filled(cpu, 4, 8, 0.0f), *got = filled(cpu, 4, 8, 0.0f);
    ptm_tensor *got_ocl = filled(ocl, 4, 8, 0.0f);
    cr_assert_eq(ptm_op_add(want, a, b_cpu), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_op_add(got, a, b), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_op_add(got_ocl, a, b), PTM_OK, "%s", ptm_last_error());
    float w[32], g[32], go[32];
    read_all(want, w);
    read_all(got, g);
    read_all(got_ocl, go);
    cr_assert_eq(memcmp(w, g, sizeof w), 0);
    cr_assert_eq(memcmp(w, go, sizeof w), 0);
    /* The caller's tensors are not moved behind its back. */
    cr_assert_eq(ptm_tensor_device(a), cpu);
    cr_assert_eq(ptm_tensor_device(b), ocl);
    cr_assert_eq(ptm_tensor_device(got), cpu);
    cr_assert_eq(ptm_tensor_device(got_ocl), ocl);
    ptm_tensor *ts[] = {a, b_cpu, b, want, got, got_ocl};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        ptm_tensor_free(ts[i]);
    }
}

Test(xfer, convert_gathers_a_view_from_another_device)
{
    ptm_device *cpu = dev("cpu"), *ocl = dev("opencl");
    ptm_tensor *src = filled(ocl, 4, 8, 2.0f), *col = NULL;
    cr_assert_eq(ptm_tensor_narrow(src, 1, 2, 3, &col), PTM_OK); /* strided: [4, 3] of [4, 8] */
    int64_t shape[2] = {4, 3};
    ptm_tensor *out = NULL;
    cr_assert_eq(ptm_tensor_new(cpu, PTM_F32, 2, shape, &out), PTM_OK);
    cr_assert_eq(ptm_op_convert(out, col), PTM_OK, "%s", ptm_last_error());
    float all[32], got[12];
    read_all(src, all);
    read_all(out, got);
    for (int r = 0; r < 4; r++) {
        for (int c = 0; c < 3; c++) {
            cr_assert_eq(got[r * 3 + c], all[r * 8 + 2 + c], "row %d col %d", r, c);
        }
    }
    ptm_tensor_free(col);
    ptm_tensor_free(src);
    ptm_tensor_free(out);
}

Test(xfer, refuses_a_strided_out_on_another_device)
{
    ptm_device *cpu = dev("cpu"), *ocl = dev("opencl");
    ptm_tensor *dst = filled(cpu, 4, 8, 0.0f), *view = NULL;
    ptm_tensor *a = filled(ocl, 4, 3, 1.0f), *b = filled(ocl, 4, 3, 1.0f);
    cr_assert_eq(ptm_tensor_narrow(dst, 1, 0, 3, &view), PTM_OK);
    cr_assert_eq(ptm_op_add(view, a, b), PTM_E_UNSUPPORTED);
    cr_assert_not_null(strstr(ptm_last_error(), "op add"), "%s", ptm_last_error());
    cr_assert_not_null(strstr(ptm_last_error(), "strided view on cpu:0"), "%s", ptm_last_error());
    ptm_tensor *ts[] = {view, dst, a, b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        ptm_tensor_free(ts[i]);
    }
}
