/* test_super.c - the superblock's text form (the size parser: test_size.c). */
#include "tap.h"
#include "util/mem.h"
#include "vol/keys.h"
#include "vol/super.h"
#include "vol/vol.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static struct vol_super sample(void)
{
    struct vol_super sb = {.version = 1, .size = 16ull << 30, .block_size = 4096,
                           .segment_size = 8 << 20, .compression = "none", .created = 1795237200};
    super_new_uuid(sb.uuid);
    return sb;
}

static void test_roundtrip(void)
{
    struct vol_super sb = sample(), back;
    struct buf b = {0};
    char err[256];
    super_encode(&sb, &b);
    ok(strncmp(b.p, "buoy-volume 1\nuuid ", 19) == 0, "the text starts with the version line");
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "it parses back: %s", err);
    ok(memcmp(back.uuid, sb.uuid, 16) == 0 && back.size == sb.size &&
           back.block_size == sb.block_size && back.segment_size == sb.segment_size &&
           back.created == sb.created && strcmp(back.compression, "none") == 0,
       "every field survives");
    ok((sb.uuid[6] >> 4) == 4 && (sb.uuid[8] >> 6) == 2, "the uuid is a version 4 uuid");

    /* any changed byte before the check line is caught */
    int caught = 0, tried = 0;
    size_t check_at = (size_t)(strstr(b.p, "check ") - b.p);
    for (size_t i = 0; i < check_at; i++) {
        struct buf c = {0};
        buf_append(&c, b.p, b.len);
        c.p[i] ^= 0x01;
        tried++;
        caught += super_parse(c.p, c.len, &back, err, sizeof err) < 0;
        buf_free(&c);
    }
    is_int(caught, tried, "every one-bit change of the superblock is refused");
    for (size_t n = 0; n < b.len; n++)
        if (super_parse(b.p, n, &back, err, sizeof err) == 0) {
            ok(0, "a superblock cut to %zu bytes was accepted", n);
            break;
        }
    ok(1, "no truncation of the superblock is accepted");
    buf_free(&b);
}

static void test_limits(void)
{
    char err[256];
    struct vol_super sb = sample();
    sb.block_size = 3000;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "power of two"),
       "block size 3000 is refused: %s", err);
    sb = sample();
    sb.size = 4097;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "multiple"),
       "a size that is not whole blocks is refused: %s", err);
    sb = sample();
    sb.segment_size = 512u << 20;
    ok(super_validate(&sb, err, sizeof err) < 0, "a 512 MiB segment is refused: %s", err);
    sb = sample();
    sb.size = 8ull << 60; /* --size 8E */
    ok(super_validate(&sb, err, sizeof err) < 0 &&
           strstr(err, "(8 EiB) is too large: the limit is 18014398505287680 bytes "
                       "(16 PiB less 4 MiB) with 4096-byte blocks"),
       "8 EiB is too large, and the limit is named: %s", err);
    sb.size = UINT32_MAX * 1024ull * 4096;
    ok(super_validate(&sb, err, sizeof err) == 0, "the limit itself is a valid size");
    sb = sample();
    sb.version = 2;
    ok(super_validate(&sb, err, sizeof err) < 0 && strstr(err, "version 2"),
       "an unknown version is refused: %s", err);
    struct vol_super back;
    const char *junk = "hello world\n";
    ok(super_parse(junk, strlen(junk), &back, err, sizeof err) < 0 &&
           strstr(err, "not a buoy superblock"),
       "junk is not a superblock: %s", err);
}

