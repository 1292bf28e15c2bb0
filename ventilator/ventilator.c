/* ventilator: input lines to task batches, sent against worker credit, kept
 * until the sink commits them. */
#define _GNU_SOURCE
#include "ventilator.h"
#include "zp_codec.h"
#include "zp_idmap.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_util.h"

#include <errno.h>
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

typedef enum {
    S_QUEUED,   /* waiting in the ready queue */
    S_INFLIGHT, /* sent to a worker */
    S_FAILING,  /* out of attempts; failure record sent to the sink */
} s_tstate_t;

/* One task from read until committed. */
typedef struct {
    uint64_t id;
    uint32_t attempt; /* charged attempts: failures and expired leases */
    uint8_t state;
    uint16_t losses; /* deliveries lost with a worker, not charged */
    uint64_t worker; /* serial of the worker holding it */
    uint64_t sent_us;
    size_t len;
    uint8_t data[];
} s_task_t;

typedef struct {
    char rid[256];
    size_t rid_len;
    uint64_t serial;
    char *id;
    char *plugins[S_MAX_PLUGINS];
    size_t n_plugins;
    bool has_plugin; /* has the job's plugin */
    uint64_t window, credit, sent;
    uint64_t last_seen_us;
    uint64_t last_progress_us; /* it last finished something (credit) */
    uint64_t tasks_done;       /* from its heartbeats */
} s_worker_t;

typedef struct {
    int fd;
    zp_buf_t buf;
    size_t start; /* first unread byte */
    bool eof;
} s_reader_t;

