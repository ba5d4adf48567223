/*
 * test_cuda.c - the CUDA backend (backends/cuda) against the CPU backend: every op on random
 * inputs with odd shapes, strided views, masks, GQA, causal offsets, biases and F16/BF16
 * weights, compared with the same op on "cpu". Attention covers both of its kernels: the tiled
 * one (several query blocks, partial key tiles, head dims up to 256) and the split-K decode one
 * (one query against thousands of keys). Greedy generation of the LLaMA and T5 fixtures runs
 * on "cuda" (KV cache, decode attention) and must give transformers' tokens; test_golden.c
 * already runs every forward fixture on every backend present. Without a usable CUDA device
 * every test but the probe test is skipped, with the backend's reason.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_device *cpu_dev(void)
{
    ptm_device *d = NULL;
    cr_assert_eq(ptm_device_get("cpu", &d), PTM_OK, "%s", ptm_last_error());
    return d;
}

static ptm_device *cuda_dev(void)
{
    ptm_device *d = NULL;
    if (ptm_device_get("cuda", &d) != PTM_OK) {
        cr_skip_test("%s", ptm_last_error());
    }
    return d;
}

/* Without a device the probe says why (naming CUDA's call and error where one failed); with
 * one, the device has a name. Runs (and passes) on every machine. */
Test(cuda, probe_counts_devices_or_says_why)
{
    int32_t n = -1;
    cr_assert_eq(ptm_backend_devices("cuda", &n), PTM_OK, "%s", ptm_last_error());
    if (n == 0) {
        const char *why = ptm_last_error();
        cr_expect(strncmp(why, "cuda: ", 6) == 0 && strlen(why) > 20, "%s", why);
        cr_log_info("cuda backend absent: %s", why);
        return;
    }
    cr_assert_eq(n, 1);
    char name[256];
    cr_assert_eq(ptm_backend_device_name("cuda", 0, name, sizeof name), PTM_OK);
    cr_expect(strncmp(name, "cuda:0 (", 8) == 0, "%s", name);
    cr_log_info("%s", name);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

/* The same host data as a tensor on both devices. */
struct pair {
    ptm_tensor *c, *g;
};

static struct pair mk(ptm_dtype dt, int32_t nd, const int64_t *shape, const void *data)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_from_host(cpu_dev(), dt, nd, shape, data, &p.c), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_tensor_from_host(cuda_dev(), dt, nd, shape, data, &p.g), PTM_OK, "%s",
                 ptm_last_error());
    return p;
}

/* Random values in [-1, 1), converted to dt by the CPU backend; both devices get its bytes. */
static struct pair mk_rand(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) {
        n *= shape[i];
    }
    float *f = malloc((size_t)n * sizeof *f + 1);
    for (int64_t i = 0; i < n; i++) {
        f[i] = frand();
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

static struct pair mk_empty(ptm_dtype dt, int32_t nd, const int64_t *shape)
{
    struct pair p = {NULL, NULL};
    cr_assert_eq(ptm_tensor_new(cpu_dev(), dt, nd, shape, &p.c), PTM_OK);
    cr_assert_eq(ptm_tensor_new(cuda_dev(), dt, nd, shape, &p.g), PTM_OK, "%s", ptm_last_error());
    return p;
}

static void pair_free(struct pair p)
{
    ptm_tensor_free(p.c);
    ptm_tensor_free(p.g);
}

static void narrow(struct pair *whole, int32_t dim, int64_t start, int64_t len, struct pair *out)
{
    cr_assert_eq(ptm_tensor_narrow(whole->c, dim, start, len, &out->c), PTM_OK);
    cr_assert_eq(ptm_tensor_narrow(whole->g, dim, start, len, &out->g), PTM_OK);
}

/* Both outputs (contiguous F32) agree within abs + rel * |cpu|. */
static void expect_close(struct pair p, double abs_tol, double rel_tol, const char *what)
{
    size_t bytes = ptm_tensor_nbytes(p.c);
    int64_t n = ptm_tensor_numel(p.c);
    float *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    cr_assert_eq(ptm_tensor_read(p.c, a, bytes), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_tensor_read(p.g, b, bytes), PTM_OK, "%s: %s", what, ptm_last_error());
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) - rel_tol * fabs((double)a[i]);
        if (d > worst || isnan(d)) {
            worst = d;
            at = i;
        }
    }
    cr_expect(worst <= abs_tol, "%s: element %lld: cpu %.9g, cuda %.9g", what, (long long)at,
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
    cr_assert_eq(ptm_tensor_read(p.g, b, bytes), PTM_OK, "%s: %s", what, ptm_last_error());
    cr_expect(memcmp(a, b, bytes) == 0, "%s: bytes differ", what);
    free(a);
    free(b);
}

