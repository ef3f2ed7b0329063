/* lease.c - an exclusive, time-bounded lease in a store (see lease.h for the
 * rules L1-L5 and the object layout). */
#include "lease.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void copy_name(char *dst, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i < LEASE_NAME_MAX - 1; i++)
        dst[i] = (src[i] == ' ' || src[i] == '\n' || src[i] == '\t') ? '_' : src[i];
    dst[i] = '\0';
}

void lease_init(struct lease *l, struct store *s, const char *key, const char *holder,
                const char *host, uint64_t ttl_ms, uint64_t margin_ms)
{
    memset(l, 0, sizeof *l);
    l->store = s;
    snprintf(l->key, sizeof l->key, "%s", key);
    copy_name(l->holder, holder);
    copy_name(l->host, host);
    l->ttl_ms = ttl_ms;
    l->margin_ms = margin_ms;
    l->now = clock_mono_ms;
}

void lease_format(const struct lease_rec *r, struct buf *out)
{
    buf_printf(out,
               "buoy-lease 1\nepoch %" PRIu64 "\nholder %s\nhost %s\nsince %" PRId64
               "\nrenewed %" PRId64 "\nrenewals %" PRIu64 "\nttl_ms %" PRIu64 "\nstate %s\n",
               r->epoch, r->holder, r->host, r->since, r->renewed, r->renewals, r->ttl_ms,
               r->released ? "released" : "held");
}

/* One "name value" line at *p, name fixed; advances *p past the newline. */
static int field(const char **p, const char *end, const char *name, char *val, size_t vlen)
{
    size_t nl = strlen(name);
    const char *eol = memchr(*p, '\n', (size_t)(end - *p));
    if (!eol || (size_t)(eol - *p) < nl + 2 || memcmp(*p, name, nl) != 0 || (*p)[nl] != ' ')
        return -1;
    size_t n = (size_t)(eol - *p) - nl - 1;
    if (n == 0 || n >= vlen)
        return -1;
    memcpy(val, *p + nl + 1, n);
    val[n] = '\0';
    *p = eol + 1;
    return 0;
}

static int num(const char *v, int64_t *out, int allow_neg)
{
    char *e;
    if (!allow_neg && v[0] == '-')
        return -1;
    long long x = strtoll(v, &e, 10);
    if (*e || e == v)
        return -1;
    *out = x;
    return 0;
}

int lease_parse(const char *p, size_t n, struct lease_rec *r, char *err, size_t errlen)
{
    const char *end = p + n;
    char v[LEASE_NAME_MAX + 8];
    int64_t x;
    memset(r, 0, sizeof *r);
    if (field(&p, end, "buoy-lease", v, sizeof v) || strcmp(v, "1") != 0)
        goto bad;
    if (field(&p, end, "epoch", v, sizeof v) || num(v, &x, 0) || x < 1)
        goto bad;
    r->epoch = (uint64_t)x;
    if (field(&p, end, "holder", r->holder, sizeof r->holder) ||
        field(&p, end, "host", r->host, sizeof r->host))
        goto bad;
    if (field(&p, end, "since", v, sizeof v) || num(v, &r->since, 1))
        goto bad;
    if (field(&p, end, "renewed", v, sizeof v) || num(v, &r->renewed, 1))
        goto bad;
    if (field(&p, end, "renewals", v, sizeof v) || num(v, &x, 0))
        goto bad;
    r->renewals = (uint64_t)x;
    if (field(&p, end, "ttl_ms", v, sizeof v) || num(v, &x, 0) || x < 1)
        goto bad;
    r->ttl_ms = (uint64_t)x;
    if (field(&p, end, "state", v, sizeof v))
        goto bad;
    if (strcmp(v, "released") == 0)
        r->released = 1;
    else if (strcmp(v, "held") != 0)
        goto bad;
    if (p != end)
        goto bad;
    return 0;
bad:
    set_err(err, errlen, "not a valid lease record (line %s)", p < end ? "garbled" : "missing");
    return -1;
}

/* Records a read: a new ETag (or a change between absent and present)
 * restarts the observation clock. */
static void saw(struct lease *l, int exists, const struct lease_rec *r, const char *etag,
                uint64_t recv_ms)
{
    int changed = !l->seen || exists != l->exists || (exists && strcmp(etag, l->etag) != 0);
    l->seen = 1;
    l->exists = exists;
    if (exists) {
        l->cur = *r;
        snprintf(l->etag, sizeof l->etag, "%s", etag);
    } else {
        memset(&l->cur, 0, sizeof l->cur);
        l->etag[0] = '\0';
    }
    if (changed)
        l->seen_since_ms = recv_ms;
}

static int is_ours(const struct lease *l, const struct lease_rec *r)
{
    return strcmp(r->holder, l->holder) == 0 && strcmp(r->host, l->host) == 0;
}

