/* test_fs_names.c - a directory's entries from a delimited LIST (src/fs/names.c).
 *
 * The hashes in the expected names were computed apart, with Python's
 * hashlib.sha256(key).hexdigest()[:8]. */
#include "tap.h"
#include "fs/names.h"
#include "util/mem.h"

#include <stdint.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* objects from keys (size 1 unless the key is in zero[]) */
static struct store_obj *objs_of(const char *const *keys, size_t n, const uint64_t *sizes)
{
    struct store_obj *o = xcalloc(n + 1, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        o[i].key = (char *)keys[i];
        o[i].size = sizes ? sizes[i] : 1;
        o[i].mtime = 1000 + (time_t)i;
        snprintf(o[i].etag, sizeof o[i].etag, "etag%zu", i);
    }
    return o;
}

static int build(const char *prefix, const char *const *keys, size_t nk, const uint64_t *sizes,
                 const char *const *pre, size_t np, struct fs_names *d, char *err, size_t errlen)
{
    struct store_obj *o = objs_of(keys, nk, sizes);
    int rc = fs_names_build(prefix, o, nk, (char *const *)pre, np, d, err, errlen);
    free(o);
    return rc;
}

/* "name:kind:key:dir" per entry, joined by " | " (kind o or d; key/dir "-" when NULL) */
static char *show(const struct fs_names *d)
{
    struct buf b = {0};
    for (size_t i = 0; i < d->n; i++)
        buf_printf(&b, "%s%s:%c:%s:%s", i ? " | " : "", d->v[i].name,
                   d->v[i].kind == FS_NAME_DIR ? 'd' : 'o', d->v[i].key ? d->v[i].key : "-",
                   d->v[i].dir ? d->v[i].dir : "-");
    return buf_steal(&b, NULL);
}

static void check(const char *prefix, const char *const *keys, size_t nk, const uint64_t *sizes,
                  const char *const *pre, size_t np, const char *want, const char *what)
{
    struct fs_names d;
    char err[256] = "";
    int rc = build(prefix, keys, nk, sizes, pre, np, &d, err, sizeof err);
    char *got = rc == 0 ? show(&d) : xstrdup(err);
    is_str(got, want, "%s", what);
    free(got);
    if (rc == 0) fs_names_free(&d);
}

static void test_plain(void)
{
    const char *k[] = {"b", "a.txt", "c d"};
    const char *p[] = {"dir/", "Z/"};
    check("", k, N(k), NULL, p, N(p),
          "Z:d:-:Z/ | a.txt:o:a.txt:- | b:o:b:- | c d:o:c d:- | dir:d:-:dir/",
          "root: objects and prefixes, sorted by name (bytes: 'Z' < 'a')");

    /* a/b/c alone: a and a/b are directories without marker objects */
    const char *ra[] = {"a/"};
    check("", NULL, 0, NULL, ra, 1, "a:d:-:a/", "'a/b/c' alone: the root shows directory a");
    const char *rb[] = {"a/b/"};
    check("a/", NULL, 0, NULL, rb, 1, "b:d:-:a/b/", "  a/ shows directory b");
    const char *rc[] = {"a/b/c"};
    check("a/b/", rc, 1, NULL, NULL, 0, "c:o:a/b/c:-", "  a/b/ shows file c");

    const char *own[] = {"d/", "d/x"};
    check("d/", own, N(own), NULL, NULL, 0, "x:o:d/x:-", "the directory's own marker is no entry");
    check("d/", NULL, 0, NULL, NULL, 0, "", "an empty directory has no entries");
}

static void test_markers(void)
{
    const char *k[] = {"f_$folder$", "g_$folder$", "h/"};
    const uint64_t sz[] = {0, 5, 0};
    const char *p[] = {"h/"};
    check("", k, N(k), sz, p, N(p), "f:d:f_$folder$:f/ | g_$folder$:o:g_$folder$:- | h:d:h/:h/",
          "an empty name_$folder$ is directory name; a non-empty one is a file; a marker 'h/' "
          "and the prefix 'h/' are one directory");
    struct fs_names d;
    char err[256];
    const char *k2[] = {"m_$folder$", "m/"};
    const uint64_t sz2[] = {0, 0};
    const char *p2[] = {"m/"};
    ok(build("", k2, 2, sz2, p2, 1, &d, err, sizeof err) == 0 && d.n == 1, "m: one entry");
    ok(d.n == 1 && d.v[0].dir_from == (FS_DIR_PREFIX | FS_DIR_MARKER | FS_DIR_FOLDER) &&
           strcmp(d.v[0].key, "m/") == 0 && d.v[0].size == 0 && d.v[0].mtime == 1001 &&
           strcmp(d.v[0].etag, "etag1") == 0 && !d.v[0].why,
       "  from all three; the 'm/' marker gives the attributes (size, mtime, etag)");
    fs_names_free(&d);
    ok(build("", NULL, 0, NULL, p2, 1, &d, err, sizeof err) == 0 && d.n == 1 &&
           d.v[0].dir_from == FS_DIR_PREFIX && !d.v[0].key && d.v[0].mtime == -1,
       "a prefix alone: no key, mtime -1");
    fs_names_free(&d);
}

