/* test_ha_sm.c - the failover state machine (src/ha/ha_sm.c) in a simulated
 * cluster: two or three nodes, each with the real state machine and the real
 * store lease (src/store/lease.c on a directory store, through the fault
 * layer), a simulated clock, heartbeats that the test delivers or cuts, and
 * resource jobs that take time and may fail.
 *
 * After every step: ha_sm_check() holds on every node (rules S1-S6), and at
 * most one live node has its resources up.  Scenarios: start-up, the active
 * node dying, heartbeats cut both ways while the store is reachable,
 * auto_failback on and off, manual standby and takeover, a failed stop
 * (failed, sticky until clear, keeping the lease while its resource is up),
 * a start and a stop that both fail (failed, the lease let go, the peer
 * active), a check failing over, flap damping; then random runs mixing
 * partitions, crashes, restarts, store faults, failing starts and stops and
 * commands. */
#include "ha/ha_conf.h"
#include "ha/ha_sm.h"
#include "ha/hb.h"
#include "store/lease.h"
#include "tap.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/rng.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 3
static char tmpdir[] = "/tmp/buoy-test-hasm-XXXXXX";
static char err[1024];
static uint64_t sim_ms;
static uint64_t sim_now(void)
{
    return sim_ms;
}

struct node {
    struct ha_conf conf;
    struct ha_sm sm;
    struct store *store;
    struct lease lease;
    int alive;
    struct ha_sm_peer view[MAXN];
    uint64_t heard_at[MAXN];
    uint64_t next_hb, next_poll, next_renew;
    enum ha_job job;
    uint64_t job_done_at;
    int job_fail_next_stop, job_fail_next_start;
    int res_up; /* the real resource: up from a start issued to a stop finished */
    enum ha_cmd cmd;
    int check_failover;
    enum ha_state last_state;
    uint64_t activations[64];
    int nact;
};

struct cluster {
    int n;
    struct node nd[MAXN];
    int cut[MAXN][MAXN]; /* heartbeats from i to j are dropped */
    int violations;
    struct rng g;
    const char *fault;
    char key[64];
};

static const char *names[MAXN] = {"alpha", "beta", "gamma"};

static void node_boot(struct cluster *c, int i, const char *extra)
{
    struct node *x = &c->nd[i];
    char text[2048];
    int len = snprintf(text, sizeof text, "node %s\n", names[i]);
    for (int j = 0; j < c->n; j++)
        if (j != i)
            len += snprintf(text + len, sizeof text - (size_t)len, "peer %s 10.0.0.%d\n", names[j],
                            j + 1);
    snprintf(text + len, sizeof text - (size_t)len,
             "keepalive 100ms\ndeadtime 1s\ninitdead 2s\nlease_store %s\nlease_time 800ms\n"
             "flap_window 20s\nflap_max 3\nflap_hold 5s\nfailover_hold 3s\n%s",
             tmpdir, extra ? extra : "");
    if (ha_conf_load_string(&x->conf, text, names[i], (const uint8_t *)"0123456789", 10, err,
                            sizeof err) < 0)
        bail_out(err);
    struct store_opts so = {.retries = 1, .retry_base_ms = 1, .retry_cap_ms = 1, .fault = c->fault};
    char fault[128];
    if (c->fault) {
        snprintf(fault, sizeof fault, "%s,seed=%" PRIu64, c->fault, rng_next(&c->g));
        so.fault = fault;
    }
    x->store = store_open(tmpdir, &so, err, sizeof err);
    if (!x->store)
        bail_out(err);
    lease_init(&x->lease, x->store, c->key, names[i], names[i], x->conf.lease_time_ms,
               x->conf.lease_margin_ms);
    x->lease.now = sim_now;
    ha_sm_init(&x->sm, &x->conf, sim_ms);
    x->alive = 1;
    x->job = HA_JOB_NONE;
    x->res_up = 0;
    x->next_hb = x->next_poll = x->next_renew = sim_ms;
    for (int j = 0; j < MAXN; j++) {
        memset(&x->view[j], 0, sizeof x->view[j]);
        x->view[j].name = names[j];
    }
}

static void node_crash(struct cluster *c, int i)
{
    struct node *x = &c->nd[i];
    x->alive = 0;
    x->res_up = 0; /* the machine is gone, and its address with it */
    store_close(x->store);
    ha_conf_free(&x->conf);
}

