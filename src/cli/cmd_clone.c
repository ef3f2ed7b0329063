/* cmd_clone.c - "buoy clone URL@NAME NEWURL": a writable volume that starts
 * as snapshot NAME of the volume at URL and shares its segments.
 *
 * Instant whatever the size: the clone's first checkpoint is the snapshot's
 * map; nothing is copied.  Both stores must open with the same options
 * (endpoint, credentials).  The snapshot stays while the clone exists: buoy
 * snapshot delete refuses it (src/vol/clone.c). */
#include "commands.h"
#include "util/size.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

int cmd_clone(struct cli_opts *o, int argc, char **argv)
{
    (void)argc;
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX], b[32];
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    struct vol_clone_info ci;
    int rc = vol_clone(argv[0], argv[1], &vo, &ci, err, sizeof err);
    if (rc == -EINVAL)
        return cli_error("clone: %s", err), EXIT_USAGE;
    if (rc)
        return cli_error("clone %s to %s: %s", argv[0], argv[1], err);
    size_format(ci.bytes, b, sizeof b);
    printf("cloned %s to %s: uuid %s, sharing %" PRIu64 " segments (%s of live data); "
           "nothing copied\n",
           argv[0], argv[1], ci.uuid, ci.segments, b);
    return EXIT_OK;
}
