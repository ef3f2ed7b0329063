/* voltest.h - helpers the volume engine's tests share (header-only, like
 * tap.h): making an empty volume without going through the CLI. */
#ifndef BUOY_VOLTEST_H
#define BUOY_VOLTEST_H

#include "store/store.h"
#include "tap.h"
#include "vol/keys.h"
#include "vol/super.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Writes the superblock of an empty volume at url (endpoint NULL for a
 * directory store); bails out of the test on failure. */
/* The same with a compression setting ("none", "zstd", "zstd:N"). */
static inline void voltest_make_c(const char *url, const char *endpoint, uint64_t size,
                                  uint32_t segment_size, const char *compression)
{
    char err[512];
    struct store_opts so = {.retries = -1, .endpoint = endpoint};
    struct store *s = store_open(url, &so, err, sizeof err);
    if (!s)
        bail_out(err);
    struct vol_super sb = {.version = 1, .size = size, .block_size = 4096,
                           .segment_size = segment_size, .created = time(NULL)};
    snprintf(sb.compression, sizeof sb.compression, "%s", compression);
    super_new_uuid(sb.uuid);
    struct buf b = {0};
    super_encode(&sb, &b);
    if (store_put(s, SUPER_KEY, b.p, b.len, STORE_IF_NONE_MATCH, NULL, NULL, err, sizeof err))
        bail_out(err);
    buf_free(&b);
    store_close(s);
}

/* An encrypted volume, its key from the passphrase in passfile (which this
 * writes) through a cheap Argon2id (1 pass, 1 MiB) to keep tests fast. */
static inline void voltest_make_crypt(const char *url, const char *endpoint, uint64_t size,
                                      uint32_t segment_size, const char *compression,
                                      const char *passfile, const char *passphrase)
{
    char err[512];
    struct store_opts so = {.retries = -1, .endpoint = endpoint};
    FILE *f = fopen(passfile, "w");
    if (!f || fchmod(fileno(f), 0600) < 0 || fprintf(f, "%s\n", passphrase) < 0 ||
        fclose(f) != 0)
        bail_out(passfile);
    struct store *s = store_open(url, &so, err, sizeof err);
    if (!s)
        bail_out(err);
    struct vol_super sb = {.version = 1, .size = size, .block_size = 4096,
                           .segment_size = segment_size, .created = time(NULL)};
    snprintf(sb.compression, sizeof sb.compression, "%s", compression);
    super_new_uuid(sb.uuid);
    struct vol_keys k;
    keys_new(&k);
    if (keys_lock(&sb, &k, passphrase, strlen(passphrase), 1, 1 << 20, err, sizeof err) < 0)
        bail_out(err);
    struct buf b = {0};
    super_encode_keyed(&sb, &k, &b);
    keys_wipe(&k);
    if (store_put(s, SUPER_KEY, b.p, b.len, STORE_IF_NONE_MATCH, NULL, NULL, err, sizeof err))
        bail_out(err);
    buf_free(&b);
    store_close(s);
}

static inline void voltest_make(const char *url, const char *endpoint, uint64_t size,
                                uint32_t segment_size)
{
    voltest_make_c(url, endpoint, size, segment_size, "none");
}

#endif
