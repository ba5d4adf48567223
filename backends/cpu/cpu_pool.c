/*
 * cpu_pool.c - the CPU backend's persistent thread pool: n - 1 worker pthreads plus the
 * calling thread run the tasks of one cpu_pool_run at a time, claiming task indices from a
 * shared atomic counter.
 *
 * Workers spin briefly on the job generation counter after a run (kernels come in quick
 * succession during a forward pass, and a futex wake costs tens of microseconds) and then
 * sleep on a condition variable.
 *
 * The caller never waits for a worker that has not started: once the caller has claimed the
 * last task it closes the run, and it waits only for workers that joined before that (their
 * tasks are in flight). A worker joins by incrementing `inflight` and then checking `open`;
 * the caller clears `open` and then reads `inflight`. Both are seq_cst, so at least one side
 * sees the other: a late worker backs out without touching the run, or the caller waits for
 * it. On a loaded machine a descheduled worker therefore costs nothing unless it holds a task.
 * This file owns threading only; it knows nothing about kernels or OpenBLAS.
 */
#include "cpu_kernels.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* About 20-50 microseconds of polling before sleeping: long enough to bridge back-to-back
 * kernels, short enough not to steal a loaded core for long. */
#define POOL_SPIN 4000

struct cpu_pool {
    int32_t n_threads;
    int32_t n_started;
    pthread_t *threads;
    pthread_mutex_t run_mu; /* serialises cpu_pool_run callers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    atomic_uint_fast64_t gen;
    atomic_int_fast64_t next;
    atomic_int inflight; /* workers inside the current run */
    atomic_int open;     /* the current run still accepts workers */
    atomic_int stop;
    int64_t n_tasks;
    cpu_task_fn fn;
    void *ctx;
    atomic_int caller_cpu; /* the CPU the current run's caller is on; -1 unknown */
    cpu_set_t allowed;     /* the process's CPUs when the pool started */
    int allowed_ok;
    int pinned; /* workers pinned one CPU each (pool_pin) */
};

struct pool_worker_arg {
    cpu_pool *pool;
    int32_t index;
};

static inline void pool_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pool_drain(cpu_pool *pool, int32_t thread)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (t >= pool->n_tasks) {
            break;
        }
        pool->fn(pool->ctx, t, thread);
    }
}

static uint64_t pool_wait_work(cpu_pool *pool, uint64_t seen)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        uint64_t g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) {
            return g;
        }
        pool_relax();
    }
    pthread_mutex_lock(&pool->mu);
    uint64_t g = atomic_load_explicit(&pool->gen, memory_order_acquire);
    while (g == seen && !atomic_load(&pool->stop)) {
        pthread_cond_wait(&pool->cv_work, &pool->mu);
        g = atomic_load_explicit(&pool->gen, memory_order_acquire);
    }
    pthread_mutex_unlock(&pool->mu);
    return g;
}

/*
 * A worker that finds itself on the caller's CPU moves to another one. After an idle spell
 * the scheduler may wake the caller on the CPU where a (pinned) worker sleeps; the two then
 * time-share one core for a whole forward pass while the other core idles (measured: b1
 * BERT 3.9 -> 9 ms, ~25 involuntary switches per pass) until the load balancer steps in.
 * Pinned workers re-pin to the index-th other CPU; unpinned ones leave that CPU out.
 */
