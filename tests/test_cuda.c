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

#include "backend_pair.h"
#include "ptm/ptm.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

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

/* Every test's random data starts from this seed. */
static void use_cuda(void)
{
    pair_target_set((struct pair_target){cuda_dev, "cuda", 0x2545f4914f6cdd1dull});
}

TestSuite(cuda, .init = use_cuda);

/* The checks that are the same on every backend. */
BACKEND_PAIR_TESTS(cuda)

/* Q8_0 (int8 weights): quantizing gives the CPU's bytes and dequantizing its values; a Q8_0
 * weight multiplies as its dequantized F32 copy does. The device keeps activations F32 (the
 * CPU quantizes them per block too), so the reference is the CPU's product with that copy. */
Test(cuda, q8_0_quantizes_dequantizes_and_multiplies_as_its_float_copy)
{
    int64_t sw[2] = {40, 96}, sa[3] = {1, 5, 96}, so[3] = {1, 5, 40};
    struct pair w = mk_rand(PTM_F32, 2, sw), q = mk_empty(PTM_Q8_0, 2, sw);
    struct pair back = mk_empty(PTM_F32, 2, sw), a = mk_rand(PTM_F32, 3, sa);
    struct pair out = mk_empty(PTM_F32, 3, so);
    BOTH(ptm_op_convert(q.c, w.c), ptm_op_convert(q.d, w.d));
    expect_same_bytes(q, "quantize to Q8_0");
    BOTH(ptm_op_convert(back.c, q.c), ptm_op_convert(back.d, q.d));
    expect_same_bytes(back, "dequantize Q8_0");
    BOTH(ptm_op_matmul(out.c, a.c, back.c, NULL, PTM_MM_TRANS_B),
         ptm_op_matmul(out.d, a.d, q.d, NULL, PTM_MM_TRANS_B));
    expect_close(out, 1e-5, 1e-5, "matmul with a Q8_0 weight");
    pair_free(w);
    pair_free(q);
    pair_free(back);
    pair_free(a);
    pair_free(out);
}

/* ---- GEMM ---------------------------------------------------------------------------------- */

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

/* ---- pointwise, norms, softmax --------------------------------------------------------------- */

Test(cuda, norms_match_cpu_with_residual_and_bias)
{
    int64_t shapes[2][2] = {{5, 300}, {3, 4099}};
    for (int k = 0; k < 2; k++) {
        check_norms(shapes[k]);
    }
}

Test(cuda, softmax_matches_cpu_on_long_short_and_masked_rows)
{
    int64_t shapes[3][2] = {{4, 1000}, {9, 3}, {2, 32003}};
    for (int i = 0; i < 3; i++) {
        check_softmax(shapes[i]);
    }
    /* A row of -inf (every position masked) gives zeros on both, not NaN. */
    int64_t s[2] = {2, 5};
    float v[10] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, 1, 2, 3, 4, 5};
    struct pair x = mk(PTM_F32, 2, s, v), out = mk_empty(PTM_F32, 2, s);
    BOTH(ptm_op_softmax(out.c, x.c), ptm_op_softmax(out.d, x.d));
    expect_close(out, 1e-7, 1e-5, "softmax of a masked row");
    pair_free(x);
    pair_free(out);
}

/* ---- gather, RoPE, conversion -----------------------------------------------------------------
 */

/* Positions i * 977 % 4099 + 3: large angles, where range reduction matters; attention factor
 * 1 with the full rotation, 0.7 with a partial one. */
Test(cuda, rope_matches_cpu_in_both_layouts)
{
    check_rope_layouts(1.0f, 0.7f, 977, 4099);
}

Test(cuda, convert_rounds_like_the_cpu_and_gathers_strided_rows)
{
    check_convert(1);
}

/* ---- attention --------------------------------------------------------------------------------
 */

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
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
}

/* The split-K decode kernel: one query per (batch, head), keys split across blocks. */
Test(cuda, decode_attention_matches_cpu_over_long_caches)
{
    const struct attn_case cases[] = {
        {1, 1, 9, 8, 2, 64, PTM_I64, 1, 0, 8, 0},   {2, 1, 3000, 4, 1, 128, PTM_I64, 1, 0, 2999, 0},
        {1, 1, 4096, 2, 2, 256, -1, 0, 1, 0, 0},    {3, 1, 777, 6, 3, 64, PTM_F32, 1, 0, 500, 0},
        {2, 1, 100, 4, 4, 80, PTM_I32, 0, 1, 0, 1}, {1, 1, 1, 1, 1, 16, -1, 1, 0, 0, 0},
    };
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
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
