/*
 * test_device_map.c - ptm_load_opts.device_map (issue 8): the spec forms ("auto", one device,
 * a JSON object, KEY=DEVICE pairs) and their refusals, each naming the key, the parameter or
 * the module at fault; the placement report (hf_device_map); and models split across the
 * CPU and OpenCL backends (LLaMA, BERT, T5 fixtures made by transformers) giving the same
 * outputs as transformers and as the CPU alone, within the golden suite's F32 tolerance, and
 * the same greedy tokens with the KV cache. Splits need an OpenCL device and are skipped,
 * saying why, without one; everything else runs on the CPU alone.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_util.h"
#include "ptm/ptm.h"
#include "tolerance.h"

#define FIXTURE(x) PTM_TEST_FIXTURES "/" x

static ptm_status try_load(const char *dir, const char *map, const char *device, ptm_model **m)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .device_map = map, .device = device};
    *m = (ptm_model *)1; /* the call must overwrite it */
    return ptm_model_load(dir, &o, m);
}

static ptm_model *load_map(const char *dir, const char *map)
{
    ptm_model *m = NULL;
    cr_assert_eq(try_load(dir, map, NULL, &m), PTM_OK, "%s with %s: %s", dir, map,
                 ptm_last_error());
    return m;
}

/* Loading dir with map fails with st and a message holding each of want[]. */
static void refused(const char *dir, const char *map, ptm_status st, const char *const *want)
{
    ptm_model *m = NULL;
    ptm_status got = try_load(dir, map, NULL, &m);
    cr_assert_eq(got, st, "%s: status %s, expected %s (%s)", map, ptm_status_name(got),
                 ptm_status_name(st), ptm_last_error());
    cr_assert_null(m);
    for (; *want != NULL; want++) {
        cr_assert_not_null(strstr(ptm_last_error(), *want), "%s: \"%s\" not in \"%s\"", map, *want,
                           ptm_last_error());
    }
}

#define REFUSED(dir, map, st, ...)                                                                 \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__, NULL};                                           \
        refused((dir), (map), (st), want_);                                                        \
    } while (0)

static void skip_without_opencl(void)
{
    int32_t n = 0;
    if (ptm_backend_devices("opencl", &n) != PTM_OK || n == 0) {
        cr_skip_test("no OpenCL device: %s", ptm_last_error());
    }
}

static void setup(void)
{
    cr_assert_eq(ptm_plugins_scan(), PTM_OK);
}

TestSuite(device_map, .init = setup);

/* ------------------------------------------------------------------------------------------ */
/* Running a fixture                                                                           */

