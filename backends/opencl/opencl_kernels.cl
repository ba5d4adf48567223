/*
 * opencl_kernels.cl - every kernel of the OpenCL backend, in OpenCL C 1.2: matmul with bias and
 * fused activation, unary, binary, scale, layer/RMS norm, softmax, embedding gather, attention,
 * RoPE and dtype conversion. It owns the arithmetic only; which layouts reach a kernel, and
 * every argument check, is opencl_backend.c's job. The build embeds this file as a C string.
 *
 * Conventions: activations are F32; buffers are passed with an element offset (a kview's byte
 * offset need not meet CL_DEVICE_MEM_BASE_ADDR_ALIGN, so no sub-buffers); strides are in
 * elements. Weights may be F32, F16 (vload_half, core since OpenCL 1.0) or BF16 (the high half
 * of an F32). Numerics follow backends/cpu/cpu_kernels.h.
 */

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

#define ACT_GELU 1
#define ACT_GELU_TANH 2
#define ACT_RELU 3
#define ACT_SILU 4
#define ACT_TANH 5

float load_w(__global const void *p, int dt, long i)
{
    if (dt == DT_F16) {
        return vload_half(i, (__global const half *)p);
    }
    if (dt == DT_BF16) {
        return as_float((uint)((__global const ushort *)p)[i] << 16);
    }
    return ((__global const float *)p)[i];
}

float act_apply(int act, float x)
{
    switch (act) {
    case ACT_GELU:
        return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
    case ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case ACT_SILU:
        return x / (1.0f + exp(-x));
    case ACT_TANH:
        return tanh(x);
    default:
        return x;
    }
}

/* ---- matmul: out[M, N] = act(a[M, K] . op(b) + bias) ---------------------------------- */

#define TS 16

