/* vol.c - the volume engine: one lock for the state, an I/O thread for the
 * store (io.c), uploads in the background, cached reads.  This file holds
 * the state, the write path, uploads, flush, open and close; the read path,
 * checkpoints and snapshots, GC, the lease and recovery have files of their
 * own (vol_int.h lists them).  The rules below hold across all of them.
 *
 * State (all under v->lock):
 *   segs[]   every segment the map may point into, by index: the map stores
 *            this index, never the seq; an index is never reused.
 *   b, b_idx the open segment (a seg builder) and its index; its blocks are
 *            read from memory until it is sealed and uploaded.
 *   j        the open segment's journal: every write is appended to it.
 *   map      lba -> (segment index, block); live counts per segment are kept
 *            exact through the map's drop callback.
 *
 * Threads: callers (FUSE, NBD, the sealer) take v->lock; every store request
 * goes to the I/O thread, and a caller waits for it with v->lock released
 * (a read miss, a flush, back-pressure), except inside a read-modify-write
 * of partial blocks (v->hold), which must stay atomic.  Whatever is read
 * before such a wait is looked up again after it (segment indexes, never
 * pointers into segs[], are kept across it).
 *
 * Rules (docs/FORMAT.md has the format's; these are the engine's):
 *  1. A write is appended to the builder and the journal before the map
 *     points at it; a read after a write sees it.
 *  2. A sealed segment is uploaded (If-None-Match) before its journal is
 *     removed; a journal is never removed while its data is only local.
 *     Up to MAX_UPLOADS sealed segments upload at once; they stay readable
 *     from memory until their upload has succeeded.
 *  3. A checkpoint is written only when no segment is open, so it covers
 *     exactly the segments up to next_seq - 1, all durable.
 *  4. A failed upload, journal write or checkpoint puts the volume in a
 *     sticky error state: every later write and flush returns -EIO.  The
 *     journal keeps the data for the next open.
 *  5. Recovery replays journal S into segment S itself (a journal holds one
 *     segment's writes), and only when S is the next seq after the gap-free
 *     run in the store; then it looks in the store again, since uploads
 *     finish out of order and S+1 may be there.  A journal after a gap is
 *     kept, not applied; segments after a gap that no journal fills can
 *     never be applied (prefix consistency) and are deleted, loudly.
 *  6. A flush waits for the segments up to the newest one open or sealed
 *     when it began, not for those sealed by other threads meanwhile.
 *  7. GC copies go to their own open segment (the GC slot), and the user's
 *     open segment is sealed before a GC segment is opened: every user
 *     write after a copy lands in a segment with a higher seq, so replaying
 *     segments in seq order never lets a copy undo a newer write.  Only
 *     blocks the map still points at, looked up with the lock held right
 *     before they are appended, are copied.
 *  8. A segment is deleted only when no block of it is live, it is durable
 *     and its seq is covered by a durable checkpoint (which then does not
 *     list it), after every older checkpoint has been deleted, and while no
 *     read is waiting on the store.  Segments at or below the newest
 *     checkpoint that it does not list (left by a crash between a
 *     checkpoint and the deletes) are deleted the same way.
 *  9. A writer holds the volume's lease (epoch in every key it writes) and
 *     records its takeover point (fence.h) before writing; it stops with
 *     the sticky error when it cannot renew in time or finds the lease
 *     taken, and a flush or a delete happens only while lease_ok().
 *     Recovery takes only segments and checkpoints fence_ok() allows.
 * 10. The local state is what was opened: the journal directory (same
 *     device and inode), every open journal still linked at its path, the
 *     cache dir's lock file.  check_local() looks before every new segment
 *     and every flush, and the sealer every 200 ms; a journal write or sync
 *     that fails counts too.  When it breaks, the volume goes into the
 *     sticky error state at once (lose_local): writes and flushes fail, and
 *     what was written but is only in memory is uploaded (drain_local).  A
 *     flush never reports success for data in a journal no replay would
 *     find.  What is not in the store is always told exactly (unsaved()):
 *     in this cache dir's journal, or in memory only and lost at exit.
 * 11. The block cache outlives a close only when it provably matches the
 *     volume at the next open: a clean close (everything durable, the
 *     checkpoint at next_seq - 1) keeps it with a tag of the volume's uuid,
 *     our lease epoch and that checkpoint (cache.c rule 5); the next open
 *     adopts it only if the lease it finds is still ours at that epoch (any
 *     other writer's take bumps it), the newest checkpoint and the end of
 *     the run are the same, and no journal was replayed.  Any doubt drops
 *     it.  Read-only opens never touch it; an encrypted volume's is never
 *     kept (its key lives only in the process).
 */
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
#include "util/le.h"
#include "util/size.h"

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

/* ---- errors ---- */

int fail(struct vol *v, const char *fmt, ...)
{
    if (!v->failed[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->failed, sizeof v->failed, fmt, ap);
        va_end(ap);
        log_error("%s; the volume stops accepting writes", v->failed);
    }
    return -EIO;
}

/* ---- the local state (rule 10) ---- */

/* What was written but would not come back from the store alone: the data
 * of every segment from the first one not durable on (a later one that is
 * durable follows a gap, which recovery cuts off), and whether this cache
 * dir's journal holds what the store lacks (the next open replays it). */
struct unsaved {
    int any;
    uint64_t bytes;
    int64_t since; /* Unix time the oldest of those segments was opened */
    int in_journal;
};

static void unsaved(const struct vol *v, struct unsaved *out)
{
    uint64_t first = UINT64_MAX;
    int in_journal = !v->journal_gone;
    for (int i = 0; i < 2; i++) {
        const struct wseg *w = &v->w[i];
        if (!w->b || !seg_extent_count(w->b))
            continue;
        if (v->segs[w->idx].seq < first)
            first = v->segs[w->idx].seq;
        if (!w->j || journal_failed(w->j))
            in_journal = 0;
    }
    for (const struct upload *u = v->uploads; u; u = u->next) {
        if (v->segs[u->idx].seq < first)
            first = v->segs[u->idx].seq;
        if (!u->j || journal_failed(u->j))
            in_journal = 0;
    }
    memset(out, 0, sizeof *out);
    if (first == UINT64_MAX)
        return;
    out->any = 1;
    out->in_journal = in_journal;
    for (uint32_t i = 0; i < v->nsegs; i++) {
        const struct vseg *s = &v->segs[i];
        if (s->seq < first)
            continue;
        out->bytes += (uint64_t)(s->mem ? seg_data_blocks(s->mem) : s->ndata) * v->bs;
        if (s->opened && (!out->since || s->opened < out->since))
            out->since = s->opened;
    }
}

/* One sentence on what is not in the store and where it is, never more
 * than can be proved. */
