/* ventilator: the zpipe ventilator daemon's logic (main.c parses options).
 *
 * The ventilator reads an input (one task per line) as one job, and/or takes
 * jobs from producers on its intake socket (JobOpen, TaskBatch, JobClose,
 * each answered with an Ack); it opens each job at the sink, dispatches
 * tasks in batches to workers (higher priority first, equal priorities
 * sharing), and closes each job with its task count once its input ends. Under
 * credit dispatch (default) it binds a ROUTER and sends a worker only as many
 * tasks as that worker has granted; under push dispatch it binds a PUSH and
 * fans batches out round-robin.
 *
 * Delivery is at least once: every task read stays in an in-flight table
 * until the sink reports it committed. A task whose worker is declared dead
 * (no heartbeat for heartbeat_timeout_ms) or whose lease runs out while
 * another worker can run it is dispatched again as it was; one the sink
 * sends back as a retryable failure (or whose lease ran out with no other
 * worker) with its attempt raised; at max_attempts the ventilator reports
 * the failure to the sink as the task's record. The sink drops duplicates.
 * A worker whose leases keep expiring is drained and refused for
 * quarantine_ms (vent_quarantine). */
#ifndef ZP_VENTILATOR_H
#define ZP_VENTILATOR_H

#include "zp_curve.h"
#include "zp_opts.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *dispatch_endpoint; /* bind: ROUTER (credit) or PUSH (push) */
    const char *sink_control;      /* connect: the sink's control ROUTER */
    const char *dispatch;          /* "credit" or "push" */
    const char *input;        /* the one job's tasks: path, "-" = stdin; NULL =
                                 none (jobs come from producers on intake) */
    const char *input_format; /* "lines" or "frames" (vent_input.h) */
    const char *plugin;       /* plugin name every task of that job needs */
    const char *intake;       /* bind, ROUTER, for producers; NULL = none */
    const char *job_id;       /* NULL = generated */
    const char *cluster;      /* --cluster; NULL = any (zp_cluster.h) */
    uint64_t batch;           /* most tasks per message */
    uint64_t batch_bytes;     /* most payload bytes per message */
    uint64_t deadline_ms;     /* per-task deadline, 0 = none */
    uint64_t max_task_bytes;  /* longest input line or frame accepted */
    uint64_t heartbeat_timeout_ms; /* a worker silent this long is dead */
    uint64_t lease_ms;      /* redeliver a task held this long, 0 = off */
    uint64_t quarantine_ms; /* refuse a worker whose leases keep expiring
                               this long (doubling), 0 = never drain */
    uint64_t max_attempts;  /* attempts before a task's failure is final */
    uint64_t max_inflight;  /* tasks read and not yet committed, 0 = auto */
    uint64_t max_inflight_bytes;   /* their payload bytes (one task always),
                                      0 = auto */
    uint64_t no_worker_timeout_ms; /* exit with an error after this long with
                                      no worker, 0 = wait forever */
    const char *resume_journal;    /* skip tasks this journal has committed */
    const char *journal; /* producers' jobs, durable before each Ack */
    uint64_t max_jobs;   /* open jobs at once; more are refused */
    uint64_t max_jobs_per_producer; /* of those, from one connection */
    zp_curve_config_t curve;        /* CURVE on tcp:// sockets */
    const char *sink_key;           /* the sink's public key (CURVE) */
    zp_strlist_t config;            /* the file job's plugin settings */
    const char *metrics;            /* HOST:PORT serving /metrics; NULL = off */
    const char *events;             /* bind, PUB, cluster events; NULL = off */
    bool trace; /* stamp Task.queued_us on every task (task timelines) */
    long parent_pid;
} zp_ventilator_config_t;

/* With an input: runs that job to completion and returns 0 when every
 * task succeeded, 1 when it completed with failed tasks, 3 on a set-up or
 * runtime error (logged), 4 when stopped by a signal before it completed.
 * Without (a service for producers on the intake): runs until stopped and
 * returns 0, or 3 on an error. */
int zp_ventilator_run(const zp_ventilator_config_t *cfg);

#endif
