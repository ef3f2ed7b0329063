/* vol.c - the volume engine: one lock for the state, an I/O thread for the
 * store (io.c), uploads in the background, cached reads.
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

/* Segment headers kept in memory: by bytes, not count, since a volume
 * flushed often has many small segments (4 KiB writes, fsync every 64:
 * 256 KiB segments with 1 KiB headers). */
#define HDR_CACHE_BYTES (32u << 20)
#define DEFAULT_UPLOADS 4
#define DEFAULT_UPLOAD_BYTES (64u << 20)
#define DEFAULT_CACHE_BYTES (512ull << 20)
#define COALESCE_GAP 8               /* blocks */
#define MAX_FETCH_BYTES (8u << 20)   /* one ranged GET */
#define MAX_FETCH_BLOCKS (MAX_FETCH_BYTES / v->bs)
#define READAHEAD_MAX (4u << 20)     /* bytes */

struct vseg {
    uint64_t seq;
    uint32_t epoch;
    uint32_t header_len;
    uint32_t ndata;
    uint32_t live;
    struct seg_hdr *hdr;      /* cached, NULL when not loaded */
    struct seg_builder *mem;  /* its bytes while open or sealed and not yet durable */
    int deleted;              /* GC deleted its object (rule 8) */
};

/* A segment object no checkpoint references and segs[] does not know,
 * found at open (a crash between a checkpoint and the deletes): rule 8. */
struct orphan {
    uint64_t seq;
    uint32_t epoch;
};

/* A sealed segment on its way to the store. */
struct upload {
    uint32_t idx;
    struct seg_builder *b;
    struct journal *j;
    size_t len;
    char key[SEG_KEY_SIZE];
    struct io_req q;
    int dead; /* failed; kept so its blocks stay readable */
    struct upload *next;
};

/* An open segment: its builder, index and journal. */
struct wseg {
    struct seg_builder *b; /* NULL when none is open */
    uint32_t idx;
    struct journal *j;
    uint64_t opened_ms; /* monotonic: when it got its first write */
};
enum { W_USER = 0, W_GC = 1 };

/* Where segments live.  origins[0] is this volume; a clone's segments up to
 * its base_seq belong to the snapshot it was cloned from, read from that
 * volume's store (origins[1]), and so on up a chain of clones of clones.
 * Origins past 0 are only read. */
#define MAX_ORIGINS 9
struct origin {
    struct store *st; /* [0]: v->st */
    struct io *io;    /* [0]: v->io */
    uint8_t uuid[16];
    uint64_t base_seq; /* segments above it are this origin's own */
    char *url;
};

struct vol {
    pthread_mutex_t lock;
    struct store *st;
    struct vol_super sb;
    uint32_t bs;
    uint64_t nblocks;
    uint32_t seg_blocks;
    uint32_t epoch;
    struct io *io;          /* the I/O thread: every store request goes through it */
    struct origin origins[MAX_ORIGINS]; /* clones: whose store holds a segment */
    unsigned norigins;
    int hold;               /* > 0: a read-modify-write holds the lock; waits keep it */
    int zstd_level;         /* > 0: segments are packed in zstd chunks (superblock) */
    struct map *map;
    struct vseg *segs;
    uint32_t nsegs, cap;
    uint64_t next_seq;
    struct wseg w[2];     /* the open segments: W_USER's for writes, W_GC's for copies */
    uint32_t seal_age_ms;
    pthread_t sealer;
    pthread_cond_t wake;
    int sealer_running, stopping;
    int replaying; /* builders made during recovery have no journal */
    struct upload *uploads; /* in seal order */
    unsigned nuploads;      /* not yet finished or dead */
    uint64_t upload_bytes;  /* of those */
    unsigned max_uploads;
    uint64_t max_upload_bytes;
    struct cache *cache;    /* NULL when read-only */
    struct fetch *ra;       /* read-ahead GETs in flight or not yet cached */
    unsigned nra;
    uint64_t ra_next, ra_win, ra_end; /* blocks: where a sequential read goes on,
                                         the window, how far read-ahead has gone */
    char *jdir;
    uint8_t writer_id[16];
    int durability_local, read_only;
    uint32_t ckpt_every, since_ckpt;
    uint32_t cached_hdrs, clock_hand;
    uint64_t hdr_bytes; /* memory of the cached headers */
    char failed[512];
    struct vol_stats stats;
    int lock_fd;                 /* CACHE_DIR/UUID/lock, flock'd: one writer per cache dir */
    uint64_t ckpt_seq;           /* the newest durable checkpoint's seq, 0 before one */
    struct orphan *orphans;
    size_t norphans;
    struct orphan *pins;         /* segments snapshots reference, sorted */
    size_t npins;
    char *snapshot;              /* URL@NAME: the snapshot opened (read-only) */
    unsigned reads_waiting;      /* reads waiting for the store: deletes wait for them */
    /* garbage collection */
    int gc_on;                   /* the background cleaner runs */
    double gc_threshold;         /* segments less live than this are cleaned */
    double gc_min_garbage;       /* the cleaner starts above this garbage ratio */
    uint64_t gc_rate;            /* bytes copied per second, at most */
    uint32_t gc_interval_ms;
    pthread_t gc_thread;
    int gc_running, gc_active;   /* gc_active: a pass is copying (one at a time) */
    pthread_cond_t gc_wake;
    /* the writer lease and fencing (rule 9) */
    struct fence_set fences;
    int has_lease;
    struct lease lease;          /* used by vol_open, then only by the lease thread */
    struct store *lease_st;      /* the lease's own store stack */
    struct vol_keys *keys;       /* an encrypted volume's, NULL for a plain one */
    pthread_t lease_thread;
    int lease_running, lease_stop, lease_paused;
    pthread_mutex_t lease_lock;  /* guards lease_deadline_ms, lease_stop, lease_paused */
    pthread_cond_t lease_wake;
    uint64_t lease_deadline_ms, lease_margin_ms;
    int lease_warned;
    int lease_from_self;         /* the lease we took was free or our own crashed one's */
    pthread_mutex_t snap_lock;   /* guards snap */
    struct vol_stats snap;       /* stats as of the last progress, for readers while busy */
};

/* ---- errors ---- */

__attribute__((format(printf, 2, 3))) static int fail(struct vol *v, const char *fmt, ...)
{
    if (!v->failed[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->failed, sizeof v->failed, fmt, ap);
        va_end(ap);
        log_error("%s; the volume stops accepting writes (data stays in the journal)",
                  v->failed);
    }
    return -EIO;
}

/* ---- segments table ---- */

/* The volume whose store holds segment seq: this one, or for a clone the
 * snapshot's volume (or its own base, and so on). */
static const struct origin *origin_of(const struct vol *v, uint64_t seq)
{
    unsigned i = 0;
    while (i + 1 < v->norigins && seq <= v->origins[i].base_seq)
        i++;
    return &v->origins[i];
}

/* 1 for a clone's segment that belongs to the volume it was cloned from:
 * never cleaned or deleted here (that volume's snapshot keeps it). */
static int inherited(const struct vol *v, uint64_t seq)
{
    return seq <= v->sb.base_seq;
}

static uint32_t add_seg(struct vol *v, uint64_t seq, uint32_t epoch)
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

