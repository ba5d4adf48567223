/*
 * device_map.h - placing a model's parameters across devices (HF from_pretrained's
 * device_map, issue 8) and reporting where each module went (hf_device_map). The rules are
 * in device_map.c's opening comment; running a model so placed is ops.c's and xfer.c's.
 */
#ifndef PTM_RUNTIME_DEVICE_MAP_H
#define PTM_RUNTIME_DEVICE_MAP_H

#include "model.h"

/*
 * Give every declared parameter of m its device from o->device_map (nothing to do when o or
 * its device_map is NULL: every parameter stays on m->dev) and set m->dev, the main device,
 * to the first parameter's. Called after declare, before any weight is loaded. PTM_E_INVAL
 * for a map that cannot apply (ill-formed key, overlapping keys, a parameter no key covers,
 * a key that covers nothing, a module split across devices), PTM_E_NOT_FOUND for an unknown
 * device; the message names the key, the parameter or the module.
 */
ptm_status ptm__device_map_apply(ptm_model *m, const struct ptm_load_opts *o);

/* Record where each module's parameters are now (after loading and tying) in m->placed. */
ptm_status ptm__device_report_make(ptm_model *m);

/* Free a report's contents; it is empty afterwards. */
void ptm__device_report_clear(struct ptm__device_report *r);

#endif
