/*
 * ptm.h - the host API: the one header a host application includes.
 *
 * It pulls in the element types and tensors (ptm_tensor.h) and declares the runtime's
 * lifecycle: plugins and the registry, configs, models, tokenizers, generation.
 */
#ifndef PTM_H
#define PTM_H

#include "ptm_base.h"
#include "ptm_tensor.h"
#include "ptm_config.h"
#include "ptm_ops.h"
#include "ptm_plugin.h"
#include "ptm_safetensors.h"
#include "ptm_embed.h"
#include "ptm_hub.h"
#include "ptm_tokenizer.h"
#include "ptm_generate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ptm_version - the runtime's version string, e.g. "0.1.0". */
PTM_API const char *ptm_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Plugins and the registry                                                                    */

/* A loaded plugin, as ptm_plugin_at() describes it. Strings are borrowed and live as long as
 * the process (plugins are never unloaded while the runtime is up). */
struct ptm_plugin_info {
    uint32_t struct_size; /* set by the caller to sizeof(struct ptm_plugin_info) */
    const char *name;
    const char *version;
    const char *path; /* the .so it came from */
    int32_t kind;     /* PTM_PLUGIN_ARCH or PTM_PLUGIN_BACKEND */
    uint32_t abi_major;
    uint32_t abi_minor;
};

/*
 * ptm_plugins_scan - load every plugin on the search path: each directory of PTM_PLUGIN_PATH
 * (colon separated), then the install directory (lib/ptm/plugins beside libptm.so). Files
 * are taken in directory order sorted by name; a plugin whose name is already loaded is
 * skipped (the first in path order wins) and reported. Every refusal (not a shared object,
 * no entry symbol, ABI mismatch, failing register, duplicate name or model_type) is logged
 * at warn naming the file and the fault, and the scan goes on. Scanning again skips files
 * already loaded and retries refused ones (they may have been replaced). Returns PTM_OK
 * unless memory runs out. Thread safe.
 */
PTM_API ptm_status ptm_plugins_scan(void);

/*
 * ptm_plugin_load - load one plugin file. Unlike a scan, a refusal is returned: PTM_E_IO
 * (dlopen failed; the message carries dlerror's text), PTM_E_ABI (no entry symbol, bad
 * descriptor, ABI major differs or minor is newer; both versions named), PTM_E_PLUGIN
 * (register failed; its own message is passed on), PTM_E_EXISTS (name or model_type taken).
 * A refused plugin is unloaded and leaves no trace in the registry. Thread safe.
 */
PTM_API ptm_status ptm_plugin_load(const char *path);

/* ptm_plugin_count / ptm_plugin_at - enumerate loaded plugins in load order. info's
 * struct_size must be set by the caller; PTM_E_RANGE past the end. Thread safe. */
PTM_API size_t ptm_plugin_count(void);
PTM_API ptm_status ptm_plugin_at(size_t i, struct ptm_plugin_info *info);

/*
 * ptm_arch_register - register an architecture from the host process itself (a static host,
 * or a test), as a plugin's register_fn would. arch and all it points to must outlive the
 * process's use of the runtime. PTM_E_EXISTS if its model_type or a class name is taken,
 * PTM_E_PLUGIN if its schema is invalid. Thread safe.
 */
PTM_API ptm_status ptm_arch_register(const struct ptm_arch *arch);

/* Enumerate registered architectures (registration order) / find one by model_type or by
 * class name. Returned pointers are the registered descriptors; NULL when absent. The
 * plugin owning each is ptm_arch_plugin(); NULL for in-process ones. Thread safe. */
PTM_API size_t ptm_arch_count(void);
PTM_API const struct ptm_arch *ptm_arch_at(size_t i);
PTM_API const struct ptm_arch *ptm_arch_find(const char *model_type);
PTM_API const struct ptm_arch *ptm_arch_find_class(const char *class_name,
                                                   const struct ptm_model_class **cls);
PTM_API const char *ptm_arch_plugin(const struct ptm_arch *arch);

/* Enumerate registered backends (registration order); names are borrowed for the process. */
PTM_API size_t ptm_backend_count(void);
PTM_API const char *ptm_backend_name_at(size_t i);
/* The plugin that registered backend, or NULL for an in-process one or an unknown name. */
PTM_API const char *ptm_backend_plugin(const char *backend);

