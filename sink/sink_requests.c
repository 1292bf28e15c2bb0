/* sink_requests: the sink's control socket. Carries out what
 * sink_control and sink_fetch decide for JobOpen, JobClose,
 * StatusRequest, CommitQuery and ResultsRequest, and sends the replies:
 * Ack, JobStatus, ResultsChunk and Committed. */
#include "zp_cluster.h"
#include "sink_control.h"
#include "sink_shell.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Ids per Committed message: a backlog kept for an absent opener goes
 * out in pieces of at most about 640 KiB. */
#define S_ACK_CHUNK 65536

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
    const zp_retain_entry_t *gone =
        j ? NULL : zp_retain_find(&s->jobs.forgotten, job_id);
    if (gone)
        zp_control_status_forgotten(&st, gone, job_id, s->n.bad_messages);
    else
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

/* Reads the records of job id past cursor into a chunk and sends it to
 * rid; by reference, names the spool file instead when it can. */
static void s_send_fetched(zp_sink_t *s, const char *rid, size_t rid_len,
                           const char *id, zp_fetch_source_t src,
                           uint64_t cursor, uint32_t max, bool by_reference)
{
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    if (by_reference &&
        zp_store_spool_path(s->store, id, s->spool_path, sizeof s->spool_path))
        src.path = s->spool_path;
    zp_fetch_chunk(&s->chunk, &src, cursor, max, by_reference, &c);
    c.job_id = (char *)id;
    s_send_chunk(s, rid, rid_len, &c);
}

/* Reads the records past cursor and sends them to rid. */
static void s_answer_fetch(zp_sink_t *s, zp_sink_job_t *j, const char *rid,
                           size_t rid_len, uint64_t cursor, uint32_t max,
                           bool by_reference)
{
    s_send_fetched(s, rid, rid_len, j->id, zp_sink_job_source(j, s->store),
                   cursor, max, by_reference);
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
                       ready[i].cursor, ready[i].max_bytes,
                       ready[i].by_reference);
}

/* Sends the first n_commit committed ids and n_retry retries of p to j's
 * opener; false when the send failed (errno). */
static bool s_send_committed(zp_sink_t *s, zp_sink_job_t *j,
                             const zp_ledger_pending_t *p, size_t n_commit,
                             size_t n_retry)
{
    Zpipe__V1__Committed c = ZPIPE__V1__COMMITTED__INIT;
    c.job_id = j->id;
    c.task_ids = (uint64_t *)p->commit_ids;
    c.n_task_ids = n_commit;
    c.retry_task_ids = (uint64_t *)p->retry_ids;
    c.n_retry_task_ids = n_retry;
    c.retry_attempts = (uint32_t *)p->retry_attempts;
    c.n_retry_attempts = n_retry;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_COMMITTED;
    m.committed = &c;
    return zp_send(s->control, j->opener.rid, j->opener.rid_len, &m,
                   &s->scratch, ZMQ_DONTWAIT) == 0;
}

void zp_sink_flush_commits(zp_sink_t *s, zp_sink_job_t *j)
{
    /* Kept until the opener has them: while the job has none (after a
     * restart, until its JobOpen comes again) and while it cannot be
     * reached (its queue is full: tried again at the next commit; it is
     * gone: tried again at its next JobOpen, which a ventilator sends
     * every 2 s). A lost Committed would hold its tasks at the ventilator
     * until their lease expires. */
    if (!zp_ledger_has_pending(&j->ledger) || !j->opener.rid_len ||
        j->acks_wait_open)
        return;
    while (zp_ledger_has_pending(&j->ledger)) {
        zp_ledger_pending_t p = zp_ledger_pending(&j->ledger);
        size_t nc = p.n_commit < S_ACK_CHUNK ? p.n_commit : S_ACK_CHUNK;
        size_t nr = p.n_retry < S_ACK_CHUNK ? p.n_retry : S_ACK_CHUNK;
        if (!s_send_committed(s, j, &p, nc, nr)) {
            j->acks_wait_open = errno != EAGAIN;
            zp_debug("committed for job %s: opener unreachable (%s); %zu "
                     "kept",
                     j->id, zmq_strerror(errno), p.n_commit + p.n_retry);
            return;
        }
        zp_ledger_pending_sent(&j->ledger, nc, nr);
    }
}