#define BOTH(call_c, call_g)                                                                       \
    do {                                                                                           \
        cr_assert_eq((call_c), PTM_OK, "cpu: %s", ptm_last_error());                               \
        cr_assert_eq((call_g), PTM_OK, "cuda: %s", ptm_last_error());                              \
    } while (0)

/* ---- GEMM ---------------------------------------------------------------------------------- */

static void check_matmul(int64_t M, int64_t K, int64_t N, ptm_dtype wdt, int trans, int32_t act,
                         int has_bias, double abs_tol)
{
    int64_t sa[3] = {1, M, K}, so[3] = {1, M, N}, sb[2] = {trans ? N : K, trans ? K : N};
    struct pair a = mk_rand(PTM_F32, 3, sa), b = mk_rand(wdt, 2, sb);
    struct pair bias = has_bias ? mk_rand(PTM_F32, 1, &N) : (struct pair){NULL, NULL};
    struct pair out = mk_empty(PTM_F32, 3, so);
    uint32_t flags = (trans ? PTM_MM_TRANS_B : 0) | ((uint32_t)act << PTM_MM_ACT_SHIFT);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, bias.c, flags),
         ptm_op_matmul(out.g, a.g, b.g, bias.g, flags));
    char what[96];
    snprintf(what, sizeof what, "matmul %lldx%lldx%lld %s trans %d act %d", (long long)M,
             (long long)K, (long long)N, ptm_dtype_name(wdt), trans, act);
    expect_close(out, abs_tol, 1e-5, what);
    pair_free(a);
    pair_free(b);
    pair_free(bias);
    pair_free(out);
}

Test(cuda, matmul_matches_cpu_for_each_weight_dtype_layout_and_activation)
{
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    for (int d = 0; d < 3; d++) {
        check_matmul(7, 37, 19, dts[d], 1, PTM_UNARY_NONE, 1, 1e-5);
        check_matmul(7, 37, 19, dts[d], 0, PTM_UNARY_NONE, 0, 1e-5);
        check_matmul(70, 129, 65, dts[d], 1, PTM_UNARY_NONE, 1, 1e-5);
    }
    int32_t acts[] = {PTM_UNARY_GELU, PTM_UNARY_GELU_TANH, PTM_UNARY_RELU, PTM_UNARY_SILU};
    for (int i = 0; i < 4; i++) {
        check_matmul(5, 33, 17, PTM_F32, 1, acts[i], i % 2, 1e-5);
    }
}

/* A 16-bit weight of more than 16 Mi elements is widened in two slices of output columns. The
 * K = 4097 dot products of [-1, 1) values differ between summation orders by a few 1e-6. */
Test(cuda, matmul_widens_a_large_half_weight_in_slices)
{
    check_matmul(3, 4097, 4099, PTM_F16, 1, PTM_UNARY_NONE, 1, 1e-4);
    check_matmul(3, 4097, 4099, PTM_BF16, 0, PTM_UNARY_NONE, 0, 1e-4);
}

Test(cuda, matmul_reads_a_column_slice_of_a_wider_tensor)
{
    int64_t sw[2] = {9, 40}, sb[2] = {11, 24}, so[2] = {9, 11};
    struct pair w = mk_rand(PTM_F32, 2, sw), b = mk_rand(PTM_BF16, 2, sb);
    struct pair out = mk_empty(PTM_F32, 2, so), a = {NULL, NULL};
    narrow(&w, 1, 13, 24, &a);
    BOTH(ptm_op_matmul(out.c, a.c, b.c, NULL, PTM_MM_TRANS_B),
         ptm_op_matmul(out.g, a.g, b.g, NULL, PTM_MM_TRANS_B));
    expect_close(out, 1e-5, 1e-5, "matmul on a slice");
    pair_free(w);
    pair_free(a);
    pair_free(b);
    pair_free(out);
}

/* ---- pointwise, norms, softmax --------------------------------------------------------------- */

Test(cuda, unary_ops_match_cpu)
{
    int64_t s[2] = {3, 333};
    struct pair x = mk_rand(PTM_F32, 2, s), out = mk_empty(PTM_F32, 2, s);
    int32_t ops[] = {PTM_UNARY_GELU, PTM_UNARY_GELU_TANH, PTM_UNARY_RELU, PTM_UNARY_SILU,
                     PTM_UNARY_TANH};
    for (int i = 0; i < 5; i++) {
        BOTH(ptm_op_unary(out.c, x.c, ops[i]), ptm_op_unary(out.g, x.g, ops[i]));
        char what[32];
        snprintf(what, sizeof what, "unary %d", (int)ops[i]);
        expect_close(out, 1e-6, 1e-6, what);
    }
    pair_free(x);
    pair_free(out);
}

