/* sink_results: the sink's result path. Carries out what sink_ledger
 * decides for each result (write, park for order, fold, list for retry,
 * drop), the durability barrier before commits are acknowledged, and the
 * completion of a job. */
#include "sink_records.h"
#include "sink_shell.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"

#include <stdlib.h>
#include <string.h>

/* ---- task timelines (--trace) and events ---- */

/* Is the record of job's task in the output yet? Only an ordered sink
 * holds records back, until every lower id has one. */
static bool s_trace_written(void *ctx, const void *job, uint64_t task)
{
    const zp_sink_t *s = ctx;
    const zp_sink_job_t *j = job;
    return !s->cfg->ordered || j->reduce.reducer ||
           task < zp_order_next(&j->order);
}

/* One line for what became of result r. */
static void s_trace(zp_sink_t *s, zp_sink_job_t *j, const char *worker,
                    const Zpipe__V1__Result *r, zp_trace_outcome_t outcome,
                    uint64_t received_us)
{
    zp_trace_entry_t e = {
        .job = j->id,
        .worker = worker,
        .task = r->task_id,
        .attempt = r->attempt ? r->attempt : 1,
        .ok = r->status == ZPIPE__V1__STATUS__STATUS_OK,
        .outcome = outcome,
        .bytes = r->output.len,
        .queued_us = r->queued_us,
        .dispatch_us = r->dispatch_us,
        .start_us = r->start_us,
        .elapsed_us = r->elapsed_us,
        .received_us = received_us,
    };
    if (zp_trace_log_add(s->trace, &e, j) < 0 &&
        zp_trace_log_lost(s->trace) == 1)
        zp_warn("trace %s: out of memory; some lines are lost", s->cfg->trace);
}

/* Publishes what happened to r, a failed attempt of a task of j. */
static void s_event_task(zp_sink_t *s, const zp_sink_job_t *j,
                         const char *worker, const Zpipe__V1__Result *r,
                         Zpipe__V1__EventKind kind)
{
    if (!s->events)
        return;
    Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
    ev.kind = kind;
    ev.job_id = j->id;
    ev.worker_id = (char *)worker;
    ev.task_id = r->task_id;
    ev.attempt = r->attempt ? r->attempt : 1;
    ev.cause = r->cause;
    ev.detail = r->error;
    zp_events_emit(s->events, &ev);
}

/* ---- commit: the durability barrier, then the acknowledgements ---- */

/* A spool grew visible: its parked ResultsRequests may be answered. */
static void s_published(void *ctx, zp_spool_t *spool)
{
    zp_sink_serve_fetchers(ctx, zp_sink_job_of_spool(spool));
}

/* Makes what was written durable: spools, output and journal. Only then
 * may commits be acknowledged and records be fetched. */
static bool s_durable(zp_sink_t *s)
{
    if (zp_store_sync(s->store) < 0)
        return false;
    if (s->trace)
        zp_trace_log_commit(s->trace, zp_now_us(), s_trace_written, s);
    /* Consumers see a record once the journal has it too: a restarted
     * sink keeps exactly the spool records its journal has. */
    zp_store_publish(s->store, s_published, s);
    return true;
}

/* The barrier, then the jobs that had results are told; one whose
 * opener's queue was full stays on the list. One without an opener, or
 * whose opener is gone, leaves it until a JobOpen names one (its commits
 * wait in its ledger), so a sink idles even then. Jobs without news cost
 * nothing. */
void zp_sink_commit_all(zp_sink_t *s)
{
    if (!s_durable(s))
        return;
    zp_sink_send_open_acks(s);
    zp_sink_job_t *j = zp_jobs_take_dirty(&s->jobs);
    while (j) {
        zp_sink_job_t *next = j->next_dirty;
        zp_sink_flush_commits(s, j);
        if (zp_ledger_has_pending(&j->ledger) && j->opener.rid_len &&
            !j->acks_wait_open)
            zp_jobs_touch(&s->jobs, j);
        j = next;
    }
    if (zp_store_compact_due(s->store))
        zp_sink_compact(s);
}

