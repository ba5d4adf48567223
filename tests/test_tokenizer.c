/*
 * test_tokenizer.c - the tokenizer (runtime/tokenizer.c and tok_*.c) through the public API.
 * Golden tests compare every line of tests/fixtures/tok/corpus.txt, encoded alone and (every
 * tenth line) as a pair, with what HF `tokenizers` produced (tools/make_tokenizer_fixtures.py):
 * ids, type ids, attention and special-token masks and the decode must be identical, for
 * all-MiniLM-L6-v2's tokenizer and three trained WordPiece tokenizers exercising the other
 * normalizers, pre-tokenizers, post-processors and added-token flags, then BPE and Unigram:
 * GPT-2 style byte-level BPE, LLaMA-3 style (Split regex, ignore_merges), LLaMA-2 style
 * SentencePiece BPE with byte_fallback (Prepend/Replace, and Metaspace) and a T5-style Unigram
 * with a real sentencepiece precompiled charsmap. Batches check padding.
 * Then errors, lookups, concurrency and the allocation-failure sweep.
 *
 * The fixtures are JSON lines of a fixed shape written by the script; the small readers here
 * only handle that shape (tests link libptm only, not json-c).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ptm/ptm.h"

#define TOK(p) PTM_TEST_FIXTURES "/tok/" p

long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

/* ---- fixture reading ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *n = (size_t)size;
    return buf;
}

struct corpus {
    char *buf;
    char **line; /* NUL terminated copies (a line may hold NUL: use len) */
    size_t *len;
    size_t n;
};

static struct corpus corpus_load(void)
{
    struct corpus c = {0};
    size_t n;
    c.buf = slurp(TOK("corpus.txt"), &n);
    size_t cap = 4096;
    c.line = malloc(cap * sizeof *c.line);
    c.len = malloc(cap * sizeof *c.len);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (c.buf[i] == '\n') {
            cr_assert_lt(c.n, cap);
            c.buf[i] = '\0';
            c.line[c.n] = c.buf + start;
            c.len[c.n++] = i - start;
            start = i + 1;
        }
    }
    return c;
}

static void corpus_free(struct corpus *c)
{
    free(c->buf);
    free(c->line);
    free(c->len);
}

/* Value after "key": in a JSON line. */
static const char *field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    cr_assert_not_null(p, "fixture line lacks %s", key);
    return p + strlen(pat);
}

/* An integer array "[1,2,3]" at p; returns the end. */
static const char *int_array(const char *p, int32_t *out, size_t cap, size_t *n)
{
    cr_assert_eq(*p, '[');
    p++;
    *n = 0;
    while (*p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        cr_assert_lt(*n, cap);
        out[(*n)++] = (int32_t)v;
        p = end;
        if (*p == ',') {
            p++;
        }
    }
    return p + 1;
}

/* A digit string "0011" at p. */
static const char *digit_string(const char *p, int32_t *out, size_t cap, size_t *n)
{
    cr_assert_eq(*p, '"');
    p++;
    *n = 0;
    while (*p != '"') {
        cr_assert_lt(*n, cap);
        out[(*n)++] = *p++ - '0';
    }
    return p + 1;
}

static void put_utf8(char **o, unsigned cp)
{
    unsigned char *q = (unsigned char *)*o;
    if (cp < 0x80) {
        *q++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *q++ = (unsigned char)(0xC0 | (cp >> 6));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xE0 | (cp >> 12));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (unsigned char)(0xF0 | (cp >> 18));
        *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)q;
}

/* A JSON string at p, unescaped into out (NUL terminated). */
static void json_string(const char *p, char *out)
{
    cr_assert_eq(*p, '"');
    p++;
    while (*p != '"') {
        if (*p != '\\') {
            *out++ = *p++;
            continue;
        }
        p++;
        char e = *p++;
        switch (e) {
        case 'n':
            *out++ = '\n';
            break;
        case 't':
            *out++ = '\t';
            break;
        case 'r':
            *out++ = '\r';
            break;
        case 'b':
            *out++ = '\b';
            break;
        case 'f':
            *out++ = '\f';
            break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            put_utf8(&out, cp);
            break;
        }
        default:
            *out++ = e;
            break;
        }
    }
    *out = '\0';
}

/* ---- golden comparison ---- */

#define MAXTOK 4096

struct expect {
    long a, b;
    int32_t ids[MAXTOK], types[MAXTOK], attn[MAXTOK], special[MAXTOK];
    size_t n_ids, n_types, n_attn, n_special;
    char decoded[65536];
};

static void parse_expect(const char *line, struct expect *e)
{
    e->a = strtol(field(line, "a"), NULL, 10);
    const char *b = field(line, "b");
    e->b = strncmp(b, "null", 4) == 0 ? -1 : strtol(b, NULL, 10);
    int_array(field(line, "ids"), e->ids, MAXTOK, &e->n_ids);
    digit_string(field(line, "type_ids"), e->types, MAXTOK, &e->n_types);
    digit_string(field(line, "attention_mask"), e->attn, MAXTOK, &e->n_attn);
    digit_string(field(line, "special_tokens_mask"), e->special, MAXTOK, &e->n_special);
    json_string(field(line, "decoded"), e->decoded);
}

