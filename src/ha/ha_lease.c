/* ha_lease.c - the daemon's lease thread: every store request for the
 * failover lease happens here, so a slow store never delays a heartbeat.
 *
 * The main thread sets lease_mode (what the state machine wants), and may
 * ask for a release or a confirmation; this thread publishes what it knows
 * in d->lv.  Modes:
 *   watch  read the lease every lease_poll (a standby node knows who holds
 *          it and, from its own clock, for how long it has not changed)
 *   take   watch, and take it as soon as lease_wait_ms() allows
 *   hold   renew every lease_time / 3 (sooner after a failure); a renewal
 *          refused means someone else has it: held drops at once
 *   idle   nothing (the state machine does not ask for it today; a failed
 *          node holds, so that nobody starts on top of its resources)
 * The main thread treats the lease as valid only while held and
 * now < deadline - margin, on its own reading of the monotonic clock. */
#include "ha_daemon.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t renewals_ok, renewals_failed, takes; /* this thread's */

static void publish(struct ha_daemon *d, const char *err)
{
    struct lease *l = &d->lease;
    pthread_mutex_lock(&d->mu);
    d->lv.held = l->held;
    d->lv.deadline_ms = l->deadline_ms;
    d->lv.epoch = l->held ? l->cur.epoch : 0;
    d->lv.seen = l->seen;
    d->lv.exists = l->exists;
    if (l->seen)
        d->lv.cur = l->cur;
    uint64_t w = lease_wait_ms(l, clock_mono_ms());
    d->lv.wait_ms = w;
    d->lv.renewals_ok = renewals_ok;
    d->lv.renewals_failed = renewals_failed;
    d->lv.takes = takes;
    if (err)
        snprintf(d->lv.last_err, sizeof d->lv.last_err, "%s", err);
    pthread_mutex_unlock(&d->mu);
}

static void wait_for(struct ha_daemon *d, uint64_t ms)
{
    struct timespec ts;
    clock_deadline(CLOCK_MONOTONIC, ms, &ts);
    pthread_mutex_lock(&d->mu);
    if (!d->quit && !d->release_req && d->confirm_req == d->confirm_done)
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    pthread_mutex_unlock(&d->mu);
}

void *ha_lease_main(void *arg)
{
    struct ha_daemon *d = arg;
    struct lease *l = &d->lease;
    uint64_t next_poll = 0, next_renew = 0;
    uint64_t renew_every = d->conf.lease_time_ms / 3;
    char err[STORE_ERRMSG_MAX];

    for (;;) {
        pthread_mutex_lock(&d->mu);
        int quit = d->quit;
        enum ha_lease_mode mode = d->lease_mode;
        int release = d->release_req;
        unsigned confirm = d->confirm_req;
        int want_confirm = confirm != d->confirm_done;
        d->release_req = 0;
        pthread_mutex_unlock(&d->mu);
        err[0] = '\0';
        /* A release asked for just before quitting is still done. */
        if (release && l->held) {
            enum lease_status st = lease_release(l, err, sizeof err);
            if (st == LEASE_OK)
                log_warn("ha: lease epoch %" PRIu64 " released", l->cur.epoch);
            else
                log_warn("ha: releasing the lease: %s (it will expire instead)", err);
            next_poll = 0;
            publish(d, NULL);
        }
        if (quit)
            break;
        uint64_t now = clock_mono_ms();
        if (want_confirm) {
            int ok = 0;
            if (mode == LM_HOLD && l->held) {
                enum lease_status st = lease_renew(l, err, sizeof err);
                ok = st == LEASE_OK && lease_valid(l, clock_mono_ms());
                next_renew = clock_mono_ms() + renew_every;
                if (st == LEASE_LOST)
                    log_error("ha: lease lost at confirmation: %s", err);
            } else
                snprintf(err, sizeof err, "the lease is not held");
            pthread_mutex_lock(&d->mu);
            d->confirm_ok = ok;
            snprintf(d->confirm_err, sizeof d->confirm_err, "%s", ok ? "" : err);
            d->confirm_done = confirm;
            pthread_cond_broadcast(&d->cv);
            pthread_mutex_unlock(&d->mu);
        }

        uint64_t sleep_ms = 50;
        switch (mode) {
        case LM_IDLE:
            sleep_ms = 200;
            break;
        case LM_WATCH:
            /* A lease we stopped using (it ran out before a renewal got
             * through) is let go; it expires in the store by itself. */
            if (l->held && !lease_valid(l, now))
                l->held = 0;
            goto watch;
        case LM_TAKE:
        case LM_HOLD:
            /* Taking back our own lease that ran out unseen by others is a
             * renewal: If-Match on our ETag proves nobody took it since. */
            if (l->held) {
                if (now >= next_renew) {
                    enum lease_status st = lease_renew(l, err, sizeof err);
                    if (st == LEASE_OK) {
                        renewals_ok++;
                        next_renew = now + renew_every;
                    } else {
                        renewals_failed++;
                        next_renew = now + renew_every / 4;
                        if (st == LEASE_LOST)
                            log_error("ha: %s", err);
                        else
                            log_warn("ha: renewing the lease: %s", err);
                    }
                }
                uint64_t t = clock_mono_ms();
                sleep_ms = next_renew > t ? next_renew - t : 0;
                break;
            }
            /* not held (lost, or not yet taken): watch */
        watch:
            if (now >= next_poll) {
                enum lease_status st = lease_observe(l, err, sizeof err);
                if (st == LEASE_STORE)
                    log_info("ha: reading the lease: %s", err);
                next_poll = now + d->conf.lease_poll_ms;
            }
            if (mode == LM_TAKE && !l->held && l->seen && lease_wait_ms(l, clock_mono_ms()) == 0) {
                enum lease_status st = lease_take(l, err, sizeof err);
                if (st == LEASE_OK) {
                    takes++;
                    log_warn("ha: lease taken, epoch %" PRIu64, l->cur.epoch);
                    next_renew = clock_mono_ms() + renew_every;
                } else {
                    log_info("ha: taking the lease: %s", err);
                    next_poll = 0;
                }
            }
            {
                uint64_t t = clock_mono_ms();
                sleep_ms = next_poll > t ? next_poll - t : 0;
                if (mode == LM_TAKE && l->seen && !l->held) {
                    uint64_t w = lease_wait_ms(l, t);
                    if (w < sleep_ms)
                        sleep_ms = w;
                }
            }
            break;
        }
        publish(d, err[0] ? err : NULL);
        ha_wake(d);
        if (sleep_ms > 0)
            wait_for(d, sleep_ms > 200 ? 200 : sleep_ms);
    }
    return NULL;
}

int ha_lease_confirm(void *arg, char *err, size_t errlen)
{
    struct ha_daemon *d = arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&d->mu);
    unsigned want = ++d->confirm_req;
    pthread_cond_broadcast(&d->cv);
    int rc = 0;
    while (d->confirm_done != want && !d->quit && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    int ok = d->confirm_done == want && d->confirm_ok;
    if (!ok)
        set_err(err, errlen, "lease re-check before the cloud call failed: %s",
                d->confirm_done == want ? d->confirm_err : "no answer within 5 s");
    pthread_mutex_unlock(&d->mu);
    return ok ? 0 : -1;
}
