/* ha_daemon.c - the failover daemon's main thread (the shape: ha_daemon.h).
 *
 * One poll loop: the UDP socket (heartbeats in), the control socket, a
 * signalfd (TERM/INT stop, HUP reloads) and a wake-up pipe from the other
 * threads.  Each turn it sends heartbeats that are due, feeds what it saw to
 * the state machine, checks the machine's rules (ha_sm_assert), and hands
 * the machine's orders to the lease and worker threads.
 *
 * Control protocol: a client connects to the unix socket (mode 0600; peers
 * other than root are refused by SO_PEERCRED), writes one line (status,
 * standby, takeover, online, clear, reload; status-json for status --json)
 * and reads the answer until EOF.
 * Answers start with "ok" or "error: ...". */
#include "ha_daemon.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ha_wake(struct ha_daemon *d)
{
    char c = 1;
    ssize_t n = write(d->wake[1], &c, 1);
    (void)n; /* a full pipe already wakes the loop */
}

/* --- sockets ------------------------------------------------------------------------------ */

static int open_udp(struct ha_daemon *d, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "heartbeat socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->conf.port)};
    if (d->conf.bind)
        inet_pton(AF_INET, d->conf.bind, &sa.sin_addr);
    else
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        set_err(err, errlen, "heartbeat socket: bind %s:%d: %s; is another daemon running?",
                d->conf.bind ? d->conf.bind : "0.0.0.0", d->conf.port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int open_ctl(struct ha_daemon *d, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(d->conf.control) >= sizeof sa.sun_path) {
        set_err(err, errlen, "control socket path %s is too long", d->conf.control);
        return -1;
    }
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->conf.control);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "control socket: %s", strerror(errno));
        return -1;
    }
    /* A socket file left by a dead daemon is removed; a live one is not. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        set_err(err, errlen, "control socket %s: another daemon answers there", d->conf.control);
        close(fd);
        return -1;
    }
    unlink(d->conf.control);
    mode_t old = umask(077);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r < 0 || listen(fd, 8) < 0) {
        set_err(err, errlen, "control socket %s: %s", d->conf.control, strerror(errno));
        close(fd);
        return -1;
    }
    chmod(d->conf.control, 0600);
    return fd;
}

/* --- heartbeats ------------------------------------------------------------------------------- */

static void send_heartbeats(struct ha_daemon *d, uint64_t now)
{
    struct hb_msg m = {0};
    uint8_t pkt[HB_LEN];
    m.incarnation = d->incarnation;
    m.seq = ++d->seq;
    m.sent_ms = wall_ms();
    pthread_mutex_lock(&d->mu);
    uint64_t epoch = d->lv.epoch;
    pthread_mutex_unlock(&d->mu);
    m.epoch = d->sm.state == HA_ACTIVE || d->sm.state == HA_RELEASING ? epoch : 0;
    m.state = (uint8_t)d->sm.state;
    m.flags = ha_sm_flags(&d->sm, now);
    m.claims = d->sm.claims;
    snprintf(m.node, sizeof m.node, "%s", d->conf.node);
    hb_encode(&m, d->conf.key, d->conf.keylen, pkt);
    for (int i = 0; i < d->conf.npeers; i++) {
        if (sendto(d->udp, pkt, sizeof pkt, 0, (struct sockaddr *)&d->conf.peers[i].sa,
                   sizeof d->conf.peers[i].sa) < 0)
            log_debug("ha: heartbeat to %s: %s", d->conf.peers[i].name, strerror(errno));
    }
    d->sent++;
    d->next_send_ms = now + d->conf.keepalive_ms;
}

