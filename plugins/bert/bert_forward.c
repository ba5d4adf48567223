/*
 * bert_forward.c - BERT's forward passes in runtime ops: embeddings (word + position +
 * token type, LayerNorm), the encoder layers (Q/K/V projections viewed as [B, S, H, D] with
 * no permute, fused attention with the key padding mask, output projection + residual
 * LayerNorm, the GELU feed-forward), the pooler, and each head. Eval mode: dropout is the
 * identity. Buffers are allocated once per call and reused by every layer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert.h"
#include "pk.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != PTM_OK) {                                                                \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

ptm_status bert_hparams(const ptm_model *m, struct bert_hparams *hp)
{
    const ptm_config *c = ptm_model_config(m);
    struct {
        const char *key;
        int64_t *dst;
    } ints[] = {
        {"vocab_size", &hp->vocab},           {"hidden_size", &hp->hidden},
        {"num_hidden_layers", &hp->layers},   {"num_attention_heads", &hp->heads},
        {"intermediate_size", &hp->inter},    {"max_position_embeddings", &hp->max_pos},
        {"type_vocab_size", &hp->type_vocab}, {"num_labels", &hp->num_labels},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        ptm_status st = ptm_config_get_int(c, ints[i].key, ints[i].dst);
        if (st != PTM_OK) {
            return st;
        }
    }
    if (hp->heads <= 0 || hp->hidden % hp->heads != 0) {
        return ptm_error_set(PTM_E_INVAL,
                             "bert: hidden_size %lld is not a multiple of "
                             "num_attention_heads %lld",
                             (long long)hp->hidden, (long long)hp->heads);
    }
    ptm_status st = ptm_config_get_float(c, "layer_norm_eps", &hp->eps);
    const char *act = NULL, *pos = NULL;
    if (st == PTM_OK) {
        st = ptm_config_get_string(c, "hidden_act", &act);
    }
    if (st == PTM_OK) {
        st = ptm_config_get_string(c, "position_embedding_type", &pos);
    }
    if (st != PTM_OK) {
        return st;
    }
    if (strcmp(pos, "absolute") != 0) {
        return ptm_error_set(PTM_E_UNSUPPORTED,
                             "bert: position_embedding_type \"%s\" is not "
                             "supported (only \"absolute\")",
                             pos);
    }
    static const struct {
        const char *name;
        int32_t op;
    } acts[] = {
        {"gelu", PTM_UNARY_GELU},
        {"gelu_new", PTM_UNARY_GELU_TANH},
        {"gelu_pytorch_tanh", PTM_UNARY_GELU_TANH},
        {"relu", PTM_UNARY_RELU},
        {"silu", PTM_UNARY_SILU},
        {"swish", PTM_UNARY_SILU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(act, acts[i].name) == 0) {
            hp->act = acts[i].op;
            return PTM_OK;
        }
    }
    return ptm_error_set(PTM_E_UNSUPPORTED, "bert: hidden_act \"%s\" is not supported", act);
}

/* The work buffers of one forward call. */
struct run {
    ptm_model *m;
    const char *prefix;
    struct bert_hparams hp;
    ptm_device *dev;
    int64_t B, S;
    const ptm_tensor *mask;
    ptm_tensor *q, *k, *v, *ctx, *h1, *inter, *tmp;
};

static void run_free(struct run *r)
{
    ptm_tensor *ts[] = {r->q, r->k, r->v, r->ctx, r->h1, r->inter, r->tmp};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        ptm_tensor_free(ts[i]);
    }
}

/* ids 0..n-1 (positions) or all zeros (token types), as an I32 [n] tensor. Filled on the host
 * and copied, so devices the host cannot address (OpenCL, CUDA) work too. */
