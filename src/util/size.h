/* size.h - byte sizes as people write them: "16G", "512M", "4096", "1.5T". */
#ifndef BUOY_SIZE_H
#define BUOY_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parses a whole number of bytes with an optional binary suffix K, M, G, T,
 * P (or KiB, MiB, ...; powers of 1024).  A fraction is allowed with a suffix
 * when the result is a whole number of bytes.  -1 on anything else. */
int size_parse(const char *s, uint64_t *out);
/* "16 GiB", "8 MiB", "4096 B", "1.50 GiB" into out (at least 16 bytes). */
void size_format(uint64_t bytes, char *out, size_t outlen);

#endif
