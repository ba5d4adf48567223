/*
 * t5_forward.c - T5's forward passes in runtime ops: the encoder stack (shared embeddings,
 * pre-norm blocks of self-attention with the bidirectional relative position bias and the relu
 * or gated feed-forward, final T5LayerNorm), the decoder stack (causal self-attention with the
 * unidirectional bias, cross-attention over the encoder output with the encoder's padding mask)
 * and the lm_head (with HF's d_model^-0.5 rescale when the head is tied). With the runtime's
 * key/value cache, decoder_input_ids are the new tokens only: the decoder's self-attention
 * keys and values go into the cache, and the cross-attention ones are projected from the
 * encoder output by the first forward of a request into the cache's cross layers and read
 * from there afterwards (the caller still passes the encoder output back as encoder_outputs,
 * HF's argument, which then only fixes the shapes). T5 attention has no
 * 1/sqrt(d) scaling; T5LayerNorm is RMSNorm without bias. The bias buckets are computed on the
 * host exactly as HF's _relative_position_bucket does. output_hidden_states adds each stack's
 * states under HF's names. Eval mode: dropout is the identity.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk.h"
#include "t5.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != PTM_OK) {                                                                \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

/* One forward call: the model, its hyperparameters and the batch size. */
struct run {
    ptm_model *m;
    struct t5_hparams hp;
    ptm_device *dev;
    int64_t B;
    ptm_kv_cache *cache; /* decoder self-attention cache, or NULL */
    int64_t past;        /* tokens already in the cache */
    /* output_hidden_states: where each stack's states go, by HF output name, or NULL. */
    ptm_tensor_map *outputs;
    const char *enc_states, *dec_states;
};

/* HF T5Attention._relative_position_bucket for one relative position (key - query), in
 * float32 as PyTorch computes the log-spaced buckets. */
static int64_t bucket(int64_t rel, int bidirectional, int64_t n_buckets, int64_t max_distance)
{
    int64_t ret = 0;
    if (bidirectional) {
        n_buckets /= 2;
        ret += rel > 0 ? n_buckets : 0;
        rel = rel < 0 ? -rel : rel;
    } else {
        rel = rel < 0 ? -rel : 0;
    }
    int64_t max_exact = n_buckets / 2;
    if (rel < max_exact) {
        return ret + rel;
    }
    float scale = (float)log((double)max_distance / (double)max_exact);
    float f = logf((float)rel / (float)max_exact) / scale * (float)(n_buckets - max_exact);
    if (!(f >= 0.0f) || f > (float)n_buckets) { /* NaN or a degenerate config: clamp */
        f = f > 0.0f ? (float)n_buckets : 0.0f;
    }
    int64_t large = max_exact + (int64_t)f;
    return ret + (large < n_buckets - 1 ? large : n_buckets - 1);
}

/* The relative_attention_bias table of a stack's block 0 as F32 on the host (rows x heads). */
static ptm_status bias_table(struct run *r, const char *stack, float **out)
{
    char name[160];
    snprintf(name, sizeof name, "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
             stack);
    ptm_tensor *w = ptm_model_param(r->m, name), *w32 = NULL;
    *out = NULL;
    if (w == NULL) {
        return ptm_error_set(PTM_E_NOT_FOUND, "t5: parameter %s is missing", name);
    }
    int64_t shape[2] = {ptm_tensor_dim(w, 0), ptm_tensor_dim(w, 1)};
    if (shape[0] != r->hp.buckets || shape[1] != r->hp.heads) {
        return ptm_error_set(PTM_E_INVAL, "t5: %s is [%lld, %lld], expected [%lld, %lld]", name,
                             (long long)shape[0], (long long)shape[1], (long long)r->hp.buckets,
                             (long long)r->hp.heads);
    }
    float *host = malloc((size_t)(shape[0] * shape[1]) * sizeof *host);
    ptm_status st = host ? ptm_tensor_new(r->dev, PTM_F32, 2, shape, &w32)
                         : ptm_error_set(PTM_E_NOMEM, "t5: out of memory reading %s", name);
    if (st == PTM_OK) {
        st = ptm_op_convert(w32, w);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_read(w32, host, ptm_tensor_nbytes(w32));
    }
    ptm_tensor_free(w32);
    if (st != PTM_OK) {
        free(host);
        return st;
    }
    *out = host;
    return PTM_OK;
}

