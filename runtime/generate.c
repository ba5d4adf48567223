/*
 * generate.c - HF model.generate: the option checks, the decoding state and its forward steps
 * (one prefill forward over the left-padded prompts, then one forward per new token through
 * the KV cache, position ids from the attention mask as HF's prepare_inputs_for_generation
 * makes them), HF's logits processors in GenerationMixin._get_logits_processor order
 * (repetition penalty, no_repeat_ngram, min_new_tokens, then the sampling warpers
 * temperature, top_k, top_p, min_p), and the greedy / sampling loop: argmax or seeded
 * multinomial sampling, eos stopping and pad filling. Encoder-decoder models (config
 * is_encoder_decoder) take the same loop over decoder ids that start with
 * decoder_start_token_id: the encoder runs in the first forward and its output is passed back
 * as encoder_outputs; the decoder's tokens go through the KV cache one step at a time. Beam
 * search is generate_beam.c; options and generation_config.json are generate_config.c; the
 * cache is kv_cache.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "generate.h"
#include "ptm/ptm.h"

/* ---- PRNG: xoshiro256** seeded by splitmix64, so a seed gives the same stream anywhere. */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return (double)(out >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- logits processors, one row at a time, in F32 as torch computes them ---- */

/* softmax of x into p (F32, max-subtracted); -inf gives 0. */
static void softmax_row(const float *x, float *p, int64_t n)
{
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        mx = x[i] > mx ? x[i] : mx;
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] = expf(x[i] - mx);
        sum += p[i];
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] /= sum;
    }
}

/* NoRepeatNGramLogitsProcessor: every earlier window of n ids whose first n - 1 equal the
 * row's last n - 1 bans its last id (the prompt and its padding count, as in HF). */
static void no_repeat_ngram(float *s, int64_t vocab, const int64_t *ids, int64_t n_ids, int64_t n)
{
    if (n_ids < n) {
        return;
    }
    const int64_t *tail = ids + n_ids - (n - 1);
    for (int64_t w = 0; w + n <= n_ids; w++) {
        if (memcmp(ids + w, tail, (size_t)(n - 1) * sizeof *ids) == 0 && ids[w + n - 1] >= 0 &&
            ids[w + n - 1] < vocab) {
            s[ids[w + n - 1]] = -INFINITY;
        }
    }
}

/* RepetitionPenaltyLogitsProcessor: once per distinct id of the row (gather / scatter). */
static void repetition_penalty(float *s, int64_t vocab, const int64_t *ids, int64_t n, float pen,
                               unsigned char *seen)
{
    memset(seen, 0, (size_t)vocab);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] >= 0 && ids[i] < vocab && !seen[ids[i]]) {
            seen[ids[i]] = 1;
            float v = s[ids[i]];
            s[ids[i]] = v < 0 ? v * pen : v / pen;
        }
    }
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* TopKLogitsWarper: drop scores below the k-th largest (ties with it stay). */
static void top_k(float *s, int64_t vocab, int64_t k, float *tmp)
{
    k = k < vocab ? k : vocab;
    memcpy(tmp, s, (size_t)vocab * sizeof *tmp);
    qsort(tmp, (size_t)vocab, sizeof *tmp, cmp_float_desc);
    float kth = tmp[k - 1];
    for (int64_t i = 0; i < vocab; i++) {
        s[i] = s[i] < kth ? -INFINITY : s[i];
    }
}

struct scored {
    float v;
    int64_t i;
};

static int cmp_scored_asc(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->v != y->v) {
        return x->v < y->v ? -1 : 1;
    }
    return (x->i > y->i) - (x->i < y->i);
}

/* TopPLogitsWarper: sort ascending, drop the prefix whose cumulative probability is
 * <= 1 - top_p, always keeping the most likely token. */