typedef struct {
    const zp_ventilator_config_t *cfg;
    char *job_id;
    bool push;
    void *ctx, *dispatch, *control, *monitor;
    uint64_t probe_until_us, last_probe_us;
    s_reader_t in;

    zp_idmap_t *tasks; /* id -> s_task_t*, everything not yet committed */
    zp_iddeque_t ready;
    uint64_t next_task_id;

    s_worker_t *workers;
    size_t n_workers, rr;
    uint64_t next_serial;
    uint64_t no_worker_since_us;

    bool opened, close_acked, done;
    char *sink_instance; /* from the sink's acks; a change = it restarted */
    uint64_t *skip;      /* --resume-journal: tasks already committed */
    size_t skip_words;
    uint64_t skipped;
    uint64_t last_open_us, last_close_us, last_status_us;
    uint64_t failed;
    bool refused;

    /* Counters for the accounting line. */
    uint64_t dispatched, redelivered, lost_to_workers, expired, retried;
    uint64_t gave_up, bad_messages;
    size_t max_held;     /* most tasks held at once (read, not committed) */
    uint64_t held_bytes; /* their payload bytes */
    bool warned_no_plugin;

    /* Failure records the ventilator itself owes the sink. */
    Zpipe__V1__Result *fail_results;
    Zpipe__V1__Result **fail_ptrs;
    size_t n_fail, cap_fail;

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

/* Turns up to want more input lines into queued tasks. Returns -1 for a
 * fatal input error (logged). */
static int s_refill(s_vent_t *v, size_t want)
{
    while (v->ready.len < want && s_can_hold(v)) {
        const char *line;
        size_t len;
        if (!s_next_line(&v->in, &line, &len)) {
            if (v->in.eof)
                return 0;
            if (s_fill(&v->in, false) < 0) {
                zp_error("reading %s: %s", v->cfg->input, strerror(errno));
                return -1;
            }
            if (!s_next_line(&v->in, &line, &len))
                return 0;
        }
        if (len > v->cfg->max_task_bytes) {
            zp_error("input line %llu is %zu bytes, over the limit of %llu "
                     "(--max-task-bytes)",
                     (unsigned long long)v->next_task_id + 1, len,
                     (unsigned long long)v->cfg->max_task_bytes);
            return -1;
        }
        uint64_t tid = v->next_task_id;
        if (tid / 64 < v->skip_words && (v->skip[tid / 64] >> (tid % 64)) & 1) {
            v->next_task_id++; /* committed by an earlier run */
            v->skipped++;
            continue;
        }
        s_task_t *t = malloc(sizeof *t + len);
        if (!t || zp_idmap_put(v->tasks, v->next_task_id, t) < 0 ||
            zp_iddeque_push_back(&v->ready, v->next_task_id) < 0) {
            zp_error("out of memory holding task %llu",
                     (unsigned long long)v->next_task_id);
            return -1;
        }
        t->id = v->next_task_id++;
        t->attempt = 1;
        t->state = S_QUEUED;
        t->losses = 0;
        t->worker = 0;
        t->sent_us = 0;
        t->len = len;
        memcpy(t->data, line, len);
        v->held_bytes += len;
        if (zp_idmap_size(v->tasks) > v->max_held)
            v->max_held = zp_idmap_size(v->tasks);
    }
    return 0;
}

/* Queues a failure record for t, which is out of attempts. */
static void s_give_up(s_vent_t *v, s_task_t *t, const char *cause,
                      const char *why)
{
    if (v->n_fail == v->cap_fail) {
        size_t cap = v->cap_fail ? 2 * v->cap_fail : 64;
        Zpipe__V1__Result *r = realloc(v->fail_results, cap * sizeof *r);
        if (!r)
            return; /* retried at the next lease scan */
        v->fail_results = r;
        v->cap_fail = cap;
    }
    Zpipe__V1__Result *r = &v->fail_results[v->n_fail++];
    zpipe__v1__result__init(r);
    r->task_id = t->id;
    r->status = ZPIPE__V1__STATUS__STATUS_FAILED;
    r->cause = (char *)cause;
    r->attempt = t->attempt;
    char *msg = NULL;
    if (asprintf(&msg, "%s on attempt %u of %llu; giving up", why, t->attempt,
                 (unsigned long long)v->cfg->max_attempts) < 0)
        msg = NULL;
    r->error = msg;
    t->state = S_FAILING;
    v->gave_up++;
}

static void s_flush_failures(s_vent_t *v)
{
    if (!v->n_fail)
        return;
    Zpipe__V1__Result **ptrs = realloc(v->fail_ptrs, v->n_fail * sizeof *ptrs);
    if (!ptrs)
        return;
    v->fail_ptrs = ptrs;
    for (size_t i = 0; i < v->n_fail; i++)
        ptrs[i] = &v->fail_results[i];
    Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
    rb.job_id = v->job_id;
    rb.worker_id = "ventilator";
    rb.results = ptrs;
    rb.n_results = v->n_fail;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    if (zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT) < 0) {
        zp_warn("failure records to the sink: %s; will retry",
                zmq_strerror(errno));
        return;
    }
    for (size_t i = 0; i < v->n_fail; i++)
        free(v->fail_results[i].error);
    v->n_fail = 0;
}

/* Sends t again later with its attempt raised, or gives up on it. */
static void s_requeue(s_vent_t *v, s_task_t *t, const char *cause,
                      const char *why)
{
    if (t->attempt >= v->cfg->max_attempts) {
        s_give_up(v, t, cause, why);
        return;
    }
    t->attempt++;
    t->state = S_QUEUED;
    t->worker = 0;
    if (zp_iddeque_push_front(&v->ready, t->id) < 0)
        zp_error("out of memory requeueing task %llu",
                 (unsigned long long)t->id);
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
        s_give_up(v, t, "worker_lost", msg);
        return;
    }
    t->state = S_QUEUED;
    t->worker = 0;
    if (zp_iddeque_push_front(&v->ready, t->id) < 0)
        zp_error("out of memory requeueing task %llu",
                 (unsigned long long)t->id);
    v->redelivered++;
}

static s_worker_t *s_worker_find(s_vent_t *v, const char *rid, size_t len)
{
    for (size_t i = 0; i < v->n_workers; i++)
        if (v->workers[i].rid_len == len &&
            !memcmp(v->workers[i].rid, rid, len))
            return &v->workers[i];
    return NULL;
}

