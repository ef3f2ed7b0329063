/* journal.c - the local journal, buoy's write-ahead log (see journal.h).
 *
 * Byte layout of journal/SSSSSSSSSSSSSSSS.jrn (all integers little-endian):
 *
 *     file header, 64 bytes:
 *         0   8  magic "BUOYJRN1"
 *         8   4  format version (1; 2: sealed records, below)
 *        12   4  block_size (a power of two, 512 to 65536)
 *        16  16  volume uuid
 *        32  16  writer id (random per open of the volume)
 *        48   8  seq S: the segment this journal becomes
 *        56   4  epoch of the writer's lease
 *        60   4  check: the low 32 bits of H = XXH3-64 of bytes [0, 60)
 *     records, back to back from offset 64:
 *         0   4  magic 0x52424A42
 *         4   4  kind: 1 data, 2 zero
 *         8   8  lba
 *        16   4  nblocks (at least 1)
 *        20   4  reserved (0)
 *        24   8  check: XXH3-64, seeded with H, of bytes [0, 24) and the data
 *        32      data: nblocks * block_size bytes for kind 1, none for kind 2
 *
 * A sealed journal (version 2, an encrypted volume's) stores each record's
 * data as 24 bytes of random nonce, the XChaCha20-Poly1305-IETF ciphertext
 * of the data (empty for kind 2) and its 16-byte tag, under the volume's
 * local key (keys.h), with associated data the record's bytes [0, 24) and H
 * (8 bytes, little-endian): 40 bytes more per record, and the check is of
 * what is stored.  A record whose check matches but whose tag does not was
 * altered (or sealed under another key), not torn: replay stops with
 * JOURNAL_EAUTH, never a silent prefix (rule 10).
 *
 * A record is valid when its magic, kind, nblocks, reserved field and check
 * are right and it ends within the file.  H (the file's "salt") seeds every
 * record check, so a record is valid only in the file it was written to.
 *
 * Where this goes beyond docs/FORMAT.md's "Local journal" section: the file
 * header also holds block_size (replay must know a record's length without
 * the superblock), so the header check shrinks to 32 bits to keep 64 bytes;
 * and record checks are seeded with H instead of 0 (rule 9).  A record
 * "valid when its magic and check match" also needs sane fields here: a
 * checked record of 0 blocks or an unknown kind ends the replay too.
 *
 * Rules:
 *  1. A journal file exists under its final name only with a complete,
 *     fsynced header: journal_create() writes the header to NAME.tmp,
 *     fsyncs it, renames it to NAME with RENAME_NOREPLACE (never replacing
 *     a journal that may hold unreplayed data) and fsyncs the directory
 *     before it returns.  A crash leaves no journal or an empty one (and
 *     perhaps a NAME.tmp, which is not a journal and is overwritten by the
 *     next create of that seq).
 *  2. Records are appended only at j->end, the end of the last complete
 *     record, each with one pwritev().  While the journal is OPEN the file
 *     holds exactly j->end bytes: an append that fails cuts its partial
 *     record off again with ftruncate(), or puts the journal in ERROR; so
 *     an append that returned -1 left no record and may be retried.
 *  3. When journal_sync() returns 0, every record appended before it is
 *     durable: fdatasync() writes the data and the file size.
 *  4. ERROR is sticky.  After a failed fdatasync the kernel may have dropped
 *     the dirty pages and marked them clean, so a later fdatasync could
 *     succeed without them: every later append and sync fails with EIO and
 *     the first error's message.  Only journal_close() leaves ERROR.
 *  5. Replay returns a prefix.  It stops at the first invalid record and
 *     never looks past it: appends are sequential (rule 2), so everything
 *     after a torn or damaged record is suspect.  With rules 2 and 3 the
 *     replayed records are a prefix of the appended ones that contains every
 *     record appended before the last successful journal_sync().
 *  6. Replay trusts nothing in the file: a record's size is bounded by what
 *     remains of the file and by JOURNAL_MAX_RECORD_DATA before anything is
 *     allocated or read.  A failed read is JOURNAL_EIO, never taken for a
 *     torn tail, which would silently drop synced records.
 *  7. A journal is never reopened for appending: recovery replays it into a
 *     new segment and removes it.  (Records appended after a torn tail would
 *     be hidden behind it by rule 5.)
 *  8. A journal is removed only once its segment is durable in the store
 *     (FORMAT.md rule 1); journal_remove() fsyncs the directory.
 * 10. A sealed record is opened before its data is used, and one that fails
 *     to open is an error, not the end of the replay: cutting the replay
 *     there would drop synced records without a word.
 *  9. Records are salted: a crash can expose stale blocks of a deleted file
 *     at the tail of this one (ext4 data=writeback, for one), and an old
 *     journal of the same volume laid out alike would otherwise supply
 *     records that validate at a record boundary.  Seeded with H, they fail.
 *
 * States of a struct journal, and the functions behind each transition:
 *
 *     (none) --journal_create()--> OPEN --append, sync ok--> OPEN
 *                                  |
 *                                  | fdatasync fails, or a failed write
 *                                  | cannot be cut off (or is not ENOSPC,
 *                                  | EDQUOT, EFBIG)
 *                                  v
 *                                ERROR --append, sync--> ERROR (-1, EIO)
 *     OPEN, ERROR --journal_close()--> (none)
 *
 * assert_journal_state() checks rule 2 and the counters in debug builds. */
