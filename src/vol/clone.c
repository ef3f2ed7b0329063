/* clone.c - "buoy clone": a writable volume that starts as a snapshot of
 * another and shares its segments; and the records that keep the snapshot
 * (and so the segments) alive while a clone reads them.
 *
 * A clone is a volume of its own (uuid, lease, journal, GC) whose
 * superblock names its base, URL@NAME, with that volume's uuid and the
 * snapshot's seq S.  Its first checkpoint, at S, is the snapshot's map
 * under the clone's uuid; its own segments are numbered from S + 1.  So a
 * segment seq <= S is the base's, read from the base's store and never
 * cleaned or deleted by the clone (docs/FORMAT.md, rule 10).
 *
 * The base keeps it because the snapshot pins it, and the snapshot stays
 * because the clone leaves a record in the base, clones/NAME/UUID, that
 * `buoy snapshot delete` and `buoy create --force` honour.  Clone and
 * delete race safely: a clone writes its record, then checks that no
 * delete has begun (clones/NAME/deleting) before it reads the snapshot; a
 * delete writes clones/NAME/deleting, then lists the records, and deletes
 * the snapshot only when none belongs to a live clone.  With read-after-
 * write consistency one of the two always sees the other.  A record whose
 * clone is gone (no superblock with its uuid) is removed when found. */
#include "ckpt.h"
#include "keys.h"
#include "super.h"
#include "vol.h"
#include "store/lease.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLONES_PREFIX "clones/"
#define DELETING "deleting"

/* An absolute form of url that opens the same store from any directory:
 * s3:// as it is, a directory by its real path.  NULL + err. */
static char *canonical_url(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "s3://", 5) == 0)
        return xstrdup(url);
    const char *path = strncmp(url, "dir://", 6) == 0 ? url + 6 : url;
    char abs[PATH_MAX];
    if (realpath(path, abs))
        return xstrdup(abs);
    /* not made yet (the first PUT makes it): its parent's real path */
    char *copy = xstrdup(path), *slash = strrchr(copy, '/');
    const char *parent = slash == copy ? "/" : slash ? copy : ".", *name = slash ? slash + 1 : copy;
    if (slash && slash != copy)
        *slash = '\0';
    char *out = NULL;
    if (errno == ENOENT && *name && realpath(parent, abs))
        out = xasprintf("%s/%s", strcmp(abs, "/") ? abs : "", name);
    else
        snprintf(err, errlen, "%s: %s", url, strerror(errno));
    free(copy);
    return out;
}

/* Opens url's store and reads its superblock into sb.  With k, an
 * encrypted volume's keys are unlocked from o's passphrase file into *k
 * (*keyed set) and the encryption layer goes on top; without, the store is
 * the raw one (the superblock is never encrypted).  NULL + err; ENOTFOUND
 * in *e when there is no volume. */
static struct store *open_volume_store(const char *url, const struct vol_opts *o,
                                       struct vol_super *sb, struct vol_keys *k, int *keyed,
                                       enum store_err *e, char *err, size_t errlen)
{
    int got = 0;
    if (keyed)
        *keyed = 0;
    struct store *s = store_open(url, &o->store, err, errlen);
    *e = STORE_EFATAL;
    if (!s)
        return NULL;
    struct buf b = {0};
    int rc = vol_read_super(s, url, o, sb, &b, k, &got, e, err, errlen);
    buf_free(&b);
    if (!rc && got) {
        struct store *c = store_crypt_open(s, k->data, sb->uuid, err, errlen);
        if (c) {
            s = c;
            *keyed = 1;
        } else {
            rc = -1;
            *e = STORE_EFATAL;
        }
    }
    if (rc) {
        store_close(s);
        if (got)
            keys_wipe(k);
        return NULL;
    }
    return s;
}

struct store *vol_open_store(const char *url, const struct vol_opts *o, struct vol_super *sb,
                             char *err, size_t errlen)
{
    struct vol_keys k;
    int keyed;
    enum store_err e;
    struct store *s = open_volume_store(url, o, sb, &k, &keyed, &e, err, errlen);
    if (s && keyed)
        keys_wipe(&k);
    return s;
}

/* Reads a clone record: the clone's URL and uuid.  0, or -1. */
static int parse_record(const char *p, size_t n, char *url, size_t urllen, uint8_t uuid[16])
{
    char text[SUPER_BASE_MAX + 128], u[40];
    if (n >= sizeof text)
        return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    char *a = strstr(text, "\nurl "), *b = strstr(text, "\nuuid ");
    if (strncmp(text, "buoy-clone 1\n", 13) != 0 || !a || !b)
        return -1;
    a += 5;
    b += 6;
    size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
    if (la == 0 || la >= urllen || lb >= sizeof u)
        return -1;
    memcpy(url, a, la);
    url[la] = '\0';
    memcpy(u, b, lb);
    u[lb] = '\0';
    return super_uuid_parse(u, uuid);
}

