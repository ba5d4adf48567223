/*
 * bench_llama.c - LLaMA generation speed: ptm against llama.cpp on the very same weights, same
 * thread count, same prompt length, same run. The checkpoint is TinyLlama-1.1B-shaped with
 * random weights (tools/make_llama_bench_model.py, BF16 and F16); llama.cpp's llama-bench runs
 * on its GGUF conversions (F16, and Q8_0 against ptm's int8), all made by
 * scripts/peers/llamacpp. Each repetition runs, per variant, ptm and llama-bench (one
 * repetition, with its own warm-up) back to back, llama-bench first in odd repetitions, so
 * machine noise hits both alike; the figures are medians, the ratios medians of each ptm run
 * over the llama.cpp run next to it (the machine's read bandwidth swings 14-56 GB/s between
 * minutes; one llama.cpp F16 decode ran 13.5, 19.5 and 17.8 tokens/s in three repetitions).
 * llama-bench decodes at a depth of the prompt length, where ptm's decode runs too.
 * ptm runs in a fresh process each time too (this program with --child), so that its peak RSS
 * is that of one load and one generation, as a user's process would see it.
 *
 * Per variant it prints prefill tokens/s over the prompt, decode tokens/s over the new tokens
 * (greedy, eos masked so every token is generated), both ratios (> 1: ptm is faster), the
 * weight bytes decode reads per second, for ptm and llama.cpp, as a share of the DRAM read
 * bandwidth measured just before and after that engine's run (two-thread streaming read of a
 * 1 GiB buffer on huge pages, ten passes each time), twice: of the best pass (the machine's
 * ceiling) and of the median pass (its typical rate, the yardstick of the issue that set the
 * targets: "~31 GB/s typical (35 best)", with llama.cpp's F16 decode "~95%" of it), and ptm's
 * peak RSS (VmHWM) against its weights plus KV cache.
 *
 * Variants: bf16 and f16 (exact: weights widened to F32), bf16dot and f16dot (the same weights
 * with PTM_CPU_BF16_DOT=1: prefill-sized matmuls round activations, and F16 weights, to BF16 for
 * vdpbf16ps, and so does decode on BF16 weights, as llama.cpp rounds activations to F16 for its
 * F16 weights), int8 (Q8_0 quantized on load).
 *
 * ptm's KV cache is F16 by default (--kv), as llama.cpp's is. Before the first run every
 * weight file of either engine is dropped from the page cache and read back cold, so both map
 * their weights in the same page sizes (settle_page_cache).
 *
 * usage: bench_llama [--runs N] [--threads N] [--prompt N] [--gen N] [--kv f16|bf16|f32]
 *                    [--only bf16,bf16dot,f16,f16dot,int8]
 *                    [--models DIR] [--peers DIR|none]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "ptm/ptm.h"
#include "ptm/ptm_generate.h"

#define MAX_RUNS 16

struct args {
    int runs, threads, prompt, gen;
    const char *only, *models, *peers;
    const char *kv;    /* ptm's KV cache: f16 (llama.cpp's default), bf16 or f32 */
    const char *child; /* set in the child process that runs one ptm repetition */
};

/* One ptm model against one llama.cpp GGUF. */
struct variant {
    const char *name, *dir, *gguf; /* dir: under models; gguf: under peers */
    int is_int8;
    int bf16_dot; /* PTM_CPU_BF16_DOT=1: activations rounded to BF16 for vdpbf16ps */
};

struct result {
    double prefill[MAX_RUNS], decode[MAX_RUNS], peer_prefill[MAX_RUNS], peer_decode[MAX_RUNS];
    /* decode weight bytes/s over the DRAM read bandwidth measured around that run: its best
     * pass (share) and its median pass (typ) */
    double share[MAX_RUNS], peer_share[MAX_RUNS], typ[MAX_RUNS], peer_typ[MAX_RUNS];
    /* ptm over the llama.cpp run next to it in the same repetition */
    double pair_prefill[MAX_RUNS], pair_decode[MAX_RUNS];
    int n, n_peer, n_pairs;
    double peak_rss, weight_bytes, token_bytes, kv_bytes, gguf_bytes;
};

