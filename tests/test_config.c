/*
 * test_config.c - configs (runtime/config.c, config_common.c, config_json.c, atomic_file.c)
 * through the public API: a toy architecture and a BERT-like one are registered in-process,
 * then configs are loaded, read, changed, overridden and saved. The BERT file was written by
 * transformers itself (tests/fixtures/config/make_hf_bert.py); ptm must write it back byte
 * for byte.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(p) PTM_TEST_FIXTURES "/config/" p

long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

static ptm_status toy_declare(ptm_model *m)
{
    (void)m;
    return PTM_OK;
}

static ptm_status toy_forward(ptm_model *m, const struct ptm_forward_ctx *ctx)
{
    (void)m;
    (void)ctx;
    return PTM_OK;
}

#define CLASS(name_)                                                                               \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_model_class), .name = (name_), .is_base = 1,              \
        .declare = toy_declare, .forward = toy_forward                                             \
    }
#define CLASS_END                                                                                  \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_model_class), .name = NULL                                \
    }
#define ARCH(mt, fields_, aliases_, classes_)                                                      \
    {                                                                                              \
        .struct_size = sizeof(struct ptm_arch), .model_type = (mt), .base_model_prefix = "toy",    \
        .fields = (fields_), .aliases = (aliases_), .classes = (classes_)                          \
    }

/* One field of each type, a nullable one, an alias, a restated PretrainedConfig field
 * (return_dict, default changed) and a restated legacy one (tie_word_embeddings). */
static const struct ptm_config_field toy_fields[] = {
    PTM_CONFIG_FIELD("vocab_size", PTM_CFG_INT, 0, "100", "rows of the embedding"),
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "32", "width"),
    PTM_CONFIG_FIELD("layer_norm_eps", PTM_CFG_FLOAT, 0, "1e-12", "epsilon"),
    PTM_CONFIG_FIELD("use_bias", PTM_CFG_BOOL, 0, "true", "bias in dense layers"),
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "\"gelu\"", "activation"),
    PTM_CONFIG_FIELD("layer_sizes", PTM_CFG_INT_LIST, 0, "[4, 8]", "per layer"),
    PTM_CONFIG_FIELD("dropouts", PTM_CFG_FLOAT_LIST, 0, "[0.1, 0.2]", "per layer"),
    PTM_CONFIG_FIELD("layer_types", PTM_CFG_STRING_LIST, 0, "[\"full\"]", "per layer"),
    PTM_CONFIG_FIELD("rope_scaling", PTM_CFG_OBJECT, PTM_CFG_NULLABLE, "null", "rope"),
    PTM_CONFIG_FIELD("extra", PTM_CFG_ANY, 0, "{\"a\": 1}", "anything"),
    PTM_CONFIG_FIELD("eos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "2", "eos"),
    PTM_CONFIG_FIELD("classifier_dropout", PTM_CFG_FLOAT, PTM_CFG_NULLABLE, "null", "head"),
    PTM_CONFIG_FIELD("return_dict", PTM_CFG_BOOL, PTM_CFG_NULLABLE, "false", "restated"),
    PTM_CONFIG_FIELD("tie_word_embeddings", PTM_CFG_BOOL, 0, "false", "restated legacy"),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_alias toy_aliases[] = {
    PTM_CONFIG_ALIAS("n_embd", "hidden_size"),
    PTM_CONFIG_ALIAS_END,
};
static const struct ptm_model_class toy_classes[] = {CLASS("CfgToyModel"), CLASS_END};
static const struct ptm_arch toy_arch = ARCH("cfgtoy", toy_fields, toy_aliases, toy_classes);

/* transformers 5.23 BertConfig's own dataclass fields with their defaults. */
static const struct ptm_config_field bert_fields[] = {
    PTM_CONFIG_FIELD("vocab_size", PTM_CFG_INT, 0, "30522", NULL),
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "768", NULL),
    PTM_CONFIG_FIELD("num_hidden_layers", PTM_CFG_INT, 0, "12", NULL),
    PTM_CONFIG_FIELD("num_attention_heads", PTM_CFG_INT, 0, "12", NULL),
    PTM_CONFIG_FIELD("intermediate_size", PTM_CFG_INT, 0, "3072", NULL),
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "\"gelu\"", NULL),
    PTM_CONFIG_FIELD("hidden_dropout_prob", PTM_CFG_FLOAT, 0, "0.1", NULL),
    PTM_CONFIG_FIELD("attention_probs_dropout_prob", PTM_CFG_FLOAT, 0, "0.1", NULL),
    PTM_CONFIG_FIELD("max_position_embeddings", PTM_CFG_INT, 0, "512", NULL),
    PTM_CONFIG_FIELD("type_vocab_size", PTM_CFG_INT, 0, "2", NULL),
    PTM_CONFIG_FIELD("initializer_range", PTM_CFG_FLOAT, 0, "0.02", NULL),
    PTM_CONFIG_FIELD("layer_norm_eps", PTM_CFG_FLOAT, 0, "1e-12", NULL),
    PTM_CONFIG_FIELD("pad_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "0", NULL),
    PTM_CONFIG_FIELD("use_cache", PTM_CFG_BOOL, 0, "true", NULL),
    PTM_CONFIG_FIELD("classifier_dropout", PTM_CFG_FLOAT, PTM_CFG_NULLABLE, "null", NULL),
    PTM_CONFIG_FIELD("is_decoder", PTM_CFG_BOOL, 0, "false", NULL),
    PTM_CONFIG_FIELD("add_cross_attention", PTM_CFG_BOOL, 0, "false", NULL),
    PTM_CONFIG_FIELD("bos_token_id", PTM_CFG_INT, PTM_CFG_NULLABLE, "null", NULL),
    PTM_CONFIG_FIELD("eos_token_id", PTM_CFG_INT_OR_LIST, PTM_CFG_NULLABLE, "null", NULL),
    PTM_CONFIG_FIELD("tie_word_embeddings", PTM_CFG_BOOL, 0, "true", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_model_class bert_classes[] = {CLASS("CfgBertModel"), CLASS_END};
static const struct ptm_arch bert_arch = ARCH("bert", bert_fields, NULL, bert_classes);

static void setup(void)
{
    cr_assert_eq(ptm_arch_register(&toy_arch), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_arch_register(&bert_arch), PTM_OK, "%s", ptm_last_error());
}

TestSuite(config, .init = setup);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static ptm_config *parse(const char *json)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_parse(json, "test.json", &c), PTM_OK, "%s", ptm_last_error());
    return c;
}

