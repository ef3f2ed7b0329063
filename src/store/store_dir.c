/* store_dir.c - the local directory backend, buoy's embedded default.
 *
 * Layout under the root directory:
 *     <key>            one file per object; '/' in a key makes subdirectories
 *     <dir>/.buoy-dirobj  the object whose key is "<dir>/" (a directory
 *                      marker, as s3fs writes them)
 *     .buoy-tmp/       bodies being written (same filesystem, so rename is atomic)
 *     .buoy-lock       flock()ed around conditional writes and deletes
 *
 * Keys a directory cannot hold: an empty segment ("x//y", "/x"), a "." or
 * ".." segment, a segment starting with ".buoy-" (ours), and an object "a"
 * beside keys "a/..." (a file and a directory of one name).  A store opened
 * with any_keys may be sent them; they fail EFATAL, "key cannot be kept in
 * a directory store: why".  LIST returns keys in S3's order, the byte order
 * of the whole key ("a-b" < "a/" < "a/b"), whatever the directory order.
 *
 * Metadata (Content-Type and x-amz-meta-* entries) lives in one user xattr
 * of the object's file, "user.buoy.meta":
 *     "buoy-meta-1\n" CONTENT-TYPE "\n" { NAME ":" VALUE "\n" }
 * (an empty CONTENT-TYPE line for none; names and values hold no ':' or
 * newline, store_submit checked them).  It is set on the temp file before
 * the fsync and the rename, so data and metadata are one inode swapped in
 * by one rename: a crash leaves the old pair or the new pair, never a mix
 * (fsync writes the inode's xattrs with it; on ext4 they are in the inode
 * or a block the same journal transaction commits).  An object without
 * metadata has no xattr, so a filesystem without user xattrs (tmpfs
 * before 6.6, some FUSE ones) still holds volumes; a PUT with metadata
 * there fails EFATAL saying so.  HEAD and GET report Content-Type
 * "binary/octet-stream" when none was given, as S3 does.
 *
 * COPY writes a new temp file from the source's bytes (and metadata, or
 * the request's with meta_replace) and renames it over the destination, so
 * it is atomic as a PUT is.  Its ETag is the new file's (rule 3): a COPY
 * always gives a new ETag, also a metadata-only copy of an object onto
 * itself (S3 keeps the MD5 there; callers must treat ETags as opaque).
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
#include <sys/xattr.h>
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

#define DIROBJ     ".buoy-dirobj"
#define META_XATTR "user.buoy.meta"
#define META_MAGIC "buoy-meta-1\n"
#define META_MAX   8192 /* 2 KiB of entries, their separators, the type */
#define PATH_LEN   (STORE_KEY_MAX + sizeof "/" DIROBJ)

/* The file of key, relative to the root: the key itself, or
 * "<dir>/.buoy-dirobj" for a key "<dir>/".  NULL, or why the key cannot be
 * kept in a directory. */
static const char *key_path(const char *key, char *out, size_t n)
{
    const char *seg = key;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 && !(end == NULL && seg > key))
            return "it has an empty path segment";
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return "it has a '.' or '..' segment";
        if (len >= 6 && strncmp(seg, ".buoy-", 6) == 0)
            return "it has a segment starting with '.buoy-', which the store keeps for itself";
        if (!end)
            break;
        seg = end + 1;
    }
    size_t kl = strlen(key);
    if (kl && key[kl - 1] == '/')
        snprintf(out, n, "%s%s", key, DIROBJ);
    else
        snprintf(out, n, "%s", key);
    return NULL;
}

/* Is the directory part of a LIST prefix one the store could hold keys
 * under?  "" (the root) is. */
static int dir_part_ok(const char *dir)
{
    if (!*dir)
        return 1;
    char probe[PATH_LEN];
    return key_path(dir, probe, sizeof probe) == NULL && dir[strlen(dir) - 1] != '/';
}

static int cannot_keep(struct dir_store *d, struct store_req *r, const char *why)
{
    store_fail(&d->base, r, STORE_EFATAL, "key cannot be kept in a directory store: %s", why);
    return -1;
}

/* r's key as a path, or -1 with r failed. */
static int req_path(struct dir_store *d, struct store_req *r, const char *key, char *out, size_t n)
{
    const char *why = key_path(key, out, n);
    return why ? cannot_keep(d, r, why) : 0;
}