static int same(const int32_t *a, const int32_t *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* Check one case; returns 1 if it matches, printing the first few mismatches. */
static int check_case(const ptm_tokenizer *t, const struct corpus *c, const struct expect *e,
                      const struct ptm_encode_opts *o, int *reported)
{
    struct ptm_encoding *enc = NULL;
    ptm_status st =
        ptm_tokenizer_encode(t, c->line[e->a], c->len[e->a], e->b >= 0 ? c->line[e->b] : NULL,
                             e->b >= 0 ? c->len[e->b] : 0, o, &enc);
    cr_assert_eq(st, PTM_OK, "line %ld: %s", e->a, ptm_last_error());
    int ok = enc->n == e->n_ids && same(enc->ids, e->ids, e->n_ids) &&
             same(enc->type_ids, e->types, e->n_ids) &&
             same(enc->attention_mask, e->attn, e->n_ids) &&
             same(enc->special_tokens_mask, e->special, e->n_ids);
    char *text = NULL;
    if (ok) {
        cr_assert_eq(ptm_tokenizer_decode(t, enc->ids, enc->n, 1, &text), PTM_OK);
        ok = strcmp(text, e->decoded) == 0;
    }
    if (!ok && (*reported)++ < 5) {
        fprintf(stderr, "mismatch: line %ld pair %ld: got %zu ids, want %zu\n  got: ", e->a, e->b,
                enc->n, e->n_ids);
        for (size_t i = 0; i < enc->n && i < 40; i++) {
            fprintf(stderr, "%d%s", enc->ids[i], enc->special_tokens_mask[i] ? "*" : "");
            fprintf(stderr, "/%d ", enc->type_ids[i]);
        }
        fprintf(stderr, "\n  want: ");
        for (size_t i = 0; i < e->n_ids && i < 40; i++) {
            fprintf(stderr, "%d%s/%d ", e->ids[i], e->special[i] ? "*" : "", e->types[i]);
        }
        fprintf(stderr, "\n  decode got [%s]\n  want [%s]\n", text ? text : "(n/a)", e->decoded);
    }
    ptm_free(text);
    ptm_encoding_free(enc);
    return ok;
}

static void golden(const char *name, const char *load_path, const struct ptm_encode_opts *o)
{
    char path[1024];
    size_t n;
    struct corpus c = corpus_load();
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(load_path, &t), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/tok/%s/expected.jsonl", PTM_TEST_FIXTURES, name);
    char *buf = slurp(path, &n);
    struct expect *e = malloc(sizeof *e);
    size_t checked = 0, passed = 0, pairs = 0;
    int reported = 0;
    for (char *line = buf, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        parse_expect(line, e);
        cr_assert_lt((size_t)e->a, c.n);
        passed += (size_t)check_case(t, &c, e, o, &reported);
        checked++;
        pairs += e->b >= 0;
    }
    printf("tokenizer %s: %zu of %zu cases identical to HF (%zu pairs, %zu corpus lines)\n", name,
           passed, checked, pairs, c.n);
    cr_assert_geq(c.n, 2000);
    cr_assert_geq(checked, 600);
    cr_assert_eq(passed, checked, "%s: %zu of %zu cases differ from HF", name, checked - passed,
                 checked);
    free(e);
    free(buf);
    ptm_tokenizer_free(t);
    corpus_free(&c);
}

Test(tokenizer, minilm_matches_hf_on_every_corpus_line)
{
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_OFF; /* the file's truncation (longest_first, 128) stays */
    golden("minilm", TOK("minilm"), &o);
}

Test(tokenizer, strip_accents_tokenizer_matches_hf_on_every_corpus_line)
{
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_LONGEST;
    o.max_length = 24;
    o.truncation_side = PTM_TOK_SIDE_LEFT;
    golden("wp_strip", TOK("wp_strip/tokenizer.json"), &o);
}

Test(tokenizer, nfkc_template_tokenizer_matches_hf_on_every_corpus_line)
{
    golden("wp_nfkc", TOK("wp_nfkc/tokenizer.json"), NULL);
}

/* ---- other truncation options on pairs (options.jsonl) ---- */

static void options_cases(const char *name)
{
    char path[1024];
    size_t n;
    struct corpus c = corpus_load();
    ptm_tokenizer *t = NULL;
    snprintf(path, sizeof path, "%s/tok/%s/tokenizer.json", PTM_TEST_FIXTURES, name);
    cr_assert_eq(ptm_tokenizer_load(path, &t), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/tok/%s/options.jsonl", PTM_TEST_FIXTURES, name);
    char *buf = slurp(path, &n);
    struct expect *e = malloc(sizeof *e);
    size_t checked = 0, errors = 0;
    for (char *line = buf, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
        const char *strategy = field(line, "strategy");
        o.truncation = strncmp(strategy, "\"only_first", 11) == 0    ? PTM_TOK_TRUNC_ONLY_FIRST
                       : strncmp(strategy, "\"only_second", 12) == 0 ? PTM_TOK_TRUNC_ONLY_SECOND
                                                                     : PTM_TOK_TRUNC_LONGEST;
        o.max_length = (int32_t)strtol(field(line, "max_length"), NULL, 10);
        o.truncation_side = strncmp(field(line, "direction"), "\"left", 5) == 0
                                ? PTM_TOK_SIDE_LEFT
                                : PTM_TOK_SIDE_RIGHT;
        o.add_special_tokens = strncmp(field(line, "add_special_tokens"), "true", 4) == 0;
        o.padding = PTM_TOK_PAD_OFF;
        long a = strtol(field(line, "a"), NULL, 10), b = strtol(field(line, "b"), NULL, 10);
        int want_error = strncmp(field(line, "error"), "true", 4) == 0;
        int_array(field(line, "ids"), e->ids, MAXTOK, &e->n_ids);
        digit_string(field(line, "type_ids"), e->types, MAXTOK, &e->n_types);
        digit_string(field(line, "special_tokens_mask"), e->special, MAXTOK, &e->n_special);
        struct ptm_encoding *enc = NULL;
        ptm_status st = ptm_tokenizer_encode(t, c.line[a], c.len[a], c.line[b], c.len[b], &o, &enc);
        if (want_error) {
            cr_assert_eq(st, PTM_E_INVAL, "%s: lines %ld+%ld: HF refuses, ptm gave %s", name, a, b,
                         ptm_status_name(st));
            cr_assert_null(enc);
            errors++;
        } else {
            cr_assert_eq(st, PTM_OK, "%s: lines %ld+%ld: %s", name, a, b, ptm_last_error());
            cr_assert(enc->n == e->n_ids && same(enc->ids, e->ids, e->n_ids) &&
                          same(enc->type_ids, e->types, e->n_ids) &&
                          same(enc->special_tokens_mask, e->special, e->n_ids),
                      "%s: lines %ld+%ld differ from HF under [%s]", name, a, b, line);
            ptm_encoding_free(enc);
        }
        checked++;
    }
    printf("tokenizer %s: %zu truncation-option pairs identical to HF (%zu refused by both)\n",
           name, checked, errors);
    free(e);
    free(buf);
    ptm_tokenizer_free(t);
    corpus_free(&c);
}

Test(tokenizer, truncation_strategies_on_pairs_match_hf)
{
    options_cases("minilm");
    options_cases("wp_strip");
    options_cases("wp_nfkc");
    options_cases("wp_misc");
}

Test(tokenizer, misc_components_tokenizer_matches_hf_on_part_of_the_corpus)
{
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_LONGEST;
    o.max_length = 40;
    golden("wp_misc", TOK("wp_misc/tokenizer.json"), &o);
}

/* ---- BPE and Unigram (tools/make_tokenizer_fixtures.py --sets bpe) ---- */

Test(tokenizer, gpt2_byte_level_bpe_matches_hf_on_every_corpus_line)
{
    golden("bl_gpt2", TOK("bl_gpt2/tokenizer.json"), NULL);
}

Test(tokenizer, llama3_split_regex_ignore_merges_bpe_matches_hf_on_every_corpus_line)
{
    golden("bl_llama3", TOK("bl_llama3/tokenizer.json"), NULL);
}

Test(tokenizer, llama2_byte_fallback_bpe_matches_hf_on_every_corpus_line)
{
    golden("sp_llama2", TOK("sp_llama2/tokenizer.json"), NULL);
}

Test(tokenizer, metaspace_first_bpe_matches_hf_on_part_of_the_corpus)
{
    golden("sp_meta", TOK("sp_meta/tokenizer.json"), NULL);
}

Test(tokenizer, t5_unigram_precompiled_matches_hf_on_every_corpus_line)
{
    golden("uni_t5", TOK("uni_t5/tokenizer.json"), NULL);
}

Test(tokenizer, roberta_byte_level_bpe_matches_hf_on_part_of_the_corpus)
{
    golden("bl_roberta", TOK("bl_roberta/tokenizer.json"), NULL);
}

Test(tokenizer, bpe_prefix_suffix_unfused_unk_and_split_behaviours_match_hf)
{
    golden("bpe_misc", TOK("bpe_misc/tokenizer.json"), NULL);
}

Test(tokenizer, unigram_byte_fallback_matches_hf_on_part_of_the_corpus)
{
    golden("uni_bf", TOK("uni_bf/tokenizer.json"), NULL);
}

Test(tokenizer, bpe_and_unigram_truncate_pairs_like_hf)
{
    options_cases("bl_gpt2");
    options_cases("bl_llama3");
    options_cases("sp_llama2");
    options_cases("sp_meta");
    options_cases("uni_t5");
}

/* ---- padded batches (batch.json: a JSON array of cases with 2-D arrays) ---- */

/*
 * Rows are the first 16 corpus lines. Batch texts are C strings, so a line holding a NUL is
 * compared only for its length. HF leaves rows ragged when nothing pads (ragged_ok): then
 * our rectangle must hold HF's row followed by padding.
 */
static void check_batch_case(const ptm_tokenizer *t, const struct corpus *c, const char *js,
                             const struct ptm_encode_opts *o, int ragged_ok, int with_pairs)
{
    const char *texts[16], *pairs[16];
    for (int i = 0; i < 16; i++) {
        texts[i] = c->line[i];
        pairs[i] = c->line[16 + i];
    }
    struct ptm_batch_encoding *b = NULL;
    cr_assert_eq(ptm_tokenizer_encode_batch(t, texts, with_pairs ? pairs : NULL, 16, o, &b), PTM_OK,
                 "%s", ptm_last_error());
    cr_assert_eq(b->n_seq, 16);
    const char *keys[4] = {"ids", "type_ids", "attention_mask", "special_tokens_mask"};
    int32_t *got[4] = {b->ids, b->type_ids, b->attention_mask, b->special_tokens_mask};
    static int32_t want[MAXTOK];
    for (int k = 0; k < 4; k++) {
        const char *p = field(js, keys[k]);
        cr_assert_eq(*p, '[');
        p++;
        for (size_t row = 0; row < 16; row++) {
            size_t n;
            p = k == 0 ? int_array(p, want, MAXTOK, &n) : digit_string(p, want, MAXTOK, &n);
            p++; /* ',' or ']' */
            if (strlen(c->line[row]) != c->len[row] ||
                (with_pairs && strlen(c->line[16 + row]) != c->len[16 + row])) {
                continue;
            }
            cr_assert(n == b->seq_len || (ragged_ok && n < b->seq_len),
                      "%s row %zu: length %zu, want %zu", keys[k], row, b->seq_len, n);
            cr_assert(same(got[k] + row * b->seq_len, want, n), "%s row %zu differs", keys[k], row);
            for (size_t i = n; k == 2 && i < b->seq_len; i++) {
                cr_assert_eq(got[k][row * b->seq_len + i], 0, "row %zu: not padding at %zu", row,
                             i);
            }
        }
    }
    ptm_batch_encoding_free(b);
}

static void batch_cases(const char *name, const char *load_path)
{
    char path[1024];
    size_t n;
    struct corpus c = corpus_load();
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(load_path, &t), PTM_OK, "%s", ptm_last_error());
    int32_t pad = ptm_tokenizer_token_to_id(t, "[PAD]");
    snprintf(path, sizeof path, "%s/tok/%s/batch.json", PTM_TEST_FIXTURES, name);
    char *buf = slurp(path, &n);

    char *p1 = strstr(buf, "\"case\":\"longest_multiple_of_8");
    char *p2 = strstr(buf, "\"case\":\"longest_left_trunc_12_left");
    char *p3 = strstr(buf, "\"case\":\"pairs_no_special_trunc_20");
    cr_assert(p1 != NULL && p2 != NULL && p3 != NULL);
    p1[-1] = p2[-1] = p3[-1] = '\0'; /* split the cases apart */
    check_batch_case(t, &c, buf, NULL, 1, 0);

    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_LONGEST;
    o.pad_to_multiple_of = 8;
    o.pad_id = pad;
    o.truncation = PTM_TOK_TRUNC_LONGEST;
    o.max_length = 40;
    o.truncation_side = PTM_TOK_SIDE_RIGHT;
    check_batch_case(t, &c, p1, &o, 0, 0);

    o.pad_to_multiple_of = 0;
    o.padding_side = PTM_TOK_SIDE_LEFT;
    o.max_length = 12;
    o.truncation_side = PTM_TOK_SIDE_LEFT;
    check_batch_case(t, &c, p2, &o, 0, 0);

    o.add_special_tokens = 0;
    o.padding_side = PTM_TOK_SIDE_RIGHT;
    o.max_length = 20;
    o.truncation_side = PTM_TOK_SIDE_RIGHT;
    check_batch_case(t, &c, p3, &o, 0, 1);
    free(buf);
    ptm_tokenizer_free(t);
    corpus_free(&c);
}

Test(tokenizer, minilm_batches_pad_like_hf)
{
    batch_cases("minilm", TOK("minilm/tokenizer.json"));
}

Test(tokenizer, trained_tokenizers_batches_pad_like_hf)
{
    batch_cases("wp_strip", TOK("wp_strip/tokenizer.json"));
    batch_cases("wp_nfkc", TOK("wp_nfkc/tokenizer.json"));
    batch_cases("wp_misc", TOK("wp_misc/tokenizer.json"));
}

/* ---- lookups and options ---- */

Test(tokenizer, looks_up_tokens_and_ids)
{
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(TOK("minilm"), &t), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_tokenizer_vocab_size(t), 30522);
    cr_assert_eq(ptm_tokenizer_token_to_id(t, "[CLS]"), 101);
    cr_assert_eq(ptm_tokenizer_token_to_id(t, "##ing"), ptm_tokenizer_token_to_id(t, "##ing"));
    cr_assert_eq(ptm_tokenizer_token_to_id(t, "no-such-token-here"), -1);
    cr_assert_str_eq(ptm_tokenizer_id_to_token(t, 102), "[SEP]");
    cr_assert_null(ptm_tokenizer_id_to_token(t, 30522));
    cr_assert_null(ptm_tokenizer_id_to_token(t, -1));
    cr_assert_eq(ptm_tokenizer_model_max_length(t), 512);
    ptm_tokenizer_free(t);

    /* A normalized added token is found by its content and named by its normalized form. */
    cr_assert_eq(ptm_tokenizer_load(TOK("wp_strip/tokenizer.json"), &t), PTM_OK);
    int32_t id = ptm_tokenizer_token_to_id(t, "Zürich");
    cr_assert_geq(id, 0);
    cr_assert_str_eq(ptm_tokenizer_id_to_token(t, id), "Zurich");
    cr_assert_eq(ptm_tokenizer_vocab_size(t), (size_t)id + 1);
    cr_assert_eq(ptm_tokenizer_model_max_length(t), 0); /* loaded from a file, not a dir */
    ptm_tokenizer_free(t);
}

