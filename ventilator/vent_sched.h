/* vent_sched: the scheduler's choices, pure: which job a worker serves
 * next, how many tasks it gets, and how much input to read for it. No
 * sockets, no clock; the shell collects and sends. */
#ifndef ZP_VENT_SCHED_H
#define ZP_VENT_SCHED_H

#include "vent_job.h"
#include "vent_workers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The scheduler's memory: whose turn it is. Zero-initialise. */
typedef struct {
    uint64_t last_slot; /* the job served last */
    size_t rr;          /* the worker to look at first */
} zp_vent_sched_t;

/* Whether j has tasks to send, or input that may give some (can_hold:
 * the task table has room for another task). */
bool zp_vent_sched_wants(const zp_vent_job_t *j, bool can_hold);
/* The job w (any worker when NULL) should serve next: the highest
 * priority among those it has the plugin for; among equals, the first
 * after the one served last, so they take turns. NULL when none. */
zp_vent_job_t *zp_vent_sched_pick(const zp_vent_sched_t *s, zp_vent_job_t *jobs,
                                  const zp_vent_worker_t *w, bool can_hold);
/* The most tasks one batch to a worker with credit may carry. */
size_t zp_vent_sched_batch(uint64_t credit, uint64_t batch);
/* The most tasks per message for --batch batch, 0 = automatic: under
 * credit dispatch half a worker's default window (its credit bounds a
 * batch too, and a bigger message costs less per task: 1,000,000 empty
 * tasks took 0.340 s at 1,024, 0.328 s at 2,048 and 0.326 s at 4,096,
 * 7% less CPU; at a whole window, 4,096, a worker that hangs takes a
 * small job's every task at once, and the others commit nothing sent
 * after its lease began, so it is never found guilty, seen in
 * test_lease_guilty); under push dispatch, which nothing bounds but the
 * batch, 1,024. */
#define ZP_VENT_BATCH_CREDIT 2048u
#define ZP_VENT_BATCH_PUSH   1024u
uint64_t zp_vent_sched_batch_max(uint64_t batch, bool push);
/* The most one worker takes of what j has ready, when that is all the job
 * is known to have: the workers with credit for it split it. Credit sized
 * on a fast job would otherwise hand every task of a short slow job to
 * the first worker while the others idle. SIZE_MAX: no limit. */
size_t zp_vent_sched_fair_share(const zp_vent_job_t *j,
                                const zp_vent_workers_t *ws);
/* Credit of the workers that can run j. */
uint64_t zp_vent_sched_free_credit(const zp_vent_workers_t *ws,
                                   const zp_vent_job_t *j);
/* How many tasks j should have ready before a dispatch round: the credit
 * of every worker that may serve j in that round (it has the plugin), so
 * never less than the round can take from j; 0 for a job with neither
 * input nor a producer's lines waiting, or one that wants nothing. */
size_t zp_vent_sched_refill_want(const zp_vent_job_t *j,
                                 const zp_vent_workers_t *ws, bool can_hold);
/* Payload bytes to read before the next dispatch: a batch's worth
 * (batch_bytes) for every worker with credit, one at least. Big tasks then
 * go out as they are read, a batch for each worker while the next are
 * read, instead of after a whole round's input (up to the held limit,
 * 32 MiB and more) was read with every worker idle. */
uint64_t zp_vent_sched_refill_bytes(const zp_vent_workers_t *ws,
                                    uint64_t batch_bytes);
/* A batch went to the worker at position k of the round that started at
 * s->rr, for job j: the next round starts after it (n_workers 0: push
 * dispatch, no worker). */
void zp_vent_sched_served(zp_vent_sched_t *s, size_t k, size_t n_workers,
                          const zp_vent_job_t *j);
/* The worker list shrank to n_workers. */
void zp_vent_sched_workers_changed(zp_vent_sched_t *s, size_t n_workers);

#endif
