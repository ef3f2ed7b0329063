/* cmd_umount.c - "buoy umount MOUNTPOINT": undo buoy mount, in reverse.
 * MOUNTPOINT may also be the --fs-dir of buoy mount --fs.
 *
 *   1. unmount every filesystem mounted from a loop device on MOUNTPOINT/disk
 *      and detach the loop devices (buoy mount --fs made them);
 *   2. fsync MOUNTPOINT/disk: the engine uploads everything written, while
 *      this command shows how much is left (from MOUNTPOINT/stats);
 *   3. unmount FUSE and wait for the daemon to write its checkpoint and exit.
 *
 * When a step fails nothing after it is done, and the error says what holds
 * it up.  When the upload fails (the volume is in its error state, which
 * does not go away), the error says, from the daemon's stats, exactly what
 * is not in the store and where it is: in the journal, which the next mount
 * with that cache dir replays, or only in the daemon's memory (a journal
 * that was removed); --force then unmounts anyway and says what it did not
 * upload.  A mount whose daemon died (kill -9) is cleaned up the same way,
 * lazily, and the next mount with its cache dir replays its journal. */
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

/* Step 2: 0; 1 when the engine could not upload everything (its stats say
 * what is left); -1 with the error printed when the disk cannot be
 * opened. */
static int drain(const char *mp)
{
    char disk[PATH_MAX + 8], statsf[PATH_MAX + 8];
    snprintf(disk, sizeof disk, "%s/disk", mp);
    snprintf(statsf, sizeof statsf, "%s/stats", mp);
    struct drain d = {.fd = open(disk, O_RDWR | O_CLOEXEC)};
    if (d.fd < 0) {
        if (errno == EROFS || errno == EACCES)
            return 0; /* a read-only mount has nothing to upload */
        cli_error("cannot open %s: %s", disk, strerror(errno));
        return -1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, fsync_thread, &d) != 0) {
        close(d.fd);
        cli_error("cannot start a thread");
        return -1;
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
    return d.rc < 0 ? 1 : 0;
}

/* What the daemon says is not in the store, from its stats file st. */
struct left {
    int known, any, in_journal, lease_lost, journal_lost;
    char bytes[32], since[40], reason[600], note[1200], jdir[PATH_MAX];
};

