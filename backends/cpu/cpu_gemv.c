/*
 * cpu_gemv.c - the decode GEMV: C[M, N] = A[M, K] . B^T for M = 1..4 F32 activation rows and
 * B [N, K] weight rows in F32, BF16 or F16, on AVX-512. Decode is bound by reading B once, so
 * this kernel is built to stream: N is split into one contiguous region per pool thread (one
 * wake; a thread done with its own takes grains of the others', cpu_steal), each thread walks
 * its rows GEMV_R at a time with independent accumulators, prefetching the next GEMV_R rows
 * into L2 while it reads these (GEMV_PFT), or, for one short activation row, one row at a time
 * on the hardware prefetchers alone (GEMV_R1_BYTES), with its 64-byte loads on line boundaries
 * even when the rows do not start on one (gemv_shift), and nothing is allocated per call (the
 * activation rows are rearranged once into thread-local scratch that persists).
 *
 * Numerics. BF16 weights are widened exactly (a bf16 is the high half of an F32): the even
 * elements of a 32-bit word by a shift, the odd ones by a mask, each multiplied with the
 * matching activations (split once per call into even and odd arrays) in F32 FMAs. F16 rows go
 * through vcvtph2ps. So results equal the F32 product of the widened weights up to summation
 * order, as cpu_gemm promises. A vdpbf16ps form (activations rounded to BF16 pairs once per
 * call, CPU_GEMV_DPBF16) is what cpu_gemm takes for BF16 weights when the user opts in
 * (PTM_CPU_BF16_DOT=1), never by default: it breaks the F32 golden contract. Its one op per 64
 * bytes against the exact form's four matters where memory is fast: out of L2 the exact form
 * runs at 80-100 GB/s on two Zen 4 threads, vdpbf16ps at 104-117 and a plain read at 160-190,
 * so with DRAM reads at 50-55 GB/s the exact form's arithmetic no longer hides behind the
 * loads; TinyLlama BF16 decode (bench_llama --child, six alternating pairs) went from 14.1 to
 * 15.8 tokens/s. Other ISAs and shapes stay with cpu_gemm.c's kernels. This file knows nothing of
 * epilogues beyond calling back per claimed range.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifndef GEMV_R
#define GEMV_R 4 /* weight rows per step: independent accumulators and row streams */
#endif
/*
 * Software prefetch, in tiles of GEMV_R rows ahead (0: none). A tile's rows are one contiguous
 * block of memory, so each step of a tile prefetches the matching share of the block GEMV_PFT
 * tiles on, one line per 64 bytes it reads: the next rows are in L2 when their tile starts,
 * instead of each new row stream waiting for the hardware prefetchers to find it. Measured on
 * Zen 4 (2 threads, alternating in one run), one tile ahead into L2 took BF16 and F16 decode
 * from 80-88% to 94-98% of the read bandwidth (F32 from 92-97% to 100%), where a plain read of
 * the same rows in the same order, prefetched alike, reaches 98-99%. Two tiles ahead was within
 * noise, an L1 (T0) or non-temporal hint lost to no prefetch at all, an extra L1 prefetch
 * along each row (512 B or 1 KiB ahead) gained nothing; prefetching only along each row (1 KiB
 * ahead) cost a fifth of the bandwidth into L1 and gained nothing into L2.
 */
#ifndef GEMV_PFT
#define GEMV_PFT 1
#endif
/*
 * One row per step, without software prefetch, when M = 1 and the rearranged activation row
 * is at most this many bytes: then each thread reads its weights as one sequential stream, as
 * llama.cpp's F16 decode does, which from DRAM read faster than four row streams with
 * software prefetch. Measured on Zen 4 (23 MB of rows from DRAM, 2 threads, alternating
 * with the four-row step, medians of 12 pairs): K = 1024 1.07-1.26x, K = 2048 1.02-1.16x
 * (BF16, F16 and vdpbf16ps alike), K = 3072 0.97-1.02x, K = 4096 0.80-0.98x, K = 5632
 * 0.60-0.90x (presumably re-reading a long activation row for every weight row costs more
 * than the one stream gains). TinyLlama decode (bench_llama --child, old and new plugin
 * alternating, prompt 16): F16 faster in 8 of 10 pairs, BF16 in 6 of 10, median 1.01-1.02x.
 */
