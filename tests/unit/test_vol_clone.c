/* test_vol_clone.c - clones (buoy clone) against in-memory references.
 *
 * A parent volume is filled and snapshotted; a clone is made from the
 * snapshot; then both are overwritten at random, each with GC passes,
 * reopens and crashes, and every read is compared with its own reference:
 * the parent's, the clone's, and the snapshot's, which must never change.
 * Then a clone of the clone, the records that keep a snapshot while clones
 * read it (snapshot delete refused, stale records removed), the parent's
 * store shrinking once the snapshot is gone, and the errors: no such
 * snapshot, a volume already there, a base that is gone or replaced. */
#include "store/store.h"
#include "tap.h"
#include "voltest.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/super.h"
#include "vol/vol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VOL_SIZE (4u << 20)

static char root[] = "/tmp/buoy-test-clone-XXXXXX";
static char cache[300];

struct side {
    char url[400];
    char *ref;
    struct vol *v;
};

static struct vol *open_url(const char *url, int read_only)
{
    char err[600];
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache, .read_only = read_only,
                         .checkpoint_every = 3, .gc = !read_only, .gc_threshold = 0.9,
                         .gc_min_garbage = 0.01, .gc_rate = 1ull << 40, .gc_interval_ms = 3};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v)
        bail_out(err);
    return v;
}

static const struct vol_opts plain = {.store = {.retries = -1}};

static long compare(struct vol *v, const char *ref)
{
    char *buf = xmalloc(VOL_SIZE);
    long bad = -1;
    if (vol_read(v, buf, 0, VOL_SIZE) != 0)
        bad = 0;
    else
        for (size_t i = 0; i < VOL_SIZE && bad < 0; i++)
            if (buf[i] != ref[i])
                bad = (long)i;
    free(buf);
    return bad;
}

static size_t count_segs(const char *url)
{
    char err[512];
    struct store *s = store_open(url, NULL, err, sizeof err);
    struct store_obj *l;
    size_t n;
    if (!s || store_list(s, "seg/", &l, &n, err, sizeof err))
        bail_out(err);
    store_list_free(l, n);
    store_close(s);
    return n;
}

/* n random operations on one side: writes, trims, GC, reopens, crashes. */
static int churn(struct side *s, struct rng *r, int n)
{
    char *buf = xmalloc(128 << 10);
    int errors = 0;
    for (int i = 0; i < n; i++) {
        uint64_t k = rng_below(r, 100), off = rng_below(r, VOL_SIZE);
        uint64_t len = 1 + rng_below(r, rng_below(r, 4) ? 9000 : 120000);
        if (off + len > VOL_SIZE)
            len = VOL_SIZE - off;
        if (k < 60) {
            for (uint64_t b = 0; b < len; b++)
                buf[b] = (char)rng_next(r);
            errors += vol_write(s->v, buf, off, len, 0) != 0;
            memcpy(s->ref + off, buf, len);
        } else if (k < 80) {
            errors += vol_read(s->v, buf, off, len) != 0 || memcmp(buf, s->ref + off, len) != 0;
        } else if (k < 86) {
            errors += vol_trim(s->v, off, len) != 0;
            memset(s->ref + off, 0, len);
        } else if (k < 93) {
            errors += vol_gc(s->v, 0.9, NULL, NULL) != 0;
        } else if (k < 97) {
            errors += vol_close(s->v) != 0;
            s->v = open_url(s->url, 0);
        } else {
            vol_abandon(s->v); /* a crash: the journal replays at open */
            s->v = open_url(s->url, 0);
        }
    }
    free(buf);
    return errors;
}

