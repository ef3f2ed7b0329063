/* ha_conf.c - parsing and checking buoy-ha.conf (see ha_conf.h).
 *
 * The table below is the single source of the keys: the parser walks it,
 * `buoy ha keys` prints it, and t3010 checks that the man page
 * (docs/buoy-ha.conf.5) names every entry. */
#include "ha_conf.h"
#include "check.h"
#include "res.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(f) offsetof(struct ha_conf, f)
#define S      1000LL
#define DAY    (86400LL * S)

const struct ha_conf_def ha_conf_defs[] = {
    {"node", HC_STR, OFF(node), 0, 0, NULL, "NAME",
     "this node's name (required; 1-31 of A-Za-z0-9._-)"},
    {"peer", HC_PEER, 0, 0, 0, NULL, "NAME ADDR[:PORT]",
     "another node and its unicast IPv4 address (one line per peer, at least one)"},
    {"bind", HC_STR, OFF(bind), 0, 0, NULL, "ADDR",
     "local IPv4 address to send and receive on (default any)"},
    {"port", HC_INT, OFF(port), 1, 65535, "694", "PORT",
     "UDP port for heartbeats, ours and the peers' default"},
    {"keepalive", HC_MS, OFF(keepalive_ms), 20, DAY, "1", "TIME", "time between heartbeats"},
    {"warntime", HC_MS, OFF(warntime_ms), 20, DAY, "5", "TIME",
     "log a late heartbeat after this long"},
    {"deadtime", HC_MS, OFF(deadtime_ms), 50, DAY, "10", "TIME",
     "declare a silent peer dead after this long (> 2 x keepalive)"},
    {"initdead", HC_MS, OFF(initdead_ms), 0, DAY, "20", "TIME",
     "at start, wait this long for peers before claiming (>= deadtime)"},
    {"auto_failback", HC_BOOL, OFF(auto_failback), 0, 1, "off", "on|off",
     "give the resources back to the preferred node when it returns"},
    {"preferred", HC_STR, OFF(preferred), 0, 0, NULL, "NAME",
     "the node that runs the resources when it can (this node or a peer)"},
    {"authkey", HC_STR, OFF(authkey_file), 0, 0, NULL, "FILE",
     "file holding the shared HMAC key, mode 0600 (required)"},
    {"replay_window", HC_MS, OFF(replay_window_ms), 100, DAY, "30", "TIME",
     "heartbeats whose timestamp is further from our clock are dropped"},
    {"lease_store", HC_STR, OFF(lease_store), 0, 0, NULL, "URL",
     "store URL holding the lease object (required): a path or s3://bucket/prefix"},
    {"lease_key", HC_STR, OFF(lease_key), 0, 0, "ha/lease", "KEY",
     "key of the lease object in the store"},
    {"lease_endpoint", HC_STR, OFF(lease_endpoint), 0, 0, NULL, "URL",
     "S3 endpoint of the lease store"},
    {"lease_region", HC_STR, OFF(lease_region), 0, 0, NULL, "REGION",
     "S3 region of the lease store"},
    {"lease_fault", HC_STR, OFF(lease_fault), 0, 0, NULL, "SPEC",
     "inject store faults into lease requests (testing; see buoy(1) --fault)"},
    {"lease_time", HC_MS, OFF(lease_time_ms), 300, DAY, "8", "TIME",
     "how long a lease write is good for (<= deadtime for takeover within deadtime)"},
    {"lease_margin", HC_MS, OFF(lease_margin_ms), 10, DAY, "1", "TIME",
     "the holder stops this long before its lease ends (< lease_time / 3)"},
    {"lease_poll", HC_MS, OFF(lease_poll_ms), 50, DAY, "1", "TIME",
     "a standby node reads the lease this often"},
    {"control", HC_STR, OFF(control), 0, 0, "/run/buoy-ha.sock", "PATH",
     "unix socket for buoy ha status|standby|takeover|reload|clear"},
    {"flap_max", HC_INT, OFF(flap_max), 1, 1000, "3", "N",
     "claims within flap_window before this node holds back"},
    {"flap_window", HC_MS, OFF(flap_window_ms), 1000, DAY, "60", "TIME", "window for flap_max"},
    {"flap_hold", HC_MS, OFF(flap_hold_ms), 0, DAY, "60", "TIME",
     "how long a flapping node stays out of the running"},
    {"failover_hold", HC_MS, OFF(failover_hold_ms), 0, DAY, "30", "TIME",
     "after giving up the resources because of a check or a failed start, do not claim them "
     "back for this long while another node can"},
    {"resource", HC_ITEM, 0, 0, 0, NULL, "NAME KIND ARG... [key=value...]",
     "a resource; started in file order, stopped in reverse"},
    {"check", HC_ITEM, 0, 0, 0, NULL, "NAME KIND ARG... [key=value...]", "a health check"},
};
const size_t ha_conf_ndefs = sizeof ha_conf_defs / sizeof ha_conf_defs[0];

