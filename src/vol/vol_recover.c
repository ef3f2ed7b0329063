/* vol_recover.c - recovery at open (FORMAT.md rule 5): a clone's origins,
 * the newest usable checkpoint, the segments after it, then the cache
 * dir's journals.  Rules: the top of vol.c. */

#include "vol.h"
#include "cache.h"
#include "ckpt.h"
#include "fence.h"
#include "io.h"
#include "journal.h"
#include "keys.h"
#include "map.h"
#include "seg.h"
#include "super.h"
#include "store/lease.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/path.h"

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "vol_int.h"

/* ---- recovery ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A clone's origins (struct origin): the volume each base line names, up
 * the chain, each checked to be the one cloned from (uuid) and to have the
 * same block size.  Only read, so no fault injection and no lease. */
int open_origins(struct vol *v, const struct vol_opts *o, char *err, size_t errlen)
{
    char why[STORE_ERRMSG_MAX];
    v->origins[0] = (struct origin){.st = v->st, .io = v->io, .base_seq = v->sb.base_seq};
    memcpy(v->origins[0].uuid, v->sb.uuid, 16);
    v->norigins = 1;
    struct vol_super cur = v->sb;
    while (cur.base[0]) {
        if (v->norigins == MAX_ORIGINS) {
            snprintf(err, errlen, "a chain of more than %d clones of clones is not supported",
                     MAX_ORIGINS - 1);
            return -1;
        }
        struct origin *og = &v->origins[v->norigins];
        char *name = strrchr(cur.base, '@');
        og->url = xstrndup(cur.base, (size_t)(name - cur.base));
        struct store_opts so = o->store;
        so.fault = NULL;
        og->st = store_open(og->url, &so, why, sizeof why);
        if (!og->st) {
            snprintf(err, errlen, "the volume this one was cloned from: %s", why);
            return -1;
        }
        v->norigins++;
        struct buf b = {0};
        struct vol_super psb;
        enum store_err e = store_get(og->st, SUPER_KEY, 0, 0, &b, NULL, why, sizeof why);
        if (e == STORE_ENOTFOUND)
            snprintf(why, sizeof why, "no volume there");
        int bad = e || super_parse(b.p, b.len, &psb, why, sizeof why) < 0;
        if (!bad && memcmp(psb.uuid, cur.base_uuid, 16) != 0)
            bad = snprintf(why, sizeof why, "another volume is there now (its uuid differs)");
        else if (!bad && psb.block_size != v->bs)
            bad = snprintf(why, sizeof why, "its block size differs");
        else if (!bad && super_encrypted(&psb) != (v->keys != NULL))
            bad = snprintf(why, sizeof why, "one of the two is encrypted and the other not");
        else if (!bad && v->keys) {
            /* a clone starts with its base's wrapped master key, so the keys
             * are the same (whatever passphrase either has now); the base's
             * own key-check and mac prove it */
            int k = super_verify_keys(&psb, b.p, v->keys);
            if (k)
                bad = snprintf(why, sizeof why, "%s",
                               k == SUPER_WRONG_KEY ? "its keys are not this volume's"
                                                    : "its superblock was altered");
            else {
                struct store *c = store_crypt_open(og->st, v->keys->data, psb.uuid, why,
                                                   sizeof why);
                if (c)
                    og->st = c;
                else
                    bad = 1;
            }
        }
        buf_free(&b);
        if (bad) {
            snprintf(err, errlen, "%s, the base of this clone: %s", cur.base, why);
            return -1;
        }
        og->io = io_start(og->st);
        char sk[SNAP_KEY_SIZE];
        snap_key(name + 1, sk);
        if (io_get(og->io, sk, 0, 1, &b, why, sizeof why) == STORE_ENOTFOUND)
            log_warn("%s, the snapshot this volume was cloned from, is gone: its volume's GC "
                     "may delete data this one reads",
                     cur.base);
        buf_free(&b);
        memcpy(og->uuid, psb.uuid, 16);
        og->base_seq = psb.base_seq;
        cur = psb;
    }
    return 0;
}

