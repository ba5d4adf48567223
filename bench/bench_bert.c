/*
 * bench_bert.c - BERT encoder throughput: ptm against PyTorch and ONNX Runtime, same model,
 * same inputs, same thread count, same run. The peers live in one child process
 * (peer_bert.py) so that every repetition runs ptm, then torch, then ORT back to back and
 * machine noise hits all three alike. Each timed run starts after a short pause: the peers'
 * thread pools spin after a call (ORT's intra-op spinning, OpenMP's spin-wait) and would
 * otherwise steal the cores from whichever engine runs next. Prints one machine-readable line per
 * case and peer; ratio > 1 means ptm is faster. Also prints ptm's achieved GFLOP/s beside OpenBLAS
 * sgemm on the model's largest GEMM shape, measured here, as the ceiling to compare with.
 *
 * --quantize int8 loads ptm with int8 weights (ptm_load_opts.quantize) and sets it against the
 * peers' own int8 forms: torch.ao dynamic quantization and ONNX Runtime's quantize_dynamic.
 *
 * usage: bench_bert [--model NAME] [--runs N] [--threads N] [--peer PATH|none] [--dtype D]
 *                   [--quantize int8]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "ptm/ptm.h"

#define DEFAULT_MODEL "sentence-transformers/all-MiniLM-L6-v2"

struct hp {
    int64_t hidden, inter, layers, vocab;
};

/* The same ids peer_bert.py makes. */
static void make_inputs(ptm_tensor_map *in, ptm_device *dev, int64_t b, int64_t s, int64_t vocab)
{
    int64_t shape[2] = {b, s}, n = b * s;
    int32_t *ids = malloc((size_t)n * 4), *mask = malloc((size_t)n * 4),
            *types = calloc((size_t)n, 4);
    for (int64_t i = 0; i < b; i++) {
        for (int64_t j = 0; j < s; j++) {
            ids[i * s + j] = (int32_t)((i * 7919 + j * 104729) % (vocab - 2000) + 1000);
            mask[i * s + j] = 1;
        }
        ids[i * s] = 101;
        ids[i * s + s - 1] = 102;
    }
    const char *names[] = {"input_ids", "attention_mask", "token_type_ids"};
    int32_t *data[] = {ids, mask, types};
    for (int k = 0; k < 3; k++) {
        ptm_tensor *t = NULL;
        if (ptm_tensor_from_host(dev, PTM_I32, 2, shape, data[k], &t) != PTM_OK ||
            ptm_tensor_map_set(in, names[k], t) != PTM_OK) {
            fprintf(stderr, "bench_bert: %s\n", ptm_last_error());
            exit(1);
        }
        ptm_tensor_free(t);
        free(data[k]);
    }
}

/* FLOPs of one forward: the linear layers, plus QK^T and PV in attention. */
static double forward_flops(const struct hp *h, int64_t b, int64_t s)
{
    double tok = (double)b * s;
    double linear = 2.0 * tok * (4.0 * h->hidden * h->hidden + 2.0 * h->hidden * h->inter);
    double attn = 4.0 * b * (double)s * s * h->hidden;
    return h->layers * (linear + attn);
}

/* OpenBLAS's own threading; the CPU plugin sets it to 1 because its pool splits tiles. */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);

/* OpenBLAS sgemm GFLOP/s with `threads` threads on out[M, N] = A[M, K] B^T, the model's
 * largest shape: the ceiling ptm's GEMMs are compared with. */
static double blas_gflops(int64_t m, int64_t n, int64_t k, int runs, int threads)
{
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    float *a = calloc((size_t)(m * k), 4), *b = calloc((size_t)(n * k), 4),
          *c = calloc((size_t)(m * n), 4);
    double best = 1e30;
    for (int r = 0; r < runs + 1; r++) {
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, a,
                    (int)k, b, (int)k, 0.0f, c, (int)n);
        double dt = now_ms() - t0;
        best = r > 0 && dt < best ? dt : best;
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(saved);
    return 2.0 * m * n * k / (best * 1e6);
}

static double peer_run(struct peer *p, const char *which, int64_t b, int64_t s)
{
    char line[256];
    if (peer_ask(p, which, b, s, line, sizeof line) != 0) {
        return -1;
    }
    return strtod(line + 3, NULL);
}

static double ptm_run(ptm_model *m, ptm_tensor_map *in)
{
    ptm_tensor_map *out = NULL;
    settle();
    ptm_tensor_map_new(&out);
    double t0 = now_ms();
    if (ptm_model_forward(m, in, out, 0) != PTM_OK) {
        fprintf(stderr, "bench_bert: %s\n", ptm_last_error());
        exit(1);
    }
    double dt = now_ms() - t0;
    ptm_tensor_map_free(out);
    return dt;
}

