/* ventilator: tasks of one or many jobs to task batches, sent against worker
 * credit, kept until the sink commits them. Jobs come from the input file
 * (--input) or from producers on the intake socket (--intake). */
#define _GNU_SOURCE
#include "ventilator.h"
#include "zp_codec.h"
#include "zp_idmap.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_net.h"
#include "zp_util.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_READ_CHUNK   (1u << 20)
#define S_RESEND_US    1000000u
#define S_KEEPALIVE_US 2000000u
#define S_MAX_PLUGINS  64
/* Task keys: the job's slot above the task id, so one table holds every
 * job's tasks and ids stay dense within a job. */
#define S_ID_BITS      40
#define S_KEY(j, id)   ((uint64_t)(j)->slot << S_ID_BITS | (id))
#define S_MAX_TASK_ID  (1ull << S_ID_BITS)
#define S_INTAKE_FRAME (64u << 20)
#define S_INTAKE_HWM   4
#define S_FINISHED_IDS 4096

typedef enum {
    S_QUEUED,   /* waiting in its job's ready queue */
    S_INFLIGHT, /* sent to a worker */
    S_FAILING,  /* out of attempts; failure record sent to the sink */
} s_tstate_t;

typedef struct s_job s_job_t;

/* One task from read until committed. */
typedef struct {
    uint64_t id;
    s_job_t *job;
    uint32_t attempt; /* charged attempts: failures and expired leases */
    uint8_t state;
    uint16_t losses; /* deliveries lost with a worker, not charged */
    uint64_t worker; /* serial of the worker holding it */
    uint64_t sent_us;
    uint64_t queued_us; /* --trace: wall clock when queued, else 0 */
    size_t len;
    uint8_t data[];
} s_task_t;

typedef struct {
    int fd;
    zp_buf_t buf;
    size_t start; /* first unread byte */
    bool eof;
} s_reader_t;

struct s_job {
    char *id, *plugin;
    char *config; /* the plugin's settings, "KEY=VALUE" lines, or NULL */
    uint64_t slot;
    uint64_t deadline_ms;
    uint32_t max_attempts, priority;
    /* Where its tasks come from: the input file, or a producer. */
    bool has_input;
    s_reader_t in;
    char prid[256];
    size_t prid_len;
    bool producer_acked; /* the producer was told the job is open */
    bool input_closed;   /* the producer sent JobClose */
    zp_iddeque_t ready;  /* keys */
    uint64_t next_task_id;
    size_t held; /* its tasks in the table */
    bool opened, close_acked, done, refused;
    uint64_t last_open_us, last_close_us, last_status_us;
    uint64_t failed;
    uint64_t *skip; /* --resume-journal: tasks already committed */
    size_t skip_words;
    uint64_t skipped;
    bool warned_no_plugin;
    /* Failure records the ventilator itself owes the sink. */
    Zpipe__V1__Result *fail_results;
    size_t n_fail, cap_fail;
    s_job_t *next;
};

typedef struct {
    char rid[256];
    size_t rid_len;
    uint64_t serial;
    char *id;
    char *plugins[S_MAX_PLUGINS];
    size_t n_plugins;
    uint64_t window, credit, sent;
    uint64_t last_seen_us;
    uint64_t last_progress_us; /* it last finished something (credit) */
    uint64_t tasks_done;       /* from its heartbeats */
    uint64_t committed;        /* its tasks the sink committed */
} s_worker_t;

typedef struct {
    const zp_ventilator_config_t *cfg;
    bool push;
    void *ctx, *dispatch, *control, *monitor, *intake;
    zp_curve_t *curve;
    uint64_t probe_until_us, last_probe_us;

    s_job_t *jobs;
    s_job_t *file_job;             /* the --input job, NULL in service mode */
    uint64_t next_slot, last_slot; /* last_slot: the job served last */
    zp_idmap_t *tasks; /* key -> s_task_t*, everything not yet committed */

    s_worker_t *workers;
    size_t n_workers, rr;
    uint64_t next_serial;
    uint64_t no_worker_since_us;

    char *sink_instance; /* from the sink's acks; a change = it restarted */
    /* Ids of the last jobs finished here: a producer may not reuse one
     * (the sink would take its tasks for duplicates of the old job's). */
    char *finished[S_FINISHED_IDS];
    size_t n_finished;

    /* Counters for the accounting line. */
    uint64_t read, dispatched, redelivered, lost_to_workers, expired, retried;
    uint64_t gave_up, bad_messages, intake_bad;
    uint64_t bad_control;  /* of bad_messages, those from the sink */
    zp_metrics_t *metrics; /* NULL unless --metrics */
    zp_events_t *events;   /* NULL unless --events */
    size_t max_held;       /* most tasks held at once (read, not committed) */
    uint64_t held_bytes;   /* their payload bytes */

    Zpipe__V1__Result **fail_ptrs;
    zp_arena_t *arena;
    zp_buf_t scratch;
    /* Batch under construction. */
    Zpipe__V1__Task *pb_tasks;
    Zpipe__V1__Task **pb_ptrs;
    s_task_t **batch;
    size_t cap_batch;
} s_vent_t;

/* Reads more input if the fd has some; returns -1 on a read error. */
static int s_fill(s_reader_t *r, bool block)
{
    if (r->eof)
        return 0;
    if (!block) {
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0)
            return 0;
    }
    if (r->start > 0) {
        memmove(r->buf.data, r->buf.data + r->start, r->buf.len - r->start);
        r->buf.len -= r->start;
        r->start = 0;
    }
    if (zp_buf_reserve(&r->buf, S_READ_CHUNK) < 0)
        return -1;
    ssize_t n;
    do
        n = read(r->fd, r->buf.data + r->buf.len, S_READ_CHUNK);
    while (n < 0 && errno == EINTR && !zp_stopping());
    if (n < 0)
        return -1;
    if (n == 0)
        r->eof = true;
    r->buf.len += (size_t)n;
    return 0;
}

/* Next complete line: 1 with a pointer valid until the next s_fill, 0 if
 * none is buffered yet. */
static int s_next_line(s_reader_t *r, const char **line, size_t *len)
{
    size_t avail = r->buf.len - r->start;
    if (avail == 0)
        return 0;
    char *p = r->buf.data + r->start;
    char *nl = memchr(p, '\n', avail);
    if (nl) {
        *line = p;
        *len = (size_t)(nl - p);
        r->start += *len + 1;
        return 1;
    }
    if (r->eof) { /* last line without newline */
        *line = p;
        *len = avail;
        r->start += avail;
        return 1;
    }
    return 0;
}

static bool s_line_buffered(const s_reader_t *r)
{
    size_t avail = r->buf.len - r->start;
    return avail && (r->eof || memchr(r->buf.data + r->start, '\n', avail));
}

static bool s_input_done(const s_reader_t *r)
{
    return r->eof && r->start == r->buf.len;
}

/* How many tasks may be held (read, not yet committed). Automatic: every
 * worker's window plus room for the sink's commit batches. Results wait
 * in the sink's queue when it is the slowest stage; this bound is what
 * makes dispatch wait for it, so memory does not grow with the job. */
static size_t s_inflight_limit(const s_vent_t *v)
{
    if (v->cfg->max_inflight)
        return v->cfg->max_inflight;
    if (v->push)
        return 65536;
    size_t n = 8192;
    for (size_t i = 0; i < v->n_workers; i++)
        n += v->workers[i].window;
    return n;
}

/* Whether another task may be read: under both bounds (one task always). */
static bool s_can_hold(const s_vent_t *v)
{
    size_t n = zp_idmap_size(v->tasks);
    return n < s_inflight_limit(v) &&
           (n == 0 || v->held_bytes < v->cfg->max_inflight_bytes);
}

/* ---- jobs ---------------------------------------------------------------- */

