/*
 * llama_forward.c - LLaMA's forward passes in runtime ops: token embedding; per decoder layer
 * RMSNorm, q/k/v projections viewed as [B, S, heads, head_dim] (no permute), RoPE on q and k
 * (rotate_half layout), the new keys and values written into the runtime's cache when one is
 * given, fused causal attention with grouped key/value heads and the key padding mask, o_proj
 * and the residual; RMSNorm, SiLU(gate) * up, down_proj and the residual; the final norm;
 * then each class's head (lm_head with HF's logits_to_keep, or the sequence classifier pooled
 * at the last non-pad token). Eval mode: dropout is the identity.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "pk.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != PTM_OK) {                                                                \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

#define LLAMA_MAX_HALF_ROT 1024 /* head_dim up to 2048 */

static ptm_status get_act(const char *act, int32_t *op)
{
    static const struct {
        const char *name;
        int32_t op;
    } acts[] = {
        {"silu", PTM_UNARY_SILU},
        {"swish", PTM_UNARY_SILU},
        {"gelu", PTM_UNARY_GELU},
        {"gelu_new", PTM_UNARY_GELU_TANH},
        {"gelu_pytorch_tanh", PTM_UNARY_GELU_TANH},
        {"relu", PTM_UNARY_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(act, acts[i].name) == 0) {
            *op = acts[i].op;
            return PTM_OK;
        }
    }
    return ptm_error_set(PTM_E_UNSUPPORTED, "llama: hidden_act \"%s\" is not supported", act);
}

/* An integer that may be null: dflt then. */
static int64_t int_or(const ptm_config *c, const char *key, int64_t dflt)
{
    int64_t v = dflt;
    if (ptm_config_has(c, key) && ptm_config_get_int(c, key, &v) != PTM_OK) {
        v = dflt;
    }
    return v;
}

ptm_status llama_hparams(const ptm_model *m, struct llama_hparams *hp)
{
    const ptm_config *c = ptm_model_config(m);
    struct {
        const char *key;
        int64_t *dst;
    } ints[] = {
        {"vocab_size", &hp->vocab},         {"hidden_size", &hp->hidden},
        {"num_hidden_layers", &hp->layers}, {"num_attention_heads", &hp->heads},
        {"intermediate_size", &hp->inter},  {"max_position_embeddings", &hp->max_pos},
        {"num_labels", &hp->num_labels},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        ptm_status st = ptm_config_get_int(c, ints[i].key, ints[i].dst);
        if (st != PTM_OK) {
            return st;
        }
    }
    if (hp->heads <= 0 || hp->hidden % hp->heads != 0) {
        return ptm_error_set(PTM_E_INVAL,
                             "llama: hidden_size %lld is not a multiple of num_attention_heads "
                             "%lld",
                             (long long)hp->hidden, (long long)hp->heads);
    }
    hp->kv_heads = int_or(c, "num_key_value_heads", hp->heads);
    hp->head_dim = int_or(c, "head_dim", hp->hidden / hp->heads);
    hp->pad_id = int_or(c, "pad_token_id", -1);
    if (hp->kv_heads <= 0 || hp->heads % hp->kv_heads != 0 || hp->head_dim <= 0) {
        return ptm_error_set(PTM_E_INVAL,
                             "llama: num_attention_heads %lld is not a multiple of "
                             "num_key_value_heads %lld (head_dim %lld)",
                             (long long)hp->heads, (long long)hp->kv_heads,
                             (long long)hp->head_dim);
    }
    const char *act = NULL;
    ptm_status st = ptm_config_get_float(c, "rms_norm_eps", &hp->eps);
    if (st == PTM_OK) {
        st = ptm_config_get_string(c, "hidden_act", &act);
    }
    return st == PTM_OK ? get_act(act, &hp->act) : st;
}

/* A parameter by name with the prefix of this class ("" or "model."); NULL when absent
 * (optional biases). */
/* dst[b, dst_at:dst_at+len] = src[b, src_at:src_at+len] for every row b (dim 1 is the
 * sequence): one convert per row, since a slice of several rows is not contiguous. */
static ptm_status copy_seq(ptm_tensor *dst, int64_t dst_at, ptm_tensor *src, int64_t src_at,
                           int64_t len)
{
    ptm_status st = PTM_OK;
    for (int64_t b = 0; st == PTM_OK && b < ptm_tensor_dim(dst, 0); b++) {
        ptm_tensor *dr = NULL, *d = NULL, *sr = NULL, *s = NULL;
        st = ptm_tensor_narrow(dst, 0, b, 1, &dr);
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(dr, 1, dst_at, len, &d);
        }
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(src, 0, b, 1, &sr);
        }
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(sr, 1, src_at, len, &s);
        }
        if (st == PTM_OK) {
            st = ptm_op_convert(d, s);
        }
        ptm_tensor_free(dr);
        ptm_tensor_free(d);
        ptm_tensor_free(sr);
        ptm_tensor_free(s);
    }
    return st;
}

