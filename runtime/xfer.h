/*
 * xfer.h - tensors crossing devices (issue 8, device_map): copies between backends through
 * host memory, moving an activation's storage to another device, and the placement step of
 * every op, which lets an op's operands live on different devices. It knows no architecture
 * and no backend by name; ops.c calls it before each kernel, model.c around each forward.
 */
#ifndef PTM_RUNTIME_XFER_H
#define PTM_RUNTIME_XFER_H

#include "tensor.h"

/* Forward scope: tensors made on this thread while a forward pass runs are movable
 * activations (tensor.h). Scopes nest. */
void ptm__xfer_scope_enter(void);
void ptm__xfer_scope_leave(void);
int ptm__xfer_in_scope(void);

/* Copy contiguous src into contiguous dst of the same size, whatever their devices. */
ptm_status ptm__xfer_copy(ptm_tensor *dst, const ptm_tensor *src);

/* A new contiguous copy of t (any view) on dev, same dtype and shape. */
ptm_status ptm__xfer_to(const ptm_tensor *t, ptm_device *dev, ptm_tensor **out);

#define PTM__XFER_MAX_IN 6

/*
 * An op's operands as its kernel sees them, all on dev: the caller's tensors where they
 * already live on dev, else stand-ins. ptm__xfer_place chooses dev (the anchor's device) and
 * brings every operand there: an operand whose storage is a movable activation moves for
 * good (its views follow); any other (a parameter, the caller's tensor) is copied into a
 * temporary for this op only; an out that cannot move is computed into a temporary on dev
 * and copied back by ptm__xfer_finish (PTM_E_UNSUPPORTED if it is a strided view). When every
 * operand is already on dev (every model on one device) nothing is copied or allocated.
 */
struct ptm__placed {
    ptm_device *dev;
    const ptm_tensor *in[PTM__XFER_MAX_IN];
    ptm_tensor *out;
    ptm_tensor *user_out; /* the caller's out while out is a stand-in, else NULL */
    ptm_tensor *tmp[PTM__XFER_MAX_IN + 1];
    int n_in, n_tmp;
};

/* in[0..n_in) may hold NULLs (absent optional operands). anchor: the operand whose device
 * the op runs on (the weight of a matmul or norm, the table of a gather), or NULL for the
 * first non-NULL input (out when there is none). */
ptm_status ptm__xfer_place(struct ptm__placed *p, const char *op, ptm_tensor *out,
                           const ptm_tensor *const *in, int n_in, const ptm_tensor *anchor);

/* After the kernel returned st: copy a stand-in out back into the caller's, free the
 * temporaries; returns st, or the copy's failure. */
ptm_status ptm__xfer_finish(struct ptm__placed *p, ptm_status st);

/* After a forward pass: every output whose storage is a movable activation on another device
 * moves to dev (the model's main device) and stops being movable: the caller owns it now. */
ptm_status ptm__xfer_home(ptm_tensor_map *outputs, ptm_device *dev);

#endif
