/*
 * cmd_forward.c - `ptm forward`: run any model class once on given inputs and write every
 * output tensor (HF output names) to a safetensors file, for comparing with transformers or
 * feeding other tools. Inputs come from a safetensors file (every tensor in it, by name) or
 * from id lists on the command line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "1,2,3;4,5,6" -> rows of equal length as I64 [rows, cols]; NULL on a malformed list. */
static int64_t *parse_rows(const char *s, int64_t *rows, int64_t *cols)
{
    size_t cap = strlen(s) / 2 + 2, n = 0;
    int64_t *v = malloc(cap * sizeof *v);
    int64_t r = 1, c = 0, width = -1;
    const char *p = s;
    while (v != NULL && *p != '\0') {
        char *end = NULL;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno != 0 || n == cap) {
            free(v);
            return NULL;
        }
        v[n++] = x;
        c++;
        p = end;
        if (*p == ';') {
            if (width >= 0 && c != width) {
                free(v);
                return NULL;
            }
            width = c;
            c = 0;
            r++;
        }
        if (*p == ',' || *p == ';') {
            p++;
        } else if (*p != '\0') {
            free(v);
            return NULL;
        }
    }
    if (v == NULL || c == 0 || (width >= 0 && c != width)) {
        free(v);
        return NULL;
    }
    *rows = r;
    *cols = c;
    return v;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Inputs from a safetensors file or an id list (plus an optional mask list). */
static ptm_status read_inputs(const char *ids_arg, const char *mask_arg, ptm_tensor_map *in)
{
    ptm_device *cpu = NULL;
    ptm_status st = ptm_device_get("cpu", &cpu);
    if (st == PTM_OK && ends_with(ids_arg, ".safetensors")) {
        ptm_st_file *f = NULL;
        st = ptm_st_open(ids_arg, &f);
        for (size_t i = 0; st == PTM_OK && i < ptm_st_count(f); i++) {
            const struct ptm_st_tensor *t = ptm_st_at(f, i);
            ptm_tensor *x = NULL;
            st = ptm_tensor_from_host(cpu, t->dtype, t->ndim, t->shape, t->data, &x);
            if (st == PTM_OK) {
                st = ptm_tensor_map_set(in, t->name, x);
            }
            ptm_tensor_free(x);
        }
        ptm_st_close(f);
        return st;
    }
    const char *args[2] = {ids_arg, mask_arg}, *names[2] = {"input_ids", "attention_mask"};
    for (int k = 0; st == PTM_OK && k < 2 && args[k] != NULL; k++) {
        int64_t shape[2];
        int64_t *v = parse_rows(args[k], &shape[0], &shape[1]);
        ptm_tensor *x = NULL;
        if (v == NULL) {
            return ptm_error_set(PTM_E_INVAL, "%s: \"%s\" is not a list like 1,2,3;4,5,6", names[k],
                                 args[k]);
        }
        st = ptm_tensor_from_host(cpu, PTM_I64, 2, shape, v, &x);
        if (st == PTM_OK) {
            st = ptm_tensor_map_set(in, names[k], x);
        }
        ptm_tensor_free(x);
        free(v);
    }
    return st;
}

/* Every output, read to host memory, into one safetensors file. */
static ptm_status write_outputs(const ptm_tensor_map *out, const char *path)
{
    size_t n = ptm_tensor_map_count(out);
    struct ptm_st_entry *e = calloc(n + 1, sizeof *e);
    ptm_status st = e ? PTM_OK : PTM_E_NOMEM;
    for (size_t i = 0; st == PTM_OK && i < n; i++) {
        const char *name = NULL;
        ptm_tensor *t = ptm_tensor_map_at(out, i, &name);
        void *data = malloc(ptm_tensor_nbytes(t) + 1);
        e[i] = (struct ptm_st_entry){.name = name,
                                     .dtype = ptm_tensor_dtype(t),
                                     .ndim = ptm_tensor_ndim(t),
                                     .data = data,
                                     .nbytes = ptm_tensor_nbytes(t)};
        for (int32_t d = 0; d < e[i].ndim; d++) {
            e[i].shape[d] = ptm_tensor_dim(t, d);
        }
        st = data ? ptm_tensor_read(t, data, ptm_tensor_nbytes(t)) : PTM_E_NOMEM;
    }
    if (st == PTM_OK) {
        st = ptm_st_write(path, e, n, NULL);
    }
    for (size_t i = 0; e != NULL && i < n; i++) {
        free((void *)e[i].data);
    }
    free(e);
    return st;
}

