/*
 * generate_beam.c - beam search as transformers' GenerationMixin._beam_search (5.x) does it,
 * token for token: the prefill's rows (one per prompt, so the encoder and the prompt run once)
 * are expanded to num_beams rows each, cache included; each step the logits become log-softmax
 * scores, the logits processors run on those (HF's order), the running beam's score is added,
 * and per prompt the best K = max(2, 1 + n_eos) * num_beams of num_beams * vocab candidates
 * are kept. Of those, the first num_beams that end in eos or reach max_length are offered to
 * the prompt's finished hypotheses (score / new_tokens ^ length_penalty; the num_beams best are
 * kept, best first), the best num_beams others run on, and the cache rows follow them
 * (ptm_kv_cache_gather). early_stopping and the end of the loop follow
 * _check_early_stop_heuristic and _beam_search_has_unfinished_sequences. HF's -1e9 masks are
 * written here as the conditions they encode. Ties (torch.topk leaves their order open) go to
 * the lower beam, then the lower token id; an earlier finished hypothesis keeps its place
 * against an equal newcomer. The decoding state and forward steps are generate.c's.
 */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "generate.h"
#include "ptm/ptm.h"

struct cand {
    float score;
    int64_t row; /* the running row (prompt * num_beams + beam) it extends */
    int64_t tok;
    int32_t hit; /* ends in eos or reaches max_length (HF stopping_criteria) */
};

struct beam {
    struct gen *g;
    const struct ptm_generate_opts *o;
    int64_t B, nb, K, V;   /* prompts, beams per prompt, candidates kept, vocab */
    float *run_score;      /* [B * nb]: each running beam's sum of log-probabilities */
    struct cand *cand;     /* [B * K]: this step's candidates, best first */
    float *fin_score;      /* [B * nb]: finished hypotheses, best first */
    int64_t *fin_len;      /* [B * nb]: their new tokens */
    int64_t *fin_ids;      /* [B * nb, max_total] */
    int32_t *n_fin;        /* [B] */
    int32_t *open;         /* [B]: HF is_early_stop_heuristic_unsatisfied */
    int64_t *ids2, *mask2; /* [B * nb, max_total]: the next step's rows */
    int64_t *rows;         /* [B * nb]: the row each new row continues */
};

static void beam_free(struct beam *s)
{
    ptm__free(s->run_score);
    ptm__free(s->cand);
    ptm__free(s->fin_score);
    ptm__free(s->fin_len);
    ptm__free(s->fin_ids);
    ptm__free(s->n_fin);
    ptm__free(s->open);
    ptm__free(s->ids2);
    ptm__free(s->mask2);
    ptm__free(s->rows);
}