static ptm_status ids_tensor(ptm_device *dev, int64_t n, int zeros, ptm_tensor **out)
{
    int32_t *p = malloc((size_t)n * sizeof *p + 1);
    if (p == NULL) {
        *out = NULL;
        return ptm_error_set(PTM_E_NOMEM, "bert: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] = zeros ? 0 : (int32_t)i;
    }
    ptm_status st = ptm_tensor_from_host(dev, PTM_I32, 1, &n, p, out);
    free(p);
    return st;
}

/* Gather table rows for ids ([B, S], or [S] broadcast over the batch) and add them to x. */
static ptm_status add_rows(struct run *r, ptm_tensor *x, const ptm_tensor *table,
                           const ptm_tensor *ids)
{
    int64_t n = ptm_tensor_numel(ids);
    ptm_tensor *rows = NULL;
    ptm_status st = n == r->S ? pk_new3(r->dev, 1, r->S, r->hp.hidden, &rows)
                              : pk_new3(r->dev, r->B, r->S, r->hp.hidden, &rows);
    if (st == PTM_OK) {
        st = ptm_op_embedding(rows, table, ids);
    }
    if (st == PTM_OK && n == r->S && r->B > 1) { /* [S, H] broadcasts over the batch */
        int64_t shape[2] = {r->S, r->hp.hidden};
        ptm_tensor *flat = NULL;
        st = ptm_tensor_reshape(rows, 2, shape, &flat);
        if (st == PTM_OK) {
            st = ptm_op_add(x, x, flat);
        }
        ptm_tensor_free(flat);
    } else if (st == PTM_OK) {
        st = ptm_op_add(x, x, rows);
    }
    ptm_tensor_free(rows);
    return st;
}

static ptm_status embeddings(struct run *r, const ptm_tensor *ids, const ptm_tensor *types,
                             const ptm_tensor *pos_ids, ptm_tensor **out)
{
    ptm_status st;
    ptm_tensor *x = NULL, *t = NULL, *made_pos = NULL, *made_types = NULL;
    const char *pf = r->prefix;
    if (pos_ids == NULL && r->S > r->hp.max_pos) {
        return ptm_error_set(PTM_E_RANGE,
                             "bert: sequence of %lld tokens is longer than "
                             "max_position_embeddings %lld",
                             (long long)r->S, (long long)r->hp.max_pos);
    }
    if (pos_ids == NULL) { /* positions 0..S-1 for every sequence */
        TRY(ids_tensor(r->dev, r->S, 0, &made_pos));
        pos_ids = made_pos;
    }
    if (types == NULL) { /* token type 0 everywhere */
        TRY(ids_tensor(r->dev, r->S, 1, &made_types));
        types = made_types;
    }
    TRY(pk_new3(r->dev, r->B, r->S, r->hp.hidden, &x));
    TRY(ptm_op_embedding(x, pk_param_at(r->m, pf, "embeddings.word_embeddings.weight", 0), ids));
    TRY(add_rows(r, x, pk_param_at(r->m, pf, "embeddings.position_embeddings.weight", 0), pos_ids));
    TRY(add_rows(r, x, pk_param_at(r->m, pf, "embeddings.token_type_embeddings.weight", 0), types));
    TRY(ptm_op_layer_norm(x, x, NULL, pk_param_at(r->m, pf, "embeddings.LayerNorm.weight", 0),
                          pk_param_at(r->m, pf, "embeddings.LayerNorm.bias", 0), (float)r->hp.eps));
done:
    ptm_tensor_free(t);
    ptm_tensor_free(made_pos);
    ptm_tensor_free(made_types);
    if (st != PTM_OK) {
        ptm_tensor_free(x);
        x = NULL;
    }
    *out = x;
    return st;
}

#define LP(fmt) pk_param_at(r->m, r->prefix, "encoder.layer.%lld." fmt, (long long)i)

/* Attention of layer i: x -> ctx ([B, S, width]); width is hidden unless heads were pruned,
 * in which case the layer gets buffers of its own width. */
static ptm_status attend(struct run *r, int64_t i, ptm_tensor *x, ptm_tensor **ctx_out)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B;
    int64_t hd = r->hp.hidden / r->hp.heads;
    int64_t width = ptm_tensor_dim(LP("attention.self.query.weight"), 0), heads = width / hd;
    ptm_tensor *q = r->q, *k = r->k, *v = r->v, *ctx = r->ctx;
    ptm_tensor *q4 = NULL, *k4 = NULL, *v4 = NULL, *c4 = NULL;
    ptm_tensor *own[4] = {NULL, NULL, NULL, NULL};
    if (width != r->hp.hidden) {
        for (int j = 0; j < 4; j++) {
            TRY(pk_new3(r->dev, r->B, r->S, width, &own[j]));
        }
        q = own[0], k = own[1], v = own[2], ctx = own[3];
    }
    TRY(ptm_op_matmul(q, x, LP("attention.self.query.weight"), LP("attention.self.query.bias"),
                      lin));
    TRY(ptm_op_matmul(k, x, LP("attention.self.key.weight"), LP("attention.self.key.bias"), lin));
    TRY(ptm_op_matmul(v, x, LP("attention.self.value.weight"), LP("attention.self.value.bias"),
                      lin));
    TRY(pk_view4(q, r->B, r->S, heads, hd, &q4));
    TRY(pk_view4(k, r->B, r->S, heads, hd, &k4));
    TRY(pk_view4(v, r->B, r->S, heads, hd, &v4));
    TRY(pk_view4(ctx, r->B, r->S, heads, hd, &c4));
    struct ptm_attention_opts o = {.struct_size = sizeof o, .key_mask = r->mask};
    TRY(ptm_op_attention(c4, q4, k4, v4, (float)(1.0 / sqrt((double)hd)), &o));
    *ctx_out = ptm_tensor_retain(ctx);
done:
    for (int j = 0; j < 4; j++) {
        ptm_tensor_free(own[j]);
    }
    ptm_tensor_free(q4);
    ptm_tensor_free(k4);
    ptm_tensor_free(v4);
    ptm_tensor_free(c4);
    return st;
}