#ifndef GEMV_R1_BYTES
#define GEMV_R1_BYTES 8192
#endif
#ifndef GEMV_HINT
#define GEMV_HINT _MM_HINT_T1
#endif

/* ---- per-thread scratch, kept across calls ---- */

struct gemv_scratch {
    void *p[CPU_SCRATCH_SLOTS];
    size_t cap[CPU_SCRATCH_SLOTS];
};

static pthread_key_t gemv_key;
static pthread_once_t gemv_once = PTHREAD_ONCE_INIT;

static void gemv_scratch_free(void *p)
{
    struct gemv_scratch *s = p;
    for (int i = 0; i < CPU_SCRATCH_SLOTS; i++) {
        free(s->p[i]);
    }
    free(s);
}

static void gemv_key_make(void)
{
    pthread_key_create(&gemv_key, gemv_scratch_free);
}

void *cpu_scratch_get(int slot, size_t bytes)
{
    pthread_once(&gemv_once, gemv_key_make);
    struct gemv_scratch *s = pthread_getspecific(gemv_key);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            return NULL;
        }
        if (pthread_setspecific(gemv_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[slot] < bytes) {
        size_t cap = (bytes + 4095) / 4096 * 4096;
        void *p = aligned_alloc(64, cap);
        if (!p) {
            return NULL;
        }
        free(s->p[slot]);
        s->p[slot] = p;
        s->cap[slot] = cap;
    }
    return s->p[slot];
}

/* ---- the job ---- */

enum { BT_F32 = 0, BT_BF16 = 1, BT_F16 = 2, BT_DPBF16 = 3 };

struct gemv_job {
    int bt;
    int r; /* weight rows per tile: GEMV_R, or 1 for a short activation row (GEMV_R1_BYTES) */
    int64_t M, N, K;
    int64_t kv;    /* elements of the vector body, whole 32-element chunks */
    int64_t kbody; /* row elements the body covers (K when shifted); the rest are a scalar tail */
    int64_t shift; /* elements the rows start past a 64-byte boundary; 0: chunks start at 0 */
    uint32_t m_first, m_last; /* valid elements of the first and last chunk when shifted */
    const float *A;
    int64_t lda;
    const char *B;
    int64_t ldb_bytes;
    const float *ap; /* rearranged activations, M rows of kv floats (or kv / 2 BF16 pairs) */
    float *C;
    int64_t ldc;
    int accumulate;
    cpu_steal steal;
    cpu_cols_fn epi;
    void *epi_arg;
};

static float gemv_elem(int bt, const char *row, int64_t k)
{
    if (bt == BT_F32) {
        return ((const float *)row)[k];
    }
    uint16_t h;
    memcpy(&h, row + 2 * k, 2);
    return bt == BT_F16 ? cpu_f16_to_f32(h) : cpu_bf16_to_f32(h);
}

/* Lanes of one zmm summed as cpu_gemm's dot kernel does. */
static inline __attribute__((always_inline)) CPU_AVX512 float gemv_hsum(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}

/*
 * MR activation rows times R weight rows from row n, over the kv-element body. The layouts of
 * ap per type: F32 and F16: the plain rows; BF16: per 32-element chunk the 16 even then the 16
 * odd activations; DPBF16: the rows as BF16 pairs (kv / 2 words).
 */
/* 32 elements of a weight row from element k as two F32 vectors, in the order ap holds the
 * activations: BF16 words split into even (shifted) and odd (masked) halves. */
