/* res.c - the built-in resource agents (kinds and options: res.h).
 *
 * Every start first asks status and does nothing when the resource runs;
 * every stop does nothing when it is stopped.  Helper programs run through
 * run_cmd() with the resource's timeout. */
#include "res.h"
#include "aws/creds.h"
#include "aws/ec2.h"
#include "run.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define A(...) ((char *[]){__VA_ARGS__, NULL})

static int run_quiet(struct res *r, char *const argv[], struct buf *out, char *err, size_t errlen)
{
    struct buf local = {0};
    struct buf *o = out ? out : &local;
    int st = run_cmd(argv, NULL, r->timeout_ms, o, err, errlen);
    r->last_exit = st;
    if (st > 0) {
        char line[160];
        set_err(err, errlen, "%s exited %d: %s", argv[0], st, run_last_line(o, line, sizeof line));
    }
    buf_free(&local);
    return st;
}

/* Unknown options are refused, so a typo is not silently ignored. */
static int opts_only(const struct ha_item *it, const char *const *allowed, char *err, size_t errlen)
{
    for (int i = 0; i < it->nopts; i++) {
        int ok = strcmp(it->okey[i], "timeout") == 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(it->okey[i], *a) == 0;
        if (!ok) {
            set_err(err, errlen, "%s takes no option %s= (line %d)", it->kind, it->okey[i],
                    it->line);
            return -1;
        }
    }
    return 0;
}

static int nargs(const struct ha_item *it, int lo, int hi, const char *usage, char *err,
                 size_t errlen)
{
    if (it->nargs < lo || it->nargs > hi) {
        set_err(err, errlen, "%s takes %s (line %d)", it->kind, usage, it->line);
        return -1;
    }
    return 0;
}

/* --- ipaddr ---------------------------------------------------------------------------- */

static int ip_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"dev", "arp", NULL};
    if (nargs(it, 1, 1, "ADDR/PREFIX dev=IF", err, errlen) || opts_only(it, o, err, errlen))
        return -1;
    char host[64];
    const char *slash = strchr(it->args[0], '/');
    struct in_addr a;
    if (!slash || (size_t)(slash - it->args[0]) >= sizeof host) {
        set_err(err, errlen, "ipaddr %s: write ADDR/PREFIX, e.g. 10.0.0.100/24", it->args[0]);
        return -1;
    }
    memcpy(host, it->args[0], (size_t)(slash - it->args[0]));
    host[slash - it->args[0]] = '\0';
    char *e;
    long pfx = strtol(slash + 1, &e, 10);
    if (inet_pton(AF_INET, host, &a) != 1 || *e || e == slash + 1 || pfx < 0 || pfx > 32) {
        set_err(err, errlen, "ipaddr %s: not an IPv4 ADDR/PREFIX", it->args[0]);
        return -1;
    }
    if (!ha_item_opt(it, "dev")) {
        set_err(err, errlen, "ipaddr %s needs dev=INTERFACE", it->args[0]);
        return -1;
    }
    const char *arp = ha_item_opt(it, "arp");
    if (arp && (atoi(arp) < 0 || atoi(arp) > 10)) {
        set_err(err, errlen, "ipaddr: arp=%s: use 0 to 10 gratuitous ARPs", arp);
        return -1;
    }
    return 0;
}

static void ip_host(const struct res *r, char *out, size_t n)
{
    snprintf(out, n, "%.*s", (int)strcspn(r->item->args[0], "/"), r->item->args[0]);
}

static int ip_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    struct buf out = {0};
    const char *dev = ha_item_opt(r->item, "dev");
    int st =
        run_quiet(r, A("ip", "-o", "-4", "addr", "show", "dev", (char *)dev), &out, err, errlen);
    int ret = -1;
    if (st == 0) {
        char host[64], needle[80];
        ip_host(r, host, sizeof host);
        snprintf(needle, sizeof needle, " %s/", host);
        ret = strstr(out.p ? out.p : "", needle) != NULL;
    }
    buf_free(&out);
    return ret;
}

/* n gratuitous ARP requests (sender and target = ip, to broadcast) on dev,
 * sent at once: what arping -U does, without its one-second waits. */
