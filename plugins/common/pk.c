/*
 * pk.c - the plugin kit's helpers (see pk.h).
 */
#include "pk.h"

#include <stdio.h>

ptm_status pk_param(const struct pk_declarer *d, const char *name, int32_t ndim, int64_t a,
                    int64_t b, int32_t kind, int64_t padding_idx)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", d->prefix, name);
    int64_t shape[2] = {a, b};
    struct ptm_param_init init = {sizeof init, kind, 0.0f, d->std, padding_idx};
    return ptm_model_declare(d->m, full, ndim, shape, &init);
}

ptm_status pk_linear(const struct pk_declarer *d, const char *name, int64_t out, int64_t in,
                     int has_bias)
{
    char w[200], b[200];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    PK_TRY(pk_param(d, w, 2, out, in, PTM_INIT_NORMAL, -1));
    return has_bias ? pk_param(d, b, 1, out, 0, PTM_INIT_ZEROS, -1) : PTM_OK;
}

ptm_tensor *pk_param_at(const ptm_model *m, const char *prefix, const char *fmt, long long layer)
{
    char rel[160], full[200];
    snprintf(rel, sizeof rel, fmt, layer);
    snprintf(full, sizeof full, "%s%s", prefix, rel);
    return ptm_model_param(m, full);
}

ptm_status pk_new3(ptm_device *dev, int64_t a, int64_t b, int64_t c, ptm_tensor **t)
{
    int64_t shape[3] = {a, b, c};
    return ptm_tensor_new(dev, PTM_F32, 3, shape, t);
}

ptm_status pk_view4(ptm_tensor *t, int64_t b, int64_t s, int64_t h, int64_t d, ptm_tensor **out)
{
    int64_t shape[4] = {b, s, h, d};
    return ptm_tensor_reshape(t, 4, shape, out);
}