/* A clone's three base lines: kept, and all or none. */
static void test_clone_lines(void)
{
    struct vol_super sb = sample(), back;
    struct buf b = {0};
    char err[256];
    snprintf(sb.base, sizeof sb.base, "s3://bucket/vols/a@monday");
    super_new_uuid(sb.base_uuid);
    sb.base_seq = 1234;
    super_encode(&sb, &b);
    ok(super_parse(b.p, b.len, &back, err, sizeof err) < 0 && strstr(err, "and a base"),
       "a clone's superblock must say version 2, so that older readers refuse it: %s", err);
    sb.version = SUPER_VERSION_2;
    buf_reset(&b);
    super_encode(&sb, &b);
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "a clone's superblock parses");
    ok(strcmp(back.base, sb.base) == 0 && memcmp(back.base_uuid, sb.base_uuid, 16) == 0 &&
           back.base_seq == 1234,
       "base, base-uuid and base-seq survive");
    /* drop the base-seq line and fix the check: refused */
    char *text = xstrndup(b.p, b.len);
    char *line = strstr(text, "base-seq ");
    char *check = strstr(text, "check ");
    memmove(line, check, strlen(check) + 1);
    struct buf c = {0};
    buf_append(&c, text, (size_t)(line - text));
    buf_printf(&c, "check %016llx\n", (unsigned long long)XXH3_64bits(c.p, c.len));
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0 && strstr(err, "only some of base"),
       "a superblock with only some of the base lines is refused: %s", err);
    struct vol_super plain = sample();
    buf_free(&b);
    super_encode(&plain, &b);
    ok(super_parse(b.p, b.len, &back, err, sizeof err) == 0 && back.base[0] == '\0' &&
           back.base_seq == 0,
       "a volume of its own has no base");
    free(text);
    buf_free(&b);
    buf_free(&c);
}

/* Replaces the line starting with name by name + " " + value and redoes
 * the check line, as someone editing the file with care would. */
static void edit(struct buf *b, const char *name, const char *value)
{
    struct buf o = {0};
    for (const char *p = b->p; p < b->p + b->len;) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p) + 1;
        if (strncmp(p, "check ", 6) == 0)
            break;
        if (strncmp(p, name, strlen(name)) == 0 && p[strlen(name)] == ' ')
            buf_printf(&o, "%s %s\n", name, value);
        else
            buf_append(&o, p, n);
        p += n;
    }
    buf_printf(&o, "check %016llx\n", (unsigned long long)XXH3_64bits(o.p, o.len));
    buf_free(b);
    *b = o;
}

