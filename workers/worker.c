/* worker: the zpipe worker daemon's shell: it owns the sockets, wires the
 * state modules (wk_credit, wk_results, wk_runner, wk_exec) together and
 * runs the loop; the modules decide, the shell sends (wk_shell_send.c). */
#define _GNU_SOURCE
#include "wk_metrics.h"
#include "wk_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_DRAIN_US 3000000u /* time a stopping worker gives its batch */
/* Time the bye gets to reach the wire when the ventilator is connected:
 * ample for a live link (the I/O thread hands it to the kernel well under
 * a millisecond after the close), and short, because "connected" can be
 * out of date: zpipe run stops its ventilator before its workers, and a
 * worker that handled its SIGTERM before its monitor said the ventilator
 * was gone waited the whole linger (50 ms, in 3 one-line runs of 80,
 * a run of 13 ms taking 63). */
#define S_BYE_LINGER_MS 10

/* ---- from the ventilator ------------------------------------------------- */

static void s_run_here(zp_wk_shell_t *w, const Zpipe__V1__TaskBatch *b)
{
    const zp_wk_hooks_t hooks = {zp_wk_shell_flush_hook, zp_wk_shell_task_done,
                                 w};
    zp_wk_runner_run_batch(w->runner, w->pending, b, NULL, &hooks);
    zp_wk_shell_flush_results(w);
    zp_wk_shell_grant(w);
}

static void s_note_received(zp_wk_shell_t *w, size_t n)
{
    zp_wk_arrival_t a = zp_wk_credit_received(&w->credit, n, w->credit_mode);
    if (a.new_max && w->exec)
        zp_wk_exec_note_max_held(w->exec, a.held);
    if (a.over)
        zp_error("ventilator sent %llu tasks beyond the window of %llu",
                 (unsigned long long)a.over,
                 (unsigned long long)w->cfg->window);
}

static void s_queue_batch(zp_wk_shell_t *w, zp_wk_batch_t *b, size_t n)
{
    b->n = n;
    if (zp_wk_exec_enqueue(w->exec, b) < 0)
        zp_error("out of memory queueing a batch of %zu tasks", n);
}

/* A message that is not a batch on the fast path. */
static void s_handle_message(zp_wk_shell_t *w, zp_wk_batch_t *batch)
{
    zmq_msg_t *frame = &batch->head;
    zp_arena_reset(w->arena);
    zp_message_t *m = zp_decode(w->arena, zmq_msg_data(frame),
                                zmq_msg_size(frame), w->cfg->max_frame);
    if (!m) {
        w->bad_messages++;
        zp_warn("dropped a malformed %zu-byte frame from %s (%llu so far)",
                zmq_msg_size(frame), w->cfg->ventilator,
                (unsigned long long)w->bad_messages);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH) {
        s_note_received(w, m->task_batch->n_tasks);
        if (!w->isolated)
            s_run_here(w, m->task_batch);
        else
            s_queue_batch(w, batch, m->task_batch->n_tasks);
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HEARTBEAT)
        ; /* ventilator is alive */
    else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_BYE && w->credit_mode &&
             m->bye->reason && !strncmp(m->bye->reason, "wrong cluster", 13)) {
        /* Pointed at another cluster's ventilator: a mistake to fix, not
         * to retry. */
        zp_error("ventilator %s refused this worker: %s", w->cfg->ventilator,
                 m->bye->reason);
        w->fatal = true;
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_BYE && w->credit_mode) {
        /* The ventilator forgot us (we were silent too long, or it
         * restarted): introduce ourselves again with fresh credit. Or it
         * drained and refuses us (our leases kept expiring): it answers
         * the hello when it takes us back. */
        const char *why = m->bye->reason ? m->bye->reason : "";
        if (strncmp(why, "quarantined", 11) == 0)
            zp_warn("ventilator %s refuses this worker: %s", w->cfg->ventilator,
                    why);
        else
            zp_warn("ventilator %s does not know this worker (%s); saying "
                    "hello again",
                    w->cfg->ventilator, why);
        zp_wk_shell_send_hello(w);
    } else {
        w->bad_messages++;
        zp_warn("dropped an unexpected %s message from %s", zp_kind_name(m),
                w->cfg->ventilator);
    }
}

/* A batch whose big payloads came as frames of their own: each task
 * naming one gets it (a batch that names them wrongly is dropped and
 * counted), then it is queued for the executor as it came, or run here. */