static char *to_json(const ptm_config *c, int diff)
{
    char *s = NULL;
    cr_assert_eq(ptm_config_to_json(c, diff, &s), PTM_OK, "%s", ptm_last_error());
    return s;
}

static char *get_json(const ptm_config *c, const char *key)
{
    char *s = NULL;
    cr_assert_eq(ptm_config_get_json(c, key, &s), PTM_OK, "%s", ptm_last_error());
    return s;
}

static void make_tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "%s/test_config.XXXXXX", PTM_TEST_BUILD_DIR);
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_tmpdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(config, diff_save_is_byte_identical_to_transformers)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("hf_bert"), &c), PTM_OK, "%s", ptm_last_error());
    char *want = slurp(FIXTURE("hf_bert/config.json"));
    char *got = to_json(c, 1);
    cr_assert_str_eq(got, want);
    ptm_free(got);
    free(want);
    want = slurp(FIXTURE("hf_bert/config_full.json"));
    got = to_json(c, 0);
    cr_assert_str_eq(got, want);
    ptm_free(got);
    free(want);
    ptm_config_free(c);
}

Test(config, round_trip_is_stable_and_second_save_identical)
{
    char dir[512], p1[600], p2[600];
    make_tmpdir(dir, sizeof dir);
    snprintf(p1, sizeof p1, "%s/a.json", dir);
    snprintf(p2, sizeof p2, "%s/b.json", dir);
    ptm_config *a = NULL, *b = NULL;
    cr_assert_eq(ptm_config_load(FIXTURE("hf_bert/config.json"), &a), PTM_OK);
    ptm_config_set_json(a, "note", "\"x\\u0001\\u007f\\u00e9\\ud83d\\ude00/\"");
    for (int diff = 0; diff < 2; diff++) {
        cr_assert_eq(ptm_config_save(a, p1, diff), PTM_OK, "%s", ptm_last_error());
        cr_assert_eq(ptm_config_load(p1, &b), PTM_OK, "%s", ptm_last_error());
        cr_assert_eq(ptm_config_save(b, p2, diff), PTM_OK, "%s", ptm_last_error());
        char *ja = to_json(a, 0), *jb = to_json(b, 0), *s1 = slurp(p1), *s2 = slurp(p2);
        cr_assert_str_eq(ja, jb);
        cr_assert_str_eq(s1, s2);
        cr_assert_eq(ptm_config_n_keys(a), ptm_config_n_keys(b));
        ptm_free(ja);
        ptm_free(jb);
        free(s1);
        free(s2);
        ptm_config_free(b);
    }
    char *s = slurp(p1);
    cr_assert_not_null(strstr(s, "\"note\": \"x\\u0001\\u007f\\u00e9\\ud83d\\ude00/\""), "%s", s);
    free(s);
    ptm_config_free(a);
    remove_tmpdir(dir);
}