/* One encoder layer: x (in) -> out; out may be x. */
static ptm_status layer(struct run *r, int64_t i, ptm_tensor *x, ptm_tensor *out)
{
    ptm_status st;
    const uint32_t lin = PTM_MM_TRANS_B;
    ptm_tensor *ctx = NULL;
    TRY(attend(r, i, x, &ctx));
    TRY(ptm_op_matmul(r->tmp, ctx, LP("attention.output.dense.weight"),
                      LP("attention.output.dense.bias"), lin));
    TRY(ptm_op_layer_norm(r->h1, r->tmp, x, LP("attention.output.LayerNorm.weight"),
                          LP("attention.output.LayerNorm.bias"), (float)r->hp.eps));
    TRY(ptm_op_matmul(r->inter, r->h1, LP("intermediate.dense.weight"),
                      LP("intermediate.dense.bias"),
                      lin | (uint32_t)r->hp.act << PTM_MM_ACT_SHIFT));
    TRY(ptm_op_matmul(r->tmp, r->inter, LP("output.dense.weight"), LP("output.dense.bias"), lin));
    TRY(ptm_op_layer_norm(out, r->tmp, r->h1, LP("output.LayerNorm.weight"),
                          LP("output.LayerNorm.bias"), (float)r->hp.eps));
done:
    ptm_tensor_free(ctx);
    return st;
}

static ptm_status hidden_state_put(const struct ptm_forward_ctx *ctx, int64_t i, ptm_tensor *x)
{
    char name[48];
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)i);
    return ptm_tensor_map_set(ctx->outputs, name, x);
}

/* Check the inputs and set up the buffers. */
static ptm_status run_init(struct run *r, ptm_model *m, const char *prefix,
                           const struct ptm_forward_ctx *ctx, const ptm_tensor **ids)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->prefix = prefix;
    r->dev = ptm_model_device(m);
    ptm_status st = bert_hparams(m, &r->hp);
    if (st != PTM_OK) {
        return st;
    }
    *ids = ptm_tensor_map_get(ctx->inputs, "input_ids");
    if (*ids == NULL || ptm_tensor_ndim(*ids) != 2) {
        return ptm_error_set(PTM_E_INVAL, "bert: input_ids must be given as [batch, seq]");
    }
    r->B = ptm_tensor_dim(*ids, 0);
    r->S = ptm_tensor_dim(*ids, 1);
    r->mask = ptm_tensor_map_get(ctx->inputs, "attention_mask");
    const ptm_tensor *types = ptm_tensor_map_get(ctx->inputs, "token_type_ids");
    if ((r->mask && (ptm_tensor_dim(r->mask, 0) != r->B || ptm_tensor_dim(r->mask, 1) != r->S)) ||
        (types && (ptm_tensor_dim(types, 0) != r->B || ptm_tensor_dim(types, 1) != r->S))) {
        return ptm_error_set(PTM_E_INVAL,
                             "bert: attention_mask and token_type_ids must be "
                             "[%lld, %lld] like input_ids",
                             (long long)r->B, (long long)r->S);
    }
    int64_t H = r->hp.hidden;
    ptm_tensor **bufs[] = {&r->q, &r->k, &r->v, &r->ctx, &r->h1, &r->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if ((st = pk_new3(r->dev, r->B, r->S, H, bufs[i])) != PTM_OK) {
            return st;
        }
    }
    return pk_new3(r->dev, r->B, r->S, r->hp.inter, &r->inter);
}