static s_job_t *s_job_find(s_vent_t *v, const char *id)
{
    for (s_job_t *j = v->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

/* A new job, last in the list; NULL when out of memory. */
static s_job_t *s_job_new(s_vent_t *v, const char *id, const char *plugin)
{
    s_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = strdup(id);
    j->plugin = strdup(plugin);
    if (!j->id || !j->plugin) {
        free(j->id);
        free(j->plugin);
        free(j);
        return NULL;
    }
    j->slot = v->next_slot++;
    j->deadline_ms = v->cfg->deadline_ms;
    j->max_attempts = (uint32_t)v->cfg->max_attempts;
    j->in.fd = -1;
    s_job_t **p = &v->jobs;
    while (*p)
        p = &(*p)->next;
    *p = j;
    return j;
}

static void s_job_free(s_job_t *j)
{
    if (j->in.fd > STDIN_FILENO)
        close(j->in.fd);
    zp_buf_free(&j->in.buf);
    zp_iddeque_free(&j->ready);
    for (size_t i = 0; i < j->n_fail; i++)
        free(j->fail_results[i].error);
    free(j->fail_results);
    free(j->skip);
    free(j->id);
    free(j->plugin);
    free(j->config);
    free(j);
}

/* Takes a finished job out of the list and frees it (its tasks are all
 * committed by then). */
static void s_job_remove(s_vent_t *v, s_job_t *j)
{
    /* Normally none is left (the sink commits every task before it says
     * the job is done), but a lost Committed must not leave tasks that
     * point at a freed job. */
    uint64_t *keys = j->held ? malloc(j->held * sizeof *keys) : NULL;
    size_t n = 0, cursor = 0;
    uint64_t key;
    void *p;
    while (keys && n < j->held && zp_idmap_next(v->tasks, &cursor, &key, &p))
        if (((s_task_t *)p)->job == j)
            keys[n++] = key;
    for (size_t i = 0; i < n; i++) {
        s_task_t *t = zp_idmap_remove(v->tasks, keys[i]);
        v->held_bytes -= t->len;
        free(t);
    }
    free(keys);
    if (j->done) {
        size_t k = v->n_finished++ % S_FINISHED_IDS;
        free(v->finished[k]);
        v->finished[k] = strdup(j->id);
    }
    for (s_job_t **link = &v->jobs; *link; link = &(*link)->next)
        if (*link == j) {
            *link = j->next;
            break;
        }
    if (v->file_job == j)
        v->file_job = NULL;
    s_job_free(j);
}

/* Whether every task the job will ever have has been read. */
static bool s_job_input_done(const s_job_t *j)
{
    return j->has_input ? s_input_done(&j->in) : j->input_closed;
}

/* Holds a new task for j; NULL when out of memory (logged). */
static s_task_t *s_task_add(s_vent_t *v, s_job_t *j, const void *data,
                            size_t len)
{
    s_task_t *t = malloc(sizeof *t + len);
    uint64_t key = S_KEY(j, j->next_task_id);
    if (!t || zp_idmap_put(v->tasks, key, t) < 0 ||
        zp_iddeque_push_back(&j->ready, key) < 0) {
        free(t);
        zp_idmap_remove(v->tasks, key);
        zp_error("out of memory holding task %s/%llu", j->id,
                 (unsigned long long)j->next_task_id);
        return NULL;
    }
    t->id = j->next_task_id++;
    t->job = j;
    t->attempt = 1;
    t->state = S_QUEUED;
    t->losses = 0;
    t->worker = 0;
    t->sent_us = 0;
    t->queued_us = v->cfg->trace ? zp_now_us() : 0;
    t->len = len;
    if (len) /* an empty payload may come as NULL */
        memcpy(t->data, data, len);
    j->held++;
    v->held_bytes += len;
    v->read++;
    if (zp_idmap_size(v->tasks) > v->max_held)
        v->max_held = zp_idmap_size(v->tasks);
    return t;
}

/* Forgets a committed task. */
static void s_task_done(s_vent_t *v, s_task_t *t)
{
    zp_idmap_remove(v->tasks, S_KEY(t->job, t->id));
    t->job->held--;
    v->held_bytes -= t->len;
    free(t);
}

/* Turns up to want more input lines of the file job into queued tasks.
 * Returns -1 for a fatal input error (logged). */
static int s_refill(s_vent_t *v, s_job_t *j, size_t want)
{
    if (!j->has_input)
        return 0;
    while (j->ready.len < want && s_can_hold(v)) {
        const char *line;
        size_t len;
        if (!s_next_line(&j->in, &line, &len)) {
            if (j->in.eof)
                return 0;
            if (s_fill(&j->in, false) < 0) {
                zp_error("reading %s: %s", v->cfg->input, strerror(errno));
                return -1;
            }
            if (!s_next_line(&j->in, &line, &len))
                return 0;
        }
        if (len > v->cfg->max_task_bytes) {
            zp_error("input line %llu is %zu bytes, over the limit of %llu "
                     "(--max-task-bytes)",
                     (unsigned long long)j->next_task_id + 1, len,
                     (unsigned long long)v->cfg->max_task_bytes);
            return -1;
        }
        uint64_t tid = j->next_task_id;
        if (tid / 64 < j->skip_words && (j->skip[tid / 64] >> (tid % 64)) & 1) {
            j->next_task_id++; /* committed by an earlier run */
            j->skipped++;
            continue;
        }
        if (!s_task_add(v, j, line, len))
            return -1;
    }
    return 0;
}

/* Queues a failure record for t, which is out of attempts; quarantined:
 * it is a poison task. */
static void s_give_up(s_vent_t *v, s_task_t *t, const char *cause,
                      const char *why, bool quarantined)
{
    s_job_t *j = t->job;
    if (j->n_fail == j->cap_fail) {
        size_t cap = j->cap_fail ? 2 * j->cap_fail : 64;
        Zpipe__V1__Result *r = realloc(j->fail_results, cap * sizeof *r);
        if (!r)
            return; /* retried at the next lease scan */
        j->fail_results = r;
        j->cap_fail = cap;
    }
    Zpipe__V1__Result *r = &j->fail_results[j->n_fail++];
    zpipe__v1__result__init(r);
    r->task_id = t->id;
    r->status = ZPIPE__V1__STATUS__STATUS_FAILED;
    r->cause = (char *)cause;
    r->attempt = t->attempt;
    r->queued_us = t->queued_us; /* never dispatched for this attempt */
    r->quarantined = quarantined;
    char *msg = NULL;
    if (asprintf(&msg, "%s on attempt %u of %u; giving up", why, t->attempt,
                 j->max_attempts) < 0)
        msg = NULL;
    r->error = msg;
    t->state = S_FAILING;
    v->gave_up++;
}

static void s_flush_failures(s_vent_t *v, s_job_t *j)
{
    if (!j->n_fail)
        return;
    Zpipe__V1__Result **ptrs = realloc(v->fail_ptrs, j->n_fail * sizeof *ptrs);
    if (!ptrs)
        return;
    v->fail_ptrs = ptrs;
    for (size_t i = 0; i < j->n_fail; i++)
        ptrs[i] = &j->fail_results[i];
    Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
    rb.job_id = j->id;
    rb.worker_id = "ventilator";
    rb.results = ptrs;
    rb.n_results = j->n_fail;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    if (zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT) < 0) {
        zp_warn("failure records to the sink: %s; will retry",
                zmq_strerror(errno));
        return;
    }
    for (size_t i = 0; i < j->n_fail; i++)
        free(j->fail_results[i].error);
    j->n_fail = 0;
}

/* Puts t back at the front of its job's queue. */
static void s_queue_front(s_task_t *t)
{
    t->state = S_QUEUED;
    t->worker = 0;
    if (t->queued_us) /* traced: this attempt's wait starts now */
        t->queued_us = zp_now_us();
    if (zp_iddeque_push_front(&t->job->ready, S_KEY(t->job, t->id)) < 0)
        zp_error("out of memory requeueing task %s/%llu", t->job->id,
                 (unsigned long long)t->id);
}

/* Publishes that t will run again (as attempt). */
static void s_event_retried(s_vent_t *v, const s_task_t *t, uint32_t attempt,
                            const char *cause, const char *why)
{
    if (!v->events)
        return;
    Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
    ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED;
    ev.job_id = t->job->id;
    ev.task_id = t->id;
    ev.attempt = attempt;
    ev.cause = (char *)cause;
    ev.detail = (char *)why;
    zp_events_emit(v->events, &ev);
}

/* Sends t again later with its attempt raised, or gives up on it. */
static void s_requeue(s_vent_t *v, s_task_t *t, const char *cause,
                      const char *why)
{
    if (t->attempt >= t->job->max_attempts) {
        s_give_up(v, t, cause, why, false);
        return;
    }
    s_event_retried(v, t, t->attempt, cause, why);
    t->attempt++;
    s_queue_front(t);
    v->redelivered++;
}

/* A worker died holding t. That is not the task's fault (its plugin runs
 * in an executor the worker survives), so the attempt is not charged; a
 * task that keeps taking workers down with it is given up after
 * S_MAX_LOSSES. */
#define S_MAX_LOSSES 10
static void s_requeue_lost(s_vent_t *v, s_task_t *t, const char *why)
{
    if (++t->losses >= S_MAX_LOSSES) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s, for the %u. time", why, t->losses);
        s_give_up(v, t, "worker_lost", msg, true);
        return;
    }
    s_event_retried(v, t, t->attempt, "worker_lost", why);
    s_queue_front(t);
    v->redelivered++;
}

/* ---- workers ---------------------------------------------------------------
 */

static s_worker_t *s_worker_find(s_vent_t *v, const char *rid, size_t len)
{
    for (size_t i = 0; i < v->n_workers; i++)
        if (v->workers[i].rid_len == len &&
            !memcmp(v->workers[i].rid, rid, len))
            return &v->workers[i];
    return NULL;
}

static bool s_worker_has(const s_worker_t *w, const char *plugin)
{
    for (size_t i = 0; i < w->n_plugins; i++)
        if (strcmp(w->plugins[i], plugin) == 0)
            return true;
    return false;
}

/* Forgets a worker; with lost = true its tasks are sent again. dead: it
 * vanished rather than said bye. */
