/* delayproxy.c - an HTTP/1.1 forwarder that makes a loopback S3 server look
 * like one across a network: every response's first byte is held back until
 * at least DELAY ms after the request was fully received, each connection can
 * be capped in bandwidth, and every request is counted by kind so that two
 * systems driven through it are measured the same way.
 *
 *   delayproxy --upstream HOST:PORT [--listen PORT] [--delay-ms 20]
 *              [--bw BYTES_PER_S] [--stats-port PORT] [--port-file FILE] [-v]
 *
 * --listen 0 (the default) and --stats-port 0 pick free ports; --port-file
 * gets "LISTEN_PORT STATS_PORT\n" once both listen (written to a temporary
 * name and renamed, so a reader never sees half of it).  A connection to the
 * stats port gets one HTTP/1.0 reply whose body is "name value" lines:
 * requests get put head delete post list other bytes_up bytes_down status_2xx
 * status_3xx status_4xx status_5xx connections active inflight inflight_peak
 * busy_us (the sum of every request's time in the proxy, from its head to
 * its last response byte: over a wall-clock interval, the mean number of
 * requests in flight).  GET /reset-peak on the stats port also restarts
 * inflight_peak from the current count.  A GET whose path names
 * only a bucket (no key) counts as a list, because S3 prices it as one.
 *
 * How it forwards: one thread per client connection, one upstream connection
 * per client connection (opened on the first request, reopened when the
 * server closed it), requests handled one at a time as HTTP/1.1 clients send
 * them (no pipelining).  Bodies are delimited by Content-Length, chunked
 * encoding, or the end of the connection, and are copied without being
 * looked at.  "Expect: 100-continue" is answered by the proxy itself and not
 * passed on, so a client never waits on a 100 that the delay would hold.
 * The delay counts from when the request's last byte was forwarded: a slow
 * server is not slowed further, a fast one looks DELAY ms away.
 * --bw paces each direction of each connection separately. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024) /* longest request or response head we accept */
#define BUF_SIZE (256 * 1024)
#define PACE_CHUNK (16 * 1024) /* write size while --bw paces */

static const char *up_host = "127.0.0.1";
static const char *up_port;
static long delay_ms = 20;
static uint64_t bw_cap; /* bytes per second per direction per connection, 0 = none */
static int verbose;

enum {
    C_REQUESTS,
    C_GET,
    C_PUT,
    C_HEAD,
    C_DELETE,
    C_POST,
    C_LIST,
    C_OTHER,
    C_BYTES_UP,
    C_BYTES_DOWN,
    C_2XX,
    C_3XX,
    C_4XX,
    C_5XX,
    C_CONNECTIONS,
    C_ACTIVE,
    C_INFLIGHT,
    C_INFLIGHT_PEAK,
    C_BUSY_US,
    C_COUNT
};
static const char *const counter_names[C_COUNT] = {
    "requests",   "get",        "put",        "head",       "delete",      "post",
    "list",       "other",      "bytes_up",   "bytes_down", "status_2xx",  "status_3xx",
    "status_4xx", "status_5xx", "connections", "active",     "inflight",    "inflight_peak",
    "busy_us",
};
static uint64_t counters[C_COUNT];

static void count(int c, int64_t n)
{
    __atomic_fetch_add(&counters[c], (uint64_t)n, __ATOMIC_RELAXED);
}

