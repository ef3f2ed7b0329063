/* store_dir.c - the local directory backend, buoy's embedded default.
 *
 * Layout under the root directory:
 *     <key>            one file per object; '/' in a key makes subdirectories
 *     .buoy-tmp/       bodies being written (same filesystem, so rename is atomic)
 *     .buoy-lock       flock()ed around conditional writes and deletes
 *
 * Rules:
 *  1. A PUT is durable before it is acknowledged: write the temp file, fsync
 *     it, rename (or link, for If-None-Match) it over the key, fsync the
 *     directory.  Readers never see a partial object.
 *  2. Conditional operations are atomic across processes: If-None-Match uses
 *     link(), which fails if the key exists; If-Match and conditional deletes
 *     compare the ETag and act while holding an exclusive flock on .buoy-lock.
 *  3. The ETag is derived from (inode, size, mtime): every PUT makes a new
 *     file and stamps its mtime's nanoseconds with 30 random bits, so an ETag
 *     does not repeat for a key even when the filesystem reuses the inode
 *     within one clock tick; HEAD needs no read of the body.  The ETag a PUT
 *     returns is read from the temp file before it is renamed, so it is that
 *     PUT's own even if another writer replaces the key right after.
 *  4. Temp files are created with O_EXCL under a random name, so writers in
 *     other processes, threads or containers never share one; temp files
 *     older than an hour (left by a crash) are removed at open.
 *
 * Requests are queued by submit() and carried out in order by run(). */
#include "store.h"
#include "util/mem.h"
#include "util/path.h"

#include <dirent.h>
#include <errno.h>
#include <sys/random.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct dir_store {
    struct store base;
    struct store_stats stats_storage;
    char *root;
    int root_fd;
    struct store_req *head, *tail;
};

#define DIR_OF(s) ((struct dir_store *)(s))

static void dir_etag(const struct stat *st, char out[STORE_ETAG_MAX])
{
    snprintf(out, STORE_ETAG_MAX, "%llx-%llx-%llx%09ld", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_size, (unsigned long long)st->st_mtim.tv_sec,
             st->st_mtim.tv_nsec);
}

static void fill_obj(const struct stat *st, struct store_obj *o)
{
    o->size = (uint64_t)st->st_size;
    o->mtime = st->st_mtim.tv_sec;
    dir_etag(st, o->etag);
}

static enum store_err errno_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return STORE_ENOTFOUND;
    case EACCES:
    case EPERM:
        return STORE_EAUTH;
    case EINTR:
    case EAGAIN:
        return STORE_ETRANSIENT;
    default:
        return STORE_EFATAL;
    }
}

static int fsync_dirat(int root_fd, const char *dir)
{
    int fd = openat(root_fd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* mkdir -p for the directories of key (relative to the root), fsyncing each
 * parent whose entries changed. */
static int make_parents(int root_fd, const char *key)
{
    char path[STORE_KEY_MAX + 1];
    snprintf(path, sizeof path, "%s", key);
    for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdirat(root_fd, path, 0755) < 0 && errno != EEXIST)
            return -1;
        /* Sync the parent's entry even when another process made the
         * directory first: it may not have synced it yet. */
        char *up = strrchr(path, '/');
        int rc;
        if (up) {
            *up = '\0';
            rc = fsync_dirat(root_fd, path);
            *up = '/';
        } else
            rc = fsync_dirat(root_fd, "");
        if (rc < 0)
            return -1;
        *p = '/';
    }
    return 0;
}

static void parent_of(const char *key, char *out, size_t n)
{
    const char *slash = strrchr(key, '/');
    snprintf(out, n, "%.*s", slash ? (int)(slash - key) : 0, key);
}