static void pool_step_aside(cpu_pool *pool, int32_t index)
{
    int cc = atomic_load_explicit(&pool->caller_cpu, memory_order_relaxed);
    int n = pool->allowed_ok ? CPU_COUNT(&pool->allowed) : 0;
    if (cc < 0 || n < 2 || sched_getcpu() != cc) {
        return;
    }
    cpu_set_t set = pool->allowed;
    CPU_CLR(cc, &set);
    if (pool->pinned) {
        int want = (index - 1) % (n - 1), k = 0;
        CPU_ZERO(&set);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            if (cpu != cc && CPU_ISSET(cpu, &pool->allowed) && k++ == want) {
                CPU_SET(cpu, &set);
                break;
            }
        }
    }
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *pool_worker(void *arg)
{
    struct pool_worker_arg a = *(struct pool_worker_arg *)arg;
    free(arg);
    uint64_t seen = 0;
    for (;;) {
        seen = pool_wait_work(a.pool, seen);
        if (atomic_load(&a.pool->stop)) {
            break;
        }
        atomic_fetch_add(&a.pool->inflight, 1);
        if (atomic_load(&a.pool->open) && atomic_load(&a.pool->gen) == seen) {
            pool_step_aside(a.pool, a.index);
            pool_drain(a.pool, a.index);
        }
        if (atomic_fetch_sub(&a.pool->inflight, 1) == 1) {
            pthread_mutex_lock(&a.pool->mu);
            pthread_cond_signal(&a.pool->cv_done);
            pthread_mutex_unlock(&a.pool->mu);
        }
    }
    return NULL;
}

static int32_t pool_default_threads(void)
{
    const char *env = getenv("PTM_THREADS");
    if (env && *env) {
        char *end = NULL;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (errno == 0 && end && *end == '\0' && v > 0 && v <= 1024) {
            return (int32_t)v;
        }
        ptm_log(PTM_LOG_WARN, "cpu: PTM_THREADS=%s: not a thread count in 1..1024; ignored", env);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

/* Pin worker threads 1..n-1 to distinct allowed CPUs (see the file comment). */
static void pool_pin(cpu_pool *pool)
{
    const char *env = getenv("PTM_THREAD_PIN");
    cpu_set_t allowed;
    pool->allowed_ok = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    pool->allowed = allowed;
    if ((env != NULL && strcmp(env, "0") == 0) || !pool->allowed_ok ||
        CPU_COUNT(&allowed) < pool->n_threads) {
        return;
    }
    pool->pinned = 1;
    int32_t next = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && next < pool->n_threads; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) {
            continue;
        }
        if (next > 0 && next <= pool->n_started) { /* index 0 is the caller: left free */
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pool->threads[next], sizeof one, &one);
        }
        next++;
    }
}

ptm_status cpu_pool_new(int32_t n_threads, cpu_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) {
        n_threads = pool_default_threads();
    }
    cpu_pool *pool = calloc(1, sizeof(*pool));
    if (!pool) {
        return ptm_error_set(PTM_E_NOMEM, "cpu: thread pool of %d threads: out of memory",
                             (int)n_threads);
    }
    pool->n_threads = n_threads;
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) {
        free(pool);
        return ptm_error_set(PTM_E_NOMEM, "cpu: thread pool of %d threads: out of memory",
                             (int)n_threads);
    }
    pthread_mutex_init(&pool->run_mu, NULL);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv_work, NULL);
    pthread_cond_init(&pool->cv_done, NULL);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->next, 0);
    atomic_init(&pool->inflight, 0);
    atomic_init(&pool->open, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->caller_cpu, -1);
    for (int32_t i = 1; i < n_threads; i++) {
        struct pool_worker_arg *arg = malloc(sizeof(*arg));
        int rc = arg ? 0 : ENOMEM;
        if (arg) {
            arg->pool = pool;
            arg->index = i;
            rc = pthread_create(&pool->threads[i], NULL, pool_worker, arg);
            if (rc != 0) {
                free(arg);
            }
        }
        if (rc != 0) {
            cpu_pool_free(pool);
            return ptm_error_set(rc == ENOMEM ? PTM_E_NOMEM : PTM_E_INTERNAL,
                                 "cpu: thread pool: starting thread %d of %d failed (errno %d)",
                                 (int)i, (int)n_threads, rc);
        }
        pool->n_started = i;
    }
    pool_pin(pool);
    *out = pool;
    return PTM_OK;
}

void cpu_pool_free(cpu_pool *pool)
{
    if (!pool) {
        return;
    }
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    for (int32_t i = 1; i <= pool->n_started; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pthread_cond_destroy(&pool->cv_done);
    pthread_cond_destroy(&pool->cv_work);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->run_mu);
    free(pool->threads);
    free(pool);
}

