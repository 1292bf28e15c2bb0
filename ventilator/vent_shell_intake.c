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

void zp_vent_shell_intake_ack(zp_vent_shell_t *v, zp_vent_job_t *j, bool ok,
                              const char *error)
{
    if (j->prid_len)
        zp_vent_shell_answer(v, j->prid, j->prid_len, j->id, ok, error, 0, 0,
                             0);
}

/* Counts and logs (sampled) a refusal; seq: the batch expected next, for
 * a batch out of order. */
static void s_refuse(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                     const char *job, const char *why, uint64_t seq)
{
    v->n.intake_bad++;
    if (zp_log_sampled(v->n.intake_bad))
        zp_warn("refused a producer's message%s%s: %s (%llu so far)",
                job && *job ? " for job " : "", job ? job : "", why,
                (unsigned long long)v->n.intake_bad);
    zp_vent_shell_answer(v, rid, rid_len, job, false, why, 0, 0, seq);
}

void zp_vent_shell_intake_refuse(zp_vent_shell_t *v, const char *rid,
                                 size_t rid_len, const char *job,
                                 const char *why)
{
    s_refuse(v, rid, rid_len, job, why, 0);
}

/* The settings, token and numbers of a new job j from o. Returns NULL, or
 * why not (then j is to be removed). */
static const char *s_job_setup(zp_vent_shell_t *v, zp_vent_job_t *j,
                               const Zpipe__V1__JobOpen *o)
{
    const char *why = NULL;
    if (zp_vent_settings_text(NULL,
                              (const Zpipe__V1__Setting *const *)o->config,
                              o->n_config, &j->config, &why) < 0)
        return why;
    /* A job with no token of its producer's still has one at the sink, so
     * that its id can never be taken for another job's there. */
    char *made = o->token && *o->token ? NULL : zp_random_id("v-", 12);
    if (zp_vent_job_set_token(j, made ? made : o->token) < 0) {
        free(made);
        return "out of memory";
    }
    free(made);
    j->max_attempts = zp_vent_intake_attempts(o->max_attempts, j->max_attempts);
    if (o->deadline_ms)
        j->deadline_ms = o->deadline_ms;
    j->priority = o->priority;
    return zp_vent_shell_journal_job(v, j) < 0 ? "out of memory" : NULL;
}

/* A new job from a producer, opened at the sink; the producer hears once
 * the sink has it (and the journal, with --journal). */
static void s_open_job(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__JobOpen *o, const char *given)
{
    char *id = given ? strdup(given) : zp_random_id("job-", 6);
    zp_vent_job_t *j = id ? zp_vent_jobs_add(v->jobs, id, o->plugin) : NULL;
    free(id);
    const char *why = j ? s_job_setup(v, j, o) : "out of memory";
    if (why) {
        if (j)
            zp_vent_shell_remove_job(v, j);
        zp_vent_shell_intake_refuse(v, rid, rid_len, given, why);
        return;
    }
    if (zp_vent_jobs_set_producer(v->jobs, j, rid, rid_len) < 0) {
        zp_vent_shell_remove_job(v, j);
        zp_vent_shell_intake_refuse(v, rid, rid_len, given, "out of memory");
        return;
    }
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
    const zp_vent_finished_job_t *f =
        given && !j
            ? zp_vent_finished_find(zp_vent_jobs_finished(v->jobs), given)
            : NULL;
    const char *why, *reply_id;
    char buf[256];
    why = zp_cluster_check(v->cfg->cluster, o->cluster, "producer", buf,
                           sizeof buf);
    if (why) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, given, why);
        return;
    }
    switch (zp_vent_intake_check_open(o, j, f, rid, rid_len, &why, buf,
                                      sizeof buf, &reply_id)) {
    case ZP_VENT_OPEN_REFUSE:
        zp_vent_shell_intake_refuse(v, rid, rid_len, reply_id, why);
        return;
    case ZP_VENT_OPEN_AGAIN:
        /* Its producer may be back on another connection (out of memory:
         * the answer goes to the old one; the producer asks again). */
        zp_vent_jobs_set_producer(v->jobs, j, rid, rid_len);
        /* The sink has it: answer now. A job replayed from the journal
         * may have been opened there before its producer came back, so
         * no later Ack of the sink's would answer this one. */
        if (j->producer_acked || zp_vent_job_live(j)) {
            zp_vent_shell_intake_ack(v, j, true, NULL);
            j->producer_acked = true;
        }
        return;
    case ZP_VENT_OPEN_FINISHED:
        /* A rerun of a producer whose first run died after its close:
         * its batches are gone, so it must stop here (Ack.finished). */
        zp_vent_shell_answer_finished(v, rid, rid_len, f->id, f->total);
        return;
    case ZP_VENT_OPEN_NEW:
        break;
    }
    size_t all = zp_vent_jobs_count(v->jobs);
    size_t mine = zp_vent_jobs_of(v->jobs, rid, rid_len);
    if (all >= v->cfg->max_jobs || mine >= v->cfg->max_jobs_per_producer) {
        snprintf(buf, sizeof buf,
                 all >= v->cfg->max_jobs
                     ? "too many open jobs (%zu, --max-jobs); send again "
                       "once some have finished"
                     : "too many open jobs from this connection (%zu, "
                       "--max-jobs-per-producer); send again once some "
                       "have finished",
                 all >= v->cfg->max_jobs ? all : mine);
        zp_vent_shell_intake_refuse(v, rid, rid_len, reply_id, buf);
        return;
    }
    s_open_job(v, rid, rid_len, o, given);
}

