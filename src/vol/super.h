/* super.h - the volume superblock: what a volume is (docs/FORMAT.md). */
#ifndef BUOY_SUPER_H
#define BUOY_SUPER_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SUPER_KEY "super"
#define SUPER_VERSION 1
#define SUPER_BASE_MAX 1100 /* a URL of up to 1024 bytes, "@" and a snapshot name */
/* A superblock with lines an older buoy must not ignore (encryption, a
 * clone's base) says version 2, so that a buoy from before them refuses it
 * instead of ignoring those lines. */
#define SUPER_VERSION_2 2
/* An encrypted volume whose master key is wrapped under its passphrase (the
 * wrapped-key line): a buoy from before it would take the passphrase's key
 * for the master key and call every passphrase wrong. */
#define SUPER_VERSION_3 3
#define SUPER_WRAPPED_LEN 72 /* KEYS_WRAPPED_LEN */
#define SUPER_CIPHER "xchacha20-poly1305"

struct vol_keys;

struct vol_super {
    int version;
    uint8_t uuid[16];
    uint64_t size;         /* bytes, a multiple of block_size */
    uint32_t block_size;   /* power of two, 512..65536 */
    uint32_t segment_size; /* bytes, a multiple of block_size, <= 256 MiB */
    char compression[16];  /* "none", "zstd" (level 3) or "zstd:N" (1..19) */
    time_t created;
    /* A clone (buoy clone): the snapshot it started from, "URL@NAME" ("" for
     * a volume of its own), that volume's uuid, and the snapshot's seq:
     * segments up to base_seq are read from there, never written here. */
    char base[SUPER_BASE_MAX];
    uint8_t base_uuid[16];
    uint64_t base_seq;
    /* encryption (docs/FORMAT.md, Encryption); all zero on a plain volume */
    char encryption[24];   /* SUPER_CIPHER, or "none" / "" */
    uint64_t kdf_ops, kdf_mem; /* Argon2id passes and bytes */
    uint8_t salt[16];
    int wrapped;           /* version 3: wrapped_key is the master key under the passphrase */
    uint8_t wrapped_key[SUPER_WRAPPED_LEN];
    uint8_t key_check[32];
    uint8_t mac[32];
    size_t mac_covers;     /* super_parse: bytes of the text the mac is of */
};

/* Checks the fields against the format's limits; -1 + err when out of them. */
int super_validate(const struct vol_super *sb, char *err, size_t errlen);
/* 0 for no compression, the zstd level, or -1 when compression is not one we know. */
int super_zstd_level(const struct vol_super *sb);
/* The text form, check line included. */
void super_encode(const struct vol_super *sb, struct buf *out);
/* With encryption, the mac line is computed under k's mac key (k NULL:
 * sb->mac is written as it is). */
void super_encode_keyed(const struct vol_super *sb, const struct vol_keys *k, struct buf *out);
int super_encrypted(const struct vol_super *sb);
/* The version sb's fields call for: 1 for a plain volume of its own, 3
 * with a wrapped key, else 2 (a clone, or encrypted from before wrapped keys). */
int super_version_for(const struct vol_super *sb);
/* Makes sb an encrypted volume's: version, cipher and key-check (salt, KDF
 * parameters and wrapped key must be set, k the keys they open: keys_lock). */
void super_set_encryption(struct vol_super *sb, const struct vol_keys *k);
/* For an encrypted sb parsed from text: 0 when k opens it, SUPER_WRONG_KEY
 * when k does not pass the key-check, SUPER_ALTERED when the text's mac
 * does not match. */
enum { SUPER_WRONG_KEY = 1, SUPER_ALTERED = 2 };
int super_verify_keys(const struct vol_super *sb, const char *text, const struct vol_keys *k);
/* Parses and verifies; -1 + err naming what is wrong.  The mac of an
 * encrypted superblock needs the key: super_verify_keys() checks it. */
int super_parse(const char *text, size_t len, struct vol_super *sb, char *err, size_t errlen);
/* A fresh random (version 4) uuid. */
void super_new_uuid(uint8_t uuid[16]);
void super_uuid_str(const uint8_t uuid[16], char out[37]);
int super_uuid_parse(const char *s, uint8_t uuid[16]);

#endif
