/* zpipe-worker: options to zp_worker_run. */
#include "zp_cluster.h"
#include "worker.h"
#include "zp_log.h"
#include "zp_metrics.h"
#include "zp_opts.h"
#include "zp_util.h"

#include <zpipe/plugin.h>

#include <stdio.h>
#include <stdlib.h>

#define ZP_STR_(x) #x
#define ZP_STR(x)  ZP_STR_(x)

static const char s_synopsis[] =
    "Usage: zpipe-worker [OPTIONS] --plugin NAME|PATH [--plugin ...]\n"
    "       zpipe-worker [OPTIONS] --plugin-dir DIR [--plugin-dir ...]\n"
    "Runs tasks from a zpipe ventilator through plugins and sends the\n"
    "results to a zpipe sink.";

/* Longer than 100 lines for its options table, which reads best whole. */
int main(int argc, char **argv)
{
    zp_log_init("zpipe-worker");
    zp_worker_config_t cfg = {
        .ventilator = "tcp://localhost:5557",
        .sink = "tcp://localhost:5558",
        .dispatch = "credit",
        .window = 4096,
        .target_ms = 20,
        .max_output = 64u << 20,
        .max_frame = 256u << 20,
        .heartbeat_ms = 1000,
        .isolation = "process",
        .stall_floor_ms = 2000,
    };
    bool executor = false;
    uint64_t parent = 0;
    bool describe = false;
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "ventilator dispatch endpoint to connect (default "
         "tcp://localhost:5557)",
         &cfg.ventilator, 0, 0, NULL},
        {"sink", 's', ZP_OPT_STR, "ZPIPE_SINK", "ENDPOINT",
         "sink results endpoint to connect (default tcp://localhost:5558)",
         &cfg.sink, 0, 0, NULL},
        {"plugin", 'p', ZP_OPT_LIST, "ZPIPE_PLUGINS", "NAME",
         "plugin to load, by name (on ZPIPE_PLUGIN_PATH) or path; repeatable",
         &cfg.plugins, 0, 0, NULL},
        {"plugin-config", 0, ZP_OPT_LIST, NULL, "PLUGIN.KEY=VALUE",
         "a plugin setting (also ZPIPE_PLUGIN_<PLUGIN>_<KEY>); repeatable",
         &cfg.plugin_config, 0, 0, NULL},
        {"plugin-dir", 0, ZP_OPT_LIST, "ZPIPE_PLUGIN_DIRS", "DIR",
         "load every plugin in DIR, and plugins only from such directories; "
         "repeatable",
         &cfg.plugin_dirs, 0, 0, NULL},
        {"dispatch", 0, ZP_OPT_CHOICE, "ZPIPE_DISPATCH", "MODE",
         "credit (default) or push, as the ventilator uses", &cfg.dispatch, 0,
         0, "credit|push"},
        {"window", 'w', ZP_OPT_UINT, "ZPIPE_WINDOW", "N",
         "most tasks held at once under credit dispatch (default 4096)",
         &cfg.window, 1, 1000000, NULL},
        {"target-ms", 0, ZP_OPT_UINT, "ZPIPE_TARGET_MS", "MS",
         "work to keep queued when sizing credit (default 20)", &cfg.target_ms,
         1, 600000, NULL},
        {"id", 0, ZP_OPT_STR, "ZPIPE_WORKER_ID", "ID",
         "worker id (default HOST-PID-RANDOM)", &cfg.id, 0, 0, NULL},
        {"cluster", 0, ZP_OPT_STR, "ZPIPE_CLUSTER", "NAME",
         "the cluster this worker belongs to: a ventilator of another named "
         "cluster refuses it, and it exits (default: none, any)",
         &cfg.cluster, 0, 0, NULL},
        {"max-output", 0, ZP_OPT_UINT, "ZPIPE_MAX_OUTPUT", "BYTES",
         "largest output a task may produce (default 64 MiB)", &cfg.max_output,
         0, 1u << 30, NULL},
        {"max-frame", 0, ZP_OPT_UINT, "ZPIPE_MAX_FRAME", "BYTES",
         "largest task message accepted (default 256 MiB)", &cfg.max_frame,
         1024, 1u << 30, NULL},
        {"heartbeat-ms", 0, ZP_OPT_UINT, "ZPIPE_HEARTBEAT_MS", "MS",
         "heartbeat interval (default 1000)", &cfg.heartbeat_ms, 10, 60000,
         NULL},
        ZP_METRICS_OPTION(cfg.metrics),
        ZP_CURVE_OPTIONS(cfg.curve),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", cfg.ventilator_key),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                            cfg.sink_key),
        {"parent-pid", 0, ZP_OPT_UINT, "ZPIPE_PARENT_PID", "PID",
         "exit when this process is gone (set by zpipe run)", &parent, 0,
         1u << 30, NULL},
        {"isolation", 0, ZP_OPT_CHOICE, "ZPIPE_ISOLATION", "MODE",
         "process (default): plugins run in a supervised executor process, "
         "so a crash fails only its task; none: in this process, for "
         "trusted plugins",
         &cfg.isolation, 0, 0, "process|none"},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "default per-task deadline when the job sets none; the task is "
         "killed past it (isolation process), 0 = none (default 0)",
         &cfg.deadline_ms, 0, 86400000, NULL},
        {"stall-floor-ms", 0, ZP_OPT_UINT, "ZPIPE_STALL_FLOOR_MS", "MS",
         "a task with no deadline running this long and 10 times the 99th "
         "percentile of recent tasks is stalled: its executor is left to "
         "it and a fresh one runs the tasks behind it (isolation process), "
         "0 = never (default 2000)",
         &cfg.stall_floor_ms, 0, 86400000, NULL},
        {"memory-limit", 0, ZP_OPT_UINT, "ZPIPE_MEMORY_LIMIT", "BYTES",
         "address-space limit of the executor process, 0 = none (default 0)",
         &cfg.memory_limit, 0, UINT64_MAX, NULL},
        {"executor", 0, ZP_OPT_FLAG, NULL, NULL,
         "internal: run as the executor of a worker (fds 3 and 4)", &executor,
         0, 0, NULL},
        {"describe", 0, ZP_OPT_FLAG, NULL, NULL,
         "load the plugins, print their descriptors and exit", &describe, 0, 0,
         NULL},
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe-worker", s_synopsis,
                          "zpipe-worker " ZPIPE_VERSION " (plugin ABI " ZP_STR(
                              ZPIPE_ABI_MAJOR) "." ZP_STR(ZPIPE_ABI_MINOR) ")");
    if (rc >= 0)
        return rc;
    if (cfg.plugins.count == 0 && cfg.plugin_dirs.count == 0)
        return zp_opts_fail(opts, "zpipe-worker", s_synopsis,
                            "--plugin or --plugin-dir is required");
    if (!zp_cluster_valid(cfg.cluster))
        return zp_opts_fail(opts, "zpipe-worker", s_synopsis,
                            "--cluster must be 1 to 64 of [A-Za-z0-9_.:-]");
    cfg.parent_pid = (long)parent;
    if (executor) {
        int erc = zp_worker_executor_main(&cfg);
        zp_strlist_free(&cfg.plugins);
        zp_strlist_free(&cfg.plugin_dirs);
        zp_strlist_free(&cfg.plugin_config);
        return erc;
    }
    zp_malloc_tune();
    rc = describe ? zp_worker_describe(&cfg)
                  : (zp_signals_install((long)parent), zp_worker_run(&cfg));
    zp_strlist_free(&cfg.plugins);
    zp_strlist_free(&cfg.plugin_dirs);
    zp_strlist_free(&cfg.plugin_config);
    return rc;
}
