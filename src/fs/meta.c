/* meta.c - attributes from an object's user metadata and back (see meta.h).
 *
 * Sources, first good one wins, field by field:
 *
 *   mode   mode (s3fs decimal, else rclone octal), goog-reserved-posix-mode (octal)
 *   uid    uid, goog-reserved-posix-uid          gid likewise
 *   mtime  mtime, gcsfuse_mtime, goog-reserved-file-mtime
 *   ctime  ctime
 *   atime  atime, goog-reserved-file-atime
 *
 * then Last-Modified for the times and the mount's defaults for the rest.
 * Numbers are parsed by hand (no strtol: it takes " 12", "+12", "0x12" and
 * saturates silently). */
#include "meta.h"

#include "util/mem.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The latest time we believe: 9999-12-31T23:59:59Z. */
#define TIME_MAX_SEC 253402300799LL
#define ID_MAX       4294967294u /* 4294967295 is (uid_t)-1, "no owner" to chown */

/* Appends "; " and one formatted note to why. */
__attribute__((format(printf, 3, 4))) static void note(char *why, size_t whylen, const char *fmt,
                                                       ...)
{
    if (!why || whylen == 0) return;
    size_t used = strlen(why);
    if (used + 1 >= whylen) return;
    if (used) {
        snprintf(why + used, whylen - used, "; ");
        used = strlen(why);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + used, whylen - used, fmt, ap);
    va_end(ap);
}

