/*
 * device_map.c - where each parameter of a model lives: HF from_pretrained's device_map
 * (issue 8). It reads the spec, checks it against the declared parameters and sets each
 * parameter's device before any weight is loaded. Running a model so placed is the op front
 * door's business (ops.c, xfer.c): no architecture and no backend is involved here.
 *
 * Specs (ptm_load_opts.device_map, ptm --device-map):
 *  - "auto": the devices of the best-scoring backend that has any (ptm_backend.score; a tie
 *    goes to the first registered, so a CPU-only OpenCL such as PoCL does not displace the
 *    CPU backend), parameters spread over them in declaration order, balanced by bytes.
 *    Backends report no free memory in this ABI, so there is no spill to the CPU: a model
 *    that does not fit fails to allocate, naming the device.
 *  - one device ("cpu", "opencl:0", "cuda:1"): everything there, as ptm_load_opts.device.
 *  - an explicit map of module-name prefix -> device, as a JSON object
 *    {"model.layers.0-10": "cpu", "model.layers.11-21": "cuda:0", "": "cpu"} or as pairs
 *    "model.layers.0-10=cpu,model.layers.11-21=cuda:0,=cpu". Keys are HF's dotted module
 *    names; a last component "A-B" stands for A, A+1, ..., B (inclusive); "" is the root.
 *    A parameter goes to the device of the longest key that is a prefix of its name on
 *    component boundaries ("model.layers.1" does not cover "model.layers.10"). Every
 *    parameter must be covered (HF checks the same), except the tied side of a tied pair,
 *    which shares its source's storage and so its device (a warning says so when the map
 *    asked otherwise). Keys that could name the same module (the same stem with index
 *    ranges that meet, or one key twice) and keys, or indices of a range, that cover no
 *    parameter are refused: they are mistakes, not intentions.
 *
 * Modules are never split: the runtime knows no module types, so it identifies them by
 * name. A leaf module (a parameter's name without its last component: a Linear's weight and
 * bias) is always kept whole. When the class declares _no_split_modules, each repeated
 * block (the name up to its first numeric component, an nn.ModuleList item such as
 * "model.layers.3" or "encoder.block.0") is kept whole too: every no-split class of the
 * bundled architectures (LlamaDecoderLayer, T5Block, BertLayer) is such an item. "auto"
 * places whole blocks; an explicit map that splits one is refused, naming it.
 */
#include "device_map.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backend.h"
#include "error.h"
#include "json_strict.h"
#include "log.h"
#include "tensor.h"

#define DM_MAX_RANGE        65536 /* indices one range key may span */
#define DM_MAX_AUTO_DEVICES 64

struct dm_entry {
    char *key;   /* as written, for messages */
    char *stem;  /* the key without a last numeric or range component */
    long lo, hi; /* that component's indices, or -1, -1 when the key ends in a name */
    ptm_device *dev;
    unsigned char *hit; /* per index (one flag without a range): it covered a parameter */
};

struct dm {
    struct dm_entry *e;
    size_t n, cap;
};

static void dm_free(struct dm *d)
{
    for (size_t i = 0; i < d->n; i++) {
        ptm__free(d->e[i].key);
        ptm__free(d->e[i].stem);
        ptm__free(d->e[i].hit);
    }
    ptm__free(d->e);
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return n > 0 && !(n > 1 && s[0] == '0') && n < 10; /* no leading zeros, fits in a long */
}