#include "vol/journal.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/le.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <sodium.h>
#include <xxhash.h>

#define JRN_MAGIC "BUOYJRN1"
#define JRN_VERSION 1
#define JRN_VERSION_SEALED 2
#define SEAL_NONCE 24
#define SEAL_TAG 16
#define SEAL_EXTRA (SEAL_NONCE + SEAL_TAG) /* stored bytes a sealed record adds */
#define JRN_CHECKED 60 /* file header bytes under the check */
#define REC_MAGIC 0x52424A42u
#define REC_CHECKED 24 /* record header bytes under the check */
#define NAME_LEN 20    /* 16 hex digits + ".jrn" */

enum journal_state { J_OPEN, J_ERROR };

struct journal {
    int fd;
    enum journal_state state;
    char *path; /* for messages */
    uint64_t seq;
    uint32_t block_size;
    uint64_t salt;       /* H, seeds every record check */
    XXH3_state_t *xs;
    int sealed;                  /* version 2: records sealed under key */
    uint8_t key[JOURNAL_KEY_LEN];
    uint8_t *sbuf;               /* a sealed record's stored data */
    size_t scap;
    uint64_t end;        /* header + complete records (rule 2) */
    uint64_t synced_end; /* end at the last successful sync */
    uint64_t nrecords;
    uint64_t synced_records;
    char errmsg[512];
};

/* --- fault injection (journal_fault_inject) --------------------------- */

static int fault_countdown, fault_persist, fault_errno, fault_fired;

int journal_fault_inject(int countdown, int persist, int err)
{
    int fired = fault_fired;
    fault_countdown = countdown;
    fault_persist = persist;
    fault_errno = err;
    fault_fired = 0;
    return fired;
}

/* Called before every system call that changes or syncs a journal file or
 * directory: the errno to fail it with, or 0 to go ahead. */
static int fault_point(void)
{
    if (fault_countdown <= 0)
        return 0;
    if (fault_countdown > 1) {
        fault_countdown--;
        return 0;
    }
    if (!fault_persist)
        fault_countdown = 0;
    fault_fired++;
    return fault_errno;
}

static int x_fsync(int fd, int data_only)
{
    int e = fault_point();
    if (e) {
        errno = e;
        return -1;
    }
    return data_only ? fdatasync(fd) : fsync(fd);
}

static int x_ftruncate(int fd, uint64_t len)
{
    int e = fault_point();
    if (e) {
        errno = e;
        return -1;
    }
    return ftruncate(fd, (off_t)len);
}

static int x_openat(int dfd, const char *name, int flags, mode_t mode)
{
    int e = fault_point();
    if (e) {
        errno = e;
        return -1;
    }
    return openat(dfd, name, flags, mode);
}

static int x_rename_noreplace(int dfd, const char *from, const char *to)
{
    int e = fault_point();
    if (e) {
        errno = e;
        return -1;
    }
    return renameat2(dfd, from, dfd, to, RENAME_NOREPLACE);
}

static int x_unlinkat(int dfd, const char *name)
{
    int e = fault_point();
    if (e) {
        errno = e;
        return -1;
    }
    return unlinkat(dfd, name, 0);
}

