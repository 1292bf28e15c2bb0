/* sink_control: JobOpen, JobClose and StatusRequest (see sink_control.h). */
#include "sink_control.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <string.h>

/* JobStatus.state carries the ledger's states as they are. */
_Static_assert((int)ZP_JOB_OPEN == ZPIPE__V1__JOB_STATE__JOB_OPEN &&
                   (int)ZP_JOB_CLOSED == ZPIPE__V1__JOB_STATE__JOB_CLOSED &&
                   (int)ZP_JOB_DONE == ZPIPE__V1__JOB_STATE__JOB_DONE,
               "zp_job_state_t matches Zpipe__V1__JobState");

static void s_peer_set(zp_peer_t *p, const char *rid, size_t rid_len)
{
    if (rid_len > sizeof p->rid)
        rid_len = sizeof p->rid;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
}

void zp_control_wait(zp_sink_job_t *job, const char *rid, size_t rid_len)
{
    int r = zp_waiters_add(&job->waiters, rid, rid_len);
    if (r > 0)
        zp_warn("job %s: more than %d waiters; dropping the oldest", job->id,
                ZP_FETCH_MAX_WAITERS);
    else if (r < 0)
        zp_warn("job %s: out of memory; a waiter will not be told", job->id);
}

zp_control_answer_t zp_control_job_open(zp_jobs_t *jobs,
                                        const Zpipe__V1__JobOpen *m,
                                        const char *rid, size_t rid_len)
{
    zp_control_answer_t a = {.ack_id = m->job_id ? m->job_id : ""};
    if (!zp_job_id_valid(m->job_id)) {
        a.error = "job id must be 1 to 128 of [A-Za-z0-9_.:-]";
        a.bad = "a job_open without a valid job id";
        return a;
    }
    zp_sink_job_t *j = zp_jobs_get(jobs, m->job_id, &a.is_new);
    if (!j) {
        a.error = "out of memory";
        a.is_new = false;
        return a;
    }
    zp_control_wait(j, rid, rid_len);
    s_peer_set(&j->opener, rid, rid_len);
    zp_ledger_set_max_attempts(&j->ledger, m->max_attempts);
    if (a.is_new)
        zp_info("job %s opened (plugin %s)", m->job_id,
                m->plugin ? m->plugin : "?");
    a.ok = true;
    a.job = j;
    return a;
}

zp_control_answer_t zp_control_job_close(zp_jobs_t *jobs,
                                         const Zpipe__V1__JobClose *m,
                                         const char *rid, size_t rid_len)
{
    zp_control_answer_t a = {.ack_id = m->job_id ? m->job_id : ""};
    zp_sink_job_t *j =
        zp_job_id_valid(m->job_id) ? zp_jobs_get(jobs, m->job_id, NULL) : NULL;
    if (!j) {
        a.error = "job_close without job_id";
        a.bad = "a job_close without job id";
        return a;
    }
    a.job = j;
    switch (zp_ledger_close(&j->ledger, m->total)) {
    case ZP_LEDGER_CLOSED_SAME:
        a.ok = true;
        return a;
    case ZP_LEDGER_CLOSED_OTHER_TOTAL:
        a.error = "job already closed with another total";
        return a;
    case ZP_LEDGER_TOO_MANY:
        a.error = "more results than the total";
        return a;
    case ZP_LEDGER_CLOSED:
        break;
    }
    zp_info("job %s closed with %llu tasks", j->id,
            (unsigned long long)m->total);
    zp_control_wait(j, rid, rid_len);
    a.ok = true;
    a.closed = true;
    return a;
}

void zp_control_status(Zpipe__V1__JobStatus *st, const zp_sink_job_t *job,
                       const char *job_id, uint64_t bad_messages,
                       zp_control_workers_t *w)
{
    st->job_id = (char *)job_id;
    if (!job)
        return;
    const zp_ledger_t *l = &job->ledger;
    st->state = (Zpipe__V1__JobState)l->state;
    st->total = l->total;
    st->done = l->done;
    st->succeeded = l->succeeded;
    st->failed = l->failed;
    st->duplicates = l->duplicates;
    st->retries = l->retries;
    st->bad_messages = bad_messages;
    st->first_result_us = job->first_us;
    st->last_result_us = job->last_us;
    st->reduce_error = job->reduce.error;
    size_t n = job->n_workers < ZP_CONTROL_MAX_WORKERS ? job->n_workers
                                                       : ZP_CONTROL_MAX_WORKERS;
    for (size_t i = 0; i < n; i++) {
        zpipe__v1__worker_stats__init(&w->ws[i]);
        w->ws[i].worker_id = job->workers[i].id;
        w->ws[i].tasks_done = job->workers[i].tasks;
        w->ws[i].window = job->workers[i].window;
        w->ws[i].max_held = job->workers[i].max_held;
        w->wp[i] = &w->ws[i];
    }
    st->workers = w->wp;
    st->n_workers = n;
}
