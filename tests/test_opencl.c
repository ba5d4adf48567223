/*
 * test_opencl.c - the OpenCL backend (backends/opencl) against the CPU backend: every op on
 * random inputs with odd shapes, strided views, masks, GQA, causal offsets, biases and
 * F16/BF16 weights, compared with the same op on "cpu"; the BERT and LLaMA golden fixtures
 * run on "opencl" and compared with transformers' outputs at the CPU's tolerance; and the
 * program binary cache (a second process loads the program from it; a corrupt entry is
 * rebuilt). With no OpenCL device every test is skipped, saying why.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_device *cpu_dev(void)
{
    ptm_device *d = NULL;
    cr_assert_eq(ptm_device_get("cpu", &d), PTM_OK, "%s", ptm_last_error());
    return d;
}

static ptm_device *ocl_dev(void)
{
    ptm_device *d = NULL;
    if (ptm_device_get("opencl", &d) != PTM_OK) {
        cr_skip_test("no OpenCL device: %s", ptm_last_error());
    }
    return d;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

static float *rand_floats(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p + 1);
    for (int64_t i = 0; i < n; i++) {
        p[i] = frand();
    }
    return p;
}

/* The same host data as a tensor on both devices. */
struct pair {
    ptm_tensor *c, *o;
};

static struct pair mk(ptm_dtype dt, int32_t nd, const int64_t *shape, const void *data)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_from_host(cpu_dev(), dt, nd, shape, data, &p.c), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_tensor_from_host(ocl_dev(), dt, nd, shape, data, &p.o), PTM_OK, "%s",
                 ptm_last_error());
    return p;
}

/* Random F32 values, converted to dt (through the CPU backend's RNE conversion). */
static struct pair mk_rand(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) {
        n *= shape[i];
    }
    float *f = rand_floats(n);
    struct pair p = mk(PTM_F32, nd, shape, f);
    free(f);
    if (dt != PTM_F32) {
        struct pair q = {NULL, NULL};
        cr_assert_eq(ptm_tensor_new(cpu_dev(), dt, nd, shape, &q.c), PTM_OK);
        cr_assert_eq(ptm_op_convert(q.c, p.c), PTM_OK, "%s", ptm_last_error());
        void *host = malloc(ptm_tensor_nbytes(q.c) + 1);
        cr_assert_eq(ptm_tensor_read(q.c, host, ptm_tensor_nbytes(q.c)), PTM_OK);
        cr_assert_eq(ptm_tensor_from_host(ocl_dev(), dt, nd, shape, host, &q.o), PTM_OK);
        free(host);
        ptm_tensor_free(p.c);
        ptm_tensor_free(p.o);
        p = q;
    }
    return p;
}

static struct pair mk_empty(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_new(cpu_dev(), dt, nd, shape, &p.c), PTM_OK);
    cr_assert_eq(ptm_tensor_new(ocl_dev(), dt, nd, shape, &p.o), PTM_OK, "%s", ptm_last_error());
    return p;
}

static void pair_free(struct pair p)
{
    ptm_tensor_free(p.c);
    ptm_tensor_free(p.o);
}

/* Both outputs (contiguous F32) agree within abs + rel * |cpu|. */
static void expect_close(struct pair p, double abs_tol, double rel_tol, const char *what)
{
    size_t bytes = ptm_tensor_nbytes(p.c);
    int64_t n = ptm_tensor_numel(p.c);
    float *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    cr_assert_eq(ptm_tensor_read(p.c, a, bytes), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_tensor_read(p.o, b, bytes), PTM_OK, "%s", ptm_last_error());
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) - rel_tol * fabs((double)a[i]);
        if (d > worst || isnan(d)) {
            worst = d;
            at = i;
        }
    }
    cr_expect(worst <= abs_tol, "%s: element %lld: cpu %.9g, opencl %.9g", what, (long long)at,
              (double)a[at], (double)b[at]);
    free(a);
    free(b);
}

/* Raw bytes of both outputs are equal (conversions, gathers). */
static void expect_same_bytes(struct pair p, const char *what)
{
    size_t bytes = ptm_tensor_nbytes(p.c);
    unsigned char *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    cr_assert_eq(ptm_tensor_read(p.c, a, bytes), PTM_OK);
    cr_assert_eq(ptm_tensor_read(p.o, b, bytes), PTM_OK);
    cr_expect(memcmp(a, b, bytes) == 0, "%s: bytes differ", what);
    free(a);
    free(b);
}

