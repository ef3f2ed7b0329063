/* test_vol_lease.c - one writer per volume: the lease and fencing.
 *
 * A second writer is refused, naming the holder; with takeover it waits
 * while the holder renews and gives up; once the holder stops renewing (as
 * one cut off from the store would) it takes over; the fenced writer's
 * writes, flushed or not, never appear, its flush fails once it cannot be
 * sure, its GC deletes nothing, and it stops with EIO when it learns it lost
 * the lease.  A clean close releases the lease for an immediate next open;
 * a crashed writer's own cache dir takes its lease back at once. */
#include "tap.h"
#include "voltest.h"
#include "util/clock.h"
#include "util/mem.h"
#include "vol/vol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOL_SIZE (1u << 20)
#define LEASE_MS 600

static char root[] = "/tmp/buoy-test-vollease-XXXXXX";
static char url[300], cache_a[300], cache_b[300];

static struct vol *open_as(const char *cache, int takeover, int gc, char *err, size_t errlen)
{
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache, .lease_ms = LEASE_MS,
                         .takeover = takeover, .gc = gc, .gc_threshold = 0.95,
                         .gc_min_garbage = 0.01, .gc_interval_ms = 5, .seal_age_ms = 50};
    return vol_open(url, &o, err, errlen);
}

static int block_is(struct vol *v, uint64_t block, char c)
{
    char b[4096], want[4096];
    memset(want, c, sizeof want);
    return vol_read(v, b, block * 4096, sizeof b) == 0 && memcmp(b, want, sizeof b) == 0;
}

static int put_block(struct vol *v, uint64_t block, char c)
{
    char b[4096];
    memset(b, c, sizeof b);
    return vol_write(v, b, block * 4096, sizeof b, 0);
}

int main(void)
{
    char err[512];
    plan_no_plan();
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(url, sizeof url, "%s/store", root);
    snprintf(cache_a, sizeof cache_a, "%s/cache-a", root);
    snprintf(cache_b, sizeof cache_b, "%s/cache-b", root);
    voltest_make(url, NULL, VOL_SIZE, 64 << 10);

    struct vol *a = open_as(cache_a, 0, 1, err, sizeof err);
    if (!a)
        bail_out(err);
    ok(put_block(a, 0, 'a') == 0 && vol_flush(a) == 0, "writer A writes and flushes block 0");

    struct vol *b = open_as(cache_b, 0, 0, err, sizeof err);
    ok(!b && strstr(err, "is in use by ") && strstr(err, "lease epoch") &&
           strstr(err, "--takeover"),
       "writer B is refused, naming the holder: %s", err);

    uint64_t t0 = clock_mono_ms();
    b = open_as(cache_b, 1, 0, err, sizeof err);
    ok(!b && strstr(err, "keeps renewing"), "with takeover, B gives up while A renews: %s", err);

    /* A is cut off from the store's lease: it stops renewing */
    vol_test_pause_lease(a, 1);
    t0 = clock_mono_ms();
    b = open_as(cache_b, 1, 0, err, sizeof err);
    uint64_t took = clock_mono_ms() - t0;
    ok(b != NULL, "then B takes over (after %llu ms)", (unsigned long long)took);
    if (!b)
        bail_out(err);
    diag("takeover of a writer that stopped renewing: %llu ms (lease %d ms)",
         (unsigned long long)took, LEASE_MS);
    ok(block_is(b, 0, 'a'), "B sees what A flushed before");
    ok(put_block(b, 1, 'b') == 0 && vol_flush(b) == 0, "B writes block 1 and flushes");

    /* A, fenced but not knowing it yet, writes; its flush must fail */
    int wrc = put_block(a, 2, 'A');
    for (int i = 0; i < 30; i++) /* overwrites make garbage for A's GC, which must not delete */
        put_block(a, (uint64_t)i % 8, 'x');
    int frc = vol_flush(a);
    ok(frc == -EIO, "A's flush after its lease ran out fails (write %d, flush %d: %s)", wrc, frc,
       vol_error(a));
    vol_test_pause_lease(a, 0);
    clock_sleep_ms(LEASE_MS);
    ok(put_block(a, 3, 'A') == -EIO, "A's writes fail with EIO: %s", vol_error(a));
    vol_close(a);

    ok(block_is(b, 0, 'a') && block_is(b, 1, 'b'), "B's volume is intact after A's attempts");
    is_int(vol_close(b), 0, "B closes cleanly (and releases the lease)");

    /* a fresh reader sees B's writes and none of the fenced A's */
    struct vol_opts ro = {.store = {.retries = -1}, .read_only = 1};
    struct vol *r = vol_open(url, &ro, err, sizeof err);
    ok(r && block_is(r, 0, 'a') && block_is(r, 1, 'b') && block_is(r, 2, 0) &&
           block_is(r, 3, 0),
       "a reader sees B's writes and none of A's after the takeover");
    if (r)
        vol_close(r);

    t0 = clock_mono_ms();
    a = open_as(cache_a, 0, 0, err, sizeof err);
    ok(a != NULL, "after B's clean close A opens at once (%llu ms), no takeover needed",
       (unsigned long long)(clock_mono_ms() - t0));
    ok(a && block_is(a, 1, 'b') && block_is(a, 2, 0), "and sees B's data, not its own fenced writes");
    if (a)
        vol_abandon(a); /* a crash: the lease stays held */
    a = open_as(cache_a, 0, 0, err, sizeof err);
    ok(a != NULL, "a crashed writer's own cache dir takes its lease back at once: %s",
       a ? "" : err);
    if (a)
        vol_close(a);

    /* A writer that does not notice (frozen, wrong clock): fencing alone
     * keeps its uploads out, even those it believes flushed */
    b = open_as(cache_b, 1, 0, err, sizeof err); /* B takes the lease back */
    a = NULL;
    ok(b != NULL, "B holds the volume again");
    if (!b)
        bail_out(err);
    vol_test_pause_lease(b, 2);
    struct vol *c = open_as(cache_a, 1, 0, err, sizeof err);
    ok(c != NULL, "C takes over from a B that stopped renewing and does not know it");
    if (!c)
        bail_out(err);
    ok(put_block(b, 5, 'B') == 0 && vol_flush(b) == 0,
       "the fenced B still writes block 5 and believes it flushed");
    ok(put_block(c, 6, 'c') == 0 && vol_flush(c) == 0, "C writes block 6");
    ok(block_is(c, 5, 0) && block_is(c, 6, 'c'), "C does not see B's write");
    vol_abandon(b);
    is_int(vol_close(c), 0, "C closes");
    r = vol_open(url, &ro, err, sizeof err);
    ok(r && block_is(r, 5, 0) && block_is(r, 6, 'c') && block_is(r, 1, 'b'),
       "after all that, a reader sees C's write and not the fenced B's");
    if (r)
        vol_close(r);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
