/* commands.h - every subcommand's entry point, for the table in main.c. */
#ifndef BUOY_CLI_COMMANDS_H
#define BUOY_CLI_COMMANDS_H

#include "opts.h"

int cmd_version(struct cli_opts *o, int argc, char **argv);
int cmd_create(struct cli_opts *o, int argc, char **argv);
int cmd_info(struct cli_opts *o, int argc, char **argv);
/* Opens the store named by url with the common store options; prints the
 * error and returns NULL on failure. */
struct store *cli_open_store(const char *url, struct cli_opts *o);
/* "buoy store <verb> ...": the verb table lives in cmd_store.c. */
int cmd_store(int argc, char **argv);
/* "buoy ha <verb> ...": the failover daemon (cmd_ha.c). */
int cmd_ha(int argc, char **argv);

#endif
