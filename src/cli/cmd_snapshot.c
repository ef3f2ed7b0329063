/* cmd_snapshot.c - "buoy snapshot create|list|delete": named, instant,
 * copy-free states of a volume.
 *
 *   create URL NAME         the volume must not be in use on this host (it is
 *                           opened as its writer, flushed, and its map kept)
 *   create MOUNTPOINT NAME  a mounted volume: the daemon takes it, through
 *                           MOUNTPOINT/ctl, between two writes
 *   list URL|MOUNTPOINT     names, when, size of the map (exit 3: no volume)
 *   delete URL NAME         the data only it kept is freed by the next GC;
 *                           refused while a clone (buoy clone) reads it
 *
 * URL@NAME opens a snapshot read-only wherever a URL is taken (buoy mount -r,
 * buoy info, buoy serve -r). */
#include "commands.h"
#include "fe/sys.h"
#include "util/size.h"
#include "vol/ckpt.h"
#include "vol/super.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 1 when target is a directory where a buoy volume is mounted. */
static int is_mount(const char *target)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/stats", target);
    char *t = sys_read_file(p);
    int yes = t && strncmp(t, "buoy_stats ", 11) == 0;
    free(t);
    return yes;
}

#define MAX_FROZEN 16

/* Freezes (FIFREEZE) every filesystem mounted from a loop device on
 * mp/disk (buoy mount --fs made them), so the snapshot holds a clean,
 * consistent filesystem: the freeze writes out everything and, for ext4,
 * checkpoints its journal.  fds[] gets the open directories to thaw;
 * returns how many, or -1 (with the ones frozen so far thawed). */
static int freeze_fs(const char *mp, int fds[MAX_FROZEN])
{
    char disk[PATH_MAX + 8], *loops[MAX_FROZEN], *mounts[MAX_FROZEN];
    snprintf(disk, sizeof disk, "%s/disk", mp);
    int nl = sys_loops_of_file(disk, loops, MAX_FROZEN), n = 0, rc = 0;
    for (int i = 0; i < nl; i++) {
        int nm = sys_mounts_of_dev(loops[i], mounts, MAX_FROZEN);
        for (int k = 0; k < nm; k++) {
            int fd = rc ? -1 : open(mounts[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (!rc && fd < 0)
                rc = cli_error("cannot open %s to freeze it: %s", mounts[k], strerror(errno));
            else if (!rc && ioctl(fd, FIFREEZE, 0) < 0) {
                /* a read-only filesystem cannot change: nothing to freeze */
                if (errno != EROFS && errno != EINVAL && errno != EOPNOTSUPP)
                    rc = cli_error("cannot freeze %s (on %s) for the snapshot: %s", mounts[k],
                                   loops[i], strerror(errno));
                close(fd);
            } else if (!rc && n < MAX_FROZEN)
                fds[n++] = fd;
            free(mounts[k]);
        }
        free(loops[i]);
    }
    if (rc) {
        for (int i = 0; i < n; i++) {
            ioctl(fds[i], FITHAW, 0);
            close(fds[i]);
        }
        return -1;
    }
    return n;
}

static void thaw_fs(int fds[], int n)
{
    for (int i = 0; i < n; i++) {
        if (ioctl(fds[i], FITHAW, 0) < 0)
            cli_error("cannot thaw a filesystem frozen for the snapshot: %s; run fsfreeze -u "
                      "on it",
                      strerror(errno));
        close(fds[i]);
    }
}

static int create_mounted(const char *mp, const char *name)
{
    char p[PATH_MAX + 8], cmd[128];
    int frozen[MAX_FROZEN];
    snprintf(p, sizeof p, "%s/ctl", mp);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_error("%s: %s", p, strerror(errno));
    /* no signal may leave a filesystem frozen between here and the thaw */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int nf = freeze_fs(mp, frozen);
    if (nf < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(fd);
        return EXIT_ERR;
    }
    int n = snprintf(cmd, sizeof cmd, "snapshot %s\n", name);
    ssize_t w = write(fd, cmd, (size_t)n);
    int e = errno;
    close(fd);
    thaw_fs(frozen, nf);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (w == n) {
        printf("snapshot %s of the volume at %s taken\n", name, mp);
        return EXIT_OK;
    }
    if (e == EEXIST)
        return cli_error("a snapshot named %s exists already", name);
    if (e == EINVAL)
        return cli_error("'%s' is not a snapshot name: 1 to %d of A-Z a-z 0-9 . _ -", name,
                         SNAP_NAME_MAX);
    return cli_error("snapshot %s of %s failed: %s (the daemon's log says why)", name, mp,
                     strerror(e));
}

static int create_url(struct cli_opts *o, const char *url, const char *name)
{
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX];
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    vo.read_only = 0;
    vo.gc = 0;
    struct vol *v = vol_open(url, &vo, err, sizeof err);
    if (!v)
        return cli_error("%s", err);
    int rc = vol_snapshot(v, name, err, sizeof err);
    int crc = vol_close(v);
    if (rc)
        return cli_error("snapshot %s of %s: %s", name, url, err);
    if (crc)
        return cli_error("closing %s failed after the snapshot was taken", url);
    printf("snapshot %s of %s taken\n", name, url);
    return EXIT_OK;
}

/* The URL of the volume mounted at mp, from its stats file, or NULL. */
static char *mounted_url(const char *mp)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/stats", mp);
    char *t = sys_read_file(p), *url = NULL;
    char *at = t ? strstr(t, "\nurl ") : NULL;
    if (at) {
        at += 5;
        url = strndup(at, strcspn(at, "\n"));
    }
    free(t);
    return url;
}