/* ---- DRAM read bandwidth ---------------------------------------------------------------- */

typedef int64_t vec8 __attribute__((vector_size(64)));

struct stream {
    const vec8 *p;
    size_t n;
    int64_t sink;
};

static void *stream_read(void *arg)
{
    struct stream *s = arg;
    vec8 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = 0; i + 4 <= s->n; i += 4) {
        a ^= s->p[i];
        b ^= s->p[i + 1];
        c ^= s->p[i + 2];
        d ^= s->p[i + 3];
    }
    a ^= b ^ c ^ d;
    for (int k = 0; k < 8; k++) {
        s->sink ^= a[k];
    }
    return NULL;
}

#define BW_PASSES 10

/* One read bandwidth measurement: GB/s of each pass. */
struct bw {
    double pass[BW_PASSES];
};

/* The best pass of a and b. */
static double bw_best(const struct bw *a, const struct bw *b)
{
    double best = 0;
    for (int i = 0; i < BW_PASSES; i++) {
        best = a->pass[i] > best ? a->pass[i] : best;
        best = b->pass[i] > best ? b->pass[i] : best;
    }
    return best;
}

/* The median pass of a and b together. */
static double bw_typical(const struct bw *a, const struct bw *b)
{
    double all[2 * BW_PASSES];
    memcpy(all, a->pass, sizeof a->pass);
    memcpy(all + BW_PASSES, b->pass, sizeof b->pass);
    return median(all, 2 * BW_PASSES);
}

/* `threads` threads reading disjoint slices of a 1 GiB buffer, BW_PASSES times into *bw; 0
 * on success. The buffer asks for huge pages, as ptm's own large buffers do: on this machine
 * they read up to a tenth faster than 4 KiB pages, and the ceiling must be the machine's best. */
static int dram_read_gbs(int threads, struct bw *bw)
{
    size_t bytes = (size_t)1 << 30, n = bytes / sizeof(vec8);
    vec8 *buf = NULL;
    if (threads < 1 || threads > 64 || posix_memalign((void **)&buf, (size_t)2 << 20, bytes) != 0) {
        return -1;
    }
    madvise(buf, bytes, MADV_HUGEPAGE);
    memset(buf, 1, bytes);
    struct stream s[64];
    pthread_t tid[64];
    for (int pass = 0; pass < BW_PASSES; pass++) {
        double t0 = now_ms();
        for (int t = 0; t < threads; t++) {
            s[t] = (struct stream){buf + n / threads * t, n / threads, 0};
            pthread_create(&tid[t], NULL, stream_read, &s[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
        }
        bw->pass[pass] = bytes / ((now_ms() - t0) * 1e6);
    }
    free(buf);
    return 0;
}

/* ---- process memory --------------------------------------------------------------------- */

/* The "key: N kB" line of a /proc file, in bytes; 0 when absent. */
static double proc_kb_bytes(const char *path, const char *key)
{
    char line[256];
    size_t n = strlen(key);
    double kb = 0;
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, n) == 0 && sscanf(line + n, ": %lf", &kb) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb * 1024;
}

static double peak_rss_bytes(void)
{
    return proc_kb_bytes("/proc/self/status", "VmHWM");
}

static double file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_size : 0;
}

/*
 * Put the weight file at path in the page cache the same way for both engines: drop its
 * cached pages and read it back through a mapping advised for huge pages, as a cold read does.
 * How a file's pages came to be cached decides the page size both engines map it with: the
 * Python-written safetensors sat in 4 KiB pages (3% huge), llama.cpp's GGUF 42% in 2 MiB
 * ones. Prints the huge share; a file other processes map keeps those pages as they are.
 */
