/* vent_metrics: the snapshot served at /metrics. */
#include "vent_metrics.h"
#include "zp_log.h"

#include <stddef.h>

static void s_render_counters(zp_metrics_t *m, const zp_vent_counters_t *c,
                              const zp_vent_tasks_t *tasks)
{
    const struct {
        const char *name, *help;
        uint64_t value;
    } counters[] = {
        {"zpipe_tasks_read_total", "Tasks read from inputs and producers.",
         zp_vent_tasks_read(tasks)},
        {"zpipe_tasks_dispatched_total",
         "Task dispatches to workers, redeliveries included.", c->dispatched},
        {"zpipe_tasks_redelivered_total",
         "Tasks sent again after a lost worker, an expired lease or a sink "
         "restart.",
         c->redelivered},
        {"zpipe_leases_expired_total",
         "Tasks whose lease ran out at a worker (sent elsewhere).", c->expired},
        {"zpipe_tasks_retried_total",
         "Tasks sent again after a retryable failure.", c->retried},
        {"zpipe_tasks_given_up_total",
         "Tasks whose failure became final after max attempts.", c->gave_up},
        {"zpipe_intake_refused_total",
         "Producer requests refused on the intake.", c->intake_bad},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        zp_metrics_family(m, counters[i].name, ZP_METRIC_COUNTER,
                          counters[i].help);
        zp_metrics_u64(m, counters[i].name, NULL, counters[i].value);
    }
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "dispatch", NULL},
                   c->bad_messages - c->bad_control);
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "control", NULL},
                   c->bad_control);
}

/* One family with a sample per worker (the most recent ones). */
static void s_render_worker_family(zp_metrics_t *m, const zp_vent_workers_t *ws,
                                   const char *name, zp_metric_type_t type,
                                   const char *help, int which)
{
    size_t n = zp_vent_workers_count(ws);
    size_t w0 = n > ZP_METRICS_MAX_SERIES ? n - ZP_METRICS_MAX_SERIES : 0;
    zp_metrics_family(m, name, type, help);
    for (size_t i = w0; i < n; i++) {
        const zp_vent_worker_t *w = zp_vent_workers_at(ws, i);
        uint64_t v = which == 0   ? w->window - w->credit
                     : which == 1 ? w->credit
                     : which == 2 ? w->sent
                                  : w->committed;
        zp_metrics_u64(m, name, (const char *const[]){"worker", w->id, NULL},
                       v);
    }
}

static void s_render_workers(zp_metrics_t *m, const zp_vent_workers_t *ws)
{
    zp_metrics_family(m, "zpipe_workers", ZP_METRIC_GAUGE,
                      "Workers connected (credit dispatch).");
    zp_metrics_u64(m, "zpipe_workers", NULL, zp_vent_workers_count(ws));
    s_render_worker_family(m, ws, "zpipe_worker_inflight", ZP_METRIC_GAUGE,
                           "Tasks a worker holds: its window less its credit.",
                           0);
    s_render_worker_family(m, ws, "zpipe_worker_credit", ZP_METRIC_GAUGE,
                           "Tasks a worker has granted and not been sent.", 1);
    s_render_worker_family(m, ws, "zpipe_worker_sent_tasks_total",
                           ZP_METRIC_COUNTER,
                           "Tasks sent to a worker since it joined.", 2);
    s_render_worker_family(
        m, ws, "zpipe_worker_committed_tasks_total", ZP_METRIC_COUNTER,
        "A worker's tasks the sink committed since it joined.", 3);
}

static void s_render_jobs(zp_metrics_t *m, const zp_vent_jobs_t *jobs)
{
    size_t nj = zp_vent_jobs_count(jobs);
    zp_metrics_family(m, "zpipe_jobs", ZP_METRIC_GAUGE,
                      "Jobs open at the ventilator.");
    zp_metrics_u64(m, "zpipe_jobs", NULL, nj);
    /* Jobs are in order of arrival: skip all but the most recent. */
    for (int pass = 0; pass < 2; pass++) {
        const char *name =
            pass ? "zpipe_job_inflight_tasks" : "zpipe_job_queued_tasks";
        zp_metrics_family(m, name, ZP_METRIC_GAUGE,
                          pass ? "A job's tasks sent and not yet committed."
                               : "A job's tasks waiting to be sent.");
        size_t k = 0;
        for (const zp_vent_job_t *j = zp_vent_jobs_first(jobs); j;
             j = j->next, k++) {
            if (nj - k > ZP_METRICS_MAX_SERIES)
                continue;
            size_t queued = j->ready.len < j->held ? j->ready.len : j->held;
            zp_metrics_u64(m, name,
                           (const char *const[]){"job_id", j->id, NULL},
                           pass ? j->held - queued : queued + j->lines.n);
        }
    }
}

/* Workers drained for leases that kept expiring, and refused. */
static void s_render_quarantine(zp_metrics_t *m, const zp_vent_quarantine_t *q,
                                uint64_t now)
{
    zp_metrics_family(m, "zpipe_workers_quarantined", ZP_METRIC_GAUGE,
                      "Workers refused now: their leases kept expiring.");
    zp_metrics_u64(m, "zpipe_workers_quarantined", NULL,
                   q ? zp_vent_quarantine_active(q, now) : 0);
    zp_metrics_family(m, "zpipe_worker_quarantines_total", ZP_METRIC_COUNTER,
                      "Workers drained and refused for a while because their "
                      "leases kept expiring.");
    zp_metrics_u64(m, "zpipe_worker_quarantines_total", NULL,
                   q ? zp_vent_quarantine_total(q) : 0);
    zp_metrics_family(m, "zpipe_worker_refusals_total", ZP_METRIC_COUNTER,
                      "Hellos refused from workers in quarantine.");
    zp_metrics_u64(m, "zpipe_worker_refusals_total", NULL,
                   q ? zp_vent_quarantine_refusals(q) : 0);
}

void zp_vent_metrics_render(zp_metrics_t *m, const zp_vent_counters_t *c,
                            const zp_vent_tasks_t *tasks,
                            const zp_vent_workers_t *ws,
                            const zp_vent_quarantine_t *q,
                            const zp_vent_jobs_t *jobs,
                            const zp_events_t *events, uint64_t now)
{
    zp_metrics_begin(m);
    s_render_counters(m, c, tasks);
    zp_metrics_family(m, "zpipe_events_published_total", ZP_METRIC_COUNTER,
                      "Events published on --events.");
    zp_metrics_u64(m, "zpipe_events_published_total", NULL,
                   zp_events_sent(events));
    zp_metrics_family(m, "zpipe_tasks_held", ZP_METRIC_GAUGE,
                      "Tasks read and not yet committed by the sink.");
    zp_metrics_u64(m, "zpipe_tasks_held", NULL, zp_vent_tasks_size(tasks));
    zp_metrics_family(m, "zpipe_tasks_held_bytes", ZP_METRIC_GAUGE,
                      "Payload bytes of the tasks held.");
    zp_metrics_u64(m, "zpipe_tasks_held_bytes", NULL,
                   zp_vent_tasks_bytes(tasks));
    s_render_workers(m, ws);
    s_render_quarantine(m, q, now);
    s_render_jobs(m, jobs);
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}
