/* store_fault.c - a fault-injecting layer, for tests and benchmarks.
 *
 * It sits between the retry layer and a backend and is configured by a spec
 * of comma-separated settings (all optional):
 *
 *   seed=N              PRNG seed (default 1): the same spec and the same
 *                       sequence of requests give the same faults
 *   err=P               fail a request with "transient" before it reaches the store
 *   throttle=P          fail a request with "throttled" (503 SlowDown) likewise
 *   conflict=P          fail a request with "conflict" (409 ConditionalRequestConflict)
 *   refused=P           fail a request with "transient" and unreachable, as a
 *                       refused connection does (it does not reach the store)
 *   ackloss=P           let a PUT/COPY/DELETE reach the store, then report "transient"
 *                       (the answer was lost; the write happened)
 *   short=P             return a GET body cut short at a random length, as "ok"
 *   latency=MS          hold each request MS milliseconds before sending it on
 *   jitter=MS           add a uniform 0..MS to the latency
 *   fail_nth=N          the Nth request (counting from 1) fails "fatal"
 *   crash_after_puts=N  after N successful PUTs the store is "crashed": every
 *                       later request fails "fatal" without reaching the store
 *   crash=exit          at that crash point, _exit(99) instead (for kill-style
 *                       crash tests; nothing is flushed)
 *   ops=get+put+...     which operations err/throttle/latency apply to
 *                       (get, put, head, delete, list, copy; default all)
 *
 * P is a probability in [0, 1].  Decisions are drawn when a request is
 * submitted, in submission order. */
#include "store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/rng.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fault_action {
    FA_FORWARD, FA_TRANSIENT, FA_THROTTLE, FA_CONFLICT, FA_FATAL_NTH, FA_CRASHED, FA_REFUSED
};

/* What was decided for a request at submit, kept in its lpriv until done. */
#define FF_ACTION(x) ((enum fault_action)((x) & 7))
#define FF_ACKLOSS 8
#define FF_SHORT   16

static unsigned flags_of(const struct store_req *r)
{
    return (unsigned)(uintptr_t)r->lpriv;
}

struct fault_store {
    struct store base;
    struct rng rng;
    double p_err, p_throttle, p_conflict, p_refused, p_ackloss, p_short;
    unsigned latency_ms, jitter_ms;
    unsigned long long fail_nth, crash_after_puts, nsubmitted, nputs_ok;
    int crash_exit, crashed;
    unsigned op_mask;
    struct store_req *waiting; /* held for latency, or failing on the next run */
    int inflight;
    unsigned completions; /* for run() to return as soon as one completes */
};

#define FAULT_OF(s) ((struct fault_store *)(s))

static void child_done(struct store_req *c)
{
    struct fault_store *f = c->arg;
    struct store_req *r = c->parent;
    unsigned flags = flags_of(r);

    store_req_adopt(r, c);
    if (r->err == STORE_OK && r->op == STORE_PUT) {
        f->nputs_ok++;
        if (f->crash_after_puts && f->nputs_ok >= f->crash_after_puts && !f->crashed) {
            log_debug("fault: crash point reached after %llu puts", f->nputs_ok);
            f->crashed = 1;
        }
    }
    if (r->err == STORE_OK && (flags & FF_ACKLOSS)) {
        f->base.stats->faults_injected++;
        store_fail(&f->base, r, STORE_ETRANSIENT, "fault: answer lost after the store applied it");
    }
    if (r->err == STORE_OK && r->op == STORE_GET && r->body.len > 1 && (flags & FF_SHORT)) {
        r->body.len = 1 + rng_below(&f->rng, r->body.len - 1);
        f->base.stats->faults_injected++;
    }
    f->inflight--;
    f->completions++;
    store_complete(&f->base, r);
}

