/* seg.c - segment keys, builder and parser.
 *
 * The byte layout and the rules a version-1 segment obeys are in seg.h; the
 * offsets below are the only place they are spelled as numbers.  Every
 * integer is written and read a byte at a time, little-endian, so the code
 * does not depend on the host's byte order or on struct padding.
 *
 * The builder's memory, for max_blocks data blocks and max_extents extents:
 *
 *     mem: [ header room: seg_header_len(max_extents, max_blocks) ][ data ]
 *                        ^ seal writes the header here, ending at the data
 *
 * so the sealed object is mem[room - header_len, room + data bytes). */
#include "vol/seg.h"
#include "util/mem.h"
#include "util/hash.h"
#include "util/le.h"

#include <inttypes.h>
#include <zstd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define KEY_HASH_MUL 0x9E3779B97F4A7C15ull

/* The fixed header. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_HEADER_LEN = 12,
    OFF_UUID = 16,
    OFF_SEQ = 32,
    OFF_EPOCH = 40,
    OFF_NEXTENTS = 44,
    OFF_NDATA = 48,
    OFF_BLOCK_SIZE = 52,
    OFF_CREATED = 56,
    OFF_FLAGS = 64,
    OFF_CHECK = 72,
};

/* One extent table entry. */
enum { EXT_LBA = 0, EXT_NBLOCKS = 8, EXT_KIND = 12, EXT_FIRST = 16, EXT_RESERVED = 20 };

struct seg_builder {
    uint8_t uuid[16];
    uint64_t seq;
    uint32_t epoch;
    uint32_t block_size;
    uint32_t max_blocks;
    uint32_t max_extents;
    uint32_t nblocks; /* data blocks used */
    uint32_t nextents;
    uint32_t cap_extents;
    struct seg_extent *ext;
    uint32_t *sums; /* max_blocks */
    uint8_t *mem;   /* header room, then the data region */
    size_t room;
    int sealed;
    int zstd_level;  /* > 0: seal packs the data in zstd chunks (SEG_F_ZSTD) */
    uint8_t *packed; /* the packed object, when sealed so */
};

/* ---- errors ---- */

/* "segment seq N: <what>" (or "segment: <what>" before seq is known) into err. */
__attribute__((format(printf, 4, 5))) static int bad(char *err, size_t errlen, uint64_t seq,
                                                     const char *fmt, ...)
{
    if (!err || !errlen)
        return SEG_CORRUPT;
    int n = seq ? snprintf(err, errlen, "segment seq %" PRIu64 ": ", seq)
                : snprintf(err, errlen, "segment: ");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return SEG_CORRUPT;
}

/* ---- keys ---- */

unsigned seg_key_hash(uint64_t seq)
{
    return (unsigned)((seq * KEY_HASH_MUL) >> 56);
}

void seg_key(uint64_t seq, uint32_t epoch, char out[SEG_KEY_SIZE])
{
    snprintf(out, SEG_KEY_SIZE, "seg/%02x/%016" PRIx64 ".%08" PRIx32, seg_key_hash(seq), seq,
             epoch);
}

void seg_key_prefix(uint64_t seq, char out[SEG_KEY_PREFIX_SIZE])
{
    snprintf(out, SEG_KEY_PREFIX_SIZE, "seg/%02x/%016" PRIx64 ".", seg_key_hash(seq), seq);
}

int seg_key_parse(const char *key, uint64_t *seq, uint32_t *epoch)
{
    /* seg/HH/SSSSSSSSSSSSSSSS.EEEEEEEE
     * 0   4 6 7               23 24   32 */
    uint64_t hh, s, e;
    if (strlen(key) != SEG_KEY_SIZE - 1 || memcmp(key, "seg/", 4) != 0 || key[6] != '/' ||
        key[23] != '.')
        return -1;
    if (hex_parse_fixed(key + 4, 2, &hh) < 0 || hex_parse_fixed(key + 7, 16, &s) < 0 ||
        hex_parse_fixed(key + 24, 8, &e) < 0)
        return -1;
    if (s == 0 || hh != seg_key_hash(s))
        return -1;
    *seq = s;
    *epoch = (uint32_t)e;
    return 0;
}

/* ---- sizes and checksums ---- */