static void drop_hdr(struct vol *v, struct vseg *s)
{
    v->hdr_bytes -= hdr_mem(s->hdr);
    seg_hdr_free(s->hdr);
    free(s->hdr);
    s->hdr = NULL;
    v->cached_hdrs--;
}

static void cache_hdr(struct vol *v, uint32_t idx, struct seg_hdr *h)
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
static struct seg_hdr *fetch_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen)
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

static struct seg_hdr *get_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen)
{
    if (v->segs[idx].hdr)
        return v->segs[idx].hdr;
    struct seg_hdr *h = fetch_hdr(v, idx, err, errlen);
    if (h)
        cache_hdr(v, idx, h);
    return h;
}

/* ---- the open segment ---- */

static int seal(struct vol *v, struct wseg *w);

/* Opens segment next_seq in slot w (rule 7 for the GC slot). */
static int open_builder(struct vol *v, struct wseg *w)
{
    char err[512];
    if (w->b)
        return 0;
    if (w == &v->w[W_GC])
        while (v->w[W_USER].b) { /* rule 7; seal may wait with the lock released */
            int rc = seal(v, &v->w[W_USER]);
            if (rc)
                return rc;
        }
    w->b = seg_builder_new(v->sb.uuid, v->next_seq, v->epoch, v->bs, v->seg_blocks);
    if (!w->b)
        return fail(v, "cannot start segment %" PRIu64, v->next_seq);
    if (v->zstd_level)
        seg_builder_set_zstd(w->b, v->zstd_level);
    w->idx = add_seg(v, v->next_seq, v->epoch);
    v->segs[w->idx].mem = w->b; /* read from memory until uploaded */
    w->opened_ms = clock_mono_ms();
    if (!v->replaying &&
        journal_create(v->jdir, v->sb.uuid, v->writer_id, v->next_seq, v->epoch, v->bs, &w->j,
                       err, sizeof err) < 0)
        return fail(v, "journal: %s", err);
    v->next_seq++;
    return 0;
}

static int any_open(const struct vol *v)
{
    return v->w[W_USER].b || v->w[W_GC].b;
}

static int write_checkpoint(struct vol *v);
static void snapshot(struct vol *v);
static size_t delete_dead(struct vol *v, const char *key);
static int lease_ok(struct vol *v);

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
            fail(v, "upload of segment %" PRIu64 " failed: %s", s->seq,
                 u->q.r.err == STORE_EPRECOND ? "another writer made a segment with this seq"
                                              : u->q.r.errmsg);
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
            if (journal_remove(v->jdir, s->seq, err, sizeof err) < 0)
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
static int uploading(const struct vol *v, uint64_t upto)
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
        snapshot(v);
        if (v->failed[0])
            return -EIO;
        if (!uploading(v, upto))
            return rc;
        wait_io(v, gen);
    }
}

static int wait_uploads(struct vol *v)
{
    return wait_uploads_upto(v, UINT64_MAX);
}

/* Seals the open segment and starts its upload (rule 2); waits while
 * max_uploads or max_upload_bytes are already under way (back-pressure). */
static int seal(struct vol *v, struct wseg *w)
{
    if (!w->b)
        return 0;
    if (v->failed[0])
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
        snapshot(v);
        wait_io(v, gen);
    }
}

/* ---- writing ---- */

static int write_blocks(struct vol *v, uint64_t lba, uint64_t n, const char *data)
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
            return fail(v, "journal: %s", journal_errmsg(w->j));
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

static int zero_blocks(struct vol *v, uint64_t lba, uint64_t n)
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
            return fail(v, "journal: %s", journal_errmsg(w->j));
        map_unset(v->map, lba, k);
        lba += k;
        n -= k;
    }
    return 0;
}

/* Seals both open segments (user first: rule 7 keeps GC copies below it). */
static int seal_all(struct vol *v)
{
    int rc = 0;
    while (!rc && any_open(v))
        rc = seal(v, v->w[W_USER].b ? &v->w[W_USER] : &v->w[W_GC]);
    return rc;
}

/* ---- reading ---- */

/* A run of blocks to fetch from one segment in the store. */
struct piece {
    uint64_t lba, n;
    uint32_t seg, block;
};

/* One ranged GET of blocks [block, block + n) of segment seg, serving the
 * pieces p[first .. first + npieces).  Gaps of up to COALESCE_GAP blocks
 * between pieces are fetched too (and cached): a request costs more than a
 * few blocks of transfer. */
struct fetch {
    uint32_t seg, block, n;
    size_t first, npieces;
    uint64_t lba_lo, lba_hi; /* the pieces' span, for read-ahead waits */
    char key[SEG_KEY_SIZE];
    struct io *io;      /* the I/O thread of the segment's origin */
    struct io_req q;
    struct io_req hq;   /* the segment's header, when it was not cached at submit */
    int with_hdr;
    int packed;         /* a packed segment's chunks: unpacked into block..block+n */
    uint32_t pblock, pn;  /* the blocks those chunks hold */
    int waiters;        /* read-ahead: readers waiting for it; it is not freed meanwhile */
    struct fetch *next; /* read-ahead list */
};

struct read_ctx {
    struct vol *v;
    uint64_t lba0;
    char *out; /* NULL for read-ahead: only fill the cache */
    struct piece *p;
    size_t np, cap;
};

static void add_piece(struct read_ctx *c, uint64_t lba, uint64_t n, uint32_t seg,
                      uint32_t block)
{
    if (c->np == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->p = xrealloc(c->p, c->cap * sizeof *c->p);
    }
    c->p[c->np++] = (struct piece){.lba = lba, .n = n, .seg = seg, .block = block};
}

/* Fills holes, blocks held in memory and cached blocks at once; queues the
 * rest as pieces. */
static int read_piece(void *arg, uint64_t lba, uint64_t n, uint32_t seg, uint32_t block,
                      int mapped)
{
    struct read_ctx *c = arg;
    struct vol *v = c->v;
    char *dst = c->out ? c->out + (lba - c->lba0) * v->bs : NULL;

    if (!mapped) {
        if (dst)
            memset(dst, 0, n * v->bs);
        return 0;
    }
    struct seg_builder *mem = v->segs[seg].mem;
    if (mem) { /* open, or sealed and not yet durable */
        for (uint64_t i = 0; dst && i < n; i++)
            memcpy(dst + i * v->bs, seg_block(mem, block + (uint32_t)i), v->bs);
        return 0;
    }
    /* the cache, run by run; each miss starts or extends a piece */
    uint64_t i = 0, miss = 0;
    while (i < n) {
        uint32_t want = n - i > UINT32_MAX ? UINT32_MAX : (uint32_t)(n - i), got = 0;
        if (v->cache && dst) {
            got = cache_get(v->cache, seg, block + (uint32_t)i, want, dst + i * v->bs);
            v->stats.cache_hit_blocks += got;
        } else if (v->cache)
            while (got < want && cache_has(v->cache, seg, block + (uint32_t)(i + got)))
                got++;
        if (got) {
            if (miss)
                add_piece(c, lba + i - miss, miss, seg, block + (uint32_t)(i - miss));
            miss = 0;
            i += got;
            continue;
        }
        if (dst)
            v->stats.cache_miss_blocks++;
        miss++;
        i++;
    }
    if (miss)
        add_piece(c, lba + n - miss, miss, seg, block + (uint32_t)(n - miss));
    return 0;
}

