/*
 * cmd_generate.c - `ptm generate`: text generation with a causal LM (or an encoder-decoder
 * one). Prompts are text (encoded with the model's tokenizer.json) or id lists; several
 * prompts form one left-padded batch. One prompt streams its continuation to stdout as it is
 * decoded; a batch, beam search and several return sequences print each row when done. Without a
 * usable tokenizer ids are printed. Prefill and decode speed go to stderr.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define MAX_PROMPTS 64

struct prompts {
    const char *text[MAX_PROMPTS];
    int is_ids[MAX_PROMPTS];
    int n;
};

/* What the stream callback needs. */
struct streamer {
    const ptm_tokenizer *tok; /* NULL: print ids */
    int64_t batch;
    int32_t *gen; /* row 0's generated ids so far */
    size_t n_gen;
    size_t printed; /* bytes of row 0's decoded text already printed */
    int64_t steps;
    struct timespec t_first;
    const char *stop; /* --stop: end once row 0's text contains it (HF stop_strings) */
};

static double seconds(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int32_t on_step(const int64_t *tokens, const int32_t *running, int64_t n, void *user)
{
    struct streamer *s = user;
    if (s->steps++ == 0) {
        clock_gettime(CLOCK_MONOTONIC, &s->t_first);
    }
    if (n != 1 || !running[0]) {
        return 0; /* a batch prints when done */
    }
    if (s->tok == NULL) {
        printf("%s%lld", s->n_gen++ ? " " : "", (long long)tokens[0]);
        fflush(stdout);
        return 0;
    }
    s->gen[s->n_gen++] = (int32_t)tokens[0];
    char *text = NULL;
    /* Decode the whole continuation and print what is new: byte-level BPE pieces only become
     * characters together. */
    int32_t stop = 0;
    if (ptm_tokenizer_decode(s->tok, s->gen, s->n_gen, 1, &text) == PTM_OK) {
        size_t len = strlen(text);
        if (len > s->printed) {
            fputs(text + s->printed, stdout);
            fflush(stdout);
            s->printed = len;
        }
        stop = s->stop != NULL && strstr(text, s->stop) != NULL;
    }
    ptm_free(text);
    return stop;
}

/* "1,2,3" -> ids; returns the count or -1. */
static int64_t parse_ids(const char *s, int64_t *out, int64_t cap)
{
    int64_t n = 0;
    const char *p = s;
    while (*p != '\0' && n < cap) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0 || (*end != ',' && *end != '\0')) {
            return -1;
        }
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    return *p == '\0' && n > 0 ? n : -1;
}

/* Encode every prompt into one left-padded [n, seq] batch. */
static ptm_status build_batch(const struct prompts *p, const ptm_tokenizer *tok, int64_t pad,
                              int64_t **ids, int64_t **mask, int64_t *seq)
{
    enum { CAP = 8192 };
    int64_t *rows = malloc((size_t)p->n * CAP * sizeof *rows), len[MAX_PROMPTS];
    ptm_status st = rows ? PTM_OK : PTM_E_NOMEM;
    *seq = 0;
    for (int i = 0; st == PTM_OK && i < p->n; i++) {
        if (p->is_ids[i]) {
            len[i] = parse_ids(p->text[i], rows + (size_t)i * CAP, CAP);
            st = len[i] > 0 ? PTM_OK
                            : ptm_error_set(PTM_E_INVAL,
                                            "--input-ids \"%s\": not a list like "
                                            "1,2,3",
                                            p->text[i]);
        } else if (tok == NULL) {
            st = ptm_error_set(PTM_E_UNSUPPORTED, "--prompt needs the model's tokenizer, which "
                                                  "could not be loaded; use --input-ids");
        } else {
            /* Unpadded: the batch is left padded here, with the mask the model needs. */
            struct ptm_encode_opts eo = PTM_ENCODE_OPTS_INIT;
            struct ptm_encoding *e = NULL;
            eo.padding = PTM_TOK_PAD_OFF;
            st = ptm_tokenizer_encode(tok, p->text[i], strlen(p->text[i]), NULL, 0, &eo, &e);
            len[i] = st == PTM_OK ? (int64_t)(e->n < CAP ? e->n : CAP) : 0;
            for (int64_t j = 0; j < len[i]; j++) {
                rows[(size_t)i * CAP + j] = e->ids[j];
            }
            ptm_encoding_free(e);
        }
        *seq = st == PTM_OK && len[i] > *seq ? len[i] : *seq;
    }
    *ids = st == PTM_OK ? malloc((size_t)(p->n * *seq) * sizeof **ids) : NULL;
    *mask = st == PTM_OK ? malloc((size_t)(p->n * *seq) * sizeof **mask) : NULL;
    if (st == PTM_OK && (*ids == NULL || *mask == NULL)) {
        st = PTM_E_NOMEM;
    }
    for (int i = 0; st == PTM_OK && i < p->n; i++) {
        int64_t off = *seq - len[i];
        for (int64_t j = 0; j < *seq; j++) {
            (*ids)[i * *seq + j] = j < off ? pad : rows[(size_t)i * CAP + (j - off)];
            (*mask)[i * *seq + j] = j >= off;
        }
    }
    free(rows);
    return st;
}

