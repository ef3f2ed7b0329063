/* vol_lease.c - the writer lease (src/store/lease.c) taken at open and
 * renewed by a thread, and the takeover records that fence off a
 * stale writer (rule 9, fence.h).  Rules: the top of vol.c. */

#include "vol.h"
#include "cache.h"
#include "ckpt.h"
#include "fence.h"
#include "io.h"
#include "journal.h"
#include "keys.h"
#include "map.h"
#include "seg.h"
#include "super.h"
#include "store/lease.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/path.h"

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "vol_int.h"

/* ---- the writer lease (rule 9) ---- */

/* 1 while our lease is surely ours: deletes happen only then. */
int lease_ok(struct vol *v)
{
    if (!v->has_lease)
        return !v->read_only;
    pthread_mutex_lock(&v->lease_lock);
    int ok = clock_mono_ms() + v->lease_margin_ms < v->lease_deadline_ms ||
             v->lease_paused == 2; /* the test hook of a writer whose clock lies */
    pthread_mutex_unlock(&v->lease_lock);
    if (!ok && !v->lease_warned) {
        log_warn("the writer lease is not known to be ours right now; deleting nothing");
        v->lease_warned = 1;
    }
    return ok;
}

static void when_str(int64_t t, char *out, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&tt, &tm));
}

/* Takes the volume's lease at open: at once when it is free or was our own
 * (same holder, and we hold the cache dir's lock, so that writer is gone);
 * with takeover, after it has stood unrenewed for its time plus a margin. */
