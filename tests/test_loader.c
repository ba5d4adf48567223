/*
 * test_loader.c - the plugin loader and registry: toy plugins load, list and register; each
 * refusal (garbage file, no entry symbol, ABI major, newer minor, failing register, duplicate
 * name, duplicate model_type) is reported with the file and the fault and leaves the host
 * running and the registry unchanged; a scan goes on past refusals; hot drop registers a
 * plugin copied into a watched directory.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ptm/ptm.h"

#define GOOD(name) PTM_TEST_TOY_DIR "/good/" name
#define BAD(name)  PTM_TEST_TOY_DIR "/bad/" name

static void assert_error_has(const char *needle)
{
    cr_assert(strstr(ptm_last_error(), needle) != NULL, "error \"%s\" lacks \"%s\"",
              ptm_last_error(), needle);
}

Test(loader, loads_toy_architecture_and_lists_it)
{
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toyarch.so")), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_plugin_count(), 1);
    struct ptm_plugin_info info = {.struct_size = sizeof info};
    cr_assert_eq(ptm_plugin_at(0, &info), PTM_OK);
    cr_assert_str_eq(info.name, "toyarch");
    cr_assert_str_eq(info.version, "1.2.3");
    cr_assert_eq(info.kind, PTM_PLUGIN_ARCH);
    cr_assert_eq(info.abi_major, PTM_ABI_MAJOR);
    cr_assert(strstr(info.path, "libptm-toyarch.so") != NULL);
    const struct ptm_arch *a = ptm_arch_find("toy");
    cr_assert_not_null(a);
    cr_assert_str_eq(ptm_arch_plugin(a), "toyarch");
    const struct ptm_model_class *cls = NULL;
    cr_assert_eq(ptm_arch_find_class("ToyForThings", &cls), a);
    cr_assert_str_eq(cls->name, "ToyForThings");
    cr_assert_eq(ptm_plugin_at(1, &info), PTM_E_RANGE);
}

Test(loader, loading_the_same_file_twice_is_a_no_op)
{
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toyarch.so")), PTM_OK);
    cr_assert_eq(ptm_plugin_load(PTM_TEST_TOY_DIR "/good/../good/libptm-toyarch.so"), PTM_OK);
    cr_assert_eq(ptm_plugin_count(), 1);
}

Test(loader, loads_toy_backend_and_probes_its_device)
{
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toybackend.so")), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_backend_count(), 1);
    cr_assert_str_eq(ptm_backend_name_at(0), "toy");
    cr_assert_str_eq(ptm_backend_plugin("toy"), "toybackend");
    int32_t n = -1;
    cr_assert_eq(ptm_backend_devices("toy", &n), PTM_OK);
    cr_assert_eq(n, 1);
    char name[64];
    cr_assert_eq(ptm_backend_device_name("toy", 0, name, sizeof name), PTM_OK);
    cr_assert_str_eq(name, "toy device 0");
    cr_assert_eq(ptm_backend_device_name("toy", 1, name, sizeof name), PTM_E_RANGE);
    cr_assert_eq(ptm_backend_devices("nonesuch", &n), PTM_E_NOT_FOUND);
}

Test(loader, refuses_a_garbage_file_with_dlerror_text)
{
    char path[] = "/tmp/ptm_garbage_XXXXXX.so";
    int fd = mkstemps(path, 3);
    cr_assert(fd >= 0);
    static const char junk[] = "this is not an ELF file, only text long enough to pass the "
                               "size check that comes before the magic number check\n";
    cr_assert_eq(write(fd, junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
    close(fd);
    cr_assert_eq(ptm_plugin_load(path), PTM_E_IO);
    assert_error_has(path);
    assert_error_has("not a loadable plugin");
    assert_error_has("invalid ELF header"); /* dlerror's own words */
    cr_assert_eq(ptm_plugin_count(), 0);
    unlink(path);
}

Test(loader, refuses_a_missing_file)
{
    cr_assert_eq(ptm_plugin_load("/nonexistent/libptm-x.so"), PTM_E_IO);
    assert_error_has("/nonexistent/libptm-x.so");
}

Test(loader, refuses_a_library_without_the_entry_symbol)
{
    cr_assert_eq(ptm_plugin_load(BAD("bad_no_entry.so")), PTM_E_ABI);
    assert_error_has("bad_no_entry.so");
    assert_error_has("no entry point ptm_plugin_entry");
}