/* Split key into stem and index range; checks every component. */
static ptm_status parse_key(struct dm_entry *e)
{
    const char *k = e->key, *last = strrchr(k, '.');
    last = last ? last + 1 : k;
    for (const char *c = k; *k && c <= last;) {
        const char *dot = strchr(c, '.');
        size_t n = dot ? (size_t)(dot - c) : strlen(c);
        if (n == 0) {
            return ptm__fail(PTM_E_INVAL, "device_map: key \"%s\": empty module name component", k);
        }
        if (c != last && memchr(c, '-', n) != NULL) {
            return ptm__fail(PTM_E_INVAL,
                             "device_map: key \"%s\": a range may only be the last component", k);
        }
        c += n + 1;
    }
    e->lo = e->hi = -1;
    size_t stem_len = strlen(k);
    const char *dash = strchr(last, '-');
    if (dash != NULL) {
        if (!all_digits(last, (size_t)(dash - last)) || !all_digits(dash + 1, strlen(dash + 1))) {
            return ptm__fail(PTM_E_INVAL,
                             "device_map: key \"%s\": ill-formed range \"%s\" (expected "
                             "FIRST-LAST, e.g. model.layers.0-10)",
                             k, last);
        }
        e->lo = strtol(last, NULL, 10);
        e->hi = strtol(dash + 1, NULL, 10);
        if (e->lo > e->hi || e->hi - e->lo >= DM_MAX_RANGE) {
            return ptm__fail(PTM_E_INVAL, "device_map: key \"%s\": range %ld-%ld is %s", k, e->lo,
                             e->hi, e->lo > e->hi ? "empty (first > last)" : "too long");
        }
    } else if (*k && all_digits(last, strlen(last))) {
        e->lo = e->hi = strtol(last, NULL, 10);
    }
    if (e->lo >= 0) {
        stem_len = last == k ? 0 : (size_t)(last - 1 - k);
    }
    e->stem = ptm__strndup(k, stem_len);
    e->hit = ptm__calloc(e->lo >= 0 ? (size_t)(e->hi - e->lo + 1) : 1, 1);
    return e->stem && e->hit ? PTM_OK : ptm__fail(PTM_E_NOMEM, "device_map: out of memory");
}

static ptm_status add_entry(struct dm *d, const char *key, size_t key_len, const char *device)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct dm_entry *e = ptm__realloc(d->e, cap * sizeof *e);
        if (e == NULL) {
            return ptm__fail(PTM_E_NOMEM, "device_map: out of memory");
        }
        d->e = e;
        d->cap = cap;
    }
    struct dm_entry *e = &d->e[d->n++];
    memset(e, 0, sizeof *e);
    if ((e->key = ptm__strndup(key, key_len)) == NULL) {
        return ptm__fail(PTM_E_NOMEM, "device_map: out of memory");
    }
    ptm_status st = parse_key(e);
    if (st == PTM_OK && (st = ptm_device_get(device, &e->dev)) != PTM_OK) {
        char what[160];
        snprintf(what, sizeof what, "device_map: key \"%s\"", e->key);
        ptm__error_prefix(what);
    }
    return st;
}

static ptm_status parse_json(const char *spec, struct dm *d)
{
    struct ptm__jstrict_doc *doc = NULL;
    const struct ptm__jstrict *root = NULL;
    ptm_status st = ptm__jstrict_parse(spec, strlen(spec), "device_map", &doc, &root);
    if (st == PTM_OK && root->kind != PTM__JSTRICT_OBJ) {
        st = ptm__fail(PTM_E_INVAL, "device_map: expected a JSON object, got %s",
                       ptm__jstrict_kind_name(root->kind));
    }
    for (size_t i = 0; st == PTM_OK && i < root->len; i++) {
        const struct ptm__jstrict *v = &root->items[i];
        if (v->kind != PTM__JSTRICT_STR) {
            st = ptm__fail(PTM_E_INVAL,
                           "device_map: key \"%s\": the device must be a string such as "
                           "\"cpu\" or \"cuda:0\", got a %s",
                           root->keys[i], ptm__jstrict_kind_name(v->kind));
        } else {
            st = add_entry(d, root->keys[i], strlen(root->keys[i]), v->str);
        }
    }
    ptm__jstrict_free(doc);
    return st;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1])) {
        (*n)--;
    }
}

/* "key=device,key=device" */
static ptm_status parse_pairs(const char *spec, struct dm *d)
{
    ptm_status st = PTM_OK;
    for (const char *p = spec; st == PTM_OK && p != NULL;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq == NULL) {
            return ptm__fail(PTM_E_INVAL, "device_map: \"%.*s\": expected KEY=DEVICE", (int)n, p);
        }
        const char *key = p, *dev = eq + 1;
        size_t key_len = (size_t)(eq - p), dev_len = n - key_len - 1;
        trim(&key, &key_len);
        trim(&dev, &dev_len);
        char device[64];
        if (dev_len == 0 || dev_len >= sizeof device) {
            return ptm__fail(PTM_E_INVAL, "device_map: \"%.*s\": bad device name", (int)n, p);
        }
        memcpy(device, dev, dev_len);
        device[dev_len] = '\0';
        st = add_entry(d, key, key_len, device);
        p = comma ? comma + 1 : NULL;
    }
    return st;
}

