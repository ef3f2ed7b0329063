/* crypt_speed.c - what the encryption layer (src/store/store_crypt.c) costs.
 *
 * The layer runs over an in-memory backend defined here, so the numbers
 * are its own work (sealing and opening chunks, copies), not a disk's or a
 * network's; the same requests without the layer give the baseline.
 *
 *   crypt_speed [--size 8M] [--seconds 2]
 *
 * Prints MB/s (10^6 bytes of plaintext a second) for whole-object PUT and
 * GET, ranged 4 KiB GETs a second, and the time of Argon2id at buoy's
 * default parameters (3 passes, 64 MiB) and at the tests' (1 pass, 8 MiB).
 * "crypt" is the layer as the engine opens it (its worker threads, one per
 * CPU, seal and open requests of more than 64 KiB); "crypt-1" the layer
 * with no workers, everything on the thread that runs the store. */
#include "store/store.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/size.h"
#include "vol/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- a one-object in-memory backend: enough for PUT and ranged GET --- */

struct mem_store {
    struct store base;
    struct store_stats stats;
    struct buf obj;
    struct store_req *queue;
};

static void mem_submit(struct store *s, struct store_req *r)
{
    struct mem_store *m = (struct mem_store *)s;
    r->qnext = m->queue;
    m->queue = r;
}

static void mem_do(struct mem_store *m, struct store_req *r)
{
    if (r->op == STORE_PUT) {
        buf_reset(&m->obj);
        buf_append(&m->obj, r->data, r->size);
        snprintf(r->obj.etag, sizeof r->obj.etag, "e%zu", r->size);
    } else if (r->op == STORE_GET) {
        uint64_t n = m->obj.len - r->off;
        if (r->len && r->len < n)
            n = r->len;
        buf_append(&r->body, m->obj.p + r->off, (size_t)n);
        r->obj.size = m->obj.len;
    } else
        store_fail(&m->base, r, STORE_EFATAL, "mem: only GET and PUT");
}

static int mem_run(struct store *s, int timeout_ms)
{
    struct mem_store *m = (struct mem_store *)s;
    while (m->queue) {
        struct store_req *r = m->queue;
        m->queue = r->qnext;
        mem_do(m, r);
        store_complete(s, r);
    }
    return 0;
}

static void mem_close(struct store *s)
{
    struct mem_store *m = (struct mem_store *)s;
    buf_free(&m->obj);
    free(m);
}

static const struct store_ops mem_ops = {
    .name = "mem", .submit = mem_submit, .run = mem_run, .close = mem_close,
};

static struct store *mem_open(void)
{
    struct mem_store *m = xcalloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.stats = &m->stats;
    m->base.url = "mem://";
    return &m->base;
}

/* --- the measurements --- */

static double seconds = 2;

static double put_rate(struct store *s, const char *data, size_t size)
{
    char err[STORE_ERRMSG_MAX];
    uint64_t t0 = clock_mono_us(), n = 0;
    do {
        if (store_put(s, "seg/x", data, size, STORE_COND_NONE, NULL, NULL, err, sizeof err)) {
            fprintf(stderr, "crypt_speed: %s\n", err);
            exit(1);
        }
        n++;
    } while (clock_mono_us() - t0 < seconds * 1e6);
    return (double)n * (double)size / (double)(clock_mono_us() - t0); /* bytes/us = MB/s */
}

static double get_rate(struct store *s, size_t size, uint64_t len, double *per_s)
{
    char err[STORE_ERRMSG_MAX];
    struct buf b = {0};
    uint64_t t0 = clock_mono_us(), n = 0, x = 88172645463325252ull;
    do {
        uint64_t off = 0;
        if (len) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            off = (x % (size / len)) * len;
        }
        if (store_get(s, "seg/x", off, len, &b, NULL, err, sizeof err)) {
            fprintf(stderr, "crypt_speed: %s\n", err);
            exit(1);
        }
        n++;
    } while (clock_mono_us() - t0 < seconds * 1e6);
    double us = (double)(clock_mono_us() - t0);
    buf_free(&b);
    *per_s = (double)n / us * 1e6;
    return (double)n * (double)(len ? len : size) / us;
}

static void kdf_time(uint64_t ops, uint64_t mem)
{
    struct vol_keys k;
    uint8_t salt[KEYS_SALT_LEN] = {0};
    char err[256];
    uint64_t t0 = clock_mono_us();
    if (keys_derive("a passphrase", 12, salt, ops, mem, &k, err, sizeof err) < 0) {
        fprintf(stderr, "crypt_speed: %s\n", err);
        exit(1);
    }
    printf("kdf argon2id ops=%llu mem=%llu MiB: %.0f ms\n", (unsigned long long)ops,
           (unsigned long long)(mem >> 20), (double)(clock_mono_us() - t0) / 1000);
    keys_wipe(&k);
}

int main(int argc, char **argv)
{
    uint64_t size = 8 << 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--size") == 0 && size_parse(argv[i + 1], &size) == 0 && size >= 4096)
            continue;
        if (strcmp(argv[i], "--seconds") == 0 && (seconds = atof(argv[i + 1])) > 0)
            continue;
        fprintf(stderr, "usage: crypt_speed [--size 8M] [--seconds 2]\n");
        return 2;
    }
    char *data = xmalloc((size_t)size);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)(i * 2654435761u >> 13);
    static const uint8_t key[32] = {7}, uuid[16] = {9};
    char err[256];
    struct store *plain = mem_open();
    struct store *crypt = store_crypt_open(mem_open(), key, uuid, err, sizeof err);
    struct store *crypt1 = store_crypt_open_threads(mem_open(), key, uuid, 0, err, sizeof err);
    if (!crypt || !crypt1) {
        fprintf(stderr, "crypt_speed: %s\n", err);
        return 1;
    }
    printf("object %llu bytes, %.1f s a measurement, one request at a time, %ld CPUs\n",
           (unsigned long long)size, seconds, sysconf(_SC_NPROCESSORS_ONLN));
    struct store *st[3] = {plain, crypt1, crypt};
    const char *name[3] = {"plain", "crypt-1", "crypt"};
    for (int i = 0; i < 3; i++) {
        double ps;
        printf("%s PUT %.0f MB/s\n", name[i], put_rate(st[i], data, (size_t)size));
        printf("%s GET %.0f MB/s\n", name[i], get_rate(st[i], (size_t)size, 0, &ps));
        double r = get_rate(st[i], (size_t)size, 4096, &ps);
        printf("%s GET 4 KiB ranges %.0f/s (%.0f MB/s)\n", name[i], ps, r);
    }
    store_close(plain);
    store_close(crypt1);
    store_close(crypt);
    free(data);
    kdf_time(KEYS_DEFAULT_OPS, KEYS_DEFAULT_MEM);
    kdf_time(1, 8 << 20);
    return 0;
}