static int is_dir_at(int root_fd, const char *path)
{
    struct stat st;
    return fstatat(root_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

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
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s", key);
    for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdirat(root_fd, path, 0755) < 0 && errno != EEXIST)
            return -1;
        if (!is_dir_at(root_fd, path)) { /* an object of that name is in the way */
            errno = ENOTDIR;
            return -1;
        }
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

/* --- metadata --- */

/* r's metadata as the xattr's value (META_XATTR), or an empty buffer when
 * there is none to keep. */
static void meta_encode(const struct store_req *r, struct buf *out)
{
    if (!r->nmeta && !r->content_type)
        return;
    buf_puts(out, META_MAGIC);
    buf_printf(out, "%s\n", r->content_type ? r->content_type : "");
    for (size_t i = 0; i < r->nmeta; i++) {
        size_t at = out->len;
        buf_printf(out, "%s:%s\n", r->meta[i].name, r->meta[i].value);
        for (size_t k = at; out->p[k] != ':'; k++) /* names are kept lower case, as S3 does */
            if (out->p[k] >= 'A' && out->p[k] <= 'Z')
                out->p[k] = (char)(out->p[k] - 'A' + 'a');
    }
}

/* The xattr of fd into out (empty when it has none).  -1 with errno. */
static int meta_read_raw(int fd, struct buf *out)
{
    char v[META_MAX];
    ssize_t n = fgetxattr(fd, META_XATTR, v, sizeof v);
    if (n < 0)
        return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
    buf_append(out, v, (size_t)n);
    return 0;
}

/* Fills r->rtype and r->rmeta (sorted) from a META_XATTR value. */
static int meta_decode(const char *v, size_t n, struct store_req *r)
{
    snprintf(r->rtype, sizeof r->rtype, "binary/octet-stream");
    if (n == 0)
        return 0;
    size_t ml = strlen(META_MAGIC);
    if (n < ml || memcmp(v, META_MAGIC, ml) != 0 || v[n - 1] != '\n')
        return -1;
    const char *p = v + ml, *end = v + n;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl > p)
        snprintf(r->rtype, sizeof r->rtype, "%.*s", (int)(nl - p), p);
    size_t cap = 0;
    for (p = nl + 1; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (!colon || colon == p)
            return -1;
        if (r->nrmeta == cap) {
            cap = cap ? 2 * cap : 8;
            r->rmeta = xrealloc(r->rmeta, cap * sizeof *r->rmeta);
        }
        r->rmeta[r->nrmeta].name = xstrndup(p, (size_t)(colon - p));
        r->rmeta[r->nrmeta++].value = xstrndup(colon + 1, (size_t)(nl - colon - 1));
    }
    store_meta_sort(r->rmeta, r->nrmeta);
    return 0;
}

static int meta_load(struct dir_store *d, struct store_req *r, int fd)
{
    struct buf raw = {0};
    int rc = meta_read_raw(fd, &raw);
    if (rc < 0)
        store_fail(&d->base, r, STORE_EFATAL, "read metadata (xattr %s): %s", META_XATTR,
                   strerror(errno));
    else if ((rc = meta_decode(raw.p, raw.len, r)) < 0)
        store_fail(&d->base, r, STORE_EFATAL, "malformed metadata in xattr %s", META_XATTR);
    buf_free(&raw);
    return rc;
}

/* Under the lock, or on an open fd: does st's ETag match r->if_etag? */
static int etag_ok(struct dir_store *d, struct store_req *r, const struct stat *st,
                   const char *what)
{
    char etag[STORE_ETAG_MAX];
    dir_etag(st, etag);
    if (strcmp(etag, r->if_etag) == 0)
        return 1;
    store_fail(&d->base, r, STORE_EPRECOND, "If-Match %s: %s ETag is %s", r->if_etag, what, etag);
    return 0;
}

/* Opens key's file for reading: the fd, or -1 with r failed. */
static int open_object(struct dir_store *d, struct store_req *r, const char *key, const char *what,
                       struct stat *st)
{
    char path[PATH_LEN];
    if (req_path(d, r, key, path, sizeof path) < 0)
        return -1;
    int fd = openat(d->root_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        store_fail(&d->base, r, errno_err(e), "%s%s", e == ENOENT || e == ENOTDIR ? "no such " : "",
                   e == ENOENT || e == ENOTDIR ? what : strerror(e));
        return -1;
    }
    if (fstat(fd, st) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "fstat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        if (S_ISDIR(st->st_mode))
            store_fail(&d->base, r, STORE_ENOTFOUND, "no such %s (a directory)", what);
        else
            store_fail(&d->base, r, STORE_EFATAL, "not a regular file");
        close(fd);
        return -1;
    }
    return fd;
}

