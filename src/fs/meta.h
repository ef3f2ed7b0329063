/* meta.h - a file's attributes from its object's headers, and back.
 *
 * buoy fs shows one object per file, and keeps what POSIX needs beyond the
 * bytes in user metadata the way s3fs-fuse does, so that a bucket written by
 * s3fs, rclone or gcsfuse looks right and s3fs reads what we write.  What
 * the tools really write (captured from s3fs 1.90 and rclone 1.60 against a
 * local S3; the fixtures in tests/unit/test_fs_meta.c):
 *
 *   name (x-amz-meta-...)     writer          value
 *   mode                      s3fs            st_mode in decimal, type bits
 *                                             included ("33188" = 0100644),
 *                                             except that mkdir writes the
 *                                             permissions alone ("493" = 0755)
 *   mode                      rclone -M       st_mode in octal ("100644")
 *   uid, gid                  s3fs, rclone -M decimal
 *   mtime, ctime, atime       s3fs            "SEC" when the nanoseconds are 0,
 *                                             else "SEC.NNNNNNNNN" (9 digits)
 *   mtime                     rclone          seconds with a decimal fraction,
 *                                             trailing zeros cut ("SEC.5")
 *   atime                     rclone -M       RFC 3339, ns
 *                                             ("2026-12-04T22:30:22.259605077Z")
 *   goog-reserved-posix-mode  gsutil, gcloud  permissions in octal ("644")
 *   goog-reserved-posix-uid/gid               decimal
 *   goog-reserved-file-mtime/atime            whole seconds
 *   gcsfuse_mtime             gcsfuse         RFC 3339 with nanoseconds, UTC
 *   xattr                     s3fs use_xattr  see fs_xattr_decode()
 *
 * Directories are "name/" objects with Content-Type application/x-directory
 * (s3fs), "name_$folder$" markers, or nothing but the keys under them; a
 * symlink is an object whose body is the target and whose mode has S_IFLNK.
 *
 * Decoding trusts nothing: each field that does not parse, or says what
 * cannot be (a mode with impossible type bits, a directory mode on an object
 * that is not a directory, a negative time, uid 4294967295), is ignored on
 * its own and the field comes from the next source, then the defaults; the
 * reason goes into a line the caller logs. */
#ifndef BUOY_FS_META_H
#define BUOY_FS_META_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Which fields of a struct fs_attr came from the object's metadata (the
 * others from its Last-Modified or the mount's defaults). */
enum {
    FS_META_MODE = 1 << 0, /* the permissions (the type comes from the key, or the mode) */
    FS_META_UID = 1 << 1,
    FS_META_GID = 1 << 2,
    FS_META_MTIME = 1 << 3,
    FS_META_CTIME = 1 << 4,
    FS_META_ATIME = 1 << 5,
};

struct fs_attr {
    mode_t mode; /* type bits and permissions */
    uid_t uid;
    gid_t gid;
    uint64_t size;
    struct timespec mtime, ctime, atime;
    unsigned from_meta; /* FS_META_* */
};

/* What a mount shows for what no metadata says. */
struct fs_meta_defaults {
    uid_t uid;
    gid_t gid;
    mode_t umask;      /* files 0666 & ~umask, directories 0777 & ~umask */
    time_t mount_time; /* the times of an object with no Last-Modified */
};

/* What HEAD (or GET) said about one object, or a directory with no object. */
struct fs_meta_in {
    const struct store_meta *meta; /* user metadata, names without x-amz-meta- */
    size_t nmeta;
    const char *content_type; /* NULL or "" when none */
    uint64_t size;
    time_t last_modified; /* < 0 when there is no object or it is not known */
    /* The entry is a directory: its key ends in "/", or it is a
     * "name_$folder$" marker, or only a common prefix.  A directory stays
     * one whatever its mode says, and an object that is not one never
     * becomes one. */
    int is_dir;
};

#define FS_META_WHY_MAX 512

