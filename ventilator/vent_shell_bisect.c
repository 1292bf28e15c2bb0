/* vent_shell_bisect: the shell's side of vent_bisect: the tasks a lost
 * worker held become suspect groups, and dispatch sends a suspect group
 * only to a worker that holds nothing else. */
#define _GNU_SOURCE
#include "vent_bisect.h"
#include "vent_shell.h"
#include "zp_log.h"

#include <stdio.h>
#include <stdlib.h>

/* Counts and publishes what a requeue of a lost task did. */
static void s_counted(zp_vent_shell_t *v, const zp_vent_task_t *t,
                      zp_vent_retry_result_t r, const char *why)
{
    if (r.decision == ZP_VENT_REQUEUE) {
        v->n.redelivered++;
        if (!v->events)
            return;
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED;
        ev.job_id = t->job->id;
        ev.task_id = t->id;
        ev.attempt = r.attempt;
        ev.cause = (char *)zp_cause_name(ZP_CAUSE_WORKER_LOST);
        ev.detail = (char *)why;
        zp_events_emit(v->events, &ev);
    } else if (r.recorded) {
        v->n.gave_up++;
        zp_warn("task %s/%llu quarantined: %s", t->job->id,
                (unsigned long long)t->id, why);
    }
}

size_t zp_vent_shell_requeue_lost(zp_vent_shell_t *v, const zp_vent_worker_t *w,
                                  const char *why)
{
    size_t n = 0, cursor = 0;
    zp_vent_task_t *t;
    while (zp_vent_tasks_next(v->tasks, &cursor, &t))
        n += t->state == ZP_VENT_INFLIGHT && t->worker == w->serial;
    if (!n)
        return 0;
    zp_vent_task_t **lost = malloc(n * sizeof *lost);
    if (!lost) { /* left in flight: the lease scan sends them again */
        zp_error("out of memory requeueing %zu tasks of worker %s", n, w->id);
        return 0;
    }
    size_t k = 0;
    cursor = 0;
    while (zp_vent_tasks_next(v->tasks, &cursor, &t) && k < n)
        if (t->state == ZP_VENT_INFLIGHT && t->worker == w->serial)
            lost[k++] = t;
    char msg[320];
    snprintf(msg, sizeof msg, "worker %s lost (%s) holding it", w->id, why);
    if (!w->in_process) {
        /* Its plugins ran in executors it outlived: its death (killed,
         * cut off, out of memory) is no task's fault, nothing to bisect. */
        for (size_t i = n; i-- > 0;)
            s_counted(v, lost[i], zp_vent_requeue_lost(lost[i], msg), msg);
        free(lost);
        return n;
    }
    bool alone = n == 1 && lost[0]->group != 0;
    uint32_t first = v->bisect_group + 1;
    size_t ways = n < ZP_VENT_BISECT_WAYS ? n : ZP_VENT_BISECT_WAYS;
    v->bisect_group += (uint32_t)ways;
    if (v->bisect_group < first) /* wrapped: 0 means "no group" */
        first = v->bisect_group = 1;
    /* From the back: requeued at the front, the first group ends first. */
    for (size_t i = n; i-- > 0;) {
        size_t part = zp_vent_bisect_part(i, n, ZP_VENT_BISECT_WAYS);
        s_counted(
            v, lost[i],
            zp_vent_bisect_requeue(lost[i], first + (uint32_t)part, alone, msg),
            msg);
    }
    if (n > 1)
        zp_info("worker %s lost holding %zu tasks: sending them again in %zu "
                "groups, each alone on a worker",
                w->id, n, ways);
    free(lost);
    return n;
}

bool zp_vent_shell_bisect_gate(zp_vent_shell_t *v, zp_vent_worker_t *w,
                               zp_vent_job_t *j, uint32_t *group)
{
    *group = 0;
    if (w->group) {
        zp_vent_holding_t h =
            zp_vent_bisect_holding(v->tasks, w->serial, w->group);
        if (h.of_group)
            return false; /* it runs a suspect group: nothing else */
        w->group = 0;
    }
    uint32_t g = zp_vent_bisect_front(v->tasks, j);
    if (!g)
        return true;
    if (zp_vent_bisect_holding(v->tasks, w->serial, 0).inflight)
        return false; /* a suspect group waits for an empty worker */
    *group = w->group = g;
    return true;
}
