/* commands.h - every subcommand's entry point, for the table in main.c. */
#ifndef BUOY_CLI_COMMANDS_H
#define BUOY_CLI_COMMANDS_H

#include "opts.h"

int cmd_version(struct cli_opts *o, int argc, char **argv);
/* "buoy store <verb> ...": the verb table lives in cmd_store.c. */
int cmd_store(int argc, char **argv);

#endif