static void note(const struct unsaved *u, int fenced, int gone, const char *jdir, char *out,
                 size_t n)
{
    if (!u->any) {
        snprintf(out, n, "%s",
                 fenced ? "everything written is in the store, but the lease was lost: what was "
                          "uploaded after another writer took over is not part of the volume"
                        : "nothing is lost: everything written is in the store");
        return;
    }
    char sz[32], when[40] = "this process started";
    size_format(u->bytes, sz, sizeof sz);
    if (u->since) {
        struct tm tm;
        time_t t = (time_t)u->since;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
    }
    if (u->in_journal)
        snprintf(out, n,
                 "%s written since %s %s not in the store; they are in the journal in %s, "
                 "which the next open with this cache dir replays%s",
                 sz, when, u->bytes ? "are" : "(trims) are", jdir,
                 fenced ? " unless another writer has written the volume since (the lease was "
                          "lost)"
                        : "");
    else if (gone)
        snprintf(out, n,
                 "%s written since %s %s not in the store and in no journal (the journal is "
                 "gone): they are lost when this process ends",
                 sz, when, u->bytes ? "are" : "(trims) are");
    else
        snprintf(out, n,
                 "%s written since %s %s not in the store, and a write or sync of their journal "
                 "failed: what of them the next open with this cache dir replays is not known",
                 sz, when, u->bytes ? "are" : "(trims) are");
}

static void unsaved_text(const struct vol *v, char *out, size_t n)
{
    struct unsaved u;
    unsaved(v, &u);
    note(&u, v->fenced, v->journal_gone, v->jdir ? v->jdir : "", out, n);
}

void vol_unsaved_note(const struct vol_stats *st, const char *jdir, char *out, size_t n)
{
    struct unsaved u = {st->unsaved, st->unsaved_bytes, st->unsaved_since,
                        st->unsaved_in_journal};
    note(&u, st->lease_lost, st->journal_lost, jdir, out, n);
}

/* 1 when drain_local() seals what is open: not after an upload failed
 * (what follows a gap is never applied) or the lease was lost. */
static int may_drain(const struct vol *v)
{
    for (const struct upload *u = v->uploads; u; u = u->next)
        if (u->dead)
            return 0;
    return !v->fenced;
}

int lose_local(struct vol *v, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int first = !v->local_lost, was_failed = v->failed[0] != 0;
    v->local_lost = 1;
    if (!v->failed[0])
        snprintf(v->failed, sizeof v->failed, "%s", why);
    if (first) {
        struct unsaved u;
        char sz[32];
        unsaved(v, &u);
        size_format(u.bytes, sz, sizeof sz);
        int upload = u.any && may_drain(v);
        log_error("%s; %s%s%s%s", why,
                  was_failed ? "the volume was in the error state already"
                             : "the volume stops accepting writes",
                  upload ? "; uploading the " : "", upload ? sz : "",
                  upload ? " written and not yet in the store" : "");
        pthread_cond_signal(&v->wake); /* the sealer drains */
    } else
        log_error("%s", why);
    return -EIO;
}

/* Rule 10: 0 while the local state is the one opened, else -EIO (the
 * volume is then in the error state).  Also drops a block cache whose file
 * was removed or replaced: it still serves correct blocks through its
 * descriptor, but the disk space would never come back. */
int check_local(struct vol *v)
{
    char why[600];
    struct stat st, lk;
    v->local_checked_ms = clock_mono_ms();
    if (v->read_only || !v->jdir)
        return 0;
    if (v->cache && !cache_linked(v->cache, why, sizeof why)) {
        log_warn("%s; the block cache is off until the next mount", why);
        cache_close(v->cache);
        v->cache = NULL;
    }
    if (v->journal_gone)
        return -EIO;
    int gone = 1;
    if (stat(v->jdir, &st) < 0)
        snprintf(why, sizeof why, "the journal directory %s is gone (%s)", v->jdir,
                 strerror(errno));
    else if (st.st_dev != v->jdir_dev || st.st_ino != v->jdir_ino)
        snprintf(why, sizeof why, "the journal directory %s was replaced by another one",
                 v->jdir);
    else {
        gone = 0;
        for (int i = 0; i < 2 && !gone; i++)
            gone = v->w[i].j && !journal_linked(v->w[i].j, why, sizeof why);
        for (struct upload *u = v->uploads; u && !gone; u = u->next)
            gone = u->j && !journal_linked(u->j, why, sizeof why);
    }
    if (gone) {
        v->journal_gone = 1;
        return lose_local(v, "%s", why);
    }
    if (!v->local_lost && v->lock_fd >= 0 &&
        (fstat(v->lock_fd, &lk) < 0 || lk.st_nlink == 0 || stat(v->lock_path, &st) < 0 ||
         st.st_dev != lk.st_dev || st.st_ino != lk.st_ino))
        return lose_local(v, "the lock file %s was removed or replaced: another process could "
                             "now open this volume with this cache dir",
                          v->lock_path);
    return v->local_lost ? -EIO : 0;
}

/* A journal append or sync failed: the local state broke (rule 10). */
int journal_error(struct vol *v, struct journal *j)
{
    if (check_local(v) == 0)
        lose_local(v, "journal: %s", journal_errmsg(j));
    return -EIO;
}

/* ---- the block cache across a clean close (rule 11) ---- */

/* The tag: what the volume was at a clean close, with lease epoch epoch. */
static void cache_tag(const struct vol *v, uint64_t epoch, uint8_t tag[CACHE_TAG_LEN])
{
    memset(tag, 0, CACHE_TAG_LEN);
    memcpy(tag, v->sb.uuid, 16);
    le_put64(tag + 16, epoch);
    le_put64(tag + 24, v->ckpt_seq);
    le_put32(tag + 32, v->ckpt_epoch);
    le_put64(tag + 40, v->next_seq);
}

/* cache_close_keep's names: a durable segment's seq and epoch. */
static int seg_name(void *arg, uint32_t idx, uint64_t *name, uint32_t *epoch)
{
    const struct vol *v = arg;
    if (idx >= v->nsegs || v->segs[idx].mem || v->segs[idx].deleted || !v->segs[idx].live)
        return -1;
    *name = v->segs[idx].seq;
    *epoch = v->segs[idx].epoch;
    return 0;
}

/* Segments by seq, for cache_adopt's lookup. */
struct seg_ref {
    uint64_t seq;
    uint32_t idx;
};

struct seg_lookup {
    const struct vol *v;
    struct seg_ref *r; /* sorted by seq */
};