static void recv_heartbeats(struct ha_daemon *d)
{
    for (;;) {
        uint8_t buf[2048];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(d->udp, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        struct hb_msg m;
        enum hb_drop why = hb_decode(buf, (size_t)n, d->conf.key, d->conf.keylen, &m);
        struct ha_peer_state *p = NULL;
        if (why == HB_ACCEPT) {
            if (strcmp(m.node, d->conf.node) == 0)
                why = HB_DROP_SELF;
            else {
                for (int i = 0; i < d->conf.npeers; i++)
                    if (strcmp(d->conf.peers[i].name, m.node) == 0)
                        p = &d->peers[i];
                if (!p)
                    why = HB_DROP_UNKNOWN;
            }
        }
        if (why == HB_ACCEPT)
            why = hb_admit(&p->replay, &m, wall_ms(), d->conf.replay_window_ms);
        if (why != HB_ACCEPT) {
            d->drops[why]++;
            char a[INET_ADDRSTRLEN] = "?";
            inet_ntop(AF_INET, &from.sin_addr, a, sizeof a);
            log_info("ha: dropped a packet from %s:%d (%zd bytes): %s", a, ntohs(from.sin_port), n,
                     hb_drop_name(why));
            continue;
        }
        d->drops[HB_ACCEPT]++;
        uint64_t now = clock_mono_ms();
        if (!p->view.alive && p->view.heard)
            log_warn("ha: peer %s is back (%s)", p->view.name, ha_state_name(m.state));
        else if (!p->view.heard)
            log_warn("ha: peer %s heard (%s)", p->view.name, ha_state_name(m.state));
        if (p->view.heard && p->view.state != m.state)
            log_warn("ha: peer %s: %s -> %s", p->view.name, ha_state_name(p->view.state),
                     ha_state_name(m.state));
        p->view.heard = 1;
        p->view.alive = 1;
        p->view.state = m.state;
        p->view.flags = m.flags;
        p->view.epoch = m.epoch;
        p->claims = m.claims;
        p->last_ms = now;
        p->warned = 0;
        p->accepted++;
    }
}

static void age_peers(struct ha_daemon *d, uint64_t now)
{
    for (int i = 0; i < d->conf.npeers; i++) {
        struct ha_peer_state *p = &d->peers[i];
        if (!p->view.alive)
            continue;
        uint64_t age = now - p->last_ms;
        if (age >= d->conf.deadtime_ms) {
            p->view.alive = 0;
            log_warn("ha: peer %s is dead: no heartbeat for %llums", p->view.name,
                     (unsigned long long)age);
        } else if (age >= d->conf.warntime_ms && !p->warned) {
            p->warned = 1;
            log_warn("ha: late heartbeat from %s: %llums", p->view.name, (unsigned long long)age);
        }
    }
}

/* check_arm on c (NULL: every check) under d->mu, which the worker copies
 * a check under (ha_work.c). */
static void arm_checks(struct ha_daemon *d, struct check *c, uint64_t now, int keep_restarts)
{
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->conf.nchecks; i++)
        if (!c || c == &d->checks[i])
            check_arm(&d->checks[i], now, keep_restarts);
    pthread_mutex_unlock(&d->mu);
}

/* --- status and commands -------------------------------------------------------------------- */

static void flags_str(uint8_t f, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s%s", f & HB_F_STANDBY ? "standby," : "",
             f & HB_F_TAKEOVER ? "takeover," : "", f & HB_F_HOLD ? "hold," : "", f ? "" : "-");
    size_t l = strlen(out);
    if (l > 1 && out[l - 1] == ',')
        out[l - 1] = '\0';
}