#define BOTH(call_c, call_o)                                                                       \
    do {                                                                                           \
        cr_assert_eq((call_c), PTM_OK, "cpu: %s", ptm_last_error());                               \
        cr_assert_eq((call_o), PTM_OK, "opencl: %s", ptm_last_error());                            \
    } while (0)

/* ---- ops --------------------------------------------------------------------------------- */

static void check_matmul(ptm_dtype wdt, int trans, int32_t act, int has_bias)
{
    int64_t M = 7, K = 37, N = 19;
    int64_t sa[3] = {1, M, K}, so[3] = {1, M, N}, sb[2] = {trans ? N : K, trans ? K : N};
    struct pair a = mk_rand(PTM_F32, 3, sa), b = mk_rand(wdt, 2, sb);
    struct pair bias = has_bias ? mk_rand(PTM_F32, 1, &N) : (struct pair){NULL, NULL};
    struct pair out = mk_empty(PTM_F32, 3, so);
    uint32_t flags = (trans ? PTM_MM_TRANS_B : 0) | ((uint32_t)act << PTM_MM_ACT_SHIFT);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, bias.c, flags),
         ptm_op_matmul(out.o, a.o, b.o, bias.o, flags));
    char what[64];
    snprintf(what, sizeof what, "matmul %s trans %d act %d", ptm_dtype_name(wdt), trans, act);
    expect_close(out, 1e-5, 1e-5, what);
    pair_free(a);
    pair_free(b);
    pair_free(bias);
    pair_free(out);
}

Test(opencl, matmul_matches_cpu_for_each_weight_dtype_and_layout)
{
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    for (int d = 0; d < 3; d++) {
        check_matmul(dts[d], 1, PTM_UNARY_NONE, 1);
        check_matmul(dts[d], 0, PTM_UNARY_NONE, 0);
    }
    check_matmul(PTM_F32, 1, PTM_UNARY_GELU, 1);
    check_matmul(PTM_F32, 1, PTM_UNARY_GELU_TANH, 1);
    check_matmul(PTM_F32, 1, PTM_UNARY_RELU, 0);
    check_matmul(PTM_F32, 1, PTM_UNARY_SILU, 1);
}

Test(opencl, matmul_reads_a_column_slice_of_a_wider_tensor)
{
    int64_t sw[2] = {9, 40}, sb[2] = {11, 24}, so[2] = {9, 11};
    struct pair w = mk_rand(PTM_F32, 2, sw), b = mk_rand(PTM_BF16, 2, sb);
    struct pair out = mk_empty(PTM_F32, 2, so), a = {NULL, NULL};
    cr_assert_eq(ptm_tensor_narrow(w.c, 1, 13, 24, &a.c), PTM_OK);
    cr_assert_eq(ptm_tensor_narrow(w.o, 1, 13, 24, &a.o), PTM_OK);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, NULL, PTM_MM_TRANS_B),
         ptm_op_matmul(out.o, a.o, b.o, NULL, PTM_MM_TRANS_B));
    expect_close(out, 1e-5, 1e-5, "matmul on a slice");
    pair_free(w);
    pair_free(a);
    pair_free(b);
    pair_free(out);
}

Test(opencl, unary_ops_match_cpu)
{
    int64_t s[2] = {3, 333};
    struct pair x = mk_rand(PTM_F32, 2, s), out = mk_empty(PTM_F32, 2, s);
    int32_t ops[] = {PTM_UNARY_GELU, PTM_UNARY_GELU_TANH, PTM_UNARY_RELU, PTM_UNARY_SILU,
                     PTM_UNARY_TANH};
    for (int i = 0; i < 5; i++) {
        BOTH(ptm_op_unary(out.c, x.c, ops[i]), ptm_op_unary(out.o, x.o, ops[i]));
        char what[32];
        snprintf(what, sizeof what, "unary %d", (int)ops[i]);
        expect_close(out, 1e-6, 1e-6, what);
    }
    pair_free(x);
    pair_free(out);
}