/* Fills *a from in and the defaults.  Returns how many metadata values were
 * ignored (0 when all were good); then why holds one line naming each
 * ("x-amz-meta-mode '12x' is not a number; x-amz-meta-mtime '-5' is
 * negative"), cut to whylen.  Never fails.  Symlinks: the caller reads the
 * target from the body. */
int fs_meta_decode(const struct fs_meta_in *in, const struct fs_meta_defaults *def,
                   struct fs_attr *a, char *why, size_t whylen);

/* Parsers of single values, exposed for tests and for the layer above.  Each
 * returns 0, or -1 with a reason (a static string: "is not a number"). */
int fs_meta_parse_mode(const char *s, mode_t *mode, const char **reason);
int fs_meta_parse_id(const char *s, uint32_t *id, const char **reason);
/* "SEC", "SEC.FRACTION" (1 to 9 digits, a decimal fraction: ".5" is half a
 * second), or RFC 3339 ("2021-01-01T00:00:00.5Z", "...+02:00"). */
int fs_meta_parse_time(const char *s, struct timespec *ts, const char **reason);

/* One extended attribute. */
struct fs_xattr {
    char *name; /* "user.foo": 1..FS_XATTR_NAME_MAX bytes, NUL-terminated */
    unsigned char *value;
    size_t len;
};

#define FS_XATTR_NAME_MAX   255
#define FS_XATTR_VALUE_MAX  65536 /* Linux's XATTR_SIZE_MAX */
#define FS_XATTR_HEADER_MAX 65536 /* the longest x-amz-meta-xattr we read */
#define FS_XATTR_MAX        1024  /* the most attributes we read from one */

/* x-amz-meta-xattr as s3fs 1.90 writes it: the URL encoding (every byte but
 * A-Z a-z 0-9 - . _ ~ / as %XX, upper-case hex) of
 *
 *     {"NAME":"BASE64","NAME":"BASE64"}
 *
 * names in strcmp order, raw (no JSON escapes), values in padded standard
 * base64, "" for an empty value.  s3fs splits the pairs at ',' and a pair at
 * its first ':', so a name with '"', ',' or ':' cannot be read back; s3fs
 * skips such a pair, and so do we.
 *
 * Decoding: 0 with *out sorted by name (heap, fs_xattr_free), or 1 when some
 * pairs were skipped (why says which and why), or -1 when the header is
 * unusable (not URL encoding, no braces, past the bounds above) with why set
 * and *out NULL.  A name given twice keeps its last value, as in s3fs. */
int fs_xattr_decode(const char *header, struct fs_xattr **out, size_t *n, char *why, size_t whylen);
/* The header for x[0..n) (any order; sorted here), heap; NULL with err when a
 * name is empty, too long, given twice or has '"', ',' or ':', or a value is
 * too long. */
char *fs_xattr_encode(const struct fs_xattr *x, size_t n, char *err, size_t errlen);
void fs_xattr_free(struct fs_xattr *x, size_t n);

/* The metadata S3 keeps per object, names and values together (S3's limit). */
#define FS_META_S3_MAX 2048

/* The user metadata s3fs 1.90 writes for a, with x's xattrs (nx may be 0):
 * atime, ctime, gid, mode (decimal, type bits included), mtime, uid and,
 * with xattrs, xattr; sorted by name (heap, fs_meta_free), and in *ctype the
 * Content-Type s3fs gives it: application/x-directory for a directory,
 * application/octet-stream for the rest (s3fs picks a regular file's from
 * its name; any is fine, the mode says what it is).  0, or -1 with err when
 * the xattrs cannot be encoded or all of it passes FS_META_S3_MAX. */
int fs_meta_encode(const struct fs_attr *a, const struct fs_xattr *x, size_t nx,
                   struct store_meta **out, size_t *n, const char **ctype, char *err,
                   size_t errlen);
void fs_meta_free(struct store_meta *m, size_t n);

#endif
