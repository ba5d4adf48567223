/*
 * ptm_embed.h - sentence embeddings, as sentence-transformers computes them: a model
 * directory's modules.json names the pipeline (Transformer, Pooling, Normalize), its
 * 1_Pooling/config.json the pooling (mean, CLS, max, mean / sqrt(len)) and
 * sentence_bert_config.json the longest input. A plain HF model without modules.json gets
 * sentence-transformers' default: mean pooling, no normalisation.
 */
#ifndef PTM_EMBED_H
#define PTM_EMBED_H

#include "ptm_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_embedder ptm_embedder;
struct ptm_load_opts;

/*
 * ptm_embedder_load - load the model (as ptm_model_load does: local directory, built-in name
 * or Hugging Face cache), its tokenizer and its sentence-transformers modules.
 * out: owned by the caller (ptm_embedder_free); NULL on failure. Errors as ptm_model_load,
 * plus PTM_E_FORMAT naming modules.json or the pooling config when malformed, and
 * PTM_E_UNSUPPORTED naming a module type ptm does not implement.
 */
PTM_API ptm_status ptm_embedder_load(const char *name, const struct ptm_load_opts *opts,
                                     ptm_embedder **out);

/* ptm_embedder_free - release everything; NULL ok. */
PTM_API void ptm_embedder_free(ptm_embedder *e);

/* ptm_embedder_dim - the embedding width. */
PTM_API int64_t ptm_embedder_dim(const ptm_embedder *e);

/* ptm_embedder_pooling - "mean", "cls", "max" or "mean_sqrt_len"; borrowed. */
PTM_API const char *ptm_embedder_pooling(const ptm_embedder *e);

/* ptm_embedder_normalizes - 1 if the pipeline ends in Normalize. */
PTM_API int32_t ptm_embedder_normalizes(const ptm_embedder *e);

/*
 * ptm_embedder_encode - embed n UTF-8 texts into out (n x dim floats, row-major), truncated
 * to the model's max_seq_length. Texts are batched by length internally; the results do
 * not depend on the batching. One thread at a time per embedder.
 */
PTM_API ptm_status ptm_embedder_encode(ptm_embedder *e, const char *const *texts, size_t n,
                                       float *out);

#ifdef __cplusplus
}
#endif
#endif /* PTM_EMBED_H */
