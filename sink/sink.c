/* sink: the zpipe sink daemon's shell. zp_sink_run sets up (output and
 * journal, observers, sockets), runs a loop of named phases (commit,
 * metrics, poll, results, monitors, control) and tears down. What to do
 * with each message is decided by the state modules (sink_ledger,
 * sink_order, sink_store, sink_fetch, sink_reduce, sink_control), which
 * touch no socket; sink_results.c and sink_requests.c carry it out. */
#include "sink.h"
#include "sink_control.h"
#include "sink_shell.h"
#include "sink_snapshot.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_trim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Commits are acknowledged (after the barrier) at least this often, in µs,
 * while results keep coming; sooner once none is waiting (see s_loop). */
#define S_COMMIT_PERIOD_US 20000
/* Messages read per socket in one turn of the loop. */
#define S_RESULTS_PER_TURN 256
#define S_CONTROL_PER_TURN 64
/* The longest wait for a message, in ms, while something waits for the
 * barrier or for its opener: commits go out at least this often. */
#define S_POLL_MS 20
/* How long no message must come before a due commit goes out ahead of
 * its period: long enough that a stream with gaps (big results, a slow
 * link) stays batched, short enough for a lone result to come back fast. */
#define S_QUIET_MS 1
/* The longest wait when nothing does (metrics are rendered about this
 * often): an idle sink wakes 10 times a second, whatever its job count. */
#define S_IDLE_POLL_MS 100

/* ---- set-up ---- */

/* Journal replay: rebuilds the jobs the journal has. */
static void s_replay_open(void *ctx, const char *job, uint32_t max_attempts,
                          const char *token)
{
    zp_sink_t *s = ctx;
    if (!zp_control_restore_open(&s->jobs, job, max_attempts, token))
        zp_error("journal replay: out of memory restoring job %s", job);
}

/* A K line: the job's key; the one it replaces stays valid, as it was. */
static void s_replay_key(void *ctx, const char *job, const char *key)
{
    zp_sink_t *s = ctx;
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, job);
    zp_lease_key_t k;
    if (!j || zp_lease_key_parse(&k, key) < 0)
        return; /* a finished job's: nothing more is committed */
    if (zp_lease_key_set(&j->key) && memcmp(j->key.b, k.b, sizeof k.b) != 0)
        j->prev_key = j->key;
    j->key = k;
}

static void s_replay_close(void *ctx, const char *job, uint64_t total)
{
    zp_sink_t *s = ctx;
    zp_sink_job_t *j = zp_jobs_get(&s->jobs, job, NULL);
    if (j)
        zp_ledger_restore_close(&j->ledger, total);
}

static bool s_replay_record(void *ctx, const char *job, uint64_t task, bool ok)
{
    zp_sink_t *s = ctx;
    zp_sink_job_t *j = zp_jobs_get(&s->jobs, job, NULL);
    if (j && j->ledger.state == ZP_JOB_CLOSED && task == j->ledger.total) {
        j->reduce.final_written = true; /* a reduced job's final record */
        if (!ok && !j->reduce.error)    /* what the record said */
            j->reduce.error = strdup("the reduction failed (before the sink "
                                     "restarted: no more is kept)");
        return true;
    }
    if (!j || zp_ledger_restore(&j->ledger, task, ok) != 1)
        return false;
    /* --ordered resumes at the lowest id without a record: a prefix when
     * an ordered sink wrote the journal, anything when an unordered one
     * did (the drain then steps over the ids written out of order). */
    zp_order_skip_written(&j->order, zp_sink_job_has, j);
    return true;
}

/* A compacted journal's snapshot (sink_snapshot.h). */
static void s_replay_forgotten(void *ctx, const zp_journal_forgotten_t *job)
{
    zp_sink_t *s = ctx;
    zp_snapshot_forgotten(&s->jobs, job);
}

static void s_replay_done(void *ctx, const char *job, const char *token,
                          const zp_journal_summary_t *summary)
{
    zp_sink_t *s = ctx;
    if (!zp_snapshot_done(&s->jobs, job, token, summary))
        zp_error("journal replay: cannot restore finished job %s (out of "
                 "memory, or named twice)",
                 job);
}

static void s_replay_counts(void *ctx, const char *job,
                            const zp_journal_summary_t *counts)
{
    zp_sink_t *s = ctx;
    zp_snapshot_counts(&s->jobs, job, counts);
}

