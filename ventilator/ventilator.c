/* ventilator: input lines to task batches, sent against worker credit. */
#define _GNU_SOURCE
#include "ventilator.h"
#include "zp_codec.h"
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

#define S_READ_CHUNK  (1u << 20)
#define S_RESEND_US   1000000u
#define S_MAX_PLUGINS 64

typedef struct {
    char rid[256];
    size_t rid_len;
    char *id;
    char *plugins[S_MAX_PLUGINS];
    size_t n_plugins;
    bool has_plugin; /* has the job's plugin */
    uint64_t window, credit, sent;
    uint64_t last_seen_us;
} s_worker_t;

/* Lines of the input, read in chunks; a line is consumed only once the
 * batch carrying it has been sent. */
typedef struct {
    int fd;
    zp_buf_t buf;
    size_t start; /* first unconsumed byte */
    size_t scan;  /* where the next line of the batch being built begins */
    bool eof;
    uint64_t lineno;
} s_reader_t;

typedef enum { S_OPENING, S_RUNNING, S_CLOSING, S_WAITING, S_DONE } s_phase_t;

typedef struct {
    const zp_ventilator_config_t *cfg;
    char *job_id;
    bool push;
    void *ctx, *dispatch, *control;
    s_reader_t in;
    s_worker_t *workers;
    size_t n_workers, rr;
    s_phase_t phase;
    uint64_t next_task_id;
    uint64_t last_send_us; /* of the last control message */
    uint64_t bad_messages;
    uint64_t failed;
    bool warned_no_plugin;
    zp_arena_t *arena;
    zp_buf_t scratch;
    /* Batch under construction. */
    Zpipe__V1__Task *tasks;
    Zpipe__V1__Task **task_ptrs;
    size_t *offs, *lens;
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
    if (r->start > 0 && r->start == r->scan &&
        (r->start >= r->buf.len / 2 || r->buf.len - r->start < 4096)) {
        /* Nothing of the building batch points into the buffer: compact. */
        memmove(r->buf.data, r->buf.data + r->start, r->buf.len - r->start);
        r->buf.len -= r->start;
        r->scan -= r->start;
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

/* Next complete line from r->scan: 1 with offset/length, 0 if none yet. */
static int s_next_line(s_reader_t *r, size_t *off, size_t *len)
{
    size_t avail = r->buf.len - r->scan;
    if (avail == 0)
        return 0;
    char *p = r->buf.data + r->scan;
    char *nl = memchr(p, '\n', avail);
    if (nl) {
        *off = r->scan;
        *len = (size_t)(nl - p);
        r->scan += *len + 1;
        return 1;
    }
    if (r->eof) { /* last line without newline */
        *off = r->scan;
        *len = avail;
        r->scan += avail;
        return 1;
    }
    return 0;
}

static bool s_input_done(const s_reader_t *r)
{
    return r->eof && r->start == r->buf.len;
}

static s_worker_t *s_worker_find(s_vent_t *v, const char *rid, size_t len)
{
    for (size_t i = 0; i < v->n_workers; i++)
        if (v->workers[i].rid_len == len &&
            !memcmp(v->workers[i].rid, rid, len))
            return &v->workers[i];
    return NULL;
}

static void s_worker_drop(s_vent_t *v, s_worker_t *w, const char *why)
{
    zp_info("worker %s left (%s): sent %llu tasks", w->id, why,
            (unsigned long long)w->sent);
    free(w->id);
    for (size_t i = 0; i < w->n_plugins; i++)
        free(w->plugins[i]);
    size_t idx = (size_t)(w - v->workers);
    memmove(w, w + 1, (v->n_workers - idx - 1) * sizeof *w);
    v->n_workers--;
    if (v->rr >= v->n_workers)
        v->rr = 0;
}

static void s_on_hello(s_vent_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__Hello *h)
{
    s_worker_t *w = s_worker_find(v, rid, rid_len);
    if (w)
        s_worker_drop(v, w, "reconnected");
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
    v->n_workers++;
    zp_info("worker %s joined from %s pid %u: window %llu, credit %llu%s",
            w->id, h->host ? h->host : "?", h->pid,
            (unsigned long long)w->window, (unsigned long long)w->credit,
            w->has_plugin ? "" : ", lacks the job's plugin");
}

static void s_on_dispatch(s_vent_t *v, const char *rid, size_t rid_len,
                          zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    zp_arena_reset(v->arena);
    zp_message_t *m = zp_decode(v->arena, zmq_msg_data(frame), len, 1u << 20);
    if (!m) {
        v->bad_messages++;
        if (v->bad_messages <= 10 || v->bad_messages % 1000 == 0)
            zp_warn("dropped a malformed %zu-byte frame on %s; %llu bad so far",
                    len, v->cfg->dispatch_endpoint,
                    (unsigned long long)v->bad_messages);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HELLO) {
        s_on_hello(v, rid, rid_len, m->hello);
        return;
    }
    s_worker_t *w = s_worker_find(v, rid, rid_len);
    if (!w) {
        /* A worker must say hello first; anything else is a stranger. A
         * worker we forgot (silent too long, or we restarted) is told to
         * say hello again. */
        v->bad_messages++;
        if (v->bad_messages <= 10 || v->bad_messages % 1000 == 0)
            zp_warn(
                "dropped %s from a peer that never said hello; %llu bad so far",
                zp_kind_name(m), (unsigned long long)v->bad_messages);
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
        w->credit += m->credit->credit;
        if (w->credit > w->window) {
            zp_warn(
                "worker %s granted %llu credit over its window %llu; clamped",
                w->id, (unsigned long long)(w->credit - w->window),
                (unsigned long long)w->window);
            w->credit = w->window;
        }
        break;
    case ZPIPE__V1__MESSAGE__KIND_HEARTBEAT:
        break;
    case ZPIPE__V1__MESSAGE__KIND_BYE:
        s_worker_drop(
            v, w, m->bye->reason && *m->bye->reason ? m->bye->reason : "bye");
        break;
    default:
        v->bad_messages++;
        zp_warn("dropped an unexpected %s from worker %s", zp_kind_name(m),
                w->id);
    }
}

static int s_batch_reserve(s_vent_t *v, size_t n)
{
    if (n <= v->cap_batch)
        return 0;
    free(v->tasks);
    free(v->task_ptrs);
    free(v->offs);
    free(v->lens);
    v->tasks = malloc(n * sizeof *v->tasks);
    v->task_ptrs = malloc(n * sizeof *v->task_ptrs);
    v->offs = malloc(n * sizeof *v->offs);
    v->lens = malloc(n * sizeof *v->lens);
    if (!v->tasks || !v->task_ptrs || !v->offs || !v->lens) {
        v->cap_batch = 0;
        return -1;
    }
    v->cap_batch = n;
    return 0;
}

/* Collects up to max lines into the batch arrays; returns the count, or
 * -1 for a line over the size limit (logged). */
static long s_collect(s_vent_t *v, size_t max)
{
    s_reader_t *r = &v->in;
    r->scan = r->start;
    size_t n = 0, bytes = 0;
    while (n < max && bytes < v->cfg->batch_bytes) {
        size_t off, len;
        if (!s_next_line(r, &off, &len)) {
            if (n == 0 && !r->eof) {
                /* Make progress on a line longer than what is buffered. */
                if (s_fill(r, false) < 0)
                    return -1;
                if (s_next_line(r, &off, &len))
                    goto got;
            }
            break;
        }
    got:
        if (len > v->cfg->max_task_bytes) {
            zp_error("input line %llu is %zu bytes, over the limit of %llu "
                     "(--max-task-bytes)",
                     (unsigned long long)(r->lineno + n + 1), len,
                     (unsigned long long)v->cfg->max_task_bytes);
            return -1;
        }
        v->offs[n] = off;
        v->lens[n] = len;
        bytes += len;
        n++;
    }
    return (long)n;
}

/* Sends the n collected lines as one batch. Returns 0, or -1 with errno
 * from the socket (nothing consumed). */
static int s_send_batch(s_vent_t *v, size_t n, const s_worker_t *w, int flags)
{
    for (size_t i = 0; i < n; i++) {
        Zpipe__V1__Task *t = &v->tasks[i];
        zpipe__v1__task__init(t);
        t->task_id = v->next_task_id + i;
        t->payload.data = (uint8_t *)v->in.buf.data + v->offs[i];
        t->payload.len = v->lens[i];
        t->attempt = 1;
        t->deadline_ms = v->cfg->deadline_ms;
        v->task_ptrs[i] = t;
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = v->job_id;
    b.plugin = (char *)v->cfg->plugin;
    b.tasks = v->task_ptrs;
    b.n_tasks = n;
    b.dispatch_us = zp_now_us();
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    if (zp_send(v->dispatch, w ? w->rid : NULL, w ? w->rid_len : 0, &m,
                &v->scratch, flags) < 0)
        return -1;
    v->next_task_id += n;
    v->in.lineno += n;
    v->in.start = v->in.scan;
    return 0;
}

/* Credit dispatch: hand out batches round-robin to workers with credit. */
static int s_dispatch_credit(s_vent_t *v)
{
    for (;;) {
        if (s_input_done(&v->in))
            return 0;
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
            if (v->n_workers && !v->warned_no_plugin) {
                bool any = false;
                for (size_t k = 0; k < v->n_workers; k++)
                    any |= v->workers[k].has_plugin;
                if (!any) {
                    zp_warn(
                        "%zu workers connected, none has plugin '%s'; waiting",
                        v->n_workers, v->cfg->plugin);
                    v->warned_no_plugin = true;
                }
            }
            return 0;
        }
        size_t max = w->credit < v->cfg->batch ? w->credit : v->cfg->batch;
        if (s_batch_reserve(v, max) < 0)
            return -1;
        long n = s_collect(v, max);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0; /* input not ready yet */
        if (s_send_batch(v, (size_t)n, w, ZMQ_DONTWAIT) < 0) {
            if (errno == EHOSTUNREACH) {
                s_worker_drop(v, w, "unreachable");
                continue;
            }
            if (errno == EAGAIN)
                return 0;
            zp_error("send to worker %s: %s", w->id, zmq_strerror(errno));
            return -1;
        }
        w->credit -= (uint64_t)n;
        w->sent += (uint64_t)n;
    }
}

/* Push dispatch: send while the PUSH socket takes them. */
static int s_dispatch_push(s_vent_t *v)
{
    if (s_batch_reserve(v, v->cfg->batch) < 0)
        return -1;
    for (int k = 0; k < 64; k++) {
        if (s_input_done(&v->in))
            return 0;
        long n = s_collect(v, v->cfg->batch);
        if (n <= 0)
            return (int)n;
        if (s_send_batch(v, (size_t)n, NULL, ZMQ_DONTWAIT) < 0)
            return errno == EAGAIN ? 0 : -1;
    }
    return 0;
}

static void s_send_control(s_vent_t *v)
{
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    Zpipe__V1__StatusRequest s = ZPIPE__V1__STATUS_REQUEST__INIT;
    if (v->phase == S_OPENING) {
        o.job_id = v->job_id;
        o.plugin = (char *)v->cfg->plugin;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
        m.job_open = &o;
    } else if (v->phase == S_CLOSING) {
        c.job_id = v->job_id;
        c.total = v->next_task_id;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
        m.job_close = &c;
    } else if (v->phase == S_WAITING) {
        s.job_id = v->job_id;
        s.wait = true;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
        m.status_request = &s;
    } else
        return;
    if (zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("control to %s: %s", v->cfg->sink_control,
                 zmq_strerror(errno));
    v->last_send_us = zp_mono_us();
}

static void s_on_control(s_vent_t *v, zmq_msg_t *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m =
        zp_decode(v->arena, zmq_msg_data(frame), zmq_msg_size(frame), 1u << 24);
    if (!m) {
        v->bad_messages++;
        zp_warn("dropped a malformed frame from the sink %s",
                v->cfg->sink_control);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_ACK) {
        Zpipe__V1__Ack *a = m->ack;
        if (!a->job_id || strcmp(a->job_id, v->job_id) != 0)
            return;
        if (!a->ok) {
            zp_error("sink refused job %s: %s", v->job_id,
                     a->error ? a->error : "?");
            v->phase = S_DONE;
            v->failed = UINT64_MAX;
            return;
        }
        if (v->phase == S_OPENING) {
            zp_info("job %s opened at the sink; dispatching (%s)", v->job_id,
                    v->cfg->dispatch);
            v->phase = S_RUNNING;
        } else if (v->phase == S_CLOSING) {
            v->phase = S_WAITING;
            v->last_send_us = zp_mono_us();
        }
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_JOB_STATUS) {
        Zpipe__V1__JobStatus *s = m->job_status;
        if (!s->job_id || strcmp(s->job_id, v->job_id) != 0)
            return;
        if (s->state == ZPIPE__V1__JOB_STATE__JOB_DONE &&
            v->phase >= S_CLOSING) {
            zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed",
                    v->job_id, (unsigned long long)s->total,
                    (unsigned long long)s->succeeded,
                    (unsigned long long)s->failed);
            v->failed = s->failed;
            v->phase = S_DONE;
        }
    }
}

static void s_expire_workers(s_vent_t *v)
{
    uint64_t now = zp_mono_us();
    for (size_t i = 0; i < v->n_workers;) {
        s_worker_t *w = &v->workers[i];
        if (now - w->last_seen_us > v->cfg->worker_timeout_ms * 1000) {
            s_worker_drop(v, w, "silent past --worker-timeout");
            continue;
        }
        i++;
    }
}

int zp_ventilator_run(const zp_ventilator_config_t *cfg)
{
    s_vent_t v = {.cfg = cfg, .phase = S_OPENING};
    int rc = 3;
    v.push = strcmp(cfg->dispatch, "push") == 0;
    v.job_id = cfg->job_id ? strdup(cfg->job_id) : zp_random_id("job-", 6);
    v.arena = zp_arena_new();
    if (!v.job_id || !v.arena)
        goto fail_alloc;
    if (strcmp(cfg->input, "-") == 0)
        v.in.fd = STDIN_FILENO;
    else {
        v.in.fd = open(cfg->input, O_RDONLY | O_CLOEXEC);
        if (v.in.fd < 0) {
            zp_error("cannot open input %s: %s", cfg->input, strerror(errno));
            goto fail_alloc;
        }
    }
    v.ctx = zmq_ctx_new();
    if (!v.ctx)
        goto fail_input;
    v.dispatch = zp_socket(v.ctx, v.push ? ZMQ_PUSH : ZMQ_ROUTER,
                           cfg->dispatch_endpoint, true, 1u << 20);
    if (!v.dispatch)
        goto fail_ctx;
    v.control =
        zp_socket(v.ctx, ZMQ_DEALER, cfg->sink_control, false, 1u << 24);
    if (!v.control)
        goto fail_ctx;
    zp_info(
        "ventilator: job %s, plugin %s, input %s, dispatch %s on %s, sink %s",
        v.job_id, cfg->plugin, cfg->input, cfg->dispatch,
        cfg->dispatch_endpoint, cfg->sink_control);
    s_send_control(&v);

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    char rid[256];
    size_t rid_len = 0;
    uint64_t last_expire = zp_mono_us();
    while (v.phase != S_DONE && !zp_stopping()) {
        /* Input wanted: running, nothing complete buffered, credit around. */
        bool want_input = false, want_out = false;
        if (v.phase == S_RUNNING && !v.in.eof) {
            v.in.scan = v.in.start;
            size_t off, len;
            bool have_line = s_next_line(&v.in, &off, &len) == 1;
            v.in.scan = v.in.start;
            if (v.push)
                want_input = !have_line;
            else
                for (size_t i = 0; i < v.n_workers && !have_line; i++)
                    if (v.workers[i].credit && v.workers[i].has_plugin)
                        want_input = true;
        }
        if (v.push && v.phase == S_RUNNING && !s_input_done(&v.in) &&
            !want_input)
            want_out = true;
        zmq_pollitem_t items[3] = {
            {v.dispatch, 0,
             (short)(v.push ? (want_out ? ZMQ_POLLOUT : 0) : ZMQ_POLLIN), 0},
            {v.control, 0, ZMQ_POLLIN, 0},
            {NULL, v.in.fd, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, want_input ? 3 : 2, 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        if (want_input && (items[2].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
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
                    v.bad_messages++;
                    continue;
                }
                s_on_dispatch(&v, rid, rid_len, &frame);
            }
        if (items[1].revents & ZMQ_POLLIN)
            for (int k = 0; k < 64; k++) {
                int r =
                    zp_recv(v.control, false, NULL, NULL, &frame, ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r == 0)
                    s_on_control(&v, &frame);
            }
        if (v.phase == S_RUNNING) {
            int d = v.push ? s_dispatch_push(&v) : s_dispatch_credit(&v);
            if (d < 0)
                break;
            if (s_input_done(&v.in)) {
                zp_info("job %s: input ended after %llu tasks; closing",
                        v.job_id, (unsigned long long)v.next_task_id);
                v.phase = S_CLOSING;
                s_send_control(&v);
            }
        }
        uint64_t now = zp_mono_us();
        if (v.phase != S_RUNNING && now - v.last_send_us >= S_RESEND_US)
            s_send_control(&v);
        if (!v.push && now - last_expire >= 500000) {
            s_expire_workers(&v);
            last_expire = now;
        }
    }
    zmq_msg_close(&frame);
    if (v.phase == S_DONE)
        rc = v.failed == UINT64_MAX ? 3 : v.failed ? 1 : 0;
    else if (zp_stopping())
        rc = 4;
    for (size_t i = 0; i < v.n_workers; i++)
        zp_info("worker %s was sent %llu tasks", v.workers[i].id,
                (unsigned long long)v.workers[i].sent);
    zp_info("ventilator stopping: %llu bad messages",
            (unsigned long long)v.bad_messages);

fail_ctx:
    /* Nothing still queued matters once the job is done or abandoned:
     * tasks in flight are the workers' and control messages are resent. */
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
        s_worker_drop(&v, &v.workers[0], "ventilator stopping");
    free(v.workers);
    free(v.tasks);
    free(v.task_ptrs);
    free(v.offs);
    free(v.lens);
    zp_buf_free(&v.in.buf);
    zp_buf_free(&v.scratch);
    zp_arena_destroy(&v.arena);
    free(v.job_id);
    return rc;
}