/* ---- writing records ---- */

/* Lists task as committed for j's opener (acknowledged after the next
 * barrier); counts it when the list is full. */
static void s_list_committed(zp_sink_t *s, zp_sink_job_t *j, uint64_t task)
{
    if (zp_ledger_committed(&j->ledger, task) == 0)
        return;
    s->n.acks_dropped++;
    if (zp_log_sampled(s->n.acks_dropped))
        zp_warn("job %s: %zu commits wait for an absent opener; task %llu is "
                "not acknowledged (%llu so far; a CommitQuery repairs this)",
                j->id, j->ledger.n_commit, (unsigned long long)task,
                (unsigned long long)s->n.acks_dropped);
}

/* Writes task's record (json: its spool line when it differs) and lists
 * it for the opener. */
static void s_emit(zp_sink_t *s, zp_sink_job_t *j, uint64_t task, bool ok,
                   const char *data, size_t len, const char *json,
                   size_t json_len)
{
    zp_store_emit(s->store, &j->spool, j->id, task, ok, data, len, json,
                  json_len);
    s_list_committed(s, j, task);
}

/* Writes the parked records that are next in task order. */
static void s_drain_ordered(zp_sink_t *s, zp_sink_job_t *j)
{
    zp_order_rec_t p;
    for (;;) {
        if (zp_order_peek(&j->order, &p)) {
            s_emit(s, j, p.task, p.ok, p.rec, p.rec_len, p.json, p.json_len);
            zp_order_advance(&j->order);
        } else if (!zp_order_skip_written(&j->order, zp_sink_job_has, j))
            break;
    }
}

/* Appends r's record to b: in the output's format, or its JSON (json),
 * the JSON's job and worker those of the batch at hand (s->jsonl).
 * Returns 0, or -1 when out of memory (logged; nothing appended). */
static int s_render(zp_sink_t *s, zp_buf_t *b, const Zpipe__V1__Result *r,
                    bool json)
{
    int rc;
    if (json || s->format == ZP_RECORDS_JSONL)
        rc = s->jsonl_ready ? zp_records_jsonl_append(&s->jsonl, b, r) : -1;
    else if (s->format == ZP_RECORDS_LINES)
        rc = zp_records_line_append(b, r->output.data, r->output.len);
    else
        return zp_records_frame_append(b, r); /* logs its own */
    if (rc < 0)
        zp_error("out of memory rendering task %llu's record: it is not "
                 "written",
                 (unsigned long long)r->task_id);
    return rc;
}

/* A record's output this long is written from the frame it came in
 * (zp_store_emit_ref), not copied into the output's buffer first. */
#define S_REF_MIN (16u << 10)

/* zp_dfile_release_fn for a frame kept for its records: drops it. */
static void s_frame_release(void *hint)
{
    zmq_msg_close(hint);
    free(hint);
}

/* A line record of a big output goes to the output from the frame, with
 * only its newline copied: true when written so. Else (small, another
 * format, the spool is the output, a decoded batch, out of memory) the
 * caller renders it. */
static bool s_write_line_by_ref(zp_sink_t *s, zp_sink_job_t *j,
                                const Zpipe__V1__Result *r, bool ok,
                                bool spool_json)
{
    size_t len = r->output.len;
    if (!s->view_frame || s->format != ZP_RECORDS_LINES || len < S_REF_MIN ||
        !zp_store_has_output(s->store))
        return false;
    if (r->output.data[len - 1] == '\n')
        len--; /* as zp_records_line_append does */
    s->spool_rec.len = 0;
    if (spool_json && s_render(s, &s->spool_rec, r, true) < 0)
        return false;
    zmq_msg_t *keep = malloc(sizeof *keep);
    if (!keep)
        return false;
    zmq_msg_init(keep);
    if (zmq_msg_copy(keep, s->view_frame) != 0 ||
        zp_store_emit_ref(s->store, &j->spool, j->id, r->task_id, ok,
                          r->output.data, len, "\n", 1,
                          spool_json ? s->spool_rec.data : NULL,
                          s->spool_rec.len, s_frame_release, keep) < 0) {
        s_frame_release(keep);
        return false;
    }
    return true;
}

