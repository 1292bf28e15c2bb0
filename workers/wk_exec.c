/* wk_exec: supervising the executor process (see wk_exec.h). */
#define _GNU_SOURCE
#include "wk_exec.h"
#include "wk_death.h"
#include "wk_queue.h"
#include "zp_codec.h"
#include "zp_frame.h"
#include "zp_log.h"
#include "zp_util.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The executor's lifecycle:
 *
 *   DOWN --start--> STARTING --hello--> IDLE <--all results--+
 *                      |                  |                  |
 *                      |                  +--a batch--> RUNNING
 *                      +--(died owing tasks)--> RECOVERING --hello--^
 *
 * and any state goes DOWN when the executor dies or is stopped; a dead
 * one is started again at once, RECOVERING when it owes the rest of the
 * batch it died in. */
typedef enum {
    S_DOWN,       /* no process */
    S_STARTING,   /* started; no hello yet; nothing owed */
    S_RECOVERING, /* started; no hello yet; owes the current batch's rest */
    S_IDLE,       /* ready, no batch */
    S_RUNNING,    /* ready, running the current batch */
} s_state_t;

static const char *const s_state_names[] = {"down", "starting", "recovering",
                                            "idle", "running"};

/* Legal transitions, a bit per target state. */
#define S_TO(st) (1u << (st))
static const unsigned s_legal[] = {
    [S_DOWN] = S_TO(S_STARTING),
    [S_STARTING] = S_TO(S_IDLE) | S_TO(S_RECOVERING) | S_TO(S_DOWN),
    [S_RECOVERING] = S_TO(S_RUNNING) | S_TO(S_DOWN),
    [S_IDLE] = S_TO(S_RUNNING) | S_TO(S_DOWN),
    [S_RUNNING] = S_TO(S_IDLE) | S_TO(S_DOWN),
};

struct zp_wk_exec {
    const zp_worker_config_t *cfg;
    const char *id;
    const zp_plugins_t *plugins;
    bool credit_mode;
    zp_wk_exec_env_t env;
    zp_wk_queue_t *queue; /* batches not yet given to it */
    zp_wk_child_t child;
    s_state_t state;
    bool killed_for_timeout;
    bool discard;     /* its output is garbage: read it until it dies */
    size_t sent_base; /* cur index of the first task it was sent */
    unsigned start_fails;
    zp_frame_reader_t *reader; /* bytes read, not yet a whole frame */
    /* Frames for it, written as its socket takes them: a blocking write
     * could wait on an executor itself blocked writing results to us. */
    zp_buf_t wbuf;
    size_t woff;
    /* The batch it is running: the ventilator's frame, decoded into
     * cur_arena only when an executor dies in it (cur is NULL until). */
    zmq_msg_t cur_frame;
    zp_arena_t *cur_arena;
    char *cur_job, *cur_plugin;
    uint64_t cur_dispatch_us; /* the batch's, for traced tasks' results */
    Zpipe__V1__Task **cur;
    size_t cur_n, cur_done, cur_bytes; /* cur_bytes: payload per task */
    /* One more batch written behind it, so the executor goes from batch
     * to batch without waiting for this process to be scheduled. */
    zmq_msg_t next_frame;
    size_t next_n;
    bool has_next;
    uint64_t sent_seq, cur_seq, next_seq; /* frames written to it */
    uint64_t restarts;
    zp_arena_t *arena; /* its frames decoded off the common path */
    zp_buf_t scratch;  /* a batch encoded afresh */
};

/* Moves to state to; refuses (-1) a transition not on the diagram. */
static int s_set_state(zp_wk_exec_t *self, s_state_t to)
{
    if (!(s_legal[self->state] & S_TO(to))) {
        zp_error("executor pid %d: no transition from %s to %s",
                 (int)self->child.pid, s_state_names[self->state],
                 s_state_names[to]);
        assert(!"illegal executor state transition");
        return -1;
    }
    self->state = to;
    return 0;
}

/* A batch is current (running, or owed by a new executor). */
static bool s_busy(const zp_wk_exec_t *self)
{
    return self->state == S_RUNNING || self->state == S_RECOVERING;
}

/* It said hello: batches can be written to it. */
static bool s_ready(const zp_wk_exec_t *self)
{
    return self->state == S_IDLE || self->state == S_RUNNING;
}