uint64_t seg_header_len(uint64_t nextents, uint64_t ndata_blocks)
{
    uint64_t n = SEG_FIXED_LEN + SEG_EXTENT_LEN * nextents + 4 * ndata_blocks;
    return (n + 7) & ~(uint64_t)7;
}

static uint64_t nchunks_of(uint64_t ndata_blocks)
{
    return (ndata_blocks + SEG_CHUNK_BLOCKS - 1) / SEG_CHUNK_BLOCKS;
}

/* With SEG_F_ZSTD the header also holds the chunk table: 4 bytes a chunk. */
static uint64_t header_len_f(uint64_t nextents, uint64_t ndata_blocks, uint64_t flags)
{
    uint64_t n = SEG_FIXED_LEN + SEG_EXTENT_LEN * nextents + 4 * ndata_blocks;
    if (flags & SEG_F_ZSTD)
        n += 4 * nchunks_of(ndata_blocks);
    return (n + 7) & ~(uint64_t)7;
}

uint32_t seg_block_sum(const void *data, uint32_t block_size)
{
    return (uint32_t)XXH3_64bits(data, block_size);
}

/* The check of the whole object with its own check field read as zeros. */
static uint64_t header_check(const uint8_t *h, size_t len)
{
    return xxh3_zeroed8(h, len, OFF_CHECK);
}

static int valid_block_size(uint32_t bs)
{
    return bs >= SEG_MIN_BLOCK && bs <= SEG_MAX_BLOCK && (bs & (bs - 1)) == 0;
}

/* (lba + nblocks) x block_size fits in 64 bits. */
static int end_fits(uint64_t lba, uint32_t nblocks, uint32_t block_size)
{
    uint64_t limit = UINT64_MAX / block_size;
    return lba <= limit && nblocks <= limit - lba;
}

/* ---- builder ---- */

struct seg_builder *seg_builder_new(const uint8_t uuid[16], uint64_t seq, uint32_t epoch,
                                    uint32_t block_size, uint32_t max_blocks)
{
    if (seq == 0 || !valid_block_size(block_size) || max_blocks == 0 ||
        max_blocks > SEG_MAX_DATA / block_size)
        return NULL;
    struct seg_builder *b = xcalloc(1, sizeof *b);
    memcpy(b->uuid, uuid, 16);
    b->seq = seq;
    b->epoch = epoch;
    b->block_size = block_size;
    b->max_blocks = max_blocks;
    b->max_extents = 2 * max_blocks;
    b->cap_extents = b->max_extents < 64 ? b->max_extents : 64;
    b->ext = xmalloc(b->cap_extents * sizeof *b->ext);
    b->sums = xmalloc(max_blocks * sizeof *b->sums);
    b->room = (size_t)header_len_f(b->max_extents, max_blocks, 0);
    b->mem = xmalloc(b->room + (size_t)max_blocks * block_size);
    return b;
}

void seg_builder_free(struct seg_builder *b)
{
    if (!b)
        return;
    free(b->ext);
    free(b->sums);
    free(b->mem);
    free(b->packed);
    free(b);
}

void seg_builder_set_zstd(struct seg_builder *b, int level)
{
    b->zstd_level = level;
}

uint64_t seg_builder_seq(const struct seg_builder *b)
{
    return b->seq;
}

uint32_t seg_data_blocks(const struct seg_builder *b)
{
    return b->nblocks;
}

uint32_t seg_room(const struct seg_builder *b)
{
    return b->sealed ? 0 : b->max_blocks - b->nblocks;
}

uint32_t seg_extent_count(const struct seg_builder *b)
{
    return b->nextents;
}

int seg_full(const struct seg_builder *b)
{
    return b->sealed || b->nblocks == b->max_blocks || b->nextents == b->max_extents;
}

struct seg_extent seg_extent_at(const struct seg_builder *b, uint32_t i)
{
    struct seg_extent none = {0};
    return i < b->nextents ? b->ext[i] : none;
}

const void *seg_block(const struct seg_builder *b, uint32_t i)
{
    if (i >= b->nblocks)
        return NULL;
    return b->mem + b->room + (size_t)i * b->block_size;
}