/* trans != 0: b is [N, K] with row stride ldb; else [K, N]. One 16x16 tile per work-group. */
__kernel void k_matmul(__global float *out, ulong o_off, long ldo, __global const float *a,
                     ulong a_off, long lda, __global const void *b, ulong b_off, long ldb,
                     int b_dt, int trans, __global const float *bias, ulong bias_off, int act,
                     long M, long N, long K)
{
    __local float ta[TS][TS + 1];
    __local float tb[TS][TS + 1];
    const int lr = get_local_id(1), lc = get_local_id(0);
    const long row = get_group_id(1) * TS + lr, col = get_group_id(0) * TS + lc;
    const long brow = get_group_id(0) * TS + lr; /* the n this work-item loads when trans */
    float acc = 0.0f;
    for (long k0 = 0; k0 < K; k0 += TS) {
        long ka = k0 + lc;
        ta[lr][lc] = row < M && ka < K ? a[a_off + row * lda + ka] : 0.0f;
        if (trans) {
            /* tb[k][n]: work-item (lr, lc) loads n = brow, k = k0 + lc (reads along K). */
            tb[lc][lr] = brow < N && ka < K ? load_w(b, b_dt, b_off + brow * ldb + ka) : 0.0f;
        } else {
            long kb = k0 + lr;
            tb[lr][lc] = kb < K && col < N ? load_w(b, b_dt, b_off + kb * ldb + col) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TS; k++) {
            acc = fma(ta[lr][k], tb[k][lc], acc);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < M && col < N) {
        if (bias != 0) {
            acc += bias[bias_off + col];
        }
        out[o_off + row * ldo + col] = act_apply(act, acc);
    }
}

/* ---- elementwise ------------------------------------------------------------------------- */

__kernel void k_unary(__global float *out, ulong o_off, __global const float *x, ulong x_off,
                    int op, long n)
{
    long i = get_global_id(0);
    if (i < n) {
        out[o_off + i] = act_apply(op, x[x_off + i]);
    }
}

/* op 1: add, 2: mul; b repeats every nb elements (b's shape is a suffix of a's). */
__kernel void k_binary(__global float *out, ulong o_off, __global const float *a, ulong a_off,
                     __global const float *b, ulong b_off, int op, long n, long nb)
{
    long i = get_global_id(0);
    if (i < n) {
        float x = a[a_off + i], y = b[b_off + i % nb];
        out[o_off + i] = op == 1 ? x + y : x * y;
    }
}

__kernel void k_scale(__global float *out, ulong o_off, __global const float *x, ulong x_off,
                    float s, long n)
{
    long i = get_global_id(0);
    if (i < n) {
        out[o_off + i] = x[x_off + i] * s;
    }
}

/* ---- row reductions: one work-group (power-of-two size) per row ---------------------------- */

#define RED_MAX 256

float group_sum(__local float *buf, float v)
{
    const int l = get_local_id(0), n = get_local_size(0);
    buf[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (l < s) {
            buf[l] += buf[l + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

float group_max(__local float *buf, float v)
{
    const int l = get_local_id(0), n = get_local_size(0);
    buf[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (l < s) {
            buf[l] = fmax(buf[l], buf[l + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* kind 1: LayerNorm (two-pass mean and biased variance, as torch); 2: RMSNorm. res and bias
 * may be null. */
__kernel void k_norm(int kind, __global float *out, ulong o_off, long ldo, __global const float *x,
                   ulong x_off, long ldx, __global const float *res, ulong r_off, long ldr,
                   __global const float *w, ulong w_off, __global const float *bias,
                   ulong b_off, float eps, long n)
{
    __local float buf[RED_MAX];
    const long r = get_group_id(0);
    const int l = get_local_id(0), ls = get_local_size(0);
    __global const float *xr = x + x_off + r * ldx;
    __global const float *rr = res != 0 ? res + r_off + r * ldr : 0;
    __global float *orow = out + o_off + r * ldo;
    float mean = 0.0f, s = 0.0f;
    if (kind == 1) {
        for (long i = l; i < n; i += ls) {
            s += xr[i] + (rr != 0 ? rr[i] : 0.0f);
        }
        mean = group_sum(buf, s) / (float)n;
        s = 0.0f;
    }
    for (long i = l; i < n; i += ls) {
        float v = xr[i] + (rr != 0 ? rr[i] : 0.0f) - mean;
        s += v * v;
    }
    float inv = rsqrt(group_sum(buf, s) / (float)n + eps);
    for (long i = l; i < n; i += ls) {
        float v = (xr[i] + (rr != 0 ? rr[i] : 0.0f) - mean) * inv * w[w_off + i];
        orow[i] = bias != 0 ? v + bias[b_off + i] : v;
    }
}

__kernel void k_softmax(__global float *out, ulong o_off, long ldo, __global const float *x,
                      ulong x_off, long ldx, long n)
{
    __local float buf[RED_MAX];
    const long r = get_group_id(0);
    const int l = get_local_id(0), ls = get_local_size(0);
    __global const float *xr = x + x_off + r * ldx;
    __global float *orow = out + o_off + r * ldo;
    float m = -INFINITY;
    for (long i = l; i < n; i += ls) {
        m = fmax(m, xr[i]);
    }
    m = group_max(buf, m);
    float s = 0.0f;
    for (long i = l; i < n; i += ls) {
        s += exp(xr[i] - m);
    }
    float inv = 1.0f / group_sum(buf, s);
    for (long i = l; i < n; i += ls) {
        orow[i] = exp(xr[i] - m) * inv;
    }
}

/* ---- gather ------------------------------------------------------------------------------ */

/* ids were range-checked on the host. id_i64: ids are I64, else I32. */
__kernel void k_embedding(__global float *out, ulong o_off, __global const void *table,
                        ulong t_off, int t_dt, __global const void *ids, ulong i_off, int id_i64,
                        long n_ids, long dim)
{
    long e = get_global_id(0);
    if (e < n_ids * dim) {
        long i = e / dim, c = e % dim;
        long id = id_i64 ? ((__global const long *)ids)[i_off + i]
                         : (long)((__global const int *)ids)[i_off + i];
        out[o_off + e] = load_w(table, t_dt, t_off + id * dim + c);
    }
}

/* ---- attention: one work-item per (b, h, query), online softmax ---------------------------- */

#define ATTN_MAX_D 256

struct attn_dims {
    long B, Sq, Sk, H, Hkv, D;
    long q_bs, q_ss, q_hs, k_bs, k_ss, k_hs, v_bs, v_ss, v_hs, o_bs, o_ss, o_hs;
    long m_bs, m_ss; /* key mask strides (elements) */
    long q_off, k_off, v_off, o_off, m_off, bias_off;
    long causal_offset;
    int is_causal, mask_dt; /* mask_dt: -1 none, 0 F32, 1 I32, 2 I64 */
    float scale;
};

int key_kept(__global const void *mask, const struct attn_dims *d, long b, long j)
{
    long i = d->m_off + b * d->m_bs + j * d->m_ss;
    if (d->mask_dt == 0) {
        return ((__global const float *)mask)[i] != 0.0f;
    }
    if (d->mask_dt == 1) {
        return ((__global const int *)mask)[i] != 0;
    }
    return ((__global const long *)mask)[i] != 0;
}

__kernel void k_attention(__global float *o, __global const float *q, __global const float *k,
                        __global const float *v, __global const void *mask,
                        __global const float *bias, struct attn_dims d)
{
    const long gid = get_global_id(0);
    if (gid >= d.B * d.H * d.Sq) {
        return;
    }
    const long i = gid % d.Sq, h = (gid / d.Sq) % d.H, b = gid / (d.Sq * d.H);
    const long hk = h / (d.H / d.Hkv);
    __global const float *qp = q + d.q_off + b * d.q_bs + i * d.q_ss + h * d.q_hs;
    __global const float *kp = k + d.k_off + b * d.k_bs + hk * d.k_hs;
    __global const float *vp = v + d.v_off + b * d.v_bs + hk * d.v_hs;
    __global float *op = o + d.o_off + b * d.o_bs + i * d.o_ss + h * d.o_hs;
    float acc[ATTN_MAX_D];
    for (long c = 0; c < d.D; c++) {
        acc[c] = 0.0f;
    }
    float mx = -INFINITY, l = 0.0f;
    long last = d.is_causal ? min(d.Sk - 1, d.causal_offset + i) : d.Sk - 1;
    for (long j = 0; j <= last; j++) {
        if (d.mask_dt >= 0 && !key_kept(mask, &d, b, j)) {
            continue;
        }
        float s = 0.0f;
        for (long c = 0; c < d.D; c++) {
            s = fma(qp[c], kp[j * d.k_ss + c], s);
        }
        s *= d.scale;
        if (bias != 0) {
            s += bias[d.bias_off + (h * d.Sq + i) * d.Sk + j];
        }
        if (s == -INFINITY) {
            continue;
        }
        if (s > mx) {
            float r = exp(mx - s);
            l *= r;
            for (long c = 0; c < d.D; c++) {
                acc[c] *= r;
            }
            mx = s;
        }
        float p = exp(s - mx);
        l += p;
        for (long c = 0; c < d.D; c++) {
            acc[c] = fma(p, vp[j * d.v_ss + c], acc[c]);
        }
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (long c = 0; c < d.D; c++) {
        op[c] = acc[c] * inv;
    }
}

/* ---- RoPE: one work-item per (b, s, h, i < rot/2) ---------------------------------------- */

__kernel void k_rope(__global float *x, ulong x_off, long bs, long ss, long hs, long S, long H,
                   long hrot, __global const void *pos, ulong p_off, int pos_i64,
                   __global const float *inv_freq, ulong f_off, float attn_factor, int neox,
                   long n)
{
    long g = get_global_id(0);
    if (g >= n) {
        return;
    }
    long i = g % hrot, h = (g / hrot) % H, t = g / (hrot * H); /* t = b * S + s */
    long b = t / S, s = t % S;
    long p = pos_i64 ? ((__global const long *)pos)[p_off + t]
                     : (long)((__global const int *)pos)[p_off + t];
    float ang = (float)p * inv_freq[f_off + i];
    float c = cos(ang) * attn_factor, sn = sin(ang) * attn_factor;
    long ia = neox ? i : 2 * i, ib = neox ? i + hrot : 2 * i + 1;
    __global float *xp = x + x_off + b * bs + s * ss + h * hs;
    float x1 = xp[ia], x2 = xp[ib];
    xp[ia] = x1 * c - x2 * sn;
    xp[ib] = x2 * c + x1 * sn;
}

/* ---- conversion ------------------------------------------------------------------------- */

ushort f32_to_bf16(float f)
{
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (ushort)((u >> 16) | 0x40u); /* quiet NaN, sign kept */
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* Round to nearest even as the CPU backend's cpu_f32_to_f16 (NaN -> 0x7e00, sign kept), in
 * integers only: vstore_half_rte keeps NaN payloads, and the CPU's float trick for
 * subnormals depends on the device keeping float denormals. */
ushort f32_to_f16(float f)
{
    uint u = as_uint(f), sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    uint o;
    if (u >= (127u + 16u) << 23) {
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < 113u << 23) {
        uint e = u >> 23, s = 126u - e, m = (u & 0x7fffffu) | 0x800000u;
        if (e == 0 || s > 25u) {
            o = 0;
        } else {
            uint q = m >> s, r = m & ((1u << s) - 1u), h = 1u << (s - 1u);
            o = q + (r > h || (r == h && (q & 1u)) ? 1u : 0u);
        }
    } else {
        u += ((uint)(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1u);
        o = u >> 13;
    }
    return (ushort)(o | sign);
}

/* rows x cols elements from src (row stride ld) to a packed dst, F32 / F16 / BF16 each way. */
__kernel void k_convert(__global void *dst, ulong d_off, int d_dt, __global const void *src,
                      ulong s_off, int s_dt, long ld, long cols, long n)
{
    long e = get_global_id(0);
    if (e >= n) {
        return;
    }
    long r = e / cols, c = e % cols;
    float f = load_w(src, s_dt, s_off + r * ld + c);
    if (d_dt == DT_F16) {
        ((__global ushort *)dst)[d_off + e] = f32_to_f16(f);
    } else if (d_dt == DT_BF16) {
        ((__global ushort *)dst)[d_off + e] = f32_to_bf16(f);
    } else {
        ((__global float *)dst)[d_off + e] = f;
    }
}

/* The same dtype: copy es bytes per element (any dtype), gathering rows. Offsets in bytes. */
__kernel void k_copy_rows(__global uchar *dst, ulong d_off, __global const uchar *src, ulong s_off,
                        long ld_bytes, long row_bytes, long n_bytes)
{
    long e = get_global_id(0);
    if (e < n_bytes) {
        long r = e / row_bytes, c = e % row_bytes;
        dst[d_off + e] = src[s_off + r * ld_bytes + c];
    }
}
