/* log.h - levelled logging to stderr or syslog.
 *
 * Every message is one line.  The level names avoid syslog.h's LOG_* macros. */
#ifndef BUOY_LOG_H
#define BUOY_LOG_H

#include <stddef.h>

enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; -1 when unknown. */
int log_parse_level(const char *name);
/* Send further messages to syslog (ident "buoy") instead of stderr. */
void log_use_syslog(int on);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats a one-line error into a caller's buffer; nothing when err is NULL. */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOGL_DEBUG)                                                         \
            log_msg(LOGL_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif
