/* test_vol_local.c - the engine's local state taken away under it (rule 10
 * of vol.c): the cache dir removed or replaced while the volume is open.
 *
 * Checks that the loss is an error at once (no flush succeeds into a
 * journal nobody would replay), that what was written and only in memory
 * is uploaded, that what the engine says is not in the store is exactly
 * what a reopen is missing, with the store failing too (the fault store),
 * and that a store failure alone leaves it all to the journal.  Every
 * reopen compares the whole volume with a reference. */
#include "store/store.h"
#include "tap.h"
#include "voltest.h"
#include "util/mem.h"
#include "util/rng.h"
#include "vol/journal.h"
#include "vol/vol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VOL_SIZE (8u << 20)
#define CHUNK    (256u << 10)

static char root[] = "/tmp/buoy-test-vollocal-XXXXXX";
static char url[300], cache[300];
static char *ref;
static int nvol;

static void new_volume(void)
{
    snprintf(url, sizeof url, "%s/store%d", root, ++nvol);
    voltest_make(url, NULL, VOL_SIZE, 1 << 20);
    memset(ref, 0, VOL_SIZE);
}

static struct vol *open_vol(const char *fault, int local)
{
    char err[512];
    /* a seal age far away: what is written stays in memory until a flush */
    struct vol_opts o = {.store = {.retries = -1, .fault = fault},
                         .cache_dir = cache,
                         .seal_age_ms = 600000,
                         .durability_local = local};
    struct vol *v = vol_open(url, &o, err, sizeof err);
    if (!v) bail_out(err);
    return v;
}

static void pattern(char *p, size_t len, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)rng_next(&r);
}

/* Writes [off, off + CHUNK); on success the reference takes it. */
static int put(struct vol *v, uint64_t off, uint64_t seed)
{
    char *b = xmalloc(CHUNK);
    pattern(b, CHUNK, seed);
    int rc = vol_write(v, b, off, CHUNK, 0);
    if (rc == 0) memcpy(ref + off, b, CHUNK);
    free(b);
    return rc;
}

/* 1 when [off, off + CHUNK) holds what seed made. */
static int holds(uint64_t off, uint64_t seed)
{
    char *b = xmalloc(CHUNK);
    pattern(b, CHUNK, seed);
    int same = memcmp(ref + off, b, CHUNK) == 0;
    free(b);
    return same;
}

/* Reopens (no fault) and compares the whole volume with ref. */
static int reopen_matches(void)
{
    struct vol *v = open_vol(NULL, 0);
    char *b = xmalloc(VOL_SIZE);
    int same = vol_read(v, b, 0, VOL_SIZE) == 0 && memcmp(b, ref, VOL_SIZE) == 0;
    free(b);
    is_int(vol_close(v), 0, "the reopened volume closes cleanly");
    return same;
}

static void rm_cache(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache);
    if (system(cmd) != 0) bail_out("rm -rf of the cache dir");
}

static struct vol_stats stats(struct vol *v)
{
    struct vol_stats st;
    vol_get_stats(v, &st);
    return st;
}

/* The cache dir removed while writes are only in memory: the next flush
 * fails, but first uploads them; nothing is lost, and the engine says so. */
static void test_removed_memory_uploaded(void)
{
    new_volume();
    struct vol *v = open_vol(NULL, 0);
    ok(put(v, 0, 1) == 0 && vol_flush(v) == 0, "a write, flushed to the store");
    ok(put(v, CHUNK, 2) == 0 && put(v, 3 * CHUNK, 3) == 0, "two more, only in memory");
    rm_cache();
    is_int(vol_flush(v), -EIO, "the flush after the cache dir went fails");
    struct vol_stats st = stats(v);
    ok(st.error && st.journal_lost, "the volume is in the error state, the journal lost");
    ok(strstr(vol_error(v), "journal directory") && strstr(vol_error(v), "is gone"),
       "the reason names the journal directory: %s", vol_error(v));
    ok(!st.unsaved && st.pending_bytes == 0, "what was in memory is in the store now");
    char note[1200];
    vol_unsaved_note(&st, vol_journal_dir(v), note, sizeof note);
    ok(strstr(note, "nothing is lost") != NULL, "it says nothing is lost: %s", note);
    is_int(put(v, 5 * CHUNK, 4), -EIO, "a write after it fails");
    char why[1800];
    is_int(vol_close_report(v, why, sizeof why), -EIO, "close reports the error");
    ok(strstr(why, "nothing is lost") != NULL, "and that nothing is lost: %s", why);
    ok(reopen_matches(), "a reopen has every write that returned 0");
    ok(holds(CHUNK, 2) && holds(3 * CHUNK, 3), "the two written only to memory among them");
}

/* durability=local: a flush after the removal must not claim the journal. */
static void test_removed_local_flush(void)
{
    new_volume();
    struct vol *v = open_vol(NULL, 1);
    ok(put(v, 0, 5) == 0 && vol_flush(v) == 0, "durability local: a write, flushed");
    rm_cache();
    int w = put(v, CHUNK, 6); /* may land in the open segment before the sealer looks */
    is_int(vol_flush(v), -EIO, "the local flush after the removal fails (the write: %d)", w);
    ok(stats(v).journal_lost, "the journal is lost");
    vol_close(v);
    ok(reopen_matches(), "a reopen has every write that returned 0");
}