static void settle_page_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    size_t n = (size_t)sb.st_size;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    const volatile char *p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        return;
    }
    madvise((void *)p, n, MADV_HUGEPAGE);
    char sink = 0;
    for (size_t o = 0; o < n; o += 4096) {
        sink ^= p[o];
    }
    (void)sink;
    printf("bench_llama: %s re-read cold: %.0f%% in huge pages\n", path,
           100.0 * proc_kb_bytes("/proc/self/smaps_rollup", "FilePmdMapped") / (double)n);
    munmap((void *)p, n);
}

/* ---- ptm -------------------------------------------------------------------------------- */

/* v's model, int8 through the loader's quantize option; NULL (message printed) when this
 * ptm cannot load it, which skips the variant. */
static ptm_model *ptm_load(const char *dir, const struct variant *v)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = "auto"};
    o.quantize = v->is_int8 ? "int8" : NULL;
    ptm_model *m = NULL;
    if (ptm_model_load(dir, &o, &m) != PTM_OK) {
        printf("bench=llama_1b_%s skipped: %s\n", v->name, ptm_last_error());
    }
    return m;
}

/* Bytes of every weight (all) and of those one decode step reads (all but the input
 * embedding table, of which it reads one row). */
static void weight_bytes(const ptm_model *m, double *all, double *per_token)
{
    const ptm_tensor *emb = ptm_model_input_embeddings(m);
    *all = *per_token = 0;
    for (size_t i = 0; i < ptm_model_n_params(m); i++) {
        const ptm_tensor *t = ptm_model_param_at(m, i, NULL);
        *all += (double)ptm_tensor_nbytes(t);
        *per_token += t == emb ? 0 : (double)ptm_tensor_nbytes(t);
    }
}

/* The KV cache ptm_generate makes: keys and values of kv_dtype, every layer, prompt + new
 * tokens. */
static double kv_bytes(const ptm_model *m, int64_t len, ptm_dtype kv_dtype)
{
    const ptm_config *c = ptm_model_config(m);
    int64_t layers = 0, heads = 1, kv_heads = 0, hidden = 0;
    ptm_config_get_int(c, "num_hidden_layers", &layers);
    ptm_config_get_int(c, "hidden_size", &hidden);
    ptm_config_get_int(c, "num_attention_heads", &heads);
    if (ptm_config_get_int(c, "num_key_value_heads", &kv_heads) != PTM_OK) {
        kv_heads = heads;
    }
    return 2.0 * (kv_dtype == PTM_F32 ? 4 : 2) * layers * len * kv_heads * (hidden / heads);
}

struct clock {
    double t_first, t_last;
    int64_t steps;
};

static int32_t on_step(const int64_t *tokens, const int32_t *running, int64_t n, void *user)
{
    struct clock *c = user;
    c->t_last = now_ms();
    if (c->steps++ == 0) {
        c->t_first = c->t_last;
    }
    return 0;
}

/* Greedy generation of n_new tokens after ids[0..seq); prefill and decode tokens/s. The first
 * stream call marks the end of the prefill (its forward and the first token's choice). */
static void ptm_run(ptm_model *m, const int64_t *ids, int64_t seq, int64_t n_new,
                    ptm_dtype kv_dtype, double *prefill, double *decode)
{
    struct ptm_generate_opts o = {.struct_size = sizeof o};
    struct clock c = {0};
    int64_t *out = NULL, out_len = 0;
    if (ptm_generate_opts_init(m, &o) != PTM_OK) {
        fprintf(stderr, "bench_llama: %s\n", ptm_last_error());
        exit(1);
    }
    o.max_new_tokens = o.min_new_tokens = n_new; /* eos masked: every token is generated */
    o.max_length = seq + n_new;
    o.do_sample = 0;
    o.repetition_penalty = 1;
    o.cache_dtype = kv_dtype;
    o.stream = on_step;
    o.stream_user = &c;
    usleep(100000); /* let the other engine's spinning threads go idle */
    double t0 = now_ms();
    if (ptm_generate(m, ids, NULL, 1, seq, &o, &out, &out_len) != PTM_OK) {
        fprintf(stderr, "bench_llama: %s\n", ptm_last_error());
        exit(1);
    }
    ptm_free(out);
    if (c.steps != n_new) {
        fprintf(stderr, "bench_llama: ptm generated %lld tokens, not %lld\n", (long long)c.steps,
                (long long)n_new);
        exit(1);
    }
    *prefill = seq * 1e3 / (c.t_first - t0);
    *decode = n_new > 1 ? (n_new - 1) * 1e3 / (c.t_last - c.t_first) : 0;
}

