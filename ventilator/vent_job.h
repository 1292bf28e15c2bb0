/* vent_job: a job at the ventilator, its lifecycle at the sink as a
 * checked state machine, the list of jobs, the ring of finished ids, and
 * the failure records the ventilator owes the sink for the job.
 *
 * Lifecycle (SQLite's pager style: the legal transitions are the table in
 * vent_job.c; zp_vent_job_to refuses any other):
 *
 *   OPENING --ack--> OPEN --JobClose sent--> CLOSING --ack--> CLOSED
 *                     ^                         |                |
 *                     +------ sink restarted ---+----------------+
 *   CLOSED --JobStatus done--> DONE
 *   any state but REFUSED --sink refused (Ack ok = false)--> REFUSED
 *
 * OPENING: JobOpen sent, not acknowledged; nothing is dispatched.
 * OPEN: the sink has it; tasks are dispatched; the input may go on.
 * CLOSING: the input ended and JobClose (with the count) was sent.
 * CLOSED: the sink acknowledged the close; the ventilator asks for the
 *   job's status until the sink says it is done.
 * DONE, REFUSED: finished (a service job is then removed). */
#ifndef ZP_VENT_JOB_H
#define ZP_VENT_JOB_H

#include "vent_finished.h"
#include "vent_input.h"
#include "vent_lines.h"
#include "zp_bitset.h"
#include "zp_idmap.h"
#include "zp_lease.h"
#include "zpipe.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ZP_VENT_JOB_OPENING = 0,
    ZP_VENT_JOB_OPEN,
    ZP_VENT_JOB_CLOSING,
    ZP_VENT_JOB_CLOSED,
    ZP_VENT_JOB_DONE,
    ZP_VENT_JOB_REFUSED,
    ZP_VENT_JOB_STATES
} zp_vent_job_state_t;

/* Failure records for tasks out of attempts, queued until the shell sends
 * them to the sink as one ResultBatch. */
typedef struct {
    Zpipe__V1__Result *items; /* each .error is owned (malloc'd) */
    size_t n, cap;
} zp_vent_fails_t;

/* Task keys: the job's slot above the task id, so one table holds every
 * job's tasks and ids stay dense within a job. */
#define ZP_VENT_ID_BITS     40
#define ZP_VENT_MAX_TASK_ID (1ull << ZP_VENT_ID_BITS)
#define ZP_VENT_KEY(j, id)  ((uint64_t)(j)->slot << ZP_VENT_ID_BITS | (id))

/* A producer's numbered batch (TaskBatch.seq): the ids it was given. */
typedef struct {
    uint64_t first;
    uint32_t n;
} zp_vent_batch_t;

#define ZP_VENT_JOB_OWNERS 8

/* The fields are read directly by the scheduler, the task table and the
 * shell (hot paths); the state changes only through zp_vent_job_to. */
typedef struct zp_vent_job {
    char *id, *plugin;
    char *config; /* the plugin's settings, "KEY=VALUE" lines, or NULL */
    char *token;  /* its identity beside the id (JobOpen.token), never NULL */
    zp_lease_key_t key; /* its dispatch key (Task.lease), random */
    uint64_t slot;
    uint64_t deadline_ms;
    uint32_t max_attempts, priority;
    zp_vent_job_state_t state;
    /* Where its tasks come from: the input file, or a producer. */
    bool has_input;
    zp_vent_reader_t in;
    zp_bitset_t skip; /* --resume-journal: tasks already committed */
    uint64_t skipped;
    char prid[256]; /* the producer's routing id (prid_len 0: none) */
    size_t prid_len;
    /* The connections that opened it (or sent its token) since this
     * ventilator started, as hashes of their routing ids, newest last:
     * they may add to it and close it (vent_intake). */
    uint64_t owners[ZP_VENT_JOB_OWNERS];
    size_t n_owners;
    /* The intake conversation, not the lifecycle: the producer was told
     * the job is open; the producer sent JobClose. */
    bool producer_acked;
    bool input_closed;
    /* The producer's numbered batches: batches[k] is seq k + 1. */
    zp_vent_batch_t *batches;
    size_t n_batches, cap_batches;
    zp_iddeque_t ready;    /* keys of its queued tasks */
    zp_vent_lines_t lines; /* a producer's lines not yet tasks (queued
                              after ready: their ids come later) */
    uint64_t next_task_id;
    size_t held; /* its tasks in the table */
    uint64_t last_open_us, last_close_us, last_status_us;
    bool reopen;     /* the sink restarted: send JobOpen once more */
    uint64_t failed; /* failed tasks, from the sink's final JobStatus */
    bool warned_no_plugin;
    zp_vent_fails_t fails;
    struct zp_vent_job *next;
} zp_vent_job_t;

