/*
 * cpu_simd.h - vector math shared by the CPU kernels: AVX-512 and AVX2 exp, erf, sigmoid,
 * masked loads and half-precision widening, as static inline functions compiled for their ISA
 * by a target attribute, so the library builds with plain flags and only calls them after
 * cpu_isa_detect said the CPU has that ISA.
 *
 * Accuracy, measured against double precision over the full float range used by the kernels:
 * exp ~2 ulp (Cody-Waite reduction, degree-7 Taylor on [-ln2/2, ln2/2], scalef for 2^n);
 * erf abs error <= 2e-7 (odd degree-11 fit on [0, 1], exp of a degree-9 fit of log erfc on
 * [1, 4], +-1 beyond since erfc(4) < 2^-25). Coefficients were fitted with numpy polyfit on
 * Chebyshev nodes. The AVX2 forms use the same polynomials on 8 lanes. This header holds no
 * kernels and no state.
 */
#ifndef PTM_CPU_SIMD_H
#define PTM_CPU_SIMD_H

#include "cpu_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define CPU_SQRT_2_OVER_PI 0.7978845608028654f
#define CPU_GELU_TANH_C    0.044715f

#define CPU_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define CPU_AVX512BF16                                                                             \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))
#define CPU_AVX2 __attribute__((target("avx2,fma,f16c")))

/* e^x; underflows to 0 below about -104 and overflows to +inf above about 88.7. */
static inline CPU_AVX512 __m512 cpu_exp512(__m512 x)
{
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline CPU_AVX512 __m512 cpu_erf512(__m512 x)
{
    __m512 t = _mm512_abs_ps(x);
    __m512 s = _mm512_mul_ps(t, t);
    /* |x| < 1: erf(x) = x * P(x^2). */
    __m512 p = _mm512_set1_ps(-0.000569671334233135f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0.004934519063681364f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0.026726989075541496f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(0.11280789226293564f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-0.37612414360046387f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.1283791065216064f));
    __m512 small = _mm512_mul_ps(p, t);
    /* 1 <= |x| < 4: erf(x) = 1 - exp(Q(|x|)). */
    __m512 u = _mm512_min_ps(t, _mm512_set1_ps(4.0f));
    __m512 q = _mm512_set1_ps(-6.5828579920435e-08f);
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(3.0952046472521033e-06f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-6.006879630149342e-05f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.0006733375485055149f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.005021044984459877f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.026999497786164284f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.1109074205160141f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.6310888528823853f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-1.1306045055389404f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.0004005004884675145f));
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f), cpu_exp512(q));
    __mmask16 is_big = _mm512_cmp_ps_mask(t, _mm512_set1_ps(1.0f), _CMP_GE_OQ);
    __mmask16 is_one = _mm512_cmp_ps_mask(t, _mm512_set1_ps(4.0f), _CMP_GE_OQ);
    __m512 r = _mm512_mask_blend_ps(is_big, small, big);
    r = _mm512_mask_blend_ps(is_one, r, _mm512_set1_ps(1.0f));
    /* Put the sign of x back; NaN in gives NaN out through small. */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sign));
}

/* 1 / (1 + e^-x), exact division so SiLU and tanh-GELU keep full F32 precision. */
static inline CPU_AVX512 __m512 cpu_sigmoid512(__m512 x)
{
    __m512 e = cpu_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* act(x) for a CPU_ACT_* (cpu_kernels.h); the tanh GELU as x * sigmoid(2y) (cpu_act.c). */
static inline CPU_AVX512 __m512 cpu_act512(int32_t act, __m512 x)
{
    switch (act) {
    case CPU_ACT_GELU: {
        __m512 e = cpu_erf512(_mm512_mul_ps(x, _mm512_set1_ps((float)M_SQRT1_2)));
        __m512 hx = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
        return _mm512_fmadd_ps(hx, e, hx);
    }
    case CPU_ACT_GELU_TANH: {
        __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
        __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(CPU_GELU_TANH_C), x3, x);
        y = _mm512_mul_ps(y, _mm512_set1_ps(2.0f * CPU_SQRT_2_OVER_PI));
        return _mm512_mul_ps(x, cpu_sigmoid512(y));
    }
    case CPU_ACT_RELU:
        return _mm512_max_ps(x, _mm512_setzero_ps());
    case CPU_ACT_SILU:
        return _mm512_mul_ps(x, cpu_sigmoid512(x));
    default:
        return x;
    }
}

/* Load n <= 16 floats (the rest zero). */
static inline CPU_AVX512 __m512 cpu_load512(const float *p, int64_t n)
{
    if (n >= 16) {
        return _mm512_loadu_ps(p);
    }
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}

static inline CPU_AVX512 void cpu_store512(float *p, __m512 v, int64_t n)
{
    if (n >= 16) {
        _mm512_storeu_ps(p, v);
    } else {
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v);
    }
}