static int garp(const char *dev, const char *ip, int n, char *err, size_t errlen)
{
    struct ifreq ifr = {0};
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1 || strlen(dev) >= sizeof ifr.ifr_name) {
        set_err(err, errlen, "bad address or interface");
        return -1;
    }
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd < 0) {
        set_err(err, errlen, "packet socket: %s", strerror(errno));
        return -1;
    }
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    int ret = -1;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        set_err(err, errlen, "%s: %s", dev, strerror(errno));
        goto out;
    }
    unsigned char mac[6];
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        set_err(err, errlen, "%s: %s", dev, strerror(errno));
        goto out;
    }
    /* ARP over Ethernet: htype 1, ptype IPv4, hlen 6, plen 4, op 1 (request) */
    unsigned char pkt[28] = {0, 1, 8, 0, 6, 4, 0, 1};
    memcpy(pkt + 8, mac, 6);
    memcpy(pkt + 14, &a, 4);
    memset(pkt + 18, 0, 6);
    memcpy(pkt + 24, &a, 4);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ARP),
                             .sll_ifindex = ifr.ifr_ifindex,
                             .sll_halen = 6};
    memset(ll.sll_addr, 0xff, 6);
    for (int i = 0; i < n; i++)
        if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&ll, sizeof ll) != sizeof pkt) {
            set_err(err, errlen, "send on %s: %s", dev, strerror(errno));
            goto out;
        }
    ret = 0;
out:
    close(fd);
    return ret;
}

static int ip_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    const char *dev = ha_item_opt(r->item, "dev");
    if (run_quiet(r, A("ip", "addr", "add", r->item->args[0], "dev", (char *)dev), NULL, err,
                  errlen) != 0)
        return -1;
    const char *arp = ha_item_opt(r->item, "arp");
    int n = arp ? atoi(arp) : 2;
    if (n > 0) {
        char host[64], why[256];
        ip_host(r, host, sizeof host);
        /* Neighbours learn the new MAC at once; a failure is logged, not
         * fatal: the address is up and will be learnt on the next ARP. */
        if (garp(dev, host, n, why, sizeof why) < 0)
            log_warn("ha: resource %s: gratuitous ARP failed: %s", r->item->name, why);
    }
    return 0;
}

static int ip_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    const char *dev = ha_item_opt(r->item, "dev");
    return run_quiet(r, A("ip", "addr", "del", r->item->args[0], "dev", (char *)dev), NULL, err,
                     errlen) == 0
               ? 0
               : -1;
}

/* --- exec (Heartbeat resource scripts, LSB init scripts) -------------------------------- */

static int exec_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"running", "status", NULL};
    if (nargs(it, 1, HA_ARGS_MAX - 1, "SCRIPT [ARG...]", err, errlen) ||
        opts_only(it, o, err, errlen))
        return -1;
    const char *st = ha_item_opt(it, "status");
    if (st && strcmp(st, "exit") && strcmp(st, "output") && strcmp(st, "none")) {
        set_err(err, errlen, "exec: status=%s: use exit, output or none", st);
        return -1;
    }
    if (st && strcmp(st, "output") == 0 && !ha_item_opt(it, "running")) {
        set_err(err, errlen, "exec: status=output needs running=TEXT");
        return -1;
    }
    return 0;
}

static int exec_verb(struct res *r, const char *verb, struct buf *out, char *err, size_t errlen)
{
    char *argv[HA_ARGS_MAX + 2];
    int n = 0;
    for (int i = 0; i < r->item->nargs; i++)
        argv[n++] = r->item->args[i];
    argv[n++] = (char *)verb;
    argv[n] = NULL;
    return run_quiet(r, argv, out, err, errlen);
}

static const char *exec_mode(const struct res *r)
{
    const char *st = ha_item_opt(r->item, "status");
    if (st)
        return st;
    return ha_item_opt(r->item, "running") ? "output" : "exit";
}

static int exec_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    const char *mode = exec_mode(r);
    if (strcmp(mode, "none") == 0) {
        set_err(err, errlen, "no status (status=none)");
        return -1; /* unknown: start and stop always run the script */
    }
    struct buf out = {0};
    int st = exec_verb(r, "status", &out, err, errlen);
    int ret;
    if (strcmp(mode, "output") == 0)
        ret = st < 0 ? -1 : strstr(out.p ? out.p : "", ha_item_opt(r->item, "running")) != NULL;
    else
        ret = st < 0 ? -1 : st == 0;
    buf_free(&out);
    return ret;
}

static int exec_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    return exec_verb(r, "start", NULL, err, errlen) == 0 ? 0 : -1;
}

static int exec_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    return exec_verb(r, "stop", NULL, err, errlen) == 0 ? 0 : -1;
}

