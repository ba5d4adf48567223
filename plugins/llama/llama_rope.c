/*
 * llama_rope.c - RoPE parameters as transformers' modeling_rope_utils computes them: the
 * config's rope_parameters (transformers 5) or legacy rope_scaling + rope_theta (4.x files)
 * resolved with HF's precedence, then the inverse frequencies and attention factor of each
 * rope_type (default, linear, dynamic, yarn, llama3). Torch does this in F32 tensors with a
 * few Python doubles; each step below keeps the same precision so angles match HF to the ulp.
 * Applying the rotation is the runtime's op (ptm_op_rope); nothing here touches tensors.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llama.h"

#define LLAMA_PI 3.14159265358979323846 /* math.pi */

/* The rope dict and a few top-level keys, read once per call. */
struct rope_cfg {
    struct json_object *params; /* owned; NULL when the config has none */
    double theta;
    const char *type;
};

static double num(struct json_object *o, const char *key, double dflt, int *found)
{
    struct json_object *v = NULL;
    int ok = o != NULL && json_object_object_get_ex(o, key, &v) &&
             (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
    if (found != NULL) {
        *found = ok;
    }
    return ok ? json_object_get_double(v) : dflt;
}

static double cfg_float(const ptm_config *c, const char *key, double dflt)
{
    double v = dflt;
    if (ptm_config_has(c, key) && ptm_config_get_float(c, key, &v) != PTM_OK) {
        v = dflt;
    }
    return v;
}

/* HF convert_rope_params_to_dict: rope_scaling (legacy kwarg) wins when non-empty, else
 * rope_parameters; rope_theta defaults to the top-level key, then 10000. */
static ptm_status rope_cfg_read(const ptm_model *m, struct rope_cfg *r)
{
    const ptm_config *c = ptm_model_config(m);
    static const char *const keys[] = {"rope_scaling", "rope_parameters"};
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 2 && r->params == NULL; i++) {
        char *text = NULL;
        if (!ptm_config_has(c, keys[i])) {
            continue;
        }
        ptm_status st = ptm_config_get_json(c, keys[i], &text);
        if (st != PTM_OK) {
            json_object_put(r->params);
            return st;
        }
        struct json_object *o = json_tokener_parse(text);
        ptm_free(text);
        if (o != NULL && json_object_is_type(o, json_type_object) &&
            json_object_object_length(o) > 0) {
            r->params = o;
        } else {
            json_object_put(o);
        }
    }
    r->theta = num(r->params, "rope_theta", cfg_float(c, "rope_theta", 10000.0), NULL);
    struct json_object *t = NULL;
    r->type = "default";
    if (r->params != NULL && (json_object_object_get_ex(r->params, "rope_type", &t) ||
                              json_object_object_get_ex(r->params, "type", &t))) {
        if (!json_object_is_type(t, json_type_string)) {
            json_object_put(r->params);
            return ptm_error_set(PTM_E_TYPE, "llama: rope_type must be a string");
        }
        r->type = json_object_get_string(t);
    }
    return PTM_OK;
}

/* inv_freq[i] = 1 / base ** ((2i) / dim) in F32, as torch's arange(0, dim, 2).float() / dim. */
static void default_freqs(float base, int64_t dim, float *inv)
{
    for (int64_t i = 0; i < dim / 2; i++) {
        inv[i] = 1.0f / powf(base, (float)(2 * i) / (float)dim);
    }
}

static float yarn_mscale(double scale, double mscale)
{
    return scale <= 1 ? 1.0f : (float)(0.1 * mscale * log(scale) + 1.0);
}

static double yarn_correction_dim(double rotations, int64_t dim, double base, double max_pos)
{
    return ((double)dim * log(max_pos / (rotations * 2 * LLAMA_PI))) / (2 * log(base));
}

