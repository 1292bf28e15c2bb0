/* wk_exec_park: an executor whose task is stalled (no deadline, far
 * beyond this worker's usual call time, see wk_stall.h) is parked: it is
 * fed nothing more and keeps running that task, while a fresh executor
 * runs the tasks behind it. The stalled task is not failed by the worker:
 * its result is taken from the parked executor whenever it comes (then
 * that executor is killed, as anything it runs after is run elsewhere);
 * if the parked executor dies first, the task is charged as any death. */
#define _GNU_SOURCE
#include "wk_exec.h"
#include "wk_exec_int.h"
#include "wk_death.h"
#include "zp_codec.h"
#include "zp_frame.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The batch position of the running task, or ZP_WK_NO_CULPRIT. */
static size_t s_running(zp_wk_exec_t *self)
{
    zp_wk_progress_t *p = self->child.progress;
    zp_wk_inflight_t f = {
        .busy = true,
        .running = atomic_load(&p->busy) != 0,
        .page_seq = atomic_load(&p->seq),
        .cur_seq = self->cur_seq,
        .sent_base = self->sent_base,
        .index = (size_t)atomic_load(&p->index),
        .cur_done = self->cur_done,
        .cur_n = self->cur_n,
    };
    return zp_wk_death_culprit(&f);
}

int zp_wk_exec__park(zp_wk_exec_t *self)
{
    /* Results it wrote before the stall are taken first. */
    if (!zp_wk_exec__read(self) || self->state != ZP_WK_EXEC_RUNNING)
        return 0; /* it died or finished meanwhile: the usual paths */
    size_t at = s_running(self);
    if (at == ZP_WK_NO_CULPRIT || zp_wk_exec__decode_current(self) < 0)
        return 0;
    /* As big as the executor's own reader: its result may be large. */
    zp_frame_reader_t *reader =
        zp_frame_reader_new(self->cfg->max_frame + 65536);
    char *job = strdup(self->cur_job);
    if (!reader || !job) {
        zp_frame_reader_destroy(&reader);
        free(job);
        return 0; /* out of memory: wait for it, as before */
    }
    Zpipe__V1__Task *t = self->cur[at];
    uint64_t now = zp_mono_us();
    zp_wk_parked_t *pk = &self->parked[self->n_parked++];
    *pk = (zp_wk_parked_t){
        .child = self->child,
        .reader = reader,
        .job = job,
        .task_id = t->task_id,
        .lease = t->lease,
        .attempt = t->attempt ? t->attempt : 1,
        .since_us = atomic_load(&self->child.progress->start_us),
    };
    self->parked_total++;
    zp_warn("task %s/%llu has run %.1f s (stall limit %.1f s, no deadline): "
            "executor pid %d keeps it; a fresh one runs the %zu tasks of its "
            "batch behind it and the %zu batches queued (%zu parked)",
            job, (unsigned long long)t->task_id,
            (double)(now - pk->since_us) / 1e6,
            (double)zp_wk_stall_limit_us(&self->stall) / 1e6,
            (int)self->child.pid, self->cur_n - self->cur_done - 1,
            zp_wk_queue_len(self->queue) + (self->has_next ? 1 : 0),
            self->n_parked);
    /* The stalled task is out of the batch (its record comes from the
     * parked executor); what it was sent after it goes to the new one. */
    self->cur_done = zp_wk_death_rotate(self->cur, self->cur_done, at);
    if (self->has_next) {
        size_t next_n = self->next_batch.n;
        if (zp_wk_queue_push_front(self->queue, &self->next_batch) < 0) {
            zp_error("out of memory requeueing a batch of %zu tasks", next_n);
            zp_wk_batch_close(&self->next_batch);
        }
        self->has_next = false;
    }
    self->child = (zp_wk_child_t){.fd = -1};
    zp_wk_exec__set_state(self, ZP_WK_EXEC_DOWN);
    if (zp_wk_exec_start(self) < 0)
        return -1;
    if (self->cur_done < self->cur_n)
        return zp_wk_exec__set_state(self, ZP_WK_EXEC_RECOVERING);
    return 0;
}

/* A record for pk's task, counted done as a task run here. */
static zp_wk_done_t *s_record(zp_wk_exec_t *self, const zp_wk_parked_t *pk)
{
    zp_wk_done_t *d =
        zp_wk_results_push(self->env.results, pk->job, zp_mono_us());
    if (!d) {
        self->env.flush(self->env.arg);
        d = zp_wk_results_push(self->env.results, pk->job, zp_mono_us());
    }
    if (d) {
        d->task_id = pk->task_id;
        d->lease = pk->lease;
    }
    return d;
}