/* Takes a new batch's tasks, or refuses it whole (out of memory: the
 * producer sends it again, and it gets the same ids then). */
static void s_take_tasks(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                         zp_vent_job_t *j, const Zpipe__V1__TaskBatch *b,
                         uint64_t n)
{
    uint64_t first = 0;
    if (zp_vent_shell_take_batch(v, j, b, n, &first) < 0) {
        zp_error("job %s: out of memory taking a batch of %llu tasks; "
                 "refused, nothing of it kept",
                 j->id, (unsigned long long)n);
        zp_vent_shell_answer(v, rid, rid_len, j->id, false, "out of memory", 0,
                             0, b->seq);
        return;
    }
    zp_vent_shell_answer(v, rid, rid_len, j->id, true, NULL, first, n, b->seq);
}

/* Whether a message for job j with token from connection rid is its
 * producer's (vent_intake's rule); if not, it is refused and counted.
 * The connection may become the job's: Acks from the sink go there. */
static bool s_owner(zp_vent_shell_t *v, zp_vent_job_t *j, const char *token,
                    const char *rid, size_t rid_len, uint64_t seq)
{
    char buf[256];
    bool adopt;
    const char *why = zp_vent_intake_check_owner(j, token, rid, rid_len, &adopt,
                                                 buf, sizeof buf);
    if (why) {
        s_refuse(v, rid, rid_len, j->id, why, seq);
        return false;
    }
    if (adopt)
        zp_vent_jobs_set_producer(v->jobs, j, rid, rid_len);
    return true;
}

static void s_on_tasks(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__TaskBatch *b)
{
    zp_vent_job_t *j = b->job_id ? zp_vent_jobs_find(v->jobs, b->job_id) : NULL;
    char buf[200];
    const char *why;
    zp_vent_batch_t again;
    uint64_t expected, n;
    zp_vent_batch_verdict_t verdict =
        zp_vent_intake_check_tasks(b, j, v->cfg->max_task_bytes, &why, buf,
                                   sizeof buf, &again, &expected, &n);
    /* A batch taken before is answered again on any connection (a
     * producer back after a reconnect resends what had no answer); only
     * new tasks need the job's producer. */
    if (verdict != ZP_VENT_BATCH_AGAIN && j && !j->has_input &&
        !s_owner(v, j, b->token, rid, rid_len, b->seq))
        return;
    switch (verdict) {
    case ZP_VENT_BATCH_REFUSE:
        s_refuse(v, rid, rid_len, b->job_id, why, expected ? expected : b->seq);
        return;
    case ZP_VENT_BATCH_AGAIN:
        zp_vent_shell_answer(v, rid, rid_len, j->id, true, NULL, again.first,
                             again.n, b->seq);
        return;
    case ZP_VENT_BATCH_NEW:
        s_take_tasks(v, rid, rid_len, j, b, n);
        return;
    }
}

static void s_on_close(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const Zpipe__V1__JobClose *c)
{
    zp_vent_job_t *j = c->job_id ? zp_vent_jobs_find(v->jobs, c->job_id) : NULL;
    const zp_vent_finished_job_t *f =
        c->job_id && !j
            ? zp_vent_finished_find(zp_vent_jobs_finished(v->jobs), c->job_id)
            : NULL;
    /* A close taken before is answered again on any connection. */
    if (j && !j->has_input && !j->input_closed &&
        !s_owner(v, j, c->token, rid, rid_len, 0))
        return;
    char buf[160];
    const char *why = zp_vent_intake_check_close(c, j, f, buf, sizeof buf);
    if (why) {
        zp_vent_shell_intake_refuse(v, rid, rid_len, c->job_id, why);
        return;
    }
    if (!j) { /* finished: answered again */
        zp_vent_shell_answer_finished(v, rid, rid_len, f->id, f->total);
        return;
    }
    if (!j->input_closed) {
        if (zp_vent_shell_journal_close_job(v, j) < 0) {
            zp_vent_shell_intake_refuse(v, rid, rid_len, j->id,
                                        "out of memory");
            return;
        }
        zp_info("job %s: its producer closed it after %llu tasks", j->id,
                (unsigned long long)j->next_task_id);
    }
    j->input_closed = true;
    zp_vent_shell_answer(v, rid, rid_len, j->id, true, NULL, 0, j->next_task_id,
                         0);
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
        ji[i].queued += j->lines.n;
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
    /* Task batches, nearly all that comes in, are viewed in place: no
     * allocation per task (protobuf-c's unpack and its frees were 6 % of
     * a 1,000,000-task service job's CPU). s_on_tasks copies what it
     * keeps, as it must from the arena too. Anything else, or a batch the
     * view cannot take, is decoded. */
    size_t cap = (size_t)zp_vent_intake_frame_cap(v->cfg->max_task_bytes);
    if (zp_view_task_batch(&v->intake_view, zmq_msg_data(frame),
                           zmq_msg_size(frame), cap) == 0) {
        s_on_tasks(v, rid, rid_len, &v->intake_view.batch);
        return;
    }
    zp_message_t *m =
        zp_decode(v->arena, zmq_msg_data(frame), zmq_msg_size(frame), cap);
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
