/*
 * cpu_attention.c - fused scaled-dot-product attention over strided Q/K/V/O views, with GQA,
 * key padding mask, causal mask with a KV-cache offset, and an additive per-head bias (T5).
 *
 * One task is one (batch, head, block of ATTN_QB queries), or in GQA decode on AVX-512 one
 * (batch, range of keys) with every query of every head, kv head by kv head; the ranges'
 * partial results are merged by their softmax max and sum. A task copies the keys it can see
 * into a transposed [D, keys] scratch, so the scores of ATTN_GQ (8) queries against 32 keys (4
 * against 16 on AVX2) are D steps of shared Kt loads and broadcast-FMAs; a block of at most
 * ATTN_ROWS_MAX_Q queries (decode) would not repay the transpose and takes dot products with
 * K's rows in place. Then per query an exact two-pass softmax (max, exp-sum), and the group's
 * weighted sums of V rows in one pass over V. A half-precision (F16 / BF16) cache is widened
 * into scratch for the transposed and grouped paths, and read in place by the AVX-512 rows
 * path, which widens each row in registers as it loads it. Scratch per thread is O(D * Sk);
 * the B x H x Sq x Sk score tensor never exists. Masked and causally
 * hidden keys get weight exactly 0; a row that sees no key at all outputs zeros rather than
 * HF's uniform average over masked keys. AVX-512 and AVX2 share the algorithm; the scalar path
 * (and heads wider than ATTN_MAX_SIMD_D) computes one query at a time. Kernels with
 * compile-time tile sizes are instantiated through switch tables so their accumulators stay
 * in registers.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ATTN_QB         128
#define ATTN_MAX_SIMD_D 128 /* wider heads take the scalar path */
#define ATTN_ROWS_MAX_Q 4   /* blocks of at most this many queries skip the K transpose */
#define ATTN_GQ         8   /* queries scored together on AVX-512 (4 on AVX2): 16 accumulators */
/* Key rows prefetched ahead of their transpose, and value rows prefetched as their keys are
 * transposed, so the PV pass finds them in L2. A decode step's cache is cold (the layer's
 * weights streamed through since its last use): bench_cpu_kernels attention measured cold
 * F32 decode attention (640 keys, 32 heads on 4 kv heads) at 171-196 us without, 133-156 us
 * with 64 rows ahead (32: 156, 128: 149). */
#define ATTN_KV_PF 64
/* Fewest keys a split of grouped decode attention takes: below, one thread does them all. */
#define ATTN_SPLIT_MIN 128
#define ATTN_WIDEN_PF  32 /* rows of a half-precision cache prefetched ahead of their widening */

struct attn_job {
    const struct cpu_attention *a;
    int32_t isa;
    int64_t n_qblocks;
    int64_t sk_pad; /* Sk rounded up to 32 */
    /* Each task's scratch, the running thread's slot 1 (cpu_scratch_get), kept across calls:
     * Kt [D][sk_pad], scores [ATTN_GQ][sk_pad], mask [sk_pad], and for half K/V: K, V
     * [sk_pad][D] widened. Allocated per call it cost a page fault per page every call once it
     * outgrew malloc's mmap threshold (decode at a 640-token context: 187 KB F32, 514 KB F16). */
    size_t scratch_bytes;
    atomic_int nomem;          /* a task found no memory for its scratch */
    int grouped;               /* GQA decode: one task per (batch, key split), attn_group_task */
    int64_t splits, split_len; /* grouped: key splits per batch row and their length */
    float *part;               /* grouped with splits > 1: per (batch, split) what attn_merge
                                * merges, part_floats each: H * Sq rows of D, then H * Sq
                                * (max, sum) pairs */
    int64_t part_floats;
};

/* Keys [0, kend) of query i: kend = Sk, or the causal limit. */
static int64_t attn_key_end(const struct cpu_attention *a, int64_t i)
{
    if (!a->is_causal) {
        return a->Sk;
    }
    int64_t e = a->causal_offset + i + 1;
    return e < 0 ? 0 : (e < a->Sk ? e : a->Sk);
}

/* s[j] += bias and mask for j < kn; returns the row max (-inf when every key is hidden). */
static float attn_finish_scores(const struct cpu_attention *a, int64_t b, int64_t h, int64_t i,
                                float *s, int64_t kn)
{
    const float *bias = a->bias ? a->bias + b * a->bias_bs + (h * a->Sq + i) * a->Sk : NULL;
    const float *mask = a->key_mask ? a->key_mask + b * a->Sk : NULL;
    float mx = -INFINITY;
    for (int64_t j = 0; j < kn; j++) {
        float v = s[j] * a->scale;
        if (bias) {
            v += bias[j];
        }
        if (mask && mask[j] == 0.0f) {
            v = -INFINITY;
        }
        s[j] = v;
        mx = v > mx ? v : mx;
    }
    return mx;
}

static void attn_query_scalar(const struct cpu_attention *a, int64_t b, int64_t h, int64_t i,
                              float *s)
{
    int64_t hk = h / (a->H / a->Hkv);
    const float *q = a->q + b * a->q_bs + i * a->q_ss + h * a->q_hs;
    float *o = a->o + b * a->o_bs + i * a->o_ss + h * a->o_hs;
    int64_t kn = attn_key_end(a, i);
    for (int64_t j = 0; j < kn; j++) {
        const float *k = (const float *)a->k + b * a->k_bs + j * a->k_ss + hk * a->k_hs;
        float acc = 0.0f;
        for (int64_t d = 0; d < a->D; d++) {
            acc += q[d] * k[d];
        }
        s[j] = acc;
    }
    float mx = attn_finish_scores(a, b, h, i, s, kn);
    memset(o, 0, (size_t)a->D * sizeof(float));
    if (mx == -INFINITY) {
        return;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < kn; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < kn; j++) {
        const float *v = (const float *)a->v + b * a->v_bs + j * a->v_ss + hk * a->v_hs;
        float p = s[j] * inv;
        for (int64_t d = 0; d < a->D; d++) {
            o[d] += p * v[d];
        }
    }
}

/* Where the keys and values a task reads are: keys [k0, k0 + klen) of one kv head, k and v at
 * key k0, strides in elements. Rows of dt: F32 (the caller's, or widened from a half-precision
 * cache), or F16 / BF16 in place where the scores read K's rows (attn_scores_rows), which
 * widen K and V in registers as they load them. */
struct attn_kv {
    const void *k, *v;
    int64_t kss, vss, k0, klen;
    ptm_dtype dt;
};

