/* sink_job: the sink's table of jobs. A job holds what each module keeps
 * for it (accounting, ordered output, spool, parked fetches, waiters,
 * reduction) and the per-worker counters shown in JobStatus. Jobs are
 * found by id through a hash index and listed newest first. A finished
 * job is released to a compact summary (its counters, spool length, token
 * and reduce error); past the retention (zp_jobs_set_retain, the sink's
 * --retain-jobs) the oldest finished job is forgotten, kept only as the
 * hashes of its id and token (sink_retain.h) for the uniqueness rule. The
 * table
 * also keeps the jobs with something to tell their opener (a dirty list),
 * so the loop's work follows the live jobs, not the job count. */
#ifndef ZP_SINK_JOB_H
#define ZP_SINK_JOB_H

#include "sink_fetch.h"
#include "zp_lease.h"
#include "sink_ledger.h"
#include "sink_order.h"
#include "sink_reduce.h"
#include "sink_retain.h"
#include "sink_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A worker's share of a job. */
typedef struct {
    char *id;
    uint64_t tasks;
    uint32_t window, max_held;
} zp_wstat_t;

typedef struct zp_sink_job {
    char *id;
    char *token; /* JobOpen.token, the job's identity beside its id; NULL
                    or "" = none given (legacy: any open matches); kept
                    once released */
    zp_ledger_t ledger;
    zp_order_t order; /* --ordered */
    zp_spool_t spool; /* --spool */
    zp_fetch_t fetch;
    zp_waiters_t waiters; /* told when the job is done */
    zp_peer_t opener;     /* told what is committed and what to retry */
    /* Its dispatcher's key (JobOpen.dispatch_key; unset: results are not
     * checked) and the one before it (a dispatcher that took over). */
    zp_lease_key_t key, prev_key;
    bool acks_wait_open; /* the opener was unreachable: commits wait for
                            the job's next JobOpen */
    zp_reduce_job_t reduce;
    zp_wstat_t *workers;
    size_t n_workers;
    uint64_t first_us, last_us; /* Unix µs of the first and last results */
    struct zp_sink_job *link;   /* the next older job */
    struct zp_sink_job *newer;  /* the next newer job */
    struct zp_sink_job *hnext;  /* the next in its hash bucket */
    struct zp_sink_job *next_dirty;
    struct zp_sink_job *next_done; /* the next job released after this */
    bool dirty;                    /* on the dirty list */
    bool released;                 /* done and released */
} zp_sink_job_t;

/* Finished jobs whose worker counters are kept for JobStatus; older ones
 * list no workers. */
#define ZP_JOBS_KEEP_WORKERS 64

/* Zero-initialise; zp_jobs_fini frees every job. Its jobs' ledgers add
 * to its sums: the table must not move while it has jobs. */
typedef struct {
    zp_sink_job_t *head;     /* newest first */
    zp_sink_job_t *tail;     /* the oldest */
    zp_sink_job_t **buckets; /* the hash index; NULL until the first job */
    size_t n_buckets;        /* a power of 2 */
    size_t count;            /* jobs */
    zp_sink_job_t *dirty;    /* jobs with something to tell, see below */
    zp_sink_job_t *done_oldest, *done_newest; /* released, in that order */
    zp_sink_job_t *workers_from; /* the oldest released keeping workers */
    size_t n_released;           /* released jobs held */
    size_t n_done_workers;       /* released jobs from workers_from on */
    size_t retain;               /* released jobs held at most; 0 = all */
    zp_retain_t forgotten;       /* the ids of the jobs forgotten since */
    uint64_t n_forgotten;        /* jobs forgotten since the start */
    zp_ledger_sums_t sums;       /* every job's counters, summed */
} zp_jobs_t;

/* The job with this id, or NULL. */
zp_sink_job_t *zp_jobs_find(const zp_jobs_t *self, const char *id);
/* The job with this id, added (OPEN) when new; *is_new (may be NULL)
 * says which. NULL when out of memory. Borrowed, valid until
 * zp_jobs_fini. */
zp_sink_job_t *zp_jobs_get(zp_jobs_t *self, const char *id, bool *is_new);
/* Frees every job (reducers' accumulators included) and the forgotten
 * set; the retention stays set. */
void zp_jobs_fini(zp_jobs_t *self);
/* Finished jobs to hold whole (0 = every one: none is forgotten), and
 * the forgotten ids to remember (the oldest dropped past it). */
void zp_jobs_set_retain(zp_jobs_t *self, size_t jobs, size_t ids);

/* The dirty list: jobs that had results since the last commit, or still
 * have ids to tell their opener. Whoever gives a job something to flush
 * marks it; the commit takes the list and marks again those it could not
 * empty. */
void zp_jobs_touch(zp_jobs_t *self, zp_sink_job_t *job);
/* Takes the list (linked by next_dirty), leaving it empty. */
zp_sink_job_t *zp_jobs_take_dirty(zp_jobs_t *self);

/* A DONE job, told and answered, keeps a summary: its id and token,
 * ledger counters, spool length, first and last result times, reduce
 * error, and (for the last ZP_JOBS_KEEP_WORKERS released) its workers.
 * Frees the rest: done set, id lists, ordered ring, accumulator, parked
 * requests and waiters. Its spool file is the store's to close. */
void zp_jobs_release(zp_jobs_t *self, zp_sink_job_t *job);

/* The oldest released job, when more than the retention are held and
 * it has nothing left to do (not on the dirty list, no parked request,
 * no waiter): the next to forget. NULL when none is. */
zp_sink_job_t *zp_jobs_forgettable(const zp_jobs_t *self);
/* Forgets a released job: its id and token go to the forgotten set (when
 * that cannot grow, its oldest is dropped), the rest is freed. Its spool
 * file must be closed (the store's) first: its spool is freed with it. */
void zp_jobs_forget(zp_jobs_t *self, zp_sink_job_t **job_p);

/* The job whose spool this is. */
zp_sink_job_t *zp_sink_job_of_spool(zp_spool_t *spool);

/* A result batch from worker (NULL = "") committed fresh records; its
 * window and the most it held. Out of memory: the worker is not counted. */
void zp_sink_job_worker(zp_sink_job_t *job, const char *worker, size_t fresh,
                        uint32_t window, uint32_t max_held);
/* Whether task id of job (a zp_sink_job_t) has its record, for the
 * order (zp_order_written_fn); false for a DONE job, which is never
 * drained. */
bool zp_sink_job_has(void *job, uint64_t id);
/* The job's spool as consumers see it; its file is opened (store) when
 * there is something to read. */
zp_fetch_source_t zp_sink_job_source(zp_sink_job_t *job, zp_store_t *store);
/* Whether task has its record in the output (may be acknowledged once
 * durable): it has one, and with --ordered (ordered) it is not parked
 * waiting for a lower id. A DONE job has every id below its total. */
bool zp_sink_job_written(const zp_sink_job_t *job, bool ordered, uint64_t task);

#endif
