/* zp_journal: the sink's append-only commit log.
 *
 * Events on text lines, so a torn write can only damage the last line:
 *   zpipe-journal 4                      header (versions 1, before tokens
 *                                        and compaction, and 2, before
 *                                        checksums, are read without
 *                                        checks; 3, before M lines, is
 *                                        read checked; a version before 4
 *                                        is appended to in its own format
 *                                        until a compaction rewrites it;
 *                                        a newer one is refused)
 * Every line after the header ends with a space and its checksum, 8 hex
 * digits: the CRC-32C of the line before that space, continued from the
 * previous line's checksum (the first line's from the header's), so a
 * byte changed, added or removed in a line, and a line removed, repeated
 * or moved, all fail it. The lines (shown without it):
 *   O <job> <max_attempts> [<token>]     job opened (again: its token set);
 *                                        the token, the job's identity
 *                                        beside its id (JobOpen.token), is
 *                                        left out when empty (journals
 *                                        before it have none)
 *   K <job> <key>                        the job's dispatch key (32 hex
 *                                        digits; JobOpen.dispatch_key):
 *                                        its last K line is the one
 *   C <job> <total>                      job closed with its task count
 *   R <job> <task> <ok|failed> <offset>  record committed; offset is the
 *                                        output file's size after it (a
 *                                        reduced job: its results are
 *                                        folded, not written, so the
 *                                        offset does not move; its one
 *                                        final record is the R line of
 *                                        task id <total>, after C)
 *   M <job> <task> <ok|failed> <offset> [<dt>:<do>[f]]...
 *                                        version 4's records (no R lines):
 *                                        a job's records in the order
 *                                        committed, the first as an R line
 *                                        has it, each after it as its task
 *                                        id less the one before (a signed
 *                                        decimal), ':', its offset less
 *                                        the one before (never negative:
 *                                        a record whose offset went back
 *                                        starts a new line), and 'f' when
 *                                        it failed. A line holds the
 *                                        records between two barriers, up
 *                                        to ZP_JOURNAL_LINE_MAX bytes; it
 *                                        replays whole or not at all.
 * A compacted journal (zp_journal_compact) starts with a snapshot:
 *   W <offset>                           the output's committed length
 *   F <id hash> <token hash> <total> <succeeded> <spooled> <flags>
 *                                        a forgotten job (the hashes in
 *                                        16 hex digits), oldest first
 *   D <job> <max_attempts> <total> <succeeded> <failed> <duplicates>
 *     <retries> <first_us> <last_us> <flags> [<token>]   a finished job,
 *                                        in the order they finished
 * (flags: ZP_JOURNAL_REDUCE_FAILED, the job's reduction failed)
 *   P <job> <length> <crc>               the job's spool file (--spool) has
 *                                        length bytes whose CRC-32C is crc
 *                                        (8 hex digits): written at each
 *                                        barrier for the spools that grew,
 *                                        and in a snapshot (version 3)
 *   O, C as above, then for a live job:
 *   S <job> <succeeded> <failed> <duplicates> <retries>   its counters
 *   H <job> <first> <count>              tasks first..first+count-1 have
 *                                        their records (not counted again)
 * and the appended events follow.
 * Lines are appended in order, so a crash leaves at most one incomplete
 * line, the last, without its newline: replaying cuts it (a warning), as
 * it was never acknowledged. A complete line that fails its checksum or
 * is malformed, an unterminated tail that holds a whole checksummed line
 * with bytes after it (a newline lost), or an older version's header
 * over checksummed lines, was damaged in place: replaying stops there
 * with an error naming the file and byte offset, and nothing is cut
 * (never a silent gap, duplicate or invented record). A version 1 or 2
 * journal is appended to in its own format until a compaction rewrites
 * it as version 3. */
#ifndef ZP_JOURNAL_H
#define ZP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A D or F line's flags. */
#define ZP_JOURNAL_REDUCE_FAILED 1u

/* A job's counters, as a D or S line has them (S: the counts only). */
typedef struct {
    uint32_t max_attempts;
    uint64_t total, succeeded, failed, duplicates, retries;
    uint64_t first_us, last_us;
    uint32_t flags; /* ZP_JOURNAL_REDUCE_FAILED */
} zp_journal_summary_t;

/* A forgotten job, as an F line has it. */
typedef struct {
    uint64_t id_hash, token_hash; /* token_hash 0: none */
    uint64_t total, succeeded;    /* succeeded <= total, unless a stray
                                     result was counted (replayed as is) */
    uint64_t spooled;             /* its spool file's length */
    uint32_t flags;               /* ZP_JOURNAL_REDUCE_FAILED */
} zp_journal_forgotten_t;

/* Any callback may be NULL (the event is skipped). */
typedef struct {
    /* token: "" when the line has none */
    void (*on_open)(void *ctx, const char *job, uint32_t max_attempts,
                    const char *token);
    void (*on_close)(void *ctx, const char *job, uint64_t total);
    void (*on_record)(void *ctx, const char *job, uint64_t task, bool ok,
                      uint64_t offset);
    void (*on_offset)(void *ctx, uint64_t offset);
    void (*on_forgotten)(void *ctx, const zp_journal_forgotten_t *job);
    /* token: "" when the line has none */
    void (*on_done)(void *ctx, const char *job, const char *token,
                    const zp_journal_summary_t *summary);
    void (*on_counts)(void *ctx, const char *job,
                      const zp_journal_summary_t *counts);
    void (*on_have)(void *ctx, const char *job, uint64_t first, uint64_t count);
    /* key: 32 hex digits */
    void (*on_key)(void *ctx, const char *job, const char *key);
    void (*on_spool)(void *ctx, const char *job, uint64_t length, uint32_t crc);
    /* When set: the byte offset of each event's line, stored before its
     * callback (for messages that name it). */
    size_t *line_at;
} zp_journal_visitor_t;