zp_wk_exec_t *zp_wk_exec_new(const zp_worker_config_t *cfg, const char *id,
                             const zp_plugins_t *plugins, bool credit_mode,
                             const zp_wk_exec_env_t *env)
{
    zp_wk_exec_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->id = id;
    self->plugins = plugins;
    self->credit_mode = credit_mode;
    self->env = *env;
    self->child.fd = -1;
    zmq_msg_init(&self->cur_frame);
    zmq_msg_init(&self->next_frame);
    self->queue = zp_wk_queue_new();
    self->reader = zp_frame_reader_new(cfg->max_frame + 65536);
    self->cur_arena = zp_arena_new();
    self->arena = zp_arena_new();
    if (!self->queue || !self->reader || !self->cur_arena || !self->arena)
        zp_wk_exec_destroy(&self);
    return self;
}

void zp_wk_exec_destroy(zp_wk_exec_t **self_p)
{
    zp_wk_exec_t *self = *self_p;
    if (!self)
        return;
    zp_wk_spawn_stop(&self->child);
    zp_wk_queue_destroy(&self->queue);
    zp_frame_reader_destroy(&self->reader);
    zp_arena_destroy(&self->cur_arena);
    zp_arena_destroy(&self->arena);
    zmq_msg_close(&self->cur_frame);
    zmq_msg_close(&self->next_frame);
    zp_buf_free(&self->wbuf);
    zp_buf_free(&self->scratch);
    free(self->cur_job);
    free(self->cur_plugin);
    free(self);
    *self_p = NULL;
}

int zp_wk_exec_start(zp_wk_exec_t *self)
{
    if (zp_wk_spawn(&self->child, self->cfg, self->id, self->plugins) < 0 ||
        s_set_state(self, S_STARTING) < 0)
        return -1;
    self->killed_for_timeout = false;
    self->discard = false;
    zp_frame_reader_reset(self->reader);
    self->wbuf.len = self->woff = 0;
    self->sent_seq = 0;
    zp_wk_progress_t *p = self->child.progress;
    const zp_wk_credit_t *c = self->env.credit;
    atomic_store(&p->window, self->credit_mode ? self->cfg->window : 0);
    atomic_store(&p->max_held, c->max_held);
    atomic_store(&p->completed, c->completed);
    return 0;
}

int zp_wk_exec_enqueue(zp_wk_exec_t *self, zmq_msg_t *frame, size_t n)
{
    return zp_wk_queue_push(self->queue, frame, n);
}

void zp_wk_exec_note_max_held(zp_wk_exec_t *self, uint64_t held)
{
    if (self->child.progress)
        atomic_store(&self->child.progress->max_held, held);
}

int zp_wk_exec_fd(const zp_wk_exec_t *self)
{
    return self->child.fd;
}

bool zp_wk_exec_wants_write(const zp_wk_exec_t *self)
{
    return self->woff < self->wbuf.len;
}

bool zp_wk_exec_busy(const zp_wk_exec_t *self)
{
    return s_busy(self);
}

uint64_t zp_wk_exec_restarts(const zp_wk_exec_t *self)
{
    return self->restarts;
}

/* ---- feeding it --------------------------------------------------------- */

/* Writes what the executor's socket takes now; false on an error (its
 * death then shows as the end of its output). */