Test(config, new_config_holds_every_default)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK, "%s", ptm_last_error());
    int64_t i = 0;
    double d = 0;
    int32_t b = -1;
    const char *s = NULL;
    cr_assert_str_eq(ptm_config_model_type(c), "cfgtoy");
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 32);
    cr_assert_eq(ptm_config_get_float(c, "layer_norm_eps", &d), PTM_OK);
    cr_assert_eq(d, 1e-12);
    cr_assert_eq(ptm_config_get_float(c, "vocab_size", &d), PTM_OK); /* ints read as floats */
    cr_assert_eq(d, 100.0);
    cr_assert_eq(ptm_config_get_bool(c, "use_bias", &b), PTM_OK);
    cr_assert_eq(b, 1);
    cr_assert_eq(ptm_config_get_string(c, "hidden_act", &s), PTM_OK);
    cr_assert_str_eq(s, "gelu");
    int64_t list[4];
    size_t n = 0;
    cr_assert_eq(ptm_config_get_int_list(c, "layer_sizes", list, 4, &n), PTM_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[1], 8);
    cr_assert_eq(ptm_config_get_int_list(c, "eos_token_id", list, 4, &n), PTM_OK);
    cr_assert(n == 1 && list[0] == 2);
    list[0] = -1;
    cr_assert_eq(ptm_config_get_int_list(c, "layer_sizes", list, 1, &n), PTM_OK);
    cr_assert(n == 2 && list[0] == 4, "copies up to cap, counts all");
    cr_assert_eq(ptm_config_get_int(c, "num_labels", &i), PTM_OK);
    cr_assert_eq(i, 2);
    cr_assert_eq(ptm_config_get_bool(c, "return_dict", &b), PTM_OK); /* restated: false */
    cr_assert_eq(b, 0);
    cr_assert_eq(ptm_config_get_bool(c, "tie_word_embeddings", &b), PTM_OK);
    cr_assert_eq(b, 0);
    cr_assert_eq(ptm_config_get_bool(c, "is_decoder", &b), PTM_OK); /* legacy default */
    cr_assert_eq(b, 0);
    cr_assert_eq(ptm_config_has(c, "is_decoder"), 0);
    cr_assert_eq(ptm_config_has(c, "rope_scaling"), 1); /* null is a value */
    char *j = get_json(c, "extra");
    cr_assert_str_eq(j, "{\"a\":1}");
    ptm_free(j);
    j = get_json(c, "id2label");
    cr_assert_str_eq(j, "{\"0\":\"LABEL_0\",\"1\":\"LABEL_1\"}");
    ptm_free(j);
    ptm_config_free(c);
}

Test(config, diff_keeps_arch_fields_and_changed_common_ones)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK);
    char *s = to_json(c, 1);
    /* As HF to_diff_dict: every key PretrainedConfig does not declare, model_type, and
     * return_dict (the architecture restated it to false, PretrainedConfig says true). */
    cr_assert_not_null(strstr(s, "\"hidden_size\": 32"));
    cr_assert_not_null(strstr(s, "\"model_type\": \"cfgtoy\""));
    cr_assert_not_null(strstr(s, "\"return_dict\": false"));
    cr_assert_null(strstr(s, "_name_or_path"));
    cr_assert_null(strstr(s, "output_attentions"));
    cr_assert_null(strstr(s, "id2label"));
    cr_assert_null(strstr(s, "dtype"));
    cr_assert_null(strstr(s, "architectures"));
    cr_assert_null(strstr(s, "transformers_version"));
    cr_assert_null(strstr(s, "chunk_size_feed_forward"));
    ptm_free(s);
    cr_assert_eq(ptm_config_set_int(c, "chunk_size_feed_forward", 4), PTM_OK);
    cr_assert_eq(ptm_config_set_json(c, "architectures", "[\"CfgToyModel\"]"), PTM_OK);
    cr_assert_eq(ptm_config_set_json(c, "transformers_version", "\"5.23.0\""), PTM_OK);
    cr_assert_eq(ptm_config_set_json(c, "return_dict", "true"), PTM_OK);
    s = to_json(c, 1);
    cr_assert_not_null(strstr(s, "\"chunk_size_feed_forward\": 4"));
    cr_assert_not_null(strstr(s, "\"architectures\": [\n    \"CfgToyModel\"\n  ]"));
    cr_assert_not_null(strstr(s, "\"transformers_version\": \"5.23.0\""));
    /* HF keeps it too: equal to PretrainedConfig's default but not to the class's. */
    cr_assert_not_null(strstr(s, "\"return_dict\": true"), "%s", s);
    ptm_free(s);
    cr_assert_eq(ptm_config_set_json(c, "output_hidden_states", "true"), PTM_OK);
    s = to_json(c, 1);
    cr_assert_not_null(strstr(s, "\"output_hidden_states\": true"), "%s", s);
    ptm_free(s);
    cr_assert_eq(ptm_config_set_json(c, "output_hidden_states", "false"), PTM_OK);
    s = to_json(c, 1);
    cr_assert_null(strstr(s, "output_hidden_states"), "%s", s);
    ptm_free(s);
    s = to_json(c, 0);
    cr_assert_not_null(strstr(s, "\"_name_or_path\": \"\""));
    cr_assert_not_null(strstr(s, "\"output_attentions\": false"));
    ptm_free(s);
    ptm_config_free(c);
}