static void test_encrypted(void)
{
    struct vol_super sb = sample(), back;
    struct vol_keys k, other;
    struct buf b = {0}, c = {0};
    char err[256];
    keys_new_salt(sb.salt);
    sb.kdf_ops = 1;
    sb.kdf_mem = 1 << 20;
    ok(keys_derive("secret", 6, sb.salt, sb.kdf_ops, sb.kdf_mem, &k, err, sizeof err) == 0 &&
           keys_derive("secreT", 6, sb.salt, sb.kdf_ops, sb.kdf_mem, &other, err, sizeof err) == 0,
       "Argon2id derives keys");
    ok(memcmp(k.data, k.check, 32) != 0 && memcmp(k.check, k.mac, 32) != 0 &&
           memcmp(k.data, other.data, 32) != 0,
       "the derived keys differ from each other and from another passphrase's");
    super_set_encryption(&sb, &k);
    super_encode_keyed(&sb, &k, &b);
    ok(strncmp(b.p, "buoy-volume 2\n", 14) == 0 &&
           strstr(b.p, "\nencryption " SUPER_CIPHER "\n") &&
           strstr(b.p, "\nkdf argon2id ops=1 mem=1048576\n") && strstr(b.p, "\nmac "),
       "an encrypted superblock is version 2 and names cipher and KDF");
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "it parses: %s", err);
    ok(super_encrypted(&back) && back.kdf_ops == 1 && back.kdf_mem == 1 << 20 &&
           memcmp(back.salt, sb.salt, 16) == 0,
       "the encryption fields survive");
    is_int(super_verify_keys(&back, b.p, &k), 0, "the right key opens it");
    is_int(super_verify_keys(&back, b.p, &other), SUPER_WRONG_KEY, "another passphrase is wrong");
    super_encode(&back, &c);
    ok(c.len == b.len && memcmp(c.p, b.p, b.len) == 0,
       "re-encoding a parsed superblock gives the same text");
    buf_free(&c);

    static const char *const edits[][2] = {
        {"size", "34359738368"},
        {"uuid", "6f1c0d2e-8a5b-4c1e-9f00-2b7d3c4e5f60"},
        {"compression", "zstd"},
        {"segment-size", "4194304"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        buf_append(&c, b.p, b.len);
        edit(&c, edits[i][0], edits[i][1]);
        ok(super_parse(c.p, c.len, &back, err, sizeof err) == 0 &&
               super_verify_keys(&back, c.p, &k) == SUPER_ALTERED,
           "an edited %s (check redone) is caught by the mac", edits[i][0]);
        buf_free(&c);
    }
    buf_append(&c, b.p, b.len);
    edit(&c, "kdf", "argon2id ops=2 mem=1048576");
    ok(super_parse(c.p, c.len, &back, err, sizeof err) == 0 &&
           super_verify_keys(&back, c.p, &k) != 0,
       "edited KDF parameters fail the key-check");
    buf_free(&c);
    buf_append(&c, b.p, b.len);
    edit(&c, "encryption", "none");
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0,
       "version 2 without encryption is refused: %s", err);
    buf_free(&c);

    /* a line before the mac is covered by it; one after it is refused */
    const char *mac = strstr(b.p, "\nmac ") + 1, *chk = strstr(b.p, "\ncheck ") + 1;
    buf_append(&c, b.p, (size_t)(mac - b.p));
    buf_puts(&c, "extra 1\n");
    buf_append(&c, mac, (size_t)(chk - mac));
    buf_printf(&c, "check %016llx\n", (unsigned long long)XXH3_64bits(c.p, c.len));
    ok(super_parse(c.p, c.len, &back, err, sizeof err) == 0 &&
           super_verify_keys(&back, c.p, &k) == SUPER_ALTERED,
       "a line slipped in before the mac is caught");
    buf_free(&c);
    buf_append(&c, b.p, (size_t)(chk - b.p));
    buf_puts(&c, "extra 1\n");
    buf_printf(&c, "check %016llx\n", (unsigned long long)XXH3_64bits(c.p, c.len));
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0, "a line after the mac is refused: %s",
       err);
    buf_free(&c);

    struct vol_super plain = sample();
    super_encode(&plain, &c);
    ok(!strstr(c.p, "encryption") && super_parse(c.p, c.len, &back, err, sizeof err) == 0 &&
           !super_encrypted(&back),
       "a plain volume's superblock is as before");
    buf_free(&c);
    buf_free(&b);
    keys_wipe(&k);
    keys_wipe(&other);
}

