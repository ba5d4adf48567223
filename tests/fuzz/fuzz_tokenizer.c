/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizer. The first input byte picks the
 * mode: encode the rest as text (and as a text pair, split at the middle) with the MiniLM
 * tokenizer or the NFKC/template one from tests/fixtures/tok, then decode the ids; or parse
 * the rest as a tokenizer.json from memory and, if it loads, encode and decode a fixed text.
 * Any status is fine; crashes, sanitizer reports and leaks are the findings.
 *
 * Build and run: tests/fuzz/run.sh 60 fuzz_tokenizer. By hand, from the repository root,
 * with the tokenizer's runtime files only:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c11 \
 *     -DPTM_FUZZ_FIXTURES="\"$PWD/tests/fixtures/tok\"" -I sdk/include -I runtime \
 *     tests/fuzz/fuzz_tokenizer.c runtime/tok_*.c runtime/tokenizer.c runtime/alloc.c \
 *     runtime/error.c runtime/log.c $(pkg-config --cflags --libs json-c libutf8proc) \
 *     -o fuzz_tokenizer
 *   ./fuzz_tokenizer -max_len=65536 -max_total_time=60 CORPUS_DIR
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm_tokenizer.h"

#ifndef PTM_FUZZ_FIXTURES
#define PTM_FUZZ_FIXTURES "tests/fixtures/tok"
#endif

static ptm_tokenizer *tokenizers[2];

static void roundtrip(const ptm_tokenizer *t, const char *text, size_t n, const char *pair,
                      size_t pair_n)
{
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    struct ptm_encoding *e = NULL;
    o.padding = PTM_TOK_PAD_OFF;
    if (ptm_tokenizer_encode(t, text, n, pair, pair_n, &o, &e) == PTM_OK) {
        char *s = NULL;
        if (ptm_tokenizer_decode(t, e->ids, e->n, (int32_t)(n & 1), &s) == PTM_OK) {
            ptm_free(s);
        }
        ptm_encoding_free(e);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (ptm_tokenizer_load(PTM_FUZZ_FIXTURES "/minilm/tokenizer.json", &tokenizers[0]) != PTM_OK ||
        ptm_tokenizer_load(PTM_FUZZ_FIXTURES "/wp_nfkc/tokenizer.json", &tokenizers[1]) != PTM_OK) {
        abort(); /* the harness cannot run without its fixtures */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
    case 1: {
        const ptm_tokenizer *t = tokenizers[data[0] % 3];
        roundtrip(t, body, n, NULL, 0);
        roundtrip(t, body, n / 2, body + n / 2, n - n / 2);
        break;
    }
    default: {
        ptm_tokenizer *t = NULL;
        if (ptm_tokenizer_load_from_memory(body, n, "fuzz.json", &t) == PTM_OK) {
            static const char text[] = "Hello, wörld! [MASK] 123 ½ 東京";
            roundtrip(t, text, sizeof text - 1, "pair", 4);
            ptm_tokenizer_free(t);
        }
        break;
    }
    }
    return 0;
}
