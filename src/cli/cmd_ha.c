/* cmd_ha.c - "buoy ha run|status [--json]|standby|takeover|online|clear|reload|
 * check-config|keys|import": the failover daemon and its controls.
 *
 * run starts the daemon in the foreground (src/ha/ha_daemon.c); the control
 * verbs send one line to its unix socket and print the answer; check-config
 * loads a configuration and says what it found or the first thing wrong;
 * keys prints the configuration table; import converts Heartbeat's files. */
#include "commands.h"
#include "ha/ha_conf.h"
#include "ha/ha_daemon.h"
#include "ha/ha_import.h"
#include "util/buf.h"
#include "util/mem.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/buoy/ha.conf"

static const char *const run_opts[] = {"help",     "verbose", "log-level",       "config",
                                       "log-file", "syslog",  "syslog-facility", NULL};
static const char *const ctl_opts[] = {"help", "config", "socket", NULL};
static const char *const status_opts[] = {"help", "config", "socket", "json", NULL};
static const char *const conf_opts[] = {"help", "config", NULL};
static const char *const keys_opts[] = {"help", NULL};
static const char *const import_opts[] = {"help",    "ha-cf",       "haresources", "authkeys",
                                          "key-out", "lease-store", "node",        NULL};

static int do_run(struct cli_opts *o, int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    int rc = cli_log_check("ha run", o, 0);
    if (rc)
        return rc;
    char err[512];
    if (cli_log_start(o, 0, err, sizeof err) < 0)
        return cli_error("ha run: %s", err);
    store_retry_unreachable(1); /* a daemon: it rides out a store outage */
    return ha_daemon_run(o->ha_config ? o->ha_config : DEFAULT_CONF, n > 0 ? self : "buoy");
}

/* Sends cmd (the verb, or status-json) to the daemon; messages name verb. */
static int control_cmd(struct cli_opts *o, const char *verb, const char *cmd)
{
    char err[1024];
    const char *path = o->socket_path;
    struct ha_conf c;
    int have_conf = 0;
    if (geteuid() != 0)
        return cli_error("ha %s: the control socket is for root only; run it as root (sudo)", verb);
    if (!path) {
        const char *cf = o->ha_config ? o->ha_config : DEFAULT_CONF;
        if (ha_conf_load(&c, cf, err, sizeof err) < 0) {
            ha_conf_free(&c);
            return cli_error("ha %s: %s (or give --socket PATH)", verb, err);
        }
        have_conf = 1;
        path = c.control;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = EXIT_ERR;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        cli_error("ha %s: cannot reach the daemon at %s: %s; is buoy ha run going?", verb, path,
                  strerror(errno));
        goto out;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char line[64];
    snprintf(line, sizeof line, "%s\n", cmd);
    if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
        cli_error("ha %s: %s: %s", verb, path, strerror(errno));
        goto out;
    }
    struct buf ans = {0};
    for (;;) {
        char tmp[4096];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k <= 0)
            break;
        buf_append(&ans, tmp, (size_t)k);
    }
    if (ans.len == 0)
        cli_error("ha %s: the daemon at %s closed without answering", verb, path);
    else if (strncmp(ans.p, "ok", 2) == 0) {
        /* status prints its lines; the others their one-line answer */
        const char *body = ans.p;
        if (strcmp(verb, "status") == 0)
            body = strchr(ans.p, '\n') ? strchr(ans.p, '\n') + 1 : "";
        fputs(body, stdout);
        rc = EXIT_OK;
    } else {
        char *nl = strchr(ans.p, '\n');
        if (nl)
            *nl = '\0';
        cli_error("ha %s: %s", verb, strncmp(ans.p, "error: ", 7) == 0 ? ans.p + 7 : ans.p);
    }
    buf_free(&ans);
out:
    if (fd >= 0)
        close(fd);
    if (have_conf)
        ha_conf_free(&c);
    return rc;
}

static int control(struct cli_opts *o, const char *verb)
{
    return control_cmd(o, verb, verb);
}

