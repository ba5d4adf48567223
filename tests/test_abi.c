/*
 * test_abi.c - the plugin ABI, pinned: the size and every member's offset of each struct that
 * crosses between the runtime and plugins (x86-64 / LP64). Moving or resizing a member breaks
 * this build, not users' plugins. Members may only be appended (the size assert then changes
 * together with a new offset assert, under a new ABI minor).
 */
#include <assert.h>
#include <criterion/criterion.h>
#include <stddef.h>

#include "ptm/ptm.h"
#include "ptm/ptm_backend.h"

/* struct ptm_plugin_desc */
static_assert(sizeof(struct ptm_plugin_desc) == 40, "struct ptm_plugin_desc changed size");
static_assert(offsetof(struct ptm_plugin_desc, struct_size) == 0,
              "struct ptm_plugin_desc: struct_size moved");
static_assert(offsetof(struct ptm_plugin_desc, abi_major) == 4,
              "struct ptm_plugin_desc: abi_major moved");
static_assert(offsetof(struct ptm_plugin_desc, abi_minor) == 8,
              "struct ptm_plugin_desc: abi_minor moved");
static_assert(offsetof(struct ptm_plugin_desc, kind) == 12, "struct ptm_plugin_desc: kind moved");
static_assert(offsetof(struct ptm_plugin_desc, name) == 16, "struct ptm_plugin_desc: name moved");
static_assert(offsetof(struct ptm_plugin_desc, version) == 24,
              "struct ptm_plugin_desc: version moved");
static_assert(offsetof(struct ptm_plugin_desc, register_fn) == 32,
              "struct ptm_plugin_desc: register_fn moved");

/* struct ptm_config_field */
static_assert(sizeof(struct ptm_config_field) == 40, "struct ptm_config_field changed size");
static_assert(offsetof(struct ptm_config_field, struct_size) == 0,
              "struct ptm_config_field: struct_size moved");
static_assert(offsetof(struct ptm_config_field, name) == 8, "struct ptm_config_field: name moved");
static_assert(offsetof(struct ptm_config_field, type) == 16, "struct ptm_config_field: type moved");
static_assert(offsetof(struct ptm_config_field, flags) == 20,
              "struct ptm_config_field: flags moved");
static_assert(offsetof(struct ptm_config_field, default_json) == 24,
              "struct ptm_config_field: default_json moved");
static_assert(offsetof(struct ptm_config_field, doc) == 32, "struct ptm_config_field: doc moved");

/* struct ptm_config_alias */
static_assert(sizeof(struct ptm_config_alias) == 24, "struct ptm_config_alias changed size");
static_assert(offsetof(struct ptm_config_alias, struct_size) == 0,
              "struct ptm_config_alias: struct_size moved");
static_assert(offsetof(struct ptm_config_alias, alias) == 8,
              "struct ptm_config_alias: alias moved");
static_assert(offsetof(struct ptm_config_alias, name) == 16, "struct ptm_config_alias: name moved");

/* struct ptm_builtin_name */
static_assert(sizeof(struct ptm_builtin_name) == 32, "struct ptm_builtin_name changed size");
static_assert(offsetof(struct ptm_builtin_name, struct_size) == 0,
              "struct ptm_builtin_name: struct_size moved");
static_assert(offsetof(struct ptm_builtin_name, name) == 8, "struct ptm_builtin_name: name moved");
static_assert(offsetof(struct ptm_builtin_name, repo_id) == 16,
              "struct ptm_builtin_name: repo_id moved");
static_assert(offsetof(struct ptm_builtin_name, config_json) == 24,
              "struct ptm_builtin_name: config_json moved");

/* struct ptm_forward_ctx */
static_assert(sizeof(struct ptm_forward_ctx) == 48, "struct ptm_forward_ctx changed size");
static_assert(offsetof(struct ptm_forward_ctx, struct_size) == 0,
              "struct ptm_forward_ctx: struct_size moved");
static_assert(offsetof(struct ptm_forward_ctx, inputs) == 8,
              "struct ptm_forward_ctx: inputs moved");
static_assert(offsetof(struct ptm_forward_ctx, outputs) == 16,
              "struct ptm_forward_ctx: outputs moved");
static_assert(offsetof(struct ptm_forward_ctx, output_hidden_states) == 24,
              "struct ptm_forward_ctx: output_hidden_states moved");
static_assert(offsetof(struct ptm_forward_ctx, cache) == 32, "struct ptm_forward_ctx: cache moved");
static_assert(offsetof(struct ptm_forward_ctx, logits_to_keep) == 40,
              "struct ptm_forward_ctx: logits_to_keep moved");

