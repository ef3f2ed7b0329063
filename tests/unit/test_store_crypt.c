/* test_store_crypt.c - the encryption layer over a real dir store: round
 * trips of every interesting size, ranged GETs at every chunk boundary, and
 * refusal of every altered, truncated, swapped or foreign object; then the
 * same through the layer's worker threads: objects sealed by workers read
 * in place and the other way round, tampering found in any worker's share
 * of an object, many PUTs and GETs in flight at once over faults and
 * latency with tampered objects among them, store_wakeup, and a close
 * while workers are busy. */
#include "store/lease.h"
#include "store/store.h"
#include "tap.h"
#include "util/log.h"
#include "util/clock.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CS STORE_CRYPT_CHUNK

static char tmpdir[] = "/tmp/buoy-test-crypt-XXXXXX";
static char err[STORE_ERRMSG_MAX];
static const uint8_t key_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t key_b[32] = {1, 2, 3, 4, 5, 6, 7, 8, 10};
static const uint8_t uuid_a[16] = {0xaa, 1};
static const uint8_t uuid_b[16] = {0xbb, 1};

static struct store *open_raw(void)
{
    struct store_opts o = {.retries = 0};
    struct store *s = store_open(tmpdir, &o, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

static struct store *open_crypt(const uint8_t *key, const uint8_t *uuid)
{
    struct store *s = store_crypt_open(open_raw(), key, uuid, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

/* crypt -> retry -> [fault] -> dir, with threads workers. */
static struct store *open_crypt_threads(int threads, const char *fault)
{
    struct store_opts o = {.retries = fault ? 8 : 0, .fault = fault, .retry_base_ms = 1,
                           .retry_cap_ms = 5};
    struct store *raw = store_open(tmpdir, &o, err, sizeof err);
    if (!raw)
        bail_out(err);
    struct store *s = store_crypt_open_threads(raw, key_a, uuid_a, threads, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

/* Runs s until every request of rq has completed. */
static void run_all(struct store *s, struct store_req *rq, size_t n)
{
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !rq[i].completed;
        if (!left)
            return;
        store_run(s, 1000);
    }
}

static char *pattern(size_t n, unsigned seed)
{
    char *p = xmalloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)(x >> 16);
    }
    return p;
}

static char *path_of(const char *key)
{
    return xasprintf("%s/%s", tmpdir, key);
}

static struct buf read_file(const char *key)
{
    struct buf b = {0};
    char *p = path_of(key);
    FILE *f = fopen(p, "rb");
    if (!f)
        bail_out(p);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    free(p);
    return b;
}

static void write_file(const char *key, const void *p, size_t n)
{
    char *path = path_of(key);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        bail_out(path);
    free(path);
}

static void test_sizes(void)
{
    static const uint64_t plain[] = {0, 1, CS - 1, CS, CS + 1, 3 * CS + 7, 5u << 20};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        uint64_t back = UINT64_MAX, ct = store_crypt_size(plain[i]);
        ok(store_crypt_plain_size(ct, &back) == 0 && back == plain[i],
           "size map: %llu plaintext bytes <-> %llu stored", (unsigned long long)plain[i],
           (unsigned long long)ct);
    }
    is_int(store_crypt_size(0), 16 + 40, "an empty object is a header and one empty chunk");
    uint64_t p;
    int bad = 0;
    for (uint64_t ct = 0; ct < 16 + 40; ct++)
        bad += store_crypt_plain_size(ct, &p) == 0;
    bad += store_crypt_plain_size(16 + CS + 40 + 40, &p) == 0; /* a second, empty chunk */
    bad += store_crypt_plain_size(16 + CS + 40 + 39, &p) == 0; /* a chunk of no tag */
    is_int(bad, 0, "impossible stored sizes are refused");
}

static void test_round_trip(void)
{
    struct store *s = open_crypt(key_a, uuid_a);
    static const size_t sizes[] = {0, 1, CS - 1, CS, CS + 1, 3 * CS + 7, (3u << 20) + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char key[64];
        snprintf(key, sizeof key, "rt/%zu", n);
        char *p = pattern(n, (unsigned)i);
        struct buf got = {0};
        struct store_obj info;
        ok(store_put(s, key, p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err) == STORE_OK,
           "put %zu bytes", n);
        ok(store_get(s, key, 0, 0, &got, &info, err, sizeof err) == STORE_OK && got.len == n &&
               memcmp(got.p, p, n) == 0 && info.size == n,
           "get %zu bytes back identical, size %llu", n, (unsigned long long)info.size);
        struct buf raw = read_file(key);
        ok(raw.len == store_crypt_size(n) && (n < 64 || !memmem(raw.p, raw.len, p, 64)),
           "stored as %zu bytes, none of the plaintext visible", raw.len);
        buf_free(&raw);
        ok(store_head(s, key, &info, err, sizeof err) == STORE_OK && info.size == n,
           "HEAD reports the plaintext size %zu", n);
        buf_free(&got);
        free(p);
    }
    /* the same plaintext twice: fresh nonces, different bytes */
    char *p = pattern(100, 9);
    store_put(s, "same/1", p, 100, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    store_put(s, "same/2", p, 100, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    struct buf r1 = read_file("same/1"), r2 = read_file("same/2");
    ok(r1.len == r2.len && memcmp(r1.p + 16, r2.p + 16, 24) != 0 &&
           memcmp(r1.p + 40, r2.p + 40, 100) != 0,
       "one plaintext stored twice gets different nonces and ciphertext");
    buf_free(&r1);
    buf_free(&r2);
    free(p);

    struct store_obj *l;
    size_t nl;
    ok(store_list(s, "rt/", &l, &nl, err, sizeof err) == STORE_OK, "list");
    int right = 0;
    for (size_t i = 0; i < nl; i++)
        right += l[i].size == strtoull(l[i].key + 3, NULL, 10);
    ok(nl == 7 && right == 7, "LIST reports plaintext sizes (%d of %zu)", right, nl);
    store_list_free(l, nl);

    const char *super = "buoy-volume 1\nplain text\n";
    store_put(s, "super", super, strlen(super), STORE_COND_NONE, NULL, NULL, err, sizeof err);
    struct buf raw = read_file("super");
    ok(raw.len == strlen(super) && memcmp(raw.p, super, raw.len) == 0,
       "super is stored as it is, unencrypted");
    buf_free(&raw);
    store_delete(s, "super", STORE_COND_NONE, NULL, err, sizeof err);
    store_close(s);
}

/* GETs of key (its plaintext p, n bytes) at chunk c*CS + each delta, for
 * each of chunks, with each length of lens (0: to the end); counts into
 * *tried and *bad (a wrong answer, with a diag). */
static void ranged_gets(struct store *s, const char *key, const char *p, size_t n,
                        const uint64_t *chunks, size_t nchunks, const uint64_t *lens,
                        size_t nlens, int *tried, int *bad)
{
    static const int64_t deltas[] = {-1, 0, 1};
    for (size_t c = 0; c < nchunks; c++)
        for (size_t d = 0; d < 3; d++) {
            int64_t off = (int64_t)(chunks[c] * CS) + deltas[d];
            if (off < 0 || (uint64_t)off >= n)
                continue;
            for (size_t l = 0; l < nlens; l++) {
                uint64_t want = lens[l] ? lens[l] : n - (uint64_t)off;
                if ((uint64_t)off + want > n)
                    want = n - (uint64_t)off;
                struct buf got = {0};
                struct store_obj info;
                (*tried)++;
                if (store_get(s, key, (uint64_t)off, lens[l], &got, &info, err, sizeof err) !=
                        STORE_OK ||
                    got.len != want || memcmp(got.p, p + off, want) != 0 || info.size != n) {
                    (*bad)++;
                    diag("%s off %lld len %llu: %s", key, (long long)off,
                         (unsigned long long)lens[l], err);
                }
                buf_free(&got);
            }
        }
}

static void test_ranges(void)
{
    struct store *s = open_crypt(key_a, uuid_a);
    size_t n = 4 * CS + 100;
    char *p = pattern(n, 77);
    store_put(s, "range/obj", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    int bad = 0, tried = 0;
    static const uint64_t chunks[] = {0, 1, 2, 3, 4};
    static const uint64_t lens[] = {1, 2, 100, CS, CS + 1, 2 * CS, 0};
    ranged_gets(s, "range/obj", p, n, chunks, 5, lens, sizeof lens / sizeof lens[0], &tried,
                &bad);
    ok(tried > 90 && bad == 0, "%d ranged GETs around every chunk boundary are right", tried);
    struct buf got = {0};
    ok(store_get(s, "range/obj", n, 1, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "a range from the end is refused: %s", err);
    buf_free(&got);
    free(p);
    store_close(s);
}

static void test_tamper(void)
{
    struct store *s = open_crypt(key_a, uuid_a);
    size_t n = 2 * CS + 10;
    char *p = pattern(n, 5);
    store_put(s, "t/small", p, 10, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    struct buf orig = read_file("t/small");
    int accepted = 0;
    for (size_t i = 0; i < orig.len; i++) {
        struct buf got = {0};
        orig.p[i] ^= 0x01;
        write_file("t/small", orig.p, orig.len);
        orig.p[i] ^= 0x01;
        if (store_get(s, "t/small", 0, 0, &got, NULL, err, sizeof err) != STORE_EFATAL ||
            got.len)
            accepted++;
        buf_free(&got);
    }
    ok(accepted == 0, "each of the %zu stored bytes flipped in turn is refused", orig.len);
    ok(strstr(err, "t/small") && strstr(err, "authentication failed") != NULL,
       "the error names the object: %s", err);
    buf_free(&orig);

    store_put(s, "t/big", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    orig = read_file("t/big");
    int cut_ok = 0;
    for (uint64_t c = 1; c <= 2; c++) {
        size_t at = 16 + (size_t)c * (CS + 40);
        struct buf got = {0};
        write_file("t/big", orig.p, at);
        cut_ok += store_get(s, "t/big", 0, 0, &got, NULL, err, sizeof err) == STORE_OK;
        buf_free(&got);
        cut_ok += store_get(s, "t/big", 0, 100, &got, NULL, err, sizeof err) == STORE_OK &&
                  c == 1; /* chunk 0 is now the last: its flag says otherwise */
        buf_free(&got);
    }
    write_file("t/big", orig.p, orig.len - 1);
    struct buf got = {0};
    cut_ok += store_get(s, "t/big", 2 * CS, 0, &got, NULL, err, sizeof err) == STORE_OK;
    buf_free(&got);
    ok(cut_ok == 0, "an object cut at each chunk boundary, or by one byte, is refused: %s", err);

    /* chunks 0 and 1 swapped within the object */
    struct buf sw = {0};
    buf_append(&sw, orig.p, 16);
    buf_append(&sw, orig.p + 16 + CS + 40, CS + 40);
    buf_append(&sw, orig.p + 16, CS + 40);
    buf_append(&sw, orig.p + 16 + 2 * (CS + 40), orig.len - 16 - 2 * (CS + 40));
    write_file("t/big", sw.p, sw.len);
    ok(store_get(s, "t/big", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL && !got.len,
       "two chunks swapped within an object are refused: %s", err);
    buf_free(&got);
    ok(store_get(s, "t/big", CS, 10, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "... also by a ranged GET of the moved chunk alone");
    buf_free(&got);
    buf_free(&sw);
    write_file("t/big", orig.p, orig.len);
    buf_free(&orig);

    /* two objects swapped by renaming the files */
    store_put(s, "t/x", "xxxx", 4, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    store_put(s, "t/y", "yyyy", 4, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    char *px = path_of("t/x"), *py = path_of("t/y"), *pt = path_of("t/tmp");
    ok(rename(px, pt) == 0 && rename(py, px) == 0 && rename(pt, py) == 0, "swap t/x and t/y");
    ok(store_get(s, "t/x", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "an object under another key is refused: %s", err);
    buf_free(&got);
    free(px);
    free(py);
    free(pt);

    struct store *other = open_crypt(key_b, uuid_a), *vol2 = open_crypt(key_a, uuid_b);
    ok(store_get(other, "t/big", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "another key is refused");
    buf_free(&got);
    ok(store_get(vol2, "t/big", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "another volume's uuid is refused");
    buf_free(&got);
    ok(store_get(s, "t/big", 0, 0, &got, NULL, err, sizeof err) == STORE_OK && got.len == n &&
           memcmp(got.p, p, n) == 0,
       "the restored object reads again");
    buf_free(&got);
    store_close(other);
    store_close(vol2);

    /* a plaintext object is not taken for an encrypted one */
    write_file("t/plain", p, 1000);
    ok(store_get(s, "t/plain", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL,
       "an unencrypted object is refused: %s", err);
    buf_free(&got);
    free(p);
    store_close(s);
}

static void test_lease(void)
{
    struct store *s1 = open_crypt(key_a, uuid_a), *s2 = open_crypt(key_a, uuid_a);
    struct lease a, b;
    lease_init(&a, s1, "lease", "alpha", "host-a", 60000, 1000);
    lease_init(&b, s2, "lease", "beta", "host-b", 60000, 1000);
    is_int(lease_observe(&a, err, sizeof err), LEASE_OK, "observe the lease through the layer");
    is_int(lease_take(&a, err, sizeof err), LEASE_OK, "take it (If-None-Match)");
    is_int(lease_renew(&a, err, sizeof err), LEASE_OK, "renew it (If-Match on the ETag)");
    struct buf raw = read_file("lease");
    ok(!memmem(raw.p, raw.len, "alpha", 5), "the stored lease is encrypted");
    buf_free(&raw);
    is_int(lease_observe(&b, err, sizeof err), LEASE_OK, "a second holder observes it");
    ok(b.exists && strcmp(b.cur.holder, "alpha") == 0, "and reads alpha's record");
    char etag[STORE_ETAG_MAX];
    ok(store_put(s2, "lease", "junk", 4, STORE_IF_MATCH, "no-such-etag", etag, err, sizeof err) ==
           STORE_EPRECOND,
       "a PUT with a stale If-Match fails its condition");
    is_int(lease_renew(&a, err, sizeof err), LEASE_OK, "the holder still renews");
    is_int(lease_release(&a, err, sizeof err), LEASE_OK, "and releases");
    store_close(s1);
    store_close(s2);
}


/* Stored offset of byte i of chunk c's ciphertext. */
static size_t ct_at(uint64_t c, size_t i)
{
    return 16 + (size_t)c * (CS + 40) + 24 + i;
}

static void test_pool_round_trip(void)
{
    struct store *pool = open_crypt_threads(4, NULL), *one = open_crypt_threads(0, NULL);
    static const size_t sizes[] = {4 * CS + 1, 64 * CS - 1, (8u << 20) + 3};
    for (size_t i = 0; i < 3; i++) {
        size_t n = sizes[i];
        char *p = pattern(n, 100 + (unsigned)i);
        struct buf got = {0};
        ok(store_put(pool, "pool/a", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err) == 0 &&
               store_get(one, "pool/a", 0, 0, &got, NULL, err, sizeof err) == 0 &&
               got.len == n && memcmp(got.p, p, n) == 0,
           "%zu bytes sealed by the workers open in place", n);
        buf_free(&got);
        ok(store_put(one, "pool/b", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err) == 0 &&
               store_get(pool, "pool/b", 0, 0, &got, NULL, err, sizeof err) == 0 &&
               got.len == n && memcmp(got.p, p, n) == 0,
           "%zu bytes sealed in place open on the workers", n);
        buf_free(&got);
        struct buf raw = read_file("pool/a");
        ok(raw.len == store_crypt_size(n) && !memmem(raw.p, raw.len, p + n / 2, 64),
           "stored as %zu bytes, the format of one thread, no plaintext visible", raw.len);
        buf_free(&raw);
        free(p);
    }
    ok(store_crypt_pooled(pool) >= 6, "the workers did the big ones (%llu)",
       (unsigned long long)store_crypt_pooled(pool));
    is_int(store_crypt_pooled(one), 0, "threads 0: nothing handed over");

    /* ranged GETs of the 513-chunk object, around workers' shares (32 chunks) */
    size_t n = sizes[2];
    char *p = pattern(n, 102);
    static const uint64_t chunks[] = {0, 1, 31, 32, 33, 64, 500, 512};
    static const uint64_t lens[] = {5 * CS, 33 * CS + 1, 100 * CS - 3, 0};
    uint64_t pooled = store_crypt_pooled(pool);
    int bad = 0, tried = 0;
    ranged_gets(pool, "pool/b", p, n, chunks, sizeof chunks / sizeof chunks[0], lens,
                sizeof lens / sizeof lens[0], &tried, &bad);
    ok(tried > 80 && bad == 0, "%d ranged GETs across the workers' shares are right", tried);
    ok(store_crypt_pooled(pool) - pooled > 60, "... opened by the workers (%llu)",
       (unsigned long long)(store_crypt_pooled(pool) - pooled));
    free(p);
    store_close(pool);
    store_close(one);
}

static void test_pool_tamper(void)
{
    struct store *s = open_crypt_threads(4, NULL);
    size_t n = 100 * CS + 7;
    char *p = pattern(n, 31);
    store_put(s, "pt/obj", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    struct buf orig = read_file("pt/obj");
    static const uint64_t at[] = {0, 1, 31, 32, 63, 64, 99, 100};
    int refused = 0, named = 0, ranged_ok = 0, nbad = 0;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        uint64_t k = at[i];
        size_t pos = k < 100 ? ct_at(k, 100) : ct_at(100, 3); /* chunk 100: 7 bytes */
        struct buf got = {0};
        char want[32];
        orig.p[pos] ^= 0x20;
        write_file("pt/obj", orig.p, orig.len);
        orig.p[pos] ^= 0x20;
        snprintf(want, sizeof want, "chunk %llu:", (unsigned long long)k);
        refused += store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL &&
                   got.len == 0;
        named += strstr(err, "pt/obj") && strstr(err, want) && strstr(err, "authentication");
        buf_free(&got);
        /* a range of ten chunks not holding k reads; one holding it does not */
        uint64_t far = k >= 50 ? 0 : 60;
        ranged_ok += store_get(s, "pt/obj", far * CS, 10 * CS, &got, NULL, err, sizeof err) ==
                         STORE_OK &&
                     got.len == 10 * CS && memcmp(got.p, p + far * CS, 10 * CS) == 0;
        buf_free(&got);
        uint64_t from = k >= 5 ? k - 5 : 0;
        refused += store_get(s, "pt/obj", from * CS + 3, 10 * CS, &got, NULL, err, sizeof err) ==
                   STORE_EFATAL;
        buf_free(&got);
        nbad++;
    }
    is_int(refused, 2 * nbad, "a byte flipped in any worker's share fails the GET, whole or ranged");
    is_int(named, nbad, "the error names the object and the chunk: %s", err);
    is_int(ranged_ok, nbad, "ranges that miss the altered chunk still read");

    /* two altered chunks, in different shares: the lower one is named, every time */
    orig.p[ct_at(70, 9)] ^= 1;
    orig.p[ct_at(10, 9)] ^= 1;
    write_file("pt/obj", orig.p, orig.len);
    orig.p[ct_at(70, 9)] ^= 1;
    orig.p[ct_at(10, 9)] ^= 1;
    int lowest = 0;
    for (int i = 0; i < 20; i++) {
        struct buf got = {0};
        lowest += store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL &&
                  strstr(err, "chunk 10:") != NULL;
        buf_free(&got);
    }
    is_int(lowest, 20, "two altered chunks: the lower (10) is named in 20 of 20 reads");

    /* chunks 40 and 41 swapped; a nonce altered; cut at chunk 50 */
    struct buf sw = {0};
    buf_append(&sw, orig.p, 16 + 40 * (CS + 40));
    buf_append(&sw, orig.p + 16 + 41 * (CS + 40), CS + 40);
    buf_append(&sw, orig.p + 16 + 40 * (CS + 40), CS + 40);
    buf_append(&sw, orig.p + 16 + 42 * (CS + 40), orig.len - 16 - 42 * (CS + 40));
    write_file("pt/obj", sw.p, sw.len);
    buf_free(&sw);
    struct buf got = {0};
    ok(store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL && !got.len &&
           strstr(err, "chunk 40:"),
       "two chunks swapped inside a worker's share are refused: %s", err);
    buf_free(&got);
    orig.p[16 + 80 * (CS + 40) + 5] ^= 0x80;
    write_file("pt/obj", orig.p, orig.len);
    orig.p[16 + 80 * (CS + 40) + 5] ^= 0x80;
    ok(store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL &&
           strstr(err, "chunk 80:"),
       "an altered nonce is refused: %s", err);
    buf_free(&got);
    write_file("pt/obj", orig.p, 16 + 50 * (CS + 40));
    ok(store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_EFATAL &&
           strstr(err, "chunk 49:"),
       "an object cut after chunk 49 is refused (its last-chunk flag): %s", err);
    buf_free(&got);
    write_file("pt/obj", orig.p, orig.len);
    ok(store_get(s, "pt/obj", 0, 0, &got, NULL, err, sizeof err) == STORE_OK && got.len == n &&
           memcmp(got.p, p, n) == 0,
       "the restored object reads again");
    buf_free(&got);
    buf_free(&orig);
    free(p);
    store_close(s);
}

/* Many PUTs and GETs in flight at once, over 10% transient errors and
 * latency, with altered objects among them. */
static void test_pool_concurrent(unsigned seed)
{
    char fault[96];
    snprintf(fault, sizeof fault, "seed=%u,err=0.1,latency=2,jitter=3", seed);
    struct store *s = open_crypt_threads(3, fault);
    enum { NOBJ = 40, NNEW = 12 };
    char keys[NOBJ + NNEW][32];
    char *data[NOBJ + NNEW];
    size_t size[NOBJ + NNEW];
    uint32_t x = seed * 2654435761u + 7;
    for (int i = 0; i < NOBJ + NNEW; i++) {
        x = x * 1103515245u + 12345u;
        size[i] = i % 7 == 0 ? x % 3000 : (x >> 4) % (3u << 20) + 1;
        snprintf(keys[i], sizeof keys[i], "cc/%u/%d", seed, i);
        data[i] = pattern(size[i], seed * 100 + (unsigned)i);
    }
    uint64_t pooled = store_crypt_pooled(s);
    struct store_req put[NOBJ];
    memset(put, 0, sizeof put);
    for (int i = 0; i < NOBJ; i++) {
        put[i] = (struct store_req){.op = STORE_PUT, .key = keys[i], .data = data[i],
                                    .size = size[i]};
        store_submit(s, &put[i]);
    }
    run_all(s, put, NOBJ);
    int puts_ok = 0;
    for (int i = 0; i < NOBJ; i++) {
        puts_ok += put[i].err == STORE_OK;
        if (put[i].err)
            diag("%s", put[i].errmsg);
        store_req_free(&put[i]);
    }
    is_int(puts_ok, NOBJ, "seed %u: %d PUTs in flight at once all stored", seed, NOBJ);

    /* alter every fifth object in one chunk */
    uint64_t badc[NOBJ];
    for (int i = 0; i < NOBJ; i++) {
        badc[i] = UINT64_MAX;
        if (i % 5 != 2)
            continue;
        struct buf raw = read_file(keys[i]);
        uint64_t n = (size[i] + CS - 1) / CS;
        badc[i] = (uint64_t)i * 7 % n;
        raw.p[ct_at(badc[i], 0)] ^= 4;
        write_file(keys[i], raw.p, raw.len);
        buf_free(&raw);
    }
    /* whole and ranged GETs of all of them and new PUTs, all at once */
    struct store_req rq[2 * NOBJ + NNEW];
    uint64_t roff[NOBJ], rlen[NOBJ];
    memset(rq, 0, sizeof rq);
    for (int i = 0; i < NOBJ; i++) {
        x = x * 1103515245u + 12345u;
        roff[i] = (x >> 3) % size[i];
        rlen[i] = 1 + (x >> 11) % (size[i] - roff[i]);
        rq[2 * i] = (struct store_req){.op = STORE_GET, .key = keys[i]};
        rq[2 * i + 1] = (struct store_req){.op = STORE_GET, .key = keys[i], .off = roff[i],
                                           .len = rlen[i]};
        store_submit(s, &rq[2 * i]);
        store_submit(s, &rq[2 * i + 1]);
        if (i < NNEW) {
            int k = NOBJ + i;
            rq[2 * NOBJ + i] = (struct store_req){.op = STORE_PUT, .key = keys[k],
                                                  .data = data[k], .size = size[k]};
            store_submit(s, &rq[2 * NOBJ + i]);
        }
    }
    run_all(s, rq, 2 * NOBJ + NNEW);
    int right = 0, refused = 0, nbad = 0, wrong = 0;
    for (int i = 0; i < NOBJ; i++) {
        struct store_req *w = &rq[2 * i], *r = &rq[2 * i + 1];
        uint64_t c0 = roff[i] / CS, c1 = (roff[i] + rlen[i] - 1) / CS;
        int range_hit = badc[i] != UINT64_MAX && badc[i] >= c0 && badc[i] <= c1;
        if (badc[i] != UINT64_MAX) {
            char want[32];
            snprintf(want, sizeof want, "chunk %llu:", (unsigned long long)badc[i]);
            nbad++;
            int r1 = w->err == STORE_EFATAL && w->body.len == 0 && strstr(w->errmsg, keys[i]) &&
                     strstr(w->errmsg, want);
            if (!r1)
                diag("%s (%s): %s", keys[i], want, w->err ? w->errmsg : "read");
            refused += r1;
        } else if (w->err == STORE_OK && w->body.len == size[i] &&
                   memcmp(w->body.p, data[i], size[i]) == 0)
            right++;
        else
            wrong++;
        if (range_hit)
            refused += r->err == STORE_EFATAL && r->body.len == 0;
        else if (r->err == STORE_OK && r->body.len == rlen[i] &&
                 memcmp(r->body.p, data[i] + roff[i], rlen[i]) == 0)
            right++;
        else {
            wrong++;
            diag("%s %llu+%llu: %s", keys[i], (unsigned long long)roff[i],
                 (unsigned long long)rlen[i], r->errmsg);
        }
        nbad += range_hit;
        store_req_free(w);
        store_req_free(r);
    }
    is_int(wrong, 0, "seed %u: every GET of an intact object or range is right (%d)", seed, right);
    is_int(refused, nbad, "seed %u: every GET touching an altered chunk is refused, naming it (%d)",
           seed, nbad);
    int new_ok = 0;
    for (int i = 0; i < NNEW; i++) {
        struct buf got = {0};
        int k = NOBJ + i;
        new_ok += rq[2 * NOBJ + i].err == STORE_OK &&
                  store_get(s, keys[k], 0, 0, &got, NULL, err, sizeof err) == STORE_OK &&
                  got.len == size[k] && memcmp(got.p, data[k], size[k]) == 0;
        buf_free(&got);
        store_req_free(&rq[2 * NOBJ + i]);
    }
    is_int(new_ok, NNEW, "seed %u: PUTs sent among the GETs read back", seed);
    ok(store_crypt_pooled(s) - pooled > NOBJ, "seed %u: the workers did %llu of them", seed,
       (unsigned long long)(store_crypt_pooled(s) - pooled));
    for (int i = 0; i < NOBJ + NNEW; i++)
        free(data[i]);
    store_close(s);
}

static void *wake_later(void *arg)
{
    clock_sleep_ms(100);
    store_wakeup(arg);
    return NULL;
}

/* store_wakeup from another thread ends a store_run blocked on a slow
 * request below; then a close while the workers are busy loses nothing. */
static void test_pool_wakeup_close(void)
{
    struct store *s = open_crypt_threads(2, "latency=1500");
    struct store_req r = {.op = STORE_HEAD, .key = "pool/b"};
    store_submit(s, &r);
    pthread_t t;
    pthread_create(&t, NULL, wake_later, s);
    uint64_t t0 = clock_mono_ms();
    store_run(s, 1200);
    uint64_t took = clock_mono_ms() - t0;
    pthread_join(t, NULL);
    ok(took < 700, "store_wakeup ends a run waiting on a slow request (%llu ms)",
       (unsigned long long)took);
    store_wait(s, &r);
    store_req_free(&r);
    store_close(s);

    s = open_crypt_threads(2, NULL);
    size_t n = (2u << 20) + 11;
    char *p = pattern(n, 55);
    struct store_req put[8];
    char keys[8][16];
    memset(put, 0, sizeof put);
    for (int i = 0; i < 8; i++) {
        snprintf(keys[i], sizeof keys[i], "close/%d", i);
        put[i] = (struct store_req){.op = STORE_PUT, .key = keys[i], .data = p, .size = n};
        store_submit(s, &put[i]);
    }
    store_close(s); /* drains: the PUTs are in the pool or below */
    int all = 1;
    for (int i = 0; i < 8; i++)
        all &= put[i].completed && put[i].err == STORE_OK;
    ok(all, "a close while 8 PUTs are being sealed completes them all");
    s = open_crypt_threads(0, NULL);
    int back = 0;
    for (int i = 0; i < 8; i++) {
        struct buf got = {0};
        back += store_get(s, keys[i], 0, 0, &got, NULL, err, sizeof err) == STORE_OK &&
                got.len == n && memcmp(got.p, p, n) == 0;
        buf_free(&got);
    }
    is_int(back, 8, "and they read back");
    store_close(s);
    free(p);
}

int main(void)
{
    plan_no_plan();
    log_set_level(LOGL_ERROR); /* the retries of the injected faults are expected */
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp");
    test_sizes();
    test_round_trip();
    test_ranges();
    test_tamper();
    test_lease();
    test_pool_round_trip();
    test_pool_tamper();
    for (unsigned seed = 1; seed <= 3; seed++)
        test_pool_concurrent(seed);
    test_pool_wakeup_close();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
    return done_testing();
}