Test(tokenizer, file_defaults_pad_to_fixed_length_and_options_override_them)
{
    ptm_tokenizer *t = NULL;
    struct ptm_encoding *e = NULL;
    cr_assert_eq(ptm_tokenizer_load(TOK("minilm/tokenizer.json"), &t), PTM_OK);
    cr_assert_eq(ptm_tokenizer_encode(t, "hello world", 11, NULL, 0, NULL, &e), PTM_OK);
    cr_assert_eq(e->n, 128); /* the file says Fixed(128) */
    cr_assert_eq(e->attention_mask[4], 0);
    ptm_encoding_free(e);

    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_OFF;
    o.add_special_tokens = 0;
    cr_assert_eq(ptm_tokenizer_encode(t, "hello world", 11, NULL, 0, &o, &e), PTM_OK);
    cr_assert_eq(e->n, 2);
    cr_assert_eq(e->ids[0], ptm_tokenizer_token_to_id(t, "hello"));
    ptm_encoding_free(e);

    o.truncation = PTM_TOK_TRUNC_ONLY_SECOND;
    o.max_length = 4;
    cr_assert_eq(ptm_tokenizer_encode(t, "a b c d e f", 11, NULL, 0, &o, &e), PTM_E_INVAL);
    cr_assert_null(e);
    cr_assert_not_null(strstr(ptm_last_error(), "only_second"));
    ptm_tokenizer_free(t);
}

