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
 * plaintext sizes.  DELETE and everything about `super` pass through. */
#include "store.h"
#include "util/log.h"
#include "util/mem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct crypt_store {
    struct store base;
    uint8_t key[32];
    uint8_t uuid[16];
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

/* --- PUT --- */

static void seal_object(const struct crypt_store *cs, const char *key, const uint8_t *pt,
                        size_t plen, uint8_t *out)
{
    uint64_t n = nchunks(plen);
    uint8_t ad[AD_MAX];
    memcpy(out, CRYPT_MAGIC, 8);
    put_u32(out + 8, CRYPT_VERSION);
    put_u32(out + 12, STORE_CRYPT_CHUNK);
    uint8_t *o = out + HDR_LEN;
    for (uint64_t c = 0; c < n; c++) {
        size_t off = (size_t)c * STORE_CRYPT_CHUNK;
        size_t len = plen - off < STORE_CRYPT_CHUNK ? plen - off : STORE_CRYPT_CHUNK;
        size_t adlen = make_ad(cs, key, c, c == n - 1, ad);
        unsigned long long clen;
        randombytes_buf(o, NONCE_LEN);
        crypto_aead_xchacha20poly1305_ietf_encrypt(o + NONCE_LEN, &clen, pt ? pt + off : NULL,
                                                   len, ad, adlen, NULL, o, cs->key);
        o += NONCE_LEN + clen;
    }
}

static void put_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    free(r->lpriv);
    r->lpriv = NULL;
    store_req_adopt(r, c);
    store_complete(&cs->base, r);
}

/* --- GET, HEAD, LIST --- */

static void fail_auth(struct crypt_store *cs, struct store_req *r, uint64_t chunk)
{
    store_fail(&cs->base, r, STORE_EFATAL,
               "chunk %llu: authentication failed: the object was altered, truncated, moved or "
               "written with another key",
               (unsigned long long)chunk);
}

/* The first stored byte a GET of plaintext from off needs. */
static uint64_t stored_start(uint64_t off)
{
    uint64_t c0 = off / STORE_CRYPT_CHUNK;
    return c0 == 0 ? 0 : HDR_LEN + c0 * CHUNK_CT;
}

/* r holds the stored bytes from stored_start(r->off) and the whole stored
 * object's size: turns them into the plaintext r asked for, or fails r. */
static void open_range(struct crypt_store *cs, struct store_req *r)
{
    uint64_t total = r->obj.size, plain;
    if (store_crypt_plain_size(total, &plain) < 0) {
        store_fail(&cs->base, r, STORE_EFATAL,
                   "authentication failed: the object was altered, truncated, moved or written "
                   "with another key (%llu bytes is no encrypted object's size)",
                   (unsigned long long)total);
        return;
    }
    if (r->off > 0 && r->off >= plain) {
        store_fail(&cs->base, r, STORE_EFATAL, "range %llu- not satisfiable: object is %llu bytes",
                   (unsigned long long)r->off, (unsigned long long)plain);
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
        return;
    }
    if (start == 0) {
        if (memcmp(in, CRYPT_MAGIC, 8) != 0 || get_u32(in + 8) != CRYPT_VERSION ||
            get_u32(in + 12) != STORE_CRYPT_CHUNK) {
            store_fail(&cs->base, r, STORE_EFATAL,
                       "not an encrypted object (bad header): altered, or not written by buoy");
            return;
        }
        in += HDR_LEN;
    }
    struct buf out = {0};
    buf_reserve(&out, (size_t)((c1 - c0 + 1) * STORE_CRYPT_CHUNK));
    uint8_t ad[AD_MAX];
    for (uint64_t c = c0; c <= c1; c++) {
        size_t clen = c == n - 1 ? (size_t)(plain - c * STORE_CRYPT_CHUNK) + TAG_LEN
                                 : STORE_CRYPT_CHUNK + TAG_LEN;
        size_t adlen = make_ad(cs, r->key, c, c == n - 1, ad);
        unsigned long long mlen;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out.p + out.len, &mlen, NULL,
                                                       in + NONCE_LEN, clen, ad, adlen, in,
                                                       cs->key) != 0) {
            sodium_memzero(out.p, out.len);
            buf_free(&out);
            fail_auth(cs, r, c);
            return;
        }
        out.len += (size_t)mlen;
        in += NONCE_LEN + clen;
    }
    size_t skip = (size_t)(r->off - c0 * STORE_CRYPT_CHUNK), len = out.len - skip;
    if (r->len && r->len < len)
        len = (size_t)r->len;
    memmove(out.p, out.p + skip, len);
    out.len = len;
    out.p[len] = '\0';
    buf_free(&r->body);
    r->body = out;
    r->obj.size = plain;
}

static void read_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    store_req_adopt(r, c);
    if (r->err == STORE_OK && r->op == STORE_GET)
        open_range(cs, r);
    else if (r->err == STORE_OK && r->op == STORE_HEAD) {
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
    store_complete(&cs->base, r);
}

static void pass_done(struct store_req *c)
{
    struct crypt_store *cs = c->arg;
    struct store_req *r = c->parent;
    store_req_adopt(r, c);
    store_complete(&cs->base, r);
}

static void crypt_submit(struct store *s, struct store_req *r)
{
    struct crypt_store *cs = CRYPT_OF(s);
    struct store_req *c;
    r->lpriv = NULL;
    if (r->op == STORE_DELETE || (r->op != STORE_LIST && is_super(r->key))) {
        c = store_req_child(r, pass_done, cs);
    } else if (r->op == STORE_PUT) {
        size_t n = (size_t)store_crypt_size(r->size);
        uint8_t *ct = xmalloc(n);
        seal_object(cs, r->key, r->data, r->size, ct);
        r->lpriv = ct;
        c = store_req_child(r, put_done, cs);
        c->data = ct;
        c->size = n;
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

static int crypt_run(struct store *s, int timeout_ms)
{
    return s->next->ops->run(s->next, timeout_ms);
}

static void crypt_close(struct store *s)
{
    store_drain(s);
    s->next->ops->close(s->next);
    sodium_memzero(CRYPT_OF(s)->key, sizeof CRYPT_OF(s)->key);
    free(s);
}

static const struct store_ops crypt_ops = {
    .name = "crypt", .submit = crypt_submit, .run = crypt_run, .close = crypt_close,
};

struct store *store_crypt_open(struct store *next, const uint8_t key[32], const uint8_t uuid[16],
                               char *err, size_t errlen)
{
    if (store_crypt_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise (sodium_init)");
        return NULL;
    }
    struct crypt_store *cs = xcalloc(1, sizeof *cs);
    cs->base.ops = &crypt_ops;
    cs->base.next = next;
    cs->base.stats = next->stats;
    cs->base.url = next->url;
    memcpy(cs->key, key, sizeof cs->key);
    memcpy(cs->uuid, uuid, sizeof cs->uuid);
    return &cs->base;
}
