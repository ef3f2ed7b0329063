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
 * A conditional PUT, COPY or DELETE whose earlier attempt ended "transient" (a
 * timeout, a 5xx, a lost answer) may have been applied; if a retry then
 * fails its condition, the request completes with maybe_applied set, and
 * the message says so.  Callers that need to know read the object back.
 * An attempt that could not connect (unreachable: the connection was
 * refused, the host name unknown) counts as unknown too: libcurl may have
 * sent the request on a kept-alive connection that died, then failed to
 * reconnect.
 *
 * Unreachable requests are retried only when the process says so
 * (store_retry_unreachable): a daemon keeps retrying them through a store
 * outage, a person's one-shot command fails at once, since an endpoint that
 * refuses connections now will not accept them within the next seconds and
 * the person is waiting.  Everything else retryable is retried in both.
 *
 * Every retry is one warn line: the request, the attempt, the cause and the
 * wait, e.g. "s3://b/v/super: GET: HTTP 503 SlowDown (attempt 2 of 9);
 * retrying in 180 ms". */
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
    unsigned completions;      /* parents completed, for run() to return early */
};

/* r->lpriv, while the retry layer holds r: an earlier attempt's outcome is unknown. */
#define UNKNOWN_OUTCOME ((void *)1)

#define RETRY_OF(s) ((struct retry_store *)(s))

static int retry_unreachable = 1;

void store_retry_unreachable(int retry)
{
    __atomic_store_n(&retry_unreachable, !!retry, __ATOMIC_RELAXED);
}

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

    int fail_fast = c->err == STORE_ETRANSIENT && c->unreachable &&
                    !__atomic_load_n(&retry_unreachable, __ATOMIC_RELAXED);

    if (c->err == STORE_ETRANSIENT &&
        (r->op == STORE_PUT || r->op == STORE_DELETE || r->op == STORE_COPY))
        r->lpriv = UNKNOWN_OUTCOME;
    if (retryable(c->err) && tries <= rs->retries && !fail_fast) {
        uint64_t window = (uint64_t)rs->base_ms << (tries < 20 ? tries : 20);
        if (window > (uint64_t)rs->cap_ms)
            window = (uint64_t)rs->cap_ms;
        uint64_t delay = rng_below(&rs->rng, window + 1);
        log_warn("%s (attempt %d of %d); retrying in %llu ms", c->errmsg, tries,
                 rs->retries + 1, (unsigned long long)delay);
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
    size_t n = strlen(r->errmsg);
    if (fail_fast && r->attempts > 1)
        snprintf(r->errmsg + n, sizeof r->errmsg - n, " (attempt %d; not retried)", r->attempts);
    else if (fail_fast)
        snprintf(r->errmsg + n, sizeof r->errmsg - n, " (not retried)");
    else if (r->err && retryable(r->err) && r->attempts > 1)
        snprintf(r->errmsg + n, sizeof r->errmsg - n, " (gave up after %d attempts)", r->attempts);
    else if (r->lpriv == UNKNOWN_OUTCOME && r->cond != STORE_COND_NONE &&
             (r->err == STORE_EPRECOND || r->err == STORE_ENOTFOUND)) {
        r->maybe_applied = 1;
        snprintf(r->errmsg + n, sizeof r->errmsg - n,
                 " (after %d attempts; an earlier one may have been applied)", r->attempts);
    }
    r->lpriv = NULL;
    rs->inflight--;
    rs->completions++;
    store_complete(&rs->base, r);
}

static void retry_submit(struct store *s, struct store_req *r)
{
    struct retry_store *rs = RETRY_OF(s);
    r->lpriv = NULL;
    rs->inflight++;
    send(rs, r);
}

/* Sends every waiting request whose time has come; returns ms until the next. */
static int fire_due(struct retry_store *rs)
{
    uint64_t now = clock_mono_ms(), next;
    struct store_req *due = store_take_due(&rs->waiting, now, &next);
    while (due) {
        struct store_req *r = due;
        due = r->qnext;
        send(rs, r);
    }
    if (next == UINT64_MAX)
        return -1;
    now = clock_mono_ms();
    return next > now ? (int)(next - now) : 0;
}

static int retry_fire(struct store *s)
{
    return fire_due(RETRY_OF(s));
}

static int retry_run(struct store *s, int timeout_ms)
{
    struct retry_store *rs = RETRY_OF(s);
    return store_timed_run(s, timeout_ms, retry_fire, &rs->completions, &rs->inflight);
}

static void retry_close(struct store *s)
{
    store_drain(s);
    s->next->ops->close(s->next);
    free(s);
}

static const struct store_ops retry_ops = {
    .name = "retry", .submit = retry_submit, .run = retry_run, .close = retry_close,
    .wakeup = store_timed_wakeup,
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
