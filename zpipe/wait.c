/* zpipe wait / zpipe results: clients of a running sink's control socket. */
#define _GNU_SOURCE
#include "client.h"
#include "fetch.h"
#include "zp_curve.h"
#include "zp_journal.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_UNKNOWN_GRACE_US 10000000u /* a job the sink may not know yet */
#define S_RESEND_US        2000000u  /* ask again (a restarted sink forgot) */

typedef struct {
    const char *sink;
    const char *secret, *sink_key; /* CURVE */
    uint64_t timeout_ms;
    uint64_t cursor;
    const char *job;
    const char *direct; /* zpipe results: auto, yes or no */
    const char *output; /* zpipe results: the file, NULL: stdout */
    bool take;          /* zpipe results: the sink drops its copy */
} s_client_opts_t;

/* Parses the options and the one operand, JOB. Returns -1 to go on. */
static int s_client_args(const zp_opt_t *opts, int argc, char **argv,
                         const char *prog, const char *synopsis,
                         s_client_opts_t *o)
{
    int first;
    int rc = zp_opts_main_operands(opts, argc, argv, prog, synopsis,
                                   "zpipe " ZPIPE_VERSION, &first);
    if (rc >= 0)
        return rc;
    if (argc - first != 1)
        return zp_opts_fail(opts, prog, synopsis,
                            first < argc ? "one JOB, please"
                                         : "JOB is missing");
    o->job = argv[first];
    if (!zp_job_id_valid(o->job))
        return zp_opts_fail(opts, prog, synopsis,
                            "JOB must be 1 to 128 of [A-Za-z0-9_.:-]");
    return -1;
}

/* The options zpipe wait and zpipe results share. */
#define S_OPT_SINK(o)                                                          \
    {                                                                          \
        "sink", 's', ZP_OPT_STR, "ZPIPE_SINK", "ENDPOINT",                     \
            "the sink's control endpoint (default tcp://127.0.0.1:5559)",      \
            &(o).sink, 0, 0, NULL                                              \
    }
#define S_OPT_TIMEOUT(o)                                                       \
    {                                                                          \
        "timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",                \
            "give up after this long, 0 = never (default 0)", &(o).timeout_ms, \
            0, 86400000ull * 365, NULL                                         \
    }

static bool s_timed_out(const s_client_opts_t *o, uint64_t t0)
{
    return o->timeout_ms && zp_mono_us() - t0 > o->timeout_ms * 1000;
}

static const char s_wait_synopsis[] =
    "Usage: zpipe wait [OPTIONS] JOB\n"
    "Blocks until the sink has a record for every task of JOB, then prints\n"
    "its counts. Exit status: 0 every task succeeded, 1 some failed or the\n"
    "job's reduction failed, 2 bad usage, 3 the sink does not know the job\n"
    "(10 s) or did not answer in --timeout-ms, 130/143 interrupted.";

int zp_cmd_wait(int argc, char **argv)
{
    s_client_opts_t o = {.sink = "tcp://127.0.0.1:5559"};
    const zp_opt_t opts[] = {
        S_OPT_SINK(o),
        S_OPT_TIMEOUT(o),
        ZP_CURVE_SECRET_OPTION(o.secret),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                            o.sink_key),
        {0},
    };
    int rc = s_client_args(opts, argc, argv, "zpipe wait", s_wait_synopsis, &o);
    if (rc >= 0)
        return rc;
    zp_signals_install(0);
    rc = 3;
    zp_client_t *c = zp_client_new(o.sink, ZP_CLIENT_MAX_MSG, o.secret,
                                   "sink-key", o.sink_key);
    if (!c)
        goto done;
    uint64_t t0 = zp_mono_us(), known_since = 0;
    while (!zp_stopping() && !s_timed_out(&o, t0)) {
        zp_client_ask_status(c, o.job, true);
        /* The first answer is at once; the final one when the job ends. */
        uint64_t asked = zp_mono_us();
        while (!zp_stopping() && zp_mono_us() - asked < S_RESEND_US) {
            zp_message_t *r = zp_client_recv(
                c, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, o.job, 200);
            if (!r)
                continue;
            const Zpipe__V1__JobStatus *st = r->job_status;
            if (st->state == ZPIPE__V1__JOB_STATE__JOB_UNKNOWN) {
                if (!known_since && zp_mono_us() - t0 > S_UNKNOWN_GRACE_US) {
                    fprintf(stderr,
                            "zpipe wait: the sink at %s does not know "
                            "job %s\n",
                            o.sink, o.job);
                    goto done;
                }
                usleep(100000);
                break; /* ask again */
            }
            known_since = known_since ? known_since : zp_mono_us();
            if (st->state == ZPIPE__V1__JOB_STATE__JOB_DONE) {
                printf("job %s: %llu tasks, %llu succeeded, %llu failed, "
                       "%llu retries, %llu duplicates dropped\n",
                       o.job, (unsigned long long)st->total,
                       (unsigned long long)st->succeeded,
                       (unsigned long long)st->failed,
                       (unsigned long long)st->retries,
                       (unsigned long long)st->duplicates);
                bool reduce_failed = st->reduce_error && *st->reduce_error;
                if (reduce_failed)
                    printf("job %s: the reduction failed: %s\n", o.job,
                           st->reduce_error);
                rc = st->failed || reduce_failed ? 1 : 0;
                goto done;
            }
        }
    }
    if (zp_stopping())
        rc = 128 + zp_stop_signal();
    else
        fprintf(stderr, "zpipe wait: job %s not done within %llu ms\n", o.job,
                (unsigned long long)o.timeout_ms);
