/* cache.c - the bounded local block cache: a ring of slots in one file and an
 * open-addressing index from (segment, block) to slot.
 *
 *   file:   slot 0 | slot 1 | ... | slot N-1      (block_size bytes each)
 *   head:   the next slot a put writes; it wraps, evicting the oldest
 *   owner:  slot -> key, EMPTY when the slot holds nothing valid
 *   sum:    slot -> the block's checksum (seg_block_sum), taken at put
 *   index:  key -> slot, linear probing, backward-shift deletion, load <= 1/2
 *
 * Rules:
 *  1. index[k] = s exactly when owner[s] = k (checked by cache_check in the
 *     unit test).
 *  2. A slot is put in the index only after its bytes were written; a failed
 *     write leaves the slot EMPTY.
 *  3. A block read back from the file is returned only if it matches the
 *     checksum taken at put; a mismatch empties the slot.
 *  4. A sealed cache (an encrypted volume's) writes every block XChaCha20-
 *     encrypted under a random key that lives only in this process's
 *     memory, with nonce (the put's generation, the slot): a slot is never
 *     written twice under one nonce, and what a crash leaves in the file
 *     cannot be read by anyone.  The checksum is of the plaintext.  It is
 *     never kept across opens (its key is gone).
 *  5. Kept across a clean close (cache_close_keep): the file is synced,
 *     then its index goes to PATH.idx (temp file, fsync, rename, fsync of
 *     the directory), naming each block by the engine's stable names (the
 *     segment's seq and epoch) with its checksum and the caller's tag.  An
 *     open (cache_open_kept) reads PATH.idx and removes it durably before
 *     anything else, so a crash from then on leaves nothing to keep; the
 *     blocks are held back until the caller, having checked the tag,
 *     adopts them (cache_adopt) before any put, or they are dropped.  Rule
 *     3 still checks every block read back.
 *
 * PATH.idx, little-endian:
 *     0   8  magic "BUOYCIX1"
 *     8   4  version (1)
 *    12   4  block size
 *    16   4  slots
 *    20   4  head
 *    24   8  entries
 *    32  64  tag (the caller's)
 *    96  32  zero
 *   128      entries, 24 bytes each: name (8), epoch (4), block (4), slot
 *            (4), checksum (4)
 *   end   8  XXH3-64 of every byte before it
 */
#include "cache.h"
#include "seg.h"
#include "util/le.h"
#include "util/mem.h"

#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define EMPTY UINT64_MAX
#define IDX_MAGIC "BUOYCIX1"
#define IDX_VERSION 1
#define IDX_HEADER 128
#define IDX_ENTRY 24

/* A block a kept index names, held back until cache_adopt (rule 5). */
struct kept {
    uint64_t name;
    uint32_t epoch, block, slot, sum;
};

struct cache {
    int fd;
    char *path;
    uint32_t bs;
    uint32_t nslots, head;
    uint64_t *owner;  /* nslots */
    uint32_t *sum;    /* nslots */
    uint64_t *keys;   /* tsize: EMPTY or a key */
    uint32_t *slot;   /* tsize */
    uint32_t tmask;
    struct cache_stats st;
    /* sealed (rule 4) */
    int sealed;
    uint8_t key[crypto_stream_xchacha20_KEYBYTES];
    uint64_t gen;     /* puts so far */
    uint64_t *sgen;   /* nslots: the generation slot s was written in */
    char *tmp;        /* ciphertext of a put */
    size_t tmpcap;
    /* rule 5 */
    struct kept *kept;
    size_t nkept;
    uint32_t kept_head;
};

