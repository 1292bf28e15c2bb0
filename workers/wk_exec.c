/* wk_exec: supervising the executor process (see wk_exec.h): its
 * lifecycle, and batches fed to it. */
#define _GNU_SOURCE
#include "wk_exec.h"
#include "wk_exec_int.h"
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
#include <unistd.h>

static const char *const s_state_names[] = {"down", "starting", "recovering",
                                            "idle", "running"};

/* Legal transitions, a bit per target state. */
#define S_TO(st) (1u << (st))
/* Parked executors' results are looked for this often. */
#define S_PARKED_POLL_US 20000u
static const unsigned s_legal[] = {
    [ZP_WK_EXEC_DOWN] = S_TO(ZP_WK_EXEC_STARTING),
    [ZP_WK_EXEC_STARTING] = S_TO(ZP_WK_EXEC_IDLE) |
                            S_TO(ZP_WK_EXEC_RECOVERING) | S_TO(ZP_WK_EXEC_DOWN),
    [ZP_WK_EXEC_RECOVERING] = S_TO(ZP_WK_EXEC_RUNNING) | S_TO(ZP_WK_EXEC_DOWN),
    [ZP_WK_EXEC_IDLE] = S_TO(ZP_WK_EXEC_RUNNING) | S_TO(ZP_WK_EXEC_DOWN),
    [ZP_WK_EXEC_RUNNING] = S_TO(ZP_WK_EXEC_IDLE) | S_TO(ZP_WK_EXEC_DOWN),
};

/* Moves to state to; refuses (-1) a transition not on the diagram. */
int zp_wk_exec__set_state(zp_wk_exec_t *self, zp_wk_exec_state_t to)
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
bool zp_wk_exec__busy(const zp_wk_exec_t *self)
{
    return self->state == ZP_WK_EXEC_RUNNING ||
           self->state == ZP_WK_EXEC_RECOVERING;
}

/* It said hello: batches can be written to it. */
bool zp_wk_exec__ready(const zp_wk_exec_t *self)
{
    return self->state == ZP_WK_EXEC_IDLE || self->state == ZP_WK_EXEC_RUNNING;
}

zp_wk_exec_t *zp_wk_exec_new(const zp_worker_config_t *cfg, const char *id,
                             const char *const *files, size_t n_files,
                             bool credit_mode, const zp_wk_exec_env_t *env)
{
    zp_wk_exec_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->id = id;
    self->files = calloc(n_files ? n_files : 1, sizeof *self->files);
    for (size_t i = 0; self->files && i < n_files; i++)
        if ((self->files[self->n_files] = strdup(files[i])))
            self->n_files++;
    self->credit_mode = credit_mode;
    self->env = *env;
    self->child.fd = -1;
    zp_wk_batch_init(&self->cur_batch);
    zp_wk_batch_init(&self->next_batch);
    self->queue = zp_wk_queue_new();
    self->reader = zp_frame_reader_new(cfg->max_frame + 65536);
    self->cur_arena = zp_arena_new();
    self->arena = zp_arena_new();
    zp_wk_stall_init(&self->stall, cfg->stall_floor_ms);
    if (!self->files || self->n_files < n_files || !self->queue ||
        !self->reader || !self->cur_arena || !self->arena)
        zp_wk_exec_destroy(&self);
    return self;
}

void zp_wk_exec_destroy(zp_wk_exec_t **self_p)
{
    zp_wk_exec_t *self = *self_p;
    if (!self)
        return;
    zp_wk_spawn_stop(&self->child);
    zp_wk_exec__stop_parked(self);
    zp_wk_queue_destroy(&self->queue);
    zp_frame_reader_destroy(&self->reader);
    zp_arena_destroy(&self->cur_arena);
    zp_arena_destroy(&self->arena);
    free(self->elapsed);
    zp_wk_batch_close(&self->cur_batch);
    zp_wk_batch_close(&self->next_batch);
    zp_task_view_free(&self->view);
    zp_buf_free(&self->wbuf);
    zp_buf_free(&self->scratch);
    for (size_t i = 0; i < self->n_files; i++)
        free(self->files[i]);
    free(self->files);
    free(self->cur_job);
    free(self->cur_plugin);
    free(self->cur_config);
    free(self);
    *self_p = NULL;
}

