/* store.c - the store dispatcher: opening a stack of layers from a URL,
 * checking requests once before any layer sees them, the synchronous
 * helpers, and the plumbing layers share (completion, child requests,
 * error messages). */
#include "store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const err_names[STORE_NERR] = {
    "ok", "not found", "precondition failed", "conflict", "auth", "throttled", "transient",
    "fatal",
};

static const char *const op_names[STORE_NOPS] = {"GET", "PUT", "HEAD", "DELETE", "LIST", "COPY"};

const char *store_strerror(enum store_err e)
{
    return (unsigned)e < STORE_NERR ? err_names[e] : "unknown";
}

const char *store_opname(enum store_op op)
{
    return (unsigned)op < STORE_NOPS ? op_names[op] : "?";
}

const char *store_key_invalid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0)
        return "empty key";
    if (n > STORE_KEY_MAX)
        return "key longer than 1024 bytes";
    if (key[0] == '/')
        return "key starts with '/'";
    for (const char *seg = key; seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0)
            return "key has an empty path segment";
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return "key has a '.' or '..' segment";
        if (len >= 6 && strncmp(seg, ".buoy-", 6) == 0)
            return "key segment starts with the reserved '.buoy-'";
        seg = end ? end + 1 : NULL;
    }
    return NULL;
}

const char *store_key_invalid_any(const char *key)
{
    size_t n = strlen(key);
    if (n == 0)
        return "empty key";
    if (n > STORE_KEY_MAX)
        return "key longer than 1024 bytes";
    return NULL;
}

/* Checks a request's metadata and Content-Type; NULL, or why not into why. */
static const char *meta_invalid(const struct store_req *r, char *why, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < r->nmeta; i++) {
        const char *name = r->meta[i].name, *v = r->meta[i].value;
        if (!name || !*name || !v) {
            snprintf(why, n, "metadata entry %zu has no name or no value", i);
            return why;
        }
        for (const char *c = name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) {
                snprintf(why, n, "metadata name '%.64s' has a character outside [a-z0-9_-]", name);
                return why;
            }
        for (const char *c = v; *c; c++)
            if (*c < 0x20 || *c > 0x7e) {
                snprintf(why, n, "metadata '%.64s' has a value that is not printable ASCII", name);
                return why;
            }
        size_t vl = strlen(v);
        if (vl && (v[0] == ' ' || v[vl - 1] == ' ')) {
            snprintf(why, n,
                     "metadata '%.64s' has a value with a leading or trailing space "
                     "(S3 would drop it)",
                     name);
            return why;
        }
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(r->meta[j].name, name) == 0) {
                snprintf(why, n, "metadata name '%.64s' given twice", name);
                return why;
            }
        total += strlen(name) + vl;
    }
    if (total > 2048) {
        snprintf(why, n, "metadata of %zu bytes is more than S3's 2 KiB", total);
        return why;
    }
    if (r->content_type) {
        size_t tl = strlen(r->content_type);
        if (tl == 0 || tl >= STORE_CTYPE_MAX) {
            snprintf(why, n, "Content-Type must be 1..%d bytes", STORE_CTYPE_MAX - 1);
            return why;
        }
        for (const char *c = r->content_type; *c; c++)
            if (*c < 0x20 || *c > 0x7e) {
                snprintf(why, n, "Content-Type is not printable ASCII");
                return why;
            }
        if (r->content_type[0] == ' ' || r->content_type[tl - 1] == ' ') {
            snprintf(why, n, "Content-Type has a leading or trailing space");
            return why;
        }
    }
    return NULL;
}

/* "s3://b/p", "dir:///x", "/x", "x" -> the backend.  The dir backend takes
 * any path; only "scheme://" forms other than ours are refused. */
