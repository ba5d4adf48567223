/*
 * model.h - the model object shared by model.c (object, parameters, init, tie, forward),
 * model_load.c (from_pretrained), model_save.c (save_pretrained) and device_map.c (where
 * each parameter lives).
 */
#ifndef PTM_RUNTIME_MODEL_H
#define PTM_RUNTIME_MODEL_H

#include "ptm/ptm.h"
#include "registry.h"

struct ptm__param {
    char *name;
    int32_t ndim;
    int64_t shape[PTM_MAX_DIMS];
    struct ptm_param_init init;
    ptm_dtype dtype;
    int keep_f32;    /* listed in the class's keep_in_fp32: stays F32 whatever the model dtype */
    ptm_tensor *t;   /* NULL until loaded or initialised */
    long tied_to;    /* index of the parameter this one shares storage with, or -1 */
    ptm_device *dev; /* where it is loaded or initialised (device_map); the model's by default */
    /* During from_pretrained: p->t wraps these bytes of a checkpoint's read-only file mapping
     * (so quantizing may hand their pages back); NULL otherwise. */
    const void *mapped;
    size_t mapped_bytes;
};

struct ptm__name_list {
    char **names;
    size_t n, cap;
};

/* Where each module went (HF hf_device_map): module names, collapsed and ranged as in
 * device_map.c, each with its device. */
struct ptm__device_report {
    char **names;
    ptm_device **devs;
    size_t n;
};

struct ptm_model {
    ptm_config *cfg;
    const struct ptm__arch_entry *arch;
    const struct ptm_model_class *cls;
    ptm_device *dev; /* the main device (the first parameter's): forward scratch lives here */
    ptm_dtype dtype; /* of matrix weights; vectors are kept in F32 */
    struct ptm__param *params;
    size_t n_params, cap_params;
    size_t *index; /* open addressing over params by name; SIZE_MAX = empty */
    size_t index_cap;
    char *dir;
    struct ptm__name_list info[3];
    struct ptm__name_list tags; /* add_model_tags, for the model card */
    uint64_t seed;
    int quantized; /* some weights are PTM_Q8_0 (model_quant.c) */
    struct ptm__device_report placed;
};

/* Fill p's rows [from, rows) by its init spec from the model's seed (row-wise, [rows, cols]
 * host floats in data). */
void ptm__model_init_rows(const ptm_model *m, const struct ptm__param *p, float *data, int64_t rows,
                          int64_t cols, int64_t from);

/* A model of cls with cfg (taken over) on dev, parameters declared, none filled. */
ptm_status ptm__model_create(ptm_config *cfg, const struct ptm__arch_entry *arch,
                             const struct ptm_model_class *cls, ptm_device *dev, ptm_dtype dtype,
                             uint64_t seed, ptm_model **out);

/* Index of name, or -1. */
long ptm__model_find(const ptm_model *m, const char *name);

/* Fill every parameter that has no tensor yet by its init spec, then tie, then the class's
 * init_weights hook; names filled are appended to the missing list when record is set. */
ptm_status ptm__model_finish(ptm_model *m, int record_missing);

/* Tie each pair the class lists (the embedding pair only when tie_word_embeddings). */
ptm_status ptm__model_tie(ptm_model *m);

/* Whether name is the tied side of a pair tying applies to (it will share its source). */
int ptm__model_is_tied_target(const ptm_model *m, const char *name);

/* Run the class's forward hook with ctx: inside a forward scope (xfer.h), then the outputs
 * come back to the model's main device. */
ptm_status ptm__model_run(ptm_model *m, const struct ptm_forward_ctx *ctx);

/* Quantize the eligible weights as ptm_load_opts.quantize asks (NULL, "none" or "int8");
 * model_quant.c. */
ptm_status ptm__model_quantize(ptm_model *m, const char *how);

/* Whether how asks for quantization: *on = 1 for "int8", 0 for NULL, "" or "none";
 * PTM_E_INVAL naming any other value. */
ptm_status ptm__quantize_wanted(const char *how, int *on);

/* Whether p's shape and class rules make it a weight int8 would quantize, whatever its dtype
 * and ties: the loader keeps such weights in the checkpoint's dtype rather than converting
 * them to the model's dtype first. */
int ptm__quantize_candidate(const ptm_model *m, const struct ptm__param *p);

ptm_status ptm__name_list_add(struct ptm__name_list *l, const char *name);

/* Resolve the class: class_name, else config architectures[0], else the arch's base. */
ptm_status ptm__model_pick_class(const ptm_config *cfg, const char *class_name,
                                 const struct ptm__arch_entry **arch,
                                 const struct ptm_model_class **cls);

/* HF attn_implementation: check the request against what the device's backend has. */
ptm_status ptm__model_attn(ptm_device *dev, const struct ptm_load_opts *o);

/* The dtype policy: opts->dtype ("auto" = config's torch_dtype / dtype). */
ptm_status ptm__model_dtype(const ptm_config *cfg, const char *want, ptm_dtype *out);

#endif
