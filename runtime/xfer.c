/*
 * xfer.c - tensors crossing devices (see xfer.h). Bytes travel through host memory: read
 * from one backend and written into the other, straight from or into a buffer the host can
 * address (buffer_host_ptr) when either side has one, else through one bounce buffer. No
 * backend learns about another; each sees only its own read, write and alloc calls.
 *
 * Why activations move instead of being copied per op: architectures allocate their scratch
 * tensors once per forward on the model's main device and reuse them for every layer. With
 * layers on two devices, copying each operand to the op's device and the result back would
 * cross the bus several times per op; moving the scratch tensor once, at the first layer on
 * the other device, makes every later op of that layer local. A tensor moves only if it was
 * made during a forward pass (tensor.h, movable), so parameters and the caller's tensors stay
 * where their owner put them.
 */
#include "xfer.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ptm/ptm_ops.h"

static _Thread_local int scope_depth;

void ptm__xfer_scope_enter(void)
{
    scope_depth++;
}

void ptm__xfer_scope_leave(void)
{
    scope_depth--;
}

int ptm__xfer_in_scope(void)
{
    return scope_depth > 0;
}

/* The host address of buf + off on dev, after the backend finished queued work on it. */
static const char *host_view(ptm_device *dev, void *buf, uint64_t off)
{
    const struct ptm_backend *be = dev->backend->be;
    void *ctx = dev->backend->ctx;
    if (!PTM_HAS(be, struct ptm_backend, buffer_host_ptr) || be->buffer_host_ptr == NULL) {
        return NULL;
    }
    char *p = be->buffer_host_ptr(ctx, buf);
    if (p != NULL && PTM_HAS(be, struct ptm_backend, sync) && be->sync != NULL &&
        be->sync(ctx) != PTM_OK) {
        return NULL; /* fall back to read, which reports the fault */
    }
    return p != NULL ? p + off : NULL;
}

/* n bytes from (sd, sbuf, soff) to (dd, dbuf, doff). */
static ptm_status raw_copy(ptm_device *dd, void *dbuf, uint64_t doff, ptm_device *sd, void *sbuf,
                           uint64_t soff, size_t n)
{
    const struct ptm__backend *db = dd->backend, *sb = sd->backend;
    const char *src = host_view(sd, sbuf, soff);
    if (src != NULL) {
        return db->be->write(db->ctx, dbuf, doff, src, n);
    }
    char *dst = (char *)host_view(dd, dbuf, doff);
    if (dst != NULL) {
        return sb->be->read(sb->ctx, sbuf, soff, dst, n);
    }
    char *bounce = ptm__malloc(n + 1);
    if (bounce == NULL) {
        return ptm__fail(PTM_E_NOMEM, "xfer: out of memory for %zu bytes from %s to %s", n,
                         sd->name, dd->name);
    }
    ptm_status st = sb->be->read(sb->ctx, sbuf, soff, bounce, n);
    if (st == PTM_OK) {
        st = db->be->write(db->ctx, dbuf, doff, bounce, n);
    }
    ptm__free(bounce);
    return st;
}

ptm_status ptm__xfer_copy(ptm_tensor *dst, const ptm_tensor *src)
{
    size_t n = ptm_tensor_nbytes(src);
    if (!ptm_tensor_is_contiguous(dst) || !ptm_tensor_is_contiguous(src) ||
        ptm_tensor_nbytes(dst) != n) {
        return ptm__fail(PTM_E_INTERNAL, "xfer: copy needs contiguous tensors of one size");
    }
    const ptm_tensor *dr = ptm__tensor_root(dst), *sr = ptm__tensor_root(src);
    return raw_copy(dr->dev, dr->buf, dst->offset, sr->dev, sr->buf, src->offset, n);
}

ptm_status ptm__xfer_to(const ptm_tensor *t, ptm_device *dev, ptm_tensor **out)
{
    ptm_tensor *packed = NULL;
    ptm_status st = PTM_OK;
    *out = NULL;
    if (!ptm_tensor_is_contiguous(t)) { /* gather the view on its own device first */
        st = ptm_tensor_new(ptm__tensor_dev(t), t->dtype, t->ndim, t->ne, &packed);
        if (st == PTM_OK) {
            st = ptm_op_convert(packed, t);
        }
    }
    if (st == PTM_OK) {
        st = ptm_tensor_new(dev, t->dtype, t->ndim, t->ne, out);
    }
    if (st == PTM_OK && (st = ptm__xfer_copy(*out, packed ? packed : t)) != PTM_OK) {
        ptm_tensor_free(*out);
        *out = NULL;
    }
    ptm_tensor_free(packed);
    return st;
}

/* Move the storage of t's root to dev when it is a movable activation; views follow, since
 * they reach storage through the root. The tensor objects do not change, only where their
 * bytes live, which is why a const operand may be moved. keep = 0 skips copying the bytes
 * (an op's out that covers its whole root and that no input reads: the kernel overwrites
 * it all). */
