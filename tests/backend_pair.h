/*
 * backend_pair.h - what the device-backend suites (test_cuda.c, test_opencl.c) share for
 * checking a backend against the CPU backend: a pair of tensors holding the same data on "cpu"
 * and on the device under test, random data from a seeded LCG, the comparison of the two results
 * (within abs + rel * |cpu|, or byte for byte), and the op checks both suites run with their own
 * shapes, cases and tolerances (matmul, pointwise, norms, softmax, gathers, RoPE, conversion,
 * attention). A suite names its device under test, its name in messages and its seed once, in
 * its TestSuite's .init, with pair_target_set(); every test then starts from that seed.
 */
#ifndef PTM_BACKEND_PAIR_H
#define PTM_BACKEND_PAIR_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm.h"

/* The device under test: its getter (skips the test when the device is absent), its name in
 * failure messages, and the seed of the random data. */
struct pair_target {
    ptm_device *(*device)(void);
    const char *name;
    uint64_t seed;
};

static struct pair_target pair_dut;
static uint64_t rng_state;

static inline void pair_target_set(struct pair_target t)
{
    pair_dut = t;
    rng_state = t.seed;
}

static inline ptm_device *cpu_dev(void)
{
    ptm_device *d = NULL;
    cr_assert_eq(ptm_device_get("cpu", &d), PTM_OK, "%s", ptm_last_error());
    return d;
}

static inline ptm_device *dut_dev(void)
{
    cr_assert_not_null(pair_dut.device, "pair_target_set was not called");
    return pair_dut.device();
}

/* Uniform in [-1, 1). */
static inline float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

/* The same host data as a tensor on both devices: c on "cpu", d on the device under test. */
struct pair {
    ptm_tensor *c, *d;
};

static inline struct pair mk(ptm_dtype dt, int32_t nd, const int64_t *shape, const void *data)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_from_host(cpu_dev(), dt, nd, shape, data, &p.c), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_tensor_from_host(dut_dev(), dt, nd, shape, data, &p.d), PTM_OK, "%s",
                 ptm_last_error());
    return p;
}

/* Random values in [-1, 1), converted to dt by the CPU backend (RNE); both devices get its
 * bytes. */
static inline struct pair mk_rand(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) {
        n *= shape[i];
    }
    float *f = malloc((size_t)n * sizeof *f + 1);
    for (int64_t i = 0; i < n; i++) {
        f[i] = frand();
    }
    if (dt == PTM_F32) {
        struct pair p = mk(dt, nd, shape, f);
        free(f);
        return p;
    }
    ptm_tensor *src = NULL, *conv = NULL;
    cr_assert_eq(ptm_tensor_from_host(cpu_dev(), PTM_F32, nd, shape, f, &src), PTM_OK);
    cr_assert_eq(ptm_tensor_new(cpu_dev(), dt, nd, shape, &conv), PTM_OK);
    cr_assert_eq(ptm_op_convert(conv, src), PTM_OK, "%s", ptm_last_error());
    void *host = malloc(ptm_tensor_nbytes(conv) + 1);
    cr_assert_eq(ptm_tensor_read(conv, host, ptm_tensor_nbytes(conv)), PTM_OK);
    struct pair p = mk(dt, nd, shape, host);
    free(host);
    free(f);
    ptm_tensor_free(src);
    ptm_tensor_free(conv);
    return p;
}

static inline struct pair mk_empty(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_new(cpu_dev(), dt, nd, shape, &p.c), PTM_OK);
    cr_assert_eq(ptm_tensor_new(dut_dev(), dt, nd, shape, &p.d), PTM_OK, "%s", ptm_last_error());
    return p;
}

static inline void pair_free(struct pair p)
{
    ptm_tensor_free(p.c);
    ptm_tensor_free(p.d);
}

