/*
 * version.c - the runtime's version string.
 */
#include "ptm/ptm.h"

const char *ptm_version(void)
{
    return PTM_VERSION_STRING;
}
