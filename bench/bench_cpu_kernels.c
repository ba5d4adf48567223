/*
 * bench_cpu_kernels.c - times the CPU backend's kernels on all-MiniLM-L6-v2 shapes against
 * raw OpenBLAS in the same run: the four linear layers (M = 32 x 128 tokens and M = 16, with
 * bias and the fused activation BERT uses) against cblas_sgemm with OpenBLAS's own threads, and
 * fused attention (B=32 S=128 H=12 D=32) against an OpenBLAS per-head QK^T / softmax / PV.
 *
 * One line per case: bench=<case> threads=<n> ptm_ms=<median> peer=openblas peer_ms=<median>
 * ratio=<peer/ptm, > 1 means ptm is faster> runs=<k> plus GFLOP/s. Warm-up, then k interleaved
 * repetitions. PTM_THREADS sets the thread count for both sides (default: online cores).
 *
 * "decode" (the LLaMA decode GEMVs, TinyLlama shapes): first the machine's read bandwidth,
 * measured in the same run as a streaming sum over a 1 GiB buffer split across the pool, then
 * M = 1 products on [5632, 2048], [2048, 5632] and [32000, 2048] weights in F32, BF16 (exact
 * and vdpbf16ps forms), F16 and Q8_0, each cycling over enough copies (>= 256 MiB) that no
 * weight byte comes from cache, printing the weight bytes read per second and their share of
 * the measured read bandwidth; the peer is OpenBLAS sgemv on the F32 weights. "prefill": M = 512
 * on the same MLP shapes in F32, BF16 (widened; and vdpbf16ps, the opt-in bf16_dot) and Q8_0,
 * against OpenBLAS sgemm on the F32 weights. "peak": the F32 FMA ceiling of the pool's threads
 * (independent zmm FMAs, no memory), the bound any F32 GEMM or forward pass is measured against.
 * The first argument picks a case by name; none runs them all.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 9

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

static float *rnd(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        p[i] = (float)((double)rand() / RAND_MAX - 0.5);
    }
    return p;
}

struct gemm_case {
    int64_t M, K, N;
    int32_t act;
};

static void bench_gemm(const cpu_ctx *ctx, int n_threads, struct gemm_case c, ptm_dtype dt)
{
    float *A = rnd(c.M * c.K), *B = rnd(c.N * c.K), *bias = rnd(c.N);
    float *C = malloc((size_t)(c.M * c.N) * sizeof(float));
    void *Bw = B;
    uint16_t *Bh = NULL;
    if (dt != PTM_F32) {
        Bh = malloc((size_t)(c.N * c.K) * 2);
        cpu_convert(ctx, c.N * c.K, B, PTM_F32, Bh, dt);
        Bw = Bh;
    }
    struct cpu_epilogue ep = {bias, c.act, NULL, 0};
    double t_ptm[RUNS], t_blas[RUNS];
    for (int r = -2; r < RUNS; r++) {
        double t0 = now_ms();
        cpu_gemm(ctx, c.M, c.N, c.K, A, c.K, Bw, dt, c.K, 1, C, c.N, &ep);
        double t1 = now_ms();
        openblas_set_num_threads(n_threads);
        double t2 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c.M, (int)c.N, (int)c.K, 1.0f, A,
                    (int)c.K, B, (int)c.K, 0.0f, C, (int)c.N);
        double t3 = now_ms();
        openblas_set_num_threads(1);
        if (r >= 0) {
            t_ptm[r] = t1 - t0;
            t_blas[r] = t3 - t2;
        }
    }
    double p = median(t_ptm, RUNS), b = median(t_blas, RUNS);
    double gflop = 2.0 * (double)c.M * (double)c.N * (double)c.K / 1e9;
    printf("bench=gemm_m%lld_k%lld_n%lld_%s%s threads=%d ptm_ms=%.4f peer=openblas "
           "peer_ms=%.4f ratio=%.2f runs=%d ptm_gflops=%.1f peer_gflops=%.1f\n",
           (long long)c.M, (long long)c.K, (long long)c.N, ptm_dtype_name(dt),
           c.act == CPU_ACT_GELU ? "_gelu" : "", n_threads, p, b, b / p, RUNS, gflop / p * 1e3,
           gflop / b * 1e3);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(Bh);
}

/* The peer: per (b, h) scores by sgemm, row softmax, and the PV product by sgemm. */
static void attention_blas(int64_t B, int64_t S, int64_t H, int64_t D, const float *qkv, float *o,
                           float *scores)
{
    int64_t w = 3 * H * D;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const float *q = qkv + b * S * w + h * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)S, (int)D,
                        1.0f / sqrtf((float)D), q, (int)w, q + H * D, (int)w, 0.0f, scores, (int)S);
            for (int64_t i = 0; i < S; i++) {
                float *s = scores + i * S, m = -INFINITY, sum = 0;
                for (int64_t j = 0; j < S; j++) {
                    m = s[j] > m ? s[j] : m;
                }
                for (int64_t j = 0; j < S; j++) {
                    s[j] = expf(s[j] - m);
                    sum += s[j];
                }
                for (int64_t j = 0; j < S; j++) {
                    s[j] /= sum;
                }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)D, (int)S, 1.0f,
                        scores, (int)S, q + 2 * H * D, (int)w, 0.0f, o + b * S * H * D + h * D,
                        (int)(H * D));
        }
    }
}