/* The last extent if a new one of this kind at lba can extend it, else NULL. */
static struct seg_extent *mergeable(struct seg_builder *b, uint64_t lba, uint32_t nblocks,
                                    uint32_t kind)
{
    if (b->nextents == 0)
        return NULL;
    struct seg_extent *last = &b->ext[b->nextents - 1];
    if (last->kind != kind || last->lba + last->nblocks != lba ||
        nblocks > UINT32_MAX - last->nblocks)
        return NULL;
    return last;
}

/* 0 when an extent of nblocks at lba can be added (merged or new). */
static int can_add(struct seg_builder *b, uint64_t lba, uint32_t nblocks, uint32_t kind)
{
    if (b->sealed || nblocks == 0 || !end_fits(lba, nblocks, b->block_size))
        return -1;
    if (!mergeable(b, lba, nblocks, kind) && b->nextents == b->max_extents)
        return -1;
    return 0;
}

static void push_extent(struct seg_builder *b, uint64_t lba, uint32_t nblocks, uint32_t kind,
                        uint32_t first)
{
    struct seg_extent *last = mergeable(b, lba, nblocks, kind);
    if (last) {
        last->nblocks += nblocks;
        return;
    }
    if (b->nextents == b->cap_extents) {
        uint32_t cap = b->cap_extents * 2;
        if (cap > b->max_extents)
            cap = b->max_extents;
        b->ext = xrealloc(b->ext, cap * sizeof *b->ext);
        b->cap_extents = cap;
    }
    b->ext[b->nextents++] = (struct seg_extent){lba, nblocks, kind, first};
}

int64_t seg_add_data(struct seg_builder *b, uint64_t lba, uint32_t nblocks, const void *data)
{
    if (can_add(b, lba, nblocks, SEG_DATA) < 0 || nblocks > seg_room(b))
        return -1;
    uint32_t first = b->nblocks;
    uint8_t *dst = b->mem + b->room + (size_t)first * b->block_size;
    memcpy(dst, data, (size_t)nblocks * b->block_size);
    for (uint32_t i = 0; i < nblocks; i++)
        b->sums[first + i] = seg_block_sum(dst + (size_t)i * b->block_size, b->block_size);
    b->nblocks += nblocks;
    push_extent(b, lba, nblocks, SEG_DATA, first);
    return first;
}

int seg_add_zero(struct seg_builder *b, uint64_t lba, uint32_t nblocks)
{
    if (can_add(b, lba, nblocks, SEG_ZERO) < 0)
        return -1;
    push_extent(b, lba, nblocks, SEG_ZERO, 0);
    return 0;
}

static void put_extent(uint8_t *p, const struct seg_extent *x)
{
    le_put64(p + EXT_LBA, x->lba);
    le_put32(p + EXT_NBLOCKS, x->nblocks);
    le_put32(p + EXT_KIND, x->kind);
    le_put32(p + EXT_FIRST, x->first);
    le_put32(p + EXT_RESERVED, 0);
}

/* Writes the header at h (hl bytes) for flags; the chunk table, when packed,
 * comes from clen. */
static void write_header(struct seg_builder *b, uint8_t *h, size_t hl, int64_t created,
                         uint64_t flags, const uint32_t *clen)
{
    memset(h, 0, hl);
    memcpy(h + OFF_MAGIC, SEG_MAGIC, 8);
    le_put32(h + OFF_VERSION, SEG_VERSION);
    le_put32(h + OFF_HEADER_LEN, (uint32_t)hl);
    memcpy(h + OFF_UUID, b->uuid, 16);
    le_put64(h + OFF_SEQ, b->seq);
    le_put32(h + OFF_EPOCH, b->epoch);
    le_put32(h + OFF_NEXTENTS, b->nextents);
    le_put32(h + OFF_NDATA, b->nblocks);
    le_put32(h + OFF_BLOCK_SIZE, b->block_size);
    le_put64(h + OFF_CREATED, (uint64_t)created);
    le_put64(h + OFF_FLAGS, flags);
    uint8_t *p = h + SEG_FIXED_LEN;
    for (uint32_t i = 0; i < b->nextents; i++, p += SEG_EXTENT_LEN)
        put_extent(p, &b->ext[i]);
    for (uint32_t i = 0; i < b->nblocks; i++, p += 4)
        le_put32(p, b->sums[i]);
    if (flags & SEG_F_ZSTD)
        for (uint64_t c = 0; c < nchunks_of(b->nblocks); c++, p += 4)
            le_put32(p, clen[c]);
    le_put64(h + OFF_CHECK, header_check(h, hl));
}

