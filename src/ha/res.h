/* res.h - resource agents: what the active node runs, in order.
 *
 * Each kind has idempotent start, stop and status with a timeout: starting a
 * running resource and stopping a stopped one succeed without doing
 * anything.  Kinds (arguments and options: buoy-ha.conf(5)):
 *
 *   ipaddr   ADDR/PREFIX dev=IF [arp=N]     an address on an interface, plus
 *                                           N (2) gratuitous ARP requests
 *   ec2-eip  PUBLIC_IP [instance=ID] [endpoint=URL] [region=R]
 *                                           Elastic IP through the EC2 API
 *   volume   URL MOUNTPOINT                 buoy mount URL MOUNTPOINT --takeover
 *   fsmount  DEVICE MOUNTPOINT [type=T] [options=O]
 *   service  NAME [init=systemd|lsb]        systemctl, or /etc/init.d/NAME
 *   exec     SCRIPT [ARG...] [running=TEXT] [status=exit|output|none]
 *                                           SCRIPT [ARG...] start|stop|status
 *
 * Every kind takes timeout=TIME (default 20s; 60s for volume). */
#ifndef BUOY_HA_RES_H
#define BUOY_HA_RES_H

#include "ha_conf.h"

#include <stddef.h>
#include <stdint.h>

struct res;

/* What agents may call back into the daemon for. */
struct res_ctx {
    /* Re-checks the lease (a fresh renewal) right before a cloud call; 0 ok. */
    int (*lease_confirm)(void *arg, char *err, size_t errlen);
    void *arg;
    const char *buoy; /* path of the buoy binary, for volume */
};

struct res_kind {
    const char *name;
    int (*validate)(const struct ha_item *it, char *err, size_t errlen);
    int (*start)(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
    int (*stop)(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
    /* 1 running, 0 stopped, -1 unknown (err filled) */
    int (*status)(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
    uint64_t default_timeout_ms;
};

enum res_state { RES_STOPPED = 0, RES_RUNNING, RES_FAILED, RES_UNKNOWN };

struct res {
    const struct ha_item *item;
    const struct res_kind *kind;
    uint64_t timeout_ms;
    enum res_state state;
    char last[200]; /* last error or what happened */
    unsigned starts, stops;
    /* The resource may be running: status said so, or a start did not end
     * in the agent's own failure (an exit code other than 0).  Cleared when
     * status says stopped, a stop succeeded, or a start failed by the
     * agent's word.  After a failed stop it says whether anything of this
     * node can still be up (the failed state keeps the lease only then). */
    int may_run;
    int last_exit; /* exit code of the last helper program, -1: none, killed, timed out */
    char cache[64]; /* kind-specific, e.g. the EC2 instance id */
};

int res_validate(const struct ha_item *it, char *err, size_t errlen);
/* The programs the resource runs can be run: an exec script exists and is
 * executable, an LSB service has its /etc/init.d script, ip / mount are on
 * PATH.  Checked when a configuration is loaded to be used (check-config,
 * run, reload), not by the parser, so that a file can be read on another
 * machine.  0, or -1 with what is missing and what to do. */
int res_check_programs(const struct ha_item *it, char *err, size_t errlen);
int res_init(struct res *r, const struct ha_item *it, char *err, size_t errlen);
int res_start(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
int res_stop(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
int res_status(struct res *r, const struct res_ctx *ctx, char *err, size_t errlen);
const char *res_state_name(enum res_state s);
/* The built-in kinds, NULL-terminated (for `buoy ha keys`). */
extern const struct res_kind *const res_kinds[];

#endif
