/* test_fcache.c - the bucket filesystem's chunk cache.
 *
 * Every chunk's bytes and length are a function of (key, etag, idx), so a
 * chunk returned for the wrong key, version or index, or damaged, is caught.
 * The cap is checked after every put of a random workload by the stats and
 * by the st_blocks of the files in the directory; a flipped byte on disk is
 * a miss; fcache_open empties what an earlier run (or a crash) left and
 * nothing else; 8 threads hammer get, put and forget; a full disk (a tiny
 * tmpfs, when we may mount one) and a refused write fail the put, never a
 * read. */
#include "fs/fcache.h"
#include "tap.h"
#include "util/clock.h"
#include "util/rng.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

static char base[64];

static uint64_t seed_of(const char *key, const char *etag, uint64_t idx)
{
    uint64_t k = XXH3_64bits(key, strlen(key)) ^ (idx + 1) * 0x9e3779b97f4a7c15ULL;
    return XXH3_64bits_withSeed(etag, strlen(etag), k);
}

static void fill(char *p, size_t len, uint64_t seed)
{
    uint64_t x = seed;
    for (size_t i = 0; i < len; i += 8) {
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        memcpy(p + i, &z, len - i < 8 ? len - i : 8);
    }
}

/* 1 when p[0, len) is what fill gives (key, etag, idx). */
static int right(const char *p, size_t len, const char *key, const char *etag, uint64_t idx)
{
    char *want = malloc(len ? len : 1);
    fill(want, len, seed_of(key, etag, idx));
    int r = memcmp(want, p, len) == 0;
    free(want);
    return r;
}

static int put(struct fcache *c, const char *key, const char *etag, uint64_t idx, size_t len)
{
    char *p = malloc(len ? len : 1);
    fill(p, len, seed_of(key, etag, idx));
    int rc = fcache_put(c, key, etag, idx, p, len);
    free(p);
    return rc;
}

/* 1 for a chunk file's name: "fc-" and 16 lower-case hex digits. */
static int chunk_name(const char *n)
{
    if (strlen(n) != 19 || strncmp(n, "fc-", 3) != 0) return 0;
    return strspn(n + 3, "0123456789abcdef") == 16;
}

/* The bytes the cache's files take on disk (st_blocks * 512) and how many
 * there are. */