static int do_status(struct cli_opts *o, int argc, char **argv)
{
    return control_cmd(o, "status", o->json ? "status-json" : "status");
}
static int do_standby(struct cli_opts *o, int argc, char **argv)
{
    return control(o, "standby");
}
static int do_takeover(struct cli_opts *o, int argc, char **argv)
{
    return control(o, "takeover");
}
static int do_online(struct cli_opts *o, int argc, char **argv)
{
    return control(o, "online");
}
static int do_clear(struct cli_opts *o, int argc, char **argv)
{
    return control(o, "clear");
}
static int do_reload(struct cli_opts *o, int argc, char **argv)
{
    return control(o, "reload");
}

static int do_check_config(struct cli_opts *o, int argc, char **argv)
{
    struct ha_conf c;
    char err[1024];
    const char *cf = o->ha_config ? o->ha_config : DEFAULT_CONF;
    if (ha_conf_load(&c, cf, err, sizeof err) < 0 ||
        ha_conf_check_programs(&c, err, sizeof err) < 0) {
        ha_conf_free(&c);
        return cli_error("%s", err);
    }
    printf("%s: node %s, %d peer(s), %d resource(s), %d check(s); keepalive %llums, deadtime "
           "%llums, initdead %llums, lease %llums (margin %llums) in %s\n",
           cf, c.node, c.npeers, c.nres, c.nchecks, (unsigned long long)c.keepalive_ms,
           (unsigned long long)c.deadtime_ms, (unsigned long long)c.initdead_ms,
           (unsigned long long)c.lease_time_ms, (unsigned long long)c.lease_margin_ms,
           c.lease_store);
    ha_conf_free(&c);
    return EXIT_OK;
}

static int do_keys(struct cli_opts *o, int argc, char **argv)
{
    ha_conf_print_keys(stdout);
    return EXIT_OK;
}

static int do_import(struct cli_opts *o, int argc, char **argv)
{
    struct ha_import_opts io = {
        .ha_cf = o->ha_cf ? o->ha_cf : "/etc/ha.d/ha.cf",
        .haresources = o->haresources ? o->haresources : "/etc/ha.d/haresources",
        .authkeys = o->authkeys ? o->authkeys : "/etc/ha.d/authkeys",
        .node = o->node,
        .key_out = o->key_out ? o->key_out : "/etc/buoy/ha.key",
        .lease_store = o->lease_store,
    };
    struct buf out = {0}, warn = {0};
    char err[1024];
    int rc = EXIT_OK;
    if (ha_import(&io, &out, &warn, err, sizeof err) < 0)
        rc = cli_error("ha import: %s", err);
    else
        fputs(out.p, stdout);
    /* one warning a line, after the configuration (or the error) */
    for (const char *line = warn.p; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        fprintf(stderr, "buoy: ha import: warning: %.*s\n", (int)len, line);
        line += len + (nl ? 1 : 0);
    }
    buf_free(&out);
    buf_free(&warn);
    return rc;
}

static const struct cli_cmd verbs[] = {
    {"run", "", "run the failover daemon in the foreground", run_opts, 0, 0, do_run},
    {"status", "", "show nodes, lease, resources, checks and packet counts (--json: as JSON)",
     status_opts, 0, 0, do_status},
    {"standby", "", "give the resources up and stay standby (until online or takeover)", ctl_opts,
     0, 0, do_standby},
    {"takeover", "", "ask the active node to hand the resources to this one", ctl_opts, 0, 0,
     do_takeover},
    {"online", "", "end a manual standby", ctl_opts, 0, 0, do_online},
    {"clear", "", "leave the failed state once the resource is fixed", ctl_opts, 0, 0, do_clear},
    {"reload", "", "re-read the configuration (timings, keys, peers' addresses)", ctl_opts, 0, 0,
     do_reload},
    {"check-config", "", "load a configuration and report it or its first error", conf_opts, 0, 0,
     do_check_config},
    {"keys", "", "list the configuration keys, their kinds and defaults", keys_opts, 0, 0, do_keys},
    {"import", "", "convert Heartbeat's ha.cf, haresources and authkeys", import_opts, 0, 0,
     do_import},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static void ha_usage(FILE *out)
{
    fprintf(out, "usage: buoy ha VERB [options]\n\nverbs:\n");
    for (size_t i = 0; i < NVERBS; i++)
        fprintf(out, "  %-13s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\nRun 'buoy ha VERB --help' for a verb's options; man buoy-ha.conf for the "
                 "configuration.\n");
}

int cmd_ha(int argc, char **argv)
{
    return cli_run_verb("ha", verbs, NVERBS, ha_usage, argc, argv);
}
