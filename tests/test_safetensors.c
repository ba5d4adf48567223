/*
 * test_safetensors.c - the safetensors reader (runtime/safetensors.c, safetensors_index.c):
 * good files written by the Python safetensors library and huggingface_hub, the bad-file
 * corpus in tests/fixtures/bad (one file per fault, made by tools/make_bad_safetensors.py),
 * memory images, and that opening never touches the data pages.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define FIXTURE(p) PTM_TEST_FIXTURES "/" p

long ptm__alloc_fail_at(long n); /* test hook exported by libptm */

/* The byte pattern of tools/make_bad_safetensors.py. */
static unsigned char pattern_byte(int seed, size_t j, int is_bool)
{
    return is_bool ? (unsigned char)(j & 1)
                   : (unsigned char)((j * 31 + (size_t)seed * 7 + 3) & 0xff);
}

/* Check every tensor listed in an .expect sidecar; returns how many were checked. */
static size_t check_expect(const ptm_st_file *f, const char *expect_path)
{
    FILE *fp = fopen(expect_path, "r");
    cr_assert_not_null(fp, "%s", expect_path);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        if (line[0] == '#') {
            continue;
        }
        char name[128], dtype[16];
        int ndim, pos;
        cr_assert_eq(sscanf(line, "%127s %15s %d%n", name, dtype, &ndim, &pos), 3);
        const struct ptm_st_tensor *t = ptm_st_find(f, name);
        cr_assert_not_null(t, "tensor %s missing", name);
        cr_assert_str_eq(ptm_dtype_name(t->dtype), dtype);
        cr_assert_eq(t->ndim, ndim);
        uint64_t count = 1;
        char *p = line + pos;
        for (int d = 0; d < ndim; d++) {
            long dim = strtol(p, &p, 10);
            cr_assert_eq(t->shape[d], dim, "%s shape[%d]", name, d);
            count *= (uint64_t)dim;
        }
        int seed = (int)strtol(p, NULL, 10);
        cr_assert_eq(t->nbytes, count * ptm_dtype_size(t->dtype));
        const unsigned char *b = t->data;
        for (uint64_t j = 0; j < t->nbytes; j++) {
            cr_assert_eq(b[j], pattern_byte(seed, j, t->dtype == PTM_BOOL), "%s byte %lu", name,
                         (unsigned long)j);
        }
        n++;
    }
    fclose(fp);
    return n;
}

Test(safetensors, reads_every_dtype_written_by_python_safetensors)
{
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("st/all_dtypes.safetensors"), &f), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(check_expect(f, FIXTURE("st/all_dtypes.expect")), ptm_st_count(f));
    cr_assert_str_eq(ptm_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(ptm_st_metadata(f, "note"), "caf\xc3\xa9 \xe2\x9c\x93");
    cr_assert_null(ptm_st_metadata(f, "absent"));
    cr_assert_null(ptm_st_find(f, "absent"));
    cr_assert_null(ptm_st_at(f, ptm_st_count(f)));
    for (size_t k = 1; k < ptm_st_count(f); k++) {
        const char *prev = ptm_st_at(f, k - 1)->data, *cur = ptm_st_at(f, k)->data;
        cr_assert(prev <= cur, "ptm_st_at is ordered by offset");
        cr_assert_str_eq(ptm_st_at(f, k)->file, FIXTURE("st/all_dtypes.safetensors"));
    }
    ptm_st_close(f);
}

Test(safetensors, reads_sharded_set_written_by_huggingface_hub)
{
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(FIXTURE("st/sharded/model.safetensors.index.json"), &f), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert_eq(ptm_st_count(f), 9);
    cr_assert_eq(check_expect(f, FIXTURE("st/sharded/sharded.expect")), 9);
    cr_assert_str_eq(ptm_st_metadata(f, "format"), "pt");
    const struct ptm_st_tensor *t = ptm_st_find(f, "w.8");
    cr_assert_not_null(strstr(t->file, "model-00005-of-00005.safetensors"));
    for (size_t k = 1; k < ptm_st_count(f); k++) {
        cr_assert(strcmp(ptm_st_at(f, k - 1)->file, ptm_st_at(f, k)->file) <= 0);
    }
    ptm_st_close(f);
    cr_assert_eq(ptm_st_open_dir(FIXTURE("st/sharded"), NULL, &f), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_st_count(f), 9);
    ptm_st_close(f);
}

