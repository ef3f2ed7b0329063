/* fcache.h - the bucket filesystem's disk cache of file contents.
 *
 * Byte ranges of objects are cached on the local disk in fixed-size chunks
 * (chunk idx holds the object's bytes [idx * chunk, (idx + 1) * chunk); the
 * object's last chunk may be short and keeps its real length), keyed by
 * (object key, ETag, idx).  An object's bytes under one ETag never change,
 * so a cached chunk is never stale: a lookup under another ETag is a miss,
 * and a put under a new ETag drops every chunk of the key's old one.
 *
 * The bytes the chunk files take on disk never exceed the cap given at
 * open (each chunk is charged its length rounded up to the filesystem's
 * block, and checked against st_blocks once written); the least recently
 * used chunks are evicted to make room.  The index in memory is
 * proportional to the chunks cached (at most cap / fs block of them).
 * Every chunk read back is checked against the XXH3-64 taken at put: a
 * mismatch is a miss, and the chunk is removed and counted.
 *
 * The cache is scratch, never kept: fcache_open empties its directory of
 * the files an earlier cache made there (names "fc-" and 16 hex digits),
 * and fcache_close removes its own.  Other files in the directory are left
 * alone (and not counted against the cap).
 *
 * Thread-safe: every call but fcache_open and fcache_close may be made from
 * many threads at once.  No lock is held across reading or writing a chunk
 * file. */
#ifndef BUOY_FS_FCACHE_H
#define BUOY_FS_FCACHE_H

#include <stddef.h>
#include <stdint.h>

struct fcache;

struct fcache_stats {
    uint64_t hits, misses, hit_bytes; /* fcache_get calls and the bytes hits returned */
    uint64_t chunks, bytes;           /* cached now: chunks, and their length in bytes */
    uint64_t disk_bytes;              /* charged against the cap now (see fcache.c rule 2) */
    uint64_t cap;                     /* the cap on disk_bytes */
    uint64_t puts;                    /* chunks written to disk */
    uint64_t evictions;               /* chunks dropped to make room */
    uint64_t corrupt;                 /* chunks read back that failed their length or checksum,
                                         or could not be read (each dropped) */
    uint64_t put_failed;              /* puts a disk error refused (ENOSPC, EIO, ...) */
    uint64_t put_skipped;             /* puts not cached for want of room (larger than the
                                         cap, or every chunk busy) */
};

/* Opens a cache of at most cap_bytes on disk in directory dir (made 0700
 * when missing), in chunks of chunk_bytes (1 to 1 GiB), after removing what
 * an earlier cache left there.  NULL with a reason in err when dir is not a
 * directory or cannot be made, read or locked (another cache uses it), or
 * cap_bytes holds not one filesystem block. */
struct fcache *fcache_open(const char *dir, uint64_t cap_bytes, uint32_t chunk_bytes, char *err,
                           size_t errlen);
/* Removes every chunk file and frees the cache; no other call may be running. */
void fcache_close(struct fcache *c);
uint32_t fcache_chunk(const struct fcache *c);

/* Copies chunk idx of (key, etag) into dst (chunk_bytes long) and returns
 * its length; 0 when it is not cached, and then dst holds garbage. */
size_t fcache_get(struct fcache *c, const char *key, const char *etag, uint64_t idx, void *dst);
/* Caches chunk idx of (key, etag): len bytes from src, 1 <= len <=
 * chunk_bytes (short only for the object's last chunk).  A new etag for key
 * drops the chunks of its old one first.  0 when cached (or already was);
 * -errno when not: -EINVAL for a bad len, -EFBIG when the chunk alone is
 * larger than the cap, -EBUSY when no room could be made, -ESTALE when a
 * forget of key or a put under another etag came while it was written, or
 * the disk's error (-ENOSPC, -EIO, ...).  A failed put changes the cache
 * only by what it evicted and the old etag's chunks it dropped; the caller
 * may ignore the failure. */
int fcache_put(struct fcache *c, const char *key, const char *etag, uint64_t idx, const void *src,
               size_t len);
/* Drops every cached chunk of key, under any etag, and makes a put of key
 * still being written when this is called not cache its chunk. */
void fcache_forget(struct fcache *c, const char *key);

void fcache_get_stats(struct fcache *c, struct fcache_stats *out);
/* Index memory in bytes. */
size_t fcache_mem_bytes(struct fcache *c);
/* 0 when rules 1 and 2 of fcache.c hold; -1 with the first violation (for
 * tests; call it when no other call is running). */
int fcache_check(struct fcache *c, char *err, size_t errlen);

#endif
