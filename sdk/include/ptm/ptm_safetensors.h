/*
 * ptm_safetensors.h - reading and writing safetensors checkpoints, single files and sharded
 * sets (a "*.safetensors.index.json" plus its shards), the way Hugging Face lays them out.
 *
 * File layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (padded with spaces)
 * mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} plus an
 * optional "__metadata__" object of strings, then the data buffer; offsets are relative to
 * the buffer, and the tensors cover it exactly, without gaps or overlaps.
 *
 * Reading maps the files read-only and validates every header field strictly; opening costs
 * O(header) and never touches the data pages. Tensor data pointers point into the mapping.
 * Each mapped file keeps one read-only descriptor open until ptm_st_close: writing those
 * tensors again copies their bytes from it inside the kernel (copy_file_range), never through
 * the path, which may name another file by then.
 *
 * Checkpoint directory rule (what ptm_st_save writes and ptm_st_open_dir reads): for a
 * variant V (or none), the single file "model.V.safetensors" ("model.safetensors") wins when
 * it exists; otherwise the index "model.safetensors.index.V.json" ("model.safetensors.index.
 * json") is loaded. This is transformers' own preference and its own variant spelling
 * (transformers.modeling_utils._add_variant inserts V before the last extension, so the index
 * becomes "model.safetensors.index.V.json" and shards "model.V-00001-of-00002.safetensors").
 * Every loader of ptm checkpoints must follow this rule: ptm_st_save's crash atomicity is
 * defined by it.
 */
#ifndef PTM_SAFETENSORS_H
#define PTM_SAFETENSORS_H

#include "ptm_base.h"
#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PTM_ST_MAX_DIMS 8

/* Largest header accepted, as in the Rust safetensors reader (100 MB). */
#define PTM_ST_MAX_HEADER_BYTES 100000000u

/* An open safetensors file, or a sharded set opened through its index. Immutable. */
typedef struct ptm_st_file ptm_st_file;

/* One tensor of an open file. All pointers are borrowed and live until ptm_st_close. */
struct ptm_st_tensor {
    const char *name;               /* the header's key */
    ptm_dtype dtype;                /* from the header's exact spelling ("F32", "BF16", ...) */
    int32_t ndim;                   /* 0 (scalar) .. PTM_ST_MAX_DIMS */
    int64_t shape[PTM_ST_MAX_DIMS]; /* outermost first; entries past ndim are 0 */
    const void *data;               /* into the read-only mapping; never write through it */
    uint64_t nbytes;                /* product(shape) * ptm_dtype_size(dtype) */
    const char *file;               /* path of the file holding it (the shard, when sharded) */
};

/*
 * ptm_st_open - open and validate a ".safetensors" file, or a sharded set through its index
 * (a path ending in ".json").
 *
 * path: borrowed for the call. Shards named by an index must be plain file names (no '/',
 *       no "." or "..") in the index's directory; each is opened once and validated whole.
 *       Tensors that a shard holds but the index does not list are ignored, as transformers
 *       does. "metadata.total_size", when present, must be an integer >= 0 (it is not
 *       compared with the real size: transformers' own totals can differ slightly).
 * Stricter than the Rust reader on purpose: duplicate keys anywhere (json-c and serde would
 *       keep one silently), fields other than dtype/shape/data_offsets in a tensor entry,
 *       dtype spellings other than the exact safetensors ones ("F32", not "float32"),
 *       "\u0000" in strings and JSON nesting deeper than 64 are all PTM_E_FORMAT.
 * out:  on PTM_OK a new handle, owned by the caller (free with ptm_st_close); else NULL.
 * Returns PTM_E_INVAL (NULL argument), PTM_E_IO (cannot open, stat or map a file),
 * PTM_E_FORMAT (any malformed header or index), PTM_E_NOMEM. ptm_last_error() names the file
 * (for a shard: the index, then the shard), the tensor and the field at fault.
 * Thread safety: the returned handle is immutable; any number of threads may read it.
 */
PTM_API ptm_status ptm_st_open(const char *path, ptm_st_file **out);

/*
 * ptm_st_open_dir - open the checkpoint in dir by the directory rule above.
 *
 * variant: NULL, or a name such as "fp16" (plain: no '/'). Returns PTM_E_NOT_FOUND (message
 * names dir and both file names) when neither file exists; otherwise as ptm_st_open.
 */
PTM_API ptm_status ptm_st_open_dir(const char *dir, const char *variant, ptm_st_file **out);

/*
 * ptm_st_open_memory - parse and validate a safetensors image held in memory.
 *
 * buf, n: not copied; the buffer must stay unchanged until ptm_st_close. label names the
 * image in messages and in each tensor's file field (NULL: "<memory>"; copied).
 * Returns and sets *out as ptm_st_open. Used by tests and the fuzzer.
 */
PTM_API ptm_status ptm_st_open_memory(const void *buf, size_t n, const char *label,
                                      ptm_st_file **out);

/* ptm_st_close - unmap, close and free everything the handle owns. NULL ok. */
PTM_API void ptm_st_close(ptm_st_file *f);