/*
 * ptm_backend_devices - probe backend (initialising it on first use) and count its devices.
 * A backend that is present but has no device returns PTM_OK with *n = 0, and
 * ptm_last_error() then says why ("no CUDA device: ..."). PTM_E_NOT_FOUND for an unknown
 * backend. Thread safe.
 */
PTM_API ptm_status ptm_backend_devices(const char *backend, int32_t *n);

/* ptm_backend_device_name - device dev's name written into buf (truncated to cap). */
PTM_API ptm_status ptm_backend_device_name(const char *backend, int32_t dev, char *buf, size_t cap);

/* Told when a watched directory registers a new plugin: its name and path (borrowed for the
 * call), or status != PTM_OK with the refusal's message when a dropped file was refused.
 * Called on the watcher's own thread. */
typedef void (*ptm_watch_fn)(ptm_status st, const char *name, const char *path, void *user);

/*
 * ptm_runtime_watch - watch dir for plugins dropped in while the host runs. Files already
 * there are loaded first; then a .so created, copied or renamed into dir is loaded within a
 * fraction of a second and cb (may be NULL) is told. One watched directory per process:
 * PTM_E_BUSY if one is already watched. Returns PTM_E_IO if dir cannot be watched.
 */
PTM_API ptm_status ptm_runtime_watch(const char *dir, ptm_watch_fn cb, void *user);

/* ptm_runtime_unwatch - stop watching and join the watcher thread; no-op when none. */
PTM_API void ptm_runtime_unwatch(void);

/* ------------------------------------------------------------------------------------------ */
/* Models: from_pretrained, new, save_pretrained, forward                                      */

/* Options of ptm_model_load and ptm_model_new; a NULL pointer or zeroed member means the
 * default. Strings are read during the call only. */
struct ptm_load_opts {
    uint32_t struct_size;   /* sizeof(struct ptm_load_opts) */
    const char *class_name; /* e.g. "BertForMaskedLM"; default: config "architectures"[0] */
    const char *subfolder;  /* inside the resolved directory */
    const char *variant;    /* model.<variant>.safetensors */
    const char *revision;   /* HF cache branch, tag or commit; default "main" */
    const char *dtype;      /* "auto" (config torch_dtype), "float32", "bfloat16", ...;
                               default float32 */
    const char *device;     /* "cpu", "cuda:0", ...; default "cpu" */
    int32_t ignore_mismatched_sizes; /* re-initialise weights whose shape differs */
    int32_t local_files_only;
    const char *const *config_overrides; /* NULL-terminated "key=value" list */
    uint64_t seed;                       /* for weights initialised because missing */
    /* "auto" (NULL), "fused" or "sdpa": the backend's fused attention kernel, the only path
     * ptm has; "eager" (an unfused softmax(QK^T)V) is refused with PTM_E_UNSUPPORTED.
     * ptm_model_attn_implementation() reports the choice. */
    const char *attn_implementation;
    /* ABI 1.x. NULL or "none": weights as loaded. "int8" (ptm_model_load only; ptm_model_new
     * ignores it): after loading, quantize the matrix weights to PTM_Q8_0 (ptm_tensor.h;
     * blocks of 32, one F16 scale each, round to nearest as llama.cpp's Q8_0). Quantized: 2-D float
     * weights whose rows are a multiple of 32, except embedding tables (the class's input
     * embeddings, names ending in "embeddings.weight"), tied pairs other than a tied LM head
     * (which gets an int8 copy while the embedding table stays float; the pair stays tied) and
     * the class's keep_in_fp32 modules. Those weights are quantized from the checkpoint's own
     * float dtype (the same int8 as from a float32 widening), so dtype never costs a float32
     * copy of them, and the checkpoint pages they came from are released. Matmuls then quantize
     * activations per block on the fly and multiply int8 exactly (the CPU backend's VNNI
     * kernels). Other values: PTM_E_INVAL, before anything is read. A backend without the
     * kernels: PTM_E_UNSUPPORTED. */
    const char *quantize;
    /* ABI 1.x (issue 8). HF's device_map: NULL to use device alone; "auto" (the devices of
     * the best-scoring backend, balanced by bytes); one device ("opencl:0"); or an explicit
     * map of module-name prefixes to devices, as a JSON object {"model.layers.0-10": "cpu",
     * "": "cuda:0"} or as pairs "model.layers.0-10=cpu,=cuda:0". A last key component "A-B"
     * means A..B inclusive; "" is the root; each parameter goes to its longest matching key;
     * every parameter must be covered (tied ones follow their source); no module is split,
     * nor a repeated block (model.layers.3) when the class has _no_split_modules. device must
     * be NULL when this is set. Ops run on the device of their weights, activations cross
     * devices through the runtime, and outputs come back on ptm_model_device() (the first
     * parameter's device). PTM_E_INVAL / PTM_E_NOT_FOUND name the key, parameter or module. */
    const char *device_map;
};