static void print_rows(const int64_t *out, int64_t B, int64_t len, int64_t seq,
                       const ptm_tokenizer *tok)
{
    for (int64_t b = 0; b < B; b++) {
        const int64_t *row = out + b * len + seq;
        int32_t ids[8192];
        int64_t n = len - seq < 8192 ? len - seq : 8192;
        char *text = NULL;
        for (int64_t j = 0; j < n; j++) {
            ids[j] = (int32_t)row[j];
        }
        if (tok != NULL && ptm_tokenizer_decode(tok, ids, (size_t)n, 1, &text) == PTM_OK) {
            printf("[%lld] %s\n", (long long)b, text);
        } else {
            printf("[%lld]", (long long)b);
            for (int64_t j = 0; j < n; j++) {
                printf(" %lld", (long long)row[j]);
            }
            printf("\n");
        }
        ptm_free(text);
    }
}

static int is_seq2seq(const ptm_model *m)
{
    int32_t v = 0;
    const ptm_config *c = ptm_model_config(m);
    return ptm_config_has(c, "is_encoder_decoder") &&
           ptm_config_get_bool(c, "is_encoder_decoder", &v) == PTM_OK && v;
}

/* Options into o; 0, or CLI_USAGE after printing why. */
static int parse_args(int argc, char **argv, const char **model, const char **stop,
                      struct prompts *p, struct ptm_generate_opts *o, char **rest,
                      struct ptm_load_opts *lo)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = v != NULL && strcmp(a, "--do-sample") != 0;
        if (strcmp(a, "--do-sample") == 0) {
            o->do_sample = 1;
        } else if (takes && strcmp(a, "--model") == 0) {
            *model = v;
        } else if (takes && strcmp(a, "--stop") == 0) {
            *stop = v;
        } else if (takes && strcmp(a, "--quantize") == 0) {
            lo->quantize = v;
        } else if (takes && strcmp(a, "--dtype") == 0) {
            lo->dtype = v;
        } else if (takes && strcmp(a, "--device-map") == 0) {
            lo->device_map = v;
        } else if (takes && (strcmp(a, "--prompt") == 0 || strcmp(a, "--input-ids") == 0)) {
            if (p->n == MAX_PROMPTS) {
                fprintf(stderr, "ptm generate: at most %d prompts\n", MAX_PROMPTS);
                return CLI_USAGE;
            }
            p->is_ids[p->n] = a[2] == 'i';
            p->text[p->n++] = v;
        } else if (takes && strncmp(a, "--", 2) == 0) {
            rest[i] = argv[i]; /* a numeric option, applied after opts_init */
        } else {
            fprintf(stderr, "ptm generate: unexpected \"%s\" (see ptm generate --help)\n", a);
            return CLI_USAGE;
        }
        i += strcmp(a, "--do-sample") != 0;
    }
    if (*model == NULL || p->n == 0) {
        fprintf(stderr, "ptm generate: --model and --prompt or --input-ids are required\n");
        return CLI_USAGE;
    }
    return 0;
}

