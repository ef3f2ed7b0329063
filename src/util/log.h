/* log.h - levelled logging to stderr, a log file or syslog.
 *
 * Every message is one line.  A person's command writes "buoy: warn: ..."
 * on stderr.  A daemon (buoy mount, serve, ha run) turns timestamps on:
 * each line it writes to stderr or its log file then starts with the UTC
 * time to the millisecond and its pid,
 *
 *     2026-12-04T20:42:50.123Z buoy[4242]: warn: ...
 *
 * while syslog lines carry syslog's own time.  The level names avoid
 * syslog.h's LOG_* macros. */
#ifndef BUOY_LOG_H
#define BUOY_LOG_H

#include <stddef.h>

/* notice: a daemon's normal but significant events (started, stopped);
 * the default level shows them, and nothing else logs at it. */
enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_NOTICE, LOGL_INFO, LOGL_DEBUG };
#define LOG_NLEVELS 5

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "notice", "info" or "debug"; -1 when unknown. */
int log_parse_level(const char *name);
const char *log_level_name(enum log_level level);
/* Send further messages to syslog (ident "buoy", the facility below)
 * instead of stderr or the log file. */
void log_use_syslog(int on);
/* "daemon" (the default), "user", "local0".."local7": the facility's
 * LOG_* value, or -1 when unknown. */
int log_parse_facility(const char *name);
/* The facility for syslog; takes effect at once if syslog is in use. */
void log_set_facility(int facility);
/* Daemon lines: a timestamp and the pid in front (see above). */
void log_set_timestamps(int on);
/* Appends further messages to path (created 0640 if missing) instead of
 * stderr; turns timestamps on and syslog off.  0, or -1 with err set. */
int log_open_file(const char *path, char *err, size_t errlen);
/* Makes the log file the process's stderr too (a daemon's, once nobody
 * reads its stderr), so what libraries print lands there as well. */
void log_file_takes_stderr(void);
/* Opens the log file again under its name, for logrotate (which moves the
 * old one away): 0, or -1 (errno set) keeping the old one.  Nothing
 * without a log file.  Async-signal-safe. */
int log_reopen(void);
/* From now on SIGHUP calls log_reopen() (a process without a log file
 * ignores SIGHUP). */
void log_reopen_on_sighup(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats a one-line error into a caller's buffer; nothing when err is NULL. */
void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...)  log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOGL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOGL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOGL_DEBUG)                                                         \
            log_msg(LOGL_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif
