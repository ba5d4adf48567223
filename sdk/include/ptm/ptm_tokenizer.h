/*
 * ptm_tokenizer.h - Hugging Face tokenizers from tokenizer.json: text to model inputs (ids,
 * type ids, attention and special-token masks) and ids back to text, identical to the
 * `tokenizers` library for the components it supports.
 *
 * Supported now: models WordPiece, BPE (merges as "a b" or ["a", "b"], byte_fallback,
 * ignore_merges, continuing_subword_prefix, end_of_word_suffix, fuse_unk; dropout refused)
 * and Unigram (Viterbi, byte_fallback); normalizers BertNormalizer, Lowercase, NFD, NFC, NFKD,
 * NFKC, StripAccents, Strip, Replace (string or regex), Prepend, Precompiled (SentencePiece
 * charsmap), Sequence; pre-tokenizers BertPreTokenizer, ByteLevel, Metaspace, Split (string
 * or regex, every behaviour, invert), Whitespace, WhitespaceSplit, Punctuation, Digits,
 * Sequence; post-processors TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel,
 * Sequence; decoders WordPiece, ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace,
 * Sequence; added tokens with lstrip/rstrip/single_word/normalized/special; truncation and
 * padding. Regexes are PCRE2 (UTF, JIT) compiled once at load. Any other component type
 * fails to load with PTM_E_UNSUPPORTED naming the type and its JSON path. Offsets are not
 * produced yet. A vocab token holding U+0000 anywhere but alone is misread (json-c cuts
 * object keys at NUL); no real vocab has one.
 *
 * Text is bytes: invalid UTF-8 is decoded the way Python's
 * bytes.decode("utf-8", errors="replace") does (each maximal invalid subsequence becomes one
 * U+FFFD), so a C caller gets what HF Python gives for the same bytes decoded that way.
 */
#ifndef PTM_TOKENIZER_H
#define PTM_TOKENIZER_H

#include "ptm_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_tokenizer ptm_tokenizer;

/* Values for the int32_t fields of struct ptm_encode_opts. */
#define PTM_TOK_FROM_FILE         (-1) /* use what tokenizer.json says */
#define PTM_TOK_TRUNC_OFF         0
#define PTM_TOK_TRUNC_LONGEST     1 /* longest_first */
#define PTM_TOK_TRUNC_ONLY_FIRST  2
#define PTM_TOK_TRUNC_ONLY_SECOND 3
#define PTM_TOK_PAD_OFF           0
#define PTM_TOK_PAD_LONGEST       1 /* to the longest sequence of the call */
#define PTM_TOK_PAD_MAX_LENGTH    2 /* to max_length */
#define PTM_TOK_SIDE_RIGHT        0
#define PTM_TOK_SIDE_LEFT         1

/*
 * Per-call options. Zero-filling a struct is NOT the default: use PTM_ENCODE_OPTS_INIT, which
 * says "as the file says" everywhere and adds special tokens. Passing NULL means the same.
 * struct_size lets fields be appended later; set it to sizeof(struct ptm_encode_opts).
 */
struct ptm_encode_opts {
    uint32_t struct_size;
    int32_t add_special_tokens; /* 1: apply the post-processor's special tokens; 0: don't */
    int32_t truncation;         /* PTM_TOK_FROM_FILE, PTM_TOK_TRUNC_* */
    int32_t max_length;         /* > 0: truncation/padding length; 0: the file's */
    int32_t truncation_side;    /* PTM_TOK_FROM_FILE, PTM_TOK_SIDE_* */
    int32_t padding;            /* PTM_TOK_FROM_FILE, PTM_TOK_PAD_* */
    int32_t pad_to_multiple_of; /* PTM_TOK_FROM_FILE, 0 none, > 0 round the padded length up */
    int32_t padding_side;       /* PTM_TOK_FROM_FILE, PTM_TOK_SIDE_* */
    int32_t pad_id;             /* PTM_TOK_FROM_FILE (the file's, else 0) or an id */
    int32_t pad_type_id;        /* PTM_TOK_FROM_FILE (the file's, else 0) or a type id */
};

#define PTM_ENCODE_OPTS_INIT                                                                       \
    {                                                                                              \
        sizeof(struct ptm_encode_opts), 1, -1, 0, -1, -1, -1, -1, -1, -1                           \
    }

/*
 * One encoded sequence (or pair), after truncation, special tokens and padding. All arrays
 * have n elements and live in the same allocation as the struct.
 */
struct ptm_encoding {
    size_t n;
    int32_t *ids;
    int32_t *type_ids;
    int32_t *attention_mask;      /* 1 for tokens, 0 for padding */
    int32_t *special_tokens_mask; /* 1 for added special tokens and padding */
};

/*
 * A batch padded to a rectangle: n_seq rows of seq_len, row-major, ready for a model. Each
 * array holds n_seq * seq_len elements and lives in the struct's allocation.
 */
struct ptm_batch_encoding {
    size_t n_seq, seq_len;
    int32_t *ids;
    int32_t *type_ids;
    int32_t *attention_mask;
    int32_t *special_tokens_mask;
};

/*
 * ptm_tokenizer_load - load a tokenizer from a tokenizer.json file, or from a directory
 * holding one (its tokenizer_config.json is then read for model_max_length, if present).
 *
 * path: borrowed for the call.
 * out:  on PTM_OK a new tokenizer owned by the caller (free with ptm_tokenizer_free); else NULL.
 * Returns PTM_E_INVAL (NULL argument), PTM_E_IO / PTM_E_NOT_FOUND (unreadable or missing
 * file), PTM_E_FORMAT (bad JSON or structure; ptm_last_error() names the file and the JSON
 * path, e.g. "tokenizer.json: model.vocab["foo"]: expected integer, got string"),
 * PTM_E_UNSUPPORTED (a component type not implemented; the message names type and path),
 * PTM_E_NOMEM. Safe to call from several threads at once.
 */
