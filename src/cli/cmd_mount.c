/* cmd_mount.c - "buoy mount URL MOUNTPOINT": serve a volume as MOUNTPOINT/disk.
 *
 * Without -f the command forks a daemon and waits until it has opened the
 * volume and mounted FUSE, so every failure is a one-line error and a
 * non-zero exit here, with nothing left mounted.  With --fs TYPE it then
 * attaches the disk to a loop device (direct I/O), makes the filesystem if
 * the disk has none, and mounts it at --fs-dir; a failed step undoes the ones
 * before it, in reverse order.  buoy umount undoes them all. */
#include "commands.h"
#include "fe/fuse.h"
#include "fe/sys.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct mount_job {
    const char *url;
    char mp[PATH_MAX];
    char fs_dir[PATH_MAX];
    struct cli_opts *o;
    pid_t daemon; /* 0 in the foreground */
};

/* The error goes to the waiting parent (ready >= 0) or to stderr. */
__attribute__((format(printf, 2, 3))) static int report(int ready, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ready >= 0) {
        ssize_t w = write(ready, msg, strlen(msg));
        (void)w;
    } else
        cli_error("%s", msg);
    return EXIT_ERR;
}

/* Unmounts the FUSE mount (the daemon then closes the volume and exits).
 * 0, or -1 with the reason in err. */