static void s_worker_drop(s_vent_t *v, s_worker_t *w, const char *why,
                          bool lost, bool dead)
{
    size_t held = 0;
    if (lost) {
        size_t cursor = 0;
        uint64_t key;
        void *p;
        while (zp_idmap_next(v->tasks, &cursor, &key, &p)) {
            s_task_t *t = p;
            if (t->state == S_INFLIGHT && t->worker == w->serial) {
                char msg[320];
                snprintf(msg, sizeof msg, "worker %s lost (%s) holding it",
                         w->id, why);
                s_requeue_lost(v, t, msg);
                held++;
            }
        }
        v->lost_to_workers += held;
    }
    zp_info("worker %s left (%s): sent %llu tasks", w->id, why,
            (unsigned long long)w->sent);
    if (held)
        zp_warn("worker %s was holding %zu tasks; sending them again", w->id,
                held);
    if (v->events) {
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = dead ? ZPIPE__V1__EVENT_KIND__EVENT_WORKER_DEAD
                       : ZPIPE__V1__EVENT_KIND__EVENT_WORKER_LEFT;
        ev.worker_id = w->id;
        ev.detail = (char *)why;
        ev.count = held;
        zp_events_emit(v->events, &ev);
    }
    free(w->id);
    for (size_t i = 0; i < w->n_plugins; i++)
        free(w->plugins[i]);
    size_t idx = (size_t)(w - v->workers);
    memmove(w, w + 1, (v->n_workers - idx - 1) * sizeof *w);
    v->n_workers--;
    if (v->rr >= v->n_workers)
        v->rr = 0;
    if (v->n_workers == 0)
        v->no_worker_since_us = zp_mono_us();
}

static void s_on_hello(s_vent_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__Hello *h)
{
    s_worker_t *w = s_worker_find(v, rid, rid_len);
    if (w) /* a restarted worker with the same id holds nothing of ours */
        s_worker_drop(v, w, "said hello again", true, true);
    s_worker_t *ws = realloc(v->workers, (v->n_workers + 1) * sizeof *ws);
    if (!ws) {
        zp_error("out of memory adding a worker");
        return;
    }
    v->workers = ws;
    w = &ws[v->n_workers];
    memset(w, 0, sizeof *w);
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->serial = ++v->next_serial;
    w->id = strdup(h->worker_id && *h->worker_id ? h->worker_id : "?");
    if (!w->id)
        return;
    for (size_t i = 0; i < h->n_plugins && i < S_MAX_PLUGINS; i++) {
        w->plugins[w->n_plugins] = strdup(h->plugins[i]);
        if (w->plugins[w->n_plugins])
            w->n_plugins++;
    }
    w->window = h->window ? h->window : 1;
    w->credit = h->credit < w->window ? h->credit : w->window;
    w->last_seen_us = zp_mono_us();
    w->last_progress_us = w->last_seen_us;
    v->n_workers++;
    zp_info("worker %s joined from %s pid %u: window %llu, credit %llu, "
            "%zu plugins",
            w->id, h->host ? h->host : "?", h->pid,
            (unsigned long long)w->window, (unsigned long long)w->credit,
            w->n_plugins);
    if (v->events) {
        zp_buf_t plugins = {0};
        for (size_t i = 0; i < w->n_plugins; i++)
            zp_buf_printf(&plugins, "%s%s", i ? "," : "", w->plugins[i]);
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_WORKER_JOINED;
        ev.worker_id = w->id;
        ev.host = h->host;
        ev.pid = h->pid;
        ev.plugin = plugins.data;
        ev.count = w->window;
        zp_events_emit(v->events, &ev);
        zp_buf_free(&plugins);
    }
}

static void s_bad(s_vent_t *v, const char *what, size_t len)
{
    v->bad_messages++;
    if (v->bad_messages <= 10 || v->bad_messages % 1000 == 0)
        zp_warn("dropped %s (%zu bytes) on %s; %llu bad messages so far", what,
                len, v->cfg->dispatch_endpoint,
                (unsigned long long)v->bad_messages);
}

static void s_on_dispatch(s_vent_t *v, const char *rid, size_t rid_len,
                          zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    zp_arena_reset(v->arena);
    zp_message_t *m = zp_decode(v->arena, zmq_msg_data(frame), len, 1u << 20);
    if (!m) {
        s_bad(v, "a malformed frame", len);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HELLO) {
        s_on_hello(v, rid, rid_len, m->hello);
        return;
    }
    s_worker_t *w = s_worker_find(v, rid, rid_len);
    if (!w) {
        /* A worker must say hello first; anything else is a stranger. A
         * worker we forgot (declared dead, or we restarted) is told to
         * say hello again. */
        s_bad(v, "a message from a peer that never said hello", len);
        if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_CREDIT ||
            m->kind_case == ZPIPE__V1__MESSAGE__KIND_HEARTBEAT) {
            Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
            bye.reason = "unknown worker; say hello";
            zp_message_t r = ZPIPE__V1__MESSAGE__INIT;
            r.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
            r.bye = &bye;
            zp_send(v->dispatch, rid, rid_len, &r, &v->scratch, ZMQ_DONTWAIT);
        }
        return;
    }
    w->last_seen_us = zp_mono_us();
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_CREDIT:
        w->last_progress_us = w->last_seen_us; /* granted as tasks finish */
        w->credit += m->credit->credit;
        if (w->credit > w->window) {
            zp_warn("worker %s granted %llu credit over its window %llu; "
                    "clamped",
                    w->id, (unsigned long long)(w->credit - w->window),
                    (unsigned long long)w->window);
            w->credit = w->window;
        }
        break;
    case ZPIPE__V1__MESSAGE__KIND_HEARTBEAT:
        if (m->heartbeat->tasks_done != w->tasks_done)
            w->last_progress_us = w->last_seen_us;
        w->tasks_done = m->heartbeat->tasks_done;
        break;
    case ZPIPE__V1__MESSAGE__KIND_BYE:
        /* A leaving worker finished or handed back what it held; anything
         * still in flight with it is sent again. */
        s_worker_drop(
            v, w, m->bye->reason && *m->bye->reason ? m->bye->reason : "bye",
            true, false);
        break;
    default:
        s_bad(v, "an unexpected message kind", len);
    }
}

static int s_batch_reserve(s_vent_t *v, size_t n)
{
    if (n <= v->cap_batch)
        return 0;
    free(v->pb_tasks);
    free(v->pb_ptrs);
    free(v->batch);
    v->pb_tasks = malloc(n * sizeof *v->pb_tasks);
    v->pb_ptrs = malloc(n * sizeof *v->pb_ptrs);
    v->batch = malloc(n * sizeof *v->batch);
    if (!v->pb_tasks || !v->pb_ptrs || !v->batch) {
        v->cap_batch = 0;
        return -1;
    }
    v->cap_batch = n;
    return 0;
}

/* Pops up to max of j's queued tasks into v->batch; returns the count. */
static size_t s_collect(s_vent_t *v, s_job_t *j, size_t max)
{
    size_t n = 0, bytes = 0;
    uint64_t key;
    while (n < max && bytes < v->cfg->batch_bytes &&
           zp_iddeque_pop_front(&j->ready, &key)) {
        s_task_t *t = zp_idmap_get(v->tasks, key);
        if (!t || t->state != S_QUEUED)
            continue; /* committed or given up meanwhile */
        v->batch[n++] = t;
        bytes += t->len;
    }
    return n;
}

/* Sends the n collected tasks of j as one batch; on failure puts them back
 * at the front of the queue and returns -1 with errno. */
