/*
 * main.c - the ptm command: global options (--version, --help) and dispatch to the
 * subcommands listed in the table below.
 */
#include <string.h>

#include "cli.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_download, &cli_cmd_embed, &cli_cmd_forward, &cli_cmd_generate,   &cli_cmd_info,
    &cli_cmd_plugins,  &cli_cmd_push,  &cli_cmd_save,    &cli_cmd_scan_cache, &cli_cmd_tokenize,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

int cli_fail(const char *cmd, ptm_status st)
{
    const char *msg = ptm_last_error();
    fprintf(stderr, "ptm %s: %s\n", cmd, msg[0] ? msg : ptm_status_str(st));
    return CLI_FAIL;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }
    return 0;
}

void cli_print_help(const struct cli_command *c)
{
    printf("usage: ptm %s %s\n", c->name, c->usage);
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: ptm [--version] [--help] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    }
    fprintf(f, "\n'ptm <command> --help' describes a command. Environment: PTM_PLUGIN_PATH "
               "(plugin dirs, colon separated), PTM_LOG (debug|info|warn|error), PTM_THREADS.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ptm %s (plugin ABI %d.%d)\n", ptm_version(), PTM_ABI_MAJOR, PTM_ABI_MINOR);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2) {
            for (size_t i = 0; i < N_COMMANDS; i++) {
                if (strcmp(argv[2], commands[i]->name) == 0) {
                    cli_print_help(commands[i]);
                    return CLI_OK;
                }
            }
        }
        print_usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i]->name) == 0) {
            if (cli_wants_help(argc - 1, argv + 1)) {
                cli_print_help(commands[i]);
                return CLI_OK;
            }
            return commands[i]->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "ptm: unknown command \"%s\"\n\n", argv[1]);
    print_usage(stderr);
    return CLI_USAGE;
}
