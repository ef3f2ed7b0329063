/* test_vol.c - the volume engine against an in-memory reference.
 *
 * A model test: thousands of random writes (unaligned too), reads, trims,
 * flushes, clean reopens and simulated crashes (the engine is dropped
 * without a flush; its journal survives in the page cache, as after a
 * kill -9) on a small volume with small segments, comparing every read with
 * the reference.  Then the same with 5% transient store errors, and
 * corruption of a stored segment, which must be an I/O error, never data. */
#include "store/store.h"
#include "tap.h"
#include "util/log.h"
#include "voltest.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/ckpt.h"
#include "vol/seg.h"
#include "vol/super.h"
#include "vol/vol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VOL_SIZE (4u << 20)

static char root[] = "/tmp/buoy-test-vol-XXXXXX";
static char url[300], cache[300];
static char *ref;
/* VOL_TEST_ENDPOINT and VOL_TEST_BUCKET run the model on S3 (t1020 does, on moto). */
static const char *endpoint;
static uint64_t cache_bytes; /* vol_opts.cache_size of open_vol */
static int gc_mode;          /* the cleaner runs all the time, and the model calls vol_gc */
static int low_entropy;      /* written bytes compress (for the zstd volume) */
static const char *passfile; /* vol_opts.passphrase_file of open_vol */

static void make_volume(const char *u)
{
    voltest_make(u, endpoint, VOL_SIZE, 64 << 10);
}

static struct vol *open_vol(const char *fault)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1, .retry_base_ms = 1, .retry_cap_ms = 4,
                                   .fault = fault, .endpoint = endpoint},
                         .cache_dir = cache,
                         .checkpoint_every = 4,
                         .cache_size = cache_bytes,
                         .gc = gc_mode,
                         .gc_threshold = 0.9,
                         .gc_min_garbage = 0.01,
                         .gc_rate = 1ull << 40,
                         .gc_interval_ms = 3,
                         .passphrase_file = passfile};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    return v;
}

static void count_progress(const struct vol_gc_progress *p, void *arg)
{
    (*(uint64_t *)arg)++;
}

/* Bytes of segment objects in the store. */
static uint64_t stored_bytes(void)
{
    char err[512];
    struct store_opts so = {.retries = -1, .endpoint = endpoint};
    struct store *s = store_open(url, &so, err, sizeof err);
    struct store_obj *list;
    size_t n;
    uint64_t total = 0;
    if (!s || store_list(s, "seg/", &list, &n, err, sizeof err))
        bail_out(err);
    for (size_t i = 0; i < n; i++)
        total += list[i].size;
    store_list_free(list, n);
    store_close(s);
    return total;
}

/* Compares the whole volume with the reference; returns the first bad offset or -1. */
static long compare_all(struct vol *v)
{
    char *buf = xmalloc(VOL_SIZE);
    long bad = -1;
    if (vol_read(v, buf, 0, VOL_SIZE) != 0)
        bad = 0;
    else
        for (size_t i = 0; i < VOL_SIZE; i++)
            if (buf[i] != ref[i]) {
                bad = (long)i;
                break;
            }
    free(buf);
    return bad;
}

struct counts {
    int ops, writes, reads, trims, flushes, reopens, crashes, read_mismatch, errors;
};

static struct vol *run_model(struct vol *v, uint64_t seed, int nops, const char *fault,
                             struct counts *c)
{
    struct rng r;
    rng_seed(&r, seed);
    char *buf = xmalloc(256 << 10);
    for (int op = 0; op < nops; op++) {
        uint64_t kind = rng_below(&r, 100);
        uint64_t off = rng_below(&r, VOL_SIZE);
        uint64_t len = 1 + rng_below(&r, rng_below(&r, 4) ? 9000 : 200000);
        if (off + len > VOL_SIZE)
            len = VOL_SIZE - off;
        c->ops++;
        if (kind < 45) {
            for (uint64_t i = 0; i < len; i++)
                buf[i] = (char)(low_entropy ? rng_next(&r) % 3 : rng_next(&r));
            if (vol_write(v, buf, off, len, rng_below(&r, 50) == 0))
                c->errors++;
            memcpy(ref + off, buf, len);
            c->writes++;
        } else if (kind < 80) {
            if (vol_read(v, buf, off, len))
                c->errors++;
            else if (memcmp(buf, ref + off, len) != 0)
                c->read_mismatch++;
            c->reads++;
        } else if (kind < 88) {
            if (vol_trim(v, off, len))
                c->errors++;
            memset(ref + off, 0, len);
            c->trims++;
        } else if (kind < 95) {
            if (gc_mode && kind == 94 ? vol_gc(v, 0.9, NULL, NULL) : vol_flush(v))
                c->errors++;
            c->flushes++;
        } else if (kind < 98) {
            if (vol_close(v))
                c->errors++;
            v = open_vol(fault);
            c->reopens++;
        } else {
            vol_abandon(v); /* a crash: nothing flushed, the journal stays */
            v = open_vol(fault);
            c->crashes++;
        }
    }
    free(buf);
    return v;
}