static int seg_ref_cmp(const void *a, const void *b)
{
    const struct seg_ref *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* cache_adopt's lookup: the index of durable segment (seq, epoch), or -1. */
static int64_t seg_index(void *arg, uint64_t seq, uint32_t epoch)
{
    const struct seg_lookup *l = arg;
    uint32_t lo = 0, hi = l->v->nsegs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->r[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < l->v->nsegs && l->r[lo].seq == seq; lo++) {
        const struct vseg *s = &l->v->segs[l->r[lo].idx];
        if (s->epoch == epoch && !s->mem && !s->deleted)
            return l->r[lo].idx;
    }
    return -1;
}

/* After recovery: adopts the kept cache when rule 11 holds, else drops it. */
static void adopt_cache(struct vol *v)
{
    if (!v->cache || !cache_has_kept(v->cache))
        return;
    uint8_t now[CACHE_TAG_LEN];
    cache_tag(v, v->lease_prev_epoch, now);
    const uint8_t *t = v->kept_tag;
    const char *doubt = NULL;
    if (memcmp(t, v->sb.uuid, 16) != 0)
        doubt = "it is another volume's";
    else if (!v->lease_prev_ours || le_get64(t + 16) != v->lease_prev_epoch)
        doubt = "another writer has held the volume since";
    else if (le_get64(t + 24) != v->ckpt_seq || le_get32(t + 32) != v->ckpt_epoch ||
             le_get64(t + 40) != v->next_seq)
        doubt = "the volume was written since";
    else if (v->stats.journal_records_replayed || v->stats.segments_ignored)
        doubt = "recovery replayed journals";
    else if (memcmp(t, now, CACHE_TAG_LEN) != 0)
        doubt = "its tag does not match";
    if (doubt) {
        cache_drop_kept(v->cache);
        log_info("the block cache of the last close is dropped: %s", doubt);
        return;
    }
    struct seg_lookup l = {v, xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *l.r)};
    for (uint32_t i = 0; i < v->nsegs; i++)
        l.r[i] = (struct seg_ref){v->segs[i].seq, i};
    qsort(l.r, v->nsegs, sizeof *l.r, seg_ref_cmp);
    v->stats.cache_kept_blocks = cache_adopt(v->cache, seg_index, &l);
    free(l.r);
    log_info("the block cache of the last clean close is kept: %" PRIu64 " blocks",
             v->stats.cache_kept_blocks);
}

/* ---- segments table ---- */

/* The volume whose store holds segment seq: this one, or for a clone the
 * snapshot's volume (or its own base, and so on). */
const struct origin *origin_of(const struct vol *v, uint64_t seq)
{
    unsigned i = 0;
    while (i + 1 < v->norigins && seq <= v->origins[i].base_seq)
        i++;
    return &v->origins[i];
}

/* 1 for a clone's segment that belongs to the volume it was cloned from:
 * never cleaned or deleted here (that volume's snapshot keeps it). */
int inherited(const struct vol *v, uint64_t seq)
{
    return seq <= v->sb.base_seq;
}

uint32_t add_seg(struct vol *v, uint64_t seq, uint32_t epoch)
{
    if (v->nsegs == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->segs = xrealloc(v->segs, v->cap * sizeof *v->segs);
    }
    v->segs[v->nsegs] = (struct vseg){.seq = seq, .epoch = epoch};
    return v->nsegs++;
}

static void on_drop(void *arg, uint32_t seg, uint32_t nblocks)
{
    struct vol *v = arg;
    v->segs[seg].live -= nblocks;
}

static uint64_t hdr_mem(const struct seg_hdr *h)
{
    return sizeof *h + (uint64_t)h->nextents * sizeof *h->ext + (uint64_t)h->ndata_blocks * 4;
}

void drop_hdr(struct vol *v, struct vseg *s)
{
    v->hdr_bytes -= hdr_mem(s->hdr);
    seg_hdr_free(s->hdr);
    free(s->hdr);
    s->hdr = NULL;
    v->cached_hdrs--;
}

void cache_hdr(struct vol *v, uint32_t idx, struct seg_hdr *h)
{
    /* bounded: evict round-robin past HDR_CACHE_BYTES */
    while (v->cached_hdrs && v->hdr_bytes + hdr_mem(h) > HDR_CACHE_BYTES) {
        struct vseg *s = &v->segs[v->clock_hand++ % v->nsegs];
        if (s->hdr && s != &v->segs[idx])
            drop_hdr(v, s);
    }
    v->segs[idx].hdr = h;
    v->cached_hdrs++;
    v->hdr_bytes += hdr_mem(h);
}

/* Reads and checks segment idx's header from the store. */
struct seg_hdr *fetch_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen)
{
    struct vseg *s = &v->segs[idx];
    char key[SEG_KEY_SIZE];
    struct buf b = {0};
    uint32_t hlen = 0;
    const struct origin *og = origin_of(v, s->seq);
    seg_key(s->seq, s->epoch, key);
    if (io_get(og->io, key, 0, SEG_FIXED_LEN, &b, err, errlen))
        goto fail;
    if (seg_peek(b.p, b.len, &hlen, err, errlen) != 0)
        goto fail;
    if (hlen > b.len && io_get(og->io, key, 0, hlen, &b, err, errlen))
        goto fail;
    struct seg_hdr *h = xcalloc(1, sizeof *h);
    if (seg_parse_header(b.p, b.len, h, err, errlen) != 0 ||
        seg_check_identity(h, og->uuid, s->seq, s->epoch, v->bs, err, errlen) != 0) {
        free(h);
        goto fail;
    }
    buf_free(&b);
    return h;
fail:
    buf_free(&b);
    return NULL;
}

struct seg_hdr *get_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen)
{
    if (v->segs[idx].hdr)
        return v->segs[idx].hdr;
    struct seg_hdr *h = fetch_hdr(v, idx, err, errlen);
    if (h)
        cache_hdr(v, idx, h);
    return h;
}

/* ---- the open segment ---- */


/* Opens segment next_seq in slot w (rule 7 for the GC slot). */
/* Rule 3 wants a moment with nothing open, which a write load that never
 * pauses does not give: with segments always in flight no checkpoint would
 * be written, so GC would delete nothing and recovery would read every
 * segment since the last one.  So once twice the checkpoint interval has
 * gone by, the writer about to open a user segment makes that moment: no
 * segment may open meanwhile (ckpt_barrier; the others wait in
 * open_builder), it seals and uploads what is open and writes the
 * checkpoint.  Writers pause for one upload and one PUT. */
static int overdue_checkpoint(struct vol *v)
{
    v->ckpt_barrier = 1;
    int rc = seal_all(v);
    if (!rc)
        rc = wait_uploads(v); /* its reap writes the checkpoint once nothing is in flight */
    if (!rc && !any_open(v) && !v->uploads && v->since_ckpt)
        rc = write_checkpoint(v);
    v->ckpt_barrier = 0;
    pthread_cond_broadcast(&v->ckpt_done);
    v->stats.checkpoints_forced++;
    return rc;
}

int open_builder(struct vol *v, struct wseg *w)
{
    char err[512];
    for (;;) { /* while an overdue checkpoint is written, nothing opens */
        if (w->b)
            return 0;
        if (!v->ckpt_barrier)
            break;
        pthread_cond_wait(&v->ckpt_done, &v->lock);
    }
    if (w == &v->w[W_USER] && !v->replaying && !v->read_only && !v->hold &&
        v->since_ckpt >= 2 * v->ckpt_every) {
        int rc = overdue_checkpoint(v);
        if (rc)
            return rc;
    }
    if (w == &v->w[W_GC])
        while (v->w[W_USER].b) { /* rule 7; seal may wait with the lock released */
            int rc = seal(v, &v->w[W_USER]);
            if (rc)
                return rc;
        }
    if (!v->replaying) { /* rule 10: a journal a replay would find, or no segment */
        if (check_local(v))
            return -EIO;
        if (journal_create(v->jdir, v->sb.uuid, v->writer_id, v->next_seq, v->epoch, v->bs,
                           v->keys ? v->keys->local : NULL, &w->j, err, sizeof err) < 0)
            return check_local(v) ? -EIO : lose_local(v, "journal: %s", err);
    }
    w->b = seg_builder_new(v->sb.uuid, v->next_seq, v->epoch, v->bs, v->seg_blocks);
    if (!w->b) {
        journal_close(w->j);
        w->j = NULL;
        return fail(v, "cannot start segment %" PRIu64, v->next_seq);
    }
    if (v->zstd_level)
        seg_builder_set_zstd(w->b, v->zstd_level);
    w->idx = add_seg(v, v->next_seq, v->epoch);
    v->segs[w->idx].mem = w->b; /* read from memory until uploaded */
    v->segs[w->idx].opened = (int64_t)time(NULL);
    w->opened_ms = clock_mono_ms();
    v->next_seq++;
    return 0;
}

