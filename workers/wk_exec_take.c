/* wk_exec_take: what the executor sends back (result frames, its hello)
 * and its death, charged to the task it was running. */
#define _GNU_SOURCE
#include "wk_exec.h"
#include "wk_exec_int.h"
#include "wk_death.h"
#include "wk_queue.h"
#include "zp_codec.h"
#include "zp_frame.h"
#include "zp_log.h"
#include "zp_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- taking its results ---------------------------------------------- */

/* Closes d, a result of the current batch with payload_len bytes of
 * input: the books as for a task run here. */
static void s_finish(zp_wk_exec_t *self, zp_wk_done_t *d, size_t payload_len)
{
    zp_wk_results_finish(self->env.results, d);
    zp_wk_credit_done(self->env.credit, 1);
    zp_wk_credit_observe(self->env.credit, d->elapsed_us, payload_len, 1);
    zp_wk_exec__observe(self, d->elapsed_us);
}

void zp_wk_exec__observe(void *arg, uint64_t elapsed_us)
{
    zp_wk_exec_t *self = arg;
    zp_wk_stall_observe(&self->stall, elapsed_us);
    self->env.observe(self->env.arg, elapsed_us);
}

/* A pending record for job, sending what is pending first if need be. */
static zp_wk_done_t *s_push(zp_wk_exec_t *self, const char *job)
{
    zp_wk_done_t *d = zp_wk_results_push(self->env.results, job, zp_mono_us());
    if (!d) {
        self->env.flush(self->env.arg);
        d = zp_wk_results_push(self->env.results, job, zp_mono_us());
    }
    return d;
}

/* The books after n results of the current batch. */
static void s_took(zp_wk_exec_t *self, size_t n)
{
    atomic_store(&self->child.progress->completed, self->env.credit->completed);
    self->cur_done =
        self->cur_done + n < self->cur_n ? self->cur_done + n : self->cur_n;
    zp_wk_exec__advance(self);
    self->env.grant(self->env.arg);
}

void zp_wk_exec__copy_result(zp_wk_exec_t *self, zp_wk_done_t *d,
                             const Zpipe__V1__Result *r)
{
    d->task_id = r->task_id;
    d->attempt = r->attempt;
    d->status =
        r->status == ZPIPE__V1__STATUS__STATUS_OK ? ZPIPE_OK : ZPIPE_ERROR;
    d->retryable = r->retryable;
    d->cause = zp_cause_parse(r->cause);
    d->start_us = r->start_us;
    d->elapsed_us = r->elapsed_us;
    d->queued_us = r->queued_us;
    d->dispatch_us = r->dispatch_us;
    d->lease = r->lease;
    zp_buf_append(zp_wk_results_out(self->env.results), r->output.data,
                  r->output.len);
    if (r->error)
        zp_buf_append(zp_wk_results_err(self->env.results), r->error,
                      strlen(r->error));
}

bool zp_wk_exec__fill(zp_frame_reader_t *reader, int fd, bool *open)
{
    for (;;) {
        char *dst;
        size_t room;
        if (zp_frame_reader_space(reader, 1 << 16, &dst, &room) < 0)
            return false;
        ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            *open = false;
            return true;
        }
        zp_frame_reader_commit(reader, (size_t)n);
    }
}

/* A result batch the scan refused: decoded, taken result by result. */
static void s_on_results(zp_wk_exec_t *self, const Zpipe__V1__ResultBatch *rb)
{
    const char *job = rb->job_id ? rb->job_id : "";
    size_t taken = 0;
    for (size_t i = 0; i < rb->n_results; i++) {
        const Zpipe__V1__Result *r = rb->results[i];
        zp_wk_done_t *d = s_push(self, job);
        if (!d)
            continue;
        zp_wk_exec__copy_result(self, d, r);
        s_finish(self, d, self->cur_bytes);
        taken++;
    }
    self->env.flush(self->env.arg);
    s_took(self, taken);
}

