/* main.c - buoy's entry point: the table of commands and dispatch.
 *
 * Each command lives in its own cmd_*.c file. */
#include "commands.h"
#include "opts.h"

#include <stdio.h>
#include <string.h>

#ifndef BUOY_VERSION
#define BUOY_VERSION "0.1.0"
#endif

static const char *const no_opts[] = {"help", NULL};

static const struct cli_cmd version_cmd = {
    "version", "", "print buoy's version and the libraries it was built with", no_opts, 0, 0,
    cmd_version,
};

static const char *const create_opts[] = {
    "help", "verbose", "log-level", "size", "block-size", "segment-size", "compression", "force",
    "import", "passphrase-file", "kdf-memory", "kdf-passes",
    "cache-dir", "endpoint", "region", "addressing", "profile", "unsigned-payload", "retries",
    "fault", NULL,
};

static const char *const mount_opts[] = {
    "help", "verbose", "log-level", "foreground", "cache-dir", "cache-size", "durability",
    "read-only", "no-gc", "takeover", "lease-ms", "passphrase-file", "fs", "fs-dir", "pid-file",
    "log-file", "syslog", "syslog-facility", "allow-other", "endpoint",
    "region", "addressing", "profile", "unsigned-payload", "retries", "max-inflight", "fault",
    NULL,
};

static const char *const gc_opts[] = {
    "help", "verbose", "log-level", "threshold", "cache-dir", "takeover", "lease-ms",
    "passphrase-file", "endpoint",
    "region",
    "addressing", "profile", "unsigned-payload", "retries", "max-inflight", "fault", NULL,
};

static const char *const snapshot_opts[] = {
    "help", "verbose", "log-level", "cache-dir", "takeover", "lease-ms", "passphrase-file",
    "endpoint", "region",
    "addressing", "profile", "unsigned-payload", "retries", "max-inflight", "fault", NULL,
};

static const char *const clone_opts[] = {
    "help", "verbose", "log-level", "endpoint", "region", "addressing", "profile",
    "unsigned-payload", "retries", "passphrase-file", NULL,
};

static const char *const delete_opts[] = {
    "help", "verbose", "log-level", "force", "cache-dir", "endpoint", "region", "addressing", "profile",
    "unsigned-payload", "retries", "passphrase-file", NULL,
};

static const char *const passphrase_opts[] = {
    "help", "verbose", "log-level", "passphrase-file", "new-passphrase-file", "kdf-memory",
    "kdf-passes", "endpoint", "region", "addressing", "profile", "unsigned-payload", "retries",
    "fault", NULL,
};

static const char *const umount_opts[] = {"help", "verbose", "log-level", "force", NULL};
static const char *const stats_opts[] = {"help", "json", NULL};

static const char *const info_opts[] = {
    "help", "verbose", "log-level", "passphrase-file", "endpoint", "region", "addressing",
    "profile", "unsigned-payload", "retries", "fault", NULL,
};

static const char *const serve_opts[] = {
    "help", "verbose", "log-level", "socket", "port", "bind", "cache-dir", "durability",
    "read-only", "no-gc", "takeover", "lease-ms", "passphrase-file", "foreground", "pid-file",
    "stats-file", "run", "log-file", "syslog", "syslog-facility",
    "endpoint", "region", "addressing", "profile", "unsigned-payload", "retries", "max-inflight",
    "fault", NULL,
};

