/* fence.c - takeover records (see fence.h). */
#include "fence.h"
#include "util/mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void fence_key(uint64_t epoch, char out[FENCE_KEY_SIZE])
{
    snprintf(out, FENCE_KEY_SIZE, FENCE_PREFIX "%016" PRIx64, epoch);
}

int fence_key_parse(const char *key, uint64_t *epoch)
{
    size_t pl = strlen(FENCE_PREFIX);
    if (strncmp(key, FENCE_PREFIX, pl) != 0 || strlen(key) != pl + 16 ||
        strspn(key + pl, "0123456789abcdef") != 16)
        return -1;
    *epoch = strtoull(key + pl, NULL, 16);
    return 0;
}

void fence_encode(const struct fence *f, const char *holder, struct buf *out)
{
    buf_printf(out, "buoy-fence 1\nepoch %" PRIu64 "\nafter %" PRIu64 "\nholder %s\ntime %lld\n",
               f->epoch, f->after, holder, (long long)time(NULL));
}

int fence_parse(const void *p, size_t n, struct fence *f, char *err, size_t errlen)
{
    char text[512];
    if (n >= sizeof text) {
        snprintf(err, errlen, "fence record too long (%zu bytes)", n);
        return -1;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    unsigned long long e, a;
    const char *ep = strstr(text, "\nepoch "), *ap = strstr(text, "\nafter ");
    if (strncmp(text, "buoy-fence 1\n", 13) != 0 || !ep || !ap ||
        sscanf(ep, "\nepoch %llu", &e) != 1 || sscanf(ap, "\nafter %llu", &a) != 1) {
        snprintf(err, errlen, "not a buoy fence record");
        return -1;
    }
    f->epoch = e;
    f->after = a;
    return 0;
}

void fence_add(struct fence_set *s, const struct fence *f)
{
    s->f = xrealloc(s->f, (s->n + 1) * sizeof *s->f);
    size_t i = s->n++;
    while (i > 0 && s->f[i - 1].epoch > f->epoch) {
        s->f[i] = s->f[i - 1];
        i--;
    }
    s->f[i] = *f;
}

void fence_free(struct fence_set *s)
{
    free(s->f);
    s->f = NULL;
    s->n = 0;
}

int fence_ok(const struct fence_set *s, uint64_t seq, uint64_t epoch)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->f[i].epoch > epoch && seq > s->f[i].after)
            return 0;
    return 1;
}