/* out = whole[..., start : start + len, ...] along dim, on both devices. */
static inline void narrow(struct pair *whole, int32_t dim, int64_t start, int64_t len,
                          struct pair *out)
{
    cr_assert_eq(ptm_tensor_narrow(whole->c, dim, start, len, &out->c), PTM_OK);
    cr_assert_eq(ptm_tensor_narrow(whole->d, dim, start, len, &out->d), PTM_OK);
}

/* Both outputs (contiguous F32) agree within abs + rel * |cpu|. */
static inline void expect_close(struct pair p, double abs_tol, double rel_tol, const char *what)
{
    size_t bytes = ptm_tensor_nbytes(p.c);
    int64_t n = ptm_tensor_numel(p.c);
    float *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    cr_assert_eq(ptm_tensor_read(p.c, a, bytes), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_tensor_read(p.d, b, bytes), PTM_OK, "%s: %s", what, ptm_last_error());
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) - rel_tol * fabs((double)a[i]);
        if (d > worst || isnan(d)) {
            worst = d;
            at = i;
        }
    }
    cr_expect(worst <= abs_tol, "%s: element %lld: cpu %.9g, %s %.9g", what, (long long)at,
              (double)a[at], pair_dut.name, (double)b[at]);
    free(a);
    free(b);
}

/* Raw bytes of both outputs are equal (conversions, gathers). */
static inline void expect_same_bytes(struct pair p, const char *what)
{
    size_t bytes = ptm_tensor_nbytes(p.c);
    unsigned char *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    cr_assert_eq(ptm_tensor_read(p.c, a, bytes), PTM_OK);
    cr_assert_eq(ptm_tensor_read(p.d, b, bytes), PTM_OK, "%s: %s", what, ptm_last_error());
    cr_expect(memcmp(a, b, bytes) == 0, "%s: bytes differ", what);
    free(a);
    free(b);
}

/* The same op on "cpu" (call_c) and on the device under test (call_d); both must succeed. */
#define BOTH(call_c, call_d)                                                                       \
    do {                                                                                           \
        cr_assert_eq((call_c), PTM_OK, "cpu: %s", ptm_last_error());                               \
        cr_assert_eq((call_d), PTM_OK, "%s: %s", pair_dut.name, ptm_last_error());                 \
    } while (0)

/* ---- GEMM ---------------------------------------------------------------------------------- */

/* out[1, M, N] = a[1, M, K] b (b [K, N], or [N, K] with trans) + bias, then act; within abs_tol
 * + 1e-5 * |cpu|. */
static inline void check_matmul(int64_t M, int64_t K, int64_t N, ptm_dtype wdt, int trans,
                                int32_t act, int has_bias, double abs_tol)
{
    int64_t sa[3] = {1, M, K}, so[3] = {1, M, N}, sb[2] = {trans ? N : K, trans ? K : N};
    struct pair a = mk_rand(PTM_F32, 3, sa), b = mk_rand(wdt, 2, sb);
    struct pair bias = has_bias ? mk_rand(PTM_F32, 1, &N) : (struct pair){NULL, NULL};
    struct pair out = mk_empty(PTM_F32, 3, so);
    uint32_t flags = (trans ? PTM_MM_TRANS_B : 0) | ((uint32_t)act << PTM_MM_ACT_SHIFT);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, bias.c, flags),
         ptm_op_matmul(out.d, a.d, b.d, bias.d, flags));
    char what[96];
    snprintf(what, sizeof what, "matmul %lldx%lldx%lld %s trans %d act %d", (long long)M,
             (long long)K, (long long)N, ptm_dtype_name(wdt), trans, act);
    expect_close(out, abs_tol, 1e-5, what);
    pair_free(a);
    pair_free(b);
    pair_free(bias);
    pair_free(out);
}