Test(safetensors, open_dir_reports_missing_checkpoint)
{
    ptm_st_file *f = (ptm_st_file *)1;
    cr_assert_eq(ptm_st_open_dir(FIXTURE("st"), "nope", &f), PTM_E_NOT_FOUND);
    cr_assert_null(f);
    cr_assert_not_null(strstr(ptm_last_error(), "model.nope.safetensors"));
    cr_assert_eq(ptm_st_open_dir(FIXTURE("st"), "../x", &f), PTM_E_INVAL);
}

static void *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = malloc(*n ? *n : 1);
    cr_assert_eq(fread(buf, 1, *n, fp), *n);
    fclose(fp);
    return buf;
}

Test(safetensors, opens_memory_image_without_copying)
{
    size_t n;
    unsigned char *buf = slurp(FIXTURE("st/all_dtypes.safetensors"), &n);
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open_memory(buf, n, "mem", &f), PTM_OK, "%s", ptm_last_error());
    check_expect(f, FIXTURE("st/all_dtypes.expect"));
    for (size_t k = 0; k < ptm_st_count(f); k++) {
        const unsigned char *d = ptm_st_at(f, k)->data;
        cr_assert(d >= buf && d <= buf + n);
        cr_assert_str_eq(ptm_st_at(f, k)->file, "mem");
    }
    ptm_st_close(f);
    free(buf);
    ptm_st_close(NULL);
    cr_assert_eq(ptm_st_count(NULL), 0);
}

Test(safetensors, rejects_null_arguments)
{
    ptm_st_file *f = (ptm_st_file *)1;
    cr_assert_eq(ptm_st_open(NULL, &f), PTM_E_INVAL);
    cr_assert_null(f);
    cr_assert_eq(ptm_st_open(FIXTURE("st/all_dtypes.safetensors"), NULL), PTM_E_INVAL);
}

Test(safetensors, reports_io_error_for_missing_file)
{
    ptm_st_file *f = (ptm_st_file *)1;
    cr_assert_eq(ptm_st_open(FIXTURE("bad/absent.safetensors"), &f), PTM_E_IO);
    cr_assert_null(f);
    cr_assert_not_null(strstr(ptm_last_error(), "absent.safetensors"));
}

/*
 * Opening is O(header): the data pages of a 64 MiB sparse file must not be in the page cache
 * after ptm_st_open (checked with mincore on the far end of the mapping, past any readahead).
 */
Test(safetensors, open_does_not_touch_data_pages)
{
    char path[] = "/tmp/ptm_st_sparse_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const uint64_t data = 64u << 20;
    char hdr[128];
    int h = snprintf(hdr, sizeof hdr,
                     "{\"big\":{\"dtype\":\"U8\",\"shape\":[%lu],\"data_offsets\":[0,%lu]}}",
                     (unsigned long)data, (unsigned long)data);
    while (h % 8) {
        hdr[h++] = ' ';
    }
    unsigned char len8[8] = {(unsigned char)h};
    cr_assert_eq(write(fd, len8, 8), 8);
    cr_assert_eq(write(fd, hdr, (size_t)h), h);
    cr_assert_eq(ftruncate(fd, (off_t)(8 + h + data)), 0);
    close(fd);
    ptm_st_file *f = NULL;
    cr_assert_eq(ptm_st_open(path, &f), PTM_OK, "%s", ptm_last_error());
    const struct ptm_st_tensor *t = ptm_st_find(f, "big");
    cr_assert_eq(t->nbytes, data);
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)t->data + (32u << 20)) & ~(uintptr_t)(page - 1);
    size_t len = (size_t)(16u << 20);
    unsigned char *vec = malloc(len / (size_t)page);
    cr_assert_eq(mincore((void *)lo, len, vec), 0);
    size_t resident = 0;
    for (size_t k = 0; k < len / (size_t)page; k++) {
        resident += vec[k] & 1;
    }
    cr_assert_eq(resident, 0, "%zu data pages were read at open", resident);
    free(vec);
    ptm_st_close(f);
    unlink(path);
}

