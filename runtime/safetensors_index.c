/*
 * safetensors_index.c - sharded checkpoints: parsing "*.safetensors.index.json", opening each
 * shard once and assembling one handle, and the checkpoint directory rule (single file first,
 * then the index) behind ptm_st_open_dir. Single files are read by safetensors.c.
 *
 * Index layout (transformers): {"metadata": {"total_size": <int>, ...}, "weight_map":
 * {"tensor.name": "model-00001-of-00002.safetensors", ...}}. Shard names are resolved in the
 * index's own directory and must be plain names, so an index cannot reach other files.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

char *ptm__st_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    char *s = ptm__malloc((size_t)n + 1);
    if (s != NULL) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* transformers' _add_variant: the variant goes before the last extension. */
char *ptm__st_single_name(const char *variant)
{
    return variant ? ptm__st_fmt("model.%s.safetensors", variant)
                   : ptm__strdup("model.safetensors");
}

char *ptm__st_index_name(const char *variant)
{
    return variant ? ptm__st_fmt("model.safetensors.index.%s.json", variant)
                   : ptm__strdup("model.safetensors.index.json");
}

int ptm__st_plain_name(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strchr(name, '\\') == NULL &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

ptm_status ptm__st_read_small(const char *path, size_t limit, char **buf, size_t *n)
{
    *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    ptm_status st = PTM_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > limit) {
        st = ptm__fail(PTM_E_IO, "%s: not a regular file of at most %zu bytes", path, limit);
    } else if ((*buf = ptm__malloc((size_t)sb.st_size + 1)) == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (st == PTM_OK && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, *buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            st = ptm__fail(PTM_E_IO, "%s: read failed: %s", path, r ? strerror(errno) : "short");
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (st != PTM_OK) {
        ptm__free(*buf);
        *buf = NULL;
        return st;
    }
    (*buf)[got] = '\0';
    *n = got;
    return PTM_OK;
}

void ptm__st_index_free(struct ptm__st_index *ix)
{
    ptm__jstrict_free(ix->doc);
    ptm__free(ix->shards);
    memset(ix, 0, sizeof *ix);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ptm_status check_index(const char *label, const struct ptm__jstrict *root,
                              const struct ptm__jstrict **wm_out)
{
    if (root->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: index is a JSON %s, expected an object", label,
                         ptm__jstrict_kind_name(root->kind));
    }
    const struct ptm__jstrict *meta = ptm__jstrict_get(root, "metadata");
    if (meta != NULL && meta->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: metadata is a %s, expected an object", label,
                         ptm__jstrict_kind_name(meta->kind));
    }
    const struct ptm__jstrict *total = ptm__jstrict_get(meta, "total_size");
    if (total != NULL && (total->kind != PTM__JSTRICT_NUM || !total->is_int || total->i < 0)) {
        return ptm__fail(PTM_E_FORMAT, "%s: metadata.total_size is not an integer >= 0", label);
    }
    const struct ptm__jstrict *wm = ptm__jstrict_get(root, "weight_map");
    if (wm == NULL || wm->kind != PTM__JSTRICT_OBJ) {
        return ptm__fail(PTM_E_FORMAT, "%s: weight_map is %s, expected an object", label,
                         wm ? ptm__jstrict_kind_name(wm->kind) : "missing");
    }
    for (size_t k = 0; k < wm->len; k++) {
        const struct ptm__jstrict *v = &wm->items[k];
        if (v->kind != PTM__JSTRICT_STR) {
            return ptm__fail(PTM_E_FORMAT, "%s: weight_map[\"%s\"] is a %s, expected a string",
                             label, wm->keys[k], ptm__jstrict_kind_name(v->kind));
        }
        if (!ptm__st_plain_name(v->str)) {
            return ptm__fail(PTM_E_FORMAT,
                             "%s: weight_map[\"%s\"]: shard \"%s\" is not a plain file name in "
                             "the index's directory (hostile path)",
                             label, wm->keys[k], v->str);
        }
    }
    *wm_out = wm;
    return PTM_OK;
}

ptm_status ptm__st_index_parse(const char *buf, size_t n, const char *label,
                               struct ptm__st_index *ix)
{
    const struct ptm__jstrict *root;
    memset(ix, 0, sizeof *ix);
    ptm_status st = ptm__jstrict_parse(buf, n, label, &ix->doc, &root);
    if (st == PTM_OK) {
        st = check_index(label, root, &ix->weight_map);
    }
    if (st == PTM_OK && ix->weight_map->len > 0) {
        const struct ptm__jstrict *wm = ix->weight_map;
        ix->shards = ptm__malloc(wm->len * sizeof *ix->shards);
        if (ix->shards == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", label);
        } else {
            for (size_t k = 0; k < wm->len; k++) {
                ix->shards[k] = wm->items[k].str;
            }
            qsort(ix->shards, wm->len, sizeof *ix->shards, cmp_str);
            for (size_t k = 0; k < wm->len; k++) {
                if (ix->n_shards == 0 || strcmp(ix->shards[ix->n_shards - 1], ix->shards[k])) {
                    ix->shards[ix->n_shards++] = ix->shards[k];
                }
            }
        }
    }
    if (st != PTM_OK) {
        ptm__st_index_free(ix);
    }
    return st;
}

struct wm_entry {
    const char *name, *shard;
    int found;
};

static int cmp_wm(const void *a, const void *b)
{
    return strcmp(((const struct wm_entry *)a)->name, ((const struct wm_entry *)b)->name);
}

/* Pick, shard by shard in offset order, the tensors the index assigns to that shard. */
static ptm_status select_tensors(const char *path, const struct ptm__st_index *ix,
                                 struct ptm_st_file *f)
{
    size_t n = ix->weight_map->len;
    struct wm_entry *wm = ptm__calloc(n, sizeof *wm);
    f->tensors = ptm__calloc(n, sizeof *f->tensors);
    if (wm == NULL || f->tensors == NULL) {
        ptm__free(wm);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t k = 0; k < n; k++) {
        wm[k].name = ix->weight_map->keys[k];
        wm[k].shard = ix->weight_map->items[k].str;
    }
    qsort(wm, n, sizeof *wm, cmp_wm);
    for (size_t s = 0; s < f->n_imgs; s++) {
        const struct ptm__st_image *img = &f->imgs[s];
        for (size_t k = 0; k < img->n_tensors; k++) {
            struct wm_entry key = {.name = img->tensors[k].name};
            struct wm_entry *e = bsearch(&key, wm, n, sizeof *wm, cmp_wm);
            /* A tensor the index does not list (or lists elsewhere) is ignored, like HF. */
            if (e != NULL && strcmp(e->shard, ix->shards[s]) == 0) {
                e->found = 1;
                f->tensors[f->n_tensors++] = img->tensors[k];
            }
        }
    }
    ptm_status st = PTM_OK;
    for (size_t k = 0; k < n && st == PTM_OK; k++) {
        if (!wm[k].found) {
            st = ptm__fail(PTM_E_FORMAT, "%s: tensor \"%s\" not found in shard %s", path,
                           wm[k].name, wm[k].shard);
        }
    }
    ptm__free(wm);
    return st;
}

static ptm_status open_shards(const char *path, const struct ptm__st_index *ix,
                              struct ptm_st_file *f)
{
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 0;
    f->imgs = ptm__calloc(ix->n_shards, sizeof *f->imgs);
    if (f->imgs == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t s = 0; s < ix->n_shards; s++) {
        char *shard = slash ? ptm__st_fmt("%.*s/%s", dir_len, path, ix->shards[s])
                            : ptm__strdup(ix->shards[s]);
        if (shard == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
        }
        f->n_imgs++;
        ptm_status st = ptm__st_image_map(shard, &f->imgs[s]);
        ptm__free(shard);
        if (st != PTM_OK) {
            if (st != PTM_E_NOMEM) {
                ptm__error_prefix(path);
            }
            return st;
        }
    }
    return PTM_OK;
}

ptm_status ptm__st_open_index(const char *path, ptm_st_file **out)
{
    char *buf;
    size_t n;
    struct ptm__st_index ix;
    ptm_status st = ptm__st_read_small(path, PTM_ST_MAX_HEADER_BYTES, &buf, &n);
    if (st != PTM_OK) {
        return st;
    }
    st = ptm__st_index_parse(buf, n, path, &ix);
    ptm__free(buf);
    if (st != PTM_OK) {
        return st;
    }
    ptm_st_file *f = ptm__calloc(1, sizeof *f);
    if (f == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    if (st == PTM_OK) {
        st = open_shards(path, &ix, f);
    }
    if (st == PTM_OK) {
        st = select_tensors(path, &ix, f);
    }
    if (st == PTM_OK) {
        st = ptm__st_index_names(f);
    }
    ptm__st_index_free(&ix);
    if (st != PTM_OK) {
        ptm_st_close(f);
        return st;
    }
    *out = f;
    return PTM_OK;
}

ptm_status ptm_st_open_dir(const char *dir, const char *variant, ptm_st_file **out)
{
    ptm__error_clear();
    if (out == NULL || dir == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open_dir: dir or out is NULL");
    }
    *out = NULL;
    if (variant != NULL && !ptm__st_plain_name(variant)) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_open_dir: variant \"%s\" is not a plain name",
                         variant);
    }
    char *single_name = ptm__st_single_name(variant);
    char *index_name = ptm__st_index_name(variant);
    char *single = single_name ? ptm__st_fmt("%s/%s", dir, single_name) : NULL;
    char *index = index_name ? ptm__st_fmt("%s/%s", dir, index_name) : NULL;
    ptm_status st;
    struct stat sb;
    if (single == NULL || index == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
    } else if (stat(single, &sb) == 0) {
        /* The single file wins over an index, as in transformers; ptm_st_save relies on it. */
        st = ptm_st_open(single, out);
    } else if (stat(index, &sb) == 0) {
        st = ptm__st_open_index(index, out);
    } else {
        st = ptm__fail(PTM_E_NOT_FOUND, "%s: no checkpoint: neither %s nor %s exists", dir,
                       single_name, index_name);
    }
    ptm__free(single_name);
    ptm__free(index_name);
    ptm__free(single);
    ptm__free(index);
    return st;
}
