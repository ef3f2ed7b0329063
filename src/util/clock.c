/* clock.c - monotonic and wall-clock helpers (see clock.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm; the Makefile also passes -D_GNU_SOURCE */
#endif
#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_us() / 1000u;
}

void clock_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void clock_deadline(clockid_t clk, uint64_t ms, struct timespec *ts)
{
    clock_gettime(clk, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void clock_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Reads exactly n digits at *s into *out and advances *s; -1 if any is not a digit. */
static int take_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int take_char(const char **s, const char *accept)
{
    if (**s == '\0' || !strchr(accept, **s))
        return -1;
    (*s)++;
    return 0;
}

/* The zone suffix: "Z" or "+HH:MM"/"-HH:MM", as seconds east of UTC. */
static int parse_zone(const char *s, long *offset)
{
    int sign, hh, mm;

    if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
        *offset = 0;
        return 0;
    }
    if (*s != '+' && *s != '-')
        return -1;
    sign = *s++ == '-' ? -1 : 1;
    if (take_digits(&s, 2, &hh) < 0 || take_char(&s, ":") < 0 || take_digits(&s, 2, &mm) < 0 ||
        *s != '\0' || hh > 23 || mm > 59)
        return -1;
    *offset = sign * (hh * 3600L + mm * 60L);
    return 0;
}

/* Strict RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM).  Anything
 * else, trailing bytes included, is an error rather than a guess. */
time_t clock_parse_iso8601(const char *s)
{
    struct tm tm;
    int year, mon, day, hour, min, sec;
    long offset;

    memset(&tm, 0, sizeof tm);
    if (!s || take_digits(&s, 4, &year) < 0 || take_char(&s, "-") < 0 ||
        take_digits(&s, 2, &mon) < 0 || take_char(&s, "-") < 0 || take_digits(&s, 2, &day) < 0 ||
        take_char(&s, "Tt") < 0 || take_digits(&s, 2, &hour) < 0 || take_char(&s, ":") < 0 ||
        take_digits(&s, 2, &min) < 0 || take_char(&s, ":") < 0 || take_digits(&s, 2, &sec) < 0)
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (parse_zone(s, &offset) < 0)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    return timegm(&tm) - offset;
}
