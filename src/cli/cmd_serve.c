/* cmd_serve.c - "buoy serve URL": export a volume over NBD.
 *
 * buoy does not speak NBD itself: it checks what it can, then runs nbdkit
 * with our plugin (src/fe/nbdkit_plugin.c), which handles the protocol, the
 * pid file and signals.  On SIGTERM nbdkit closes the connections and the
 * plugin closes the volume (flush, upload, checkpoint).
 *
 * Why check first: nbdkit writes the pid file, and in its own daemon mode
 * forks away, before the plugin opens the volume (.after_fork: the engine's
 * threads would not survive a fork).  An open failure would then be a line
 * in syslog and an exit status of 0.  So buoy opens the volume read-only
 * first (the URL, the credentials, the superblock, the checkpoint and the
 * segments are all checked) and checks the cache dir, the socket or the
 * port, each failure one line on stderr and exit 1 with nothing left
 * running.  What remains for the real open is replaying this cache dir's
 * journal; in the foreground that too is an error on stderr and a non-zero
 * exit.
 *
 * In the foreground (-f, --run) buoy replaces itself with nbdkit.  In the
 * background it does the daemonising itself, because nbdkit's parent
 * returns before its child has written the pid file: a child in a new
 * session execs nbdkit --foreground --log=syslog (or, with --log-file, with
 * its stderr on that file) and ready_fd=N, a pipe on which the plugin's
 * .after_fork says "ok" or the error that kept it from opening the volume
 * (another writer holds the lease, the journal cannot be replayed...).
 * buoy returns 0 only after "ok" and once the pid file names the server;
 * otherwise it prints the daemon's own error, makes sure the server is gone
 * and exits 1.
 *
 * Every path handed to nbdkit is made absolute; the daemon runs in /. */
#include "commands.h"
#include "util/log.h"
#include "util/mem.h"
#include "vol/vol.h"
#include "util/path.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PLUGIN_NAME "nbdkit-buoy-plugin.so"
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
    struct vol_opts vo = {.store = o->store, .read_only = 1,
                          .passphrase_file = o->passphrase_file};
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
 * which is not instrumented: preload it (make check's build only).  Leak
 * checking is off in nbdkit: nbdkit 1.32 itself leaks a 280-byte block at
 * exit now and then (a race with its connection threads), and its frames
 * have no symbols a suppression could name without also hiding ours.
 * Memory errors and undefined behaviour in the plugin are still fatal.
 * The --run command gets the caller's environment back: its programs
 * (qemu-img...) do not run well under a preloaded ASan.  Returns the
 * command to run, or NULL. */
static char *preload_asan(const char *run_cmd)
{
    const char *old = getenv("LD_PRELOAD");
    const char *opts = getenv("ASAN_OPTIONS");
    char *cmd = NULL;
    if (run_cmd) {
        if (opts && !strchr(opts, '\''))
            cmd = xasprintf("unset LD_PRELOAD; ASAN_OPTIONS='%s'; %s", opts, run_cmd);
        else
            cmd = xasprintf("unset LD_PRELOAD; %s", run_cmd);
    }
    char *v = old && *old ? xasprintf("%s:%s", BUOY_ASAN_RUNTIME, old)
                          : xstrdup(BUOY_ASAN_RUNTIME);
    setenv("LD_PRELOAD", v, 1);
    free(v);
    v = opts && *opts ? xasprintf("%s:detect_leaks=0", opts) : xstrdup("detect_leaks=0");
    setenv("ASAN_OPTIONS", v, 1);
    free(v);
    return cmd;
}
#endif

/* The pid in path, or 0. */
static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    long p = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &p) != 1)
        p = 0;
    fclose(f);
    return (pid_t)p;
}

/* 1 when pid is a live process (not a zombie), else 0. */
static int alive(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] != 'Z';
}

/* Reads what the plugin writes to its ready_fd until it closes: "ok", or
 * the error that kept it from opening the volume, or nothing when nbdkit
 * died before that. */