Test(cuda, binary_ops_broadcast_b_over_leading_dims)
{
    int64_t sa[3] = {3, 5, 7}, sb1[1] = {7}, sb2[2] = {5, 7};
    struct pair a = mk_rand(PTM_F32, 3, sa), out = mk_empty(PTM_F32, 3, sa);
    struct pair bs[3] = {mk_rand(PTM_F32, 1, sb1), mk_rand(PTM_F32, 2, sb2),
                         mk_rand(PTM_F32, 3, sa)};
    for (int i = 0; i < 3; i++) {
        BOTH(ptm_op_add(out.c, a.c, bs[i].c), ptm_op_add(out.g, a.g, bs[i].g));
        expect_close(out, 0, 0, "add");
        BOTH(ptm_op_mul(out.c, a.c, bs[i].c), ptm_op_mul(out.g, a.g, bs[i].g));
        expect_close(out, 0, 0, "mul");
        pair_free(bs[i]);
    }
    BOTH(ptm_op_scale(out.c, a.c, 0.37f), ptm_op_scale(out.g, a.g, 0.37f));
    expect_close(out, 0, 0, "scale");
    pair_free(a);
    pair_free(out);
}

Test(cuda, norms_match_cpu_with_residual_and_bias)
{
    int64_t shapes[2][2] = {{5, 300}, {3, 4099}};
    for (int k = 0; k < 2; k++) {
        int64_t *s = shapes[k], n = s[1];
        struct pair x = mk_rand(PTM_F32, 2, s), r = mk_rand(PTM_F32, 2, s);
        struct pair w = mk_rand(PTM_F32, 1, &n), b = mk_rand(PTM_F32, 1, &n);
        struct pair out = mk_empty(PTM_F32, 2, s);
        BOTH(ptm_op_layer_norm(out.c, x.c, r.c, w.c, b.c, 1e-12f),
             ptm_op_layer_norm(out.g, x.g, r.g, w.g, b.g, 1e-12f));
        expect_close(out, 1e-5, 1e-5, "layer norm");
        BOTH(ptm_op_layer_norm(out.c, x.c, NULL, w.c, NULL, 1e-5f),
             ptm_op_layer_norm(out.g, x.g, NULL, w.g, NULL, 1e-5f));
        expect_close(out, 1e-5, 1e-5, "layer norm, no residual or bias");
        BOTH(ptm_op_rms_norm(out.c, x.c, r.c, w.c, 1e-6f),
             ptm_op_rms_norm(out.g, x.g, r.g, w.g, 1e-6f));
        expect_close(out, 1e-5, 1e-5, "rms norm");
        BOTH(ptm_op_rms_norm(out.c, x.c, NULL, w.c, 1e-6f),
             ptm_op_rms_norm(out.g, x.g, NULL, w.g, 1e-6f));
        expect_close(out, 1e-5, 1e-5, "rms norm, no residual");
        struct pair all[] = {x, r, w, b, out};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            pair_free(all[i]);
        }
    }
}

Test(cuda, softmax_matches_cpu_on_long_short_and_masked_rows)
{
    int64_t shapes[3][2] = {{4, 1000}, {9, 3}, {2, 32003}};
    for (int i = 0; i < 3; i++) {
        struct pair x = mk_rand(PTM_F32, 2, shapes[i]), out = mk_empty(PTM_F32, 2, shapes[i]);
        BOTH(ptm_op_softmax(out.c, x.c), ptm_op_softmax(out.g, x.g));
        expect_close(out, 1e-7, 1e-5, "softmax");
        pair_free(x);
        pair_free(out);
    }
    /* A row of -inf (every position masked) gives zeros on both, not NaN. */
    int64_t s[2] = {2, 5};
    float v[10] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 1, 2, 3, 4, 5};
    struct pair x = mk(PTM_F32, 2, s, v), out = mk_empty(PTM_F32, 2, s);
    BOTH(ptm_op_softmax(out.c, x.c), ptm_op_softmax(out.g, x.g));
    expect_close(out, 1e-7, 1e-5, "softmax of a masked row");
    pair_free(x);
    pair_free(out);
}

/* ---- gather, RoPE, conversion -----------------------------------------------------------------
 */

