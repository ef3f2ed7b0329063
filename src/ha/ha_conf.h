/* ha_conf.h - the failover daemon's configuration file (buoy-ha.conf(5)).
 *
 * Line-oriented: "KEY VALUE..." per line, '#' starts a comment, a value with
 * spaces goes in double quotes.  One typed table (ha_conf_defs[]) drives the
 * parser, `buoy ha keys` and the man page's list; init / line / finish, with
 * the cross-field checks at finish (wireguard-tools' config.c shape).
 *
 * Durations: a bare number is seconds (as in Heartbeat's ha.cf); "500ms",
 * "1.5s", "2m" say the unit.  Everything is kept in milliseconds. */
#ifndef BUOY_HA_CONF_H
#define BUOY_HA_CONF_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HA_NAME_MAX     32 /* node, resource and check names, incl. NUL */
#define HA_MAX_PEERS    8
#define HA_MAX_ITEMS    16
#define HA_ARGS_MAX     8
#define HA_KEY_MAX      64
#define HA_DEFAULT_PORT 694

struct ha_peer {
    char name[HA_NAME_MAX];
    char addr[64];
    uint16_t port;
    struct sockaddr_in sa;
};

/* A resource or check line: "resource NAME KIND ARG... key=value...". */
struct ha_item {
    char name[HA_NAME_MAX];
    char kind[16];
    int nargs;
    char *args[HA_ARGS_MAX];
    int nopts;
    char *okey[HA_ARGS_MAX];
    char *oval[HA_ARGS_MAX];
    int line;
};

struct ha_conf {
    char path[256];
    char node[HA_NAME_MAX];
    char *bind; /* local IPv4 address for heartbeats; NULL: any */
    int port;
    struct ha_peer peers[HA_MAX_PEERS];
    int npeers;
    uint64_t keepalive_ms, warntime_ms, deadtime_ms, initdead_ms;
    int auto_failback;
    char *preferred;
    char *authkey_file;
    uint8_t key[HA_KEY_MAX];
    size_t keylen;
    uint64_t replay_window_ms;
    char *lease_store, *lease_key, *lease_endpoint, *lease_region, *lease_fault;
    uint64_t lease_time_ms, lease_margin_ms, lease_poll_ms;
    char *control;
    int flap_max;
    uint64_t flap_window_ms, flap_hold_ms, failover_hold_ms;
    struct ha_item res[HA_MAX_ITEMS];
    int nres;
    struct ha_item checks[HA_MAX_ITEMS];
    int nchecks;
    int seen[64]; /* which table entries were set (by index) */
};

enum ha_conf_kind { HC_STR, HC_MS, HC_BOOL, HC_INT, HC_PEER, HC_ITEM };

struct ha_conf_def {
    const char *name;
    enum ha_conf_kind kind;
    size_t off;         /* into struct ha_conf; 0 for HC_PEER/HC_ITEM */
    long long min, max; /* HC_MS (ms), HC_INT bounds */
    const char *def;    /* default as written in the file; NULL: required or none */
    const char *metavar;
    const char *help;
};

extern const struct ha_conf_def ha_conf_defs[];
extern const size_t ha_conf_ndefs;

void ha_conf_init(struct ha_conf *c);
/* One line (no newline), lineno for messages.  0, or -1 with err filled:
 * "FILE:LINE: what is wrong; what to do". */
int ha_conf_line(struct ha_conf *c, const char *line, int lineno, char *err, size_t errlen);
/* Cross-field checks, reading the key file, resolving peers.  0 or -1. */
int ha_conf_finish(struct ha_conf *c, char *err, size_t errlen);
/* init + every line of path + finish. */
int ha_conf_load(struct ha_conf *c, const char *path, char *err, size_t errlen);
/* Same, from a string (tests, the fuzzer); key_override skips the key file. */
int ha_conf_load_string(struct ha_conf *c, const char *text, const char *name,
                        const uint8_t *key_override, size_t keylen, char *err, size_t errlen);
void ha_conf_free(struct ha_conf *c);
/* Every resource's programs can be run (res_check_programs): for a
 * configuration about to be used on this machine.  0, or -1 with
 * "FILE: resource NAME (line N): what is missing; what to do". */
int ha_conf_check_programs(const struct ha_conf *c, char *err, size_t errlen);

/* Parses a duration ("2", "500ms", "1.5s", "2m") into ms; -1 if bad. */
int ha_parse_ms(const char *s, uint64_t *out);
/* Splits a line into tokens (quotes, comments); returns the count or -1. */
int ha_conf_tokens(const char *line, char **tok, int max, char *err, size_t errlen);
/* The value of an item's key=value option, or NULL. */
const char *ha_item_opt(const struct ha_item *it, const char *key);
/* Prints the table: "name kind default help" (for `buoy ha keys`). */
void ha_conf_print_keys(void *file);

#endif
