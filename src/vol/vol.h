/* vol.h - the volume engine: a block device on an object store.
 *
 * The engine of docs/ENGINE.md: every call is thread-safe (one lock);
 * writes go to the open segment and its local journal, sealed segments
 * upload in the background (bounded in count and bytes), reads come from
 * memory, the local block cache or ranged GETs, with read-ahead for
 * sequential readers.  The format and its rules are docs/FORMAT.md. */
#ifndef BUOY_VOL_H
#define BUOY_VOL_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

struct vol_opts {
    struct store_opts store;
    const char *cache_dir; /* local journal lives in CACHE_DIR/journal; required */
    int durability_local;  /* flush = journal fdatasync, not upload */
    int checkpoint_every;  /* segments between checkpoints; 0 = 64 */
    int read_only;         /* recover from the store only; change nothing (no cache dir needed) */
    int seal_age_ms;       /* seal and upload an open segment this old; 0 = 1000 */
    uint64_t cache_size;   /* local block cache in bytes; 0 = 512 MiB, VOL_NO_CACHE = none */
    int max_uploads;       /* segment uploads in flight; 0 = 4 */
    uint64_t max_upload_bytes; /* bytes of sealed segments in flight; 0 = 64 MiB */
    int gc;                /* run the background cleaner */
    double gc_threshold;   /* clean segments less live than this; 0 = 0.5 */
    double gc_min_garbage; /* start when this much stored data is garbage; 0 = 0.25 */
    uint64_t gc_rate;      /* bytes copied per second at most; 0 = 32 MiB/s */
    int gc_interval_ms;    /* how often the cleaner looks; 0 = 1000 */
    int lease_ms;          /* the writer lease's time; 0 = 10000 */
    int takeover;          /* take the lease from another holder once it stops renewing */
    const char *passphrase_file; /* an encrypted volume's; must be NULL for a plain one */
};
#define VOL_NO_CACHE UINT64_MAX

struct vol_stats {
    struct store_stats store;
    uint64_t bytes_written; /* by the user */
    uint64_t bytes_read;
    uint64_t segments_uploaded;
    uint64_t bytes_uploaded; /* segment objects, headers included */
    uint64_t extents;        /* in the map */
    uint64_t map_bytes;
    uint64_t checkpoints;
    uint64_t checkpoints_forced; /* written by pausing a write load that never paused */
    uint64_t journal_records_replayed;
    uint64_t segments_ignored; /* found after a missing one at open: not applied */
    uint64_t segments_after_replay; /* at open: in the store past a replayed journal */
    uint64_t pending_bytes;    /* data written but not yet in the store */
    uint64_t journal_bytes;    /* the open journal's size */
    double request_cost;       /* dollars, at S3 standard request prices */
    uint64_t upload_bytes_in_flight; /* sealed segments being uploaded */
    double write_amplification; /* bytes_uploaded / bytes_written */
    uint64_t bytes_fetched;     /* block data read from the store (read-ahead too) */
    uint64_t read_errors;       /* reads answered with an I/O error */
    uint64_t checksum_errors;   /* segment blocks or headers from the store that failed their checks */
    uint64_t readahead_bytes;   /* of those, fetched ahead of a sequential reader */
    uint64_t cache_hit_blocks, cache_miss_blocks; /* stored blocks a read looked for */
    double cache_hit_ratio;
    uint64_t cache_bytes, cache_capacity, cache_corrupt_blocks, cache_mem_bytes;
    uint64_t cache_kept_blocks; /* adopted at open from the last clean close's cache */
    uint64_t gc_segments_cleaned; /* segments GC emptied by copying their live blocks */
    uint64_t gc_bytes_copied;
    uint64_t segments_deleted;    /* segment objects deleted (emptied by GC or overwrites) */
    double garbage_ratio;         /* of the data in durable segments, the share not live */
    uint64_t data_bytes_sealed, data_bytes_stored; /* uploaded segments' data, raw and stored */
    double compression_ratio;     /* sealed / stored (1 without compression) */
    int error; /* in the sticky error state (vol_error says why) */
    /* What was written but would not come back from the store alone (the
     * segments from the first one not in the store on): */
    int unsaved;
    uint64_t unsaved_bytes;
    int64_t unsaved_since;  /* Unix time the oldest of it was written, 0 if unknown */
    int unsaved_in_journal; /* 1: this cache dir's journal holds all of it (the next
                               open replays it); 0: it is only in memory */
    int journal_lost;       /* the journal was removed or replaced while open */
    int lease_lost;         /* the writer lease was lost: this writer stopped */
    int stale; /* the engine was busy: these are the numbers of its last progress */
};