/* The position bias [H, Sq, Sk] of a stack: query i sits at q_offset + i; the encoder's
 * buckets are bidirectional, the decoder's causal. */
static ptm_status position_bias(struct run *r, const char *stack, int64_t sq, int64_t sk,
                                int64_t q_offset, ptm_tensor **out)
{
    int bidir = strcmp(stack, "encoder") == 0;
    int64_t H = r->hp.heads, shape[3] = {H, sq, sk};
    float *table = NULL, *bias = NULL;
    *out = NULL;
    ptm_status st = bias_table(r, stack, &table);
    if (st == PTM_OK && (bias = malloc((size_t)(H * sq * sk) * sizeof *bias + 1)) == NULL) {
        st = ptm_error_set(PTM_E_NOMEM, "t5: out of memory for a [%lld, %lld, %lld] bias",
                           (long long)H, (long long)sq, (long long)sk);
    }
    for (int64_t i = 0; st == PTM_OK && i < sq; i++) {
        for (int64_t j = 0; j < sk; j++) {
            int64_t b = bucket(j - (q_offset + i), bidir, r->hp.buckets, r->hp.max_distance);
            for (int64_t h = 0; h < H; h++) {
                bias[(h * sq + i) * sk + j] = table[b * H + h];
            }
        }
    }
    if (st == PTM_OK) {
        st = ptm_tensor_from_host(r->dev, PTM_F32, 3, shape, bias, out);
    }
    free(table);
    free(bias);
    return st;
}

#define BP(fmt) pk_param_at(r->m, at, fmt, 0)

/* Copy src[:, 0 : len] into dst[:, dst_at : dst_at + len] ([B, S, H, D]), row by row so that
 * each destination is contiguous. */
static ptm_status copy_seq(ptm_tensor *dst, int64_t dst_at, ptm_tensor *src, int64_t len)
{
    ptm_status st = PTM_OK;
    for (int64_t b = 0; st == PTM_OK && b < ptm_tensor_dim(dst, 0); b++) {
        ptm_tensor *dr = NULL, *d = NULL, *s = NULL;
        st = ptm_tensor_narrow(dst, 0, b, 1, &dr);
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(dr, 1, dst_at, len, &d);
        }
        if (st == PTM_OK) {
            st = ptm_tensor_narrow(src, 0, b, 1, &s);
        }
        if (st == PTM_OK) {
            st = ptm_op_convert(d, s);
        }
        ptm_tensor_free(dr);
        ptm_tensor_free(d);
        ptm_tensor_free(s);
    }
    return st;
}

/* Keys and values to attend over: k4 and v4 themselves, or (decoder self-attention of layer
 * `layer` with a cache) the cache's first past + S after writing them into it. New refs. */
static ptm_status kv_for_attention(struct run *r, int64_t layer, ptm_tensor *k4, ptm_tensor *v4,
                                   ptm_tensor **ka, ptm_tensor **va)
{
    ptm_tensor *ck = NULL, *cv = NULL;
    int64_t S = ptm_tensor_dim(k4, 1);
    if (r->cache == NULL || layer < 0) {
        *ka = ptm_tensor_retain(k4);
        *va = ptm_tensor_retain(v4);
        return PTM_OK;
    }
    PK_TRY(ptm_kv_cache_layer(r->cache, (int32_t)layer, r->hp.heads, r->hp.d_kv, &ck, &cv));
    PK_TRY(copy_seq(ck, r->past, k4, S));
    PK_TRY(copy_seq(cv, r->past, v4, S));
    PK_TRY(ptm_tensor_narrow(ck, 1, 0, r->past + S, ka));
    return ptm_tensor_narrow(cv, 1, 0, r->past + S, va);
}

/* The keys and values of "<at>" for kv [B, Sk, D], projected into k3 and v3 ([B, Sk, H * dk],
 * which may be views of cache tensors). */
