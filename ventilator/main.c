/* zpipe-ventilator: options to zp_ventilator_run. */
#include "ventilator.h"
#include "zp_log.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_cluster.h"
#include "zp_opts.h"
#include "zp_util.h"

#include <stdio.h>

static const char s_synopsis[] =
    "Usage: zpipe-ventilator [OPTIONS] --plugin NAME [--input FILE]\n"
    "       zpipe-ventilator [OPTIONS] --intake ENDPOINT\n"
    "Reads tasks (one per input line, or frame) as one job, opens it at the "
    "sink and\n"
    "dispatches the tasks to connected workers; exits when the sink reports\n"
    "the job done: 0 if every task succeeded, 1 if some failed, 3 on error, 4\n"
    "if stopped. With --intake and no --input it is a service: producers open\n"
    "jobs, send tasks and close them there (docs/protocol.md); it runs until\n"
    "stopped.";

/* The options as given, over these defaults. */
static zp_ventilator_config_t s_cfg = {
    .dispatch_endpoint = "tcp://*:5557",
    .sink_control = "tcp://localhost:5559",
    .dispatch = "credit",
    .input = NULL,
    .input_format = "lines",
    .batch = 0,
    .batch_bytes = 1u << 20,
    .max_task_bytes = 64u << 20,
    .heartbeat_timeout_ms = 3000,
    .lease_ms = 600000,
    .quarantine_ms = 30000,
    .max_attempts = 3,
    .max_inflight = 0,
    .max_inflight_bytes = 0,
    .no_worker_timeout_ms = 60000,
    .max_jobs = 10000,
    .max_jobs_per_producer = 1000,
};
static uint64_t s_parent;

