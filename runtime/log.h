/*
 * log.h - runtime-internal logging macros over the public ptm_log().
 */
#ifndef PTM_RUNTIME_LOG_H
#define PTM_RUNTIME_LOG_H

#include "ptm/ptm_base.h"

#define PTM_DEBUG(...) ptm_log(PTM_LOG_DEBUG, __VA_ARGS__)
#define PTM_INFO(...)  ptm_log(PTM_LOG_INFO, __VA_ARGS__)
#define PTM_WARN(...)  ptm_log(PTM_LOG_WARN, __VA_ARGS__)
#define PTM_ERROR(...) ptm_log(PTM_LOG_ERROR, __VA_ARGS__)

#endif
