/* zpipe wait / zpipe results: clients of a running sink's control socket. */
#define _GNU_SOURCE
#include "zp_codec.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_opts.h"
#include "zp_util.h"
#include "zpipe.h"
#include "client.h"

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
} s_client_opts_t;

/* Connects to endpoint; with secret (own certificate) over CURVE to the
 * server whose key is key_spec (option names it in messages). */
int zp_client_open(zp_client_t *c, const char *endpoint, const char *secret,
                   const char *option, const char *key_spec)
{
    c->ctx = zmq_ctx_new();
    c->arena = zp_arena_new();
    if (!c->ctx || !c->arena)
        return -1;
    char err[1024], key[ZP_CURVE_KEY_LEN + 1];
    zp_curve_config_t cc = {.secret = secret};
    c->curve = zp_curve_new(c->ctx, &cc, err, sizeof err);
    if (!c->curve || zp_curve_peer_key(c->curve, option, key_spec, key, err,
                                       sizeof err) < 0) {
        fprintf(stderr, "zpipe: %s\n", err);
        return -1;
    }
    c->sock =
        zp_socket(c->ctx, ZMQ_DEALER, endpoint, false, 1u << 30, c->curve, key);
    return c->sock ? 0 : -1;
}

void zp_client_close(zp_client_t *c)
{
    if (c->sock) {
        int zero = 0;
        zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->sock);
    }
    zp_curve_destroy(&c->curve);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    zp_arena_destroy(&c->arena);
    zp_buf_free(&c->scratch);
}

/* Waits up to ms for a message of kind about job (any job when NULL); NULL
 * on timeout or interruption. The result lives until the next call. */
