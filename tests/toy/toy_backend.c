/*
 * toy_backend.c - a toy backend plugin: one "device" backed by host memory, no kernels.
 * Lets the tests list a backend, probe it and allocate through the registry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm_backend.h"
#include "ptm/ptm_plugin.h"

static ptm_status toy_init(void **ctx)
{
    *ctx = NULL;
    return PTM_OK;
}

static void toy_destroy(void *ctx)
{
}

static ptm_status toy_probe(void *ctx, int32_t *n)
{
    *n = 1;
    return PTM_OK;
}

static ptm_status toy_device_name(void *ctx, int32_t dev, char *buf, size_t cap)
{
    snprintf(buf, cap, "toy device %d", (int)dev);
    return PTM_OK;
}

static ptm_status toy_alloc(void *ctx, int32_t dev, size_t bytes, void **buf)
{
    *buf = calloc(1, bytes ? bytes : 1);
    return *buf ? PTM_OK : ptm_error_set(PTM_E_NOMEM, "toy: out of memory");
}

static void toy_free(void *ctx, void *buf)
{
    free(buf);
}

static const struct ptm_backend toy_backend = {
    .struct_size = sizeof(struct ptm_backend),
    .name = "toy",
    .init = toy_init,
    .destroy = toy_destroy,
    .probe = toy_probe,
    .device_name = toy_device_name,
    .buffer_alloc = toy_alloc,
    .buffer_free = toy_free,
};

static ptm_status toy_register(const struct ptm_registrar *reg)
{
    return reg->add_backend(reg, &toy_backend);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_BACKEND, "toybackend", "0.0.1", toy_register)
