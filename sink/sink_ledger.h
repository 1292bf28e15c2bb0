/* sink_ledger: one job's accounting at the sink. Which tasks have a
 * record (dedup), whether a failure is retried or final, when the job is
 * complete, its counters, and the task ids to report to the job's opener
 * (committed, to retry). The state machine: OPEN -> CLOSED (JobClose gave
 * the total) -> DONE (a record for every task below the total). */
#ifndef ZP_SINK_LEDGER_H
#define ZP_SINK_LEDGER_H

#include "zp_bitset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Highest task id accepted before a job is closed; guards the done set
 * against a hostile id. */
#define ZP_LEDGER_MAX_OPEN_TASK_ID (1ull << 34)
/* Pending ids past which the opener should be told now, not in 20 ms. */
#define ZP_LEDGER_FLUSH_IDS 4096
/* The most ids either pending list holds. They are kept while the job has
 * no opener or a send fails, so they wait for as long as the opener is
 * away: an honest opener holds at most its uncommitted tasks (the
 * ventilator: the workers' windows plus 8,192 by default), so the bound
 * only stops a peer that sends results no opener is waiting for. Past it
 * the commit list is made unique; what still does not fit is not listed
 * (counted by the caller), and a CommitQuery repairs it. 8 MiB a list. */
#define ZP_LEDGER_MAX_PENDING (1u << 20)

/* Values match Zpipe__V1__JobState (JobStatus.state on the wire). */
typedef enum {
    ZP_JOB_OPEN = 1,
    ZP_JOB_CLOSED = 2,
    ZP_JOB_DONE = 3,
} zp_job_state_t;

/* What to do with one result. */
typedef enum {
    ZP_LEDGER_COMMIT,       /* the task's record: write it */
    ZP_LEDGER_RETRY,        /* listed for another attempt: write nothing */
    ZP_LEDGER_DUPLICATE,    /* the task has its record: drop it (counted);
                               the caller lists it as committed again */
    ZP_LEDGER_OUT_OF_RANGE, /* a task id the job cannot have: refused */
    ZP_LEDGER_NOMEM,        /* could not be marked: dropped, not counted */
} zp_ledger_verdict_t;

/* What JobClose did. */
typedef enum {
    ZP_LEDGER_CLOSED,             /* now closed with this total */
    ZP_LEDGER_CLOSED_SAME,        /* it already was, with the same total */
    ZP_LEDGER_CLOSED_OTHER_TOTAL, /* it already was, with another total */
    ZP_LEDGER_TOO_MANY,           /* more records than the total: refused */
} zp_ledger_close_t;

/* Task ids to send in the next Committed message; borrowed from the
 * ledger until zp_ledger_pending_clear or the next result. */
typedef struct {
    const uint64_t *commit_ids;
    size_t n_commit;
    const uint64_t *retry_ids;
    const uint32_t *retry_attempts; /* the attempt that failed, per id */
    size_t n_retry;
} zp_ledger_pending_t;

/* Counters summed over many ledgers (a job table's), kept up to date by
 * each ledger that points at them: a total without a walk of every job. */
typedef struct {
    uint64_t done, succeeded, failed, duplicates, retries;
} zp_ledger_sums_t;

/* Initialise with zp_ledger_init; zp_ledger_fini releases. Counters are
 * read directly. */
typedef struct {
    zp_job_state_t state;
    uint64_t total; /* once closed */
    uint64_t done, succeeded, failed, duplicates, retries;
    uint32_t max_attempts;  /* 3 until the opener says otherwise */
    zp_ledger_sums_t *sums; /* NULL, or where every count is added too */
    zp_bitset_t has;        /* tasks with a record; freed once done */
    uint64_t *commit_ids, *retry_ids;
    uint32_t *retry_attempts;
    size_t n_commit, cap_commit, n_retry, cap_retry;
    bool commits_unique; /* commit_ids were made unique since the last add */
} zp_ledger_t;

/* An OPEN job with nothing yet. */
void zp_ledger_init(zp_ledger_t *self);
/* Frees what the ledger holds. */
void zp_ledger_fini(zp_ledger_t *self);
/* A DONE job keeps its counters only: frees the lists of ids to report
 * when none is waiting (they grow again if a duplicate is reported). */
void zp_ledger_release(zp_ledger_t *self);

