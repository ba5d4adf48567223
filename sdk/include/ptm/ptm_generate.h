/*
 * ptm_generate.h - text generation for every causal (and, later, encoder-decoder)
 * architecture: the runtime-owned key/value cache a forward hook writes into, a forward call
 * that takes it, the generation options (HF GenerationConfig and generation_config.json) and
 * ptm_generate, HF's greedy search, sampling and beam search with its logits processors.
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
 * dtype: PTM_F32, or PTM_F16 / PTM_BF16 (half the memory and the bytes decode reads; keys and
 * values are rounded as they are stored). The CPU backend attends over all three; a backend
 * whose attention reads F32 only fails the forward with PTM_E_UNSUPPORTED. Others:
 * PTM_E_UNSUPPORTED.
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

/*
 * ptm_kv_cache_cross_layer - for encoder-decoder forward hooks: layer's cross-attention key
 * and value tensors, each [batch, enc_len, n_heads, head_dim] of the cache's dtype. They depend
 * on the encoder output only, so a request computes them once: *fill is 1 when the hook must
 * write them (the first forward since ptm_kv_cache_new or ptm_kv_cache_reset, or one that
 * failed), 0 when they hold what an earlier forward of this request wrote. *k and *v are
 * borrowed and live as long as c (until a ptm_kv_cache_gather that changes the batch).
 * PTM_E_INVAL when a later call asks for other sizes than the first, PTM_E_RANGE for a
 * negative layer. (ABI 1.1)
 */
PTM_API ptm_status ptm_kv_cache_cross_layer(ptm_kv_cache *c, int32_t layer, int64_t n_heads,
                                            int64_t head_dim, int64_t enc_len, ptm_tensor **k,
                                            ptm_tensor **v, int32_t *fill);

/*
 * ptm_kv_cache_gather - rebuild the cache's rows from its own rows: new row i holds what row
 * rows[i] held, and n_rows becomes the cache's batch. rows[i] = i / n repeats every row n times
 * (a batch expanded for beam search); with n_rows == batch it is HF's Cache.reorder_cache,
 * done after each beam search step. Self-attention layers copy their cached positions
 * [0, len) into a second buffer through the backend (ptm_op_convert on row views, so any
 * backend works) and swap; cross-attention layers copy only when a row is to hold another
 * request row's encoder keys than it does (never when beams of one prompt trade places).
 * rows: n_rows indices in [0, batch), borrowed for the call. PTM_E_RANGE names a bad index;
 * PTM_E_INVAL for n_rows < 1. On failure the cache is unchanged. (ABI 1.1)
 */
PTM_API ptm_status ptm_kv_cache_gather(ptm_kv_cache *c, const int64_t *rows, int64_t n_rows);

/* ptm_kv_cache_reset - forget the cached tokens (length 0) and the cross-attention keys and
 * values (the next forward fills them again); the tensors are kept. */
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
 * ptm_generate_opts.early_stopping, HF's three values. HEURISTIC (false): a prompt stops when
 * no running beam, scored at the current length, can beat its worst finished hypothesis.
 * TRUE: a prompt stops once num_beams hypotheses have finished. NEVER ("never"): the same test
 * as false, at max_length when length_penalty > 0 (the canonical bound).
 */
#define PTM_EARLY_STOPPING_HEURISTIC 0
#define PTM_EARLY_STOPPING_TRUE      1
#define PTM_EARLY_STOPPING_NEVER     2

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
    ptm_dtype cache_dtype;  /* PTM_F32 (default), PTM_F16 or PTM_BF16: ptm_kv_cache_new */
    ptm_generate_fn stream; /* may be NULL; not with beam search */
    void *stream_user;
    /* ABI 1.1: beam search. A caller built against 1.0 passes the smaller struct_size; the
     * runtime then takes HF's defaults for these. */
    int32_t num_beams;            /* 1: no beam search */
    float length_penalty;         /* finished beams score sum_logprobs / len^length_penalty; 1 */
    int32_t early_stopping;       /* PTM_EARLY_STOPPING_*; HF default false (heuristic) */
    int32_t num_return_sequences; /* rows returned per prompt: the best beams, or samples; 1 */
    int64_t no_repeat_ngram_size; /* an n-gram of this size occurs at most once; 0: off */
};

