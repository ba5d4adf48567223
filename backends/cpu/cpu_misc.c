/*
 * cpu_misc.c - the small kernels: elementwise add/mul/scale, embedding gather, RoPE, and
 * F32/F16/BF16 conversion with torch's round-to-nearest-even.
 *
 * These are memory bound, so the AVX-512 forms only matter for conversion (F16C and bit
 * arithmetic on 16 lanes); the rest are plain loops that the compiler vectorises for the
 * baseline ISA, split across the pool in large slices.
 */
#include "cpu_kernels.h"
#include "cpu_simd.h"

#include <math.h>
#include <string.h>

/* ---- scalar conversions ---- */

float cpu_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

uint16_t cpu_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN, sign kept */
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float cpu_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        float f = (float)mant * 0x1p-24f; /* zero or subnormal: exact in F32 */
        memcpy(&u, &f, sizeof(u));
        u |= sign;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Round to nearest even, after F. Giesen's float_to_half_fast3_rtne (public domain). */
uint16_t cpu_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= (127u + 16u) << 23) {
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < 113u << 23) {
        const uint32_t magic_u = ((127u - 15u) + (23u - 10u) + 1u) << 23;
        float magic, v;
        memcpy(&magic, &magic_u, sizeof(magic));
        memcpy(&v, &u, sizeof(v));
        v += magic;
        memcpy(&u, &v, sizeof(u));
        o = (uint16_t)(u - magic_u);
    } else {
        uint32_t mant_odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu + mant_odd;
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

/* ---- elementwise ---- */

enum { EW_ADD, EW_MUL, EW_SCALE };

struct ew_job {
    int op;
    const float *a, *b;
    float s;
    float *out;
};

static void ew_slice(void *arg, int64_t lo, int64_t hi)
{
    const struct ew_job *j = arg;
    const float *a = j->a, *b = j->b;
    float *out = j->out;
    switch (j->op) {
    case EW_ADD:
        for (int64_t i = lo; i < hi; i++) {
            out[i] = a[i] + b[i];
        }
        break;
    case EW_MUL:
        for (int64_t i = lo; i < hi; i++) {
            out[i] = a[i] * b[i];
        }
        break;
    default:
        for (int64_t i = lo; i < hi; i++) {
            out[i] = a[i] * j->s;
        }
        break;
    }
}

void cpu_add(const cpu_ctx *ctx, int64_t n, const float *a, const float *b, float *out)
{
    struct ew_job j = {EW_ADD, a, b, 0.0f, out};
    cpu_pool_range(ctx->pool, n, 16384, ew_slice, &j);
}

void cpu_mul(const cpu_ctx *ctx, int64_t n, const float *a, const float *b, float *out)
{
    struct ew_job j = {EW_MUL, a, b, 0.0f, out};
    cpu_pool_range(ctx->pool, n, 16384, ew_slice, &j);
}

void cpu_scale(const cpu_ctx *ctx, int64_t n, const float *x, float s, float *out)
{
    struct ew_job j = {EW_SCALE, x, NULL, s, out};
    cpu_pool_range(ctx->pool, n, 16384, ew_slice, &j);
}

/* ---- conversion ---- */

struct conv_job {
    int32_t isa;
    const void *src;
    ptm_dtype sdt;
    void *dst;
    ptm_dtype ddt;
};

static CPU_AVX512 int64_t conv_512(const struct conv_job *j, int64_t lo, int64_t hi)
{
    int64_t i = lo;
    if (j->sdt == PTM_F32 && j->ddt == PTM_F16) {
        for (; i + 16 <= hi; i += 16) {
            __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps((const float *)j->src + i),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm256_storeu_si256((__m256i *)((uint16_t *)j->dst + i), h);
        }
    } else if (j->sdt != PTM_F32 && j->ddt == PTM_F32) {
        cpu_widen512(j->sdt, (const uint16_t *)j->src + lo, hi - lo, (float *)j->dst + lo);
        i = hi;
    }
    return i;
}

static float conv_load(const void *src, ptm_dtype dt, int64_t i)
{
    if (dt == PTM_F32) {
        return ((const float *)src)[i];
    }
    uint16_t h = ((const uint16_t *)src)[i];
    return dt == PTM_BF16 ? cpu_bf16_to_f32(h) : cpu_f16_to_f32(h);
}

static void conv_slice(void *arg, int64_t lo, int64_t hi)
{
    const struct conv_job *j = arg;
    int64_t i = j->isa >= CPU_ISA_AVX512 ? conv_512(j, lo, hi) : lo;
    for (; i < hi; i++) {
        float f = conv_load(j->src, j->sdt, i);
        if (j->ddt == PTM_F32) {
            ((float *)j->dst)[i] = f;
        } else if (j->sdt == j->ddt) {
            ((uint16_t *)j->dst)[i] = ((const uint16_t *)j->src)[i];
        } else {
            ((uint16_t *)j->dst)[i] = j->ddt == PTM_BF16 ? cpu_f32_to_bf16(f) : cpu_f32_to_f16(f);
        }
    }
}

static CPU_AVX512 void widen_any_512(ptm_dtype dt, const void *src, int64_t n, float *dst)
{
    cpu_widen512(dt, src, n, dst);
}

void cpu_widen(int32_t isa, int64_t n, const void *src, ptm_dtype src_dtype, float *dst)
{
    /* Attention calls this per cache row of one head (64 elements): straight to the loop. */
    if (isa >= CPU_ISA_AVX512 && src_dtype != PTM_F32) {
        widen_any_512(src_dtype, src, n, dst);
        return;
    }
    struct conv_job j = {isa, src, src_dtype, dst, PTM_F32};
    conv_slice(&j, 0, n);
}

static int conv_dtype_ok(ptm_dtype dt)
{
    return dt == PTM_F32 || dt == PTM_F16 || dt == PTM_BF16;
}

ptm_status cpu_convert(const cpu_ctx *ctx, int64_t n, const void *src, ptm_dtype src_dtype,
                       void *dst, ptm_dtype dst_dtype)
{
    if (!conv_dtype_ok(src_dtype) || !conv_dtype_ok(dst_dtype)) {
        const char *s = ptm_dtype_name(src_dtype), *d = ptm_dtype_name(dst_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED, "cpu: convert %s to %s; expected F32, F16 or BF16",
                             s ? s : "?", d ? d : "?");
    }
    struct conv_job j = {ctx->isa, src, src_dtype, dst, dst_dtype};
    cpu_pool_range(ctx->pool, n, 16384, conv_slice, &j);
    return PTM_OK;
}

/* ---- embedding gather ---- */

struct gather_job {
    int32_t isa;
    const void *ids;
    ptm_dtype id_dtype;
    const void *table;
    ptm_dtype tdt;
    int64_t dim;
    float *out;
};

static int64_t gather_id(const void *ids, ptm_dtype dt, int64_t i)
{
    return dt == PTM_I32 ? (int64_t)((const int32_t *)ids)[i] : ((const int64_t *)ids)[i];
}

static void gather_rows(void *arg, int64_t lo, int64_t hi)
{
    const struct gather_job *j = arg;
    size_t esize = j->tdt == PTM_F32 ? 4 : 2;
    for (int64_t i = lo; i < hi; i++) {
        int64_t id = gather_id(j->ids, j->id_dtype, i);
        const char *row = (const char *)j->table + (size_t)id * (size_t)j->dim * esize;
        struct conv_job c = {j->isa, row, j->tdt, j->out + i * j->dim, PTM_F32};
        conv_slice(&c, 0, j->dim);
    }
}

ptm_status cpu_embed_gather(const cpu_ctx *ctx, int64_t n_ids, const void *ids, ptm_dtype id_dtype,
                            const void *table, ptm_dtype table_dtype, int64_t n_rows, int64_t dim,
                            float *out)
{
    if ((id_dtype != PTM_I32 && id_dtype != PTM_I64) || !conv_dtype_ok(table_dtype)) {
        const char *s = ptm_dtype_name(id_dtype), *d = ptm_dtype_name(table_dtype);
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "cpu: embedding: ids %s, table %s; expected "
                             "I32/I64 ids and an F32/F16/BF16 table",
                             s ? s : "?", d ? d : "?");
    }
    for (int64_t i = 0; i < n_ids; i++) {
        int64_t id = gather_id(ids, id_dtype, i);
        if (id < 0 || id >= n_rows) {
            return ptm_error_set(PTM_E_RANGE,
                                 "cpu: embedding: id %lld at position %lld outside "
                                 "the table's %lld rows",
                                 (long long)id, (long long)i, (long long)n_rows);
        }
    }
    struct gather_job j = {ctx->isa, ids, id_dtype, table, table_dtype, dim, out};
    cpu_pool_range(ctx->pool, n_ids, 1, gather_rows, &j);
    return PTM_OK;
}

