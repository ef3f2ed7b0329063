/* cmd_serve.c - "buoy serve URL": export a volume over NBD.
 *
 * buoy does not speak NBD itself: it checks what it can, then replaces
 * itself with nbdkit running our plugin (src/fe/nbdkit_plugin.c), which
 * handles the protocol, daemonising, the pid file and signals.  On SIGTERM
 * nbdkit closes the connections and the plugin closes the volume (flush,
 * upload, checkpoint).
 *
 * Why check first: nbdkit forks into the background, and writes the pid
 * file, before the plugin opens the volume (.after_fork: the engine's
 * threads would not survive the fork).  An open failure would then be a
 * line in syslog and an exit status of 0.  So buoy opens the volume
 * read-only first (the URL, the credentials, the superblock, the checkpoint
 * and segments are all checked) and checks the cache dir, the socket or the
 * port, each failure one line on stderr and exit 1 with nothing left
 * running.  What remains for the real open after the fork is replaying this
 * cache dir's journal; in the foreground that too is an error on stderr and
 * a non-zero exit.
 *
 * nbdkit changes to / when it daemonises, so every path handed to it is
 * made absolute here. */
#include "commands.h"
#include "util/log.h"
#include "util/mem.h"
#include "vol/vol.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PLUGIN_NAME "nbdkit-buoy-plugin.so"
#define DEFAULT_CACHE_DIR "/var/cache/buoy"
#define MAX_ARGS 64

struct argv_list {
    char *v[MAX_ARGS + 1];
    int n;
    char *owned[MAX_ARGS]; /* what param() allocated, freed if exec fails */
    int nowned;
};

static void add(struct argv_list *a, char *s)
{
    if (a->n < MAX_ARGS)
        a->v[a->n++] = s;
}

/* key=value for the plugin, only when value is set. */
static void param(struct argv_list *a, const char *key, const char *value)
{
    if (value && a->nowned < MAX_ARGS) {
        a->owned[a->nowned] = xasprintf("%s=%s", key, value);
        add(a, a->owned[a->nowned++]);
    }
}

/* A path made absolute against the current directory (nbdkit chdirs to /). */
static char *absolute(const char *path)
{
    char cwd[PATH_MAX];
    if (path[0] == '/')
        return xstrdup(path);
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(path);
    return xasprintf("%s/%s", cwd, path[0] == '.' && path[1] == '/' ? path + 2 : path);
}

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* The plugin: $BUOY_NBDKIT_PLUGIN, else next to this executable, else in
 * ../lib/buoy beside it (an installed layout). */
static char *find_plugin(void)
{
    const char *env = getenv("BUOY_NBDKIT_PLUGIN");
    if (env && *env) {
        if (access(env, R_OK) == 0)
            return absolute(env);
        cli_error("serve: BUOY_NBDKIT_PLUGIN=%s: %s", env, strerror(errno));
        return NULL;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        cli_error("serve: cannot read /proc/self/exe: %s; set BUOY_NBDKIT_PLUGIN", strerror(errno));
        return NULL;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    char *here = xasprintf("%s/%s", exe, PLUGIN_NAME);
    char *lib = xasprintf("%s/../lib/buoy/%s", exe, PLUGIN_NAME);
    char *found = access(here, R_OK) == 0 ? here : access(lib, R_OK) == 0 ? lib : NULL;
    if (!found)
        cli_error("serve: the nbdkit plugin is in neither %s nor %s; set BUOY_NBDKIT_PLUGIN", here,
                  lib);
    if (found != here)
        free(here);
    if (found != lib)
        free(lib);
    return found;
}

/* 1 when a socket bound at path is listening, 0 when none, -1 when
 * /proc/net/unix cannot tell.  Looking there rather than connecting spares
 * a running server a connection that ends before its handshake. */
static int unix_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "r");
    char line[4096 + 128];
    int found = 0;
    if (!f)
        return -1;
    if (!fgets(line, sizeof line, f)) { /* the header */
        fclose(f);
        return -1;
    }
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long flags;
        int at = 0;
        line[strcspn(line, "\n")] = '\0';
        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &at) < 1 || !at)
            continue;
        found = (flags & 0x10000) && strcmp(line + at, path) == 0; /* __SO_ACCEPTCON */
    }
    fclose(f);
    return found;
}

