/*
 * test_hub.c - the Hub client (runtime/hub.c, hub_http.c, hub_fetch.c, hub_cache.c) against
 * tests/hub_server.py, a local stand-in for the Hub on 127.0.0.1 with a second "CDN" port
 * reached as localhost. Each test builds the repos from fixtures in a fresh temporary
 * directory, starts the server, points HF_ENDPOINT and HF_HUB_CACHE at them, and switches
 * the server's faults through its control endpoint. Nothing here reaches another address.
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include "hub_test_server.h"
#include "ptm/ptm.h"

#define TINY_ST PTM_TEST_FIXTURES "/bert-tiny/model.safetensors"

static char cache[300];

static void start_server(void)
{
    hub_server_start("ptm_hub_test_");
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    setenv("HF_HUB_CACHE", cache, 1);
    setenv("PTM_HUB_STALL_S", "5", 1);
    unsetenv("HF_TOKEN");
}

static int path_exists(const char *fmt, const char *a, const char *b)
{
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof path, fmt, a, b);
    return lstat(path, &sb) == 0;
}

static char *snapshot(const char *repo, const char *revision)
{
    struct ptm_hub_opts o = {.struct_size = sizeof o, .revision = revision};
    char *dir = NULL;
    cr_assert_eq(ptm_hub_snapshot(repo, &o, &dir), PTM_OK, "%s: %s", repo, ptm_last_error());
    cr_assert_not_null(dir);
    return dir;
}

TestSuite(hub, .init = start_server, .fini = stop_server, .timeout = 30);

Test(hub, downloads_single_file_checkpoint_in_hf_layout)
{
    char *dir = snapshot("acme/tiny", NULL);
    char path[1024], link[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ssize_t n = readlink(path, link, sizeof link - 1);
    cr_assert_gt(n, 0, "%s is not a symlink", path);
    link[n] = '\0';
    cr_assert_eq(strncmp(link, "../../blobs/", 12), 0, "link %s", link);
    cr_assert(same_file(path, TINY_ST));
    cr_assert(path_exists("%s/models--acme--tiny/refs/%s", cache, "main"));
    cr_assert(strstr(dir, "/models--acme--tiny/snapshots/") != NULL, "%s", dir);
    ptm_free(dir);
}

Test(hub, model_load_fetches_a_sharded_checkpoint_by_repo_id)
{
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("acme/sharded", NULL, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_gt(ptm_model_n_params(m), 0);
    ptm_model_free(m);
    cr_assert_geq(count("role=cdn&method=GET&path=model-0000"), 5);
    /* Loaded again offline, it comes from the cache alone. */
    long before = count("role=hub&path=/resolve/");
    struct ptm_load_opts o = {.struct_size = sizeof o, .local_files_only = 1};
    cr_assert_eq(ptm_model_load("acme/sharded", &o, &m), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
    cr_assert_eq(count("role=hub&path=/resolve/"), before);
}

Test(hub, nested_file_links_climb_one_level_per_directory)
{
    char *dir = snapshot("acme/sharded", NULL);
    char path[1024], link[256];
    snprintf(path, sizeof path, "%s/1_Pooling/config.json", dir);
    ssize_t n = readlink(path, link, sizeof link - 1);
    cr_assert_gt(n, 0);
    link[n] = '\0';
    cr_assert_eq(strncmp(link, "../../../blobs/", 15), 0, "link %s", link);
    ptm_free(dir);
}