PTM_API ptm_status ptm_tokenizer_load(const char *path, ptm_tokenizer **out);

/*
 * ptm_tokenizer_from_pretrained - the tokenizer of a model found by name, resolved as
 * ptm_model_load resolves it (local directory, built-in name, Hugging Face cache, Hub).
 * local_files_only: never touch the network. Errors as ptm_model_load's resolution plus
 * ptm_tokenizer_load's; out is NULL on failure.
 */
PTM_API ptm_status ptm_tokenizer_from_pretrained(const char *name, int32_t local_files_only,
                                                 ptm_tokenizer **out);

/*
 * ptm_tokenizer_load_from_memory - the same from tokenizer.json bytes in memory.
 *
 * json, n: the file's bytes, borrowed for the call. label: the name used in messages (may be
 * NULL: "tokenizer.json"). Returns as ptm_tokenizer_load.
 */
PTM_API ptm_status ptm_tokenizer_load_from_memory(const char *json, size_t n, const char *label,
                                                  ptm_tokenizer **out);

/* ptm_tokenizer_free - release a tokenizer. NULL is fine. No call may be using it. */
PTM_API void ptm_tokenizer_free(ptm_tokenizer *t);

/*
 * ptm_tokenizer_encode - encode one text, or a pair (text, pair), into one sequence.
 *
 * text, len:      the bytes (need not be NUL terminated; embedded NULs are characters).
 * pair, pair_len: the second sequence, or NULL for none.
 * o:              options, may be NULL (as the file says); read during the call only.
 * out:            on PTM_OK a new encoding (free with ptm_encoding_free); else NULL.
 * Padding here pads this one sequence: "longest" means to its own length (then rounded up to
 * pad_to_multiple_of), "max_length" to max_length.
 * Returns PTM_E_INVAL (NULL tokenizer/text/out, a truncation strategy that needs a pair,
 * max_length needed but unknown, or truncation that cannot fit the special tokens),
 * PTM_E_FORMAT (the WordPiece unk_token is not in the vocab), PTM_E_NOMEM.
 * Thread safety: many threads may encode with one tokenizer at once.
 */
PTM_API ptm_status ptm_tokenizer_encode(const ptm_tokenizer *t, const char *text, size_t len,
                                        const char *pair, size_t pair_len,
                                        const struct ptm_encode_opts *o, struct ptm_encoding **out);

/* ptm_encoding_free - release an encoding. NULL is fine. */
PTM_API void ptm_encoding_free(struct ptm_encoding *e);

/*
 * ptm_tokenizer_encode_batch - encode n NUL-terminated texts (and optional pairs) into a
 * rectangle. The rows are always padded to one length: with padding off or "longest" that is
 * the longest row (then rounded up to pad_to_multiple_of), with "max_length" max_length.
 *
 * texts: n strings, borrowed. pairs: NULL, or n strings (second sequences), borrowed.
 * out:   on PTM_OK a new batch (free with ptm_batch_encoding_free); else NULL.
 * Returns as ptm_tokenizer_encode; ptm_last_error() names the failing row. Thread safe as
 * ptm_tokenizer_encode.
 */
PTM_API ptm_status ptm_tokenizer_encode_batch(const ptm_tokenizer *t, const char *const *texts,
                                              const char *const *pairs, size_t n,
                                              const struct ptm_encode_opts *o,
                                              struct ptm_batch_encoding **out);

/* ptm_batch_encoding_free - release a batch. NULL is fine. */
PTM_API void ptm_batch_encoding_free(struct ptm_batch_encoding *b);

/*
 * ptm_tokenizer_decode - ids back to text, as HF Tokenizer.decode: ids with no token are
 * dropped, special added tokens are dropped when skip_special_tokens is nonzero, and the
 * file's decoder joins the rest (tokens joined by spaces when it has none).
 *
 * out: on PTM_OK a NUL-terminated string, free with ptm_free(); else NULL.
 * Returns PTM_E_INVAL (NULL tokenizer/out, or ids NULL with n > 0), PTM_E_NOMEM.
 * Thread safe as ptm_tokenizer_encode.
 */
PTM_API ptm_status ptm_tokenizer_decode(const ptm_tokenizer *t, const int32_t *ids, size_t n,
                                        int32_t skip_special_tokens, char **out);

/* ptm_tokenizer_token_to_id - the id of a token (added tokens first, then the model's
 * vocab), or -1 if absent or an argument is NULL. Thread safe. */
PTM_API int32_t ptm_tokenizer_token_to_id(const ptm_tokenizer *t, const char *token);

/* ptm_tokenizer_id_to_token - the token of an id (added tokens first), borrowed from the
 * tokenizer and valid until ptm_tokenizer_free; NULL if no token has that id. Thread safe. */
PTM_API const char *ptm_tokenizer_id_to_token(const ptm_tokenizer *t, int32_t id);

/* ptm_tokenizer_vocab_size - one more than the largest id of the model vocab and the added
 * tokens (HF get_vocab_size(with_added_tokens=True) for dense vocabs); 0 for NULL. */
PTM_API size_t ptm_tokenizer_vocab_size(const ptm_tokenizer *t);

/* ptm_tokenizer_model_max_length - tokenizer_config.json's model_max_length when the
 * tokenizer was loaded from a directory holding it, else 0. */
PTM_API int64_t ptm_tokenizer_model_max_length(const ptm_tokenizer *t);

#ifdef __cplusplus
}
#endif
#endif /* PTM_TOKENIZER_H */
