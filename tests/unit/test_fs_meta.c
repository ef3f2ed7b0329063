/* test_fs_meta.c - attributes from object metadata and back (src/fs/meta.c).
 *
 * The fixtures are what the tools wrote, read back with boto3 from a moto
 * server on 127.0.0.1 (2026-12-04): s3fs 1.90 (Debian 12) mounted with
 * use_path_request_style, then use_xattr; rclone 1.60.1 copy, and copy -M. */
#include "tap.h"
#include "fs/meta.h"

#include <string.h>
#include <sys/stat.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct fs_meta_defaults defs = {
    .uid = 1000, .gid = 100, .umask = 022, .mount_time = 1700000000};
static const time_t LM = 1796423328; /* Last-Modified of the captured objects */

static struct fs_attr decode(const struct store_meta *m, size_t n, const char *ctype, uint64_t size,
                             int is_dir, int *bad, char *why, size_t whylen)
{
    struct fs_meta_in in = {.meta = m,
                            .nmeta = n,
                            .content_type = ctype,
                            .size = size,
                            .last_modified = LM,
                            .is_dir = is_dir};
    struct fs_attr a;
    *bad = fs_meta_decode(&in, &defs, &a, why, whylen);
    return a;
}

#define ALL_META                                                                                   \
    (FS_META_MODE | FS_META_UID | FS_META_GID | FS_META_MTIME | FS_META_CTIME | FS_META_ATIME)

/* s3fs: echo hello > f.txt; chmod 0640; chown 1001:1002;
 * touch -d '2021-01-01 00:00:00.123456789 UTC'; setfattr user.foo=bar,
 * user.bin=00010203, security.selinux=xyz. */
static const struct store_meta s3fs_file[] = {
    {"atime", "1609459200.123456789"},
    {"ctime", "1609459200.123456789"},
    {"gid", "1002"},
    {"mode", "33184"},
    {"mtime", "1609459200.123456789"},
    {"uid", "1001"},
    {"xattr", "%7B%22security.selinux%22%3A%22eHl6%22%2C%22user.bin%22%3A%22AAECAw%3D%3D%22%2C%"
              "22user.foo%22%3A%22YmFy%22%7D"},
};

static void test_s3fs_captured(void)
{
    char why[FS_META_WHY_MAX];
    int bad;
    struct fs_attr a = decode(s3fs_file, N(s3fs_file), "text/plain", 6, 0, &bad, why, sizeof why);
    is_int(bad, 0, "s3fs file: every value good (%s)", why);
    is_int(a.mode, S_IFREG | 0640, "s3fs file: mode 33184 is a regular file 0640");
    is_int(a.uid, 1001, "s3fs file: uid");
    is_int(a.gid, 1002, "s3fs file: gid");
    is_int(a.size, 6, "s3fs file: size");
    ok(a.mtime.tv_sec == 1609459200 && a.mtime.tv_nsec == 123456789,
       "s3fs file: mtime 1609459200.123456789 to the nanosecond");
    ok(a.atime.tv_nsec == 123456789 && a.ctime.tv_nsec == 123456789, "s3fs file: atime, ctime");
    is_int(a.from_meta, ALL_META, "s3fs file: every field from metadata");

    /* mkdir d; chmod 0750 d; chown 5:6 d; touch -d '2020-06-01 12:00:00 UTC' d */
    static const struct store_meta dir[] = {
        {"atime", "1591012800"}, {"ctime", "1591012800"}, {"gid", "6"},
        {"mode", "16872"},       {"mtime", "1591012800"}, {"uid", "5"},
    };
    a = decode(dir, N(dir), "application/x-directory", 0, 1, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFDIR | 0750) && a.uid == 5 && a.gid == 6 &&
           a.mtime.tv_sec == 1591012800 && a.mtime.tv_nsec == 0,
       "s3fs dir after chmod/chown/touch: 16872 = drwxr-x---, 5:6, whole seconds");

    /* mkdir -p d/sub: s3fs writes mkdir's mode without the type bits */
    static const struct store_meta sub[] = {
        {"atime", "1796423328"}, {"ctime", "1796423328"}, {"gid", "0"},
        {"mode", "493"},         {"mtime", "1796423328"}, {"uid", "0"},
    };
    a = decode(sub, N(sub), "application/x-directory", 0, 1, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFDIR | 0755) && (a.from_meta & FS_META_MODE),
       "s3fs fresh dir: mode 493 (no type bits) on a dir key is drwxr-xr-x");

    /* ln -s f.txt lnk: body "f.txt", mode S_IFLNK|0777 */
    static const struct store_meta lnk[] = {
        {"atime", "1796423328"}, {"ctime", "1796423328"}, {"gid", "0"},
        {"mode", "41471"},       {"mtime", "1796423328"}, {"uid", "0"},
    };
    a = decode(lnk, N(lnk), "application/octet-stream", 5, 0, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFLNK | 0777) && a.size == 5,
       "s3fs symlink: 41471 is lrwxrwxrwx, size is the target's length");

    /* mkfifo fifo: 4516 = 010644 */
    static const struct store_meta fifo[] = {{"mode", "4516"}};
    a = decode(fifo, N(fifo), "application/octet-stream", 0, 0, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFIFO | 0644), "s3fs fifo: 4516 is prw-r--r--");

    /* touch -d '2021-01-01 00:00:00.000000005 UTC': zero-padded nanoseconds */
    static const struct store_meta n5[] = {{"mtime", "1609459200.000000005"}};
    a = decode(n5, N(n5), NULL, 2, 0, &bad, why, sizeof why);
    ok(a.mtime.tv_sec == 1609459200 && a.mtime.tv_nsec == 5,
       "s3fs 5 ns: '.000000005' is 5 nanoseconds");
    ok(a.mode == (S_IFREG | 0644) && a.uid == 1000 && a.gid == 100 &&
           a.from_meta == FS_META_MTIME && a.atime.tv_sec == LM && a.ctime.tv_sec == LM,
       "fields the object lacks come from the defaults and Last-Modified");
}

