/* cmd_create.c - "buoy create URL --size N": make a new, empty volume.
 *
 * A volume is its superblock (docs/FORMAT.md); creating one writes it with
 * If-None-Match, so two creators racing on one URL cannot both win.  Over an
 * existing volume it refuses, unless --force, which first deletes the old
 * volume's objects (super, lease, seg/, ckpt/; nothing else under the URL).
 * --import FILE then writes a raw disk image into it through the engine,
 * skipping runs of zeros, with progress, and closes it (everything
 * uploaded, a checkpoint written).  --passphrase-file makes an encrypted
 * volume: a fresh salt, Argon2id (--kdf-memory, --kdf-passes), and the
 * key-check and mac lines in the superblock (docs/FORMAT.md, Encryption). */
#include "commands.h"
#include "util/clock.h"
#include "util/size.h"
#include "vol/keys.h"
#include "vol/super.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int size_opt(const char *name, const char *v, uint64_t def, uint64_t *out)
{
    if (!v) {
        *out = def;
        return 0;
    }
    int rc = size_parse(v, out);
    if (rc < 0) {
        cli_error("create: --%s '%s' %s", name, v, size_strerror(rc));
        return -1;
    }
    return 0;
}

/* Makes sb encrypted with a key from o's passphrase file; 0, or -1 after
 * printing why. */
static int encryption(struct cli_opts *o, struct vol_super *sb, struct vol_keys *k)
{
    char err[512];
    uint64_t mem = KEYS_DEFAULT_MEM;
    if (!o->passphrase_file) {
        if (o->kdf_memory || o->kdf_passes)
            return cli_error("create: --kdf-memory and --kdf-passes go with --passphrase-file"),
                   -1;
        return 0;
    }
    if (o->kdf_memory && (size_parse(o->kdf_memory, &mem) < 0 || mem < KEYS_MIN_MEM ||
                          mem > KEYS_MAX_MEM))
        return cli_error("create: --kdf-memory takes a size from 8K to 4G, not '%s'",
                         o->kdf_memory),
               -1;
    char *pass;
    size_t len;
    if (keys_read_passphrase(o->passphrase_file, &pass, &len, err, sizeof err) < 0)
        return cli_error("create: %s", err), -1;
    keys_new(k); /* a random master key, wrapped under the passphrase's */
    int rc = keys_lock(sb, k, pass, len, o->kdf_passes ? (uint64_t)o->kdf_passes : KEYS_DEFAULT_OPS,
                       mem, err, sizeof err);
    keys_free_passphrase(pass, len);
    if (rc < 0)
        return cli_error("create: %s", err), -1;
    return 0;
}

static int is_volume_key(const char *k)
{
    return strcmp(k, SUPER_KEY) == 0 || strcmp(k, "lease") == 0 || strncmp(k, "seg/", 4) == 0 ||
           strncmp(k, "ckpt/", 5) == 0 || strncmp(k, "snap/", 5) == 0 ||
           strncmp(k, "fence/", 6) == 0 || strncmp(k, "clones/", 7) == 0;
}

/* Deletes the volume's objects, superblock last, with progress. */
int cli_wipe_volume(struct store *s, const char *url)
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
            fprintf(stderr, "\rbuoy: deleting the volume at %s: %zu/%zu objects", url, done,
                    total);
            last = clock_mono_ms();
        }
    }
    if (tty && total)
        fprintf(stderr, "\rbuoy: deleted the volume's %zu objects%30s\n", total, "");
    store_list_free(list, n);
    if (store_delete(s, SUPER_KEY, STORE_COND_NONE, NULL, err, sizeof err)) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}

