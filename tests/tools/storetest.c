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
 *   meta       user metadata and Content-Type: PUT, HEAD and GET return them exactly;
 *              a plain COPY keeps them, a replacing one changes them; bad ones refused
 *   delim      LIST with delimiter "/" (any_keys): a small tree with markers ("d/")
 *              at three levels, exact objects and prefixes, then 1100 keys in one level;
 *              exits 77 when the server lists in another order than S3 (s3rver)
 *   ifmatch    If-Match on GET and HEAD, x-amz-copy-source-if-match on COPY; exits
 *              77 when the server ignores some, printing "the server ignores
 *              If-Match on: GET, HEAD, COPY source" (those it ignores)
 *   copy       COPY of a 1 MiB object, from a missing source, the copy independent
 *   anykeys    a store opened with any_keys: "x//y", "./z", "d/", "a/b/", "..",
 *              ".buoy-x" on S3 all round-trip; a dir store keeps the ones it can
 *              and refuses the others "fatal" with the reason; "anykeys URL N":
 *              N&1 leaves out the LIST (moto's signature checker refuses a '/'
 *              in a query value), N&2 the keys with "//", "/./", "/../" (s3rver
 *              resolves them as paths)
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

/* --- metadata, COPY, LIST with a delimiter --- */

/* No '_' in the names: S3 keeps it, but moto's server (werkzeug) drops
 * every header whose name has one. */
static const struct store_meta meta3[] = {
    {"Mode", "33188"},
    {"uid", "1000"},
    {"x-y-9", "a b:c=d/e%f\"g'h"},
};

static enum store_err put_meta(struct store *s, const char *key, const void *data, size_t size,
                               const struct store_meta *m, size_t nm, const char *ctype,
                               char etag[STORE_ETAG_MAX])
{
    struct store_req r = {.op = STORE_PUT,
                          .key = key,
                          .data = data,
                          .size = size,
                          .meta = m,
                          .nmeta = nm,
                          .content_type = ctype};
    store_submit(s, &r);
    store_wait(s, &r);
    snprintf(errmsg, sizeof errmsg, "%s", r.errmsg);
    if (etag)
        memcpy(etag, r.obj.etag, STORE_ETAG_MAX);
    enum store_err e = r.err;
    store_req_free(&r);
    return e;
}

/* HEAD or GET into r (the caller frees it). */
static enum store_err fetch(struct store *s, enum store_op op, const char *key,
                            const char *if_match, struct store_req *r)
{
    *r = (struct store_req){.op = op, .key = key};
    if (if_match) {
        r->cond = STORE_IF_MATCH;
        snprintf(r->if_etag, sizeof r->if_etag, "%s", if_match);
    }
    store_submit(s, r);
    store_wait(s, r);
    snprintf(errmsg, sizeof errmsg, "%s", r->errmsg);
    return r->err;
}

static enum store_err copy(struct store *s, const char *dst, const char *src, int replace,
                           const struct store_meta *m, size_t nm, const char *ctype,
                           const char *if_match, char etag[STORE_ETAG_MAX])
{
    struct store_req r = {.op = STORE_COPY,
                          .key = dst,
                          .src_key = src,
                          .meta_replace = replace,
                          .meta = m,
                          .nmeta = nm,
                          .content_type = ctype};
    if (if_match) {
        r.cond = STORE_IF_MATCH;
        snprintf(r.if_etag, sizeof r.if_etag, "%s", if_match);
    }
    store_submit(s, &r);
    store_wait(s, &r);
    snprintf(errmsg, sizeof errmsg, "%s", r.errmsg);
    if (etag)
        memcpy(etag, r.obj.etag, STORE_ETAG_MAX);
    enum store_err e = r.err;
    store_req_free(&r);
    return e;
}

/* "name=value,..." and the type of r, for comparing with what was put. */
static void meta_text(const struct store_req *r, char *out, size_t n)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->nrmeta && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s=%s", i ? "," : "", r->rmeta[i].name,
                               r->rmeta[i].value);
    if (at < n)
        snprintf(out + at, n - at, ";%s", r->rtype);
}

static void expect_meta(struct store *s, const char *key, const char *want, const char *what)
{
    char got[4096];
    for (int op = 0; op < 2; op++) {
        struct store_req r;
        enum store_op o = op ? STORE_GET : STORE_HEAD;
        enum store_err e = fetch(s, o, key, NULL, &r);
        CHECK(e == STORE_OK, "%s: %s %s: %s", what, store_opname(o), key, errmsg);
        meta_text(&r, got, sizeof got);
        CHECK(e || strcmp(got, want) == 0, "%s: %s %s: metadata '%s', want '%s'", what,
              store_opname(o), key, got, want);
        store_req_free(&r);
    }
}