/* Row j of a kv array of dtype dt with a row stride of ss elements. */
static const void *attn_kv_row(const void *base, ptm_dtype dt, int64_t j, int64_t ss)
{
    return (const char *)base + (size_t)(j * ss) * (dt == PTM_F32 ? 4 : 2);
}

/* Kt[d * ld + j] = K[j][d] for j < kn (keys of kv), zero up to kn rounded to 32: 16 keys by 16
 * dims at a time through a register transpose (a gather per dim cost 12% of BERT's
 * attention). */
static CPU_AVX512 void attn_transpose_k(const struct cpu_attention *a, const struct attn_kv *kv,
                                        int64_t kn, float *kt, int64_t ld)
{
    int64_t kn32 = (kn + 31) / 32 * 32;
    const float *base = kv->k, *vb = kv->v;
    for (int64_t j0 = 0; j0 < kn32; j0 += 16) {
        for (int64_t i = 0; i < 16; i++) {
            for (int64_t d = 0; d < a->D; d += 16) {
                if (j0 + ATTN_KV_PF + i < kn) {
                    _mm_prefetch((const char *)(base + (j0 + ATTN_KV_PF + i) * kv->kss + d),
                                 _MM_HINT_T0);
                }
                if (j0 + i < kn) {
                    _mm_prefetch((const char *)(vb + (j0 + i) * kv->vss + d), _MM_HINT_T1);
                }
            }
        }
        for (int64_t d0 = 0; d0 < a->D; d0 += 16) {
            int64_t nd = a->D - d0 < 16 ? a->D - d0 : 16;
            __m512 r[16];
            for (int64_t i = 0; i < 16; i++) {
                r[i] = j0 + i < kn ? cpu_load512(base + (j0 + i) * kv->kss + d0, nd)
                                   : _mm512_setzero_ps();
            }
            cpu_tr16_512(r);
            for (int64_t c = 0; c < nd; c++) {
                _mm512_storeu_ps(kt + (d0 + c) * ld + j0, r[c]);
            }
        }
    }
}

/* Scores of NQ queries (compile-time, so the 2 * NQ accumulators stay in registers) against
 * keys [0, kn): s[r * ld + j]. Each Kt load feeds NQ FMAs; 2 * NQ independent chains hide the
 * FMA latency. */
