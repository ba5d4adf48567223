/*
 * bench_t5.c - T5 greedy generation throughput: ptm against CTranslate2 (F32 and int8) and
 * transformers on PyTorch, on the same t5-small-shaped random checkpoint (made and converted
 * by tools/make_t5_bench_model.py), the same source ids, the same thread count, in one run.
 * Every engine encodes SRC_LEN source ids and decodes exactly --new tokens greedily (end of
 * sequence suppressed until then), batch 1 and batch 16. The peers live in one child process
 * (peer_t5.py) so that each repetition runs every engine back to back and machine noise hits
 * them alike, after a short pause for the previous engine's spinning threads. Prints one
 * machine-readable line per case and peer (ratio > 1 means ptm is faster), whether ptm's row 0
 * agrees with each peer's, and a table of the medians with the peers' versions. Int8: ptm
 * loads the same checkpoint with ptm_load_opts.quantize = "int8"; CTranslate2 runs its int8
 * conversion. CTranslate2 picks its GEMM library by CPU vendor (Intel MKL on Intel, oneDNN
 * elsewhere); CT2_USE_MKL=1 or 0 in the environment forces the choice (the peer inherits it),
 * and on AMD its F32 is faster with MKL and its int8 with oneDNN: compare against both.
 *
 * usage: bench_t5 [--model DIR] [--runs N] [--threads N] [--new N] [--batch N] [--dtype D]
 *                 [--torch 0|1] [--peer PATH|none]
 * --batch N runs that batch size alone (default 1, then 16); --dtype f32|int8 that precision
 * alone (default both); --peer none, ptm alone (for profiling); --torch 0 leaves out the
 * slowest peer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ptm/ptm.h"

#define DEFAULT_MODEL PTM_BENCH_DIR "/models/t5-small-random"
#define SRC_LEN       32
#define MAX_NEW       1024
#define MAX_RUNS      64

/* The source ids peer_t5.py makes: SRC_LEN - 1 ids of a 64-bit LCG seeded per row, in
 * [3, vocab) (no pad, eos or unk), then eos (1). */
static int64_t *source_ids(int64_t b, int64_t vocab)
{
    int64_t *ids = malloc((size_t)(b * SRC_LEN) * sizeof *ids);
    for (int64_t i = 0; ids != NULL && i < b; i++) {
        uint64_t state = 0x5EEDu + (uint64_t)i * 0x9E3779B97F4A7C15u;
        for (int64_t j = 0; j < SRC_LEN - 1; j++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            ids[i * SRC_LEN + j] = 3 + (int64_t)((state >> 33) % (uint64_t)(vocab - 3));
        }
        ids[i * SRC_LEN + SRC_LEN - 1] = 1;
    }
    return ids;
}