void close_origins(struct vol *v)
{
    for (unsigned i = 1; i < v->norigins; i++) {
        if (v->origins[i].io)
            io_stop(v->origins[i].io);
        store_close(v->origins[i].st);
        free(v->origins[i].url);
    }
    v->norigins = 0;
}

/* Loads a decoded checkpoint (or snapshot) into the empty map and segs[]. */
static int apply_checkpoint(struct vol *v, const struct ckpt *ck, const char *key, char *err,
                            size_t errlen)
{
    char why[256];
    for (uint32_t s = 0; s < ck->nsegs; s++) {
        struct ckpt_seg cs = ckpt_seg_at(ck, s);
        uint32_t idx = add_seg(v, cs.seq, cs.epoch);
        v->segs[idx].header_len = cs.header_len;
        v->segs[idx].ndata = cs.ndata_blocks;
        v->segs[idx].live = cs.live_blocks;
    }
    struct map_extent *ext = xmalloc((ck->nextents ? ck->nextents : 1) * sizeof *ext);
    for (uint64_t e = 0; e < ck->nextents; e++) {
        struct ckpt_extent ce = ckpt_extent_at(ck, e);
        ext[e] = (struct map_extent){ce.lba, ce.nblocks, ce.seg, ce.first};
    }
    int lrc = ck->nextents && ext[ck->nextents - 1].lba + ext[ck->nextents - 1].nblocks >
                                  v->nblocks
                  ? -1
                  : map_load(v->map, ext, ck->nextents, why, sizeof why);
    free(ext);
    if (lrc < 0) {
        snprintf(err, errlen, "%s does not fit the volume: %s", key, why);
        return -1;
    }
    v->next_seq = ck->seq + 1;
    return 0;
}

/* Loads snapshot name (URL@NAME opens): exactly its state, nothing after. */
int load_snapshot(struct vol *v, const char *name, char *err, size_t errlen)
{
    char key[SNAP_KEY_SIZE], why[256];
    struct buf b = {0};
    struct ckpt ck;
    snap_key(name, key);
    enum store_err e = io_get(v->io, key, 0, 0, &b, err, errlen);
    if (e == STORE_ENOTFOUND)
        snprintf(err, errlen, "no snapshot named %s (buoy snapshot list shows them)", name);
    int rc = -1;
    if (e)
        ;
    else if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0 ||
             memcmp(ck.uuid, v->sb.uuid, 16) != 0)
        snprintf(err, errlen, "snapshot %s is unusable: %s", name,
                 memcmp(ck.uuid, v->sb.uuid, 16) ? "another volume's" : why);
    else
        rc = apply_checkpoint(v, &ck, key, err, errlen);
    buf_free(&b);
    return rc;
}

int load_checkpoint(struct vol *v, char *err, size_t errlen)
{
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "ckpt/", &list, &n, err, errlen))
        return -1;
    int rc = 0;
    for (size_t i = n; i-- > 0;) { /* newest first; fall back to older ones */
        uint64_t seq;
        uint32_t epoch;
        struct buf b = {0};
        struct ckpt ck;
        char why[256];
        if (ckpt_key_parse(list[i].key, &seq, &epoch) < 0 || epoch > v->epoch ||
            !fence_ok(&v->fences, seq, epoch)) /* a fenced writer's: rule 9 */
            continue;
        if (io_get(v->io, list[i].key, 0, 0, &b, err, errlen)) {
            rc = -1;
            buf_free(&b);
            break;
        }
        if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0 ||
            memcmp(ck.uuid, v->sb.uuid, 16) != 0) {
            log_warn("checkpoint %s is unusable (%s); trying an older one", list[i].key,
                     memcmp(ck.uuid, v->sb.uuid, 16) ? "another volume's" : why);
            buf_free(&b);
            continue;
        }
        rc = apply_checkpoint(v, &ck, list[i].key, err, errlen);
        buf_free(&b);
        if (!rc) {
            v->ckpt_seq = ck.seq;
            v->ckpt_epoch = epoch;
        }
        break;
    }
    store_list_free(list, n);
    if (!rc && v->sb.base[0] && v->next_seq <= v->sb.base_seq) { /* buoy clone wrote one */
        snprintf(err, errlen, "this clone of %s has lost its first checkpoint (ckpt/ is %s)",
                 v->sb.base, n ? "unusable" : "empty");
        rc = -1;
    }
    return rc;
}

