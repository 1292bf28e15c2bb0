/* ventilator: the shell. Owns the sockets, runs the loop of named phases
 * and carries out what the state modules decide (vent_shell.h lists
 * them). Set-up in s_init, teardown in s_teardown. */
#define _GNU_SOURCE
#include "ventilator.h"
#include "vent_intake.h"
#include "vent_shell.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_INTAKE_HWM 4

/* What a turn can poll, by slot in s_turn_t.revents. */
enum { S_DISPATCH, S_CONTROL, S_MONITOR, S_INTAKE, S_INPUT, S_SLOTS };

/* One turn of the loop: what is polled, what is received. */
typedef struct {
    short revents[S_SLOTS]; /* what the poll found, by slot */
    bool want_input, want_intake;
    zmq_msg_t frame;
    char rid[256];
    size_t rid_len;
} s_turn_t;

bool zp_vent_shell_can_hold(const zp_vent_shell_t *v)
{
    return zp_vent_tasks_can_hold(v->tasks, zp_vent_workers_windows(v->workers),
                                  zp_vent_workers_count(v->workers));
}

/* ---- set-up ------------------------------------------------------------ */

/* Opens the --input job: its id, settings, input and skip set. */
static zp_vent_job_t *s_open_file_job(zp_vent_shell_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    char *id = cfg->job_id ? strdup(cfg->job_id) : zp_random_id("job-", 6);
    if (!id)
        return NULL;
    if (!zp_job_id_valid(id)) {
        zp_error("job id '%s' must be 1 to 128 of [A-Za-z0-9_.:-]", id);
        free(id);
        return NULL;
    }
    zp_vent_job_t *j = zp_vent_jobs_add(v->jobs, id, cfg->plugin);
    free(id);
    if (!j)
        return NULL;
    const char *why = NULL;
    if (zp_vent_settings_text((char *const *)cfg->config.items, NULL,
                              cfg->config.count, &j->config, &why) < 0) {
        zp_error("--config: %s", why);
        goto fail_job;
    }
    j->has_input = true;
    int fd = strcmp(cfg->input, "-") == 0
                 ? STDIN_FILENO
                 : open(cfg->input, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        zp_error("cannot open input %s: %s", cfg->input, strerror(errno));
        goto fail_job;
    }
    zp_vent_reader_init(&j->in, fd);
    if (strcmp(cfg->input_format, "frames") == 0)
        zp_vent_reader_frames(&j->in, cfg->max_task_bytes);
    if (cfg->resume_journal &&
        zp_vent_skip_load(cfg->resume_journal, j->id, &j->skip) < 0)
        goto fail_job;
    return j;
fail_job:
    zp_vent_shell_remove_job(v, j);
    return NULL;
}

/* The state modules, the --input job and the metrics server. */
static int s_init_state(zp_vent_shell_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    v->push = strcmp(cfg->dispatch, "push") == 0;
    v->batch_max = zp_vent_sched_batch_max(cfg->batch, v->push);
    v->arena = zp_arena_new();
    v->tasks =
        zp_vent_tasks_new(cfg->max_inflight, cfg->max_inflight_bytes, v->push);
    v->jobs =
        zp_vent_jobs_new(cfg->deadline_ms, (uint32_t)cfg->max_attempts, 0);
    v->workers = zp_vent_workers_new(zp_mono_us());
    v->quarantine = zp_vent_quarantine_new(cfg->quarantine_ms * 1000,
                                           ZP_VENT_QUARANTINE_MAX_US);
    v->instance = zp_random_id("", 12);
    if (!v->arena || !v->tasks || !v->jobs || !v->workers || !v->quarantine ||
        !v->instance)
        return -1;
    if (zp_vent_shell_journal_open(v) < 0)
        return -1;
    if (cfg->input) {
        v->file_job = s_open_file_job(v);
        if (!v->file_job)
            return -1;
    }
    if (cfg->metrics && *cfg->metrics) {
        char err[512];
        v->metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!v->metrics) {
            zp_error("ventilator: %s", err);
            return -1;
        }
    }
    return 0;
}

/* The producers' ROUTER. Bounded: a producer's messages queue here only
 * this deep; past that its sends wait (the ventilator reads the intake
 * only while it can hold more tasks). */
