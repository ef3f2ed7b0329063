/* size.c - parsing and printing byte sizes (see size.h). */
#include "size.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The syntax, exactly: DIGITS [ "." DIGITS ] [ SUFFIX [ "iB" | "B" ] ], the
 * fraction only with a suffix.  Integer arithmetic throughout (no strtod:
 * it would round a 20-digit byte count and take "0x10", "1e3" or " 1").
 * The fraction is kept as decimal digits and doubled once per power of two
 * of the suffix, what carries out of it being bytes; it is a whole number
 * of bytes when no digit is left.  2^-60, the finest fraction E can make
 * whole, has 60 digits after the point, so a longer one never is. */
#define FRAC_DIGITS 60

int size_parse(const char *s, uint64_t *out)
{
    static const char units[] = "KMGTPE";
    unsigned char frac[FRAC_DIGITS];
    int nfrac = 0, shift = 0;
    const char *p = s;
    unsigned __int128 whole = 0;
    if (!s || !isdigit((unsigned char)*p)) return SIZE_ESYNTAX;
    for (; isdigit((unsigned char)*p); p++)
        if (whole <= UINT64_MAX) /* past it, the answer is SIZE_ERANGE anyway */
            whole = whole * 10 + (unsigned)(*p - '0');
    int has_frac = *p == '.', too_fine = 0;
    if (has_frac) {
        const char *digits = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == digits) return SIZE_ESYNTAX; /* "1." */
        const char *last = p;                 /* trailing zeros change nothing */
        while (last > digits && last[-1] == '0')
            last--;
        too_fine = last - digits > FRAC_DIGITS;
        for (const char *d = digits; d < last && !too_fine; d++)
            frac[nfrac++] = (unsigned char)(*d - '0');
    }
    if (*p) {
        const char *u = strchr(units, toupper((unsigned char)*p));
        if (!u || !*u) return SIZE_ESYNTAX;
        shift = 10 * (int)(u - units + 1);
        p++;
        if (strcasecmp(p, "iB") == 0 || strcasecmp(p, "B") == 0) p += strlen(p);
        if (*p) return SIZE_ESYNTAX;
    } else if (has_frac) {
        return SIZE_ESYNTAX; /* a plain byte count is an integer */
    }
    uint64_t frac_bytes = 0; /* < 2^shift <= 2^60 */
    for (int i = 0; i < shift && nfrac; i++) {
        unsigned carry = 0;
        for (int j = nfrac - 1; j >= 0; j--) {
            unsigned x = frac[j] * 2u + carry;
            frac[j] = (unsigned char)(x % 10);
            carry = x / 10;
        }
        frac_bytes = frac_bytes * 2 + carry;
        while (nfrac && frac[nfrac - 1] == 0)
            nfrac--;
        if (!nfrac) /* whole already: the doublings left only shift it */
            frac_bytes <<= shift - i - 1;
    }
    if (too_fine || nfrac) return SIZE_EWHOLE;
    if (whole > UINT64_MAX) return SIZE_ERANGE;
    unsigned __int128 bytes = (whole << shift) + frac_bytes;
    if (bytes > SIZE_MAX_BYTES) return SIZE_ERANGE;
    *out = (uint64_t)bytes;
    return SIZE_OK;
}

const char *size_strerror(int rc)
{
    switch (rc) {
    case SIZE_OK:
        return "is a size";
    case SIZE_EWHOLE:
        return "is not a whole number of bytes";
    case SIZE_ERANGE:
        return "is too large (the limit is 16 EiB less one byte, 18446744073709551615)";
    default:
        return "is not a size (a number of bytes, or with K, M, G, T, P or E, e.g. 16G or 1.5T)";
    }
}

void size_format(uint64_t bytes, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    uint64_t whole = bytes;
    while (u < 6 && whole >= 1024 && whole % 1024 == 0) {
        whole /= 1024;
        u++;
    }
    if (whole < 10240 || u == 6 || bytes < 1024) {
        snprintf(out, outlen, "%llu %s", (unsigned long long)whole, units[u]);
        return;
    }
    double v = (double)bytes;
    u = 0;
    while (u < 6 && v >= 1024) {
        v /= 1024;
        u++;
    }
    snprintf(out, outlen, "%.2f %s", v, units[u]);
}