/* Keys that could name the same module make the placement depend on their order. */
static ptm_status check_overlaps(const struct dm *d)
{
    for (size_t i = 0; i < d->n; i++) {
        for (size_t j = i + 1; j < d->n; j++) {
            const struct dm_entry *a = &d->e[i], *b = &d->e[j];
            if (strcmp(a->stem, b->stem) != 0 || (a->lo < 0) != (b->lo < 0)) {
                continue;
            }
            if (a->lo < 0) {
                return ptm__fail(PTM_E_INVAL, "device_map: key \"%s\" is given twice", a->key);
            }
            if (a->lo <= b->hi && b->lo <= a->hi) {
                long at = a->lo > b->lo ? a->lo : b->lo;
                return ptm__fail(PTM_E_INVAL,
                                 "device_map: keys \"%s\" and \"%s\" overlap (both cover "
                                 "%s%s%ld)",
                                 a->key, b->key, a->stem, a->stem[0] ? "." : "", at);
            }
        }
    }
    return PTM_OK;
}

static ptm_status parse_spec(const char *spec, struct dm *d)
{
    const char *s = spec;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    ptm_status st;
    if (*s == '{' || *s == '[') {
        st = parse_json(s, d);
    } else if (strchr(s, '=') != NULL) {
        st = parse_pairs(s, d);
    } else {
        st = add_entry(d, "", 0, s);
    }
    if (st == PTM_OK && d->n == 0) {
        st = ptm__fail(PTM_E_INVAL, "device_map: no entries");
    }
    return st == PTM_OK ? check_overlaps(d) : st;
}

/* How many leading characters of name e covers (on a component boundary), or -1; *idx is
 * the index it matched in its range. */
static long match_len(const struct dm_entry *e, const char *name, long *idx)
{
    size_t n = strlen(e->stem);
    const char *rest = name + n;
    if (strncmp(name, e->stem, n) != 0) {
        return -1;
    }
    if (e->lo < 0) {
        return n == 0 || *rest == '.' || *rest == '\0' ? (long)n : -1;
    }
    if (n > 0 && *rest++ != '.') {
        return -1;
    }
    size_t digits = strspn(rest, "0123456789");
    if (!all_digits(rest, digits) || (rest[digits] != '.' && rest[digits] != '\0')) {
        return -1;
    }
    *idx = strtol(rest, NULL, 10);
    return *idx >= e->lo && *idx <= e->hi ? (long)(rest + digits - name) : -1;
}

/* The entry covering name (longest match), or NULL; marks it as used. */
static struct dm_entry *lookup(struct dm *d, const char *name)
{
    struct dm_entry *best = NULL;
    long best_len = -1, best_idx = 0;
    for (size_t i = 0; i < d->n; i++) {
        long idx = 0, len = match_len(&d->e[i], name, &idx);
        if (len > best_len) {
            best = &d->e[i];
            best_len = len;
            best_idx = idx;
        }
    }
    if (best != NULL) {
        best->hit[best->lo >= 0 ? best_idx - best->lo : 0] = 1;
    }
    return best;
}

/* The source of tied parameter i, or -1. */
static long tied_source(const ptm_model *m, size_t i)
{
    const char *const *p = m->cls->tied_weights;
    for (; p != NULL && p[0] && p[1]; p += 2) {
        if (strcmp(p[0], m->params[i].name) == 0) {
            return ptm__model_find(m, p[1]);
        }
    }
    return -1;
}