static void top_p(float *s, int64_t vocab, float p, struct scored *sorted, float *probs)
{
    for (int64_t i = 0; i < vocab; i++) {
        sorted[i] = (struct scored){s[i], i};
    }
    qsort(sorted, (size_t)vocab, sizeof *sorted, cmp_scored_asc);
    for (int64_t i = 0; i < vocab; i++) {
        probs[i] = sorted[i].v;
    }
    softmax_row(probs, probs, vocab);
    float cum = 0.0f, thr = (float)(1.0 - (double)p);
    for (int64_t i = 0; i + 1 < vocab; i++) {
        cum += probs[i];
        if (cum <= thr) {
            s[sorted[i].i] = -INFINITY;
        }
    }
}

/* MinPLogitsWarper: drop tokens whose probability is below min_p times the top one. */
static void min_p(float *s, int64_t vocab, float mp, float *probs)
{
    softmax_row(s, probs, vocab);
    float top = 0.0f;
    int64_t arg = 0;
    for (int64_t i = 0; i < vocab; i++) {
        if (probs[i] > top) {
            top = probs[i];
            arg = i;
        }
    }
    float thr = mp * top;
    for (int64_t i = 0; i < vocab; i++) {
        if (probs[i] < thr && i != arg) {
            s[i] = -INFINITY;
        }
    }
}

/* The caller's options as a full-size struct: a 1.0 caller's lacks the beam search members,
 * which then take HF's defaults. */
static ptm_status opts_copy(const struct ptm_generate_opts *o, struct ptm_generate_opts *full)
{
    if (o == NULL || o->struct_size < PTM_GENERATE_OPTS_SIZE_1_0) {
        return ptm__fail(PTM_E_INVAL, "generate: opts missing or struct_size %u too small",
                         o ? (unsigned)o->struct_size : 0u);
    }
    memset(full, 0, sizeof *full);
    full->num_beams = 1;
    full->length_penalty = 1.0f;
    full->num_return_sequences = 1;
    memcpy(full, o, o->struct_size < sizeof *full ? o->struct_size : sizeof *full);
    full->struct_size = sizeof *full;
    return PTM_OK;
}

static ptm_status check_sampling(const struct ptm_generate_opts *o)
{
    if (o->do_sample && !(o->temperature > 0)) {
        return ptm__fail(PTM_E_INVAL, "generate: temperature %g must be > 0",
                         (double)o->temperature);
    }
    if (o->do_sample &&
        (o->top_k < 0 || !(o->top_p > 0 && o->top_p <= 1) || !(o->min_p >= 0 && o->min_p <= 1))) {
        return ptm__fail(PTM_E_INVAL, "generate: top_k %lld, top_p %g, min_p %g out of range",
                         (long long)o->top_k, (double)o->top_p, (double)o->min_p);
    }
    return PTM_OK;
}

static ptm_status check_beams(const struct ptm_generate_opts *o)
{
    if (o->num_beams < 1) {
        return ptm__fail(PTM_E_INVAL, "generate: num_beams %d must be >= 1", (int)o->num_beams);
    }
    if (o->num_return_sequences < 1) {
        return ptm__fail(PTM_E_INVAL, "generate: num_return_sequences %d must be >= 1",
                         (int)o->num_return_sequences);
    }
    if (o->num_beams > 1 && o->num_return_sequences > o->num_beams) {
        return ptm__fail(PTM_E_INVAL, "generate: num_return_sequences %d must be <= num_beams %d",
                         (int)o->num_return_sequences, (int)o->num_beams);
    }
    if (o->num_beams == 1 && !o->do_sample && o->num_return_sequences > 1) {
        return ptm__fail(PTM_E_INVAL,
                         "generate: num_return_sequences %d needs beam search or sampling "
                         "(greedy search gives one sequence per prompt)",
                         (int)o->num_return_sequences);
    }
    if (o->early_stopping < PTM_EARLY_STOPPING_HEURISTIC ||
        o->early_stopping > PTM_EARLY_STOPPING_NEVER) {
        return ptm__fail(PTM_E_INVAL,
                         "generate: early_stopping %d is not one of 0 (false), "
                         "1 (true), 2 (\"never\")",
                         (int)o->early_stopping);
    }
    if (!isfinite(o->length_penalty)) {
        return ptm__fail(PTM_E_INVAL, "generate: length_penalty %g must be finite",
                         (double)o->length_penalty);
    }
    if (o->num_beams > 1 && o->do_sample) {
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "generate: beam search with do_sample (beam sampling) is not "
                         "implemented; use num_beams 1 or do_sample false");
    }
    if (o->num_beams > 1 && o->stream != NULL) {
        return ptm__fail(PTM_E_UNSUPPORTED, "generate: a stream callback cannot be used with "
                                            "beam search (a step's beams are not final), as in HF");
    }
    return PTM_OK;
}