/* --- service ------------------------------------------------------------------------- */

static int svc_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"init", NULL};
    if (nargs(it, 1, 1, "NAME", err, errlen) || opts_only(it, o, err, errlen))
        return -1;
    const char *init = ha_item_opt(it, "init");
    if (init && strcmp(init, "systemd") && strcmp(init, "lsb")) {
        set_err(err, errlen, "service: init=%s: use systemd or lsb", init);
        return -1;
    }
    if (strchr(it->args[0], '/')) {
        set_err(err, errlen, "service %s: a name, not a path (use exec for a script)", it->args[0]);
        return -1;
    }
    return 0;
}

static int svc_systemd(const struct res *r)
{
    const char *init = ha_item_opt(r->item, "init");
    if (init)
        return strcmp(init, "systemd") == 0;
    struct stat st;
    return stat("/run/systemd/system", &st) == 0;
}

static int svc_run(struct res *r, const char *verb, char *err, size_t errlen)
{
    if (svc_systemd(r)) {
        if (strcmp(verb, "status") == 0)
            return run_cmd(A("systemctl", "is-active", "--quiet", r->item->args[0]), NULL,
                           r->timeout_ms, NULL, err, errlen);
        return run_quiet(r, A("systemctl", (char *)verb, r->item->args[0]), NULL, err, errlen);
    }
    char path[300];
    snprintf(path, sizeof path, "/etc/init.d/%s", r->item->args[0]);
    if (strcmp(verb, "status") == 0)
        return run_cmd(A(path, "status"), NULL, r->timeout_ms, NULL, err, errlen);
    return run_quiet(r, A(path, (char *)verb), NULL, err, errlen);
}

static int svc_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    int st = svc_run(r, "status", err, errlen);
    return st < 0 ? -1 : st == 0;
}

static int svc_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    return svc_run(r, "start", err, errlen) == 0 ? 0 : -1;
}

static int svc_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    return svc_run(r, "stop", err, errlen) == 0 ? 0 : -1;
}

/* --- fsmount and volume ----------------------------------------------------------------- */

static int is_mountpoint(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int found = 0;
    char want[PATH_MAX];
    if (!realpath(dir, want))
        snprintf(want, sizeof want, "%s", dir);
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f)) {
        /* id parent major:minor root mountpoint ... */
        char *save, *t = strtok_r(line, " ", &save);
        for (int i = 0; t && i < 4; i++)
            t = strtok_r(NULL, " ", &save);
        if (t && strcmp(t, want) == 0)
            found = 1;
    }
    fclose(f);
    return found;
}

static int fs_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"type", "options", NULL};
    if (nargs(it, 2, 2, "DEVICE MOUNTPOINT", err, errlen) || opts_only(it, o, err, errlen))
        return -1;
    if (it->args[1][0] != '/') {
        set_err(err, errlen, "fsmount: mount point %s must be an absolute path", it->args[1]);
        return -1;
    }
    return 0;
}

static int mnt_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    int m = is_mountpoint(r->item->args[1]);
    if (m < 0)
        set_err(err, errlen, "cannot read /proc/self/mountinfo");
    return m;
}

static int fs_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    char *argv[10];
    int n = 0;
    argv[n++] = "mount";
    const char *type = ha_item_opt(r->item, "type"), *o = ha_item_opt(r->item, "options");
    if (type) {
        argv[n++] = "-t";
        argv[n++] = (char *)type;
    }
    if (o) {
        argv[n++] = "-o";
        argv[n++] = (char *)o;
    }
    argv[n++] = r->item->args[0];
    argv[n++] = r->item->args[1];
    argv[n] = NULL;
    return run_quiet(r, argv, NULL, err, errlen) == 0 ? 0 : -1;
}

static int fs_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    return run_quiet(r, A("umount", r->item->args[1]), NULL, err, errlen) == 0 ? 0 : -1;
}

static int vol_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"endpoint", "cache_dir", "lease_ms", "passphrase_file", NULL};
    if (nargs(it, 2, 2, "URL MOUNTPOINT", err, errlen) || opts_only(it, o, err, errlen))
        return -1;
    if (it->args[1][0] != '/') {
        set_err(err, errlen, "volume: mount point %s must be an absolute path", it->args[1]);
        return -1;
    }
    const char *pf = ha_item_opt(it, "passphrase_file");
    if (pf && pf[0] != '/') {
        set_err(err, errlen, "volume: passphrase_file %s must be an absolute path", pf);
        return -1;
    }
    return 0;
}

