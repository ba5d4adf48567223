/*
 * test_golden.c - one golden suite over every architecture x every backend: each fixture
 * directory under tests/fixtures holding model.safetensors, inputs.safetensors and
 * outputs.safetensors (made by transformers, tools/make_fixtures.py) is loaded on each
 * device of each backend that probes present, run on its inputs, and every output transformers
 * wrote must match within the dtype's tolerance. A fixture or backend added later is picked up
 * without editing this file. Positions whose attention_mask is 0 are not compared: what a
 * padded query computes is not part of any model's contract (HF's eager path averages over
 * masked keys there; fused kernels give zeros). A fixture may also hold outputs of another class
 * of its architecture (T5's stores T5Model's decoder state for test_t5.c); outputs the loaded
 * class does not produce are skipped here, but each fixture must compare a primary output.
 * The per-architecture suites (test_bert.c, test_llama.c, test_t5.c) are the strict ones.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ptm/ptm.h"
#include "tolerance.h"

static int is_fixture(const char *dir)
{
    static const char *const need[] = {"model.safetensors", "inputs.safetensors",
                                       "outputs.safetensors"};
    char path[1280];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, need[i]);
        if (access(path, R_OK) != 0) {
            return 0;
        }
    }
    return 1;
}

static ptm_tensor_map *inputs_on(ptm_device *dev, const ptm_st_file *f)
{
    ptm_tensor_map *in = NULL;
    cr_assert_eq(ptm_tensor_map_new(&in), PTM_OK);
    for (size_t i = 0; i < ptm_st_count(f); i++) {
        const struct ptm_st_tensor *t = ptm_st_at(f, i);
        ptm_tensor *x = NULL;
        cr_assert_eq(ptm_tensor_from_host(dev, t->dtype, t->ndim, t->shape, t->data, &x), PTM_OK,
                     "%s", ptm_last_error());
        cr_assert_eq(ptm_tensor_map_set(in, t->name, x), PTM_OK);
        ptm_tensor_free(x);
    }
    return in;
}

/* Max abs error of got against want, skipping rows the mask [B, S] marks as padding when
 * want is [B, S, ...] with the mask's B and S. */
static double compare(const struct ptm_st_tensor *want, const float *got,
                      const struct ptm_st_tensor *mask)
{
    size_t n = want->nbytes / 4, row = 1;
    int masked = mask && want->ndim >= 2 && want->shape[0] == mask->shape[0] &&
                 want->shape[1] == mask->shape[1];
    for (int32_t d = 2; d < want->ndim; d++) {
        row *= (size_t)want->shape[d];
    }
    const float *w = want->data;
    const int64_t *m = mask ? mask->data : NULL;
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        if (masked && m[k / row] == 0) {
            continue;
        }
        double e = fabs((double)got[k] - w[k]);
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

/* Run fixture dir on device dev; returns the worst error over its outputs. */
static double run_fixture(const char *dir, ptm_device *dev, int bf16)
{
    char path[1280];
    struct ptm_load_opts o = {
        .struct_size = sizeof o, .device = ptm_device_name(dev), .dtype = bf16 ? "auto" : NULL};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s on %s: %s", dir, ptm_device_name(dev),
                 ptm_last_error());
    ptm_st_file *inf = NULL, *outf = NULL;
    snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &inf), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/outputs.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &outf), PTM_OK, "%s", ptm_last_error());
    ptm_tensor_map *in = inputs_on(dev, inf), *out = NULL;
    cr_assert_eq(ptm_tensor_map_new(&out), PTM_OK);
    cr_assert_eq(ptm_model_forward(m, in, out, 1), PTM_OK, "%s on %s: %s", dir,
                 ptm_device_name(dev), ptm_last_error());
    const struct ptm_st_tensor *mask = ptm_st_find(inf, "attention_mask");
    mask = mask && mask->dtype == PTM_I64 && mask->ndim == 2 ? mask : NULL;
    static const char *const primary[] = {"logits", "last_hidden_state",
                                          "encoder_last_hidden_state", "start_logits"};
    double worst = 0;
    int n_primary = 0;
    for (size_t i = 0; i < ptm_st_count(outf); i++) {
        const struct ptm_st_tensor *want = ptm_st_at(outf, i);
        ptm_tensor *got = ptm_tensor_map_get(out, want->name);
        if (got == NULL) {
            continue; /* another class's output */
        }
        for (size_t k = 0; k < sizeof primary / sizeof primary[0]; k++) {
            n_primary += strcmp(want->name, primary[k]) == 0;
        }
        cr_assert_eq(want->dtype, PTM_F32);
        cr_assert_eq(ptm_tensor_nbytes(got), want->nbytes, "%s: %s size", dir, want->name);
        float *host = malloc(want->nbytes + 1);
        cr_assert_eq(ptm_tensor_read(got, host, want->nbytes), PTM_OK, "%s", ptm_last_error());
        double e = compare(want, host, mask);
        free(host);
        double tol = bf16 ? PTM_TOL_BF16 : PTM_TOL_F32;
        cr_expect(e <= tol, "%s on %s: %s max abs error %.3g > %.3g", dir, ptm_device_name(dev),
                  want->name, e, tol);
        worst = e > worst ? e : worst;
    }
    cr_expect_gt(n_primary, 0, "%s on %s: no primary output compared", dir, ptm_device_name(dev));
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_st_close(inf);
    ptm_st_close(outf);
    ptm_model_free(m);
    return worst;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(golden, every_fixture_matches_transformers_on_every_backend)
{
    cr_assert_eq(ptm_plugins_scan(), PTM_OK);
    DIR *d = opendir(PTM_TEST_FIXTURES);
    cr_assert_not_null(d);
    char *names[256];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 256;) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", PTM_TEST_FIXTURES, e->d_name);
        if (e->d_name[0] != '.' && is_fixture(dir)) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    cr_assert_geq(n, 20, "only %zu fixtures found", n);
    size_t runs = 0;
    for (size_t b = 0; b < ptm_backend_count(); b++) {
        const char *be = ptm_backend_name_at(b);
        int32_t n_dev = 0;
        if (ptm_backend_devices(be, &n_dev) != PTM_OK || n_dev == 0) {
            /* Info, not warn: Criterion 2.4 fails the run when anything logs a warning, and a
             * backend with no device here (no GPU) is not a failure. */
            cr_log_info("backend %s: no device (%s); skipped", be, ptm_last_error());
            continue;
        }
        ptm_device *dev = NULL;
        char name[64];
        snprintf(name, sizeof name, "%s:0", be);
        cr_assert_eq(ptm_device_get(name, &dev), PTM_OK, "%s", ptm_last_error());
        for (size_t i = 0; i < n; i++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s", PTM_TEST_FIXTURES, names[i]);
            double e = run_fixture(dir, dev, strstr(names[i], "bf16") != NULL);
            cr_log_info("%-24s on %-10s max abs error %.3g", names[i], name, e);
            runs++;
        }
    }
    cr_log_info("%zu fixture runs on %zu backends", runs, ptm_backend_count());
    cr_assert_geq(runs, n, "not even the CPU backend ran");
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
}
