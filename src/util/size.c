/* size.c - parsing and printing byte sizes (see size.h). */
#include "size.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int size_parse(const char *s, uint64_t *out)
{
    static const char units[] = "KMGTP";
    char *end;
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    uint64_t mult = 1;
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u || !*u)
            return -1;
        for (const char *p = units; p <= u; p++)
            mult *= 1024;
        end++;
        if (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0)
            end += strlen(end);
        if (*end)
            return -1;
    } else if (strchr(s, '.') || strchr(s, 'e') || strchr(s, 'E'))
        return -1; /* a plain byte count is an integer */
    double bytes = v * (double)mult;
    if (bytes >= 18446744073709551616.0 || bytes != floor(bytes))
        return -1;
    *out = (uint64_t)bytes;
    return 0;
}

void size_format(uint64_t bytes, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    uint64_t whole = bytes;
    while (u < 5 && whole >= 1024 && whole % 1024 == 0) {
        whole /= 1024;
        u++;
    }
    if (whole < 10240 || u == 5 || bytes < 1024) {
        snprintf(out, outlen, "%llu %s", (unsigned long long)whole, units[u]);
        return;
    }
    double v = (double)bytes;
    u = 0;
    while (u < 5 && v >= 1024) {
        v /= 1024;
        u++;
    }
    snprintf(out, outlen, "%.2f %s", v, units[u]);
}