Test(tokenizer, batch_errors_name_the_row_and_leave_no_batch)
{
    ptm_tokenizer *t = NULL;
    struct ptm_batch_encoding *b = (struct ptm_batch_encoding *)1;
    const char *texts[2] = {"one two three", "four"};
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_ONLY_SECOND;
    cr_assert_eq(ptm_tokenizer_load(TOK("minilm"), &t), PTM_OK);
    cr_assert_eq(ptm_tokenizer_encode_batch(t, texts, NULL, 2, &o, &b), PTM_OK,
                 "nothing to cut, so no pair needed: %s", ptm_last_error());
    cr_assert_eq(b->seq_len, 128);
    ptm_batch_encoding_free(b);
    o.max_length = 3; /* room for one token beside [CLS] and [SEP] */
    o.padding = PTM_TOK_PAD_OFF;
    cr_assert_eq(ptm_tokenizer_encode_batch(t, texts, NULL, 2, &o, &b), PTM_E_INVAL);
    cr_assert_null(b);
    cr_assert_not_null(strstr(ptm_last_error(), "row 0: "), "[%s]", ptm_last_error());
    ptm_tokenizer_free(t);
}

Test(tokenizer, decode_keeps_or_skips_special_tokens)
{
    ptm_tokenizer *t = NULL;
    char *s = NULL;
    cr_assert_eq(ptm_tokenizer_load(TOK("minilm"), &t), PTM_OK);
    int32_t hello = ptm_tokenizer_token_to_id(t, "hello");
    int32_t ids[] = {101, hello, 1012, 102, 99999999};
    cr_assert_eq(ptm_tokenizer_decode(t, ids, 5, 0, &s), PTM_OK);
    cr_assert_str_eq(s, "[CLS] hello. [SEP]");
    ptm_free(s);
    cr_assert_eq(ptm_tokenizer_decode(t, ids, 5, 1, &s), PTM_OK);
    cr_assert_str_eq(s, "hello.");
    ptm_free(s);
    cr_assert_eq(ptm_tokenizer_decode(t, NULL, 0, 1, &s), PTM_OK);
    cr_assert_str_eq(s, "");
    ptm_free(s);
    ptm_tokenizer_free(t);
}