/* The left operand is a column slice (a strided view) of a wider F32 tensor. */
static inline void check_matmul_on_a_slice(void)
{
    int64_t sw[2] = {9, 40}, sb[2] = {11, 24}, so[2] = {9, 11};
    struct pair w = mk_rand(PTM_F32, 2, sw), b = mk_rand(PTM_BF16, 2, sb);
    struct pair out = mk_empty(PTM_F32, 2, so), a = {NULL, NULL};
    narrow(&w, 1, 13, 24, &a);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, NULL, PTM_MM_TRANS_B),
         ptm_op_matmul(out.d, a.d, b.d, NULL, PTM_MM_TRANS_B));
    expect_close(out, 1e-5, 1e-5, "matmul on a slice");
    pair_free(w);
    pair_free(a);
    pair_free(b);
    pair_free(out);
}

/* ---- pointwise, norms, softmax --------------------------------------------------------------- */

static inline void check_unary_ops(void)
{
    int64_t s[2] = {3, 333};
    struct pair x = mk_rand(PTM_F32, 2, s), out = mk_empty(PTM_F32, 2, s);
    int32_t ops[] = {PTM_UNARY_GELU, PTM_UNARY_GELU_TANH, PTM_UNARY_RELU, PTM_UNARY_SILU,
                     PTM_UNARY_TANH};
    for (int i = 0; i < 5; i++) {
        BOTH(ptm_op_unary(out.c, x.c, ops[i]), ptm_op_unary(out.d, x.d, ops[i]));
        char what[32];
        snprintf(what, sizeof what, "unary %d", (int)ops[i]);
        expect_close(out, 1e-6, 1e-6, what);
    }
    pair_free(x);
    pair_free(out);
}

/* add and mul with b of 1, 2 and 3 dims broadcast over a's leading dims; scale. Exact. */
static inline void check_binary_ops(void)
{
    int64_t sa[3] = {3, 5, 7}, sb1[1] = {7}, sb2[2] = {5, 7};
    struct pair a = mk_rand(PTM_F32, 3, sa), out = mk_empty(PTM_F32, 3, sa);
    struct pair bs[3] = {mk_rand(PTM_F32, 1, sb1), mk_rand(PTM_F32, 2, sb2),
                         mk_rand(PTM_F32, 3, sa)};
    for (int i = 0; i < 3; i++) {
        BOTH(ptm_op_add(out.c, a.c, bs[i].c), ptm_op_add(out.d, a.d, bs[i].d));
        expect_close(out, 0, 0, "add");
        BOTH(ptm_op_mul(out.c, a.c, bs[i].c), ptm_op_mul(out.d, a.d, bs[i].d));
        expect_close(out, 0, 0, "mul");
        pair_free(bs[i]);
    }
    BOTH(ptm_op_scale(out.c, a.c, 0.37f), ptm_op_scale(out.d, a.d, 0.37f));
    expect_close(out, 0, 0, "scale");
    pair_free(a);
    pair_free(out);
}

/* Layer norm and RMS norm of rows of s[1], with and without residual (and bias). */
static inline void check_norms(const int64_t s[2])
{
    int64_t n = s[1];
    struct pair x = mk_rand(PTM_F32, 2, s), r = mk_rand(PTM_F32, 2, s);
    struct pair w = mk_rand(PTM_F32, 1, &n), b = mk_rand(PTM_F32, 1, &n);
    struct pair out = mk_empty(PTM_F32, 2, s);
    BOTH(ptm_op_layer_norm(out.c, x.c, r.c, w.c, b.c, 1e-12f),
         ptm_op_layer_norm(out.d, x.d, r.d, w.d, b.d, 1e-12f));
    expect_close(out, 1e-5, 1e-5, "layer norm");
    BOTH(ptm_op_layer_norm(out.c, x.c, NULL, w.c, NULL, 1e-5f),
         ptm_op_layer_norm(out.d, x.d, NULL, w.d, NULL, 1e-5f));
    expect_close(out, 1e-5, 1e-5, "layer norm, no residual or bias");
    BOTH(ptm_op_rms_norm(out.c, x.c, r.c, w.c, 1e-6f),
         ptm_op_rms_norm(out.d, x.d, r.d, w.d, 1e-6f));
    expect_close(out, 1e-5, 1e-5, "rms norm");
    BOTH(ptm_op_rms_norm(out.c, x.c, NULL, w.c, 1e-6f),
         ptm_op_rms_norm(out.d, x.d, NULL, w.d, 1e-6f));
    expect_close(out, 1e-5, 1e-5, "rms norm, no residual");
    struct pair all[] = {x, r, w, b, out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        pair_free(all[i]);
    }
}