static void read_left(const char *st, struct left *l)
{
    char v[64];
    memset(l, 0, sizeof *l);
    if (!st || sys_stat_value(st, "unsaved", v, sizeof v) < 0)
        return; /* a daemon older than these lines */
    l->known = 1;
    l->any = atoi(v);
    l->in_journal = sys_stat_value(st, "unsaved_in_journal", v, sizeof v) == 0 && atoi(v);
    l->lease_lost = sys_stat_value(st, "lease_lost", v, sizeof v) == 0 && atoi(v);
    l->journal_lost = sys_stat_value(st, "journal_lost", v, sizeof v) == 0 && atoi(v);
    size_format(stat_u64(st, "unsaved_bytes"), l->bytes, sizeof l->bytes);
    time_t t = (time_t)stat_u64(st, "unsaved_since");
    struct tm tm;
    if (t)
        strftime(l->since, sizeof l->since, " since %Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
    if (sys_stat_value(st, "error_reason", l->reason, sizeof l->reason) < 0)
        snprintf(l->reason, sizeof l->reason, "the upload failed");
    if (sys_stat_value(st, "unsaved_note", l->note, sizeof l->note) < 0)
        l->note[0] = '\0';
    if (sys_stat_value(st, "journal_dir", l->jdir, sizeof l->jdir) < 0)
        l->jdir[0] = '\0';
}

/* The drain failed: says why, what is not in the store, and what --force
 * would do about it. */
static void tell_failed(const char *mp, const struct left *l, int force)
{
    if (!l->known) {
        cli_error("%s: the upload failed and the daemon does not say what is left; %s", mp,
                  force ? "unmounting anyway" : "buoy umount --force unmounts anyway");
        return;
    }
    const char *then =
        force ? "unmounting anyway (--force)"
        : !l->any ? "buoy umount --force unmounts it"
        : l->in_journal
            ? "buoy umount --force unmounts it and leaves them to the journal"
            : "copy the disk now to keep them (it still reads them: dd if=MP/disk of=FILE bs=1M), "
              "then buoy umount --force unmounts it";
    char t[300];
    snprintf(t, sizeof t, "%s", then);
    char *m = strstr(t, "MP/disk");
    if (m) { /* name the real disk file */
        char rest[300];
        snprintf(rest, sizeof rest, "%s", m + 2);
        snprintf(m, sizeof t - (size_t)(m - t), "%s%s", mp, rest);
    }
    cli_error("%s: the volume is in its error state (%s); %s; %s", mp, l->reason, l->note, t);
}

/* After --force: what was not uploaded, and where it is.  The exit status:
 * 0 when everything acknowledged is in the store or in the journal. */
static int tell_forced(const char *mp, const struct left *l)
{
    if (!l->known) {
        fprintf(stderr, "buoy: %s: unmounted without the final upload\n", mp);
        return EXIT_ERR;
    }
    if (!l->any && !l->lease_lost) {
        fprintf(stderr, "buoy: %s: unmounted; nothing is lost: everything written is in the "
                        "store\n", mp);
        return EXIT_OK;
    }
    if (!l->any) {
        fprintf(stderr, "buoy: %s: unmounted; everything written was uploaded, but the lease "
                        "was lost: what was uploaded after another writer took over is not "
                        "part of the volume\n", mp);
        return EXIT_ERR;
    }
    if (l->in_journal) {
        fprintf(stderr, "buoy: %s: unmounted without uploading %s written%s: they are in the "
                        "journal in %s, which the next mount with this cache dir replays%s\n",
                mp, l->bytes, l->since, l->jdir,
                l->lease_lost ? " unless another writer has written the volume since" : "");
        return l->lease_lost ? EXIT_ERR : EXIT_OK;
    }
    if (l->journal_lost)
        fprintf(stderr, "buoy: %s: unmounted without uploading %s written%s: they were in no "
                        "journal and are lost\n", mp, l->bytes, l->since);
    else
        fprintf(stderr, "buoy: %s: unmounted without uploading %s written%s: a write or sync of "
                        "their journal in %s failed, so what of them the next mount with this "
                        "cache dir replays is not known\n", mp, l->bytes, l->since, l->jdir);
    return EXIT_ERR;
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
    if (is != 1 || strcmp(fstype, "fuse.buoy") != 0) {
        /* the --fs-dir of buoy mount --fs: the mount it belongs to */
        char bmp[PATH_MAX], fsdir[PATH_MAX];
        if (sys_buoy_mount_of(mp, bmp, sizeof bmp, fsdir, sizeof fsdir)) {
            if (strcmp(fsdir, mp) != 0)
                return cli_error("%s is inside the filesystem of the buoy mount %s (mounted at "
                                 "%s); to unmount it, run buoy umount %s",
                                 mp, bmp, fsdir, bmp);
            snprintf(mp, sizeof mp, "%s", bmp);
        } else if (is != 1)
            return cli_error("%s is not mounted", mp);
        else
            return cli_error("%s is not a buoy mount (it is %s)", mp, fstype);
    }
    char statsf[PATH_MAX + 8];
    snprintf(statsf, sizeof statsf, "%s/stats", mp);
    char *st = sys_read_file(statsf);
    int dead = st == NULL;
    int pid = st ? (int)stat_u64(st, "pid") : 0;
    free(st);
    if (dead)
        fprintf(stderr, "buoy: the process serving %s is gone; cleaning up its mounts (the next "
                        "mount with its cache dir replays its journal: what it had written but "
                        "not uploaded)\n", mp);
    if (unmount_loops(mp, dead))
        return EXIT_ERR;
    int drained = dead ? 0 : drain(mp);
    struct left l;
    if (drained < 0)
        return EXIT_ERR;
    if (drained) {
        char *left = sys_read_file(statsf);
        read_left(left, &l);
        free(left);
        tell_failed(mp, &l, o->force);
        if (!o->force)
            return EXIT_ERR;
    }
    if (cli_unmount_fuse(mp, dead, why, sizeof why) < 0)
        return cli_error("%s", why);
    if (pid > 0)
        cli_wait_exit(pid);
    return drained ? tell_forced(mp, &l) : EXIT_OK;
}