/* ---- errors ---- */

static void expect_load_error(const char *path, ptm_status want, const char *needle)
{
    ptm_tokenizer *t = (ptm_tokenizer *)1; /* the call must overwrite this */
    ptm_status st = ptm_tokenizer_load(path, &t);
    cr_assert_eq(st, want, "%s: got %s (%s)", path, ptm_status_name(st), ptm_last_error());
    cr_assert_null(t);
    cr_assert_not_null(strstr(ptm_last_error(), needle), "message [%s] lacks [%s]",
                       ptm_last_error(), needle);
}

Test(tokenizer, rejects_missing_file)
{
    expect_load_error(TOK("bad/no_such_tokenizer.json"), PTM_E_NOT_FOUND, "no_such_tokenizer.json");
}

Test(tokenizer, rejects_malformed_json)
{
    expect_load_error(TOK("bad/malformed.json"), PTM_E_FORMAT, "malformed.json: invalid JSON");
}

Test(tokenizer, rejects_vocab_of_wrong_type_naming_file_and_path)
{
    expect_load_error(TOK("bad/vocab_wrong_type.json"), PTM_E_FORMAT,
                      "vocab_wrong_type.json: model.vocab[\"foo\"]: expected integer, got string");
}

Test(tokenizer, rejects_unknown_model_type)
{
    expect_load_error(TOK("bad/unknown_model.json"), PTM_E_UNSUPPORTED,
                      "unknown_model.json: model: unsupported model type \"Morse\"");
}