/*
 * ptm_model_load - from_pretrained: resolve name_or_path (a local directory, a built-in
 * name, or a repo id in the Hugging Face cache), read config.json, pick the class, declare
 * the parameters, map the safetensors weights (single or sharded; zero copy on the CPU when
 * dtypes agree), match names across base_model_prefix both ways, initialise what is missing
 * (seeded), tie, and place on the device.
 * out: a new model, owned by the caller (ptm_model_free); NULL on failure.
 * Returns PTM_E_NOT_FOUND (name, class, or weights; the message lists what was tried),
 * PTM_E_FORMAT (files), PTM_E_TYPE (config), PTM_E_INVAL (a weight's shape differs and
 * ignore_mismatched_sizes is off: the message names it and both shapes).
 */
PTM_API ptm_status ptm_model_load(const char *name_or_path, const struct ptm_load_opts *opts,
                                  ptm_model **out);

/*
 * ptm_model_new - a model of class_name (NULL: the config's architectures[0], else the base
 * class) built from cfg (copied) with every weight initialised by the architecture's
 * _init_weights rules from opts->seed: equal seeds give bit-identical weights.
 */
PTM_API ptm_status ptm_model_new(const ptm_config *cfg, const char *class_name,
                                 const struct ptm_load_opts *opts, ptm_model **out);

/* ptm_model_free - release the model, its weights and mappings; NULL ok. Outputs of
 * earlier forward calls hold their own references and stay valid. */
PTM_API void ptm_model_free(ptm_model *m);

/* Accessors; the returned pointers are borrowed and live as long as m. */
PTM_API const ptm_config *ptm_model_config(const ptm_model *m);
PTM_API ptm_config *ptm_model_config_mut(ptm_model *m);
PTM_API const char *ptm_model_class_name(const ptm_model *m);
PTM_API const struct ptm_model_class *ptm_model_class(const ptm_model *m);
PTM_API const struct ptm_arch *ptm_model_arch(const ptm_model *m);
PTM_API ptm_device *ptm_model_device(const ptm_model *m);
/* The directory the model was loaded from, or NULL for ptm_model_new. */
PTM_API const char *ptm_model_dir(const ptm_model *m);

/*
 * ptm_model_device_map_count / ptm_model_device_map_at - where each module's parameters
 * live (HF hf_device_map), in declaration order: a module is listed only when the module
 * above it spans several devices (a model on one device is the single entry ""), and runs
 * of numbered siblings on one device are folded ("model.layers.0-10"), so the entries form a
 * valid explicit device_map. ptm_model_device_map_at returns entry i's module name (borrowed,
 * valid while m lives) and sets *dev (may be NULL) to its device; NULL past the end.
 * Recorded when the model is made (ptm_model_load, ptm_model_new). Thread safe on a const m.
 */
PTM_API size_t ptm_model_device_map_count(const ptm_model *m);
PTM_API const char *ptm_model_device_map_at(const ptm_model *m, size_t i, ptm_device **dev);

/* The attention implementation chosen at load ("fused"); borrowed. */
PTM_API const char *ptm_model_attn_implementation(const ptm_model *m);

/*
 * ptm_model_dequantize - HF dequantize(): turn every PTM_Q8_0 weight back into its declared
 * float dtype (the model's dtype), value q * d per element. A model that is not quantized is
 * left as is. Returns PTM_E_NOMEM; on failure some weights may still be quantized. Not safe
 * concurrently with other calls on m.
 */
PTM_API ptm_status ptm_model_dequantize(ptm_model *m);