/* struct ptm_model_class */
static_assert(sizeof(struct ptm_model_class) == 104, "struct ptm_model_class changed size");
static_assert(offsetof(struct ptm_model_class, struct_size) == 0,
              "struct ptm_model_class: struct_size moved");
static_assert(offsetof(struct ptm_model_class, name) == 8, "struct ptm_model_class: name moved");
static_assert(offsetof(struct ptm_model_class, is_base) == 16,
              "struct ptm_model_class: is_base moved");
static_assert(offsetof(struct ptm_model_class, can_generate) == 20,
              "struct ptm_model_class: can_generate moved");
static_assert(offsetof(struct ptm_model_class, main_input_name) == 24,
              "struct ptm_model_class: main_input_name moved");
static_assert(offsetof(struct ptm_model_class, input_embeddings) == 32,
              "struct ptm_model_class: input_embeddings moved");
static_assert(offsetof(struct ptm_model_class, output_embeddings) == 40,
              "struct ptm_model_class: output_embeddings moved");
static_assert(offsetof(struct ptm_model_class, tied_weights) == 48,
              "struct ptm_model_class: tied_weights moved");
static_assert(offsetof(struct ptm_model_class, no_split_modules) == 56,
              "struct ptm_model_class: no_split_modules moved");
static_assert(offsetof(struct ptm_model_class, keep_in_fp32) == 64,
              "struct ptm_model_class: keep_in_fp32 moved");
static_assert(offsetof(struct ptm_model_class, ignore_unexpected) == 72,
              "struct ptm_model_class: ignore_unexpected moved");
static_assert(offsetof(struct ptm_model_class, declare) == 80,
              "struct ptm_model_class: declare moved");
static_assert(offsetof(struct ptm_model_class, init_weights) == 88,
              "struct ptm_model_class: init_weights moved");
static_assert(offsetof(struct ptm_model_class, forward) == 96,
              "struct ptm_model_class: forward moved");

/* struct ptm_arch */
static_assert(sizeof(struct ptm_arch) == 72, "struct ptm_arch changed size");
static_assert(offsetof(struct ptm_arch, struct_size) == 0, "struct ptm_arch: struct_size moved");
static_assert(offsetof(struct ptm_arch, model_type) == 8, "struct ptm_arch: model_type moved");
static_assert(offsetof(struct ptm_arch, base_model_prefix) == 16,
              "struct ptm_arch: base_model_prefix moved");
static_assert(offsetof(struct ptm_arch, fields) == 24, "struct ptm_arch: fields moved");
static_assert(offsetof(struct ptm_arch, aliases) == 32, "struct ptm_arch: aliases moved");
static_assert(offsetof(struct ptm_arch, classes) == 40, "struct ptm_arch: classes moved");
static_assert(offsetof(struct ptm_arch, builtins) == 48, "struct ptm_arch: builtins moved");
static_assert(offsetof(struct ptm_arch, prune_heads) == 56, "struct ptm_arch: prune_heads moved");
static_assert(offsetof(struct ptm_arch, resize_position_embeddings) == 64,
              "struct ptm_arch: resize_position_embeddings moved");

/* struct ptm_param_init */
static_assert(sizeof(struct ptm_param_init) == 24, "struct ptm_param_init changed size");
static_assert(offsetof(struct ptm_param_init, struct_size) == 0,
              "struct ptm_param_init: struct_size moved");
static_assert(offsetof(struct ptm_param_init, kind) == 4, "struct ptm_param_init: kind moved");
static_assert(offsetof(struct ptm_param_init, a) == 8, "struct ptm_param_init: a moved");
static_assert(offsetof(struct ptm_param_init, b) == 12, "struct ptm_param_init: b moved");
static_assert(offsetof(struct ptm_param_init, padding_idx) == 16,
              "struct ptm_param_init: padding_idx moved");

/* struct ptm_registrar */
static_assert(sizeof(struct ptm_registrar) == 32, "struct ptm_registrar changed size");
static_assert(offsetof(struct ptm_registrar, struct_size) == 0,
              "struct ptm_registrar: struct_size moved");
static_assert(offsetof(struct ptm_registrar, host) == 8, "struct ptm_registrar: host moved");
static_assert(offsetof(struct ptm_registrar, add_arch) == 16,
              "struct ptm_registrar: add_arch moved");
static_assert(offsetof(struct ptm_registrar, add_backend) == 24,
              "struct ptm_registrar: add_backend moved");