static inline void check_softmax(const int64_t s[2])
{
    struct pair x = mk_rand(PTM_F32, 2, s), out = mk_empty(PTM_F32, 2, s);
    BOTH(ptm_op_softmax(out.c, x.c), ptm_op_softmax(out.d, x.d));
    expect_close(out, 1e-7, 1e-5, "softmax");
    pair_free(x);
    pair_free(out);
}

/* ---- gather, RoPE, conversion -----------------------------------------------------------------
 */

/* Rows of an F32, F16 and BF16 table by I32 and I64 ids: exact. */
static inline void check_embedding_gather(void)
{
    int64_t st[2] = {13, 10}, si[2] = {2, 3}, so[3] = {2, 3, 10};
    int32_t ids32[6] = {0, 12, 5, 5, 7, 1};
    int64_t ids64[6] = {3, 2, 1, 0, 12, 11};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    struct pair i32 = mk(PTM_I32, 2, si, ids32), i64 = mk(PTM_I64, 2, si, ids64);
    for (int d = 0; d < 3; d++) {
        struct pair t = mk_rand(dts[d], 2, st), out = mk_empty(PTM_F32, 3, so);
        BOTH(ptm_op_embedding(out.c, t.c, i32.c), ptm_op_embedding(out.d, t.d, i32.d));
        expect_close(out, 0, 0, "embedding, I32 ids");
        BOTH(ptm_op_embedding(out.c, t.c, i64.c), ptm_op_embedding(out.d, t.d, i64.d));
        expect_close(out, 0, 0, "embedding, I64 ids");
        pair_free(t);
        pair_free(out);
    }
    pair_free(i32);
    pair_free(i64);
}

/* An id past the table's end fails on the device, naming the id and its position. */
static inline void check_embedding_range(void)
{
    int64_t st[2] = {4, 8}, n = 3, so[2] = {3, 8};
    int64_t ids[3] = {1, 4, 0};
    struct pair t = mk_rand(PTM_F32, 2, st), i = mk(PTM_I64, 1, &n, ids);
    struct pair out = mk_empty(PTM_F32, 2, so);
    cr_assert_eq(ptm_op_embedding(out.d, t.d, i.d), PTM_E_RANGE);
    cr_expect_not_null(strstr(ptm_last_error(), "id 4 at position 1"), "%s", ptm_last_error());
    pair_free(t);
    pair_free(i);
    pair_free(out);
}

/* RoPE over rot of [2, 5, 3, 16] at positions i * pos_step % pos_mod + 3 (i < 10) as pos_dt. */
static inline void check_rope(ptm_dtype pos_dt, int neox, int32_t rot, float attn_factor,
                              int32_t pos_step, int32_t pos_mod)
{
    int64_t B = 2, S = 5, H = 3, D = 16, sx[4] = {B, S, H, D}, sp[2] = {B, S}, half = rot / 2;
    struct pair x = mk_rand(PTM_F32, 4, sx);
    int32_t p32[10];
    int64_t p64[10];
    for (int i = 0; i < 10; i++) {
        p32[i] = i * pos_step % pos_mod + 3;
        p64[i] = p32[i];
    }
    float inv[8];
    for (int64_t i = 0; i < half; i++) {
        inv[i] = powf(10000.0f, -2.0f * (float)i / (float)rot);
    }
    struct pair pos = pos_dt == PTM_I32 ? mk(PTM_I32, 2, sp, p32) : mk(PTM_I64, 2, sp, p64);
    struct pair f = mk(PTM_F32, 1, &half, inv);
    BOTH(ptm_op_rope(x.c, pos.c, f.c, attn_factor, rot, neox),
         ptm_op_rope(x.d, pos.d, f.d, attn_factor, rot, neox));
    expect_close(x, 1e-5, 1e-5, neox ? "rope neox" : "rope interleaved");
    pair_free(x);
    pair_free(pos);
    pair_free(f);
}

