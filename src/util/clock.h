/* clock.h - time helpers: monotonic milliseconds for timeouts and leases,
 * wall-clock seconds only for what is shown to people or sent to AWS. */
#ifndef BUOY_CLOCK_H
#define BUOY_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
void clock_sleep_ms(uint64_t ms);
/* *ts = clock clk's now + ms, for pthread_cond_timedwait() (CLOCK_REALTIME
 * unless the condition variable was made for CLOCK_MONOTONIC). */
void clock_deadline(clockid_t clk, uint64_t ms, struct timespec *ts);
/* Formats t (UTC) as ISO-8601 basic "YYYYMMDDTHHMMSSZ" (17 bytes incl NUL). */
void clock_amz_date(time_t t, char out[17]);
/* Parses "2026-11-21T05:01:24Z" (fractional seconds allowed); -1 on error. */
time_t clock_parse_iso8601(const char *s);

#endif