int main(int argc, char **argv)
{
    const char *model = DEFAULT_MODEL, *peer_script = PTM_BENCH_DIR "/peer_bert.py";
    int runs = 7, threads = 0;
    struct ptm_load_opts opts = {.struct_size = sizeof opts};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) {
            model = argv[i + 1];
        } else if (!strcmp(argv[i], "--runs")) {
            runs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--threads")) {
            threads = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--peer")) {
            peer_script = argv[i + 1];
        } else if (!strcmp(argv[i], "--dtype")) {
            opts.dtype = argv[i + 1];
        } else if (!strcmp(argv[i], "--quantize")) {
            opts.quantize = argv[i + 1];
        }
    }
    if (threads <= 0) {
        const char *env = getenv("PTM_THREADS");
        threads = env ? atoi(env) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    setenv("PTM_THREADS", th, 1);
    runs = runs < 1 ? 1 : runs > 64 ? 64 : runs;

    ptm_model *m = NULL;
    if (ptm_model_load(model, &opts, &m) != PTM_OK) {
        fprintf(stderr, "bench_bert: %s\n", ptm_last_error());
        return 1;
    }
    struct hp h;
    const ptm_config *c = ptm_model_config(m);
    ptm_config_get_int(c, "hidden_size", &h.hidden);
    ptm_config_get_int(c, "intermediate_size", &h.inter);
    ptm_config_get_int(c, "num_hidden_layers", &h.layers);
    ptm_config_get_int(c, "vocab_size", &h.vocab);
    struct peer p = {0};
    int have_peer = strcmp(peer_script, "none") != 0 &&
                    peer_start(&p, peer_script, ptm_model_dir(m), threads) == 0;
    if (!have_peer && strcmp(peer_script, "none") != 0) {
        fprintf(stderr, "bench_bert: peer %s did not start; ptm only\n", peer_script);
    }
    int int8 = opts.quantize != NULL && strcmp(opts.quantize, "none") != 0;
    const char *torch_name = int8 ? "torch_int8" : "torch", *ort_name = int8 ? "ort_int8" : "ort";
    static const int64_t cases[][2] = {{32, 128}, {1, 16}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int64_t b = cases[ci][0], s = cases[ci][1];
        ptm_tensor_map *in = NULL;
        ptm_tensor_map_new(&in);
        ptm_device *dev = ptm_model_device(m);
        make_inputs(in, dev, b, s, h.vocab);
        double t_ptm[64], t_torch[64], t_ort[64];
        ptm_run(m, in); /* warm-up: page in weights, size the allocator */
        if (have_peer) {
            peer_run(&p, torch_name, b, s);
            peer_run(&p, ort_name, b, s);
        }
        for (int r = 0; r < runs; r++) {
            t_ptm[r] = ptm_run(m, in);
            t_torch[r] = have_peer ? peer_run(&p, torch_name, b, s) : 0;
            t_ort[r] = have_peer ? peer_run(&p, ort_name, b, s) : 0;
        }
        double mp = median(t_ptm, runs);
        double gf = forward_flops(&h, b, s) / (mp * 1e6);
        char name[64];
        snprintf(name, sizeof name, "bert_minilm%s_b%lld_s%lld", int8 ? "_int8" : "", (long long)b,
                 (long long)s);
        printf("bench=%s threads=%d ptm_ms=%.2f ptm_sent_per_s=%.1f ptm_gflops=%.1f "
               "blas_gflops=%.1f runs=%d\n",
               name, threads, mp, b * 1e3 / mp, gf,
               blas_gflops(b * s, h.inter, h.hidden, 3, threads), runs);
        if (have_peer) {
            double mt = median(t_torch, runs), mo = median(t_ort, runs);
            printf("bench=%s threads=%d ptm_ms=%.2f peer=%s peer_ms=%.2f ratio=%.2f runs=%d\n",
                   name, threads, mp, torch_name, mt, mt / mp, runs);
            printf("bench=%s threads=%d ptm_ms=%.2f peer=onnxruntime%s peer_ms=%.2f ratio=%.2f "
                   "runs=%d\n",
                   name, threads, mp, int8 ? "_int8" : "", mo, mo / mp, runs);
        }
        fflush(stdout);
        ptm_tensor_map_free(in);
    }
    if (have_peer) {
        peer_stop(&p);
    }
    ptm_model_free(m);
    return 0;
}
