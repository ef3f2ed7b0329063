/* cmd_umount.c - "buoy umount MOUNTPOINT": undo buoy mount, in reverse.
 *
 *   1. unmount every filesystem mounted from a loop device on MOUNTPOINT/disk
 *      and detach the loop devices (buoy mount --fs made them);
 *   2. fsync MOUNTPOINT/disk: the engine uploads everything written, while
 *      this command shows how much is left (from MOUNTPOINT/stats);
 *   3. unmount FUSE and wait for the daemon to write its checkpoint and exit.
 *
 * When a step fails nothing after it is done, and the error says what holds
 * it up.  A mount whose daemon died (kill -9) is cleaned up the same way,
 * lazily; what it had not uploaded is in the journal, and the next mount
 * replays it. */
#include "commands.h"
#include "fe/sys.h"
#include "util/size.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOOPS 16

struct drain {
    int fd;
    int rc, err, done;
};

static void *fsync_thread(void *arg)
{
    struct drain *d = arg;
    d->rc = fsync(d->fd);
    d->err = errno;
    __atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static uint64_t stat_u64(const char *stats, const char *name)
{
    char v[64];
    return sys_stat_value(stats, name, v, sizeof v) == 0 ? strtoull(v, NULL, 10) : 0;
}

/* Step 2: 0, or EXIT_ERR when the engine could not upload everything. */
static int drain(const char *mp)
{
    char disk[PATH_MAX + 8], statsf[PATH_MAX + 8];
    snprintf(disk, sizeof disk, "%s/disk", mp);
    snprintf(statsf, sizeof statsf, "%s/stats", mp);
    struct drain d = {.fd = open(disk, O_RDWR | O_CLOEXEC)};
    if (d.fd < 0) {
        if (errno == EROFS || errno == EACCES)
            return 0; /* a read-only mount has nothing to upload */
        return cli_error("cannot open %s: %s", disk, strerror(errno));
    }
    pthread_t t;
    if (pthread_create(&t, NULL, fsync_thread, &d) != 0) {
        close(d.fd);
        return cli_error("cannot start a thread");
    }
    int tty = isatty(2), shown = 0;
    time_t last = time(NULL);
    for (int tick = 0; !__atomic_load_n(&d.done, __ATOMIC_ACQUIRE); tick++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        if (tick < 100 || tick % 25 || __atomic_load_n(&d.done, __ATOMIC_ACQUIRE))
            continue; /* quick drains print nothing; then every 250 ms */
        char *st = sys_read_file(statsf);
        if (!st)
            continue;
        char left[32], up[32];
        size_format(stat_u64(st, "pending_bytes"), left, sizeof left);
        size_format(stat_u64(st, "uploaded_bytes"), up, sizeof up);
        free(st);
        if (tty) {
            fprintf(stderr, "\rbuoy: %s: uploading, %s left (%s uploaded so far)   ", mp, left,
                    up);
            shown = 1;
        } else if (time(NULL) - last >= 5) {
            fprintf(stderr, "buoy: %s: uploading, %s left (%s uploaded so far)\n", mp, left, up);
            last = time(NULL);
        }
    }
    pthread_join(t, NULL);
    close(d.fd);
    if (shown)
        fputc('\n', stderr);
    if (d.rc < 0)
        return cli_error("%s: the upload failed (%s); nothing is lost: the data stays in the "
                         "local journal; fix the store and run buoy umount again",
                         mp, strerror(d.err));
    return 0;
}

/* After losetup -d, a loop device that someone (udev's probe, say) still
 * has open lingers, holding the disk file and so the FUSE mount, until its
 * last user closes it: wait up to 30 s for the loops on disk to go. */
static void wait_loops_gone(const char *disk)
{
    char *loops[MAX_LOOPS];
    for (int i = 0; i < 300; i++) {
        int n = sys_loops_of_file(disk, loops, MAX_LOOPS);
        for (int k = 0; k < n; k++)
            free(loops[k]);
        if (n <= 0)
            return;
        if (i == 50)
            fprintf(stderr, "buoy: waiting for the loop device on %s to be released\n", disk);
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Step 1. */
static int unmount_loops(const char *mp, int dead)
{
    char disk[PATH_MAX + 8], *loops[MAX_LOOPS], why[512];
    snprintf(disk, sizeof disk, "%s/disk", mp);
    int n = sys_loops_of_file(disk, loops, MAX_LOOPS), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *mounts[MAX_LOOPS];
        int m = sys_mounts_of_dev(loops[i], mounts, MAX_LOOPS);
        for (int k = 0; k < m; k++) {
            if (!rc && umount2(mounts[k], dead ? MNT_DETACH : 0) < 0)
                rc = cli_error("cannot unmount %s (on %s): %s; close what uses it (fuser -vm %s)",
                               mounts[k], loops[i], strerror(errno), mounts[k]);
            free(mounts[k]);
        }
        char *det[] = {"losetup", "-d", loops[i], NULL};
        if (!rc && sys_run(det, NULL, 0, why, sizeof why) != 0)
            rc = cli_error("cannot detach %s: %s", loops[i], why);
    }
    for (int i = 0; i < n; i++)
        free(loops[i]);
    if (n > 0 && !rc)
        wait_loops_gone(disk);
    return rc;
}

int cmd_umount(struct cli_opts *o, int argc, char **argv)
{
    char mp[PATH_MAX], fstype[64] = "", why[600];
    if (!realpath(argv[0], mp)) {
        /* a dead FUSE mount cannot be stat'ed: take the path as given */
        if (errno != ENOTCONN)
            return cli_error("%s: %s", argv[0], strerror(errno));
        if (argv[0][0] == '/')
            snprintf(mp, sizeof mp, "%s", argv[0]);
        else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd))
                return cli_error("getcwd: %s", strerror(errno));
            snprintf(mp, sizeof mp, "%s/%s", cwd, argv[0]);
        }
        size_t l = strlen(mp);
        while (l > 1 && mp[l - 1] == '/')
            mp[--l] = '\0';
    }
    int is = sys_is_mountpoint(mp, fstype, sizeof fstype);
    if (is != 1)
        return cli_error("%s is not mounted", mp);
    if (strcmp(fstype, "fuse.buoy") != 0)
        return cli_error("%s is not a buoy mount (it is %s)", mp, fstype);
    char statsf[PATH_MAX + 8];
    snprintf(statsf, sizeof statsf, "%s/stats", mp);
    char *st = sys_read_file(statsf);
    int dead = st == NULL;
    int pid = st ? (int)stat_u64(st, "pid") : 0;
    free(st);
    if (dead)
        fprintf(stderr, "buoy: the process serving %s is gone; cleaning up its mounts (what it "
                        "had not uploaded is in its journal, replayed at the next mount)\n", mp);
    if (unmount_loops(mp, dead) || (!dead && drain(mp)))
        return EXIT_ERR;
    if (cli_unmount_fuse(mp, dead, why, sizeof why) < 0)
        return cli_error("%s", why);
    if (pid > 0)
        cli_wait_exit(pid);
    return EXIT_OK;
}