zp_message_t *zp_client_recv(zp_client_t *c, int kind, const char *job, long ms)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    zp_message_t *found = NULL;
    uint64_t until = zp_mono_us() + (uint64_t)ms * 1000;
    while (!found && !zp_stopping()) {
        uint64_t now = zp_mono_us();
        if (now >= until)
            break;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)((until - now) / 1000) + 1) <= 0)
            continue;
        while (!found &&
               zp_recv(c->sock, false, NULL, NULL, &frame, ZMQ_DONTWAIT) == 0) {
            zp_arena_reset(c->arena);
            zp_message_t *m = zp_decode(c->arena, zmq_msg_data(&frame),
                                        zmq_msg_size(&frame), 1u << 30);
            if (!m || (int)m->kind_case != kind)
                continue;
            const char *id = kind == ZPIPE__V1__MESSAGE__KIND_JOB_STATUS
                                 ? m->job_status->job_id
                             : kind == ZPIPE__V1__MESSAGE__KIND_ACK
                                 ? m->ack->job_id
                             : kind == ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK
                                 ? m->results_chunk->job_id
                                 : NULL;
            if (!job || (id && strcmp(id, job) == 0))
                found = m;
        }
    }
    /* found points into the arena, not the frame */
    zmq_msg_close(&frame);
    return found;
}

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
    zp_client_t c = {0};
    rc = 3;
    if (zp_client_open(&c, o.sink, o.secret, "sink-key", o.sink_key) < 0)
        goto done;
    uint64_t t0 = zp_mono_us(), known_since = 0;
    while (!zp_stopping() && !s_timed_out(&o, t0)) {
        Zpipe__V1__StatusRequest sr = ZPIPE__V1__STATUS_REQUEST__INIT;
        sr.job_id = (char *)o.job;
        sr.wait = true;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
        m.status_request = &sr;
        zp_send(c.sock, NULL, 0, &m, &c.scratch, ZMQ_DONTWAIT);
        /* The first answer is at once; the final one when the job ends. */
        uint64_t asked = zp_mono_us();
        while (!zp_stopping() && zp_mono_us() - asked < S_RESEND_US) {
            zp_message_t *r = zp_client_recv(
                &c, ZPIPE__V1__MESSAGE__KIND_JOB_STATUS, o.job, 200);
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
    zp_client_close(&c);
    return rc;
}

static const char s_results_synopsis[] =
    "Usage: zpipe results [OPTIONS] JOB\n"
    "Writes every record of JOB (JSON Lines) to stdout as the sink commits\n"
    "them, from the start or --cursor, and ends when the job is done. Needs a\n"
    "sink started with --spool DIR. Nothing is skipped however slowly this\n"
    "reads. Exit status: 0 all records written, 2 bad usage, 3 the sink\n"
    "refused or did not answer in --timeout-ms, 130/143 interrupted (the\n"
    "cursor to resume from is printed on stderr).";

int zp_cmd_results(int argc, char **argv)
{
    s_client_opts_t o = {.sink = "tcp://127.0.0.1:5559"};
    const zp_opt_t opts[] = {
        S_OPT_SINK(o),
        {"cursor", 0, ZP_OPT_UINT, NULL, "N",
         "start here (a cursor printed by an interrupted run; default 0)",
         &o.cursor, 0, UINT64_MAX, NULL},
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
    zp_signals_install(0);
    zp_client_t c = {0};
    rc = 3;
    if (zp_client_open(&c, o.sink, o.secret, "sink-key", o.sink_key) < 0)
        goto done;
    uint64_t t0 = zp_mono_us(), cursor = o.cursor;
    bool known = false;
    while (!zp_stopping() && !s_timed_out(&o, t0)) {
        Zpipe__V1__ResultsRequest rq = ZPIPE__V1__RESULTS_REQUEST__INIT;
        rq.job_id = (char *)o.job;
        rq.cursor = cursor;
        rq.wait = true;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST;
        m.results_request = &rq;
        zp_send(c.sock, NULL, 0, &m, &c.scratch, ZMQ_DONTWAIT);
        zp_message_t *r = NULL;
        uint64_t asked = zp_mono_us();
        /* Answers to an earlier request for the same cursor are as good;
         * any other cursor is stale. */
        while (!zp_stopping() && zp_mono_us() - asked < S_RESEND_US) {
            r = zp_client_recv(&c, ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK,
                               o.job, 200);
            if (r && r->results_chunk->cursor == cursor)
                break;
            r = NULL;
        }
        if (!r)
            continue;
        const Zpipe__V1__ResultsChunk *ch = r->results_chunk;
        if (ch->error && *ch->error) {
            if (!known && strcmp(ch->error, "unknown job") == 0 &&
                zp_mono_us() - t0 < S_UNKNOWN_GRACE_US) {
                usleep(100000);
                continue;
            }
            fprintf(stderr, "zpipe results: job %s: %s\n", o.job, ch->error);
            goto done;
        }
        known = true;
        if (ch->records.len && fwrite(ch->records.data, 1, ch->records.len,
                                      stdout) != ch->records.len) {
            fprintf(stderr, "zpipe results: writing stdout: %s\n",
                    strerror(errno));
            goto done;
        }
        cursor = ch->next_cursor;
        if (ch->done) {
            rc = 0;
            goto done;
        }
    }
    if (zp_stopping())
        rc = 128 + zp_stop_signal();
    else
        fprintf(stderr, "zpipe results: job %s not done within %llu ms\n",
                o.job, (unsigned long long)o.timeout_ms);
    fprintf(stderr, "zpipe results: resume with --cursor %llu\n",
            (unsigned long long)cursor);
done:
    fflush(stdout);
    zp_client_close(&c);
    return rc;
}

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

int zp_cmd_submit(int argc, char **argv)
{
    s_submit_opts_t o = {
        .ventilator = "tcp://127.0.0.1:5561", .input = "-", .batch = 1024};
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "the ventilator's intake (default tcp://127.0.0.1:5561)",
         &o.ventilator, 0, 0, NULL},
        {"plugin", 'p', ZP_OPT_STR, "ZPIPE_PLUGIN", "NAME",
         "plugin every task needs (required)", &o.plugin, 0, 0, NULL},
        {"input", 'i', ZP_OPT_STR, "ZPIPE_INPUT", "FILE",
         "one task per line; - for stdin (default -)", &o.input, 0, 0, NULL},
        {"job", 'j', ZP_OPT_STR, "ZPIPE_JOB", "ID",
         "job id (default: the ventilator makes one)", &o.job, 0, 0, NULL},
        {"priority", 0, ZP_OPT_UINT, "ZPIPE_PRIORITY", "N",
         "higher runs first; equal priorities share workers (default 0)",
         &o.priority, 0, 1000000, NULL},
        {"deadline-ms", 0, ZP_OPT_UINT, "ZPIPE_DEADLINE_MS", "MS",
         "per-task deadline (default: the ventilator's)", &o.deadline_ms, 0,
         86400000, NULL},
        {"max-attempts", 0, ZP_OPT_UINT, "ZPIPE_MAX_ATTEMPTS", "N",
         "attempts before a retryable failure is final (default: the "
         "ventilator's)",
         &o.max_attempts, 0, 100, NULL},
        {"batch", 0, ZP_OPT_UINT, "ZPIPE_BATCH", "N",
         "tasks per message (default 1024)", &o.batch, 1, 65536, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",
         "give up when the ventilator does not answer this long, 0 = never "
         "(default 0; a busy ventilator holds producers back)",
         &o.timeout_ms, 0, 86400000ull * 365, NULL},
        {"config", 'c', ZP_OPT_LIST, NULL, "KEY=VALUE",
         "a setting for the job's plugin (e.g. cmd=sha256sum for exec); "
         "repeatable",
         &o.config, 0, 0, NULL},
        ZP_CURVE_SECRET_OPTION(o.secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", o.ventilator_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe submit", s_submit_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0) {
        zp_strlist_free(&o.config);
        return rc;
    }
    const char *bad = !o.plugin ? "--plugin is required"
                      : o.job && !zp_job_id_valid(o.job)
                          ? "--job must be 1 to 128 of [A-Za-z0-9_.:-]"
                          : NULL;
    for (size_t i = 0; !bad && i < o.config.count; i++)
        if (!strchr(o.config.items[i], '=') || o.config.items[i][0] == '=')
            bad = "--config takes KEY=VALUE";
    if (bad) {
        zp_strlist_free(&o.config);
        return zp_opts_fail(opts, "zpipe submit", s_submit_synopsis, bad);
    }
    FILE *in = strcmp(o.input, "-") == 0 ? stdin : fopen(o.input, "r");
    if (!in) {
        fprintf(stderr, "zpipe submit: cannot read %s: %s\n", o.input,
                strerror(errno));
        zp_strlist_free(&o.config);
        return 3;
    }
    Zpipe__V1__Setting *settings = calloc(o.config.count + 1, sizeof *settings);
    Zpipe__V1__Setting **setp = calloc(o.config.count + 1, sizeof *setp);
    char **keys = calloc(o.config.count + 1, sizeof *keys);
    for (size_t i = 0; settings && setp && keys && i < o.config.count; i++) {
        const char *eq = strchr(o.config.items[i], '=');
        zpipe__v1__setting__init(&settings[i]);
        keys[i] = strndup(o.config.items[i], (size_t)(eq - o.config.items[i]));
        settings[i].key = keys[i];
        settings[i].value = (char *)eq + 1;
        setp[i] = &settings[i];
    }
    zp_signals_install(0);
    zp_client_t c = {0};
    char *job = NULL, *line = NULL;
    size_t cap = 0;
    Zpipe__V1__Task *tasks = calloc(o.batch, sizeof *tasks);
    Zpipe__V1__Task **ptrs = calloc(o.batch, sizeof *ptrs);
    char **lines = calloc(o.batch, sizeof *lines);
    rc = 3;
    if (!tasks || !ptrs || !lines ||
        zp_client_open(&c, o.ventilator, o.secret, "ventilator-key",
                       o.ventilator_key) < 0)
        goto done;
    uint64_t t0 = zp_mono_us();
    zp_message_t *a = NULL;
    /* Open: resent until answered (the ventilator answers once the sink has
     * the job; opening again is harmless). */
    while (!a && !zp_stopping() &&
           !(o.timeout_ms && zp_mono_us() - t0 > o.timeout_ms * 1000)) {
        Zpipe__V1__JobOpen jo = ZPIPE__V1__JOB_OPEN__INIT;
        jo.job_id = (char *)(o.job ? o.job : "");
        jo.plugin = (char *)o.plugin;
        jo.priority = (uint32_t)o.priority;
        jo.deadline_ms = o.deadline_ms;
        jo.max_attempts = (uint32_t)o.max_attempts;
        jo.config = setp;
        jo.n_config = setp ? o.config.count : 0;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_OPEN;
        m.job_open = &jo;
        zp_send(c.sock, NULL, 0, &m, &c.scratch, ZMQ_DONTWAIT);
        s_submit_opts_t once = o;
        once.timeout_ms = 2000;
        a = s_submit_ack(&c, &once, o.job, zp_mono_us());
    }
    if (!a || !a->ack->ok) {
        fprintf(stderr, "zpipe submit: %s\n",
                a ? a->ack->error : "no answer from the ventilator");
        goto done;
    }
    job = strdup(a->ack->job_id);
    if (!job)
        goto done;
    printf("%s\n", job);
    fflush(stdout);
    uint64_t sent = 0;
    bool eof = false;
    while (!eof && !zp_stopping()) {
        size_t n = 0;
        while (n < o.batch) {
            ssize_t len = getline(&line, &cap, in);
            if (len < 0) {
                eof = true;
                break;
            }
            if (len && line[len - 1] == '\n')
                len--;
            lines[n] = line;
            line = NULL;
            cap = 0;
            zpipe__v1__task__init(&tasks[n]);
            tasks[n].payload.data = (uint8_t *)lines[n];
            tasks[n].payload.len = (size_t)len;
            ptrs[n] = &tasks[n];
            n++;
        }
        if (n) {
            Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
            b.job_id = job;
            b.tasks = ptrs;
            b.n_tasks = n;
            zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
            m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
            m.task_batch = &b;
            int sr = zp_send(c.sock, NULL, 0, &m, &c.scratch, 0);
            for (size_t i = 0; i < n; i++)
                free(lines[i]);
            if (sr < 0)
                break;
            /* One batch at a time: the answer is the ventilator's leave to
             * send more. */
            a = s_submit_ack(&c, &o, job, zp_mono_us());
            if (!a || !a->ack->ok || a->ack->accepted != n) {
                fprintf(stderr, "zpipe submit: job %s: %s after %llu tasks\n",
                        job,
                        a ? (a->ack->error && *a->ack->error ? a->ack->error
                                                             : "short answer")
                          : "no answer from the ventilator",
                        (unsigned long long)sent);
                goto done;
            }
            sent += n;
        }
    }
    if (zp_stopping()) {
        rc = 128 + zp_stop_signal();
        goto done;
    }
    if (ferror(in)) {
        fprintf(stderr, "zpipe submit: reading %s: %s\n", o.input,
                strerror(errno));
        goto done;
    }
    Zpipe__V1__JobClose jc = ZPIPE__V1__JOB_CLOSE__INIT;
    jc.job_id = job;
    jc.total = sent;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE;
    m.job_close = &jc;
    zp_send(c.sock, NULL, 0, &m, &c.scratch, 0);
    a = s_submit_ack(&c, &o, job, zp_mono_us());
    if (!a || !a->ack->ok) {
        fprintf(stderr, "zpipe submit: closing job %s: %s\n", job,
                a ? a->ack->error : "no answer from the ventilator");
        goto done;
    }
    fprintf(stderr, "zpipe submit: job %s: %llu tasks submitted\n", job,
            (unsigned long long)sent);
    rc = 0;
done:
    if (in != stdin)
        fclose(in);
    free(line);
    free(tasks);
    free(ptrs);
    free(lines);
    free(job);
    for (size_t i = 0; keys && i < o.config.count; i++)
        free(keys[i]);
    free(keys);
    free(settings);
    free(setp);
    zp_strlist_free(&o.config);
    zp_client_close(&c);
    return rc;
}

static const char s_status_synopsis[] =
    "Usage: zpipe status [--ventilator ENDPOINT] [OPTIONS]\n"
    "Shows a running ventilator's jobs (tasks, queued, in flight) and\n"
    "workers (plugins, window, credit, tasks sent and committed, last\n"
    "seen). Exit status: 0 shown, 2 bad usage, 3 no answer within\n"
    "--timeout-ms.";

int zp_cmd_status(int argc, char **argv)
{
    const char *ventilator = "tcp://127.0.0.1:5561";
    const char *secret = NULL, *ventilator_key = NULL;
    uint64_t timeout_ms = 5000;
    const zp_opt_t opts[] = {
        {"ventilator", 'v', ZP_OPT_STR, "ZPIPE_VENTILATOR", "ENDPOINT",
         "the ventilator's intake (default tcp://127.0.0.1:5561)", &ventilator,
         0, 0, NULL},
        {"timeout-ms", 0, ZP_OPT_UINT, "ZPIPE_TIMEOUT_MS", "MS",
         "give up after this long (default 5000)", &timeout_ms, 1, 86400000ull,
         NULL},
        ZP_CURVE_SECRET_OPTION(secret),
        ZP_CURVE_KEY_OPTION("ventilator-key", "ZPIPE_VENTILATOR_KEY",
                            "the ventilator", ventilator_key),
        {0},
    };
    int rc = zp_opts_main(opts, argc, argv, "zpipe status", s_status_synopsis,
                          "zpipe " ZPIPE_VERSION);
    if (rc >= 0)
        return rc;
    zp_signals_install(0);
    zp_client_t c = {0};
    rc = 3;
    if (zp_client_open(&c, ventilator, secret, "ventilator-key",
                       ventilator_key) < 0)
        goto done;
    Zpipe__V1__StatusRequest sr = ZPIPE__V1__STATUS_REQUEST__INIT;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST;
    m.status_request = &sr;
    zp_send(c.sock, NULL, 0, &m, &c.scratch, ZMQ_DONTWAIT);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    zp_message_t *r = NULL;
    zmq_pollitem_t it = {c.sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, (long)timeout_ms) > 0 &&
        zp_recv(c.sock, false, NULL, NULL, &frame, ZMQ_DONTWAIT) == 0)
        r = zp_decode(c.arena, zmq_msg_data(&frame), zmq_msg_size(&frame),
                      1u << 30);
    zmq_msg_close(&frame);
    if (!r || r->kind_case != ZPIPE__V1__MESSAGE__KIND_CLUSTER_STATUS) {
        fprintf(stderr, "zpipe status: no answer from %s within %llu ms\n",
                ventilator, (unsigned long long)timeout_ms);
        goto done;
    }
    const Zpipe__V1__ClusterStatus *st = r->cluster_status;
    printf("%zu jobs, %zu workers; %llu tasks held of %llu (%.1f MiB)\n",
           st->n_jobs, st->n_workers, (unsigned long long)st->held,
           (unsigned long long)st->held_limit,
           (double)st->held_bytes / (1 << 20));
    if (st->n_jobs)
        printf("\n%-24s %-12s %4s %10s %10s %10s %s\n", "JOB", "PLUGIN", "PRI",
               "TASKS", "QUEUED", "IN FLIGHT", "CLOSED");
    for (size_t i = 0; i < st->n_jobs; i++) {
        const Zpipe__V1__ClusterStatus__JobInfo *j = st->jobs[i];
        printf("%-24s %-12s %4u %10llu %10llu %10llu %s\n", j->job_id,
               j->plugin, j->priority, (unsigned long long)j->tasks,
               (unsigned long long)j->queued, (unsigned long long)j->in_flight,
               j->closed ? "yes" : "no");
    }
    if (st->n_workers)
        printf("\n%-24s %-20s %6s %6s %10s %10s %s\n", "WORKER", "PLUGINS",
               "WINDOW", "CREDIT", "SENT", "COMMITTED", "LAST SEEN");
    for (size_t i = 0; i < st->n_workers; i++) {
        const Zpipe__V1__ClusterStatus__WorkerInfo *w = st->workers[i];
        char plugins[256] = "";
        size_t len = 0;
        for (size_t k = 0; k < w->n_plugins && len < sizeof plugins; k++)
            len += (size_t)snprintf(plugins + len, sizeof plugins - len, "%s%s",
                                    k ? "," : "", w->plugins[k]);
        printf("%-24s %-20s %6llu %6llu %10llu %10llu %.1f s ago\n",
               w->worker_id, plugins, (unsigned long long)w->window,
               (unsigned long long)w->credit, (unsigned long long)w->sent,
               (unsigned long long)w->committed,
               (double)w->last_seen_ms / 1000.0);
    }
    rc = 0;
done:
    zp_client_close(&c);
    return rc;
}