/* A replaced journal directory (moved away, a new one made) is caught
 * too: its dev/ino differ. */
static void test_replaced(void)
{
    new_volume();
    struct vol *v = open_vol(NULL, 0);
    ok(put(v, 0, 7) == 0, "a write in memory");
    char moved[400], cmd[900];
    snprintf(moved, sizeof moved, "%s.moved", cache);
    snprintf(cmd, sizeof cmd, "mv %s %s && mkdir -p %s", cache, moved, vol_journal_dir(v));
    if (system(cmd) != 0) bail_out(cmd);
    is_int(vol_flush(v), -EIO, "a flush after the cache dir was replaced fails");
    ok(strstr(vol_error(v), "replaced") != NULL, "the reason says replaced: %s", vol_error(v));
    ok(!stats(v).unsaved, "what was in memory went to the store");
    vol_close(v);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", cache, moved);
    if (system(cmd) != 0) bail_out(cmd);
    ok(reopen_matches(), "a reopen has the write");
}

/* The store fails (every request after the takeover record) and then the
 * journal goes: what was written is lost, the engine says how much and
 * since when, and a reopen indeed lacks exactly that. */
static void test_removed_store_down(void)
{
    new_volume();
    struct vol *v = open_vol("crash_after_puts=1", 0);
    ok(put(v, 0, 8) == 0 && put(v, 2 * CHUNK, 9) == 0, "writes with the store down");
    is_int(vol_flush(v), -EIO, "the flush fails: the upload failed");
    struct vol_stats st = stats(v);
    ok(st.unsaved && st.unsaved_in_journal && st.unsaved_bytes == 2 * CHUNK,
       "%llu bytes unsaved, in the journal", (unsigned long long)st.unsaved_bytes);
    rm_cache();
    is_int(vol_flush(v), -EIO, "a flush still fails");
    st = stats(v);
    ok(st.journal_lost && st.unsaved && !st.unsaved_in_journal,
       "with the journal gone they are only in memory");
    char *b = xmalloc(CHUNK);
    pattern(b, CHUNK, 9);
    char *got = xmalloc(CHUNK);
    ok(vol_read(v, got, 2 * CHUNK, CHUNK) == 0 && memcmp(got, b, CHUNK) == 0,
       "memory still reads them (the way to copy them out)");
    free(b);
    free(got);
    char why[1800];
    is_int(vol_close_report(v, why, sizeof why), -EIO, "close fails");
    ok(strstr(why, "512 KiB written since") && strstr(why, "are lost"), "and says what is lost: %s",
       why);
    memset(ref, 0, VOL_SIZE); /* what it said: nothing of it survives */
    ok(reopen_matches(), "a reopen lacks exactly those writes");
}

/* The store fails, the journal stays: it all comes back from the journal. */
static void test_store_down_journal_kept(void)
{
    new_volume();
    struct vol *v = open_vol("crash_after_puts=1", 0);
    ok(put(v, CHUNK, 10) == 0, "a write with the store down");
    is_int(vol_flush(v), -EIO, "the flush fails");
    char why[1800];
    is_int(vol_close_report(v, why, sizeof why), -EIO, "close fails");
    ok(strstr(why, "in the journal in") && strstr(why, "replays") && !strstr(why, "lost"),
       "and says they are in the journal: %s", why);
    ok(reopen_matches(), "a reopen replays the journal: the write is there");
}

/* A journal write that fails (the local disk, not the cache dir): the
 * error state, what is in memory uploaded, nothing lost. */
static void test_journal_write_fails(void)
{
    new_volume();
    struct vol *v = open_vol(NULL, 1);
    ok(put(v, 0, 11) == 0 && vol_flush(v) == 0 && put(v, CHUNK, 12) == 0,
       "a write flushed to the journal, one not");
    journal_fault_inject(1, 1, EIO); /* every journal write, sync, unlink from now on */
    is_int(put(v, 2 * CHUNK, 13), -EIO, "a write whose journal append fails is refused");
    ok(strstr(vol_error(v), "journal") != NULL, "the reason: %s", vol_error(v));
    is_int(vol_flush(v), -EIO, "flushes fail");
    struct vol_stats st = stats(v);
    ok(st.error && !st.journal_lost && !st.unsaved, "what was in memory is in the store now");
    char why[1800];
    is_int(vol_close_report(v, why, sizeof why), -EIO, "close reports the error");
    journal_fault_inject(0, 0, 0);
    ok(strstr(why, "nothing is lost") != NULL, "and that nothing is lost: %s", why);
    ok(reopen_matches(), "a reopen has every write that returned 0");
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(root)) bail_out("mkdtemp");
    snprintf(cache, sizeof cache, "%s/cache", root);
    ref = xcalloc(1, VOL_SIZE);
    test_removed_memory_uploaded();
    test_removed_local_flush();
    test_replaced();
    test_removed_store_down();
    test_store_down_journal_kept();
    test_journal_write_fails();
    free(ref);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) diag("could not remove %s", root);
    return done_testing();
}
