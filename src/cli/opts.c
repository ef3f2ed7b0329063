/* opts.c - the option table, the parser and the help printer (see opts.h). */
#include "opts.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(struct cli_opts, f)

static const struct opt_def defs[] = {
    {"help", 'h', OPT_FLAG, NULL, OFF(help), 0, 0, "show this help and exit"},
    {"verbose", 'v', OPT_FLAG, NULL, OFF(verbose), 0, 0, "log more (info; twice for debug)"},
    {"log-level", 0, OPT_STR, "LEVEL", OFF(log_level), 0, 0, "error, warn, notice (default), info or debug"},
    {"endpoint", 0, OPT_STR, "URL", OFF(store.endpoint), 0, 0,
     "S3 endpoint, e.g. http://127.0.0.1:9000 (default: AWS)"},
    {"region", 0, OPT_STR, "REGION", OFF(store.region), 0, 0,
     "S3 region (default $AWS_REGION, else us-east-1)"},
    {"addressing", 0, OPT_STR, "path|virtual|auto", 0, 0, 0,
     "S3 bucket addressing (default auto: path with --endpoint, virtual on AWS)"},
    {"profile", 0, OPT_STR, "NAME", OFF(store.profile), 0, 0,
     "profile in ~/.aws/credentials (default $AWS_PROFILE, else the credential chain)"},
    {"unsigned-payload", 0, OPT_FLAG, NULL, OFF(store.unsigned_payload), 0, 0,
     "do not hash request bodies for the signature (use with https)"},
    {"retries", 0, OPT_INT, "N", OFF(store.retries), 0, 100,
     "retries of a failed request (default 8)"},
    {"max-inflight", 0, OPT_INT, "N", OFF(store.max_inflight), 1, 1024,
     "concurrent S3 requests (default 64)"},
    {"fault", 0, OPT_STR, "SPEC", OFF(store.fault), 0, 0,
     "inject faults, e.g. err=0.05,latency=20,seed=7 (testing)"},
    {"stats", 0, OPT_FLAG, NULL, OFF(show_stats), 0, 0, "print request counts to stderr at the end"},
    {"long", 'l', OPT_FLAG, NULL, OFF(long_list), 0, 0, "show size, time and ETag"},
    {"if-none-match", 0, OPT_FLAG, NULL, OFF(if_none_match), 0, 0,
     "only create: fail if the key exists"},
    {"if-match", 0, OPT_STR, "ETAG", OFF(if_match), 0, 0,
     "only if the object's current ETag is ETAG"},
    {"range", 0, OPT_STR, "FIRST-LAST", OFF(range), 0, 0,
     "bytes FIRST..LAST inclusive (LAST may be empty: to the end)"},
    {"force", 0, OPT_FLAG, NULL, OFF(force), 0, 0, "do it even where it is refused"},
    {"size", 's', OPT_STR, "SIZE", OFF(size), 0, 0, "volume size in bytes, or with K, M, G, T"},
    {"block-size", 0, OPT_STR, "SIZE", OFF(block_size), 0, 0,
     "map granularity: 512 to 64K, a power of two (default 4K)"},
    {"segment-size", 0, OPT_STR, "SIZE", OFF(segment_size), 0, 0,
     "bytes of data per segment object (default 8M, at most 256M)"},
    {"compression", 0, OPT_STR, "none|zstd[:N]", OFF(compression), 0, 0,
     "compress segment data with zstd (level N, 1..19, default 3); default none"},
    {"passphrase-file", 0, OPT_STR, "FILE", OFF(passphrase_file), 0, 0,
     "the encrypted volume's passphrase"},
    {"new-passphrase-file", 0, OPT_STR, "FILE", OFF(new_passphrase_file), 0, 0,
     "the volume's new passphrase"},
    {"kdf-memory", 0, OPT_STR, "SIZE", OFF(kdf_memory), 0, 0,
     "memory the passphrase's Argon2id takes (default 64M, 8K..4G)"},
    {"kdf-passes", 0, OPT_INT, "N", OFF(kdf_passes), 1, 64,
     "passes of Argon2id over that memory (default 3)"},
    {"import", 0, OPT_STR, "FILE", OFF(import), 0, 0,
     "fill the new volume from this disk image (raw); --size defaults to its size"},
    {"cache-dir", 0, OPT_STR, "DIR", OFF(cache_dir), 0, 0,
     "local journal and block cache (default /var/cache/buoy, ~/.cache/buoy if not root)"},
    {"cache-size", 0, OPT_STR, "SIZE", OFF(cache_size), 0, 0,
     "local block cache on disk (default 512M; 0 for none)"},
    {"durability", 0, OPT_STR, "remote|local", OFF(durability), 0, 0,
     "a flush returns once data is in the store (remote, default) or the local journal"},
    {"read-only", 'r', OPT_FLAG, NULL, OFF(read_only), 0, 0, "serve the volume read-only"},
    {"foreground", 'f', OPT_FLAG, NULL, OFF(foreground), 0, 0,
     "stay in the foreground, log to stderr"},
    {"pid-file", 0, OPT_STR, "FILE", OFF(pid_file), 0, 0, "write the daemon's pid to FILE"},
    {"log-file", 0, OPT_STR, "FILE", OFF(log_file), 0, 0,
     "the daemon appends its log to FILE, timestamped; SIGHUP reopens it (default: syslog)"},
    {"syslog", 0, OPT_FLAG, NULL, OFF(use_syslog), 0, 0, "log to syslog, also in the foreground"},
    {"syslog-facility", 0, OPT_STR, "NAME", OFF(syslog_facility), 0, 0,
     "log to syslog as daemon (default), user or local0..local7"},
    {"allow-other", 0, OPT_FLAG, NULL, OFF(allow_other), 0, 0,
     "let other users open the disk file (FUSE allow_other)"},
    {"fs", 0, OPT_STR, "TYPE", OFF(fs), 0, 0,
     "attach the disk to a loop device, make a TYPE filesystem on first use, mount it"},
    {"fs-dir", 0, OPT_STR, "DIR", OFF(fs_dir), 0, 0, "where --fs mounts the filesystem"},
    {"json", 0, OPT_FLAG, NULL, OFF(json), 0, 0, "print JSON"},
    {"threshold", 0, OPT_STR, "FRACTION", OFF(threshold), 0, 0,
     "clean segments whose live share is below this (default 0.5)"},
    {"takeover", 0, OPT_FLAG, NULL, OFF(takeover), 0, 0,
     "take the volume from a writer that stopped renewing its lease (waits for it)"},
    {"lease-ms", 0, OPT_INT, "MS", OFF(lease_ms), 100, 3600000,
     "the writer lease's time (default 10000): a takeover waits this long"},
    {"no-gc", 0, OPT_FLAG, NULL, OFF(no_gc), 0, 0,
     "no garbage collection in the background (buoy gc does it then)"},
    {"socket", 0, OPT_STR, "PATH", OFF(socket_path), 0, 0,
     "the daemon's control socket (default from the configuration)"},
    {"port", 0, OPT_INT, "N", OFF(port), 1, 65535, "serve on TCP port N (loopback unless --bind)"},
    {"bind", 0, OPT_STR, "ADDR", OFF(bind_addr), 0, 0,
     "IP address the TCP port listens on (default 127.0.0.1)"},
    {"stats-file", 0, OPT_STR, "FILE", OFF(stats_file), 0, 0,
     "write the volume's statistics to FILE every second, for buoy stats FILE"},
    {"run", 0, OPT_STR, "CMD", OFF(run_cmd), 0, 0,
     "serve only while shell command CMD runs ($uri: the export)"},
    {"config", 'c', OPT_STR, "FILE", OFF(ha_config), 0, 0,
     "failover configuration (default /etc/buoy/ha.conf)"},
    {"ha-cf", 0, OPT_STR, "FILE", OFF(ha_cf), 0, 0, "Heartbeat's ha.cf (default /etc/ha.d/ha.cf)"},
    {"haresources", 0, OPT_STR, "FILE", OFF(haresources), 0, 0,
     "Heartbeat's haresources (default /etc/ha.d/haresources)"},
    {"authkeys", 0, OPT_STR, "FILE", OFF(authkeys), 0, 0,
     "Heartbeat's authkeys (default /etc/ha.d/authkeys)"},
    {"key-out", 0, OPT_STR, "FILE", OFF(key_out), 0, 0,
     "where to write the shared key, mode 0600 (default /etc/buoy/ha.key)"},
    {"lease-store", 0, OPT_STR, "URL", OFF(lease_store), 0, 0,
     "store URL for the lease (Heartbeat has none; required)"},
    {"node", 0, OPT_STR, "NAME", OFF(node), 0, 0, "this node's name (default: uname -n)"},
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* Where an option means something particular to one command, its help
 * there (cli_usage); the parser is the same. */
static const struct {
    const char *cmd, *opt, *help;
} helps[] = {
    {"create", "force", "replace a volume that exists at URL (its objects are deleted)"},
    {"delete", "force", "delete even while the volume's writer lease is held (a writer gone)"},
    {"umount", "force",
     "unmount even when the final upload fails (it says what is left out of the store)"},
    {"create", "passphrase-file", "encrypt the new volume under the passphrase in FILE"},
    {"passphrase", "passphrase-file", "the volume's current passphrase"},
    {"serve", "socket", "the unix socket to serve NBD on"},
    {"serve", "read-only", "export the volume read-only"},
    {"mount", "read-only", "mount the volume read-only"},
};

static const char *help_of(const struct cli_cmd *cmd, const struct opt_def *d)
{
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strcmp(helps[i].cmd, cmd->name) == 0 && strcmp(helps[i].opt, d->name) == 0)
            return helps[i].help;
    return d->help;
}

