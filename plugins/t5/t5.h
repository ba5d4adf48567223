/*
 * t5.h - what t5.c (config, classes, parameters) and t5_forward.c (the encoder-decoder forward
 * passes) share inside the T5 plugin.
 */
#ifndef PTM_T5_H
#define PTM_T5_H

#include "ptm/ptm.h" /* the model and op API plugins call */

/* The config values a forward pass or a declare hook needs, read once per call. */
struct t5_hparams {
    int64_t vocab, d_model, d_kv, d_ff, layers, dec_layers, heads, buckets, max_distance;
    double eps, factor;
    int32_t act;       /* PTM_UNARY_* of the feed-forward */
    int32_t gated;     /* feed_forward_proj "gated-<act>": wi_0, wi_1, wo */
    int32_t scale_out; /* scale the decoder output by d_model^-0.5 before lm_head */
};

ptm_status t5_hparams(const ptm_model *m, struct t5_hparams *hp);

/* The forward hooks of each class. */
ptm_status t5_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status t5_forward_cond_gen(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status t5_forward_encoder(ptm_model *m, const struct ptm_forward_ctx *ctx);

#endif
