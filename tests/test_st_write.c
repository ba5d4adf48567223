/*
 * test_st_write.c - the safetensors writer and checkpoint saver (runtime/st_write.c,
 * st_save.c): round trips through the reader, header layout, shard plans and names as
 * transformers / huggingface_hub make them, switching between single and sharded layouts,
 * HF size strings, and a kill test: a child saving checkpoint B over A is SIGKILLed at a
 * random instant and the directory must still load as exactly A or exactly B.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(p) PTM_TEST_FIXTURES "/" p

long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

/* A fresh, empty directory under the build tree for one test. */
static void make_dir(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "%s/st_write_%s_%d", PTM_TEST_BUILD_DIR, tag, (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(mkdir(out, 0755), 0, "%s: %s", out, strerror(errno));
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static int file_exists(const char *dir, const char *name)
{
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

/* Number of directory entries (excluding . and ..). */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void fill(unsigned char *p, size_t n, int seed)
{
    for (size_t j = 0; j < n; j++) {
        p[j] = (unsigned char)((j * 131 + (size_t)seed * 17 + j / 251) & 0xff);
    }
}

/* Every entry must be in f with the same dtype, shape and bytes, and nothing else. */
static int same_tensors(const ptm_st_file *f, const struct ptm_st_entry *t, size_t n)
{
    if (ptm_st_count(f) != n) {
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        const struct ptm_st_tensor *g = ptm_st_find(f, t[k].name);
        if (g == NULL || g->dtype != t[k].dtype || g->ndim != t[k].ndim ||
            g->nbytes != t[k].nbytes ||
            memcmp(g->shape, t[k].shape, sizeof(int64_t) * (size_t)t[k].ndim) != 0 ||
            (t[k].nbytes > 0 && memcmp(g->data, t[k].data, t[k].nbytes) != 0)) {
            return 0;
        }
    }
    return 1;
}

static struct ptm_st_entry entry(const char *name, ptm_dtype dt, int ndim, const int64_t *shape,
                                 const void *data)
{
    struct ptm_st_entry e = {.name = name, .dtype = dt, .ndim = ndim, .data = data};
    uint64_t n = ptm_dtype_size(dt);
    for (int d = 0; d < ndim; d++) {
        e.shape[d] = shape[d];
        n *= (uint64_t)shape[d];
    }
    e.nbytes = n;
    return e;
}

Test(st_write, round_trips_tensors_and_metadata)
{
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "rt");
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    static unsigned char buf[4096];
    fill(buf, sizeof buf, 1);
    int64_t s23[] = {2, 3}, s5[] = {5}, s0[] = {0, 4}, s8[] = {1, 1, 1, 1, 1, 1, 1, 2};
    struct ptm_st_entry t[] = {
        entry("z.last", PTM_F32, 2, s23, buf),
        entry("a.first", PTM_BF16, 1, s5, buf + 24),
        entry("scalar", PTM_F64, 0, NULL, buf + 40),
        entry("empty", PTM_I8, 2, s0, NULL),
        entry("eight\"dims\\", PTM_U8, 8, s8, buf + 48),
        entry("caf\xc3\xa9", PTM_BOOL, 1, s5, buf),
    };
    const char *meta[] = {"format", "pt", "b\nkey", "v\"q", NULL};
    cr_assert_eq(ptm_st_write(path, t, 6, meta), PTM_OK, "%s", ptm_last_error());
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert(same_tensors(f, t, 6));
    cr_assert_str_eq(ptm_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(ptm_st_metadata(f, "b\nkey"), "v\"q");
    /* Data is laid out in the given order (zero-size "empty" shares its offset). */
    cr_assert_eq(ptm_st_at(f, 0)->name, ptm_st_find(f, "z.last")->name);
    cr_assert_str_eq(ptm_st_at(f, ptm_st_count(f) - 1)->name, "caf\xc3\xa9");
    ptm_st_close(f);
    /* Header: 8-byte aligned, "__metadata__" first, then keys sorted by name. */
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    cr_assert_eq(fread(len8, 1, 8, fp), 8);
    size_t hlen = len8[0] | (size_t)len8[1] << 8;
    char hdr[2048] = {0};
    cr_assert_eq(fread(hdr, 1, hlen, fp), hlen);
    fclose(fp);
    cr_assert_eq(hlen % 8, 0);
    const char *head = "{\"__metadata__\":{\"b\\nkey\":\"v\\\"q\",\"format\":\"pt\"},";
    cr_assert_eq(strncmp(hdr, head, strlen(head)), 0, "%s", hdr);
    const char *order[] = {"\"a.first\"", "\"caf",      "\"eight",
                           "\"empty\"",   "\"scalar\"", "\"z.last\""};
    for (int k = 1; k < 6; k++) {
        cr_assert(strstr(hdr, order[k - 1]) < strstr(hdr, order[k]), "%s", hdr);
    }
    cr_assert_not_null(strstr(hdr, "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":"));
    cr_assert_eq(count_files(dir), 1, "no temporary left behind");
    remove_dir(dir);
}

Test(st_write, refuses_bad_entries_and_leaves_path_untouched)
{
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "inval");
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    static unsigned char buf[64];
    int64_t s2[] = {2}, sneg[] = {-1};
    struct ptm_st_entry dup[] = {entry("a", PTM_F32, 1, s2, buf), entry("a", PTM_F32, 1, s2, buf)};
    cr_assert_eq(ptm_st_write(path, dup, 2, NULL), PTM_E_INVAL);
    cr_assert_not_null(strstr(ptm_last_error(), "duplicate tensor name \"a\""));
    struct ptm_st_entry wrong = entry("w", PTM_F32, 1, s2, buf);
    wrong.nbytes = 7;
    cr_assert_eq(ptm_st_write(path, &wrong, 1, NULL), PTM_E_INVAL);
    cr_assert_not_null(strstr(ptm_last_error(), "\"w\""));
    struct ptm_st_entry neg = entry("n", PTM_F32, 1, sneg, buf);
    cr_assert_eq(ptm_st_write(path, &neg, 1, NULL), PTM_E_INVAL);
    struct ptm_st_entry reserved = entry("__metadata__", PTM_F32, 1, s2, buf);
    cr_assert_eq(ptm_st_write(path, &reserved, 1, NULL), PTM_E_INVAL);
    struct ptm_st_entry bad_utf8 = entry("x\xff", PTM_F32, 1, s2, buf);
    cr_assert_eq(ptm_st_write(path, &bad_utf8, 1, NULL), PTM_E_INVAL);
    const char *dup_meta[] = {"k", "1", "k", "2", NULL};
    cr_assert_eq(ptm_st_write(path, &wrong, 0, dup_meta), PTM_E_INVAL);
    cr_assert_eq(ptm_st_save(dir, "a/b", 0, &wrong, 0, NULL), PTM_E_INVAL);
    cr_assert_eq(count_files(dir), 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", dir);
    cr_assert_eq(ptm_st_write(missing, dup, 1, NULL), PTM_E_IO);
    cr_assert_not_null(strstr(ptm_last_error(), "no/such/dir"));
    remove_dir(dir);
}

/* Nine 100-byte F32 tensors, max_shard_size 250: the hub fixture's exact input. */
Test(st_write, shards_like_huggingface_hub)
{
    ptm_st_file *hub = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("st/sharded/model.safetensors.index.json"), &hub), PTM_OK);
    struct ptm_st_entry t[9];
    static const char *names[9] = {"w.0", "w.1", "w.2", "w.3", "w.4", "w.5", "w.6", "w.7", "w.8"};
    for (int k = 0; k < 9; k++) {
        const struct ptm_st_tensor *h = ptm_st_find(hub, names[k]);
        t[k] = entry(names[k], h->dtype, h->ndim, h->shape, h->data);
    }
    char dir[512];
    make_dir(dir, sizeof dir, "hub");
    const char *meta[] = {"format", "pt", NULL};
    cr_assert_eq(ptm_st_save(dir, NULL, 250, t, 9, meta), PTM_OK, "%s", ptm_last_error());
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert(same_tensors(f, t, 9));
    for (int k = 0; k < 9; k++) {
        const char *mine = strrchr(ptm_st_find(f, names[k])->file, '/') + 1;
        const char *theirs = strrchr(ptm_st_find(hub, names[k])->file, '/') + 1;
        cr_assert_str_eq(mine, theirs, "%s", names[k]);
    }
    cr_assert_str_eq(ptm_st_metadata(f, "format"), "pt");
    cr_assert_eq(count_files(dir), 6, "5 shards and the index");
    cr_assert(!file_exists(dir, "model.safetensors"));
    ptm_st_close(f);
    ptm_st_close(hub);
    remove_dir(dir);
}

/* Offset of t in its file's data buffer: f's first tensor (by offset) starts it. */
static uint64_t data_offset(const ptm_st_file *f, const struct ptm_st_tensor *t)
{
    return (uint64_t)((const char *)t->data - (const char *)ptm_st_at(f, 0)->data);
}

/* The safetensors library orders a file's data by dtype (its enum, descending), then name;
 * ptm_st_save does too, whatever order it is given, so every offset is the library's. */
Test(st_write, lays_out_data_as_the_safetensors_library_does)
{
    ptm_st_file *lib = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("st/all_dtypes.safetensors"), &lib), PTM_OK);
    size_t n = ptm_st_count(lib);
    struct ptm_st_entry t[16];
    cr_assert_leq(n, 16);
    for (size_t k = 0; k < n; k++) { /* the reverse of the library's order */
        const struct ptm_st_tensor *h = ptm_st_at(lib, n - 1 - k);
        t[k] = entry(h->name, h->dtype, h->ndim, h->shape, h->data);
    }
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "layout");
    cr_assert_eq(ptm_st_save(dir, NULL, 0, t, n, NULL), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert(same_tensors(f, t, n));
    for (size_t k = 0; k < n; k++) {
        const struct ptm_st_tensor *h = ptm_st_at(lib, k), *g = ptm_st_find(f, h->name);
        cr_assert_eq(data_offset(f, g), data_offset(lib, h), "%s", h->name);
    }
    ptm_st_close(f);
    ptm_st_close(lib);
    remove_dir(dir);
}

/* huggingface_hub: a tensor larger than the limit gets a shard of its own, created at once. */
Test(st_write, gives_an_oversized_tensor_its_own_shard)
{
    static unsigned char buf[400];
    int64_t s25[] = {25}, s75[] = {75};
    struct ptm_st_entry t[] = {entry("a", PTM_F32, 1, s25, buf), entry("big", PTM_F32, 1, s75, buf),
                               entry("c", PTM_F32, 1, s25, buf + 100)};
    char dir[512];
    make_dir(dir, sizeof dir, "big");
    cr_assert_eq(ptm_st_save(dir, NULL, 250, t, 3, NULL), PTM_OK, "%s", ptm_last_error());
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert(same_tensors(f, t, 3));
    cr_assert_not_null(strstr(ptm_st_find(f, "big")->file, "model-00001-of-00002.safetensors"));
    cr_assert_not_null(strstr(ptm_st_find(f, "a")->file, "model-00002-of-00002.safetensors"));
    cr_assert_not_null(strstr(ptm_st_find(f, "c")->file, "model-00002-of-00002.safetensors"));
    ptm_st_close(f);
    remove_dir(dir);
}

Test(st_write, names_variants_like_transformers)
{
    static unsigned char buf[400];
    int64_t s25[] = {25};
    struct ptm_st_entry t[] = {entry("a", PTM_F32, 1, s25, buf), entry("b", PTM_F32, 1, s25, buf)};
    char dir[512];
    make_dir(dir, sizeof dir, "variant");
    cr_assert_eq(ptm_st_save(dir, NULL, 0, t, 2, NULL), PTM_OK);
    cr_assert_eq(ptm_st_save(dir, "fp16", 150, t, 2, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert(file_exists(dir, "model.safetensors.index.fp16.json"));
    cr_assert(file_exists(dir, "model.fp16-00001-of-00002.safetensors"));
    cr_assert(file_exists(dir, "model.fp16-00002-of-00002.safetensors"));
    cr_assert(file_exists(dir, "model.safetensors"), "the plain checkpoint is left alone");
    cr_assert_eq(count_files(dir), 4);
    cr_assert_eq(ptm_st_save(dir, "fp16", 0, t, 2, NULL), PTM_OK);
    cr_assert(file_exists(dir, "model.fp16.safetensors"));
    cr_assert(file_exists(dir, "model.safetensors"));
    cr_assert_eq(count_files(dir), 2, "the variant's index and shards are removed");
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open_dir(dir, "fp16", &f), PTM_OK);
    cr_assert(same_tensors(f, t, 2));
    ptm_st_close(f);
    remove_dir(dir);
}

/* single -> sharded -> sharded (same names: staged path) -> sharded (fewer) -> single. */
Test(st_write, switches_layouts_and_removes_stale_files)
{
    static unsigned char a[1000], b[1000];
    fill(a, sizeof a, 1);
    fill(b, sizeof b, 2);
    int64_t s50[] = {50};
    struct ptm_st_entry ta[5], tb[5];
    const char *names[5] = {"l.0", "l.1", "l.2", "l.3", "l.4"};
    for (int k = 0; k < 5; k++) {
        ta[k] = entry(names[k], PTM_F32, 1, s50, a + 200 * k);
        tb[k] = entry(names[k], PTM_F32, 1, s50, b + 200 * k);
    }
    char dir[512];
    make_dir(dir, sizeof dir, "switch");
    ptm_st_file *f = NULL;
    const struct {
        const struct ptm_st_entry *t;
        uint64_t max;
        int n_files;
    } steps[] = {{ta, 0, 1}, {tb, 200, 6}, {ta, 200, 6}, {tb, 400, 4}, {ta, 0, 1}, {tb, 0, 1}};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        cr_assert_eq(ptm_st_save(dir, NULL, steps[s].max, steps[s].t, 5, NULL), PTM_OK, "%s",
                     ptm_last_error());
        cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "step %zu: %s", s, ptm_last_error());
        cr_assert(same_tensors(f, steps[s].t, 5), "step %zu", s);
        ptm_st_close(f);
        cr_assert_eq(count_files(dir), steps[s].n_files, "step %zu", s);
        cr_assert_eq(file_exists(dir, "model.safetensors"), steps[s].max == 0, "step %zu", s);
    }
    remove_dir(dir);
}

