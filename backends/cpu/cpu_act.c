/*
 * cpu_act.c - pointwise activations (GELU exact and tanh forms, ReLU, SiLU) and their gated
 * forms act(gate) * up, in a scalar path that follows PyTorch's float formulas with libm and
 * AVX-512 and AVX2 paths built on cpu_simd.h. The GEMM epilogue calls cpu_act_row on cache-hot
 * tiles.
 *
 * The AVX-512 tanh-GELU uses 0.5 x (1 + tanh(y)) = x * sigmoid(2y), which avoids the
 * cancellation of 1 + tanh near y << 0; both sides agree to a few F32 ulps.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>

static float act_scalar(int32_t act, float x)
{
    switch (act) {
    case CPU_ACT_GELU:
        return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    case CPU_ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(CPU_SQRT_2_OVER_PI * (x + CPU_GELU_TANH_C * x * x * x)));
    case CPU_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case CPU_ACT_SILU:
        return x / (1.0f + expf(-x));
    default:
        return x;
    }
}

static CPU_AVX512 void act_row_512(int32_t act, int64_t n, const float *x, float *out)
{
    for (int64_t i = 0; i < n; i += 16) {
        cpu_store512(out + i, cpu_act512(act, cpu_load512(x + i, n - i)), n - i);
    }
}

static CPU_AVX512 void gated_row_512(int32_t act, int64_t n, const float *gate, const float *up,
                                     float *out)
{
    for (int64_t i = 0; i < n; i += 16) {
        __m512 g = cpu_act512(act, cpu_load512(gate + i, n - i));
        cpu_store512(out + i, _mm512_mul_ps(g, cpu_load512(up + i, n - i)), n - i);
    }
}

static inline CPU_AVX2 __m256 act_256(int32_t act, __m256 x)
{
    switch (act) {
    case CPU_ACT_GELU: {
        __m256 e = cpu_erf256(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2)));
        __m256 hx = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
        return _mm256_fmadd_ps(hx, e, hx);
    }
    case CPU_ACT_GELU_TANH: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(CPU_GELU_TANH_C), x3, x);
        y = _mm256_mul_ps(y, _mm256_set1_ps(2.0f * CPU_SQRT_2_OVER_PI));
        return _mm256_mul_ps(x, cpu_sigmoid256(y));
    }
    case CPU_ACT_RELU:
        return _mm256_max_ps(x, _mm256_setzero_ps());
    case CPU_ACT_SILU:
        return _mm256_mul_ps(x, cpu_sigmoid256(x));
    default:
        return x;
    }
}

static CPU_AVX2 void act_row_256(int32_t act, int64_t n, const float *x, float *out)
{
    for (int64_t i = 0; i < n; i += 8) {
        cpu_store256(out + i, act_256(act, cpu_load256(x + i, n - i)), n - i);
    }
}

static CPU_AVX2 void gated_row_256(int32_t act, int64_t n, const float *gate, const float *up,
                                   float *out)
{
    for (int64_t i = 0; i < n; i += 8) {
        __m256 g = act_256(act, cpu_load256(gate + i, n - i));
        cpu_store256(out + i, _mm256_mul_ps(g, cpu_load256(up + i, n - i)), n - i);
    }
}

void cpu_act_row(int32_t isa, int32_t act, int64_t n, const float *x, float *out)
{
    if (act == CPU_ACT_NONE) {
        for (int64_t i = 0; i < n && out != x; i++) {
            out[i] = x[i];
        }
        return;
    }
    if (isa >= CPU_ISA_AVX512) {
        act_row_512(act, n, x, out);
        return;
    }
    if (isa == CPU_ISA_AVX2) {
        act_row_256(act, n, x, out);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        out[i] = act_scalar(act, x[i]);
    }
}

struct act_job {
    int32_t isa, act;
    const float *x, *up;
    float *out;
};

static void act_slice(void *arg, int64_t lo, int64_t hi)
{
    const struct act_job *j = arg;
    if (j->up) {
        if (j->isa >= CPU_ISA_AVX512) {
            gated_row_512(j->act, hi - lo, j->x + lo, j->up + lo, j->out + lo);
            return;
        }
        if (j->isa == CPU_ISA_AVX2) {
            gated_row_256(j->act, hi - lo, j->x + lo, j->up + lo, j->out + lo);
            return;
        }
        for (int64_t i = lo; i < hi; i++) {
            j->out[i] = act_scalar(j->act, j->x[i]) * j->up[i];
        }
        return;
    }
    cpu_act_row(j->isa, j->act, hi - lo, j->x + lo, j->out + lo);
}

void cpu_act(const cpu_ctx *ctx, int32_t act, int64_t n, const float *x, float *out)
{
    struct act_job j = {ctx->isa, act, x, NULL, out};
    cpu_pool_range(ctx->pool, n, 4096, act_slice, &j);
}

void cpu_act_gated(const cpu_ctx *ctx, int32_t act, int64_t n, const float *gate, const float *up,
                   float *out)
{
    struct act_job j = {ctx->isa, act, gate, up, out};
    cpu_pool_range(ctx->pool, n, 4096, act_slice, &j);
}
