/*
 * safetensors.c - the strict, zero-copy reader for one safetensors file, and the handle's
 * accessors. It owns header validation (every field, the exact coverage of the data buffer)
 * and the read-only mapping. Sharded sets are assembled in safetensors_index.c; writing is
 * st_write.c. Format: https://github.com/huggingface/safetensors#format
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "st_copy.h"

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) {
        v = v << 8 | p[k];
    }
    return v;
}

/* Only the exact safetensors spellings: ptm_dtype_parse also takes PyTorch names. */
static int dtype_from_name(const char *s, ptm_dtype *dt)
{
    for (int k = 0; k < PTM_DTYPE_COUNT; k++) {
        /* Block types (PTM_Q8_0) are ptm's own, never a safetensors dtype. */
        if (ptm_dtype_size((ptm_dtype)k) > 0 && strcmp(ptm_dtype_name((ptm_dtype)k), s) == 0) {
            *dt = (ptm_dtype)k;
            return 1;
        }
    }
    return 0;
}

static ptm_status parse_shape(const char *path, const char *name, const struct ptm__jstrict *v,
                              struct ptm_st_tensor *t, uint64_t *n_elems)
{
    if (v == NULL) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": missing field shape", path, name);
    }
    if (v->kind != PTM__JSTRICT_ARR) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": shape is a %s, expected an array", path,
                         name, ptm__jstrict_kind_name(v->kind));
    }
    if (v->len > PTM_ST_MAX_DIMS) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": shape has %zu dimensions, at most %d",
                         path, name, v->len, PTM_ST_MAX_DIMS);
    }
    uint64_t count = 1;
    for (size_t k = 0; k < v->len; k++) {
        const struct ptm__jstrict *d = &v->items[k];
        if (d->kind != PTM__JSTRICT_NUM) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": shape[%zu] is a %s, expected an integer", path,
                             name, k, ptm__jstrict_kind_name(d->kind));
        }
        if (!d->is_int) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": shape[%zu] is not an integer in int64 range", path,
                             name, k);
        }
        if (d->i < 0) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": shape[%zu] is negative (%" PRId64 ")", path, name,
                             k, d->i);
        }
        if (__builtin_mul_overflow(count, (uint64_t)d->i, &count)) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": shape element count overflows at shape[%zu]", path,
                             name, k);
        }
        t->shape[k] = d->i;
    }
    t->ndim = (int32_t)v->len;
    *n_elems = count;
    return PTM_OK;
}

static ptm_status parse_offsets(const char *path, const char *name, const struct ptm__jstrict *v,
                                uint64_t data_len, uint64_t *begin, uint64_t *end)
{
    if (v == NULL) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": missing field data_offsets", path, name);
    }
    if (v->kind != PTM__JSTRICT_ARR || v->len != 2) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: tensor \"%s\": data_offsets must be an array of 2 integers", path,
                         name);
    }
    for (int k = 0; k < 2; k++) {
        const struct ptm__jstrict *o = &v->items[k];
        if (o->kind != PTM__JSTRICT_NUM || !o->is_int || o->i < 0) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": data_offsets[%d] is not an integer >= 0 in "
                             "int64 range",
                             path, name, k);
        }
    }
    *begin = (uint64_t)v->items[0].i;
    *end = (uint64_t)v->items[1].i;
    if (*begin > *end) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: tensor \"%s\": data_offsets begin %" PRIu64 " > end %" PRIu64, path,
                         name, *begin, *end);
    }
    if (*end > data_len) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: tensor \"%s\": data_offsets end %" PRIu64
                         " is past the end of the data buffer (%" PRIu64 " bytes)",
                         path, name, *end, data_len);
    }
    return PTM_OK;
}

