/* test_hb.c - unit tests of the heartbeat packet (src/ha/hb.c).
 *
 * What matters: a packet from a node with the key is accepted once, and
 * nothing else ever is: a wrong key, every truncation and extension, every
 * single-bit flip, random garbage (a fuzz loop), replays of a packet, of an
 * older sequence number, of an older incarnation, and packets outside the
 * time window.  The exact byte layout is pinned so docs/HA-PROTOCOL.md stays
 * true. */
#include "ha/hb.h"
#include "tap.h"
#include "util/rng.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const uint8_t KEY[] = "correct horse battery staple";
static const uint8_t BAD[] = "correct horse battery stapl3";
#define KL (sizeof KEY - 1)

static struct hb_msg sample(uint64_t seq, uint64_t t)
{
    struct hb_msg m = {.incarnation = 0x1122334455667788ull,
                       .seq = seq,
                       .sent_ms = t,
                       .epoch = 9,
                       .state = 3,
                       .flags = HB_F_TAKEOVER,
                       .claims = 258};
    snprintf(m.node, sizeof m.node, "alpha-1");
    return m;
}

static void test_layout(void)
{
    struct hb_msg m = sample(5, 1700000000123ull), back;
    uint8_t p[HB_LEN];
    hb_encode(&m, KEY, KL, p);
    ok(memcmp(p, "BYHA\x01\x01\x00\x80", 8) == 0, "magic, version, type and length come first");
    ok(p[8] == 0x11 && p[15] == 0x88, "incarnation is big-endian at 8");
    ok(p[23] == 5 && p[16] == 0, "sequence at 16");
    ok(p[40] == 3 && p[41] == HB_F_TAKEOVER, "state at 40, flags at 41");
    ok(p[46] == 1 && p[47] == 2, "claims at 44, big-endian");
    ok(memcmp(p + 48, "alpha-1\0", 8) == 0, "node name at 48");
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_ACCEPT, "round trip is accepted");
    ok(back.seq == 5 && back.sent_ms == m.sent_ms && back.epoch == 9 && back.claims == 258 &&
           strcmp(back.node, "alpha-1") == 0 && back.flags == HB_F_TAKEOVER && back.state == 3,
       "every field comes back");
    is_int(hb_decode(p, sizeof p, BAD, KL, &back), HB_DROP_MAC, "a wrong key is a MAC failure");
    is_int(hb_decode(p, sizeof p, KEY, KL - 1, &back), HB_DROP_MAC, "a shorter key is refused");
}

