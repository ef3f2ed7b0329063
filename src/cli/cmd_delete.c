/* cmd_delete.c - "buoy delete URL": delete a volume, its snapshots and all
 * its data.
 *
 * Refused while a clone reads one of its snapshots (the clone would lose
 * its data), and while its lease is held (a writer may be using it; --force
 * for a writer known to be dead).  A clone's record in its base is removed
 * too, so the base's snapshot can then be deleted.  Then this host's cache
 * dir of the volume (CACHE_DIR/UUID: journal, block cache, lock) goes too,
 * unless a process still holds its lock. */
#include "commands.h"
#include "store/lease.h"
#include "util/log.h"
#include "util/mem.h"
#include "vol/super.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Removes the clone's record clones/NAME/UUID from its base; a warning when
 * that fails (buoy snapshot delete removes stale records anyway). */
static void drop_record(struct cli_opts *o, const struct vol_super *sb)
{
    char err[STORE_ERRMSG_MAX], key[SUPER_BASE_MAX], uuid[37];
    const char *at = strrchr(sb->base, '@');
    char *url = strndup(sb->base, (size_t)(at - sb->base));
    super_uuid_str(sb->uuid, uuid);
    snprintf(key, sizeof key, "clones/%s/%s", at + 1, uuid);
    struct store *s = store_open(url, &o->store, err, sizeof err);
    if (!s || store_delete(s, key, STORE_COND_NONE, NULL, err, sizeof err))
        log_warn("removing this clone's record %s from %s: %s", key, url, err);
    if (s)
        store_close(s);
    free(url);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0) {
        log_warn("cannot remove %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Removes cache_dir/UUID, the deleted volume's journal, block cache and
 * lock on this host, unless a process holds the lock (a mount of it). */
static void drop_cache_dir(const char *cache_dir, const uint8_t uuid[16])
{
    char u[37];
    struct stat st;
    super_uuid_str(uuid, u);
    char *d = xasprintf("%s/%s", cache_dir, u), *lock = xasprintf("%s/lock", d);
    if (lstat(d, &st) < 0 || !S_ISDIR(st.st_mode))
        goto out; /* never used on this host, with this cache dir */
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
        cli_error("%s is still in use by a process on this host (lock %s): its cache dir is left "
                  "alone; unmount it, then remove %s",
                  u, lock, d);
    else if (nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
        printf("removed its cache dir %s\n", d);
    else
        cli_error("its cache dir %s was not removed completely (see above)", d);
    if (fd >= 0)
        close(fd);
out:
    free(lock);
    free(d);
}

int cmd_delete(struct cli_opts *o, int argc, char **argv)
{
    (void)argc;
    const char *url = argv[0];
    char err[STORE_ERRMSG_MAX], why[256], dir[PATH_MAX];
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    struct vol_super sb;
    /* an encrypted volume's lease and records need its keys */
    struct store *s = vol_open_store(url, &vo, &sb, err, sizeof err);
    if (!s) {
        cli_error("%s", err);
        return strstr(err, "no volume at") ? EXIT_NOTFOUND : EXIT_ERR;
    }
    struct buf b = {0};
    int rc = EXIT_ERR;
    char **clones;
    size_t n;
    if (vol_live_clones(s, NULL, &o->store, &clones, &n, err, sizeof err) < 0) {
        cli_error("%s", err);
        goto out;
    }
    if (n)
        cli_error("%s has %zu clone%s reading its snapshots (%s%s); delete %s first", url, n,
                  n == 1 ? "" : "s", clones[0], n > 1 ? " and others" : "",
                  n == 1 ? "it" : "them");
    vol_free_urls(clones, n);
    if (n)
        goto out;
    struct lease_rec lr;
    if (store_get(s, "lease", 0, 0, &b, NULL, err, sizeof err) == STORE_OK &&
        lease_parse(b.p, b.len, &lr, why, sizeof why) == 0 && !lr.released && !o->force) {
        char t[40];
        struct tm tm;
        time_t when = (time_t)lr.renewed;
        strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&when, &tm));
        cli_error("%s is in use by %s on %s (lease last renewed %s); stop it first, or use "
                  "--force if that writer is gone",
                  url, lr.holder, lr.host, t);
        goto out;
    }
    if (cli_wipe_volume(s, url) < 0)
        goto out;
    if (sb.base[0])
        drop_record(o, &sb);
    printf("deleted volume %s\n", url);
    drop_cache_dir(dir, sb.uuid);
    rc = EXIT_OK;
out:
    buf_free(&b);
    store_close(s);
    return rc;
}