static ptm_status beam_init(struct beam *s, struct gen *g, int64_t vocab)
{
    const struct ptm_generate_opts *o = g->o;
    memset(s, 0, sizeof *s);
    s->g = g;
    s->o = o;
    s->B = g->B;
    s->nb = o->num_beams;
    s->K = (o->n_eos + 1 > 2 ? o->n_eos + 1 : 2) * s->nb;
    s->V = vocab;
    if (s->nb * vocab < s->K) {
        return ptm__fail(PTM_E_INVAL,
                         "generate: num_beams %lld over a vocabulary of %lld leave fewer than "
                         "the %lld candidates beam search keeps",
                         (long long)s->nb, (long long)vocab, (long long)s->K);
    }
    size_t n = (size_t)(s->B * s->nb), cells = n * (size_t)g->max_total;
    s->run_score = ptm__malloc(n * sizeof *s->run_score);
    s->cand = ptm__malloc((size_t)(s->B * s->K) * sizeof *s->cand);
    s->fin_score = ptm__malloc(n * sizeof *s->fin_score);
    s->fin_len = ptm__calloc(n, sizeof *s->fin_len);
    s->fin_ids = ptm__calloc(cells, sizeof *s->fin_ids);
    s->n_fin = ptm__calloc((size_t)s->B, sizeof *s->n_fin);
    s->open = ptm__malloc((size_t)s->B * sizeof *s->open);
    s->ids2 = ptm__calloc(cells, sizeof *s->ids2);
    s->mask2 = ptm__calloc(cells, sizeof *s->mask2);
    s->rows = ptm__malloc(n * sizeof *s->rows);
    if (s->run_score == NULL || s->cand == NULL || s->fin_score == NULL || s->fin_len == NULL ||
        s->fin_ids == NULL || s->n_fin == NULL || s->open == NULL || s->ids2 == NULL ||
        s->mask2 == NULL || s->rows == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    /* HF: beam 0 starts at 0, the others at -1e9, so the first step expands one copy. */
    for (size_t i = 0; i < n; i++) {
        s->run_score[i] = i % (size_t)s->nb == 0 ? 0.0f : -1.0e9f;
        s->rows[i] = (int64_t)i / s->nb;
    }
    for (int64_t b = 0; b < s->B; b++) {
        s->open[b] = 1;
    }
    return PTM_OK;
}

/* ---- expanding the prefill's rows to num_beams rows each (HF _expand_inputs_for_generation) */

/* A new tensor whose row i is t's row rows[i] (dim 0), through the backend. */
static ptm_status gather_tensor(ptm_tensor *t, const int64_t *rows, int64_t n, ptm_tensor **out)
{
    int64_t shape[8];
    int32_t nd = ptm_tensor_ndim(t);
    if (nd < 2 || nd > 8) {
        return ptm__fail(PTM_E_PLUGIN, "generate: encoder output has %d dims", (int)nd);
    }
    for (int32_t d = 0; d < nd; d++) {
        shape[d] = ptm_tensor_dim(t, d);
    }
    shape[0] = n;
    ptm_status st = ptm_tensor_new(ptm_tensor_device(t), ptm_tensor_dtype(t), nd, shape, out);
    for (int64_t i = 0; st == PTM_OK && i < n; i++) {
        st = ptm__rows_copy(*out, i, t, rows[i], shape[1]);
    }
    if (st != PTM_OK) {
        ptm_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* Host rows [n_old, w] -> [n, w] with row i = row rows[i]; *a replaced (freed). */
static ptm_status gather_host(int64_t **a, int64_t w, const int64_t *rows, int64_t n)
{
    int64_t *x = ptm__malloc((size_t)(n * w) * sizeof *x + 1);
    if (x == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(x + i * w, *a + rows[i] * w, (size_t)w * sizeof *x);
    }
    ptm__free(*a);
    *a = x;
    return PTM_OK;
}

/* The encoder side of an encoder-decoder model, num_beams rows per prompt. */
static ptm_status expand_encoder(struct gen *g, const int64_t *rows, int64_t n)
{
    int64_t S = g->enc_S;
    int64_t *e = ptm__malloc((size_t)(2 * n * S) * sizeof *e);
    ptm_tensor *enc = NULL;
    if (e == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(e + i * S, g->enc_ids + rows[i] * S, (size_t)S * sizeof *e);
        if (g->enc_mask != NULL) {
            memcpy(e + (n + i) * S, g->enc_mask + rows[i] * S, (size_t)S * sizeof *e);
        }
    }
    ptm_status st = g->enc_out ? gather_tensor(g->enc_out, rows, n, &enc) : PTM_OK;
    if (st != PTM_OK) {
        ptm__free(e);
        return st;
    }
    ptm_tensor_free(g->enc_out);
    g->enc_out = enc;
    ptm__free(g->enc_owned);
    g->enc_owned = e;
    g->enc_ids = e;
    g->enc_mask = g->enc_mask != NULL ? e + n * S : NULL;
    return PTM_OK;
}

static ptm_status expand(struct beam *s)
{
    struct gen *g = s->g;
    int64_t n = s->B * s->nb;
    ptm_status st = ptm_kv_cache_gather(g->cache, s->rows, n);
    if (st == PTM_OK) {
        st = gather_host(&g->ids, g->max_total, s->rows, n);
    }
    if (st == PTM_OK) {
        st = gather_host(&g->mask, g->max_total, s->rows, n);
    }
    if (st == PTM_OK) {
        st = gather_host(&g->lead, 1, s->rows, n);
    }
    if (st == PTM_OK) {
        float *sc = ptm__malloc((size_t)(n * s->V) * sizeof *sc);
        if (sc == NULL) {
            return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
        }
        for (int64_t i = 0; i < n; i++) {
            memcpy(sc + i * s->V, g->scores + s->rows[i] * s->V, (size_t)s->V * sizeof *sc);
        }
        ptm__free(g->scores);
        g->scores = sc;
    }
    if (st == PTM_OK && g->seq2seq) {
        st = expand_encoder(g, s->rows, n);
    }
    if (st == PTM_OK) {
        g->B = n;
    }
    return st;
}

/* ---- one step */

/* HF: log_softmax in F32 (x - max - log(sum(exp(x - max)))), in place on each row. */
static void log_softmax_rows(float *x, int64_t rows, int64_t V)
{
    for (int64_t r = 0; r < rows; r++) {
        float *s = x + r * V, mx = -INFINITY;
        for (int64_t i = 0; i < V; i++) {
            mx = s[i] > mx ? s[i] : mx;
        }
        double sum = 0.0;
        for (int64_t i = 0; i < V; i++) {
            sum += exp((double)(s[i] - mx));
        }
        float ls = (float)log(sum);
        for (int64_t i = 0; i < V; i++) {
            s[i] = (s[i] - mx) - ls;
        }
    }
}

/* Prompt b's best K candidates over its beams' scores + running scores, best first. */
static void select_candidates(struct beam *s, int64_t b)
{
    struct cand *c = s->cand + b * s->K;
    int64_t n = 0;
    for (int64_t j = 0; j < s->nb; j++) {
        int64_t row = b * s->nb + j;
        const float *lp = s->g->scores + row * s->V;
        for (int64_t v = 0; v < s->V; v++) {
            float x = lp[v] + s->run_score[row];
            if (isnan(x) || (n == s->K && !(x > c[n - 1].score))) {
                continue;
            }
            int64_t at = n < s->K ? n++ : n - 1;
            while (at > 0 && x > c[at - 1].score) { /* equals stay ahead: lower index first */
                c[at] = c[at - 1];
                at--;
            }
            c[at] = (struct cand){x, row, v, 0};
        }
    }
}

static int is_eos(const struct ptm_generate_opts *o, int64_t t)
{
    for (int32_t e = 0; e < o->n_eos; e++) {
        if (o->eos_ids[e] == t) {
            return 1;
        }
    }
    return 0;
}

/* A finished hypothesis (row's ids [0, cur) + tok) into prompt b's sorted set. */
static void add_finished(struct beam *s, int64_t b, const struct cand *c, float score)
{
    struct gen *g = s->g;
    int64_t nb = s->nb, base = b * nb, at = s->n_fin[b];
    if (at == nb && !(score > s->fin_score[base + nb - 1])) {
        return;
    }
    at = at < nb ? at : nb - 1;
    if (s->n_fin[b] < nb) {
        s->n_fin[b]++;
    }
    while (at > 0 && score > s->fin_score[base + at - 1]) {
        s->fin_score[base + at] = s->fin_score[base + at - 1];
        s->fin_len[base + at] = s->fin_len[base + at - 1];
        memcpy(s->fin_ids + (base + at) * g->max_total, s->fin_ids + (base + at - 1) * g->max_total,
               (size_t)g->max_total * sizeof *s->fin_ids);
        at--;
    }
    int64_t *dst = s->fin_ids + (base + at) * g->max_total;
    memcpy(dst, g->ids + c->row * g->max_total, (size_t)g->cur * sizeof *dst);
    dst[g->cur] = c->tok;
    s->fin_score[base + at] = score;
    s->fin_len[base + at] = g->cur + 1 - g->S;
}

/* HF _update_finished_beams for prompt b: the first num_beams candidates that stop, unless
 * the prompt is closed (heuristic) or full with early_stopping true. */
static void update_finished(struct beam *s, int64_t b)
{
    const struct ptm_generate_opts *o = s->o;
    struct gen *g = s->g;
    if (!s->open[b] || (o->early_stopping == PTM_EARLY_STOPPING_TRUE && s->n_fin[b] == s->nb)) {
        return;
    }
    float denom = (float)pow((double)(g->cur + 1 - g->S), (double)o->length_penalty);
    for (int64_t k = 0; k < s->nb; k++) {
        const struct cand *c = s->cand + b * s->K + k;
        if (c->hit) {
            add_finished(s, b, c, c->score / denom);
        }
    }
}

/* HF _get_running_beams_for_next_iteration: the best num_beams candidates that do not stop
 * become prompt b's rows in ids2 / mask2. */
static void next_running(struct beam *s, int64_t b)
{
    struct gen *g = s->g;
    int64_t T = g->max_total, j = 0;
    const struct cand *c = s->cand + b * s->K;
    /* At max_length every candidate stops and the loop ends; the rows only stay defined. */
    for (int pass = 0; pass < 2 && j < s->nb; pass++) {
        for (int64_t k = 0; k < s->K && j < s->nb; k++) {
            if (c[k].hit != pass) {
                continue;
            }
            int64_t row = b * s->nb + j++;
            memcpy(s->ids2 + row * T, g->ids + c[k].row * T, (size_t)g->cur * sizeof *s->ids2);
            memcpy(s->mask2 + row * T, g->mask + c[k].row * T, (size_t)g->cur * sizeof *s->ids2);
            s->ids2[row * T + g->cur] = c[k].tok;
            s->mask2[row * T + g->cur] = 1;
            s->run_score[row] = c[k].score;
            s->rows[row] = c[k].row;
        }
    }
}

/* HF _check_early_stop_heuristic for prompt b once g->cur has advanced. */
static void check_open(struct beam *s, int64_t b)
{
    const struct ptm_generate_opts *o = s->o;
    struct gen *g = s->g;
    if (!s->open[b] || s->n_fin[b] < s->nb) {
        return; /* an empty slot scores -1e9: any running beam beats it */
    }
    int64_t len = o->early_stopping == PTM_EARLY_STOPPING_NEVER && o->length_penalty > 0.0f
                      ? g->max_total - g->S
                      : g->cur - g->S;
    float best = s->run_score[b * s->nb] / (float)pow((double)len, (double)o->length_penalty);
    s->open[b] = best > s->fin_score[b * s->nb + s->nb - 1];
}

/* One step from g->scores (the logits of every running row): choose, advance, and say
 * whether beam search is over (HF _beam_search_has_unfinished_sequences). */
static void step(struct beam *s, int *done)
{
    struct gen *g = s->g;
    int last = g->cur + 1 >= g->max_total;
    log_softmax_rows(g->scores, g->B, s->V);
    ptm__gen_process(g, s->V);
    for (int64_t b = 0; b < s->B; b++) {
        select_candidates(s, b);
        for (int64_t k = 0; k < s->K; k++) {
            struct cand *c = s->cand + b * s->K + k;
            c->hit = last || is_eos(s->o, c->tok);
        }
        next_running(s, b);
        update_finished(s, b);
    }
    int64_t *t = g->ids;
    g->ids = s->ids2;
    s->ids2 = t;
    t = g->mask;
    g->mask = s->mask2;
    s->mask2 = t;
    g->cur++;
    int any_open = 0, all_full = 1;
    for (int64_t b = 0; b < s->B; b++) {
        check_open(s, b);
        any_open |= s->open[b];
        all_full &= s->n_fin[b] == s->nb;
    }
    *done = !any_open || (s->o->early_stopping == PTM_EARLY_STOPPING_TRUE && all_full) || last;
}

/* ---- the result */

/* Each prompt's num_return_sequences best hypotheses, filled after their end with HF's
 * output_fill_value (pad_token_id or eos_token_id[0]: a pad id of 0 is falsy there). */
static ptm_status collect(struct beam *s, int64_t **out, int64_t *out_len)
{
    const struct ptm_generate_opts *o = s->o;
    struct gen *g = s->g;
    int64_t nr = o->num_return_sequences, T = g->max_total, gen_max = 0;
    int64_t fill = o->n_eos == 0 ? -1 : (o->pad_id > 0 ? o->pad_id : o->eos_ids[0]);
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t r = 0; r < nr && r < s->n_fin[b]; r++) {
            int64_t len = s->fin_len[b * s->nb + r];
            gen_max = len > gen_max ? len : gen_max;
        }
    }
    int64_t L = g->S + gen_max;
    int64_t *res = ptm__malloc((size_t)(s->B * nr * L) * sizeof *res);
    if (res == NULL) {
        return ptm__fail(PTM_E_NOMEM, "generate: out of memory");
    }
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t r = 0; r < nr; r++) {
            int64_t *dst = res + (b * nr + r) * L, slot = b * s->nb + r;
            /* No hypothesis finished in this slot (only when -inf scores starved the search):
             * the prompt, filled. */
            int has = r < s->n_fin[b];
            const int64_t *src = has ? s->fin_ids + slot * T : g->ids + b * s->nb * T;
            int64_t n = has ? g->S + s->fin_len[slot] : g->S;
            memcpy(dst, src, (size_t)n * sizeof *dst);
            for (int64_t j = n; j < L; j++) {
                dst[j] = fill;
            }
        }
    }
    *out = res;
    *out_len = L;
    return PTM_OK;
}

ptm_status ptm__generate_beam(struct gen *g, int64_t vocab, int64_t **out, int64_t *out_len)
{
    struct beam s;
    ptm_status st = beam_init(&s, g, vocab);
    if (st == PTM_OK) {
        st = expand(&s);
    }
    int done = 0;
    while (st == PTM_OK) {
        step(&s, &done);
        if (done) {
            break;
        }
        st = ptm_kv_cache_gather(g->cache, s.rows, g->B);
        if (st == PTM_OK) {
            st = ptm__gen_forward(g, g->cur - 1, vocab, &vocab);
        }
    }
    if (st == PTM_OK) {
        st = collect(&s, out, out_len);
    }
    beam_free(&s);
    return st;
}