/* The options the logits processors read. */
static ptm_status check_processors(const struct ptm_generate_opts *o)
{
    if (!(o->repetition_penalty > 0)) {
        return ptm__fail(PTM_E_INVAL, "generate: repetition_penalty %g must be > 0",
                         (double)o->repetition_penalty);
    }
    if (o->no_repeat_ngram_size < 0) {
        return ptm__fail(PTM_E_INVAL, "generate: no_repeat_ngram_size %lld must be >= 0",
                         (long long)o->no_repeat_ngram_size);
    }
    return check_sampling(o);
}

static ptm_status check_opts(const struct ptm_generate_opts *o)
{
    ptm_status st = check_processors(o);
    return st == PTM_OK ? check_beams(o) : st;
}

/* All processors of one step on scores [n_rows, vocab]. Row r's ids so far are
 * ids[r * ld_ids .. + n_ids); the repetition penalty skips the first lead[r] (NULL: none).
 * scratch comes from scratch_new(vocab). */
static void process_rows(const struct ptm_generate_opts *o, const int64_t *ids, int64_t ld_ids,
                         int64_t n_ids, const int64_t *lead, int64_t n_new, float *scores,
                         int64_t n_rows, int64_t vocab, void *scratch)
{
    float *tmp = scratch;
    struct scored *sorted = (struct scored *)(tmp + vocab);
    unsigned char *seen = (unsigned char *)(sorted + vocab);
    for (int64_t r = 0; r < n_rows; r++) {
        float *s = scores + r * vocab;
        const int64_t *row = ids + r * ld_ids;
        if (o->repetition_penalty != 1.0f) {
            int64_t skip = lead ? lead[r] : 0;
            repetition_penalty(s, vocab, row + skip, n_ids - skip, o->repetition_penalty, seen);
        }
        if (o->no_repeat_ngram_size > 0) {
            no_repeat_ngram(s, vocab, row, n_ids, o->no_repeat_ngram_size);
        }
        for (int32_t e = 0; n_new < o->min_new_tokens && e < o->n_eos; e++) {
            if (o->eos_ids[e] >= 0 && o->eos_ids[e] < vocab) {
                s[o->eos_ids[e]] = -INFINITY;
            }
        }
        if (!o->do_sample) {
            continue; /* the warpers apply to sampling only */
        }
        if (o->temperature != 1.0f) {
            for (int64_t i = 0; i < vocab; i++) {
                s[i] = s[i] / o->temperature;
            }
        }
        if (o->top_k > 0) {
            top_k(s, vocab, o->top_k, tmp);
        }
        if (o->top_p < 1.0f) {
            top_p(s, vocab, o->top_p, sorted, tmp);
        }
        if (o->min_p > 0.0f) {
            min_p(s, vocab, o->min_p, tmp);
        }
    }
}

static void *scratch_new(int64_t vocab)
{
    return ptm__malloc((size_t)vocab * (sizeof(float) + sizeof(struct scored) + 1) + 16);
}