static void test_model(const char *fault, uint64_t seed, int nops)
{
    struct counts c = {0};
    struct vol *v = open_vol(fault);
    uint64_t t0 = clock_mono_ms();
    v = run_model(v, seed, nops, fault, &c);
    uint64_t ms = clock_mono_ms() - t0;
    char name[200];
    snprintf(name, sizeof name, "%s, %s block cache%s", fault ? fault : "no faults",
             cache_bytes == 0 ? "default" : cache_bytes == VOL_NO_CACHE ? "no" : "a 16-block",
             gc_mode ? ", GC running" : "");
    if (low_entropy)
        snprintf(name + strlen(name), sizeof name - strlen(name), ", zstd volume");
    if (passfile)
        snprintf(name + strlen(name), sizeof name - strlen(name), ", encrypted");
    is_int(c.errors, 0, "%s: no operation failed (%d ops)", name, c.ops);
    is_int(c.read_mismatch, 0, "%s: every read matched the reference (%d reads)", name, c.reads);
    is_int(compare_all(v), -1, "%s: the whole volume matches at the end", name);
    diag("%s: %d writes, %d reads, %d trims, %d flushes, %d reopens, %d crashes in %llu ms",
         name, c.writes, c.reads, c.trims, c.flushes, c.reopens, c.crashes,
         (unsigned long long)ms);
    struct vol_stats st;
    vol_get_stats(v, &st);
    diag("  %llu segments, %llu bytes uploaded for %llu written, %llu checkpoints, %llu journal "
         "records replayed, %llu extents in %llu bytes of map",
         (unsigned long long)st.segments_uploaded, (unsigned long long)st.bytes_uploaded,
         (unsigned long long)st.bytes_written, (unsigned long long)st.checkpoints,
         (unsigned long long)st.journal_records_replayed, (unsigned long long)st.extents,
         (unsigned long long)st.map_bytes);
    is_int(vol_close(v), 0, "%s: close succeeds", name);
    v = open_vol(NULL);
    is_int(compare_all(v), -1, "%s: and a clean reopen without faults reads the same", name);
    vol_close(v);
}

/* Overwrites that never pause for a flush: segments are always in flight,
 * so no moment comes with nothing open (rule 3).  Checkpoints must still be
 * written (the engine makes the moment), so that GC deletes what the
 * overwrites emptied and the store stays near the volume's size. */
static void test_checkpoint_under_load(void)
{
    char saved[300];
    snprintf(saved, sizeof saved, "%s", url);
    snprintf(url, sizeof url, "%s-load", saved);
    make_volume(url);
    memset(ref, 0, VOL_SIZE);
    /* a store with latency, as S3 has: an upload is always in flight */
    struct vol *v = open_vol("latency=2,jitter=3,ops=put,seed=5");
    struct rng r;
    rng_seed(&r, 404);
    char *buf = xmalloc(32 << 10);
    int errors = 0;
    for (int i = 0; i < 2000; i++) { /* 62.5 MiB into a 4 MiB volume, no flush */
        for (size_t k = 0; k < (32 << 10); k++)
            buf[k] = (char)rng_next(&r);
        uint64_t off = rng_below(&r, VOL_SIZE / (32 << 10)) * (32 << 10);
        errors += vol_write(v, buf, off, 32 << 10, 0) != 0;
        memcpy(ref + off, buf, 32 << 10);
    }
    struct vol_stats st;
    vol_get_stats(v, &st);
    is_int(errors, 0, "checkpoints under a write load that never pauses: no write failed");
    ok(st.checkpoints >= 10 && st.checkpoints_forced >= 10,
       "  %llu checkpoints were written (%llu by pausing the writes) over %llu segments",
       (unsigned long long)st.checkpoints, (unsigned long long)st.checkpoints_forced,
       (unsigned long long)st.segments_uploaded);
    uint64_t stored = stored_bytes();
    ok(st.segments_deleted > 0 && stored < 3 * (uint64_t)VOL_SIZE,
       "  the emptied segments were deleted on the way: %llu deleted, %llu bytes stored for a "
       "%u byte volume",
       (unsigned long long)st.segments_deleted, (unsigned long long)stored, VOL_SIZE);
    is_int(compare_all(v), -1, "  and the volume reads as written");
    vol_abandon(v); /* a crash: recovery starts from a recent checkpoint */
    v = open_vol(NULL);
    is_int(compare_all(v), -1, "  after a crash it still does");
    vol_close(v);
    free(buf);
    memset(ref, 0, VOL_SIZE);
    snprintf(url, sizeof url, "%s", saved);
}

