/*
 * st_save.c - saving a checkpoint directory crash-atomically: splitting tensors into shards as
 * transformers does, naming files as transformers does, and ordering renames and removals so
 * that, under the directory rule in ptm_safetensors.h (the single file wins over the index),
 * every intermediate state loads as the complete old or the complete new checkpoint. Writing
 * one file is st_write.c.
 *
 * The switch to a new checkpoint is always one step, taken after everything it needs is
 * durable: renaming the new single file (it wins at once), renaming the new index when no
 * single file exists, or removing the old single file when a new index is already in place.
 * Old shards are only overwritten once no live index names them; when the new shard names
 * equal the live index's (a re-save with the same shard count), the new shards are published
 * first under "<name>.staged" through an index naming those, then hard-linked (or rewritten)
 * to their final names and switched to by a second index.
 */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

struct plan {
    size_t n_shards;
    size_t *shard_of;    /* per tensor */
    size_t *order;       /* tensor indices grouped by shard, in order within each */
    size_t *first;       /* n_shards + 1 offsets into order */
    char **names;        /* final shard file names */
    uint64_t total_size; /* sum of nbytes, the index's metadata.total_size */
};

static void plan_free(struct plan *p)
{
    for (size_t s = 0; p->names != NULL && s < p->n_shards; s++) {
        ptm__free(p->names[s]);
    }
    ptm__free(p->names);
    ptm__free(p->shard_of);
    ptm__free(p->order);
    ptm__free(p->first);
}

/* A dtype's place in the safetensors crate's Dtype enum (BOOL, U8, I8, F8_E5M2, F8_E4M3, I16,
 * F16, BF16, I32, F32, F64, I64, leaving out types ptm lacks). */
static int crate_rank(ptm_dtype dt)
{
    static const ptm_dtype order[] = {PTM_BOOL,    PTM_U8,  PTM_I8,  PTM_F8_E5M2,
                                      PTM_F8_E4M3, PTM_I16, PTM_F16, PTM_BF16,
                                      PTM_I32,     PTM_F32, PTM_F64, PTM_I64};
    for (int k = 0; k < (int)(sizeof order / sizeof order[0]); k++) {
        if (order[k] == dt) {
            return k;
        }
    }
    return -1;
}

/*
 * The data order of a file as the safetensors crate writes it (tensor.rs, prepare: dtype
 * descending, then name). Following it puts every tensor of a checkpoint saved back from the
 * transformers-written files it was mapped from at its old offset, so its bytes copy file to
 * file page for page, as cp would (st_copy.c); in any other order the kernel copies misaligned
 * pages at about twice the cost.
 */
static int cmp_layout(const void *a, const void *b, void *ctx)
{
    const struct ptm_st_entry *x = &((const struct ptm_st_entry *)ctx)[*(const size_t *)a];
    const struct ptm_st_entry *y = &((const struct ptm_st_entry *)ctx)[*(const size_t *)b];
    int rx = crate_rank(x->dtype), ry = crate_rank(y->dtype);
    return rx != ry ? (rx > ry ? -1 : 1) : strcmp(x->name, y->name);
}

/*
 * huggingface_hub split_state_dict_into_shards_factory: tensors in order; one larger than the
 * limit gets a shard of its own at once; otherwise a new shard starts when the next tensor
 * would push the current one past the limit.
 */