static void test_rclone_captured(void)
{
    char why[FS_META_WHY_MAX];
    int bad;
    /* rclone copy: only mtime, a decimal fraction with trailing zeros cut */
    static const struct store_meta half[] = {{"mtime", "1609459200.5"}};
    struct fs_attr a =
        decode(half, N(half), "application/octet-stream", 2, 0, &bad, why, sizeof why);
    ok(bad == 0 && a.mtime.tv_sec == 1609459200 && a.mtime.tv_nsec == 500000000,
       "rclone mtime '1609459200.5' is half a second (s3fs 1.90 would read 5 ns)");
    static const struct store_meta eight[] = {{"mtime", "1796423416.23880542"}};
    a = decode(eight, N(eight), NULL, 5, 0, &bad, why, sizeof why);
    ok(a.mtime.tv_nsec == 238805420, "rclone mtime with 8 fraction digits: 238805420 ns");
    is_int(a.mode, S_IFREG | 0644, "rclone object without mode: 0666 & ~022");

    /* rclone copy -M: mode in octal, atime RFC 3339, btime (ignored) */
    static const struct store_meta m[] = {
        {"atime", "2026-12-04T22:30:22.259605077Z"},
        {"btime", "2026-12-04T22:30:16.234106216Z"},
        {"gid", "0"},
        {"mode", "100600"},
        {"mtime", "1609459200.123456789"},
        {"uid", "0"},
    };
    a = decode(m, N(m), "text/plain; charset=utf-8", 2, 0, &bad, why, sizeof why);
    is_int(bad, 0, "rclone -M: every value good (%s)", why);
    is_int(a.mode, S_IFREG | 0600, "rclone -M mode '100600' is octal: -rw-------");
    ok(a.atime.tv_sec == 1796423422 && a.atime.tv_nsec == 259605077,
       "rclone -M atime RFC 3339 to the nanosecond");
    ok(a.uid == 0 && a.gid == 0 && (a.from_meta & FS_META_CTIME) == 0 && a.ctime.tv_sec == LM,
       "rclone -M: uid/gid 0 taken, ctime from Last-Modified");
}

