/*
 * pk.h - the plugin kit: small helpers the bundled architecture plugins share (declaring
 * parameters with HF init specs under a class prefix, finding per-layer parameters, making
 * activation tensors and [B, S, H, D] views). It is a static library compiled into each
 * plugin with hidden visibility, so nothing crosses the plugin ABI and each .so stays self
 * contained; it uses only the public SDK, like a third party's plugin.
 */
#ifndef PTM_PK_H
#define PTM_PK_H

#include "ptm/ptm.h"

/* Return the status of x from the calling function unless it is PTM_OK. */
#define PK_TRY(x)                                                                                  \
    do {                                                                                           \
        ptm_status pk_st_ = (x);                                                                   \
        if (pk_st_ != PTM_OK) {                                                                    \
            return pk_st_;                                                                         \
        }                                                                                          \
    } while (0)

/* Declares parameters of model m under prefix ("" for a base class, "bert." for a head);
 * normal inits use std (the config's initializer_range). */
struct pk_declarer {
    ptm_model *m;
    const char *prefix;
    float std;
};

/* One parameter: ndim 1 ([a]) or 2 ([a, b]), init kind PTM_INIT_*, padding_idx or -1. */
ptm_status pk_param(const struct pk_declarer *d, const char *name, int32_t ndim, int64_t a,
                    int64_t b, int32_t kind, int64_t padding_idx);

/* An nn.Linear: name.weight [out, in] normal(0, std), and name.bias [out] zeros if has_bias. */
ptm_status pk_linear(const struct pk_declarer *d, const char *name, int64_t out, int64_t in,
                     int has_bias);

/* The parameter prefix + fmt (fmt may hold one %lld, the layer); NULL if undeclared. */
ptm_tensor *pk_param_at(const ptm_model *m, const char *prefix, const char *fmt, long long layer);

/* A new F32 [a, b, c] tensor on dev. */
ptm_status pk_new3(ptm_device *dev, int64_t a, int64_t b, int64_t c, ptm_tensor **t);

/* A [b, s, h, d] view of contiguous t. */
ptm_status pk_view4(ptm_tensor *t, int64_t b, int64_t s, int64_t h, int64_t d, ptm_tensor **out);

#endif
