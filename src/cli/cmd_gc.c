/* cmd_gc.c - "buoy gc URL": garbage-collect a volume that is not mounted.
 *
 * Opens the volume as its writer (so not while it is mounted or served on
 * this host: the cache dir lock says who has it), copies the live blocks of
 * every segment less live than --threshold into new segments, then writes a
 * checkpoint, after which the emptied segments are deleted.  A progress
 * line on a terminal; a summary at the end. */
#include "commands.h"
#include "util/size.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gc_view {
    int tty;
    const char *url;
};

static void show(const struct vol_gc_progress *p, void *arg)
{
    struct gc_view *g = arg;
    char c[32];
    if (!g->tty)
        return;
    size_format(p->bytes_copied, c, sizeof c);
    fprintf(stderr, "\rbuoy: gc %s: %" PRIu64 "/%" PRIu64 " segments cleaned, %s copied   ", g->url,
            p->segments_done, p->segments_total, c);
}

int cmd_gc(struct cli_opts *o, int argc, char **argv)
{
    const char *url = argv[0];
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX];
    double threshold = 0;
    if (o->threshold) {
        char *end;
        threshold = strtod(o->threshold, &end);
        if (*end || end == o->threshold || threshold <= 0 || threshold > 1)
            return cli_error("gc: --threshold takes a fraction above 0 and at most 1, such as "
                             "0.5, not '%s'",
                             o->threshold);
    }
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    vo.read_only = 0;
    vo.gc = 0; /* the foreground pass below does the work */
    struct vol *v = vol_open(url, &vo, err, sizeof err);
    if (!v)
        return cli_error("%s", err);
    struct vol_stats before, after;
    vol_get_stats(v, &before);
    struct gc_view g = {.tty = isatty(STDERR_FILENO), .url = url};
    int rc = vol_gc(v, threshold, show, &g);
    vol_get_stats(v, &after);
    if (g.tty)
        fputc('\n', stderr);
    char why[1800];
    if (vol_close_report(v, why, sizeof why) != 0) /* why: what is not in the store, where */
        return cli_error("gc of %s failed: %s", url, why);
    if (rc) /* the close that followed put everything in the store */
        return cli_error("gc of %s failed: %s; nothing is lost: the volume closed cleanly",
                         url, strerror(-rc));
    char c[32], gb[16], ga[16];
    size_format(after.gc_bytes_copied, c, sizeof c);
    snprintf(gb, sizeof gb, "%.1f%%", 100 * before.garbage_ratio);
    snprintf(ga, sizeof ga, "%.1f%%", 100 * after.garbage_ratio);
    printf("gc %s: %" PRIu64 " segments cleaned, %s copied, %" PRIu64
           " segment objects deleted; garbage %s -> %s\n",
           url, after.gc_segments_cleaned, c, after.segments_deleted, gb, ga);
    return EXIT_OK;
}