static ptm_status place_explicit(ptm_model *m, struct dm *d)
{
    for (size_t i = 0; i < m->n_params; i++) {
        struct ptm__param *p = &m->params[i];
        const struct dm_entry *e = lookup(d, p->name);
        int tied = ptm__model_is_tied_target(m, p->name);
        if (e == NULL && !tied) {
            return ptm__fail(PTM_E_INVAL,
                             "device_map: parameter \"%s\" is not covered by any key (add its "
                             "module or a prefix of it, or \"\" for the rest)",
                             p->name);
        }
        p->dev = e ? e->dev : NULL; /* an uncovered tied parameter follows its source */
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct dm_entry *e = &d->e[i];
        for (long k = 0; k <= (e->lo >= 0 ? e->hi - e->lo : 0); k++) {
            if (e->hit[k]) {
                continue;
            }
            if (e->lo < 0 || e->lo == e->hi) {
                return ptm__fail(PTM_E_INVAL, "device_map: key \"%s\" covers no parameter of %s",
                                 e->key, m->cls->name);
            }
            return ptm__fail(PTM_E_INVAL,
                             "device_map: key \"%s\": %s%s%ld covers no parameter of %s", e->key,
                             e->stem, e->stem[0] ? "." : "", e->lo + k, m->cls->name);
        }
    }
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Modules by name: leaves and repeated blocks                                                  */

/* Length of name's leaf module: all but its last component. */
static size_t leaf_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* Length of name's repeated block (up to its first numeric component), or 0. */
static size_t block_len(const char *name)
{
    for (const char *c = name; *c;) {
        size_t n = strcspn(c, ".");
        if (c[n] == '.' && all_digits(c, n)) {
            return (size_t)(c + n - name);
        }
        c += n + (c[n] == '.');
    }
    return 0;
}

static int same_module(const char *a, const char *b, size_t n)
{
    return n > 0 && strncmp(a, b, n) == 0 && (b[n] == '.' || b[n] == '\0');
}

/* The first parameter before i (not tied) in i's module of length n(i), or -1. */
static long first_in_module(const ptm_model *m, size_t i, size_t (*len)(const char *))
{
    const char *name = m->params[i].name;
    size_t n = len(name);
    for (size_t j = 0; j < i; j++) {
        if (len(m->params[j].name) == n && same_module(name, m->params[j].name, n) &&
            !ptm__model_is_tied_target(m, m->params[j].name)) {
            return (long)j;
        }
    }
    return -1;
}

static ptm_status check_splits(const ptm_model *m)
{
    const char *const *ns = m->cls->no_split_modules;
    char classes[160] = "";
    for (size_t k = 0, n = 0; ns != NULL && ns[k] != NULL && n < sizeof classes; k++) {
        n += (size_t)snprintf(classes + n, sizeof classes - n, "%s%s", k ? ", " : "", ns[k]);
    }
    for (size_t i = 0; i < m->n_params; i++) {
        const struct ptm__param *p = &m->params[i];
        if (ptm__model_is_tied_target(m, p->name)) {
            continue;
        }
        long j = first_in_module(m, i, leaf_len);
        if (j >= 0 && m->params[j].dev != p->dev) {
            return ptm__fail(PTM_E_INVAL,
                             "device_map: module \"%.*s\" would be split across %s and %s "
                             "(a module's parameters share one device)",
                             (int)leaf_len(p->name), p->name, m->params[j].dev->name, p->dev->name);
        }
        j = classes[0] ? first_in_module(m, i, block_len) : -1;
        if (j >= 0 && m->params[j].dev != p->dev) {
            return ptm__fail(PTM_E_INVAL,
                             "device_map: module \"%.*s\" would be split across %s and %s, "
                             "but %s keeps it whole (_no_split_modules: %s)",
                             (int)block_len(p->name), p->name, m->params[j].dev->name, p->dev->name,
                             m->cls->name, classes);
        }
    }
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* "auto"                                                                                       */

/* The devices of the best-scoring backend that has any. */
static ptm_status auto_devices(ptm_device **devs, int *k)
{
    const struct ptm__backend *best = NULL;
    int32_t best_score = 0;
    for (size_t i = 0; i < ptm_backend_count(); i++) {
        struct ptm__backend *b = ptm__backend_get(ptm_backend_name_at(i));
        if (b == NULL) {
            ptm__error_clear(); /* a backend that cannot start is not a candidate */
            continue;
        }
        const struct ptm_backend *be = b->be;
        int32_t score = PTM_HAS(be, struct ptm_backend, score) && be->score ? be->score(b->ctx) : 1;
        if (b->n_devices > 0 && score > best_score) {
            best = b;
            best_score = score;
        }
    }
    *k = 0;
    for (int32_t d = 0; best != NULL && d < best->n_devices && *k < DM_MAX_AUTO_DEVICES; d++) {
        char name[64];
        snprintf(name, sizeof name, "%s:%d", best->be->name, (int)d);
        ptm_status st = ptm_device_get(name, &devs[(*k)++]);
        if (st != PTM_OK) {
            return st;
        }
    }
    return *k > 0 ? PTM_OK : ptm_device_get("cpu", &devs[(*k)++]);
}

static int64_t param_bytes(const struct ptm__param *p)
{
    int64_t n = (int64_t)ptm_dtype_size(p->dtype);
    for (int32_t d = 0; d < p->ndim; d++) {
        n *= p->shape[d];
    }
    return n;
}

/* A parameter's unit of placement: its repeated block, else its leaf module. */
static size_t unit_len(const char *name)
{
    size_t n = block_len(name);
    return n > 0 ? n : leaf_len(name);
}

/* Units in declaration order, each on device floor(k * middle byte / total bytes). */
static ptm_status place_auto(ptm_model *m)
{
    ptm_device *devs[DM_MAX_AUTO_DEVICES];
    int k = 0;
    ptm_status st = auto_devices(devs, &k);
    if (st != PTM_OK) {
        return st;
    }
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        total += ptm__model_is_tied_target(m, m->params[i].name) ? 0 : param_bytes(&m->params[i]);
    }
    int64_t before = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        struct ptm__param *p = &m->params[i];
        if (ptm__model_is_tied_target(m, p->name)) {
            p->dev = NULL; /* it follows its source */
            continue;
        }
        long j = first_in_module(m, i, unit_len);
        if (j >= 0) {
            p->dev = m->params[j].dev;
            continue;
        }
        int64_t bytes = 0; /* the whole unit's, counted at its first parameter */
        for (size_t q = i; q < m->n_params; q++) {
            const char *o = m->params[q].name;
            if (unit_len(o) == unit_len(p->name) && same_module(p->name, o, unit_len(o)) &&
                !ptm__model_is_tied_target(m, o)) {
                bytes += param_bytes(&m->params[q]);
            }
        }
        double mid = total > 0 ? ((double)before + (double)bytes / 2) / (double)total : 0;
        int at = (int)(mid * k);
        p->dev = devs[at < k ? at : k - 1];
        before += bytes;
    }
    return PTM_OK;
}