bool zp_wk_exec__deref(zp_wk_child_t *child, const char **data, size_t *len,
                       uint64_t *seq)
{
    *seq = 0;
    if (!zp_wk_ref_is(*data, *len))
        return true;
    zp_wk_ref_t ref;
    if (!child->out ||
        !zp_wk_ref_parse(*data, *len, ZP_WK_REF_RESULTS,
                         zp_wk_region_size(child->out), &ref) ||
        ref.seq != child->out_seq + 1)
        return false;
    child->out_seq = *seq = ref.seq;
    zp_wk_region_received(child->out, ref.seq);
    *data = (const char *)zp_wk_region_base(child->out) + ref.off;
    *len = (size_t)ref.len;
    return true;
}

void zp_wk_exec__publish(zp_wk_child_t *child)
{
    if (child->out && child->progress)
        atomic_store(&child->progress->results_released,
                     zp_wk_region_released(child->out));
}

void zp_wk_exec__release(zp_wk_child_t *child, uint64_t seq)
{
    if (seq)
        zp_wk_region_release(child->out, seq);
}

/* A message of the result frame (len bytes at data, seq in the results
 * region or 0): sent from the region without a copy, else a copy. 0, or
 * -1 when out of memory. */
static int s_result_msg(zp_wk_exec_t *self, zmq_msg_t *msg, const char *data,
                        size_t len, uint64_t seq)
{
    void *hint = NULL;
    if (seq) {
        hint = zp_wk_region_hold(self->child.out, seq);
        if (hint && zmq_msg_init_data(msg, (void *)data, len, zp_wk_region_free,
                                      hint) == 0)
            return 0;
    }
    int rc = zmq_msg_init_size(msg, len);
    if (rc == 0)
        memcpy(zmq_msg_data(msg), data, len);
    if (hint) /* its frame copied: as if sent */
        zp_wk_region_free(NULL, hint);
    else
        zp_wk_exec__release(&self->child, seq);
    return rc;
}

/* Keeps a result's elapsed_us while its frame is scanned (the scan's
 * each): observed only once the whole frame is accepted. */
static void s_keep_elapsed(void *arg, uint64_t elapsed_us)
{
    zp_wk_exec_t *self = arg;
    if (self->elapsed_n == self->elapsed_cap) {
        size_t cap = self->elapsed_cap ? 2 * self->elapsed_cap : 1024;
        uint64_t *a = realloc(self->elapsed, cap * sizeof *a);
        if (!a)
            return; /* the histograms miss it; nothing else does */
        self->elapsed = a;
        self->elapsed_cap = cap;
    }
    self->elapsed[self->elapsed_n++] = elapsed_us;
}

