/* vent_shell_workers: the dispatch socket. Workers' hello, credit,
 * heartbeats and byes in; task batches out, as the scheduler decides;
 * input refill before each dispatch. Liveness and leases:
 * vent_shell_leases.c. */
#include "vent_bisect.h"
#include "vent_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void zp_vent_shell_bad(zp_vent_shell_t *v, const char *what, size_t len)
{
    v->n.bad_messages++;
    if (zp_log_sampled(v->n.bad_messages))
        zp_warn("dropped %s (%zu bytes) on %s; %llu bad messages so far", what,
                len, v->cfg->dispatch_endpoint,
                (unsigned long long)v->n.bad_messages);
}

/* Publishes that t will run again (as attempt). */
static void s_event_retried(zp_vent_shell_t *v, const zp_vent_task_t *t,
                            uint32_t attempt, zp_cause_t cause, const char *why)
{
    if (!v->events)
        return;
    Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
    ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED;
    ev.job_id = t->job->id;
    ev.task_id = t->id;
    ev.attempt = attempt;
    ev.cause = (char *)zp_cause_name(cause);
    ev.detail = (char *)why;
    zp_events_emit(v->events, &ev);
}

void zp_vent_shell_retried(zp_vent_shell_t *v, const zp_vent_task_t *t,
                           zp_vent_retry_result_t r, zp_cause_t cause,
                           const char *why)
{
    if (r.decision == ZP_VENT_REQUEUE) {
        s_event_retried(v, t, r.attempt, cause, why);
        v->n.redelivered++;
    } else if (r.recorded)
        v->n.gave_up++;
}

void zp_vent_shell_requeue(zp_vent_shell_t *v, zp_vent_task_t *t,
                           zp_cause_t cause, const char *why)
{
    zp_vent_shell_retried(v, t, zp_vent_requeue(t, cause, why), cause, why);
}

void zp_vent_shell_drop_worker(zp_vent_shell_t *v, zp_vent_worker_t *w,
                               const char *why, bool lost, bool dead)
{
    size_t held = lost ? zp_vent_shell_requeue_lost(v, w, why) : 0;
    v->n.lost_to_workers += held;
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
    zp_vent_workers_remove(v->workers, w, zp_mono_us());
    zp_vent_sched_workers_changed(&v->sched, zp_vent_workers_count(v->workers));
}