static ptm_status project_kv(struct run *r, const char *at, ptm_tensor *kv, ptm_tensor *k3,
                             ptm_tensor *v3)
{
    const uint32_t lin = PTM_MM_TRANS_B;
    ptm_status st = ptm_op_matmul(k3, kv, BP(".k.weight"), NULL, lin);
    return st == PTM_OK ? ptm_op_matmul(v3, kv, BP(".v.weight"), NULL, lin) : st;
}

/* Self-attention keys and values of x [B, S, D]: new [B, S, H, dk] tensors, or (decoder with a
 * cache, layer >= 0) the cache's first past + S after writing them into it. New refs. */
static ptm_status self_kv(struct run *r, const char *at, ptm_tensor *x, int64_t layer,
                          ptm_tensor **ka, ptm_tensor **va)
{
    ptm_status st;
    int64_t S = ptm_tensor_dim(x, 1), H = r->hp.heads, dk = r->hp.d_kv;
    ptm_tensor *k = NULL, *v = NULL, *k4 = NULL, *v4 = NULL;
    TRY(pk_new3(r->dev, r->B, S, H * dk, &k));
    TRY(pk_new3(r->dev, r->B, S, H * dk, &v));
    TRY(project_kv(r, at, x, k, v));
    TRY(pk_view4(k, r->B, S, H, dk, &k4));
    TRY(pk_view4(v, r->B, S, H, dk, &v4));
    TRY(kv_for_attention(r, layer, k4, v4, ka, va));
done:
    ptm_tensor_free(k);
    ptm_tensor_free(v);
    ptm_tensor_free(k4);
    ptm_tensor_free(v4);
    return st;
}

/* Cross-attention keys and values of the encoder output enc [B, Se, D]: with a cache, its
 * cross layer, projected only by the request's first forward; else new tensors. New refs. */
static ptm_status cross_kv(struct run *r, const char *at, ptm_tensor *enc, int64_t layer,
                           ptm_tensor **ka, ptm_tensor **va)
{
    ptm_status st;
    int64_t Se = ptm_tensor_dim(enc, 1), H = r->hp.heads, dk = r->hp.d_kv;
    int32_t fill = 1;
    ptm_tensor *ck = NULL, *cv = NULL, *k3 = NULL, *v3 = NULL;
    if (r->cache == NULL) {
        return self_kv(r, at, enc, -1, ka, va);
    }
    TRY(ptm_kv_cache_cross_layer(r->cache, (int32_t)layer, H, dk, Se, &ck, &cv, &fill));
    if (fill && ptm_tensor_dtype(ck) != PTM_F32) {
        /* A half-precision cache: project in F32, then round into it. */
        TRY(self_kv(r, at, enc, -1, &k3, &v3));
        TRY(ptm_op_convert(ck, k3));
        TRY(ptm_op_convert(cv, v3));
    } else if (fill) {
        int64_t shape[3] = {r->B, Se, H * dk};
        TRY(ptm_tensor_reshape(ck, 3, shape, &k3));
        TRY(ptm_tensor_reshape(cv, 3, shape, &v3));
        TRY(project_kv(r, at, enc, k3, v3));
    }
    *ka = ptm_tensor_retain(ck);
    *va = ptm_tensor_retain(cv);
done:
    ptm_tensor_free(k3);
    ptm_tensor_free(v3);
    return st;
}

/* T5Attention "<at>" of x [B, Sq, D] over the keys and values ka, va [B, Sk, H, dk], with
 * the key mask, the bias and causality in o; the output projection is added to res. */
