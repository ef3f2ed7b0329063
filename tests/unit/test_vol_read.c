/* test_vol_read.c - the engine's read path: the block cache, read-ahead and
 * coalesced ranged GETs.
 *
 * Counts store requests to check that a sequential reader is served ahead
 * of time, that a second pass costs no request at all, that pieces of one
 * segment split by overwrites are fetched with one GET, that a prefetched
 * window later overwritten is never served stale, that a damaged cache
 * file costs a refetch, never wrong data, and that the cache outlives a
 * clean close only while it provably matches the volume (vol.c rule 11):
 * reused after a clean close, dropped after another writer, a crash, a
 * damaged index or a different cache size. */
#include "store/store.h"
#include "tap.h"
#include "voltest.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/vol.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VOL_SIZE (8u << 20)
#define BS 4096
#define CHUNK (64u << 10)

static char root[] = "/tmp/buoy-test-volread-XXXXXX";
static char url[300], cache[300];
static char *ref;

static struct vol *open_vol(uint64_t cache_size)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache, .cache_size = cache_size};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    return v;
}

static void rm_cache(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache);
    if (system(cmd) != 0)
        bail_out("rm -rf of the cache dir");
}

static struct vol *open_in(const char *dir, uint64_t cache_size)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = dir, .cache_size = cache_size};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    return v;
}

static uint64_t gets(struct vol *v)
{
    struct vol_stats st;
    vol_get_stats(v, &st);
    return st.store.requests[STORE_GET];
}

/* Reads [off, off + len) and compares it with the reference. */
static int read_ok(struct vol *v, uint64_t off, size_t len)
{
    char *b = xmalloc(len);
    int good = vol_read(v, b, off, len) == 0 && memcmp(b, ref + off, len) == 0;
    free(b);
    return good;
}

static void put(struct vol *v, uint64_t off, size_t len, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < len; i++)
        ref[off + i] = (char)rng_next(&r);
    if (vol_write(v, ref + off, off, len, 0) != 0)
        bail_out("a write failed");
}

static void test_sequential(void)
{
    struct vol *v = open_vol(0);
    for (uint64_t off = 0; off < (4u << 20); off += CHUNK)
        put(v, off, CHUNK, off + 1);
    is_int(vol_close(v), 0, "4 MiB written in 64 KiB writes");

    rm_cache(); /* a cold cache */
    v = open_vol(0);
    uint64_t g0 = gets(v);
    int good = 1, nreads = 0;
    for (uint64_t off = 0; off < (4u << 20); off += CHUNK, nreads++)
        good &= read_ok(v, off, CHUNK);
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(good, "a sequential read of 4 MiB in 64 KiB reads returns the data");
    ok(st.readahead_bytes > 0, "read-ahead fetched %llu bytes ahead of the reader",
       (unsigned long long)st.readahead_bytes);
    uint64_t g1 = gets(v);
    ok(g1 - g0 < (uint64_t)nreads / 2, "%llu GETs for %d reads (headers included)",
       (unsigned long long)(g1 - g0), nreads);
    good = 1;
    for (uint64_t off = 0; off < (4u << 20); off += CHUNK)
        good &= read_ok(v, off, CHUNK);
    vol_get_stats(v, &st);
    ok(good && gets(v) == g1, "a second pass is served from the cache: %llu more GETs",
       (unsigned long long)(gets(v) - g1));
    ok(st.cache_hit_ratio > 0.5 && st.cache_bytes >= (4u << 20),
       "cache hit ratio %.2f, %llu bytes cached", st.cache_hit_ratio,
       (unsigned long long)st.cache_bytes);
    vol_close(v);
}

/* A prefetched window overwritten before it is read: the new data wins. */
static void test_readahead_then_overwrite(void)
{
    struct vol *v = open_vol(0);
    int good = read_ok(v, 0, CHUNK) && read_ok(v, CHUNK, CHUNK) && read_ok(v, 2 * CHUNK, CHUNK);
    put(v, 4 * CHUNK + 512, 3 * BS, 777); /* unaligned, inside the read-ahead window */
    put(v, 6 * CHUNK, CHUNK, 778);
    for (uint64_t off = 3 * CHUNK; off < 12 * CHUNK; off += CHUNK)
        good &= read_ok(v, off, CHUNK);
    ok(good, "reads after overwrites inside the read-ahead window see the new data");
    is_int(vol_flush(v), 0, "flush");
    good = 1;
    for (uint64_t off = 0; off < 12 * CHUNK; off += CHUNK)
        good &= read_ok(v, off, CHUNK);
    ok(good, "and so do reads after the overwrites are uploaded");
    is_int(vol_close(v), 0, "close");
}

