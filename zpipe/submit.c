/* zpipe submit: a job's tasks to a running ventilator's intake. */
#define _GNU_SOURCE
#include "client.h"
#include "zp_curve.h"
#include "zp_journal.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char s_submit_synopsis[] =
    "Usage: zpipe submit --ventilator ENDPOINT --plugin NAME [OPTIONS]\n"
    "Submits a job to a running ventilator's intake: each input line is a\n"
    "task. Prints the job id once the job is open, and exits when the\n"
    "ventilator has taken every task and the close. Then 'zpipe wait JOB'\n"
    "and 'zpipe results JOB' at the sink. Exit status: 0 submitted, 2 bad\n"
    "usage, 3 refused or no answer within --timeout-ms, 130/143\n"
    "interrupted.";

typedef struct {
    const char *ventilator, *plugin, *input, *job;
    const char *secret, *ventilator_key; /* CURVE */
    uint64_t priority, deadline_ms, max_attempts, batch, timeout_ms;
    zp_strlist_t config; /* the job's plugin settings, KEY=VALUE */
} s_submit_opts_t;

/* Waits for the intake's Ack about job (any job while job is NULL), up to
 * --timeout-ms from t0. */
static zp_message_t *s_submit_ack(zp_client_t *c, const s_submit_opts_t *o,
                                  const char *job, uint64_t t0)
{
    zp_message_t *m = NULL;
    while (!m && !zp_stopping() &&
           !(o->timeout_ms && zp_mono_us() - t0 > o->timeout_ms * 1000))
        m = zp_client_recv(c, ZPIPE__V1__MESSAGE__KIND_ACK, job, 200);
    return m;
}

/* Parses and checks the options. Returns -1 to go on, else the exit
 * code. */
static int s_submit_args(s_submit_opts_t *o, int argc, char **argv)
{
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "the ventilator's intake (default tcp://127.0.0.1:5561)",
         &o->ventilator, 0, 0, NULL},
        {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
         "plugin every task needs (required)", &o->plugin, 0, 0, NULL},
        {"input", 'i', ZP_OPT_STR, "ZPIPE_INPUT", "FILE",
         "one task per line; - for stdin (default -)", &o->input, 0, 0, NULL},
        {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID",
         "job id (default: the ventilator makes one)", &o->job, 0, 0, NULL},
        {"priority", 0, ZP_OPT_UINT, "ZPIPE_PRIORITY", "N",
         "higher runs first; equal priorities share workers (default 0)",
         &o->priority, 0, 1000000, NULL},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "per-task deadline (default: the ventilator's)", &o->deadline_ms, 0,
         86400000, NULL},
        {"max-attempts", 0, ZP_OPT_UINT, "ZPIPE_MAX_ATTEMPTS", "N",
         "attempts before a retryable failure is final (default: the "
         "ventilator's)",
         &o->max_attempts, 0, 100, NULL},
        {"batch", 0, ZP_OPT_UINT, "ZPIPE_BATCH", "N",
         "tasks per message (default 1024)", &o->batch, 1, 65536, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",
         "give up when the ventilator does not answer this long, 0 = never "
         "(default 0; a busy ventilator holds producers back)",
         &o->timeout_ms, 0, 86400000ull * 365, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a setting for the job's plugin (e.g. cmd=sha256sum for exec); "
         "repeatable",
         &o->config, 0, 0, NULL},
        ZP_CURVE_SECRET_OPTION(o->secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", o->ventilator_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe submit", s_submit_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    const char *bad = !o->plugin ? "--plugin is required"
                      : o->job && !zp_job_id_valid(o->job)
                          ? "--job must be 1 to 128 of [A-Za-z0-9_.:-]"
                          : NULL;
    for (size_t i = 0; !bad && i < o->config.count; i++)
        if (!strchr(o->config.items[i], '=') || o->config.items[i][0] == '=')
            bad = "--config takes KEY=VALUE";
    if (bad)
        return zp_opts_fail(opts, "zpipe submit", s_submit_synopsis, bad);
    return -1;
}

