/* keys.h - an encrypted volume's keys, from its passphrase.
 *
 *     kek    = Argon2id(passphrase, salt (16 random bytes per volume), ops, mem)
 *     master = 32 random bytes, made at create, kept in the superblock's
 *              wrapped-key line sealed under kek (XChaCha20-Poly1305)
 *     data   = KDF(master, id 1, "buoyvol1")  the store layer's key (store_crypt.c)
 *     check  = KDF(master, id 2, "buoyvol1")  MACs the superblock's key-check
 *     mac    = KDF(master, id 3, "buoyvol1")  MACs the superblock's text
 *     local  = KDF(master, id 4, "buoyvol1")  seals the local journal (journal.c)
 *
 * Changing the passphrase rewraps the same master key under a new kek (new
 * salt too), so no object is touched.  A volume made before wrapped keys
 * (superblock version 2 without wrapped-key) has master = kek.
 *
 * KDF is libsodium's crypto_kdf_derive_from_key (BLAKE2b); the MACs are
 * keyed BLAKE2b-256. */
#ifndef BUOY_KEYS_H
#define BUOY_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_LEN         32
#define KEYS_SALT_LEN    16
#define KEYS_DEFAULT_OPS 3
#define KEYS_DEFAULT_MEM (64ull << 20)
#define KEYS_MIN_MEM     8192ull      /* libsodium's floor for Argon2id */
#define KEYS_MAX_MEM     (4ull << 30) /* a superblock asking for more is refused */
#define KEYS_MAX_OPS     64

/* nonce, sealed master key, tag */
#define KEYS_WRAPPED_LEN (24 + KEYS_LEN + 16)

struct vol_keys {
    uint8_t master[KEYS_LEN];
    uint8_t data[KEYS_LEN];
    uint8_t check[KEYS_LEN];
    uint8_t mac[KEYS_LEN];
    uint8_t local[KEYS_LEN];
};

/* The passphrase in FILE: one trailing newline stripped, never empty.  A
 * warning is logged when group or others may read the file.  *pass is
 * locked memory: give it back with keys_free_passphrase(). */
int keys_read_passphrase(const char *path, char **pass, size_t *len, char *err, size_t errlen);
void keys_free_passphrase(char *pass, size_t len);
/* Argon2id of the passphrase: kek; -1 + err when out of memory or the
 * parameters are out of range. */
int keys_kek(const char *pass, size_t len, const uint8_t salt[KEYS_SALT_LEN], uint64_t ops,
             uint64_t mem, uint8_t kek[KEYS_LEN], char *err, size_t errlen);
/* The keys of a version 2 superblock, from before wrapped keys: kek is the
 * master key. */
int keys_derive(const char *pass, size_t len, const uint8_t salt[KEYS_SALT_LEN], uint64_t ops,
                uint64_t mem, struct vol_keys *k, char *err, size_t errlen);
/* The three keys of master (k->master is set to it). */
void keys_from_master(const uint8_t master[KEYS_LEN], struct vol_keys *k);
/* A new volume's keys: a random master key. */
void keys_new(struct vol_keys *k);
/* k's master key sealed under kek, with a fresh random nonce. */
void keys_wrap(const uint8_t kek[KEYS_LEN], const struct vol_keys *k,
               uint8_t out[KEYS_WRAPPED_LEN]);
/* The keys whose master key w seals under kek; -1 when kek does not open w
 * (a wrong passphrase, or an altered kdf, salt or wrapped-key line). */
int keys_unwrap(const uint8_t kek[KEYS_LEN], const uint8_t w[KEYS_WRAPPED_LEN],
                struct vol_keys *k);
/* Keyed BLAKE2b-256 of msg. */
void keys_mac(const uint8_t key[KEYS_LEN], const void *msg, size_t n, uint8_t out[KEYS_LEN]);
/* Fresh random salt. */
void keys_new_salt(uint8_t salt[KEYS_SALT_LEN]);
void keys_wipe(struct vol_keys *k);

struct vol_super;
/* Puts k under the passphrase in sb: a fresh salt, the KDF parameters ops
 * and mem, the wrapped key and the key-check (superblock version 3).  The
 * mac is made when sb is encoded with k (super_encode_keyed).  -1 + err. */
int keys_lock(struct vol_super *sb, const struct vol_keys *k, const char *pass, size_t len,
              uint64_t ops, uint64_t mem, char *err, size_t errlen);
/* The keys of the encrypted volume at url whose superblock sb was parsed
 * from text: reads the passphrase file, derives, checks key-check and mac.
 * -1 + a one-line err: no file given, wrong passphrase, altered superblock. */
int keys_unlock(const struct vol_super *sb, const char *text, const char *passphrase_file,
                const char *url, struct vol_keys *k, char *err, size_t errlen);

#endif