static void test_damage(void)
{
    struct hb_msg m = sample(7, 1700000000000ull), back;
    uint8_t p[HB_LEN], q[HB_LEN + 64];
    hb_encode(&m, KEY, KL, p);
    int accepted = 0;
    for (size_t n = 0; n < HB_LEN; n++)
        accepted += hb_decode(p, n, KEY, KL, &back) != HB_DROP_SHORT;
    is_int(accepted, 0, "every truncation is dropped as short");
    memcpy(q, p, HB_LEN);
    memset(q + HB_LEN, 0, 64);
    accepted = 0;
    for (size_t n = HB_LEN + 1; n <= sizeof q; n++)
        accepted += hb_decode(q, n, KEY, KL, &back) != HB_DROP_LONG;
    is_int(accepted, 0, "every extension is dropped as oversized");
    accepted = 0;
    for (size_t bit = 0; bit < HB_LEN * 8; bit++) {
        memcpy(q, p, HB_LEN);
        q[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        accepted += hb_decode(q, HB_LEN, KEY, KL, &back) == HB_ACCEPT;
    }
    is_int(accepted, 0, "every one of the 1024 single-bit flips is dropped");
}

static void test_fuzz(void)
{
    struct rng g;
    struct hb_msg back;
    uint8_t p[HB_LEN], good[HB_LEN];
    struct hb_msg m = sample(1, 1700000000000ull);
    hb_encode(&m, KEY, KL, good);
    rng_seed(&g, 42);
    int accepted = 0, counts[HB_NDROP] = {0};
    for (int i = 0; i < 200000; i++) {
        size_t n;
        if (i % 2) {
            /* pure garbage, sometimes with our magic and version to get past them */
            n = (size_t)rng_below(&g, 3) == 0 ? (size_t)rng_below(&g, 300) : HB_LEN;
            for (size_t k = 0; k < n && k < sizeof p; k++)
                p[k] = (uint8_t)rng_next(&g);
            if (n >= 5 && rng_below(&g, 2))
                memcpy(p, "BYHA\x01", 5);
            if (n > sizeof p)
                n = sizeof p;
        } else {
            /* a good packet with a few random bytes changed */
            memcpy(p, good, HB_LEN);
            n = HB_LEN;
            int k = 1 + (int)rng_below(&g, 4);
            for (int j = 0; j < k; j++) {
                size_t at = rng_below(&g, HB_LEN);
                uint8_t v = (uint8_t)rng_next(&g);
                if (v == p[at])
                    v ^= 1;
                p[at] = v;
            }
        }
        if (n == HB_LEN && memcmp(p, good, HB_LEN) == 0)
            continue; /* the changes cancelled out */
        enum hb_drop d = hb_decode(p, n, KEY, KL, &back);
        if (d == HB_ACCEPT)
            accepted++;
        counts[d]++;
    }
    is_int(accepted, 0, "200,000 fuzzed packets: none accepted");
    diag("drops: short %d long %d magic %d version %d mac %d", counts[HB_DROP_SHORT],
         counts[HB_DROP_LONG], counts[HB_DROP_MAGIC], counts[HB_DROP_VERSION], counts[HB_DROP_MAC]);
    ok(counts[HB_DROP_MAC] > 50000, "most damaged packets get as far as the MAC check");
}

/* A well-formed, correctly signed packet with bad fields is still dropped. */
static void test_fields(void)
{
    struct hb_msg m = sample(1, 1700000000000ull), back;
    uint8_t p[HB_LEN];
    m.state = 6;
    hb_encode(&m, KEY, KL, p);
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_DROP_FIELD, "unknown state");
    m = sample(1, 1);
    m.flags = 0x80;
    hb_encode(&m, KEY, KL, p);
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_DROP_FIELD, "unknown flag");
    m = sample(0, 1);
    hb_encode(&m, KEY, KL, p);
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_DROP_FIELD, "sequence 0");
    m = sample(1, 1);
    m.node[0] = '\0';
    hb_encode(&m, KEY, KL, p);
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_DROP_FIELD, "empty node name");
    m = sample(1, 1);
    snprintf(m.node, sizeof m.node, "a b");
    hb_encode(&m, KEY, KL, p);
    is_int(hb_decode(p, sizeof p, KEY, KL, &back), HB_DROP_FIELD, "a space in the node name");
}

static void test_replay(void)
{
    struct hb_replay r = {0};
    uint64_t now = 1700000000000ull, win = 2000;
    struct hb_msg m = sample(10, now);
    is_int(hb_admit(&r, &m, now, win), HB_ACCEPT, "first packet admitted");
    is_int(hb_admit(&r, &m, now, win), HB_DROP_REPLAY, "the same packet again is a replay");
    m.seq = 9;
    is_int(hb_admit(&r, &m, now, win), HB_DROP_REPLAY, "an older sequence is a replay");
    m.seq = 11;
    m.sent_ms = now + 100;
    is_int(hb_admit(&r, &m, now + 100, win), HB_ACCEPT, "the next sequence is admitted");
    struct hb_msg old = sample(500, now + 50);
    old.incarnation = 0xdead;
    is_int(
        hb_admit(&r, &old, now + 200, win), HB_DROP_REPLAY,
        "another incarnation with an older timestamp is a replay (a restarted node's old packets)");
    struct hb_msg fresh = sample(1, now + 300);
    fresh.incarnation = 0xbeef;
    is_int(hb_admit(&r, &fresh, now + 300, win), HB_ACCEPT,
           "a new incarnation with a later timestamp is admitted (the peer restarted)");
    /* m (seq 11, sent now+100) was captured earlier; replayed now it is refused. */
    is_int(hb_admit(&r, &m, now + 400, win), HB_DROP_REPLAY,
           "a captured packet of the previous incarnation is not admitted again");
    struct hb_replay r2 = {0};
    struct hb_msg late = sample(1, now - win - 1);
    is_int(hb_admit(&r2, &late, now, win), HB_DROP_WINDOW, "a packet older than the window");
    struct hb_msg early = sample(1, now + win + 1);
    is_int(hb_admit(&r2, &early, now, win), HB_DROP_WINDOW, "a packet from the future");
    ok(!r2.have, "dropped packets leave no trace in the replay state");
}

int main(void)
{
    plan_no_plan();
    test_layout();
    test_damage();
    test_fields();
    test_fuzz();
    test_replay();
    return done_testing();
}