/* The state of one forward call. */
struct run {
    ptm_model *m;
    const char *prefix;
    struct llama_hparams hp;
    ptm_device *dev;
    ptm_kv_cache *cache;
    int64_t B, S, past;
    const ptm_tensor *mask;
    ptm_tensor *pos, *inv_freq;
    float attn_factor;
    int64_t rot;
    /* h: the normed input of each half layer, then that half's output. q, k, v and ctx live
     * only in the attention, gate and up only in the MLP, so both sets are views of one
     * buffer (work): at a 512-token prefill of TinyLlama h and work take 26 MiB where eight
     * buffers of their own (with a separate output buffer) took 39. */
    ptm_tensor *h, *work, *q, *k, *v, *ctx, *gate, *up;
};

static void run_free(struct run *r)
{
    ptm_tensor *ts[] = {r->pos, r->inv_freq, r->h,   r->work, r->q,
                        r->k,   r->v,        r->ctx, r->gate, r->up};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        ptm_tensor_free(ts[i]);
    }
}

/* position_ids as given, or past .. past+S-1 for every row (HF's cache_position); *max_id is
 * the largest (dynamic RoPE scales by it). */
static ptm_status positions(struct run *r, const ptm_tensor *given, int64_t *max_id)
{
    int64_t n = r->B * r->S, shape[2] = {r->B, r->S};
    int64_t *p = malloc((size_t)n * sizeof *p + 1);
    ptm_status st = p ? PTM_OK : ptm_error_set(PTM_E_NOMEM, "llama: out of memory");
    if (st == PTM_OK && given != NULL) {
        if (ptm_tensor_ndim(given) != 2 || ptm_tensor_dim(given, 0) != r->B ||
            ptm_tensor_dim(given, 1) != r->S || ptm_tensor_dtype(given) != PTM_I64) {
            st = ptm_error_set(PTM_E_INVAL, "llama: position_ids must be I64 [%lld, %lld]",
                               (long long)r->B, (long long)r->S);
        } else {
            st = ptm_tensor_read(given, p, (size_t)n * sizeof *p);
        }
    }
    for (int64_t i = 0; st == PTM_OK && given == NULL && i < n; i++) {
        p[i] = r->past + i % r->S;
    }
    *max_id = 0;
    for (int64_t i = 0; st == PTM_OK && i < n; i++) {
        *max_id = p[i] > *max_id ? p[i] : *max_id;
    }
    if (st == PTM_OK) {
        st = ptm_tensor_from_host(r->dev, PTM_I64, 2, shape, p, &r->pos);
    }
    free(p);
    return st;
}

static ptm_status rope_setup(struct run *r, const ptm_tensor *given)
{
    int64_t max_id = 0;
    float inv[LLAMA_MAX_HALF_ROT];
    ptm_status st = positions(r, given, &max_id);
    if (st == PTM_OK) {
        st = llama_rope_freqs(r->m, &r->hp, max_id, inv, LLAMA_MAX_HALF_ROT, &r->rot,
                              &r->attn_factor);
    }
    int64_t half = r->rot / 2;
    if (st == PTM_OK) {
        st = ptm_tensor_from_host(r->dev, PTM_F32, 1, &half, inv, &r->inv_freq);
    }
    return st;
}