/* Writes a[0..alen) then b[0..blen) at off.  Returns 0, or -1 with errno
 * when some prefix of the bytes (perhaps none) may have been written. */
static int write_at(int fd, const void *a, size_t alen, const void *b, size_t blen, uint64_t off)
{
    size_t total = alen + blen, want = total, done = 0;
    int injected = fault_point();

    if (injected)
        want = total / 2; /* a full disk: part of the bytes land */
    while (done < want) {
        struct iovec iov[2];
        int n = 0;
        size_t left = want - done;
        if (done < alen) {
            size_t k = alen - done < left ? alen - done : left;
            iov[n++] = (struct iovec){(char *)a + done, k};
            left -= k;
        }
        if (left > 0) {
            size_t boff = done > alen ? done - alen : 0;
            iov[n++] = (struct iovec){(char *)b + boff, left};
        }
        ssize_t w = pwritev(fd, iov, n, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t)w;
    }
    if (injected) {
        errno = injected;
        return -1;
    }
    return 0;
}

/* Reads exactly len bytes at off; a file shorter than expected is EIO. */
static int read_at(int fd, void *p, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)p + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EIO; /* the file shrank under us */
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* --- messages ----------------------------------------------------------- */

/* Records the journal's last error, "journal PATH: ...", keeping errno. */
__attribute__((format(printf, 2, 3))) static void jerr(struct journal *j, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    int n = snprintf(j->errmsg, sizeof j->errmsg, "journal %s: ", j->path);
    if (n < 0 || (size_t)n >= sizeof j->errmsg)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(j->errmsg + n, sizeof j->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    errno = e;
}

static void uuid_str(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = '\0';
}

static void journal_name(uint64_t seq, char out[NAME_LEN + 1])
{
    snprintf(out, NAME_LEN + 1, "%016" PRIx64 ".jrn", seq);
}

static int valid_block_size(uint32_t bs)
{
    return bs >= 512 && bs <= 65536 && (bs & (bs - 1)) == 0;
}

/* --- the state check -------------------------------------------------- */

#ifndef NDEBUG
static void assert_journal_state(const struct journal *j)
{
    assert(j != NULL);
    assert(j->state == J_OPEN || j->state == J_ERROR);
    assert(j->fd >= 0);
    assert(JOURNAL_HEADER_SIZE <= j->synced_end && j->synced_end <= j->end);
    assert(j->synced_records <= j->nrecords);
    assert(j->nrecords * JOURNAL_RECORD_HEADER_SIZE <= j->end - JOURNAL_HEADER_SIZE);
    assert(j->nrecords > 0 || j->end == JOURNAL_HEADER_SIZE);
    if (j->state == J_ERROR)
        assert(j->errmsg[0] != '\0');
    if (j->state == J_OPEN) {
        struct stat st;
        assert(fstat(j->fd, &st) == 0);
        assert((uint64_t)st.st_size == j->end); /* rule 2 */
    }
}
#else
#define assert_journal_state(j) ((void)0)
#endif

/* --- writing ------------------------------------------------------------ */

/* Fills the 64-byte file header; returns H, the record checks' seed. */
static uint64_t encode_header(uint8_t h[JOURNAL_HEADER_SIZE], const uint8_t uuid[16],
                              const uint8_t writer_id[16], uint64_t seq, uint32_t epoch,
                              uint32_t block_size, int sealed)
{
    memset(h, 0, JOURNAL_HEADER_SIZE);
    memcpy(h, JRN_MAGIC, 8);
    le_put32(h + 8, sealed ? JRN_VERSION_SEALED : JRN_VERSION);
    le_put32(h + 12, block_size);
    memcpy(h + 16, uuid, 16);
    memcpy(h + 32, writer_id, 16);
    le_put64(h + 48, seq);
    le_put32(h + 56, epoch);
    uint64_t salt = XXH3_64bits(h, JRN_CHECKED);
    le_put32(h + 60, (uint32_t)salt);
    return salt;
}

/* The streaming state is opaque in libxxhash's stable ABI: allocate it. */
static XXH3_state_t *new_xxh3_state(void)
{
    XXH3_state_t *xs = XXH3_createState();
    if (!xs) {
        fprintf(stderr, "buoy: out of memory allocating an XXH3 state\n");
        abort();
    }
    return xs;
}

static uint64_t record_check(XXH3_state_t *xs, uint64_t salt, const uint8_t *h, const void *data,
                             size_t dlen)
{
    XXH3_64bits_reset_withSeed(xs, salt);
    XXH3_64bits_update(xs, h, REC_CHECKED);
    if (dlen)
        XXH3_64bits_update(xs, data, dlen);
    return XXH3_64bits_digest(xs);
}

/* A sealed record's associated data: its checked header bytes and H. */
static void seal_ad(const uint8_t *h, uint64_t salt, uint8_t ad[REC_CHECKED + 8])
{
    memcpy(ad, h, REC_CHECKED);
    le_put64(ad + REC_CHECKED, salt);
}

/* Fills the record header; for a sealed journal, seals data into j->sbuf
 * and points *stored at it.  *slen is the stored data's length. */
static void encode_record(struct journal *j, uint8_t h[JOURNAL_RECORD_HEADER_SIZE],
                          enum journal_kind kind, uint64_t lba, uint32_t nblocks,
                          const void *data, size_t dlen, const void **stored, size_t *slen)
{
    le_put32(h, REC_MAGIC);
    le_put32(h + 4, (uint32_t)kind);
    le_put64(h + 8, lba);
    le_put32(h + 16, nblocks);
    le_put32(h + 20, 0);
    *stored = data;
    *slen = dlen;
    if (j->sealed) {
        uint8_t ad[REC_CHECKED + 8];
        if (j->scap < dlen + SEAL_EXTRA) {
            free(j->sbuf);
            j->scap = dlen + SEAL_EXTRA;
            j->sbuf = xmalloc(j->scap);
        }
        seal_ad(h, j->salt, ad);
        randombytes_buf(j->sbuf, SEAL_NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(j->sbuf + SEAL_NONCE, NULL, data, dlen, ad,
                                                   sizeof ad, NULL, j->sbuf, j->key);
        *stored = j->sbuf;
        *slen = dlen + SEAL_EXTRA;
    }
    le_put64(h + 24, record_check(j->xs, j->salt, h, *stored, *slen));
}

/* Writes the header to NAME.tmp, fsyncs it and renames it to NAME (rule 1).
 * Returns the open descriptor, or -1 with errno and *step naming the call
 * that failed; leaves no file behind on failure except as noted. */
static int create_file(int dfd, const char *name, const uint8_t *hdr, int *renamed,
                       const char **step)
{
    char tmp[NAME_LEN + 8];
    int fd, e;

    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    *renamed = 0;
    *step = "create";
    fd = x_openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    *step = "write header";
    if (write_at(fd, hdr, JOURNAL_HEADER_SIZE, NULL, 0, 0) < 0)
        goto fail;
    *step = "fsync";
    if (x_fsync(fd, 0) < 0)
        goto fail;
    *step = "rename into place";
    if (x_rename_noreplace(dfd, tmp, name) < 0)
        goto fail;
    *renamed = 1;
    return fd;
fail:
    e = errno;
    close(fd);
    unlinkat(dfd, tmp, 0); /* best effort: a leftover .tmp is not a journal */
    errno = e;
    return -1;
}

int journal_create(const char *dir, const uint8_t uuid[16], const uint8_t writer_id[16],
                   uint64_t seq, uint32_t epoch, uint32_t block_size, const uint8_t *key,
                   struct journal **out, char *err, size_t errlen)
{
    char name[NAME_LEN + 1];
    uint8_t hdr[JOURNAL_HEADER_SIZE];
    const char *step = "open directory";
    int dfd, fd = -1, renamed = 0, e;

    *out = NULL;
    journal_name(seq, name);
    if (!valid_block_size(block_size)) {
        set_err(err, errlen, "journal %s/%s: block size %" PRIu32
                " is not a power of two from 512 to 65536", dir, name, block_size);
        errno = EINVAL;
        return -1;
    }
    if (key && sodium_init() < 0) {
        set_err(err, errlen, "journal %s/%s: libsodium failed to initialise", dir, name);
        errno = EIO;
        return -1;
    }
    uint64_t salt = encode_header(hdr, uuid, writer_id, seq, epoch, block_size, key != NULL);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        goto fail;
    fd = create_file(dfd, name, hdr, &renamed, &step);
    if (fd < 0)
        goto fail;
    step = "fsync directory";
    if (x_fsync(dfd, 0) < 0)
        goto fail;
    close(dfd);

    struct journal *j = xcalloc(1, sizeof *j);
    j->fd = fd;
    j->state = J_OPEN;
    j->path = xasprintf("%s/%s", dir, name);
    j->seq = seq;
    j->block_size = block_size;
    j->salt = salt;
    j->xs = new_xxh3_state();
    if (key) {
        j->sealed = 1;
        memcpy(j->key, key, JOURNAL_KEY_LEN);
    }
    j->end = j->synced_end = JOURNAL_HEADER_SIZE;
    assert_journal_state(j);
    *out = j;
    return 0;

fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    if (renamed)
        unlinkat(dfd, name, 0); /* best effort: an empty journal is harmless */
    if (dfd >= 0)
        close(dfd);
    set_err(err, errlen, "journal %s/%s: %s: %s%s", dir, name, step, strerror(e),
            e == EEXIST ? " (a journal for this segment exists: replay and remove it first)"
                        : "");
    errno = e;
    return -1;
}

/* The journal is in ERROR: refuse, repeating the error that put it there. */
static int refuse(struct journal *j)
{
    errno = EIO;
    return -1;
}

static int enter_error(struct journal *j)
{
    j->state = J_ERROR;
    assert_journal_state(j);
    return -1;
}

/* A record's write failed after writing perhaps part of it: cut that part
 * off (rule 2).  Only a full disk leaves the journal usable. */
static int append_failed(struct journal *j)
{
    int e = errno;
    if (x_ftruncate(j->fd, j->end) < 0) {
        jerr(j, "write at offset %" PRIu64 ": %s; cutting off the partial record: %s;"
             " no further writes accepted", j->end, strerror(e), strerror(errno));
        errno = e;
        return enter_error(j);
    }
    if (e == ENOSPC || e == EDQUOT || e == EFBIG) {
        jerr(j, "write at offset %" PRIu64 ": %s (nothing was appended)", j->end, strerror(e));
        errno = e;
        assert_journal_state(j);
        return -1;
    }
    jerr(j, "write at offset %" PRIu64 ": %s; no further writes accepted", j->end, strerror(e));
    errno = e;
    return enter_error(j);
}

static int append(struct journal *j, enum journal_kind kind, uint64_t lba, uint32_t nblocks,
                  const void *data)
{
    uint8_t h[JOURNAL_RECORD_HEADER_SIZE];
    uint64_t dlen = kind == JOURNAL_DATA ? (uint64_t)nblocks * j->block_size : 0;

    assert_journal_state(j);
    if (j->state == J_ERROR)
        return refuse(j);
    if (nblocks == 0 || lba > UINT64_MAX - nblocks || dlen > JOURNAL_MAX_RECORD_DATA ||
        (dlen && !data)) {
        errno = EINVAL;
        jerr(j, "refused a record of %" PRIu32 " blocks at lba %" PRIu64
             ": a record holds at least 1 block, at most %u bytes of data,"
             " and ends below lba 2^64", nblocks, lba, JOURNAL_MAX_RECORD_DATA);
        return -1;
    }
    const void *stored;
    size_t slen;
    encode_record(j, h, kind, lba, nblocks, data, (size_t)dlen, &stored, &slen);
    if (write_at(j->fd, h, sizeof h, stored, slen, j->end) < 0)
        return append_failed(j);
    j->end += sizeof h + slen;
    j->nrecords++;
    assert_journal_state(j);
    return 0;
}

int journal_append_data(struct journal *j, uint64_t lba, uint32_t nblocks, const void *data)
{
    return append(j, JOURNAL_DATA, lba, nblocks, data);
}

int journal_append_zero(struct journal *j, uint64_t lba, uint32_t nblocks)
{
    return append(j, JOURNAL_ZERO, lba, nblocks, NULL);
}

int journal_sync(struct journal *j)
{
    assert_journal_state(j);
    if (j->state == J_ERROR)
        return refuse(j);
    if (j->synced_end == j->end)
        return 0; /* nothing appended since the last sync */
    if (x_fsync(j->fd, 1) < 0) {
        jerr(j, "fdatasync: %s; the %" PRIu64 " records appended since the last successful"
             " sync may be lost; no further writes accepted", strerror(errno),
             j->nrecords - j->synced_records);
        return enter_error(j);
    }
    j->synced_end = j->end;
    j->synced_records = j->nrecords;
    assert_journal_state(j);
    return 0;
}

int journal_close(struct journal *j)
{
    if (!j)
        return 0;
    assert_journal_state(j);
    int rc = close(j->fd);
    int e = errno;
    XXH3_freeState(j->xs);
    free(j->path);
    free(j->sbuf); /* ciphertext only */
    sodium_memzero(j->key, sizeof j->key);
    free(j);
    errno = e;
    return rc < 0 ? -1 : 0;
}

uint64_t journal_seq(const struct journal *j)
{
    return j->seq;
}

uint64_t journal_size(const struct journal *j)
{
    return j->end;
}

uint64_t journal_nrecords(const struct journal *j)
{
    return j->nrecords;
}

int journal_failed(const struct journal *j)
{
    return j->state == J_ERROR;
}

const char *journal_errmsg(const struct journal *j)
{
    return j->errmsg;
}

int journal_linked(const struct journal *j, char *err, size_t errlen)
{
    struct stat fs, ps;
    if (fstat(j->fd, &fs) < 0) {
        snprintf(err, errlen, "journal %s: fstat: %s", j->path, strerror(errno));
        return 0;
    }
    if (fs.st_nlink == 0) {
        snprintf(err, errlen, "journal %s was deleted while open", j->path);
        return 0;
    }
    if (stat(j->path, &ps) < 0) {
        snprintf(err, errlen, "journal %s is gone from its directory (%s)", j->path,
                 strerror(errno));
        return 0;
    }
    if (ps.st_dev != fs.st_dev || ps.st_ino != fs.st_ino) {
        snprintf(err, errlen, "journal %s was replaced by another file while open", j->path);
        return 0;
    }
    return 1;
}

/* --- the directory ------------------------------------------------------ */

int journal_remove(const char *dir, uint64_t seq, char *err, size_t errlen)
{
    char name[NAME_LEN + 1];
    const char *step = "open directory";
    int e;

    journal_name(seq, name);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        goto fail;
    step = "unlink";
    if (x_unlinkat(dfd, name) < 0 && errno != ENOENT)
        goto fail;
    step = "fsync directory";
    if (x_fsync(dfd, 0) < 0)
        goto fail;
    close(dfd);
    return 0;
fail:
    e = errno;
    if (dfd >= 0)
        close(dfd);
    set_err(err, errlen, "journal %s/%s: remove: %s: %s", dir, name, step, strerror(e));
    errno = e;
    return -1;
}

/* The seq of a journal's file name, or -1 if name is not one. */
static int parse_name(const char *name, uint64_t *seq)
{
    uint64_t v = 0;
    if (strlen(name) != NAME_LEN || strcmp(name + 16, ".jrn") != 0)
        return -1;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        if (c >= '0' && c <= '9')
            v = (v << 4) | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (v << 4) | (uint64_t)(c - 'a' + 10);
        else
            return -1;
    }
    *seq = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int journal_list(const char *dir, uint64_t **seqs, size_t *n, char *err, size_t errlen)
{
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    int e;

    *seqs = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT)
        return 0;
    if (!d)
        goto fail;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        uint64_t seq;
        if (parse_name(de->d_name, &seq) < 0)
            continue;
        if (len == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[len++] = seq;
    }
    if (errno) {
        e = errno;
        closedir(d);
        errno = e;
        goto fail;
    }
    closedir(d);
    if (len)
        qsort(v, len, sizeof *v, cmp_u64);
    *seqs = v;
    *n = len;
    return 0;
fail:
    e = errno;
    free(v);
    set_err(err, errlen, "journal directory %s: %s", dir, strerror(e));
    errno = e;
    return -1;
}

/* --- replay --------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void stop_at(struct journal_info *info,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->stop, sizeof info->stop, fmt, ap);
    va_end(ap);
}

/* Checks the file header; fills info's header fields and *salt.  Returns
 * NULL, or why the header is refused. */
static const char *parse_header(const uint8_t *h, uint64_t seq, struct journal_info *info,
                                uint64_t *salt, char *why, size_t whylen)
{
    if (memcmp(h, JRN_MAGIC, 8) != 0)
        return "not a buoy journal (bad magic)";
    uint32_t version = le_get32(h + 8);
    if (version != JRN_VERSION && version != JRN_VERSION_SEALED) {
        snprintf(why, whylen, "journal format version %" PRIu32
                 " is not supported (this buoy reads versions %d and %d)", version, JRN_VERSION,
                 JRN_VERSION_SEALED);
        return why;
    }
    info->sealed = version == JRN_VERSION_SEALED;
    *salt = XXH3_64bits(h, JRN_CHECKED);
    if (le_get32(h + 60) != (uint32_t)*salt)
        return "header check mismatch (a damaged header)";
    info->block_size = le_get32(h + 12);
    memcpy(info->uuid, h + 16, 16);
    memcpy(info->writer_id, h + 32, 16);
    info->seq = le_get64(h + 48);
    info->epoch = le_get32(h + 56);
    if (!valid_block_size(info->block_size)) {
        snprintf(why, whylen, "bad block size %" PRIu32, info->block_size);
        return why;
    }
    if (info->seq != seq) {
        snprintf(why, whylen, "the header is for seq %" PRIu64 ", not the file name's %" PRIu64,
                 info->seq, seq);
        return why;
    }
    return NULL;
}

struct record {
    uint32_t kind, nblocks;
    uint64_t lba, check, dlen;
};

/* Decodes a record header; returns NULL or why it is invalid. */
static const char *decode_record(const uint8_t *h, uint32_t block_size, struct record *r)
{
    if (le_get32(h) != REC_MAGIC)
        return "bad record magic";
    r->kind = le_get32(h + 4);
    r->lba = le_get64(h + 8);
    r->nblocks = le_get32(h + 16);
    r->check = le_get64(h + 24);
    if (r->kind != JOURNAL_DATA && r->kind != JOURNAL_ZERO)
        return "unknown record kind";
    if (r->nblocks == 0)
        return "a record of 0 blocks";
    if (le_get32(h + 20) != 0)
        return "reserved field set";
    if (r->lba > UINT64_MAX - r->nblocks)
        return "lba + nblocks wraps";
    r->dlen = r->kind == JOURNAL_DATA ? (uint64_t)r->nblocks * block_size : 0;
    if (r->dlen > JOURNAL_MAX_RECORD_DATA)
        return "a record larger than any segment";
    return NULL;
}

/* Passes each valid record after the header to cb (rules 5, 6 and 10); a
 * sealed journal's records are opened with key. */
static enum journal_status replay_records(int fd, uint64_t salt, const uint8_t *key,
                                          struct journal_info *info, journal_replay_fn cb,
                                          void *arg, const char *path, char *err, size_t errlen)
{
    uint8_t h[JOURNAL_RECORD_HEADER_SIZE];
    uint8_t *data = NULL, *plain = NULL;
    size_t cap = 0, pcap = 0;
    const uint64_t extra = info->sealed ? SEAL_EXTRA : 0;
    uint64_t off = JOURNAL_HEADER_SIZE, size = info->file_size;
    enum journal_status st = JOURNAL_OK;
    XXH3_state_t *xs = new_xxh3_state();

    while (off < size) {
        struct record r;
        const char *why;
        if (size - off < sizeof h) {
            stop_at(info, "a partial record header (%" PRIu64 " bytes) at offset %" PRIu64,
                    size - off, off);
            break;
        }
        if (read_at(fd, h, sizeof h, off) < 0)
            goto io_error;
        if ((why = decode_record(h, info->block_size, &r)) != NULL) {
            stop_at(info, "%s at offset %" PRIu64, why, off);
            break;
        }
        uint64_t slen = r.dlen + extra; /* what is stored */
        if (slen > size - off - sizeof h) {
            stop_at(info, "the record at offset %" PRIu64 " (%" PRIu64
                    " bytes of data) runs past the end of the file", off, slen);
            break;
        }
        if (slen > cap) {
            free(data);
            cap = (size_t)slen;
            data = xmalloc(cap);
        }
        if (slen && read_at(fd, data, (size_t)slen, off + sizeof h) < 0)
            goto io_error;
        if (record_check(xs, salt, h, data, (size_t)slen) != r.check) {
            stop_at(info, "check mismatch in the record at offset %" PRIu64, off);
            break;
        }
        const uint8_t *out = data;
        if (info->sealed) {
            uint8_t ad[REC_CHECKED + 8];
            if (r.dlen > pcap) {
                free(plain);
                pcap = (size_t)r.dlen;
                plain = xmalloc(pcap);
            }
            seal_ad(h, salt, ad);
            if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                    plain, NULL, NULL, data + SEAL_NONCE, (size_t)slen - SEAL_NONCE, ad,
                    sizeof ad, data, key) != 0) {
                set_err(err, errlen,
                        "journal %s: the record at offset %" PRIu64
                        " fails authentication (altered, or sealed under another key); "
                        "not replayed past it",
                        path, off);
                st = JOURNAL_EAUTH;
                break;
            }
            out = plain;
        }
        if (cb && cb(arg, (enum journal_kind)r.kind, r.lba, r.nblocks, r.dlen ? out : NULL)) {
            set_err(err, errlen, "journal %s: replay stopped by its consumer at record %" PRIu64,
                    path, info->nrecords);
            st = JOURNAL_ESTOPPED;
            break;
        }
        off += sizeof h + slen;
        info->nrecords++;
        info->valid_bytes = off;
    }
    free(data);
    if (plain)
        sodium_memzero(plain, pcap);
    free(plain);
    XXH3_freeState(xs);
    return st;
