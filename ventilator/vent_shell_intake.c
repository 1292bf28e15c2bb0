/* vent_shell_intake: the producers' intake socket. JobOpen, TaskBatch,
 * JobClose and StatusRequest in, checked by vent_intake's rules; Ack and
 * ClusterStatus out. */
#include "vent_intake.h"
#include "vent_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void s_intake_send(zp_vent_shell_t *v, const char *rid, size_t rid_len,
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

void zp_vent_shell_intake_ack(zp_vent_shell_t *v, zp_vent_job_t *j, bool ok,
                              const char *error)
{
    s_intake_send(v, j->prid, j->prid_len, j->id, ok, error, 0, 0);
}

void zp_vent_shell_intake_refuse(zp_vent_shell_t *v, const char *rid,
                                 size_t rid_len, const char *job,
                                 const char *why)
{
    v->n.intake_bad++;
    if (zp_log_sampled(v->n.intake_bad))
        zp_warn("refused a producer's message%s%s: %s (%llu so far)",
                job && *job ? " for job " : "", job ? job : "", why,
                (unsigned long long)v->n.intake_bad);
    s_intake_send(v, rid, rid_len, job, false, why, 0, 0);
}

/* A new job from a producer, opened at the sink; the producer hears once
 * the sink has it. */
static void s_open_job(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__JobOpen *o, const char *given)
{
    char *settings = NULL;
    const char *why = NULL;
    if (zp_vent_settings_text(NULL,
                              (const Zpipe__V1__Setting *const *)o->config,
                              o->n_config, &settings, &why) < 0) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, given, why);
        return;
    }
    char *id = given ? strdup(given) : zp_random_id("job-", 6);
    zp_vent_job_t *j = id ? zp_vent_jobs_add(v->jobs, id, o->plugin) : NULL;
    free(id);
    if (!j) {
        free(settings);
        zp_vent_shell_intake_refuse(v, rid, rid_len, given, "out of memory");
        return;
    }
    j->config = settings;
    memcpy(j->prid, rid, rid_len);
    j->prid_len = rid_len;
    j->max_attempts = zp_vent_intake_attempts(o->max_attempts, j->max_attempts);
    if (o->deadline_ms)
        j->deadline_ms = o->deadline_ms;
    j->priority = o->priority;
    zp_info("job %s from a producer: plugin %s, priority %u, deadline %llu "
            "ms, %u attempts",
            j->id, j->plugin, j->priority, (unsigned long long)j->deadline_ms,
            j->max_attempts);
    zp_vent_shell_send_open(v, j, zp_mono_us());
}

static void s_on_open(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                      const Zpipe__V1__JobOpen *o)
{
    const char *given = o->job_id && *o->job_id ? o->job_id : NULL;
    zp_vent_job_t *j = given ? zp_vent_jobs_find(v->jobs, given) : NULL;
    bool finished = given && zp_vent_jobs_finished_has(v->jobs, given);
    bool resend;
    const char *reply_id;
    const char *why = zp_vent_intake_check_open(o, j, finished, rid, rid_len,
                                                &resend, &reply_id);
    if (why) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, reply_id, why);
        return;
    }
    if (resend) {
        if (j->producer_acked)
            zp_vent_shell_intake_ack(v, j, true, NULL);
        return;
    }
    s_open_job(v, rid, rid_len, o, given);
}

static void s_on_tasks(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__TaskBatch *b)
{
    zp_vent_job_t *j = b->job_id ? zp_vent_jobs_find(v->jobs, b->job_id) : NULL;
    char buf[160];
    const char *why = zp_vent_intake_check_tasks(b, j, v->cfg->max_task_bytes,
                                                 buf, sizeof buf);
    if (why) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, b->job_id, why);
        return;
    }
    uint64_t first = j->next_task_id;
    for (size_t i = 0; i < b->n_tasks; i++)
        if (!zp_vent_tasks_add(v->tasks, j, b->tasks[i]->payload.data,
                               b->tasks[i]->payload.len,
                               v->cfg->trace ? zp_now_us() : 0)) {
            /* out of memory: what was added stays, and is said */
            s_intake_send(v, rid, rid_len, j->id, false, "out of memory", first,
                          i);
            return;
        }
    s_intake_send(v, rid, rid_len, j->id, true, NULL, first, b->n_tasks);
}

