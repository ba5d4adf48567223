/*
 * main.c - the ptm command: dispatch to subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "ptm/ptm.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ptm %s\n", ptm_version());
        return 0;
    }
    fprintf(stderr, "usage: ptm --version\n");
    return 2;
}
