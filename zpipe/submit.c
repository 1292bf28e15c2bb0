/* zpipe submit: a job's tasks to a running ventilator's intake. */
#define _GNU_SOURCE
#include "zp_cluster.h"
#include "client.h"
#include "fetch.h"
#include "line_reader.h"
#include "submit_window.h"
#include "zp_curve.h"
#include "zp_log.h"
#include "zp_journal.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char s_submit_synopsis[] =
    "Usage: zpipe submit --ventilator ENDPOINT --plugin NAME [OPTIONS]\n"
    "Submits a job to a running ventilator's intake: each input line is a\n"
    "task. Prints the job id once the job is open, and exits when the\n"
    "ventilator has taken every task and the close. A reconnect or a\n"
    "ventilator restart is survived: what it had not acknowledged is sent\n"
    "again, and it answers a repeat as the first time. Then 'zpipe wait\n"
    "JOB' and 'zpipe results JOB' at the sink. Input that stalls (tail -f\n"
    "log | zpipe submit) goes out in a partial batch 50 ms after the\n"
    "batch's first line. A run killed before it exits (a crashed shell or\n"
    "machine) is resumed by running it again with the same --job, --token,\n"
    "--batch, --batch-bytes and input: the tasks the ventilator took are\n"
    "not taken twice; if that job has finished meanwhile, the rerun says\n"
    "so and sends nothing. With --results FILE it also writes\n"
    "the job's records to FILE as the sink commits them, and exits once\n"
    "every record is there (one command instead of submit, wait and\n"
    "results); with --take the sink then drops its copy (zpipe results\n"
    "--take). Exit status: 0 submitted (or\n"
    "already complete; with --results, every record written), 2 bad usage,\n"
    "3 refused or no answer for --timeout-ms (or, with --results, the\n"
    "records could not be fetched or written), 130/143 interrupted.";

