/* cmd_info.c - "buoy info URL": what a volume is and what it costs to keep.
 *
 * Opens the volume read-only (recovery from the store alone: newest
 * checkpoint plus the segments after it; nothing is written), lists its
 * segment and checkpoint objects, and prints size, segments, live and
 * garbage bytes, the last checkpoint, encryption and the lease.  An
 * encrypted volume needs --passphrase-file; without it (or with a wrong
 * one) what the superblock says is printed before the error. */
#include "commands.h"
#include "store/lease.h"
#include "util/size.h"
#include "vol/super.h"
#include "vol/vol.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void when(time_t t, char *out, size_t n)
{
    struct tm tm;
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
}

/* The superblock as stored, without opening the volume: 0 when it parses. */
static int peek_super(struct store *s, struct vol_super *sb)
{
    struct buf b = {0};
    char err[STORE_ERRMSG_MAX];
    int rc = store_get(s, SUPER_KEY, 0, 0, &b, NULL, err, sizeof err) == STORE_OK &&
                     super_parse(b.p, b.len, sb, err, sizeof err) == 0
                 ? 0
                 : -1;
    buf_free(&b);
    return rc;
}

static void print_encryption(const struct vol_super *sb)
{
    char mem[32];
    if (!super_encrypted(sb)) {
        printf("encryption  none\n");
        return;
    }
    size_format(sb->kdf_mem, mem, sizeof mem);
    printf("encryption  %s, %s the passphrase by argon2id (%" PRIu64 " passes, %s)\n",
           sb->encryption,
           sb->wrapped ? "a random key wrapped under" : "key from",
           sb->kdf_ops, mem);
}

/* What the superblock alone says, for a volume that cannot be opened. */
static void print_super(const char *url, const struct vol_super *sb)
{
    char uuid[37], b1[32], t[40];
    super_uuid_str(sb->uuid, uuid);
    size_format(sb->size, b1, sizeof b1);
    printf("volume      %s\nuuid        %s\n", url, uuid);
    printf("size        %s (%" PRIu64 " bytes), block size %u, compression %s\n", b1, sb->size,
           sb->block_size, sb->compression);
    when(sb->created, t, sizeof t);
    printf("created     %s\n", t);
    print_encryption(sb);
    fflush(stdout);
}

int cmd_info(struct cli_opts *o, int argc, char **argv)
{
    const char *url = argv[0];
    char err[STORE_ERRMSG_MAX];
    /* URL@NAME: a snapshot; the objects are the volume's, at URL */
    char base[4096];
    snprintf(base, sizeof base, "%s", url);
    char *at = strrchr(base, '@');
    if (at && !strchr(at, '/'))
        *at = '\0';
    struct store *s = cli_open_store(base, o);
    if (!s)
        return EXIT_ERR;
    struct vol_super sb;
    int have_sb = peek_super(s, &sb) == 0;
    struct vol_opts vo = {.store = o->store, .read_only = 1,
                          .passphrase_file = o->passphrase_file};
    struct vol *v = vol_open(url, &vo, err, sizeof err);
    if (!v) {
        if (have_sb && super_encrypted(&sb))
            print_super(url, &sb);
        store_close(s);
        cli_error("%s", err);
        return strstr(err, "no volume at") ? EXIT_NOTFOUND : EXIT_ERR;
    }
    struct vol_info in;
    vol_get_info(v, &in);
    s = vol_wrap_store(v, s, err, sizeof err); /* the lease is encrypted too */
    vol_close(v);
    if (!s)
        return cli_error("%s", err);
    struct store_obj *segs = NULL, *ckpts = NULL;
    size_t nseg = 0, nckpt = 0;
    if (store_list(s, "seg/", &segs, &nseg, err, sizeof err) ||
        store_list(s, "ckpt/", &ckpts, &nckpt, err, sizeof err)) {
        cli_error("%s", err);
        store_list_free(segs, nseg);
        store_close(s);
        return EXIT_ERR;
    }
    uint64_t stored = 0;
    for (size_t i = 0; i < nseg; i++)
        stored += segs[i].size;

    char uuid[37], b1[32], b2[32], b3[32], t[40];
    super_uuid_str(in.uuid, uuid);
    printf("volume      %s\n", url);
    printf("uuid        %s\n", uuid);
    size_format(in.size, b1, sizeof b1);
    size_format(in.segment_size, b2, sizeof b2);
    printf("size        %s (%" PRIu64 " bytes), block size %u, segment size %s, compression %s\n",
           b1, in.size, in.block_size, b2, in.compression);
    when((time_t)in.created, t, sizeof t);
    printf("created     %s\n", t);
    if (have_sb)
        print_encryption(&sb);
    if (in.base[0]) {
        size_format(in.base_bytes, b1, sizeof b1);
        printf("clone of    %s: %" PRIu64 " of its segments, %s, still read from there\n",
               in.base, in.base_segments, b1);
    }
    size_format(stored, b1, sizeof b1);
    printf("segments    %zu objects, %s; %" PRIu64 " hold live data; next seq %" PRIu64 "\n",
           nseg, b1, in.live_segments, in.next_seq);
    uint64_t own = in.live_bytes - in.base_bytes; /* a clone's base holds the rest */
    size_format(own, b1, sizeof b1);
    uint64_t garbage = stored > own ? stored - own : 0;
    size_format(garbage, b2, sizeof b2);
    printf("live data   %s (%.1f%% of what is stored)%s\n", b1,
           stored ? 100.0 * (double)own / (double)stored : 0.0,
           in.base[0] ? ", besides what the base holds" : "");
    printf("garbage     %s (overwritten, trimmed, and segment headers)\n", b2);
    if (nckpt) {
        when(ckpts[nckpt - 1].mtime, t, sizeof t);
        size_format(ckpts[nckpt - 1].size, b3, sizeof b3);
        printf("checkpoint  %s, %s, written %s\n", ckpts[nckpt - 1].key, b3, t);
    } else
        printf("checkpoint  none yet\n");
    struct buf lb = {0};
    struct lease_rec lr;
    char why[256];
    if (store_get(s, "lease", 0, 0, &lb, NULL, err, sizeof err) != STORE_OK)
        printf("lease       none (never opened for writing)\n");
    else if (lease_parse(lb.p, lb.len, &lr, why, sizeof why) < 0)
        printf("lease       unreadable: %s\n", why);
    else {
        when((time_t)lr.renewed, t, sizeof t);
        printf("lease       %s by %s on %s, epoch %" PRIu64 ", last written %s, time %" PRIu64
               " ms\n",
               lr.released ? "released" : "held", lr.holder, lr.host, lr.epoch, t, lr.ttl_ms);
    }
    buf_free(&lb);
    size_format(in.map_bytes, b1, sizeof b1);
    printf("map         %" PRIu64 " extents, %s in memory\n", in.extents, b1);
    store_list_free(segs, nseg);
    store_list_free(ckpts, nckpt);
    store_close(s);
    return EXIT_OK;
}