static ptm_status yarn_freqs(const ptm_model *m, const struct llama_hparams *hp,
                             const struct rope_cfg *r, int64_t dim, float *inv, float *attn)
{
    const ptm_config *c = ptm_model_config(m);
    int has_factor = 0, has_attn = 0;
    double orig = num(r->params, "original_max_position_embeddings", (double)hp->max_pos, NULL);
    if (ptm_config_has(c, "original_max_position_embeddings")) { /* Phi3-style top-level key */
        orig = cfg_float(c, "original_max_position_embeddings", orig);
    }
    double factor = num(r->params, "factor", 0, &has_factor);
    if (!has_factor) {
        factor = (double)hp->max_pos / orig;
    }
    double af = num(r->params, "attention_factor", 0, &has_attn);
    double mscale = num(r->params, "mscale", 0, NULL);
    double mscale_all = num(r->params, "mscale_all_dim", 0, NULL);
    if (!has_attn) {
        af = mscale != 0 && mscale_all != 0
                 ? (double)yarn_mscale(factor, mscale) / (double)yarn_mscale(factor, mscale_all)
                 : (double)yarn_mscale(factor, 1);
    }
    double beta_fast = num(r->params, "beta_fast", 0, NULL);
    double beta_slow = num(r->params, "beta_slow", 0, NULL);
    beta_fast = beta_fast != 0 ? beta_fast : 32;
    beta_slow = beta_slow != 0 ? beta_slow : 1;
    struct json_object *tr = NULL;
    int truncate = !(json_object_object_get_ex(r->params, "truncate", &tr) &&
                     json_object_is_type(tr, json_type_boolean) && !json_object_get_boolean(tr));
    double low = yarn_correction_dim(beta_fast, dim, r->theta, orig);
    double high = yarn_correction_dim(beta_slow, dim, r->theta, orig);
    if (truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = low > 0 ? low : 0;
    high = high < (double)(dim - 1) ? high : (double)(dim - 1);
    if (low == high) {
        high += 0.001; /* HF: prevent singularity */
    }
    for (int64_t i = 0; i < dim / 2; i++) {
        float pos_freq = powf((float)r->theta, (float)(2 * i) / (float)dim);
        float extrap = 1.0f / pos_freq, interp = 1.0f / ((float)factor * pos_freq);
        float ramp = ((float)i - (float)low) / (float)(high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float ef = 1.0f - ramp;
        inv[i] = interp * (1.0f - ef) + extrap * ef;
    }
    *attn = (float)af;
    return PTM_OK;
}

static ptm_status llama3_freqs(const struct llama_hparams *hp, const struct rope_cfg *r,
                               int64_t dim, float *inv)
{
    int ok[4];
    double factor = num(r->params, "factor", 0, &ok[0]);
    double lo = num(r->params, "low_freq_factor", 0, &ok[1]);
    double hi = num(r->params, "high_freq_factor", 0, &ok[2]);
    double old = num(r->params, "original_max_position_embeddings", (double)hp->max_pos, &ok[3]);
    if (!ok[0] || !ok[1] || !ok[2]) {
        return ptm_error_set(PTM_E_INVAL, "llama: rope_type llama3 needs factor, low_freq_factor "
                                          "and high_freq_factor");
    }
    double low_wavelen = old / lo, high_wavelen = old / hi;
    default_freqs((float)r->theta, dim, inv);
    for (int64_t i = 0; i < dim / 2; i++) {
        float wavelen = (float)(2 * LLAMA_PI) / inv[i];
        float f = (double)wavelen > low_wavelen ? inv[i] / (float)factor : inv[i];
        float smooth = ((float)old / wavelen - (float)lo) / (float)(hi - lo);
        float smoothed = (1.0f - smooth) * f / (float)factor + smooth * f;
        int medium = !((double)wavelen < high_wavelen) && !((double)wavelen > low_wavelen);
        inv[i] = medium ? smoothed : f;
    }
    return PTM_OK;
}

/* Dynamic NTK: HF recomputes the base once positions pass max_position_embeddings, with
 * seq_len = max(position_ids) + 1 as a tensor, so the base is F32 arithmetic. */
static void dynamic_freqs(const struct llama_hparams *hp, const struct rope_cfg *r, int64_t dim,
                          int64_t max_pos_id, float *inv)
{
    int64_t seq_len = max_pos_id + 1;
    if (seq_len <= hp->max_pos) {
        default_freqs((float)r->theta, dim, inv);
        return;
    }
    float factor = (float)num(r->params, "factor", 1, NULL);
    float scaled = (factor * (float)seq_len / (float)hp->max_pos) - (factor - 1.0f);
    float base = (float)r->theta * powf(scaled, (float)((double)dim / (double)(dim - 2)));
    default_freqs(base, dim, inv);
}

ptm_status llama_rope_freqs(const ptm_model *m, const struct llama_hparams *hp, int64_t max_pos_id,
                            float *inv_freq, int64_t cap, int64_t *rot_dims, float *attn_factor)
{
    struct rope_cfg r;
    ptm_status st = rope_cfg_read(m, &r);
    if (st != PTM_OK) {
        return st;
    }
    double partial = num(r.params, "partial_rotary_factor", 1.0, NULL);
    int64_t dim = (int64_t)((double)hp->head_dim * partial);
    *attn_factor = 1.0f;
    *rot_dims = dim;
    if (dim != hp->head_dim || dim % 2 != 0 || dim / 2 > cap) {
        st = ptm_error_set(PTM_E_UNSUPPORTED,
                           "llama: rotary dims %lld with head_dim %lld (partial_rotary_factor "
                           "%g) are not supported",
                           (long long)dim, (long long)hp->head_dim, partial);
    } else if (strcmp(r.type, "default") == 0) {
        default_freqs((float)r.theta, dim, inv_freq);
    } else if (strcmp(r.type, "linear") == 0) {
        float factor = (float)num(r.params, "factor", 1, NULL);
        default_freqs((float)r.theta, dim, inv_freq);
        for (int64_t i = 0; i < dim / 2; i++) {
            inv_freq[i] /= factor;
        }
    } else if (strcmp(r.type, "dynamic") == 0) {
        dynamic_freqs(hp, &r, dim, max_pos_id, inv_freq);
    } else if (strcmp(r.type, "yarn") == 0) {
        st = yarn_freqs(m, hp, &r, dim, inv_freq, attn_factor);
    } else if (strcmp(r.type, "llama3") == 0) {
        st = llama3_freqs(hp, &r, dim, inv_freq);
    } else {
        st = ptm_error_set(PTM_E_UNSUPPORTED, "llama: rope_type \"%s\" is not supported", r.type);
    }
    json_object_put(r.params);
    return st;
}