static void cluster_init(struct cluster *c, int n, const char *fault, const char *extra,
                         uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->fault = fault;
    rng_seed(&c->g, seed);
    snprintf(c->key, sizeof c->key, "lease-%" PRIu64 "-%" PRIu64, seed, rng_next(&c->g) % 100000);
    for (int i = 0; i < n; i++)
        node_boot(c, i, extra);
}

static void cluster_free(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->nd[i].alive)
            node_crash(c, i);
}

static void node_step(struct cluster *c, int i)
{
    struct node *x = &c->nd[i];
    if (!x->alive)
        return;
    uint64_t now = sim_ms;
    /* heartbeats out */
    if (now >= x->next_hb) {
        x->next_hb = now + x->conf.keepalive_ms;
        for (int j = 0; j < c->n; j++) {
            if (j == i || !c->nd[j].alive || c->cut[i][j])
                continue;
            struct ha_sm_peer *v = &c->nd[j].view[i];
            v->heard = v->alive = 1;
            v->state = (uint8_t)x->sm.state;
            v->flags = ha_sm_flags(&x->sm, now);
            v->epoch = x->sm.state == HA_ACTIVE ? x->lease.cur.epoch : 0;
            c->nd[j].heard_at[i] = now;
        }
    }
    struct ha_sm_peer peers[MAXN];
    int np = 0;
    for (int j = 0; j < c->n; j++) {
        if (j == i)
            continue;
        if (x->view[j].alive && now - x->heard_at[j] >= x->conf.deadtime_ms)
            x->view[j].alive = 0;
        peers[np++] = x->view[j];
    }
    struct ha_sm_in in = {.now = now,
                          .npeers = np,
                          .peers = peers,
                          .cmd = x->cmd,
                          .check_failover = x->check_failover};
    x->cmd = HA_CMD_NONE;
    in.lease_valid = lease_valid(&x->lease, now);
    in.lease_epoch = x->lease.held ? x->lease.cur.epoch : 0;
    if (x->job != HA_JOB_NONE && now >= x->job_done_at) {
        in.job_done = x->job;
        if (x->job == HA_JOB_START) {
            /* a start checks the lease before each resource, as ha_work.c does */
            in.job_ok = !x->job_fail_next_start && in.lease_valid;
            /* the agent said its start failed: the resource is not up (the
             * contract of res.c's may_run); a start cut short by the lease
             * may have got half-way and counts as up */
            if (x->job_fail_next_start)
                x->res_up = 0;
            x->job_fail_next_start = 0;
        } else {
            in.job_ok = !x->job_fail_next_stop;
            x->job_fail_next_stop = 0;
            if (in.job_ok)
                x->res_up = 0;
            else
                in.job_left_up = x->res_up; /* what the worker's may_run reports */
        }
        x->job = HA_JOB_NONE;
    }
    struct ha_sm_out out;
    ha_sm_step(&x->sm, &in, &out);
    const char *bad = ha_sm_check(&x->sm);
    if (bad) {
        diag("%s at %" PRIu64 ": %s", names[i], now, bad);
        c->violations++;
    }
    if (x->sm.state != HA_ACTIVE)
        x->check_failover = 0;
    if (x->sm.state == HA_ACTIVE && x->last_state != HA_ACTIVE && x->nact < 64)
        x->activations[x->nact++] = now;
    x->last_state = x->sm.state;
    if (out.job == HA_JOB_START) {
        x->job = HA_JOB_START;
        x->job_done_at = now + 30;
        x->res_up = 1;
    } else if (out.job == HA_JOB_STOP) {
        x->job = HA_JOB_STOP;
        x->job_done_at = now + 30;
    }
    /* the lease thread, inline */
    if (out.release_lease && x->lease.held)
        lease_release(&x->lease, err, sizeof err);
    switch (out.lease) {
    case LM_HOLD:
        if (x->lease.held) {
            if (now >= x->next_renew) {
                x->next_renew = now + (lease_renew(&x->lease, err, sizeof err) == LEASE_OK
                                           ? x->conf.lease_time_ms / 3
                                           : x->conf.lease_time_ms / 12);
            }
            break;
        }
        /* fall through */
    case LM_WATCH:
    case LM_TAKE:
        if (now >= x->next_poll) {
            lease_observe(&x->lease, err, sizeof err);
            x->next_poll = now + x->conf.lease_poll_ms;
        }
        if (out.lease == LM_TAKE && x->lease.seen && lease_wait_ms(&x->lease, now) == 0 &&
            lease_take(&x->lease, err, sizeof err) == LEASE_OK)
            x->next_renew = now + x->conf.lease_time_ms / 3;
        break;
    case LM_IDLE:
        break;
    }
}

