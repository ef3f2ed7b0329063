/* ckpt.c - checkpoint keys, encoder and decoder.
 *
 * The byte layout and the rules are in ckpt.h.  The encoder and the decoder
 * run every entry through the same check_seg() / check_extent() /
 * check_live() over a struct rules, which carries what the checks need to
 * remember: the previous seq and extent end, and per segment its data
 * block count, its declared live_blocks and the blocks seen so far.
 * Integers are written and read a byte at a time, little-endian. */
#include "vol/ckpt.h"
#include "util/mem.h"
#include "util/hash.h"
#include "util/le.h"
#include "vol/seg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_EPOCH = 12,
    OFF_UUID = 16,
    OFF_SEQ = 32,
    OFF_NSEGS = 40,
    OFF_RESERVED = 44,
    OFF_NEXTENTS = 48,
    OFF_CHECK = 56,
};

/* A segment table entry. */
enum { SEG_SEQ = 0, SEG_EPOCH = 8, SEG_HEADER_LEN = 12, SEG_LIVE = 16, SEG_NDATA = 20 };

/* An extent array entry. */
enum { EXT_LBA = 0, EXT_NBLOCKS = 8, EXT_SEG = 12, EXT_FIRST = 16, EXT_RESERVED = 20 };

struct seg_count {
    uint32_t ndata;
    uint32_t live;  /* as declared in the table */
    uint64_t found; /* blocks of the extents seen so far that point here */
};

struct rules {
    uint64_t seq; /* the checkpoint's */
    uint32_t epoch;
    uint32_t nsegs;
    struct seg_count *segs;
    uint64_t prev_seq; /* of the previous table entry */
    uint64_t next_lba; /* end of the previous extent */
    uint64_t nextents; /* extents checked so far */
};

struct ckpt_enc {
    struct buf *out;
    size_t start; /* where this checkpoint begins in out */
    struct rules r;
    int failed; /* sticky: the first broken rule is in err */
    char err[256];
};

/* ---- errors ---- */

