/*
 * check.h -- `lossweight check DATA_DIR` (tools/check.c): will this data
 * directory recover, and what is in it.
 */
#ifndef LW_TOOL_CHECK_H
#define LW_TOOL_CHECK_H

#include <stdio.h>

/* argv[0] is "check". The exit status: 0 recovers (as is, or after dropping
 * a torn tail), 1 would not (corrupt, unreadable), 2 a usage error. */
int cmd_check(int argc, char **argv);
/* The usage lines of `check`, for the tool's --help. */
void check_usage(FILE *f);

#endif /* LW_TOOL_CHECK_H */