static ptm_status migrate(const ptm_tensor *t, ptm_device *dev, int keep)
{
    ptm_tensor *r = (ptm_tensor *)ptm__tensor_root(t);
    if (!r->movable || r->dev == dev || !r->owns_buf || r->release != NULL) {
        return PTM_OK;
    }
    size_t bytes = ptm_tensor_nbytes(r); /* a root made by ptm_tensor_new is packed */
    void *buf = NULL;
    const struct ptm__backend *b = dev->backend;
    ptm_status st = b->be->buffer_alloc(b->ctx, dev->index, bytes, &buf);
    if (st != PTM_OK) {
        return ptm__fail(st, "xfer: %s: cannot allocate %zu bytes to move an activation from %s",
                         dev->name, bytes, r->dev->name);
    }
    st = keep ? raw_copy(dev, buf, 0, r->dev, r->buf, r->offset, bytes) : PTM_OK;
    if (st != PTM_OK) {
        b->be->buffer_free(b->ctx, buf);
        return st;
    }
    r->dev->backend->be->buffer_free(r->dev->backend->ctx, r->buf);
    r->buf = buf;
    r->offset = 0;
    r->dev = dev;
    return PTM_OK;
}

/* Whether the op's kernel reads out's old bytes or leaves some of its root unwritten. */
static int out_needs_contents(const struct ptm__placed *p, const ptm_tensor *out)
{
    const ptm_tensor *root = ptm__tensor_root(out);
    if (!ptm_tensor_is_contiguous(out) || ptm_tensor_nbytes(out) != ptm_tensor_nbytes(root)) {
        return 1;
    }
    for (int i = 0; i < p->n_in; i++) {
        if (p->in[i] != NULL && ptm__tensor_root(p->in[i]) == root) {
            return 1;
        }
    }
    return 0;
}

/* The slow path of ptm__xfer_place: some operand lives off p->dev. */
static ptm_status spread(struct ptm__placed *p, const char *op, ptm_tensor *out)
{
    ptm_device *dev = p->dev;
    ptm_status st = migrate(out, dev, out_needs_contents(p, out));
    for (int i = 0; st == PTM_OK && i < p->n_in; i++) {
        if (p->in[i] != NULL) {
            st = migrate(p->in[i], dev, 1);
        }
    }
    for (int i = 0; st == PTM_OK && i < p->n_in; i++) {
        if (p->in[i] != NULL && ptm__tensor_dev(p->in[i]) != dev) {
            ptm_tensor *copy = NULL;
            st = ptm__xfer_to(p->in[i], dev, &copy);
            if (st == PTM_OK) {
                p->tmp[p->n_tmp++] = copy;
                p->in[i] = copy;
            }
        }
    }
    if (st == PTM_OK && ptm__tensor_dev(out) != dev && !ptm_tensor_is_contiguous(out)) {
        /* Writing back would need a strided scatter across devices, which no op offers. */
        st = ptm__fail(PTM_E_UNSUPPORTED, "out is a strided view on %s, which cannot move",
                       ptm__tensor_dev(out)->name);
    }
    if (st == PTM_OK && ptm__tensor_dev(out) != dev) {
        ptm_tensor *stand_in = NULL;
        st = ptm_tensor_new(dev, out->dtype, out->ndim, out->ne, &stand_in);
        if (st == PTM_OK) {
            p->tmp[p->n_tmp++] = stand_in;
            p->out = stand_in;
            p->user_out = out;
        }
    }
    if (st != PTM_OK) {
        char what[96];
        snprintf(what, sizeof what, "op %s: bringing operands to %s", op, dev->name);
        ptm__error_prefix(what);
        for (int i = 0; i < p->n_tmp; i++) {
            ptm_tensor_free(p->tmp[i]);
        }
        p->n_tmp = 0;
    }
    return st;
}

ptm_status ptm__xfer_place(struct ptm__placed *p, const char *op, ptm_tensor *out,
                           const ptm_tensor *const *in, int n_in, const ptm_tensor *anchor)
{
    p->out = out;
    p->user_out = NULL;
    p->n_in = n_in;
    p->n_tmp = 0;
    for (int i = 0; i < n_in; i++) {
        p->in[i] = in[i];
        anchor = anchor == NULL ? in[i] : anchor;
    }
    p->dev = ptm__tensor_dev(anchor != NULL ? anchor : out);
    int mixed = ptm__tensor_dev(out) != p->dev;
    for (int i = 0; i < n_in && !mixed; i++) {
        mixed = in[i] != NULL && ptm__tensor_dev(in[i]) != p->dev;
    }
    return mixed ? spread(p, op, out) : PTM_OK;
}

ptm_status ptm__xfer_finish(struct ptm__placed *p, ptm_status st)
{
    if (st == PTM_OK && p->user_out != NULL) { /* contiguous: spread() checked */
        st = ptm__xfer_copy(p->user_out, p->out);
    }
    for (int i = 0; i < p->n_tmp; i++) {
        ptm_tensor_free(p->tmp[i]);
    }
    p->n_tmp = 0;
    return st;
}

ptm_status ptm__xfer_home(ptm_tensor_map *outputs, ptm_device *dev)
{
    ptm_status st = PTM_OK;
    for (size_t i = 0; st == PTM_OK && i < ptm_tensor_map_count(outputs); i++) {
        ptm_tensor *r = (ptm_tensor *)ptm__tensor_root(ptm_tensor_map_at(outputs, i, NULL));
        st = migrate(r, dev, 1);
        r->movable = 0;
    }
    return st;
}