int ha_parse_ms(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    double mul;
    if (!*end || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mul = 60000;
    else
        return -1;
    v *= mul;
    if (v > 1e15)
        return -1;
    *out = (uint64_t)(v + 0.5);
    return 0;
}

/* Copies the quoted string at *p ("...", with \" and \\ escapes) to *o and
 * moves both past it; -1 when the closing quote is missing. */
static int copy_quoted(const char **p, char **o)
{
    const char *q = *p + 1;
    while (*q && *q != '"') {
        if (*q == '\\' && (q[1] == '"' || q[1] == '\\'))
            q++;
        *(*o)++ = *q++;
    }
    if (*q != '"')
        return -1;
    *p = q + 1;
    return 0;
}

int ha_conf_tokens(const char *line, char **tok, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '#')
            return n;
        if (n == max) {
            set_err(err, errlen, "more than %d words", max);
            goto fail;
        }
        char *t = xmalloc(strlen(p) + 1), *o = t;
        if (*p == '"') {
            if (copy_quoted(&p, &o) < 0) {
                free(t);
                set_err(err, errlen, "unterminated quote");
                goto fail;
            }
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\r') {
                /* key="a b": quotes may also open inside a word */
                if (*p == '"') {
                    if (copy_quoted(&p, &o) < 0) {
                        free(t);
                        set_err(err, errlen, "unterminated quote");
                        goto fail;
                    }
                    continue;
                }
                *o++ = *p++;
            }
        }
        *o = '\0';
        tok[n++] = t;
    }
fail:
    while (n)
        free(tok[--n]);
    return -1;
}

const char *ha_item_opt(const struct ha_item *it, const char *key)
{
    for (int i = 0; i < it->nopts; i++)
        if (strcmp(it->okey[i], key) == 0)
            return it->oval[i];
    return NULL;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= HA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int set_default(struct ha_conf *c, const struct ha_conf_def *d)
{
    char *p = (char *)c + d->off;
    uint64_t ms;
    switch (d->kind) {
    case HC_STR:
        if (d->off == OFF(node))
            return 0;
        free(*(char **)p);
        *(char **)p = d->def ? xstrdup(d->def) : NULL;
        return 0;
    case HC_MS:
        if (d->def && ha_parse_ms(d->def, &ms) == 0)
            *(uint64_t *)p = ms;
        return 0;
    case HC_BOOL:
        *(int *)p = d->def && strcmp(d->def, "on") == 0;
        return 0;
    case HC_INT:
        *(int *)p = d->def ? atoi(d->def) : 0;
        return 0;
    default:
        return 0;
    }
}

void ha_conf_init(struct ha_conf *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < ha_conf_ndefs; i++)
        set_default(c, &ha_conf_defs[i]);
}

static void item_free(struct ha_item *it)
{
    for (int i = 0; i < it->nargs; i++)
        free(it->args[i]);
    for (int i = 0; i < it->nopts; i++) {
        free(it->okey[i]);
        free(it->oval[i]);
    }
    memset(it, 0, sizeof *it);
}

