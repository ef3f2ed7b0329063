/* fuse.h - the FUSE frontend: a directory with two files.
 *
 *   MOUNTPOINT/disk    the volume, read-write (or read-only), its exact size;
 *                      fsync and close are engine flushes, O_DSYNC writes
 *                      are FUA, fallocate(PUNCH_HOLE | ZERO_RANGE) trims
 *   MOUNTPOINT/stats   read-only, the volume's statistics (statsfile.h)
 *
 * libfuse3's multi-threaded loop; writes up to 1 MiB per request. */
#ifndef BUOY_FE_FUSE_H
#define BUOY_FE_FUSE_H

#include "vol/vol.h"

struct fe_fuse_opts {
    const char *mountpoint;
    const char *url;  /* for the stats file and the mount's source name */
    int read_only;
    int allow_other;  /* let users other than the mounter open the files */
    int debug;        /* libfuse's request trace on stderr */
};

/* Mounts; 0, or -1 with the reason in err (nothing left mounted). */
int fe_fuse_mount(struct vol *v, const struct fe_fuse_opts *o, char *err, size_t errlen);
/* Serves requests until the mount is unmounted or SIGTERM/SIGINT/SIGHUP
 * arrives; then unmounts (if still mounted) and returns 0, or -1 when the
 * loop failed.  The volume is left open: the caller closes it. */
int fe_fuse_loop(void);

#endif
