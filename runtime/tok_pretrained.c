/*
 * tok_pretrained.c - ptm_tokenizer_from_pretrained: a tokenizer by model name, through the
 * same resolution as from_pretrained (resolve.c), then ptm_tokenizer_load on the directory.
 */
#include "error.h"
#include "ptm/ptm_tokenizer.h"
#include "resolve.h"

ptm_status ptm_tokenizer_from_pretrained(const char *name, int32_t local_files_only,
                                         ptm_tokenizer **out)
{
    ptm__error_clear();
    if (out == NULL) {
        return ptm__fail(PTM_E_INVAL, "ptm_tokenizer_from_pretrained: out is NULL");
    }
    *out = NULL;
    struct ptm__resolved r;
    struct ptm__resolve_opts ro = {.local_files_only = local_files_only,
                                   .need_file = "tokenizer.json"};
    ptm_status st = ptm__resolve(name, &ro, &r);
    if (st == PTM_OK && r.dir == NULL) {
        st = ptm__fail(PTM_E_NOT_FOUND, "%s: a built-in name whose files are not cached", name);
    }
    if (st == PTM_OK) {
        st = ptm_tokenizer_load(r.dir, out);
    }
    ptm__resolved_clear(&r);
    return st;
}