/* Check the inputs and set up the buffers. */
static ptm_status run_init(struct run *r, ptm_model *m, const char *prefix,
                           const struct ptm_forward_ctx *ctx, const ptm_tensor **ids)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->prefix = prefix;
    r->dev = ptm_model_device(m);
    ptm_status st = llama_hparams(m, &r->hp);
    if (st != PTM_OK) {
        return st;
    }
    *ids = ptm_tensor_map_get(ctx->inputs, "input_ids");
    if (*ids == NULL || ptm_tensor_ndim(*ids) != 2) {
        return ptm_error_set(PTM_E_INVAL, "llama: input_ids must be given as [batch, seq]");
    }
    r->B = ptm_tensor_dim(*ids, 0);
    r->S = ptm_tensor_dim(*ids, 1);
    r->cache = PTM_HAS(ctx, struct ptm_forward_ctx, cache) ? ctx->cache : NULL;
    r->past = r->cache ? ptm_kv_cache_len(r->cache) : 0;
    r->mask = ptm_tensor_map_get(ctx->inputs, "attention_mask");
    if (r->mask && (ptm_tensor_ndim(r->mask) != 2 || ptm_tensor_dim(r->mask, 0) != r->B ||
                    ptm_tensor_dim(r->mask, 1) != r->past + r->S)) {
        return ptm_error_set(PTM_E_INVAL,
                             "llama: attention_mask must be [%lld, %lld] (cached + new tokens)",
                             (long long)r->B, (long long)(r->past + r->S));
    }
    if ((st = rope_setup(r, ptm_tensor_map_get(ctx->inputs, "position_ids"))) != PTM_OK) {
        return st;
    }
    const struct llama_hparams *hp = &r->hp;
    int64_t qw = hp->heads * hp->head_dim, kvw = hp->kv_heads * hp->head_dim;
    int64_t attn = 2 * qw + 2 * kvw, mlp = 2 * hp->inter;
    if ((st = pk_new3(r->dev, r->B, r->S, hp->hidden, &r->h)) != PTM_OK) {
        return st;
    }
    int64_t n = r->B * r->S * (attn > mlp ? attn : mlp);
    if ((st = ptm_tensor_new(r->dev, PTM_F32, 1, &n, &r->work)) != PTM_OK) {
        return st;
    }
    struct {
        ptm_tensor **t;
        int64_t at, width; /* at: the view's first column of the attention or MLP layout */
    } views[] = {
        {&r->q, 0, qw},           {&r->k, qw, kvw},
        {&r->v, qw + kvw, kvw},   {&r->ctx, qw + 2 * kvw, qw},
        {&r->gate, 0, hp->inter}, {&r->up, hp->inter, hp->inter},
    };
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        ptm_tensor *flat = NULL;
        int64_t shape[3] = {r->B, r->S, views[i].width};
        st = ptm_tensor_narrow(r->work, 0, r->B * r->S * views[i].at, r->B * r->S * views[i].width,
                               &flat);
        if (st == PTM_OK) {
            st = ptm_tensor_reshape(flat, 3, shape, views[i].t);
        }
        ptm_tensor_free(flat);
        if (st != PTM_OK) {
            return st;
        }
    }
    return PTM_OK;
}

#define LP(fmt) pk_param_at(r->m, r->prefix, "layers.%lld." fmt, (long long)i)

/* Keys and values to attend over: this call's own, or the cache's first past + S after
 * writing this call's into it. *k4 and *v4 are new references. */
static ptm_status kv_for_attention(struct run *r, int64_t i, ptm_tensor *k4, ptm_tensor *v4,
                                   ptm_tensor **ka, ptm_tensor **va)
{
    ptm_tensor *ck = NULL, *cv = NULL;
    if (r->cache == NULL) {
        *ka = ptm_tensor_retain(k4);
        *va = ptm_tensor_retain(v4);
        return PTM_OK;
    }
    ptm_status st =
        ptm_kv_cache_layer(r->cache, (int32_t)i, r->hp.kv_heads, r->hp.head_dim, &ck, &cv);
    if (st == PTM_OK) {
        st = copy_seq(ck, r->past, k4, 0, r->S);
    }
    if (st == PTM_OK) {
        st = copy_seq(cv, r->past, v4, 0, r->S);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_narrow(ck, 1, 0, r->past + r->S, ka);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_narrow(cv, 1, 0, r->past + r->S, va);
    }
    return st;
}

/* Self-attention of layer i on the normed input r->h; the result lands in r->h. */
static ptm_status attend(struct run *r, int64_t i)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B;
    const struct llama_hparams *hp = &r->hp;
    ptm_tensor *q4 = NULL, *k4 = NULL, *v4 = NULL, *c4 = NULL, *ka = NULL, *va = NULL;
    TRY(ptm_op_matmul(r->q, r->h, LP("self_attn.q_proj.weight"), LP("self_attn.q_proj.bias"), lin));
    TRY(ptm_op_matmul(r->k, r->h, LP("self_attn.k_proj.weight"), LP("self_attn.k_proj.bias"), lin));
    TRY(ptm_op_matmul(r->v, r->h, LP("self_attn.v_proj.weight"), LP("self_attn.v_proj.bias"), lin));
    TRY(pk_view4(r->q, r->B, r->S, hp->heads, hp->head_dim, &q4));
    TRY(pk_view4(r->k, r->B, r->S, hp->kv_heads, hp->head_dim, &k4));
    TRY(pk_view4(r->v, r->B, r->S, hp->kv_heads, hp->head_dim, &v4));
    TRY(pk_view4(r->ctx, r->B, r->S, hp->heads, hp->head_dim, &c4));
    TRY(ptm_op_rope(q4, r->pos, r->inv_freq, r->attn_factor, (int32_t)r->rot, 1));
    TRY(ptm_op_rope(k4, r->pos, r->inv_freq, r->attn_factor, (int32_t)r->rot, 1));
    TRY(kv_for_attention(r, i, k4, v4, &ka, &va));
    struct ptm_attention_opts o = {
        .struct_size = sizeof o, .key_mask = r->mask, .causal = 1, .q_offset = r->past};
    /* HF: scaling = head_dim ** -0.5 */
    TRY(ptm_op_attention(c4, q4, ka, va, 1.0f / sqrtf((float)hp->head_dim), &o));
    TRY(ptm_op_matmul(r->h, r->ctx, LP("self_attn.o_proj.weight"), LP("self_attn.o_proj.bias"),
                      lin));
