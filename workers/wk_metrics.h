/* wk_metrics: the worker's counters as the /metrics page shows them. */
#ifndef ZP_WK_METRICS_H
#define ZP_WK_METRICS_H

#include "zp_metrics.h"

#include <stdint.h>

/* A worker's counters at one moment. */
typedef struct {
    uint64_t completed;              /* tasks finished (any status) */
    uint64_t restarts;               /* executors started again */
    uint64_t violations;             /* arrivals beyond the window */
    uint64_t bad_messages;           /* dropped from the tasks socket */
    uint64_t held;                   /* tasks received, not finished */
    uint64_t refused_appends;        /* plugin output outside a call */
    const zp_histogram_t *call_hist; /* plugin call times; borrowed */
} zp_wk_stats_t;

/* Renders st into m and publishes it as of now (monotonic µs); logs and
 * keeps serving the last snapshot when out of memory. */
void zp_wk_metrics_render(zp_metrics_t *m, const zp_wk_stats_t *st,
                          uint64_t now);

#endif
