/* test_seg.c - unit tests of the on-store formats of segments and
 * checkpoints (vol/seg.h, vol/ckpt.h): key names; the exact byte offsets of
 * FORMAT.md, read back with the test's own little-endian helpers; round
 * trips of random writes, replayed onto a model of the volume; and
 * corruption: every bit flip of a header, every truncation, bit flips in
 * data, and a few hundred thousand random or mutated inputs.  Every input
 * handed to a parser sits in a heap buffer of exactly its length, so ASan
 * reports any read past the end. */
#include "tap.h"
#include "util/buf.h"
#include "util/mem.h"
#include "vol/ckpt.h"
#include "vol/seg.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static const uint8_t UUID[16] = {0x6f, 0x1c, 0x0d, 0x2e, 0x8a, 0x5b, 0x4c, 0x1e,
                                 0x9f, 0x00, 0x2b, 0x7d, 0x3c, 0x4e, 0x5f, 0x60};

static char err[512];

/* ---- helpers ---- */

static uint64_t rng_x = 0x9E3779B97F4A7C15ull;

/* xorshift64*: the same sequence on every run. */
static uint64_t rnd(void)
{
    rng_x ^= rng_x >> 12;
    rng_x ^= rng_x << 25;
    rng_x ^= rng_x >> 27;
    return rng_x * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(uint64_t n)
{
    return rnd() % n;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void set32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void set64(uint8_t *p, uint64_t v)
{
    set32(p, (uint32_t)v);
    set32(p + 4, (uint32_t)(v >> 32));
}

/* A heap copy of exactly n bytes (ASan's redzone right after). */
static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *q = xmalloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

static void flip_bit(uint8_t *p, size_t bit)
{
    p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

/* XXH3-64 of p[0, len) with the 8 bytes at check_off as zero, computed the
 * plain way (a copy), independently of the code under test. */
static uint64_t check_of(const uint8_t *p, size_t len, size_t check_off)
{
    uint8_t *c = dup_bytes(p, len);
    memset(c + check_off, 0, 8);
    uint64_t v = XXH3_64bits(c, len);
    free(c);
    return v;
}

/* Rewrites a segment header's check so a mutation reaches the deeper checks. */
static void fix_seg_check(uint8_t *p, size_t hl)
{
    set64(p + 72, check_of(p, hl, 72));
}

static void fix_ckpt_check(uint8_t *p, size_t len)
{
    set64(p + 56, check_of(p, len, 56));
}

/* A small segment: data at lba 100 (2 blocks), zero at 7 (3), data at 50 (1). */
static struct seg_builder *small_segment(uint32_t bs, const uint8_t *data)
{
    struct seg_builder *b = seg_builder_new(UUID, 0x0102030405060708ull, 0x0a0b0c0d, bs, 4);
    seg_add_data(b, 100, 2, data);
    seg_add_zero(b, 7, 3);
    seg_add_data(b, 50, 1, data + 2 * bs);
    return b;
}

/* ---- segment keys ---- */

static void test_seg_keys(void)
{
    char key[SEG_KEY_SIZE], pre[SEG_KEY_PREFIX_SIZE];
    uint64_t seq;
    uint32_t epoch;

    /* HH values computed outside buoy: (S * 0x9E3779B97F4A7C15 mod 2^64) >> 56 */
    seg_key(1, 0, key);
    is_str(key, "seg/9e/0000000000000001.00000000", "key of seq 1 epoch 0");
    seg_key(2, 7, key);
    is_str(key, "seg/3c/0000000000000002.00000007", "key of seq 2 epoch 7");
    seg_key(0x123456789abcdef0ull, 0xdeadbeef, key);
    is_str(key, "seg/c9/123456789abcdef0.deadbeef", "lower-case hex everywhere");
    seg_key(UINT64_MAX, UINT32_MAX, key);
    is_str(key, "seg/61/ffffffffffffffff.ffffffff", "largest seq and epoch");
    seg_key_prefix(12, pre);
    is_str(pre, "seg/6a/000000000000000c.", "listing prefix of seq 12");

    ok(seg_key_parse("seg/c9/123456789abcdef0.deadbeef", &seq, &epoch) == 0 &&
           seq == 0x123456789abcdef0ull && epoch == 0xdeadbeef,
       "a key parses back to its seq and epoch");
    int bad_rt = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t s = rnd() >> below(64);
        uint32_t e = (uint32_t)(rnd() >> below(32));
        if (s == 0)
            s = 1;
        seg_key(s, e, key);
        if (seg_key_parse(key, &seq, &epoch) != 0 || seq != s || epoch != e)
            bad_rt++;
        seg_key_prefix(s, pre);
        if (strncmp(key, pre, strlen(pre)) != 0)
            bad_rt++;
    }
    is_int(bad_rt, 0, "10000 random keys parse back and start with their prefix");

    static const char *const bad_keys[] = {
        "",
        "seg/",
        "seg/9e/0000000000000001.0000000",     /* epoch one digit short */
        "seg/9e/0000000000000001.000000000",   /* one digit long */
        "seg/9e/000000000000001.000000000",    /* seq short, epoch long */
        "seg/9f/0000000000000001.00000000",    /* HH does not match seq */
        "seg/9E/0000000000000001.00000000",    /* upper-case HH */
        "seg/c9/123456789ABCDEF0.deadbeef",    /* upper-case seq */
        "seg/c9/123456789abcdef0.DEADBEEF",    /* upper-case epoch */
        "seg/9e/0000000000000001_00000000",    /* wrong separator */
        "seg/9e-0000000000000001.00000000",    /* wrong separator */
        "seh/9e/0000000000000001.00000000",    /* wrong directory */
        "/seg/9e/0000000000000001.0000000",    /* leading slash */
        "seg/9e/0000000000000001.0000000 ",    /* trailing space */
        "seg/9e/ 000000000000001.00000000",    /* space in seq */
        "seg/9e/0x00000000000001.00000000",    /* 0x */
        "seg/9e/000000000000000g.00000000",    /* not hex */
        "seg/00/0000000000000000.00000000",    /* seq 0 (segments start at 1) */
        "ckpt/0000000000000001.00000000",      /* a checkpoint key */
        "vol/seg/9e/0000000000000001.00000000" /* not relative to the volume */
    };
    int accepted = 0;
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        if (seg_key_parse(bad_keys[i], &seq, &epoch) == 0) {
            diag("accepted: [%s]", bad_keys[i]);
            accepted++;
        }
    }
    is_int(accepted, 0, "%zu malformed segment keys are all refused",
           sizeof bad_keys / sizeof bad_keys[0]);
    is_int(seg_key_hash(0), 0, "seq 0 hashes to 00");
}

/* ---- segment layout ---- */

static void test_seg_golden(void)
{
    const uint32_t bs = 512;
    uint8_t data[3 * 512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);

    is_int(seg_header_len(0, 0), 80, "header_len of an empty segment is 80");
    is_int(seg_header_len(1, 1), 112, "80 + 24 + 4 = 108 rounds up to 112");
    is_int(seg_header_len(3, 3), 168, "80 + 72 + 12 = 164 rounds up to 168");
    is_int(seg_header_len(2048, 2048), 80 + 24 * 2048 + 4 * 2048, "2048 single-block writes");

    struct seg_builder *b = seg_builder_new(UUID, 0x0102030405060708ull, 0x0a0b0c0d, bs, 4);
    is_int(seg_add_data(b, 100, 2, data), 0, "first data write starts at data block 0");
    is_int(seg_add_zero(b, 7, 3), 0, "zero extent added");
    is_int(seg_add_data(b, 50, 1, data + 2 * bs), 2, "next data write starts at data block 2");
    is_int(seg_data_blocks(b), 3, "3 data blocks used");
    is_int(seg_room(b), 1, "1 data block left");
    is_int(seg_extent_count(b), 3, "3 extents");
    ok(!seg_full(b), "not full");
    ok(memcmp(seg_block(b, 2), data + 2 * bs, bs) == 0, "seg_block reads back an unsealed block");

    size_t len;
    const uint8_t *o = seg_seal(b, 0x1122334455667788ll, &len);
    is_int(len, 168 + 3 * 512, "object is header_len + 3 blocks");
    ok(memcmp(o, "BUOYSEG1", 8) == 0, "magic BUOYSEG1 at offset 0");
    is_int(le32(o + 8), 1, "version 1 at offset 8");
    is_int(le32(o + 12), 168, "header_len at offset 12");
    ok(memcmp(o + 16, UUID, 16) == 0, "uuid at offset 16");
    ok(o[32] == 0x08 && o[39] == 0x01 && le64(o + 32) == 0x0102030405060708ull,
       "seq at offset 32, little-endian");
    ok(o[40] == 0x0d && le32(o + 40) == 0x0a0b0c0d, "epoch at offset 40, little-endian");
    is_int(le32(o + 44), 3, "nextents at offset 44");
    is_int(le32(o + 48), 3, "ndata_blocks at offset 48");
    is_int(le32(o + 52), 512, "block_size at offset 52");
    ok(le64(o + 56) == 0x1122334455667788ull, "created at offset 56");
    ok(le64(o + 64) == 0, "flags 0 at offset 64");
    ok(le64(o + 72) == check_of(o, 168, 72), "offset 72: XXH3-64 of the header, field as zero");

    static const uint64_t want[3][4] = {{100, 2, 1, 0}, {7, 3, 2, 0}, {50, 1, 1, 2}};
    for (int i = 0; i < 3; i++) {
        const uint8_t *x = o + 80 + 24 * i;
        ok(le64(x) == want[i][0] && le32(x + 8) == want[i][1] && le32(x + 12) == want[i][2] &&
               le32(x + 16) == want[i][3] && le32(x + 20) == 0,
           "extent %d at offset %d: lba, nblocks, kind, first, reserved", i, 80 + 24 * i);
    }
    int sums_ok = 1;
    for (int i = 0; i < 3; i++)
        sums_ok &= le32(o + 152 + 4 * i) == (uint32_t)XXH3_64bits(data + i * bs, bs);
    ok(sums_ok, "block checksums at offset 152: low 32 bits of XXH3-64 of each block");
    ok(le32(o + 164) == 0, "padding 164..167 is zero");
    ok(memcmp(o + 168, data, sizeof data) == 0, "data blocks from header_len, in write order");

    struct seg_hdr h;
    uint8_t *copy = dup_bytes(o, len);
    if (!ok(seg_parse_object(copy, len, &h, err, sizeof err) == 0, "the sealed object parses"))
        bail_out(err);
    ok(h.seq == 0x0102030405060708ull && h.epoch == 0x0a0b0c0d && h.block_size == 512 &&
           h.nextents == 3 && h.ndata_blocks == 3 && h.header_len == 168 &&
           h.created == 0x1122334455667788ll && memcmp(h.uuid, UUID, 16) == 0,
       "parsed fixed fields");
    ok(h.ext[2].lba == 50 && h.ext[2].first == 2 && h.ext[1].kind == SEG_ZERO,
       "parsed extents");
    is_int(seg_block_offset(&h, 2), 168 + 1024, "block 2 is at header_len + 2 x 512");
    is_int(seg_object_len(&h), len, "seg_object_len");
    is_int(seg_check_identity(&h, UUID, 0x0102030405060708ull, 0x0a0b0c0d, 512, err,
                              sizeof err),
           0, "identity matches the key and volume");
    uint8_t other[16] = {0};
    ok(seg_check_identity(&h, other, h.seq, h.epoch, 512, err, sizeof err) < 0 &&
           strstr(err, "another volume"),
       "another volume's uuid is refused: %s", err);
    ok(seg_check_identity(&h, UUID, h.seq, h.epoch + 1, 512, err, sizeof err) < 0 &&
           strstr(err, "epoch"),
       "an epoch other than the key's is refused: %s", err);
    ok(seg_check_identity(&h, UUID, h.seq + 1, h.epoch, 512, err, sizeof err) < 0,
       "a seq other than the key's is refused: %s", err);
    ok(seg_check_identity(&h, UUID, h.seq, h.epoch, 4096, err, sizeof err) < 0,
       "a block size other than the volume's is refused: %s", err);
    ok(seg_verify_block(&h, 3, data, err, sizeof err) < 0 && strstr(err, "out of range"),
       "verifying block 3 of 3 is an error: %s", err);
    seg_hdr_free(&h);
    free(copy);

    ok(seg_add_data(b, 200, 1, data) < 0, "nothing can be added after seal");
    ok(seg_add_zero(b, 200, 1) < 0, "no zero extent either");
    seg_builder_free(b);
}

/* ---- builder limits ---- */

static void test_seg_builder_limits(void)
{
    uint8_t data[8 * 512] = {0};
    ok(seg_builder_new(UUID, 0, 1, 512, 4) == NULL, "seq 0 is refused");
    ok(seg_builder_new(UUID, 1, 1, 1000, 4) == NULL, "block size 1000 is refused");
    ok(seg_builder_new(UUID, 1, 1, 256, 4) == NULL, "block size 256 is refused");
    ok(seg_builder_new(UUID, 1, 1, 131072, 4) == NULL, "block size 128 KiB is refused");
    ok(seg_builder_new(UUID, 1, 1, 512, 0) == NULL, "0 blocks is refused");
    ok(seg_builder_new(UUID, 1, 1, 4096, 65537) == NULL, "more than 256 MiB is refused");

    struct seg_builder *b = seg_builder_new(UUID, 1, 1, 512, 4);
    ok(seg_add_data(b, 0, 0, data) < 0, "a 0-block write is refused");
    ok(seg_add_zero(b, 0, 0) < 0, "a 0-block zero extent is refused");
    ok(seg_add_data(b, UINT64_MAX / 512, 1, data) < 0,
       "an extent ending past 2^64 bytes is refused");
    ok(seg_add_data(b, UINT64_MAX / 512 - 1, 1, data) == 0, "one ending at the limit is fine");
    seg_builder_free(b);

    b = seg_builder_new(UUID, 1, 1, 512, 4);
    ok(seg_add_data(b, 0, 5, data) < 0, "a write larger than the room is refused");
    is_int(seg_data_blocks(b), 0, "and leaves nothing behind");
    is_int(seg_add_data(b, 10, 1, data), 0, "lba 10 at block 0");
    is_int(seg_add_data(b, 11, 2, data), 1, "lba 11 at block 1");
    is_int(seg_extent_count(b), 1, "a write continuing the last extent extends it");
    is_int(seg_extent_at(b, 0).nblocks, 3, "to 3 blocks");
    is_int(seg_add_data(b, 20, 1, data), 3, "lba 20 at block 3");
    ok(seg_full(b), "full when every data block is used");
    ok(seg_add_data(b, 21, 1, data) < 0, "a full builder refuses data");
    is_int(seg_add_zero(b, 30, 1), 0, "but takes a zero extent");
    is_int(seg_extent_count(b), 3, "3 extents");
    ok(seg_block(b, 4) == NULL, "seg_block past the data is NULL");
    is_int(seg_extent_at(b, 3).kind, 0, "seg_extent_at past the table is kind 0");
    seg_builder_free(b);

    b = seg_builder_new(UUID, 1, 1, 512, 2); /* 4 extents at most */
    int added = 0;
    for (int i = 0; i < 10; i++)
        added += seg_add_zero(b, (uint64_t)i * 2, 1) == 0;
    is_int(added, 4, "a builder for 2 blocks takes 4 extents");
    ok(seg_full(b), "and is then full");
    ok(seg_add_data(b, 100, 1, data) < 0, "even with data room left, a new extent is refused");
    ok(seg_add_zero(b, 7, 2) == 0, "a zero extent continuing the last one still merges");
    size_t len;
    const uint8_t *o = seg_seal(b, 0, &len);
    struct seg_hdr h;
    uint8_t *copy = dup_bytes(o, len);
    if (!ok(seg_parse_object(copy, len, &h, err, sizeof err) == 0 && h.ndata_blocks == 0 &&
                h.nextents == 4 && h.ext[3].nblocks == 3,
            "a segment of zero extents only parses"))
        diag("%s", err);
    seg_hdr_free(&h);
    free(copy);
    seg_builder_free(b);
}

/* ---- round trips ---- */


/* One random segment: writes go to the builder and to a model of the volume;
 * the parsed object replayed onto zeros must equal the model. */
static int roundtrip_one(uint32_t bs, uint32_t max_blocks, char *why, size_t whylen)
{
    const uint64_t vol_blocks = bs >= 65536 ? 40 : 300; /* the model volume */
    size_t vol_len = (size_t)vol_blocks * bs;
    uint8_t *model = xcalloc(1, vol_len), *replay = xcalloc(1, vol_len);
    uint8_t *wbuf = xmalloc((size_t)max_blocks * bs);
    uint64_t seq = 1 + below(1000000), next_lba = 0;
    uint32_t epoch = (uint32_t)rnd();
    struct seg_builder *b = seg_builder_new(UUID, seq, epoch, bs, max_blocks);
    int ret = -1;

    for (int op = 0; op < 400 && !seg_full(b); op++) {
        uint32_t n = 1 + (uint32_t)below(8);
        uint64_t lba = below(4) == 0 ? next_lba : below(vol_blocks - 8);
        if (lba + n > vol_blocks)
            lba = 0;
        if (below(5) == 0) {
            if (seg_add_zero(b, lba, n) < 0)
                continue;
            memset(model + lba * bs, 0, (size_t)n * bs);
        } else {
            if (n > seg_room(b))
                n = seg_room(b);
            fill_random(wbuf, (size_t)n * bs);
            uint32_t want = seg_data_blocks(b);
            int64_t first = seg_add_data(b, lba, n, wbuf);
            if (first != want) {
                snprintf(why, whylen, "add_data returned %" PRId64 ", want %" PRIu32, first, want);
                goto out;
            }
            memcpy(model + lba * bs, wbuf, (size_t)n * bs);
            if (memcmp(seg_block(b, (uint32_t)first), wbuf, bs) != 0) {
                snprintf(why, whylen, "seg_block does not return what was written");
                goto out;
            }
        }
        next_lba = lba + n;
    }

    size_t len;
    int64_t created = (int64_t)rnd();
    const uint8_t *o = seg_seal(b, created, &len);
    uint8_t *obj = dup_bytes(o, len);
    struct seg_hdr h;
    if (seg_parse_object(obj, len, &h, why, whylen) != 0) {
        free(obj);
        goto out;
    }
    if (h.seq != seq || h.epoch != epoch || h.created != created ||
        h.nextents != seg_extent_count(b) || h.ndata_blocks != seg_data_blocks(b)) {
        snprintf(why, whylen, "header fields differ from the builder's");
        goto done;
    }
    for (uint32_t i = 0; i < h.nextents; i++) {
        struct seg_extent x = seg_extent_at(b, i), *y = &h.ext[i];
        if (x.lba != y->lba || x.nblocks != y->nblocks || x.kind != y->kind ||
            x.first != y->first) {
            snprintf(why, whylen, "extent %" PRIu32 " differs from the builder's", i);
            goto done;
        }
        if (y->kind == SEG_DATA)
            memcpy(replay + y->lba * bs, obj + seg_block_offset(&h, y->first),
                   (size_t)y->nblocks * bs);
        else
            memset(replay + y->lba * bs, 0, (size_t)y->nblocks * bs);
    }
    for (uint32_t i = 0; i < h.ndata_blocks; i++) {
        if (seg_verify_block(&h, i, obj + seg_block_offset(&h, i), why, whylen) != 0)
            goto done;
        if (memcmp(seg_block(b, i), obj + seg_block_offset(&h, i), bs) != 0) {
            snprintf(why, whylen, "data block %" PRIu32 " differs from seg_block", i);
            goto done;
        }
    }
    if (memcmp(model, replay, vol_len) != 0) {
        snprintf(why, whylen, "replaying the segment does not give the volume written");
        goto done;
    }
    ret = 0;
done:
    seg_hdr_free(&h);
    free(obj);
out:
    seg_builder_free(b);
    free(model);
    free(replay);
    free(wbuf);
    return ret;
}

/* The size FORMAT.md's costs assume: 8 MiB, 2048 single-block writes. */
static void test_seg_full_size(void)
{
    const uint32_t bs = 4096, nb = 2048;
    uint8_t *blk = xmalloc(bs);
    struct seg_builder *b = seg_builder_new(UUID, 77, 1, bs, nb);
    int wrong = 0;
    for (uint32_t i = 0; i < nb; i++) {
        fill_random(blk, 16);
        wrong += seg_add_data(b, (uint64_t)i * 2, 1, blk) != i;
    }
    is_int(wrong, 0, "2048 scattered single-block writes get data blocks 0..2047");
    ok(seg_full(b), "and fill an 8 MiB segment");
    size_t len;
    const uint8_t *o = seg_seal(b, 1, &len);
    is_int(len, 80 + 24 * 2048 + 4 * 2048 + 8 * 1024 * 1024,
           "object is 80 + 24 x 2048 + 4 x 2048 header bytes plus 8 MiB");
    struct seg_hdr h;
    ok(seg_parse_object(o, len, &h, err, sizeof err) == 0 && h.nextents == 2048,
       "and parses");
    int bad_blocks = 0;
    for (uint32_t i = 0; i < nb; i++)
        bad_blocks += seg_verify_block(&h, i, o + seg_block_offset(&h, i), err, sizeof err) != 0;
    is_int(bad_blocks, 0, "every block verifies");
    seg_hdr_free(&h);
    seg_builder_free(b);
    free(blk);
}

static void test_seg_roundtrip(void)
{
    static const uint32_t sizes[] = {512, 1024, 4096, 65536};
    int failed = 0, n = 0;
    char why[512] = "";
    for (int i = 0; i < 120 && !failed; i++, n++) {
        uint32_t bs = sizes[below(4)];
        uint32_t max = bs == 65536 ? 1 + (uint32_t)below(8) : 1 + (uint32_t)below(80);
        if (roundtrip_one(bs, max, why, sizeof why) != 0)
            failed = 1;
    }
    ok(!failed, "%d random segments replay to the volume that was written%s%s", n,
       failed ? ": " : "", failed ? why : "");
}

/* ---- headers read in pieces ---- */

static void test_seg_peek(void)
{
    uint8_t data[3 * 512] = {1, 2, 3};
    struct seg_builder *b = small_segment(512, data);
    size_t len;
    const uint8_t *o = seg_seal(b, 1, &len);
    uint32_t hl = 0;

    uint8_t *p = dup_bytes(o, 80);
    ok(seg_peek(p, 80, &hl, err, sizeof err) == 0 && hl == 168,
       "the first 80 bytes tell header_len (168)");
    ok(seg_peek(p, 80, &hl, NULL, 0) == 0, "err may be NULL");
    struct seg_hdr h0;
    ok(seg_parse_header(NULL, 0, &h0, err, sizeof err) == SEG_NEED_MORE && h0.header_len == 80,
       "no bytes at all: need the fixed 80");
    free(p);
    p = dup_bytes(o, 79);
    ok(seg_peek(p, 79, &hl, err, sizeof err) == SEG_NEED_MORE && hl == 80,
       "79 bytes: need more, 80 of them: %s", err);
    free(p);
    p = dup_bytes("BUOYSEX", 7);
    ok(seg_peek(p, 7, &hl, err, sizeof err) == SEG_CORRUPT && strstr(err, "magic"),
       "7 bytes that cannot start a segment are corrupt, not short: %s", err);
    free(p);
    p = dup_bytes(o, 12);
    p[8] = 2;
    ok(seg_peek(p, 12, &hl, err, sizeof err) == SEG_CORRUPT && strstr(err, "version 2"),
       "version 2 is refused from 12 bytes: %s", err);
    free(p);

    struct seg_hdr h;
    p = dup_bytes(o, 100);
    ok(seg_parse_header(p, 100, &h, err, sizeof err) == SEG_NEED_MORE && h.header_len == 168,
       "100 bytes: need more, header_len 168: %s", err);
    free(p);
    p = dup_bytes(o, 168);
    ok(seg_parse_header(p, 168, &h, err, sizeof err) == 0 && h.ndata_blocks == 3,
       "exactly header_len bytes parse as a header");
    seg_hdr_free(&h);
    free(p);
    ok(seg_parse_object(o, len - 1, &h, err, sizeof err) == SEG_CORRUPT,
       "a whole object one byte short is corrupt: %s", err);
    seg_builder_free(b);
}

/* Every prefix of a sealed segment: a header parse says need-more until
 * header_len, then succeeds; an object parse fails until the full length. */
static void test_seg_truncate(void)
{
    uint8_t data[3 * 512];
    fill_random(data, sizeof data);
    struct seg_builder *b = small_segment(512, data);
    size_t len;
    const uint8_t *o = seg_seal(b, 1, &len);
    int wrong_hdr = 0, wrong_obj = 0;
    for (size_t l = 0; l <= len; l++) {
        uint8_t *p = dup_bytes(o, l);
        struct seg_hdr h;
        int rc = seg_parse_header(p, l, &h, err, sizeof err);
        if (rc != (l < 168 ? SEG_NEED_MORE : 0))
            wrong_hdr++;
        if (rc == 0)
            seg_hdr_free(&h);
        rc = seg_parse_object(p, l, &h, err, sizeof err);
        if (rc != (l == len ? 0 : SEG_CORRUPT))
            wrong_obj++;
        if (rc == 0)
            seg_hdr_free(&h);
        free(p);
    }
    is_int(wrong_hdr, 0, "%zu prefixes: need-more below header_len, a header from there", len + 1);
    is_int(wrong_obj, 0, "%zu prefixes: only the whole object parses as one", len + 1);
    uint8_t *longer = xcalloc(1, len + 1);
    memcpy(longer, o, len);
    struct seg_hdr h;
    ok(seg_parse_object(longer, len + 1, &h, err, sizeof err) == SEG_CORRUPT,
       "a byte too many is refused: %s", err);
    free(longer);
    seg_builder_free(b);
}

/* Every single bit flip in the header is refused.  No field is exempt: the
 * check covers everything but itself, and a flip in the check mismatches. */
static void test_seg_header_flips(void)
{
    uint8_t data[3 * 512];
    fill_random(data, sizeof data);
    struct seg_builder *b = small_segment(512, data);
    size_t len;
    const uint8_t *o = seg_seal(b, 1, &len);
    size_t bits = 168 * 8, refused = 0, hdr_refused = 0, in_check = 0;
    for (size_t bit = 0; bit < bits; bit++) {
        uint8_t *p = dup_bytes(o, len);
        flip_bit(p, bit);
        struct seg_hdr h;
        int rc = seg_parse_object(p, len, &h, err, sizeof err);
        if (rc == SEG_CORRUPT)
            refused++;
        else if (rc == 0)
            seg_hdr_free(&h);
        if (bit >= 72 * 8 && bit < 80 * 8 && rc == SEG_CORRUPT && strstr(err, "checksum"))
            in_check++;
        rc = seg_parse_header(p, 168, &h, err, sizeof err); /* as from a ranged GET */
        if (rc == SEG_CORRUPT)
            hdr_refused++;
        else if (rc == 0)
            seg_hdr_free(&h);
        free(p);
    }
    is_int(refused, bits, "all %zu single-bit flips of the 168-byte header are refused", bits);
    is_int(hdr_refused, bits, "and all are refused from the header's 168 bytes alone");
    is_int(in_check, 64, "flips in the check field are reported as a checksum mismatch");

    /* flips that keep the header consistent except for one rule, check fixed */
    uint8_t *p = dup_bytes(o, len);
    p[64] = 2; /* bit 0 is SEG_F_ZSTD; bit 1 is unknown */
    fix_seg_check(p, 168);
    struct seg_hdr h;
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "flags"),
       "unknown flags are refused even with a good check: %s", err);
    free(p);
    p = dup_bytes(o, len);
    p[80 + 24 + 20] = 1;
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "reserved"),
       "a nonzero reserved field is refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    p[165] = 1;
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "padding"),
       "nonzero padding is refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    set32(p + 80 + 8, 3); /* first extent 3 blocks: runs into the next data extent */
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT &&
           strstr(err, "extent 2 starts at data block 2, want 3"),
       "data extents that do not tile the data region are refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    set32(p + 80 + 48 + 8, 2); /* last extent 2 blocks: past the 3 data blocks */
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT &&
           strstr(err, "extent 2 runs past the data region"),
       "an extent past the data region is refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    set32(p + 80 + 24 + 16, 1); /* zero extent with first 1 */
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "zero extent"),
       "a zero extent pointing at data is refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    set32(p + 80 + 12, 3); /* kind 3 */
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "kind 3"),
       "an unknown extent kind is refused: %s", err);
    free(p);
    p = dup_bytes(o, len);
    set64(p + 80, UINT64_MAX - 1); /* lba near 2^64 */
    fix_seg_check(p, 168);
    ok(seg_parse_object(p, len, &h, err, sizeof err) == SEG_CORRUPT && strstr(err, "2^64"),
       "an extent ending beyond 2^64 bytes is refused: %s", err);
    free(p);
    seg_builder_free(b);
}

