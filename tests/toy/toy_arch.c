/*
 * toy_arch.c - a toy architecture plugin for the loader, registry and config tests: model
 * type "toy", two classes, a small config schema with one field of each kind.
 */
#include "ptm/ptm_plugin.h"

static ptm_status toy_declare(ptm_model *m)
{
    return PTM_OK;
}

static ptm_status toy_forward(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    return ptm_error_set(PTM_E_UNSUPPORTED, "toy: forward is not implemented");
}

static const struct ptm_config_field toy_fields[] = {
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "16", "width of the toy"),
    PTM_CONFIG_FIELD("layer_norm_eps", PTM_CFG_FLOAT, 0, "1e-05", "epsilon"),
    PTM_CONFIG_FIELD("use_bias", PTM_CFG_BOOL, 0, "true", "add biases"),
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "\"gelu\"", "activation"),
    PTM_CONFIG_FIELD("scales", PTM_CFG_FLOAT_LIST, 0, "[1.0, 0.5]", "per-layer scales"),
    PTM_CONFIG_FIELD("rope_scaling", PTM_CFG_OBJECT, PTM_CFG_NULLABLE, "null", "rope"),
    PTM_CONFIG_FIELD("pad_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "0", "restated common"),
    PTM_CONFIG_FIELD_END,
};

static const struct ptm_config_alias toy_aliases[] = {
    PTM_CONFIG_ALIAS("d_model", "hidden_size"),
    PTM_CONFIG_ALIAS_END,
};

static const struct ptm_model_class toy_classes[] = {
    {.struct_size = sizeof(struct ptm_model_class),
     .name = "ToyModel",
     .is_base = 1,
     .declare = toy_declare,
     .forward = toy_forward},
    {.struct_size = sizeof(struct ptm_model_class),
     .name = "ToyForThings",
     .is_base = 0,
     .declare = toy_declare,
     .forward = toy_forward},
    {.struct_size = sizeof(struct ptm_model_class)},
};

static const struct ptm_arch toy_arch = {
    .struct_size = sizeof(struct ptm_arch),
    .model_type = "toy",
    .base_model_prefix = "toy",
    .fields = toy_fields,
    .aliases = toy_aliases,
    .classes = toy_classes,
};

static ptm_status toy_register(const struct ptm_registrar *reg)
{
    return reg->add_arch(reg, &toy_arch);
}

PTM_PLUGIN_DEFINE(PTM_PLUGIN_ARCH, "toyarch", "1.2.3", toy_register)
