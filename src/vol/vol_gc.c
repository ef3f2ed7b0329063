/* vol_gc.c - garbage collection (rule 7): the least live segments are
 * cleaned by copying their live blocks into the GC slot; the deletes follow
 * the next checkpoint (vol_ckpt.c).  Rules: the top of vol.c. */

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

/* ---- garbage collection ----
 *
 * A victim is a durable segment whose live blocks are below gc_threshold of
 * its data.  Its live runs are fetched (lock released), then, with the lock
 * held, each run still mapped to the victim is appended to the GC slot and
 * remapped; the drop callback takes the victim's live count to zero, and a
 * later checkpoint deletes it (rule 8).  Rule 7 keeps the copies ordered
 * below every newer user write. */

struct gc_ctx {
    struct vol *v;
    uint32_t victim, first; /* the extent's first block in the victim */
    uint64_t lba0;          /* and its lba */
    struct read_ctx *c;
};

/* Collects the parts of an extent of the victim the map still points at. */
static int gc_live_piece(void *arg, uint64_t lba, uint64_t n, uint32_t seg, uint32_t block,
                         int mapped)
{
    struct gc_ctx *g = arg;
    if (mapped && seg == g->victim && block == g->first + (lba - g->lba0))
        add_piece(g->c, lba, n, seg, block);
    return 0;
}

/* Appends up to n blocks copied from the victim at lba to the GC slot, only
 * those still mapped to (victim, block..); returns how many blocks of the
 * run it consumed (always >= 1 unless it failed: then -EIO). */
static int64_t gc_append(struct vol *v, uint32_t victim, uint64_t lba, uint32_t block,
                         uint64_t n, const char *data)
{
    struct wseg *w = &v->w[W_GC];
    int rc = open_builder(v, w); /* may release the lock: liveness is looked at after */
    if (rc)
        return rc;
    if (seg_room(w->b) == 0 || seg_full(w->b)) {
        rc = seal(v, w);
        return rc ? rc : 0; /* look again */
    }
    /* how much of the run is still live, from its start; the lock is held
     * from here to the remap */
    struct read_ctx c = {.v = v};
    struct gc_ctx g = {.v = v, .victim = victim, .first = block, .lba0 = lba, .c = &c};
    map_lookup(v->map, lba, n, gc_live_piece, &g);
    if (c.np == 0 || c.p[0].lba != lba) { /* the start is not live: skip to the next live part */
        uint64_t skip = c.np ? c.p[0].lba - lba : n;
        free(c.p);
        return (int64_t)skip;
    }
    uint64_t k = c.p[0].n;
    free(c.p);
    if (k > seg_room(w->b))
        k = seg_room(w->b);
    int64_t first = seg_add_data(w->b, lba, (uint32_t)k, data);
    if (first < 0) {
        rc = seal(v, w);
        return rc ? rc : 0;
    }
    if (w->j && journal_append_data(w->j, lba, (uint32_t)k, data) < 0)
        return journal_error(v, w->j);
    map_set(v->map, lba, (uint32_t)k, w->idx, (uint32_t)first);
    v->segs[w->idx].live += (uint32_t)k;
    v->stats.gc_bytes_copied += k * v->bs;
    if (seg_full(w->b) && (rc = seal(v, w)))
        return rc;
    return (int64_t)k;
}

/* Copies the live blocks of segment victim elsewhere.  0 (also when there
 * was nothing to copy or a read failed: the victim just stays), or -EIO
 * when the volume failed.  *copied gets the bytes copied. */
static int gc_segment(struct vol *v, uint32_t victim, uint64_t *copied)
{
    char err[STORE_ERRMSG_MAX];
    uint64_t before = v->stats.gc_bytes_copied;
    struct seg_hdr *h = get_hdr(v, victim, err, sizeof err);
    if (!h) {
        log_warn("garbage collection: segment %" PRIu64 ": %s; skipped", v->segs[victim].seq,
                 err);
        return 0;
    }
    struct read_ctx c = {.v = v};
    for (uint32_t e = 0; e < h->nextents; e++) {
        const struct seg_extent *x = &h->ext[e];
        if (x->kind != SEG_DATA)
            continue;
        struct gc_ctx g = {.v = v, .victim = victim, .first = x->first, .lba0 = x->lba, .c = &c};
        map_lookup(v->map, x->lba, x->nblocks, gc_live_piece, &g);
    }
    size_t nf;
    struct fetch *f = plan_fetches(&c, &nf);
    for (size_t i = 0; i < nf; i++)
        submit_fetch(v, &f[i]);
    if (nf) {
        v->reads_waiting++; /* the victim is not deleted under us */
        pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < nf; i++) {
            io_wait(f[i].io, &f[i].q);
            if (f[i].with_hdr)
                io_wait(f[i].io, &f[i].hq);
        }
        pthread_mutex_lock(&v->lock);
        v->reads_waiting--;
    }
    int rc = 0;
    for (size_t i = 0; i < nf && !rc; i++) {
        if (check_fetch(v, &f[i]) < 0) {
            log_warn("garbage collection: segment %" PRIu64 " could not be read; skipped",
                     v->segs[victim].seq);
            continue;
        }
        for (size_t j = f[i].first; !rc && j < f[i].first + f[i].npieces; j++) {
            struct piece *p = &c.p[j];
            const char *data = f[i].q.r.body.p + (size_t)(p->block - f[i].block) * v->bs;
            for (uint64_t d = 0; d < p->n && !v->failed[0];) {
                int64_t k = gc_append(v, victim, p->lba + d, p->block + (uint32_t)d, p->n - d,
                                      data + d * v->bs);
                if (k < 0)
                    rc = (int)k;
                else
                    d += (uint64_t)k;
                if (k < 0)
                    break;
            }
        }
    }
    for (size_t i = 0; i < nf; i++)
        free_fetch_reqs(&f[i]);
    free(f);
    free(c.p);
    *copied = v->stats.gc_bytes_copied - before;
    if (!rc && !v->segs[victim].live)
        v->stats.gc_segments_cleaned++;
    return v->failed[0] ? -EIO : rc;
}