static uint64_t disk_usage(const char *dir, uint64_t *nfiles)
{
    uint64_t sum = 0, n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct stat st;
        if (!chunk_name(e->d_name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        sum += (uint64_t)st.st_blocks * 512;
        n++;
    }
    if (d) closedir(d);
    if (nfiles) *nfiles = n;
    return sum;
}

/* The one chunk file in dir, or "" . */
static void only_file(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = '\0';
    while (d && (e = readdir(d)) != NULL)
        if (chunk_name(e->d_name)) snprintf(out, len, "%s/%s", dir, e->d_name);
    if (d) closedir(d);
}

static struct fcache *open_or_bail(const char *dir, uint64_t cap, uint32_t chunk)
{
    char err[300];
    struct fcache *c = fcache_open(dir, cap, chunk, err, sizeof err);
    if (!c) bail_out(err);
    return c;
}

static void checked(struct fcache *c, const char *what)
{
    char err[300] = "";
    if (!ok(fcache_check(c, err, sizeof err) == 0, "%s: the index is consistent", what))
        diag("%s", err);
}

static void test_round_trip(void)
{
    char dir[128], *buf = malloc(65536);
    snprintf(dir, sizeof dir, "%s/rt", base);
    struct fcache *c = open_or_bail(dir, 1 << 20, 65536);
    struct fcache_stats st;
    is_int(fcache_chunk(c), 65536, "chunk size");
    is_int(put(c, "a/b", "\"e1\"", 0, 65536), 0, "a full chunk is put");
    is_int(put(c, "a/b", "\"e1\"", 1, 1000), 0, "the object's short last chunk is put");
    is_int(fcache_get(c, "a/b", "\"e1\"", 0, buf), 65536, "chunk 0 comes back whole");
    ok(right(buf, 65536, "a/b", "\"e1\"", 0), "with its bytes");
    is_int(fcache_get(c, "a/b", "\"e1\"", 1, buf), 1000, "the short chunk keeps its length");
    ok(right(buf, 1000, "a/b", "\"e1\"", 1), "and its bytes");
    is_int(fcache_get(c, "a/b", "\"e1\"", 2, buf), 0, "a chunk never put is a miss");
    is_int(fcache_get(c, "a/c", "\"e1\"", 0, buf), 0, "another key is a miss");
    is_int(fcache_get(c, "a/b", "\"e2\"", 0, buf), 0, "another etag is a miss");
    is_int(fcache_get(c, "a/b", "\"e1\"", 0, buf), 65536, "and the lookup dropped nothing");
    is_int(put(c, "a/b", "\"e1\"", 0, 65536), 0, "putting a cached chunk again is fine");
    fcache_get_stats(c, &st);
    ok(st.hits == 3 && st.misses == 3 && st.hit_bytes == 2 * 65536 + 1000 && st.chunks == 2 &&
           st.bytes == 65536 + 1000 && st.puts == 2,
       "stats: %llu hits, %llu misses, %llu hit bytes, %llu chunks of %llu bytes",
       (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.hit_bytes,
       (unsigned long long)st.chunks, (unsigned long long)st.bytes);
    uint64_t files, disk = disk_usage(dir, &files);
    ok(files == 2 && disk == st.disk_bytes && disk == 65536 + 4096,
       "on disk: %llu files, %llu bytes (stats say %llu)", (unsigned long long)files,
       (unsigned long long)disk, (unsigned long long)st.disk_bytes);

    is_int(put(c, "a/b", "\"e2\"", 0, 500), 0, "a new etag is put");
    is_int(fcache_get(c, "a/b", "\"e1\"", 0, buf) + fcache_get(c, "a/b", "\"e1\"", 1, buf), 0,
           "the old etag's chunks are gone");
    is_int(fcache_get(c, "a/b", "\"e2\"", 0, buf), 500, "the new one is there");
    ok(right(buf, 500, "a/b", "\"e2\"", 0), "with its own bytes");
    disk = disk_usage(dir, &files);
    fcache_get_stats(c, &st);
    ok(files == 1 && disk == 4096 && st.disk_bytes == 4096 && st.chunks == 1,
       "and the old etag's files are removed (%llu files, %llu bytes)", (unsigned long long)files,
       (unsigned long long)disk);

    is_int(put(c, "x", "e", 0, 0), -EINVAL, "an empty chunk is refused");
    is_int(put(c, "x", "e", 0, 65537), -EINVAL, "a chunk longer than the chunk size is refused");
    is_int(put(c, "x", "e", UINT64_C(1) << 50, 10), 0, "chunk 2^50 of a huge object is put");
    is_int(fcache_get(c, "x", "e", UINT64_C(1) << 50, buf), 10, "and found");
    checked(c, "round trip");
    fcache_close(c);
    ok(disk_usage(dir, &files) == 0 && files == 0, "fcache_close removes its files");
    free(buf);
}

static void test_forget(void)
{
    char dir[128], buf[4096];
    snprintf(dir, sizeof dir, "%s/forget", base);
    struct fcache *c = open_or_bail(dir, 1 << 20, 4096);
    for (int i = 0; i < 4; i++) {
        put(c, "doomed", "v1", (uint64_t)i, 4096);
        put(c, "kept", "v1", (uint64_t)i, 4096);
    }
    fcache_forget(c, "doomed");
    fcache_forget(c, "never-cached");
    int gone = 1, there = 1;
    for (int i = 0; i < 4; i++) {
        gone &= fcache_get(c, "doomed", "v1", (uint64_t)i, buf) == 0;
        there &= fcache_get(c, "kept", "v1", (uint64_t)i, buf) == 4096 &&
                 right(buf, 4096, "kept", "v1", (uint64_t)i);
    }
    ok(gone, "forget drops every chunk of its key");
    ok(there, "and no other key's");
    uint64_t files;
    disk_usage(dir, &files);
    is_int(files, 4, "its files are removed");
    is_int(put(c, "doomed", "v1", 0, 100), 0, "the key can be cached again");
    is_int(fcache_get(c, "doomed", "v1", 0, buf), 100, "and found");
    checked(c, "forget");
    fcache_close(c);
}

/* A random workload on a small cache: the cap holds after every put, by the
 * stats and by st_blocks, and every chunk returned is right. */
static void test_cap(uint64_t seed)
{
    enum { CH = 16384, KEYS = 40, IDX = 16, OPS = 4000 };
    const uint64_t cap = 300 * 1024 + 123;
    char dir[128], key[32], etag[16], *buf = malloc(CH), *src = malloc(CH);
    snprintf(dir, sizeof dir, "%s/cap%llu", base, (unsigned long long)seed);
    struct fcache *c = open_or_bail(dir, cap, CH);
    struct rng r;
    rng_seed(&r, seed);
    int ver[KEYS] = {0};
    uint64_t over_stats = 0, over_disk = 0, unequal = 0, wrong = 0, hits = 0, puts = 0;
    uint64_t max_disk = 0, bad_mem = 0, max_chunks = 0;
    struct fcache_stats st;
    for (int op = 0; op < OPS; op++) {
        int k = (int)rng_below(&r, rng_below(&r, 2) ? 4 : KEYS); /* half on 4 hot keys */
        uint64_t idx = rng_below(&r, IDX);
        if (rng_below(&r, 50) == 0) ver[k]++; /* the object changed */
        snprintf(key, sizeof key, "dir/obj-%d", k);
        snprintf(etag, sizeof etag, "\"%d\"", ver[k]);
        /* chunk IDX-1 is the short last one, its length fixed per version */
        size_t len = idx == IDX - 1 ? 1 + seed_of(key, etag, idx) % CH : CH;
        if (rng_below(&r, 10) < 6) {
            fill(src, len, seed_of(key, etag, idx));
            int rc = fcache_put(c, key, etag, idx, src, len);
            if (rc != 0) {
                wrong++;
                diag("put %s %s %llu: %d", key, etag, (unsigned long long)idx, rc);
            }
            puts++;
            fcache_get_stats(c, &st);
            uint64_t disk = disk_usage(dir, NULL);
            over_stats += st.disk_bytes > cap;
            over_disk += disk > cap;
            unequal += disk != st.disk_bytes || st.bytes > st.disk_bytes;
            if (disk > max_disk) max_disk = disk;
            if (st.chunks > max_chunks) max_chunks = st.chunks;
            /* two objects, two buckets and a chunk per chunk, at most */
            bad_mem += fcache_mem_bytes(c) > 4096 + st.chunks * 400;
        } else {
            size_t got = fcache_get(c, key, etag, idx, buf);
            if (got) {
                hits++;
                wrong += got != len || !right(buf, len, key, etag, idx);
            }
        }
        if (op % 500 == 0) checked(c, "random workload");
    }
    fcache_get_stats(c, &st);
    is_int(wrong, 0, "seed %llu: every put cached, every chunk returned right (%llu hits)",
           (unsigned long long)seed, (unsigned long long)hits);
    is_int(over_stats, 0, "the charged bytes never exceeded the cap of %llu, after %llu puts",
           (unsigned long long)cap, (unsigned long long)puts);
    is_int(over_disk, 0, "the files' st_blocks never exceeded it (at most %llu bytes)",
           (unsigned long long)max_disk);
    is_int(unequal, 0, "st_blocks of the files always equals the charged bytes exactly");
    ok(st.evictions > 0 && max_chunks <= cap / 4096, "%llu evictions, at most %llu chunks cached",
       (unsigned long long)st.evictions, (unsigned long long)max_chunks);
    is_int(bad_mem, 0, "index memory stays under 4 KiB + 400 bytes a chunk (%zu now)",
           fcache_mem_bytes(c));
    checked(c, "after the workload");
    fcache_close(c);
    free(buf);
    free(src);
}

static void test_lru(void)
{
    char dir[128], buf[4096];
    snprintf(dir, sizeof dir, "%s/lru", base);
    struct fcache *c = open_or_bail(dir, 8 * 4096, 4096);
    for (uint64_t i = 0; i < 8; i++)
        put(c, "f", "e", i, 4096);
    int hot = 1;
    for (uint64_t i = 8; i < 40; i++) {
        hot &= fcache_get(c, "f", "e", 0, buf) == 4096; /* chunk 0 stays hot */
        put(c, "f", "e", i, 4096);
    }
    ok(hot, "a chunk read before every put is never evicted");
    int cold = 1, newest = 1;
    for (uint64_t i = 1; i < 33; i++)
        cold &= fcache_get(c, "f", "e", i, buf) == 0;
    for (uint64_t i = 33; i < 40; i++)
        newest &= fcache_get(c, "f", "e", i, buf) == 4096;
    ok(cold, "the chunks never read went, oldest first");
    ok(newest, "the 7 newest are there");
    struct fcache_stats st;
    fcache_get_stats(c, &st);
    is_int(st.evictions, 32, "32 evictions");
    fcache_close(c);
}

static void test_corrupt(void)
{
    char dir[128], path[300], buf[8192];
    snprintf(dir, sizeof dir, "%s/corrupt", base);
    struct fcache *c = open_or_bail(dir, 1 << 20, 8192);
    struct fcache_stats st;
    put(c, "k", "e", 3, 8192);
    only_file(dir, path, sizeof path);
    int fd = open(path, O_RDWR);
    char b = 0;
    ok(fd >= 0 && pread(fd, &b, 1, 5000) == 1, "the chunk file %s is there", path);
    b ^= 0x10;
    ok(pwrite(fd, &b, 1, 5000) == 1, "one of its bytes flipped");
    close(fd);
    is_int(fcache_get(c, "k", "e", 3, buf), 0, "the damaged chunk is a miss");
    fcache_get_stats(c, &st);
    ok(st.corrupt == 1 && st.chunks == 0 && st.disk_bytes == 0 && st.hits == 0,
       "counted corrupt (%llu) and dropped", (unsigned long long)st.corrupt);
    ok(access(path, F_OK) != 0, "its file removed");
    is_int(fcache_get(c, "k", "e", 3, buf), 0, "then a plain miss");

    put(c, "k", "e", 4, 8192);
    only_file(dir, path, sizeof path);
    ok(truncate(path, 100) == 0, "a chunk file cut short");
    is_int(fcache_get(c, "k", "e", 4, buf), 0, "is a miss");
    put(c, "k", "e", 5, 8192);
    only_file(dir, path, sizeof path);
    ok(unlink(path) == 0, "a chunk file removed behind the cache's back");
    is_int(fcache_get(c, "k", "e", 5, buf), 0, "is a miss");
    fcache_get_stats(c, &st);
    ok(st.corrupt == 3 && st.chunks == 0 && st.disk_bytes == 0, "both counted (%llu)",
       (unsigned long long)st.corrupt);
    checked(c, "corrupt chunks");
    fcache_close(c);
}

static int touch(const char *dir, const char *name)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    int rc = write(fd, "x", 1) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

static int exists(const char *dir, const char *name)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void test_open(void)
{
    char dir[128], sub[200], file[200], target[200], link[300], err[300];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/open/new/cache", base);
    struct fcache *c = fcache_open(dir, 1 << 20, 4096, err, sizeof err);
    ok(c && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
       "a missing directory is made 0700");
    ok(fcache_open(dir, 1 << 20, 4096, err, sizeof err) == NULL,
       "a second cache on the directory is refused: %s", err);
    fcache_close(c);

    snprintf(file, sizeof file, "%s/open/plain", base);
    ok(touch(base, "open/plain") == 0 && fcache_open(file, 1 << 20, 4096, err, sizeof err) == NULL,
       "a file that is not a directory is refused: %s", err);
    ok(exists(base, "open/plain"), "and left alone");
    ok(fcache_open(dir, 100, 4096, err, sizeof err) == NULL,
       "a cap under one filesystem block is refused: %s", err);
    ok(fcache_open(dir, 1 << 20, 0, err, sizeof err) == NULL, "chunk size 0 is refused: %s", err);

    /* what an earlier run left, next to files the cache did not make */
    ok(touch(dir, "fc-00000000000000a1") == 0 && touch(dir, "fc-00000000000000A1") == 0 &&
           touch(dir, "fc-1") == 0 && touch(dir, "fc-00000000000000a1.bak") == 0 &&
           touch(dir, "notes.txt") == 0,
       "files left in the directory");
    snprintf(sub, sizeof sub, "%s/fc-00000000000000b2", dir);
    ok(mkdir(sub, 0700) == 0 && touch(sub, "inner") == 0, "a directory with a cache's name");
    snprintf(target, sizeof target, "%s/open/target", base);
    snprintf(link, sizeof link, "%s/fc-00000000000000c3", dir);
    ok(touch(base, "open/target") == 0 && symlink(target, link) == 0,
       "a symlink with a cache's name");
    c = fcache_open(dir, 1 << 20, 4096, err, sizeof err);
    ok(c != NULL, "the cache opens on it");
    ok(!exists(dir, "fc-00000000000000a1"), "the earlier run's chunk file is removed");
    ok(exists(dir, "fc-00000000000000A1") && exists(dir, "fc-1") &&
           exists(dir, "fc-00000000000000a1.bak") && exists(dir, "notes.txt"),
       "files with other names stay");
    ok(exists(sub, "inner") && exists(dir, "fc-00000000000000c3") && exists(base, "open/target"),
       "a directory or symlink with a cache's name stays, and so does what it points at");
    fcache_close(c);

    /* a crash: a child caches chunks and dies without fcache_close */
    pid_t pid = fork();
    if (pid == 0) {
        struct fcache *k = fcache_open(dir, 1 << 20, 4096, err, sizeof err);
        for (uint64_t i = 0; k && i < 10; i++)
            put(k, "crash", "e", i, 4096);
        _exit(k ? 0 : 1);
    }
    int status;
    uint64_t files;
    disk_usage(dir, &files);
    ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "a run cached chunks and died");
    disk_usage(dir, &files);
    is_int(files, 10, "leaving 10 chunk files");
    c = fcache_open(dir, 1 << 20, 4096, err, sizeof err);
    char buf[4096];
    disk_usage(dir, &files);
    ok(c && files == 0 && fcache_get(c, "crash", "e", 0, buf) == 0,
       "the next open removes them and caches nothing from them");
    fcache_close(c);
}

/* Puts that the disk refuses: a file size limit (EFBIG, no root needed),
 * and a chunk larger than the whole cap. */
static void test_refused(void)
{
    char dir[128], buf[8192];
    snprintf(dir, sizeof dir, "%s/refused", base);
    struct fcache *c = open_or_bail(dir, 1 << 20, 8192);
    struct fcache_stats st;
    is_int(put(c, "ok", "e", 0, 8192), 0, "a chunk is cached");
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    small.rlim_cur = 3000;
    small.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_FSIZE, &small);
    int rc = put(c, "k", "e", 0, 8192);
    setrlimit(RLIMIT_FSIZE, &old);
    is_int(rc, -EFBIG, "a put whose write fails returns the error");
    fcache_get_stats(c, &st);
    uint64_t files, disk = disk_usage(dir, &files);
    ok(st.put_failed == 1 && st.chunks == 1 && files == 1 && disk == 8192 && st.disk_bytes == 8192,
       "counted, and its part-written file removed (%llu files, %llu bytes)",
       (unsigned long long)files, (unsigned long long)disk);
    is_int(fcache_get(c, "k", "e", 0, buf), 0, "the failed chunk is a miss");
    ok(fcache_get(c, "ok", "e", 0, buf) == 8192 && right(buf, 8192, "ok", "e", 0),
       "the other chunk still reads right");
    is_int(put(c, "k", "e", 0, 8192), 0, "once the disk takes writes again the put works");
    checked(c, "refused writes");
    fcache_close(c);

    c = open_or_bail(dir, 4096, 8192);
    is_int(put(c, "big", "e", 0, 8192), -EFBIG, "a chunk larger than the cap is not cached");
    is_int(put(c, "small", "e", 0, 4096), 0, "one that fits is");
    fcache_get_stats(c, &st);
    ok(st.put_skipped == 1 && st.chunks == 1 && st.disk_bytes == 4096, "skipped: %llu",
       (unsigned long long)st.put_skipped);
    fcache_close(c);
}

