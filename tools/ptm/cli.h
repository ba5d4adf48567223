/*
 * cli.h - what the ptm command's subcommands share: the command table entry, option helpers
 * and error reporting. Each subcommand lives in its own cmd_<name>.c.
 */
#ifndef PTM_CLI_H
#define PTM_CLI_H

#include <stdio.h>

#include "ptm/ptm.h"

struct cli_command {
    const char *name;
    const char *summary;
    const char *usage;                 /* full --help text after the "usage:" line */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

/* Exit codes: 0 ok, 1 the operation failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "ptm <cmd>: <ptm_last_error() or status text>" to stderr and return CLI_FAIL. */
int cli_fail(const char *cmd, ptm_status st);

/* 1 if argv holds --help or -h. */
int cli_wants_help(int argc, char **argv);

/* Print a subcommand's help to stdout. */
void cli_print_help(const struct cli_command *c);

extern const struct cli_command cli_cmd_plugins;
extern const struct cli_command cli_cmd_push;
extern const struct cli_command cli_cmd_download;
extern const struct cli_command cli_cmd_scan_cache;
extern const struct cli_command cli_cmd_embed;
extern const struct cli_command cli_cmd_forward;
extern const struct cli_command cli_cmd_generate;
extern const struct cli_command cli_cmd_info;
extern const struct cli_command cli_cmd_save;
extern const struct cli_command cli_cmd_tokenize;

#endif