static void s_event_joined(zp_vent_shell_t *v, const zp_vent_worker_t *w,
                           const Zpipe__V1__Hello *h)
{
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

/* A worker of another cluster: told why (Bye), and logged. */
static void s_refuse_hello(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                           const Zpipe__V1__Hello *h, const char *why)
{
    v->n.workers_refused++;
    if (zp_log_sampled(v->n.workers_refused))
        zp_warn("refused worker %s from %s pid %u: %s (%llu refused so far)",
                h->worker_id ? h->worker_id : "?", h->host ? h->host : "?",
                h->pid, why, (unsigned long long)v->n.workers_refused);
    Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
    bye.reason = (char *)why;
    zp_message_t r = ZPIPE__V1__MESSAGE__INIT;
    r.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
    r.bye = &bye;
    zp_send(v->dispatch, rid, rid_len, &r, &v->scratch, ZMQ_DONTWAIT);
}

static void s_on_hello(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__Hello *h)
{
    char buf[256];
    const char *why = zp_cluster_check(v->cfg->cluster, h->cluster, "worker",
                                       buf, sizeof buf);
    if (why) {
        s_refuse_hello(v, rid, rid_len, h, why);
        return;
    }
    zp_vent_worker_t *w = zp_vent_workers_find(v->workers, rid, rid_len);
    if (w) /* a restarted worker with the same id holds nothing of ours */
        zp_vent_shell_drop_worker(v, w, "said hello again", true, true);
    if (zp_vent_shell_refused(v, rid, rid_len, h))
        return;
    w = zp_vent_workers_add(v->workers, rid, rid_len, h, zp_mono_us());
    if (!w) {
        zp_error("out of memory adding a worker");
        return;
    }
    zp_info("worker %s joined from %s pid %u: window %llu, credit %llu, "
            "%zu plugins",
            w->id, h->host ? h->host : "?", h->pid,
            (unsigned long long)w->window, (unsigned long long)w->credit,
            w->n_plugins);
    if (v->events)
        s_event_joined(v, w, h);
}

void zp_vent_shell_bye(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const char *why)
{
    Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
    bye.reason = (char *)why;
    zp_message_t r = ZPIPE__V1__MESSAGE__INIT;
    r.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
    r.bye = &bye;
    zp_send(v->dispatch, rid, rid_len, &r, &v->scratch, ZMQ_DONTWAIT);
}

/* A message from a peer that never said hello: a worker we forgot
 * (declared dead, or we restarted) is told to say hello again; one in
 * quarantine is not answered (it was told, and its hello is refused). */
static void s_on_stranger(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                          const zp_message_t *m, size_t len)
{
    if (zp_vent_quarantine_has_rid(v->quarantine, rid, rid_len, zp_mono_us()))
        return;
    zp_vent_shell_bad(v, "a message from a peer that never said hello", len);
    if (m->kind_case != ZPIPE__V1__MESSAGE__KIND_CREDIT &&
        m->kind_case != ZPIPE__V1__MESSAGE__KIND_HEARTBEAT)
        return;
    zp_vent_shell_bye(v, rid, rid_len, "unknown worker; say hello");
}

void zp_vent_shell_on_dispatch(zp_vent_shell_t *v, const char *rid,
                               size_t rid_len, void *frame)
{
    size_t len = zmq_msg_size(frame);
    zp_arena_reset(v->arena);
    zp_message_t *m = zp_decode(v->arena, zmq_msg_data(frame), len, 1u << 20);
    if (!m) {
        zp_vent_shell_bad(v, "a malformed frame", len);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HELLO) {
        s_on_hello(v, rid, rid_len, m->hello);
        return;
    }
    zp_vent_worker_t *w = zp_vent_workers_find(v->workers, rid, rid_len);
    if (!w) {
        s_on_stranger(v, rid, rid_len, m, len);
        return;
    }
    uint64_t now = zp_mono_us();
    w->last_seen_us = now;
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_CREDIT: {
        uint64_t over = zp_vent_worker_credit(w, m->credit->credit, now);
        if (over)
            zp_warn("worker %s granted %llu credit over its window %llu; "
                    "clamped",
                    w->id, (unsigned long long)over,
                    (unsigned long long)w->window);
        break;
    }
    case ZPIPE__V1__MESSAGE__KIND_HEARTBEAT:
        zp_vent_worker_heartbeat(w, m->heartbeat->tasks_done, now);
        break;
    case ZPIPE__V1__MESSAGE__KIND_BYE:
        /* A leaving worker finished or handed back what it held; anything
         * still in flight with it is sent again. */
        zp_vent_shell_drop_worker(
            v, w, m->bye->reason && *m->bye->reason ? m->bye->reason : "bye",
            true, false);
        break;
    default:
        zp_vent_shell_bad(v, "an unexpected message kind", len);
    }
}

void zp_vent_shell_probe_workers(zp_vent_shell_t *v)
{
    Zpipe__V1__Heartbeat hb = ZPIPE__V1__HEARTBEAT__INIT;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    for (size_t i = 0; i < zp_vent_workers_count(v->workers);) {
        zp_vent_worker_t *w = zp_vent_workers_at(v->workers, i);
        if (zp_send(v->dispatch, w->rid, w->rid_len, &m, &v->scratch,
                    ZMQ_DONTWAIT) < 0 &&
            errno == EHOSTUNREACH) {
            zp_vent_shell_drop_worker(v, w, "disconnected", true, true);
            continue;
        }
        i++;
    }
    v->last_probe_us = zp_mono_us();
}

void zp_vent_shell_input_error(const zp_vent_shell_t *v,
                               const zp_vent_reader_t *in)
{
    zp_error("reading %s: %s", v->cfg->input,
             errno == EPROTO && in->why[0] ? in->why : strerror(errno));
}

