/*
 * cpu_kernels.h - the CPU backend's internal kernel API: the thread pool, ISA selection and
 * every compute kernel (GEMM, norms, softmax, activations, attention, gather, conversion).
 *
 * This header is private to backends/cpu: the plugin glue (cpu_backend.c) and the kernel tests
 * include it; nothing here crosses the plugin ABI. Kernels take a cpu_ctx (pool + chosen ISA),
 * operate on plain host pointers and never allocate on the caller's behalf except short-lived
 * per-call scratch. Activations are F32. Strides are in elements. Kernels that cannot fail
 * return void; the ones that check data (ids in range, scratch allocation) return ptm_status
 * and report through ptm_error_set. A cpu_ctx may be used by one thread at a time; separate
 * contexts may share a pool (cpu_pool_run serialises callers).
 */
#ifndef PTM_CPU_KERNELS_H
#define PTM_CPU_KERNELS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ptm/ptm_base.h>
#include <ptm/ptm_tensor.h>

/* ---- thread pool (cpu_pool.c) ---- */

typedef struct cpu_pool cpu_pool;

/* A task: ctx as given to cpu_pool_run, the task index, and the running thread's index. */
typedef void (*cpu_task_fn)(void *ctx, int64_t task, int32_t thread);

/*
 * cpu_pool_new - start a pool of n_threads threads (the caller of cpu_pool_run counts as one).
 * n_threads <= 0 means PTM_THREADS from the environment, else the number of online cores.
 * Returns PTM_E_NOMEM or PTM_E_INTERNAL (thread creation failed); *out is NULL then.
 */
ptm_status cpu_pool_new(int32_t n_threads, cpu_pool **out);

/* cpu_pool_free - stop and join the workers; accepts NULL. No run may be in progress. */
void cpu_pool_free(cpu_pool *pool);

/* cpu_pool_size - threads that run tasks, the caller included (1 for a NULL pool). */
int32_t cpu_pool_size(const cpu_pool *pool);

/*
 * cpu_pool_run - run fn(ctx, t, thread) for t in [0, n_tasks) on the pool and return when all
 * are done. A NULL pool runs them inline. Tasks must not call cpu_pool_run on the same pool.
 * Concurrent callers are serialised.
 */
void cpu_pool_run(cpu_pool *pool, int64_t n_tasks, cpu_task_fn fn, void *ctx);

/* A slice of a range: fn(arg, lo, hi) handles [lo, hi). */
typedef void (*cpu_range_fn)(void *arg, int64_t lo, int64_t hi);

/*
 * cpu_pool_range - split [0, n) into about one slice per thread (slices at least grain long,
 * multiples of grain except the last) and run them on the pool. Blocks until done.
 */
void cpu_pool_range(cpu_pool *pool, int64_t n, int64_t grain, cpu_range_fn fn, void *arg);

/*
 * Work stealing for streaming kernels (decode GEMVs). [0, n) is split into one contiguous
 * region per pool thread, so each thread reads one forward stream, and each region is claimed
 * in whole grains, fewer as it empties: a thread that is done with its own region takes grains from
 * the front of the others', instead of waiting for the slowest thread (on 2 cores the two threads
 * of a decode GEMV differed by ~8% of the time). Regions are whole multiples of the grain but the
 * last.
 */
#define CPU_STEAL_MAX 64

typedef struct cpu_steal {
    struct {
        _Alignas(64) atomic_int_fast64_t next; /* the region's next unclaimed item */
    } r[CPU_STEAL_MAX];
    int64_t n, region, grain;
    int64_t n_regions;
} cpu_steal;

/* Bytes of rows a streaming kernel hands out at a time: small enough that the threads finish
 * within a few microseconds of each other, large enough that a claim (one atomic) and the
 * restart of a prefetch stream cost nothing. */
#define CPU_STEAL_BYTES (64 * 1024)
/* A claim takes 1 / CPU_STEAL_SHARE of what is left of a region, at least one grain. */
#define CPU_STEAL_SHARE 4