int zp_wk_exec_start(zp_wk_exec_t *self)
{
    if (self->child.progress) /* the next executor has a fresh page */
        self->refused_before +=
            atomic_load(&self->child.progress->refused_appends);
    if (zp_wk_spawn(&self->child, self->cfg, self->id,
                    (const char *const *)self->files, self->n_files) < 0 ||
        zp_wk_exec__set_state(self, ZP_WK_EXEC_STARTING) < 0)
        return -1;
    self->killed_for_timeout = false;
    self->discard = false;
    zp_frame_reader_reset(self->reader);
    self->wbuf.len = self->woff = 0;
    self->sent_seq = 0;
    self->cur_shm = self->next_shm = 0; /* its regions are new */
    zp_wk_progress_t *p = self->child.progress;
    const zp_wk_credit_t *c = self->env.credit;
    atomic_store(&p->window, self->credit_mode ? self->cfg->window : 0);
    atomic_store(&p->max_held, c->max_held);
    atomic_store(&p->completed, c->completed);
    return 0;
}

int zp_wk_exec_enqueue(zp_wk_exec_t *self, zp_wk_batch_t *b)
{
    return zp_wk_queue_push(self->queue, b);
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
    return zp_wk_exec__busy(self);
}

void zp_wk_exec_abandon(zp_wk_exec_t *self)
{
    if (self && self->child.pid > 0)
        kill(self->child.pid, SIGKILL);
}

bool zp_wk_exec_ready(const zp_wk_exec_t *self)
{
    return zp_wk_exec__ready(self);
}

uint64_t zp_wk_exec_refused_appends(const zp_wk_exec_t *self)
{
    return self->refused_before +
           (self->child.progress
                ? atomic_load(&self->child.progress->refused_appends)
                : 0);
}

uint64_t zp_wk_exec_restarts(const zp_wk_exec_t *self)
{
    return self->restarts;
}

uint64_t zp_wk_exec_parked(const zp_wk_exec_t *self, size_t *now)
{
    if (now)
        *now = self->n_parked;
    return self->parked_total;
}

/* ---- feeding it ------------------------------------------------------ */

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

/* Room for a batch of len bytes in the executor's inputs region: where,
 * with its seq in *seq; NULL (and *seq 0) when it must take the socket. */
static uint8_t *s_place(zp_wk_exec_t *self, size_t len, uint64_t *seq)
{
    size_t off;
    *seq = 0;
    if (!self->child.in ||
        zp_wk_slots_alloc(&self->child.in_slots, len, &off, seq) < 0)
        return NULL;
    return zp_wk_region_base(self->child.in) + off;
}

/* Writes the reference to batch seq (len bytes at p) placed in the
 * inputs region. */
static bool s_write_ref(zp_wk_exec_t *self, uint64_t seq, const uint8_t *p,
                        size_t len)
{
    zp_wk_ref_t ref = {ZP_WK_REF_TASKS, seq,
                       (uint64_t)(p - zp_wk_region_base(self->child.in)), len};
    uint8_t frame[ZP_WK_REF_LEN];
    zp_wk_ref_write(&ref, frame);
    return s_write(self, frame, sizeof frame);
}

/* Hands a batch frame to the executor: copied into its inputs region
 * when there is room (*seq says where), else written on the socket. */
static bool s_write_batch(zp_wk_exec_t *self, const void *data, size_t len,
                          uint64_t *seq)
{
    uint8_t *p = s_place(self, len, seq);
    if (!p)
        return s_write(self, data, len);
    memcpy(p, data, len);
    return s_write_ref(self, *seq, p, len);
}

/* Hands b to the executor whole: encoded straight into its inputs region
 * (or the scratch buffer, then the socket) from the batch in tb. */
static bool s_write_encoded(zp_wk_exec_t *self, const Zpipe__V1__TaskBatch *tb,
                            uint64_t *seq)
{
    size_t len = zp_task_batch_size(tb);
    uint8_t *p = s_place(self, len, seq);
    if (p) {
        zp_task_batch_write(tb, p, len);
        return s_write_ref(self, *seq, p, len);
    }
    if (zp_encode_task_batch(tb, &self->scratch) < 0)
        return false;
    return s_write(self, self->scratch.data, self->scratch.len);
}

/* Hands batch b to the executor as the ventilator sent it: its frame as
 * it is, or, when its big payloads came as frames of their own, the batch
 * with them put back in (one copy of each, as of the frame). */
