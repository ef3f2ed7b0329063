/* keys.c - passphrase file, Argon2id and the derived keys (see keys.h). */
#include "keys.h"
#include "super.h"
#include "store/store.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTEXT        "buoyvol1"
#define MAX_PASSPHRASE 4096

enum { ID_DATA = 1, ID_CHECK = 2, ID_MAC = 3, ID_LOCAL = 4 };

int keys_read_passphrase(const char *path, char **pass, size_t *len, char *err, size_t errlen)
{
    *pass = NULL;
    *len = 0;
    if (store_crypt_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise (sodium_init)");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "passphrase file %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "passphrase file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077)
        log_warn("passphrase file %s can be read by others (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
    char *p = sodium_malloc(MAX_PASSPHRASE + 1);
    if (!p) {
        snprintf(err, errlen, "out of memory for the passphrase");
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, p + n, MAX_PASSPHRASE + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "passphrase file %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > MAX_PASSPHRASE) {
            snprintf(err, errlen, "passphrase file %s is longer than %d bytes", path,
                     MAX_PASSPHRASE);
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    if (n && p[n - 1] == '\n') n--;
    if (n == 0) {
        snprintf(err, errlen, "passphrase file %s is empty", path);
        goto fail;
    }
    *pass = p;
    *len = n;
    return 0;
fail:
    if (fd >= 0) close(fd);
    keys_free_passphrase(p, MAX_PASSPHRASE + 1);
    return -1;
}

void keys_free_passphrase(char *pass, size_t len)
{
    (void)len; /* sodium_free wipes the whole allocation */
    if (pass) sodium_free(pass);
}

int keys_kek(const char *pass, size_t len, const uint8_t salt[KEYS_SALT_LEN], uint64_t ops,
             uint64_t mem, uint8_t kek[KEYS_LEN], char *err, size_t errlen)
{
    if (store_crypt_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise (sodium_init)");
        return -1;
    }
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > KEYS_MAX_OPS || mem < KEYS_MIN_MEM ||
        mem > KEYS_MAX_MEM) {
        snprintf(err, errlen, "KDF parameters out of range: ops %llu (1..%d), mem %llu bytes",
                 (unsigned long long)ops, KEYS_MAX_OPS, (unsigned long long)mem);
        return -1;
    }
    if (crypto_pwhash(kek, KEYS_LEN, pass, len, salt, ops, (size_t)mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        snprintf(err, errlen, "Argon2id with %llu MiB of memory failed (out of memory?)",
                 (unsigned long long)(mem >> 20));
        return -1;
    }
    return 0;
}

void keys_from_master(const uint8_t master[KEYS_LEN], struct vol_keys *k)
{
    _Static_assert(KEYS_LEN == crypto_kdf_KEYBYTES, "the master key is a KDF key");
    memmove(k->master, master, KEYS_LEN);
    crypto_kdf_derive_from_key(k->data, sizeof k->data, ID_DATA, CONTEXT, k->master);
    crypto_kdf_derive_from_key(k->check, sizeof k->check, ID_CHECK, CONTEXT, k->master);
    crypto_kdf_derive_from_key(k->mac, sizeof k->mac, ID_MAC, CONTEXT, k->master);
    crypto_kdf_derive_from_key(k->local, sizeof k->local, ID_LOCAL, CONTEXT, k->master);
}

int keys_derive(const char *pass, size_t len, const uint8_t salt[KEYS_SALT_LEN], uint64_t ops,
                uint64_t mem, struct vol_keys *k, char *err, size_t errlen)
{
    uint8_t kek[KEYS_LEN];
    if (keys_kek(pass, len, salt, ops, mem, kek, err, errlen) < 0)
        return -1;
    keys_from_master(kek, k);
    sodium_memzero(kek, sizeof kek);
    return 0;
}

static void need_sodium(void)
{
    if (store_crypt_init() < 0) {
        fprintf(stderr, "buoy: libsodium failed to initialise\n");
        _exit(1);
    }
}

void keys_new(struct vol_keys *k)
{
    uint8_t m[KEYS_LEN];
    need_sodium();
    randombytes_buf(m, sizeof m);
    keys_from_master(m, k);
    sodium_memzero(m, sizeof m);
}

/* What the wrapped key's tag also covers: which format it is. */
static const unsigned char WRAP_AD[] = "buoy wrapped-key 1";

void keys_wrap(const uint8_t kek[KEYS_LEN], const struct vol_keys *k,
               uint8_t out[KEYS_WRAPPED_LEN])
{
    _Static_assert(KEYS_WRAPPED_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + KEYS_LEN +
                                           crypto_aead_xchacha20poly1305_ietf_ABYTES,
                   "nonce, key, tag");
    need_sodium();
    uint8_t *nonce = out, *sealed = out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, NULL, k->master, KEYS_LEN, WRAP_AD,
                                               sizeof WRAP_AD - 1, NULL, nonce, kek);
}

int keys_unwrap(const uint8_t kek[KEYS_LEN], const uint8_t w[KEYS_WRAPPED_LEN],
                struct vol_keys *k)
{
    uint8_t m[KEYS_LEN];
    const uint8_t *nonce = w, *sealed = w + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            m, NULL, NULL, sealed, KEYS_WRAPPED_LEN - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
            WRAP_AD, sizeof WRAP_AD - 1, nonce, kek) != 0)
        return -1;
    keys_from_master(m, k);
    sodium_memzero(m, sizeof m);
    return 0;
}

