/*
 * test_cpu_pool.c - the CPU backend's thread pool (backends/cpu/cpu_pool.c) and ISA selection
 * (backends/cpu/cpu_isa.c): every task runs exactly once, ranges are covered exactly once,
 * PTM_THREADS and PTM_CPU_ISA are honoured and bad values fall back.
 */
#include "cpu_test_util.h"

#include <stdatomic.h>
#include <time.h>

struct count_ctx {
    atomic_int *hits;
    atomic_int max_thread;
};

static void count_task(void *ctx, int64_t task, int32_t thread)
{
    struct count_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    int prev = atomic_load(&c->max_thread);
    while (thread > prev && !atomic_compare_exchange_weak(&c->max_thread, &prev, thread)) {
    }
}

Test(cpu_pool, runs_every_task_exactly_once)
{
    for (int32_t threads = 1; threads <= 4; threads++) {
        cpu_pool *pool = NULL;
        cr_assert_eq(cpu_pool_new(threads, &pool), PTM_OK);
        cr_assert_eq(cpu_pool_size(pool), threads);
        const int64_t sizes[] = {0, 1, 2, 3, 1000};
        for (int rep = 0; rep < 50; rep++) {
            for (size_t s = 0; s < 5; s++) {
                atomic_int hits[1000];
                for (int i = 0; i < 1000; i++) {
                    atomic_init(&hits[i], 0);
                }
                struct count_ctx c = {hits, 0};
                cpu_pool_run(pool, sizes[s], count_task, &c);
                for (int64_t i = 0; i < 1000; i++) {
                    cr_assert_eq(atomic_load(&hits[i]), i < sizes[s] ? 1 : 0);
                }
                cr_assert_lt(atomic_load(&c.max_thread), threads);
            }
        }
        cpu_pool_free(pool);
    }
}

static void range_mark(void *arg, int64_t lo, int64_t hi)
{
    int *marks = arg;
    for (int64_t i = lo; i < hi; i++) {
        marks[i]++;
    }
}

Test(cpu_pool, range_covers_each_index_once)
{
    cpu_pool *pool = NULL;
    cr_assert_eq(cpu_pool_new(3, &pool), PTM_OK);
    for (int64_t n = 0; n < 300; n += 7) {
        for (int64_t grain = 1; grain < 70; grain += 13) {
            int marks[300] = {0};
            cpu_pool_range(pool, n, grain, range_mark, marks);
            for (int64_t i = 0; i < 300; i++) {
                cr_assert_eq(marks[i], i < n ? 1 : 0);
            }
        }
    }
    cpu_pool_free(pool);
    int marks[5] = {0};
    cpu_pool_range(NULL, 5, 2, range_mark, marks); /* NULL pool runs inline */
    cr_assert(marks[0] == 1 && marks[4] == 1);
}

struct steal_ctx {
    cpu_steal steal;
    atomic_int *marks;
    atomic_int stolen; /* grains a task took outside its own region */
};

static void steal_task(void *ctx, int64_t task, int32_t thread)
{
    struct steal_ctx *c = ctx;
    int64_t cursor = 0, lo, hi;
    while (cpu_steal_next(&c->steal, task, &cursor, &lo, &hi)) {
        /* whole grains inside one region (the last may end short at n) */
        cr_assert(lo < hi && lo % c->steal.grain == 0 &&
                  lo / c->steal.region == (hi - 1) / c->steal.region);
        cr_assert(hi == c->steal.n || (hi - lo) % c->steal.grain == 0);
        if (lo / c->steal.region != task) {
            atomic_fetch_add(&c->stolen, 1);
        }
        for (int64_t i = lo; i < hi; i++) {
            atomic_fetch_add(&c->marks[i], 1);
        }
        if (task == 0) { /* a slow thread: the others finish its region */
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
}

Test(cpu_pool, steal_claims_each_item_once_and_takes_from_slow_threads)
{
    for (int32_t threads = 1; threads <= 3; threads++) {
        cpu_pool *pool = NULL;
        cr_assert_eq(cpu_pool_new(threads, &pool), PTM_OK);
        for (int64_t n = 0; n < 400; n += 37) {
            for (int64_t grain = 1; grain < 40; grain += 9) {
                atomic_int marks[400];
                for (int i = 0; i < 400; i++) {
                    atomic_init(&marks[i], 0);
                }
                struct steal_ctx c = {.marks = marks};
                atomic_init(&c.stolen, 0);
                int64_t tasks = cpu_steal_init(&c.steal, pool, n, grain);
                cr_assert_leq(tasks, threads);
                cr_assert_eq(c.steal.region % grain, 0);
                cpu_pool_run(pool, tasks, steal_task, &c);
                for (int64_t i = 0; i < 400; i++) {
                    cr_assert_eq(atomic_load(&marks[i]), i < n ? 1 : 0, "n=%lld grain=%lld i=%lld",
                                 (long long)n, (long long)grain, (long long)i);
                }
                if (threads > 1 && n >= 370 && grain == 1) {
                    cr_assert_gt(atomic_load(&c.stolen), 0, "threads=%d", threads);
                }
            }
        }
        cpu_pool_free(pool);
    }
}

Test(cpu_pool, size_comes_from_ptm_threads)
{
    cpu_pool *pool = NULL;
    setenv("PTM_THREADS", "3", 1);
    cr_assert_eq(cpu_pool_new(0, &pool), PTM_OK);
    cr_assert_eq(cpu_pool_size(pool), 3);
    cpu_pool_free(pool);
    setenv("PTM_THREADS", "lots", 1);
    cr_assert_eq(cpu_pool_new(0, &pool), PTM_OK);
    cr_assert_geq(cpu_pool_size(pool), 1);
    cpu_pool_free(pool);
    cpu_pool_free(NULL);
}

Test(cpu_isa, ptm_cpu_isa_forces_a_lower_path)
{
    int32_t best = cpu_isa_best();
    unsetenv("PTM_CPU_ISA");
    cr_assert_eq(cpu_isa_detect(), best);
    setenv("PTM_CPU_ISA", "scalar", 1);
    cr_assert_eq(cpu_isa_detect(), CPU_ISA_SCALAR);
    setenv("PTM_CPU_ISA", "avx512", 1);
    cr_assert_eq(cpu_isa_detect(), best); /* capped at what the CPU has */
    setenv("PTM_CPU_ISA", "sse9", 1);
    cr_assert_eq(cpu_isa_detect(), best);
    cr_assert_str_eq(cpu_isa_name(CPU_ISA_AVX2), "avx2");
}
