/*
 * model_save.c - save_pretrained: the weights through the safetensors writer (single file
 * or shards with an index, crash-atomic) and config.json (the diff from defaults, as HF
 * writes it, with architectures set to the model's class). A weight tied to another is
 * stored once, under the source's name, as HF does. push_to_hub is save_pretrained into a
 * temporary folder followed by ptm_hub_push (hub_push.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dir_swap.h"
#include "atomic_file.h"
#include "error.h"
#include "half.h"
#include "log.h"
#include "model.h"
#include "ptm/ptm_generate.h"
#include "tensor.h"

static ptm_status make_dir(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return ptm__fail(PTM_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return ptm__fail(PTM_E_IO, "%s: not a directory", dir);
    }
    return PTM_OK;
}

static int is_float(ptm_dtype dt)
{
    return dt == PTM_F32 || dt == PTM_F16 || dt == PTM_BF16;
}

/* A host copy of t converted to dtype (float types only). */
static ptm_status converted(ptm_tensor *t, ptm_dtype dtype, void **out)
{
    size_t n = (size_t)ptm_tensor_numel(t);
    float *buf = ptm__malloc(n * sizeof *buf + 1);
    void *raw = buf ? ptm__malloc(ptm_tensor_nbytes(t) + 1) : NULL;
    ptm_status st = raw ? ptm_tensor_read(t, raw, ptm_tensor_nbytes(t))
                        : ptm__fail(PTM_E_NOMEM, "save: out of memory");
    if (st == PTM_OK) {
        ptm__dtype_to_f32(buf, raw, n, ptm_tensor_dtype(t));
        ptm__f32_to_dtype(buf, buf, n, dtype);
        *out = buf;
        buf = NULL;
    }
    ptm__free(raw);
    ptm__free(buf);
    return st;
}

/* Host copies of the weights for the writer, tied weights skipped. A float weight is written
 * in dtype when one was asked for, else in the model's dtype (vectors are widened to F32 on
 * load, exactly, so this narrows them back to what the checkpoint had), keep_in_fp32 ones in
 * F32. */
static ptm_status collect(const ptm_model *m, ptm_dtype dtype, struct ptm_st_entry *e,
                          void **copies, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const struct ptm__param *p = &m->params[i];
        if (p->tied_to >= 0) {
            continue;
        }
        struct ptm_st_entry *x = &e[*n];
        memset(x, 0, sizeof *x);
        x->name = p->name;
        x->dtype = ptm_tensor_dtype(p->t);
        x->ndim = p->ndim;
        memcpy(x->shape, p->shape, sizeof p->shape);
        x->nbytes = ptm_tensor_nbytes(p->t);
        void *host = ptm_tensor_is_contiguous(p->t) ? ptm_tensor_data(p->t) : NULL;
        ptm_dtype want = is_float(dtype) ? dtype : p->keep_f32 ? PTM_F32 : m->dtype;
        if (is_float(x->dtype) && is_float(want) && x->dtype != want) {
            ptm_status st = converted(p->t, want, &copies[*n]);
            if (st != PTM_OK) {
                return st;
            }
            host = copies[*n];
            x->dtype = want;
            x->nbytes = (uint64_t)ptm_tensor_numel(p->t) * ptm_dtype_size(want);
        } else if (host == NULL) {
            if ((copies[*n] = ptm__malloc(x->nbytes + 1)) == NULL) {
                return ptm__fail(PTM_E_NOMEM, "save: out of memory for %s", p->name);
            }
            ptm_status st = ptm_tensor_read(p->t, copies[*n], x->nbytes);
            if (st != PTM_OK) {
                return st;
            }
            host = copies[*n];
        }
        x->data = host;
        (*n)++;
    }
    return PTM_OK;
}

static const char *torch_name(ptm_dtype dt)
{
    return dt == PTM_BF16 ? "\"bfloat16\"" : dt == PTM_F16 ? "\"float16\"" : "\"float32\"";
}