Test(st_write, parses_size_strings_like_huggingface)
{
    const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"5GB", 5000000000ull},
        {"200MB", 200000000ull},
        {"2GiB", 2ull << 30},
        {"100KB", 100000ull},
        {"10KiB", 10240ull},
        {"12345", 12345ull},
        {"1.5MB", 1500000ull},
        {"5gb", 5000000000ull},
        {"3 MiB", 3ull << 20},
        {"1TB", 1000000000000ull},
        {"0", 0},
        {"7B", 7},
        {"0.5KiB", 512},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        uint64_t v = 1;
        cr_expect_eq(ptm_size_parse(ok[k].s, &v), PTM_OK, "%s", ok[k].s);
        cr_expect_eq(v, ok[k].v, "%s", ok[k].s);
    }
    const char *bad[] = {"",   "GB", "5XB", "-5GB", "5 GB x", "99999999999999999999", "20000000TiB",
                         "1e9"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint64_t v = 77;
        cr_expect_eq(ptm_size_parse(bad[k], &v), PTM_E_INVAL, "%s", bad[k]);
        cr_expect_eq(v, 77);
        cr_expect_not_null(strstr(ptm_last_error(), bad[k]));
    }
}

/* A save that runs out of memory at any allocation leaves a loadable old or new checkpoint. */
Test(st_write, save_survives_every_allocation_failure)
{
    static unsigned char a[600], b[600];
    fill(a, sizeof a, 5);
    fill(b, sizeof b, 6);
    int64_t s25[] = {25};
    struct ptm_st_entry ta[6], tb[6];
    const char *names[6] = {"p.0", "p.1", "p.2", "p.3", "p.4", "p.5"};
    for (int k = 0; k < 6; k++) {
        ta[k] = entry(names[k], PTM_F32, 1, s25, a + 100 * k);
        tb[k] = entry(names[k], PTM_F32, 1, s25, b + 100 * k);
    }
    char dir[512];
    make_dir(dir, sizeof dir, "nomem");
    for (long n = 1;; n++) {
        cr_assert_eq(ptm_st_save(dir, NULL, 200, ta, 6, NULL), PTM_OK, "%s", ptm_last_error());
        ptm__alloc_fail_at(n);
        ptm_status st = ptm_st_save(dir, NULL, 200, tb, 6, NULL);
        long made = ptm__alloc_fail_at(0);
        cr_assert(st == PTM_OK || st == PTM_E_NOMEM, "allocation %ld: %s", n, ptm_last_error());
        ptm_st_file *f = NULL;
        cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "allocation %ld: %s", n,
                     ptm_last_error());
        cr_assert(same_tensors(f, ta, 6) || same_tensors(f, tb, 6), "allocation %ld", n);
        ptm_st_close(f);
        if (made < n) {
            cr_assert_eq(st, PTM_OK);
            break;
        }
    }
    remove_dir(dir);
}

