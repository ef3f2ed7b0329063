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
};

/* Checks the fields against the format's limits; -1 + err when out of them. */
int super_validate(const struct vol_super *sb, char *err, size_t errlen);
/* 0 for no compression, the zstd level, or -1 when compression is not one we know. */
int super_zstd_level(const struct vol_super *sb);
/* The text form, check line included. */
void super_encode(const struct vol_super *sb, struct buf *out);
/* Parses and verifies; -1 + err naming what is wrong. */
int super_parse(const char *text, size_t len, struct vol_super *sb, char *err, size_t errlen);
/* A fresh random (version 4) uuid. */
void super_new_uuid(uint8_t uuid[16]);
void super_uuid_str(const uint8_t uuid[16], char out[37]);
int super_uuid_parse(const char *s, uint8_t uuid[16]);

#endif
