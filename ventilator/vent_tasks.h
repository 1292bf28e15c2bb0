/* vent_tasks: the held-task table. Every task read and not yet committed
 * by the sink, keyed by its job's slot and its id; the hold limits that
 * bound it; the lease scan that finds tasks out too long. */
#ifndef ZP_VENT_TASKS_H
#define ZP_VENT_TASKS_H

#include "vent_job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ZP_VENT_QUEUED,   /* waiting in its job's ready queue */
    ZP_VENT_INFLIGHT, /* sent to a worker */
    ZP_VENT_FAILING,  /* out of attempts; failure record sent to the sink */
} zp_vent_tstate_t;

/* A task whose lease expired on this many distinct workers fails as
 * lease_expired (it hangs every worker, so it ends); before that an
 * expired lease moves it to another worker without charging an attempt. */
#define ZP_VENT_LEASE_WORKERS 3

/* One task from read until committed. */
/* Lease expiries forgiven while the sink commits nothing at all (away,
 * restarting, paused on a full disk): bounded, so a task that hangs every
 * worker when nothing else is left still ends. */
#define ZP_VENT_QUIET_EXPIRIES 3

typedef struct {
    uint64_t id;
    zp_vent_job_t *job;
    uint32_t attempt;  /* charged attempts: failures, and expired leases
                          with no other worker to move to */
    uint8_t state;     /* zp_vent_tstate_t */
    uint8_t n_expired; /* distinct workers its lease expired on */
    uint16_t losses;   /* deliveries lost with a worker, not charged */
    uint16_t alone;    /* of those, the worker held only this task */
    uint8_t quiet;     /* leases that expired with the sink committing
                          nothing since it was sent: not counted against
                          it or its workers, up to ZP_VENT_QUIET_EXPIRIES */
    uint32_t group;    /* suspect group (vent_bisect), 0 = none */
    uint64_t worker;   /* serial of the worker holding it */
    uint64_t expired_on[ZP_VENT_LEASE_WORKERS - 1]; /* their serials */
    uint64_t sent_us;
    uint64_t queued_us; /* --trace: wall clock when queued, else 0 */
    bool pooled;        /* a ZP_VENT_TASK_SMALL block of the table's pool */
    size_t len;
    const uint8_t *data;    /* its payload: in own, or in chunk */
    zp_vent_chunk_t *chunk; /* the input block it points into, or NULL */
    uint8_t own[];
} zp_vent_task_t;

/* A task this big or smaller, header and own payload, takes a block of
 * this size from the table's pool of freed ones, not from malloc: a run
 * of a million small tasks mallocs and frees each (glibc's tcache keeps
 * only 7 a size, so most went through its bins: 4 % of the ventilator's
 * CPU). The pool keeps at most ZP_VENT_POOL_MAX blocks. */
#define ZP_VENT_TASK_SMALL 192u
#define ZP_VENT_POOL_MAX   16384u

typedef struct zp_vent_tasks zp_vent_tasks_t;

/* max_inflight: tasks held at most, 0 = automatic (the workers' windows
 * plus 8,192, or 65,536 under push dispatch); max_bytes: their payload
 * bytes (one task is always allowed), 0 = automatic (16 MiB per
 * connected worker, at least 32 MiB, at most 256 MiB). Caller owns the
 * result; NULL when out of memory. */
zp_vent_tasks_t *zp_vent_tasks_new(uint64_t max_inflight, uint64_t max_bytes,
                                   bool push);
/* Frees the table and every task in it; nulls the caller's pointer. */
void zp_vent_tasks_destroy(zp_vent_tasks_t **self_p);

/* How many tasks may be held (read, not yet committed), given the sum of
 * the connected workers' windows. Automatic: every worker's window plus
 * room for the sink's commit batches. Results wait in the sink's queue
 * when it is the slowest stage; this bound is what makes dispatch wait for
 * it, so memory does not grow with the job. */
size_t zp_vent_tasks_limit(const zp_vent_tasks_t *self, uint64_t windows);
/* How many payload bytes may be held with workers connected. Automatic:
 * what keeps every worker busy with big tasks; more only fills queues
 * (the sink's, when it is the slowest stage) with memory each process
 * touches for the first time, which costs more than the copies. */
uint64_t zp_vent_tasks_bytes_limit(const zp_vent_tasks_t *self, size_t workers);
/* Whether another task may be read: under both bounds (one task always). */
bool zp_vent_tasks_can_hold(const zp_vent_tasks_t *self, uint64_t windows,
                            size_t workers);

/* Holds a new task for j with the next id and queues it at the back of
 * j's ready queue; queued_us: its --trace stamp or 0. Returns the task
 * (borrowed, until zp_vent_tasks_done), or NULL when out of memory (the
 * table and j unchanged). */
zp_vent_task_t *zp_vent_tasks_add(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                  const void *data, size_t len,
                                  uint64_t queued_us);
/* The same for a payload that lies in chunk (the reader's block), which
 * the task then points into instead of copying it: it keeps a reference
 * to the block until done. A block counts in the held bytes with its
 * whole size while a task points into it (rather than each task's
 * payload), so that tasks finishing out of order cannot keep more memory
 * than the bound. */