/* A unix socket path is free, or holds a stale socket nobody listens on
 * (nbdkit leaves its socket behind when it exits): remove that one. */
static int check_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof sa.sun_path)
        return cli_error("serve: --socket %s is longer than %zu bytes; use a shorter path", path,
                         sizeof sa.sun_path - 1);
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cli_error("serve: --socket %s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return cli_error("serve: --socket %s exists and is not a socket; remove it or choose "
                         "another path",
                         path);
    int busy = unix_listening(path);
    if (busy < 0) {
        memcpy(sa.sun_path, path, strlen(path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return cli_error("serve: socket: %s", strerror(errno));
        busy = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != ECONNREFUSED;
        close(fd);
    }
    if (busy)
        return cli_error("serve: --socket %s is in use by a running server; stop it or choose "
                         "another path",
                         path);
    if (unlink(path) < 0)
        return cli_error("serve: cannot remove the stale socket %s: %s", path, strerror(errno));
    return 0;
}

/* The TCP address can be bound now (as nbdkit will, with SO_REUSEADDR), so
 * a port in use is one clear line rather than nbdkit's two. */
static int check_port(const char *addr, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int g = getaddrinfo(addr, service, &hints, &ai);
    if (g)
        return cli_error("serve: --bind %s: %s", addr, gai_strerror(g));
    int rc = 0;
    for (struct addrinfo *p = ai; p && !rc; p = p->ai_next) {
        int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        int one = 1;
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) < 0 || listen(fd, 1) < 0)
            rc = cli_error("serve: cannot listen on %s port %d: %s; choose another --port", addr,
                           port, strerror(errno));
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

/* Opens the volume read-only and closes it: everything but the journal. */
static int check_volume(const char *url, struct cli_opts *o)
{
    char err[STORE_ERRMSG_MAX];
    struct vol_opts vo = {.store = o->store, .read_only = 1};
    struct vol *v = vol_open(url, &vo, err, sizeof err);
    if (!v)
        return cli_error("%s", err);
    vol_close(v);
    return 0;
}

static const char *addressing_name(enum store_addressing a)
{
    switch (a) {
    case STORE_ADDR_PATH:
        return "path";
    case STORE_ADDR_VIRTUAL:
        return "virtual";
    default:
        return NULL;
    }
}

#ifdef BUOY_ASAN_RUNTIME
/* An ASan build's plugin needs the ASan runtime loaded first in nbdkit,
 * which is not instrumented: preload it (make check's build only), and
 * take it away again from the --run command, whose programs (qemu-img...)
 * do not run well under a preloaded ASan.  Returns the command to run. */
static char *preload_asan(const char *run_cmd)
{
    const char *old = getenv("LD_PRELOAD");
    char *cmd = run_cmd ? xasprintf("unset LD_PRELOAD; %s", run_cmd) : NULL;
    char *v = old && *old ? xasprintf("%s:%s", BUOY_ASAN_RUNTIME, old)
                          : xstrdup(BUOY_ASAN_RUNTIME);
    setenv("LD_PRELOAD", v, 1);
    free(v);
    return cmd;
}
#endif

int cmd_serve(struct cli_opts *o, int argc, char **argv)
{
    const char *url = argv[0];
    char num[16] = "";
    struct argv_list a = {.n = 0};
    if (!o->socket_path == !o->port) {
        cli_error("serve: give one of --socket PATH or --port N; see buoy serve --help");
        return EXIT_USAGE;
    }
    if (o->bind_addr && !o->port) {
        cli_error("serve: --bind goes with --port");
        return EXIT_USAGE;
    }
    if (o->durability && strcmp(o->durability, "remote") != 0 &&
        strcmp(o->durability, "local") != 0) {
        cli_error("serve: --durability takes remote or local, not '%s'", o->durability);
        return EXIT_USAGE;
    }
    if (o->read_only && o->durability) {
        cli_error("serve: --durability means nothing with --read-only");
        return EXIT_USAGE;
    }

    char *plugin = find_plugin();
    if (!plugin)
        return EXIT_ERR;
    /* A path URL is made absolute; scheme URLs (s3://, dir:///) are left. */
    char *vol_url = strstr(url, "://") ? xstrdup(url) : absolute(url);
    char *cache = o->read_only ? NULL : absolute(o->cache_dir ? o->cache_dir : DEFAULT_CACHE_DIR);
    char *sock = o->socket_path ? absolute(o->socket_path) : NULL;
    char *pid = o->pid_file ? absolute(o->pid_file) : NULL;
    int rc = EXIT_ERR;

    if (check_volume(vol_url, o))
        goto out;
    if (cache && (mkdirs(cache) < 0 || access(cache, W_OK | X_OK) < 0)) {
        cli_error("serve: cache dir %s: %s; choose another with --cache-dir", cache,
                  strerror(errno));
        goto out;
    }
    if (sock ? check_socket(sock) : check_port(o->bind_addr ? o->bind_addr : "127.0.0.1", o->port))
        goto out;

    const char *nbdkit = getenv("BUOY_NBDKIT");
    if (!nbdkit || !*nbdkit)
        nbdkit = "nbdkit";
    add(&a, (char *)nbdkit);
    if (o->foreground || o->run_cmd)
        add(&a, "--foreground");
    if (sock) {
        add(&a, "--unix");
        add(&a, sock);
    } else {
        snprintf(num, sizeof num, "%d", o->port);
        add(&a, "--ipaddr");
        add(&a, (char *)(o->bind_addr ? o->bind_addr : "127.0.0.1"));
        add(&a, "--port");
        add(&a, num);
    }
    if (pid) {
        add(&a, "--pidfile");
        add(&a, pid);
    }
    /* Not nbdkit's --readonly (its handling leaks 280 bytes at exit, which
     * fails ASan builds): the plugin's can_write = 0 makes nbdkit advertise
     * the export read-only all the same. */
    if (o->run_cmd) {
        char *run = NULL;
#ifdef BUOY_ASAN_RUNTIME
        run = preload_asan(o->run_cmd);
#endif
        if (run && a.nowned < MAX_ARGS)
            a.owned[a.nowned++] = run;
        add(&a, "--run");
        add(&a, run ? run : (char *)o->run_cmd);
    }
#ifdef BUOY_ASAN_RUNTIME
    else
        preload_asan(NULL);
#endif
    add(&a, plugin);
    param(&a, "url", vol_url);
    param(&a, "cache_dir", cache);
    param(&a, "durability", o->durability);
    param(&a, "readonly", o->read_only ? "true" : NULL);
    param(&a, "syslog", o->foreground || o->run_cmd ? NULL : "true");
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    param(&a, "log_level", levels[log_get_level()]);
    param(&a, "endpoint", o->store.endpoint);
    param(&a, "region", o->store.region);
    param(&a, "profile", o->store.profile);
    param(&a, "addressing", addressing_name(o->store.addressing));
    param(&a, "unsigned_payload", o->store.unsigned_payload ? "true" : NULL);
    if (o->store.retries >= 0) {
        char r[16];
        snprintf(r, sizeof r, "%d", o->store.retries);
        param(&a, "retries", r);
    }
    if (o->store.max_inflight) {
        char m[16];
        snprintf(m, sizeof m, "%d", o->store.max_inflight);
        param(&a, "max_inflight", m);
    }
    param(&a, "fault", o->store.fault);
    a.v[a.n] = NULL;
    if (a.n >= MAX_ARGS) {
        cli_error("serve: too many arguments for nbdkit");
        goto out;
    }
    log_info("serve: exec %s for %s on %s", nbdkit, vol_url, sock ? sock : num);
    fflush(stdout);
    fflush(stderr);
    execvp(nbdkit, a.v);
    cli_error("serve: cannot run %s: %s; install nbdkit (scripts/deps.sh) or set BUOY_NBDKIT",
              nbdkit, strerror(errno));
out:
    for (int i = 0; i < a.nowned; i++)
        free(a.owned[i]);
    free(plugin);
    free(vol_url);
    free(cache);
    free(sock);
    free(pid);
    return rc;
}
