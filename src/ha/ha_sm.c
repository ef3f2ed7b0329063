/* ha_sm.c - the failover state machine (states, rules S1-S6: ha_sm.h). */
#include "ha_sm.h"
#include "hb.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NRING (sizeof((struct ha_sm *)0)->active_at / sizeof(uint64_t))

const char *ha_state_name(int s)
{
    static const char *const names[HA_NSTATES] = {"initialising", "standby",   "acquiring",
                                                  "active",       "releasing", "failed"};
    return s >= 0 && s < HA_NSTATES ? names[s] : "?";
}

void ha_sm_init(struct ha_sm *sm, const struct ha_conf *c, uint64_t now)
{
    memset(sm, 0, sizeof *sm);
    snprintf(sm->node, sizeof sm->node, "%s", c->node);
    sm->preferred = c->preferred;
    sm->auto_failback = c->auto_failback;
    sm->initdead_ms = c->initdead_ms;
    sm->flap_window_ms = c->flap_window_ms;
    sm->flap_hold_ms = c->flap_hold_ms;
    sm->failover_hold_ms = c->failover_hold_ms;
    sm->flap_max = c->flap_max;
    sm->started_ms = sm->since_ms = now;
    sm->state = HA_INIT;
    snprintf(sm->reason, sizeof sm->reason, "started");
}

__attribute__((format(printf, 4, 5))) static void go(struct ha_sm *sm, enum ha_state to,
                                                     uint64_t now, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sm->reason, sizeof sm->reason, fmt, ap);
    va_end(ap);
    log_msg(to == HA_FAILED ? LOGL_ERROR : LOGL_WARN, "ha: %s -> %s: %s", ha_state_name(sm->state),
            ha_state_name(to), sm->reason);
    sm->state = to;
    sm->since_ms = now;
}

static int held_back(const struct ha_sm *sm, uint64_t now)
{
    return now < sm->hold_until;
}

uint8_t ha_sm_flags(const struct ha_sm *sm, uint64_t now)
{
    uint8_t f = 0;
    if (sm->manual_standby)
        f |= HB_F_STANDBY;
    if (sm->takeover_req)
        f |= HB_F_TAKEOVER;
    if (held_back(sm, now))
        f |= HB_F_HOLD;
    return f;
}

static int rank(const struct ha_sm *sm, const char *name, uint8_t flags)
{
    int r = 0;
    if (flags & HB_F_TAKEOVER)
        r += 4;
    if (sm->preferred && strcmp(sm->preferred, name) == 0)
        r += 2;
    return r;
}

/* Beats: a outranks b (rank, then the smaller name). */
static int beats(const struct ha_sm *sm, const char *a, uint8_t fa, const char *b, uint8_t fb)
{
    int ra = rank(sm, a, fa), rb = rank(sm, b, fb);
    if (ra != rb)
        return ra > rb;
    return strcmp(a, b) < 0;
}

static int flapping(const struct ha_sm *sm, uint64_t now)
{
    int n = 0;
    for (size_t i = 0; i < NRING; i++)
        if (sm->active_at[i] && now - sm->active_at[i] < sm->flap_window_ms)
            n++;
    return n >= sm->flap_max;
}

/* Why this node should not claim now, or NULL when it should. */
static const char *why_not_claim(struct ha_sm *sm, const struct ha_sm_in *in)
{
    static char why[96];
    if (sm->manual_standby)
        return "manual standby";
    if (held_back(sm, in->now))
        return "holding back";
    uint8_t myflags = ha_sm_flags(sm, in->now);
    for (int i = 0; i < in->npeers; i++) {
        const struct ha_sm_peer *p = &in->peers[i];
        if (!p->alive)
            continue;
        if (p->state == HA_ACTIVE || p->state == HA_RELEASING) {
            snprintf(why, sizeof why, "%s is %s", p->name, ha_state_name(p->state));
            return why;
        }
        /* A peer still initialising that outranks us is about to be a candidate. */
        if ((p->state == HA_INIT || p->state == HA_STANDBY || p->state == HA_ACQUIRING) &&
            !(p->flags & (HB_F_STANDBY | HB_F_HOLD)) &&
            beats(sm, p->name, p->flags, sm->node, myflags)) {
            snprintf(why, sizeof why, "%s ranks first", p->name);
            return why;
        }
    }
    return NULL;
}

static void start_release(struct ha_sm *sm, uint64_t now, int release, const char *why)
{
    sm->release_after_stop = release;
    sm->stop_issued = 0;
    go(sm, HA_RELEASING, now, "%s", why);
}

