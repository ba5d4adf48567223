/*
 * tokenizer.h - what the tokenizer's files share: growable buffers, the per-call scratch, the
 * component vtables (normalizer, pre-tokenizer, model, post-processor, decoder), the vocab
 * hash map, Unicode predicates and the JSON helpers that name file and path in errors.
 *
 * A component kind is a struct whose first member points to its ops table; each
 * implementation embeds that struct first and is built by the kind's *_from_json dispatcher,
 * so a new component (BPE, ByteLevel, Metaspace, ...) is a new file plus one table row, and
 * the pipeline in tokenizer.c does not change. Components are immutable after loading; all
 * per-call state lives in struct ptm__tok_scratch, which is why encode is thread safe.
 */
#ifndef PTM_RUNTIME_TOKENIZER_H
#define PTM_RUNTIME_TOKENIZER_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "ptm/ptm_base.h"

/* Growable arrays. Growth goes through ptm__realloc; failure leaves the array unchanged. */
struct ptm__tok_cps {
    uint32_t *v;
    size_t n, cap;
};
struct ptm__tok_bytes {
    char *v;
    size_t n, cap;
};
/* A word: a run of code points in the scratch arena, or an already-known token id. */
struct ptm__tok_word {
    size_t off, len;
    int32_t id; /* >= 0: an added token, passed through untouched; -1: text */
};
struct ptm__tok_words {
    struct ptm__tok_word *v;
    size_t n, cap;
};
/* One sequence's tokens before padding; attention is implied (all 1). */
struct ptm__tok_enc {
    int32_t *ids, *type_ids, *special;
    size_t n, cap;
};

ptm_status ptm__tok_cps_reserve(struct ptm__tok_cps *b, size_t extra);
ptm_status ptm__tok_cps_push(struct ptm__tok_cps *b, uint32_t cp);
ptm_status ptm__tok_bytes_reserve(struct ptm__tok_bytes *b, size_t extra);
ptm_status ptm__tok_bytes_append(struct ptm__tok_bytes *b, const char *s, size_t n);
ptm_status ptm__tok_words_push(struct ptm__tok_words *w, size_t off, size_t len, int32_t id);
ptm_status ptm__tok_enc_push(struct ptm__tok_enc *e, int32_t id, int32_t type_id, int32_t special);

/* Per-call working memory, reused across the sequences of one call. */
struct ptm__tok_scratch {
    struct ptm__tok_cps text;     /* the input, decoded */
    struct ptm__tok_cps norm;     /* the piece being normalized */
    struct ptm__tok_cps tmp;      /* normalizers' second buffer (swapped with norm) */
    struct ptm__tok_cps arena;    /* code points of every word */
    struct ptm__tok_words words;  /* the words of the sequence being encoded */
    struct ptm__tok_words words2; /* pre-tokenizers' second list (swapped with words) */
    struct ptm__tok_bytes bytes;  /* UTF-8 scratch (model lookups, utf8proc) */
    size_t *seg;                  /* splitter segments: start, end, is_match triples */
    size_t seg_cap;
    void *model; /* the model's working memory (BPE symbols, Viterbi lattice) */
    size_t model_bytes;
};
/* s->model grown to at least bytes (contents not kept). */
ptm_status ptm__tok_scratch_model(struct ptm__tok_scratch *s, size_t bytes);

void ptm__tok_scratch_free(struct ptm__tok_scratch *s);

/* ---- Unicode (tok_unicode.c) ---- */

/* Decode n bytes of UTF-8 into out (appending), replacing each maximal invalid subsequence
 * with U+FFFD exactly as Python's bytes.decode("utf-8", errors="replace") does. */
ptm_status ptm__tok_utf8_decode(const char *s, size_t n, struct ptm__tok_cps *out);
/* Append the UTF-8 form of cps to out. */
ptm_status ptm__tok_utf8_encode(const uint32_t *cps, size_t n, struct ptm__tok_bytes *out);
/* Bytes of cp in UTF-8 (1-4). */
size_t ptm__tok_utf8_len(uint32_t cp);

