/* test_store_crypt.c - the encryption layer over a real dir store: round
 * trips of every interesting size, ranged GETs at every chunk boundary, and
 * refusal of every altered, truncated, swapped or foreign object. */
#include "store/lease.h"
#include "store/store.h"
#include "tap.h"
#include "util/mem.h"

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

static void test_ranges(void)
{
    struct store *s = open_crypt(key_a, uuid_a);
    size_t n = 4 * CS + 100;
    char *p = pattern(n, 77);
    store_put(s, "range/obj", p, n, STORE_COND_NONE, NULL, NULL, err, sizeof err);
    int bad = 0, tried = 0;
    static const int64_t deltas[] = {-1, 0, 1};
    static const uint64_t lens[] = {1, 2, 100, CS, CS + 1, 2 * CS, 0};
    for (uint64_t c = 0; c <= 4; c++)
        for (size_t d = 0; d < 3; d++) {
            int64_t off = (int64_t)(c * CS) + deltas[d];
            if (off < 0)
                continue;
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                uint64_t want = lens[l] ? lens[l] : n - (uint64_t)off;
                if ((uint64_t)off + want > n)
                    want = n - (uint64_t)off;
                struct buf got = {0};
                struct store_obj info;
                tried++;
                if (store_get(s, "range/obj", (uint64_t)off, lens[l], &got, &info, err,
                              sizeof err) != STORE_OK ||
                    got.len != want || memcmp(got.p, p + off, want) != 0 || info.size != n) {
                    bad++;
                    diag("off %lld len %llu: %s", (long long)off, (unsigned long long)lens[l],
                         err);
                }
                buf_free(&got);
            }
        }
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

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp");
    test_sizes();
    test_round_trip();
    test_ranges();
    test_tamper();
    test_lease();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
    return done_testing();
}