static ptm_status attend(struct run *r, const char *at, ptm_tensor *x, ptm_tensor *ka,
                         ptm_tensor *va, const struct ptm_attention_opts *o, ptm_tensor *res)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B;
    int64_t sq = ptm_tensor_dim(x, 1);
    int64_t H = r->hp.heads, dk = r->hp.d_kv, inner = H * dk;
    ptm_tensor *q = NULL, *ctx = NULL, *y = NULL, *q4 = NULL, *c4 = NULL;
    TRY(pk_new3(r->dev, r->B, sq, inner, &q));
    TRY(pk_new3(r->dev, r->B, sq, inner, &ctx));
    TRY(pk_new3(r->dev, r->B, sq, r->hp.d_model, &y));
    TRY(ptm_op_matmul(q, x, BP(".q.weight"), NULL, lin));
    TRY(pk_view4(q, r->B, sq, H, dk, &q4));
    TRY(pk_view4(ctx, r->B, sq, H, dk, &c4));
    TRY(ptm_op_attention(c4, q4, ka, va, 1.0f, o)); /* T5: no 1/sqrt(d_kv) */
    TRY(ptm_op_matmul(y, ctx, BP(".o.weight"), NULL, lin));
    TRY(ptm_op_add(res, res, y));
done:
    ptm_tensor_free(q4);
    ptm_tensor_free(c4);
    ptm_tensor_free(q);
    ptm_tensor_free(ctx);
    ptm_tensor_free(y);
    return st;
}

/* T5LayerFF "<at>": x += wo(act(wi(norm(x)))) or, gated, wo(act(wi_0(n)) * wi_1(n)). */
static ptm_status feed_forward(struct run *r, const char *at, ptm_tensor *x)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B, act = (uint32_t)r->hp.act << PTM_MM_ACT_SHIFT;
    int64_t S = ptm_tensor_dim(x, 1);
    ptm_tensor *n = NULL, *h = NULL, *g = NULL, *y = NULL;
    TRY(pk_new3(r->dev, r->B, S, r->hp.d_model, &n));
    TRY(pk_new3(r->dev, r->B, S, r->hp.d_ff, &h));
    TRY(pk_new3(r->dev, r->B, S, r->hp.d_model, &y));
    TRY(ptm_op_rms_norm(n, x, NULL, BP(".layer_norm.weight"), (float)r->hp.eps));
    if (r->hp.gated) {
        TRY(pk_new3(r->dev, r->B, S, r->hp.d_ff, &g));
        TRY(ptm_op_matmul(h, n, BP(".DenseReluDense.wi_0.weight"), NULL, lin | act));
        TRY(ptm_op_matmul(g, n, BP(".DenseReluDense.wi_1.weight"), NULL, lin));
        TRY(ptm_op_mul(h, h, g));
    } else {
        TRY(ptm_op_matmul(h, n, BP(".DenseReluDense.wi.weight"), NULL, lin | act));
    }
    TRY(ptm_op_matmul(y, h, BP(".DenseReluDense.wo.weight"), NULL, lin));
    TRY(ptm_op_add(x, x, y));
done:
    ptm_tensor_free(n);
    ptm_tensor_free(h);
    ptm_tensor_free(g);
    ptm_tensor_free(y);
    return st;
}

/* x += attention(norm(x)) for the T5LayerSelfAttention or T5LayerCrossAttention "<at>"; enc
 * NULL means self-attention. cache_layer >= 0: the decoder layer whose cache (self) or cross
 * layer (enc given) holds the keys and values. */
static ptm_status attention_layer(struct run *r, const char *at, const char *module, ptm_tensor *x,
                                  ptm_tensor *enc, const struct ptm_attention_opts *o,
                                  int64_t cache_layer)
{
    ptm_status st;
    char name[160];
    ptm_tensor *n = NULL, *ka = NULL, *va = NULL;
    TRY(pk_new3(r->dev, r->B, ptm_tensor_dim(x, 1), r->hp.d_model, &n));
    TRY(ptm_op_rms_norm(n, x, NULL, BP(".layer_norm.weight"), (float)r->hp.eps));
    snprintf(name, sizeof name, "%s.%s", at, module);
    if (enc != NULL) {
        TRY(cross_kv(r, name, enc, cache_layer, &ka, &va));
    } else {
        TRY(self_kv(r, name, n, cache_layer, &ka, &va));
    }
    TRY(attend(r, name, n, ka, va, o, x));
done:
    ptm_tensor_free(n);
    ptm_tensor_free(ka);
    ptm_tensor_free(va);
    return st;
}