done:
    zp_client_destroy(&c);
    return rc;
}

static const char s_results_synopsis[] =
    "Usage: zpipe results [OPTIONS] JOB\n"
    "Writes every record of JOB (JSON Lines) to stdout as the sink commits\n"
    "them, from the start or --cursor, and ends when the job is done. Needs a\n"
    "sink started with --spool DIR. Nothing is skipped however slowly this\n"
    "reads. With --take the sink then deletes its copy (its spool file),\n"
    "and with --output on the sink's host and file system a done job's\n"
    "spool file itself becomes the output: nothing is copied.\n"
    "Exit status: 0 all records written (and with --take, the sink's copy\n"
    "dropped), 2 bad usage, 3 the sink refused or did not answer in\n"
    "--timeout-ms, 130/143 interrupted (the cursor to resume from is\n"
    "printed on stderr).";

int zp_cmd_results(int argc, char **argv)
{
    s_client_opts_t o = {.sink = "tcp://127.0.0.1:5559"};
    const zp_opt_t opts[] = {
        S_OPT_SINK(o),
        {"cursor", 0, ZP_OPT_UINT, NULL, "N",
         "start here (a cursor printed by an interrupted run; default 0)",
         &o.cursor, 0, UINT64_MAX, NULL},
        {"direct", 0, ZP_OPT_CHOICE, "ZPIPE_DIRECT", "WHEN",
         "read the records from the sink's spool file itself, copied in the "
         "kernel, instead of over the socket: auto (default: when the sink "
         "is on this host, an ipc:// endpoint, and the file can be read), "
         "yes (fail when it cannot) or no",
         &o.direct, 0, 0, "auto|yes|no"},
        {"output", 'o', ZP_OPT_STR, NULL, "FILE",
         "write the records to FILE (with --cursor: appended) instead of "
         "stdout",
         &o.output, 0, 0, NULL},
        {"take", 0, ZP_OPT_FLAG, NULL, NULL,
         "take the records: once every one is written (and synced to disk), "
         "the sink deletes its copy and refuses them from then on; with "
         "--output, from the start, when the job is done and its spool file "
         "is on FILE's file system and may be moved, that file becomes "
         "FILE (a rename, no copy)",
         &o.take, 0, 0, NULL},
        S_OPT_TIMEOUT(o),
        ZP_CURVE_SECRET_OPTION(o.secret),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY", "the sink",
                            o.sink_key),
        {0},
    };
    int rc = s_client_args(opts, argc, argv, "zpipe results",
                           s_results_synopsis, &o);
    if (rc >= 0)
        return rc;
    const char *no = o.take ? zp_fetch_take_refused(o.output, stdout) : NULL;
    if (no) {
        fprintf(stderr, "zpipe results: %s%s%s\n", no, o.output ? ": " : "",
                o.output ? o.output : "");
        return 2;
    }
    zp_signals_install(0);
    zp_fetch_opts_t f = {.sink = o.sink,
                         .secret = o.secret,
                         .sink_key = o.sink_key,
                         .job = o.job,
                         .prog = "zpipe results",
                         .cursor = o.cursor,
                         .timeout_ms = o.timeout_ms,
                         .out = stdout,
                         .path = o.output,
                         .take = o.take,
                         .direct = o.direct};
    return zp_fetch_records(&f);
}