static bool s_flush(zp_wk_exec_t *self)
{
    while (self->woff < self->wbuf.len) {
        ssize_t n =
            send(self->child.fd, self->wbuf.data + self->woff,
                 self->wbuf.len - self->woff, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        self->woff += (size_t)n;
    }
    self->wbuf.len = self->woff = 0;
    return true;
}

void zp_wk_exec_on_writable(zp_wk_exec_t *self)
{
    s_flush(self);
}

/* Queues one frame for the executor and writes what it can. */
static bool s_write(zp_wk_exec_t *self, const void *data, size_t len)
{
    if (zp_frame_append(&self->wbuf, data, len) < 0)
        return false;
    return s_flush(self);
}

/* Sends the current batch (cur[cur_done..]) to the executor: the frame as
 * the ventilator sent it when given (no re-encoding on the common path),
 * else encoded afresh (what a dead executor left undone). */
static int s_send_current(zp_wk_exec_t *self, const void *raw, size_t raw_len)
{
    if (!raw) {
        Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
        b.job_id = self->cur_job;
        b.plugin = self->cur_plugin;
        b.dispatch_us = self->cur_dispatch_us;
        b.tasks = self->cur + self->cur_done;
        b.n_tasks = self->cur_n - self->cur_done;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
        m.task_batch = &b;
        if (zp_encode(&m, &self->scratch) < 0)
            return -1;
        raw = self->scratch.data;
        raw_len = self->scratch.len;
    }
    self->sent_base = self->cur_done;
    self->cur_seq = ++self->sent_seq;
    return s_write(self, raw, raw_len) ? 0 : -1;
}

/* Decodes the current batch's frame, which only a dead executor needs:
 * which task it was running, what is left to send again. */
static int s_decode_current(zp_wk_exec_t *self)
{
    if (self->cur)
        return 0;
    zp_arena_reset(self->cur_arena);
    zp_message_t *m =
        zp_decode(self->cur_arena, zmq_msg_data(&self->cur_frame),
                  zmq_msg_size(&self->cur_frame), self->cfg->max_frame);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH ||
        m->task_batch->n_tasks != self->cur_n)
        return -1; /* scanned on arrival: cannot happen */
    Zpipe__V1__TaskBatch *b = m->task_batch;
    free(self->cur_job);
    free(self->cur_plugin);
    self->cur_job = strdup(b->job_id ? b->job_id : "");
    self->cur_plugin = strdup(b->plugin ? b->plugin : "");
    if (!self->cur_job || !self->cur_plugin)
        return -1;
    self->cur_dispatch_us = b->dispatch_us;
    self->cur = b->tasks;
    return 0;
}

/* Makes frame (n tasks) the current batch; it has not run yet. */
static void s_take(zp_wk_exec_t *self, zmq_msg_t *frame, size_t n)
{
    zmq_msg_move(&self->cur_frame, frame);
    self->cur = NULL;
    self->cur_n = n;
    self->cur_done = 0;
    self->sent_base = 0;
    self->cur_bytes = n ? zmq_msg_size(&self->cur_frame) / n : 0;
}

/* The current batch has all its results: the one written behind it (if
 * any) is now running. */
static void s_advance(zp_wk_exec_t *self)
{
    if (self->state != S_RUNNING || self->cur_done < self->cur_n)
        return;
    if (!self->has_next) {
        s_set_state(self, S_IDLE);
        return;
    }
    s_take(self, &self->next_frame, self->next_n);
    self->cur_seq = self->next_seq;
    self->has_next = false;
}

/* Hands queued batches to the executor: a current one, and one behind
 * it. */
static void s_feed(zp_wk_exec_t *self)
{
    while (s_ready(self) && !self->has_next && zp_wk_queue_len(self->queue)) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        size_t n = 0;
        zp_wk_queue_pop(self->queue, &frame, &n);
        if (n == 0) {
            zmq_msg_close(&frame);
            continue;
        }
        bool ok;
        if (self->state == S_IDLE) {
            s_take(self, &frame, n);
            s_set_state(self, S_RUNNING);
            ok = s_send_current(self, zmq_msg_data(&self->cur_frame),
                                zmq_msg_size(&self->cur_frame)) == 0;
        } else {
            zmq_msg_move(&self->next_frame, &frame);
            self->next_n = n;
            self->has_next = true;
            self->next_seq = ++self->sent_seq;
            ok = s_write(self, zmq_msg_data(&self->next_frame),
                         zmq_msg_size(&self->next_frame));
        }
        zmq_msg_close(&frame);
        if (!ok) { /* shows up as the executor's death */
            zp_warn("executor pid %d did not take a batch; restarting it",
                    (int)self->child.pid);
            return;
        }
    }
}

void zp_wk_exec_tick(zp_wk_exec_t *self, bool feed)
{
    zp_wk_progress_t *p = self->child.progress;
    if (s_busy(self) && !self->killed_for_timeout && atomic_load(&p->busy) &&
        zp_wk_death_overdue(atomic_load(&p->deadline_ms),
                            self->cfg->deadline_ms, atomic_load(&p->start_us),
                            zp_mono_us())) {
        self->killed_for_timeout = true;
        kill(self->child.pid, SIGKILL);
    }
    if (feed)
        s_feed(self);
}