static void do_get(struct dir_store *d, struct store_req *r, int head_only)
{
    struct stat st;
    int fd = open_object(d, r, r->key, "object", &st);
    if (fd < 0)
        return;
    /* the fd holds one version: the ETag, metadata and bytes all are its */
    if (r->cond == STORE_IF_MATCH && !etag_ok(d, r, &st, "the object's")) {
        close(fd);
        return;
    }
    fill_obj(&st, &r->obj);
    if (meta_load(d, r, fd) < 0 || head_only) {
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

/* Appends n bytes of src_fd from its start (a COPY) or of r->data to fd. */
static int write_body(struct dir_store *d, struct store_req *r, int fd, int src_fd, uint64_t n)
{
    char *chunk = src_fd >= 0 ? xmalloc(1 << 20) : NULL;
    uint64_t done = 0;
    int rc = -1;
    while (done < n) {
        const char *p;
        size_t len;
        if (src_fd >= 0) {
            size_t want = n - done < (1 << 20) ? (size_t)(n - done) : (1 << 20);
            ssize_t got = pread(src_fd, chunk, want, (off_t)done);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                store_fail(&d->base, r, STORE_EFATAL, "read source: %s",
                           got < 0 ? strerror(errno) : "it shrank");
                goto out;
            }
            p = chunk;
            len = (size_t)got;
        } else {
            p = (const char *)r->data + done;
            len = (size_t)(n - done);
        }
        while (len) {
            ssize_t w = write(fd, p, len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                store_fail(&d->base, r, STORE_EFATAL, "write temp file: %s", strerror(errno));
                goto out;
            }
            p += w;
            len -= (size_t)w;
            done += (uint64_t)w;
        }
    }
    rc = 0;
out:
    free(chunk);
    return rc;
}

/* Writes the body (r->data, or size bytes of src_fd for a COPY) and the
 * metadata (meta: a META_XATTR value, empty for none) to a fresh temp file
 * in .buoy-tmp, stamps its mtime (rule 3), fsyncs it and reads its ETag into
 * r->obj. */
static int write_temp(struct dir_store *d, struct store_req *r, int src_fd, uint64_t size,
                      const struct buf *meta, char *tmp, size_t tmplen)
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
    if (write_body(d, r, fd, src_fd, size) < 0)
        goto fail;
    if (meta->len && fsetxattr(fd, META_XATTR, meta->p, meta->len, 0) < 0) {
        if (errno == ENOTSUP)
            store_fail(&d->base, r, STORE_EFATAL,
                       "cannot keep metadata: the directory store's filesystem has no user "
                       "xattrs");
        else
            store_fail(&d->base, r, STORE_EFATAL, "set metadata (xattr %s): %s", META_XATTR,
                       strerror(errno));
        goto fail;
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

/* Under the lock: does the object at path have ETag r->if_etag? */
static int etag_matches(struct dir_store *d, struct store_req *r, const char *path)
{
    struct stat st;
    int found = fstatat(d->root_fd, path, &st, 0) == 0;
    if (!found || S_ISDIR(st.st_mode)) {
        int missing = found || errno == ENOENT || errno == ENOTDIR;
        store_fail(&d->base, r, missing ? STORE_ENOTFOUND : STORE_EFATAL, "If-Match %s: %s",
                   r->if_etag, missing ? "no such object" : strerror(errno));
        return 0;
    }
    return etag_ok(d, r, &st, "current");
}

/* A directory in the way of path's parents, or of path itself. */
static void in_the_way(struct dir_store *d, struct store_req *r, const char *path, int e)
{
    if (e == ENOTDIR)
        cannot_keep(d, r, "an object has the name of one of its directories");
    else if (e == EISDIR || (e == EEXIST && is_dir_at(d->root_fd, path)))
        cannot_keep(d, r, "other keys are stored under it as a directory");
    else
        store_fail(&d->base, r, errno_err(e), "%s", strerror(e));
}

/* Puts the temp file at path (If-None-Match: only if nothing is there, or
 * If-Match: only over the given ETag) and syncs its directory. */
static int install(struct dir_store *d, struct store_req *r, const char *tmp, const char *path)
{
    char dir[PATH_LEN];
    int lock = -1, rc = -1;

    if (r->op == STORE_PUT && r->cond != STORE_COND_NONE && (lock = lock_root(d)) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "lock .buoy-lock: %s", strerror(errno));
        goto out;
    }
    if (r->op == STORE_PUT && r->cond == STORE_IF_NONE_MATCH) {
        if (linkat(d->root_fd, tmp, d->root_fd, path, 0) < 0) {
            if (errno == EEXIST && !is_dir_at(d->root_fd, path))
                store_fail(&d->base, r, STORE_EPRECOND, "If-None-Match: the object exists");
            else
                in_the_way(d, r, path, errno);
            goto out;
        }
    } else {
        if (r->op == STORE_PUT && r->cond == STORE_IF_MATCH && !etag_matches(d, r, path))
            goto out;
        if (renameat(d->root_fd, tmp, d->root_fd, path) < 0) {
            in_the_way(d, r, path, errno);
            goto out;
        }
    }
    parent_of(path, dir, sizeof dir);
    if (fsync_dirat(d->root_fd, dir) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "fsync directory: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    unlock_root(lock);
    return rc;
}

static int parents(struct dir_store *d, struct store_req *r, const char *path)
{
    if (make_parents(d->root_fd, path) == 0)
        return 0;
    if (errno == ENOTDIR)
        return cannot_keep(d, r, "an object has the name of one of its directories");
    store_fail(&d->base, r, errno_err(errno), "create directories: %s", strerror(errno));
    return -1;
}

static void do_put(struct dir_store *d, struct store_req *r)
{
    char tmp[64], path[PATH_LEN];
    struct buf meta = {0};

    if (req_path(d, r, r->key, path, sizeof path) < 0 || parents(d, r, path) < 0)
        return;
    meta_encode(r, &meta);
    if (write_temp(d, r, -1, r->size, &meta, tmp, sizeof tmp) == 0 && install(d, r, tmp, path) == 0)
        d->base.stats->bytes_up += r->size;
    unlinkat(d->root_fd, tmp, 0); /* after link() or a failure; ENOENT after rename */
    buf_free(&meta);
}

/* COPY: the source's bytes, and its metadata or the request's, in a new
 * file renamed over the destination.  The source's If-Match is checked on
 * the open fd, which holds one version: the bytes copied are the ones whose
 * ETag matched. */
static void do_copy(struct dir_store *d, struct store_req *r)
{
    char tmp[64], path[PATH_LEN];
    struct buf meta = {0};
    struct stat st;

    if (req_path(d, r, r->key, path, sizeof path) < 0)
        return;
    int src = open_object(d, r, r->src_key, "source object", &st);
    if (src < 0)
        return;
    if (r->cond == STORE_IF_MATCH && !etag_ok(d, r, &st, "the source's"))
        goto out;
    if (r->meta_replace)
        meta_encode(r, &meta);
    else if (meta_read_raw(src, &meta) < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "read the source's metadata: %s", strerror(errno));
        goto out;
    }
    if (parents(d, r, path) < 0)
        goto out;
    tmp[0] = '\0';
    if (write_temp(d, r, src, (uint64_t)st.st_size, &meta, tmp, sizeof tmp) == 0)
        install(d, r, tmp, path);
    if (tmp[0])
        unlinkat(d->root_fd, tmp, 0);
out:
    close(src);
    buf_free(&meta);
}

static void do_delete(struct dir_store *d, struct store_req *r)
{
    char dir[PATH_LEN], path[PATH_LEN];
    int lock = -1;

    if (req_path(d, r, r->key, path, sizeof path) < 0)
        return;
    if (r->cond == STORE_IF_MATCH) {
        if ((lock = lock_root(d)) < 0) {
            store_fail(&d->base, r, STORE_EFATAL, "lock .buoy-lock: %s", strerror(errno));
            return;
        }
        if (!etag_matches(d, r, path))
            goto out;
    }
    if (unlinkat(d->root_fd, path, 0) < 0) {
        /* missing, or "a" where "a/..." keys are: no object "a", fine as in S3 */
        if (errno != ENOENT && errno != ENOTDIR && errno != EISDIR)
            store_fail(&d->base, r, errno_err(errno), "unlink: %s", strerror(errno));
        goto out;
    }
    parent_of(path, dir, sizeof dir);
    if (fsync_dirat(d->root_fd, dir) < 0)
        store_fail(&d->base, r, STORE_EFATAL, "fsync directory: %s", strerror(errno));
out:
    unlock_root(lock);
}

struct listing {
    struct store_obj *v;
    size_t n, cap;
    char **pfx;
    size_t npfx, pfxcap;
};

static void add_obj(struct listing *out, char *key, const struct stat *st)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 64;
        out->v = xrealloc(out->v, out->cap * sizeof *out->v);
    }
    memset(&out->v[out->n], 0, sizeof out->v[0]);
    fill_obj(st, &out->v[out->n]);
    out->v[out->n++].key = key;
}

