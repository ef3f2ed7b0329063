/* io.h - the engine's I/O thread: the one thread that drives the store.
 *
 * The store API is single-threaded (store.h); the engine is called from many
 * threads (FUSE, NBD connections, the sealer).  So one thread owns the
 * store stack and runs it; any thread hands it requests and waits for them
 * without holding the engine's lock, so a read that misses the cache does
 * not stop other readers and writers for a round trip.
 *
 *   struct io_req q = {.r = {.op = STORE_GET, .key = k, ...}};
 *   io_submit(io, &q);          any thread
 *   io_wait(io, &q);            any thread; then q.r holds the result
 *   store_req_free(&q.r);
 *
 * Rules:
 *  1. Only the I/O thread calls store_submit/store_run on the stack.
 *  2. A request's results are read only after io_done() says it finished
 *     (io->lock orders the I/O thread's writes before the reader's reads).
 *  3. The I/O thread never takes the engine's lock, so waiting for I/O while
 *     holding it cannot deadlock. */
#ifndef BUOY_VOL_IO_H
#define BUOY_VOL_IO_H

#include "store/store.h"

#include <stdint.h>

struct io;

struct io_req {
    struct store_req r; /* r.done and r.arg belong to io */
    int finished;       /* under io's lock: read it with io_done() */
    struct io_req *qnext;
};

/* Starts the thread for st (which it then owns until io_stop). */
struct io *io_start(struct store *st);
/* Waits for every request handed over, stops the thread, frees io (not st). */
void io_stop(struct io *io);

void io_submit(struct io *io, struct io_req *q);
/* 1 once q has finished. */
int io_done(struct io *io, struct io_req *q);
void io_wait(struct io *io, struct io_req *q);
/* A counter of finished requests: wait for "anything new" without missing
 * a completion by reading it first, then checking, then io_wait_change. */
uint64_t io_gen(struct io *io);
/* Returns once io_gen() differs from gen, or after timeout_ms. */
void io_wait_change(struct io *io, uint64_t gen, int timeout_ms);
void io_get_stats(struct io *io, struct store_stats *out);

/* Synchronous helpers, as store_get & co. (store.h), through the thread. */
enum store_err io_get(struct io *io, const char *key, uint64_t off, uint64_t len,
                      struct buf *out, char *err, size_t errlen);
enum store_err io_put(struct io *io, const char *key, const void *data, size_t size,
                      enum store_cond cond, char *err, size_t errlen);
enum store_err io_delete(struct io *io, const char *key, char *err, size_t errlen);
/* *list (store_list_free) */
enum store_err io_list(struct io *io, const char *prefix, struct store_obj **list, size_t *n,
                       char *err, size_t errlen);

#endif