/* Closes d: the books, then sends it and grants credit. */
static void s_close(zp_wk_exec_t *self, zp_wk_done_t *d)
{
    zp_wk_results_finish(self->env.results, d);
    zp_wk_credit_done(self->env.credit, 1);
    zp_wk_exec__observe(self, d->elapsed_us);
    self->env.flush(self->env.arg);
    self->env.grant(self->env.arg);
}

/* Takes pk's result for its task from frame, if there. True when taken. */
static bool s_take(zp_wk_exec_t *self, zp_wk_parked_t *pk, const char *data,
                   size_t len)
{
    zp_arena_reset(self->arena);
    zp_message_t *m =
        zp_decode(self->arena, data, len, self->cfg->max_frame + 65536);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        return false;
    const Zpipe__V1__ResultBatch *rb = m->result_batch;
    for (size_t i = 0; i < rb->n_results; i++) {
        const Zpipe__V1__Result *r = rb->results[i];
        if (r->task_id != pk->task_id)
            continue; /* ran again elsewhere */
        zp_wk_done_t *d = s_record(self, pk);
        if (!d)
            return true; /* left to the ventilator's lease */
        zp_wk_exec__copy_result(self, d, r);
        s_close(self, d);
        return true;
    }
    return false;
}

/* pk died before its task's result: the task is charged with the death. */
static void s_charge(zp_wk_exec_t *self, zp_wk_parked_t *pk, int status)
{
    char how[96];
    zp_wk_exit_t exit = {.wait_status = status};
    zp_cause_t cause = zp_wk_death_cause(&exit, how, sizeof how);
    zp_wk_charge_t c = zp_wk_death_charge(cause, pk->attempt);
    zp_warn("task %s/%llu: %s in a parked executor (attempt %u)", pk->job,
            (unsigned long long)pk->task_id, how, c.attempt);
    zp_wk_done_t *d = s_record(self, pk);
    if (!d)
        return;
    d->attempt = c.attempt;
    d->status = ZPIPE_ERROR;
    d->cause = cause;
    d->retryable = c.retryable;
    d->quarantined = c.quarantined;
    d->start_us = zp_now_us();
    zp_buf_printf(zp_wk_results_err(self->env.results), "%s on attempt %u", how,
                  c.attempt);
    s_close(self, d);
}

/* Ends parked executor i (killed, reaped) and forgets it. */
static void s_end(zp_wk_exec_t *self, size_t i, bool charge)
{
    zp_wk_parked_t *pk = &self->parked[i];
    int status = 0;
    if (charge) { /* it died by itself (or sent garbage): how */
        close(pk->child.fd);
        pk->child.fd = -1;
        /* A dead child's status stays as it was; a live one (a frame it
         * could not have sent) must not block this loop in waitpid. */
        kill(pk->child.pid, SIGKILL);
        while (waitpid(pk->child.pid, &status, 0) < 0 && errno == EINTR)
            ;
        pk->child.pid = 0;
        s_charge(self, pk, status);
    } else if (pk->child.pid > 0)
        kill(pk->child.pid, SIGKILL);
    zp_wk_spawn_stop(&pk->child);
    zp_frame_reader_destroy(&pk->reader);
    free(pk->job);
    self->parked[i] = self->parked[--self->n_parked];
}

/* Reads parked executor pk; 1 when its task's result was taken, -1 when
 * it died without it, 0 otherwise. */
static int s_poll_one(zp_wk_exec_t *self, zp_wk_parked_t *pk)
{
    bool open = true;
    /* Out of memory: what it holds is taken, the rest waits. */
    (void)zp_wk_exec__fill(pk->reader, pk->child.fd, &open);
    const char *frame;
    size_t len;
    int rc;
    while ((rc = zp_frame_reader_next(pk->reader, &frame, &len)) > 0) {
        uint64_t seq;
        if (!zp_wk_exec__deref(&pk->child, &frame, &len, &seq))
            return -1; /* garbage: charged as a death */
        bool took = s_take(self, pk, frame, len);
        zp_wk_exec__release(&pk->child, seq);
        zp_wk_exec__publish(&pk->child);
        if (took)
            return 1;
    }
    return open && rc == 0 ? 0 : -1;
}

void zp_wk_exec__poll_parked(zp_wk_exec_t *self)
{
    for (size_t i = 0; i < self->n_parked;) {
        zp_wk_parked_t *pk = &self->parked[i];
        int r = s_poll_one(self, pk);
        if (r == 0) {
            i++;
            continue;
        }
        if (r > 0)
            zp_info("task %s/%llu finished after %.1f s in parked executor "
                    "pid %d; stopping that executor",
                    pk->job, (unsigned long long)pk->task_id,
                    (double)(zp_mono_us() - pk->since_us) / 1e6,
                    (int)pk->child.pid);
        s_end(self, i, r < 0);
    }
}

void zp_wk_exec__stop_parked(zp_wk_exec_t *self)
{
    while (self->n_parked)
        s_end(self, self->n_parked - 1, false);
}
