/*
 * cmd_embed.c - `ptm embed`: sentence embeddings of texts given on the command line or one
 * per line in a file, with a model found by name. People get a cosine similarity matrix;
 * --json gives the vectors.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_MODEL "sentence-transformers/all-MiniLM-L6-v2"

struct texts {
    char **items;
    size_t n, cap;
    int owned; /* items were read from a file */
};

static int add_text(struct texts *t, char *s)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **items = realloc(t->items, cap * sizeof *items);
        if (items == NULL) {
            return -1;
        }
        t->items = items;
        t->cap = cap;
    }
    t->items[t->n++] = s;
    return 0;
}

static int read_lines(const char *path, struct texts *t)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ptm embed: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        char *copy = strdup(line);
        rc = copy && add_text(t, copy) == 0 ? 0 : -1;
        if (rc != 0) {
            free(copy);
        }
    }
    free(line);
    if (f != stdin) {
        fclose(f);
    }
    t->owned = 1;
    return rc;
}

static void print_matrix(const struct texts *t, const float *v, int64_t dim)
{
    for (size_t i = 0; i < t->n; i++) {
        printf("[%zu] %.70s%s\n", i, t->items[i], strlen(t->items[i]) > 70 ? "..." : "");
    }
    printf("\ncosine similarity\n     ");
    for (size_t j = 0; j < t->n; j++) {
        printf(" %6zu", j);
    }
    printf("\n");
    for (size_t i = 0; i < t->n; i++) {
        printf("%4zu ", i);
        for (size_t j = 0; j < t->n; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (int64_t k = 0; k < dim; k++) {
                dot += (double)v[i * dim + k] * v[j * dim + k];
                ni += (double)v[i * dim + k] * v[i * dim + k];
                nj += (double)v[j * dim + k] * v[j * dim + k];
            }
            printf(" %6.3f", dot / (sqrt(ni * nj) + 1e-30));
        }
        printf("\n");
    }
}

static void print_json(const char *model, const struct texts *t, const float *v, int64_t dim,
                       const ptm_embedder *e)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "model", json_object_new_string(model));
    json_object_object_add(root, "dim", json_object_new_int64(dim));
    json_object_object_add(root, "pooling", json_object_new_string(ptm_embedder_pooling(e)));
    json_object_object_add(root, "normalized", json_object_new_boolean(ptm_embedder_normalizes(e)));
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < t->n; i++) {
        json_object *vec = json_object_new_array();
        for (int64_t k = 0; k < dim; k++) {
            json_object_array_add(vec, json_object_new_double(v[i * dim + k]));
        }
        json_object_array_add(list, vec);
    }
    json_object_object_add(root, "embeddings", list);
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
}

static int run(int argc, char **argv)
{
    const char *model = DEFAULT_MODEL, *file = NULL, *device_map = NULL;
    int as_json = 0;
    struct texts t = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--device-map") == 0 && i + 1 < argc) {
            device_map = argv[++i];
        } else if ((strcmp(argv[i], "--model") == 0 || strcmp(argv[i], "--file") == 0) &&
                   i + 1 < argc) {
            *(argv[i][2] == 'm' ? &model : &file) = argv[i + 1];
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "ptm embed: unknown option \"%s\" (see ptm embed --help)\n", argv[i]);
            return CLI_USAGE;
        } else if (add_text(&t, argv[i]) != 0) {
            return CLI_FAIL;
        }
    }
    if (file != NULL && (t.n > 0 || read_lines(file, &t) != 0)) {
        fprintf(stderr, "ptm embed: give texts or --file, not both\n");
        return CLI_USAGE;
    }
    if (t.n == 0) {
        fprintf(stderr, "ptm embed: no texts (see ptm embed --help)\n");
        return CLI_USAGE;
    }
    ptm_embedder *e = NULL;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct ptm_load_opts lo = {.struct_size = sizeof lo, .device_map = device_map};
    ptm_status st = ptm_embedder_load(model, &lo, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    float *v = st == PTM_OK ? malloc(t.n * (size_t)ptm_embedder_dim(e) * sizeof *v) : NULL;
    if (st == PTM_OK && v == NULL) {
        st = PTM_E_NOMEM;
    }
    if (st == PTM_OK) {
        st = ptm_embedder_encode(e, (const char *const *)t.items, t.n, v);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    int rc = CLI_OK;
    if (st != PTM_OK) {
        rc = cli_fail("embed", st);
    } else {
        int64_t dim = ptm_embedder_dim(e);
        if (as_json) {
            print_json(model, &t, v, dim, e);
        } else {
            print_matrix(&t, v, dim);
        }
        fprintf(stderr,
                "ptm embed: %s: %zu texts, dim %lld, %s pooling%s; load %.1f ms, "
                "embed %.1f ms\n",
                model, t.n, (long long)dim, ptm_embedder_pooling(e),
                ptm_embedder_normalizes(e) ? " + normalize" : "",
                (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
                (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6);
    }
    free(v);
    ptm_embedder_free(e);
    for (size_t i = 0; t.owned && i < t.n; i++) {
        free(t.items[i]);
    }
    free(t.items);
    return rc;
}

const struct cli_command cli_cmd_embed = {
    .name = "embed",
    .summary = "sentence embeddings and their cosine similarities",
    .usage = "[--model NAME] [--json] [--device-map SPEC] (TEXT... | --file FILE)\n\n"
             "Embeds each text with a sentence-transformers model (its modules.json decides\n"
             "pooling and normalisation) and prints the cosine similarity matrix.\n"
             "  --model NAME  a local directory, built-in name or Hugging Face repo id in the\n"
             "                cache (default " DEFAULT_MODEL ")\n"
             "  --file FILE   one text per line (- for standard input)\n"
             "  --json        print {model, dim, pooling, normalized, embeddings} instead\n"
             "  --device-map SPEC  place the layers across devices (see ptm info --help)\n",
    .run = run,
};