/* ptm_st_count - number of tensors (for sharded sets: those the index lists). */
PTM_API size_t ptm_st_count(const ptm_st_file *f);

/*
 * ptm_st_at - the i-th tensor (NULL when i >= count). The order is stable: by file (shards by
 * name), then by data offset. Borrowed; lives until ptm_st_close.
 */
PTM_API const struct ptm_st_tensor *ptm_st_at(const ptm_st_file *f, size_t i);

/* ptm_st_find - the tensor named name, or NULL. O(log n). Borrowed; lives until close. */
PTM_API const struct ptm_st_tensor *ptm_st_find(const ptm_st_file *f, const char *name);

/*
 * ptm_st_metadata - the "__metadata__" value for key, or NULL if absent. For a sharded set
 * this is the first shard's (by name): ptm_st_save and transformers write the same metadata
 * into every shard. Borrowed; lives until ptm_st_close.
 */
PTM_API const char *ptm_st_metadata(const ptm_st_file *f, const char *key);

/* One tensor to write. All pointers are borrowed for the call. */
struct ptm_st_entry {
    const char *name; /* UTF-8, non-empty, unique, not "__metadata__" */
    ptm_dtype dtype;
    int32_t ndim; /* 0 .. PTM_ST_MAX_DIMS */
    int64_t shape[PTM_ST_MAX_DIMS];
    const void *data; /* nbytes bytes; may be NULL only when nbytes is 0 */
    uint64_t nbytes;  /* must equal product(shape) * ptm_dtype_size(dtype) */
};

/*
 * ptm_st_write - write one safetensors file atomically: "<path>.tmp" in the same directory is
 * written, fsynced and renamed over path, then the directory is fsynced.
 *
 * t, n: the tensors; their data is laid out in the given order. The header's keys are
 * sorted by name with "__metadata__" first, compact JSON, padded with spaces so the data
 * starts at a multiple of 8 bytes.
 * metadata: NULL, or a NULL-terminated list key, value, key, value, ... of UTF-8 strings
 * (written sorted by key; keys must be unique).
 * Returns PTM_E_INVAL (bad entry: message names the tensor and the field), PTM_E_IO (message
 * names the file and the system error), PTM_E_NOMEM. On failure path is untouched and the
 * temporary file is removed. Thread safety: concurrent writes to the same path race.
 */
PTM_API ptm_status ptm_st_write(const char *path, const struct ptm_st_entry *t, size_t n,
                                const char *const *metadata);

/*
 * ptm_st_save - save a checkpoint into dir (which must exist), crash-atomically.
 *
 * When the whole checkpoint fits in max_shard_bytes (or has at most one shard), it is one
 * file "model.safetensors" ("model.V.safetensors" for variant V). Otherwise tensors are split
 * as transformers does (in order; a new shard starts when the next tensor would exceed
 * max_shard_bytes; a tensor larger than that gets a shard of its own) into
 * "model-00001-of-0000N.safetensors" ("model.V-00001-of-0000N.safetensors") plus the index
 * "model.safetensors.index.json" ("model.safetensors.index.V.json") holding
 * {"metadata": {"total_size": bytes}, "weight_map": {name: shard, ...}} with sorted keys.
 * Every shard gets the same metadata. Within each file the data is laid out as the safetensors
 * library lays it out (by dtype, in its enum order descending, then by name), not in the given
 * order: tensors saved back from the files they were loaded from land at their old offsets.
 *
 * Atomicity, under the directory rule above: whenever the process dies, dir holds the
 * complete old checkpoint or the complete new one. New files are written as temporaries,
 * fsynced and renamed; the step that switches the rule to the new files (renaming the new
 * single file, renaming the new index, or removing the old single file) comes after all of
 * them are durable. Shard names that the old index still uses are first written under
 * "<shard>.staged" names, published through an index that names them, then linked to their
 * final names, and a second index switches to those. Old shards, index or single file that
 * the new checkpoint does not use (names matching this variant's patterns) and leftover
 * temporaries are removed last.
 *
 * variant: NULL or a plain name (no '/', not empty). t, n, metadata: as ptm_st_write.
 * max_shard_bytes: 0 means no limit. Returns as ptm_st_write. Not safe against another
 * process saving into the same dir at the same time.
 */
PTM_API ptm_status ptm_st_save(const char *dir, const char *variant, uint64_t max_shard_bytes,
                               const struct ptm_st_entry *t, size_t n, const char *const *metadata);

/*
 * ptm_size_parse - parse a size as transformers' max_shard_size accepts it: digits with an
 * optional decimal fraction and an optional unit, case-insensitive: KB, MB, GB, TB (powers of
 * 1000), KiB, MiB, GiB, TiB (powers of 1024), B; no unit means bytes. "5GB" = 5000000000,
 * "2GiB" = 2147483648, "1.5MB" = 1500000 (fractions of a byte truncate). Spaces between the
 * number and the unit are allowed.
 * Returns PTM_E_INVAL (message names the string) for anything else or on overflow; *bytes is
 * untouched then.
 */
PTM_API ptm_status ptm_size_parse(const char *s, uint64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif /* PTM_SAFETENSORS_H */