int any_open(const struct vol *v)
{
    return v->w[W_USER].b || v->w[W_GC].b;
}


/* Waits for any I/O to finish after gen was read: with the lock released,
 * unless a read-modify-write holds it (v->hold), which must stay atomic. */
static void wait_io(struct vol *v, uint64_t gen)
{
    if (v->hold) {
        io_wait_change(v->io, gen, 1000);
        return;
    }
    pthread_mutex_unlock(&v->lock);
    io_wait_change(v->io, gen, 1000);
    pthread_mutex_lock(&v->lock);
}

/* Handles finished uploads (rule 2); checkpoints when nothing is in flight. */
static int reap(struct vol *v)
{
    char err[STORE_ERRMSG_MAX];
    struct upload **pp = &v->uploads;
    while (*pp) {
        struct upload *u = *pp;
        if (u->dead || !io_done(v->io, &u->q)) {
            pp = &u->next;
            continue;
        }
        struct vseg *s = &v->segs[u->idx];
        const void *obj = u->q.r.data;
        int applied = u->q.r.err == STORE_OK;
        if (u->q.r.err == STORE_EPRECOND && u->q.r.maybe_applied) {
            /* our own earlier attempt may be what is there: compare */
            struct buf got = {0};
            applied = io_get(v->io, u->key, 0, 0, &got, err, sizeof err) == STORE_OK &&
                      got.len == u->len && memcmp(got.p, obj, u->len) == 0;
            buf_free(&got);
        }
        if (!applied) {
            const char *why = u->q.r.err == STORE_EPRECOND
                                  ? "another writer made a segment with this seq"
                                  : u->q.r.errmsg;
            if (v->failed[0]) /* fail() reports only the first error */
                log_error("upload of segment %" PRIu64 " failed: %s", s->seq, why);
            fail(v, "upload of segment %" PRIu64 " failed: %s", s->seq, why);
            if (u->j)
                journal_sync(u->j); /* keep what we have for the next open */
            u->dead = 1;
            v->nuploads--;
            v->upload_bytes -= u->len;
            pp = &u->next;
            continue;
        }
        struct seg_hdr *h = xcalloc(1, sizeof *h);
        if (seg_parse_header(obj, u->len, h, err, sizeof err) != 0) {
            free(h);
            u->dead = 1;
            v->nuploads--;
            v->upload_bytes -= u->len;
            return fail(v, "segment %" PRIu64 " we sealed does not parse: %s", s->seq, err);
        }
        s->header_len = h->header_len;
        s->ndata = h->ndata_blocks;
        cache_hdr(v, u->idx, h);
        if (v->cache && s->ndata) /* recently written data is likely read again */
            cache_put(v->cache, u->idx, 0, s->ndata, seg_block(u->b, 0));
        s->mem = NULL;
        v->stats.segments_uploaded++;
        v->stats.bytes_uploaded += u->len;
        v->stats.data_bytes_sealed += (uint64_t)s->ndata * v->bs;
        v->stats.data_bytes_stored += u->len - h->header_len;
        if (u->j) {
            journal_close(u->j);
            if (!v->journal_gone && journal_remove(v->jdir, s->seq, err, sizeof err) < 0)
                log_warn("journal of segment %" PRIu64 ": %s", s->seq, err);
        }
        store_req_free(&u->q.r);
        seg_builder_free(u->b);
        *pp = u->next;
        v->nuploads--;
        v->upload_bytes -= u->len;
        free(u);
        v->since_ckpt++;
    }
    if (v->failed[0])
        return -EIO;
    if (!v->uploads && !any_open(v) && !v->replaying && v->since_ckpt >= v->ckpt_every)
        return write_checkpoint(v);
    return 0;
}

/* 1 while a live upload of a segment with seq <= upto is in flight. */
int uploading(const struct vol *v, uint64_t upto)
{
    for (const struct upload *u = v->uploads; u; u = u->next)
        if (!u->dead && v->segs[u->idx].seq <= upto)
            return 1;
    return 0;
}

/* Waits until every segment with seq <= upto is durable (uploads sealed by
 * other threads meanwhile are not waited for); -EIO if an upload failed. */
static int wait_uploads_upto(struct vol *v, uint64_t upto)
{
    for (;;) {
        uint64_t gen = io_gen(v->io);
        int rc = reap(v);
        save_stats(v);
        if (v->failed[0])
            return -EIO;
        if (!uploading(v, upto))
            return rc;
        wait_io(v, gen);
    }
}

int wait_uploads(struct vol *v)
{
    return wait_uploads_upto(v, UINT64_MAX);
}

/* Rule 10, once the local state is lost: seals what is open (if
 * may_drain) and waits for every upload, so what was only in memory is in
 * the store if it can be.  The first call logs what is not in the store. */
static void drain_local(struct vol *v)
{
    if (may_drain(v))
        while (any_open(v)) /* seal() clears the slot even when it returns -EIO */
            seal(v, v->w[W_USER].b ? &v->w[W_USER] : &v->w[W_GC]);
    for (;;) {
        uint64_t gen = io_gen(v->io);
        reap(v);
        save_stats(v);
        if (!uploading(v, UINT64_MAX))
            break;
        wait_io(v, gen);
    }
    if (!v->drained) {
        char t[1200];
        unsaved_text(v, t, sizeof t);
        log_error("after the error (%s): %s", v->failed, t);
        v->drained = 1;
    }
}

/* Seals the open segment and starts its upload (rule 2); waits while
 * max_uploads or max_upload_bytes are already under way (back-pressure). */
int seal(struct vol *v, struct wseg *w)
{
    if (!w->b)
        return 0;
    if (v->failed[0] && !v->local_lost) /* rule 10: a lost journal still lets memory out */
        return -EIO;
    struct vseg *s = &v->segs[w->idx];
    struct upload *u = xcalloc(1, sizeof *u);
    const void *obj = seg_seal(w->b, (int64_t)time(NULL), &u->len);
    u->idx = w->idx;
    u->b = w->b;
    u->j = w->j;
    seg_key(s->seq, s->epoch, u->key);
    u->q.r = (struct store_req){.op = STORE_PUT, .key = u->key, .data = obj, .size = u->len,
                                .cond = STORE_IF_NONE_MATCH};
    w->b = NULL;
    w->j = NULL;
    struct upload **pp = &v->uploads;
    while (*pp)
        pp = &(*pp)->next;
    *pp = u;
    v->nuploads++;
    v->upload_bytes += u->len;
    io_submit(v->io, &u->q);
    for (;;) { /* back-pressure */
        uint64_t gen = io_gen(v->io);
        int rc = reap(v);
        if (rc || (v->nuploads < v->max_uploads && v->upload_bytes < v->max_upload_bytes))
            return rc;
        save_stats(v);
        wait_io(v, gen);
    }
}