ptm_status ptm_generate_process_logits(const struct ptm_generate_opts *o, const int64_t *ids,
                                       int64_t n_ids, int64_t n_new, float *scores, int64_t n_rows,
                                       int64_t vocab)
{
    ptm__error_clear();
    struct ptm_generate_opts full;
    ptm_status st = opts_copy(o, &full);
    if (st == PTM_OK) {
        st = check_processors(&full);
    }
    if (st != PTM_OK) {
        return st;
    }
    if (scores == NULL || vocab < 1 || n_rows < 0 || (n_ids > 0 && ids == NULL)) {
        return ptm__fail(PTM_E_INVAL, "generate: process_logits: bad arguments");
    }
    void *scratch = scratch_new(vocab);
    if (scratch == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    process_rows(&full, ids, n_ids, n_ids, NULL, n_new, scores, n_rows, vocab, scratch);
    ptm__free(scratch);
    return PTM_OK;
}

/* The first index of the row's maximum under '>' (so NaN never wins, and a NaN at 0 stays):
 * a maximum kept in 16 independent lanes, which compilers vectorise, then a scan for its first
 * equal. The one-pass loop reloaded s[best] every step: ~2% of batch-16 t5-small greedy decode
 * (16 rows of 32128 a step; 1.0 -> 0.4 ns per element, gcc -O2). */
PTM_API int64_t ptm__argmax(const float *s, int64_t n); /* exported for the test suite */

int64_t ptm__argmax(const float *s, int64_t n)
{
    float top = s[0], lane[16];
    if (top != top) {
        return 0;
    }
    for (int l = 0; l < 16; l++) {
        lane[l] = top;
    }
    int64_t i = 1;
    for (; i + 16 <= n; i += 16) {
        for (int l = 0; l < 16; l++) {
            lane[l] = s[i + l] > lane[l] ? s[i + l] : lane[l];
        }
    }
    for (; i < n; i++) {
        top = s[i] > top ? s[i] : top;
    }
    for (int l = 0; l < 16; l++) {
        top = lane[l] > top ? lane[l] : top;
    }
    for (i = 0; i < n && !(s[i] == top); i++) {
    }
    return i < n ? i : 0;
}

/* The next token of one processed row: argmax (first of equals, as torch), or a draw. */
static int64_t choose(const struct ptm_generate_opts *o, float *s, int64_t vocab, struct rng *rng)
{
    int64_t best = ptm__argmax(s, vocab);
    if (!o->do_sample) {
        return best;
    }
    softmax_row(s, s, vocab);
    double u = rng_uniform(rng), cum = 0.0;
    for (int64_t i = 0; i < vocab; i++) {
        cum += (double)s[i];
        if (u < cum && s[i] > 0) {
            return i;
        }
    }
    return best; /* rounding left u above the total: the most likely token */
}

/* ---- the decoding loop ---- */

static void gen_free(struct gen *g)
{
    ptm__free(g->mask);
    ptm__free(g->lead);
    ptm__free(g->enc_owned);
    ptm__free(g->running);
    ptm__free(g->step_tokens);
    ptm__free(g->scratch);
    ptm__free(g->scores);
    ptm_kv_cache_free(g->cache);
    ptm_tensor_free(g->enc_out);
}

/* A host array as a [B, n] I64 tensor in map under name. */
static ptm_status put(ptm_tensor_map *map, const char *name, ptm_device *dev, int64_t B, int64_t n,
                      const int64_t *data)
{
    int64_t shape[2] = {B, n};
    ptm_tensor *t = NULL;
    ptm_status st = ptm_tensor_from_host(dev, PTM_I64, 2, shape, data, &t);
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(map, name, t);
    }
    ptm_tensor_free(t);
    return st;
}

static ptm_status take_logits(struct gen *g, const ptm_tensor_map *out, int64_t vocab_hint,
                              int64_t *vocab);

