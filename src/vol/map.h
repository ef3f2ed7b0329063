/* map.h - the extent map: where each block of the volume lives.
 *
 * The map takes a volume block number (LBA, in blocks) to a place in a
 * segment: (segment index, block within that segment's data region).  It
 * holds non-overlapping extents {lba, nblocks, seg, block}, block lba + i
 * living at seg's block + i.  Blocks not covered read as zeros.
 *
 *   map_set()     maps a range, replacing what was there (trimming or
 *                 splitting the extents it overlaps) and merging with a
 *                 neighbour it continues, so sequential writes stay one extent;
 *   map_unset()   unmaps a range (TRIM, write-zeroes);
 *   map_lookup()  splits a range into mapped pieces and holes, for reads;
 *   map_iter_*()  visits every extent in LBA order, for checkpoints;
 *   map_load()    rebuilds a map from a checkpoint's sorted extents in O(n).
 *
 * Whenever blocks stop being referenced (overwritten or unmapped) the map
 * calls on_drop(arg, seg, nblocks), so the engine can keep per-segment
 * live-block counts for GC: blocks ever set == blocks dropped + blocks
 * mapped, at every moment.  on_drop must not call back into the map.
 *
 * Blocks are addressed 0 .. UINT64_MAX - 1 (an extent's end, lba + nblocks,
 * must fit in 64 bits), and an extent's blocks block .. block + nblocks - 1
 * must fit in 32 bits.
 *
 * Cost: a B+tree whose leaves hold packed arrays of 20-byte extents
 * (see map.c).  Set, unset and lookup are O(log n) plus the number of extents
 * they touch.  Memory is 20 bytes per extent divided by the leaves' fill,
 * plus under 1% for the inner nodes: measured 23.3 bytes per extent for a
 * million random single-block writes (test_map.c; glibc's mallinfo2 agrees),
 * 23.1 after map_load(), 30.6 after unmapping half of them at random, and
 * at worst about 41 when unmaps leave every leaf just half full.
 *
 * Threads: the map takes no locks; the caller does (the engine holds
 * v->lock).  map_lookup(), iteration and the counters only read, so several
 * may run at once under a shared lock; map_set(), map_unset() and map_load()
 * need the map to themselves, and invalidate every iterator.
 */
#ifndef BUOY_MAP_H
#define BUOY_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map;
struct map_leaf;

struct map_extent {
    uint64_t lba;     /* first volume block */
    uint32_t nblocks; /* >= 1 */
    uint32_t seg;     /* segment index */
    uint32_t block;   /* data block in seg of block lba */
};

/* nblocks blocks of segment seg are no longer referenced. */
typedef void (*map_drop_fn)(void *arg, uint32_t seg, uint32_t nblocks);

/* One piece of a lookup: [lba, lba + nblocks) lives at seg from block when
 * mapped, or is a hole (reads as zeros; seg and block are 0) when not.
 * A nonzero return stops the lookup, which returns that value. */
typedef int (*map_piece_fn)(void *arg, uint64_t lba, uint64_t nblocks, uint32_t seg,
                            uint32_t block, int mapped);

/* on_drop may be NULL.  Never fails (allocation failure aborts). */
struct map *map_create(map_drop_fn on_drop, void *arg);
/* As map_create with smaller nodes, for tests: leaves of leaf_max extents
 * (3 .. 204) and inner nodes of node_max children (4 .. 256) give deep trees
 * from few extents.  Out-of-range sizes are clamped. */
struct map *map_create_tuned(map_drop_fn on_drop, void *arg, unsigned leaf_max,
                             unsigned node_max);
/* Frees everything; calls no on_drop. */
void map_free(struct map *m);

/* Map [lba, lba + nblocks) to seg starting at block.  0, or -EINVAL when
 * nblocks is 0 or the range does not fit (see above); the map is then
 * unchanged. */
int map_set(struct map *m, uint64_t lba, uint32_t nblocks, uint32_t seg, uint32_t block);
/* Unmap [lba, lba + nblocks).  0 (also for nblocks 0), or -EINVAL when the
 * end does not fit in 64 bits. */
int map_unset(struct map *m, uint64_t lba, uint64_t nblocks);

/* Calls fn for consecutive pieces covering exactly [lba, lba + nblocks), in
 * order.  Two holes are never adjacent, nor two mapped pieces where the
 * second continues the first (same seg, next block) unless together they
 * would pass 2^32 - 1 blocks.  Returns 0, -EINVAL for a range past
 * UINT64_MAX, or fn's first nonzero return. */
int map_lookup(const struct map *m, uint64_t lba, uint64_t nblocks, map_piece_fn fn, void *arg);

/* In-order iteration.  Any change to the map invalidates an iterator.
 *
 *   struct map_iter it;  struct map_extent e;
 *   map_iter_start(m, &it);
 *   while (map_iter_next(&it, &e)) ...
 */
struct map_iter {
    const struct map_leaf *leaf;
    uint32_t i;
};
void map_iter_start(const struct map *m, struct map_iter *it);
/* 1 and the next extent in *e, or 0 at the end. */
int map_iter_next(struct map_iter *it, struct map_extent *e);

/* Fills an empty map from n extents sorted by lba and not overlapping (a
 * checkpoint), in O(n); extents that continue each other are merged.
 * 0, or -EINVAL with a reason in err (may be NULL) when the map is not empty
 * or an extent is invalid or out of order; the map is then unchanged. */
int map_load(struct map *m, const struct map_extent *ext, size_t n, char *err, size_t errlen);

uint64_t map_count(const struct map *m);         /* extents */
uint64_t map_mapped_blocks(const struct map *m); /* blocks covered */
/* Bytes of memory the map holds: every allocation's size as glibc's malloc
 * accounts it (request + 8-byte header, rounded up to 16). */
size_t map_mem_bytes(const struct map *m);

/* Verifies every rule listed at the top of map.c.  0, or -1 with the first
 * broken rule described in err. */
int map_check(const struct map *m, char *err, size_t errlen);

#endif
