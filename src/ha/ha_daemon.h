/* ha_daemon.h - `buoy ha run`: the failover daemon, and what its three
 * threads share.
 *
 *   main thread (ha_daemon.c)  heartbeats out and in, the control socket,
 *                              the state machine (ha_sm.c), signals; never
 *                              blocks for long
 *   lease thread (ha_lease.c)  every store request for the lease: watch,
 *                              take, renew, release (src/store/lease.c)
 *   worker thread (ha_work.c)  resource start/stop/status and checks, one
 *                              job at a time (res.c, check.c)
 *
 * The main thread decides; the other two do slow things and report back
 * through the shared fields below (under mu) and a wake-up pipe. */
#ifndef BUOY_HA_DAEMON_H
#define BUOY_HA_DAEMON_H

#include "check.h"
#include "ha_conf.h"
#include "ha_sm.h"
#include "hb.h"
#include "res.h"
#include "store/lease.h"

#include <pthread.h>
#include <stdint.h>

enum ha_work_job { WJ_NONE = 0, WJ_START, WJ_STOP, WJ_CHECK, WJ_RESTART };

struct ha_peer_state {
    struct ha_sm_peer view;
    struct hb_replay replay;
    uint64_t last_ms; /* monotonic, last accepted heartbeat */
    uint64_t accepted;
    uint32_t claims;
    int warned;
};

struct ha_lease_view {
    int held;
    uint64_t deadline_ms;
    uint64_t epoch; /* ours when held */
    int seen, exists;
    struct lease_rec cur; /* last seen in the store */
    uint64_t wait_ms;     /* until a take would be allowed */
    char last_err[256];
    uint64_t renewals_ok, renewals_failed, takes;
};

struct ha_daemon {
    struct ha_conf conf;
    struct ha_sm sm;
    const char *buoy_path;
    int udp, ctl, sigfd, wake[2];
    struct ha_peer_state peers[HA_MAX_PEERS];
    uint64_t drops[HB_NDROP];
    uint64_t incarnation, seq, sent;
    uint64_t next_send_ms;
    int quit, quit_after_stop;
    enum ha_cmd pending_cmd; /* from the control socket or a signal, for the next step */

    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* lease thread: wanted (by main) and seen (by the thread) */
    pthread_t lease_thread;
    struct store *store;
    struct lease lease;
    enum ha_lease_mode lease_mode;
    int release_req;
    unsigned confirm_req, confirm_done;
    int confirm_ok;
    char confirm_err[256];
    struct ha_lease_view lv;

    /* worker thread */
    pthread_t work_thread;
    enum ha_work_job job; /* being done, or queued for the worker */
    int job_arg;          /* check index, or resource index (-1 all) */
    int job_running;
    enum ha_work_job job_result;
    int job_result_arg, job_result_ok;
    int job_result_up; /* after a stop: some resource may still run (res.may_run) */
    struct res res[HA_MAX_ITEMS];
    struct check checks[HA_MAX_ITEMS];
    enum ha_job sm_pending; /* a start/stop the state machine asked for, not yet handed over */
    int check_failover;
};

/* Runs until SIGTERM/SIGINT (resources stopped first).  0 clean, 1 error. */
int ha_daemon_run(const char *config_path, const char *buoy_path);

/* The threads (ha_lease.c, ha_work.c). */
void *ha_lease_main(void *arg);
void *ha_work_main(void *arg);
/* For res_ctx: renew the lease now and say whether it is still ours. */
int ha_lease_confirm(void *daemon, char *err, size_t errlen);
void ha_wake(struct ha_daemon *d);
/* The status as one JSON object (ha_status.c; main thread only). */
void ha_status_json(struct ha_daemon *d, struct buf *out);

#endif
