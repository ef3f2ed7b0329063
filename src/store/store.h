/* store.h - the object store interface every layer of buoy builds on.
 *
 * A store holds objects under keys relative to its URL's prefix.  Operations
 * are asynchronous so the engine can keep dozens of requests in flight from
 * one thread: fill a struct store_req, store_submit() it, and drive
 * store_run() until its done() callback has been called.  The synchronous
 * helpers at the bottom do exactly that for one request.
 *
 * A store is a stack of layers, each a table of functions with a pointer to
 * the layer below (nbdkit's filters are the model):
 *
 *     [crypt]  ->  retry  ->  [fault]  ->  dir | s3
 *
 * (crypt only on an encrypted volume, put there by the engine: store_open
 * never adds it.)
 *
 * Threading: a store and its requests belong to the thread that calls
 * store_submit()/store_run(); done() runs on that thread, always inside
 * store_run() (never inside store_submit()), and may submit further requests.
 * store_run() returns as soon as it has completed at least one request, or
 * when its timeout passes.
 *
 * Keys: 1..1024 bytes, no NUL, no leading '/', no empty, "." or ".." segment,
 * and no segment starting with ".buoy-" (reserved for the dir backend).  A
 * store opened with any_keys takes any key S3 does instead (1..1024 bytes).
 *
 * Metadata (PUT, COPY with meta_replace; returned by HEAD and GET): user
 * entries sent as x-amz-meta-NAME and a Content-Type.  store_submit checks
 * them: names [a-zA-Z0-9_-] (sent and returned lower case), values
 * printable ASCII without a leading or trailing space, at most 2 KiB of
 * names and values in all; a layer that cannot keep metadata or COPY
 * (crypt) says so in refuses_meta, and such requests fail EFATAL.
 *
 * ETags are opaque strings without the surrounding quotes S3 puts on them.
 */
#ifndef BUOY_STORE_H
#define BUOY_STORE_H

#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum store_err {
    STORE_OK = 0,
    STORE_ENOTFOUND,  /* no such object (404, ENOENT) */
    STORE_EPRECOND,   /* If-Match / If-None-Match not met (412) */
    STORE_ECONFLICT,  /* concurrent conditional write in progress (409) */
    STORE_EAUTH,      /* credentials missing, wrong or expired (401, 403) */
    STORE_ETHROTTLED, /* slow down (503 SlowDown, 429) */
    STORE_ETRANSIENT, /* 5xx, timeout, connection refused or reset */
    STORE_EFATAL,     /* anything retrying cannot fix: bad request, no bucket, disk error */
};
#define STORE_NERR 8

/* COPY: key is the destination, src_key the source, in the same store (S3
 * CopyObject; objects up to 5 GiB). */
enum store_op { STORE_GET = 0, STORE_PUT, STORE_HEAD, STORE_DELETE, STORE_LIST, STORE_COPY };
#define STORE_NOPS 6

enum store_cond {
    STORE_COND_NONE = 0,
    STORE_IF_NONE_MATCH, /* PUT only: create, fail with EPRECOND if the key exists */
    STORE_IF_MATCH,      /* PUT/DELETE/GET/HEAD/COPY: only if the current ETag equals
                          * if_etag (for COPY: the source's, x-amz-copy-source-if-match);
                          * else EPRECOND */
};

#define STORE_ETAG_MAX 80
#define STORE_KEY_MAX 1024
#define STORE_ERRMSG_MAX 512
#define STORE_CTYPE_MAX  128

/* One user metadata entry, x-amz-meta-NAME: VALUE.  NAME is without the
 * prefix, lower case [a-z0-9_-] (S3 lower-cases what it is sent); VALUE is
 * printable US-ASCII as S3 keeps it.  At most 2 KiB of names and values in
 * all, S3's limit. */
struct store_meta {
    char *name;
    char *value;
};

struct store_obj {
    char *key; /* LIST entries only (heap); NULL elsewhere */
    uint64_t size;
    time_t mtime;
    char etag[STORE_ETAG_MAX];
};