static ptm_tensor_map *run(ptm_model *m, const ptm_st_file *inputs)
{
    ptm_tensor_map *in = NULL, *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    for (size_t i = 0; i < ptm_st_count(inputs); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(inputs, i);
        set_host_input(in, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s", ptm_last_error());
    ptm_tensor_map_free(in);
    return out;
}

static float *host_copy(const ptm_tensor *t)
{
    size_t n = ptm_tensor_nbytes(t);
    float *h = malloc(n + 1);
    cr_assert_eq(ptm_tensor_read(t, h, n), PTM_OK, "%s", ptm_last_error());
    return h;
}

/* Max abs difference of a and b (n floats), skipping rows of row floats whose mask [B, S]
 * entry is 0 when masked. */
static double max_diff(const float *a, const float *b, size_t n, size_t row, const int64_t *mask)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        double e = fabs((double)a[k] - (double)b[k]);
        if (mask == NULL || mask[k / row] != 0) {
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    return worst;
}

/*
 * dir loaded with map: every output transformers wrote matches it and the CPU-alone run
 * within PTM_TOL_F32 (padded positions aside, as in the golden suite), and comes back on the
 * model's main device.
 */
static void check_split(const char *dir, const char *map)
{
    ptm_model *m = load_map(dir, map), *ref = load_map(dir, "cpu");
    ptm_st_file *inf = open_st(dir, "inputs.safetensors"),
                *outf = open_st(dir, "outputs.safetensors");
    ptm_tensor_map *got = run(m, inf), *cpu = run(ref, inf);
    const struct ptm_st_tensor *mask = ptm_st_find(inf, "attention_mask");
    int compared = 0;
    for (size_t i = 0; i < ptm_st_count(outf); i++) {
        const struct ptm_st_tensor *want = ptm_st_at(outf, i);
        ptm_tensor *g = ptm_tensor_map_get(got, want->name),
                   *c = ptm_tensor_map_get(cpu, want->name);
        if (c == NULL) {
            continue; /* another class's output */
        }
        cr_assert_not_null(g, "%s with %s: output %s missing", dir, map, want->name);
        cr_assert_eq(ptm_tensor_nbytes(g), want->nbytes, "%s: %s size", dir, want->name);
        cr_assert_eq(ptm_tensor_device(g), ptm_model_device(m), "%s: %s is on %s, not %s", dir,
                     want->name, ptm_device_name(ptm_tensor_device(g)),
                     ptm_device_name(ptm_model_device(m)));
        size_t n = want->nbytes / 4, row = n;
        int masked = mask && want->ndim >= 2 && want->shape[0] == mask->shape[0] &&
                     want->shape[1] == mask->shape[1];
        if (masked) {
            row = n / (size_t)(want->shape[0] * want->shape[1]);
        }
        float *hg = host_copy(g), *hc = host_copy(c);
        const int64_t *mk = masked ? mask->data : NULL;
        double e_hf = max_diff(hg, want->data, n, row, mk), e_cpu = max_diff(hg, hc, n, row, mk);
        cr_expect(e_hf <= PTM_TOL_F32, "%s with %s: %s differs from transformers by %.3g", dir, map,
                  want->name, e_hf);
        cr_expect(e_cpu <= PTM_TOL_F32, "%s with %s: %s differs from the CPU alone by %.3g", dir,
                  map, want->name, e_cpu);
        cr_log_info("%s with %s: %s max abs error %.3g (vs cpu %.3g)", dir, map, want->name, e_hf,
                    e_cpu);
        free(hg);
        free(hc);
        compared++;
    }
    cr_assert_gt(compared, 0, "%s: nothing compared", dir);
    ptm_tensor_map_free(got);
    ptm_tensor_map_free(cpu);
    ptm_st_close(inf);
    ptm_st_close(outf);
    ptm_model_free(m);
    ptm_model_free(ref);
}

/* Greedy generation (the KV cache on each layer's device) gives transformers' tokens. A
 * decoder-only fixture holds its prompt in generate.safetensors; an encoder-decoder's prompt
 * is its inputs and the decoder starts from the decoder start token. */
static void check_generate(const char *dir, const char *map)
{
    ptm_model *m = load_map(dir, map);
    ptm_st_file *g = open_st(dir, "generate.safetensors"),
                *inf = open_st(dir, "inputs.safetensors");
    const struct ptm_st_tensor *ids = ptm_st_find(g, "prompt_ids");
    const struct ptm_st_tensor *mask = ptm_st_find(g, "prompt_mask");
    const struct ptm_st_tensor *want = st_get(g, "sequences");
    int64_t new_tokens = ids ? want->shape[1] - ids->shape[1] : want->shape[1] - 1;
    if (ids == NULL) {
        ids = st_get(inf, "input_ids");
        mask = st_get(inf, "attention_mask");
    }
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    cr_assert_eq(ptm_generate_opts_init(m, &o), PTM_OK, "%s", ptm_last_error());
    o.max_new_tokens = new_tokens;
    int64_t *out = NULL, len = 0;
    cr_assert_eq(
        ptm_generate(m, ids->data, mask->data, ids->shape[0], ids->shape[1], &o, &out, &len),
        PTM_OK, "%s with %s: %s", dir, map, ptm_last_error());
    cr_assert_eq(len, want->shape[1], "%s: %lld tokens, transformers %lld", dir, (long long)len,
                 (long long)want->shape[1]);
    const int64_t *w = want->data;
    for (int64_t i = 0; i < want->shape[0] * len; i++) {
        cr_assert_eq(out[i], w[i], "%s with %s: row %lld position %lld: %lld, transformers %lld",
                     dir, map, (long long)(i / len), (long long)(i % len), (long long)out[i],
                     (long long)w[i]);
    }
    ptm_free(out);
    ptm_st_close(g);
    ptm_st_close(inf);
    ptm_model_free(m);
}

/* The report as "name=device,..." (a valid explicit device_map). */
static void report(const ptm_model *m, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ptm_model_device_map_count(m); i++) {
        ptm_device *d = NULL;
        const char *name = ptm_model_device_map_at(m, i, &d);
        cr_assert_not_null(name);
        n += (size_t)snprintf(buf + n, cap - n, "%s%s=%s", i ? "," : "", name, ptm_device_name(d));
        cr_assert_lt(n, cap);
    }
    cr_assert_null(ptm_model_device_map_at(m, ptm_model_device_map_count(m), NULL));
}

/* ------------------------------------------------------------------------------------------ */
/* The CPU alone                                                                               */

Test(device_map, one_device_is_a_map_with_one_entry)
{
    char buf[512];
    ptm_model *m = load_map(FIXTURE("llama-tiny"), "cpu");
    report(m, buf, sizeof buf);
    cr_assert_str_eq(buf, "=cpu:0");
    cr_assert_str_eq(ptm_device_name(ptm_model_device(m)), "cpu:0");
    ptm_model_free(m);
    check_split(FIXTURE("llama-tiny"), " cpu:0");
}

Test(device_map, without_a_map_the_report_is_the_device)
{
    char buf[512];
    ptm_model *m = NULL;
    cr_assert_eq(try_load(FIXTURE("bert-tiny"), NULL, NULL, &m), PTM_OK, "%s", ptm_last_error());
    report(m, buf, sizeof buf);
    cr_assert_str_eq(buf, "=cpu:0");
    ptm_model_free(m);
}

Test(device_map, explicit_maps_as_json_and_as_pairs)
{
    static const char *const maps[] = {
        "{\"model.embed_tokens\": \"cpu\", \"model.layers.0-1\": \"cpu:0\", "
        "\"model.norm\": \"cpu\", \"lm_head\": \"cpu\"}",
        " model.embed_tokens = cpu , model.layers.0-1=cpu,model.norm=cpu,lm_head=cpu",
        "model.layers.0=cpu,model.layers.1=cpu,=cpu",
        "{\"model\": \"cpu\", \"lm_head\": \"cpu\"}",
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        char buf[512];
        ptm_model *m = load_map(FIXTURE("llama-tiny"), maps[i]);
        report(m, buf, sizeof buf);
        cr_assert_str_eq(buf, "=cpu:0", "%s: report %s", maps[i], buf);
        ptm_model_free(m);
    }
}

Test(device_map, auto_uses_the_best_scoring_backend)
{
    ptm_model *m = load_map(FIXTURE("llama-tiny"), "auto");
    const char *be = ptm_device_name(ptm_model_device(m));
    for (size_t i = 0; i < ptm_model_n_params(m); i++) {
        const char *name = NULL;
        ptm_tensor *t = ptm_model_param_at(m, i, &name);
        const char *d = ptm_device_name(ptm_tensor_device(t));
        cr_assert_eq(strncmp(d, be, strcspn(be, ":")), 0, "%s on %s, the model on %s", name, d, be);
    }
    ptm_model_free(m);
    check_split(FIXTURE("llama-tiny"), "auto");
}

Test(device_map, refuses_an_unknown_device)
{
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0-1=nosuch:0,=cpu", PTM_E_NOT_FOUND,
            "model.layers.0-1", "nosuch");
    REFUSED(FIXTURE("llama-tiny"), "cpu:7", PTM_E_NOT_FOUND, "cpu:7");
    REFUSED(FIXTURE("llama-tiny"), "{\"\": 0}", PTM_E_INVAL, "\"\"", "must be a string");
}

