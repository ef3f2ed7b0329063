/* log.c - levelled logging (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static enum log_level cur_level = LOGL_WARN;
static int to_syslog;

static const char *const names[] = {"error", "warn", "info", "debug"};

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
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_use_syslog(int on)
{
    if (on && !to_syslog)
        openlog("buoy", LOG_PID, LOG_DAEMON);
    to_syslog = on;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char line[1024];
    va_list ap;

    if (level > cur_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (to_syslog)
        syslog(prio[level], "%s", line);
    else
        fprintf(stderr, "buoy: %s%s%s\n", level == LOGL_ERROR ? "" : names[level],
                level == LOGL_ERROR ? "" : ": ", line);
}

void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