/* Turns up to want input lines of j into queued tasks (lines an earlier
 * run committed are skipped), stopping once *budget payload bytes were
 * taken (spent from it). Returns 1 when the budget stopped it, 0, or -1
 * for a fatal input error (logged). */
static int s_refill_job(zp_vent_shell_t *v, zp_vent_job_t *j, size_t want,
                        uint64_t *budget)
{
    uint64_t windows = zp_vent_workers_windows(v->workers);
    size_t workers = zp_vent_workers_count(v->workers);
    while (j->ready.len < want &&
           zp_vent_tasks_can_hold(v->tasks, windows, workers)) {
        const char *line;
        size_t len;
        if (!zp_vent_reader_next(&j->in, &line, &len)) {
            if (j->in.eof)
                return 0;
            if (zp_vent_reader_fill(&j->in, false) < 0) {
                zp_vent_shell_input_error(v, &j->in);
                return -1;
            }
            if (!zp_vent_reader_next(&j->in, &line, &len))
                return 0;
        }
        if (len > v->cfg->max_task_bytes) {
            /* Lines are numbered from 1, frames from 0 like task ids. */
            zp_error("input %s %llu is %zu bytes, over the limit of %llu "
                     "(--max-task-bytes)",
                     j->in.frames ? "frame" : "line",
                     (unsigned long long)j->next_task_id + !j->in.frames, len,
                     (unsigned long long)v->cfg->max_task_bytes);
            return -1;
        }
        if (zp_bitset_has(&j->skip, j->next_task_id)) {
            j->next_task_id++; /* committed by an earlier run */
            j->skipped++;
            continue;
        }
        /* A long line is not copied: its task points into the block it
         * was read into. */
        uint64_t stamp = v->cfg->trace ? zp_now_us() : 0;
        zp_vent_chunk_t *chunk = zp_vent_reader_chunk(&j->in);
        if (!(len >= ZP_VENT_REF_MIN && chunk
                  ? zp_vent_tasks_add_ref(v->tasks, j, chunk, line, len, stamp)
                  : zp_vent_tasks_add(v->tasks, j, line, len, stamp)))
            return -1;
        if (len >= *budget) {
            *budget = 0;
            return 1;
        }
        *budget -= len;
    }
    return 0;
}

int zp_vent_shell_refill(zp_vent_shell_t *v)
{
    bool can_hold = zp_vent_shell_can_hold(v);
    zp_vent_job_t *jobs = zp_vent_jobs_first(v->jobs);
    uint64_t budget =
        zp_vent_sched_refill_bytes(v->workers, v->cfg->batch_bytes);
    for (zp_vent_job_t *j = jobs; j; j = j->next) {
        if (!j->has_input && !j->lines.n)
            continue;
        size_t want;
        if (v->push)
            want = zp_vent_sched_pick(&v->sched, jobs, NULL, can_hold) == j
                       ? v->batch_max
                       : 0;
        else
            want = zp_vent_sched_refill_want(j, v->workers, can_hold);
        if (!j->has_input) { /* a producer's lines, already held */
            if (want && zp_vent_tasks_from_lines(v->tasks, j, want) < 0)
                return 0; /* out of memory (logged): a later round */
            continue;
        }
        int r = want ? s_refill_job(v, j, want, &budget) : 0;
        if (r != 0)
            return r; /* an error, or the budget is spent */
    }
    return 0;
}

static int s_batch_reserve(zp_vent_shell_t *v, size_t n)
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
    for (size_t i = 0; i < n; i++) /* s_send_batch sets every field */
        zpipe__v1__task__init(&v->pb_tasks[i]);
    v->cap_batch = n;
    return 0;
}

/* A payload this big that lies in an input block goes to a worker that
 * takes payload frames as a frame of its own, sent from the block. */
#define S_FRAME_MIN ((size_t)64 << 10)

/* Sends m (a batch whose tasks name payload frames) to w, then the
 * payloads of the n tasks in v->batch that have one, in order, each from
 * the block it was read into (no copy). 0, or -1 with errno when the
 * batch itself could not be sent (nothing was). */