/*
 * Kill test. A holds 8 tensors of 512 KiB; B the same names with other bytes. Each round
 * saves A (single or 1 MiB shards), then a child saves B over and over, alternating layouts,
 * until the parent SIGKILLs it after 0-50 ms. The directory must load as exactly A or B.
 */
#define KILL_ROUNDS  24
#define KILL_TENSORS 8
#define KILL_BYTES   (512u << 10)

Test(st_write, survives_sigkill_during_save, .timeout = 120)
{
    unsigned char *a = malloc((size_t)KILL_TENSORS * KILL_BYTES);
    unsigned char *b = malloc((size_t)KILL_TENSORS * KILL_BYTES);
    fill(a, (size_t)KILL_TENSORS * KILL_BYTES, 3);
    fill(b, (size_t)KILL_TENSORS * KILL_BYTES, 4);
    static const char *names[KILL_TENSORS] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    struct ptm_st_entry ta[KILL_TENSORS], tb[KILL_TENSORS];
    int64_t shape[] = {KILL_BYTES / 4};
    for (int k = 0; k < KILL_TENSORS; k++) {
        ta[k] = entry(names[k], PTM_F32, 1, shape, a + (size_t)k * KILL_BYTES);
        tb[k] = entry(names[k], PTM_F32, 1, shape, b + (size_t)k * KILL_BYTES);
    }
    char dir[512];
    make_dir(dir, sizeof dir, "kill");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int saw_a = 0, saw_b = 0;
    for (int round = 0; round < KILL_ROUNDS; round++) {
        uint64_t max_a = (round / 2) % 2 ? 1u << 20 : 0;
        cr_assert_eq(ptm_st_save(dir, NULL, max_a, ta, KILL_TENSORS, NULL), PTM_OK, "%s",
                     ptm_last_error());
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            for (int j = 0;; j++) {
                uint64_t max_b = (j + round) % 2 ? 1u << 20 : 0;
                if (ptm_st_save(dir, NULL, max_b, tb, KILL_TENSORS, NULL) != PTM_OK) {
                    _exit(3);
                }
            }
        }
        usleep((useconds_t)(rand() % 50000));
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status), "the child failed to save (status %d)", status);
        ptm_st_file *f = NULL;
        cr_assert_eq(ptm_st_open_dir(dir, NULL, &f), PTM_OK, "round %d: %s", round,
                     ptm_last_error());
        int is_a = same_tensors(f, ta, KILL_TENSORS), is_b = same_tensors(f, tb, KILL_TENSORS);
        cr_assert(is_a || is_b, "round %d: the directory holds neither A nor B", round);
        saw_a += is_a;
        saw_b += is_b;
        ptm_st_close(f);
    }
    cr_log_info("kill test: %d rounds ended on A, %d on B", saw_a, saw_b);
    remove_dir(dir);
    free(a);
    free(b);
}
