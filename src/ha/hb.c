/* hb.c - encoding and checking heartbeat packets (layout in hb.h). */
#include "hb.h"
#include "util/hash.h"

#include <openssl/crypto.h>
#include <string.h>

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void hb_encode(const struct hb_msg *m, const uint8_t *key, size_t keylen, uint8_t out[HB_LEN])
{
    memset(out, 0, HB_LEN);
    memcpy(out, "BYHA", 4);
    out[4] = HB_VERSION;
    out[5] = HB_TYPE_HEARTBEAT;
    out[6] = HB_LEN >> 8;
    out[7] = HB_LEN & 0xff;
    put64(out + 8, m->incarnation);
    put64(out + 16, m->seq);
    put64(out + 24, m->sent_ms);
    put64(out + 32, m->epoch);
    out[40] = m->state;
    out[41] = m->flags;
    out[44] = (uint8_t)(m->claims >> 24);
    out[45] = (uint8_t)(m->claims >> 16);
    out[46] = (uint8_t)(m->claims >> 8);
    out[47] = (uint8_t)m->claims;
    size_t nl = strnlen(m->node, sizeof m->node - 1);
    memcpy(out + 48, m->node, nl);
    hmac_sha256(key, keylen, out, HB_MAC_OFF, out + HB_MAC_OFF);
}

static int zeros(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

enum hb_drop hb_decode(const void *buf, size_t n, const uint8_t *key, size_t keylen,
                       struct hb_msg *m)
{
    const uint8_t *p = buf;
    uint8_t mac[SHA256_LEN];
    if (n < HB_LEN)
        return HB_DROP_SHORT;
    if (n > HB_LEN)
        return HB_DROP_LONG;
    if (memcmp(p, "BYHA", 4) != 0)
        return HB_DROP_MAGIC;
    if (p[4] != HB_VERSION)
        return HB_DROP_VERSION;
    hmac_sha256(key, keylen, p, HB_MAC_OFF, mac);
    if (CRYPTO_memcmp(mac, p + HB_MAC_OFF, SHA256_LEN) != 0)
        return HB_DROP_MAC;
    /* Authentic from here on; still, only well-formed packets are used. */
    if (p[5] != HB_TYPE_HEARTBEAT || p[6] != (HB_LEN >> 8) || p[7] != (HB_LEN & 0xff) ||
        !zeros(p + 42, 2) || !zeros(p + 80, 16) || p[40] > 5 || (p[41] & ~HB_F_ALL))
        return HB_DROP_FIELD;
    const uint8_t *name = p + 48;
    size_t nl = strnlen((const char *)name, 32);
    if (nl == 0 || nl == 32 || !zeros(name + nl, 32 - nl))
        return HB_DROP_FIELD;
    for (size_t i = 0; i < nl; i++) {
        uint8_t ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return HB_DROP_FIELD;
    }
    uint64_t seq = get64(p + 16);
    if (seq == 0)
        return HB_DROP_FIELD;
    memset(m, 0, sizeof *m);
    m->incarnation = get64(p + 8);
    m->seq = seq;
    m->sent_ms = get64(p + 24);
    m->epoch = get64(p + 32);
    m->state = p[40];
    m->flags = p[41];
    m->claims = (uint32_t)p[44] << 24 | (uint32_t)p[45] << 16 | (uint32_t)p[46] << 8 | p[47];
    memcpy(m->node, name, nl);
    return HB_ACCEPT;
}

enum hb_drop hb_admit(struct hb_replay *r, const struct hb_msg *m, uint64_t now_wall_ms,
                      uint64_t window_ms)
{
    uint64_t d = m->sent_ms > now_wall_ms ? m->sent_ms - now_wall_ms : now_wall_ms - m->sent_ms;
    if (d > window_ms)
        return HB_DROP_WINDOW;
    if (r->have) {
        if (m->incarnation == r->incarnation) {
            if (m->seq <= r->seq)
                return HB_DROP_REPLAY;
        } else if (m->sent_ms <= r->sent_ms) {
            return HB_DROP_REPLAY;
        }
    }
    r->have = 1;
    r->incarnation = m->incarnation;
    r->seq = m->seq;
    r->sent_ms = m->sent_ms;
    return HB_ACCEPT;
}

const char *hb_drop_name(enum hb_drop d)
{
    static const char *const names[HB_NDROP] = {
        "accepted", "short",        "long", "magic",  "version", "mac",
        "field",    "unknown-node", "self", "window", "replay",
    };
    return (unsigned)d < HB_NDROP ? names[d] : "?";
}
