/* vent_retry: requeue, lost-worker requeue and give-up. */
#define _GNU_SOURCE
#include "vent_retry.h"

#include <stdio.h>
#include <stdlib.h>

zp_vent_retry_t zp_vent_retry_decide(uint32_t attempt, uint32_t max_attempts)
{
    return zp_retry_again(true, attempt, max_attempts) ? ZP_VENT_REQUEUE
                                                       : ZP_VENT_GIVE_UP;
}

zp_vent_retry_t zp_vent_lost_decide(uint32_t losses)
{
    return losses >= ZP_MAX_LOSSES ? ZP_VENT_GIVE_UP : ZP_VENT_REQUEUE;
}

int zp_vent_give_up(zp_vent_task_t *t, zp_cause_t cause, const char *why,
                    bool quarantined)
{
    zp_vent_job_t *j = t->job;
    char *msg = NULL;
    if (asprintf(&msg, "%s on attempt %u of %u; giving up", why, t->attempt,
                 j->max_attempts) < 0)
        msg = NULL; /* the record goes without its text */
    if (zp_vent_fails_push(&j->fails, t->id, zp_cause_name(cause), t->attempt,
                           t->queued_us, quarantined, &msg) < 0) {
        free(msg);
        return -1;
    }
    /* Its lease, so the sink takes the record from any connection (a
     * sink that restarted knows no opener until the next JobOpen). */
    j->fails.items[j->fails.n - 1].lease =
        zp_lease(&j->key, t->id, t->attempt ? t->attempt : 1);
    t->state = ZP_VENT_FAILING;
    return 0;
}

zp_vent_retry_result_t zp_vent_requeue(zp_vent_task_t *t, zp_cause_t cause,
                                       const char *why)
{
    zp_vent_retry_result_t r = {
        zp_vent_retry_decide(t->attempt, t->job->max_attempts), false,
        t->attempt};
    if (r.decision == ZP_VENT_GIVE_UP) {
        r.recorded = zp_vent_give_up(t, cause, why, false) == 0;
        return r;
    }
    t->attempt++;
    zp_vent_tasks_requeue_front(t);
    return r;
}

zp_vent_retry_result_t zp_vent_requeue_lost(zp_vent_task_t *t, const char *why)
{
    t->losses++;
    zp_vent_retry_result_t r = {zp_vent_lost_decide(t->losses), false,
                                t->attempt};
    if (r.decision == ZP_VENT_GIVE_UP) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s, for the %u. time", why, t->losses);
        r.recorded = zp_vent_give_up(t, ZP_CAUSE_WORKER_LOST, msg, true) == 0;
        return r;
    }
    zp_vent_tasks_requeue_front(t);
    return r;
}

bool zp_vent_expired_on(const zp_vent_task_t *t, uint64_t worker)
{
    for (unsigned i = 0; i < t->n_expired && i < ZP_VENT_LEASE_WORKERS - 1; i++)
        if (t->expired_on[i] == worker)
            return true;
    return false;
}

zp_vent_retry_result_t zp_vent_requeue_expired(zp_vent_task_t *t,
                                               uint64_t worker, bool other,
                                               const char *why)
{
    /* Expired again on a worker it expired on before: charged, so a task
     * that keeps going back to the one worker it hangs on still ends. */
    bool repeat = worker && zp_vent_expired_on(t, worker);
    if (worker && !repeat) {
        if (t->n_expired < ZP_VENT_LEASE_WORKERS - 1)
            t->expired_on[t->n_expired] = worker;
        if (t->n_expired < ZP_VENT_LEASE_WORKERS)
            t->n_expired++;
    }
    zp_vent_retry_result_t r = {ZP_VENT_REQUEUE, false, t->attempt};
    if (t->n_expired >= ZP_VENT_LEASE_WORKERS &&
        t->job->max_attempts > ZP_VENT_LEASE_WORKERS)
        /* Charged from here on: the job's max attempts still bound it. */
        return zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, why);
    if (t->n_expired >= ZP_VENT_LEASE_WORKERS) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s, on %u workers", why, t->n_expired);
        r.decision = ZP_VENT_GIVE_UP;
        r.recorded =
            zp_vent_give_up(t, ZP_CAUSE_LEASE_EXPIRED, msg, false) == 0;
        return r;
    }
    if (!worker || !other || repeat)
        return zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, why);
    zp_vent_tasks_requeue_front(t);
    return r;
}