static int s_send_parts(zp_vent_shell_t *v, zp_vent_worker_t *w,
                        const zp_message_t *m, size_t n, int flags)
{
    zmq_msg_t head;
    size_t len = zp_encoded_size(m);
    if (zmq_msg_init_size(&head, len) != 0) {
        errno = ENOMEM;
        return -1;
    }
    zp_encode_to(m, zmq_msg_data(&head), len);
    if (zmq_send(v->dispatch, w->rid, w->rid_len, flags | ZMQ_SNDMORE) < 0 ||
        zmq_msg_send(&head, v->dispatch, flags | ZMQ_SNDMORE) < 0) {
        int e = errno;
        zmq_msg_close(&head);
        errno = e;
        return -1;
    }
    /* The rest of a message is taken once its first frame was. */
    size_t last = n;
    while (last > 0 && !v->pb_tasks[last - 1].payload_frame)
        last--;
    for (size_t i = 0; i < last; i++) {
        if (!v->pb_tasks[i].payload_frame)
            continue;
        zp_vent_task_t *t = v->batch[i];
        zmq_msg_t part;
        zp_vent_chunk_t *hold = zp_vent_chunk_ref(t->chunk);
        if (zmq_msg_init_data(&part, (void *)t->data, t->len,
                              zp_vent_chunk_free, hold) != 0) {
            zp_vent_chunk_unref(&hold);
            zmq_msg_init_size(&part, 0); /* the worker drops the batch */
        }
        if (zmq_msg_send(&part, v->dispatch, i + 1 < last ? ZMQ_SNDMORE : 0) <
            0) {
            zmq_msg_close(&part);
            zp_error("send to worker %s: %s (a batch cut short: its tasks "
                     "run again when their leases expire)",
                     w->id, zmq_strerror(errno));
            break;
        }
    }
    return 0;
}

/* Sends the n collected tasks of j as one batch; on failure puts them back
 * at the front of the queue and returns -1 with errno. */
static int s_send_batch(zp_vent_shell_t *v, zp_vent_job_t *j, size_t n,
                        zp_vent_worker_t *w, int flags)
{
    uint32_t parts = 0;
    for (size_t i = 0; i < n; i++) {
        zp_vent_task_t *t = v->batch[i];
        Zpipe__V1__Task *p = &v->pb_tasks[i];
        p->task_id = t->id;
        if (t->len >= S_FRAME_MIN && t->chunk && w && w->payload_frames) {
            p->payload.data = NULL;
            p->payload.len = 0;
            p->payload_frame = ++parts; /* sent after the batch */
        } else {
            p->payload.data = (uint8_t *)t->data;
            p->payload.len = t->len;
            p->payload_frame = 0;
        }
        p->attempt = t->attempt;
        p->deadline_ms = j->deadline_ms;
        p->queued_us = t->queued_us;
        p->lease = zp_lease(&j->key, t->id, t->attempt);
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
    if ((parts ? s_send_parts(v, w, &m, n, flags)
               : zp_send(v->dispatch, w ? w->rid : NULL, w ? w->rid_len : 0, &m,
                         &v->scratch, flags)) < 0) {
        int e = errno;
        for (size_t i = n; i-- > 0;)
            zp_iddeque_push_front(&j->ready, ZP_VENT_KEY(j, v->batch[i]->id));
        errno = e;
        return -1;
    }
    uint64_t now = zp_mono_us();
    for (size_t i = 0; i < n; i++) {
        v->batch[i]->state = ZP_VENT_INFLIGHT;
        v->batch[i]->worker = w ? w->serial : 0;
        v->batch[i]->sent_us = now;
    }
    if (!v->n.dispatched && v->resumed_us)
        zp_info("journal: dispatching the resumed jobs' tasks again %llu ms "
                "after start",
                (unsigned long long)(now - v->resumed_us) / 1000);
    v->n.dispatched += n;
    return 0;
}

/* Warns once per job that no connected worker has its plugin. */
static void s_warn_plugins(zp_vent_shell_t *v)
{
    size_t nw = zp_vent_workers_count(v->workers);
    bool can_hold = zp_vent_shell_can_hold(v);
    for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs); j; j = j->next) {
        if (!nw || j->warned_no_plugin || !zp_vent_sched_wants(j, can_hold))
            continue;
        bool any = false;
        for (size_t k = 0; k < nw; k++)
            any |= zp_vent_worker_has(zp_vent_workers_at(v->workers, k),
                                      j->plugin);
        if (!any) {
            zp_warn("%zu workers connected, none has plugin '%s' (job %s); "
                    "waiting",
                    nw, j->plugin, j->id);
            j->warned_no_plugin = true;
        }
    }
}

