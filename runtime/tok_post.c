/*
 * tok_post.c - tokenizer.json post-processors: TemplateProcessing (single and pair templates,
 * per-piece type ids, multi-id special tokens), BertProcessing and Sequence, plus HF's
 * behaviour without one (plain concatenation). They merge the model's encodings of one
 * sequence or a pair into the final encoding and mark what they add in the special tokens
 * mask. RobertaProcessing (<s> A </s> </s> B </s>, every type id 0) and ByteLevel (which only
 * trims offsets: a pass-through here) too. Sequence runs its children in turn, each on the
 * previous one's output as a single sequence; ByteLevel children are left out, since HF
 * passes the pair through them unmerged.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"

enum post_kind { PP_TEMPLATE, PP_BERT, PP_SEQUENCE, PP_BYTELEVEL, PP_ROBERTA };

struct tpl_piece {
    int is_special;
    int seq;   /* Sequence piece: 0 = A, 1 = B */
    size_t sp; /* SpecialToken piece: index into specials */
    int32_t type_id;
};
struct tpl_special {
    char *name;
    int32_t *ids;
    size_t n_ids;
};

struct post {
    struct ptm__tok_post base;
    enum post_kind kind;
    struct tpl_piece *tpl[2]; /* single, pair */
    size_t n_tpl[2];
    struct tpl_special *sp;
    size_t n_sp;
    int32_t cls_id, sep_id; /* BertProcessing */
    struct ptm__tok_post **kids;
    size_t n_kids;
};

static ptm_status append(struct ptm__tok_enc *out, const struct ptm__tok_enc *e, int32_t type_id,
                         int keep_types)
{
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < e->n && st == PTM_OK; i++) {
        st =
            ptm__tok_enc_push(out, e->ids[i], keep_types ? e->type_ids[i] : type_id, e->special[i]);
    }
    return st;
}

ptm_status ptm__tok_post_default(const struct ptm__tok_enc *a, const struct ptm__tok_enc *b,
                                 struct ptm__tok_enc *out)
{
    ptm_status st = append(out, a, 0, 1);
    if (st == PTM_OK && b != NULL) {
        st = append(out, b, 0, 1);
    }
    return st;
}

static size_t post_n_added(const struct ptm__tok_post *base, int is_pair)
{
    const struct post *p = (const struct post *)base;
    size_t n = 0;
    switch (p->kind) {
    case PP_TEMPLATE:
        for (size_t i = 0; i < p->n_tpl[is_pair]; i++) {
            if (p->tpl[is_pair][i].is_special) {
                n += p->sp[p->tpl[is_pair][i].sp].n_ids;
            }
        }
        return n;
    case PP_BERT:
        return is_pair ? 3 : 2;
    case PP_ROBERTA:
        return is_pair ? 4 : 2;
    case PP_BYTELEVEL:
        return 0;
    case PP_SEQUENCE:
        for (size_t i = 0; i < p->n_kids; i++) {
            n += p->kids[i]->ops->n_added(p->kids[i], is_pair && i == 0);
        }
        return n;
    }
    return 0;
}

static ptm_status template_process(const struct post *p, const struct ptm__tok_enc *a,
                                   const struct ptm__tok_enc *b, int add_special,
                                   struct ptm__tok_enc *out)
{
    int pair = b != NULL;
    ptm_status st = PTM_OK;
    for (size_t i = 0; i < p->n_tpl[pair] && st == PTM_OK; i++) {
        const struct tpl_piece *pc = &p->tpl[pair][i];
        if (!pc->is_special) {
            const struct ptm__tok_enc *e = pc->seq == 0 ? a : b;
            if (e != NULL) {
                st = append(out, e, pc->type_id, 0);
            }
        } else if (add_special) {
            const struct tpl_special *sp = &p->sp[pc->sp];
            for (size_t k = 0; k < sp->n_ids && st == PTM_OK; k++) {
                st = ptm__tok_enc_push(out, sp->ids[k], pc->type_id, 1);
            }
        }
    }
    return st;
}