/* Writes passphrase pw (and a newline) to a fresh file whose path is put in path. */
static void pass_file(char *path, const char *pw)
{
    strcpy(path, "/tmp/buoy-test-pass-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, pw, strlen(pw)) != (ssize_t)strlen(pw) || write(fd, "\n", 1) != 1)
        bail_out("passphrase file");
    close(fd);
}

/* Version 3: a random master key wrapped under the passphrase; a new
 * passphrase rewraps the same key. */
static void test_wrapped(void)
{
    struct vol_super sb = sample(), back, b2;
    struct vol_keys k, got, got2;
    struct buf b = {0}, c = {0};
    char err[512], one[64], two[64];
    pass_file(one, "first secret");
    pass_file(two, "second secret");
    keys_new(&k);
    ok(keys_lock(&sb, &k, "first secret", 12, 1, 1 << 20, err, sizeof err) == 0 && sb.wrapped &&
           sb.version == SUPER_VERSION_3,
       "keys_lock wraps a new master key: version 3");
    super_encode_keyed(&sb, &k, &b);
    ok(strncmp(b.p, "buoy-volume 3\n", 14) == 0 && strstr(b.p, "\nwrapped-key ") &&
           strstr(b.p, "\nwrapped-key ") < strstr(b.p, "\nkey-check ") &&
           strstr(b.p, "\nkey-check ") < strstr(b.p, "\nmac "),
       "the wrapped-key line comes after salt and before key-check and mac");
    is_int(super_parse(b.p, b.len, &back, err, sizeof err), 0, "a version 3 superblock parses: %s",
           err);
    ok(back.wrapped && memcmp(back.wrapped_key, sb.wrapped_key, sizeof sb.wrapped_key) == 0,
       "the wrapped key survives");
    super_encode(&back, &c);
    ok(c.len == b.len && memcmp(c.p, b.p, b.len) == 0, "and re-encodes to the same text");
    buf_free(&c);
    is_int(keys_unlock(&back, b.p, one, "vol", &got, err, sizeof err), 0,
           "the passphrase unlocks it: %s", err);
    ok(memcmp(got.master, k.master, 32) == 0 && memcmp(got.data, k.data, 32) == 0,
       "to the same master and data keys");
    ok(keys_unlock(&back, b.p, two, "vol", &got2, err, sizeof err) < 0 &&
           strcmp(err, "wrong passphrase for vol") == 0,
       "another passphrase is wrong: %s", err);

    /* a passphrase change: the same keys under a new salt and wrapping */
    uint8_t salt[16], wrapped[SUPER_WRAPPED_LEN];
    memcpy(salt, sb.salt, 16);
    memcpy(wrapped, sb.wrapped_key, sizeof wrapped);
    ok(keys_lock(&back, &got, "second secret", 13, 2, 1 << 21, err, sizeof err) == 0 &&
           memcmp(back.salt, salt, 16) != 0 && memcmp(back.wrapped_key, wrapped, sizeof wrapped) != 0,
       "rewrapping makes a new salt and wrapped key");
    buf_reset(&b);
    super_encode_keyed(&back, &got, &b);
    ok(super_parse(b.p, b.len, &b2, err, sizeof err) == 0 && b2.kdf_ops == 2 &&
           b2.kdf_mem == 1 << 21,
       "with the new KDF parameters");
    ok(keys_unlock(&b2, b.p, one, "vol", &got2, err, sizeof err) < 0 && strstr(err, "wrong"),
       "the old passphrase no longer opens it");
    ok(keys_unlock(&b2, b.p, two, "vol", &got2, err, sizeof err) == 0 &&
           memcmp(got2.data, k.data, 32) == 0,
       "the new one does, to the same data key: nothing needs re-sealing");
    keys_wipe(&got2);

    /* tampering with the wrapped key, or taking it away */
    buf_append(&c, b.p, b.len);
    char hexw[2 * SUPER_WRAPPED_LEN + 1];
    const char *w = strstr(c.p, "\nwrapped-key ") + 13;
    memcpy(hexw, w, sizeof hexw - 1);
    hexw[sizeof hexw - 1] = '\0';
    hexw[100] = hexw[100] == '0' ? '1' : '0';
    edit(&c, "wrapped-key", hexw);
    ok(super_parse(c.p, c.len, &back, err, sizeof err) == 0 &&
           keys_unlock(&back, c.p, two, "vol", &got2, err, sizeof err) < 0 && strstr(err, "wrong"),
       "a flipped digit of the wrapped key reads as a wrong passphrase, never as other keys");
    buf_free(&c);
    buf_append(&c, b.p, b.len);
    edit(&c, "buoy-volume", "2");
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0,
       "version 2 with a wrapped key is refused: %s", err);
    buf_free(&c);
    struct vol_super v2 = b2;
    v2.wrapped = 0;
    v2.version = 3;
    super_encode(&v2, &c);
    ok(super_parse(c.p, c.len, &back, err, sizeof err) < 0,
       "version 3 without a wrapped key is refused: %s", err);
    buf_free(&c);
    struct vol_super plain = sample();
    plain.wrapped = 1;
    ok(super_validate(&plain, err, sizeof err) < 0, "a wrapped key without encryption is refused: %s",
       err);
    buf_free(&b);
    keys_wipe(&k);
    keys_wipe(&got);
    unlink(one);
    unlink(two);
}

/* A version 2 volume (master key = the passphrase's key) changes its
 * passphrase: it becomes version 3 with the same data key, so its objects
 * still open. */