/* A forgotten job's records (--retain-jobs), read from its spool file as
 * long as the file holds what the job wrote. */
static void s_answer_forgotten(zp_sink_t *s, const char *rid, size_t rid_len,
                               const char *id, const zp_retain_entry_t *job,
                               const Zpipe__V1__ResultsRequest *rq)
{
    if (job->spooled == ZP_RETAIN_SPOOL_GONE) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor, ZP_FETCH_GONE);
        return;
    }
    int fd = job->spooled ? zp_store_spool_open_read(s->store, id) : -1;
    struct stat st;
    if (job->spooled &&
        (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < job->spooled)) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor,
                      "job finished and forgotten (--retain-jobs); its spool "
                      "file is gone or shorter than its records");
        if (fd >= 0)
            close(fd);
        return;
    }
    zp_fetch_source_t src = {.fd = fd, .flushed = job->spooled, .done = true};
    zp_fetch_t none = {0};
    const char *why = NULL;
    if (zp_fetch_request(&none, &src, rq, rid, rid_len, &why) ==
        ZP_FETCH_REFUSED) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor, why);
    } else {
        s_send_fetched(s, rid, rid_len, id, src, rq->cursor, rq->max_bytes,
                       rq->by_reference);
    }
    zp_fetch_fini(&none);
    if (fd >= 0)
        close(fd);
}

/* A consumer holds every record of a done job and takes them: the job's
 * spool file is deleted (unless the consumer renamed it away already)
 * and its records are refused from then on. Not journaled: a restart
 * finds the file gone, which says the same (zp_spools_restore). */
static void s_on_take(zp_sink_t *s, const char *rid, size_t rid_len,
                      const char *id, const Zpipe__V1__ResultsRequest *rq)
{
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, id);
    const zp_retain_entry_t *gone =
        j ? NULL : zp_retain_find(&s->jobs.forgotten, id);
    if (!j && !gone) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor, "unknown job");
        return;
    }
    if (j && j->ledger.state != ZP_JOB_DONE) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor,
                      "job not done: its records can be taken once it is "
                      "(zpipe wait)");
        return;
    }
    bool was = j ? j->spool.gone : gone->spooled == ZP_RETAIN_SPOOL_GONE;
    if (!was &&
        zp_store_spool_remove(s->store, j ? &j->spool : NULL, id) != 0) {
        char why[300];
        snprintf(why, sizeof why,
                 "the sink could not delete the job's spool "
                 "file: %s",
                 strerror(errno));
        zp_warn("job %s: records taken by a consumer, but %s", id, why);
        s_fetch_error(s, rid, rid_len, id, rq->cursor, why);
        return;
    }
    if (!was) {
        if (!j)
            zp_retain_spool_gone(&s->jobs.forgotten, id);
        s->n.taken++;
        zp_debug("job %s: its records were taken by a consumer", id);
    }
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    c.job_id = (char *)id;
    c.cursor = c.next_cursor = rq->cursor;
    c.done = c.taken = true;
    s_send_chunk(s, rid, rid_len, &c);
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
    if (rq->take) {
        s_on_take(s, rid, rid_len, id, rq);
        return;
    }
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, id);
    if (!j) {
        const zp_retain_entry_t *gone = zp_retain_find(&s->jobs.forgotten, id);
        if (gone)
            s_answer_forgotten(s, rid, rid_len, id, gone, rq);
        else
            s_fetch_error(s, rid, rid_len, id, rq->cursor, "unknown job");
        return;
    }
    if (j->ledger.state == ZP_JOB_DONE)
        zp_store_spool_recheck(s->store, &j->spool, j->id);
    zp_fetch_source_t src = zp_sink_job_source(j, s->store);
    const char *why = NULL;
    switch (zp_fetch_request(&j->fetch, &src, rq, rid, rid_len, &why)) {
    case ZP_FETCH_REFUSED:
        s_fetch_error(s, rid, rid_len, id, rq->cursor, why);
        return;
    case ZP_FETCH_PARKED:
        return;
    case ZP_FETCH_ANSWER:
        s_answer_fetch(s, j, rid, rid_len, rq->cursor, rq->max_bytes,
                       rq->by_reference);
        return;
    }
}