static void s_handle_parts(zp_wk_shell_t *w, zp_wk_batch_t *b)
{
    zmq_msg_t *frame = &b->head;
    if (zp_view_task_batch(&w->view, zmq_msg_data(frame), zmq_msg_size(frame),
                           w->cfg->max_frame) < 0 ||
        !zp_wk_batch_attach(b, &w->view.batch)) {
        w->bad_messages++;
        zp_warn("dropped a %zu-frame message from %s: not a task batch and "
                "its payloads (%llu bad messages so far)",
                b->n_parts + 1, w->cfg->ventilator,
                (unsigned long long)w->bad_messages);
        return;
    }
    s_note_received(w, w->view.batch.n_tasks);
    if (w->isolated)
        s_queue_batch(w, b, w->view.batch.n_tasks);
    else
        s_run_here(w, &w->view.batch);
}

static void s_handle_frame(zp_wk_shell_t *w, zp_wk_batch_t *b)
{
    zmq_msg_t *frame = &b->head;
    size_t n;
    if (b->n_parts) {
        s_handle_parts(w, b);
        return;
    }
    if (w->isolated &&
        zp_scan_task_batch(zmq_msg_data(frame), zmq_msg_size(frame),
                           w->cfg->max_frame, &n, &b->min_deadline_ms,
                           &b->some_without) == 0) {
        /* The executor decodes it; this process only counts it (and
         * notes its deadlines, in the same pass). */
        b->deadlines_known = true;
        s_note_received(w, n);
        s_queue_batch(w, b, n);
        return;
    }
    if (!w->isolated &&
        zp_view_task_batch(&w->view, zmq_msg_data(frame), zmq_msg_size(frame),
                           w->cfg->max_frame) == 0) {
        s_note_received(w, w->view.batch.n_tasks);
        s_run_here(w, &w->view.batch);
        return;
    }
    s_handle_message(w, b);
}

/* Renders the snapshot served at /metrics. */
static void s_metrics_render(zp_wk_shell_t *w, uint64_t now)
{
    zp_wk_stats_t st = {
        .completed = w->credit.completed,
        .restarts = w->exec ? zp_wk_exec_restarts(w->exec) : 0,
        .refused_appends = zp_wk_runner_refused() +
                           (w->exec ? zp_wk_exec_refused_appends(w->exec) : 0),
        .violations = w->credit.violations,
        .bad_messages = w->bad_messages,
        .held = zp_wk_credit_held(&w->credit),
        .call_hist = &w->call_hist,
    };
    zp_wk_metrics_render(w->metrics, &st, now);
}

/* ---- set-up and teardown ------------------------------------------------- */

static int s_start_executor(zp_wk_shell_t *w, const char *const *files,
                            size_t n);

/* The id, the plugins, the metrics endpoint and the executor. 0 or -1. */
static int s_init_state(zp_wk_shell_t *w)
{
    const zp_worker_config_t *cfg = w->cfg;
    w->credit_mode = strcmp(cfg->dispatch, "push") != 0;
    w->isolated = strcmp(cfg->isolation, "none") != 0;
    zp_wk_credit_init(&w->credit, cfg->window, cfg->target_ms);
    w->id = cfg->id ? strdup(cfg->id) : NULL;
    if (!w->id) {
        char host[64] = "w";
        gethostname(host, sizeof host - 1);
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%s-%d-", host, (int)getpid());
        w->id = zp_random_id(prefix, 3);
    }
    w->arena = zp_arena_new();
    w->pending = zp_wk_results_new();
    w->runner = w->id ? zp_wk_runner_new(cfg, w->id) : NULL;
    if (!w->id || !w->arena || !w->pending || !w->runner)
        return -1;
    /* With isolation, the executor starts first when its files are known
     * without loading them: its interpreter or model starts while this
     * process loads its own copy. */
    if (w->isolated) {
        size_t n;
        char **files = zp_wk_runner_locate(w->runner, &n);
        int rc = files ? s_start_executor(w, (const char *const *)files, n) : 0;
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        free(files);
        if (rc < 0)
            return -1;
    }
    /* Loaded here too, to check them and to announce their names; with
     * isolation they run only in executors, so only those initialise them
     * (a plugin's interpreter or model is not started in a process that
     * never runs a task; an executor that cannot initialise them stops
     * the worker, see wk_exec_take.c). */
    if (w->isolated)
        zp_plugins_skip_init(zp_wk_runner_plugins(w->runner));
    if (zp_wk_runner_load(w->runner, true) < 0) {
        zp_wk_exec_abandon(w->exec); /* its refusal would say it again */
        return -1;
    }
    if (cfg->metrics && *cfg->metrics) {
        char err[512];
        w->metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!w->metrics) {
            zp_error("worker %s: %s", w->id, err);
            return -1;
        }
    }
    if (!w->isolated || w->exec)
        return 0;
    zp_plugins_t *set = zp_wk_runner_plugins(w->runner);
    const char *files[256];
    size_t n = 0;
    for (; n < zp_plugins_count(set) && n < 256; n++)
        files[n] = zp_plugins_at(set, n)->path;
    return s_start_executor(w, files, n);
}