/* One more request in flight; keeps the peak. */
static void inflight_up(void)
{
    uint64_t n = __atomic_add_fetch(&counters[C_INFLIGHT], 1, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&counters[C_INFLIGHT_PEAK], __ATOMIC_RELAXED);
    while (n > peak && !__atomic_compare_exchange_n(&counters[C_INFLIGHT_PEAK], &peak, n, 0,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("delayproxy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* --- buffered reading from one socket ------------------------------------ */

struct rbuf {
    int fd;
    char *data;
    size_t start, end; /* unread bytes are data[start, end) */
};

/* Reads more bytes; 1 on data, 0 on EOF, -1 on error. */
static int rb_fill(struct rbuf *b)
{
    if (b->start == b->end)
        b->start = b->end = 0;
    if (b->end == BUF_SIZE) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->end == BUF_SIZE)
            return -1;
    }
    for (;;) {
        ssize_t n = read(b->fd, b->data + b->end, BUF_SIZE - b->end);
        if (n > 0) {
            b->end += (size_t)n;
            return 1;
        }
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Reads up to and including the blank line that ends a message head.
 * Returns its length (the head stays at data+start), 0 on a clean EOF before
 * any byte, -1 on error or a head longer than HEAD_MAX. */
static long rb_head(struct rbuf *b)
{
    size_t scanned = 0;
    for (;;) {
        size_t avail = b->end - b->start;
        if (avail >= 4) {
            char *p = memmem(b->data + b->start + (scanned > 3 ? scanned - 3 : 0),
                             avail - (scanned > 3 ? scanned - 3 : 0), "\r\n\r\n", 4);
            if (p) {
                long len = (long)(p + 4 - (b->data + b->start));
                return len > HEAD_MAX ? -1 : len;
            }
        }
        scanned = avail;
        if (avail > HEAD_MAX)
            return -1;
        if (b->start > 0 && b->end == BUF_SIZE) {
            memmove(b->data, b->data + b->start, avail);
            b->start = 0;
            b->end = avail;
        }
        int r = rb_fill(b);
        if (r == 0)
            return avail == 0 ? 0 : -1;
        if (r < 0)
            return -1;
    }
}

/* --- paced writing ------------------------------------------------------------ */

struct pacer {
    uint64_t next; /* when the bytes sent so far may all have gone at bw_cap */
};

static int write_all(int fd, const char *p, size_t n, struct pacer *pc)
{
    while (n > 0) {
        size_t len = n;
        if (bw_cap) {
            uint64_t t = now_ns();
            if (pc->next < t)
                pc->next = t;
            if (len > PACE_CHUNK)
                len = PACE_CHUNK;
            sleep_until(pc->next);
            pc->next += (uint64_t)len * 1000000000u / bw_cap;
        }
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies n body bytes from src to dst (counted in counter c).  0 or -1. */
static int copy_n(struct rbuf *src, int dst, uint64_t n, struct pacer *pc, int c)
{
    while (n > 0) {
        if (src->start == src->end && rb_fill(src) <= 0)
            return -1;
        size_t len = src->end - src->start;
        if (len > n)
            len = (size_t)n;
        if (write_all(dst, src->data + src->start, len, pc) < 0)
            return -1;
        src->start += len;
        n -= len;
        count(c, (int64_t)len);
    }
    return 0;
}

/* Copies one line (up to CRLF, included) from src to dst; stores its start
 * in line (NUL-terminated, cut at cap).  0 or -1. */
static int copy_line(struct rbuf *src, int dst, struct pacer *pc, char *line, size_t cap)
{
    for (;;) {
        char *p = memmem(src->data + src->start, src->end - src->start, "\r\n", 2);
        if (p) {
            size_t len = (size_t)(p + 2 - (src->data + src->start));
            size_t keep = len < cap ? len : cap - 1;
            memcpy(line, src->data + src->start, keep);
            line[keep] = 0;
            if (write_all(dst, src->data + src->start, len, pc) < 0)
                return -1;
            src->start += len;
            return 0;
        }
        if (src->end - src->start > 4096)
            return -1;
        if (rb_fill(src) <= 0)
            return -1;
    }
}

/* Copies a chunked body, chunk by chunk, then the trailer.  0 or -1. */
static int copy_chunked(struct rbuf *src, int dst, struct pacer *pc, int c)
{
    char line[128];
    for (;;) {
        if (copy_line(src, dst, pc, line, sizeof line) < 0)
            return -1;
        char *end;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line)
            return -1;
        if (size == 0)
            break;
        if (copy_n(src, dst, size, pc, c) < 0)
            return -1;
        if (copy_line(src, dst, pc, line, sizeof line) < 0) /* the CRLF after the data */
            return -1;
    }
    do { /* trailer fields, then the blank line */
        if (copy_line(src, dst, pc, line, sizeof line) < 0)
            return -1;
    } while (strcmp(line, "\r\n") != 0);
    return 0;
}

/* Copies everything until src ends.  0 or -1. */
static int copy_to_eof(struct rbuf *src, int dst, struct pacer *pc, int c)
{
    for (;;) {
        if (src->start == src->end) {
            int r = rb_fill(src);
            if (r == 0)
                return 0;
            if (r < 0)
                return -1;
        }
        size_t len = src->end - src->start;
        if (write_all(dst, src->data + src->start, len, pc) < 0)
            return -1;
        src->start += len;
        count(c, (int64_t)len);
    }
}

/* --- message heads ---------------------------------------------------------- */

struct head {
    int64_t content_length; /* -1 when absent */
    int chunked, close, keep_alive, expect_continue;
};

/* Parses the header fields of the head at h (length n, first line skipped).
 * Writes into out the head without any Expect field (and without the
 * Connection field when drop_conn) when out is not NULL, returning its
 * length there. */
static size_t parse_fields(const char *h, size_t n, struct head *hd, char *out, int drop_conn)
{
    const char *p = memmem(h, n, "\r\n", 2) + 2, *end = h + n;
    size_t olen = 0;
    memset(hd, 0, sizeof *hd);
    hd->content_length = -1;
    if (out) {
        olen = (size_t)(p - h);
        memcpy(out, h, olen);
    }
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        size_t len = (size_t)(eol - p);
        int drop = 0;
        const char *colon = memchr(p, ':', len);
        if (colon) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(eol - v);
            if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0)
                hd->content_length = strtoll(v, NULL, 10);
            else if (nl == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
                hd->chunked = memmem(v, vl, "chunked", 7) != NULL;
            else if (nl == 10 && strncasecmp(p, "Connection", 10) == 0)
            {
                hd->close = vl >= 5 && strncasecmp(v, "close", 5) == 0;
                hd->keep_alive = vl >= 10 && strncasecmp(v, "keep-alive", 10) == 0;
                drop = drop_conn;
            }
            else if (nl == 6 && strncasecmp(p, "Expect", 6) == 0) {
                hd->expect_continue = vl >= 12 && strncasecmp(v, "100-continue", 12) == 0;
                drop = 1;
            }
        }
        if (out && !drop) {
            memcpy(out + olen, p, len + 2);
            olen += len + 2;
        }
        p = eol + 2;
    }
    return olen;
}

/* Which counter a request line counts in. */
static int classify(const char *line, size_t n, int *is_head)
{
    *is_head = 0;
    const char *sp = memchr(line, ' ', n);
    if (!sp)
        return C_OTHER;
    size_t ml = (size_t)(sp - line);
    if (ml == 3 && memcmp(line, "GET", 3) == 0) {
        /* /bucket or /bucket/ or /bucket?... (path style), or / (virtual-hosted) */
        const char *t = sp + 1, *te = memchr(t, ' ', (size_t)(line + n - t));
        if (!te)
            te = line + n;
        const char *q = memchr(t, '?', (size_t)(te - t));
        if (q)
            te = q;
        const char *slash = t + 1 < te ? memchr(t + 1, '/', (size_t)(te - t - 1)) : NULL;
        if (!slash || slash + 1 == te)
            return C_LIST;
        return C_GET;
    }
    if (ml == 3 && memcmp(line, "PUT", 3) == 0)
        return C_PUT;
    if (ml == 4 && memcmp(line, "HEAD", 4) == 0) {
        *is_head = 1;
        return C_HEAD;
    }
    if (ml == 6 && memcmp(line, "DELETE", 6) == 0)
        return C_DELETE;
    if (ml == 4 && memcmp(line, "POST", 4) == 0)
        return C_POST;
    return C_OTHER;
}

static int connect_upstream(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int fd = -1, one = 1;
    if (getaddrinfo(up_host, up_port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static const char bad_gateway[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n";

/* --- one client connection ------------------------------------------------ */

static void *serve(void *arg)
{
    int cfd = (int)(intptr_t)arg, ufd = -1;
    struct rbuf cb = {.fd = cfd}, ub = {.fd = -1};
    struct pacer to_client = {0}, to_server = {0};
    char *out = malloc(HEAD_MAX + 64);
    cb.data = malloc(BUF_SIZE);
    ub.data = malloc(BUF_SIZE);
    if (!out || !cb.data || !ub.data)
        goto done;
    count(C_CONNECTIONS, 1);
    count(C_ACTIVE, 1);
    int in_req = 0;
    uint64_t t_start = 0;
    for (;;) {
        long hl = rb_head(&cb);
        if (hl <= 0)
            break;
        struct head rq, rs;
        int is_head;
        const char *h = cb.data + cb.start;
        const char *eol = memmem(h, (size_t)hl, "\r\n", 2);
        int kind = classify(h, (size_t)(eol - h), &is_head);
        size_t ol = parse_fields(h, (size_t)hl, &rq, out, 0);
        count(C_REQUESTS, 1);
        count(kind, 1);
        t_start = now_ns();
        inflight_up();
        in_req = 1;
        if (verbose)
            fprintf(stderr, "delayproxy: %.*s\n", (int)(eol - h), h);
        cb.start += (size_t)hl;

        /* A kept-alive upstream connection the server closed meanwhile shows
         * as readable (EOF) before we send anything: open a fresh one. */
        if (ufd >= 0) {
            struct pollfd pf = {.fd = ufd, .events = POLLIN};
            if (poll(&pf, 1, 0) > 0) {
                close(ufd);
                ufd = -1;
            }
        }
        if (ufd < 0) {
            ufd = connect_upstream();
            ub.fd = ufd;
            ub.start = ub.end = 0;
            if (ufd < 0) {
                write_all(cfd, bad_gateway, sizeof bad_gateway - 1, &to_client);
                break;
            }
        }
        if (write_all(ufd, out, ol, &to_server) < 0)
            break;
        if (rq.expect_continue &&
            write_all(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25, &to_client) < 0)
            break;
        int rc = 0;
        if (rq.chunked)
            rc = copy_chunked(&cb, ufd, &to_server, C_BYTES_UP);
        else if (rq.content_length > 0)
            rc = copy_n(&cb, ufd, (uint64_t)rq.content_length, &to_server, C_BYTES_UP);
        if (rc < 0)
            break;
        uint64_t release = now_ns() + (uint64_t)delay_ms * 1000000u;

        /* The response; interim 1xx answers are dropped (we sent our own 100). */
        long rl;
        int status;
        for (;;) {
            rl = rb_head(&ub);
            if (rl <= 0)
                break;
            status = atoi(ub.data + ub.start + 9);
            if (status >= 200 || status < 100)
                break;
            ub.start += (size_t)rl;
        }
        if (rl <= 0) {
            write_all(cfd, bad_gateway, sizeof bad_gateway - 1, &to_client);
            break;
        }
        /* The client's connection stays open whatever the server does with
         * ours (as S3 keeps it), unless the body runs to the end of it. */
        parse_fields(ub.data + ub.start, (size_t)rl, &rs, NULL, 0);
        int no_body = is_head || status == 204 || status == 304;
        int until_eof = !no_body && !rs.chunked && rs.content_length < 0;
        int http10 = strncmp(ub.data + ub.start, "HTTP/1.0", 8) == 0;
        size_t sl = parse_fields(ub.data + ub.start, (size_t)rl, &rs, out, !until_eof && !rq.close);
        if (status >= 200 && status < 600)
            count(C_2XX + status / 100 - 2, 1);
        ub.start += (size_t)rl;
        sleep_until(release);
        if (write_all(cfd, out, sl, &to_client) < 0)
            break;
        if (no_body)
            rc = 0;
        else if (rs.chunked)
            rc = copy_chunked(&ub, cfd, &to_client, C_BYTES_DOWN);
        else if (rs.content_length >= 0)
            rc = copy_n(&ub, cfd, (uint64_t)rs.content_length, &to_client, C_BYTES_DOWN);
        else
            rc = copy_to_eof(&ub, cfd, &to_client, C_BYTES_DOWN);
        count(C_INFLIGHT, -1);
        count(C_BUSY_US, (int64_t)((now_ns() - t_start) / 1000));
        in_req = 0;
        if (rc < 0 || until_eof || rq.close)
            break;
        /* HTTP/1.0 closes after each response unless it says keep-alive. */
        if (rs.close || (http10 && !rs.keep_alive)) {
            close(ufd);
            ufd = ub.fd = -1;
        }
    }
    if (in_req) {
        count(C_INFLIGHT, -1);
        count(C_BUSY_US, (int64_t)((now_ns() - t_start) / 1000));
    }
    count(C_ACTIVE, -1);
done:
    if (ufd >= 0)
        close(ufd);
    close(cfd);
    free(out);
    free(cb.data);
    free(ub.data);
    return NULL;
}

/* --- listening ---------------------------------------------------------------- */

static int listen_on(int port, int *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind 127.0.0.1:%d: %s", port, strerror(errno));
    if (listen(fd, 512) < 0)
        die("listen: %s", strerror(errno));
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *bound = ntohs(sa.sin_port);
    return fd;
}

static void *stats_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        /* Take what the client sent (an HTTP request or nothing) so closing
         * does not reset the connection under it. */
        char junk[4096];
        ssize_t jn = 0;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 200) > 0)
            jn = read(fd, junk, sizeof junk - 1);
        junk[jn > 0 ? jn : 0] = 0;
        char body[2048];
        size_t bl = 0;
        for (int i = 0; i < C_COUNT; i++)
            bl += (size_t)snprintf(body + bl, sizeof body - bl, "%s %llu\n", counter_names[i],
                                   (unsigned long long)__atomic_load_n(&counters[i],
                                                                       __ATOMIC_RELAXED));
        char hdr[128];
        int hl = snprintf(hdr, sizeof hdr,
                          "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          bl);
        if (send(fd, hdr, (size_t)hl, MSG_NOSIGNAL) == hl)
            (void)!send(fd, body, bl, MSG_NOSIGNAL);
        if (strncmp(junk, "GET /reset-peak", 15) == 0)
            __atomic_store_n(&counters[C_INFLIGHT_PEAK],
                             __atomic_load_n(&counters[C_INFLIGHT], __ATOMIC_RELAXED),
                             __ATOMIC_RELAXED);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    return NULL;
}

static void usage(void)
{
    fputs("usage: delayproxy --upstream HOST:PORT [--listen PORT] [--delay-ms MS]\n"
          "                  [--bw BYTES_PER_S] [--stats-port PORT] [--port-file FILE] [-v]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    int listen_port = 0, stats_port = 0;
    const char *port_file = NULL;
    char *upstream = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--upstream") == 0)
            upstream = strdup(v);
        else if (strcmp(a, "--listen") == 0)
            listen_port = atoi(v);
        else if (strcmp(a, "--stats-port") == 0)
            stats_port = atoi(v);
        else if (strcmp(a, "--delay-ms") == 0)
            delay_ms = atol(v);
        else if (strcmp(a, "--bw") == 0)
            bw_cap = strtoull(v, NULL, 10);
        else if (strcmp(a, "--port-file") == 0)
            port_file = v;
        else
            usage();
        i++;
    }
    if (!upstream || delay_ms < 0)
        usage();
    char *colon = strrchr(upstream, ':');
    if (!colon)
        die("--upstream %s: expected HOST:PORT", upstream);
    *colon = 0;
    up_host = upstream;
    up_port = colon + 1;
    signal(SIGPIPE, SIG_IGN);

    int lp, sp;
    int lfd = listen_on(listen_port, &lp);
    int sfd = listen_on(stats_port, &sp);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    if (pthread_create(&t, &attr, stats_loop, (void *)(intptr_t)sfd) != 0)
        die("pthread_create: %s", strerror(errno));
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d %d\n", lp, sp) < 0 || fclose(f) != 0 || rename(tmp, port_file))
            die("%s: %s", port_file, strerror(errno));
    }
    fprintf(stderr, "delayproxy: 127.0.0.1:%d -> %s:%s, delay %ld ms, bw %llu B/s, stats on %d\n",
            lp, up_host, up_port, delay_ms, (unsigned long long)bw_cap, sp);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                if (errno == EMFILE || errno == ENFILE)
                    usleep(10000);
                continue;
            }
            die("accept: %s", strerror(errno));
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            usleep(1000);
        }
    }
}
