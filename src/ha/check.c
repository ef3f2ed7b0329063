/* check.c - health checks and their rise/fall/restart bookkeeping (check.h). */
#include "check.h"
#include "run.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CK_PROCESS, CK_TCP, CK_HTTP, CK_COMMAND };
static const char *const kinds[] = {"process", "tcp", "http", "command", NULL};

static int kind_of(const char *k)
{
    for (int i = 0; kinds[i]; i++)
        if (strcmp(kinds[i], k) == 0)
            return i;
    return -1;
}

static int posint(const char *v, int lo, int hi)
{
    char *e;
    long x = v ? strtol(v, &e, 10) : -1;
    return v && *v && !*e && x >= lo && x <= hi ? (int)x : -1;
}

int check_validate(const struct ha_item *it, char *err, size_t errlen)
{
    static const char *const common[] = {"interval", "timeout",  "rise",  "fall",
                                         "restarts", "resource", "grace", NULL};
    static const char *const extra[][3] = {
        {"pidfile", "name", NULL}, {NULL}, {"status", "body", NULL}, {NULL}};
    int k = kind_of(it->kind);
    if (k < 0) {
        set_err(err, errlen, "unknown check kind '%s'; use process, tcp, http or command",
                it->kind);
        return -1;
    }
    for (int i = 0; i < it->nopts; i++) {
        int ok = 0;
        for (int j = 0; common[j]; j++)
            ok |= strcmp(common[j], it->okey[i]) == 0;
        for (int j = 0; extra[k][j]; j++)
            ok |= strcmp(extra[k][j], it->okey[i]) == 0;
        if (!ok) {
            set_err(err, errlen, "a %s check takes no option %s=", it->kind, it->okey[i]);
            return -1;
        }
    }
    static const char *const durs[] = {"interval", "timeout", "grace", NULL};
    for (int j = 0; durs[j]; j++) {
        const char *v = ha_item_opt(it, durs[j]);
        uint64_t ms;
        if (v && (ha_parse_ms(v, &ms) < 0 || (strcmp(durs[j], "grace") && ms < 50))) {
            set_err(err, errlen, "%s=%s: use a duration (at least 50ms)", durs[j], v);
            return -1;
        }
    }
    static const char *const nums[] = {"rise", "fall", "restarts", NULL};
    for (int j = 0; nums[j]; j++) {
        const char *v = ha_item_opt(it, nums[j]);
        if (v && posint(v, strcmp(nums[j], "restarts") ? 1 : 0, 100) < 0) {
            set_err(err, errlen, "%s=%s: use a whole number (%s to 100)", nums[j], v,
                    strcmp(nums[j], "restarts") ? "1" : "0");
            return -1;
        }
    }
    switch (k) {
    case CK_PROCESS:
        if (it->nargs || (!ha_item_opt(it, "pidfile") == !ha_item_opt(it, "name"))) {
            set_err(err, errlen, "a process check takes pidfile=FILE or name=NAME");
            return -1;
        }
        break;
    case CK_TCP: {
        const char *c = it->nargs == 1 ? strrchr(it->args[0], ':') : NULL;
        if (!c || c == it->args[0] || posint(c + 1, 1, 65535) < 0) {
            set_err(err, errlen, "a tcp check takes HOST:PORT");
            return -1;
        }
        break;
    }
    case CK_HTTP:
        if (it->nargs != 1 ||
            (strncmp(it->args[0], "http://", 7) && strncmp(it->args[0], "https://", 8))) {
            set_err(err, errlen, "an http check takes one http:// or https:// URL");
            return -1;
        }
        if (ha_item_opt(it, "status") && posint(ha_item_opt(it, "status"), 100, 599) < 0) {
            set_err(err, errlen, "status=%s: use an HTTP status, 100 to 599",
                    ha_item_opt(it, "status"));
            return -1;
        }
        break;
    case CK_COMMAND:
        if (it->nargs != 1) {
            set_err(err, errlen, "a command check takes one (quoted) shell command");
            return -1;
        }
        break;
    }
    return 0;
}

static uint64_t dur(const struct ha_item *it, const char *k, uint64_t def)
{
    uint64_t ms;
    const char *v = ha_item_opt(it, k);
    return v && ha_parse_ms(v, &ms) == 0 ? ms : def;
}

static int num(const struct ha_item *it, const char *k, int def)
{
    const char *v = ha_item_opt(it, k);
    return v ? atoi(v) : def;
}

void check_init(struct check *c, const struct ha_item *it)
{
    memset(c, 0, sizeof *c);
    c->item = it;
    c->kind = kind_of(it->kind);
    c->interval_ms = dur(it, "interval", 2000);
    c->timeout_ms = dur(it, "timeout", 1000);
    c->grace_ms = dur(it, "grace", 0);
    c->rise = num(it, "rise", 1);
    c->fall = num(it, "fall", 3);
    c->restarts_max = num(it, "restarts", 2);
    c->resource = ha_item_opt(it, "resource");
    c->up = 1;
}

void check_arm(struct check *c, uint64_t now, int keep_restarts)
{
    c->up = 1;
    c->oks = c->fails = 0;
    if (!keep_restarts)
        c->restarts = 0;
    c->next_ms = now + c->interval_ms;
    c->grace_until = now + c->grace_ms;
}