struct store_req;
typedef void (*store_done_fn)(struct store_req *r);

struct store_req {
    /* --- set by the caller --- */
    enum store_op op;
    const char *key; /* the object; for LIST the prefix ("" for all) */
    uint64_t off;    /* GET: first byte */
    uint64_t len;    /* GET: byte count, 0 = to the end of the object */
    const void *data; /* PUT: body, kept alive by the caller until done() */
    size_t size;
    enum store_cond cond;
    char if_etag[STORE_ETAG_MAX];
    /* PUT, and COPY with meta_replace: user metadata and Content-Type (NULL:
     * binary/octet-stream).  COPY without meta_replace keeps the source's. */
    const struct store_meta *meta;
    size_t nmeta;
    const char *content_type;
    int meta_replace;    /* COPY: x-amz-metadata-directive REPLACE */
    const char *src_key; /* COPY: the source */
    /* LIST: NULL for every key under the prefix, or "/" for one level: keys
     * with no delimiter after the prefix in list, the rest rolled up into
     * prefixes (S3's CommonPrefixes). */
    const char *delim;
    store_done_fn done; /* may be NULL for the synchronous helpers */
    void *arg;          /* the caller's */

    /* --- results, valid once done() runs --- */
    enum store_err err;
    char errmsg[STORE_ERRMSG_MAX]; /* one line naming the object and the cause */
    struct buf body;               /* GET: the bytes */
    struct store_obj obj;          /* PUT/COPY: etag; HEAD/GET: size (whole object), etag, mtime */
    struct store_obj *list;        /* LIST: entries sorted by key */
    size_t nlist;
    char **prefixes; /* LIST with delim: the common prefixes, sorted, each
                      * ending with delim (heap) */
    size_t nprefixes;
    struct store_meta *rmeta; /* HEAD/GET: the object's user metadata, sorted by name (heap) */
    size_t nrmeta;
    char rtype[STORE_CTYPE_MAX]; /* HEAD/GET: its Content-Type ("" when none) */
    int attempts; /* how many times the request went to the backend */
    /* A conditional PUT/DELETE failed its condition after an earlier attempt
     * ended with an unknown outcome (timeout, 5xx, lost answer): that attempt
     * may have been applied.  Read the object back to know. */
    int maybe_applied;
    /* The last attempt could not connect to the store (refused, unknown
     * host).  Not proof that nothing was applied: libcurl may have sent the
     * request on a kept-alive connection that died before it reconnected. */
    int unreachable;
    int completed;

    /* --- private to the layers --- */
    struct store_req *parent; /* a layer's child request points at the one it serves */
    struct store_req *qnext;
    uint64_t due_ms;
    void *lpriv;
};

struct store_stats {
    uint64_t requests[STORE_NOPS]; /* requests that reached the backend, retries and pages included */
    uint64_t errors[STORE_NERR];   /* final outcomes by error code */
    uint64_t bytes_up;
    uint64_t bytes_down;
    uint64_t retries;
    uint64_t faults_injected;
};

struct store;

struct store_ops {
    const char *name;
    /* Take r; complete it later, from run(), with store_complete(). */
    void (*submit)(struct store *s, struct store_req *r);
    /* Do I/O and fire timers for at most timeout_ms (0: don't block); drive
     * the layer below; return the number of requests in flight here and below. */
    int (*run)(struct store *s, int timeout_ms);
    void (*close)(struct store *s);
    /* Optional, and the one entry point any thread may call: make a run()
     * blocked in this layer return soon.  NULL when run() never blocks for
     * long here. */
    void (*wakeup)(struct store *s);
};

struct store {
    const struct store_ops *ops;
    struct store *next;         /* the layer below; NULL for a backend */
    struct store_stats *stats;  /* shared by every layer of one stack */
    char *url;                  /* for messages: "s3://bucket/prefix", "dir:///path" */
    struct store_req *rejected; /* refused by store_submit, completed by store_run */
    int woken;                  /* set by store_wakeup (atomically) for timed layers */
    int any_keys;               /* the top of the stack: store_submit takes any S3 key */
    /* Why this layer refuses COPY and metadata (the message), NULL if it does not. */
    const char *refuses_meta;
};

