/* cache.h - a bounded local disk cache of data blocks read from or written
 * to the store.
 *
 * Segments are immutable, so a cached block never goes stale: it is keyed by
 * (segment index, block index in the segment), the engine's own names for a
 * stored block, and a block the map no longer points at is simply never asked
 * for again and ages out.  Each slot's checksum is kept in memory and every
 * block read back is checked against it, so a damaged cache file costs a
 * miss, never wrong data.  The cache is a ring of fixed-size slots in one
 * file: a put writes the next slots in order and evicts what they held
 * (FIFO), so a run of blocks lands in consecutive slots and is written, and
 * later read, with one system call.
 *
 * Memory: 36 to 60 bytes per slot (a 1 GiB cache of 4 KiB blocks costs 9 to
 * 15 MiB).
 * Contents outlive the process only through cache_close_keep(), which
 * saves the index beside the file (PATH.idx) under the engine's stable
 * names for segments and a tag the engine checks at the next open
 * (cache_open_kept, then cache_adopt or cache_drop_kept); a crash leaves
 * nothing to keep.  An encrypted volume's cache is never kept.
 *
 * Not thread-safe: the engine calls it under its lock. */
#ifndef BUOY_VOL_CACHE_H
#define BUOY_VOL_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;

struct cache_stats {
    uint64_t hits, misses;   /* blocks */
    uint64_t slots, used;    /* capacity and filled slots, in blocks */
    uint64_t write_errors;   /* failed writes to the cache file (the blocks are dropped) */
    uint64_t corrupt;        /* blocks read back that failed their checksum (dropped) */
};

/* Creates (or empties) the cache file at path holding up to bytes /
 * block_size blocks.  NULL with a reason when the file cannot be made or
 * bytes holds fewer than 16 blocks.  sealed: the file holds the blocks
 * encrypted under a key only this process knows (an encrypted volume's
 * cache; 8 more bytes of memory per slot). */
struct cache *cache_open(const char *path, uint64_t bytes, uint32_t block_size, int sealed,
                         char *err, size_t errlen);
/* Opens the cache at path like cache_open, plain (never sealed), but keeps
 * what the last cache_close_keep() saved there, if its index is sound and
 * of this block and cache size: the index is read and removed (durably)
 * first, its tag copied to tag, and its blocks held back for cache_adopt.
 * Otherwise the file is emptied, tag zeroed and why says why nothing was
 * kept.  NULL with err as cache_open. */
#define CACHE_TAG_LEN 64
struct cache *cache_open_kept(const char *path, uint64_t bytes, uint32_t block_size,
                              uint8_t tag[CACHE_TAG_LEN], char *why, size_t whylen, char *err,
                              size_t errlen);
/* 1 while blocks kept from the last close are held back. */
int cache_has_kept(const struct cache *c);
/* Adopts them (before any put): a block whose segment seg_of names (by the
 * name and epoch cache_close_keep got; -1 for a segment that is gone) is
 * cached again, the others dropped.  Returns how many were adopted. */
uint64_t cache_adopt(struct cache *c, int64_t (*seg_of)(void *arg, uint64_t name, uint32_t epoch),
                     void *arg);
/* Drops them (and empties the file).  cache_put does it too. */
void cache_drop_kept(struct cache *c);
/* Syncs the file, saves the index of what it holds for the next open, each
 * block under the name and epoch name_of gives its segment (nonzero: do not
 * keep that block), with tag, and closes; the file stays.  0, or -1 with
 * err, and then the cache is removed as by cache_close.  Never for a sealed
 * cache. */
int cache_close_keep(struct cache *c, const uint8_t tag[CACHE_TAG_LEN],
                     int (*name_of)(void *arg, uint32_t seg, uint64_t *name, uint32_t *epoch),
                     void *arg, char *err, size_t errlen);
/* Closes and removes the file (unless another file took its place). */
void cache_close(struct cache *c);
/* 1 while the open file is still the one at its path; 0 with the reason in
 * err when it was removed or replaced. */
int cache_linked(const struct cache *c, char *err, size_t errlen);

/* How many of the n blocks seg:block, seg:block+1, ... are cached in a row
 * from the first; copies them to out.  Counts a hit per block returned and
 * one miss when it stops short of n. */
uint32_t cache_get(struct cache *c, uint32_t seg, uint32_t block, uint32_t n, void *out);
/* 1 when seg:block is cached (no copy, no stats). */
int cache_has(const struct cache *c, uint32_t seg, uint32_t block);
/* Caches n blocks seg:block.. from data, evicting the oldest slots.  A block
 * already cached is written again (same bytes; the old slot is released). */
void cache_put(struct cache *c, uint32_t seg, uint32_t block, uint32_t n, const void *data);
void cache_get_stats(const struct cache *c, struct cache_stats *out);
/* Index memory in bytes. */
size_t cache_mem_bytes(const struct cache *c);
/* 0 when rule 1 of cache.c holds; -1 with the first violation (for tests). */
int cache_check(const struct cache *c, char *err, size_t errlen);

#endif
