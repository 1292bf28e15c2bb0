/* sink_metrics: /metrics and the web view's state (see sink_metrics.h). */
#include "sink_metrics.h"
#include "zp_log.h"
#include "zp_util.h"

/* zpipe_tasks_completed_total: per job, then the older jobs summed (all
 * jobs' sums, less the newest ones': no walk of every job). */
static void s_completed(zp_metrics_t *m, const zp_jobs_t *jobs)
{
    uint64_t old_ok = jobs->sums.succeeded, old_failed = jobs->sums.failed;
    const char *name = "zpipe_tasks_completed_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Task records written, by job and final status.");
    size_t k = 0;
    for (const zp_sink_job_t *j = jobs->head; j && k < ZP_METRICS_MAX_SERIES;
         j = j->link, k++) {
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", j->id, "status", "ok", NULL},
            j->ledger.succeeded);
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", j->id, "status", "failed", NULL},
            j->ledger.failed);
        old_ok -= j->ledger.succeeded;
        old_failed -= j->ledger.failed;
    }
    if (jobs->count > ZP_METRICS_MAX_SERIES) {
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", "(older)", "status", "ok", NULL},
            old_ok);
        zp_metrics_u64(m, name,
                       (const char *const[]){"job_id", "(older)", "status",
                                             "failed", NULL},
                       old_failed);
    }
}

/* zpipe_job_tasks (closed jobs) and zpipe_job_done_tasks. */
static void s_job_gauges(zp_metrics_t *m, const zp_jobs_t *jobs)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *name = pass ? "zpipe_job_done_tasks" : "zpipe_job_tasks";
        zp_metrics_family(m, name, ZP_METRIC_GAUGE,
                          pass ? "A job's tasks with a record written."
                               : "A job's task count, once it is closed.");
        size_t k = 0;
        for (const zp_sink_job_t *j = jobs->head;
             j && k < ZP_METRICS_MAX_SERIES; j = j->link, k++) {
            if (!pass && j->ledger.state != ZP_JOB_CLOSED &&
                j->ledger.state != ZP_JOB_DONE)
                continue;
            zp_metrics_u64(m, name,
                           (const char *const[]){"job_id", j->id, NULL},
                           pass ? j->ledger.done : j->ledger.total);
        }
    }
}

/* What the sink refused, by cause, and the acknowledgements it could not
 * keep. */
static void s_refusals(zp_metrics_t *m, const zp_sink_counters_t *c)
{
    const char *name = "zpipe_sink_results_refused_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Results refused (not written, not counted), by cause.");
    zp_metrics_u64(m, name, (const char *const[]){"cause", "unknown_job", NULL},
                   c->refused_unknown_job);
    zp_metrics_u64(m, name,
                   (const char *const[]){"cause", "out_of_range", NULL},
                   c->refused_out_of_range);
    zp_metrics_u64(m, name, (const char *const[]){"cause", "lease", NULL},
                   c->refused_lease);
    name = "zpipe_sink_job_open_replays_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "JobOpens of a running job from someone other than its "
                      "dispatcher: acknowledged, nothing changed.");
    zp_metrics_u64(m, name, NULL, c->open_replays);
    name = "zpipe_sink_jobs_refused_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "JobOpens refused, by cause.");
    zp_metrics_u64(m, name, (const char *const[]){"cause", "id_reused", NULL},
                   c->jobs_reused);
    zp_metrics_u64(m, name,
                   (const char *const[]){"cause", "wrong_cluster", NULL},
                   c->jobs_wrong_cluster);
    name = "zpipe_sink_commit_acks_dropped_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Committed tasks not acknowledged: too many waiting "
                      "for an absent opener (a CommitQuery repairs them).");
    zp_metrics_u64(m, name, NULL, c->acks_dropped);
    name = "zpipe_sink_write_paused";
    zp_metrics_family(m, name, ZP_METRIC_GAUGE,
                      "1 while a failed write (a full disk) pauses the sink: "
                      "nothing is acknowledged until a retry succeeds.");
    zp_metrics_u64(m, name, NULL, c->disk_paused);
    name = "zpipe_sink_write_pauses_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Pauses after a failed write of the output, journal or "
                      "a spool.");
    zp_metrics_u64(m, name, NULL, c->disk_pauses);
    name = "zpipe_sink_write_errors_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Failed writes of the output, journal or a spool, "
                      "retries included.");
    zp_metrics_u64(m, name, NULL, c->write_errors);
}

void zp_sink_count_failure(zp_sink_counters_t *c, const char *cause)
{
    zp_cause_t k = zp_cause_parse(cause);
    c->failed[k == ZP_CAUSE_NONE ? ZP_CAUSE_PLUGIN_ERROR : k]++;
}

