/*
 * tok_unigram.c - the Unigram model of tokenizer.json ("model": {"type": "Unigram"}, T5 and
 * other SentencePiece models): pieces with log-probability scores, and HF's Viterbi search for
 * the best segmentation of one word (encode_optimized): over byte positions, every vocab piece
 * starting there is tried shortest first and replaces the best path ending where it ends only
 * when strictly better; a character with no one-character piece costs min_score - 10 as
 * unk_id. Adjacent unknown pieces are fused (HF always fuses for Unigram), then each piece
 * becomes its id, <0xXX> byte tokens under byte_fallback, or unk_id. Per-call state lives in
 * the scratch, so the model is immutable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

#define UNK_PENALTY 10.0

/* A byte trie over the pieces: edges (parent node, byte) -> child in an open-addressing table;
 * the search walks it once per start position and stops at the first missing edge. */
struct edge {
    uint32_t key; /* parent * 256 + byte + 1; 0 = empty */
    int32_t child;
};

struct unigram {
    struct ptm__tok_model base;
    struct ptm__tok_vocab vocab;
    struct edge *edges;
    size_t edge_mask;
    int32_t *node_piece; /* node -> piece id, or -1 */
    size_t n_nodes;
    double *scores;
    double unk_score; /* min_score - UNK_PENALTY */
    int32_t unk_id;   /* -1: none */
    int32_t byte_ids[256];
    int byte_fallback;
};

struct node {
    double score;
    int64_t start; /* -1: no path ends here yet */
    int32_t id;
};

static size_t edge_slot(const struct unigram *m, uint32_t key)
{
    size_t i = (size_t)((key * 0x9E3779B1u) >> 7) & m->edge_mask;
    while (m->edges[i].key != 0 && m->edges[i].key != key) {
        i = (i + 1) & m->edge_mask;
    }
    return i;
}

static int32_t child_of(const struct unigram *m, int32_t node, unsigned char b)
{
    const struct edge *e = &m->edges[edge_slot(m, (uint32_t)node * 256u + b + 1u)];
    return e->key != 0 ? e->child : -1;
}

struct piece {
    size_t start, end;
    int is_unk;
};

static void relax(struct node *target, int64_t start, int32_t id, double score)
{
    if (target->start < 0 || score > target->score) {
        target->score = score;
        target->start = start;
        target->id = id;
    }
}

static ptm_status viterbi(const struct unigram *m, const char *b, size_t nb, struct node *lat)
{
    for (size_t i = 0; i <= nb; i++) {
        lat[i] = (struct node){0.0, -1, 0};
    }
    for (size_t at = 0; at < nb;) {
        double here = lat[at].score;
        size_t mblen, k = at + 1;
        while (k < nb && ((unsigned char)b[k] & 0xC0) == 0x80) {
            k++;
        }
        mblen = k - at;
        int has_single = 0;
        int32_t node = 0;
        for (size_t end = at; end < nb && (node = child_of(m, node, (unsigned char)b[end])) >= 0;) {
            end++;
            int32_t id = m->node_piece[node];
            if (id >= 0) {
                relax(&lat[end], (int64_t)at, id, m->scores[id] + here);
                has_single |= end - at == mblen;
            }
        }
        if (!has_single) {
            if (m->unk_id < 0) {
                return ptm__fail(PTM_E_FORMAT, "tokenizer: Unigram model has no unk_id and a "
                                               "character is not in its vocab");
            }
            relax(&lat[at + mblen], (int64_t)at, m->unk_id, m->unk_score + here);
        }
        at += mblen;
    }
    return PTM_OK;
}

/* One piece b[0..n) to ids: itself, its bytes (byte_fallback), or unk_id. */
static ptm_status emit_piece(const struct unigram *m, const char *b, size_t n,
                             struct ptm__tok_enc *out)
{
    int32_t id = ptm__tok_vocab_find(&m->vocab, b, n);
    if (id >= 0) {
        return ptm__tok_enc_push(out, id, 0, 0);
    }
    if (m->byte_fallback) {
        size_t k = 0;
        while (k < n && m->byte_ids[(unsigned char)b[k]] >= 0) {
            k++;
        }
        if (k == n) {
            ptm_status st = PTM_OK;
            for (k = 0; k < n && st == PTM_OK; k++) {
                st = ptm__tok_enc_push(out, m->byte_ids[(unsigned char)b[k]], 0, 0);
            }
            return st;
        }
    }
    if (m->unk_id < 0) {
        return ptm__fail(PTM_E_FORMAT, "tokenizer: Unigram model has no unk_id for a piece");
    }
    return ptm__tok_enc_push(out, m->unk_id, 0, 0);
}

