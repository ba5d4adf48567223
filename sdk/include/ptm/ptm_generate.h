/*
 * ptm_generate.h - text generation for every causal (and, later, encoder-decoder)
 * architecture: the runtime-owned key/value cache a forward hook writes into, a forward call
 * that takes it, the generation options (HF GenerationConfig and generation_config.json) and
 * ptm_generate, HF's greedy search and sampling with its logits processors.
 *
 * Nothing here knows an architecture: a model can generate when its class says can_generate
 * and its forward hook honours ptm_forward_ctx.cache and logits_to_keep (ptm_plugin.h).
 */
#ifndef PTM_GENERATE_H
#define PTM_GENERATE_H

#include "ptm_base.h"
#include "ptm_plugin.h"
#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_kv_cache ptm_kv_cache;

/* ------------------------------------------------------------------------------------------ */
/* Key/value cache                                                                             */

/*
 * ptm_kv_cache_new - an empty cache for model m: batch rows of up to max_len tokens each
 * (the decoder's tokens: decoder_input_ids of an encoder-decoder model, else input_ids),
 * storing keys and values as dtype. Layer tensors are allocated on m's device the first time
 * the forward hook asks for them (ptm_kv_cache_layer).
 * dtype: PTM_F32. PTM_F16 / PTM_BF16 are refused with PTM_E_UNSUPPORTED until the attention
 * kernels read half-precision keys.
 * out: on PTM_OK a new cache owned by the caller (ptm_kv_cache_free), else NULL. It borrows
 * m, which must outlive it. PTM_E_INVAL for batch or max_len < 1. Not thread safe.
 */
PTM_API ptm_status ptm_kv_cache_new(ptm_model *m, int64_t batch, int64_t max_len, ptm_dtype dtype,
                                    ptm_kv_cache **out);

/* ptm_kv_cache_free - release the cache and its layer tensors; NULL ok. */
PTM_API void ptm_kv_cache_free(ptm_kv_cache *c);

/* ptm_kv_cache_len - tokens already cached per row (the same for every row). */
PTM_API int64_t ptm_kv_cache_len(const ptm_kv_cache *c);

/* ptm_kv_cache_max_len / ptm_kv_cache_batch - the sizes the cache was made with. */
PTM_API int64_t ptm_kv_cache_max_len(const ptm_kv_cache *c);
PTM_API int64_t ptm_kv_cache_batch(const ptm_kv_cache *c);

/*
 * ptm_kv_cache_layer - for forward hooks: layer's key and value tensors, each
 * [batch, max_len, n_kv_heads, head_dim] of the cache's dtype, allocated (uninitialised) on
 * first use. *k and *v are borrowed and live as long as c. Positions [0, len) hold earlier
 * tokens; the hook writes the new tokens at [len, len + S) (narrow views + ptm_op_convert)
 * and attends over [0, len + S) with causal offset len. PTM_E_INVAL when a later call asks
 * for other head sizes than the first, PTM_E_RANGE for a negative layer.
 */
PTM_API ptm_status ptm_kv_cache_layer(ptm_kv_cache *c, int32_t layer, int64_t n_kv_heads,
                                      int64_t head_dim, ptm_tensor **k, ptm_tensor **v);

/* ptm_kv_cache_reset - forget the cached tokens (length 0); the tensors are kept. */
PTM_API void ptm_kv_cache_reset(ptm_kv_cache *c);

/* Options of ptm_model_forward_ex; a NULL pointer means all zero. */
struct ptm_forward_opts {
    uint32_t struct_size;
    int32_t output_hidden_states;
    ptm_kv_cache *cache;    /* NULL: no cache; else the inputs continue the cached tokens */
    int32_t logits_to_keep; /* 0: logits for every position; n: only the last n */
};

/*
 * ptm_model_forward_ex - ptm_model_forward with a cache and HF's logits_to_keep. With a
 * cache, "input_ids" is [batch, S] (batch = the cache's), "attention_mask" covers the cached
 * and the new tokens ([batch, len + S]), "position_ids" [batch, S] defaults to len .. len+S-1;
 * on success the cache length grows by S. PTM_E_RANGE if len + S exceeds the cache's
 * max_len, PTM_E_UNSUPPORTED if the class cannot use a cache. The cache is unchanged on
 * failure of the checks; after a hook failure its length is unchanged but the slots past it
 * may have been written. A model is used by one thread at a time.
 */
PTM_API ptm_status ptm_model_forward_ex(ptm_model *m, const ptm_tensor_map *inputs,
                                        ptm_tensor_map *outputs,
                                        const struct ptm_forward_opts *opts);

/* ------------------------------------------------------------------------------------------ */
/* Generation                                                                                  */

/* Told after each decoding step: the step's token per row (n_rows of them; finished rows get
 * the pad id), and which rows were still running when the token was chosen (1) or already
 * done (0). Borrowed for the call. Return nonzero to stop generating after this step. */