Test(config, aliases_resolve_for_get_set_and_load)
{
    ptm_config *c = parse("{\"model_type\": \"cfgtoy\", \"hidden_size\": 1, \"n_embd\": 64}");
    int64_t i = 0;
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 64, "the alias wins, as HF sets kwargs after the fields");
    cr_assert_eq(ptm_config_get_int(c, "n_embd", &i), PTM_OK);
    cr_assert_eq(i, 64);
    cr_assert_eq(ptm_config_set_int(c, "n_embd", 96), PTM_OK);
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 96);
    cr_assert_eq(ptm_config_has(c, "n_embd"), 1);
    for (size_t k = 0; k < ptm_config_n_keys(c); k++) {
        cr_assert_str_neq(ptm_config_key_at(c, k), "n_embd");
    }
    char *s = to_json(c, 1);
    cr_assert_not_null(strstr(s, "\"hidden_size\": 96"));
    cr_assert_null(strstr(s, "n_embd"));
    ptm_free(s);
    ptm_config_free(c);
}

Test(config, torch_dtype_fills_dtype_unless_dtype_given)
{
    const char *s = NULL;
    ptm_config *c = parse("{\"model_type\": \"cfgtoy\", \"torch_dtype\": \"bfloat16\"}");
    cr_assert_eq(ptm_config_get_string(c, "dtype", &s), PTM_OK);
    cr_assert_str_eq(s, "bfloat16");
    cr_assert_eq(ptm_config_get_string(c, "torch_dtype", &s), PTM_OK);
    cr_assert_str_eq(s, "bfloat16");
    char *j = to_json(c, 1);
    cr_assert_not_null(strstr(j, "\"dtype\": \"bfloat16\""));
    cr_assert_null(strstr(j, "torch_dtype"));
    ptm_free(j);
    ptm_config_free(c);
    c = parse("{\"torch_dtype\": \"float16\", \"model_type\": \"cfgtoy\", \"dtype\": \"float32\"}");
    cr_assert_eq(ptm_config_get_string(c, "dtype", &s), PTM_OK);
    cr_assert_str_eq(s, "float32");
    ptm_config_free(c);
}

Test(config, unknown_keys_are_kept_verbatim)
{
    ptm_config *c = parse("{\"model_type\": \"cfgtoy\", \"my_extra\": {\"z\": [1, 2.5, \"x\", "
                          "null]}, \"max_length\": 20, \"_commit_hash\": \"abc\"}");
    char *j = get_json(c, "my_extra");
    cr_assert_str_eq(j, "{\"z\":[1,2.5,\"x\",null]}");
    ptm_free(j);
    char *s = to_json(c, 1);
    cr_assert_not_null(strstr(s, "\"max_length\": 20"));
    cr_assert_not_null(strstr(s, "\"my_extra\": {\n    \"z\": [\n      1,\n      2.5,"));
    cr_assert_null(strstr(s, "_commit_hash"), "HF drops it on load");
    ptm_free(s);
    cr_assert_eq(ptm_config_has(c, "my_extra"), 1);
    cr_assert_eq(ptm_config_has(c, "nothing_here"), 0);
    ptm_config_free(c);
}