int take_lease(struct vol *v, const char *url, const struct vol_opts *o,
                      const char *cache_dir, char *err, size_t errlen)
{
    char host[LEASE_NAME_MAX] = "localhost", holder[LEASE_NAME_MAX], why[STORE_ERRMSG_MAX];
    gethostname(host, sizeof host - 1);
    host[strcspn(host, " \n")] = '\0';
    char abs[4096];
    const char *cd = realpath(cache_dir, abs) ? abs : cache_dir;
    uint32_t h = 2166136261u; /* FNV-1a of the cache dir: one holder per host and cache dir */
    for (const char *c = cd; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    snprintf(holder, sizeof holder, "%.40s:%08x", host, h);
    struct store_opts lo = o->store;
    lo.fault = NULL; /* injected faults are for the data path; the lease tests its own */
    v->lease_st = store_open(url, &lo, err, errlen);
    if (v->lease_st)
        v->lease_st = vol_wrap_store(v, v->lease_st, err, errlen);
    if (!v->lease_st)
        return -1;
    uint64_t ttl = o->lease_ms > 0 ? (uint64_t)o->lease_ms : 10000;
    v->lease_margin_ms = ttl / 5;
    lease_init(&v->lease, v->lease_st, "lease", holder, host, ttl, v->lease_margin_ms);
    if (lease_observe(&v->lease, why, sizeof why) != LEASE_OK) {
        snprintf(err, errlen, "reading the lease of %s: %s", url, why);
        return -1;
    }
    struct lease_rec *cur = &v->lease.cur;
    /* who held it last, for a kept block cache (rule 11): any taker bumps the epoch */
    v->lease_prev_ours = v->lease.exists && strcmp(cur->holder, holder) == 0 &&
                         strcmp(cur->host, host) == 0;
    v->lease_prev_epoch = cur->epoch;
    if (v->lease.exists && !cur->released) {
        char since[40];
        when_str(cur->since, since, sizeof since);
        if (strcmp(cur->holder, holder) == 0 && strcmp(cur->host, host) == 0) {
            /* ours, from before a crash: the cache dir lock proves it is
             * gone; the If-Match of the take proves nobody else came */
            cur->released = 1;
            v->lease_from_self = 1;
        } else if (!o->takeover) {
            snprintf(err, errlen,
                     "volume %s is in use by %s on %s since %s (lease epoch %" PRIu64
                     "); use --takeover if that writer is gone",
                     url, cur->holder, cur->host, since, cur->epoch);
            return -1;
        } else {
            uint64_t t = cur->ttl_ms > ttl ? cur->ttl_ms : ttl;
            uint64_t give_up = clock_mono_ms() + 3 * t + v->lease_margin_ms;
            log_warn("taking over %s from %s on %s (epoch %" PRIu64 "): waiting until its lease "
                     "has stood unrenewed for %" PRIu64 " ms",
                     url, cur->holder, cur->host, cur->epoch, t + v->lease_margin_ms);
            while (lease_wait_ms(&v->lease, clock_mono_ms())) {
                if (clock_mono_ms() > give_up) {
                    snprintf(err, errlen,
                             "%s on %s keeps renewing the lease of %s: that writer is alive; "
                             "not taking it over",
                             cur->holder, cur->host, url);
                    return -1;
                }
                uint64_t w = lease_wait_ms(&v->lease, clock_mono_ms());
                clock_sleep_ms(w < 200 ? w : 200);
                if (lease_observe(&v->lease, why, sizeof why) != LEASE_OK)
                    log_warn("reading the lease: %s", why);
            }
        }
    }
    if (!v->lease.exists || cur->released)
        v->lease_from_self = 1; /* free, released cleanly, or ours: no writer to fence off */
    enum lease_status st = lease_take(&v->lease, why, sizeof why);
    if (st != LEASE_OK) {
        snprintf(err, errlen, "cannot take the lease of %s: %s", url,
                 st == LEASE_BUSY ? "another writer took it at the same moment" : why);
        return -1;
    }
    v->has_lease = 1;
    v->epoch = (uint32_t)v->lease.cur.epoch;
    v->lease_deadline_ms = v->lease.deadline_ms;
    log_info("took the writer lease of %s: epoch %u", url, v->epoch);
    return 0;
}

/* Renews the lease every quarter of its time; a lost lease, or one not
 * renewed in time, stops the volume (sticky error), before a taker can
 * start: its deadline is earlier than the taker's wait by the margin. */
void *lease_main(void *arg)
{
    struct vol *v = arg;
    char why[STORE_ERRMSG_MAX];
    uint64_t step = v->lease.ttl_ms / 4 ? v->lease.ttl_ms / 4 : 1;
    pthread_mutex_lock(&v->lease_lock);
    while (!v->lease_stop) {
        struct timespec ts;
        clock_deadline(CLOCK_REALTIME, step, &ts);
        pthread_cond_timedwait(&v->lease_wake, &v->lease_lock, &ts);
        if (v->lease_stop)
            break;
        int paused = v->lease_paused;
        if (paused == 2)
            continue; /* frozen: neither renews nor notices */
        pthread_mutex_unlock(&v->lease_lock);
        enum lease_status st = paused ? LEASE_STORE : lease_renew(&v->lease, why, sizeof why);
        const char *lost = NULL;
        if (st == LEASE_LOST)
            lost = "another writer took the lease";
        else if (st != LEASE_OK && !lease_valid(&v->lease, clock_mono_ms()))
            lost = "the lease could not be renewed in time";
        pthread_mutex_lock(&v->lease_lock);
        if (st == LEASE_OK)
            v->lease_deadline_ms = v->lease.deadline_ms;
        if (lost) {
            v->lease_deadline_ms = 0;
            pthread_mutex_unlock(&v->lease_lock);
            pthread_mutex_lock(&v->lock);
            v->fenced = 1;
            fail(v, "%s (epoch %u; now held by %s on %s); this writer stops", lost, v->epoch,
                 v->lease.exists ? v->lease.cur.holder : "nobody",
                 v->lease.exists ? v->lease.cur.host : "-");
            pthread_mutex_unlock(&v->lock);
            pthread_mutex_lock(&v->lease_lock);
            break;
        }
    }
    pthread_mutex_unlock(&v->lease_lock);
    return NULL;
}

void stop_lease(struct vol *v)
{
    if (!v->lease_running)
        return;
    pthread_mutex_lock(&v->lease_lock);
    v->lease_stop = 1;
    pthread_cond_signal(&v->lease_wake);
    pthread_mutex_unlock(&v->lease_lock);
    pthread_join(v->lease_thread, NULL);
    v->lease_running = 0;
}

void vol_test_pause_lease(struct vol *v, int paused)
{
    pthread_mutex_lock(&v->lease_lock);
    v->lease_paused = paused;
    pthread_mutex_unlock(&v->lease_lock);
}

/* Reads the takeover records (rule 9). */
int load_fences(struct vol *v, char *err, size_t errlen)
{
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, FENCE_PREFIX, &list, &n, err, errlen))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t e;
        struct buf b = {0};
        struct fence f;
        char why[256];
        if (fence_key_parse(list[i].key, &e) < 0)
            continue;
        if (io_get(v->io, list[i].key, 0, 0, &b, err, errlen))
            rc = -1;
        else if (fence_parse(b.p, b.len, &f, why, sizeof why) < 0 || f.epoch != e) {
            snprintf(err, errlen, "%s is damaged (%s): cannot tell fenced segments apart",
                     list[i].key, why);
            rc = -1;
        } else
            fence_add(&v->fences, &f);
        buf_free(&b);
    }
    store_list_free(list, n);
    return rc;
}

/* Records our takeover at the end of the recovered run, before we write. */
int write_fence(struct vol *v, char *err, size_t errlen)
{
    struct fence f = {v->epoch, v->next_seq - 1};
    char key[FENCE_KEY_SIZE];
    struct buf b = {0};
    fence_key(f.epoch, key);
    fence_encode(&f, v->lease.holder, &b);
    enum store_err e = io_put(v->io, key, b.p, b.len, STORE_IF_NONE_MATCH, err, errlen);
    buf_free(&b);
    if (e == STORE_EPRECOND) {
        snprintf(err, errlen, "takeover record %s exists already: another writer has epoch %u",
                 key, v->epoch);
        return -1;
    }
    if (e)
        return -1;
    fence_add(&v->fences, &f);
    return 0;
}