/* Forward the columns [from, cur) of every row; the last position's logits into g->scores. */
static ptm_status step_forward(struct gen *g, int64_t from, int64_t vocab_hint, int64_t *vocab)
{
    int64_t n = g->cur - from, B = g->B;
    ptm_tensor_map *in = NULL, *out = NULL;
    int64_t *cols = ptm__malloc((size_t)(B * g->cur) * sizeof *cols + 1);
    ptm_device *dev = ptm_model_device(g->m);
    ptm_status st = cols ? ptm_tensor_map_new(&in) : ptm__fail(PTM_E_NOMEM, "generate: no memory");
    if (st == PTM_OK) {
        st = ptm_tensor_map_new(&out);
    }
    /* input_ids [B, n]: the new columns. */
    for (int64_t b = 0; st == PTM_OK && b < B; b++) {
        memcpy(cols + b * n, g->ids + b * g->max_total + from, (size_t)n * sizeof *cols);
    }
    if (st == PTM_OK) {
        st = put(in, "input_ids", dev, B, n, cols);
    }
    /* attention_mask [B, cur]: cached and new columns. */
    for (int64_t b = 0; st == PTM_OK && b < B; b++) {
        memcpy(cols + b * g->cur, g->mask + b * g->max_total, (size_t)g->cur * sizeof *cols);
    }
    if (st == PTM_OK) {
        st = put(in, "attention_mask", dev, B, g->cur, cols);
    }
    /* HF: position_ids = mask.cumsum(-1) - 1, 1 where the mask is 0; the new columns. */
    for (int64_t b = 0; st == PTM_OK && b < B; b++) {
        int64_t ones = 0;
        for (int64_t j = 0; j < g->cur; j++) {
            int64_t on = g->mask[b * g->max_total + j] != 0;
            ones += on;
            if (j >= from) {
                cols[b * n + (j - from)] = on ? ones - 1 : 1;
            }
        }
    }
    if (st == PTM_OK) {
        st = put(in, "position_ids", dev, B, n, cols);
    }
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = g->cache, .logits_to_keep = 1};
    if (st == PTM_OK) {
        st = ptm_model_forward_ex(g->m, in, out, &fo);
    }
    if (st == PTM_OK) {
        st = take_logits(g, out, vocab_hint, vocab);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm__free(cols);
    return st;
}

/* The last position's logits of a step's outputs into g->scores. */
static ptm_status take_logits(struct gen *g, const ptm_tensor_map *out, int64_t vocab_hint,
                              int64_t *vocab)
{
    int64_t B = g->B;
    ptm_status st = PTM_OK;
    ptm_tensor *logits = ptm_tensor_map_get(out, "logits");
    if (logits == NULL || ptm_tensor_ndim(logits) != 3 || ptm_tensor_dim(logits, 0) != B ||
        ptm_tensor_dim(logits, 1) != 1 || ptm_tensor_dtype(logits) != PTM_F32) {
        st = ptm__fail(PTM_E_PLUGIN, "generate: %s returned no F32 logits [%lld, 1, vocab]",
                       ptm_model_class_name(g->m), (long long)B);
    }
    if (st == PTM_OK) {
        *vocab = ptm_tensor_dim(logits, 2);
        if (g->scores == NULL && (g->scores = ptm__malloc((size_t)(B * *vocab) * 4 + 1)) == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "generate: out of memory");
        } else if (vocab_hint > 0 && *vocab != vocab_hint) {
            st = ptm__fail(PTM_E_PLUGIN, "generate: logits width changed");
        }
    }
    if (st == PTM_OK) {
        st = ptm_tensor_read(logits, g->scores, (size_t)(B * *vocab) * 4);
    }
    return st;
}

/* Encoder-decoder step: the prompt and its mask for the encoder (or its output, kept from
 * the first step), decoder_input_ids = the newest decoder id of each row (the earlier ones are
 * in the cache); the last logits into g->scores. */