int ptm__tok_is_whitespace(uint32_t cp); /* Rust char::is_whitespace (White_Space) */
int ptm__tok_is_other(uint32_t cp);      /* unicode_categories is_other: Cc Cf Co Cs */
int ptm__tok_is_mn(uint32_t cp);         /* general category Mn */
int ptm__tok_is_mark(uint32_t cp);       /* general category M (Mn Mc Me) */
int ptm__tok_is_punct(uint32_t cp);      /* ASCII punctuation or P* (BERT's notion) */
int ptm__tok_is_numeric(uint32_t cp);    /* Rust char::is_numeric: Nd Nl No */
int ptm__tok_is_word(uint32_t cp);       /* regex \w: Alphabetic, M, Nd, Pc, Join_Control */
int ptm__tok_is_chinese(uint32_t cp);    /* BertNormalizer's CJK ideograph ranges */
/* Rust char::to_lowercase: writes 1 or 2 code points to out, returns how many. */
size_t ptm__tok_to_lower(uint32_t cp, uint32_t out[2]);

/* ---- JSON helpers (tok_json.c) ---- */

/* Where a component is being read from, for messages like
 * "tokenizer.json: model.vocab["foo"]: expected integer, got string". */
struct ptm__tok_jctx {
    const char *file;
};

const char *ptm__tok_json_type_name(json_object *j);
/* Member key of obj (at path) with the given type; absent or null → *out NULL and PTM_OK
 * unless required. Wrong type → PTM_E_FORMAT naming file, path.key and both types. */
ptm_status ptm__tok_jmember(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                            const char *key, json_type type, int required, json_object **out);
ptm_status ptm__tok_jbool(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                          const char *key, int dflt, int *out);
ptm_status ptm__tok_jint(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                         const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out);
/* A required string member, borrowed from obj, with its length. */
ptm_status ptm__tok_jstr(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                         const char *key, const char **out, size_t *len);
/* The "type" member of a component object: required string. */
ptm_status ptm__tok_jtype(const struct ptm__tok_jctx *c, json_object *obj, const char *path,
                          const char **out);
ptm_status ptm__tok_junsupported(const struct ptm__tok_jctx *c, const char *path, const char *what,
                                 const char *type);

/* ---- Vocab: token string <-> id (tok_vocab.c) ---- */

/* Ids index arrays, so a file may not name ids past this (real vocabs stay under 300k). */
#define PTM__TOK_MAX_ID (1 << 22)

struct ptm__tok_vocab {
    char **tokens;    /* id -> token (NUL terminated, owned); NULL holes allowed */
    size_t *lens;     /* id -> token bytes */
    size_t n_ids;     /* max id + 1 */
    uint32_t *slots;  /* open addressing: id + 1, 0 = empty */
    size_t slot_mask; /* n_slots - 1 */
};

/* init sizes the map for n_tokens tokens with ids below n_ids; add copies tok and returns
 * PTM_E_EXISTS (no message: the caller names the file) for a duplicate id or token. */
ptm_status ptm__tok_vocab_init(struct ptm__tok_vocab *v, size_t n_ids, size_t n_tokens);
/* path.vocab: {"token": id, ...}, ids distinct (WordPiece and BPE). */
ptm_status ptm__tok_vocab_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_vocab *v);
ptm_status ptm__tok_vocab_add(struct ptm__tok_vocab *v, const char *tok, size_t len, int32_t id);
int32_t ptm__tok_vocab_find(const struct ptm__tok_vocab *v, const char *tok, size_t len);
void ptm__tok_vocab_free(struct ptm__tok_vocab *v);

/* ---- Normalizers (tok_normalize.c) ---- */

struct ptm__tok_normalizer;
struct ptm__tok_normalizer_ops {
    /* Normalize io in place (may swap io with s->tmp's storage). */
    ptm_status (*normalize)(const struct ptm__tok_normalizer *n, struct ptm__tok_scratch *s,
                            struct ptm__tok_cps *io);
    void (*destroy)(struct ptm__tok_normalizer *n);
};
struct ptm__tok_normalizer {
    const struct ptm__tok_normalizer_ops *ops;
};
/* j may be NULL or json null: *out NULL (no normalizer). */
ptm_status ptm__tok_normalizer_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                         const char *path, struct ptm__tok_normalizer **out);
void ptm__tok_normalizer_free(struct ptm__tok_normalizer *n);
/* Precompiled (tok_precompiled.c) and Replace with a Regex pattern (tok_regex.c). */
ptm_status ptm__tok_precompiled_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                          const char *path, struct ptm__tok_normalizer **out);
ptm_status ptm__tok_replace_regex_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                            const char *path, struct ptm__tok_normalizer **out);