/* Task's record was written: listed, and with --ordered, those it held
 * back follow when it was the order's next. */
static void s_emitted(zp_sink_t *s, zp_sink_job_t *j, uint64_t task,
                      uint64_t next)
{
    s_list_committed(s, j, task);
    if (s->cfg->ordered && task == next) {
        zp_order_advance(&j->order);
        s_drain_ordered(s, j);
    }
}

/* Formats the task's record where it goes, without a copy: into the
 * output's buffer (with no output, the job's spool's) and writes it, or
 * into the order's chunk when it must wait for lower ids (--ordered). */
static void s_write_record(zp_sink_t *s, zp_sink_job_t *j,
                           const Zpipe__V1__Result *r, bool ok)
{
    bool out = zp_store_has_output(s->store);
    /* The spool is always JSON Lines: a second rendering when the output
     * has another format. */
    bool spool_json = out && s->cfg->spool && s->format != ZP_RECORDS_JSONL;
    uint64_t next = zp_order_next(&j->order);
    bool park = s->cfg->ordered && r->task_id > next;
    if (!park && s_write_line_by_ref(s, j, r, ok, spool_json)) {
        s_emitted(s, j, r->task_id, next);
        return;
    }
    zp_buf_t *b = park ? zp_order_park_buf(&j->order)
                       : zp_store_record_buf(s->store, &j->spool, j->id);
    if (!b) {
        if (park)
            zp_error("out of memory holding job %s task %llu for ordering",
                     j->id, (unsigned long long)r->task_id);
        return; /* else the store has failed (logged): the sink stops */
    }
    size_t from = b->len;
    s_render(s, b, r, !out);
    if (park) {
        size_t rec_len = b->len - from;
        if (spool_json)
            s_render(s, b, r, true); /* behind the record */
        if (zp_order_park_rendered(&j->order, r->task_id, ok, from, rec_len) <
            0)
            zp_error("out of memory holding job %s task %llu for ordering",
                     j->id, (unsigned long long)r->task_id);
        return;
    }
    s->spool_rec.len = 0;
    if (spool_json)
        s_render(s, &s->spool_rec, r, true);
    /* Behind the order's next (cannot happen: every id below it has its
     * record): written out of order rather than counted and lost. */
    zp_store_emit_rendered(s->store, &j->spool, j->id, r->task_id, ok, from,
                           spool_json ? s->spool_rec.data : NULL,
                           s->spool_rec.len);
    s_emitted(s, j, r->task_id, next);
}

/* The job is complete: its one reduced record. */
static void s_reduce_final(zp_sink_t *s, zp_sink_job_t *j)
{
    const zp_buf_t *v;
    bool ok =
        zp_reduce_final(s->reduce, &j->reduce, j->id, j->ledger.total, &v);
    zp_records_reduced_t rr = {
        .job = j->id,
        .plugin = j->reduce.reducer->desc.name,
        .ok = ok,
        .tasks = j->ledger.total,
        .succeeded = j->ledger.succeeded,
        .failed = j->ledger.failed,
        .error = j->reduce.error,
        .data = v->data,
        .len = v->len,
    };
    if (s->format == ZP_RECORDS_LINES)
        zp_records_line(&s->rec, v->data, v->len);
    else if (s->format == ZP_RECORDS_FRAMES)
        zp_records_reduced_frame(&s->rec, &rr);
    else
        zp_records_reduced_json(&s->rec, &rr);
    bool spool_json = s->cfg->spool && s->format != ZP_RECORDS_JSONL;
    if (spool_json)
        zp_records_reduced_json(&s->spool_rec, &rr);
    zp_store_emit_final(s->store, &j->spool, j->id, j->ledger.total, ok,
                        s->rec.data, s->rec.len,
                        spool_json ? s->spool_rec.data : NULL,
                        spool_json ? s->spool_rec.len : 0);
    /* Its file goes once the barrier has made the final record durable. */
    if (j->reduce.fold)
        zp_foldlogs_retire(zp_store_folds(s->store), &j->reduce.fold);
    zp_info("job %s reduced by %s: %zu bytes%s%s", j->id, rr.plugin, v->len,
            ok ? "" : "; failed: ",
            ok ? "" : (j->reduce.error ? j->reduce.error : "?"));
}

