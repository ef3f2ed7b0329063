/* store_crypt.c - authenticated encryption of every object but `super`.
 *
 * The top layer of an encrypted volume's stack (crypt -> retry -> [fault]
 * -> dir | s3).  Each object is cut in chunks of CS = 16384 plaintext bytes
 * and each chunk sealed with XChaCha20-Poly1305-IETF (libsodium) under the
 * volume's data key, so a ranged GET fetches and opens only the chunks it
 * needs.  Layout of a stored object holding P plaintext bytes:
 *
 *     +---------------------------------+  0
 *     | "BUOYENC1" | u32 1 | u32 CS     |  header, 16 bytes (little-endian)
 *     +---------------------------------+  16
 *     | nonce (24) | ciphertext | tag   |  chunk 0: plaintext [0, min(CS, P))
 *     +---------------------------------+  16 + (CS + 40)
 *     | nonce (24) | ciphertext | tag   |  chunk 1 ...
 *     +---------------------------------+
 *
 * n = max(1, ceil(P / CS)) chunks (an empty object is one chunk of 0
 * bytes; only the last may be short), so the stored size is
 * 16 + 40 n + P.  Every nonce is 24 fresh random bytes: never derived
 * from a key, a block number or a counter.  The associated data of chunk
 * c is "buoy-enc-1" | volume uuid (16) | u64 c | u8 (1 if c is the last
 * chunk) | the object's key, so a chunk moved within an object, an object
 * renamed or copied to another key, an object of another volume and an
 * object cut at a chunk boundary all fail authentication, as do a flipped
 * bit anywhere and another key.  Such a request fails STORE_EFATAL with a
 * message naming the object and the chunk; no unauthenticated byte is
 * ever returned.
 *
 * PUT seals the whole body and sends one child PUT (conditions pass
 * through; ETags are the stored object's).  GET maps the plaintext range to
 * the chunks covering it (from byte 0 when chunk 0 is one of them, so the
 * header is checked), and uses the whole object's size that every backend
 * reports with a GET to know which chunk is last.  HEAD and LIST report
 * plaintext sizes.  DELETE and everything about `super` pass through.
 * COPY and metadata are refused (refuses_meta, checked by store_submit):
 * a copy would carry ciphertext bound to the source's key, and metadata
 * would be stored in the clear.
 *
 * Threads.  Sealing and opening run at about 1.3 GB/s a core; on the
 * thread that runs the store (the engine's one I/O thread per origin) they
 * would hold up every other request of the volume, 6 ms per 8 MiB
 * segment, and use one core at most.  So a request of more than
 * INLINE_CHUNKS chunks becomes an op for a pool of worker threads (one per
 * CPU up to POOL_MAX, started with the first such op), which take it
 * JOB_CHUNKS chunks at a time, so that several workers share one big
 * object.  Smaller requests (segment headers, the lease, 4 KiB reads) are
 * done in place: handing them over would cost more than the work.
 *
 *   submit(PUT) -> op -> pool: seal -> ready -> run(): child PUT below
 *   GET below -> read_done -> op -> pool: open -> ready -> run(): complete
 *
 * Rules:
 *  1. Only the store's thread submits, runs, completes and frees requests
 *     and ops, and calls into the layer below; a worker seals or opens the
 *     chunks it took, and calls store_wakeup() on the layer below (which
 *     any thread may) when it finishes an op.
 *  2. From when an op enters the pool until a worker puts it on the ready
 *     list, its buffers (a PUT's plaintext and the stored object being
 *     sealed, a GET's stored bytes and the plaintext being opened) and its
 *     request are the workers': the store's thread touches none of them.
 *     Each chunk is taken by one worker and written by it alone; the
 *     pool's lock orders a worker's writes before run() reads them.
 *  3. A GET succeeds only if every chunk it opened authenticated; else the
 *     lowest chunk that failed names the error, the plaintext buffer is
 *     wiped and freed, and no byte of it is returned.
 *  4. The pool allocates no buffer of its own (one chunk on a worker's
 *     stack): what it holds is what the caller has in flight, which the
 *     engine bounds.
 *  5. A PUT goes below once sealed, so requests in flight together may
 *     reach the layer below in another order than they were submitted in;
 *     the store promises no order among requests in flight. */
