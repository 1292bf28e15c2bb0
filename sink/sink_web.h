/* sink_web: the sink's web view, on the server --metrics starts: a
 * self-contained page embedded in the binary at "/", and the JSON it polls
 * at "/api/state": totals, jobs, workers, the latest failure records and a
 * short history of the sink's throughput.
 *
 * Threading: like zp_metrics, everything here runs on the sink's main
 * thread. The hooks called as results are committed only add to counters
 * (a failure record is copied into a fixed ring); the JSON is rendered with
 * the metrics text, about every ZP_METRICS_PERIOD_US, and handed to
 * zp_metrics, whose HTTP thread serves the last rendering. */
#ifndef ZP_SINK_WEB_H
#define ZP_SINK_WEB_H

#include "zp_metrics.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct zp_sink_web zp_sink_web_t;

/* Failure records kept for the page, and the bytes of error text each
 * keeps (the start of it). */
#define ZP_SINK_WEB_FAILURES  50
#define ZP_SINK_WEB_ERROR_MAX 300
/* Throughput samples kept, one a second. */
#define ZP_SINK_WEB_HISTORY 120
/* Distinct worker ids tracked; results from more are only counted. */
#define ZP_SINK_WEB_MAX_WORKERS 1024

/* One job as the sink knows it, for a render; borrowed for the call. */
typedef struct {
    const char *id;
    const char *state; /* "open", "closed" or "done" */
    uint64_t total;    /* meaningful once closed */
    uint64_t done, succeeded, failed, retries, duplicates;
    uint64_t first_us, last_us; /* Unix µs of the first and last results;
                                   0 = none yet */
} zp_sink_web_job_t;

/* Serves the page and the state on metrics (borrowed: it must outlive the
 * result). instance: the sink's instance id, copied. Returns NULL when out
 * of memory or when the paths cannot be added. Caller owns the result. */
zp_sink_web_t *zp_sink_web_new(zp_metrics_t *metrics, const char *instance);
/* Frees; nulls the caller's pointer. The paths stay served (the page; the
 * last state) until zp_metrics_destroy. */
void zp_sink_web_destroy(zp_sink_web_t **self_p);

/* A result batch from worker committed fresh new records at now_us (Unix
 * µs). Called for every batch: a lookup of the worker and two adds. */
void zp_sink_web_batch(zp_sink_web_t *self, const char *worker, uint64_t fresh,
                       uint64_t now_us);
/* A task's final failure record (not one that is retried). Strings are
 * borrowed for the call and may hold any bytes; they are cut to fit. */
void zp_sink_web_failure(zp_sink_web_t *self, const char *job, uint64_t task,
                         const char *worker, uint32_t attempt,
                         const char *cause, const char *error, uint64_t now_us);

/* Rendering, about every metrics period: begin, then zp_sink_web_job for
 * every job, newest first (past ZP_METRICS_MAX_SERIES jobs they are only
 * counted) or for the newest and zp_sink_web_totals, then publish. mono_us: the
 * monotonic clock; now_us: Unix µs. publish returns -1 when out of memory (the
 * last state stays served). */
void zp_sink_web_begin(zp_sink_web_t *self, uint64_t mono_us, uint64_t now_us);
void zp_sink_web_job(zp_sink_web_t *self, const zp_sink_web_job_t *job);
/* Before publish, when the caller keeps totals of its own: every job's
 * count and sums, in place of those of the jobs passed (the caller need
 * then pass only the ZP_METRICS_MAX_SERIES newest). */
void zp_sink_web_totals(zp_sink_web_t *self, uint64_t jobs, uint64_t done,
                        uint64_t succeeded, uint64_t failed, uint64_t retries,
                        uint64_t duplicates);
int zp_sink_web_publish(zp_sink_web_t *self, uint64_t bad_messages);

#endif
