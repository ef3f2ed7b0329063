/* vol_ckpt.c - checkpoints (rule 3), snapshots, and what may be deleted:
 * the pins snapshots hold and the deletes after a durable checkpoint
 * (rule 8).  Rules: the top of vol.c. */

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

/* ---- checkpoints ---- */

/* Deletes all but the newest two checkpoints (FORMAT rule 6). */
static void prune_checkpoints(struct vol *v)
{
    struct store_obj *list;
    size_t n;
    char err[STORE_ERRMSG_MAX];
    if (!lease_ok(v) || io_list(v->io, "ckpt/", &list, &n, err, sizeof err))
        return;
    for (size_t i = 0; i + 2 < n; i++) /* sorted by key = by seq */
        if (io_delete(v->io, list[i].key, err, sizeof err))
            log_warn("%s", err);
    store_list_free(list, n);
}

/* ---- snapshot pins: segments a snapshot references ---- */

static int pin_cmp(const void *a, const void *b)
{
    const struct orphan *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

int pinned(const struct vol *v, uint64_t seq, uint32_t epoch)
{
    struct orphan k = {seq, epoch};
    return v->npins && bsearch(&k, v->pins, v->npins, sizeof k, pin_cmp) != NULL;
}

void pin(struct vol *v, uint64_t seq, uint32_t epoch)
{
    if (pinned(v, seq, epoch))
        return;
    v->pins = xrealloc(v->pins, (v->npins + 1) * sizeof *v->pins);
    v->pins[v->npins++] = (struct orphan){seq, epoch};
    qsort(v->pins, v->npins, sizeof *v->pins, pin_cmp);
}

/* 1 when segment i may be deleted (rule 8): no live block, durable, not
 * open, covered by the newest checkpoint, no snapshot's. */
static int is_dead(const struct vol *v, uint32_t i)
{
    const struct vseg *s = &v->segs[i];
    return !s->live && !s->deleted && !s->mem && s->seq <= v->ckpt_seq && s->header_len &&
           !pinned(v, s->seq, s->epoch) && !inherited(v, s->seq);
}

/* Rule 8, after checkpoint `key` is durable: deletes every other checkpoint,
 * then the dead segments and orphans.  Returns how many segments it
 * deleted (0: nothing to do, or readers still waiting on the store). */
size_t delete_dead(struct vol *v, const char *key)
{
    char err[STORE_ERRMSG_MAX], sk[SEG_KEY_SIZE];
    size_t ndead = v->norphans;
    for (uint32_t i = 0; i < v->nsegs; i++)
        ndead += is_dead(v, i);
    if (!ndead || v->reads_waiting || v->nra || !lease_ok(v))
        return 0;
    struct store_obj *list;
    size_t n;
    if (io_list(v->io, "ckpt/", &list, &n, err, sizeof err)) {
        log_warn("garbage collection: %s; deleting nothing", err);
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].key, key) != 0 && io_delete(v->io, list[i].key, err, sizeof err)) {
            log_warn("garbage collection: %s; deleting no segment", err);
            ok = 0;
        }
    store_list_free(list, n);
    if (!ok)
        return 0;
    size_t done = 0;
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (is_dead(v, i)) {
            seg_key(v->segs[i].seq, v->segs[i].epoch, sk);
            if (io_delete(v->io, sk, err, sizeof err)) {
                log_warn("garbage collection: %s", err);
                continue;
            }
            v->segs[i].deleted = 1;
            if (v->segs[i].hdr)
                drop_hdr(v, &v->segs[i]);
            done++;
        }
    size_t kept = 0;
    for (size_t i = 0; i < v->norphans; i++) {
        seg_key(v->orphans[i].seq, v->orphans[i].epoch, sk);
        if (io_delete(v->io, sk, err, sizeof err)) {
            log_warn("garbage collection: %s", err);
            v->orphans[kept++] = v->orphans[i];
        } else
            done++;
    }
    v->norphans = kept;
    v->stats.segments_deleted += done;
    return done;
}

