/* fuse.c - the FUSE frontend (see fuse.h): libfuse3's high-level API with
 * paths, since there are only three of them.
 *
 * The disk file is opened with direct_io, so the kernel's page cache never
 * holds a second copy of what the engine caches, every read and write
 * reaches the engine, and O_DIRECT opens (losetup --direct-io) work.  The
 * stats file is generated when it is opened and served from that buffer, so
 * one read(2) sequence sees one consistent set of numbers. */
#define FUSE_USE_VERSION 312
#include "fuse.h"
#include "statsfile.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_WRITE (1u << 20)

enum which { F_NONE, F_ROOT, F_DISK, F_STATS, F_CTL };

static struct {
    struct vol *v;
    struct fe_fuse_opts o;
    struct fuse *fuse;
    uid_t uid;
    gid_t gid;
    time_t mounted;
    _Atomic uint64_t max_write_seen, flushes, fua_writes, trims;
} g;

static enum which which(const char *path)
{
    if (strcmp(path, "/") == 0)
        return F_ROOT;
    if (strcmp(path, "/disk") == 0)
        return F_DISK;
    if (strcmp(path, "/stats") == 0)
        return F_STATS;
    if (strcmp(path, "/ctl") == 0)
        return F_CTL;
    return F_NONE;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    conn->max_write = MAX_WRITE;
    conn->max_readahead = MAX_WRITE;
    cfg->use_ino = 1;
    cfg->attr_timeout = 1;
    cfg->entry_timeout = 1;
    cfg->kernel_cache = 0;
    return NULL;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    memset(st, 0, sizeof *st);
    st->st_uid = g.uid;
    st->st_gid = g.gid;
    st->st_atime = st->st_mtime = st->st_ctime = g.mounted;
    st->st_blksize = vol_block_size(g.v);
    switch (which(path)) {
    case F_ROOT:
        st->st_ino = 1;
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    case F_DISK:
        st->st_ino = 2;
        st->st_mode = S_IFREG | (g.o.read_only ? 0400 : 0600);
        st->st_nlink = 1;
        st->st_size = (off_t)vol_size(g.v);
        st->st_blocks = st->st_size / 512;
        st->st_mtime = time(NULL);
        return 0;
    case F_STATS:
        st->st_ino = 3;
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = 0; /* generated at open; read it to the end */
        return 0;
    case F_CTL:
        st->st_ino = 4;
        st->st_mode = S_IFREG | 0200;
        st->st_nlink = 1;
        return 0;
    default:
        return -ENOENT;
    }
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    if (which(path) != F_ROOT)
        return -ENOTDIR;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    fill(buf, "disk", NULL, 0, 0);
    fill(buf, "stats", NULL, 0, 0);
    fill(buf, "ctl", NULL, 0, 0);
    return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    int acc = fi->flags & O_ACCMODE;
    switch (which(path)) {
    case F_DISK:
        if (g.o.read_only && acc != O_RDONLY)
            return -EROFS;
        fi->direct_io = 1;
        fi->keep_cache = 0;
        return 0;
    case F_STATS: {
        if (acc != O_RDONLY)
            return -EACCES;
        struct buf *b = xcalloc(1, sizeof *b);
        statsfile_format(g.v, g.o.url, (int)getpid(), b);
        buf_printf(b, "fuse_max_write_bytes %" PRIu64 "\n", (uint64_t)g.max_write_seen);
        buf_printf(b, "fuse_flushes %" PRIu64 "\n", (uint64_t)g.flushes);
        buf_printf(b, "fuse_fua_writes %" PRIu64 "\n", (uint64_t)g.fua_writes);
        buf_printf(b, "fuse_trims %" PRIu64 "\n", (uint64_t)g.trims);
        fi->fh = (uint64_t)(uintptr_t)b;
        fi->direct_io = 1;
        return 0;
    }
    case F_CTL:
        if (acc == O_RDONLY)
            return -EACCES;
        fi->direct_io = 1;
        return 0;
    case F_ROOT:
        return -EISDIR;
    default:
        return -ENOENT;
    }
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    if (which(path) == F_STATS && fi->fh) {
        struct buf *b = (struct buf *)(uintptr_t)fi->fh;
        buf_free(b);
        free(b);
    }
    return 0;
}

static int op_read(const char *path, char *out, size_t len, off_t off, struct fuse_file_info *fi)
{
    if (which(path) == F_STATS) {
        struct buf *b = (struct buf *)(uintptr_t)fi->fh;
        if ((size_t)off >= b->len)
            return 0;
        size_t n = b->len - (size_t)off < len ? b->len - (size_t)off : len;
        memcpy(out, b->p + off, n);
        return (int)n;
    }
    uint64_t size = vol_size(g.v);
    if (off < 0)
        return -EINVAL;
    if ((uint64_t)off >= size)
        return 0;
    if (len > size - (uint64_t)off)
        len = (size_t)(size - (uint64_t)off);
    int rc = vol_read(g.v, out, (uint64_t)off, len);
    return rc ? rc : (int)len;
}