static int s_send_batch(s_vent_t *v, s_job_t *j, size_t n, s_worker_t *w,
                        int flags)
{
    for (size_t i = 0; i < n; i++) {
        s_task_t *t = v->batch[i];
        Zpipe__V1__Task *p = &v->pb_tasks[i];
        zpipe__v1__task__init(p);
        p->task_id = t->id;
        p->payload.data = t->data;
        p->payload.len = t->len;
        p->attempt = t->attempt;
        p->deadline_ms = j->deadline_ms;
        p->queued_us = t->queued_us;
        v->pb_ptrs[i] = p;
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = j->id;
    b.plugin = j->plugin;
    b.config = j->config;
    b.tasks = v->pb_ptrs;
    b.n_tasks = n;
    b.dispatch_us = zp_now_us();
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    if (zp_send(v->dispatch, w ? w->rid : NULL, w ? w->rid_len : 0, &m,
                &v->scratch, flags) < 0) {
        int e = errno;
        for (size_t i = n; i-- > 0;)
            zp_iddeque_push_front(&j->ready, S_KEY(j, v->batch[i]->id));
        errno = e;
        return -1;
    }
    uint64_t now = zp_mono_us();
    for (size_t i = 0; i < n; i++) {
        v->batch[i]->state = S_INFLIGHT;
        v->batch[i]->worker = w ? w->serial : 0;
        v->batch[i]->sent_us = now;
    }
    v->dispatched += n;
    return 0;
}

/* Credit of the workers that can run j. */
static uint64_t s_free_credit(const s_vent_t *v, const s_job_t *j)
{
    uint64_t c = 0;
    for (size_t i = 0; i < v->n_workers; i++)
        if (s_worker_has(&v->workers[i], j->plugin))
            c += v->workers[i].credit;
    return c;
}

/* Whether j has tasks to send, or input that may give some. */
static bool s_job_wants(const s_vent_t *v, const s_job_t *j)
{
    if (!j->opened || j->done)
        return false;
    return j->ready.len > 0 ||
           (j->has_input && !s_input_done(&j->in) && s_can_hold(v));
}

/* The job w (any worker when NULL) should serve next: the highest
 * priority among those it has the plugin for; among equals, the first
 * after the one served last, so they share the workers. */
static s_job_t *s_pick_job(s_vent_t *v, const s_worker_t *w)
{
    s_job_t *best = NULL;
    bool best_after = false;
    for (s_job_t *j = v->jobs; j; j = j->next) {
        if ((w && !s_worker_has(w, j->plugin)) || !s_job_wants(v, j))
            continue;
        bool after = j->slot > v->last_slot;
        if (!best || j->priority > best->priority ||
            (j->priority == best->priority && after && !best_after)) {
            best = j;
            best_after = after;
        }
    }
    return best;
}

/* Warns once per job that no connected worker has its plugin. */
static void s_warn_plugins(s_vent_t *v)
{
    for (s_job_t *j = v->jobs; j; j = j->next) {
        if (!v->n_workers || j->warned_no_plugin || !s_job_wants(v, j))
            continue;
        bool any = false;
        for (size_t k = 0; k < v->n_workers; k++)
            any |= s_worker_has(&v->workers[k], j->plugin);
        if (!any) {
            zp_warn("%zu workers connected, none has plugin '%s' (job %s); "
                    "waiting",
                    v->n_workers, j->plugin, j->id);
            j->warned_no_plugin = true;
        }
    }
}

/* Credit dispatch: hand out batches round-robin to workers with credit. */
/* The most one worker takes of what a job has ready, when that is all the
 * job is known to have: the workers with credit for it split it. Credit
 * sized on a fast job would otherwise hand every task of a short slow job
 * to the first worker while the others idle. */
static size_t s_fair_share(const s_vent_t *v, const s_job_t *j)
{
    if (j->has_input && !j->in.eof)
        return SIZE_MAX; /* more is coming: batches as big as credit */
    size_t eligible = 0;
    for (size_t i = 0; i < v->n_workers; i++)
        if (v->workers[i].credit > 0 && s_worker_has(&v->workers[i], j->plugin))
            eligible++;
    if (eligible <= 1)
        return SIZE_MAX;
    return (j->ready.len + eligible - 1) / eligible;
}

static int s_dispatch_credit(s_vent_t *v)
{
    bool found = true, sent = false;
    while (found) {
        found = false;
        for (size_t k = 0; k < v->n_workers; k++) {
            s_worker_t *w = &v->workers[(v->rr + k) % v->n_workers];
            if (w->credit == 0)
                continue;
            s_job_t *j = s_pick_job(v, w);
            if (!j)
                continue;
            size_t max = w->credit < v->cfg->batch ? w->credit : v->cfg->batch;
            if (s_batch_reserve(v, max) < 0 || s_refill(v, j, max) < 0)
                return -1;
            size_t share = s_fair_share(v, j);
            size_t n = s_collect(v, j, share < max ? share : max);
            if (n == 0)
                continue; /* nothing ready for it yet */
            v->rr = (v->rr + k + 1) % v->n_workers;
            v->last_slot = j->slot;
            if (s_send_batch(v, j, n, w, ZMQ_DONTWAIT) < 0) {
                if (errno == EHOSTUNREACH) {
                    s_worker_drop(v, w, "unreachable", true, true);
                    found = true;
                    break;
                }
                if (errno == EAGAIN)
                    continue;
                zp_error("send to worker %s: %s", w->id, zmq_strerror(errno));
                return -1;
            }
            w->credit -= n;
            w->sent += n;
            found = sent = true;
            break;
        }
    }
    if (!sent) /* only an idle dispatch can be waiting for a plugin */
        s_warn_plugins(v);
    return 0;
}

/* Push dispatch: send while the PUSH socket takes them. */
static int s_dispatch_push(s_vent_t *v)
{
    if (s_batch_reserve(v, v->cfg->batch) < 0)
        return -1;
    for (int k = 0; k < 64; k++) {
        s_job_t *j = s_pick_job(v, NULL);
        if (!j)
            return 0;
        if (s_refill(v, j, v->cfg->batch) < 0)
            return -1;
        size_t n = s_collect(v, j, v->cfg->batch);
        if (n == 0)
            return 0;
        v->last_slot = j->slot;
        if (s_send_batch(v, j, n, NULL, ZMQ_DONTWAIT) < 0)
            return errno == EAGAIN ? 0 : -1;
    }
    return 0;
}

/* ---- the sink ---------------------------------------------------------- */

static void s_send_open(s_vent_t *v, s_job_t *j)
{
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    o.job_id = j->id;
    o.plugin = j->plugin;
    o.max_attempts = j->max_attempts;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
    m.job_open = &o;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    j->last_open_us = zp_mono_us();
}

static void s_send_close(s_vent_t *v, s_job_t *j)
{
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    c.job_id = j->id;
    c.total = j->next_task_id;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &c;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    j->last_close_us = zp_mono_us();
}

static void s_send_status_request(s_vent_t *v, s_job_t *j)
{
    Zpipe__V1__StatusRequest s = ZPIPE__V1__STATUS_REQUEST__INIT;
    s.job_id = j->id;
    s.wait = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &s;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    j->last_status_us = zp_mono_us();
}

static void s_on_committed(s_vent_t *v, s_job_t *j,
                           const Zpipe__V1__Committed *c)
{
    s_worker_t *w = NULL;
    for (size_t i = 0; i < c->n_task_ids; i++) {
        if (c->task_ids[i] >= S_MAX_TASK_ID)
            continue;
        s_task_t *t = zp_idmap_get(v->tasks, S_KEY(j, c->task_ids[i]));
        if (!t)
            continue;
        if (!w || w->serial != t->worker) {
            w = NULL;
            for (size_t k = 0; k < v->n_workers; k++)
                if (v->workers[k].serial == t->worker)
                    w = &v->workers[k];
        }
        if (w)
            w->committed++;
        s_task_done(v, t);
    }
    for (size_t i = 0; i < c->n_retry_task_ids; i++) {
        if (c->retry_task_ids[i] >= S_MAX_TASK_ID)
            continue;
        s_task_t *t = zp_idmap_get(v->tasks, S_KEY(j, c->retry_task_ids[i]));
        uint32_t failed = i < c->n_retry_attempts ? c->retry_attempts[i] : 0;
        /* Only the attempt that failed is retried; a newer one is already
         * on its way. */
        if (!t || t->attempt != failed || t->state == S_QUEUED)
            continue;
        t->attempt++;
        s_queue_front(t);
        v->retried++;
    }
}

/* A new sink instance lost whatever it had not committed (made durable
 * and acknowledged): send every task in flight again, and close again. */
static void s_on_sink_restart(s_vent_t *v)
{
    size_t n = 0, cursor = 0;
    uint64_t key;
    void *p;
    while (zp_idmap_next(v->tasks, &cursor, &key, &p)) {
        s_task_t *t = p;
        if (t->state == S_INFLIGHT) {
            s_queue_front(t);
            n++;
        } else if (t->state == S_FAILING) {
            /* its failure record may be lost: write it again */
            t->state = S_QUEUED;
            t->attempt--;
            s_requeue(v, t, "worker_lost", "sink restarted");
        }
    }
    v->redelivered += n;
    for (s_job_t *j = v->jobs; j; j = j->next) {
        j->close_acked = false;
        j->last_close_us = 0;
    }
    zp_warn("the sink restarted; sending %zu uncommitted tasks again", n);
}

static void s_intake_ack(s_vent_t *v, s_job_t *j, bool ok, const char *error,
                         uint64_t first, uint64_t accepted);

/* Publishes that j opened (plugin) or closed (count = its tasks). */
static void s_event_job(s_vent_t *v, const s_job_t *j,
                        Zpipe__V1__EventKind kind)
{
    if (!v->events)
        return;
    Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
    ev.kind = kind;
    ev.job_id = j->id;
    ev.plugin = j->plugin;
    if (kind == ZPIPE__V1__EVENT_KIND__EVENT_JOB_CLOSED)
        ev.count = j->next_task_id;
    zp_events_emit(v->events, &ev);
}

static void s_on_control(s_vent_t *v, zmq_msg_t *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m =
        zp_decode(v->arena, zmq_msg_data(frame), zmq_msg_size(frame), 1u << 26);
    if (!m) {
        v->bad_messages++;
        v->bad_control++;
        zp_warn("dropped a malformed frame from the sink %s",
                v->cfg->sink_control);
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_ACK: {
        Zpipe__V1__Ack *a = m->ack;
        s_job_t *j = a->job_id ? s_job_find(v, a->job_id) : NULL;
        if (!j)
            return;
        if (!a->ok) {
            zp_error("sink refused job %s: %s", j->id,
                     a->error ? a->error : "?");
            if (j->prid_len && !j->producer_acked)
                s_intake_ack(v, j, false, a->error, 0, 0);
            j->refused = true;
            j->done = true;
            return;
        }
        if (a->sink_instance && *a->sink_instance) {
            if (v->sink_instance && strcmp(v->sink_instance, a->sink_instance))
                s_on_sink_restart(v);
            if (!v->sink_instance ||
                strcmp(v->sink_instance, a->sink_instance)) {
                free(v->sink_instance);
                v->sink_instance = strdup(a->sink_instance);
            }
        }
        if (!j->opened) {
            zp_info("job %s opened at the sink; dispatching (%s)", j->id,
                    v->cfg->dispatch);
            j->opened = true;
            s_event_job(v, j, ZPIPE__V1__EVENT_KIND__EVENT_JOB_OPENED);
            if (j->prid_len && !j->producer_acked) {
                s_intake_ack(v, j, true, NULL, 0, 0);
                j->producer_acked = true;
            }
        } else if (j->last_close_us && !j->close_acked) {
            j->close_acked = true;
            s_event_job(v, j, ZPIPE__V1__EVENT_KIND__EVENT_JOB_CLOSED);
            j->last_status_us = zp_mono_us();
        }
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_COMMITTED: {
        s_job_t *j =
            m->committed->job_id ? s_job_find(v, m->committed->job_id) : NULL;
        if (j)
            s_on_committed(v, j, m->committed);
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_JOB_STATUS: {
        Zpipe__V1__JobStatus *s = m->job_status;
        s_job_t *j = s->job_id ? s_job_find(v, s->job_id) : NULL;
        if (!j)
            return;
        if (s->state == ZPIPE__V1__JOB_STATE__JOB_DONE && j->close_acked &&
            !j->done) {
            zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed",
                    j->id, (unsigned long long)s->total,
                    (unsigned long long)s->succeeded,
                    (unsigned long long)s->failed);
            j->failed = s->failed;
            j->done = true;
        }
        return;
    }
    default:
        v->bad_messages++;
        v->bad_control++;
        zp_warn("dropped an unexpected %s from the sink", zp_kind_name(m));
    }
}
/* A connection dropped: a worker may have died. Sending to a vanished
 * peer fails at once on a ROUTER_MANDATORY socket, so a probe of every
 * worker finds the dead one in milliseconds instead of a heartbeat
 * timeout. Frozen or cut-off workers still need the timeout. */
static void s_probe_workers(s_vent_t *v)
{
    Zpipe__V1__Heartbeat hb = ZPIPE__V1__HEARTBEAT__INIT;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    for (size_t i = 0; i < v->n_workers;) {
        s_worker_t *w = &v->workers[i];
        if (zp_send(v->dispatch, w->rid, w->rid_len, &m, &v->scratch,
                    ZMQ_DONTWAIT) < 0 &&
            errno == EHOSTUNREACH) {
            s_worker_drop(v, w, "disconnected", true, true);
            continue;
        }
        i++;
    }
    v->last_probe_us = zp_mono_us();
}

static void s_on_monitor(s_vent_t *v)
{
    if (zp_monitor_drain(v->monitor) > 0) {
        v->probe_until_us = zp_mono_us() + 500000;
        s_probe_workers(v);
    }
}

/* Declares silent workers dead and sends expired leases again. */
static void s_check_liveness(s_vent_t *v)
{
    uint64_t now = zp_mono_us();
    for (size_t i = 0; i < v->n_workers;) {
        s_worker_t *w = &v->workers[i];
        if (now - w->last_seen_us > v->cfg->heartbeat_timeout_ms * 1000) {
            char why[96];
            snprintf(why, sizeof why, "no heartbeat for %.1f s",
                     (double)(now - w->last_seen_us) / 1e6);
            s_worker_drop(v, w, why, true, true);
            continue;
        }
        i++;
    }
    /* Two leases. The long one (--lease-ms) always holds. With a
     * deadline, a task out for deadline + 5 s expires too, unless its
     * worker finished something within that time: it is then working
     * through the tasks queued ahead of this one (a worker holds up to
     * its window; each may take the whole deadline). */
    uint64_t lease = v->cfg->lease_ms * 1000;
    size_t cursor = 0;
    uint64_t key;
    void *p;
    s_worker_t *w = NULL;
    while (zp_idmap_next(v->tasks, &cursor, &key, &p)) {
        s_task_t *t = p;
        if (t->state != S_INFLIGHT)
            continue;
        uint64_t dl = t->job->deadline_ms;
        uint64_t short_lease = dl ? dl * 1000 + 5000000 : 0;
        uint64_t out = now - t->sent_us;
        bool expired = lease && out > lease;
        if (!expired && short_lease && out > short_lease) {
            if (!w || w->serial != t->worker) {
                w = NULL;
                for (size_t i = 0; i < v->n_workers; i++)
                    if (v->workers[i].serial == t->worker)
                        w = &v->workers[i];
            }
            expired = !w || now - w->last_progress_us > short_lease;
        }
        if (expired) {
            v->expired++;
            s_requeue(v, t, "lease_expired", "not completed within its lease");
        }
    }
}

static void s_skip_record(void *ctx, const char *job, uint64_t task, bool ok,
                          uint64_t offset)
{
    s_job_t *j = ctx;
    (void)ok;
    (void)offset;
    if (strcmp(job, j->id) != 0 || task >= (1ull << 34))
        return;
    size_t word = (size_t)(task / 64);
    if (word >= j->skip_words) {
        size_t n = j->skip_words ? j->skip_words : 1024;
        while (n <= word)
            n *= 2;
        uint64_t *bits = realloc(j->skip, n * sizeof *bits);
        if (!bits)
            return;
        memset(bits + j->skip_words, 0, (n - j->skip_words) * sizeof *bits);
        j->skip = bits;
        j->skip_words = n;
    }
    j->skip[word] |= 1ull << (task % 64);
}

/* --resume-journal: learn which tasks of this job an earlier run committed.
 * Read only; the sink owns the journal. */
static int s_load_skip(s_vent_t *v, s_job_t *j)
{
    int fd = open(v->cfg->resume_journal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0; /* nothing to resume: run everything */
        zp_error("cannot read journal %s: %s", v->cfg->resume_journal,
                 strerror(errno));
        return -1;
    }
    zp_buf_t data = {0};
    for (;;) {
        if (zp_buf_reserve(&data, 1 << 20) < 0) {
            close(fd);
            zp_buf_free(&data);
            return -1;
        }
        ssize_t n = read(fd, data.data + data.len, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        data.len += (size_t)n;
    }
    close(fd);
    zp_journal_visitor_t vis = {NULL, NULL, s_skip_record};
    size_t valid;
    long events = zp_journal_replay(data.data, data.len, &vis, j, &valid);
    zp_buf_free(&data);
    if (events < 0) {
        zp_error("%s is not a zpipe journal", v->cfg->resume_journal);
        return -1;
    }
    return 0;
}

/* ---- the intake: producers open jobs, send tasks, close ---------------- */

static void s_intake_send(s_vent_t *v, const char *rid, size_t rid_len,
                          const char *job, bool ok, const char *error,
                          uint64_t first, uint64_t accepted)
{
    Zpipe__V1__Ack a = ZPIPE__V1__ACK__INIT;
    a.job_id = (char *)(job ? job : "");
    a.ok = ok;
    a.error = (char *)(error ? error : "");
    a.first_task_id = first;
    a.accepted = accepted;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_ACK;
    m.ack = &a;
    if (zp_send(v->intake, rid, rid_len, &m, &v->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("ack to a producer: %s", zmq_strerror(errno));
}

static void s_intake_ack(s_vent_t *v, s_job_t *j, bool ok, const char *error,
                         uint64_t first, uint64_t accepted)
{
    s_intake_send(v, j->prid, j->prid_len, j->id, ok, error, first, accepted);
}

static void s_intake_refuse(s_vent_t *v, const char *rid, size_t rid_len,
                            const char *job, const char *why)
{
    v->intake_bad++;
    if (v->intake_bad <= 10 || v->intake_bad % 1000 == 0)
        zp_warn("refused a producer's message%s%s: %s (%llu so far)",
                job && *job ? " for job " : "", job ? job : "", why,
                (unsigned long long)v->intake_bad);
    s_intake_send(v, rid, rid_len, job, false, why, 0, 0);
}

static bool s_plugin_name_ok(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-' ||
              p[i] == '.'))
            return false;
    return true;
}

/* Settings as the "KEY=VALUE" lines a TaskBatch carries. NULL with why
 * set when one is not acceptable; *out NULL when there are none. */
static int s_settings_text(char *const *pairs, size_t n, bool split,
                           const Zpipe__V1__Setting *const *kv, char **out,
                           const char **why)
{
    zp_buf_t b = {0};
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *key = split ? pairs[i] : kv[i]->key;
        const char *eq = split ? strchr(pairs[i], '=') : NULL;
        size_t kl =
            split ? (eq ? (size_t)(eq - key) : 0) : strlen(key ? key : "");
        const char *val =
            split ? (eq ? eq + 1 : "") : (kv[i]->value ? kv[i]->value : "");
        bool key_ok = kl > 0 && kl <= 64;
        for (size_t k = 0; key_ok && k < kl; k++) {
            char c = key[k];
            key_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        }
        if (!key_ok || strchr(val, '\n') || strlen(val) > 65536) {
            *why = "a setting needs a key of 1 to 64 of [A-Za-z0-9_.-] and a "
                   "value of at most 64 KiB without a newline";
            zp_buf_free(&b);
            return -1;
        }
        zp_buf_printf(&b, "%s%.*s=%s", i ? "\n" : "", (int)kl, key, val);
    }
    if (b.len) {
        zp_buf_append(&b, "", 1);
        *out = b.data; /* the buffer's bytes, NUL-terminated */
    }
    return 0;
}

static void s_on_intake_open(s_vent_t *v, const char *rid, size_t rid_len,
                             const Zpipe__V1__JobOpen *o)
{
    const char *given = o->job_id && *o->job_id ? o->job_id : NULL;
    if (!s_plugin_name_ok(o->plugin)) {
        s_intake_refuse(v, rid, rid_len, given,
                        "JobOpen needs a plugin name (1 to 64 of "
                        "[A-Za-z0-9_.-])");
        return;
    }
    if (given && !zp_job_id_valid(given)) {
        s_intake_refuse(v, rid, rid_len, "",
                        "job id must be 1 to 128 of [A-Za-z0-9_.:-]");
        return;
    }
    for (size_t k = 0; given && k < S_FINISHED_IDS; k++)
        if (v->finished[k] && strcmp(v->finished[k], given) == 0) {
            s_intake_refuse(v, rid, rid_len, given,
                            "job id already used by a finished job");
            return;
        }
    s_job_t *j = given ? s_job_find(v, given) : NULL;
    if (j) {
        /* Opening again is fine for its producer (a resent JobOpen). */
        if (j->prid_len != rid_len || memcmp(j->prid, rid, rid_len) != 0 ||
            strcmp(j->plugin, o->plugin) != 0) {
            s_intake_refuse(v, rid, rid_len, given, "job id already in use");
            return;
        }
        if (j->producer_acked)
            s_intake_ack(v, j, true, NULL, 0, 0);
        return;
    }
    char *settings = NULL;
    const char *why = NULL;
    if (s_settings_text(NULL, o->n_config, false,
                        (const Zpipe__V1__Setting *const *)o->config, &settings,
                        &why) < 0) {
        s_intake_refuse(v, rid, rid_len, given, why);
        return;
    }
    char *id = given ? strdup(given) : zp_random_id("job-", 6);
    j = id ? s_job_new(v, id, o->plugin) : NULL;
    free(id);
    if (!j) {
        free(settings);
        s_intake_refuse(v, rid, rid_len, given, "out of memory");
        return;
    }
    j->config = settings;
    memcpy(j->prid, rid, rid_len);
    j->prid_len = rid_len;
    if (o->max_attempts)
        j->max_attempts = o->max_attempts < 100 ? o->max_attempts : 100;
    if (o->deadline_ms)
        j->deadline_ms = o->deadline_ms;
    j->priority = o->priority;
    zp_info("job %s from a producer: plugin %s, priority %u, deadline %llu "
            "ms, %u attempts",
            j->id, j->plugin, j->priority, (unsigned long long)j->deadline_ms,
            j->max_attempts);
    s_send_open(v, j); /* the producer hears once the sink has it */
}

static void s_on_intake_tasks(s_vent_t *v, const char *rid, size_t rid_len,
                              const Zpipe__V1__TaskBatch *b)
{
    s_job_t *j = b->job_id ? s_job_find(v, b->job_id) : NULL;
    if (!j || j->has_input) {
        s_intake_refuse(v, rid, rid_len, b->job_id, "unknown job");
        return;
    }
    if (j->input_closed || j->done) {
        s_intake_refuse(v, rid, rid_len, j->id, "job already closed");
        return;
    }
    for (size_t i = 0; i < b->n_tasks; i++)
        if (b->tasks[i]->payload.len > v->cfg->max_task_bytes) {
            char why[160];
            snprintf(why, sizeof why,
                     "task %zu of the batch is %zu bytes, over the limit of "
                     "%llu; nothing of the batch was taken",
                     i, b->tasks[i]->payload.len,
                     (unsigned long long)v->cfg->max_task_bytes);
            s_intake_refuse(v, rid, rid_len, j->id, why);
            return;
        }
    if (j->next_task_id + b->n_tasks >= S_MAX_TASK_ID) {
        s_intake_refuse(v, rid, rid_len, j->id, "too many tasks in one job");
        return;
    }
    uint64_t first = j->next_task_id;
    for (size_t i = 0; i < b->n_tasks; i++)
        if (!s_task_add(v, j, b->tasks[i]->payload.data,
                        b->tasks[i]->payload.len)) {
            /* out of memory: what was added stays, and is said */
            s_intake_send(v, rid, rid_len, j->id, false, "out of memory", first,
                          i);
            return;
        }
    s_intake_send(v, rid, rid_len, j->id, true, NULL, first, b->n_tasks);
}

static void s_on_intake_close(s_vent_t *v, const char *rid, size_t rid_len,
                              const Zpipe__V1__JobClose *c)
{
    s_job_t *j = c->job_id ? s_job_find(v, c->job_id) : NULL;
    if (!j || j->has_input) {
        s_intake_refuse(v, rid, rid_len, c->job_id, "unknown job");
        return;
    }
    if (c->total && c->total != j->next_task_id) {
        char why[160];
        snprintf(why, sizeof why,
                 "total %llu does not match the %llu tasks received",
                 (unsigned long long)c->total,
                 (unsigned long long)j->next_task_id);
        s_intake_refuse(v, rid, rid_len, j->id, why);
        return;
    }
    if (!j->input_closed)
        zp_info("job %s: its producer closed it after %llu tasks", j->id,
                (unsigned long long)j->next_task_id);
    j->input_closed = true;
    s_intake_send(v, rid, rid_len, j->id, true, NULL, 0, j->next_task_id);
}

/* zpipe status: jobs and workers as this ventilator sees them. */
static void s_on_intake_status(s_vent_t *v, const char *rid, size_t rid_len)
{
    size_t nj = 0, nw = v->n_workers;
    for (s_job_t *j = v->jobs; j; j = j->next)
        nj++;
    Zpipe__V1__ClusterStatus st = ZPIPE__V1__CLUSTER_STATUS__INIT;
    Zpipe__V1__ClusterStatus__JobInfo *ji = calloc(nj + 1, sizeof *ji);
    Zpipe__V1__ClusterStatus__JobInfo **jp = calloc(nj + 1, sizeof *jp);
    Zpipe__V1__ClusterStatus__WorkerInfo *wi = calloc(nw + 1, sizeof *wi);
    Zpipe__V1__ClusterStatus__WorkerInfo **wp = calloc(nw + 1, sizeof *wp);
    if (ji && jp && wi && wp) {
        size_t i = 0;
        for (s_job_t *j = v->jobs; j; j = j->next, i++) {
            zpipe__v1__cluster_status__job_info__init(&ji[i]);
            ji[i].job_id = j->id;
            ji[i].plugin = j->plugin;
            ji[i].priority = j->priority;
            ji[i].tasks = j->next_task_id;
            ji[i].queued = j->ready.len < j->held ? j->ready.len : j->held;
            ji[i].in_flight = j->held - ji[i].queued;
            ji[i].closed = s_job_input_done(j);
            jp[i] = &ji[i];
        }
        uint64_t now = zp_mono_us();
        for (i = 0; i < nw; i++) {
            s_worker_t *w = &v->workers[i];
            zpipe__v1__cluster_status__worker_info__init(&wi[i]);
            wi[i].worker_id = w->id;
            wi[i].plugins = w->plugins;
            wi[i].n_plugins = w->n_plugins;
            wi[i].window = w->window;
            wi[i].credit = w->credit;
            wi[i].sent = w->sent;
            wi[i].committed = w->committed;
            wi[i].last_seen_ms = (now - w->last_seen_us) / 1000;
            wp[i] = &wi[i];
        }
        st.jobs = jp;
        st.n_jobs = nj;
        st.workers = wp;
        st.n_workers = nw;
    }
    st.held = zp_idmap_size(v->tasks);
    st.held_bytes = v->held_bytes;
    st.held_limit = s_inflight_limit(v);
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS;
    m.cluster_status = &st;
    zp_send(v->intake, rid, rid_len, &m, &v->scratch, ZMQ_DONTWAIT);
    free(ji);
    free(jp);
    free(wi);
    free(wp);
}

static void s_on_intake(s_vent_t *v, const char *rid, size_t rid_len,
                        zmq_msg_t *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m = zp_decode(v->arena, zmq_msg_data(frame),
                                zmq_msg_size(frame), S_INTAKE_FRAME);
    if (!m) {
        s_intake_refuse(v, rid, rid_len, "", "malformed message");
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_JOB_OPEN:
        s_on_intake_open(v, rid, rid_len, m->job_open);
        return;
    case ZPIPE__V1__MESSAGE__KIND_TASK_BATCH:
        s_on_intake_tasks(v, rid, rid_len, m->task_batch);
        return;
    case ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE:
        s_on_intake_close(v, rid, rid_len, m->job_close);
        return;
    case ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST:
        s_on_intake_status(v, rid, rid_len);
        return;
    default:
        s_intake_refuse(v, rid, rid_len, "",
                        "unexpected message kind on the intake");
    }
}

/* ---- the loop ---------------------------------------------------------- */

/* Opens the --input job. */
static s_job_t *s_open_file_job(s_vent_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    char *id = cfg->job_id ? strdup(cfg->job_id) : zp_random_id("job-", 6);
    if (!id)
        return NULL;
    if (!zp_job_id_valid(id)) {
        zp_error("job id '%s' must be 1 to 128 of [A-Za-z0-9_.:-]", id);
        free(id);
        return NULL;
    }
    s_job_t *j = s_job_new(v, id, cfg->plugin);
    free(id);
    if (!j)
        return NULL;
    const char *why = NULL;
    if (s_settings_text((char *const *)cfg->config.items, cfg->config.count,
                        true, NULL, &j->config, &why) < 0) {
        zp_error("--config: %s", why);
        s_job_free(j);
        return NULL;
    }
    j->has_input = true;
    if (strcmp(cfg->input, "-") == 0)
        j->in.fd = STDIN_FILENO;
    else {
        j->in.fd = open(cfg->input, O_RDONLY | O_CLOEXEC);
        if (j->in.fd < 0) {
            zp_error("cannot open input %s: %s", cfg->input, strerror(errno));
            s_job_remove(v, j);
            return NULL;
        }
    }
    if (cfg->resume_journal && s_load_skip(v, j) < 0) {
        s_job_remove(v, j);
        return NULL;
    }
    return j;
}

/* Keeps each job's conversation with the sink going: open, close, ask. */
static void s_tend_jobs(s_vent_t *v, uint64_t now)
{
    for (s_job_t *j = v->jobs, *next; j; j = next) {
        next = j->next;
        s_flush_failures(v, j);
        if (j->done) {
            if (j != v->file_job) {
                zp_info("job %s finished; %llu tasks read", j->id,
                        (unsigned long long)j->next_task_id);
                s_job_remove(v, j);
            }
            continue;
        }
        if (!j->opened && now - j->last_open_us >= S_RESEND_US)
            s_send_open(v, j);
        else if (j->opened && now - j->last_open_us >= S_KEEPALIVE_US)
            s_send_open(v, j); /* idempotent; teaches a restarted sink */
        if (j->opened && s_job_input_done(j) && !j->close_acked &&
            now - j->last_close_us >= S_RESEND_US) {
            if (!j->last_close_us && j->has_input)
                zp_info("job %s: input ended after %llu tasks; closing", j->id,
                        (unsigned long long)j->next_task_id);
            s_send_close(v, j);
        }
        if (j->close_acked && now - j->last_status_us >= S_KEEPALIVE_US)
            s_send_status_request(v, j);
    }
}

/* Renders the snapshot served at /metrics: the counters of the
 * accounting line, the workers and jobs (the last ZP_METRICS_MAX_SERIES of
 * each: series beyond are left out). */
static void s_metrics_render(s_vent_t *v, uint64_t now)
{
    zp_metrics_t *m = v->metrics;
    zp_metrics_begin(m);
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"zpipe_tasks_read_total", "Tasks read from inputs and producers.",
         offsetof(s_vent_t, read)},
        {"zpipe_tasks_dispatched_total",
         "Task dispatches to workers, redeliveries included.",
         offsetof(s_vent_t, dispatched)},
        {"zpipe_tasks_redelivered_total",
         "Tasks sent again after a lost worker, an expired lease or a sink "
         "restart.",
         offsetof(s_vent_t, redelivered)},
        {"zpipe_tasks_retried_total",
         "Tasks sent again after a retryable failure.",
         offsetof(s_vent_t, retried)},
        {"zpipe_tasks_given_up_total",
         "Tasks whose failure became final after max attempts.",
         offsetof(s_vent_t, gave_up)},
        {"zpipe_intake_refused_total",
         "Producer requests refused on the intake.",
         offsetof(s_vent_t, intake_bad)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        zp_metrics_family(m, counters[i].name, ZP_METRIC_COUNTER,
                          counters[i].help);
        zp_metrics_u64(m, counters[i].name, NULL,
                       *(const uint64_t *)((const char *)v + counters[i].off));
    }
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "dispatch", NULL},
                   v->bad_messages - v->bad_control);
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "control", NULL},
                   v->bad_control);
    zp_metrics_family(m, "zpipe_events_published_total", ZP_METRIC_COUNTER,
                      "Events published on --events.");
    zp_metrics_u64(m, "zpipe_events_published_total", NULL,
                   zp_events_sent(v->events));
    zp_metrics_family(m, "zpipe_tasks_held", ZP_METRIC_GAUGE,
                      "Tasks read and not yet committed by the sink.");
    zp_metrics_u64(m, "zpipe_tasks_held", NULL, zp_idmap_size(v->tasks));
    zp_metrics_family(m, "zpipe_tasks_held_bytes", ZP_METRIC_GAUGE,
                      "Payload bytes of the tasks held.");
    zp_metrics_u64(m, "zpipe_tasks_held_bytes", NULL, v->held_bytes);
    zp_metrics_family(m, "zpipe_workers", ZP_METRIC_GAUGE,
                      "Workers connected (credit dispatch).");
    zp_metrics_u64(m, "zpipe_workers", NULL, v->n_workers);

    size_t w0 = v->n_workers > ZP_METRICS_MAX_SERIES
                    ? v->n_workers - ZP_METRICS_MAX_SERIES
                    : 0;
    zp_metrics_family(m, "zpipe_worker_inflight", ZP_METRIC_GAUGE,
                      "Tasks a worker holds: its window less its credit.");
    for (size_t i = w0; i < v->n_workers; i++)
        zp_metrics_u64(m, "zpipe_worker_inflight",
                       (const char *const[]){"worker", v->workers[i].id, NULL},
                       v->workers[i].window - v->workers[i].credit);
    zp_metrics_family(m, "zpipe_worker_credit", ZP_METRIC_GAUGE,
                      "Tasks a worker has granted and not been sent.");
    for (size_t i = w0; i < v->n_workers; i++)
        zp_metrics_u64(m, "zpipe_worker_credit",
                       (const char *const[]){"worker", v->workers[i].id, NULL},
                       v->workers[i].credit);
    zp_metrics_family(m, "zpipe_worker_sent_tasks_total", ZP_METRIC_COUNTER,
                      "Tasks sent to a worker since it joined.");
    for (size_t i = w0; i < v->n_workers; i++)
        zp_metrics_u64(m, "zpipe_worker_sent_tasks_total",
                       (const char *const[]){"worker", v->workers[i].id, NULL},
                       v->workers[i].sent);
    zp_metrics_family(m, "zpipe_worker_committed_tasks_total",
                      ZP_METRIC_COUNTER,
                      "A worker's tasks the sink committed since it joined.");
    for (size_t i = w0; i < v->n_workers; i++)
        zp_metrics_u64(m, "zpipe_worker_committed_tasks_total",
                       (const char *const[]){"worker", v->workers[i].id, NULL},
                       v->workers[i].committed);

    size_t nj = 0;
    for (s_job_t *j = v->jobs; j; j = j->next)
        nj++;
    zp_metrics_family(m, "zpipe_jobs", ZP_METRIC_GAUGE,
                      "Jobs open at the ventilator.");
    zp_metrics_u64(m, "zpipe_jobs", NULL, nj);
    /* Jobs are in order of arrival: skip all but the most recent. */
    for (int pass = 0; pass < 2; pass++) {
        const char *name =
            pass ? "zpipe_job_inflight_tasks" : "zpipe_job_queued_tasks";
        zp_metrics_family(m, name, ZP_METRIC_GAUGE,
                          pass ? "A job's tasks sent and not yet committed."
                               : "A job's tasks waiting to be sent.");
        size_t k = 0;
        for (s_job_t *j = v->jobs; j; j = j->next, k++) {
            if (nj - k > ZP_METRICS_MAX_SERIES)
                continue;
            size_t queued = j->ready.len < j->held ? j->ready.len : j->held;
            zp_metrics_u64(m, name,
                           (const char *const[]){"job_id", j->id, NULL},
                           pass ? j->held - queued : queued);
        }
    }
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}