/* A full disk: a 256 KiB tmpfs under a cache whose cap is 4 MiB. */
static void test_enospc(void)
{
    char mnt[128], dir[200], buf[65536];
    snprintf(mnt, sizeof mnt, "%s/tiny", base);
    snprintf(dir, sizeof dir, "%s/cache", mnt);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") < 0) {
        ok(1, "# SKIP a tmpfs cannot be mounted here: %s", strerror(errno));
        rmdir(mnt);
        return;
    }
    struct fcache *c = open_or_bail(dir, 4 << 20, 65536);
    int failed = 0, cached = 0, other = 0;
    for (uint64_t i = 0; i < 8; i++) {
        int rc = put(c, "big", "e", i, 65536);
        failed += rc == -ENOSPC;
        cached += rc == 0;
        other += rc != 0 && rc != -ENOSPC;
    }
    ok(failed > 0 && cached > 0 && other == 0, "on a full disk puts fail with ENOSPC (%d of 8)",
       failed);
    struct fcache_stats st;
    fcache_get_stats(c, &st);
    is_int(st.put_failed, failed, "each one counted");
    int good = 1, hits = 0;
    for (uint64_t i = 0; i < 8; i++) {
        size_t n = fcache_get(c, "big", "e", i, buf);
        hits += n != 0;
        good &= n == 0 || (n == 65536 && right(buf, n, "big", "e", i));
    }
    ok(good && hits == cached, "the cached ones read right (%d), the failed ones miss", hits);
    uint64_t files, disk = disk_usage(dir, &files);
    ok(disk == st.disk_bytes && files == (uint64_t)cached,
       "no part-written file is left (%llu files, %llu bytes)", (unsigned long long)files,
       (unsigned long long)disk);
    checked(c, "full disk");
    fcache_close(c);
    ok(umount(mnt) == 0, "the tmpfs is unmounted");
    rmdir(mnt);
}