/* "checkpoint seq S: <what>" into err; "checkpoint: <what>" when r is NULL. */
__attribute__((format(printf, 4, 5))) static int bad(char *err, size_t errlen,
                                                     const struct rules *r, const char *fmt, ...)
{
    if (!err || !errlen)
        return -1;
    int n = r ? snprintf(err, errlen, "checkpoint seq %" PRIu64 ": ", r->seq)
              : snprintf(err, errlen, "checkpoint: ");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- keys ---- */

void ckpt_key(uint64_t seq, uint32_t epoch, char out[CKPT_KEY_SIZE])
{
    snprintf(out, CKPT_KEY_SIZE, "ckpt/%016" PRIx64 ".%08" PRIx32, seq, epoch);
}

int ckpt_key_parse(const char *key, uint64_t *seq, uint32_t *epoch)
{
    /* ckpt/SSSSSSSSSSSSSSSS.EEEEEEEE
     * 0    5               21 22    30 */
    uint64_t s, e;
    if (strlen(key) != CKPT_KEY_SIZE - 1 || memcmp(key, "ckpt/", 5) != 0 || key[21] != '.')
        return -1;
    if (hex_parse_fixed(key + 5, 16, &s) < 0 || hex_parse_fixed(key + 22, 8, &e) < 0)
        return -1;
    *seq = s;
    *epoch = (uint32_t)e;
    return 0;
}

/* ---- the rules ---- */

static void rules_init(struct rules *r, uint64_t seq, uint32_t epoch, uint32_t nsegs)
{
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->epoch = epoch;
    r->nsegs = nsegs;
    r->segs = xcalloc(nsegs ? nsegs : 1, sizeof *r->segs);
}

static void rules_free(struct rules *r)
{
    free(r->segs);
    r->segs = NULL;
}

/* Segment table entry i, in order. */
static int check_seg(struct rules *r, uint32_t i, const struct ckpt_seg *s, char *err,
                     size_t errlen)
{
    const uint32_t max_ndata = SEG_MAX_DATA / SEG_MIN_BLOCK;
    if (s->seq == 0 || s->seq > r->seq)
        return bad(err, errlen, r, "segment table entry %" PRIu32 ": seq %" PRIu64
                   " is not in 1..%" PRIu64, i, s->seq, r->seq);
    if (i > 0 && s->seq <= r->prev_seq)
        return bad(err, errlen, r, "segment table entry %" PRIu32 ": seq %" PRIu64
                   " does not follow seq %" PRIu64, i, s->seq, r->prev_seq);
    if (s->epoch > r->epoch)
        return bad(err, errlen, r, "segment %" PRIu64 ": epoch %" PRIu32
                   " is newer than the checkpoint's %" PRIu32, s->seq, s->epoch, r->epoch);
    if (s->ndata_blocks == 0 || s->ndata_blocks > max_ndata)
        return bad(err, errlen, r, "segment %" PRIu64 ": %" PRIu32
                   " data blocks is not in 1..%" PRIu32, s->seq, s->ndata_blocks, max_ndata);
    if (s->header_len % 8 != 0 || s->header_len < seg_header_len(0, s->ndata_blocks) ||
        s->header_len > seg_header_len(SEG_MAX_EXTENTS, s->ndata_blocks))
        return bad(err, errlen, r, "segment %" PRIu64 ": header_len %" PRIu32
                   " is impossible for %" PRIu32 " data blocks", s->seq, s->header_len,
                   s->ndata_blocks);
    if (s->live_blocks == 0 || s->live_blocks > s->ndata_blocks)
        return bad(err, errlen, r, "segment %" PRIu64 ": live_blocks %" PRIu32
                   " is not in 1..%" PRIu32, s->seq, s->live_blocks, s->ndata_blocks);
    r->prev_seq = s->seq;
    r->segs[i].ndata = s->ndata_blocks;
    r->segs[i].live = s->live_blocks;
    return 0;
}

/* The next extent, in order. */
static int check_extent(struct rules *r, const struct ckpt_extent *x, char *err, size_t errlen)
{
    uint64_t i = r->nextents;
    if (x->nblocks == 0)
        return bad(err, errlen, r, "extent %" PRIu64 " has no blocks", i);
    if (x->lba < r->next_lba)
        return bad(err, errlen, r, "extent %" PRIu64 " at lba %" PRIu64
                   " overlaps or precedes the previous one, which ends at %" PRIu64, i, x->lba,
                   r->next_lba);
    if (x->lba > CKPT_MAX_LBA || x->nblocks > CKPT_MAX_LBA - x->lba)
        return bad(err, errlen, r, "extent %" PRIu64 " at lba %" PRIu64
                   " ends beyond any possible volume", i, x->lba);
    if (x->seg >= r->nsegs)
        return bad(err, errlen, r, "extent %" PRIu64 ": segment index %" PRIu32
                   " is past the table's %" PRIu32 " entries", i, x->seg, r->nsegs);
    struct seg_count *c = &r->segs[x->seg];
    if ((uint64_t)x->first + x->nblocks > c->ndata)
        return bad(err, errlen, r, "extent %" PRIu64 " runs past the data of segment index %"
                   PRIu32 " (%" PRIu32 " + %" PRIu32 " > %" PRIu32 ")", i, x->seg, x->first,
                   x->nblocks, c->ndata);
    c->found += x->nblocks;
    r->next_lba = x->lba + x->nblocks;
    r->nextents++;
    return 0;
}

/* After the last extent: every live_blocks is what the extents add up to. */
static int check_live(const struct rules *r, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < r->nsegs; i++)
        if (r->segs[i].found != r->segs[i].live)
            return bad(err, errlen, r, "segment table entry %" PRIu32 " says %" PRIu32
                       " live blocks, its extents hold %" PRIu64, i, r->segs[i].live,
                       r->segs[i].found);
    return 0;
}

/* The check of the whole object with its own check field read as zeros. */
static uint64_t object_check(const uint8_t *p, size_t len)
{
    return xxh3_zeroed8(p, len, OFF_CHECK);
}

/* ---- entries ---- */

static void put_seg(uint8_t *p, const struct ckpt_seg *s)
{
    le_put64(p + SEG_SEQ, s->seq);
    le_put32(p + SEG_EPOCH, s->epoch);
    le_put32(p + SEG_HEADER_LEN, s->header_len);
    le_put32(p + SEG_LIVE, s->live_blocks);
    le_put32(p + SEG_NDATA, s->ndata_blocks);
}

static void get_seg(const uint8_t *p, struct ckpt_seg *s)
{
    s->seq = le_get64(p + SEG_SEQ);
    s->epoch = le_get32(p + SEG_EPOCH);
    s->header_len = le_get32(p + SEG_HEADER_LEN);
    s->live_blocks = le_get32(p + SEG_LIVE);
    s->ndata_blocks = le_get32(p + SEG_NDATA);
}

