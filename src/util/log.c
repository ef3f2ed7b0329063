/* log.c - levelled logging (see log.h).
 *
 * A line is formatted whole and written with one write(2) to stderr or the
 * log file, so lines of several threads, or of nbdkit sharing the log file,
 * never interleave (the file is opened O_APPEND).  Reopening puts the new
 * file on the same fd numbers, so nothing else needs to know. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LOGL_NOTICE;
static int to_syslog;
static int facility = LOG_DAEMON;
static int timestamps;
static char file_path[PATH_MAX]; /* "" without a log file */
static int log_fd = 2;           /* where lines go: stderr, or the log file */
static int stderr_too;           /* fd 2 is the log file as well */

static const char *const names[LOG_NLEVELS] = {"error", "warn", "notice", "info", "debug"};

void log_set_level(enum log_level level)
{
    cur_level = level;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

int log_parse_level(const char *name)
{
    for (int i = 0; i < LOG_NLEVELS; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < LOG_NLEVELS ? names[level] : "?";
}

void log_use_syslog(int on)
{
    if (on && !to_syslog)
        openlog("buoy", LOG_PID, facility);
    to_syslog = on;
}

int log_parse_facility(const char *name)
{
    static const struct {
        const char *name;
        int value;
    } f[] = {
        {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
        {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
        {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
        {"local7", LOG_LOCAL7},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strcmp(name, f[i].name) == 0)
            return f[i].value;
    return -1;
}

void log_set_facility(int fac)
{
    facility = fac;
    if (to_syslog) {
        closelog();
        openlog("buoy", LOG_PID, facility);
    }
}

void log_set_timestamps(int on)
{
    timestamps = on;
}

/* Opens path for appending onto the fd numbers in use (log_fd, and 2 when
 * stderr_too), keeping them.  Only async-signal-safe calls. */
static int open_onto(const char *path, int first)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (first) {
        log_fd = fd;
        return 0;
    }
    int rc = dup3(fd, log_fd, O_CLOEXEC);
    if (rc == 0 || rc == log_fd)
        rc = stderr_too ? dup2(fd, 2) : 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc < 0 ? -1 : 0;
}

int log_open_file(const char *path, char *err, size_t errlen)
{
    if (strlen(path) >= sizeof file_path) {
        set_err(err, errlen, "log file %s: name too long", path);
        return -1;
    }
    if (open_onto(path, log_fd == 2) < 0) {
        set_err(err, errlen, "cannot open the log file %s: %s", path, strerror(errno));
        return -1;
    }
    memcpy(file_path, path, strlen(path) + 1);
    timestamps = 1;
    to_syslog = 0;
    return 0;
}

void log_file_takes_stderr(void)
{
    if (file_path[0] && dup2(log_fd, 2) == 2)
        stderr_too = 1;
}

int log_reopen(void)
{
    if (!file_path[0])
        return 0;
    return open_onto(file_path, 0);
}

static void on_sighup(int sig)
{
    int e = errno;
    (void)sig;
    log_reopen();
    errno = e;
}

void log_reopen_on_sighup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = file_path[0] ? on_sighup : SIG_IGN;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

/* "2026-12-04T20:42:50.123Z buoy[42]: " into out; its length. */
static size_t stamp(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    char t[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(out, outlen, "%s.%03ldZ buoy[%ld]: ", t, ts.tv_nsec / 1000000L,
                     (long)getpid());
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const int prio[LOG_NLEVELS] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    char msg[1024], line[1200];
    va_list ap;

    if (level > cur_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (to_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    size_t n = timestamps ? stamp(line, sizeof line) : 0;
    if (!n)
        n = (size_t)snprintf(line, sizeof line, "buoy: ");
    /* errors say what happened without a level word, as before */
    int k = snprintf(line + n, sizeof line - n, "%s%s%s\n",
                     level == LOGL_ERROR && !timestamps ? "" : names[level],
                     level == LOGL_ERROR && !timestamps ? "" : ": ", msg);
    if (k < 0)
        return;
    n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    if (line[n - 1] != '\n')
        line[n - 1] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(log_fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