/* The numeric options, over the model's generation config (HF precedence). */
static int apply_numbers(int argc, char **argv, char **rest, struct ptm_generate_opts *o)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (rest[i] == NULL) {
            continue;
        }
        const char *a = argv[i];
        if (strcmp(a, "--early-stopping") == 0) {
            const char *v = argv[i + 1];
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0 && strcmp(v, "never") != 0) {
                fprintf(stderr, "ptm generate: --early-stopping \"%s\": true, false or never\n", v);
                return CLI_USAGE;
            }
            o->early_stopping = v[0] == 't'   ? PTM_EARLY_STOPPING_TRUE
                                : v[0] == 'n' ? PTM_EARLY_STOPPING_NEVER
                                              : PTM_EARLY_STOPPING_HEURISTIC;
            continue;
        }
        if (strcmp(a, "--kv-cache") == 0) {
            const char *v = argv[i + 1];
            if (strcmp(v, "f32") != 0 && strcmp(v, "f16") != 0 && strcmp(v, "bf16") != 0) {
                fprintf(stderr, "ptm generate: --kv-cache \"%s\": f32, f16 or bf16\n", v);
                return CLI_USAGE;
            }
            o->cache_dtype = v[0] == 'b' ? PTM_BF16 : v[1] == '1' ? PTM_F16 : PTM_F32;
            continue;
        }
        char *end = NULL;
        double x = strtod(argv[i + 1], &end);
        if (end == argv[i + 1] || *end != '\0') {
            fprintf(stderr, "ptm generate: %s \"%s\" is not a number\n", a, argv[i + 1]);
            return CLI_USAGE;
        }
        if (strcmp(a, "--max-new-tokens") == 0) {
            o->max_new_tokens = (int64_t)x;
        } else if (strcmp(a, "--temperature") == 0) {
            o->temperature = (float)x;
        } else if (strcmp(a, "--top-k") == 0) {
            o->top_k = (int64_t)x;
        } else if (strcmp(a, "--top-p") == 0) {
            o->top_p = (float)x;
        } else if (strcmp(a, "--min-p") == 0) {
            o->min_p = (float)x;
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = (uint64_t)x;
        } else if (strcmp(a, "--repetition-penalty") == 0) {
            o->repetition_penalty = (float)x;
        } else if (strcmp(a, "--num-beams") == 0) {
            o->num_beams = (int32_t)x;
        } else if (strcmp(a, "--length-penalty") == 0) {
            o->length_penalty = (float)x;
        } else if (strcmp(a, "--no-repeat-ngram-size") == 0) {
            o->no_repeat_ngram_size = (int64_t)x;
        } else if (strcmp(a, "--num-return-sequences") == 0) {
            o->num_return_sequences = (int32_t)x;
        } else {
            fprintf(stderr, "ptm generate: unknown option \"%s\"\n", a);
            return CLI_USAGE;
        }
    }
    return 0;
}