/* The frontends (buoy mount/umount) take the volume's writer lease over with
 * --takeover; we only ever run them while holding the failover lease.
 * Options endpoint=, cache_dir=, lease_ms= and passphrase_file= are passed on. */
static int vol_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    char *b = (char *)(ctx && ctx->buoy ? ctx->buoy : "buoy");
    char *argv[16];
    int n = 0;
    argv[n++] = b;
    argv[n++] = "mount";
    argv[n++] = r->item->args[0];
    argv[n++] = r->item->args[1];
    argv[n++] = "--takeover";
    static const char *const pass[] = {"endpoint", "cache_dir", "lease_ms", "passphrase_file"};
    static const char *const flag[] = {"--endpoint", "--cache-dir", "--lease-ms",
                                       "--passphrase-file"};
    for (int i = 0; i < 4; i++) {
        const char *v = ha_item_opt(r->item, pass[i]);
        if (v) {
            argv[n++] = (char *)flag[i];
            argv[n++] = (char *)v;
        }
    }
    argv[n] = NULL;
    return run_quiet(r, argv, NULL, err, errlen) == 0 ? 0 : -1;
}

static int vol_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    char *b = (char *)(ctx && ctx->buoy ? ctx->buoy : "buoy");
    return run_quiet(r, A(b, "umount", r->item->args[1]), NULL, err, errlen) == 0 ? 0 : -1;
}

/* --- ec2-eip ------------------------------------------------------------------------- */

static int eip_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const o[] = {"instance", "endpoint", "region", "profile", NULL};
    struct in_addr a;
    if (nargs(it, 1, 1, "PUBLIC_IP", err, errlen) || opts_only(it, o, err, errlen))
        return -1;
    if (inet_pton(AF_INET, it->args[0], &a) != 1) {
        set_err(err, errlen, "ec2-eip %s: not an IPv4 address", it->args[0]);
        return -1;
    }
    return 0;
}

static int eip_instance(struct res *r, char *err, size_t errlen)
{
    if (r->cache[0])
        return 0;
    const char *id = ha_item_opt(r->item, "instance");
    if (id) {
        snprintf(r->cache, sizeof r->cache, "%s", id);
        return 0;
    }
    char why[300];
    if (creds_imds_get("/latest/meta-data/instance-id", r->cache, sizeof r->cache, why,
                       sizeof why) < 0) {
        r->cache[0] = '\0';
        set_err(err, errlen, "ec2-eip %s: no instance=ID and %s", r->item->args[0], why);
        return -1;
    }
    return 0;
}

/* A start makes up to three calls and a lease confirmation: each call gets
 * a quarter of the resource's timeout. */
static struct ec2 *eip_open(struct res *r, char *err, size_t errlen)
{
    struct ec2 *e = ec2_open(ha_item_opt(r->item, "endpoint"), ha_item_opt(r->item, "region"),
                             ha_item_opt(r->item, "profile"), err, errlen);
    if (e)
        ec2_set_timeout(e, (long)(r->timeout_ms / 4));
    return e;
}

static int eip_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    if (eip_instance(r, err, errlen) < 0)
        return -1;
    struct ec2 *e = eip_open(r, err, errlen);
    struct ec2_addr a;
    if (!e)
        return -1;
    int ret = ec2_describe_address(e, r->item->args[0], &a, err, errlen);
    ec2_close(e);
    if (ret < 0)
        return -1;
    return strcmp(a.instance_id, r->cache) == 0;
}

static int eip_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    if (eip_instance(r, err, errlen) < 0)
        return -1;
    struct ec2 *e = eip_open(r, err, errlen);
    struct ec2_addr a;
    int ret = -1;
    if (!e)
        return -1;
    if (ec2_describe_address(e, r->item->args[0], &a, err, errlen) < 0)
        goto out;
    /* AssociateAddress is last-writer-wins: only with the lease freshly
     * confirmed, right before the call. */
    if (ctx && ctx->lease_confirm && ctx->lease_confirm(ctx->arg, err, errlen) < 0)
        goto out;
    if (ec2_associate(e, &a, r->cache, err, errlen) < 0)
        goto out;
    if (ec2_describe_address(e, r->item->args[0], &a, err, errlen) < 0)
        goto out;
    if (strcmp(a.instance_id, r->cache) != 0) {
        set_err(err, errlen, "ec2-eip %s: associated, but DescribeAddresses shows instance %s",
                r->item->args[0], a.instance_id[0] ? a.instance_id : "none");
        goto out;
    }
    ret = 0;