/* GET and parse.  1 exists, 0 missing, -1 store error, -2 garbage. */
static int fetch(struct lease *l, struct lease_rec *r, char etag[STORE_ETAG_MAX], char *err,
                 size_t errlen)
{
    struct buf body = {0};
    struct store_obj info;
    enum store_err e = store_get(l->store, l->key, 0, 0, &body, &info, err, errlen);
    int ret;
    if (e == STORE_ENOTFOUND)
        ret = 0;
    else if (e != STORE_OK)
        ret = -1;
    else if (lease_parse(body.p, body.len, r, err, errlen) < 0)
        ret = -2;
    else {
        snprintf(etag, STORE_ETAG_MAX, "%s", info.etag);
        ret = 1;
    }
    buf_free(&body);
    return ret;
}

enum lease_status lease_observe(struct lease *l, char *err, size_t errlen)
{
    struct lease_rec r;
    char etag[STORE_ETAG_MAX] = "";
    int got = fetch(l, &r, etag, err, errlen);
    uint64_t recv = l->now();
    if (got == -1)
        return LEASE_STORE;
    if (got == -2) {
        /* Garbage under the key is treated as a held lease of unknown ttl:
         * nobody takes it without waiting, and the ETag still guards writes. */
        struct store_obj info;
        if (store_head(l->store, l->key, &info, err, errlen) != STORE_OK)
            return LEASE_STORE;
        memset(&r, 0, sizeof r);
        snprintf(r.holder, sizeof r.holder, "?");
        snprintf(r.host, sizeof r.host, "?");
        r.ttl_ms = l->ttl_ms;
        snprintf(etag, sizeof etag, "%s", info.etag);
        got = 1;
    }
    saw(l, got, &r, etag, recv);
    if (l->held && (!got || strcmp(etag, l->etag) != 0 || !is_ours(l, &r) || r.released)) {
        l->held = 0;
        return LEASE_LOST;
    }
    return LEASE_OK;
}

uint64_t lease_wait_ms(const struct lease *l, uint64_t now_ms)
{
    if (!l->seen)
        return UINT64_MAX;
    if (!l->exists || l->cur.released)
        return 0;
    uint64_t ttl = l->cur.ttl_ms > l->ttl_ms ? l->cur.ttl_ms : l->ttl_ms;
    uint64_t when = l->seen_since_ms + ttl + l->margin_ms;
    return now_ms >= when ? 0 : when - now_ms;
}

int lease_valid(const struct lease *l, uint64_t now_ms)
{
    return l->held && now_ms + l->margin_ms < l->deadline_ms;
}

/* A conditional PUT of rec; on an unknown outcome, read back (rule L5).
 * Returns 1 written (etag updated), 0 condition failed, -1 unknown. */
static int cond_put(struct lease *l, const struct lease_rec *rec, enum store_cond cond, char *err,
                    size_t errlen)
{
    struct buf body = {0};
    char etag[STORE_ETAG_MAX];
    struct store_req r = {0};
    lease_format(rec, &body);
    r.op = STORE_PUT;
    r.key = l->key;
    r.data = body.p;
    r.size = body.len;
    r.cond = cond;
    if (cond == STORE_IF_MATCH)
        snprintf(r.if_etag, sizeof r.if_etag, "%s", l->etag);
    store_submit(l->store, &r);
    store_wait(l->store, &r);
    int maybe = r.maybe_applied ||
                (r.err != STORE_OK && r.err != STORE_EPRECOND && r.err != STORE_ENOTFOUND);
    enum store_err e = r.err;
    if (e == STORE_OK)
        snprintf(etag, sizeof etag, "%s", r.obj.etag);
    else
        set_err(err, errlen, "%s", r.errmsg);
    store_req_free(&r);
    buf_free(&body);
    if (e == STORE_OK) {
        snprintf(l->etag, sizeof l->etag, "%s", etag);
        l->cur = *rec;
        l->exists = 1;
        return 1;
    }
    if (!maybe)
        return 0;
    /* Was it applied after all?  Only an exact match of what we wrote counts. */
    struct lease_rec back;
    char e2[STORE_ETAG_MAX];
    char err2[STORE_ERRMSG_MAX];
    int got = fetch(l, &back, e2, err2, sizeof err2);
    if (got < 0)
        return -1;
    if (got == 1 && back.epoch == rec->epoch && back.renewals == rec->renewals &&
        back.released == rec->released && is_ours(l, &back)) {
        log_info("lease %s: a write whose answer was lost did land (epoch %" PRIu64 ")", l->key,
                 rec->epoch);
        snprintf(l->etag, sizeof l->etag, "%s", e2);
        l->cur = back;
        l->exists = 1;
        return 1;
    }
    return e == STORE_EPRECOND ? 0 : (got == 1 ? 0 : -1);
}