/* Parks the answer to a JobOpen from rid until the barrier has written
 * its journal line: a restarted sink then knows every job (and token) it
 * acknowledged. The barrier runs at the end of the control phase, so one
 * sync answers every open that came meanwhile. Returns false when out of
 * memory (the caller answers after a barrier of its own). */
static bool s_park_open_ack(zp_sink_t *s, const char *rid, size_t rid_len,
                            const char *job)
{
    if (s->n_open_acks == s->cap_open_acks) {
        size_t cap = s->cap_open_acks ? 2 * s->cap_open_acks : 16;
        zp_open_ack_t *a = realloc(s->open_acks, cap * sizeof *a);
        if (!a)
            return false;
        s->open_acks = a;
        s->cap_open_acks = cap;
    }
    zp_open_ack_t *a = &s->open_acks[s->n_open_acks++];
    a->peer.rid_len =
        rid_len < sizeof a->peer.rid ? rid_len : sizeof a->peer.rid;
    memcpy(a->peer.rid, rid, a->peer.rid_len);
    snprintf(a->job, sizeof a->job, "%s", job);
    return true;
}

void zp_sink_send_open_acks(zp_sink_t *s)
{
    for (size_t i = 0; i < s->n_open_acks; i++)
        s_ack(s, s->open_acks[i].peer.rid, s->open_acks[i].peer.rid_len,
              s->open_acks[i].job, true, NULL);
    s->n_open_acks = 0;
}

/* A routing id for a log line: as it is when printable, else in hex
 * (ZeroMQ's own ids are 5 binary bytes). */
static void s_who(const char *rid, size_t rid_len, char *out, size_t size)
{
    bool printable = rid_len > 0;
    for (size_t i = 0; i < rid_len; i++)
        printable &= rid[i] > ' ' && rid[i] < 127;
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < rid_len && k + 3 < size; i++)
        k += (size_t)snprintf(out + k, size - k, printable ? "%c" : "%02x",
                              (unsigned char)rid[i]);
}

/* Says what an open changed that an operator should know: a new
 * dispatcher took the job over, or someone else sent its open. */
static void s_open_said(zp_sink_t *s, const zp_control_answer_t *a,
                        const char *rid, size_t rid_len)
{
    char who[80];
    s_who(rid, rid_len, who, sizeof who);
    if (a->took_over)
        zp_info("job %s: a new dispatcher (%s) took it over; results of the "
                "old dispatch are still accepted",
                a->job->id, who);
    if (a->replay) {
        s->n.open_replays++;
        if (zp_log_sampled(s->n.open_replays))
            zp_info("job %s: a JobOpen without its dispatch key from %s: "
                    "acknowledged, nothing changed (%llu so far)",
                    a->job->id, who, (unsigned long long)s->n.open_replays);
    }
}