/* With durability=local, a flush only syncs the journal; the sealer must
 * still upload the segment on its own once it is older than the seal age. */
/* Overwrites fill the store with partly live segments; a GC pass takes it back down to
 * about the live data, and the data is unchanged. */
static void test_gc_reclaims(void)
{
    struct vol *v = open_vol(NULL);
    struct rng r;
    rng_seed(&r, 77);
    char *buf = xmalloc(64 << 10);
    for (int i = 0; i < 1500; i++) { /* 16 KiB writes at random blocks: segments mix */
        uint64_t off = rng_below(&r, VOL_SIZE / 4096 - 4) * 4096;
        for (size_t k = 0; k < (16 << 10); k++)
            buf[k] = (char)rng_next(&r);
        vol_write(v, buf, off, 16 << 10, 0);
        memcpy(ref + off, buf, 16 << 10);
    }
    free(buf);
    struct vol_stats w;
    vol_get_stats(v, &w);
    is_int(vol_close(v), 0, "1500 overwrites of 16 KiB (6 times the volume)");
    uint64_t before = stored_bytes();
    v = open_vol(NULL);
    uint64_t calls = 0;
    is_int(vol_gc(v, 0.9, count_progress, &calls), 0, "buoy gc's pass succeeds");
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(calls > 1 && st.gc_segments_cleaned > 0 && st.segments_deleted > 0,
       "it reported progress %llu times, cleaned %llu segments, deleted %llu",
       (unsigned long long)calls, (unsigned long long)st.gc_segments_cleaned,
       (unsigned long long)st.segments_deleted);
    is_int(compare_all(v), -1, "the data is the same after GC");
    diag("write amplification with a GC pass: %.2f (%llu bytes uploaded, %llu of them GC "
         "copies, for %llu written)",
         (double)(w.bytes_uploaded + st.bytes_uploaded) / (double)w.bytes_written,
         (unsigned long long)(w.bytes_uploaded + st.bytes_uploaded),
         (unsigned long long)st.gc_bytes_copied, (unsigned long long)w.bytes_written);
    is_int(vol_close(v), 0, "close");
    uint64_t after = stored_bytes();
    ok(after * 10 < before * 6 && after < VOL_SIZE * 3 / 2,
       "the store shrank from %llu to %llu bytes (volume %u)", (unsigned long long)before,
       (unsigned long long)after, VOL_SIZE);
    v = open_vol(NULL);
    is_int(compare_all(v), -1, "and after a reopen");
    vol_close(v);
}

/* A zstd volume: the model again (GC running), and the data really shrinks. */
static void test_zstd(int ops)
{
    char saved[300];
    snprintf(saved, sizeof saved, "%s", url);
    snprintf(url, sizeof url, "%s-zstd", saved);
    if (!endpoint)
        snprintf(url, sizeof url, "%s/store-zstd", root);
    voltest_make_c(url, endpoint, VOL_SIZE, 64 << 10, "zstd:5");
    memset(ref, 0, VOL_SIZE);
    low_entropy = 1;
    gc_mode = 1;
    test_model(NULL, 7, ops / 3);
    struct vol *v = open_vol(NULL);
    char *buf = xmalloc(256 << 10);
    for (uint64_t off = 0; off < (1u << 20); off += 256 << 10) { /* 1 MiB that compresses */
        for (size_t i = 0; i < (256 << 10); i++)
            buf[i] = (char)(i % 7);
        vol_write(v, buf, off, 256 << 10, 0);
        memcpy(ref + off, buf, 256 << 10);
    }
    free(buf);
    is_int(vol_flush(v), 0, "zstd: a flush");
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(st.compression_ratio > 2, "zstd: data stored %.1f times smaller (%llu bytes for %llu)",
       st.compression_ratio, (unsigned long long)st.data_bytes_stored,
       (unsigned long long)st.data_bytes_sealed);
    is_int(vol_close(v), 0, "zstd: close");
    v = open_vol(NULL); /* cold: every read unpacks chunks from the store */
    is_int(compare_all(v), -1, "zstd: a cold reopen reads the reference back");
    vol_close(v);
    gc_mode = 0;
    low_entropy = 0;
    snprintf(url, sizeof url, "%s", saved);
}

