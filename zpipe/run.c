/* zpipe run: start a ventilator, N workers and a sink on ipc:// endpoints in
 * a private directory, feed the input as one job, wait for the sink to
 * report it done, stop everything, and exit 0 only if every task succeeded.
 *
 * It supervises what it started (supervisor.c): a worker that dies is
 * replaced (with backoff); a sink that dies is restarted and resumes from
 * its journal (--journal, or without it one of its own in the private
 * directory; a sink that reduces keeps its folded results beside it); a
 * ventilator that dies ends the run with an error. Children are started with
 * posix_spawn (never a bare fork) and end themselves if this process dies
 * (--parent-pid). */
#define _GNU_SOURCE
#include "client.h"
#include "run.h"
#include "supervisor.h"
#include "timeline.h"
#include "zp_log.h"
#include "zp_metrics.h"
#include "zp_plugin.h"
#include "zp_spawn.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The largest message from our own sink's control socket. */
#define S_CONTROL_MAX_MSG (1u << 24)

static const char s_synopsis[] =
    "Usage: zpipe run --plugin NAME|PATH [OPTIONS]\n"
    "Runs one job on this machine: each input line (or frame, with\n"
    "--input-format frames) is a task for the plugin; records go to the\n"
    "output. Exit status: 0 every task succeeded, 1 some tasks failed (or,\n"
    "with --reduce, the reduction failed), 2 bad usage, 3 a component\n"
    "failed or the job could not progress, 130/143 interrupted.";

/* One run: what it was asked, what it made, what it learnt. */
typedef struct {
    zp_run_opts_t o;
    char web_addr[96], web_url[128]; /* --web: the sink's --metrics, URL */
    FILE *trace_out;                 /* --trace, opened before any work */
    bool show;                       /* the progress line */
    char *bin_worker, *bin_vent, *bin_sink;
    char *name;   /* the plugin's descriptor name */
    char *job;    /* the job id */
    char **pconf; /* o.config as the plugin's settings */
    char dir[32]; /* the private directory, once have_dir */
    bool have_dir;
    zp_run_plan_t plan;
    zp_super_t *super;
    zp_client_t *control;                  /* the sink's control socket */
    uint64_t t0;                           /* when the watch began */
    Zpipe__V1__JobStatus last;             /* the sink's last word on the job */
    Zpipe__V1__WorkerStats *final_workers; /* from the final JobStatus */
    size_t n_final;
    char *reduce_error; /* from the sink, for a reduced job */
} s_run_t;

/* Parses and checks the options and opens --trace. Returns -1 to go on,
 * else the exit code. */
static int s_parse(s_run_t *r, int argc, char **argv)
{
    zp_opt_t opts[ZP_RUN_N_OPTS];
    zp_run_opts_table(&r->o, opts);
    int prc = zp_opts_main(opts, argc, argv, "zpipe run", s_synopsis,
                           "zpipe " ZPIPE_VERSION);
    if (prc >= 0)
        return prc;
    char web_err[256];
    const char *usage_error =
        zp_run_usage_error(&r->o, r->web_addr, sizeof r->web_addr, r->web_url,
                           sizeof r->web_url, web_err, sizeof web_err);
    if (usage_error)
        return zp_opts_fail(opts, "zpipe run", s_synopsis, usage_error);
    const zp_run_opts_t *o = &r->o;
    /* The sink loads libmicrohttpd for --web: say so here if it cannot, not
     * in a sink that the supervisor would start again and again. */
    if (o->web && zp_metrics_load("--web", web_err, sizeof web_err) < 0) {
        fprintf(stderr, "zpipe run: %s\n", web_err);
        return 3;
    }
    if (strcmp(o->input, "-") != 0 && access(o->input, R_OK) != 0) {
        fprintf(stderr, "zpipe run: cannot read input %s: %s\n", o->input,
                strerror(errno));
        return 2;
    }
    if (o->journal && !o->resume && access(o->journal, F_OK) == 0) {
        fprintf(stderr,
                "zpipe run: journal %s exists; add --resume to finish its "
                "job, or remove it to start afresh\n",
                o->journal);
        return 2;
    }
    /* Opened now, so a path that cannot be written fails before work. */
    if (o->trace && !(r->trace_out = fopen(o->trace, "we"))) {
        fprintf(stderr, "zpipe run: cannot write trace %s: %s\n", o->trace,
                strerror(errno));
        return 2;
    }
    r->show = !o->no_progress && (o->progress || isatty(STDERR_FILENO));
    return -1;
}