static ptm_status parse_entry(const struct ptm__st_image *img, const char *name,
                              const struct ptm__jstrict *v, const unsigned char *data,
                              uint64_t data_len, struct ptm_st_tensor *t, uint64_t *begin)
{
    const char *path = img->path;
    if (v->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": entry is a %s, expected an object", path,
                         name, ptm__jstrict_kind_name(v->kind));
    }
    for (size_t k = 0; k < v->len; k++) {
        const char *key = v->keys[k];
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0) {
            return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": unknown field \"%s\"", path, name,
                             key);
        }
    }
    const struct ptm__jstrict *dt = ptm__jstrict_get(v, "dtype");
    if (dt == NULL) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": missing field dtype", path, name);
    }
    if (dt->kind != PTM__JSTRICT_STR) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": dtype is a %s, expected a string", path,
                         name, ptm__jstrict_kind_name(dt->kind));
    }
    if (!dtype_from_name(dt->str, &t->dtype)) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name,
                         dt->str);
    }
    uint64_t n_elems = 0, nbytes = 0, end = 0;
    ptm_status st = parse_shape(path, name, ptm__jstrict_get(v, "shape"), t, &n_elems);
    if (st != PTM_OK) {
        return st;
    }
    st = parse_offsets(path, name, ptm__jstrict_get(v, "data_offsets"), data_len, begin, &end);
    if (st != PTM_OK) {
        return st;
    }
    if (__builtin_mul_overflow(n_elems, (uint64_t)ptm_dtype_size(t->dtype), &nbytes)) {
        return ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\": shape byte size overflows", path, name);
    }
    if (nbytes != end - *begin) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: tensor \"%s\": size mismatch: shape and dtype give %" PRIu64
                         " bytes, data_offsets span %" PRIu64,
                         path, name, nbytes, end - *begin);
    }
    t->name = name;
    t->nbytes = nbytes;
    t->data = data + *begin;
    t->file = path;
    return PTM_OK;
}

static ptm_status check_metadata(const struct ptm__st_image *img, const struct ptm__jstrict *m)
{
    if (m->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: __metadata__ is a %s, expected an object of strings",
                         img->path, ptm__jstrict_kind_name(m->kind));
    }
    for (size_t k = 0; k < m->len; k++) {
        if (m->items[k].kind != PTM__JSTRICT_STR) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: __metadata__ value for key \"%s\" is a %s, not a string",
                             img->path, m->keys[k], ptm__jstrict_kind_name(m->items[k].kind));
        }
    }
    return PTM_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct ptm_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py) {
        return px < py ? -1 : 1;
    }
    /* Zero-size tensors share an offset with their successor: put them first. */
    if (x->nbytes != y->nbytes) {
        return x->nbytes < y->nbytes ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/* The tensors, sorted by offset, must tile [0, data_len) exactly (the Rust reader's rule). */
static ptm_status check_coverage(const struct ptm__st_image *img, const unsigned char *data,
                                 uint64_t data_len)
{
    uint64_t expect = 0;
    for (size_t k = 0; k < img->n_tensors; k++) {
        const struct ptm_st_tensor *t = &img->tensors[k];
        uint64_t begin = (uint64_t)((const unsigned char *)t->data - data);
        if (begin > expect) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": gap in the data buffer: begins at %" PRIu64
                             ", previous tensor ends at %" PRIu64,
                             img->path, t->name, begin, expect);
        }
        if (begin < expect) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: tensor \"%s\": data_offsets overlap: begins at %" PRIu64
                             ", previous tensor ends at %" PRIu64,
                             img->path, t->name, begin, expect);
        }
        expect = begin + t->nbytes;
    }
    if (expect != data_len) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: tensors cover %" PRIu64 " of %" PRIu64
                         " data bytes: trailing bytes not owned by any tensor",
                         img->path, expect, data_len);
    }
    return PTM_OK;
}