Test(device_map, refuses_an_uncovered_parameter)
{
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0-1=cpu,model.norm=cpu,lm_head=cpu", PTM_E_INVAL,
            "model.embed_tokens.weight", "not covered");
}

Test(device_map, refuses_overlapping_keys)
{
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0-1=cpu,model.layers.1=cpu,=cpu", PTM_E_INVAL,
            "model.layers.0-1", "model.layers.1", "overlap");
    REFUSED(FIXTURE("llama-tiny"), "lm_head=cpu,lm_head=cpu,=cpu", PTM_E_INVAL, "lm_head", "twice");
    REFUSED(FIXTURE("llama-tiny"), "{\"lm_head\": \"cpu\", \"lm_head\": \"cpu\"}", PTM_E_FORMAT,
            "device_map");
}

Test(device_map, refuses_ill_formed_keys)
{
    REFUSED(FIXTURE("llama-tiny"), "model.layers.1-0=cpu,=cpu", PTM_E_INVAL, "1-0", "empty");
    REFUSED(FIXTURE("llama-tiny"), "model.layers.a-1=cpu,=cpu", PTM_E_INVAL, "a-1", "ill-formed");
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0-1.mlp=cpu,=cpu", PTM_E_INVAL, "0-1.mlp",
            "last component");
    REFUSED(FIXTURE("llama-tiny"), "model..norm=cpu,=cpu", PTM_E_INVAL, "model..norm", "empty");
    REFUSED(FIXTURE("llama-tiny"), "model.norm,=cpu", PTM_E_INVAL, "KEY=DEVICE");
    REFUSED(FIXTURE("llama-tiny"), "[\"cpu\"]", PTM_E_INVAL, "JSON object");
}