/* ---- llama.cpp ---------------------------------------------------------------------------- */

/* One llama-bench test (its own warm-up, one repetition): tokens/s, or -1. */
static double peer_test(const char *bin, const char *gguf, int threads, int n_prompt, int n_gen,
                        int depth)
{
    char cmd[4096], line[512];
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -p %d -n %d -d %d -t %d -r 1 -o json 2>/dev/null", bin,
             gguf, n_prompt, n_gen, depth, threads);
    usleep(100000);
    FILE *p = popen(cmd, "r");
    double ts = -1, v;
    while (p != NULL && fgets(line, sizeof line, p) != NULL) {
        if (sscanf(line, " \"avg_ts\": %lf", &v) == 1) {
            ts = v;
        }
    }
    int rc = p != NULL ? pclose(p) : -1;
    return rc == 0 ? ts : -1;
}

/*
 * One llama-bench repetition of prefill (pp) and decode (tg); 0 on success. Decode runs at a
 * depth of the prompt length (-d), as ptm's decode follows its prompt: llama-bench's own tg
 * test starts from an empty context, which at 512 tokens made its decode ~10% faster than at
 * the context ptm decodes in.
 */
static int peer_run(const char *bin, const char *gguf, const struct args *a, double *pp, double *tg)
{
    *pp = peer_test(bin, gguf, a->threads, a->prompt, 0, 0);
    *tg = *pp > 0 ? peer_test(bin, gguf, a->threads, 0, a->gen, a->prompt) : -1;
    return *pp > 0 && *tg > 0 ? 0 : -1;
}

/* ---- report ------------------------------------------------------------------------------ */

static void report(const struct variant *v, struct result *r, const struct args *a, double bw)
{
    double pf = median(r->prefill, r->n), dc = median(r->decode, r->n);
    double gbs = r->token_bytes * dc / 1e9, budget = r->weight_bytes + r->kv_bytes;
    printf("bench=llama_1b_%s threads=%d prompt=%d gen=%d ptm_prefill_tok_s=%.2f "
           "ptm_decode_tok_s=%.2f decode_weight_gb_s=%.2f bw_share=%.1f%% bw_share_typ=%.1f%% "
           "dram_read_best_gb_s=%.2f bw_share_of_best=%.1f%% peak_rss_mb=%.0f weights_mb=%.0f "
           "kv_mb=%.0f rss_share=%.3f runs=%d\n",
           v->name, a->threads, a->prompt, a->gen, pf, dc, gbs, 100 * median(r->share, r->n),
           100 * median(r->typ, r->n), bw, 100 * gbs / bw, r->peak_rss / 1e6, r->weight_bytes / 1e6,
           r->kv_bytes / 1e6, r->peak_rss / budget, r->n);
    if (r->n_peer > 0) {
        double pp = median(r->peer_prefill, r->n_peer), tg = median(r->peer_decode, r->n_peer);
        /* llama.cpp reads its whole file per token but the token_embd rows: same share as ours */
        double peer_gbs = r->gguf_bytes * (r->token_bytes / r->weight_bytes) * tg / 1e9;
        printf("bench=llama_1b_%s threads=%d peer=llama.cpp:%s peer_prefill_tok_s=%.2f "
               "peer_decode_tok_s=%.2f peer_decode_weight_gb_s=%.2f peer_bw_share=%.1f%% "
               "peer_bw_share_typ=%.1f%% prefill_ratio=%.2f decode_ratio=%.2f runs=%d\n",
               v->name, a->threads, v->gguf, pp, tg, peer_gbs,
               100 * median(r->peer_share, r->n_peer), 100 * median(r->peer_typ, r->n_peer),
               median(r->pair_prefill, r->n_pairs), median(r->pair_decode, r->n_pairs), r->n_peer);
    }
    fflush(stdout);
}