/* ---- Regex patterns (tok_regex.c): PCRE2 on code points, compiled and JIT-ed at load ---- */

struct ptm__tok_regex;
/* pattern: {"String": "..."} (a literal) or {"Regex": "..."} (Oniguruma syntax, which PCRE2
 * reads the same for the patterns tokenizer.json files use). */
ptm_status ptm__tok_regex_from_json(const struct ptm__tok_jctx *c, json_object *pattern,
                                    const char *path, struct ptm__tok_regex **out);
/* A pattern given in C (built-in ones such as ByteLevel's); label names it in errors. */
ptm_status ptm__tok_regex_new(const char *pattern, int literal, const char *label,
                              struct ptm__tok_regex **out);
void ptm__tok_regex_free(struct ptm__tok_regex *re);
/* HF Pattern::find_matches of cps[0..n) into s->seg as (start, end, is_match) triples covering
 * the text, is_match flipped when invert; *n_seg gets their count. Thread safe. */
ptm_status ptm__tok_regex_segments(const struct ptm__tok_regex *re, struct ptm__tok_scratch *s,
                                   const uint32_t *cps, size_t n, int invert, size_t *n_seg);
/* Replace every match in io with rep[0..n_rep) (HF NormalizedString::replace). */
ptm_status ptm__tok_regex_replace(const struct ptm__tok_regex *re, struct ptm__tok_scratch *s,
                                  struct ptm__tok_cps *io, const uint32_t *rep, size_t n_rep);

/* ---- Pre-tokenizers (tok_pretok.c) ---- */

struct ptm__tok_pretok;
struct ptm__tok_pretok_ops {
    /* Split every text word of s->words (id < 0) into words; id words pass through. */
    ptm_status (*apply)(const struct ptm__tok_pretok *p, struct ptm__tok_scratch *s);
    void (*destroy)(struct ptm__tok_pretok *p);
};
struct ptm__tok_pretok {
    const struct ptm__tok_pretok_ops *ops;
};
ptm_status ptm__tok_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                     const char *path, struct ptm__tok_pretok **out);
void ptm__tok_pretok_free(struct ptm__tok_pretok *p);
/* ByteLevel (tok_bytelevel.c), Metaspace (tok_metaspace.c), Split (tok_regex.c). */
ptm_status ptm__tok_bytelevel_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                               const char *path, struct ptm__tok_pretok **out);
ptm_status ptm__tok_metaspace_pretok_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                               const char *path, struct ptm__tok_pretok **out);
ptm_status ptm__tok_split_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_pretok **out);

/* Split delimiter behaviours, in HF's order (SplitDelimiterBehavior). */
enum {
    PTM__TOK_REMOVED,
    PTM__TOK_ISOLATED,
    PTM__TOK_MERGED_PREV,
    PTM__TOK_MERGED_NEXT,
    PTM__TOK_CONTIGUOUS
};
/* path.behavior (absent: dflt) as one of the values above. */
ptm_status ptm__tok_jbehavior(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                              int dflt, int *out);
/* Append segment [a, b) with is_match m to s->seg (*n segments so far). */
ptm_status ptm__tok_seg_push(struct ptm__tok_scratch *s, size_t *n, size_t a, size_t b, size_t m);
/* The n segments of s->seg (offsets in word w) become words of s->words2 as HF's
 * NormalizedString::split does with behavior; empty pieces are dropped. */
ptm_status ptm__tok_split_emit(struct ptm__tok_scratch *s, const struct ptm__tok_word *w, size_t n,
                               int behavior);
/* Run fn on every text word of s->words (its index i), passing added-token words through into
 * s->words2, then make s->words2 the new s->words. */
