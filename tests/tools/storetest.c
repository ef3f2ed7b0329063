/* storetest.c - store conformance checks, run by the shell tests against the
 * dir backend, moto and s3rver.
 *
 *   storetest [--endpoint URL] [--retries N] [--fault SPEC] [--max-inflight N]
 *             [--addressing path|virtual] CHECK URL [ARG]
 *
 * CHECK is one of:
 *   basic      put/get/head/delete round trip, a missing key, an empty object
 *   ranges     byte ranges of a 1 MiB object: first byte, middle, last, to-end
 *   list N     N keys (default 1500: more than one S3 page), sorted, exact, then removed
 *   parallel N N puts then N gets of 64 KiB..1 MiB objects, all in flight at once,
 *              checked by SHA-256; prints the peak number of requests in flight
 *   cond       If-None-Match and If-Match on PUT, If-Match on DELETE; exits 77
 *              when the server ignores conditions (s3rver)
 *   down       expects the store to be unreachable: a GET must fail "transient"
 *              after retrying, with a message that says so
 *   auth       expects the credentials to be refused: a PUT must fail "auth"
 *
 * Exit 0 when the check passes, 1 with a message on stderr when it fails. */
#include "store/store.h"
#include "util/hash.h"
#include "util/mem.h"
#include "util/rng.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "storetest: %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static char errmsg[STORE_ERRMSG_MAX];

static void fill(struct rng *r, char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)rng_next(r);
}

static void check_basic(struct store *s)
{
    char etag[STORE_ETAG_MAX];
    struct buf b = {0};
    struct store_obj info = {0};
    const char *msg = "the quick brown fox";

    CHECK(store_put(s, "basic/one", msg, strlen(msg), STORE_COND_NONE, NULL, etag, errmsg,
                    sizeof errmsg) == STORE_OK, "put: %s", errmsg);
    CHECK(etag[0], "put returned no ETag");
    CHECK(store_get(s, "basic/one", 0, 0, &b, &info, errmsg, sizeof errmsg) == STORE_OK, "get: %s",
          errmsg);
    CHECK(b.len == strlen(msg) && memcmp(b.p, msg, b.len) == 0, "get returned other bytes");
    CHECK(info.size == strlen(msg), "get size %" PRIu64, info.size);
    CHECK(store_head(s, "basic/one", &info, errmsg, sizeof errmsg) == STORE_OK, "head: %s", errmsg);
    CHECK(info.size == strlen(msg) && strcmp(info.etag, etag) == 0,
          "head: size %" PRIu64 " etag %s, want %zu %s", info.size, info.etag, strlen(msg), etag);
    CHECK(store_put(s, "basic/empty", "", 0, STORE_COND_NONE, NULL, etag, errmsg,
                    sizeof errmsg) == STORE_OK, "put empty: %s", errmsg);
    CHECK(store_get(s, "basic/empty", 0, 0, &b, &info, errmsg, sizeof errmsg) == STORE_OK &&
              b.len == 0, "get empty: %s (len %zu)", errmsg, b.len);
    enum store_err e = store_get(s, "basic/missing", 0, 0, &b, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_ENOTFOUND, "get missing: %s (%s)", store_strerror(e), errmsg);
    CHECK(strstr(errmsg, "basic/missing"), "message does not name the key: %s", errmsg);
    e = store_head(s, "basic/missing", &info, errmsg, sizeof errmsg);
    CHECK(e == STORE_ENOTFOUND, "head missing: %s (%s)", store_strerror(e), errmsg);
    CHECK(store_delete(s, "basic/one", STORE_COND_NONE, NULL, errmsg, sizeof errmsg) == STORE_OK,
          "delete: %s", errmsg);
    CHECK(store_delete(s, "basic/one", STORE_COND_NONE, NULL, errmsg, sizeof errmsg) == STORE_OK,
          "delete of a missing key: %s", errmsg);
    CHECK(store_delete(s, "basic/empty", STORE_COND_NONE, NULL, errmsg, sizeof errmsg) == STORE_OK,
          "delete: %s", errmsg);
    e = store_head(s, "basic/one", &info, errmsg, sizeof errmsg);
    CHECK(e == STORE_ENOTFOUND, "head after delete: %s", store_strerror(e));
    e = store_put(s, "../escape", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_EFATAL, "a '..' key was accepted");
    buf_free(&b);
}

