/* io.c - the engine's I/O thread (see io.h).
 *
 * Submitters append to a queue under io->lock and wake the thread (a
 * condition variable when it is idle, store_wakeup() when it is blocked in
 * store_run).  The thread moves the queue to the store, runs it, and marks
 * completions under io->lock, bumping io->gen and broadcasting. */
#include "io.h"
#include "util/clock.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct io {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* the thread waits here when idle */
    pthread_cond_t finished; /* waiters wait here */
    struct io_req *qhead, *qtail;
    uint64_t gen;
    unsigned inflight; /* handed to the store, not yet finished */
    int stopping, idle;
    struct store_stats stats; /* copied at every completion and run, under lock */
};

static void on_done(struct store_req *r)
{
    struct io_req *q = (struct io_req *)r; /* r is q's first member */
    struct io *io = r->arg;
    pthread_mutex_lock(&io->lock);
    store_get_stats(io->st, &io->stats); /* this thread's: counts q, seen by its waiter */
    q->finished = 1;
    io->gen++;
    io->inflight--;
    pthread_cond_broadcast(&io->finished);
    pthread_mutex_unlock(&io->lock);
}

static void *io_main(void *arg)
{
    struct io *io = arg;
    pthread_mutex_lock(&io->lock);
    for (;;) {
        struct io_req *q = io->qhead;
        io->qhead = io->qtail = NULL;
        if (!q && !io->inflight) {
            if (io->stopping)
                break;
            io->idle = 1;
            pthread_cond_wait(&io->work, &io->lock);
            io->idle = 0;
            continue;
        }
        pthread_mutex_unlock(&io->lock);
        while (q) {
            struct io_req *next = q->qnext;
            pthread_mutex_lock(&io->lock);
            io->inflight++;
            pthread_mutex_unlock(&io->lock);
            store_submit(io->st, &q->r);
            q = next;
        }
        store_run(io->st, 1000);
        pthread_mutex_lock(&io->lock);
        store_get_stats(io->st, &io->stats);
    }
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

struct io *io_start(struct store *st)
{
    struct io *io = xcalloc(1, sizeof *io);
    io->st = st;
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->work, NULL);
    pthread_cond_init(&io->finished, NULL);
    if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
        /* no thread: nothing can work; callers see every request fail */
        perror("buoy: cannot start the I/O thread");
        abort();
    }
    return io;
}

void io_stop(struct io *io)
{
    if (!io)
        return;
    pthread_mutex_lock(&io->lock);
    io->stopping = 1;
    pthread_cond_signal(&io->work);
    pthread_mutex_unlock(&io->lock);
    store_wakeup(io->st);
    pthread_join(io->thread, NULL);
    pthread_cond_destroy(&io->finished);
    pthread_cond_destroy(&io->work);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

void io_submit(struct io *io, struct io_req *q)
{
    q->r.done = on_done;
    q->r.arg = io;
    q->qnext = NULL;
    pthread_mutex_lock(&io->lock);
    q->finished = 0;
    if (io->qtail)
        io->qtail->qnext = q;
    else
        io->qhead = q;
    io->qtail = q;
    int idle = io->idle;
    if (idle)
        pthread_cond_signal(&io->work);
    pthread_mutex_unlock(&io->lock);
    if (!idle)
        store_wakeup(io->st);
}

int io_done(struct io *io, struct io_req *q)
{
    pthread_mutex_lock(&io->lock);
    int f = q->finished;
    pthread_mutex_unlock(&io->lock);
    return f;
}

void io_wait(struct io *io, struct io_req *q)
{
    pthread_mutex_lock(&io->lock);
    while (!q->finished)
        pthread_cond_wait(&io->finished, &io->lock);
    pthread_mutex_unlock(&io->lock);
}

uint64_t io_gen(struct io *io)
{
    pthread_mutex_lock(&io->lock);
    uint64_t g = io->gen;
    pthread_mutex_unlock(&io->lock);
    return g;
}

void io_wait_change(struct io *io, uint64_t gen, int timeout_ms)
{
    struct timespec ts;
    clock_deadline(CLOCK_REALTIME, (uint64_t)timeout_ms, &ts);
    pthread_mutex_lock(&io->lock);
    while (io->gen == gen)
        if (pthread_cond_timedwait(&io->finished, &io->lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&io->lock);
}

void io_get_stats(struct io *io, struct store_stats *out)
{
    pthread_mutex_lock(&io->lock);
    *out = io->stats;
    pthread_mutex_unlock(&io->lock);
}

/* ---- synchronous helpers ---- */

static enum store_err finish(struct io_req *q, char *err, size_t errlen)
{
    if (q->r.err && err)
        snprintf(err, errlen, "%s", q->r.errmsg);
    return q->r.err;
}

enum store_err io_get(struct io *io, const char *key, uint64_t off, uint64_t len,
                      struct buf *out, char *err, size_t errlen)
{
    struct io_req q = {.r = {.op = STORE_GET, .key = key, .off = off, .len = len}};
    io_submit(io, &q);
    io_wait(io, &q);
    enum store_err e = finish(&q, err, errlen);
    if (!e) {
        buf_free(out);
        *out = q.r.body;
        q.r.body = (struct buf){0};
    }
    store_req_free(&q.r);
    return e;
}

enum store_err io_put(struct io *io, const char *key, const void *data, size_t size,
                      enum store_cond cond, char *err, size_t errlen)
{
    struct io_req q = {.r = {.op = STORE_PUT, .key = key, .data = data, .size = size,
                             .cond = cond}};
    io_submit(io, &q);
    io_wait(io, &q);
    enum store_err e = finish(&q, err, errlen);
    store_req_free(&q.r);
    return e;
}

enum store_err io_delete(struct io *io, const char *key, char *err, size_t errlen)
{
    struct io_req q = {.r = {.op = STORE_DELETE, .key = key}};
    io_submit(io, &q);
    io_wait(io, &q);
    enum store_err e = finish(&q, err, errlen);
    store_req_free(&q.r);
    return e;
}

enum store_err io_list(struct io *io, const char *prefix, struct store_obj **list, size_t *n,
                       char *err, size_t errlen)
{
    struct io_req q = {.r = {.op = STORE_LIST, .key = prefix}};
    io_submit(io, &q);
    io_wait(io, &q);
    enum store_err e = finish(&q, err, errlen);
    *list = NULL;
    *n = 0;
    if (!e) {
        *list = q.r.list;
        *n = q.r.nlist;
        q.r.list = NULL;
        q.r.nlist = 0;
    }
    store_req_free(&q.r);
    return e;
}