static void s_on_job_open(zp_sink_t *s, const char *rid, size_t rid_len,
                          const Zpipe__V1__JobOpen *m, size_t len)
{
    char buf[256];
    const char *wrong = zp_cluster_check(s->cfg->cluster, m->cluster, "sender",
                                         buf, sizeof buf);
    if (wrong) {
        s->n.jobs_wrong_cluster++;
        if (zp_log_sampled(s->n.jobs_wrong_cluster))
            zp_warn("refused a JobOpen for job %s: %s (%llu so far)",
                    m->job_id ? m->job_id : "?", wrong,
                    (unsigned long long)s->n.jobs_wrong_cluster);
        s_ack(s, rid, rid_len, m->job_id ? m->job_id : "", false, wrong);
        return;
    }
    zp_control_answer_t a = zp_control_job_open(&s->jobs, m, rid, rid_len);
    if (a.ok && a.job && zp_ledger_has_pending(&a.job->ledger))
        zp_jobs_touch(&s->jobs, a.job); /* what waited: the next commit */
    if (a.ok && a.job) {
        /* A finished job (its open sent again) folds nothing more. */
        bool live = a.job->ledger.state != ZP_JOB_DONE;
        if (live)
            zp_reduce_open(s->reduce, &a.job->reduce, a.job->id, m->plugin);
        bool fold = live && zp_sink_fold_open(s, a.job);
        bool journal = (a.is_new || a.adopted) && zp_store_journaled(s->store);
        if (journal)
            zp_store_job_opened(s->store, a.job->id, a.job->ledger.max_attempts,
                                a.job->token);
        if (a.keyed && zp_store_journaled(s->store)) {
            char hex[33];
            zp_lease_key_hex(&a.job->key, hex);
            zp_store_job_keyed(s->store, a.job->id, hex);
            journal = true;
        }
        s_open_said(s, &a, rid, rid_len);
        /* Behind a parked one, an open of the same job waits too. */
        if (journal || fold || s->n_open_acks) {
            if (s_park_open_ack(s, rid, rid_len, a.ack_id))
                return;
            zp_sink_commit_all(s);
        }
    }
    char why[200];
    if (a.reused) {
        snprintf(why, sizeof why, "job id %s was already used by another job",
                 a.ack_id);
        a.error = why;
        s->n.jobs_reused++;
        if (zp_log_sampled(s->n.jobs_reused))
            zp_warn("refused a JobOpen: %s (%llu refused so far)", why,
                    (unsigned long long)s->n.jobs_reused);
    }
    s_ack(s, rid, rid_len, a.ack_id, a.ok, a.error);
    if (a.bad)
        zp_sink_bad(s, s->cfg->control, a.bad, len);
    /* What waited for an opener goes out after the next barrier. */
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

/* A forgotten job (--retain-jobs) is answered as done, with its counts
 * (zp_sink_send_status); nobody waits for it. */
static void s_on_status_request(zp_sink_t *s, const char *rid, size_t rid_len,
                                const Zpipe__V1__StatusRequest *m)
{
    const char *id = m->job_id ? m->job_id : "";
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, id);
    zp_sink_send_status(s, j, id, rid, rid_len);
    if (j && m->wait && j->ledger.state != ZP_JOB_DONE)
        zp_control_wait(j, rid, rid_len);
}

/* CommitQuery: which of these tasks have their record? Answered with a
 * Committed to the asker (not the opener) once the records are durable. */
static void s_on_commit_query(zp_sink_t *s, const char *rid, size_t rid_len,
                              Zpipe__V1__CommitQuery *q)
{
    zp_sink_commit_all(s); /* the barrier: only durable ids are answered */
    if (zp_store_failed(s->store) || zp_store_paused(s->store))
        return; /* asked again later */
    zp_control_commit_query(&s->jobs, q, s->cfg->ordered);
    Zpipe__V1__Committed c = ZPIPE__V1__COMMITTED__INIT;
    c.job_id = q->job_id ? q->job_id : "";
    c.task_ids = q->task_ids;
    c.n_task_ids = q->n_task_ids;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_COMMITTED;
    m.committed = &c;
    s_reply(s, rid, rid_len, &m, "committed", c.job_id);
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
        zp_sink_on_results(s, frame, rid, rid_len);
        return;
    case ZPIPE__V1__MESSAGE__KIND_COMMIT_QUERY:
        s_on_commit_query(s, rid, rid_len, m->commit_query);
        return;
    default:
        zp_sink_bad(s, s->cfg->control, "an unexpected message kind", len);
    }
}