static void test_file_and_dir(void)
{
    const char *k[] = {"a"};
    const char *p[] = {"a/"};
    check("", k, 1, NULL, p, 1, "a:d:-:a/ | a~file~ca978112:o:a:-",
          "'a' beside 'a/': the directory keeps 'a', the file is a~file~<sha256('a')>");
    struct fs_names d;
    char err[256];
    build("", k, 1, NULL, p, 1, &d, err, sizeof err);
    const struct fs_name *f = fs_names_find(&d, "a~file~ca978112");
    ok(f && f->why &&
           strcmp(f->why, "key 'a' is shown as 'a~file~ca978112': a directory has the "
                          "same name") == 0,
       "  with a reason: %s", f && f->why ? f->why : "(none)");
    ok(fs_names_find(&d, "a") && !fs_names_find(&d, "a")->why, "  the directory has none");
    fs_names_free(&d);

    /* the same under a prefix, with a folder marker instead of a prefix */
    const char *k2[] = {"x/f", "x/f_$folder$"};
    const uint64_t sz[] = {3, 0};
    check("x/", k2, 2, sz, NULL, 0, "f:d:x/f_$folder$:x/f/ | f~file~53332222:o:x/f:-",
          "'x/f' beside 'x/f_$folder$': hashed on the whole key");
}