io_error:
    set_err(err, errlen, "journal %s: read at offset %" PRIu64 ": %s", path, off,
            strerror(errno));
    free(data);
    if (plain)
        sodium_memzero(plain, pcap);
    free(plain);
    XXH3_freeState(xs);
    return JOURNAL_EIO;
}

enum journal_status journal_replay(const char *dir, uint64_t seq, const uint8_t expected_uuid[16],
                                   const uint8_t *key, journal_replay_fn cb, void *arg,
                                   struct journal_info *info, char *err, size_t errlen)
{
    struct journal_info local;
    uint8_t h[JOURNAL_HEADER_SIZE];
    char name[NAME_LEN + 1], why[160];
    const char *bad;
    struct stat sb;
    uint64_t salt = 0;
    enum journal_status st;

    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    journal_name(seq, name);
    char *path = xasprintf("%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        set_err(err, errlen, "journal %s: open: %s", path, strerror(errno));
        st = JOURNAL_EIO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "journal %s: not a regular file", path);
        st = JOURNAL_EBADHDR;
        goto out;
    }
    info->file_size = (uint64_t)sb.st_size;
    if (info->file_size < JOURNAL_HEADER_SIZE) {
        set_err(err, errlen, "journal %s: %" PRIu64 " bytes, shorter than its header", path,
                info->file_size);
        st = JOURNAL_EBADHDR;
        goto out;
    }
    if (read_at(fd, h, sizeof h, 0) < 0) {
        set_err(err, errlen, "journal %s: read header: %s", path, strerror(errno));
        st = JOURNAL_EIO;
        goto out;
    }
    if ((bad = parse_header(h, seq, info, &salt, why, sizeof why)) != NULL) {
        set_err(err, errlen, "journal %s: %s; not replayed", path, bad);
        st = JOURNAL_EBADHDR;
        goto out;
    }
    if (expected_uuid && memcmp(info->uuid, expected_uuid, 16) != 0) {
        char got[37], want[37];
        uuid_str(info->uuid, got);
        uuid_str(expected_uuid, want);
        set_err(err, errlen, "journal %s belongs to volume %s, not %s; not replayed", path, got,
                want);
        st = JOURNAL_EFOREIGN;
        goto out;
    }
    if (info->sealed && !key) {
        set_err(err, errlen, "journal %s is sealed (an encrypted volume's): it needs the "
                             "volume's passphrase; not replayed", path);
        st = JOURNAL_EAUTH;
        goto out;
    }
    if (info->sealed && sodium_init() < 0) {
        set_err(err, errlen, "journal %s: libsodium failed to initialise", path);
        st = JOURNAL_EIO;
        goto out;
    }
    info->valid_bytes = JOURNAL_HEADER_SIZE;
    st = replay_records(fd, salt, key, info, cb, arg, path, err, errlen);
    info->torn = st == JOURNAL_OK && info->valid_bytes < info->file_size;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return st;
}
