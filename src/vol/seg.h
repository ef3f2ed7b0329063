/* seg.h - segment objects: key names, the builder that writes them and the
 * parser that reads them back.  Pure encoding: no I/O, no clock.
 *
 * Byte layout (docs/FORMAT.md, "Segment"; all integers little-endian):
 *
 *     0   8  magic "BUOYSEG1"
 *     8   4  version (1)
 *    12   4  header_len: bytes before the first data block
 *    16  16  volume uuid
 *    32   8  seq
 *    40   4  epoch
 *    44   4  nextents
 *    48   4  ndata_blocks
 *    52   4  block_size
 *    56   8  created, Unix seconds (signed, two's complement)
 *    64   8  flags
 *    72   8  check: XXH3-64 (seed 0) of [0, header_len) with these 8 bytes as zero
 *    80      extent table, nextents x 24:
 *              lba (8), nblocks (4), kind (4), first data block (4), reserved (4)
 *            block checksums, ndata_blocks x 4: low 32 bits of XXH3-64 (seed 0)
 *            zero padding to header_len
 *    header_len  data blocks, ndata_blocks x block_size
 *
 * Where FORMAT.md leaves room, version 1 as written and read here is strict
 * (a reader that accepts more can be made later; one that accepts less
 * cannot), and everything below is checked by seg_parse_header():
 *   - header_len is exactly seg_header_len(nextents, ndata_blocks), i.e.
 *     80 + 24 x nextents + 4 x ndata_blocks rounded up to 8; padding is zero;
 *   - flags is 0 or SEG_F_ZSTD (a reader refuses any bit it does not know);
 *     with SEG_F_ZSTD the header ends with a chunk table (4 bytes of stored
 *     length per chunk of SEG_CHUNK_BLOCKS blocks, each 1..its raw length)
 *     and header_len counts it;
 *   - seq >= 1 (segments are numbered from 1);
 *   - block_size is a power of two from 512 to 65536;
 *     ndata_blocks x block_size <= SEG_MAX_DATA (256 MiB, the superblock's
 *     segment-size limit); nextents <= SEG_MAX_EXTENTS;
 *   - every extent has nblocks >= 1, kind 1 or 2, reserved 0, and its end
 *     (lba + nblocks) x block_size fits in 64 bits;
 *   - zero extents have first = 0; data extents tile the data region in
 *     table order: the first data extent starts at block 0, each next one
 *     where the previous ended, and together they cover exactly
 *     ndata_blocks.  Every data block therefore belongs to exactly one
 *     extent.
 * The caller checks what the object cannot know alone: that uuid, seq,
 * epoch and block_size match the volume and the key (seg_check_identity()),
 * that the object's size is seg_object_len(), and that extents end within
 * the volume.
 *
 * Key: "seg/HH/SSSSSSSSSSSSSSSS.EEEEEEEE", lower-case hex, relative to the
 * volume URL; HH is the top byte of seq * 0x9E3779B97F4A7C15 (mod 2^64).
 *
 * The builder keeps its data blocks in one buffer with room reserved in
 * front for the largest header it can need, so seg_seal() writes the header
 * right before the data and returns one contiguous object without copying
 * any data: a write is copied once, into the builder, and never again.
 */
#ifndef BUOY_SEG_H
#define BUOY_SEG_H

#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC          "BUOYSEG1"
#define SEG_VERSION        1
#define SEG_FIXED_LEN      80 /* the fixed header: enough to learn header_len */
#define SEG_EXTENT_LEN     24
#define SEG_MIN_BLOCK      512u
#define SEG_MAX_BLOCK      65536u
#define SEG_MAX_DATA       (256u << 20) /* bytes of data blocks per segment */
#define SEG_MAX_EXTENTS    (2u * (SEG_MAX_DATA / SEG_MIN_BLOCK)) /* 1 Mi */
#define SEG_KEY_SIZE       33 /* "seg/HH/" + 16 + "." + 8 + NUL */
#define SEG_KEY_PREFIX_SIZE 25 /* "seg/HH/" + 16 + "." + NUL */
#define SEG_F_ZSTD         1u  /* flags: the data region is packed in zstd chunks */
#define SEG_CHUNK_BLOCKS   16u /* blocks a chunk (the last may have fewer) */