static int proc_alive(pid_t pid)
{
    char path[64], st[512];
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, st, sizeof st - 1);
    close(fd);
    if (n <= 0)
        return 0;
    st[n] = '\0';
    const char *rp = strrchr(st, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static int run_process(struct check *c, char *why, size_t n)
{
    const char *pf = ha_item_opt(c->item, "pidfile");
    if (pf) {
        FILE *f = fopen(pf, "re");
        long pid = 0;
        if (!f) {
            set_err(why, n, "pid file %s: %s", pf, strerror(errno));
            return -1;
        }
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
        if (!proc_alive((pid_t)pid)) {
            set_err(why, n, "pid %ld from %s is not running", pid, pf);
            return -1;
        }
        return 0;
    }
    const char *name = ha_item_opt(c->item, "name");
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], comm[64];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = '\0';
            if (strcmp(comm, name) == 0 && proc_alive(atoi(e->d_name)))
                found = 1;
        }
        fclose(f);
    }
    if (d)
        closedir(d);
    if (!found) {
        set_err(why, n, "no process named %s", name);
        return -1;
    }
    return 0;
}

static int run_tcp(struct check *c, char *why, size_t n)
{
    char host[256];
    const char *colon = strrchr(c->item->args[0], ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - c->item->args[0]), c->item->args[0]);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    int r = getaddrinfo(host, colon + 1, &hints, &ai);
    if (r) {
        set_err(why, n, "%s: %s", host, gai_strerror(r));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ret = -1;
    if (fd < 0) {
        set_err(why, n, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        ret = 0;
    else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int pr = poll(&p, 1, (int)c->timeout_ms);
        int so = 0;
        socklen_t sl = sizeof so;
        if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0)
            ret = 0;
        else
            set_err(why, n, "connect %s: %s", c->item->args[0],
                    pr == 0 ? "timed out" : strerror(so ? so : errno));
    } else
        set_err(why, n, "connect %s: %s", c->item->args[0], strerror(errno));
    close(fd);
    freeaddrinfo(ai);
    return ret;
}

static size_t http_body(char *d, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t k = size * nmemb;
    if (b->len + k > 1024 * 1024)
        return 0;
    buf_append(b, d, k);
    return k;
}

static int run_http(struct check *c, char *why, size_t n)
{
    struct buf body = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    if (!h) {
        set_err(why, n, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->item->args[0]);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    int ret = -1;
    long want = num(c->item, "status", 200);
    const char *text = ha_item_opt(c->item, "body");
    if (rc != CURLE_OK)
        set_err(why, n, "GET %s: %s", c->item->args[0], *cerr ? cerr : curl_easy_strerror(rc));
    else if (status != want)
        set_err(why, n, "GET %s: HTTP %ld, want %ld", c->item->args[0], status, want);
    else if (text && (!body.p || !strstr(body.p, text)))
        set_err(why, n, "GET %s: body does not contain \"%s\"", c->item->args[0], text);
    else
        ret = 0;
    buf_free(&body);
    return ret;
}

static int run_command(struct check *c, char *why, size_t n)
{
    struct buf out = {0};
    char *argv[] = {"/bin/sh", "-c", c->item->args[0], NULL};
    int st = run_cmd(argv, NULL, c->timeout_ms, &out, why, n);
    if (st > 0) {
        char line[160];
        set_err(why, n, "exited %d: %s", st, run_last_line(&out, line, sizeof line));
    }
    buf_free(&out);
    return st == 0 ? 0 : -1;
}

int check_run(struct check *c, char *why, size_t whylen)
{
    int r;
    why[0] = '\0';
    switch (c->kind) {
    case CK_PROCESS:
        r = run_process(c, why, whylen);
        break;
    case CK_TCP:
        r = run_tcp(c, why, whylen);
        break;
    case CK_HTTP:
        r = run_http(c, why, whylen);
        break;
    default:
        r = run_command(c, why, whylen);
        break;
    }
    c->runs++;
    if (r < 0)
        c->failures++;
    snprintf(c->last, sizeof c->last, "%s", r == 0 ? "ok" : why);
    return r;
}

enum check_verdict check_record(struct check *c, int ok, uint64_t now)
{
    c->next_ms = now + c->interval_ms;
    if (ok) {
        c->fails = 0;
        if (!c->up && ++c->oks >= c->rise) {
            c->up = 1;
            log_warn("ha: check %s is up again", c->item->name);
        }
        return CV_NONE;
    }
    c->oks = 0;
    if (now < c->grace_until)
        return CV_NONE;
    if (!c->up || ++c->fails < c->fall)
        return CV_NONE;
    c->up = 0;
    if (c->restarts < c->restarts_max) {
        c->restarts++;
        log_warn("ha: check %s failed %d times (%s): local restart %d of %d", c->item->name,
                 c->fall, c->last, c->restarts, c->restarts_max);
        return CV_RESTART;
    }
    log_warn("ha: check %s failed %d times (%s) after %d local restarts: failing over",
             c->item->name, c->fall, c->last, c->restarts);
    return CV_FAILOVER;
}
