/*
 * cpu_norm.c - row normalisations: LayerNorm with an optional fused residual add, RMSNorm
 * (LLaMA, T5) with the same, and the numerically stable softmax over the last dimension.
 *
 * Each row is independent, so rows are split across the pool. Statistics are two-pass
 * (mean, then mean of squared deviations) in F32 like torch's CPU kernels, which keeps
 * the variance accurate when |mean| >> std. Scalar, AVX2 and AVX-512 forms compute the same
 * sums in different orders, so they agree to F32 rounding, not bit for bit.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>

struct norm_job {
    int32_t isa;
    int64_t n;
    const float *x;
    int64_t ldx;
    const float *r;
    int64_t ldr;
    const float *gamma, *beta;
    float eps;
    float *out;
    int64_t ldo;
    float *sum_out;
    int64_t lds;
    int rms;
};

/* t = x + r (or x); returns sum and leaves t in dst. */
static CPU_AVX512 float row_sum_512(int64_t n, const float *x, const float *r, float *dst)
{
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __m512 v = cpu_load512(x + i, n - i);
        if (r) {
            v = _mm512_add_ps(v, cpu_load512(r + i, n - i));
        }
        cpu_store512(dst + i, v, n - i);
        s = _mm512_add_ps(s, v);
    }
    return _mm512_reduce_add_ps(s);
}

static CPU_AVX512 float row_sqdev_512(int64_t n, const float *t, float mean)
{
    __m512 s = _mm512_setzero_ps();
    __m512 m = _mm512_set1_ps(mean);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, t + i), m);
        s = _mm512_fmadd_ps(d, d, s);
    }
    return _mm512_reduce_add_ps(s);
}

static CPU_AVX512 void row_affine_512(int64_t n, const float *t, float mean, float inv,
                                      const float *g, const float *b, float *out)
{
    __m512 m = _mm512_set1_ps(mean), iv = _mm512_set1_ps(inv);
    for (int64_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(cpu_load512(t + i, n - i), m), iv);
        if (g) {
            v = _mm512_mul_ps(v, cpu_load512(g + i, n - i));
        }
        if (b) {
            v = _mm512_add_ps(v, cpu_load512(b + i, n - i));
        }
        cpu_store512(out + i, v, n - i);
    }
}

static CPU_AVX512 void norm_row_512(const struct norm_job *j, const float *x, const float *r,
                                    float *t, float *out)
{
    int64_t n = j->n;
    float sum = row_sum_512(n, x, r, t);
    float mean = j->rms ? 0.0f : sum / (float)n;
    float var = row_sqdev_512(n, t, mean) / (float)n;
    float inv = 1.0f / sqrtf(var + j->eps);
    row_affine_512(n, t, mean, inv, j->gamma, j->rms ? NULL : j->beta, out);
}

static CPU_AVX2 void norm_row_256(const struct norm_job *j, const float *x, const float *r,
                                  float *t, float *out)
{
    int64_t n = j->n;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = cpu_load256(x + i, n - i);
        if (r) {
            v = _mm256_add_ps(v, cpu_load256(r + i, n - i));
        }
        cpu_store256(t + i, v, n - i);
        acc = _mm256_add_ps(acc, v);
    }
    float mean = j->rms ? 0.0f : cpu_hsum256(acc) / (float)n;
    __m256 m = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        /* Lanes past n load as 0; the mask keeps them from adding mean^2. */
        __m256 d = _mm256_and_ps(_mm256_sub_ps(cpu_load256(t + i, n - i), m),
                                 _mm256_castsi256_ps(cpu_mask256(n - i)));
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    __m256 iv = _mm256_set1_ps(1.0f / sqrtf(cpu_hsum256(acc) / (float)n + j->eps));
    const float *g = j->gamma, *b = j->rms ? NULL : j->beta;
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(cpu_load256(t + i, n - i), m), iv);
        if (g) {
            v = _mm256_mul_ps(v, cpu_load256(g + i, n - i));
        }
        if (b) {
            v = _mm256_add_ps(v, cpu_load256(b + i, n - i));
        }
        cpu_store256(out + i, v, n - i);
    }
}

static void norm_row_scalar(const struct norm_job *j, const float *x, const float *r, float *t,
                            float *out)
{
    int64_t n = j->n;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        t[i] = r ? x[i] + r[i] : x[i];
        sum += t[i];
    }
    float mean = j->rms ? 0.0f : sum / (float)n;
    float var = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        var += (t[i] - mean) * (t[i] - mean);
    }
    float inv = 1.0f / sqrtf(var / (float)n + j->eps);
    for (int64_t i = 0; i < n; i++) {
        float v = (t[i] - mean) * inv;
        v = j->gamma ? v * j->gamma[i] : v;
        out[i] = (j->beta && !j->rms) ? v + j->beta[i] : v;
    }
}

/* Rows per slice: at least ~16K elements, so small inputs stay on the calling thread. */
static int64_t norm_grain(int64_t n)
{
    return n >= 16384 ? 1 : 16384 / (n > 0 ? n : 1);
}