zp_vent_task_t *zp_vent_tasks_add_ref(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                      zp_vent_chunk_t *chunk, const void *data,
                                      size_t len, uint64_t queued_us);
/* Takes a producer's n lines (text: whole lines, each ending with '\n')
 * for j: they get the ids j->next_task_id on (which moves past them) and
 * count in the hold limits from now on, but become tasks only when
 * zp_vent_tasks_from_lines makes them (vent_lines). Returns 0, or -1
 * when out of memory (nothing changed). */
int zp_vent_tasks_take_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             const uint8_t *text, size_t len, uint64_t n,
                             uint64_t queued_us);
/* Gives back the n lines taken last for j (a batch that could not be
 * kept whole), and their ids. */
void zp_vent_tasks_untake_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                                uint64_t n);
/* Makes tasks of j's oldest lines, queued in order, until j's ready queue
 * holds want keys or no line is left. Returns 0, or -1 when out of
 * memory (the lines not made stay, for a later call). */
int zp_vent_tasks_from_lines(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             size_t want);
/* Lines taken and not yet tasks, of every job. */
uint64_t zp_vent_tasks_lines(const zp_vent_tasks_t *self);

/* Gives back the ids from first on: frees j's tasks first ..
 * j->next_task_id - 1, which must be the last added and still queued (a
 * batch taken just now, none sent yet), takes their keys off the back of
 * j's ready queue, and sets j->next_task_id to first, so the next task
 * added gets id first again. For a batch that cannot be kept whole (out
 * of memory): refused without a trace, no gap in the job's ids. */
void zp_vent_tasks_give_back(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             uint64_t first);
/* The task with this key (ZP_VENT_KEY), or NULL. */
zp_vent_task_t *zp_vent_tasks_get(const zp_vent_tasks_t *self, uint64_t key);
/* Forgets a committed task and frees it. */
void zp_vent_tasks_done(zp_vent_tasks_t *self, zp_vent_task_t *t);
/* Frees every task of j still held and its lines (normally none: the sink
 * commits every task before it says the job is done, but a lost Committed must
 * not leave tasks that point at a freed job). */
void zp_vent_tasks_drop_job(zp_vent_tasks_t *self, zp_vent_job_t *j);
/* Iteration over every held task: start with *cursor = 0; false when
 * done. Neither add nor remove tasks while iterating. */
bool zp_vent_tasks_next(const zp_vent_tasks_t *self, size_t *cursor,
                        zp_vent_task_t **t);

/* Pops up to max of j's queued tasks (and at most about max_bytes of
 * payload, one task always) into out; keys of tasks committed or given up
 * meanwhile are dropped. Returns the count. */
size_t zp_vent_tasks_collect(zp_vent_tasks_t *self, zp_vent_job_t *j,
                             size_t max, uint64_t max_bytes,
                             zp_vent_task_t **out);
/* Puts t at the front of its job's queue (state QUEUED, no worker; a
 * traced task's wait starts again). Returns 0, or -1 when out of memory
 * (logged; the task is left in flight, with no worker, and is sent again
 * when its lease expires). */
int zp_vent_tasks_requeue_front(zp_vent_task_t *t);

/* Tasks held now (producers' lines not yet tasks included), and the
 * payload bytes of the tasks (input blocks tasks point into counted
 * whole). */
size_t zp_vent_tasks_size(const zp_vent_tasks_t *self);
uint64_t zp_vent_tasks_bytes(const zp_vent_tasks_t *self);
/* Freed small blocks kept for the next tasks. */
size_t zp_vent_tasks_pooled(const zp_vent_tasks_t *self);
/* Most tasks held at once. */
size_t zp_vent_tasks_max_held(const zp_vent_tasks_t *self);
/* Tasks ever added. */
uint64_t zp_vent_tasks_read(const zp_vent_tasks_t *self);

/* The lease rule for one task out since sent_us: the long lease (lease_us,
 * 0 = off) always holds; with a deadline, a task out for deadline + 5 s
 * expires too unless its worker finished something within that time
 * (progress_us: when it last did; 0 when the worker is gone): it is then
 * working through the tasks queued ahead of this one (a worker holds up to
 * its window; each may take the whole deadline). */
bool zp_vent_lease_expired(uint64_t now, uint64_t sent_us, uint64_t lease_us,
                           uint64_t deadline_ms, uint64_t progress_us);

/* When the worker with this serial last made progress, 0 if it is gone. */
typedef uint64_t(zp_vent_progress_fn)(void *ctx, uint64_t worker);

/* The lease scan: the tasks in flight whose lease ran out at now, in
 * *out (borrowed, valid until the next scan); returns their count. Out of
 * memory: returns those that fit (the rest expire at a later scan). */
size_t zp_vent_tasks_expired(zp_vent_tasks_t *self, uint64_t now,
                             uint64_t lease_us, zp_vent_progress_fn *progress,
                             void *ctx, zp_vent_task_t ***out);

#endif
