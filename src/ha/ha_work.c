/* ha_work.c - the daemon's worker thread: resource jobs and checks, one at
 * a time, so a slow script or cloud call never delays a heartbeat.
 *
 *   start    every resource in file order; before each one the lease must
 *            still be valid (rule S1 of ha_sm.h), a command still running
 *            when it stops being valid is cancelled (its process group
 *            stopped, run_set_abort), and an ec2-eip start re-confirms it
 *            with a fresh renewal right before its call
 *   stop     every resource in reverse order; all are tried, and the job
 *            fails if any stop failed (the state machine then goes failed);
 *            with the result goes whether any resource may still run
 *            (res.may_run), which decides whether the failed node keeps
 *            the lease (rule S6 of ha_sm.h)
 *   check    run check job_arg once
 *   restart  stop then start resource job_arg (-1: all of them) */
#include "ha_daemon.h"
#include "run.h"
#include "util/clock.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

static int lease_still_valid(struct ha_daemon *d)
{
    pthread_mutex_lock(&d->mu);
    int ok = d->lv.held && clock_mono_ms() + d->conf.lease_margin_ms < d->lv.deadline_ms;
    pthread_mutex_unlock(&d->mu);
    return ok;
}

/* Only this thread writes a resource, and status (the main thread) reads it
 * under d->mu: so the work is done on a copy and the result put back under
 * the lock, never half-written for a reader. */
static int res_op(struct ha_daemon *d, int i, int start, const struct res_ctx *ctx, char *err,
                  size_t errlen)
{
    struct res r = d->res[i];
    int rc = start ? res_start(&r, ctx, err, errlen) : res_stop(&r, ctx, err, errlen);
    pthread_mutex_lock(&d->mu);
    d->res[i] = r;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* A check runs on a copy too; what it changes (runs, failures, last) is put
 * back under the lock, the rest being the main thread's. */
static int check_op(struct ha_daemon *d, int a, char *why, size_t whylen)
{
    pthread_mutex_lock(&d->mu);
    struct check c = d->checks[a];
    pthread_mutex_unlock(&d->mu);
    int rc = check_run(&c, why, whylen);
    pthread_mutex_lock(&d->mu);
    d->checks[a].runs = c.runs;
    d->checks[a].failures = c.failures;
    memcpy(d->checks[a].last, c.last, sizeof c.last);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* run_cmd's abort predicate during starts: the lease lapsed (S1). */
static int lease_lapsed(void *arg, char *why, size_t whylen)
{
    if (lease_still_valid(arg))
        return 0;
    snprintf(why, whylen, "the lease is no longer valid");
    return 1;
}

static int do_start(struct ha_daemon *d, int only)
{
    struct res_ctx ctx = {ha_lease_confirm, d, d->buoy_path};
    char err[512];
    int rc = 0;
    /* a start that runs past the lease's validity is cancelled (its process
     * group stopped), so no resource keeps starting on a node that may no
     * longer be the one that should run it */
    run_set_abort(lease_lapsed, d);
    for (int i = 0; i < d->conf.nres; i++) {
        if (only >= 0 && i != only)
            continue;
        if (!lease_still_valid(d)) {
            log_error("ha: not starting %s: the lease is no longer valid", d->res[i].item->name);
            rc = -1;
            break;
        }
        uint64_t t0 = clock_mono_ms();
        if (res_op(d, i, 1, &ctx, err, sizeof err) < 0) {
            log_error("ha: resource %s (%s) did not start: %s", d->res[i].item->name,
                      d->res[i].item->kind, err);
            rc = -1;
            break;
        }
        log_warn("ha: resource %s (%s) %s in %llums", d->res[i].item->name, d->res[i].item->kind,
                 d->res[i].last, (unsigned long long)(clock_mono_ms() - t0));
    }
    run_set_abort(NULL, NULL);
    return rc;
}

static int do_stop(struct ha_daemon *d, int only)
{
    struct res_ctx ctx = {NULL, d, d->buoy_path};
    char err[512];
    int bad = 0;
    for (int i = d->conf.nres - 1; i >= 0; i--) {
        if (only >= 0 && i != only)
            continue;
        if (res_op(d, i, 0, &ctx, err, sizeof err) < 0) {
            log_error("ha: resource %s (%s) did not stop: %s", d->res[i].item->name,
                      d->res[i].item->kind, err);
            bad = 1;
        } else
            log_warn("ha: resource %s (%s) %s", d->res[i].item->name, d->res[i].item->kind,
                     d->res[i].last);
    }
    return bad ? -1 : 0;
}

void *ha_work_main(void *arg)
{
    struct ha_daemon *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->quit && (d->job == WJ_NONE || d->job_running))
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->quit && d->job == WJ_NONE) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        enum ha_work_job job = d->job;
        int a = d->job_arg;
        d->job_running = 1;
        pthread_mutex_unlock(&d->mu);

        int ok = 0;
        char why[256];
        switch (job) {
        case WJ_START:
            ok = do_start(d, -1) == 0;
            break;
        case WJ_STOP:
            ok = do_stop(d, -1) == 0;
            break;
        case WJ_CHECK:
            ok = check_op(d, a, why, sizeof why) == 0;
            break;
        case WJ_RESTART:
            ok = do_stop(d, a) == 0 && do_start(d, a) == 0;
            break;
        case WJ_NONE:
            break;
        }
        pthread_mutex_lock(&d->mu);
        d->job_result = job;
        d->job_result_arg = a;
        d->job_result_ok = ok;
        d->job_result_up = 0;
        for (int i = 0; i < d->conf.nres; i++)
            d->job_result_up |= d->res[i].may_run;
        d->job = WJ_NONE;
        d->job_running = 0;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        ha_wake(d);
    }
    return NULL;
}