done:
    ptm_tensor_free(q4);
    ptm_tensor_free(k4);
    ptm_tensor_free(v4);
    ptm_tensor_free(c4);
    ptm_tensor_free(ka);
    ptm_tensor_free(va);
    return st;
}

/* One decoder layer on the residual stream x, in place. */
static ptm_status layer(struct run *r, int64_t i, ptm_tensor *x)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B;
    float eps = (float)r->hp.eps;
    TRY(ptm_op_rms_norm(r->h, x, NULL, LP("input_layernorm.weight"), eps));
    TRY(attend(r, i));
    TRY(ptm_op_add(x, x, r->h));
    TRY(ptm_op_rms_norm(r->h, x, NULL, LP("post_attention_layernorm.weight"), eps));
    TRY(ptm_op_matmul(r->gate, r->h, LP("mlp.gate_proj.weight"), LP("mlp.gate_proj.bias"),
                      lin | (uint32_t)r->hp.act << PTM_MM_ACT_SHIFT));
    TRY(ptm_op_matmul(r->up, r->h, LP("mlp.up_proj.weight"), LP("mlp.up_proj.bias"), lin));
    TRY(ptm_op_mul(r->gate, r->gate, r->up));
    TRY(ptm_op_matmul(r->h, r->gate, LP("mlp.down_proj.weight"), LP("mlp.down_proj.bias"), lin));
    TRY(ptm_op_add(x, x, r->h));
done:
    return st;
}

static ptm_status hidden_state(const struct ptm_forward_ctx *ctx, int64_t i, ptm_tensor *x)
{
    char name[48];
    ptm_tensor *copy = NULL;
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)i);
    int64_t shape[3] = {ptm_tensor_dim(x, 0), ptm_tensor_dim(x, 1), ptm_tensor_dim(x, 2)};
    ptm_status st = ptm_tensor_new(ptm_tensor_device(x), PTM_F32, 3, shape, &copy);
    if (st == PTM_OK) {
        st = ptm_op_convert(copy, x);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(ctx->outputs, name, copy);
    }
    ptm_tensor_free(copy);
    return st;
}

/* The decoder: *seq is a new reference to the final-normed hidden states [B, S, hidden]. */
static ptm_status decode(ptm_model *m, const char *prefix, const struct ptm_forward_ctx *ctx,
                         ptm_tensor **seq)
{
    struct run r;
    const ptm_tensor *ids = NULL;
    ptm_tensor *x = NULL, *out = NULL;
    ptm_status st;
    *seq = NULL;
    TRY(run_init(&r, m, prefix, ctx, &ids));
    TRY(pk_new3(r.dev, r.B, r.S, r.hp.hidden, &x));
    TRY(ptm_op_embedding(x, pk_param_at(m, prefix, "embed_tokens.weight", 0), ids));
    for (int64_t i = 0; i < r.hp.layers; i++) {
        if (ctx->output_hidden_states) {
            TRY(hidden_state(ctx, i, x));
        }
        TRY(layer(&r, i, x));
    }
    TRY(pk_new3(r.dev, r.B, r.S, r.hp.hidden, &out));
    TRY(ptm_op_rms_norm(out, x, NULL, pk_param_at(m, prefix, "norm.weight", 0), (float)r.hp.eps));
    if (ctx->output_hidden_states) { /* HF: the last entry is the normed output */
        TRY(hidden_state(ctx, r.hp.layers, out));
    }
    *seq = out;
    out = NULL;
done:
    ptm_tensor_free(x);
    ptm_tensor_free(out);
    run_free(&r);
    return st;
}

ptm_status llama_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_tensor *seq = NULL;
    ptm_status st = decode(m, "", ctx, &seq);
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(ctx->outputs, "last_hidden_state", seq);
    }
    ptm_tensor_free(seq);
    return st;
}