/* Pieces of one segment between overwritten blocks: one GET. */
static void test_coalesce(void)
{
    struct vol *v = open_vol(VOL_NO_CACHE);
    uint64_t base = 6u << 20;
    put(v, base, 32 * BS, 901);
    is_int(vol_flush(v), 0, "32 blocks in one segment");
    for (int b = 5; b < 32; b += 4)
        put(v, base + (uint64_t)b * BS, BS, 902 + (uint64_t)b);
    is_int(vol_close(v), 0, "every 4th block overwritten in a second segment");
    v = open_vol(VOL_NO_CACHE);
    ok(read_ok(v, base, BS) && read_ok(v, base + 5 * BS, BS), "one block of each (headers loaded)");
    uint64_t g0 = gets(v);
    ok(read_ok(v, base, 32 * BS), "the 32 blocks read back");
    is_int(gets(v) - g0, 2, "with one GET per segment, not one per piece");
    vol_close(v);
}

static void test_damaged_cache(void)
{
    struct vol *v = open_vol(0);
    ok(read_ok(v, 0, 1u << 20), "1 MiB read (now cached)");
    /* the cache file is CACHE/<uuid>/blocks: damage every byte of it */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "for f in %s/*/blocks; do perl -e 'print \"\\xa5\" x (-s $ARGV[0])' "
             "$f > $f.bad && dd if=$f.bad of=$f conv=notrunc status=none && rm $f.bad; done",
             cache);
    is_int(system(cmd), 0, "the cache file is overwritten with garbage");
    uint64_t g0 = gets(v);
    ok(read_ok(v, 0, 1u << 20), "the same 1 MiB still reads right");
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(st.cache_corrupt_blocks > 0 && gets(v) > g0,
       "%llu damaged cache blocks were refetched (%llu GETs)",
       (unsigned long long)st.cache_corrupt_blocks, (unsigned long long)(gets(v) - g0));
    vol_close(v);
}

/* The kept-cache tests use the last 2 MiB: no read-ahead goes past them. */
#define KBASE (6u << 20)
#define KLEN (2u << 20)

static uint64_t kept(struct vol *v)
{
    struct vol_stats st;
    vol_get_stats(v, &st);
    return st.cache_kept_blocks;
}

/* Rule 11: a clean close keeps the cache, the next open reuses it. */
static void test_kept(void)
{
    rm_cache();
    struct vol *v = open_vol(0);
    for (uint64_t off = KBASE; off < KBASE + KLEN; off += CHUNK)
        put(v, off, CHUNK, 3000 + off);
    is_int(vol_close(v), 0, "2 MiB written (cached as they are uploaded), closed cleanly");
    v = open_vol(0);
    uint64_t g0 = gets(v);
    ok(kept(v) >= KLEN / BS, "the next open keeps the cache: %llu blocks",
       (unsigned long long)kept(v));
    ok(read_ok(v, KBASE, KLEN), "the 2 MiB read back right");
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(gets(v) == g0 && st.bytes_fetched == 0 && st.cache_hit_blocks >= KLEN / BS,
       "from the cache: %llu GETs, %llu bytes fetched, %llu hits",
       (unsigned long long)(gets(v) - g0), (unsigned long long)st.bytes_fetched,
       (unsigned long long)st.cache_hit_blocks);
    is_int(vol_close(v), 0, "closed again");
    /* a read-only open in between changes nothing: the cache is still kept */
    char err[512];
    struct vol_opts ro = {.store = {.retries = -1}, .read_only = 1};
    struct vol *r = vol_open(url, &ro, err, sizeof err);
    ok(r && read_ok(r, KBASE, CHUNK), "a read-only open reads");
    if (r)
        vol_close(r);
    v = open_vol(0);
    ok(kept(v) >= KLEN / BS, "and the cache is kept after it");
    vol_close(v);
}

/* Rule 11: another writer (another cache dir: another lease holder) writes
 * the volume between two opens of this cache dir; the cache is dropped and
 * every read returns the new data. */
