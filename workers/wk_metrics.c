/* wk_metrics: the worker's /metrics families (see wk_metrics.h). */
#include "wk_metrics.h"
#include "zp_log.h"

void zp_wk_metrics_render(zp_metrics_t *m, const zp_wk_stats_t *st,
                          uint64_t now)
{
    zp_metrics_begin(m);
    zp_metrics_family(m, "zpipe_worker_tasks_total", ZP_METRIC_COUNTER,
                      "Tasks this worker finished (any status).");
    zp_metrics_u64(m, "zpipe_worker_tasks_total", NULL, st->completed);
    zp_metrics_family(m, "zpipe_executor_restarts_total", ZP_METRIC_COUNTER,
                      "Executor processes started again after one died.");
    zp_metrics_u64(m, "zpipe_executor_restarts_total", NULL, st->restarts);
    zp_metrics_family(m, "zpipe_worker_window_violations_total",
                      ZP_METRIC_COUNTER,
                      "Tasks received beyond the credit granted.");
    zp_metrics_u64(m, "zpipe_worker_window_violations_total", NULL,
                   st->violations);
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "tasks", NULL},
                   st->bad_messages);
    zp_metrics_family(m, "zpipe_plugin_refused_appends_total",
                      ZP_METRIC_COUNTER,
                      "Output or error text a plugin gave outside its "
                      "process call (after it returned, or from another "
                      "thread), refused.");
    zp_metrics_u64(m, "zpipe_plugin_refused_appends_total", NULL,
                   st->refused_appends);
    zp_metrics_family(m, "zpipe_worker_held_tasks", ZP_METRIC_GAUGE,
                      "Tasks received and not finished.");
    zp_metrics_u64(m, "zpipe_worker_held_tasks", NULL, st->held);
    zp_metrics_family(m, "zpipe_plugin_call_seconds", ZP_METRIC_HISTOGRAM,
                      "Time of each plugin call (with an executor: each "
                      "batch's mean, once per task).");
    zp_metrics_histogram(m, "zpipe_plugin_call_seconds", NULL, st->call_hist);
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}
