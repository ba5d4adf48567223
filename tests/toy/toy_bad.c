/*
 * toy_bad.c - one source, one bad plugin per TOY_BAD_* definition, each exercising one
 * refusal of the loader: a wrong ABI major, a newer ABI minor, a failing register, no entry
 * symbol, a duplicate plugin name, a model_type already taken, and a register that adds one
 * architecture and then fails (the first must not survive).
 */
#include "ptm/ptm_plugin.h"

static ptm_status bad_declare(ptm_model *m)
{
    return PTM_OK;
}

static ptm_status bad_forward(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    return PTM_E_UNSUPPORTED;
}

static const struct ptm_config_field bad_fields[] = {PTM_CONFIG_FIELD_END};

static const struct ptm_model_class bad_classes[] = {
    {.struct_size = sizeof(struct ptm_model_class),
     .name = "HalfModel",
     .is_base = 1,
     .declare = bad_declare,
     .forward = bad_forward},
    {.struct_size = sizeof(struct ptm_model_class)},
};

static const struct ptm_model_class dup_classes[] = {
    {.struct_size = sizeof(struct ptm_model_class),
     .name = "DupToyModel",
     .is_base = 1,
     .declare = bad_declare,
     .forward = bad_forward},
    {.struct_size = sizeof(struct ptm_model_class)},
};

static const struct ptm_arch half_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "half",
    .fields = bad_fields,
    .classes = bad_classes,
};

static const struct ptm_arch dup_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "toy", /* taken by toyarch */
    .fields = bad_fields,
    .classes = dup_classes,
};

static ptm_status bad_register(const struct ptm_registrar *reg)
{
    (void)&half_arch; /* each variant uses at most one of these */
    (void)&dup_arch;
#if defined(TOY_BAD_REGISTER)
    return ptm_error_set(PTM_E_PLUGIN, "bad_register: refusing on purpose (code 42)");
#elif defined(TOY_BAD_DUP_TYPE)
    return reg->add_arch(reg, &dup_arch);
#elif defined(TOY_BAD_HALF_REGISTER)
    ptm_status st = reg->add_arch(reg, &half_arch);
    if (st != PTM_OK) {
        return st;
    }
    return ptm_error_set(PTM_E_PLUGIN, "bad_half_register: second step failed");
#else
    return PTM_OK;
#endif
}

#if defined(TOY_BAD_ABI_MAJOR) || defined(TOY_BAD_ABI_MINOR)
PTM_API const struct ptm_plugin_desc *ptm_plugin_entry(void);
const struct ptm_plugin_desc *ptm_plugin_entry(void)
{
#ifdef TOY_BAD_ABI_MAJOR
    static const struct ptm_plugin_desc d = {
        sizeof d, PTM_ABI_MAJOR + 1, 0, PTM_PLUGIN_ARCH, "bad_abi_major", "0.0.1", bad_register};
#else
    static const struct ptm_plugin_desc d = {sizeof d,        PTM_ABI_MAJOR,   PTM_ABI_MINOR + 1,
                                             PTM_PLUGIN_ARCH, "bad_abi_minor", "0.0.1",
                                             bad_register};
#endif
    return &d;
}
#elif defined(TOY_BAD_NO_ENTRY)
PTM_API int ptm_not_the_entry(void);
int ptm_not_the_entry(void)
{
    return bad_register(0);
}
#elif defined(TOY_BAD_DUP_NAME)
PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "toyarch", "9.9.9", bad_register)
#elif defined(TOY_BAD_REGISTER)
PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "bad_register", "0.0.1", bad_register)
#elif defined(TOY_BAD_DUP_TYPE)
PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "bad_dup_type", "0.0.1", bad_register)
#elif defined(TOY_BAD_HALF_REGISTER)
PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "bad_half_register", "0.0.1", bad_register)
#endif