static inline __attribute__((always_inline)) CPU_AVX512 void
gemv_widen(const int BT, const int masked, uint32_t mask, const char *row, int64_t k, __m512 *w0,
           __m512 *w1)
{
    if (BT == BT_F32) {
        const float *p = (const float *)row + k;
        *w0 = masked ? _mm512_maskz_loadu_ps((__mmask16)mask, p) : _mm512_loadu_ps(p);
        *w1 = masked ? _mm512_maskz_loadu_ps((__mmask16)(mask >> 16), p + 16)
                     : _mm512_loadu_ps(p + 16);
        return;
    }
    __m512i h = masked ? _mm512_maskz_loadu_epi16((__mmask32)mask, row + k * 2)
                       : _mm512_loadu_si512((const void *)(row + k * 2));
    if (BT == BT_BF16) {
        *w0 = _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
        *w1 = _mm512_castsi512_ps(_mm512_and_si512(h, _mm512_set1_epi32((int32_t)0xffff0000u)));
        return;
    }
    *w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    *w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

/* One 32-element chunk at virtual element k of R rows into acc, prefetching as it goes; a
 * masked chunk (the first or last of shifted rows) loads only its valid elements. */
static inline __attribute__((always_inline)) CPU_AVX512BF16 void
gemv_step(const int BT, const int MR, const int R, const int masked, uint32_t mask,
          const struct gemv_job *j, const char *const *row, int64_t k, uintptr_t *pf,
          __m512 acc[4][GEMV_R])
{
    const int64_t es = BT == BT_F32 ? 4 : 2;
    if (GEMV_PFT > 0 && R > 1) {
#pragma GCC unroll 8
        for (int l = 0; l < R * (int)es / 2; l++) {
            _mm_prefetch((const char *)(*pf + (uintptr_t)l * 64), GEMV_HINT);
        }
    }
    *pf += (uintptr_t)(R * es * 32);
    if (BT == BT_DPBF16) {
#pragma GCC unroll 4
        for (int m = 0; m < MR; m++) {
            __m512i a = _mm512_loadu_si512((const void *)(j->ap + m * j->kv / 2 + k / 2));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i w = _mm512_loadu_si512((const void *)(row[r] + k * 2));
                acc[m][r] = _mm512_dpbf16_ps(acc[m][r], (__m512bh)a, (__m512bh)w);
            }
        }
        return;
    }
    __m512 w0[GEMV_R], w1[GEMV_R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        gemv_widen(BT, masked, mask, row[r], k, &w0[r], &w1[r]);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; m++) {
        __m512 a0 = _mm512_loadu_ps(j->ap + m * j->kv + k);
        __m512 a1 = _mm512_loadu_ps(j->ap + m * j->kv + k + 16);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            acc[m][r] = _mm512_fmadd_ps(a0, w0[r], acc[m][r]);
            acc[m][r] = _mm512_fmadd_ps(a1, w1[r], acc[m][r]);
        }
    }
}

static inline __attribute__((always_inline)) CPU_AVX512BF16 void
gemv_tile(const int BT, const int MR, const int R, const struct gemv_job *j, int64_t n, float *out)
{
    __m512 acc[4][GEMV_R];
    const char *row[GEMV_R];
    const int64_t es = BT == BT_F32 ? 4 : 2;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        /* Shifted rows are read from the 64-byte boundary before them (an integer: the first
         * row's lies before B, where only masked-off lanes of its first chunk point). */
        row[r] =
            (const char *)((uintptr_t)(j->B + (n + r) * j->ldb_bytes) - (uintptr_t)(j->shift * es));
#pragma GCC unroll 4
        for (int m = 0; m < MR; m++) {
            acc[m][r] = _mm512_setzero_ps();
        }
    }
    /* Past the range or the matrix this reads nothing a later tile needs; a prefetch of an
     * address outside the mapping is dropped, never a fault (an integer, as C forbids pointers
     * past the array). */
    uintptr_t pf = (uintptr_t)j->B + (uintptr_t)((n + GEMV_PFT * R) * j->ldb_bytes);
    int64_t c = 0, nch = j->kv / 32, end = nch;
    if (BT != BT_DPBF16 && j->shift > 0) {
        gemv_step(BT, MR, R, 1, j->m_first, j, row, 0, &pf, acc);
        c = 1;
        end = nch - 1;
    }
    for (; c < end; c++) {
        gemv_step(BT, MR, R, 0, ~0u, j, row, 32 * c, &pf, acc);
    }
    if (BT != BT_DPBF16 && j->shift > 0 && nch > 1) {
        gemv_step(BT, MR, R, 1, j->m_last, j, row, 32 * (nch - 1), &pf, acc);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; m++) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            out[m * GEMV_R + r] = gemv_hsum(acc[m][r]);
        }
    }
}