Test(tokenizer, rejects_unknown_normalizer_naming_its_path)
{
    const char *js = "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": "
                     "\"NFC\"}, {\"type\": \"Nmt\"}]}, \"model\": {\"type\": "
                     "\"WordPiece\", \"vocab\": {\"a\": 0}}}";
    ptm_tokenizer *t = (ptm_tokenizer *)1;
    cr_assert_eq(ptm_tokenizer_load_from_memory(js, strlen(js), "mem.json", &t), PTM_E_UNSUPPORTED);
    cr_assert_null(t);
    cr_assert_str_eq(ptm_last_error(), "mem.json: normalizer.normalizers[1]: unsupported "
                                       "normalizer type \"Nmt\"");
}

Test(tokenizer, rejects_wrong_member_types)
{
    static const char *cases[][2] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"unk_token\": 3}}",
         "m.json: model.unk_token: expected string, got integer"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": []}}",
         "m.json: model.vocab: expected object, got array"},
        {"{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": \"yes\"}, \"model\": {}}",
         "m.json: normalizer.lowercase: expected boolean, got string"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"added_tokens\": [{\"id\": 1}]}",
         "m.json: added_tokens[0].content: missing required string"},
        {"[1, 2]", "m.json: expected a JSON object at the top, got array"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "used twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ptm_tokenizer *t = (ptm_tokenizer *)1;
        cr_assert_eq(ptm_tokenizer_load_from_memory(cases[i][0], strlen(cases[i][0]), "m.json", &t),
                     PTM_E_FORMAT, "case %zu: %s", i, ptm_last_error());
        cr_assert_null(t);
        cr_assert_not_null(strstr(ptm_last_error(), cases[i][1]), "case %zu: [%s]", i,
                           ptm_last_error());
    }
}

Test(tokenizer, rejects_bad_bpe_unigram_and_regex_components)
{
    static const char *cases[][3] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
         "\"dropout\": 0.1}}",
         "UNSUPPORTED", "m.json: model.dropout: BPE-dropout (0.1) is random"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
         "[\"a b\"]}}",
         "FORMAT", "m.json: model.merges[0]: token \"ab\" is not in the vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "FORMAT",
         "m.json: model.merges[0]: expected \"a b\", got \"a\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[1, 2]]}}", "FORMAT",
         "m.json: model.merges[0]: expected \"a b\" or [\"a\", \"b\"]"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
         "\"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "FORMAT", "m.json: pre_tokenizer.pattern.Regex: invalid regex at character 2"},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Glob\": \"a\"}}, "
         "\"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "FORMAT", "pre_tokenizer.pattern: expected {\"String\": ...} or {\"Regex\": ...}"},
        {"{\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"!!\"}, "
         "\"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "FORMAT", "m.json: normalizer.precompiled_charsmap: invalid base64"},
        {"{\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": "
         "\"/////w==\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "FORMAT", "precompiled_charsmap: trie of 4294967295 bytes exceeds the 0 bytes given"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", \"x\"]]}}", "FORMAT",
         "m.json: model.vocab[0]: expected [\"piece\", score]"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]], \"unk_id\": 3}}",
         "FORMAT", "m.json: model.unk_id: value 3 out of range [0, 0]"},
        {"{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"}, "
         "\"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
         "FORMAT", "pre_tokenizer.prepend_scheme: unknown scheme \"sometimes\""},
        {"{\"decoder\": {\"type\": \"Strip\", \"content\": \"ab\"}, \"model\": {\"type\": "
         "\"BPE\", \"vocab\": {}}}",
         "FORMAT", "m.json: decoder.content: expected one character, got 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ptm_tokenizer *t = (ptm_tokenizer *)1;
        ptm_status want = strcmp(cases[i][1], "FORMAT") == 0 ? PTM_E_FORMAT : PTM_E_UNSUPPORTED;
        cr_assert_eq(ptm_tokenizer_load_from_memory(cases[i][0], strlen(cases[i][0]), "m.json", &t),
                     want, "case %zu: %s", i, ptm_last_error());
        cr_assert_null(t);
        cr_assert_not_null(strstr(ptm_last_error(), cases[i][2]), "case %zu: [%s]", i,
                           ptm_last_error());
    }
}

