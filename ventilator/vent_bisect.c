/* vent_bisect: suspect groups after a lost worker (see vent_bisect.h). */
#define _GNU_SOURCE
#include "vent_bisect.h"

#include <stdio.h>

size_t zp_vent_bisect_part(size_t i, size_t n, size_t ways)
{
    if (n < ways)
        ways = n;
    return ways ? i * ways / n : 0;
}

zp_vent_retry_result_t zp_vent_bisect_requeue(zp_vent_task_t *t, uint32_t group,
                                              bool alone, const char *why)
{
    t->losses++;
    if (alone)
        t->alone++;
    zp_vent_retry_result_t r = {ZP_VENT_REQUEUE, false, t->attempt};
    if (t->alone >= ZP_VENT_ALONE_LOSSES || t->losses >= ZP_MAX_LOSSES) {
        char msg[400];
        if (t->alone >= ZP_VENT_ALONE_LOSSES)
            snprintf(msg, sizeof msg,
                     "%s: the worker held this task alone, for the %u. time "
                     "(it kills the worker running it)",
                     why, t->alone);
        else
            snprintf(msg, sizeof msg, "%s, for the %u. time", why, t->losses);
        r.decision = ZP_VENT_GIVE_UP;
        r.recorded = zp_vent_give_up(t, ZP_CAUSE_WORKER_LOST, msg, true) == 0;
        return r;
    }
    t->group = group;
    zp_vent_tasks_requeue_front(t);
    return r;
}

zp_vent_holding_t zp_vent_bisect_holding(const zp_vent_tasks_t *tasks,
                                         uint64_t serial, uint32_t group)
{
    zp_vent_holding_t h = {0, 0};
    size_t cursor = 0;
    zp_vent_task_t *t;
    while (zp_vent_tasks_next(tasks, &cursor, &t))
        if (t->state == ZP_VENT_INFLIGHT && t->worker == serial) {
            h.inflight++;
            h.of_group += group && t->group == group;
        }
    return h;
}

uint32_t zp_vent_bisect_front(const zp_vent_tasks_t *tasks, zp_vent_job_t *j)
{
    uint64_t key;
    while (zp_iddeque_pop_front(&j->ready, &key)) {
        zp_vent_task_t *t = zp_vent_tasks_get(tasks, key);
        if (!t || t->state != ZP_VENT_QUEUED)
            continue; /* committed or given up meanwhile */
        zp_iddeque_push_front(&j->ready, key); /* popped just now: room */
        return t->group;
    }
    return 0;
}

size_t zp_vent_bisect_collect(zp_vent_tasks_t *tasks, zp_vent_job_t *j,
                              uint32_t group, size_t max, uint64_t max_bytes,
                              zp_vent_task_t **out)
{
    size_t n = 0, bytes = 0;
    uint64_t key;
    while (n < max && bytes < max_bytes &&
           zp_iddeque_pop_front(&j->ready, &key)) {
        zp_vent_task_t *t = zp_vent_tasks_get(tasks, key);
        if (!t || t->state != ZP_VENT_QUEUED)
            continue;
        if (t->group != group) {
            zp_iddeque_push_front(&j->ready, key);
            break;
        }
        out[n++] = t;
        bytes += t->len;
    }
    return n;
}
