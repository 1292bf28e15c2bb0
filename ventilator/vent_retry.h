/* vent_retry: what happens to a task that has to run again: requeued with
 * its attempt raised, requeued uncharged after a lost worker, or given up
 * (a failure record for the sink queued on its job). The decisions are
 * pure (zp_vent_retry_decide, zp_vent_lost_decide); the apply functions
 * change the task and its job only. The shell counts, publishes events and
 * sends the records. */
#ifndef ZP_VENT_RETRY_H
#define ZP_VENT_RETRY_H

#include "vent_tasks.h"
#include "zp_cause.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    ZP_VENT_REQUEUE, /* queued again at the front of its job */
    ZP_VENT_GIVE_UP, /* out of attempts: a failure record for the sink */
} zp_vent_retry_t;

/* A charged failure of the given attempt (1-based) of a task allowed
 * max_attempts: another attempt, or give up (zp_retry_again's rule). */
zp_vent_retry_t zp_vent_retry_decide(uint32_t attempt, uint32_t max_attempts);
/* A task lost with a worker for the losses-th time (counting this one):
 * not charged, until ZP_MAX_LOSSES make it a poison task. */
zp_vent_retry_t zp_vent_lost_decide(uint32_t losses);

/* What zp_vent_requeue and zp_vent_requeue_lost did. */
typedef struct {
    zp_vent_retry_t decision;
    bool recorded;    /* GIVE_UP: the record is queued (false: out of
                         memory; the task is unchanged, tried again at the
                         next lease scan) */
    uint32_t attempt; /* REQUEUE: the attempt that will not count again
                         (for the task_retried event) */
} zp_vent_retry_result_t;

/* Sends t again later with its attempt raised, or gives it up (cause,
 * why: the record's cause and text). */
zp_vent_retry_result_t zp_vent_requeue(zp_vent_task_t *t, zp_cause_t cause,
                                       const char *why);
/* A worker died holding t (why: which and how). That is not the task's
 * fault (its plugin runs in an executor the worker survives), so the
 * attempt is not charged; a task that keeps taking workers down with it is
 * given up, quarantined, after ZP_MAX_LOSSES. */
zp_vent_retry_result_t zp_vent_requeue_lost(zp_vent_task_t *t, const char *why);
/* Whether t's lease has expired on the worker with this serial before. */
bool zp_vent_expired_on(const zp_vent_task_t *t, uint64_t worker);
/* t's lease expired on the worker with serial worker (0: none known, push
 * dispatch); other: whether a connected worker that can run it has not
 * had it expire yet. The worker is noted; on the ZP_VENT_LEASE_WORKERS-th
 * distinct one t is given up (lease_expired: it hangs every worker).
 * Otherwise, with another worker to go to, t is requeued uncharged (the
 * worker was at fault, not the task; r.attempt is its attempt, run again);
 * with none, charged as zp_vent_requeue does (a lone slow worker still
 * gets its attempts, then the task fails). */
zp_vent_retry_result_t zp_vent_requeue_expired(zp_vent_task_t *t,
                                               uint64_t worker, bool other,
                                               const char *why);
/* Queues t's failure record on its job ("WHY on attempt A of M; giving
 * up") and marks it FAILING; quarantined: a poison task. Returns 0, or -1
 * when out of memory (t unchanged). */
int zp_vent_give_up(zp_vent_task_t *t, zp_cause_t cause, const char *why,
                    bool quarantined);

#endif
