/*
 * cmd_plugins.c - `ptm plugins [--json]`: every plugin on the search path, what it
 * registered (model types and classes, or backends and their devices), and every file the
 * scan refused with the reason.
 */
#include <json-c/json.h>
#include <string.h>

#include "cli.h"

/* Scan refusals arrive as warn-level log lines; keep them to show beside the plugins. */
struct refusals {
    json_object *list;
    int32_t level; /* the user's threshold, for everything else */
};

static void collect(int32_t level, const char *msg, void *user)
{
    struct refusals *r = user;
    if (level >= PTM_LOG_WARN && strncmp(msg, "loader: ", 8) == 0) {
        json_object_array_add(r->list, json_object_new_string(msg + 8));
    } else if (level >= r->level) {
        fprintf(stderr, "ptm: %s\n", msg);
    }
}

static json_object *describe_archs(const char *plugin)
{
    json_object *types = json_object_new_array();
    for (size_t i = 0; i < ptm_arch_count(); i++) {
        const struct ptm_arch *a = ptm_arch_at(i);
        const char *owner = ptm_arch_plugin(a);
        if (owner == NULL || strcmp(owner, plugin) != 0) {
            continue;
        }
        json_object *t = json_object_new_object();
        json_object_object_add(t, "model_type", json_object_new_string(a->model_type));
        json_object *classes = json_object_new_array();
        const char *base = (const char *)a->classes;
        for (size_t k = 0;; k++) {
            const struct ptm_model_class *c = (const void *)(base + k * a->classes->struct_size);
            if (c->name == NULL) {
                break;
            }
            json_object_array_add(classes, json_object_new_string(c->name));
        }
        json_object_object_add(t, "classes", classes);
        json_object_array_add(types, t);
    }
    return types;
}

static json_object *describe_backends(const char *plugin)
{
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < ptm_backend_count(); i++) {
        const char *name = ptm_backend_name_at(i);
        const char *owner = ptm_backend_plugin(name);
        if (owner == NULL || strcmp(owner, plugin) != 0) {
            continue;
        }
        json_object *b = json_object_new_object();
        json_object_object_add(b, "backend", json_object_new_string(name));
        json_object *devs = json_object_new_array();
        int32_t n = 0;
        ptm_status st = ptm_backend_devices(name, &n);
        if (st != PTM_OK || n == 0) {
            json_object_object_add(b, "unavailable", json_object_new_string(ptm_last_error()));
        }
        for (int32_t d = 0; st == PTM_OK && d < n; d++) {
            char dev[256];
            if (ptm_backend_device_name(name, d, dev, sizeof dev) == PTM_OK) {
                json_object_array_add(devs, json_object_new_string(dev));
            }
        }
        json_object_object_add(b, "devices", devs);
        json_object_array_add(list, b);
    }
    return list;
}

static json_object *describe_all(json_object *refused)
{
    json_object *root = json_object_new_object();
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < ptm_plugin_count(); i++) {
        struct ptm_plugin_info info = {.struct_size = sizeof info};
        if (ptm_plugin_at(i, &info) != PTM_OK) {
            continue;
        }
        json_object *p = json_object_new_object();
        int is_arch = info.kind == PTM_PLUGIN_ARCH;
        char abi[32];
        snprintf(abi, sizeof abi, "%u.%u", info.abi_major, info.abi_minor);
        json_object_object_add(p, "name", json_object_new_string(info.name));
        json_object_object_add(p, "kind",
                               json_object_new_string(is_arch ? "architecture" : "backend"));
        json_object_object_add(p, "version", json_object_new_string(info.version));
        json_object_object_add(p, "abi", json_object_new_string(abi));
        json_object_object_add(p, "path", json_object_new_string(info.path));
        json_object_object_add(p, is_arch ? "model_types" : "backends",
                               is_arch ? describe_archs(info.name) : describe_backends(info.name));
        json_object_array_add(list, p);
    }
    json_object_object_add(root, "plugins", list);
    json_object_object_add(root, "skipped", json_object_get(refused));
    return root;
}

static void print_human(json_object *root)
{
    json_object *list = json_object_object_get(root, "plugins");
    size_t n = json_object_array_length(list);
    if (n == 0) {
        printf("no plugins found (search path: PTM_PLUGIN_PATH, then the install directory)\n");
    }
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(list, i);
#define STR(o, k) json_object_get_string(json_object_object_get((o), (k)))
        printf("%-12s %-12s %-8s ABI %-5s %s\n", STR(p, "name"), STR(p, "kind"), STR(p, "version"),
               STR(p, "abi"), STR(p, "path"));
        json_object *types = json_object_object_get(p, "model_types");
        for (size_t k = 0; types && k < json_object_array_length(types); k++) {
            json_object *t = json_object_array_get_idx(types, k);
            json_object *cls = json_object_object_get(t, "classes");
            printf("    model_type %s:", STR(t, "model_type"));
            for (size_t c = 0; c < json_object_array_length(cls); c++) {
                printf(" %s", json_object_get_string(json_object_array_get_idx(cls, c)));
            }
            printf("\n");
        }
        json_object *bes = json_object_object_get(p, "backends");
        for (size_t k = 0; bes && k < json_object_array_length(bes); k++) {
            json_object *b = json_object_array_get_idx(bes, k);
            json_object *devs = json_object_object_get(b, "devices");
            json_object *why = json_object_object_get(b, "unavailable");
            printf("    backend %s:", STR(b, "backend"));
            for (size_t d = 0; d < json_object_array_length(devs); d++) {
                printf(" [%s]", json_object_get_string(json_object_array_get_idx(devs, d)));
            }
            if (why != NULL) {
                printf(" no device (%s)", json_object_get_string(why));
            }
            printf("\n");
        }
#undef STR
    }
    json_object *skipped = json_object_object_get(root, "skipped");
    for (size_t i = 0; i < json_object_array_length(skipped); i++) {
        printf("skipped: %s\n", json_object_get_string(json_object_array_get_idx(skipped, i)));
    }
}

static int run(int argc, char **argv)
{
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else {
            fprintf(stderr, "ptm plugins: unknown option \"%s\"\n", argv[i]);
            return CLI_USAGE;
        }
    }
    struct refusals r = {json_object_new_array(), ptm_log_get_level()};
    ptm_log_set(collect, &r);
    ptm_log_set_level(PTM_LOG_WARN < r.level ? PTM_LOG_WARN : r.level);
    ptm_status st = ptm_plugins_scan();
    ptm_log_set_level(r.level);
    ptm_log_set(NULL, NULL);
    if (st != PTM_OK) {
        json_object_put(r.list);
        return cli_fail("plugins", st);
    }
    json_object *root = describe_all(r.list);
    if (as_json) {
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        print_human(root);
    }
    json_object_put(root);
    json_object_put(r.list);
    return CLI_OK;
}

const struct cli_command cli_cmd_plugins = {
    .name = "plugins",
    .summary = "list plugins: architectures, backends and their devices",
    .usage = "[--json]\n\n"
             "Scans PTM_PLUGIN_PATH, then the install directory, and lists each plugin: name,\n"
             "kind, version, ABI, path, and its model types and classes (architectures) or\n"
             "backends and devices. Files the scan refused are listed with the reason.\n"
             "  --json   print the same as JSON\n",
    .run = run,
};