Test(hub, revisions_are_pinned_to_their_own_snapshots)
{
    char *main_dir = snapshot("acme/tiny", "main");
    char *v2_dir = snapshot("acme/tiny", "v2");
    cr_assert_str_neq(main_dir, v2_dir);
    cr_assert(path_exists("%s/models--acme--tiny/refs/%s", cache, "v2"));
    /* Asking by commit writes no ref named after the commit. */
    const char *commit = strrchr(main_dir, '/') + 1;
    char *again = snapshot("acme/tiny", commit);
    cr_assert_str_eq(again, main_dir);
    cr_assert(!path_exists("%s/models--acme--tiny/refs/%s", cache, commit));
    ptm_model *m = NULL;
    struct ptm_load_opts o = {.struct_size = sizeof o, .revision = "v2"};
    cr_assert_eq(ptm_model_load("acme/tiny", &o, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_str_eq(ptm_model_dir(m), v2_dir);
    ptm_model_free(m);
    ptm_free(main_dir);
    ptm_free(v2_dir);
    ptm_free(again);
}

Test(hub, resumes_a_cut_download_with_a_range_request)
{
    ctl("set?truncate=1");
    char *dir = snapshot("acme/tiny", NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert(same_file(path, TINY_ST));
    cr_assert_geq(count("header=range"), 1, "no Range request after the cut");
    ptm_free(dir);
}

Test(hub, retries_after_a_connection_reset)
{
    ctl("set?reset=1");
    char *dir = snapshot("acme/tiny", NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert(same_file(path, TINY_ST));
    ptm_free(dir);
}

Test(hub, retries_server_errors_then_succeeds)
{
    ctl("set?fail500=3");
    char *dir = snapshot("acme/tiny", NULL);
    ptm_free(dir);
}

Test(hub, retries_a_stalled_request)
{
    setenv("PTM_HUB_STALL_S", "1", 1);
    ctl("set?stall=1");
    char *dir = snapshot("acme/tiny", NULL);
    cr_assert_geq(count("path=/acme/tiny/resolve/main/config.json"), 2);
    ptm_free(dir);
}

Test(hub, gives_up_after_bounded_retries)
{
    ctl("set?fail500=1000");
    char *dir = (char *)1;
    cr_assert_eq(ptm_hub_snapshot("acme/tiny", NULL, &dir), PTM_E_NETWORK);
    cr_assert_null(dir);
    cr_assert(strstr(ptm_last_error(), "500") != NULL, "%s", ptm_last_error());
    long n = count("path=/acme/tiny/");
    cr_assert_leq(n, 5, "%ld requests", n);
}

Test(hub, rejects_a_sha256_mismatch_and_leaves_nothing)
{
    ctl("set?badsha=1");
    char *dir = (char *)1;
    cr_assert_eq(ptm_hub_snapshot("acme/tiny", NULL, &dir), PTM_E_FORMAT);
    cr_assert_null(dir);
    cr_assert(strstr(ptm_last_error(), "sha256") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "model.safetensors") != NULL, "%s", ptm_last_error());
    char blobs[512];
    snprintf(blobs, sizeof blobs, "%s/models--acme--tiny/blobs", cache);
    const char *sha = "1b01b5cabec56d2f61a32ce47af81350a8e9a127115a4455811cffa263700cb7";
    cr_assert(!path_exists("%s/%s", blobs, sha));
    cr_assert(!path_exists("%s/%s.incomplete", blobs, sha));
}

Test(hub, two_processes_download_one_blob_safely)
{
    ctl("set?slow_ms=30");
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            char *dir = NULL;
            _exit(ptm_hub_snapshot("acme/tiny", NULL, &dir) == PTM_OK ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        cr_assert_eq(waitpid(kids[i], &status, 0), kids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
    }
    char *dir = snapshot("acme/tiny", NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert(same_file(path, TINY_ST));
    const char *sha = "1b01b5cabec56d2f61a32ce47af81350a8e9a127115a4455811cffa263700cb7";
    cr_assert(!path_exists("%s/models--acme--tiny/blobs/%s.incomplete", cache, sha));
    cr_assert_leq(count("role=cdn&method=GET"), 2);
    ptm_free(dir);
}

Test(hub, offline_mode_uses_the_cache_and_names_what_is_missing)
{
    char *dir = snapshot("acme/tiny", NULL);
    long before = count("role=hub");
    setenv("HF_HUB_OFFLINE", "1", 1);
    char *again = snapshot("acme/tiny", NULL);
    cr_assert_str_eq(again, dir);
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("acme/tiny", NULL, &m), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
    char *none = (char *)1;
    cr_assert_eq(ptm_hub_snapshot("acme/sharded", NULL, &none), PTM_E_NOT_FOUND);
    cr_assert_null(none);
    cr_assert(strstr(ptm_last_error(), "offline") != NULL, "%s", ptm_last_error());
    const char *inc[] = {"missing.bin", NULL};
    struct ptm_hub_opts o = {.struct_size = sizeof o, .include = inc};
    cr_assert_eq(ptm_hub_download("acme/tiny", &o, &none), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "missing.bin") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "offline") != NULL, "%s", ptm_last_error());
    cr_assert_eq(count("role=hub"), before, "offline mode reached the server: %ld, %ld", before,
                 count("role=hub"));
    unsetenv("HF_HUB_OFFLINE");
    struct ptm_load_opts lo = {.struct_size = sizeof lo, .local_files_only = 1};
    cr_assert_eq(ptm_model_load("acme/sharded", &lo, &m), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "offline") != NULL, "%s", ptm_last_error());
    ptm_free(dir);
    ptm_free(again);
}

Test(hub, token_reaches_the_endpoint_host_only)
{
    ctl("set?private=acme/tiny&token=s3cret");
    setenv("HF_TOKEN", "s3cret", 1);
    char *dir = snapshot("acme/tiny", NULL);
    ptm_free(dir);
    cr_assert_gt(count("role=hub&header=authorization"), 0);
    cr_assert_gt(count("role=cdn"), 0);
    cr_assert_eq(count("role=cdn&header=authorization"), 0, "the token went to the CDN host");
}

Test(hub, token_file_in_hf_home_is_used)
{
    ctl("set?private=acme/tiny&token=fromfile");
    char path[512];
    snprintf(path, sizeof path, "%s/hf_home", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/hf_home/token", tmp);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("fromfile\n", f);
    fclose(f);
    char *dir = snapshot("acme/tiny", NULL);
    ptm_free(dir);
}

Test(hub, refuses_hostile_shard_names_in_an_index)
{
    char *dir = (char *)1;
    cr_assert_eq(ptm_hub_snapshot("acme/hostile", NULL, &dir), PTM_E_FORMAT);
    cr_assert_null(dir);
    cr_assert(strstr(ptm_last_error(), "evil.safetensors") != NULL, "%s", ptm_last_error());
    cr_assert_eq(count("path=evil"), 0);
    cr_assert(!path_exists("%s/%s", tmp, "evil.safetensors"));
}

Test(hub, refuses_hostile_names_in_the_file_list)
{
    ctl("set?extra_sibling=../../escape.txt");
    char *dir = (char *)1;
    cr_assert_eq(ptm_hub_download("acme/tiny", NULL, &dir), PTM_E_FORMAT);
    cr_assert_null(dir);
    cr_assert(strstr(ptm_last_error(), "escape.txt") != NULL, "%s", ptm_last_error());
    cr_assert_eq(count("path=escape"), 0);
}

Test(hub, errors_name_the_repo_revision_or_file)
{
    char *dir = NULL;
    cr_assert_eq(ptm_hub_snapshot("acme/nope", NULL, &dir), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "acme/nope") != NULL, "%s", ptm_last_error());
    struct ptm_hub_opts o = {.struct_size = sizeof o, .revision = "nope"};
    cr_assert_eq(ptm_hub_snapshot("acme/tiny", &o, &dir), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "revision \"nope\"") != NULL, "%s", ptm_last_error());
    cr_assert_eq(ptm_hub_snapshot("acme/notmodel", NULL, &dir), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "not a model repo") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "config.json") != NULL, "%s", ptm_last_error());
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("acme/nope", NULL, &m), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "tried") != NULL, "%s", ptm_last_error());
}

