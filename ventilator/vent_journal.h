/* vent_journal: the ventilator's durable log (--journal FILE).
 *
 * What a producer was told is taken must survive a crash of the
 * ventilator: every job opened, batch of tasks taken and close is appended
 * here and synced (zp_vjournal_sync) before its Ack goes out; one sync
 * covers everything appended since the last (group commit). Commits and
 * finished jobs are appended without a sync of their own: losing them
 * only costs running a task again (the sink drops the duplicate) or
 * remembering a finished job a little less long.
 *
 * The file is a header and then records, each
 *   u32 body length | u32 CRC32C of the body | body
 * (little-endian), the body starting with its type byte (the types and
 * their bodies: vent_journal_int.h). A torn tail is cut off on open: a
 * last record cut short, or failing its checksum with nothing but zero
 * bytes after it (what a power loss can leave of unsynced appends), or
 * whose length runs past the end of the file with no valid record anywhere
 * after it (the length is outside the checksum). Anything else that fails
 * (a checksum with data after it, a well-checksummed record of an unknown
 * type or with a malformed body) stops the open with an error naming the
 * file and the offset: nothing acknowledged is ever silently dropped or
 * invented. A failed open leaves the file as it was.
 *
 * The log is compacted (zp_vjournal_compact) by writing what is live into
 * a new file, syncing it and renaming it over the old one: the caller's
 * dump function writes the live jobs, their held tasks and the ids to
 * remember, with the ordinary append functions. */
#ifndef ZP_VENT_JOURNAL_H
#define ZP_VENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A job as opened. Strings are never NULL ("" when absent). */
typedef struct {
    const char *id, *token, *plugin;
    const char *config; /* the plugin's settings, "KEY=VALUE" lines */
    uint64_t deadline_ms;
    uint32_t max_attempts, priority;
    /* Its dispatch key (zp_lease.h); all zero: none (a journal written
     * before keys: the replayed job gets a new one). */
    uint8_t key[16];
} zp_vjournal_job_t;

/* One producer batch taken: seq (0 = unnumbered), first id, task count. */
typedef struct {
    uint64_t seq, first;
    uint32_t n;
} zp_vjournal_seq_t;

/* Replay, in the order written. Pointers are valid for the call only.
 * A callback returning -1 stops the replay, and the open fails with the
 * callback's reason (set *why, static storage). */
typedef struct {
    /* A job opened. */
    int (*on_open)(void *ctx, const zp_vjournal_job_t *job, const char **why);
    /* Tasks first .. first + n - 1 of job taken, as one producer batch
     * (seq >= 1) or unnumbered (seq 0, also compaction's re-writes). */
    int (*on_tasks)(void *ctx, const char *job, uint64_t seq, uint64_t first,
                    size_t n, const uint8_t *const *data, const uint32_t *lens,
                    const char **why);
    /* A job's batch numbers so far (written by compaction, before the
     * job's tasks): seqs[i] is batch number i + 1. */
    int (*on_seqs)(void *ctx, const char *job, const zp_vjournal_seq_t *seqs,
                   size_t n, const char **why);
    /* The job's producer closed it with total tasks. */
    int (*on_close)(void *ctx, const char *job, uint64_t total,
                    const char **why);
    /* These tasks of job have their record at the sink. */
    int (*on_committed)(void *ctx, const char *job, const uint64_t *ids,
                        size_t n, const char **why);
    /* The job finished (total tasks) at wall-clock when_us; its id and
     * token are remembered so the id is not used again. */
    int (*on_finished)(void *ctx, const char *job, const char *token,
                       uint64_t total, uint64_t when_us, const char **why);
} zp_vjournal_visitor_t;

/* What an open found. */
typedef struct {
    uint64_t records; /* replayed */
    uint64_t bytes;   /* the file's length after the open */
    uint64_t torn;    /* bytes of a torn tail cut off */
    bool created;     /* the file did not exist */
} zp_vjournal_info_t;

typedef struct zp_vjournal zp_vjournal_t;

