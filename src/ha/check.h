/* check.h - health checks, what monit did for Heartbeat.
 *
 * Kinds (buoy-ha.conf(5)):
 *   process  pidfile=FILE | name=NAME    the process is alive
 *   tcp      HOST:PORT                   a TCP connect succeeds
 *   http     URL [status=N] [body=TEXT]  GET answers status N (200) and the
 *                                        body contains TEXT
 *   command  "SHELL COMMAND"             exits 0
 * Common options: interval=TIME (2s) timeout=TIME (1s) rise=N (1) fall=N (3)
 * restarts=N (2) resource=NAME (the resource to restart; default all)
 * grace=TIME (after a start, failures do not count for this long; 0).
 *
 * A check is down after `fall` failures in a row and up after `rise`
 * successes in a row.  When it goes down: while fewer than `restarts` local
 * restarts were made since the node became active, the resource is
 * restarted (stop, start); after that the node fails over. */
#ifndef BUOY_HA_CHECK_H
#define BUOY_HA_CHECK_H

#include "ha_conf.h"

#include <stddef.h>
#include <stdint.h>

enum check_verdict { CV_NONE = 0, CV_RESTART, CV_FAILOVER };

struct check {
    const struct ha_item *item;
    int kind;
    uint64_t interval_ms, timeout_ms, grace_ms;
    int rise, fall, restarts_max;
    const char *resource; /* NULL: all */
    int up;               /* 1 up (assumed at activation), 0 down */
    int oks, fails;       /* consecutive */
    int restarts;         /* since activation */
    uint64_t next_ms, grace_until;
    uint64_t runs, failures;
    char last[200];
};

int check_validate(const struct ha_item *it, char *err, size_t errlen);
void check_init(struct check *c, const struct ha_item *it);
/* Reset at activation (or after a restart, with keep_restarts). */
void check_arm(struct check *c, uint64_t now, int keep_restarts);
/* Runs the check once, blocking up to its timeout; 0 passed, -1 failed (why). */
int check_run(struct check *c, char *why, size_t whylen);
/* Feeds one result; says what to do. */
enum check_verdict check_record(struct check *c, int ok, uint64_t now);

#endif