Test(opencl, binary_ops_broadcast_b_over_leading_dims)
{
    int64_t sa[3] = {3, 5, 7}, sb1[1] = {7}, sb2[2] = {5, 7};
    struct pair a = mk_rand(PTM_F32, 3, sa), out = mk_empty(PTM_F32, 3, sa);
    struct pair bs[3] = {mk_rand(PTM_F32, 1, sb1), mk_rand(PTM_F32, 2, sb2),
                         mk_rand(PTM_F32, 3, sa)};
    for (int i = 0; i < 3; i++) {
        BOTH(ptm_op_add(out.c, a.c, bs[i].c), ptm_op_add(out.o, a.o, bs[i].o));
        expect_close(out, 0, 0, "add");
        BOTH(ptm_op_mul(out.c, a.c, bs[i].c), ptm_op_mul(out.o, a.o, bs[i].o));
        expect_close(out, 0, 0, "mul");
        pair_free(bs[i]);
    }
    BOTH(ptm_op_scale(out.c, a.c, 0.37f), ptm_op_scale(out.o, a.o, 0.37f));
    expect_close(out, 0, 0, "scale");
    pair_free(a);
    pair_free(out);
}

Test(opencl, norms_match_cpu_with_residual_and_bias)
{
    int64_t s[2] = {5, 300}, n = 300;
    struct pair x = mk_rand(PTM_F32, 2, s), r = mk_rand(PTM_F32, 2, s);
    struct pair w = mk_rand(PTM_F32, 1, &n), b = mk_rand(PTM_F32, 1, &n);
    struct pair out = mk_empty(PTM_F32, 2, s);
    BOTH(ptm_op_layer_norm(out.c, x.c, r.c, w.c, b.c, 1e-12f),
         ptm_op_layer_norm(out.o, x.o, r.o, w.o, b.o, 1e-12f));
    expect_close(out, 1e-5, 1e-5, "layer norm");
    BOTH(ptm_op_layer_norm(out.c, x.c, NULL, w.c, NULL, 1e-5f),
         ptm_op_layer_norm(out.o, x.o, NULL, w.o, NULL, 1e-5f));
    expect_close(out, 1e-5, 1e-5, "layer norm, no residual or bias");
    BOTH(ptm_op_rms_norm(out.c, x.c, r.c, w.c, 1e-6f),
         ptm_op_rms_norm(out.o, x.o, r.o, w.o, 1e-6f));
    expect_close(out, 1e-5, 1e-5, "rms norm");
    BOTH(ptm_op_rms_norm(out.c, x.c, NULL, w.c, 1e-6f),
         ptm_op_rms_norm(out.o, x.o, NULL, w.o, 1e-6f));
    expect_close(out, 1e-5, 1e-5, "rms norm, no residual");
    pair_free(x);
    pair_free(r);
    pair_free(w);
    pair_free(b);
    pair_free(out);
}

Test(opencl, softmax_matches_cpu_on_long_and_short_rows)
{
    int64_t shapes[2][2] = {{4, 1000}, {9, 3}};
    for (int i = 0; i < 2; i++) {
        struct pair x = mk_rand(PTM_F32, 2, shapes[i]), out = mk_empty(PTM_F32, 2, shapes[i]);
        BOTH(ptm_op_softmax(out.c, x.c), ptm_op_softmax(out.o, x.o));
        expect_close(out, 1e-7, 1e-5, "softmax");
        pair_free(x);
        pair_free(out);
    }
}

Test(opencl, embedding_gathers_rows_of_each_table_dtype)
{
    int64_t st[2] = {13, 10}, si[2] = {2, 3}, so[3] = {2, 3, 10};
    int32_t ids32[6] = {0, 12, 5, 5, 7, 1};
    int64_t ids64[6] = {3, 2, 1, 0, 12, 11};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    struct pair i32 = mk(PTM_I32, 2, si, ids32), i64 = mk(PTM_I64, 2, si, ids64);
    for (int d = 0; d < 3; d++) {
        struct pair t = mk_rand(dts[d], 2, st), out = mk_empty(PTM_F32, 3, so);
        BOTH(ptm_op_embedding(out.c, t.c, i32.c), ptm_op_embedding(out.o, t.o, i32.o));
        expect_close(out, 0, 0, "embedding, I32 ids");
        BOTH(ptm_op_embedding(out.c, t.c, i64.c), ptm_op_embedding(out.o, t.o, i64.o));
        expect_close(out, 0, 0, "embedding, I64 ids");
        pair_free(t);
        pair_free(out);
    }
    pair_free(i32);
    pair_free(i64);
}