out:
    ec2_close(e);
    return ret;
}

static int eip_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    /* Without an instance id nothing can have been associated by us. */
    if (eip_instance(r, err, errlen) < 0)
        return 0;
    struct ec2 *e = eip_open(r, err, errlen);
    struct ec2_addr a;
    int ret = -1;
    if (!e)
        return -1;
    if (ec2_describe_address(e, r->item->args[0], &a, err, errlen) < 0)
        goto out;
    /* Only our own association: the new holder may have it already. */
    if (strcmp(a.instance_id, r->cache) != 0)
        ret = 0;
    else
        ret = ec2_disassociate(e, &a, err, errlen);
out:
    ec2_close(e);
    return ret;
}

/* --- programs a resource needs, checked at load ------------------------------------------ */

/* 0 when prog can be run: a path names an executable regular file, a bare
 * name is found on PATH (as execvp would); else -1 with what is wrong. */
static int prog_ok(const char *prog, char *why, size_t n)
{
    struct stat st;
    if (strchr(prog, '/')) {
        if (stat(prog, &st) < 0) {
            set_err(why, n, "%s %s", prog,
                    errno == ENOENT ? "does not exist" : strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            set_err(why, n, "%s is not a regular file", prog);
            return -1;
        }
        if (access(prog, X_OK) < 0) {
            set_err(why, n, "%s is not executable (chmod +x %s)", prog, prog);
            return -1;
        }
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        char full[PATH_MAX];
        if (len > 0 && (size_t)snprintf(full, sizeof full, "%.*s/%s", (int)len, p, prog) <
                           sizeof full &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
            return 0;
        p += len;
        if (*p == ':')
            p++;
    }
    set_err(why, n, "no program %s on PATH (%s)", prog, path);
    return -1;
}

int res_check_programs(const struct ha_item *it, char *err, size_t errlen)
{
    char why[PATH_MAX + 100];
    if (strcmp(it->kind, "exec") == 0) {
        if (prog_ok(it->args[0], why, sizeof why) == 0)
            return 0;
        set_err(err, errlen,
                "%s; install the resource script there (it is run as SCRIPT [ARG...] "
                "start|stop|status) or correct the path",
                why);
        return -1;
    }
    if (strcmp(it->kind, "service") == 0) {
        const char *init = ha_item_opt(it, "init");
        struct stat st;
        int lsb = init ? strcmp(init, "lsb") == 0 : stat("/run/systemd/system", &st) != 0;
        char path[300];
        snprintf(path, sizeof path, "/etc/init.d/%s", it->args[0]);
        if (prog_ok(lsb ? path : "systemctl", why, sizeof why) == 0)
            return 0;
        set_err(err, errlen, "%s; %s", why,
                lsb ? "install the service's init script, or use init=systemd"
                    : "use init=lsb on a machine without systemd");
        return -1;
    }
    static const char *const need[][3] = {
        {"ipaddr", "ip", NULL}, {"fsmount", "mount", "umount"}, {NULL, NULL, NULL}};
    for (int i = 0; need[i][0]; i++) {
        if (strcmp(it->kind, need[i][0]))
            continue;
        for (int j = 1; j < 3 && need[i][j]; j++)
            if (prog_ok(need[i][j], why, sizeof why) < 0) {
                set_err(err, errlen, "%s; install it (a %s resource runs it)", why, it->kind);
                return -1;
            }
    }
    return 0;
}

/* --- the table ----------------------------------------------------------------------- */

static const struct res_kind k_ipaddr = {"ipaddr", ip_validate, ip_start,
                                         ip_stop,  ip_status,   20000};
static const struct res_kind k_eip = {"ec2-eip", eip_validate, eip_start,
                                      eip_stop,  eip_status,   30000};
static const struct res_kind k_volume = {"volume", vol_validate, vol_start,
                                         vol_stop, mnt_status,   60000};
static const struct res_kind k_fsmount = {"fsmount", fs_validate, fs_start,
                                          fs_stop,   mnt_status,  20000};
static const struct res_kind k_service = {"service", svc_validate, svc_start,
                                          svc_stop,  svc_status,   20000};
static const struct res_kind k_exec = {"exec",    exec_validate, exec_start,
                                       exec_stop, exec_status,   20000};

const struct res_kind *const res_kinds[] = {&k_ipaddr,  &k_eip,  &k_volume, &k_fsmount,
                                            &k_service, &k_exec, NULL};

static const struct res_kind *find_kind(const char *name)
{
    for (int i = 0; res_kinds[i]; i++)
        if (strcmp(res_kinds[i]->name, name) == 0)
            return res_kinds[i];
    return NULL;
}

int res_validate(const struct ha_item *it, char *err, size_t errlen)
{
    const struct res_kind *k = find_kind(it->kind);
    if (!k) {
        set_err(err, errlen,
                "unknown resource kind '%s'; use ipaddr, ec2-eip, volume, fsmount, "
                "service or exec",
                it->kind);
        return -1;
    }
    const char *t = ha_item_opt(it, "timeout");
    uint64_t ms;
    if (t && (ha_parse_ms(t, &ms) < 0 || ms < 100)) {
        set_err(err, errlen, "timeout=%s: use a duration of at least 100ms", t);
        return -1;
    }
    return k->validate(it, err, errlen);
}

int res_init(struct res *r, const struct ha_item *it, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->item = it;
    r->kind = find_kind(it->kind);
    if (!r->kind) {
        set_err(err, errlen, "unknown resource kind '%s'", it->kind);
        return -1;
    }
    r->timeout_ms = r->kind->default_timeout_ms;
    const char *t = ha_item_opt(it, "timeout");
    if (t)
        ha_parse_ms(t, &r->timeout_ms);
    r->state = RES_UNKNOWN;
    r->last_exit = -1;
    return 0;
}

int res_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    int s = r->kind->status(r, ctx, err, errlen);
    if (s >= 0 && r->state != RES_FAILED)
        r->state = s ? RES_RUNNING : RES_STOPPED;
    return s;
}

int res_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    char why[256] = "";
    int s = r->kind->status(r, ctx, why, sizeof why);
    if (s == 1) {
        r->state = RES_RUNNING;
        r->may_run = 1;
        snprintf(r->last, sizeof r->last, "already running");
        return 0;
    }
    r->starts++;
    r->last_exit = -1;
    if (r->kind->start(r, ctx, err, errlen) < 0) {
        r->state = RES_FAILED;
        snprintf(r->last, sizeof r->last, "start failed: %s", err);
        /* The agent said it failed (an exit code): taken at its word, unless
         * status says it runs.  Killed, timed out or a failed cloud call:
         * it may have got half-way, unless status says it is stopped. */
        int said = r->last_exit > 0;
        s = r->kind->status(r, ctx, why, sizeof why);
        r->may_run = s == 1 || (s < 0 && !said);
        return -1;
    }
    r->may_run = 1;
    /* A start is only good once status agrees (for kinds that can tell):
     * many init scripts exit 0 whatever happened. */
    if (r->kind->status(r, ctx, why, sizeof why) == 0) {
        set_err(err, errlen, "resource %s: started, but status says it is not running",
                r->item->name);
        r->state = RES_FAILED;
        r->may_run = 0;
        snprintf(r->last, sizeof r->last, "%s", err);
        return -1;
    }
    r->state = RES_RUNNING;
    snprintf(r->last, sizeof r->last, "started");
    return 0;
}