/* v shown in a note: at most 64 bytes, non-printable bytes as '?'. */
static const char *shown(const char *v, char out[72])
{
    size_t i = 0;
    for (; v[i] && i < 64; i++)
        out[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    if (v[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static int is_type(mode_t t)
{
    switch (t) {
    case 0:
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
        return 1;
    default:
        return 0;
    }
}

/* Digits in base (8 or 10) into *v, at most 12 of them. */
static int digits(const char *s, int base, uint64_t *v)
{
    uint64_t x = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] >= '0' + base || n >= 12) return -1;
        x = x * (uint64_t)base + (uint64_t)(s[n] - '0');
    }
    if (n == 0) return -1;
    *v = x;
    return 0;
}

int fs_meta_parse_mode(const char *s, mode_t *mode, const char **reason)
{
    uint64_t v;
    if (digits(s, 10, &v) < 0) {
        *reason = "is not a number";
        return -1;
    }
    if (v <= 0177777 && is_type((mode_t)v & S_IFMT)) {
        *mode = (mode_t)v;
        return 0;
    }
    /* Not a mode in decimal: rclone writes it in octal ("100644", "40755"),
     * which never reads as a valid decimal mode with its type bits. */
    if (digits(s, 8, &v) == 0 && v <= 0177777 && (v & S_IFMT) && is_type((mode_t)v & S_IFMT)) {
        *mode = (mode_t)v;
        return 0;
    }
    *reason = "is not a mode (impossible type bits, in decimal and in octal)";
    return -1;
}

/* goog-reserved-posix-mode: octal, usually the permissions alone. */
static int parse_mode_octal(const char *s, mode_t *mode, const char **reason)
{
    uint64_t v;
    if (digits(s, 8, &v) < 0) {
        *reason = "is not an octal number";
        return -1;
    }
    if (v > 0177777 || !is_type((mode_t)v & S_IFMT)) {
        *reason = "is not a mode (impossible type bits)";
        return -1;
    }
    *mode = (mode_t)v;
    return 0;
}

int fs_meta_parse_id(const char *s, uint32_t *id, const char **reason)
{
    uint64_t v;
    if (digits(s, 10, &v) < 0) {
        *reason = s[0] == '-' ? "is negative" : "is not a number";
        return -1;
    }
    if (v > ID_MAX) {
        *reason = "is out of range (at most 4294967294)";
        return -1;
    }
    *id = (uint32_t)v;
    return 0;
}

/* n decimal digits at s into *v; -1 unless all are digits. */
static int fixed(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

/* ".DIGITS" at *p: nanoseconds, digits past the ninth dropped. */
static int fraction(const char **p, long *nsec)
{
    const char *s = *p;
    long ns = 0;
    int n = 0;
    if (*s != '.') {
        *nsec = 0;
        return 0;
    }
    for (s++; *s >= '0' && *s <= '9'; s++, n++)
        if (n < 9) ns = ns * 10 + (*s - '0');
    if (n == 0) return -1;
    for (int i = n; i < 9; i++)
        ns *= 10;
    *p = s;
    *nsec = ns;
    return 0;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY-MM-DDTHH:MM:SS[.F](Z|+HH:MM|-HH:MM) */
static int parse_rfc3339(const char *s, struct timespec *ts, const char **reason)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    long ns;
    *reason = "is not a time (seconds, or RFC 3339)";
    if (fixed(s, 4, &y) || s[4] != '-' || fixed(s + 5, 2, &mo) || s[7] != '-' ||
        fixed(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || fixed(s + 11, 2, &h) ||
        s[13] != ':' || fixed(s + 14, 2, &mi) || s[16] != ':' || fixed(s + 17, 2, &sec))
        return -1;
    const char *p = s + 19;
    if (fraction(&p, &ns) < 0) return -1;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (fixed(p + 1, 2, &oh) || p[3] != ':' || fixed(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60 ||
        d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -1;
    if (sec == 60) sec = 59; /* a leap second: the kernel has no name for it */
    /* days since 1970-01-01 by the civil-from-days inverse (no timegm: it
     * reads the process's state and normalises out-of-range fields) */
    int yy = mo <= 2 ? y - 1 : y;
    long era = (yy >= 0 ? yy : yy - 399) / 400;
    long yoe = yy - era * 400;
    long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long long days = era * 146097LL + doe - 719468;
    long long t = days * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
    if (t < 0) {
        *reason = "is before 1970";
        return -1;
    }
    if (t > TIME_MAX_SEC) {
        *reason = "is past the year 9999";
        return -1;
    }
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = ns;
    return 0;
}

int fs_meta_parse_time(const char *s, struct timespec *ts, const char **reason)
{
    if (s[0] == '-') {
        *reason = "is negative";
        return -1;
    }
    if (strlen(s) >= 5 && s[4] == '-') return parse_rfc3339(s, ts, reason);
    const char *p = s;
    long long sec = 0;
    long ns;
    for (; *p >= '0' && *p <= '9'; p++) {
        sec = sec * 10 + (*p - '0');
        if (sec > TIME_MAX_SEC) {
            *reason = "is past the year 9999";
            return -1;
        }
    }
    if (p == s || fraction(&p, &ns) < 0 || *p) {
        *reason = "is not a time (seconds, or RFC 3339)";
        return -1;
    }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = ns;
    return 0;
}

static const char *find(const struct fs_meta_in *in, const char *name)
{
    for (size_t i = 0; i < in->nmeta; i++)
        if (in->meta[i].name && in->meta[i].value && strcmp(in->meta[i].name, name) == 0)
            return in->meta[i].value;
    return NULL;
}

typedef int (*parse_fn)(const char *s, void *out, const char **reason);

static int p_mode(const char *s, void *out, const char **reason)
{
    return fs_meta_parse_mode(s, out, reason);
}

static int p_gmode(const char *s, void *out, const char **reason)
{
    return parse_mode_octal(s, out, reason);
}

static int p_id(const char *s, void *out, const char **reason)
{
    return fs_meta_parse_id(s, out, reason);
}

static int p_time(const char *s, void *out, const char **reason)
{
    return fs_meta_parse_time(s, out, reason);
}

/* Where a field may come from, in order; a NULL name ends the list. */
struct src {
    const char *name;
    parse_fn parse;
};

/* The first source whose value parses into out, or NULL; those that were
 * there but did not parse are noted and counted in *bad. */
static const struct src *first_good(const struct fs_meta_in *in, const struct src *s, void *out,
                                    int *bad, char *why, size_t whylen)
{
    for (; s->name; s++) {
        const char *v = find(in, s->name), *reason;
        char tmp[72];
        if (!v) continue;
        if (s->parse(v, out, &reason) == 0) return s;
        note(why, whylen, "x-amz-meta-%s '%s' %s", s->name, shown(v, tmp), reason);
        (*bad)++;
    }
    return NULL;
}

static void decode_mode(const struct fs_meta_in *in, const struct fs_meta_defaults *def,
                        struct fs_attr *a, int *bad, char *why, size_t whylen)
{
    static const struct src srcs[] = {
        {"mode", p_mode}, {"goog-reserved-posix-mode", p_gmode}, {NULL, NULL}};
    mode_t type = in->is_dir ? S_IFDIR : S_IFREG, m = 0;
    char tmp[72];
    a->mode = type | ((in->is_dir ? 0777 : 0666) & ~def->umask & 07777);
    const struct src *s = first_good(in, srcs, &m, bad, why, whylen);
    if (!s) return;
    mode_t t = m & S_IFMT;
    const char *v = find(in, s->name);
    if (in->is_dir && t && t != S_IFDIR) {
        note(why, whylen,
             "x-amz-meta-%s '%s' is not a directory's mode, on a directory: its type is ignored",
             s->name, shown(v, tmp));
        (*bad)++;
    } else if (!in->is_dir && t == S_IFDIR) {
        note(why, whylen,
             "x-amz-meta-%s '%s' is a directory's mode, on an object whose key does not end in "
             "'/': shown as a regular file",
             s->name, shown(v, tmp));
        (*bad)++;
    } else if (t) {
        type = t;
    }
    a->mode = type | (m & 07777);
    a->from_meta |= FS_META_MODE;
}

int fs_meta_decode(const struct fs_meta_in *in, const struct fs_meta_defaults *def,
                   struct fs_attr *a, char *why, size_t whylen)
{
    static const struct src uids[] = {
        {"uid", p_id}, {"goog-reserved-posix-uid", p_id}, {NULL, NULL}};
    static const struct src gids[] = {
        {"gid", p_id}, {"goog-reserved-posix-gid", p_id}, {NULL, NULL}};
    static const struct src mtimes[] = {{"mtime", p_time},
                                        {"gcsfuse_mtime", p_time},
                                        {"goog-reserved-file-mtime", p_time},
                                        {NULL, NULL}};
    static const struct src ctimes[] = {{"ctime", p_time}, {NULL, NULL}};
    static const struct src atimes[] = {
        {"atime", p_time}, {"goog-reserved-file-atime", p_time}, {NULL, NULL}};
    int bad = 0;
    uint32_t id;
    if (why && whylen) why[0] = '\0';
    memset(a, 0, sizeof *a);
    a->size = in->size;

    decode_mode(in, def, a, &bad, why, whylen);
    const char *ct = in->content_type;
    if (!in->is_dir && ct && strncmp(ct, "application/x-directory", 23) == 0 &&
        (ct[23] == '\0' || ct[23] == ';')) {
        note(why, whylen,
             "Content-Type application/x-directory on an object whose key does not end in '/' "
             "(an old s3fs directory): shown as a regular file");
        bad++;
    }

    a->uid = def->uid;
    if (first_good(in, uids, &id, &bad, why, whylen)) {
        a->uid = id;
        a->from_meta |= FS_META_UID;
    }
    a->gid = def->gid;
    if (first_good(in, gids, &id, &bad, why, whylen)) {
        a->gid = id;
        a->from_meta |= FS_META_GID;
    }

    struct timespec base = {in->last_modified >= 0 ? in->last_modified : def->mount_time, 0};
    static const struct {
        const struct src *names;
        unsigned bit;
        size_t off;
    } times[] = {
        {mtimes, FS_META_MTIME, offsetof(struct fs_attr, mtime)},
        {ctimes, FS_META_CTIME, offsetof(struct fs_attr, ctime)},
        {atimes, FS_META_ATIME, offsetof(struct fs_attr, atime)},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        struct timespec *t = (struct timespec *)((char *)a + times[i].off);
        *t = base;
        if (first_good(in, times[i].names, t, &bad, why, whylen))
            a->from_meta |= times[i].bit;
        else
            *t = base; /* a failed parse may have written part of it */
    }
    return bad;
}

/* --- x-amz-meta-xattr --- */

static int unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int b64char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Strict padded base64 of s[0..n) into a heap buffer; NULL with *reason. */
static unsigned char *b64decode(const char *s, size_t n, size_t *len, const char **reason)
{
    size_t pad = 0;
    if (n % 4) {
        *reason = "its value is not base64 (length not a multiple of 4)";
        return NULL;
    }
    if (n && s[n - 1] == '=') pad++;
    if (n > 1 && s[n - 2] == '=') pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64char((unsigned char)s[i])) {
            *reason = "its value is not base64";
            return NULL;
        }
    if (n / 4 * 3 - pad > FS_XATTR_VALUE_MAX) {
        *reason = "its value is over 65536 bytes";
        return NULL;
    }
    unsigned char *out = xmalloc(n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || (size_t)got != n / 4 * 3) {
        free(out);
        *reason = "its value is not base64";
        return NULL;
    }
    *len = (size_t)got - pad;
    return out;
}

/* s[0..*n) without white space at either end. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r' || s[*n - 1] == '\n'))
        (*n)--;
    return s;
}

/* "TEXT" -> TEXT; -1 unless quoted with no quote inside. */
static int unquote(const char **s, size_t *n)
{
    if (*n < 2 || (*s)[0] != '"' || (*s)[*n - 1] != '"' || memchr(*s + 1, '"', *n - 2)) return -1;
    (*s)++;
    *n -= 2;
    return 0;
}

struct pair {
    struct fs_xattr x;
    size_t order;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *p = a, *q = b;
    int c = strcmp(p->x.name, q->x.name);
    return c ? c : (p->order > q->order) - (p->order < q->order);
}

/* One "NAME":"BASE64" pair into *x; -1 with *reason. */
static int parse_pair(const char *s, size_t n, struct fs_xattr *x, const char **reason)
{
    const char *colon = memchr(s, ':', n);
    if (!colon) {
        *reason = "has no ':'";
        return -1;
    }
    size_t kn = (size_t)(colon - s), vn = n - kn - 1;
    const char *k = trim(s, &kn), *v = trim(colon + 1, &vn);
    if (unquote(&k, &kn) < 0 || unquote(&v, &vn) < 0) {
        *reason = "is not \"NAME\":\"VALUE\" (a name with '\"', ',' or ':' cannot be read back)";
        return -1;
    }
    if (kn == 0 || kn > FS_XATTR_NAME_MAX || memchr(k, '\0', kn)) {
        *reason = kn ? "its name is over 255 bytes or has a NUL" : "its name is empty";
        return -1;
    }
    unsigned char *val = b64decode(v, vn, &x->len, reason);
    if (!val) return -1;
    x->name = xstrndup(k, kn);
    x->value = val;
    return 0;
}

int fs_xattr_decode(const char *header, struct fs_xattr **out, size_t *n, char *why, size_t whylen)
{
    size_t hl = strlen(header), jl = 0, np = 0, skipped = 0;
    struct pair *pairs = NULL;
    *out = NULL;
    *n = 0;
    if (why && whylen) why[0] = '\0';
    if (hl > FS_XATTR_HEADER_MAX) {
        note(why, whylen, "x-amz-meta-xattr is %zu bytes, over %d", hl, FS_XATTR_HEADER_MAX);
        return -1;
    }
    char *json = xmalloc(hl + 1);
    for (size_t i = 0; i < hl; i++) {
        if (header[i] != '%') {
            json[jl++] = header[i];
            continue;
        }
        int hi = i + 2 < hl ? unhex(header[i + 1]) : -1;
        int lo = hi >= 0 ? unhex(header[i + 2]) : -1;
        if (lo < 0) {
            note(why, whylen, "x-amz-meta-xattr has a bad %%-escape at byte %zu", i);
            free(json);
            return -1;
        }
        json[jl++] = (char)(hi << 4 | lo);
        i += 2;
    }
    json[jl] = '\0';
    const char *open = memchr(json, '{', jl), *close = NULL;
    for (size_t i = jl; i > 0 && !close; i--)
        if (json[i - 1] == '}') close = json + i - 1;
    if (!open || !close || close < open) {
        note(why, whylen, "x-amz-meta-xattr is not {...} once URL-decoded");
        free(json);
        return -1;
    }
    size_t inner = (size_t)(close - open - 1);
    const char *p = trim(open + 1, &inner), *end = p + inner;
    for (size_t idx = 1; inner && p <= end; idx++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end, *reason;
        size_t len = (size_t)(stop - p);
        const char *seg = trim(p, &len);
        struct fs_xattr x;
        if (np >= FS_XATTR_MAX) {
            note(why, whylen, "x-amz-meta-xattr has over %d attributes", FS_XATTR_MAX);
            goto fail;
        }
        if (parse_pair(seg, len, &x, &reason) == 0) {
            if (np % 16 == 0) pairs = xrealloc(pairs, (np + 16) * sizeof *pairs);
            pairs[np].x = x;
            pairs[np].order = np;
            np++;
        } else {
            char tmp[72], *frag = xstrndup(seg, len);
            note(why, whylen, "x-amz-meta-xattr pair %zu '%s' skipped: %s", idx, shown(frag, tmp),
                 reason);
            free(frag);
            skipped++;
        }
        p = stop + 1;
    }
    free(json);
    json = NULL;
    if (np) qsort(pairs, np, sizeof *pairs, pair_cmp);
    struct fs_xattr *v = np ? xcalloc(np, sizeof *v) : NULL;
    size_t nv = 0;
    for (size_t i = 0; i < np; i++) {
        if (i + 1 < np && strcmp(pairs[i].x.name, pairs[i + 1].x.name) == 0) {
            char tmp[72];
            note(why, whylen, "x-amz-meta-xattr gives '%s' twice: the last value is kept",
                 shown(pairs[i].x.name, tmp));
            skipped++;
            free(pairs[i].x.name);
            free(pairs[i].x.value);
            continue;
        }
        v[nv++] = pairs[i].x;
    }
    free(pairs);
    *out = v;
    *n = nv;
    return skipped ? 1 : 0;
fail:
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].x.name);
        free(pairs[i].x.value);
    }
    free(pairs);
    free(json);
    return -1;
}

void fs_xattr_free(struct fs_xattr *x, size_t n)
{
    for (size_t i = 0; x && i < n; i++) {
        free(x[i].name);
        free(x[i].value);
    }
    free(x);
}

static int xattr_ptr_cmp(const void *a, const void *b)
{
    const struct fs_xattr *const *p = a, *const *q = b;
    return strcmp((*p)->name, (*q)->name);
}

/* s3fs's URL encoding: A-Z a-z 0-9 - . _ ~ / kept, the rest %XX. */
static void url_encode(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            buf_putc(out, (char)c);
        } else {
            buf_putc(out, '%');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
    }
}