/* Forgets a worker; with lost = true its tasks are sent again. */
static void s_worker_drop(s_vent_t *v, s_worker_t *w, const char *why,
                          bool lost)
{
    size_t held = 0;
    if (lost) {
        size_t cursor = 0;
        uint64_t id;
        void *p;
        while (zp_idmap_next(v->tasks, &cursor, &id, &p)) {
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
    zp_info("worker %s left (%s): sent %llu tasks%s", w->id, why,
            (unsigned long long)w->sent, lost ? "" : "");
    if (held)
        zp_warn("worker %s was holding %zu tasks; sending them again", w->id,
                held);
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
        s_worker_drop(v, w, "said hello again", true);
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
        if (strcmp(h->plugins[i], v->cfg->plugin) == 0)
            w->has_plugin = true;
    }
    w->window = h->window ? h->window : 1;
    w->credit = h->credit < w->window ? h->credit : w->window;
    w->last_seen_us = zp_mono_us();
    w->last_progress_us = w->last_seen_us;
    v->n_workers++;
    zp_info("worker %s joined from %s pid %u: window %llu, credit %llu%s",
            w->id, h->host ? h->host : "?", h->pid,
            (unsigned long long)w->window, (unsigned long long)w->credit,
            w->has_plugin ? "" : ", lacks the job's plugin");
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
            true);
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

/* Pops up to max queued tasks into v->batch; returns the count. */
static size_t s_collect(s_vent_t *v, size_t max)
{
    size_t n = 0, bytes = 0;
    uint64_t id;
    while (n < max && bytes < v->cfg->batch_bytes &&
           zp_iddeque_pop_front(&v->ready, &id)) {
        s_task_t *t = zp_idmap_get(v->tasks, id);
        if (!t || t->state != S_QUEUED)
            continue; /* committed or given up meanwhile */
        v->batch[n++] = t;
        bytes += t->len;
    }
    return n;
}

/* Sends the n collected tasks as one batch; on failure puts them back at
 * the front of the queue and returns -1 with errno. */
static int s_send_batch(s_vent_t *v, size_t n, s_worker_t *w, int flags)
{
    for (size_t i = 0; i < n; i++) {
        s_task_t *t = v->batch[i];
        Zpipe__V1__Task *p = &v->pb_tasks[i];
        zpipe__v1__task__init(p);
        p->task_id = t->id;
        p->payload.data = t->data;
        p->payload.len = t->len;
        p->attempt = t->attempt;
        p->deadline_ms = v->cfg->deadline_ms;
        v->pb_ptrs[i] = p;
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = v->job_id;
    b.plugin = (char *)v->cfg->plugin;
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
            zp_iddeque_push_front(&v->ready, v->batch[i]->id);
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

static uint64_t s_free_credit(const s_vent_t *v)
{
    uint64_t c = 0;
    for (size_t i = 0; i < v->n_workers; i++)
        if (v->workers[i].has_plugin)
            c += v->workers[i].credit;
    return c;
}

/* Credit dispatch: hand out batches round-robin to workers with credit. */
static int s_dispatch_credit(s_vent_t *v)
{
    for (;;) {
        s_worker_t *w = NULL;
        for (size_t k = 0; k < v->n_workers; k++) {
            s_worker_t *c = &v->workers[(v->rr + k) % v->n_workers];
            if (c->credit > 0 && c->has_plugin) {
                w = c;
                v->rr = (v->rr + k + 1) % v->n_workers;
                break;
            }
        }
        if (!w) {
            if (v->n_workers && !v->warned_no_plugin && s_free_credit(v) == 0) {
                bool any = false;
                for (size_t k = 0; k < v->n_workers; k++)
                    any |= v->workers[k].has_plugin;
                if (!any) {
                    zp_warn("%zu workers connected, none has plugin '%s'; "
                            "waiting",
                            v->n_workers, v->cfg->plugin);
                    v->warned_no_plugin = true;
                }
            }
            return 0;
        }
        size_t max = w->credit < v->cfg->batch ? w->credit : v->cfg->batch;
        if (s_batch_reserve(v, max) < 0 || s_refill(v, max) < 0)
            return -1;
        size_t n = s_collect(v, max);
        if (n == 0)
            return 0; /* nothing ready */
        if (s_send_batch(v, n, w, ZMQ_DONTWAIT) < 0) {
            if (errno == EHOSTUNREACH) {
                s_worker_drop(v, w, "unreachable", true);
                continue;
            }
            if (errno == EAGAIN)
                return 0;
            zp_error("send to worker %s: %s", w->id, zmq_strerror(errno));
            return -1;
        }
        w->credit -= n;
        w->sent += n;
    }
}

/* Push dispatch: send while the PUSH socket takes them. */
static int s_dispatch_push(s_vent_t *v)
{
    if (s_batch_reserve(v, v->cfg->batch) < 0)
        return -1;
    for (int k = 0; k < 64; k++) {
        if (s_refill(v, v->cfg->batch) < 0)
            return -1;
        size_t n = s_collect(v, v->cfg->batch);
        if (n == 0)
            return 0;
        if (s_send_batch(v, n, NULL, ZMQ_DONTWAIT) < 0)
            return errno == EAGAIN ? 0 : -1;
    }
    return 0;
}

static void s_send_open(s_vent_t *v)
{
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    o.job_id = v->job_id;
    o.plugin = (char *)v->cfg->plugin;
    o.max_attempts = (uint32_t)v->cfg->max_attempts;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
    m.job_open = &o;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    v->last_open_us = zp_mono_us();
}

static void s_send_close(s_vent_t *v)
{
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    c.job_id = v->job_id;
    c.total = v->next_task_id;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &c;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    v->last_close_us = zp_mono_us();
}

static void s_send_status_request(s_vent_t *v)
{
    Zpipe__V1__StatusRequest s = ZPIPE__V1__STATUS_REQUEST__INIT;
    s.job_id = v->job_id;
    s.wait = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &s;
    zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT);
    v->last_status_us = zp_mono_us();
}

static void s_on_committed(s_vent_t *v, const Zpipe__V1__Committed *c)
{
    for (size_t i = 0; i < c->n_task_ids; i++) {
        s_task_t *t = zp_idmap_remove(v->tasks, c->task_ids[i]);
        if (t)
            v->held_bytes -= t->len;
        free(t);
    }
    for (size_t i = 0; i < c->n_retry_task_ids; i++) {
        s_task_t *t = zp_idmap_get(v->tasks, c->retry_task_ids[i]);
        uint32_t failed = i < c->n_retry_attempts ? c->retry_attempts[i] : 0;
        /* Only the attempt that failed is retried; a newer one is already
         * on its way. */
        if (!t || t->attempt != failed || t->state == S_QUEUED)
            continue;
        t->attempt++;
        t->state = S_QUEUED;
        t->worker = 0;
        zp_iddeque_push_front(&v->ready, t->id);
        v->retried++;
    }
}

/* A new sink instance lost whatever it had not committed (made durable
 * and acknowledged): send every task in flight again, and close again. */
static void s_on_sink_restart(s_vent_t *v)
{
    size_t n = 0, cursor = 0;
    uint64_t id;
    void *p;
    while (zp_idmap_next(v->tasks, &cursor, &id, &p)) {
        s_task_t *t = p;
        if (t->state == S_INFLIGHT) {
            t->state = S_QUEUED;
            t->worker = 0;
            zp_iddeque_push_front(&v->ready, t->id);
            n++;
        } else if (t->state == S_FAILING) {
            /* its failure record may be lost: write it again */
            t->state = S_QUEUED;
            t->attempt--;
            s_requeue(v, t, "worker_lost", "sink restarted");
        }
    }
    v->redelivered += n;
    v->close_acked = false;
    v->last_close_us = 0;
    zp_warn("job %s: the sink restarted; sending %zu uncommitted tasks again",
            v->job_id, n);
}

static void s_on_control(s_vent_t *v, zmq_msg_t *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m =
        zp_decode(v->arena, zmq_msg_data(frame), zmq_msg_size(frame), 1u << 26);
    if (!m) {
        v->bad_messages++;
        zp_warn("dropped a malformed frame from the sink %s",
                v->cfg->sink_control);
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_ACK: {
        Zpipe__V1__Ack *a = m->ack;
        if (!a->job_id || strcmp(a->job_id, v->job_id) != 0)
            return;
        if (!a->ok) {
            zp_error("sink refused job %s: %s", v->job_id,
                     a->error ? a->error : "?");
            v->refused = true;
            v->done = true;
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
        if (!v->opened) {
            zp_info("job %s opened at the sink; dispatching (%s)", v->job_id,
                    v->cfg->dispatch);
            v->opened = true;
        } else if (v->last_close_us && !v->close_acked) {
            v->close_acked = true;
            v->last_status_us = zp_mono_us();
        }
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_COMMITTED:
        if (m->committed->job_id && !strcmp(m->committed->job_id, v->job_id))
            s_on_committed(v, m->committed);
        return;
    case ZPIPE__V1__MESSAGE__KIND_JOB_STATUS: {
        Zpipe__V1__JobStatus *s = m->job_status;
        if (!s->job_id || strcmp(s->job_id, v->job_id) != 0)
            return;
        if (s->state == ZPIPE__V1__JOB_STATE__JOB_DONE && v->close_acked) {
            zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed",
                    v->job_id, (unsigned long long)s->total,
                    (unsigned long long)s->succeeded,
                    (unsigned long long)s->failed);
            v->failed = s->failed;
            v->done = true;
        }
        return;
    }
    default:
        v->bad_messages++;
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
            s_worker_drop(v, w, "disconnected", true);
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
            s_worker_drop(v, w, why, true);
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
    uint64_t short_lease =
        v->cfg->deadline_ms ? v->cfg->deadline_ms * 1000 + 5000000 : 0;
    if (!lease && !short_lease)
        return;
    size_t cursor = 0;
    uint64_t id;
    void *p;
    s_worker_t *w = NULL;
    while (zp_idmap_next(v->tasks, &cursor, &id, &p)) {
        s_task_t *t = p;
        if (t->state != S_INFLIGHT)
            continue;
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
    s_vent_t *v = ctx;
    (void)ok;
    (void)offset;
    if (strcmp(job, v->job_id) != 0 || task >= (1ull << 34))
        return;
    size_t word = (size_t)(task / 64);
    if (word >= v->skip_words) {
        size_t n = v->skip_words ? v->skip_words : 1024;
        while (n <= word)
            n *= 2;
        uint64_t *bits = realloc(v->skip, n * sizeof *bits);
        if (!bits)
            return;
        memset(bits + v->skip_words, 0, (n - v->skip_words) * sizeof *bits);
        v->skip = bits;
        v->skip_words = n;
    }
    v->skip[word] |= 1ull << (task % 64);
}

/* --resume-journal: learn which tasks of this job an earlier run committed.
 * Read only; the sink owns the journal. */
static int s_load_skip(s_vent_t *v)
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
    long events = zp_journal_replay(data.data, data.len, &vis, v, &valid);
    zp_buf_free(&data);
    if (events < 0) {
        zp_error("%s is not a zpipe journal", v->cfg->resume_journal);
        return -1;
    }
    return 0;
}

int zp_ventilator_run(const zp_ventilator_config_t *cfg)
{
    s_vent_t v = {.cfg = cfg};
    int rc = 3;
    v.push = strcmp(cfg->dispatch, "push") == 0;
    v.job_id = cfg->job_id ? strdup(cfg->job_id) : zp_random_id("job-", 6);
    v.arena = zp_arena_new();
    v.tasks = zp_idmap_new();
    if (!v.job_id || !v.arena || !v.tasks)
        goto fail_alloc;
    if (!zp_job_id_valid(v.job_id)) {
        zp_error("job id '%s' must be 1 to 128 of [A-Za-z0-9_.:-]", v.job_id);
        goto fail_alloc;
    }
    if (strcmp(cfg->input, "-") == 0)
        v.in.fd = STDIN_FILENO;
    else {
        v.in.fd = open(cfg->input, O_RDONLY | O_CLOEXEC);
        if (v.in.fd < 0) {
            zp_error("cannot open input %s: %s", cfg->input, strerror(errno));
            goto fail_alloc;
        }
    }
    if (cfg->resume_journal && s_load_skip(&v) < 0)
        goto fail_input;
    v.ctx = zmq_ctx_new();
    if (!v.ctx)
        goto fail_input;
    v.dispatch = zp_socket(v.ctx, v.push ? ZMQ_PUSH : ZMQ_ROUTER,
                           cfg->dispatch_endpoint, true, 1u << 20);
    if (!v.dispatch)
        goto fail_ctx;
    if (!v.push)
        v.monitor = zp_monitor_open(v.ctx, v.dispatch, ZMQ_EVENT_DISCONNECTED,
                                    "dispatch");
    /* A stable identity, so a restarted sink knows us by the same name. */
    v.control = zmq_socket(v.ctx, ZMQ_DEALER);
    if (!v.control)
        goto fail_ctx;
    {
        char rid[200];
        snprintf(rid, sizeof rid, "vent-%.180s", v.job_id);
        zmq_setsockopt(v.control, ZMQ_ROUTING_ID, rid, strlen(rid));
        zp_fast_reconnect(v.control);
        int linger = ZP_LINGER_MS;
        zmq_setsockopt(v.control, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(v.control, cfg->sink_control) != 0) {
            zp_error("connect %s: %s", cfg->sink_control, zmq_strerror(errno));
            goto fail_ctx;
        }
    }
    zp_info("ventilator: job %s, plugin %s, input %s, dispatch %s on %s, "
            "sink %s",
            v.job_id, cfg->plugin, cfg->input, cfg->dispatch,
            cfg->dispatch_endpoint, cfg->sink_control);
    s_send_open(&v);

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    char rid[256];
    size_t rid_len = 0;
    uint64_t last_check = zp_mono_us();
    v.no_worker_since_us = zp_mono_us();
    while (!v.done && !zp_stopping()) {
        /* Poll the input only when it is what holds dispatch back. */
        bool want_input = v.opened && !v.in.eof && !s_line_buffered(&v.in) &&
                          v.ready.len == 0 && s_can_hold(&v) &&
                          (v.push || s_free_credit(&v) > 0);
        bool want_out = v.push && v.opened && v.ready.len + !v.in.eof > 0;
        zmq_pollitem_t items[4] = {
            {v.dispatch, 0,
             (short)(v.push ? (want_out ? ZMQ_POLLOUT : 0) : ZMQ_POLLIN), 0},
            {v.control, 0, ZMQ_POLLIN, 0},
            {v.monitor, 0, (short)(v.monitor ? ZMQ_POLLIN : 0), 0},
            {NULL, v.in.fd, ZMQ_POLLIN, 0},
        };
        int n =
            zmq_poll(items, want_input ? 4 : 3, v.probe_until_us ? 20 : 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_on_monitor(&v);
        if (want_input && (items[3].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (s_fill(&v.in, true) < 0) {
                zp_error("reading %s: %s", cfg->input, strerror(errno));
                break;
            }
        }
        if (!v.push && (items[0].revents & ZMQ_POLLIN))
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
        if (items[1].revents & ZMQ_POLLIN)
            for (int k = 0; k < 256; k++) {
                int r =
                    zp_recv(v.control, false, NULL, NULL, &frame, ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r == 0)
                    s_on_control(&v, &frame);
            }
        if (v.opened && !v.done) {
            int d = v.push ? s_dispatch_push(&v) : s_dispatch_credit(&v);
            if (d < 0)
                break;
        }
        s_flush_failures(&v);

        uint64_t now = zp_mono_us();
        if (!v.opened && now - v.last_open_us >= S_RESEND_US)
            s_send_open(&v);
        else if (v.opened && now - v.last_open_us >= S_KEEPALIVE_US)
            s_send_open(&v); /* idempotent; teaches a restarted sink */
        if (v.opened && s_input_done(&v.in) && !v.close_acked &&
            now - v.last_close_us >= S_RESEND_US) {
            if (!v.last_close_us)
                zp_info("job %s: input ended after %llu tasks; closing",
                        v.job_id, (unsigned long long)v.next_task_id);
            s_send_close(&v);
        }
        if (v.close_acked && now - v.last_status_us >= S_KEEPALIVE_US)
            s_send_status_request(&v);
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
        if (!v.push && v.n_workers == 0 && cfg->no_worker_timeout_ms &&
            now > v.no_worker_since_us &&
            now - v.no_worker_since_us > cfg->no_worker_timeout_ms * 1000) {
            zp_error("job %s: no worker for %.1f s (--no-worker-timeout-ms); "
                     "giving up with %zu tasks not done",
                     v.job_id, (double)(now - v.no_worker_since_us) / 1e6,
                     zp_idmap_size(v.tasks) + (s_input_done(&v.in) ? 0 : 1));
            break;
        }
    }
    zmq_msg_close(&frame);
    if (v.done)
        rc = v.refused ? 3 : v.failed ? 1 : 0;
    else if (zp_stopping())
        rc = 4;
    if (v.skipped)
        zp_info("job %s: skipped %llu tasks an earlier run committed", v.job_id,
                (unsigned long long)v.skipped);
    zp_info("ventilator stopping: job %s, %llu tasks read, %llu dispatches, "
            "%llu redelivered (%llu from lost workers, %llu leases expired), "
            "%llu retried on request, %llu given up, %llu bad messages; "
            "at most %zu tasks held",
            v.job_id, (unsigned long long)v.next_task_id,
            (unsigned long long)v.dispatched, (unsigned long long)v.redelivered,
            (unsigned long long)v.lost_to_workers,
            (unsigned long long)v.expired, (unsigned long long)v.retried,
            (unsigned long long)v.gave_up, (unsigned long long)v.bad_messages,
            v.max_held);

fail_ctx:
    /* Nothing still queued matters once the job is done or abandoned:
     * tasks in flight are the workers' and control messages are resent. */
    zp_monitor_close(v.dispatch, &v.monitor);
    for (int i = 0; i < 2; i++) {
        void *sock = i ? v.control : v.dispatch;
        if (!sock)
            continue;
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
    }
    zmq_ctx_term(v.ctx);
fail_input:
    if (v.in.fd != STDIN_FILENO)
        close(v.in.fd);
fail_alloc:
    while (v.n_workers)
        s_worker_drop(&v, &v.workers[0], "ventilator stopping", false);
    free(v.workers);
    if (v.tasks) {
        size_t cursor = 0;
        uint64_t id;
        void *p;
        while (zp_idmap_next(v.tasks, &cursor, &id, &p))
            free(p);
        zp_idmap_destroy(&v.tasks);
    }
    zp_iddeque_free(&v.ready);
    for (size_t i = 0; i < v.n_fail; i++)
        free(v.fail_results[i].error);
    free(v.fail_results);
    free(v.fail_ptrs);
    free(v.pb_tasks);
    free(v.pb_ptrs);
    free(v.batch);
    zp_buf_free(&v.in.buf);
    zp_buf_free(&v.scratch);
    zp_arena_destroy(&v.arena);
    free(v.sink_instance);
    free(v.skip);
    free(v.job_id);
    return rc;
}
