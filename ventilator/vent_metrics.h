/* vent_metrics: the ventilator's counters and their rendering as the
 * Prometheus text served at /metrics. */
#ifndef ZP_VENT_METRICS_H
#define ZP_VENT_METRICS_H

#include "vent_job.h"
#include "vent_quarantine.h"
#include "vent_tasks.h"
#include "vent_workers.h"
#include "zp_events.h"
#include "zp_metrics.h"

#include <stdint.h>

/* The counters of the accounting line (tasks read: zp_vent_tasks_read). */
typedef struct {
    uint64_t dispatched, redelivered, lost_to_workers, expired, retried;
    uint64_t gave_up, bad_messages, intake_bad;
    uint64_t workers_refused; /* Hellos of another cluster's workers */
    uint64_t bad_control;     /* of bad_messages, those from the sink */
    uint64_t journal_syncs, journal_errors; /* --journal */
} zp_vent_counters_t;

/* Renders every family into m and publishes it at now: the counters, the
 * held tasks, the workers and jobs (the last ZP_METRICS_MAX_SERIES of
 * each: series beyond are left out), the workers in quarantine. All
 * borrowed for the call; q and events may be NULL. */
void zp_vent_metrics_render(zp_metrics_t *m, const zp_vent_counters_t *c,
                            const zp_vent_tasks_t *tasks,
                            const zp_vent_workers_t *ws,
                            const zp_vent_quarantine_t *q,
                            const zp_vent_jobs_t *jobs,
                            const zp_events_t *events, uint64_t now);

#endif