#include "store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CRYPT_MAGIC "BUOYENC1"
#define CRYPT_VERSION 1
#define HDR_LEN 16
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define CHUNK_OVER (NONCE_LEN + TAG_LEN)
#define CHUNK_CT (STORE_CRYPT_CHUNK + CHUNK_OVER)
#define AD_PREFIX "buoy-enc-1"
#define AD_MAX (sizeof AD_PREFIX - 1 + 16 + 8 + 1 + STORE_KEY_MAX)
#define SUPER "super"
#define INLINE_CHUNKS 4 /* up to 64 KiB: sealed or opened in place */
#define JOB_CHUNKS 32   /* a worker takes 512 KiB of an op at a time */
#define POOL_MAX 8
#define NO_CHUNK UINT64_MAX

/* The work of one request: chunks c0..c1 of an object of n. */
struct crypt_op {
    struct store_req *r;     /* the caller's request */
    struct store_req *child; /* PUT: sent below once sealed */
    const char *key;         /* r->key */
    int put;
    const uint8_t *in;   /* PUT: the plaintext; GET: stored chunk c0 */
    uint8_t *out;        /* PUT: the stored object; GET: plaintext from off */
    size_t span;         /* GET: bytes of out, chunk c0 at off to c1's end */
    uint64_t off, plain; /* GET: first plaintext byte; the object's plaintext size */
    uint64_t c0, c1, n;
    /* under the pool's lock while the op is in the pool */
    uint64_t next; /* the first chunk no worker has taken */
    uint64_t left; /* chunks not done */
    uint64_t bad;  /* GET: the lowest chunk that failed, NO_CHUNK if none */
    struct crypt_op *qnext;
};

struct crypt_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;            /* workers wait here for ops */
    pthread_cond_t ready_cv;        /* run() waits here when nothing is below */
    struct crypt_op *qhead, *qtail; /* ops with chunks no worker has taken */
    struct crypt_op *rhead, *rtail; /* ops whose chunks are all done, for run() */
    int stopping;
    int want, nthreads; /* workers asked for, started */
    pthread_t thread[POOL_MAX];
};

struct crypt_store {
    struct store base;
    uint8_t key[32];
    uint8_t uuid[16];
    struct crypt_pool pool;
    int inflight;         /* requests taken and not completed: the store's thread */
    unsigned completions; /* for run() to return once one completed */
    uint64_t ops_pooled;  /* ops handed to the pool (tests look) */
};

#define CRYPT_OF(s) ((struct crypt_store *)(s))

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ok;

static void init_sodium(void)
{
    sodium_ok = sodium_init() >= 0;
}

int store_crypt_init(void)
{
    pthread_once(&sodium_once, init_sodium);
    return sodium_ok ? 0 : -1;
}

static uint64_t nchunks(uint64_t plain)
{
    return plain ? (plain + STORE_CRYPT_CHUNK - 1) / STORE_CRYPT_CHUNK : 1;
}

uint64_t store_crypt_size(uint64_t plain)
{
    return HDR_LEN + nchunks(plain) * CHUNK_OVER + plain;
}

int store_crypt_plain_size(uint64_t stored, uint64_t *plain)
{
    if (stored < HDR_LEN + CHUNK_OVER)
        return -1;
    uint64_t x = stored - HDR_LEN, full = x / CHUNK_CT, rem = x % CHUNK_CT;
    if (rem == 0) {
        *plain = full * STORE_CRYPT_CHUNK;
        return 0;
    }
    /* a short last chunk holds 1..CS-1 bytes; an empty one only stands alone */
    if (rem < CHUNK_OVER || (rem == CHUNK_OVER && full > 0))
        return -1;
    *plain = full * STORE_CRYPT_CHUNK + (rem - CHUNK_OVER);
    return 0;
}

static int is_super(const char *key)
{
    return strcmp(key, SUPER) == 0;
}