static void test_gcs(void)
{
    char why[FS_META_WHY_MAX];
    int bad;
    /* gsutil rsync -P / gcloud --preserve-posix, gcsfuse */
    static const struct store_meta g[] = {
        {"gcsfuse_mtime", "2021-01-01T00:00:00.25Z"}, {"goog-reserved-file-atime", "1600000000"},
        {"goog-reserved-file-mtime", "1500000000"},   {"goog-reserved-posix-gid", "20"},
        {"goog-reserved-posix-mode", "750"},          {"goog-reserved-posix-uid", "10"},
    };
    struct fs_attr a = decode(g, N(g), NULL, 9, 0, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFREG | 0750) && a.uid == 10 && a.gid == 20,
       "gsutil posix mode '750' is octal permissions, uid/gid (%s)", why);
    ok(a.mtime.tv_sec == 1609459200 && a.mtime.tv_nsec == 250000000,
       "gcsfuse_mtime outranks goog-reserved-file-mtime");
    is_int(a.atime.tv_sec, 1600000000, "goog-reserved-file-atime");
    a = decode(g + 2, 1, NULL, 9, 0, &bad, why, sizeof why);
    is_int(a.mtime.tv_sec, 1500000000, "goog-reserved-file-mtime alone");
    static const struct store_meta both[] = {{"goog-reserved-posix-mode", "700"},
                                             {"mode", "33188"}};
    a = decode(both, N(both), NULL, 0, 0, &bad, why, sizeof why);
    is_int(a.mode, S_IFREG | 0644, "s3fs mode outranks goog-reserved-posix-mode");
    static const struct store_meta gbad[] = {{"goog-reserved-posix-mode", "755"},
                                             {"mode", "banana"}};
    a = decode(gbad, N(gbad), NULL, 0, 0, &bad, why, sizeof why);
    ok(bad == 1 && a.mode == (S_IFREG | 0755) && strstr(why, "x-amz-meta-mode 'banana'"),
       "a bad mode falls through to the next source: %s", why);
}

static void test_no_meta(void)
{
    char why[FS_META_WHY_MAX];
    int bad;
    struct fs_attr a = decode(NULL, 0, NULL, 123, 0, &bad, why, sizeof why);
    ok(bad == 0 && a.mode == (S_IFREG | 0644) && a.uid == 1000 && a.gid == 100 &&
           a.mtime.tv_sec == LM && a.from_meta == 0 && a.size == 123,
       "plain object: regular 0666 & ~umask, the mount's owner, Last-Modified");
    a = decode(NULL, 0, "application/x-directory", 0, 1, &bad, why, sizeof why);
    is_int(a.mode, S_IFDIR | 0755, "plain dir: 0777 & ~umask");
    struct fs_meta_in in = {.last_modified = -1, .is_dir = 1};
    struct fs_meta_defaults d2 = defs;
    d2.umask = 077;
    fs_meta_decode(&in, &d2, &a, why, sizeof why);
    ok(a.mode == (S_IFDIR | 0700) && a.mtime.tv_sec == 1700000000 && a.ctime.tv_sec == 1700000000,
       "a dir with no object (common prefix): the mount time, umask 077");
    fs_meta_decode(&in, &d2, &a, NULL, 0);
    ok(a.mode == (S_IFDIR | 0700), "why may be NULL");
}