/* ---- taking its results ---------------------------------------------------
 */

/* Closes d, a result of the current batch with payload_len bytes of
 * input: the books as for a task run here. */
static void s_finish(zp_wk_exec_t *self, zp_wk_done_t *d, size_t payload_len)
{
    zp_wk_results_finish(self->env.results, d);
    zp_wk_credit_done(self->env.credit, 1);
    zp_wk_credit_observe(self->env.credit, d->elapsed_us, payload_len, 1);
    self->env.observe(self->env.arg, d->elapsed_us);
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
    s_advance(self);
    self->env.grant(self->env.arg);
}

/* A result batch the scan refused: decoded, taken result by result. */
static void s_on_results(zp_wk_exec_t *self, const Zpipe__V1__ResultBatch *rb)
{
    const char *job = rb->job_id ? rb->job_id : "";
    zp_buf_t *out = zp_wk_results_out(self->env.results);
    zp_buf_t *err = zp_wk_results_err(self->env.results);
    size_t taken = 0;
    for (size_t i = 0; i < rb->n_results; i++) {
        const Zpipe__V1__Result *r = rb->results[i];
        zp_wk_done_t *d = s_push(self, job);
        if (!d)
            continue;
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
        zp_buf_append(out, r->output.data, r->output.len);
        if (r->error)
            zp_buf_append(err, r->error, strlen(r->error));
        s_finish(self, d, self->cur_bytes);
        taken++;
    }
    self->env.flush(self->env.arg);
    s_took(self, taken);
}

/* Takes one frame from the executor. */
static void s_on_frame(zp_wk_exec_t *self, const char *data, size_t len)
{
    size_t n;
    uint64_t elapsed;
    size_t max = self->cfg->max_frame + 65536;
    if (zp_scan_result_batch(data, len, max, &n, &elapsed) == 0) {
        /* The common case: forward it untouched, keep the books. */
        self->env.flush(self->env.arg);
        self->env.forward(self->env.arg, data, len, n);
        zp_wk_credit_done(self->env.credit, n);
        if (n) {
            zp_wk_credit_observe(self->env.credit, elapsed / n, self->cur_bytes,
                                 n);
            zp_each_result_elapsed(data, len, self->env.observe, self->env.arg);
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
        zp_debug("executor pid %d ready", (int)self->child.pid);
        if (self->state == S_STARTING)
            s_set_state(self, S_IDLE);
        else if (self->state == S_RECOVERING) {
            s_set_state(self, S_RUNNING);
            s_send_current(self, NULL, 0);
        }
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        s_on_results(self, m->result_batch);
}

/* Reads what the executor wrote and takes its whole frames; false when
 * it has closed (died). */
static bool s_read(zp_wk_exec_t *self)
{
    bool open = true;
    for (;;) {
        char *dst;
        size_t room;
        if (zp_frame_reader_space(self->reader, 1 << 16, &dst, &room) < 0)
            return false;
        ssize_t n = recv(self->child.fd, dst, room, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            /* Closed: still take the results it wrote before dying, so
             * its last batch's culprit is known. */
            open = false;
            break;
        }
        zp_frame_reader_commit(self->reader, (size_t)n);
    }
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
    return open;
}

/* ---- its death ------------------------------------------------------------
 */

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
    zp_wk_exit_t exit = {
        .killed_for_timeout = self->killed_for_timeout,
        .wait_status = status,
        .vm_bytes = atomic_load(&self->child.progress->vm_bytes),
        .memory_limit = self->cfg->memory_limit,
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
    bool was_ready = s_ready(self), busy = s_busy(self);
    s_set_state(self, S_DOWN);
    self->restarts++;
    if (self->has_next) { /* never started: it goes back to the queue */
        if (zp_wk_queue_push_front(self->queue, &self->next_frame,
                                   self->next_n) < 0)
            zp_error("out of memory requeueing a batch of %zu tasks",
                     self->next_n);
        self->has_next = false;
    }
    if (busy && s_decode_current(self) < 0) {
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
        return s_set_state(self, S_RECOVERING);
    return 0;
}

int zp_wk_exec_on_readable(zp_wk_exec_t *self)
{
    return s_read(self) ? 0 : s_died(self);
}