void ha_conf_free(struct ha_conf *c)
{
    for (size_t i = 0; i < ha_conf_ndefs; i++) {
        const struct ha_conf_def *d = &ha_conf_defs[i];
        if (d->kind == HC_STR && d->off != OFF(node)) {
            free(*(char **)((char *)c + d->off));
            *(char **)((char *)c + d->off) = NULL;
        }
    }
    for (int i = 0; i < c->nres; i++)
        item_free(&c->res[i]);
    for (int i = 0; i < c->nchecks; i++)
        item_free(&c->checks[i]);
    explicit_bzero(c->key, sizeof c->key);
}

#define LERR(...)                                                                                  \
    do {                                                                                           \
        char m_[512];                                                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        set_err(err, errlen, "%s:%d: %s", c->path, lineno, m_);                                    \
        goto fail;                                                                                 \
    } while (0)

static int parse_addr(const char *s, int default_port, char *host, size_t hl, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n == 0 || n >= hl)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return -1;
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (*e || e == colon + 1 || p < 1 || p > 65535)
            return -1;
        *port = (uint16_t)p;
    } else
        *port = (uint16_t)default_port;
    return 0;
}

int ha_conf_line(struct ha_conf *c, const char *line, int lineno, char *err, size_t errlen)
{
    char *tok[2 + 2 * HA_ARGS_MAX + 2];
    char why[256];
    struct ha_item *pending = NULL; /* freed if the line fails half-way */
    int n = ha_conf_tokens(line, tok, (int)(sizeof tok / sizeof tok[0]), why, sizeof why);
    int ret = -1;
    if (n < 0) {
        set_err(err, errlen, "%s:%d: %s", c->path, lineno, why);
        return -1;
    }
    if (n == 0)
        return 0;
    size_t di;
    for (di = 0; di < ha_conf_ndefs; di++)
        if (strcmp(ha_conf_defs[di].name, tok[0]) == 0)
            break;
    if (di == ha_conf_ndefs)
        LERR("unknown key '%s'; see buoy ha keys or buoy-ha.conf(5)", tok[0]);
    const struct ha_conf_def *d = &ha_conf_defs[di];
    char *p = (char *)c + d->off;
    if (d->kind != HC_PEER && d->kind != HC_ITEM) {
        if (n != 2)
            LERR("%s takes one value (%s)", d->name, d->metavar);
        if (c->seen[di])
            LERR("%s is set twice", d->name);
    }
    c->seen[di] = 1;
    switch (d->kind) {
    case HC_STR:
        if (d->off == OFF(node)) {
            if (!name_ok(tok[1]))
                LERR("node name '%s' is not 1-31 of A-Za-z0-9._-", tok[1]);
            snprintf(c->node, sizeof c->node, "%s", tok[1]);
        } else {
            free(*(char **)p);
            *(char **)p = xstrdup(tok[1]);
        }
        break;
    case HC_MS: {
        uint64_t ms;
        if (ha_parse_ms(tok[1], &ms) < 0)
            LERR("%s: '%s' is not a duration; use e.g. 2 (seconds), 500ms or 1.5s", d->name,
                 tok[1]);
        if ((long long)ms < d->min || (long long)ms > d->max)
            LERR("%s: %s is out of range (%lldms to %llds)", d->name, tok[1], d->min, d->max / S);
        *(uint64_t *)p = ms;
        break;
    }
    case HC_BOOL:
        if (strcmp(tok[1], "on") == 0 || strcmp(tok[1], "yes") == 0 || strcmp(tok[1], "true") == 0)
            *(int *)p = 1;
        else if (strcmp(tok[1], "off") == 0 || strcmp(tok[1], "no") == 0 ||
                 strcmp(tok[1], "false") == 0)
            *(int *)p = 0;
        else
            LERR("%s takes on or off, not '%s'", d->name, tok[1]);
        break;
    case HC_INT: {
        char *e;
        errno = 0;
        long v = strtol(tok[1], &e, 10);
        if (errno || *e || e == tok[1] || v < d->min || v > d->max)
            LERR("%s takes a whole number from %lld to %lld, not '%s'", d->name, d->min, d->max,
                 tok[1]);
        *(int *)p = (int)v;
        break;
    }
    case HC_PEER: {
        if (n != 3)
            LERR("peer takes a name and an address: peer NAME ADDR[:PORT]");
        if (c->npeers == HA_MAX_PEERS)
            LERR("at most %d peers", HA_MAX_PEERS);
        struct ha_peer *pe = &c->peers[c->npeers];
        memset(pe, 0, sizeof *pe);
        if (!name_ok(tok[1]))
            LERR("peer name '%s' is not 1-31 of A-Za-z0-9._-", tok[1]);
        for (int i = 0; i < c->npeers; i++)
            if (strcmp(c->peers[i].name, tok[1]) == 0)
                LERR("peer %s is listed twice", tok[1]);
        snprintf(pe->name, sizeof pe->name, "%s", tok[1]);
        /* The port is resolved at finish, when the port key is known. */
        pe->port = 0;
        if (parse_addr(tok[2], 0, pe->addr, sizeof pe->addr, &pe->port) < 0)
            LERR("peer %s: '%s' is not an IPv4 address with an optional :PORT", tok[1], tok[2]);
        c->npeers++;
        break;
    }
    case HC_ITEM: {
        int is_res = strcmp(d->name, "resource") == 0;
        struct ha_item *arr = is_res ? c->res : c->checks;
        int *cnt = is_res ? &c->nres : &c->nchecks;
        if (n < 3)
            LERR("%s takes a name, a kind and arguments: %s %s", d->name, d->name, d->metavar);
        if (*cnt == HA_MAX_ITEMS)
            LERR("at most %d of %s", HA_MAX_ITEMS, d->name);
        if (!name_ok(tok[1]))
            LERR("%s name '%s' is not 1-31 of A-Za-z0-9._-", d->name, tok[1]);
        for (int i = 0; i < *cnt; i++)
            if (strcmp(arr[i].name, tok[1]) == 0)
                LERR("%s %s is defined twice", d->name, tok[1]);
        struct ha_item *it = &arr[*cnt];
        memset(it, 0, sizeof *it);
        snprintf(it->name, sizeof it->name, "%s", tok[1]);
        snprintf(it->kind, sizeof it->kind, "%.15s", tok[2]);
        it->line = lineno;
        pending = it;
        for (int i = 3; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            /* key=value when the part before '=' is a plain word */
            int is_opt = 0;
            if (eq && eq != tok[i]) {
                is_opt = 1;
                for (char *k = tok[i]; k < eq; k++)
                    if (!((*k >= 'a' && *k <= 'z') || *k == '_'))
                        is_opt = 0;
            }
            if (is_opt) {
                if (it->nopts == HA_ARGS_MAX)
                    LERR("%s %s: too many key=value options", d->name, it->name);
                it->okey[it->nopts] = xstrndup(tok[i], (size_t)(eq - tok[i]));
                it->oval[it->nopts] = xstrdup(eq + 1);
                it->nopts++;
            } else {
                if (it->nargs == HA_ARGS_MAX)
                    LERR("%s %s: too many arguments", d->name, it->name);
                it->args[it->nargs++] = xstrdup(tok[i]);
            }
        }
        char why2[256] = "";
        int bad =
            is_res ? res_validate(it, why2, sizeof why2) : check_validate(it, why2, sizeof why2);
        if (bad)
            LERR("%s %s: %s", d->name, it->name, why2);
        pending = NULL;
        (*cnt)++;
        break;
    }
    }
    ret = 0;
fail:
    if (pending)
        item_free(pending);
    for (int i = 0; i < n; i++)
        free(tok[i]);
    return ret;
}

