/*
 * test_cpu_backend.c - the CPU backend's buffers, seen through the public tensor API: a
 * buffer that spans a 2 MiB page starts on a 2 MiB boundary and carries the kernel's huge-page
 * advice (smaps flag "hg") over every whole 2 MiB page it holds and no further; a small one
 * does not. Whether the kernel then backs it with huge pages is its THP setting's business.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ptm/ptm.h"

#define HUGE ((uintptr_t)2 << 20)

static ptm_device *cpu(void)
{
    ptm_device *d = NULL;
    cr_assert_eq(ptm_device_get("cpu", &d), PTM_OK, "%s", ptm_last_error());
    return d;
}

/* 1 if the mapping holding addr carries the huge-page advice, 0 if not; -1 if not found. Sets
 * *end to that mapping's end. */
static int advised(uintptr_t addr, uintptr_t *end)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    int in = 0, found = -1;
    while (found < 0 && fgets(line, sizeof line, f) != NULL) {
        uintptr_t lo, hi;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) { /* a mapping's head */
            in = lo <= addr && addr < hi;
            *end = hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
        }
    }
    fclose(f);
    return found;
}

static ptm_tensor *filled(int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    ptm_tensor *t = NULL;
    cr_assert_eq(ptm_tensor_new(cpu(), PTM_F32, 2, shape, &t), PTM_OK, "%s", ptm_last_error());
    memset(ptm_tensor_data(t), 1, ptm_tensor_nbytes(t));
    return t;
}

Test(cpu_backend, a_large_buffer_starts_on_a_huge_page_and_asks_for_huge_pages)
{
    /* 5 MiB plus a row: two whole huge pages advised, the partial third left alone */
    ptm_tensor *t = filled(1281, 1024);
    uintptr_t p = (uintptr_t)ptm_tensor_data(t), end = 0;
    cr_assert_eq(p % HUGE, 0, "a %zu-byte buffer at %#" PRIxPTR, ptm_tensor_nbytes(t), p);
    cr_assert_eq(advised(p, &end), 1, "no huge-page advice at %#" PRIxPTR, p);
    cr_assert_eq(end, p + 2 * HUGE, "advice ends at %#" PRIxPTR ", buffer at %#" PRIxPTR, end, p);
    cr_assert_eq(advised(p + 2 * HUGE, &end), 0, "the partial last page was advised too");
    ptm_tensor_free(t);
}

Test(cpu_backend, a_small_buffer_is_left_as_it_is)
{
    ptm_tensor *t = filled(64, 1024); /* 256 KiB */
    uintptr_t end = 0;
    cr_assert_eq(advised((uintptr_t)ptm_tensor_data(t), &end), 0);
    ptm_tensor_free(t);
}