static bool s_write_whole(zp_wk_exec_t *self, zp_wk_batch_t *b, uint64_t *seq)
{
    if (!b->n_parts)
        return s_write_batch(self, zmq_msg_data(&b->head),
                             zmq_msg_size(&b->head), seq);
    *seq = 0;
    if (zp_view_task_batch(&self->view, zmq_msg_data(&b->head),
                           zmq_msg_size(&b->head), self->cfg->max_frame) < 0 ||
        !zp_wk_batch_attach(b, &self->view.batch))
        return false; /* checked on arrival: cannot happen */
    return s_write_encoded(self, &self->view.batch, seq);
}

/* Sends the current batch (cur[cur_done..]) to the executor: whole, as
 * the ventilator sent it (no re-encoding on the common path), else
 * encoded afresh (what a dead executor left undone). */
int zp_wk_exec__send_current(zp_wk_exec_t *self, bool whole)
{
    self->sent_base = self->cur_done;
    self->cur_seq = ++self->sent_seq;
    if (whole)
        return s_write_whole(self, &self->cur_batch, &self->cur_shm) ? 0 : -1;
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = self->cur_job;
    b.plugin = self->cur_plugin;
    /* The job's settings go with what is left: without them the new
     * executor would run the rest on the worker's own instance. */
    b.config = self->cur_config;
    b.dispatch_us = self->cur_dispatch_us;
    b.tasks = self->cur + self->cur_done;
    b.n_tasks = self->cur_n - self->cur_done;
    return s_write_encoded(self, &b, &self->cur_shm) ? 0 : -1;
}

/* Decodes the current batch's frame, which only a dead executor needs:
 * which task it was running, what is left to send again. */
int zp_wk_exec__decode_current(zp_wk_exec_t *self)
{
    if (self->cur)
        return 0;
    zp_arena_reset(self->cur_arena);
    zp_message_t *m =
        zp_decode(self->cur_arena, zmq_msg_data(&self->cur_batch.head),
                  zmq_msg_size(&self->cur_batch.head), self->cfg->max_frame);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH ||
        m->task_batch->n_tasks != self->cur_n ||
        !zp_wk_batch_attach(&self->cur_batch, m->task_batch))
        return -1; /* scanned on arrival: cannot happen */
    Zpipe__V1__TaskBatch *b = m->task_batch;
    free(self->cur_job);
    free(self->cur_plugin);
    free(self->cur_config);
    self->cur_job = strdup(b->job_id ? b->job_id : "");
    self->cur_plugin = strdup(b->plugin ? b->plugin : "");
    self->cur_config = strdup(b->config ? b->config : "");
    if (!self->cur_job || !self->cur_plugin || !self->cur_config)
        return -1;
    self->cur_dispatch_us = b->dispatch_us;
    self->cur = b->tasks;
    return 0;
}

/* The deadlines of the tasks in b, for zp_wk_exec_next_due_us: as its
 * arrival scan found them, else read from its frame. */
static zp_wk_horizon_t s_horizon(zp_wk_batch_t *b)
{
    zp_wk_horizon_t h = {b->min_deadline_ms, b->some_without};
    if (!b->deadlines_known)
        zp_task_batch_deadlines(zmq_msg_data(&b->head), zmq_msg_size(&b->head),
                                &h.min_ms, &h.unbounded);
    return h;
}

/* Makes b the current batch (its content taken); it has not run yet. */
static void s_take(zp_wk_exec_t *self, zp_wk_batch_t *b)
{
    zp_wk_batch_close(&self->cur_batch);
    zp_wk_batch_move(&self->cur_batch, b);
    self->cur_horizon = s_horizon(&self->cur_batch);
    self->cur = NULL;
    self->cur_n = self->cur_batch.n;
    self->cur_done = 0;
    self->sent_base = 0;
    self->cur_bytes =
        self->cur_n ? zp_wk_batch_bytes(&self->cur_batch) / self->cur_n : 0;
}

/* The current batch has all its results: the one written behind it (if
 * any) is now running. */
void zp_wk_exec__advance(zp_wk_exec_t *self)
{
    if (self->state != ZP_WK_EXEC_RUNNING || self->cur_done < self->cur_n)
        return;
    /* Its room in the inputs region is free: the executor has moved on. */
    if (self->cur_shm)
        zp_wk_slots_release(&self->child.in_slots, self->cur_shm);
    self->cur_shm = 0;
    if (!self->has_next) {
        zp_wk_exec__set_state(self, ZP_WK_EXEC_IDLE);
        return;
    }
    s_take(self, &self->next_batch);
    self->cur_horizon = self->next_horizon;
    self->cur_seq = self->next_seq;
    self->cur_shm = self->next_shm;
    self->next_shm = 0;
    self->has_next = false;
}