/* The segments snapshots reference: GC neither cleans nor deletes them. */
int load_pins(struct vol *v, char *err, size_t errlen)
{
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, SNAP_PREFIX, &list, &n, err, errlen))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct buf b = {0};
        struct ckpt ck;
        char why[256];
        if (io_get(v->io, list[i].key, 0, 0, &b, err, errlen))
            rc = -1;
        else if (ckpt_decode(b.p, b.len, &ck, why, sizeof why) < 0) {
            snprintf(err, errlen, "snapshot %s is damaged (%s): cannot tell what it needs; "
                                  "delete it with buoy snapshot delete",
                     list[i].key, why);
            rc = -1;
        } else
            for (uint32_t k = 0; k < ck.nsegs; k++) {
                struct ckpt_seg cs = ckpt_seg_at(&ck, k);
                pin(v, cs.seq, cs.epoch);
            }
        buf_free(&b);
    }
    store_list_free(list, n);
    return rc;
}

/* Does segment seq exist (under an epoch we accept)?  1 yes, 0 no, -1 error. */
static int find_segment(struct vol *v, uint64_t seq, uint32_t *epoch, char *err, size_t errlen)
{
    char prefix[SEG_KEY_PREFIX_SIZE];
    struct store_obj *list;
    size_t n;
    int found = 0;
    seg_key_prefix(seq, prefix);
    if (io_list(v->io, prefix, &list, &n, err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t s;
        uint32_t e;
        if (seg_key_parse(list[i].key, &s, &e) == 0 && s == seq && e <= v->epoch &&
            fence_ok(&v->fences, s, e) && (!found || e > *epoch)) { /* rule 9 */
            *epoch = e;
            found = 1;
        }
    }
    store_list_free(list, n);
    return found;
}

/* The run of segments ended at next_seq: if any of the next few exist, a
 * segment is missing in the middle.  They cannot be applied (prefix
 * consistency); say so loudly, and unless read-only delete them, or new
 * segments with their seqs could never be written. */
void report_gap(struct vol *v)
{
    char err[STORE_ERRMSG_MAX];
    uint32_t epoch;
    for (uint64_t s = v->next_seq + 1; s <= v->next_seq + 2 * v->max_uploads + 8; s++)
        if (find_segment(v, s, &epoch, err, sizeof err) == 1) {
            v->stats.segments_ignored++;
            if (!v->read_only) {
                char key[SEG_KEY_SIZE];
                seg_key(s, epoch, key);
                if (io_delete(v->io, key, err, sizeof err))
                    log_warn("%s", err);
            }
        }
    if (v->stats.segments_ignored)
        log_error("segment %" PRIu64 " is missing from the store but later ones exist; the "
                  "volume is recovered to its state before segment %" PRIu64
                  " and %" PRIu64 " later segments are %s",
                  v->next_seq, v->next_seq, v->stats.segments_ignored,
                  v->read_only ? "ignored" : "deleted");
}

/* Rule 8: segment objects at or below the checkpoint that it does not list. */
void find_orphans(struct vol *v)
{
    char err[STORE_ERRMSG_MAX];
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "seg/", &list, &n, err, sizeof err))
        return;
    uint64_t *known = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *known);
    for (uint32_t i = 0; i < v->nsegs; i++)
        known[i] = v->segs[i].seq;
    qsort(known, v->nsegs, sizeof *known, cmp_u64);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        uint32_t epoch;
        if (seg_key_parse(list[i].key, &seq, &epoch) < 0)
            continue;
        int fenced = !fence_ok(&v->fences, seq, epoch); /* a fenced writer's: garbage */
        if (pinned(v, seq, epoch) ||
            (!fenced &&
             (seq > v->ckpt_seq || bsearch(&seq, known, v->nsegs, sizeof *known, cmp_u64))))
            continue;
        v->orphans = xrealloc(v->orphans, (v->norphans + 1) * sizeof *v->orphans);
        v->orphans[v->norphans++] = (struct orphan){seq, epoch};
    }
    free(known);
    store_list_free(list, n);
    if (v->norphans)
        log_info("%zu segment objects no checkpoint needs; deleted after the next checkpoint",
                 v->norphans);
}

