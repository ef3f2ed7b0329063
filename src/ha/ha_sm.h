/* ha_sm.h - the failover state machine, as pure logic: it reads what the
 * daemon saw (peers, lease, job results, commands) and says what to do
 * (lease mode, start or stop the resources, release the lease).  No I/O, no
 * clock of its own, so tests/unit/test_ha_sm.c drives it step by step.
 *
 * States (as shown by `buoy ha status`):
 *
 *   initialising --(initdead over, or every peer heard)--> standby
 *   standby   --(should_claim)--> acquiring
 *   acquiring --(a better candidate or an active peer appears, lease not yet held)--> standby
 *   acquiring --(lease held: start job issued; start ok)--> active
 *   acquiring --(start failed | lease lost while starting)--> releasing
 *   active    --(lease not renewed in time | standby command | check asks to
 *                fail over | a peer asks to take over | auto_failback to the
 *                preferred node | an active peer with a higher epoch)--> releasing
 *   releasing --(stop ok)--> standby          (releasing the lease if still held)
 *   releasing --(stop failed)--> failed     (releasing the lease when no
 *                resource can still run, rule S6)
 *   failed    --(clear command)--> standby    (and nothing else leaves it)
 *
 * Rules (checked by ha_sm_assert() after every step):
 *   S1  resources are started only while the lease is valid: a start job is
 *       issued only in acquiring with lease_valid, and active requires
 *       lease_valid at every step (else the same step moves to releasing);
 *       the worker cancels a start command still running when the lease
 *       stops being valid (ha_work.c), so a slow start never outlives it.
 *   S2  in initialising and standby no resource is up or starting.
 *   S3  every start is followed by a stop before standby is reached; a stop
 *       that fails leads to failed, which only the clear command leaves.
 *   S4  the lease is released only when no resource may run: after a stop
 *       succeeded, after a failed stop that left nothing running (S6), when
 *       nothing was started, or on the operator's clear.
 *   S5  a node with manual standby, a hold (flap damping, failover hold) or
 *       the failed state never claims.
 *   S6  a failed node holds the lease only while a resource of it may still
 *       run (a resource that was running, or whose start was cut short, did
 *       not stop): then nobody may start on top of it.  When every resource
 *       is stopped or never started (its start failed by the agent's own
 *       exit code), the lease is released at once, so a healthy peer takes
 *       over; the node stays failed (it never claims) until clear.
 *
 * should_claim: no live peer is active or releasing, and this node ranks
 * first among itself and the live peers initialising, in standby or acquiring that are not
 * in manual standby or holding back.  Rank: a takeover request, then being
 * the preferred node, then the smaller name.  Heartbeats only decide who
 * tries; the lease decides who wins (two nodes cut off from each other both
 * try, and only one gets the lease). */
#ifndef BUOY_HA_SM_H
#define BUOY_HA_SM_H

#include "ha_conf.h"

#include <stdint.h>

enum ha_state { HA_INIT = 0, HA_STANDBY, HA_ACQUIRING, HA_ACTIVE, HA_RELEASING, HA_FAILED };
#define HA_NSTATES 6

enum ha_lease_mode { LM_IDLE = 0, LM_WATCH, LM_TAKE, LM_HOLD };

enum ha_cmd { HA_CMD_NONE = 0, HA_CMD_STANDBY, HA_CMD_TAKEOVER, HA_CMD_CLEAR, HA_CMD_ONLINE };

enum ha_job { HA_JOB_NONE = 0, HA_JOB_START, HA_JOB_STOP };

struct ha_sm_peer {
    const char *name;
    int alive; /* heard within deadtime */
    int heard; /* ever heard */
    uint8_t state, flags;
    uint64_t epoch;
};

struct ha_sm_in {
    uint64_t now;
    int npeers;
    const struct ha_sm_peer *peers;
    int lease_valid;      /* we hold the lease and now < deadline - margin */
    uint64_t lease_epoch; /* ours when valid */
    enum ha_job job_done; /* a job finished this step (once) */
    int job_ok;
    int job_left_up; /* a stop failed and a resource may still run (S6) */
    int check_failover; /* a check gave up on local restarts */
    enum ha_cmd cmd;
};

struct ha_sm_out {
    enum ha_lease_mode lease;
    enum ha_job job;   /* start this job now (once) */
    int release_lease; /* release now (once; after a good stop) */
};

struct ha_sm {
    enum ha_state state;
    char node[HA_NAME_MAX];
    const char *preferred;
    int auto_failback;
    uint64_t initdead_ms, flap_window_ms, flap_hold_ms, failover_hold_ms;
    int flap_max;

    uint64_t started_ms, since_ms;
    int manual_standby, takeover_req;
    uint64_t hold_until;
    int starting;     /* acquiring: the start job is out */
    int resources_up; /* a start was issued and no stop has finished */
    int stop_issued;
    int release_after_stop;
    uint64_t active_at[16]; /* when this node became active, a ring */
    uint32_t claims;
    int last_lease_valid;
    enum ha_lease_mode last_lease_mode; /* what the last step asked for (S6) */
    int last_released;                  /* the last step released the lease (S4) */
    char reason[160]; /* why the last transition happened */
};

void ha_sm_init(struct ha_sm *sm, const struct ha_conf *c, uint64_t now);
void ha_sm_step(struct ha_sm *sm, const struct ha_sm_in *in, struct ha_sm_out *out);
/* The flags this node puts in its heartbeats. */
uint8_t ha_sm_flags(const struct ha_sm *sm, uint64_t now);
/* Checks rules S1-S6 on the current state; returns NULL or what is broken. */
const char *ha_sm_check(const struct ha_sm *sm);
/* ha_sm_check, and aborts with a log line when a rule is broken. */
void ha_sm_assert(const struct ha_sm *sm);
const char *ha_state_name(int s);

#endif
