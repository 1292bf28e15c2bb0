/* sink_metrics: the sink's /metrics text and its web view's state,
 * rendered from the job table about every ZP_METRICS_PERIOD_US. */
#ifndef ZP_SINK_METRICS_H
#define ZP_SINK_METRICS_H

#include "sink_job.h"
#include "sink_web.h"
#include "zp_cause.h"
#include "zp_metrics.h"

#include <stdint.h>

/* The sink's own counters, beside its jobs'. */
typedef struct {
    uint64_t bad_messages; /* on either socket */
    uint64_t bad_results;  /* of those, on the results socket */
    uint64_t dropped;      /* connections dropped */
    uint64_t events_sent;  /* events published */
    /* Results refused, never written nor counted towards a job: */
    uint64_t refused_unknown_job;  /* for a job the sink never opened */
    uint64_t refused_out_of_range; /* a task id at or past the job's total
                                      (or past ZP_LEDGER_MAX_OPEN_TASK_ID) */
    uint64_t refused_lease;        /* without the lease of its job's dispatch: a
                                      task never dispatched, or another
                                      cluster's job under the same id */
    uint64_t jobs_reused;        /* JobOpens refused: the id is another job's */
    uint64_t jobs_wrong_cluster; /* ... naming another cluster */
    uint64_t open_replays;       /* JobOpens without a key for a keyed job:
                                    acknowledged, nothing changed */
    uint64_t acks_dropped; /* commits not listed (ZP_LEDGER_MAX_PENDING) */
    uint64_t taken;        /* jobs whose records a consumer took */
    /* Writes (sink_disk.h): */
    uint64_t disk_paused;  /* 1 while a failed write pauses the sink */
    uint64_t disk_pauses;  /* pauses so far */
    uint64_t write_errors; /* failed writes, retries included */
    /* Tasks committed since this sink started (not replayed from its
     * journal): successes, and final failures by cause (index
     * ZP_CAUSE_NONE stays 0; zp_sink_count_failure). Unlike the per-job
     * counts, these exist from the first scrape, so a rate over them
     * counts a job that started and ended between two scrapes. */
    uint64_t succeeded;
    uint64_t failed[ZP_CAUSE_COUNT];
} zp_sink_counters_t;

/* Counts a final failure whose Result named cause (its wire name; NULL,
 * empty or a name not on zp_cause's list counts as plugin_error, the
 * cause its record shows). */
void zp_sink_count_failure(zp_sink_counters_t *c, const char *cause);

/* Renders and publishes the snapshot served at /metrics. Jobs are newest
 * first; past the ZP_METRICS_MAX_SERIES newest, the completion counters
 * of older jobs are summed under job_id="(older)" (so sums never go
 * down) and their gauges are left out. */
void zp_sink_metrics_render(zp_metrics_t *m, const zp_jobs_t *jobs,
                            const zp_sink_counters_t *c, uint64_t now);
/* Renders and publishes the web view's state (jobs newest first). */
void zp_sink_web_render(zp_sink_web_t *web, const zp_jobs_t *jobs,
                        uint64_t bad_messages, uint64_t now);

#endif
