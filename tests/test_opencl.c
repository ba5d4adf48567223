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

#include "backend_pair.h"
#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_device *ocl_dev(void)
{
    ptm_device *d = NULL;
    if (ptm_device_get("opencl", &d) != PTM_OK) {
        cr_skip_test("no OpenCL device: %s", ptm_last_error());
    }
    return d;
}

/* Every test's random data starts from this seed. */
static void use_opencl(void)
{
    pair_target_set((struct pair_target){ocl_dev, "opencl", 0x9e3779b97f4a7c15ull});
}

TestSuite(opencl, .init = use_opencl);

/* The checks that are the same on every backend. */
BACKEND_PAIR_TESTS(opencl)

/* ---- ops --------------------------------------------------------------------------------- */

Test(opencl, matmul_matches_cpu_for_each_weight_dtype_and_layout)
{
    ptm_dtype dts[] = {PTM_F32, PTM_F16, PTM_BF16};
    for (int d = 0; d < 3; d++) {
        check_matmul(7, 37, 19, dts[d], 1, PTM_UNARY_NONE, 1, 1e-5);
        check_matmul(7, 37, 19, dts[d], 0, PTM_UNARY_NONE, 0, 1e-5);
    }
    check_matmul(7, 37, 19, PTM_F32, 1, PTM_UNARY_GELU, 1, 1e-5);
    check_matmul(7, 37, 19, PTM_F32, 1, PTM_UNARY_GELU_TANH, 1, 1e-5);
    check_matmul(7, 37, 19, PTM_F32, 1, PTM_UNARY_RELU, 0, 1e-5);
    check_matmul(7, 37, 19, PTM_F32, 1, PTM_UNARY_SILU, 1, 1e-5);
}

Test(opencl, norms_match_cpu_with_residual_and_bias)
{
    int64_t s[2] = {5, 300};
    check_norms(s);
}

Test(opencl, softmax_matches_cpu_on_long_and_short_rows)
{
    int64_t shapes[2][2] = {{4, 1000}, {9, 3}};
    for (int i = 0; i < 2; i++) {
        check_softmax(shapes[i]);
    }
}

Test(opencl, attention_matches_cpu_with_masks_gqa_causal_and_bias)
{
    const struct attn_case cases[] = {
        {2, 5, 5, 4, 4, 16, -1, 0, 0, 0, 0},      {2, 7, 7, 4, 2, 8, PTM_I64, 0, 0, 0, 0},
        {2, 6, 6, 6, 1, 12, PTM_F32, 1, 0, 0, 0}, {3, 4, 9, 4, 2, 16, PTM_I32, 1, 1, 5, 0},
        {1, 1, 9, 8, 2, 64, PTM_I64, 1, 0, 8, 0}, {2, 5, 5, 2, 2, 130, PTM_F32, 0, 1, 0, 0},
    };
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Positions i * 7 % 11 + 3; attention factor 0.7. */
Test(opencl, rope_matches_cpu_in_both_layouts)
{
    check_rope_layouts(0.7f, 0.7f, 7, 11);
}

Test(opencl, convert_rounds_like_the_cpu_and_gathers_strided_rows)
{
    check_convert(0);
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
