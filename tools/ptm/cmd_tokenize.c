/*
 * cmd_tokenize.c - `ptm tokenize`: a model's tokenizer on texts given on the command line:
 * ids, tokens, type ids and attention mask (--json), or a readable listing; --decode turns
 * ids back into text.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static json_object *int_array(const int32_t *v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(a, json_object_new_int(v[i]));
    }
    return a;
}

static int show(const ptm_tokenizer *tok, const char *text, const char *pair,
                const struct ptm_encode_opts *o, int as_json)
{
    struct ptm_encoding *e = NULL;
    ptm_status st =
        ptm_tokenizer_encode(tok, text, strlen(text), pair, pair ? strlen(pair) : 0, o, &e);
    if (st != PTM_OK) {
        return cli_fail("tokenize", st);
    }
    if (as_json) {
        json_object *root = json_object_new_object(), *tokens = json_object_new_array();
        for (size_t i = 0; i < e->n; i++) {
            const char *t = ptm_tokenizer_id_to_token(tok, e->ids[i]);
            json_object_array_add(tokens, json_object_new_string(t ? t : ""));
        }
        json_object_object_add(root, "text", json_object_new_string(text));
        json_object_object_add(root, "ids", int_array(e->ids, e->n));
        json_object_object_add(root, "tokens", tokens);
        json_object_object_add(root, "type_ids", int_array(e->type_ids, e->n));
        json_object_object_add(root, "attention_mask", int_array(e->attention_mask, e->n));
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
    } else {
        printf("%zu tokens:", e->n);
        for (size_t i = 0; i < e->n; i++) {
            const char *t = ptm_tokenizer_id_to_token(tok, e->ids[i]);
            printf(" %s(%d)", t ? t : "?", (int)e->ids[i]);
        }
        printf("\n");
    }
    ptm_encoding_free(e);
    return CLI_OK;
}

static int decode(const ptm_tokenizer *tok, int argc, char **argv, int first, int skip)
{
    size_t n = 0, cap = 1;
    for (int i = first; i < argc; i++) { /* at most one id per byte */
        cap += strlen(argv[i]);
    }
    int32_t *ids = calloc(cap, sizeof *ids);
    for (int i = first; ids && i < argc; i++) {
        for (char *p = argv[i], *end; *p;) {
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > INT32_MAX) {
                fprintf(stderr, "ptm tokenize: --decode takes token ids, got \"%s\"\n", argv[i]);
                free(ids);
                return CLI_USAGE;
            }
            ids[n++] = (int32_t)v;
            p = *end == ',' ? end + 1 : end;
        }
    }
    char *text = NULL;
    ptm_status st = ptm_tokenizer_decode(tok, ids, n, skip, &text);
    free(ids);
    if (st != PTM_OK) {
        return cli_fail("tokenize", st);
    }
    printf("%s\n", text);
    ptm_free(text);
    return CLI_OK;
}

static int run(int argc, char **argv)
{
    const char *model = NULL, *pair = NULL;
    int as_json = 0, do_decode = 0, first = argc;
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_OFF;
    for (int i = 1; i < argc && first == argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--decode")) {
            do_decode = 1;
        } else if (!strcmp(argv[i], "--no-special")) {
            o.add_special_tokens = 0;
        } else if (!strcmp(argv[i], "--pair") && i + 1 < argc) {
            pair = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "ptm tokenize: unknown option \"%s\" (see ptm tokenize --help)\n",
                    argv[i]);
            return CLI_USAGE;
        } else if (model == NULL) {
            model = argv[i];
        } else {
            first = i;
        }
    }
    if (model == NULL || first == argc) {
        fprintf(stderr, "ptm tokenize: missing %s (see ptm tokenize --help)\n",
                model ? "text" : "model");
        return CLI_USAGE;
    }
    ptm_tokenizer *tok = NULL;
    ptm_status st = ptm_tokenizer_from_pretrained(model, 0, &tok);
    if (st != PTM_OK) {
        return cli_fail("tokenize", st);
    }
    int rc = CLI_OK;
    if (do_decode) {
        rc = decode(tok, argc, argv, first, o.add_special_tokens); /* skip specials by default */
    }
    for (int i = first; !do_decode && rc == CLI_OK && i < argc; i++) {
        rc = show(tok, argv[i], pair, &o, as_json);
    }
    ptm_tokenizer_free(tok);
    return rc;
}

const struct cli_command cli_cmd_tokenize = {
    .name = "tokenize",
    .summary = "run a model's tokenizer: ids and tokens, or decode ids",
    .usage = "MODEL [--json] [--pair TEXT] [--no-special] TEXT...\n"
             "       ptm tokenize MODEL --decode [--no-special] ID[,ID...]...\n\n"
             "Encodes each TEXT with the model's tokenizer.json (as Hugging Face tokenizers\n"
             "does) and prints tokens and ids, or with --json the ids, tokens, type ids and\n"
             "attention mask. --decode turns ids back into text, skipping special tokens;\n"
             "with --no-special they are kept. MODEL: a directory, built-in name or repo id.\n",
    .run = run,
};
