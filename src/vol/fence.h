/* fence.h - takeover records: which writer epoch owns which segment seqs.
 *
 * When a writer takes the volume's lease with epoch E, it recovers the
 * gap-free run of segments up to seq T and, before it writes anything,
 * records the takeover as the object fence/<E> ("after T").  From then on
 * a segment or checkpoint of an older epoch e < E with seq > T belongs to a
 * fenced writer, which may still be uploading: recovery ignores it, and GC
 * deletes it (docs/FORMAT.md rule 8).
 *
 * Object layout (text):
 *   buoy-fence 1
 *   epoch 7
 *   after 1234            the last seq of the run the taker recovered
 *   holder host-a:1a2b3c4d
 *   time 1764572400       Unix seconds, for people
 */
#ifndef BUOY_VOL_FENCE_H
#define BUOY_VOL_FENCE_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

#define FENCE_PREFIX "fence/"
#define FENCE_KEY_SIZE 24

struct fence {
    uint64_t epoch, after;
};

struct fence_set {
    struct fence *f; /* sorted by epoch */
    size_t n;
};

void fence_key(uint64_t epoch, char out[FENCE_KEY_SIZE]);
/* 0 and *epoch, or -1 when key is not a fence key. */
int fence_key_parse(const char *key, uint64_t *epoch);
void fence_encode(const struct fence *f, const char *holder, struct buf *out);
/* 0, or -1 with a reason. */
int fence_parse(const void *p, size_t n, struct fence *f, char *err, size_t errlen);

void fence_add(struct fence_set *s, const struct fence *f);
void fence_free(struct fence_set *s);
/* 1 when a segment or checkpoint (seq, epoch) is not fenced off: seq is at
 * most the "after" of every later epoch's fence. */
int fence_ok(const struct fence_set *s, uint64_t seq, uint64_t epoch);

#endif
