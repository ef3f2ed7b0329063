/* ceiling.c - how fast can any client move bytes through the proxy to the
 * S3 server?  N objects of SIZE bytes are PUT with up to P requests in flight
 * (libcurl multi, keep-alive, no Expect, SigV4 by libcurl with --creds
 * ID:SECRET, default bench:bench), then GET back the same way, and a sweep over P keeps the
 * best.  The result is the ceiling every benchmark number is read against.
 *
 *   ceiling --endpoint http://127.0.0.1:PORT/BUCKET [--size 8M] [--count N]
 *           [--parallel 4,8,16,32,64] [--creds ID:SECRET]
 *
 * Prints one line per parallelism and then the best of each as
 *   best_put_MBps X par P
 *   best_get_MBps X par P
 * (MB = 10^6 bytes). */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct xfer {
    CURL *h;
    size_t off; /* upload position */
    int idx;
};

static char *payload;
static const char *creds = "bench:bench";
static size_t obj_size;

static size_t read_cb(char *buf, size_t sz, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t want = sz * n, left = obj_size - x->off;
    if (want > left)
        want = left;
    memcpy(buf, payload + x->off, want);
    x->off += want;
    return want;
}

static size_t sink(char *buf, size_t sz, size_t n, void *arg)
{
    *(uint64_t *)arg += sz * n;
    return sz * n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t got_bytes;

static void setup(struct xfer *x, const char *ep, const char *tag, int idx, int put,
                  struct curl_slist *hdrs)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/ceiling-%s-%06d", ep, tag, idx);
    curl_easy_reset(x->h);
    x->off = 0;
    x->idx = idx;
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TCP_NODELAY, 1L);
    /* Signed with libcurl's own SigV4 (moto refuses anonymous GETs). */
    curl_easy_setopt(x->h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(x->h, CURLOPT_USERPWD, creds);
    if (put) {
        curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(x->h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(x->h, CURLOPT_READDATA, x);
        curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)obj_size);
        curl_easy_setopt(x->h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &(uint64_t){0});
    } else {
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &got_bytes);
        curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 512L * 1024);
    }
}

/* Runs count requests with par in flight; returns MB/s, or -1 on a failure. */
static double run(const char *ep, const char *tag, int count, int par, int put)
{
    static uint64_t dummy;
    CURLM *m = curl_multi_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    /* Some servers (s3rver) want the payload hash header; this client does
     * not hash what it sends. */
    hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    struct xfer *xs = calloc((size_t)par, sizeof *xs);
    int next = 0, running = 0, failed = 0, done = 0;
    (void)dummy;
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)par);
    got_bytes = 0;
    double t0 = now_s();
    for (int i = 0; i < par && next < count; i++) {
        xs[i].h = curl_easy_init();
        setup(&xs[i], ep, tag, next++, put, hdrs);
        curl_multi_add_handle(m, xs[i].h);
    }
    while (done < count) {
        curl_multi_perform(m, &running);
        int q;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x;
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK || code != 200) {
                fprintf(stderr, "ceiling: %s %d: curl %d http %ld\n", put ? "PUT" : "GET", x->idx,
                        msg->data.result, code);
                failed++;
            }
            done++;
            curl_multi_remove_handle(m, x->h);
            if (next < count) {
                setup(x, ep, tag, next++, put, hdrs);
                curl_multi_add_handle(m, x->h);
            }
        }
        if (done < count)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double dt = now_s() - t0;
    for (int i = 0; i < par; i++)
        if (xs[i].h)
            curl_easy_cleanup(xs[i].h);
    free(xs);
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(m);
    if (failed)
        return -1;
    if (!put && got_bytes != (uint64_t)count * obj_size) {
        fprintf(stderr, "ceiling: got %llu bytes, expected %llu\n", (unsigned long long)got_bytes,
                (unsigned long long)count * obj_size);
        return -1;
    }
    return (double)count * (double)obj_size / dt / 1e6;
}

static size_t parse_size(const char *s)
{
    char *e;
    double v = strtod(s, &e);
    switch (*e) {
    case 'K': case 'k': v *= 1024; break;
    case 'M': case 'm': v *= 1024 * 1024; break;
    case 'G': case 'g': v *= 1024.0 * 1024 * 1024; break;
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    const char *ep = NULL, *pars = "4,8,16,32,64";
    int count = 64;
    obj_size = 8 << 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--endpoint") == 0)
            ep = argv[i + 1];
        else if (strcmp(argv[i], "--size") == 0)
            obj_size = parse_size(argv[i + 1]);
        else if (strcmp(argv[i], "--count") == 0)
            count = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--creds") == 0)
            creds = argv[i + 1];
        else if (strcmp(argv[i], "--parallel") == 0)
            pars = argv[i + 1];
        else
            ep = NULL, i = argc;
    }
    if (!ep || count < 1 || obj_size < 1) {
        fputs("usage: ceiling --endpoint URL/BUCKET [--size 8M] [--count N] [--parallel 4,8,...]\n",
              stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    payload = malloc(obj_size);
    for (size_t i = 0; i < obj_size; i++)
        payload[i] = (char)(i * 2654435761u >> 13);
    double best_put = 0, best_get = 0;
    int bp = 0, bg = 0;
    char *list = strdup(pars);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int par = atoi(tok);
        if (par < 1)
            continue;
        char tag[32];
        snprintf(tag, sizeof tag, "p%d", par);
        double p = run(ep, tag, count, par, 1);
        double g = p < 0 ? -1 : run(ep, tag, count, par, 0);
        if (p < 0 || g < 0)
            return 1;
        printf("par %d put_MBps %.1f get_MBps %.1f put_rps %.0f get_rps %.0f\n", par, p, g,
               p * 1e6 / (double)obj_size, g * 1e6 / (double)obj_size);
        fflush(stdout);
        if (p > best_put)
            best_put = p, bp = par;
        if (g > best_get)
            best_get = g, bg = par;
    }
    printf("best_put_MBps %.1f par %d put_rps %.0f\nbest_get_MBps %.1f par %d get_rps %.0f\n",
           best_put, bp, best_put * 1e6 / (double)obj_size, best_get, bg,
           best_get * 1e6 / (double)obj_size);
    free(list);
    free(payload);
    curl_global_cleanup();
    return 0;
}
