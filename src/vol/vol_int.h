/* vol_int.h - the volume engine's insides, shared by its files:
 *
 *   vol.c          the state, the write path, uploads, flush, open and close, stats
 *   vol_read.c     the read path: cache, coalesced ranged GETs, read-ahead
 *   vol_ckpt.c     checkpoints, snapshots, and what may be deleted (rule 8)
 *   vol_gc.c       the cleaner (rule 7): victims, copies, the background thread
 *   vol_lease.c    the writer lease and takeover records (rule 9)
 *   vol_recover.c  recovery at open: origins, checkpoint, segments, journals
 *
 * The rules every one of them keeps are at the top of vol.c. */
#ifndef BUOY_VOL_INT_H
#define BUOY_VOL_INT_H

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
    int64_t opened;           /* Unix time it was opened by this process, 0 if not */
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
    int ckpt_barrier;            /* an overdue checkpoint is being written: nothing opens */
    pthread_cond_t ckpt_done;    /* ckpt_barrier cleared */
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
    char *lock_path;
    /* the local state (rule 10) */
    dev_t jdir_dev;              /* the journal directory opened: what must stay there */
    ino_t jdir_ino;
    int local_lost;              /* rule 10 broke: writes stop, memory is uploaded */
    int journal_gone;            /* ... and the journal files are no longer found by a replay */
    int drained;                 /* drain_local() has run since */
    int fenced;                  /* the lease was lost: journals may never apply again */
    uint64_t local_checked_ms;   /* monotonic: the last check_local() */
    uint64_t ckpt_seq;           /* the newest durable checkpoint's seq, 0 before one */
    uint32_t ckpt_epoch;         /* and its epoch */
    /* the block cache kept from the last clean close (rule 11) */
    uint8_t kept_tag[CACHE_TAG_LEN];
    int lease_prev_ours;         /* the lease, before we took it, was this holder's... */
    uint64_t lease_prev_epoch;   /* ...at this epoch */
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

/* vol.c */
__attribute__((format(printf, 2, 3))) int fail(struct vol *v, const char *fmt, ...);
const struct origin *origin_of(const struct vol *v, uint64_t seq);
int inherited(const struct vol *v, uint64_t seq);
uint32_t add_seg(struct vol *v, uint64_t seq, uint32_t epoch);
void drop_hdr(struct vol *v, struct vseg *s);
void cache_hdr(struct vol *v, uint32_t idx, struct seg_hdr *h);
struct seg_hdr *fetch_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen);
struct seg_hdr *get_hdr(struct vol *v, uint32_t idx, char *err, size_t errlen);
int open_builder(struct vol *v, struct wseg *w);
int any_open(const struct vol *v);
int uploading(const struct vol *v, uint64_t upto);
int wait_uploads(struct vol *v);
int seal(struct vol *v, struct wseg *w);
int write_blocks(struct vol *v, uint64_t lba, uint64_t n, const char *data);
int zero_blocks(struct vol *v, uint64_t lba, uint64_t n);
int seal_all(struct vol *v);
void save_stats(struct vol *v);
int check_local(struct vol *v);
int journal_error(struct vol *v, struct journal *j);
int lose_local(struct vol *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* vol_read.c */
void add_piece(struct read_ctx *c, uint64_t lba, uint64_t n, uint32_t seg, uint32_t block);
struct fetch *plan_fetches(struct read_ctx *c, size_t *nf);
int check_fetch(struct vol *v, struct fetch *f);
void submit_fetch(struct vol *v, struct fetch *f);
void free_fetch_reqs(struct fetch *f);
void reap_readahead(struct vol *v, int wait, uint64_t lba, uint64_t n);
int read_blocks(struct vol *v, uint64_t lba, uint64_t n, char *out);
int in_range(const struct vol *v, uint64_t off, uint64_t len);

/* vol_ckpt.c */
int pinned(const struct vol *v, uint64_t seq, uint32_t epoch);
void pin(struct vol *v, uint64_t seq, uint32_t epoch);
size_t delete_dead(struct vol *v, const char *key);
int write_checkpoint(struct vol *v);

/* vol_lease.c */
int lease_ok(struct vol *v);
int take_lease(struct vol *v, const char *url, const struct vol_opts *o, const char *cache_dir,
               char *err, size_t errlen);
void *lease_main(void *arg);
void stop_lease(struct vol *v);
int load_fences(struct vol *v, char *err, size_t errlen);
int write_fence(struct vol *v, char *err, size_t errlen);

/* vol_gc.c */
double garbage_ratio(const struct vol *v);
void *gc_main(void *arg);

/* vol_recover.c */
int open_origins(struct vol *v, const struct vol_opts *o, char *err, size_t errlen);
void close_origins(struct vol *v);
int load_snapshot(struct vol *v, const char *name, char *err, size_t errlen);
int load_checkpoint(struct vol *v, char *err, size_t errlen);
int load_pins(struct vol *v, char *err, size_t errlen);
void report_gap(struct vol *v);
void find_orphans(struct vol *v);
int scan_segments(struct vol *v, char *err, size_t errlen);
int replay_journals(struct vol *v, char *err, size_t errlen);

#endif