Test(tokenizer, bpe_without_unk_token_drops_unknown_characters_and_refuses_a_missing_one)
{
    const char *js = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, "
                     "\"ab\": 2}, \"merges\": [[\"a\", \"b\"]]}}";
    ptm_tokenizer *t = NULL;
    struct ptm_encoding *e = NULL;
    cr_assert_eq(ptm_tokenizer_load_from_memory(js, strlen(js), "m.json", &t), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_tokenizer_encode(t, "xabzb", 5, NULL, 0, NULL, &e), PTM_OK);
    cr_assert_eq(e->n, 2);
    cr_assert_eq(e->ids[0], 2);
    cr_assert_eq(e->ids[1], 1);
    ptm_encoding_free(e);
    ptm_tokenizer_free(t);
    js = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": \"<unk>\"}}";
    cr_assert_eq(ptm_tokenizer_load_from_memory(js, strlen(js), "m.json", &t), PTM_OK);
    e = (struct ptm_encoding *)1;
    cr_assert_eq(ptm_tokenizer_encode(t, "ax", 2, NULL, 0, NULL, &e), PTM_E_FORMAT);
    cr_assert_null(e);
    cr_assert_str_eq(ptm_last_error(), "tokenizer: BPE unk_token \"<unk>\" is not in the vocab");
    ptm_tokenizer_free(t);
}

Test(tokenizer, rejects_null_arguments)
{
    ptm_tokenizer *t = (ptm_tokenizer *)1;
    struct ptm_encoding *e = (struct ptm_encoding *)1;
    char *s = (char *)1;
    cr_assert_eq(ptm_tokenizer_load(NULL, &t), PTM_E_INVAL);
    cr_assert_null(t);
    cr_assert_eq(ptm_tokenizer_encode(NULL, "x", 1, NULL, 0, NULL, &e), PTM_E_INVAL);
    cr_assert_null(e);
    cr_assert_eq(ptm_tokenizer_decode(NULL, NULL, 0, 0, &s), PTM_E_INVAL);
    cr_assert_null(s);
    cr_assert_eq(ptm_tokenizer_token_to_id(NULL, "x"), -1);
    cr_assert_eq(ptm_tokenizer_vocab_size(NULL), 0);
    ptm_tokenizer_free(NULL);
    ptm_encoding_free(NULL);
    ptm_batch_encoding_free(NULL);
}

/* ---- threads, allocation failures, throughput ---- */

struct thread_arg {
    const ptm_tokenizer *t;
    const struct corpus *c;
    uint32_t sum;
    int failed;
};

static void *encode_all(void *p)
{
    struct thread_arg *a = p;
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_OFF;
    for (size_t i = 0; i < a->c->n; i++) {
        struct ptm_encoding *e;
        if (ptm_tokenizer_encode(a->t, a->c->line[i], a->c->len[i], NULL, 0, &o, &e) != PTM_OK) {
            a->failed = 1;
            return NULL;
        }
        for (size_t k = 0; k < e->n; k++) {
            a->sum = a->sum * 31u + (uint32_t)e->ids[k];
        }
        ptm_encoding_free(e);
    }
    return NULL;
}

static void concurrent(const char *path)
{
    struct corpus c = corpus_load();
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(path, &t), PTM_OK);
    struct thread_arg one = {t, &c, 0, 0}, args[4];
    encode_all(&one);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){t, &c, 0, 0};
        pthread_create(&th[i], NULL, encode_all, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failed, 0);
        cr_assert_eq(args[i].sum, one.sum, "%s: thread %d saw different ids", path, i);
    }
    ptm_tokenizer_free(t);
    corpus_free(&c);
}

Test(tokenizer, encodes_concurrently_on_one_tokenizer)
{
    concurrent(TOK("minilm"));
    concurrent(TOK("bl_llama3/tokenizer.json")); /* PCRE2 match data is per call */
    concurrent(TOK("uni_t5/tokenizer.json"));
}

