/* sink_requests: the sink's control socket. Carries out what
 * sink_control and sink_fetch decide for JobOpen, JobClose,
 * StatusRequest and ResultsRequest, and sends the replies: Ack,
 * JobStatus, ResultsChunk and Committed. */
#include "sink_control.h"
#include "sink_shell.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <string.h>

static void s_reply(zp_sink_t *s, const char *rid, size_t rid_len,
                    zp_message_t *m, const char *what, const char *job)
{
    if (zp_send(s->control, rid, rid_len, m, &s->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("%s for job %s: peer gone (%s)", what, job,
                 zmq_strerror(errno));
}

static void s_ack(zp_sink_t *s, const char *rid, size_t rid_len,
                  const char *job, bool ok, const char *error)
{
    Zpipe__V1__Ack a = ZPIPE__V1__ACK__INIT;
    a.job_id = (char *)job;
    a.ok = ok;
    a.error = (char *)(error ? error : "");
    a.sink_instance = s->instance;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_ACK;
    m.ack = &a;
    s_reply(s, rid, rid_len, &m, "ack", job);
}

void zp_sink_send_status(zp_sink_t *s, const zp_sink_job_t *j,
                         const char *job_id, const char *rid, size_t rid_len)
{
    Zpipe__V1__JobStatus st = ZPIPE__V1__JOB_STATUS__INIT;
    zp_control_workers_t w;
    zp_control_status(&st, j, job_id, s->n.bad_messages, &w);
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_STATUS;
    m.job_status = &st;
    s_reply(s, rid, rid_len, &m, "status", job_id);
}

static void s_send_chunk(zp_sink_t *s, const char *rid, size_t rid_len,
                         Zpipe__V1__ResultsChunk *c)
{
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK;
    m.results_chunk = c;
    s_reply(s, rid, rid_len, &m, "results", c->job_id);
}

static void s_fetch_error(zp_sink_t *s, const char *rid, size_t rid_len,
                          const char *job, uint64_t cursor, const char *why)
{
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    c.job_id = (char *)job;
    c.cursor = cursor;
    c.next_cursor = cursor;
    c.error = (char *)why;
    s_send_chunk(s, rid, rid_len, &c);
}

/* Reads the records past cursor and sends them to rid. */
static void s_answer_fetch(zp_sink_t *s, zp_sink_job_t *j, const char *rid,
                           size_t rid_len, uint64_t cursor, uint32_t max)
{
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    zp_fetch_source_t src = zp_sink_job_source(j, s->store);
    zp_fetch_chunk(&s->chunk, &src, cursor, max, &c);
    c.job_id = j->id;
    s_send_chunk(s, rid, rid_len, &c);
}

void zp_sink_serve_fetchers(zp_sink_t *s, zp_sink_job_t *j)
{
    if (!j->fetch.n)
        return;
    zp_fetch_req_t ready[ZP_FETCH_MAX_WAITERS];
    zp_fetch_source_t src = zp_sink_job_source(j, s->store);
    size_t n = zp_fetch_take_ready(&j->fetch, &src, ready);
    for (size_t i = 0; i < n; i++)
        s_answer_fetch(s, j, ready[i].peer.rid, ready[i].peer.rid_len,
                       ready[i].cursor, ready[i].max_bytes);
}

void zp_sink_flush_commits(zp_sink_t *s, zp_sink_job_t *j)
{
    if (!zp_ledger_has_pending(&j->ledger))
        return;
    if (j->opener.rid_len) {
        zp_ledger_pending_t p = zp_ledger_pending(&j->ledger);
        Zpipe__V1__Committed c = ZPIPE__V1__COMMITTED__INIT;
        c.job_id = j->id;
        c.task_ids = (uint64_t *)p.commit_ids;
        c.n_task_ids = p.n_commit;
        c.retry_task_ids = (uint64_t *)p.retry_ids;
        c.n_retry_task_ids = p.n_retry;
        c.retry_attempts = (uint32_t *)p.retry_attempts;
        c.n_retry_attempts = p.n_retry;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_COMMITTED;
        m.committed = &c;
        if (zp_send(s->control, j->opener.rid, j->opener.rid_len, &m,
                    &s->scratch, ZMQ_DONTWAIT) < 0)
            zp_debug("committed for job %s: opener gone (%s)", j->id,
                     zmq_strerror(errno));
    }
    /* Lost acknowledgements only cost a redelivery and a dropped duplicate;
     * lost retry requests are covered by the ventilator's lease. */
    zp_ledger_pending_clear(&j->ledger);
}

static void s_on_results_request(zp_sink_t *s, const char *rid, size_t rid_len,
                                 const Zpipe__V1__ResultsRequest *rq)
{
    const char *id = rq->job_id ? rq->job_id : "";
    if (!s->cfg->spool) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor,
                      "this sink keeps no records to fetch (start it with "
                      "--spool DIR)");
        return;
    }
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, id);
    if (!j) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor, "unknown job");
        return;
    }
    zp_fetch_source_t src = zp_sink_job_source(j, s->store);
    const char *why = NULL;
    switch (zp_fetch_request(&j->fetch, &src, rq, rid, rid_len, &why)) {
    case ZP_FETCH_REFUSED:
        s_fetch_error(s, rid, rid_len, id, rq->cursor, why);
        return;
    case ZP_FETCH_PARKED:
        return;
    case ZP_FETCH_ANSWER:
        s_answer_fetch(s, j, rid, rid_len, rq->cursor, rq->max_bytes);
        return;
    }
}