static void bench_attention(const cpu_ctx *ctx, int n_threads, int64_t B, int64_t S, int64_t H,
                            int64_t D)
{
    int64_t w = 3 * H * D;
    float *qkv = rnd(B * S * w), *o = malloc((size_t)(B * S * H * D) * sizeof(float));
    float *mask = malloc((size_t)(B * S) * sizeof(float)), *scores = rnd(S * S);
    for (int64_t i = 0; i < B * S; i++) {
        mask[i] = 1.0f;
    }
    struct cpu_attention a = {.B = B, .Sq = S, .Sk = S, .H = H, .Hkv = H, .D = D};
    a.q = qkv, a.q_bs = S * w, a.q_ss = w, a.q_hs = D;
    a.k = qkv + H * D, a.k_bs = S * w, a.k_ss = w, a.k_hs = D;
    a.v = qkv + 2 * H * D, a.v_bs = S * w, a.v_ss = w, a.v_hs = D;
    a.o = o, a.o_bs = S * H * D, a.o_ss = H * D, a.o_hs = D;
    a.scale = 1.0f / sqrtf((float)D);
    a.key_mask = mask;
    double t_ptm[RUNS], t_blas[RUNS];
    for (int r = -2; r < RUNS; r++) {
        double t0 = now_ms();
        cpu_attention_run(ctx, &a);
        double t1 = now_ms();
        attention_blas(B, S, H, D, qkv, o, scores); /* single thread: OpenBLAS is at 1 */
        double t2 = now_ms();
        if (r >= 0) {
            t_ptm[r] = t1 - t0;
            t_blas[r] = t2 - t1;
        }
    }
    double p = median(t_ptm, RUNS), b = median(t_blas, RUNS);
    double gflop = 4.0 * (double)(B * H) * (double)(S * S) * (double)D / 1e9;
    printf("bench=attention_b%lld_s%lld_h%lld_d%lld threads=%d ptm_ms=%.3f "
           "peer=openblas_1thread_per_head peer_ms=%.3f ratio=%.2f runs=%d ptm_gflops=%.1f\n",
           (long long)B, (long long)S, (long long)H, (long long)D, n_threads, p, b, b / p, RUNS,
           gflop / p * 1e3);
    free(qkv);
    free(o);
    free(mask);
    free(scores);
}

static void nop_task(void *ctx, int64_t task, int32_t thread)
{
    (void)ctx, (void)task, (void)thread;
}

/* One decode step's attention over a KV cache [1, Sk, Hkv, D] of dtype dt (F32 or F16), as
 * LLaMA decode calls it: cold (the cache evicted by reading 256 MiB first, as streaming a
 * layer's weights evicts it in a real step) and warm (the same call again at once). Prints
 * microseconds per call and the cache bytes read per second when cold. */