/* cpu_steal_grain - the grain for rows of row_bytes each, in whole tiles of `tile` rows: about
 * CPU_STEAL_BYTES, at least one tile. */
int64_t cpu_steal_grain(int64_t row_bytes, int64_t tile);

/* cpu_steal_init - regions of [0, n) for the pool's threads (grain >= 1); returns the number of
 * regions, the task count to pass to cpu_pool_run. */
int64_t cpu_steal_init(cpu_steal *s, const cpu_pool *pool, int64_t n, int64_t grain);

/*
 * cpu_steal_next - the next claim for the thread that runs task `task`: its own region's first,
 * then the other regions' in turn; a claim is 1 / CPU_STEAL_SHARE of what is left of the region,
 * in whole grains, at least one. *cursor is the task's position in that order: 0 before its
 * first call. Returns 1 with [*lo, *hi) claimed, 0 when no item is left.
 */
int cpu_steal_next(cpu_steal *s, int64_t task, int64_t *cursor, int64_t *lo, int64_t *hi);

/* ---- ISA selection (cpu_isa.c) ---- */

enum {
    CPU_ISA_SCALAR = 0,
    CPU_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    CPU_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ */
};

/*
 * cpu_isa_detect - the best ISA this CPU runs, lowered by PTM_CPU_ISA=scalar|avx2|avx512 (a
 * request above what the CPU has is capped to what it has). Thread safe, no state.
 */
int32_t cpu_isa_detect(void);

/* cpu_isa_best - the best ISA this CPU runs, ignoring PTM_CPU_ISA. */
int32_t cpu_isa_best(void);

/* cpu_isa_has_bf16 - whether the CPU has AVX512_BF16 (vdpbf16ps); only the measured
 * CPU_GEMV_DPBF16 form of cpu_gemv uses it. */
int cpu_isa_has_bf16(void);

/* cpu_isa_has_vnni - whether the CPU has AVX512_VNNI (vpdpbusd) with AVX-512; the Q8_0
 * kernels need it, else they take their scalar reference path. */
int cpu_isa_has_vnni(void);

/* cpu_isa_name - "scalar", "avx2" or "avx512". */
const char *cpu_isa_name(int32_t isa);

/* ---- context ---- */

/* What every kernel needs: where to run and which code path to take. The caller owns both. */
typedef struct cpu_ctx {
    cpu_pool *pool; /* NULL: run on the calling thread */
    int32_t isa;    /* CPU_ISA_*, at most cpu_isa_best() */
    /* Nonzero: large-M GEMMs on BF16 or F16 weights round the activations (and F16 weights) to
     * BF16 and run cpu_gemm_bf16, and the decode GEMV on BF16 weights rounds its activations
     * for vdpbf16ps (PTM_CPU_BF16_DOT=1); zero keeps them exact F32 (the golden contract). */
    int32_t bf16_dot;
} cpu_ctx;

/*
 * cpu_blas_init - make OpenBLAS single-threaded. Our pool parallelises GEMM tiles itself, and
 * OpenBLAS's own spinning threads would otherwise compete with the pool for the same cores.
 * Call once before the first cpu_gemm; idempotent.
 */
void cpu_blas_init(void);

/* ---- activations (cpu_act.c) ---- */

enum {
    CPU_ACT_NONE = 0,
    CPU_ACT_GELU = 1,      /* 0.5 x (1 + erf(x / sqrt 2)), HF "gelu" */
    CPU_ACT_GELU_TANH = 2, /* HF "gelu_new" / "gelu_pytorch_tanh" */
    CPU_ACT_RELU = 3,
    CPU_ACT_SILU = 4, /* x * sigmoid(x), HF "silu" / "swish" */
};

/* cpu_act - out[i] = act(x[i]) for n elements; out may equal x. */
void cpu_act(const cpu_ctx *ctx, int32_t act, int64_t n, const float *x, float *out);