enum store_addressing { STORE_ADDR_AUTO = 0, STORE_ADDR_PATH, STORE_ADDR_VIRTUAL };

struct store_opts {
    const char *endpoint; /* S3: "http://127.0.0.1:9000"; NULL for AWS */
    const char *region;   /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1 */
    enum store_addressing addressing;
    const char *profile;  /* credentials profile; NULL for the default chain */
    int unsigned_payload; /* S3: sign UNSIGNED-PAYLOAD instead of hashing the body */
    int retries;          /* attempts after the first; -1 default (8) */
    int retry_base_ms;    /* 0 default (100) */
    int retry_cap_ms;     /* 0 default (10000) */
    int connect_timeout_ms; /* 0 default (5000) */
    int request_timeout_ms; /* 0 default (120000); a stalled transfer aborts after 30 s */
    int max_inflight;     /* S3: concurrent HTTP transfers; 0 default (64) */
    const char *fault;    /* fault-injection spec (store_fault.c); NULL for none */
    /* Accept any key S3 does (1..1024 bytes, no NUL: "a/", "x//y", "./z"),
     * for mounting a bucket other tools wrote.  Volumes keep the strict
     * rule above.  The dir backend refuses, with EFATAL and a message, a
     * key it cannot map to a file. */
    int any_keys;
};

/* Opens a store from a URL: "/path", "./path", "dir:///path" or
 * "s3://bucket[/prefix]".  opts may be NULL.  NULL + err on failure. */
struct store *store_open(const char *url, const struct store_opts *opts, char *err,
                         size_t errlen);
void store_close(struct store *s);

void store_submit(struct store *s, struct store_req *r);
int store_run(struct store *s, int timeout_ms);
/* From any thread: makes a store_run() blocked on another thread return
 * soon (so that it can submit new requests). */
void store_wakeup(struct store *s);
/* Runs the store until r has completed. */
void store_wait(struct store *s, struct store_req *r);
/* Runs the store until nothing is in flight. */
void store_drain(struct store *s);
/* Clears results so r can be submitted again; frees body, list, prefixes, rmeta. */
void store_req_reset(struct store_req *r);
/* Frees what a completed request holds (body, list, prefixes, rmeta). */
void store_req_free(struct store_req *r);
void store_meta_free(struct store_meta *m, size_t n);
void store_meta_sort(struct store_meta *m, size_t n); /* by name */
void store_prefixes_free(char **p, size_t n);
/* Sorts p and drops repeats (freeing them); returns the count left. */
size_t store_prefixes_sort(char **p, size_t n);

const char *store_strerror(enum store_err e);
const char *store_opname(enum store_op op);
/* NULL if the key is valid, else why not. */
const char *store_key_invalid(const char *key);
/* The same under any_keys: S3's rule, 1..1024 bytes. */
const char *store_key_invalid_any(const char *key);
void store_get_stats(const struct store *s, struct store_stats *out);
/* What the requests in st would cost on S3 in dollars: $0.005 per 1,000
 * PUT, COPY and LIST, $0.0004 per 1,000 GET and HEAD, DELETE free. */
double store_stats_cost(const struct store_stats *st);

/* Synchronous helpers: return STORE_OK or an error with errmsg filled. */
enum store_err store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
                         struct buf *out, struct store_obj *info, char *errmsg, size_t errlen);
enum store_err store_put(struct store *s, const char *key, const void *data, size_t size,
                         enum store_cond cond, const char *if_etag, char etag_out[STORE_ETAG_MAX],
                         char *errmsg, size_t errlen);
enum store_err store_head(struct store *s, const char *key, struct store_obj *info, char *errmsg,
                          size_t errlen);
/* Deleting a missing key is STORE_OK, as in S3 (ENOTFOUND with STORE_IF_MATCH). */
enum store_err store_delete(struct store *s, const char *key, enum store_cond cond,
                            const char *if_etag, char *errmsg, size_t errlen);