int zp_ventilator_run(const zp_ventilator_config_t *cfg)
{
    s_vent_t v = {.cfg = cfg};
    int rc = 3;
    v.push = strcmp(cfg->dispatch, "push") == 0;
    v.arena = zp_arena_new();
    v.tasks = zp_idmap_new();
    if (!v.arena || !v.tasks)
        goto fail_alloc;
    if (cfg->input) {
        v.file_job = s_open_file_job(&v);
        if (!v.file_job)
            goto fail_alloc;
    }
    if (cfg->metrics && *cfg->metrics) {
        char err[512];
        v.metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!v.metrics) {
            zp_error("ventilator: %s", err);
            goto fail_alloc;
        }
    }
    v.ctx = zmq_ctx_new();
    if (!v.ctx)
        goto fail_alloc;
    char sink_key[ZP_CURVE_KEY_LEN + 1];
    {
        char err[1024];
        v.curve = zp_curve_new(v.ctx, &cfg->curve, err, sizeof err);
        if (!v.curve || zp_curve_peer_key(v.curve, "sink-key", cfg->sink_key,
                                          sink_key, err, sizeof err) < 0) {
            zp_error("ventilator: %s", err);
            goto fail_ctx;
        }
    }
    v.dispatch =
        zp_socket(v.ctx, v.push ? ZMQ_PUSH : ZMQ_ROUTER, cfg->dispatch_endpoint,
                  true, 1u << 20, v.curve, NULL);
    if (!v.dispatch)
        goto fail_ctx;
    if (cfg->events && *cfg->events) {
        v.events = zp_events_new(v.ctx, cfg->events, "ventilator", v.curve);
        if (!v.events)
            goto fail_ctx;
    }
    if (!v.push)
        v.monitor = zp_curve_monitor(v.curve, v.dispatch,
                                     ZMQ_EVENT_DISCONNECTED, "dispatch");
    else if (zp_curve_watch(v.curve, v.dispatch, "dispatch") < 0)
        goto fail_ctx;
    if (cfg->intake) {
        v.intake = zmq_socket(v.ctx, ZMQ_ROUTER);
        if (!v.intake)
            goto fail_ctx;
        /* Bounded: a producer's messages queue here only this deep; past
         * that its sends wait (the ventilator reads the intake only while
         * it can hold more tasks). */
        int hwm = S_INTAKE_HWM;
        zmq_setsockopt(v.intake, ZMQ_RCVHWM, &hwm, sizeof hwm);
        int64_t cap = S_INTAKE_FRAME;
        zmq_setsockopt(v.intake, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
        int linger = ZP_LINGER_MS;
        zmq_setsockopt(v.intake, ZMQ_LINGER, &linger, sizeof linger);
        if (zp_curve_apply(v.curve, v.intake, cfg->intake, true, NULL) < 0 ||
            zp_curve_watch(v.curve, v.intake, "intake") < 0)
            goto fail_ctx;
        if (zmq_bind(v.intake, cfg->intake) != 0) {
            zp_error("bind %s: %s", cfg->intake, zmq_strerror(errno));
            goto fail_ctx;
        }
    }
    /* A stable identity, so a restarted sink knows us by the same name. */
    v.control = zmq_socket(v.ctx, ZMQ_DEALER);
    if (!v.control)
        goto fail_ctx;
    {
        char rid[200];
        char *rnd = v.file_job ? NULL : zp_random_id("", 6);
        snprintf(rid, sizeof rid, "vent-%.180s",
                 v.file_job ? v.file_job->id
                 : rnd      ? rnd
                            : "service");
        free(rnd);
        zmq_setsockopt(v.control, ZMQ_ROUTING_ID, rid, strlen(rid));
        zp_fast_reconnect(v.control);
        int linger = ZP_LINGER_MS;
        zmq_setsockopt(v.control, ZMQ_LINGER, &linger, sizeof linger);
        if (zp_curve_apply(v.curve, v.control, cfg->sink_control, false,
                           sink_key) < 0)
            goto fail_ctx;
        if (zmq_connect(v.control, cfg->sink_control) != 0) {
            zp_error("connect %s: %s", cfg->sink_control, zmq_strerror(errno));
            goto fail_ctx;
        }
    }
    if (v.file_job)
        zp_info("ventilator: job %s, plugin %s, input %s, dispatch %s on %s, "
                "sink %s%s%s",
                v.file_job->id, cfg->plugin, cfg->input, cfg->dispatch,
                cfg->dispatch_endpoint, cfg->sink_control,
                cfg->intake ? ", intake " : "", cfg->intake ? cfg->intake : "");
    else
        zp_info("ventilator: jobs from producers on %s, dispatch %s on %s, "
                "sink %s",
                cfg->intake, cfg->dispatch, cfg->dispatch_endpoint,
                cfg->sink_control);
    if (v.file_job)
        s_send_open(&v, v.file_job);

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    char rid[256];
    size_t rid_len = 0;
    uint64_t last_check = zp_mono_us();
    v.no_worker_since_us = zp_mono_us();
    bool done = false;
    while (!done && !zp_stopping()) {
        s_job_t *fj = v.file_job;
        /* Poll the input only when it is what holds dispatch back. */
        bool want_input = fj && fj->opened && !fj->in.eof &&
                          !s_line_buffered(&fj->in) && fj->ready.len == 0 &&
                          s_can_hold(&v) &&
                          (v.push || s_free_credit(&v, fj) > 0);
        bool want_out = v.push && s_pick_job(&v, NULL) != NULL;
        bool want_intake = v.intake && s_can_hold(&v);
        zmq_pollitem_t items[5] = {
            {v.dispatch, 0,
             (short)(v.push ? (want_out ? ZMQ_POLLOUT : 0) : ZMQ_POLLIN), 0},
            {v.control, 0, ZMQ_POLLIN, 0},
            {v.monitor, 0, (short)(v.monitor ? ZMQ_POLLIN : 0), 0},
            {v.intake, 0, (short)(want_intake ? ZMQ_POLLIN : 0), 0},
            {NULL, fj ? fj->in.fd : -1, ZMQ_POLLIN, 0},
        };
        int n =
            zmq_poll(items, want_input ? 5 : 4, v.probe_until_us ? 20 : 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        if (want_input && (items[4].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (s_fill(&fj->in, true) < 0) {
                zp_error("reading %s: %s", cfg->input, strerror(errno));
                break;
            }
        }
        /* A peer's last messages (a worker's bye) stay readable after
         * libzmq has forgotten its route, so they are read before the
         * monitor's disconnect makes us probe who is gone. */
        bool disconnect = items[2].revents & ZMQ_POLLIN;
        if (!v.push && ((items[0].revents & ZMQ_POLLIN) || disconnect))
            for (int k = 0; k < 256; k++) {
                int r = zp_recv(v.dispatch, true, rid, &rid_len, &frame,
                                ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r > 0) {
                    s_bad(&v, "a message of the wrong shape", 0);
                    continue;
                }
                s_on_dispatch(&v, rid, rid_len, &frame);
            }
        if (disconnect)
            s_on_monitor(&v);
        if (items[1].revents & ZMQ_POLLIN)
            for (int k = 0; k < 256; k++) {
                int r =
                    zp_recv(v.control, false, NULL, NULL, &frame, ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r == 0)
                    s_on_control(&v, &frame);
            }
        if (want_intake && (items[3].revents & ZMQ_POLLIN))
            for (int k = 0; k < 64 && s_can_hold(&v); k++) {
                int r = zp_recv(v.intake, true, rid, &rid_len, &frame,
                                ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r > 0) {
                    s_intake_refuse(&v, rid, rid_len, "",
                                    "a message of the wrong shape");
                    continue;
                }
                s_on_intake(&v, rid, rid_len, &frame);
            }
        int d = v.push ? s_dispatch_push(&v) : s_dispatch_credit(&v);
        if (d < 0)
            break;

        uint64_t now = zp_mono_us();
        s_tend_jobs(&v, now);
        if (zp_metrics_due(v.metrics, now))
            s_metrics_render(&v, now);
        if (v.file_job && v.file_job->done)
            done = true;
        if (v.probe_until_us) {
            /* The pipe of a dead peer may outlive its disconnect event by
             * a little: probe again for half a second. */
            if (now > v.probe_until_us)
                v.probe_until_us = 0;
            else if (now - v.last_probe_us >= 50000)
                s_probe_workers(&v);
        }
        if (now - last_check >= 100000) {
            if (!v.push)
                s_check_liveness(&v);
            last_check = now;
        }
        bool waiting = v.file_job || zp_idmap_size(v.tasks) > 0;
        if (!v.push && v.n_workers == 0 && cfg->no_worker_timeout_ms &&
            waiting && now > v.no_worker_since_us &&
            now - v.no_worker_since_us > cfg->no_worker_timeout_ms * 1000) {
            zp_error("no worker for %.1f s (--no-worker-timeout-ms); giving "
                     "up with %zu tasks not done",
                     (double)(now - v.no_worker_since_us) / 1e6,
                     zp_idmap_size(v.tasks));
            break;
        }
    }
    zmq_msg_close(&frame);
    if (v.file_job && v.file_job->done)
        rc = v.file_job->refused ? 3 : v.file_job->failed ? 1 : 0;
    else if (zp_stopping())
        rc = v.file_job ? 4 : 0;
    if (v.file_job && v.file_job->skipped)
        zp_info("job %s: skipped %llu tasks an earlier run committed",
                v.file_job->id, (unsigned long long)v.file_job->skipped);
    zp_info("ventilator stopping: %llu tasks read, %llu dispatches, "
            "%llu redelivered (%llu from lost workers, %llu leases expired), "
            "%llu retried on request, %llu given up, %llu bad messages, "
            "%llu refused from producers; at most %zu tasks held",
            (unsigned long long)v.read, (unsigned long long)v.dispatched,
            (unsigned long long)v.redelivered,
            (unsigned long long)v.lost_to_workers,
            (unsigned long long)v.expired, (unsigned long long)v.retried,
            (unsigned long long)v.gave_up, (unsigned long long)v.bad_messages,
            (unsigned long long)v.intake_bad, v.max_held);

fail_ctx:
    /* Nothing still queued matters once the job is done or abandoned:
     * tasks in flight are the workers' and control messages are resent. */
    zp_monitor_close(v.dispatch, &v.monitor);
    for (int i = 0; i < 3; i++) {
        void *sock = i == 0 ? v.control : i == 1 ? v.dispatch : v.intake;
        if (!sock)
            continue;
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
    }
    zp_events_destroy(&v.events); /* its last events get the linger */
    zp_curve_log_counts(v.curve, "ventilator");
    zp_curve_destroy(&v.curve);
    if (v.ctx)
        zmq_ctx_term(v.ctx);
fail_alloc:
    zp_metrics_destroy(&v.metrics);
    while (v.n_workers)
        s_worker_drop(&v, &v.workers[0], "ventilator stopping", false, false);
    free(v.workers);
    if (v.tasks) {
        size_t cursor = 0;
        uint64_t key;
        void *p;
        while (zp_idmap_next(v.tasks, &cursor, &key, &p))
            free(p);
        zp_idmap_destroy(&v.tasks);
    }
    while (v.jobs) {
        s_job_t *j = v.jobs;
        v.jobs = j->next;
        s_job_free(j);
    }
    free(v.fail_ptrs);
    free(v.pb_tasks);
    free(v.pb_ptrs);
    free(v.batch);
    zp_buf_free(&v.scratch);
    zp_arena_destroy(&v.arena);
    free(v.sink_instance);
    for (size_t k = 0; k < S_FINISHED_IDS; k++)
        free(v.finished[k]);
    return rc;
}
