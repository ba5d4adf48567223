/*
 * test_hub_push.c - ptm_hub_push (runtime/hub_push.c) against tests/hub_server.py, which
 * implements the Hub's upload side: create repo, preupload, the Git LFS batch API with
 * uploads to a second "storage" port reached as localhost, verify, and the ndjson commit,
 * which the server applies to the branch so the existing download endpoints serve it. Each
 * test starts the server on fresh temporary repos and points HF_ENDPOINT at it; the server's
 * write token is "hf_write_test" and any other token is read-only. Nothing here reaches
 * another address.
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include "hub_test_server.h"
#include "ptm/ptm.h"

PTM_API long ptm__alloc_fail_at(long n); /* test hook exported by libptm */
#define TINY PTM_TEST_FIXTURES "/bert-tiny"

static char saved[300];

static void use_cache(const char *name)
{
    char cache[320];
    snprintf(cache, sizeof cache, "%s/%s", tmp, name);
    setenv("HF_HUB_CACHE", cache, 1);
}

/* Start the server and save bert-tiny (loaded from the fixtures) into saved/. */
static void start_server(void)
{
    hub_server_start("ptm_hub_push_");
    snprintf(saved, sizeof saved, "%s/saved", tmp);
    setenv("HF_TOKEN", "hf_write_test", 1);
    use_cache("cache");
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load(TINY, NULL, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_save(m, saved, NULL), PTM_OK, "%s", ptm_last_error());
    ptm_model_free(m);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void push_ok(const char *repo, char **url)
{
    struct ptm_hub_push_opts o = {.struct_size = sizeof o, .commit_message = "add bert-tiny"};
    cr_assert_eq(ptm_hub_push(saved, repo, &o, url), PTM_OK, "%s", ptm_last_error());
}

/* The saved file and the one a fresh cache downloads for repo are the same bytes. */
static void assert_downloads_same(const char *repo, const char *cache_name, const char *file)
{
    char *dir = NULL, a[1024], b[1024];
    use_cache(cache_name);
    cr_assert_eq(ptm_hub_download(repo, NULL, &dir), PTM_OK, "%s", ptm_last_error());
    snprintf(a, sizeof a, "%s/%s", saved, file);
    snprintf(b, sizeof b, "%s/%s", dir, file);
    cr_assert(same_file(a, b), "%s differs from %s", b, a);
    ptm_free(dir);
}

TestSuite(hub_push, .init = start_server, .fini = stop_server, .timeout = 30);

Test(hub_push, round_trip_save_push_then_load_by_repo_id)
{
    char *url = NULL, path[1024];
    push_ok("alice/pushed", &url);
    cr_assert_not_null(url);
    cr_assert(strstr(url, "/alice/pushed/commit/") != NULL, "%s", url);
    ptm_free(url);
    use_cache("fresh");
    ptm_model *m = NULL;
    cr_assert_eq(ptm_model_load("alice/pushed", NULL, &m), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", ptm_model_dir(m));
    char ours[1024];
    snprintf(ours, sizeof ours, "%s/model.safetensors", saved);
    cr_assert(same_file(path, ours), "downloaded weights differ from the saved ones");
    ptm_model *orig = NULL;
    cr_assert_eq(ptm_model_load(TINY, NULL, &orig), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_n_params(m), ptm_model_n_params(orig));
    ptm_model_free(orig);
    ptm_model_free(m);
    assert_downloads_same("alice/pushed", "fresh2", "config.json");
}

Test(hub_push, sends_weights_through_lfs_and_small_files_in_the_commit)
{
    push_ok("alice/lfs", NULL);
    cr_assert_eq(count("role=hub&method=POST&path=/api/repos/create"), 1);
    cr_assert_eq(count("role=hub&method=POST&path=/api/models/alice/lfs/preupload/main"), 1);
    cr_assert_eq(count("role=hub&method=POST&path=/alice/lfs.git/info/lfs/objects/batch"), 1);
    cr_assert_eq(count("role=cdn&method=PUT&path=/upload/alice/lfs/"), 1);
    cr_assert_eq(count("role=hub&method=POST&path=/alice/lfs.git/info/lfs/objects/verify"), 1);
    cr_assert_eq(count("role=hub&method=POST&path=/api/models/alice/lfs/commit/main"), 1);
    cr_assert_eq(count("role=cdn&header=x-upload-ticket"), 1, "the batch's header was not sent");
}

Test(hub_push, never_sends_the_token_to_the_upload_host)
{
    push_ok("alice/token", NULL);
    cr_assert_eq(count("role=cdn&method=PUT"), 1);
    cr_assert_eq(count("role=cdn&header=authorization"), 0, "the token reached the upload host");
    cr_assert_eq(count("role=hub&method=POST&header=authorization"), count("role=hub&method=POST"));
}

Test(hub_push, second_push_of_unchanged_files_uploads_no_lfs_bytes)
{
    push_ok("alice/again", NULL);
    push_ok("alice/again", NULL); /* the repo exists now: create answers 409, which is fine */
    cr_assert_eq(count("role=cdn&method=PUT"), 1);
    cr_assert_eq(count("role=hub&method=POST&path=/commit/main"), 2);
    assert_downloads_same("alice/again", "again", "model.safetensors");
}

Test(hub_push, skips_temporary_and_hidden_files)
{
    char hidden[400];
    write_file(saved, "notes.tmp.123", "partial");
    write_file(saved, "model.safetensors.incomplete", "partial");
    snprintf(hidden, sizeof hidden, "%s/.locks", saved);
    cr_assert_eq(mkdir(hidden, 0755), 0);
    write_file(hidden, "x.lock", "");
    write_file(saved, "README.md", "# tiny\n");
    push_ok("alice/skips", NULL);
    char *dir = NULL, path[1024];
    struct stat sb;
    use_cache("skips");
    cr_assert_eq(ptm_hub_download("alice/skips", NULL, &dir), PTM_OK, "%s", ptm_last_error());
    snprintf(path, sizeof path, "%s/README.md", dir);
    cr_assert_eq(stat(path, &sb), 0, "README.md was not pushed");
    snprintf(path, sizeof path, "%s/notes.tmp.123", dir);
    cr_assert_neq(stat(path, &sb), 0, "a temp file was pushed");
    snprintf(path, sizeof path, "%s/model.safetensors.incomplete", dir);
    cr_assert_neq(stat(path, &sb), 0, "an incomplete file was pushed");
    ptm_free(dir);
}

Test(hub_push, retries_a_failed_upload)
{
    ctl("set?upload500=1");
    push_ok("alice/retry", NULL);
    cr_assert_eq(count("role=cdn&method=PUT"), 2);
    assert_downloads_same("alice/retry", "retry", "model.safetensors");
}

Test(hub_push, refuses_without_a_token_naming_the_repo)
{
    unsetenv("HF_TOKEN");
    char *url = (char *)1;
    cr_assert_eq(ptm_hub_push(saved, "alice/notoken", NULL, &url), PTM_E_NOT_FOUND);
    cr_assert_null(url);
    const char *e = ptm_last_error();
    cr_assert(strstr(e, "alice/notoken") != NULL, "%s", e);
    cr_assert(strstr(e, "401") != NULL && strstr(e, "no token was sent") != NULL, "%s", e);
}

Test(hub_push, refuses_a_read_only_token_naming_the_repo)
{
    struct ptm_hub_push_opts o = {.struct_size = sizeof o, .token = "hf_read_only"};
    char *url = (char *)1;
    cr_assert_eq(ptm_hub_push(saved, "alice/readonly", &o, &url), PTM_E_NOT_FOUND);
    cr_assert_null(url);
    const char *e = ptm_last_error();
    cr_assert(strstr(e, "alice/readonly") != NULL, "%s", e);
    cr_assert(strstr(e, "403") != NULL && strstr(e, "write access") != NULL, "%s", e);
}

Test(hub_push, a_failed_verify_names_the_file_and_commits_nothing)
{
    ctl("set?corrupt_upload=1");
    char *url = (char *)1;
    cr_assert_eq(ptm_hub_push(saved, "alice/corrupt", NULL, &url), PTM_E_NETWORK);
    cr_assert_null(url);
    const char *e = ptm_last_error();
    cr_assert(strstr(e, "verify") != NULL && strstr(e, "model.safetensors") != NULL, "%s", e);
    cr_assert(strstr(e, "422") != NULL, "%s", e);
    cr_assert_eq(count("path=/commit/"), 0);
}

Test(hub_push, refuses_a_file_name_the_hub_cannot_hold)
{
    write_file(saved, "bad\nname.json", "{}");
    cr_assert_eq(ptm_hub_push(saved, "alice/badname", NULL, NULL), PTM_E_INVAL);
    cr_assert(strstr(ptm_last_error(), "bad\nname.json") != NULL, "%s", ptm_last_error());
}

Test(hub_push, a_missing_branch_is_named)
{
    struct ptm_hub_push_opts o = {.struct_size = sizeof o, .revision = "nope"};
    cr_assert_eq(ptm_hub_push(saved, "alice/branch", &o, NULL), PTM_E_NOT_FOUND);
    cr_assert(strstr(ptm_last_error(), "preupload") != NULL, "%s", ptm_last_error());
    cr_assert(strstr(ptm_last_error(), "Invalid rev id: nope") != NULL, "%s", ptm_last_error());
}

Test(hub_push, rejects_bad_arguments)
{
    char *url = (char *)1;
    cr_assert_eq(ptm_hub_push(saved, "not a repo id", NULL, &url), PTM_E_INVAL);
    cr_assert_null(url);
    cr_assert_eq(ptm_hub_push(NULL, "alice/x", NULL, NULL), PTM_E_INVAL);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nothing-here", tmp);
    cr_assert_eq(ptm_hub_push(missing, "alice/x", NULL, NULL), PTM_E_IO);
    cr_assert(strstr(ptm_last_error(), "nothing-here") != NULL, "%s", ptm_last_error());
}

Test(hub_push, model_push_to_hub_saves_and_uploads_in_one_call)
{
    ptm_model *m = NULL;
    char *url = NULL;
    cr_assert_eq(ptm_model_load(TINY, NULL, &m), PTM_OK, "%s", ptm_last_error());
    struct ptm_hub_push_opts o = {
        .struct_size = sizeof o, .private_repo = 1, .commit_message = "push_to_hub"};
    cr_assert_eq(ptm_model_push_to_hub(m, "alice/direct", NULL, &o, &url), PTM_OK, "%s",
                 ptm_last_error());
    cr_assert(url != NULL && strstr(url, "/alice/direct/commit/") != NULL);
    ptm_free(url);
    ptm_model_free(m);
    cr_assert_eq(count("role=cdn&method=PUT"), 1);
    assert_downloads_same("alice/direct", "direct", "model.safetensors");
}

Test(hub_push, model_push_to_hub_reports_the_push_failure)
{
    ptm_model *m = NULL;
    char *url = (char *)1;
    unsetenv("HF_TOKEN");
    cr_assert_eq(ptm_model_load(TINY, NULL, &m), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_model_push_to_hub(m, "alice/direct2", NULL, NULL, &url), PTM_E_NOT_FOUND);
    cr_assert_null(url);
    cr_assert(strstr(ptm_last_error(), "alice/direct2") != NULL, "%s", ptm_last_error());
    ptm_model_free(m);
}

Test(hub_push, survives_every_allocation_failure)
{
    for (long n = 1;; n++) {
        ptm__alloc_fail_at(n);
        char *url = (char *)1;
        ptm_status st = ptm_hub_push(saved, "alice/sweep", NULL, &url);
        long made = ptm__alloc_fail_at(0);
        if (st == PTM_OK) {
            cr_assert_lt(made, n, "succeeded although allocation %ld failed", n);
            ptm_free(url);
            break;
        }
        cr_assert_eq(st, PTM_E_NOMEM, "allocation %ld: %s", n, ptm_last_error());
        cr_assert_null(url);
    }
}

struct seen {
    int calls;
    uint64_t last_done, last_total;
};

static void on_progress(const char *file, uint64_t done, uint64_t total, void *user)
{
    struct seen *s = user;
    if (strcmp(file, "model.safetensors") == 0) {
        s->calls++;
        s->last_done = done;
        s->last_total = total;
    }
}

Test(hub_push, reports_upload_progress_through_the_download_callback)
{
    struct seen s = {0};
    struct stat sb;
    char path[400];
    snprintf(path, sizeof path, "%s/model.safetensors", saved);
    cr_assert_eq(stat(path, &sb), 0);
    ptm_hub_set_progress(on_progress, &s);
    push_ok("alice/progress", NULL);
    ptm_hub_set_progress(NULL, NULL);
    cr_assert_geq(s.calls, 1);
    cr_assert_eq(s.last_done, (uint64_t)sb.st_size);
    cr_assert_eq(s.last_total, (uint64_t)sb.st_size);
}

Test(hub_push, does_not_retry_a_failed_commit_and_a_rerun_completes)
{
    ctl("set?commit500=1");
    char *url = (char *)1;
    cr_assert_eq(ptm_hub_push(saved, "alice/rerun", NULL, &url), PTM_E_NETWORK);
    cr_assert_null(url);
    const char *e = ptm_last_error();
    cr_assert(strstr(e, "commit") != NULL && strstr(e, "500") != NULL, "%s", e);
    cr_assert_eq(count("path=/commit/main"), 1, "a commit was retried");
    push_ok("alice/rerun", NULL); /* the weights were uploaded already: only the commit goes */
    cr_assert_eq(count("role=cdn&method=PUT"), 1);
    assert_downloads_same("alice/rerun", "rerun", "model.safetensors");
}

Test(hub_push, an_lfs_batch_error_names_the_file_and_the_reason)
{
    ctl("set?batch_error=1");
    cr_assert_eq(ptm_hub_push(saved, "alice/batcherr", NULL, NULL), PTM_E_NETWORK);
    const char *e = ptm_last_error();
    cr_assert(strstr(e, "lfs batch") != NULL && strstr(e, "model.safetensors") != NULL, "%s", e);
    cr_assert(strstr(e, "object too large for this repo") != NULL, "%s", e);
    cr_assert_eq(count("role=cdn&method=PUT"), 0);
}