static void s_replay_have(void *ctx, const char *job, uint64_t first,
                          uint64_t count)
{
    zp_sink_t *s = ctx;
    zp_sink_job_t *j = zp_snapshot_have(&s->jobs, job, first, count);
    if (j)
        zp_order_skip_written(&j->order, zp_sink_job_has, j);
    else if (zp_jobs_find(&s->jobs, job))
        zp_error("journal replay: out of memory restoring job %s", job);
}

/* Decides which journal the sink keeps (its flags' promise) and says at
 * start-up what a crash or a power loss may cost. */
static int s_init_promise(zp_sink_t *s)
{
    const zp_sink_config_t *cfg = s->cfg;
    zp_promise_flags_t f = {
        .output = cfg->output,
        .output_kind = zp_promise_output_kind(cfg->output),
        .journal = cfg->journal,
        .journal_sync = cfg->journal_sync,
        .spool = cfg->spool,
        .reduce = cfg->reduce.count > 0,
    };
    char text[1024];
    if (zp_promise_decide(&f, &s->promise, text, sizeof text) < 0) {
        zp_error("sink: %s", text);
        return -1;
    }
    zp_promise_describe(&s->promise, &f, text, sizeof text);
    if (s->promise.level == ZP_PROMISE_NONE)
        zp_warn("sink: %s", text);
    else
        zp_info("sink: %s", text);
    return 0;
}

/* Opens the output: truncated, or with a journal, cut back to what the
 * journal says was committed, with each job's spool cut to match. */
static int s_init_output(zp_sink_t *s)
{
    static const zp_store_replay_t replay = {
        .on_open = s_replay_open,
        .on_close = s_replay_close,
        .on_record = s_replay_record,
        .on_forgotten = s_replay_forgotten,
        .on_done = s_replay_done,
        .on_counts = s_replay_counts,
        .on_have = s_replay_have,
        .on_key = s_replay_key,
    };
    const zp_sink_config_t *cfg = s->cfg;
    if (s_init_promise(s) < 0)
        return -1;
    const zp_promise_t *p = &s->promise;
    zp_store_config_t sc = {.output = cfg->output,
                            .journal = *p->journal ? p->journal : NULL,
                            .spool = cfg->spool,
                            .sync = p->sync,
                            .rewind = p->rewind,
                            .compact = cfg->journal_compact,
                            .folds = *p->folds ? p->folds : NULL};
    s->store = zp_store_new(&sc, &replay, s);
    if (!s->store)
        return -1;
    if (!zp_store_journaled(s->store) || !s->jobs.head)
        return 0;
    if (zp_store_folds(s->store))
        zp_sink_folds_resume(s); /* the reduced jobs fold again */
    /* Every spool the journal knows is cut now, not when first opened:
     * its file stays closed until a record or a fetch needs it. */
    size_t jobs = 0;
    zp_sink_job_t *next;
    for (zp_sink_job_t *j = s->jobs.tail; j; j = next, jobs++) {
        next = j->newer; /* oldest first: the oldest finished are forgotten */
        zp_store_spool_restore(s->store, &j->spool, j->id, j->ledger.done);
        if (j->reduce.fold && zp_ledger_complete(&j->ledger))
            continue; /* its final record: zp_sink_folds_finish */
        if (j->ledger.state == ZP_JOB_DONE ||  /* a snapshot's summary */
            zp_ledger_finish(&j->ledger) == 0) /* complete */
            zp_sink_release(s, j);
    }
    if (zp_store_spools_gone(s->store))
        zp_info("spools: %zu finished or running jobs' spool files are gone "
                "(their records taken, zpipe results --take, or the files "
                "deleted): their records are refused, not served as none",
                zp_store_spools_gone(s->store));
    if (!zp_store_has_output(s->store))
        zp_info("journal %s: resumed %llu committed records of %zu jobs; no "
                "output (the spools are)",
                p->journal, (unsigned long long)zp_store_resumed(s->store),
                jobs);
    else
        zp_info("journal %s: resumed %llu committed records of %zu jobs; "
                "output %s %s %llu bytes",
                p->journal, (unsigned long long)zp_store_resumed(s->store),
                jobs, cfg->output,
                p->rewind ? "cut to" : "not cut (a stream); at",
                (unsigned long long)zp_store_offset(s->store));
    return 0;
}