static void bench_attention_decode(const cpu_ctx *ctx, int n_threads, int64_t Sk, int64_t H,
                                   int64_t Hkv, int64_t D, ptm_dtype dt)
{
    int64_t es = dt == PTM_F32 ? 4 : 2, n = Sk * Hkv * D;
    float *q = rnd(H * D), *o = malloc((size_t)(H * D) * sizeof(float)), *kf = rnd(2 * n);
    char *kv = malloc((size_t)(2 * n * es));
    size_t big = (size_t)256 << 20;
    char *evict = malloc(big);
    memset(evict, 1, big);
    cpu_convert(ctx, 2 * n, kf, PTM_F32, kv, dt);
    struct cpu_attention a = {.B = 1, .Sq = 1, .Sk = Sk, .H = H, .Hkv = Hkv, .D = D};
    a.q = q, a.q_bs = H * D, a.q_ss = H * D, a.q_hs = D;
    a.k = kv, a.k_bs = Sk * Hkv * D, a.k_ss = Hkv * D, a.k_hs = D;
    a.v = kv + n * es, a.v_bs = a.k_bs, a.v_ss = a.k_ss, a.v_hs = D;
    a.o = o, a.o_bs = H * D, a.o_ss = H * D, a.o_hs = D;
    a.scale = 1.0f / sqrtf((float)D);
    a.kv_dtype = dt;
    a.is_causal = 1;
    a.causal_offset = Sk - 1;
    double t_warm[RUNS], t_cold[RUNS];
    volatile char sink = 0;
    for (int r = -2; r < RUNS; r++) {
        for (size_t i = 0; i < big; i += 64) {
            sink += evict[i];
        }
        cpu_pool_run(ctx->pool, n_threads, nop_task, NULL); /* wake the workers, as in a step */
        double t0 = now_ms();
        cpu_attention_run(ctx, &a);
        double t1 = now_ms();
        cpu_attention_run(ctx, &a);
        double t2 = now_ms();
        if (r >= 0) {
            t_cold[r] = t1 - t0;
            t_warm[r] = t2 - t1;
        }
    }
    double c = median(t_cold, RUNS), w = median(t_warm, RUNS), bytes = 2.0 * (double)n * es;
    printf("bench=attention_decode_sk%lld_h%lld_hkv%lld_d%lld_%s threads=%d cold_us=%.1f "
           "warm_us=%.1f cold_gbs=%.1f runs=%d\n",
           (long long)Sk, (long long)H, (long long)Hkv, (long long)D, dt == PTM_F32 ? "f32" : "f16",
           n_threads, c * 1e3, w * 1e3, bytes / (c * 1e6), RUNS);
    free(q);
    free(o);
    free(kf);
    free(kv);
    free(evict);
}

/* ---- decode GEMV against read bandwidth ---- */

struct stream_job {
    const uint64_t *p;
    int64_t n, slice;
    uint64_t sum[64];
};

static void stream_task(void *ctx, int64_t task, int32_t thread)
{
    struct stream_job *s = ctx;
    int64_t lo = task * s->slice, hi = lo + s->slice < s->n ? lo + s->slice : s->n;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = lo; i + 4 <= hi; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    s->sum[task & 63] = a + b + c + d;
}

/* ---- F32 FMA peak ---- */

#define PEAK_ITERS 50000000 /* per thread: 12 independent zmm FMAs each, ~0.2 s on Zen 4 */

/* Twelve independent accumulators: enough FMAs in flight to cover their latency, so the loop
 * runs at the FMA units' throughput. */
static CPU_AVX512 void peak_task(void *ctx, int64_t task, int32_t thread)
{
    (void)task;
    (void)thread;
    __m512 acc[12], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) {
        acc[i] = _mm512_set1_ps((float)i);
    }
    for (long it = 0; it < PEAK_ITERS; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            acc[i] = _mm512_fmadd_ps(acc[i], b, c);
        }
    }
    float s = 0.0f;
    for (int i = 0; i < 12; i++) {
        s += _mm512_reduce_add_ps(acc[i]);
    }
    *(volatile float *)ctx = s;
}

/* The machine's F32 FMA ceiling with the pool's threads: what no GEMM can pass (median of 3). */
static void bench_peak(const cpu_ctx *ctx, int n_threads)
{
    volatile float sink = 0.0f;
    double t[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now_ms();
        cpu_pool_run(ctx->pool, n_threads, peak_task, (void *)&sink);
        t[r] = now_ms() - t0;
    }
    double ms = median(t, 3);
    printf("bench=fma_peak_f32 threads=%d ms=%.1f gflops=%.1f runs=3\n", n_threads, ms,
           (double)n_threads * PEAK_ITERS * 12 * 32 / (ms * 1e6));
}

/* GB/s of a streaming read of 1 GiB split across the pool (median of RUNS). */
static double read_bandwidth(const cpu_ctx *ctx, int n_threads)
{
    int64_t n = (1LL << 30) / 8;
    uint64_t *p = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) {
        p[i] = (uint64_t)i;
    }
    struct stream_job s = {p, n, (n + n_threads - 1) / n_threads, {0}};
    double t[RUNS];
    for (int r = -1; r < RUNS; r++) {
        double t0 = now_ms();
        cpu_pool_run(ctx->pool, n_threads, stream_task, &s);
        double t1 = now_ms();
        if (r >= 0) {
            t[r] = t1 - t0;
        }
    }
    free(p);
    double ms = median(t, RUNS);
    double gbs = (double)n * 8 / ms / 1e6;
    printf("bench=read_bandwidth_1gib threads=%d ms=%.2f gbs=%.1f runs=%d\n", n_threads, ms, gbs,
           RUNS);
    return gbs;
}

