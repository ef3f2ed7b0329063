/* hash.h - SHA-256, HMAC-SHA256 and hex, through OpenSSL's EVP interface. */
#ifndef BUOY_HASH_H
#define BUOY_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
void hmac_sha256(const void *key, size_t klen, const void *data, size_t dlen,
                 uint8_t out[SHA256_LEN]);
/* Lower-case hex of in[0..n) into out (2n+1 bytes incl NUL). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* XXH3-64 (seed 0) of p[0, len) with the 8 bytes at off read as zeros:
 * the check of an object that holds its own check field.  off + 8 <= len. */
uint64_t xxh3_zeroed8(const void *p, size_t len, size_t off);
/* Parses exactly n lower-case hex digits (n <= 16) into *v; -1 otherwise. */
int hex_parse_fixed(const char *s, int n, uint64_t *v);
/* sha256 as 64 lower-case hex digits plus NUL. */
void sha256_hex(const void *data, size_t len, char out[2 * SHA256_LEN + 1]);

#endif