static void test_upgrade(void)
{
    char root[] = "/tmp/buoy-test-upgrade-XXXXXX", one[64], two[64], err[512];
    struct vol_super sb = sample(), back;
    struct vol_keys old, got;
    struct buf b = {0};
    struct store_opts so = {.retries = -1};
    ok(mkdtemp(root) != NULL, "a directory store");
    pass_file(one, "old secret");
    pass_file(two, "new secret");
    keys_new_salt(sb.salt);
    sb.kdf_ops = 1;
    sb.kdf_mem = 1 << 20;
    ok(keys_derive("old secret", 10, sb.salt, 1, 1 << 20, &old, err, sizeof err) == 0,
       "the keys of a version 2 volume");
    super_set_encryption(&sb, &old);
    super_encode_keyed(&sb, &old, &b);
    ok(strncmp(b.p, "buoy-volume 2\n", 14) == 0 && !strstr(b.p, "wrapped-key"),
       "its superblock is version 2, without a wrapped key");
    struct store *s = store_open(root, &so, err, sizeof err);
    ok(s && store_put(s, SUPER_KEY, b.p, b.len, STORE_IF_NONE_MATCH, NULL, NULL, err,
                      sizeof err) == STORE_OK,
       "written to the store");
    struct vol_opts vo = {.store = so, .passphrase_file = one};
    is_int(vol_change_passphrase(root, &vo, two, 0, 0, err, sizeof err), 0,
           "vol_change_passphrase on it: %s", err);
    buf_reset(&b);
    ok(store_get(s, SUPER_KEY, 0, 0, &b, NULL, err, sizeof err) == STORE_OK &&
           super_parse(b.p, b.len, &back, err, sizeof err) == 0,
       "the new superblock parses");
    ok(back.version == SUPER_VERSION_3 && back.wrapped && back.kdf_ops == 1 &&
           back.kdf_mem == 1 << 20 && memcmp(back.uuid, sb.uuid, 16) == 0,
       "version 3 with a wrapped key, the old KDF settings and the same uuid");
    ok(keys_unlock(&back, b.p, one, "v", &got, err, sizeof err) < 0 && strstr(err, "wrong"),
       "the old passphrase is wrong now");
    ok(keys_unlock(&back, b.p, two, "v", &got, err, sizeof err) == 0 &&
           memcmp(got.data, old.data, 32) == 0 && memcmp(got.master, old.master, 32) == 0,
       "the new one gives the old master and data keys: the objects still open");
    vo.passphrase_file = one;
    ok(vol_change_passphrase(root, &vo, two, 0, 0, err, sizeof err) < 0 &&
           strstr(err, "wrong passphrase"),
       "a second change with the old passphrase is refused: %s", err);
    store_close(s);
    buf_free(&b);
    keys_wipe(&old);
    keys_wipe(&got);
    unlink(one);
    unlink(two);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    ok(system(cmd) == 0, "cleaned up");
}

static void test_passphrase_file(void)
{
    char path[] = "/tmp/buoy-test-pass-XXXXXX", err[512], *pass;
    size_t len;
    int fd = mkstemp(path);
    ok(fd >= 0 && keys_read_passphrase(path, &pass, &len, err, sizeof err) < 0 &&
           strstr(err, "is empty"),
       "an empty passphrase file is refused: %s", err);
    ok(write(fd, "\n", 1) == 1 && keys_read_passphrase(path, &pass, &len, err, sizeof err) < 0 &&
           strstr(err, "is empty"),
       "so is one of a newline alone");
    ok(write(fd, "pw\n\n", 4) == 4 &&
           keys_read_passphrase(path, &pass, &len, err, sizeof err) == 0 && len == 4 &&
           memcmp(pass, "\npw\n", 4) == 0,
       "one trailing newline is stripped, nothing else");
    keys_free_passphrase(pass, len);
    close(fd);
    unlink(path);
    ok(keys_read_passphrase(path, &pass, &len, err, sizeof err) < 0 && strstr(err, path),
       "a missing file is named: %s", err);
}

int main(void)
{
    plan_no_plan();
    test_roundtrip();
    test_limits();
    test_clone_lines();
    test_encrypted();
    test_wrapped();
    test_upgrade();
    test_passphrase_file();
    return done_testing();
}
