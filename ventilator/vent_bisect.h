/* vent_bisect: finding the task that kills the worker running it (a
 * plugin calling exit() under --isolation none) by bisection. The tasks a
 * lost worker held become suspects, split into up to ZP_VENT_BISECT_WAYS
 * groups; a suspect group is sent only to a worker holding nothing else,
 * and that worker gets nothing else until the group is committed. A group
 * that dies again is split again, so the killer ends up alone; a task
 * that was alone on a worker that died ZP_VENT_ALONE_LOSSES times is
 * quarantined (worker_lost), and the others run again, uncharged. The
 * task table holds the marks (zp_vent_task_t.group, .alone); the shell
 * (vent_shell_workers.c) carries the decisions out. */
#ifndef ZP_VENT_BISECT_H
#define ZP_VENT_BISECT_H

#include "vent_retry.h"
#include "vent_tasks.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZP_VENT_BISECT_WAYS  8u
#define ZP_VENT_ALONE_LOSSES 2u

/* The group (0-based, of ways) of the i-th of n tasks lost together. */
size_t zp_vent_bisect_part(size_t i, size_t n, size_t ways);

/* Requeues t, lost with its worker (why: which and how), as a member of
 * suspect group; alone: the worker held only t. Gives it up, quarantined,
 * when it has been alone ZP_VENT_ALONE_LOSSES times or lost ZP_MAX_LOSSES
 * times. */
zp_vent_retry_result_t zp_vent_bisect_requeue(zp_vent_task_t *t, uint32_t group,
                                              bool alone, const char *why);

/* What a worker holds in flight: every task, and those of group. */
typedef struct {
    size_t inflight, of_group;
} zp_vent_holding_t;
zp_vent_holding_t zp_vent_bisect_holding(const zp_vent_tasks_t *tasks,
                                         uint64_t serial, uint32_t group);

/* The suspect group of j's first queued task, 0 when it is none (or the
 * queue is empty). Keys of tasks no longer queued are dropped. */
uint32_t zp_vent_bisect_front(const zp_vent_tasks_t *tasks, zp_vent_job_t *j);

/* As zp_vent_tasks_collect, but only tasks of group (0: not suspects),
 * stopping at the first task of another. */
size_t zp_vent_bisect_collect(zp_vent_tasks_t *tasks, zp_vent_job_t *j,
                              uint32_t group, size_t max, uint64_t max_bytes,
                              zp_vent_task_t **out);

#endif