Test(loader, refuses_another_abi_major_naming_both_versions)
{
    cr_assert_eq(ptm_plugin_load(BAD("bad_abi_major.so")), PTM_E_ABI);
    assert_error_has("bad_abi_major.so");
    char want[128];
    snprintf(want, sizeof want, "built for plugin ABI %d.0, this runtime supports %d.0-%d.%d",
             PTM_ABI_MAJOR + 1, PTM_ABI_MAJOR, PTM_ABI_MAJOR, PTM_ABI_MINOR);
    assert_error_has(want);
    cr_assert_eq(ptm_plugin_count(), 0);
}

Test(loader, refuses_a_newer_abi_minor)
{
    cr_assert_eq(ptm_plugin_load(BAD("bad_abi_minor.so")), PTM_E_ABI);
    char want[64];
    snprintf(want, sizeof want, "built for plugin ABI %d.%d", PTM_ABI_MAJOR, PTM_ABI_MINOR + 1);
    assert_error_has(want);
}

Test(loader, passes_on_a_failing_register_message)
{
    cr_assert_eq(ptm_plugin_load(BAD("bad_register.so")), PTM_E_PLUGIN);
    assert_error_has("bad_register.so");
    assert_error_has("failed to register");
    assert_error_has("refusing on purpose (code 42)");
    cr_assert_eq(ptm_plugin_count(), 0);
}

Test(loader, a_failed_register_leaves_nothing_registered)
{
    size_t before = ptm_arch_count();
    cr_assert_eq(ptm_plugin_load(BAD("bad_half_register.so")), PTM_E_PLUGIN);
    assert_error_has("second step failed");
    cr_assert_eq(ptm_arch_count(), before);
    cr_assert_null(ptm_arch_find("half"));
}

Test(loader, refuses_a_duplicate_plugin_name_first_wins)
{
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toyarch.so")), PTM_OK);
    cr_assert_eq(ptm_plugin_load(BAD("bad_dup_name.so")), PTM_E_EXISTS);
    assert_error_has("bad_dup_name.so");
    assert_error_has("plugin \"toyarch\" is already loaded from");
    struct ptm_plugin_info info = {.struct_size = sizeof info};
    cr_assert_eq(ptm_plugin_at(0, &info), PTM_OK);
    cr_assert_str_eq(info.version, "1.2.3");
    cr_assert_eq(ptm_plugin_count(), 1);
}

Test(loader, refuses_a_model_type_already_taken)
{
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toyarch.so")), PTM_OK);
    cr_assert_eq(ptm_plugin_load(BAD("bad_dup_type.so")), PTM_E_EXISTS);
    assert_error_has("bad_dup_type.so");
    assert_error_has("model_type \"toy\" is already registered by");
    cr_assert_str_eq(ptm_arch_plugin(ptm_arch_find("toy")), "toyarch");
    cr_assert_null(ptm_arch_find_class("DupToyModel", NULL));
}

struct captured {
    char lines[16][512];
    int n;
};

static void capture(int32_t level, const char *msg, void *user)
{
    struct captured *c = user;
    if (level >= PTM_LOG_WARN && c->n < 16) {
        snprintf(c->lines[c->n++], sizeof c->lines[0], "%s", msg);
    }
}

static int captured_has(const struct captured *c, const char *a, const char *b)
{
    for (int i = 0; i < c->n; i++) {
        if (strstr(c->lines[i], a) && strstr(c->lines[i], b)) {
            return 1;
        }
    }
    return 0;
}

