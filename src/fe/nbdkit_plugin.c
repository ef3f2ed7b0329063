/* nbdkit_plugin.c - the NBD frontend: an nbdkit plugin that serves one buoy
 * volume.  Built as build/nbdkit-buoy-plugin.so; "buoy serve" runs nbdkit
 * with it (src/cli/cmd_serve.c), or by hand:
 *
 *     nbdkit -U /run/v.sock build/nbdkit-buoy-plugin.so url=s3://b/v cache_dir=/var/cache/buoy
 *
 * Shape:
 *  - One engine per nbdkit process, shared by every connection: opened in
 *    .after_fork (the engine starts a sealer thread, and threads do not
 *    survive the fork into the background, so .get_ready is too early) and
 *    closed in .cleanup, which nbdkit calls after the last connection has
 *    gone, on SIGTERM/SIGINT or when a --run command exits.  vol_close()
 *    seals, uploads and checkpoints, so a clean stop leaves everything in the
 *    store.  .unload closes it too if .cleanup was never reached.
 *  - Thread model PARALLEL: every vol_* entry point is thread-safe.
 *  - Rules the callbacks keep:
 *     1. A request is answered with success only when the engine said 0;
 *        the engine's -errno goes back to the client as that errno.
 *     2. flush is vol_flush(): with durability remote it returns when every
 *        earlier write is in the object store, with local when it is in the
 *        fdatasync'd journal.  FUA on a write is vol_write(fua=1), the same
 *        promise for that write; FUA on trim/zero is a vol_flush after it.
 *     3. multi-conn is advertised because it is true: all connections share
 *        one engine, so a flush on any of them covers the writes of all.
 *     4. zero is vol_trim: an unmapped range reads back as zeros and costs no
 *        upload.  NO_HOLE (no MAY_TRIM flag) asks for allocated zeros, which
 *        a log-structured volume has no use for: writing real zeros would
 *        reserve nothing, since every later write goes to a new segment
 *        anyway.  That is also why zeroing is fast (can_fast_zero).
 */
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "fe/statsfile.h"
#include "util/log.h"
#include "vol/vol.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Configuration, from key=value parameters (copies: ours until unload). */
static char *url;
static char *cache_dir;
static char *passphrase_file; /* an encrypted volume's */
static char *endpoint, *region, *profile, *fault;
static struct vol_opts vopts = {.store = {.retries = -1}, .gc = 1};
static int use_syslog;
/* ready_fd=N (buoy serve in the background): the write end of a pipe to
 * the buoy that started us.  .after_fork writes "ok" there once the volume
 * is open, or the error that stopped it, so that buoy serve reports the
 * real outcome instead of trusting the pid file (nbdkit writes that before
 * the volume is opened). */
static int ready_fd = -1;
static int syslog_facility = -1;
static char *log_file; /* buoy serve --log-file: ours, timestamped, reopened on SIGHUP */

/* The one engine; NULL before .after_fork and after .cleanup. */
static struct vol *vol;

/* The stats file (the same text as a FUSE mount's MOUNTPOINT/stats), written
 * every second by its own thread, for buoy stats FILE. */
static char *stats_file;
static pthread_t stats_thread;
static int stats_running;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stats_wake = PTHREAD_COND_INITIALIZER;
static int stats_stop;

static void write_stats(void)
{
    struct buf b = {0};
    statsfile_format(vol, url, (int)getpid(), &b);
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", stats_file) < 0) {
        buf_free(&b);
        return;
    }
    FILE *f = fopen(tmp, "we");
    if (f && fwrite(b.p, 1, b.len, f) == b.len && fclose(f) == 0)
        rename(tmp, stats_file);
    else if (f)
        fclose(f);
    free(tmp);
    buf_free(&b);
}

static void *stats_main(void *arg)
{
    pthread_mutex_lock(&stats_lock);
    while (!stats_stop) {
        pthread_mutex_unlock(&stats_lock);
        write_stats();
        pthread_mutex_lock(&stats_lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&stats_wake, &stats_lock, &ts);
    }
    pthread_mutex_unlock(&stats_lock);
    return NULL;
}

