/*
 * kview.c - the layout questions every backend asks of a struct ptm_kview (how many elements,
 * packed or not, foldable into rows with one stride), answered once for all backends.
 */
#include "ptm/ptm_backend.h"

int64_t ptm_kview_numel(const struct ptm_kview *v)
{
    int64_t n = 1;
    for (int32_t i = 0; i < v->ndim; i++) {
        n *= v->ne[i];
    }
    return n;
}

int32_t ptm_kview_is_contiguous(const struct ptm_kview *v)
{
    int64_t stride = (int64_t)ptm_dtype_size(v->dtype);
    if (stride == 0 || v->offset % (uint64_t)stride != 0) {
        return 0;
    }
    for (int32_t i = v->ndim - 1; i >= 0; i--) {
        if (v->ne[i] != 1 && v->nb[i] != stride) {
            return 0;
        }
        stride *= v->ne[i];
    }
    return 1;
}

int32_t ptm_kview_rows(const struct ptm_kview *v, int64_t *rows, int64_t *cols, int64_t *ld)
{
    int64_t es = (int64_t)ptm_dtype_size(v->dtype);
    int32_t last = v->ndim - 1;
    if (es == 0 || last < 0 || (v->ne[last] != 1 && v->nb[last] != es) ||
        v->offset % (uint64_t)es != 0) {
        return 0;
    }
    *cols = v->ne[last];
    *rows = 1;
    *ld = *cols;
    int64_t inner = -1; /* byte stride the next outer dim must have, once one is seen */
    for (int32_t i = last - 1; i >= 0; i--) {
        if (v->ne[i] == 1) {
            continue;
        }
        if (inner < 0) {
            *ld = v->nb[i] / es;
        } else if (v->nb[i] != inner) {
            return 0;
        }
        inner = v->nb[i] * v->ne[i];
        *rows *= v->ne[i];
    }
    return 1;
}