static ptm_status plan_shards(const struct ptm_st_entry *t, size_t n, uint64_t max,
                              const char *variant, struct plan *p)
{
    size_t cur_n = 0;
    uint64_t cur_size = 0;
    size_t *members = ptm__malloc((n ? n : 1) * sizeof *members);
    p->shard_of = ptm__malloc((n ? n : 1) * sizeof *p->shard_of);
    p->order = ptm__malloc((n ? n : 1) * sizeof *p->order);
    p->first = ptm__calloc(n + 2, sizeof *p->first);
    if (members == NULL || p->shard_of == NULL || p->order == NULL || p->first == NULL) {
        ptm__free(members);
        return ptm__fail(PTM_E_NOMEM, "safetensors save: out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t size = t[k].nbytes;
        p->total_size += size;
        if (max > 0 && size > max) {
            p->shard_of[k] = p->n_shards++;
            continue;
        }
        if (max > 0 && cur_size + size > max) {
            for (size_t m = 0; m < cur_n; m++) {
                p->shard_of[members[m]] = p->n_shards;
            }
            p->n_shards++;
            cur_n = 0;
            cur_size = 0;
        }
        members[cur_n++] = k;
        cur_size += size;
    }
    if (cur_n > 0) {
        for (size_t m = 0; m < cur_n; m++) {
            p->shard_of[members[m]] = p->n_shards;
        }
        p->n_shards++;
    }
    ptm__free(members);
    /* Counting sort by shard, stable, so each shard keeps the callers' order. */
    for (size_t k = 0; k < n; k++) {
        p->first[p->shard_of[k] + 1]++;
    }
    for (size_t s = 0; s < p->n_shards; s++) {
        p->first[s + 1] += p->first[s];
    }
    size_t *fill = ptm__calloc(p->n_shards + 1, sizeof *fill);
    p->names = ptm__calloc(p->n_shards + 1, sizeof *p->names);
    if (fill == NULL || p->names == NULL) {
        ptm__free(fill);
        return ptm__fail(PTM_E_NOMEM, "safetensors save: out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        size_t s = p->shard_of[k];
        p->order[p->first[s] + fill[s]++] = k;
    }
    ptm__free(fill);
    for (size_t s = 0; s < p->n_shards; s++) {
        qsort_r(p->order + p->first[s], p->first[s + 1] - p->first[s], sizeof *p->order, cmp_layout,
                (void *)t);
    }
    for (size_t s = 0; p->n_shards > 1 && s < p->n_shards; s++) {
        p->names[s] = ptm__st_fmt("model%s%s-%05zu-of-%05zu.safetensors", variant ? "." : "",
                                  variant ? variant : "", s + 1, p->n_shards);
        if (p->names[s] == NULL) {
            return ptm__fail(PTM_E_NOMEM, "safetensors save: out of memory");
        }
    }
    return PTM_OK;
}

/* A file name of this variant's shard pattern "model[.V]-DDDDD-of-DDDDD.safetensors" plus
 * an optional ".staged" and/or ".tmp"; *rest gets what follows ".safetensors". */
static int is_shard_name(const char *name, const char *variant, const char **rest)
{
    size_t vlen = variant ? strlen(variant) : 0;
    if (strncmp(name, "model", 5) != 0) {
        return 0;
    }
    name += 5;
    if (variant != NULL) {
        if (name[0] != '.' || strncmp(name + 1, variant, vlen) != 0) {
            return 0;
        }
        name += 1 + vlen;
    }
    static const char pat[] = "-DDDDD-of-DDDDD.safetensors";
    for (size_t k = 0; k < sizeof pat - 1; k++) {
        if (pat[k] == 'D' ? (name[k] < '0' || name[k] > '9') : name[k] != pat[k]) {
            return 0;
        }
    }
    *rest = name + sizeof pat - 1;
    return strcmp(*rest, "") == 0 || strcmp(*rest, ".staged") == 0 || strcmp(*rest, ".tmp") == 0 ||
           strcmp(*rest, ".staged.tmp") == 0;
}

static int in_list(char *const *names, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++) {
        if (names[k] != NULL && strcmp(names[k], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static void unlink_in(const char *dir, const char *name)
{
    char *path = ptm__st_fmt("%s/%s", dir, name);
    if (path != NULL) {
        unlink(path);
        ptm__free(path);
    }
}

/*
 * After the new checkpoint is live: remove this variant's shards the new one does not use,
 * staged copies and leftover temporaries. Failures here leave garbage, not a broken
 * checkpoint, so they are logged by nobody and ignored.
 */
static void cleanup(const char *dir, const char *variant, const struct plan *p,
                    const char *single_name, const char *index_name)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    char *tmp_single = ptm__st_fmt("%s.tmp", single_name);
    char *tmp_index = ptm__st_fmt("%s.tmp", index_name);
    while ((de = readdir(d)) != NULL) {
        const char *rest;
        if (is_shard_name(de->d_name, variant, &rest)) {
            if (rest[0] != '\0' || !in_list(p->names, p->n_shards, de->d_name)) {
                unlink_in(dir, de->d_name);
            }
        } else if ((tmp_single && strcmp(de->d_name, tmp_single) == 0) ||
                   (tmp_index && strcmp(de->d_name, tmp_index) == 0)) {
            unlink_in(dir, de->d_name);
        }
    }
    closedir(d);
    ptm__free(tmp_single);
    ptm__free(tmp_index);
    ptm__st_fsync_dir(dir);
}

static int cmp_by_name(const void *a, const void *b, void *ctx)
{
    const struct ptm_st_entry *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Write the index at path; each shard file name gets suffix ("" or ".staged"). */
static ptm_status write_index(const char *path, const struct ptm_st_entry *t, size_t n,
                              const struct plan *p, const char *suffix)
{
    size_t *by_name = ptm__malloc((n ? n : 1) * sizeof *by_name);
    const char **names = ptm__malloc((n ? n : 1) * sizeof *names);
    char **files = ptm__calloc(p->n_shards + 1, sizeof *files);
    const char **file_of = ptm__malloc((n ? n : 1) * sizeof *file_of);
    ptm_status st = PTM_OK;
    if (by_name == NULL || names == NULL || files == NULL || file_of == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t s = 0; st == PTM_OK && s < p->n_shards; s++) {
        if ((files[s] = ptm__st_fmt("%s%s", p->names[s], suffix)) == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
        }
    }
    if (st == PTM_OK) {
        for (size_t k = 0; k < n; k++) {
            by_name[k] = k;
        }
        qsort_r(by_name, n, sizeof *by_name, cmp_by_name, (void *)t);
        for (size_t k = 0; k < n; k++) {
            names[k] = t[by_name[k]].name;
            file_of[k] = files[p->shard_of[by_name[k]]];
        }
        char *json;
        size_t len;
        st = ptm__st_index_json(names, file_of, n, p->total_size, &json, &len);
        if (st == PTM_OK) {
            st = ptm__st_write_bytes(path, json, len);
            ptm__free(json);
        }
    }
    for (size_t s = 0; files != NULL && s < p->n_shards; s++) {
        ptm__free(files[s]);
    }
    ptm__free(files);
    ptm__free(file_of);
    ptm__free(names);
    ptm__free(by_name);
    return st;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

enum live { LIVE_NONE, LIVE_SINGLE, LIVE_INDEX };

/* What the directory rule loads now; for an index, *ix gets the shard names it uses. */
static ptm_status find_live(const char *single, const char *index, enum live *live,
                            struct ptm__st_index *ix)
{
    memset(ix, 0, sizeof *ix);
    *live = exists(single) ? LIVE_SINGLE : exists(index) ? LIVE_INDEX : LIVE_NONE;
    if (*live != LIVE_INDEX) {
        return PTM_OK;
    }
    char *buf;
    size_t n;
    ptm_status st = ptm__st_read_small(index, PTM_ST_MAX_HEADER_BYTES, &buf, &n);
    if (st == PTM_OK) {
        st = ptm__st_index_parse(buf, n, index, ix);
        ptm__free(buf);
    }
    if (st == PTM_E_NOMEM) {
        return st;
    }
    if (st != PTM_OK) {
        /* An unreadable old index loads nothing, so there is nothing of it to protect. */
        ptm__error_clear();
    }
    return PTM_OK;
}

static int index_uses(const struct ptm__st_index *ix, const char *name)
{
    for (size_t k = 0; k < ix->n_shards; k++) {
        if (strcmp(ix->shards[k], name) == 0) {
            return 1;
        }
    }
    return 0;
}

struct save {
    const char *dir;
    const struct ptm_st_entry *t;
    size_t n;
    const char *const *metadata;
    struct plan plan;
    char *single, *index; /* full paths */
};

static ptm_status write_shard(const struct save *sv, size_t s, const char *suffix)
{
    const struct plan *p = &sv->plan;
    char *path = ptm__st_fmt("%s/%s%s", sv->dir, p->names[s], suffix);
    if (path == NULL) {
        return ptm__fail(PTM_E_NOMEM, "%s: out of memory", sv->dir);
    }
    ptm_status st = ptm__st_write_file(path, sv->t, p->order + p->first[s],
                                       p->first[s + 1] - p->first[s], sv->metadata);
    ptm__free(path);
    return st;
}

/* Give staged shard s its final name without a moment where the final name is partial. */
static ptm_status promote_staged(const struct save *sv, size_t s)
{
    const char *name = sv->plan.names[s];
    char *staged = ptm__st_fmt("%s/%s.staged", sv->dir, name);
    char *tmp = ptm__st_fmt("%s/%s.tmp", sv->dir, name);
    char *final = ptm__st_fmt("%s/%s", sv->dir, name);
    ptm_status st = PTM_OK;
    if (staged == NULL || tmp == NULL || final == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", sv->dir);
    } else {
        unlink(tmp);
        if (link(staged, tmp) != 0 || rename(tmp, final) != 0) {
            unlink(tmp); /* no hard links here: write the data a second time */
            st = write_shard(sv, s, "");
        }
    }
    ptm__free(staged);
    ptm__free(tmp);
    ptm__free(final);
    return st;
}

static ptm_status save_sharded(const struct save *sv, enum live live,
                               const struct ptm__st_index *ix)
{
    const struct plan *p = &sv->plan;
    int collide = 0;
    ptm_status st = PTM_OK;
    for (size_t s = 0; live == LIVE_INDEX && s < p->n_shards; s++) {
        collide |= index_uses(ix, p->names[s]);
    }
    for (size_t s = 0; collide && s < p->n_shards; s++) {
        char *staged = ptm__st_fmt("%s.staged", p->names[s]);
        if (staged == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory", sv->dir);
        }
        int used = index_uses(ix, staged);
        ptm__free(staged);
        if (used) {
            return ptm__fail(PTM_E_EXISTS, "%s: the live index uses both %s and its .staged name",
                             sv->index, p->names[s]);
        }
    }
    for (size_t s = 0; st == PTM_OK && s < p->n_shards; s++) {
        st = write_shard(sv, s, collide ? ".staged" : "");
    }
    if (st == PTM_OK && collide) {
        st = write_index(sv->index, sv->t, sv->n, p, ".staged"); /* switch 1: staged names */
        for (size_t s = 0; st == PTM_OK && s < p->n_shards; s++) {
            st = promote_staged(sv, s);
        }
        if (st == PTM_OK) {
            st = ptm__st_fsync_dir(sv->dir);
        }
    }
    if (st == PTM_OK) {
        st = write_index(sv->index, sv->t, sv->n, p, ""); /* the switch, unless a single exists */
    }
    if (st == PTM_OK && live == LIVE_SINGLE) {
        /* The old single file wins over any index: removing it is the switch. */
        if (unlink(sv->single) != 0 && errno != ENOENT) {
            return ptm__fail(PTM_E_IO, "%s: cannot remove the old single file: %s", sv->single,
                             strerror(errno));
        }
        st = ptm__st_fsync_dir(sv->dir);
    }
    return st;
}

static ptm_status save_single(const struct save *sv)
{
    /* Renaming the new single file into place is the switch: it wins over any index. */
    ptm_status st =
        ptm__st_write_file(sv->single, sv->t, sv->n ? sv->plan.order : NULL, sv->n, sv->metadata);
    if (st == PTM_OK && unlink(sv->index) == 0) {
        st = ptm__st_fsync_dir(sv->dir);
    }
    return st;
}

static ptm_status check_args(const char *dir, const char *variant, const struct ptm_st_entry *t,
                             size_t n, const char *const *metadata)
{
    if (dir == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_save: dir is NULL");
    }
    if (variant != NULL && !ptm__st_plain_name(variant)) {
        return ptm__fail(PTM_E_INVAL, "ptm_st_save: variant \"%s\" is not a plain name", variant);
    }
    ptm_status st = ptm__st_check_entries(t, n, metadata);
    if (st != PTM_OK) {
        ptm__error_prefix(dir);
    }
    return st;
}

ptm_status ptm_st_save(const char *dir, const char *variant, uint64_t max_shard_bytes,
                       const struct ptm_st_entry *t, size_t n, const char *const *metadata)
{
    ptm__error_clear();
    ptm_status st = check_args(dir, variant, t, n, metadata);
    if (st != PTM_OK) {
        return st;
    }
    struct save sv = {.dir = dir, .t = t, .n = n, .metadata = metadata};
    char *single_name = ptm__st_single_name(variant);
    char *index_name = ptm__st_index_name(variant);
    if (single_name != NULL && index_name != NULL) {
        sv.single = ptm__st_fmt("%s/%s", dir, single_name);
        sv.index = ptm__st_fmt("%s/%s", dir, index_name);
    }
    if (sv.single == NULL || sv.index == NULL) {
        st = ptm__fail(PTM_E_NOMEM, "%s: out of memory", dir);
    }
    if (st == PTM_OK) {
        st = plan_shards(t, n, max_shard_bytes, variant, &sv.plan);
    }
    enum live live = LIVE_NONE;
    struct ptm__st_index ix = {0};
    if (st == PTM_OK) {
        st = find_live(sv.single, sv.index, &live, &ix);
    }
    if (st == PTM_OK) {
        st = sv.plan.n_shards > 1 ? save_sharded(&sv, live, &ix) : save_single(&sv);
    }
    if (st == PTM_OK) {
        cleanup(dir, variant, &sv.plan, single_name, index_name);
    }
    ptm__st_index_free(&ix);
    plan_free(&sv.plan);
    ptm__free(single_name);
    ptm__free(index_name);
    ptm__free(sv.single);
    ptm__free(sv.index);
    return st;
}