static void s_on_job_open(zp_sink_t *s, const char *rid, size_t rid_len,
                          const Zpipe__V1__JobOpen *m, size_t len)
{
    zp_control_answer_t a = zp_control_job_open(&s->jobs, m, rid, rid_len);
    if (a.ok) {
        if (a.is_new)
            zp_store_job_opened(s->store, a.job->id,
                                a.job->ledger.max_attempts);
        zp_reduce_open(s->reduce, &a.job->reduce, a.job->id, m->plugin);
    }
    s_ack(s, rid, rid_len, a.ack_id, a.ok, a.error);
    if (a.bad)
        zp_sink_bad(s, s->cfg->control, a.bad, len);
}

static void s_on_job_close(zp_sink_t *s, const char *rid, size_t rid_len,
                           const Zpipe__V1__JobClose *m, size_t len)
{
    zp_control_answer_t a = zp_control_job_close(&s->jobs, m, rid, rid_len);
    if (a.closed)
        zp_store_job_closed(s->store, a.job->id, a.job->ledger.total);
    s_ack(s, rid, rid_len, a.ack_id, a.ok, a.error);
    if (a.bad)
        zp_sink_bad(s, s->cfg->control, a.bad, len);
    if (a.closed)
        zp_sink_check_done(s, a.job);
}

static void s_on_status_request(zp_sink_t *s, const char *rid, size_t rid_len,
                                const Zpipe__V1__StatusRequest *m)
{
    const char *id = m->job_id ? m->job_id : "";
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, id);
    zp_sink_send_status(s, j, id, rid, rid_len);
    if (j && m->wait && j->ledger.state != ZP_JOB_DONE)
        zp_control_wait(j, rid, rid_len);
}

void zp_sink_on_control(zp_sink_t *s, const char *rid, size_t rid_len,
                        zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    zp_arena_reset(s->arena);
    zp_message_t *m =
        zp_decode(s->arena, zmq_msg_data(frame), len, s->cfg->max_frame);
    if (!m) {
        zp_sink_bad(s, s->cfg->control, "a malformed frame", len);
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_JOB_OPEN:
        s_on_job_open(s, rid, rid_len, m->job_open, len);
        return;
    case ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE:
        s_on_job_close(s, rid, rid_len, m->job_close, len);
        return;
    case ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST:
        s_on_status_request(s, rid, rid_len, m->status_request);
        return;
    case ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST:
        s_on_results_request(s, rid, rid_len, m->results_request);
        return;
    case ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH:
        /* Failure records the ventilator writes for tasks it gave up on. */
        zp_sink_on_results(s, frame);
        return;
    default:
        zp_sink_bad(s, s->cfg->control, "an unexpected message kind", len);
    }
}