/* RoPE in both layouts (NeoX halves, interleaved pairs), rotating all 16 dims with attention
 * factor full_factor and part of them (10, 6) with part_factor; positions as check_rope. */
static inline void check_rope_layouts(float full_factor, float part_factor, int32_t pos_step,
                                      int32_t pos_mod)
{
    check_rope(PTM_I64, 1, 16, full_factor, pos_step, pos_mod);
    check_rope(PTM_I32, 1, 10, part_factor, pos_step, pos_mod);
    check_rope(PTM_I64, 0, 16, full_factor, pos_step, pos_mod);
    check_rope(PTM_I32, 0, 6, part_factor, pos_step, pos_mod);
}

/* Every F32 / F16 / BF16 pair of conversions of large, tiny, NaN and infinite values (and -0
 * with neg_zero), whole and from a strided column slice: the same bytes as the CPU's. */
static inline void check_convert(int neg_zero)
{
    int64_t s[2] = {6, 50}, so[2] = {6, 21};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    float big[300];
    for (int i = 0; i < 300; i++) {
        big[i] = frand() * (i % 3 == 0 ? 70000.0f : i % 3 == 1 ? 1e-6f : 3.0f);
    }
    big[7] = NAN;
    big[8] = INFINITY;
    if (neg_zero) {
        big[9] = -0.0f;
    }
    struct pair src = mk(PTM_F32, 2, s, big);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            struct pair x = mk_empty(dts[i], 2, s), y = mk_empty(dts[j], 2, s);
            struct pair ys = mk_empty(dts[j], 2, so), xs = {NULL, NULL};
            BOTH(ptm_op_convert(x.c, src.c), ptm_op_convert(x.d, src.d));
            BOTH(ptm_op_convert(y.c, x.c), ptm_op_convert(y.d, x.d));
            char what[64];
            snprintf(what, sizeof what, "convert %s -> %s", ptm_dtype_name(dts[i]),
                     ptm_dtype_name(dts[j]));
            expect_same_bytes(y, what);
            narrow(&x, 1, 17, 21, &xs);
            BOTH(ptm_op_convert(ys.c, xs.c), ptm_op_convert(ys.d, xs.d));
            expect_same_bytes(ys, what);
            pair_free(x);
            pair_free(y);
            pair_free(xs);
            pair_free(ys);
        }
    }
    pair_free(src);
}

/* ---- attention --------------------------------------------------------------------------------
 */

struct attn_case {
    int64_t B, Sq, Sk, H, Hkv, D;
    int32_t mask_dt; /* PTM_F32, PTM_I32, PTM_I64, or -1 for none */
    int causal, has_bias;
    int64_t q_offset;
    int drop_batch_1; /* the mask hides every key of batch 1 */
};

/* The mask as dt: batch b drops keys j with (j + b) % 3 == 1, but keeps key 0. */
static inline struct pair attn_mask(const struct attn_case *c)
{
    int64_t n = c->B * c->Sk, shape[2] = {c->B, c->Sk};
    float *f = malloc((size_t)n * sizeof *f);
    int32_t *i32 = malloc((size_t)n * sizeof *i32);
    int64_t *i64 = malloc((size_t)n * sizeof *i64);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / c->Sk, j = i % c->Sk, keep = j == 0 || (j + b) % 3 != 1;
        keep = c->drop_batch_1 && b == 1 ? 0 : keep;
        f[i] = (float)keep;
        i32[i] = (int32_t)keep;
        i64[i] = keep;
    }
    const void *data = c->mask_dt == PTM_F32   ? (void *)f
                       : c->mask_dt == PTM_I32 ? (void *)i32
                                               : (void *)i64;
    struct pair m = mk((ptm_dtype)c->mask_dt, 2, shape, data);
    free(f);
    free(i32);
    free(i64);
    return m;
}