Test(loader, scan_reports_each_refusal_and_goes_on)
{
    /* good/ first, so toyarch wins the name and the model type over the bad copies. */
    setenv("PTM_PLUGIN_PATH", PTM_TEST_TOY_DIR "/good:" PTM_TEST_TOY_DIR "/bad", 1);
    struct captured c = {0};
    ptm_log_set(capture, &c);
    ptm_log_set_level(PTM_LOG_WARN);
    cr_assert_eq(ptm_plugins_scan(), PTM_OK);
    cr_assert_not_null(ptm_arch_find("toy"));
    cr_assert_eq(ptm_backend_count() >= 1, 1);
    cr_assert(captured_has(&c, "bad_abi_major.so", "built for plugin ABI"));
    cr_assert(captured_has(&c, "bad_abi_minor.so", "built for plugin ABI"));
    cr_assert(captured_has(&c, "bad_no_entry.so", "no entry point"));
    cr_assert(captured_has(&c, "bad_register.so", "refusing on purpose"));
    cr_assert(captured_has(&c, "bad_dup_name.so", "already loaded"));
    cr_assert(captured_has(&c, "bad_dup_type.so", "already registered"));
    cr_assert(captured_has(&c, "bad_half_register.so", "second step failed"));
    for (int i = 0; i < c.n; i++) {
        cr_assert(strstr(c.lines[i], "skipped") != NULL, "%s", c.lines[i]);
    }
    /* Scanning again loads nothing new and reports nothing new for loaded files. */
    size_t n = ptm_plugin_count();
    cr_assert_eq(ptm_plugins_scan(), PTM_OK);
    cr_assert_eq(ptm_plugin_count(), n);
    ptm_log_set(NULL, NULL);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    cr_assert(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    fclose(out);
}

struct dropped {
    volatile int n_ok;
    volatile int n_refused;
    char name[64];
};

static void on_drop(ptm_status st, const char *name, const char *path, void *user)
{
    struct dropped *d = user;
    if (st == PTM_OK) {
        snprintf(d->name, sizeof d->name, "%s", name);
        d->n_ok++;
    } else {
        d->n_refused++;
    }
}

static int wait_for(volatile int *flag, double seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (*flag) {
            return 1;
        }
        usleep(10000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    return 0;
}

Test(loader, hot_drop_registers_a_copied_plugin_within_two_seconds)
{
    char dir[] = "/tmp/ptm_watch_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct dropped d = {0};
    cr_assert_eq(ptm_runtime_watch(dir, on_drop, &d), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_runtime_watch(dir, on_drop, &d), PTM_E_BUSY);
    cr_assert_null(ptm_arch_find("toy"));
    char dst[512];
    snprintf(dst, sizeof dst, "%s/libptm-toyarch.so", dir);
    copy_file(GOOD("libptm-toyarch.so"), dst);
    cr_assert(wait_for(&d.n_ok, 2.0), "plugin not registered within 2 s");
    cr_assert_str_eq(d.name, "toyarch");
    cr_assert_not_null(ptm_arch_find("toy"));
    /* A garbage file dropped in is refused and reported; the watcher keeps going. */
    char junk[512];
    snprintf(junk, sizeof junk, "%s/junk.so", dir);
    FILE *f = fopen(junk, "w");
    fputs("junk", f);
    fclose(f);
    cr_assert(wait_for(&d.n_refused, 5.0), "garbage drop not reported");
    /* Renamed in (the atomic way to install) works too. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/.incoming", dir);
    copy_file(GOOD("libptm-toybackend.so"), tmp);
    snprintf(dst, sizeof dst, "%s/libptm-toybackend.so", dir);
    int before = d.n_ok;
    cr_assert_eq(rename(tmp, dst), 0);
    for (int i = 0; i < 200 && d.n_ok == before; i++) {
        usleep(10000);
    }
    cr_assert_eq(d.n_ok, before + 1);
    cr_assert_str_eq(ptm_backend_plugin("toy"), "toybackend");
    ptm_runtime_unwatch();
    ptm_runtime_unwatch(); /* a second call is a no-op */
    unlink(dst);
    snprintf(dst, sizeof dst, "%s/libptm-toyarch.so", dir);
    unlink(dst);
    unlink(junk);
    rmdir(dir);
}

struct reader {
    volatile int stop;
    long lookups;
};

static void *read_registry(void *arg)
{
    struct reader *r = arg;
    while (!r->stop) {
        for (size_t i = 0; i < ptm_arch_count(); i++) {
            const struct ptm_arch *a = ptm_arch_at(i);
            cr_assert(a == NULL || ptm_arch_find(a->model_type) == a);
        }
        struct ptm_plugin_info info = {.struct_size = sizeof info};
        for (size_t i = 0; i < ptm_plugin_count(); i++) {
            cr_assert_eq(ptm_plugin_at(i, &info), PTM_OK);
            cr_assert_not_null(info.name);
        }
        r->lookups++;
    }
    return NULL;
}

Test(loader, registry_reads_are_safe_while_plugins_load)
{
    pthread_t th[4];
    struct reader r = {0};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, read_registry, &r), 0);
    }
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toyarch.so")), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_plugin_load(GOOD("libptm-toybackend.so")), PTM_OK, "%s", ptm_last_error());
    cr_assert_eq(ptm_plugins_scan(), PTM_OK);
    usleep(50000);
    r.stop = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    cr_assert_gt(r.lookups, 0);
    cr_assert_not_null(ptm_arch_find("toy"));
}