/* XORs the block in slot s with its keystream (rule 4). */
static void crypt_block(const struct cache *c, uint32_t s, uint64_t gen, char *dst,
                        const char *src)
{
    uint8_t nonce[crypto_stream_xchacha20_NONCEBYTES] = {0};
    for (int i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(gen >> (8 * i));
    for (int i = 0; i < 4; i++)
        nonce[8 + i] = (uint8_t)(s >> (8 * i));
    crypto_stream_xchacha20_xor((unsigned char *)dst, (const unsigned char *)src, c->bs, nonce,
                                c->key);
}

static uint64_t key_of(uint32_t seg, uint32_t block)
{
    return (uint64_t)seg << 32 | block;
}

static uint32_t hash(const struct cache *c, uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k & c->tmask;
}

/* Index position of key k, or -1. */
static int64_t find(const struct cache *c, uint64_t k)
{
    for (uint32_t i = hash(c, k);; i = (i + 1) & c->tmask) {
        if (c->keys[i] == k)
            return i;
        if (c->keys[i] == EMPTY)
            return -1;
    }
}

static void index_del(struct cache *c, uint32_t i)
{
    /* backward shift: move later entries of the probe chain into the hole */
    for (uint32_t j = (i + 1) & c->tmask; c->keys[j] != EMPTY; j = (j + 1) & c->tmask) {
        uint32_t h = hash(c, c->keys[j]);
        /* entry j may move to i when its home h is not in (i, j] cyclically */
        if (((j - h) & c->tmask) >= ((j - i) & c->tmask)) {
            c->keys[i] = c->keys[j];
            c->slot[i] = c->slot[j];
            i = j;
        }
    }
    c->keys[i] = EMPTY;
}

static void index_put(struct cache *c, uint64_t k, uint32_t s)
{
    uint32_t i = hash(c, k);
    while (c->keys[i] != EMPTY)
        i = (i + 1) & c->tmask;
    c->keys[i] = k;
    c->slot[i] = s;
}

/* Empties slot s. */
static void release(struct cache *c, uint32_t s)
{
    if (c->owner[s] == EMPTY)
        return;
    int64_t i = find(c, c->owner[s]);
    if (i >= 0)
        index_del(c, (uint32_t)i);
    c->owner[s] = EMPTY;
    c->st.used--;
}

/* The slots bytes holds, or 0 with the reason in err. */
static uint64_t slots_of(uint64_t bytes, uint32_t block_size, char *err, size_t errlen)
{
    uint64_t n = block_size ? bytes / block_size : 0;
    if (n < 16) {
        snprintf(err, errlen, "cache size %llu is too small: at least 16 blocks of %u bytes",
                 (unsigned long long)bytes, block_size);
        return 0;
    }
    return n > (1u << 30) ? 1u << 30 : n;
}

static struct cache *make(int fd, const char *path, uint64_t n, uint32_t block_size, int sealed)
{
    struct cache *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->path = xstrdup(path);
    c->bs = block_size;
    c->nslots = (uint32_t)n;
    uint32_t tsize = 16;
    while (tsize < 2 * n)
        tsize *= 2;
    c->tmask = tsize - 1;
    c->owner = xmalloc(n * sizeof *c->owner);
    c->sum = xmalloc(n * sizeof *c->sum);
    c->keys = xmalloc((size_t)tsize * sizeof *c->keys);
    c->slot = xmalloc((size_t)tsize * sizeof *c->slot);
    memset(c->owner, 0xff, n * sizeof *c->owner);
    memset(c->keys, 0xff, (size_t)tsize * sizeof *c->keys);
    c->st.slots = n;
    if (sealed) {
        c->sealed = 1;
        crypto_stream_xchacha20_keygen(c->key);
        c->sgen = xcalloc(n, sizeof *c->sgen);
    }
    return c;
}

/* fsync of the directory holding path: 0 or -1. */
static int sync_dir_of(const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

struct cache *cache_open(const char *path, uint64_t bytes, uint32_t block_size, int sealed,
                         char *err, size_t errlen)
{
    uint64_t n = slots_of(bytes, block_size, err, errlen);
    if (!n)
        return NULL;
    if (sealed && sodium_init() < 0) {
        snprintf(err, errlen, "cache file %s: libsodium failed to initialise", path);
        return NULL;
    }
    char *idx = xasprintf("%s.idx", path);
    if (unlink(idx) == 0) /* a kept index would name blocks this open overwrites */
        sync_dir_of(idx);
    free(idx);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cache file %s: %s", path, strerror(errno));
        return NULL;
    }
    return make(fd, path, n, block_size, sealed);
}

/* Reads and checks the kept index idx for a cache of n slots of bs bytes
 * into *out (*nout entries), its tag and head.  0, or -1 with why. */
static int read_index(const char *idx, uint64_t n, uint32_t bs, uint8_t tag[CACHE_TAG_LEN],
                      uint32_t *head, struct kept **out, size_t *nout, char *why, size_t wl)
{
    int fd = open(idx, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wl, "%s", errno == ENOENT ? "no index was kept (not a clean close)"
                                                : strerror(errno));
        return -1;
    }
    struct stat st;
    uint8_t *b = NULL;
    int rc = -1;
    if (fstat(fd, &st) < 0 || st.st_size < IDX_HEADER + 8 ||
        (uint64_t)st.st_size > IDX_HEADER + 8 + (uint64_t)n * IDX_ENTRY) {
        snprintf(why, wl, "the index has a wrong size");
        goto out;
    }
    size_t len = (size_t)st.st_size;
    b = xmalloc(len);
    if (pread(fd, b, len, 0) != (ssize_t)len) {
        snprintf(why, wl, "the index cannot be read");
        goto out;
    }
    uint64_t ne = le_get64(b + 24);
    if (memcmp(b, IDX_MAGIC, 8) != 0 || le_get32(b + 8) != IDX_VERSION ||
        XXH3_64bits(b, len - 8) != le_get64(b + len - 8) ||
        len != IDX_HEADER + 8 + ne * IDX_ENTRY) {
        snprintf(why, wl, "the index is damaged");
        goto out;
    }
    if (le_get32(b + 12) != bs || le_get32(b + 16) != n || le_get32(b + 20) >= n) {
        snprintf(why, wl, "it was kept for another block or cache size");
        goto out;
    }
    *head = le_get32(b + 20);
    memcpy(tag, b + 32, CACHE_TAG_LEN);
    *out = xmalloc((ne ? ne : 1) * sizeof **out);
    for (uint64_t i = 0; i < ne; i++) {
        const uint8_t *e = b + IDX_HEADER + i * IDX_ENTRY;
        (*out)[i] = (struct kept){le_get64(e), le_get32(e + 8), le_get32(e + 12),
                                  le_get32(e + 16), le_get32(e + 20)};
    }
    *nout = ne;
    rc = 0;
out:
    free(b);
    close(fd);
    return rc;
}