/* What zp_journal_replay returns for a header of a newer version, and
 * for a damaged line (complete, failing its checksum or malformed). */
#define ZP_JOURNAL_NEWER   (-2)
#define ZP_JOURNAL_DAMAGED (-3)

/* True if s is a valid job id: [A-Za-z0-9_.:-]{1,128}. */
bool zp_job_id_valid(const char *s);

/* Replays data[0..len). Returns the number of events; *valid_len is the
 * length of the whole, valid lines (the rest is a torn last line).
 * Returns -1 if the header is missing or wrong (not a journal),
 * ZP_JOURNAL_NEWER for a version this build does not know, and
 * ZP_JOURNAL_DAMAGED with *valid_len the damaged line's offset (the
 * events before it were passed on). */
long zp_journal_replay(const char *data, size_t len,
                       const zp_journal_visitor_t *visitor, void *ctx,
                       size_t *valid_len);

typedef struct zp_journal zp_journal_t;

/* Opens path, replaying what it holds through visitor, truncating a torn
 * last line, and positions for appending; creates it when missing. A
 * damaged line or header fails the open with errno EBADMSG (err names
 * the file and offset; the file is left as it was). Caller owns the result;
 * NULL with err set on failure. */
zp_journal_t *zp_journal_open(const char *path,
                              const zp_journal_visitor_t *visitor, void *ctx,
                              char *err, size_t errlen);
/* Flushes and closes; nulls the caller's pointer. */
void zp_journal_destroy(zp_journal_t **self_p);
/* The same without the fdatasync, for an owner that never promised its
 * journal would survive a power loss (the sink's --journal-sync no, what
 * zpipe run gives its private journal): syncing 45 MB as it exited was
 * 30 ms of a 0.30 s run of 1,000,000 tasks. The lines are written. */
void zp_journal_destroy_unsynced(zp_journal_t **self_p);
/* Buffer events; nothing is durable until zp_journal_sync. token (NULL
 * or "": none) must be a valid job id (zp_job_id_valid) when set. */
int zp_journal_open_job(zp_journal_t *self, const char *job,
                        uint32_t max_attempts, const char *token);
int zp_journal_close_job(zp_journal_t *self, const char *job, uint64_t total);
/* key: 32 hex digits (zp_lease_key_hex); -1 with EINVAL otherwise. */
int zp_journal_key(zp_journal_t *self, const char *job, const char *key);
int zp_journal_record(zp_journal_t *self, const char *job, uint64_t task,
                      bool ok, uint64_t offset);
/* Writes buffered events and fdatasyncs; returns 0 or -1 (errno). */
int zp_journal_sync(zp_journal_t *self);
/* Writes buffered events without syncing: they survive a crash of the
 * process, not a power loss. Returns 0 or -1 (errno); after a failure
 * the file is as it was and the events stay buffered for the next try. */
int zp_journal_write(zp_journal_t *self);
/* Drops the buffered events (their records never reached the output). */
void zp_journal_discard(zp_journal_t *self);
/* Bytes buffered and not yet synced. */
size_t zp_journal_pending(const zp_journal_t *self);
/* The journal's length in bytes: written and buffered. */
uint64_t zp_journal_size(const zp_journal_t *self);

/* Writes the snapshot of a compacted journal into out (see
 * zp_journal_compact); returns 0, or -1 to give the compaction up. */
typedef int zp_journal_dump_fn(void *ctx, zp_journal_t *out);

/* Compacts: writes what dump puts into out to PATH.compact (a version 3
 * header first), syncs it, renames it over the journal and syncs the
 * directory; appends then go to the new file. What is buffered is written
 * to the old file first. A crash at any point leaves either journal whole.
 * Returns 0, or -1 (errno; logged by the caller) with the old journal in
 * use as it was and the new file removed. */
int zp_journal_compact(zp_journal_t *self, zp_journal_dump_fn *dump, void *ctx);
/* The snapshot's lines, for a dump (buffered; written as they pile up).
 * Each returns 0, or -1 when out of memory or a write failed. */
int zp_journal_put_offset(zp_journal_t *out, uint64_t offset);
int zp_journal_put_forgotten(zp_journal_t *out,
                             const zp_journal_forgotten_t *job);
/* token: NULL or "" for none. */
int zp_journal_put_done(zp_journal_t *out, const char *job, const char *token,
                        const zp_journal_summary_t *summary);
/* counts: its succeeded, failed, duplicates and retries. */
int zp_journal_put_counts(zp_journal_t *out, const char *job,
                          const zp_journal_summary_t *counts);
int zp_journal_put_have(zp_journal_t *out, const char *job, uint64_t first,
                        uint64_t count);
/* A P line (buffered, like a record; also for a dump): job's spool holds
 * length bytes with CRC-32C crc. Returns 0, or -1 when out of memory. */
int zp_journal_spool(zp_journal_t *self, const char *job, uint64_t length,
                     uint32_t crc);

#endif
