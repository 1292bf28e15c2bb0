/* zp_metrics: Prometheus text exposition of a daemon's counters, served at
 * /metrics by libmicrohttpd.
 *
 * Threading: the daemon's main thread owns the registry and every counter
 * it renders; the counters themselves stay plain uint64_t fields of the
 * daemon, updated on its hot path with no atomics and no allocation. About
 * every ZP_METRICS_PERIOD_US (zp_metrics_due) the main thread renders all
 * families into a private text buffer between zp_metrics_begin and
 * zp_metrics_publish; publish swaps that buffer with the served one under a
 * mutex. libmicrohttpd's own thread copies the served text under the same
 * mutex for each request. So a scrape sees a snapshot at most one period
 * old, and the hot path pays nothing but the render, a few times a second.
 *
 * Label cardinality: per-job and per-worker series are capped by the
 * callers at ZP_METRICS_MAX_SERIES (the most recent ones). */
#ifndef ZP_METRICS_H
#define ZP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zp_util.h"

typedef struct zp_metrics zp_metrics_t;

#define ZP_METRICS_PERIOD_US 250000u
/* Most per-job / per-worker series a daemon renders. */
#define ZP_METRICS_MAX_SERIES 100

typedef enum {
    ZP_METRIC_COUNTER,
    ZP_METRIC_GAUGE,
    ZP_METRIC_HISTOGRAM,
} zp_metric_type_t;

/* Fixed buckets for durations in seconds, 10 µs to 10 s (1, 2.5, 5 per
 * decade), plus +Inf. */
#define ZP_HIST_BUCKETS 19
extern const double zp_hist_bounds[ZP_HIST_BUCKETS];

/* Zero-initialise. Updating it is a short scan and three adds. */
typedef struct {
    uint64_t counts[ZP_HIST_BUCKETS + 1]; /* not cumulative; last = +Inf */
    uint64_t count;
    double sum;
} zp_histogram_t;

/* Records n observations of value (seconds), e.g. n tasks whose mean time
 * was value. */
void zp_histogram_observe(zp_histogram_t *h, double value, uint64_t n);

/* Parses "HOST:PORT" (HOST an IPv4 address, "localhost", or "*" / empty for
 * every interface; PORT 0-65535, 0 = any free port). Returns 0, or -1 with
 * a one-line reason in err. */
int zp_metrics_parse_addr(const char *spec, uint32_t *addr_be, uint16_t *port,
                          char *err, size_t errlen);

/* Loads libmicrohttpd (zp_mhd.h) if this process has not yet: a process
 * that starts another with --metrics can check it first. Returns 0, or -1
 * with err "WHAT needs libmicrohttpd.so.12: REASON". */
int zp_metrics_load(const char *what, char *err, size_t errlen);

/* Binds spec and starts serving /metrics (and the documents added by
 * zp_metrics_serve; other paths: 404; 503 until the first
 * zp_metrics_publish); logs the URL
 * with the port actually bound. Returns NULL with a one-line reason in err
 * for a bad address, a port in use, a start failure or libmicrohttpd not
 * loadable ("--metrics needs libmicrohttpd.so.12: ..."). Caller owns the
 * result. */
zp_metrics_t *zp_metrics_new(const char *spec, char *err, size_t errlen);
/* Stops the HTTP thread and frees; nulls the caller's pointer. */
void zp_metrics_destroy(zp_metrics_t **self_p);
/* The TCP port being served. */
unsigned zp_metrics_port(const zp_metrics_t *self);
/* The IPv4 address bound, dotted ("0.0.0.0" for every interface);
 * borrowed, valid until zp_metrics_destroy. */
const char *zp_metrics_host(const zp_metrics_t *self);

/* True when a new snapshot should be rendered: a period has passed since
 * the last publish. NULL-safe (false). */
bool zp_metrics_due(const zp_metrics_t *self, uint64_t now_us);

/* Rendering, on the owning thread only: begin, then for each family one
 * zp_metrics_family and its samples, then publish. Allocation failures
 * while rendering are remembered and make publish return -1 (the previous
 * snapshot stays served). */
void zp_metrics_begin(zp_metrics_t *self);
/* name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is escaped. */
void zp_metrics_family(zp_metrics_t *self, const char *name,
                       zp_metric_type_t type, const char *help);
/* One sample of the current family. labels: NULL, or key, value, ..., NULL
 * (values are escaped; borrowed for the call). */
void zp_metrics_u64(zp_metrics_t *self, const char *name,
                    const char *const *labels, uint64_t value);
void zp_metrics_f64(zp_metrics_t *self, const char *name,
                    const char *const *labels, double value);
/* The _bucket, _sum and _count samples of histogram h under name. */
void zp_metrics_histogram(zp_metrics_t *self, const char *name,
                          const char *const *labels, const zp_histogram_t *h);
/* Makes what was rendered since begin the served snapshot. */
int zp_metrics_publish(zp_metrics_t *self, uint64_t now_us);

/* The text being served, copied; for tests. Caller owns the result. */
char *zp_metrics_snapshot(zp_metrics_t *self, size_t *len);

/* Extra documents on the same server, e.g. the sink's web view. Every
 * response carries a Content-Security-Policy that lets a page load nothing
 * and talk to nothing but its own origin. */
#define ZP_METRICS_MAX_DOCS 8

/* Serves another document at path (an exact match, e.g. "/" or
 * "/api/state"; 63 bytes at most) with content_type. With data, the
 * document is fixed: borrowed, valid until zp_metrics_destroy. With data
 * NULL, the owning thread renders it like the metrics text, between
 * zp_metrics_doc_begin and zp_metrics_doc_publish, and it is answered with
 * 503 until the first publish. Returns the document's handle (> 0), or -1
 * for a bad or taken path or a full table. Owning thread only. */
int zp_metrics_serve(zp_metrics_t *self, const char *path,
                     const char *content_type, const void *data, size_t len);
/* The rendered document's private buffer, emptied: append the new
 * snapshot to it. Borrowed, valid until zp_metrics_doc_publish. */
zp_buf_t *zp_metrics_doc_begin(zp_metrics_t *self, int doc);
/* Serves what was appended since zp_metrics_doc_begin. complete = false
 * (say, an append failed) keeps the previous snapshot and returns -1. */
int zp_metrics_doc_publish(zp_metrics_t *self, int doc, bool complete);
/* The document served at path (empty before its first publish), copied
 * and NUL-terminated; NULL for a path not served or out of memory. For
 * tests. Caller owns the result. */
char *zp_metrics_doc_snapshot(zp_metrics_t *self, const char *path,
                              size_t *len);

/* The --metrics option every daemon takes. */
#define ZP_METRICS_OPTION(target)                                              \
    {                                                                          \
        "metrics", 0, ZP_OPT_STR, "ZPIPE_METRICS", "HOST:PORT",                \
            "serve Prometheus metrics at http://HOST:PORT/metrics (the sink "  \
            "also serves its web view at http://HOST:PORT/; port 0 = any "     \
            "free port, logged); default off",                                 \
            &(target), 0, 0, NULL                                              \
    }

#endif