/* cpu_act_gated - out[i] = act(gate[i]) * up[i] (LLaMA SwiGLU, T5 gated-gelu); out may alias. */
void cpu_act_gated(const cpu_ctx *ctx, int32_t act, int64_t n, const float *gate, const float *up,
                   float *out);

/* Single-row forms used by fused epilogues; same results as cpu_act for the same isa. */
void cpu_act_row(int32_t isa, int32_t act, int64_t n, const float *x, float *out);

/* ---- GEMM (cpu_gemm.c) ---- */

/*
 * Epilogue applied to each output tile while it is in cache:
 *   C = act(A . op(B) + bias) + residual
 * bias [N] and residual [M, N] (row stride ld_residual) are optional; residual may equal C.
 */
struct cpu_epilogue {
    const float *bias;
    int32_t act; /* CPU_ACT_* */
    const float *residual;
    int64_t ld_residual;
};

/*
 * cpu_gemm - C[M, N] = A[M, K] . op(B), plus the epilogue (ep may be NULL).
 *
 * b_trans != 0: B is [N, K] row-major with row stride ldb (nn.Linear weight layout);
 * b_trans == 0: B is [K, N] row-major with row stride ldb.
 * b_dtype: PTM_F32, PTM_BF16, PTM_F16 or PTM_Q8_0 (others: PTM_E_UNSUPPORTED). PTM_Q8_0 needs
 * b_trans and ldb == K and runs cpu_q8_outer_gemm (M >= 12 with VNNI) or else cpu_q8_gemm.
 * M <= 4 with b_trans on AVX-512 runs cpu_gemv (the decode path). With ctx->bf16_dot, BF16
 * and F16 weights with b_trans that reach the large-M path run cpu_gemm_bf16, and BF16 weights
 * in cpu_gemv its CPU_GEMV_DPBF16 form, where the CPU has AVX512-BF16: there, and only there,
 * activations (and F16 weights) are rounded to BF16 (as a bf16 model computes in PyTorch).
 * Otherwise half-precision weights are widened to F32 (in registers for small M on AVX-512, as they
 * are packed for large M there, per K chunk or whole matrix otherwise) and multiplied in F32, so
 * results equal the F32 GEMM on the widened weights up to summation order; activations are never
 * rounded to BF16. M < 32 with b_trans uses the built-in kernels (an AVX-512 outer-product kernel
 * for M in 14..16 and 24..31, keeping per-thread scratch across calls, else a dot-product kernel),
 * anything else cpu_gemm_512 on AVX-512 and OpenBLAS below it. C must not overlap A or B; the
 * residual may be C only without an activation (else PTM_E_INVAL). PTM_E_NOMEM when widening
 * scratch fails.
 */
ptm_status cpu_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t lda, const void *B, ptm_dtype b_dtype, int64_t ldb, int32_t b_trans,
                    float *C, int64_t ldc, const struct cpu_epilogue *ep);

/* Told which part of C a kernel has finished: rows [m0, m1) x columns [n0, n1). Called on a
 * pool thread, once per slice, so an epilogue runs while the slice is in cache. */