Test(config, override_reads_json_else_a_bare_string)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK);
    int64_t i = 0;
    double d = 0;
    int32_t b = 1;
    const char *s = NULL;
    cr_assert_eq(ptm_config_override(c, "hidden_size=128"), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 128);
    cr_assert_eq(ptm_config_override(c, "layer_norm_eps=1e-5"), PTM_OK);
    cr_assert_eq(ptm_config_get_float(c, "layer_norm_eps", &d), PTM_OK);
    cr_assert_eq(d, 1e-5);
    cr_assert_eq(ptm_config_override(c, "use_bias=false"), PTM_OK);
    cr_assert_eq(ptm_config_get_bool(c, "use_bias", &b), PTM_OK);
    cr_assert_eq(b, 0);
    cr_assert_eq(ptm_config_override(c, "hidden_act=gelu_new"), PTM_OK);
    cr_assert_eq(ptm_config_get_string(c, "hidden_act", &s), PTM_OK);
    cr_assert_str_eq(s, "gelu_new");
    cr_assert_eq(ptm_config_override(c, "hidden_act=\"a=b\""), PTM_OK);
    cr_assert_eq(ptm_config_get_string(c, "hidden_act", &s), PTM_OK);
    cr_assert_str_eq(s, "a=b");
    cr_assert_eq(ptm_config_override(c, "eos_token_id=[1, 2]"), PTM_OK);
    int64_t list[2];
    size_t n = 0;
    cr_assert_eq(ptm_config_get_int_list(c, "eos_token_id", list, 2, &n), PTM_OK);
    cr_assert(n == 2 && list[0] == 1 && list[1] == 2);
    cr_assert_eq(ptm_config_override(c, "n_embd=8"), PTM_OK);
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 8);
    cr_assert_eq(ptm_config_override(c, "classifier_dropout=null"), PTM_OK);
    cr_assert_eq(ptm_config_get_float(c, "classifier_dropout", &d), PTM_E_NOT_FOUND);
    cr_assert_eq(ptm_config_override(c, "num_labels=3"), PTM_OK);
    char *j = get_json(c, "label2id");
    cr_assert_str_eq(j, "{\"LABEL_0\":0,\"LABEL_1\":1,\"LABEL_2\":2}");
    ptm_free(j);

    cr_assert_eq(ptm_config_override(c, "hidden_size=abc"), PTM_E_TYPE);
    cr_assert_not_null(strstr(ptm_last_error(), "\"hidden_size\": expected integer, got string"),
                       "%s", ptm_last_error());
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 8, "a refused override leaves the config unchanged");
    cr_assert_eq(ptm_config_override(c, "hiden_size=3"), PTM_E_NOT_FOUND);
    cr_assert_not_null(strstr(ptm_last_error(), "hiden_size"));
    cr_assert_eq(ptm_config_override(c, "hidden_size"), PTM_E_INVAL);
    cr_assert_not_null(strstr(ptm_last_error(), "expected key=value"));
    cr_assert_eq(ptm_config_override(c, "=3"), PTM_E_INVAL);
    ptm_config_free(c);
}

/* One bad file per fault: the status, and the file, the key and the expectation named. */
static const struct {
    const char *file;
    ptm_status st;
    const char *want; /* in ptm_last_error() */
} bad_files[] = {
    {"int_is_string.json", PTM_E_TYPE, "\"hidden_size\": expected integer, got string"},
    {"float_is_string.json", PTM_E_TYPE, "\"layer_norm_eps\": expected number, got string"},
    {"bool_is_int.json", PTM_E_TYPE, "\"use_bias\": expected boolean, got integer"},
    {"string_is_int.json", PTM_E_TYPE, "\"hidden_act\": expected string, got integer"},
    {"int_list_has_string.json", PTM_E_TYPE,
     "\"layer_sizes\": expected list of integers, got string at index 1"},
    {"float_list_has_bool.json", PTM_E_TYPE,
     "\"dropouts\": expected list of numbers, got boolean at index 1"},
    {"string_list_is_string.json", PTM_E_TYPE,
     "\"layer_types\": expected list of strings, got "
     "string"},
    {"object_is_list.json", PTM_E_TYPE, "\"rope_scaling\": expected object or null, got list"},
    {"int_or_list_is_string.json", PTM_E_TYPE,
     "\"eos_token_id\": expected integer or list of integers or null, got string"},
    {"null_not_nullable.json", PTM_E_TYPE, "\"vocab_size\": expected integer, got null"},
    {"common_is_wrong.json", PTM_E_TYPE,
     "\"architectures\": expected list of strings or null, got integer at index 1"},
    {"alias_is_wrong.json", PTM_E_TYPE, "\"n_embd\": expected integer, got number"},
    {"id2label_bad_key.json", PTM_E_TYPE,
     "\"id2label\": expected object with integer keys, got "
     "key \"one\""},
    {"legacy_is_wrong.json", PTM_E_TYPE, "\"is_decoder\": expected boolean, got string"},
    {"not_object.json", PTM_E_FORMAT, "expected a JSON object, got list"},
    {"not_json.json", PTM_E_FORMAT, "not JSON"},
    {"trailing_garbage.json", PTM_E_FORMAT, "at byte 25"},
    {"bad_utf8.json", PTM_E_FORMAT, "not JSON"},
    {"no_model_type.json", PTM_E_NOT_FOUND, "no \"model_type\" key"},
    {"unknown_model_type.json", PTM_E_NOT_FOUND, "model_type \"no_such_arch\" is not registered"},
    {"model_type_not_string.json", PTM_E_TYPE, "\"model_type\": expected string, got integer"},
};