/* logits = h . W^T for h [B, n, hidden] -> a new [B, n, rows of W]. */
static ptm_status project(const ptm_model *m, ptm_tensor *h, const char *weight, ptm_tensor **out)
{
    ptm_tensor *w = ptm_model_param(m, weight);
    ptm_status st = pk_new3(ptm_model_device(m), ptm_tensor_dim(h, 0), ptm_tensor_dim(h, 1),
                            ptm_tensor_dim(w, 0), out);
    if (st == PTM_OK) {
        st = ptm_op_matmul(*out, h, w, NULL, PTM_MM_TRANS_B);
    }
    return st;
}

ptm_status llama_forward_causal_lm(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *last = NULL, *logits = NULL;
    TRY(decode(m, "model.", ctx, &seq));
    int64_t S = ptm_tensor_dim(seq, 1);
    int64_t keep = PTM_HAS(ctx, struct ptm_forward_ctx, logits_to_keep) ? ctx->logits_to_keep : 0;
    if (keep > 0 && keep < S) { /* HF logits_to_keep: only the last positions */
        TRY(pk_new3(ptm_model_device(m), ptm_tensor_dim(seq, 0), keep, ptm_tensor_dim(seq, 2),
                    &last));
        TRY(copy_seq(last, 0, seq, S - keep, keep));
    } else {
        last = ptm_tensor_retain(seq);
    }
    TRY(project(m, last, "lm_head.weight", &logits));
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", logits));
done:
    ptm_tensor_free(seq);
    ptm_tensor_free(last);
    ptm_tensor_free(logits);
    return st;
}

/* HF GenericForSequenceClassification: the rightmost token that is not pad_token_id (index 0
 * when a row is all padding); the last token when there is no pad id (batch 1 only). */
static ptm_status last_tokens(const struct ptm_forward_ctx *ctx, int64_t pad_id, int64_t *idx)
{
    const ptm_tensor *ids = ptm_tensor_map_get(ctx->inputs, "input_ids");
    int64_t B = ptm_tensor_dim(ids, 0), S = ptm_tensor_dim(ids, 1);
    if (pad_id < 0 && B != 1) {
        return ptm_error_set(PTM_E_INVAL,
                             "llama: cannot handle batch sizes > 1 if no padding token is defined");
    }
    size_t es = ptm_dtype_size(ptm_tensor_dtype(ids));
    char *host = malloc((size_t)(B * S) * es + 1);
    ptm_status st = host ? ptm_tensor_read(ids, host, (size_t)(B * S) * es)
                         : ptm_error_set(PTM_E_NOMEM, "llama: out of memory");
    for (int64_t b = 0; st == PTM_OK && b < B; b++) {
        idx[b] = pad_id < 0 ? S - 1 : 0;
        for (int64_t s = 0; pad_id >= 0 && s < S; s++) {
            int64_t id =
                es == 8 ? ((const int64_t *)host)[b * S + s] : ((const int32_t *)host)[b * S + s];
            idx[b] = id != pad_id ? s : idx[b];
        }
    }
    free(host);
    return st;
}

ptm_status llama_forward_seqcls(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *all = NULL, *pooled = NULL;
    struct llama_hparams hp;
    int64_t *idx = NULL;
    TRY(llama_hparams(m, &hp));
    TRY(decode(m, "model.", ctx, &seq));
    TRY(project(m, seq, "score.weight", &all));
    int64_t B = ptm_tensor_dim(all, 0), shape[2] = {B, hp.num_labels};
    if ((idx = malloc((size_t)B * sizeof *idx + 1)) == NULL) {
        st = ptm_error_set(PTM_E_NOMEM, "llama: out of memory");
        goto done;
    }
    TRY(last_tokens(ctx, hp.pad_id, idx));
    TRY(ptm_tensor_new(ptm_model_device(m), PTM_F32, 2, shape, &pooled));
    for (int64_t b = 0; b < B; b++) {
        ptm_tensor *row = NULL, *one = NULL, *dst = NULL;
        st = ptm_tensor_narrow(all, 0, b, 1, &row);
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(row, 1, idx[b], 1, &one);
        }
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(pooled, 0, b, 1, &dst);
        }
        if (st == PTM_OK) {
            st = ptm_op_convert(dst, one);
        }
        ptm_tensor_free(row);
        ptm_tensor_free(one);
        ptm_tensor_free(dst);
        TRY(st);
    }
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", pooled));
done:
    free(idx);
    ptm_tensor_free(seq);
    ptm_tensor_free(all);
    ptm_tensor_free(pooled);
    return st;
}
