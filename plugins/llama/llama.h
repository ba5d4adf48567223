/*
 * llama.h - what llama.c (config, classes, parameters), llama_rope.c (inverse frequencies of
 * every rope_type) and llama_forward.c (the forward passes) share inside the LLaMA plugin.
 */
#ifndef PTM_LLAMA_H
#define PTM_LLAMA_H

#include "ptm/ptm.h" /* the model and op API plugins call */

/* The config values a forward pass needs, read once per call. */
struct llama_hparams {
    int64_t vocab, hidden, layers, heads, kv_heads, head_dim, inter, max_pos, num_labels;
    int64_t pad_id; /* -1: none */
    double eps;
    int32_t act; /* PTM_UNARY_* */
};

ptm_status llama_hparams(const ptm_model *m, struct llama_hparams *hp);

/* HF's RoPE parameters resolved from the config (rope_parameters, or the legacy rope_scaling
 * and rope_theta keys). */
struct llama_rope {
    char type[16]; /* default, linear, dynamic, yarn, llama3 */
    double theta, factor, attention_factor;
    int64_t rot_dims;
};

/*
 * llama_rope_freqs - the inverse frequencies (rot_dims / 2 floats into inv_freq, cap
 * elements) and the attention factor for a call whose largest position is max_pos_id, as
 * transformers' modeling_rope_utils computes them.
 */
ptm_status llama_rope_freqs(const ptm_model *m, const struct llama_hparams *hp, int64_t max_pos_id,
                            float *inv_freq, int64_t cap, int64_t *rot_dims, float *attn_factor);

/* The forward hooks of each class. */
ptm_status llama_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status llama_forward_causal_lm(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status llama_forward_seqcls(ptm_model *m, const struct ptm_forward_ctx *ctx);

#endif
