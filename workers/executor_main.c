/* zpipe-executor: a worker's executor process, as `zpipe-worker
 * --executor` is, in a binary that links neither libzmq nor what libzmq
 * brings (libsodium, libpgm, libnorm, Kerberos, libstdc++): an executor
 * talks to its worker over a socket pair, and its start (at every job's
 * first task, and after every crash) is on the way to the first result.
 * Started by the worker (wk_spawn.c) with the options below, which mean
 * what the worker's do; it is not meant to be run by hand. zpipe run's
 * plugin probe (--describe) runs here too, for the same reason. */
#include "wk_exec.h"
#include "worker.h"
#include "zp_log.h"
#include "zp_opts.h"

#include <stdlib.h>

static const char s_synopsis[] =
    "Usage: zpipe-executor [OPTIONS] --plugin PATH [--plugin ...]\n"
    "A zpipe worker's executor: runs the plugins on the batches its worker\n"
    "writes on fd 3 (progress page on fd 4). Started by zpipe-worker.";

int main(int argc, char **argv)
{
    zp_log_init("zpipe-worker");
    zp_worker_config_t cfg = {
        .max_output = 64u << 20,
        .max_frame = 256u << 20,
    };
    uint64_t parent = 0;
    bool executor = true, describe = false;
    const zp_opt_t opts[] = {
        {"plugin", 'p', ZP_OPT_LIST, "ZPIPE_PLUGINS", "PATH",
         "plugin file the worker loaded; repeatable", &cfg.plugins, 0, 0, NULL},
        {"plugin-config", 0, ZP_OPT_LIST, NULL, "PLUGIN.KEY=VALUE",
         "a plugin setting (also ZPIPE_PLUGIN_<PLUGIN>_<KEY>); repeatable",
         &cfg.plugin_config, 0, 0, NULL},
        {"plugin-dir", 0, ZP_OPT_LIST, "ZPIPE_PLUGIN_DIRS", "DIR",
         "plugins only from such directories; repeatable", &cfg.plugin_dirs, 0,
         0, NULL},
        {"id", 0, ZP_OPT_STR, "ZPIPE_WORKER_ID", "ID", "the worker's id",
         &cfg.id, 0, 0, NULL},
        {"max-output", 0, ZP_OPT_UINT, "ZPIPE_MAX_OUTPUT", "BYTES",
         "largest output a task may produce (default 64 MiB)", &cfg.max_output,
         0, 1u << 30, NULL},
        {"max-frame", 0, ZP_OPT_UINT, "ZPIPE_MAX_FRAME", "BYTES",
         "largest batch accepted (default 256 MiB)", &cfg.max_frame, 1024,
         1u << 30, NULL},
        {"memory-limit", 0, ZP_OPT_UINT, "ZPIPE_MEMORY_LIMIT", "BYTES",
         "address-space limit of this process, 0 = none (default 0)",
         &cfg.memory_limit, 0, UINT64_MAX, NULL},
        {"parent-pid", 0, ZP_OPT_UINT, "ZPIPE_PARENT_PID", "PID",
         "exit when this process (the worker) is gone", &parent, 0, 1u << 30,
         NULL},
        {"executor", 0, ZP_OPT_FLAG, NULL, NULL,
         "accepted for zpipe-worker --executor's command line", &executor, 0, 0,
         NULL},
        {"describe", 0, ZP_OPT_FLAG, NULL, NULL,
         "load the plugins, print their descriptors and exit, as "
         "zpipe-worker --describe (zpipe run's probe)",
         &describe, 0, 0, NULL},
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe-executor", s_synopsis,
                          "zpipe-executor " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    cfg.parent_pid = (long)parent;
    if (cfg.plugins.count == 0)
        rc = zp_opts_fail(opts, "zpipe-executor", s_synopsis,
                          "--plugin is required");
    else
        rc =
            describe ? zp_worker_describe(&cfg) : zp_worker_executor_main(&cfg);
    zp_strlist_free(&cfg.plugins);
    zp_strlist_free(&cfg.plugin_dirs);
    zp_strlist_free(&cfg.plugin_config);
    return rc;
}