/* The name of a state ("open", ...), for logs and tests. */
const char *zp_vent_job_state_name(zp_vent_job_state_t s);
/* Whether from -> to is a legal transition. */
bool zp_vent_job_can(zp_vent_job_state_t from, zp_vent_job_state_t to);
/* Moves j to state to; returns 0, or -1 (j unchanged) when the transition
 * is not legal. */
int zp_vent_job_to(zp_vent_job_t *j, zp_vent_job_state_t to);
/* Whether the sink has the job open: its tasks may be dispatched. */
bool zp_vent_job_live(const zp_vent_job_t *j);
/* Whether the job is over (DONE or REFUSED). */
bool zp_vent_job_finished(const zp_vent_job_t *j);
/* Whether every task the job will ever have has been read. */
bool zp_vent_job_input_done(const zp_vent_job_t *j);
/* Debug builds: asserts the job's invariants. */
void zp_vent_job_check(const zp_vent_job_t *j);

/* Records the producer's next numbered batch (seq = n_batches + 1):
 * first id and count. Returns 0, or -1 when out of memory. */
int zp_vent_job_batch_add(zp_vent_job_t *j, uint64_t first, uint32_t n);
/* The batch numbered seq (1-based), or NULL when not taken yet. */
const zp_vent_batch_t *zp_vent_job_batch(const zp_vent_job_t *j, uint64_t seq);
/* Sets j's token (copied); returns 0 or -1 when out of memory. */
int zp_vent_job_set_token(zp_vent_job_t *j, const char *token);

/* Appends a failure record for task (error text: takes ownership of
 * *error, nulls the caller's pointer; cause: static storage). Returns 0,
 * or -1 when out of memory (nothing queued, *error untouched). */
int zp_vent_fails_push(zp_vent_fails_t *f, uint64_t task, const char *cause,
                       uint32_t attempt, uint64_t queued_us, bool quarantined,
                       char **error);
/* Drops every queued record (after they were sent). */
void zp_vent_fails_clear(zp_vent_fails_t *f);
/* Drops every record and frees the queue (empty and usable again). */
void zp_vent_fails_free(zp_vent_fails_t *f);

/* Every job, in order of arrival. */
typedef struct zp_vent_jobs zp_vent_jobs_t;

/* Caller owns the result; NULL when out of memory. New jobs take the
 * given deadline and max attempts; finished jobs are remembered in a
 * zp_vent_finished_t of max_finished (0: its default). */
zp_vent_jobs_t *zp_vent_jobs_new(uint64_t deadline_ms, uint32_t max_attempts,
                                 size_t max_finished);
/* Frees every job; nulls the caller's pointer. The caller has freed the
 * jobs' tasks (the table does not belong to the jobs). */
void zp_vent_jobs_destroy(zp_vent_jobs_t **self_p);
/* For tests: the hash of ids the index (and the finished jobs' index)
 * uses (NULL: zp_hash_str), so that a test can make ids collide. Only
 * while empty. */
void zp_vent_jobs_set_hash(zp_vent_jobs_t *self,
                           uint64_t (*hash)(const char *id));
/* The first job (borrowed, until it is removed); iterate with ->next. */
zp_vent_job_t *zp_vent_jobs_first(const zp_vent_jobs_t *self);
/* Jobs in the list. */
size_t zp_vent_jobs_count(const zp_vent_jobs_t *self);
/* The job with this id, or NULL. */
zp_vent_job_t *zp_vent_jobs_find(const zp_vent_jobs_t *self, const char *id);
/* A new job in state OPENING, last in the list (borrowed, until removed);
 * NULL when out of memory. */
zp_vent_job_t *zp_vent_jobs_add(zp_vent_jobs_t *self, const char *id,
                                const char *plugin);
/* Takes j out of the list and frees it; a finished job (DONE) is
 * remembered in the finished set at when_us (when out of memory it is
 * forgotten). The caller has removed its tasks. */
void zp_vent_jobs_remove(zp_vent_jobs_t *self, zp_vent_job_t *j,
                         uint64_t when_us);
/* Sets j's producer: the connection (routing id, at most 256 bytes) its
 * answers go to, counted per connection for zp_vent_jobs_of. Returns 0,
 * or -1 when out of memory (j keeps its producer). */
int zp_vent_jobs_set_producer(zp_vent_jobs_t *self, zp_vent_job_t *j,
                              const char *rid, size_t rid_len);
/* Whether the connection rid is one of j's owners; and makes it one (the
 * oldest forgotten past ZP_VENT_JOB_OWNERS). */
bool zp_vent_job_owned_by(const zp_vent_job_t *j, const char *rid,
                          size_t rid_len);
void zp_vent_job_add_owner(zp_vent_job_t *j, const char *rid, size_t rid_len);
/* Unfinished jobs whose producer is this connection. */
size_t zp_vent_jobs_of(const zp_vent_jobs_t *self, const char *rid,
                       size_t rid_len);
/* The finished jobs (borrowed; the journal's replay adds to it). */
zp_vent_finished_t *zp_vent_jobs_finished(const zp_vent_jobs_t *self);

#endif