/* The opener's JobOpen.max_attempts (0 = keep the current one). */
void zp_ledger_set_max_attempts(zp_ledger_t *self, uint32_t max_attempts);

/* Takes one result: task id, its status, whether the failure may be
 * retried, and its attempt (1-based; 0 = 1). A retryable failure below
 * max_attempts of a task without a record is listed for retry (when
 * that list cannot grow, the failure is final instead). A COMMIT is
 * counted (done, succeeded or failed) and its id is NOT listed yet: the
 * caller lists it with zp_ledger_committed once the record is written. */
zp_ledger_verdict_t zp_ledger_result(zp_ledger_t *self, uint64_t task, bool ok,
                                     bool retryable, uint32_t attempt);
/* Lists task as committed, for the opener: a record just written, or a
 * duplicate of one (the opener may have lost the first Committed).
 * Returns 0, or -1 when out of memory or at ZP_LEDGER_MAX_PENDING (the id
 * is not reported; a CommitQuery or the ventilator's lease covers it). */
int zp_ledger_committed(zp_ledger_t *self, uint64_t task);
/* Whether task has its record (a DONE job has every id below its total). */
bool zp_ledger_has(const zp_ledger_t *self, uint64_t task);

/* JobClose with the job's total. */
zp_ledger_close_t zp_ledger_close(zp_ledger_t *self, uint64_t total);
/* Whether the job is CLOSED and has a record for every task. */
bool zp_ledger_complete(const zp_ledger_t *self);
/* CLOSED -> DONE once complete; frees the done set. Returns 0, or -1 (and
 * nothing changes) when the job is not complete. */
int zp_ledger_finish(zp_ledger_t *self);

/* Journal replay: a committed record of task; returns 1 if it was new
 * (counted), 0 if not (a duplicate line, an id out of range), -1 when
 * out of memory. */
int zp_ledger_restore(zp_ledger_t *self, uint64_t task, bool ok);
/* Journal replay: the job was closed with total (a later close line
 * replaces an earlier one). Returns 0, or -1 when the job is DONE. */
int zp_ledger_restore_close(zp_ledger_t *self, uint64_t total);

/* Journal replay of a compacted journal (see zp_journal.h): */
/* A finished job's summary: a new ledger (nothing restored yet) becomes
 * DONE with these counters (done = succeeded + failed, at least total:
 * more when a stray id was counted while it was open). Returns 0, or -1
 * when the ledger is not new or the counts are short of total. */
int zp_ledger_restore_done(zp_ledger_t *self, uint64_t total,
                           uint64_t succeeded, uint64_t failed,
                           uint64_t duplicates, uint64_t retries);
/* A live job's counters at the snapshot, replacing what it had. */
void zp_ledger_restore_counts(zp_ledger_t *self, uint64_t succeeded,
                              uint64_t failed, uint64_t duplicates,
                              uint64_t retries);
/* Tasks first..first+count-1 have their records (counted by
 * zp_ledger_restore_counts, not here). Returns 0, or -1 when out of
 * memory; ids past ZP_LEDGER_MAX_OPEN_TASK_ID are left out. */
int zp_ledger_restore_have(zp_ledger_t *self, uint64_t first, uint64_t count);
/* The next run of tasks with records at or after from: *first and
 * *count; false when there is none. Not for a DONE job. */
bool zp_ledger_next_run(const zp_ledger_t *self, uint64_t from, uint64_t *first,
                        uint64_t *count);

/* The ids waiting to be reported. */
zp_ledger_pending_t zp_ledger_pending(const zp_ledger_t *self);
/* Whether there is anything to report. */
bool zp_ledger_has_pending(const zp_ledger_t *self);
/* Whether so many ids wait that the opener should be told now. */
bool zp_ledger_flush_due(const zp_ledger_t *self);
/* The opener was sent the first n_commit committed ids and the first
 * n_retry retries: forgets them, keeping the rest in order (unsent ids
 * wait for the next flush). A DONE job's emptied lists are freed. */
void zp_ledger_pending_sent(zp_ledger_t *self, size_t n_commit, size_t n_retry);
/* The opener was told everything pending: forgets the pending ids. */
void zp_ledger_pending_clear(zp_ledger_t *self);

/* "open", "closed", "done". */
const char *zp_job_state_name(zp_job_state_t state);

#endif