/* The same figures as one table, after the machine-readable lines; "-" where no peer ran. */
static void table(const struct variant *vs, struct result *rs, const int *on, int n, double bw,
                  const char *kv)
{
    printf("\n%-7s %21s %21s %43s %9s\n", "", "prefill tok/s", "decode tok/s",
           "decode weight bytes/s", "peak RSS");
    printf("%-7s %7s %7s %5s %7s %7s %5s %8s %7s %7s %9s %7s %7s %9s\n", "ptm", "ptm", "llama", "x",
           "ptm", "llama", "x", "GB/s", "of BW", "of typ", "peer GB/s", "of BW", "of typ",
           "/ budget");
    for (int i = 0; i < n; i++) {
        struct result *r = &rs[i];
        if (!on[i]) {
            continue;
        }
        double pf = median(r->prefill, r->n), dc = median(r->decode, r->n);
        double gbs = r->token_bytes * dc / 1e9;
        char pre[32] = "      -     -", dec[32] = "      -     -";
        if (r->n_peer > 0) {
            double pp = median(r->peer_prefill, r->n_peer);
            double tg = median(r->peer_decode, r->n_peer);
            snprintf(pre, sizeof pre, "%7.2f %5.2f", pp, median(r->pair_prefill, r->n_pairs));
            snprintf(dec, sizeof dec, "%7.2f %5.2f", tg, median(r->pair_decode, r->n_pairs));
        }
        double peer_gbs = r->n_peer > 0 ? r->gguf_bytes * (r->token_bytes / r->weight_bytes) *
                                              median(r->peer_decode, r->n_peer) / 1e9
                                        : 0;
        double peer_share = r->n_peer > 0 ? 100 * median(r->peer_share, r->n_peer) : 0;
        double peer_typ = r->n_peer > 0 ? 100 * median(r->peer_typ, r->n_peer) : 0;
        printf("%-7s %7.2f %s %7.2f %s %8.2f %6.1f%% %6.1f%% %9.2f %6.1f%% %6.1f%% %9.3f\n",
               vs[i].name, pf, pre, dc, dec, gbs, 100 * median(r->share, r->n),
               100 * median(r->typ, r->n), peer_gbs, peer_share, peer_typ,
               r->peak_rss / (r->weight_bytes + r->kv_bytes));
    }
    printf(
        "of BW: decode weight bytes/s over the DRAM read bandwidth measured just before and after "
        "that engine's run (its best pass), median over runs; of typ: the same over the median "
        "pass of those measurements; the best measured in the whole run was %.2f GB/s. llama: "
        "llama.cpp on GGUF F16 (bf16, "
        "bf16dot, f16, f16dot rows) and Q8_0 (int8), run next to each ptm run. *dot: "
        "PTM_CPU_BF16_DOT=1. x: median over runs of ptm over the llama.cpp run next to it, > 1: "
        "ptm "
        "faster. "
        "budget: weights + KV cache. KV cache: ptm %s, llama.cpp f16.\n",
        bw, kv);
}