/* ---- RoPE ---- */

struct rope_job {
    int64_t n_heads, rot;
    float *x;
    int64_t ts, hs;
    const int64_t *pos;
    float theta;
};

static void rope_tokens(void *arg, int64_t lo, int64_t hi)
{
    const struct rope_job *j = arg;
    int64_t half = j->rot / 2;
    for (int64_t t = lo; t < hi; t++) {
        for (int64_t i = 0; i < half; i++) {
            /* HF: inv_freq = 1 / base ** (arange(0, dim, 2) / dim), all F32. */
            float inv_freq = 1.0f / powf(j->theta, (float)(2 * i) / (float)j->rot);
            float ang = (float)j->pos[t] * inv_freq;
            float c = cosf(ang), s = sinf(ang);
            for (int64_t h = 0; h < j->n_heads; h++) {
                float *x = j->x + t * j->ts + h * j->hs;
                float x1 = x[i], x2 = x[i + half];
                x[i] = x1 * c - x2 * s;
                x[i + half] = x2 * c + x1 * s;
            }
        }
    }
}

void cpu_rope(const cpu_ctx *ctx, int64_t n_tokens, int64_t n_heads, int64_t rot, float *x,
              int64_t ts, int64_t hs, const int64_t *pos, float theta)
{
    struct rope_job j = {n_heads, rot, x, ts, hs, pos, theta};
    cpu_pool_range(ctx->pool, n_tokens, 1, rope_tokens, &j);
}

