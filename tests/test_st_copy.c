/*
 * test_st_copy.c - tensor bytes that come from a mapped safetensors file are copied into the
 * new file in the kernel (runtime/st_copy.c): the files are byte for byte those written from
 * memory; a refused copy (EXDEV, ENOSYS, ...) falls back to writing, a disk error fails
 * cleanly; the copy reads the mapped file through its descriptor, so a source replaced or
 * deleted on disk after loading still saves the loaded bytes, and a truncated one is an
 * error, not a crash. A model saved back lays its data out exactly as transformers did. A test hook
 * in libptm fakes the kernel's errors and counts the bytes it copied.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(p) PTM_TEST_FIXTURES "/" p

uint64_t ptm__st_copy_hook(int fail_errno); /* test hook exported by libptm */

#define N_T 4

static const char *const names[N_T] = {"big", "empty", "odd", "small"};
static const int64_t lens[N_T] = {3 << 18, 0, 12345, 7}; /* F32 elements; big is 3 MiB */

static void make_dir(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "%s/st_copy_%s_%d", PTM_TEST_BUILD_DIR, tag, (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    cr_assert_eq(system(cmd), 0);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n + 1);
    cr_assert_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *pa = read_all(a, &na), *pb = read_all(b, &nb);
    cr_assert_eq(na, nb, "%s is %zu bytes, %s %zu", a, na, b, nb);
    cr_assert_eq(memcmp(pa, pb, na), 0, "%s and %s differ", a, b);
    free(pa);
    free(pb);
}

/* Heap tensors with bytes depending on seed, in the order of names. */
static void heap_entries(struct ptm_st_entry *t, unsigned char **bufs, int seed)
{
    for (int k = 0; k < N_T; k++) {
        size_t n = (size_t)lens[k] * 4;
        bufs[k] = malloc(n + 1);
        for (size_t j = 0; j < n; j++) {
            bufs[k][j] = (unsigned char)((j * 29 + (size_t)seed * 101 + j / 509) & 0xff);
        }
        t[k] = (struct ptm_st_entry){.name = names[k],
                                     .dtype = PTM_F32,
                                     .ndim = 1,
                                     .shape = {lens[k]},
                                     .data = bufs[k],
                                     .nbytes = n};
    }
}

static void free_bufs(unsigned char **bufs)
{
    for (int k = 0; k < N_T; k++) {
        free(bufs[k]);
    }
}

/* The same tensors, their data pointing into f's mapping. */
static void mapped_entries(const ptm_st_file *f, const struct ptm_st_entry *like,
                           struct ptm_st_entry *t)
{
    for (int k = 0; k < N_T; k++) {
        const struct ptm_st_tensor *g = ptm_st_find(f, like[k].name);
        cr_assert_not_null(g);
        t[k] = like[k];
        t[k].data = g->data;
    }
}

static uint64_t total_bytes(const struct ptm_st_entry *t)
{
    uint64_t n = 0;
    for (int k = 0; k < N_T; k++) {
        n += t[k].nbytes;
    }
    return n;
}

/* dir/a.safetensors written from memory, dir/b.safetensors from a mapping of a. */
struct fixture {
    char dir[512], a[600], b[600];
    unsigned char *bufs[N_T];
    struct ptm_st_entry heap[N_T], mapped[N_T];
    ptm_st_file *f;
};

