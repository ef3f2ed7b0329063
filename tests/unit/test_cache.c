/* test_cache.c - the local block cache against a reference.
 *
 * Random runs of blocks are put and got on a small cache; every block the
 * cache returns must hold the bytes last put under its key, the newest
 * capacity's worth of blocks must always be there (FIFO), the index must
 * match the slots after every step, and a cache file that cannot be written
 * must drop blocks, never return them.  The model runs for plain and for
 * sealed caches (an encrypted volume's), whose file must hold no plaintext.
 * A cache kept across a close (rule 5) comes back block for block under
 * the names it was saved with, and a crash, a put before adopt, a damaged
 * index, another size or a sealed cache keep nothing. */
#include "tap.h"
#include "util/rng.h"
#include "vol/cache.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS 512
#define NSEG 6
#define NBLK 64

/* Block contents are a function of (seg, block, version). */
static void fill(char *p, uint32_t seg, uint32_t block, uint32_t ver)
{
    for (int i = 0; i < BS; i++)
        p[i] = (char)(seg * 131 + block * 7 + ver * 31 + i);
}

static uint32_t version[NSEG][NBLK]; /* 0: never put */
static uint64_t put_order[NSEG][NBLK];

static void test_model(uint64_t seed, uint32_t slots, int sealed)
{
    char err[256], path[] = "/tmp/buoy-test-cache-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    struct cache *c = cache_open(path, (uint64_t)slots * BS, BS, sealed, err, sizeof err);
    ok(c != NULL, "a %s cache of %u slots opens", sealed ? "sealed" : "plain", slots);
    if (!c)
        return;
    memset(version, 0, sizeof version);
    memset(put_order, 0, sizeof put_order);
    struct rng r;
    rng_seed(&r, seed);
    uint64_t clock = 0, wrong = 0, lost = 0, bad_index = 0;
    char *buf = malloc((size_t)NBLK * BS), *want = malloc(BS);
    for (int op = 0; op < 20000; op++) {
        uint32_t seg = (uint32_t)rng_below(&r, NSEG), b = (uint32_t)rng_below(&r, NBLK);
        uint32_t n = 1 + (uint32_t)rng_below(&r, NBLK - b);
        if (rng_below(&r, 2)) {
            for (uint32_t i = 0; i < n; i++) {
                version[seg][b + i]++;
                put_order[seg][b + i] = clock + i + 1;
                fill(buf + (size_t)i * BS, seg, b + i, version[seg][b + i]);
            }
            clock += n;
            cache_put(c, seg, b, n, buf);
        } else {
            uint32_t got = cache_get(c, seg, b, n, buf);
            for (uint32_t i = 0; i < got; i++) {
                fill(want, seg, b + i, version[seg][b + i]);
                if (version[seg][b + i] == 0 || memcmp(want, buf + (size_t)i * BS, BS) != 0)
                    wrong++;
            }
            /* the block where it stopped must not be one of the newest `slots` puts */
            if (got < n && version[seg][b + got] && clock - put_order[seg][b + got] < slots)
                lost++;
        }
        if (op % 1000 == 0 && cache_check(c, err, sizeof err) != 0) {
            bad_index++;
            diag("%s", err);
        }
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    is_int(wrong, 0, "seed %llu, %u slots: every block returned holds its latest bytes",
           (unsigned long long)seed, slots);
    is_int(lost, 0, "the newest %u blocks put are always there", slots);
    is_int(bad_index, 0, "the index matches the slots throughout");
    ok(st.used <= slots && st.hits > 0 && st.misses > 0,
       "stats: %llu of %u slots used, %llu hits, %llu misses", (unsigned long long)st.used,
       slots, (unsigned long long)st.hits, (unsigned long long)st.misses);
    ok(cache_mem_bytes(c) <= (sealed ? 72 : 64) * (size_t)slots + 256 + (sealed ? NBLK * BS : 0),
       "index memory %zu bytes for %u slots", cache_mem_bytes(c), slots);
    if (sealed) { /* no block's bytes are in the file as they were put */
        uint64_t plain = 0;
        int f = open(path, O_RDONLY);
        for (uint32_t sl = 0; f >= 0 && sl < slots; sl++) {
            if (pread(f, buf, BS, (off_t)sl * BS) != BS)
                break;
            for (uint32_t sg = 0; sg < NSEG; sg++)
                for (uint32_t b = 0; b < NBLK; b++) {
                    if (!version[sg][b])
                        continue;
                    fill(want, sg, b, version[sg][b]);
                    plain += memcmp(want, buf, BS) == 0;
                }
        }
        if (f >= 0)
            close(f);
        is_int(plain, 0, "the sealed cache file holds no block as it was put");
    }
    cache_close(c);
    ok(access(path, F_OK) != 0, "closing removes the cache file");
    free(buf);
    free(want);
}

static void test_errors(int sealed)
{
    char err[256];
    ok(cache_open("/tmp/buoy-test-cache-none/x", 1 << 20, BS, sealed, err, sizeof err) == NULL,
       "a cache in a missing directory fails: %s", err);
    ok(cache_open("/tmp/buoy-test-cache-small", 4 * BS, BS, sealed, err, sizeof err) == NULL,
       "a cache under 16 blocks is refused: %s", err);

    /* a full disk: with RLIMIT_FSIZE 0 every write to the file fails (EFBIG) */
    struct cache *c =
        cache_open("/tmp/buoy-test-cache-full", 64 * BS, BS, sealed, err, sizeof err);
    if (!c)
        bail_out(err);
    struct rlimit old, none = {0, 0};
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    none.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_FSIZE, &none);
    char blk[BS], out[BS];
    fill(blk, 1, 1, 1);
    cache_put(c, 1, 1, 1, blk);
    setrlimit(RLIMIT_FSIZE, &old);
    struct cache_stats st;
    cache_get_stats(c, &st);
    ok(cache_get(c, 1, 1, 1, out) == 0 && st.write_errors == 1 && st.used == 0,
       "a block the cache file refused is not returned (write errors %llu)",
       (unsigned long long)st.write_errors);
    cache_put(c, 1, 1, 1, blk);
    ok(cache_get(c, 1, 1, 1, out) == 1 && memcmp(out, blk, BS) == 0,
       "once the disk takes writes again the block is cached");

    /* a flipped byte in the cache file: a miss, never the damaged bytes (the
     * failed put left slot 0 empty, so the block is in slot 1) */
    int fd = open("/tmp/buoy-test-cache-full", O_RDWR);
    char b0;
    ok(fd >= 0 && pread(fd, &b0, 1, BS + 100) == 1, "the cache file is readable");
    b0 ^= 0x40;
    ok(pwrite(fd, &b0, 1, BS + 100) == 1, "one byte of slot 1 flipped");
    close(fd);
    cache_get_stats(c, &st);
    ok(cache_get(c, 1, 1, 1, out) == 0, "the damaged block is not returned");
    struct cache_stats st2;
    cache_get_stats(c, &st2);
    is_int(st2.corrupt - st.corrupt, 1, "and counted as corrupt");
    ok(cache_check(c, err, sizeof err) == 0 && st2.used == 0, "its slot is emptied");
    cache_close(c);
}