/* One batch to the first worker of the round (from sched.rr) that has
 * credit and a job with tasks ready. Returns 1 when one was sent, 2 when
 * a worker was dropped (look again), 0 when none could be, -1 on a fatal
 * error (logged). */
static int s_dispatch_one(zp_vent_shell_t *v)
{
    size_t nw = zp_vent_workers_count(v->workers);
    bool can_hold = zp_vent_shell_can_hold(v);
    zp_vent_job_t *jobs = zp_vent_jobs_first(v->jobs);
    for (size_t k = 0; k < nw; k++) {
        zp_vent_worker_t *w =
            zp_vent_workers_at(v->workers, (v->sched.rr + k) % nw);
        if (w->credit == 0)
            continue;
        zp_vent_job_t *j = zp_vent_sched_pick(&v->sched, jobs, w, can_hold);
        uint32_t group;
        if (!j || !zp_vent_shell_bisect_gate(v, w, j, &group))
            continue;
        size_t max = zp_vent_sched_batch(w->credit, v->batch_max);
        if (s_batch_reserve(v, max) < 0)
            return -1;
        size_t share = zp_vent_sched_fair_share(j, v->workers);
        size_t n = zp_vent_bisect_collect(v->tasks, j, group,
                                          share < max ? share : max,
                                          v->cfg->batch_bytes, v->batch);
        if (n == 0)
            continue; /* nothing ready for it yet */
        zp_vent_sched_served(&v->sched, k, nw, j);
        if (s_send_batch(v, j, n, w, ZMQ_DONTWAIT) < 0) {
            if (errno == EHOSTUNREACH) {
                zp_vent_shell_drop_worker(v, w, "unreachable", true, true);
                return 2;
            }
            if (errno == EAGAIN)
                continue;
            zp_error("send to worker %s: %s", w->id, zmq_strerror(errno));
            return -1;
        }
        zp_vent_worker_sent(w, n);
        return 1;
    }
    return 0;
}

/* Credit dispatch: batches round-robin to workers with credit. */
static int s_dispatch_credit(zp_vent_shell_t *v)
{
    bool sent = false;
    int r;
    while ((r = s_dispatch_one(v)) > 0)
        sent |= r == 1;
    if (r < 0)
        return -1;
    if (!sent) /* only an idle dispatch can be waiting for a plugin */
        s_warn_plugins(v);
    return 0;
}

/* Push dispatch: one batch to the PUSH socket. Returns 1 when sent, 0
 * when there is nothing to send or the socket is full, -1 on an error. */
static int s_dispatch_push(zp_vent_shell_t *v)
{
    if (s_batch_reserve(v, v->batch_max) < 0)
        return -1;
    zp_vent_job_t *j =
        zp_vent_sched_pick(&v->sched, zp_vent_jobs_first(v->jobs), NULL,
                           zp_vent_shell_can_hold(v));
    if (!j)
        return 0;
    size_t n = zp_vent_tasks_collect(v->tasks, j, v->batch_max,
                                     v->cfg->batch_bytes, v->batch);
    if (n == 0)
        return 0;
    zp_vent_sched_served(&v->sched, 0, 0, j);
    if (s_send_batch(v, j, n, NULL, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    return 1;
}

int zp_vent_shell_dispatch(zp_vent_shell_t *v)
{
    if (v->push)
        return s_dispatch_push(v);
    return s_dispatch_credit(v) < 0 ? -1 : 0;
}
