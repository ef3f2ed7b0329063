/* super.c - encoding and checking the superblock.
 *
 * The superblock is text so an operator can read it with
 * `buoy store get URL super`:
 *
 *     buoy-volume 1
 *     uuid 6f1c0d2e-8a5b-4c1e-9f00-2b7d3c4e5f60
 *     size 17179869184
 *     block-size 4096
 *     segment-size 8388608
 *     compression none
 *     created 2026-11-21T05:40:00Z
 *     check 1a2b3c4d5e6f7081
 *
 * A clone (version 2) has three more lines before check (and before the
 * encryption lines, so that the mac covers them):
 *
 *     base s3://bucket/vol@monday
 *     base-uuid 0b8e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4
 *     base-seq 1234
 *
 * An encrypted volume (version 3) has six more lines before check:
 *
 *     encryption xchacha20-poly1305
 *     kdf argon2id ops=3 mem=67108864
 *     salt 00112233445566778899aabbccddeeff
 *     wrapped-key <144 hex digits: the master key sealed under the passphrase's>
 *     key-check <64 hex digits: keyed BLAKE2b of the kdf and salt lines>
 *     mac <64 hex digits: keyed BLAKE2b of every byte before this line>
 *
 * (A version 2 encrypted volume, from before wrapped keys, has no
 * wrapped-key line: its master key is the passphrase's.)
 *
 * `check` is the XXH3-64, 16 lower-case hex digits, of every byte before
 * the check line.  Parsing refuses a bad check, an unknown version, a
 * missing or repeated field, and values outside the format's limits. */
#include "super.h"
#include "keys.h"
#include "util/clock.h"
#include "util/size.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#define MAX_SEGMENT_SIZE (256u << 20)

int super_encrypted(const struct vol_super *sb)
{
    return strcmp(sb->encryption, SUPER_CIPHER) == 0;
}

/* The message for a volume of more blocks than the map can hold, with the
 * limit: 2^42 - 2^10 blocks (just under 16 PiB of 4 KiB blocks). */
static void too_large(uint64_t size, uint32_t bs, char *err, size_t errlen)
{
    char have[32], all[32], less[32];
    size_format(size, have, sizeof have);
    size_format((uint64_t)bs << 42, all, sizeof all);
    size_format((uint64_t)bs << 10, less, sizeof less);
    snprintf(err, errlen,
             "size %" PRIu64 " (%s) is too large: the limit is %" PRIu64
             " bytes (%s less %s) with %u-byte blocks",
             size, have, (uint64_t)UINT32_MAX * 1024 * bs, all, less, bs);
}

int super_validate(const struct vol_super *sb, char *err, size_t errlen)
{
    uint32_t bs = sb->block_size;
    int plain = !sb->encryption[0] || strcmp(sb->encryption, "none") == 0;
    if (sb->version < SUPER_VERSION || sb->version > SUPER_VERSION_3)
        snprintf(err, errlen, "format version %d is not supported (this buoy reads %d to %d)",
                 sb->version, SUPER_VERSION, SUPER_VERSION_3);
    else if (!plain && !super_encrypted(sb))
        snprintf(err, errlen, "encryption '%s' is not supported: none or " SUPER_CIPHER,
                 sb->encryption);
    else if (plain && sb->wrapped)
        snprintf(err, errlen, "a wrapped key without encryption");
    else if (sb->version != super_version_for(sb))
        snprintf(err, errlen, "format version %d does not go with encryption %s%s%s", sb->version,
                 plain ? "none" : sb->encryption, sb->wrapped ? " and a wrapped key" : "",
                 sb->base[0] ? " and a base" : "");
    else if (!plain && (sb->kdf_ops < 1 || sb->kdf_ops > KEYS_MAX_OPS ||
                        sb->kdf_mem < KEYS_MIN_MEM || sb->kdf_mem > KEYS_MAX_MEM))
        snprintf(err, errlen,
                 "KDF parameters ops=%" PRIu64 " mem=%" PRIu64
                 " are out of range (ops 1..%d, mem 8K..4G)",
                 sb->kdf_ops, sb->kdf_mem, KEYS_MAX_OPS);
    else if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
        snprintf(err, errlen, "block size %u is not a power of two from 512 to 65536", bs);
    else if (sb->size == 0 || sb->size % bs)
        snprintf(err, errlen, "size %" PRIu64 " is not a positive multiple of the block size %u",
                 sb->size, bs);
    else if (sb->size / bs > UINT32_MAX * 1024ull)
        too_large(sb->size, bs, err, errlen);
    else if (sb->segment_size < bs || sb->segment_size % bs || sb->segment_size > MAX_SEGMENT_SIZE)
        snprintf(err, errlen,
                 "segment size %u is not a multiple of the block size %u up to 256 MiB",
                 sb->segment_size, bs);
    else if (super_zstd_level(sb) < 0)
        snprintf(err, errlen, "compression '%s' is not supported: none, zstd or zstd:1..19",
                 sb->compression);
    else
        return 0;
    return -1;
}

