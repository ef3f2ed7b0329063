/* opts.h - one typed table of command-line options drives parsing and help.
 *
 * Each command lists the options it takes by pointing at entries of a table
 * (struct opt_def): long name, optional short letter, kind, bounds, help.
 * cli_parse() fills a struct cli_opts and leaves the positional arguments;
 * cli_usage() prints the command's synopsis and options from the same table,
 * so --help and the parser cannot disagree. */
#ifndef BUOY_CLI_OPTS_H
#define BUOY_CLI_OPTS_H

#include "store/store.h"

#include <stddef.h>
#include <stdio.h>

enum opt_kind { OPT_FLAG, OPT_STR, OPT_INT };

struct cli_opts {
    struct store_opts store;
    const char *log_level;
    int verbose;
    int help;
    int show_stats;
    int long_list;
    int if_none_match;
    const char *if_match;
    const char *range;
    int force;
    const char *size;         /* create: volume size, "16G" */
    const char *block_size;   /* create */
    const char *segment_size; /* create */
    const char *import;       /* create: a disk image to fill the new volume from */
    const char *compression;  /* create: none, zstd, zstd:N */
    const char *passphrase_file; /* create: encrypt; the others: an encrypted volume's */
    const char *new_passphrase_file; /* passphrase: the new one */
    const char *kdf_memory;   /* create, passphrase: Argon2id memory (default 64M) */
    int kdf_passes;           /* create, passphrase: Argon2id passes (default 3) */
    /* volume commands (mount, serve) */
    const char *cache_dir;
    const char *cache_size;
    const char *durability;   /* remote | local */
    int read_only;
    int foreground;
    const char *pid_file;
    const char *log_file;
    int use_syslog;
    const char *syslog_facility; /* daemons: daemon, user, local0..local7 */
    int allow_other;
    const char *fs;           /* mount: make and mount this filesystem on a loop device */
    const char *fs_dir;       /* mount: where */
    int json;                 /* stats */
    const char *threshold;    /* gc: clean segments less live than this */
    int no_gc;                /* mount, serve: no background garbage collection */
    int takeover;             /* volume writers: take the lease from a writer that is gone */
    int lease_ms;             /* volume writers: the writer lease's time */
    const char *socket_path;  /* serve: --socket */
    int port;                 /* serve: --port, 0 when not given */
    const char *bind_addr;    /* serve: --bind (default 127.0.0.1) */
    const char *run_cmd;      /* serve: nbdkit captive mode */
    const char *stats_file;   /* serve: where the statistics are written */
    const char *ha_config;    /* ha: -c FILE */
    const char *ha_cf, *haresources, *authkeys, *key_out, *lease_store, *node; /* ha import */
};

struct opt_def {
    const char *name;
    char short_name;
    enum opt_kind kind;
    const char *metavar;
    size_t offset; /* into struct cli_opts */
    long min, max; /* OPT_INT bounds */
    const char *help;
};

struct cli_cmd {
    const char *name;
    const char *args;     /* synopsis of positional arguments */
    const char *summary;  /* one line */
    const char *const *opts; /* option names this command takes, NULL-terminated */
    int min_args, max_args;  /* positional count; max -1 = unbounded */
    int (*run)(struct cli_opts *o, int argc, char **argv);
};

/* Parses argv (argv[0] is the command word).  On success positional
 * arguments are compacted into argv[0..*nargs).  Prints a one-line error and
 * returns -1 on bad input. */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_opts *o, int *nargs);
void cli_usage(const char *prefix, const struct cli_cmd *cmd, FILE *out);
/* "buoy: <msg>" on stderr; returns 1 so callers can `return cli_error(...)`. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The one exit status rule (buoy(1), EXIT STATUS): a command that failed
 * with EXIT_ERR exits with what its last error said: EXIT_USAGE for a URL
 * buoy does not take, EXIT_NOTFOUND for something that is not there (no
 * volume, bucket, snapshot or file), else EXIT_ERR.  Other codes pass. */
int cli_exit_status(int rc);
/* "buoy FAMILY VERB ...": parses the verb's options from its table entry,
 * handles --help and argument counts, and runs it (cmd_store, cmd_ha). */
int cli_run_verb(const char *family, const struct cli_cmd *verbs, size_t n,
                 void (*usage)(FILE *out), int argc, char **argv);
/* Sets up logging from -v / --log-level. */
void cli_apply_logging(const struct cli_opts *o);

/* Exit codes shared by every command. */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3, EXIT_PRECOND = 4 };
int cli_exit_for(enum store_err e);

#endif