static void check_ranges(struct store *s)
{
    const size_t n = 1 << 20;
    char *data = xmalloc(n);
    struct rng r;
    struct buf b = {0};
    struct store_obj info = {0};
    rng_seed(&r, 42);
    fill(&r, data, n);
    CHECK(store_put(s, "ranges/obj", data, n, STORE_COND_NONE, NULL, NULL, errmsg,
                    sizeof errmsg) == STORE_OK, "put: %s", errmsg);
    static const struct { uint64_t off, len; } cases[] = {
        {0, 1}, {0, 4096}, {12345, 67890}, {(1 << 20) - 1, 1}, {1000, 0}, {(1 << 20) - 10, 100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t off = cases[i].off, len = cases[i].len;
        uint64_t want = len ? len : n - off;
        if (off + want > n)
            want = n - off;
        enum store_err e = store_get(s, "ranges/obj", off, len, &b, &info, errmsg, sizeof errmsg);
        CHECK(e == STORE_OK, "range %" PRIu64 "+%" PRIu64 ": %s", off, len, errmsg);
        CHECK(b.len == want && memcmp(b.p, data + off, want) == 0,
              "range %" PRIu64 "+%" PRIu64 ": got %zu bytes, want %" PRIu64 " (or other bytes)", off,
              len, b.len, want);
        CHECK(info.size == n, "range %" PRIu64 "+%" PRIu64 ": object size %" PRIu64, off, len,
              info.size);
    }
    enum store_err e = store_get(s, "ranges/obj", n + 10, 5, &b, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_EFATAL, "a range past the end: %s", store_strerror(e));
    store_delete(s, "ranges/obj", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    buf_free(&b);
    free(data);
}

static void put_done(struct store_req *r)
{
    int *failed = r->arg;
    if (r->err) {
        fprintf(stderr, "storetest: %s\n", r->errmsg);
        (*failed)++;
    }
}

static void check_list(struct store *s, int n)
{
    struct store_req *reqs = xcalloc((size_t)n, sizeof *reqs);
    char **keys = xcalloc((size_t)n, sizeof *keys);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        keys[i] = xasprintf("list/k%05d", (i * 7919) % n); /* submitted out of order */
        reqs[i] = (struct store_req){.op = STORE_PUT, .key = keys[i], .data = keys[i],
                                     .size = strlen(keys[i]), .done = put_done, .arg = &failed};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    CHECK(failed == 0, "%d puts failed", failed);
    /* a neighbour that must not show up under the prefix */
    store_put(s, "listx", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);

    struct store_obj *list;
    size_t got;
    CHECK(store_list(s, "list/", &list, &got, errmsg, sizeof errmsg) == STORE_OK, "list: %s",
          errmsg);
    CHECK(got == (size_t)n, "listed %zu keys, want %d", got, n);
    for (size_t i = 0; i < got && i < (size_t)n; i++) {
        char want[32];
        snprintf(want, sizeof want, "list/k%05zu", i);
        if (strcmp(list[i].key, want) != 0) {
            CHECK(0, "entry %zu is %s, want %s", i, list[i].key, want);
            break;
        }
        CHECK(list[i].size == strlen(want), "entry %zu size %" PRIu64, i, list[i].size);
    }
    store_list_free(list, got);
    CHECK(store_list(s, "list/k0001", &list, &got, errmsg, sizeof errmsg) == STORE_OK &&
              got == (n > 1999 ? 10 : (size_t)(n > 10 ? (n < 20 ? n - 10 : 10) : 0)),
          "list of a narrower prefix gave %zu", got);
    store_list_free(list, got);

    for (int i = 0; i < n; i++) {
        reqs[i] = (struct store_req){.op = STORE_DELETE, .key = keys[i], .done = put_done,
                                     .arg = &failed};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    store_delete(s, "listx", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    CHECK(store_list(s, "list", &list, &got, errmsg, sizeof errmsg) == STORE_OK && got == 0,
          "%zu keys left after deleting them all", got);
    store_list_free(list, got);
    for (int i = 0; i < n; i++) {
        store_req_free(&reqs[i]);
        free(keys[i]);
    }
    free(keys);
    free(reqs);
}

struct par {
    char key[32];
    char *data;
    size_t size;
    char sum[65];
    struct store_req req;
    int *failed;
};

static void get_done(struct store_req *r)
{
    struct par *p = r->arg;
    char sum[65];
    if (r->err) {
        fprintf(stderr, "storetest: %s\n", r->errmsg);
        (*p->failed)++;
        return;
    }
    sha256_hex(r->body.p, r->body.len, sum);
    if (r->body.len != p->size || strcmp(sum, p->sum) != 0) {
        fprintf(stderr, "storetest: %s: %zu bytes with sha256 %s, want %zu with %s\n", p->key,
                r->body.len, sum, p->size, p->sum);
        (*p->failed)++;
    }
}

static void par_put_done(struct store_req *r)
{
    struct par *p = r->arg;
    if (r->err) {
        fprintf(stderr, "storetest: %s\n", r->errmsg);
        (*p->failed)++;
    }
}

static void check_parallel(struct store *s, int n)
{
    struct par *ps = xcalloc((size_t)n, sizeof *ps);
    struct rng r;
    int failed = 0, peak = 0;
    rng_seed(&r, 7);
    for (int i = 0; i < n; i++) {
        struct par *p = &ps[i];
        snprintf(p->key, sizeof p->key, "par/%03d", i);
        p->size = (64 << 10) + rng_below(&r, (1 << 20) - (64 << 10));
        p->data = xmalloc(p->size);
        fill(&r, p->data, p->size);
        sha256_hex(p->data, p->size, p->sum);
        p->failed = &failed;
        p->req = (struct store_req){.op = STORE_PUT, .key = p->key, .data = p->data,
                                    .size = p->size, .done = par_put_done, .arg = p};
    }
    for (int i = 0; i < n; i++)
        store_submit(s, &ps[i].req);
    int inflight;
    while ((inflight = store_run(s, 100)) > 0)
        peak = inflight > peak ? inflight : peak;
    CHECK(failed == 0, "%d of %d parallel puts failed", failed, n);
    for (int i = 0; i < n && !failed; i++) {
        store_req_free(&ps[i].req);
        ps[i].req = (struct store_req){.op = STORE_GET, .key = ps[i].key, .done = get_done,
                                       .arg = &ps[i]};
        store_submit(s, &ps[i].req);
    }
    while ((inflight = store_run(s, 100)) > 0)
        peak = inflight > peak ? inflight : peak;
    CHECK(failed == 0, "%d of %d parallel puts/gets failed or differ", failed, n);
    printf("parallel: %d objects, peak %d requests in flight\n", n, peak);
    for (int i = 0; i < n; i++) {
        store_req_free(&ps[i].req);
        if (!failed) /* cleaning up a failing store would only wait out more retries */
            store_delete(s, ps[i].key, STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
        free(ps[i].data);
    }
    free(ps);
}

static int check_cond(struct store *s)
{
    char e1[STORE_ETAG_MAX], e2[STORE_ETAG_MAX];
    enum store_err e;
    store_delete(s, "cond/obj", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    CHECK(store_put(s, "cond/obj", "v1", 2, STORE_IF_NONE_MATCH, NULL, e1, errmsg,
                    sizeof errmsg) == STORE_OK, "create: %s", errmsg);
    e = store_put(s, "cond/obj", "v2", 2, STORE_IF_NONE_MATCH, NULL, e2, errmsg, sizeof errmsg);
    if (e == STORE_OK) {
        printf("the server ignores If-None-Match\n");
        store_delete(s, "cond/obj", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
        return 77;
    }
    CHECK(e == STORE_EPRECOND, "second create: %s (%s)", store_strerror(e), errmsg);
    CHECK(store_put(s, "cond/obj", "v2", 2, STORE_IF_MATCH, e1, e2, errmsg, sizeof errmsg) ==
              STORE_OK, "If-Match with the current ETag: %s", errmsg);
    e = store_put(s, "cond/obj", "v3", 2, STORE_IF_MATCH, e1, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_EPRECOND, "If-Match with a stale ETag: %s", store_strerror(e));
    struct buf b = {0};
    CHECK(store_get(s, "cond/obj", 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
              b.len == 2 && memcmp(b.p, "v2", 2) == 0, "the stale write changed the object");
    buf_free(&b);
    e = store_delete(s, "cond/obj", STORE_IF_MATCH, e1, errmsg, sizeof errmsg);
    if (e == STORE_OK)
        printf("note: the server ignores If-Match on DELETE\n");
    else {
        CHECK(e == STORE_EPRECOND, "conditional delete with a stale ETag: %s", store_strerror(e));
        CHECK(store_delete(s, "cond/obj", STORE_IF_MATCH, e2, errmsg, sizeof errmsg) == STORE_OK,
              "conditional delete with the current ETag: %s", errmsg);
    }
    e = store_put(s, "cond/obj", "v4", 2, STORE_IF_MATCH, e2, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_EPRECOND || e == STORE_ENOTFOUND, "If-Match on a deleted object: %s",
          store_strerror(e));
    store_delete(s, "cond/obj", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    return 0;
}

static void check_down(struct store *s)
{
    struct buf b = {0};
    enum store_err e = store_get(s, "down/x", 0, 0, &b, NULL, errmsg, sizeof errmsg);
    CHECK(e == STORE_ETRANSIENT, "GET from a dead server: %s (%s)", store_strerror(e), errmsg);
    CHECK(strstr(errmsg, "gave up after"), "message does not say it retried: %s", errmsg);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(st.retries > 0, "no retries were made");
    fprintf(stderr, "storetest: as expected: %s\n", errmsg);
    buf_free(&b);
}

static void check_auth(struct store *s)
{
    enum store_err e = store_put(s, "auth/x", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg,
                                 sizeof errmsg);
    CHECK(e == STORE_EAUTH, "PUT with wrong credentials: %s (%s)", store_strerror(e), errmsg);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(st.retries == 0, "an auth error was retried %" PRIu64 " times", st.retries);
    fprintf(stderr, "storetest: as expected: %s\n", errmsg);
}

int main(int argc, char **argv)
{
    struct store_opts o = {.retries = -1};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--endpoint") == 0)
            o.endpoint = argv[i + 1];
        else if (strcmp(argv[i], "--retries") == 0)
            o.retries = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--fault") == 0)
            o.fault = argv[i + 1];
        else if (strcmp(argv[i], "--max-inflight") == 0)
            o.max_inflight = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--addressing") == 0)
            o.addressing = strcmp(argv[i + 1], "virtual") == 0 ? STORE_ADDR_VIRTUAL : STORE_ADDR_PATH;
        else {
            fprintf(stderr, "storetest: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: storetest [options] CHECK URL [N]\n");
        return 2;
    }
    const char *check = argv[i], *url = argv[i + 1];
    int n = argc - i > 2 ? atoi(argv[i + 2]) : 0;
    char err[512];
    struct store *s = store_open(url, &o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "storetest: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (strcmp(check, "basic") == 0)
        check_basic(s);
    else if (strcmp(check, "ranges") == 0)
        check_ranges(s);
    else if (strcmp(check, "list") == 0)
        check_list(s, n ? n : 1500);
    else if (strcmp(check, "parallel") == 0)
        check_parallel(s, n ? n : 100);
    else if (strcmp(check, "cond") == 0)
        rc = check_cond(s);
    else if (strcmp(check, "down") == 0)
        check_down(s);
    else if (strcmp(check, "auth") == 0)
        check_auth(s);
    else {
        fprintf(stderr, "storetest: unknown check '%s'\n", check);
        rc = 2;
    }
    store_close(s);
    return failures ? 1 : rc;
}