/* *list is heap memory: free with store_list_free(). */
enum store_err store_list(struct store *s, const char *prefix, struct store_obj **list,
                          size_t *n, char *errmsg, size_t errlen);
void store_list_free(struct store_obj *list, size_t n);

/* --- for layer implementations --- */

/* Completes r: records the outcome in the stats and calls r->done. */
void store_complete(struct store *s, struct store_req *r);
/* Fills r->err and r->errmsg ("<url>/<key>: <op>: <cause>"). */
void store_fail(struct store *s, struct store_req *r, enum store_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A child request carrying the same operation as r, for the layer below. */
struct store_req *store_req_child(struct store_req *r, store_done_fn done, void *layer);
/* Moves a completed child's results into its parent and frees the child. */
void store_req_adopt(struct store_req *parent, struct store_req *child);

/* Unlinks the requests of a newest-first qnext list whose due_ms has come and
 * returns them oldest first (through qnext); *next_ms gets the earliest due
 * time left, UINT64_MAX when none. */
struct store_req *store_take_due(struct store_req **list, uint64_t now_ms, uint64_t *next_ms);

/* The run() of a layer that holds requests until a due time (retry, fault):
 * fire_due(s) sends on whatever is due and returns ms until the next is, or
 * -1; the loop drives the layer below, sleeps when nothing is on the wire,
 * and returns once *completions moves, nothing is in flight, or time is up. */
/* The wakeup of a timed layer: its sleeps between timers end early, and
 * its run() returns once the run below it does. */
void store_timed_wakeup(struct store *s);
int store_timed_run(struct store *s, int timeout_ms, int (*fire_due)(struct store *s),
                    const unsigned *completions, const int *inflight);

/* Backends and layers; each returns NULL + err on failure. */
struct store *store_dir_open(const char *root, const char *url, char *err, size_t errlen);
struct store *store_s3_open(const char *bucket, const char *prefix, const char *url,
                            const struct store_opts *o, char *err, size_t errlen);
struct store *store_fault_open(struct store *next, const char *spec, char *err, size_t errlen);
struct store *store_retry_open(struct store *next, const struct store_opts *o);
/* Process-wide: do retry layers retry a request that could not connect to
 * the store (unreachable: connection refused, unknown host)?  Yes by
 * default, so a daemon rides out a store outage; the CLI says no for a
 * person's one-shot command, which then fails at once (an endpoint that
 * refuses connections now will not accept them in the next seconds), and a
 * daemon says yes again once it serves.  Any thread. */
void store_retry_unreachable(int retry);

/* Authenticated encryption (store_crypt.c): every object but "super" is
 * sealed with XChaCha20-Poly1305 under key, in chunks of STORE_CRYPT_CHUNK
 * bytes bound to uuid, the key and the chunk's place.  Owns next.  Requests
 * of more than 64 KiB are sealed and opened by worker threads of the layer
 * (one per CPU, at most 8), so the thread that runs the store goes on
 * meanwhile; smaller ones on that thread. */
#define STORE_CRYPT_CHUNK 16384
struct store *store_crypt_open(struct store *next, const uint8_t key[32], const uint8_t uuid[16],
                               char *err, size_t errlen);
/* The same with threads workers (-1: one per CPU; 0: none, all the work on
 * the thread that runs the store). */
struct store *store_crypt_open_threads(struct store *next, const uint8_t key[32],
                                      const uint8_t uuid[16], int threads, char *err,
                                      size_t errlen);
/* How many requests s (a crypt layer) has handed to its workers. */
uint64_t store_crypt_pooled(const struct store *s);
/* sodium_init(), once per process; 0, or -1 when libsodium cannot run. */
int store_crypt_init(void);
/* Stored size of an encrypted object of plain bytes, and the inverse (-1
 * when no encrypted object has that size). */
uint64_t store_crypt_size(uint64_t plain);
int store_crypt_plain_size(uint64_t stored, uint64_t *plain);

#endif
