/* size.h - byte sizes as people write them: "16G", "512M", "4096", "1.5T". */
#ifndef BUOY_SIZE_H
#define BUOY_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* What size_parse() returns. */
enum size_err {
    SIZE_OK = 0,
    SIZE_ESYNTAX = -1, /* not a size at all: "abc", "-1G", "1.5", "12Q", "0x10" */
    SIZE_EWHOLE = -2,  /* a fraction that is not a whole number of bytes: "1.1K" */
    SIZE_ERANGE = -3,  /* more than SIZE_MAX_BYTES: "16E", "99999999999999999999" */
};

/* The largest size that parses: 16 EiB less one byte. */
#define SIZE_MAX_BYTES UINT64_MAX

/* Parses a whole number of bytes, or a number with a binary suffix K, M, G,
 * T, P or E (any case, optionally followed by "iB" or "B"; powers of 1024).
 * With a suffix the number may have a fraction ("1.5G") when the result is a
 * whole number of bytes.  SIZE_OK with *out set, or a negative enum size_err
 * with *out unchanged. */
int size_parse(const char *s, uint64_t *out);
/* What is wrong, as the end of a sentence that starts with the value, for
 * "--size '8E' " + size_strerror(rc): "is not a size (...)", "is too large
 * (...)".  rc is a size_parse() result. */
const char *size_strerror(int rc);
/* "16 GiB", "8 MiB", "4096 B", "1.50 GiB" into out (at least 16 bytes). */
void size_format(uint64_t bytes, char *out, size_t outlen);

#endif
