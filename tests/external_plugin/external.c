/*
 * external.c - a toy architecture built outside the ptm tree, against the installed SDK
 * alone. It proves that architectures are plugins: nothing in the runtime knows "ext".
 */
#include <ptm/ptm_plugin.h>

static ptm_status ext_declare(ptm_model *m)
{
    return PTM_OK;
}

static ptm_status ext_forward(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    return ptm_error_set(PTM_E_UNSUPPORTED, "ext: forward is not implemented");
}

static const struct ptm_config_field ext_fields[] = {
    PTM_CONFIG_FIELD("width", PTM_CFG_INT, 0, "8", "width"),
    PTM_CONFIG_FIELD_END,
};

static const struct ptm_model_class ext_classes[] = {
    {.struct_size = sizeof(struct ptm_model_class),
     .name = "ExtModel",
     .is_base = 1,
     .declare = ext_declare,
     .forward = ext_forward},
    {.struct_size = sizeof(struct ptm_model_class)},
};

static const struct ptm_arch ext_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "ext",
    .base_model_prefix = "ext",
    .fields = ext_fields,
    .classes = ext_classes,
};

static ptm_status ext_register(const struct ptm_registrar *reg)
{
    return reg->add_arch(reg, &ext_arch);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "external", "0.0.1", ext_register)