/* Rule 4, deterministically: a put of a 32 MiB chunk is still writing when
 * the test sees its reservation in the stats, then forgets the key (or puts
 * a new etag); the put must not bring its bytes back. */
enum { BIG = 32 << 20 };

struct slow_put {
    struct fcache *c;
    const char *etag;
    char *src;
    int rc;
};

static void *slow_put(void *arg)
{
    struct slow_put *p = arg;
    p->rc = fcache_put(p->c, "slow", p->etag, 1, p->src, BIG);
    return NULL;
}

/* Starts the put and waits until it is writing; 0, or -1 when it was not
 * seen in flight. */
static int start_slow(struct slow_put *p, pthread_t *t)
{
    struct fcache_stats st;
    fcache_get_stats(p->c, &st);
    uint64_t before = st.disk_bytes, puts = st.puts;
    pthread_create(t, NULL, slow_put, p);
    for (uint64_t until = clock_mono_ms() + 10000; clock_mono_ms() < until;) {
        fcache_get_stats(p->c, &st);
        if (st.puts != puts) return -1; /* done already */
        if (st.disk_bytes >= before + BIG) return 0;
    }
    return -1;
}

static void test_races(void)
{
    char dir[128], *buf = malloc(BIG);
    snprintf(dir, sizeof dir, "%s/races", base);
    struct fcache *c = open_or_bail(dir, 2 * (uint64_t)BIG, BIG);
    struct slow_put p = {.c = c, .etag = "e1", .src = malloc(BIG)};
    fill(p.src, BIG, seed_of("slow", "e1", 1));
    pthread_t t;
    int seen = start_slow(&p, &t) == 0;
    fcache_forget(c, "slow");
    pthread_join(t, NULL);
    ok(seen, "a put of 32 MiB was seen writing");
    is_int(p.rc, -ESTALE, "a forget while it wrote makes it fail with ESTALE");
    is_int(fcache_get(c, "slow", "e1", 1, buf), 0, "and its chunk is not cached");

    seen = start_slow(&p, &t) == 0;
    is_int(put(c, "slow", "e2", 1, 1000), 0, "a new etag is put while the old one is writing");
    pthread_join(t, NULL);
    ok(seen && p.rc == -ESTALE, "the old etag's put fails (%d)", p.rc);
    ok(fcache_get(c, "slow", "e2", 1, buf) == 1000 && right(buf, 1000, "slow", "e2", 1),
       "the new etag's chunk is the one cached");
    is_int(fcache_get(c, "slow", "e1", 1, buf), 0, "the old one is not");
    struct fcache_stats st;
    fcache_get_stats(c, &st);
    uint64_t files, disk = disk_usage(dir, &files);
    ok(files == 1 && disk == 4096 && st.disk_bytes == 4096, "and the lost puts' files are gone");
    checked(c, "races");
    fcache_close(c);
    free(p.src);
    free(buf);
}

