/* ckpt.h - checkpoint objects: key names, a streaming encoder and a decoder
 * that checks everything.  Pure encoding: no I/O.
 *
 * Byte layout (docs/FORMAT.md, "Checkpoint"; all integers little-endian):
 *
 *     0   8  magic "BUOYCKP1"
 *     8   4  version (1)
 *    12   4  epoch of the writer
 *    16  16  volume uuid
 *    32   8  seq S: the map includes every segment up to and including S
 *    40   4  nsegments
 *    44   4  reserved (0)
 *    48   8  nextents
 *    56   8  check: XXH3-64 (seed 0) of the whole object, these 8 bytes as zero
 *    64      segment table, nsegments x 24:
 *              seq (8), epoch (4), header_len (4), live_blocks (4), ndata_blocks (4)
 *            extent array, nextents x 24:
 *              lba (8), nblocks (4), segment table index (4), first data block (4),
 *              reserved (4)
 *    end     64 + 24 x (nsegments + nextents): nothing follows
 *
 * Rules checked by both the encoder and the decoder (the same functions, so
 * the encoder cannot write what the decoder refuses).  Where FORMAT.md is
 * silent, version 1 is strict:
 *   - reserved fields are 0;
 *   - the segment table is sorted by seq, strictly increasing, 1 <= seq <= S;
 *     each entry's epoch <= the checkpoint's epoch (epochs only grow);
 *     1 <= ndata_blocks <= SEG_MAX_DATA / SEG_MIN_BLOCK; header_len is a
 *     multiple of 8 between seg_header_len(0, ndata_blocks) and
 *     seg_header_len(SEG_MAX_EXTENTS, ndata_blocks);
 *   - extents are sorted by lba and do not overlap; nblocks >= 1; the end
 *     lba + nblocks <= CKPT_MAX_LBA (the checkpoint does not carry the block
 *     size, so this is the bound for the smallest, 512 bytes: the caller
 *     checks the last extent against the volume's size);
 *   - an extent's segment index is < nsegments and first + nblocks <= that
 *     segment's ndata_blocks;
 *   - live_blocks of each segment equals the sum of nblocks of the extents
 *     that point into it, and is >= 1 ("only segments that still hold live
 *     data are listed"): GC trusts live_blocks, so a wrong count is refused.
 *
 * Key: "ckpt/SSSSSSSSSSSSSSSS.EEEEEEEE", lower-case hex, relative to the
 * volume URL.  The caller checks that the key's seq and epoch, and the uuid,
 * match the header.
 *
 * Millions of extents without a second copy: the encoder appends each
 * extent to a struct buf as it is given (the engine walks its map once);
 * the decoder checks the object in place and hands out entries by index,
 * decoded from the caller's bytes, so nothing is copied or allocated for
 * the caller to free.
 */
#ifndef BUOY_CKPT_H
#define BUOY_CKPT_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC     "BUOYCKP1"
#define CKPT_VERSION   1
#define CKPT_HDR_LEN   64
#define CKPT_ENTRY_LEN 24 /* both a segment table and an extent array entry */
#define CKPT_KEY_SIZE  31 /* "ckpt/" + 16 + "." + 8 + NUL */
#define CKPT_MAX_LBA   (UINT64_MAX / 512) /* bound on lba + nblocks, see above */

struct ckpt_seg {
    uint64_t seq;
    uint32_t epoch;
    uint32_t header_len;
    uint32_t live_blocks;
    uint32_t ndata_blocks;
};

struct ckpt_extent {
    uint64_t lba;
    uint32_t nblocks;
    uint32_t seg;   /* index into the segment table */
    uint32_t first; /* first data block in that segment */
};

/* ---- keys ---- */

void ckpt_key(uint64_t seq, uint32_t epoch, char out[CKPT_KEY_SIZE]);

/* Snapshots are checkpoints kept under a name: snap/NAME, same layout.
 * Names are 1..64 of [A-Za-z0-9._-], not starting with '.'. */
#define SNAP_PREFIX "snap/"
#define SNAP_NAME_MAX 64
#define SNAP_KEY_SIZE (sizeof SNAP_PREFIX + SNAP_NAME_MAX)
int snap_name_ok(const char *name);
void snap_key(const char *name, char out[SNAP_KEY_SIZE]);
/* 0 and the numbers, or -1 unless key is exactly a checkpoint key. */
int ckpt_key_parse(const char *key, uint64_t *seq, uint32_t *epoch);

/* ---- encoder ---- */

struct ckpt_enc;

/* Starts a checkpoint at the end of out: writes the header and the segment
 * table (segs[0..nsegs), copied; the caller may free it).  Then call
 * ckpt_enc_add() once per extent in lba order and ckpt_enc_finish(). */
struct ckpt_enc *ckpt_enc_new(struct buf *out, const uint8_t uuid[16], uint64_t seq,
                              uint32_t epoch, const struct ckpt_seg *segs, uint32_t nsegs);
/* Appends one extent.  A rule broken here or in ckpt_enc_new() puts the
 * encoder in a sticky error state: later calls do nothing and finish fails. */
void ckpt_enc_add(struct ckpt_enc *e, const struct ckpt_extent *x);
/* Checks the live_blocks totals, fills in nextents and the check, frees e.
 * 0: out holds the object from where it ended before ckpt_enc_new().
 * -1: the first rule broken, in err; out is cut back to where it was. */
int ckpt_enc_finish(struct ckpt_enc *e, char *err, size_t errlen);

/* All at once: the same as new, add each of ext[0..n), finish. */
int ckpt_encode(struct buf *out, const uint8_t uuid[16], uint64_t seq, uint32_t epoch,
                const struct ckpt_seg *segs, uint32_t nsegs, const struct ckpt_extent *ext,
                uint64_t n, char *err, size_t errlen);

/* ---- decoder ---- */

struct ckpt {
    uint8_t uuid[16];
    uint64_t seq;
    uint32_t epoch;
    uint32_t nsegs;
    uint64_t nextents;
    uint64_t check;
    const uint8_t *segtab; /* into the decoded bytes, which must outlive this */
    const uint8_t *exttab;
};

/* 0 when bytes[0..len) is a whole valid checkpoint, with *ck filled; -1 with
 * a one-line reason in err.  Reads everything once; allocates only a
 * temporary array of nsegs counters. */
int ckpt_decode(const void *bytes, size_t len, struct ckpt *ck, char *err, size_t errlen);
/* Entry i of a decoded checkpoint; out of range (i >= ck->nsegs or
 * ck->nextents): all zeros (nblocks 0 marks it, as no real entry has that). */
struct ckpt_seg ckpt_seg_at(const struct ckpt *ck, uint32_t i);
struct ckpt_extent ckpt_extent_at(const struct ckpt *ck, uint64_t i);

#endif