int cli_unmount_fuse(const char *mp, int lazy, char *err, size_t errlen)
{
    /* a loop device just detached, or udev probing one, can hold the disk
     * file for a moment (longer on a loaded machine): retry a busy unmount
     * for up to ten seconds */
    for (int i = 0; i < 100; i++) {
        if (umount2(mp, lazy ? MNT_DETACH : 0) == 0)
            return 0;
        if (errno != EBUSY)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (errno != EPERM) {
        snprintf(err, errlen, "cannot unmount %s: %s", mp, strerror(errno));
        return -1;
    }
    char *av[] = {"fusermount3", "-u", lazy ? "-z" : (char *)mp, lazy ? (char *)mp : NULL, NULL};
    char why[512];
    if (sys_run(av, NULL, 0, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot unmount %s: %s", mp, why);
        return -1;
    }
    return 0;
}

/* 1 when pid is gone or a zombie (exited, not yet reaped by its parent). */
static int exited(int pid)
{
    if (waitpid(pid, NULL, WNOHANG) == pid || (kill(pid, 0) < 0 && errno == ESRCH))
        return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return p && p[1] == ' ' && p[2] == 'Z';
}

/* Waits up to two minutes for pid to exit.  After the unmount the daemon
 * closes the volume and exits; if it has not after 3 s (a copy of the mount
 * in another mount namespace keeps FUSE alive), SIGTERM makes it: everything
 * was uploaded already, it only writes its checkpoint. */
void cli_wait_exit(int pid)
{
    for (int i = 0; i < 12000 && pid > 0; i++) {
        if (exited(pid))
            return;
        if (i == 300)
            kill(pid, SIGTERM);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* --fs: loop device, filesystem (made on first use only), mount.  0, or
 * -1 with every step undone but the FUSE mount (the caller's). */
static int setup_fs(struct mount_job *j, char *err, size_t errlen)
{
    char disk[PATH_MAX + 8], dev[128], out[256], why[1024];
    int ro = j->o->read_only;
    snprintf(disk, sizeof disk, "%s/disk", j->mp);
    char *attach[] = {"losetup", "--direct-io=on", "--find", "--show", ro ? "--read-only" : disk,
                      ro ? disk : NULL, NULL};
    if (sys_run(attach, dev, sizeof dev, why, sizeof why) != 0 || strncmp(dev, "/dev/", 5) != 0) {
        snprintf(err, errlen, "cannot attach %s to a loop device: %s", disk, why);
        return -1;
    }
    char *probe[] = {"blkid", "-p", "-o", "value", "-s", "TYPE", dev, NULL};
    int rc = sys_run(probe, out, sizeof out, why, sizeof why);
    if (rc == 0 && out[0] && strcmp(out, j->o->fs) != 0) {
        snprintf(err, errlen, "the volume holds a %s filesystem, not %s; use --fs %s", out,
                 j->o->fs, out);
        goto detach;
    }
    if (rc != 0 || !out[0]) { /* blkid exits 2 when it finds nothing */
        if (ro) {
            snprintf(err, errlen, "the volume has no filesystem and --read-only cannot make one");
            goto detach;
        }
        char mkfs[64];
        snprintf(mkfs, sizeof mkfs, "mkfs.%s", j->o->fs);
        fprintf(stderr, "buoy: making a new %s filesystem on %s\n", j->o->fs, j->url);
        char *make[] = {mkfs, "-q", dev, NULL};
        if (sys_run(make, NULL, 0, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s failed: %s", mkfs, why);
            goto detach;
        }
    }
    char *mnt[] = {"mount", "-t", (char *)j->o->fs, "-o", ro ? "ro" : "rw", dev, j->fs_dir, NULL};
    if (sys_run(mnt, NULL, 0, why, sizeof why) != 0) {
        /* A read-only device cannot replay a journal: a filesystem that
         * needs recovery (a snapshot taken without a freeze, a copy of a
         * crashed volume) is mounted as it is on disk, without it. */
        const char *norec = !ro                             ? NULL
                            : strncmp(j->o->fs, "ext", 3) == 0 ? "ro,noload"
                            : strcmp(j->o->fs, "xfs") == 0   ? "ro,norecovery"
                                                             : NULL;
        char why2[1024];
        mnt[4] = (char *)norec;
        if (!norec || sys_run(mnt, NULL, 0, why2, sizeof why2) != 0) {
            snprintf(err, errlen, "cannot mount %s at %s: %s", dev, j->fs_dir, why);
            goto detach;
        }
        fprintf(stderr,
                "buoy: %s needs journal recovery, which a read-only mount cannot do: mounted "
                "with %s, so what only its journal holds is not seen\n",
                j->url, norec);
    }
    return 0;
detach:;
    char *det[] = {"losetup", "-d", dev, NULL};
    sys_run(det, NULL, 0, why, sizeof why);
    return -1;
}

static void *fs_thread(void *arg)
{
    struct mount_job *j = arg;
    char err[1024];
    if (setup_fs(j, err, sizeof err) < 0) {
        log_error("%s; stopping", err);
        kill(getpid(), SIGTERM);
    }
    return NULL;
}

/* The daemon (or the foreground process): open, mount, serve, close. */
static int serve(struct mount_job *j, struct vol_opts *vo, int ready)
{
    struct cli_opts *o = j->o;
    char err[STORE_ERRMSG_MAX];
    if (cli_log_start(o, ready >= 0, err, sizeof err) < 0)
        return report(ready, "%s", err);
    struct vol *v = vol_open(j->url, vo, err, sizeof err);
    if (!v)
        return report(ready, "%s", err);
    struct fe_fuse_opts fo = {.mountpoint = j->mp, .url = j->url, .read_only = o->read_only,
                              .allow_other = o->allow_other};
    if (fe_fuse_mount(v, &fo, err, sizeof err) < 0) {
        vol_close(v);
        return report(ready, "%s", err);
    }
    if (o->pid_file) {
        FILE *f = fopen(o->pid_file, "we");
        if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
            log_warn("--pid-file %s: %s", o->pid_file, strerror(errno));
    }
    if (ready >= 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        if (o->log_file)
            log_file_takes_stderr(); /* what libfuse prints goes there too */
        else
            dup2(null, 2);
        close(null);
        if (write(ready, "ok", 2) != 2)
            log_warn("cannot tell the parent we are ready");
        close(ready);
    }
    store_retry_unreachable(1); /* serving: ride out a store outage, as a daemon must */
    log_notice("serving %s at %s/disk%s", j->url, j->mp, o->read_only ? ", read-only" : "");
    pthread_t fs;
    int fs_started = ready < 0 && o->fs && pthread_create(&fs, NULL, fs_thread, j) == 0;
    int rc = fe_fuse_loop();
    if (fs_started)
        pthread_join(fs, NULL);
    log_notice("unmounted %s; closing %s", j->mp, j->url);
    char why[1800];
    if (vol_close_report(v, why, sizeof why) != 0) { /* the engine logged what is where */
        log_error("closing %s failed: %s", j->url, why);
        rc = -1;
    } else
        log_notice("closed %s%s", j->url,
                   o->read_only ? "" : ": everything written is in the store");
    if (o->pid_file)
        unlink(o->pid_file);
    return rc ? EXIT_ERR : EXIT_OK;
}

static int check_dir(const char *what, const char *arg, char out[PATH_MAX])
{
    struct stat st;
    char fstype[64] = "";
    if (!realpath(arg, out) || stat(out, &st) < 0)
        return cli_error("%s %s: %s", what, arg, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_error("%s %s is not a directory", what, arg);
    if (sys_is_mountpoint(out, fstype, sizeof fstype) == 1)
        return cli_error("%s %s is busy: a %s filesystem is mounted there; unmount it first", what,
                         out, fstype);
    return 0;
}

int cmd_mount(struct cli_opts *o, int argc, char **argv)
{
    static struct mount_job j;
    char cache_dir[PATH_MAX];
    struct vol_opts vo;
    j.url = argv[0];
    j.o = o;
    const char *at = strrchr(j.url, '@');
    if (at && !strchr(at, '/'))
        o->read_only = 1; /* URL@NAME: a snapshot */
    if (check_dir("mount point", argv[1], j.mp))
        return EXIT_ERR;
    if (o->fs) {
        if (!o->fs_dir)
            return cli_error("--fs %s needs --fs-dir DIR: where to mount the filesystem", o->fs);
        if (check_dir("--fs-dir", o->fs_dir, j.fs_dir))
            return EXIT_ERR;
        if (strcmp(j.fs_dir, j.mp) == 0)
            return cli_error("--fs-dir must not be the mount point itself");
        if (strspn(o->fs, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(o->fs))
            return cli_error("--fs takes a filesystem type such as ext4 or xfs, not '%s'", o->fs);
    } else if (o->fs_dir)
        return cli_error("--fs-dir needs --fs TYPE");
    if (cli_vol_opts(o, &vo, cache_dir, sizeof cache_dir))
        return EXIT_ERR;
    int rc = cli_log_check("mount", o, !o->foreground);
    if (rc)
        return rc;
    if (o->foreground)
        return serve(&j, &vo, -1);

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return cli_error("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return cli_error("fork: %s", strerror(errno));
    if (pid == 0) {
        close(ready[0]);
        setsid();
        _exit(serve(&j, &vo, ready[1]));
    }
    close(ready[1]);
    char msg[1100];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof msg - 1 && ((r = read(ready[0], msg + n, sizeof msg - 1 - n)) > 0 ||
                                  (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    msg[n] = '\0';
    close(ready[0]);
    if (strcmp(msg, "ok") != 0) {
        waitpid(pid, NULL, 0);
        return cli_error("%s", msg[0] ? msg : "the daemon died before it was ready");
    }
    j.daemon = pid;
    cli_log_warn_lost("mount", o, 1);
    if (o->fs) {
        char err[1200];
        if (setup_fs(&j, err, sizeof err) < 0) {
            char why[600];
            if (cli_unmount_fuse(j.mp, 0, why, sizeof why) == 0)
                cli_wait_exit(pid);
            else
                cli_error("%s", why);
            return cli_error("%s; %s is unmounted again", err, j.mp);
        }
    }
    return EXIT_OK;
}