static const struct opt_def *find(const struct cli_cmd *cmd, const char *name, char short_name)
{
    for (const char *const *n = cmd->opts; n && *n; n++)
        for (size_t i = 0; i < NDEFS; i++)
            if (strcmp(defs[i].name, *n) == 0 &&
                (name ? strcmp(name, *n) == 0 : (short_name && defs[i].short_name == short_name)))
                return &defs[i];
    return NULL;
}

/* What the last error said, for cli_exit_status(). */
static int last_error_status = EXIT_ERR;

/* The exit status an error message stands for: the messages that name a
 * missing thing or a URL buoy does not take, wherever they were made (the
 * store layer, the engine, the CLI).  t0030 walks every command through
 * these cases, so a message that changes shape is caught there. */
static int status_of(const char *msg)
{
    static const char *const usage[] = {"unknown store URL scheme", NULL};
    static const char *const missing[] = {
        "no volume at ", "' does not exist", "no snapshot named ", NULL,
    };
    /* a file or directory the user named, when it is not there */
    static const char *const named[] = {
        "passphrase file ", "passphrase-file ", "mount point ", "--fs-dir ", "cannot read ", NULL,
    };
    for (const char *const *p = usage; *p; p++)
        if (strstr(msg, *p))
            return EXIT_USAGE;
    for (const char *const *p = missing; *p; p++)
        if (strstr(msg, *p))
            return EXIT_NOTFOUND;
    if (strstr(msg, strerror(ENOENT)))
        for (const char *const *p = named; *p; p++)
            if (strstr(msg, *p))
                return EXIT_NOTFOUND;
    return EXIT_ERR;
}