/* One row per file in tests/fixtures/bad: the status and a word the message must hold. */
static const struct bad_case {
    const char *file;
    ptm_status st;
    const char *word;
} bad_cases[] = {
    {"empty_file.safetensors", PTM_E_FORMAT, "smaller than the 8-byte"},
    {"too_small.safetensors", PTM_E_FORMAT, "smaller than the 8-byte"},
    {"header_past_eof.safetensors", PTM_E_FORMAT, "exceeds file size"},
    {"header_too_large.safetensors", PTM_E_FORMAT, "exceeds the limit"},
    {"not_utf8.safetensors", PTM_E_FORMAT, "invalid UTF-8"},
    {"overlong_utf8.safetensors", PTM_E_FORMAT, "invalid UTF-8"},
    {"not_json.safetensors", PTM_E_FORMAT, "JSON"},
    {"not_object.safetensors", PTM_E_FORMAT, "expected a JSON object"},
    {"entry_not_object.safetensors", PTM_E_FORMAT, "entry is a number"},
    {"missing_dtype.safetensors", PTM_E_FORMAT, "missing field dtype"},
    {"missing_shape.safetensors", PTM_E_FORMAT, "missing field shape"},
    {"missing_offsets.safetensors", PTM_E_FORMAT, "missing field data_offsets"},
    {"dtype_not_string.safetensors", PTM_E_FORMAT, "dtype is a number"},
    {"bad_dtype.safetensors", PTM_E_FORMAT, "unknown dtype \"F33\""},
    {"dtype_alias.safetensors", PTM_E_FORMAT, "unknown dtype \"float32\""},
    {"shape_not_array.safetensors", PTM_E_FORMAT, "shape is a number"},
    {"shape_negative.safetensors", PTM_E_FORMAT, "negative"},
    {"shape_float.safetensors", PTM_E_FORMAT, "not an integer"},
    {"shape_overflow.safetensors", PTM_E_FORMAT, "overflows"},
    {"too_many_dims.safetensors", PTM_E_FORMAT, "9 dimensions"},
    {"size_mismatch.safetensors", PTM_E_FORMAT, "size mismatch"},
    {"begin_after_end.safetensors", PTM_E_FORMAT, "begin 8 > end 4"},
    {"offsets_past_eof.safetensors", PTM_E_FORMAT, "past the end"},
    {"offsets_wrong_len.safetensors", PTM_E_FORMAT, "array of 2 integers"},
    {"offsets_negative.safetensors", PTM_E_FORMAT, "data_offsets[0]"},
    {"offsets_huge.safetensors", PTM_E_FORMAT, "data_offsets[1]"},
    {"overlap.safetensors", PTM_E_FORMAT, "overlap"},
    {"gap.safetensors", PTM_E_FORMAT, "gap"},
    {"first_not_zero.safetensors", PTM_E_FORMAT, "gap"},
    {"trailing_bytes.safetensors", PTM_E_FORMAT, "trailing bytes"},
    {"dup_name.safetensors", PTM_E_FORMAT, "duplicate key \"a\""},
    {"metadata_not_object.safetensors", PTM_E_FORMAT, "__metadata__ is a string"},
    {"metadata_not_string.safetensors", PTM_E_FORMAT, "not a string"},
    {"unknown_field.safetensors", PTM_E_FORMAT, "unknown field \"extra\""},
    {"trailing_garbage.safetensors", PTM_E_FORMAT, "trailing characters"},
    {"nul_padding.safetensors", PTM_E_FORMAT, "trailing characters"},
    {"deep_nesting.safetensors", PTM_E_FORMAT, "nesting"},
    {"bad_escape.safetensors", PTM_E_FORMAT, "invalid escape"},
    {"lone_surrogate.safetensors", PTM_E_FORMAT, "surrogate"},
    {"nul_escape.safetensors", PTM_E_FORMAT, "NUL"},
    {"control_in_string.safetensors", PTM_E_FORMAT, "control character"},
    {"leading_zero.safetensors", PTM_E_FORMAT, "leading zero"},
    {"part_good.safetensors", PTM_OK, NULL},
    {"part_bad.safetensors", PTM_E_FORMAT, "gap"},
    {"index_traversal.safetensors.index.json", PTM_E_FORMAT, "hostile path"},
    {"index_absolute.safetensors.index.json", PTM_E_FORMAT, "hostile path"},
    {"index_dotdot.safetensors.index.json", PTM_E_FORMAT, "hostile path"},
    {"index_missing_shard.safetensors.index.json", PTM_E_IO, "part_absent.safetensors"},
    {"index_tensor_missing.safetensors.index.json", PTM_E_FORMAT,
     "\"zz\" not found in shard part_good.safetensors"},
    {"index_bad_shard.safetensors.index.json", PTM_E_FORMAT, "part_bad.safetensors"},
    {"index_no_weight_map.safetensors.index.json", PTM_E_FORMAT, "weight_map is missing"},
    {"index_weight_map_not_string.safetensors.index.json", PTM_E_FORMAT, "expected a string"},
    {"index_total_size_negative.safetensors.index.json", PTM_E_FORMAT, "total_size"},
    {"index_total_size_float.safetensors.index.json", PTM_E_FORMAT, "total_size"},
    {"index_not_json.safetensors.index.json", PTM_E_FORMAT, "JSON"},
    {"index_dup_key.safetensors.index.json", PTM_E_FORMAT, "duplicate key"},
    {"index_not_object.safetensors.index.json", PTM_E_FORMAT, "expected an object"},
    {"index_ok.safetensors.index.json", PTM_OK, NULL},
};
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

