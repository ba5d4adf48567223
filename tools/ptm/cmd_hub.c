/*
 * cmd_hub.c - the Hub commands: `ptm download REPO` (ptm_hub_download into the shared
 * Hugging Face cache; prints the snapshot directory), `ptm push DIR REPO` (ptm_hub_push: one
 * commit of a saved model folder; prints the commit URL) and `ptm scan-cache` (what the cache
 * holds: repos, revisions, sizes, last modified, as `huggingface-cli scan-cache` reports).
 * scan-cache only reads the directory tree; the layout is described in runtime/hub_cache.c.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

#define MAX_INCLUDE 64

static int download_run(int argc, char **argv)
{
    const char *repo = NULL, *include[MAX_INCLUDE + 1] = {NULL};
    struct ptm_hub_opts o = {.struct_size = sizeof o};
    int n_inc = 0, as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--revision") && v != NULL) {
            o.revision = argv[++i];
        } else if (!strcmp(argv[i], "--include") && v != NULL && n_inc < MAX_INCLUDE) {
            include[n_inc++] = argv[++i];
        } else if (!strcmp(argv[i], "--local-files-only")) {
            o.local_files_only = 1;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (argv[i][0] != '-' && repo == NULL) {
            repo = argv[i];
        } else {
            fprintf(stderr, "ptm download: bad argument \"%s\" (see ptm download --help)\n",
                    argv[i]);
            return CLI_USAGE;
        }
    }
    if (repo == NULL) {
        fprintf(stderr, "ptm download: missing repo id (see ptm download --help)\n");
        return CLI_USAGE;
    }
    o.include = n_inc ? include : NULL;
    char *dir = NULL;
    ptm_status st = ptm_hub_download(repo, &o, &dir);
    if (st != PTM_OK) {
        return cli_fail("download", st);
    }
    if (as_json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "repo_id", json_object_new_string(repo));
        json_object_object_add(j, "snapshot", json_object_new_string(dir));
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        printf("%s\n", dir);
    }
    ptm_free(dir);
    return CLI_OK;
}

const struct cli_command cli_cmd_download = {
    "download", "download a Hub repo into the Hugging Face cache",
    "REPO [--revision R] [--include GLOB]... [--local-files-only] [--json]\n\n"
    "Downloads every file of REPO at revision R (default main), or those matching the\n"
    "--include globs, into the shared cache (HF_HUB_CACHE, HF_HOME/hub or\n"
    "~/.cache/huggingface/hub) and prints the snapshot directory. HF_ENDPOINT, HF_TOKEN and\n"
    "HF_HUB_OFFLINE are honoured.",
    download_run};

/* --- push -------------------------------------------------------------------------------- */