/* Packs the data region in chunks of SEG_CHUNK_BLOCKS blocks, each one zstd
 * frame, or its raw bytes when zstd does not make it smaller. */
static const void *seal_packed(struct seg_builder *b, int64_t created, size_t *len)
{
    uint64_t nc = nchunks_of(b->nblocks);
    size_t hl = (size_t)header_len_f(b->nextents, b->nblocks, SEG_F_ZSTD);
    size_t chunk = (size_t)SEG_CHUNK_BLOCKS * b->block_size;
    size_t cap = hl + nc * ZSTD_compressBound(chunk);
    uint32_t *clen = xmalloc((nc ? nc : 1) * sizeof *clen);
    free(b->packed);
    b->packed = xmalloc(cap);
    const uint8_t *data = b->mem + b->room;
    size_t off = hl;
    for (uint64_t c = 0; c < nc; c++) {
        size_t raw = c + 1 < nc ? chunk : ((size_t)b->nblocks - c * SEG_CHUNK_BLOCKS) * b->block_size;
        size_t z = ZSTD_compress(b->packed + off, cap - off, data + c * chunk, raw, b->zstd_level);
        if (ZSTD_isError(z) || z >= raw) { /* incompressible: raw */
            memcpy(b->packed + off, data + c * chunk, raw);
            z = raw;
        }
        clen[c] = (uint32_t)z;
        off += z;
    }
    write_header(b, b->packed, hl, created, SEG_F_ZSTD, clen);
    free(clen);
    b->sealed = 1;
    *len = off;
    return b->packed;
}

const void *seg_seal(struct seg_builder *b, int64_t created, size_t *len)
{
    if (b->zstd_level > 0)
        return seal_packed(b, created, len);
    size_t hl = (size_t)seg_header_len(b->nextents, b->nblocks);
    uint8_t *h = b->mem + b->room - hl;
    write_header(b, h, hl, created, 0, NULL);
    b->sealed = 1;
    *len = hl + (size_t)b->nblocks * b->block_size;
    return h;
}

/* ---- parser ---- */

static void read_fixed(const uint8_t *p, struct seg_hdr *h)
{
    memset(h, 0, sizeof *h);
    h->header_len = le_get32(p + OFF_HEADER_LEN);
    memcpy(h->uuid, p + OFF_UUID, 16);
    h->seq = le_get64(p + OFF_SEQ);
    h->epoch = le_get32(p + OFF_EPOCH);
    h->nextents = le_get32(p + OFF_NEXTENTS);
    h->ndata_blocks = le_get32(p + OFF_NDATA);
    h->block_size = le_get32(p + OFF_BLOCK_SIZE);
    h->created = (int64_t)le_get64(p + OFF_CREATED);
    h->flags = le_get64(p + OFF_FLAGS);
    h->check = le_get64(p + OFF_CHECK);
}

/* Magic and version on however many of the first 12 bytes there are. */
static int check_ident(const uint8_t *p, size_t len, char *err, size_t errlen)
{
    size_t n = len < 8 ? len : 8;
    if (n && memcmp(p, SEG_MAGIC, n) != 0)
        return bad(err, errlen, 0, "bad magic (not a buoy segment)");
    if (len >= 12 && le_get32(p + OFF_VERSION) != SEG_VERSION)
        return bad(err, errlen, 0, "format version %" PRIu32 " (this buoy reads version %d)",
                   le_get32(p + OFF_VERSION), SEG_VERSION);
    return 0;
}

