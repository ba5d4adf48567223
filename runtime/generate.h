/*
 * generate.h - what the generation runtime's files share: the decoding state (struct gen)
 * and its steps from generate.c, the logits processors, the beam search entry of
 * generate_beam.c, and the row copy of kv_cache.c. Nothing outside generate*.c and kv_cache.c
 * includes it.
 */
#ifndef PTM_RUNTIME_GENERATE_H
#define PTM_RUNTIME_GENERATE_H

#include "ptm/ptm.h"

struct rng {
    uint64_t s[4];
};

/* One ptm_generate call. Rows are prompts (greedy, sampling) or beams (beam search). */
struct gen {
    ptm_model *m;
    const struct ptm_generate_opts *o; /* full-size copy of the caller's options */
    int64_t B, S, max_total, cur;
    int64_t *ids;  /* [B, max_total] */
    int64_t *mask; /* [B, max_total] */
    int64_t *lead; /* [B]: left padding the repetition penalty skips (HF prompt_ignore_length) */
    int32_t *running;
    int64_t *step_tokens;
    ptm_kv_cache *cache;
    void *scratch;
    float *scores; /* [B, vocab] */
    struct rng rng;
    /* Encoder-decoder models: the prompt feeds the encoder; ids hold the decoder's tokens. */
    int seq2seq;
    const int64_t *enc_ids, *enc_mask; /* [B, enc_S]; enc_mask may be NULL */
    int64_t *enc_owned;                /* beam search's expanded enc_ids and enc_mask, or NULL */
    int64_t enc_S;
    ptm_tensor *enc_out; /* the encoder's output after the first step, or NULL */
};

/* The forward of one step: the new columns [from, cur) of every row (decoder-only), or the
 * newest decoder id (encoder-decoder); the last position's logits into g->scores, *vocab their
 * width (vocab_hint: the width of earlier steps, or 0). */
ptm_status ptm__gen_forward(struct gen *g, int64_t from, int64_t vocab_hint, int64_t *vocab);

/* All logits processors of one step on g->scores [g->B, vocab] for the ids [0, g->cur). */
void ptm__gen_process(struct gen *g, int64_t vocab);

/* HF's _beam_search from the prefill's scores [g->B, vocab] on: expands every row to num_beams
 * rows, decodes, and hands the result to *out / *out_len as ptm_generate documents. */
ptm_status ptm__generate_beam(struct gen *g, int64_t vocab, int64_t **out, int64_t *out_len);

/* dst[dst_row, 0:len] = src[src_row, 0:len] for tensors of equal trailing dims (row views and
 * ptm_op_convert, so any backend). */
ptm_status ptm__rows_copy(ptm_tensor *dst, int64_t dst_row, ptm_tensor *src, int64_t src_row,
                          int64_t len);

#endif