int cli_error(const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "buoy: %s\n", msg);
    last_error_status = status_of(msg);
    return EXIT_ERR;
}

int cli_exit_status(int rc)
{
    return rc == EXIT_ERR ? last_error_status : rc;
}

static int set(const struct cli_cmd *cmd, const struct opt_def *d, const char *val,
               struct cli_opts *o)
{
    char *p = (char *)o + d->offset;
    if (strcmp(d->name, "addressing") == 0) {
        if (strcmp(val, "path") == 0)
            o->store.addressing = STORE_ADDR_PATH;
        else if (strcmp(val, "virtual") == 0)
            o->store.addressing = STORE_ADDR_VIRTUAL;
        else if (strcmp(val, "auto") == 0)
            o->store.addressing = STORE_ADDR_AUTO;
        else
            return cli_error("%s: --addressing takes path, virtual or auto, not '%s'", cmd->name,
                             val),
                   -1;
        return 0;
    }
    switch (d->kind) {
    case OPT_FLAG:
        (*(int *)p)++;
        return 0;
    case OPT_STR:
        *(const char **)p = val;
        return 0;
    case OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < d->min || v > d->max) {
            cli_error("%s: --%s takes a whole number from %ld to %ld, not '%s'", cmd->name,
                      d->name, d->min, d->max, val);
            return -1;
        }
        *(int *)p = (int)v;
        return 0;
    }
    }
    return -1;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_opts *o, int *nargs)
{
    int n = 0, only_args = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        const struct opt_def *d = NULL;
        const char *val = NULL;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            argv[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (a[1] == '-') {
            char name[64];
            const char *eq = strchr(a + 2, '=');
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a - 2) : (int)strlen(a + 2), a + 2);
            d = find(cmd, name, 0);
            if (!d)
                return cli_error("%s: unknown option '--%s'; see buoy %s --help", cmd->name, name,
                                 cmd->name),
                       -1;
            if (eq && d->kind == OPT_FLAG)
                return cli_error("%s: --%s takes no value", cmd->name, name), -1;
            val = eq ? eq + 1 : NULL;
        } else {
            /* short flags may be bundled: -lv */
            for (const char *c = a + 1; *c; c++) {
                d = find(cmd, NULL, *c);
                if (!d)
                    return cli_error("%s: unknown option '-%c'; see buoy %s --help", cmd->name, *c,
                                     cmd->name),
                           -1;
                if (d->kind != OPT_FLAG) {
                    val = c[1] ? c + 1 : NULL;
                    break;
                }
                if (set(cmd, d, NULL, o) < 0)
                    return -1;
                d = NULL;
            }
            if (!d)
                continue;
        }
        if (d->kind != OPT_FLAG && !val) {
            if (i + 1 >= argc)
                return cli_error("%s: --%s needs a value (%s)", cmd->name, d->name, d->metavar),
                       -1;
            val = argv[++i];
        }
        if (set(cmd, d, val, o) < 0)
            return -1;
    }
    *nargs = n;
    return 0;
}