static ptm_status step_forward_seq2seq(struct gen *g, int64_t vocab_hint, int64_t *vocab)
{
    int64_t B = g->B, n = 1;
    ptm_tensor_map *in = NULL, *out = NULL;
    int64_t *cols = ptm__malloc((size_t)(B * n) * sizeof *cols + 1);
    ptm_device *dev = ptm_model_device(g->m);
    ptm_status st = cols ? ptm_tensor_map_new(&in) : ptm__fail(PTM_E_NOMEM, "generate: no memory");
    if (st == PTM_OK) {
        st = ptm_tensor_map_new(&out);
    }
    if (st == PTM_OK) {
        st = put(in, "input_ids", dev, B, g->enc_S, g->enc_ids);
    }
    if (st == PTM_OK && g->enc_mask != NULL) {
        st = put(in, "attention_mask", dev, B, g->enc_S, g->enc_mask);
    }
    if (st == PTM_OK && g->enc_out != NULL) {
        st = ptm_tensor_map_set(in, "encoder_outputs", g->enc_out);
    }
    for (int64_t b = 0; st == PTM_OK && b < B; b++) { /* decoder_input_ids [B, 1] */
        cols[b] = g->ids[b * g->max_total + g->cur - 1];
    }
    if (st == PTM_OK) {
        st = put(in, "decoder_input_ids", dev, B, n, cols);
    }
    struct ptm_forward_opts fo = {.struct_size = sizeof fo, .cache = g->cache, .logits_to_keep = 1};
    if (st == PTM_OK) {
        st = ptm_model_forward_ex(g->m, in, out, &fo);
    }
    ptm_tensor *enc = st == PTM_OK ? ptm_tensor_map_get(out, "encoder_last_hidden_state") : NULL;
    if (g->enc_out == NULL && enc != NULL) { /* encode once */
        g->enc_out = ptm_tensor_retain(enc);
    }
    if (st == PTM_OK) {
        st = take_logits(g, out, vocab_hint, vocab);
    }
    ptm_tensor_map_free(in);
    ptm_tensor_map_free(out);
    ptm__free(cols);
    return st;
}

ptm_status ptm__gen_forward(struct gen *g, int64_t from, int64_t vocab_hint, int64_t *vocab)
{
    return g->seq2seq ? step_forward_seq2seq(g, vocab_hint, vocab)
                      : step_forward(g, from, vocab_hint, vocab);
}

void ptm__gen_process(struct gen *g, int64_t vocab)
{
    process_rows(g->o, g->ids, g->max_total, g->cur, g->lead, g->cur - g->S, g->scores, g->B, vocab,
                 g->scratch);
}

/* Choose, pad finished rows, append, stream; *done when every row has finished. */
static ptm_status step_choose(struct gen *g, int64_t vocab, int *done)
{
    const struct ptm_generate_opts *o = g->o;
    int64_t pad = o->pad_id >= 0 ? o->pad_id : (o->n_eos > 0 ? o->eos_ids[0] : 0);
    ptm__gen_process(g, vocab);
    int all_done = 1;
    for (int64_t b = 0; b < g->B; b++) {
        int64_t t = choose(o, g->scores + b * vocab, vocab, &g->rng);
        t = g->running[b] ? t : pad;
        g->step_tokens[b] = t;
        g->ids[b * g->max_total + g->cur] = t;
        g->mask[b * g->max_total + g->cur] = 1;
    }
    g->cur++;
    int stop = 0;
    if (o->stream != NULL) {
        stop = o->stream(g->step_tokens, g->running, g->B, o->stream_user) != 0;
    }
    for (int64_t b = 0; b < g->B; b++) {
        for (int32_t e = 0; g->running[b] && e < o->n_eos; e++) {
            g->running[b] = g->step_tokens[b] != o->eos_ids[e];
        }
        all_done &= !g->running[b];
    }
    *done = all_done || stop || g->cur >= g->max_total;
    return PTM_OK;
}