static ptm_status uni_tokenize(const struct ptm__tok_model *base, struct ptm__tok_scratch *s,
                               const uint32_t *cps, size_t n, struct ptm__tok_enc *out)
{
    const struct unigram *m = (const struct unigram *)base;
    s->bytes.n = 0;
    ptm_status st = ptm__tok_utf8_encode(cps, n, &s->bytes);
    size_t nb = s->bytes.n;
    if (st == PTM_OK) {
        st = ptm__tok_scratch_model(s, (nb + 1) * (sizeof(struct node) + sizeof(struct piece)));
    }
    if (st == PTM_OK) {
        st = viterbi(m, s->bytes.v, nb, s->model);
    }
    if (st != PTM_OK || nb == 0) {
        return st;
    }
    /* Walk the best path back; a run of unknowns becomes one piece. */
    const struct node *lat = s->model;
    struct piece *pc = (struct piece *)(lat + nb + 1);
    size_t k = 0;
    for (size_t end = nb; end > 0;) {
        size_t start = (size_t)lat[end].start;
        int unk = m->unk_id >= 0 && lat[end].id == m->unk_id;
        if (unk && k > 0 && pc[k - 1].is_unk) {
            pc[k - 1].start = start;
        } else {
            pc[k++] = (struct piece){start, end, unk};
        }
        end = start;
    }
    for (size_t i = k; i-- > 0 && st == PTM_OK;) {
        st = emit_piece(m, s->bytes.v + pc[i].start, pc[i].end - pc[i].start, out);
    }
    return st;
}

static const struct ptm__tok_vocab *uni_vocab(const struct ptm__tok_model *base)
{
    return &((const struct unigram *)base)->vocab;
}

static void uni_destroy(struct ptm__tok_model *base)
{
    struct unigram *m = (struct unigram *)base;
    ptm__tok_vocab_free(&m->vocab);
    ptm__free(m->scores);
    ptm__free(m->edges);
    ptm__free(m->node_piece);
    ptm__free(m);
}

static const struct ptm__tok_model_ops uni_ops = {uni_tokenize, uni_vocab, uni_destroy};

/* 10^k, correctly rounded, as serde_json's POW10 table holds it. */
static double pow10_of(int k)
{
    char buf[16];
    snprintf(buf, sizeof buf, "1e%d", k);
    return strtod(buf, NULL);
}

/*
 * A JSON number as HF reads it. serde_json (without its float_roundtrip feature, as
 * `tokenizers` builds it) keeps at most the digits that fit a u64, converts that to f64 and
 * multiplies or divides by a power of ten, so a 17-digit score can land one ulp away from the
 * correctly rounded value; Viterbi ties then break differently. This mirrors that parse
 * (serde_json de.rs: parse_integer, parse_decimal, parse_exponent, f64_from_parts).
 */
static double serde_f64(const char *p)
{
    const uint64_t max10 = UINT64_MAX / 10, last = UINT64_MAX % 10;
    int positive = *p != '-', overflow = 0;
    p += !positive;
    uint64_t sig = 0;
    long exp = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        overflow |= sig >= max10 && (sig > max10 || d > last);
        if (overflow) {
            exp++;
        } else {
            sig = sig * 10 + d;
        }
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            uint64_t d = (uint64_t)(*p - '0');
            overflow |= sig >= max10 && (sig > max10 || d > last);
            if (!overflow) {
                sig = sig * 10 + d;
                exp--;
            }
        }
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        int neg = *p == '-';
        p += *p == '-' || *p == '+';
        long e = 0;
        for (; *p >= '0' && *p <= '9' && e < 100000; p++) {
            e = e * 10 + (*p - '0');
        }
        exp += neg ? -e : e;
    }
    double f = (double)sig;
    while (exp < -308 && f != 0.0) {
        f /= 1e308;
        exp += 308;
    }
    if (exp >= -308 && exp <= 308) {
        f = exp >= 0 ? f * pow10_of((int)exp) : f / pow10_of((int)-exp);
    }
    return positive ? f : -f;
}