static inline __attribute__((always_inline)) CPU_AVX512 void
attn_scores_512(const int NQ, int64_t D, const float *const *q, const float *kt, int64_t ld,
                int64_t kn, float *s)
{
    for (int64_t j0 = 0; j0 < kn; j0 += 32) {
        __m512 acc[ATTN_GQ][2];
#pragma GCC unroll 8
        for (int r = 0; r < NQ; r++) {
            acc[r][0] = _mm512_setzero_ps();
            acc[r][1] = _mm512_setzero_ps();
        }
        for (int64_t d = 0; d < D; d++) {
            __m512 k0 = _mm512_loadu_ps(kt + d * ld + j0);
            __m512 k1 = _mm512_loadu_ps(kt + d * ld + j0 + 16);
#pragma GCC unroll 8
            for (int r = 0; r < NQ; r++) {
                __m512 qd = _mm512_set1_ps(q[r][d]);
                acc[r][0] = _mm512_fmadd_ps(qd, k0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(qd, k1, acc[r][1]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < NQ; r++) {
            _mm512_storeu_ps(s + r * ld + j0, acc[r][0]);
            _mm512_storeu_ps(s + r * ld + j0 + 16, acc[r][1]);
        }
    }
}

#define ATTN_SCORES_CASE(NQ)                                                                       \
    case NQ:                                                                                       \
        attn_scores_512(NQ, D, q, kt, ld, kn, s);                                                  \
        break;

static CPU_AVX512 void attn_scores_any_512(int nq, int64_t D, const float *const *q,
                                           const float *kt, int64_t ld, int64_t kn, float *s)
{
    switch (nq) {
        ATTN_SCORES_CASE(8)
        ATTN_SCORES_CASE(7)
        ATTN_SCORES_CASE(6)
        ATTN_SCORES_CASE(5)
        ATTN_SCORES_CASE(4)
        ATTN_SCORES_CASE(3)
        ATTN_SCORES_CASE(2)
    default:
        attn_scores_512(1, D, q, kt, ld, kn, s);
        break;
    }
}

/* Scores of one query against keys [0, kn) read as rows of K in place: s[j] = q . K[j], zero
 * up to kn rounded to 32 as the Kt path leaves them. Used when a block has too few queries to
 * pay for the transpose (decode: one query per head). */
static inline __attribute__((always_inline)) CPU_AVX512 void
attn_scores_rows(const ptm_dtype DT, int64_t D, const float *q, const void *k, int64_t kss,
                 int64_t kn, float *s)
{
    __m512 qv[ATTN_MAX_SIMD_D / 16];
    __mmask16 m[ATTN_MAX_SIMD_D / 16];
    int nd = (int)((D + 15) / 16);
    for (int c = 0; c < nd; c++) {
        m[c] = D - c * 16 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (D - c * 16)) - 1u);
        qv[c] = _mm512_maskz_loadu_ps(m[c], q + c * 16);
    }
    for (int64_t j = 0; j < kn; j++) {
        const void *kr = attn_kv_row(k, DT, j, kss);
        __m512 acc = _mm512_mul_ps(qv[0], cpu_load_wide512(DT, kr, 0, m[0]));
        for (int c = 1; c < nd; c++) {
            acc = _mm512_fmadd_ps(qv[c], cpu_load_wide512(DT, kr, c * 16, m[c]), acc);
        }
        s[j] = _mm512_reduce_add_ps(acc);
    }
    for (int64_t j = kn; j < (kn + 31) / 32 * 32; j++) {
        s[j] = 0.0f;
    }
}

static CPU_AVX512 void attn_scores_rows_512(ptm_dtype dt, int64_t D, const float *q, const void *k,
                                            int64_t kss, int64_t kn, float *s)
{
    if (dt == PTM_F32) {
        attn_scores_rows(PTM_F32, D, q, k, kss, kn, s);
    } else if (dt == PTM_F16) {
        attn_scores_rows(PTM_F16, D, q, k, kss, kn, s);
    } else {
        attn_scores_rows(PTM_BF16, D, q, k, kss, kn, s);
    }
}

/* s[j] = exp(s[j] * scale + bias[j] + madd[j] - max) for j < kn (0 beyond); returns the sum,
 * or 0 when every key is hidden; *mx gets max (-inf then). */
static CPU_AVX512 float attn_softmax_512(float *s, int64_t kn, float scale, const float *bias,
                                         const float *madd, float *mx_out)
{
    __m512 vs = _mm512_set1_ps(scale), mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < kn; j0 += 16) {
        __mmask16 m = kn - j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - j0)) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(s + j0), vs);
        if (bias) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j0));
        }
        v = _mm512_add_ps(v, _mm512_loadu_ps(madd + j0));
        _mm512_storeu_ps(s + j0, v);
        mx = _mm512_mask_max_ps(mx, m, mx, v);
    }
    float m_row = _mm512_reduce_max_ps(mx);
    *mx_out = m_row;
    if (m_row == -INFINITY) {
        return 0.0f;
    }
    __m512 vm = _mm512_set1_ps(m_row), sum = _mm512_setzero_ps();
    for (int64_t j0 = 0; j0 < kn; j0 += 16) {
        __mmask16 m = kn - j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - j0)) - 1u);
        __m512 v = _mm512_loadu_ps(s + j0);
        /* Hidden keys (-inf) must weigh exactly 0, below exp's underflow clamp. */
        m &= _mm512_cmp_ps_mask(v, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
        __m512 e = _mm512_maskz_mov_ps(m, cpu_exp512(_mm512_sub_ps(v, vm)));
        _mm512_storeu_ps(s + j0, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* o[r] = inv[r] * sum_j p[r][j] V[j] for NQ queries and ND = ceil(D / 16), both fixed at
 * compile time so the NQ * ND accumulators live in registers; each V load feeds NQ FMAs. */
static inline __attribute__((always_inline)) CPU_AVX512 void
attn_pv_512(const ptm_dtype DT, const int NQ, const int ND, int64_t D, const float *p, int64_t ld,
            const float *inv, int64_t kn, const void *v0, int64_t vss, float *const *o)
{
    __mmask16 last = (D % 16) ? (__mmask16)((1u << (D % 16)) - 1u) : (__mmask16)0xffff;
    __m512 acc[16];
#pragma GCC unroll 8
    for (int r = 0; r < NQ; r++) {
#pragma GCC unroll 8
        for (int c = 0; c < ND; c++) {
            acc[r * ND + c] = _mm512_setzero_ps();
        }
    }
    for (int64_t j = 0; j < kn; j++) {
        const void *v = attn_kv_row(v0, DT, j, vss);
        __m512 vv[8];
#pragma GCC unroll 8
        for (int c = 0; c < ND; c++) {
            vv[c] = cpu_load_wide512(DT, v, c * 16, c == ND - 1 ? last : (__mmask16)0xffff);
        }
#pragma GCC unroll 8
        for (int r = 0; r < NQ; r++) {
            __m512 pr = _mm512_set1_ps(p[r * ld + j]);
#pragma GCC unroll 8
            for (int c = 0; c < ND; c++) {
                acc[r * ND + c] = _mm512_fmadd_ps(pr, vv[c], acc[r * ND + c]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NQ; r++) {
        __m512 vinv = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 8
        for (int c = 0; c < ND; c++) {
            __m512 x = _mm512_mul_ps(acc[r * ND + c], vinv);
            if (c == ND - 1) {
                _mm512_mask_storeu_ps(o[r] + c * 16, last, x);
            } else {
                _mm512_storeu_ps(o[r] + c * 16, x);
            }
        }
    }
}

/* At most 16 accumulators: 8 queries for D <= 32, 4 for D <= 64, 2 for D <= 128. */
#define ATTN_PV_CASE(NQ, ND)                                                                       \
    case (NQ)*16 + (ND):                                                                           \
        attn_pv_512(DT, NQ, ND, D, p, ld, inv, kn, v0, vss, o);                                    \
        break;

#define ATTN_PV_CASES                                                                              \
    ATTN_PV_CASE(1, 1)                                                                             \
    ATTN_PV_CASE(2, 1)                                                                             \
    ATTN_PV_CASE(3, 1)                                                                             \
    ATTN_PV_CASE(4, 1)                                                                             \
    ATTN_PV_CASE(5, 1)                                                                             \
    ATTN_PV_CASE(6, 1)                                                                             \
    ATTN_PV_CASE(7, 1)                                                                             \
    ATTN_PV_CASE(8, 1)                                                                             \
    ATTN_PV_CASE(1, 2)                                                                             \
    ATTN_PV_CASE(2, 2)                                                                             \
    ATTN_PV_CASE(3, 2)                                                                             \
    ATTN_PV_CASE(4, 2)                                                                             \
    ATTN_PV_CASE(5, 2)                                                                             \
    ATTN_PV_CASE(6, 2)                                                                             \
    ATTN_PV_CASE(7, 2)                                                                             \
    ATTN_PV_CASE(8, 2)                                                                             \
    ATTN_PV_CASE(1, 3)                                                                             \
    ATTN_PV_CASE(2, 3)                                                                             \
    ATTN_PV_CASE(3, 3)                                                                             \
    ATTN_PV_CASE(4, 3)                                                                             \
    ATTN_PV_CASE(1, 4)                                                                             \
    ATTN_PV_CASE(2, 4)                                                                             \
    ATTN_PV_CASE(3, 4)                                                                             \
    ATTN_PV_CASE(4, 4)                                                                             \
    ATTN_PV_CASE(1, 5)                                                                             \
    ATTN_PV_CASE(2, 5)                                                                             \
    ATTN_PV_CASE(1, 6)                                                                             \
    ATTN_PV_CASE(2, 6)                                                                             \
    ATTN_PV_CASE(1, 7)                                                                             \
    ATTN_PV_CASE(2, 7)                                                                             \
    ATTN_PV_CASE(1, 8)                                                                             \
    ATTN_PV_CASE(2, 8)

/* The PV cases of one V dtype, which the switch fixes at compile time. */
static inline __attribute__((always_inline)) CPU_AVX512 void
attn_pv_cases(const ptm_dtype DT, int nq, int nd, int64_t D, const float *p, int64_t ld,
              const float *inv, int64_t kn, const void *v0, int64_t vss, float *const *o)
{
    switch (nq * 16 + nd) {
        ATTN_PV_CASES
    default:
        break;
    }
}

static CPU_AVX512 void attn_pv_any_512(ptm_dtype dt, int nq, int64_t D, const float *p, int64_t ld,
                                       const float *inv, int64_t kn, const void *v0, int64_t vss,
                                       float *const *o)
{
    int nd = (int)((D + 15) / 16);
    if (nq * nd > 16) {
        int half = nq / 2;
        attn_pv_any_512(dt, half, D, p, ld, inv, kn, v0, vss, o);
        attn_pv_any_512(dt, nq - half, D, p + half * ld, ld, inv + half, kn, v0, vss, o + half);
        return;
    }
    if (dt == PTM_F32) {
        attn_pv_cases(PTM_F32, nq, nd, D, p, ld, inv, kn, v0, vss, o);
    } else if (dt == PTM_F16) {
        attn_pv_cases(PTM_F16, nq, nd, D, p, ld, inv, kn, v0, vss, o);
    } else {
        attn_pv_cases(PTM_BF16, nq, nd, D, p, ld, inv, kn, v0, vss, o);
    }
}

/* An ISA's softmax of one row of scores: attn_softmax_512 or attn_softmax_256. */
typedef float (*attn_softmax_fn)(float *s, int64_t kn, float scale, const float *bias,
                                 const float *madd, float *mx_out);

/* Keys of [k0, k0 + klen) that query i sees, counted from k0. */
static int64_t attn_keys_in(const struct cpu_attention *a, int64_t i, int64_t k0, int64_t klen)
{
    int64_t n = attn_key_end(a, i) - k0;
    return n < 0 ? 0 : (n < klen ? n : klen);
}

/*
 * Softmax of the nq score rows s + r * ld (row r: query is[r] of head hs[r]) over the keys
 * [k0, k0 + klen) its query sees, through the ISA's softmax that writes `width` lanes at a time
 * (madd starts at key k0); inv[r] gets 1 / sum (0 for a row that sees no key), or with stats
 * (a part of the keys, merged later) 1 while stats[2r], stats[2r + 1] get the row's max and
 * sum. Keys a row does not see weigh 0 in the PV loop the rows share, up to kn_max.
 */
static void attn_softmax_rows(const struct cpu_attention *a, int64_t b, int nq, const int64_t *hs,
                              const int64_t *is, int64_t k0, int64_t klen, int64_t kn_max,
                              attn_softmax_fn softmax, int64_t width, float *s, int64_t ld,
                              const float *madd, float *inv, float *stats)
{
    for (int r = 0; r < nq; r++) {
        int64_t i = is[r], kn = attn_keys_in(a, i, k0, klen);
        const float *bias =
            a->bias ? a->bias + b * a->bias_bs + (hs[r] * a->Sq + i) * a->Sk + k0 : NULL;
        float *p = s + r * ld, mx = -INFINITY;
        float sum = kn > 0 ? softmax(p, kn, a->scale, bias, madd, &mx) : 0.0f;
        int64_t from = sum > 0.0f ? (kn + width - 1) / width * width : 0;
        for (int64_t j = from; j < kn_max; j++) {
            p[j] = 0.0f;
        }
        inv[r] = sum > 0.0f ? (stats ? 1.0f : 1.0f / sum) : 0.0f;
        if (stats) {
            stats[2 * r] = mx;
            stats[2 * r + 1] = sum;
        }
    }
}

/* Where a key split's part keeps the max and sum of row r (query i * H + head h). */
static float *attn_part_stats(const struct cpu_attention *a, float *part, int64_t r)
{
    return part + a->H * a->Sq * a->D + 2 * r;
}

/*
 * Up to ATTN_GQ rows of batch b that share the kv head kv holds: row r is query is[r] of head
 * hs[r], over the keys of kv. Kt holds those keys (as many as the last row sees: rows are in
 * order of their causal limit), or is NULL and the scores read K's rows in place. Without part
 * the rows' outputs go to O; with it (a key split, merged by attn_merge) the unnormalised
 * weighted sums go to part's row is[r] * H + hs[r] and their max and sum after all H * Sq rows.
 */
static CPU_AVX512 void attn_rows_512(const struct cpu_attention *a, int64_t b,
                                     const struct attn_kv *kv, int nq, const int64_t *hs,
                                     const int64_t *is, const float *kt, int64_t ld, float *s,
                                     const float *madd, float *part)
{
    const float *q[ATTN_GQ];
    float *o[ATTN_GQ], inv[ATTN_GQ], stats[2 * ATTN_GQ];
    int64_t kn_max = 0;
    for (int r = 0; r < nq; r++) {
        q[r] = a->q + b * a->q_bs + is[r] * a->q_ss + hs[r] * a->q_hs;
        o[r] = part ? part + (is[r] * a->H + hs[r]) * a->D
                    : a->o + b * a->o_bs + is[r] * a->o_ss + hs[r] * a->o_hs;
        int64_t kn = attn_keys_in(a, is[r], kv->k0, kv->klen);
        kn_max = kn > kn_max ? kn : kn_max;
    }
    if (kt) {
        attn_scores_any_512(nq, a->D, q, kt, ld, kn_max, s);
    } else {
        for (int r = 0; r < nq; r++) {
            attn_scores_rows_512(kv->dt, a->D, q[r], kv->k, kv->kss, kn_max, s + r * ld);
        }
    }
    attn_softmax_rows(a, b, nq, hs, is, kv->k0, kv->klen, kn_max, attn_softmax_512, 16, s, ld, madd,
                      inv, part ? stats : NULL);
    attn_pv_any_512(kv->dt, nq, a->D, s, ld, inv, kn_max, kv->v, kv->vss, o);
    for (int r = 0; part && r < nq; r++) {
        float *st = attn_part_stats(a, part, is[r] * a->H + hs[r]);
        st[0] = stats[2 * r];
        st[1] = stats[2 * r + 1];
    }
}

/* Queries [i0, i1) of (b, h) over the keys of kv, ATTN_GQ at a time. */
static CPU_AVX512 void attn_block_512(const struct cpu_attention *a, int64_t b, int64_t h,
                                      int64_t i0, int64_t i1, const struct attn_kv *kv,
                                      const float *kt, int64_t ld, float *s, const float *madd)
{
    int64_t hs[ATTN_GQ], is[ATTN_GQ];
    for (int64_t g = i0; g < i1; g += ATTN_GQ) {
        int nq = i1 - g < ATTN_GQ ? (int)(i1 - g) : ATTN_GQ;
        for (int r = 0; r < nq; r++) {
            hs[r] = h;
            is[r] = g + r;
        }
        attn_rows_512(a, b, kv, nq, hs, is, kt, ld, s, madd, NULL);
    }
}

/*
 * Every query of every head that shares kv head hk (GQA decode: a few queries, H / Hkv heads):
 * K is transposed once for the whole group and its rows scored ATTN_GQ at a time, where one
 * task per head read the group's keys H / Hkv times, in reductions of one query each (on
 * TinyLlama's 8-head groups at 640 keys, attention was 16% of an int8 decode step).
 */
static CPU_AVX512 void attn_group_512(const struct cpu_attention *a, int64_t b, int64_t hk,
                                      const struct attn_kv *kv, float *kt, int64_t ld, float *s,
                                      const float *madd, float *part)
{
    int64_t G = a->H / a->Hkv, n = G * a->Sq;
    int64_t hs[ATTN_GQ], is[ATTN_GQ];
    attn_transpose_k(a, kv, attn_keys_in(a, a->Sq - 1, kv->k0, kv->klen), kt, ld);
    /* Query-major rows, so each group of ATTN_GQ ends with the query that sees the most. */
    for (int64_t g = 0; g < n; g += ATTN_GQ) {
        int nq = n - g < ATTN_GQ ? (int)(n - g) : ATTN_GQ;
        for (int r = 0; r < nq; r++) {
            hs[r] = hk * G + (g + r) % G;
            is[r] = (g + r) / G;
        }
        attn_rows_512(a, b, kv, nq, hs, is, kt, ld, s, madd, part);
    }
}

/* ---- AVX2: the same algorithm on 8 lanes ---- */

static CPU_AVX2 void attn_transpose_k_256(const struct cpu_attention *a, int64_t b, int64_t hk,
                                          int64_t kn, float *kt, int64_t ld)
{
    int64_t kn32 = (kn + 31) / 32 * 32;
    __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                     _mm256_set1_epi32((int)a->k_ss));
    for (int64_t j0 = 0; j0 < kn32; j0 += 8) {
        __m256 m = _mm256_castsi256_ps(cpu_mask256(kn - j0 > 0 ? kn - j0 : 0));
        const float *base = (const float *)a->k + b * a->k_bs + j0 * a->k_ss + hk * a->k_hs;
        for (int64_t d = 0; d < a->D; d++) {
            __m256 v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base + d, idx, m, 4);
            _mm256_storeu_ps(kt + d * ld + j0, v);
        }
    }
}

static inline __attribute__((always_inline)) CPU_AVX2 void
attn_scores_256(const int NQ, int64_t D, const float *const *q, const float *kt, int64_t ld,
                int64_t kn, float *s)
{
    for (int64_t j0 = 0; j0 < kn; j0 += 16) {
        __m256 acc[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < NQ; r++) {
            acc[r][0] = _mm256_setzero_ps();
            acc[r][1] = _mm256_setzero_ps();
        }
        for (int64_t d = 0; d < D; d++) {
            __m256 k0 = _mm256_loadu_ps(kt + d * ld + j0);
            __m256 k1 = _mm256_loadu_ps(kt + d * ld + j0 + 8);
#pragma GCC unroll 4
            for (int r = 0; r < NQ; r++) {
                __m256 qd = _mm256_broadcast_ss(q[r] + d);
                acc[r][0] = _mm256_fmadd_ps(qd, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qd, k1, acc[r][1]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < NQ; r++) {
            _mm256_storeu_ps(s + r * ld + j0, acc[r][0]);
            _mm256_storeu_ps(s + r * ld + j0 + 8, acc[r][1]);
        }
    }
}

static CPU_AVX2 void attn_scores_any_256(int nq, int64_t D, const float *const *q, const float *kt,
                                         int64_t ld, int64_t kn, float *s)
{
    switch (nq) {
    case 4:
        attn_scores_256(4, D, q, kt, ld, kn, s);
        break;
    case 3:
        attn_scores_256(3, D, q, kt, ld, kn, s);
        break;
    case 2:
        attn_scores_256(2, D, q, kt, ld, kn, s);
        break;
    default:
        attn_scores_256(1, D, q, kt, ld, kn, s);
        break;
    }
}

static CPU_AVX2 void attn_scores_rows_256(int64_t D, const float *q, const float *k, int64_t kss,
                                          int64_t kn, float *s)
{
    __m256 qv[ATTN_MAX_SIMD_D / 8];
    int nd = (int)((D + 7) / 8);
    for (int c = 0; c < nd; c++) {
        qv[c] = cpu_load256(q + c * 8, D - c * 8);
    }
    for (int64_t j = 0; j < kn; j++) {
        const float *kr = k + j * kss;
        __m256 acc = _mm256_mul_ps(qv[0], cpu_load256(kr, D));
        for (int c = 1; c < nd; c++) {
            acc = _mm256_fmadd_ps(qv[c], cpu_load256(kr + c * 8, D - c * 8), acc);
        }
        s[j] = cpu_hsum256(acc);
    }
    for (int64_t j = kn; j < (kn + 31) / 32 * 32; j++) {
        s[j] = 0.0f;
    }
}

static CPU_AVX2 float attn_softmax_256(float *s, int64_t kn, float scale, const float *bias,
                                       const float *madd, float *mx_out)
{
    __m256 ninf = _mm256_set1_ps(-INFINITY), vs = _mm256_set1_ps(scale), mx = ninf;
    for (int64_t j0 = 0; j0 < kn; j0 += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(s + j0), vs);
        if (bias) {
            v = _mm256_add_ps(v, cpu_load256(bias + j0, kn - j0));
        }
        v = _mm256_add_ps(v, _mm256_loadu_ps(madd + j0));
        v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(cpu_mask256(kn - j0)));
        _mm256_storeu_ps(s + j0, v);
        mx = _mm256_max_ps(mx, v);
    }
    float m_row = cpu_hmax256(mx);
    *mx_out = m_row;
    if (m_row == -INFINITY) {
        return 0.0f;
    }
    __m256 vm = _mm256_set1_ps(m_row), sum = _mm256_setzero_ps();
    for (int64_t j0 = 0; j0 < kn; j0 += 8) {
        __m256 v = _mm256_loadu_ps(s + j0);
        __m256 e =
            _mm256_and_ps(cpu_exp256(_mm256_sub_ps(v, vm)), _mm256_cmp_ps(v, ninf, _CMP_NEQ_OQ));
        _mm256_storeu_ps(s + j0, e);
        sum = _mm256_add_ps(sum, e);
    }
    return cpu_hsum256(sum);
}

static inline __attribute__((always_inline)) CPU_AVX2 void
attn_pv_256(const int NQ, const int ND, int64_t D, const float *p, int64_t ld, const float *inv,
            int64_t kn, const float *v0, int64_t vss, float *const *o)
{
    __m256i last = cpu_mask256(D % 8 ? D % 8 : 8);
    __m256 acc[16];
#pragma GCC unroll 4
    for (int r = 0; r < NQ; r++) {
#pragma GCC unroll 16
        for (int c = 0; c < ND; c++) {
            acc[r * ND + c] = _mm256_setzero_ps();
        }
    }
    for (int64_t j = 0; j < kn; j++) {
        const float *v = v0 + j * vss;
        __m256 vv[16];
#pragma GCC unroll 16
        for (int c = 0; c < ND; c++) {
            vv[c] = c == ND - 1 ? _mm256_maskload_ps(v + c * 8, last) : _mm256_loadu_ps(v + c * 8);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NQ; r++) {
            __m256 pr = _mm256_broadcast_ss(p + r * ld + j);
#pragma GCC unroll 16
            for (int c = 0; c < ND; c++) {
                acc[r * ND + c] = _mm256_fmadd_ps(pr, vv[c], acc[r * ND + c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NQ; r++) {
        __m256 vinv = _mm256_set1_ps(inv[r]);
#pragma GCC unroll 16
        for (int c = 0; c < ND; c++) {
            __m256 x = _mm256_mul_ps(acc[r * ND + c], vinv);
            if (c == ND - 1) {
                _mm256_maskstore_ps(o[r] + c * 8, last, x);
            } else {
                _mm256_storeu_ps(o[r] + c * 8, x);
            }
        }
    }
}

#define ATTN_PV256_CASE(NQ, ND)                                                                    \
    case (NQ)*32 + (ND):                                                                           \
        attn_pv_256(NQ, ND, D, p, ld, inv, kn, v0, vss, o);                                        \
        break;
#define ATTN_PV256_CASES                                                                           \
    ATTN_PV256_CASE(1, 1)                                                                          \
    ATTN_PV256_CASE(1, 2)                                                                          \
    ATTN_PV256_CASE(1, 3)                                                                          \
    ATTN_PV256_CASE(1, 4)                                                                          \
    ATTN_PV256_CASE(1, 5)                                                                          \
    ATTN_PV256_CASE(1, 6)                                                                          \
    ATTN_PV256_CASE(1, 7)                                                                          \
    ATTN_PV256_CASE(1, 8)                                                                          \
    ATTN_PV256_CASE(1, 9)                                                                          \
    ATTN_PV256_CASE(1, 10)                                                                         \
    ATTN_PV256_CASE(1, 11)                                                                         \
    ATTN_PV256_CASE(1, 12)                                                                         \
    ATTN_PV256_CASE(1, 13)                                                                         \
    ATTN_PV256_CASE(1, 14)                                                                         \
    ATTN_PV256_CASE(1, 15)                                                                         \
    ATTN_PV256_CASE(1, 16)                                                                         \
    ATTN_PV256_CASE(2, 1)                                                                          \
    ATTN_PV256_CASE(2, 2)                                                                          \
    ATTN_PV256_CASE(2, 3)                                                                          \
    ATTN_PV256_CASE(2, 4)                                                                          \
    ATTN_PV256_CASE(2, 5)                                                                          \
    ATTN_PV256_CASE(2, 6)                                                                          \
    ATTN_PV256_CASE(2, 7)                                                                          \
    ATTN_PV256_CASE(2, 8)                                                                          \
    ATTN_PV256_CASE(3, 1)                                                                          \
    ATTN_PV256_CASE(3, 2)                                                                          \
    ATTN_PV256_CASE(3, 3)                                                                          \
    ATTN_PV256_CASE(3, 4)                                                                          \
    ATTN_PV256_CASE(3, 5)                                                                          \
    ATTN_PV256_CASE(4, 1)                                                                          \
    ATTN_PV256_CASE(4, 2)                                                                          \
    ATTN_PV256_CASE(4, 3)                                                                          \
    ATTN_PV256_CASE(4, 4)

static CPU_AVX2 void attn_pv_any_256(int nq, int64_t D, const float *p, int64_t ld,
                                     const float *inv, int64_t kn, const float *v0, int64_t vss,
                                     float *const *o)
{
    int nd = (int)((D + 7) / 8);
    if (nq * nd > 16) {
        int half = nq / 2;
        attn_pv_any_256(half, D, p, ld, inv, kn, v0, vss, o);
        attn_pv_any_256(nq - half, D, p + half * ld, ld, inv + half, kn, v0, vss, o + half);
        return;
    }
    switch (nq * 32 + nd) {
        ATTN_PV256_CASES
    default:
        break;
    }
}

static CPU_AVX2 void attn_block_256(const struct cpu_attention *a, int64_t b, int64_t h, int64_t i0,
                                    int64_t i1, const float *kt, int64_t ld, float *s,
                                    const float *madd)
{
    int64_t hk = h / (a->H / a->Hkv);
    const float *v0 = (const float *)a->v + b * a->v_bs + hk * a->v_hs;
    const float *k0 = (const float *)a->k + b * a->k_bs + hk * a->k_hs;
    for (int64_t g = i0; g < i1; g += 4) {
        int nq = i1 - g < 4 ? (int)(i1 - g) : 4;
        const float *q[4];
        float *o[4], inv[4];
        for (int r = 0; r < nq; r++) {
            q[r] = a->q + b * a->q_bs + (g + r) * a->q_ss + h * a->q_hs;
            o[r] = a->o + b * a->o_bs + (g + r) * a->o_ss + h * a->o_hs;
        }
        int64_t kn_max = attn_key_end(a, g + nq - 1);
        if (kt) {
            attn_scores_any_256(nq, a->D, q, kt, ld, kn_max, s);
        } else {
            for (int r = 0; r < nq; r++) {
                attn_scores_rows_256(a->D, q[r], k0, a->k_ss, kn_max, s + r * ld);
            }
        }
        int64_t hs[4] = {h, h, h, h}, is[4] = {g, g + 1, g + 2, g + 3};
        attn_softmax_rows(a, b, nq, hs, is, 0, a->Sk, kn_max, attn_softmax_256, 8, s, ld, madd, inv,
                          NULL);
        attn_pv_any_256(nq, a->D, s, ld, inv, kn_max, v0, a->v_ss, o);
    }
}

/* Keys and values [k0, k0 + kn) of (b, hk) widened from a half-precision cache into rows of D
 * at kw and vw. AVX512 is a template parameter so that the AVX-512 instance widens in line:
 * a decode step widens every cached row of every kv head, each only D (64) elements, and
 * through cpu_widen's call per row the widening was 1.8% of a BF16 decode step's samples at a
 * 512-token context. In line, bench_cpu_kernels' F16 decode attention (640 keys) went from
 * 174 to 160 us cold and 60 to 53 us warm (medians of 8 alternating pairs). */
static inline __attribute__((always_inline)) void
attn_widen_kv_rows(const int AVX512, const struct attn_job *j, int64_t b, int64_t hk, int64_t k0,
                   int64_t kn, float *kw, float *vw)
{
    const struct cpu_attention *a = j->a;
    size_t es = 2;
    const char *k = (const char *)a->k + (size_t)(b * a->k_bs + hk * a->k_hs + k0 * a->k_ss) * es;
    const char *v = (const char *)a->v + (size_t)(b * a->v_bs + hk * a->v_hs + k0 * a->v_ss) * es;
    for (int64_t t = 0; t < kn; t++) {
        if (t + ATTN_WIDEN_PF < kn) {
            for (int64_t off = 0; off < a->D * (int64_t)es; off += 64) {
                __builtin_prefetch(k + (size_t)((t + ATTN_WIDEN_PF) * a->k_ss) * es + off);
                __builtin_prefetch(v + (size_t)((t + ATTN_WIDEN_PF) * a->v_ss) * es + off);
            }
        }
        const char *kr = k + (size_t)(t * a->k_ss) * es, *vr = v + (size_t)(t * a->v_ss) * es;
        if (AVX512) {
            cpu_widen512(a->kv_dtype, kr, a->D, kw + t * a->D);
            cpu_widen512(a->kv_dtype, vr, a->D, vw + t * a->D);
        } else {
            cpu_widen(j->isa, a->D, kr, a->kv_dtype, kw + t * a->D);
            cpu_widen(j->isa, a->D, vr, a->kv_dtype, vw + t * a->D);
        }
    }
}

static CPU_AVX512 void attn_widen_kv_512(const struct attn_job *j, int64_t b, int64_t hk,
                                         int64_t k0, int64_t kn, float *kw, float *vw)
{
    attn_widen_kv_rows(1, j, b, hk, k0, kn, kw, vw);
}

static void attn_widen_kv(const struct attn_job *j, int64_t b, int64_t hk, int64_t k0, int64_t kn,
                          float *kw, float *vw)
{
    if (j->isa >= CPU_ISA_AVX512) {
        attn_widen_kv_512(j, b, hk, k0, kn, kw, vw);
    } else {
        attn_widen_kv_rows(0, j, b, hk, k0, kn, kw, vw);
    }
}

/* Whether a task of queries [i0, i1) (not grouped) widens a half-precision cache into scratch
 * first: all but the AVX-512 rows of a few queries, which widen K and V in registers as they
 * load them. */
static int attn_widens(const struct attn_job *j, int64_t i0, int64_t i1)
{
    return j->a->kv_dtype != PTM_F32 &&
           (j->isa != CPU_ISA_AVX512 || j->a->D > ATTN_MAX_SIMD_D || i1 - i0 > ATTN_ROWS_MAX_Q);
}

/* The key mask of batch b as additive F32 (0 or -inf), zero past Sk up to sk_pad. */
static void attn_mask_add(const struct attn_job *j, int64_t b, float *madd)
{
    const struct cpu_attention *a = j->a;
    for (int64_t k = 0; k < j->sk_pad; k++) {
        madd[k] = a->key_mask && k < a->Sk && a->key_mask[b * a->Sk + k] == 0.0f ? -INFINITY : 0.0f;
    }
}

/*
 * A grouped task: keys [k0, k0 + klen) of split `split` of batch b, for every kv head in turn
 * (so a thread reads whole cache rows of its key range, every kv head's part of them, instead
 * of one kv head's part of every row); with several splits the results are parts to merge.
 */
static void attn_group_task(struct attn_job *j, int64_t b, int64_t split, float *kt)
{
    const struct cpu_attention *a = j->a;
    float *s = kt + a->D * j->sk_pad, *madd = s + ATTN_GQ * j->sk_pad, *kw = madd + j->sk_pad;
    int64_t kend = attn_key_end(a, a->Sq - 1);
    int64_t k0 = split * j->split_len < kend ? split * j->split_len : kend;
    int64_t klen = kend - k0 < j->split_len ? kend - k0 : j->split_len;
    klen = klen < 0 ? 0 : klen;
    float *part = j->splits > 1 ? j->part + (b * j->splits + split) * j->part_floats : NULL;
    attn_mask_add(j, b, madd);
    for (int64_t hk = 0; hk < a->Hkv; hk++) {
        struct attn_kv kv = {kw, kw + a->D * j->sk_pad, a->D, a->D, k0, klen, PTM_F32};
        if (a->kv_dtype != PTM_F32) {
            attn_widen_kv(j, b, hk, k0, klen, kw, kw + a->D * j->sk_pad);
        } else {
            kv.k = attn_kv_row(a->k, PTM_F32, b * a->k_bs + hk * a->k_hs + k0 * a->k_ss, 1);
            kv.v = attn_kv_row(a->v, PTM_F32, b * a->v_bs + hk * a->v_hs + k0 * a->v_ss, 1);
            kv.kss = a->k_ss;
            kv.vss = a->v_ss;
        }
        attn_group_512(a, b, hk, &kv, kt, j->sk_pad, s, madd + k0, part);
    }
}

static void attn_task(void *ctx, int64_t task, int32_t thread)
{
    struct attn_job *j = ctx;
    const struct cpu_attention *a = j->a;
    float *kt = cpu_scratch_get(1, j->scratch_bytes);
    if (kt == NULL) {
        atomic_store(&j->nomem, 1);
        return;
    }
    if (j->grouped) {
        attn_group_task(j, task / j->splits, task % j->splits, kt);
        return;
    }
    float *s = kt + a->D * j->sk_pad;
    float *madd = s + ATTN_GQ * j->sk_pad;
    int64_t b = task / j->n_qblocks / a->H;
    int64_t qb = task % j->n_qblocks;
    int64_t h = (task / j->n_qblocks) % a->H;
    int64_t i0 = qb * ATTN_QB;
    int64_t i1 = i0 + ATTN_QB < a->Sq ? i0 + ATTN_QB : a->Sq;
    int64_t hk = h / (a->H / a->Hkv), kend = attn_key_end(a, i1 - 1);
    struct cpu_attention w;
    if (attn_widens(j, i0, i1)) {
        /* The F32 kernels read a widened copy: rows of D, the same for every batch and kv head
         * (the task touches no other). */
        float *kw = madd + j->sk_pad;
        attn_widen_kv(j, b, hk, 0, kend, kw, kw + a->D * j->sk_pad);
        w = *a;
        w.k = kw;
        w.v = kw + a->D * j->sk_pad;
        w.k_bs = w.k_hs = w.v_bs = w.v_hs = 0;
        w.k_ss = w.v_ss = a->D;
        w.kv_dtype = PTM_F32;
        a = &w;
    }
    if (j->isa == CPU_ISA_SCALAR || a->D > ATTN_MAX_SIMD_D) {
        for (int64_t i = i0; i < i1; i++) {
            attn_query_scalar(a, b, h, i, s);
        }
        return;
    }
    attn_mask_add(j, b, madd);
    /* A transposed K pays off once it serves a few groups of 4 queries; decode reads rows. */
    int rows = i1 - i0 <= ATTN_ROWS_MAX_Q;
    if (j->isa == CPU_ISA_AVX2) {
        if (!rows) {
            attn_transpose_k_256(a, b, hk, kend, kt, j->sk_pad);
        }
        attn_block_256(a, b, h, i0, i1, rows ? NULL : kt, j->sk_pad, s, madd);
        return;
    }
    struct attn_kv kv = {attn_kv_row(a->k, a->kv_dtype, b * a->k_bs + hk * a->k_hs, 1),
                         attn_kv_row(a->v, a->kv_dtype, b * a->v_bs + hk * a->v_hs, 1),
                         a->k_ss,
                         a->v_ss,
                         0,
                         a->Sk,
                         a->kv_dtype};
    if (!rows) {
        attn_transpose_k(a, &kv, kend, kt, j->sk_pad);
    }
    attn_block_512(a, b, h, i0, i1, &kv, rows ? NULL : kt, j->sk_pad, s, madd);
}

/*
 * O from the key splits' parts: per row, the weighted sums rescaled to the largest max of the
 * splits that saw a key (exp(m_s - m)) over the sums rescaled alike; zeros when none did.
 */
static void attn_merge(const struct attn_job *j)
{
    const struct cpu_attention *a = j->a;
    int64_t rows = a->H * a->Sq;
    for (int64_t b = 0; b < a->B; b++) {
        float *p0 = j->part + b * j->splits * j->part_floats;
        for (int64_t r = 0; r < rows; r++) {
            int64_t h = r % a->H, i = r / a->H;
            float *o = a->o + b * a->o_bs + i * a->o_ss + h * a->o_hs, m = -INFINITY, sum = 0;
            for (int64_t sp = 0; sp < j->splits; sp++) {
                const float *st = attn_part_stats(a, p0 + sp * j->part_floats, r);
                m = st[1] > 0 && st[0] > m ? st[0] : m;
            }
            for (int64_t d = 0; d < a->D; d++) {
                o[d] = 0;
            }
            for (int64_t sp = 0; sp < j->splits && m > -INFINITY; sp++) {
                float *part = p0 + sp * j->part_floats;
                const float *st = attn_part_stats(a, part, r);
                if (st[1] > 0) {
                    float f = expf(st[0] - m);
                    sum += f * st[1];
                    for (int64_t d = 0; d < a->D; d++) {
                        o[d] += f * part[r * a->D + d];
                    }
                }
            }
            for (int64_t d = 0; sum > 0 && d < a->D; d++) {
                o[d] /= sum;
            }
        }
    }
}

static ptm_status attn_check(const struct cpu_attention *a)
{
    if (a->B < 0 || a->Sq < 0 || a->Sk < 0 || a->H <= 0 || a->Hkv <= 0 || a->D <= 0 ||
        a->H % a->Hkv != 0) {
        return ptm_error_set(PTM_E_INVAL,
                             "cpu: attention: B=%lld Sq=%lld Sk=%lld H=%lld Hkv=%lld D=%lld; "
                             "expected positive heads and dims with H a multiple of Hkv",
                             (long long)a->B, (long long)a->Sq, (long long)a->Sk, (long long)a->H,
                             (long long)a->Hkv, (long long)a->D);
    }
    if (a->kv_dtype != PTM_F32 && a->kv_dtype != PTM_F16 && a->kv_dtype != PTM_BF16) {
        const char *name = ptm_dtype_name(a->kv_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: attention: keys and values of dtype %s; expected F32, F16 or "
                             "BF16",
                             name ? name : "?");
    }
    if (a->k_ss > INT32_MAX / 16) {
        return ptm_error_set(PTM_E_INVAL, "cpu: attention: key row stride %lld too large",
                             (long long)a->k_ss);
    }
    return PTM_OK;
}

ptm_status cpu_attention_run(const cpu_ctx *ctx, const struct cpu_attention *a)
{
    ptm_status st = attn_check(a);
    if (st != PTM_OK || a->B == 0 || a->Sq == 0) {
        return st;
    }
    struct attn_job j = {.a = a,
                         .isa = ctx->isa,
                         .n_qblocks = (a->Sq + ATTN_QB - 1) / ATTN_QB,
                         .sk_pad = (a->Sk + 31) / 32 * 32};
    /* A few queries of several heads per kv head: tasks of key ranges (attn_group_task). */
    j.grouped = ctx->isa == CPU_ISA_AVX512 && a->D <= ATTN_MAX_SIMD_D && a->Sq <= ATTN_ROWS_MAX_Q &&
                (a->H / a->Hkv) * a->Sq > ATTN_ROWS_MAX_Q;
    size_t rows = (size_t)a->D * (a->kv_dtype != PTM_F32 ? 3 : 1) + ATTN_GQ + 1;
    j.scratch_bytes = (rows * (size_t)(j.sk_pad > 0 ? j.sk_pad : 32) + 32) * sizeof(float);
    atomic_init(&j.nomem, 0);
    /* Below ~1 MFLOP, waking the pool costs more than the work (batch 1, short prompts). */
    double flops = 4.0 * (double)(a->B * a->H) * (double)a->Sq * (double)a->Sk * (double)a->D;
    cpu_pool *pool = flops < 1e6 ? NULL : ctx->pool;
    int64_t tasks = a->B * a->H * j.n_qblocks;
    if (j.grouped) {
        /* Grouped decode splits the keys between the threads, ATTN_SPLIT_MIN at least each. */
        int64_t kend = attn_key_end(a, a->Sq - 1), threads = cpu_pool_size(pool);
        j.splits = kend / ATTN_SPLIT_MIN < threads ? kend / ATTN_SPLIT_MIN : threads;
        j.splits = j.splits < 1 ? 1 : j.splits;
        j.split_len = ((kend + j.splits - 1) / j.splits + 15) / 16 * 16;
        j.part_floats = a->H * a->Sq * (a->D + 2);
        if (j.splits > 1) {
            j.part = malloc((size_t)(a->B * j.splits * j.part_floats) * sizeof(float));
            if (j.part == NULL) {
                return ptm_error_set(PTM_E_NOMEM, "cpu: attention: out of memory");
            }
        }
        tasks = a->B * j.splits;
    }
    cpu_pool_run(pool, tasks, attn_task, &j);
    if (!atomic_load(&j.nomem) && j.part != NULL) {
        attn_merge(&j);
    }
    free(j.part);
    if (atomic_load(&j.nomem)) {
        return ptm_error_set(PTM_E_NOMEM,
                             "cpu: attention: %zu bytes of scratch per thread: out of memory",
                             j.scratch_bytes);
    }
    return PTM_OK;
}