Test(opencl, embedding_rejects_an_id_outside_the_table)
{
    int64_t st[2] = {4, 8}, n = 3, so[2] = {3, 8};
    int64_t ids[3] = {1, 4, 0};
    struct pair t = mk_rand(PTM_F32, 2, st), i = mk(PTM_I64, 1, &n, ids);
    struct pair out = mk_empty(PTM_F32, 2, so);
    cr_assert_eq(ptm_op_embedding(out.o, t.o, i.o), PTM_E_RANGE);
    cr_expect_not_null(strstr(ptm_last_error(), "id 4 at position 1"), "%s", ptm_last_error());
    pair_free(t);
    pair_free(i);
    pair_free(out);
}

struct attn_case {
    int64_t B, Sq, Sk, H, Hkv, D;
    int32_t mask_dt; /* PTM_F32, PTM_I32, PTM_I64, or -1 for none */
    int causal, has_bias;
    int64_t q_offset;
};

/* The mask as dt: batch b drops keys j with (j + b) % 3 == 1, but keeps key 0. */
static struct pair attn_mask(const struct attn_case *c)
{
    int64_t n = c->B * c->Sk, shape[2] = {c->B, c->Sk};
    float *f = malloc((size_t)n * sizeof *f);
    int32_t *i32 = malloc((size_t)n * sizeof *i32);
    int64_t *i64 = malloc((size_t)n * sizeof *i64);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / c->Sk, j = i % c->Sk, keep = j == 0 || (j + b) % 3 != 1;
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
static void check_attention(const struct attn_case *c)
{
    int64_t sq[4] = {c->B, c->Sq, c->H, c->D}, sk[4] = {c->B, c->Sk, c->Hkv, c->D};
    int64_t sf[4] = {c->B, c->Sq, c->H + 2 * c->Hkv, c->D};
    struct pair q, k, v, fused = {NULL, NULL};
    if (c->Sq == c->Sk) {
        fused = mk_rand(PTM_F32, 4, sf);
        cr_assert_eq(ptm_tensor_narrow(fused.c, 2, 0, c->H, &q.c), PTM_OK);
        cr_assert_eq(ptm_tensor_narrow(fused.o, 2, 0, c->H, &q.o), PTM_OK);
        cr_assert_eq(ptm_tensor_narrow(fused.c, 2, c->H, c->Hkv, &k.c), PTM_OK);
        cr_assert_eq(ptm_tensor_narrow(fused.o, 2, c->H, c->Hkv, &k.o), PTM_OK);
        cr_assert_eq(ptm_tensor_narrow(fused.c, 2, c->H + c->Hkv, c->Hkv, &v.c), PTM_OK);
        cr_assert_eq(ptm_tensor_narrow(fused.o, 2, c->H + c->Hkv, c->Hkv, &v.o), PTM_OK);
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
    struct ptm_attention_opts oo = {sizeof oo, mask.o, bias.o, c->causal, c->q_offset};
    float scale = 1.0f / sqrtf((float)c->D);
    BOTH(ptm_op_attention(out.c, q.c, k.c, v.c, scale, &oc),
         ptm_op_attention(out.o, q.o, k.o, v.o, scale, &oo));
    char what[96];
    snprintf(what, sizeof what, "attention B%lld Sq%lld Sk%lld H%lld/%lld mask %d causal %d",
             (long long)c->B, (long long)c->Sq, (long long)c->Sk, (long long)c->H,
             (long long)c->Hkv, (int)c->mask_dt, c->causal);
    expect_close(out, 1e-5, 1e-5, what);
    struct pair all[] = {q, k, v, fused, mask, bias, out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        pair_free(all[i]);
    }
}

Test(opencl, attention_matches_cpu_with_masks_gqa_causal_and_bias)
{
    const struct attn_case cases[] = {
        {2, 5, 5, 4, 4, 16, -1, 0, 0, 0},      {2, 7, 7, 4, 2, 8, PTM_I64, 0, 0, 0},
        {2, 6, 6, 6, 1, 12, PTM_F32, 1, 0, 0}, {3, 4, 9, 4, 2, 16, PTM_I32, 1, 1, 5},
        {1, 1, 9, 8, 2, 64, PTM_I64, 1, 0, 8}, {2, 5, 5, 2, 2, 130, PTM_F32, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_attention(&cases[i]);
    }
}

static void check_rope(ptm_dtype pos_dt, int neox, int32_t rot)
{
    int64_t B = 2, S = 5, H = 3, D = 16, sx[4] = {B, S, H, D}, sp[2] = {B, S}, half = rot / 2;
    struct pair x = mk_rand(PTM_F32, 4, sx);
    int32_t p32[10];
    int64_t p64[10];
    for (int i = 0; i < 10; i++) {
        p32[i] = i * 7 % 11 + 3;
        p64[i] = p32[i];
    }
    float inv[8];
    for (int64_t i = 0; i < half; i++) {
        inv[i] = powf(10000.0f, -2.0f * (float)i / (float)rot);
    }
    struct pair pos = pos_dt == PTM_I32 ? mk(PTM_I32, 2, sp, p32) : mk(PTM_I64, 2, sp, p64);
    struct pair f = mk(PTM_F32, 1, &half, inv);
    BOTH(ptm_op_rope(x.c, pos.c, f.c, 0.7f, rot, neox),
         ptm_op_rope(x.o, pos.o, f.o, 0.7f, rot, neox));
    expect_close(x, 1e-5, 1e-5, neox ? "rope neox" : "rope interleaved");
    pair_free(x);
    pair_free(pos);
    pair_free(f);
}

Test(opencl, rope_matches_cpu_in_both_layouts)
{
    check_rope(PTM_I64, 1, 16);
    check_rope(PTM_I32, 1, 10);
    check_rope(PTM_I64, 0, 16);
    check_rope(PTM_I32, 0, 6);
}

Test(opencl, convert_rounds_like_the_cpu_and_gathers_strided_rows)
{
    int64_t s[2] = {6, 50}, so[2] = {6, 21};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    float big[300];
    for (int i = 0; i < 300; i++) {
        big[i] = frand() * (i % 3 == 0 ? 70000.0f : i % 3 == 1 ? 1e-6f : 3.0f);
    }
    big[7] = NAN;
    big[8] = INFINITY;
    struct pair src = mk(PTM_F32, 2, s, big);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            struct pair x = mk_empty(dts[i], 2, s), y = mk_empty(dts[j], 2, s);
            struct pair ys = mk_empty(dts[j], 2, so), xs = {NULL, NULL};
            BOTH(ptm_op_convert(x.c, src.c), ptm_op_convert(x.o, src.o));
            BOTH(ptm_op_convert(y.c, x.c), ptm_op_convert(y.o, x.o));
            char what[64];
            snprintf(what, sizeof what, "convert %s -> %s", ptm_dtype_name(dts[i]),
                     ptm_dtype_name(dts[j]));
            expect_same_bytes(y, what);
            cr_assert_eq(ptm_tensor_narrow(x.c, 1, 17, 21, &xs.c), PTM_OK);
            cr_assert_eq(ptm_tensor_narrow(x.o, 1, 17, 21, &xs.o), PTM_OK);
            BOTH(ptm_op_convert(ys.c, xs.c), ptm_op_convert(ys.o, xs.o));
            expect_same_bytes(ys, what);
            pair_free(x);
            pair_free(y);
            pair_free(xs);
            pair_free(ys);
        }
    }
    pair_free(src);
}

Test(opencl, device_name_says_which_device)
{
    ocl_dev();
    char name[256];
    cr_assert_eq(ptm_backend_device_name("opencl", 0, name, sizeof name), PTM_OK);
    cr_expect(strncmp(name, "opencl:0 (", 10) == 0, "%s", name);
}

/* ---- golden: the fixtures of test_bert.c and test_llama.c on "opencl" --------------------- */

static ptm_model *load_on_opencl(const char *dir, const char *dtype)
{
    ocl_dev();
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = dtype, .device = "opencl"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    return m;
}

static ptm_st_file *open_st(const char *dir, const char *file)
{
    char path[512];
    ptm_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    return f;
}

/* Every tensor of inputs.safetensors, on the OpenCL device (a plugin reads inputs where the
 * model lives). */
static ptm_tensor_map *inputs_on_opencl(ptm_st_file *f)
{
    ptm_tensor_map *in = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    for (size_t i = 0; i < ptm_st_count(f); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(f, i);
        ptm_tensor *x = NULL;
        cr_assert_eq(ptm_tensor_from_host(ocl_dev(), t->dtype, t->ndim, t->shape, t->data, &x),
                     PTM_OK, "%s", ptm_last_error());
        cr_assert_eq(ptm_tensor_map_set(in, t->name, x), PTM_OK);
        ptm_tensor_free(x);
    }
    return in;
}

/* Output name of out as host floats (ptm_tensor_data is NULL on this device). */
static float *read_output(ptm_tensor_map *out, const char *dir, const struct ptm_st_tensor *want)
{
    ptm_tensor *got = ptm_tensor_map_get(out, want->name);
    cr_assert_not_null(got, "%s: output %s missing", dir, want->name);
    cr_assert_null(ptm_tensor_data(got));
    cr_assert_eq(ptm_tensor_nbytes(got), want->nbytes, "%s: %s size", dir, want->name);
    float *g = malloc(want->nbytes + 1);
    cr_assert_eq(ptm_tensor_read(got, g, want->nbytes), PTM_OK, "%s", ptm_last_error());
    return g;
}

/* Max abs error over rows [B, S, row] whose mask is 1 (mask NULL or no seq dim: all rows). */
static double max_error(const float *got, const struct ptm_st_tensor *want, const int64_t *mask,
                        int64_t S)
{
    const float *w = want->data;
    int64_t row = want->shape[want->ndim - 1], n = (int64_t)want->nbytes / 4;
    double err = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask != NULL && want->ndim == 3 &&
            mask[(i / row / want->shape[1]) * S + (i / row) % want->shape[1]] == 0) {
            continue;
        }
        double d = fabs((double)got[i] - (double)w[i]);
        err = d > err || isnan(d) ? d : err;
    }
    return err;
}