/* Checks the plugin, picks the job id, makes the private directory and
 * the endpoints in it. Returns 0, or -1 (said on stderr). */
static int s_prepare(s_run_t *r)
{
    const zp_run_opts_t *o = &r->o;
    r->bin_worker = zp_sibling("zpipe-worker");
    r->bin_vent = zp_sibling("zpipe-ventilator");
    r->bin_sink = zp_sibling("zpipe-sink");
    if (!r->bin_worker || !r->bin_vent || !r->bin_sink)
        return -1;
    /* Settings go to the plugin by name: NAME.so's NAME, as the worker
     * looks them up under the descriptor's name (the same, by custom). */
    r->pconf =
        zp_plugin_settings_for(o->plugin, o->config.items, o->config.count);
    if (!r->pconf)
        return -1;
    bool has_reducer = false;
    /* The probe in zpipe-executor, which loads no libzmq (1.5 ms less on
     * the way to the first result), else in zpipe-worker. */
    char *probe = zp_sibling("zpipe-executor");
    r->name = zp_run_plugin_name(
        probe && access(probe, X_OK) == 0 ? probe : r->bin_worker, o->plugin,
        r->pconf, o->config.count, &has_reducer);
    free(probe);
    if (r->name && o->reduce && !has_reducer) {
        fprintf(stderr, "zpipe run: --reduce: plugin %s (%s) has no reducer\n",
                r->name, o->plugin);
        return -1;
    }
    if (!r->name) {
        fprintf(stderr,
                "zpipe run: plugin %s refused (see the message above)\n",
                o->plugin);
        return -1;
    }
    if (o->job)
        r->job = strdup(o->job);
    else if (o->resume && (r->job = zp_run_journal_job(o->journal)) != NULL)
        fprintf(stderr, "zpipe run: resuming job %s from %s\n", r->job,
                o->journal);
    else
        r->job = zp_random_id("job-", 6);
    snprintf(r->dir, sizeof r->dir, "/tmp/zpipe-run-XXXXXX");
    if (!r->job || !mkdtemp(r->dir)) {
        zp_error("cannot make a private directory: %s", strerror(errno));
        return -1;
    }
    r->have_dir = true;
    return zp_run_plan_endpoints(&r->plan, o->transport, r->dir);
}

/* The children's command lines, and the supervisor that runs them: the
 * sink first, so the ventilator's JobOpen finds it. Returns 0, or -1 when
 * out of memory. */
static int s_plan(s_run_t *r)
{
    zp_run_names_t names = {r->bin_sink, r->bin_vent, r->bin_worker, r->name,
                            r->job,      r->pconf,    r->web_addr};
    zp_run_plan_argv(&r->plan, &r->o, &names);
    if (*r->web_addr)
        fprintf(stderr, "zpipe run: web view at %s while the job runs\n",
                r->web_url);
    /* Every sink keeps a journal (its own when --journal is not given). */
    r->super = zp_super_new(zp_super_os_ops(), r->job, true);
    if (!r->super ||
        zp_super_add(r->super, ZP_ROLE_SINK, r->plan.argv[ZP_ROLE_SINK]) < 0 ||
        zp_super_add(r->super, ZP_ROLE_VENTILATOR,
                     r->plan.argv[ZP_ROLE_VENTILATOR]) < 0)
        return -1;
    for (uint64_t i = 0; i < r->o.workers; i++)
        if (zp_super_add(r->super, ZP_ROLE_WORKER,
                         r->plan.argv[ZP_ROLE_WORKER]) < 0)
            return -1;
    return 0;
}

/* Starts every child; workers get no stdin (only the ventilator reads the
 * job's input). On failure stops those started. */
static int s_start_children(s_run_t *r)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = zp_super_start(r->super, devnull);
    if (devnull >= 0)
        close(devnull);
    if (rc < 0) {
        zp_error("cannot start a process: %s", strerror(errno));
        zp_super_stop(r->super);
    }
    return rc;
}

/* Keeps what the final JobStatus says beyond the counts. */
static void s_keep_final(s_run_t *r, const Zpipe__V1__JobStatus *st)
{
    if (st->reduce_error && *st->reduce_error && !r->reduce_error)
        r->reduce_error = strdup(st->reduce_error);
    r->n_final = st->n_workers;
    r->final_workers =
        calloc(r->n_final ? r->n_final : 1, sizeof *r->final_workers);
    for (size_t i = 0; r->final_workers && i < r->n_final; i++) {
        r->final_workers[i] = *st->workers[i];
        r->final_workers[i].worker_id = strdup(st->workers[i]->worker_id);
    }
}