int super_zstd_level(const struct vol_super *sb)
{
    if (strcmp(sb->compression, "none") == 0)
        return 0;
    if (strcmp(sb->compression, "zstd") == 0)
        return 3;
    int level;
    char extra;
    if (sscanf(sb->compression, "zstd:%d%c", &level, &extra) == 1 && level >= 1 && level <= 19)
        return level;
    return -1;
}

void super_uuid_str(const uint8_t u[16], char out[37])
{
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

int super_uuid_parse(const char *s, uint8_t u[16])
{
    int n = 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
            continue;
        }
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (n % 2 == 0)
            u[n / 2] = (uint8_t)(v << 4);
        else
            u[n / 2] |= (uint8_t)v;
        n++;
    }
    return s[36] == '\0' ? 0 : -1;
}

void super_new_uuid(uint8_t u[16])
{
    if (getrandom(u, 16, 0) != 16) {
        fprintf(stderr, "buoy: getrandom failed\n");
        abort();
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] | v) : v << 4);
    }
    return 0;
}

/* What the key-check is a MAC of: the KDF and salt lines, as written. */
static void key_check_of(const struct vol_super *sb, const struct vol_keys *k, uint8_t out[32])
{
    char salt[33];
    struct buf m = {0};
    hex(sb->salt, sizeof sb->salt, salt);
    buf_printf(&m, "buoy key-check 1\nkdf argon2id ops=%" PRIu64 " mem=%" PRIu64 "\nsalt %s\n",
               sb->kdf_ops, sb->kdf_mem, salt);
    keys_mac(k->check, m.p, m.len, out);
    buf_free(&m);
}

int super_version_for(const struct vol_super *sb)
{
    if (sb->wrapped)
        return SUPER_VERSION_3;
    return super_encrypted(sb) || sb->base[0] ? SUPER_VERSION_2 : SUPER_VERSION;
}

void super_set_encryption(struct vol_super *sb, const struct vol_keys *k)
{
    snprintf(sb->encryption, sizeof sb->encryption, "%s", SUPER_CIPHER);
    sb->version = super_version_for(sb);
    key_check_of(sb, k, sb->key_check);
}

int super_verify_keys(const struct vol_super *sb, const char *text, const struct vol_keys *k)
{
    uint8_t want[32];
    key_check_of(sb, k, want);
    if (sodium_memcmp(want, sb->key_check, sizeof want) != 0)
        return SUPER_WRONG_KEY;
    keys_mac(k->mac, text, sb->mac_covers, want);
    if (sodium_memcmp(want, sb->mac, sizeof want) != 0)
        return SUPER_ALTERED;
    return 0;
}

void super_encode(const struct vol_super *sb, struct buf *out)
{
    super_encode_keyed(sb, NULL, out);
}