/* The encoder: "last_hidden_state" (and hidden states) into ctx->outputs; *seq is a new
 * reference to the last hidden state. */
static ptm_status encode(ptm_model *m, const char *prefix, const struct ptm_forward_ctx *ctx,
                         ptm_tensor **seq)
{
    struct run r;
    const ptm_tensor *ids = NULL;
    ptm_tensor *x = NULL;
    ptm_status st;
    *seq = NULL;
    TRY(run_init(&r, m, prefix, ctx, &ids));
    TRY(embeddings(&r, ids, ptm_tensor_map_get(ctx->inputs, "token_type_ids"),
                   ptm_tensor_map_get(ctx->inputs, "position_ids"), &x));
    if (ctx->output_hidden_states) {
        TRY(hidden_state_put(ctx, 0, x));
    }
    for (int64_t i = 0; i < r.hp.layers; i++) {
        if (ctx->output_hidden_states) { /* each layer's output is kept: a fresh tensor */
            ptm_tensor *y = NULL;
            TRY(pk_new3(r.dev, r.B, r.S, r.hp.hidden, &y));
            st = layer(&r, i, x, y);
            ptm_tensor_free(x);
            x = y;
            TRY(st);
            TRY(hidden_state_put(ctx, i + 1, x));
        } else {
            TRY(layer(&r, i, x, x));
        }
    }
    TRY(ptm_tensor_map_set(ctx->outputs, "last_hidden_state", x));
    *seq = x;
    x = NULL;
done:
    ptm_tensor_free(x);
    run_free(&r);
    return st;
}