/* grep's exit status for the 32 bytes at p under dir: 0 found, 1 not. */
static int grep_bytes(const char *dir, const char *p)
{
    char cmd[800], hexs[200] = "";
    for (int i = 0; i < 32; i++)
        snprintf(hexs + strlen(hexs), sizeof hexs - strlen(hexs), "\\x%02x", (uint8_t)p[i]);
    snprintf(cmd, sizeof cmd, "LC_ALL=C grep -rqaP '%s' %s", hexs, dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* An encrypted volume (zstd inside, GC running): the model with reopens
 * and crashes, nothing written readable in the store, and the wrong, a
 * missing or a needless passphrase refused at open. */
static void test_encrypted(int ops)
{
    char saved[300], pf[300], wrong[300], err[512];
    snprintf(saved, sizeof saved, "%s", url);
    snprintf(url, sizeof url, "%s-crypt", saved);
    if (!endpoint)
        snprintf(url, sizeof url, "%s/store-crypt", root);
    snprintf(pf, sizeof pf, "%s/pass", root);
    snprintf(wrong, sizeof wrong, "%s/wrong", root);
    voltest_make_crypt(url, endpoint, VOL_SIZE, 64 << 10, "zstd", pf, "correct horse");
    FILE *f = fopen(wrong, "w");
    fputs("correct horse!\n", f);
    fclose(f);
    memset(ref, 0, VOL_SIZE);
    passfile = pf;
    gc_mode = 1;
    test_model(NULL, 8, ops / 3);
    test_model("err=0.05,latency=1,seed=9", 9, ops / 8);
    gc_mode = 0;
    struct vol *v = open_vol(NULL);
    char *buf = xmalloc(64 << 10);
    for (size_t i = 0; i < (64 << 10); i++)
        buf[i] = (char)("buoy-secret-pattern-"[i % 20] ^ (i / 20 % 251));
    is_int(vol_write(v, buf, 1 << 20, 64 << 10, 0), 0, "encrypted: a distinctive write");
    memcpy(ref + (1 << 20), buf, 64 << 10);
    is_int(vol_close(v), 0, "encrypted: close");
    if (!endpoint) {
        char ctl[400];
        snprintf(ctl, sizeof ctl, "%s/control", root);
        FILE *cf = fopen(ctl, "w");
        fwrite(buf + 40000, 1, 100, cf);
        fclose(cf);
        is_int(grep_bytes(ctl, buf + 40000), 0, "encrypted: (the search finds plain bytes)");
        ok(grep_bytes(url, buf) == 1 && grep_bytes(url, buf + 40000) == 1,
           "encrypted: the written bytes appear nowhere in the store");
    }
    free(buf);
    v = open_vol(NULL);
    is_int(compare_all(v), -1, "encrypted: a cold reopen reads the reference back");
    vol_close(v);

    struct vol_opts o = {.store = {.retries = -1, .endpoint = endpoint}, .read_only = 1,
                         .passphrase_file = wrong};
    ok(!vol_open(url, &o, err, sizeof err) && strstr(err, "wrong passphrase for "),
       "encrypted: a wrong passphrase is refused: %s", err);
    o.passphrase_file = NULL;
    ok(!vol_open(url, &o, err, sizeof err) && strstr(err, "is encrypted: give --passphrase-file"),
       "encrypted: no passphrase is refused: %s", err);
    passfile = NULL;
    snprintf(url, sizeof url, "%s", saved);
    o.passphrase_file = pf;
    ok(!vol_open(url, &o, err, sizeof err) && strstr(err, "is not encrypted"),
       "a passphrase for a plain volume is refused: %s", err);
}

static void test_seal_age(void)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1, .endpoint = endpoint},
                         .cache_dir = cache, .durability_local = 1, .seal_age_ms = 100};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    char blk[8192];
    memset(blk, 0x5c, sizeof blk);
    is_int(vol_write(v, blk, 40960, sizeof blk, 0), 0, "durability=local: a write");
    is_int(vol_flush(v), 0, "durability=local: a flush (journal only)");
    struct vol_stats st;
    for (int i = 0; i < 100; i++) { /* up to 10 s: correctness, not timing */
        vol_get_stats(v, &st);
        if (st.segments_uploaded && !st.pending_bytes)
            break;
        clock_sleep_ms(100);
    }
    ok(st.segments_uploaded >= 1 && st.pending_bytes == 0,
       "the sealer uploaded the open segment without a remote flush (%llu segments, %llu bytes "
       "pending)",
       (unsigned long long)st.segments_uploaded, (unsigned long long)st.pending_bytes);
    ok(st.request_cost > 0, "the request cost is counted ($%.6f)", st.request_cost);
    memcpy(ref + 40960, blk, sizeof blk);
    vol_abandon(v); /* crash: the data must be in the store or the journal */
    v = open_vol(NULL);
    char back[8192];
    ok(vol_read(v, back, 40960, sizeof back) == 0 && memcmp(back, blk, sizeof blk) == 0,
       "after a crash the sealed data is there");
    vol_close(v);
}