/* Look up ids [B, S] in shared.weight into a new [B, S, D] tensor. */
static ptm_status embed(struct run *r, const ptm_tensor *ids, ptm_tensor **x)
{
    ptm_status st = pk_new3(r->dev, r->B, ptm_tensor_dim(ids, 1), r->hp.d_model, x);
    if (st == PTM_OK) {
        st = ptm_op_embedding(*x, ptm_model_param(r->m, "shared.weight"), ids);
    }
    if (st != PTM_OK) {
        ptm_tensor_free(*x);
        *x = NULL;
    }
    return st;
}

/* With output_hidden_states, a copy of x as "<name>.<i>" (HF's T5Stack: the embeddings, each
 * block's output but the last, then the final normed output). */
static ptm_status keep_state(struct run *r, const char *name, int64_t i, ptm_tensor *x)
{
    char key[64];
    ptm_tensor *copy = NULL;
    if (name == NULL) {
        return PTM_OK;
    }
    snprintf(key, sizeof key, "%s.%lld", name, (long long)i);
    ptm_status st = pk_new3(r->dev, r->B, ptm_tensor_dim(x, 1), r->hp.d_model, &copy);
    if (st == PTM_OK) {
        st = ptm_op_convert(copy, x);
    }
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(r->outputs, key, copy);
    }
    ptm_tensor_free(copy);
    return st;
}

/* The final T5LayerNorm of a stack, in place. */
static ptm_status final_norm(struct run *r, const char *stack, ptm_tensor *x)
{
    char name[64];
    snprintf(name, sizeof name, "%s.final_layer_norm.weight", stack);
    return ptm_op_rms_norm(x, x, NULL, ptm_model_param(r->m, name), (float)r->hp.eps);
}

/* The encoder stack: ids [B, S] and mask [B, S] (or NULL) -> a new [B, S, D]. */
static ptm_status encode(struct run *r, const ptm_tensor *ids, const ptm_tensor *mask,
                         ptm_tensor **out)
{
    ptm_status st;
    ptm_tensor *x = NULL, *bias = NULL;
    int64_t S = ptm_tensor_dim(ids, 1);
    char at[96];
    *out = NULL;
    TRY(embed(r, ids, &x));
    TRY(position_bias(r, "encoder", S, S, 0, &bias));
    struct ptm_attention_opts o = {.struct_size = sizeof o, .key_mask = mask, .bias = bias};
    for (int64_t i = 0; i < r->hp.layers; i++) {
        TRY(keep_state(r, r->enc_states, i, x));
        snprintf(at, sizeof at, "encoder.block.%lld.layer.0", (long long)i);
        TRY(attention_layer(r, at, "SelfAttention", x, NULL, &o, -1));
        snprintf(at, sizeof at, "encoder.block.%lld.layer.1", (long long)i);
        TRY(feed_forward(r, at, x));
    }
    TRY(final_norm(r, "encoder", x));
    TRY(keep_state(r, r->enc_states, r->hp.layers, x));
    *out = x;
    x = NULL;
done:
    ptm_tensor_free(x);
    ptm_tensor_free(bias);
    return st;
}

/* The decoder stack: decoder ids [B, T] (mask [B, past + T] or NULL) over the encoder output
 * enc [B, S, D] (enc_mask [B, S] or NULL) -> a new [B, T, D]. */
static ptm_status decode(struct run *r, const ptm_tensor *ids, const ptm_tensor *mask,
                         ptm_tensor *enc, const ptm_tensor *enc_mask, ptm_tensor **out)
{
    ptm_status st;
    ptm_tensor *x = NULL, *bias = NULL;
    int64_t T = ptm_tensor_dim(ids, 1);
    char at[96];
    *out = NULL;
    TRY(embed(r, ids, &x));
    TRY(position_bias(r, "decoder", T, r->past + T, r->past, &bias));
    struct ptm_attention_opts self = {.struct_size = sizeof self,
                                      .key_mask = mask,
                                      .bias = bias,
                                      .causal = 1,
                                      .q_offset = r->past};
    struct ptm_attention_opts cross = {.struct_size = sizeof cross, .key_mask = enc_mask};
    for (int64_t i = 0; i < r->hp.dec_layers; i++) {
        TRY(keep_state(r, r->dec_states, i, x));
        snprintf(at, sizeof at, "decoder.block.%lld.layer.0", (long long)i);
        TRY(attention_layer(r, at, "SelfAttention", x, NULL, &self, i));
        snprintf(at, sizeof at, "decoder.block.%lld.layer.1", (long long)i);
        TRY(attention_layer(r, at, "EncDecAttention", x, enc, &cross, i));
        snprintf(at, sizeof at, "decoder.block.%lld.layer.2", (long long)i);
        TRY(feed_forward(r, at, x));
    }
    TRY(final_norm(r, "decoder", x));
    TRY(keep_state(r, r->dec_states, r->hp.dec_layers, x));
    *out = x;
    x = NULL;
done:
    ptm_tensor_free(x);
    ptm_tensor_free(bias);
    return st;
}

