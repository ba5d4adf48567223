/*
 * cmd_model.c - the model commands: `ptm info MODEL` (class, config, parameters, footprint,
 * loading report) and `ptm save MODEL OUT` (save_pretrained with shard size, variant and
 * dtype), both loading MODEL by name as from_pretrained does.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* --opt VALUE pairs shared by the model commands; the first non-option is the model. */
struct model_args {
    const char *model, *out, *cls, *dtype, *variant, *max_shard, *device, *quantize, *device_map;
    int as_json;
};

static int parse(const char *cmd, int argc, char **argv, struct model_args *a, int want_out)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(argv[i], "--class")            ? &a->cls
                            : !strcmp(argv[i], "--dtype")          ? &a->dtype
                            : !strcmp(argv[i], "--variant")        ? &a->variant
                            : !strcmp(argv[i], "--max-shard-size") ? &a->max_shard
                            : !strcmp(argv[i], "--device")         ? &a->device
                            : !strcmp(argv[i], "--quantize")       ? &a->quantize
                            : !strcmp(argv[i], "--device-map")     ? &a->device_map
                                                                   : NULL;
        if (slot != NULL && v != NULL) {
            *slot = v;
            i++;
        } else if (!strcmp(argv[i], "--json")) {
            a->as_json = 1;
        } else if (argv[i][0] == '-' || slot != NULL) {
            fprintf(stderr, "ptm %s: bad option \"%s\" (see ptm %s --help)\n", cmd, argv[i], cmd);
            return CLI_USAGE;
        } else if (a->model == NULL) {
            a->model = argv[i];
        } else if (want_out && a->out == NULL) {
            a->out = argv[i];
        } else {
            fprintf(stderr, "ptm %s: unexpected argument \"%s\"\n", cmd, argv[i]);
            return CLI_USAGE;
        }
    }
    if (a->model == NULL || (want_out && a->out == NULL)) {
        fprintf(stderr, "ptm %s: missing %s (see ptm %s --help)\n", cmd,
                a->model ? "output directory" : "model", cmd);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static ptm_status load(const struct model_args *a, const char *dtype, const char *variant,
                       ptm_model **m)
{
    struct ptm_load_opts o = {.struct_size = sizeof o,
                              .class_name = a->cls,
                              .dtype = dtype,
                              .variant = variant,
                              .device = a->device,
                              .quantize = a->quantize,
                              .device_map = a->device_map};
    return ptm_model_load(a->model, &o, m);
}

static json_object *name_list(const char *const *names)
{
    json_object *arr = json_object_new_array();
    for (; *names; names++) {
        json_object_array_add(arr, json_object_new_string(*names));
    }
    return arr;
}

/* Tied weights counted once, whatever device holds them (a host address exists only on
 * the CPU). */
static int64_t footprint(const ptm_model *m)
{
    return ptm_model_memory_footprint(m);
}

/* Where each module went (hf_device_map), as {module: device}. */
static json_object *device_map_json(const ptm_model *m)
{
    json_object *map = json_object_new_object();
    for (size_t i = 0; i < ptm_model_device_map_count(m); i++) {
        ptm_device *d = NULL;
        const char *name = ptm_model_device_map_at(m, i, &d);
        json_object_object_add(map, name, json_object_new_string(ptm_device_name(d)));
    }
    return map;
}

/* The same as text, only when the model spans several devices (else "device" says it). */
static void print_device_map(const ptm_model *m)
{
    for (size_t i = 0; ptm_model_device_map_count(m) > 1 && i < ptm_model_device_map_count(m);
         i++) {
        ptm_device *d = NULL;
        const char *name = ptm_model_device_map_at(m, i, &d);
        printf("device map   %s -> %s\n", name, ptm_device_name(d));
    }
}

static int run_info(int argc, char **argv)
{
    struct model_args a;
    int rc = parse("info", argc, argv, &a, 0);
    if (rc != CLI_OK) {
        return rc;
    }
    ptm_model *m = NULL;
    ptm_status st = load(&a, a.dtype ? a.dtype : "auto", a.variant, &m);
    if (st != PTM_OK) {
        return cli_fail("info", st);
    }
    char *cfg = NULL;
    if (ptm_config_to_json(ptm_model_config(m), 0, &cfg) != PTM_OK) {
        ptm_model_free(m);
        return cli_fail("info", PTM_E_INTERNAL);
    }
    json_object *root = json_object_new_object();
    json_object_object_add(root, "model", json_object_new_string(a.model));
    json_object_object_add(root, "directory", json_object_new_string(ptm_model_dir(m)));
    json_object_object_add(root, "class", json_object_new_string(ptm_model_class_name(m)));
    json_object_object_add(root, "model_type",
                           json_object_new_string(ptm_config_model_type(ptm_model_config(m))));
    json_object_object_add(root, "device",
                           json_object_new_string(ptm_device_name(ptm_model_device(m))));
    json_object_object_add(root, "parameters",
                           json_object_new_int64(ptm_model_num_parameters(m, 0)));
    json_object_object_add(root, "parameters_without_embeddings",
                           json_object_new_int64(ptm_model_num_parameters(m, 1)));
    json_object_object_add(root, "device_map", device_map_json(m));
    json_object_object_add(root, "memory_footprint_bytes", json_object_new_int64(footprint(m)));
    const char *wdtype = ptm_model_n_params(m)
                             ? ptm_dtype_name(ptm_tensor_dtype(ptm_model_param_at(m, 0, NULL)))
                             : "none";
    json_object_object_add(root, "dtype", json_object_new_string(wdtype));
    const char *quant = ptm_model_quantization(m);
    json_object_object_add(root, "quantization", quant ? json_object_new_string(quant) : NULL);
    json_object_object_add(root, "missing_keys",
                           name_list(ptm_model_loading_info(m, PTM_LOAD_MISSING)));
    json_object_object_add(root, "unexpected_keys",
                           name_list(ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED)));
    json_object_object_add(root, "config", json_tokener_parse(cfg));
    if (a.as_json) {
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        printf("model        %s\ndirectory    %s\nclass        %s (model_type %s)\n"
               "device       %s (attention: %s)\nparameters   %lld (%lld without embeddings)\n"
               "footprint    %.2f MB (%s%s%s)\n",
               a.model, ptm_model_dir(m), ptm_model_class_name(m),
               ptm_config_model_type(ptm_model_config(m)), ptm_device_name(ptm_model_device(m)),
               ptm_model_attn_implementation(m), (long long)ptm_model_num_parameters(m, 0),
               (long long)ptm_model_num_parameters(m, 1), footprint(m) / 1e6, wdtype,
               quant ? ", weights quantized " : "", quant ? quant : "");
        print_device_map(m);
        const char *const *miss = ptm_model_loading_info(m, PTM_LOAD_MISSING);
        const char *const *unexp = ptm_model_loading_info(m, PTM_LOAD_UNEXPECTED);
        for (; *miss; miss++) {
            printf("missing      %s (initialised)\n", *miss);
        }
        for (; *unexp; unexp++) {
            printf("unexpected   %s (ignored)\n", *unexp);
        }
        printf("\nconfig.json (every field)\n%s", cfg);
    }
    json_object_put(root);
    ptm_free(cfg);
    ptm_model_free(m);
    return CLI_OK;
}