struct cache *cache_open_kept(const char *path, uint64_t bytes, uint32_t block_size,
                              uint8_t tag[CACHE_TAG_LEN], char *why, size_t whylen, char *err,
                              size_t errlen)
{
    uint64_t n = slots_of(bytes, block_size, err, errlen);
    if (!n)
        return NULL;
    char *idx = xasprintf("%s.idx", path);
    struct kept *kept = NULL;
    size_t nkept = 0;
    uint32_t head = 0;
    memset(tag, 0, CACHE_TAG_LEN);
    int have = read_index(idx, n, block_size, tag, &head, &kept, &nkept, why, whylen) == 0;
    /* rule 5: gone before anything is written, or nothing is kept */
    if ((unlink(idx) < 0 && errno != ENOENT) || sync_dir_of(idx) < 0) {
        if (have)
            snprintf(why, whylen, "its index %s cannot be removed: %s", idx, strerror(errno));
        have = 0;
    }
    free(idx);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (have ? 0 : O_TRUNC), 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cache file %s: %s", path, strerror(errno));
        free(kept);
        return NULL;
    }
    struct cache *c = make(fd, path, n, block_size, 0);
    if (have) {
        c->kept = kept;
        c->nkept = nkept;
        c->kept_head = head;
    } else {
        free(kept);
        memset(tag, 0, CACHE_TAG_LEN);
    }
    return c;
}

int cache_has_kept(const struct cache *c)
{
    return c->kept != NULL;
}

void cache_drop_kept(struct cache *c)
{
    if (!c->kept)
        return;
    free(c->kept);
    c->kept = NULL;
    c->nkept = 0;
    if (ftruncate(c->fd, 0) < 0) /* its bytes are never read again: give the space back */
        c->st.write_errors++;
}

uint64_t cache_adopt(struct cache *c, int64_t (*seg_of)(void *arg, uint64_t name, uint32_t epoch),
                     void *arg)
{
    uint64_t adopted = 0;
    if (!c->kept)
        return 0;
    for (size_t i = 0; i < c->nkept; i++) {
        const struct kept *k = &c->kept[i];
        int64_t seg = seg_of(arg, k->name, k->epoch);
        if (seg < 0 || seg > UINT32_MAX || k->slot >= c->nslots || c->owner[k->slot] != EMPTY)
            continue;
        uint64_t key = key_of((uint32_t)seg, k->block);
        if (find(c, key) >= 0)
            continue;
        c->owner[k->slot] = key;
        c->sum[k->slot] = k->sum;
        index_put(c, key, k->slot);
        c->st.used++;
        adopted++;
    }
    c->head = c->kept_head;
    free(c->kept);
    c->kept = NULL;
    c->nkept = 0;
    return adopted;
}

