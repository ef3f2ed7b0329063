/* test_vol_crash.c - crash the volume writer for real and check recovery.
 *
 * Each trial forks a child that opens the volume and runs a deterministic
 * stream of operations (unaligned writes, trims, flushes); after each one
 * returns, it reports "op i acknowledged" (and "flushed") through a pipe.
 * The parent kills the child with SIGKILL at a random moment, or the child
 * dies by itself at a crash point of the fault store
 * (crash_after_puts=N,crash=exit).  The parent then opens the volume,
 * reads all of it, and checks docs/FORMAT.md's promise:
 *
 *   the volume equals the state after some prefix of the acknowledged
 *   operations, and that prefix contains every operation acknowledged
 *   before the last completed flush; the one write in flight at the crash
 *   may be partly applied, each block wholly old or wholly new.
 *
 * A kill leaves the page cache alone, so this tests ordering and the
 * journal/upload/checkpoint protocol, not power loss (test_journal covers
 * torn and damaged journals).  A third series gives the writer's store
 * 1-40 ms of random latency per PUT, so several uploads are in flight and
 * finish out of order when the kill comes.  TRIALS (environment) sets the
 * number of kill trials; make check runs 200, then 50 of each other kind:
 * crash points, uploads out of order, kill -9 and crash points while GC
 * copies and deletes, a zstd volume, an encrypted zstd volume, writes that
 * never flush (the checkpoints come from pausing them, GC deletes behind
 * them), and a clone (its base's segments shared, GC running: the clone's
 * crashes and GC never touch its base). */
#include "store/store.h"
#include "tap.h"
#include "voltest.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/super.h"
#include "vol/vol.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VOL_SIZE (2u << 20)
#define MAX_OPS 100000

static char root[] = "/tmp/buoy-test-crash-XXXXXX";
static char url[300], cache[300];
static int gc_mode; /* the writer runs the cleaner all the time, and vol_gc every 16 ops */
static const char *compression = "none"; /* of the volumes series() makes */
static int clone_mode; /* series() crashes a clone of a snapshot (buoy clone), not a new volume */
static int no_flush;   /* the stream never flushes: checkpoints come from pausing the writes */
static char base_url[320];
static const char *passfile;              /* set: series() makes encrypted volumes */

struct op {
    int kind; /* 0 write, 1 trim, 2 flush */
    uint64_t off, len;
};

/* Operation i of a stream: the same in the child and the parent. */
static void gen_op(uint64_t seed, uint64_t i, struct op *o, char *data)
{
    struct rng r;
    rng_seed(&r, seed * 1000003 + i);
    uint64_t k = rng_below(&r, 100);
    o->kind = k < 75 ? 0 : k < 85 ? 1 : no_flush ? 0 : 2;
    o->off = rng_below(&r, VOL_SIZE);
    o->len = 1 + rng_below(&r, rng_below(&r, 4) ? 6000 : 70000);
    if (o->off + o->len > VOL_SIZE)
        o->len = VOL_SIZE - o->off;
    if (o->kind == 0 && data)
        for (uint64_t b = 0; b < o->len; b++)
            data[b] = (char)rng_next(&r);
}

static void apply(char *ref, const struct op *o, const char *data)
{
    if (o->kind == 0)
        memcpy(ref + o->off, data, o->len);
    else if (o->kind == 1)
        memset(ref + o->off, 0, o->len);
}

static struct vol *open_vol(const char *fault, char *err, size_t errlen)
{
    struct vol_opts o = {.store = {.retries = -1, .retry_base_ms = 1, .retry_cap_ms = 4,
                                   .fault = fault},
                         .cache_dir = cache,
                         .checkpoint_every = 3,
                         .gc = gc_mode,
                         .gc_threshold = 0.95,
                         .gc_min_garbage = 0.01,
                         .gc_rate = 1ull << 40,
                         .gc_interval_ms = 2,
                         .passphrase_file = passfile};
    return vol_open(url, &o, err, errlen);
}

/* The child: run ops from start, reporting each acknowledgement. */
static void child(int fd, uint64_t seed, uint64_t start, const char *fault)
{
    char err[512];
    log_set_level(LOGL_ERROR); /* the crash points are expected: no warnings */
    struct vol *v = open_vol(fault, err, sizeof err);
    if (!v)
        _exit(3);
    char *data = xmalloc(70000);
    for (uint64_t i = start; i < MAX_OPS; i++) {
        struct op o;
        gen_op(seed, i, &o, data);
        int rc = o.kind == 0   ? vol_write(v, data, o.off, o.len, 0)
                 : o.kind == 1 ? vol_trim(v, o.off, o.len)
                               : vol_flush(v);
        if (!rc && gc_mode && !no_flush && i % 16 == 15) /* vol_gc flushes */
            rc = vol_gc(v, 0.95, NULL, NULL);
        if (rc)
            _exit(4); /* a crash point makes every request fail: stop like a crash */
        uint64_t msg[2] = {i, (uint64_t)(o.kind == 2)};
        if (write(fd, msg, sizeof msg) != (ssize_t)sizeof msg)
            _exit(5);
    }
    _exit(0);
}

