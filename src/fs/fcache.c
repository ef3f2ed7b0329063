/* fcache.c - the bucket filesystem's chunk cache: one file per chunk in the
 * cache's directory, an index in memory under one mutex.
 *
 *   DIR/fcache.lock        flock()ed for the cache's life (never removed)
 *   DIR/fc-<16 hex>        one chunk's bytes, exactly its length; the name is
 *                          a number counted up from 1 at each open, never reused
 *   objects:  key -> struct obj (its etag, epoch, list of chunks), chained hash
 *   chunks:   (obj, idx) -> struct chunk (file number, length, sum, charge)
 *   lru:      every live chunk, most recently put or read first
 *
 * Why a file per chunk and not slots in a slab file: a bucket filesystem is
 * mostly small files, and a slab of chunk-sized slots would spend a whole
 * slot (1 MiB) of the cap on a 2 KiB object; a file takes its length rounded
 * up to one filesystem block, which is also exactly what st_blocks shows, so
 * the cap is on the bytes really on disk.  The price is a create and an
 * unlink per chunk put and an open per chunk read (a few microseconds each
 * next to a network round trip).  One flat directory: ext4's hashed
 * directories stay fast at the cap / 4 KiB entries a cache can hold.
 *
 * Rules:
 *  1. A chunk is in the chunk table, its object's list and the LRU exactly
 *     when it is live; it became live only after its file was written in
 *     full, its st_blocks checked against its charge (rule 2), and only if
 *     its object's epoch had not moved since the put began (rule 4).  An
 *     object is in the object table while it has live chunks or puts in
 *     flight.
 *  2. used is the sum of the charges (length rounded up to the filesystem's
 *     block) of every chunk file that exists or is being written: live
 *     chunks, puts in flight and dead chunks not yet unlinked.  A charge is
 *     added only under the lock and only while used + charge <= cap, and
 *     taken off only after its file was unlinked (a file that cannot be
 *     unlinked keeps its charge for the cache's life).  So the chunk files
 *     never hold more than cap bytes on disk, except that a file the
 *     filesystem gave more blocks than its charge exists, from its write
 *     until it is removed a moment later as a failed put.
 *  3. No lock is held across reading or writing a chunk file, nor across an
 *     unlink.  A reader pins the chunk (refs) for its read; making room
 *     never evicts a pinned chunk, and a pinned chunk dropped for another
 *     reason (forget, a new etag, a bad read) turns dead and is unlinked by
 *     the last reader to let go of it.  (Only the second half is needed for
 *     safety; the first is policy: a chunk being read is the hottest.)
 *  4. Each object has an epoch, moved by fcache_forget and by a put under a
 *     new etag; a put takes it when it reserves room and its chunk goes live
 *     only under the same epoch, so a put that lost a race with a forget or
 *     a newer etag never brings old bytes back.
 *  5. A chunk read back is returned only if it has its length and the
 *     XXH3-64 taken at put; otherwise it is dropped and counted as corrupt.
 *  6. The cache is scratch: fcache_open unlinks every regular file named
 *     fc-<16 lower-case hex digits> in its directory before it caches
 *     anything, and touches no other name; fcache_close unlinks its own.
 */
#include "fcache.h"
#include "util/mem.h"
#include "util/path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#define LOCK_NAME   "fcache.lock"
#define NAME_LEN    19 /* "fc-" and 16 hex digits */
#define MAX_CHUNK   (1u << 30)
#define MIN_BUCKETS 64
#define ROOM_TRIES  16

struct chunk;

struct obj {
    struct obj *next; /* hash chain */
    uint64_t h;       /* XXH3-64 of key */
    char *key, *etag; /* etag NULL after a forget */
    uint64_t epoch;
    struct chunk *chunks; /* live chunks, doubly linked through oprev/onext */
    uint32_t nchunks, pending;
};

struct chunk {
    struct chunk *hnext;         /* hash chain; the reap list once dead */
    struct chunk *oprev, *onext; /* the object's list */
    struct chunk *lprev, *lnext; /* the LRU */
    struct obj *o;               /* NULL once dead or before live */
    uint64_t idx, id, sum;
    uint32_t len, charge, refs;
    int dead;
};