#define GEMV_CASE(BT, MR, R)                                                                       \
    case (BT)*64 + (MR)*8 + (R):                                                                   \
        gemv_tile(BT, MR, R, j, n, out);                                                           \
        break;
#if GEMV_R > 1
#define GEMV_CASES_M(BT, MR) GEMV_CASE(BT, MR, GEMV_R) GEMV_CASE(BT, MR, 1)
#else
#define GEMV_CASES_M(BT, MR) GEMV_CASE(BT, MR, 1)
#endif
#define GEMV_CASES(BT)                                                                             \
    GEMV_CASES_M(BT, 1) GEMV_CASES_M(BT, 2) GEMV_CASES_M(BT, 3) GEMV_CASES_M(BT, 4)

static CPU_AVX512BF16 void gemv_tile_any(const struct gemv_job *j, int R, int64_t n, float *out)
{
    switch (j->bt * 64 + (int)j->M * 8 + R) {
        GEMV_CASES(BT_F32)
        GEMV_CASES(BT_BF16)
        GEMV_CASES(BT_F16)
        GEMV_CASES(BT_DPBF16)
    default:
        break;
    }
}

/* Rows [n, n + R) into C: the body from gemv_tile, the K tail element by element. */
static void gemv_rows(const struct gemv_job *j, int R, int64_t n)
{
    float out[4 * GEMV_R];
    gemv_tile_any(j, R, n, out);
    for (int64_t m = 0; m < j->M; m++) {
        for (int r = 0; r < R; r++) {
            const char *row = j->B + (n + r) * j->ldb_bytes;
            float s = out[m * GEMV_R + r];
            for (int64_t k = j->kbody; k < j->K; k++) {
                s += j->A[m * j->lda + k] * gemv_elem(j->bt, row, k);
            }
            float *c = j->C + m * j->ldc + n + r;
            *c = j->accumulate ? *c + s : s;
        }
    }
}

static void gemv_task(void *ctx, int64_t task, int32_t thread)
{
    struct gemv_job *j = ctx;
    int64_t cursor = 0, n0, n1;
    while (cpu_steal_next(&j->steal, task, &cursor, &n0, &n1)) {
        int64_t n = n0;
        for (; n + j->r <= n1; n += j->r) {
            gemv_rows(j, j->r, n);
        }
        for (; n < n1; n++) {
            gemv_rows(j, 1, n);
        }
        if (j->epi != NULL) {
            j->epi(j->epi_arg, 0, j->M, n0, n1);
        }
    }
}

/*
 * Rows that start past a 64-byte boundary (weights used in place from a file mapping start
 * anywhere) would cost every 64-byte load a second cache line: on Zen 4 that made the BF16
 * step a third slower out of L2 (52 against 67 GB/s on one core), and with the machine's read
 * bandwidth at 56 GB/s F16 decode reached 38-40 GB/s misaligned against 47-50 aligned. When every
 * row starts equally far past a boundary (the row pitch a multiple of 64 bytes), the chunks are
 * laid from that boundary instead: virtual element k of a row is element k - shift, the first and
 * last chunks load under masks (their invalid weights read as zero, matched by zero activations),
 * and the body covers all of K.
 */
static void gemv_shift(struct gemv_job *j, int64_t es)
{
    uintptr_t mis = (uintptr_t)j->B % 64;
    if (j->bt == BT_DPBF16 || mis == 0 || mis % (uintptr_t)es != 0 || j->ldb_bytes % 64 != 0) {
        return;
    }
    j->shift = (int64_t)(mis / (uintptr_t)es);
    int64_t nch = (j->K + j->shift + 31) / 32, last = j->K + j->shift - 32 * (nch - 1);
    j->kv = 32 * nch;
    j->kbody = j->K;
    j->m_first = ~0u << j->shift;
    j->m_last = last >= 32 ? ~0u : (1u << last) - 1u;
    if (nch == 1) {
        j->m_first &= j->m_last;
    }
}