static int piece_cmp(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* Groups the pieces, sorted by segment and block, into ranged GETs (see
 * struct fetch). */
static struct fetch *plan_fetches(struct read_ctx *c, size_t *nf)
{
    struct vol *v = c->v;
    struct fetch *f = xcalloc(c->np ? c->np : 1, sizeof *f);
    size_t k = 0;
    if (c->np > 1)
        qsort(c->p, c->np, sizeof *c->p, piece_cmp);
    for (size_t i = 0; i < c->np; i++) {
        struct piece *p = &c->p[i];
        struct fetch *last = k ? &f[k - 1] : NULL;
        uint64_t end = last ? (uint64_t)last->block + last->n : 0;
        if (last && last->seg == p->seg && p->block >= end && p->block - end <= COALESCE_GAP &&
            p->block + p->n - last->block <= MAX_FETCH_BLOCKS) {
            last->n = (uint32_t)(p->block + p->n - last->block);
            last->npieces++;
            if (p->lba < last->lba_lo)
                last->lba_lo = p->lba;
            if (p->lba + p->n > last->lba_hi)
                last->lba_hi = p->lba + p->n;
            continue;
        }
        f[k++] = (struct fetch){.seg = p->seg, .block = p->block, .n = (uint32_t)p->n,
                                .first = i, .npieces = 1, .lba_lo = p->lba,
                                .lba_hi = p->lba + p->n};
    }
    for (size_t i = 0; i < k; i++) {
        struct vseg *s = &v->segs[f[i].seg];
        seg_key(s->seq, s->epoch, f[i].key);
        f[i].io = origin_of(v, s->seq)->io;
        f[i].q.r = (struct store_req){.op = STORE_GET, .key = f[i].key,
                                      .off = s->header_len + (uint64_t)f[i].block * v->bs,
                                      .len = (uint64_t)f[i].n * v->bs};
        if (s->hdr && seg_is_packed(s->hdr)) { /* the chunks holding the blocks */
            f[i].packed = 1;
            seg_packed_range(s->hdr, f[i].block, f[i].n, &f[i].q.r.off, &f[i].q.r.len,
                             &f[i].pblock, &f[i].pn);
            continue;
        }
        /* the header comes along, in parallel, unless it is cached or was
         * asked for by an earlier fetch of this plan */
        f[i].with_hdr = !s->hdr && s->header_len && (i == 0 || f[i - 1].seg != f[i].seg);
        if (f[i].with_hdr)
            f[i].hq.r = (struct store_req){.op = STORE_GET, .key = f[i].key, .off = 0,
                                           .len = s->header_len};
    }
    *nf = k;
    return f;
}

/* Parses and checks segment idx's header from bytes; NULL with err. */
static struct seg_hdr *parse_hdr(struct vol *v, uint32_t idx, const struct buf *b, char *err,
                                 size_t errlen)
{
    struct vseg *s = &v->segs[idx];
    struct seg_hdr *h = xcalloc(1, sizeof *h);
    if (seg_parse_header(b->p, b->len, h, err, errlen) != 0 ||
        seg_check_identity(h, origin_of(v, s->seq)->uuid, s->seq, s->epoch, v->bs, err,
                           errlen) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* The header a finished fetch brought, into the header cache. */
static int take_fetched_hdr(struct vol *v, struct fetch *f)
{
    char err[STORE_ERRMSG_MAX];
    if (f->hq.r.err) {
        log_error("read of segment %" PRIu64 "'s header: %s", v->segs[f->seg].seq,
                  f->hq.r.errmsg);
        return -EIO;
    }
    struct seg_hdr *h = parse_hdr(v, f->seg, &f->hq.r.body, err, sizeof err);
    if (!h) {
        log_error("read of segment %" PRIu64 ": %s", v->segs[f->seg].seq, err);
        return -EIO;
    }
    if (v->segs[f->seg].hdr) { /* another reader was first */
        seg_hdr_free(h);
        free(h);
    } else
        cache_hdr(v, f->seg, h);
    return 0;
}

/* Checks a finished fetch block by block and caches it.  0, or -EIO with
 * the reason logged. */
static int check_fetch(struct vol *v, struct fetch *f)
{
    char err[STORE_ERRMSG_MAX];
    struct buf *b = &f->q.r.body;
    if (f->with_hdr && take_fetched_hdr(v, f) < 0)
        return -EIO;
    if (f->q.r.err) {
        log_error("read of segment %" PRIu64 " blocks %u+%u: %s", v->segs[f->seg].seq, f->block,
                  f->n, f->q.r.errmsg);
        return -EIO;
    }
    if (f->packed) { /* chunks back to blocks; then checked like any */
        struct seg_hdr *ph = get_hdr(v, f->seg, err, sizeof err); /* evicted meanwhile: again */
        if (!ph || b->len != f->q.r.len) {
            log_error("read of segment %" PRIu64 " chunks: %zu bytes returned, not %" PRIu64,
                      v->segs[f->seg].seq, b->len, f->q.r.len);
            return -EIO;
        }
        struct buf raw = {0};
        buf_reserve(&raw, (size_t)f->pn * v->bs);
        if (seg_unpack(ph, f->pblock, f->pn, b->p, b->len, raw.p, err, sizeof err) < 0) {
            log_error("read: %s", err);
            buf_free(&raw);
            return -EIO;
        }
        raw.len = (size_t)f->pn * v->bs;
        buf_free(b);
        *b = raw;
        f->block = f->pblock;
        f->n = f->pn;
        f->packed = 0;
    }
    if (b->len != (uint64_t)f->n * v->bs) {
        log_error("read of segment %" PRIu64 " blocks %u+%u: %zu bytes returned, not %" PRIu64,
                  v->segs[f->seg].seq, f->block, f->n, b->len, (uint64_t)f->n * v->bs);
        return -EIO;
    }
    struct seg_hdr *h = get_hdr(v, f->seg, err, sizeof err);
    if (!h) {
        log_error("read of segment %" PRIu64 ": %s", v->segs[f->seg].seq, err);
        return -EIO;
    }
    for (uint32_t i = 0; i < f->n; i++)
        if (seg_verify_block(h, f->block + i, b->p + (size_t)i * v->bs, err, sizeof err)) {
            log_error("read: %s", err);
            return -EIO;
        }
    v->stats.bytes_fetched += b->len;
    if (v->cache)
        cache_put(v->cache, f->seg, f->block, f->n, b->p);
    return 0;
}

static void submit_fetch(struct vol *v, struct fetch *f)
{
    f->q.r.key = f->key;
    io_submit(f->io, &f->q);
    if (f->with_hdr) {
        f->hq.r.key = f->key;
        io_submit(f->io, &f->hq);
    }
}

static int fetch_done(struct vol *v, struct fetch *f)
{
    (void)v;
    return io_done(f->io, &f->q) && (!f->with_hdr || io_done(f->io, &f->hq));
}

/* Waits for f with the lock released (or kept, under v->hold). */
static void wait_fetch(struct vol *v, struct fetch *f)
{
    int unlock = !v->hold; /* read before unlocking: others change it */
    v->reads_waiting++;
    if (unlock)
        pthread_mutex_unlock(&v->lock);
    io_wait(f->io, &f->q);
    if (f->with_hdr)
        io_wait(f->io, &f->hq);
    if (unlock)
        pthread_mutex_lock(&v->lock);
    v->reads_waiting--;
}

static void free_fetch_reqs(struct fetch *f)
{
    store_req_free(&f->q.r);
    if (f->with_hdr)
        store_req_free(&f->hq.r);
}

/* Caches finished read-ahead fetches; with wait, first waits for those
 * overlapping blocks [lba, lba + n).  A fetch being waited for is pinned
 * (waiters) so no other thread frees it while the lock is released. */
static void reap_readahead(struct vol *v, int wait, uint64_t lba, uint64_t n)
{
    for (struct fetch *f = wait ? v->ra : NULL; f;) {
        if (f->lba_lo < lba + n && lba < f->lba_hi && !fetch_done(v, f)) {
            f->waiters++;
            wait_fetch(v, f);
            f->waiters--;
            f = v->ra; /* the list may have changed meanwhile: start over */
            continue;
        }
        f = f->next;
    }
    for (struct fetch **pp = &v->ra; *pp;) {
        struct fetch *f = *pp;
        if (f->waiters || !fetch_done(v, f)) {
            pp = &f->next;
            continue;
        }
        if (check_fetch(v, f) == 0)
            v->stats.readahead_bytes += f->q.r.body.len;
        *pp = f->next;
        free_fetch_reqs(f);
        free(f);
        v->nra--;
    }
}

/* Sequential reads double the read-ahead window up to READAHEAD_MAX; the
 * next window is fetched into the cache in the background, once the reader
 * has used half of the one before. */
static void read_ahead(struct vol *v, uint64_t lba, uint64_t n)
{
    uint64_t end = lba + n, max = READAHEAD_MAX / v->bs;
    if (!v->cache || lba != v->ra_next) {
        v->ra_next = end;
        v->ra_win = 0;
        v->ra_end = end;
        return;
    }
    v->ra_next = end;
    v->ra_win = v->ra_win ? v->ra_win * 2 : n * 2 > 32 ? n * 2 : 32;
    if (v->ra_win > max)
        v->ra_win = max;
    if (v->ra_end < end)
        v->ra_end = end;
    if (v->ra_end >= end + v->ra_win / 2 || v->ra_end >= v->nblocks || v->nra >= 8)
        return;
    uint64_t from = v->ra_end, to = end + v->ra_win > v->nblocks ? v->nblocks : end + v->ra_win;
    struct read_ctx c = {.v = v, .lba0 = from};
    if (map_lookup(v->map, from, to - from, read_piece, &c) == 0) {
        size_t nf, k = 0;
        for (size_t i = 0; i < c.np; i++) /* packed: only where the chunk table is known */
            if (!v->zstd_level || v->segs[c.p[i].seg].hdr)
                c.p[k++] = c.p[i];
        c.np = k;
        struct fetch *f = plan_fetches(&c, &nf);
        for (size_t i = 0; i < nf; i++) {
            struct fetch *x = xmalloc(sizeof *x);
            *x = f[i];
            x->next = v->ra;
            v->ra = x;
            v->nra++;
            submit_fetch(v, x);
        }
        free(f);
    }
    free(c.p);
    v->ra_end = to;
}

/* Reads blocks: holes, in-memory and cached blocks directly, the rest with
 * all their ranged GETs in flight at once, waited for with the lock
 * released (unless v->hold), each block checked. */
/* Packed segments: the chunk table is in the header, so the headers of the
 * pieces' segments are fetched (all at once, the lock released unless
 * v->hold) before their data can be asked for.  0, or -EIO. */
static int ensure_headers(struct vol *v, struct read_ctx *c)
{
    struct fetch *h = NULL;
    size_t nh = 0;
    for (size_t i = 0; i < c->np; i++) {
        struct vseg *s = &v->segs[c->p[i].seg];
        int dup = 0;
        for (size_t k = 0; k < nh && !dup; k++)
            dup = h[k].seg == c->p[i].seg;
        if (s->hdr || dup || !s->header_len)
            continue;
        h = xrealloc(h, (nh + 1) * sizeof *h);
        h[nh] = (struct fetch){.seg = c->p[i].seg, .with_hdr = 1,
                               .io = origin_of(v, s->seq)->io};
        seg_key(s->seq, s->epoch, h[nh].key);
        h[nh].hq.r = (struct store_req){.op = STORE_GET, .key = h[nh].key, .len = s->header_len};
        nh++;
    }
    if (!nh)
        return 0;
    for (size_t k = 0; k < nh; k++) {
        h[k].hq.r.key = h[k].key;
        io_submit(h[k].io, &h[k].hq);
    }
    int unlock = !v->hold;
    v->reads_waiting++;
    if (unlock)
        pthread_mutex_unlock(&v->lock);
    for (size_t k = 0; k < nh; k++)
        io_wait(h[k].io, &h[k].hq);
    if (unlock)
        pthread_mutex_lock(&v->lock);
    v->reads_waiting--;
    int rc = 0;
    for (size_t k = 0; k < nh; k++) {
        if (!rc && !v->segs[h[k].seg].hdr)
            rc = take_fetched_hdr(v, &h[k]);
        store_req_free(&h[k].hq.r);
    }
    free(h);
    return rc;
}

static int read_blocks(struct vol *v, uint64_t lba, uint64_t n, char *out)
{
    if (v->ra)
        reap_readahead(v, 1, lba, n);
    struct read_ctx c = {.v = v, .lba0 = lba, .out = out};
    if (map_lookup(v->map, lba, n, read_piece, &c) < 0) {
        free(c.p);
        return -EIO;
    }
    if (v->zstd_level && ensure_headers(v, &c) < 0) {
        free(c.p);
        return -EIO;
    }
    size_t nf;
    struct fetch *f = plan_fetches(&c, &nf);
    for (size_t i = 0; i < nf; i++)
        submit_fetch(v, &f[i]);
    if (nf) {
        int unlock = !v->hold; /* read before unlocking: others change it */
        v->reads_waiting++;
        if (unlock)
            pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < nf; i++) {
            io_wait(f[i].io, &f[i].q);
            if (f[i].with_hdr)
                io_wait(f[i].io, &f[i].hq);
        }
        if (unlock)
            pthread_mutex_lock(&v->lock);
        v->reads_waiting--;
    }
    int rc = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!rc)
            rc = check_fetch(v, &f[i]);
        for (size_t j = f[i].first; !rc && j < f[i].first + f[i].npieces; j++) {
            struct piece *p = &c.p[j];
            memcpy(out + (p->lba - lba) * v->bs,
                   f[i].q.r.body.p + (size_t)(p->block - f[i].block) * v->bs, p->n * v->bs);
        }
        free_fetch_reqs(&f[i]);
    }
    free(f);
    free(c.p);
    return rc;
}