/* Run dir's inputs on "opencl" and compare every output transformers wrote. masked: LLaMA's
 * left-padded batches, compared only at positions whose attention_mask is 1. */
static double check_golden(const char *dir, const char *dtype, double tol, int masked)
{
    ptm_model *m = load_on_opencl(dir, dtype);
    ptm_st_file *inputs = open_st(dir, "inputs.safetensors");
    ptm_st_file *expected = open_st(dir, "outputs.safetensors");
    ptm_tensor_map *in = inputs_on_opencl(inputs), *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s: %s", dir, ptm_last_error());
    const int64_t *mask = NULL;
    int64_t S = 0;
    for (size_t i = 0; masked && i < ptm_st_count(inputs); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(inputs, i);
        if (strcmp(t->name, "attention_mask") == 0 && t->dtype == PTM_I64) {
            mask = t->data;
            S = t->shape[1];
        }
    }
    double worst = 0;
    for (size_t i = 0; i < ptm_st_count(expected); i++) {
        const struct ptm_st_tensor *want = ptm_st_at(expected, i);
        float *got = read_output(out, dir, want);
        double err = max_error(got, want, mask, S);
        cr_expect(err <= tol, "%s: %s max abs error %.3g > %.3g", dir, want->name, err, tol);
        worst = err > worst ? err : worst;
        free(got);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inputs);
    ptm_st_close(expected);
    ptm_model_free(m);
    return worst;
}