/* ---- threads ------------------------------------------------------------ */

enum { T_KEYS = 24, T_IDX = 6, T_CH = 8192, T_THREADS = 8 };
#define T_CAP (40 * T_CH)

struct worker {
    struct fcache *c;
    uint64_t seed, deadline;
    uint64_t ops, hits, wrong, over, errors;
};

static size_t t_len(const char *key, const char *etag, uint64_t idx)
{
    return idx == T_IDX - 1 ? 1 + seed_of(key, etag, idx) % T_CH : T_CH;
}

static void *worker(void *arg)
{
    struct worker *w = arg;
    struct rng r;
    char key[32], etag[16], *buf = malloc(T_CH), *src = malloc(T_CH);
    rng_seed(&r, w->seed);
    while (clock_mono_ms() < w->deadline) {
        for (int i = 0; i < 100; i++, w->ops++) {
            uint64_t idx = rng_below(&r, T_IDX);
            snprintf(key, sizeof key, "k%d", (int)rng_below(&r, T_KEYS));
            snprintf(etag, sizeof etag, "v%d", rng_below(&r, 16) ? 0 : 1); /* 1 in 16 */
            size_t len = t_len(key, etag, idx);
            unsigned op = (unsigned)rng_below(&r, 20);
            if (op < 10) {
                size_t got = fcache_get(w->c, key, etag, idx, buf);
                if (got) {
                    w->hits++;
                    w->wrong += got != len || !right(buf, len, key, etag, idx);
                }
            } else if (op < 19) {
                fill(src, len, seed_of(key, etag, idx));
                int rc = fcache_put(w->c, key, etag, idx, src, len);
                /* lost races (ESTALE) and a full cap of busy chunks (EBUSY) are fine */
                w->errors += rc != 0 && rc != -ESTALE && rc != -EBUSY;
            } else
                fcache_forget(w->c, key);
        }
        struct fcache_stats st;
        fcache_get_stats(w->c, &st);
        w->over += st.disk_bytes > T_CAP;
    }
    free(buf);
    free(src);
    return NULL;
}