static int in_range(const struct vol *v, uint64_t off, uint64_t len)
{
    return off <= v->sb.size && len <= v->sb.size - off;
}

int vol_read(struct vol *v, void *buf, uint64_t off, size_t len)
{
    if (!in_range(v, off, len))
        return -EINVAL;
    if (!len)
        return 0;
    pthread_mutex_lock(&v->lock);
    uint64_t first = off / v->bs, last = (off + len - 1) / v->bs, n = last - first + 1;
    int rc;
    if (off % v->bs == 0 && len % v->bs == 0)
        rc = read_blocks(v, first, n, buf);
    else {
        char *tmp = xmalloc(n * v->bs);
        rc = read_blocks(v, first, n, tmp);
        if (!rc)
            memcpy(buf, tmp + (off - first * v->bs), len);
        free(tmp);
    }
    if (!rc) {
        v->stats.bytes_read += len;
        read_ahead(v, first, n);
    }
    pthread_mutex_unlock(&v->lock);
    return rc;
}

static int flush_locked(struct vol *v)
{
    if (v->failed[0])
        return -EIO;
    if (v->durability_local) {
        for (int i = 0; i < 2; i++)
            if (v->w[i].j && journal_sync(v->w[i].j) < 0)
                return fail(v, "journal: %s", journal_errmsg(v->w[i].j));
        return 0;
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

/* ---- checkpoints ---- */

/* Deletes all but the newest two checkpoints (FORMAT rule 6). */
static void prune_checkpoints(struct vol *v)
{
    struct store_obj *list;
    size_t n;
    char err[STORE_ERRMSG_MAX];
    if (!lease_ok(v) || io_list(v->io, "ckpt/", &list, &n, err, sizeof err))
        return;
    for (size_t i = 0; i + 2 < n; i++) /* sorted by key = by seq */
        if (io_delete(v->io, list[i].key, err, sizeof err))
            log_warn("%s", err);
    store_list_free(list, n);
}

/* ---- snapshot pins: segments a snapshot references ---- */

static int pin_cmp(const void *a, const void *b)
{
    const struct orphan *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

static int pinned(const struct vol *v, uint64_t seq, uint32_t epoch)
{
    struct orphan k = {seq, epoch};
    return v->npins && bsearch(&k, v->pins, v->npins, sizeof k, pin_cmp) != NULL;
}

static void pin(struct vol *v, uint64_t seq, uint32_t epoch)
{
    if (pinned(v, seq, epoch))
        return;
    v->pins = xrealloc(v->pins, (v->npins + 1) * sizeof *v->pins);
    v->pins[v->npins++] = (struct orphan){seq, epoch};
    qsort(v->pins, v->npins, sizeof *v->pins, pin_cmp);
}

/* 1 when segment i may be deleted (rule 8): no live block, durable, not
 * open, covered by the newest checkpoint, no snapshot's. */
static int is_dead(const struct vol *v, uint32_t i)
{
    const struct vseg *s = &v->segs[i];
    return !s->live && !s->deleted && !s->mem && s->seq <= v->ckpt_seq && s->header_len &&
           !pinned(v, s->seq, s->epoch) && !inherited(v, s->seq);
}

/* Rule 8, after checkpoint `key` is durable: deletes every other checkpoint,
 * then the dead segments and orphans.  Returns how many segments it
 * deleted (0: nothing to do, or readers still waiting on the store). */
static size_t delete_dead(struct vol *v, const char *key)
{
    char err[STORE_ERRMSG_MAX], sk[SEG_KEY_SIZE];
    size_t ndead = v->norphans;
    for (uint32_t i = 0; i < v->nsegs; i++)
        ndead += is_dead(v, i);
    if (!ndead || v->reads_waiting || v->nra || !lease_ok(v))
        return 0;
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "ckpt/", &list, &n, err, sizeof err)) {
        log_warn("garbage collection: %s; deleting nothing", err);
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].key, key) != 0 && io_delete(v->io, list[i].key, err, sizeof err)) {
            log_warn("garbage collection: %s; deleting no segment", err);
            ok = 0;
        }
    store_list_free(list, n);
    if (!ok)
        return 0;
    size_t done = 0;
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (is_dead(v, i)) {
            seg_key(v->segs[i].seq, v->segs[i].epoch, sk);
            if (io_delete(v->io, sk, err, sizeof err)) {
                log_warn("garbage collection: %s", err);
                continue;
            }
            v->segs[i].deleted = 1;
            if (v->segs[i].hdr)
                drop_hdr(v, &v->segs[i]);
            done++;
        }
    size_t kept = 0;
    for (size_t i = 0; i < v->norphans; i++) {
        seg_key(v->orphans[i].seq, v->orphans[i].epoch, sk);
        if (io_delete(v->io, sk, err, sizeof err)) {
            log_warn("garbage collection: %s", err);
            v->orphans[kept++] = v->orphans[i];
        } else
            done++;
    }
    v->norphans = kept;
    v->stats.segments_deleted += done;
    return done;
}