static int read_key(struct ha_conf *c, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(c->authkey_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        set_err(err, errlen, "%s: authkey %s: cannot open: %s", c->path, c->authkey_file,
                strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        set_err(err, errlen, "%s: authkey %s is not a regular file", c->path, c->authkey_file);
        return -1;
    }
    if (st.st_mode & 077) {
        close(fd);
        set_err(err, errlen, "%s: authkey %s has mode %04o; run chmod 600 %s", c->path,
                c->authkey_file, (unsigned)(st.st_mode & 07777), c->authkey_file);
        return -1;
    }
    char buf[HA_KEY_MAX + 2];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        set_err(err, errlen, "%s: authkey %s: %s", c->path, c->authkey_file, strerror(errno));
        return -1;
    }
    size_t len = 0;
    while (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    if (len > HA_KEY_MAX) {
        set_err(err, errlen, "%s: authkey %s: the key (its first line) is longer than %d bytes",
                c->path, c->authkey_file, HA_KEY_MAX);
        explicit_bzero(buf, sizeof buf);
        return -1;
    }
    if (len < 8) {
        set_err(err, errlen, "%s: authkey %s: the key (its first line) is shorter than 8 bytes",
                c->path, c->authkey_file);
        explicit_bzero(buf, sizeof buf);
        return -1;
    }
    memcpy(c->key, buf, len);
    c->keylen = len;
    explicit_bzero(buf, sizeof buf);
    return 0;
}

static int key_index(const char *name)
{
    for (size_t i = 0; i < ha_conf_ndefs; i++)
        if (strcmp(ha_conf_defs[i].name, name) == 0)
            return (int)i;
    return -1;
}

#define FERR(...)                                                                                  \
    do {                                                                                           \
        char m_[512];                                                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        set_err(err, errlen, "%s: %s", c->path, m_);                                               \
        return -1;                                                                                 \
    } while (0)

static int finish(struct ha_conf *c, int need_keyfile, char *err, size_t errlen)
{
    if (!c->node[0])
        FERR("no node line; add: node NAME (this node's name)");
    if (c->npeers == 0)
        FERR("no peer line; add: peer NAME ADDR for each other node");
    if (!c->lease_store)
        FERR(
            "no lease_store; add: lease_store URL (a path or s3://bucket/prefix both nodes reach)");
    if (need_keyfile && !c->authkey_file)
        FERR("no authkey; add: authkey FILE (a shared secret, mode 0600)");
    for (int i = 0; i < c->npeers; i++) {
        if (strcmp(c->peers[i].name, c->node) == 0)
            FERR("peer %s is this node's own name", c->node);
        if (!c->peers[i].port)
            c->peers[i].port = (uint16_t)c->port;
        c->peers[i].sa.sin_family = AF_INET;
        c->peers[i].sa.sin_port = htons(c->peers[i].port);
        inet_pton(AF_INET, c->peers[i].addr, &c->peers[i].sa.sin_addr);
    }
    if (c->bind) {
        struct in_addr a;
        if (inet_pton(AF_INET, c->bind, &a) != 1)
            FERR("bind %s is not an IPv4 address", c->bind);
    }
    if (c->deadtime_ms <= 2 * c->keepalive_ms)
        FERR("deadtime (%llums) must be more than 2 x keepalive (%llums); raise deadtime or "
             "lower keepalive",
             (unsigned long long)c->deadtime_ms, (unsigned long long)c->keepalive_ms);
    if (c->warntime_ms < c->keepalive_ms || c->warntime_ms >= c->deadtime_ms) {
        if (c->seen[key_index("warntime")])
            FERR("warntime (%llums) must be at least keepalive and below deadtime",
                 (unsigned long long)c->warntime_ms);
        c->warntime_ms = (c->keepalive_ms + c->deadtime_ms) / 2;
    }
    if (c->initdead_ms < c->deadtime_ms) {
        if (c->seen[key_index("initdead")])
            FERR("initdead (%llums) must be at least deadtime (%llums)",
                 (unsigned long long)c->initdead_ms, (unsigned long long)c->deadtime_ms);
        c->initdead_ms = 2 * c->deadtime_ms;
    }
    if (!c->seen[key_index("lease_time")] && c->lease_time_ms > c->deadtime_ms) {
        c->lease_time_ms = c->deadtime_ms * 3 / 4;
        if (c->lease_time_ms < 300)
            c->lease_time_ms = 300;
    }
    if (!c->seen[key_index("lease_margin")])
        c->lease_margin_ms = c->lease_time_ms / 8 > 10 ? c->lease_time_ms / 8 : 10;
    if (!c->seen[key_index("lease_poll")] && c->lease_poll_ms > c->lease_time_ms / 4)
        c->lease_poll_ms = c->lease_time_ms / 4 >= 50 ? c->lease_time_ms / 4 : 50;
    if (3 * c->lease_margin_ms >= c->lease_time_ms)
        FERR("lease_margin (%llums) must be below lease_time / 3 (%llums)",
             (unsigned long long)c->lease_margin_ms, (unsigned long long)c->lease_time_ms / 3);
    if (c->lease_poll_ms >= c->lease_time_ms)
        FERR("lease_poll (%llums) must be below lease_time (%llums)",
             (unsigned long long)c->lease_poll_ms, (unsigned long long)c->lease_time_ms);
    if (c->replay_window_ms < 2 * c->keepalive_ms)
        FERR("replay_window (%llums) must be at least 2 x keepalive",
             (unsigned long long)c->replay_window_ms);
    if (c->preferred) {
        int known = strcmp(c->preferred, c->node) == 0;
        for (int i = 0; i < c->npeers; i++)
            known |= strcmp(c->preferred, c->peers[i].name) == 0;
        if (!known)
            FERR("preferred %s is neither this node nor a peer", c->preferred);
    } else if (c->auto_failback)
        FERR("auto_failback on needs a preferred node; add: preferred NAME");
    for (int i = 0; i < c->nchecks; i++) {
        const char *r = ha_item_opt(&c->checks[i], "resource");
        if (!r)
            continue;
        int found = 0;
        for (int j = 0; j < c->nres; j++)
            found |= strcmp(c->res[j].name, r) == 0;
        if (!found)
            FERR("check %s (line %d): resource=%s names no resource", c->checks[i].name,
                 c->checks[i].line, r);
    }
    if (need_keyfile && read_key(c, err, errlen) < 0)
        return -1;
    return 0;
}

int ha_conf_finish(struct ha_conf *c, char *err, size_t errlen)
{
    return finish(c, 1, err, errlen);
}

int ha_conf_check_programs(const struct ha_conf *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->nres; i++) {
        char why[768];
        if (res_check_programs(&c->res[i], why, sizeof why) < 0) {
            set_err(err, errlen, "%s: resource %s (line %d): %s", c->path, c->res[i].name,
                    c->res[i].line, why);
            return -1;
        }
    }
    return 0;
}

