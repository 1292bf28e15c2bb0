/* sink_control: JobOpen, JobClose, StatusRequest and CommitQuery (see
 * sink_control.h). */
#include "sink_control.h"
#include "zp_journal.h"
#include "zp_log.h"

#include <stdlib.h>
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

/* Sets job's token (NULL or "" leaves it). Returns 0, -1 when out of
 * memory (the job keeps none). */
static int s_token_set(zp_sink_job_t *j, const char *token)
{
    if (!token || !*token)
        return 0;
    char *t = strdup(token);
    if (!t)
        return -1;
    free(j->token);
    j->token = t;
    return 0;
}

static bool s_has_token(const zp_sink_job_t *j)
{
    return j->token && *j->token;
}

/* Whether an open with token means job j; *adopt: j takes the token. */
static bool s_same_job(const zp_sink_job_t *j, const char *token, bool *adopt)
{
    *adopt = false;
    if (!*token)
        return true; /* legacy: whatever job holds the id */
    if (s_has_token(j))
        return strcmp(j->token, token) == 0;
    if (j->ledger.state == ZP_JOB_DONE)
        return false; /* a finished job cannot become another */
    *adopt = true;
    return true;
}

/* The job an open with token means: found, or made (*is_new). NULL with
 * a->error or a->reused set when there is none. */
static zp_sink_job_t *s_open_job(zp_jobs_t *jobs, const char *id,
                                 const char *token, zp_control_answer_t *a)
{
    zp_sink_job_t *j = zp_jobs_find(jobs, id);
    if (j) {
        if (!s_same_job(j, token, &a->adopted)) {
            a->reused = true;
            return NULL;
        }
        if (a->adopted && s_token_set(j, token) < 0) {
            a->adopted = false;
            a->error = "out of memory";
            return NULL;
        }
        return j;
    }
    switch (zp_retain_match(&jobs->forgotten, id, token)) {
    case ZP_RETAIN_SAME:
        a->forgotten = true;
        return NULL;
    case ZP_RETAIN_OTHER:
        a->reused = true;
        return NULL;
    case ZP_RETAIN_UNKNOWN:
        break;
    }
    j = zp_jobs_get(jobs, id, &a->is_new);
    if (j && s_token_set(j, token) < 0)
        j = NULL; /* kept without a token: a later open may give it */
    if (!j) {
        a->error = "out of memory";
        a->is_new = false;
    }
    return j;
}

/* An open with key (unset: none) of job j: false when it is not from
 * the job's dispatcher (no key for a keyed job), which changes nothing;
 * else the job takes the key (a->keyed), replacing another one
 * (a->took_over: results of the old key are still accepted). */
static bool s_key_open(zp_sink_job_t *j, const zp_lease_key_t *key,
                       zp_control_answer_t *a)
{
    bool had = zp_lease_key_set(&j->key);
    if (!zp_lease_key_set(key)) {
        a->replay = had;
        return !had;
    }
    if (had && memcmp(j->key.b, key->b, sizeof key->b) == 0)
        return true;
    if (had) {
        j->prev_key = j->key;
        a->took_over = true;
    }
    j->key = *key;
    a->keyed = true;
    return true;
}

zp_control_answer_t zp_control_job_open(zp_jobs_t *jobs,
                                        const Zpipe__V1__JobOpen *m,
                                        const char *rid, size_t rid_len)
{
    zp_control_answer_t a = {.ack_id = m->job_id ? m->job_id : ""};
    const char *token = m->token ? m->token : "";
    if (!zp_job_id_valid(m->job_id)) {
        a.error = "job id must be 1 to 128 of [A-Za-z0-9_.:-]";
        a.bad = "a job_open without a valid job id";
        return a;
    }
    if (*token && !zp_job_id_valid(token)) {
        a.error = "token must be up to 128 of [A-Za-z0-9_.:-]";
        a.bad = "a job_open with a bad token";
        return a;
    }
    zp_lease_key_t key;
    if (zp_lease_key_from(&key, m->dispatch_key.data, m->dispatch_key.len) <
        0) {
        a.error = "dispatch_key must be 16 bytes";
        a.bad = "a job_open with a bad dispatch key";
        return a;
    }
    zp_sink_job_t *j = s_open_job(jobs, m->job_id, token, &a);
    a.ok = a.forgotten;
    if (!j)
        return a;
    zp_control_wait(j, rid, rid_len);
    if (!s_key_open(j, &key, &a)) {
        a.ok = true; /* a replay by another client: harmless */
        a.job = j;
        return a;
    }
    s_peer_set(&j->opener, rid, rid_len);
    j->acks_wait_open = false; /* tell the opener what waits */
    zp_ledger_set_max_attempts(&j->ledger, m->max_attempts);
    if (a.is_new)
        zp_info("job %s opened (plugin %s)", m->job_id,
                m->plugin ? m->plugin : "?");
    a.ok = true;
    a.job = j;
    return a;
}

zp_sink_job_t *zp_control_restore_open(zp_jobs_t *jobs, const char *id,
                                       uint32_t max_attempts, const char *token)
{
    zp_sink_job_t *j = zp_jobs_get(jobs, id, NULL);
    if (!j)
        return NULL;
    zp_ledger_set_max_attempts(&j->ledger, max_attempts);
    if (!s_has_token(j) && s_token_set(j, token) < 0)
        return NULL;
    return j;
}

size_t zp_control_commit_query(const zp_jobs_t *jobs, Zpipe__V1__CommitQuery *q,
                               bool ordered)
{
    bool valid = zp_job_id_valid(q->job_id);
    const zp_sink_job_t *j = valid ? zp_jobs_find(jobs, q->job_id) : NULL;
    if (!j && valid && zp_retain_has(&jobs->forgotten, q->job_id))
        return q->n_task_ids; /* finished: every task has its record */
    size_t k = 0;
    for (size_t i = 0; j && i < q->n_task_ids; i++)
        if (zp_sink_job_written(j, ordered, q->task_ids[i]))
            q->task_ids[k++] = q->task_ids[i];
    q->n_task_ids = k;
    return k;
}

zp_control_answer_t zp_control_job_close(zp_jobs_t *jobs,
                                         const Zpipe__V1__JobClose *m,
                                         const char *rid, size_t rid_len)
{
    zp_control_answer_t a = {.ack_id = m->job_id ? m->job_id : ""};
    bool valid = zp_job_id_valid(m->job_id);
    if (valid && !zp_jobs_find(jobs, m->job_id) &&
        zp_retain_has(&jobs->forgotten, m->job_id)) {
        a.ok = a.forgotten = true;
        return a;
    }
    zp_sink_job_t *j = valid ? zp_jobs_get(jobs, m->job_id, NULL) : NULL;
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

void zp_control_status_forgotten(Zpipe__V1__JobStatus *st,
                                 const zp_retain_entry_t *job,
                                 const char *job_id, uint64_t bad_messages)
{
    st->job_id = (char *)job_id;
    st->state = ZPIPE__V1__JOB_STATE__JOB_DONE;
    st->total = st->done = job->total;
    st->succeeded = job->succeeded;
    st->failed = job->succeeded < job->total ? job->total - job->succeeded : 0;
    st->bad_messages = bad_messages;
    if (job->reduce_failed)
        st->reduce_error = (char *)"the reduction failed (the job is past "
                                   "--retain-jobs: no more is kept)";
}