char *fs_xattr_encode(const struct fs_xattr *x, size_t n, char *err, size_t errlen)
{
    const struct fs_xattr **v = xcalloc(n ? n : 1, sizeof *v);
    struct buf json = {0}, out = {0};
    for (size_t i = 0; i < n; i++) {
        const char *name = x[i].name;
        size_t nl = name ? strlen(name) : 0;
        if (nl == 0 || nl > FS_XATTR_NAME_MAX || strpbrk(name, "\",:")) {
            snprintf(err, errlen,
                     "xattr name '%.255s' cannot be stored: empty, over 255 bytes, or with '\"', "
                     "',' or ':' (s3fs's format cannot carry them)",
                     name ? name : "");
            goto fail;
        }
        if (x[i].len > FS_XATTR_VALUE_MAX) {
            snprintf(err, errlen, "xattr '%s' is %zu bytes, over %d", name, x[i].len,
                     FS_XATTR_VALUE_MAX);
            goto fail;
        }
        v[i] = &x[i];
    }
    qsort(v, n, sizeof *v, xattr_ptr_cmp);
    buf_putc(&json, '{');
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(v[i - 1]->name, v[i]->name) == 0) {
            snprintf(err, errlen, "xattr '%s' is given twice", v[i]->name);
            goto fail;
        }
        if (i) buf_putc(&json, ',');
        buf_printf(&json, "\"%s\":\"", v[i]->name);
        if (v[i]->len) {
            size_t b = (v[i]->len + 2) / 3 * 4;
            buf_reserve(&json, b + 1);
            EVP_EncodeBlock((unsigned char *)json.p + json.len, v[i]->value, (int)v[i]->len);
            json.len += b;
            json.p[json.len] = '\0';
        }
        buf_putc(&json, '"');
    }
    buf_putc(&json, '}');
    url_encode(&out, json.p, json.len);
    buf_free(&json);
    free(v);
    return buf_steal(&out, NULL);