static int run(int argc, char **argv)
{
    const char *model = NULL, *ids = NULL, *mask = NULL, *cls = NULL, *output = NULL;
    const char *quant = NULL, *device_map = NULL;
    int hidden = 0;
    for (int i = 1; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--input-ids") == 0        ? &ids
                           : strcmp(argv[i], "--attention-mask") == 0 ? &mask
                           : strcmp(argv[i], "--class") == 0          ? &cls
                           : strcmp(argv[i], "--output") == 0         ? &output
                           : strcmp(argv[i], "--quantize") == 0       ? &quant
                           : strcmp(argv[i], "--device-map") == 0     ? &device_map
                                                                      : NULL;
        if (dst != NULL && i + 1 < argc) {
            *dst = argv[++i];
        } else if (strcmp(argv[i], "--hidden-states") == 0) {
            hidden = 1;
        } else if (argv[i][0] == '-' || model != NULL) {
            fprintf(stderr, "ptm forward: unexpected \"%s\" (see ptm forward --help)\n", argv[i]);
            return CLI_USAGE;
        } else {
            model = argv[i];
        }
    }
    if (model == NULL || ids == NULL || output == NULL) {
        fprintf(stderr, "ptm forward: MODEL, --input-ids and --output are required\n");
        return CLI_USAGE;
    }
    struct ptm_load_opts o = {
        .struct_size = sizeof o, .class_name = cls, .quantize = quant, .device_map = device_map};
    ptm_model *m = NULL;
    ptm_tensor_map *in = NULL, *out = NULL;
    ptm_status st = ptm_model_load(model, &o, &m);
    if (st == PTM_OK && (st = ptm_tensor_map_new(&in)) == PTM_OK) {
        st = ptm_tensor_map_new(&out);
    }
    if (st == PTM_OK) {
        st = read_inputs(ids, mask, in);
    }
    if (st == PTM_OK) {
        st = ptm_model_forward(m, in, out, hidden);
    }
    if (st == PTM_OK) {
        st = write_outputs(out, output);
    }
    int rc = st == PTM_OK ? CLI_OK : cli_fail("forward", st);
    if (st == PTM_OK) {
        fprintf(stderr, "ptm forward: %s (%s): %zu outputs written to %s\n", model,
                ptm_model_class_name(m), ptm_tensor_map_count(out), output);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm_model_free(m);
    return rc;
}

const struct cli_command cli_cmd_forward = {
    .name = "forward",
    .summary = "run a model once and save its outputs as safetensors",
    .usage = "MODEL --input-ids FILE|LIST [--attention-mask LIST] [--class CLASS]\n"
             "       [--hidden-states] [--quantize int8] [--device-map SPEC]\n"
             "       --output OUT.safetensors\n\n"
             "Runs any architecture's forward pass and writes every output tensor under its\n"
             "HF name (logits, last_hidden_state, hidden_states.<i>, ...).\n"
             "  --input-ids FILE  a .safetensors file: every tensor in it is an input, by name\n"
             "  --input-ids LIST  ids as 1,2,3 (one row) or 1,2;3,4 (rows of equal length)\n"
             "  --attention-mask LIST  the same shape as the ids list (default all ones)\n"
             "  --class CLASS     the model class (default: config architectures[0])\n"
             "  --hidden-states   also write every layer's hidden states\n"
             "  --quantize int8   quantize the matrix weights at load (Q8_0 blocks of 32)\n"
             "  --device-map SPEC place the layers across devices (see ptm info --help)\n",
    .run = run,
};