/* Bit flips in data blocks leave the header valid and fail that block only. */
static void test_seg_data_flips(void)
{
    const uint32_t bs = 4096, nb = 8;
    uint8_t *data = xmalloc(nb * bs);
    fill_random(data, (size_t)nb * bs);
    struct seg_builder *b = seg_builder_new(UUID, 5, 1, bs, nb);
    seg_add_data(b, 0, nb, data);
    size_t len;
    const uint8_t *o = seg_seal(b, 1, &len);
    struct seg_hdr h;
    seg_parse_header(o, len, &h, err, sizeof err);
    int missed = 0, wrong = 0;
    for (int t = 0; t < 2000; t++) {
        uint8_t *p = dup_bytes(o, len);
        uint32_t blk = (uint32_t)below(nb);
        int nflips = 1 + (int)below(3);
        for (int f = 0; f < nflips; f++)
            flip_bit(p + seg_block_offset(&h, blk), below((uint64_t)bs * 8));
        /* an even number of flips of the same bit cancels out */
        int changed = memcmp(p + seg_block_offset(&h, blk), o + seg_block_offset(&h, blk), bs);
        for (uint32_t i = 0; i < nb; i++) {
            int rc = seg_verify_block(&h, i, p + seg_block_offset(&h, i), err, sizeof err);
            if (i == blk && changed && rc == 0)
                missed++;
            if ((i != blk || !changed) && rc != 0)
                wrong++;
        }
        free(p);
    }
    is_int(missed, 0, "2000 random 1-3 bit flips in data are all caught by seg_verify_block");
    is_int(wrong, 0, "and no untouched block is reported");
    uint8_t *p = dup_bytes(o, len);
    flip_bit(p + seg_block_offset(&h, 6), 5);
    ok(seg_verify_block(&h, 6, p + seg_block_offset(&h, 6), err, sizeof err) < 0 &&
           strstr(err, "segment seq 5: data block 6 checksum mismatch"),
       "the error names the segment and block: %s", err);
    free(p);
    seg_hdr_free(&h);
    seg_builder_free(b);
    free(data);
}