static int lock_root(struct dir_store *d)
{
    int fd = openat(d->root_fd, ".buoy-lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    return fd;
}

static void unlock_root(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

static void do_get(struct dir_store *d, struct store_req *r, int head_only)
{
    struct stat st;
    int fd = openat(d->root_fd, r->key, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        store_fail(&d->base, r, errno_err(errno), "%s", errno == ENOENT ? "no such object" : strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "fstat: %s", strerror(errno));
        close(fd);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        store_fail(&d->base, r, S_ISDIR(st.st_mode) ? STORE_ENOTFOUND : STORE_EFATAL, "%s",
                   S_ISDIR(st.st_mode) ? "no such object (a directory)" : "not a regular file");
        close(fd);
        return;
    }
    fill_obj(&st, &r->obj);
    if (head_only) {
        close(fd);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (r->off > 0 && r->off >= size) {
        store_fail(&d->base, r, STORE_EFATAL, "range %llu- not satisfiable: object is %llu bytes",
                   (unsigned long long)r->off, (unsigned long long)size);
        close(fd);
        return;
    }
    uint64_t want = size - r->off;
    if (r->len && r->len < want)
        want = r->len;
    buf_reserve(&r->body, want);
    uint64_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, r->body.p + got, want - got, (off_t)(r->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            store_fail(&d->base, r, STORE_EFATAL, "read: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break; /* the file shrank: impossible for our objects, keep what we have */
        got += (uint64_t)n;
    }
    r->body.len = got;
    r->body.p[got] = '\0';
    close(fd);
    if (!r->err)
        d->base.stats->bytes_down += got;
}

static uint64_t random64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = ((uint64_t)getpid() << 32) ^ (uint64_t)clock() ^ (uint64_t)time(NULL);
    return v;
}

/* Writes data to a fresh temp file in .buoy-tmp, stamps its mtime (rule 3),
 * fsyncs it and reads its ETag into r->obj. */
static int write_temp(struct dir_store *d, struct store_req *r, char *tmp, size_t tmplen)
{
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, tmplen, ".buoy-tmp/%016llx", (unsigned long long)random64());
        fd = openat(d->root_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == ENOENT && mkdirat(d->root_fd, ".buoy-tmp", 0755) < 0 &&
            errno != EEXIST)
            break;
        if (fd < 0 && errno != EEXIST && errno != ENOENT)
            break;
    }
    if (fd < 0) {
        store_fail(&d->base, r, errno_err(errno), "create temp file: %s", strerror(errno));
        return -1;
    }
    const char *p = r->data;
    size_t left = r->size;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            store_fail(&d->base, r, STORE_EFATAL, "write temp file: %s", strerror(errno));
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    struct timespec now, times[2];
    clock_gettime(CLOCK_REALTIME, &now);
    times[0] = now;
    times[1].tv_sec = now.tv_sec;
    times[1].tv_nsec = (long)(random64() % 1000000000u);
    struct stat st;
    if (futimens(fd, times) < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "finish temp file: %s", strerror(errno));
        goto fail;
    }
    fill_obj(&st, &r->obj);
    close(fd);
    return 0;
fail:
    close(fd);
    unlinkat(d->root_fd, tmp, 0);
    return -1;
}