Test(config, rejects_each_bad_file_naming_file_key_and_type)
{
    for (size_t k = 0; k < sizeof bad_files / sizeof bad_files[0]; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bad/%s", FIXTURE(""), bad_files[k].file);
        ptm_config *c = (ptm_config *)1; /* the call must overwrite this */
        ptm_status st = ptm_config_load(path, &c);
        cr_expect_eq(st, bad_files[k].st, "%s: got %s: %s", bad_files[k].file, ptm_status_name(st),
                     ptm_last_error());
        cr_expect_null(c, "%s", bad_files[k].file);
        cr_expect_not_null(strstr(ptm_last_error(), bad_files[k].file), "%s", ptm_last_error());
        cr_expect_not_null(strstr(ptm_last_error(), bad_files[k].want), "%s", ptm_last_error());
        if (c != NULL && c != (ptm_config *)1) {
            ptm_config_free(c);
        }
    }
}

Test(config, missing_file_is_not_found_naming_it)
{
    ptm_config *c = (ptm_config *)1;
    cr_assert_eq(ptm_config_load(FIXTURE("no_such_dir"), &c), PTM_E_NOT_FOUND);
    cr_assert_null(c);
    cr_assert_not_null(strstr(ptm_last_error(), "no_such_dir"));
}

Test(config, getters_and_setters_refuse_wrong_types)
{
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK);
    int64_t i = 7;
    const char *s = NULL;
    cr_assert_eq(ptm_config_get_int(c, "hidden_act", &i), PTM_E_TYPE);
    cr_assert_not_null(strstr(ptm_last_error(), "\"hidden_act\": expected integer, got string"));
    cr_assert_eq(i, 7, "out untouched on failure");
    cr_assert_eq(ptm_config_get_string(c, "hidden_size", &s), PTM_E_TYPE);
    cr_assert_eq(ptm_config_get_int(c, "no_such_key", &i), PTM_E_NOT_FOUND);
    cr_assert_not_null(strstr(ptm_last_error(), "no_such_key"));
    cr_assert_eq(ptm_config_get_int(c, "rope_scaling", &i), PTM_E_NOT_FOUND); /* null */
    cr_assert_eq(ptm_config_set_json(c, "hidden_size", "\"big\""), PTM_E_TYPE);
    cr_assert_not_null(strstr(ptm_last_error(), "\"hidden_size\": expected integer, got string"));
    cr_assert_eq(ptm_config_set_json(c, "use_bias", "1"), PTM_E_TYPE);
    cr_assert_eq(ptm_config_set_json(c, "hidden_size", "12 13"), PTM_E_FORMAT);
    cr_assert_not_null(strstr(ptm_last_error(), "hidden_size"));
    cr_assert_eq(ptm_config_set_json(c, "hidden_size", "nope"), PTM_E_FORMAT);
    cr_assert_eq(ptm_config_get_int(c, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 32, "refused sets leave the config unchanged");
    cr_assert_eq(ptm_config_set_json(c, "vocab_size", "9223372036854775813"), PTM_OK);
    cr_assert_eq(ptm_config_get_int(c, "vocab_size", &i), PTM_E_RANGE);
    cr_assert_eq(ptm_config_set_json(c, "model_type", "\"bert\""), PTM_E_INVAL);
    cr_assert_eq(ptm_config_set_json(c, "model_type", "\"cfgtoy\""), PTM_OK);
    cr_assert_eq(ptm_config_set_json(c, "layer_norm_eps", "3"), PTM_OK); /* int in a float */
    char *j = to_json(c, 1);
    cr_assert_not_null(strstr(j, "\"layer_norm_eps\": 3,"), "%s", j);
    ptm_free(j);
    ptm_config_free(c);
}