static void test_bad_values(void)
{
    static const struct {
        const char *name, *value;
        int is_dir;
        const char *reason;
    } cases[] = {
        {"mode", "", 0, "is not a number"},
        {"mode", "12x", 0, "is not a number"},
        {"mode", " 33188", 0, "is not a number"},
        {"mode", "+33188", 0, "is not a number"},
        {"mode", "-1", 0, "is not a number"},
        {"mode", "0x81a4", 0, "is not a number"},
        {"mode", "99999", 0, "is not a mode"},           /* 0303237: bits above S_IFMT */
        {"mode", "57344", 0, "is not a mode"},           /* 0160000: no such type */
        {"mode", "189999", 0, "is not a mode"},          /* not octal either */
        {"mode", "9999999999999", 0, "is not a number"}, /* 13 digits */
        {"mode", "16877", 0, "directory's mode"},        /* a dir mode on a file key */
        {"mode", "33188", 1, "not a directory's mode"},  /* a file mode on a dir key */
        {"uid", "-1", 0, "is negative"},
        {"uid", "4294967295", 0, "out of range"},
        {"uid", "99999999999", 0, "out of range"},
        {"gid", "1e3", 0, "is not a number"},
        {"gid", "", 0, "is not a number"},
        {"mtime", "-5", 0, "is negative"},
        {"mtime", "-1609459200.5", 0, "is negative"},
        {"mtime", "abc", 0, "is not a time"},
        {"mtime", "1609459200.", 0, "is not a time"},
        {"mtime", ".5", 0, "is not a time"},
        {"mtime", "1609459200.5x", 0, "is not a time"},
        {"mtime", "1e9", 0, "is not a time"},
        {"mtime", "99999999999999999999999", 0, "past the year 9999"},
        {"ctime", "1969-12-31T23:59:59Z", 0, "before 1970"},
        {"atime", "2021-02-30T00:00:00Z", 0, "is not a time"},
        {"atime", "2021-01-01T00:00:00", 0, "is not a time"},
        {"atime", "2021-01-01 00:00:00Z", 0, "is not a time"},
        {"atime", "2021-13-01T00:00:00Z", 0, "is not a time"},
        {"atime", "2021-01-01T24:00:00Z", 0, "is not a time"},
        {"atime", "2021-01-01T00:00:00+25:00", 0, "is not a time"},
        {"gcsfuse_mtime", "yesterday", 0, "is not a time"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct store_meta m = {(char *)cases[i].name, (char *)cases[i].value};
        char why[FS_META_WHY_MAX];
        int bad;
        struct fs_attr a = decode(&m, 1, NULL, 0, cases[i].is_dir, &bad, why, sizeof why);
        mode_t want_type = cases[i].is_dir ? S_IFDIR : S_IFREG;
        int type_only = strstr(cases[i].reason, "directory's mode") != NULL;
        ok(bad == 1 && strstr(why, cases[i].reason) && strstr(why, cases[i].name) &&
               (a.mode & S_IFMT) == want_type &&
               (type_only ? (a.from_meta == FS_META_MODE) : a.from_meta == 0) && a.uid == 1000 &&
               a.mtime.tv_sec == LM && a.ctime.tv_sec == LM && a.atime.tv_sec == LM,
           "x-amz-meta-%s '%s' (dir %d) is ignored: %s", cases[i].name, cases[i].value,
           cases[i].is_dir, why);
    }
    struct store_meta m = {"mode", "16877"};
    char why[FS_META_WHY_MAX];
    int bad;
    struct fs_attr a = decode(&m, 1, NULL, 0, 0, &bad, why, sizeof why);
    is_int(a.mode, S_IFREG | 0755, "a dir mode on a file key keeps its permissions");
    m = (struct store_meta){"mode", "33152"};
    a = decode(&m, 1, NULL, 0, 1, &bad, why, sizeof why);
    is_int(a.mode, S_IFDIR | 0600, "a file mode on a dir key keeps its permissions");

    a = decode(NULL, 0, "application/x-directory; charset=x", 0, 0, &bad, why, sizeof why);
    ok(bad == 1 && S_ISREG(a.mode) && strstr(why, "old s3fs directory"),
       "x-directory Content-Type without a trailing '/': a regular file, noted");

    static const struct store_meta many[] = {
        {"atime", "x"}, {"ctime", "-1"}, {"gid", "y"}, {"mode", "z"}, {"mtime", "-2"}, {"uid", "w"},
    };
    a = decode(many, N(many), NULL, 0, 0, &bad, why, sizeof why);
    ok(bad == 6 && a.from_meta == 0 && strstr(why, "x-amz-meta-atime 'x'") &&
           strstr(why, "; x-amz-meta-uid 'w'"),
       "six bad values: six reasons on one line: %s", why);
    char small[40];
    a = decode(many, N(many), NULL, 0, 0, &bad, small, sizeof small);
    ok(bad == 6 && strlen(small) < sizeof small, "the reasons are cut to the buffer: '%s'", small);
    char longv[300];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    longv[3] = '\n';
    m = (struct store_meta){"uid", longv};
    a = decode(&m, 1, NULL, 0, 0, &bad, why, sizeof why);
    ok(bad == 1 && strstr(why, "xxx?xxx") && strstr(why, "...'") && strlen(why) < 200,
       "a long value is shown cut, control bytes as '?': %s", why);
}

static void test_parsers(void)
{
    mode_t m;
    uint32_t id;
    struct timespec ts;
    const char *r;
    ok(fs_meta_parse_mode("40755", &m, &r) == 0 && m == (S_IFDIR | 0755),
       "'40755' (rclone's octal dir) is drwxr-xr-x: decimal 40755 has no valid type");
    ok(fs_meta_parse_mode("33000", &m, &r) == 0 && m == (S_IFREG | 0350),
       "'33000' is decimal (valid), not octal");
    ok(fs_meta_parse_mode("0", &m, &r) == 0 && m == 0, "'0' is mode 0");
    ok(fs_meta_parse_mode("65528", &m, &r) < 0, "65528 = 0177770: type 0170000 is none");
    ok(fs_meta_parse_mode("65535", &m, &r) == 0 && m == (S_IFBLK | 05535),
       "65535 (0177777, no type) read as octal is a block device: the octal rule's price");
    ok(fs_meta_parse_id("0", &id, &r) == 0 && id == 0, "uid 0");
    ok(fs_meta_parse_id("4294967294", &id, &r) == 0 && id == 4294967294u, "uid 2^32-2");
    ok(fs_meta_parse_time("0", &ts, &r) == 0 && ts.tv_sec == 0 && ts.tv_nsec == 0,
       "time 0 is the epoch");
    ok(fs_meta_parse_time("1.1234567891", &ts, &r) == 0 && ts.tv_nsec == 123456789,
       "digits past the ninth are dropped");
    ok(fs_meta_parse_time("2021-01-01T02:00:00+02:00", &ts, &r) == 0 && ts.tv_sec == 1609459200,
       "RFC 3339 with an offset");
    ok(fs_meta_parse_time("2020-02-29t12:00:00.000000001z", &ts, &r) == 0 &&
           ts.tv_sec == 1582977600 && ts.tv_nsec == 1,
       "RFC 3339 leap day, lower-case t and z, 1 ns");
    ok(fs_meta_parse_time("1970-01-01T00:30:00+01:00", &ts, &r) < 0 && strstr(r, "1970"),
       "RFC 3339 before the epoch once offset");
    ok(fs_meta_parse_time("9999-12-31T23:59:59Z", &ts, &r) == 0 && ts.tv_sec == 253402300799,
       "the last second of 9999");
    ok(fs_meta_parse_time("253402300800", &ts, &r) < 0, "a second past it");
}

static void test_xattr_captured(void)
{
    struct fs_xattr *x;
    size_t n;
    char why[512];
    int rc = fs_xattr_decode(s3fs_file[6].value, &x, &n, why, sizeof why);
    ok(rc == 0 && n == 3, "s3fs xattr header: 3 attributes (rc %d, %s)", rc, why);
    if (n == 3) {
        is_str(x[0].name, "security.selinux", "sorted: security.selinux");
        ok(x[0].len == 3 && memcmp(x[0].value, "xyz", 3) == 0, "  = xyz");
        is_str(x[1].name, "user.bin", "user.bin");
        ok(x[1].len == 4 && memcmp(x[1].value, "\x00\x01\x02\x03", 4) == 0, "  = 00 01 02 03");
        is_str(x[2].name, "user.foo", "user.foo");
        ok(x[2].len == 3 && memcmp(x[2].value, "bar", 3) == 0, "  = bar");
        char err[256];
        char *h = fs_xattr_encode(x, n, err, sizeof err);
        is_str(h, s3fs_file[6].value, "encoding them again gives s3fs's header byte for byte");
        free(h);
    }
    fs_xattr_free(x, n);

    /* setfattr -n 'user.a b%c~d-e_f.g*h' -v v; setfattr -n 'user.q"x' -v 1: s3fs wrote
     * the quote raw and cannot read that pair back (getfattr shows only the first) */
    static const char two[] = "%7B%22user.a%20b%25c~d-e_f.g%2Ah%22%3A%22dg%3D%3D%22%2C%22user.q%"
                              "22x%22%3A%22MQ%3D%3D%22%7D";
    rc = fs_xattr_decode(two, &x, &n, why, sizeof why);
    ok(rc == 1 && n == 1 && strcmp(x[0].name, "user.a b%c~d-e_f.g*h") == 0 && x[0].len == 1 &&
           x[0].value[0] == 'v',
       "a name with space, %%, ~, *: read; the pair with a raw '\"' skipped like s3fs does");
    ok(strstr(why, "pair 2") && strstr(why, "skipped"), "  and said: %s", why);
    char err[256];
    char *h = fs_xattr_encode(x, n, err, sizeof err);
    is_str(h, "%7B%22user.a%20b%25c~d-e_f.g%2Ah%22%3A%22dg%3D%3D%22%7D",
           "  its encoding is s3fs's (space %%20, %% %%25, * %%2A, ~ kept)");
    free(h);
    fs_xattr_free(x, n);
}

static void test_xattr_rules(void)
{
    struct fs_xattr *x;
    size_t n;
    char why[512], err[256];
    ok(fs_xattr_decode("%7B%7D", &x, &n, why, sizeof why) == 0 && n == 0 && !x, "{} is none");
    ok(fs_xattr_decode("{ \"a\" : \"\" }", &x, &n, why, sizeof why) == 0 && n == 1 && x[0].len == 0,
       "raw JSON with spaces, an empty value");
    fs_xattr_free(x, n);
    ok(fs_xattr_decode("{\"k\":\"MQ==\",\"k\":\"Mg==\"}", &x, &n, why, sizeof why) == 1 && n == 1 &&
           x[0].value[0] == '2' && strstr(why, "twice"),
       "a name given twice keeps its last value: %s", why);
    fs_xattr_free(x, n);

    static const struct {
        const char *in;
        int rc;
        const char *reason;
    } bad[] = {
        {"", -1, "not {...}"},
        {"abc", -1, "not {...}"},
        {"}{", -1, "not {...}"},
        {"%7B%7", -1, "bad %-escape"},
        {"%7B%zz%7D", -1, "bad %-escape"},
        {"%", -1, "bad %-escape"},
        {"{\"a\"}", 1, "no ':'"},
        {"{a:\"MQ==\"}", 1, "not \"NAME\""},
        {"{\"a\":MQ==}", 1, "not \"NAME\""},
        {"{\"\":\"MQ==\"}", 1, "name is empty"},
        {"{\"a\":\"MQ=\"}", 1, "multiple of 4"},
        {"{\"a\":\"M!==\"}", 1, "not base64"},
        {"{\"a\":\"=MQ=\"}", 1, "not base64"},
        {"{\"a\":\"MQ==\",}", 1, "pair 2"},
        {"{\"a%00b\":\"MQ==\"}", 1, "NUL"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        int rc = fs_xattr_decode(bad[i].in, &x, &n, why, sizeof why);
        ok(rc == bad[i].rc && strstr(why, bad[i].reason) && (rc < 0 ? !x && n == 0 : 1),
           "xattr '%s': %d, %s", bad[i].in, rc, why);
        fs_xattr_free(x, n);
    }
    /* a 256-byte name, a value past 64 KiB, too many pairs, too long a header */
    struct buf b = {0};
    buf_puts(&b, "{\"");
    for (int i = 0; i < 256; i++)
        buf_putc(&b, 'n');
    buf_puts(&b, "\":\"MQ==\"}");
    ok(fs_xattr_decode(b.p, &x, &n, why, sizeof why) == 1 && n == 0 && strstr(why, "255"),
       "a 256-byte name is skipped");
    fs_xattr_free(x, n);
    buf_reset(&b);
    buf_puts(&b, "{\"v\":\"");
    for (int i = 0; i < 65540 / 3; i++)
        buf_puts(&b, "AAAA");
    buf_puts(&b, "\"}");
    ok(fs_xattr_decode(b.p, &x, &n, why, sizeof why) == -1 && !x && strstr(why, "over 65536"),
       "a value over 64 KiB cannot come: its header is over 64 KiB: %s", why);
    struct fs_xattr huge = {"user.huge", (unsigned char *)b.p, 65537};
    ok(!fs_xattr_encode(&huge, 1, err, sizeof err) && strstr(err, "over 65536"),
       "encode refuses a 65537-byte value: %s", err);
    buf_reset(&b);
    buf_putc(&b, '{');
    for (int i = 0; i <= FS_XATTR_MAX; i++)
        buf_printf(&b, "%s\"%d\":\"\"", i ? "," : "", i);
    buf_putc(&b, '}');
    ok(fs_xattr_decode(b.p, &x, &n, why, sizeof why) == -1 && !x && strstr(why, "over 1024"),
       "1025 attributes: unusable");
    buf_reset(&b);
    for (int i = 0; i <= FS_XATTR_HEADER_MAX; i++)
        buf_putc(&b, 'x');
    ok(fs_xattr_decode(b.p, &x, &n, why, sizeof why) == -1 && !x, "a 64 KiB + 1 header: unusable");
    buf_free(&b);

    /* encode refuses what s3fs could not read back */
    static const char *names[] = {"", "a\"b", "a,b", "a:b"};
    for (size_t i = 0; i < N(names); i++) {
        struct fs_xattr one = {(char *)names[i], (unsigned char *)"v", 1};
        char *h = fs_xattr_encode(&one, 1, err, sizeof err);
        ok(!h && strstr(err, "cannot be stored"), "xattr name '%s' refused: %s", names[i], err);
        free(h);
    }
    struct fs_xattr dup[] = {{"a", (unsigned char *)"1", 1}, {"a", (unsigned char *)"2", 1}};
    ok(!fs_xattr_encode(dup, 2, err, sizeof err) && strstr(err, "twice"), "a name twice refused");
    char *h = fs_xattr_encode(NULL, 0, err, sizeof err);
    is_str(h, "%7B%7D", "no attributes encode as {}");
    free(h);
}

static void test_xattr_roundtrip(void)
{
    /* every byte value, every length 0..7 (base64's padding cases), names with
     * bytes s3fs escapes */
    struct fs_xattr in[10];
    unsigned char all[256];
    char names[10][16];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof names[i], "user.%c{}/%%%d", 'z' - i, i);
        in[i] = (struct fs_xattr){names[i], all + 250 - i, (size_t)i};
    }
    in[8] = (struct fs_xattr){"user.all", all, 256};
    in[9] = (struct fs_xattr){"trusted.\xc3\xa9t\xc3\xa9", (unsigned char *)"\n", 1};
    char err[256], why[512];
    char *h = fs_xattr_encode(in, 10, err, sizeof err);
    struct fs_xattr *out;
    size_t n;
    int rc = h ? fs_xattr_decode(h, &out, &n, why, sizeof why) : -2;
    ok(rc == 0 && n == 10, "round trip of 10 attributes (%d, %s)", rc, h ? "" : err);
    int same = rc == 0 && n == 10;
    for (size_t i = 0; same && i < n; i++) {
        size_t j = 0;
        while (j < 10 && strcmp(in[j].name, out[i].name))
            j++;
        same = j < 10 && in[j].len == out[i].len && !memcmp(in[j].value, out[i].value, in[j].len) &&
               (i == 0 || strcmp(out[i - 1].name, out[i].name) < 0);
    }
    ok(same, "  names and bytes back exactly, in strcmp order");
    for (const char *p = h; h && *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/%", *p)) {
            same = 0;
            break;
        }
    ok(same, "  the header has only the bytes s3fs's URL encoding leaves");
    if (rc == 0) fs_xattr_free(out, n);
    free(h);
}