typedef void (*cpu_cols_fn)(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

/* cpu_scratch_get - this thread's scratch slot (0 .. CPU_SCRATCH_SLOTS - 1) of at least bytes
 * (64-byte aligned), kept and reused across calls and freed when the thread exits; NULL when out
 * of memory. Slot 0 holds what a caller prepares for its pool tasks, slot 1 what each task
 * packs for itself (the caller runs tasks too). One user per slot at a time. */
#define CPU_SCRATCH_SLOTS 2
void *cpu_scratch_get(int slot, size_t bytes);

/* ---- decode GEMV (cpu_gemv.c) ---- */

enum {
    CPU_GEMV_EXACT = 0,  /* BF16 widened exactly, F32 FMAs: cpu_gemm's numerics */
    CPU_GEMV_DPBF16 = 1, /* BF16 weights only: vdpbf16ps with activations rounded to BF16 */
};

/*
 * cpu_gemv - C[M, N] (+)= A[M, K] . B^T for M in 1..4 on AVX-512, B [N, K] F32, BF16 or F16 with
 * row stride ldb elements; accumulate adds to C. Streams B once: one contiguous slice of N per
 * pool thread, then epi (may be NULL) per slice. Returns 0 without touching C when the case
 * is not its own (other M, ISA, dtype, K < 32, scratch), 1 when done.
 */
int cpu_gemv(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
             const void *B, ptm_dtype b_dtype, int64_t ldb, float *C, int64_t ldc, int accumulate,
             int mode, cpu_cols_fn epi, void *epi_arg);

/* ---- prefill GEMM for BF16 and F16 weights (cpu_gemm_bf16.c) ---- */

/*
 * cpu_gemm_bf16 - C[M, N] (+)= A[M, K] . B^T with B [N, K] BF16 or F16 rows (b_dtype, row
 * stride ldb elements) on vdpbf16ps: A is rounded to BF16 once (as a bf16 model's activations
 * are), F16 weights are rounded to BF16 as they are packed, products accumulate in F32. epi (may
 * be NULL) runs per finished column panel. Returns 0 without touching C when it cannot run (no
 * AVX512-BF16, isa below AVX-512, K < 2, another dtype, no scratch).
 */
int cpu_gemm_bf16(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const void *B, ptm_dtype b_dtype, int64_t ldb, float *C, int64_t ldc,
                  int accumulate, cpu_cols_fn epi, void *epi_arg);

/* ---- large-M GEMM on AVX-512 (cpu_gemm_512.c) ---- */

/*
 * cpu_gemm_512 - C[M, N] (+)= A[M, K] . op(B) in F32 arithmetic, B F32, BF16 or F16 (widened
 * exactly), [N, K] rows (b_trans) or [K, N], row stride ldb elements: B is packed once per call
 * into this thread's scratch slot 0 and shared by the pool's tasks. ep (may be NULL) is applied
 * as cpu_gemm defines it while each tile is stored; with accumulate, C holds the residual and
 * the product is added to it (ep's residual is not added again). Returns 0 without touching C
 * when it cannot run (isa below AVX-512, an empty product, no scratch), 1 when done.
 */
int cpu_gemm_512(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const void *B, ptm_dtype b_dtype, int64_t ldb, int32_t b_trans, float *C,
                 int64_t ldc, int accumulate, const struct cpu_epilogue *ep);

/* ---- int8 block-quantized weights, PTM_Q8_0 (cpu_q8.c) ---- */

/* cpu_q8_row_bytes - bytes of a Q8_0 row of k elements (k a multiple of 32). */
size_t cpu_q8_row_bytes(int64_t k);

/*
 * cpu_q8_quantize - rows x k elements of src (F32, BF16 or F16, row stride ld_src elements) to
 * packed Q8_0 rows in dst (layout in ptm_tensor.h). PTM_E_UNSUPPORTED when k is not a multiple
 * of 32 or for another dtype; PTM_E_RANGE naming row and block for a non-finite value or a
 * block whose scale overflows F16 (dst is then partly written).
 */
ptm_status cpu_q8_quantize(const cpu_ctx *ctx, int64_t rows, int64_t k, const void *src,
                           ptm_dtype src_dtype, int64_t ld_src, void *dst);

/* cpu_q8_dequantize - packed Q8_0 rows back to F32, BF16 or F16 (q * d rounded to the type). */
ptm_status cpu_q8_dequantize(const cpu_ctx *ctx, int64_t rows, int64_t k, const void *src,
                             void *dst, ptm_dtype dst_dtype);

/*
 * cpu_q8_gemm - C[M, N] (+)= A[M, K] . B^T with B [N, K] packed Q8_0 rows and A F32 rows quantized
 * per block of 32 on the fly; the result is defined lane by lane (cpu_q8.c) so the VNNI and the
 * scalar path (PTM_CPU_ISA=scalar, or no VNNI) agree bit for bit. epi (may be NULL) is called
 * per finished slice. PTM_E_INVAL when K is not a multiple of 32, PTM_E_NOMEM for scratch.
 */
ptm_status cpu_q8_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                       int64_t lda, const void *B, float *C, int64_t ldc, int accumulate,
                       cpu_cols_fn epi, void *epi_arg);

