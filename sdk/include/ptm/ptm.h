/*
 * ptm.h - the host API: the one header a host application includes.
 *
 * It pulls in the element types and tensors (ptm_tensor.h) and declares the runtime's
 * lifecycle: plugins and the registry, configs, models, tokenizers, generation.
 */
#ifndef PTM_H
#define PTM_H

#include "ptm_base.h"
#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ptm_version - the runtime's version string, e.g. "0.1.0". */
PTM_API const char *ptm_version(void);

#ifdef __cplusplus
}
#endif
#endif /* PTM_H */