/* Hands queued batches to the executor: a current one, and one behind
 * it. */
static void s_feed(zp_wk_exec_t *self)
{
    while (zp_wk_exec__ready(self) && !self->has_next &&
           zp_wk_queue_len(self->queue)) {
        zp_wk_batch_t b;
        zp_wk_batch_init(&b);
        zp_wk_queue_pop(self->queue, &b);
        if (b.n == 0) {
            zp_wk_batch_close(&b);
            continue;
        }
        bool ok;
        if (self->state == ZP_WK_EXEC_IDLE) {
            s_take(self, &b);
            zp_wk_exec__set_state(self, ZP_WK_EXEC_RUNNING);
            ok = zp_wk_exec__send_current(self, true) == 0;
        } else {
            zp_wk_batch_move(&self->next_batch, &b);
            self->next_horizon = s_horizon(&self->next_batch);
            self->has_next = true;
            self->next_seq = ++self->sent_seq;
            ok = s_write_whole(self, &self->next_batch, &self->next_shm);
        }
        zp_wk_batch_close(&b);
        if (!ok) { /* shows up as the executor's death */
            zp_warn("executor pid %d did not take a batch; restarting it",
                    (int)self->child.pid);
            return;
        }
    }
}

/* Whether the running task has no deadline and is stalled at now. */
static bool s_stalled(const zp_wk_exec_t *self, uint64_t now)
{
    zp_wk_progress_t *p = self->child.progress;
    return self->state == ZP_WK_EXEC_RUNNING && !self->killed_for_timeout &&
           atomic_load(&p->busy) && !atomic_load(&p->deadline_ms) &&
           !self->cfg->deadline_ms && self->n_parked < ZP_WK_MAX_PARKED &&
           zp_wk_stall_overdue(&self->stall, atomic_load(&p->start_us), now);
}

void zp_wk_exec_stop_soon(zp_wk_exec_t *self)
{
    self->stopping = true;
}

uint64_t zp_wk_exec_next_due_us(const zp_wk_exec_t *self, uint64_t now)
{
    if (self->n_parked) /* their results are read by polling */
        return now + S_PARKED_POLL_US;
    if (!zp_wk_exec__busy(self) || self->killed_for_timeout)
        return UINT64_MAX; /* its death wakes the worker (end of output) */
    zp_wk_progress_t *p = self->child.progress;
    uint64_t stall_us = 0, floor_us = self->stall.floor_us;
    if (self->state == ZP_WK_EXEC_RUNNING && floor_us) {
        uint64_t limit = zp_wk_stall_limit_us(&self->stall);
        stall_us = limit > floor_us ? limit : floor_us;
    }
    zp_wk_horizon_t h = self->cur_horizon;
    if (self->has_next) {
        if (self->next_horizon.min_ms &&
            (!h.min_ms || self->next_horizon.min_ms < h.min_ms))
            h.min_ms = self->next_horizon.min_ms;
        h.unbounded = h.unbounded || self->next_horizon.unbounded;
    }
    bool running = p && atomic_load(&p->busy);
    return zp_wk_death_next_due(
        running, running ? atomic_load(&p->start_us) : 0,
        running ? atomic_load(&p->deadline_ms) : 0, self->cfg->deadline_ms,
        stall_us, floor_us, h, now);
}

int zp_wk_exec_tick(zp_wk_exec_t *self, bool feed)
{
    zp_wk_progress_t *p = self->child.progress;
    uint64_t now = zp_mono_us();
    zp_wk_exec__publish(&self->child); /* results libzmq has sent since */
    if (self->n_parked)
        zp_wk_exec__poll_parked(self);
    if (zp_wk_exec__busy(self) && !self->killed_for_timeout &&
        atomic_load(&p->busy) &&
        zp_wk_death_overdue(atomic_load(&p->deadline_ms),
                            self->cfg->deadline_ms, atomic_load(&p->start_us),
                            now)) {
        self->killed_for_timeout = true;
        kill(self->child.pid, SIGKILL);
    } else if (s_stalled(self, now) && zp_wk_exec__park(self) < 0)
        return -1;
    if (feed && zp_wk_exec__ready(self))
        s_feed(self);
    return 0;
}