/* Results of the parsers: 0, or one of these. */
#define SEG_CORRUPT   (-1) /* the bytes are not a valid segment header */
#define SEG_NEED_MORE 1    /* a valid start, but too short: see seg_peek() */

enum seg_kind { SEG_DATA = 1, SEG_ZERO = 2 };

struct seg_extent {
    uint64_t lba;     /* first block of the volume */
    uint32_t nblocks; /* >= 1 */
    uint32_t kind;    /* enum seg_kind */
    uint32_t first;   /* data: first block in the data region; zero: 0 */
};

/* ---- keys ---- */

/* The two hex digits HH of seq's key. */
unsigned seg_key_hash(uint64_t seq);
void seg_key(uint64_t seq, uint32_t epoch, char out[SEG_KEY_SIZE]);
/* "seg/HH/SSSSSSSSSSSSSSSS.": lists every segment seq whatever its epoch. */
void seg_key_prefix(uint64_t seq, char out[SEG_KEY_PREFIX_SIZE]);
/* 0 and the numbers, or -1 unless key is exactly a segment key (lower-case
 * hex, right lengths, HH matching seq, nothing before or after). */
int seg_key_parse(const char *key, uint64_t *seq, uint32_t *epoch);

/* ---- sizes ---- */

/* Bytes before the first data block: 80 + 24 n + 4 m rounded up to 8. */
uint64_t seg_header_len(uint64_t nextents, uint64_t ndata_blocks);

/* ---- builder ---- */

struct seg_builder;

/* A builder for segment seq (>= 1) holding up to max_blocks data blocks and
 * 2 x max_blocks extents.  NULL when the arguments break the limits above
 * (seq 0, block_size, max_blocks 0 or max_blocks x block_size > SEG_MAX_DATA).
 * Allocates max_blocks x block_size bytes plus the header room at once;
 * untouched pages cost nothing on Linux. */
struct seg_builder *seg_builder_new(const uint8_t uuid[16], uint64_t seq, uint32_t epoch,
                                    uint32_t block_size, uint32_t max_blocks);
void seg_builder_free(struct seg_builder *b);

/* Appends nblocks blocks of data written at lba and returns the index of the
 * first in the data region (the next ones follow), or -1 if the write does
 * not fit (nblocks > seg_room(), no extent left, sealed) or is invalid
 * (nblocks 0, end beyond 2^64 bytes).  A write that continues the previous
 * extent (same kind, lba right after it) extends it instead of adding one. */
int64_t seg_add_data(struct seg_builder *b, uint64_t lba, uint32_t nblocks, const void *data);
/* Appends a zero (trim / write-zeroes) extent; 0, or -1 as above. */
int seg_add_zero(struct seg_builder *b, uint64_t lba, uint32_t nblocks);

uint64_t seg_builder_seq(const struct seg_builder *b);
uint32_t seg_data_blocks(const struct seg_builder *b);  /* data blocks used */
uint32_t seg_room(const struct seg_builder *b);         /* data blocks still free */
uint32_t seg_extent_count(const struct seg_builder *b); /* extents so far */
/* 1 when no data block or no extent is left: seal it. */
int seg_full(const struct seg_builder *b);
/* Extent i (< seg_extent_count), by value, and data block i
 * (< seg_data_blocks), for reads that hit data not yet uploaded; the block
 * stays valid until the builder is freed.  Out of range: a zeroed extent
 * (kind 0), NULL. */
struct seg_extent seg_extent_at(const struct seg_builder *b, uint32_t i);
const void *seg_block(const struct seg_builder *b, uint32_t i);

/* Seal packs the data region in zstd chunks at this level (> 0). */
void seg_builder_set_zstd(struct seg_builder *b, int level);

/* Writes the header and returns the whole object, *len bytes, contiguous and
 * valid until seg_builder_free().  Nothing can be added afterwards; sealing
 * again rewrites the header (with the new created). */