/* vocab: [["piece", score], ...]; the id is the position. */
static ptm_status load_vocab(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                             struct unigram *m)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "vocab", json_type_array, 1, &arr);
    size_t n = arr != NULL ? json_object_array_length(arr) : 0;
    if (st == PTM_OK && n > PTM__TOK_MAX_ID) {
        st = ptm__fail(PTM_E_FORMAT, "%s: %s.vocab: %zu pieces, at most %d", c->file, path, n,
                       PTM__TOK_MAX_ID);
    }
    if (st == PTM_OK) {
        st = ptm__tok_vocab_init(&m->vocab, n, n);
    }
    m->scores = st == PTM_OK ? ptm__calloc(n ? n : 1, sizeof *m->scores) : NULL;
    if (st == PTM_OK && m->scores == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: %s.vocab: out of memory", c->file, path);
    }
    double min_score = 1.0 / 0.0;
    for (size_t i = 0; i < n && st == PTM_OK; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        json_object *p = json_object_array_get_idx(e, 0), *sc = json_object_array_get_idx(e, 1);
        if (!json_object_is_type(e, json_type_array) || json_object_array_length(e) != 2 ||
            !json_object_is_type(p, json_type_string) ||
            !(json_object_is_type(sc, json_type_double) ||
              json_object_is_type(sc, json_type_int))) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.vocab[%zu]: expected [\"piece\", score]",
                             c->file, path, i);
        }
        size_t len = (size_t)json_object_get_string_len(p);
        st = ptm__tok_vocab_add(&m->vocab, json_object_get_string(p), len, (int32_t)i);
        if (st == PTM_E_EXISTS) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s.vocab[%zu]: piece \"%s\" repeated", c->file, path,
                           i, json_object_get_string(p));
        }
        m->scores[i] = json_object_is_type(sc, json_type_double)
                           ? serde_f64(json_object_get_string(sc))
                           : json_object_get_double(sc);
        min_score = m->scores[i] < min_score ? m->scores[i] : min_score;
    }
    m->unk_score = min_score - UNK_PENALTY;
    return st;
}

static ptm_status build_trie(const struct ptm__tok_jctx *c, const char *path, struct unigram *m)
{
    size_t total = 1;
    for (size_t i = 0; i < m->vocab.n_ids; i++) {
        total += m->vocab.lens[i];
    }
    size_t slots = 16;
    while (slots < 2 * total) {
        slots *= 2;
    }
    if (total >= UINT32_MAX / 256) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.vocab: %zu bytes of pieces is too many", c->file,
                         path, total);
    }
    m->edges = ptm__calloc(slots, sizeof *m->edges);
    m->node_piece = ptm__malloc(total * sizeof *m->node_piece);
    if (m->edges == NULL || m->node_piece == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s.vocab: out of memory for the piece trie", c->file,
                         path);
    }
    m->edge_mask = slots - 1;
    m->node_piece[0] = -1;
    m->n_nodes = 1;
    for (size_t i = 0; i < m->vocab.n_ids; i++) {
        int32_t node = 0;
        for (size_t k = 0; k < m->vocab.lens[i]; k++) {
            uint32_t key = (uint32_t)node * 256u + (unsigned char)m->vocab.tokens[i][k] + 1u;
            struct edge *e = &m->edges[edge_slot(m, key)];
            if (e->key == 0) {
                e->key = key;
                e->child = (int32_t)m->n_nodes;
                m->node_piece[m->n_nodes++] = -1;
            }
            node = e->child;
        }
        if (m->vocab.lens[i] > 0) {
            m->node_piece[node] = (int32_t)i;
        }
    }
    return PTM_OK;
}

ptm_status ptm__tok_unigram_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                      const char *path, struct ptm__tok_model **out)
{
    *out = NULL;
    struct unigram *m = ptm__calloc(1, sizeof *m);
    if (m == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    m->base.ops = &uni_ops;
    int64_t unk;
    json_object *u = NULL;
    ptm_status st = load_vocab(c, j, path, m);
    if (st == PTM_OK) {
        st = build_trie(c, path, m);
    }
    if (st == PTM_OK) {
        st = ptm__tok_jbool(c, j, path, "byte_fallback", 0, &m->byte_fallback);
    }
    if (st == PTM_OK && json_object_object_get_ex(j, "unk_id", &u) && u != NULL) {
        st = ptm__tok_jint(c, j, path, "unk_id", 0, (int64_t)m->vocab.n_ids - 1, 0, &unk);
        m->unk_id = (int32_t)unk;
    } else {
        m->unk_id = -1;
    }
    if (st != PTM_OK) {
        uni_destroy(&m->base);
        return st;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = ptm__tok_vocab_find(&m->vocab, name, 6);
    }
    *out = &m->base;
    return PTM_OK;
}