Test(cuda, embedding_gathers_rows_of_each_table_dtype)
{
    int64_t st[2] = {13, 10}, si[2] = {2, 3}, so[3] = {2, 3, 10};
    int32_t ids32[6] = {0, 12, 5, 5, 7, 1};
    int64_t ids64[6] = {3, 2, 1, 0, 12, 11};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    struct pair i32 = mk(PTM_I32, 2, si, ids32), i64 = mk(PTM_I64, 2, si, ids64);
    for (int d = 0; d < 3; d++) {
        struct pair t = mk_rand(dts[d], 2, st), out = mk_empty(PTM_F32, 3, so);
        BOTH(ptm_op_embedding(out.c, t.c, i32.c), ptm_op_embedding(out.g, t.g, i32.g));
        expect_close(out, 0, 0, "embedding, I32 ids");
        BOTH(ptm_op_embedding(out.c, t.c, i64.c), ptm_op_embedding(out.g, t.g, i64.g));
        expect_close(out, 0, 0, "embedding, I64 ids");
        pair_free(t);
        pair_free(out);
    }
    pair_free(i32);
    pair_free(i64);
}

Test(cuda, embedding_rejects_an_id_outside_the_table)
{
    int64_t st[2] = {4, 8}, n = 3, so[2] = {3, 8};
    int64_t ids[3] = {1, 4, 0};
    struct pair t = mk_rand(PTM_F32, 2, st), i = mk(PTM_I64, 1, &n, ids);
    struct pair out = mk_empty(PTM_F32, 2, so);
    cr_assert_eq(ptm_op_embedding(out.g, t.g, i.g), PTM_E_RANGE);
    cr_expect_not_null(strstr(ptm_last_error(), "id 4 at position 1"), "%s", ptm_last_error());
    pair_free(t);
    pair_free(i);
    pair_free(out);
}

static void check_rope(ptm_dtype pos_dt, int neox, int32_t rot, float attn_factor)
{
    int64_t B = 2, S = 5, H = 3, D = 16, sx[4] = {B, S, H, D}, sp[2] = {B, S}, half = rot / 2;
    struct pair x = mk_rand(PTM_F32, 4, sx);
    int32_t p32[10];
    int64_t p64[10];
    for (int i = 0; i < 10; i++) {
        p32[i] = i * 977 % 4099 + 3; /* large angles: range reduction matters */
        p64[i] = p32[i];
    }
    float inv[8];
    for (int64_t i = 0; i < half; i++) {
        inv[i] = powf(10000.0f, -2.0f * (float)i / (float)rot);
    }
    struct pair pos = pos_dt == PTM_I32 ? mk(PTM_I32, 2, sp, p32) : mk(PTM_I64, 2, sp, p64);
    struct pair f = mk(PTM_F32, 1, &half, inv);
    BOTH(ptm_op_rope(x.c, pos.c, f.c, attn_factor, rot, neox),
         ptm_op_rope(x.g, pos.g, f.g, attn_factor, rot, neox));
    expect_close(x, 1e-5, 1e-5, neox ? "rope neox" : "rope interleaved");
    pair_free(x);
    pair_free(pos);
    pair_free(f);
}

Test(cuda, rope_matches_cpu_in_both_layouts)
{
    check_rope(PTM_I64, 1, 16, 1.0f);
    check_rope(PTM_I32, 1, 10, 0.7f);
    check_rope(PTM_I64, 0, 16, 1.0f);
    check_rope(PTM_I32, 0, 6, 0.7f);
}

