/*
 * bert.h - what bert.c (config, classes, parameters) and bert_forward.c (the forward passes)
 * share inside the BERT plugin.
 */
#ifndef PTM_BERT_H
#define PTM_BERT_H

#include "ptm/ptm.h" /* the model and op API plugins call */

/* The config values a forward pass needs, read once per call. */
struct bert_hparams {
    int64_t vocab, hidden, layers, heads, inter, max_pos, type_vocab, num_labels;
    double eps;
    int32_t act; /* PTM_UNARY_* */
};

ptm_status bert_hparams(const ptm_model *m, struct bert_hparams *hp);

/* The forward hooks of each class. */
ptm_status bert_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status bert_forward_mlm(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status bert_forward_seqcls(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status bert_forward_tokcls(ptm_model *m, const struct ptm_forward_ctx *ctx);
ptm_status bert_forward_qa(ptm_model *m, const struct ptm_forward_ctx *ctx);

#endif