/* Parse "a,b,c" into row (up to n ids); returns how many. */
static int64_t parse_row(const char *s, int64_t *row, int64_t n)
{
    int64_t k = 0;
    while (k < n && *s >= '0' && *s <= '9') {
        char *end = NULL;
        row[k++] = strtoll(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}

/* One timed peer generation: ms, or -1; row 0's new ids into row0. */
static double peer_run(struct peer *p, const char *engine, int64_t b, int64_t n_new, int64_t *row0)
{
    static char line[16384];
    if (peer_ask(p, engine, b, n_new, line, sizeof line) != 0) {
        fprintf(stderr, "bench_t5: peer %s: %s", engine, line);
        return -1;
    }
    char *end = NULL;
    double ms = strtod(line + 3, &end);
    long long got = 0;
    const char *r = strstr(end, " row0 ");
    if (sscanf(end, " new %lld", &got) != 1 || got != n_new || r == NULL ||
        parse_row(r + 6, row0, n_new) != n_new) {
        fprintf(stderr, "bench_t5: peer %s made %lld tokens, not %lld\n", engine, got,
                (long long)n_new);
        return -1;
    }
    return ms;
}

/* One timed ptm generation: ms; row 0's new ids into row0. Exits on failure. */
static double ptm_run(ptm_model *m, const int64_t *ids, int64_t b, int64_t n_new, int64_t *row0)
{
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    int64_t *out = NULL, out_len = 0;
    if (ptm_generate_opts_init(m, &o) != PTM_OK) {
        fprintf(stderr, "bench_t5: %s\n", ptm_last_error());
        exit(1);
    }
    o.do_sample = 0;
    o.repetition_penalty = 1.0f;
    o.max_new_tokens = n_new;
    o.min_new_tokens = n_new; /* eos masked until then: every engine makes n_new tokens */
    settle();
    double t0 = now_ms();
    if (ptm_generate(m, ids, NULL, b, SRC_LEN, &o, &out, &out_len) != PTM_OK) {
        fprintf(stderr, "bench_t5: %s\n", ptm_last_error());
        exit(1);
    }
    double dt = now_ms() - t0;
    if (out_len != n_new + 1) { /* the decoder start token, then the new ones */
        fprintf(stderr, "bench_t5: ptm made %lld tokens, not %lld\n", (long long)(out_len - 1),
                (long long)n_new);
        exit(1);
    }
    memcpy(row0, out + 1, (size_t)n_new * sizeof *row0);
    ptm_free(out);
    return dt;
}

static int64_t agree(const int64_t *a, const int64_t *b, int64_t n)
{
    int64_t k = 0;
    while (k < n && a[k] == b[k]) {
        k++;
    }
    return k;
}

/* One engine of one case: its runs, median and row 0 of the last run. */
struct engine {
    const char *name;  /* "ptm", or the peer's engine name */
    const char *label; /* for the output: ptm, ctranslate2, torch */
    ptm_model *m;      /* ptm's model, else NULL */
    int on;
    double t[MAX_RUNS], med;
    int64_t row0[MAX_NEW];
};

struct bench {
    struct peer p;
    int have_peer, runs, threads;
    int64_t n_new, vocab, batch; /* batch 0: both batch sizes */
    const char *dtype;           /* "f32", "int8", or NULL for both */
};

static double engine_run(struct bench *bn, struct engine *e, const int64_t *ids, int64_t b)
{
    if (e->m != NULL) {
        return ptm_run(e->m, ids, b, bn->n_new, e->row0);
    }
    return peer_run(&bn->p, e->name, b, bn->n_new, e->row0);
}

/* The case (batch b, one precision): warm-up, then runs repetitions interleaving the engines
 * e[0] (ptm, or off) and its peers; prints a line per peer. */
static void run_case(struct bench *bn, struct engine *e, int n_e, const char *dtype, int64_t b)
{
    int64_t *ids = source_ids(b, bn->vocab);
    char name[96];
    snprintf(name, sizeof name, "t5_small_%s_b%lld_new%lld", dtype, (long long)b,
             (long long)bn->n_new);
    for (int k = 0; k < n_e; k++) { /* warm-up: page in weights, size the allocators */
        e[k].on = e[k].on && engine_run(bn, &e[k], ids, b) >= 0;
    }
    for (int r = 0; r < bn->runs; r++) {
        for (int k = 0; k < n_e; k++) {
            e[k].t[r] = e[k].on ? engine_run(bn, &e[k], ids, b) : 0;
            e[k].on = e[k].on && e[k].t[r] >= 0;
        }
    }
    double tok = (double)b * bn->n_new * 1e3;
    for (int k = 0; k < n_e; k++) {
        e[k].med = e[k].on ? median(e[k].t, bn->runs) : 0;
    }
    if (e[0].on) {
        printf("bench=%s threads=%d ptm_ms=%.1f ptm_tok_per_s=%.1f runs=%d\n", name, bn->threads,
               e[0].med, tok / e[0].med, bn->runs);
    }
    for (int k = 1; k < n_e; k++) {
        if (!e[k].on) {
            continue;
        }
        if (e[0].on) {
            printf("bench=%s threads=%d ptm_tok_per_s=%.1f peer=%s peer_ms=%.1f "
                   "peer_tok_per_s=%.1f ratio=%.2f agree=%lld/%lld runs=%d\n",
                   name, bn->threads, tok / e[0].med, e[k].label, e[k].med, tok / e[k].med,
                   e[k].med / e[0].med, (long long)agree(e[0].row0, e[k].row0, bn->n_new),
                   (long long)bn->n_new, bn->runs);
        } else {
            printf("bench=%s threads=%d ptm=n/a peer=%s peer_ms=%.1f peer_tok_per_s=%.1f "
                   "runs=%d\n",
                   name, bn->threads, e[k].label, e[k].med, tok / e[k].med, bn->runs);
        }
    }
    fflush(stdout);
    free(ids);
}

/* Tokens/s of a finished engine, or 0 when it did not run. */
static double tok_per_s(const struct bench *bn, const struct engine *e, int64_t b)
{
    return e->on && e->med > 0 ? (double)b * bn->n_new * 1e3 / e->med : 0;
}

static void cell(double v)
{
    if (v > 0) {
        printf(" %9.1f", v);
    } else {
        printf(" %9s", "n/a");
    }
}

static void cell_ratio(double a, double b)
{
    if (a > 0 && b > 0) {
        printf(" %9.2f", a / b);
    } else {
        printf(" %9s", "n/a");
    }
}

/* One row of the summary: tokens/s of ptm, CTranslate2, torch and the ratios. */
static void table_row(int64_t b, const char *dtype, double ptm, double ct2, double torch)
{
    printf("%5lld %-5s", (long long)b, dtype);
    cell(ptm);
    cell(ct2);
    cell(torch);
    cell_ratio(ptm, ct2);
    cell_ratio(ptm, torch);
    printf("\n");
}

/* Both precisions at batch b: F32 (m32, NULL to skip it, against CTranslate2 and, with
 * torch, PyTorch), then int8 (m8, NULL for CTranslate2 alone, skipped with bn->dtype "f32");
 * tokens/s into tab[f32, int8][ptm, ct2, torch]. */
static void run_batch(struct bench *bn, ptm_model *m32, ptm_model *m8, int64_t b, int torch,
                      double tab[2][3])
{
    static struct engine f32[3], i8[2];
    int peer = bn->have_peer, do_i8 = !bn->dtype || !strcmp(bn->dtype, "int8");
    f32[0] = (struct engine){.name = "ptm", .label = "ptm", .m = m32, .on = m32 != NULL};
    f32[1] = (struct engine){.name = "ct2", .label = "ctranslate2", .on = m32 && peer};
    f32[2] = (struct engine){.name = "torch", .label = "torch", .on = m32 && peer && torch};
    i8[0] = (struct engine){.name = "ptm", .label = "ptm", .m = m8, .on = m8 != NULL};
    i8[1] = (struct engine){.name = "ct2-int8", .label = "ctranslate2", .on = peer && do_i8};
    for (int k = 1; k < 3; k++) {
        f32[k].on = f32[k].on && peer_has(&bn->p, f32[k].name);
    }
    i8[1].on = i8[1].on && peer_has(&bn->p, i8[1].name);
    run_case(bn, f32, 3, "f32", b);
    run_case(bn, i8, 2, "int8", b);
    for (int k = 0; k < 3; k++) {
        tab[0][k] = tok_per_s(bn, &f32[k], b);
        tab[1][k] = k < 2 ? tok_per_s(bn, &i8[k], b) : 0;
    }
}

/* The checkpoint in F32, or with int8 weights (ptm_load_opts.quantize); an int8 load that
 * fails leaves the int8 row to CTranslate2 (NULL). */
static ptm_model *load(const char *dir, int int8)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = "float32"};
    o.quantize = int8 ? "int8" : NULL;
    ptm_model *m = NULL;
    if (ptm_model_load(dir, &o, &m) != PTM_OK) {
        fprintf(stderr, "bench_t5: %s\n", ptm_last_error());
        if (!int8) {
            exit(1);
        }
    }
    return m;
}