/* Weight copies of one type for the decode cases. */
struct wset {
    void **w;
    int n;
    size_t bytes;
};

static struct wset make_weights(const cpu_ctx *ctx, const float *B, int64_t N, int64_t K,
                                ptm_dtype dt, size_t min_bytes)
{
    struct wset s = {0};
    s.bytes = dt == PTM_Q8_0 ? (size_t)N * cpu_q8_row_bytes(K)
                             : (size_t)(N * K) * (dt == PTM_F32 ? 4 : 2);
    s.n = (int)(min_bytes / s.bytes) + 1;
    s.w = malloc((size_t)s.n * sizeof(void *));
    for (int i = 0; i < s.n; i++) {
        s.w[i] = malloc(s.bytes);
        if (dt == PTM_Q8_0) {
            cpu_q8_quantize(ctx, N, K, B, PTM_F32, K, s.w[i]);
        } else if (dt == PTM_F32) {
            memcpy(s.w[i], B, s.bytes);
        } else {
            cpu_convert(ctx, N * K, B, PTM_F32, s.w[i], dt);
        }
    }
    return s;
}

static void free_weights(struct wset *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->w[i]);
    }
    free(s->w);
}

static void bench_decode_case(const cpu_ctx *ctx, int n_threads, int64_t N, int64_t K, ptm_dtype dt,
                              int mode, double bw)
{
    float *A = rnd(K), *B = rnd(N * K), *C = malloc((size_t)N * sizeof(float));
    struct wset ws = make_weights(ctx, B, N, K, dt, 256u << 20);
    struct wset wf = make_weights(ctx, B, N, K, PTM_F32, 256u << 20);
    double t_ptm[RUNS], t_blas[RUNS];
    for (int r = -2; r < RUNS; r++) {
        /* Each repetition reads every copy once, so no weight byte is in cache. */
        double t0 = now_ms();
        for (int i = 0; i < ws.n; i++) {
            if (mode == CPU_GEMV_DPBF16) {
                cpu_gemv(ctx, 1, N, K, A, K, ws.w[i], dt, K, C, N, 0, mode, NULL, NULL);
            } else {
                cpu_gemm(ctx, 1, N, K, A, K, ws.w[i], dt, K, 1, C, N, NULL);
            }
        }
        double t1 = now_ms();
        openblas_set_num_threads(n_threads);
        double t2 = now_ms();
        for (int i = 0; i < wf.n; i++) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, wf.w[i], (int)K, A, 1,
                        0.0f, C, 1);
        }
        double t3 = now_ms();
        openblas_set_num_threads(1);
        if (r >= 0) {
            t_ptm[r] = (t1 - t0) / ws.n;
            t_blas[r] = (t3 - t2) / wf.n;
        }
    }
    double p = median(t_ptm, RUNS), b = median(t_blas, RUNS);
    double gbs = (double)ws.bytes / p / 1e6;
    printf("bench=gemv_m1_n%lld_k%lld_%s%s threads=%d ptm_ms=%.4f peer=openblas_sgemv_f32 "
           "peer_ms=%.4f ratio=%.2f runs=%d weight_gbs=%.1f read_bw_pct=%.0f\n",
           (long long)N, (long long)K, ptm_dtype_name(dt), mode == CPU_GEMV_DPBF16 ? "_dpbf16" : "",
           n_threads, p, b, b / p, RUNS, gbs, 100.0 * gbs / bw);
    free_weights(&ws);
    free_weights(&wf);
    free(A);
    free(B);
    free(C);
}

/* Prefill: M = 512 tokens through TinyLlama's MLP shapes, per weight type, against OpenBLAS
 * sgemm on the F32 weights. */