static ptm_status gen_init(struct gen *g, ptm_model *m, const int64_t *ids, const int64_t *mask,
                           int64_t B, int64_t S, const struct ptm_generate_opts *o)
{
    int seq2seq = g->seq2seq;
    memset(g, 0, sizeof *g);
    g->seq2seq = seq2seq;
    g->m = m;
    g->o = o;
    g->B = B;
    g->S = S;
    g->cur = S;
    if (o->max_new_tokens == 0 || (o->max_new_tokens < 0 && o->max_length < 1)) {
        return ptm__fail(PTM_E_INVAL,
                         "generate: max_new_tokens %lld / max_length %lld leave no "
                         "room for new tokens",
                         (long long)o->max_new_tokens, (long long)o->max_length);
    }
    g->max_total = o->max_new_tokens > 0 ? S + o->max_new_tokens : o->max_length;
    if (g->max_total <= S) { /* HF warns, then still generates one token */
        g->max_total = S + 1;
    }
    size_t n = (size_t)(B * g->max_total);
    g->ids = ptm__calloc(n, sizeof *g->ids);
    g->mask = ptm__calloc(n, sizeof *g->mask);
    g->lead = ptm__calloc((size_t)B, sizeof *g->lead);
    g->running = ptm__malloc((size_t)B * sizeof *g->running);
    g->step_tokens = ptm__malloc((size_t)B * sizeof *g->step_tokens);
    if (g->ids == NULL || g->mask == NULL || g->lead == NULL || g->running == NULL ||
        g->step_tokens == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t b = 0; b < B; b++) {
        memcpy(g->ids + b * g->max_total, ids + b * S, (size_t)S * sizeof *ids);
        for (int64_t j = 0; j < S; j++) {
            g->mask[b * g->max_total + j] = mask ? mask[b * S + j] != 0 : 1;
        }
        /* HF 5.24: the repetition penalty ignores a decoder-only prompt's left padding
         * (prompt_ignore_length = argmax(attention_mask != 0)); a decoder's ids have none. */
        for (int64_t j = 0; mask != NULL && !g->seq2seq && j < S && !mask[b * S + j]; j++) {
            g->lead[b] = j + 1 < S ? j + 1 : 0;
        }
        g->running[b] = 1;
    }
    rng_seed(&g->rng, o->seed);
    return ptm_kv_cache_new(m, B, g->max_total, o->cache_dtype, &g->cache);
}

/* An encoder-decoder model: the prompt goes to the encoder, and the decoder's ids start with
 * decoder_start_token_id (HF: else bos_token_id). */
static ptm_status gen_init_seq2seq(struct gen *g, ptm_model *m, const int64_t *ids,
                                   const int64_t *mask, int64_t B, int64_t S,
                                   const struct ptm_generate_opts *o)
{
    int64_t start = o->bos_id;
    if (ptm_config_has(ptm_model_config(m), "decoder_start_token_id") &&
        ptm_config_get_int(ptm_model_config(m), "decoder_start_token_id", &start) != PTM_OK) {
        start = o->bos_id;
        ptm__error_clear();
    }
    if (start < 0) {
        memset(g, 0, sizeof *g);
        return ptm__fail(PTM_E_INVAL,
                         "generate: %s has no decoder_start_token_id or "
                         "bos_token_id to start the decoder with",
                         ptm_model_class_name(m));
    }
    int64_t *starts = ptm__malloc((size_t)B * sizeof *starts);
    if (starts == NULL) {
        memset(g, 0, sizeof *g);
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t b = 0; b < B; b++) {
        starts[b] = start;
    }
    g->seq2seq = 1;
    ptm_status st = gen_init(g, m, starts, NULL, B, 1, o);
    ptm__free(starts);
    g->enc_ids = ids;
    g->enc_mask = mask;
    g->enc_S = S;
    return st;
}

static int is_seq2seq(const ptm_model *m)
{
    int32_t v = 0;
    if (ptm_config_get_bool(ptm_model_config(m), "is_encoder_decoder", &v) != PTM_OK) {
        ptm__error_clear();
        return 0;
    }
    return v != 0;
}

/* The generated rows, compacted to [B, cur]. */
static void gen_compact(struct gen *g)
{
    for (int64_t b = 1; b < g->B; b++) {
        memmove(g->ids + b * g->cur, g->ids + b * g->max_total, (size_t)g->cur * sizeof *g->ids);
    }
}

/* Sampling with num_return_sequences n: every prompt row (and its mask row) n times, as HF's
 * _expand_inputs_for_generation. *rep_ids / *rep_mask are new arrays (free them). */