/* Takes the waiting JobStatus answers about our job; true once it is
 * done. */
static bool s_take_answers(s_run_t *r)
{
    zp_message_t *m;
    while (zp_client_next(r->control, &m) == 0) {
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_JOB_STATUS ||
            !m->job_status->job_id || strcmp(m->job_status->job_id, r->job))
            continue;
        Zpipe__V1__JobStatus *st = m->job_status;
        r->last.state = st->state;
        r->last.total = st->total;
        r->last.done = st->done;
        r->last.succeeded = st->succeeded;
        r->last.failed = st->failed;
        r->last.duplicates = st->duplicates;
        r->last.bad_messages = st->bad_messages;
        r->last.retries = st->retries;
        if (st->state == ZPIPE__V1__JOB_STATE__JOB_DONE) {
            s_keep_final(r, st);
            return true;
        }
    }
    return false;
}

/* Asks the sink about the job until it is done, supervising the children
 * between answers. */
static zp_run_end_t s_watch(s_run_t *r)
{
    uint64_t last_req = 0;
    bool done = false;
    r->t0 = zp_mono_us();
    while (!done && !zp_stopping()) {
        uint64_t now = zp_mono_us();
        /* Until the sink knows the job (it registers us as a waiter
         * then), ask again soon: a request that arrives before the job
         * is opened is answered JOB_UNKNOWN and not remembered. A short
         * job can open and finish between two asks, so the first 100 ms
         * ask every millisecond: at 10 ms, a one-line job was found done
         * up to 10 ms late in about half of its runs. */
        uint64_t every = r->last.state != ZPIPE__V1__JOB_STATE__JOB_UNKNOWN
                             ? 250000
                         : now - r->t0 < 100000 ? 1000
                                                : 10000;
        if (now - last_req >= every) {
            zp_client_ask_status(r->control, r->job, true);
            last_req = now;
        }
        if (zp_client_poll(r->control, (long)(every / 1000)))
            done = s_take_answers(r);
        if (r->show)
            zp_run_progress(&r->last, r->t0);
        zp_super_event_t ev;
        if (!done && zp_super_tick(r->super, r->last.done, &ev) < 0) {
            char why[512];
            zp_super_explain(r->super, &ev, why, sizeof why);
            fputs(why, stderr);
            return ZP_RUN_FAILED;
        }
    }
    if (r->show)
        fputs("\r\033[K", stderr);
    return done ? ZP_RUN_DONE : ZP_RUN_INTERRUPTED;
}

/* The lines that end a job that is done. */
static void s_summary(const s_run_t *r)
{
    const Zpipe__V1__JobStatus *last = &r->last;
    double secs = (double)(zp_mono_us() - r->t0) / 1e6;
    fprintf(stderr,
            "zpipe run: job %s: %llu tasks, %llu succeeded, %llu failed "
            "in %.3f s (%.0f tasks/s) on %llu workers\n",
            r->job, (unsigned long long)last->total,
            (unsigned long long)last->succeeded,
            (unsigned long long)last->failed, secs,
            secs > 0 ? (double)last->total / secs : 0.0,
            (unsigned long long)r->o.workers);
    for (size_t i = 0; r->final_workers && i < r->n_final; i++) {
        const Zpipe__V1__WorkerStats *w = &r->final_workers[i];
        fprintf(stderr,
                "zpipe run:   worker %s: %llu tasks, window %u, max held %u\n",
                w->worker_id ? w->worker_id : "?",
                (unsigned long long)w->tasks_done, w->window, w->max_held);
    }
    bool balanced = last->total == last->succeeded + last->failed;
    fprintf(stderr,
            "zpipe run: accounting: submitted %llu %s succeeded %llu + "
            "failed %llu; retries %llu, duplicates dropped %llu, bad "
            "messages %llu, worker restarts %llu, sink restarts %llu\n",
            (unsigned long long)last->total,
            balanced ? "=" : "!=", (unsigned long long)last->succeeded,
            (unsigned long long)last->failed, (unsigned long long)last->retries,
            (unsigned long long)last->duplicates,
            (unsigned long long)last->bad_messages,
            (unsigned long long)zp_super_restarts(r->super, ZP_ROLE_WORKER),
            (unsigned long long)zp_super_restarts(r->super, ZP_ROLE_SINK));
    if (r->reduce_error)
        fprintf(stderr, "zpipe run: the reduction failed: %s\n",
                r->reduce_error);
}