static int run_save(int argc, char **argv)
{
    struct model_args a;
    int rc = parse("save", argc, argv, &a, 1);
    if (rc != CLI_OK) {
        return rc;
    }
    ptm_model *m = NULL;
    ptm_status st = load(&a, NULL, NULL, &m); /* --variant and --dtype name the output */
    struct ptm_save_opts o = {.struct_size = sizeof o,
                              .max_shard_size = a.max_shard,
                              .variant = a.variant,
                              .dtype = a.dtype};
    if (st == PTM_OK) {
        st = ptm_model_save(m, a.out, &o);
    }
    ptm_model_free(m);
    if (st != PTM_OK) {
        return cli_fail("save", st);
    }
    fprintf(stderr, "ptm save: %s saved to %s\n", a.model, a.out);
    return CLI_OK;
}

const struct cli_command cli_cmd_info = {
    .name = "info",
    .summary = "describe a model: class, config, parameters, footprint",
    .usage = "MODEL [--class C] [--dtype D] [--quantize int8] [--json]\n\n"
             "Loads MODEL (a directory, built-in name or cached repo id) and prints its class,\n"
             "config, parameter counts, memory footprint and what loading reported.\n"
             "  --class C   load as this class (default: the config's architectures[0])\n"
             "  --dtype D   float32, bfloat16, float16 or auto (default auto: the config's)\n"
             "  --quantize int8  quantize the matrix weights at load (Q8_0); shown in the\n"
             "              footprint line and as \"quantization\" in JSON\n"
             "  --device-map SPEC  place the modules across devices (HF device_map): auto (the\n"
             "              best-scoring backend's devices), one device (opencl:0), or\n"
             "              prefix=device pairs such as model.layers.0-10=cpu,=opencl:0\n"
             "              (A-B: layers A to B; an empty prefix: the rest) or the same as a\n"
             "              JSON object; printed back as \"device map\" lines\n"
             "  --json      print the same as JSON\n",
    .run = run_info,
};

const struct cli_command cli_cmd_save = {
    .name = "save",
    .summary = "save a model as a Hugging Face checkpoint (save_pretrained)",
    .usage = "MODEL OUT [--max-shard-size S] [--variant V] [--dtype D] [--class C]\n\n"
             "Writes OUT/config.json and the weights (model.safetensors, or shards and\n"
             "model.safetensors.index.json past S), crash-atomically.\n"
             "  --max-shard-size S  \"5GB\" (default), \"200MB\", \"2GiB\" or a byte count\n"
             "  --variant V         name the weights model.V.safetensors\n"
             "  --dtype D           convert float weights: float32, bfloat16, float16\n",
    .run = run_save,
};