/* The map and the live segments as a checkpoint at seq next_seq - 1, into
 * out; rule 3 holds (nothing open or uploading).  0, or fail()'s -EIO. */
static int encode_checkpoint(struct vol *v, struct buf *out)
{
    char err[STORE_ERRMSG_MAX];
    uint64_t seq = v->next_seq - 1;
    uint32_t *remap = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *remap);
    struct ckpt_seg *cs = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *cs);
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].live) {
            remap[i] = k;
            cs[k++] = (struct ckpt_seg){v->segs[i].seq, v->segs[i].epoch, v->segs[i].header_len,
                                        v->segs[i].live, v->segs[i].ndata};
        }
    struct ckpt_enc *e = ckpt_enc_new(out, v->sb.uuid, seq, v->epoch, cs, k);
    struct map_iter it;
    struct map_extent x;
    map_iter_start(v->map, &it);
    while (map_iter_next(&it, &x)) {
        struct ckpt_extent ce = {x.lba, x.nblocks, remap[x.seg], x.block};
        ckpt_enc_add(e, &ce);
    }
    int rc = ckpt_enc_finish(e, err, sizeof err);
    free(remap);
    free(cs);
    if (rc) {
        buf_free(out);
        return fail(v, "checkpoint %" PRIu64 " does not encode: %s", seq, err);
    }
    return 0;
}

static int write_checkpoint(struct vol *v)
{
    char key[CKPT_KEY_SIZE], err[STORE_ERRMSG_MAX];
    uint64_t seq = v->next_seq - 1;
    if (any_open(v) || v->uploads) /* rule 3 */
        return 0;
    struct buf out = {0};
    int rc = encode_checkpoint(v, &out);
    if (rc)
        return rc;
    ckpt_key(seq, v->epoch, key);
    enum store_err se = io_put(v->io, key, out.p, out.len, STORE_COND_NONE, err, sizeof err);
    buf_free(&out);
    if (se)
        return fail(v, "checkpoint: %s", err);
    v->stats.checkpoints++;
    v->since_ckpt = 0;
    v->ckpt_seq = seq;
    if (!delete_dead(v, key))
        prune_checkpoints(v);
    return 0;
}

/* ---- the writer lease (rule 9) ---- */

