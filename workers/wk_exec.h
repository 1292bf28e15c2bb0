/* wk_exec: a worker's executor as its worker supervises it: batches fed
 * to it (one running, one written behind it), its result frames taken
 * back, its death charged to the task it was running and the rest of the
 * batch given to a fresh one, tasks past their deadline killed. What to
 * do with results is the worker's: it is reached through the env. */
#ifndef ZP_WK_EXEC_H
#define ZP_WK_EXEC_H

#include "wk_credit.h"
#include "wk_queue.h"
#include "wk_results.h"
#include "wk_spawn.h"
#include "worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* Executors at most left running stalled tasks (see wk_stall.h): past
 * this, a stalled task is waited for, as before. */
#define ZP_WK_MAX_PARKED 4u

/* An executor's exit status when it could not load or initialise the
 * worker's plugins (3 is any other failure). Before any executor of the
 * worker was ready, it stops the worker: the next would fail alike. */
#define ZP_WK_EXEC_EXIT_REFUSED 5

/* The worker as its executor's supervisor reaches it. */
typedef struct {
    zp_wk_results_t *results; /* borrowed: the worker's pending results */
    zp_wk_credit_t *credit;   /* borrowed: the worker's books */
    /* Sends an executor's result frame (n results) to the sink as it is;
     * takes msg (closed whatever happens). */
    void (*forward)(void *arg, zmq_msg_t *msg, size_t n);
    /* Sends the pending results. */
    void (*flush)(void *arg);
    /* One plugin call took elapsed_us (for the histogram). */
    void (*observe)(void *arg, uint64_t elapsed_us);
    /* Grants credit as due. */
    void (*grant)(void *arg);
    void *arg;
} zp_wk_exec_env_t;

typedef struct zp_wk_exec zp_wk_exec_t;

/* A supervisor for executors of worker id loading the n_files plugin
 * files (copied; cfg and id borrowed until it is destroyed; env copied).
 * No executor runs until zp_wk_exec_start. Caller owns the result; NULL
 * on allocation failure. */
zp_wk_exec_t *zp_wk_exec_new(const zp_worker_config_t *cfg, const char *id,
                             const char *const *files, size_t n_files,
                             bool credit_mode, const zp_wk_exec_env_t *env);
/* Kills the executor at once, before it says anything (its worker gives
 * up before it runs a task). */
void zp_wk_exec_abandon(zp_wk_exec_t *self);
/* Stops the executor (zp_wk_spawn_stop), drops queued batches, frees;
 * nulls the caller's pointer. */
void zp_wk_exec_destroy(zp_wk_exec_t **self_p);

/* Starts an executor. Returns 0, or -1 having logged why. */
int zp_wk_exec_start(zp_wk_exec_t *self);

/* Queues a batch (its head scanned: a TaskBatch of b->n tasks, its
 * payload frames checked); takes its content, leaving b empty. Returns 0
 * or -1 on allocation failure. */
int zp_wk_exec_enqueue(zp_wk_exec_t *self, zp_wk_batch_t *b);
/* The most tasks held rose to held: the executor's result batches say
 * so. */
void zp_wk_exec_note_max_held(zp_wk_exec_t *self, uint64_t held);

/* The socket to poll, -1 when no executor runs; whether there are bytes
 * for it waiting to be written. */
int zp_wk_exec_fd(const zp_wk_exec_t *self);
bool zp_wk_exec_wants_write(const zp_wk_exec_t *self);
/* Whether it has a batch to finish. */
bool zp_wk_exec_busy(const zp_wk_exec_t *self);
/* Whether an executor is up and has said hello: tasks sent now start at
 * once (the worker asks for none before, see wk_shell_send.c). */
bool zp_wk_exec_ready(const zp_wk_exec_t *self);
/* Executors started again after one died. */
uint64_t zp_wk_exec_restarts(const zp_wk_exec_t *self);
/* Executors parked with a stalled task, ever / now. */
uint64_t zp_wk_exec_parked(const zp_wk_exec_t *self, size_t *now);
/* Output or error text its plugins gave outside a process call, refused
 * (zp_wk_runner_refused), in all its executors so far. */
uint64_t zp_wk_exec_refused_appends(const zp_wk_exec_t *self);

/* The socket is writable: writes what it takes. */
void zp_wk_exec_on_writable(zp_wk_exec_t *self);
/* The socket is readable: takes its results; on its death charges the
 * task and starts another. Returns 0, or -1 when the worker cannot go on
 * (executors keep dying before they are ready, or cannot be started). */
int zp_wk_exec_on_readable(zp_wk_exec_t *self);
/* The worker is stopping (SIGTERM, SIGINT): an executor that dies of the
 * same signal now (a batch system or a shell signals every process of
 * the job) was stopped with it, not crashed: its running task is not
 * charged (no attempt, no failure record), it is not restarted, and its
 * unfinished tasks are left to the ventilator, as the worker's are. */
void zp_wk_exec_stop_soon(zp_wk_exec_t *self);
/* When (monotonic µs) zp_wk_exec_tick must next run so that no
 * deadline or stall is seen late; UINT64_MAX when nothing is due (the
 * executor's output wakes the worker). */
uint64_t zp_wk_exec_next_due_us(const zp_wk_exec_t *self, uint64_t now);
/* Kills an executor whose task is past its deadline; parks one whose
 * task (with no deadline) is stalled, starting a fresh one for the tasks
 * behind it; takes parked executors' results; with feed, hands it queued
 * batches. Returns 0, or -1 when no executor can be started. */
int zp_wk_exec_tick(zp_wk_exec_t *self, bool feed);

#endif
