/* zp_journal: the sink's append-only commit log.
 *
 * One event per text line, so a torn write can only damage the last line:
 *   zpipe-journal 1                      header
 *   O <job> <max_attempts> [<token>]     job opened (again: its token set);
 *                                        the token, the job's identity
 *                                        beside its id (JobOpen.token), is
 *                                        left out when empty (journals
 *                                        before it have none)
 *   C <job> <total>                      job closed with its task count
 *   R <job> <task> <ok|failed> <offset>  record committed; offset is the
 *                                        output file's size after it
 * Replaying stops at the first line that is incomplete or malformed; what
 * follows is discarded (and reported), so a crash mid-write loses only
 * records that were never acknowledged. */
#ifndef ZP_JOURNAL_H
#define ZP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* token: "" when the line has none */
    void (*on_open)(void *ctx, const char *job, uint32_t max_attempts,
                    const char *token);
    void (*on_close)(void *ctx, const char *job, uint64_t total);
    void (*on_record)(void *ctx, const char *job, uint64_t task, bool ok,
                      uint64_t offset);
} zp_journal_visitor_t;

/* True if s is a valid job id: [A-Za-z0-9_.:-]{1,128}. */
bool zp_job_id_valid(const char *s);

/* Replays data[0..len). Returns the number of events; *valid_len is the
 * length of the well-formed prefix (the rest is a torn or corrupt tail).
 * Returns -1 if the header is missing or wrong (not a journal). */
long zp_journal_replay(const char *data, size_t len,
                       const zp_journal_visitor_t *visitor, void *ctx,
                       size_t *valid_len);

typedef struct zp_journal zp_journal_t;

/* Opens path, replaying what it holds through visitor, truncating a torn
 * tail, and positions for appending; creates it when missing. Caller owns
 * the result; NULL with err set on failure. */
zp_journal_t *zp_journal_open(const char *path,
                              const zp_journal_visitor_t *visitor, void *ctx,
                              char *err, size_t errlen);
/* Flushes and closes; nulls the caller's pointer. */
void zp_journal_destroy(zp_journal_t **self_p);
/* Buffer events; nothing is durable until zp_journal_sync. token (NULL
 * or "": none) must be a valid job id (zp_job_id_valid) when set. */
int zp_journal_open_job(zp_journal_t *self, const char *job,
                        uint32_t max_attempts, const char *token);
int zp_journal_close_job(zp_journal_t *self, const char *job, uint64_t total);
int zp_journal_record(zp_journal_t *self, const char *job, uint64_t task,
                      bool ok, uint64_t offset);
/* Writes buffered events and fdatasyncs; returns 0 or -1 (errno). */
int zp_journal_sync(zp_journal_t *self);
/* Writes buffered events without syncing: they survive a crash of the
 * process, not a power loss. Returns 0 or -1 (errno). */
int zp_journal_write(zp_journal_t *self);
/* Bytes buffered and not yet synced. */
size_t zp_journal_pending(const zp_journal_t *self);

#endif