const void *seg_seal(struct seg_builder *b, int64_t created, size_t *len);

/* ---- parser ---- */

struct seg_hdr {
    uint8_t uuid[16];
    uint64_t seq;
    uint32_t epoch;
    uint32_t header_len;
    uint32_t nextents;
    uint32_t ndata_blocks;
    uint32_t block_size;
    int64_t created;
    uint64_t flags;
    uint64_t check;
    struct seg_extent *ext; /* nextents entries, owned: seg_hdr_free() */
    uint32_t *sums;         /* ndata_blocks block checksums, owned */
    uint32_t nchunks;       /* SEG_F_ZSTD: chunks of the data region */
    uint64_t *chunk_off;    /* SEG_F_ZSTD: nchunks + 1 offsets from header_len, owned */
};

/* Reads the fixed 80 bytes only and says how many bytes the whole header
 * takes: 0 and *header_len; SEG_NEED_MORE when len < SEG_FIXED_LEN
 * (*header_len = SEG_FIXED_LEN); SEG_CORRUPT with the reason in err.  For a
 * ranged GET: read K bytes, peek, fetch the rest if header_len > K. */
int seg_peek(const void *bytes, size_t len, uint32_t *header_len, char *err, size_t errlen);

/* Parses and checks the header at the start of bytes[0..len), which may be
 * the first len bytes of the object or all of it.  0 with *hdr filled (free
 * it with seg_hdr_free); SEG_NEED_MORE when bytes is a valid start but
 * shorter than the header (hdr->header_len then says how long the header is,
 * or SEG_FIXED_LEN if fewer than that were given; nothing to free); or
 * SEG_CORRUPT with a one-line reason in err (nothing to free). */
int seg_parse_header(const void *bytes, size_t len, struct seg_hdr *hdr, char *err,
                     size_t errlen);
/* The same for a whole object: also SEG_CORRUPT (never SEG_NEED_MORE) unless
 * len is exactly seg_object_len(). */
int seg_parse_object(const void *bytes, size_t len, struct seg_hdr *hdr, char *err,
                     size_t errlen);
void seg_hdr_free(struct seg_hdr *hdr);

/* header_len + ndata_blocks x block_size (packed: + the chunks' bytes). */
uint64_t seg_object_len(const struct seg_hdr *hdr);
/* Packed segments (SEG_F_ZSTD): the data region is chunks of
 * SEG_CHUNK_BLOCKS blocks, chunk c stored as chunk_off[c+1] - chunk_off[c]
 * bytes: one zstd frame, or the raw bytes when that length is the chunk's.
 * seg_packed_range gives the byte range of the chunks holding blocks
 * [block, block + n) and the blocks they hold (first, count); seg_unpack
 * turns those bytes back into count blocks at out.  0, or -1 with err. */
int seg_is_packed(const struct seg_hdr *hdr);
void seg_packed_range(const struct seg_hdr *hdr, uint32_t block, uint32_t n, uint64_t *off,
                      uint64_t *len, uint32_t *first, uint32_t *count);
int seg_unpack(const struct seg_hdr *hdr, uint32_t first, uint32_t count, const void *in,
               size_t inlen, void *out, char *err, size_t errlen);
/* Byte offset of data block i in the object. */
uint64_t seg_block_offset(const struct seg_hdr *hdr, uint32_t i);
/* 0 when data (block_size bytes) matches block i's checksum; -1 with a
 * reason naming the segment and block when it does not or i is out of range. */
int seg_verify_block(const struct seg_hdr *hdr, uint32_t i, const void *data, char *err,
                     size_t errlen);
/* 0 when the header belongs to this volume and key; -1 naming the field. */
int seg_check_identity(const struct seg_hdr *hdr, const uint8_t uuid[16], uint64_t seq,
                       uint32_t epoch, uint32_t block_size, char *err, size_t errlen);

/* Low 32 bits of XXH3-64 of one block: the per-block checksum. */
uint32_t seg_block_sum(const void *data, uint32_t block_size);

#endif