struct vol;

/* Opens an existing volume (buoy create makes one) and recovers it: newest
 * checkpoint, segments after it, then this cache dir's journal.  A writer
 * (not read_only) first takes the volume's lease: at once when it is free
 * or this cache dir's own; else it fails naming the holder, or with
 * takeover waits until the holder has stopped renewing it. */
struct vol *vol_open(const char *url, const struct vol_opts *o, char *err, size_t errlen);
/* Byte offsets and lengths, unaligned allowed.  0, or -errno (-EIO with the
 * reason logged; -EINVAL beyond the end). */
int vol_read(struct vol *v, void *buf, uint64_t off, size_t len);
int vol_write(struct vol *v, const void *buf, uint64_t off, size_t len, int fua);
/* Unmaps: the range reads as zeros.  Partial blocks at the edges are zeroed. */
int vol_trim(struct vol *v, uint64_t off, uint64_t len);
int vol_flush(struct vol *v);
/* Flushes, writes a checkpoint, removes the journal, frees v.  Returns the
 * flush's or checkpoint's error; v is freed either way.  On an error the
 * log says why and exactly what is not in the store and where it is (the
 * journal in the cache dir, replayed by the next open, or nowhere). */
int vol_close(struct vol *v);
/* The same, but on an error that sentence goes into why instead of the
 * log (why NULL: the log). */
int vol_close_report(struct vol *v, char *why, size_t whylen);
/* For crash tests: frees v without flushing anything, as a kill would. */
void vol_abandon(struct vol *v);
uint64_t vol_size(const struct vol *v);
uint32_t vol_block_size(const struct vol *v);
/* Fresh numbers, or when a long flush holds the engine for more than
 * 200 ms, those of its last progress (out->stale set). */
void vol_get_stats(struct vol *v, struct vol_stats *out);
struct vol_info {
    uint8_t uuid[16];
    uint64_t size;
    uint32_t block_size, segment_size;
    int64_t created;
    uint64_t next_seq;        /* the seq the next segment would get */
    uint64_t live_segments;   /* segments holding live data */
    uint64_t live_bytes;      /* bytes of data the map points at */
    uint64_t known_data_bytes; /* data bytes of every segment recovery knows of */
    uint64_t extents;
    uint64_t map_bytes;
    char compression[16]; /* the superblock's: none, zstd, zstd:N */
    char base[1100];      /* a clone's URL@NAME, "" for a volume of its own */
    uint64_t base_segments, base_bytes; /* a clone's: live data still read from its base */
};
void vol_get_info(struct vol *v, struct vol_info *out);

/* Garbage collection, in the foreground: cleans every segment less live
 * than threshold (0: the volume's option), then seals, uploads and writes a
 * checkpoint so the emptied segments are deleted.  progress (may be NULL)
 * is called without the engine's lock after each segment and at the end.
 * 0, or -errno. */
struct vol_gc_progress {
    uint64_t segments_done, segments_total, bytes_copied, segments_deleted;
};
typedef void (*vol_gc_progress_fn)(const struct vol_gc_progress *p, void *arg);
int vol_gc(struct vol *v, double threshold, vol_gc_progress_fn progress, void *arg);

/* Snapshot NAME of the volume as it is now: everything written before is
 * made durable, and the map is kept as the object snap/NAME (no data is
 * copied).  URL@NAME opens it read-only; GC keeps what it references.
 * 0, or -errno with the reason in err (-EEXIST: the name is taken). */