Test(hub, private_and_gated_repos_say_a_token_is_needed)
{
    char *dir = NULL;
    ctl("set?private=acme/tiny&token=t");
    cr_assert_eq(ptm_hub_snapshot("acme/tiny", NULL, &dir), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "acme/tiny") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "401") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "HF_TOKEN") != NULL, "%s", ptm_last_error());
    ctl("set?private=&gated=acme/tiny");
    setenv("HF_TOKEN", "wrong", 1);
    cr_assert_eq(ptm_hub_snapshot("acme/tiny", NULL, &dir), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "gated") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "token sent does not grant access") != NULL, "%s",
              ptm_last_error());
}

Test(hub, absent_optional_files_get_no_exist_markers)
{
    char *dir = snapshot("acme/tiny", NULL);
    const char *commit = strrchr(dir, '/') + 1;
    cr_assert(path_exists("%s/models--acme--tiny/.no_exist/%s/vocab.txt", cache, commit));
    cr_assert(path_exists("%s/models--acme--tiny/.no_exist/%s/tokenizer.json", cache, commit));
    cr_assert(!path_exists("%s/models--acme--tiny/.no_exist/%s/config.json", cache, commit));
    ptm_free(dir);
}

Test(hub, download_filters_the_repo_with_include_globs)
{
    const char *inc[] = {"*.json", NULL};
    struct ptm_hub_opts o = {.struct_size = sizeof o, .include = inc};
    char *dir = NULL;
    cr_assert_eq(ptm_hub_download("acme/sharded", &o, &dir), PTM_OK, "%s", ptm_last_error());
    cr_assert(path_exists("%s/%s", dir, "model.safetensors.index.json"));
    cr_assert(path_exists("%s/%s", dir, "1_Pooling/config.json"));
    cr_assert(!path_exists("%s/%s", dir, "model-00001-of-00005.safetensors"));
    ptm_free(dir);
}