/* The job's settings as JobOpen carries them (pointing into config). */
typedef struct {
    Zpipe__V1__Setting *settings;
    Zpipe__V1__Setting **setp; /* NULL when out of memory: none are sent */
    char **keys;
    size_t count;
} s_settings_t;

static void s_settings_init(s_settings_t *s, const zp_strlist_t *config)
{
    s->count = config->count;
    s->settings = calloc(s->count + 1, sizeof *s->settings);
    s->setp = calloc(s->count + 1, sizeof *s->setp);
    s->keys = calloc(s->count + 1, sizeof *s->keys);
    for (size_t i = 0; s->settings && s->setp && s->keys && i < s->count; i++) {
        const char *eq = strchr(config->items[i], '=');
        zpipe__v1__setting__init(&s->settings[i]);
        s->keys[i] = strndup(config->items[i], (size_t)(eq - config->items[i]));
        s->settings[i].key = s->keys[i];
        s->settings[i].value = (char *)eq + 1;
        s->setp[i] = &s->settings[i];
    }
}

static void s_settings_free(s_settings_t *s)
{
    for (size_t i = 0; s->keys && i < s->count; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->settings);
    free(s->setp);
}

/* Opens the job: resent until answered (the ventilator answers once the
 * sink has the job; opening again is harmless). Returns the Ack, or NULL
 * when none came. */
static zp_message_t *s_open_job(zp_client_t *c, const s_submit_opts_t *o,
                                const s_settings_t *set)
{
    uint64_t t0 = zp_mono_us();
    zp_message_t *a = NULL;
    while (!a && !zp_stopping() &&
           !(o->timeout_ms && zp_mono_us() - t0 > o->timeout_ms * 1000)) {
        Zpipe__V1__JobOpen jo = ZPIPE__V1__JOB_OPEN__INIT;
        jo.job_id = (char *)(o->job ? o->job : "");
        jo.plugin = (char *)o->plugin;
        jo.priority = (uint32_t)o->priority;
        jo.deadline_ms = o->deadline_ms;
        jo.max_attempts = (uint32_t)o->max_attempts;
        jo.config = set->setp;
        jo.n_config = set->setp ? set->count : 0;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
        m.job_open = &jo;
        zp_client_send(c, &m, ZMQ_DONTWAIT);
        s_submit_opts_t once = *o;
        once.timeout_ms = 2000;
        a = s_submit_ack(c, &once, o->job, zp_mono_us());
    }
    return a;
}

/* The batch being sent: each task's payload is a line read with getline. */
typedef struct {
    Zpipe__V1__Task *tasks;
    Zpipe__V1__Task **ptrs;
    char **lines;
} s_batch_t;

/* Reads up to o->batch lines into b; returns how many, and sets *eof at
 * the end of the input. */
static size_t s_read_batch(s_batch_t *b, const s_submit_opts_t *o, FILE *in,
                           bool *eof)
{
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (n < o->batch) {
        ssize_t len = getline(&line, &cap, in);
        if (len < 0) {
            *eof = true;
            break;
        }
        if (len && line[len - 1] == '\n')
            len--;
        b->lines[n] = line;
        line = NULL;
        cap = 0;
        zpipe__v1__task__init(&b->tasks[n]);
        b->tasks[n].payload.data = (uint8_t *)b->lines[n];
        b->tasks[n].payload.len = (size_t)len;
        b->ptrs[n] = &b->tasks[n];
        n++;
    }
    free(line);
    return n;
}

/* Sends the input as batches, one at a time: the Ack is the ventilator's
 * leave to send more. Returns 0 at the end of the input or when stopped,
 * -1 on failure (said on stderr). */