fail:
    buf_free(&json);
    free(v);
    return NULL;
}

/* --- encoding the attributes --- */

static char *time_str(struct timespec t)
{
    if (t.tv_nsec) return xasprintf("%lld.%09ld", (long long)t.tv_sec, t.tv_nsec);
    return xasprintf("%lld", (long long)t.tv_sec);
}

void fs_meta_free(struct store_meta *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].name);
        free(m[i].value);
    }
    free(m);
}

int fs_meta_encode(const struct fs_attr *a, const struct fs_xattr *x, size_t nx,
                   struct store_meta **out, size_t *n, const char **ctype, char *err, size_t errlen)
{
    const struct timespec *ts[] = {&a->atime, &a->ctime, &a->mtime};
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < 3; i++)
        if (ts[i]->tv_sec < 0 || ts[i]->tv_sec > TIME_MAX_SEC || ts[i]->tv_nsec < 0 ||
            ts[i]->tv_nsec > 999999999) {
            snprintf(err, errlen, "a time of %lld.%09ld s cannot be stored",
                     (long long)ts[i]->tv_sec, ts[i]->tv_nsec);
            return -1;
        }
    if (!is_type(a->mode & S_IFMT) || !(a->mode & S_IFMT)) {
        snprintf(err, errlen, "mode 0%o has no file type", (unsigned)a->mode);
        return -1;
    }
    char *xa = NULL;
    if (nx && !(xa = fs_xattr_encode(x, nx, err, errlen))) return -1;
    /* sorted by name, as a HEAD returns them */
    struct store_meta *m = xcalloc(7, sizeof *m);
    size_t k = 0, total = 0;
    m[k++] = (struct store_meta){xstrdup("atime"), time_str(a->atime)};
    m[k++] = (struct store_meta){xstrdup("ctime"), time_str(a->ctime)};
    m[k++] = (struct store_meta){xstrdup("gid"), xasprintf("%u", (unsigned)a->gid)};
    m[k++] = (struct store_meta){xstrdup("mode"), xasprintf("%u", (unsigned)a->mode)};
    m[k++] = (struct store_meta){xstrdup("mtime"), time_str(a->mtime)};
    m[k++] = (struct store_meta){xstrdup("uid"), xasprintf("%u", (unsigned)a->uid)};
    if (xa) m[k++] = (struct store_meta){xstrdup("xattr"), xa};
    for (size_t i = 0; i < k; i++)
        total += strlen(m[i].name) + strlen(m[i].value);
    if (total > FS_META_S3_MAX) {
        snprintf(err, errlen,
                 "the metadata would be %zu bytes, over S3's %d (the extended attributes take "
                 "%zu)",
                 total, FS_META_S3_MAX, xa ? strlen(xa) : (size_t)0);
        fs_meta_free(m, k);
        return -1;
    }
    *ctype = S_ISDIR(a->mode) ? "application/x-directory" : "application/octet-stream";
    *out = m;
    *n = k;
    return 0;
}