/* Applies segments next_seq, next_seq+1, ... while they exist. */
int scan_segments(struct vol *v, char *err, size_t errlen)
{
    for (;;) {
        uint32_t epoch = 0;
        int found = find_segment(v, v->next_seq, &epoch, err, errlen);
        if (found < 0)
            return -1;
        if (!found)
            return 0;
        uint32_t idx = add_seg(v, v->next_seq, epoch);
        struct seg_hdr *h = fetch_hdr(v, idx, err, errlen);
        if (!h)
            return -1;
        v->segs[idx].header_len = h->header_len;
        v->segs[idx].ndata = h->ndata_blocks;
        for (uint32_t e = 0; e < h->nextents; e++) {
            const struct seg_extent *x = &h->ext[e];
            if (x->lba + x->nblocks > v->nblocks) {
                snprintf(err, errlen, "segment %" PRIu64 " writes past the end of the volume",
                         v->next_seq);
                seg_hdr_free(h);
                free(h);
                return -1;
            }
            if (x->kind == SEG_DATA) {
                map_set(v->map, x->lba, x->nblocks, idx, x->first);
                v->segs[idx].live += x->nblocks;
            } else
                map_unset(v->map, x->lba, x->nblocks);
        }
        cache_hdr(v, idx, h);
        v->next_seq++;
        v->since_ckpt++;
    }
}

static int replay_record(void *arg, enum journal_kind kind, uint64_t lba, uint32_t nblocks,
                         const void *data)
{
    struct vol *v = arg;
    if (lba + nblocks > v->nblocks || lba + nblocks < lba)
        return -1;
    v->stats.journal_records_replayed++;
    return kind == JOURNAL_DATA ? write_blocks(v, lba, nblocks, data)
                                : zero_blocks(v, lba, nblocks);
}

/* Rule 5: journals of segments not in the store become those segments. */
int replay_journals(struct vol *v, char *err, size_t errlen)
{
    uint64_t *seqs;
    size_t n;
    if (journal_list(v->jdir, &seqs, &n, err, errlen) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t s = seqs[i];
        char why[256];
        if (s < v->next_seq) { /* uploaded before the crash */
            journal_remove(v->jdir, s, why, sizeof why);
            continue;
        }
        if (s > v->next_seq) {
            log_warn("journal of segment %" PRIu64 " follows a missing segment %" PRIu64
                     "; kept in %s, not applied",
                     s, v->next_seq, v->jdir);
            continue;
        }
        struct journal_info info;
        v->replaying = 1;
        enum journal_status js =
            journal_replay(v->jdir, s, v->sb.uuid, v->keys ? v->keys->local : NULL,
                           replay_record, v, &info, why, sizeof why);
        if (js == JOURNAL_OK) {
            if (seal_all(v) < 0 || wait_uploads(v) < 0) {
                snprintf(err, errlen, "%s", v->failed);
                rc = -1;
            } else {
                if (journal_remove(v->jdir, s, why, sizeof why) < 0)
                    log_warn("journal %" PRIu64 ": %s", s, why);
                /* uploads finish out of order: later segments may be there */
                v->replaying = 0;
                uint64_t before = v->next_seq;
                if (scan_segments(v, err, errlen) < 0)
                    rc = -1;
                v->stats.segments_after_replay += v->next_seq - before;
            }
            if (info.torn)
                log_info("journal %" PRIu64 ": a torn tail after %" PRIu64 " records (%s)", s,
                         info.nrecords, info.stop);
        } else if (js == JOURNAL_EFOREIGN || js == JOURNAL_EBADHDR) {
            log_warn("journal %" PRIu64 " in %s is not this volume's: %s; left alone", s,
                     v->jdir, why);
        } else {
            snprintf(err, errlen, "journal %" PRIu64 ": %s", s, v->failed[0] ? v->failed : why);
            rc = -1;
        }
        v->replaying = 0;
    }
    free(seqs);
    return rc;
}