/* Commands that take the common parse: name, args, summary, options, counts, run. */
static const struct cli_cmd commands[] = {
    {"create", "URL", "make a new, empty volume at URL (--size is required)", create_opts, 1, 1,
     cmd_create},
    {"info", "URL", "show a volume's size, segments, live and garbage bytes, last checkpoint",
     info_opts, 1, 1, cmd_info},
    {"mount", "URL MOUNTPOINT",
     "serve a volume as the file MOUNTPOINT/disk (FUSE), with MOUNTPOINT/stats beside it",
     mount_opts, 2, 2, cmd_mount},
    {"umount", "MOUNTPOINT|FS-DIR",
     "undo buoy mount: unmount --fs, upload everything (with progress), unmount; --force: even "
     "when the upload fails",
     umount_opts, 1, 1, cmd_umount},
    {"stats", "MOUNTPOINT|FS-DIR", "print a mounted volume's statistics", stats_opts, 1, 1,
     cmd_stats},
    {"snapshot", "create|list|delete URL|MOUNTPOINT [NAME]",
     "named, instant, copy-free states of a volume; URL@NAME opens one read-only", snapshot_opts, 2,
     3, cmd_snapshot},
    {"clone", "URL@NAME NEWURL",
     "make a writable volume at NEWURL that starts as snapshot NAME and shares its data", clone_opts,
     2, 2, cmd_clone},
    {"delete", "URL",
     "delete a volume and its snapshots (refused while it is in use or a clone reads it)",
     delete_opts, 1, 1, cmd_delete},
    {"passphrase", "URL",
     "change an encrypted volume's passphrase (one superblock rewrite; no data is touched)",
     passphrase_opts, 1, 1, cmd_passphrase},
    {"gc", "URL",
     "garbage-collect a volume that is not in use: copy what is live out of mostly dead "
     "segments, delete them",
     gc_opts, 1, 1, cmd_gc},
    {"serve", "URL", "export a volume over NBD (through nbdkit) on a unix socket or a TCP port",
     serve_opts, 1, 1, cmd_serve},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: buoy COMMAND [options] ARGS...\n"
            "buoy keeps a server's disk in an object store and its service on a live node.\n"
            "\n"
            "commands:\n"
            "  create URL --size N               make a new, empty volume\n"
            "  info URL                          size, segments, live and garbage bytes\n"
            "  mount URL MOUNTPOINT [--fs ext4 --fs-dir DIR]\n"
            "                                    serve it as MOUNTPOINT/disk (FUSE)\n"
            "  umount MOUNTPOINT                 upload everything, then unmount\n"
            "  stats MOUNTPOINT [--json]         requests, bytes, cache, cost\n"
            "  gc URL                            reclaim space of overwritten data\n"
            "  snapshot create|list|delete URL|MOUNTPOINT [NAME]\n"
            "                                    instant snapshots; URL@NAME reads one\n"
            "  clone URL@NAME NEWURL             a writable copy of a snapshot, sharing its data\n"
            "  delete URL                        delete a volume, its snapshots and its data\n"
            "  passphrase URL --passphrase-file F --new-passphrase-file G\n"
            "                                    change an encrypted volume's passphrase\n"
            "  serve URL --socket P | --port N   export a volume over NBD\n"
            "  store ls|get|put|rm|head URL ...  operate on the objects of a store\n"
            "  ha run|status|standby|takeover|online|clear|reload|check-config|keys|import\n"
            "                                    the failover daemon and its controls\n"
            "  version                           print the version\n"
            "\n"
            "A store URL is a path or dir:///path (a local directory store) or\n"
            "s3://bucket[/prefix] (S3 or an S3-compatible server with --endpoint).\n"
            "Run 'buoy COMMAND --help' for a command's options; 'man buoy' for all of it.\n");
}

int main(int argc, char **argv)
{
    /* A person's command: a store that refuses connections fails it at
     * once; the daemons say otherwise once they serve (store.h). */
    store_retry_unreachable(0);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
        struct cli_opts o = {0};
        int n;
        if (cli_parse(&version_cmd, argc - 1, argv + 1, &o, &n) < 0)
            return EXIT_USAGE;
        if (o.help) {
            cli_usage("buoy", &version_cmd, stdout);
            return EXIT_OK;
        }
        return cmd_version(&o, n, argv + 1);
    }
    if (strcmp(c, "store") == 0)
        return cmd_store(argc - 1, argv + 1);
    if (strcmp(c, "ha") == 0)
        return cmd_ha(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct cli_cmd *cmd = &commands[i];
        struct cli_opts o = {.store = {.retries = -1}};
        int n;
        if (strcmp(c, cmd->name) != 0)
            continue;
        if (cli_parse(cmd, argc - 1, argv + 1, &o, &n) < 0)
            return EXIT_USAGE;
        if (o.help) {
            cli_usage("buoy", cmd, stdout);
            return EXIT_OK;
        }
        if (n < cmd->min_args || (cmd->max_args >= 0 && n > cmd->max_args)) {
            cli_error("%s: expected %s; see buoy %s --help", cmd->name, cmd->args, cmd->name);
            return EXIT_USAGE;
        }
        cli_apply_logging(&o);
        return cli_exit_status(cmd->run(&o, n, argv + 1));
    }
    cli_error("unknown command '%s'; see buoy --help", c);
    return EXIT_USAGE;
}
