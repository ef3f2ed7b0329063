/* test_vol_threads.c - the engine called from many threads at once.
 *
 * Eight threads each own a region of the volume and run random unaligned
 * writes, reads, trims and flushes in it against their own reference, while
 * the store adds latency (so requests really are in flight while other
 * threads run); then the whole volume is compared after a clean reopen.
 * A second part checks that a read waiting on the store does not hold up
 * the other callers: while one thread waits for a cold read that takes a
 * second, another writes and reads back from memory. */
#include "tap.h"
#include "util/log.h"
#include "voltest.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/vol.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 8
#define REGION (512u << 10)
#define VOL_SIZE (NTHREADS * REGION)

static char root[] = "/tmp/buoy-test-volthr-XXXXXX";
static char url[300], cache[300];
static char *ref;
static struct vol *v;

struct worker {
    int id, ops, errors, mismatches;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct rng r;
    rng_seed(&r, 1000 + (uint64_t)w->id);
    uint64_t base = (uint64_t)w->id * REGION;
    char *buf = xmalloc(64 << 10);
    for (int i = 0; i < w->ops; i++) {
        uint64_t off = rng_below(&r, REGION - 1);
        size_t len = 1 + (size_t)rng_below(&r, (64 << 10) - 1);
        if (off + len > REGION)
            len = (size_t)(REGION - off);
        int op = (int)rng_below(&r, 10);
        if (op < 4) {
            for (size_t k = 0; k < len; k++)
                buf[k] = (char)rng_next(&r);
            if (vol_write(v, buf, base + off, len, op == 0) != 0)
                w->errors++;
            memcpy(ref + base + off, buf, len);
        } else if (op < 8) {
            if (vol_read(v, buf, base + off, len) != 0)
                w->errors++;
            else if (memcmp(buf, ref + base + off, len) != 0)
                w->mismatches++;
        } else if (op == 8) {
            if (vol_trim(v, base + off, len) != 0)
                w->errors++;
            memset(ref + base + off, 0, len);
        } else if (vol_flush(v) != 0)
            w->errors++;
    }
    free(buf);
    return NULL;
}

static struct vol *open_vol(const char *fault)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1, .retry_base_ms = 1, .retry_cap_ms = 4,
                                   .fault = fault},
                         .cache_dir = cache, .checkpoint_every = 8, .seal_age_ms = 50};
    struct vol *x = vol_open(url, &o, err, sizeof err);
    if (!x)
        bail_out(err);
    return x;
}

static void test_threads(const char *fault, int ops)
{
    v = open_vol(fault);
    pthread_t t[NTHREADS];
    struct worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.id = i, .ops = ops};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    int errors = 0, mism = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        errors += w[i].errors;
        mism += w[i].mismatches;
    }
    is_int(errors, 0, "%s: %d threads x %d ops, no call failed", fault, NTHREADS, ops);
    is_int(mism, 0, "%s: every read matched its thread's reference", fault);
    is_int(vol_close(v), 0, "%s: close", fault);
    v = open_vol(NULL);
    char *all = xmalloc(VOL_SIZE);
    ok(vol_read(v, all, 0, VOL_SIZE) == 0 && memcmp(all, ref, VOL_SIZE) == 0,
       "%s: after a reopen the whole volume matches", fault);
    free(all);
    vol_close(v);
}

static atomic_int cold_done;

static void *cold_reader(void *arg)
{
    char b[4096];
    int *rc = arg;
    *rc = vol_read(v, b, 0, sizeof b);
    atomic_store(&cold_done, 1);
    return NULL;
}

static void test_no_blocking(void)
{
    /* block 0 is in the store only (cold cache after reopen: the one the
     * last clean close kept is dropped); every GET takes a second */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -f %s/*/blocks.idx", cache);
    if (system(cmd) != 0)
        bail_out(cmd);
    v = open_vol("latency=1000,ops=get");
    pthread_t t;
    int rc = -1;
    atomic_store(&cold_done, 0);
    pthread_create(&t, NULL, cold_reader, &rc);
    usleep(100 * 1000); /* let it start waiting */
    char w[4096], back[4096];
    memset(w, 0x77, sizeof w);
    int wrc = vol_write(v, w, REGION, sizeof w, 0);
    int rrc = vol_read(v, back, REGION, sizeof back);
    int before = !atomic_load(&cold_done);
    pthread_join(t, NULL);
    ok(wrc == 0 && rrc == 0 && memcmp(w, back, sizeof w) == 0, "a write and a read from memory");
    ok(before, "finished while another thread still waited for a cold read");
    is_int(rc, 0, "and the cold read succeeded");
    memcpy(ref + REGION, w, sizeof w);
    vol_close(v);
}

int main(void)
{
    plan_no_plan();
    log_set_level(LOGL_ERROR); /* the retries of the injected faults are expected */
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(url, sizeof url, "%s/store", root);
    snprintf(cache, sizeof cache, "%s/cache", root);
    ref = xcalloc(1, VOL_SIZE);
    voltest_make(url, NULL, VOL_SIZE, 256 << 10);
    test_threads("latency=2,jitter=3,seed=1", 300);
    test_threads("err=0.05,latency=1,seed=2", 200);
    test_no_blocking();
    free(ref);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