/* 1 while our lease is surely ours: deletes happen only then. */
static int lease_ok(struct vol *v)
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
static int take_lease(struct vol *v, const char *url, const struct vol_opts *o,
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
static void *lease_main(void *arg)
{
    struct vol *v = arg;
    char why[STORE_ERRMSG_MAX];
    uint64_t step = v->lease.ttl_ms / 4 ? v->lease.ttl_ms / 4 : 1;
    pthread_mutex_lock(&v->lease_lock);
    while (!v->lease_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(step % 1000) * 1000000L;
        ts.tv_sec += (time_t)(step / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
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

static void stop_lease(struct vol *v)
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
static int load_fences(struct vol *v, char *err, size_t errlen)
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
static int write_fence(struct vol *v, char *err, size_t errlen)
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
        return fail(v, "journal: %s", journal_errmsg(w->j));
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

static double garbage_ratio(const struct vol *v)
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

int vol_snapshot(struct vol *v, const char *name, char *err, size_t errlen)
{
    char key[SNAP_KEY_SIZE];
    if (v->read_only) {
        snprintf(err, errlen, "the volume is open read-only");
        return -EROFS;
    }
    if (!snap_name_ok(name)) {
        snprintf(err, errlen, "'%s' is not a snapshot name: 1 to %d of A-Z a-z 0-9 . _ -, "
                              "not starting with a dot", name, SNAP_NAME_MAX);
        return -EINVAL;
    }
    snap_key(name, key);
    pthread_mutex_lock(&v->lock);
    int rc = 0;
    for (int tries = 0;; tries++) { /* everything durable, nothing open: rule 3 */
        rc = seal_all(v);
        if (!rc)
            rc = wait_uploads(v);
        if (rc || (!any_open(v) && !v->uploads))
            break;
        if (tries == 20) {
            rc = -EAGAIN;
            break;
        }
    }
    struct buf out = {0};
    if (!rc)
        rc = encode_checkpoint(v, &out);
    if (rc) {
        snprintf(err, errlen, "%s", v->failed[0] ? v->failed : "writes never paused");
        pthread_mutex_unlock(&v->lock);
        return rc;
    }
    /* pin what it references before anything can be deleted */
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].live)
            pin(v, v->segs[i].seq, v->segs[i].epoch);
    enum store_err e = io_put(v->io, key, out.p, out.len, STORE_IF_NONE_MATCH, err, errlen);
    buf_free(&out);
    pthread_mutex_unlock(&v->lock);
    if (e == STORE_EPRECOND) {
        snprintf(err, errlen, "a snapshot named %s exists already", name);
        return -EEXIST;
    }
    return e ? -EIO : 0;
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
static void *gc_main(void *arg)
{
    struct vol *v = arg;
    pthread_mutex_lock(&v->lock);
    uint64_t nap = v->gc_interval_ms;
    while (!v->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(nap % 1000) * 1000000L;
        ts.tv_sec += (time_t)(nap / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
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

/* ---- recovery ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A clone's origins (struct origin): the volume each base line names, up
 * the chain, each checked to be the one cloned from (uuid) and to have the
 * same block size.  Only read, so no fault injection and no lease. */
static int open_origins(struct vol *v, const struct vol_opts *o, char *err, size_t errlen)
{
    char why[STORE_ERRMSG_MAX];
    v->origins[0] = (struct origin){.st = v->st, .io = v->io, .base_seq = v->sb.base_seq};
    memcpy(v->origins[0].uuid, v->sb.uuid, 16);
    v->norigins = 1;
    struct vol_super cur = v->sb;
    while (cur.base[0]) {
        if (v->norigins == MAX_ORIGINS) {
            snprintf(err, errlen, "a chain of more than %d clones of clones is not supported",
                     MAX_ORIGINS - 1);
            return -1;
        }
        struct origin *og = &v->origins[v->norigins];
        char *name = strrchr(cur.base, '@');
        og->url = xstrndup(cur.base, (size_t)(name - cur.base));
        struct store_opts so = o->store;
        so.fault = NULL;
        og->st = store_open(og->url, &so, why, sizeof why);
        if (!og->st) {
            snprintf(err, errlen, "the volume this one was cloned from: %s", why);
            return -1;
        }
        v->norigins++;
        struct buf b = {0};
        struct vol_super psb;
        enum store_err e = store_get(og->st, SUPER_KEY, 0, 0, &b, NULL, why, sizeof why);
        if (e == STORE_ENOTFOUND)
            snprintf(why, sizeof why, "no volume there");
        int bad = e || super_parse(b.p, b.len, &psb, why, sizeof why) < 0;
        if (!bad && memcmp(psb.uuid, cur.base_uuid, 16) != 0)
            bad = snprintf(why, sizeof why, "another volume is there now (its uuid differs)");
        else if (!bad && psb.block_size != v->bs)
            bad = snprintf(why, sizeof why, "its block size differs");
        else if (!bad && super_encrypted(&psb) != (v->keys != NULL))
            bad = snprintf(why, sizeof why, "one of the two is encrypted and the other not");
        else if (!bad && v->keys) {
            /* a clone keeps its base's salt, so the keys are the same; the
             * base's own key-check and mac prove it */
            int k = super_verify_keys(&psb, b.p, v->keys);
            if (k)
                bad = snprintf(why, sizeof why, "%s",
                               k == SUPER_WRONG_KEY ? "its keys are not this volume's"
                                                    : "its superblock was altered");
            else {
                struct store *c = store_crypt_open(og->st, v->keys->data, psb.uuid, why,
                                                   sizeof why);
                if (c)
                    og->st = c;
                else
                    bad = 1;
            }
        }
        buf_free(&b);
        if (bad) {
            snprintf(err, errlen, "%s, the base of this clone: %s", cur.base, why);
            return -1;
        }
        og->io = io_start(og->st);
        char sk[SNAP_KEY_SIZE];
        snap_key(name + 1, sk);
        if (io_get(og->io, sk, 0, 1, &b, why, sizeof why) == STORE_ENOTFOUND)
            log_warn("%s, the snapshot this volume was cloned from, is gone: its volume's GC "
                     "may delete data this one reads",
                     cur.base);
        buf_free(&b);
        memcpy(og->uuid, psb.uuid, 16);
        og->base_seq = psb.base_seq;
        cur = psb;
    }
    return 0;
}

static void close_origins(struct vol *v)
{
    for (unsigned i = 1; i < v->norigins; i++) {
        if (v->origins[i].io)
            io_stop(v->origins[i].io);
        store_close(v->origins[i].st);
        free(v->origins[i].url);
    }
    v->norigins = 0;
}

/* Loads a decoded checkpoint (or snapshot) into the empty map and segs[]. */
static int apply_checkpoint(struct vol *v, const struct ckpt *ck, const char *key, char *err,
                            size_t errlen)
{
    char why[256];
    for (uint32_t s = 0; s < ck->nsegs; s++) {
        struct ckpt_seg cs = ckpt_seg_at(ck, s);
        uint32_t idx = add_seg(v, cs.seq, cs.epoch);
        v->segs[idx].header_len = cs.header_len;
        v->segs[idx].ndata = cs.ndata_blocks;
        v->segs[idx].live = cs.live_blocks;
    }
    struct map_extent *ext = xmalloc((ck->nextents ? ck->nextents : 1) * sizeof *ext);
    for (uint64_t e = 0; e < ck->nextents; e++) {
        struct ckpt_extent ce = ckpt_extent_at(ck, e);
        ext[e] = (struct map_extent){ce.lba, ce.nblocks, ce.seg, ce.first};
    }
    int lrc = ck->nextents && ext[ck->nextents - 1].lba + ext[ck->nextents - 1].nblocks >
                                  v->nblocks
                  ? -1
                  : map_load(v->map, ext, ck->nextents, why, sizeof why);
    free(ext);
    if (lrc < 0) {
        snprintf(err, errlen, "%s does not fit the volume: %s", key, why);
        return -1;
    }
    v->next_seq = ck->seq + 1;
    return 0;
}

/* Loads snapshot name (URL@NAME opens): exactly its state, nothing after. */
static int load_snapshot(struct vol *v, const char *name, char *err, size_t errlen)
{
    char key[SNAP_KEY_SIZE], why[256];
    struct buf b = {0};
    struct ckpt ck;
    snap_key(name, key);
    enum store_err e = io_get(v->io, key, 0, 0, &b, err, errlen);
    if (e == STORE_ENOTFOUND)
        snprintf(err, errlen, "no snapshot named %s (buoy snapshot list shows them)", name);
    int rc = -1;
    if (e)
        ;
    else if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0 ||
             memcmp(ck.uuid, v->sb.uuid, 16) != 0)
        snprintf(err, errlen, "snapshot %s is unusable: %s", name,
                 memcmp(ck.uuid, v->sb.uuid, 16) ? "another volume's" : why);
    else
        rc = apply_checkpoint(v, &ck, key, err, errlen);
    buf_free(&b);
    return rc;
}

static int load_checkpoint(struct vol *v, char *err, size_t errlen)
{
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "ckpt/", &list, &n, err, errlen))
        return -1;
    int rc = 0;
    for (size_t i = n; i-- > 0;) { /* newest first; fall back to older ones */
        uint64_t seq;
        uint32_t epoch;
        struct buf b = {0};
        struct ckpt ck;
        char why[256];
        if (ckpt_key_parse(list[i].key, &seq, &epoch) < 0 || epoch > v->epoch ||
            !fence_ok(&v->fences, seq, epoch)) /* a fenced writer's: rule 9 */
            continue;
        if (io_get(v->io, list[i].key, 0, 0, &b, err, errlen)) {
            rc = -1;
            buf_free(&b);
            break;
        }
        if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0 ||
            memcmp(ck.uuid, v->sb.uuid, 16) != 0) {
            log_warn("checkpoint %s is unusable (%s); trying an older one", list[i].key,
                     memcmp(ck.uuid, v->sb.uuid, 16) ? "another volume's" : why);
            buf_free(&b);
            continue;
        }
        rc = apply_checkpoint(v, &ck, list[i].key, err, errlen);
        buf_free(&b);
        if (!rc)
            v->ckpt_seq = ck.seq;
        break;
    }
    store_list_free(list, n);
    if (!rc && v->sb.base[0] && v->next_seq <= v->sb.base_seq) { /* buoy clone wrote one */
        snprintf(err, errlen, "this clone of %s has lost its first checkpoint (ckpt/ is %s)",
                 v->sb.base, n ? "unusable" : "empty");
        rc = -1;
    }
    return rc;
}

/* The segments snapshots reference: GC neither cleans nor deletes them. */
static int load_pins(struct vol *v, char *err, size_t errlen)
{
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, SNAP_PREFIX, &list, &n, err, errlen))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct buf b = {0};
        struct ckpt ck;
        char why[256];
        if (io_get(v->io, list[i].key, 0, 0, &b, err, errlen))
            rc = -1;
        else if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0) {
            snprintf(err, errlen, "snapshot %s is damaged (%s): cannot tell what it needs; "
                                  "delete it with buoy snapshot delete",
                     list[i].key, why);
            rc = -1;
        } else
            for (uint32_t k = 0; k < ck.nsegs; k++) {
                struct ckpt_seg cs = ckpt_seg_at(&ck, k);
                pin(v, cs.seq, cs.epoch);
            }
        buf_free(&b);
    }
    store_list_free(list, n);
    return rc;
}