static int run(int argc, char **argv)
{
    const char *model = NULL, *stop = NULL;
    struct prompts p = {0};
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    int do_sample = 0;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    struct ptm_load_opts lo = {.struct_size = sizeof lo};
    int rc = rest ? parse_args(argc, argv, &model, &stop, &p, &o, rest, &lo) : CLI_FAIL;
    do_sample = o.do_sample;
    ptm_model *m = NULL;
    ptm_tokenizer *tok = NULL;
    int64_t *ids = NULL, *mask = NULL, *out = NULL, seq = 0, len = 0;
    struct streamer s = {0};
    struct timespec t0, t1;
    char why[512] = "";
    ptm_status st = PTM_OK;
    if (rc == 0 && (st = ptm_model_load(model, &lo, &m)) == PTM_OK &&
        (st = ptm_generate_opts_init(m, &o)) == PTM_OK) {
        o.do_sample = do_sample ? 1 : o.do_sample;
        rc = apply_numbers(argc, argv, rest, &o);
        if (ptm_model_dir(m) == NULL || ptm_tokenizer_load(ptm_model_dir(m), &tok) != PTM_OK) {
            tok = NULL; /* no tokenizer.json, or a type not implemented yet: ids */
            snprintf(why, sizeof why, "%s", ptm_model_dir(m) ? ptm_last_error() : "no directory");
        }
    }
    for (int i = 0; rc == 0 && st == PTM_OK && tok == NULL && i < p.n; i++) {
        if (!p.is_ids[i]) {
            fprintf(stderr,
                    "ptm generate: --prompt needs the model's tokenizer (%s); use "
                    "--input-ids\n",
                    why);
            rc = CLI_FAIL;
        }
    }
    if (rc == 0 && st == PTM_OK) {
        st = build_batch(&p, tok, o.pad_id >= 0 ? o.pad_id : 0, &ids, &mask, &seq);
    }
    if (rc == 0 && st == PTM_OK) {
        s.tok = tok;
        s.batch = p.n;
        s.stop = stop;
        s.gen = malloc(((size_t)(o.max_new_tokens > 0 ? o.max_new_tokens : o.max_length) + 1) *
                       sizeof *s.gen);
        /* Beam search has no final token per step (HF refuses a streamer there too). */
        o.stream = o.num_beams > 1 ? NULL : on_step;
        o.stream_user = &s;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = s.gen ? ptm_generate(m, ids, mask, p.n, seq, &o, &out, &len) : PTM_E_NOMEM;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    }
    if (rc == 0 && st != PTM_OK) {
        rc = cli_fail("generate", st);
    } else if (rc == 0) {
        int64_t rows = (int64_t)p.n * (o.num_return_sequences > 1 ? o.num_return_sequences : 1);
        if (rows == 1 && o.stream != NULL) {
            printf("\n");
        } else {
            /* An encoder-decoder model's rows are decoder ids: the start token, then new. */
            print_rows(out, rows, len, is_seq2seq(m) ? 1 : seq, tok);
        }
        if (s.steps == 0) {
            s.t_first = t1;
        }
        double pre = seconds(&t0, &s.t_first), dec = seconds(&s.t_first, &t1);
        fprintf(stderr,
                "ptm generate: %s: batch %d, prompt %lld, %lld new tokens%s; prefill %.1f "
                "tokens/s, decode %.1f tokens/s\n",
                model, p.n, (long long)seq, (long long)(len - (is_seq2seq(m) ? 1 : seq)),
                tok ? "" : " (ids: no tokenizer)", pre > 0 ? (double)(p.n * seq) / pre : 0.0,
                dec > 0 && s.steps > 1 ? (double)(p.n * (s.steps - 1)) / dec : 0.0);
    }
    free(s.gen);
    free(ids);
    free(mask);
    ptm_free(out);
    ptm_tokenizer_free(tok);
    ptm_model_free(m);
    free(rest);
    return rc;
}

const struct cli_command cli_cmd_generate = {
    .name = "generate",
    .summary = "generate text with a causal language model",
    .usage = "--model M (--prompt TEXT | --input-ids 1,2,3)... [--max-new-tokens N]\n"
             "       [--do-sample] [--temperature T] [--top-k K] [--top-p P] [--min-p P]\n"
             "       [--seed S] [--repetition-penalty R] [--stop TEXT] [--dtype D]\n"
             "       [--quantize int8] [--num-beams N] [--length-penalty X]\n"
             "       [--early-stopping true|false|never] [--no-repeat-ngram-size N]\n"
             "       [--num-return-sequences N] [--device-map SPEC] [--kv-cache f32|f16|bf16]\n\n"
             "Greedy search, sampling with --do-sample, or beam search with --num-beams N > 1,\n"
             "as transformers' generate(); the model's generation_config.json gives the\n"
             "defaults and the options override it. --num-return-sequences prints that many\n"
             "rows per prompt (the best beams, or samples); beam search prints when done.\n"
             "Several --prompt / --input-ids form one left-padded batch. One prompt streams its\n"
             "continuation to stdout; ids are printed when the model has no tokenizer ptm can\n"
             "load. --stop ends a single prompt's generation once its text contains TEXT\n"
             "(HF stop_strings; the stop text is kept). Prefill and decode tokens/s go to\n"
             "stderr. --dtype loads the weights as float32 (default), bfloat16, float16 or\n"
             "auto (the config's); --quantize int8 quantizes the matrix weights at load\n"
             "(blocks of 32 with one scale, as llama.cpp's Q8_0). --device-map places the\n"
             "layers across devices: auto, a device, or prefix=device pairs such as\n"
             "model.layers.0-10=cpu,=opencl:0 (see ptm info --help). --kv-cache stores the\n"
             "key/value cache as float32 (default), float16 or bfloat16: half the memory and\n"
             "the cache bytes decode reads, keys and values rounded as stored (CPU backend).\n",
    .run = run,
};
