/*
 * st_write.c - writing one safetensors file atomically (temporary file, fsync, rename, fsync
 * of the directory), the header's JSON, validation of what is written, and HF size strings.
 * Splitting a checkpoint into shards and replacing an old one is st_save.c; the syscalls that
 * move tensor bytes into the file (a copy in the kernel from a mapped source) are st_copy.c.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "st_copy.h"

struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            cap *= 2;
        }
        char *p = ptm__realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal; s is valid UTF-8 (checked before writing), copied as is. Escapes
 * follow serde_json and Python's json: short forms where JSON has them, else \u00XX. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    static const char ctl[] = "\b\f\n\r\t", short_esc[] = "bfnrt";
    sb_put(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        unsigned char c = (unsigned char)*q;
        const char *hit = memchr(ctl, c, sizeof ctl - 1);
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (hit != NULL) {
            char esc[2] = {'\\', short_esc[hit - ctl]};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            int n = snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, (size_t)n);
        } else {
            sb_put(b, q, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether a sorted array of n strings has two equal neighbours; *dup gets one. */
static int has_duplicate(const char **sorted, size_t n, const char **dup)
{
    for (size_t k = 1; k < n; k++) {
        if (strcmp(sorted[k - 1], sorted[k]) == 0) {
            *dup = sorted[k];
            return 1;
        }
    }
    return 0;
}

static ptm_status check_entry(const struct ptm_st_entry *e, size_t k)
{
    if (e->name == NULL || e->name[0] == '\0' || strcmp(e->name, "__metadata__") == 0 ||
        !ptm__jstrict_utf8_valid(e->name, strlen(e->name))) {
        return ptm__fail(PTM_E_INVAL,
                         "safetensors write: tensor %zu: name \"%s\" is empty, "
                         "reserved or not UTF-8",
                         k, e->name ? e->name : "(null)");
    }
    if (ptm_dtype_size(e->dtype) == 0) {
        return ptm__fail(PTM_E_INVAL, "safetensors write: tensor \"%s\": dtype %d out of range",
                         e->name, (int)e->dtype);
    }
    if (e->ndim < 0 || e->ndim > PTM_ST_MAX_DIMS) {
        return ptm__fail(PTM_E_INVAL, "safetensors write: tensor \"%s\": ndim %d not in 0..%d",
                         e->name, (int)e->ndim, PTM_ST_MAX_DIMS);
    }
    uint64_t count = ptm_dtype_size(e->dtype);
    for (int32_t d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0 || __builtin_mul_overflow(count, (uint64_t)e->shape[d], &count)) {
            return ptm__fail(PTM_E_INVAL,
                             "safetensors write: tensor \"%s\": shape[%d] = %" PRId64
                             " is negative or overflows",
                             e->name, (int)d, e->shape[d]);
        }
    }
    if (count != e->nbytes || (e->data == NULL && e->nbytes > 0)) {
        return ptm__fail(PTM_E_INVAL,
                         "safetensors write: tensor \"%s\": nbytes %" PRIu64
                         " but shape and dtype give %" PRIu64 " (or data is NULL)",
                         e->name, e->nbytes, count);
    }
    return PTM_OK;
}

static ptm_status check_metadata(const char *const *metadata)
{
    size_t n = 0;
    while (metadata != NULL && metadata[2 * n] != NULL) {
        const char *k = metadata[2 * n], *v = metadata[2 * n + 1];
        if (v == NULL || !ptm__jstrict_utf8_valid(k, strlen(k)) ||
            !ptm__jstrict_utf8_valid(v, strlen(v))) {
            return ptm__fail(PTM_E_INVAL,
                             "safetensors write: metadata key \"%s\": value is NULL or not UTF-8",
                             k);
        }
        n++;
    }
    if (n < 2) {
        return PTM_OK;
    }
    const char **keys = ptm__malloc(n * sizeof *keys);
    if (keys == NULL) {
        return ptm__fail(PTM_E_NOMEM, "safetensors write: out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        keys[k] = metadata[2 * k];
    }
    qsort(keys, n, sizeof *keys, cmp_str_ptr);
    const char *dup;
    ptm_status st = PTM_OK;
    if (has_duplicate(keys, n, &dup)) {
        st = ptm__fail(PTM_E_INVAL, "safetensors write: duplicate metadata key \"%s\"", dup);
    }
    ptm__free(keys);
    return st;
}

ptm_status ptm__st_check_entries(const struct ptm_st_entry *t, size_t n,
                                 const char *const *metadata)
{
    if (t == NULL && n > 0) {
        return ptm__fail(PTM_E_INVAL, "safetensors write: tensors are NULL");
    }
    for (size_t k = 0; k < n; k++) {
        ptm_status st = check_entry(&t[k], k);
        if (st != PTM_OK) {
            return st;
        }
    }
    const char **names = ptm__malloc((n ? n : 1) * sizeof *names);
    if (names == NULL) {
        return ptm__fail(PTM_E_NOMEM, "safetensors write: out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        names[k] = t[k].name;
    }
    qsort(names, n, sizeof *names, cmp_str_ptr);
    const char *dup;
    ptm_status st = PTM_OK;
    if (has_duplicate(names, n, &dup)) {
        st = ptm__fail(PTM_E_INVAL, "safetensors write: duplicate tensor name \"%s\"", dup);
    }
    ptm__free(names);
    return st == PTM_OK ? check_metadata(metadata) : st;
}

struct hdr_item {
    const struct ptm_st_entry *e;
    uint64_t begin;
};

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const struct hdr_item *)a)->e->name, ((const struct hdr_item *)b)->e->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const char *const *)a)[0], ((const char *const *)b)[0]);
}