/* --trace, --metrics and the web view. */
static int s_init_observers(zp_sink_t *s)
{
    const zp_sink_config_t *cfg = s->cfg;
    char err[512];
    if (cfg->trace && *cfg->trace) {
        s->trace = zp_trace_log_new(cfg->trace, err, sizeof err);
        if (!s->trace) {
            zp_error("sink: %s", err);
            return -1;
        }
    }
    if (cfg->metrics && *cfg->metrics) {
        s->metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!s->metrics) {
            zp_error("sink: %s", err);
            return -1;
        }
        s->web = zp_sink_web_new(s->metrics, s->instance);
        if (!s->web) {
            zp_error("sink: cannot start the web view: out of memory");
            return -1;
        }
    }
    return 0;
}

static void *s_bind(zp_sink_t *s, int type, const char *endpoint)
{
    return zp_socket(s->ctx, type, endpoint, true,
                     type == ZMQ_PUB ? 0 : s->cfg->max_frame, s->curve, NULL);
}

/* The control ROUTER. Heartbeats notice a dead link in seconds. The
 * ventilator connects with a fixed routing id (vent-JOB, vent-RANDOM);
 * when its old connection is half-open here (a NAT state dropped, a
 * cut without RST), a plain ROUTER refuses the reconnecting peer until
 * the old connection dies: with ROUTER_HANDOVER the new connection takes
 * the id at once, and what was queued on the old one is dropped (the
 * ventilator asks again after a reconnect: CommitQuery). Every other
 * peer here (zpipe wait, results, status, the Python clients) has a
 * random id, which handover never matches. */