static void bench_prefill_case(const cpu_ctx *base, int n_threads, int64_t N, int64_t K,
                               ptm_dtype dt, int dot)
{
    const int64_t M = 512;
    cpu_ctx ctx = *base;
    ctx.bf16_dot = dot;
    float *A = rnd(M * K), *B = rnd(N * K), *C = malloc((size_t)(M * N) * sizeof(float));
    struct wset ws = make_weights(&ctx, B, N, K, dt, 0);
    double t_ptm[RUNS], t_blas[RUNS];
    for (int r = -1; r < RUNS; r++) {
        double t0 = now_ms();
        cpu_gemm(&ctx, M, N, K, A, K, ws.w[0], dt, K, 1, C, N, NULL);
        double t1 = now_ms();
        openblas_set_num_threads(n_threads);
        double t2 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A,
                    (int)K, B, (int)K, 0.0f, C, (int)N);
        double t3 = now_ms();
        openblas_set_num_threads(1);
        if (r >= 0) {
            t_ptm[r] = t1 - t0;
            t_blas[r] = t3 - t2;
        }
    }
    double p = median(t_ptm, RUNS), b = median(t_blas, RUNS);
    double gflop = 2.0 * (double)M * (double)N * (double)K / 1e9;
    printf("bench=gemm_m%lld_n%lld_k%lld_%s%s threads=%d ptm_ms=%.3f peer=openblas_sgemm_f32 "
           "peer_ms=%.3f ratio=%.2f runs=%d ptm_gflops=%.1f peer_gflops=%.1f\n",
           (long long)M, (long long)N, (long long)K, ptm_dtype_name(dt), dot ? "_dpbf16" : "",
           n_threads, p, b, b / p, RUNS, gflop / p * 1e3, gflop / b * 1e3);
    free_weights(&ws);
    free(A);
    free(B);
    free(C);
}

/* Q8_0 at batch-16 decode (T5 shapes) and prefill (TinyLlama MLP): the many-row kernel
 * (cpu_q8_outer.c) against the lane kernel (cpu_q8.c), interleaved. */
static void bench_q8_case(const cpu_ctx *ctx, int n_threads, int64_t M, int64_t N, int64_t K)
{
    float *A = rnd(M * K), *B = rnd(N * K), *C = malloc((size_t)(M * N) * sizeof(float));
    struct wset ws = make_weights(ctx, B, N, K, PTM_Q8_0, 0);
    double t_outer[RUNS], t_lane[RUNS];
    for (int r = -1; r < RUNS; r++) {
        double t0 = now_ms();
        cpu_q8_outer_gemm(ctx, M, N, K, A, K, ws.w[0], C, N, 0, NULL, NULL);
        double t1 = now_ms();
        cpu_q8_gemm(ctx, M, N, K, A, K, ws.w[0], C, N, 0, NULL, NULL);
        double t2 = now_ms();
        if (r >= 0) {
            t_outer[r] = t1 - t0;
            t_lane[r] = t2 - t1;
        }
    }
    double o = median(t_outer, RUNS), l = median(t_lane, RUNS);
    double gop = 2.0 * (double)M * (double)N * (double)K / 1e9;
    printf("bench=q8_m%lld_n%lld_k%lld threads=%d outer_ms=%.3f lane_ms=%.3f ratio=%.2f runs=%d "
           "outer_gops=%.1f lane_gops=%.1f\n",
           (long long)M, (long long)N, (long long)K, n_threads, o, l, l / o, RUNS, gop / o * 1e3,
           gop / l * 1e3);
    free_weights(&ws);
    free(A);
    free(B);
    free(C);
}

static void bench_prefill(const cpu_ctx *ctx, int n_threads)
{
    const int64_t shapes[][2] = {{5632, 2048}, {2048, 5632}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t N = shapes[i][0], K = shapes[i][1];
        bench_prefill_case(ctx, n_threads, N, K, PTM_F32, 0);
        bench_prefill_case(ctx, n_threads, N, K, PTM_BF16, 0);
        if (cpu_isa_has_bf16()) {
            bench_prefill_case(ctx, n_threads, N, K, PTM_BF16, 1);
        }
        bench_prefill_case(ctx, n_threads, N, K, PTM_Q8_0, 0);
    }
}

static void bench_decode(const cpu_ctx *ctx, int n_threads)
{
    double bw = read_bandwidth(ctx, n_threads);
    const int64_t shapes[][2] = {{5632, 2048}, {2048, 5632}, {32000, 2048}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t N = shapes[i][0], K = shapes[i][1];
        bench_decode_case(ctx, n_threads, N, K, PTM_BF16, CPU_GEMV_EXACT, bw);
        if (cpu_isa_has_bf16()) {
            bench_decode_case(ctx, n_threads, N, K, PTM_BF16, CPU_GEMV_DPBF16, bw);
        }
        bench_decode_case(ctx, n_threads, N, K, PTM_F16, CPU_GEMV_EXACT, bw);
        bench_decode_case(ctx, n_threads, N, K, PTM_Q8_0, CPU_GEMV_EXACT, bw);
        bench_decode_case(ctx, n_threads, N, K, PTM_F32, CPU_GEMV_EXACT, bw);
    }
}