/* ptm_model_quantization - "int8" while some weights are quantized, else NULL; borrowed. */
PTM_API const char *ptm_model_quantization(const ptm_model *m);

/* Loading info (HF output_loading_info): NULL-terminated lists of parameter names. */
enum {
    PTM_LOAD_MISSING = 0,    /* declared, absent from the checkpoint: initialised */
    PTM_LOAD_UNEXPECTED = 1, /* in the checkpoint, not declared: ignored */
    PTM_LOAD_MISMATCHED = 2, /* shape differs: re-initialised (ignore_mismatched_sizes) */
};
PTM_API const char *const *ptm_model_loading_info(const ptm_model *m, int32_t which);

/*
 * Parameters. ptm_model_declare is for an architecture's declare hook: a parameter named as
 * HF names it for the class, its shape and how _init_weights fills it. ptm_model_param
 * returns a parameter's tensor (borrowed; NULL if undeclared).
 */
PTM_API ptm_status ptm_model_declare(ptm_model *m, const char *name, int32_t ndim,
                                     const int64_t *shape, const struct ptm_param_init *init);
PTM_API ptm_tensor *ptm_model_param(const ptm_model *m, const char *name);
PTM_API size_t ptm_model_n_params(const ptm_model *m);
PTM_API ptm_tensor *ptm_model_param_at(const ptm_model *m, size_t i, const char **name);

/*
 * ptm_model_forward - run the model. inputs by HF argument name ("input_ids" [B, S] I32 or
 * I64, "attention_mask", "token_type_ids", ...); outputs receives HF output names
 * ("last_hidden_state", "pooler_output", "logits", ...; with output_hidden_states also
 * "hidden_states.<i>"). A model is used by one thread at a time.
 */
PTM_API ptm_status ptm_model_forward(ptm_model *m, const ptm_tensor_map *inputs,
                                     ptm_tensor_map *outputs, int32_t output_hidden_states);

/* Options of ptm_model_save. */
struct ptm_save_opts {
    uint32_t struct_size;
    const char *max_shard_size; /* "5GB" (default), "200MB", "2GiB", or a byte count */
    const char *variant;        /* model.<variant>.safetensors */
    int32_t full_config;        /* write every config field, not the diff from defaults */
    const char *dtype;          /* convert float weights on save ("bfloat16", ...); NULL: as is */
};

/*
 * ptm_model_save - save_pretrained: config.json and the weights (tied weights stored once,
 * as HF does) into dir, which is created if needed. Crash-atomic: the directory holds the
 * complete old or the complete new checkpoint at every instant. A quantized model
 * (ptm_model_quantization non-NULL) is refused with PTM_E_UNSUPPORTED: dequantize it first.
 */
PTM_API ptm_status ptm_model_save(const ptm_model *m, const char *dir,
                                  const struct ptm_save_opts *opts);

/*
 * ptm_model_push_to_hub - push_to_hub: save m as ptm_model_save does (save may be NULL) into
 * a new folder under $TMPDIR (default /tmp), upload it to repo_id in one commit with
 * ptm_hub_push (push may be NULL: branch main, HF_TOKEN; push->private_repo creates it
 * private, push->commit_message names the commit), then remove the folder.
 * commit_url: may be NULL; on PTM_OK the commit's URL, free with ptm_free(); else NULL.
 * Returns ptm_model_save's and ptm_hub_push's codes; ptm_last_error() names the step that
 * failed. Thread safety as ptm_model_save's.
 */
PTM_API ptm_status ptm_model_push_to_hub(const ptm_model *m, const char *repo_id,
                                         const struct ptm_save_opts *save,
                                         const struct ptm_hub_push_opts *push, char **commit_url);

/* num_parameters: elements of all parameters, tied ones counted once; exclude_embeddings
 * leaves out embedding tables (names ending in "embeddings.weight" or the input / output
 * embeddings). */
PTM_API int64_t ptm_model_num_parameters(const ptm_model *m, int32_t exclude_embeddings);

/* ------------------------------------------------------------------------------------------ */
/* Embeddings, tying, resizing, pruning                                                        */

/* get_input_embeddings / get_output_embeddings: the tensors (borrowed), NULL if the class has
 * none (a base model has no output embeddings). */