/* ---- writing ---- */

int write_blocks(struct vol *v, uint64_t lba, uint64_t n, const char *data)
{
    struct wseg *w = &v->w[W_USER];
    while (n) {
        int rc = open_builder(v, w);
        if (rc)
            return rc;
        uint32_t room = seg_room(w->b);
        uint32_t k = n < room ? (uint32_t)n : room;
        int64_t first = k ? seg_add_data(w->b, lba, k, data) : -1;
        if (first < 0) { /* no room for data or extents: next segment */
            if (seg_extent_count(w->b) == 0)
                return fail(v, "segment %" PRIu64 " refuses a write", v->segs[w->idx].seq);
            if ((rc = seal(v, w)))
                return rc;
            continue;
        }
        if (w->j && journal_append_data(w->j, lba, k, data) < 0)
            return journal_error(v, w->j);
        map_set(v->map, lba, k, w->idx, (uint32_t)first);
        v->segs[w->idx].live += k;
        lba += k;
        n -= k;
        data += (size_t)k * v->bs;
        if (seg_full(w->b) && (rc = seal(v, w)))
            return rc;
    }
    return 0;
}

int zero_blocks(struct vol *v, uint64_t lba, uint64_t n)
{
    struct wseg *w = &v->w[W_USER];
    while (n) {
        int rc = open_builder(v, w);
        if (rc)
            return rc;
        uint32_t k = n > (1u << 30) ? (1u << 30) : (uint32_t)n;
        if (seg_add_zero(w->b, lba, k) < 0) {
            if (seg_extent_count(w->b) == 0)
                return fail(v, "segment %" PRIu64 " refuses a trim", v->segs[w->idx].seq);
            if ((rc = seal(v, w)))
                return rc;
            continue;
        }
        if (w->j && journal_append_zero(w->j, lba, k) < 0)
            return journal_error(v, w->j);
        map_unset(v->map, lba, k);
        lba += k;
        n -= k;
    }
    return 0;
}

/* Seals both open segments (user first: rule 7 keeps GC copies below it). */
int seal_all(struct vol *v)
{
    int rc = 0;
    while (!rc && any_open(v))
        rc = seal(v, v->w[W_USER].b ? &v->w[W_USER] : &v->w[W_GC]);
    return rc;
}

static int flush_locked(struct vol *v)
{
    check_local(v); /* rule 10: never a flush into a journal nobody will replay */
    if (v->local_lost) {
        drain_local(v); /* what can still be saved is, before the error is returned */
        return -EIO;
    }
    if (v->failed[0])
        return -EIO;
    if (v->durability_local) {
        for (int i = 0; i < 2; i++)
            if (v->w[i].j && journal_sync(v->w[i].j) < 0)
                return journal_error(v, v->w[i].j);
        return check_local(v); /* the sync was of the files we still find */
    }
    uint64_t upto = v->next_seq - 1; /* the open segments' seqs, or the last sealed */
    int rc = seal_all(v);
    if (!rc)
        rc = wait_uploads_upto(v, upto);
    if (!rc && v->has_lease && !lease_ok(v)) /* rule 9: durable only if still ours */
        rc = fail(v, "the writer lease ran out before the flush completed");
    return rc;
}

/* The checks every change shares: 1 to go on, else the call's result. */
static int change_ok(const struct vol *v, uint64_t off, uint64_t len)
{
    if (v->read_only)
        return -EROFS;
    if (!in_range(v, off, len))
        return -EINVAL;
    return len ? 1 : 0;
}

int vol_write(struct vol *v, const void *buf, uint64_t off, size_t len, int fua)
{
    int ok = change_ok(v, off, len);
    if (ok <= 0)
        return ok;
    pthread_mutex_lock(&v->lock);
    int rc = v->failed[0] ? -EIO : 0;
    uint64_t first = off / v->bs, last = (off + len - 1) / v->bs, n = last - first + 1;
    if (!rc && off % v->bs == 0 && len % v->bs == 0)
        rc = write_blocks(v, first, n, buf);
    else if (!rc) {
        /* read-modify-write of the partial blocks at the edges, atomic: the
         * lock stays held while the edges are read (v->hold), or a write to
         * another part of an edge block in between would be lost */
        char *tmp = xmalloc(n * v->bs);
        v->hold++;
        if (off % v->bs)
            rc = read_blocks(v, first, 1, tmp);
        if (!rc && (off + len) % v->bs && (n > 1 || off % v->bs == 0))
            rc = read_blocks(v, last, 1, tmp + (n - 1) * v->bs);
        if (!rc) {
            memcpy(tmp + (off - first * v->bs), buf, len);
            rc = write_blocks(v, first, n, tmp);
        }
        v->hold--;
        free(tmp);
    }
    if (!rc)
        v->stats.bytes_written += len;
    if (!rc && fua)
        rc = flush_locked(v);
    pthread_mutex_unlock(&v->lock);
    return rc;
}

/* Zeros a part of one block by read-modify-write. */
static int write_zeros(struct vol *v, uint64_t off, uint64_t len)
{
    if (!len)
        return 0;
    char *zero = xcalloc(1, len);
    int rc = vol_write(v, zero, off, len, 0);
    free(zero);
    return rc;
}

int vol_trim(struct vol *v, uint64_t off, uint64_t len)
{
    int ok = change_ok(v, off, len);
    if (ok <= 0)
        return ok;
    uint64_t a = (off + v->bs - 1) / v->bs, z = (off + len) / v->bs; /* whole blocks [a, z) */
    if (a >= z) /* inside one block */
        return write_zeros(v, off, len);
    int rc = write_zeros(v, off, a * v->bs - off);
    if (!rc)
        rc = write_zeros(v, z * v->bs, off + len - z * v->bs);
    if (rc)
        return rc;
    pthread_mutex_lock(&v->lock);
    rc = v->failed[0] ? -EIO : zero_blocks(v, a, z - a);
    pthread_mutex_unlock(&v->lock);
    return rc;
}

int vol_flush(struct vol *v)
{
    if (v->read_only)
        return 0;
    pthread_mutex_lock(&v->lock);
    int rc = flush_locked(v);
    pthread_mutex_unlock(&v->lock);
    return rc;
}

/* ---- the sealer: a segment is never left open longer than the seal age ---- */