int main(int argc, char **argv)
{
    cpu_ctx ctx = {NULL, cpu_isa_detect(), 0};
    if (cpu_pool_new(0, &ctx.pool) != PTM_OK) {
        fprintf(stderr, "bench: %s\n", ptm_last_error());
        return 1;
    }
    cpu_blas_init();
    int n_threads = cpu_pool_size(ctx.pool);
    const char *only = argc > 1 ? argv[1] : "";
    fprintf(stderr, "bench: isa=%s threads=%d\n", cpu_isa_name(ctx.isa), n_threads);
    const struct gemm_case cases[] = {
        {4096, 384, 384, CPU_ACT_NONE},  {4096, 384, 1152, CPU_ACT_NONE},
        {4096, 384, 1536, CPU_ACT_GELU}, {4096, 1536, 384, CPU_ACT_NONE},
        {16, 384, 384, CPU_ACT_NONE},    {16, 384, 1152, CPU_ACT_NONE},
        {16, 384, 1536, CPU_ACT_GELU},   {16, 1536, 384, CPU_ACT_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && strstr("gemm", only); i++) {
        bench_gemm(&ctx, n_threads, cases[i], PTM_F32);
    }
    if (strstr("t5", only)) {
        /* Batch-16 T5 decode: M = 16 against weights whose K strides alias in L1; then its
         * encoder, 16 x 32 source tokens. */
        const struct gemm_case t5[] = {
            {16, 512, 2048, CPU_ACT_NONE},  {16, 2048, 512, CPU_ACT_NONE},
            {16, 512, 32128, CPU_ACT_NONE}, {512, 512, 512, CPU_ACT_NONE},
            {512, 512, 2048, CPU_ACT_RELU}, {512, 2048, 512, CPU_ACT_NONE}};
        for (size_t i = 0; i < sizeof(t5) / sizeof(t5[0]); i++) {
            bench_gemm(&ctx, n_threads, t5[i], PTM_F32);
        }
    }
    if (strstr("half", only)) {
        bench_gemm(&ctx, n_threads, (struct gemm_case){4096, 384, 1536, CPU_ACT_GELU}, PTM_BF16);
        bench_gemm(&ctx, n_threads, (struct gemm_case){1, 4096, 4096, CPU_ACT_NONE}, PTM_BF16);
        bench_gemm(&ctx, n_threads, (struct gemm_case){1, 4096, 4096, CPU_ACT_NONE}, PTM_F32);
    }
    if (strstr("peak", only) && ctx.isa >= CPU_ISA_AVX512) {
        bench_peak(&ctx, n_threads);
    }
    if (strstr("decode", only)) {
        bench_decode(&ctx, n_threads);
    }
    if (strstr("prefill", only)) {
        bench_prefill(&ctx, n_threads);
    }
    if (strstr("q8", only)) {
        const int64_t q8[][3] = {{16, 2048, 512},  {16, 512, 2048},   {16, 32128, 512},
                                 {32, 5632, 2048}, {512, 5632, 2048}, {512, 2048, 5632}};
        for (size_t i = 0; i < sizeof q8 / sizeof q8[0]; i++) {
            bench_q8_case(&ctx, n_threads, q8[i][0], q8[i][1], q8[i][2]);
        }
    }
    if (strstr("attention", only)) {
        bench_attention(&ctx, n_threads, 32, 128, 12, 32);
        bench_attention(&ctx, n_threads, 1, 16, 12, 32);
        /* TinyLlama's heads at the end of bench_llama's 512 + 128 tokens */
        bench_attention_decode(&ctx, n_threads, 640, 32, 4, 64, PTM_F32);
        bench_attention_decode(&ctx, n_threads, 640, 32, 4, 64, PTM_F16);
        /* SmolLM-135M's heads (3 per kv head) at a short and a long context */
        bench_attention_decode(&ctx, n_threads, 144, 9, 3, 64, PTM_F16);
        bench_attention_decode(&ctx, n_threads, 640, 9, 3, 64, PTM_F16);
    }
    cpu_pool_free(ctx.pool);
    return 0;
}