static ptm_status repeat_rows(const int64_t *ids, const int64_t *mask, int64_t B, int64_t S,
                              int64_t n, int64_t **rep_ids, int64_t **rep_mask)
{
    size_t row = (size_t)S * sizeof *ids;
    *rep_ids = ptm__malloc((size_t)(B * n) * row);
    *rep_mask = mask ? ptm__malloc((size_t)(B * n) * row) : NULL;
    if (*rep_ids == NULL || (mask != NULL && *rep_mask == NULL)) {
        ptm__free(*rep_ids);
        ptm__free(*rep_mask);
        *rep_ids = *rep_mask = NULL;
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t r = 0; r < B * n; r++) {
        memcpy(*rep_ids + r * S, ids + (r / n) * S, row);
        if (mask != NULL) {
            memcpy(*rep_mask + r * S, mask + (r / n) * S, row);
        }
    }
    return PTM_OK;
}

/* Greedy search or sampling from the prefill's scores on. */
static ptm_status greedy_loop(struct gen *g, int64_t vocab, int64_t **out, int64_t *out_len)
{
    int done = 0;
    ptm_status st = PTM_OK;
    while (st == PTM_OK) {
        st = step_choose(g, vocab, &done);
        if (st != PTM_OK || done) {
            break;
        }
        st = ptm__gen_forward(g, g->cur - 1, vocab, &vocab);
    }
    if (st == PTM_OK) {
        gen_compact(g);
        *out = g->ids;
        *out_len = g->cur;
        g->ids = NULL;
    }
    return st;
}

static ptm_status generate(ptm_model *m, const int64_t *ids, const int64_t *mask, int64_t batch,
                           int64_t seq, const struct ptm_generate_opts *o, int64_t **out,
                           int64_t *out_len)
{
    struct gen g;
    int64_t vocab = 0;
    g.seq2seq = 0;
    ptm_status st = is_seq2seq(m) ? gen_init_seq2seq(&g, m, ids, mask, batch, seq, o)
                                  : gen_init(&g, m, ids, mask, batch, seq, o);
    if (st == PTM_OK) {
        st = ptm__gen_forward(&g, 0, 0, &vocab);
    }
    if (st == PTM_OK && (g.scratch = scratch_new(vocab)) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    if (st == PTM_OK) {
        st = o->num_beams > 1 ? ptm__generate_beam(&g, vocab, out, out_len)
                              : greedy_loop(&g, vocab, out, out_len);
    }
    ptm__free(g.ids);
    gen_free(&g);
    return st;
}

ptm_status ptm_generate(ptm_model *m, const int64_t *ids, const int64_t *mask, int64_t batch,
                        int64_t seq, const struct ptm_generate_opts *o, int64_t **out,
                        int64_t *out_len)
{
    ptm__error_clear();
    if (out != NULL) {
        *out = NULL;
    }
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (m == NULL || ids == NULL || out == NULL || out_len == NULL || batch < 1 || seq < 1) {
        return ptm__fail(PTM_E_INVAL, "generate: bad arguments");
    }
    struct ptm_generate_opts full;
    ptm_status st = opts_copy(o, &full);
    if (st == PTM_OK) {
        st = check_opts(&full);
    }
    if (st != PTM_OK) {
        return st;
    }
    if (!ptm_model_class(m)->can_generate) {
        return ptm__fail(PTM_E_UNSUPPORTED, "generate: %s cannot generate (no LM head)",
                         ptm_model_class_name(m));
    }
    int64_t n = full.num_beams == 1 ? full.num_return_sequences : 1;
    if (n == 1) {
        return generate(m, ids, mask, batch, seq, &full, out, out_len);
    }
    int64_t *rep_ids = NULL, *rep_mask = NULL;
    st = repeat_rows(ids, mask, batch, seq, n, &rep_ids, &rep_mask);
    if (st == PTM_OK) {
        st = generate(m, rep_ids, rep_mask, batch * n, seq, &full, out, out_len);
    }
    ptm__free(rep_ids);
    ptm__free(rep_mask);
    return st;
}