static ptm_status cls_sep_process(const struct post *p, const struct ptm__tok_enc *a,
                                  const struct ptm__tok_enc *b, int add_special,
                                  struct ptm__tok_enc *out)
{
    if (!add_special) {
        return ptm__tok_post_default(a, b, out);
    }
    ptm_status st = ptm__tok_enc_push(out, p->cls_id, 0, 1);
    if (st == PTM_OK) {
        st = append(out, a, 0, 0);
    }
    if (st == PTM_OK) {
        st = ptm__tok_enc_push(out, p->sep_id, 0, 1);
    }
    if (st == PTM_OK && b != NULL) {
        st = append(out, b, 1, 0);
        if (st == PTM_OK) {
            st = ptm__tok_enc_push(out, p->sep_id, 1, 1);
        }
    }
    return st;
}

/* HF RobertaProcessing: every type id 0, special tokens or not. */
static ptm_status roberta_process(const struct post *p, const struct ptm__tok_enc *a,
                                  const struct ptm__tok_enc *b, int add_special,
                                  struct ptm__tok_enc *out)
{
    ptm_status st = PTM_OK;
    const struct ptm__tok_enc *seq[2] = {a, b};
    for (int k = 0; k < 2 && st == PTM_OK; k++) {
        if (seq[k] == NULL) {
            continue;
        }
        if (add_special) {
            st = ptm__tok_enc_push(out, k == 0 ? p->cls_id : p->sep_id, 0, 1);
        }
        if (st == PTM_OK) {
            st = append(out, seq[k], 0, 0);
        }
        if (st == PTM_OK && add_special) {
            st = ptm__tok_enc_push(out, p->sep_id, 0, 1);
        }
    }
    return st;
}

static ptm_status post_process(const struct ptm__tok_post *base, const struct ptm__tok_enc *a,
                               const struct ptm__tok_enc *b, int add_special,
                               struct ptm__tok_enc *out)
{
    const struct post *p = (const struct post *)base;
    switch (p->kind) {
    case PP_TEMPLATE:
        return template_process(p, a, b, add_special, out);
    case PP_BERT:
        return cls_sep_process(p, a, b, add_special, out);
    case PP_ROBERTA:
        return roberta_process(p, a, b, add_special, out);
    case PP_BYTELEVEL:
        return ptm__tok_post_default(a, b, out);
    case PP_SEQUENCE:
        break;
    }
    if (p->n_kids == 0) {
        return ptm__tok_post_default(a, b, out);
    }
    /* Children after the first see the merged result as one sequence. */
    struct ptm__tok_enc cur = {0}, next = {0};
    ptm_status st = p->kids[0]->ops->process(p->kids[0], a, b, add_special, &cur);
    for (size_t i = 1; i < p->n_kids && st == PTM_OK; i++) {
        next.n = 0;
        st = p->kids[i]->ops->process(p->kids[i], &cur, NULL, add_special, &next);
        struct ptm__tok_enc t = cur;
        cur = next;
        next = t;
    }
    if (st == PTM_OK) {
        st = append(out, &cur, 0, 1);
    }
    ptm__free(cur.ids);
    ptm__free(cur.type_ids);
    ptm__free(cur.special);
    ptm__free(next.ids);
    ptm__free(next.type_ids);
    ptm__free(next.special);
    return st;
}

static void post_destroy(struct ptm__tok_post *base)
{
    struct post *p = (struct post *)base;
    for (size_t i = 0; i < p->n_sp; i++) {
        ptm__free(p->sp[i].name);
        ptm__free(p->sp[i].ids);
    }
    for (size_t i = 0; i < p->n_kids; i++) {
        ptm__tok_post_free(p->kids[i]);
    }
    ptm__free(p->sp);
    ptm__free(p->tpl[0]);
    ptm__free(p->tpl[1]);
    ptm__free(p->kids);
    ptm__free(p);
}

static const struct ptm__tok_post_ops post_ops = {post_n_added, post_process, post_destroy};