static void parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){3,
                       0,
                       512,
                       128,
                       "bf16,bf16dot,f16,f16dot,int8",
                       PTM_BENCH_DIR "/models",
                       PTM_BENCH_DIR "/peers",
                       "f16",
                       NULL};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *val = argv[i + 1];
        if (!strcmp(k, "--runs")) {
            a->runs = atoi(val);
        } else if (!strcmp(k, "--threads")) {
            a->threads = atoi(val);
        } else if (!strcmp(k, "--prompt")) {
            a->prompt = atoi(val);
        } else if (!strcmp(k, "--gen")) {
            a->gen = atoi(val);
        } else if (!strcmp(k, "--only")) {
            a->only = val;
        } else if (!strcmp(k, "--models")) {
            a->models = val;
        } else if (!strcmp(k, "--peers")) {
            a->peers = val;
        } else if (!strcmp(k, "--child")) {
            a->child = val;
        } else if (!strcmp(k, "--kv")) {
            a->kv = val;
        }
    }
    if (a->threads <= 0) {
        const char *env = getenv("PTM_THREADS");
        a->threads = env ? atoi(env) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    a->runs = a->runs < 1 ? 1 : a->runs > MAX_RUNS ? MAX_RUNS : a->runs;
    a->prompt = a->prompt < 1 ? 1 : a->prompt;
    a->gen = a->gen < 2 ? 2 : a->gen;
    if (strcmp(a->kv, "f16") != 0 && strcmp(a->kv, "bf16") != 0 && strcmp(a->kv, "f32") != 0) {
        fprintf(stderr, "bench_llama: --kv %s: f16, bf16 or f32\n", a->kv);
        exit(2);
    }
}

/* Whether name is one of the comma-separated items of list. */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) {
            return 1;
        }
    }
    return 0;
}

/* The prompt: seeded pseudo-random ids in [3, vocab), no tokenizer needed. */
static int64_t *make_prompt(int64_t n, int64_t vocab)
{
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int64_t i = 0; ids != NULL && i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        ids[i] = 3 + (int64_t)((x >> 33) % (uint64_t)(vocab - 3));
    }
    return ids;
}

static ptm_dtype kv_dtype(const char *name)
{
    return !strcmp(name, "f32") ? PTM_F32 : !strcmp(name, "bf16") ? PTM_BF16 : PTM_F16;
}

/* The child: one ptm repetition of variant v in this fresh process (so VmHWM is its own
 * peak), its figures on one stdout line. */
static int child_main(const struct variant *v, const struct args *a)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", a->models, v->dir);
    if (v->bf16_dot) {
        setenv("PTM_CPU_BF16_DOT", "1", 1);
    } else {
        unsetenv("PTM_CPU_BF16_DOT");
    }
    ptm_model *m = ptm_load(dir, v);
    if (m == NULL) {
        return 2;
    }
    int64_t vocab = 0;
    double all, per_token, pf, dc;
    ptm_config_get_int(ptm_model_config(m), "vocab_size", &vocab);
    int64_t *ids = make_prompt(a->prompt, vocab);
    weight_bytes(m, &all, &per_token);
    ptm_dtype kv = kv_dtype(a->kv);
    ptm_run(m, ids, a->prompt < 16 ? a->prompt : 16, 2, kv, &pf, &dc); /* warm-up: page in */
    ptm_run(m, ids, a->prompt, a->gen, kv, &pf, &dc);
    printf("ptm %f %f %f %f %f %f\n", pf, dc, peak_rss_bytes(), all, per_token,
           kv_bytes(m, a->prompt + a->gen, kv));
    ptm_model_free(m);
    free(ids);
    return 0;
}

/* Run the child for v; 0 when it reported. */
static int ptm_child(const struct variant *v, const struct args *a, struct result *r)
{
    char self[1024], cmd[4096], line[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        return -1;
    }
    self[n] = '\0';
    snprintf(cmd, sizeof cmd,
             "'%s' --child %s --threads %d --prompt %d --gen %d --models '%s' --peers none --kv %s",
             self, v->name, a->threads, a->prompt, a->gen, a->models, a->kv);
    usleep(100000); /* let the other engine's spinning threads go idle */
    FILE *p = popen(cmd, "r");
    int got = 0;
    double pf, dc, rss;
    while (p != NULL && fgets(line, sizeof line, p) != NULL) {
        if (sscanf(line, "ptm %lf %lf %lf %lf %lf %lf", &pf, &dc, &rss, &r->weight_bytes,
                   &r->token_bytes, &r->kv_bytes) == 6) {
            got = 1;
        } else {
            fputs(line, stdout); /* the child's skip message */
        }
    }
    if ((p != NULL && pclose(p) != 0) || !got) {
        return -1;
    }
    r->prefill[r->n] = pf;
    r->decode[r->n++] = dc;
    r->peak_rss = rss > r->peak_rss ? rss : r->peak_rss;
    return 0;
}

