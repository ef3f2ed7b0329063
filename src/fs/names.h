/* names.h - one directory's entries, from a LIST of its prefix with delimiter "/".
 *
 * A directory is a key prefix P ("" for the root, else ending in "/").  Its
 * entries come from the objects directly under P and the common prefixes
 * "P name/" (S3 rolls every deeper key into those: "a/b/c" alone makes
 * directories "a" and "a/b" with no object for either).
 *
 * NAMES (the scheme; man buoy-fs quotes it)
 *
 *   An object "P name" is an entry "name"; symlink or file is decided later,
 *   by its metadata.  A common prefix "P name/", an object "P name/" (a
 *   directory marker) or an empty object "P name_$folder$" (an old s3fs
 *   marker) is a directory "name"; when several say so they are one entry.
 *   The object "P" (the directory's own marker) is not an entry.
 *
 *   Every key is shown, under its own name when it can be a file name.
 *   When it cannot, it is shown under a derived name
 *
 *       STEM~TAG~HHHHHHHH
 *
 *   where HHHHHHHH is the first 8 hex digits of the SHA-256 of the whole key
 *   (the object's key, or the prefix "P name/" for a directory), and
 *
 *       TAG     when                                  STEM
 *       file    an object "P name" beside a           name
 *               directory "name" (the directory
 *               keeps the name)
 *       empty   the name is empty ("x//y": under      (none)
 *               "x/" the prefix "x//")
 *       dot     the name is "."                       (none)
 *       dotdot  the name is ".."                      (none)
 *       long    the name is over 255 bytes            the name's first bytes
 *
 *   The stem is cut, never inside a UTF-8 sequence, so that the whole name
 *   is at most 255 bytes.  Plain names always keep their name.  If a
 *   derived name is taken (by a plain name, or by another derived name:
 *   a hash collision), "~2", "~3", ... is appended until it is free, the
 *   keys taking their turn in byte order.  So a derived name depends only
 *   on its key, and is the same in every listing unless another key's
 *   name takes it.  Each derived name comes with one line saying why, for
 *   the log:
 *
 *       key 'x//' is shown as 'x/~empty~cad1837d': empty path component
 *
 * Entries are sorted by name (strcmp), no two alike; a directory of n
 * objects and prefixes has at most n entries. */
#ifndef BUOY_FS_NAMES_H
#define BUOY_FS_NAMES_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FS_NAME_MAX 255

enum fs_name_kind {
    FS_NAME_OBJECT = 0, /* an object: a file, a symlink, ... as its metadata says */
    FS_NAME_DIR,        /* a directory */
};

/* What says an FS_NAME_DIR entry is a directory; any combination. */
enum {
    FS_DIR_PREFIX = 1 << 0, /* a common prefix "P name/" */
    FS_DIR_MARKER = 1 << 1, /* an object "P name/" in the object list */
    FS_DIR_FOLDER = 1 << 2, /* an empty object "P name_$folder$" */
};

struct fs_name {
    char *name; /* what readdir shows: 1..255 bytes, no '/', not "." or ".." */
    enum fs_name_kind kind;
    unsigned dir_from; /* FS_DIR_* for a directory, 0 for an object */
    /* The object whose headers give the attributes: the object itself, or
     * the directory's marker in this listing ("P name/", else
     * "P name_$folder$"); NULL for a directory known only from its prefix
     * (a "P name/" marker may still exist: S3 rolls it into the prefix, so
     * HEAD it). */
    char *key;
    char *dir;     /* FS_NAME_DIR: the prefix of its entries, "P name/"; else NULL */
    uint64_t size; /* of key's object, from the listing (0 without one) */
    time_t mtime;  /* its Last-Modified (-1 without one) */
    char etag[STORE_ETAG_MAX];
    char *why; /* NULL, or one line: why the name is not the key's own */
};

struct fs_names {
    struct fs_name *v; /* sorted by name */
    size_t n;
};

/* Builds prefix's entries from a LIST of it with delimiter "/": objs[0..nobjs)
 * (full keys, each starting with prefix, none with a '/' after it but a
 * last one) and prefixes[0..nprefixes) (each prefix + name + "/", name
 * without '/').  0, or -1 with err when an input breaks those rules. */
int fs_names_build(const char *prefix, const struct store_obj *objs, size_t nobjs,
                   char *const *prefixes, size_t nprefixes, struct fs_names *out, char *err,
                   size_t errlen);
void fs_names_free(struct fs_names *d);
/* The entry called name, or NULL (binary search). */
const struct fs_name *fs_names_find(const struct fs_names *d, const char *name);

#endif