static void read_ready(int fd, char *msg, size_t size)
{
    size_t n = 0;
    ssize_t r;
    while (n < size - 1 &&
           ((r = read(fd, msg + n, size - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    msg[n] = '\0';
}

/* Waits up to 10 s for pid to be gone (it failed; nothing may be left). */
static void reap(pid_t pid)
{
    for (int i = 0; i < 500 && alive(pid); i++)
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    if (alive(pid)) {
        kill(pid, SIGKILL);
        for (int i = 0; i < 250 && alive(pid); i++)
            nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
}

/* Runs a (argv for nbdkit) in the background: a new session in /, stdio on
 * /dev/null, reparented away from us before the exec (nbdkit in the
 * foreground asks for SIGTERM when its parent dies, and we are about to).
 * Returns 0 once the plugin has said on its ready_fd that the volume is
 * open and nbdkit has written its pid to pid_path: it listens then.  Any
 * failure is the daemon's own message and nothing is left running. */
static int daemonise(struct argv_list *a, const char *pid_path, const char *log_file)
{
    int fds[2], ready[2];
    pid_t server = 0;
    unlink(pid_path);
    if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
        return cli_error("serve: pipe: %s", strerror(errno));
    if (ready[1] < 3) { /* stdio is about to become /dev/null */
        int moved = fcntl(ready[1], F_DUPFD_CLOEXEC, 3);
        if (moved < 0)
            return cli_error("serve: fcntl: %s", strerror(errno));
        close(ready[1]);
        ready[1] = moved;
    }
    char rfd[16];
    snprintf(rfd, sizeof rfd, "%d", ready[1]);
    param(a, "ready_fd", rfd);
    a->v[a->n] = NULL;
    pid_t mid = fork();
    if (mid < 0)
        return cli_error("serve: fork: %s", strerror(errno));
    if (mid == 0) {
        pid_t me = getpid();
        if (setsid() < 0)
            _exit(1);
        pid_t p = fork();
        if (p != 0) { /* the middle: tell the server's pid and go */
            if (p > 0 && write(fds[1], &p, sizeof p) != (ssize_t)sizeof p)
                _exit(1);
            _exit(p > 0 ? 0 : 1);
        }
        int fd = open("/dev/null", O_RDWR);
        /* nbdkit's own messages go to the log file too (--log=stderr) */
        int err = log_file ? open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0640) : fd;
        while (getppid() == me)
            nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
        if (fd < 0 || err < 0 || chdir("/") < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 ||
            dup2(err, 2) < 0 || fcntl(ready[1], F_SETFD, 0) < 0)
            _exit(126);
        execvp(a->v[0], a->v);
        _exit(127);
    }
    close(fds[1]);
    close(ready[1]);
    int status;
    ssize_t got = read(fds[0], &server, sizeof server);
    close(fds[0]);
    waitpid(mid, &status, 0);
    if (got != (ssize_t)sizeof server || server <= 0) {
        close(ready[0]);
        return cli_error("serve: cannot start the server process");
    }
    char msg[STORE_ERRMSG_MAX + 64];
    read_ready(ready[0], msg, sizeof msg);
    close(ready[0]);
    if (strcmp(msg, "ok") != 0) {
        reap(server);
        unlink(pid_path);
        if (msg[0])
            return cli_error("%s", msg);
        return cli_error("serve: nbdkit exited before it opened the volume; see %s",
                         log_file ? log_file : "the system log (or run with -f)");
    }
    for (int i = 0; i < 60 * 50; i++) { /* 60 s */
        if (read_pid(pid_path) == server)
            return 0;
        if (!alive(server)) {
            unlink(pid_path);
            return cli_error("serve: nbdkit exited after opening the volume, before serving; "
                             "see %s",
                             log_file ? log_file : "the system log");
        }
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
    kill(server, SIGTERM);
    reap(server);
    return cli_error("serve: nbdkit did not start serving within 60 s; stopped it");
}

/* The program a bare name finds on $PATH, to say so before forking. */
static int runnable(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    char *copy = xstrdup(path && *path ? path : "/usr/bin:/bin");
    int ok = 0;
    for (char *save, *d = strtok_r(copy, ":", &save); d && !ok; d = strtok_r(NULL, ":", &save)) {
        char *f = xasprintf("%s/%s", d, prog);
        ok = access(f, X_OK) == 0;
        free(f);
    }
    free(copy);
    return ok;
}

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

    int background = !o->foreground && !o->run_cmd;
    int lrc = cli_log_check("serve", o, background);
    if (lrc)
        return lrc;
    int to_syslog = !o->log_file && (background || o->use_syslog || o->syslog_facility);

    char *plugin = find_plugin();
    if (!plugin)
        return EXIT_ERR;
    /* A path URL is made absolute; scheme URLs (s3://, dir:///) are left. */
    char *vol_url = strstr(url, "://") ? xstrdup(url) : absolute(url);
    char cdir[PATH_MAX];
    if (!o->read_only && cli_cache_dir(o, cdir, sizeof cdir)) {
        free(plugin);
        free(vol_url);
        return EXIT_ERR;
    }
    char *cache = o->read_only ? NULL : absolute(cdir);
    char *sock = o->socket_path ? absolute(o->socket_path) : NULL;
    char *pid = o->pid_file ? absolute(o->pid_file) : NULL;
    if (!pid && !o->foreground && !o->run_cmd) /* the background needs one to know it started */
        pid = xasprintf("%s/buoy-serve.%ld.pid", cache ? cache : "/tmp", (long)getpid());
    int rc = EXIT_ERR;

    if (check_volume(vol_url, o))
        goto out;
    if (cache && (path_mkdirs(cache, 0700) < 0 || access(cache, W_OK | X_OK) < 0)) {
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
    add(&a, "--foreground"); /* in the background too: see daemonise() */
    if (to_syslog)
        add(&a, "--log=syslog");
    else if (background)
        add(&a, "--log=stderr"); /* the log file */
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
    param(&a, "gc", o->no_gc ? "false" : NULL);
    param(&a, "takeover", o->takeover ? "true" : NULL);
    char *pf = o->passphrase_file ? absolute(o->passphrase_file) : NULL;
    param(&a, "passphrase_file", pf);
    free(pf);
    char *sf = o->stats_file ? absolute(o->stats_file) : NULL;
    param(&a, "stats_file", sf);
    free(sf);
    char lms[16];
    snprintf(lms, sizeof lms, "%d", o->lease_ms);
    param(&a, "lease_ms", o->lease_ms ? lms : NULL);
    param(&a, "syslog", to_syslog ? "true" : NULL);
    param(&a, "syslog_facility", o->syslog_facility);
    param(&a, "log_file", o->log_file); /* made absolute by cli_log_check */
    param(&a, "log_level", log_level_name(log_get_level()));
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
    if (a.n >= MAX_ARGS - 1) { /* one left for daemonise()'s ready_fd */
        cli_error("serve: too many arguments for nbdkit");
        goto out;
    }
    log_info("serve: exec %s for %s on %s", nbdkit, vol_url, sock ? sock : num);
    fflush(stdout);
    fflush(stderr);
    if (background) {
        if (!runnable(nbdkit)) {
            cli_error("serve: cannot run %s; install nbdkit (scripts/deps.sh) or set BUOY_NBDKIT",
                      nbdkit);
            goto out;
        }
        rc = daemonise(&a, pid, o->log_file) ? EXIT_ERR : EXIT_OK;
        if (!o->pid_file && rc == EXIT_OK)
            unlink(pid); /* ours, not asked for */
        if (rc == EXIT_OK)
            cli_log_warn_lost("serve", o, 1);
        goto out;
    }
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