static void test_threads(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/threads", base);
    struct fcache *c = open_or_bail(dir, T_CAP, T_CH);
    const char *env = getenv("FCACHE_TEST_SECS");
    uint64_t secs = env ? strtoull(env, NULL, 10) : 3;
    pthread_t t[T_THREADS];
    struct worker w[T_THREADS];
    uint64_t start = clock_mono_ms();
    for (int i = 0; i < T_THREADS; i++) {
        w[i] = (struct worker){.c = c, .seed = 100 + (uint64_t)i, .deadline = start + secs * 1000};
        pthread_create(&t[i], NULL, worker, &w[i]);
    }
    uint64_t ops = 0, hits = 0, wrong = 0, over = 0, errors = 0;
    for (int i = 0; i < T_THREADS; i++) {
        pthread_join(t[i], NULL);
        ops += w[i].ops;
        hits += w[i].hits;
        wrong += w[i].wrong;
        over += w[i].over;
        errors += w[i].errors;
    }
    uint64_t ms = clock_mono_ms() - start;
    struct fcache_stats st;
    fcache_get_stats(c, &st);
    diag("%d threads, %llu ops in %llu ms (%llu ops/s), %llu hits, %llu puts, %llu evictions, "
         "%llu skipped",
         T_THREADS, (unsigned long long)ops, (unsigned long long)ms,
         (unsigned long long)(ms ? ops * 1000 / ms : 0), (unsigned long long)hits,
         (unsigned long long)st.puts, (unsigned long long)st.evictions,
         (unsigned long long)st.put_skipped);
    is_int(wrong, 0, "every chunk returned under 8 threads has its own bytes and length");
    is_int(errors, 0, "no put failed but for lost races and busy room");
    is_int(over, 0, "the charged bytes never exceeded the cap when sampled");
    ok(hits > 0 && st.evictions > 0 && st.corrupt == 0, "hits %llu, evictions %llu, corrupt %llu",
       (unsigned long long)hits, (unsigned long long)st.evictions, (unsigned long long)st.corrupt);
    uint64_t files, disk = disk_usage(dir, &files);
    ok(disk == st.disk_bytes && disk <= T_CAP && files == st.chunks,
       "at rest: %llu files, %llu bytes on disk, %llu charged", (unsigned long long)files,
       (unsigned long long)disk, (unsigned long long)st.disk_bytes);
    checked(c, "after the threads");
    fcache_close(c);
}

int main(void)
{
    plan_no_plan();
    snprintf(base, sizeof base, "/tmp/buoy-test-fcache-XXXXXX");
    if (!mkdtemp(base)) bail_out("mkdtemp");
    char p[128];
    snprintf(p, sizeof p, "%s/open", base);
    mkdir(p, 0700);
    test_round_trip();
    test_forget();
    test_cap(1);
    test_cap(2);
    test_lru();
    test_corrupt();
    test_open();
    test_refused();
    test_enospc();
    test_races();
    test_threads();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0) diag("could not remove %s", base);
    return done_testing();
}