Test(config, floats_are_written_as_python_repr)
{
    static const char *const cases[][2] = {
        {"1e-5", "1e-05"},
        {"0.0001", "0.0001"},
        {"1e16", "1e+16"},
        {"1234567890123456.0", "1234567890123456.0"},
        {"0.1", "0.1"},
        {"-0.0", "-0.0"},
        {"1.5e-7", "1.5e-07"},
        {"1e5", "100000.0"},
        {"0.02", "0.02"},
        {"1e-12", "1e-12"},
        {"123.456", "123.456"},
        {"2.5e300", "2.5e+300"},
        {"1.0", "1.0"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"-3.25e-10", "-3.25e-10"},
    };
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cr_assert_eq(ptm_config_set_json(c, "layer_norm_eps", cases[k][0]), PTM_OK);
        char *j = get_json(c, "layer_norm_eps");
        cr_expect_str_eq(j, cases[k][1], "%s", cases[k][0]);
        ptm_free(j);
    }
    double d = 0;
    cr_assert_eq(ptm_config_set_json(c, "layer_norm_eps", "{\"__float__\": \"-Infinity\"}"), PTM_OK,
                 "%s", ptm_last_error());
    cr_assert_eq(ptm_config_get_float(c, "layer_norm_eps", &d), PTM_OK);
    cr_assert(isinf(d) && d < 0);
    char *j = to_json(c, 1);
    cr_assert_not_null(strstr(j, "\"layer_norm_eps\": {\n    \"__float__\": \"-Infinity\"\n  },"),
                       "%s", j);
    ptm_free(j);
    j = get_json(c, "layer_norm_eps");
    cr_assert_str_eq(j, "{\"__float__\":\"-Infinity\"}");
    ptm_free(j);
    ptm_config_free(c);
}