void super_encode_keyed(const struct vol_super *sb, const struct vol_keys *k, struct buf *out)
{
    char uuid[37], when[32];
    struct tm tm;
    time_t t = sb->created;
    super_uuid_str(sb->uuid, uuid);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    size_t start = out->len;
    buf_printf(out,
               "buoy-volume %d\nuuid %s\nsize %" PRIu64 "\nblock-size %u\nsegment-size %u\n"
               "compression %s\ncreated %s\n",
               sb->version, uuid, sb->size, sb->block_size, sb->segment_size, sb->compression,
               when);
    if (sb->base[0]) {
        char bu[37];
        super_uuid_str(sb->base_uuid, bu);
        buf_printf(out, "base %s\nbase-uuid %s\nbase-seq %" PRIu64 "\n", sb->base, bu,
                   sb->base_seq);
    }
    if (super_encrypted(sb)) {
        char salt[33], kc[65], mac[65], wk[2 * SUPER_WRAPPED_LEN + 1];
        uint8_t m[32];
        hex(sb->salt, sizeof sb->salt, salt);
        hex(sb->key_check, sizeof sb->key_check, kc);
        buf_printf(out, "encryption %s\nkdf argon2id ops=%" PRIu64 " mem=%" PRIu64 "\nsalt %s\n",
                   sb->encryption, sb->kdf_ops, sb->kdf_mem, salt);
        if (sb->wrapped) {
            hex(sb->wrapped_key, sizeof sb->wrapped_key, wk);
            buf_printf(out, "wrapped-key %s\n", wk);
        }
        buf_printf(out, "key-check %s\n", kc);
        if (k)
            keys_mac(k->mac, out->p + start, out->len - start, m);
        else
            memcpy(m, sb->mac, sizeof m);
        hex(m, sizeof m, mac);
        buf_printf(out, "mac %s\n", mac);
    }
    buf_printf(out, "check %016llx\n",
               (unsigned long long)XXH3_64bits(out->p + start, out->len - start));
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    if (!*v || *v == '-' || *v == '+')
        return -1;
    *out = strtoull(v, &end, 10);
    return *end ? -1 : 0;
}

