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

enum { ID_DATA = 1, ID_CHECK = 2, ID_MAC = 3 };

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

int keys_derive(const char *pass, size_t len, const uint8_t salt[KEYS_SALT_LEN], uint64_t ops,
                uint64_t mem, struct vol_keys *k, char *err, size_t errlen)
{
    uint8_t master[crypto_kdf_KEYBYTES];
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
    if (crypto_pwhash(master, sizeof master, pass, len, salt, ops, (size_t)mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        snprintf(err, errlen, "Argon2id with %llu MiB of memory failed (out of memory?)",
                 (unsigned long long)(mem >> 20));
        return -1;
    }
    crypto_kdf_derive_from_key(k->data, sizeof k->data, ID_DATA, CONTEXT, master);
    crypto_kdf_derive_from_key(k->check, sizeof k->check, ID_CHECK, CONTEXT, master);
    crypto_kdf_derive_from_key(k->mac, sizeof k->mac, ID_MAC, CONTEXT, master);
    sodium_memzero(master, sizeof master);
    return 0;
}

void keys_mac(const uint8_t key[KEYS_LEN], const void *msg, size_t n, uint8_t out[KEYS_LEN])
{
    crypto_generichash(out, KEYS_LEN, msg, n, key, KEYS_LEN);
}

void keys_new_salt(uint8_t salt[KEYS_SALT_LEN])
{
    if (store_crypt_init() < 0) {
        fprintf(stderr, "buoy: libsodium failed to initialise\n");
        _exit(1);
    }
    randombytes_buf(salt, KEYS_SALT_LEN);
}

void keys_wipe(struct vol_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

int keys_unlock(const struct vol_super *sb, const char *text, const char *passphrase_file,
                const char *url, struct vol_keys *k, char *err, size_t errlen)
{
    char *pass, why[512];
    size_t len;
    if (!passphrase_file) {
        snprintf(err, errlen, "%s is encrypted: give --passphrase-file", url);
        return -1;
    }
    if (keys_read_passphrase(passphrase_file, &pass, &len, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    int rc = keys_derive(pass, len, sb->salt, sb->kdf_ops, sb->kdf_mem, k, why, sizeof why);
    keys_free_passphrase(pass, len);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", url, why);
        return -1;
    }
    switch (super_verify_keys(sb, text, k)) {
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