/* struct ptm_kview */
static_assert(sizeof(struct ptm_kview) == 96, "struct ptm_kview changed size");
static_assert(offsetof(struct ptm_kview, struct_size) == 0, "struct ptm_kview: struct_size moved");
static_assert(offsetof(struct ptm_kview, buf) == 8, "struct ptm_kview: buf moved");
static_assert(offsetof(struct ptm_kview, offset) == 16, "struct ptm_kview: offset moved");
static_assert(offsetof(struct ptm_kview, dtype) == 24, "struct ptm_kview: dtype moved");
static_assert(offsetof(struct ptm_kview, ndim) == 28, "struct ptm_kview: ndim moved");
static_assert(offsetof(struct ptm_kview, ne) == 32, "struct ptm_kview: ne moved");
static_assert(offsetof(struct ptm_kview, nb) == 64, "struct ptm_kview: nb moved");

/* struct ptm_attn_args */
static_assert(sizeof(struct ptm_attn_args) == 72, "struct ptm_attn_args changed size");
static_assert(offsetof(struct ptm_attn_args, struct_size) == 0,
              "struct ptm_attn_args: struct_size moved");
static_assert(offsetof(struct ptm_attn_args, out) == 8, "struct ptm_attn_args: out moved");
static_assert(offsetof(struct ptm_attn_args, q) == 16, "struct ptm_attn_args: q moved");
static_assert(offsetof(struct ptm_attn_args, k) == 24, "struct ptm_attn_args: k moved");
static_assert(offsetof(struct ptm_attn_args, v) == 32, "struct ptm_attn_args: v moved");
static_assert(offsetof(struct ptm_attn_args, key_mask) == 40,
              "struct ptm_attn_args: key_mask moved");
static_assert(offsetof(struct ptm_attn_args, bias) == 48, "struct ptm_attn_args: bias moved");
static_assert(offsetof(struct ptm_attn_args, scale) == 56, "struct ptm_attn_args: scale moved");
static_assert(offsetof(struct ptm_attn_args, causal) == 60, "struct ptm_attn_args: causal moved");
static_assert(offsetof(struct ptm_attn_args, q_offset) == 64,
              "struct ptm_attn_args: q_offset moved");

/* struct ptm_rope_args */
static_assert(sizeof(struct ptm_rope_args) == 48, "struct ptm_rope_args changed size");
static_assert(offsetof(struct ptm_rope_args, struct_size) == 0,
              "struct ptm_rope_args: struct_size moved");
static_assert(offsetof(struct ptm_rope_args, x) == 8, "struct ptm_rope_args: x moved");
static_assert(offsetof(struct ptm_rope_args, positions) == 16,
              "struct ptm_rope_args: positions moved");
static_assert(offsetof(struct ptm_rope_args, inv_freq) == 24,
              "struct ptm_rope_args: inv_freq moved");
static_assert(offsetof(struct ptm_rope_args, attn_factor) == 32,
              "struct ptm_rope_args: attn_factor moved");
static_assert(offsetof(struct ptm_rope_args, rot_dims) == 36,
              "struct ptm_rope_args: rot_dims moved");
static_assert(offsetof(struct ptm_rope_args, neox) == 40, "struct ptm_rope_args: neox moved");

/* struct ptm_backend */
static_assert(sizeof(struct ptm_backend) == 192, "struct ptm_backend changed size");
static_assert(offsetof(struct ptm_backend, struct_size) == 0,
              "struct ptm_backend: struct_size moved");
static_assert(offsetof(struct ptm_backend, name) == 8, "struct ptm_backend: name moved");
static_assert(offsetof(struct ptm_backend, init) == 16, "struct ptm_backend: init moved");
static_assert(offsetof(struct ptm_backend, destroy) == 24, "struct ptm_backend: destroy moved");
static_assert(offsetof(struct ptm_backend, score) == 32, "struct ptm_backend: score moved");
static_assert(offsetof(struct ptm_backend, probe) == 40, "struct ptm_backend: probe moved");
static_assert(offsetof(struct ptm_backend, device_name) == 48,
              "struct ptm_backend: device_name moved");
static_assert(offsetof(struct ptm_backend, buffer_alloc) == 56,
              "struct ptm_backend: buffer_alloc moved");
static_assert(offsetof(struct ptm_backend, buffer_free) == 64,
              "struct ptm_backend: buffer_free moved");
static_assert(offsetof(struct ptm_backend, buffer_import) == 72,
              "struct ptm_backend: buffer_import moved");