static int s_init_intake(zp_vent_shell_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    v->intake = zmq_socket(v->ctx, ZMQ_ROUTER);
    if (!v->intake)
        return -1;
    int hwm = S_INTAKE_HWM;
    zmq_setsockopt(v->intake, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int64_t cap = (int64_t)zp_vent_intake_frame_cap(cfg->max_task_bytes);
    zmq_setsockopt(v->intake, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    int linger = ZP_LINGER_MS;
    zmq_setsockopt(v->intake, ZMQ_LINGER, &linger, sizeof linger);
    if (zp_curve_apply(v->curve, v->intake, cfg->intake, true, NULL) < 0 ||
        zp_curve_watch(v->curve, v->intake, "intake") < 0)
        return -1;
    if (zmq_bind(v->intake, cfg->intake) != 0) {
        zp_error("bind %s: %s", cfg->intake, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* The DEALER to the sink, with a stable identity, so a restarted sink
 * knows us by the same name; heartbeats, so a link that silently stopped
 * carrying packets is closed and reconnected in seconds (the sink takes
 * the new connection under the same id: ROUTER_HANDOVER). */
static int s_init_control(zp_vent_shell_t *v, const char *sink_key)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    v->control = zmq_socket(v->ctx, ZMQ_DEALER);
    if (!v->control)
        return -1;
    char rid[200];
    char *rnd = v->file_job ? NULL : zp_random_id("", 6);
    snprintf(rid, sizeof rid, "vent-%.180s",
             v->file_job ? v->file_job->id
             : rnd       ? rnd
                         : "service");
    free(rnd);
    zmq_setsockopt(v->control, ZMQ_ROUTING_ID, rid, strlen(rid));
    zp_fast_reconnect(v->control);
    if (zp_heartbeat(v->control, ZP_HEARTBEAT_TIMEOUT_MS) < 0) {
        zp_error("heartbeats on %s: %s", cfg->sink_control,
                 zmq_strerror(errno));
        return -1;
    }
    int linger = ZP_LINGER_MS;
    zmq_setsockopt(v->control, ZMQ_LINGER, &linger, sizeof linger);
    if (zp_curve_apply(v->curve, v->control, cfg->sink_control, false,
                       sink_key) < 0)
        return -1;
    if (zmq_connect(v->control, cfg->sink_control) != 0) {
        zp_error("connect %s: %s", cfg->sink_control, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* The context, CURVE and every socket. */
static int s_init_sockets(zp_vent_shell_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    v->ctx = zmq_ctx_new();
    if (!v->ctx)
        return -1;
    char sink_key[ZP_CURVE_KEY_LEN + 1];
    char err[1024];
    v->curve = zp_curve_new(v->ctx, &cfg->curve, err, sizeof err);
    if (!v->curve || zp_curve_peer_key(v->curve, "sink-key", cfg->sink_key,
                                       sink_key, err, sizeof err) < 0) {
        zp_error("ventilator: %s", err);
        return -1;
    }
    v->dispatch =
        zp_socket(v->ctx, v->push ? ZMQ_PUSH : ZMQ_ROUTER,
                  cfg->dispatch_endpoint, true, 1u << 20, v->curve, NULL);
    if (!v->dispatch)
        return -1;
    if (cfg->events && *cfg->events) {
        v->events = zp_events_new(v->ctx, cfg->events, "ventilator", v->curve);
        if (!v->events)
            return -1;
    }
    if (!v->push)
        v->monitor = zp_curve_monitor(v->curve, v->dispatch,
                                      ZMQ_EVENT_DISCONNECTED, "dispatch");
    else if (zp_curve_watch(v->curve, v->dispatch, "dispatch") < 0)
        return -1;
    if (cfg->intake && s_init_intake(v) < 0)
        return -1;
    if (s_init_control(v, sink_key) < 0)
        return -1;
    /* Reconnected to the sink: every live job names its opener again, so
     * acknowledgements held for it go out. */
    v->control_monitor =
        zp_curve_monitor(v->curve, v->control, ZMQ_EVENT_CONNECTED, "sink");
    return v->control_monitor ? 0 : -1;
}

static void s_log_start(const zp_vent_shell_t *v)
{
    const zp_ventilator_config_t *cfg = v->cfg;
    if (v->file_job)
        zp_info("ventilator: job %s, plugin %s, input %s, dispatch %s on %s, "
                "sink %s%s%s",
                v->file_job->id, cfg->plugin, cfg->input, cfg->dispatch,
                cfg->dispatch_endpoint, cfg->sink_control,
                cfg->intake ? ", intake " : "", cfg->intake ? cfg->intake : "");
    else
        zp_info("ventilator: jobs from producers on %s, dispatch %s on %s, "
                "sink %s",
                cfg->intake, cfg->dispatch, cfg->dispatch_endpoint,
                cfg->sink_control);
}

/* ---- the phases of the loop --------------------------------------------- */

/* Poll: waits for what can move. The input is polled only when it is
 * what holds dispatch back. Returns 0, 1 to go round again (a signal),
 * -1 on an error (logged). */
static int s_phase_poll(zp_vent_shell_t *v, s_turn_t *t)
{
    zp_vent_job_t *fj = v->file_job;
    bool can_hold = zp_vent_shell_can_hold(v);
    t->want_input = fj && zp_vent_job_live(fj) && !fj->in.eof &&
                    !zp_vent_reader_line_buffered(&fj->in) &&
                    fj->ready.len == 0 && can_hold &&
                    (v->push || zp_vent_sched_free_credit(v->workers, fj) > 0);
    bool want_out =
        v->push && zp_vent_sched_pick(&v->sched, zp_vent_jobs_first(v->jobs),
                                      NULL, can_hold) != NULL;
    t->want_intake = v->intake && can_hold;
    zmq_pollitem_t want[S_SLOTS] = {
        [S_DISPATCH] = {v->dispatch, 0,
                        (short)(v->push ? (want_out ? ZMQ_POLLOUT : 0)
                                        : ZMQ_POLLIN),
                        0},
        [S_CONTROL] = {v->control, 0, ZMQ_POLLIN, 0},
        [S_MONITOR] = {v->monitor, 0, (short)(v->monitor ? ZMQ_POLLIN : 0), 0},
        [S_INTAKE] = {v->intake, 0,
                      (short)(v->intake && t->want_intake ? ZMQ_POLLIN : 0), 0},
        [S_INPUT] = {NULL, fj ? fj->in.fd : -1,
                     (short)(t->want_input ? ZMQ_POLLIN : 0), 0},
    };
    /* Only what is there and asked for is polled (zp_poll_asked): a
     * closed stdin would otherwise wake every poll at once. */
    int n = zp_poll_asked(want, S_SLOTS, v->probe_until_us ? 20 : 100);
    for (int i = 0; i < S_SLOTS; i++)
        t->revents[i] = want[i].revents;
    if (n >= 0)
        return 0;
    if (errno == EINTR)
        return 1;
    zp_error("poll: %s", zmq_strerror(errno));
    return -1;
}

/* Read input: what the poll found on the input file. */
static int s_phase_read_input(zp_vent_shell_t *v, s_turn_t *t)
{
    if (!t->want_input || !(t->revents[S_INPUT] & (ZMQ_POLLIN | ZMQ_POLLERR)))
        return 0;
    if (zp_vent_reader_fill(&v->file_job->in, true) < 0) {
        zp_vent_shell_input_error(v, &v->file_job->in);
        return -1;
    }
    return 0;
}

/* Read dispatch: workers' messages, then the monitor. A peer's last
 * messages (a worker's bye) stay readable after libzmq has forgotten its
 * route, so they are read before the monitor's disconnect makes us probe
 * who is gone: a probe of every worker finds a dead one in milliseconds
 * (a send to a vanished peer fails at once on a ROUTER_MANDATORY socket)
 * instead of a heartbeat timeout. */
static void s_phase_read_dispatch(zp_vent_shell_t *v, s_turn_t *t)
{
    bool disconnect = t->revents[S_MONITOR] & ZMQ_POLLIN;
    if (!v->push && ((t->revents[S_DISPATCH] & ZMQ_POLLIN) || disconnect))
        for (int k = 0; k < 256; k++) {
            int r = zp_recv(v->dispatch, true, t->rid, &t->rid_len, &t->frame,
                            ZMQ_DONTWAIT);
            if (r < 0)
                break;
            if (r > 0) {
                zp_vent_shell_bad(v, "a message of the wrong shape", 0);
                continue;
            }
            zp_vent_shell_on_dispatch(v, t->rid, t->rid_len, &t->frame);
        }
    if (disconnect && zp_monitor_drain(v->monitor) > 0) {
        v->probe_until_us = zp_mono_us() + 500000;
        zp_vent_shell_probe_workers(v);
    }
}

/* Read control: the sink's answers. */
static void s_phase_read_control(zp_vent_shell_t *v, s_turn_t *t)
{
    if (!(t->revents[S_CONTROL] & ZMQ_POLLIN))
        return;
    for (int k = 0; k < 256; k++) {
        int r = zp_recv(v->control, false, NULL, NULL, &t->frame, ZMQ_DONTWAIT);
        if (r < 0)
            break;
        if (r == 0)
            zp_vent_shell_on_control(v, &t->frame);
    }
}

/* Read intake: producers, while there is room for their tasks. */
static void s_phase_read_intake(zp_vent_shell_t *v, s_turn_t *t)
{
    if (!t->want_intake || !(t->revents[S_INTAKE] & ZMQ_POLLIN))
        return;
    for (int k = 0; k < 64 && zp_vent_shell_can_hold(v); k++) {
        int r = zp_recv(v->intake, true, t->rid, &t->rid_len, &t->frame,
                        ZMQ_DONTWAIT);
        if (r < 0)
            break;
        if (r > 0) {
            zp_vent_shell_intake_refuse(v, t->rid, t->rid_len, "",
                                        "a message of the wrong shape");
            continue;
        }
        zp_vent_shell_on_intake(v, t->rid, t->rid_len, &t->frame);
    }
    /* One sync for all of them, then their answers (group commit). */
    zp_vent_shell_answers_flush(v);
}

/* Probe: the pipe of a dead peer may outlive its disconnect event by a
 * little, so probe again for half a second after one. */
static void s_phase_probe(zp_vent_shell_t *v, uint64_t now)
{
    if (!v->probe_until_us)
        return;
    if (now > v->probe_until_us)
        v->probe_until_us = 0;
    else if (now - v->last_probe_us >= 50000)
        zp_vent_shell_probe_workers(v);
}

/* Liveness, every 100 ms: silent workers, expired leases. */
static void s_phase_liveness(zp_vent_shell_t *v, uint64_t now)
{
    if (now - v->last_check_us < 100000)
        return;
    if (!v->push)
        zp_vent_shell_liveness(v, now);
    v->last_check_us = now;
}

/* No worker for --no-worker-timeout-ms with work waiting: returns -1
 * (logged), to give up. */
static int s_phase_no_worker(zp_vent_shell_t *v, uint64_t now)
{
    uint64_t since = zp_vent_workers_none_since(v->workers);
    uint64_t timeout = v->cfg->no_worker_timeout_ms;
    bool waiting = v->file_job || zp_vent_tasks_size(v->tasks) > 0;
    if (v->push || zp_vent_workers_count(v->workers) || !timeout || !waiting ||
        now <= since || now - since <= timeout * 1000)
        return 0;
    zp_error("no worker for %.1f s (--no-worker-timeout-ms); giving up with "
             "%zu tasks not done",
             (double)(now - since) / 1e6, zp_vent_tasks_size(v->tasks));
    return -1;
}

/* Push dispatch sends at most this many batches per turn. */
#define S_PUSH_ROUNDS 64

/* Refill, then dispatch: credit dispatch sends a round (input for all of
 * it read first, unless its payloads are big: then a few batches at a
 * time, each sent as soon as it is read, while the next is read); push
 * dispatch alternates the two a batch at a time, as long as the PUSH
 * socket takes them. Returns -1 on a fatal error. */
static int s_phase_feed(zp_vent_shell_t *v)
{
    if (!v->push) {
        int r;
        do {
            if ((r = zp_vent_shell_refill(v)) < 0 ||
                zp_vent_shell_dispatch(v) < 0)
                return -1;
        } while (r == 1);
        return 0;
    }
    for (int k = 0; k < S_PUSH_ROUNDS; k++) {
        if (zp_vent_shell_refill(v) < 0)
            return -1;
        int r = zp_vent_shell_dispatch(v);
        if (r <= 0)
            return r;
    }
    return 0;
}

static bool s_file_job_finished(const zp_vent_shell_t *v)
{
    return v->file_job && zp_vent_job_finished(v->file_job);
}

/* The loop: a list of phases, until the --input job is finished, a
 * signal, or an error. */
static void s_run(zp_vent_shell_t *v)
{
    s_turn_t t = {.rid_len = 0};
    zmq_msg_init(&t.frame);
    v->last_check_us = zp_mono_us();
    zp_vent_workers_start(v->workers, v->last_check_us);
    while (!s_file_job_finished(v) && !zp_stopping()) {
        int r = s_phase_poll(v, &t);
        if (r > 0)
            continue;
        if (r < 0 || s_phase_read_input(v, &t) < 0)
            break;
        s_phase_read_dispatch(v, &t);
        s_phase_read_control(v, &t);
        s_phase_read_intake(v, &t);
        if (s_phase_feed(v) < 0)
            break;
        uint64_t now = zp_mono_us();
        zp_vent_shell_tend_jobs(v, now);
        zp_vent_shell_answers_flush(v); /* JobOpen answers, a failed sync */
        zp_vent_shell_journal_tend(v, now);
        if (zp_metrics_due(v->metrics, now))
            zp_vent_metrics_render(v->metrics, &v->n, v->tasks, v->workers,
                                   v->quarantine, v->jobs, v->events, now);
        if (s_file_job_finished(v))
            break;
        s_phase_probe(v, now);
        s_phase_liveness(v, now);
        if (s_phase_no_worker(v, now) < 0)
            break;
    }
    zmq_msg_close(&t.frame);
}

/* ---- teardown ------------------------------------------------------------ */

static int s_exit_code(const zp_vent_shell_t *v)
{
    if (s_file_job_finished(v))
        return v->file_job->state == ZP_VENT_JOB_REFUSED ? 3
               : v->file_job->failed                     ? 1
                                                         : 0;
    if (zp_stopping())
        return v->file_job ? 4 : 0;
    return 3;
}

static void s_log_stop(const zp_vent_shell_t *v)
{
    const zp_vent_counters_t *n = &v->n;
    if (v->file_job && v->file_job->skipped)
        zp_info("job %s: skipped %llu tasks an earlier run committed",
                v->file_job->id, (unsigned long long)v->file_job->skipped);
    zp_info(
        "ventilator stopping: %llu tasks read, %llu dispatches, "
        "%llu redelivered (%llu from lost workers, %llu leases expired), "
        "%llu retried on request, %llu given up, %llu bad messages, "
        "%llu refused from producers; at most %zu tasks held",
        (unsigned long long)zp_vent_tasks_read(v->tasks),
        (unsigned long long)n->dispatched, (unsigned long long)n->redelivered,
        (unsigned long long)n->lost_to_workers, (unsigned long long)n->expired,
        (unsigned long long)n->retried, (unsigned long long)n->gave_up,
        (unsigned long long)n->bad_messages, (unsigned long long)n->intake_bad,
        zp_vent_tasks_max_held(v->tasks));
}

/* Nothing still queued matters once the job is done or abandoned: tasks
 * in flight are the workers' and control messages are resent. */
static void s_close_sockets(zp_vent_shell_t *v)
{
    zp_monitor_close(v->dispatch, &v->monitor);
    zp_monitor_close(v->control, &v->control_monitor);
    void *socks[3] = {v->control, v->dispatch, v->intake};
    for (int i = 0; i < 3; i++) {
        if (!socks[i])
            continue;
        int zero = 0;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(socks[i]);
    }
    zp_events_destroy(&v->events); /* its last events get the linger */
    zp_curve_log_counts(v->curve, "ventilator");
    zp_curve_destroy(&v->curve);
    if (v->ctx)
        zmq_ctx_term(v->ctx);
}

static void s_teardown(zp_vent_shell_t *v)
{
    zp_metrics_destroy(&v->metrics);
    while (v->workers && zp_vent_workers_count(v->workers))
        zp_vent_shell_drop_worker(v, zp_vent_workers_at(v->workers, 0),
                                  "ventilator stopping", false, false);
    zp_vent_workers_destroy(&v->workers);
    zp_vent_quarantine_destroy(&v->quarantine);
    zp_vent_shell_journal_close(v);
    zp_vent_tasks_destroy(&v->tasks);
    zp_vent_jobs_destroy(&v->jobs);
    zp_vent_link_free(&v->link);
    free(v->instance);
    free(v->fail_ptrs);
    free(v->pb_tasks);
    free(v->pb_ptrs);
    free(v->batch);
    zp_buf_free(&v->scratch);
    zp_arena_destroy(&v->arena);
    zp_task_view_free(&v->intake_view);
}

int zp_ventilator_run(const zp_ventilator_config_t *cfg)
{
    zp_vent_shell_t v = {.cfg = cfg};
    uint64_t t0 = zp_mono_us();
    int rc = 3;
    if (s_init_state(&v) < 0)
        goto fail_state;
    if (s_init_sockets(&v) < 0)
        goto fail_sockets;
    s_log_start(&v);
    if (v.file_job)
        zp_vent_shell_send_open(&v, v.file_job, zp_mono_us());
    /* Before any JobOpen: the answer frees what the sink committed while
     * this ventilator was down, before its jobs dispatch again. */
    if (zp_vent_tasks_size(v.tasks) && !v.file_job) {
        v.resumed_us = t0;
        zp_vent_shell_query_commits(&v, false);
    }
    s_run(&v);
    rc = s_exit_code(&v);
    s_log_stop(&v);
fail_sockets:
    s_close_sockets(&v);
fail_state:
    s_teardown(&v);
    return rc;
}