static void test_encode(void)
{
    struct fs_attr a = {.mode = S_IFREG | 0640,
                        .uid = 1001,
                        .gid = 1002,
                        .size = 6,
                        .mtime = {1609459200, 123456789},
                        .ctime = {1609459200, 123456789},
                        .atime = {1609459200, 123456789}};
    struct fs_xattr x[] = {{"user.foo", (unsigned char *)"bar", 3},
                           {"security.selinux", (unsigned char *)"xyz", 3},
                           {"user.bin", (unsigned char *)"\x00\x01\x02\x03", 4}};
    struct store_meta *m;
    size_t n;
    const char *ct;
    char err[256];
    int rc = fs_meta_encode(&a, x, N(x), &m, &n, &ct, err, sizeof err);
    ok(rc == 0 && n == N(s3fs_file), "encode: 7 headers (%s)", rc ? err : "");
    int same = rc == 0 && n == N(s3fs_file);
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(m[i].name, s3fs_file[i].name) && !strcmp(m[i].value, s3fs_file[i].value);
    ok(same, "encode: exactly the headers s3fs 1.90 wrote for that file, in name order");
    is_str(ct, "application/octet-stream", "encode: a file's Content-Type");

    /* and back */
    char why[FS_META_WHY_MAX];
    int bad;
    struct fs_attr b = decode(m, n, ct, 6, 0, &bad, why, sizeof why);
    ok(bad == 0 && b.mode == a.mode && b.uid == a.uid && b.gid == a.gid &&
           b.mtime.tv_nsec == a.mtime.tv_nsec && b.from_meta == ALL_META,
       "encode then decode: the same attributes");
    fs_meta_free(m, n);

    struct fs_attr d = {.mode = S_IFDIR | 0750,
                        .mtime = {1591012800, 0},
                        .ctime = {1591012800, 0},
                        .atime = {1591012800, 0},
                        .uid = 5,
                        .gid = 6};
    rc = fs_meta_encode(&d, NULL, 0, &m, &n, &ct, err, sizeof err);
    ok(rc == 0 && n == 6 && !strcmp(m[3].value, "16872") && !strcmp(m[4].value, "1591012800") &&
           !strcmp(ct, "application/x-directory"),
       "encode dir: mode 16872, whole seconds without a point, x-directory, no xattr header");
    b = decode(m, n, ct, 0, 1, &bad, why, sizeof why);
    ok(bad == 0 && b.mode == d.mode && b.uid == 5, "  and back");
    fs_meta_free(m, n);

    struct fs_attr l = {.mode = S_IFLNK | 0777, .mtime = {1, 5}, .ctime = {2, 0}, .atime = {3, 0}};
    rc = fs_meta_encode(&l, NULL, 0, &m, &n, &ct, err, sizeof err);
    ok(rc == 0 && !strcmp(m[3].value, "41471") && !strcmp(m[4].value, "1.000000005"),
       "encode symlink: 41471, 5 ns as .000000005");
    fs_meta_free(m, n);

    /* refusals */
    struct fs_attr neg = a;
    neg.mtime.tv_sec = -1;
    ok(fs_meta_encode(&neg, NULL, 0, &m, &n, &ct, err, sizeof err) < 0 && !m,
       "a negative time is refused: %s", err);
    neg = a;
    neg.atime.tv_nsec = 1000000000;
    ok(fs_meta_encode(&neg, NULL, 0, &m, &n, &ct, err, sizeof err) < 0, "a bad tv_nsec is refused");
    neg = a;
    neg.mode = 0644;
    ok(fs_meta_encode(&neg, NULL, 0, &m, &n, &ct, err, sizeof err) < 0 && strstr(err, "type"),
       "a mode without type is refused: %s", err);
    unsigned char big[1500] = {0};
    struct fs_xattr bx = {"user.big", big, sizeof big};
    ok(fs_meta_encode(&a, &bx, 1, &m, &n, &ct, err, sizeof err) < 0 && strstr(err, "2048"),
       "xattrs past S3's 2 KiB are refused: %s", err);
    struct fs_xattr ok1 = {"user.ok", big, 1000};
    rc = fs_meta_encode(&a, &ok1, 1, &m, &n, &ct, err, sizeof err);
    ok(rc == 0 && n == 7, "1000 bytes of xattr fit");
    if (rc == 0) fs_meta_free(m, n);
    struct fs_xattr badname = {"a:b", big, 1};
    ok(fs_meta_encode(&a, &badname, 1, &m, &n, &ct, err, sizeof err) < 0 &&
           strstr(err, "cannot be stored"),
       "a bad xattr name is refused through encode too");
}

int main(void)
{
    plan_no_plan();
    test_s3fs_captured();
    test_rclone_captured();
    test_gcs();
    test_no_meta();
    test_bad_values();
    test_parsers();
    test_xattr_captured();
    test_xattr_rules();
    test_xattr_roundtrip();
    test_encode();
    return done_testing();
}