/* Rearrange the activation bodies into ap as gemv_tile reads them. */
static CPU_AVX512BF16 void gemv_prepare(const struct gemv_job *j, float *ap)
{
    for (int64_t m = 0; m < j->M; m++) {
        const float *a = j->A + m * j->lda;
        for (int64_t k = 0; k < j->kv; k += 32) {
            __m512 x0, x1;
            if (j->shift > 0 && (k == 0 || k + 32 == j->kv)) {
                /* A masked chunk: its invalid elements, before 0 or past K, are zeros. */
                float t[32] = {0};
                for (int i = 0; i < 32; i++) {
                    int64_t e = k + i - j->shift;
                    t[i] = e >= 0 && e < j->K ? a[e] : 0.0f;
                }
                x0 = _mm512_loadu_ps(t);
                x1 = _mm512_loadu_ps(t + 16);
            } else {
                x0 = _mm512_loadu_ps(a + k - j->shift);
                x1 = _mm512_loadu_ps(a + k - j->shift + 16);
            }
            if (j->bt == BT_DPBF16) {
                /* cvtne2ps_pbh(hi, lo): lo becomes elements 0..15, hi 16..31, so the pairs
                 * come out in element order, as the weight row's words hold them. */
                __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
                _mm512_storeu_si512((void *)(ap + m * j->kv / 2 + k / 2), pairs);
            } else if (j->bt == BT_BF16) {
                __m512i even =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
                _mm512_storeu_ps(ap + m * j->kv + k, _mm512_permutex2var_ps(x0, even, x1));
                _mm512_storeu_ps(ap + m * j->kv + k + 16, _mm512_permutex2var_ps(x0, odd, x1));
            } else {
                _mm512_storeu_ps(ap + m * j->kv + k, x0);
                _mm512_storeu_ps(ap + m * j->kv + k + 16, x1);
            }
        }
    }
}

int cpu_gemv(const cpu_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
             const void *B, ptm_dtype b_dtype, int64_t ldb, float *C, int64_t ldc, int accumulate,
             int mode, cpu_cols_fn epi, void *epi_arg)
{
    if (M < 1 || M > 4 || ctx->isa < CPU_ISA_AVX512 || K < 32) {
        return 0;
    }
    int bt = b_dtype == PTM_F32 ? BT_F32 : b_dtype == PTM_BF16 ? BT_BF16 : BT_F16;
    if (b_dtype != PTM_F32 && b_dtype != PTM_BF16 && b_dtype != PTM_F16) {
        return 0;
    }
    if (mode == CPU_GEMV_DPBF16) {
        if (b_dtype != PTM_BF16 || !cpu_isa_has_bf16()) {
            return 0;
        }
        bt = BT_DPBF16;
    }
    int64_t es = b_dtype == PTM_F32 ? 4 : 2;
    struct gemv_job j = {.bt = bt,
                         .M = M,
                         .N = N,
                         .K = K,
                         .kv = K / 32 * 32,
                         .kbody = K / 32 * 32,
                         .A = A,
                         .lda = lda,
                         .B = B,
                         .ldb_bytes = ldb * es,
                         .C = C,
                         .ldc = ldc,
                         .accumulate = accumulate,
                         .epi = epi,
                         .epi_arg = epi_arg};
    gemv_shift(&j, es);
    float *ap = cpu_scratch_get(0, (size_t)M * (size_t)j.kv * sizeof(float) + 64);
    if (ap == NULL) {
        return 0;
    }
    gemv_prepare(&j, ap);
    j.ap = ap;
    j.r = M == 1 && j.kv * (bt == BT_DPBF16 ? 2 : 4) <= GEMV_R1_BYTES ? 1 : GEMV_R;
    /* One contiguous region per thread, claimed CPU_STEAL_BYTES (whole tiles) at a time. */
    int64_t grain = cpu_steal_grain(j.ldb_bytes, GEMV_R);
    cpu_pool_run(ctx->pool, cpu_steal_init(&j.steal, ctx->pool, N, grain), gemv_task, &j);
    return 1;
}
