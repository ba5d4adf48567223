/*
 * dir_swap.h - replacing a directory's contents as one step: build the new contents in a
 * sibling temporary directory that starts as hard links of the current files, then exchange
 * the two directories with renameat2(RENAME_EXCHANGE). A process killed at any instant leaves
 * the directory wholly old or wholly new.
 */
#ifndef PTM_RUNTIME_DIR_SWAP_H
#define PTM_RUNTIME_DIR_SWAP_H

#include <limits.h>

#include "ptm/ptm_base.h"

struct ptm__dir_swap {
    char dir[PATH_MAX];
    char tmp[PATH_MAX]; /* the sibling being built; write the new contents here */
    int existed;        /* dir was there: tmp mirrors it, and commit exchanges */
};

/* Create tmp beside dir, holding hard links of every file under dir (directories recreated,
 * symlinks copied), so files the writer does not replace carry over. */
ptm_status ptm__dir_swap_begin(const char *dir, struct ptm__dir_swap *s);

/* Make tmp the directory: exchange (or rename when dir did not exist), fsync the parent, and
 * remove the old tree. On a filesystem without RENAME_EXCHANGE, falls back to renaming tmp's
 * files into dir one by one (each file still atomic). */
ptm_status ptm__dir_swap_commit(struct ptm__dir_swap *s);

/* Remove tmp after a failure; dir is untouched. */
void ptm__dir_swap_abort(struct ptm__dir_swap *s);

/* Remove a directory tree (best effort, for temporary trees). */
void ptm__rm_tree(const char *path);

#endif