static void alloc_sweep(const char *path, const char *text)
{
    for (long k = 1;; k++) {
        ptm__alloc_fail_at(k);
        ptm_tokenizer *t = NULL;
        struct ptm_encoding *e = NULL;
        char *dec = NULL;
        ptm_status st = ptm_tokenizer_load(path, &t);
        if (st == PTM_OK) {
            st = ptm_tokenizer_encode(t, text, strlen(text), "pair", 4, NULL, &e);
        }
        if (st == PTM_OK) {
            st = ptm_tokenizer_decode(t, e->ids, e->n, 0, &dec);
        }
        long used = ptm__alloc_fail_at(0);
        cr_assert(st == PTM_OK || st == PTM_E_NOMEM, "%s k=%ld: %s (%s)", path, k,
                  ptm_status_name(st), ptm_last_error());
        if (st != PTM_OK) {
            cr_assert_null(dec);
        }
        ptm_free(dec);
        ptm_encoding_free(e);
        ptm_tokenizer_free(t);
        if (st == PTM_OK && used < k) {
            break; /* the k-th allocation was never reached: every one has been failed once */
        }
    }
}

Test(tokenizer, allocation_failures_return_nomem_and_leave_nothing)
{
    alloc_sweep(TOK("wp_nfkc/tokenizer.json"), "<mask> New York café 123 ``hi'' [CLS]");
}

Test(tokenizer, bpe_and_unigram_allocation_failures_return_nomem_and_leave_nothing)
{
    const char *text = "<mask> new york café 12345 ``hi'' \xf0\x9f\x98\x80 Zürich \xe2\x80\x8b";
    alloc_sweep(TOK("bl_gpt2/tokenizer.json"), text);
    alloc_sweep(TOK("bl_llama3/tokenizer.json"), text);
    alloc_sweep(TOK("sp_llama2/tokenizer.json"), text);
    alloc_sweep(TOK("uni_t5/tokenizer.json"), text);
    alloc_sweep(TOK("bpe_misc/tokenizer.json"), text);
}

static void throughput(const char *name, const char *path)
{
    struct corpus c = corpus_load();
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(path, &t), PTM_OK, "%s", ptm_last_error());
    struct thread_arg a = {t, &c, 0, 0};
    size_t bytes = 0, tokens = 0;
    for (size_t i = 0; i < c.n; i++) {
        struct ptm_encoding *e;
        bytes += c.len[i];
        struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
        o.padding = PTM_TOK_PAD_OFF;
        cr_assert_eq(ptm_tokenizer_encode(t, c.line[i], c.len[i], NULL, 0, &o, &e), PTM_OK);
        tokens += e->n;
        ptm_encoding_free(e);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int reps = 5;
    for (int r = 0; r < reps; r++) {
        encode_all(&a);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("tokenizer %s: %.0f lines/s, %.0f tokens/s, %.1f MB/s single-threaded (%zu lines x "
           "%d)\n",
           name, (double)(c.n * (size_t)reps) / s, (double)(tokens * (size_t)reps) / s,
           (double)bytes * reps / s / 1e6, c.n, reps);
    cr_assert_eq(a.failed, 0);
    ptm_tokenizer_free(t);
    corpus_free(&c);
}

Test(tokenizer, prints_single_thread_throughput)
{
    throughput("minilm", TOK("minilm"));
    throughput("bl_gpt2", TOK("bl_gpt2/tokenizer.json"));
    throughput("bl_llama3", TOK("bl_llama3/tokenizer.json"));
    throughput("sp_llama2", TOK("sp_llama2/tokenizer.json"));
    throughput("uni_t5", TOK("uni_t5/tokenizer.json"));
}

/* transformers takes the pad token from tokenizer_config.json or special_tokens_map.json when
 * tokenizer.json has no padding section (GPT-2 and LLaMA files have none). */
Test(tokenizer, pads_with_the_pad_token_of_special_tokens_map)
{
    char dir[] = "/tmp/ptm_tok_pad_XXXXXX", cmd[512], path[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cp '%s/tok/bl_gpt2/tokenizer.json' '%s/'", PTM_TEST_FIXTURES, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"pad_token\": {\"content\": \"<|endoftext|>\", \"special\": true}}", f);
    fclose(f);
    ptm_tokenizer *t = NULL;
    cr_assert_eq(ptm_tokenizer_load(dir, &t), PTM_OK, "%s", ptm_last_error());
    int32_t pad = ptm_tokenizer_token_to_id(t, "<|endoftext|>");
    cr_assert_geq(pad, 0);
    const char *texts[] = {"a longer line of text", "short"};
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.padding = PTM_TOK_PAD_LONGEST;
    struct ptm_batch_encoding *b = NULL;
    cr_assert_eq(ptm_tokenizer_encode_batch(t, texts, NULL, 2, &o, &b), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(b->ids[b->seq_len * 2 - 1], pad);
    cr_assert_eq(b->attention_mask[b->seq_len * 2 - 1], 0);
    ptm_batch_encoding_free(b);
    ptm_tokenizer_free(t);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
