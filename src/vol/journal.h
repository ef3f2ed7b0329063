/* journal.h - the local journal: the write-ahead log for data not yet in
 * the store.
 *
 * One file per segment being built, in the cache directory's journal/,
 * named after the segment's seq: journal/0000000000000007.jrn.  The writer
 * appends a record per write (data) or trim/write-zeroes (zero) and calls
 * journal_sync() when a flush must be durable; once the segment is durable
 * in the store, journal_remove() deletes the file.  After a crash,
 * journal_list() and journal_replay() give back, for each file left, a
 * prefix of the records appended to it that contains every record appended
 * before its last successful journal_sync().  The byte layout and the rules
 * are at the top of journal.c.
 *
 * Errors: the write side returns 0 or -1 with errno set and a one-line
 * message in journal_errmsg(); the other functions write their message into
 * err[errlen].  A journal whose fdatasync has failed (or whose file could not
 * be restored after a failed write) is in a sticky error state: every later
 * append or sync fails, because the kernel may have dropped the dirty pages
 * and a later fdatasync could report success for data that is gone.
 *
 * Threading: a struct journal belongs to one thread at a time.  The
 * functions that take a directory may run in any thread. */
#ifndef BUOY_JOURNAL_H
#define BUOY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_HEADER_SIZE 64
#define JOURNAL_RECORD_HEADER_SIZE 32
/* The largest data payload of one record (the largest segment size). */
#define JOURNAL_MAX_RECORD_DATA (256u << 20)
/* A sealed journal's key (an encrypted volume's local key, keys.h). */
#define JOURNAL_KEY_LEN 32

enum journal_kind {
    JOURNAL_DATA = 1, /* nblocks blocks of data follow the record header */
    JOURNAL_ZERO = 2, /* the blocks read as zeros from now on; no data */
};

struct journal;

/* Creates dir/<seq>.jrn (16 lower-case hex digits) holding only its header,
 * durably: the header is written to a temp file, fsynced, renamed into place
 * without replacing an existing journal, and the directory fsynced, all
 * before returning 0.  A journal for seq that already exists is refused
 * (errno EEXIST): replay it and remove it first.  block_size is a power of
 * two from 512 to 65536.  dir must exist, its own entry made durable by
 * whoever created it.  On error returns -1, sets errno and *out to NULL, and
 * leaves no journal file behind (a crash just then may still leave an empty
 * one, which replays as no records).  With key (JOURNAL_KEY_LEN bytes), the
 * journal is sealed: every record's data is stored encrypted and
 * authenticated (journal.c), so the local disk holds no plaintext of an
 * encrypted volume; NULL for a plain volume. */
int journal_create(const char *dir, const uint8_t uuid[16], const uint8_t writer_id[16],
                   uint64_t seq, uint32_t epoch, uint32_t block_size, const uint8_t *key,
                   struct journal **out, char *err, size_t errlen);

/* Append one record with a single pwritev() and no sync.  data holds
 * nblocks * block_size bytes.  nblocks is at least 1; a data record holds at
 * most JOURNAL_MAX_RECORD_DATA bytes; lba + nblocks must not wrap.  A failed
 * append leaves the file as it was (the partial record is cut off again) or,
 * if that is impossible, puts the journal in the error state. */
int journal_append_data(struct journal *j, uint64_t lba, uint32_t nblocks, const void *data);
int journal_append_zero(struct journal *j, uint64_t lba, uint32_t nblocks);

/* fdatasync.  After it returns 0, every record appended before the call
 * survives a crash.  A failure is sticky (see above). */
int journal_sync(struct journal *j);

/* Closes the file without syncing it; frees j (NULL is fine).  Returns -1
 * if close() reported an error (the descriptor is released either way). */
int journal_close(struct journal *j);