static void *sealer_main(void *arg)
{
    struct vol *v = arg;
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        struct timespec ts;
        uint64_t step = v->nuploads || v->nra ? 10 : v->seal_age_ms / 4 ? v->seal_age_ms / 4 : 1;
        clock_deadline(CLOCK_REALTIME, step, &ts);
        pthread_cond_timedwait(&v->wake, &v->lock, &ts);
        if (!v->stopping && !v->journal_gone && clock_mono_ms() - v->local_checked_ms >= 200)
            check_local(v); /* rule 10 */
        if (!v->stopping && v->local_lost && !v->drained)
            drain_local(v);
        if (!v->stopping && (v->nuploads || v->nra)) { /* finish uploads and read-ahead */
            reap(v);
            reap_readahead(v, 0, 0, 0);
        }
        for (int i = 0; i < 2; i++) /* a failure is sticky and reported by the next call */
            if (!v->stopping && v->w[i].b && !v->failed[0] &&
                clock_mono_ms() - v->w[i].opened_ms >= v->seal_age_ms)
                seal(v, &v->w[i]);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

/* Stops the sealer and the cleaner. */
static void stop_sealer(struct vol *v)
{
    if (!v->sealer_running && !v->gc_running)
        return;
    pthread_mutex_lock(&v->lock);
    v->stopping = 1;
    pthread_cond_signal(&v->wake);
    pthread_cond_signal(&v->gc_wake);
    pthread_mutex_unlock(&v->lock);
    if (v->sealer_running)
        pthread_join(v->sealer, NULL);
    if (v->gc_running)
        pthread_join(v->gc_thread, NULL);
    v->sealer_running = v->gc_running = 0;
}

/* ---- open and close ---- */


/* One writer per cache dir and volume on this host: an flock on
 * CACHE_DIR/UUID/lock, holding the writer's pid for the error message.
 * (Writers on other hosts are kept out by the store lease.) */
static int take_local_lock(struct vol *v, const char *cache_dir, const char *uuid,
                           const char *url, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s/lock", cache_dir, uuid);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen,
                 "volume %s is in use by another buoy process on this host (pid %s, lock %s); "
                 "unmount or stop it first",
                 url, pid[0] ? pid : "unknown", path);
        close(fd);
        free(path);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        log_warn("%s: cannot record the pid: %s", path, strerror(errno));
    v->lock_path = path;
    v->lock_fd = fd;
    return 0;
}

static void free_vol(struct vol *v)
{
    stop_sealer(v);
    stop_lease(v);
    if (v->lease_st)
        store_close(v->lease_st);
    v->lease_st = NULL;
    fence_free(&v->fences);
    io_stop(v->io); /* waits for what is in flight: those requests point into v */
    v->io = NULL;
    close_origins(v);
    if (v->st)
        store_close(v->st);
    v->st = NULL;
    while (v->ra) {
        struct fetch *f = v->ra;
        v->ra = f->next;
        free_fetch_reqs(f);
        free(f);
    }
    cache_close(v->cache);
    while (v->uploads) {
        struct upload *u = v->uploads;
        v->uploads = u->next;
        if (u->j)
            journal_close(u->j); /* kept: its segment may not be durable */
        seg_builder_free(u->b);
        store_req_free(&u->q.r);
        free(u);
    }
    for (int i = 0; i < 2; i++) {
        if (v->w[i].b)
            seg_builder_free(v->w[i].b);
        if (v->w[i].j)
            journal_close(v->w[i].j);
    }
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].hdr) {
            seg_hdr_free(v->segs[i].hdr);
            free(v->segs[i].hdr);
        }
    free(v->segs);
    if (v->map)
        map_free(v->map);
    free(v->jdir);
    if (v->lock_fd >= 0)
        close(v->lock_fd); /* releases the flock */
    free(v->lock_path);
    free(v->orphans);
    free(v->pins);
    free(v->snapshot);
    if (v->keys)
        keys_wipe(v->keys);
    free(v->keys);
    pthread_cond_destroy(&v->wake);
    pthread_cond_destroy(&v->ckpt_done);
    pthread_cond_destroy(&v->gc_wake);
    pthread_cond_destroy(&v->lease_wake);
    pthread_mutex_destroy(&v->lease_lock);
    pthread_mutex_destroy(&v->snap_lock);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

struct store *vol_wrap_store(struct vol *v, struct store *s, char *err, size_t errlen)
{
    if (!v->keys)
        return s;
    struct store *c = store_crypt_open(s, v->keys->data, v->sb.uuid, err, errlen);
    if (!c)
        store_close(s);
    return c;
}

/* Reads and parses the superblock (synchronously: before the I/O thread
 * starts); for an encrypted volume, unlocks its keys and puts the
 * encryption layer on top of v->st. */
int vol_read_super(struct store *s, const char *url, const struct vol_opts *o,
                   struct vol_super *sb, struct buf *text, struct vol_keys *k, int *keyed,
                   enum store_err *e, char *err, size_t errlen)
{
    char why[STORE_ERRMSG_MAX];
    if (keyed)
        *keyed = 0;
    *e = store_get(s, SUPER_KEY, 0, 0, text, NULL, why, sizeof why);
    if (*e == STORE_ENOTFOUND)
        snprintf(err, errlen, "no volume at %s; make one with buoy create", url);
    else if (*e)
        snprintf(err, errlen, "%s", why);
    else if (super_parse(text->p, text->len, sb, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s/%s: %s", url, SUPER_KEY, why);
        *e = STORE_EFATAL;
    } else if (k && super_encrypted(sb)) {
        if (keys_unlock(sb, text->p, o->passphrase_file, url, k, err, errlen) < 0)
            *e = STORE_EAUTH;
        else
            *keyed = 1;
    } else if (k && o->passphrase_file) {
        snprintf(err, errlen, "%s is not encrypted: drop --passphrase-file", url);
        *e = STORE_EFATAL;
    }
    return *e ? -1 : 0;
}

static int read_super(struct vol *v, const char *url, const struct vol_opts *o, struct buf *sbuf,
                      char *err, size_t errlen)
{
    struct vol_keys k;
    int keyed;
    enum store_err e;
    if (vol_read_super(v->st, url, o, &v->sb, sbuf, &k, &keyed, &e, err, errlen) < 0)
        return -1;
    if (!keyed)
        return 0;
    v->keys = xmalloc(sizeof *v->keys);
    *v->keys = k;
    keys_wipe(&k);
    v->st = vol_wrap_store(v, v->st, err, errlen);
    return v->st ? 0 : -1;
}

struct vol *vol_open(const char *url, const struct vol_opts *o, char *err, size_t errlen)
{
    /* Segment buffers are 8 MiB: with glibc's sliding mmap threshold, freed
     * ones would stay in the heap and the daemon's memory would only grow
     * (measured: 236 MiB peak after 1 GiB of writes, 60 MiB with this). */
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
    struct vol *v = xcalloc(1, sizeof *v);
    char *base = NULL; /* url without @NAME */
    struct buf sbuf = {0};
    char why[STORE_ERRMSG_MAX];
    pthread_mutex_init(&v->lock, NULL);
    pthread_mutex_init(&v->snap_lock, NULL);
    pthread_cond_init(&v->wake, NULL);
    pthread_cond_init(&v->ckpt_done, NULL);
    pthread_cond_init(&v->gc_wake, NULL);
    pthread_mutex_init(&v->lease_lock, NULL);
    pthread_cond_init(&v->lease_wake, NULL);
    v->lock_fd = -1;
    v->gc_on = o->gc;
    v->gc_threshold = o->gc_threshold > 0 ? o->gc_threshold : 0.5;
    v->gc_min_garbage = o->gc_min_garbage > 0 ? o->gc_min_garbage : 0.25;
    v->gc_rate = o->gc_rate ? o->gc_rate : 32u << 20;
    v->gc_interval_ms = o->gc_interval_ms > 0 ? (uint32_t)o->gc_interval_ms : 1000;