int vol_snapshot(struct vol *v, const char *name, char *err, size_t errlen);

/* Clones (buoy clone): a writable volume at dst that starts as snapshot src
 * (URL@NAME) and shares its segments; nothing is copied.  The base keeps
 * the snapshot while the clone exists (a record clones/NAME/UUID in it).
 * 0, or -errno with the reason in err (-EEXIST: a volume is at dst). */
struct vol_clone_info {
    char uuid[37];
    uint64_t segments, bytes; /* shared with the base */
    uint64_t base_seq;        /* the snapshot's seq: the clone's segments follow it */
};
int vol_clone(const char *src, const char *dst, const struct vol_opts *o,
              struct vol_clone_info *out, char *err, size_t errlen);
/* Deletes snapshot name of the volume at url, unless a clone still reads it
 * (-EBUSY naming it); records of clones that are gone are removed on the
 * way.  -ENOENT: no such snapshot. */
int vol_snapshot_delete(const char *url, const char *name, const struct vol_opts *o, char *err,
                        size_t errlen);
/* The clones made from snapshot name (NULL: from any) of the volume whose
 * store is s that still exist, as URLs (vol_free_urls). */
int vol_live_clones(struct store *s, const char *name, const struct store_opts *so, char ***urls,
                    size_t *n, char *err, size_t errlen);
void vol_free_urls(char **urls, size_t n);
/* The store of the volume at url with its superblock read into sb; for an
 * encrypted volume, its keys unlocked from o->passphrase_file and the
 * encryption layer on top.  NULL + a one-line err. */
struct vol_super;
struct vol_keys;
/* Changes the passphrase of the encrypted volume at url from
 * o->passphrase_file's to new_file's: the master key is rewrapped and the
 * superblock rewritten with If-Match, nothing else (src/vol/passphrase.c).
 * ops and mem are the new Argon2id parameters (0: keep the old ones).  0,
 * or -1 with a one-line err; on error the old passphrase still opens it. */
int vol_change_passphrase(const char *url, const struct vol_opts *o, const char *new_file,
                          uint64_t ops, uint64_t mem, char *err, size_t errlen);
/* Reads and parses the superblock of the volume at url from store s into
 * sb (its text into *text, buf_free it).  With k, an encrypted volume's
 * keys are unlocked from o->passphrase_file into *k (*keyed set), and a
 * passphrase for a plain volume is refused.  0, or -1 with a one-line err
 * and *e (STORE_ENOTFOUND: no volume there). */
int vol_read_super(struct store *s, const char *url, const struct vol_opts *o,
                   struct vol_super *sb, struct buf *text, struct vol_keys *k, int *keyed,
                   enum store_err *e, char *err, size_t errlen);
struct store *vol_open_store(const char *url, const struct vol_opts *o, struct vol_super *sb,
                             char *err, size_t errlen);

/* For tests: stop (1) or resume (0) renewing the writer lease, as a writer
 * cut off from the store would; 2 also stops it noticing, as a writer whose
 * clock is wrong or that was frozen would (only fencing protects then). */
void vol_test_pause_lease(struct vol *v, int paused);

/* s (a store stack of the volume's URL) wrapped in the volume's encryption
 * layer, or s itself when the volume is not encrypted; the result owns s.
 * NULL + err on failure (s is closed). */
struct store *vol_wrap_store(struct vol *v, struct store *s, char *err, size_t errlen);

/* The reason for the sticky error state, "" when there is none. */
const char *vol_error(const struct vol *v);
/* CACHE_DIR/UUID/journal, "" when read-only. */
const char *vol_journal_dir(const struct vol *v);
/* One sentence from st on what was written but is not in the store and
 * where it is (the journal in jdir, or nowhere), or that nothing is lost;
 * it never claims more than the engine can prove. */
void vol_unsaved_note(const struct vol_stats *st, const char *jdir, char *out, size_t n);

#endif