/* The general form: inv_freq given (any rope_scaling applied by the caller), cos and sin
 * scaled by attn_factor, rotate-half (neox) or interleaved pairs. */
struct rope_freq_job {
    int64_t n_heads, rot;
    float *x;
    int64_t ts, hs;
    const int64_t *pos;
    const float *inv_freq;
    float attn_factor;
    int32_t neox;
};

static void rope_freq_tokens(void *arg, int64_t lo, int64_t hi)
{
    const struct rope_freq_job *j = arg;
    int64_t half = j->rot / 2;
    for (int64_t t = lo; t < hi; t++) {
        for (int64_t i = 0; i < half; i++) {
            /* HF: freqs = position.float() * inv_freq; cos = freqs.cos() * attention_scaling. */
            float ang = (float)j->pos[t] * j->inv_freq[i];
            float c = cosf(ang) * j->attn_factor, s = sinf(ang) * j->attn_factor;
            int64_t a = j->neox ? i : 2 * i, b = j->neox ? i + half : 2 * i + 1;
            for (int64_t h = 0; h < j->n_heads; h++) {
                float *x = j->x + t * j->ts + h * j->hs;
                float x1 = x[a], x2 = x[b];
                x[a] = x1 * c - x2 * s;
                x[b] = x2 * c + x1 * s;
            }
        }
    }
}

void cpu_rope_freqs(const cpu_ctx *ctx, int64_t n_tokens, int64_t n_heads, int64_t rot, float *x,
                    int64_t ts, int64_t hs, const int64_t *pos, const float *inv_freq,
                    float attn_factor, int32_t neox)
{
    struct rope_freq_job j = {n_heads, rot, x, ts, hs, pos, inv_freq, attn_factor, neox};
    cpu_pool_range(ctx->pool, n_tokens, 1, rope_freq_tokens, &j);
}
