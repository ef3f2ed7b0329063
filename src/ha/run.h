/* run.h - running a helper program (ip, arping, mount, a resource script)
 * with a timeout, its output captured.
 *
 * The child gets its own process group, stdin from /dev/null, stdout and
 * stderr into a pipe (the first 64 KiB are kept), and the signals the daemon
 * blocks unblocked.  On timeout the whole group gets SIGTERM, then SIGKILL
 * one second later, and the call reports the timeout. */
#ifndef BUOY_HA_RUN_H
#define BUOY_HA_RUN_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Runs argv[0] (searched on PATH) with argv.  extra_env: NULL or a
 * NULL-terminated list of "NAME=value" added to the environment.  Returns
 * the exit status (0-255), or -1 with err filled when it could not run,
 * timed out or died of a signal.  out may be NULL. */
int run_cmd(char *const argv[], char *const extra_env[], uint64_t timeout_ms, struct buf *out,
            char *err, size_t errlen);
/* While set (for the calling thread only), run_cmd() asks abort(arg) every
 * 50 ms or so; once it returns nonzero with a reason in why, the command's
 * group is stopped as on a timeout and run_cmd() fails with "NAME
 * cancelled: WHY".  The worker sets it while it starts resources, so that a
 * start cannot outlive the lease it began under.  NULL clears it. */
void run_set_abort(int (*abort)(void *arg, char *why, size_t whylen), void *arg);
/* The last line of out, trimmed, for messages ("" when none). */
const char *run_last_line(const struct buf *out, char *line, size_t n);

#endif