static void norm_rows(void *arg, int64_t lo, int64_t hi)
{
    const struct norm_job *j = arg;
    for (int64_t row = lo; row < hi; row++) {
        const float *x = j->x + row * j->ldx;
        const float *r = j->r ? j->r + row * j->ldr : NULL;
        float *out = j->out + row * j->ldo;
        /* The pre-norm sum goes to sum_out when asked, else into out, which the affine pass
         * then overwrites element by element. */
        float *t = j->sum_out ? j->sum_out + row * j->lds : out;
        if (j->isa >= CPU_ISA_AVX512) {
            norm_row_512(j, x, r, t, out);
        } else if (j->isa == CPU_ISA_AVX2) {
            norm_row_256(j, x, r, t, out);
        } else {
            norm_row_scalar(j, x, r, t, out);
        }
    }
}

void cpu_layer_norm(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                    const float *residual, int64_t ldr, const float *gamma, const float *beta,
                    float eps, float *out, int64_t ldo)
{
    struct norm_job j = {ctx->isa, n,   x,   ldx, residual, ldr, gamma,
                         beta,     eps, out, ldo, NULL,     0,   0};
    cpu_pool_range(ctx->pool, rows, norm_grain(n), norm_rows, &j);
}

void cpu_rms_norm(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                  const float *residual, int64_t ldr, const float *weight, float eps, float *out,
                  int64_t ldo, float *sum_out, int64_t lds)
{
    struct norm_job j = {ctx->isa, n,   x,   ldx, residual, ldr, weight,
                         NULL,     eps, out, ldo, sum_out,  lds, 1};
    cpu_pool_range(ctx->pool, rows, norm_grain(n), norm_rows, &j);
}

/* ---- softmax ---- */

struct softmax_job {
    int32_t isa;
    int64_t n;
    const float *x;
    int64_t ldx;
    float *out;
    int64_t ldo;
};

static CPU_AVX512 void softmax_row_512(int64_t n, const float *x, float *out)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        mx = _mm512_mask_max_ps(mx, k, mx, _mm512_maskz_loadu_ps(k, x + i));
    }
    float m = _mm512_reduce_max_ps(mx);
    if (m == -INFINITY) {
        m = 0.0f; /* every entry -inf: exp gives 0 and the row becomes 0, not NaN */
    }
    __m512 vm = _mm512_set1_ps(m), s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 e = cpu_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        e = _mm512_maskz_mov_ps(k, e);
        s = _mm512_add_ps(s, e);
        _mm512_mask_storeu_ps(out + i, k, e);
    }
    float sum = _mm512_reduce_add_ps(s);
    __m512 inv = _mm512_set1_ps(sum > 0.0f ? 1.0f / sum : 0.0f);
    for (int64_t i = 0; i < n; i += 16) {
        cpu_store512(out + i, _mm512_mul_ps(cpu_load512(out + i, n - i), inv), n - i);
    }
}

static CPU_AVX2 void softmax_row_256(int64_t n, const float *x, float *out)
{
    __m256 ninf = _mm256_set1_ps(-INFINITY), mx = ninf;
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_blendv_ps(ninf, cpu_load256(x + i, n - i),
                                    _mm256_castsi256_ps(cpu_mask256(n - i)));
        mx = _mm256_max_ps(mx, v);
    }
    float m = cpu_hmax256(mx);
    if (m == -INFINITY) {
        m = 0.0f;
    }
    __m256 vm = _mm256_set1_ps(m), s = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = cpu_load256(x + i, n - i);
        /* -inf (masked) entries must give exactly 0, below exp's clamp. */
        __m256 keep = _mm256_and_ps(_mm256_cmp_ps(v, ninf, _CMP_NEQ_OQ),
                                    _mm256_castsi256_ps(cpu_mask256(n - i)));
        __m256 e = _mm256_and_ps(cpu_exp256(_mm256_sub_ps(v, vm)), keep);
        s = _mm256_add_ps(s, e);
        cpu_store256(out + i, e, n - i);
    }
    float sum = cpu_hsum256(s);
    __m256 inv = _mm256_set1_ps(sum > 0.0f ? 1.0f / sum : 0.0f);
    for (int64_t i = 0; i < n; i += 8) {
        cpu_store256(out + i, _mm256_mul_ps(cpu_load256(out + i, n - i), inv), n - i);
    }
}

static void softmax_row_scalar(int64_t n, const float *x, float *out)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    if (m == -INFINITY) {
        m = 0.0f;
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        out[i] = expf(x[i] - m);
        sum += out[i];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        out[i] *= inv;
    }
}

static void softmax_rows(void *arg, int64_t lo, int64_t hi)
{
    const struct softmax_job *j = arg;
    for (int64_t row = lo; row < hi; row++) {
        if (j->isa >= CPU_ISA_AVX512) {
            softmax_row_512(j->n, j->x + row * j->ldx, j->out + row * j->ldo);
        } else if (j->isa == CPU_ISA_AVX2) {
            softmax_row_256(j->n, j->x + row * j->ldx, j->out + row * j->ldo);
        } else {
            softmax_row_scalar(j->n, j->x + row * j->ldx, j->out + row * j->ldo);
        }
    }
}

void cpu_softmax(const cpu_ctx *ctx, int64_t rows, int64_t n, const float *x, int64_t ldx,
                 float *out, int64_t ldo)
{
    struct softmax_job j = {ctx->isa, n, x, ldx, out, ldo};
    cpu_pool_range(ctx->pool, rows, norm_grain(n), softmax_rows, &j);
}