    v->read_only = o->read_only;
    /* URL@NAME: snapshot NAME of the volume at URL, read-only */
    const char *at = strrchr(url, '@');
    if (at && !strchr(at, '/')) {
        if (!snap_name_ok(at + 1)) {
            snprintf(err, errlen, "'%s' is not a snapshot name", at + 1);
            goto fail;
        }
        v->snapshot = xstrdup(at + 1);
        base = xstrdup(url);
        base[at - url] = '\0';
        url = base;
        v->read_only = 1;
    }
    v->seal_age_ms = o->seal_age_ms > 0 ? (uint32_t)o->seal_age_ms : 1000;
    if (!o->cache_dir && !v->read_only) {
        snprintf(err, errlen, "no cache directory given");
        goto fail;
    }
    v->st = store_open(url, &o->store, err, errlen);
    if (!v->st)
        goto fail;
    if (read_super(v, url, o, &sbuf, err, errlen) < 0)
        goto fail;
    v->io = io_start(v->st); /* drives v->st, the encryption layer included, from now on */
    v->bs = v->sb.block_size;
    v->nblocks = v->sb.size / v->bs;
    if (open_origins(v, o, err, errlen) < 0)
        goto fail;
    v->seg_blocks = v->sb.segment_size / v->bs;
    v->durability_local = o->durability_local;
    v->ckpt_every = o->checkpoint_every > 0 ? (uint32_t)o->checkpoint_every : 64;
    v->zstd_level = super_zstd_level(&v->sb) > 0 ? super_zstd_level(&v->sb) : 0;
    v->max_uploads = o->max_uploads > 0 ? (unsigned)o->max_uploads : DEFAULT_UPLOADS;
    v->max_upload_bytes = o->max_upload_bytes ? o->max_upload_bytes : DEFAULT_UPLOAD_BYTES;
    v->next_seq = 1;
    v->map = map_create(on_drop, v);
    if (getrandom(v->writer_id, sizeof v->writer_id, 0) != (ssize_t)sizeof v->writer_id)
        memset(v->writer_id, 0x5a, sizeof v->writer_id);
    if (!v->read_only) {
        char uuid[37];
        super_uuid_str(v->sb.uuid, uuid);
        v->jdir = xasprintf("%s/%s/journal", o->cache_dir, uuid);
        struct stat jst;
        if (path_mkdirs(v->jdir, 0700) < 0 || stat(v->jdir, &jst) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", v->jdir, strerror(errno));
            goto fail;
        }
        v->jdir_dev = jst.st_dev; /* rule 10: what must stay there */
        v->jdir_ino = jst.st_ino;
        if (take_local_lock(v, o->cache_dir, uuid, url, err, errlen) < 0)
            goto fail;
        if (o->cache_size != VOL_NO_CACHE) {
            char *path = xasprintf("%s/%s/blocks", o->cache_dir, uuid), kw[200] = "";
            uint64_t bytes = o->cache_size ? o->cache_size : DEFAULT_CACHE_BYTES;
            v->cache = v->keys ? cache_open(path, bytes, v->bs, 1, err, errlen)
                               : cache_open_kept(path, bytes, v->bs, v->kept_tag, kw, sizeof kw,
                                                 err, errlen);
            if (v->cache && !v->keys && !cache_has_kept(v->cache))
                log_debug("%s: no block cache kept: %s", path, kw);
            free(path);
            if (!v->cache)
                goto fail;
        }
    }
    if (v->read_only)
        v->epoch = UINT32_MAX; /* every epoch the fences allow */
    else if (take_lease(v, url, o, o->cache_dir, err, errlen) < 0)
        goto fail;
    if (v->has_lease) { /* renewals start now: recovery can take longer than the lease */
        if (pthread_create(&v->lease_thread, NULL, lease_main, v) != 0) {
            snprintf(err, errlen, "cannot start the lease thread");
            goto fail;
        }
        v->lease_running = 1;
    }
    /* recovery runs alone, but under the lock, which its waits release */
    pthread_mutex_lock(&v->lock);
    /* The fence goes at the end of the run: after the scan when we took the
     * lease from another writer (its later uploads are fenced off); after
     * our own journals are replayed when the last writer was us or nobody
     * (segments our crashed self uploaded out of order are ours). */
    int fence_early = !v->read_only && !v->lease_from_self;
    int rrc = v->snapshot ? load_snapshot(v, v->snapshot, err, errlen) < 0
              : load_fences(v, err, errlen) < 0 || load_checkpoint(v, err, errlen) < 0 ||
              (!v->read_only && load_pins(v, err, errlen) < 0) ||
              scan_segments(v, err, errlen) < 0 ||
              (fence_early && write_fence(v, err, errlen) < 0) ||
              (!v->read_only && replay_journals(v, err, errlen) < 0);
    if (!rrc && !v->snapshot) /* a snapshot's later segments are the volume's, not a gap */
        report_gap(v);
    if (!rrc && !v->read_only && !fence_early && write_fence(v, err, errlen) < 0)
        rrc = 1;
    if (!rrc && !v->read_only)
        adopt_cache(v); /* rule 11, before anything is cached */
    if (!rrc) {
        if (!v->read_only)
            find_orphans(v);
        if (!v->read_only && v->since_ckpt >= v->ckpt_every && write_checkpoint(v) < 0) {
            snprintf(err, errlen, "%s", v->failed);
            rrc = 1;
        }
    }
    pthread_mutex_unlock(&v->lock);
    if (rrc)
        goto fail;
    buf_free(&sbuf);
    if (!v->read_only) {
        if (pthread_create(&v->sealer, NULL, sealer_main, v) != 0) {
            snprintf(err, errlen, "cannot start the sealer thread");
            goto fail;
        }
        v->sealer_running = 1;
        if (v->gc_on) {
            if (pthread_create(&v->gc_thread, NULL, gc_main, v) != 0) {
                snprintf(err, errlen, "cannot start the garbage collector thread");
                goto fail;
            }
            v->gc_running = 1;
        }
    }
    free(base);
    return v;
fail:
    buf_free(&sbuf);
    free(base);
    if (v->has_lease) { /* nothing was acknowledged: let the next writer in at once */
        stop_lease(v);
        lease_release(&v->lease, why, sizeof why);
    }
    free_vol(v);
    return NULL;
}

int vol_close_report(struct vol *v, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (v->read_only) {
        free_vol(v);
        return 0;
    }
    stop_sealer(v);
    pthread_mutex_lock(&v->lock);
    check_local(v); /* rule 10, even after another error: is the journal still there? */
    int rc, release = 0;
    if (v->local_lost) {
        /* the error stays, but what memory holds goes to the store, and
         * when that is everything, the checkpoint and the lease too */
        struct unsaved u;
        drain_local(v);
        unsaved(v, &u);
        rc = -EIO;
        if (!u.any && !v->fenced && !any_open(v) && !v->uploads && v->has_lease &&
            lease_ok(v) && (!v->since_ckpt || write_checkpoint(v) == 0))
            release = 1;
    } else {
        rc = v->failed[0] ? -EIO : seal_all(v);
        if (!rc)
            rc = wait_uploads(v);
        if (!rc && v->since_ckpt)
            rc = write_checkpoint(v);
        if (!rc && v->has_lease && !lease_ok(v))
            rc = fail(v, "the writer lease ran out before the close completed");
        release = !rc;
    }
    if (rc) {
        char t[1200];
        unsaved_text(v, t, sizeof t);
        if (why)
            snprintf(why, whylen, "%s; %s", v->failed, t);
        else
            log_error("closing the volume: %s; %s", v->failed, t);
    }
    pthread_mutex_unlock(&v->lock);
    stop_lease(v);
    if (release && v->has_lease) { /* everything is in the store: the next writer need not wait */
        char lw[STORE_ERRMSG_MAX];
        if (lease_release(&v->lease, lw, sizeof lw) != LEASE_OK)
            log_warn("releasing the writer lease: %s (the next writer waits for it to run out)",
                     lw);
    }
    if (!rc && v->cache && !v->keys && v->has_lease && v->next_seq == v->ckpt_seq + 1) {
        /* rule 11: a clean close, everything durable, the checkpoint at the end */
        uint8_t tag[CACHE_TAG_LEN];
        char cw[512];
        cache_tag(v, v->epoch, tag);
        if (cache_close_keep(v->cache, tag, seg_name, v, cw, sizeof cw) < 0)
            log_warn("the block cache is not kept for the next open: %s", cw);
        v->cache = NULL;
    }
    free_vol(v);
    return rc;
}

int vol_close(struct vol *v)
{
    return vol_close_report(v, NULL, 0);
}

void vol_abandon(struct vol *v)
{
    free_vol(v);
}

uint64_t vol_size(const struct vol *v)
{
    return v->sb.size;
}

uint32_t vol_block_size(const struct vol *v)
{
    return v->bs;
}

const char *vol_error(const struct vol *v)
{
    return v->failed;
}

const char *vol_journal_dir(const struct vol *v)
{
    return v->jdir ? v->jdir : "";
}

void vol_get_info(struct vol *v, struct vol_info *out)
{
    pthread_mutex_lock(&v->lock);
    memset(out, 0, sizeof *out);
    memcpy(out->uuid, v->sb.uuid, 16);
    out->size = v->sb.size;
    out->block_size = v->bs;
    out->segment_size = v->sb.segment_size;
    out->created = v->sb.created;
    snprintf(out->compression, sizeof out->compression, "%s", v->sb.compression);
    snprintf(out->base, sizeof out->base, "%s", v->sb.base);
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (inherited(v, v->segs[i].seq) && v->segs[i].live) {
            out->base_segments++;
            out->base_bytes += (uint64_t)v->segs[i].live * v->bs;
        }
    out->next_seq = v->next_seq;
    for (uint32_t i = 0; i < v->nsegs; i++) {
        out->live_segments += v->segs[i].live > 0;
        out->live_bytes += (uint64_t)v->segs[i].live * v->bs;
        out->known_data_bytes += (uint64_t)v->segs[i].ndata * v->bs;
    }
    out->extents = map_count(v->map);
    out->map_bytes = map_mem_bytes(v->map);
    pthread_mutex_unlock(&v->lock);
}

/* Computes the stats; v->lock is held. */
static void compute_stats(struct vol *v, struct vol_stats *out)
{
    *out = v->stats;
    io_get_stats(v->io, &out->store);
    for (unsigned i = 1; i < v->norigins; i++) { /* a clone's reads of its base */
        struct store_stats b;
        io_get_stats(v->origins[i].io, &b);
        for (int k = 0; k < STORE_NOPS; k++)
            out->store.requests[k] += b.requests[k];
        for (int k = 0; k < STORE_NERR; k++)
            out->store.errors[k] += b.errors[k];
        out->store.bytes_down += b.bytes_down;
        out->store.retries += b.retries;
    }
    out->extents = map_count(v->map);
    out->map_bytes = map_mem_bytes(v->map);
    out->pending_bytes = 0;
    out->journal_bytes = 0;
    for (int i = 0; i < 2; i++)
        if (v->w[i].b) {
            out->pending_bytes += (uint64_t)seg_data_blocks(v->w[i].b) * v->bs;
            out->journal_bytes += v->w[i].j ? journal_size(v->w[i].j) : 0;
        }
    for (struct upload *u = v->uploads; u; u = u->next)
        out->pending_bytes += (uint64_t)seg_data_blocks(u->b) * v->bs;
    out->request_cost = store_stats_cost(&out->store);
    out->upload_bytes_in_flight = v->upload_bytes;
    out->write_amplification =
        v->stats.bytes_written ? (double)v->stats.bytes_uploaded / (double)v->stats.bytes_written : 0;
    if (v->cache) {
        struct cache_stats cs;
        cache_get_stats(v->cache, &cs);
        out->cache_bytes = cs.used * v->bs;
        out->cache_capacity = cs.slots * v->bs;
        out->cache_corrupt_blocks = cs.corrupt;
        out->cache_mem_bytes = cache_mem_bytes(v->cache);
    }
    out->garbage_ratio = garbage_ratio(v);
    out->compression_ratio = out->data_bytes_stored ? (double)out->data_bytes_sealed /
                                                           (double)out->data_bytes_stored
                                                     : 1.0;
    uint64_t looked = out->cache_hit_blocks + out->cache_miss_blocks;
    out->cache_hit_ratio = looked ? (double)out->cache_hit_blocks / (double)looked : 0;
    out->error = v->failed[0] != 0;
    struct unsaved u;
    unsaved(v, &u);
    out->unsaved = u.any;
    out->unsaved_bytes = u.bytes;
    out->unsaved_since = u.since;
    out->unsaved_in_journal = u.any && u.in_journal;
    out->journal_lost = v->journal_gone;
    out->lease_lost = v->fenced;
}

/* Records the stats for vol_get_stats callers that find the lock busy. */
void save_stats(struct vol *v)
{
    struct vol_stats st;
    compute_stats(v, &st);
    pthread_mutex_lock(&v->snap_lock);
    v->snap = st;
    pthread_mutex_unlock(&v->snap_lock);
}

void vol_get_stats(struct vol *v, struct vol_stats *out)
{
    struct timespec ts;
    clock_deadline(CLOCK_REALTIME, 200, &ts);
    if (pthread_mutex_timedlock(&v->lock, &ts) == 0) {
        compute_stats(v, out);
        pthread_mutex_unlock(&v->lock);
        return;
    }
    /* busy (a long flush): the numbers as of its last progress */
    pthread_mutex_lock(&v->snap_lock);
    *out = v->snap;
    pthread_mutex_unlock(&v->snap_lock);
    out->stale = 1;
}
