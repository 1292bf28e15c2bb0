/* vent_shell_sink: the sink's control socket. Sends what the link module
 * decides (JobOpen, JobClose, StatusRequest) and the failure records;
 * takes the sink's Ack, Committed and JobStatus. */
#include "vent_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

static void s_send(zp_vent_shell_t *v, zp_message_t *m)
{
    zp_send(v->control, NULL, 0, m, &v->scratch, ZMQ_DONTWAIT);
}

void zp_vent_shell_send_open(zp_vent_shell_t *v, zp_vent_job_t *j, uint64_t now)
{
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    o.job_id = j->id;
    o.plugin = j->plugin;
    o.max_attempts = j->max_attempts;
    o.token = j->token;
    o.dispatch_key.data = j->key.b;
    o.dispatch_key.len = sizeof j->key.b;
    o.cluster = (char *)(v->cfg->cluster ? v->cfg->cluster : "");
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
    m.job_open = &o;
    s_send(v, &m);
    zp_vent_link_sent(j, ZP_VENT_SEND_OPEN, now);
}

static void s_send_close(zp_vent_shell_t *v, zp_vent_job_t *j, uint64_t now)
{
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    c.job_id = j->id;
    c.total = j->next_task_id;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &c;
    s_send(v, &m);
    zp_vent_link_sent(j, ZP_VENT_SEND_CLOSE, now);
}

static void s_send_status_request(zp_vent_shell_t *v, zp_vent_job_t *j,
                                  uint64_t now)
{
    Zpipe__V1__StatusRequest s = ZPIPE__V1__STATUS_REQUEST__INIT;
    s.job_id = j->id;
    s.wait = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &s;
    s_send(v, &m);
    zp_vent_link_sent(j, ZP_VENT_SEND_STATUS, now);
}

/* Sends j's queued failure records as one ResultBatch; kept when the
 * sink cannot take them now (sent at the next tend). */
static void s_flush_failures(zp_vent_shell_t *v, zp_vent_job_t *j)
{
    size_t n = j->fails.n;
    if (!n)
        return;
    Zpipe__V1__Result **ptrs = realloc(v->fail_ptrs, n * sizeof *ptrs);
    if (!ptrs)
        return;
    v->fail_ptrs = ptrs;
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &j->fails.items[i];
    Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
    rb.job_id = j->id;
    rb.worker_id = "ventilator";
    rb.results = ptrs;
    rb.n_results = n;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    if (zp_send(v->control, NULL, 0, &m, &v->scratch, ZMQ_DONTWAIT) < 0) {
        zp_warn("failure records to the sink: %s; will retry",
                zmq_strerror(errno));
        return;
    }
    zp_vent_fails_clear(&j->fails);
}

static void s_on_committed(zp_vent_shell_t *v, zp_vent_job_t *j,
                           const Zpipe__V1__Committed *c)
{
    zp_vent_worker_t *w = NULL;
    for (size_t i = 0; i < c->n_task_ids; i++) {
        if (c->task_ids[i] >= ZP_VENT_MAX_TASK_ID)
            continue;
        zp_vent_task_t *t =
            zp_vent_tasks_get(v->tasks, ZP_VENT_KEY(j, c->task_ids[i]));
        if (!t)
            continue;
        if (!w || w->serial != t->worker)
            w = zp_vent_workers_by_serial(v->workers, t->worker);
        if (w)
            w->committed++;
        zp_vent_tasks_done(v->tasks, t);
    }
    zp_vent_shell_journal_committed(v, j, c->task_ids, c->n_task_ids);
    for (size_t i = 0; i < c->n_retry_task_ids; i++) {
        if (c->retry_task_ids[i] >= ZP_VENT_MAX_TASK_ID)
            continue;
        zp_vent_task_t *t =
            zp_vent_tasks_get(v->tasks, ZP_VENT_KEY(j, c->retry_task_ids[i]));
        uint32_t failed = i < c->n_retry_attempts ? c->retry_attempts[i] : 0;
        /* Only the attempt that failed is retried; a newer one is already
         * on its way. The sink decided (attempts are left). */
        if (!t || t->attempt != failed || t->state == ZP_VENT_QUEUED)
            continue;
        t->attempt++;
        zp_vent_tasks_requeue_front(t);
        v->n.retried++;
    }
}