static void fixture_open(struct fixture *x, const char *tag)
{
    make_dir(x->dir, sizeof x->dir, tag);
    snprintf(x->a, sizeof x->a, "%s/a.safetensors", x->dir);
    snprintf(x->b, sizeof x->b, "%s/b.safetensors", x->dir);
    heap_entries(x->heap, x->bufs, 1);
    cr_assert_eq(ptm_st_write(x->a, x->heap, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_open(x->a, &x->f), PTM_OK, "%s", ptm_last_error());
    mapped_entries(x->f, x->heap, x->mapped);
    ptm__st_copy_hook(0);
}

static void fixture_close(struct fixture *x)
{
    ptm__st_copy_hook(0);
    ptm_st_close(x->f);
    free_bufs(x->bufs);
    remove_dir(x->dir);
}

Test(st_copy, copies_mapped_tensors_in_the_kernel_bit_identically)
{
    struct fixture x;
    fixture_open(&x, "same");
    cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm__st_copy_hook(0), total_bytes(x.heap), "not every byte was copied in-kernel");
    assert_same_file(x.a, x.b);

    /* Mixed sources in one file, and a sharded save, equal their from-memory twins. */
    struct ptm_st_entry mixed[N_T];
    memcpy(mixed, x.heap, sizeof mixed);
    mixed[0].data = x.mapped[0].data;
    mixed[2].data = x.mapped[2].data;
    cr_assert_eq(ptm_st_write(x.b, mixed, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm__st_copy_hook(0), x.heap[0].nbytes + x.heap[2].nbytes);
    assert_same_file(x.a, x.b);
    char d1[600], d2[600], s1[700], s2[700];
    snprintf(d1, sizeof d1, "%s/from_map", x.dir);
    snprintf(d2, sizeof d2, "%s/from_heap", x.dir);
    cr_assert_eq(mkdir(d1, 0755), 0);
    cr_assert_eq(mkdir(d2, 0755), 0);
    cr_assert_eq(ptm_st_save(d1, NULL, 1 << 20, x.mapped, N_T, NULL), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_st_save(d2, NULL, 1 << 20, x.heap, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    for (int s = 1; s <= 2; s++) {
        snprintf(s1, sizeof s1, "%s/model-%05d-of-00002.safetensors", d1, s);
        snprintf(s2, sizeof s2, "%s/model-%05d-of-00002.safetensors", d2, s);
        assert_same_file(s1, s2);
    }
    fixture_close(&x);
}

Test(st_copy, falls_back_to_writing_when_the_kernel_refuses_the_copy)
{
    static const int refusals[] = {EXDEV, ENOSYS, EINVAL, EOPNOTSUPP};
    struct fixture x;
    fixture_open(&x, "refused");
    for (size_t k = 0; k < sizeof refusals / sizeof refusals[0]; k++) {
        unlink(x.b);
        ptm__st_copy_hook(refusals[k]);
        cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_OK, "%s: %s",
                     strerror(refusals[k]), ptm_last_error());
        cr_assert_eq(ptm__st_copy_hook(0), 0, "%s: bytes copied anyway", strerror(refusals[k]));
        assert_same_file(x.a, x.b);
    }
    fixture_close(&x);
}

Test(st_copy, a_disk_error_during_the_copy_fails_and_leaves_the_file_untouched)
{
    struct fixture x;
    fixture_open(&x, "eio");
    struct ptm_st_entry other[N_T];
    unsigned char *bufs[N_T];
    heap_entries(other, bufs, 2);
    cr_assert_eq(ptm_st_write(x.b, other, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    char keep[600];
    snprintf(keep, sizeof keep, "%s/keep.safetensors", x.dir);
    cr_assert_eq(ptm_st_write(keep, other, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    ptm__st_copy_hook(EIO);
    cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_E_IO);
    ptm__st_copy_hook(0);
    cr_assert_not_null(strstr(ptm_last_error(), "b.safetensors.tmp"), "%s", ptm_last_error());
    cr_assert_not_null(strstr(ptm_last_error(), strerror(EIO)), "%s", ptm_last_error());
    assert_same_file(x.b, keep);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", x.b);
    cr_assert_neq(access(tmp, F_OK), 0, "%s left behind", tmp);
    free_bufs(bufs);
    fixture_close(&x);
}

Test(st_copy, saves_the_loaded_bytes_after_the_source_is_replaced_on_disk)
{
    struct fixture x;
    fixture_open(&x, "replaced");
    struct ptm_st_entry other[N_T];
    unsigned char *bufs[N_T];
    heap_entries(other, bufs, 3);
    /* a.safetensors now names another file with other bytes; the mapping keeps the old one. */
    cr_assert_eq(ptm_st_write(x.a, other, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm__st_copy_hook(0), total_bytes(x.heap));
    ptm_st_file *g = NULL;
    cr_assert_eq(ptm_st_open(x.b, &g), PTM_OK, "%s", ptm_last_error());
    for (int k = 0; k < N_T; k++) {
        const struct ptm_st_tensor *t = ptm_st_find(g, names[k]);
        cr_assert_not_null(t);
        cr_assert_eq(memcmp(t->data, x.bufs[k], x.heap[k].nbytes), 0, "%s", names[k]);
    }
    ptm_st_close(g);
    /* Deleted outright: still the loaded bytes. */
    cr_assert_eq(unlink(x.a), 0);
    cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_open(x.b, &g), PTM_OK, "%s", ptm_last_error());
    for (int k = 0; k < N_T; k++) {
        const struct ptm_st_tensor *t = ptm_st_find(g, names[k]);
        cr_assert_eq(memcmp(t->data, x.bufs[k], x.heap[k].nbytes), 0, "%s", names[k]);
    }
    ptm_st_close(g);
    free_bufs(bufs);
    fixture_close(&x);
}

Test(st_copy, a_source_truncated_after_loading_is_an_error_not_a_crash)
{
    struct fixture x;
    fixture_open(&x, "truncated");
    cr_assert_eq(truncate(x.a, 8), 0);
    cr_assert_eq(ptm_st_write(x.b, x.mapped, N_T, NULL), PTM_E_IO);
    cr_assert_not_null(strstr(ptm_last_error(), "a.safetensors"), "%s", ptm_last_error());
    cr_assert_not_null(strstr(ptm_last_error(), "truncated"), "%s", ptm_last_error());
    cr_assert_neq(access(x.b, F_OK), 0);
    fixture_close(&x); /* the mapping is never touched again */
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

Test(st_copy, a_mapping_holds_one_descriptor_until_closed)
{
    struct fixture x;
    fixture_open(&x, "fds");
    int before = count_fds();
    ptm_st_file *g[8];
    for (int k = 0; k < 8; k++) {
        cr_assert_eq(ptm_st_open(x.a, &g[k]), PTM_OK, "%s", ptm_last_error());
    }
    cr_assert_eq(count_fds(), before + 8);
    for (int k = 0; k < 8; k++) {
        ptm_st_close(g[k]);
    }
    cr_assert_eq(count_fds(), before);
    fixture_close(&x);
}

/* save_pretrained of a loaded model, into the directory it came from, while the file it
 * mapped is replaced and then deleted by saves of its own: each save writes the loaded bytes. */
Test(st_copy, a_model_saved_over_its_own_checkpoint_keeps_its_loaded_bytes)
{
    char dir[512], cmd[1200], path[600];
    make_dir(dir, sizeof dir, "model");
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'", FIXTURE("bert-tiny-bf16"), dir);
    cr_assert_eq(system(cmd), 0);
    struct ptm_load_opts o = {.struct_size = sizeof o, .dtype = "auto"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(dir, &o, &m), PTM_OK, "%s", ptm_last_error());
    struct ptm_save_opts f32 = {.struct_size = sizeof f32, .dtype = "float32"};
    cr_assert_eq(ptm_model_save(m, dir, &f32), PTM_OK, "%s", ptm_last_error());
    ptm__st_copy_hook(0);
    cr_assert_eq(ptm_model_save(m, dir, NULL), PTM_OK, "%s", ptm_last_error());
    cr_assert_gt(ptm__st_copy_hook(0), 0, "the loaded weights were not copied in-kernel");
    ptm_st_file *a = NULL, *b = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("bert-tiny-bf16/model.safetensors"), &a), PTM_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(ptm_st_open(path, &b), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_count(a), ptm_st_count(b));
    for (size_t i = 0; i < ptm_st_count(a); i++) {
        const struct ptm_st_tensor *ta = ptm_st_at(a, i), *tb = ptm_st_find(b, ta->name);
        cr_assert_not_null(tb, "%s not saved", ta->name);
        cr_assert_eq(ta->dtype, tb->dtype, "%s", ta->name);
        cr_assert_eq(ta->nbytes, tb->nbytes, "%s", ta->name);
        cr_assert_eq(memcmp(ta->data, tb->data, ta->nbytes), 0, "%s differs", ta->name);
        /* transformers wrote a: the saved data buffer is its data buffer, byte for byte. */
        cr_assert_eq((const char *)tb->data - (const char *)ptm_st_at(b, 0)->data,
                     (const char *)ta->data - (const char *)ptm_st_at(a, 0)->data, "%s", ta->name);
    }
    ptm_st_close(a);
    ptm_st_close(b);
    ptm_model_free(m);
    remove_dir(dir);
}
