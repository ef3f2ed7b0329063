/* volopts.c - the engine options every volume command shares (--cache-dir,
 * --cache-size, --durability, --read-only, --passphrase-file), with their
 * defaults. */
#include "commands.h"
#include "util/size.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_cache_dir(const struct cli_opts *o, char *dir, size_t dirlen)
{
    if (o->cache_dir)
        snprintf(dir, dirlen, "%s", o->cache_dir);
    else if (geteuid() == 0)
        snprintf(dir, dirlen, "/var/cache/buoy");
    else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
        snprintf(dir, dirlen, "%s/buoy", getenv("XDG_CACHE_HOME"));
    else if (getenv("HOME"))
        snprintf(dir, dirlen, "%s/.cache/buoy", getenv("HOME"));
    else
        return cli_error("no --cache-dir given and no HOME to put one in");
    return 0;
}

int cli_vol_opts(const struct cli_opts *o, struct vol_opts *vo, char *dir, size_t dirlen)
{
    memset(vo, 0, sizeof *vo);
    vo->store = o->store;
    vo->read_only = o->read_only;
    vo->gc = !o->no_gc;
    vo->takeover = o->takeover;
    vo->lease_ms = o->lease_ms;
    if (o->passphrase_file) { /* absolute: the daemons chdir to / */
        static char pf[PATH_MAX];
        if (!realpath(o->passphrase_file, pf))
            return cli_error("--passphrase-file %s: %s", o->passphrase_file, strerror(errno));
        vo->passphrase_file = pf;
    }
    if (cli_cache_dir(o, dir, dirlen))
        return EXIT_ERR;
    vo->cache_dir = dir;
    if (o->cache_size) {
        uint64_t n;
        int rc = size_parse(o->cache_size, &n);
        if (rc < 0)
            return cli_error("--cache-size takes a size such as 512M or 2G: '%s' %s",
                             o->cache_size, size_strerror(rc));
        vo->cache_size = n ? n : VOL_NO_CACHE;
    }
    if (o->durability) {
        if (strcmp(o->durability, "local") == 0)
            vo->durability_local = 1;
        else if (strcmp(o->durability, "remote") != 0)
            return cli_error("--durability takes remote or local, not '%s'", o->durability);
    }
    return 0;
}