/* An accepted header must obey every rule the engine relies on. */
static int seg_invariants_hold(const struct seg_hdr *h, size_t len)
{
    uint64_t next = 0;
    if (h->header_len > len || h->header_len != seg_header_len(h->nextents, h->ndata_blocks))
        return 0;
    for (uint32_t i = 0; i < h->nextents; i++) {
        const struct seg_extent *x = &h->ext[i];
        if (x->nblocks == 0 || (x->kind != SEG_DATA && x->kind != SEG_ZERO))
            return 0;
        if (x->kind == SEG_DATA) {
            if (x->first != next)
                return 0;
            next += x->nblocks;
        }
    }
    return next == h->ndata_blocks;
}

/* Random inputs: pure garbage; garbage behind a plausible fixed header with
 * a correct check; and a valid segment with a few bytes changed and the
 * check fixed.  Never a crash; anything accepted obeys the rules. */
static void test_seg_fuzz(void)
{
    uint8_t data[4 * 512];
    fill_random(data, sizeof data);
    struct seg_builder *b = small_segment(512, data);
    size_t slen;
    const uint8_t *valid = seg_seal(b, 1, &slen);
    long iters = 0, accepted = 0, broken = 0, need_more = 0;
    clock_t t0 = clock();
    for (int i = 0; i < 300000; i++, iters++) {
        size_t len;
        uint8_t *p;
        int kind = (int)below(3);
        if (kind == 0) { /* garbage, sometimes with the right magic and version */
            len = below(300);
            p = xmalloc(len ? len : 1);
            fill_random(p, len);
            if (len >= 12 && below(2)) {
                memcpy(p, "BUOYSEG1", 8);
                set32(p + 8, 1);
            }
        } else if (kind == 1) { /* a consistent fixed header over random tables */
            uint32_t ne = (uint32_t)below(6), nd = (uint32_t)below(6);
            size_t hl = (size_t)seg_header_len(ne, nd);
            len = below(4) ? hl + nd * 512u : below(hl + nd * 512u + 1);
            p = xmalloc(len ? len : 1);
            fill_random(p, len);
            if (len >= 80) {
                memcpy(p, "BUOYSEG1", 8);
                set32(p + 8, 1);
                set32(p + 12, (uint32_t)hl);
                set64(p + 32, 1 + below(100));
                set32(p + 44, ne);
                set32(p + 48, nd);
                set32(p + 52, 512);
                set64(p + 64, 0);
                for (uint32_t e = 0; e < ne && 80 + 24 * (e + 1) <= len; e++) {
                    uint8_t *x = p + 80 + 24 * e;
                    set64(x, below(1000));
                    set32(x + 8, (uint32_t)below(4)); /* small nblocks */
                    set32(x + 12, 1 + (uint32_t)below(2));
                    set32(x + 16, (uint32_t)below(5));
                    set32(x + 20, 0);
                }
                for (size_t z = 80 + 24 * ne + 4 * nd; z < hl && z < len; z++)
                    p[z] = 0;
                if (len >= hl)
                    fix_seg_check(p, hl);
            }
        } else { /* a valid segment, a few bytes changed, check fixed */
            len = slen;
            p = dup_bytes(valid, len);
            int n = 1 + (int)below(4);
            for (int m = 0; m < n; m++)
                p[below(168)] = (uint8_t)rnd();
            if (below(4))
                fix_seg_check(p, 168);
        }
        struct seg_hdr h;
        int rc = seg_parse_header(p, len, &h, err, sizeof err);
        if (rc == 0) {
            accepted++;
            if (!seg_invariants_hold(&h, len))
                broken++;
            seg_hdr_free(&h);
        } else if (rc == SEG_NEED_MORE) {
            need_more++;
        } else if (rc != SEG_CORRUPT) {
            broken++;
        }
        free(p);
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    diag("segment fuzz: %ld inputs, %ld accepted, %ld need more, %.2f s", iters, accepted,
         need_more, secs);
    is_int(broken, 0, "%ld random segment inputs: no crash, nothing accepted that breaks a rule",
           iters);
    ok(accepted > 100, "the structured inputs reach acceptance (%ld times)", accepted);
    seg_builder_free(b);
}

/* ---- checkpoints ---- */

static void test_ckpt_keys(void)
{
    char key[CKPT_KEY_SIZE];
    uint64_t seq;
    uint32_t epoch;
    ckpt_key(0x123456789abcdef0ull, 0xdeadbeef, key);
    is_str(key, "ckpt/123456789abcdef0.deadbeef", "checkpoint key, lower-case hex");
    ckpt_key(0, 0, key);
    is_str(key, "ckpt/0000000000000000.00000000", "checkpoint of seq 0");
    ok(ckpt_key_parse("ckpt/123456789abcdef0.deadbeef", &seq, &epoch) == 0 &&
           seq == 0x123456789abcdef0ull && epoch == 0xdeadbeef,
       "a checkpoint key parses back");
    static const char *const bad_keys[] = {
        "",
        "ckpt/",
        "ckpt/123456789abcdef0.deadbee",
        "ckpt/123456789abcdef0.deadbeef0",
        "ckpt/123456789ABCDEF0.deadbeef",
        "ckpt/123456789abcdef0-deadbeef",
        "ckpt/123456789abcdefg.deadbeef",
        "ckpt/123456789abcdef0.deadbeef/",
        "ckpt//23456789abcdef0.deadbeef",
        "ckpx/123456789abcdef0.deadbeef",
        "seg/9e/0000000000000001.00000000",
    };
    int accepted = 0;
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        accepted += ckpt_key_parse(bad_keys[i], &seq, &epoch) == 0;
    is_int(accepted, 0, "%zu malformed checkpoint keys are all refused",
           sizeof bad_keys / sizeof bad_keys[0]);
}

/* Two segments, three extents. */
static const struct ckpt_seg G_SEGS[2] = {
    {.seq = 3, .epoch = 1, .header_len = 112, .live_blocks = 3, .ndata_blocks = 4},
    {.seq = 9, .epoch = 2, .header_len = 8192, .live_blocks = 5, .ndata_blocks = 2000},
};
static const struct ckpt_extent G_EXT[3] = {
    {.lba = 10, .nblocks = 3, .seg = 0, .first = 1},
    {.lba = 13, .nblocks = 1, .seg = 1, .first = 0},
    {.lba = 0x0001020304050607ull, .nblocks = 4, .seg = 1, .first = 1996},
};

static void golden_ckpt(struct buf *out)
{
    if (ckpt_encode(out, UUID, 0x1112131415161718ull, 0x0a0b0c0d, G_SEGS, 2, G_EXT, 3, err,
                    sizeof err) != 0)
        bail_out(err);
}

static void test_ckpt_golden(void)
{
    struct buf out = {0};
    golden_ckpt(&out);
    const uint8_t *o = (const uint8_t *)out.p;
    is_int(out.len, 64 + 24 * 5, "64-byte header, 2 segments, 3 extents");
    ok(memcmp(o, "BUOYCKP1", 8) == 0, "magic BUOYCKP1 at offset 0");
    is_int(le32(o + 8), 1, "version 1 at offset 8");
    ok(o[12] == 0x0d && le32(o + 12) == 0x0a0b0c0d, "epoch at offset 12");
    ok(memcmp(o + 16, UUID, 16) == 0, "uuid at offset 16");
    ok(o[32] == 0x18 && le64(o + 32) == 0x1112131415161718ull, "seq at offset 32");
    is_int(le32(o + 40), 2, "nsegments at offset 40");
    is_int(le32(o + 44), 0, "reserved 0 at offset 44");
    ok(le64(o + 48) == 3, "nextents at offset 48");
    ok(le64(o + 56) == check_of(o, out.len, 56), "offset 56: XXH3-64 of the object, field as zero");
    const uint8_t *s = o + 64 + 24;
    ok(le64(s) == 9 && le32(s + 8) == 2 && le32(s + 12) == 8192 && le32(s + 16) == 5 &&
           le32(s + 20) == 2000,
       "segment entry 1 at offset 88: seq, epoch, header_len, live_blocks, ndata_blocks");
    const uint8_t *x = o + 64 + 48 + 48;
    ok(le64(x) == 0x0001020304050607ull && le32(x + 8) == 4 && le32(x + 12) == 1 &&
           le32(x + 16) == 1996 && le32(x + 20) == 0,
       "extent 2 at offset 160: lba, nblocks, segment index, first, reserved");

    struct ckpt ck;
    uint8_t *p = dup_bytes(out.p, out.len);
    if (!ok(ckpt_decode(p, out.len, &ck, err, sizeof err) == 0, "the golden checkpoint decodes"))
        bail_out(err);
    ok(ck.seq == 0x1112131415161718ull && ck.epoch == 0x0a0b0c0d && ck.nsegs == 2 &&
           ck.nextents == 3 && memcmp(ck.uuid, UUID, 16) == 0,
       "decoded header fields");
    struct ckpt_seg sg = ckpt_seg_at(&ck, 1);
    struct ckpt_extent ex = ckpt_extent_at(&ck, 2);
    ok(sg.seq == 9 && sg.live_blocks == 5 && sg.header_len == 8192 && ex.first == 1996 &&
           ex.lba == 0x0001020304050607ull,
       "decoded entries");
    free(p);
    ok(ckpt_extent_at(&ck, 3).nblocks == 0 && ckpt_seg_at(&ck, 2).seq == 0,
       "entries past the end read as zeros");
    ok(ckpt_decode(NULL, 0, &ck, err, sizeof err) < 0, "no bytes: refused: %s", err);
    buf_free(&out);
}

/* Random sorted maps: encoded with the streaming API after some bytes already
 * in the buffer, decoded back entry by entry. */
static int ckpt_roundtrip_one(char *why, size_t whylen)
{
    uint32_t nsegs = 1 + (uint32_t)below(20);
    struct ckpt_seg *segs = xcalloc(nsegs, sizeof *segs);
    uint64_t nmax = 1 + below(2000), n = 0, lba = below(100);
    struct ckpt_extent *ext = xcalloc(nmax, sizeof *ext);
    uint64_t seq = 0, ck_seq;
    uint32_t *cur = xcalloc(nsegs, sizeof *cur); /* next free data block per segment */
    int ret = -1;
    for (uint32_t i = 0; i < nsegs; i++) {
        seq += 1 + below(5);
        segs[i].seq = seq;
        segs[i].epoch = (uint32_t)below(4);
        segs[i].ndata_blocks = 1 + (uint32_t)below(4000);
        segs[i].header_len = (uint32_t)seg_header_len(below(100), segs[i].ndata_blocks);
    }
    /* extents point at disjoint data, as in a real map: live <= ndata */
    for (uint64_t i = 0; i < nmax; i++) {
        struct ckpt_extent *x = &ext[n];
        x->seg = (uint32_t)below(nsegs);
        x->nblocks = 1 + (uint32_t)below(16);
        x->first = cur[x->seg] + (uint32_t)below(3);
        if ((uint64_t)x->first + x->nblocks > segs[x->seg].ndata_blocks)
            continue;
        cur[x->seg] = x->first + x->nblocks;
        x->lba = lba;
        lba += x->nblocks + (below(2) ? 0 : below(1000));
        segs[x->seg].live_blocks += x->nblocks;
        n++;
    }
    free(cur);
    uint32_t kept = 0; /* drop the segments no extent uses, renumbering */
    uint32_t *map = xcalloc(nsegs, sizeof *map);
    for (uint32_t i = 0; i < nsegs; i++) {
        if (segs[i].live_blocks == 0)
            continue;
        map[i] = kept;
        segs[kept++] = segs[i];
    }
    for (uint64_t i = 0; i < n; i++)
        ext[i].seg = map[ext[i].seg];
    free(map);

    struct buf out = {0};
    buf_append(&out, "prefix", 6);
    ck_seq = seq + below(3);
    struct ckpt_enc *e = ckpt_enc_new(&out, UUID, ck_seq, 3, segs, kept);
    for (uint64_t i = 0; i < n; i++)
        ckpt_enc_add(e, &ext[i]);
    if (ckpt_enc_finish(e, why, whylen) != 0)
        goto out;
    struct buf one = {0};
    if (ckpt_encode(&one, UUID, ck_seq, 3, segs, kept, ext, n, why, whylen) != 0 ||
        one.len != out.len - 6 || memcmp(one.p, out.p + 6, one.len) != 0) {
        snprintf(why, whylen, "ckpt_encode differs from the streaming encoder");
        buf_free(&one);
        goto out;
    }
    buf_free(&one);
    uint8_t *p = dup_bytes(out.p + 6, out.len - 6);
    struct ckpt ck;
    if (ckpt_decode(p, out.len - 6, &ck, why, whylen) != 0) {
        free(p);
        goto out;
    }
    int same = ck.nsegs == kept && ck.nextents == n;
    for (uint32_t i = 0; same && i < kept; i++) {
        struct ckpt_seg s = ckpt_seg_at(&ck, i);
        same = memcmp(&s, &segs[i], sizeof s) == 0;
    }
    for (uint64_t i = 0; same && i < n; i++) {
        struct ckpt_extent x = ckpt_extent_at(&ck, i);
        same = x.lba == ext[i].lba && x.nblocks == ext[i].nblocks && x.seg == ext[i].seg &&
               x.first == ext[i].first;
    }
    free(p);
    if (!same) {
        snprintf(why, whylen, "decoded entries differ from those encoded");
        goto out;
    }
    ret = 0;
out:
    buf_free(&out);
    free(segs);
    free(ext);
    return ret;
}

static void test_ckpt_roundtrip(void)
{
    char why[512] = "";
    int i, failed = 0;
    for (i = 0; i < 200 && !failed; i++)
        failed = ckpt_roundtrip_one(why, sizeof why) != 0;
    ok(!failed, "%d random checkpoints round-trip%s%s", i, failed ? ": " : "", failed ? why : "");

    struct buf out = {0};
    ok(ckpt_encode(&out, UUID, 0, 0, NULL, 0, NULL, 0, err, sizeof err) == 0 && out.len == 64,
       "an empty map is a 64-byte checkpoint");
    struct ckpt ck;
    uint8_t *p = dup_bytes(out.p, out.len);
    if (!ok(ckpt_decode(p, out.len, &ck, err, sizeof err) == 0 && ck.nextents == 0,
            "and decodes"))
        diag("%s", err);
    free(p);
    buf_free(&out);
}

/* The encoder refuses what the decoder would, and leaves out as it was. */
static void expect_enc_fail(const struct ckpt_seg *segs, uint32_t nsegs,
                            const struct ckpt_extent *ext, uint64_t n, const char *what,
                            const char *name)
{
    struct buf out = {0};
    buf_append(&out, "keep", 4);
    err[0] = '\0';
    int rc = ckpt_encode(&out, UUID, 20, 5, segs, nsegs, ext, n, err, sizeof err);
    ok(rc < 0 && strstr(err, what) && out.len == 4 && memcmp(out.p, "keep", 4) == 0,
       "encoder refuses %s: %s", name, err);
    buf_free(&out);
}

/* Encodes valid entries, then changes one entry in the bytes and fixes the
 * check: the decoder must find the broken rule itself. */
static void expect_dec_fail(size_t off, uint64_t v, int width, const char *what, const char *name)
{
    struct buf out = {0};
    golden_ckpt(&out);
    uint8_t *p = dup_bytes(out.p, out.len);
    if (width == 8)
        set64(p + off, v);
    else
        set32(p + off, (uint32_t)v);
    fix_ckpt_check(p, out.len);
    struct ckpt ck;
    err[0] = '\0';
    int rc = ckpt_decode(p, out.len, &ck, err, sizeof err);
    ok(rc < 0 && strstr(err, what), "decoder refuses %s: %s", name, err);
    free(p);
    buf_free(&out);
}

/* A million extents, streamed in and read back in place. */
static void test_ckpt_large(void)
{
    const uint32_t nsegs = 1000, per = 1000;
    struct ckpt_seg *segs = xcalloc(nsegs, sizeof *segs);
    for (uint32_t i = 0; i < nsegs; i++)
        segs[i] = (struct ckpt_seg){.seq = i + 1, .epoch = 1, .live_blocks = per,
                                    .ndata_blocks = 2 * per,
                                    .header_len = (uint32_t)seg_header_len(2 * per, 2 * per)};
    clock_t t0 = clock();
    struct buf out = {0};
    struct ckpt_enc *e = ckpt_enc_new(&out, UUID, nsegs, 1, segs, nsegs);
    for (uint64_t i = 0; i < (uint64_t)nsegs * per; i++) {
        struct ckpt_extent x = {.lba = 3 * i, .nblocks = 1, .seg = (uint32_t)(i % nsegs),
                                .first = (uint32_t)(2 * (i / nsegs))};
        ckpt_enc_add(e, &x);
    }
    if (!ok(ckpt_enc_finish(e, err, sizeof err) == 0, "a million extents encode"))
        diag("%s", err);
    struct ckpt ck;
    int rc = ckpt_decode(out.p, out.len, &ck, err, sizeof err);
    ok(rc == 0 && ck.nextents == 1000000 && ckpt_extent_at(&ck, 999999).lba == 2999997,
       "and decode in place");
    diag("1M-extent checkpoint: %zu bytes, encode + decode %.2f s", out.len,
         (double)(clock() - t0) / CLOCKS_PER_SEC);
    buf_free(&out);
    free(segs);
}

static void test_ckpt_rules(void)
{
    struct ckpt_seg s2[2] = {
        {.seq = 3, .epoch = 1, .header_len = 112, .live_blocks = 2, .ndata_blocks = 4},
        {.seq = 9, .epoch = 2, .header_len = 112, .live_blocks = 1, .ndata_blocks = 4},
    };
    struct ckpt_extent x[2] = {{.lba = 10, .nblocks = 2, .seg = 0, .first = 0},
                               {.lba = 12, .nblocks = 1, .seg = 1, .first = 3}};
    struct buf out = {0};
    if (!ok(ckpt_encode(&out, UUID, 20, 5, s2, 2, x, 2, err, sizeof err) == 0,
            "the base case encodes"))
        diag("%s", err);
    buf_free(&out);

    x[1].lba = 11;
    expect_enc_fail(s2, 2, x, 2, "overlaps", "overlapping extents");
    x[1].lba = 5;
    expect_enc_fail(s2, 2, x, 2, "overlaps", "unsorted extents");
    x[1].lba = 12;
    x[1].seg = 2;
    expect_enc_fail(s2, 2, x, 2, "segment index 2", "a segment index past the table");
    x[1].seg = 1;
    x[1].first = 4;
    expect_enc_fail(s2, 2, x, 2, "runs past the data", "an extent past its segment's data");
    x[1].first = 3;
    x[1].nblocks = 0;
    expect_enc_fail(s2, 2, x, 2, "no blocks", "a 0-block extent");
    x[1].nblocks = 1;
    s2[1].live_blocks = 2;
    expect_enc_fail(s2, 2, x, 2, "live blocks", "a live_blocks count that does not add up");
    s2[1].live_blocks = 1;
    s2[1].seq = 3;
    expect_enc_fail(s2, 2, x, 2, "does not follow", "a segment table out of seq order");
    s2[1].seq = 21;
    expect_enc_fail(s2, 2, x, 2, "not in 1..20", "a segment newer than the checkpoint");
    s2[1].seq = 9;
    s2[1].epoch = 6;
    expect_enc_fail(s2, 2, x, 2, "newer than the checkpoint's", "a segment of a newer epoch");
    s2[1].epoch = 2;
    s2[1].header_len = 100;
    expect_enc_fail(s2, 2, x, 2, "header_len", "a header_len no segment can have");
    s2[1].header_len = 112;
    expect_enc_fail(s2, 2, x, 1, "live blocks", "a listed segment no extent uses");
    x[1].lba = CKPT_MAX_LBA;
    expect_enc_fail(s2, 2, x, 2, "beyond any possible volume", "an extent past 2^64 bytes");
    x[1].lba = 12;

    /* the same rules in the decoder, on the golden object (2 segs, 3 extents) */
    expect_dec_fail(64 + 48 + 24 + 0, 11, 8, "overlaps", "overlapping extents");
    expect_dec_fail(64 + 48 + 48 + 0, 12, 8, "overlaps", "unsorted extents");
    expect_dec_fail(64 + 48 + 24 + 12, 2, 4, "segment index 2", "a segment index out of range");
    expect_dec_fail(64 + 48 + 48 + 16, 1997, 4, "runs past the data",
                    "an extent past its segment's data");
    expect_dec_fail(64 + 48 + 24 + 8, 0, 4, "no blocks", "a 0-block extent");
    expect_dec_fail(64 + 48 + 20, 1, 4, "reserved", "a nonzero reserved extent field");
    expect_dec_fail(44, 1, 4, "reserved", "a nonzero reserved header field");
    expect_dec_fail(64 + 16, 2, 4, "live blocks", "a wrong live_blocks");
    expect_dec_fail(64 + 24, 2, 8, "does not follow", "an unsorted segment table");
    expect_dec_fail(64 + 24 + 8, 0x0a0b0c0e, 4, "newer than", "a segment of a newer epoch");
    expect_dec_fail(64 + 24 + 12, 8196, 4, "header_len", "a header_len not a multiple of 8");
    expect_dec_fail(48, 4, 8, "wrong for 2 segments and 4 extents", "nextents one too many");
    expect_dec_fail(48, UINT64_MAX, 8, "wrong for", "nextents near 2^64");
    expect_dec_fail(40, UINT32_MAX, 4, "wrong for", "nsegments near 2^32");
    expect_dec_fail(8, 2, 4, "version 2", "version 2");
}

static void test_ckpt_corrupt(void)
{
    struct buf out = {0};
    golden_ckpt(&out);
    size_t len = out.len, wrong = 0, refused = 0;
    struct ckpt ck;
    for (size_t l = 0; l <= len + 1; l++) {
        uint8_t *p = xcalloc(1, l ? l : 1);
        memcpy(p, out.p, l < len ? l : len);
        int rc = ckpt_decode(p, l, &ck, err, sizeof err);
        if (rc != (l == len ? 0 : -1))
            wrong++;
        free(p);
    }
    is_int(wrong, 0, "every length 0..%zu but the right one is refused", len + 1);
    for (size_t bit = 0; bit < len * 8; bit++) {
        uint8_t *p = dup_bytes(out.p, len);
        flip_bit(p, bit);
        refused += ckpt_decode(p, len, &ck, err, sizeof err) < 0;
        free(p);
    }
    is_int(refused, len * 8, "all %zu single-bit flips of the checkpoint are refused", len * 8);

    /* fuzz: garbage, and the golden object with bytes changed and the check fixed */
    long iters = 0, accepted = 0, broken = 0;
    clock_t t0 = clock();
    for (int i = 0; i < 200000; i++, iters++) {
        size_t l;
        uint8_t *p;
        if (below(2)) {
            l = below(300);
            p = xmalloc(l ? l : 1);
            fill_random(p, l);
            if (l >= 64 && below(2)) {
                memcpy(p, "BUOYCKP1", 8);
                set32(p + 8, 1);
                set32(p + 44, 0);
                set32(p + 40, (uint32_t)below(4));
                set64(p + 48, below(10));
                fix_ckpt_check(p, l);
            }
        } else {
            l = len;
            p = dup_bytes(out.p, l);
            int n = 1 + (int)below(3);
            for (int m = 0; m < n; m++) {
                size_t at = below(l);
                p[at] = below(2) ? (uint8_t)rnd() : (uint8_t)(p[at] + 1);
            }
            if (below(4))
                fix_ckpt_check(p, l);
        }
        if (ckpt_decode(p, l, &ck, err, sizeof err) == 0) {
            accepted++;
            uint64_t end = 0;
            for (uint64_t k = 0; k < ck.nextents; k++) {
                struct ckpt_extent x = ckpt_extent_at(&ck, k);
                if (x.lba < end || x.seg >= ck.nsegs ||
                    (uint64_t)x.first + x.nblocks > ckpt_seg_at(&ck, x.seg).ndata_blocks)
                    broken++;
                end = x.lba + x.nblocks;
            }
        }
        free(p);
    }
    diag("checkpoint fuzz: %ld inputs, %ld accepted, %.2f s", iters, accepted,
         (double)(clock() - t0) / CLOCKS_PER_SEC);
    is_int(broken, 0, "%ld random checkpoint inputs: no crash, nothing accepted breaks a rule",
           iters);
    ok(accepted > 0, "some mutated checkpoints stay valid and are accepted (%ld)", accepted);
    buf_free(&out);
}

/* Packed (zstd) segments: every chunk unpacks to the blocks written, raw
 * chunks for random data, compressed ones for the rest; a damaged chunk is
 * an error or a checksum mismatch, never the wrong bytes. */
static void test_seg_packed(void)
{
    uint8_t uuid[16] = {7};
    uint32_t bs = 4096, nb = 40; /* 2 full chunks and one of 8 blocks */
    struct seg_builder *b = seg_builder_new(uuid, 5, 2, bs, 64);
    seg_builder_set_zstd(b, 3);
    char *data = malloc((size_t)nb * bs);
    for (uint32_t i = 0; i < nb * bs; i++) /* the first chunk random, the rest patterned */
        data[i] = i < 16 * bs ? (char)(rand() & 0xff) : (char)(i % 13);
    ok(seg_add_data(b, 100, 20, data) == 0 && seg_add_zero(b, 500, 3) == 0 &&
           seg_add_data(b, 200, 20, data + 20 * bs) == 20,
       "packed: 40 data blocks and a zero extent added");
    size_t len;
    const void *obj = seg_seal(b, 1700000000, &len);
    struct seg_hdr h;
    is_int(seg_parse_object(obj, len, &h, err, sizeof err), 0, "packed: the object parses: %s",
           err);
    ok(seg_is_packed(&h) && h.nchunks == 3, "packed: flagged, 3 chunks");
    ok(len < (size_t)nb * bs * 2 / 3, "packed: %zu bytes for %u of data", len, nb * bs);
    ok(h.chunk_off[1] == 16 * bs, "packed: the random chunk is stored raw");
    char *out = malloc((size_t)nb * bs);
    uint64_t off, l;
    uint32_t first, count;
    seg_packed_range(&h, 18, 20, &off, &l, &first, &count);
    ok(first == 16 && count == 24, "packed: blocks 18..37 are in chunks from block 16, 24 blocks");
    int good = seg_unpack(&h, first, count, (const char *)obj + off, l, out, err, sizeof err) == 0 &&
               memcmp(out, data + 16 * bs, (size_t)count * bs) == 0;
    for (uint32_t i = 0; good && i < count; i++)
        good = seg_verify_block(&h, first + i, out + (size_t)i * bs, err, sizeof err) == 0;
    ok(good, "packed: those chunks unpack to the blocks written, each checksum right");
    seg_packed_range(&h, 0, nb, &off, &l, &first, &count);
    ok(seg_unpack(&h, first, count, (const char *)obj + off, l, out, err, sizeof err) == 0 &&
           memcmp(out, data, (size_t)nb * bs) == 0,
       "packed: the whole data region unpacks");
    /* damage one byte of the compressed second chunk */
    char *bad = malloc(len);
    memcpy(bad, obj, len);
    bad[h.header_len + h.chunk_off[1] + 10] ^= 0x55;
    seg_packed_range(&h, 16, 16, &off, &l, &first, &count);
    int urc = seg_unpack(&h, first, count, bad + off, l, out, err, sizeof err);
    int caught = urc != 0;
    for (uint32_t i = 0; !caught && i < count; i++)
        caught = seg_verify_block(&h, first + i, out + (size_t)i * bs, err, sizeof err) != 0;
    ok(caught, "packed: a damaged chunk is caught: %s", err);
    free(bad);
    free(out);
    free(data);
    seg_hdr_free(&h);
    seg_builder_free(b);
}

int main(void)
{
    plan_no_plan();
    test_seg_packed();
    test_seg_keys();
    test_seg_golden();
    test_seg_builder_limits();
    test_seg_roundtrip();
    test_seg_full_size();
    test_seg_peek();
    test_seg_truncate();
    test_seg_header_flips();
    test_seg_data_flips();
    test_seg_fuzz();
    test_ckpt_keys();
    test_ckpt_golden();
    test_ckpt_roundtrip();
    test_ckpt_large();
    test_ckpt_rules();
    test_ckpt_corrupt();
    return done_testing();
}