/*
 * cpu_q8_outer_gemm - the same product for many rows on AVX512-VNNI (cpu_q8_outer.c): A's rows
 * are the zmm lanes, each block's integer dot is exact, and acc = fma(float(dot), ad * dw,
 * acc) per block in order, from 0. Returns 0 without touching C when it cannot run (no VNNI,
 * K not a multiple of 32, no scratch), 1 when done. epi as for cpu_q8_gemm.
 */
int cpu_q8_outer_gemm(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const void *B, float *C, int64_t ldc, int accumulate,
                      cpu_cols_fn epi, void *epi_arg);

/* ---- norms and softmax (cpu_norm.c) ---- */

/*
 * cpu_layer_norm - out = LN(x + residual) * gamma + beta over the last dim n, for rows rows.
 * residual, gamma, beta may be NULL. Row strides ldx, ldr, ldo. out may equal x. Mean and
 * the biased variance (as torch) are two-pass F32 sums per row.
 */
void cpu_layer_norm(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                    const float *residual, int64_t ldr, const float *gamma, const float *beta,
                    float eps, float *out, int64_t ldo);

/*
 * cpu_rms_norm - out = (x + residual) / sqrt(mean((x + residual)^2) + eps) * weight (LLaMA,
 * T5). residual and weight may be NULL. When sum_out is non-NULL it receives x + residual
 * (the next residual stream; may equal x).
 */
void cpu_rms_norm(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                  const float *residual, int64_t ldr, const float *weight, float eps, float *out,
                  int64_t ldo, float *sum_out, int64_t lds);

/* cpu_softmax - numerically stable softmax over the last dim; out may equal x. */
void cpu_softmax(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                 float *out, int64_t ldo);

/* ---- attention (cpu_attention.c) ---- */

/*
 * Fused scaled-dot-product attention. Element (b, s, h, d) of Q lives at
 * q[b * q_bs + s * q_ss + h * q_hs + d]; same for K, V (with kv heads) and O. So Q/K/V can be
 * column slices of a fused QKV projection, a [B, S, H, D] tensor, or a [B, H, S, D] cache.
 * Query head h reads kv head h / (H / Hkv) (GQA). Scores are
 *   scale * q.k + bias[b * bias_bs + h * Sq * Sk + i * Sk + j]      (bias optional)
 * Key j of batch b is dropped when key_mask[b * Sk + j] == 0 (mask optional; HF's additive
 * finfo.min gives the same weights whenever a row keeps at least one key). Causal: query i
 * sees keys j <= causal_offset + i. A row with no visible key outputs zeros (never NaN).
 * K and V are F32, or both F16 or BF16 (kv_dtype: a half-precision KV cache); a task widens
 * the keys and values of its kv head to F32 once, so the arithmetic is F32 either way.
 */
struct cpu_attention {
    int64_t B, Sq, Sk, H, Hkv, D;
    const float *q;
    int64_t q_bs, q_ss, q_hs;
    const void *k; /* kv_dtype elements */
    int64_t k_bs, k_ss, k_hs;
    const void *v;
    int64_t v_bs, v_ss, v_hs;
    ptm_dtype kv_dtype; /* PTM_F32 (0), PTM_F16 or PTM_BF16 */
    float *o;
    int64_t o_bs, o_ss, o_hs;
    float scale;
    const float *key_mask; /* [B, Sk] or NULL */
    const float *bias;     /* [H, Sq, Sk] per batch or NULL */
    int64_t bias_bs;       /* 0: one bias for every batch */
    int32_t is_causal;
    int64_t causal_offset;
};

