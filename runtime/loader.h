/*
 * loader.h - runtime-internal view of loaded plugins.
 */
#ifndef PTM_RUNTIME_LOADER_H
#define PTM_RUNTIME_LOADER_H

#include "ptm/ptm_plugin.h"

struct ptm__plugin {
    char *path;     /* as given or found on the search path */
    char *realpath; /* canonical, to recognise a file seen twice */
    void *handle;   /* dlopen handle; never closed once registered */
    const struct ptm_plugin_desc *desc;
};

/* Scan the search path once per process (later calls return at once). */
void ptm__plugins_scan_once(void);

#endif