typedef int32_t (*ptm_generate_fn)(const int64_t *tokens, const int32_t *running, int64_t n_rows,
                                   void *user);

#define PTM_GENERATE_MAX_EOS 16

/*
 * Generation options, HF GenerationConfig's names and meaning. Fill with
 * ptm_generate_opts_init (HF defaults, then the model's generation_config.json, then its
 * config.json's token ids), then change what the user asked for: that is HF's precedence.
 */
struct ptm_generate_opts {
    uint32_t struct_size;
    int64_t max_new_tokens;   /* -1: unset, max_length decides */
    int64_t max_length;       /* prompt + new tokens; HF default 20 */
    int64_t min_new_tokens;   /* eos is masked before this many new tokens; 0: off */
    int32_t do_sample;        /* 0: greedy search */
    float temperature;        /* sampling only; 1 = off */
    int64_t top_k;            /* sampling only; 0 = off; HF default 50 */
    float top_p;              /* sampling only; 1 = off */
    float min_p;              /* sampling only; 0 = off (HF None) */
    float repetition_penalty; /* 1 = off; applies to greedy search too */
    uint64_t seed;            /* sampling PRNG seed: the same seed gives the same tokens */
    int64_t eos_ids[PTM_GENERATE_MAX_EOS];
    int32_t n_eos;
    int64_t pad_id;         /* finished rows are padded with it; -1: eos_ids[0] (as HF) */
    int64_t bos_id;         /* informational; -1: none */
    ptm_dtype cache_dtype;  /* PTM_F32 */
    ptm_generate_fn stream; /* may be NULL */
    void *stream_user;
};

/*
 * ptm_generate_opts_init - fill o with HF's GenerationConfig defaults, then the values of the
 * model directory's generation_config.json (when m was loaded from a directory holding one),
 * then bos / eos / pad ids from m's config where the generation config left them unset.
 * PTM_E_FORMAT / PTM_E_TYPE naming generation_config.json and the key for a malformed file.
 */
PTM_API ptm_status ptm_generate_opts_init(const ptm_model *m, struct ptm_generate_opts *o);

/*
 * ptm_generate_opts_save - write o as a generation_config.json into dir (HF's keys; values
 * equal to HF's defaults are left out, as save_pretrained does). Atomic (temp + rename).
 */
PTM_API ptm_status ptm_generate_opts_save(const struct ptm_generate_opts *o, const char *dir);

/*
 * ptm_generate - HF model.generate for decoder-only models: greedy search or multinomial
 * sampling, with the KV cache, one prefill forward then one forward per new token.
 * ids: [batch, seq] row-major prompt ids, left padded; mask: the same shape (1 token, 0
 * padding) or NULL for all ones. Encoder-decoder models (config is_encoder_decoder, e.g.
 * T5ForConditionalGeneration): ids (right padded, as HF tokenizers pad them) and mask feed the
 * encoder once; the decoder starts from config decoder_start_token_id (else bos) and runs
 * one token per step through the KV cache; out holds the decoder's ids, start token first,
 * and max_length counts them. Logits processors run in HF's order: repetition penalty
 * (over every id of the row so far, padding included, as HF does), min_new_tokens eos mask;
 * then, when sampling, temperature, top_k, top_p, min_p. A row stops at an eos id; rows that
 * finished get pad ids. Generation stops when every row has finished, at max_new_tokens
 * (else max_length - seq, at least one token, as HF), or when the stream callback asks.
 * Sampling draws from a xoshiro256** stream seeded with o->seed: reproducible here, but not
 * torch.multinomial's draws.
 * out: on PTM_OK a new [batch, *out_len] row-major array, prompt included (free with
 * ptm_free), else NULL. PTM_E_UNSUPPORTED if m's class cannot generate; PTM_E_INVAL for
 * bad options (message names the option and value). A model is used by one thread at a time.
 */
PTM_API ptm_status ptm_generate(ptm_model *m, const int64_t *ids, const int64_t *mask,
                                int64_t batch, int64_t seq, const struct ptm_generate_opts *o,
                                int64_t **out, int64_t *out_len);

/*
 * ptm_generate_process_logits - the logits processors of one step, on scores [n_rows, vocab]
 * in place (exposed so they can be checked against HF's on fixed vectors): ids [n_rows,
 * n_ids] are the tokens so far; n_new the tokens generated so far (for min_new_tokens).
 * Removed tokens become -INFINITY, as HF's filter_value.
 */
PTM_API ptm_status ptm_generate_process_logits(const struct ptm_generate_opts *o,
                                               const int64_t *ids, int64_t n_ids, int64_t n_new,
                                               float *scores, int64_t n_rows, int64_t vocab);

#ifdef __cplusplus
}
#endif
#endif /* PTM_GENERATE_H */