static size_t make_ad(const struct crypt_store *cs, const char *key, uint64_t c, int last,
                      uint8_t ad[AD_MAX])
{
    size_t n = sizeof AD_PREFIX - 1, klen = strlen(key);
    memcpy(ad, AD_PREFIX, n);
    memcpy(ad + n, cs->uuid, 16);
    n += 16;
    for (int i = 0; i < 8; i++)
        ad[n++] = (uint8_t)(c >> (8 * i));
    ad[n++] = (uint8_t)(last != 0);
    memcpy(ad + n, key, klen);
    return n + klen;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* --- chunks: the work, on a worker or the store's thread --- */

static size_t chunk_len(uint64_t plain, uint64_t c)
{
    return c == nchunks(plain) - 1 ? (size_t)(plain - c * STORE_CRYPT_CHUNK) : STORE_CRYPT_CHUNK;
}

static void seal_chunk(const struct crypt_store *cs, const struct crypt_op *op, uint64_t c)
{
    uint8_t ad[AD_MAX];
    uint8_t *o = op->out + HDR_LEN + (size_t)c * CHUNK_CT;
    const uint8_t *m = op->in ? op->in + (size_t)c * STORE_CRYPT_CHUNK : NULL;
    size_t adlen = make_ad(cs, op->key, c, c == op->n - 1, ad);
    randombytes_buf(o, NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(o + NONCE_LEN, NULL, m, chunk_len(op->plain, c), ad,
                                               adlen, NULL, o, cs->key);
}

/* Opens chunk c into its place in op->out; 0, or -1 when it does not
 * authenticate. */
static int open_chunk(const struct crypt_store *cs, const struct crypt_op *op, uint64_t c)
{
    uint8_t ad[AD_MAX], aside[STORE_CRYPT_CHUNK];
    const uint8_t *in = op->in + (size_t)(c - op->c0) * CHUNK_CT;
    size_t mlen = chunk_len(op->plain, c), adlen = make_ad(cs, op->key, c, c == op->n - 1, ad);
    uint64_t at = c * STORE_CRYPT_CHUNK;
    /* a first chunk that starts before off is opened aside; its tail copied */
    uint8_t *m = at >= op->off ? op->out + (size_t)(at - op->off) : aside;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, in + NONCE_LEN, mlen + TAG_LEN,
                                                   ad, adlen, in, cs->key) != 0)
        return -1;
    if (m == aside)
        memcpy(op->out, aside + (op->off - at), mlen - (size_t)(op->off - at));
    return 0;
}

/* Seals or opens chunks [lo, hi) of op; the first that failed, or NO_CHUNK. */
static uint64_t do_chunks(const struct crypt_store *cs, const struct crypt_op *op, uint64_t lo,
                          uint64_t hi)
{
    for (uint64_t c = lo; c < hi; c++)
        if (op->put)
            seal_chunk(cs, op, c);
        else if (open_chunk(cs, op, c) < 0)
            return c;
    return NO_CHUNK;
}

/* --- the pool --- */