/* Opens path (creating it when missing), replays it through visitor, cuts
 * a torn tail, and positions for appending. info may be NULL. Caller owns
 * the result; NULL with err set (naming the file, and the offset for a
 * damaged record) on failure, after which the visitor may have seen some
 * records: discard what they built. A missing or empty file, or one
 * holding only part of the header (a crash while creating it), is a new
 * journal; a file with another header is refused ("not a zpipe
 * ventilator journal"). The file is locked (flock) while open: a second
 * open, from this process or another, fails ("in use by another
 * process"). Replay holds about 1 MiB, or the longest record, in
 * memory, whatever the file's size. */
zp_vjournal_t *zp_vjournal_open(const char *path,
                                const zp_vjournal_visitor_t *visitor, void *ctx,
                                zp_vjournal_info_t *info, char *err,
                                size_t errlen);
/* Writes what is buffered (no sync), closes; nulls the caller's pointer. */
void zp_vjournal_destroy(zp_vjournal_t **self_p);

/* Appends (buffered; past 4 MiB buffered, an append writes them out, with
 * no sync). Each returns 0, or -1 with nothing appended: ENOMEM, EINVAL
 * (job not a valid job id, zp_job_id_valid: replay refuses one), EFBIG
 * (the record would pass 1 GiB). n may be 0 (data, lens, seqs, ids may
 * then be NULL); a NULL string is written as "". */
int zp_vjournal_job(zp_vjournal_t *self, const zp_vjournal_job_t *job);
int zp_vjournal_tasks(zp_vjournal_t *self, const char *job, uint64_t seq,
                      uint64_t first, size_t n, const uint8_t *const *data,
                      const uint32_t *lens);
int zp_vjournal_seqs(zp_vjournal_t *self, const char *job,
                     const zp_vjournal_seq_t *seqs, size_t n);
int zp_vjournal_close(zp_vjournal_t *self, const char *job, uint64_t total);
int zp_vjournal_committed(zp_vjournal_t *self, const char *job,
                          const uint64_t *ids, size_t n);
int zp_vjournal_finished(zp_vjournal_t *self, const char *job,
                         const char *token, uint64_t total, uint64_t when_us);

/* Whether something appended since the last sync needs one before its
 * Ack (a job, tasks, seqs or a close; commits and finished jobs do not).
 * Also true after an open that replayed records: a killed process may
 * have left them written but not synced, and a producer's resend is
 * answered from them. */
bool zp_vjournal_needs_sync(const zp_vjournal_t *self);
/* Writes what is buffered (safe from a crash of this process, not from a
 * power loss). Returns 0, or -1 with errno. */
int zp_vjournal_flush(zp_vjournal_t *self);
/* Writes what is buffered and fdatasyncs. Returns 0, or -1 with errno
 * (what was appended is not durable; the caller must not acknowledge
 * it). A failed write (ENOSPC, say) keeps the rest buffered for the next
 * try; a failed fdatasync is final: the kernel may have dropped the pages
 * it could not write, so every later sync fails with the same errno until
 * a successful compaction has rewritten the live state into a new file
 * (or the process restarts and replays what is really on disk). */
int zp_vjournal_sync(zp_vjournal_t *self);
/* The file's length, buffered bytes included. */
uint64_t zp_vjournal_size(const zp_vjournal_t *self);

/* Writes the live state into the new journal j (with the append
 * functions above); returns 0, or -1 to abandon the compaction. */
typedef int(zp_vjournal_dump_fn)(void *ctx, zp_vjournal_t *j);
/* Whether the file is worth compacting: over min_bytes and over twice
 * live_bytes (the caller's estimate of what a dump would write). */
bool zp_vjournal_compact_due(const zp_vjournal_t *self, uint64_t live_bytes,
                             uint64_t min_bytes);
/* Compacts: what is buffered is first written to the old file; then dump
 * writes the live state into PATH.compact, which is synced and renamed
 * over PATH (and the folder synced); appending goes on in the new file.
 * Returns 0, or -1 with err set (the old file is kept, intact, with what
 * was buffered written to it, and appending goes on there).
 *
 * On success everything is durable and needs_sync is false: the dump
 * replaces every record appended before, so it must hold all of it (keep
 * the state the dump reads updated as records are appended, not after
 * their sync). One -1 comes after the rename: when syncing the folder
 * fails, the new file is in use but the journal is failed as after a
 * failed sync (err says so). */
int zp_vjournal_compact(zp_vjournal_t *self, zp_vjournal_dump_fn *dump,
                        void *ctx, char *err, size_t errlen);

#endif
