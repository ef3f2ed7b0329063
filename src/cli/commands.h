/* commands.h - every subcommand's entry point, for the table in main.c. */
#ifndef BUOY_CLI_COMMANDS_H
#define BUOY_CLI_COMMANDS_H

#include "opts.h"
#include "vol/vol.h"

int cmd_version(struct cli_opts *o, int argc, char **argv);
int cmd_create(struct cli_opts *o, int argc, char **argv);
int cmd_info(struct cli_opts *o, int argc, char **argv);
int cmd_serve(struct cli_opts *o, int argc, char **argv);
/* Opens the store named by url with the common store options; prints the
 * error and returns NULL on failure. */
struct store *cli_open_store(const char *url, struct cli_opts *o);
int cmd_mount(struct cli_opts *o, int argc, char **argv);
int cmd_umount(struct cli_opts *o, int argc, char **argv);
int cmd_stats(struct cli_opts *o, int argc, char **argv);
int cmd_gc(struct cli_opts *o, int argc, char **argv);
int cmd_snapshot(struct cli_opts *o, int argc, char **argv);
int cmd_clone(struct cli_opts *o, int argc, char **argv);
int cmd_delete(struct cli_opts *o, int argc, char **argv);
int cmd_passphrase(struct cli_opts *o, int argc, char **argv);
/* Deletes a volume's objects (super, lease, seg/, ckpt/, snap/, fence/,
 * clones/), the superblock last, with progress; 0, or -1 with the error printed. */
int cli_wipe_volume(struct store *s, const char *url);
/* Fills vo from the volume options of o (cache dir into dir, with its
 * default); 0, or prints a one-line error and returns EXIT_ERR. */
int cli_vol_opts(const struct cli_opts *o, struct vol_opts *vo, char *dir, size_t dirlen);
/* The daemons' logging options (logopts.c), checked in the person's
 * command: 0, or an exit code with the error printed; makes --log-file
 * absolute.  background: the daemon will not have the terminal. */
int cli_log_check(const char *cmd, struct cli_opts *o, int background);
/* In the daemon: log to the file, syslog or stderr (timestamped) as the
 * options say.  0, or -1 with err. */
int cli_log_start(const struct cli_opts *o, int background, char *err, size_t errlen);
/* A warning when the daemon just started logs to syslog on a host without
 * /dev/log. */
void cli_log_warn_lost(const char *cmd, const struct cli_opts *o, int background);
/* The cache dir: --cache-dir, else /var/cache/buoy for root, else
 * $XDG_CACHE_HOME/buoy or ~/.cache/buoy.  0, or EXIT_ERR with the error printed. */
int cli_cache_dir(const struct cli_opts *o, char *dir, size_t dirlen);
/* Unmounts a buoy FUSE mount (fusermount3 when not root); 0, or -1 and err. */
int cli_unmount_fuse(const char *mp, int lazy, char *err, size_t errlen);
/* Waits up to two minutes for process pid to exit. */
void cli_wait_exit(int pid);
/* "buoy store <verb> ...": the verb table lives in cmd_store.c. */
int cmd_store(int argc, char **argv);
/* "buoy ha <verb> ...": the failover daemon (cmd_ha.c). */
int cmd_ha(int argc, char **argv);

#endif