static void *s_bind_control(zp_sink_t *s)
{
    const zp_sink_config_t *cfg = s->cfg;
    void *sock =
        zp_socket_open(s->ctx, ZMQ_ROUTER, cfg->control, true, cfg->max_frame);
    if (!sock)
        return NULL;
    int on = 1;
    if (zp_heartbeat(sock, ZP_HEARTBEAT_SHARED_TIMEOUT_MS) < 0 ||
        zmq_setsockopt(sock, ZMQ_ROUTER_HANDOVER, &on, sizeof on) != 0) {
        zp_error("control %s: %s", cfg->control, zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    if (zp_socket_attach(sock, cfg->control, true, s->curve, NULL) < 0)
        return NULL;
    return sock;
}

/* The context, CURVE, the sockets and their monitors. */
static int s_init_sockets(zp_sink_t *s)
{
    const zp_sink_config_t *cfg = s->cfg;
    s->ctx = zmq_ctx_new();
    if (!s->ctx)
        return -1;
    char err[1024];
    s->curve = zp_curve_new(s->ctx, &cfg->curve, err, sizeof err);
    if (!s->curve) {
        zp_error("sink: %s", err);
        return -1;
    }
    s->results = s_bind(s, ZMQ_PULL, cfg->results);
    s->control = s->results ? s_bind_control(s) : NULL;
    if (!s->results || !s->control)
        return -1;
    if (cfg->publish && *cfg->publish) {
        s->pub = s_bind(s, ZMQ_PUB, cfg->publish);
        if (!s->pub || zp_curve_watch(s->curve, s->pub, "publish") < 0)
            return -1;
    }
    if (cfg->events && *cfg->events) {
        s->events = zp_events_new(s->ctx, cfg->events, "sink", s->curve);
        if (!s->events)
            return -1;
    }
    zp_info("sink ready: results %s, control %s, publish %s, output %s (%s%s)",
            cfg->results, cfg->control,
            cfg->publish && *cfg->publish ? cfg->publish : "off", cfg->output,
            cfg->format, cfg->ordered ? ", ordered" : "");
    /* A peer that sends past ZMQ_MAXMSGSIZE is cut off before its frame is
     * whole: count those drops (with peers that just went away). */
    s->mon_results = zp_curve_monitor(s->curve, s->results,
                                      ZMQ_EVENT_DISCONNECTED, "results");
    s->mon_control = zp_curve_monitor(s->curve, s->control,
                                      ZMQ_EVENT_DISCONNECTED, "control");
    return 0;
}

/* Finished jobs past --retain-jobs are forgotten, kept as 56 bytes each
 * (sink_retain.h): this many, or 10 times the retention when more. */
#define S_FORGOTTEN_IDS         1000000u
#define S_FORGOTTEN_IDS_PER_JOB 10

static int s_init(zp_sink_t *s)
{
    s->format = zp_records_format(s->cfg->format);
    size_t retain = (size_t)s->cfg->retain_jobs;
    size_t ids = retain * S_FORGOTTEN_IDS_PER_JOB;
    zp_jobs_set_retain(&s->jobs, retain,
                       ids > S_FORGOTTEN_IDS ? ids : S_FORGOTTEN_IDS);
    s->arena = zp_arena_new();
    if (!s->arena)
        return -1;
    s->instance = zp_random_id("sink-", 6);
    if (!s->instance)
        return -1;
    if (s->cfg->reduce.count) {
        s->reduce = zp_reduce_new(&s->cfg->reduce, &s->cfg->plugin_config,
                                  s->cfg->max_frame);
        if (!s->reduce)
            return -1;
    }
    if (s_init_output(s) < 0 || s_init_observers(s) < 0 ||
        s_init_sockets(s) < 0)
        return -1;
    zp_sink_folds_finish(s);
    return 0;
}

void zp_sink_release(zp_sink_t *s, zp_sink_job_t *j)
{
    zp_store_spool_close(s->store, &j->spool);
    zp_jobs_release(&s->jobs, j);
    /* Past --retain-jobs the oldest finished jobs are forgotten; their
     * spool files stay on disk (the user's records). */
    zp_sink_job_t *old;
    while ((old = zp_jobs_forgettable(&s->jobs))) {
        zp_store_spool_close(s->store, &old->spool); /* a fetch reopened it */
        if (old->spool.file)
            break; /* could not close it: the store has failed */
        zp_jobs_forget(&s->jobs, &old);
    }
}

/* ---- the loop's phases ---- */

void zp_sink_compact(zp_sink_t *s)
{
    uint64_t t0 = zp_mono_us(), last = 0;
    uint64_t before = zp_store_journal_size(s->store);
    if (zp_store_compact(s->store, zp_snapshot_dump, &s->jobs) < 0)
        return; /* logged */
    zp_store_compactions(s->store, &last);
    zp_info("journal %s: compacted from %llu to %llu bytes (%zu jobs, %llu "
            "forgotten ids) in %.1f ms",
            s->promise.journal, (unsigned long long)before,
            (unsigned long long)last, s->jobs.count,
            (unsigned long long)s->jobs.forgotten.n,
            (double)(zp_mono_us() - t0) / 1000.0);
}

/* A pause is over: the jobs whose last records came during it are
 * completed now (no result will come to do it). One at a time, from
 * the start: completing a job may forget older ones. */
static void s_complete_after_pause(zp_sink_t *s)
{
    size_t left = s->jobs.count + 1;
    for (bool again = true; again && left--;) {
        again = false;
        for (zp_sink_job_t *j = s->jobs.head; j; j = j->link)
            if (j->ledger.state != ZP_JOB_DONE &&
                zp_ledger_complete(&j->ledger)) {
                zp_sink_check_done(s, j);
                again = j->ledger.state == ZP_JOB_DONE;
                break;
            }
    }
}

/* Records are durable before their tasks are acknowledged. A paused
 * store (a write failed) tries again when its backoff says. */
static void s_phase_commit(zp_sink_t *s, uint64_t now, uint64_t *last,
                           bool drained)
{
    if (!drained && now - *last < S_COMMIT_PERIOD_US)
        return;
    if (!s->jobs.dirty && !zp_store_unsynced(s->store) &&
        !zp_store_paused(s->store))
        return; /* nothing written, nobody to tell, nothing to retry */
    bool paused = zp_store_paused(s->store);
    zp_sink_commit_all(s);
    *last = now;
    if (paused && !zp_store_paused(s->store))
        s_complete_after_pause(s);
}

static void s_phase_metrics(zp_sink_t *s, uint64_t now)
{
    if (!zp_metrics_due(s->metrics, now))
        return;
    zp_sink_web_render(s->web, &s->jobs, s->n.bad_messages, now);
    s->n.events_sent = zp_events_sent(s->events);
    const zp_disk_t *d = zp_store_disk(s->store);
    s->n.disk_paused = d->paused;
    s->n.disk_pauses = d->pauses;
    s->n.write_errors = d->errors;
    zp_sink_metrics_render(s->metrics, &s->jobs, &s->n, now);
}

static void s_phase_results(zp_sink_t *s, zmq_msg_t *frame)
{
    for (int k = 0; k < S_RESULTS_PER_TURN; k++) {
        int r = zp_recv(s->results, false, NULL, NULL, frame, ZMQ_DONTWAIT);
        if (r < 0)
            break;
        if (r > 0)
            zp_sink_bad(s, s->cfg->results, "a multi-frame message",
                        zmq_msg_size(frame));
        else
            zp_sink_on_results(s, frame, NULL, 0);
    }
}

/* Counts the connections the monitors saw dropped. */
static void s_phase_monitors(zp_sink_t *s, const zmq_pollitem_t *items)
{
    for (int m = 2; m < 4; m++) {
        if (!(items[m].revents & ZMQ_POLLIN))
            continue;
        int d = zp_monitor_drain(m == 2 ? s->mon_results : s->mon_control);
        for (int i = 0; i < d; i++) {
            s->n.dropped++;
            if (zp_log_sampled(s->n.dropped))
                zp_info("a connection on %s was dropped (an oversized "
                        "message, or the peer left); %llu so far",
                        m == 2 ? s->cfg->results : s->cfg->control,
                        (unsigned long long)s->n.dropped);
        }
    }
}

static void s_phase_control(zp_sink_t *s, zmq_msg_t *frame)
{
    char rid[256];
    size_t rid_len = 0;
    for (int k = 0; k < S_CONTROL_PER_TURN; k++) {
        int r = zp_recv(s->control, true, rid, &rid_len, frame, ZMQ_DONTWAIT);
        if (r < 0)
            break;
        if (r > 0)
            zp_sink_bad(s, s->cfg->control, "a message of the wrong shape", 0);
        else
            zp_sink_on_control(s, rid, rid_len, frame);
    }
    if (s->n_open_acks) /* JobOpens wait for their journal lines */
        zp_sink_commit_all(s);
}

/* Waits for the sockets and monitors (items, 4 of them): up to S_POLL_MS
 * while a commit is due, else up to S_IDLE_POLL_MS; S_QUIET_MS when
 * nowait (a commit is due: it goes out if nothing comes meanwhile).
 * Returns 1 when something is ready, 0 when nothing is or the wait was
 * interrupted, -1 when poll failed (logged). */
static int s_phase_poll(zp_sink_t *s, zmq_pollitem_t *items, bool nowait)
{
    /* Paused: results wait in the workers (nothing more is written). */
    short results = zp_store_paused(s->store) ? 0 : ZMQ_POLLIN;
    zmq_pollitem_t want[] = {
        {s->results, 0, results, 0},
        {s->control, 0, ZMQ_POLLIN, 0},
        {s->mon_results, 0, (short)(s->mon_results ? ZMQ_POLLIN : 0), 0},
        {s->mon_control, 0, (short)(s->mon_control ? ZMQ_POLLIN : 0), 0}};
    memcpy(items, want, sizeof want);
    /* Only what is there and asked for is polled (zp_poll_asked): the
     * sink inherits zpipe run's stdin, which may be a closed pipe. */
    bool busy = s->jobs.dirty || zp_store_unsynced(s->store);
    int n = zp_poll_asked(items, 4,
                          nowait ? S_QUIET_MS
                          : busy ? S_POLL_MS
                                 : S_IDLE_POLL_MS);
    if (n >= 0)
        return n > 0;
    if (errno == EINTR)
        return 0;
    zp_error("poll: %s", zmq_strerror(errno));
    return -1;
}

/* Idle a while after a burst: the pages freed since go back to the
 * system, so RSS follows live work, not the largest backlog (zp_trim). */
static void s_phase_trim(zp_sink_t *s, uint64_t now, bool busy)
{
    if (zp_trim_due(&s->trim, now, busy, ZP_TRIM_IDLE_US))
        zp_trim_release();
}

/* Runs until a signal, a failed write or a failed poll. */
static void s_loop(zp_sink_t *s)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    uint64_t last_commit = zp_mono_us();
    /* Whether no message came for S_QUIET_MS. A commit is then made at
     * once rather than at the next period: a lone result (a Pool's
     * 1-item map, an interactive job) is acknowledged and fetchable in
     * about 2 ms instead of up to 20. Under a stream of results (also
     * big ones, which come with gaps) commits stay batched by the
     * period. */
    bool drained = false;
    while (!zp_stopping() && !zp_store_failed(s->store)) {
        uint64_t now = zp_mono_us();
        s_phase_commit(s, now, &last_commit, drained);
        s_phase_metrics(s, now);
        zmq_pollitem_t items[4];
        bool due = s->jobs.dirty || zp_store_unsynced(s->store);
        int ready = s_phase_poll(s, items, due && !drained);
        if (ready < 0)
            break;
        drained = due && ready == 0;
        s_phase_trim(s, now, ready > 0);
        if (!ready)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            s_phase_results(s, &frame);
        s_phase_monitors(s, items);
        if (items[1].revents & ZMQ_POLLIN)
            s_phase_control(s, &frame);
    }
    zmq_msg_close(&frame);
}

/* ---- teardown ---- */

static void s_close_sockets(zp_sink_t *s)
{
    zp_monitor_close(s->results, &s->mon_results);
    zp_monitor_close(s->control, &s->mon_control);
    /* Replies and live results still queued are not worth waiting for. */
    void *socks[] = {s->results, s->control, s->pub};
    for (int i = 0; i < 3; i++) {
        if (!socks[i])
            continue;
        int zero = 0;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(socks[i]);
    }
    zp_events_destroy(&s->events); /* its last events get the linger */
    zp_curve_log_counts(s->curve, "sink");
    zp_curve_destroy(&s->curve);
    zmq_ctx_term(s->ctx);
}

static void s_teardown(zp_sink_t *s)
{
    if (s->ctx)
        s_close_sockets(s);
    if (zp_trace_log_destroy(&s->trace) < 0)
        zp_warn("trace %s: some lines could not be written", s->cfg->trace);
    zp_sink_web_destroy(&s->web);
    zp_metrics_destroy(&s->metrics);
    zp_store_destroy(&s->store);
    zp_jobs_fini(&s->jobs); /* before the reducers they use */
    zp_reduce_destroy(&s->reduce);
    zp_arena_destroy(&s->arena);
    zp_result_view_free(&s->view);
    zp_buf_free(&s->spool_rec);
    zp_records_jsonl_free(&s->jsonl);
    zp_buf_free(&s->chunk);
    free(s->instance);
    zp_buf_free(&s->rec);
    zp_buf_free(&s->scratch);
    free(s->open_acks);
}

/* A clean stop: the journal the sink chose by itself is removed once
 * every job it knows is done, so that the next start is a fresh one (as
 * a sink without --journal always was); with work left it stays, and the
 * next start resumes it. */
static void s_drop_implicit_journal(zp_sink_t *s)
{
    if (!s->promise.implicit)
        return;
    for (const zp_sink_job_t *j = s->jobs.head; j; j = j->link)
        if (j->ledger.state != ZP_JOB_DONE) {
            zp_info("journal %s kept: job %s is not done; a restart with "
                    "the same flags resumes it",
                    s->promise.journal, j->id);
            return;
        }
    if (zp_store_drop_journal(s->store) < 0)
        zp_warn("journal %s: cannot remove it: %s", s->promise.journal,
                strerror(errno));
}

int zp_sink_run(const zp_sink_config_t *cfg)
{
    zp_sink_t s = {.cfg = cfg};
    int rc = 3;
    int init = s_init(&s);
    if (init < 0 && errno == EBADMSG)
        rc = ZP_SINK_EXIT_LOST; /* a damaged journal (zp_store_new): restarting
                                   cannot help */
    if (init == 0) {
        s_loop(&s);
        rc = zp_store_finish(s.store) < 0 ? 3 : 0;
        if (zp_store_lost(s.store))
            rc = ZP_SINK_EXIT_LOST; /* not restarted: see sink.h */
        if (rc == 0)
            s_drop_implicit_journal(&s);
        zp_info("sink stopping: %llu bad messages, %llu connections dropped",
                (unsigned long long)s.n.bad_messages,
                (unsigned long long)s.n.dropped);
    }
    s_teardown(&s);
    return rc;
}