Test(cuda, convert_rounds_like_the_cpu_and_gathers_strided_rows)
{
    int64_t s[2] = {6, 50}, so[2] = {6, 21};
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    float big[300];
    for (int i = 0; i < 300; i++) {
        big[i] = frand() * (i % 3 == 0 ? 70000.0f : i % 3 == 1 ? 1e-6f : 3.0f);
    }
    big[7] = NAN;
    big[8] = INFINITY;
    big[9] = -0.0f;
    struct pair src = mk(PTM_F32, 2, s, big);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            struct pair x = mk_empty(dts[i], 2, s), y = mk_empty(dts[j], 2, s);
            struct pair ys = mk_empty(dts[j], 2, so), xs = {NULL, NULL};
            BOTH(ptm_op_convert(x.c, src.c), ptm_op_convert(x.g, src.g));
            BOTH(ptm_op_convert(y.c, x.c), ptm_op_convert(y.g, x.g));
            char what[64];
            snprintf(what, sizeof what, "convert %s -> %s", ptm_dtype_name(dts[i]),
                     ptm_dtype_name(dts[j]));
            expect_same_bytes(y, what);
            narrow(&x, 1, 17, 21, &xs);
            BOTH(ptm_op_convert(ys.c, xs.c), ptm_op_convert(ys.g, xs.g));
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
static struct pair attn_mask(const struct attn_case *c)
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
static void check_attention(const struct attn_case *c)
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
    struct ptm_attention_opts og = {sizeof og, mask.g, bias.g, c->causal, c->q_offset};
    float scale = 1.0f / sqrtf((float)c->D);
    BOTH(ptm_op_attention(out.c, q.c, k.c, v.c, scale, &oc),
         ptm_op_attention(out.g, q.g, k.g, v.g, scale, &og));
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

/* The tiled kernel: 16 queries per block, keys in tiles of 32, head dims in the 64 / 128 / 256
 * instantiations. */
Test(cuda, tiled_attention_matches_cpu_with_masks_gqa_causal_and_bias)
{
    const struct attn_case cases[] = {
        {2, 5, 5, 4, 4, 16, -1, 0, 0, 0, 0},       {2, 7, 7, 4, 2, 8, PTM_I64, 0, 0, 0, 0},
        {2, 6, 6, 6, 1, 12, PTM_F32, 1, 0, 0, 0},  {3, 4, 9, 4, 2, 16, PTM_I32, 1, 1, 5, 0},
        {2, 5, 5, 2, 2, 130, PTM_F32, 0, 1, 0, 0}, {2, 40, 70, 4, 2, 64, PTM_I64, 1, 1, 30, 0},
        {1, 33, 33, 2, 1, 256, -1, 1, 0, 0, 0},    {2, 17, 45, 3, 3, 96, PTM_I32, 0, 1, 0, 1},
        {1, 20, 20, 2, 2, 32, -1, 1, 0, -5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_attention(&cases[i]);
    }
}

/* The split-K decode kernel: one query per (batch, head), keys split across blocks. */
Test(cuda, decode_attention_matches_cpu_over_long_caches)
{
    const struct attn_case cases[] = {
        {1, 1, 9, 8, 2, 64, PTM_I64, 1, 0, 8, 0},   {2, 1, 3000, 4, 1, 128, PTM_I64, 1, 0, 2999, 0},
        {1, 1, 4096, 2, 2, 256, -1, 0, 1, 0, 0},    {3, 1, 777, 6, 3, 64, PTM_F32, 1, 0, 500, 0},
        {2, 1, 100, 4, 4, 80, PTM_I32, 0, 1, 0, 1}, {1, 1, 1, 1, 1, 16, -1, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_attention(&cases[i]);
    }
}

/* ---- generation on the device --------------------------------------------------------------- */

static ptm_st_file *open_st(const char *dir, const char *file)
{
    char path[512];
    ptm_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    return f;
}

/* Greedy generation on "cuda" gives transformers' tokens. LLaMA's prompt comes from
 * generate.safetensors, T5's from inputs.safetensors (its encoder input). */
static void check_generate(const char *dir, int encdec, const char *ids_file, const char *ids_name,
                           const char *mask_name)
{
    cuda_dev();
    struct ptm_load_opts lo = {.struct_size = sizeof lo, .device = "cuda"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &lo, &m), PTM_OK, "%s: %s", dir, ptm_last_error());
    ptm_st_file *in = open_st(dir, ids_file), *g = open_st(dir, "generate.safetensors");
    const struct ptm_st_tensor *ids = ptm_st_find(in, ids_name), *mask = ptm_st_find(in, mask_name);
    const struct ptm_st_tensor *want = ptm_st_find(g, "sequences");
    cr_assert(ids && mask && want, "%s: fixture tensors missing", dir);
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = want->shape[1] - (encdec ? 1 : ids->shape[1]);
    int64_t *out = NULL, len = 0;
    cr_assert_eq(
        ptm_generate(m, ids->data, mask->data, ids->shape[0], ids->shape[1], &o, &out, &len),
        PTM_OK, "%s: %s", dir, ptm_last_error());
    cr_assert_eq(len, want->shape[1]);
    cr_expect_arr_eq(out, want->data, (size_t)(want->shape[0] * len) * sizeof *out, "%s", dir);
    ptm_free(out);
    ptm_st_close(in);
    ptm_st_close(g);
    ptm_model_free(m);
}

Test(cuda, llama_generates_transformers_tokens_greedily)
{
    check_generate(FIXTURE("llama-tiny"), 0, "generate.safetensors", "prompt_ids", "prompt_mask");
}

Test(cuda, t5_generates_transformers_tokens_greedily)
{
    check_generate(FIXTURE("t5-tiny"), 1, "inputs.safetensors", "input_ids", "attention_mask");
}
