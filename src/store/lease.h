/* lease.h - an exclusive, time-bounded lease kept as one object in a store.
 *
 * Used by the failover daemon (src/ha) and meant for the volume writer too.
 * Nothing here trusts another machine's clock: a lease is held for ttl
 * milliseconds of the holder's monotonic clock counted from the moment it
 * *sent* the write that took or renewed it, and a challenger may take it only
 * after it has seen the same object (same ETag) for ttl + margin of its own
 * monotonic clock, counted from when it *received* that object.  Every write
 * is conditional (If-None-Match for the first, If-Match on the ETag seen for
 * every other), so of two writers racing for one version at most one wins.
 *
 * Rules (the tests in tests/unit/test_lease.c and t3000 check them):
 *   L1  epoch strictly increases with every take: a take writes the epoch it
 *       saw plus one, conditioned on the ETag it saw.
 *   L2  a renewal keeps the epoch and bumps the renewal count, so every write
 *       has new contents and a new ETag.
 *   L3  the holder must stop using the lease at lease_deadline() - margin;
 *       lease_valid() says whether that point has passed.
 *   L4  a challenger takes a held lease only through lease_take() after
 *       lease_observe() has seen one unchanged version for the record's ttl
 *       (or its own, whichever is longer) plus margin; a released or missing
 *       lease may be taken at once.
 *   L5  an answer lost in transit (timeout, 5xx) after a conditional write
 *       is resolved by reading the object back: ours (holder, epoch, renewal
 *       count all match) means it was applied.  A renewal refused, or after
 *       an unknown outcome, reads the object: our holder and epoch, not
 *       released, is still our lease (only a taker changes the epoch), and
 *       its ETag is adopted; anything else means the lease is lost.
 *
 * Object layout (text, one "name value" per line, order fixed):
 *   buoy-lease 1
 *   epoch 7
 *   holder alpha
 *   host alpha.example
 *   since 1764572400          Unix seconds the epoch began (for people)
 *   renewed 1764572460        Unix seconds of this write (for people)
 *   renewals 42
 *   ttl_ms 2000
 *   state held|released
 */
#ifndef BUOY_LEASE_H
#define BUOY_LEASE_H

#include "store.h"

#include <stdint.h>
#include <time.h>

#define LEASE_NAME_MAX 64

struct lease_rec {
    uint64_t epoch;
    char holder[LEASE_NAME_MAX];
    char host[LEASE_NAME_MAX];
    int64_t since;
    int64_t renewed;
    uint64_t renewals;
    uint64_t ttl_ms;
    int released;
};

enum lease_status {
    LEASE_OK = 0,
    LEASE_BUSY,  /* someone else holds it (or the observation time is not over) */
    LEASE_LOST,  /* we held it, and now someone else has written it */
    LEASE_STORE, /* the store failed; outcome unknown, try again */
};

struct lease {
    struct store *store;
    char key[STORE_KEY_MAX];
    char holder[LEASE_NAME_MAX];
    char host[LEASE_NAME_MAX];
    uint64_t ttl_ms, margin_ms;

    /* What we last saw in the store. */
    int seen; /* 0: never read; else exists or not: */
    int exists;
    struct lease_rec cur; /* when exists */
    char etag[STORE_ETAG_MAX];
    uint64_t seen_since_ms; /* monotonic: when this ETag (or absence) was first received */

    /* The monotonic clock in ms (clock_mono_ms; tests may set their own).
     * Read before each write is sent and after each read is received. */
    uint64_t (*now)(void);

    /* Ours, when held. */
    int held;
    int unsure;           /* a write's outcome is unknown: our ETag may be stale */
    uint64_t deadline_ms; /* monotonic: send time of the last good write + ttl */
};

/* Sets up l (no I/O).  ttl_ms > 2 * margin_ms > 0.  The names are truncated
 * to LEASE_NAME_MAX - 1 bytes and may not contain spaces or newlines. */
void lease_init(struct lease *l, struct store *s, const char *key, const char *holder,
                const char *host, uint64_t ttl_ms, uint64_t margin_ms);

/* Reads the object and updates what was seen (ETag, and since when).  Returns
 * LEASE_OK, or LEASE_STORE with err filled.  When we hold the lease and the
 * object is no longer ours, held is cleared and LEASE_LOST returned. */
enum lease_status lease_observe(struct lease *l, char *err, size_t errlen);

/* Milliseconds until lease_take() may take what was last observed (0: now).
 * UINT64_MAX when nothing has been observed yet. */
uint64_t lease_wait_ms(const struct lease *l, uint64_t now_ms);

/* Takes the lease if lease_wait_ms() is 0: writes epoch + 1 with a condition
 * on what was observed.  LEASE_OK: held, deadline set; LEASE_BUSY: not yet,
 * or someone wrote first (observe again); LEASE_STORE: unknown, observe again. */
enum lease_status lease_take(struct lease *l, char *err, size_t errlen);

/* Renews a held lease.  LEASE_OK: deadline moved; LEASE_LOST: someone else
 * wrote it (held cleared: stop now); LEASE_STORE: not renewed this time, the
 * old deadline stands. */
enum lease_status lease_renew(struct lease *l, char *err, size_t errlen);

/* Marks a held lease released so the next taker need not wait.  held is
 * cleared whatever the outcome; the caller must already have stopped using it. */
enum lease_status lease_release(struct lease *l, char *err, size_t errlen);

/* Held and now_ms < deadline - margin (rule L3). */
int lease_valid(const struct lease *l, uint64_t now_ms);

/* Record codec, exposed for tests and `buoy ha status`. */
void lease_format(const struct lease_rec *r, struct buf *out);
int lease_parse(const char *p, size_t n, struct lease_rec *r, char *err, size_t errlen);

#endif
