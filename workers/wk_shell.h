/* wk_shell: the worker's shell, shared by its files (private to workers/):
 * the sockets and the state modules it wires together. worker.c holds
 * what arrives from the ventilator, set-up, the loop of phases and
 * teardown; wk_shell_send.c what the worker sends (hello, credit and
 * heartbeats to the ventilator, results to the sink) and the hooks the
 * runner and the executor call after tasks. */
#ifndef ZP_WK_SHELL_H
#define ZP_WK_SHELL_H

#include "worker.h"
#include "wk_credit.h"
#include "wk_exec.h"
#include "wk_results.h"
#include "wk_runner.h"
#include "zp_codec.h"
#include "zp_curve.h"
#include "zp_metrics.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The shell's state: one per zp_worker_run, on its stack; every file of
 * the shell takes it. */
typedef struct {
    const zp_worker_config_t *cfg; /* borrowed, outlives the run */
    char *id;
    void *ctx, *tasks, *results; /* tasks: DEALER (credit) or PULL (push) */
    void *monitor; /* the tasks socket's connects and disconnects (credit) */
    bool connected_once;
    bool vent_up; /* connected to the ventilator, as the monitor last said */
    zp_curve_t *curve;
    bool credit_mode, isolated;
    zp_wk_runner_t *runner; /* loads the plugins; runs them when !isolated */
    zp_wk_exec_t *exec;     /* runs them when isolated */
    zp_wk_results_t *pending;
    zp_wk_credit_t credit;
    zp_arena_t *arena;
    zp_task_view_t view; /* in process: batches decoded without copies */
    zp_buf_t scratch;
    uint64_t last_sent_us; /* to the ventilator, for heartbeats */
    uint64_t bad_messages;
    uint64_t drain_until;     /* stopping: when to give up the batch */
    zp_metrics_t *metrics;    /* NULL unless --metrics */
    zp_histogram_t call_hist; /* plugin call times, seconds */
    bool fatal;
} zp_wk_shell_t;

/* ---- wk_shell_send.c: to the ventilator ---- */

/* Sends a Hello (id, plugins, window, first credit) on the tasks socket,
 * blocking. 0, or -1 when the send failed (logged). */
int zp_wk_shell_send_hello(zp_wk_shell_t *w);

/* Sends a Heartbeat if the socket takes it now (never blocks). */
void zp_wk_shell_send_heartbeat(zp_wk_shell_t *w);

/* Grants the credit wk_credit says is due (credit dispatch, not while
 * stopping). arg: the shell; a wk_exec grant hook. */
void zp_wk_shell_grant(void *arg);

/* ---- wk_shell_send.c: to the sink ---- */

/* Sends the pending results as one ResultBatch and clears them (also when
 * the send failed: logged). 0 or -1. */
int zp_wk_shell_flush_results(zp_wk_shell_t *w);

/* zp_wk_shell_flush_results as a hook; arg: the shell. */
void zp_wk_shell_flush_hook(void *arg);

/* Sends an executor's result frame (msg, taken: closed whatever happens;
 * n results) to the sink as it is; arg: the shell. */
void zp_wk_shell_forward(void *arg, zmq_msg_t *msg, size_t n);

/* Records one plugin call's time in the metrics; arg: the shell. */
void zp_wk_shell_observe(void *arg, uint64_t elapsed_us);

/* In process, after each task (d borrowed for the call): the books, then
 * results and credit when due, and a heartbeat when one is due in a long
 * batch. Returns true when it sent something. arg: the shell. */
bool zp_wk_shell_task_done(void *arg, const zp_wk_done_t *d, size_t payload_len,
                           uint64_t end);

#endif
