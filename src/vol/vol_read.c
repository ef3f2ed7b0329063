/* vol_read.c - the volume engine's read path: holes and in-memory blocks at
 * once, then the local block cache, then ranged GETs of the store pieces,
 * coalesced, all in flight at once, each block checked; read-ahead for
 * sequential readers.  Rules: the top of vol.c. */

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
#include "vol_int.h"

/* ---- reading ---- */

void add_piece(struct read_ctx *c, uint64_t lba, uint64_t n, uint32_t seg,
                      uint32_t block)
{
    if (c->np == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->p = xrealloc(c->p, c->cap * sizeof *c->p);
    }
    c->p[c->np++] = (struct piece){.lba = lba, .n = n, .seg = seg, .block = block};
}

/* Fills holes, blocks held in memory and cached blocks at once; queues the
 * rest as pieces. */
static int read_piece(void *arg, uint64_t lba, uint64_t n, uint32_t seg, uint32_t block,
                      int mapped)
{
    struct read_ctx *c = arg;
    struct vol *v = c->v;
    char *dst = c->out ? c->out + (lba - c->lba0) * v->bs : NULL;

    if (!mapped) {
        if (dst)
            memset(dst, 0, n * v->bs);
        return 0;
    }
    struct seg_builder *mem = v->segs[seg].mem;
    if (mem) { /* open, or sealed and not yet durable */
        for (uint64_t i = 0; dst && i < n; i++)
            memcpy(dst + i * v->bs, seg_block(mem, block + (uint32_t)i), v->bs);
        return 0;
    }
    /* the cache, run by run; each miss starts or extends a piece */
    uint64_t i = 0, miss = 0;
    while (i < n) {
        uint32_t want = n - i > UINT32_MAX ? UINT32_MAX : (uint32_t)(n - i), got = 0;
        if (v->cache && dst) {
            got = cache_get(v->cache, seg, block + (uint32_t)i, want, dst + i * v->bs);
            v->stats.cache_hit_blocks += got;
        } else if (v->cache)
            while (got < want && cache_has(v->cache, seg, block + (uint32_t)(i + got)))
                got++;
        if (got) {
            if (miss)
                add_piece(c, lba + i - miss, miss, seg, block + (uint32_t)(i - miss));
            miss = 0;
            i += got;
            continue;
        }
        if (dst)
            v->stats.cache_miss_blocks++;
        miss++;
        i++;
    }
    if (miss)
        add_piece(c, lba + n - miss, miss, seg, block + (uint32_t)(n - miss));
    return 0;
}

static int piece_cmp(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->block < y->block ? -1 : x->block > y->block;
}

/* Groups the pieces, sorted by segment and block, into ranged GETs (see
 * struct fetch). */
struct fetch *plan_fetches(struct read_ctx *c, size_t *nf)
{
    struct vol *v = c->v;
    struct fetch *f = xcalloc(c->np ? c->np : 1, sizeof *f);
    size_t k = 0;
    if (c->np > 1)
        qsort(c->p, c->np, sizeof *c->p, piece_cmp);
    for (size_t i = 0; i < c->np; i++) {
        struct piece *p = &c->p[i];
        struct fetch *last = k ? &f[k - 1] : NULL;
        uint64_t end = last ? (uint64_t)last->block + last->n : 0;
        if (last && last->seg == p->seg && p->block >= end && p->block - end <= COALESCE_GAP &&
            p->block + p->n - last->block <= MAX_FETCH_BLOCKS) {
            last->n = (uint32_t)(p->block + p->n - last->block);
            last->npieces++;
            if (p->lba < last->lba_lo)
                last->lba_lo = p->lba;
            if (p->lba + p->n > last->lba_hi)
                last->lba_hi = p->lba + p->n;
            continue;
        }
        f[k++] = (struct fetch){.seg = p->seg, .block = p->block, .n = (uint32_t)p->n,
                                .first = i, .npieces = 1, .lba_lo = p->lba,
                                .lba_hi = p->lba + p->n};
    }
    for (size_t i = 0; i < k; i++) {
        struct vseg *s = &v->segs[f[i].seg];
        seg_key(s->seq, s->epoch, f[i].key);
        f[i].io = origin_of(v, s->seq)->io;
        f[i].q.r = (struct store_req){.op = STORE_GET, .key = f[i].key,
                                      .off = s->header_len + (uint64_t)f[i].block * v->bs,
                                      .len = (uint64_t)f[i].n * v->bs};
        if (s->hdr && seg_is_packed(s->hdr)) { /* the chunks holding the blocks */
            f[i].packed = 1;
            seg_packed_range(s->hdr, f[i].block, f[i].n, &f[i].q.r.off, &f[i].q.r.len,
                             &f[i].pblock, &f[i].pn);
            continue;
        }
        /* the header comes along, in parallel, unless it is cached or was
         * asked for by an earlier fetch of this plan */
        f[i].with_hdr = !s->hdr && s->header_len && (i == 0 || f[i - 1].seg != f[i].seg);
        if (f[i].with_hdr)
            f[i].hq.r = (struct store_req){.op = STORE_GET, .key = f[i].key, .off = 0,
                                           .len = s->header_len};
    }
    *nf = k;
    return f;
}