/* Removes temp files older than an hour: left by a writer that crashed. */
static void clean_temp(int root_fd)
{
    int fd = openat(root_fd, ".buoy-tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *dp = fdopendir(fd);
    if (!dp) {
        close(fd);
        return;
    }
    time_t cutoff = time(NULL) - 3600;
    struct dirent *de;
    struct stat st;
    while ((de = readdir(dp)))
        if (de->d_name[0] != '.' && fstatat(fd, de->d_name, &st, 0) == 0 &&
            st.st_mtime < cutoff)
            unlinkat(fd, de->d_name, 0);
    closedir(dp);
}

/* Under the lock: does the key's current ETag match r->if_etag? */
static int etag_matches(struct dir_store *d, struct store_req *r)
{
    struct stat st;
    char etag[STORE_ETAG_MAX];
    if (fstatat(d->root_fd, r->key, &st, 0) < 0) {
        store_fail(&d->base, r, errno == ENOENT ? STORE_ENOTFOUND : STORE_EFATAL,
                   "If-Match %s: %s", r->if_etag, errno == ENOENT ? "no such object" : strerror(errno));
        return 0;
    }
    dir_etag(&st, etag);
    if (strcmp(etag, r->if_etag) != 0) {
        store_fail(&d->base, r, STORE_EPRECOND, "If-Match %s: current ETag is %s", r->if_etag,
                   etag);
        return 0;
    }
    return 1;
}

static void do_put(struct dir_store *d, struct store_req *r)
{
    char tmp[64], dir[STORE_KEY_MAX + 1];
    int lock = -1;

    if (make_parents(d->root_fd, r->key) < 0) {
        store_fail(&d->base, r, errno_err(errno), "create directories: %s", strerror(errno));
        return;
    }
    if (write_temp(d, r, tmp, sizeof tmp) < 0)
        return;
    if (r->cond != STORE_COND_NONE && (lock = lock_root(d)) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "lock .buoy-lock: %s", strerror(errno));
        goto out;
    }
    if (r->cond == STORE_IF_NONE_MATCH) {
        if (linkat(d->root_fd, tmp, d->root_fd, r->key, 0) < 0) {
            if (errno == EEXIST)
                store_fail(&d->base, r, STORE_EPRECOND, "If-None-Match: the object exists");
            else
                store_fail(&d->base, r, errno_err(errno), "link: %s", strerror(errno));
            goto out;
        }
    } else {
        if (r->cond == STORE_IF_MATCH && !etag_matches(d, r))
            goto out;
        if (renameat(d->root_fd, tmp, d->root_fd, r->key) < 0) {
            store_fail(&d->base, r, errno_err(errno), "rename: %s", strerror(errno));
            goto out;
        }
    }
    parent_of(r->key, dir, sizeof dir);
    if (fsync_dirat(d->root_fd, dir) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "fsync directory: %s", strerror(errno));
        goto out;
    }
    d->base.stats->bytes_up += r->size;
out:
    unlock_root(lock);
    unlinkat(d->root_fd, tmp, 0); /* after link() or a failure; ENOENT after rename */
}

static void do_delete(struct dir_store *d, struct store_req *r)
{
    char dir[STORE_KEY_MAX + 1];
    int lock = -1;

    if (r->cond == STORE_IF_MATCH) {
        if ((lock = lock_root(d)) < 0) {
            store_fail(&d->base, r, STORE_EFATAL, "lock .buoy-lock: %s", strerror(errno));
            return;
        }
        if (!etag_matches(d, r))
            goto out;
    }
    if (unlinkat(d->root_fd, r->key, 0) < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            store_fail(&d->base, r, errno_err(errno), "unlink: %s", strerror(errno));
        goto out;
    }
    parent_of(r->key, dir, sizeof dir);
    if (fsync_dirat(d->root_fd, dir) < 0)
        store_fail(&d->base, r, STORE_EFATAL, "fsync directory: %s", strerror(errno));
out:
    unlock_root(lock);
}

struct listing {
    struct store_obj *v;
    size_t n, cap;
};

/* Adds every regular file under rel (a directory relative to the root, "" for
 * the root) whose key starts with prefix. */
static int walk(struct dir_store *d, const char *rel, const char *prefix, struct listing *out)
{
    int fd = openat(d->root_fd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
    DIR *dp = fdopendir(fd);
    if (!dp) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    size_t plen = strlen(prefix);
    while (rc == 0 && (de = readdir(dp))) {
        if (de->d_name[0] == '.' &&
            (!de->d_name[1] || strcmp(de->d_name, "..") == 0 || strncmp(de->d_name, ".buoy-", 6) == 0))
            continue;
        char *key = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
        struct stat st;
        size_t klen = strlen(key);
        /* A directory is worth entering when it could hold keys with the prefix. */
        size_t cmp = klen < plen ? klen : plen;
        if (strncmp(key, prefix, cmp) != 0 || fstatat(d->root_fd, key, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            free(key);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(d, key, prefix, out);
            free(key);
        } else if (S_ISREG(st.st_mode) && klen >= plen) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = xrealloc(out->v, out->cap * sizeof *out->v);
            }
            memset(&out->v[out->n], 0, sizeof out->v[0]);
            fill_obj(&st, &out->v[out->n]);
            out->v[out->n++].key = key;
        } else
            free(key);
    }
    closedir(dp);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const struct store_obj *)a)->key, ((const struct store_obj *)b)->key);
}