#define S_QUERY_IDS 8192 /* task ids per CommitQuery */

static void s_send_query(zp_vent_shell_t *v, const zp_vent_job_t *j,
                         uint64_t *ids, size_t n)
{
    Zpipe__V1__CommitQuery q = ZPIPE__V1__COMMIT_QUERY__INIT;
    q.job_id = j->id;
    q.task_ids = ids;
    q.n_task_ids = n;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_COMMIT_QUERY;
    m.commit_query = &q;
    s_send(v, &m);
}

void zp_vent_shell_query_commits(zp_vent_shell_t *v, bool with_input)
{
    size_t n = 0, k = 0;
    zp_vent_task_t **t = zp_vent_shell_held_sorted(v, with_input, &n);
    uint64_t *ids = malloc(S_QUERY_IDS * sizeof *ids);
    if (!t || !ids) { /* the tasks run again; the sink drops duplicates */
        free(t);
        free(ids);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ids[k++] = t[i]->id;
        if (k == S_QUERY_IDS || i + 1 == n || t[i + 1]->job != t[i]->job) {
            s_send_query(v, t[i]->job, ids, k);
            k = 0;
        }
    }
    if (n)
        zp_info("asked the sink which of %zu held tasks it has committed", n);
    free(t);
    free(ids);
}

/* A new sink instance lost whatever it had not committed (made durable
 * and acknowledged): send every task in flight again, and close again. */
static void s_on_sink_restart(zp_vent_shell_t *v)
{
    size_t n = 0, cursor = 0;
    zp_vent_task_t *t;
    while (zp_vent_tasks_next(v->tasks, &cursor, &t)) {
        if (t->state == ZP_VENT_INFLIGHT) {
            zp_vent_tasks_requeue_front(t);
            n++;
        } else if (t->state == ZP_VENT_FAILING) {
            /* its failure record may be lost: write it again */
            t->state = ZP_VENT_QUEUED;
            t->attempt--;
            zp_vent_shell_requeue(v, t, ZP_CAUSE_WORKER_LOST, "sink restarted");
        }
    }
    v->n.redelivered += n;
    for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs); j; j = j->next)
        zp_vent_link_restarted(j);
    /* A sink restarted from its journal has many of them: its answer
     * spares running those again. */
    zp_vent_shell_query_commits(v, true);
    zp_warn("the sink restarted; sending %zu uncommitted tasks again", n);
}

/* Publishes that j opened (plugin) or closed (count = its tasks). */
static void s_event_job(zp_vent_shell_t *v, const zp_vent_job_t *j,
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

static void s_on_ack(zp_vent_shell_t *v, const Zpipe__V1__Ack *a)
{
    zp_vent_job_t *j = a->job_id ? zp_vent_jobs_find(v->jobs, a->job_id) : NULL;
    if (!j)
        return;
    uint64_t now = zp_mono_us();
    if (!a->ok) {
        zp_error("sink refused job %s: %s", j->id, a->error ? a->error : "?");
        if (j->prid_len && !j->producer_acked)
            zp_vent_shell_intake_ack(v, j, false, a->error);
        zp_vent_link_on_ack(j, false, now);
        return;
    }
    if (zp_vent_link_instance(&v->link, a->sink_instance))
        s_on_sink_restart(v);
    switch (zp_vent_link_on_ack(j, true, now)) {
    case ZP_VENT_ACK_OPENED:
        zp_info("job %s opened at the sink; dispatching (%s)", j->id,
                v->cfg->dispatch);
        s_event_job(v, j, ZPIPE__V1__EVENT_KIND__EVENT_JOB_OPENED);
        if (j->prid_len && !j->producer_acked) {
            zp_vent_shell_intake_ack(v, j, true, NULL);
            j->producer_acked = true;
        }
        break;
    case ZP_VENT_ACK_CLOSED:
        s_event_job(v, j, ZPIPE__V1__EVENT_KIND__EVENT_JOB_CLOSED);
        break;
    default:
        break;
    }
}

static void s_on_status(zp_vent_shell_t *v, const Zpipe__V1__JobStatus *s)
{
    zp_vent_job_t *j = s->job_id ? zp_vent_jobs_find(v->jobs, s->job_id) : NULL;
    if (j && zp_vent_link_on_status(
                 j, s->state == ZPIPE__V1__JOB_STATE__JOB_DONE, s->failed))
        zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed", j->id,
                (unsigned long long)s->total, (unsigned long long)s->succeeded,
                (unsigned long long)s->failed);
}