/* The fixed fields that decide the header's length. */
static int check_fixed(const struct seg_hdr *h, char *err, size_t errlen)
{
    if (h->seq == 0)
        return bad(err, errlen, 0, "seq is 0 (segments are numbered from 1)");
    if (!valid_block_size(h->block_size))
        return bad(err, errlen, h->seq,
                   "block size %" PRIu32 " is not a power of two in 512..65536", h->block_size);
    if (h->ndata_blocks > SEG_MAX_DATA / h->block_size)
        return bad(err, errlen, h->seq, "%" PRIu32 " data blocks of %" PRIu32
                   " bytes exceed the 256 MiB segment limit", h->ndata_blocks, h->block_size);
    if (h->nextents > SEG_MAX_EXTENTS)
        return bad(err, errlen, h->seq, "%" PRIu32 " extents exceed the limit of %u",
                   h->nextents, SEG_MAX_EXTENTS);
    if (h->flags & ~(uint64_t)SEG_F_ZSTD)
        return bad(err, errlen, h->seq, "unsupported flags %#" PRIx64
                   " (encryption, or something newer than this buoy)", h->flags);
    uint64_t want = header_len_f(h->nextents, h->ndata_blocks, h->flags);
    if (h->header_len != want)
        return bad(err, errlen, h->seq, "header_len %" PRIu32 " does not match %" PRIu32
                   " extents and %" PRIu32 " data blocks (want %" PRIu64 ")",
                   h->header_len, h->nextents, h->ndata_blocks, want);
    return 0;
}

int seg_peek(const void *bytes, size_t len, uint32_t *header_len, char *err, size_t errlen)
{
    const uint8_t *p = bytes;
    struct seg_hdr h;
    if (check_ident(p, len, err, errlen) < 0)
        return SEG_CORRUPT;
    if (len < SEG_FIXED_LEN) {
        *header_len = SEG_FIXED_LEN;
        bad(err, errlen, 0, "have %zu of the %d fixed header bytes", len, SEG_FIXED_LEN);
        return SEG_NEED_MORE;
    }
    read_fixed(p, &h);
    if (check_fixed(&h, err, errlen) < 0)
        return SEG_CORRUPT;
    *header_len = h.header_len;
    return 0;
}

/* The extent table at p: kinds, lengths, and data extents tiling the data region. */
static int parse_extents(const uint8_t *p, struct seg_hdr *h, char *err, size_t errlen)
{
    uint64_t next = 0; /* where the next data extent must start */
    for (uint32_t i = 0; i < h->nextents; i++, p += SEG_EXTENT_LEN) {
        struct seg_extent *x = &h->ext[i];
        x->lba = le_get64(p + EXT_LBA);
        x->nblocks = le_get32(p + EXT_NBLOCKS);
        x->kind = le_get32(p + EXT_KIND);
        x->first = le_get32(p + EXT_FIRST);
        uint32_t reserved = le_get32(p + EXT_RESERVED);
        if (x->nblocks == 0)
            return bad(err, errlen, h->seq, "extent %" PRIu32 " has no blocks", i);
        if (reserved != 0)
            return bad(err, errlen, h->seq, "extent %" PRIu32 ": reserved field is %#" PRIx32
                       ", not 0", i, reserved);
        if (!end_fits(x->lba, x->nblocks, h->block_size))
            return bad(err, errlen, h->seq, "extent %" PRIu32 " ends beyond 2^64 bytes", i);
        if (x->kind == SEG_ZERO) {
            if (x->first != 0)
                return bad(err, errlen, h->seq, "zero extent %" PRIu32
                           " has first data block %" PRIu32 ", not 0", i, x->first);
            continue;
        }
        if (x->kind != SEG_DATA)
            return bad(err, errlen, h->seq, "extent %" PRIu32 " has unknown kind %" PRIu32,
                       i, x->kind);
        if (x->first != next)
            return bad(err, errlen, h->seq, "extent %" PRIu32 " starts at data block %" PRIu32
                       ", want %" PRIu64, i, x->first, next);
        if (x->nblocks > h->ndata_blocks - next)
            return bad(err, errlen, h->seq, "extent %" PRIu32 " runs past the data region (%"
                       PRIu32 " + %" PRIu32 " > %" PRIu32 ")", i, x->first, x->nblocks,
                       h->ndata_blocks);
        next += x->nblocks;
    }
    if (next != h->ndata_blocks)
        return bad(err, errlen, h->seq, "data extents cover %" PRIu64 " of %" PRIu32
                   " data blocks", next, h->ndata_blocks);
    return 0;
}