struct table {
    void **b;
    uint64_t nb, n;
};

struct fcache {
    pthread_mutex_t mu;
    int dirfd, lockfd;
    uint32_t chunk, unit;
    uint64_t cap, used, stuck, next_id;
    uint64_t nalloc;   /* chunk structs allocated (live, dead, in flight) */
    uint64_t obj_mem;  /* bytes of struct obj and their strings */
    struct table objs; /* of struct obj */
    struct table chs;  /* of struct chunk */
    struct chunk *lru_head, *lru_tail;
    struct fcache_stats st;
};

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t chunk_hash(const struct obj *o, uint64_t idx)
{
    return mix(o->h ^ mix(idx + 0x9e3779b97f4a7c15ULL));
}

static void name_of(uint64_t id, char out[NAME_LEN + 1])
{
    snprintf(out, NAME_LEN + 1, "fc-%016" PRIx64, id);
}

static int is_ours(const char *name)
{
    if (strlen(name) != NAME_LEN || memcmp(name, "fc-", 3) != 0) return 0;
    for (const char *p = name + 3; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* ---- the two hash tables ------------------------------------------------ */

static void table_init(struct table *t)
{
    t->nb = MIN_BUCKETS;
    t->n = 0;
    t->b = xcalloc(t->nb, sizeof *t->b);
}

static uint64_t obj_h(const void *e)
{
    return ((const struct obj *)e)->h;
}

static uint64_t chunk_h(const void *e)
{
    const struct chunk *ch = e;
    return chunk_hash(ch->o, ch->idx);
}

static void **next_of_obj(void *e)
{
    return (void **)&((struct obj *)e)->next;
}

static void **next_of_chunk(void *e)
{
    return (void **)&((struct chunk *)e)->hnext;
}

/* Rehashes t into nb buckets. */
static void table_resize(struct table *t, uint64_t nb, uint64_t (*h)(const void *),
                         void **(*next)(void *))
{
    void **b = xcalloc(nb, sizeof *b);
    for (uint64_t i = 0; i < t->nb; i++)
        for (void *e = t->b[i], *n; e; e = n) {
            n = *next(e);
            uint64_t j = h(e) & (nb - 1);
            *next(e) = b[j];
            b[j] = e;
        }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* Keeps the load between 1/8 and 1 (memory follows the entries, rule of the
 * header). */
static void table_fit(struct table *t, uint64_t (*h)(const void *), void **(*next)(void *))
{
    if (t->n > t->nb)
        table_resize(t, t->nb * 2, h, next);
    else if (t->nb > MIN_BUCKETS && t->n < t->nb / 8)
        table_resize(t, t->nb / 2, h, next);
}

static void table_add(struct table *t, void *e, uint64_t hv, uint64_t (*h)(const void *),
                      void **(*next)(void *))
{
    uint64_t j = hv & (t->nb - 1);
    *next(e) = t->b[j];
    t->b[j] = e;
    t->n++;
    table_fit(t, h, next);
}

static void table_del(struct table *t, void *e, uint64_t hv, uint64_t (*h)(const void *),
                      void **(*next)(void *))
{
    for (void **p = &t->b[hv & (t->nb - 1)]; *p; p = next(*p))
        if (*p == e) {
            *p = *next(e);
            t->n--;
            table_fit(t, h, next);
            return;
        }
}

static struct obj *obj_find(struct fcache *c, const char *key, uint64_t h)
{
    for (struct obj *o = c->objs.b[h & (c->objs.nb - 1)]; o; o = o->next)
        if (o->h == h && strcmp(o->key, key) == 0) return o;
    return NULL;
}

static struct chunk *chunk_find(struct fcache *c, const struct obj *o, uint64_t idx)
{
    for (struct chunk *ch = c->chs.b[chunk_hash(o, idx) & (c->chs.nb - 1)]; ch; ch = ch->hnext)
        if (ch->o == o && ch->idx == idx) return ch;
    return NULL;
}

/* ---- the LRU ------------------------------------------------------------ */

static void lru_del(struct fcache *c, struct chunk *ch)
{
    if (ch->lprev)
        ch->lprev->lnext = ch->lnext;
    else
        c->lru_head = ch->lnext;
    if (ch->lnext)
        ch->lnext->lprev = ch->lprev;
    else
        c->lru_tail = ch->lprev;
    ch->lprev = ch->lnext = NULL;
}

static void lru_push(struct fcache *c, struct chunk *ch)
{
    ch->lprev = NULL;
    ch->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = ch;
    else
        c->lru_tail = ch;
    c->lru_head = ch;
}

/* ---- objects and chunks (under the lock) -------------------------------- */

static size_t obj_size(const struct obj *o)
{
    return sizeof *o + strlen(o->key) + 1 + (o->etag ? strlen(o->etag) + 1 : 0);
}

static void obj_set_etag(struct fcache *c, struct obj *o, const char *etag)
{
    c->obj_mem -= obj_size(o);
    free(o->etag);
    o->etag = etag ? xstrdup(etag) : NULL;
    o->epoch++;
    c->obj_mem += obj_size(o);
}

static struct obj *obj_get(struct fcache *c, const char *key, uint64_t h)
{
    struct obj *o = obj_find(c, key, h);
    if (o) return o;
    o = xcalloc(1, sizeof *o);
    o->h = h;
    o->key = xstrdup(key);
    c->obj_mem += obj_size(o);
    table_add(&c->objs, o, h, obj_h, next_of_obj);
    return o;
}

/* Frees o once nothing refers to it (rule 1). */
static void obj_put(struct fcache *c, struct obj *o)
{
    if (o->nchunks || o->pending) return;
    table_del(&c->objs, o, o->h, obj_h, next_of_obj);
    c->obj_mem -= obj_size(o);
    free(o->key);
    free(o->etag);
    free(o);
}

/* Makes live chunk ch dead; pushes it on *reap unless a reader holds it
 * (rule 3).  Leaves freeing o to the caller (obj_put). */
static void chunk_kill(struct fcache *c, struct chunk *ch, struct chunk **reap)
{
    struct obj *o = ch->o;
    table_del(&c->chs, ch, chunk_hash(o, ch->idx), chunk_h, next_of_chunk);
    if (ch->oprev)
        ch->oprev->onext = ch->onext;
    else
        o->chunks = ch->onext;
    if (ch->onext) ch->onext->oprev = ch->oprev;
    o->nchunks--;
    lru_del(c, ch);
    ch->o = NULL;
    ch->dead = 1;
    c->st.chunks--;
    c->st.bytes -= ch->len;
    if (ch->refs == 0) {
        ch->hnext = *reap;
        *reap = ch;
    }
}

static void make_live(struct fcache *c, struct obj *o, struct chunk *ch)
{
    ch->o = o;
    table_add(&c->chs, ch, chunk_hash(o, ch->idx), chunk_h, next_of_chunk);
    ch->oprev = NULL;
    ch->onext = o->chunks;
    if (o->chunks) o->chunks->oprev = ch;
    o->chunks = ch;
    o->nchunks++;
    lru_push(c, ch);
    c->st.chunks++;
    c->st.bytes += ch->len;
}

static void kill_all(struct fcache *c, struct obj *o, struct chunk **reap)
{
    while (o->chunks)
        chunk_kill(c, o->chunks, reap);
}

/* Unlinks the files of the dead chunks on list and frees them, then takes
 * their charges off used (rule 2).  Called without the lock. */
static void reap(struct fcache *c, struct chunk *list)
{
    uint64_t freed = 0, stuck = 0, n = 0;
    char name[NAME_LEN + 1];
    for (struct chunk *ch = list, *next; ch; ch = next) {
        next = ch->hnext;
        name_of(ch->id, name);
        if (unlinkat(c->dirfd, name, 0) == 0 || errno == ENOENT)
            freed += ch->charge;
        else
            stuck += ch->charge;
        free(ch);
        n++;
    }
    if (!n) return;
    pthread_mutex_lock(&c->mu);
    c->used -= freed + stuck;
    c->stuck += stuck;
    c->used += stuck;
    c->nalloc -= n;
    pthread_mutex_unlock(&c->mu);
}

/* ---- open and close ----------------------------------------------------- */

/* Unlinks what an earlier cache left in the directory (rule 6). */
static int empty_dir(int dirfd, const char *dir, char *err, size_t errlen)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errlen, "cache directory %s cannot be read: %s", dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!is_ours(e->d_name) || fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "cache directory %s: cannot remove %s left by an earlier run: %s",
                     dir, e->d_name, strerror(errno));
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

struct fcache *fcache_open(const char *dir, uint64_t cap_bytes, uint32_t chunk_bytes, char *err,
                           size_t errlen)
{
    if (chunk_bytes < 1 || chunk_bytes > MAX_CHUNK) {
        snprintf(err, errlen, "cache chunk size %u is not between 1 and %u bytes", chunk_bytes,
                 MAX_CHUNK);
        return NULL;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cache directory %s is not a directory", dir);
        return NULL;
    }
    if (path_mkdirs(dir, 0700) < 0) {
        snprintf(err, errlen, "cache directory %s cannot be made: %s", dir, strerror(errno));
        return NULL;
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), lockfd = -1;
    struct statvfs vfs;
    if (dirfd < 0) {
        snprintf(err, errlen, "cache directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    lockfd = openat(dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0) {
        snprintf(err, errlen, "cache directory %s: %s: %s", dir, LOCK_NAME, strerror(errno));
        goto fail;
    }
    if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "cache directory %s is in use by another cache (%s is locked)", dir,
                 LOCK_NAME);
        goto fail;
    }
    if (fstatvfs(dirfd, &vfs) < 0) {
        snprintf(err, errlen, "cache directory %s: statvfs: %s", dir, strerror(errno));
        goto fail;
    }
    uint64_t unit = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
    if (unit < 512) unit = 512;
    if (unit > MAX_CHUNK || cap_bytes < unit) {
        snprintf(err, errlen,
                 "cache size %" PRIu64 " is less than one block (%" PRIu64
                 " bytes) of the filesystem under %s",
                 cap_bytes, unit, dir);
        goto fail;
    }
    if (empty_dir(dirfd, dir, err, errlen) < 0) goto fail;
    struct fcache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->dirfd = dirfd;
    c->lockfd = lockfd;
    c->chunk = chunk_bytes;
    c->unit = (uint32_t)unit;
    c->cap = c->st.cap = cap_bytes;
    table_init(&c->objs);
    table_init(&c->chs);
    return c;
fail:
    if (lockfd >= 0) close(lockfd);
    close(dirfd);
    return NULL;
}

void fcache_close(struct fcache *c)
{
    if (!c) return;
    struct chunk *list = NULL;
    for (uint64_t i = 0; i < c->objs.nb; i++)
        for (struct obj *o = c->objs.b[i], *next; o; o = next) {
            next = o->next;
            kill_all(c, o, &list);
            free(o->key);
            free(o->etag);
            free(o);
        }
    reap(c, list);
    free(c->objs.b);
    free(c->chs.b);
    close(c->lockfd); /* the lock file stays: removing it would race a new opener */
    close(c->dirfd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

uint32_t fcache_chunk(const struct fcache *c)
{
    return c->chunk;
}

/* ---- get, put, forget --------------------------------------------------- */

static ssize_t pread_full(int fd, void *dst, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)dst + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

size_t fcache_get(struct fcache *c, const char *key, const char *etag, uint64_t idx, void *dst)
{
    uint64_t h = XXH3_64bits(key, strlen(key));
    pthread_mutex_lock(&c->mu);
    struct obj *o = obj_find(c, key, h);
    struct chunk *ch = o && o->etag && strcmp(o->etag, etag) == 0 ? chunk_find(c, o, idx) : NULL;
    if (!ch) {
        c->st.misses++;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    ch->refs++;
    lru_del(c, ch);
    lru_push(c, ch);
    uint32_t len = ch->len;
    uint64_t sum = ch->sum;
    char name[NAME_LEN + 1];
    name_of(ch->id, name);
    pthread_mutex_unlock(&c->mu);

    /* rule 3: the file cannot go while ch is pinned */
    int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n = fd >= 0 ? pread_full(fd, dst, len) : -1;
    if (fd >= 0) close(fd);
    int good = n == (ssize_t)len && XXH3_64bits(dst, len) == sum;

    struct chunk *list = NULL;
    pthread_mutex_lock(&c->mu);
    ch->refs--;
    if (good) {
        c->st.hits++;
        c->st.hit_bytes += len;
    } else { /* rule 5 */
        c->st.misses++;
        c->st.corrupt++;
        if (!ch->dead) {
            o = ch->o;
            chunk_kill(c, ch, &list);
            obj_put(c, o);
        }
    }
    if (ch->dead && ch->refs == 0 && !list) {
        ch->hnext = NULL;
        list = ch;
    }
    pthread_mutex_unlock(&c->mu);
    reap(c, list);
    return good ? len : 0;
}

/* Makes room for charge bytes (rule 2), evicting from the LRU's cold end;
 * the victims go on *list for the caller to reap.  1 when the charge was
 * added to used, 0 when more room may come once *list is reaped, -1 when
 * none can be made now. */
static int reserve(struct fcache *c, uint32_t charge, struct chunk **list)
{
    struct chunk *ch = c->lru_tail;
    uint64_t coming = 0; /* charges of the victims this round */
    while (c->used + charge - coming > c->cap && ch) {
        struct chunk *prev = ch->lprev;
        if (ch->refs == 0) {
            struct obj *o = ch->o;
            coming += ch->charge;
            chunk_kill(c, ch, list);
            obj_put(c, o);
            c->st.evictions++;
        }
        ch = prev;
    }
    if (c->used + charge <= c->cap) {
        c->used += charge;
        return 1;
    }
    return coming ? 0 : -1;
}

/* Writes the chunk file for ch: 0 or -errno.  A file it made but could not
 * fill is removed again. */
static int write_chunk(struct fcache *c, const struct chunk *ch, const void *src)
{
    char name[NAME_LEN + 1];
    name_of(ch->id, name);
    int fd = openat(c->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -errno;
    int rc = 0;
    size_t done = 0;
    while (done < ch->len) {
        ssize_t n = pwrite(fd, (const char *)src + done, ch->len - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -ENOSPC;
            break;
        }
        done += (size_t)n;
    }
    struct stat st;
    if (rc == 0 && fstat(fd, &st) < 0)
        rc = -errno;
    else if (rc == 0 && (uint64_t)st.st_blocks * 512 > ch->charge)
        rc = -ENOSPC; /* rule 2: the filesystem took more than the charge */
    if (close(fd) < 0 && rc == 0) rc = -errno;
    return rc;
}

int fcache_put(struct fcache *c, const char *key, const char *etag, uint64_t idx, const void *src,
               size_t len)
{
    if (len < 1 || len > c->chunk) return -EINVAL;
    uint64_t charge = (len + c->unit - 1) / c->unit * c->unit;
    uint64_t h = XXH3_64bits(key, strlen(key));
    struct chunk *list = NULL;
    pthread_mutex_lock(&c->mu);
    if (charge > c->cap) {
        c->st.put_skipped++;
        pthread_mutex_unlock(&c->mu);
        return -EFBIG;
    }
    struct obj *o = obj_get(c, key, h);
    if (!o->etag || strcmp(o->etag, etag) != 0) { /* a new etag: the old bytes go */
        kill_all(c, o, &list);
        obj_set_etag(c, o, etag);
    }
    struct chunk *have = chunk_find(c, o, idx);
    if (have) { /* the same bytes: only fresher */
        lru_del(c, have);
        lru_push(c, have);
        pthread_mutex_unlock(&c->mu);
        reap(c, list);
        return 0;
    }
    o->pending++;
    uint64_t epoch = o->epoch;
    int r = 0;
    for (int tries = 0; (r = reserve(c, (uint32_t)charge, &list)) == 0 && tries < ROOM_TRIES;
         tries++) {
        pthread_mutex_unlock(&c->mu);
        reap(c, list);
        list = NULL;
        pthread_mutex_lock(&c->mu);
    }
    if (r <= 0) {
        c->st.put_skipped++;
        o->pending--;
        obj_put(c, o);
        pthread_mutex_unlock(&c->mu);
        reap(c, list);
        return -EBUSY;
    }
    struct chunk *ch = xcalloc(1, sizeof *ch);
    ch->idx = idx;
    ch->id = ++c->next_id;
    ch->len = (uint32_t)len;
    ch->charge = (uint32_t)charge;
    c->nalloc++;
    pthread_mutex_unlock(&c->mu);
    reap(c, list);
    list = NULL;

    int rc = write_chunk(c, ch, src);
    ch->sum = XXH3_64bits(src, len);

    pthread_mutex_lock(&c->mu);
    o->pending--;
    if (rc == 0 && o->epoch != epoch) rc = -ESTALE; /* rule 4 */
    if (rc == 0 && !chunk_find(c, o, idx)) {
        make_live(c, o, ch); /* rule 1 */
        c->st.puts++;
    } else { /* a disk error, rule 4, or another put of the chunk won */
        if (rc < 0 && rc != -ESTALE) c->st.put_failed++;
        ch->dead = 1;
        list = ch;
    }
    obj_put(c, o);
    pthread_mutex_unlock(&c->mu);
    reap(c, list);
    return rc;
}

void fcache_forget(struct fcache *c, const char *key)
{
    uint64_t h = XXH3_64bits(key, strlen(key));
    struct chunk *list = NULL;
    pthread_mutex_lock(&c->mu);
    struct obj *o = obj_find(c, key, h);
    if (o) {
        kill_all(c, o, &list);
        obj_set_etag(c, o, NULL); /* rule 4 */
        obj_put(c, o);
    }
    pthread_mutex_unlock(&c->mu);
    reap(c, list);
}

/* ---- stats and checks --------------------------------------------------- */

void fcache_get_stats(struct fcache *c, struct fcache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->disk_bytes = c->used;
    pthread_mutex_unlock(&c->mu);
}

size_t fcache_mem_bytes(struct fcache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = sizeof *c + c->nalloc * sizeof(struct chunk) + c->obj_mem +
               (c->objs.nb + c->chs.nb) * sizeof(void *);
    pthread_mutex_unlock(&c->mu);
    return n;
}

int fcache_check(struct fcache *c, char *err, size_t errlen)
{
    int rc = -1;
    uint64_t chunks = 0, bytes = 0, charged = 0, objs = 0, lru = 0;
    pthread_mutex_lock(&c->mu);
    for (uint64_t i = 0; i < c->objs.nb; i++)
        for (struct obj *o = c->objs.b[i]; o; o = o->next, objs++) {
            uint32_t n = 0;
            if (!o->nchunks && !o->pending) {
                snprintf(err, errlen, "object %s has no chunks and no puts in flight", o->key);
                goto out;
            }
            for (struct chunk *ch = o->chunks; ch; ch = ch->onext, n++) {
                if (ch->o != o || ch->dead || chunk_find(c, o, ch->idx) != ch) {
                    snprintf(err, errlen, "chunk %" PRIu64 " of %s is not indexed as live", ch->idx,
                             o->key);
                    goto out;
                }
                bytes += ch->len;
                charged += ch->charge;
            }
            if (n != o->nchunks) {
                snprintf(err, errlen, "object %s lists %u chunks, counts %u", o->key, n,
                         o->nchunks);
                goto out;
            }
            chunks += n;
        }
    for (struct chunk *ch = c->lru_head; ch; ch = ch->lnext)
        lru++;
    if (objs != c->objs.n || chunks != c->chs.n || chunks != lru || chunks != c->st.chunks ||
        bytes != c->st.bytes) {
        snprintf(err, errlen,
                 "%" PRIu64 " objects (table %" PRIu64 "), %" PRIu64 " chunks (table %" PRIu64
                 ", lru %" PRIu64 ", counted %" PRIu64 ")",
                 objs, c->objs.n, chunks, c->chs.n, lru, c->st.chunks);
        goto out;
    }
    if (c->used != charged + c->stuck || c->used > c->cap) {
        snprintf(err, errlen,
                 "used %" PRIu64 ", live charges %" PRIu64 ", stuck %" PRIu64 ", cap %" PRIu64,
                 c->used, charged, c->stuck, c->cap);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}