struct trial {
    int ok, prefix, opened, torn;
    uint64_t out_of_order; /* segments found past a replayed journal */
    uint64_t acked, flushed, matched;
};

/* Runs one trial from op start; returns what recovery gave. */
static struct trial run_trial(uint64_t seed, uint64_t start, const char *fault, int kill_ms,
                              char *ref, uint64_t *next_start, char *why, size_t whylen)
{
    struct trial t = {0};
    int p[2];
    if (pipe(p) < 0)
        bail_out("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child(p[1], seed, start, fault);
    }
    close(p[1]);
    if (kill_ms >= 0) {
        struct timespec ts = {kill_ms / 1000, (kill_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    /* read every acknowledgement the child made */
    uint64_t msg[2];
    int any = 0;
    t.flushed = start; /* everything before start is known durable (previous trial's check) */
    while (read(p[0], msg, sizeof msg) == (ssize_t)sizeof msg) {
        t.acked = msg[0];
        any = 1;
        if (msg[1])
            t.flushed = msg[0] + 1;
    }
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    uint64_t acked_end = any ? t.acked + 1 : start; /* ops [start, acked_end) acknowledged */

    /* recover and read everything */
    char err[512];
    struct vol *v = open_vol(NULL, err, sizeof err);
    if (!v) {
        snprintf(why, whylen, "open after the crash failed: %s", err);
        return t;
    }
    t.opened = 1;
    struct vol_stats vs;
    vol_get_stats(v, &vs);
    t.out_of_order = vs.segments_after_replay;
    char *got = xmalloc(VOL_SIZE);
    if (vol_read(v, got, 0, VOL_SIZE)) {
        snprintf(why, whylen, "read after the crash failed: %s", vol_error(v));
        free(got);
        vol_close(v);
        return t;
    }
    /* Find k in [start, acked_end] with got == the state after ops [.., k).
     * The write in flight at the crash (op acked_end) was not acknowledged:
     * like a disk, it may be partly applied, each block old or new. */
    char *data = xmalloc(70000);
    int found = 0, torn = 0;
    uint64_t k = start;
    /* States can repeat (a flush changes nothing): take the latest match. */
    for (uint64_t i = start;; i++) {
        if (memcmp(got, ref, VOL_SIZE) == 0) {
            found = 1;
            k = i;
        }
        if (i == acked_end)
            break;
        struct op o;
        gen_op(seed, i, &o, data);
        apply(ref, &o, data);
    }
    if (found)
        memcpy(ref, got, VOL_SIZE); /* ref continues from the state found */
    else {
        /* ref is the state after every acknowledged op: try the torn case */
        struct op o;
        gen_op(seed, acked_end, &o, data);
        char *next = xmalloc(VOL_SIZE);
        memcpy(next, ref, VOL_SIZE);
        apply(next, &o, data);
        int blocks_ok = 1;
        for (uint64_t b = 0; b < VOL_SIZE && blocks_ok; b += 4096)
            blocks_ok = memcmp(got + b, ref + b, 4096) == 0 || memcmp(got + b, next + b, 4096) == 0;
        if (blocks_ok) {
            found = torn = 1;
            memcpy(ref, got, VOL_SIZE);
            k = acked_end + 1; /* the torn op is done with */
        } else {
            uint64_t first = VOL_SIZE, last = 0, nbad = 0;
            for (uint64_t b = 0; b < VOL_SIZE; b++)
                if (got[b] != ref[b] && got[b] != next[b]) {
                    first = b < first ? b : first;
                    last = b;
                    nbad++;
                }
            snprintf(why, whylen,
                     "the volume is no prefix of ops %llu..%llu: %llu bytes in %llu..%llu are "
                     "neither the acknowledged state nor the write in flight (%llu+%llu)",
                     (unsigned long long)start, (unsigned long long)acked_end,
                     (unsigned long long)nbad, (unsigned long long)first,
                     (unsigned long long)last, (unsigned long long)o.off,
                     (unsigned long long)o.len);
        }
        free(next);
    }
    t.matched = k;
    t.prefix = found;
    t.torn = torn;
    t.ok = found && k >= t.flushed;
    if (found && k < t.flushed)
        snprintf(why, whylen, "prefix %llu lacks ops flushed up to %llu", (unsigned long long)k,
                 (unsigned long long)t.flushed);
    /* ref now holds the state after k ops; continue from there */
    *next_start = k;
    free(data);
    free(got);
    if (vol_close(v))
        snprintf(why, whylen, "close after recovery failed");
    return t;
}

/* The volume series() crashes, its content in ref.  A clone: the base is
 * filled, snapshotted, then overwritten (so the snapshot alone keeps the
 * clone's data), and cloned. */
static void make_volume(char *ref)
{
    if (!clone_mode) {
        if (passfile)
            voltest_make_crypt(url, NULL, VOL_SIZE, 32 << 10, compression, passfile,
                               "crash test");
        else
            voltest_make_c(url, NULL, VOL_SIZE, 32 << 10, compression);
        return;
    }
    char err[512], src[400];
    snprintf(base_url, sizeof base_url, "%s-base", url);
    voltest_make_c(base_url, NULL, VOL_SIZE, 32 << 10, compression);
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache};
    struct vol *v = vol_open(base_url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    struct rng r;
    rng_seed(&r, 99);
    for (uint64_t i = 0; i < VOL_SIZE; i++)
        ref[i] = (char)rng_next(&r);
    char *later = xmalloc(VOL_SIZE);
    for (uint64_t i = 0; i < VOL_SIZE; i++)
        later[i] = (char)rng_next(&r);
    if (vol_write(v, ref, 0, VOL_SIZE, 0) || vol_snapshot(v, "base", err, sizeof err) ||
        vol_write(v, later, 0, VOL_SIZE, 0) || vol_close(v))
        bail_out("filling the clone's base failed");
    free(later);
    snprintf(src, sizeof src, "%s@base", base_url);
    struct vol_clone_info ci;
    if (vol_clone(src, url, &o, &ci, err, sizeof err))
        bail_out(err);
}

/* A clone series' end: the base still reads as the snapshot was, and none
 * of its segments went missing. */
static void check_base(const char *name)
{
    char err[512], src[400];
    struct rng r;
    rng_seed(&r, 99);
    char *want = xmalloc(VOL_SIZE), *got = xmalloc(VOL_SIZE);
    for (uint64_t i = 0; i < VOL_SIZE; i++)
        want[i] = (char)rng_next(&r);
    snprintf(src, sizeof src, "%s@base", base_url);
    struct vol_opts o = {.store = {.retries = -1}, .read_only = 1};
    struct vol *v = vol_open(src, &o, err, sizeof err);
    ok(v && vol_read(v, got, 0, VOL_SIZE) == 0 && memcmp(got, want, VOL_SIZE) == 0,
       "%s: the base's snapshot still reads as it was taken", name);
    if (v)
        vol_close(v);
    free(want);
    free(got);
}

static void series(const char *name, int trials, uint64_t seed, int use_crash_points,
                   const char *latency)
{
    char *ref = xcalloc(1, VOL_SIZE);
    struct rng r;
    rng_seed(&r, seed);
    uint64_t start = 0;
    int good = 0, opened = 0, torn = 0;
    uint64_t out_of_order = 0;
    uint64_t total_acked = 0, max_gap = 0;
    char why[512] = "";
    make_volume(ref);
    for (int t = 0; t < trials; t++) {
        char fault[96];
        int kill_ms = (int)rng_below(&r, 120);
        const char *f = NULL;
        if (latency) { /* uploads overlap and finish out of order */
            snprintf(fault, sizeof fault, "%s,seed=%d", latency, t + 1);
            f = fault;
            kill_ms = (int)rng_below(&r, 400);
        }
        if (use_crash_points) {
            snprintf(fault, sizeof fault, "crash_after_puts=%llu,crash=exit",
                     (unsigned long long)(1 + rng_below(&r, 12)));
            f = fault;
            kill_ms = 2000 + (int)rng_below(&r, 100); /* a backstop; the crash point comes first */
        }
        uint64_t next = start;
        char w[512] = "";
        struct trial tr = run_trial(seed, start, f, kill_ms, ref, &next, w, sizeof w);
        good += tr.ok;
        opened += tr.opened;
        torn += tr.torn;
        out_of_order += tr.out_of_order;
        if (!tr.ok && !why[0])
            snprintf(why, sizeof why, "trial %d: %s", t, w);
        if (!tr.ok)
            break; /* the reference no longer follows the volume */
        total_acked += tr.acked >= start ? tr.acked + 1 - start : 0;
        if (tr.matched > tr.flushed && tr.matched - tr.flushed > max_gap)
            max_gap = tr.matched - tr.flushed;
        start = next;
    }
    is_int(opened, trials, "%s: the volume opened after every crash", name);
    is_int(good, trials, "%s: after each of %d crashes the volume is a prefix holding every "
                         "flushed write%s%s",
           name, trials, why[0] ? ": " : "", why);
    if (gc_mode) {
        /* after one more pass, the store holds only segments with live data
         * (and the volume still reads as the reference says) */
        char err[512];
        struct vol *v = open_vol(NULL, err, sizeof err);
        struct vol_info in = {0};
        char *got = xmalloc(VOL_SIZE);
        int same = v && vol_gc(v, 0.95, NULL, NULL) == 0 && vol_read(v, got, 0, VOL_SIZE) == 0 &&
                   memcmp(got, ref, VOL_SIZE) == 0;
        free(got);
        if (v) {
            vol_get_info(v, &in);
            vol_close(v);
        }
        ok(same, "%s: a last GC pass changes no data", name);
        struct store *st = store_open(url, NULL, err, sizeof err);
        struct store_obj *list = NULL;
        size_t n = 0;
        if (st && store_list(st, "seg/", &list, &n, err, sizeof err) == STORE_OK)
            ok(n <= in.live_segments + 1,
               "%s: %zu segment objects left of %llu written, %llu holding live data", name, n,
               (unsigned long long)in.next_seq - 1, (unsigned long long)in.live_segments);
        else
            ok(0, "%s: count the segments: %s", name, err);
        store_list_free(list, n);
        if (st)
            store_close(st);
    }
    diag("%s: %llu operations acknowledged in all; at most %llu unflushed ones survived a "
         "crash; %d crashes left the write in flight partly applied; %llu segments were "
         "durable past a lost one and recovered through its journal",
         name, (unsigned long long)total_acked, (unsigned long long)max_gap, torn,
         (unsigned long long)out_of_order);
    if (clone_mode)
        check_base(name);
    free(ref);
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    const char *env = getenv("TRIALS");
    int trials = env ? atoi(env) : 200;
    snprintf(url, sizeof url, "%s/store-kill", root);
    snprintf(cache, sizeof cache, "%s/cache", root);
    series("kill -9", trials, 11, 0, NULL);
    snprintf(url, sizeof url, "%s/store-points", root);
    series("crash_after_puts", trials / 4 > 0 ? trials / 4 : 1, 12, 1, NULL);
    snprintf(url, sizeof url, "%s/store-latency", root);
    series("kill -9, uploads out of order", trials / 4 > 0 ? trials / 4 : 1, 13, 0,
           "latency=1,jitter=40,ops=put");
    gc_mode = 1; /* the same with garbage collection copying and deleting throughout */
    snprintf(url, sizeof url, "%s/store-gc-kill", root);
    series("kill -9 during GC", trials / 4 > 0 ? trials / 4 : 1, 14, 0,
           "latency=1,jitter=20,ops=put+get");
    snprintf(url, sizeof url, "%s/store-gc-points", root);
    series("crash_after_puts during GC", trials / 4 > 0 ? trials / 4 : 1, 15, 1, NULL);
    gc_mode = 0;
    compression = "zstd"; /* packed segments: the same promise */
    snprintf(url, sizeof url, "%s/store-zstd", root);
    series("kill -9, zstd volume", trials / 4 > 0 ? trials / 4 : 1, 16, 0,
           "latency=1,jitter=20,ops=put");
    char pf[400];
    snprintf(pf, sizeof pf, "%s/pass", root);
    passfile = pf; /* encrypted (and packed): every upload goes through the crypt layer */
    snprintf(url, sizeof url, "%s/store-crypt", root);
    series("kill -9, encrypted volume", trials / 4 > 0 ? trials / 4 : 1, 17, 0,
           "latency=1,jitter=20,ops=put");
    snprintf(url, sizeof url, "%s/store-crypt-points", root);
    series("crash_after_puts, encrypted volume", trials / 8 > 0 ? trials / 8 : 1, 18, 1, NULL);
    passfile = NULL;
    compression = "none";
    no_flush = gc_mode = 1; /* no flush, slow uploads: only overdue checkpoints, GC deletes */
    snprintf(url, sizeof url, "%s/store-noflush", root);
    series("kill -9, writes that never pause for a flush", trials / 4 > 0 ? trials / 4 : 1, 20, 0,
           "latency=2,jitter=10,ops=put");
    no_flush = 0;
    clone_mode = gc_mode = 1; /* a clone with its GC running: its base is never touched */
    snprintf(url, sizeof url, "%s/store-clone", root);
    series("kill -9, a clone during GC", trials / 4 > 0 ? trials / 4 : 1, 19, 0,
           "latency=1,jitter=20,ops=put+get");
    clone_mode = gc_mode = 0;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
