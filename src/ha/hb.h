/* hb.h - the heartbeat packet: layout, HMAC, replay defence.
 *
 * One UDP datagram of exactly HB_LEN (128) bytes, integers big-endian:
 *
 *   off len  field
 *     0   4  magic "BYHA"
 *     4   1  version (1)
 *     5   1  type (1 = heartbeat)
 *     6   2  total length (128)
 *     8   8  incarnation: random, new each time the daemon starts
 *    16   8  sequence: 1, 2, 3... within an incarnation
 *    24   8  sent_ms: the sender's wall clock, Unix milliseconds
 *    32   8  lease epoch the sender holds (0 when not active)
 *    40   1  state (enum ha_state: 0 initialising .. 5 failed)
 *    41   1  flags (HB_F_*)
 *    42   2  zero
 *    44   4  claims: how many times the sender became active (for status)
 *    48  32  sender's node name, NUL-padded (1..31 bytes)
 *    80  16  zero
 *    96  32  HMAC-SHA256 (shared key) of bytes 0..95
 *
 * A receiver drops, and counts by reason, anything that is not exactly 128
 * bytes, has the wrong magic, version, type or length field, a MAC that does
 * not verify (checked in constant time before any other field is looked at),
 * non-zero reserved bytes, an unknown state, flag or name, its own name, a
 * timestamp further than the replay window from its clock, or a sequence at
 * or below the last accepted one of the same incarnation.  A new incarnation
 * is accepted only with a later timestamp than the last accepted packet, so
 * an old packet replayed within the window is still refused.  Nothing is
 * acted on until all checks pass.  See docs/HA-PROTOCOL.md. */
#ifndef BUOY_HB_H
#define BUOY_HB_H

#include <stddef.h>
#include <stdint.h>

#define HB_LEN            128
#define HB_MAC_OFF        96
#define HB_VERSION        1
#define HB_TYPE_HEARTBEAT 1

#define HB_F_STANDBY  0x01 /* manual standby: not a candidate */
#define HB_F_TAKEOVER 0x02 /* asks the active node to hand over */
#define HB_F_HOLD     0x04 /* holding back (flap damping, failover hold): not a candidate */
#define HB_F_ALL      0x07

struct hb_msg {
    uint64_t incarnation, seq, sent_ms, epoch;
    uint8_t state, flags;
    uint32_t claims;
    char node[32];
};

enum hb_drop {
    HB_ACCEPT = 0,
    HB_DROP_SHORT,
    HB_DROP_LONG,
    HB_DROP_MAGIC,
    HB_DROP_VERSION,
    HB_DROP_MAC,
    HB_DROP_FIELD,
    HB_DROP_UNKNOWN,
    HB_DROP_SELF,
    HB_DROP_WINDOW,
    HB_DROP_REPLAY,
};
#define HB_NDROP 11

struct hb_replay {
    int have;
    uint64_t incarnation, seq, sent_ms;
};

void hb_encode(const struct hb_msg *m, const uint8_t *key, size_t keylen, uint8_t out[HB_LEN]);
/* Layout and MAC checks; fills *m only on HB_ACCEPT.  Does not look at names
 * or the replay state (hb_admit does). */
enum hb_drop hb_decode(const void *p, size_t n, const uint8_t *key, size_t keylen,
                       struct hb_msg *m);
/* Time window and replay checks for a decoded message; records it when
 * admitted. */
enum hb_drop hb_admit(struct hb_replay *r, const struct hb_msg *m, uint64_t now_wall_ms,
                      uint64_t window_ms);
const char *hb_drop_name(enum hb_drop d);

#endif
