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
#include "util/clock.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/seg.h"
#include "vol/super.h"
#include "vol/vol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VOL_SIZE (4u << 20)

static char root[] = "/tmp/buoy-test-vol-XXXXXX";
static char url[300], cache[300];
static char *ref;

static void make_volume(const char *u)
{
    char err[512];
    struct store *s = store_open(u, NULL, err, sizeof err);
    if (!s)
        bail_out(err);
    struct vol_super sb = {.version = 1, .size = VOL_SIZE, .block_size = 4096,
                           .segment_size = 64 << 10, .compression = "none",
                           .created = time(NULL)};
    super_new_uuid(sb.uuid);
    struct buf b = {0};
    super_encode(&sb, &b);
    if (store_put(s, SUPER_KEY, b.p, b.len, STORE_IF_NONE_MATCH, NULL, NULL, err, sizeof err))
        bail_out(err);
    buf_free(&b);
    store_close(s);
}

static struct vol *open_vol(const char *fault)
{
    char err[512];
    struct vol_opts o = {.store = {.retries = -1, .retry_base_ms = 1, .retry_cap_ms = 4,
                                   .fault = fault},
                         .cache_dir = cache,
                         .checkpoint_every = 4};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    return v;
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
                buf[i] = (char)rng_next(&r);
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
            if (vol_flush(v))
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
    const char *name = fault ? fault : "no faults";
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

static void test_corruption(void)
{
    char err[512], seg_url[300];
    snprintf(seg_url, sizeof seg_url, "%s", url);
    struct store *s = store_open(seg_url, NULL, err, sizeof err);
    struct store_obj *list;
    size_t n;
    store_list(s, "seg/", &list, &n, err, sizeof err);
    ok(n > 0, "there are segments to damage (%zu)", n);
    /* flip one byte in the data region of every segment */
    for (size_t i = 0; i < n; i++) {
        struct buf b = {0};
        struct seg_hdr h;
        store_get(s, list[i].key, 0, 0, &b, NULL, err, sizeof err);
        if (seg_parse_object(b.p, b.len, &h, err, sizeof err) == 0) {
            if (h.ndata_blocks)
                b.p[h.header_len + 100] ^= 0x40;
            seg_hdr_free(&h);
        }
        store_put(s, list[i].key, b.p, b.len, STORE_COND_NONE, NULL, NULL, err, sizeof err);
        buf_free(&b);
    }
    store_list_free(list, n);
    store_close(s);
    struct vol *v = open_vol(NULL);
    char *buf = xmalloc(VOL_SIZE);
    int rc = vol_read(v, buf, 0, VOL_SIZE);
    is_int(rc, -EIO, "reading damaged data is an I/O error, never the damaged bytes");
    free(buf);
    vol_close(v);
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(url, sizeof url, "%s/store", root);
    snprintf(cache, sizeof cache, "%s/cache", root);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ref = xcalloc(1, VOL_SIZE);
    make_volume(url);
    test_bounds();
    test_model(NULL, 1, 3000);
    test_model("err=0.05,latency=1,seed=4", 2, 800);
    test_corruption();
    free(ref);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