enum lease_status lease_take(struct lease *l, char *err, size_t errlen)
{
    uint64_t sent = l->now();
    if (lease_wait_ms(l, sent) != 0) {
        set_err(err, errlen, "lease %s: held by %s (epoch %" PRIu64 "); waiting", l->key,
                l->cur.holder, l->cur.epoch);
        return LEASE_BUSY;
    }
    struct lease_rec rec = {0};
    time_t t = time(NULL);
    rec.epoch = (l->exists ? l->cur.epoch : 0) + 1; /* L1 */
    snprintf(rec.holder, sizeof rec.holder, "%s", l->holder);
    snprintf(rec.host, sizeof rec.host, "%s", l->host);
    rec.since = rec.renewed = (int64_t)t;
    rec.ttl_ms = l->ttl_ms;
    int w = cond_put(l, &rec, l->exists ? STORE_IF_MATCH : STORE_IF_NONE_MATCH, err, errlen);
    if (w == 1) {
        l->held = 1;
        l->unsure = 0;
        l->deadline_ms = sent + l->ttl_ms;
        l->seen_since_ms = sent;
        return LEASE_OK;
    }
    l->seen = 0; /* observe again before another try */
    return w == 0 ? LEASE_BUSY : LEASE_STORE;
}

/* Our renewal was refused or its outcome is unknown: read the object.  A
 * record with our holder and epoch, not released, is still our lease (only
 * a taker changes the epoch): adopt its ETag.  1 ours, 0 not, -1 unknown. */
static int resync(struct lease *l, char *err, size_t errlen)
{
    struct lease_rec back;
    char etag[STORE_ETAG_MAX];
    int got = fetch(l, &back, etag, err, errlen);
    if (got == -1)
        return -1;
    if (got == 1 && is_ours(l, &back) && back.epoch == l->cur.epoch && !back.released) {
        l->cur = back;
        snprintf(l->etag, sizeof l->etag, "%s", etag);
        l->unsure = 0;
        return 1;
    }
    return 0;
}

enum lease_status lease_renew(struct lease *l, char *err, size_t errlen)
{
    if (!l->held) {
        set_err(err, errlen, "lease %s: not held", l->key);
        return LEASE_LOST;
    }
    if (l->unsure) {
        int r = resync(l, err, errlen);
        if (r < 0)
            return LEASE_STORE;
        if (r == 0) {
            l->held = 0;
            l->seen = 0;
            set_err(err, errlen, "lease %s: taken by another node", l->key);
            return LEASE_LOST;
        }
    }
    struct lease_rec rec = l->cur;
    rec.renewals++; /* L2 */
    rec.renewed = (int64_t)time(NULL);
    rec.ttl_ms = l->ttl_ms;
    uint64_t sent = l->now();
    int w = cond_put(l, &rec, STORE_IF_MATCH, err, errlen);
    if (w == 1) {
        l->deadline_ms = sent + l->ttl_ms;
        return LEASE_OK;
    }
    if (w < 0) {
        l->unsure = 1; /* our ETag may be stale now */
        return LEASE_STORE;
    }
    /* Refused: maybe by a renewal of ours that landed unseen; else lost. */
    int r = resync(l, err, errlen);
    if (r < 0) {
        l->unsure = 1;
        return LEASE_STORE;
    }
    if (r == 1) {
        uint64_t sent2 = l->now();
        rec = l->cur;
        rec.renewals++;
        rec.renewed = (int64_t)time(NULL);
        rec.ttl_ms = l->ttl_ms;
        w = cond_put(l, &rec, STORE_IF_MATCH, err, errlen);
        if (w == 1) {
            l->deadline_ms = sent2 + l->ttl_ms;
            return LEASE_OK;
        }
        if (w < 0) {
            l->unsure = 1;
            return LEASE_STORE;
        }
    }
    l->held = 0;
    l->seen = 0;
    set_err(err, errlen, "lease %s: taken by another node (renewal refused)", l->key);
    return LEASE_LOST;
}

enum lease_status lease_release(struct lease *l, char *err, size_t errlen)
{
    if (!l->held) {
        set_err(err, errlen, "lease %s: not held", l->key);
        return LEASE_LOST;
    }
    if (l->unsure && resync(l, err, errlen) != 1) {
        l->held = 0;
        l->seen = 0;
        return LEASE_STORE; /* it will expire instead */
    }
    struct lease_rec rec = l->cur;
    rec.renewals++;
    rec.renewed = (int64_t)time(NULL);
    rec.released = 1;
    l->held = 0;
    int w = cond_put(l, &rec, STORE_IF_MATCH, err, errlen);
    l->seen = 0;
    return w == 1 ? LEASE_OK : w == 0 ? LEASE_LOST : LEASE_STORE;
}