/* The map and the live segments as a checkpoint at seq next_seq - 1, into
 * out; rule 3 holds (nothing open or uploading).  0, or fail()'s -EIO. */
static int encode_checkpoint(struct vol *v, struct buf *out)
{
    char err[STORE_ERRMSG_MAX];
    uint64_t seq = v->next_seq - 1;
    uint32_t *remap = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *remap);
    struct ckpt_seg *cs = xmalloc((v->nsegs ? v->nsegs : 1) * sizeof *cs);
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].live) {
            remap[i] = k;
            cs[k++] = (struct ckpt_seg){v->segs[i].seq, v->segs[i].epoch, v->segs[i].header_len,
                                        v->segs[i].live, v->segs[i].ndata};
        }
    struct ckpt_enc *e = ckpt_enc_new(out, v->sb.uuid, seq, v->epoch, cs, k);
    struct map_iter it;
    struct map_extent x;
    map_iter_start(v->map, &it);
    while (map_iter_next(&it, &x)) {
        struct ckpt_extent ce = {x.lba, x.nblocks, remap[x.seg], x.block};
        ckpt_enc_add(e, &ce);
    }
    int rc = ckpt_enc_finish(e, err, sizeof err);
    free(remap);
    free(cs);
    if (rc) {
        buf_free(out);
        return fail(v, "checkpoint %" PRIu64 " does not encode: %s", seq, err);
    }
    return 0;
}

int write_checkpoint(struct vol *v)
{
    char key[CKPT_KEY_SIZE], err[STORE_ERRMSG_MAX];
    uint64_t seq = v->next_seq - 1;
    if (any_open(v) || v->uploads) /* rule 3 */
        return 0;
    struct buf out = {0};
    int rc = encode_checkpoint(v, &out);
    if (rc)
        return rc;
    ckpt_key(seq, v->epoch, key);
    enum store_err se = io_put(v->io, key, out.p, out.len, STORE_COND_NONE, err, sizeof err);
    buf_free(&out);
    if (se)
        return fail(v, "checkpoint: %s", err);
    v->stats.checkpoints++;
    v->since_ckpt = 0;
    v->ckpt_seq = seq;
    v->ckpt_epoch = v->epoch;
    if (!delete_dead(v, key))
        prune_checkpoints(v);
    return 0;
}


int vol_snapshot(struct vol *v, const char *name, char *err, size_t errlen)
{
    char key[SNAP_KEY_SIZE];
    if (v->read_only) {
        snprintf(err, errlen, "the volume is open read-only");
        return -EROFS;
    }
    if (!snap_name_ok(name)) {
        snprintf(err, errlen, "'%s' is not a snapshot name: 1 to %d of A-Z a-z 0-9 . _ -, "
                              "not starting with a dot", name, SNAP_NAME_MAX);
        return -EINVAL;
    }
    snap_key(name, key);
    pthread_mutex_lock(&v->lock);
    int rc = 0;
    for (int tries = 0;; tries++) { /* everything durable, nothing open: rule 3 */
        rc = seal_all(v);
        if (!rc)
            rc = wait_uploads(v);
        if (rc || (!any_open(v) && !v->uploads))
            break;
        if (tries == 20) {
            rc = -EAGAIN;
            break;
        }
    }
    struct buf out = {0};
    if (!rc)
        rc = encode_checkpoint(v, &out);
    if (rc) {
        snprintf(err, errlen, "%s", v->failed[0] ? v->failed : "writes never paused");
        pthread_mutex_unlock(&v->lock);
        return rc;
    }
    /* pin what it references before anything can be deleted */
    for (uint32_t i = 0; i < v->nsegs; i++)
        if (v->segs[i].live)
            pin(v, v->segs[i].seq, v->segs[i].epoch);
    enum store_err e = io_put(v->io, key, out.p, out.len, STORE_IF_NONE_MATCH, err, errlen);
    buf_free(&out);
    pthread_mutex_unlock(&v->lock);
    if (e == STORE_EPRECOND) {
        snprintf(err, errlen, "a snapshot named %s exists already", name);
        return -EEXIST;
    }
    return e ? -EIO : 0;
}