/* "<store url>/<key>" of segment idx, for messages that name the object. */
static void seg_name(const struct vol *v, uint32_t idx, char *out, size_t outlen)
{
    const struct vseg *s = &v->segs[idx];
    char key[SEG_KEY_SIZE];
    seg_key(s->seq, s->epoch, key);
    snprintf(out, outlen, "%s/%s", origin_of(v, s->seq)->st->url, key);
}

/* Logs a check that failed on segment idx's bytes (a checksum, a chunk that
 * does not unpack, a header that does not parse), naming the object, and
 * counts it. */
static void corrupt(struct vol *v, uint32_t idx, const char *why)
{
    char name[STORE_KEY_MAX + 256];
    seg_name(v, idx, name, sizeof name);
    v->stats.checksum_errors++;
    log_error("read of %s: %s", name, why);
}

/* Parses and checks segment idx's header from bytes; NULL with err. */
static struct seg_hdr *parse_hdr(struct vol *v, uint32_t idx, const struct buf *b, char *err,
                                 size_t errlen)
{
    struct vseg *s = &v->segs[idx];
    struct seg_hdr *h = xcalloc(1, sizeof *h);
    if (seg_parse_header(b->p, b->len, h, err, errlen) != 0 ||
        seg_check_identity(h, origin_of(v, s->seq)->uuid, s->seq, s->epoch, v->bs, err,
                           errlen) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* The header a finished fetch brought, into the header cache. */
static int take_fetched_hdr(struct vol *v, struct fetch *f)
{
    char err[STORE_ERRMSG_MAX];
    if (f->hq.r.err) {
        log_error("read of segment %" PRIu64 "'s header: %s", v->segs[f->seg].seq,
                  f->hq.r.errmsg);
        return -EIO;
    }
    struct seg_hdr *h = parse_hdr(v, f->seg, &f->hq.r.body, err, sizeof err);
    if (!h) {
        corrupt(v, f->seg, err);
        return -EIO;
    }
    if (v->segs[f->seg].hdr) { /* another reader was first */
        seg_hdr_free(h);
        free(h);
    } else
        cache_hdr(v, f->seg, h);
    return 0;
}

/* Checks a finished fetch block by block and caches it.  0, or -EIO with
 * the reason logged. */
int check_fetch(struct vol *v, struct fetch *f)
{
    char err[STORE_ERRMSG_MAX];
    struct buf *b = &f->q.r.body;
    if (f->with_hdr && take_fetched_hdr(v, f) < 0)
        return -EIO;
    if (f->q.r.err) {
        log_error("read of segment %" PRIu64 " blocks %u+%u: %s", v->segs[f->seg].seq, f->block,
                  f->n, f->q.r.errmsg);
        return -EIO;
    }
    if (f->packed) { /* chunks back to blocks; then checked like any */
        struct seg_hdr *ph = get_hdr(v, f->seg, err, sizeof err); /* evicted meanwhile: again */
        if (!ph || b->len != f->q.r.len) {
            log_error("read of segment %" PRIu64 " chunks: %zu bytes returned, not %" PRIu64,
                      v->segs[f->seg].seq, b->len, f->q.r.len);
            return -EIO;
        }
        struct buf raw = {0};
        buf_reserve(&raw, (size_t)f->pn * v->bs);
        if (seg_unpack(ph, f->pblock, f->pn, b->p, b->len, raw.p, err, sizeof err) < 0) {
            corrupt(v, f->seg, err);
            buf_free(&raw);
            return -EIO;
        }
        raw.len = (size_t)f->pn * v->bs;
        buf_free(b);
        *b = raw;
        f->block = f->pblock;
        f->n = f->pn;
        f->packed = 0;
    }
    if (b->len != (uint64_t)f->n * v->bs) {
        log_error("read of segment %" PRIu64 " blocks %u+%u: %zu bytes returned, not %" PRIu64,
                  v->segs[f->seg].seq, f->block, f->n, b->len, (uint64_t)f->n * v->bs);
        return -EIO;
    }
    struct seg_hdr *h = get_hdr(v, f->seg, err, sizeof err);
    if (!h) {
        char name[STORE_KEY_MAX + 256];
        seg_name(v, f->seg, name, sizeof name);
        log_error("read of %s: %s", name, err);
        return -EIO;
    }
    for (uint32_t i = 0; i < f->n; i++)
        if (seg_verify_block(h, f->block + i, b->p + (size_t)i * v->bs, err, sizeof err)) {
            corrupt(v, f->seg, err);
            return -EIO;
        }
    v->stats.bytes_fetched += b->len;
    if (v->cache)
        cache_put(v->cache, f->seg, f->block, f->n, b->p);
    return 0;
}

void submit_fetch(struct vol *v, struct fetch *f)
{
    f->q.r.key = f->key;
    io_submit(f->io, &f->q);
    if (f->with_hdr) {
        f->hq.r.key = f->key;
        io_submit(f->io, &f->hq);
    }
}

static int fetch_done(struct vol *v, struct fetch *f)
{
    (void)v;
    return io_done(f->io, &f->q) && (!f->with_hdr || io_done(f->io, &f->hq));
}

/* Waits for f with the lock released (or kept, under v->hold). */
static void wait_fetch(struct vol *v, struct fetch *f)
{
    int unlock = !v->hold; /* read before unlocking: others change it */
    v->reads_waiting++;
    if (unlock)
        pthread_mutex_unlock(&v->lock);
    io_wait(f->io, &f->q);
    if (f->with_hdr)
        io_wait(f->io, &f->hq);
    if (unlock)
        pthread_mutex_lock(&v->lock);
    v->reads_waiting--;
}

void free_fetch_reqs(struct fetch *f)
{
    store_req_free(&f->q.r);
    if (f->with_hdr)
        store_req_free(&f->hq.r);
}

/* Caches finished read-ahead fetches; with wait, first waits for those
 * overlapping blocks [lba, lba + n).  A fetch being waited for is pinned
 * (waiters) so no other thread frees it while the lock is released. */
void reap_readahead(struct vol *v, int wait, uint64_t lba, uint64_t n)
{
    for (struct fetch *f = wait ? v->ra : NULL; f;) {
        if (f->lba_lo < lba + n && lba < f->lba_hi && !fetch_done(v, f)) {
            f->waiters++;
            wait_fetch(v, f);
            f->waiters--;
            f = v->ra; /* the list may have changed meanwhile: start over */
            continue;
        }
        f = f->next;
    }
    for (struct fetch **pp = &v->ra; *pp;) {
        struct fetch *f = *pp;
        if (f->waiters || !fetch_done(v, f)) {
            pp = &f->next;
            continue;
        }
        if (check_fetch(v, f) == 0)
            v->stats.readahead_bytes += f->q.r.body.len;
        *pp = f->next;
        free_fetch_reqs(f);
        free(f);
        v->nra--;
    }
}

/* Sequential reads double the read-ahead window up to READAHEAD_MAX; the
 * next window is fetched into the cache in the background, once the reader
 * has used half of the one before. */
static void read_ahead(struct vol *v, uint64_t lba, uint64_t n)
{
    uint64_t end = lba + n, max = READAHEAD_MAX / v->bs;
    if (!v->cache || lba != v->ra_next) {
        v->ra_next = end;
        v->ra_win = 0;
        v->ra_end = end;
        return;
    }
    v->ra_next = end;
    v->ra_win = v->ra_win ? v->ra_win * 2 : n * 2 > 32 ? n * 2 : 32;
    if (v->ra_win > max)
        v->ra_win = max;
    if (v->ra_end < end)
        v->ra_end = end;
    if (v->ra_end >= end + v->ra_win / 2 || v->ra_end >= v->nblocks || v->nra >= 8)
        return;
    uint64_t from = v->ra_end, to = end + v->ra_win > v->nblocks ? v->nblocks : end + v->ra_win;
    struct read_ctx c = {.v = v, .lba0 = from};
    if (map_lookup(v->map, from, to - from, read_piece, &c) == 0) {
        size_t nf, k = 0;
        for (size_t i = 0; i < c.np; i++) /* packed: only where the chunk table is known */
            if (!v->zstd_level || v->segs[c.p[i].seg].hdr)
                c.p[k++] = c.p[i];
        c.np = k;
        struct fetch *f = plan_fetches(&c, &nf);
        for (size_t i = 0; i < nf; i++) {
            struct fetch *x = xmalloc(sizeof *x);
            *x = f[i];
            x->next = v->ra;
            v->ra = x;
            v->nra++;
            submit_fetch(v, x);
        }
        free(f);
    }
    free(c.p);
    v->ra_end = to;
}

/* Reads blocks: holes, in-memory and cached blocks directly, the rest with
 * all their ranged GETs in flight at once, waited for with the lock
 * released (unless v->hold), each block checked. */
/* Packed segments: the chunk table is in the header, so the headers of the
 * pieces' segments are fetched (all at once, the lock released unless
 * v->hold) before their data can be asked for.  0, or -EIO. */
static int ensure_headers(struct vol *v, struct read_ctx *c)
{
    struct fetch *h = NULL;
    size_t nh = 0;
    for (size_t i = 0; i < c->np; i++) {
        struct vseg *s = &v->segs[c->p[i].seg];
        int dup = 0;
        for (size_t k = 0; k < nh && !dup; k++)
            dup = h[k].seg == c->p[i].seg;
        if (s->hdr || dup || !s->header_len)
            continue;
        h = xrealloc(h, (nh + 1) * sizeof *h);
        h[nh] = (struct fetch){.seg = c->p[i].seg, .with_hdr = 1,
                               .io = origin_of(v, s->seq)->io};
        seg_key(s->seq, s->epoch, h[nh].key);
        h[nh].hq.r = (struct store_req){.op = STORE_GET, .key = h[nh].key, .len = s->header_len};
        nh++;
    }
    if (!nh)
        return 0;
    for (size_t k = 0; k < nh; k++) {
        h[k].hq.r.key = h[k].key;
        io_submit(h[k].io, &h[k].hq);
    }
    int unlock = !v->hold;
    v->reads_waiting++;
    if (unlock)
        pthread_mutex_unlock(&v->lock);
    for (size_t k = 0; k < nh; k++)
        io_wait(h[k].io, &h[k].hq);
    if (unlock)
        pthread_mutex_lock(&v->lock);
    v->reads_waiting--;
    int rc = 0;
    for (size_t k = 0; k < nh; k++) {
        if (!rc && !v->segs[h[k].seg].hdr)
            rc = take_fetched_hdr(v, &h[k]);
        store_req_free(&h[k].hq.r);
    }
    free(h);
    return rc;
}

int read_blocks(struct vol *v, uint64_t lba, uint64_t n, char *out)
{
    if (v->ra)
        reap_readahead(v, 1, lba, n);
    struct read_ctx c = {.v = v, .lba0 = lba, .out = out};
    if (map_lookup(v->map, lba, n, read_piece, &c) < 0) {
        free(c.p);
        return -EIO;
    }
    if (v->zstd_level && ensure_headers(v, &c) < 0) {
        free(c.p);
        return -EIO;
    }
    size_t nf;
    struct fetch *f = plan_fetches(&c, &nf);
    for (size_t i = 0; i < nf; i++)
        submit_fetch(v, &f[i]);
    if (nf) {
        int unlock = !v->hold; /* read before unlocking: others change it */
        v->reads_waiting++;
        if (unlock)
            pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < nf; i++) {
            io_wait(f[i].io, &f[i].q);
            if (f[i].with_hdr)
                io_wait(f[i].io, &f[i].hq);
        }
        if (unlock)
            pthread_mutex_lock(&v->lock);
        v->reads_waiting--;
    }
    int rc = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!rc)
            rc = check_fetch(v, &f[i]);
        for (size_t j = f[i].first; !rc && j < f[i].first + f[i].npieces; j++) {
            struct piece *p = &c.p[j];
            memcpy(out + (p->lba - lba) * v->bs,
                   f[i].q.r.body.p + (size_t)(p->block - f[i].block) * v->bs, p->n * v->bs);
        }
        free_fetch_reqs(&f[i]);
    }
    free(f);
    free(c.p);
    return rc;
}

int in_range(const struct vol *v, uint64_t off, uint64_t len)
{
    return off <= v->sb.size && len <= v->sb.size - off;
}

int vol_read(struct vol *v, void *buf, uint64_t off, size_t len)
{
    if (!in_range(v, off, len))
        return -EINVAL;
    if (!len)
        return 0;
    pthread_mutex_lock(&v->lock);
    uint64_t first = off / v->bs, last = (off + len - 1) / v->bs, n = last - first + 1;
    int rc;
    if (off % v->bs == 0 && len % v->bs == 0)
        rc = read_blocks(v, first, n, buf);
    else {
        char *tmp = xmalloc(n * v->bs);
        rc = read_blocks(v, first, n, tmp);
        if (!rc)
            memcpy(buf, tmp + (off - first * v->bs), len);
        free(tmp);
    }
    if (!rc) {
        v->stats.bytes_read += len;
        read_ahead(v, first, n);
    } else
        v->stats.read_errors++;
    pthread_mutex_unlock(&v->lock);
    return rc;
}

