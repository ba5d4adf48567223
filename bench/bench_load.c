/*
 * bench_load.c - from_pretrained and save_pretrained on a large checkpoint (>= 1 GB BF16,
 * made by tools/make_bench_model.py, never committed): ptm's load time and RSS growth beside
 * transformers' from_pretrained on the same files in the same run (peer_load.py, a child
 * process), and ptm's save throughput beside `cp` + fsync of the same bytes. Targets (issue
 * 4): load < 50 ms, RSS growth < 5% of the file, save >= 80% of cp's throughput.
 *
 * usage: bench_load [--model DIR] [--runs N] [--peer PATH|none]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "ptm/ptm.h"

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    return resident * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static double dir_bytes(const char *dir)
{
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return stat(path, &sb) == 0 ? (double)sb.st_size : 0;
}

static ptm_model *load(const char *dir)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = "auto"};
    ptm_model *m = NULL;
    if (ptm_model_load(dir, &o, &m) != PTM_OK) {
        fprintf(stderr, "bench_load: %s\n", ptm_last_error());
        exit(1);
    }
    return m;
}

/*
 * The peer is `cp` then fsync of the same file, into the same directory as the save. GNU cp
 * first tries a reflink (FICLONE), which ext4 refuses, then copies with copy_file_range: a
 * copy inside the kernel, from page cache to page cache. On a file system that reflinks
 * (btrfs, XFS with reflink) cp copies no data at all and this ratio means nothing. ptm copies
 * weights still mapped from the loaded file the same way (runtime/st_copy.c), at the same
 * offsets, and streams them to disk as it goes; unlike cp it keeps the old checkpoint until
 * the new one is durable, then swaps directories.
 */
static void bench_save(const char *dir, ptm_model *m, double bytes, int runs)
{
    char out[64] = "/tmp/ptm_bench_save_XXXXXX", cmd[2048];
    if (mkdtemp(out) == NULL) {
        return;
    }
    double t_ptm[16], t_cp[16];
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        if (ptm_model_save(m, out, NULL) != PTM_OK) {
            fprintf(stderr, "bench_load: save: %s\n", ptm_last_error());
            exit(1);
        }
        t_ptm[r] = now_ms() - t0;
        snprintf(cmd, sizeof cmd,
                 "cp '%s/model.safetensors' '%s/cp.safetensors' && sync '%s/cp.safetensors'", dir,
                 out, out);
        t0 = now_ms();
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_load: cp failed\n");
            exit(1);
        }
        t_cp[r] = now_ms() - t0;
    }
    double mp = median(t_ptm, runs), mc = median(t_cp, runs);
    printf("bench=save_bf16 ptm_ms=%.1f ptm_gb_per_s=%.2f peer=cp+fsync peer_ms=%.1f "
           "peer_gb_per_s=%.2f ratio=%.2f runs=%d\n",
           mp, bytes / (mp * 1e6), mc, bytes / (mc * 1e6), mc / mp, runs);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_load: cleanup of %s failed\n", out);
    }
}

int main(int argc, char **argv)
{
    const char *dir = PTM_BENCH_DIR "/models/bert-1b-bf16";
    const char *peer = PTM_BENCH_DIR "/peer_load.py";
    int runs = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) {
            dir = argv[i + 1];
        } else if (!strcmp(argv[i], "--runs")) {
            runs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--peer")) {
            peer = argv[i + 1];
        }
    }
    runs = runs < 1 ? 1 : runs > 16 ? 16 : runs;
    double bytes = dir_bytes(dir);
    if (bytes == 0) {
        fprintf(stderr,
                "bench_load: %s/model.safetensors missing: run "
                "python3 tools/make_bench_model.py first\n",
                dir);
        return 1;
    }
    ptm_model_free(load(dir)); /* warm-up: plugins loaded, file in the page cache */
    double before = rss_mb();
    ptm_model *first = load(dir);
    double growth = rss_mb() - before;
    double t[16];
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        ptm_model *m = load(dir);
        t[r] = now_ms() - t0;
        ptm_model_free(m);
    }
    double mp = median(t, runs);
    printf("bench=from_pretrained_bf16 file_gb=%.2f ptm_ms=%.2f ptm_rss_growth_mb=%.1f "
           "rss_share=%.2f%% runs=%d\n",
           bytes / 1e9, mp, growth, 100 * growth * 1e6 / bytes, runs);
    if (strcmp(peer, "none") != 0) {
        char cmd[2048], line[256];
        snprintf(cmd, sizeof cmd, "python3 '%s' '%s' %d", peer, dir, runs);
        FILE *p = popen(cmd, "r");
        double pm = -1, prss = -1;
        while (p != NULL && fgets(line, sizeof line, p) != NULL) {
            sscanf(line, "ms %lf rss_mb %lf", &pm, &prss);
        }
        if (p != NULL) {
            pclose(p);
        }
        if (pm > 0) {
            printf("bench=from_pretrained_bf16 ptm_ms=%.2f peer=transformers peer_ms=%.2f "
                   "peer_rss_growth_mb=%.1f ratio=%.1f runs=%d\n",
                   mp, pm, prss, pm / mp, runs);
        }
    }
    bench_save(dir, first, bytes, runs < 5 ? runs : 5);
    ptm_model_free(first);
    return 0;
}
