/*
 * model_quant.c - weight quantization of a loaded model: ptm_load_opts.quantize = "int8" turns
 * the eligible matrix weights into PTM_Q8_0 (blocks of 32 int8 with an F16 scale, layout in
 * ptm_tensor.h) through the backend's convert kernel, and ptm_model_dequantize turns them back.
 *
 * Eligible: 2-D parameters with a float tensor, not kept in F32 by the class, not an embedding
 * table (the class's input embeddings, or a name ending in "embeddings.weight"), with a row
 * length that is a multiple of 32, and in no tied pair, save one: an output head tied to the
 * input embeddings (T5 v1.0's lm_head, LLaMA with tie_word_embeddings) gets a Q8_0 copy of
 * its own while the table the gather reads stays float, as llama.cpp quantizes its output
 * matrix; the pair stays tied (saving writes the table once, dequantize re-shares it, and
 * any edit of the table re-ties the head to the new one). So every LM head is quantized, as
 * llama.cpp's Q8_0 does; vectors (norms, biases) never are. The architecture sees the same
 * parameter, now of dtype PTM_Q8_0, and its matmuls run the backend's int8 kernels; the
 * parameter's declared dtype is kept, and dequantize converts back to it. This file knows no
 * architecture: the rule above uses only what the class descriptor declares.
 */
#include <stdatomic.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "model.h"
#include "st_copy.h"
#include "tensor.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int in_tied_pair(const ptm_model *m, size_t i)
{
    if (m->params[i].tied_to >= 0) {
        return 1;
    }
    for (size_t k = 0; k < m->n_params; k++) {
        if (m->params[k].tied_to == (long)i) {
            return 1;
        }
    }
    return 0;
}

/* The class's output embeddings, tied to a source: the head that gets a copy of its own. */
static int tied_head(const ptm_model *m, size_t i)
{
    const struct ptm__param *p = &m->params[i];
    return p->tied_to >= 0 && m->cls->output_embeddings != NULL &&
           strcmp(p->name, m->cls->output_embeddings) == 0;
}

int ptm__quantize_candidate(const ptm_model *m, const struct ptm__param *p)
{
    if (p->ndim != 2 || p->keep_f32 || p->shape[1] % 32 != 0 || p->shape[1] == 0) {
        return 0;
    }
    return !((m->cls->input_embeddings && strcmp(p->name, m->cls->input_embeddings) == 0) ||
             ends_with(p->name, "embeddings.weight"));
}

static int eligible(const ptm_model *m, size_t i)
{
    const struct ptm__param *p = &m->params[i];
    if (p->t == NULL || !ptm__quantize_candidate(m, p)) {
        return 0;
    }
    ptm_dtype dt = ptm_tensor_dtype(p->t);
    if (dt != PTM_F32 && dt != PTM_F16 && dt != PTM_BF16) {
        return 0;
    }
    return tied_head(m, i) || !in_tied_pair(m, i);
}

ptm_status ptm__quantize_wanted(const char *how, int *on)
{
    *on = 0;
    if (how == NULL || how[0] == '\0' || strcmp(how, "none") == 0) {
        return PTM_OK;
    }
    if (strcmp(how, "int8") != 0 && strcmp(how, "q8_0") != 0) {
        return ptm__fail(PTM_E_INVAL, "quantize \"%s\": expected \"int8\" (or none)", how);
    }
    *on = 1;
    return PTM_OK;
}

/* Give p a new tensor of dtype dt converted from its current one. */
static ptm_status reconvert(struct ptm__param *p, ptm_dtype dt)
{
    ptm_tensor *t = NULL;
    ptm_status st = ptm_tensor_new(ptm_tensor_device(p->t), dt, p->ndim, p->shape, &t);
    if (st == PTM_OK) {
        st = ptm_op_convert(t, p->t);
    }
    if (st != PTM_OK) {
        ptm__error_prefix(p->name);
        ptm_tensor_free(t);
        return st;
    }
    ptm_tensor_free(p->t);
    p->t = t;
    return PTM_OK;
}

ptm_status ptm__model_quantize(ptm_model *m, const char *how)
{
    int want = 0;
    ptm_status st0 = ptm__quantize_wanted(how, &want);
    if (st0 != PTM_OK || !want) {
        return st0;
    }
    size_t n = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        if (!eligible(m, i)) {
            continue;
        }
        struct ptm__param *p = &m->params[i];
        /* The last reference to checkpoint bytes: their pages can go once converted, so the
         * resident set ends near the int8 size rather than int8 plus the whole source. */
        const void *src =
            p->mapped != NULL && ptm_tensor_data(p->t) == p->mapped && atomic_load(&p->t->refs) == 1
                ? p->mapped
                : NULL;
        ptm_status st = reconvert(p, PTM_Q8_0);
        if (st != PTM_OK) {
            return st;
        }
        ptm__st_source_drop(src, src ? p->mapped_bytes : 0);
        p->mapped = NULL;
        m->quantized = 1;
        n++;
    }
    PTM_INFO("model: quantized %zu weight matrices to int8 (Q8_0)", n);
    return PTM_OK;
}

ptm_status ptm_model_dequantize(ptm_model *m)
{
    ptm__error_clear();
    if (m == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_model_dequantize: model is NULL");
    }
    for (size_t i = 0; i < m->n_params; i++) {
        struct ptm__param *p = &m->params[i];
        if (p->t == NULL || ptm_tensor_dtype(p->t) != PTM_Q8_0) {
            continue;
        }
        if (p->tied_to >= 0) { /* a tied head's own copy: share the source's again */
            ptm_tensor_free(p->t);
            p->t = ptm_tensor_retain(m->params[p->tied_to].t);
            continue;
        }
        ptm_status st = reconvert(p, p->dtype);
        if (st != PTM_OK) {
            return st;
        }
    }
    m->quantized = 0;
    return PTM_OK;
}

const char *ptm_model_quantization(const ptm_model *m)
{
    return m != NULL && m->quantized ? "int8" : NULL;
}
