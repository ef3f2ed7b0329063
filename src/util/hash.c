/* hash.c - digest helpers over OpenSSL (see hash.h). */
#include "hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <xxhash.h>
#include <openssl/hmac.h>
#include <stdlib.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        abort(); /* only fails on allocation failure inside OpenSSL */
}

void hmac_sha256(const void *key, size_t klen, const void *data, size_t dlen,
                 uint8_t out[SHA256_LEN])
{
    unsigned int n = SHA256_LEN;
    if (!HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &n))
        abort();
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sha256_hex(const void *data, size_t len, char out[2 * SHA256_LEN + 1])
{
    uint8_t d[SHA256_LEN];
    sha256(data, len, d);
    hex_encode(d, SHA256_LEN, out);
}

int hex_parse_fixed(const char *s, int n, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            x = (x << 4) | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x = (x << 4) | (uint64_t)(c - 'a' + 10);
        else
            return -1;
    }
    *v = x;
    return 0;
}

uint64_t xxh3_zeroed8(const void *p, size_t len, size_t off)
{
    static const uint8_t zeros[8];
    const uint8_t *b = p;
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        fprintf(stderr, "buoy: out of memory allocating an XXH3 state\n");
        abort();
    }
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, b, off);
    XXH3_64bits_update(st, zeros, sizeof zeros);
    XXH3_64bits_update(st, b + off + 8, len - off - 8);
    uint64_t v = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return v;
}