static char *snap_ref(const char *ref)
{
    char *c = xmalloc(VOL_SIZE);
    memcpy(c, ref, VOL_SIZE);
    return c;
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(root))
        bail_out("mkdtemp");
    snprintf(cache, sizeof cache, "%s/cache", root);
    char err[600], src[500];
    struct rng r;
    rng_seed(&r, 2026);

    struct side p = {.ref = xcalloc(1, VOL_SIZE)}, c = {0}, g = {0};
    snprintf(p.url, sizeof p.url, "%s/parent", root);
    snprintf(c.url, sizeof c.url, "%s/clone", root);
    snprintf(g.url, sizeof g.url, "%s/grandclone", root);
    voltest_make(p.url, NULL, VOL_SIZE, 64 << 10);
    p.v = open_url(p.url, 0);
    is_int(churn(&p, &r, 300), 0, "parent: 300 operations before the snapshot");
    is_int(vol_snapshot(p.v, "s1", err, sizeof err), 0, "parent: snapshot s1");
    char *s1 = snap_ref(p.ref);

    /* errors first */
    struct vol_clone_info ci;
    is_int(vol_clone(p.url, c.url, &plain, &ci, err, sizeof err), -EINVAL,
           "clone of a URL without @NAME is refused");
    snprintf(src, sizeof src, "%s@nope", p.url);
    ok(vol_clone(src, c.url, &plain, &ci, err, sizeof err) < 0 && strstr(err, "no snapshot named nope"),
       "clone of a missing snapshot: %s", err);
    is_int(count_segs(c.url), 0, "  and it leaves nothing behind");
    snprintf(src, sizeof src, "%s@s1", p.url);
    is_int(vol_clone(src, p.url, &plain, &ci, err, sizeof err), -EEXIST,
           "clone onto an existing volume is refused");

    size_t parent_segs = count_segs(p.url);
    is_int(vol_clone(src, c.url, &plain, &ci, err, sizeof err), 0, "clone of parent@s1");
    diag("the clone shares %llu segments, %llu bytes", (unsigned long long)ci.segments,
         (unsigned long long)ci.bytes);
    is_int(count_segs(c.url), 0, "the clone copied no segment");
    c.ref = snap_ref(s1);
    c.v = open_url(c.url, 0);
    is_int(compare(c.v, c.ref), -1, "the new clone reads as the snapshot");
    struct vol_info in;
    vol_get_info(c.v, &in);
    ok(strstr(in.base, "@s1") != NULL && in.base_segments > 0, "info names the base: %s, %llu segments",
       in.base, (unsigned long long)in.base_segments);

    /* both diverge, each with GC, reopens and crashes */
    int errs = 0;
    for (int round = 0; round < 6; round++) {
        errs += churn(&p, &r, 150);
        errs += churn(&c, &r, 150);
    }
    is_int(errs, 0, "parent and clone: 1,800 operations each way, every read as its reference");
    is_int(compare(p.v, p.ref), -1, "the parent reads as its reference");
    is_int(compare(c.v, c.ref), -1, "the clone reads as its reference");
    ok(memcmp(p.ref, c.ref, VOL_SIZE) != 0, "  and the two differ");
    struct vol *sv = open_url(src, 1);
    is_int(compare(sv, s1), -1, "parent@s1 still reads as it was taken, after GC on both sides");
    vol_close(sv);

    /* a clone of the clone */
    is_int(vol_snapshot(c.v, "c1", err, sizeof err), 0, "clone: snapshot c1");
    char *c1 = snap_ref(c.ref);
    snprintf(src, sizeof src, "%s@c1", c.url);
    is_int(vol_clone(src, g.url, &plain, &ci, err, sizeof err), 0, "a clone of the clone");
    g.ref = snap_ref(c1);
    g.v = open_url(g.url, 0);
    is_int(compare(g.v, g.ref), -1, "the clone of the clone reads as c1");
    errs = churn(&g, &r, 300) + churn(&c, &r, 200) + churn(&p, &r, 200);
    is_int(errs, 0, "all three diverge");
    is_int(compare(g.v, g.ref), -1, "grandclone reads as its reference");
    is_int(compare(c.v, c.ref), -1, "clone reads as its reference");
    is_int(compare(p.v, p.ref), -1, "parent reads as its reference");
    vol_close(g.v);
    vol_close(c.v);
    vol_close(p.v);

    /* the records that keep snapshots alive */
    is_int(vol_snapshot_delete(p.url, "s1", &plain, err, sizeof err), -EBUSY,
           "deleting s1 while a clone reads it is refused");
    ok(strstr(err, c.url) != NULL, "  naming the clone: %s", err);
    is_int(vol_snapshot_delete(c.url, "c1", &plain, err, sizeof err), -EBUSY,
           "and so is deleting c1");
    sv = open_url(src, 1);
    is_int(compare(sv, c1), -1, "clone@c1 still reads as it was taken");
    vol_close(sv);
    /* the grandclone goes away (its objects removed): its record is stale */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.url);
    if (system(cmd) != 0)
        bail_out("rm");
    is_int(vol_snapshot_delete(c.url, "c1", &plain, err, sizeof err), 0,
           "once the clone of the clone is gone, c1 can be deleted");
    /* a base replaced by another volume is refused, not read */
    snprintf(cmd, sizeof cmd, "mv '%s' '%s.away'", p.url, p.url);
    if (system(cmd) != 0)
        bail_out("mv");
    voltest_make(p.url, NULL, VOL_SIZE, 64 << 10);
    struct vol_opts o = {.store = {.retries = -1}, .cache_dir = cache};
    ok(vol_open(c.url, &o, err, sizeof err) == NULL && strstr(err, "another volume"),
       "a clone whose base was replaced does not open: %s", err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mv '%s.away' '%s'", p.url, p.url, p.url);
    if (system(cmd) != 0)
        bail_out("mv back");
    c.v = open_url(c.url, 0);
    is_int(compare(c.v, c.ref), -1, "with its base back, the clone reads as before");
    vol_close(c.v);

    /* the clone goes: s1 can be deleted, and the parent's GC frees its data */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c.url);
    if (system(cmd) != 0)
        bail_out("rm");
    size_t before = count_segs(p.url);
    is_int(vol_snapshot_delete(p.url, "s1", &plain, err, sizeof err), 0,
           "with the clone gone, s1 is deleted");
    p.v = open_url(p.url, 0);
    is_int(vol_gc(p.v, 0.99, NULL, NULL), 0, "GC of the parent");
    is_int(compare(p.v, p.ref), -1, "the parent reads as its reference");
    vol_close(p.v);
    size_t after = count_segs(p.url);
    ok(after < before, "the parent's store shrank from %zu to %zu segments (%zu at the clone)",
       before, after, parent_segs);

    free(p.ref);
    free(c.ref);
    free(g.ref);
    free(s1);
    free(c1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        diag("could not remove %s", root);
    return done_testing();
}
