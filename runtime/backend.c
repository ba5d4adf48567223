/*
 * backend.c - live backends: each registered backend's context is created and probed once,
 * on first use, and kept. Owns the public device queries; tensors and op dispatch use
 * ptm__backend_get() to reach a backend's table and context.
 */
#include "backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "loader.h"
#include "log.h"
#include "ptm/ptm.h"
#include "registry.h"
#include "tensor.h"

#define MAX_BACKENDS 32

static pthread_mutex_t live_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct ptm__backend live[MAX_BACKENDS];
static size_t n_live;

static ptm_status start(struct ptm__backend *b, const struct ptm_backend *be)
{
    b->be = be;
    ptm_status st = be->init(&b->ctx);
    if (st != PTM_OK) {
        return ptm__fail(st, "backend \"%s\": init failed", be->name);
    }
    b->n_devices = 0;
    if (PTM_HAS(be, struct ptm_backend, probe) && be->probe != NULL) {
        /* A probe that finds no device explains why in its message; keep it for callers. */
        const int had_error = ptm__error_is_set();
        b->probe_status = be->probe(b->ctx, &b->n_devices);
        if (!had_error && ptm__error_is_set()) {
            snprintf(b->probe_msg, sizeof b->probe_msg, "%s", ptm_last_error());
            ptm__error_clear();
        }
    } else {
        b->n_devices = 1;
    }
    if (b->probe_status != PTM_OK || b->n_devices < 0) {
        b->n_devices = 0;
    }
    PTM_DEBUG("backend: %s: %d device(s)%s%s", be->name, (int)b->n_devices,
              b->probe_msg[0] ? ": " : "", b->probe_msg);
    return PTM_OK;
}

struct ptm__backend *ptm__backend_get(const char *name)
{
    const struct ptm__backend_entry *e = ptm__registry_backend(name);
    if (e == NULL) {
        ptm__fail(PTM_E_NOT_FOUND, "backend \"%s\" is not registered", name);
        return NULL;
    }
    pthread_mutex_lock(&live_mutex);
    struct ptm__backend *b = NULL;
    for (size_t i = 0; i < n_live && b == NULL; i++) {
        if (live[i].be == e->be) {
            b = &live[i];
        }
    }
    if (b == NULL && n_live == MAX_BACKENDS) {
        ptm__fail(PTM_E_RANGE, "backend \"%s\": more than %d backends in use", name, MAX_BACKENDS);
    } else if (b == NULL) {
        if (start(&live[n_live], e->be) == PTM_OK) {
            b = &live[n_live++];
        } else {
            memset(&live[n_live], 0, sizeof live[n_live]);
        }
    }
    pthread_mutex_unlock(&live_mutex);
    return b;
}

size_t ptm_backend_count(void)
{
    return ptm__registry_backend_count();
}

const char *ptm_backend_name_at(size_t i)
{
    const struct ptm__backend_entry *e = ptm__registry_backend_at(i);
    return e != NULL ? e->be->name : NULL;
}

const char *ptm_backend_plugin(const char *backend)
{
    const struct ptm__backend_entry *e = backend ? ptm__registry_backend(backend) : NULL;
    return e != NULL && e->plugin != NULL ? e->plugin->desc->name : NULL;
}

ptm_status ptm_backend_devices(const char *backend, int32_t *n)
{
    ptm__error_clear();
    if (backend == NULL || n == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_backend_devices: NULL argument");
    }
    struct ptm__backend *b = ptm__backend_get(backend);
    if (b == NULL) {
        return PTM_E_NOT_FOUND;
    }
    *n = b->n_devices;
    if (b->n_devices == 0) {
        ptm__fail(PTM_E_NOT_FOUND, "%s", b->probe_msg[0] ? b->probe_msg : "no device");
    }
    return PTM_OK;
}

ptm_status ptm_backend_device_name(const char *backend, int32_t dev, char *buf, size_t cap)
{
    ptm__error_clear();
    if (backend == NULL || buf == NULL || cap == 0) {
        return ptm__fail(PTM_E_INVAL, "ptm_backend_device_name: NULL argument");
    }
    struct ptm__backend *b = ptm__backend_get(backend);
    if (b == NULL) {
        return PTM_E_NOT_FOUND;
    }
    if (dev < 0 || dev >= b->n_devices) {
        return ptm__fail(PTM_E_RANGE, "backend \"%s\": device %d out of range (%d devices)",
                         backend, (int)dev, (int)b->n_devices);
    }
    if (b->be->device_name == NULL) {
        snprintf(buf, cap, "%s:%d", b->be->name, (int)dev);
        return PTM_OK;
    }
    return b->be->device_name(b->ctx, dev, buf, cap);
}

/* ------------------------------------------------------------------------------------------ */
/* Devices: one handle per (backend, index), made on first request and kept.                  */

#define MAX_DEVICES 64

static struct ptm_device devices[MAX_DEVICES];
static size_t n_devices;

ptm_status ptm_device_get(const char *name, ptm_device **out)
{
    ptm__error_clear();
    *out = NULL;
    char backend[32];
    long index = 0;
    const char *colon = name ? strchr(name, ':') : NULL;
    size_t len = name == NULL ? 0 : colon ? (size_t)(colon - name) : strlen(name);
    if (len == 0 || len >= sizeof backend) {
        return ptm__fail(PTM_E_INVAL, "device \"%s\": expected \"backend\" or \"backend:index\"",
                         name ? name : "(null)");
    }
    memcpy(backend, name, len);
    backend[len] = '\0';
    if (colon != NULL) {
        char *end = NULL;
        index = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || index < 0 || index > 1024) {
            return ptm__fail(PTM_E_INVAL, "device \"%s\": bad device index", name);
        }
    }
    struct ptm__backend *b = ptm__backend_get(backend);
    if (b == NULL) {
        return PTM_E_NOT_FOUND;
    }
    if (index >= b->n_devices) {
        return ptm__fail(PTM_E_NOT_FOUND, "device \"%s\": backend %s has %d device(s)%s%s", name,
                         backend, (int)b->n_devices, b->probe_msg[0] ? ": " : "", b->probe_msg);
    }
    pthread_mutex_lock(&live_mutex);
    ptm_device *d = NULL;
    for (size_t i = 0; i < n_devices && d == NULL; i++) {
        if (devices[i].backend == b && devices[i].index == index) {
            d = &devices[i];
        }
    }
    if (d == NULL && n_devices < MAX_DEVICES) {
        d = &devices[n_devices++];
        d->backend = b;
        d->index = (int32_t)index;
        snprintf(d->name, sizeof d->name, "%s:%ld", backend, index);
    }
    pthread_mutex_unlock(&live_mutex);
    if (d == NULL) {
        return ptm__fail(PTM_E_RANGE, "device \"%s\": too many devices in use", name);
    }
    *out = d;
    return PTM_OK;
}

const char *ptm_device_name(const ptm_device *dev)
{
    return dev->name;
}
