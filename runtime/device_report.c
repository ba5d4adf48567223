/*
 * device_report.c - where each module of a model went (HF's hf_device_map), as
 * ptm_model_device_map_at() reports it and `ptm info` prints it. It only reads where the
 * parameters' storage is; placing them is device_map.c's job.
 *
 * The report is as short as HF's cleaned device maps: a module appears only when some module
 * above it spans several devices (a model on one device is the single entry "" -> device),
 * and runs of numbered siblings on one device are folded into device_map's range form
 * ("model.layers.0-10"), so the report is itself a valid explicit device_map.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "device_map.h"
#include "error.h"
#include "tensor.h"

void ptm__device_report_clear(struct ptm__device_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ptm__free(r->names[i]);
    }
    ptm__free(r->names);
    ptm__free(r->devs);
    memset(r, 0, sizeof *r);
}

static int under(const char *name, const char *module, size_t n)
{
    return n == 0 || (strncmp(name, module, n) == 0 && (name[n] == '.' || name[n] == '\0'));
}

/* Whether every parameter under module[0..n) lives on dev. */
static int uniform(const ptm_model *m, const char *module, size_t n, const ptm_device *dev)
{
    for (size_t i = 0; i < m->n_params; i++) {
        if (under(m->params[i].name, module, n) && ptm_tensor_device(m->params[i].t) != dev) {
            return 0;
        }
    }
    return 1;
}

static ptm_status push(struct ptm__device_report *r, const char *name, size_t n, ptm_device *dev)
{
    char **names = ptm__realloc(r->names, (r->n + 1) * sizeof *names);
    if (names != NULL) {
        r->names = names;
    }
    ptm_device **devs = names ? ptm__realloc(r->devs, (r->n + 1) * sizeof *devs) : NULL;
    if (devs != NULL) {
        r->devs = devs;
    }
    char *copy = devs ? ptm__strndup(name, n) : NULL;
    if (copy == NULL) {
        return ptm__fail(PTM_E_NOMEM, "device map report: out of memory");
    }
    r->names[r->n] = copy;
    r->devs[r->n++] = dev;
    return PTM_OK;
}

/* The stem and index of "stem.N" (N a plain number), or -1. */
static long numbered(const char *name, size_t *stem_len)
{
    const char *dot = strrchr(name, '.');
    const char *last = dot ? dot + 1 : name;
    size_t n = strlen(last);
    if (n == 0 || n > 9 || strspn(last, "0123456789") != n || (n > 1 && last[0] == '0')) {
        return -1;
    }
    *stem_len = dot ? (size_t)(dot - name) : 0;
    return strtol(last, NULL, 10);
}

/* Fold runs of numbered siblings on one device into "stem.lo-hi". */
static ptm_status fold(const struct ptm__device_report *in, struct ptm__device_report *out)
{
    ptm_status st = PTM_OK;
    for (size_t i = 0; st == PTM_OK && i < in->n;) {
        size_t stem = 0, j = i + 1;
        long lo = numbered(in->names[i], &stem), hi = lo;
        while (lo >= 0 && j < in->n && in->devs[j] == in->devs[i]) {
            size_t s2 = 0;
            long k = numbered(in->names[j], &s2);
            if (k != hi + 1 || s2 != stem || strncmp(in->names[i], in->names[j], stem) != 0) {
                break;
            }
            hi = k;
            j++;
        }
        if (hi > lo) {
            char name[512];
            int n = snprintf(name, sizeof name, "%.*s%s%ld-%ld", (int)stem, in->names[i],
                             stem ? "." : "", lo, hi);
            st =
                push(out, name, (size_t)n < sizeof name ? (size_t)n : sizeof name - 1, in->devs[i]);
        } else {
            st = push(out, in->names[i], strlen(in->names[i]), in->devs[i]);
        }
        i = j;
    }
    return st;
}

ptm_status ptm__device_report_make(ptm_model *m)
{
    struct ptm__device_report modules = {0};
    ptm_status st = PTM_OK;
    ptm__device_report_clear(&m->placed);
    for (size_t i = 0; st == PTM_OK && i < m->n_params; i++) {
        const char *name = m->params[i].name;
        ptm_device *dev = ptm_tensor_device(m->params[i].t);
        size_t n = 0; /* the shortest module above the parameter that is on one device */
        while (n < strlen(name) && !uniform(m, name, n, dev)) {
            const char *dot = strchr(name + n + (n > 0), '.');
            n = dot ? (size_t)(dot - name) : strlen(name);
        }
        int seen = 0;
        for (size_t k = 0; k < modules.n && !seen; k++) {
            seen = strlen(modules.names[k]) == n && strncmp(modules.names[k], name, n) == 0;
        }
        if (!seen) {
            st = push(&modules, name, n, dev);
        }
    }
    if (st == PTM_OK) {
        st = fold(&modules, &m->placed);
    }
    ptm__device_report_clear(&modules);
    return st;
}

size_t ptm_model_device_map_count(const ptm_model *m)
{
    return m != NULL ? m->placed.n : 0;
}

const char *ptm_model_device_map_at(const ptm_model *m, size_t i, ptm_device **dev)
{
    if (m == NULL || i >= m->placed.n) {
        if (dev != NULL) {
            *dev = NULL;
        }
        return NULL;
    }
    if (dev != NULL) {
        *dev = m->placed.devs[i];
    }
    return m->placed.names[i];
}