/* The executor's supervisor, and its first executor, loading the n
 * plugin files. 0 or -1. */
static int s_start_executor(zp_wk_shell_t *w, const char *const *files,
                            size_t n)
{
    zp_wk_exec_env_t env = {
        .results = w->pending,
        .credit = &w->credit,
        .forward = zp_wk_shell_forward,
        .flush = zp_wk_shell_flush_hook,
        .observe = zp_wk_shell_observe,
        .grant = zp_wk_shell_grant,
        .arg = w,
    };
    w->exec = zp_wk_exec_new(w->cfg, w->id, files, n, w->credit_mode, &env);
    if (!w->exec || zp_wk_exec_start(w->exec) < 0)
        return -1;
    return 0;
}

/* Options of the tasks socket, then its connection. 0 or -1. */
static int s_connect_tasks(zp_wk_shell_t *w, const char *vent_key)
{
    const zp_worker_config_t *cfg = w->cfg;
    zp_fast_reconnect(w->tasks);
    int linger = ZP_LINGER_MS;
    zmq_setsockopt(w->tasks, ZMQ_LINGER, &linger, sizeof linger);
    int64_t cap = (int64_t)cfg->max_frame + 4096;
    zmq_setsockopt(w->tasks, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    if (w->credit_mode)
        zmq_setsockopt(w->tasks, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    else {
        /* Push dispatch: take little so others get a share. */
        int hwm = 2;
        zmq_setsockopt(w->tasks, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    if (zp_curve_apply(w->curve, w->tasks, cfg->ventilator, false, vent_key) <
        0)
        return -1;
    /* A restarted ventilator knows no worker: say hello on every
     * reconnect rather than wait for the next heartbeat's "unknown".
     * Watched before the connect, so the first connect is never missed
     * (and a reconnect never taken for it). */
    if (w->credit_mode &&
        !(w->monitor = zp_curve_monitor(
              w->curve, w->tasks, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED,
              "ventilator")))
        return -1;
    if (zmq_connect(w->tasks, cfg->ventilator) != 0) {
        zp_error("connect %s: %s", cfg->ventilator, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* The context, CURVE, both sockets, and the hello. 0 or -1. */
static int s_init_sockets(zp_wk_shell_t *w)
{
    const zp_worker_config_t *cfg = w->cfg;
    w->ctx = zmq_ctx_new();
    if (!w->ctx)
        return -1;
    char vent_key[ZP_CURVE_KEY_LEN + 1], sink_key[ZP_CURVE_KEY_LEN + 1];
    char err[1024];
    w->curve = zp_curve_new(w->ctx, &cfg->curve, err, sizeof err);
    if (!w->curve ||
        zp_curve_peer_key(w->curve, "ventilator-key", cfg->ventilator_key,
                          vent_key, err, sizeof err) < 0 ||
        zp_curve_peer_key(w->curve, "sink-key", cfg->sink_key, sink_key, err,
                          sizeof err) < 0) {
        zp_error("worker: %s", err);
        return -1;
    }
    w->results =
        zp_socket(w->ctx, ZMQ_PUSH, cfg->sink, false, 0, w->curve, sink_key);
    if (!w->results)
        return -1;
    w->tasks = zmq_socket(w->ctx, w->credit_mode ? ZMQ_DEALER : ZMQ_PULL);
    if (!w->tasks || s_connect_tasks(w, vent_key) < 0)
        return -1;
    zp_info(
        "worker %s connected to %s (%s dispatch, window %llu, %s) and %s",
        w->id, cfg->ventilator, cfg->dispatch, (unsigned long long)cfg->window,
        w->isolated ? "plugins in an executor process" : "plugins in process",
        cfg->sink);
    if (w->credit_mode && zp_wk_shell_send_hello(w) < 0)
        return -1;
    return 0;
}

/* Takes the monitor's events: whether the ventilator is connected, and
 * how many times it connected. */
static int s_take_link_events(zp_wk_shell_t *w)
{
    int connects = 0;
    for (int ev; w->monitor && (ev = zp_monitor_next(w->monitor)) != 0;) {
        if (ev == ZMQ_EVENT_CONNECTED)
            connects++;
        w->vent_up = ev == ZMQ_EVENT_CONNECTED;
    }
    return connects;
}

/* Last results, a bye, the summary line. The bye goes only to a
 * ventilator still connected: one that is gone (zpipe run's, once the
 * job is done) would never take it, and it would hold the context's
 * close for its whole linger. */
static void s_finish(zp_wk_shell_t *w)
{
    zp_wk_shell_flush_results(w);
    s_take_link_events(w);
    if (w->credit_mode && w->vent_up) {
        Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
        bye.reason = w->fatal ? "cannot run plugins" : "stopping";
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
        m.bye = &bye;
        zp_send(w->tasks, NULL, 0, &m, &w->scratch, ZMQ_DONTWAIT);
    }
    zp_info("worker %s stopping: %llu tasks done, window %llu, max held %llu, "
            "window violations %llu, bad messages %llu, executor restarts "
            "%llu",
            w->id, (unsigned long long)w->credit.completed,
            (unsigned long long)w->cfg->window,
            (unsigned long long)w->credit.max_held,
            (unsigned long long)w->credit.violations,
            (unsigned long long)w->bad_messages,
            (unsigned long long)(w->exec ? zp_wk_exec_restarts(w->exec) : 0));
}

static void s_close_sockets(zp_wk_shell_t *w)
{
    zp_monitor_close(w->tasks, &w->monitor);
    if (w->tasks) {
        /* The bye is best effort: a short linger lets it reach the wire
         * (with none it was mostly dropped, and the ventilator took a
         * worker that said bye for dead) but never waits long on a
         * ventilator that goes meanwhile. None when it is gone already:
         * nothing queued here would reach it. The results socket keeps
         * its linger: those go to the sink. */
        int linger = w->vent_up ? S_BYE_LINGER_MS : 0;
        zmq_setsockopt(w->tasks, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(w->tasks);
    }
    if (w->results)
        zmq_close(w->results);
    zp_curve_destroy(&w->curve);
    if (w->ctx)
        zmq_ctx_term(w->ctx);
}

static void s_free_state(zp_wk_shell_t *w)
{
    zp_wk_exec_destroy(&w->exec);
    zp_metrics_destroy(&w->metrics);
    zp_wk_runner_destroy(&w->runner);
    zp_wk_results_destroy(&w->pending);
    zp_arena_destroy(&w->arena);
    zp_task_view_free(&w->view);
    zp_buf_free(&w->scratch);
    free(w->id);
}

/* ---- the loop's phases --------------------------------------------------- */

/* Stopping: finish the running batch (briefly), take nothing new. True
 * when the loop should end. */
static bool s_phase_stop(zp_wk_shell_t *w)
{
    if (!zp_stopping())
        return false;
    if (!w->drain_until)
        w->drain_until = zp_mono_us() + S_DRAIN_US;
    return !w->exec || !zp_wk_exec_busy(w->exec) ||
           zp_mono_us() > w->drain_until;
}

/* Waits for the sockets; items[0] the tasks, items[1] the executor,
 * items[2] the monitor. Only what is there and asked for is polled (an
 * item with no events still reports POLLHUP, and a NULL socket is the
 * descriptor in .fd); the others get no revents. Returns what zmq_poll
 * did. */
static int s_phase_poll(zp_wk_shell_t *w, zmq_pollitem_t items[3])
{
    int fd = w->exec ? zp_wk_exec_fd(w->exec) : -1;
    items[0] = (zmq_pollitem_t){w->tasks, 0, ZMQ_POLLIN, 0};
    items[1] = (zmq_pollitem_t){
        NULL, fd,
        (short)(ZMQ_POLLIN |
                (fd >= 0 && zp_wk_exec_wants_write(w->exec) ? ZMQ_POLLOUT : 0)),
        0};
    items[2] = (zmq_pollitem_t){w->monitor, 0,
                                (short)(w->monitor ? ZMQ_POLLIN : 0), 0};
    /* Asleep until something is due: a heartbeat, a metrics snapshot,
     * the end of a drain, or the executor's deadline or stall check (not
     * every few milliseconds while it works: 32 workers on 2 cores would
     * spend the cores waking). */
    uint64_t now = zp_mono_us();
    uint64_t due = now + (w->cfg->heartbeat_ms / 2 + 1) * 1000;
    /* The heartbeat counts from the last message sent, not from this
     * poll: a wake-up in between (this half interval, a deadline check)
     * would send it up to half an interval late, 1.5 s after the last
     * one at the default 1 s (seen: test_crash's 1.5 s timeout, under
     * load). */
    if (w->credit_mode) {
        uint64_t beat =
            zp_wk_heartbeat_due_us(w->last_sent_us, w->cfg->heartbeat_ms, now);
        if (beat < due)
            due = beat;
    }
    if (w->metrics && due > now + 250000)
        due = now + 250000;
    if (w->exec) {
        uint64_t exec_due = zp_wk_exec_next_due_us(w->exec, now);
        if (exec_due < due)
            due = exec_due;
    }
    if (w->drain_until) {
        items[0].events = 0;
        if (w->drain_until + 1 < due)
            due = w->drain_until + 1;
    }
    long timeout = due <= now ? 0 : (long)((due - now + 999) / 1000);
    return zp_poll_asked(items, 3, timeout);
}

/* Payload frames a batch may come with at most (Task.payload_frame). */
#define S_MAX_PARTS 65536

/* Takes what the ventilator queued (up to 64 messages). */
static void s_phase_tasks(zp_wk_shell_t *w, const zmq_pollitem_t *item)
{
    if (!(item->revents & ZMQ_POLLIN))
        return;
    for (int k = 0; k < 64; k++) {
        zp_wk_batch_t b;
        zp_wk_batch_init(&b);
        int r = zp_recv_parts(w->tasks, &b.head, &b.parts, &b.n_parts,
                              S_MAX_PARTS, ZMQ_DONTWAIT);
        if (r > 0) {
            w->bad_messages++;
            zp_warn("dropped a message of more than %d frames from %s",
                    S_MAX_PARTS + 1, w->cfg->ventilator);
        } else if (r == 0)
            s_handle_frame(w, &b);
        zp_wk_batch_close(&b);
        if (r < 0 && errno != ENOMEM)
            break;
    }
}

/* The tasks socket connected again (not the first time): hello. */
static void s_phase_reconnect(zp_wk_shell_t *w, const zmq_pollitem_t *item)
{
    if (!(item->revents & ZMQ_POLLIN))
        return;
    int n = s_take_link_events(w);
    if (n > 0 && (w->connected_once || n > 1))
        zp_wk_shell_send_hello(w);
    if (n > 0)
        w->connected_once = true;
}

/* Executor I/O, its deadline, and feeding it (not while draining). */
static void s_phase_executor(zp_wk_shell_t *w, const zmq_pollitem_t *item)
{
    if (!w->exec)
        return;
    /* Before its death is read: a signal to the whole job reaches the
     * executor too, and is then no crash of its task. */
    if (zp_stopping())
        zp_wk_exec_stop_soon(w->exec);
    if (item->revents & ZMQ_POLLOUT)
        zp_wk_exec_on_writable(w->exec);
    if ((item->revents & (ZMQ_POLLIN | ZMQ_POLLERR)) &&
        zp_wk_exec_on_readable(w->exec) < 0) {
        w->fatal = true;
        return;
    }
    if (zp_wk_exec_fd(w->exec) >= 0 &&
        zp_wk_exec_tick(w->exec, !w->drain_until) < 0)
        w->fatal = true;
}

static void s_phase_credit(zp_wk_shell_t *w)
{
    if (!w->credit_mode)
        return;
    zp_wk_shell_grant(w);
    if (zp_mono_us() - w->last_sent_us >= w->cfg->heartbeat_ms * 1000)
        zp_wk_shell_send_heartbeat(w);
}

static void s_phase_metrics(zp_wk_shell_t *w)
{
    if (!w->metrics)
        return;
    uint64_t now = zp_mono_us();
    if (zp_metrics_due(w->metrics, now))
        s_metrics_render(w, now);
}

int zp_worker_run(const zp_worker_config_t *cfg)
{
    zp_wk_shell_t w = {.cfg = cfg};
    int rc = 3;
    if (s_init_state(&w) < 0 || s_init_sockets(&w) < 0)
        goto fail_init;
    while (!w.fatal && !s_phase_stop(&w)) {
        zmq_pollitem_t items[3];
        if (s_phase_poll(&w, items) < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        s_phase_tasks(&w, &items[0]);
        s_phase_reconnect(&w, &items[2]);
        s_phase_executor(&w, &items[1]);
        if (w.fatal)
            break;
        s_phase_credit(&w);
        s_phase_metrics(&w);
    }
    s_finish(&w);
    rc = w.fatal ? 3 : 0;

fail_init:
    s_close_sockets(&w);
    s_free_state(&w);
    return rc;
}