/* An optional mask must be [B, past + S] for ids [B, S] (past: cached tokens). */
static ptm_status check_mask(const char *name, const ptm_tensor *mask, const ptm_tensor *ids,
                             int64_t past)
{
    int64_t B = ptm_tensor_dim(ids, 0), S = past + ptm_tensor_dim(ids, 1);
    if (mask != NULL && (ptm_tensor_ndim(mask) != 2 || ptm_tensor_dim(mask, 0) != B ||
                         ptm_tensor_dim(mask, 1) != S)) {
        return ptm_error_set(PTM_E_INVAL, "t5: %s must be [%lld, %lld] (cached and new tokens)",
                             name, (long long)B, (long long)S);
    }
    return PTM_OK;
}

static ptm_status run_init(struct run *r, ptm_model *m, const struct ptm_forward_ctx *ctx,
                           const ptm_tensor **ids)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->dev = ptm_model_device(m);
    PK_TRY(t5_hparams(m, &r->hp));
    r->cache = PTM_HAS(ctx, struct ptm_forward_ctx, cache) ? ctx->cache : NULL;
    r->past = r->cache ? ptm_kv_cache_len(r->cache) : 0;
    r->outputs = ctx->outputs;
    if (ctx->output_hidden_states) { /* HF's output names per class */
        int enc_only = strcmp(ptm_model_class_name(m), "T5EncoderModel") == 0;
        r->enc_states = enc_only ? "hidden_states" : "encoder_hidden_states";
        r->dec_states = "decoder_hidden_states";
    }
    *ids = ptm_tensor_map_get(ctx->inputs, "input_ids");
    if (*ids == NULL || ptm_tensor_ndim(*ids) != 2) {
        return ptm_error_set(PTM_E_INVAL, "t5: input_ids must be given as [batch, seq]");
    }
    r->B = ptm_tensor_dim(*ids, 0);
    return check_mask("attention_mask", ptm_tensor_map_get(ctx->inputs, "attention_mask"), *ids, 0);
}

/* The encoder's output: computed, or the "encoder_outputs" input [B, S, D] (HF's argument, so
 * that generation encodes once). *enc is a new reference. */
static ptm_status encoder_output(struct run *r, const struct ptm_forward_ctx *ctx,
                                 const ptm_tensor *ids, ptm_tensor **enc)
{
    ptm_tensor *given = ptm_tensor_map_get(ctx->inputs, "encoder_outputs");
    if (given == NULL) {
        return encode(r, ids, ptm_tensor_map_get(ctx->inputs, "attention_mask"), enc);
    }
    if (ptm_tensor_ndim(given) != 3 || ptm_tensor_dim(given, 0) != r->B ||
        ptm_tensor_dim(given, 1) != ptm_tensor_dim(ids, 1) ||
        ptm_tensor_dim(given, 2) != r->hp.d_model) {
        return ptm_error_set(PTM_E_INVAL, "t5: encoder_outputs must be [%lld, %lld, %lld]",
                             (long long)r->B, (long long)ptm_tensor_dim(ids, 1),
                             (long long)r->hp.d_model);
    }
    *enc = ptm_tensor_retain(given);
    return PTM_OK;
}

/* Encoder then decoder: "encoder_last_hidden_state" into the outputs, *dec a new reference to
 * the decoder's last hidden state. */
