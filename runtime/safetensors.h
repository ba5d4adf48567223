/*
 * safetensors.h - what the safetensors reader (safetensors.c), the sharded-index reader
 * (safetensors_index.c) and the writer (st_write.c) share inside libptm: the parsed image of
 * one file, the handle's layout and the index parser. Nothing here is public.
 */
#ifndef PTM_RUNTIME_SAFETENSORS_H
#define PTM_RUNTIME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "json_strict.h"
#include "ptm/ptm_safetensors.h"

/* One validated safetensors file (mapped) or memory image. */
struct ptm__st_image {
    char *path; /* owned; used in messages and as each tensor's file */
    const unsigned char *base;
    size_t len;
    int is_mapped; /* base came from mmap and is unmapped on release */
    struct ptm__jstrict_doc *doc;
    struct ptm_st_tensor *tensors; /* sorted by data offset */
    size_t n_tensors;
    const struct ptm__jstrict *meta; /* the "__metadata__" object, or NULL */
};

struct ptm_st_file {
    struct ptm__st_image *imgs; /* one per file; shards sorted by name */
    size_t n_imgs;
    struct ptm_st_tensor *tensors; /* by (file, offset) */
    size_t n_tensors;
    const struct ptm_st_tensor **by_name; /* sorted by name, for ptm_st_find */
};

/* A parsed, validated index file. */
struct ptm__st_index {
    struct ptm__jstrict_doc *doc;
    const struct ptm__jstrict *weight_map; /* object of tensor name -> shard file name */
    const char **shards;                   /* distinct shard names, sorted */
    size_t n_shards;
};

/* Map path read-only and validate it into img (zeroed by the caller). Frees nothing. */
ptm_status ptm__st_image_map(const char *path, struct ptm__st_image *img);

/* Validate the image in img->base/len, labelled img->path. */
ptm_status ptm__st_image_parse(struct ptm__st_image *img);

/* Unmap and free what img owns. */
void ptm__st_image_release(struct ptm__st_image *img);

/* Build f->by_name from f->tensors. */
ptm_status ptm__st_index_names(struct ptm_st_file *f);

/* Open a sharded set through the index at path into a new handle. */
ptm_status ptm__st_open_index(const char *path, ptm_st_file **out);

/*
 * Parse and validate an index held in buf[0..n) (labelled label): weight_map an object of
 * string -> plain file name, metadata.total_size (if any) an integer >= 0. On failure *ix is
 * zeroed. The fuzzer calls this directly.
 */
ptm_status ptm__st_index_parse(const char *buf, size_t n, const char *label,
                               struct ptm__st_index *ix);
void ptm__st_index_free(struct ptm__st_index *ix);

/* Whether name is a plain file name: non-empty, no '/' or '\\', not "." or "..". */
int ptm__st_plain_name(const char *name);

/* A new ptm__malloc'd string formatted like snprintf, or NULL when out of memory. */
char *ptm__st_fmt(const char *fmt, ...) PTM_PRINTF(1, 2);

/* The single-file and index names of a checkpoint for variant (NULL: none); new strings. */
char *ptm__st_single_name(const char *variant);
char *ptm__st_index_name(const char *variant);

/* Read a whole (small) file into a new ptm__malloc'd buffer. PTM_E_IO names the path. */
ptm_status ptm__st_read_small(const char *path, size_t limit, char **buf, size_t *n);

/*
 * Writer internals (st_write.c), shared with the checkpoint saver (st_save.c).
 */

/* Validate entries and a metadata list for writing; PTM_E_INVAL names the tensor or key. */
ptm_status ptm__st_check_entries(const struct ptm_st_entry *t, size_t n,
                                 const char *const *metadata);

/*
 * Write the tensors t[sel[0]], .., t[sel[n-1]] (sel NULL: t[0..n)) as a safetensors file at
 * path through "<path>.tmp": write, fsync, rename, fsync the directory. Entries must have
 * passed ptm__st_check_entries.
 */
ptm_status ptm__st_write_file(const char *path, const struct ptm_st_entry *t, const size_t *sel,
                              size_t n, const char *const *metadata);

/* Write buf[0..n) to path the same atomic way. */
ptm_status ptm__st_write_bytes(const char *path, const void *buf, size_t n);

/*
 * The index JSON as transformers writes it (json.dumps(index, indent=2, sort_keys=True) plus
 * a newline): names[k] -> files[k], names sorted. *out is a new ptm__malloc'd buffer.
 */
ptm_status ptm__st_index_json(const char *const *names, const char *const *files, size_t n,
                              uint64_t total_size, char **out, size_t *len);

/* fsync the directory dir ("" or NULL: the current directory). */
ptm_status ptm__st_fsync_dir(const char *dir);

#endif