void zp_vent_shell_on_control(zp_vent_shell_t *v, void *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m =
        zp_decode(v->arena, zmq_msg_data(frame), zmq_msg_size(frame), 1u << 26);
    if (!m) {
        v->n.bad_messages++;
        v->n.bad_control++;
        zp_warn("dropped a malformed frame from the sink %s",
                v->cfg->sink_control);
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_ACK:
        s_on_ack(v, m->ack);
        return;
    case ZPIPE__V1__MESSAGE__KIND_COMMITTED: {
        zp_vent_job_t *j =
            m->committed->job_id
                ? zp_vent_jobs_find(v->jobs, m->committed->job_id)
                : NULL;
        if (m->committed->n_task_ids)
            v->committed_us = zp_mono_us();
        if (j)
            s_on_committed(v, j, m->committed);
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_JOB_STATUS:
        s_on_status(v, m->job_status);
        return;
    default:
        v->n.bad_messages++;
        v->n.bad_control++;
        zp_warn("dropped an unexpected %s from the sink", zp_kind_name(m));
    }
}

void zp_vent_shell_remove_job(zp_vent_shell_t *v, zp_vent_job_t *j)
{
    zp_vent_tasks_drop_job(v->tasks, j);
    if (v->file_job == j)
        v->file_job = NULL;
    zp_vent_shell_journal_finished(v, j);
    zp_vent_jobs_remove(v->jobs, j, zp_now_us());
}

#define S_TEND_EVERY_TURN 64
#define S_TEND_US         5000u

void zp_vent_shell_tend_jobs(zp_vent_shell_t *v, uint64_t now)
{
    /* Many jobs: the whole list at most every few ms (its timers count in
     * seconds); a few: every turn, so a short job's close is not late. */
    if (zp_vent_jobs_count(v->jobs) > S_TEND_EVERY_TURN &&
        now - v->last_tend_us < S_TEND_US)
        return;
    v->last_tend_us = now;
    /* (Re)connected to the sink: live jobs name their opener again (at
     * the first connect none is live yet). */
    if (zp_monitor_drain(v->control_monitor) > 0) {
        bool any = false;
        for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs); j; j = j->next)
            any |= j->reopen = zp_vent_job_live(j);
        /* A reconnect, not the first connect: the Committed messages on
         * their way when the link went down were lost with it, and the
         * sink believes they arrived. Ask which held tasks it has, or
         * they stay held until their lease runs out. */
        if (any)
            zp_vent_shell_query_commits(v, true);
    }
    /* One keepalive JobOpen a round is enough to see a sink restart. */
    bool keepalive = now - v->last_keepalive_us >= ZP_VENT_KEEPALIVE_US;
    for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs), *next; j; j = next) {
        next = j->next;
        s_flush_failures(v, j);
        if (zp_vent_job_finished(j)) {
            if (j != v->file_job) {
                zp_info("job %s finished; %llu tasks read", j->id,
                        (unsigned long long)j->next_task_id);
                zp_vent_shell_remove_job(v, j);
            }
            continue;
        }
        unsigned what = zp_vent_link_due(j, now, keepalive);
        if (what & ZP_VENT_SEND_OPEN) {
            zp_vent_shell_send_open(v, j, now);
            if (keepalive && zp_vent_job_live(j)) {
                keepalive = false;
                v->last_keepalive_us = now;
            }
        }
        if (what & ZP_VENT_SEND_CLOSE) {
            if (what & ZP_VENT_SAY_CLOSING)
                zp_info("job %s: input ended after %llu tasks; closing", j->id,
                        (unsigned long long)j->next_task_id);
            s_send_close(v, j, now);
        }
        if (what & ZP_VENT_SEND_STATUS)
            s_send_status_request(v, j, now);
    }
}