void keys_mac(const uint8_t key[KEYS_LEN], const void *msg, size_t n, uint8_t out[KEYS_LEN])
{
    crypto_generichash(out, KEYS_LEN, msg, n, key, KEYS_LEN);
}

void keys_new_salt(uint8_t salt[KEYS_SALT_LEN])
{
    need_sodium();
    randombytes_buf(salt, KEYS_SALT_LEN);
}

void keys_wipe(struct vol_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

int keys_lock(struct vol_super *sb, const struct vol_keys *k, const char *pass, size_t len,
              uint64_t ops, uint64_t mem, char *err, size_t errlen)
{
    uint8_t kek[KEYS_LEN];
    sb->kdf_ops = ops;
    sb->kdf_mem = mem;
    keys_new_salt(sb->salt);
    if (keys_kek(pass, len, sb->salt, ops, mem, kek, err, errlen) < 0)
        return -1;
    keys_wrap(kek, k, sb->wrapped_key);
    sodium_memzero(kek, sizeof kek);
    sb->wrapped = 1;
    super_set_encryption(sb, k);
    return 0;
}

int keys_unlock(const struct vol_super *sb, const char *text, const char *passphrase_file,
                const char *url, struct vol_keys *k, char *err, size_t errlen)
{
    char *pass, why[512];
    uint8_t kek[KEYS_LEN];
    size_t len;
    if (!passphrase_file) {
        snprintf(err, errlen, "%s is encrypted: give --passphrase-file", url);
        return -1;
    }
    if (keys_read_passphrase(passphrase_file, &pass, &len, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    int rc = keys_kek(pass, len, sb->salt, sb->kdf_ops, sb->kdf_mem, kek, why, sizeof why);
    keys_free_passphrase(pass, len);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", url, why);
        return -1;
    }
    int v = 0;
    if (!sb->wrapped)
        keys_from_master(kek, k); /* version 2: the kek is the master key */
    else if (keys_unwrap(kek, sb->wrapped_key, k) < 0)
        v = SUPER_WRONG_KEY;
    sodium_memzero(kek, sizeof kek);
    if (v == 0)
        v = super_verify_keys(sb, text, k);
    switch (v) {
    case 0:
        return 0;
    case SUPER_WRONG_KEY:
        snprintf(err, errlen, "wrong passphrase for %s", url);
        break;
    default:
        snprintf(err, errlen, "superblock of %s was altered (its mac does not match)", url);
        break;
    }
    keys_wipe(k);
    return -1;
}
