/* ha_import.c - `buoy ha import`: Heartbeat's ha.cf + haresources +
 * authkeys to a buoy-ha.conf and a key file.
 *
 * What maps:  node, ucast (one per peer), udpport, keepalive, warntime,
 * deadtime, initdead (seconds or "ms"), auto_failback on|off (legacy counts
 * as off); the haresources line's node becomes preferred and its resources,
 * in order: IPaddr/IPaddr2::ADDR[/PREFIX[/IF]] -> ipaddr,
 * Filesystem::DEV::DIR[::TYPE[::OPTS]] -> fsmount, anything else -> exec of
 * /etc/ha.d/resource.d/NAME or /etc/init.d/NAME with its ::arguments and
 * status=none (Heartbeat v1 scripts seldom have an honest status).  The
 * authkeys entry named by "auth N" becomes the key (its secret, for sha1, md5
 * or crc alike; buoy always uses HMAC-SHA256).  logfacility, logfile,
 * debugfile and use_logd have no key (buoy ha logs to standard error, the
 * journal under systemd): each becomes a comment and a warning.  A resource
 * script found in neither place is written as /etc/init.d/NAME with a
 * warning saying what to install there (check-config refuses the file
 * until it exists).  bcast/mcast, stonith and anything else is refused,
 * never dropped silently. */
#include "ha_import.h"
#include "ha_conf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAXW 32

struct lines {
    char **v;
    int n;
};

static int read_lines(const char *path, struct lines *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    out->v = NULL;
    out->n = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        line[strcspn(line, "#\r\n")] = '\0';
        out->v = xrealloc(out->v, sizeof *out->v * (size_t)(out->n + 1));
        out->v[out->n++] = xstrdup(line);
    }
    free(line);
    fclose(f);
    return 0;
}

static void free_lines(struct lines *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int words(char *s, char **w, int max)
{
    int n = 0;
    for (char *save, *t = strtok_r(s, " \t", &save); t && n < max; t = strtok_r(NULL, " \t", &save))
        w[n++] = t;
    return n;
}

/* "a::b::c" -> parts, in place. */
static int split2(char *s, char **p, int max)
{
    int n = 0;
    p[n++] = s;
    for (char *c = strstr(s, "::"); c && n < max; c = strstr(c, "::")) {
        *c = '\0';
        c += 2;
        p[n++] = c;
    }
    return n;
}

static int time_ok(const char *v)
{
    uint64_t ms;
    return ha_parse_ms(v, &ms) == 0;
}

static void resource(struct buf *o, struct buf *warns, const char *tok, int idx, char *err,
                     size_t errlen, int *bad)
{
    char *copy = xstrdup(tok), *p[10];
    int n = split2(copy, p, 10);
    if (strcmp(p[0], "IPaddr") == 0 || strcmp(p[0], "IPaddr2") == 0) {
        /* ADDR[/PREFIX[/IF[/BCAST]]] */
        char *f[4] = {0};
        int k = 0;
        for (char *save, *t = strtok_r(p[1] ? p[1] : "", "/", &save); t && k < 4;
             t = strtok_r(NULL, "/", &save))
            f[k++] = t;
        if (n < 2 || !f[0] || !f[2]) {
            set_err(err, errlen,
                    "haresources: %s: write IPaddr::ADDR/PREFIX/INTERFACE so the "
                    "interface is known",
                    tok);
            *bad = 1;
        } else
            buf_printf(o, "resource ip%d ipaddr %s/%s dev=%s\n", idx, f[0], f[1] ? f[1] : "32",
                       f[2]);
    } else if (strcmp(p[0], "Filesystem") == 0) {
        if (n < 3) {
            set_err(err, errlen, "haresources: %s: write Filesystem::DEVICE::DIR[::TYPE]", tok);
            *bad = 1;
        } else {
            buf_printf(o, "resource fs%d fsmount %s %s", idx, p[1], p[2]);
            if (n > 3)
                buf_printf(o, " type=%s", p[3]);
            if (n > 4)
                buf_printf(o, " options=%s", p[4]);
            buf_puts(o, "\n");
        }
    } else {
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "/etc/ha.d/resource.d/%s", p[0]);
        if (stat(path, &st) != 0)
            snprintf(path, sizeof path, "/etc/init.d/%s", p[0]);
        char name[HA_NAME_MAX];
        snprintf(name, sizeof name, "%.31s", p[0]);
        if (stat(path, &st) != 0) {
            buf_printf(warns,
                       "resource %s: no script /etc/ha.d/resource.d/%s or %s on this machine; "
                       "install the resource script as %s (it is run with start, stop and "
                       "status) or edit the path, then run buoy ha check-config\n",
                       name, p[0], path, path);
            buf_printf(o, "# %s does not exist yet: install the resource script there\n", path);
        }
        buf_printf(o, "resource %s exec %s", name, path);
        for (int i = 1; i < n; i++)
            buf_printf(o, " %s", p[i]);
        buf_puts(o, " status=none\n");
    }
    free(copy);
}