static void on_progress(const char *file, uint64_t done, uint64_t total, void *user)
{
    if (strcmp(file, "model.safetensors") == 0 && done == total && total > 0) {
        (*(int *)user)++;
    }
}

Test(hub, reports_progress_to_the_host_callback)
{
    int finished = 0;
    ptm_hub_set_progress(on_progress, &finished);
    char *dir = snapshot("acme/tiny", NULL);
    ptm_hub_set_progress(NULL, NULL);
    cr_assert_eq(finished, 1);
    ptm_free(dir);
}

/* Test hook exported by libptm (runtime/alloc.h). */
PTM_API long ptm__alloc_fail_at(long n);

Test(hub, allocation_failures_return_nomem_cleanly)
{
    const char *repos_to_try[] = {"acme/sharded", "acme/tiny"};
    for (int r = 0; r < 2; r++) {
        for (long n = 1; n < 200; n++) {
            char *dir = (char *)1;
            ptm__alloc_fail_at(n);
            ptm_status st = r == 0 ? ptm_hub_snapshot(repos_to_try[r], NULL, &dir)
                                   : ptm_hub_download(repos_to_try[r], NULL, &dir);
            long used = ptm__alloc_fail_at(0);
            cr_assert(st == PTM_OK || st == PTM_E_NOMEM, "fail at %ld: %s: %s", n,
                      ptm_status_name(st), ptm_last_error());
            cr_assert(st == PTM_OK ? dir != NULL : dir == NULL);
            ptm_free(dir == (char *)1 ? NULL : dir);
            if (used < n) {
                cr_assert_eq(st, PTM_OK);
                break; /* every allocation of the call has been failed once */
            }
        }
    }
}

Test(hub, model_load_passes_subfolder_and_variant_to_the_hub)
{
    struct ptm_load_opts o = {.struct_size = sizeof o, .subfolder = "encoder", .variant = "fp16"};
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("acme/layout", &o, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_gt(ptm_model_n_params(m), 0);
    ptm_model_free(m);
    cr_assert_geq(count("method=GET&path=encoder/model.fp16.safetensors"), 1);
}

Test(hub, a_partial_snapshot_is_completed_from_the_hub)
{
    const char *inc[] = {"config.json", NULL};
    struct ptm_hub_opts ho = {.struct_size = sizeof ho, .include = inc};
    char *dir = NULL;
    cr_assert_eq(ptm_hub_download("acme/tiny", &ho, &dir), PTM_OK, "%s", ptm_last_error());
    cr_assert(!path_exists("%s/%s", dir, "model.safetensors"));
    ptm_free(dir);
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("acme/tiny", NULL, &m), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
    /* Offline, the same partial snapshot (now complete) is enough. */
    struct ptm_load_opts o = {.struct_size = sizeof o, .local_files_only = 1};
    cr_assert_eq(ptm_model_load("acme/tiny", &o, &m), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
}