static void parse_args(int argc, char **argv, const char **model, const char **peer,
                       struct bench *bn, int *torch)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) {
            *model = argv[i + 1];
        } else if (!strcmp(argv[i], "--runs")) {
            bn->runs = (int)strtol(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--threads")) {
            bn->threads = (int)strtol(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--new")) {
            bn->n_new = strtoll(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--batch")) {
            bn->batch = strtoll(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--dtype")) {
            bn->dtype = argv[i + 1];
        } else if (!strcmp(argv[i], "--torch")) {
            *torch = (int)strtol(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--peer")) {
            *peer = argv[i + 1];
        }
    }
    if (bn->threads <= 0) {
        const char *env = getenv("PTM_THREADS");
        bn->threads = env ? (int)strtol(env, NULL, 10) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    bn->runs = bn->runs < 1 ? 1 : bn->runs > MAX_RUNS ? MAX_RUNS : bn->runs;
    bn->n_new = bn->n_new < 1 ? 1 : bn->n_new > MAX_NEW ? MAX_NEW : bn->n_new;
}

int main(int argc, char **argv)
{
    const char *model = DEFAULT_MODEL, *peer_script = PTM_BENCH_DIR "/peer_t5.py";
    static struct bench bn = {.runs = 3, .n_new = 64};
    int torch = 1;
    parse_args(argc, argv, &model, &peer_script, &bn, &torch);
    char th[16];
    snprintf(th, sizeof th, "%d", bn.threads);
    setenv("PTM_THREADS", th, 1);

    int do_f32 = !bn.dtype || !strcmp(bn.dtype, "f32");
    int do_i8 = !bn.dtype || !strcmp(bn.dtype, "int8");
    ptm_model *m32 = load(model, 0), *m8 = do_i8 ? load(model, 1) : NULL;
    if (ptm_config_get_int(ptm_model_config(m32), "vocab_size", &bn.vocab) != PTM_OK) {
        fprintf(stderr, "bench_t5: %s\n", ptm_last_error());
        return 1;
    }
    bn.have_peer = strcmp(peer_script, "none") != 0 &&
                   peer_start(&bn.p, peer_script, ptm_model_dir(m32), bn.threads) == 0;
    if (!bn.have_peer && strcmp(peer_script, "none") != 0) {
        fprintf(stderr, "bench_t5: peer %s did not start; ptm only\n", peer_script);
    }
    int64_t batches[] = {1, 16};
    double tab[2][2][3]; /* [batch][f32, int8][ptm, ct2, torch] tokens/s */
    int n_b = 2;
    if (bn.batch > 0) {
        batches[0] = bn.batch;
        n_b = 1;
    }
    for (int bi = 0; bi < n_b; bi++) {
        run_batch(&bn, do_f32 ? m32 : NULL, m8, batches[bi], torch && do_f32, tab[bi]);
    }
    printf("\nT5 greedy generation, %d source + %lld new tokens, %d threads, median of %d "
           "(tokens/s)\n",
           SRC_LEN, (long long)bn.n_new, bn.threads, bn.runs);
    if (bn.have_peer) {
        printf("peers:%s\n", bn.p.about);
    }
    printf("%5s %-5s %9s %9s %9s %9s %9s\n", "batch", "dtype", "ptm", "ct2", "torch", "ptm/ct2",
           "ptm/torch");
    for (int bi = 0; bi < n_b; bi++) {
        table_row(batches[bi], "f32", tab[bi][0][0], tab[bi][0][1], tab[bi][0][2]);
        table_row(batches[bi], "int8", tab[bi][1][0], tab[bi][1][1], tab[bi][1][2]);
    }
    if (bn.have_peer) {
        peer_stop(&bn.p);
    }
    ptm_model_free(m32);
    ptm_model_free(m8);
    return 0;
}