/* special_tokens: {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]}, ...} */
static ptm_status load_specials(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct post *p)
{
    json_object *obj;
    ptm_status st = ptm__tok_jmember(c, j, path, "special_tokens", json_type_object, 0, &obj);
    if (st != PTM_OK || obj == NULL) {
        return st;
    }
    size_t n = (size_t)json_object_object_length(obj);
    p->sp = ptm__calloc(n, sizeof *p->sp);
    if (p->sp == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    json_object_object_foreach(obj, key, val)
    {
        char sub[512];
        json_object *ids;
        snprintf(sub, sizeof sub, "%s.special_tokens[\"%s\"]", path, key);
        if (!json_object_is_type(val, json_type_object)) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got %s", c->file, sub,
                             ptm__tok_json_type_name(val));
        }
        st = ptm__tok_jmember(c, val, sub, "ids", json_type_array, 1, &ids);
        if (st != PTM_OK) {
            return st;
        }
        struct tpl_special *sp = &p->sp[p->n_sp++];
        sp->name = ptm__strdup(key);
        size_t k = json_object_array_length(ids);
        sp->ids = ptm__calloc(k, sizeof *sp->ids);
        if (sp->name == NULL || sp->ids == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, sub);
        }
        for (size_t i = 0; i < k; i++) {
            json_object *e = json_object_array_get_idx(ids, i);
            int64_t v = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || v < 0 || v >= INT32_MAX) {
                return ptm__fail(PTM_E_FORMAT, "%s: %s.ids[%zu]: expected token id, got %s",
                                 c->file, sub, i, json_object_get_string(e));
            }
            sp->ids[sp->n_ids++] = (int32_t)v;
        }
    }
    return PTM_OK;
}

static ptm_status load_piece(const struct ptm__tok_jctx *c, json_object *e, const char *sub,
                             const struct post *p, struct tpl_piece *pc)
{
    json_object *body = NULL;
    const char *id;
    int64_t type_id;
    pc->is_special = json_object_object_get_ex(e, "SpecialToken", &body);
    if (!pc->is_special && !json_object_object_get_ex(e, "Sequence", &body)) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: %s: expected {\"SpecialToken\": ...} or "
                         "{\"Sequence\": ...}",
                         c->file, sub);
    }
    char sub2[512];
    snprintf(sub2, sizeof sub2, "%s.%s", sub, pc->is_special ? "SpecialToken" : "Sequence");
    if (!json_object_is_type(body, json_type_object)) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got %s", c->file, sub2,
                         ptm__tok_json_type_name(body));
    }
    ptm_status st = ptm__tok_jstr(c, body, sub2, "id", &id, NULL);
    if (st == PTM_OK) {
        st = ptm__tok_jint(c, body, sub2, "type_id", 0, INT32_MAX, 0, &type_id);
    }
    if (st != PTM_OK) {
        return st;
    }
    pc->type_id = (int32_t)type_id;
    if (!pc->is_special) {
        if (strcmp(id, "A") != 0 && strcmp(id, "B") != 0) {
            return ptm__fail(PTM_E_FORMAT, "%s: %s.id: expected \"A\" or \"B\", got \"%s\"",
                             c->file, sub2, id);
        }
        pc->seq = id[0] == 'B';
        return PTM_OK;
    }
    for (size_t i = 0; i < p->n_sp; i++) {
        if (strcmp(p->sp[i].name, id) == 0) {
            pc->sp = i;
            return PTM_OK;
        }
    }
    return ptm__fail(PTM_E_FORMAT, "%s: %s.id: special token \"%s\" not in special_tokens", c->file,
                     sub2, id);
}

static ptm_status load_template(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct post *p)
{
    static const char *keys[2] = {"single", "pair"};
    ptm_status st = load_specials(c, j, path, p);
    for (int t = 0; t < 2 && st == PTM_OK; t++) {
        json_object *arr;
        st = ptm__tok_jmember(c, j, path, keys[t], json_type_array, 1, &arr);
        if (st != PTM_OK) {
            return st;
        }
        size_t n = json_object_array_length(arr);
        p->tpl[t] = ptm__calloc(n, sizeof *p->tpl[t]);
        if (p->tpl[t] == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
        }
        for (size_t i = 0; i < n && st == PTM_OK; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s[%zu]", path, keys[t], i);
            st = load_piece(c, json_object_array_get_idx(arr, i), sub, p, &p->tpl[t][i]);
            p->n_tpl[t] = i + 1;
        }
    }
    return st;
}

