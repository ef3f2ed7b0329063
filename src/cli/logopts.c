/* logopts.c - where the daemons (buoy mount, serve, ha run) log:
 * --log-file FILE (appended, timestamped, reopened on SIGHUP), --syslog and
 * --syslog-facility NAME, else syslog in the background and stderr,
 * timestamped, in the foreground.
 *
 * cli_log_check() runs in the person's command, before anything starts, so a
 * bad option or a log file that cannot be opened is one line and an exit
 * code there; cli_log_start() in the daemon itself; cli_log_warn_lost() in
 * the person's command once the daemon runs, if its log goes nowhere. */
#include "commands.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_log_check(const char *cmd, struct cli_opts *o, int background)
{
    static char path[PATH_MAX];
    if (o->log_file && (o->use_syslog || o->syslog_facility)) {
        cli_error("%s: --log-file and --syslog%s send the log to different places; give one",
                  cmd, o->syslog_facility ? "-facility" : "");
        return EXIT_USAGE;
    }
    if (o->syslog_facility && log_parse_facility(o->syslog_facility) < 0) {
        cli_error("%s: --syslog-facility takes daemon, user or local0..local7, not '%s'", cmd,
                  o->syslog_facility);
        return EXIT_USAGE;
    }
    if (o->log_file) { /* absolute: the daemons run in / */
        char cwd[PATH_MAX];
        int n = o->log_file[0] == '/' || !getcwd(cwd, sizeof cwd)
                    ? snprintf(path, sizeof path, "%s", o->log_file)
                    : snprintf(path, sizeof path, "%s/%s", cwd, o->log_file);
        if (n < 0 || (size_t)n >= sizeof path)
            return cli_error("%s: --log-file %s: name too long", cmd, o->log_file);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            return cli_error("%s: --log-file %s: %s; choose a file the daemon can append to", cmd,
                             path, strerror(errno));
        close(fd);
        o->log_file = path;
    }
    return 0;
}

void cli_log_warn_lost(const char *cmd, const struct cli_opts *o, int background)
{
    if (!o->log_file && (background || o->use_syslog || o->syslog_facility) &&
        access("/dev/log", W_OK) != 0)
        log_warn("%s: no syslog on this host (/dev/log: %s): the daemon's log is lost; give "
                 "--log-file FILE next time",
                 cmd, strerror(errno));
}

int cli_log_start(const struct cli_opts *o, int background, char *err, size_t errlen)
{
    if (o->log_file)
        return log_open_file(o->log_file, err, errlen);
    if (o->syslog_facility)
        log_set_facility(log_parse_facility(o->syslog_facility));
    if (background || o->use_syslog || o->syslog_facility)
        log_use_syslog(1);
    else
        log_set_timestamps(1);
    return 0;
}