static void check_meta(struct store *s)
{
    const char *body = "metadata body";
    char etag[STORE_ETAG_MAX];
    struct buf b = {0};
    const char *want3 = "mode=33188,uid=1000,x-y-9=a b:c=d/e%f\"g'h;text/plain; charset=utf-8";

    CHECK(put_meta(s, "meta/obj", body, strlen(body), meta3, 3, "text/plain; charset=utf-8",
                   etag) == STORE_OK,
          "put with metadata: %s", errmsg);
    expect_meta(s, "meta/obj", want3, "after put");
    CHECK(store_get(s, "meta/obj", 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
              b.len == strlen(body) && memcmp(b.p, body, b.len) == 0,
          "get body: %s", errmsg);
    CHECK(put_meta(s, "meta/plain", "p", 1, NULL, 0, NULL, NULL) == STORE_OK, "put plain: %s",
          errmsg);
    expect_meta(s, "meta/plain", ";binary/octet-stream", "a put without metadata");

    CHECK(copy(s, "meta/copy", "meta/obj", 0, NULL, 0, NULL, NULL, etag) == STORE_OK,
          "plain copy: %s", errmsg);
    CHECK(etag[0], "copy returned no ETag");
    expect_meta(s, "meta/copy", want3, "a plain copy keeps them");
    static const struct store_meta one[] = {{"new", "1"}};
    CHECK(copy(s, "meta/copy", "meta/obj", 1, one, 1, "application/json", NULL, NULL) == STORE_OK,
          "replacing copy: %s", errmsg);
    expect_meta(s, "meta/copy", "new=1;application/json", "a replacing copy");
    static const struct store_meta dir[] = {{"mode", "16877"}};
    CHECK(copy(s, "meta/obj", "meta/obj", 1, dir, 1, NULL, NULL, NULL) == STORE_OK,
          "replacing copy onto itself: %s", errmsg);
    expect_meta(s, "meta/obj", "mode=16877;binary/octet-stream", "a replacing copy onto itself");
    CHECK(store_get(s, "meta/obj", 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
              b.len == strlen(body) && memcmp(b.p, body, b.len) == 0,
          "the body after a metadata-only copy: %s", errmsg);
    /* a PUT replaces the metadata too */
    CHECK(put_meta(s, "meta/copy", "q", 1, NULL, 0, NULL, NULL) == STORE_OK, "put: %s", errmsg);
    expect_meta(s, "meta/copy", ";binary/octet-stream", "a put over an object with metadata");

    /* refused before anything is sent */
    static const struct store_meta badname[] = {{"a.b", "1"}};
    static const struct store_meta badval[] = {{"a", "line\nbreak"}};
    enum store_err e = put_meta(s, "meta/bad", "x", 1, badname, 1, NULL, NULL);
    CHECK(e == STORE_EFATAL && strstr(errmsg, "a.b") && strstr(errmsg, "meta/bad"),
          "a name with '.': %s (%s)", store_strerror(e), errmsg);
    e = put_meta(s, "meta/bad", "x", 1, badval, 1, NULL, NULL);
    CHECK(e == STORE_EFATAL && strstr(errmsg, "printable"), "a value with a newline: %s (%s)",
          store_strerror(e), errmsg);
    char big[2100];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct store_meta huge[] = {{"big", big}};
    e = put_meta(s, "meta/bad", "x", 1, huge, 1, NULL, NULL);
    CHECK(e == STORE_EFATAL && strstr(errmsg, "2 KiB"), "2 KiB of metadata: %s (%s)",
          store_strerror(e), errmsg);
    big[2000] = '\0'; /* 2003 bytes with the name: allowed, and kept exactly */
    CHECK(put_meta(s, "meta/big", "x", 1, huge, 1, NULL, NULL) == STORE_OK, "2003 bytes: %s",
          errmsg);
    char want[2100];
    snprintf(want, sizeof want, "big=%s;binary/octet-stream", big);
    expect_meta(s, "meta/big", want, "2003 bytes of metadata");
    CHECK(store_head(s, "meta/bad", NULL, errmsg, sizeof errmsg) == STORE_ENOTFOUND,
          "a refused put made the object");
    const char *keys[] = {"meta/obj", "meta/plain", "meta/copy", "meta/big"};
    for (size_t i = 0; i < 4; i++)
        store_delete(s, keys[i], STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    buf_free(&b);
}

/* LIST prefix with delimiter "/": "o1 o2|p1 p2" must be what comes back,
 * or else (when not NULL) alt, the order of a server that lists directory
 * by directory; 0 when it was alt. */
static int expect_level(struct store *s, const char *prefix, const char *delim, const char *want,
                        const char *alt)
{
    int rc = 1;
    struct store_req r = {.op = STORE_LIST, .key = prefix, .delim = delim};
    struct buf got = {0};
    store_submit(s, &r);
    store_wait(s, &r);
    CHECK(r.err == STORE_OK, "list %s: %s", prefix, r.errmsg);
    for (size_t i = 0; i < r.nlist; i++)
        buf_printf(&got, "%s%s", i ? " " : "", r.list[i].key);
    buf_putc(&got, '|');
    for (size_t i = 0; i < r.nprefixes; i++)
        buf_printf(&got, "%s%s", i ? " " : "", r.prefixes[i]);
    if (alt && strcmp(got.p, alt) == 0)
        rc = 0;
    else
        CHECK(strcmp(got.p, want) == 0, "list %s delimiter %s:\n  got  %s\n  want %s", prefix,
              delim ? delim : "none", got.p, want);
    buf_free(&got);
    store_req_free(&r);
    return rc;
}

static int check_delim(struct store *s)
{
    int other = 0;
    static const char *const tree[] = {
        "dl/d/", "dl/d/a", "dl/d/b/", "dl/d/b/c", "dl/d/b/sub/e", "dl/d/b-x", "dl/d-x", "dl/e",
    };
    const size_t nt = sizeof tree / sizeof tree[0];
    for (size_t i = 0; i < nt; i++)
        CHECK(store_put(s, tree[i], tree[i], strlen(tree[i]), STORE_COND_NONE, NULL, NULL, errmsg,
                        sizeof errmsg) == STORE_OK,
              "put %s: %s", tree[i], errmsg);
    expect_level(s, "dl/", "/", "dl/d-x dl/e|dl/d/", NULL);
    expect_level(s, "dl/d/", "/", "dl/d/ dl/d/a dl/d/b-x|dl/d/b/", NULL);
    expect_level(s, "dl/d/b/", "/", "dl/d/b/ dl/d/b/c|dl/d/b/sub/", NULL);
    expect_level(s, "dl/d/b", "/", "dl/d/b-x|dl/d/b/", NULL);
    expect_level(s, "dl/d/b/sub/", "/", "dl/d/b/sub/e|", NULL);
    expect_level(s, "dl/nothing/", "/", "|", NULL);
    /* S3 lists in the byte order of the whole key: '-' < '/' */
    static const char *const s3_order = "dl/d-x dl/d/ dl/d/a dl/d/b-x dl/d/b/ dl/d/b/c "
                                        "dl/d/b/sub/e dl/e|";
    static const char *const path_order = "dl/d/ dl/d/a dl/d/b/ dl/d/b/c dl/d/b/sub/e dl/d/b-x "
                                          "dl/d-x dl/e|";
    if (!expect_level(s, "dl/", NULL, s3_order, path_order))
        other = 1;

    /* 1100 objects and 3 prefixes in one level: more than one page of S3's 1000 */
    const int n = 1100;
    struct store_req *reqs = xcalloc((size_t)n + 3, sizeof *reqs);
    char **keys = xcalloc((size_t)n + 3, sizeof *keys);
    int failed = 0;
    for (int i = 0; i < n + 3; i++) {
        if (i < n)
            keys[i] = xasprintf("dl/big/k%04d", (i * 7919) % n);
        else
            keys[i] = xasprintf("dl/big/k%04dx/y", (i - n) * 500 + 100);
        reqs[i] = (struct store_req){.op = STORE_PUT,
                                     .key = keys[i],
                                     .data = "x",
                                     .size = 1,
                                     .done = put_done,
                                     .arg = &failed};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    CHECK(failed == 0, "%d puts failed", failed);
    struct store_req r = {.op = STORE_LIST, .key = "dl/big/", .delim = "/"};
    store_submit(s, &r);
    store_wait(s, &r);
    CHECK(r.err == STORE_OK, "list: %s", r.errmsg);
    CHECK(r.nlist == (size_t)n, "listed %zu objects, want %d", r.nlist, n);
    for (size_t i = 0; i < r.nlist && i < (size_t)n; i++) {
        char want[32];
        snprintf(want, sizeof want, "dl/big/k%04zu", i);
        if (strcmp(r.list[i].key, want) != 0) {
            CHECK(0, "entry %zu is %s, want %s", i, r.list[i].key, want);
            break;
        }
    }
    CHECK(r.nprefixes == 3 && strcmp(r.prefixes[0], "dl/big/k0100x/") == 0 &&
              strcmp(r.prefixes[1], "dl/big/k0600x/") == 0 &&
              strcmp(r.prefixes[2], "dl/big/k1100x/") == 0,
          "%zu prefixes (%s ...), want dl/big/k0100x/ dl/big/k0600x/ dl/big/k1100x/", r.nprefixes,
          r.nprefixes ? r.prefixes[0] : "");
    store_req_free(&r);
    for (int i = 0; i < n + 3; i++) {
        reqs[i] = (struct store_req){
            .op = STORE_DELETE, .key = keys[i], .done = put_done, .arg = &failed};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    for (size_t i = 0; i < nt; i++)
        store_delete(s, tree[i], STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    /* directories left empty (the dir store keeps them) are no prefixes */
    expect_level(s, "dl/", "/", "|", NULL);
    expect_level(s, "dl/d/", "/", "|", NULL);
    for (int i = 0; i < n + 3; i++) {
        store_req_free(&reqs[i]);
        free(keys[i]);
    }
    free(keys);
    free(reqs);
    if (other && !failures) {
        printf("the server lists directory by directory, not in S3's byte order of keys\n");
        return 77;
    }
    return 0;
}

static int check_ifmatch(struct store *s)
{
    char e1[STORE_ETAG_MAX], e2[STORE_ETAG_MAX];
    struct store_req r;
    enum store_err e;
    char ignored[64] = "";

    CHECK(store_put(s, "im/obj", "v1", 2, STORE_COND_NONE, NULL, e1, errmsg, sizeof errmsg) ==
              STORE_OK,
          "put: %s", errmsg);
    for (int op = 0; op < 2; op++) {
        enum store_op o = op ? STORE_GET : STORE_HEAD;
        e = fetch(s, o, "im/obj", e1, &r);
        CHECK(e == STORE_OK && strcmp(r.obj.etag, e1) == 0, "%s If-Match the ETag: %s",
              store_opname(o), errmsg);
        CHECK(o == STORE_HEAD || (r.body.len == 2 && memcmp(r.body.p, "v1", 2) == 0),
              "GET If-Match returned other bytes");
        store_req_free(&r);
        e = fetch(s, o, "im/obj", "0123456789abcdef0123456789abcdef", &r);
        if (e == STORE_OK)
            snprintf(ignored + strlen(ignored), sizeof ignored - strlen(ignored), "%s%s",
                     *ignored ? ", " : "", store_opname(o));
        else
            CHECK(e == STORE_EPRECOND && strstr(errmsg, "im/obj"),
                  "%s If-Match another ETag: %s (%s)", store_opname(o), store_strerror(e), errmsg);
        store_req_free(&r);
    }
    e = fetch(s, STORE_HEAD, "im/missing", e1, &r);
    CHECK(e == STORE_ENOTFOUND || e == STORE_EPRECOND, "HEAD If-Match of a missing object: %s",
          store_strerror(e));
    store_req_free(&r);

    CHECK(copy(s, "im/copy", "im/obj", 0, NULL, 0, NULL, e1, e2) == STORE_OK,
          "COPY if the source matches: %s", errmsg);
    store_delete(s, "im/copy2", STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    e = copy(s, "im/copy2", "im/obj", 0, NULL, 0, NULL, "0123456789abcdef0123456789abcdef", NULL);
    if (e == STORE_OK)
        snprintf(ignored + strlen(ignored), sizeof ignored - strlen(ignored), "%sCOPY source",
                 *ignored ? ", " : "");
    else {
        CHECK(e == STORE_EPRECOND && strstr(errmsg, "im/copy2") && strstr(errmsg, "im/obj"),
              "COPY if the source has another ETag: %s (%s)", store_strerror(e), errmsg);
        CHECK(store_head(s, "im/copy2", NULL, errmsg, sizeof errmsg) == STORE_ENOTFOUND,
              "a COPY that failed its condition made the object");
    }
    const char *keys[] = {"im/obj", "im/copy", "im/copy2"};
    for (size_t i = 0; i < 3; i++)
        store_delete(s, keys[i], STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    if (*ignored && !failures) {
        printf("the server ignores If-Match on: %s\n", ignored);
        return 77;
    }
    return 0;
}

static void check_copy(struct store *s)
{
    const size_t n = 1 << 20;
    char *data = xmalloc(n);
    char etag[STORE_ETAG_MAX];
    struct rng rg;
    struct buf b = {0};
    struct store_obj info;
    struct store_stats st0, st1;
    rng_seed(&rg, 11);
    fill(&rg, data, n);
    store_get_stats(s, &st0);
    CHECK(store_put(s, "cp/src", data, n, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg) ==
              STORE_OK,
          "put: %s", errmsg);
    CHECK(copy(s, "cp/dst", "cp/src", 0, NULL, 0, NULL, NULL, etag) == STORE_OK, "copy: %s",
          errmsg);
    CHECK(store_head(s, "cp/dst", &info, errmsg, sizeof errmsg) == STORE_OK &&
              strcmp(info.etag, etag) == 0 && info.size == n,
          "head of the copy: etag %s size %" PRIu64 ", want %s %zu (%s)", info.etag, info.size,
          etag, n, errmsg);
    CHECK(copy(s, "cp/deeper/dst2", "cp/dst", 0, NULL, 0, NULL, NULL, NULL) == STORE_OK,
          "copy of a copy into a new directory: %s", errmsg);
    CHECK(store_put(s, "cp/src", "changed", 7, STORE_COND_NONE, NULL, NULL, errmsg,
                    sizeof errmsg) == STORE_OK,
          "overwrite the source: %s", errmsg);
    CHECK(store_get(s, "cp/deeper/dst2", 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
              b.len == n && memcmp(b.p, data, n) == 0,
          "the copy changed with its source, or lost bytes (%zu bytes; %s)", b.len, errmsg);
    enum store_err e = copy(s, "cp/x", "cp/missing", 0, NULL, 0, NULL, NULL, NULL);
    CHECK(e == STORE_ENOTFOUND && strstr(errmsg, "cp/missing") && strstr(errmsg, "cp/x"),
          "copy from a missing source: %s (%s)", store_strerror(e), errmsg);
    e = copy(s, "cp/x", "cp/src", 0, meta3, 1, NULL, NULL, NULL);
    CHECK(e == STORE_EFATAL && strstr(errmsg, "meta_replace"),
          "metadata on a copy that keeps the source's: %s (%s)", store_strerror(e), errmsg);
    store_get_stats(s, &st1);
    CHECK(st1.requests[STORE_COPY] - st0.requests[STORE_COPY] >= 3,
          "%" PRIu64 " COPY requests counted, want at least 3",
          st1.requests[STORE_COPY] - st0.requests[STORE_COPY]);
    const char *keys[] = {"cp/src", "cp/dst", "cp/deeper/dst2"};
    for (size_t i = 0; i < 3; i++)
        store_delete(s, keys[i], STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
    buf_free(&b);
    free(data);
}

static void check_anykeys(struct store *s, int is_dir, int no_list, int no_dots)
{
    /* key, whether a directory store can keep it */
    static const struct {
        const char *key;
        int dir_ok;
    } keys[] = {
        {"ak/x//y", 0},    {"ak/./z", 0},    {"ak/d/", 1}, {"ak/a/b/", 1}, {"ak/..", 0},
        {"ak/.buoy-x", 0}, {"ak/q/../r", 0}, {"ak/f", 1},  {"ak/f.", 1},
    };
    const size_t nk = sizeof keys / sizeof keys[0];
    struct buf b = {0}, want = {0}, got = {0};
    struct store_obj info;
    for (size_t i = 0; i < nk; i++) {
        const char *k = keys[i].key;
        if (no_dots && !keys[i].dir_ok)
            continue;
        enum store_err e =
            store_put(s, k, k, strlen(k), STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        if (is_dir && !keys[i].dir_ok) {
            CHECK(e == STORE_EFATAL && strstr(errmsg, "cannot be kept in a directory store") &&
                      strstr(errmsg, k),
                  "put %s: %s (%s)", k, store_strerror(e), errmsg);
            e = store_get(s, k, 0, 0, &b, NULL, errmsg, sizeof errmsg);
            CHECK(e == STORE_EFATAL && strstr(errmsg, "cannot be kept"), "get %s: %s (%s)", k,
                  store_strerror(e), errmsg);
            continue;
        }
        CHECK(e == STORE_OK, "put %s: %s", k, errmsg);
        CHECK(store_get(s, k, 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
                  b.len == strlen(k) && memcmp(b.p, k, b.len) == 0,
              "get %s: other bytes (%s)", k, errmsg);
        CHECK(store_head(s, k, &info, errmsg, sizeof errmsg) == STORE_OK && info.size == strlen(k),
              "head %s: %s", k, errmsg);
    }
    if (is_dir) {
        /* an object and a directory of one name */
        enum store_err e =
            store_put(s, "ak/d", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        CHECK(e == STORE_EFATAL && strstr(errmsg, "cannot be kept in a directory store"),
              "put ak/d beside ak/d/: %s (%s)", store_strerror(e), errmsg);
        e = store_put(s, "ak/f/g", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        CHECK(e == STORE_EFATAL && strstr(errmsg, "cannot be kept in a directory store") &&
                  strstr(errmsg, "ak/f/g"),
              "put ak/f/g under the object ak/f: %s (%s)", store_strerror(e), errmsg);
        e = store_put(s, "ak/f/", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        CHECK(e == STORE_EFATAL && strstr(errmsg, "cannot be kept in a directory store"),
              "put the marker ak/f/ beside the object ak/f: %s (%s)", store_strerror(e), errmsg);
    }
    /* byte order of the whole keys, e.g. "ak/.." < "ak/./z" < "ak/.buoy-x" < "ak/a/b/" */
    static const char *const order[] = {"ak/..", "ak/./z", "ak/.buoy-x", "ak/a/b/", "ak/d/",
                                        "ak/f",  "ak/f.",  "ak/q/../r",  "ak/x//y"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int ok = 1;
        for (size_t j = 0; j < nk; j++)
            if (strcmp(keys[j].key, order[i]) == 0)
                ok = !is_dir || keys[j].dir_ok;
        if (ok)
            buf_printf(&want, "%s%s", want.len ? " " : "", order[i]);
    }
    struct store_obj *list;
    size_t n;
    if (!no_list) {
        CHECK(store_list(s, "ak/", &list, &n, errmsg, sizeof errmsg) == STORE_OK, "list: %s",
              errmsg);
        for (size_t i = 0; i < n; i++)
            buf_printf(&got, "%s%s", i ? " " : "", list[i].key);
        CHECK(strcmp(got.p ? got.p : "", want.p) == 0, "list ak/:\n  got  %s\n  want %s",
              got.p ? got.p : "", want.p);
        store_list_free(list, n);
    }
    for (size_t i = 0; i < nk; i++) {
        if (no_dots && !keys[i].dir_ok)
            continue;
        enum store_err e =
            store_delete(s, keys[i].key, STORE_COND_NONE, NULL, errmsg, sizeof errmsg);
        CHECK(e == (is_dir && !keys[i].dir_ok ? STORE_EFATAL : STORE_OK), "delete %s: %s",
              keys[i].key, errmsg);
    }
    for (size_t i = 0; i < nk; i++)
        if ((!is_dir && !no_dots) || keys[i].dir_ok)
            CHECK(store_head(s, keys[i].key, NULL, errmsg, sizeof errmsg) == STORE_ENOTFOUND,
                  "%s is there after its delete", keys[i].key);
    if (!no_list) {
        CHECK(store_list(s, "ak/", &list, &n, errmsg, sizeof errmsg) == STORE_OK && n == 0,
              "%zu keys left after deleting them", n);
        store_list_free(list, n);
    }
    buf_free(&b);
    buf_free(&want);
    buf_free(&got);
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
    /* markers such as "d/" need any_keys */
    o.any_keys = strcmp(check, "anykeys") == 0 || strcmp(check, "delim") == 0;
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
    else if (strcmp(check, "meta") == 0)
        check_meta(s);
    else if (strcmp(check, "delim") == 0)
        rc = check_delim(s);
    else if (strcmp(check, "ifmatch") == 0)
        rc = check_ifmatch(s);
    else if (strcmp(check, "copy") == 0)
        check_copy(s);
    else if (strcmp(check, "anykeys") == 0)
        check_anykeys(s, strncmp(url, "s3://", 5) != 0, n & 1, n & 2);
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