static int list(struct cli_opts *o, const char *arg)
{
    /* the names need no key, but a passphrase file given must be there */
    if (o->passphrase_file && access(o->passphrase_file, R_OK) < 0)
        return cli_error("passphrase file %s: %s", o->passphrase_file, strerror(errno));
    char *murl = is_mount(arg) ? mounted_url(arg) : NULL;
    const char *url = murl ? murl : arg;
    struct store *s = cli_open_store(url, o);
    if (!s) {
        free(murl);
        return EXIT_ERR;
    }
    struct store_obj *l, info;
    size_t n;
    char err[STORE_ERRMSG_MAX];
    /* No superblock, no volume: say so rather than list nothing. */
    enum store_err e = store_head(s, SUPER_KEY, &info, err, sizeof err);
    if (e == STORE_OK)
        e = store_list(s, SNAP_PREFIX, &l, &n, err, sizeof err);
    if (e != STORE_OK) {
        store_close(s);
        if (e == STORE_ENOTFOUND)
            cli_error("no volume at %s; check the URL (buoy info URL)", url);
        else
            cli_error("%s", err);
        free(murl);
        return e == STORE_ENOTFOUND ? EXIT_NOTFOUND : EXIT_ERR;
    }
    if (n == 0)
        fprintf(stderr, "buoy: %s has no snapshots\n", url);
    for (size_t i = 0; i < n; i++) {
        char when[40], size[32];
        struct tm tm;
        time_t t = l[i].mtime;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
        size_format(l[i].size, size, sizeof size);
        printf("%-24s %s  map %s\n", l[i].key + strlen(SNAP_PREFIX), when, size);
    }
    store_list_free(l, n);
    store_close(s);
    free(murl);
    return EXIT_OK;
}

static int delete(struct cli_opts *o, const char *url, const char *name)
{
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX];
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    int rc = vol_snapshot_delete(url, name, &vo, err, sizeof err);
    if (rc == -ENOENT)
        return cli_error("%s", err), EXIT_NOTFOUND;
    if (rc == -EINVAL)
        return cli_error("%s", err), EXIT_USAGE;
    if (rc == -EBUSY)
        return cli_error("%s; delete %s first", err, "the clones");
    if (rc)
        return cli_error("%s", err);
    printf("snapshot %s deleted; GC frees what only it kept\n", name);
    return EXIT_OK;
}

int cmd_snapshot(struct cli_opts *o, int argc, char **argv)
{
    const char *verb = argv[0];
    if (strcmp(verb, "list") == 0 && argc == 2)
        return list(o, argv[1]);
    if (strcmp(verb, "create") == 0 && argc == 3)
        return is_mount(argv[1]) ? create_mounted(argv[1], argv[2])
                                 : create_url(o, argv[1], argv[2]);
    if (strcmp(verb, "delete") == 0 && argc == 3)
        return delete(o, argv[1], argv[2]);
    cli_error("snapshot: expected create URL|MOUNTPOINT NAME, list URL|MOUNTPOINT or delete URL "
              "NAME");
    return EXIT_USAGE;
}