/* Everything past the fixed fields, on a header known to be all there. */
static int parse_rest(const uint8_t *p, struct seg_hdr *h, char *err, size_t errlen)
{
    uint64_t check = header_check(p, h->header_len);
    if (check != h->check)
        return bad(err, errlen, h->seq, "header checksum mismatch (stored %016" PRIx64
                   ", computed %016" PRIx64 ")", h->check, check);
    size_t sums_off = SEG_FIXED_LEN + (size_t)h->nextents * SEG_EXTENT_LEN;
    size_t chunks_off = sums_off + (size_t)h->ndata_blocks * 4;
    uint64_t nc = h->flags & SEG_F_ZSTD ? nchunks_of(h->ndata_blocks) : 0;
    size_t pad_off = chunks_off + (size_t)nc * 4;
    for (size_t i = pad_off; i < h->header_len; i++)
        if (p[i] != 0)
            return bad(err, errlen, h->seq, "padding byte %zu is not zero", i);
    h->ext = xmalloc(((size_t)h->nextents + 1) * sizeof *h->ext);
    h->sums = xmalloc(((size_t)h->ndata_blocks + 1) * sizeof *h->sums);
    if (parse_extents(p + SEG_FIXED_LEN, h, err, errlen) < 0)
        return SEG_CORRUPT;
    for (uint32_t i = 0; i < h->ndata_blocks; i++)
        h->sums[i] = le_get32(p + sums_off + 4 * (size_t)i);
    if (nc) {
        h->nchunks = (uint32_t)nc;
        h->chunk_off = xmalloc((nc + 1) * sizeof *h->chunk_off);
        h->chunk_off[0] = 0;
        for (uint64_t c = 0; c < nc; c++) {
            uint32_t l = le_get32(p + chunks_off + 4 * c);
            uint64_t raw = (c + 1 < nc ? SEG_CHUNK_BLOCKS
                                        : h->ndata_blocks - c * SEG_CHUNK_BLOCKS) *
                           (uint64_t)h->block_size;
            if (l == 0 || l > raw)
                return bad(err, errlen, h->seq, "chunk %" PRIu64 " is %" PRIu32
                           " bytes: not in 1..%" PRIu64, c, l, raw);
            h->chunk_off[c + 1] = h->chunk_off[c] + l;
        }
    }
    return 0;
}

int seg_parse_header(const void *bytes, size_t len, struct seg_hdr *hdr, char *err,
                     size_t errlen)
{
    const uint8_t *p = bytes;
    uint32_t hl;
    int rc = seg_peek(bytes, len, &hl, err, errlen);
    memset(hdr, 0, sizeof *hdr);
    if (rc == SEG_NEED_MORE)
        hdr->header_len = hl;
    if (rc != 0)
        return rc;
    read_fixed(p, hdr);
    if (len < hl) {
        bad(err, errlen, hdr->seq, "have %zu of the %" PRIu32 " header bytes", len, hl);
        return SEG_NEED_MORE;
    }
    if (parse_rest(p, hdr, err, errlen) < 0) {
        seg_hdr_free(hdr);
        return SEG_CORRUPT;
    }
    return 0;
}

int seg_parse_object(const void *bytes, size_t len, struct seg_hdr *hdr, char *err,
                     size_t errlen)
{
    int rc = seg_parse_header(bytes, len, hdr, err, errlen);
    if (rc == SEG_NEED_MORE) {
        uint32_t hl = hdr->header_len;
        memset(hdr, 0, sizeof *hdr);
        return bad(err, errlen, 0, "object is %zu bytes, shorter than its %" PRIu32
                   "-byte header", len, hl);
    }
    if (rc != 0)
        return rc;
    if (len != seg_object_len(hdr)) {
        bad(err, errlen, hdr->seq, "object is %zu bytes, header says %" PRIu64, len,
            seg_object_len(hdr));
        seg_hdr_free(hdr);
        return SEG_CORRUPT;
    }
    return 0;
}

void seg_hdr_free(struct seg_hdr *hdr)
{
    free(hdr->ext);
    free(hdr->sums);
    free(hdr->chunk_off);
    hdr->ext = NULL;
    hdr->sums = NULL;
    hdr->chunk_off = NULL;
}

uint64_t seg_object_len(const struct seg_hdr *hdr)
{
    if (hdr->flags & SEG_F_ZSTD)
        return hdr->header_len + hdr->chunk_off[hdr->nchunks];
    return hdr->header_len + (uint64_t)hdr->ndata_blocks * hdr->block_size;
}