static void test_kept_other_writer(void)
{
    char other[400];
    snprintf(other, sizeof other, "%s/other-cache", root);
    struct vol *v = open_vol(0);
    ok(read_ok(v, KBASE, KLEN), "2 MiB read (cached)");
    is_int(vol_close(v), 0, "closed cleanly: the cache is kept");
    struct vol *w = open_in(other, 0);
    for (uint64_t off = KBASE; off < KBASE + KLEN; off += 2 * CHUNK)
        put(w, off, CHUNK, 4000 + off);
    is_int(vol_close(w), 0, "another writer overwrote half of it");
    v = open_vol(0);
    is_int(kept(v), 0, "this cache dir's cache is dropped");
    ok(read_ok(v, KBASE, KLEN), "every read returns the other writer's data");
    is_int(vol_close(v), 0, "closed");
}

/* Rule 11: a crash after the open adopted the cache keeps nothing (the
 * index was removed before the first write); a damaged index and another
 * cache size keep nothing; damaged blocks in a kept file are refetched. */
static void test_kept_doubts(void)
{
    struct vol *v = open_vol(0);
    ok(kept(v) > 0 && read_ok(v, KBASE, KLEN), "kept from the last close, read");
    vol_abandon(v); /* a crash */
    v = open_vol(0);
    is_int(kept(v), 0, "after a crash nothing is kept");
    ok(read_ok(v, KBASE, KLEN), "the reads are right");
    is_int(vol_close(v), 0, "closed cleanly");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "for f in %s/*/blocks.idx; do printf x | dd of=$f bs=1 seek=200 "
             "conv=notrunc status=none; done", cache);
    is_int(system(cmd), 0, "one byte of the kept index changed");
    v = open_vol(0);
    is_int(kept(v), 0, "a damaged index keeps nothing");
    ok(read_ok(v, KBASE, KLEN), "the reads are right");
    is_int(vol_close(v), 0, "closed cleanly");

    v = open_vol(64u << 20);
    is_int(kept(v), 0, "another cache size keeps nothing");
    ok(read_ok(v, KBASE, KLEN), "the reads are right");
    is_int(vol_close(v), 0, "closed cleanly");

    snprintf(cmd, sizeof cmd, "for f in %s/*/blocks; do perl -e 'print \"\\xa5\" x 65536' "
             "| dd of=$f conv=notrunc status=none; done", cache);
    is_int(system(cmd), 0, "the first 64 KiB of the kept cache file overwritten");
    v = open_vol(64u << 20);
    ok(kept(v) > 0, "the index is sound: %llu blocks kept", (unsigned long long)kept(v));
    ok(read_ok(v, KBASE, KLEN), "the reads are right");
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(st.cache_corrupt_blocks > 0, "the damaged blocks were refetched (%llu)",
       (unsigned long long)st.cache_corrupt_blocks);
    is_int(vol_close(v), 0, "closed cleanly");
}

/* Two writers with one cache dir on one host would share a journal. */
static void test_local_lock(void)
{
    char err[512];
    struct vol *v = open_vol(0);
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache};
    struct vol *w = vol_open(url, &o, err, sizeof err);
    ok(w == NULL && strstr(err, "in use by another buoy process"),
       "a second writer with the same cache dir is refused: %s", err);
    is_int(vol_close(v), 0, "the first one closes");
    w = vol_open(url, &o, err, sizeof err);
    ok(w != NULL, "then the volume opens again");
    if (w)
        vol_close(w);
}

static void test_bad_cache_dir(void)
{
    char err[512], file[400];
    snprintf(file, sizeof file, "%s/a-file", root);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = file};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    ok(v == NULL && strstr(err, "a-file"), "a cache dir that is a file is an error: %s", err);
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(url, sizeof url, "%s/store", root);
    snprintf(cache, sizeof cache, "%s/cache", root);
    ref = xcalloc(1, VOL_SIZE);
    voltest_make(url, NULL, VOL_SIZE, 1 << 20);
    test_sequential();
    test_readahead_then_overwrite();
    test_coalesce();
    test_damaged_cache();
    test_kept();
    test_kept_other_writer();
    test_kept_doubts();
    test_local_lock();
    test_bad_cache_dir();
    free(ref);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