static void test_bad_names(void)
{
    const char *p[] = {"x//"};
    check("x/", NULL, 0, NULL, p, 1, "~empty~cad1837d:d:-:x//",
          "'x//y': under x/ the prefix x// is ~empty~<sha256('x//')>");
    struct fs_names d;
    char err[256];
    build("x/", NULL, 0, NULL, p, 1, &d, err, sizeof err);
    is_str(d.n ? d.v[0].why : "", "key 'x//' is shown as 'x/~empty~cad1837d': empty path component",
           "  the reason");
    fs_names_free(&d);
    /* and the empty directory's own listing: x//y is a file y */
    const char *k[] = {"x//y"};
    check("x//", k, 1, NULL, NULL, 0, "y:o:x//y:-", "  x// lists y");
    /* "x/_$folder$" would be the marker of that empty-named directory */
    const char *kf[] = {"x/_$folder$"};
    const uint64_t z[] = {0};
    check("x/", kf, 1, z, p, 1, "~empty~cad1837d:d:x/_$folder$:x//",
          "  'x/_$folder$' is its folder marker");

    const char *dots[] = {".", ".."};
    const char *dp[] = {"./", "../"};
    check("", dots, 2, NULL, dp, 2,
          "~dotdot~5ec1f7e7:o:..:- | ~dotdot~fa08499e:d:-:../ | ~dot~c14cecec:d:-:./ | "
          "~dot~cdb4ee2a:o:.:-",
          "'.', '..', './', '../': four derived names, each from its own key (strcmp order)");

    char longn[301], lk[310], lp[310];
    memset(longn, 'n', 300);
    longn[300] = '\0';
    snprintf(lk, sizeof lk, "%s", longn);
    snprintf(lp, sizeof lp, "p/%s", longn);
    const char *lks[] = {lk}, *lps[] = {lp};
    build("", lks, 1, NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 1 && strlen(d.v[0].name) == 255 && strncmp(d.v[0].name, longn, 241) == 0 &&
           strcmp(d.v[0].name + 241, "~long~230b0774") == 0,
       "a 300-byte name: 241 bytes of it ~long~<hash>, 255 in all");
    fs_names_free(&d);
    build("p/", lps, 1, NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 1 && strcmp(d.v[0].name + 241, "~long~23c43add") == 0 && d.v[0].why &&
           strstr(d.v[0].why, "name over 255 bytes"),
       "  under p/: hashed on the whole key 'p/nnn...'");
    fs_names_free(&d);
    /* 255 bytes is still a name */
    longn[255] = '\0';
    const char *k255[] = {longn};
    build("", k255, 1, NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 1 && strcmp(d.v[0].name, longn) == 0 && !d.v[0].why, "a 255-byte name is its own");
    fs_names_free(&d);
    /* a 255-byte file beside its directory: the stem is cut to fit */
    char dirp[300];
    snprintf(dirp, sizeof dirp, "%s/", longn);
    const char *dps[] = {dirp};
    build("", k255, 1, NULL, dps, 1, &d, err, sizeof err);
    ok(d.n == 2 && strlen(d.v[1].name) == 255 && strstr(d.v[1].name, "~file~"),
       "a 255-byte file beside its directory: cut to 255 with ~file~");
    fs_names_free(&d);

    /* UTF-8: 150 two-byte characters are not cut in half */
    char u[301];
    for (int i = 0; i < 150; i++)
        memcpy(u + 2 * i, "\xc3\xa9", 2);
    u[300] = '\0';
    const char *uk[] = {u};
    build("", uk, 1, NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 1 && strlen(d.v[0].name) == 254 && strncmp(d.v[0].name, u, 240) == 0 &&
           strncmp(d.v[0].name + 240, "~long~", 6) == 0,
       "a long UTF-8 name is cut at 240 bytes, not 241 (inside a character)");
    fs_names_free(&d);

    /* bytes Linux takes: control characters, invalid UTF-8, a backslash */
    const char *odd[] = {"tab\there", "\xff\xfe", "back\\slash", "new\nline"};
    build("", odd, N(odd), NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 4 && fs_names_find(&d, "\xff\xfe") && fs_names_find(&d, "new\nline") &&
           fs_names_find(&d, "tab\there"),
       "names with control bytes or invalid UTF-8 are their own");
    fs_names_free(&d);
    /* a reason shows such bytes escaped */
    const char *np[] = {"\x01/", "\x01"};
    build("", np + 1, 1, NULL, np, 1, &d, err, sizeof err);
    ok(d.n == 2 && d.v[1].why && strstr(d.v[1].why, "key '\\x01' is shown as '\\x01~file~"),
       "  escaped in a reason: %s", d.n == 2 && d.v[1].why ? d.v[1].why : "");
    fs_names_free(&d);
}

static void test_collisions(void)
{
    /* someone named a file what the derived name would be */
    const char *k[] = {"a", "a~file~ca978112"};
    const char *p[] = {"a/"};
    check("", k, 2, NULL, p, 1,
          "a:d:-:a/ | a~file~ca978112:o:a~file~ca978112:- | a~file~ca978112~2:o:a:-",
          "a plain name equal to a derived one wins; the derived one takes ~2");
    struct fs_names d;
    char err[256];
    build("", k, 2, NULL, p, 1, &d, err, sizeof err);
    const struct fs_name *f = fs_names_find(&d, "a~file~ca978112~2");
    ok(f && strstr(f->why, "(the name without ~2 is taken)"), "  and says so: %s", f ? f->why : "");
    fs_names_free(&d);
    const char *k3[] = {"a", "a~file~ca978112", "a~file~ca978112~2"};
    check("", k3, 3, NULL, p, 1,
          "a:d:-:a/ | a~file~ca978112:o:a~file~ca978112:- | "
          "a~file~ca978112~2:o:a~file~ca978112~2:- | a~file~ca978112~3:o:a:-",
          "  and ~3 when ~2 is taken too");
    /* a 255-byte name whose derived name is taken: the counter still fits */
    char longn[301], squat[300];
    memset(longn, 'q', 300);
    longn[300] = '\0';
    const char *lk[] = {longn};
    build("", lk, 1, NULL, NULL, 0, &d, err, sizeof err);
    snprintf(squat, sizeof squat, "%s", d.v[0].name);
    fs_names_free(&d);
    const char *lk2[] = {longn, squat};
    build("", lk2, 2, NULL, NULL, 0, &d, err, sizeof err);
    ok(d.n == 2 && strlen(d.v[0].name) <= 255 && strlen(d.v[1].name) <= 255 &&
           strcmp(d.v[0].name, d.v[1].name) != 0 && fs_names_find(&d, squat) &&
           strcmp(fs_names_find(&d, squat)->key, squat) == 0,
       "a long name's derived name taken: the counter is fitted within 255 bytes");
    fs_names_free(&d);
}

