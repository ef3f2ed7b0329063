/* store_retry.c - retries with exponential backoff and full jitter.
 *
 * Retried: STORE_ETRANSIENT (5xx, timeouts, connection errors),
 * STORE_ETHROTTLED (503 SlowDown, 429) and STORE_ECONFLICT (409
 * ConditionalRequestConflict).  Never retried: everything else, in
 * particular 4xx answers such as not found, precondition failed and auth.
 *
 * Attempt k (k = 1 for the first retry) waits a uniform random time in
 * [0, min(cap, base * 2^k)].  Each attempt is a fresh child request sent to
 * the layer below; the caller's request completes with the last outcome, its
 * message saying how many attempts were made.
 *
 * A retried PUT with If-None-Match whose first attempt succeeded but whose
 * answer was lost comes back as "precondition failed": callers that need to
 * tell the two apart read the object back (the lease code does). */
#include "store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct retry_store {
    struct store base;
    int retries, base_ms, cap_ms;
    struct rng rng;
    struct store_req *waiting; /* parents whose next attempt is due at due_ms */
    int inflight;              /* parents not yet completed */
};

#define RETRY_OF(s) ((struct retry_store *)(s))

static int retryable(enum store_err e)
{
    return e == STORE_ETRANSIENT || e == STORE_ETHROTTLED || e == STORE_ECONFLICT;
}

static void child_done(struct store_req *c);

static void send(struct retry_store *rs, struct store_req *r)
{
    struct store_req *c = store_req_child(r, child_done, rs);
    rs->base.next->ops->submit(rs->base.next, c);
}

static void child_done(struct store_req *c)
{
    struct retry_store *rs = c->arg;
    struct store_req *r = c->parent;
    int tries = r->attempts + c->attempts;

    if (retryable(c->err) && tries <= rs->retries) {
        uint64_t window = (uint64_t)rs->base_ms << (tries < 20 ? tries : 20);
        if (window > (uint64_t)rs->cap_ms)
            window = (uint64_t)rs->cap_ms;
        uint64_t delay = rng_below(&rs->rng, window + 1);
        log_debug("%s (attempt %d); retrying in %llu ms", c->errmsg, tries,
                  (unsigned long long)delay);
        r->attempts = tries;
        r->due_ms = clock_mono_ms() + delay;
        r->qnext = rs->waiting;
        rs->waiting = r;
        rs->base.stats->retries++;
        store_req_reset(c);
        free(c);
        return;
    }
    store_req_adopt(r, c);
    if (r->err && retryable(r->err) && r->attempts > 1) {
        size_t n = strlen(r->errmsg);
        snprintf(r->errmsg + n, sizeof r->errmsg - n, " (gave up after %d attempts)", r->attempts);
    }
    rs->inflight--;
    store_complete(&rs->base, r);
}

static void retry_submit(struct store *s, struct store_req *r)
{
    struct retry_store *rs = RETRY_OF(s);
    rs->inflight++;
    send(rs, r);
}

/* Sends every waiting request whose time has come; returns ms until the next. */
static int fire_due(struct retry_store *rs)
{
    uint64_t now = clock_mono_ms();
    uint64_t next = UINT64_MAX;
    struct store_req **pp = &rs->waiting;
    struct store_req *due = NULL;

    while (*pp) {
        struct store_req *r = *pp;
        if (r->due_ms <= now) {
            *pp = r->qnext;
            r->qnext = due;
            due = r;
        } else {
            if (r->due_ms < next)
                next = r->due_ms;
            pp = &r->qnext;
        }
    }
    while (due) {
        struct store_req *r = due;
        due = r->qnext;
        send(rs, r);
    }
    return next == UINT64_MAX ? -1 : (int)(next - now);
}

static int retry_run(struct store *s, int timeout_ms)
{
    struct retry_store *rs = RETRY_OF(s);
    uint64_t end = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        int until = fire_due(rs);
        uint64_t now = clock_mono_ms();
        int left = now >= end ? 0 : (int)(end - now);
        int wait = until >= 0 && until < left ? until : left;
        int below = s->next->ops->run(s->next, wait);
        if (below == 0 && rs->waiting && wait > 0 && until > 0) {
            /* Nothing on the wire: sleep until the next retry is due. */
            clock_sleep_ms((uint64_t)wait);
        }
        fire_due(rs);
        if (rs->inflight == 0 || clock_mono_ms() >= end)
            break;
    }
    return rs->inflight;
}

static void retry_close(struct store *s)
{
    store_drain(s);
    s->next->ops->close(s->next);
    free(s);
}

static const struct store_ops retry_ops = {
    .name = "retry", .submit = retry_submit, .run = retry_run, .close = retry_close,
};

struct store *store_retry_open(struct store *next, const struct store_opts *o)
{
    struct retry_store *rs = xcalloc(1, sizeof *rs);
    rs->base.ops = &retry_ops;
    rs->base.next = next;
    rs->base.stats = next->stats;
    rs->base.url = next->url;
    rs->retries = o && o->retries >= 0 ? o->retries : 8;
    rs->base_ms = o && o->retry_base_ms > 0 ? o->retry_base_ms : 100;
    rs->cap_ms = o && o->retry_cap_ms > 0 ? o->retry_cap_ms : 10000;
    rng_seed(&rs->rng, (uint64_t)clock_mono_us() ^ ((uint64_t)getpid() << 32));
    return &rs->base;
}