Test(safetensors, rejects_each_bad_file_with_its_fault)
{
    size_t n_bad = 0;
    for (size_t k = 0; k < N_BAD; k++) {
        const struct bad_case *c = &bad_cases[k];
        char path[512];
        snprintf(path, sizeof path, "%s/bad/%s", PTM_TEST_FIXTURES, c->file);
        ptm_st_file *f = (ptm_st_file *)1;
        ptm_status st = ptm_st_open(path, &f);
        cr_expect_eq(st, c->st, "%s: got %s (%s)", c->file, ptm_status_name(st), ptm_last_error());
        if (c->st == PTM_OK) {
            cr_expect_not_null(f, "%s", c->file);
            ptm_st_close(f);
            continue;
        }
        n_bad++;
        cr_expect_null(f, "%s: out-param not NULL", c->file);
        cr_expect_not_null(strstr(ptm_last_error(), c->file), "%s: message lacks the file: %s",
                           c->file, ptm_last_error());
        cr_expect_not_null(strstr(ptm_last_error(), c->word), "%s: message lacks \"%s\": %s",
                           c->file, c->word, ptm_last_error());
    }
    cr_expect_geq(n_bad, 30);
}

/* The same images through ptm_st_open_memory: same status, label in the message. */
Test(safetensors, rejects_each_bad_image_in_memory)
{
    for (size_t k = 0; k < N_BAD; k++) {
        const struct bad_case *c = &bad_cases[k];
        if (strstr(c->file, ".json") != NULL) {
            continue;
        }
        char path[512];
        size_t n;
        snprintf(path, sizeof path, "%s/bad/%s", PTM_TEST_FIXTURES, c->file);
        void *buf = slurp(path, &n);
        ptm_st_file *f = (ptm_st_file *)1;
        cr_expect_eq(ptm_st_open_memory(buf, n, c->file, &f), c->st, "%s: %s", c->file,
                     ptm_last_error());
        if (c->st != PTM_OK) {
            cr_expect_null(f);
            cr_expect_not_null(strstr(ptm_last_error(), c->word), "%s", c->file);
        }
        ptm_st_close(c->st == PTM_OK ? f : NULL);
        free(buf);
    }
}

Test(safetensors, bad_corpus_has_no_untested_file)
{
    DIR *d = opendir(PTM_TEST_FIXTURES "/bad");
    cr_assert_not_null(d);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        int listed = 0;
        for (size_t k = 0; k < N_BAD; k++) {
            listed |= strcmp(bad_cases[k].file, de->d_name) == 0;
        }
        cr_expect(listed, "%s is not in bad_cases", de->d_name);
        n++;
    }
    closedir(d);
    cr_expect_eq(n, N_BAD);
}

/* Every allocation of an open, single or sharded, may fail: NOMEM, NULL out, no leak (ASan). */
Test(safetensors, open_survives_every_allocation_failure)
{
    const char *paths[] = {FIXTURE("st/all_dtypes.safetensors"),
                           FIXTURE("st/sharded/model.safetensors.index.json"),
                           FIXTURE("bad/index_tensor_missing.safetensors.index.json")};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        for (long n = 1;; n++) {
            ptm__alloc_fail_at(n);
            ptm_st_file *f = (ptm_st_file *)1;
            ptm_status st = ptm_st_open(paths[p], &f);
            long made = ptm__alloc_fail_at(0);
            if (made < n) {
                cr_assert_neq(st, PTM_E_NOMEM, "%s", paths[p]);
                ptm_st_close(f);
                break;
            }
            cr_assert_eq(st, PTM_E_NOMEM, "%s: allocation %ld: %s", paths[p], n, ptm_last_error());
            cr_assert_null(f);
        }
    }
}