uint64_t journal_seq(const struct journal *j);
uint64_t journal_size(const struct journal *j);     /* bytes: header + records */
uint64_t journal_nrecords(const struct journal *j); /* records appended */
int journal_failed(const struct journal *j);        /* 1 in the sticky error state */
const char *journal_errmsg(const struct journal *j); /* the last error, "" if none */
/* 1 while the open file is still the one at its path: not deleted (a link
 * count of 0), not moved away, not replaced by another file.  0 with the
 * reason in err otherwise: records appended from then on, or synced, would
 * never be found by a replay. */
int journal_linked(const struct journal *j, char *err, size_t errlen);

/* Unlinks dir/<seq>.jrn and fsyncs dir, for once segment seq is durable in
 * the store.  A journal that is already gone is not an error (the directory
 * is still fsynced, for an unlink a crash may not have made durable). */
int journal_remove(const char *dir, uint64_t seq, char *err, size_t errlen);

/* The seqs of the journal files in dir, sorted ascending, in a new array
 * (*seqs, free() it; NULL when *n is 0).  Only names of exactly 16
 * lower-case hex digits and ".jrn" count; temp files left by a crash in
 * journal_create() are not journals.  A missing dir holds no journals. */
int journal_list(const char *dir, uint64_t **seqs, size_t *n, char *err, size_t errlen);

enum journal_status {
    JOURNAL_OK = 0,
    JOURNAL_EIO,       /* open or read failed: nothing can be said about the records */
    JOURNAL_EBADHDR,   /* not a journal of this format, a damaged header, or not seq's */
    JOURNAL_EFOREIGN,  /* a sound journal of another volume: not replayed */
    JOURNAL_ESTOPPED,  /* the callback returned nonzero */
    JOURNAL_EAUTH,     /* sealed: no key given, or a sound record fails to open (altered) */
};

struct journal_info {
    /* from the file header (valid from EFOREIGN on, and with OK/ESTOPPED) */
    uint8_t uuid[16];
    uint8_t writer_id[16];
    uint64_t seq;
    uint32_t epoch;
    uint32_t block_size;
    int sealed;           /* records sealed (version 2) */
    /* what replay found */
    uint64_t nrecords;    /* valid records, all passed to the callback */
    uint64_t valid_bytes; /* header + valid records: where the next append would go */
    uint64_t file_size;
    int torn;             /* bytes follow the last valid record */
    char stop[160];       /* why replay stopped before the end of the file, "" if not */
};

/* Called for each valid record in order; data is NULL for JOURNAL_ZERO and
 * otherwise holds nblocks * block_size bytes, valid only during the call.
 * A nonzero return stops the replay (JOURNAL_ESTOPPED). */
typedef int (*journal_replay_fn)(void *arg, enum journal_kind kind, uint64_t lba,
                                 uint32_t nblocks, const void *data);

/* Reads dir/<seq>.jrn: checks the header (and, if expected_uuid is not NULL,
 * that it belongs to that volume), then passes each valid record to cb and
 * stops at the first invalid one.  A sealed journal needs key (the one it
 * was created with) and its records are passed opened; a plain one ignores
 * key.  Never writes to the file: a torn tail is
 * left for journal_remove() once the records are safe elsewhere.  info may
 * be NULL.  Memory use is one record's data: never more than the file holds
 * after the record header, nor more than JOURNAL_MAX_RECORD_DATA. */
enum journal_status journal_replay(const char *dir, uint64_t seq, const uint8_t expected_uuid[16],
                                   const uint8_t *key, journal_replay_fn cb, void *arg,
                                   struct journal_info *info, char *err, size_t errlen);

/* Test hook, a countdown fault point in the style of SQLite's: the
 * countdown-th system call from now on that creates, writes, syncs,
 * renames, truncates or unlinks a journal file or directory fails with
 * errno err, and with persist every later one as well (countdown 0 turns
 * injection off).  An injected write failure first writes half its bytes,
 * as a full disk would.  Returns how many faults fired since the previous
 * call.  Process-wide and not thread-safe: for tests only. */
int journal_fault_inject(int countdown, int persist, int err);

#endif
