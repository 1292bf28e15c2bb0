/* worker: the zpipe worker daemon's logic (main.c only parses options).
 *
 * A worker loads plugins, connects to the ventilator (credit dispatch:
 * DEALER; push dispatch: PULL) and to the sink (PUSH), runs each task's
 * plugin and sends the results in batches. Under credit dispatch it never
 * holds more tasks than its window: it grants credit as it completes work,
 * sized to keep about target_ms of work queued.
 *
 * With isolation "process" (the default) plugin calls run in an executor
 * process (zpipe-executor, a fresh program that does not even load libzmq,
 * so it never inherits a ZeroMQ context), fed a batch at a time over a socket
 * pair. A plugin that crashes, overruns its deadline or its memory limit kills
 * only the executor: that task gets a failure record naming the signal,
 * "timeout" or "resource_limit", the rest of the batch runs in a fresh
 * executor, and the worker keeps serving and heartbeating throughout. A task
 * that has killed executors three times is not retried again (a poison task).
 */
#ifndef ZP_WORKER_H
#define ZP_WORKER_H

#include "zp_curve.h"
#include "zp_opts.h"
#include "zp_plugin.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *ventilator;     /* endpoint to connect for tasks */
    const char *sink;           /* endpoint to connect for results */
    const char *cluster;        /* --cluster; NULL = any (zp_cluster.h) */
    const char *dispatch;       /* "credit" or "push" */
    const char *id;             /* worker id, NULL = generated */
    zp_strlist_t plugins;       /* plugin names or paths */
    zp_strlist_t plugin_dirs;   /* when given: load every plugin in them,
                                   and plugins only from them */
    zp_strlist_t plugin_config; /* "PLUGIN.KEY=VALUE" settings */
    uint64_t window;            /* most tasks held at once (credit) */
    uint64_t target_ms;         /* work to keep queued when adapting credit */
    uint64_t max_output;        /* bytes a task may output */
    uint64_t max_frame;         /* largest frame accepted */
    uint64_t heartbeat_ms;
    const char *isolation;      /* "process" (default) or "none" */
    uint64_t deadline_ms;       /* default per-task deadline, 0 = none */
    uint64_t stall_floor_ms;    /* a task with no deadline running this long,
                                   and 10x the usual, is stalled (its
                                   executor parked), 0 = never */
    uint64_t memory_limit;      /* executor address-space limit, 0 = none */
    zp_curve_config_t curve;    /* CURVE on tcp:// sockets */
    const char *metrics;        /* HOST:PORT serving /metrics; NULL = off */
    const char *ventilator_key; /* the ventilator's public key (CURVE) */
    const char *sink_key;       /* the sink's public key (CURVE) */
    long parent_pid;            /* exit when this process is gone, 0 = never */
} zp_worker_config_t;

/* Runs until SIGTERM/SIGINT. Returns 0 on a clean stop, 3 when set-up
 * failed (a plugin refused, an endpoint unusable), logging the reason. */
int zp_worker_run(const zp_worker_config_t *cfg);

/* The executor side: reads batches on fd 3, reports progress in the shared
 * page on fd 4, writes results on fd 3. Returns the exit code. */
int zp_worker_executor_main(const zp_worker_config_t *cfg);

/* Loads cfg->plugins and prints each descriptor (name, version, ABI, path,
 * description, "reducer" or "") on stdout, one tab-separated line each. Returns
 * 0, or 3 if any is refused. */
int zp_worker_describe(const zp_worker_config_t *cfg);

/* ---- one plugin, called outside a job (zpipe plugin check) -------------
 *
 * A probe loads one plugin exactly as a worker does (the same loader, host
 * table, settings and output limit) and runs its process callback on
 * inputs given one at a time, with the worker's rules for status, cause
 * and error text. */
typedef struct zp_worker_probe zp_worker_probe_t;

/* What one call returned, as a worker would record it. */
typedef struct {
    int status;            /* what process returned, or ZPIPE_ERROR for
                              output_too_large */
    const char *cause;     /* NULL on success; "plugin_error", "plugin_retry",
                              "output_too_large", "resource_limit" */
    const uint8_t *output; /* borrowed until the next call; empty on failure */
    size_t output_len;
    const char *error; /* NUL-terminated; borrowed until the next call; "" on
                          success */
    size_t error_len;
    uint64_t elapsed_us;
} zp_worker_outcome_t;

/* Loads cfg->plugins.items[0] with cfg->plugin_config (and runs its init).
 * Caller owns the result. On refusal returns NULL with err holding the
 * loader's "FILE: reason". */
zp_worker_probe_t *zp_worker_probe_new(const zp_worker_config_t *cfg, char *err,
                                       size_t errlen);
/* The loaded plugin; borrowed until the probe is destroyed. */
const zp_plugin_t *zp_worker_probe_plugin(const zp_worker_probe_t *self);
/* Runs process once on input (borrowed for the call) as task task_id. */
void zp_worker_probe_call(zp_worker_probe_t *self, const uint8_t *input,
                          size_t len, uint64_t task_id,
                          zp_worker_outcome_t *outcome);
/* Runs the plugin's fini and unloads it; nulls the caller's pointer. */
void zp_worker_probe_destroy(zp_worker_probe_t **self_p);

#endif