/* A closed job with every record: durable, acknowledged, DONE, told. */
void zp_sink_check_done(zp_sink_t *s, zp_sink_job_t *j)
{
    if (!zp_ledger_complete(&j->ledger) || zp_store_failed(s->store))
        return; /* a failed store stops the sink */
    if (s->cfg->ordered)
        s_drain_ordered(s, j);
    if (!s_durable(s))
        return;
    zp_sink_flush_commits(s, j);
    /* The final record is durable before the job is told done (the
     * barrier then removes its fold log). */
    if (j->reduce.reducer) {
        s_reduce_final(s, j);
        if (!s_durable(s))
            return;
    }
    zp_ledger_finish(&j->ledger);
    const zp_ledger_t *l = &j->ledger;
    zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed, "
            "%llu duplicates dropped, %llu bad messages",
            j->id, (unsigned long long)l->total,
            (unsigned long long)l->succeeded, (unsigned long long)l->failed,
            (unsigned long long)l->duplicates,
            (unsigned long long)s->n.bad_messages);
    if (s->events) {
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_JOB_DONE;
        ev.job_id = j->id;
        ev.count = l->total;
        ev.succeeded = l->succeeded;
        ev.failed = l->failed;
        ev.detail = j->reduce.error; /* a reduced job whose reduction failed */
        zp_events_emit(s->events, &ev);
    }
    for (size_t i = 0; i < j->waiters.n; i++)
        zp_sink_send_status(s, j, j->id, j->waiters.peer[i].rid,
                            j->waiters.peer[i].rid_len);
    zp_waiters_clear(&j->waiters);
    zp_sink_serve_fetchers(s, j);
    zp_sink_release(s, j);
}

/* ---- results ---- */

void zp_sink_bad(zp_sink_t *s, const char *socket, const char *why, size_t len)
{
    s->n.bad_messages++;
    if (socket == s->cfg->results)
        s->n.bad_results++;
    if (zp_log_sampled(s->n.bad_messages))
        zp_warn("dropped %s on %s (%zu bytes); %llu bad messages so far", why,
                socket, len, (unsigned long long)s->n.bad_messages);
}

/* One result of a batch of len bytes from worker, received at now;
 * returns true when it is the task's record. */