int cache_close_keep(struct cache *c, const uint8_t tag[CACHE_TAG_LEN],
                     int (*name_of)(void *arg, uint32_t seg, uint64_t *name, uint32_t *epoch),
                     void *arg, char *err, size_t errlen)
{
    char *idx = xasprintf("%s.idx", c->path), *tmp = xasprintf("%s.idx.tmp", c->path);
    size_t cap = IDX_HEADER + 8 + (size_t)c->st.used * IDX_ENTRY, len = IDX_HEADER;
    uint8_t *b = xcalloc(1, cap);
    uint64_t ne = 0;
    int rc = -1, fd = -1, cr;
    const char *step = "create";
    if (c->sealed) {
        snprintf(err, errlen, "an encrypted volume's cache is never kept");
        goto out;
    }
    if (!cache_linked(c, err, errlen))
        goto out;
    for (uint32_t s = 0; s < c->nslots; s++) {
        uint64_t name;
        uint32_t epoch;
        if (c->owner[s] == EMPTY ||
            name_of(arg, (uint32_t)(c->owner[s] >> 32), &name, &epoch) != 0)
            continue;
        uint8_t *e = b + len;
        le_put64(e, name);
        le_put32(e + 8, epoch);
        le_put32(e + 12, (uint32_t)c->owner[s]);
        le_put32(e + 16, s);
        le_put32(e + 20, c->sum[s]);
        len += IDX_ENTRY;
        ne++;
    }
    memcpy(b, IDX_MAGIC, 8);
    le_put32(b + 8, IDX_VERSION);
    le_put32(b + 12, c->bs);
    le_put32(b + 16, c->nslots);
    le_put32(b + 20, c->head);
    le_put64(b + 24, ne);
    memcpy(b + 32, tag, CACHE_TAG_LEN);
    le_put64(b + len, XXH3_64bits(b, len));
    len += 8;
    /* the blocks first, then the index that names them (rule 5) */
    if (fdatasync(c->fd) < 0) {
        snprintf(err, errlen, "cache file %s: fdatasync: %s", c->path, strerror(errno));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    step = "write";
    if (pwrite(fd, b, len, 0) != (ssize_t)len)
        goto fail;
    step = "fsync";
    if (fsync(fd) < 0)
        goto fail;
    step = "close";
    cr = close(fd);
    fd = -1;
    if (cr < 0)
        goto fail;
    step = "rename";
    if (rename(tmp, idx) < 0)
        goto fail;
    step = "fsync of the directory";
    if (sync_dir_of(idx) < 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "cache index %s: %s: %s", tmp, step, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    unlink(idx);
out:
    free(b);
    free(idx);
    free(tmp);
    if (rc == 0) { /* the file stays for the next open */
        close(c->fd);
        c->fd = -1;
    }
    cache_close(c);
    return rc;
}

int cache_linked(const struct cache *c, char *err, size_t errlen)
{
    struct stat fs, ps;
    if (fstat(c->fd, &fs) < 0 || fs.st_nlink == 0 || stat(c->path, &ps) < 0 ||
        ps.st_dev != fs.st_dev || ps.st_ino != fs.st_ino) {
        snprintf(err, errlen, "the block cache file %s was removed or replaced", c->path);
        return 0;
    }
    return 1;
}

void cache_close(struct cache *c)
{
    if (!c)
        return;
    char why[300];
    if (c->fd >= 0) {
        if (cache_linked(c, why, sizeof why)) /* never remove a file that is not ours */
            unlink(c->path);
        close(c->fd);
    }
    free(c->kept);
    free(c->path);
    free(c->owner);
    free(c->sum);
    free(c->keys);
    free(c->slot);
    free(c->sgen);
    free(c->tmp);
    sodium_memzero(c->key, sizeof c->key);
    free(c);
}

int cache_has(const struct cache *c, uint32_t seg, uint32_t block)
{
    return find(c, key_of(seg, block)) >= 0;
}

uint32_t cache_get(struct cache *c, uint32_t seg, uint32_t block, uint32_t n, void *out)
{
    uint32_t got = 0;
    char *dst = out;
    while (got < n) {
        int64_t i = find(c, key_of(seg, block + got));
        if (i < 0)
            break;
        uint32_t s = c->slot[i], run = 1;
        while (got + run < n && s + run < c->nslots) {
            int64_t j = find(c, key_of(seg, block + got + run));
            if (j < 0 || c->slot[j] != s + run)
                break;
            run++;
        }
        size_t len = (size_t)run * c->bs;
        char *p = dst + (size_t)got * c->bs;
        if (pread(c->fd, p, len, (off_t)s * c->bs) != (ssize_t)len)
            break;
        for (uint32_t b = 0; c->sealed && b < run; b++)
            crypt_block(c, s + b, c->sgen[s + b], p + (size_t)b * c->bs,
                        p + (size_t)b * c->bs);
        uint32_t good = 0;
        while (good < run && seg_block_sum(p + (size_t)good * c->bs, c->bs) == c->sum[s + good])
            good++;
        got += good;
        if (good < run) { /* rule 3 */
            c->st.corrupt++;
            release(c, s + good);
            break;
        }
    }
    c->st.hits += got;
    if (got < n)
        c->st.misses++;
    return got;
}

void cache_put(struct cache *c, uint32_t seg, uint32_t block, uint32_t n, const void *data)
{
    const char *src = data;
    cache_drop_kept(c); /* rule 5: adopted before any put, or never */
    if (n > c->nslots) { /* only the newest nslots can stay */
        src += (size_t)(n - c->nslots) * c->bs;
        block += n - c->nslots;
        n = c->nslots;
    }
    while (n) {
        uint32_t k = c->nslots - c->head < n ? c->nslots - c->head : n;
        for (uint32_t i = 0; i < k; i++) {
            release(c, c->head + i);
            int64_t old = find(c, key_of(seg, block + i));
            if (old >= 0)
                release(c, c->slot[old]);
        }
        size_t len = (size_t)k * c->bs;
        const char *out = src;
        uint64_t gen = ++c->gen;
        if (c->sealed) {
            if (c->tmpcap < len) {
                free(c->tmp);
                c->tmpcap = len;
                c->tmp = xmalloc(len);
            }
            for (uint32_t i = 0; i < k; i++)
                crypt_block(c, c->head + i, gen, c->tmp + (size_t)i * c->bs,
                            src + (size_t)i * c->bs);
            out = c->tmp;
        }
        if (pwrite(c->fd, out, len, (off_t)c->head * c->bs) == (ssize_t)len) {
            for (uint32_t i = 0; i < k; i++) {
                uint64_t key = key_of(seg, block + i);
                if (c->sealed)
                    c->sgen[c->head + i] = gen;
                c->owner[c->head + i] = key;
                c->sum[c->head + i] = seg_block_sum(src + (size_t)i * c->bs, c->bs);
                index_put(c, key, c->head + i);
            }
            c->st.used += k;
        } else
            c->st.write_errors++;
        c->head = (c->head + k) % c->nslots;
        src += len;
        block += k;
        n -= k;
    }
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    *out = c->st;
}

size_t cache_mem_bytes(const struct cache *c)
{
    return sizeof *c + (size_t)c->nslots * (sizeof *c->owner + sizeof *c->sum) +
           (c->sealed ? (size_t)c->nslots * sizeof *c->sgen + c->tmpcap : 0) +
           ((size_t)c->tmask + 1) * (sizeof *c->keys + sizeof *c->slot);
}

int cache_check(const struct cache *c, char *err, size_t errlen)
{
    uint64_t used = 0, indexed = 0;
    for (uint32_t s = 0; s < c->nslots; s++) {
        if (c->owner[s] == EMPTY)
            continue;
        used++;
        int64_t i = find(c, c->owner[s]);
        if (i < 0 || c->slot[i] != s) {
            snprintf(err, errlen, "slot %u holds a key the index does not map to it", s);
            return -1;
        }
    }
    for (uint32_t i = 0; i <= c->tmask; i++)
        if (c->keys[i] != EMPTY) {
            indexed++;
            if (c->slot[i] >= c->nslots || c->owner[c->slot[i]] != c->keys[i]) {
                snprintf(err, errlen, "index entry %u points at a slot that holds another key", i);
                return -1;
            }
        }
    if (used != indexed || used != c->st.used) {
        snprintf(err, errlen, "%llu slots used, %llu indexed, %llu counted",
                 (unsigned long long)used, (unsigned long long)indexed,
                 (unsigned long long)c->st.used);
        return -1;
    }
    return 0;
}