/* Takes one frame from the executor. */
static void s_on_frame(zp_wk_exec_t *self, const char *data, size_t len)
{
    size_t n;
    uint64_t elapsed, seq;
    size_t max = self->cfg->max_frame + 65536;
    if (!zp_wk_exec__deref(&self->child, &data, &len, &seq)) {
        zp_error("executor pid %d referred to a frame it did not place; "
                 "restarting it",
                 (int)self->child.pid);
        kill(self->child.pid, SIGKILL);
        self->discard = true;
        return;
    }
    self->elapsed_n = 0;
    if (zp_scan_result_batch(data, len, max, &n, &elapsed, s_keep_elapsed,
                             self) == 0) {
        /* The common case: forward it untouched, keep the books. */
        self->env.flush(self->env.arg);
        zmq_msg_t msg;
        if (s_result_msg(self, &msg, data, len, seq) == 0)
            self->env.forward(self->env.arg, &msg, n);
        else
            zp_error("out of memory forwarding %zu results", n);
        zp_wk_credit_done(self->env.credit, n);
        if (n) {
            /* Sized by the tasks' own time: on a machine with more busy
             * executors than cores, their wall time is mostly waiting. */
            uint64_t wait =
                self->child.progress
                    ? atomic_load(&self->child.progress->runq_wait_us)
                    : 0;
            uint64_t waited =
                wait > self->child.runq_seen ? wait - self->child.runq_seen : 0;
            self->child.runq_seen = wait;
            elapsed = zp_wk_credit_busy_us(elapsed, waited);
            zp_wk_credit_observe(self->env.credit, elapsed / n, self->cur_bytes,
                                 n);
            for (size_t i = 0; i < self->elapsed_n; i++)
                zp_wk_exec__observe(self, self->elapsed[i]);
        }
        s_took(self, n);
        return;
    }
    zp_arena_reset(self->arena);
    zp_message_t *m = zp_decode(self->arena, data, len, max);
    if (!m) {
        zp_error("executor pid %d sent a malformed frame; restarting it",
                 (int)self->child.pid);
        kill(self->child.pid, SIGKILL);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HELLO) {
        self->start_fails = 0;
        self->ever_ready = true;
        zp_debug("executor pid %d ready", (int)self->child.pid);
        if (self->state == ZP_WK_EXEC_STARTING)
            zp_wk_exec__set_state(self, ZP_WK_EXEC_IDLE);
        else if (self->state == ZP_WK_EXEC_RECOVERING) {
            zp_wk_exec__set_state(self, ZP_WK_EXEC_RUNNING);
            zp_wk_exec__send_current(self, false);
        }
        self->env.grant(self->env.arg); /* withheld until now */
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        s_on_results(self, m->result_batch);
    zp_wk_exec__release(&self->child, seq); /* decoded: copied out */
}

bool zp_wk_exec__read(zp_wk_exec_t *self)
{
    /* Closed: still take the results it wrote before dying, so its last
     * batch's culprit is known. */
    bool open = true;
    if (!zp_wk_exec__fill(self->reader, self->child.fd, &open))
        return false;
    const char *frame;
    size_t len;
    int rc;
    while (!self->discard &&
           (rc = zp_frame_reader_next(self->reader, &frame, &len)) != 0) {
        if (rc < 0) {
            zp_error("executor pid %d sent a malformed frame; restarting it",
                     (int)self->child.pid);
            kill(self->child.pid, SIGKILL);
            self->discard = true;
            break;
        }
        s_on_frame(self, frame, len);
    }
    if (self->discard)
        zp_frame_reader_reset(self->reader);
    zp_wk_exec__publish(&self->child);
    return open;
}

/* ---- its death ------------------------------------------------------- */

/* Gives the culprit (cur[culprit]) its failure record and counts it done;
 * the tasks before it ran but their results died with the executor: they
 * run again. */
static void s_charge(zp_wk_exec_t *self, size_t culprit, zp_cause_t cause,
                     const char *how)
{
    Zpipe__V1__Task *t = self->cur[culprit];
    zp_wk_charge_t c = zp_wk_death_charge(cause, t->attempt);
    zp_warn("task %s/%llu: %s (attempt %u)%s", self->cur_job,
            (unsigned long long)t->task_id, how, c.attempt,
            c.quarantined ? "; quarantined as poison" : "");
    zp_wk_done_t *d = s_push(self, self->cur_job);
    if (d) {
        d->task_id = t->task_id;
        d->attempt = c.attempt;
        d->status = ZPIPE_ERROR;
        d->cause = cause;
        d->retryable = c.retryable;
        d->quarantined = c.quarantined;
        d->start_us = zp_now_us();
        d->lease = t->lease;
        if (t->queued_us) { /* a traced task: its timeline goes on */
            d->queued_us = t->queued_us;
            d->dispatch_us = self->cur_dispatch_us;
        }
        zp_buf_printf(zp_wk_results_err(self->env.results),
                      "%s on attempt %u%s", how, c.attempt,
                      c.quarantined ? "; quarantined as a poison task after "
                                      "3 attempts"
                                    : "");
        s_finish(self, d, t->payload.len);
        self->env.flush(self->env.arg);
        atomic_store(&self->child.progress->completed,
                     self->env.credit->completed);
    }
    self->cur_done = zp_wk_death_rotate(self->cur, self->cur_done, culprit);
}

/* Reaps the dead executor and says how it died. */
static zp_cause_t s_reap(zp_wk_exec_t *self, char *how, size_t howlen)
{
    int status = 0;
    close(self->child.fd);
    self->child.fd = -1;
    while (waitpid(self->child.pid, &status, 0) < 0 && errno == EINTR)
        ;
    self->wait_status = status;
    zp_wk_exit_t exit = {
        .killed_for_timeout = self->killed_for_timeout,
        .wait_status = status,
        .vm_bytes = atomic_load(&self->child.progress->vm_bytes),
        .memory_limit = self->cfg->memory_limit,
        .input_write = atomic_load(&self->child.progress->input_write) != 0,
    };
    return zp_wk_death_cause(&exit, how, howlen);
}

/* The executor died: fail the task it was running, start a new one, and
 * give it what the old one left undone. Returns 0, or -1 when the worker
 * cannot go on. */
static int s_died(zp_wk_exec_t *self)
{
    zp_wk_progress_t *p = self->child.progress;
    char how[96];
    zp_cause_t cause = s_reap(self, how, sizeof how);
    bool was_ready = zp_wk_exec__ready(self), busy = zp_wk_exec__busy(self);
    zp_wk_exec__set_state(self, ZP_WK_EXEC_DOWN);
    self->restarts++;
    if (self->has_next) { /* never started: it goes back to the queue */
        size_t next_n = self->next_batch.n;
        if (zp_wk_queue_push_front(self->queue, &self->next_batch) < 0) {
            /* Its tasks are left to the ventilator's lease. */
            zp_error("out of memory requeueing a batch of %zu tasks", next_n);
            zp_wk_batch_close(&self->next_batch);
        }
        self->has_next = false;
    }
    if (zp_wk_death_with_worker(self->wait_status, self->stopping)) {
        zp_info("executor pid %d stopped by %s with its worker; %zu "
                "unfinished tasks are left to the ventilator",
                (int)self->child.pid, strsignal(WTERMSIG(self->wait_status)),
                busy ? self->cur_n - self->cur_done : (size_t)0);
        self->cur_done = self->cur_n;
        return 0;
    }
    if (busy && zp_wk_exec__decode_current(self) < 0) {
        zp_error("cannot decode the batch executor pid %d was running; its "
                 "%zu tasks are left to the ventilator's lease",
                 (int)self->child.pid, self->cur_n - self->cur_done);
        self->cur_done = self->cur_n;
        busy = false;
    }
    zp_wk_inflight_t f = {
        .busy = busy,
        .running = atomic_load(&p->busy) != 0,
        .page_seq = atomic_load(&p->seq),
        .cur_seq = self->cur_seq,
        .sent_base = self->sent_base,
        .index = (size_t)atomic_load(&p->index),
        .cur_done = self->cur_done,
        .cur_n = self->cur_n,
    };
    size_t culprit = zp_wk_death_culprit(&f);
    if (culprit != ZP_WK_NO_CULPRIT)
        s_charge(self, culprit, cause, how);
    else {
        zp_warn("executor pid %d: %s between tasks (%s)", (int)self->child.pid,
                how, was_ready ? "after it was ready" : "before it was ready");
        if (!was_ready)
            self->start_fails++;
    }
    /* No executor of this worker was ever ready and this one could not
     * initialise the plugins (only executors do; it logged why): the
     * next would fail the same way. */
    if (!self->ever_ready && !was_ready && WIFEXITED(self->wait_status) &&
        WEXITSTATUS(self->wait_status) == ZP_WK_EXEC_EXIT_REFUSED) {
        zp_error("the executor could not initialise the plugins (its message "
                 "is above); this worker cannot serve");
        return -1;
    }
    if (zp_wk_death_fatal(self->start_fails)) {
        zp_error("executors keep dying before they are ready (%u in a row); "
                 "this worker cannot serve",
                 self->start_fails);
        return -1;
    }
    if (zp_wk_exec_start(self) < 0)
        return -1;
    /* The rest of the batch is sent once the new executor is ready. */
    if (self->cur_done < self->cur_n)
        return zp_wk_exec__set_state(self, ZP_WK_EXEC_RECOVERING);
    return 0;
}

int zp_wk_exec_on_readable(zp_wk_exec_t *self)
{
    return zp_wk_exec__read(self) ? 0 : s_died(self);
}
