/* test_store.c - unit tests of the store layer that need no server: URL
 * parsing, key rules, the dir backend (including conditional writes raced
 * by several processes; metadata, LIST order, keys it cannot keep), the
 * checks of store_submit, the retry layer and the fault layer. */
#include "store/s3_xml.h"
#include "store/store.h"
#include "tap.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/buoy-test-store-XXXXXX";
static char errmsg[STORE_ERRMSG_MAX];

static struct store *open_dir(const char *sub, const char *fault, int retries)
{
    char url[256], err[512];
    struct store_opts o = {.retries = retries, .fault = fault, .retry_base_ms = 1,
                           .retry_cap_ms = 5};
    snprintf(url, sizeof url, "%s/%s", tmpdir, sub);
    struct store *s = store_open(url, &o, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

static void test_keys(void)
{
    ok(store_key_invalid("a") == NULL, "a plain key is valid");
    ok(store_key_invalid("vol/seg/0001") == NULL, "a key with slashes is valid");
    ok(store_key_invalid("") != NULL, "an empty key is refused");
    ok(store_key_invalid("/a") != NULL, "a leading slash is refused");
    ok(store_key_invalid("a//b") != NULL, "an empty segment is refused");
    ok(store_key_invalid("a/../b") != NULL, "a '..' segment is refused");
    ok(store_key_invalid("a/./b") != NULL, "a '.' segment is refused");
    ok(store_key_invalid(".buoy-tmp/x") != NULL, "the reserved .buoy- prefix is refused");
    ok(store_key_invalid("a/.hidden") == NULL, "other dot names are fine");
    char *long_key = xmalloc(1100);
    memset(long_key, 'k', 1099);
    long_key[1099] = '\0';
    ok(store_key_invalid(long_key) != NULL, "a key over 1024 bytes is refused");
    free(long_key);
}

static void test_urls(void)
{
    char err[512];
    struct store *s;
    s = store_open("ftp://host/x", NULL, err, sizeof err);
    ok(!s && strstr(err, "unknown store URL scheme 'ftp'"), "unknown scheme: %s", err);
    s = store_open("", NULL, err, sizeof err);
    ok(!s && strstr(err, "empty store URL"), "empty URL: %s", err);
    s = store_open("dir://relative", NULL, err, sizeof err);
    ok(!s && strstr(err, "absolute path"), "dir:// with a relative path: %s", err);
    s = store_open("s3://", NULL, err, sizeof err);
    ok(!s && strstr(err, "no bucket"), "s3:// without a bucket: %s", err);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    s = store_open("s3://Bad_Bucket!/x", NULL, err, sizeof err);
    ok(!s && strstr(err, "not a valid bucket name"), "bad bucket name: %s", err);
    struct store_opts o = {.endpoint = "localhost:9000", .retries = -1};
    s = store_open("s3://bucket/x", &o, err, sizeof err);
    ok(!s && strstr(err, "bad endpoint"), "endpoint without scheme: %s", err);
    o.endpoint = "http://127.0.0.1:9000";
    s = store_open("s3://bucket/pre/fix/", &o, err, sizeof err);
    ok(s != NULL, "s3://bucket/pre/fix/ opens: %s", s ? "" : err);
    if (s) {
        is_str(s->url, "s3://bucket/pre/fix", "trailing slashes are dropped from the prefix");
        store_close(s);
    }
    char url[300];
    snprintf(url, sizeof url, "dir://%s/viaurl", tmpdir);
    s = store_open(url, NULL, err, sizeof err);
    ok(s != NULL, "dir:///abs opens");
    store_close(s);
}

static void test_dir_basics(void)
{
    struct store *s = open_dir("basic", NULL, -1);
    char etag[STORE_ETAG_MAX], etag2[STORE_ETAG_MAX];
    struct buf b = {0};
    struct store_obj info;

    is_int(store_put(s, "a/b/c", "hello", 5, STORE_COND_NONE, NULL, etag, errmsg, sizeof errmsg),
           STORE_OK, "put into new subdirectories");
    is_int(store_get(s, "a/b/c", 1, 3, &b, &info, errmsg, sizeof errmsg), STORE_OK, "ranged get");
    ok(b.len == 3 && memcmp(b.p, "ell", 3) == 0, "the range holds bytes 1..3");
    is_int(info.size, 5, "ranged get reports the whole object's size");
    is_str(info.etag, etag, "get reports the ETag the put returned");
    is_int(store_put(s, "a/b/c", "hello", 5, STORE_COND_NONE, NULL, etag2, errmsg, sizeof errmsg),
           STORE_OK, "overwrite with the same bytes");
    ok(strcmp(etag, etag2) != 0, "every put gives a new ETag");
    is_int(store_get(s, "a/b", 0, 0, &b, NULL, errmsg, sizeof errmsg), STORE_ENOTFOUND,
           "a directory is not an object");
    is_int(store_get(s, "a/b/c", 5, 0, &b, NULL, errmsg, sizeof errmsg), STORE_EFATAL,
           "a range starting at the end is refused");
    ok(strstr(errmsg, "not satisfiable") != NULL, "and says why: %s", errmsg);

    /* nothing left behind in the temp directory */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/basic/.buoy-tmp", tmpdir);
    DIR *d = opendir(tmp);
    int leftovers = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        leftovers += de->d_name[0] != '.';
    if (d)
        closedir(d);
    is_int(leftovers, 0, "no temp files are left behind");

    struct store_obj *list;
    size_t n;
    store_put(s, "a/x", "1", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    store_put(s, "ab", "1", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    is_int(store_list(s, "", &list, &n, errmsg, sizeof errmsg), STORE_OK, "list all");
    ok(n == 3 && strcmp(list[0].key, "a/b/c") == 0 && strcmp(list[1].key, "a/x") == 0 &&
           strcmp(list[2].key, "ab") == 0,
       "listing is sorted by key and hides .buoy- files (%zu entries)", n);
    store_list_free(list, n);
    is_int(store_list(s, "a/", &list, &n, errmsg, sizeof errmsg), STORE_OK, "list a/");
    is_int(n, 2, "prefix a/ holds two keys");
    store_list_free(list, n);
    is_int(store_list(s, "nothing/here", &list, &n, errmsg, sizeof errmsg), STORE_OK,
           "list of an absent prefix succeeds");
    is_int(n, 0, "and is empty");
    store_list_free(list, n);
    buf_free(&b);
    store_close(s);
}

static struct store *open_any(const char *sub)
{
    char url[256], err[512];
    struct store_opts o = {.retries = 0, .any_keys = 1};
    snprintf(url, sizeof url, "%s/%s", tmpdir, sub);
    struct store *s = store_open(url, &o, err, sizeof err);
    if (!s)
        bail_out(err);
    return s;
}

/* HEAD key into r's rmeta as "name=value,...;type" */
static const char *head_meta(struct store *s, const char *key, char *out, size_t n)
{
    struct store_req r = {.op = STORE_HEAD, .key = key};
    store_submit(s, &r);
    store_wait(s, &r);
    size_t at = (size_t)snprintf(out, n, "%s", r.err ? store_strerror(r.err) : "");
    for (size_t i = 0; i < r.nrmeta && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s=%s", i ? "," : "", r.rmeta[i].name,
                               r.rmeta[i].value);
    if (at < n)
        snprintf(out + at, n - at, ";%s", r.rtype);
    store_req_free(&r);
    return out;
}

static enum store_err submit_wait(struct store *s, struct store_req *r)
{
    store_submit(s, r);
    store_wait(s, r);
    snprintf(errmsg, sizeof errmsg, "%s", r->errmsg);
    enum store_err e = r->err;
    store_req_free(r);
    return e;
}

static int temp_files(const char *sub)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/%s/.buoy-tmp", tmpdir, sub);
    DIR *d = opendir(tmp);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Metadata is kept in the object's own inode, and goes with it. */
static void test_dir_meta(void)
{
    struct store *s = open_any("meta");
    char got[512], path[300], x[256];
    static const struct store_meta m[] = {{"Owner", "u1"}, {"mode", "33188"}};
    struct store_req r = {.op = STORE_PUT,
                          .key = "m/obj",
                          .data = "old",
                          .size = 3,
                          .meta = m,
                          .nmeta = 2,
                          .content_type = "text/x"};
    is_int(submit_wait(s, &r), STORE_OK, "put with metadata: %s", errmsg);
    store_close(s);
    s = open_any("meta");
    is_str(head_meta(s, "m/obj", got, sizeof got), "mode=33188,owner=u1;text/x",
           "metadata survives closing and opening the store");
    snprintf(path, sizeof path, "%s/meta/m/obj", tmpdir);
    ssize_t n = getxattr(path, "user.buoy.meta", x, sizeof x - 1);
    x[n > 0 ? n : 0] = '\0';
    ok(n > 0 && strstr(x, "owner:u1\n"), "it is the xattr of the object's file");

    r = (struct store_req){.op = STORE_PUT, .key = "m/obj", .data = "new", .size = 3};
    is_int(submit_wait(s, &r), STORE_OK, "put over it without metadata");
    is_str(head_meta(s, "m/obj", got, sizeof got), ";binary/octet-stream",
           "the new bytes come with no metadata, not the old");
    ok(getxattr(path, "user.buoy.meta", x, sizeof x) < 0 && errno == ENODATA,
       "an object without metadata has no xattr (a store without xattrs holds volumes)");

    char e1[STORE_ETAG_MAX], e2[STORE_ETAG_MAX];
    struct store_obj info;
    store_head(s, "m/obj", &info, errmsg, sizeof errmsg);
    snprintf(e1, sizeof e1, "%s", info.etag);
    r = (struct store_req){.op = STORE_COPY,
                           .key = "m/obj",
                           .src_key = "m/obj",
                           .meta_replace = 1,
                           .meta = m,
                           .nmeta = 1};
    store_submit(s, &r);
    store_wait(s, &r);
    is_int(r.err, STORE_OK, "a metadata-only copy onto itself: %s", r.errmsg);
    snprintf(e2, sizeof e2, "%s", r.obj.etag);
    store_req_free(&r);
    ok(strcmp(e1, e2) != 0, "gives a new ETag (the dir store's ETags are the file's)");
    is_str(head_meta(s, "m/obj", got, sizeof got), "owner=u1;binary/octet-stream",
           "and the new metadata");
    struct buf b = {0};
    ok(store_get(s, "m/obj", 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK && b.len == 3 &&
           memcmp(b.p, "new", 3) == 0,
       "with the same bytes");
    buf_free(&b);

    /* a crash's leftover temp file, with metadata, is never listed */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/meta/.buoy-tmp/00000000deadbeef", tmpdir);
    FILE *f = fopen(tmp, "w");
    ok(f && fputs("torn", f) >= 0 && fclose(f) == 0, "a torn temp file is there");
    setxattr(tmp, "user.buoy.meta", "buoy-meta-1\n\n", 13, 0);
    struct store_obj *list;
    size_t nl;
    is_int(store_list(s, "", &list, &nl, errmsg, sizeof errmsg), STORE_OK, "list all");
    ok(nl == 1 && strcmp(list[0].key, "m/obj") == 0, "only the object is listed (%zu entries)", nl);
    store_list_free(list, nl);
    r = (struct store_req){.op = STORE_LIST, .key = "", .delim = "/"};
    store_submit(s, &r);
    store_wait(s, &r);
    ok(r.err == STORE_OK && r.nlist == 0 && r.nprefixes == 1 && strcmp(r.prefixes[0], "m/") == 0,
       "a delimited list shows m/ and no .buoy-tmp/ (%zu objects, %zu prefixes)", r.nlist,
       r.nprefixes);
    store_req_free(&r);
    unlink(tmp);
    is_int(temp_files("meta"), 0, "puts and copies leave no temp files");
    store_close(s);
}

/* LIST answers in S3's order, the byte order of whole keys. */
static void test_dir_order(void)
{
    struct store *s = open_any("order");
    static const char *const keys[] = {"a0", "a/b", "a/", "a.b", "a-b", "a/b/", "a/b/c"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        store_put(s, keys[i], "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    struct store_obj *list;
    size_t n;
    struct buf got = {0};
    is_int(store_list(s, "", &list, &n, errmsg, sizeof errmsg), STORE_OK, "list");
    for (size_t i = 0; i < n; i++)
        buf_printf(&got, "%s%s", i ? " " : "", list[i].key);
    /* "a/b" and "a/b/" cannot both be kept: the second PUT failed */
    is_str(got.p, "a-b a.b a/ a/b a0", "'-' < '.' < '/' < '0' as in S3");
    store_list_free(list, n);
    buf_free(&got);
    struct store_req r = {.op = STORE_LIST, .key = "a", .delim = "/"};
    store_submit(s, &r);
    store_wait(s, &r);
    ok(r.err == STORE_OK && r.nlist == 3 && strcmp(r.list[0].key, "a-b") == 0 &&
           strcmp(r.list[1].key, "a.b") == 0 && strcmp(r.list[2].key, "a0") == 0 &&
           r.nprefixes == 1 && strcmp(r.prefixes[0], "a/") == 0,
       "delimited list of prefix a: a-b a.b a0 and a/ (%zu, %zu)", r.nlist, r.nprefixes);
    store_req_free(&r);
    r = (struct store_req){.op = STORE_LIST, .key = "a/", .delim = "/"};
    store_submit(s, &r);
    store_wait(s, &r);
    ok(r.err == STORE_OK && r.nlist == 2 && strcmp(r.list[0].key, "a/") == 0 &&
           strcmp(r.list[1].key, "a/b") == 0 && r.nprefixes == 0,
       "delimited list of a/: the marker a/ itself, then a/b (%zu, %zu)", r.nlist, r.nprefixes);
    store_req_free(&r);
    store_close(s);
}

/* Keys a directory cannot hold fail EFATAL with the reason. */
static void test_dir_unmappable(void)
{
    struct store *s = open_any("unmap");
    static const char *const bad[] = {"x//y", "./z", "a/../b", ".buoy-x/y", "/lead", "q/."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum store_err e =
            store_put(s, bad[i], "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        ok(e == STORE_EFATAL && strstr(errmsg, bad[i]) &&
               strstr(errmsg, "cannot be kept in a directory store"),
           "put %s: %s", bad[i], errmsg);
    }
    is_int(store_put(s, "f", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg), STORE_OK,
           "put f");
    is_int(store_put(s, "f/g", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_EFATAL, "put f/g under the object f");
    ok(strstr(errmsg, "an object has the name of one of its directories") != NULL, "%s", errmsg);
    is_int(store_put(s, "d/e", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_OK, "put d/e");
    is_int(store_put(s, "d", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_EFATAL, "put d beside d/e");
    ok(strstr(errmsg, "other keys are stored under it") != NULL, "%s", errmsg);
    is_int(store_put(s, "d", "x", 1, STORE_IF_NONE_MATCH, NULL, NULL, errmsg, sizeof errmsg),
           STORE_EFATAL, "also with If-None-Match (not 'the object exists'): %s", errmsg);
    struct store_req r = {.op = STORE_COPY, .key = "d", .src_key = "f"};
    is_int(submit_wait(s, &r), STORE_EFATAL, "copy onto d: %s", errmsg);
    is_int(store_delete(s, "d", STORE_COND_NONE, NULL, errmsg, sizeof errmsg), STORE_OK,
           "deleting d, which is no object, is fine as in S3");
    is_int(store_head(s, "d", NULL, errmsg, sizeof errmsg), STORE_ENOTFOUND, "d is not found");
    struct store_obj *list;
    size_t n;
    is_int(store_list(s, "x//", &list, &n, errmsg, sizeof errmsg), STORE_OK,
           "a list of an unmappable prefix works");
    is_int(n, 0, "and is empty");
    store_list_free(list, n);
    is_int(temp_files("unmap"), 0, "failed puts leave no temp files");
    store_close(s);

    /* the strict rule of volumes: no marker keys at all */
    s = open_dir("unmap", NULL, 0);
    is_int(store_put(s, "m/", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_EFATAL, "a store without any_keys refuses m/");
    ok(strstr(errmsg, "empty path segment") != NULL, "with the key rule: %s", errmsg);
    store_close(s);
}

/* What store_submit refuses, and the crypt layer's refusal. */
static void test_meta_rules(void)
{
    struct store *s = open_dir("rules", NULL, 0);
    static const struct store_meta m[] = {{"a", "1"}};
    static const struct store_meta twice[] = {{"a", "1"}, {"A", "2"}};
    static const struct store_meta space[] = {{"a", " 1"}};
    struct store_req r = {.op = STORE_GET, .key = "k", .meta = m, .nmeta = 1};
    is_int(submit_wait(s, &r), STORE_EFATAL, "metadata on a GET: %s", errmsg);
    r = (struct store_req){
        .op = STORE_PUT, .key = "k", .data = "x", .size = 1, .meta = twice, .nmeta = 2};
    is_int(submit_wait(s, &r), STORE_EFATAL, "a name given twice: %s", errmsg);
    r = (struct store_req){
        .op = STORE_PUT, .key = "k", .data = "x", .size = 1, .meta = space, .nmeta = 1};
    is_int(submit_wait(s, &r), STORE_EFATAL, "a value S3 would trim: %s", errmsg);
    r = (struct store_req){
        .op = STORE_PUT, .key = "k", .data = "x", .size = 1, .content_type = "a\tb"};
    is_int(submit_wait(s, &r), STORE_EFATAL, "a Content-Type with a tab: %s", errmsg);
    r = (struct store_req){.op = STORE_COPY, .key = "k"};
    is_int(submit_wait(s, &r), STORE_EFATAL, "a COPY without a source: %s", errmsg);
    r = (struct store_req){
        .op = STORE_COPY, .key = "k", .src_key = "j", .cond = STORE_IF_NONE_MATCH};
    is_int(submit_wait(s, &r), STORE_EFATAL, "If-None-Match on a COPY: %s", errmsg);
    r = (struct store_req){.op = STORE_LIST, .key = "", .delim = ","};
    is_int(submit_wait(s, &r), STORE_EFATAL, "a delimiter other than /: %s", errmsg);
    is_int(store_put(s, "k", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg), STORE_OK,
           "put k");
    r = (struct store_req){
        .op = STORE_COPY, .key = "j", .src_key = "k", .cond = STORE_IF_MATCH, .if_etag = "nope"};
    is_int(submit_wait(s, &r), STORE_EPRECOND, "COPY from k If-Match another ETag");
    ok(strstr(errmsg, "COPY from k") && strstr(errmsg, "nope"), "names both: %s", errmsg);
    r = (struct store_req){.op = STORE_GET, .key = "k", .cond = STORE_IF_MATCH, .if_etag = "no"};
    is_int(submit_wait(s, &r), STORE_EPRECOND, "GET If-Match another ETag: %s", errmsg);

    uint8_t key[32] = {1}, uuid[16] = {2};
    char err[512];
    struct store *c = store_crypt_open_threads(s, key, uuid, 0, err, sizeof err);
    if (!c)
        bail_out(err);
    r = (struct store_req){
        .op = STORE_PUT, .key = "e", .data = "x", .size = 1, .meta = m, .nmeta = 1};
    is_int(submit_wait(c, &r), STORE_EFATAL, "crypt refuses metadata");
    ok(strstr(errmsg, "encrypted store keeps no metadata") != NULL, "%s", errmsg);
    r = (struct store_req){.op = STORE_COPY, .key = "e2", .src_key = "k"};
    is_int(submit_wait(c, &r), STORE_EFATAL, "crypt refuses COPY: %s", errmsg);
    is_int(store_put(c, "e", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg), STORE_OK,
           "a plain put through crypt still works");
    store_close(c);
}

/* N processes race to create one key with If-None-Match: exactly one wins. */
/* A missing directory is made by the first PUT, not by opening or reading. */
static void test_dir_missing_root(void)
{
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/not-yet", tmpdir);
    struct store *s = store_open(path, NULL, err, sizeof err);
    ok(s != NULL, "a store opens on a directory that does not exist yet: %s", s ? "" : err);
    if (!s)
        return;
    struct buf b = {0};
    struct store_obj *l;
    size_t n = 9;
    is_int(store_get(s, "super", 0, 0, &b, NULL, err, sizeof err), STORE_ENOTFOUND,
           "a GET there finds nothing");
    ok(store_list(s, "", &l, &n, err, sizeof err) == STORE_OK && n == 0, "a LIST is empty");
    store_list_free(l, n);
    is_int(store_delete(s, "x", STORE_COND_NONE, NULL, err, sizeof err), STORE_OK,
           "deleting a missing key is fine");
    ok(access(path, F_OK) != 0, "and none of that made the directory");
    is_int(store_put(s, "a/b", "hi", 2, STORE_IF_NONE_MATCH, NULL, NULL, err, sizeof err),
           STORE_OK, "the first PUT makes it");
    ok(store_get(s, "a/b", 0, 0, &b, NULL, err, sizeof err) == STORE_OK && b.len == 2,
       "and the object reads back");
    buf_free(&b);
    store_close(s);
}

static void test_dir_create_race(void)
{
    enum { N = 8 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            struct store *s = open_dir("race", NULL, -1);
            char body[16];
            snprintf(body, sizeof body, "%d", i);
            enum store_err e = store_put(s, "owner", body, strlen(body), STORE_IF_NONE_MATCH,
                                         NULL, NULL, errmsg, sizeof errmsg);
            store_close(s);
            _exit(e == STORE_OK ? 0 : e == STORE_EPRECOND ? 1 : 2);
        }
    }
    int wins = 0, losses = 0;
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        wins += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        losses += WIFEXITED(st) && WEXITSTATUS(st) == 1;
    }
    is_int(wins, 1, "exactly one of %d racing If-None-Match creates wins", N);
    is_int(losses, N - 1, "the others get 'precondition failed'");
}

/* N processes each add 1 to a counter M times with read + If-Match
 * compare-and-swap; a lost update would leave the total short. */
static void test_dir_cas_counter(void)
{
    enum { N = 4, M = 25 };
    struct store *s = open_dir("cas", NULL, -1);
    store_put(s, "counter", "0", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    store_close(s);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        if ((pids[i] = fork()) == 0) {
            struct store *c = open_dir("cas", NULL, -1);
            for (int k = 0; k < M;) {
                struct buf b = {0};
                struct store_obj info;
                if (store_get(c, "counter", 0, 0, &b, &info, errmsg, sizeof errmsg))
                    _exit(2);
                char next[32];
                snprintf(next, sizeof next, "%ld", strtol(b.p, NULL, 10) + 1);
                buf_free(&b);
                enum store_err e = store_put(c, "counter", next, strlen(next), STORE_IF_MATCH,
                                             info.etag, NULL, errmsg, sizeof errmsg);
                if (e == STORE_OK)
                    k++;
                else if (e != STORE_EPRECOND && e != STORE_ENOTFOUND)
                    _exit(3);
            }
            store_close(c);
            _exit(0);
        }
    }
    int clean = 0;
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        clean += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    is_int(clean, N, "every incrementing process finished");
    s = open_dir("cas", NULL, -1);
    struct buf b = {0};
    store_get(s, "counter", 0, 0, &b, NULL, errmsg, sizeof errmsg);
    is_int(strtol(b.p ? b.p : "0", NULL, 10), N * M, "If-Match loses no update across processes");
    char etag[STORE_ETAG_MAX];
    struct store_obj info;
    store_head(s, "counter", &info, errmsg, sizeof errmsg);
    snprintf(etag, sizeof etag, "%s", info.etag);
    is_int(store_delete(s, "counter", STORE_IF_MATCH, "stale", errmsg, sizeof errmsg),
           STORE_EPRECOND, "a delete with a stale ETag is refused");
    is_int(store_delete(s, "counter", STORE_IF_MATCH, etag, errmsg, sizeof errmsg), STORE_OK,
           "a delete with the current ETag works");
    is_int(store_delete(s, "counter", STORE_IF_MATCH, etag, errmsg, sizeof errmsg),
           STORE_ENOTFOUND, "a conditional delete of a missing key is 'not found'");
    buf_free(&b);
    store_close(s);
}

/* Two stores on one root, in two threads of one process: every PUT that
 * succeeds holds its own bytes (temp files are never shared). */
struct clash_arg {
    int id;
    int bad;
};

static void *clash_writer(void *p)
{
    struct clash_arg *a = p;
    struct store *s = open_dir("clash", NULL, -1);
    char key[32], err[STORE_ERRMSG_MAX];
    char *data = xmalloc(64 << 10);
    memset(data, 'A' + a->id, 64 << 10);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "t%d/k%d", a->id, i);
        a->bad += store_put(s, key, data, 64 << 10, STORE_COND_NONE, NULL, NULL, err,
                            sizeof err) != STORE_OK;
    }
    free(data);
    store_close(s);
    return NULL;
}

static void test_dir_threads(void)
{
    pthread_t t[2];
    struct clash_arg a[2] = {{0, 0}, {1, 0}};
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, clash_writer, &a[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    is_int(a[0].bad + a[1].bad, 0, "two writers in one process: every PUT succeeds");
    struct store *s = open_dir("clash", NULL, -1);
    int wrong = 0;
    for (int id = 0; id < 2; id++)
        for (int i = 0; i < 100; i++) {
            char key[32];
            struct buf b = {0};
            snprintf(key, sizeof key, "t%d/k%d", id, i);
            int good = store_get(s, key, 0, 0, &b, NULL, errmsg, sizeof errmsg) == STORE_OK &&
                       b.len == 64 << 10;
            for (size_t j = 0; good && j < b.len; j += 4096)
                good = b.p[j] == 'A' + id;
            wrong += !good;
            buf_free(&b);
        }
    is_int(wrong, 0, "and every object holds its own writer's bytes");
    store_close(s);
}

static void rejected_done(struct store_req *r)
{
    (*(int *)r->arg)++;
}

static void test_rejected(void)
{
    struct store *s = open_dir("rej", NULL, -1);
    int calls = 0;
    struct store_req r = {.op = STORE_PUT, .key = "a/../b", .data = "x", .size = 1,
                          .done = rejected_done, .arg = &calls};
    store_submit(s, &r);
    is_int(calls, 0, "a refused request does not complete inside store_submit");
    store_run(s, 0);
    is_int(calls, 1, "it completes in the next store_run");
    is_int(r.err, STORE_EFATAL, "as fatal");
    store_req_free(&r);
    store_close(s);
}

static void test_retry(void)
{
    struct store *s = open_dir("retry", "err=1", 3);
    struct store_stats st;
    enum store_err e = store_put(s, "k", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg,
                                 sizeof errmsg);
    is_int(e, STORE_ETRANSIENT, "a store that always fails gives 'transient' in the end");
    ok(strstr(errmsg, "gave up after 4 attempts") != NULL, "after 1 + 3 retries: %s", errmsg);
    store_get_stats(s, &st);
    is_int(st.retries, 3, "three retries were counted");
    is_int(st.requests[STORE_PUT], 0, "no request reached the backend");
    store_close(s);

    s = open_dir("retry", NULL, 5);
    struct store_req r = {.op = STORE_GET, .key = "missing"};
    store_submit(s, &r);
    store_wait(s, &r);
    is_int(r.err, STORE_ENOTFOUND, "not found is final");
    is_int(r.attempts, 1, "and is not retried");
    store_req_free(&r);
    store_close(s);

    s = open_dir("retry", "conflict=1", 2);
    struct store_req cr = {.op = STORE_PUT, .key = "c", .data = "x", .size = 1};
    store_submit(s, &cr);
    store_wait(s, &cr);
    is_int(cr.err, STORE_ECONFLICT, "a 409 conflict is retried, then reported");
    is_int(cr.attempts, 3, "after 1 + 2 attempts");
    store_req_free(&cr);
    store_close(s);

    s = open_dir("retry", "throttle=0.5,seed=3", 20);
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof key, "t%d", i);
        bad += store_put(s, key, key, strlen(key), STORE_COND_NONE, NULL, NULL, errmsg,
                         sizeof errmsg) != STORE_OK;
    }
    store_get_stats(s, &st);
    is_int(bad, 0, "with half the requests throttled, retries get every put through");
    ok(st.retries > 10, "and it took retries (%llu)", (unsigned long long)st.retries);
    store_close(s);
}

/* What the code under test logs (fd 2) between capture_start and
 * capture_end, into a heap string. */
static int saved_stderr = -1;
static char capture_path[] = "/tmp/buoy-test-store-log-XXXXXX";

static void capture_start(void)
{
    int fd = mkstemp(capture_path);
    if (fd < 0)
        bail_out("mkstemp failed");
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(void)
{
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(capture_path, "r");
    char *text = xcalloc(1, 65536);
    if (f) {
        size_t n = fread(text, 1, 65535, f);
        text[n] = '\0';
        fclose(f);
    }
    unlink(capture_path);
    strcpy(capture_path + strlen(capture_path) - 6, "XXXXXX");
    return text;
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The rule for requests that could not connect to the store (a refused
 * connection): a person's command (store_retry_unreachable(0)) fails them at
 * once, a daemon (the default) retries them.  Every retry is one warn
 * line. */
static void test_retry_unreachable(void)
{
    struct store_stats st;
    char *log;

    log_set_level(LOGL_WARN);
    store_retry_unreachable(0);
    struct store *s = open_dir("unreachable", "refused=1", 5);
    capture_start();
    struct store_req r = {.op = STORE_GET, .key = "k"};
    store_submit(s, &r);
    store_wait(s, &r);
    log = capture_end();
    is_int(r.err, STORE_ETRANSIENT, "one-shot: a refused request fails as transient");
    is_int(r.attempts, 1, "one-shot: after one attempt, not retried");
    ok(r.unreachable, "and says it could not connect");
    ok(strstr(r.errmsg, "(not retried)") && !strstr(r.errmsg, "gave up"),
       "its message says it was not retried: %s", r.errmsg);
    is_int(count_lines(log, "retrying in"), 0, "no retry was logged");
    store_get_stats(s, &st);
    is_int(st.retries, 0, "no retry was counted");
    store_req_free(&r);
    free(log);

    /* a transient answer from the store is still retried in a one-shot command */
    store_close(s);
    s = open_dir("unreachable", "err=1", 2);
    capture_start();
    r = (struct store_req){.op = STORE_GET, .key = "k"};
    store_submit(s, &r);
    store_wait(s, &r);
    log = capture_end();
    is_int(r.attempts, 3, "one-shot: a transient error from the store is still retried");
    ok(strstr(r.errmsg, "gave up after 3 attempts") != NULL, "and gives up: %s", r.errmsg);
    is_int(count_lines(log, "retrying in"), 2, "each retry is one line in the log");
    ok(strstr(log, "buoy: warn: ") && strstr(log, "/k: GET: fault: injected transient error "
                                                  "(attempt 1 of 3); retrying in "),
       "saying the request, the cause, the attempt and the wait");
    store_req_free(&r);
    free(log);
    store_close(s);

    store_retry_unreachable(1);
    s = open_dir("unreachable", "refused=1", 4);
    capture_start();
    r = (struct store_req){.op = STORE_GET, .key = "k"};
    store_submit(s, &r);
    store_wait(s, &r);
    log = capture_end();
    is_int(r.attempts, 5, "daemon: a refused request is retried (1 + 4 attempts)");
    ok(strstr(r.errmsg, "gave up after 5 attempts") != NULL, "then gives up: %s", r.errmsg);
    is_int(count_lines(log, "fault: injected refused connection (attempt "), 4,
           "each of the 4 retries is logged with its cause");
    ok(strstr(log, "(attempt 4 of 5); retrying in ") != NULL, "numbered 1 to 4 of 5");
    store_req_free(&r);
    free(log);
    store_close(s);

    /* A create of an existing key whose earlier attempts could not connect,
     * then answered 412: libcurl may have sent an earlier attempt on a
     * kept-alive connection that died before the refused reconnect, so the
     * 412 may be our own write, "maybe applied", as after a lost answer. */
    s = open_dir("unreachable", NULL, 0);
    if (store_put(s, "exists", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg))
        bail_out(errmsg);
    store_close(s);
    int maybe = 0, retried = 0, wrong = 0;
    s = open_dir("unreachable", "refused=0.6,seed=5", 30);
    capture_start();
    for (int i = 0; i < 20; i++) {
        struct store_req p = {.op = STORE_PUT, .key = "exists", .data = "y", .size = 1,
                              .cond = STORE_IF_NONE_MATCH};
        store_submit(s, &p);
        store_wait(s, &p);
        wrong += p.err != STORE_EPRECOND;
        maybe += p.maybe_applied;
        retried += p.attempts > 1;
        store_req_free(&p);
    }
    free(capture_end());
    store_close(s);
    is_int(wrong, 0, "daemon: every create of an existing key ends 412");
    ok(retried > 0, "%d of the 20 after refused attempts", retried);
    is_int(maybe, retried, "and those, only those, are 'maybe applied'");
    log_set_level(LOGL_ERROR);
}

static void *wake_later(void *arg)
{
    clock_sleep_ms(100);
    store_wakeup(arg);
    return NULL;
}

/* A store_wakeup() while the retry layer's run waits on the layer below
 * (here the fault layer holding a request for its latency) ends it, so the
 * caller can submit more; it used to run the layer below again. */
static void test_timed_wakeup(void)
{
    struct store *s = open_dir("wake", "latency=1500", 3);
    struct store_req r = {.op = STORE_HEAD, .key = "none"};
    store_submit(s, &r);
    pthread_t t;
    pthread_create(&t, NULL, wake_later, s);
    uint64_t t0 = clock_mono_ms();
    store_run(s, 1200);
    uint64_t took = clock_mono_ms() - t0;
    pthread_join(t, NULL);
    ok(took < 700 && !r.completed, "store_wakeup ends the run of retry -> fault (%llu ms)",
       (unsigned long long)took);
    store_wait(s, &r);
    is_int(r.err, STORE_ENOTFOUND, "and the request completes after its latency");
    store_close(s);
}

static unsigned long long faults_for_seed(const char *spec)
{
    struct store *s = open_dir("seed", spec, 0);
    for (int i = 0; i < 200; i++)
        store_put(s, "k", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    struct store_stats st;
    store_get_stats(s, &st);
    store_close(s);
    return st.faults_injected;
}

static void test_fault(void)
{
    char err[256];
    struct store *s;

    unsigned long long a = faults_for_seed("err=0.3,seed=11");
    unsigned long long b = faults_for_seed("err=0.3,seed=11");
    unsigned long long c = faults_for_seed("err=0.3,seed=12");
    ok(a == b, "the same seed gives the same faults (%llu, %llu)", a, b);
    ok(a > 30 && a < 90, "err=0.3 fails about 30%% of 200 (%llu)", a);
    diag("seed 12 gave %llu", c);

    struct store_opts o = {.retries = -1, .fault = "err=2"};
    char url[300];
    snprintf(url, sizeof url, "%s/x", tmpdir);
    s = store_open(url, &o, err, sizeof err);
    ok(!s && strstr(err, "bad fault setting 'err=2'"), "a bad fault spec is refused: %s", err);

    s = open_dir("crash", "crash_after_puts=3", 0);
    int okays = 0;
    enum store_err last = STORE_OK;
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        last = store_put(s, key, "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
        okays += last == STORE_OK;
    }
    is_int(okays, 3, "crash_after_puts=3 lets three puts through");
    is_int(last, STORE_EFATAL, "then every request fails 'fatal'");
    ok(strstr(errmsg, "crashed after 3 puts") != NULL, "saying so: %s", errmsg);
    store_close(s);
    s = open_dir("crash", NULL, 0);
    struct store_obj *list;
    size_t n;
    store_list(s, "", &list, &n, errmsg, sizeof errmsg);
    is_int(n, 3, "and nothing after the crash point reached the store");
    store_list_free(list, n);
    store_close(s);

    s = open_dir("nth", "fail_nth=2", 5);
    is_int(store_put(s, "a", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg), STORE_OK,
           "fail_nth=2: request 1 works");
    is_int(store_put(s, "b", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_EFATAL, "request 2 fails fatally and is not retried");
    is_int(store_put(s, "c", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg), STORE_OK,
           "request 3 works");
    store_close(s);

    s = open_dir("ackloss", "ackloss=1", 0);
    is_int(store_put(s, "k", "data", 4, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg),
           STORE_ETRANSIENT, "ackloss: the put is reported failed");
    store_close(s);
    s = open_dir("ackloss", NULL, 0);
    struct buf body = {0};
    is_int(store_get(s, "k", 0, 0, &body, NULL, errmsg, sizeof errmsg), STORE_OK,
           "but it reached the store");
    store_close(s);
    s = open_dir("ackloss", "ackloss=1", 2);
    struct store_req ar = {.op = STORE_PUT, .key = "k2", .data = "d", .size = 1,
                           .cond = STORE_IF_NONE_MATCH};
    store_submit(s, &ar);
    store_wait(s, &ar);
    is_int(ar.err, STORE_EPRECOND, "a retried create whose first answer was lost fails its condition");
    ok(ar.maybe_applied, "but says the write may have been applied: %s", ar.errmsg);
    store_req_free(&ar);
    struct store_obj cur;
    store_head(s, "k2", &cur, errmsg, sizeof errmsg);
    ar = (struct store_req){.op = STORE_PUT, .key = "k2", .data = "e", .size = 1,
                            .cond = STORE_IF_MATCH};
    snprintf(ar.if_etag, sizeof ar.if_etag, "%s", cur.etag);
    store_submit(s, &ar);
    store_wait(s, &ar);
    ok(ar.err == STORE_EPRECOND && ar.maybe_applied,
       "likewise a retried If-Match update (%s)", store_strerror(ar.err));
    store_req_free(&ar);
    store_close(s);
    s = open_dir("ackloss", "err=1", 2);
    ar = (struct store_req){.op = STORE_PUT, .key = "k3", .data = "d", .size = 1,
                            .cond = STORE_IF_NONE_MATCH};
    store_submit(s, &ar);
    store_wait(s, &ar);
    ok(ar.err == STORE_ETRANSIENT && !ar.maybe_applied,
       "a request that never succeeded is not 'maybe applied'");
    store_req_free(&ar);
    store_close(s);

    s = open_dir("short", "short=1", 0);
    store_put(s, "k", "0123456789", 10, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    is_int(store_get(s, "k", 0, 0, &body, NULL, errmsg, sizeof errmsg), STORE_OK,
           "short=1: a GET still says ok");
    ok(body.len < 10, "but returns fewer bytes (%zu)", body.len);
    store_close(s);

    s = open_dir("latency", "latency=60,ops=get", 0);
    uint64_t t0 = clock_mono_ms();
    store_put(s, "k", "x", 1, STORE_COND_NONE, NULL, NULL, errmsg, sizeof errmsg);
    uint64_t t1 = clock_mono_ms();
    store_get(s, "k", 0, 0, &body, NULL, errmsg, sizeof errmsg);
    uint64_t t2 = clock_mono_ms();
    ok(t2 - t1 >= 60, "latency=60 holds a GET at least 60 ms (%llu)",
       (unsigned long long)(t2 - t1));
    diag("an unaffected PUT took %llu ms", (unsigned long long)(t1 - t0));
    buf_free(&body);
    store_close(s);

    /* 5% transient errors and latency on every op, many requests in flight:
     * nothing surfaces and every byte comes back. */
    s = open_dir("mixed", "err=0.05,latency=2,jitter=3,seed=5", -1);
    enum { K = 200 };
    struct store_req reqs[K];
    char keys[K][16];
    memset(reqs, 0, sizeof reqs);
    for (int i = 0; i < K; i++) {
        snprintf(keys[i], sizeof keys[i], "m/%03d", i);
        reqs[i] = (struct store_req){.op = STORE_PUT, .key = keys[i], .data = keys[i],
                                     .size = strlen(keys[i])};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    int failed = 0;
    for (int i = 0; i < K; i++) {
        failed += reqs[i].err != STORE_OK;
        store_req_free(&reqs[i]);
        reqs[i] = (struct store_req){.op = STORE_GET, .key = keys[i]};
        store_submit(s, &reqs[i]);
    }
    store_drain(s);
    int differ = 0;
    for (int i = 0; i < K; i++) {
        failed += reqs[i].err != STORE_OK;
        differ += reqs[i].body.len != strlen(keys[i]) || memcmp(reqs[i].body.p, keys[i], reqs[i].body.len);
        store_req_free(&reqs[i]);
    }
    struct store_stats st;
    store_get_stats(s, &st);
    is_int(failed, 0, "5%% transient errors: no error surfaces over %d puts and gets", K);
    is_int(differ, 0, "and no data differs");
    ok(st.faults_injected > 0, "faults were injected (%llu)", (unsigned long long)st.faults_injected);
    store_close(s);
}

static void test_classify(void)
{
    static const struct {
        long status;
        const char *code;
        enum store_err want;
    } cases[] = {
        {404, "NoSuchKey", STORE_ENOTFOUND},
        {404, "", STORE_ENOTFOUND},
        {404, "NoSuchBucket", STORE_EFATAL},
        {412, "PreconditionFailed", STORE_EPRECOND},
        {409, "ConditionalRequestConflict", STORE_ECONFLICT},
        {409, "BucketAlreadyExists", STORE_EFATAL},
        {403, "SignatureDoesNotMatch", STORE_EAUTH},
        {403, "AccessDenied", STORE_EAUTH},
        {401, "", STORE_EAUTH},
        {400, "ExpiredToken", STORE_EAUTH},
        {503, "SlowDown", STORE_ETHROTTLED},
        {429, "", STORE_ETHROTTLED},
        {503, "ServiceUnavailable", STORE_ETRANSIENT},
        {500, "InternalError", STORE_ETRANSIENT},
        {502, "", STORE_ETRANSIENT},
        {504, "", STORE_ETRANSIENT},
        {400, "RequestTimeout", STORE_ETRANSIENT},
        {400, "InvalidArgument", STORE_EFATAL},
        {416, "InvalidRange", STORE_EFATAL},
        {501, "NotImplemented", STORE_EFATAL},
        {405, "MethodNotAllowed", STORE_EFATAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(s3_classify(cases[i].status, cases[i].code), cases[i].want, "HTTP %ld %s is %s",
               cases[i].status, cases[i].code, store_strerror(cases[i].want));
}

static void test_xml(void)
{
    const char *page1 =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>vol/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>tok==</NextContinuationToken>"
        "<Contents><Key>vol/a &amp; b</Key><Size>10</Size><ETag>&quot;abc&quot;</ETag>"
        "<LastModified>2026-11-21T05:00:00.000Z</LastModified></Contents>"
        "<Contents><Key>vol/c</Key><Size>20</Size><ETag>\"def\"</ETag></Contents>"
        "</ListBucketResult>";
    const char *page2 = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                        "<Contents><Key>vol/d</Key><Size>5</Size></Contents></ListBucketResult>";
    struct s3_list_page p = {0};
    is_int(s3_parse_list(page1, strlen(page1), 4, &p), 0, "a ListObjectsV2 page parses");
    ok(p.n == 2 && strcmp(p.v[0].key, "a & b") == 0 && strcmp(p.v[1].key, "c") == 0,
       "keys are unescaped and the store prefix is stripped");
    is_str(p.v[0].etag, "abc", "quotes are taken off ETags");
    is_int(p.v[1].size, 20, "sizes are read");
    is_int(p.v[0].mtime, 1795237200, "LastModified is read");
    ok(p.truncated && p.next_token && strcmp(p.next_token, "tok==") == 0,
       "the continuation token is kept");
    is_int(s3_parse_list(page2, strlen(page2), 4, &p), 0, "a second page appends");
    ok(p.n == 3 && !p.truncated && !p.next_token, "three entries, not truncated");
    store_list_free(p.v, p.n);
    s3_list_page_clear(&p);
    const char *shortkey = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                           "<Contents><Key>x</Key><Size>1</Size></Contents></ListBucketResult>";
    struct s3_list_page sk = {0};
    ok(s3_parse_list(shortkey, strlen(shortkey), 4, &sk) == 0 && sk.n == 0,
       "a key shorter than the prefix is dropped (and freed once)");
    store_list_free(sk.v, sk.n);
    s3_list_page_clear(&sk);
    struct s3_list_page bad = {0};
    ok(s3_parse_list("<ListBucketResult><Contents>", 28, 0, &bad) < 0, "malformed XML is refused");
    store_list_free(bad.v, bad.n);
    s3_list_page_clear(&bad);

    const char *e = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                    "<Message>The request signature we calculated does not match</Message>"
                    "<RequestId>1</RequestId></Error>";
    char code[64], msg[128];
    is_int(s3_parse_error(e, strlen(e), code, sizeof code, msg, sizeof msg), 0,
           "an error body parses");
    is_str(code, "SignatureDoesNotMatch", "its code is read");
    ok(strncmp(msg, "The request signature", 21) == 0, "its message is read");

    const char *cp = "<ListBucketResult><Prefix>vol/d/</Prefix><IsTruncated>false</IsTruncated>"
                     "<Contents><Key>vol/d/</Key><Size>0</Size></Contents>"
                     "<CommonPrefixes><Prefix>vol/d/b/</Prefix></CommonPrefixes>"
                     "<CommonPrefixes><Prefix>vol/d/c/</Prefix></CommonPrefixes>"
                     "</ListBucketResult>";
    struct s3_list_page pp = {0};
    is_int(s3_parse_list(cp, strlen(cp), 4, &pp), 0, "a page with CommonPrefixes parses");
    ok(pp.n == 1 && strcmp(pp.v[0].key, "d/") == 0, "the marker d/ is an entry");
    ok(pp.npfx == 2 && strcmp(pp.pfx[0], "d/b/") == 0 && strcmp(pp.pfx[1], "d/c/") == 0,
       "the common prefixes are read, the store prefix stripped, the request's Prefix not "
       "taken for one (%zu)",
       pp.npfx);
    store_list_free(pp.v, pp.n);
    store_prefixes_free(pp.pfx, pp.npfx);
    s3_list_page_clear(&pp);

    char etag[STORE_ETAG_MAX];
    const char *cr = "<CopyObjectResult><LastModified>2026-11-21T05:00:00.000Z</LastModified>"
                     "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>";
    is_int(s3_parse_copy(cr, strlen(cr), etag, sizeof etag, code, sizeof code, msg, sizeof msg), 0,
           "a CopyObjectResult parses");
    is_str(etag, "9b2cf535f27731c974343645a3985328", "its ETag is read without quotes");
    const char *ce = "<Error><Code>InternalError</Code><Message>We encountered an internal "
                     "error</Message></Error>";
    is_int(s3_parse_copy(ce, strlen(ce), etag, sizeof etag, code, sizeof code, msg, sizeof msg), 1,
           "a 200 answer with an Error body is told apart");
    is_str(code, "InternalError", "with its code");
    is_int(s3_parse_copy("<CopyObjectResult/>", 19, etag, sizeof etag, code, sizeof code, msg,
                         sizeof msg),
           -1, "a CopyObjectResult without an ETag is refused");
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(tmpdir))
        bail_out("mkdtemp failed");
    unsetenv("AWS_PROFILE");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    log_set_level(LOGL_ERROR); /* the retries of the fault tests are expected */
    test_keys();
    test_urls();
    test_dir_basics();
    test_dir_missing_root();
    test_dir_meta();
    test_dir_order();
    test_dir_unmappable();
    test_meta_rules();
    test_dir_create_race();
    test_dir_cas_counter();
    test_dir_threads();
    test_rejected();
    test_retry();
    test_retry_unreachable();
    test_timed_wakeup();
    test_fault();
    test_xml();
    test_classify();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
    return done_testing();
}