static int all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* --import: the image at fd, size bytes, into the new volume. */
static int import(struct cli_opts *o, const char *url, int fd, uint64_t size)
{
    char dir[PATH_MAX], err[STORE_ERRMSG_MAX], a[32], b[32];
    struct vol_opts vo;
    if (cli_vol_opts(o, &vo, dir, sizeof dir))
        return EXIT_ERR;
    vo.cache_size = VOL_NO_CACHE; /* nothing will be read back */
    struct vol *v = vol_open(url, &vo, err, sizeof err);
    if (!v)
        return cli_error("%s", err);
    size_t chunk = 1u << 20;
    char *buf = malloc(chunk);
    int tty = isatty(STDERR_FILENO), rc = 0;
    uint64_t last = clock_mono_ms(), stored = 0;
    for (uint64_t off = 0; off < size && !rc;) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r <= 0) {
            rc = cli_error("--import: read at %" PRIu64 ": %s", off,
                           r < 0 ? strerror(errno) : "the file got shorter");
            break;
        }
        if (!all_zero(buf, (size_t)r)) { /* a new volume reads zeros already */
            if ((rc = vol_write(v, buf, off, (size_t)r, 0)) != 0) {
                rc = cli_error("--import: writing at %" PRIu64 ": %s", off, strerror(-rc));
                break;
            }
            stored += (uint64_t)r;
        }
        off += (uint64_t)r;
        if (tty && clock_mono_ms() - last > 250) {
            size_format(off, a, sizeof a);
            size_format(size, b, sizeof b);
            fprintf(stderr, "\rbuoy: importing: %s of %s (%.0f%%)   ", a, b,
                    100.0 * (double)off / (double)size);
            last = clock_mono_ms();
        }
    }
    free(buf);
    if (tty)
        fprintf(stderr, "\rbuoy: importing: uploading the rest and writing a checkpoint...   ");
    int crc = vol_close(v);
    if (tty)
        fputc('\n', stderr);
    if (!rc && crc)
        rc = cli_error("--import: closing the volume failed: %s", strerror(-crc));
    if (!rc) {
        size_format(stored, a, sizeof a);
        printf("imported %s of data (zeros skipped)\n", a);
    }
    return rc ? EXIT_ERR : EXIT_OK;
}

int cmd_create(struct cli_opts *o, int argc, char **argv)
{
    const char *url = argv[0];
    struct vol_super sb = {.version = SUPER_VERSION, .compression = "none"};
    uint64_t bs, seg;
    char err[STORE_ERRMSG_MAX];

    int img = -1;
    uint64_t img_size = 0;
    if (o->import) {
        struct stat st;
        img = open(o->import, O_RDONLY | O_CLOEXEC);
        if (img < 0 || fstat(img, &st) < 0)
            return cli_error("create: --import %s: %s", o->import, strerror(errno));
        img_size = (uint64_t)st.st_size;
        if (S_ISBLK(st.st_mode)) {
            off_t end = lseek(img, 0, SEEK_END);
            img_size = end > 0 ? (uint64_t)end : 0;
        }
    }
    if (!o->size && !o->import)
        return cli_error("create: --size is required, e.g. --size 16G"), EXIT_USAGE;
    if (size_opt("size", o->size, img_size, &sb.size) < 0 ||
        size_opt("block-size", o->block_size, 4096, &bs) < 0 ||
        size_opt("segment-size", o->segment_size, 8 << 20, &seg) < 0)
        return EXIT_USAGE;
    if (o->compression && strlen(o->compression) >= sizeof sb.compression)
        return cli_error("create: --compression takes none, zstd or zstd:1..19"), EXIT_USAGE;
    if (o->compression)
        snprintf(sb.compression, sizeof sb.compression, "%s", o->compression);
    sb.block_size = bs > UINT32_MAX ? 0 : (uint32_t)bs;
    if (!o->size && img >= 0 && bs && sb.size % bs) /* an image of any size: round up */
        sb.size += bs - sb.size % bs;
    sb.segment_size = seg > UINT32_MAX ? 0 : (uint32_t)seg;
    struct vol_keys keys;
    if (encryption(o, &sb, &keys) < 0)
        return EXIT_USAGE;
    if (super_validate(&sb, err, sizeof err) < 0)
        return cli_error("create: %s", err), EXIT_USAGE;
    if (img >= 0 && img_size > sb.size)
        return cli_error("create: --import %s is %" PRIu64 " bytes, more than --size", o->import,
                         img_size),
               EXIT_USAGE;

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
        char **clones;
        size_t nclones;
        if (vol_live_clones(s, NULL, &o->store, &clones, &nclones, err, sizeof err) < 0 ||
            nclones) {
            if (nclones)
                cli_error("%s has %zu clone%s reading its snapshots (%s%s); not replacing it", url,
                          nclones, nclones == 1 ? "" : "s", clones[0],
                          nclones > 1 ? " and others" : "");
            else
                cli_error("%s", err);
            vol_free_urls(clones, nclones);
            store_close(s);
            return EXIT_ERR;
        }
        if (cli_wipe_volume(s, url) < 0) {
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
    super_encode_keyed(&sb, super_encrypted(&sb) ? &keys : NULL, &text);
    keys_wipe(&keys);
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
    printf("created volume %s: %s, block size %u, segment size %s, compression %s, %s%s%suuid %s\n",
           url, size, sb.block_size, segsz, sb.compression,
           super_encrypted(&sb) ? "encryption " : "", super_encrypted(&sb) ? sb.encryption : "",
           super_encrypted(&sb) ? ", " : "", uuid);
    fflush(stdout);
    store_close(s);
    if (img >= 0) {
        int rc = import(o, url, img, img_size);
        close(img);
        return rc;
    }
    return EXIT_OK;
}