#define GOLDEN(name, fixture, dtype, tol, masked)                                                  \
    Test(opencl, name)                                                                             \
    {                                                                                              \
        double e = check_golden(FIXTURE(fixture), dtype, tol, masked);                             \
        cr_log_info("%s: max abs error %.3g", fixture, e);                                         \
    }

GOLDEN(bert_matches_transformers_with_hidden_states, "bert-tiny", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_gelu_new, "bert-tiny-gelu-new", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_relu, "bert-tiny-relu", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_masked_lm, "bert-tiny-mlm", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_sequence_classification, "bert-tiny-seqcls", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_question_answering, "bert-tiny-qa", NULL, PTM_TOL_F32, 0)
GOLDEN(bert_matches_transformers_bf16_weights, "bert-tiny-bf16", "auto", PTM_TOL_BF16, 0)
GOLDEN(llama_matches_transformers_mha, "llama-tiny", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_gqa_group_2, "llama-tiny-gqa2", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_mqa, "llama-tiny-mqa", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_head_dim, "llama-tiny-headdim", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_bias, "llama-tiny-bias", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_rope_yarn, "llama-tiny-rope-yarn", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_rope_llama3, "llama-tiny-rope-llama3", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_base_with_hidden_states, "llama-tiny-base", NULL, PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_bf16_weights, "llama-tiny-bf16", "auto", PTM_TOL_F32, 1)
GOLDEN(llama_matches_transformers_sequence_classification, "llama-tiny-seqcls", NULL, PTM_TOL_F32,
       1)