static void do_list(struct dir_store *d, struct store_req *r)
{
    struct listing l = {0};
    /* Start at the deepest directory the prefix names fully. */
    char start[STORE_KEY_MAX + 1];
    parent_of(r->key, start, sizeof start);
    if (walk(d, start, r->key, &l) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "read directory: %s", strerror(errno));
        store_list_free(l.v, l.n);
        return;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_key);
    r->list = l.v;
    r->nlist = l.n;
}

static void dir_submit(struct store *s, struct store_req *r)
{
    struct dir_store *d = DIR_OF(s);
    r->qnext = NULL;
    if (d->tail)
        d->tail->qnext = r;
    else
        d->head = r;
    d->tail = r;
}

/* The root is made by the first PUT, so that reading a mistyped path
 * leaves nothing behind.  0 when it is open now; -1 when it does not exist
 * (and create is 0) or cannot be made, with errno. */
static int ensure_root(struct dir_store *d, int create)
{
    if (d->root_fd >= 0)
        return 0;
    int fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* with its missing parents; another opener may be creating it now */
    if (fd < 0 && errno == ENOENT && create && path_mkdirs(d->root, 0755) == 0)
        fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    d->root_fd = fd;
    clean_temp(fd);
    return 0;
}

/* A request on a root that does not exist: nothing is there. */
static void no_root(struct dir_store *d, struct store_req *r)
{
    if (r->op == STORE_LIST || (r->op == STORE_DELETE && r->cond != STORE_IF_MATCH))
        return; /* an empty list; deleting a missing key is fine */
    if (r->op == STORE_PUT)
        store_fail(&d->base, r, STORE_EFATAL, "cannot create directory store %s: %s", d->root,
                   strerror(errno));
    else
        store_fail(&d->base, r, STORE_ENOTFOUND, "no such object");
}

static int dir_run(struct store *s, int timeout_ms)
{
    struct dir_store *d = DIR_OF(s);
    /* Only what is queued now: done() may queue more, served on the next run. */
    struct store_req *r = d->head;
    d->head = d->tail = NULL;
    while (r) {
        struct store_req *next = r->qnext;
        r->attempts++;
        s->stats->requests[r->op]++;
        if (ensure_root(d, r->op == STORE_PUT) < 0)
            no_root(d, r);
        else
            switch (r->op) {
            case STORE_GET:
                do_get(d, r, 0);
                break;
            case STORE_HEAD:
                do_get(d, r, 1);
                break;
            case STORE_PUT:
                do_put(d, r);
                break;
            case STORE_DELETE:
                do_delete(d, r);
                break;
            case STORE_LIST:
                do_list(d, r);
                break;
            }
        store_complete(s, r);
        r = next;
    }
    int n = 0;
    for (r = d->head; r; r = r->qnext)
        n++;
    return n;
}

static void dir_close(struct store *s)
{
    struct dir_store *d = DIR_OF(s);
    if (d->root_fd >= 0)
        close(d->root_fd);
    free(d->root);
    free(s->url);
    free(d);
}

static const struct store_ops dir_ops = {
    .name = "dir", .submit = dir_submit, .run = dir_run, .close = dir_close,
};

struct store *store_dir_open(const char *root, const char *url, char *err, size_t errlen)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) { /* missing: the first PUT makes it */
        snprintf(err, errlen, "%s: cannot open directory store: %s", url, strerror(errno));
        return NULL;
    }
    struct dir_store *d = xcalloc(1, sizeof *d);
    d->base.ops = &dir_ops;
    d->base.stats = &d->stats_storage;
    d->base.url = xstrdup(url);
    size_t n = strlen(d->base.url);
    while (n > 1 && d->base.url[n - 1] == '/')
        d->base.url[--n] = '\0';
    d->root = xstrdup(root);
    d->root_fd = fd;
    if (fd >= 0)
        clean_temp(fd);
    return &d->base;
}