static const zp_opt_t s_opts[] = {
    {"bind", 'b', ZP_OPT_STR, "ZPIPE_VENTILATOR_BIND", "ENDPOINT",
     "bind for workers (default tcp://*:5557)", &s_cfg.dispatch_endpoint, 0, 0,
     NULL},
    {"sink", 's', ZP_OPT_STR, "ZPIPE_SINK_CONTROL", "ENDPOINT",
     "the sink's control endpoint to connect (default "
     "tcp://localhost:5559)",
     &s_cfg.sink_control, 0, 0, NULL},
    {"input", 'i', ZP_OPT_STR, "ZPIPE_INPUT", "FILE",
     "the tasks, as --input-format says; - for stdin (default -, unless "
     "--intake)",
     &s_cfg.input, 0, 0, NULL},
    {"input-format", 0, ZP_OPT_CHOICE, "ZPIPE_INPUT_FORMAT", "FORMAT",
     "lines (default): a task per line; frames: each task a 4-byte "
     "big-endian length N, then N bytes",
     &s_cfg.input_format, 0, 0, "lines|frames"},
    {"intake", 0, ZP_OPT_STR, "ZPIPE_INTAKE", "ENDPOINT",
     "bind for producers' jobs, ROUTER (e.g. tcp://*:5561)", &s_cfg.intake, 0,
     0, NULL},
    {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
     "a setting for the job's plugin, sent with its tasks (workers give "
     "the job an instance made with it); repeatable",
     &s_cfg.config, 0, 0, NULL},
    {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
     "plugin name every task of the job needs (required)", &s_cfg.plugin, 0, 0,
     NULL},
    {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID", "job id (default job-RANDOM)",
     &s_cfg.job_id, 0, 0, NULL},
    {"cluster", 0, ZP_OPT_STR, "ZPIPE_CLUSTER", "NAME",
     "this cluster's name: workers, producers and a sink of another "
     "named cluster are refused (default: none, any)",
     &s_cfg.cluster, 0, 0, NULL},
    {"dispatch", 0, ZP_OPT_CHOICE, "ZPIPE_DISPATCH", "MODE",
     "credit (default): send against worker credit; push: plain "
     "round-robin PUSH",
     &s_cfg.dispatch, 0, 0, "credit|push"},
    {"batch", 0, ZP_OPT_UINT, "ZPIPE_BATCH", "N",
     "most tasks per message (default 0 = automatic: 2048 under credit "
     "dispatch, 1024 under push)",
     &s_cfg.batch, 0, 65536, NULL},
    {"batch-bytes", 0, ZP_OPT_UINT, "ZPIPE_BATCH_BYTES", "BYTES",
     "most payload bytes per message, at least one task (default 1 MiB)",
     &s_cfg.batch_bytes, 1, 1u << 30, NULL},
    {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
     "per-task deadline handed to workers, 0 = none (default 0)",
     &s_cfg.deadline_ms, 0, 86400000, NULL},
    {"max-task-bytes", 0, ZP_OPT_UINT, "ZPIPE_MAX_TASK_BYTES", "BYTES",
     "longest input line or frame accepted (default 64 MiB)",
     &s_cfg.max_task_bytes, 1, 1u << 30, NULL},
    {"heartbeat-timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_HEARTBEAT_TIMEOUT_MS", "MS",
     "a worker silent this long is dead and its tasks are sent again "
     "(default 3000)",
     &s_cfg.heartbeat_timeout_ms, 100, 86400000, NULL},
    {"lease-ms", 0, ZP_OPT_UINT, "ZPIPE_LEASE_MS", "MS",
     "send a task again if not committed this long after dispatch, 0 = "
     "never (default 600000; with --deadline-ms, also deadline + 5 s "
     "for a task whose worker finished nothing in that time)",
     &s_cfg.lease_ms, 0, 86400000, NULL},
    {"quarantine-ms", 0, ZP_OPT_UINT, "ZPIPE_QUARANTINE_MS", "MS",
     "a worker whose leases expire twice in a row with none of its "
     "results committed between is drained and refused this long, "
     "doubling at each offence up to an hour; 0 = never (default 30000)",
     &s_cfg.quarantine_ms, 0, 3600000, NULL},
    {"max-attempts", 0, ZP_OPT_UINT, "ZPIPE_MAX_ATTEMPTS", "N",
     "attempts before a retryable failure is final (default 3)",
     &s_cfg.max_attempts, 1, 100, NULL},
    {"max-inflight", 0, ZP_OPT_UINT, "ZPIPE_MAX_INFLIGHT", "N",
     "tasks read but not yet committed, bounding memory (default 0 = "
     "the workers' windows plus 8192)",
     &s_cfg.max_inflight, 0, 100000000, NULL},
    {"max-inflight-bytes", 0, ZP_OPT_UINT, "ZPIPE_MAX_INFLIGHT_BYTES", "BYTES",
     "payload bytes of those tasks, at least one task (default 0 = 16 "
     "MiB per connected worker, at least 32 MiB, at most 256 MiB)",
     &s_cfg.max_inflight_bytes, 0, 1ull << 40, NULL},
    {"no-worker-timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_NO_WORKER_TIMEOUT_MS", "MS",
     "exit with an error after this long without any worker, 0 = wait "
     "forever (default 60000)",
     &s_cfg.no_worker_timeout_ms, 0, 86400000, NULL},
    {"resume-journal", 0, ZP_OPT_STR, "ZPIPE_RESUME_JOURNAL", "FILE",
     "skip the tasks of this job (--job) that the sink's journal FILE "
     "has already committed",
     &s_cfg.resume_journal, 0, 0, NULL},
    {"journal", 0, ZP_OPT_STR, "ZPIPE_JOURNAL", "FILE",
     "keep producers' jobs in FILE: what a producer is told is taken is "
     "on disk first, and a restarted ventilator carries on with it",
     &s_cfg.journal, 0, 0, NULL},
    {"max-jobs", 0, ZP_OPT_UINT, "ZPIPE_MAX_JOBS", "N",
     "producers' jobs open at once; more are refused (default 10000)",
     &s_cfg.max_jobs, 1, 10000000, NULL},
    {"max-jobs-per-producer", 0, ZP_OPT_UINT, "ZPIPE_MAX_JOBS_PER_PRODUCER",
     "N", "of those, open from one producer connection (default 1000)",
     &s_cfg.max_jobs_per_producer, 1, 10000000, NULL},
    {"trace", 0, ZP_OPT_FLAG, "ZPIPE_TRACE", NULL,
     "stamp every task with the time it was queued, for task timelines "
     "(zpipe run --trace; the sink's --trace writes them)",
     &s_cfg.trace, 0, 0, NULL},
    ZP_METRICS_OPTION(s_cfg.metrics),
    ZP_EVENTS_OPTION(s_cfg.events),
    ZP_CURVE_OPTIONS(s_cfg.curve),
    ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                        s_cfg.sink_key),
    {"parent-pid", 0, ZP_OPT_UINT, "ZPIPE_PARENT_PID", "PID",
     "exit when this process is gone (set by zpipe run)", &s_parent, 0,
     1u << 30, NULL},
    {0},
};

int main(int argc, char **argv)
{
    zp_log_init("zpipe-ventilator");
    int rc = zp_opts_main(s_opts, argc, argv, "zpipe-ventilator", s_synopsis,
                          "zpipe-ventilator " ZPIPE_VERSION);
    if (rc >= 0) {
        zp_strlist_free(&s_cfg.config);
        return rc;
    }
    if (s_cfg.intake && !*s_cfg.intake)
        s_cfg.intake = NULL;
    if (!s_cfg.input && !s_cfg.intake)
        s_cfg.input = "-";
    if (s_cfg.input && !s_cfg.plugin) {
        zp_strlist_free(&s_cfg.config);
        return zp_opts_fail(s_opts, "zpipe-ventilator", s_synopsis,
                            "--plugin is required with an input");
    }
    if (!zp_cluster_valid(s_cfg.cluster)) {
        zp_strlist_free(&s_cfg.config);
        return zp_opts_fail(s_opts, "zpipe-ventilator", s_synopsis,
                            "--cluster must be 1 to 64 of [A-Za-z0-9_.:-]");
    }
    zp_signals_install((long)s_parent);
    zp_malloc_tune();
    rc = zp_ventilator_run(&s_cfg);
    zp_strlist_free(&s_cfg.config);
    return rc;
}