/* Read the 8-byte length and parse the header JSON into img->doc; returns the root. */
static ptm_status parse_header(struct ptm__st_image *img, const struct ptm__jstrict **root,
                               uint64_t *hlen)
{
    uint64_t len = img->len;
    if (len < 8) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: file is %" PRIu64 " bytes, smaller than the 8-byte header length",
                         img->path, len);
    }
    *hlen = load_le64(img->base);
    if (*hlen > PTM_ST_MAX_HEADER_BYTES) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: header length %" PRIu64 " exceeds the limit of %u bytes", img->path,
                         *hlen, PTM_ST_MAX_HEADER_BYTES);
    }
    if (*hlen > len - 8) {
        return ptm__fail(PTM_E_FORMAT,
                         "%s: header length %" PRIu64 " exceeds file size %" PRIu64 " minus 8",
                         img->path, *hlen, len);
    }
    /* JSON byte offsets in messages count from the header's start (file offset 8). */
    char *label = ptm__st_fmt("%s: header", img->path);
    if (label == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", img->path);
    }
    ptm_status st =
        ptm__jstrict_parse((const char *)img->base + 8, (size_t)*hlen, label, &img->doc, root);
    ptm__free(label);
    if (st != PTM_OK) {
        return st;
    }
    if ((*root)->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: header is a JSON %s, expected a JSON object", img->path,
                         ptm__jstrict_kind_name((*root)->kind));
    }
    return PTM_OK;
}

ptm_status ptm__st_image_parse(struct ptm__st_image *img)
{
    const struct ptm__jstrict *root = NULL;
    uint64_t hlen = 0;
    ptm_status st = parse_header(img, &root, &hlen);
    if (st != PTM_OK) {
        return st;
    }
    const unsigned char *data = img->base + 8 + hlen;
    uint64_t data_len = img->len - 8 - hlen;
    img->tensors = ptm__calloc(root->len, sizeof *img->tensors);
    if (img->tensors == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory for %zu tensors", img->path, root->len);
    }
    for (size_t k = 0; k < root->len; k++) {
        const char *name = root->keys[k];
        if (strcmp(name, "__metadata__") == 0) {
            if ((st = check_metadata(img, &root->items[k])) != PTM_OK) {
                return st;
            }
            img->meta = &root->items[k];
            continue;
        }
        struct ptm_st_tensor *t = &img->tensors[img->n_tensors];
        uint64_t begin = 0;
        st = parse_entry(img, name, &root->items[k], data, data_len, t, &begin);
        if (st != PTM_OK) {
            return st;
        }
        img->n_tensors++;
    }
    qsort(img->tensors, img->n_tensors, sizeof *img->tensors, cmp_by_offset);
    return check_coverage(img, data, data_len);
}