/* The engine's names for the test: segment s is "seq" 100 + s, epoch 7. */
static int name_of(void *arg, uint32_t seg, uint64_t *name, uint32_t *epoch)
{
    (void)arg;
    if (seg == 5) /* a segment gone by the close: not kept */
        return -1;
    *name = 100 + seg;
    *epoch = 7;
    return 0;
}

/* At the next open segment "seq" 100 + s is index 10 + s; epoch 8 is not known. */
static int64_t seg_of(void *arg, uint64_t name, uint32_t epoch)
{
    (void)arg;
    return epoch == 7 && name >= 100 && name < 100 + NSEG ? (int64_t)(name - 100 + 10) : -1;
}

static struct cache *kept_cache(const char *path, uint32_t slots, uint8_t tag[CACHE_TAG_LEN])
{
    char err[256], why[200];
    struct cache *c = cache_open_kept(path, (uint64_t)slots * BS, BS, tag, why, sizeof why, err,
                                      sizeof err);
    if (!c)
        bail_out(err);
    return c;
}

static void test_keep(void)
{
    char err[256], path[] = "/tmp/buoy-test-cache-keep-XXXXXX", idx[64];
    int fd = mkstemp(path);
    close(fd);
    snprintf(idx, sizeof idx, "%s.idx", path);
    uint8_t tag[CACHE_TAG_LEN], got[CACHE_TAG_LEN];
    memset(tag, 0x5c, sizeof tag);
    struct cache *c = kept_cache(path, 64, got);
    ok(!cache_has_kept(c), "a new cache keeps nothing");
    char blk[BS], out[BS];
    for (uint32_t s = 0; s < NSEG; s++)
        for (uint32_t b = 0; b < 8; b++) {
            fill(blk, s, b, 1);
            cache_put(c, s, b, 1, blk);
        }
    ok(cache_close_keep(c, tag, name_of, NULL, err, sizeof err) == 0, "kept at close");
    ok(access(path, F_OK) == 0 && access(idx, F_OK) == 0, "the file and its index stay");

    c = kept_cache(path, 64, got);
    ok(cache_has_kept(c) && memcmp(got, tag, sizeof tag) == 0, "the next open has the tag");
    ok(access(idx, F_OK) != 0, "and removed the index before anything else");
    is_int(cache_adopt(c, seg_of, NULL), 40, "40 blocks adopted (segment 5 was not kept)");
    int good = 1;
    for (uint32_t s = 0; s < NSEG; s++)
        for (uint32_t b = 0; b < 8; b++) {
            fill(blk, s, b, 1);
            uint32_t n = cache_get(c, 10 + s, b, 1, out);
            good &= s == 5 ? n == 0 : n == 1 && memcmp(out, blk, BS) == 0;
        }
    ok(good, "each under its new segment index, the same bytes");
    ok(cache_check(c, err, sizeof err) == 0, "the index matches the slots: %s", err);
    ok(cache_close_keep(c, tag, name_of, NULL, err, sizeof err) == 0, "kept again");

    /* a crash after the open: nothing was kept for the one after */
    pid_t pid = fork();
    if (pid == 0) {
        struct cache *k = kept_cache(path, 64, got);
        _exit(cache_has_kept(k) ? 0 : 1); /* held back, then a crash */
    }
    int status;
    ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0,
       "an open held the blocks back, then crashed");
    struct cache *d = kept_cache(path, 64, got);
    ok(!cache_has_kept(d), "after the crash nothing is kept");
    fill(blk, 1, 1, 2);
    cache_put(d, 1, 1, 1, blk);
    ok(cache_close_keep(d, tag, name_of, NULL, err, sizeof err) == 0, "one block kept");

    /* a put before adopt drops what was held back */
    c = kept_cache(path, 64, got);
    cache_put(c, 2, 2, 1, blk);
    ok(!cache_has_kept(c) && cache_adopt(c, seg_of, NULL) == 0, "a put first drops it all");
    ok(cache_close_keep(c, tag, name_of, NULL, err, sizeof err) == 0, "kept");

    /* another size, a damaged index */
    c = kept_cache(path, 128, got);
    ok(!cache_has_kept(c), "another cache size keeps nothing");
    ok(cache_close_keep(c, tag, name_of, NULL, err, sizeof err) == 0, "kept (empty)");
    c = kept_cache(path, 128, got);
    cache_put(c, 3, 3, 1, blk);
    ok(cache_close_keep(c, tag, name_of, NULL, err, sizeof err) == 0, "kept one block");
    fd = open(idx, O_RDWR);
    char x = 1;
    ok(fd >= 0 && pwrite(fd, &x, 1, 140) == 1, "one byte of the index changed");
    close(fd);
    c = kept_cache(path, 128, got);
    ok(!cache_has_kept(c), "a damaged index keeps nothing");
    cache_close(c);
    ok(access(path, F_OK) != 0 && access(idx, F_OK) != 0, "cache_close removes both");

    /* sealed: never kept */
    c = cache_open(path, 64 * BS, BS, 1, err, sizeof err);
    ok(c && cache_close_keep(c, tag, name_of, NULL, err, sizeof err) < 0,
       "a sealed cache is not kept: %s", err);
    ok(access(path, F_OK) != 0 && access(idx, F_OK) != 0, "and removed");
}

int main(void)
{
    plan_no_plan();
    for (int sealed = 0; sealed < 2; sealed++) {
        test_model(1, 16, sealed);
        test_model(2, 100, sealed);
        test_model(3, 1000, sealed);
        test_errors(sealed);
    }
    test_keep();
    return done_testing();
}
