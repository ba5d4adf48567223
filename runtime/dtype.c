/*
 * dtype.c - names and sizes of element types. Owns the safetensors and PyTorch spellings.
 */
#include <string.h>
#include <strings.h>

#include "error.h"
#include "ptm/ptm_tensor.h"

static const struct {
    const char *st_name;
    size_t size;
} dtypes[PTM_DTYPE_COUNT] = {
    [PTM_F32] = {"F32", 4},   [PTM_F16] = {"F16", 2},         [PTM_BF16] = {"BF16", 2},
    [PTM_I8] = {"I8", 1},     [PTM_I32] = {"I32", 4},         [PTM_I64] = {"I64", 8},
    [PTM_F64] = {"F64", 8},   [PTM_I16] = {"I16", 2},         [PTM_U8] = {"U8", 1},
    [PTM_BOOL] = {"BOOL", 1}, [PTM_F8_E4M3] = {"F8_E4M3", 1}, [PTM_F8_E5M2] = {"F8_E5M2", 1},
    [PTM_Q8_0] = {"Q8_0", 0}, /* a block type: see ptm_dtype_row_bytes */
};

/* PyTorch names as they appear in config.json "torch_dtype" and on command lines. */
static const struct {
    const char *name;
    ptm_dtype dt;
} aliases[] = {
    {"float32", PTM_F32}, {"float", PTM_F32}, {"fp32", PTM_F32},      {"float16", PTM_F16},
    {"half", PTM_F16},    {"fp16", PTM_F16},  {"bfloat16", PTM_BF16}, {"bf16", PTM_BF16},
    {"int8", PTM_I8},     {"int32", PTM_I32}, {"int64", PTM_I64},     {"float64", PTM_F64},
    {"int16", PTM_I16},   {"uint8", PTM_U8},  {"bool", PTM_BOOL},
};

const char *ptm_dtype_name(ptm_dtype dt)
{
    if ((int)dt < 0 || dt >= PTM_DTYPE_COUNT) {
        return NULL;
    }
    return dtypes[dt].st_name;
}

size_t ptm_dtype_size(ptm_dtype dt)
{
    if ((int)dt < 0 || dt >= PTM_DTYPE_COUNT) {
        return 0;
    }
    return dtypes[dt].size;
}

int64_t ptm_dtype_block(ptm_dtype dt)
{
    if ((int)dt < 0 || dt >= PTM_DTYPE_COUNT) {
        return 0;
    }
    return dt == PTM_Q8_0 ? 32 : 1;
}

size_t ptm_dtype_row_bytes(ptm_dtype dt, int64_t n)
{
    int64_t block = ptm_dtype_block(dt);
    if (block == 0 || n < 0 || n % block != 0) {
        return 0;
    }
    if (dt == PTM_Q8_0) {
        return (size_t)n + (size_t)(n / 32) * 2; /* one F16 scale per block, then int8 quants */
    }
    return (size_t)n * dtypes[dt].size;
}

ptm_status ptm_dtype_parse(const char *name, ptm_dtype *out)
{
    if (name == NULL) {
        return ptm__fail(PTM_E_INVAL, "dtype: no name given");
    }
    for (int i = 0; i < PTM_DTYPE_COUNT; i++) {
        if (strcmp(name, dtypes[i].st_name) == 0 || strcasecmp(name, dtypes[i].st_name) == 0) {
            *out = (ptm_dtype)i;
            return PTM_OK;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcasecmp(name, aliases[i].name) == 0) {
            *out = aliases[i].dt;
            return PTM_OK;
        }
    }
    return ptm__fail(PTM_E_INVAL, "dtype: unknown element type \"%s\"", name);
}
