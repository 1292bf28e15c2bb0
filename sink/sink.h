/* sink: the zpipe sink daemon's logic (main.c only parses options).
 *
 * The sink binds three sockets: a PULL for result batches from workers, a
 * ROUTER for job control and status (JobOpen, JobClose, StatusRequest), and
 * an optional PUB that republishes every result batch with its job id as
 * topic. It writes exactly one record per task (duplicates are counted and
 * dropped), knows a job is complete when it has a record for every task id
 * below the total given by JobClose, and then tells whoever opened or waits
 * on the job. */
#ifndef ZP_SINK_H
#define ZP_SINK_H

#include "zp_curve.h"
#include "zp_opts.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *results;      /* bind, PULL */
    const char *control;      /* bind, ROUTER */
    const char *publish;      /* bind, PUB; NULL or "" = none */
    const char *cluster;      /* --cluster; NULL = any (zp_cluster.h) */
    const char *output;       /* path, "-" = stdout */
    const char *format;       /* "jsonl", "lines" or "frames" */
    bool ordered;             /* restore task id order per job */
    const char *journal;      /* commit log; NULL = the sink's own (see
                                 sink_promise.h) */
    bool journal_sync;        /* fdatasync the journal before acknowledging */
    uint64_t journal_compact; /* compact the journal past this many bytes
                                 (and twice what the last left); 0 = never */
    const char *spool;        /* directory: each job's records, served by
                                 cursor (ResultsRequest); NULL = none */
    uint64_t max_frame;
    uint64_t retain_jobs;       /* finished jobs kept whole (their status with
                                   workers, and records); older ones are kept
                                   as 56 bytes each (sink_retain.h: 1,000,000
                                   or 10x as many); 0 = keep every one */
    zp_curve_config_t curve;    /* CURVE on tcp:// sockets */
    zp_strlist_t reduce;        /* plugins whose jobs are reduced here */
    zp_strlist_t plugin_config; /* their settings, PLUGIN.KEY=VALUE */
    const char *metrics;        /* HOST:PORT serving /metrics; NULL = off */
    const char *events;         /* bind, PUB, cluster events; NULL = off */
    const char *trace;          /* task timelines: append a line per result here
                                   (zp_trace.h); NULL = off */
    long parent_pid;
} zp_sink_config_t;

/* The sink's exit status when its output or journal was deleted or
 * replaced under it, or is damaged (a journal line failing its checksum,
 * a record past the output's end): records it committed are gone or
 * cannot be trusted, and a restart cannot bring them back (zpipe run
 * fails the run instead of restarting it). */
#define ZP_SINK_EXIT_LOST 4

/* Runs until SIGTERM/SIGINT. Returns 0 on a clean stop, 3 when set-up
 * failed or output could not be written, ZP_SINK_EXIT_LOST (above). A
 * write that fails (a full disk) pauses the sink until it succeeds. */
int zp_sink_run(const zp_sink_config_t *cfg);

#endif