int32_t cpu_pool_size(const cpu_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void cpu_pool_run(cpu_pool *pool, int64_t n_tasks, cpu_task_fn fn, void *ctx)
{
    if (n_tasks <= 0) {
        return;
    }
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) {
            fn(ctx, t, 0);
        }
        return;
    }
    pthread_mutex_lock(&pool->run_mu);
    pool->n_tasks = n_tasks;
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->next, 0);
    atomic_store(&pool->open, 1);
    atomic_store_explicit(&pool->caller_cpu, sched_getcpu(), memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->gen, 1);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    pool_drain(pool, 0);
    atomic_store(&pool->open, 0); /* every task is claimed: late workers back out */
    for (int i = 0; i < POOL_SPIN && atomic_load(&pool->inflight); i++) {
        pool_relax();
    }
    if (atomic_load(&pool->inflight)) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->inflight)) {
            pthread_cond_wait(&pool->cv_done, &pool->mu);
        }
        pthread_mutex_unlock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->run_mu);
}

struct pool_range {
    int64_t n, step;
    cpu_range_fn fn;
    void *arg;
};

static void pool_range_task(void *ctx, int64_t task, int32_t thread)
{
    const struct pool_range *r = ctx;
    int64_t lo = task * r->step;
    int64_t hi = lo + r->step < r->n ? lo + r->step : r->n;
    r->fn(r->arg, lo, hi);
}

void cpu_pool_range(cpu_pool *pool, int64_t n, int64_t grain, cpu_range_fn fn, void *arg)
{
    if (n <= 0) {
        return;
    }
    if (grain < 1) {
        grain = 1;
    }
    int64_t n_threads = cpu_pool_size(pool);
    int64_t per = (n + n_threads - 1) / n_threads;
    int64_t step = (per + grain - 1) / grain * grain;
    struct pool_range r = {n, step, fn, arg};
    cpu_pool_run(pool, (n + step - 1) / step, pool_range_task, &r);
}

int64_t cpu_steal_grain(int64_t row_bytes, int64_t tile)
{
    int64_t g = CPU_STEAL_BYTES / (row_bytes > 0 ? row_bytes : 1) / tile * tile;
    return g > 0 ? g : tile;
}

int64_t cpu_steal_init(cpu_steal *s, const cpu_pool *pool, int64_t n, int64_t grain)
{
    int64_t regions = cpu_pool_size(pool) < CPU_STEAL_MAX ? cpu_pool_size(pool) : CPU_STEAL_MAX;
    s->n = n > 0 ? n : 0;
    s->grain = grain > 0 ? grain : 1;
    int64_t grains = (s->n + s->grain - 1) / s->grain;
    s->region = (grains + regions - 1) / regions * s->grain;
    s->n_regions = s->region > 0 ? (s->n + s->region - 1) / s->region : 0;
    for (int64_t i = 0; i < s->n_regions; i++) {
        atomic_init(&s->r[i].next, i * s->region);
    }
    return s->n_regions;
}

int cpu_steal_next(cpu_steal *s, int64_t task, int64_t *cursor, int64_t *lo, int64_t *hi)
{
    for (; *cursor < s->n_regions; ++*cursor) {
        int64_t r = (task + *cursor) % s->n_regions;
        int64_t end = (r + 1) * s->region < s->n ? (r + 1) * s->region : s->n;
        int64_t seen = atomic_load_explicit(&s->r[r].next, memory_order_relaxed);
        if (seen >= end) {
            continue;
        }
        /* A quarter of what is left, in whole grains: a locked add drains the streaming loads
         * in flight, so claims get fewer while the end still goes a grain at a time. */
        int64_t take = (end - seen) / CPU_STEAL_SHARE / s->grain * s->grain;
        take = take > s->grain ? take : s->grain;
        int64_t i = atomic_fetch_add_explicit(&s->r[r].next, take, memory_order_relaxed);
        if (i < end) {
            *lo = i;
            *hi = i + take < end ? i + take : end;
            return 1;
        }
    }
    return 0;
}