static void test_errors(void)
{
    struct fs_names d;
    char err[256];
    const char *under[] = {"b/x"};
    ok(build("a/", under, 1, NULL, NULL, 0, &d, err, sizeof err) < 0 && strstr(err, "not under") &&
           !d.v && d.n == 0,
       "a key outside the prefix: %s", err);
    const char *deep[] = {"a/x/y"};
    ok(build("a/", deep, 1, NULL, NULL, 0, &d, err, sizeof err) < 0 &&
           strstr(err, "not directly under"),
       "a key two levels down: %s", err);
    ok(build("a", NULL, 0, NULL, NULL, 0, &d, err, sizeof err) < 0 && strstr(err, "end in '/'"),
       "a prefix without '/': %s", err);
    static const char *bad[] = {"a/b", "b/x/", "a/x/y/", "a/"};
    for (size_t i = 0; i < N(bad); i++)
        ok(build("a/", NULL, 0, NULL, bad + i, 1, &d, err, sizeof err) < 0 &&
               strstr(err, "is not 'a/NAME/'"),
           "common prefix '%s' refused: %s", bad[i], err);
    const char *twice[] = {"a/x", "a/x"};
    ok(build("a/", twice, 2, NULL, NULL, 0, &d, err, sizeof err) < 0 && strstr(err, "twice"),
       "a key listed twice: %s", err);
    const char *p[] = {"a/x/", "a/x/"};
    ok(build("a/", NULL, 0, NULL, p, 2, &d, err, sizeof err) == 0 && d.n == 1,
       "a prefix listed twice is one directory");
    fs_names_free(&d);
}

/* --- every key reachable, over random buckets --- */

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* the keys of a random bucket: components from a small, nasty alphabet */
static size_t random_keys(char **keys, size_t max)
{
    static const char *parts[] = {"a",          "b",        ".", "..", "", "a~file~ca978112",
                                  "x_$folder$", "\xc3\xa9", "L"};
    size_t n = 0;
    while (n < max) {
        struct buf b = {0};
        int depth = 1 + (int)(next() % 3);
        for (int i = 0; i < depth; i++) {
            size_t w = next() % N(parts);
            if (parts[w][0] == 'L')
                for (int j = 0; j < 260; j++)
                    buf_putc(&b, 'L');
            else
                buf_puts(&b, parts[w]);
            if (i + 1 < depth || next() % 4 == 0) buf_putc(&b, '/');
        }
        char *k = buf_steal(&b, NULL);
        int dup = k[0] == '\0';
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(keys[i], k) == 0;
        if (dup)
            free(k);
        else
            keys[n++] = k;
    }
    return n;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What S3 returns for LIST prefix with delimiter "/". */
static void list_delim(char **keys, size_t n, const char *prefix, struct store_obj **objs,
                       size_t *no, char ***pre, size_t *npre)
{
    size_t pl = strlen(prefix);
    *objs = xcalloc(n + 1, sizeof **objs);
    *pre = xcalloc(n + 1, sizeof **pre);
    *no = *npre = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(keys[i], prefix, pl)) continue;
        const char *slash = strchr(keys[i] + pl, '/');
        if (!slash) {
            (*objs)[*no].key = keys[i];
            (*objs)[*no].size = (next() % 2) ? 0 : 7;
            (*no)++;
            continue;
        }
        char *p = xstrndup(keys[i], (size_t)(slash - keys[i]) + 1);
        int dup = 0;
        for (size_t j = 0; j < *npre && !dup; j++)
            dup = strcmp((*pre)[j], p) == 0;
        if (dup)
            free(p);
        else
            (*pre)[(*npre)++] = p;
    }
    qsort(*pre, *npre, sizeof **pre, str_cmp);
}