/* Does segment seq exist (under an epoch we accept)?  1 yes, 0 no, -1 error. */
static int find_segment(struct vol *v, uint64_t seq, uint32_t *epoch, char *err, size_t errlen)
{
    char prefix[SEG_KEY_PREFIX_SIZE];
    struct store_obj *list;
    size_t n;
    int found = 0;
    seg_key_prefix(seq, prefix);
    if (io_list(v->io, prefix, &list, &n, err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t s;
        uint32_t e;
        if (seg_key_parse(list[i].key, &s, &e) == 0 && s == seq && e <= v->epoch &&
            fence_ok(&v->fences, s, e) && (!found || e > *epoch)) { /* rule 9 */
            *epoch = e;
            found = 1;
        }
    }
    store_list_free(list, n);
    return found;
}

/* The run of segments ended at next_seq: if any of the next few exist, a
 * segment is missing in the middle.  They cannot be applied (prefix
 * consistency); say so loudly, and unless read-only delete them, or new
 * segments with their seqs could never be written. */
static void report_gap(struct vol *v)
{
    char err[STORE_ERRMSG_MAX];
    uint32_t epoch;
    for (uint64_t s = v->next_seq + 1; s <= v->next_seq + 2 * v->max_uploads + 8; s++)
        if (find_segment(v, s, &epoch, err, sizeof err) == 1) {
            v->stats.segments_ignored++;
            if (!v->read_only) {
                char key[SEG_KEY_SIZE];
                seg_key(s, epoch, key);
                if (io_delete(v->io, key, err, sizeof err))
                    log_warn("%s", err);
            }
        }
    if (v->stats.segments_ignored)
        log_error("segment %" PRIu64 " is missing from the store but later ones exist; the "
                  "volume is recovered to its state before segment %" PRIu64
                  " and %" PRIu64 " later segments are %s",
                  v->next_seq, v->next_seq, v->stats.segments_ignored,
                  v->read_only ? "ignored" : "deleted");
}

/* Rule 8: segment objects at or below the checkpoint that it does not list. */
static void find_orphans(struct vol *v)
{
    char err[STORE_ERRMSG_MAX];
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "seg/", &list, &n, err, sizeof err))
        return;
    uint64_t *known = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *known);
    for (uint32_t i = 0; i < v->nsegs; i++)
        known[i] = v->segs[i].seq;
    qsort(known, v->nsegs, sizeof *known, cmp_u64);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        uint32_t epoch;
        if (seg_key_parse(list[i].key, &seq, &epoch) < 0)
            continue;
        int fenced = !fence_ok(&v->fences, seq, epoch); /* a fenced writer's: garbage */
        if (pinned(v, seq, epoch) ||
            (!fenced &&
             (seq > v->ckpt_seq || bsearch(&seq, known, v->nsegs, sizeof *known, cmp_u64))))
            continue;
        v->orphans = xrealloc(v->orphans, (v->norphans + 1) * sizeof *v->orphans);
        v->orphans[v->norphans++] = (struct orphan){seq, epoch};
    }
    free(known);
    store_list_free(list, n);
    if (v->norphans)
        log_info("%zu segment objects no checkpoint needs; deleted after the next checkpoint",
                 v->norphans);
}