static void *worker_main(void *arg)
{
    struct crypt_store *cs = arg;
    struct crypt_pool *p = &cs->pool;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->qhead && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        struct crypt_op *op = p->qhead;
        if (!op)
            break; /* stopping, and nothing is left */
        uint64_t lo = op->next, hi = op->c1 + 1 - lo > JOB_CHUNKS ? lo + JOB_CHUNKS : op->c1 + 1;
        op->next = hi;
        if (hi > op->c1) {
            p->qhead = op->qnext;
            if (!p->qhead)
                p->qtail = NULL;
        }
        int skip = op->bad != NO_CHUNK; /* a lower chunk failed: the answer is known */
        pthread_mutex_unlock(&p->lock);
        uint64_t bad = skip ? NO_CHUNK : do_chunks(cs, op, lo, hi);
        pthread_mutex_lock(&p->lock);
        if (bad < op->bad)
            op->bad = bad;
        op->left -= hi - lo;
        if (op->left == 0) { /* rule 2: op is run()'s from here */
            op->qnext = NULL;
            if (p->rtail)
                p->rtail->qnext = op;
            else
                p->rhead = op;
            p->rtail = op;
            pthread_cond_signal(&p->ready_cv);
            pthread_mutex_unlock(&p->lock);
            store_wakeup(cs->base.next); /* run() may be blocked below */
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* 1 when there are workers, starting them the first time. */
static int pool_ready(struct crypt_store *cs)
{
    struct crypt_pool *p = &cs->pool;
    if (p->nthreads || !p->want)
        return p->nthreads > 0;
    for (int i = 0; i < p->want; i++) {
        int e = pthread_create(&p->thread[p->nthreads], NULL, worker_main, cs);
        if (e) {
            log_warn("%s: cannot start an encryption thread (%s); %d running", cs->base.url,
                     strerror(e), p->nthreads);
            break;
        }
        p->nthreads++;
    }
    p->want = p->nthreads;
    return p->nthreads > 0;
}

static void pool_stop(struct crypt_store *cs)
{
    struct crypt_pool *p = &cs->pool;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->thread[i], NULL);
    pthread_cond_destroy(&p->ready_cv);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
}

/* --- requests: on the store's thread --- */

static void complete(struct crypt_store *cs, struct store_req *r)
{
    if (r->err)
        buf_free(&r->body); /* a failed GET returns no bytes, not even stored ones */
    cs->inflight--;
    cs->completions++;
    store_complete(&cs->base, r);
}

static void fail_auth(struct crypt_store *cs, struct store_req *r, uint64_t chunk)
{
    store_fail(&cs->base, r, STORE_EFATAL,
               "chunk %llu: authentication failed: the object was altered, truncated, moved or "
               "written with another key",
               (unsigned long long)chunk);
}

/* op's chunks are done: a PUT goes below, a GET completes. */
static void finish_op(struct crypt_store *cs, struct crypt_op *op)
{
    if (op->put) {
        cs->base.next->ops->submit(cs->base.next, op->child); /* put_done frees op */
        return;
    }
    struct store_req *r = op->r;
    if (op->bad != NO_CHUNK) {
        sodium_memzero(op->out, op->span);
        free(op->out);
        fail_auth(cs, r, op->bad);
    } else {
        size_t len = r->len && r->len < op->span ? (size_t)r->len : op->span;
        buf_free(&r->body);
        r->body = (struct buf){.p = (char *)op->out, .len = len, .cap = op->span};
        r->body.p[len] = '\0';
        r->obj.size = op->plain;
    }
    free(op);
    complete(cs, r);
}

/* Seals or opens op in place when it is small or there are no workers,
 * else hands it to the pool. */
static void start_op(struct crypt_store *cs, struct crypt_op *op)
{
    uint64_t k = op->c1 - op->c0 + 1;
    op->bad = NO_CHUNK;
    if (k <= INLINE_CHUNKS || !pool_ready(cs)) {
        op->bad = do_chunks(cs, op, op->c0, op->c1 + 1);
        finish_op(cs, op);
        return;
    }
    struct crypt_pool *p = &cs->pool;
    op->next = op->c0;
    op->left = k;
    op->qnext = NULL;
    cs->ops_pooled++;
    pthread_mutex_lock(&p->lock);
    if (p->qtail)
        p->qtail->qnext = op;
    else
        p->qhead = op;
    p->qtail = op;
    if (k > JOB_CHUNKS)
        pthread_cond_broadcast(&p->work); /* several workers can share it */
    else
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

/* Finishes the ops the workers are done with. */
static void finish_ready(struct crypt_store *cs)
{
    struct crypt_pool *p = &cs->pool;
    if (!p->nthreads)
        return;
    pthread_mutex_lock(&p->lock);
    struct crypt_op *op = p->rhead;
    p->rhead = p->rtail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (op) {
        struct crypt_op *next = op->qnext;
        finish_op(cs, op);
        op = next;
    }
}

/* Waits up to ms for the pool to finish an op or a store_wakeup(). */
static void wait_ready(struct crypt_store *cs, int ms)
{
    struct crypt_pool *p = &cs->pool;
    struct timespec ts;
    clock_deadline(CLOCK_REALTIME, (uint64_t)ms, &ts);
    pthread_mutex_lock(&p->lock);
    while (!p->rhead && !__atomic_load_n(&cs->base.woken, __ATOMIC_ACQUIRE))
        if (pthread_cond_timedwait(&p->ready_cv, &p->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->lock);
}

static void put_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    struct crypt_op *op = r->lpriv;
    free(op->out);
    free(op);
    r->lpriv = NULL;
    store_req_adopt(r, c);
    complete(cs, r);
}

/* The first stored byte a GET of plaintext from off needs. */
static uint64_t stored_start(uint64_t off)
{
    uint64_t c0 = off / STORE_CRYPT_CHUNK;
    return c0 == 0 ? 0 : HDR_LEN + c0 * CHUNK_CT;
}

/* r holds the stored bytes from stored_start(r->off) and the whole stored
 * object's size: checks their shape and starts opening the chunks, or
 * fails r. */
static void open_range(struct crypt_store *cs, struct store_req *r)
{
    uint64_t total = r->obj.size, plain;
    if (store_crypt_plain_size(total, &plain) < 0) {
        store_fail(&cs->base, r, STORE_EFATAL,
                   "authentication failed: the object was altered, truncated, moved or written "
                   "with another key (%llu bytes is no encrypted object's size)",
                   (unsigned long long)total);
        complete(cs, r);
        return;
    }
    if (r->off > 0 && r->off >= plain) {
        store_fail(&cs->base, r, STORE_EFATAL, "range %llu- not satisfiable: object is %llu bytes",
                   (unsigned long long)r->off, (unsigned long long)plain);
        complete(cs, r);
        return;
    }
    uint64_t n = nchunks(plain), c0 = r->off / STORE_CRYPT_CHUNK, c1 = n - 1;
    if (r->len && (r->off + r->len - 1) / STORE_CRYPT_CHUNK < c1)
        c1 = (r->off + r->len - 1) / STORE_CRYPT_CHUNK;
    uint64_t start = stored_start(r->off);
    uint64_t end = c1 == n - 1 ? total : HDR_LEN + (c1 + 1) * CHUNK_CT;
    const uint8_t *in = (const uint8_t *)r->body.p;
    if (r->body.len != end - start) {
        store_fail(&cs->base, r, STORE_EFATAL, "short answer: %zu stored bytes, expected %llu",
                   r->body.len, (unsigned long long)(end - start));
        complete(cs, r);
        return;
    }
    if (start == 0) {
        if (memcmp(in, CRYPT_MAGIC, 8) != 0 || get_u32(in + 8) != CRYPT_VERSION ||
            get_u32(in + 12) != STORE_CRYPT_CHUNK) {
            store_fail(&cs->base, r, STORE_EFATAL,
                       "not an encrypted object (bad header): altered, or not written by buoy");
            complete(cs, r);
            return;
        }
        in += HDR_LEN;
    }
    struct crypt_op *op = xcalloc(1, sizeof *op);
    uint64_t to = (c1 + 1) * STORE_CRYPT_CHUNK < plain ? (c1 + 1) * STORE_CRYPT_CHUNK : plain;
    *op = (struct crypt_op){.r = r, .key = r->key, .in = in, .off = r->off, .plain = plain,
                            .c0 = c0, .c1 = c1, .n = n, .span = (size_t)(to - r->off)};
    op->out = xmalloc(op->span + 1);
    start_op(cs, op);
}

/* --- GET, HEAD, LIST --- */

static void read_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    store_req_adopt(r, c);
    if (r->err == STORE_OK && r->op == STORE_GET) {
        open_range(cs, r); /* completes r, now or from the pool */
        return;
    }
    if (r->err == STORE_OK && r->op == STORE_HEAD) {
        uint64_t plain;
        if (store_crypt_plain_size(r->obj.size, &plain) < 0)
            store_fail(&cs->base, r, STORE_EFATAL,
                       "%llu bytes is no encrypted object's size: altered or not written by buoy",
                       (unsigned long long)r->obj.size);
        else
            r->obj.size = plain;
    } else if (r->err == STORE_OK && r->op == STORE_LIST) {
        for (size_t i = 0; i < r->nlist; i++) {
            uint64_t plain;
            if (is_super(r->list[i].key))
                continue;
            if (store_crypt_plain_size(r->list[i].size, &plain) < 0) {
                log_warn("%s/%s: %llu bytes is no encrypted object's size; listed as 0",
                         cs->base.url, r->list[i].key, (unsigned long long)r->list[i].size);
                plain = 0;
            }
            r->list[i].size = plain;
        }
    }
    complete(cs, r);
}

static void pass_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    store_req_adopt(r, c);
    complete(cs, r);
}