static void act(struct fault_store *f, struct store_req *r)
{
    enum fault_action a = FF_ACTION(flags_of(r));
    if (a == FA_FORWARD && f->crashed)
        a = FA_CRASHED;
    if (a == FA_CRASHED && f->crash_exit) {
        log_warn("fault: simulated crash after %llu puts: exiting", f->nputs_ok);
        _exit(99);
    }
    if (a == FA_FORWARD) {
        struct store_req *c = store_req_child(r, child_done, f);
        f->base.next->ops->submit(f->base.next, c);
        return;
    }
    f->base.stats->faults_injected++;
    if (a == FA_TRANSIENT)
        store_fail(&f->base, r, STORE_ETRANSIENT, "fault: injected transient error");
    else if (a == FA_THROTTLE)
        store_fail(&f->base, r, STORE_ETHROTTLED, "fault: injected 503 SlowDown");
    else if (a == FA_CONFLICT)
        store_fail(&f->base, r, STORE_ECONFLICT, "fault: injected 409 ConditionalRequestConflict");
    else if (a == FA_REFUSED) {
        store_fail(&f->base, r, STORE_ETRANSIENT, "fault: injected refused connection");
        r->unreachable = 1;
    } else if (a == FA_FATAL_NTH)
        store_fail(&f->base, r, STORE_EFATAL, "fault: request %llu fails (fail_nth)", f->fail_nth);
    else
        store_fail(&f->base, r, STORE_EFATAL, "fault: store crashed after %llu puts", f->nputs_ok);
    r->attempts = 1;
    f->inflight--;
    f->completions++;
    store_complete(&f->base, r);
}

static void fault_submit(struct store *s, struct store_req *r)
{
    struct fault_store *f = FAULT_OF(s);
    enum fault_action a = FA_FORWARD;
    int applies = (f->op_mask >> r->op) & 1;
    uint64_t delay = 0;

    f->inflight++;
    f->nsubmitted++;
    if (f->fail_nth && f->nsubmitted == f->fail_nth)
        a = FA_FATAL_NTH;
    else if (applies && f->p_err > 0 && rng_unit(&f->rng) < f->p_err)
        a = FA_TRANSIENT;
    else if (applies && f->p_throttle > 0 && rng_unit(&f->rng) < f->p_throttle)
        a = FA_THROTTLE;
    else if (applies && f->p_conflict > 0 && rng_unit(&f->rng) < f->p_conflict)
        a = FA_CONFLICT;
    else if (applies && f->p_refused > 0 && rng_unit(&f->rng) < f->p_refused)
        a = FA_REFUSED;
    unsigned flags = (unsigned)a;
    if ((r->op == STORE_PUT || r->op == STORE_COPY || r->op == STORE_DELETE) && f->p_ackloss > 0 &&
        rng_unit(&f->rng) < f->p_ackloss)
        flags |= FF_ACKLOSS;
    if (r->op == STORE_GET && f->p_short > 0 && rng_unit(&f->rng) < f->p_short)
        flags |= FF_SHORT;
    r->lpriv = (void *)(uintptr_t)flags;
    if (applies) {
        delay = f->latency_ms;
        if (f->jitter_ms)
            delay += rng_below(&f->rng, f->jitter_ms + 1);
    }
    r->due_ms = clock_mono_ms() + delay;
    r->qnext = f->waiting;
    f->waiting = r;
}

/* Acts on every held request whose time has come, in submission order;
 * returns ms until the next is due, -1 when none is held. */
static int fire_due(struct fault_store *f)
{
    uint64_t now = clock_mono_ms(), next;
    struct store_req *due = store_take_due(&f->waiting, now, &next);
    while (due) {
        struct store_req *r = due;
        due = r->qnext;
        act(f, r);
    }
    if (next == UINT64_MAX)
        return -1;
    now = clock_mono_ms();
    return next > now ? (int)(next - now) : 0;
}

static int fault_fire(struct store *s)
{
    return fire_due(FAULT_OF(s));
}

static int fault_run(struct store *s, int timeout_ms)
{
    struct fault_store *f = FAULT_OF(s);
    return store_timed_run(s, timeout_ms, fault_fire, &f->completions, &f->inflight);
}

static void fault_close(struct store *s)
{
    store_drain(s);
    s->next->ops->close(s->next);
    free(s);
}