static void add_prefix(struct listing *out, char *p)
{
    if (out->npfx == out->pfxcap) {
        out->pfxcap = out->pfxcap ? out->pfxcap * 2 : 64;
        out->pfx = xrealloc(out->pfx, out->pfxcap * sizeof *out->pfx);
    }
    out->pfx[out->npfx++] = p;
}

/* What a directory entry of rel is: the key it stands for (heap), or NULL
 * for entries that are no object (ours, ".", "..", neither file nor
 * directory).  *dir says it is a directory. */
static char *entry_key(struct dir_store *d, const char *rel, const char *name, struct stat *st,
                       int *dir)
{
    *dir = 0;
    if (name[0] == '.' && (!name[1] || strcmp(name, "..") == 0))
        return NULL;
    int marker = strcmp(name, DIROBJ) == 0;
    if (strncmp(name, ".buoy-", 6) == 0 && !(marker && *rel))
        return NULL;
    char *path = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    if (fstatat(d->root_fd, path, st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !(S_ISREG(st->st_mode) || (S_ISDIR(st->st_mode) && !marker))) {
        free(path);
        return NULL;
    }
    *dir = S_ISDIR(st->st_mode);
    if (marker) { /* "<rel>/.buoy-dirobj" is the key "<rel>/" */
        free(path);
        return xasprintf("%s/", rel);
    }
    return path;
}

/* Adds every object under rel (a directory relative to the root, "" for
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
    int rc = 0, isdir;
    size_t plen = strlen(prefix);
    while (rc == 0 && (de = readdir(dp))) {
        struct stat st;
        char *key = entry_key(d, rel, de->d_name, &st, &isdir);
        if (!key)
            continue;
        size_t klen = strlen(key);
        /* A directory is worth entering when it could hold keys with the prefix. */
        size_t cmp = klen < plen ? klen : plen;
        if (strncmp(key, prefix, cmp) != 0) {
            free(key);
            continue;
        }
        if (isdir) {
            rc = walk(d, key, prefix, out);
            free(key);
        } else if (klen >= plen)
            add_obj(out, key, &st);
        else
            free(key);
    }
    closedir(dp);
    return rc;
}

