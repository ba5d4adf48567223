/*
 * half.c - scalar F32 <-> F16 / BF16 conversions (IEEE 754 binary16; bfloat16 is the top
 * half of binary32). Rounding is to nearest, ties to even; NaN stays NaN.
 */
#include "half.h"

#include <stdint.h>
#include <string.h>

static uint16_t to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    }
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static uint16_t to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    }
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) {
        return (uint16_t)(sign | 0x7c00u);
    }
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) {
            return (uint16_t)sign;
        }
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) {
            half++;
        }
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) {
        half++; /* may carry into the exponent, which is the right rounding */
    }
    return (uint16_t)half;
}

static float from_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            x = sign | (exp << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void ptm__f32_to_dtype(void *dst, const float *src, size_t n, ptm_dtype dtype)
{
    if (dtype == PTM_F32) {
        memmove(dst, src, n * sizeof *src);
        return;
    }
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i++) { /* forward in place is safe: d[i] lies before src[i+1] */
        float f = src[i];
        d[i] = dtype == PTM_BF16 ? to_bf16(f) : to_f16(f);
    }
}

void ptm__dtype_to_f32(float *dst, const void *src, size_t n, ptm_dtype dtype)
{
    if (dtype == PTM_F32) {
        memmove(dst, src, n * sizeof *dst);
        return;
    }
    const uint16_t *s = src;
    for (size_t i = n; i-- > 0;) { /* backward so dst may alias src */
        uint16_t h = s[i];
        if (dtype == PTM_BF16) {
            uint32_t x = (uint32_t)h << 16;
            memcpy(&dst[i], &x, 4);
        } else {
            dst[i] = from_f16(h);
        }
    }
}