int seg_is_packed(const struct seg_hdr *hdr)
{
    return (hdr->flags & SEG_F_ZSTD) != 0;
}

void seg_packed_range(const struct seg_hdr *hdr, uint32_t block, uint32_t n, uint64_t *off,
                      uint64_t *len, uint32_t *first, uint32_t *count)
{
    uint32_t c0 = block / SEG_CHUNK_BLOCKS, c1 = (block + n - 1) / SEG_CHUNK_BLOCKS + 1;
    if (c1 > hdr->nchunks)
        c1 = hdr->nchunks;
    *off = hdr->header_len + hdr->chunk_off[c0];
    *len = hdr->chunk_off[c1] - hdr->chunk_off[c0];
    *first = c0 * SEG_CHUNK_BLOCKS;
    uint32_t end = c1 * SEG_CHUNK_BLOCKS;
    *count = (end < hdr->ndata_blocks ? end : hdr->ndata_blocks) - *first;
}

int seg_unpack(const struct seg_hdr *hdr, uint32_t first, uint32_t count, const void *in,
               size_t inlen, void *out, char *err, size_t errlen)
{
    uint32_t c0 = first / SEG_CHUNK_BLOCKS;
    const uint8_t *src = in;
    uint8_t *dst = out;
    size_t done = 0;
    for (uint32_t b = 0; b < count; c0++) {
        uint32_t nb = hdr->ndata_blocks - c0 * SEG_CHUNK_BLOCKS;
        nb = nb < SEG_CHUNK_BLOCKS ? nb : SEG_CHUNK_BLOCKS;
        size_t raw = (size_t)nb * hdr->block_size;
        size_t l = (size_t)(hdr->chunk_off[c0 + 1] - hdr->chunk_off[c0]);
        if (done + l > inlen)
            return bad(err, errlen, hdr->seq, "chunk %" PRIu32 " cut short", c0);
        if (l == raw)
            memcpy(dst, src + done, raw);
        else {
            size_t z = ZSTD_decompress(dst, raw, src + done, l);
            if (ZSTD_isError(z) || z != raw)
                return bad(err, errlen, hdr->seq, "chunk %" PRIu32 " does not decompress (%s)",
                           c0, ZSTD_isError(z) ? ZSTD_getErrorName(z) : "short");
        }
        dst += raw;
        done += l;
        b += nb;
    }
    return 0;
}

uint64_t seg_block_offset(const struct seg_hdr *hdr, uint32_t i)
{
    return hdr->header_len + (uint64_t)i * hdr->block_size;
}

int seg_verify_block(const struct seg_hdr *hdr, uint32_t i, const void *data, char *err,
                     size_t errlen)
{
    if (i >= hdr->ndata_blocks)
        return bad(err, errlen, hdr->seq, "data block %" PRIu32 " out of range (%" PRIu32
                   " data blocks)", i, hdr->ndata_blocks);
    uint32_t sum = seg_block_sum(data, hdr->block_size);
    if (sum != hdr->sums[i])
        return bad(err, errlen, hdr->seq, "data block %" PRIu32 " checksum mismatch (stored %08"
                   PRIx32 ", computed %08" PRIx32 ")", i, hdr->sums[i], sum);
    return 0;
}

int seg_check_identity(const struct seg_hdr *hdr, const uint8_t uuid[16], uint64_t seq,
                       uint32_t epoch, uint32_t block_size, char *err, size_t errlen)
{
    if (memcmp(hdr->uuid, uuid, 16) != 0)
        return bad(err, errlen, hdr->seq, "belongs to another volume (uuid differs)");
    if (hdr->seq != seq)
        return bad(err, errlen, hdr->seq, "found under the key of seq %" PRIu64, seq);
    if (hdr->epoch != epoch)
        return bad(err, errlen, hdr->seq, "epoch %" PRIu32 " in the header, %" PRIu32
                   " in the key", hdr->epoch, epoch);
    if (hdr->block_size != block_size)
        return bad(err, errlen, hdr->seq, "block size %" PRIu32 ", the volume's is %" PRIu32,
                   hdr->block_size, block_size);
    return 0;
}