static ptm_status encode_decode(ptm_model *m, const struct ptm_forward_ctx *ctx, struct run *r,
                                ptm_tensor **dec)
{
    ptm_status st;
    const ptm_tensor *ids = NULL;
    ptm_tensor *enc = NULL;
    *dec = NULL;
    TRY(run_init(r, m, ctx, &ids));
    const ptm_tensor *dids = ptm_tensor_map_get(ctx->inputs, "decoder_input_ids");
    const ptm_tensor *dmask = ptm_tensor_map_get(ctx->inputs, "decoder_attention_mask");
    if (dids == NULL || ptm_tensor_ndim(dids) != 2 || ptm_tensor_dim(dids, 0) != r->B) {
        st = ptm_error_set(PTM_E_INVAL, "t5: %s needs decoder_input_ids [%lld, seq]",
                           ptm_model_class_name(m), (long long)r->B);
        goto done;
    }
    TRY(check_mask("decoder_attention_mask", dmask, dids, r->past));
    TRY(encoder_output(r, ctx, ids, &enc));
    TRY(ptm_tensor_map_set(ctx->outputs, "encoder_last_hidden_state", enc));
    TRY(decode(r, dids, dmask, enc, ptm_tensor_map_get(ctx->inputs, "attention_mask"), dec));
done:
    ptm_tensor_free(enc);
    return st;
}

ptm_status t5_forward_encoder(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    struct run r;
    const ptm_tensor *ids = NULL;
    ptm_tensor *enc = NULL;
    TRY(run_init(&r, m, ctx, &ids));
    if (r.cache != NULL) {
        st = ptm_error_set(PTM_E_UNSUPPORTED, "t5: T5EncoderModel does not take a key/value cache");
        goto done;
    }
    TRY(encode(&r, ids, ptm_tensor_map_get(ctx->inputs, "attention_mask"), &enc));
    TRY(ptm_tensor_map_set(ctx->outputs, "last_hidden_state", enc));
done:
    ptm_tensor_free(enc);
    return st;
}

ptm_status t5_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    struct run r;
    ptm_tensor *dec = NULL;
    ptm_status st = encode_decode(m, ctx, &r, &dec);
    if (st == PTM_OK) {
        st = ptm_tensor_map_set(ctx->outputs, "last_hidden_state", dec);
    }
    ptm_tensor_free(dec);
    return st;
}

/* The last n positions of x [B, T, D] as a new contiguous tensor (HF logits_to_keep). */
static ptm_status last_positions(struct run *r, ptm_tensor *x, int64_t n, ptm_tensor **out)
{
    ptm_tensor *view = NULL;
    int64_t T = ptm_tensor_dim(x, 1);
    ptm_status st = ptm_tensor_narrow(x, 1, T - n, n, &view);
    if (st == PTM_OK) {
        st = pk_new3(r->dev, r->B, n, r->hp.d_model, out);
    }
    if (st == PTM_OK) {
        st = ptm_op_convert(*out, view);
    }
    ptm_tensor_free(view);
    return st;
}

ptm_status t5_forward_cond_gen(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    struct run r;
    ptm_tensor *dec = NULL, *kept = NULL, *logits = NULL;
    TRY(encode_decode(m, ctx, &r, &dec));
    int64_t T = ptm_tensor_dim(dec, 1), keep = ctx->logits_to_keep;
    if (keep > 0 && keep < T) {
        TRY(last_positions(&r, dec, keep, &kept));
    } else {
        kept = ptm_tensor_retain(dec);
    }
    if (r.hp.scale_out) { /* tied lm_head: HF rescales the decoder output first */
        TRY(ptm_op_scale(kept, kept, (float)pow((double)r.hp.d_model, -0.5)));
    }
    TRY(pk_new3(r.dev, r.B, ptm_tensor_dim(kept, 1), r.hp.vocab, &logits));
    TRY(ptm_op_matmul(logits, kept, ptm_model_param(m, "lm_head.weight"), NULL, PTM_MM_TRANS_B));
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", logits));
done:
    ptm_tensor_free(dec);
    ptm_tensor_free(kept);
    ptm_tensor_free(logits);
    return st;
}