/* 1 when the clone a record names still exists, 0 when it is gone, -1 when
 * that cannot be known (its store fails): count it as alive. */
static int clone_alive(const char *url, const uint8_t uuid[16], const struct store_opts *so)
{
    char err[STORE_ERRMSG_MAX];
    struct vol_super sb;
    enum store_err e;
    struct vol_opts o = {.store = *so};
    struct store *s = open_volume_store(url, &o, &sb, NULL, NULL, &e, err, sizeof err);
    if (!s)
        return e == STORE_ENOTFOUND ? 0 : -1;
    store_close(s);
    return memcmp(sb.uuid, uuid, 16) == 0;
}

int vol_live_clones(struct store *s, const char *name, const struct store_opts *so, char ***urls,
                    size_t *n, char *err, size_t errlen)
{
    char prefix[SNAP_KEY_SIZE + 16], why[STORE_ERRMSG_MAX];
    snprintf(prefix, sizeof prefix, "%s%s%s", CLONES_PREFIX, name ? name : "", name ? "/" : "");
    struct store_obj *list;
    size_t nl;
    *urls = NULL;
    *n = 0;
    if (store_list(s, prefix, &list, &nl, err, errlen))
        return -1;
    for (size_t i = 0; i < nl; i++) {
        const char *slash = strrchr(list[i].key, '/');
        if (!slash || strcmp(slash + 1, DELETING) == 0)
            continue;
        struct buf b = {0};
        char url[SUPER_BASE_MAX];
        uint8_t uuid[16];
        enum store_err e = store_get(s, list[i].key, 0, 0, &b, NULL, why, sizeof why);
        int ok = e == STORE_OK && parse_record(b.p, b.len, url, sizeof url, uuid) == 0;
        buf_free(&b);
        if (e == STORE_ENOTFOUND)
            continue;
        int alive = ok ? clone_alive(url, uuid, so) : -1;
        if (alive == 0) {
            log_info("removing %s: the clone it records, %s, is gone", list[i].key, url);
            if (store_delete(s, list[i].key, STORE_COND_NONE, NULL, why, sizeof why))
                log_warn("%s", why);
            continue;
        }
        if (alive < 0 && ok)
            log_warn("cannot tell whether the clone at %s still exists; keeping it", url);
        else if (!ok)
            log_warn("%s cannot be read (an encrypted volume's, without its passphrase?); "
                     "counting it as a live clone",
                     list[i].key);
        *urls = xrealloc(*urls, (*n + 1) * sizeof **urls);
        (*urls)[(*n)++] = xstrdup(ok ? url : list[i].key);
    }
    store_list_free(list, nl);
    return 0;
}