/* A [rows, n] = x . W^T + b linear on a fresh tensor shaped like x with last dim n. */
static ptm_status dense(const ptm_model *m, const char *name, ptm_tensor *x, int64_t n, int32_t act,
                        ptm_tensor **out)
{
    char w[160], b[160];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    int64_t shape[PTM_MAX_DIMS];
    int32_t nd = ptm_tensor_ndim(x);
    for (int32_t i = 0; i < nd; i++) {
        shape[i] = ptm_tensor_dim(x, i);
    }
    shape[nd - 1] = n;
    ptm_status st = ptm_tensor_new(ptm_model_device(m), PTM_F32, nd, shape, out);
    if (st == PTM_OK) {
        st = ptm_op_matmul(*out, x, ptm_model_param(m, w), ptm_model_param(m, b),
                           PTM_MM_TRANS_B | (uint32_t)act << PTM_MM_ACT_SHIFT);
    }
    if (st != PTM_OK) {
        ptm_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* pooler: tanh(dense(first token)) -> "pooler_output" [B, H]. */
static ptm_status pool(ptm_model *m, const char *prefix, const struct ptm_forward_ctx *ctx,
                       ptm_tensor *seq, ptm_tensor **pooled)
{
    ptm_status st;
    ptm_tensor *first = NULL, *first2 = NULL;
    char name[64];
    snprintf(name, sizeof name, "%spooler.dense", prefix);
    *pooled = NULL;
    TRY(ptm_tensor_narrow(seq, 1, 0, 1, &first));
    int64_t shape[2] = {ptm_tensor_dim(seq, 0), ptm_tensor_dim(seq, 2)};
    TRY(dense(m, name, first, shape[1], PTM_UNARY_NONE, &first2));
    TRY(ptm_op_unary(first2, first2, PTM_UNARY_TANH));
    TRY(ptm_tensor_reshape(first2, 2, shape, pooled));
    TRY(ptm_tensor_map_set(ctx->outputs, "pooler_output", *pooled));
done:
    ptm_tensor_free(first);
    ptm_tensor_free(first2);
    return st;
}

ptm_status bert_forward_base(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_tensor *seq = NULL, *pooled = NULL;
    ptm_status st = encode(m, "", ctx, &seq);
    if (st == PTM_OK && ptm_model_param(m, "pooler.dense.weight") != NULL) {
        st = pool(m, "", ctx, seq, &pooled);
    }
    ptm_tensor_free(pooled);
    ptm_tensor_free(seq);
    return st;
}

ptm_status bert_forward_mlm(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *h = NULL, *logits = NULL;
    struct bert_hparams hp;
    TRY(bert_hparams(m, &hp));
    TRY(encode(m, "bert.", ctx, &seq));
    TRY(dense(m, "cls.predictions.transform.dense", seq, hp.hidden, hp.act, &h));
    TRY(ptm_op_layer_norm(
        h, h, NULL, ptm_model_param(m, "cls.predictions.transform.LayerNorm.weight"),
        ptm_model_param(m, "cls.predictions.transform.LayerNorm.bias"), (float)hp.eps));
    TRY(dense(m, "cls.predictions.decoder", h, hp.vocab, PTM_UNARY_NONE, &logits));
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", logits));
done:
    ptm_tensor_free(seq);
    ptm_tensor_free(h);
    ptm_tensor_free(logits);
    return st;
}

ptm_status bert_forward_seqcls(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *pooled = NULL, *logits = NULL;
    struct bert_hparams hp;
    TRY(bert_hparams(m, &hp));
    TRY(encode(m, "bert.", ctx, &seq));
    TRY(pool(m, "bert.", ctx, seq, &pooled));
    TRY(dense(m, "classifier", pooled, hp.num_labels, PTM_UNARY_NONE, &logits));
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", logits));
done:
    ptm_tensor_free(seq);
    ptm_tensor_free(pooled);
    ptm_tensor_free(logits);
    return st;
}

ptm_status bert_forward_tokcls(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *logits = NULL;
    struct bert_hparams hp;
    TRY(bert_hparams(m, &hp));
    TRY(encode(m, "bert.", ctx, &seq));
    TRY(dense(m, "classifier", seq, hp.num_labels, PTM_UNARY_NONE, &logits));
    TRY(ptm_tensor_map_set(ctx->outputs, "logits", logits));
done:
    ptm_tensor_free(seq);
    ptm_tensor_free(logits);
    return st;
}

/* One column of [B, S, 2] as a contiguous [B, S] tensor. */
static ptm_status column(const ptm_model *m, ptm_tensor *logits, int64_t col, ptm_tensor **out)
{
    ptm_tensor *view = NULL;
    int64_t shape[2] = {ptm_tensor_dim(logits, 0), ptm_tensor_dim(logits, 1)};
    ptm_status st = ptm_tensor_narrow(logits, 2, col, 1, &view);
    if (st == PTM_OK) {
        st = ptm_tensor_new(ptm_model_device(m), PTM_F32, 2, shape, out);
    }
    if (st == PTM_OK) {
        st = ptm_op_convert(*out, view);
    }
    ptm_tensor_free(view);
    return st;
}

ptm_status bert_forward_qa(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    ptm_status st;
    ptm_tensor *seq = NULL, *logits = NULL, *start = NULL, *end = NULL;
    TRY(encode(m, "bert.", ctx, &seq));
    TRY(dense(m, "qa_outputs", seq, 2, PTM_UNARY_NONE, &logits));
    TRY(column(m, logits, 0, &start));
    TRY(column(m, logits, 1, &end));
    TRY(ptm_tensor_map_set(ctx->outputs, "start_logits", start));
    TRY(ptm_tensor_map_set(ctx->outputs, "end_logits", end));
done:
    ptm_tensor_free(seq);
    ptm_tensor_free(logits);
    ptm_tensor_free(start);
    ptm_tensor_free(end);
    return st;
}