int ha_conf_load(struct ha_conf *c, const char *path, char *err, size_t errlen)
{
    ha_conf_init(c);
    snprintf(c->path, sizeof c->path, "%s", path);
    FILE *f = fopen(path, "re");
    if (!f) {
        set_err(err, errlen, "cannot read config %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, ret = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
        if (ha_conf_line(c, line, lineno, err, errlen) < 0) {
            ret = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (ret == 0)
        ret = ha_conf_finish(c, err, errlen);
    return ret;
}

int ha_conf_load_string(struct ha_conf *c, const char *text, const char *name,
                        const uint8_t *key_override, size_t keylen, char *err, size_t errlen)
{
    ha_conf_init(c);
    snprintf(c->path, sizeof c->path, "%s", name);
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char *line = xstrndup(p, n);
        lineno++;
        int r = ha_conf_line(c, line, lineno, err, errlen);
        free(line);
        if (r < 0)
            return -1;
        p += n + (eol ? 1 : 0);
    }
    if (key_override) {
        if (keylen > HA_KEY_MAX)
            keylen = HA_KEY_MAX;
        memcpy(c->key, key_override, keylen);
        c->keylen = keylen;
        return finish(c, 0, err, errlen);
    }
    return finish(c, 1, err, errlen);
}

void ha_conf_print_keys(void *file)
{
    FILE *f = file;
    static const char *const kinds[] = {"string", "duration", "on|off", "integer", "peer", "item"};
    for (size_t i = 0; i < ha_conf_ndefs; i++) {
        const struct ha_conf_def *d = &ha_conf_defs[i];
        fprintf(f, "%-15s %-8s %-18s %s\n", d->name, kinds[d->kind], d->def ? d->def : "-",
                d->help);
    }
}