static const struct store_ops fault_ops = {
    .name = "fault", .submit = fault_submit, .run = fault_run, .close = fault_close,
    .wakeup = store_timed_wakeup,
};

static int parse_prob(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || end == v || d < 0 || d > 1)
        return -1;
    *out = d;
    return 0;
}

static int parse_uint(const char *v, unsigned long long *out)
{
    char *end;
    if (!*v || *v == '-')
        return -1;
    *out = strtoull(v, &end, 10);
    return *end ? -1 : 0;
}

static int parse_ops(const char *v, unsigned *mask)
{
    static const char *const names[STORE_NOPS] = {"get", "put", "head", "delete", "list", "copy"};
    char *copy = xstrdup(v), *save = NULL;
    *mask = 0;
    for (char *t = strtok_r(copy, "+|", &save); t; t = strtok_r(NULL, "+|", &save)) {
        int i;
        for (i = 0; i < STORE_NOPS && strcmp(t, names[i]) != 0; i++)
            ;
        if (i == STORE_NOPS) {
            free(copy);
            return -1;
        }
        *mask |= 1u << i;
    }
    free(copy);
    return *mask ? 0 : -1;
}

static int parse_setting(struct fault_store *f, const char *k, const char *v)
{
    unsigned long long u;
    if (strcmp(k, "seed") == 0 && parse_uint(v, &u) == 0) {
        rng_seed(&f->rng, u);
        return 0;
    }
    if (strcmp(k, "err") == 0)
        return parse_prob(v, &f->p_err);
    if (strcmp(k, "throttle") == 0)
        return parse_prob(v, &f->p_throttle);
    if (strcmp(k, "conflict") == 0)
        return parse_prob(v, &f->p_conflict);
    if (strcmp(k, "refused") == 0)
        return parse_prob(v, &f->p_refused);
    if (strcmp(k, "ackloss") == 0)
        return parse_prob(v, &f->p_ackloss);
    if (strcmp(k, "short") == 0)
        return parse_prob(v, &f->p_short);
    if (strcmp(k, "latency") == 0 && parse_uint(v, &u) == 0 && u < 600000) {
        f->latency_ms = (unsigned)u;
        return 0;
    }
    if (strcmp(k, "jitter") == 0 && parse_uint(v, &u) == 0 && u < 600000) {
        f->jitter_ms = (unsigned)u;
        return 0;
    }
    if (strcmp(k, "fail_nth") == 0)
        return parse_uint(v, &f->fail_nth);
    if (strcmp(k, "crash_after_puts") == 0)
        return parse_uint(v, &f->crash_after_puts);
    if (strcmp(k, "crash") == 0 && (strcmp(v, "exit") == 0 || strcmp(v, "fail") == 0)) {
        f->crash_exit = strcmp(v, "exit") == 0;
        return 0;
    }
    if (strcmp(k, "ops") == 0)
        return parse_ops(v, &f->op_mask);
    return -1;
}

struct store *store_fault_open(struct store *next, const char *spec, char *err, size_t errlen)
{
    struct fault_store *f = xcalloc(1, sizeof *f);
    char *copy = xstrdup(spec), *save = NULL;

    f->base.ops = &fault_ops;
    f->base.next = next;
    f->base.stats = next->stats;
    f->base.url = next->url;
    f->op_mask = (1u << STORE_NOPS) - 1;
    rng_seed(&f->rng, 1);
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || (*eq = '\0', parse_setting(f, t, eq + 1) < 0)) {
            snprintf(
                err, errlen,
                "bad fault setting '%s%s%s'; see store_fault.c: seed=N err=P throttle=P conflict=P "
                "refused=P ackloss=P short=P latency=MS jitter=MS fail_nth=N crash_after_puts=N "
                "crash=exit ops=get+put+head+delete+list+copy",
                t, eq ? "=" : "", eq ? eq + 1 : "");
            free(copy);
            free(f);
            return NULL;
        }
    }
    free(copy);
    return &f->base;
}
