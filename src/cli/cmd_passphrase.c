/* cmd_passphrase.c - "buoy passphrase URL --passphrase-file OLD
 * --new-passphrase-file NEW": change an encrypted volume's passphrase.
 *
 * One superblock rewrite (src/vol/passphrase.c): no data is read or
 * written, whatever the volume's size, and it may run while the volume is
 * mounted (the mount keeps its keys; its next open needs the new one). */
#include "commands.h"
#include "util/size.h"
#include "vol/keys.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int cmd_passphrase(struct cli_opts *o, int argc, char **argv)
{
    (void)argc;
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX];
    uint64_t mem = 0;
    struct vol_opts vo;
    if (!o->passphrase_file)
        return cli_error("passphrase: give the current passphrase with --passphrase-file"),
               EXIT_USAGE;
    if (!o->new_passphrase_file)
        return cli_error("passphrase: give the new passphrase with --new-passphrase-file"),
               EXIT_USAGE;
    if (o->kdf_memory && (size_parse(o->kdf_memory, &mem) < 0 || mem < KEYS_MIN_MEM ||
                          mem > KEYS_MAX_MEM))
        return cli_error("passphrase: --kdf-memory takes a size from 8K to 4G, not '%s'",
                         o->kdf_memory),
               EXIT_USAGE;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    if (vol_change_passphrase(argv[0], &vo, o->new_passphrase_file, (uint64_t)o->kdf_passes, mem,
                              err, sizeof err) < 0)
        return cli_error("passphrase %s: %s", argv[0], err),
               strncmp(err, "no volume at", 12) == 0 ? EXIT_NOTFOUND : EXIT_ERR;
    printf("changed the passphrase of %s; the old one no longer opens it\n", argv[0]);
    return EXIT_OK;
}