static void check_invariant(struct cluster *c)
{
    int up = 0;
    for (int i = 0; i < c->n; i++)
        up += c->nd[i].alive && c->nd[i].res_up;
    if (up > 1) {
        diag("at %" PRIu64 ": %d nodes have their resources up (states %s %s %s)", sim_ms, up,
             ha_state_name(c->nd[0].sm.state), ha_state_name(c->nd[1].sm.state),
             c->n > 2 ? ha_state_name(c->nd[2].sm.state) : "-");
        c->violations++;
    }
}

static void run(struct cluster *c, uint64_t ms)
{
    uint64_t end = sim_ms + ms;
    while (sim_ms < end) {
        sim_ms += 10;
        for (int i = 0; i < c->n; i++)
            node_step(c, i);
        check_invariant(c);
    }
}

static int count(struct cluster *c, enum ha_state s)
{
    int n = 0;
    for (int i = 0; i < c->n; i++)
        n += c->nd[i].alive && c->nd[i].sm.state == s;
    return n;
}

static int active_one(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->nd[i].alive && c->nd[i].sm.state == HA_ACTIVE)
            return i;
    return -1;
}

/* Runs until node i is active (or timeout); returns the time it took. */
static uint64_t until_active(struct cluster *c, int i, uint64_t timeout)
{
    uint64_t t0 = sim_ms;
    while (sim_ms - t0 < timeout && !(c->nd[i].alive && c->nd[i].sm.state == HA_ACTIVE))
        run(c, 10);
    return sim_ms - t0;
}

static void test_startup_and_death(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, "preferred beta\n", 1);
    run(&c, 3000);
    ok(count(&c, HA_ACTIVE) == 1 && c.nd[1].sm.state == HA_ACTIVE && c.nd[0].sm.state == HA_STANDBY,
       "start-up: the preferred node is active, the other standby");
    node_crash(&c, 1);
    uint64_t t = until_active(&c, 0, 5000);
    ok(c.nd[0].sm.state == HA_ACTIVE, "the active node dies: the standby takes over");
    ok(t <= 1000 + 500, "takeover within deadtime + 0.5 s of simulated time (%" PRIu64 " ms)", t);
    ok(c.nd[0].lease.cur.epoch == 2, "the lease epoch went from 1 to 2");
    node_boot(&c, 1, "preferred beta\n");
    run(&c, 4000);
    ok(c.nd[0].sm.state == HA_ACTIVE && c.nd[1].sm.state == HA_STANDBY,
       "auto_failback off: the preferred node comes back as standby");
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_failback(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, "preferred alpha\nauto_failback on\n", 2);
    run(&c, 3000);
    ok(c.nd[0].sm.state == HA_ACTIVE, "alpha (preferred) is active");
    node_crash(&c, 0);
    until_active(&c, 1, 5000);
    ok(c.nd[1].sm.state == HA_ACTIVE, "beta takes over");
    node_boot(&c, 0, "preferred alpha\nauto_failback on\n");
    uint64_t t = until_active(&c, 0, 8000);
    ok(c.nd[0].sm.state == HA_ACTIVE && c.nd[1].sm.state == HA_STANDBY,
       "auto_failback on: alpha gets its resources back (%" PRIu64 " ms after it came back)", t);
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_partition(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, NULL, 3);
    run(&c, 3000);
    int a = active_one(&c);
    ok(a >= 0, "one node active");
    c.cut[0][1] = c.cut[1][0] = 1;
    run(&c, 5000);
    int b = 1 - a;
    ok(c.nd[a].sm.state == HA_ACTIVE && c.nd[b].sm.state == HA_ACQUIRING,
       "heartbeats cut both ways: the holder stays active, the other keeps trying (%s)",
       ha_state_name(c.nd[b].sm.state));
    c.cut[0][1] = c.cut[1][0] = 0;
    run(&c, 2000);
    ok(c.nd[a].sm.state == HA_ACTIVE && c.nd[b].sm.state == HA_STANDBY,
       "healed: back to one active and one standby");
    /* one way only */
    c.cut[a][b] = 1;
    run(&c, 5000);
    ok(count(&c, HA_ACTIVE) == 1, "heartbeats cut one way: still one active");
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_commands(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, "preferred alpha\n", 4);
    run(&c, 3000);
    c.nd[0].cmd = HA_CMD_STANDBY;
    run(&c, 2000);
    ok(c.nd[0].sm.state == HA_STANDBY && c.nd[1].sm.state == HA_ACTIVE,
       "standby on the active node: the other takes over");
    ok(c.nd[0].sm.manual_standby && (ha_sm_flags(&c.nd[0].sm, sim_ms) & HB_F_STANDBY),
       "the node stays in manual standby and says so in its heartbeats");
    c.nd[0].cmd = HA_CMD_TAKEOVER;
    run(&c, 2000);
    ok(c.nd[0].sm.state == HA_ACTIVE && c.nd[1].sm.state == HA_STANDBY,
       "takeover: the resources come back");
    /* a stop that fails: failed, sticky */
    c.nd[0].job_fail_next_stop = 1;
    c.nd[0].cmd = HA_CMD_STANDBY;
    run(&c, 3000);
    ok(c.nd[0].sm.state == HA_FAILED, "a failed stop marks the node failed");
    ok(c.nd[0].res_up, "(its resource is still up)");
    c.nd[0].cmd = HA_CMD_TAKEOVER;
    run(&c, 3000);
    ok(c.nd[0].sm.state == HA_FAILED, "a failed node ignores takeover");
    ok(c.nd[1].sm.state != HA_ACTIVE,
       "the other node does not start while the failed node (which keeps its lease, S6) may "
       "still have its resources up (%s)",
       ha_state_name(c.nd[1].sm.state));
    c.nd[0].res_up = 0; /* the operator fixed it */
    c.nd[0].cmd = HA_CMD_CLEAR;
    run(&c, 4000);
    ok(c.nd[0].sm.state == HA_STANDBY || c.nd[0].sm.state == HA_ACTIVE,
       "clear leaves the failed state (%s)", ha_state_name(c.nd[0].sm.state));
    is_int(count(&c, HA_ACTIVE), 1, "one node active after clear");
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