static int push_run(int argc, char **argv)
{
    const char *dir = NULL, *repo = NULL;
    struct ptm_hub_push_opts o = {.struct_size = sizeof o};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--revision") && v != NULL) {
            o.revision = argv[++i];
        } else if (!strcmp(argv[i], "--message") && v != NULL) {
            o.commit_message = argv[++i];
        } else if (!strcmp(argv[i], "--private")) {
            o.private_repo = 1;
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else if (argv[i][0] != '-' && repo == NULL) {
            repo = argv[i];
        } else {
            fprintf(stderr, "ptm push: bad argument \"%s\" (see ptm push --help)\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (repo == NULL) {
        fprintf(stderr, "ptm push: expected DIR and REPO (see ptm push --help)\n");
        return CLI_USAGE;
    }
    char *url = NULL;
    ptm_status st = ptm_hub_push(dir, repo, &o, &url);
    if (st != PTM_OK) {
        return cli_fail("push", st);
    }
    printf("%s\n", url);
    ptm_free(url);
    return CLI_OK;
}

const struct cli_command cli_cmd_push = {
    "push", "upload a saved model folder to a Hub repo",
    "DIR REPO [--private] [--message M] [--revision BRANCH]\n\n"
    "Uploads every file under DIR (as written by `ptm save`; hidden, *.tmp* and *.incomplete\n"
    "files are skipped) to REPO in one commit on BRANCH (default main), creating the repo\n"
    "(private with --private) when it does not exist, and prints the commit URL. Weights go\n"
    "through Git LFS; files the Hub already holds are not sent again. Needs a write token in\n"
    "HF_TOKEN or $HF_HOME/token; HF_ENDPOINT is honoured.",
    push_run};

/* --- scan-cache --------------------------------------------------------------------------- */

static int cache_dir(char *buf, size_t cap)
{
    const char *v;
    int n = -1;
    if ((v = getenv("HF_HUB_CACHE")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s", v);
    } else if ((v = getenv("HF_HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/hub", v);
    } else if ((v = getenv("XDG_CACHE_HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/huggingface/hub", v);
    } else if ((v = getenv("HOME")) != NULL && v[0]) {
        n = snprintf(buf, cap, "%s/.cache/huggingface/hub", v);
    }
    return n > 0 && (size_t)n < cap;
}

struct tally {
    long long bytes, n_files;
    time_t mtime;
};

/* Add up the regular files under dir (following snapshot symlinks to their blobs). */
static void walk(const char *dir, struct tally *t)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat sb;
        if (e->d_name[0] == '.' ||
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &sb) != 0) {
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            walk(path, t);
        } else if (S_ISREG(sb.st_mode)) {
            t->bytes += sb.st_size;
            t->n_files++;
            t->mtime = sb.st_mtime > t->mtime ? sb.st_mtime : t->mtime;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* The refs (branch and tag names) that point at commit. */
static json_object *refs_of(const char *repo_dir, const char *commit)
{
    char dir[PATH_MAX + 512];
    json_object *arr = json_object_new_array();
    snprintf(dir, sizeof dir, "%s/refs", repo_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[PATH_MAX + 1024], line[128] = "";
        FILE *f = NULL;
        if (e->d_name[0] != '.' && snprintf(path, sizeof path, "%s/%s", dir, e->d_name) > 0) {
            f = fopen(path, "r");
        }
        if (f != NULL) {
            if (fgets(line, sizeof line, f) != NULL && strncmp(line, commit, strlen(commit)) == 0) {
                json_object_array_add(arr, json_object_new_string(e->d_name));
            }
            fclose(f);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return arr;
}

static json_object *scan_repo(const char *cache, const char *folder)
{
    char repo_dir[PATH_MAX + 256], sub[PATH_MAX + 512], id[256];
    const char *kind_end = strstr(folder, "--");
    snprintf(repo_dir, sizeof repo_dir, "%s/%s", cache, folder);
    /* models--org--name -> org/name */
    size_t k = 0;
    for (const char *p = kind_end + 2; *p && k + 1 < sizeof id; p++) {
        if (p[0] == '-' && p[1] == '-') {
            id[k++] = '/';
            p++;
        } else {
            id[k++] = *p;
        }
    }
    id[k] = '\0';
    struct tally all = {0};
    snprintf(sub, sizeof sub, "%s/blobs", repo_dir);
    walk(sub, &all);
    if (all.n_files == 0) { /* snapshots holding plain files (copied in by hand): count those */
        snprintf(sub, sizeof sub, "%s/snapshots", repo_dir);
        walk(sub, &all);
    }
    json_object *j = json_object_new_object(), *revs = json_object_new_array();
    json_object_object_add(j, "repo_id", json_object_new_string(id));
    json_object_object_add(j, "repo_type",
                           json_object_new_string_len(folder, (int)(kind_end - folder) - 1));
    json_object_object_add(j, "size_on_disk", json_object_new_int64(all.bytes));
    json_object_object_add(j, "nb_files", json_object_new_int64(all.n_files));
    json_object_object_add(j, "last_modified", json_object_new_int64((int64_t)all.mtime));
    json_object_object_add(j, "path", json_object_new_string(repo_dir));
    snprintf(sub, sizeof sub, "%s/snapshots", repo_dir);
    DIR *d = opendir(sub);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char snap[PATH_MAX * 3];
        struct tally t = {0};
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(snap, sizeof snap, "%s/%s", sub, e->d_name);
        walk(snap, &t);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "commit", json_object_new_string(e->d_name));
        json_object_object_add(r, "refs", refs_of(repo_dir, e->d_name));
        json_object_object_add(r, "size_on_disk", json_object_new_int64(t.bytes));
        json_object_object_add(r, "nb_files", json_object_new_int64(t.n_files));
        json_object_object_add(r, "last_modified", json_object_new_int64((int64_t)t.mtime));
        json_object_object_add(r, "snapshot_path", json_object_new_string(snap));
        json_object_array_add(revs, r);
    }
    if (d != NULL) {
        closedir(d);
    }
    json_object_object_add(j, "revisions", revs);
    return j;
}

static const char *human(long long b, char *buf, size_t cap)
{
    const char *units[] = {"B", "K", "M", "G", "T"};
    double v = (double)b;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f%s" : "%.0f%s", v, units[u]);
    return buf;
}

static void print_table(json_object *repos)
{
    printf("%-40s %-9s %12s %8s %-20s %-20s %s\n", "REPO ID", "REPO TYPE", "SIZE ON DISK",
           "NB FILES", "LAST_MODIFIED", "REFS", "LOCAL PATH");
    for (size_t i = 0; i < json_object_array_length(repos); i++) {
        json_object *r = json_object_array_get_idx(repos, i), *v, *revs;
        char size[32], when[32], refs[256] = "";
        json_object_object_get_ex(r, "last_modified", &v);
        time_t t = (time_t)json_object_get_int64(v);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&t));
        json_object_object_get_ex(r, "revisions", &revs);
        for (size_t k = 0; k < json_object_array_length(revs); k++) {
            json_object *rr, *names;
            rr = json_object_array_get_idx(revs, k);
            json_object_object_get_ex(rr, "refs", &names);
            for (size_t m = 0; m < json_object_array_length(names); m++) {
                size_t n = strlen(refs);
                snprintf(refs + n, sizeof refs - n, "%s%s", n ? ", " : "",
                         json_object_get_string(json_object_array_get_idx(names, m)));
            }
        }
        json_object *id, *type, *bytes, *nb, *path;
        json_object_object_get_ex(r, "repo_id", &id);
        json_object_object_get_ex(r, "repo_type", &type);
        json_object_object_get_ex(r, "size_on_disk", &bytes);
        json_object_object_get_ex(r, "nb_files", &nb);
        json_object_object_get_ex(r, "path", &path);
        printf("%-40s %-9s %12s %8lld %-20s %-20s %s\n", json_object_get_string(id),
               json_object_get_string(type), human(json_object_get_int64(bytes), size, sizeof size),
               (long long)json_object_get_int64(nb), when, refs, json_object_get_string(path));
    }
}

static int scan_cache_run(int argc, char **argv)
{
    int as_json = argc > 1 && !strcmp(argv[1], "--json");
    if (argc > 2 || (argc == 2 && !as_json)) {
        fprintf(stderr, "ptm scan-cache: bad argument \"%s\"\n", argv[argc - 1]);
        return CLI_USAGE;
    }
    char cache[PATH_MAX];
    if (!cache_dir(cache, sizeof cache)) {
        fprintf(stderr, "ptm scan-cache: no cache directory (set HF_HUB_CACHE or HOME)\n");
        return CLI_FAIL;
    }
    json_object *repos = json_object_new_array();
    struct dirent **names = NULL;
    int n = scandir(cache, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *f = names[i]->d_name;
        if (!strncmp(f, "models--", 8) || !strncmp(f, "datasets--", 10) ||
            !strncmp(f, "spaces--", 8)) {
            json_object_array_add(repos, scan_repo(cache, f));
        }
        free(names[i]);
    }
    free(names);
    if (as_json) {
        printf("%s\n", json_object_to_json_string_ext(repos, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        print_table(repos);
        printf("\n%zu repo(s) in %s\n", json_object_array_length(repos), cache);
    }
    json_object_put(repos);
    return CLI_OK;
}

const struct cli_command cli_cmd_scan_cache = {
    "scan-cache", "list the repos in the Hugging Face cache",
    "[--json]\n\n"
    "Lists the cached repos with their revisions (commit and refs), size on disk, number of\n"
    "files and last modification, like `huggingface-cli scan-cache`.",
    scan_cache_run};