static void status(struct ha_daemon *d, struct buf *o)
{
    uint64_t now = clock_mono_ms();
    char fl[48];
    pthread_mutex_lock(&d->mu);
    struct ha_lease_view lv = d->lv;
    pthread_mutex_unlock(&d->mu);
    flags_str(ha_sm_flags(&d->sm, now), fl, sizeof fl);
    buf_printf(o, "node %s state %s for_ms %" PRIu64 " claims %u flags %s reason \"%s\"\n",
               d->conf.node, ha_state_name(d->sm.state), now - d->sm.since_ms, d->sm.claims, fl,
               d->sm.reason);
    int valid = lv.held && now + d->conf.lease_margin_ms < lv.deadline_ms;
    buf_printf(o, "lease %s holder %s epoch %" PRIu64 " state %s ours %s left_ms %" PRIu64 "\n",
               d->conf.lease_key, lv.exists ? lv.cur.holder : "-", lv.exists ? lv.cur.epoch : 0,
               !lv.seen          ? "unknown"
               : !lv.exists      ? "none"
               : lv.cur.released ? "released"
                                 : "held",
               valid ? "yes" : "no", valid ? lv.deadline_ms - now : 0);
    for (int i = 0; i < d->conf.npeers; i++) {
        struct ha_peer_state *p = &d->peers[i];
        flags_str(p->view.flags, fl, sizeof fl);
        char age[32];
        if (p->view.heard)
            snprintf(age, sizeof age, "%" PRIu64, now - p->last_ms);
        else
            snprintf(age, sizeof age, "never");
        buf_printf(o, "peer %s addr %s:%u state %s heard_ms_ago %s alive %s flags %s\n",
                   p->view.name, d->conf.peers[i].addr, d->conf.peers[i].port,
                   p->view.heard ? ha_state_name(p->view.state) : "unknown", age,
                   p->view.alive ? "yes" : "no", fl);
    }
    pthread_mutex_lock(&d->mu); /* the worker publishes these under it (ha_work.c) */
    for (int i = 0; i < d->conf.nres; i++)
        buf_printf(o, "resource %s kind %s state %s starts %u stops %u last \"%s\"\n",
                   d->res[i].item->name, d->res[i].item->kind, res_state_name(d->res[i].state),
                   d->res[i].starts, d->res[i].stops, d->res[i].last);
    for (int i = 0; i < d->conf.nchecks; i++) {
        struct check *c = &d->checks[i];
        buf_printf(o,
                   "check %s kind %s state %s runs %" PRIu64 " failures %" PRIu64
                   " restarts %d/%d last \"%s\"\n",
                   c->item->name, c->item->kind,
                   d->sm.state != HA_ACTIVE ? "idle"
                   : c->up                  ? "up"
                                            : "down",
                   c->runs, c->failures, c->restarts, c->restarts_max, c->last);
    }
    pthread_mutex_unlock(&d->mu);
    buf_printf(o, "packets sent %" PRIu64, d->sent);
    for (int i = 0; i < HB_NDROP; i++)
        buf_printf(o, " %s %" PRIu64, hb_drop_name((enum hb_drop)i), d->drops[i]);
    buf_printf(o, "\n");
}