void ha_sm_step(struct ha_sm *sm, const struct ha_sm_in *in, struct ha_sm_out *out)
{
    uint64_t now = in->now;
    memset(out, 0, sizeof *out);
    sm->last_lease_valid = in->lease_valid;

    /* Commands first; each is valid in some states only. */
    switch (in->cmd) {
    case HA_CMD_STANDBY:
        sm->manual_standby = 1;
        sm->takeover_req = 0;
        break;
    case HA_CMD_TAKEOVER:
        sm->manual_standby = 0;
        if (sm->state != HA_ACTIVE && sm->state != HA_FAILED)
            sm->takeover_req = 1;
        sm->hold_until = 0;
        break;
    case HA_CMD_ONLINE:
        sm->manual_standby = 0;
        break;
    case HA_CMD_CLEAR:
        if (sm->state == HA_FAILED) {
            sm->resources_up = 0;
            out->release_lease = in->lease_valid;
            go(sm, HA_STANDBY, now, "cleared by the operator");
        }
        break;
    case HA_CMD_NONE:
        break;
    }
    /* A finished job. */
    if (in->job_done == HA_JOB_STOP) {
        if (in->job_ok) {
            sm->resources_up = 0;
            if (sm->state == HA_RELEASING) {
                out->release_lease = sm->release_after_stop && in->lease_valid;
                go(sm, HA_STANDBY, now, "resources stopped");
            }
        } else if (in->job_left_up) {
            /* S6: something may still run; nobody must start on top of it */
            sm->resources_up = 1;
            go(sm, HA_FAILED, now,
               "a resource that may be running did not stop: keeping the lease so that no "
               "other node starts it; stop it by hand, then buoy ha clear");
        } else {
            /* S6: nothing can run (every resource stopped or never started):
             * a healthy peer may take over at once */
            sm->resources_up = 0;
            out->release_lease = in->lease_valid;
            go(sm, HA_FAILED, now,
               "a stop failed, but nothing can be running (every resource stopped or had not "
               "started): lease released for a peer; fix the resource, then buoy ha clear");
        }
    }

    switch (sm->state) {
    case HA_INIT: {
        int all = 1;
        for (int i = 0; i < in->npeers; i++)
            all &= in->peers[i].heard;
        if (all)
            go(sm, HA_STANDBY, now, "every peer heard");
        else if (now - sm->started_ms >= sm->initdead_ms)
            go(sm, HA_STANDBY, now, "initdead over");
        break;
    }
    case HA_STANDBY: {
        const char *why = why_not_claim(sm, in);
        if (!why && flapping(sm, now)) {
            sm->hold_until = now + sm->flap_hold_ms;
            log_warn("ha: became active %d times within %llums: holding back for %llums",
                     sm->flap_max, (unsigned long long)sm->flap_window_ms,
                     (unsigned long long)sm->flap_hold_ms);
            why = "flapping";
        }
        if (!why) {
            sm->starting = 0;
            go(sm, HA_ACQUIRING, now, "no active node and this one ranks first");
        }
        break;
    }
    case HA_ACQUIRING:
        if (!sm->starting) {
            const char *why = why_not_claim(sm, in);
            if (why) {
                /* Nothing was started: a lease taken meanwhile is handed back. */
                out->release_lease = in->lease_valid;
                go(sm, HA_STANDBY, now, "%s", why);
            } else if (in->lease_valid) {
                sm->starting = 1;
                sm->resources_up = 1;
                out->job = HA_JOB_START;
            }
        } else if (in->job_done == HA_JOB_START) {
            sm->starting = 0;
            if (in->job_ok && in->lease_valid && sm->manual_standby) {
                start_release(sm, now, 1, "standby requested while starting");
            } else if (in->job_ok && in->lease_valid) {
                sm->takeover_req = 0;
                sm->claims++;
                sm->active_at[sm->claims % NRING] = now;
                go(sm, HA_ACTIVE, now, "lease epoch %llu held, resources started",
                   (unsigned long long)in->lease_epoch);
            } else if (!in->lease_valid) {
                start_release(sm, now, 0, "lease lost while starting");
            } else {
                sm->hold_until = now + sm->failover_hold_ms;
                start_release(sm, now, 1, "a resource did not start");
            }
        } else if (!in->lease_valid) {
            /* The start job is still out; its next step sees the lease gone
             * and fails, then we stop whatever did start. */
        }
        break;
    case HA_ACTIVE: {
        if (!in->lease_valid) {
            start_release(sm, now, 0, "lease not renewed in time: stepping down");
            break;
        }
        if (sm->manual_standby) {
            start_release(sm, now, 1, "standby requested");
            break;
        }
        if (in->check_failover) {
            sm->hold_until = now + sm->failover_hold_ms;
            start_release(sm, now, 1, "a check failed after its local restarts: failing over");
            break;
        }
        for (int i = 0; i < in->npeers; i++) {
            const struct ha_sm_peer *p = &in->peers[i];
            if (!p->alive)
                continue;
            if ((p->flags & HB_F_TAKEOVER) && !(p->flags & HB_F_STANDBY) &&
                p->state == HA_STANDBY) {
                char why[96];
                snprintf(why, sizeof why, "%s asked to take over", p->name);
                start_release(sm, now, 1, why);
                return;
            }
            if (sm->auto_failback && sm->preferred && strcmp(sm->preferred, sm->node) != 0 &&
                strcmp(sm->preferred, p->name) == 0 && p->state == HA_STANDBY &&
                !(p->flags & (HB_F_STANDBY | HB_F_HOLD))) {
                char why[96];
                snprintf(why, sizeof why, "auto_failback to the preferred node %s", p->name);
                start_release(sm, now, 1, why);
                return;
            }
            if (p->state == HA_ACTIVE && p->epoch > in->lease_epoch) {
                char why[96];
                snprintf(why, sizeof why, "%s is active with a newer lease epoch", p->name);
                start_release(sm, now, 0, why);
                return;
            }
        }
        break;
    }
    case HA_RELEASING:
        if (!sm->stop_issued && !sm->starting) {
            sm->stop_issued = 1;
            out->job = HA_JOB_STOP;
        } else if (sm->starting && in->job_done == HA_JOB_START) {
            sm->starting = 0;
        }
        break;
    case HA_FAILED:
        break;
    }

    /* The lease mode follows the state. */
    switch (sm->state) {
    case HA_INIT:
    case HA_STANDBY:
        out->lease = LM_WATCH;
        break;
    case HA_ACQUIRING:
        out->lease = in->lease_valid || sm->starting ? LM_HOLD : LM_TAKE;
        break;
    case HA_ACTIVE:
        out->lease = LM_HOLD;
        break;
    case HA_RELEASING:
        /* Keep renewing while stopping, so nobody starts before we are down. */
        out->lease = in->lease_valid ? LM_HOLD : LM_WATCH;
        break;
    case HA_FAILED:
        /* S6: while a resource may still be up, keep the lease (if we have
         * it) so that nobody starts on top of it; else let a peer have it.
         * The operator clears the state. */
        out->lease = sm->resources_up ? LM_HOLD : LM_WATCH; /* HOLD only watches if not held */
        break;
    }
    if (out->release_lease)
        out->lease = LM_WATCH;
    sm->last_lease_mode = out->lease;
    sm->last_released = out->release_lease;
}

