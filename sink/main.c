/* zpipe-sink: options to zp_sink_run. */
#include "sink.h"
#include "sink_store.h"
#include "zp_cluster.h"
#include "zp_log.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_opts.h"
#include "zp_util.h"

#include <stdio.h>
#include <string.h>

static const char s_synopsis[] =
    "Usage: zpipe-sink [OPTIONS]\n"
    "Collects results from zpipe workers, writes one record per task and\n"
    "reports when each job is complete.";

int main(int argc, char **argv)
{
    zp_log_init("zpipe-sink");
    zp_sink_config_t cfg = {
        .results = "tcp://*:5558",
        .control = "tcp://*:5559",
        .publish = "tcp://*:5560",
        .format = "jsonl",
        .max_frame = 256u << 20,
        .retain_jobs = 1000,
        .journal_compact = 64u << 20,
    };
    uint64_t parent = 0;
    const char *journal_sync = "yes";
    const zp_opt_t opts[] = {
        {"results", 'r', ZP_OPT_STR, "ZPIPE_SINK_RESULTS", "ENDPOINT",
         "bind for worker results, PULL (default tcp://*:5558)", &cfg.results,
         0, 0, NULL},
        {"control", 'c', ZP_OPT_STR, "ZPIPE_SINK_CONTROL", "ENDPOINT",
         "bind for job control and status, ROUTER (default tcp://*:5559)",
         &cfg.control, 0, 0, NULL},
        {"publish", 0, ZP_OPT_STR, "ZPIPE_SINK_PUBLISH", "ENDPOINT",
         "bind PUB for live results, topic = job id; 'none' to disable "
         "(default tcp://*:5560)",
         &cfg.publish, 0, 0, NULL},
        {"output", 'o', ZP_OPT_STR, "ZPIPE_OUTPUT", "FILE",
         "write records here, - for stdout, none for nowhere (default -; "
         "none with --spool: each record is then written once, to its "
         "job's spool)",
         &cfg.output, 0, 0, NULL},
        {"format", 'f', ZP_OPT_CHOICE, "ZPIPE_FORMAT", "FORMAT",
         "record format: jsonl (default), lines (the outputs, one a line) "
         "or frames (binary: a 24-byte header, then output, cause, error; "
         "docs/formats.md)",
         &cfg.format, 0, 0, "jsonl|lines|frames"},
        {"ordered", 0, ZP_OPT_FLAG, "ZPIPE_ORDERED", NULL,
         "write each job's records in task order", &cfg.ordered, 0, 0, NULL},
        {"journal", 0, ZP_OPT_STR, "ZPIPE_JOURNAL", "FILE",
         "append-only commit log, synced in batches: a restarted sink "
         "resumes from it without losing or repeating a record. Without "
         "it the sink keeps its own, not synced, in the --spool DIR or "
         "beside --output FILE (FILE.journal): a crash loses nothing, a "
         "power loss the unsynced tail",
         &cfg.journal, 0, 0, NULL},
        {"journal-sync", 0, ZP_OPT_CHOICE, "ZPIPE_SINK_JOURNAL_SYNC", "WHEN",
         "yes: fdatasync --journal before acknowledging (default); no: only "
         "write it (survives a crash of the sink, not a power loss)",
         &journal_sync, 0, 0, "yes|no"},
        {"journal-compact", 0, ZP_OPT_UINT, "ZPIPE_SINK_JOURNAL_COMPACT",
         "BYTES",
         "rewrite the journal as a snapshot of what the sink keeps (finished "
         "jobs as one line each) once it is past BYTES and twice what the "
         "last rewrite left (default 67108864, 64 MiB; 0 = never)",
         &cfg.journal_compact, 0, UINT64_MAX, NULL},
        {"spool", 0, ZP_OPT_STR, "ZPIPE_SPOOL", "DIR",
         "keep each job's records (JSON Lines) in DIR/JOB.jsonl, for "
         "consumers to fetch by cursor (zpipe results); with --output "
         "too, they are written to both",
         &cfg.spool, 0, 0, NULL},
        {"retain-jobs", 0, ZP_OPT_UINT, "ZPIPE_RETAIN_JOBS", "N",
         "finished jobs kept whole (default 1000); older ones are kept as "
         "56 bytes each (1,000,000 of them, or 10 N when more): their id "
         "refused to another job, their status and counts answered, their "
         "records served from their spool file. 0 = keep every one whole",
         &cfg.retain_jobs, 0, 1000000000, NULL},
        {"max-frame", 0, ZP_OPT_UINT, "ZPIPE_MAX_FRAME", "BYTES",
         "largest message accepted (default 256 MiB)", &cfg.max_frame, 1024,
         1u << 30, NULL},
        {"reduce", 0, ZP_OPT_LIST, "ZPIPE_REDUCE", "PLUGIN",
         "fold the results of this plugin's jobs with its reducer and write "
         "one final record per job (failures still one by one); repeatable",
         &cfg.reduce, 0, 0, NULL},
        {"plugin-config", 0, ZP_OPT_LIST, NULL, "PLUGIN.KEY=VALUE",
         "a reducer's setting (also ZPIPE_PLUGIN_<PLUGIN>_<KEY>); repeatable",
         &cfg.plugin_config, 0, 0, NULL},
        {"trace", 0, ZP_OPT_STR, "ZPIPE_SINK_TRACE", "FILE",
         "append a line per result received to FILE: the task's queue, "
         "dispatch, run and commit times, for task timelines (zpipe run "
         "--trace)",
         &cfg.trace, 0, 0, NULL},
        ZP_METRICS_OPTION(cfg.metrics),
        ZP_EVENTS_OPTION(cfg.events),
        ZP_CURVE_OPTIONS(cfg.curve),
        {"parent-pid", 0, ZP_OPT_UINT, "ZPIPE_PARENT_PID", "PID",
         "exit when this process is gone (set by zpipe run)", &parent, 0,
         1u << 30, NULL},
        {"cluster", 0, ZP_OPT_STR, "ZPIPE_CLUSTER", "NAME",
         "this cluster's name: a ventilator or client of another named "
         "cluster is refused (default: none, any)",
         &cfg.cluster, 0, 0, NULL},
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe-sink", s_synopsis,
                          "zpipe-sink " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    if (!zp_cluster_valid(cfg.cluster))
        return zp_opts_fail(opts, "zpipe-sink", s_synopsis,
                            "--cluster must be 1 to 64 of [A-Za-z0-9_.:-]");
    cfg.journal_sync = strcmp(journal_sync, "no") != 0;
    /* A service sink's records are its spools: not written twice. */
    if (!cfg.output)
        cfg.output = cfg.spool ? ZP_STORE_NO_OUTPUT : "-";
    if (cfg.publish && (!*cfg.publish || !strcmp(cfg.publish, "none")))
        cfg.publish = NULL;
    zp_signals_install((long)parent);
    zp_malloc_tune();
    rc = zp_sink_run(&cfg);
    zp_strlist_free(&cfg.reduce);
    zp_strlist_free(&cfg.plugin_config);
    return rc;
}