struct store *store_open(const char *url, const struct store_opts *opts, char *err,
                         size_t errlen)
{
    static const struct store_opts defaults = {.retries = -1};
    const struct store_opts *o = opts ? opts : &defaults;
    struct store *s = NULL;

    if (!url || !*url) {
        snprintf(err, errlen, "empty store URL; use a path, dir:///path or s3://bucket/prefix");
        return NULL;
    }
    if (strncmp(url, "s3://", 5) == 0) {
        const char *b = url + 5;
        const char *slash = strchr(b, '/');
        char *bucket = slash ? xstrndup(b, (size_t)(slash - b)) : xstrdup(b);
        char *prefix = xstrdup(slash ? slash + 1 : "");
        size_t pl = strlen(prefix);
        while (pl && prefix[pl - 1] == '/')
            prefix[--pl] = '\0';
        if (!*bucket)
            snprintf(err, errlen, "%s: no bucket name; use s3://bucket/prefix", url);
        else if (*prefix && store_key_invalid(prefix))
            snprintf(err, errlen, "%s: bad prefix: %s", url, store_key_invalid(prefix));
        else {
            char *norm = *prefix ? xasprintf("s3://%s/%s", bucket, prefix)
                                 : xasprintf("s3://%s", bucket);
            s = store_s3_open(bucket, prefix, norm, o, err, errlen);
            free(norm);
        }
        free(bucket);
        free(prefix);
    } else if (strncmp(url, "dir://", 6) == 0) {
        const char *path = url + 6;
        if (path[0] != '/')
            snprintf(err, errlen, "%s: dir URLs take an absolute path: dir:///path", url);
        else
            s = store_dir_open(path, url, err, errlen);
    } else if (strstr(url, "://")) {
        int n = (int)(strstr(url, "://") - url);
        snprintf(err, errlen,
                 "unknown store URL scheme '%.*s' in %s; use a path, dir:///path or "
                 "s3://bucket/prefix",
                 n, url, url);
    } else {
        char *u = xasprintf("dir://%s", url);
        s = store_dir_open(url, u, err, errlen);
        free(u);
    }
    if (!s)
        return NULL;
    if (o->fault && *o->fault) {
        struct store *f = store_fault_open(s, o->fault, err, errlen);
        if (!f) {
            store_close(s);
            return NULL;
        }
        s = f;
    }
    s = store_retry_open(s, o);
    s->any_keys = o->any_keys;
    return s;
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

/* A request refused before any layer saw it completes on the next
 * store_run(), like every other request. */
static void invalid(struct store *s, struct store_req *r, const char *why)
{
    store_fail(s, r, STORE_EFATAL, "%s", why);
    r->qnext = s->rejected;
    s->rejected = r;
}

void store_submit(struct store *s, struct store_req *r)
{
    const char *(*key_rule)(const char *) = s->any_keys ? store_key_invalid_any : store_key_invalid;
    const char *why = NULL;
    char whybuf[160];
    int metaful = r->nmeta || r->content_type;

    store_req_reset(r);
    if ((unsigned)r->op >= STORE_NOPS)
        why = "unknown operation";
    else if (!r->key)
        why = "no key";
    else if (r->op == STORE_LIST) {
        if (*r->key && strlen(r->key) > STORE_KEY_MAX)
            why = "prefix longer than 1024 bytes";
        else if (r->delim && strcmp(r->delim, "/") != 0)
            why = "the only LIST delimiter is \"/\"";
    } else
        why = key_rule(r->key);
    if (!why && r->op == STORE_COPY) {
        if (!r->src_key)
            why = "COPY without a source key";
        else if (key_rule(r->src_key))
            why = key_rule(r->src_key);
    }
    if (!why && r->cond == STORE_IF_NONE_MATCH && r->op != STORE_PUT)
        why = "If-None-Match is only for PUT";
    if (!why && r->cond == STORE_IF_MATCH && r->op == STORE_LIST)
        why = "If-Match is not for LIST";
    if (!why && r->cond == STORE_IF_MATCH && !r->if_etag[0])
        why = "If-Match without an ETag";
    if (!why && r->op == STORE_PUT && r->size && !r->data)
        why = "PUT without data";
    if (!why && metaful && r->op != STORE_PUT && !(r->op == STORE_COPY && r->meta_replace))
        why = r->op == STORE_COPY
                  ? "metadata on a COPY without meta_replace (it keeps the source's)"
                  : "metadata is only for PUT and COPY";
    if (!why && metaful)
        why = meta_invalid(r, whybuf, sizeof whybuf);
    if (!why && (metaful || r->op == STORE_COPY))
        for (const struct store *l = s; l; l = l->next)
            if (l->refuses_meta) {
                why = l->refuses_meta;
                break;
            }
    if (why) {
        invalid(s, r, why);
        return;
    }
    r->parent = NULL;
    s->ops->submit(s, r);
}

void store_wakeup(struct store *s)
{
    for (; s; s = s->next)
        if (s->ops->wakeup)
            s->ops->wakeup(s);
}

int store_run(struct store *s, int timeout_ms)
{
    if (s->rejected) {
        while (s->rejected) {
            struct store_req *r = s->rejected;
            s->rejected = r->qnext;
            r->parent = NULL;
            store_complete(s, r);
        }
        timeout_ms = 0; /* something completed: don't block */
    }
    return s->ops->run(s, timeout_ms) + (s->rejected != NULL);
}

void store_wait(struct store *s, struct store_req *r)
{
    while (!r->completed)
        if (store_run(s, 1000) == 0 && !r->completed) {
            /* Nothing in flight yet not completed: a layer lost the request. */
            store_fail(s, r, STORE_EFATAL, "request lost by the store (bug)");
            r->completed = 1;
        }
}

void store_drain(struct store *s)
{
    while (store_run(s, 1000) > 0)
        ;
}

void store_list_free(struct store_obj *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].key);
    free(list);
}