static int s_send_tasks(zp_client_t *c, const s_submit_opts_t *o, s_batch_t *b,
                        const char *job, FILE *in, uint64_t *sent)
{
    bool eof = false;
    while (!eof && !zp_stopping()) {
        size_t n = s_read_batch(b, o, in, &eof);
        if (!n)
            continue;
        Zpipe__V1__TaskBatch tb = ZPIPE__V1__TASK_BATCH__INIT;
        tb.job_id = (char *)job;
        tb.tasks = b->ptrs;
        tb.n_tasks = n;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
        m.task_batch = &tb;
        int sr = zp_client_send(c, &m, 0);
        for (size_t i = 0; i < n; i++)
            free(b->lines[i]);
        if (sr < 0)
            break;
        zp_message_t *a = s_submit_ack(c, o, job, zp_mono_us());
        if (!a || !a->ack->ok || a->ack->accepted != n) {
            fprintf(stderr, "zpipe submit: job %s: %s after %llu tasks\n", job,
                    a ? (a->ack->error && *a->ack->error ? a->ack->error
                                                         : "short answer")
                      : "no answer from the ventilator",
                    (unsigned long long)*sent);
            return -1;
        }
        *sent += n;
    }
    return 0;
}

/* Closes the job with its total; returns 0 once the ventilator took it. */
static int s_close_job(zp_client_t *c, const s_submit_opts_t *o,
                       const char *job, uint64_t sent)
{
    Zpipe__V1__JobClose jc = ZPIPE__V1__JOB_CLOSE__INIT;
    jc.job_id = (char *)job;
    jc.total = sent;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &jc;
    zp_client_send(c, &m, 0);
    zp_message_t *a = s_submit_ack(c, o, job, zp_mono_us());
    if (!a || !a->ack->ok) {
        fprintf(stderr, "zpipe submit: closing job %s: %s\n", job,
                a ? a->ack->error : "no answer from the ventilator");
        return -1;
    }
    fprintf(stderr, "zpipe submit: job %s: %llu tasks submitted\n", job,
            (unsigned long long)sent);
    return 0;
}

/* Opens the job, sends the input, closes it. Returns the exit code. */
static int s_submit(zp_client_t *c, const s_submit_opts_t *o,
                    const s_settings_t *set, s_batch_t *b, FILE *in)
{
    zp_message_t *a = s_open_job(c, o, set);
    if (!a || !a->ack->ok) {
        fprintf(stderr, "zpipe submit: %s\n",
                a ? a->ack->error : "no answer from the ventilator");
        return 3;
    }
    char *job = strdup(a->ack->job_id);
    if (!job)
        return 3;
    printf("%s\n", job);
    fflush(stdout);
    uint64_t sent = 0;
    int rc = 3;
    if (s_send_tasks(c, o, b, job, in, &sent) < 0)
        ;
    else if (zp_stopping())
        rc = 128 + zp_stop_signal();
    else if (ferror(in))
        fprintf(stderr, "zpipe submit: reading %s: %s\n", o->input,
                strerror(errno));
    else if (s_close_job(c, o, job, sent) == 0)
        rc = 0;
    free(job);
    return rc;
}

int zp_cmd_submit(int argc, char **argv)
{
    s_submit_opts_t o = {
        .ventilator = "tcp://127.0.0.1:5561", .input = "-", .batch = 1024};
    int rc = s_submit_args(&o, argc, argv);
    if (rc >= 0) {
        zp_strlist_free(&o.config);
        return rc;
    }
    FILE *in = strcmp(o.input, "-") == 0 ? stdin : fopen(o.input, "r");
    if (!in) {
        fprintf(stderr, "zpipe submit: cannot read %s: %s\n", o.input,
                strerror(errno));
        zp_strlist_free(&o.config);
        return 3;
    }
    s_settings_t set;
    s_settings_init(&set, &o.config);
    zp_signals_install(0);
    s_batch_t b = {calloc(o.batch, sizeof *b.tasks),
                   calloc(o.batch, sizeof *b.ptrs),
                   calloc(o.batch, sizeof *b.lines)};
    zp_client_t *c = NULL;
    if (b.tasks && b.ptrs && b.lines)
        c = zp_client_new(o.ventilator, ZP_CLIENT_MAX_MSG, o.secret,
                          "ventilator-key", o.ventilator_key);
    rc = c ? s_submit(c, &o, &set, &b, in) : 3;
    free(b.tasks);
    free(b.ptrs);
    free(b.lines);
    if (in != stdin)
        fclose(in);
    s_settings_free(&set);
    zp_strlist_free(&o.config);
    zp_client_destroy(&c);
    return rc;
}