/* Says how the watch ended; returns the exit code. */
static int s_report(const s_run_t *r, zp_run_end_t end)
{
    if (end == ZP_RUN_DONE)
        s_summary(r);
    else if (end == ZP_RUN_INTERRUPTED)
        fprintf(stderr,
                "zpipe run: interrupted; job %s incomplete (%llu done)%s\n",
                r->job, (unsigned long long)r->last.done,
                r->o.journal ? "; finish it with --resume" : "");
    else if (!zp_stopping())
        fprintf(stderr,
                "zpipe run: accounting: %llu tasks had their record when the "
                "run stopped%s\n",
                (unsigned long long)r->last.done,
                r->o.journal ? "; finish the job with --resume" : "");
    return zp_run_exit_code(end, &r->last, r->reduce_error != NULL,
                            zp_stop_signal());
}

/* Runs the job on the children started, then stops them. Returns the exit
 * code. */
static int s_run_job(s_run_t *r)
{
    int rc = 3;
    bool done = false;
    zp_signals_install(0);
    r->control =
        zp_client_new(r->plan.ep_ctl, S_CONTROL_MAX_MSG, NULL, NULL, NULL);
    if (r->control) {
        zp_run_end_t end = s_watch(r);
        rc = s_report(r, end);
        done = end == ZP_RUN_DONE;
    }
    zp_client_destroy(&r->control);
    if (zp_super_stop(r->super) < 0 && done) {
        /* The job was done, but the sink failed as it stopped (its last
         * flush, its journal or output deleted): not a success. */
        char why[96];
        zp_super_describe_exit(why, sizeof why,
                               zp_super_sink_stop_status(r->super));
        fprintf(stderr,
                "zpipe run: the sink %s as it stopped (its message above "
                "says why): the output of job %s may not hold every record\n",
                why, r->job);
        rc = 3;
    }
    if (done)
        fprintf(stderr,
                "zpipe run: peak RSS KiB: sink %ld, ventilator %ld, workers "
                "%ld (largest, with its executors)\n",
                zp_super_peak_rss(r->super, ZP_ROLE_SINK),
                zp_super_peak_rss(r->super, ZP_ROLE_VENTILATOR),
                zp_super_peak_rss(r->super, ZP_ROLE_WORKER));
    /* The sink has stopped: its trace log is complete. A run that did
     * not finish still gets the timeline of what happened. */
    if (r->trace_out && zp_timeline_write(r->plan.trace_log, r->trace_out,
                                          r->o.trace, stderr) < 0)
        fprintf(stderr, "zpipe run: no timeline written to %s\n", r->o.trace);
    return rc;
}

static void s_cleanup(s_run_t *r)
{
    if (r->have_dir) {
        char path[256];
        const char *names[] = {"dispatch", "results", "control", "trace.jsonl",
                               "sink.journal"};
        for (size_t i = 0; i < 5; i++) {
            snprintf(path, sizeof path, "%s/%s", r->dir, names[i]);
            unlink(path);
        }
        rmdir(r->dir);
    }
    if (r->trace_out)
        fclose(r->trace_out);
    for (size_t i = 0; r->final_workers && i < r->n_final; i++)
        free(r->final_workers[i].worker_id);
    free(r->final_workers);
    free(r->reduce_error);
    zp_super_destroy(&r->super);
    for (size_t i = 0; r->pconf && i < r->o.config.count; i++)
        free(r->pconf[i]);
    free(r->pconf);
    zp_strlist_free(&r->o.config);
    free(r->name);
    free(r->job);
    free(r->bin_worker);
    free(r->bin_vent);
    free(r->bin_sink);
}

int zp_cmd_run(int argc, char **argv)
{
    s_run_t r = {.last = ZPIPE__V1__JOB_STATUS__INIT};
    zp_run_opts_init(&r.o);
    zp_log_set_level("warn");
    int rc = s_parse(&r, argc, argv);
    if (rc < 0) {
        rc = 3;
        if (s_prepare(&r) == 0 && s_plan(&r) == 0 && s_start_children(&r) == 0)
            rc = s_run_job(&r);
    }
    s_cleanup(&r);
    return rc;
}