/* Greedy generation keeps the logits on the device and reads them back each step. */
Test(opencl, llama_generates_transformers_tokens_greedily)
{
    const char *dir = FIXTURE("llama-tiny");
    ptm_model *m = load_on_opencl(dir, NULL);
    ptm_st_file *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *ids = NULL, *mask = NULL, *want = NULL;
    for (size_t i = 0; i < ptm_st_count(g); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(g, i);
        ids = strcmp(t->name, "prompt_ids") == 0 ? t : ids;
        mask = strcmp(t->name, "prompt_mask") == 0 ? t : mask;
        want = strcmp(t->name, "sequences") == 0 ? t : want;
    }
    cr_assert(ids && mask && want);
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = want->shape[1] - ids->shape[1];
    int64_t *out = NULL, len = 0;
    cr_assert_eq(
        ptm_generate(m, ids->data, mask->data, ids->shape[0], ids->shape[1], &o, &out, &len),
        PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(len, want->shape[1]);
    cr_expect_arr_eq(out, want->data, (size_t)(want->shape[0] * len) * sizeof *out);
    ptm_free(out);
    ptm_st_close(g);
    ptm_model_free(m);
}

/* ---- probe and program cache: each case runs in a fresh child process ---------------------- */

static int saw_cache_hit;

static void capture_log(int32_t level, const char *msg, void *user)
{
    if (strstr(msg, "opencl: program from cache") != NULL) {
        saw_cache_hit = 1;
    }
}

/* A child that starts the backend with env name=value: exit 1 built from source, 2 loaded
 * from the cache, 3 no device, 4 no device with "no platform" in the message. */
static int start_backend_in_child(const char *name, const char *value)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        setenv(name, value, 1);
        ptm_log_set(capture_log, NULL);
        ptm_log_set_level(PTM_LOG_DEBUG);
        ptm_device *d = NULL;
        if (ptm_device_get("opencl", &d) != PTM_OK) {
            _exit(strstr(ptm_last_error(), "opencl: no platform") != NULL ? 4 : 3);
        }
        _exit(saw_cache_hit ? 2 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *cache_file(const char *home)
{
    static char path[600];
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/ptm/opencl/*.bin", home);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(path, sizeof path, p), "no cache entry under %s", home);
    pclose(p);
    path[strcspn(path, "\n")] = '\0';
    return path;
}

Test(opencl, second_process_loads_the_program_from_the_cache, .timeout = 120)
{
    char home[] = "/tmp/ptm-ocl-cache-XXXXXX";
    cr_assert_not_null(mkdtemp(home));
    int first = start_backend_in_child("XDG_CACHE_HOME", home);
    if (first == 3) {
        ocl_dev(); /* skips, saying why */
    }
    cr_assert_eq(first, 1, "first start: %d", first);
    cr_expect_eq(start_backend_in_child("XDG_CACHE_HOME", home), 2);
    /* A corrupt entry is ignored and rebuilt, and the rebuilt one is used next time. */
    FILE *f = fopen(cache_file(home), "r+b");
    cr_assert_not_null(f);
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fputc(0xa5, f);
    fclose(f);
    cr_expect_eq(start_backend_in_child("XDG_CACHE_HOME", home), 1);
    cr_expect_eq(start_backend_in_child("XDG_CACHE_HOME", home), 2);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", home);
    cr_expect_eq(system(cmd), 0);
}

Test(opencl, probe_without_a_platform_says_why)
{
    char dir[] = "/tmp/ptm-ocl-vendors-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    /* ocl-icd reads ICDs from OCL_ICD_VENDORS instead of /etc/OpenCL/vendors. */
    int rc = start_backend_in_child("OCL_ICD_VENDORS", dir);
    rmdir(dir);
    cr_expect_eq(rc, 4, "child exited %d", rc);
}