/* zpipe_tasks_succeeded_total, and zpipe_tasks_failed_total with every
 * cause on the closed list, 0 or not, so a rate over it starts at the
 * first failure, not the second. */
static void s_committed(zp_metrics_t *m, const zp_sink_counters_t *c)
{
    const char *name = "zpipe_tasks_succeeded_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Tasks committed with status ok since the sink "
                      "started, every job.");
    zp_metrics_u64(m, name, NULL, c->succeeded);
    name = "zpipe_tasks_failed_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Final failures committed (a task's one record) since "
                      "the sink started, every job, by cause.");
    for (int k = ZP_CAUSE_NONE + 1; k < ZP_CAUSE_COUNT; k++)
        zp_metrics_u64(
            m, name,
            (const char *const[]){"cause", zp_cause_name((zp_cause_t)k), NULL},
            c->failed[k]);
}

void zp_sink_metrics_render(zp_metrics_t *m, const zp_jobs_t *jobs,
                            const zp_sink_counters_t *c, uint64_t now)
{
    zp_metrics_begin(m);
    uint64_t njobs = jobs->count, dups = jobs->sums.duplicates,
             retries = jobs->sums.retries;
    s_completed(m, jobs);
    s_committed(m, c);
    zp_metrics_family(m, "zpipe_tasks_duplicates_total", ZP_METRIC_COUNTER,
                      "Results dropped as duplicates of a committed task.");
    zp_metrics_u64(m, "zpipe_tasks_duplicates_total", NULL, dups);
    zp_metrics_family(m, "zpipe_tasks_retry_requests_total", ZP_METRIC_COUNTER,
                      "Retryable failures sent back to the ventilator.");
    zp_metrics_u64(m, "zpipe_tasks_retry_requests_total", NULL, retries);
    zp_metrics_family(m, "zpipe_jobs", ZP_METRIC_GAUGE,
                      "Jobs the sink holds whole: live ones, and finished ones "
                      "within --retain-jobs.");
    zp_metrics_u64(m, "zpipe_jobs", NULL, njobs);
    zp_metrics_family(m, "zpipe_sink_jobs_forgotten", ZP_METRIC_GAUGE,
                      "Finished jobs past --retain-jobs kept as their counts "
                      "(56 bytes each).");
    zp_metrics_u64(m, "zpipe_sink_jobs_forgotten", NULL,
                   (uint64_t)jobs->forgotten.n);
    zp_metrics_family(m, "zpipe_sink_jobs_taken_total", ZP_METRIC_COUNTER,
                      "Finished jobs whose records a consumer took (zpipe "
                      "results --take): their spool files deleted.");
    zp_metrics_u64(m, "zpipe_sink_jobs_taken_total", NULL, c->taken);
    s_job_gauges(m, jobs);
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "results", NULL},
                   c->bad_results);
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "control", NULL},
                   c->bad_messages - c->bad_results);
    s_refusals(m, c);
    zp_metrics_family(m, "zpipe_connections_dropped_total", ZP_METRIC_COUNTER,
                      "Connections dropped: oversized messages, peers gone.");
    zp_metrics_u64(m, "zpipe_connections_dropped_total", NULL, c->dropped);
    zp_metrics_family(m, "zpipe_events_published_total", ZP_METRIC_COUNTER,
                      "Events published on --events.");
    zp_metrics_u64(m, "zpipe_events_published_total", NULL, c->events_sent);
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}

void zp_sink_web_render(zp_sink_web_t *web, const zp_jobs_t *jobs,
                        uint64_t bad_messages, uint64_t now)
{
    zp_sink_web_begin(web, now, zp_now_us());
    size_t k = 0;
    for (const zp_sink_job_t *j = jobs->head; j && k < ZP_METRICS_MAX_SERIES;
         j = j->link, k++) {
        zp_sink_web_job_t v = {
            .id = j->id,
            .state = zp_job_state_name(j->ledger.state),
            .total = j->ledger.total,
            .done = j->ledger.done,
            .succeeded = j->ledger.succeeded,
            .failed = j->ledger.failed,
            .retries = j->ledger.retries,
            .duplicates = j->ledger.duplicates,
            .first_us = j->first_us,
            .last_us = j->last_us,
        };
        zp_sink_web_job(web, &v);
    }
    const zp_ledger_sums_t *t = &jobs->sums;
    zp_sink_web_totals(web, jobs->count, t->done, t->succeeded, t->failed,
                       t->retries, t->duplicates);
    if (zp_sink_web_publish(web, bad_messages) < 0)
        zp_warn("web view: out of memory rendering; serving the last state");
}