int super_parse(const char *text, size_t len, struct vol_super *sb, char *err, size_t errlen)
{
    enum { F_UUID = 1, F_SIZE = 2, F_BS = 4, F_SEG = 8, F_COMP = 16, F_CREATED = 32 };
    enum { F_ENC = 64, F_KDF = 128, F_SALT = 256, F_KCHK = 512, F_MAC = 1024 };
    enum { F_BASE = 2048, F_BASE_UUID = 4096, F_BASE_SEQ = 8192, F_WRAP = 16384 };
    const unsigned F_CRYPT = F_ENC | F_KDF | F_SALT | F_KCHK | F_MAC;
    const char *check = NULL;
    unsigned seen = 0;
    memset(sb, 0, sizeof *sb);

    if (len < 12 || memcmp(text, "buoy-volume ", 12) != 0) {
        snprintf(err, errlen, "not a buoy superblock");
        return -1;
    }
    /* find the check line: it must be the last line */
    for (size_t i = 0; i + 6 < len; i++)
        if ((i == 0 || text[i - 1] == '\n') && memcmp(text + i, "check ", 6) == 0) {
            check = text + i;
            break;
        }
    if (!check || len - (size_t)(check - text) != 6 + 16 + 1 || text[len - 1] != '\n') {
        snprintf(err, errlen, "superblock has no check line at its end");
        return -1;
    }
    char hex[17];
    memcpy(hex, check + 6, 16);
    hex[16] = '\0';
    char want[17];
    snprintf(want, sizeof want, "%016llx",
             (unsigned long long)XXH3_64bits(text, (size_t)(check - text)));
    if (strcmp(hex, want) != 0) {
        snprintf(err, errlen, "superblock check mismatch (damaged or edited)");
        return -1;
    }
    /* fields */
    const char *p = text;
    while (p < check) {
        const char *nl = memchr(p, '\n', (size_t)(check - p));
        char line[SUPER_BASE_MAX + 64];
        size_t n = (size_t)(nl - p);
        if (!nl || n >= sizeof line) {
            snprintf(err, errlen, "superblock line too long");
            return -1;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        char *sp = strchr(line, ' ');
        if (!sp) {
            snprintf(err, errlen, "superblock line '%s' has no value", line);
            return -1;
        }
        *sp = '\0';
        const char *k = line, *v = sp + 1;
        uint64_t u = 0;
        unsigned bit = 0;
        int bad = 0;
        if (strcmp(k, "buoy-volume") == 0) {
            bad = parse_u64(v, &u) < 0 || u > 1000;
            sb->version = (int)u;
        } else if (strcmp(k, "uuid") == 0) {
            bit = F_UUID;
            bad = super_uuid_parse(v, sb->uuid) < 0;
        } else if (strcmp(k, "size") == 0) {
            bit = F_SIZE;
            bad = parse_u64(v, &sb->size) < 0;
        } else if (strcmp(k, "block-size") == 0) {
            bit = F_BS;
            bad = parse_u64(v, &u) < 0 || u > UINT32_MAX;
            sb->block_size = (uint32_t)u;
        } else if (strcmp(k, "segment-size") == 0) {
            bit = F_SEG;
            bad = parse_u64(v, &u) < 0 || u > UINT32_MAX;
            sb->segment_size = (uint32_t)u;
        } else if (strcmp(k, "compression") == 0) {
            bit = F_COMP;
            bad = strlen(v) >= sizeof sb->compression;
            if (!bad)
                strcpy(sb->compression, v);
        } else if (strcmp(k, "created") == 0) {
            bit = F_CREATED;
            sb->created = clock_parse_iso8601(v);
            bad = sb->created < 0;
        } else if (strcmp(k, "base") == 0) {
            bit = F_BASE;
            const char *at = strrchr(v, '@');
            bad = strlen(v) >= sizeof sb->base || !at || at == v;
            if (!bad)
                strcpy(sb->base, v);
        } else if (strcmp(k, "base-uuid") == 0) {
            bit = F_BASE_UUID;
            bad = super_uuid_parse(v, sb->base_uuid) < 0;
        } else if (strcmp(k, "base-seq") == 0) {
            bit = F_BASE_SEQ;
            bad = parse_u64(v, &sb->base_seq) < 0;
        } else if (strcmp(k, "encryption") == 0) {
            bit = F_ENC;
            bad = strlen(v) >= sizeof sb->encryption;
            if (!bad)
                strcpy(sb->encryption, v);
        } else if (strcmp(k, "kdf") == 0) {
            unsigned long long ops = 0, mem = 0;
            char extra;
            bit = F_KDF;
            bad = sscanf(v, "argon2id ops=%llu mem=%llu%c", &ops, &mem, &extra) != 2;
            sb->kdf_ops = ops;
            sb->kdf_mem = mem;
        } else if (strcmp(k, "salt") == 0) {
            bit = F_SALT;
            bad = unhex(v, sb->salt, sizeof sb->salt) < 0;
        } else if (strcmp(k, "wrapped-key") == 0) {
            bit = F_WRAP;
            bad = unhex(v, sb->wrapped_key, sizeof sb->wrapped_key) < 0;
            sb->wrapped = !bad;
        } else if (strcmp(k, "key-check") == 0) {
            bit = F_KCHK;
            bad = unhex(v, sb->key_check, sizeof sb->key_check) < 0;
        } else if (strcmp(k, "mac") == 0) {
            /* the mac is of everything before it, so nothing may follow it */
            bit = F_MAC;
            bad = unhex(v, sb->mac, sizeof sb->mac) < 0 || p != check;
            sb->mac_covers = (size_t)(p - text) - n - 1;
        } else
            continue; /* unknown fields from a later minor change are ignored */
        if (bad || (seen & bit)) {
            snprintf(err, errlen, "superblock field '%s' %s", k, bad ? "has a bad value" : "repeats");
            return -1;
        }
        seen |= bit;
    }
    unsigned clone = F_BASE | F_BASE_UUID | F_BASE_SEQ;
    unsigned need = F_UUID | F_SIZE | F_BS | F_SEG | F_COMP | F_CREATED;
    if (super_encrypted(sb))
        need |= F_CRYPT | (sb->version >= SUPER_VERSION_3 ? F_WRAP : 0);
    else
        seen &= ~(unsigned)F_ENC; /* "encryption none" may be said or not */
    if ((seen & ~clone) != need) {
        snprintf(err, errlen, "superblock lacks a field%s",
                 super_encrypted(sb) ? " of encryption" : " (or has stray encryption fields)");
        return -1;
    }
    if ((seen & clone) && (seen & clone) != clone) {
        snprintf(err, errlen, "superblock has only some of base, base-uuid and base-seq");
        return -1;
    }
    return super_validate(sb, err, errlen);
}