/* The DRAM read bandwidth now into *bw, and the best pass seen so far in *best. */
static void bw_now(const struct args *a, struct bw *bw, double *best)
{
    if (dram_read_gbs(a->threads, bw) != 0) {
        fprintf(stderr, "bench_llama: no memory for the 1 GiB read-bandwidth buffer\n");
        exit(1);
    }
    double b = bw_best(bw, bw);
    *best = b > *best ? b : *best;
}

/* llama-bench on gguf once, its shares over the bandwidth measured before (*bw0) and now
 * (into *bw1); 0 when it ran. */
static int peer_once(const char *gguf, const struct args *a, const char *peer_bin, struct result *r,
                     const struct bw *bw0, struct bw *bw1, double *best)
{
    double pp, tg;
    int ok = peer_run(peer_bin, gguf, a, &pp, &tg) == 0;
    bw_now(a, bw1, best);
    if (!ok) {
        return -1;
    }
    /* llama.cpp reads its whole file per token but the token_embd rows */
    double gbs = r->gguf_bytes * (r->token_bytes / r->weight_bytes) * tg / 1e9;
    r->peer_share[r->n_peer] = gbs / bw_best(bw0, bw1);
    r->peer_typ[r->n_peer] = gbs / bw_typical(bw0, bw1);
    r->peer_prefill[r->n_peer] = pp;
    r->peer_decode[r->n_peer++] = tg;
    return 0;
}

/*
 * One repetition of variant v: ptm in a fresh process and llama-bench on v's GGUF, back to
 * back, llama-bench first in odd repetitions; each run between two bandwidth measurements.
 * The pair's ratios go into pair_prefill and pair_decode: ptm over the llama.cpp run next to
 * it, so that the machine's swings between repetitions cancel. 0 when ptm ran.
 */
static int bench_once(const struct variant *v, const struct args *a, const char *peer_bin, int rep,
                      struct result *r, double *best)
{
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s/%s", a->peers, v->gguf);
    r->gguf_bytes = file_bytes(gguf);
    int peer = peer_bin != NULL && r->gguf_bytes > 0, peer_first = peer && rep % 2 == 1;
    int peer_ran = 0;
    struct bw bw[3];
    bw_now(a, &bw[0], best);
    /* the peer's share needs ptm's bytes per token: known once ptm has run in any repetition */
    if (peer_first && r->n > 0) {
        peer_ran = peer_once(gguf, a, peer_bin, r, &bw[0], &bw[1], best) == 0;
    } else {
        peer_first = 0;
    }
    if (ptm_child(v, a, r) != 0) {
        return -1;
    }
    bw_now(a, &bw[peer_first + 1], best);
    double gbs = r->token_bytes * r->decode[r->n - 1] / 1e9;
    r->share[r->n - 1] = gbs / bw_best(&bw[peer_first], &bw[peer_first + 1]);
    r->typ[r->n - 1] = gbs / bw_typical(&bw[peer_first], &bw[peer_first + 1]);
    if (peer && !peer_first) {
        peer_ran = peer_once(gguf, a, peer_bin, r, &bw[1], &bw[2], best) == 0;
    }
    if (peer_ran) {
        r->pair_prefill[r->n_pairs] = r->prefill[r->n - 1] / r->peer_prefill[r->n_peer - 1];
        r->pair_decode[r->n_pairs++] = r->decode[r->n - 1] / r->peer_decode[r->n_peer - 1];
    }
    fprintf(stderr, "bench_llama: %s: ptm %.2f / %.2f tok/s, llama.cpp %.2f / %.2f\n", v->name,
            r->prefill[r->n - 1], r->decode[r->n - 1],
            peer_ran ? r->peer_prefill[r->n_peer - 1] : 0,
            peer_ran ? r->peer_decode[r->n_peer - 1] : 0);
    return 0;
}