void vol_free_urls(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

int vol_snapshot_delete(const char *url, const char *name, const struct vol_opts *o, char *err,
                        size_t errlen)
{
    char key[SNAP_KEY_SIZE], mark[SNAP_KEY_SIZE + 32], why[STORE_ERRMSG_MAX];
    if (!snap_name_ok(name)) {
        snprintf(err, errlen, "'%s' is not a snapshot name", name);
        return -EINVAL;
    }
    struct vol_super sb;
    struct vol_keys k;
    int keyed;
    enum store_err e;
    struct store *s = open_volume_store(url, o, &sb, &k, &keyed, &e, err, errlen);
    if (!s)
        return e == STORE_ENOTFOUND ? -ENOENT : -EIO;
    if (keyed)
        keys_wipe(&k);
    snap_key(name, key);
    snprintf(mark, sizeof mark, "%s%s/%s", CLONES_PREFIX, name, DELETING);
    struct store_obj info;
    int rc = 0;
    e = store_head(s, key, &info, why, sizeof why);
    if (e == STORE_ENOTFOUND) {
        snprintf(err, errlen, "no snapshot named %s at %s", name, url);
        rc = -ENOENT;
    } else if (e || store_put(s, mark, "", 0, STORE_COND_NONE, NULL, NULL, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        rc = -EIO;
    }
    if (rc) {
        store_close(s);
        return rc;
    }
    char **urls = NULL;
    size_t n = 0;
    if (vol_live_clones(s, name, &o->store, &urls, &n, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        rc = -EIO;
    } else if (n) {
        snprintf(err, errlen, "snapshot %s has %zu clone%s, which read%s its data: %s%s", name, n,
                 n == 1 ? "" : "s", n == 1 ? "s" : "", urls[0], n > 1 ? " and others" : "");
        rc = -EBUSY;
    } else if (store_delete(s, key, STORE_COND_NONE, NULL, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        rc = -EIO;
    }
    vol_free_urls(urls, n);
    if (store_delete(s, mark, STORE_COND_NONE, NULL, why, sizeof why))
        log_warn("%s (a later buoy snapshot delete removes it)", why);
    store_close(s);
    return rc;
}

/* The snapshot's map as the clone's first checkpoint: the same segments
 * and extents, under the clone's uuid. */
static int clone_checkpoint(const struct ckpt *ck, const uint8_t uuid[16], struct buf *out,
                            uint64_t *bytes, char *err, size_t errlen)
{
    struct ckpt_seg *segs = xmalloc((ck->nsegs ? ck->nsegs : 1) * sizeof *segs);
    for (uint32_t i = 0; i < ck->nsegs; i++) {
        segs[i] = ckpt_seg_at(ck, i);
        *bytes += segs[i].live_blocks;
    }
    struct ckpt_enc *e = ckpt_enc_new(out, uuid, ck->seq, ck->epoch, segs, ck->nsegs);
    free(segs);
    for (uint64_t i = 0; i < ck->nextents; i++) {
        struct ckpt_extent x = ckpt_extent_at(ck, i);
        ckpt_enc_add(e, &x);
    }
    return ckpt_enc_finish(e, err, errlen);
}

int vol_clone(const char *src, const char *dst, const struct vol_opts *o,
              struct vol_clone_info *out, char *err, size_t errlen)
{
    char why[STORE_ERRMSG_MAX], skey[SNAP_KEY_SIZE], mark[SNAP_KEY_SIZE + 64];
    char dmark[SNAP_KEY_SIZE + 32], ckey[CKPT_KEY_SIZE];
    memset(out, 0, sizeof *out);
    const char *at = strrchr(src, '@');
    if (!at || strchr(at, '/') || !snap_name_ok(at + 1)) {
        snprintf(err, errlen, "clone takes a snapshot, URL@NAME (buoy snapshot list URL shows them)");
        return -EINVAL;
    }
    const char *name = at + 1;
    char *purl = xstrndup(src, (size_t)(at - src));
    struct store *ps = NULL, *ds = NULL;
    char *pcanon = NULL, *dcanon = NULL;
    struct buf b = {0}, cb = {0}, rec = {0}, lb = {0};
    struct vol_super psb, sb;
    struct vol_keys k;
    enum store_err e;
    int rc = -EIO, marked = 0, keyed = 0;

    ps = open_volume_store(purl, o, &psb, &k, &keyed, &e, err, errlen);
    if (!ps)
        goto out;
    pcanon = canonical_url(purl, err, errlen);
    if (!pcanon)
        goto out;
    /* the chain above must stay openable: count it */
    unsigned depth = 1;
    for (struct vol_super cur = psb; cur.base[0]; depth++) {
        if (depth >= 8) {
            snprintf(err, errlen, "%s is a clone of a clone 7 deep; that is the limit", purl);
            goto out;
        }
        char *u = xstrndup(cur.base, (size_t)(strrchr(cur.base, '@') - cur.base));
        struct store *s = open_volume_store(u, o, &cur, NULL, NULL, &e, why, sizeof why);
        free(u);
        if (!s) {
            snprintf(err, errlen, "%s, the base of %s: %s", cur.base, purl, why);
            goto out;
        }
        store_close(s);
    }
    ds = store_open(dst, &o->store, err, errlen);
    if (!ds)
        goto out;
    struct store_obj info;
    e = store_head(ds, SUPER_KEY, &info, why, sizeof why);
    if (e != STORE_ENOTFOUND) {
        snprintf(err, errlen, "%s", e ? why : "a volume already exists there");
        if (!e)
            snprintf(err, errlen, "a volume already exists at %s", dst);
        rc = e ? -EIO : -EEXIST;
        goto out;
    }
    dcanon = canonical_url(dst, err, errlen);
    if (!dcanon)
        goto out;
    uint8_t uuid[16];
    super_new_uuid(uuid);
    if (keyed) { /* the clone's objects are sealed for its own uuid */
        struct store *c = store_crypt_open(ds, k.data, uuid, err, errlen);
        if (!c)
            goto out;
        ds = c;
    }
    if (strlen(pcanon) + strlen(name) + 2 > SUPER_BASE_MAX ||
        strlen(dcanon) + 128 > SUPER_BASE_MAX) {
        snprintf(err, errlen, "store URL too long for a clone's superblock");
        goto out;
    }
    sb = psb; /* the same size, blocks, compression, and encryption under the same keys */
    memcpy(sb.uuid, uuid, 16);
    sb.created = time(NULL);
    snprintf(sb.base, sizeof sb.base, "%s@%s", pcanon, name);
    sb.version = super_version_for(&sb);
    memcpy(sb.base_uuid, psb.uuid, 16);
    super_uuid_str(sb.uuid, out->uuid);

    /* 1. the record in the base, then 2. no delete has begun, then 3. the map */
    snprintf(mark, sizeof mark, "%s%s/%s", CLONES_PREFIX, name, out->uuid);
    snprintf(dmark, sizeof dmark, "%s%s/%s", CLONES_PREFIX, name, DELETING);
    buf_printf(&rec, "buoy-clone 1\nurl %s\nuuid %s\ncreated %lld\n", dcanon, out->uuid,
               (long long)sb.created);
    if (store_put(ps, mark, rec.p, rec.len, STORE_IF_NONE_MATCH, NULL, NULL, err, errlen))
        goto out;
    marked = 1;
    e = store_head(ps, dmark, &info, why, sizeof why);
    if (e != STORE_ENOTFOUND) {
        snprintf(err, errlen, "%s", e ? why : "");
        if (!e)
            snprintf(err, errlen, "snapshot %s is being deleted (buoy snapshot delete)", name);
        goto out;
    }
    snap_key(name, skey);
    e = store_get(ps, skey, 0, 0, &b, NULL, why, sizeof why);
    if (e) {
        if (e == STORE_ENOTFOUND)
            snprintf(err, errlen, "no snapshot named %s at %s (buoy snapshot list shows them)",
                     name, purl);
        else
            snprintf(err, errlen, "%s", why);
        goto out;
    }
    struct ckpt ck;
    if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0 || memcmp(ck.uuid, psb.uuid, 16)) {
        snprintf(err, errlen, "snapshot %s is unusable: %s", name,
                 memcmp(ck.uuid, psb.uuid, 16) ? "another volume's" : why);
        goto out;
    }
    if (ck.seq < psb.base_seq) {
        snprintf(err, errlen, "snapshot %s is older than its volume's own base", name);
        goto out;
    }
    sb.base_seq = ck.seq;
    if (clone_checkpoint(&ck, sb.uuid, &cb, &out->bytes, why, sizeof why) < 0) {
        snprintf(err, errlen, "snapshot %s does not re-encode: %s", name, why);
        goto out;
    }
    out->bytes *= psb.block_size;
    out->segments = ck.nsegs;
    out->base_seq = ck.seq;
    /* 4. the clone: its first checkpoint, a released lease at the snapshot's
     * epoch (the first writer's epoch is above every segment's), then the
     * superblock, which makes it a volume */
    ckpt_key(ck.seq, ck.epoch, ckey);
    if (store_put(ds, ckey, cb.p, cb.len, STORE_IF_NONE_MATCH, NULL, NULL, err, errlen))
        goto out;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, " \n")] = '\0';
    struct lease_rec lr = {.epoch = ck.epoch, .since = sb.created, .renewed = sb.created,
                           .ttl_ms = 1, .released = 1};
    snprintf(lr.holder, sizeof lr.holder, "buoy-clone");
    snprintf(lr.host, sizeof lr.host, "%s", host);
    lease_format(&lr, &lb);
    if (store_put(ds, "lease", lb.p, lb.len, STORE_IF_NONE_MATCH, NULL, NULL, err, errlen))
        goto out;
    b.len = 0;
    super_encode_keyed(&sb, keyed ? &k : NULL, &b);
    e = store_put(ds, SUPER_KEY, b.p, b.len, STORE_IF_NONE_MATCH, NULL, NULL, why, sizeof why);
    if (e) {
        snprintf(err, errlen, "%s", e == STORE_EPRECOND ? "a volume was created there meanwhile"
                                                        : why);
        goto out;
    }
    rc = 0;
out:
    if (rc && marked && store_delete(ps, mark, STORE_COND_NONE, NULL, why, sizeof why))
        log_warn("%s (buoy snapshot delete removes it once it sees the clone is gone)", why);
    buf_free(&b);
    buf_free(&cb);
    buf_free(&rec);
    buf_free(&lb);
    if (ps)
        store_close(ps);
    if (ds)
        store_close(ds);
    free(purl);
    free(pcanon);
    free(dcanon);
    if (keyed)
        keys_wipe(&k);
    return rc;
}