/* Creates the missing directories of path's parent, mode 0700 (a key lives
 * there); existing ones are left as they are.  0 or -1 with errno. */
static int make_parent(const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

int ha_import(const struct ha_import_opts *io, struct buf *o, struct buf *warns, char *err,
              size_t errlen)
{
    struct lines cf = {0}, hr = {0}, ak = {0};
    int ret = -1, bad = 0;
    char *nodes[HA_MAX_PEERS + 1], *ucast[HA_MAX_PEERS + 1];
    int nnodes = 0, nucast = 0;
    const char *keep = NULL, *dead = NULL, *warn = NULL, *init = NULL, *port = NULL, *afb = NULL;
    char self[HA_NAME_MAX];
    struct utsname un;
    char logs[8][200];
    int nlog = 0;

    if (!io->lease_store) {
        set_err(err, errlen,
                "Heartbeat has no lease; give --lease-store URL (a store both nodes "
                "reach)");
        return -1;
    }
    if (io->node)
        snprintf(self, sizeof self, "%s", io->node);
    else if (uname(&un) == 0)
        snprintf(self, sizeof self, "%.*s", (int)strcspn(un.nodename, "."), un.nodename);
    if (read_lines(io->ha_cf, &cf, err, errlen) < 0 ||
        read_lines(io->haresources, &hr, err, errlen) < 0 ||
        read_lines(io->authkeys, &ak, err, errlen) < 0)
        goto out;

    for (int i = 0; i < cf.n; i++) {
        char *w[MAXW];
        int n = words(cf.v[i], w, MAXW);
        if (n == 0)
            continue;
        if (strcmp(w[0], "node") == 0) {
            for (int j = 1; j < n && nnodes <= HA_MAX_PEERS; j++)
                nodes[nnodes++] = w[j];
        } else if (strcmp(w[0], "ucast") == 0 && n == 3) {
            if (nucast <= HA_MAX_PEERS)
                ucast[nucast++] = w[2];
        } else if (strcmp(w[0], "keepalive") == 0 && n == 2)
            keep = w[1];
        else if (strcmp(w[0], "deadtime") == 0 && n == 2)
            dead = w[1];
        else if (strcmp(w[0], "warntime") == 0 && n == 2)
            warn = w[1];
        else if (strcmp(w[0], "initdead") == 0 && n == 2)
            init = w[1];
        else if (strcmp(w[0], "udpport") == 0 && n == 2)
            port = w[1];
        else if (strcmp(w[0], "auto_failback") == 0 && n == 2)
            afb = w[1];
        else if (strcmp(w[0], "logfacility") == 0 || strcmp(w[0], "logfile") == 0 ||
                 strcmp(w[0], "debugfile") == 0 || strcmp(w[0], "use_logd") == 0) {
            char what[200] = "";
            for (int j = 0; j < n; j++)
                snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", j ? " " : "",
                         w[j]);
            if (nlog < (int)(sizeof logs / sizeof logs[0]))
                snprintf(logs[nlog++], sizeof logs[0], "%s", what);
            buf_printf(warns,
                       "%s: '%s' not converted: buoy ha logs to standard error (the journal "
                       "under systemd); route it from there\n",
                       io->ha_cf, what);
        } else if (strcmp(w[0], "bcast") == 0 || strcmp(w[0], "mcast") == 0) {
            set_err(err, errlen,
                    "%s: %s is not supported; buoy heartbeats are unicast: use ucast "
                    "lines",
                    io->ha_cf, w[0]);
            goto out;
        } else {
            set_err(err, errlen, "%s: '%s' has no buoy equivalent; remove it or convert by hand",
                    io->ha_cf, w[0]);
            goto out;
        }
    }
    const char *times[] = {keep, dead, warn, init};
    for (int i = 0; i < 4; i++)
        if (times[i] && !time_ok(times[i])) {
            set_err(err, errlen, "%s: '%s' is not a time", io->ha_cf, times[i]);
            goto out;
        }
    int me = -1;
    for (int i = 0; i < nnodes; i++)
        if (strcmp(nodes[i], self) == 0)
            me = i;
    if (me < 0) {
        set_err(err, errlen, "%s: this node (%s) is not among the node lines; give --node NAME",
                io->ha_cf, self);
        goto out;
    }
    if (nnodes < 2 || nnodes > HA_MAX_PEERS + 1) {
        set_err(err, errlen, "%s: need 2 to %d node names", io->ha_cf, HA_MAX_PEERS + 1);
        goto out;
    }
    /* ucast: one per node in node order, or one per peer in node order. */
    if (nucast != nnodes && nucast != nnodes - 1) {
        set_err(err, errlen,
                "%s: %d ucast lines for %d nodes; list one address per node, in the "
                "order of the node line",
                io->ha_cf, nucast, nnodes);
        goto out;
    }

    /* authkeys: "auth N" then "N method secret" */
    const char *key = NULL;
    char want[16] = "";
    for (int i = 0; i < ak.n; i++) {
        char *w[4];
        int n = words(ak.v[i], w, 4);
        if (n == 2 && strcmp(w[0], "auth") == 0)
            snprintf(want, sizeof want, "%s", w[1]);
        else if (n == 3 && want[0] && strcmp(w[0], want) == 0)
            key = w[2];
        else if (n == 2 && want[0] && strcmp(w[0], want) == 0 && strcmp(w[1], "crc") == 0) {
            set_err(err, errlen, "%s: key %s is crc, which has no secret; put a secret there first",
                    io->authkeys, want);
            goto out;
        }
    }
    if (!key) {
        set_err(err, errlen, "%s: no key for 'auth %s'", io->authkeys, want[0] ? want : "?");
        goto out;
    }
    if (strlen(key) < 8) {
        set_err(err, errlen, "%s: the key is shorter than 8 characters; use a longer secret",
                io->authkeys);
        goto out;
    }

    /* haresources: "NODE RES RES..." (one group) */
    char *group[MAXW];
    int ng = 0;
    for (int i = 0; i < hr.n; i++) {
        char *w[MAXW];
        int n = words(hr.v[i], w, MAXW);
        if (n == 0)
            continue;
        if (ng) {
            set_err(err, errlen,
                    "%s: more than one resource group; buoy runs one group per cluster",
                    io->haresources);
            goto out;
        }
        for (int j = 0; j < n; j++)
            group[ng++] = w[j];
    }
    if (ng < 1) {
        set_err(err, errlen, "%s: no resource group", io->haresources);
        goto out;
    }

    buf_printf(o, "# buoy-ha.conf converted by buoy ha import from %s, %s and %s\n", io->ha_cf,
               io->haresources, io->authkeys);
    for (int i = 0; i < nlog; i++)
        buf_printf(o,
                   "# %s: not converted; buoy ha logs to standard error (the journal under "
                   "systemd)\n",
                   logs[i]);
    buf_printf(o, "node %s\n", self);
    int off = nucast == nnodes ? 0 : 1;
    for (int i = 0, k = 0; i < nnodes; i++) {
        if (i == me) {
            if (!off)
                k++;
            continue;
        }
        buf_printf(o, "peer %s %s\n", nodes[i], ucast[k++]);
    }
    if (port)
        buf_printf(o, "port %s\n", port);
    if (keep)
        buf_printf(o, "keepalive %s\n", keep);
    if (warn)
        buf_printf(o, "warntime %s\n", warn);
    if (dead)
        buf_printf(o, "deadtime %s\n", dead);
    if (init)
        buf_printf(o, "initdead %s\n", init);
    buf_printf(o, "preferred %s\n", group[0]);
    buf_printf(o, "auto_failback %s\n", afb && strcmp(afb, "on") == 0 ? "on" : "off");
    buf_printf(o, "authkey %s\n", io->key_out);
    buf_printf(o, "lease_store %s\n", io->lease_store);
    for (int i = 1; i < ng; i++)
        resource(o, warns, group[i], i, err, errlen, &bad);
    if (bad)
        goto out;

    if (make_parent(io->key_out) < 0) {
        set_err(err, errlen, "cannot create the directory of %s: %s; create it (mode 0700) or "
                "give --key-out FILE", io->key_out, strerror(errno));
        goto out;
    }
    int fd = open(io->key_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, key, strlen(key)) != (ssize_t)strlen(key) ||
        write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
        set_err(err, errlen, "cannot write the key to %s: %s", io->key_out, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    ret = 0;
out:
    free_lines(&cf);
    free_lines(&hr);
    free_lines(&ak);
    return ret;
}