/* The struct_size of a ptm_generate_opts built against ABI 1.0 (before beam search). */
#define PTM_GENERATE_OPTS_SIZE_1_0                                                                 \
    (offsetof(struct ptm_generate_opts, stream_user) + sizeof(void *))

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
 * ptm_generate - HF model.generate: greedy search, multinomial sampling or beam search, with
 * the KV cache, one prefill forward then one forward per new token.
 * ids: [batch, seq] row-major prompt ids, left padded; mask: the same shape (1 token, 0
 * padding) or NULL for all ones. Encoder-decoder models (config is_encoder_decoder, e.g.
 * T5ForConditionalGeneration): ids (right padded, as HF tokenizers pad them) and mask feed the
 * encoder once; the decoder starts from config decoder_start_token_id (else bos) and runs
 * one token per step through the KV cache (cross-attention keys and values computed once);
 * out holds the decoder's ids, start token first, and max_length counts them. Logits
 * processors run in HF's order: repetition penalty (over the ids of the row so far, a
 * decoder-only prompt's left padding excepted, as transformers 5.24 does), no_repeat_ngram
 * (over the whole row, prompt and padding included), min_new_tokens eos mask; then, when
 * sampling, temperature, top_k, top_p, min_p. A row stops at an eos id; rows that finished get
 * pad ids. Generation stops when every row has finished, at max_new_tokens (else max_length -
 * seq, at least one token, as HF), or when the stream callback asks. Sampling draws from a
 * xoshiro256** stream seeded with o->seed: reproducible here, but not torch.multinomial's
 * draws; num_return_sequences > 1 samples that many rows per prompt.
 * Beam search (num_beams > 1) is HF's _beam_search: the prompt is encoded / prefilled once per
 * prompt and its cache expanded to num_beams rows; each step the processors run on the
 * log-softmax of the logits, the running beam's score is added, and the best
 * max(2, 1 + n_eos) * num_beams candidates of each prompt are kept (equal scores: the lower
 * beam, then the lower id first); those among the first num_beams that end in eos (or reach
 * max_length) join the prompt's finished hypotheses, scored sum_logprobs / (new tokens ^
 * length_penalty); the best num_beams others run on, and the cache rows follow them
 * (ptm_kv_cache_gather). early_stopping ends a prompt as HF does. The result holds each
 * prompt's num_return_sequences best hypotheses, best first, filled after their eos with
 * pad_id (eos_ids[0] when pad_id is 0 or unset, as HF), cut to the longest. Beam search with
 * do_sample or a stream callback is PTM_E_UNSUPPORTED.
 * out: on PTM_OK a new [batch * num_return_sequences, *out_len] row-major array (a prompt's
 * rows next to each other), prompt included (free with ptm_free), else NULL.
 * PTM_E_UNSUPPORTED if m's class cannot generate; PTM_E_INVAL for bad options (message names
 * the option and value): num_beams < 1, num_return_sequences < 1 or above num_beams (above 1
 * for greedy search), no_repeat_ngram_size < 0, an unknown early_stopping, a struct_size below
 * PTM_GENERATE_OPTS_SIZE_1_0. A model is used by one thread at a time.
 */
PTM_API ptm_status ptm_generate(ptm_model *m, const int64_t *ids, const int64_t *mask,
                                int64_t batch, int64_t seq, const struct ptm_generate_opts *o,
                                int64_t **out, int64_t *out_len);

/*
 * ptm_generate_process_logits - the logits processors of one step, on scores [n_rows, vocab]
 * in place (exposed so they can be checked against HF's on fixed vectors): ids [n_rows,
 * n_ids] are the tokens so far (every id counts for the repetition penalty, as HF without an
 * attention mask); n_new the tokens generated so far (for min_new_tokens). Removed tokens
 * become -INFINITY, as HF's filter_value.
 */
PTM_API ptm_status ptm_generate_process_logits(const struct ptm_generate_opts *o,
                                               const int64_t *ids, int64_t n_ids, int64_t n_new,
                                               float *scores, int64_t n_rows, int64_t vocab);

#ifdef __cplusplus
}
#endif
#endif /* PTM_GENERATE_H */
