/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader: the input is parsed as a
 * safetensors image (ptm_st_open_memory) and as a sharded index (ptm__st_index_parse), and
 * every tensor of an accepted image is checked to lie inside the input. Built by
 * tests/fuzz/run.sh against the runtime sources, with ASan and UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptm_st_file *f = NULL;
    if (ptm_st_open_memory(data, size, "fuzz", &f) == PTM_OK) {
        for (size_t k = 0; k < ptm_st_count(f); k++) {
            const struct ptm_st_tensor *t = ptm_st_at(f, k);
            const uint8_t *p = t->data;
            if (p < data || p + t->nbytes > data + size || ptm_st_find(f, t->name) != t) {
                abort(); /* an accepted header must describe bytes inside the image */
            }
        }
        ptm_st_metadata(f, "format");
        ptm_st_close(f);
    } else if (f != NULL || ptm_last_error()[0] == '\0') {
        abort(); /* failure must leave *out NULL and say why */
    }
    struct ptm__st_index ix;
    if (ptm__st_index_parse((const char *)data, size, "fuzz.index.json", &ix) == PTM_OK) {
        for (size_t k = 0; k < ix.n_shards; k++) {
            if (!ptm__st_plain_name(ix.shards[k])) {
                abort();
            }
        }
        ptm__st_index_free(&ix);
    }
    return 0;
}