static ptm_status save_config(const ptm_model *m, const char *dir, int full, int has_dtype,
                              ptm_dtype dtype)
{
    ptm_config *cfg = NULL;
    ptm_status st = ptm_config_copy(m->cfg, &cfg);
    if (st == PTM_OK && has_dtype) {
        st = ptm_config_set_json(cfg, "dtype", torch_name(dtype));
    }
    char arch[256], path[PATH_MAX];
    snprintf(arch, sizeof arch, "[\"%s\"]", m->cls->name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (st == PTM_OK) {
        st = ptm_config_set_json(cfg, "architectures", arch);
    }
    if (st == PTM_OK) {
        st = ptm_config_save(cfg, path, !full);
    }
    ptm_config_free(cfg);
    return st;
}

/*
 * The model card: README.md's YAML front matter lists the tags (add_model_tags) and
 * library_name, as huggingface_hub's ModelCard does. An existing README.md keeps its text;
 * only its front matter is replaced. Written only when there are tags.
 */
static ptm_status save_card(const ptm_model *m, const char *dir)
{
    if (m->tags.n == 0) {
        return PTM_OK;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/README.md", dir);
    char *old = NULL, *body = "";
    size_t old_n = 0;
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        old = n >= 0 ? ptm__malloc((size_t)n + 1) : NULL;
        old_n = old ? fread(old, 1, (size_t)n, f) : 0;
        fclose(f);
        if (old == NULL) {
            return ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
        }
        old[old_n] = '\0';
        body = old;
        if (strncmp(old, "---\n", 4) == 0) { /* skip the old front matter */
            char *end = strstr(old + 4, "\n---\n");
            body = end ? end + 5 : old;
        }
    }
    size_t cap = strlen(body) + 64;
    for (size_t i = 0; i < m->tags.n; i++) {
        cap += strlen(m->tags.names[i]) + 8;
    }
    char *card = ptm__malloc(cap);
    ptm_status st = card ? PTM_OK : ptm__fail(PTM_E_NOMEM, "%s: out of memory", path);
    if (st == PTM_OK) {
        size_t w = (size_t)snprintf(card, cap, "---\nlibrary_name: transformers\ntags:\n");
        for (size_t i = 0; i < m->tags.n; i++) {
            w += (size_t)snprintf(card + w, cap - w, "- %s\n", m->tags.names[i]);
        }
        w += (size_t)snprintf(card + w, cap - w, "---\n%s", body);
        st = ptm__atomic_write(path, card, w);
    }
    ptm__free(card);
    ptm__free(old);
    return st;
}

ptm_status ptm_model_save_config(const ptm_model *m, const char *dir)
{
    ptm__error_clear();
    ptm_status st = m && dir ? make_dir(dir) : ptm__fail(PTM_E_INVAL, "save_config: NULL");
    return st == PTM_OK ? save_config(m, dir, 0, 0, PTM_F32) : st;
}

/* Write the whole checkpoint into dir (the swap's temporary sibling). */
static ptm_status save_into(const ptm_model *m, const char *dir, const struct ptm_save_opts *o)
{
    uint64_t max_shard = 5000000000ull;
    ptm_status st = PTM_OK;
    ptm_dtype dtype = PTM_DTYPE_COUNT; /* none asked */
    int has_dtype = o != NULL && PTM_HAS(o, struct ptm_save_opts, dtype) && o->dtype != NULL;
    if (o != NULL && o->max_shard_size != NULL) {
        st = ptm_size_parse(o->max_shard_size, &max_shard);
    }
    if (st == PTM_OK && has_dtype && (st = ptm_dtype_parse(o->dtype, &dtype)) == PTM_OK &&
        !is_float(dtype)) {
        st = ptm__fail(PTM_E_INVAL, "save: dtype %s is not a float type", o->dtype);
    }
    struct ptm_st_entry *entries = NULL;
    void **copies = NULL;
    size_t n = 0;
    if (st == PTM_OK) {
        entries = ptm__calloc(m->n_params + 1, sizeof *entries);
        copies = ptm__calloc(m->n_params + 1, sizeof *copies);
        if (entries == NULL || copies == NULL) {
            st = ptm__fail(PTM_E_NOMEM, "save: out of memory");
        }
    }
    if (st == PTM_OK) {
        st = collect(m, dtype, entries, copies, &n);
    }
    static const char *const metadata[] = {"format", "pt", NULL};
    if (st == PTM_OK) {
        st = ptm_st_save(dir, o ? o->variant : NULL, max_shard, entries, n, metadata);
    }
    if (st == PTM_OK) {
        st = save_config(m, dir, o ? o->full_config : 0, has_dtype, dtype);
    }
    if (st == PTM_OK && m->cls->can_generate) {
        /* HF writes generation_config.json beside the weights for generative classes: the
         * one the model came with, else one made from the config's special token ids. */
        struct ptm_generate_opts g = {.struct_size = sizeof g};
        st = ptm_generate_opts_init(m, &g);
        if (st == PTM_OK) {
            st = ptm_generate_opts_save(&g, dir);
        }
    }
    if (st == PTM_OK) {
        st = save_card(m, dir);
    }
    for (size_t i = 0; copies != NULL && i <= m->n_params; i++) {
        ptm__free(copies[i]);
    }
    ptm__free(copies);
    ptm__free(entries);
    return st;
}

/*
 * The checkpoint's files (weights, config.json, generation_config.json, README.md) must
 * change together: a reader must never see new weights with an old config. So the new files
 * are written into a sibling directory that starts as hard links of dir's current files
 * (other files, such as a tokenizer's, carry over) and the two are exchanged in one step.
 */
ptm_status ptm_model_save(const ptm_model *m, const char *dir, const struct ptm_save_opts *o)
{
    ptm__error_clear();
    if (m == NULL || dir == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_model_save: NULL argument");
    }
    if (m->quantized) {
        /* Q8_0 is no safetensors dtype, and HF could not load it back. */
        return ptm__fail(PTM_E_UNSUPPORTED,
                         "%s: the model is quantized (int8); call ptm_model_dequantize before "
                         "saving",
                         dir);
    }
    struct ptm__dir_swap swap;
    ptm_status st = ptm__dir_swap_begin(dir, &swap);
    if (st != PTM_OK) {
        return st;
    }
    st = save_into(m, swap.tmp, o);
    if (st != PTM_OK) {
        ptm__dir_swap_abort(&swap);
        return st;
    }
    return ptm__dir_swap_commit(&swap);
}

ptm_status ptm_model_push_to_hub(const ptm_model *m, const char *repo_id,
                                 const struct ptm_save_opts *save,
                                 const struct ptm_hub_push_opts *push, char **commit_url)
{
    ptm__error_clear();
    if (commit_url != NULL) {
        *commit_url = NULL;
    }
    if (m == NULL || repo_id == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_model_push_to_hub: NULL argument");
    }
    const char *base = getenv("TMPDIR");
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/ptm_push_XXXXXX", base && base[0] ? base : "/tmp");
    if (n < 0 || (size_t)n >= sizeof dir || mkdtemp(dir) == NULL) {
        return ptm__fail(PTM_E_IO, "%s: cannot create a temporary directory: %s", dir,
                         strerror(errno));
    }
    /* Both calls clear the error first; a failure of save leaves its message for the caller. */
    ptm_status st = ptm_model_save(m, dir, save);
    if (st == PTM_OK) {
        st = ptm_hub_push(dir, repo_id, push, commit_url);
    }
    ptm__rm_tree(dir);
    return st;
}