static void put_extent(uint8_t *p, const struct ckpt_extent *x)
{
    le_put64(p + EXT_LBA, x->lba);
    le_put32(p + EXT_NBLOCKS, x->nblocks);
    le_put32(p + EXT_SEG, x->seg);
    le_put32(p + EXT_FIRST, x->first);
    le_put32(p + EXT_RESERVED, 0);
}

static void get_extent(const uint8_t *p, struct ckpt_extent *x)
{
    x->lba = le_get64(p + EXT_LBA);
    x->nblocks = le_get32(p + EXT_NBLOCKS);
    x->seg = le_get32(p + EXT_SEG);
    x->first = le_get32(p + EXT_FIRST);
}

/* ---- encoder ---- */

struct ckpt_enc *ckpt_enc_new(struct buf *out, const uint8_t uuid[16], uint64_t seq,
                              uint32_t epoch, const struct ckpt_seg *segs, uint32_t nsegs)
{
    struct ckpt_enc *e = xcalloc(1, sizeof *e);
    uint8_t h[CKPT_HDR_LEN] = {0};
    e->out = out;
    e->start = out->len;
    rules_init(&e->r, seq, epoch, nsegs);
    memcpy(h + OFF_MAGIC, CKPT_MAGIC, 8);
    le_put32(h + OFF_VERSION, CKPT_VERSION);
    le_put32(h + OFF_EPOCH, epoch);
    memcpy(h + OFF_UUID, uuid, 16);
    le_put64(h + OFF_SEQ, seq);
    le_put32(h + OFF_NSEGS, nsegs);
    /* reserved, nextents and check stay 0 until finish */
    buf_reserve(out, CKPT_HDR_LEN + (size_t)nsegs * CKPT_ENTRY_LEN);
    buf_append(out, h, sizeof h);
    for (uint32_t i = 0; i < nsegs; i++) {
        uint8_t p[CKPT_ENTRY_LEN];
        if (!e->failed && check_seg(&e->r, i, &segs[i], e->err, sizeof e->err) < 0)
            e->failed = 1;
        put_seg(p, &segs[i]);
        buf_append(out, p, sizeof p);
    }
    return e;
}

void ckpt_enc_add(struct ckpt_enc *e, const struct ckpt_extent *x)
{
    uint8_t p[CKPT_ENTRY_LEN];
    if (e->failed)
        return;
    if (check_extent(&e->r, x, e->err, sizeof e->err) < 0) {
        e->failed = 1;
        return;
    }
    put_extent(p, x);
    buf_append(e->out, p, sizeof p);
}

int ckpt_enc_finish(struct ckpt_enc *e, char *err, size_t errlen)
{
    struct buf *out = e->out;
    int ret = -1;
    if (!e->failed && check_live(&e->r, e->err, sizeof e->err) < 0)
        e->failed = 1;
    if (e->failed) {
        snprintf(err, errlen, "%s", e->err);
        out->len = e->start;
        if (out->p)
            out->p[out->len] = '\0';
        goto done;
    }
    uint8_t *h = (uint8_t *)out->p + e->start;
    size_t len = out->len - e->start;
    le_put64(h + OFF_NEXTENTS, e->r.nextents);
    le_put64(h + OFF_CHECK, object_check(h, len));
    ret = 0;
done:
    rules_free(&e->r);
    free(e);
    return ret;
}

int ckpt_encode(struct buf *out, const uint8_t uuid[16], uint64_t seq, uint32_t epoch,
                const struct ckpt_seg *segs, uint32_t nsegs, const struct ckpt_extent *ext,
                uint64_t n, char *err, size_t errlen)
{
    struct ckpt_enc *e = ckpt_enc_new(out, uuid, seq, epoch, segs, nsegs);
    buf_reserve(out, (size_t)n * CKPT_ENTRY_LEN);
    for (uint64_t i = 0; i < n && !e->failed; i++)
        ckpt_enc_add(e, &ext[i]);
    return ckpt_enc_finish(e, err, errlen);
}

/* ---- decoder ---- */