static void test_bounds(void)
{
    struct vol *v = open_vol(NULL);
    char b[8];
    is_int(vol_read(v, b, VOL_SIZE - 4, 8), -EINVAL, "a read past the end is refused");
    is_int(vol_write(v, b, VOL_SIZE, 1, 0), -EINVAL, "a write past the end is refused");
    is_int(vol_trim(v, 0, (uint64_t)VOL_SIZE + 1), -EINVAL, "a trim past the end is refused");
    is_int(vol_size(v), VOL_SIZE, "the size is the superblock's");
    vol_close(v);
}

static struct store *raw_store(void)
{
    char err[512];
    struct store *s = store_open(url, NULL, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

/* Writes fresh data over the whole volume in 64 KiB pieces, flushing each:
 * one segment per piece. */
static void fill(struct vol *v, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (uint64_t off = 0; off < VOL_SIZE; off += 64 << 10) {
        for (size_t i = 0; i < 64 << 10; i++)
            ref[off + i] = (char)rng_next(&r);
        vol_write(v, ref + off, off, 64 << 10, 0);
        vol_flush(v);
    }
}

/* Damages every segment with f, then reads everything: must be -EIO. */
static void damage_all(const char *what, void (*f)(struct buf *b, const struct seg_hdr *h))
{
    char err[512];
    struct store *s = raw_store();
    struct store_obj *list;
    size_t n;
    store_list(s, "seg/", &list, &n, err, sizeof err);
    size_t damaged = 0;
    for (size_t i = 0; i < n; i++) {
        struct buf b = {0};
        struct seg_hdr h;
        store_get(s, list[i].key, 0, 0, &b, NULL, err, sizeof err);
        if (seg_parse_object(b.p, b.len, &h, err, sizeof err) == 0) {
            if (h.ndata_blocks) {
                f(&b, &h);
                damaged++;
            }
            seg_hdr_free(&h);
        }
        store_put(s, list[i].key, b.p, b.len, STORE_COND_NONE, NULL, NULL, err, sizeof err);
        buf_free(&b);
    }
    store_list_free(list, n);
    store_close(s);
    ok(damaged > 0, "%s: %zu segments damaged", what, damaged);
    char cmd[400]; /* the cache kept by the clean close would serve the good copies */
    snprintf(cmd, sizeof cmd, "rm -f %s/*/blocks.idx", cache);
    if (system(cmd) != 0)
        bail_out(cmd);
    struct vol *v = open_vol(NULL);
    char *buf = xmalloc(VOL_SIZE);
    is_int(vol_read(v, buf, 0, VOL_SIZE), -EIO,
           "%s: reading is an I/O error, never the damaged bytes", what);
    /* and not a single wrong byte comes back from any block that does read */
    int wrong = 0;
    for (uint64_t off = 0; off < VOL_SIZE; off += 4096)
        if (vol_read(v, buf, off, 4096) == 0 && memcmp(buf, ref + off, 4096) != 0)
            wrong++;
    is_int(wrong, 0, "%s: no block reads back wrong", what);
    free(buf);
    vol_close(v);
}

static void flip_data(struct buf *b, const struct seg_hdr *h)
{
    b->p[h->header_len + 100] ^= 0x40;
}

static void truncate_seg(struct buf *b, const struct seg_hdr *h)
{
    b->len = h->header_len + (b->len - h->header_len) / 2;
}

static void test_corruption(void)
{
    /* a fresh volume of known contents, all in segments */
    snprintf(url, sizeof url, "%s/store-corrupt", root);
    make_volume(url);
    struct vol *v = open_vol(NULL);
    fill(v, 77);
    is_int(vol_close(v), 0, "a volume filled for the corruption tests");
    damage_all("a flipped bit in every segment", flip_data);

    snprintf(url, sizeof url, "%s/store-truncated", root);
    make_volume(url);
    v = open_vol(NULL);
    fill(v, 78);
    vol_close(v);
    damage_all("every segment cut in half", truncate_seg);

    /* a segment missing in the middle, after the last checkpoint */
    snprintf(url, sizeof url, "%s/store-gap", root);
    make_volume(url);
    v = open_vol(NULL);
    fill(v, 79); /* 64 segments, a checkpoint every 4 */
    vol_abandon(v);
    char err[512];
    struct store *s = raw_store();
    struct store_obj *list;
    size_t n;
    store_list(s, "ckpt/", &list, &n, err, sizeof err);
    uint64_t ck = 0;
    uint32_t ep = 0;
    if (n)
        ckpt_key_parse(list[n - 1].key, &ck, &ep);
    /* the journal was removed at each upload: delete a segment after the
     * newest checkpoint (same writer, same epoch), then every checkpoint,
     * so recovery must walk */
    char key[SEG_KEY_SIZE];
    seg_key(ck > 2 ? ck - 2 : 1, ep, key);
    struct store_obj info;
    ok(store_head(s, key, &info, err, sizeof err) == STORE_OK &&
           store_delete(s, key, STORE_COND_NONE, NULL, err, sizeof err) == STORE_OK,
       "segment %s removed", key);
    for (size_t i = 0; i < n; i++)
        store_delete(s, list[i].key, STORE_COND_NONE, NULL, err, sizeof err);
    store_list_free(list, n);
    store_close(s);
    v = open_vol(NULL);
    struct vol_stats st;
    vol_get_stats(v, &st);
    ok(st.segments_ignored > 0, "a missing segment in the middle is detected (%llu later ones "
                                "ignored)",
       (unsigned long long)st.segments_ignored);
    char *buf = xmalloc(VOL_SIZE);
    is_int(vol_read(v, buf, 0, VOL_SIZE), 0, "the volume before the gap reads without error");
    free(buf);
    vol_abandon(v);
}

int main(void)
{
    plan_no_plan();
    log_set_level(LOGL_ERROR); /* the retries of the injected faults are expected */
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(url, sizeof url, "%s/store", root);
    snprintf(cache, sizeof cache, "%s/cache", root);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ref = xcalloc(1, VOL_SIZE);
    endpoint = getenv("VOL_TEST_ENDPOINT");
    const char *bucket = getenv("VOL_TEST_BUCKET");
    int ops = getenv("VOL_TEST_OPS") ? atoi(getenv("VOL_TEST_OPS")) : 3000;
    if (endpoint && bucket)
        snprintf(url, sizeof url, "s3://%s/vol-%d", bucket, (int)getpid());
    else
        endpoint = NULL;
    make_volume(url);
    test_bounds();
    test_seal_age();
    test_model(NULL, 1, ops);
    test_model("err=0.05,latency=1,seed=4", 2, ops * 4 / 15);
    cache_bytes = 16 * 4096; /* a block cache that evicts all the time */
    test_model(NULL, 3, ops / 3);
    cache_bytes = VOL_NO_CACHE;
    test_model(NULL, 4, ops / 3);
    cache_bytes = 0;
    gc_mode = 1;
    test_model(NULL, 5, ops / 2);
    test_model("err=0.05,latency=1,seed=6", 6, ops / 6);
    gc_mode = 0;
    test_gc_reclaims();
    test_checkpoint_under_load();
    test_zstd(ops);
    test_encrypted(ops);
    if (!endpoint)
        test_corruption();
    free(ref);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