static int valid_name(const char *s)
{
    size_t l = strlen(s);
    return l >= 1 && l <= 255 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static void test_random(void)
{
    int bad = 0, checked = 0;
    for (int round = 0; round < 200 && !bad; round++) {
        char *keys[40];
        size_t n = random_keys(keys, 12 + (size_t)(next() % 28));
        /* every directory: the root and every prefix of every key */
        char *dirs[400];
        size_t nd = 0;
        dirs[nd++] = xstrdup("");
        for (size_t i = 0; i < n; i++)
            for (const char *s = strchr(keys[i], '/'); s; s = strchr(s + 1, '/')) {
                char *p = xstrndup(keys[i], (size_t)(s - keys[i]) + 1);
                int dup = 0;
                for (size_t j = 0; j < nd && !dup; j++)
                    dup = strcmp(dirs[j], p) == 0;
                if (dup || nd == N(dirs))
                    free(p);
                else
                    dirs[nd++] = p;
            }
        for (size_t di = 0; di < nd && !bad; di++) {
            struct store_obj *o;
            char **pre;
            size_t no, np;
            list_delim(keys, n, dirs[di], &o, &no, &pre, &np);
            struct fs_names d, d2;
            char err[256];
            if (fs_names_build(dirs[di], o, no, pre, np, &d, err, sizeof err) < 0) {
                diag("round %d dir '%s': %s", round, dirs[di], err);
                bad = 1;
                goto next_dir;
            }
            /* sorted, unique, valid names; a why exactly for the derived */
            for (size_t i = 0; i < d.n && !bad; i++) {
                if (!valid_name(d.v[i].name) || (i && strcmp(d.v[i - 1].name, d.v[i].name) >= 0) ||
                    fs_names_find(&d, d.v[i].name) != &d.v[i]) {
                    diag("round %d dir '%s': bad entry '%s'", round, dirs[di], d.v[i].name);
                    bad = 1;
                }
            }
            if (d.n > no + np) bad = 1;
            /* every object but the own marker, and every prefix, is reachable */
            for (size_t i = 0; i < no && !bad; i++) {
                int found = strcmp(o[i].key, dirs[di]) == 0;
                for (size_t j = 0; j < d.n && !found; j++)
                    found = d.v[j].key && strcmp(d.v[j].key, o[i].key) == 0;
                if (!found) {
                    diag("round %d dir '%s': key '%s' unreachable", round, dirs[di], o[i].key);
                    bad = 1;
                }
            }
            for (size_t i = 0; i < np && !bad; i++) {
                int found = 0;
                for (size_t j = 0; j < d.n && !found; j++)
                    found = d.v[j].dir && strcmp(d.v[j].dir, pre[i]) == 0;
                if (!found) {
                    diag("round %d dir '%s': prefix '%s' unreachable", round, dirs[di], pre[i]);
                    bad = 1;
                }
            }
            /* the same listing in another order gives the same entries */
            for (size_t i = no; i > 1; i--) {
                size_t j = next() % i;
                struct store_obj t = o[i - 1];
                o[i - 1] = o[j];
                o[j] = t;
            }
            if (!bad && fs_names_build(dirs[di], o, no, pre, np, &d2, err, sizeof err) == 0) {
                char *a = show(&d), *b = show(&d2);
                if (strcmp(a, b)) {
                    diag("round %d dir '%s': order changes names", round, dirs[di]);
                    bad = 1;
                }
                free(a);
                free(b);
                fs_names_free(&d2);
            }
            checked++;
            fs_names_free(&d);
        next_dir:
            for (size_t i = 0; i < np; i++)
                free(pre[i]);
            free(pre);
            free(o);
        }
        for (size_t i = 0; i < nd; i++)
            free(dirs[i]);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
    }
    ok(!bad && checked > 1000,
       "%d random directories: valid sorted unique names, every key and prefix reachable, "
       "order-independent",
       checked);
}

static void test_find(void)
{
    const char *k[] = {"m", "c", "x", "a", "q", "b"};
    struct fs_names d;
    char err[256];
    build("", k, N(k), NULL, NULL, 0, &d, err, sizeof err);
    int all = d.n == N(k);
    for (size_t i = 0; i < N(k); i++) {
        const struct fs_name *f = fs_names_find(&d, k[i]);
        all = all && f && strcmp(f->key, k[i]) == 0;
    }
    ok(all, "find: every name");
    ok(!fs_names_find(&d, "") && !fs_names_find(&d, "0") && !fs_names_find(&d, "z") &&
           !fs_names_find(&d, "bb"),
       "find: missing names, before, between and after");
    fs_names_free(&d);
    struct fs_names empty = {NULL, 0};
    ok(!fs_names_find(&empty, "a"), "find in an empty directory");
}

int main(void)
{
    plan_no_plan();
    test_plain();
    test_markers();
    test_file_and_dir();
    test_bad_names();
    test_collisions();
    test_errors();
    test_find();
    test_random();
    return done_testing();
}
