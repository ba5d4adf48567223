/*
 * bench_tokenize.c - tokenizer throughput, single-threaded: ptm against Hugging Face
 * tokenizers (Rust, encode_batch with RAYON_NUM_THREADS=1, driven from Python) on the same
 * 2,050-line corpus (tests/fixtures/tok/corpus.txt), one tokenizer per model type, padding
 * and truncation off on both sides. The peer lives in one child process (peer_tokenize.py);
 * repetitions interleave ptm and the peer. One line per tokenizer; ratio > 1: ptm faster.
 *
 * usage: bench_tokenize [--runs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "ptm/ptm.h"

#define TOK PTM_BENCH_DIR "/../tests/fixtures/tok"

struct corpus {
    char **lines;
    size_t *lens;
    size_t n;
};

static void read_corpus(struct corpus *c)
{
    FILE *f = fopen(TOK "/corpus.txt", "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    if (f == NULL) {
        fprintf(stderr, "bench_tokenize: %s/corpus.txt missing\n", TOK);
        exit(1);
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        }
        c->lines = realloc(c->lines, (c->n + 1) * sizeof *c->lines);
        c->lens = realloc(c->lens, (c->n + 1) * sizeof *c->lens);
        c->lines[c->n] = malloc((size_t)len + 1);
        memcpy(c->lines[c->n], line, (size_t)len + 1);
        c->lens[c->n++] = (size_t)len;
    }
    free(line);
    fclose(f);
}

/* Encode every line once; returns ms, *tokens the total count. */
static double ptm_pass(const ptm_tokenizer *t, const struct corpus *c, long *tokens)
{
    struct ptm_encode_opts o = PTM_ENCODE_OPTS_INIT;
    o.truncation = PTM_TOK_TRUNC_OFF;
    o.padding = PTM_TOK_PAD_OFF;
    long n = 0;
    double t0 = now_ms();
    for (size_t i = 0; i < c->n; i++) {
        struct ptm_encoding *e = NULL;
        if (ptm_tokenizer_encode(t, c->lines[i], c->lens[i], NULL, 0, &o, &e) != PTM_OK) {
            fprintf(stderr, "bench_tokenize: line %zu: %s\n", i, ptm_last_error());
            exit(1);
        }
        n += (long)e->n;
        ptm_encoding_free(e);
    }
    *tokens = n;
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    static const char *const names[][2] = {
        {"minilm", "WordPiece"},     {"bl_gpt2", "BPE byte-level"},
        {"bl_llama3", "BPE llama3"}, {"sp_llama2", "BPE sentencepiece"},
        {"uni_t5", "Unigram"},
    };
    int runs = argc > 2 && !strcmp(argv[1], "--runs") ? atoi(argv[2]) : 5;
    runs = runs < 1 ? 1 : runs > 32 ? 32 : runs;
    struct corpus c = {0};
    read_corpus(&c);
    int in[2], out[2];
    if (pipe(in) || pipe(out)) {
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", PTM_BENCH_DIR "/peer_tokenize.py", TOK "/corpus.txt",
               (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    FILE *to = fdopen(in[1], "w"), *from = fdopen(out[0], "r");
    char line[512];
    int ready = 0;
    while (!ready && fgets(line, sizeof line, from) != NULL) {
        ready = strncmp(line, "ready", 5) == 0;
    }
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", TOK, names[k][0]);
        ptm_tokenizer *t = NULL;
        if (ptm_tokenizer_load(path, &t) != PTM_OK) {
            fprintf(stderr, "bench_tokenize: %s\n", ptm_last_error());
            return 1;
        }
        double tp[32], tq[32];
        long ptm_tokens = 0, peer_tokens = 0;
        ptm_pass(t, &c, &ptm_tokens); /* warm-up */
        for (int r = -1; r < runs; r++) {
            if (r >= 0) {
                tp[r] = ptm_pass(t, &c, &ptm_tokens);
            }
            double ms = -1;
            fprintf(to, "run %s\n", path);
            fflush(to);
            if (ready && fgets(line, sizeof line, from) != NULL) {
                sscanf(line, "ms %lf tokens %ld", &ms, &peer_tokens);
            }
            if (r >= 0) {
                tq[r] = ms;
            }
        }
        double mp = median(tp, runs), mq = ready ? median(tq, runs) : -1;
        printf("bench=tokenize_%s model=\"%s\" lines=%zu tokens=%ld ptm_ms=%.2f "
               "ptm_tokens_per_s=%.0f",
               names[k][0], names[k][1], c.n, ptm_tokens, mp, ptm_tokens / (mp / 1e3));
        if (mq > 0) {
            printf(" peer=tokenizers peer_ms=%.2f peer_tokens=%ld ratio=%.2f", mq, peer_tokens,
                   mq / mp);
        }
        printf(" runs=%d\n", runs);
        fflush(stdout);
        ptm_tokenizer_free(t);
    }
    fprintf(to, "quit\n");
    fclose(to);
    fclose(from);
    waitpid(pid, NULL, 0);
    for (size_t i = 0; i < c.n; i++) {
        free(c.lines[i]);
    }
    free(c.lines);
    free(c.lens);
    return 0;
}