/* cpu_attention_run - see struct cpu_attention. PTM_E_INVAL for bad shapes, PTM_E_NOMEM. */
ptm_status cpu_attention_run(const cpu_ctx *ctx, const struct cpu_attention *a);

/* ---- elementwise, gather, RoPE, conversion (cpu_misc.c) ---- */

/* out = a + b, out = a * b, out = x * s over n elements; out may alias an input. */
void cpu_add(const cpu_ctx *ctx, int64_t n, const float *a, const float *b, float *out);
void cpu_mul(const cpu_ctx *ctx, int64_t n, const float *a, const float *b, float *out);
void cpu_scale(const cpu_ctx *ctx, int64_t n, const float *x, float s, float *out);

/*
 * cpu_embed_gather - out[i, :] = table[ids[i], :] widened to F32, for n_ids ids of id_dtype
 * PTM_I32 or PTM_I64; table_dtype PTM_F32, PTM_BF16 or PTM_F16, n_rows x dim, row stride dim.
 * Returns PTM_E_RANGE naming the offending id and position when an id is outside
 * [0, n_rows); PTM_E_UNSUPPORTED for other dtypes.
 */
ptm_status cpu_embed_gather(const cpu_ctx *ctx, int64_t n_ids, const void *ids, ptm_dtype id_dtype,
                            const void *table, ptm_dtype table_dtype, int64_t n_rows, int64_t dim,
                            float *out);

/*
 * cpu_convert - convert n elements between PTM_F32, PTM_F16 and PTM_BF16 with
 * round-to-nearest-even (NaN stays NaN), as torch's .to(). src and dst must not overlap
 * unless equal dtypes. PTM_E_UNSUPPORTED for other pairs.
 */
ptm_status cpu_convert(const cpu_ctx *ctx, int64_t n, const void *src, ptm_dtype src_dtype,
                       void *dst, ptm_dtype dst_dtype);

/* cpu_widen - n elements of src (PTM_F32, PTM_F16 or PTM_BF16) to F32 on the calling thread,
 * for kernels that convert inside their own tasks. */
void cpu_widen(int32_t isa, int64_t n, const void *src, ptm_dtype src_dtype, float *dst);

/* Scalar conversions, shared by the kernels. */
float cpu_bf16_to_f32(uint16_t h);
uint16_t cpu_f32_to_bf16(float f);
float cpu_f16_to_f32(uint16_t h);
uint16_t cpu_f32_to_f16(float f);

/*
 * cpu_rope - rotary position embedding in place, HF "rotate_half" layout (LLaMA): for each
 * token t and head h, x = base + t * ts + h * hs, pairs (x[i], x[i + rot/2]) for i < rot/2 are
 * rotated by pos[t] * theta^(-2i / rot), with inv_freq and angles in F32 as HF computes them.
 * rot <= head dim, even.
 */
void cpu_rope(const cpu_ctx *ctx, int64_t n_tokens, int64_t n_heads, int64_t rot, float *x,
              int64_t ts, int64_t hs, const int64_t *pos, float theta);

/*
 * cpu_rope_freqs - the general RoPE: like cpu_rope, but the rot/2 inverse frequencies are
 * given (HF rope_scaling types reduce to inv_freq + an attention factor computed on the host),
 * cos and sin are multiplied by attn_factor (YaRN), and neox picks the pairs: 1 rotates
 * (x[i], x[i + rot/2]) (HF rotate_half), 0 rotates (x[2i], x[2i + 1]) (GPT-J).
 */
void cpu_rope_freqs(const cpu_ctx *ctx, int64_t n_tokens, int64_t n_heads, int64_t rot, float *x,
                    int64_t ts, int64_t hs, const int64_t *pos, const float *inv_freq,
                    float attn_factor, int32_t neox);

#endif /* PTM_CPU_KERNELS_H */