static void put_metadata(struct sbuf *b, const char *const *metadata)
{
    size_t n = 0;
    while (metadata[2 * n] != NULL) {
        n++;
    }
    const char **kv = ptm__malloc(2 * n * sizeof *kv);
    if (kv == NULL) {
        b->oom = 1;
        return;
    }
    memcpy(kv, metadata, 2 * n * sizeof *kv);
    qsort(kv, n, 2 * sizeof *kv, cmp_meta);
    sb_str(b, "\"__metadata__\":{");
    for (size_t k = 0; k < n; k++) {
        sb_str(b, k ? "," : "");
        sb_json_str(b, kv[2 * k]);
        sb_str(b, ":");
        sb_json_str(b, kv[2 * k + 1]);
    }
    sb_str(b, "}");
    ptm__free(kv);
}

/* The header: "__metadata__" first, then tensors sorted by name; data in the given order. */
static ptm_status build_header(struct sbuf *b, const struct ptm_st_entry *t, const size_t *sel,
                               size_t n, const char *const *metadata)
{
    struct hdr_item *items = ptm__malloc((n ? n : 1) * sizeof *items);
    if (items == NULL) {
        return ptm__fail(PTM_E_NOMEM, "safetensors write: out of memory");
    }
    uint64_t off = 0;
    for (size_t k = 0; k < n; k++) {
        items[k].e = &t[sel ? sel[k] : k];
        items[k].begin = off;
        off += items[k].e->nbytes;
    }
    qsort(items, n, sizeof *items, cmp_item);
    sb_str(b, "{");
    if (metadata != NULL && metadata[0] != NULL) {
        put_metadata(b, metadata);
        sb_str(b, n ? "," : "");
    }
    for (size_t k = 0; k < n; k++) {
        const struct ptm_st_entry *e = items[k].e;
        sb_str(b, k ? "," : "");
        sb_json_str(b, e->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, ptm_dtype_name(e->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int32_t d = 0; d < e->ndim; d++) {
            sb_str(b, d ? "," : "");
            sb_u64(b, (uint64_t)e->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, items[k].begin);
        sb_str(b, ",");
        sb_u64(b, items[k].begin + e->nbytes);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    /* Pad with spaces so the data buffer starts 8-byte aligned, as the Rust writer does. */
    while (!b->oom && b->n % 8 != 0) {
        sb_str(b, " ");
    }
    ptm__free(items);
    return b->oom ? ptm__fail(PTM_E_NOMEM, "safetensors write: out of memory") : PTM_OK;
}

ptm_status ptm__st_fsync_dir(const char *dir)
{
    int fd = open(dir && dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return ptm__fail(PTM_E_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    }
    int r = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems cannot fsync a directory (EINVAL); the rename is still ordered. */
    if (r != 0 && e != EINVAL) {
        return ptm__fail(PTM_E_IO, "%s: cannot fsync directory: %s", dir, strerror(e));
    }
    return PTM_OK;
}

/* Write pieces to "<path>.tmp", fsync, rename over path, fsync the directory. */
static ptm_status write_atomic(const char *path, const void *const *parts, const uint64_t *sizes,
                               size_t n_parts)
{
    char *tmp = ptm__st_fmt("%s.tmp", path);
    const char *slash = strrchr(path, '/');
    char *dir = slash ? ptm__strndup(path, (size_t)(slash - path) + (slash == path)) : NULL;
    if (tmp == NULL || (slash != NULL && dir == NULL)) {
        ptm__free(tmp);
        ptm__free(dir);
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    ptm_status st = PTM_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = ptm__fail(PTM_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    struct ptm__st_out out = {.fd = fd, .path = tmp};
    for (size_t k = 0; st == PTM_OK && k < n_parts; k++) {
        st = ptm__st_out_put(&out, parts[k], sizes[k]);
    }
    if (st == PTM_OK && fsync(fd) != 0) {
        st = ptm__fail(PTM_E_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    }
    if (st == PTM_OK) {
        ptm__st_out_synced(&out);
    }
    if (fd >= 0 && close(fd) != 0 && st == PTM_OK) {
        st = ptm__fail(PTM_E_IO, "%s: close failed: %s", tmp, strerror(errno));
    }
    if (st == PTM_OK && rename(tmp, path) != 0) {
        st = ptm__fail(PTM_E_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    if (st != PTM_OK && fd >= 0) {
        unlink(tmp);
    }
    if (st == PTM_OK) {
        st = ptm__st_fsync_dir(dir);
    }
    ptm__free(tmp);
    ptm__free(dir);
    return st;
}

ptm_status ptm__st_write_bytes(const char *path, const void *buf, size_t n)
{
    const void *parts[1] = {buf};
    uint64_t sizes[1] = {n};
    return write_atomic(path, parts, sizes, 1);
}

ptm_status ptm__st_write_file(const char *path, const struct ptm_st_entry *t, const size_t *sel,
                              size_t n, const char *const *metadata)
{
    struct sbuf hdr = {0};
    ptm_status st = build_header(&hdr, t, sel, n, metadata);
    const void **parts = ptm__malloc((n + 2) * sizeof *parts);
    uint64_t *sizes = ptm__malloc((n + 2) * sizeof *sizes);
    if (st == PTM_OK && (parts == NULL || sizes == NULL)) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    if (st == PTM_OK) {
        unsigned char len8[8];
        for (int k = 0; k < 8; k++) {
            len8[k] = (unsigned char)((uint64_t)hdr.n >> (8 * k));
        }
        parts[0] = len8;
        sizes[0] = 8;
        parts[1] = hdr.p;
        sizes[1] = hdr.n;
        for (size_t k = 0; k < n; k++) {
            parts[k + 2] = t[sel ? sel[k] : k].data;
            sizes[k + 2] = t[sel ? sel[k] : k].nbytes;
        }
        st = write_atomic(path, parts, sizes, n + 2);
    }
    ptm__free(parts);
    ptm__free(sizes);
    ptm__free(hdr.p);
    return st;
}

ptm_status ptm__st_index_json(const char *const *names, const char *const *files, size_t n,
                              uint64_t total_size, char **out, size_t *len)
{
    struct sbuf b = {0};
    sb_str(&b, "{\n  \"metadata\": {\n    \"total_size\": ");
    sb_u64(&b, total_size);
    sb_str(&b, "\n  },\n  \"weight_map\": {");
    for (size_t k = 0; k < n; k++) {
        sb_str(&b, k ? ",\n    " : "\n    ");
        sb_json_str(&b, names[k]);
        sb_str(&b, ": ");
        sb_json_str(&b, files[k]);
    }
    sb_str(&b, n ? "\n  }\n}\n" : "}\n}\n");
    if (b.oom) {
        ptm__free(b.p);
        return ptm__fail(PTM_E_NOMEM, "safetensors save: out of memory for the index");
    }
    *out = b.p;
    *len = b.n;
    return PTM_OK;
}

ptm_status ptm_st_write(const char *path, const struct ptm_st_entry *t, size_t n,
                        const char *const *metadata)
{
    ptm__error_clear();
    if (path == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_write: path is NULL");
    }
    ptm_status st = ptm__st_check_entries(t, n, metadata);
    if (st != PTM_OK) {
        ptm__error_prefix(path);
        return st;
    }
    return ptm__st_write_file(path, t, NULL, n, metadata);
}

ptm_status ptm_size_parse(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"kb", 1000ull},
        {"mb", 1000000ull},
        {"gb", 1000000000ull},
        {"tb", 1000000000000ull},
        {"kib", 1ull << 10},
        {"mib", 1ull << 20},
        {"gib", 1ull << 30},
        {"tib", 1ull << 40},
    };
    ptm__error_clear();
    if (s == NULL || bytes == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_size_parse: NULL argument");
    }
    const char *p = s;
    uint64_t whole = 0, frac = 0, frac_div = 1;
    int overflow = 0, digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        overflow |= __builtin_mul_overflow(whole, 10, &whole);
        overflow |= __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole);
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (frac_div < 1000000) { /* 6 digits: frac * 2^40 still fits 64 bits */
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_div *= 10;
            }
        }
    }
    while (*p == ' ') {
        p++;
    }
    for (size_t k = 0; digits > 0 && k < sizeof units / sizeof units[0]; k++) {
        if (strcasecmp(p, units[k].unit) != 0) {
            continue;
        }
        uint64_t v;
        overflow |= __builtin_mul_overflow(whole, units[k].mult, &v);
        overflow |= __builtin_add_overflow(v, frac * units[k].mult / frac_div, &v);
        if (overflow) {
            break;
        }
        *bytes = v;
        return PTM_OK;
    }
    return ptm__fail(PTM_E_INVAL,
                     "size \"%s\": expected digits and an optional unit (KB, MB, GB, TB, KiB, "
                     "MiB, GiB, TiB), within 64 bits",
                     s);
}