/* BertProcessing: "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]. */
static ptm_status load_pair_id(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                               const char *key, int32_t *id)
{
    json_object *arr, *e;
    ptm_status st = ptm__tok_jmember(c, j, path, key, json_type_array, 1, &arr);
    if (st != PTM_OK) {
        return st;
    }
    e = json_object_array_length(arr) == 2 ? json_object_array_get_idx(arr, 1) : NULL;
    if (e == NULL || !json_object_is_type(e, json_type_int) || json_object_get_int64(e) < 0 ||
        json_object_get_int64(e) >= INT32_MAX) {
        return ptm__fail(PTM_E_FORMAT, "%s: %s.%s: expected [token, id]", c->file, path, key);
    }
    *id = (int32_t)json_object_get_int64(e);
    return PTM_OK;
}

static ptm_status load_sequence(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                struct post *p)
{
    json_object *arr;
    ptm_status st = ptm__tok_jmember(c, j, path, "processors", json_type_array, 1, &arr);
    if (st != PTM_OK) {
        return st;
    }
    size_t k = json_object_array_length(arr);
    p->kids = ptm__calloc(k ? k : 1, sizeof *p->kids);
    if (p->kids == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    for (size_t i = 0; i < k && st == PTM_OK; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
        st =
            ptm__tok_post_from_json(c, json_object_array_get_idx(arr, i), sub, &p->kids[p->n_kids]);
        if (st == PTM_OK && p->kids[p->n_kids] == NULL) {
            st = ptm__fail(PTM_E_FORMAT, "%s: %s: expected object, got null", c->file, sub);
        }
        if (p->kids[p->n_kids] != NULL &&
            ((const struct post *)p->kids[p->n_kids])->kind == PP_BYTELEVEL) {
            ptm__tok_post_free(p->kids[p->n_kids]);
            p->kids[p->n_kids] = NULL;
        } else {
            p->n_kids++;
        }
    }
    return st;
}

ptm_status ptm__tok_post_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                   struct ptm__tok_post **out)
{
    *out = NULL;
    if (j == NULL || json_object_is_type(j, json_type_null)) {
        return PTM_OK;
    }
    const char *type;
    ptm_status st = ptm__tok_jtype(c, j, path, &type);
    if (st != PTM_OK) {
        return st;
    }
    struct post *p = ptm__calloc(1, sizeof *p);
    if (p == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: %s: out of memory", c->file, path);
    }
    p->base.ops = &post_ops;
    if (strcmp(type, "TemplateProcessing") == 0) {
        p->kind = PP_TEMPLATE;
        st = load_template(c, j, path, p);
    } else if (strcmp(type, "BertProcessing") == 0) {
        p->kind = PP_BERT;
        st = load_pair_id(c, j, path, "cls", &p->cls_id);
        if (st == PTM_OK) {
            st = load_pair_id(c, j, path, "sep", &p->sep_id);
        }
    } else if (strcmp(type, "RobertaProcessing") == 0) {
        p->kind = PP_ROBERTA;
        st = load_pair_id(c, j, path, "cls", &p->cls_id);
        if (st == PTM_OK) {
            st = load_pair_id(c, j, path, "sep", &p->sep_id);
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        p->kind = PP_BYTELEVEL;
    } else if (strcmp(type, "Sequence") == 0) {
        p->kind = PP_SEQUENCE;
        st = load_sequence(c, j, path, p);
    } else {
        st = ptm__tok_junsupported(c, path, "post-processor", type);
    }
    if (st != PTM_OK) {
        post_destroy(&p->base);
        return st;
    }
    *out = &p->base;
    return PTM_OK;
}

void ptm__tok_post_free(struct ptm__tok_post *p)
{
    if (p != NULL) {
        p->ops->destroy(p);
    }
}
