/* cmd_store.c - "buoy store ls|get|put|rm|head": operator tools on a store.
 *
 * Each verb opens the store from its URL with the common store options,
 * does one thing, and exits non-zero with a one-line error on failure
 * (3 for a missing object, 4 for a failed condition). */
#include "commands.h"
#include "util/buf.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_OPTS "help", "verbose", "log-level", "endpoint", "region", "addressing", "profile", \
                   "unsigned-payload", "retries", "max-inflight", "fault", "stats"

static const char *const ls_opts[] = {STORE_OPTS, "long", NULL};
static const char *const get_opts[] = {STORE_OPTS, "range", NULL};
static const char *const put_opts[] = {STORE_OPTS, "if-none-match", "if-match", NULL};
static const char *const rm_opts[] = {STORE_OPTS, "if-match", NULL};
static const char *const head_opts[] = {STORE_OPTS, NULL};

static void print_stats(struct store *s)
{
    struct store_stats st;
    store_get_stats(s, &st);
    fprintf(stderr,
            "requests: GET %" PRIu64 " PUT %" PRIu64 " HEAD %" PRIu64 " DELETE %" PRIu64
            " LIST %" PRIu64 " COPY %" PRIu64 "; retries %" PRIu64 "; bytes up %" PRIu64
            " down %" PRIu64 "\n",
            st.requests[STORE_GET], st.requests[STORE_PUT], st.requests[STORE_HEAD],
            st.requests[STORE_DELETE], st.requests[STORE_LIST], st.requests[STORE_COPY], st.retries,
            st.bytes_up, st.bytes_down);
}

struct store *cli_open_store(const char *url, struct cli_opts *o)
{
    char err[512];
    struct store *s = store_open(url, &o->store, err, sizeof err);
    if (!s)
        cli_error("%s", err);
    return s;
}

static int finish(struct store *s, struct cli_opts *o, int rc)
{
    if (o->show_stats)
        print_stats(s);
    store_close(s);
    return rc;
}

static int do_ls(struct cli_opts *o, int argc, char **argv)
{
    struct store *s = cli_open_store(argv[0], o);
    struct store_obj *list;
    size_t n;
    char err[STORE_ERRMSG_MAX];
    uint64_t total = 0;
    if (!s)
        return EXIT_ERR;
    enum store_err e = store_list(s, argc > 1 ? argv[1] : "", &list, &n, err, sizeof err);
    if (e) {
        cli_error("%s", err);
        return finish(s, o, cli_exit_for(e));
    }
    for (size_t i = 0; i < n; i++) {
        if (o->long_list) {
            char when[32];
            struct tm tm;
            time_t t = list[i].mtime;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
            printf("%12" PRIu64 "  %s  %-34s  %s\n", list[i].size, when, list[i].etag,
                   list[i].key);
        } else
            printf("%s\n", list[i].key);
        total += list[i].size;
    }
    if (o->long_list)
        printf("%zu objects, %" PRIu64 " bytes\n", n, total);
    store_list_free(list, n);
    return finish(s, o, EXIT_OK);
}

static int parse_range(const char *r, uint64_t *off, uint64_t *len)
{
    char *end;
    errno = 0;
    unsigned long long first = strtoull(r, &end, 10);
    if (errno || end == r || *end != '-' || r[0] == '-')
        return -1;
    const char *l = end + 1;
    *off = first;
    *len = 0;
    if (!*l)
        return 0;
    unsigned long long last = strtoull(l, &end, 10);
    if (errno || *end || last < first || l[0] == '-')
        return -1;
    *len = last - first + 1;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int do_get(struct cli_opts *o, int argc, char **argv)
{
    uint64_t off = 0, len = 0;
    if (o->range && parse_range(o->range, &off, &len) < 0)
        return cli_error("store get: bad --range '%s': use FIRST-LAST or FIRST-", o->range),
               EXIT_USAGE;
    struct store *s = cli_open_store(argv[0], o);
    if (!s)
        return EXIT_ERR;
    struct buf body = {0};
    char err[STORE_ERRMSG_MAX];
    enum store_err e = store_get(s, argv[1], off, len, &body, NULL, err, sizeof err);
    int rc = EXIT_OK;
    if (e) {
        cli_error("%s", err);
        rc = cli_exit_for(e);
    } else {
        const char *path = argc > 2 ? argv[2] : "-";
        int fd = strcmp(path, "-") == 0 ? STDOUT_FILENO
                                        : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write_all(fd, body.p, body.len) < 0 ||
            (fd != STDOUT_FILENO && close(fd) < 0)) {
            rc = cli_error("store get: cannot write %s: %s", path, strerror(errno));
        }
    }
    buf_free(&body);
    return finish(s, o, rc);
}