static_assert(offsetof(struct ptm_backend, buffer_host_ptr) == 80,
              "struct ptm_backend: buffer_host_ptr moved");
static_assert(offsetof(struct ptm_backend, write) == 88, "struct ptm_backend: write moved");
static_assert(offsetof(struct ptm_backend, read) == 96, "struct ptm_backend: read moved");
static_assert(offsetof(struct ptm_backend, sync) == 104, "struct ptm_backend: sync moved");
static_assert(offsetof(struct ptm_backend, matmul) == 112, "struct ptm_backend: matmul moved");
static_assert(offsetof(struct ptm_backend, unary) == 120, "struct ptm_backend: unary moved");
static_assert(offsetof(struct ptm_backend, binary) == 128, "struct ptm_backend: binary moved");
static_assert(offsetof(struct ptm_backend, scale) == 136, "struct ptm_backend: scale moved");
static_assert(offsetof(struct ptm_backend, norm) == 144, "struct ptm_backend: norm moved");
static_assert(offsetof(struct ptm_backend, softmax) == 152, "struct ptm_backend: softmax moved");
static_assert(offsetof(struct ptm_backend, embedding) == 160,
              "struct ptm_backend: embedding moved");
static_assert(offsetof(struct ptm_backend, attention) == 168,
              "struct ptm_backend: attention moved");
static_assert(offsetof(struct ptm_backend, rope) == 176, "struct ptm_backend: rope moved");
static_assert(offsetof(struct ptm_backend, convert) == 184, "struct ptm_backend: convert moved");

/* struct ptm_attention_opts */
static_assert(sizeof(struct ptm_attention_opts) == 40, "struct ptm_attention_opts changed size");
static_assert(offsetof(struct ptm_attention_opts, struct_size) == 0,
              "struct ptm_attention_opts: struct_size moved");
static_assert(offsetof(struct ptm_attention_opts, key_mask) == 8,
              "struct ptm_attention_opts: key_mask moved");
static_assert(offsetof(struct ptm_attention_opts, bias) == 16,
              "struct ptm_attention_opts: bias moved");
static_assert(offsetof(struct ptm_attention_opts, causal) == 24,
              "struct ptm_attention_opts: causal moved");
static_assert(offsetof(struct ptm_attention_opts, q_offset) == 32,
              "struct ptm_attention_opts: q_offset moved");

/* struct ptm_plugin_info */
static_assert(sizeof(struct ptm_plugin_info) == 48, "struct ptm_plugin_info changed size");
static_assert(offsetof(struct ptm_plugin_info, struct_size) == 0,
              "struct ptm_plugin_info: struct_size moved");
static_assert(offsetof(struct ptm_plugin_info, name) == 8, "struct ptm_plugin_info: name moved");
static_assert(offsetof(struct ptm_plugin_info, version) == 16,
              "struct ptm_plugin_info: version moved");
static_assert(offsetof(struct ptm_plugin_info, path) == 24, "struct ptm_plugin_info: path moved");
static_assert(offsetof(struct ptm_plugin_info, kind) == 32, "struct ptm_plugin_info: kind moved");
static_assert(offsetof(struct ptm_plugin_info, abi_major) == 36,
              "struct ptm_plugin_info: abi_major moved");
static_assert(offsetof(struct ptm_plugin_info, abi_minor) == 40,
              "struct ptm_plugin_info: abi_minor moved");

Test(abi, version_macros_are_what_plugins_are_built_against)
{
    cr_assert_eq(PTM_ABI_MAJOR, 1);
    cr_assert_geq(PTM_ABI_MINOR, 0);
}

Test(abi, status_codes_keep_their_numbers)
{
    cr_assert_eq(PTM_OK, 0);
    cr_assert_eq(PTM_E_ABI, 5);
    cr_assert_eq(PTM_E_INTERNAL, 14);
    cr_assert_str_eq(ptm_status_name(PTM_E_FORMAT), "PTM_E_FORMAT");
    cr_assert_str_eq(ptm_status_str(PTM_E_FORMAT), "malformed input file");
    cr_assert_str_eq(ptm_status_name((ptm_status)999), "PTM_E_UNKNOWN");
}

Test(abi, dtype_values_are_fixed)
{
    cr_assert_eq(PTM_F32, 0);
    cr_assert_eq(PTM_BF16, 2);
    cr_assert_eq(PTM_F8_E5M2, 11);
    cr_assert_str_eq(ptm_dtype_name(PTM_BF16), "BF16");
    cr_assert_eq(ptm_dtype_size(PTM_I64), 8);
}