/* MOUNTPOINT/ctl takes one command per write: "snapshot NAME". */
static int ctl_command(const char *data, size_t len)
{
    char cmd[128], err[512];
    if (len >= sizeof cmd)
        return -EINVAL;
    memcpy(cmd, data, len);
    cmd[len] = '\0';
    cmd[strcspn(cmd, "\n")] = '\0';
    if (strncmp(cmd, "snapshot ", 9) == 0) {
        int rc = vol_snapshot(g.v, cmd + 9, err, sizeof err);
        if (rc)
            log_error("snapshot %s: %s", cmd + 9, err);
        else
            log_info("snapshot %s taken", cmd + 9);
        return rc ? rc : (int)len;
    }
    return -EINVAL;
}

static int op_write(const char *path, const char *data, size_t len, off_t off,
                    struct fuse_file_info *fi)
{
    if (which(path) == F_CTL)
        return g.o.read_only ? -EROFS : ctl_command(data, len);
    if (which(path) != F_DISK)
        return -EACCES;
    uint64_t size = vol_size(g.v);
    if (off < 0 || (uint64_t)off >= size)
        return -ENOSPC; /* the disk does not grow */
    if (len > size - (uint64_t)off)
        len = (size_t)(size - (uint64_t)off);
    int fua = (fi->flags & (O_DSYNC | O_SYNC)) != 0;
    uint64_t seen = g.max_write_seen;
    while (len > seen && !atomic_compare_exchange_weak(&g.max_write_seen, &seen, len))
        ;
    if (fua)
        g.fua_writes++;
    int rc = vol_write(g.v, data, (uint64_t)off, len, fua);
    return rc ? rc : (int)len;
}

static int flush_disk(void)
{
    if (g.o.read_only)
        return 0;
    g.flushes++;
    return vol_flush(g.v);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    if (which(path) != F_DISK || (fi->flags & O_ACCMODE) == O_RDONLY)
        return 0;
    return flush_disk();
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    return which(path) == F_DISK ? flush_disk() : 0;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
    if (which(path) != F_DISK)
        return -EOPNOTSUPP;
    if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > vol_size(g.v))
        return mode & FALLOC_FL_KEEP_SIZE && !(mode & FALLOC_FL_PUNCH_HOLE) ? 0 : -EINVAL;
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
        g.trims++;
        return vol_trim(g.v, (uint64_t)off, (uint64_t)len);
    }
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        return -EOPNOTSUPP;
    return 0; /* allocating inside the disk: it is all there already */
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (which(path) != F_DISK)
        return -EACCES;
    return (uint64_t)size == vol_size(g.v) ? 0 : -EPERM; /* a disk keeps its size */
}

static int op_statfs(const char *path, struct statvfs *st)
{
    memset(st, 0, sizeof *st);
    st->f_bsize = st->f_frsize = vol_block_size(g.v);
    st->f_blocks = vol_size(g.v) / st->f_bsize;
    st->f_namemax = 255;
    st->f_files = 3;
    return 0;
}

static const struct fuse_operations ops = {
    .init = op_init,
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .truncate = op_truncate,
    .statfs = op_statfs,
};

int fe_fuse_mount(struct vol *v, const struct fe_fuse_opts *o, char *err, size_t errlen)
{
    g.v = v;
    g.o = *o;
    g.uid = getuid();
    g.gid = getgid();
    g.mounted = time(NULL);
    char *mopts = xasprintf("fsname=buoy:%s,subtype=buoy%s%s", o->url,
                            o->allow_other ? ",allow_other" : "", o->read_only ? ",ro" : "");
    /* commas in the URL would split the option: replace them */
    for (char *p = mopts + strlen("fsname=buoy:"); *p && p < mopts + strlen("fsname=buoy:") +
                                                           strlen(o->url); p++)
        if (*p == ',')
            *p = '_';
    char *argv[] = {"buoy", "-o", mopts, o->debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
    g.fuse = fuse_new(&args, &ops, sizeof ops, NULL);
    fuse_opt_free_args(&args);
    free(mopts);
    if (!g.fuse) {
        snprintf(err, errlen, "cannot start FUSE (is /dev/fuse there and fuse3 installed?)");
        return -1;
    }
    if (fuse_mount(g.fuse, o->mountpoint) != 0) {
        snprintf(err, errlen, "cannot mount FUSE at %s (see the message above)", o->mountpoint);
        fuse_destroy(g.fuse);
        g.fuse = NULL;
        return -1;
    }
    return 0;
}

int fe_fuse_loop(void)
{
    struct fuse_session *se = fuse_get_session(g.fuse);
    if (fuse_set_signal_handlers(se) != 0) {
        log_error("cannot install signal handlers");
        return -1;
    }
    log_reopen_on_sighup(); /* not libfuse's unmount: logrotate sends it */
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_idle_threads(cfg, 8);
    fuse_loop_cfg_set_max_threads(cfg, 32);
    int rc = fuse_loop_mt(g.fuse, cfg);
    fuse_loop_cfg_destroy(cfg);
    fuse_remove_signal_handlers(se);
    /* from here the volume is being closed: a late SIGTERM (buoy umount
     * sends one when the loop does not end) must not cut that short */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    fuse_unmount(g.fuse);
    fuse_destroy(g.fuse);
    g.fuse = NULL;
    if (rc < 0)
        log_error("the FUSE loop failed: %s", strerror(-rc));
    return rc < 0 ? -1 : 0;
}