/* The least live victim below threshold, or -1. */
static int64_t gc_pick(struct vol *v, double threshold)
{
    int64_t best = -1;
    double best_u = threshold;
    for (uint32_t i = 0; i < v->nsegs; i++) {
        const struct vseg *s = &v->segs[i];
        if (s->deleted || s->mem || !s->ndata || !s->live || !s->header_len ||
            pinned(v, s->seq, s->epoch) || /* a snapshot keeps it anyway */
            inherited(v, s->seq))          /* and so does the base's */
            continue;
        double u = (double)s->live / (double)s->ndata;
        if (u < best_u) {
            best_u = u;
            best = i;
        }
    }
    return best;
}

double garbage_ratio(const struct vol *v)
{
    uint64_t data = 0, live = 0;
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (!v->segs[i].deleted && !v->segs[i].mem && !inherited(v, v->segs[i].seq)) {
            data += v->segs[i].ndata;
            live += v->segs[i].live;
        }
    return data ? 1.0 - (double)live / (double)data : 0;
}

/* Seals, uploads and checkpoints, so that what GC freed is deleted. */
static int gc_finish(struct vol *v)
{
    for (int tries = 0; tries < 5; tries++) { /* writers may open segments meanwhile */
        int rc = seal_all(v);
        if (!rc)
            rc = wait_uploads(v);
        if (rc)
            return rc;
        if (!any_open(v) && !v->uploads)
            return write_checkpoint(v);
    }
    return 0;
}

int vol_gc(struct vol *v, double threshold, vol_gc_progress_fn progress, void *arg)
{
    if (v->read_only)
        return -EROFS;
    pthread_mutex_lock(&v->lock);
    while (v->gc_active) { /* the background cleaner is in a pass */
        pthread_mutex_unlock(&v->lock);
        clock_sleep_ms(10);
        pthread_mutex_lock(&v->lock);
    }
    v->gc_active = 1;
    if (threshold <= 0)
        threshold = v->gc_threshold;
    struct vol_gc_progress pr = {0};
    for (uint32_t i = 0; i < v->nsegs; i++) {
        const struct vseg *s = &v->segs[i];
        if (!s->deleted && !s->mem && s->ndata && s->live && s->header_len &&
            (double)s->live / (double)s->ndata < threshold)
            pr.segments_total++;
    }
    int rc = 0;
    int64_t idx;
    while (!rc && pr.segments_done < pr.segments_total && (idx = gc_pick(v, threshold)) >= 0) {
        uint64_t copied = 0;
        rc = gc_segment(v, (uint32_t)idx, &copied);
        if (v->segs[idx].live) /* could not be cleaned (a read failed): do not pick it again */
            break;
        pr.segments_done++;
        pr.bytes_copied += copied;
        if (progress) {
            pthread_mutex_unlock(&v->lock);
            progress(&pr, arg);
            pthread_mutex_lock(&v->lock);
        }
    }
    if (!rc)
        rc = gc_finish(v);
    pr.segments_deleted = v->stats.segments_deleted;
    v->gc_active = 0;
    pthread_mutex_unlock(&v->lock);
    if (progress)
        progress(&pr, arg);
    return rc;
}

/* The background cleaner: a pass when the garbage ratio passes
 * gc_min_garbage, at most gc_rate bytes copied per second. */
void *gc_main(void *arg)
{
    struct vol *v = arg;
    pthread_mutex_lock(&v->lock);
    uint64_t nap = v->gc_interval_ms;
    while (!v->stopping) {
        struct timespec ts;
        clock_deadline(CLOCK_REALTIME, nap, &ts);
        pthread_cond_timedwait(&v->gc_wake, &v->lock, &ts);
        nap = v->gc_interval_ms;
        if (v->stopping || v->failed[0] || v->gc_active || v->replaying ||
            garbage_ratio(v) < v->gc_min_garbage)
            continue;
        int64_t idx = gc_pick(v, v->gc_threshold);
        if (idx < 0)
            continue;
        v->gc_active = 1;
        uint64_t copied = 0;
        gc_segment(v, (uint32_t)idx, &copied); /* a failure is sticky, reported by callers */
        v->gc_active = 0;
        uint64_t pace = v->gc_rate ? copied * 1000 / v->gc_rate : 0;
        nap = pace > nap ? pace : 1; /* go on soon, unless the rate says wait */
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