static void s_on_close(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__JobClose *c)
{
    zp_vent_job_t *j = c->job_id ? zp_vent_jobs_find(v->jobs, c->job_id) : NULL;
    char buf[160];
    const char *why = zp_vent_intake_check_close(c, j, buf, sizeof buf);
    if (why) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, c->job_id, why);
        return;
    }
    if (!j->input_closed)
        zp_info("job %s: its producer closed it after %llu tasks", j->id,
                (unsigned long long)j->next_task_id);
    j->input_closed = true;
    s_intake_send(v, rid, rid_len, j->id, true, NULL, 0, j->next_task_id);
}

/* Fills the ClusterStatus's job and worker tables (arrays of n + 1). */
static void s_status_fill(zp_vent_shell_t *v, Zpipe__V1__ClusterStatus *st,
                          Zpipe__V1__ClusterStatus__JobInfo *ji,
                          Zpipe__V1__ClusterStatus__JobInfo **jp,
                          Zpipe__V1__ClusterStatus__WorkerInfo *wi,
                          Zpipe__V1__ClusterStatus__WorkerInfo **wp)
{
    size_t i = 0, nw = zp_vent_workers_count(v->workers);
    for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs); j; j = j->next, i++) {
        zpipe__v1__cluster_status__job_info__init(&ji[i]);
        ji[i].job_id = j->id;
        ji[i].plugin = j->plugin;
        ji[i].priority = j->priority;
        ji[i].tasks = j->next_task_id;
        ji[i].queued = j->ready.len < j->held ? j->ready.len : j->held;
        ji[i].in_flight = j->held - ji[i].queued;
        ji[i].closed = zp_vent_job_input_done(j);
        jp[i] = &ji[i];
    }
    st->jobs = jp;
    st->n_jobs = i;
    uint64_t now = zp_mono_us();
    for (i = 0; i < nw; i++) {
        zp_vent_worker_t *w = zp_vent_workers_at(v->workers, i);
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
    st->workers = wp;
    st->n_workers = nw;
}

/* zpipe status: jobs and workers as this ventilator sees them. */
static void s_on_status(zp_vent_shell_t *v, const char *rid, size_t rid_len)
{
    size_t nj = zp_vent_jobs_count(v->jobs);
    size_t nw = zp_vent_workers_count(v->workers);
    Zpipe__V1__ClusterStatus st = ZPIPE__V1__CLUSTER_STATUS__INIT;
    Zpipe__V1__ClusterStatus__JobInfo *ji = calloc(nj + 1, sizeof *ji);
    Zpipe__V1__ClusterStatus__JobInfo **jp = calloc(nj + 1, sizeof *jp);
    Zpipe__V1__ClusterStatus__WorkerInfo *wi = calloc(nw + 1, sizeof *wi);
    Zpipe__V1__ClusterStatus__WorkerInfo **wp = calloc(nw + 1, sizeof *wp);
    if (ji && jp && wi && wp)
        s_status_fill(v, &st, ji, jp, wi, wp);
    st.held = zp_vent_tasks_size(v->tasks);
    st.held_bytes = zp_vent_tasks_bytes(v->tasks);
    st.held_limit =
        zp_vent_tasks_limit(v->tasks, zp_vent_workers_windows(v->workers));
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS;
    m.cluster_status = &st;
    zp_send(v->intake, rid, rid_len, &m, &v->scratch, ZMQ_DONTWAIT);
    free(ji);
    free(jp);
    free(wi);
    free(wp);
}

void zp_vent_shell_on_intake(zp_vent_shell_t *v, const char *rid,
                             size_t rid_len, void *frame)
{
    zp_arena_reset(v->arena);
    zp_message_t *m = zp_decode(v->arena, zmq_msg_data(frame),
                                zmq_msg_size(frame), ZP_VENT_INTAKE_FRAME);
    if (!m) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, "", "malformed message");
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_JOB_OPEN:
        s_on_open(v, rid, rid_len, m->job_open);
        return;
    case ZPIPE__V1__MESSAGE__KIND_TASK_BATCH:
        s_on_tasks(v, rid, rid_len, m->task_batch);
        return;
    case ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE:
        s_on_close(v, rid, rid_len, m->job_close);
        return;
    case ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST:
        s_on_status(v, rid, rid_len);
        return;
    default:
        zp_vent_shell_intake_refuse(v, rid, rid_len, "",
                                    "unexpected message kind on the intake");
    }
}