PTM_API ptm_tensor *ptm_model_input_embeddings(const ptm_model *m);
PTM_API ptm_tensor *ptm_model_output_embeddings(const ptm_model *m);

/*
 * set_input_embeddings: replace the input embedding table with t ([rows, hidden], a reference
 * is taken) and re-tie, so tied output embeddings share t. PTM_E_INVAL if the hidden size
 * differs; config vocab_size follows the new row count.
 */
PTM_API ptm_status ptm_model_set_input_embeddings(ptm_model *m, ptm_tensor *t);

/* tie_weights: make each tied pair of the class share storage again (after edits). */
PTM_API ptm_status ptm_model_tie_weights(ptm_model *m);

/*
 * resize_token_embeddings (HF semantics): the input embeddings (and untied output embeddings
 * and their bias) get n rows, rounded up to pad_to_multiple_of when > 0. Old rows are kept;
 * new rows are, with mean_resizing, drawn from a normal with the old rows' mean and 1e-9 times
 * their covariance (the mean alone when that is not positive definite), else initialised by
 * the class's init specs from the model's seed; a new bias is zero. config vocab_size is
 * updated. n <= 0 only applies pad_to_multiple_of to the current size.
 */
PTM_API ptm_status ptm_model_resize_token_embeddings(ptm_model *m, int64_t n,
                                                     int64_t pad_to_multiple_of,
                                                     int32_t mean_resizing);

/*
 * resize_position_embeddings (PaddleNLP): the architecture's hook resizes its absolute position
 * table to n positions and updates the config. PTM_E_UNSUPPORTED, naming the model type, for
 * architectures without absolute positions.
 */
PTM_API ptm_status ptm_model_resize_position_embeddings(ptm_model *m, int64_t n);

/*
 * prune_heads: remove heads[0..n) of layer through the architecture's hook, and record them
 * in config pruned_heads (so a saved pruned checkpoint loads back). Heads already pruned are
 * ignored; PTM_E_RANGE for a head or layer out of range.
 */
PTM_API ptm_status ptm_model_prune_heads(ptm_model *m, int32_t layer, const int32_t *heads,
                                         int32_t n);

/* How many heads of layer config pruned_heads removes (for declare hooks); 0 if none. */
PTM_API int32_t ptm_model_n_pruned_heads(const ptm_model *m, int32_t layer);

/*
 * For architecture hooks: give parameter name a new tensor (a reference is taken), possibly
 * of another shape; tied parameters that share it follow. PTM_E_NOT_FOUND if undeclared.
 */
PTM_API ptm_status ptm_model_replace_param(ptm_model *m, const char *name, ptm_tensor *t);

/* For architecture hooks: resize parameter name's first dimension to rows, keeping the old
 * rows; new rows come from its declared init spec (seeded). Tied parameters follow. */
PTM_API ptm_status ptm_model_resize_param(ptm_model *m, const char *name, int64_t rows);

/* memory_footprint: bytes of parameter storage, shared (tied) storage counted once. */
PTM_API int64_t ptm_model_memory_footprint(const ptm_model *m);

/* main_input_name ("input_ids" unless the class says otherwise) and can_generate; borrowed. */
PTM_API const char *ptm_model_main_input_name(const ptm_model *m);
PTM_API int32_t ptm_model_can_generate(const ptm_model *m);

/*
 * base_model_prefix of the model's class as HF uses it: "" for the base class itself (the
 * base model is the whole model), else "<prefix>." (e.g. "bert."), the name prefix of the
 * base model's parameters inside this head model. Borrowed.
 */
PTM_API const char *ptm_model_base_model_prefix(const ptm_model *m);

/* model_name_list: the built-in names an architecture registers, in order; NULL past the
 * end. Borrowed, valid while the plugin is loaded (the process). */
PTM_API const char *ptm_arch_builtin_name_at(const struct ptm_arch *arch, size_t i);

/* save_config (PaddleNLP): only config.json into dir (created if needed), atomically. */
PTM_API ptm_status ptm_model_save_config(const ptm_model *m, const char *dir);

/* add_model_tags: tags written to the model card (README.md front matter) on save; copied.
 * tags is NULL-terminated; duplicates are ignored. */
PTM_API ptm_status ptm_model_add_tags(ptm_model *m, const char *const *tags);

#ifdef __cplusplus
}
#endif
#endif /* PTM_H */