/* Magic, version, reserved, and the counts against len. */
static int check_header(const uint8_t *p, size_t len, const struct ckpt *ck,
                        const struct rules *r, char *err, size_t errlen)
{
    if (memcmp(p + OFF_MAGIC, CKPT_MAGIC, 8) != 0)
        return bad(err, errlen, NULL, "bad magic (not a buoy checkpoint)");
    if (le_get32(p + OFF_VERSION) != CKPT_VERSION)
        return bad(err, errlen, NULL, "format version %" PRIu32 " (this buoy reads version %d)",
                   le_get32(p + OFF_VERSION), CKPT_VERSION);
    if (le_get32(p + OFF_RESERVED) != 0)
        return bad(err, errlen, r, "reserved header field is %#" PRIx32 ", not 0",
                   le_get32(p + OFF_RESERVED));
    uint64_t room = (len - CKPT_HDR_LEN) / CKPT_ENTRY_LEN;
    if (ck->nsegs > room || ck->nextents > room - ck->nsegs ||
        len != CKPT_HDR_LEN + (ck->nsegs + ck->nextents) * CKPT_ENTRY_LEN)
        return bad(err, errlen, r, "object is %zu bytes, wrong for %" PRIu32
                   " segments and %" PRIu64 " extents", len, ck->nsegs, ck->nextents);
    uint64_t check = object_check(p, len);
    if (check != ck->check)
        return bad(err, errlen, r, "checksum mismatch (stored %016" PRIx64 ", computed %016"
                   PRIx64 ")", ck->check, check);
    return 0;
}

/* The segment table and the extent array, through the rules. */
static int check_tables(const struct ckpt *ck, struct rules *r, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < ck->nsegs; i++) {
        struct ckpt_seg s = ckpt_seg_at(ck, i);
        if (check_seg(r, i, &s, err, errlen) < 0)
            return -1;
    }
    for (uint64_t i = 0; i < ck->nextents; i++) {
        const uint8_t *p = ck->exttab + i * CKPT_ENTRY_LEN;
        struct ckpt_extent x;
        get_extent(p, &x);
        if (le_get32(p + EXT_RESERVED) != 0)
            return bad(err, errlen, r, "extent %" PRIu64 ": reserved field is %#" PRIx32
                       ", not 0", i, le_get32(p + EXT_RESERVED));
        if (check_extent(r, &x, err, errlen) < 0)
            return -1;
    }
    return check_live(r, err, errlen);
}

int ckpt_decode(const void *bytes, size_t len, struct ckpt *ck, char *err, size_t errlen)
{
    const uint8_t *p = bytes;
    struct rules r;
    int rc;
    memset(ck, 0, sizeof *ck);
    if (len < CKPT_HDR_LEN)
        return bad(err, errlen, NULL, "object is %zu bytes, shorter than the %d-byte header",
                   len, CKPT_HDR_LEN);
    memcpy(ck->uuid, p + OFF_UUID, 16);
    ck->seq = le_get64(p + OFF_SEQ);
    ck->epoch = le_get32(p + OFF_EPOCH);
    ck->nsegs = le_get32(p + OFF_NSEGS);
    ck->nextents = le_get64(p + OFF_NEXTENTS);
    ck->check = le_get64(p + OFF_CHECK);
    memset(&r, 0, sizeof r);
    r.seq = ck->seq; /* for the messages until rules_init() */
    rc = check_header(p, len, ck, &r, err, errlen);
    if (rc == 0) {
        ck->segtab = p + CKPT_HDR_LEN;
        ck->exttab = ck->segtab + (size_t)ck->nsegs * CKPT_ENTRY_LEN;
        rules_init(&r, ck->seq, ck->epoch, ck->nsegs);
        rc = check_tables(ck, &r, err, errlen);
        rules_free(&r);
    }
    if (rc < 0)
        memset(ck, 0, sizeof *ck);
    return rc;
}

struct ckpt_seg ckpt_seg_at(const struct ckpt *ck, uint32_t i)
{
    struct ckpt_seg s = {0};
    if (i >= ck->nsegs)
        return s;
    get_seg(ck->segtab + (size_t)i * CKPT_ENTRY_LEN, &s);
    return s;
}

struct ckpt_extent ckpt_extent_at(const struct ckpt *ck, uint64_t i)
{
    struct ckpt_extent x = {0};
    if (i >= ck->nextents)
        return x;
    get_extent(ck->exttab + i * CKPT_ENTRY_LEN, &x);
    return x;
}

int snap_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= SNAP_NAME_MAX && name[0] != '.' &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

void snap_key(const char *name, char out[SNAP_KEY_SIZE])
{
    snprintf(out, SNAP_KEY_SIZE, SNAP_PREFIX "%s", name);
}
