/* test_lease.c - unit tests of the store lease (src/store/lease.c).
 *
 * What matters to a user: two holders never think they hold the lease at the
 * same moment, epochs only go up, and a dead holder's lease is taken after
 * ttl + margin.  Besides codec and basic checks, a simulation runs three
 * contenders on one directory store, each through its own stack with
 * injected faults (errors, lost answers, throttling), under a simulated
 * monotonic clock that also advances while a request is "in flight"; holders
 * crash (stop acting) and pause at random.  After every step it checks that
 * at most one contender has lease_valid(now) and that the epoch in the store
 * never went down. */
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
#include <unistd.h>

static char tmpdir[] = "/tmp/buoy-test-lease-XXXXXX";
static char err[STORE_ERRMSG_MAX];

/* The simulated clock: every read of it moves time on a little, as a request
 * would take time on the wire. */
static uint64_t sim_ms = 1000000;
static struct rng clock_rng;
static uint64_t sim_now(void)
{
    sim_ms += rng_below(&clock_rng, 40);
    return sim_ms;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

static struct store *open_store(const char *fault)
{
    struct store_opts o = {.retries = 2, .retry_base_ms = 1, .retry_cap_ms = 2, .fault = fault};
    struct store *s = store_open(tmpdir, &o, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

static void test_codec(void)
{
    struct lease_rec r = {.epoch = 7, .since = 100, .renewed = 160, .renewals = 42, .ttl_ms = 2000};
    snprintf(r.holder, sizeof r.holder, "alpha");
    snprintf(r.host, sizeof r.host, "alpha.example");
    struct buf b = {0};
    lease_format(&r, &b);
    is_str(b.p,
           "buoy-lease 1\nepoch 7\nholder alpha\nhost alpha.example\nsince 100\nrenewed 160\n"
           "renewals 42\nttl_ms 2000\nstate held\n",
           "record format is exact");
    struct lease_rec back;
    ok(lease_parse(b.p, b.len, &back, err, sizeof err) == 0 && back.epoch == 7 &&
           back.renewals == 42 && back.ttl_ms == 2000 && !back.released &&
           strcmp(back.holder, "alpha") == 0,
       "record round-trips");
    int bad = 0;
    for (size_t cut = 0; cut < b.len; cut++)
        bad += lease_parse(b.p, cut, &back, err, sizeof err) < 0;
    is_int(bad, b.len, "every truncation of a record is refused");
    struct rng g;
    rng_seed(&g, 5);
    int accepted = 0;
    for (int i = 0; i < 2000; i++) {
        char tmp[256];
        memcpy(tmp, b.p, b.len);
        size_t pos = rng_below(&g, b.len);
        tmp[pos] = (char)rng_below(&g, 256);
        if (lease_parse(tmp, b.len, &back, err, sizeof err) == 0) {
            /* A changed digit may still parse; the epoch must then be what it says. */
            accepted++;
            if (back.epoch < 1 || back.ttl_ms < 1)
                accepted = -100000;
        }
    }
    ok(accepted >= 0, "garbled records are refused or parse to sane values (%d parsed)", accepted);
    buf_free(&b);
}

static void test_basic(void)
{
    struct store *s1 = open_store(NULL), *s2 = open_store(NULL);
    struct lease a, b;
    lease_init(&a, s1, "basic/lease", "alpha", "host-a", 2000, 200);
    lease_init(&b, s2, "basic/lease", "beta", "host-b", 2000, 200);
    a.now = b.now = sim_now;

    is_int(lease_wait_ms(&a, sim_now()), UINT64_MAX, "nothing observed: no take");
    is_int(lease_take(&a, err, sizeof err), LEASE_BUSY, "take before observe is refused");
    is_int(lease_observe(&a, err, sizeof err), LEASE_OK, "observe a missing lease");
    is_int(lease_wait_ms(&a, sim_now()), 0, "a missing lease can be taken at once");
    is_int(lease_take(&a, err, sizeof err), LEASE_OK, "alpha takes it");
    ok(lease_valid(&a, sim_now()) && a.cur.epoch == 1, "alpha holds epoch 1");

    is_int(lease_observe(&b, err, sizeof err), LEASE_OK, "beta observes");
    ok(lease_wait_ms(&b, sim_now()) > 2000, "beta must wait more than the ttl");
    is_int(lease_take(&b, err, sizeof err), LEASE_BUSY, "beta cannot take it now");

    /* alpha renews; beta's observation restarts. */
    sim_ms += 1000;
    is_int(lease_renew(&a, err, sizeof err), LEASE_OK, "alpha renews");
    sim_ms += 1500;
    lease_observe(&b, err, sizeof err);
    ok(lease_wait_ms(&b, sim_now()) > 2000, "a renewal restarts the challenger's wait");

    /* alpha goes silent: its lease stops being valid before beta may take it. */
    uint64_t t_invalid = 0, t_take = 0;
    for (int i = 0; i < 400 && !t_take; i++) {
        sim_ms += 25;
        if (!t_invalid && !lease_valid(&a, sim_ms))
            t_invalid = sim_ms;
        lease_observe(&b, err, sizeof err);
        if (lease_wait_ms(&b, sim_now()) == 0)
            t_take = sim_ms;
    }
    ok(t_invalid && t_take && t_invalid + 2 * 200 <= t_take,
       "the silent holder's lease ends at least 2 margins before the challenger may take (%" PRIu64
       " < %" PRIu64 ")",
       t_invalid, t_take);
    is_int(lease_take(&b, err, sizeof err), LEASE_OK, "beta takes it");
    is_int(b.cur.epoch, 2, "epoch went up by one");
    is_int(lease_renew(&a, err, sizeof err), LEASE_LOST, "alpha's late renewal is refused");
    ok(!a.held, "alpha no longer holds it");

    is_int(lease_release(&b, err, sizeof err), LEASE_OK, "beta releases");
    lease_observe(&a, err, sizeof err);
    is_int(lease_wait_ms(&a, sim_now()), 0, "a released lease can be taken at once");
    is_int(lease_take(&a, err, sizeof err), LEASE_OK, "alpha takes it back");
    is_int(a.cur.epoch, 3, "epoch 3");

    /* Garbage under the key: nobody takes it without waiting. */
    ok(store_put(s1, "basic/lease", "junk", 4, STORE_COND_NONE, NULL, NULL, err, sizeof err) ==
           STORE_OK,
       "overwrite the lease with garbage");
    is_int(lease_renew(&a, err, sizeof err), LEASE_LOST, "the holder notices its lease is gone");
    is_int(lease_observe(&b, err, sizeof err), LEASE_OK, "garbage observes as held");
    ok(lease_wait_ms(&b, sim_now()) > 0, "garbage is not free to take");
    store_close(s1);
    store_close(s2);
}

/* --- the simulation ---------------------------------------------------------------------- */

struct node {
    struct lease l;
    struct store *s;
    int crashed;
    uint64_t paused_until;
    uint64_t next_renew;
};

static uint64_t store_epoch(struct store *s, const char *key)
{
    struct buf b = {0};
    struct lease_rec r;
    uint64_t e = 0;
    if (store_get(s, key, 0, 0, &b, NULL, err, sizeof err) == STORE_OK &&
        lease_parse(b.p, b.len, &r, err, sizeof err) == 0)
        e = r.epoch;
    buf_free(&b);
    return e;
}

static int simulate(uint64_t seed, int steps, int *takes)
{
    char key[64], fault[128];
    struct node n[3];
    struct store *plain = open_store(NULL);
    struct rng g;
    rng_seed(&g, seed);
    snprintf(key, sizeof key, "sim/%" PRIu64, seed);
    for (int i = 0; i < 3; i++) {
        snprintf(fault, sizeof fault, "seed=%" PRIu64 ",err=0.15,ackloss=0.1,throttle=0.05",
                 seed * 3 + (uint64_t)i);
        n[i].s = open_store(fault);
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        lease_init(&n[i].l, n[i].s, key, name, name, 1000, 100);
        n[i].l.now = sim_now;
        n[i].crashed = 0;
        n[i].paused_until = 0;
        n[i].next_renew = 0;
    }
    uint64_t last_epoch = 0;
    int violations = 0;
    for (int step = 0; step < steps; step++) {
        sim_ms += rng_below(&g, 120);
        int k = (int)rng_below(&g, 3);
        struct node *x = &n[k];
        /* Rare events: a crash (never comes back in this run), a long pause
         * (the process is stopped; its clock runs on). */
        uint64_t ev = rng_below(&g, 1000);
        if (ev < 3 && x->l.held)
            x->crashed = 1;
        else if (ev < 10)
            x->paused_until = sim_ms + rng_below(&g, 3000);
        if (!x->crashed && sim_ms >= x->paused_until) {
            if (x->l.held) {
                /* The daemon's lease thread renews whenever it is due, even
                 * after a pause past its deadline (the renewal must then be
                 * refused if someone took over); the holder stops using the
                 * lease once it is no longer valid. */
                if (sim_ms >= x->next_renew) {
                    lease_renew(&x->l, err, sizeof err);
                    x->next_renew = sim_ms + 300;
                }
                if (x->l.held && !lease_valid(&x->l, sim_now()))
                    x->l.held = 0;
            } else {
                if (lease_observe(&x->l, err, sizeof err) == LEASE_OK &&
                    lease_wait_ms(&x->l, sim_now()) == 0 &&
                    lease_take(&x->l, err, sizeof err) == LEASE_OK) {
                    (*takes)++;
                    x->next_renew = sim_ms + 300;
                }
            }
        }
        /* Invariants. */
        uint64_t now = sim_ms;
        int valid = 0;
        for (int i = 0; i < 3; i++)
            valid += !n[i].crashed && lease_valid(&n[i].l, now);
        /* A crashed holder counts too until its deadline: its resources may
         * still be up until the daemon notices, which it does by then. */
        for (int i = 0; i < 3; i++)
            valid += n[i].crashed && lease_valid(&n[i].l, now);
        if (valid > 1) {
            diag("seed %" PRIu64 " step %d: %d holders valid at once", seed, step, valid);
            violations++;
        }
        uint64_t e = store_epoch(plain, key);
        if (e < last_epoch) {
            diag("seed %" PRIu64 " step %d: epoch went down %" PRIu64 " -> %" PRIu64, seed, step,
                 last_epoch, e);
            violations++;
        }
        last_epoch = e;
        /* Everyone crashed: bring one back as a new process. */
        if (n[0].crashed && n[1].crashed && n[2].crashed) {
            int r = (int)rng_below(&g, 3);
            n[r].crashed = 0;
            n[r].l.held = 0;
        }
    }
    for (int i = 0; i < 3; i++)
        store_close(n[i].s);
    store_close(plain);
    return violations;
}

static void test_simulation(void)
{
    int trials = getenv("TRIALS") ? atoi(getenv("TRIALS")) : 40;
    int bad = 0, takes = 0;
    for (int t = 1; t <= trials; t++)
        bad += simulate((uint64_t)t, 600, &takes);
    is_int(bad, 0,
           "%d simulated runs with faults, crashes and pauses: never two valid holders, "
           "epochs never go down",
           trials);
    ok(takes > trials, "the lease changed hands %d times (the simulation does something)", takes);
}

/* A taker that crashes for real in the middle of its write: the store is
 * the dir backend, the write is cut by the fault layer's crash point; the
 * next contender must still see either the old or the new record. */
static void test_crash_points(void)
{
    int ok_all = 1;
    for (int n = 1; n <= 6; n++) {
        char fault[64];
        snprintf(fault, sizeof fault, "crash_after_puts=%d", n);
        struct store *f = open_store(fault), *p = open_store(NULL);
        struct lease a, b;
        char key[32];
        snprintf(key, sizeof key, "crash/%d", n);
        lease_init(&a, f, key, "a", "a", 1000, 100);
        lease_init(&b, p, key, "b", "b", 1000, 100);
        a.now = b.now = sim_now;
        lease_observe(&a, err, sizeof err);
        lease_take(&a, err, sizeof err);
        for (int i = 0; i < 8; i++) {
            sim_ms += 200;
            if (lease_valid(&a, sim_now()))
                lease_renew(&a, err, sizeof err);
        }
        /* a's store is crashed now; b must get the lease, after a's deadline. */
        uint64_t took = 0;
        for (int i = 0; i < 200 && !took; i++) {
            sim_ms += 50;
            if (lease_observe(&b, err, sizeof err) == LEASE_OK &&
                lease_take(&b, err, sizeof err) == LEASE_OK)
                took = sim_ms;
        }
        if (!took || lease_valid(&a, took))
            ok_all = 0;
        store_close(f);
        store_close(p);
    }
    ok(ok_all, "a holder whose store crashes after 1..6 writes loses the lease, and only after "
               "its deadline");
}

int main(void)
{
    plan_no_plan();
    log_set_level(LOGL_ERROR); /* the retries of the injected faults are expected */
    rng_seed(&clock_rng, 99);
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp failed");
    test_codec();
    test_basic();
    test_crash_points();
    test_simulation();
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
