/* cmd_create.c - "buoy create URL --size N": make a new, empty volume.
 *
 * A volume is its superblock (docs/FORMAT.md); creating one writes it with
 * If-None-Match, so two creators racing on one URL cannot both win.  Over an
 * existing volume it refuses, unless --force, which first deletes the old
 * volume's objects (super, lease, seg/, ckpt/; nothing else under the URL). */
#include "commands.h"
#include "util/clock.h"
#include "util/size.h"
#include "vol/super.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int size_opt(const char *name, const char *v, uint64_t def, uint64_t *out)
{
    if (!v) {
        *out = def;
        return 0;
    }
    if (size_parse(v, out) < 0) {
        cli_error("create: --%s '%s' is not a size (a number of bytes, or with K, M, G, T)", name,
                  v);
        return -1;
    }
    return 0;
}

static int is_volume_key(const char *k)
{
    return strcmp(k, SUPER_KEY) == 0 || strcmp(k, "lease") == 0 || strncmp(k, "seg/", 4) == 0 ||
           strncmp(k, "ckpt/", 5) == 0;
}

/* Deletes the old volume's objects, superblock last, with progress. */
static int wipe(struct store *s, const char *url)
{
    struct store_obj *list;
    size_t n, done = 0, total = 0;
    char err[STORE_ERRMSG_MAX];
    if (store_list(s, "", &list, &n, err, sizeof err)) {
        cli_error("%s", err);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        total += is_volume_key(list[i].key) && strcmp(list[i].key, SUPER_KEY) != 0;
    uint64_t last = clock_mono_ms();
    int tty = isatty(STDERR_FILENO);
    for (size_t i = 0; i < n; i++) {
        if (!is_volume_key(list[i].key) || strcmp(list[i].key, SUPER_KEY) == 0)
            continue;
        if (store_delete(s, list[i].key, STORE_COND_NONE, NULL, err, sizeof err)) {
            cli_error("%s", err);
            store_list_free(list, n);
            return -1;
        }
        done++;
        if (tty && clock_mono_ms() - last > 200) {
            fprintf(stderr, "\rbuoy: deleting the old volume at %s: %zu/%zu objects", url, done,
                    total);
            last = clock_mono_ms();
        }
    }
    if (tty && total)
        fprintf(stderr, "\rbuoy: deleted the old volume's %zu objects%30s\n", total, "");
    store_list_free(list, n);
    if (store_delete(s, SUPER_KEY, STORE_COND_NONE, NULL, err, sizeof err)) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}

int cmd_create(struct cli_opts *o, int argc, char **argv)
{
    const char *url = argv[0];
    struct vol_super sb = {.version = SUPER_VERSION, .compression = "none"};
    uint64_t bs, seg;
    char err[STORE_ERRMSG_MAX];

    if (!o->size)
        return cli_error("create: --size is required, e.g. --size 16G"), EXIT_USAGE;
    if (size_opt("size", o->size, 0, &sb.size) < 0 ||
        size_opt("block-size", o->block_size, 4096, &bs) < 0 ||
        size_opt("segment-size", o->segment_size, 8 << 20, &seg) < 0)
        return EXIT_USAGE;
    sb.block_size = bs > UINT32_MAX ? 0 : (uint32_t)bs;
    sb.segment_size = seg > UINT32_MAX ? 0 : (uint32_t)seg;
    if (super_validate(&sb, err, sizeof err) < 0)
        return cli_error("create: %s", err), EXIT_USAGE;

    struct store *s = cli_open_store(url, o);
    if (!s)
        return EXIT_ERR;
    struct buf old = {0};
    enum store_err e = store_get(s, SUPER_KEY, 0, 0, &old, NULL, err, sizeof err);
    if (e == STORE_OK) {
        struct vol_super prev;
        char perr[256], uuid[37] = "unreadable";
        if (super_parse(old.p, old.len, &prev, perr, sizeof perr) == 0)
            super_uuid_str(prev.uuid, uuid);
        buf_free(&old);
        if (!o->force) {
            cli_error("a volume already exists at %s (uuid %s); use --force to replace it "
                      "(its data is lost)",
                      url, uuid);
            store_close(s);
            return EXIT_ERR;
        }
        if (wipe(s, url) < 0) {
            store_close(s);
            return EXIT_ERR;
        }
    } else if (e != STORE_ENOTFOUND) {
        cli_error("%s", err);
        store_close(s);
        return EXIT_ERR;
    }
    buf_free(&old);

    super_new_uuid(sb.uuid);
    sb.created = time(NULL);
    struct buf text = {0};
    super_encode(&sb, &text);
    e = store_put(s, SUPER_KEY, text.p, text.len, STORE_IF_NONE_MATCH, NULL, NULL, err,
                  sizeof err);
    buf_free(&text);
    if (e == STORE_EPRECOND) {
        cli_error("another volume was created at %s at the same time; not replacing it", url);
        store_close(s);
        return EXIT_ERR;
    }
    if (e) {
        cli_error("%s", err);
        store_close(s);
        return cli_exit_for(e);
    }
    char uuid[37], size[32], segsz[32];
    super_uuid_str(sb.uuid, uuid);
    size_format(sb.size, size, sizeof size);
    size_format(sb.segment_size, segsz, sizeof segsz);
    printf("created volume %s: %s, block size %u, segment size %s, uuid %s\n", url, size,
           sb.block_size, segsz, uuid);
    store_close(s);
    return EXIT_OK;
}