ptm_status ptm__st_image_map(const char *path, struct ptm__st_image *img)
{
    img->path = ptm__strdup(path);
    if (img->path == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ptm__fail(PTM_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ptm__fail(PTM_E_IO, "%s: not a regular file", path);
    }
    img->len = (size_t)sb.st_size;
    if (img->len < 8) {
        close(fd);
        return ptm__st_image_parse(img); /* reports the short file without mapping it */
    }
    /* MAP_PRIVATE and PROT_READ: the pages stay in the page cache and are never written. */
    void *p = mmap(NULL, img->len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    if (p == MAP_FAILED) {
        close(fd);
        return ptm__fail(PTM_E_IO, "%s: cannot map %zu bytes: %s", path, img->len, strerror(e));
    }
    img->base = p;
    img->is_mapped = 1;
    /* The descriptor stays open with the mapping: saving these bytes again copies them from
     * this very file (st_copy.c), never from whatever the path names by then. */
    ptm_status st = ptm__st_source_add(p, img->len, fd, img->path);
    return st == PTM_OK ? ptm__st_image_parse(img) : st;
}

void ptm__st_image_release(struct ptm__st_image *img)
{
    if (img->is_mapped) {
        ptm__st_source_remove(img->base);
        munmap((void *)img->base, img->len);
    }
    ptm__jstrict_free(img->doc);
    ptm__free(img->tensors);
    ptm__free(img->path);
    memset(img, 0, sizeof *img);
}

static int cmp_by_name(const void *a, const void *b)
{
    const struct ptm_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

ptm_status ptm__st_index_names(struct ptm_st_file *f)
{
    f->by_name = ptm__calloc(f->n_tensors, sizeof *f->by_name);
    if (f->by_name == NULL) {
        return ptm__fail(PTM_E_NOMEM, "safetensors: out of memory for %zu names", f->n_tensors);
    }
    for (size_t k = 0; k < f->n_tensors; k++) {
        f->by_name[k] = &f->tensors[k];
    }
    qsort(f->by_name, f->n_tensors, sizeof *f->by_name, cmp_by_name);
    return PTM_OK;
}

/* Wrap one parsed image as a handle; takes img over, also on failure. */
static ptm_status open_single(struct ptm__st_image *img, ptm_status st, ptm_st_file **out)
{
    ptm_st_file *f = NULL;
    if (st == PTM_OK) {
        f = ptm__calloc(1, sizeof *f);
        if (f == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", img->path);
        }
    }
    if (st == PTM_OK) {
        f->imgs = ptm__malloc(sizeof *f->imgs);
        f->tensors = ptm__calloc(img->n_tensors, sizeof *f->tensors);
        if (f->imgs == NULL || f->tensors == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", img->path);
        }
    }
    if (st == PTM_OK) {
        f->imgs[0] = *img;
        f->n_imgs = 1;
        memcpy(f->tensors, img->tensors, img->n_tensors * sizeof *f->tensors);
        f->n_tensors = img->n_tensors;
        st = ptm__st_index_names(f);
        if (st == PTM_OK) {
            *out = f;
            return PTM_OK;
        }
    } else {
        ptm__st_image_release(img);
    }
    ptm_st_close(f);
    return st;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

ptm_status ptm_st_open(const char *path, ptm_st_file **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open: out is NULL");
    }
    *out = NULL;
    if (path == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open: path is NULL");
    }
    if (has_suffix(path, ".json")) {
        return ptm__st_open_index(path, out);
    }
    struct ptm__st_image img = {0};
    ptm_status st = ptm__st_image_map(path, &img);
    return open_single(&img, st, out);
}

ptm_status ptm_st_open_memory(const void *buf, size_t n, const char *label, ptm_st_file **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open_memory: out is NULL");
    }
    *out = NULL;
    if (buf == NULL && n > 0) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open_memory: buf is NULL");
    }
    struct ptm__st_image img = {.base = buf, .len = n};
    img.path = ptm__strdup(label != NULL ? label : "<memory>");
    if (img.path == NULL) {
        return ptm__fail(PTM_E_NOMEM, "ptm_st_open_memory: out of memory");
    }
    ptm_status st = ptm__st_image_parse(&img);
    return open_single(&img, st, out);
}

void ptm_st_close(ptm_st_file *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t k = 0; k < f->n_imgs; k++) {
        ptm__st_image_release(&f->imgs[k]);
    }
    ptm__free(f->imgs);
    ptm__free(f->tensors);
    ptm__free(f->by_name);
    ptm__free(f);
}

size_t ptm_st_count(const ptm_st_file *f)
{
    return f != NULL ? f->n_tensors : 0;
}

const struct ptm_st_tensor *ptm_st_at(const ptm_st_file *f, size_t i)
{
    return f != NULL && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct ptm_st_tensor *ptm_st_find(const ptm_st_file *f, const char *name)
{
    if (f == NULL || name == NULL) {
        return NULL;
    }
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) {
            return f->by_name[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

const char *ptm_st_metadata(const ptm_st_file *f, const char *key)
{
    if (f == NULL || key == NULL || f->n_imgs == 0) {
        return NULL;
    }
    const struct ptm__jstrict *v = ptm__jstrict_get(f->imgs[0].meta, key);
    return v != NULL ? v->str : NULL;
}