int res_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen)
{
    char why[256] = "";
    int s = r->kind->status(r, ctx, why, sizeof why);
    if (s == 0) {
        r->state = RES_STOPPED;
        r->may_run = 0;
        snprintf(r->last, sizeof r->last, "stopped");
        return 0;
    }
    if (s == 1)
        r->may_run = 1;
    r->stops++;
    if (r->kind->stop(r, ctx, err, errlen) < 0) {
        r->state = RES_FAILED;
        snprintf(r->last, sizeof r->last, "stop failed: %s%s", err,
                 r->may_run ? "" : " (it had not started)");
        return -1;
    }
    /* A stop is only good once status agrees (for kinds that can tell). */
    s = r->kind->status(r, ctx, why, sizeof why);
    if (s == 1) {
        set_err(err, errlen, "resource %s: stopped, but status says it still runs", r->item->name);
        r->state = RES_FAILED;
        r->may_run = 1;
        snprintf(r->last, sizeof r->last, "%s", err);
        return -1;
    }
    r->may_run = 0;
    r->state = RES_STOPPED;
    snprintf(r->last, sizeof r->last, "stopped");
    return 0;
}

const char *res_state_name(enum res_state s)
{
    static const char *const n[] = {"stopped", "running", "failed", "unknown"};
    return (unsigned)s < 4 ? n[s] : "?";
}