static int keep(char **dst, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    if (!*dst) {
        nbdkit_error("out of memory");
        return -1;
    }
    return 0;
}

static int whole(const char *key, const char *value, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        nbdkit_error("%s takes a whole number from %ld to %ld, not '%s'", key, min, max, value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int buoy_config(const char *key, const char *value)
{
    if (strcmp(key, "url") == 0)
        return keep(&url, value);
    if (strcmp(key, "cache_dir") == 0)
        return keep(&cache_dir, value);
    if (strcmp(key, "passphrase_file") == 0)
        return keep(&passphrase_file, value);
    if (strcmp(key, "durability") == 0) {
        if (strcmp(value, "remote") == 0)
            vopts.durability_local = 0;
        else if (strcmp(value, "local") == 0)
            vopts.durability_local = 1;
        else {
            nbdkit_error("durability is remote or local, not '%s'", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "readonly") == 0) {
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        vopts.read_only = r;
        return 0;
    }
    if (strcmp(key, "takeover") == 0) {
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        vopts.takeover = r;
        return 0;
    }
    if (strcmp(key, "stats_file") == 0)
        return keep(&stats_file, value);
    if (strcmp(key, "lease_ms") == 0)
        return whole(key, value, 100, 3600000, &vopts.lease_ms);
    if (strcmp(key, "gc") == 0) { /* background garbage collection, on by default */
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        vopts.gc = r;
        return 0;
    }
    if (strcmp(key, "syslog") == 0) {
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        use_syslog = r;
        return 0;
    }
    if (strcmp(key, "ready_fd") == 0) {
        if (whole(key, value, 3, 1 << 20, &ready_fd) < 0)
            return -1;
        if (fcntl(ready_fd, F_SETFD, FD_CLOEXEC) < 0) { /* not for the engine's children */
            nbdkit_error("ready_fd=%d: %s", ready_fd, strerror(errno));
            ready_fd = -1;
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "syslog_facility") == 0) {
        syslog_facility = log_parse_facility(value);
        if (syslog_facility < 0) {
            nbdkit_error("syslog_facility is daemon, user or local0..local7, not '%s'", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "log_file") == 0)
        return keep(&log_file, value);
    if (strcmp(key, "log_level") == 0) {
        int l = log_parse_level(value);
        if (l < 0) {
            nbdkit_error("log_level is error, warn, notice, info or debug, not '%s'", value);
            return -1;
        }
        log_set_level((enum log_level)l);
        return 0;
    }
    if (strcmp(key, "endpoint") == 0)
        return keep(&endpoint, value);
    if (strcmp(key, "region") == 0)
        return keep(&region, value);
    if (strcmp(key, "profile") == 0)
        return keep(&profile, value);
    if (strcmp(key, "fault") == 0)
        return keep(&fault, value);
    if (strcmp(key, "addressing") == 0) {
        if (strcmp(value, "path") == 0)
            vopts.store.addressing = STORE_ADDR_PATH;
        else if (strcmp(value, "virtual") == 0)
            vopts.store.addressing = STORE_ADDR_VIRTUAL;
        else if (strcmp(value, "auto") == 0)
            vopts.store.addressing = STORE_ADDR_AUTO;
        else {
            nbdkit_error("addressing is path, virtual or auto, not '%s'", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "unsigned_payload") == 0) {
        int r = nbdkit_parse_bool(value);
        if (r < 0)
            return -1;
        vopts.store.unsigned_payload = r;
        return 0;
    }
    if (strcmp(key, "retries") == 0)
        return whole(key, value, 0, 100, &vopts.store.retries);
    if (strcmp(key, "max_inflight") == 0)
        return whole(key, value, 1, 1024, &vopts.store.max_inflight);
    nbdkit_error("unknown parameter '%s'; see nbdkit %s --help", key, "buoy");
    return -1;
}

static int buoy_config_complete(void)
{
    if (!url) {
        nbdkit_error("url=URL is required: the volume to serve");
        return -1;
    }
    if (!cache_dir && !vopts.read_only) {
        nbdkit_error("cache_dir=DIR is required unless readonly=true");
        return -1;
    }
    vopts.cache_dir = cache_dir;
    vopts.passphrase_file = passphrase_file;
    vopts.store.endpoint = endpoint;
    vopts.store.region = region;
    vopts.store.profile = profile;
    vopts.store.fault = fault;
    return 0;
}

#define buoy_config_help                                                                           \
    "url=URL               (required) the volume: /path, dir:///path or s3://bucket/prefix\n"      \
    "cache_dir=DIR         local journal and cache (required unless readonly)\n"                \
    "durability=remote|local  what a flush waits for (default remote: the object store)\n"      \
    "readonly=BOOL         open the volume read-only\n"                                            \
    "passphrase_file=PATH  an encrypted volume's passphrase\n"                                     \
    "gc=BOOL               garbage collection in the background (default true)\n"                 \
    "takeover=BOOL lease_ms=MS  the writer lease: take it from a writer that is gone\n"          \
    "stats_file=PATH       write the volume's statistics there every second (buoy stats PATH)\n" \
    "endpoint=URL region=R profile=P addressing=path|virtual|auto unsigned_payload=BOOL\n"        \
    "retries=N max_inflight=N fault=SPEC  store options, as buoy's --options\n"                   \
    "log_level=LEVEL syslog=BOOL syslog_facility=NAME log_file=PATH  engine logging\n"           \
    "                      (default notice, to stderr; log_file is reopened on SIGHUP)\n"       \
    "ready_fd=N            write \"ok\" or the open's error to this fd (buoy serve)"

/* Tells the buoy that started us how the open went (ready_fd), once. */
static void tell_ready(const char *msg)
{
    if (ready_fd < 0)
        return;
    size_t len = strlen(msg);
    if (write(ready_fd, msg, len) != (ssize_t)len)
        nbdkit_debug("buoy: ready_fd: %s", strerror(errno));
    close(ready_fd);
    ready_fd = -1;
}

/* An error of the running server: in our log (timestamped, or syslog),
 * like the engine's own lines, once .after_fork has set it up; nbdkit's
 * before. */
static int log_started;
__attribute__((format(printf, 1, 2))) static void serve_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_started)
        log_error("%s", msg);
    else
        nbdkit_error("%s", msg);
}

/* Our log: the file (which is nbdkit's stderr too when buoy serve runs in
 * the background: then both follow a reopen), syslog, or stderr, the lines
 * timestamped but in syslog. */
static int start_log(void)
{
    char err[512];
    if (syslog_facility >= 0)
        log_set_facility(syslog_facility);
    if (log_file) {
        struct stat a, b;
        int shared = fstat(2, &a) == 0 && stat(log_file, &b) == 0 && a.st_dev == b.st_dev &&
                     a.st_ino == b.st_ino;
        if (log_open_file(log_file, err, sizeof err) < 0) {
            nbdkit_error("%s", err);
            tell_ready(err);
            return -1;
        }
        if (shared)
            log_file_takes_stderr();
        log_reopen_on_sighup();
    } else if (use_syslog)
        log_use_syslog(1);
    else
        log_set_timestamps(1);
    log_started = 1;
    return 0;
}

static int buoy_after_fork(void)
{
    char err[STORE_ERRMSG_MAX];
    if (start_log() < 0)
        return -1;
    vol = vol_open(url, &vopts, err, sizeof err);
    if (!vol) {
        serve_error("%s", err);
        tell_ready(err);
        return -1;
    }
    tell_ready("ok");
    log_notice("serving %s over NBD: %" PRIu64 " bytes, block size %u%s", url, vol_size(vol),
               vol_block_size(vol), vopts.read_only ? ", read-only" : "");
    if (stats_file && pthread_create(&stats_thread, NULL, stats_main, NULL) == 0)
        stats_running = 1;
    return 0;
}

/* Closes the engine: flush, upload, checkpoint.  On a failure, says what
 * is not in the store and where it is (the engine knows: the journal, or
 * nowhere when the journal was lost). */
static void close_vol(void)
{
    if (!vol)
        return;
    if (stats_running) {
        pthread_mutex_lock(&stats_lock);
        stats_stop = 1;
        pthread_cond_signal(&stats_wake);
        pthread_mutex_unlock(&stats_lock);
        pthread_join(stats_thread, NULL);
        stats_running = 0;
        unlink(stats_file); /* no stale numbers once the volume is closed */
    }
    log_notice("stopping: closing %s", url);
    char why[1800];
    int rc = vol_close_report(vol, why, sizeof why);
    vol = NULL;
    if (rc < 0) /* why says what is not in the store and where it is */
        serve_error("closing %s failed: %s", url, why);
    else
        log_notice("closed %s%s", url,
                   vopts.read_only ? "" : ": everything written is in the store");
}

static void buoy_cleanup(void)
{
    close_vol();
}

static void buoy_unload(void)
{
    close_vol();
    free(url);
    free(cache_dir);
    free(passphrase_file);
    free(endpoint);
    free(region);
    free(profile);
    free(fault);
    free(stats_file);
    free(log_file);
}

/* Every connection gets the shared engine as its handle. */
static void *buoy_open(int readonly)
{
    if (!vol) {
        serve_error("the volume is not open");
        return NULL;
    }
    return vol;
}

static int64_t buoy_get_size(void *h)
{
    return (int64_t)vol_size(h);
}

static int buoy_block_size(void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
    *minimum = 1;                 /* unaligned requests are fine */
    *preferred = vol_block_size(h); /* whole blocks skip a read-modify-write */
    *maximum = 0xffffffff;
    return 0;
}

static int buoy_can_write(void *h)
{
    return !vopts.read_only;
}

static int yes(void *h)
{
    return 1;
}

static int buoy_is_rotational(void *h)
{
    return 0;
}

static int buoy_can_fua(void *h)
{
    return NBDKIT_FUA_NATIVE;
}

/* Rule 1: the engine's -errno becomes the client's errno. */
static int answer(int rc, const char *what, uint32_t count, uint64_t offset)
{
    if (rc == 0)
        return 0;
    serve_error("%s of %" PRIu32 " bytes at %" PRIu64 ": %s", what, count, offset,
                strerror(-rc));
    nbdkit_set_error(-rc);
    return -1;
}

static int buoy_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    return answer(vol_read(h, buf, offset, count), "read", count, offset);
}

static int buoy_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    return answer(vol_write(h, buf, offset, count, !!(flags & NBDKIT_FLAG_FUA)), "write", count,
                  offset);
}

static int buoy_flush(void *h, uint32_t flags)
{
    int rc = vol_flush(h);
    if (rc == 0)
        return 0;
    serve_error("flush: %s", strerror(-rc));
    nbdkit_set_error(-rc);
    return -1;
}

/* Rule 2 and 4: trim and zero unmap, then flush if FUA asks. */
static int unmap(void *h, uint32_t count, uint64_t offset, uint32_t flags, const char *what)
{
    int rc = vol_trim(h, offset, count);
    if (rc == 0 && (flags & NBDKIT_FLAG_FUA))
        rc = vol_flush(h);
    return answer(rc, what, count, offset);
}

static int buoy_trim(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    return unmap(h, count, offset, flags, "trim");
}

static int buoy_zero(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    return unmap(h, count, offset, flags, "write-zeroes");
}

static struct nbdkit_plugin plugin = {
    .name = "buoy",
    .longname = "buoy volume (a block device in an object store)",
    .version = "0.1.0",
    .description = "Serve a buoy volume: data in S3, an S3-compatible store or a directory.",
    .magic_config_key = "url",
    .config = buoy_config,
    .config_complete = buoy_config_complete,
    .config_help = buoy_config_help,
    .after_fork = buoy_after_fork,
    .cleanup = buoy_cleanup,
    .unload = buoy_unload,
    .open = buoy_open,
    .get_size = buoy_get_size,
    .block_size = buoy_block_size,
    .can_write = buoy_can_write,
    .can_flush = yes,
    .can_trim = yes,
    .can_zero = yes,
    .can_fast_zero = yes,
    .can_fua = buoy_can_fua,
    .can_multi_conn = yes,
    .is_rotational = buoy_is_rotational,
    .pread = buoy_pread,
    .pwrite = buoy_pwrite,
    .flush = buoy_flush,
    .trim = buoy_trim,
    .zero = buoy_zero,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