typedef ptm_status (*ptm__tok_word_fn)(const void *ctx, struct ptm__tok_scratch *s,
                                       const struct ptm__tok_word *w, size_t i);
ptm_status ptm__tok_pretok_map(const void *ctx, struct ptm__tok_scratch *s, ptm__tok_word_fn fn);

/* ---- Models (tok_wordpiece.c, tok_bpe.c, tok_unigram.c) ---- */

struct ptm__tok_model;
struct ptm__tok_model_ops {
    /* Append the ids of one word (cps[0..n)) to out. */
    ptm_status (*tokenize)(const struct ptm__tok_model *m, struct ptm__tok_scratch *s,
                           const uint32_t *cps, size_t n, struct ptm__tok_enc *out);
    const struct ptm__tok_vocab *(*vocab)(const struct ptm__tok_model *m);
    void (*destroy)(struct ptm__tok_model *m);
};
struct ptm__tok_model {
    const struct ptm__tok_model_ops *ops;
};
ptm_status ptm__tok_model_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                    struct ptm__tok_model **out);
ptm_status ptm__tok_wordpiece_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                        const char *path, struct ptm__tok_model **out);
ptm_status ptm__tok_bpe_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                  struct ptm__tok_model **out);
ptm_status ptm__tok_unigram_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                      const char *path, struct ptm__tok_model **out);
void ptm__tok_model_free(struct ptm__tok_model *m);

/* ---- Post-processors (tok_post.c) ---- */

struct ptm__tok_post;
struct ptm__tok_post_ops {
    /* Tokens the processor adds around one sequence (is_pair 0) or a pair (1). */
    size_t (*n_added)(const struct ptm__tok_post *p, int is_pair);
    /* Merge a (and b, may be NULL) into out, adding special tokens if add_special. */
    ptm_status (*process)(const struct ptm__tok_post *p, const struct ptm__tok_enc *a,
                          const struct ptm__tok_enc *b, int add_special, struct ptm__tok_enc *out);
    void (*destroy)(struct ptm__tok_post *p);
};
struct ptm__tok_post {
    const struct ptm__tok_post_ops *ops;
};
ptm_status ptm__tok_post_from_json(const struct ptm__tok_jctx *c, json_object *j, const char *path,
                                   struct ptm__tok_post **out);
void ptm__tok_post_free(struct ptm__tok_post *p);
/* What HF does with no post-processor: concatenate, type ids kept. */
ptm_status ptm__tok_post_default(const struct ptm__tok_enc *a, const struct ptm__tok_enc *b,
                                 struct ptm__tok_enc *out);

/* ---- Decoders (tok_decode.c) ---- */

/* A list of strings back to back in one buffer: HF decode_chain's Vec<String>. */
struct ptm__tok_strs {
    struct ptm__tok_bytes buf;
    size_t *end; /* string i is buf.v[i > 0 ? end[i - 1] : 0 .. end[i]) */
    size_t n, cap;
};
/* Append bytes to the open (last, unfinished) string; close ends it as string n. */
ptm_status ptm__tok_strs_append(struct ptm__tok_strs *l, const char *s, size_t n);
ptm_status ptm__tok_strs_close(struct ptm__tok_strs *l);
ptm_status ptm__tok_strs_push(struct ptm__tok_strs *l, const char *s, size_t n);
void ptm__tok_strs_clear(struct ptm__tok_strs *l);
void ptm__tok_strs_free(struct ptm__tok_strs *l);
#define PTM__TOK_STR(l, i)     ((l)->buf.v + ((i) > 0 ? (l)->end[(i)-1] : 0))
#define PTM__TOK_STR_LEN(l, i) ((l)->end[i] - ((i) > 0 ? (l)->end[(i)-1] : 0))