void cli_usage(const char *prefix, const struct cli_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: %s %s [options] %s\n%s\n", prefix, cmd->name, cmd->args, cmd->summary);
    if (!cmd->opts || !*cmd->opts)
        return;
    fprintf(out, "\noptions:\n");
    for (const char *const *n = cmd->opts; *n; n++)
        for (size_t i = 0; i < NDEFS; i++) {
            const struct opt_def *d = &defs[i];
            char left[64];
            if (strcmp(d->name, *n) != 0)
                continue;
            if (d->short_name)
                snprintf(left, sizeof left, "-%c, --%s%s%s", d->short_name, d->name,
                         d->metavar ? " " : "", d->metavar ? d->metavar : "");
            else
                snprintf(left, sizeof left, "    --%s%s%s", d->name, d->metavar ? " " : "",
                         d->metavar ? d->metavar : "");
            fprintf(out, "  %-34s %s\n", left, help_of(cmd, d));
        }
}

int cli_run_verb(const char *family, const struct cli_cmd *verbs, size_t n,
                 void (*usage)(FILE *out), int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cli_cmd *v = &verbs[i];
        struct cli_opts o = {.store = {.retries = -1}};
        char prefix[64];
        int nargs;
        if (strcmp(argv[1], v->name) != 0)
            continue;
        if (cli_parse(v, argc - 1, argv + 1, &o, &nargs) < 0)
            return EXIT_USAGE;
        snprintf(prefix, sizeof prefix, "buoy %s", family);
        if (o.help) {
            cli_usage(prefix, v, stdout);
            return EXIT_OK;
        }
        if (nargs < v->min_args || (v->max_args >= 0 && nargs > v->max_args)) {
            if (v->args[0])
                cli_error("%s %s: expected %s; see %s %s --help", family, v->name, v->args,
                          prefix, v->name);
            else
                cli_error("%s %s: takes no arguments; see %s %s --help", family, v->name, prefix,
                          v->name);
            return EXIT_USAGE;
        }
        cli_apply_logging(&o);
        return cli_exit_status(v->run(&o, nargs, argv + 1));
    }
    cli_error("%s: unknown verb '%s'; see buoy %s --help", family, argv[1], family);
    return EXIT_USAGE;
}

void cli_apply_logging(const struct cli_opts *o)
{
    if (o->log_level) {
        int l = log_parse_level(o->log_level);
        if (l >= 0)
            log_set_level((enum log_level)l);
        else
            cli_error("unknown log level '%s' (error, warn, notice, info, debug); keeping notice",
                      o->log_level);
    }
    if (o->verbose)
        log_set_level(o->verbose > 1 ? LOGL_DEBUG : LOGL_INFO);
}

int cli_exit_for(enum store_err e)
{
    switch (e) {
    case STORE_OK:
        return EXIT_OK;
    case STORE_ENOTFOUND:
        return EXIT_NOTFOUND;
    case STORE_EPRECOND:
        return EXIT_PRECOND;
    default:
        return EXIT_ERR;
    }
}