static bool s_on_result(zp_sink_t *s, zp_sink_job_t *j, const char *worker,
                        const Zpipe__V1__Result *r, uint64_t now, size_t len)
{
    bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
    switch (zp_ledger_result(&j->ledger, r->task_id, ok, r->retryable,
                             r->attempt)) {
    case ZP_LEDGER_OUT_OF_RANGE: /* refused, and a bad message as ever */
        s->n.refused_out_of_range++;
        zp_sink_bad(s, s->cfg->results, "a result with a task id out of range",
                    len);
        return false;
    case ZP_LEDGER_RETRY: /* not final yet: the opener sends it again */
        s_event_task(s, j, worker, r,
                     ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED);
        if (s->trace)
            s_trace(s, j, worker, r, ZP_TRACE_RETRY, now);
        return false;
    case ZP_LEDGER_NOMEM:
        zp_error("out of memory marking job %s task %llu", j->id,
                 (unsigned long long)r->task_id);
        return false;
    case ZP_LEDGER_DUPLICATE:
        if (s->trace)
            s_trace(s, j, worker, r, ZP_TRACE_DUPLICATE, now);
        /* Acknowledged again: whoever sent it again may have lost the
         * first Committed (not while --ordered still holds the record). */
        if (zp_sink_job_written(j, s->cfg->ordered, r->task_id))
            s_list_committed(s, j, r->task_id);
        return false;
    case ZP_LEDGER_COMMIT:
        break;
    }
    if (s->trace)
        s_trace(s, j, worker, r, ZP_TRACE_COMMITTED, now);
    if (ok)
        s->n.succeeded++;
    if (!ok) {
        zp_sink_count_failure(&s->n, r->cause);
        s_event_task(s, j, worker, r,
                     r->quarantined
                         ? ZPIPE__V1__EVENT_KIND__EVENT_TASK_QUARANTINED
                         : ZPIPE__V1__EVENT_KIND__EVENT_TASK_FAILED);
        if (s->web)
            zp_sink_web_failure(
                s->web, j->id, r->task_id, worker, r->attempt ? r->attempt : 1,
                r->cause && *r->cause ? r->cause : "plugin_error",
                r->error ? r->error : "", now);
    }
    if (ok && j->reduce.reducer) {
        /* Folded, not written; committed like any record (with a journal,
         * once its fold log has it). */
        zp_store_fold(s->store, j->reduce.fold, j->id, r->task_id,
                      r->output.data, r->output.len);
        zp_reduce_fold(&j->reduce, r->output.data, r->output.len, r->task_id);
        s_list_committed(s, j, r->task_id);
        return true;
    }
    s_write_record(s, j, r, ok);
    return true;
}

/* The batch in frame: zero-copy for what workers send, anything else is
 * decoded. NULL (counted as bad) when it is not a result batch. */
static Zpipe__V1__ResultBatch *s_batch(zp_sink_t *s, zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    if (zp_view_result_batch(&s->view, zmq_msg_data(frame), len,
                             s->cfg->max_frame) >= 0)
        return &s->view.batch;
    zp_arena_reset(s->arena);
    zp_message_t *m =
        zp_decode(s->arena, zmq_msg_data(frame), len, s->cfg->max_frame);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH) {
        zp_sink_bad(s, s->cfg->results,
                    m ? "a non-result message" : "a malformed frame", len);
        return NULL;
    }
    return m->result_batch;
}