static int items_equal(const struct ha_item *a, int na, const struct ha_item *b, int nb)
{
    if (na != nb)
        return 0;
    for (int i = 0; i < na; i++) {
        if (strcmp(a[i].name, b[i].name) || strcmp(a[i].kind, b[i].kind) ||
            a[i].nargs != b[i].nargs || a[i].nopts != b[i].nopts)
            return 0;
        for (int j = 0; j < a[i].nargs; j++)
            if (strcmp(a[i].args[j], b[i].args[j]))
                return 0;
        for (int j = 0; j < a[i].nopts; j++)
            if (strcmp(a[i].okey[j], b[i].okey[j]) || strcmp(a[i].oval[j], b[i].oval[j]))
                return 0;
    }
    return 1;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Applies what can change while running; refuses the rest. */
static int reload(struct ha_daemon *d, char *err, size_t errlen)
{
    struct ha_conf n;
    if (ha_conf_load(&n, d->conf.path, err, errlen) < 0 ||
        ha_conf_check_programs(&n, err, errlen) < 0) {
        ha_conf_free(&n);
        return -1;
    }
    const char *what = NULL;
    if (strcmp(n.node, d->conf.node))
        what = "node";
    else if (!same_str(n.lease_store, d->conf.lease_store) ||
             !same_str(n.lease_key, d->conf.lease_key) ||
             !same_str(n.lease_endpoint, d->conf.lease_endpoint) ||
             n.lease_time_ms != d->conf.lease_time_ms ||
             n.lease_margin_ms != d->conf.lease_margin_ms)
        what = "the lease settings";
    else if (!items_equal(n.res, n.nres, d->conf.res, d->conf.nres))
        what = "the resources";
    else if (!items_equal(n.checks, n.nchecks, d->conf.checks, d->conf.nchecks))
        what = "the checks";
    else if (n.port != d->conf.port || !same_str(n.bind, d->conf.bind) ||
             !same_str(n.control, d->conf.control))
        what = "port, bind or control";
    else if (n.npeers != d->conf.npeers)
        what = "the list of peers";
    for (int i = 0; !what && i < n.npeers; i++)
        if (strcmp(n.peers[i].name, d->conf.peers[i].name))
            what = "the list of peers";
    if (what) {
        set_err(err, errlen,
                "reload: %s changed; restart the daemon (on the standby first) to change them",
                what);
        ha_conf_free(&n);
        return -1;
    }
    struct ha_conf *c = &d->conf;
    c->keepalive_ms = n.keepalive_ms;
    c->warntime_ms = n.warntime_ms;
    c->deadtime_ms = n.deadtime_ms;
    c->initdead_ms = n.initdead_ms;
    c->replay_window_ms = n.replay_window_ms;
    c->lease_poll_ms = n.lease_poll_ms;
    c->flap_max = n.flap_max;
    c->flap_window_ms = n.flap_window_ms;
    c->flap_hold_ms = n.flap_hold_ms;
    c->failover_hold_ms = n.failover_hold_ms;
    c->auto_failback = n.auto_failback;
    free(c->preferred);
    c->preferred = n.preferred ? xstrdup(n.preferred) : NULL;
    memcpy(c->key, n.key, sizeof c->key);
    c->keylen = n.keylen;
    for (int i = 0; i < n.npeers; i++)
        c->peers[i] = n.peers[i];
    d->sm.preferred = c->preferred;
    d->sm.auto_failback = c->auto_failback;
    d->sm.flap_max = c->flap_max;
    d->sm.flap_window_ms = c->flap_window_ms;
    d->sm.flap_hold_ms = c->flap_hold_ms;
    d->sm.failover_hold_ms = c->failover_hold_ms;
    ha_conf_free(&n);
    log_warn("ha: configuration reloaded from %s", c->path);
    return 0;
}

static void control(struct ha_daemon *d)
{
    int fd = accept4(d->ctl, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    struct buf o = {0};
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != 0) {
        buf_puts(&o, "error: buoy ha commands are for root only\n");
        goto reply;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char line[64];
    ssize_t n = recv(fd, line, sizeof line - 1, 0);
    if (n <= 0) {
        close(fd);
        return;
    }
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "status") == 0) {
        buf_puts(&o, "ok\n");
        status(d, &o);
    } else if (strcmp(line, "status-json") == 0) {
        buf_puts(&o, "ok\n");
        ha_status_json(d, &o);
    } else if (strcmp(line, "standby") == 0) {
        d->pending_cmd = HA_CMD_STANDBY;
        buf_printf(&o, "ok: %s goes to standby and stays there until buoy ha online or takeover\n",
                   d->conf.node);
    } else if (strcmp(line, "takeover") == 0) {
        if (d->sm.state == HA_FAILED)
            buf_puts(&o,
                     "error: this node is failed; fix the resource and run buoy ha clear first\n");
        else {
            d->pending_cmd = HA_CMD_TAKEOVER;
            buf_printf(&o, "ok: %s asks to take over\n", d->conf.node);
        }
    } else if (strcmp(line, "online") == 0) {
        d->pending_cmd = HA_CMD_ONLINE;
        buf_puts(&o, "ok: manual standby cleared\n");
    } else if (strcmp(line, "clear") == 0) {
        if (d->sm.state != HA_FAILED)
            buf_printf(&o, "ok: nothing to clear (%s)\n", ha_state_name(d->sm.state));
        else {
            d->pending_cmd = HA_CMD_CLEAR;
            buf_puts(&o, "ok: failed state cleared\n");
        }
    } else if (strcmp(line, "reload") == 0) {
        char err[512];
        if (reload(d, err, sizeof err) < 0)
            buf_printf(&o, "error: %s\n", err);
        else
            buf_puts(&o, "ok: reloaded\n");
    } else
        buf_printf(&o,
                   "error: unknown command '%.40s'; use status, status-json, standby, "
                   "takeover, online, clear or reload\n",
                   line);
reply:;
    size_t off = 0;
    while (off < o.len) {
        ssize_t w = send(fd, o.p + off, o.len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&o);
    close(fd);
}

/* --- the loop ------------------------------------------------------------------------------ */

static void set_lease_mode(struct ha_daemon *d, enum ha_lease_mode m, int release)
{
    pthread_mutex_lock(&d->mu);
    if (d->lease_mode != m || release) {
        d->lease_mode = m;
        if (release)
            d->release_req = 1;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

static int submit_job(struct ha_daemon *d, enum ha_work_job j, int arg)
{
    pthread_mutex_lock(&d->mu);
    int ok = d->job == WJ_NONE && !d->job_running && d->job_result == WJ_NONE;
    if (ok) {
        d->job = j;
        d->job_arg = arg;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static void step(struct ha_daemon *d)
{
    uint64_t now = clock_mono_ms();
    struct ha_sm_peer views[HA_MAX_PEERS];
    struct ha_sm_in in = {0};
    struct ha_sm_out out;
    age_peers(d, now);
    for (int i = 0; i < d->conf.npeers; i++)
        views[i] = d->peers[i].view;
    in.now = now;
    in.npeers = d->conf.npeers;
    in.peers = views;
    pthread_mutex_lock(&d->mu);
    in.lease_valid = d->lv.held && now + d->conf.lease_margin_ms < d->lv.deadline_ms;
    in.lease_epoch = d->lv.epoch;
    enum ha_work_job done = d->job_result;
    int done_arg = d->job_result_arg, done_ok = d->job_result_ok, done_up = d->job_result_up;
    d->job_result = WJ_NONE;
    pthread_mutex_unlock(&d->mu);

    if (done == WJ_START || done == WJ_STOP) {
        in.job_done = done == WJ_START ? HA_JOB_START : HA_JOB_STOP;
        in.job_ok = done_ok;
        in.job_left_up = done_up;
    } else if (done == WJ_CHECK) {
        struct check *c = &d->checks[done_arg];
        if (d->sm.state == HA_ACTIVE) {
            pthread_mutex_lock(&d->mu); /* the worker copies checks under it */
            enum check_verdict v = check_record(c, done_ok, now);
            pthread_mutex_unlock(&d->mu);
            if (v == CV_FAILOVER)
                d->check_failover = 1;
            else if (v == CV_RESTART) {
                int r = -1;
                for (int i = 0; c->resource && i < d->conf.nres; i++)
                    if (strcmp(d->res[i].item->name, c->resource) == 0)
                        r = i;
                pthread_mutex_lock(&d->mu);
                d->job_result = WJ_NONE;
                pthread_mutex_unlock(&d->mu);
                submit_job(d, WJ_RESTART, r);
                arm_checks(d, c, now, 1);
            }
        }
    } else if (done == WJ_RESTART) {
        if (!done_ok) {
            log_error("ha: local restart failed: failing over");
            d->check_failover = 1;
        }
        arm_checks(d, NULL, now, 1);
    }
    in.check_failover = d->check_failover;
    in.cmd = d->pending_cmd;
    d->pending_cmd = HA_CMD_NONE;

    enum ha_state before = d->sm.state;
    ha_sm_step(&d->sm, &in, &out);
    ha_sm_assert(&d->sm);
    if (d->sm.state != HA_ACTIVE)
        d->check_failover = 0;
    if (d->sm.state == HA_ACTIVE && before != HA_ACTIVE)
        arm_checks(d, NULL, now, 0);

    set_lease_mode(d, out.lease, out.release_lease);
    if (out.job != HA_JOB_NONE)
        d->sm_pending = out.job;
    if (d->sm_pending != HA_JOB_NONE &&
        submit_job(d, d->sm_pending == HA_JOB_START ? WJ_START : WJ_STOP, -1))
        d->sm_pending = HA_JOB_NONE;
    /* Checks, while active and the worker is free. */
    if (d->sm.state == HA_ACTIVE && d->sm_pending == HA_JOB_NONE && !d->check_failover) {
        for (int i = 0; i < d->conf.nchecks; i++)
            if (now >= d->checks[i].next_ms && submit_job(d, WJ_CHECK, i)) {
                d->checks[i].next_ms = now + d->checks[i].interval_ms;
                break;
            }
    }
    if (d->sm.state != before)
        d->next_send_ms = now; /* tell the peers at once */
    if (d->quit_after_stop && d->sm.state != HA_ACTIVE && d->sm.state != HA_ACQUIRING &&
        d->sm.state != HA_RELEASING && d->sm_pending == HA_JOB_NONE) {
        pthread_mutex_lock(&d->mu);
        int idle = d->job == WJ_NONE && !d->job_running;
        pthread_mutex_unlock(&d->mu);
        if (idle)
            d->quit = 1;
    }
}

static int setup(struct ha_daemon *d, char *err, size_t errlen)
{
    for (int i = 0; i < d->conf.nres; i++)
        if (res_init(&d->res[i], &d->conf.res[i], err, errlen) < 0)
            return -1;
    for (int i = 0; i < d->conf.nchecks; i++)
        check_init(&d->checks[i], &d->conf.checks[i]);
    for (int i = 0; i < d->conf.npeers; i++)
        d->peers[i].view.name = d->conf.peers[i].name;
    struct store_opts so = {
        .endpoint = d->conf.lease_endpoint,
        .region = d->conf.lease_region,
        .fault = d->conf.lease_fault,
        .retries = 1,
        .retry_base_ms = 20,
        .retry_cap_ms = 100,
        .connect_timeout_ms = 1000,
        .request_timeout_ms =
            (int)(d->conf.lease_time_ms / 3 > 5000 ? 5000 : d->conf.lease_time_ms / 3),
    };
    d->store = store_open(d->conf.lease_store, &so, err, errlen);
    if (!d->store)
        return -1;
    char host[LEASE_NAME_MAX] = "";
    gethostname(host, sizeof host - 1);
    lease_init(&d->lease, d->store, d->conf.lease_key, d->conf.node, host, d->conf.lease_time_ms,
               d->conf.lease_margin_ms);
    if (RAND_bytes((unsigned char *)&d->incarnation, sizeof d->incarnation) != 1) {
        set_err(err, errlen, "no random bytes for the incarnation number");
        return -1;
    }
    if (pipe2(d->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        set_err(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if ((d->udp = open_udp(d, err, errlen)) < 0)
        return -1;
    if ((d->ctl = open_ctl(d, err, errlen)) < 0)
        return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before the threads, so they inherit it */
    signal(SIGPIPE, SIG_IGN);
    d->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->sigfd < 0) {
        set_err(err, errlen, "signalfd: %s", strerror(errno));
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->mu, NULL);
    return 0;
}

int ha_daemon_run(const char *config_path, const char *buoy_path)
{
    static struct ha_daemon d; /* big; one per process */
    char err[1024];
    memset(&d, 0, sizeof d);
    d.udp = d.ctl = d.sigfd = d.wake[0] = d.wake[1] = -1;
    d.buoy_path = buoy_path;
    if (ha_conf_load(&d.conf, config_path, err, sizeof err) < 0 ||
        ha_conf_check_programs(&d.conf, err, sizeof err) < 0) {
        fprintf(stderr, "buoy: %s\n", err);
        ha_conf_free(&d.conf);
        return 1;
    }
    int ret = 1;
    if (setup(&d, err, sizeof err) < 0) {
        fprintf(stderr, "buoy: ha: %s\n", err);
        goto out;
    }
    uint64_t now = clock_mono_ms();
    ha_sm_init(&d.sm, &d.conf, now);
    d.lease_mode = LM_WATCH;
    pthread_create(&d.lease_thread, NULL, ha_lease_main, &d);
    pthread_create(&d.work_thread, NULL, ha_work_main, &d);
    log_warn("ha: %s starting: %d peer(s), %d resource(s), %d check(s); keepalive %llums deadtime "
             "%llums initdead %llums lease %s/%s %llums",
             d.conf.node, d.conf.npeers, d.conf.nres, d.conf.nchecks,
             (unsigned long long)d.conf.keepalive_ms, (unsigned long long)d.conf.deadtime_ms,
             (unsigned long long)d.conf.initdead_ms, d.conf.lease_store, d.conf.lease_key,
             (unsigned long long)d.conf.lease_time_ms);
    d.next_send_ms = now;
    while (!d.quit) {
        now = clock_mono_ms();
        if (now >= d.next_send_ms)
            send_heartbeats(&d, now);
        uint64_t wait = d.next_send_ms > now ? d.next_send_ms - now : 0;
        if (wait > 50)
            wait = 50;
        struct pollfd pf[4] = {
            {.fd = d.udp, .events = POLLIN},
            {.fd = d.ctl, .events = POLLIN},
            {.fd = d.sigfd, .events = POLLIN},
            {.fd = d.wake[0], .events = POLLIN},
        };
        poll(pf, 4, (int)wait);
        if (pf[0].revents)
            recv_heartbeats(&d);
        if (pf[1].revents)
            control(&d);
        if (pf[2].revents) {
            struct signalfd_siginfo si;
            while (read(d.sigfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    if (log_reopen() < 0) /* --log-file, after logrotate moved it */
                        log_error("ha: cannot reopen the log file: %s", strerror(errno));
                    if (reload(&d, err, sizeof err) < 0)
                        log_error("ha: %s", err);
                } else if (!d.quit_after_stop) {
                    log_warn("ha: signal %u: stopping the resources, then exiting", si.ssi_signo);
                    d.quit_after_stop = 1;
                    d.pending_cmd = HA_CMD_STANDBY;
                } else {
                    log_warn("ha: second signal: exiting now");
                    d.quit = 1;
                }
            }
        }
        if (pf[3].revents) {
            char tmp[64];
            while (read(d.wake[0], tmp, sizeof tmp) > 0)
                ;
        }
        step(&d);
    }
    /* Tell the peers we are going (a last heartbeat in standby). */
    send_heartbeats(&d, clock_mono_ms());
    ret = d.sm.state == HA_FAILED ? 1 : 0;
    pthread_mutex_lock(&d.mu);
    d.quit = 1;
    pthread_cond_broadcast(&d.cv);
    pthread_mutex_unlock(&d.mu);
    pthread_join(d.lease_thread, NULL);
    pthread_join(d.work_thread, NULL);
    log_warn("ha: %s stopped", d.conf.node);
out:
    if (d.ctl >= 0) {
        close(d.ctl);
        unlink(d.conf.control);
    }
    if (d.udp >= 0)
        close(d.udp);
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.wake[0] >= 0) {
        close(d.wake[0]);
        close(d.wake[1]);
    }
    store_close(d.store);
    ha_conf_free(&d.conf);
    return ret;
}