/* Transpose the 16x16 block r in registers: r[i] lane c becomes r[c] lane i. */
static inline __attribute__((always_inline)) CPU_AVX512 void cpu_tr16_512(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

/* Widen 16 bf16 (bit patterns) to F32: bf16 is the high half of an F32. */
static inline CPU_AVX512 __m512 cpu_bf16x16_to_ps(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* 16 elements of p (of type dt: PTM_F32, PTM_BF16 or F16) from element k under mask m,
 * widened to F32; masked-off lanes are zero and not read. */
static inline __attribute__((always_inline)) CPU_AVX512 __m512 cpu_load_wide512(ptm_dtype dt,
                                                                                const void *p,
                                                                                int64_t k,
                                                                                __mmask16 m)
{
    if (dt == PTM_F32) {
        return _mm512_maskz_loadu_ps(m, (const float *)p + k);
    }
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k);
    return dt == PTM_BF16 ? cpu_bf16x16_to_ps(h) : _mm512_cvtph_ps(h);
}

/* dst[0..n) = src[0..n) widened from half precision dt (PTM_BF16, else F16) to F32, 16 at a
 * time, the tail under a mask. Both widenings are exact. */
static inline CPU_AVX512 void cpu_widen512(ptm_dtype dt, const void *src, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, m, cpu_load_wide512(dt, src, i, m));
    }
}

/* One block of 32 activations quantized as the Q8_0 product defines it (cpu_q8.c): ad = amax /
 * 127, q = rint(x * 127 / amax) clamped to +-127 (NaN becomes -127, as max_ps returns its
 * second operand); writes q[0..31], returns ad. The one copy of the rule both Q8_0 kernels
 * (cpu_q8.c, cpu_q8_outer.c) use. */
static inline CPU_AVX512 float cpu_q8_act_block512(const float *x, int8_t *q)
{
    const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    __m512 vid = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m512 v0 = _mm512_roundscale_ps(_mm512_mul_ps(x0, vid), _MM_FROUND_TO_NEAREST_INT);
    __m512 v1 = _mm512_roundscale_ps(_mm512_mul_ps(x1, vid), _MM_FROUND_TO_NEAREST_INT);
    v0 = _mm512_min_ps(_mm512_max_ps(v0, nlim), lim);
    v1 = _mm512_min_ps(_mm512_max_ps(v1, nlim), lim);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v0)));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v1)));
    return amax / 127.0f;
}

/* ---- AVX2 + FMA: the same approximations on 8 lanes ---- */

/* Lanes [0, n) set, n in 0..8: the mask for maskload/maskstore tails. */
static inline CPU_AVX2 __m256i cpu_mask256(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 8 ? n : 8)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline CPU_AVX2 __m256 cpu_load256(const float *p, int64_t n)
{
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, cpu_mask256(n));
}

static inline CPU_AVX2 void cpu_store256(float *p, __m256 v, int64_t n)
{
    if (n >= 8) {
        _mm256_storeu_ps(p, v);
    } else {
        _mm256_maskstore_ps(p, cpu_mask256(n), v);
    }
}

static inline CPU_AVX2 float cpu_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline CPU_AVX2 float cpu_hmax256(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x for x in [-87.3, 88.3] (clamped outside): 2^n is built in the exponent field, which
 * stays normal in that range. */
static inline CPU_AVX2 __m256 cpu_exp256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline CPU_AVX2 __m256 cpu_erf256(__m256 x)
{
    __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    __m256 t = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256 s = _mm256_mul_ps(t, t);
    __m256 p = _mm256_set1_ps(-0.000569671334233135f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.004934519063681364f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.026726989075541496f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.11280789226293564f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.37612414360046387f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.1283791065216064f));
    __m256 small = _mm256_mul_ps(p, t);
    __m256 u = _mm256_min_ps(t, _mm256_set1_ps(4.0f));
    __m256 q = _mm256_set1_ps(-6.5828579920435e-08f);
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(3.0952046472521033e-06f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-6.006879630149342e-05f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(0.0006733375485055149f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.005021044984459877f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(0.026999497786164284f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.1109074205160141f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.6310888528823853f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-1.1306045055389404f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(0.0004005004884675145f));
    __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f), cpu_exp256(q));
    __m256 r = _mm256_blendv_ps(small, big, _mm256_cmp_ps(t, _mm256_set1_ps(1.0f), _CMP_GE_OQ));
    r = _mm256_blendv_ps(r, _mm256_set1_ps(1.0f),
                         _mm256_cmp_ps(t, _mm256_set1_ps(4.0f), _CMP_GE_OQ));
    return _mm256_or_ps(r, sign);
}

static inline CPU_AVX2 __m256 cpu_sigmoid256(__m256 x)
{
    __m256 e = cpu_exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

#endif /* PTM_CPU_SIMD_H */
