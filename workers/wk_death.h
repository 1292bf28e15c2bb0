/* wk_death: what an executor's death means, as pure policy: its cause,
 * which task of the batch it was running is charged, whether that task
 * may run again or is quarantined as poison, and which tasks run again.
 * The supervisor (wk_exec) gathers the facts and carries the decision
 * out. */
#ifndef ZP_WK_DEATH_H
#define ZP_WK_DEATH_H

#include "zp_cause.h"
#include "zp_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Executors dying before they are ready, in a row, before the worker
 * gives up. */
#define ZP_WK_MAX_START_FAILS 3u
/* No task is charged. */
#define ZP_WK_NO_CULPRIT SIZE_MAX

/* How it died. */
typedef struct {
    bool killed_for_timeout; /* the worker killed it past a deadline */
    int wait_status;         /* from waitpid */
    uint64_t vm_bytes;       /* address space in use when it crashed */
    uint64_t memory_limit;   /* the executor's limit, 0 = none */
    bool input_write;        /* it faulted writing to its sealed inputs */
} zp_wk_exit_t;

/* What it was doing, from the progress page and the supervisor's books.
 * Batch positions count from the start of the current batch. */
typedef struct {
    bool busy;         /* a batch was current (and is known) */
    bool running;      /* the page says a plugin call was running */
    uint64_t page_seq; /* frames the executor took (page) */
    uint64_t cur_seq;  /* the current batch's frame number */
    size_t sent_base;  /* position of the first task sent to it */
    size_t index;      /* running task's position in what was sent */
    size_t cur_done;   /* tasks of the batch with results */
    size_t cur_n;      /* tasks in the batch */
} zp_wk_inflight_t;

/* The verdict on the charged task. */
typedef struct {
    uint32_t attempt; /* the attempt that died (1-based) */
    bool retryable;
    bool quarantined; /* killed executors ZP_POISON_DEATHS times */
} zp_wk_charge_t;

/* The cause: "timeout" when killed for it, the signal's (or
 * "resource_limit" when the address space was within 10% of the limit),
 * else "executor_exit"; how (NUL-terminated, at most howlen) says it in
 * words for the log and the error text (and that the plugin wrote to its
 * read-only input, when it did). */
zp_cause_t zp_wk_death_cause(const zp_wk_exit_t *exit, char *how,
                             size_t howlen);
/* The batch position of the task charged with the death, or
 * ZP_WK_NO_CULPRIT when it died between tasks or before taking the
 * current batch. */
size_t zp_wk_death_culprit(const zp_wk_inflight_t *f);
/* The charged task's record: its attempt (task_attempt, 0 meaning 1),
 * quarantined on its ZP_POISON_DEATHS-th death, else retryable unless the
 * memory limit killed it. */
zp_wk_charge_t zp_wk_death_charge(zp_cause_t cause, uint32_t task_attempt);
/* Moves tasks[culprit] to tasks[done], the others keeping their order,
 * and returns done + 1: the culprit has its record, tasks[done + 1..] run
 * again (their results died with the executor). */
size_t zp_wk_death_rotate(Zpipe__V1__Task **tasks, size_t done, size_t culprit);
/* Whether the running task is past its deadline at now (monotonic µs):
 * its own deadline_ms, else default_ms; neither set means never. */
bool zp_wk_death_overdue(uint64_t deadline_ms, uint64_t default_ms,
                         uint64_t started_us, uint64_t now);
/* What a busy executor may run before the worker looks again: the
 * tasks written to it and not yet started could include one with a
 * deadline of min_ms (0: none has one) or with none (unbounded). */
typedef struct {
    uint64_t min_ms;
    bool unbounded;
} zp_wk_horizon_t;

/* When (monotonic µs) the worker must next look at a busy executor, so
 * that no deadline and no stall is seen late: the running task's (when
 * running: started_us, its own deadline_ms or 0), and the earliest a task
 * starting from now on can be due (horizon). default_ms: the worker's
 * --deadline-ms; stall_us: the stall limit now (0: stalls not checked),
 * stall_floor_us the least it can be. UINT64_MAX: no need to look. Until
 * then the worker sleeps, rather than waking every few milliseconds. */
uint64_t zp_wk_death_next_due(bool running, uint64_t started_us,
                              uint64_t deadline_ms, uint64_t default_ms,
                              uint64_t stall_us, uint64_t stall_floor_us,
                              zp_wk_horizon_t horizon, uint64_t now);
/* Whether an executor that ended with wait_status was stopped with its
 * worker rather than crashed: the worker is stopping and the executor
 * died of the signal that stops it (SIGTERM or SIGINT, sent to every
 * process of a job by a batch system or a shell). Such a death charges
 * no task. */
bool zp_wk_death_with_worker(int wait_status, bool worker_stopping);
/* Whether the worker gives up after start_fails executors in a row died
 * before they were ready. */
bool zp_wk_death_fatal(unsigned start_fails);

#endif