/* Does the directory rel hold any object, at any depth?  -1 on error. */
static int holds_objects(struct dir_store *d, const char *rel)
{
    int fd = openat(d->root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
    DIR *dp = fdopendir(fd);
    if (!dp) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    int found = 0, isdir;
    while (!found && (de = readdir(dp))) {
        struct stat st;
        char *key = entry_key(d, rel, de->d_name, &st, &isdir);
        if (!key)
            continue;
        found = isdir ? holds_objects(d, key) : 1;
        free(key);
    }
    closedir(dp);
    return found;
}

/* LIST with delimiter "/": one directory, the one the prefix's last '/'
 * ends.  Its files and marker whose keys start with the prefix are
 * objects; its directories that do and hold objects are common prefixes
 * "<dir>/" (S3 rolls "<dir>/" and everything under it into one). */
static int list_level(struct dir_store *d, const char *rel, const char *prefix, struct listing *out)
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
    int rc = 0, isdir;
    size_t plen = strlen(prefix);
    while (rc == 0 && (de = readdir(dp))) {
        struct stat st;
        char *key = entry_key(d, rel, de->d_name, &st, &isdir);
        if (!key)
            continue;
        if (strlen(key) < plen || strncmp(key, prefix, plen) != 0)
            free(key);
        else if (!isdir)
            add_obj(out, key, &st);
        else if ((rc = holds_objects(d, key)) == 1) {
            add_prefix(out, xasprintf("%s/", key));
            free(key);
            rc = 0;
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
    char start[PATH_LEN];
    parent_of(r->key, start, sizeof start);
    int rc = 0;
    if (!dir_part_ok(start))
        rc = 0; /* "x//", "./", ".buoy-tmp/": no object of ours is there */
    else if (r->delim)
        rc = list_level(d, start, r->key, &l);
    else
        rc = walk(d, start, r->key, &l);
    if (rc < 0) {
        store_fail(&d->base, r, STORE_EFATAL, "read directory: %s", strerror(errno));
        store_list_free(l.v, l.n);
        store_prefixes_free(l.pfx, l.npfx);
        return;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_key);
    r->list = l.v;
    r->nlist = l.n;
    r->nprefixes = store_prefixes_sort(l.pfx, l.npfx);
    r->prefixes = l.pfx;
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
        store_fail(&d->base, r, STORE_ENOTFOUND, "no such %sobject",
                   r->op == STORE_COPY ? "source " : "");
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
            case STORE_COPY:
                do_copy(d, r);
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