/* ------------------------------------------------------------------------------------------ */

static ptm_status place(ptm_model *m, const char *spec)
{
    const char *s = spec;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (strcmp(s, "auto") == 0) {
        return place_auto(m);
    }
    struct dm d = {0};
    ptm_status st = parse_spec(spec, &d);
    if (st == PTM_OK) {
        st = place_explicit(m, &d);
    }
    dm_free(&d);
    return st;
}

ptm_status ptm__device_map_apply(ptm_model *m, const struct ptm_load_opts *o)
{
    const char *spec = o && PTM_HAS(o, struct ptm_load_opts, device_map) ? o->device_map : NULL;
    if (spec == NULL) {
        return PTM_OK;
    }
    if (o->device != NULL) {
        return ptm__fail(PTM_E_INVAL,
                         "device_map \"%s\" and device \"%s\" are both set; give one (a single "
                         "device is a device_map too)",
                         spec, o->device);
    }
    ptm_status st = place(m, spec);
    for (size_t i = 0; st == PTM_OK && i < m->n_params; i++) {
        if (m->params[i].dev != NULL) {
            m->dev = m->params[i].dev; /* HF's model.device: the first parameter's */
            break;
        }
    }
    for (size_t i = 0; st == PTM_OK && i < m->n_params; i++) {
        struct ptm__param *p = &m->params[i];
        if (!ptm__model_is_tied_target(m, p->name)) {
            continue;
        }
        long src = tied_source(m, i); /* sharing storage, a tied pair shares a device */
        ptm_device *dev = src >= 0 && m->params[src].dev ? m->params[src].dev : m->dev;
        if (p->dev != NULL && p->dev != dev) {
            PTM_WARN("device_map: %s is tied to %s and stays with it on %s, not on %s", p->name,
                     src >= 0 ? m->params[src].name : "its source", dev->name, p->dev->name);
        }
        p->dev = dev;
    }
    if (st == PTM_OK) {
        st = check_splits(m);
    }
    for (size_t i = 0; st == PTM_OK && i < m->n_params; i++) {
        if (i == 0 || m->params[i].dev != m->params[i - 1].dev) {
            st = ptm__model_attn(m->params[i].dev, o);
        }
    }
    return st;
}