const char *ha_sm_check(const struct ha_sm *sm)
{
    if ((unsigned)sm->state >= HA_NSTATES)
        return "state out of range";
    if (sm->state == HA_ACTIVE && !sm->last_lease_valid)
        return "S1: active without a valid lease";
    if (sm->state == HA_ACTIVE && !sm->resources_up)
        return "active without resources";
    if ((sm->state == HA_INIT || sm->state == HA_STANDBY) && (sm->resources_up || sm->starting))
        return "S2: resources up or starting in standby";
    if (sm->starting && sm->state != HA_ACQUIRING && sm->state != HA_RELEASING)
        return "starting outside acquiring";
    if (sm->state == HA_ACQUIRING && !sm->starting &&
        (sm->manual_standby || sm->state == HA_FAILED))
        return "S5: claiming in manual standby";
    if (sm->state == HA_ACTIVE && sm->manual_standby)
        return "S5: active in manual standby";
    if (sm->last_released && (sm->resources_up || sm->starting))
        return "S4: lease released while a resource may be up";
    if (sm->state == HA_FAILED && !sm->resources_up && sm->last_lease_mode == LM_HOLD)
        return "S6: failed with no resource up, yet holding the lease";
    if (sm->state == HA_FAILED && sm->resources_up && sm->last_lease_mode != LM_HOLD)
        return "S6: failed with a resource that may be up, yet letting the lease go";
    return NULL;
}

void ha_sm_assert(const struct ha_sm *sm)
{
    const char *bad = ha_sm_check(sm);
    if (bad) {
        log_error("ha: state machine rule broken in state %s: %s (last: %s)",
                  ha_state_name(sm->state), bad, sm->reason);
        abort();
    }
}