Test(device_map, refuses_keys_that_cover_nothing)
{
    REFUSED(FIXTURE("llama-tiny"), "model.layer.0=cpu,=cpu", PTM_E_INVAL, "model.layer.0",
            "covers no parameter");
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0-5=cpu,=cpu", PTM_E_INVAL, "model.layers.0-5",
            "model.layers.2 covers no parameter");
}

Test(device_map, refuses_device_and_device_map_together)
{
    ptm_model *m = NULL;
    cr_assert_eq(try_load(FIXTURE("llama-tiny"), "cpu", "cpu", &m), PTM_E_INVAL);
    cr_assert_null(m);
    cr_assert_not_null(strstr(ptm_last_error(), "both set"), "%s", ptm_last_error());
}

Test(device_map, new_model_takes_a_map)
{
    ptm_config *cfg = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("llama-tiny/config.json"), &cfg), PTM_OK);
    struct ptm_load_opts o = {.struct_size = sizeof o, .device_map = "model.layers.0-1=cpu,=cpu"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_new(cfg, NULL, &o, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_device_map_count(m), 1);
    ptm_model_free(m);
    o.device_map = "model.layers.0-1=cpu";
    cr_assert_eq(ptm_model_new(cfg, NULL, &o, &m), PTM_E_INVAL);
    cr_assert_null(m);
    ptm_config_free(cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* CPU + OpenCL                                                                                */

Test(device_map, llama_split_matches_cpu_and_transformers)
{
    skip_without_opencl();
    check_split(FIXTURE("llama-tiny"),
                "{\"model.embed_tokens\": \"cpu\", \"model.layers.0\": \"cpu\", "
                "\"model.layers.1\": \"opencl:0\", \"model.norm\": \"opencl:0\", "
                "\"lm_head\": \"cpu\"}");
    check_split(FIXTURE("llama-tiny"), "model.layers.0=opencl:0,model.norm=opencl:0,=cpu");
    check_split(FIXTURE("llama-tiny-gqa2"), "model.layers.1=opencl:0,=cpu"); /* tied head */
    check_split(FIXTURE("llama-tiny-seqcls"), "score=opencl:0,=cpu");
}

Test(device_map, llama_split_generates_transformers_tokens)
{
    skip_without_opencl();
    check_generate(FIXTURE("llama-tiny"), "model.layers.1=opencl:0,lm_head=opencl:0,=cpu");
    check_generate(FIXTURE("llama-tiny"), "model.layers.0=opencl:0,=cpu");
}

Test(device_map, bert_split_matches_cpu_and_transformers)
{
    skip_without_opencl();
    check_split(FIXTURE("bert-tiny"), "encoder.layer.1=opencl:0,pooler=opencl:0,=cpu");
    check_split(FIXTURE("bert-tiny"), "embeddings=opencl:0,=cpu");
}

Test(device_map, t5_split_matches_cpu_and_transformers)
{
    skip_without_opencl();
    check_split(FIXTURE("t5-tiny"), "encoder.block.1=opencl:0,decoder.block.0=opencl:0,=cpu");
    check_split(FIXTURE("t5-tiny"), "shared=opencl:0,decoder=opencl:0,=cpu");
    check_generate(FIXTURE("t5-tiny"), "encoder.block.1=opencl:0,decoder.block.0=opencl:0,=cpu");
}

Test(device_map, report_folds_ranges_and_loads_back)
{
    skip_without_opencl();
    char buf[512], again[512];
    ptm_model *m = load_map(FIXTURE("llama-tiny"), "model.layers.0-1=opencl:0,=cpu");
    report(m, buf, sizeof buf);
    cr_assert_str_eq(buf, "model.embed_tokens=cpu:0,model.layers=opencl:0,model.norm=cpu:0,"
                          "lm_head=cpu:0");
    cr_assert_str_eq(ptm_device_name(ptm_model_device(m)), "cpu:0");
    ptm_model_free(m);
    ptm_config *cfg = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("llama-tiny/config.json"), &cfg), PTM_OK);
    cr_assert_eq(ptm_config_override(cfg, "num_hidden_layers=5"), PTM_OK);
    struct ptm_load_opts o = {.struct_size = sizeof o,
                              .device_map = "model.layers.1-2=opencl:0,model.layers.4=opencl:0,"
                                            "model.embed_tokens=opencl:0,=cpu"};
    cr_assert_eq(ptm_model_new(cfg, NULL, &o, &m), PTM_OK, "%s", ptm_last_error());
    report(m, buf, sizeof buf);
    cr_assert_str_eq(buf, "model.embed_tokens=opencl:0,model.layers.0=cpu:0,"
                          "model.layers.1-2=opencl:0,model.layers.3=cpu:0,"
                          "model.layers.4=opencl:0,model.norm=cpu:0,lm_head=cpu:0");
    cr_assert_str_eq(ptm_device_name(ptm_model_device(m)), "opencl:0");
    o.device_map = buf;
    ptm_model *n = NULL;
    cr_assert_eq(ptm_model_new(cfg, NULL, &o, &n), PTM_OK, "%s", ptm_last_error());
    report(n, again, sizeof again);
    cr_assert_str_eq(again, buf);
    ptm_model_free(m);
    ptm_model_free(n);
    ptm_config_free(cfg);
}

Test(device_map, refuses_to_split_a_no_split_module)
{
    skip_without_opencl();
    REFUSED(FIXTURE("llama-tiny"), "model.layers.0.mlp=opencl:0,=cpu", PTM_E_INVAL,
            "\"model.layers.0\"", "LlamaDecoderLayer", "cpu:0", "opencl:0");
    REFUSED(FIXTURE("t5-tiny"), "encoder.block.0.layer.1=opencl:0,=cpu", PTM_E_INVAL,
            "\"encoder.block.0\"", "T5Block");
}

Test(device_map, refuses_to_split_a_module)
{
    skip_without_opencl();
    REFUSED(FIXTURE("bert-tiny"), "encoder.layer.0.attention.self.query.bias=opencl:0,=cpu",
            PTM_E_INVAL, "\"encoder.layer.0.attention.self.query\"", "split");
}