#define N_VARIANTS 5

int main(int argc, char **argv)
{
    static const struct variant variants[N_VARIANTS] = {
        {"bf16", "llama-1b-bf16", "llama-1b-f16.gguf", 0, 0},
        {"bf16dot", "llama-1b-bf16", "llama-1b-f16.gguf", 0, 1},
        {"f16", "llama-1b-f16", "llama-1b-f16.gguf", 0, 0},
        {"f16dot", "llama-1b-f16", "llama-1b-f16.gguf", 0, 1},
        {"int8", "llama-1b-bf16", "llama-1b-q8_0.gguf", 1, 0},
    };
    static struct result res[N_VARIANTS];
    int on[N_VARIANTS];
    struct args a;
    parse_args(argc, argv, &a);
    char th[16], peer_bin[1024], path[1024];
    snprintf(th, sizeof th, "%d", a.threads);
    setenv("PTM_THREADS", th, 1);
    for (int i = 0; a.child != NULL && i < N_VARIANTS; i++) {
        if (!strcmp(a.child, variants[i].name)) {
            return child_main(&variants[i], &a);
        }
    }
    snprintf(peer_bin, sizeof peer_bin, "%s/llama.cpp-build/bin/llama-bench", a.peers);
    int has_peer = strcmp(a.peers, "none") != 0 && access(peer_bin, X_OK) == 0;
    if (!has_peer && strcmp(a.peers, "none") != 0) {
        printf("bench_llama: %s missing: run scripts/peers/llamacpp; ptm only\n", peer_bin);
    }
    for (int i = 0; i < N_VARIANTS; i++) {
        const struct variant *v = &variants[i];
        snprintf(path, sizeof path, "%s/%s/config.json", a.models, v->dir);
        on[i] = listed(a.only, v->name) && file_bytes(path) > 0;
        if (listed(a.only, v->name) && !on[i]) {
            printf("bench=llama_1b_%s skipped: %s missing: run "
                   "python3 tools/make_llama_bench_model.py\n",
                   v->name, path);
        }
        snprintf(path, sizeof path, "%s/%s", a.peers, v->gguf);
        if (on[i] && has_peer && file_bytes(path) == 0) {
            printf("bench=llama_1b_%s: %s missing: run scripts/peers/llamacpp\n", v->name, path);
        }
    }
    /* Every weight file either engine maps, once each (variants share files). */
    static char settled[2 * N_VARIANTS][1024];
    int n_settled = 0;
    for (int i = 0; i < N_VARIANTS; i++) {
        char files[2][1024];
        snprintf(files[0], sizeof files[0], "%s/%s/model.safetensors", a.models, variants[i].dir);
        snprintf(files[1], sizeof files[1], "%s/%s", a.peers, variants[i].gguf);
        for (int f = 0; on[i] && f < 1 + has_peer; f++) {
            int seen = 0;
            for (int k = 0; k < n_settled; k++) {
                seen |= !strcmp(settled[k], files[f]);
            }
            if (!seen) {
                settle_page_cache(files[f]);
                memcpy(settled[n_settled++], files[f], sizeof files[f]);
            }
        }
    }
    /* The machine is shared and its read bandwidth moves between runs (14-56 GB/s on the
     * project's 2-core Zen 4): each run's share is over the bandwidth measured around it, and
     * the best of the whole run is printed too. */
    double bw = 0;
    for (int rep = 0; rep < a.runs; rep++) {
        for (int i = 0; i < N_VARIANTS; i++) {
            on[i] = on[i] && bench_once(&variants[i], &a, has_peer ? peer_bin : NULL, rep, &res[i],
                                        &bw) == 0;
        }
    }
    for (int i = 0; i < N_VARIANTS; i++) {
        if (on[i]) {
            report(&variants[i], &res[i], &a, bw);
        }
    }
    table(variants, res, on, N_VARIANTS, bw, a.kv);
    return 0;
}