/* Republishes the batch on --publish, its job id as topic. */
static void s_publish(zp_sink_t *s, const char *job, zmq_msg_t *frame)
{
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, frame);
    if (zmq_send(s->pub, job, strlen(job), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_msg_send(&copy, s->pub, ZMQ_DONTWAIT);
    zmq_msg_close(&copy);
}

/* Republishes only the results of b that were taken (a batch with some
 * refused: a buggy or foreign worker's, rare), re-encoded. */
static void s_publish_taken(zp_sink_t *s, const Zpipe__V1__ResultBatch *b,
                            const bool *refused)
{
    Zpipe__V1__Result **taken = malloc(b->n_results * sizeof *taken);
    if (!taken)
        return;
    Zpipe__V1__ResultBatch copy = *b;
    copy.results = taken;
    copy.n_results = 0;
    for (size_t i = 0; i < b->n_results; i++)
        if (!refused[i])
            taken[copy.n_results++] = b->results[i];
    zp_buf_t out = {0};
    if (copy.n_results && zp_encode_result_batch(&copy, &out) == 0 &&
        zmq_send(s->pub, b->job_id, strlen(b->job_id),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(s->pub, out.data, out.len, ZMQ_DONTWAIT);
    zp_buf_free(&out);
    free(taken);
}

/* Whether r comes from j's dispatch: j has no key (not checked), or r
 * carries the lease of its task and attempt under the key or the one
 * before it. */
static bool s_leased(const zp_sink_job_t *j, const Zpipe__V1__Result *r)
{
    if (!zp_lease_key_set(&j->key))
        return true;
    uint32_t attempt = r->attempt ? r->attempt : 1;
    return r->lease == zp_lease(&j->key, r->task_id, attempt) ||
           (zp_lease_key_set(&j->prev_key) &&
            r->lease == zp_lease(&j->prev_key, r->task_id, attempt));
}

/* A result of j refused for its lease: counted, and said (sampled). */
static void s_refuse_lease(zp_sink_t *s, const zp_sink_job_t *j,
                           const char *worker, const Zpipe__V1__Result *r,
                           bool on_results)
{
    s->n.refused_lease++;
    s->n.bad_messages++; /* refused, and a bad message, as out of range */
    s->n.bad_results += on_results;
    if (zp_log_sampled(s->n.refused_lease))
        zp_warn("job %s: refused a result for task %llu from worker %s: %s "
                "(%llu refused so far; is the worker's --sink this cluster's "
                "sink?)",
                j->id, (unsigned long long)r->task_id, worker,
                r->lease ? "its lease is not one this job's dispatcher gave"
                         : "it carries no lease (a worker older than this "
                           "sink?)",
                (unsigned long long)s->n.refused_lease);
}

void zp_sink_on_results(zp_sink_t *s, zmq_msg_t *frame, const char *rid,
                        size_t rid_len)
{
    size_t len = zmq_msg_size(frame);
    Zpipe__V1__ResultBatch *b = s_batch(s, frame);
    if (!b)
        return;
    if (!zp_job_id_valid(b->job_id)) {
        zp_sink_bad(s, s->cfg->results, "a result batch without a valid job id",
                    len);
        return;
    }
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, b->job_id);
    if (!j) {
        /* Only an opened job has results: refused (each counted), never
         * written, and no job is made for them. */
        s->n.refused_unknown_job += b->n_results;
        zp_sink_bad(s, s->cfg->results,
                    "a result batch for a job never opened here", len);
        return;
    }
    const char *worker = b->worker_id ? b->worker_id : "";
    /* The dispatcher's own records (over control) need no lease. */
    bool trusted = rid && rid_len == j->opener.rid_len &&
                   memcmp(rid, j->opener.rid, rid_len) == 0;
    size_t n_refused = 0;
    bool *refused = NULL;
    for (size_t i = 0; !trusted && i < b->n_results; i++) {
        if (s_leased(j, b->results[i]))
            continue;
        if (!refused && !(refused = calloc(b->n_results, sizeof *refused)))
            zp_error("out of memory checking leases of job %s", j->id);
        if (refused)
            refused[i] = true;
        n_refused++;
        s_refuse_lease(s, j, worker, b->results[i], rid == NULL);
    }
    if (n_refused == b->n_results || (n_refused && !refused)) {
        free(refused); /* nothing of it taken, nor counted, nor published */
        return;
    }
    /* The batch's job and worker, escaped once for its JSON records. */
    if (s->format == ZP_RECORDS_JSONL || s->cfg->spool)
        s->jsonl_ready =
            zp_records_jsonl_prepare(&s->jsonl, j->id, worker) == 0;
    uint64_t now = zp_now_us();
    if (!j->first_us)
        j->first_us = now;
    j->last_us = now;
    size_t fresh = 0;
    /* Big outputs are written from the frame (s_write_line_by_ref). */
    s->view_frame = b == &s->view.batch ? frame : NULL;
    for (size_t i = 0; i < b->n_results; i++)
        if (!refused || !refused[i])
            fresh += s_on_result(s, j, worker, b->results[i], now, len);
    s->view_frame = NULL;
    zp_sink_job_worker(j, worker, fresh, b->window, b->max_held);
    zp_jobs_touch(&s->jobs, j);
    /* The ventilator's own give-up records are not a worker's work. */
    if (s->web && strcmp(worker, "ventilator") != 0)
        zp_sink_web_batch(s->web, worker, fresh, now);
    if (zp_ledger_flush_due(&j->ledger))
        zp_sink_commit_all(s);
    if (s->pub && refused)
        s_publish_taken(s, b, refused);
    else if (s->pub)
        s_publish(s, b->job_id, frame);
    free(refused);
    zp_sink_check_done(s, j);
}