static void crypt_submit(struct store *s, struct store_req *r)
{
    struct crypt_store *cs = CRYPT_OF(s);
    struct store_req *c;
    r->lpriv = NULL;
    cs->inflight++;
    if (r->op == STORE_DELETE || (r->op != STORE_LIST && is_super(r->key))) {
        c = store_req_child(r, pass_done, cs);
    } else if (r->op == STORE_PUT) {
        uint64_t n = nchunks(r->size);
        size_t size = (size_t)store_crypt_size(r->size);
        struct crypt_op *op = xcalloc(1, sizeof *op);
        *op = (struct crypt_op){.r = r, .key = r->key, .put = 1, .in = r->data,
                                .plain = r->size, .c0 = 0, .c1 = n - 1, .n = n};
        op->out = xmalloc(size);
        memcpy(op->out, CRYPT_MAGIC, 8);
        put_u32(op->out + 8, CRYPT_VERSION);
        put_u32(op->out + 12, STORE_CRYPT_CHUNK);
        op->child = store_req_child(r, put_done, cs);
        op->child->data = op->out;
        op->child->size = size;
        r->lpriv = op;
        start_op(cs, op); /* sends op->child below once sealed */
        return;
    } else {
        c = store_req_child(r, read_done, cs);
        if (r->op == STORE_GET) {
            uint64_t c0 = r->off / STORE_CRYPT_CHUNK;
            c->off = stored_start(r->off);
            c->len = 0; /* to the end */
            if (r->len) {
                uint64_t c1 = (r->off + r->len - 1) / STORE_CRYPT_CHUNK;
                c->len = (c1 - c0 + 1) * CHUNK_CT + (c0 == 0 ? HDR_LEN : 0);
            }
        }
    }
    s->next->ops->submit(s->next, c);
}