/* A resource that cannot start on the preferred node, and whose stop fails
 * too: the node is failed but nothing of it can run, so it lets the lease go
 * and the other node takes over (S6); the failed node never claims again
 * until clear. */
static void test_failed_start(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, "preferred alpha\n", 7);
    c.nd[0].job_fail_next_start = 1;
    c.nd[0].job_fail_next_stop = 1;
    uint64_t t0 = sim_ms;
    while (sim_ms - t0 < 10000 && c.nd[0].sm.state != HA_FAILED)
        run(&c, 10);
    ok(c.nd[0].sm.state == HA_FAILED && !c.nd[0].res_up,
       "alpha: the start fails, the stop fails: failed, with nothing up");
    run(&c, 50);
    ok(!lease_valid(&c.nd[0].lease, sim_ms) && c.nd[0].lease.cur.released,
       "the failed node released the lease (it holds it no more)");
    uint64_t t = until_active(&c, 1, 5000);
    ok(c.nd[1].sm.state == HA_ACTIVE,
       "beta takes over within %" PRIu64 " ms of simulated time (deadtime 1000 ms, lease 800 ms)",
       t);
    ok(t <= 1000 + 800, "within deadtime + lease_time");
    run(&c, 3000);
    ok(c.nd[0].sm.state == HA_FAILED && c.nd[1].sm.state == HA_ACTIVE,
       "alpha stays failed (it never claims) and beta active");
    c.nd[0].cmd = HA_CMD_CLEAR;
    run(&c, 2000);
    ok(c.nd[0].sm.state == HA_STANDBY && c.nd[1].sm.state == HA_ACTIVE,
       "after clear alpha is standby; beta keeps the resources");
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_check_failover_and_flap(void)
{
    struct cluster c;
    cluster_init(&c, 2, NULL, "preferred alpha\n", 5);
    run(&c, 3000);
    c.nd[0].check_failover = 1;
    run(&c, 2000);
    ok(c.nd[1].sm.state == HA_ACTIVE && c.nd[0].sm.state == HA_STANDBY,
       "a check gives up: the other node takes over");
    ok(ha_sm_flags(&c.nd[0].sm, sim_ms) & HB_F_HOLD, "the node that gave up holds back");
    /* Both nodes fail their checks over and over: flap damping caps how
     * often each becomes active. */
    for (int k = 0; k < 40; k++) {
        int a = active_one(&c);
        if (a >= 0)
            c.nd[a].check_failover = 1;
        run(&c, 1500);
    }
    int worst = 0, total = 0;
    for (int i = 0; i < 2; i++) {
        struct node *x = &c.nd[i];
        total += x->nact;
        for (int a = 0; a < x->nact; a++) {
            int in_window = 0;
            for (int b = a; b < x->nact; b++)
                in_window += x->activations[b] - x->activations[a] < x->conf.flap_window_ms;
            if (in_window > worst)
                worst = in_window;
        }
    }
    ok(worst <= 3 && total > 4,
       "40 failing rounds: %d activations, at most %d by one node within "
       "flap_window (flap_max 3)",
       total, worst);
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_three(void)
{
    struct cluster c;
    cluster_init(&c, 3, NULL, "preferred gamma\n", 6);
    run(&c, 3000);
    ok(c.nd[2].sm.state == HA_ACTIVE && count(&c, HA_STANDBY) == 2,
       "three nodes: the preferred one is active, two standby");
    node_crash(&c, 2);
    run(&c, 3000);
    ok(count(&c, HA_ACTIVE) == 1 && c.nd[0].sm.state == HA_ACTIVE,
       "it dies: exactly one takes over (the first by name)");
    c.cut[0][1] = c.cut[1][0] = 1;
    run(&c, 4000);
    ok(count(&c, HA_ACTIVE) == 1, "the survivors cut apart: still one active");
    is_int(c.violations, 0, "no rule broken, never two nodes up");
    cluster_free(&c);
}

static void test_random(void)
{
    int trials = getenv("TRIALS") ? atoi(getenv("TRIALS")) : 12;
    int bad = 0, actives = 0;
    for (int t = 0; t < trials; t++) {
        struct cluster c;
        int n = 2 + t % 2;
        cluster_init(&c, n, t % 3 ? "err=0.1,ackloss=0.05" : NULL,
                     t % 2 ? "preferred alpha\nauto_failback on\n" : NULL, 100 + (uint64_t)t);
        for (int round = 0; round < 30; round++) {
            uint64_t ev = rng_below(&c.g, 10);
            int i = (int)rng_below(&c.g, (uint64_t)n), j = (int)rng_below(&c.g, (uint64_t)n);
            if (ev == 0 && c.nd[i].alive)
                node_crash(&c, i);
            else if (ev == 1 && !c.nd[i].alive)
                node_boot(&c, i, t % 2 ? "preferred alpha\nauto_failback on\n" : NULL);
            else if (ev <= 3 && i != j)
                c.cut[i][j] = !c.cut[i][j];
            else if (ev == 4 && c.nd[i].alive) {
                /* standby, takeover or online; clear (ev 6) only once the
                 * resource is down, as the operator is told */
                static const enum ha_cmd cmds[] = {HA_CMD_STANDBY, HA_CMD_TAKEOVER, HA_CMD_ONLINE};
                c.nd[i].cmd = cmds[rng_below(&c.g, 3)];
            }
            else if (ev == 5 && c.nd[i].alive && c.nd[i].sm.state == HA_ACTIVE)
                c.nd[i].check_failover = 1;
            else if (ev == 6 && c.nd[i].alive && c.nd[i].sm.state == HA_FAILED) {
                c.nd[i].res_up = 0;
                c.nd[i].cmd = HA_CMD_CLEAR;
            } else if (ev == 7 && c.nd[i].alive)
                c.nd[i].job_fail_next_start = 1;
            else if (ev == 8 && c.nd[i].alive)
                c.nd[i].job_fail_next_stop = 1;
            run(&c, rng_below(&c.g, 2500));
            actives += count(&c, HA_ACTIVE);
        }
        bad += c.violations;
        cluster_free(&c);
    }
    is_int(bad, 0,
           "%d random runs (crashes, restarts, cut heartbeats, commands, store faults, failing "
           "starts and stops): "
           "no rule broken, never two nodes up",
           trials);
    ok(actives > 0, "and nodes were active (%d samples)", actives);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

int main(void)
{
    plan_no_plan();
    log_set_level(getenv("VERBOSE") ? LOGL_WARN : LOGL_ERROR);
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp");
    sim_ms = 1000000;
    test_startup_and_death();
    test_failback();
    test_partition();
    test_commands();
    test_failed_start();
    test_check_failover_and_flap();
    test_three();
    test_random();
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