struct ptm__tok_decoder;
struct ptm__tok_decoder_ops {
    /* Append the text of tokens[0..n) (lens[i] bytes each; a token may hold NUL) to out. */
    ptm_status (*decode)(const struct ptm__tok_decoder *d, const char *const *tokens,
                         const size_t *lens, size_t n, struct ptm__tok_bytes *out);
    void (*destroy)(struct ptm__tok_decoder *d);
    /* HF decode_chain: the token list in rewritten into out (empty on entry). */
    ptm_status (*chain)(const struct ptm__tok_decoder *d, const struct ptm__tok_strs *in,
                        struct ptm__tok_strs *out);
};
struct ptm__tok_decoder {
    const struct ptm__tok_decoder_ops *ops;
};
ptm_status ptm__tok_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                      const char *path, struct ptm__tok_decoder **out);
void ptm__tok_decoder_free(struct ptm__tok_decoder *d);
/* A decode op for decoders that have a chain: chain, then concatenate (HF decode). */
ptm_status ptm__tok_decode_by_chain(const struct ptm__tok_decoder *d, const char *const *tokens,
                                    const size_t *lens, size_t n, struct ptm__tok_bytes *out);
ptm_status ptm__tok_bytelevel_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                                const char *path, struct ptm__tok_decoder **out);
ptm_status ptm__tok_metaspace_decoder_from_json(const struct ptm__tok_jctx *c, json_object *j,
                                                const char *path, struct ptm__tok_decoder **out);

/* ---- Byte-level alphabet (tok_bytelevel.c): GPT-2's bytes_to_unicode ---- */

uint32_t ptm__tok_byte_char(unsigned char b);
int ptm__tok_char_byte(uint32_t cp); /* the byte cp stands for, or -1 */

/* ---- Added tokens (tok_added.c) ---- */

struct ptm__tok_added_token {
    char *content;      /* as in the file */
    char *text;         /* what id_to_token and decode give: the pattern in UTF-8 */
    uint32_t *pattern;  /* what is matched: content, normalized when is_normalized */
    size_t pattern_len; /* code points */
    int32_t id;
    int is_special, lstrip, rstrip, single_word, is_normalized;
};
struct ptm__tok_added {
    struct ptm__tok_added_token *v;
    size_t n;
    struct ptm__tok_vocab vocab; /* content -> id (token_to_id) */
    char **id_text;              /* id -> text (borrowed from v[].text); vocab.n_ids entries */
};
ptm_status ptm__tok_added_from_json(const struct ptm__tok_jctx *c, json_object *arr,
                                    const struct ptm__tok_normalizer *norm,
                                    struct ptm__tok_added *out);
void ptm__tok_added_free(struct ptm__tok_added *a);
/* Whether content names a special added token. */
int ptm__tok_added_is_special(const struct ptm__tok_added *a, const char *tok, size_t len);
/*
 * Split cps[0..n) on the added tokens with is_normalized == normalized (HF AddedVocabulary's
 * find_matches, leftmost-longest). Calls emit(ctx, start, end, id) for each piece in order;
 * id >= 0 for a matched token (its span includes stripped whitespace), -1 for plain text.
 */
typedef ptm_status (*ptm__tok_piece_fn)(void *ctx, size_t start, size_t end, int32_t id);
ptm_status ptm__tok_added_split(const struct ptm__tok_added *a, int normalized, const uint32_t *cps,
                                size_t n, ptm__tok_piece_fn emit, void *ctx);

/* ---- The tokenizer (tokenizer.c loads it, tok_encode.c runs it) ---- */

enum { PTM__TOK_TRUNC_NONE, PTM__TOK_TRUNC_LONGEST, PTM__TOK_TRUNC_FIRST, PTM__TOK_TRUNC_SECOND };

struct ptm_tokenizer {
    struct ptm__tok_normalizer *norm; /* each may be NULL except model */
    struct ptm__tok_pretok *pre;
    struct ptm__tok_model *model;
    struct ptm__tok_post *post;
    struct ptm__tok_decoder *dec;
    struct ptm__tok_added added;
    /* "truncation" of tokenizer.json (has_trunc 0: null) */
    int has_trunc, trunc_strategy, trunc_left;
    size_t trunc_max;
    /* "padding" of tokenizer.json (has_pad 0: null; pad_len 0: BatchLongest) */
    int has_pad, pad_left;
    size_t pad_len, pad_multiple;
    int32_t pad_id, pad_type_id;
    int64_t model_max_length;
};

#endif