static int ms_left(uint64_t end)
{
    uint64_t now = clock_mono_ms();
    return now >= end ? 0 : (int)(end - now);
}

/* Drives the layer below and finishes what the pool is done with; when
 * nothing is in flight below, waits for the pool instead.  Returns once a
 * request of ours completed, nothing is in flight, time is up, or
 * store_wakeup() was called. */
static int crypt_run(struct store *s, int timeout_ms)
{
    struct crypt_store *cs = CRYPT_OF(s);
    uint64_t end = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    unsigned before = cs->completions;
    for (;;) {
        finish_ready(cs);
        if (cs->completions != before || cs->inflight == 0)
            break;
        int below = s->next->ops->run(s->next, ms_left(end));
        finish_ready(cs);
        if (cs->completions != before || cs->inflight == 0 || ms_left(end) == 0 ||
            __atomic_exchange_n(&s->woken, 0, __ATOMIC_ACQ_REL))
            break;
        if (below == 0) /* all of ours are in the pool */
            wait_ready(cs, ms_left(end));
    }
    return cs->inflight;
}

static void crypt_wakeup(struct store *s)
{
    struct crypt_pool *p = &CRYPT_OF(s)->pool;
    __atomic_store_n(&s->woken, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->lock);
    pthread_cond_signal(&p->ready_cv);
    pthread_mutex_unlock(&p->lock);
}

static void crypt_close(struct store *s)
{
    store_drain(s);
    pool_stop(CRYPT_OF(s)); /* before next goes: workers wake it */
    s->next->ops->close(s->next);
    sodium_memzero(CRYPT_OF(s)->key, sizeof CRYPT_OF(s)->key);
    free(s);
}

static const struct store_ops crypt_ops = {
    .name = "crypt", .submit = crypt_submit, .run = crypt_run, .close = crypt_close,
    .wakeup = crypt_wakeup,
};

struct store *store_crypt_open_threads(struct store *next, const uint8_t key[32],
                                      const uint8_t uuid[16], int threads, char *err,
                                      size_t errlen)
{
    if (store_crypt_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise (sodium_init)");
        return NULL;
    }
    if (threads < 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus < 1 ? 1 : cpus > POOL_MAX ? POOL_MAX : (int)cpus;
    }
    struct crypt_store *cs = xcalloc(1, sizeof *cs);
    cs->base.ops = &crypt_ops;
    cs->base.next = next;
    cs->base.stats = next->stats;
    cs->base.url = next->url;
    /* checked by store_submit for every layer of the stack */
    cs->base.refuses_meta = "an encrypted store keeps no metadata and cannot COPY (each object's "
                            "ciphertext is bound to its key)";
    memcpy(cs->key, key, sizeof cs->key);
    memcpy(cs->uuid, uuid, sizeof cs->uuid);
    pthread_mutex_init(&cs->pool.lock, NULL);
    pthread_cond_init(&cs->pool.work, NULL);
    pthread_cond_init(&cs->pool.ready_cv, NULL);
    cs->pool.want = threads > POOL_MAX ? POOL_MAX : threads;
    return &cs->base;
}

struct store *store_crypt_open(struct store *next, const uint8_t key[32], const uint8_t uuid[16],
                               char *err, size_t errlen)
{
    return store_crypt_open_threads(next, key, uuid, -1, err, errlen);
}

uint64_t store_crypt_pooled(const struct store *s)
{
    return CRYPT_OF(s)->ops_pooled;
}