void store_meta_free(struct store_meta *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].value);
    }
    free(m);
}

void store_prefixes_free(char **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

static int meta_cmp(const void *a, const void *b)
{
    return strcmp(((const struct store_meta *)a)->name, ((const struct store_meta *)b)->name);
}

void store_meta_sort(struct store_meta *m, size_t n)
{
    if (n > 1)
        qsort(m, n, sizeof *m, meta_cmp);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t store_prefixes_sort(char **p, size_t n)
{
    if (n < 2)
        return n;
    qsort(p, n, sizeof *p, str_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(p[i], p[k - 1]) == 0)
            free(p[i]);
        else
            p[k++] = p[i];
    }
    return k;
}

void store_req_reset(struct store_req *r)
{
    buf_free(&r->body);
    store_prefixes_free(r->prefixes, r->nprefixes);
    r->prefixes = NULL;
    r->nprefixes = 0;
    store_meta_free(r->rmeta, r->nrmeta);
    r->rmeta = NULL;
    r->nrmeta = 0;
    r->rtype[0] = '\0';
    store_list_free(r->list, r->nlist);
    r->list = NULL;
    r->nlist = 0;
    free(r->obj.key);
    memset(&r->obj, 0, sizeof r->obj);
    r->err = STORE_OK;
    r->errmsg[0] = '\0';
    r->attempts = 0;
    r->maybe_applied = 0;
    r->unreachable = 0;
    r->completed = 0;
}

void store_req_free(struct store_req *r)
{
    store_req_reset(r);
}

void store_complete(struct store *s, struct store_req *r)
{
    if (!r->parent && s->stats)
        s->stats->errors[r->err]++;
    r->completed = 1;
    if (r->done)
        r->done(r);
}

void store_fail(struct store *s, struct store_req *r, enum store_err e, const char *fmt, ...)
{
    char cause[STORE_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    r->err = e;
    r->obj.etag[0] = '\0'; /* a failed PUT has no new ETag */
    if (r->op == STORE_LIST)
        snprintf(r->errmsg, sizeof r->errmsg, "%s/%s*: LIST: %s", s->url, r->key ? r->key : "",
                 cause);
    else if (r->op == STORE_COPY)
        snprintf(r->errmsg, sizeof r->errmsg, "%s/%s: COPY from %s: %s", s->url,
                 r->key ? r->key : "", r->src_key ? r->src_key : "", cause);
    else
        snprintf(r->errmsg, sizeof r->errmsg, "%s/%s: %s: %s", s->url, r->key ? r->key : "",
                 store_opname(r->op), cause);
}

struct store_req *store_req_child(struct store_req *r, store_done_fn done, void *layer)
{
    struct store_req *c = xcalloc(1, sizeof *c);
    c->op = r->op;
    c->key = r->key;
    c->off = r->off;
    c->len = r->len;
    c->data = r->data;
    c->size = r->size;
    c->cond = r->cond;
    memcpy(c->if_etag, r->if_etag, sizeof c->if_etag);
    c->meta = r->meta;
    c->nmeta = r->nmeta;
    c->content_type = r->content_type;
    c->meta_replace = r->meta_replace;
    c->src_key = r->src_key;
    c->delim = r->delim;
    c->done = done;
    c->arg = layer;
    c->parent = r;
    return c;
}

void store_req_adopt(struct store_req *parent, struct store_req *child)
{
    buf_free(&parent->body);
    store_list_free(parent->list, parent->nlist);
    store_prefixes_free(parent->prefixes, parent->nprefixes);
    store_meta_free(parent->rmeta, parent->nrmeta);
    parent->prefixes = child->prefixes;
    parent->nprefixes = child->nprefixes;
    parent->rmeta = child->rmeta;
    parent->nrmeta = child->nrmeta;
    memcpy(parent->rtype, child->rtype, sizeof parent->rtype);
    child->prefixes = NULL;
    child->nprefixes = 0;
    child->rmeta = NULL;
    child->nrmeta = 0;
    parent->err = child->err;
    memcpy(parent->errmsg, child->errmsg, sizeof parent->errmsg);
    parent->body = child->body;
    parent->obj = child->obj;
    parent->list = child->list;
    parent->nlist = child->nlist;
    parent->attempts += child->attempts;
    parent->maybe_applied |= child->maybe_applied;
    parent->unreachable = child->unreachable;
    memset(&child->body, 0, sizeof child->body);
    child->list = NULL;
    child->nlist = 0;
    free(child);
}

struct store_req *store_take_due(struct store_req **list, uint64_t now_ms, uint64_t *next_ms)
{
    struct store_req **pp = list, *due = NULL;
    *next_ms = UINT64_MAX;
    while (*pp) {
        struct store_req *r = *pp;
        if (r->due_ms <= now_ms) {
            *pp = r->qnext;
            r->qnext = due; /* pushing newest-first entries reverses them */
            due = r;
        } else {
            *next_ms = r->due_ms < *next_ms ? r->due_ms : *next_ms;
            pp = &r->qnext;
        }
    }
    return due;
}

void store_timed_wakeup(struct store *s)
{
    __atomic_store_n(&s->woken, 1, __ATOMIC_RELEASE);
}

int store_timed_run(struct store *s, int timeout_ms, int (*fire_due)(struct store *s),
                    const unsigned *completions, const int *inflight)
{
    uint64_t end = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    unsigned before = *completions;

    for (;;) {
        int until = fire_due(s);
        uint64_t now = clock_mono_ms();
        int left = now >= end ? 0 : (int)(end - now);
        int below = s->next->ops->run(s->next, until >= 0 && until < left ? until : left);
        if (*completions != before || *inflight == 0)
            break;
        /* a store_wakeup() also ended the run below: return, not run it again */
        if (__atomic_exchange_n(&s->woken, 0, __ATOMIC_ACQ_REL))
            break;
        /* done() callbacks may have queued more: look again before sleeping */
        until = fire_due(s);
        now = clock_mono_ms();
        left = now >= end ? 0 : (int)(end - now);
        if (below == 0 && until > 0) {
            /* in slices, so a store_wakeup() from another thread ends it */
            int nap = until < left ? until : left;
            clock_sleep_ms((uint64_t)(nap < 20 ? nap : 20));
            if (__atomic_exchange_n(&s->woken, 0, __ATOMIC_ACQ_REL))
                break;
        }
        if (clock_mono_ms() >= end)
            break;
    }
    return *inflight;
}

void store_get_stats(const struct store *s, struct store_stats *out)
{
    if (s->stats)
        *out = *s->stats;
    else
        memset(out, 0, sizeof *out);
}

double store_stats_cost(const struct store_stats *st)
{
    return (double)(st->requests[STORE_PUT] + st->requests[STORE_COPY] + st->requests[STORE_LIST]) *
               0.005 / 1000 +
           (double)(st->requests[STORE_GET] + st->requests[STORE_HEAD]) * 0.0004 / 1000;
}

/* --- synchronous helpers --- */

static enum store_err finish(struct store_req *r, char *errmsg, size_t errlen)
{
    if (r->err && errmsg && errlen)
        snprintf(errmsg, errlen, "%s", r->errmsg);
    return r->err;
}

enum store_err store_get(struct store *s, const char *key, uint64_t off, uint64_t len,
                         struct buf *out, struct store_obj *info, char *errmsg, size_t errlen)
{
    struct store_req r = {.op = STORE_GET, .key = key, .off = off, .len = len};
    store_submit(s, &r);
    store_wait(s, &r);
    enum store_err e = finish(&r, errmsg, errlen);
    if (!e) {
        if (out) {
            buf_free(out);
            *out = r.body;
            memset(&r.body, 0, sizeof r.body);
        }
        if (info)
            *info = r.obj;
    }
    store_req_free(&r);
    return e;
}

enum store_err store_put(struct store *s, const char *key, const void *data, size_t size,
                         enum store_cond cond, const char *if_etag, char etag_out[STORE_ETAG_MAX],
                         char *errmsg, size_t errlen)
{
    struct store_req r = {.op = STORE_PUT, .key = key, .data = data, .size = size, .cond = cond};
    if (if_etag)
        snprintf(r.if_etag, sizeof r.if_etag, "%s", if_etag);
    store_submit(s, &r);
    store_wait(s, &r);
    enum store_err e = finish(&r, errmsg, errlen);
    if (!e && etag_out)
        memcpy(etag_out, r.obj.etag, STORE_ETAG_MAX);
    store_req_free(&r);
    return e;
}

enum store_err store_head(struct store *s, const char *key, struct store_obj *info, char *errmsg,
                          size_t errlen)
{
    struct store_req r = {.op = STORE_HEAD, .key = key};
    store_submit(s, &r);
    store_wait(s, &r);
    enum store_err e = finish(&r, errmsg, errlen);
    if (!e && info)
        *info = r.obj;
    store_req_free(&r);
    return e;
}

enum store_err store_delete(struct store *s, const char *key, enum store_cond cond,
                            const char *if_etag, char *errmsg, size_t errlen)
{
    struct store_req r = {.op = STORE_DELETE, .key = key, .cond = cond};
    if (if_etag)
        snprintf(r.if_etag, sizeof r.if_etag, "%s", if_etag);
    store_submit(s, &r);
    store_wait(s, &r);
    enum store_err e = finish(&r, errmsg, errlen);
    store_req_free(&r);
    return e;
}

enum store_err store_list(struct store *s, const char *prefix, struct store_obj **list,
                          size_t *n, char *errmsg, size_t errlen)
{
    struct store_req r = {.op = STORE_LIST, .key = prefix ? prefix : ""};
    store_submit(s, &r);
    store_wait(s, &r);
    enum store_err e = finish(&r, errmsg, errlen);
    *list = NULL;
    *n = 0;
    if (!e) {
        *list = r.list;
        *n = r.nlist;
        r.list = NULL;
        r.nlist = 0;
    }
    store_req_free(&r);
    return e;
}