/* Applies segments next_seq, next_seq+1, ... while they exist. */
static int scan_segments(struct vol *v, char *err, size_t errlen)
{
    for (;;) {
        uint32_t epoch = 0;
        int found = find_segment(v, v->next_seq, &epoch, err, errlen);
        if (found < 0)
            return -1;
        if (!found)
            return 0;
        uint32_t idx = add_seg(v, v->next_seq, epoch);
        struct seg_hdr *h = fetch_hdr(v, idx, err, errlen);
        if (!h)
            return -1;
        v->segs[idx].header_len = h->header_len;
        v->segs[idx].ndata = h->ndata_blocks;
        for (uint32_t e = 0; e < h->nextents; e++) {
            const struct seg_extent *x = &h->ext[e];
            if (x->lba + x->nblocks > v->nblocks) {
                snprintf(err, errlen, "segment %" PRIu64 " writes past the end of the volume",
                         v->next_seq);
                seg_hdr_free(h);
                free(h);
                return -1;
            }
            if (x->kind == SEG_DATA) {
                map_set(v->map, x->lba, x->nblocks, idx, x->first);
                v->segs[idx].live += x->nblocks;
            } else
                map_unset(v->map, x->lba, x->nblocks);
        }
        cache_hdr(v, idx, h);
        v->next_seq++;
        v->since_ckpt++;
    }
}

static int replay_record(void *arg, enum journal_kind kind, uint64_t lba, uint32_t nblocks,
                         const void *data)
{
    struct vol *v = arg;
    if (lba + nblocks > v->nblocks || lba + nblocks < lba)
        return -1;
    v->stats.journal_records_replayed++;
    return kind == JOURNAL_DATA ? write_blocks(v, lba, nblocks, data)
                                : zero_blocks(v, lba, nblocks);
}

/* Rule 5: journals of segments not in the store become those segments. */
static int replay_journals(struct vol *v, char *err, size_t errlen)
{
    uint64_t *seqs;
    size_t n;
    if (journal_list(v->jdir, &seqs, &n, err, errlen) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t s = seqs[i];
        char why[256];
        if (s < v->next_seq) { /* uploaded before the crash */
            journal_remove(v->jdir, s, why, sizeof why);
            continue;
        }
        if (s > v->next_seq) {
            log_warn("journal of segment %" PRIu64 " follows a missing segment %" PRIu64
                     "; kept in %s, not applied",
                     s, v->next_seq, v->jdir);
            continue;
        }
        struct journal_info info;
        v->replaying = 1;
        enum journal_status js =
            journal_replay(v->jdir, s, v->sb.uuid, replay_record, v, &info, why, sizeof why);
        if (js == JOURNAL_OK) {
            if (seal_all(v) < 0 || wait_uploads(v) < 0) {
                snprintf(err, errlen, "%s", v->failed);
                rc = -1;
            } else {
                if (journal_remove(v->jdir, s, why, sizeof why) < 0)
                    log_warn("journal %" PRIu64 ": %s", s, why);
                /* uploads finish out of order: later segments may be there */
                v->replaying = 0;
                uint64_t before = v->next_seq;
                if (scan_segments(v, err, errlen) < 0)
                    rc = -1;
                v->stats.segments_after_replay += v->next_seq - before;
            }
            if (info.torn)
                log_info("journal %" PRIu64 ": a torn tail after %" PRIu64 " records (%s)", s,
                         info.nrecords, info.stop);
        } else if (js == JOURNAL_EFOREIGN || js == JOURNAL_EBADHDR) {
            log_warn("journal %" PRIu64 " in %s is not this volume's: %s; left alone", s,
                     v->jdir, why);
        } else {
            snprintf(err, errlen, "journal %" PRIu64 ": %s", s, v->failed[0] ? v->failed : why);
            rc = -1;
        }
        v->replaying = 0;
    }
    free(seqs);
    return rc;
}

/* ---- the sealer: a segment is never left open longer than the seal age ---- */

static void *sealer_main(void *arg)
{
    struct vol *v = arg;
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t step = v->nuploads || v->nra ? 10 : v->seal_age_ms / 4 ? v->seal_age_ms / 4 : 1;
        ts.tv_nsec += (long)(step % 1000) * 1000000L;
        ts.tv_sec += (time_t)(step / 1000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&v->wake, &v->lock, &ts);
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
    free(path);
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
    free(v->orphans);
    free(v->pins);
    free(v->snapshot);
    if (v->keys)
        keys_wipe(v->keys);
    free(v->keys);
    pthread_cond_destroy(&v->wake);
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
static int read_super(struct vol *v, const char *url, const struct vol_opts *o, struct buf *sbuf,
                      char *err, size_t errlen)
{
    char why[STORE_ERRMSG_MAX];
    enum store_err e = store_get(v->st, SUPER_KEY, 0, 0, sbuf, NULL, why, sizeof why);
    if (e == STORE_ENOTFOUND) {
        snprintf(err, errlen, "no volume at %s; make one with buoy create", url);
        return -1;
    }
    if (e) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (super_parse(sbuf->p, sbuf->len, &v->sb, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s/%s: %s", url, SUPER_KEY, why);
        return -1;
    }
    if (!super_encrypted(&v->sb)) {
        if (o->passphrase_file) {
            snprintf(err, errlen, "%s is not encrypted: drop --passphrase-file", url);
            return -1;
        }
        return 0;
    }
    v->keys = xcalloc(1, sizeof *v->keys);
    if (keys_unlock(&v->sb, sbuf->p, o->passphrase_file, url, v->keys, err, errlen) < 0)
        return -1;
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
        if (path_mkdirs(v->jdir, 0700) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", v->jdir, strerror(errno));
            goto fail;
        }
        if (take_local_lock(v, o->cache_dir, uuid, url, err, errlen) < 0)
            goto fail;
        if (o->cache_size != VOL_NO_CACHE) {
            char *path = xasprintf("%s/%s/blocks", o->cache_dir, uuid);
            v->cache = cache_open(path, o->cache_size ? o->cache_size : DEFAULT_CACHE_BYTES,
                                  v->bs, err, errlen);
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

int vol_close(struct vol *v)
{
    if (v->read_only) {
        free_vol(v);
        return 0;
    }
    stop_sealer(v);
    pthread_mutex_lock(&v->lock);
    int rc = v->failed[0] ? -EIO : seal_all(v);
    if (!rc)
        rc = wait_uploads(v);
    if (!rc && v->since_ckpt)
        rc = write_checkpoint(v);
    if (!rc && v->has_lease && !lease_ok(v))
        rc = fail(v, "the writer lease ran out before the close completed");
    pthread_mutex_unlock(&v->lock);
    stop_lease(v);
    if (!rc && v->has_lease) { /* everything is in the store: the next writer need not wait */
        char why[STORE_ERRMSG_MAX];
        if (lease_release(&v->lease, why, sizeof why) != LEASE_OK)
            log_warn("releasing the writer lease: %s (the next writer waits for it to run out)",
                     why);
    }
    free_vol(v);
    return rc;
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
}

/* Records the stats for vol_get_stats callers that find the lock busy. */
static void snapshot(struct vol *v)
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
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
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