static int read_all(const char *path, struct buf *out)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (;;) {
        buf_reserve(out, 1 << 16);
        ssize_t n = read(fd, out->p + out->len, out->cap - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            if (fd != STDIN_FILENO)
                close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return 0;
}

static int do_put(struct cli_opts *o, int argc, char **argv)
{
    if (o->if_none_match && o->if_match)
        return cli_error("store put: --if-none-match and --if-match exclude each other"),
               EXIT_USAGE;
    const char *path = argc > 2 ? argv[2] : "-";
    struct buf body = {0};
    if (read_all(path, &body) < 0) {
        cli_error("store put: cannot read %s: %s", path, strerror(errno));
        buf_free(&body);
        return EXIT_ERR;
    }
    struct store *s = cli_open_store(argv[0], o);
    if (!s) {
        buf_free(&body);
        return EXIT_ERR;
    }
    char err[STORE_ERRMSG_MAX], etag[STORE_ETAG_MAX];
    enum store_cond cond = o->if_none_match ? STORE_IF_NONE_MATCH
                           : o->if_match    ? STORE_IF_MATCH
                                            : STORE_COND_NONE;
    enum store_err e = store_put(s, argv[1], body.p, body.len, cond, o->if_match, etag, err,
                                 sizeof err);
    buf_free(&body);
    if (e) {
        cli_error("%s", err);
        return finish(s, o, cli_exit_for(e));
    }
    printf("%s\n", etag);
    return finish(s, o, EXIT_OK);
}

static int do_rm(struct cli_opts *o, int argc, char **argv)
{
    struct store *s = cli_open_store(argv[0], o);
    int rc = EXIT_OK;
    if (!s)
        return EXIT_ERR;
    for (int i = 1; i < argc; i++) {
        char err[STORE_ERRMSG_MAX];
        enum store_err e = store_delete(s, argv[i], o->if_match ? STORE_IF_MATCH : STORE_COND_NONE,
                                        o->if_match, err, sizeof err);
        if (e) {
            cli_error("%s", err);
            rc = cli_exit_for(e);
        }
    }
    return finish(s, o, rc);
}

static int do_head(struct cli_opts *o, int argc, char **argv)
{
    struct store *s = cli_open_store(argv[0], o);
    struct store_obj info;
    char err[STORE_ERRMSG_MAX], when[32];
    struct tm tm;
    if (!s)
        return EXIT_ERR;
    enum store_err e = store_head(s, argv[1], &info, err, sizeof err);
    if (e) {
        cli_error("%s", err);
        return finish(s, o, cli_exit_for(e));
    }
    time_t t = info.mtime;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    printf("size %" PRIu64 "\netag %s\nmtime %s\n", info.size, info.etag, when);
    return finish(s, o, EXIT_OK);
}

static const struct cli_cmd verbs[] = {
    {"ls", "URL [PREFIX]", "list the objects under PREFIX, sorted by key", ls_opts, 1, 2, do_ls},
    {"get", "URL KEY [FILE|-]", "write an object (or a byte range of it) to FILE or stdout",
     get_opts, 2, 3, do_get},
    {"put", "URL KEY [FILE|-]", "store FILE (or stdin) as KEY and print its ETag", put_opts, 2, 3,
     do_put},
    {"rm", "URL KEY...", "delete objects (a missing key is not an error)", rm_opts, 2, -1, do_rm},
    {"head", "URL KEY", "print an object's size, ETag and modification time", head_opts, 2, 2,
     do_head},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static void store_usage(FILE *out)
{
    fprintf(out, "usage: buoy store VERB [options] URL ARGS...\n\nverbs:\n");
    for (size_t i = 0; i < NVERBS; i++)
        fprintf(out, "  %-5s %-18s %s\n", verbs[i].name, verbs[i].args, verbs[i].summary);
    fprintf(out, "\nRun 'buoy store VERB --help' for a verb's options.\n");
}

int cmd_store(int argc, char **argv)
{
    return cli_run_verb("store", verbs, NVERBS, store_usage, argc, argv);
}