Test(config, id2label_keys_are_integers_sorted_numerically)
{
    ptm_config *c = parse("{\"model_type\": \"cfgtoy\", \"id2label\": {\"10\": \"a\", \"2\": "
                          "\"b\", \"01\": \"c\"}}");
    int64_t n = 0;
    cr_assert_eq(ptm_config_get_int(c, "num_labels", &n), PTM_OK);
    cr_assert_eq(n, 3);
    char *s = to_json(c, 1);
    cr_assert_not_null(strstr(s, "\"id2label\": {\n    \"1\": \"c\",\n    \"2\": \"b\",\n"
                                 "    \"10\": \"a\"\n  },"),
                       "%s", s);
    ptm_free(s);
    ptm_config_free(c);
    c = parse("{\"model_type\": \"cfgtoy\", \"num_labels\": 4}");
    cr_assert_eq(ptm_config_get_int(c, "num_labels", &n), PTM_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(ptm_config_has(c, "num_labels"), 1);
    ptm_config_free(c);
}

Test(config, keys_enumerate_sorted)
{
    ptm_config *c = parse("{\"model_type\": \"cfgtoy\", \"zz\": 1, \"aa\": 2}");
    size_t n = ptm_config_n_keys(c);
    cr_assert_gt(n, 10);
    cr_assert_str_eq(ptm_config_key_at(c, 0), "_name_or_path");
    for (size_t k = 1; k < n; k++) {
        cr_assert_lt(strcmp(ptm_config_key_at(c, k - 1), ptm_config_key_at(c, k)), 0);
    }
    cr_assert_str_eq(ptm_config_key_at(c, n - 1), "zz");
    cr_assert_null(ptm_config_key_at(c, n));
    ptm_config_free(c);
}

Test(config, copy_is_deep)
{
    ptm_config *a = parse("{\"model_type\": \"cfgtoy\", \"extra\": {\"k\": [1]}}");
    ptm_config *b = NULL;
    cr_assert_eq(ptm_config_copy(a, &b), PTM_OK);
    cr_assert_eq(ptm_config_set_json(b, "extra", "{\"k\": [2]}"), PTM_OK);
    cr_assert_eq(ptm_config_set_int(b, "hidden_size", 5), PTM_OK);
    char *ja = get_json(a, "extra");
    cr_assert_str_eq(ja, "{\"k\":[1]}");
    ptm_free(ja);
    int64_t i = 0;
    cr_assert_eq(ptm_config_get_int(a, "hidden_size", &i), PTM_OK);
    cr_assert_eq(i, 32);
    ptm_config_free(a);
    ptm_config_free(b);
    ptm_config_free(NULL);
}

Test(config, save_into_a_directory_writes_config_json_atomically)
{
    char dir[512], path[600];
    make_tmpdir(dir, sizeof dir);
    ptm_config *c = NULL;
    cr_assert_eq(ptm_config_new("cfgtoy", &c), PTM_OK);
    cr_assert_eq(ptm_config_save(c, dir, 1), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *want = to_json(c, 1), *got = slurp(path);
    cr_assert_str_eq(got, want);
    ptm_free(want);
    free(got);
    snprintf(path, sizeof path, "%s/config.json.tmp.%ld", dir, (long)getpid());
    cr_assert_neq(access(path, F_OK), 0, "no temporary file is left behind");
    ptm_config *d = NULL;
    cr_assert_eq(ptm_config_load(dir, &d), PTM_OK, "%s", ptm_last_error());
    ptm_config_free(d);
    snprintf(path, sizeof path, "%s/no/such/dir/config.json", dir);
    cr_assert_eq(ptm_config_save(c, path, 1), PTM_E_IO);
    cr_assert_not_null(strstr(ptm_last_error(), "no/such/dir"), "%s", ptm_last_error());
    ptm_config_free(c);
    remove_tmpdir(dir);
}

static const struct ptm_config_field bad_default_fields[] = {
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "\"768\"", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_field bad_json_fields[] = {
    PTM_CONFIG_FIELD("hidden_act", PTM_CFG_STRING, 0, "gelu", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_field dup_fields[] = {
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "1", NULL),
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "2", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_field clash_fields[] = {
    PTM_CONFIG_FIELD("return_dict", PTM_CFG_STRING, 0, "\"yes\"", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_field ok_fields[] = {
    PTM_CONFIG_FIELD("hidden_size", PTM_CFG_INT, 0, "1", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_field alias_named_fields[] = {
    PTM_CONFIG_FIELD("torch_dtype", PTM_CFG_STRING, 0, "\"float32\"", NULL),
    PTM_CONFIG_FIELD_END,
};
static const struct ptm_config_alias dangling_aliases[] = {
    PTM_CONFIG_ALIAS("d_model", "hidden_dim"),
    PTM_CONFIG_ALIAS_END,
};
static const struct ptm_model_class bad_classes1[] = {CLASS("CfgBad1"), CLASS_END};
static const struct ptm_model_class bad_classes2[] = {CLASS("CfgBad2"), CLASS_END};
static const struct ptm_model_class bad_classes3[] = {CLASS("CfgBad3"), CLASS_END};
static const struct ptm_model_class bad_classes4[] = {CLASS("CfgBad4"), CLASS_END};
static const struct ptm_model_class bad_classes5[] = {CLASS("CfgBad5"), CLASS_END};
static const struct ptm_model_class bad_classes6[] = {CLASS("CfgBad6"), CLASS_END};

Test(config, schema_with_a_bad_default_is_refused_at_registration)
{
    static const struct ptm_arch archs[] = {
        ARCH("cfgbad1", bad_default_fields, NULL, bad_classes1),
        ARCH("cfgbad2", bad_json_fields, NULL, bad_classes2),
        ARCH("cfgbad3", dup_fields, NULL, bad_classes3),
        ARCH("cfgbad4", clash_fields, NULL, bad_classes4),
        ARCH("cfgbad5", ok_fields, dangling_aliases, bad_classes5),
        ARCH("cfgbad6", alias_named_fields, NULL, bad_classes6),
    };
    static const char *const want[][2] = {
        {"hidden_size", "expected integer, got string"},
        {"hidden_act", "is not JSON"},
        {"hidden_size", "declared twice"},
        {"return_dict", "restates a common field as string"},
        {"d_model", "points to no field (\"hidden_dim\")"},
        {"torch_dtype", "name is an alias of \"dtype\""},
    };
    for (size_t k = 0; k < sizeof archs / sizeof archs[0]; k++) {
        cr_expect_eq(ptm_arch_register(&archs[k]), PTM_E_PLUGIN, "%s", archs[k].model_type);
        cr_expect_not_null(strstr(ptm_last_error(), archs[k].model_type), "%s", ptm_last_error());
        cr_expect_not_null(strstr(ptm_last_error(), want[k][0]), "%s", ptm_last_error());
        cr_expect_not_null(strstr(ptm_last_error(), want[k][1]), "%s", ptm_last_error());
        cr_expect_null(ptm_arch_find(archs[k].model_type));
    }
}

Test(config, load_survives_every_allocation_failure)
{
    for (long n = 1;; n++) {
        ptm__alloc_fail_at(n);
        ptm_config *c = (ptm_config *)1;
        ptm_status st = ptm_config_load(FIXTURE("hf_bert"), &c);
        long made = ptm__alloc_fail_at(0);
        if (st == PTM_OK) {
            cr_assert_lt(made, n, "succeeded although allocation %ld failed", n);
            ptm_config_free(c);
            break;
        }
        cr_assert_eq(st, PTM_E_NOMEM, "allocation %ld: %s", n, ptm_last_error());
        cr_assert_null(c);
    }
}