/* q, k, v are slices of one fused [B, S, H + 2 Hkv, D] tensor when Sq == Sk (as BERT's QKV
 * projection), else separate tensors. */
static inline void check_attention(const struct attn_case *c)
{
    int64_t sq[4] = {c->B, c->Sq, c->H, c->D}, sk[4] = {c->B, c->Sk, c->Hkv, c->D};
    int64_t sf[4] = {c->B, c->Sq, c->H + 2 * c->Hkv, c->D};
    struct pair q, k, v, fused = {NULL, NULL};
    if (c->Sq == c->Sk) {
        fused = mk_rand(PTM_F32, 4, sf);
        narrow(&fused, 2, 0, c->H, &q);
        narrow(&fused, 2, c->H, c->Hkv, &k);
        narrow(&fused, 2, c->H + c->Hkv, c->Hkv, &v);
    } else {
        q = mk_rand(PTM_F32, 4, sq);
        k = mk_rand(PTM_F32, 4, sk);
        v = mk_rand(PTM_F32, 4, sk);
    }
    int64_t sbias[3] = {c->H, c->Sq, c->Sk};
    struct pair mask = c->mask_dt >= 0 ? attn_mask(c) : (struct pair){NULL, NULL};
    struct pair bias = c->has_bias ? mk_rand(PTM_F32, 3, sbias) : (struct pair){NULL, NULL};
    struct pair out = mk_empty(PTM_F32, 4, sq);
    struct ptm_attention_opts oc = {sizeof oc, mask.c, bias.c, c->causal, c->q_offset};
    struct ptm_attention_opts od = {sizeof od, mask.d, bias.d, c->causal, c->q_offset};
    float scale = 1.0f / sqrtf((float)c->D);
    BOTH(ptm_op_attention(out.c, q.c, k.c, v.c, scale, &oc),
         ptm_op_attention(out.d, q.d, k.d, v.d, scale, &od));
    char what[128];
    snprintf(what, sizeof what, "attention B%lld Sq%lld Sk%lld H%lld/%lld D%lld mask %d causal %d",
             (long long)c->B, (long long)c->Sq, (long long)c->Sk, (long long)c->H,
             (long long)c->Hkv, (long long)c->D, (int)c->mask_dt, c->causal);
    expect_close(out, 1e-5, 1e-5, what);
    struct pair all[] = {q, k, v, fused, mask, bias, out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        pair_free(all[i]);
    }
}

static inline void check_attention_cases(const struct attn_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_attention(&cases[i]);
    }
}

/* ---- the tests every device suite runs as they are ------------------------------------------ */

#define BACKEND_PAIR_TESTS(suite)                                                                  \
    Test(suite, matmul_reads_a_column_slice_of_a_wider_tensor)                                     \
    {                                                                                              \
        check_matmul_on_a_slice();                                                                 \
    }                                                                                              \
    Test(suite, unary_ops_match_cpu)                                                               \
    {                                                                                              \
        check_unary_ops();                                                                         \
    }                                                                                              \
    Test(suite, binary_ops_broadcast_b_over_leading_dims)                                          \
    {                                                                                              \
        check_binary_ops();                                                                        \
    }                                                                                              \
    Test(suite, embedding_gathers_rows_of_each_table_dtype)                                        \
    {                                                                                              \
        check_embedding_gather();                                                                  \
    }                                                                                              \
    Test(suite, embedding_rejects_an_id_outside_the_table)                                         \
    {                                                                                              \
        check_embedding_range();                                                                   \
    }

#endif