typedef struct {
    const char *ventilator, *plugin, *input, *job, *token, *cluster;
    const char *secret, *ventilator_key;   /* CURVE */
    const char *results, *sink, *sink_key; /* --results: from the sink */
    bool take; /* --take: the sink drops its copy (zpipe results --take) */
    uint64_t priority, deadline_ms, max_attempts, batch, batch_bytes,
        timeout_ms;
    zp_strlist_t config; /* the job's plugin settings, KEY=VALUE */
} s_submit_opts_t;

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
         "job id, never used by another job (default: a random job-HEX)",
         &o->job, 0, 0, NULL},
        {"token", 0, ZP_OPT_STR, "ZPIPE_JOB_TOKEN", "TOKEN",
         "the job's identity beside its id: the same --job and --token "
         "resume the job, another token is refused (default: a random one, "
         "so a rerun is another job and refused)",
         &o->token, 0, 0, NULL},
        {"cluster", 0, ZP_OPT_STR, "ZPIPE_CLUSTER", "NAME",
         "the cluster the job is for: a ventilator of another named cluster "
         "refuses it (default: none, any)",
         &o->cluster, 0, 0, NULL},
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
         "most tasks per message (default 8192)", &o->batch, 1, 65536, NULL},
        {"batch-bytes", 0, ZP_OPT_UINT, "ZPIPE_BATCH_BYTES", "BYTES",
         "most payload bytes per message; a longer line goes alone "
         "(default 1 MiB)",
         &o->batch_bytes, 1, 1u << 30, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",
         "give up when the ventilator does not answer this long, 0 = never "
         "(default 0; a busy ventilator holds producers back)",
         &o->timeout_ms, 0, 86400000ull * 365, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a setting for the job's plugin (e.g. cmd=sha256sum for exec); "
         "repeatable",
         &o->config, 0, 0, NULL},
        {"results", 'o', ZP_OPT_STR, NULL, "FILE",
         "also write the job's records (JSON Lines) to FILE, - for stdout "
         "(the job id then goes to stderr), as the sink commits them, and "
         "exit once every record is written",
         &o->results, 0, 0, NULL},
        {"take", 0, ZP_OPT_FLAG, NULL, NULL,
         "with --results: take the records (as zpipe results --take): once "
         "every one is written and synced, the sink deletes its copy; with "
         "FILE on the sink's file system the done job's spool file itself "
         "becomes FILE (moved when the job is done, not copied as it goes)",
         &o->take, 0, 0, NULL},
        {"sink", 's', ZP_OPT_STR, "ZPIPE_SINK", "ENDPOINT",
         "with --results: the sink's control endpoint (default "
         "tcp://127.0.0.1:5559)",
         &o->sink, 0, 0, NULL},
        ZP_CURVE_SECRET_OPTION(o->secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", o->ventilator_key),
        ZP_CURVE_KEY_OPTION("sink-key", "ZPIPE_SINK_KEY",
                            "the sink (with --results)", o->sink_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe submit", s_submit_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    const char *bad = !o->plugin ? "--plugin is required"
                      : o->job && !zp_job_id_valid(o->job)
                          ? "--job must be 1 to 128 of [A-Za-z0-9_.:-]"
                      : o->token && !zp_job_id_valid(o->token)
                          ? "--token must be 1 to 128 of [A-Za-z0-9_.:-]"
                      : !zp_cluster_valid(o->cluster)
                          ? "--cluster must be 1 to 64 of [A-Za-z0-9_.:-]"
                      : o->take && !o->results ? "--take needs --results FILE"
                                               : NULL;
    for (size_t i = 0; !bad && i < o->config.count; i++)
        if (!strchr(o->config.items[i], '=') || o->config.items[i][0] == '=')
            bad = "--config takes KEY=VALUE";
    if (bad)
        return zp_opts_fail(opts, "zpipe submit", s_submit_synopsis, bad);
    bool to_stdout = o->results && strcmp(o->results, "-") == 0;
    bad = o->take ? zp_fetch_take_refused(to_stdout ? NULL : o->results, stdout)
                  : NULL;
    if (bad) {
        fprintf(stderr, "zpipe submit: %s%s%s\n", bad, to_stdout ? "" : ": ",
                to_stdout ? "" : o->results);
        return 2;
    }
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

/* Batches sent ahead of their answers: the ventilator queues up to 4
 * messages per producer connection, so a fifth would only wait in the
 * socket. */
#define S_WINDOW 4

/* A batch whose input stalls goes out this long after its first line. */
#define S_LINGER_MS 50

/* One submission: the job's identity, the input, the window of messages
 * not yet answered. */
typedef struct {
    const s_submit_opts_t *o;
    const s_settings_t *set;
    zp_client_t *c;
    zp_submit_window_t *w;
    FILE *in;             /* read through lr only */
    zp_line_reader_t *lr; /* the input's lines */
    char *job, *token;
    /* the batch being read: its lines back to back, and the tasks */
    zp_buf_t text;
    /* a line read that did not fit the batch before: the next one's
     * first (has_held) */
    zp_buf_t held;
    bool has_held;
    uint64_t lines;          /* lines read so far */
    uint64_t max_task_bytes; /* the ventilator's, once said; 0: unknown */
    size_t payload;          /* payload bytes in the batch being read */
    /* The ventilator's last answer said it takes TaskBatch.lines; the
     * batch being read is in text as lines, each with its '\n'
     * (batch_lines) rather than back to back. */
    bool lines_ok, batch_lines;
    size_t long_len; /* E2BIG: the length of the line refused */
    size_t *ends;    /* where each line ends in text */
    int read_errno;  /* reading failed with it (ENOMEM: a line or a batch
                        too big for memory) */
    Zpipe__V1__Task *tasks;
    Zpipe__V1__Task **ptrs;
    bool eof;
    bool stalled;  /* the last read stopped for want of input */
    bool finished; /* the ventilator said the job had already finished */
    int rc;        /* the exit code once known; -1 while going */
    /* --results: the records fetched by a thread of their own from the
     * moment the job is open (or found complete) */
    FILE *out;
    zp_fetch_opts_t fetch;
    pthread_t fetcher;
    bool fetching;
    atomic_bool cancel;
    int fetch_rc;
} s_submit_t;

static void *s_fetch_main(void *arg)
{
    s_submit_t *s = arg;
    s->fetch_rc = zp_fetch_records(&s->fetch);
    return NULL;
}

/* The job is open: with --results, its records start coming. */
static void s_start_fetching(s_submit_t *s)
{
    if (!s->o->results || s->fetching)
        return;
    s->fetch = (zp_fetch_opts_t){.sink = s->o->sink,
                                 .secret = s->o->secret,
                                 .sink_key = s->o->sink_key,
                                 .job = s->job,
                                 .prog = "zpipe submit",
                                 .out = s->out,
                                 .path = s->out ? NULL : s->o->results,
                                 .take = s->o->take,
                                 .cancel = &s->cancel};
    int err = pthread_create(&s->fetcher, NULL, s_fetch_main, s);
    if (err) {
        fprintf(stderr, "zpipe submit: cannot fetch the records: %s\n",
                strerror(err));
        s->rc = 3;
        return;
    }
    s->fetching = true;
}

/* Prints the job id: on stdout, unless the records go there. */
static void s_say_job(s_submit_t *s)
{
    FILE *f = s->out == stdout ? stderr : stdout;
    fprintf(f, "%s\n", s->job);
    fflush(f);
}

/* m encoded into a frame of its own (caller owns *frame). 0 or -1. */
static int s_frame(const zp_message_t *m, char **frame, size_t *len)
{
    zp_buf_t b = {0};
    if (zp_encode(m, &b) < 0) {
        zp_buf_free(&b);
        return -1;
    }
    *frame = b.data;
    *len = b.len;
    return 0;
}

static int s_push(s_submit_t *s, zp_submit_kind_t kind, uint64_t tasks,
                  const zp_message_t *m)
{
    char *frame = NULL;
    size_t len = 0;
    if (s_frame(m, &frame, &len) < 0)
        return -1;
    return zp_submit_window_push(s->w, kind, tasks, &frame, len, zp_mono_us());
}

/* The JobOpen, with the job id and token this run made or was given:
 * sent again after a reconnect, it names the same job. */
static int s_push_open(s_submit_t *s)
{
    const s_submit_opts_t *o = s->o;
    Zpipe__V1__JobOpen jo = ZPIPE__V1__JOB_OPEN__INIT;
    jo.job_id = s->job;
    jo.token = s->token;
    jo.cluster = (char *)(o->cluster ? o->cluster : "");
    jo.plugin = (char *)o->plugin;
    jo.priority = (uint32_t)o->priority;
    jo.deadline_ms = o->deadline_ms;
    jo.max_attempts = (uint32_t)o->max_attempts;
    jo.config = s->set->setp;
    jo.n_config = s->set->setp ? s->set->count : 0;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
    m.job_open = &jo;
    return s_push(s, ZP_SUBMIT_OPEN, 0, &m);
}

/* Adds to the batch in s->text (*n lines) the whole lines the reader
 * holds that join it, at once (zp_submit_batch_cut: the cuts the line by
 * line path makes); *due as that path sets it. Returns whether the batch
 * is full. Takes none (the line by line path does) when one of them
 * could be longer than the ventilator's --max-task-bytes: that path
 * names such a line. */
static bool s_take_buffered(s_submit_t *s, size_t *n, uint64_t *due)
{
    const char *data;
    size_t len, k = *n, bytes = s->payload;
    zp_line_reader_buffered(s->lr, &data, &len);
    if (!len)
        return false;
    size_t took = zp_submit_batch_cut(data, len, &k, &bytes, s->o->batch,
                                      s->o->batch_bytes);
    /* A batch's lines after its first are at most --batch-bytes. */
    size_t longest = !*n && k == 1 ? took - 1 : s->o->batch_bytes;
    if (s->max_task_bytes && longest > s->max_task_bytes)
        return false;
    if (zp_buf_append(&s->text, data, took) < 0)
        return false; /* the line by line path says so */
    zp_line_reader_skip(s->lr, took);
    if (!*n)
        *due = zp_mono_us() + S_LINGER_MS * 1000;
    s->lines += k - *n;
    s->payload = bytes;
    *n = k;
    return took < len;
}

/* Reads up to --batch lines and --batch-bytes into s->text; returns how
 * many. A batch is cut when full (a line that would take it over either
 * limit is held for the next one), at the end of the input (s->eof), or
 * once the input has stalled S_LINGER_MS after the batch's first line
 * (s->stalled; also with no line at all): lines from a slow pipe (tail -f
 * log | zpipe submit) go out at once instead of waiting for a full batch.
 * A file never stalls, so its batches stay full and the same from run to
 * run. */
static size_t s_read_lines(s_submit_t *s)
{
    size_t n = 0;
    uint64_t due = 0;
    s->text.len = 0;
    s->payload = 0;
    s->batch_lines = s->lines_ok;
    if (s->has_held) {
        s->has_held = false;
        due = zp_mono_us() + S_LINGER_MS * 1000;
        zp_buf_t t = s->text; /* the held line becomes the text */
        s->text = s->held;
        s->held = t;
        s->payload = s->text.len;
        if (s->batch_lines && zp_buf_append(&s->text, "\n", 1) < 0) {
            s->eof = true;
            s->read_errno = ENOMEM;
            return 0;
        }
        s->ends[n++] = s->text.len;
    }
    while (n < s->o->batch) {
        if (s->batch_lines && s_take_buffered(s, &n, &due))
            break; /* full */
        const char *line;
        size_t len;
        int r = zp_line_reader_next(s->lr, 0, &line, &len);
        if (r == 0 && n) {
            uint64_t now = zp_mono_us();
            if (now < due)
                r = zp_line_reader_next(s->lr, (int)((due - now + 999) / 1000),
                                        &line, &len);
        }
        if (r == 0) {
            s->stalled = true;
            break;
        }
        if (r < 0) {
            s->eof = true;
            if (r == -2)
                s->read_errno = errno;
            break;
        }
        s->lines++;
        if (s->max_task_bytes && len > s->max_task_bytes) {
            s->eof = true;
            s->read_errno = E2BIG;
            s->long_len = len;
            break;
        }
        if (!n)
            due = zp_mono_us() + S_LINGER_MS * 1000;
        bool fits = zp_submit_batch_takes(n, s->payload, len, s->o->batch,
                                          s->o->batch_bytes);
        zp_buf_t *into = fits ? &s->text : &s->held;
        if (!fits)
            s->held.len = 0;
        if (zp_buf_append(into, line, len) < 0 ||
            (fits && s->batch_lines && zp_buf_append(into, "\n", 1) < 0)) {
            s->eof = true;
            s->read_errno = ENOMEM;
            break;
        }
        if (!fits) {
            s->has_held = true;
            break;
        }
        s->payload += len;
        s->ends[n++] = s->text.len;
    }
    return n;
}

/* Reads the next batch and puts it in the window, numbered. */
static int s_push_batch(s_submit_t *s)
{
    size_t n = s_read_lines(s);
    if (!n)
        return 0;
    Zpipe__V1__TaskBatch tb = ZPIPE__V1__TASK_BATCH__INIT;
    if (s->batch_lines) { /* the lines as read, no Task around each */
        tb.lines.data = (uint8_t *)s->text.data;
        tb.lines.len = s->text.len;
    }
    for (size_t i = 0, at = 0; !s->batch_lines && i < n; at = s->ends[i++]) {
        s->tasks[i] = (Zpipe__V1__Task)ZPIPE__V1__TASK__INIT; /* inlined */
        s->tasks[i].payload.data = (uint8_t *)s->text.data + at;
        s->tasks[i].payload.len = s->ends[i] - at;
        s->ptrs[i] = &s->tasks[i];
    }
    tb.job_id = s->job;
    tb.tasks = s->ptrs;
    tb.n_tasks = s->batch_lines ? 0 : n;
    tb.seq = zp_submit_window_next_seq(s->w);
    tb.token = s->token; /* the job's: taken on any connection */
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &tb;
    return s_push(s, ZP_SUBMIT_BATCH, n, &m);
}

static int s_push_close(s_submit_t *s)
{
    Zpipe__V1__JobClose jc = ZPIPE__V1__JOB_CLOSE__INIT;
    jc.job_id = s->job;
    jc.total = zp_submit_window_total(s->w);
    jc.token = s->token;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &jc;
    return s_push(s, ZP_SUBMIT_CLOSE, 0, &m);
}

/* Puts in the window whatever may go now: the open, batches up to the
 * window, the close at the end of the input. */
static void s_fill(s_submit_t *s)
{
    int rc = 0;
    if (zp_submit_window_wants(s->w, ZP_SUBMIT_OPEN))
        rc = s_push_open(s);
    s->stalled = false;
    while (rc == 0 && !s->eof && !s->stalled && !zp_stopping() &&
           zp_submit_window_wants(s->w, ZP_SUBMIT_BATCH))
        rc = s_push_batch(s);
    if (zp_stopping()) /* a read cut short by the signal is no error */
        return;
    if (rc == 0 && s->eof && s->read_errno == E2BIG) {
        fprintf(stderr,
                "zpipe submit: job %s: line %llu of %s is %zu bytes; the "
                "ventilator takes tasks of at most %llu bytes (its "
                "--max-task-bytes). Stopped there: the job stays open, "
                "without a close\n",
                s->job, (unsigned long long)s->lines,
                strcmp(s->o->input, "-") == 0 ? "stdin" : s->o->input,
                s->long_len, (unsigned long long)s->max_task_bytes);
        s->rc = 3;
        return;
    }
    if (rc == 0 && s->eof && s->read_errno) {
        fprintf(stderr, "zpipe submit: reading %s: %s\n", s->o->input,
                s->read_errno == ENOMEM ? "out of memory"
                                        : strerror(s->read_errno));
        s->rc = 3;
        return;
    }
    if (rc == 0 && s->eof && zp_submit_window_wants(s->w, ZP_SUBMIT_CLOSE))
        rc = s_push_close(s);
    if (rc < 0) {
        fprintf(stderr, "zpipe submit: job %s: out of memory\n", s->job);
        s->rc = 3;
    }
}

/* Sends what the window gives until the socket would block. */
static void s_flush(s_submit_t *s)
{
    const char *data;
    size_t len;
    while (zp_submit_window_next(s->w, &data, &len) &&
           zp_client_send_frame(s->c, data, len, ZMQ_DONTWAIT) == 0)
        zp_submit_window_sent(s->w);
}

/* Says why the ventilator's answer ends the submission. */
static void s_refused(s_submit_t *s, const zp_submit_outcome_t *r,
                      const Zpipe__V1__Ack *a)
{
    const char *said = a->error && *a->error ? a->error : "refused";
    char why[512];
    if (r->why && a->error && *a->error)
        snprintf(why, sizeof why, "%s (it says: %s)", r->why, a->error);
    else
        snprintf(why, sizeof why, "%s", r->why ? r->why : said);
    zp_submit_stats_t st;
    zp_submit_window_stats(s->w, &st);
    if (r->kind == ZP_SUBMIT_OPEN)
        fprintf(stderr, "zpipe submit: %s\n", why);
    else if (r->kind == ZP_SUBMIT_CLOSE)
        fprintf(stderr, "zpipe submit: closing job %s: %s\n", s->job, why);
    else
        fprintf(stderr, "zpipe submit: job %s: %s after %llu tasks\n", s->job,
                why, (unsigned long long)st.tasks_acked);
    s->rc = 3;
}

static void s_on_ack(s_submit_t *s, const Zpipe__V1__Ack *a)
{
    zp_submit_ack_t ack = {a->ok,
                           a->seq,
                           a->first_task_id,
                           a->accepted,
                           a->ventilator_instance,
                           a->finished};
    zp_submit_outcome_t r = zp_submit_window_ack(s->w, &ack, zp_mono_us());
    if (a->ok && a->max_task_bytes)
        s->max_task_bytes = a->max_task_bytes;
    if (a->ok)
        s->lines_ok = a->takes_lines;
    if (r.restarted)
        zp_info("job %s: the ventilator restarted (%s); sending what it had "
                "not acknowledged again",
                s->job, a->ventilator_instance);
    if (r.verdict == ZP_SUBMIT_REFUSED)
        s_refused(s, &r, a);
    else if (r.verdict == ZP_SUBMIT_RESEND)
        zp_info("job %s: the ventilator refused a batch (%s); sending again "
                "from batch %llu",
                s->job, a->error ? a->error : "", (unsigned long long)a->seq);
    else if (r.verdict == ZP_SUBMIT_PROGRESS && r.kind == ZP_SUBMIT_OPEN) {
        s_say_job(s);
        s_start_fetching(s);
    } else if (r.verdict == ZP_SUBMIT_FINISHED) {
        /* A rerun after the close: the job is complete, not refused. */
        s_say_job(s);
        s_start_fetching(s);
        fprintf(stderr,
                "zpipe submit: job %s was already complete (%llu tasks); "
                "nothing sent. 'zpipe wait %s' tells its outcome\n",
                s->job, (unsigned long long)a->accepted, s->job);
        s->finished = true;
        s->rc = 0;
    } else if (r.verdict == ZP_SUBMIT_PROGRESS && r.kind == ZP_SUBMIT_CLOSE)
        s->rc = 0;
}

/* Takes the connection events and the answers waiting. */
static void s_take(s_submit_t *s)
{
    for (int ev; (ev = zp_client_event(s->c));)
        if (ev == ZMQ_EVENT_DISCONNECTED) {
            zp_info("job %s: lost the connection to the ventilator", s->job);
            zp_submit_window_disconnected(s->w);
        } else if (ev == ZMQ_EVENT_CONNECTED)
            zp_submit_window_connected(s->w, zp_mono_us());
    zp_message_t *m;
    while (s->rc < 0 && zp_client_next(s->c, &m) == 0)
        if (m && m->kind_case == ZPIPE__V1__MESSAGE__KIND_ACK &&
            m->ack->job_id && strcmp(m->ack->job_id, s->job) == 0)
            s_on_ack(s, m->ack);
}

/* The backstop, the give-up time and the signals. */
static void s_check(s_submit_t *s)
{
    uint64_t now = zp_mono_us();
    if (zp_submit_window_nudge(s->w, now))
        zp_debug("job %s: no answer for %llu s; sending the oldest message "
                 "again",
                 s->job, ZP_SUBMIT_NUDGE_US / 1000000);
    uint64_t silent = zp_submit_window_silent_us(s->w, now);
    if (s->o->timeout_ms && silent > s->o->timeout_ms * 1000) {
        zp_submit_stats_t st;
        zp_submit_window_stats(s->w, &st);
        fprintf(stderr,
                "zpipe submit: job %s: no answer from the ventilator for %llu "
                "ms after %llu tasks\n",
                s->job, (unsigned long long)(silent / 1000),
                (unsigned long long)st.tasks_acked);
        s->rc = 3;
    } else if (zp_stopping())
        s->rc = 128 + zp_stop_signal();
}

/* The job submitted: says so, with what it took. */
static void s_report(s_submit_t *s)
{
    zp_submit_stats_t st;
    zp_submit_window_stats(s->w, &st);
    if (!st.resent)
        fprintf(stderr, "zpipe submit: job %s: %llu tasks submitted\n", s->job,
                (unsigned long long)st.tasks_acked);
    else
        fprintf(stderr,
                "zpipe submit: job %s: %llu tasks submitted (%llu messages "
                "sent again after %llu reconnects or restarts)\n",
                s->job, (unsigned long long)st.tasks_acked,
                (unsigned long long)st.resent,
                (unsigned long long)st.reconnects);
}

/* Opens the job, sends the input, closes it, a window of batches at a
 * time, until the close is acknowledged. Returns the exit code. */
static int s_run(s_submit_t *s)
{
    if (zp_client_watch(s->c) < 0)
        zp_warn("job %s: reconnects go unnoticed until the ventilator's "
                "answers say it restarted",
                s->job);
    while (s->rc < 0) {
        s_fill(s);
        if (s->rc >= 0)
            break;
        s_flush(s);
        /* Input that stalled wakes the loop as soon as it comes. */
        bool want_input = s->stalled && !s->eof &&
                          zp_submit_window_wants(s->w, ZP_SUBMIT_BATCH);
        zp_client_wait_fd(s->c, 200, want_input ? fileno(s->in) : -1);
        s_take(s);
        if (s->rc < 0)
            s_check(s);
    }
    if (s->rc == 0 && !s->finished)
        s_report(s);
    return s->rc;
}

/* The job's id and token, each given or a random one made here (so that
 * an open sent again by this run names the same job; only a given token
 * lets another run name it). */
static int s_identity(s_submit_t *s)
{
    s->job = s->o->job ? strdup(s->o->job) : zp_random_id("job-", 8);
    s->token = s->o->token ? strdup(s->o->token) : zp_random_id("", 16);
    return s->job && s->token ? 0 : -1;
}

static int s_submit(const s_submit_opts_t *o, const s_settings_t *set, FILE *in)
{
    s_submit_t s = {.o = o, .set = set, .in = in, .rc = -1};
    s.ends = calloc(o->batch, sizeof *s.ends);
    s.tasks = calloc(o->batch, sizeof *s.tasks);
    s.ptrs = calloc(o->batch, sizeof *s.ptrs);
    s.w = zp_submit_window_new(S_WINDOW);
    s.lr = zp_line_reader_new(fileno(in));
    int rc = 3;
    if (!s.ends || !s.tasks || !s.ptrs || !s.w || !s.lr || s_identity(&s) < 0)
        fprintf(stderr, "zpipe submit: out of memory\n");
    else if (o->results && (!o->take || strcmp(o->results, "-") == 0) &&
             !(s.out = strcmp(o->results, "-") == 0 ? stdout
                                                    : fopen(o->results, "w")))
        fprintf(stderr, "zpipe submit: cannot write %s: %s\n", o->results,
                strerror(errno));
    else if ((s.c = zp_client_new(o->ventilator, ZP_CLIENT_MAX_MSG, o->secret,
                                  "ventilator-key", o->ventilator_key)))
        rc = s_run(&s);
    zp_client_destroy(&s.c);
    if (s.fetching) {
        /* Submitted: the rest of the records; else they are not wanted. */
        if (rc != 0)
            atomic_store(&s.cancel, true);
        pthread_join(s.fetcher, NULL);
        if (rc == 0)
            rc = s.fetch_rc;
    }
    if (s.out && s.out != stdout && fclose(s.out) != 0 && rc == 0) {
        fprintf(stderr, "zpipe submit: writing %s: %s\n", o->results,
                strerror(errno));
        rc = 3;
    }
    zp_submit_window_destroy(&s.w);
    zp_line_reader_destroy(&s.lr);
    zp_buf_free(&s.text);
    zp_buf_free(&s.held);
    free(s.ends);
    free(s.tasks);
    free(s.ptrs);
    free(s.job);
    free(s.token);
    return rc;
}

int zp_cmd_submit(int argc, char **argv)
{
    s_submit_opts_t o = {.ventilator = "tcp://127.0.0.1:5561",
                         .sink = "tcp://127.0.0.1:5559",
                         .input = "-",
                         .batch = 8192,
                         .batch_bytes = 1u << 20};
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
    rc = s_submit(&o, &set, in);
    if (in != stdin)
        fclose(in);
    s_settings_free(&set);
    zp_strlist_free(&o.config);
    return rc;
}
