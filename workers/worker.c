/* worker: runs plugin calls on task batches and returns result batches. */
#define _GNU_SOURCE
#include "worker.h"
#include "zp_codec.h"
#include "zp_log.h"
#include "zp_net.h"
#include "zp_plugin.h"
#include "zp_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_ERROR   4096
#define S_FLUSH_BYTES (1u << 20)
#define S_FLUSH_US    20000u
#define S_MIN_CREDIT  2u

/* One finished task waiting to be sent; output and error live in the
 * worker's shared buffers at these offsets. */
typedef struct {
    uint64_t task_id;
    uint32_t attempt;
    int status;
    const char *cause;
    size_t out_off, out_len;
    size_t err_off, err_len;
    uint64_t start_us, elapsed_us;
} s_done_t;

typedef struct {
    const zp_worker_config_t *cfg;
    char *id;
    void *ctx, *tasks, *results;
    bool credit_mode;
    zp_plugins_t *plugins;
    zpipe_host_t host;
    zp_arena_t *arena;
    zp_buf_t scratch;

    /* Current call's output. */
    zp_buf_t out, err;
    bool out_overflow;
    size_t call_out_off;

    /* Results not yet sent, all of one job. */
    s_done_t *done;
    size_t n_done, cap_done;
    char *done_job;
    uint64_t first_done_us;
    Zpipe__V1__Result *pb_results;
    Zpipe__V1__Result **pb_ptrs;
    size_t cap_pb;

    /* Credit accounting (tasks). granted - completed is what the
     * ventilator may have sent us and we have not finished. */
    uint64_t granted, received, completed;
    uint64_t max_held;
    uint64_t violations;
    double ewma_task_us, ewma_bytes;
    uint64_t target;
    uint64_t last_sent_us;
    uint64_t bad_messages;
} s_worker_t;

/* The host table's callbacks reach the worker through host_private. */
static int s_host_append(zpipe_call_t *call, const void *data, size_t len)
{
    s_worker_t *w = call->host_private;
    if (w->out_overflow ||
        w->out.len - w->call_out_off + len > w->cfg->max_output) {
        w->out_overflow = true;
        return -1;
    }
    return zp_buf_append(&w->out, data, len);
}

static void s_host_set_error(zpipe_call_t *call, const char *message)
{
    s_worker_t *w = call->host_private;
    size_t n = strnlen(message ? message : "", S_MAX_ERROR);
    w->err.len = 0;
    zp_buf_append(&w->err, message ? message : "", n);
}

static void s_host_log(int level, const char *plugin, const char *message)
{
    zp_log_level_t l = level <= ZPIPE_LOG_ERROR  ? ZP_LOG_ERROR
                       : level == ZPIPE_LOG_WARN ? ZP_LOG_WARN
                       : level == ZPIPE_LOG_INFO ? ZP_LOG_INFO
                                                 : ZP_LOG_DEBUG;
    zp_log(l, "plugin %s: %s", plugin ? plugin : "?", message ? message : "");
}

static void s_host_init(zpipe_host_t *host)
{
    memset(host, 0, sizeof *host);
    host->struct_size = sizeof *host;
    host->abi_major = ZPIPE_ABI_MAJOR;
    host->abi_minor = ZPIPE_ABI_MINOR;
    host->append = s_host_append;
    host->set_error = s_host_set_error;
    host->log = s_host_log;
}

static int s_load_plugins(s_worker_t *w)
{
    if (w->cfg->plugins.count == 0) {
        zp_error("no plugin given (--plugin NAME or path)");
        return -1;
    }
    for (size_t i = 0; i < w->cfg->plugins.count; i++) {
        char err[1024];
        if (!zp_plugins_load(w->plugins, w->cfg->plugins.items[i], err,
                             sizeof err)) {
            zp_error("plugin refused: %s", err);
            return -1;
        }
    }
    return 0;
}

int zp_worker_describe(const zp_worker_config_t *cfg)
{
    s_worker_t w = {.cfg = cfg};
    s_host_init(&w.host);
    w.plugins = zp_plugins_new(&w.host);
    int rc = 3;
    if (w.plugins && s_load_plugins(&w) == 0) {
        for (size_t i = 0; i < zp_plugins_count(w.plugins); i++) {
            const zp_plugin_t *p = zp_plugins_at(w.plugins, i);
            printf("%s\t%s\t%u.%u\t%s\t%s\n", p->desc.name,
                   p->desc.version ? p->desc.version : "", p->desc.abi_major,
                   p->desc.abi_minor, p->path,
                   p->desc.description ? p->desc.description : "");
        }
        rc = 0;
    }
    zp_plugins_destroy(&w.plugins);
    return rc;
}

static int s_send_credit(s_worker_t *w, uint64_t n)
{
    Zpipe__V1__Credit c = ZPIPE__V1__CREDIT__INIT;
    c.credit = (uint32_t)n;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_CREDIT;
    m.credit = &c;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, 0) < 0) {
        zp_warn("credit to %s: %s", w->cfg->ventilator, zmq_strerror(errno));
        return -1;
    }
    w->granted += n;
    w->last_sent_us = zp_mono_us();
    return 0;
}

static int s_send_hello(s_worker_t *w)
{
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    size_t n = zp_plugins_count(w->plugins);
    char *names[64];
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        names[i] = (char *)zp_plugins_at(w->plugins, i)->desc.name;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    h.worker_id = w->id;
    h.plugins = names;
    h.n_plugins = n;
    h.window = (uint32_t)w->cfg->window;
    uint64_t held = w->received - w->completed;
    h.credit = (uint32_t)(w->target > held ? w->target - held : 0);
    h.host = host;
    h.pid = (uint32_t)getpid();
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HELLO;
    m.hello = &h;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, 0) < 0) {
        zp_error("hello to %s: %s", w->cfg->ventilator, zmq_strerror(errno));
        return -1;
    }
    /* Outstanding = what we hold plus this grant, never above target. */
    w->granted = w->received + h.credit;
    w->last_sent_us = zp_mono_us();
    return 0;
}

static void s_send_heartbeat(s_worker_t *w)
{
    Zpipe__V1__Heartbeat hb = ZPIPE__V1__HEARTBEAT__INIT;
    hb.tasks_done = w->completed;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    if (zp_send(w->tasks, NULL, 0, &m, &w->scratch, ZMQ_DONTWAIT) == 0)
        w->last_sent_us = zp_mono_us();
}

/* Sends the pending results as one ResultBatch. */
static int s_flush_results(s_worker_t *w)
{
    if (w->n_done == 0)
        return 0;
    if (w->cap_pb < w->n_done) {
        free(w->pb_results);
        free(w->pb_ptrs);
        w->pb_results = malloc(w->n_done * sizeof *w->pb_results);
        w->pb_ptrs = malloc(w->n_done * sizeof *w->pb_ptrs);
        if (!w->pb_results || !w->pb_ptrs) {
            zp_error("out of memory sending %zu results", w->n_done);
            w->cap_pb = 0;
            return -1;
        }
        w->cap_pb = w->n_done;
    }
    for (size_t i = 0; i < w->n_done; i++) {
        s_done_t *d = &w->done[i];
        Zpipe__V1__Result *r = &w->pb_results[i];
        zpipe__v1__result__init(r);
        r->task_id = d->task_id;
        r->attempt = d->attempt;
        r->status = d->status == ZPIPE_OK ? ZPIPE__V1__STATUS__STATUS_OK
                                          : ZPIPE__V1__STATUS__STATUS_FAILED;
        r->output.data = (uint8_t *)w->out.data + d->out_off;
        r->output.len = d->out_len;
        if (d->status != ZPIPE_OK) {
            r->error = w->err.data + d->err_off;
            r->cause = (char *)d->cause;
            r->retryable = ZPIPE_STATUS_IS_RETRYABLE(d->status);
        }
        r->start_us = d->start_us;
        r->elapsed_us = d->elapsed_us;
        w->pb_ptrs[i] = r;
    }
    Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
    rb.job_id = w->done_job;
    rb.worker_id = w->id;
    rb.results = w->pb_ptrs;
    rb.n_results = w->n_done;
    rb.window = w->credit_mode ? (uint32_t)w->cfg->window : 0;
    rb.max_held = (uint32_t)w->max_held;
    rb.tasks_done = w->completed;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    int rc = 0;
    while (zp_send(w->results, NULL, 0, &m, &w->scratch, 0) < 0) {
        if (errno == EINTR && !zp_stopping())
            continue;
        zp_error("results to %s: %s (%zu results not sent)", w->cfg->sink,
                 zmq_strerror(errno), w->n_done);
        rc = -1;
        break;
    }
    w->n_done = 0;
    w->out.len = 0;
    w->err.len = 0;
    return rc;
}

/* Grants credit so that granted - completed tracks the adaptive target. */
static void s_maybe_grant(s_worker_t *w)
{
    if (!w->credit_mode)
        return;
    uint64_t outstanding = w->granted - w->completed;
    if (outstanding >= w->target)
        return;
    uint64_t deficit = w->target - outstanding;
    uint64_t threshold = w->target / 4 ? w->target / 4 : 1;
    /* Always top up when nothing is outstanding, or we would idle. */
    if (deficit >= threshold || outstanding == 0)
        s_send_credit(w, deficit);
}

/* Re-sizes the target from what tasks cost: enough for target_ms of work,
 * at least S_MIN_CREDIT (to overlap a round trip), at most the window, and
 * no more than about 64 MiB of payload. */
static void s_adapt(s_worker_t *w, uint64_t elapsed_us, size_t bytes)
{
    const double a = 0.05;
    if (w->ewma_task_us == 0) {
        w->ewma_task_us = (double)elapsed_us + 0.5;
        w->ewma_bytes = (double)bytes + 1;
    } else {
        w->ewma_task_us =
            (1 - a) * w->ewma_task_us + a * ((double)elapsed_us + 0.5);
        w->ewma_bytes = (1 - a) * w->ewma_bytes + a * ((double)bytes + 1);
    }
    double t = (double)w->cfg->target_ms * 1000.0 / w->ewma_task_us;
    double by_bytes = 64.0 * 1024 * 1024 / w->ewma_bytes;
    if (t > by_bytes)
        t = by_bytes;
    uint64_t target = t < S_MIN_CREDIT ? S_MIN_CREDIT : (uint64_t)t;
    if (target > w->cfg->window)
        target = w->cfg->window;
    w->target = target;
}

static int s_done_push(s_worker_t *w)
{
    if (w->n_done == w->cap_done) {
        size_t cap = w->cap_done ? 2 * w->cap_done : 256;
        s_done_t *d = realloc(w->done, cap * sizeof *d);
        if (!d)
            return -1;
        w->done = d;
        w->cap_done = cap;
    }
    w->n_done++;
    return 0;
}

static void s_run_task(s_worker_t *w, const zp_plugin_t *plugin,
                       const char *plugin_name, const char *job_id,
                       const Zpipe__V1__Task *t)
{
    if (s_done_push(w) < 0) {
        zp_error("out of memory holding results; task %s/%llu dropped", job_id,
                 (unsigned long long)t->task_id);
        return;
    }
    s_done_t *d = &w->done[w->n_done - 1];
    d->task_id = t->task_id;
    d->attempt = t->attempt ? t->attempt : 1;
    d->out_off = w->out.len;
    d->err_off = w->err.len;
    d->start_us = zp_now_us();
    d->cause = NULL;
    uint64_t t0 = zp_mono_us();

    if (!plugin) {
        char msg[256];
        snprintf(msg, sizeof msg, "worker %s has no plugin '%s'", w->id,
                 plugin_name);
        zp_buf_append(&w->err, msg, strlen(msg));
        d->status = ZPIPE_ERROR;
        d->cause = "no_such_plugin";
    } else {
        /* Error text for this call goes to a side buffer, then is moved
         * behind the previous errors. */
        zp_buf_t saved_err = w->err;
        w->err = (zp_buf_t){0};
        w->out_overflow = false;
        w->call_out_off = w->out.len;
        zpipe_call_t call = {
            .struct_size = sizeof call,
            .host = &w->host,
            .input = t->payload.data,
            .input_len = t->payload.len,
            .task_id = t->task_id,
            .attempt = d->attempt,
            .deadline_ms = t->deadline_ms,
            .job_id = job_id,
            .host_private = w,
        };
        int st = plugin->desc.process(plugin->state, &call);
        zp_buf_t call_err = w->err;
        w->err = saved_err;
        if (st == ZPIPE_OK && w->out_overflow) {
            st = ZPIPE_ERROR;
            zp_buf_free(&call_err);
            zp_buf_printf(&call_err, "output exceeds %llu bytes",
                          (unsigned long long)w->cfg->max_output);
            d->cause = "output_too_large";
        }
        d->status = st;
        if (st != ZPIPE_OK) {
            if (!d->cause)
                d->cause = ZPIPE_STATUS_IS_RETRYABLE(st) ? "plugin_retry"
                                                         : "plugin_error";
            if (call_err.len == 0)
                zp_buf_printf(&call_err, "plugin %s returned status %d",
                              plugin->desc.name, st);
            zp_buf_append(&w->err, call_err.data, call_err.len);
            /* A failed task outputs nothing. */
            w->out.len = d->out_off;
        }
        zp_buf_free(&call_err);
    }
    d->elapsed_us = zp_mono_us() - t0;
    d->out_len = w->out.len - d->out_off;
    d->err_len = w->err.len - d->err_off;
    zp_buf_append(&w->err, "", 1); /* NUL between error texts */
    w->completed++;
    s_adapt(w, d->elapsed_us, t->payload.len);
}

static void s_handle_batch(s_worker_t *w, const Zpipe__V1__TaskBatch *b)
{
    const char *job = b->job_id ? b->job_id : "";
    const char *name = b->plugin ? b->plugin : "";
    if (w->n_done && strcmp(w->done_job, job) != 0)
        s_flush_results(w);
    if (!w->done_job || strcmp(w->done_job, job) != 0) {
        free(w->done_job);
        w->done_job = strdup(job);
    }
    w->received += b->n_tasks;
    uint64_t held = w->received - w->completed;
    if (held > w->max_held)
        w->max_held = held;
    if (w->credit_mode && held > w->cfg->window) {
        w->violations++;
        zp_error("ventilator sent %llu tasks beyond the window of %llu",
                 (unsigned long long)(held - w->cfg->window),
                 (unsigned long long)w->cfg->window);
    }
    const zp_plugin_t *plugin = zp_plugins_find(w->plugins, name);
    if (!plugin)
        zp_warn("job %s: %zu tasks for plugin '%s', which this worker lacks",
                job, b->n_tasks, name);
    for (size_t i = 0; i < b->n_tasks; i++) {
        if (w->n_done == 0)
            w->first_done_us = zp_mono_us();
        s_run_task(w, plugin, name, job, b->tasks[i]);
        if (w->out.len >= S_FLUSH_BYTES ||
            zp_mono_us() - w->first_done_us >= S_FLUSH_US) {
            s_flush_results(w);
            s_maybe_grant(w);
        }
        if (w->credit_mode &&
            zp_mono_us() - w->last_sent_us >= w->cfg->heartbeat_ms * 1000)
            s_send_heartbeat(w);
    }
    s_flush_results(w);
    s_maybe_grant(w);
}

static void s_handle_frame(s_worker_t *w, zmq_msg_t *frame)
{
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
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_TASK_BATCH)
        s_handle_batch(w, m->task_batch);
    else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HEARTBEAT)
        ; /* ventilator is alive */
    else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_BYE && w->credit_mode) {
        /* The ventilator forgot us (we were silent too long, or it
         * restarted): introduce ourselves again with fresh credit. */
        zp_warn(
            "ventilator %s does not know this worker (%s); saying hello again",
            w->cfg->ventilator, m->bye->reason ? m->bye->reason : "");
        s_send_hello(w);
    } else {
        w->bad_messages++;
        zp_warn("dropped an unexpected %s message from %s", zp_kind_name(m),
                w->cfg->ventilator);
    }
}

int zp_worker_run(const zp_worker_config_t *cfg)
{
    s_worker_t w = {.cfg = cfg};
    int rc = 3;
    w.credit_mode = strcmp(cfg->dispatch, "push") != 0;
    s_host_init(&w.host);
    w.target = cfg->window < 8 ? cfg->window : 8;
    if (w.target < 1)
        w.target = 1;

    w.id = cfg->id ? strdup(cfg->id) : NULL;
    if (!w.id) {
        char host[64] = "w";
        gethostname(host, sizeof host - 1);
        char prefix[96];
        snprintf(prefix, sizeof prefix, "%s-%d-", host, (int)getpid());
        w.id = zp_random_id(prefix, 3);
    }
    w.plugins = zp_plugins_new(&w.host);
    w.arena = zp_arena_new();
    if (!w.id || !w.plugins || !w.arena)
        goto fail_alloc;
    if (s_load_plugins(&w) < 0)
        goto fail_alloc;

    w.ctx = zmq_ctx_new();
    if (!w.ctx)
        goto fail_alloc;
    w.results = zp_socket(w.ctx, ZMQ_PUSH, cfg->sink, false, 0);
    if (!w.results)
        goto fail_ctx;
    w.tasks = zmq_socket(w.ctx, w.credit_mode ? ZMQ_DEALER : ZMQ_PULL);
    if (!w.tasks)
        goto fail_ctx;
    {
        int linger = ZP_LINGER_MS;
        zmq_setsockopt(w.tasks, ZMQ_LINGER, &linger, sizeof linger);
        int64_t cap = (int64_t)cfg->max_frame + 4096;
        zmq_setsockopt(w.tasks, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
        if (w.credit_mode)
            zmq_setsockopt(w.tasks, ZMQ_ROUTING_ID, w.id, strlen(w.id));
        else {
            /* Push dispatch: take little so others get a share. */
            int hwm = 2;
            zmq_setsockopt(w.tasks, ZMQ_RCVHWM, &hwm, sizeof hwm);
        }
        if (zmq_connect(w.tasks, cfg->ventilator) != 0) {
            zp_error("connect %s: %s", cfg->ventilator, zmq_strerror(errno));
            goto fail_ctx;
        }
    }
    zp_info("worker %s connected to %s (%s dispatch, window %llu) and %s", w.id,
            cfg->ventilator, cfg->dispatch, (unsigned long long)cfg->window,
            cfg->sink);
    if (w.credit_mode && s_send_hello(&w) < 0)
        goto fail_ctx;

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    while (!zp_stopping()) {
        zmq_pollitem_t items[] = {{w.tasks, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, 1, (long)(cfg->heartbeat_ms / 2 + 1));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            /* Drain what is queued, then grant once. */
            for (int k = 0; k < 64; k++) {
                int r =
                    zp_recv(w.tasks, false, NULL, NULL, &frame, ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r > 0) {
                    w.bad_messages++;
                    zp_warn("dropped a multi-frame message from %s",
                            cfg->ventilator);
                    continue;
                }
                s_handle_frame(&w, &frame);
            }
        }
        if (w.credit_mode) {
            s_maybe_grant(&w);
            if (zp_mono_us() - w.last_sent_us >= cfg->heartbeat_ms * 1000)
                s_send_heartbeat(&w);
        }
    }
    zmq_msg_close(&frame);
    s_flush_results(&w);
    if (w.credit_mode) {
        Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
        bye.reason = "stopping";
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
        m.bye = &bye;
        zp_send(w.tasks, NULL, 0, &m, &w.scratch, ZMQ_DONTWAIT);
    }
    zp_info("worker %s stopping: %llu tasks done, window %llu, max held %llu, "
            "window violations %llu, bad messages %llu",
            w.id, (unsigned long long)w.completed,
            (unsigned long long)cfg->window, (unsigned long long)w.max_held,
            (unsigned long long)w.violations,
            (unsigned long long)w.bad_messages);
    rc = 0;

fail_ctx:
    if (w.tasks) {
        /* The bye is best effort: never wait on a ventilator that is gone. */
        int zero = 0;
        zmq_setsockopt(w.tasks, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(w.tasks);
    }
    if (w.results)
        zmq_close(w.results);
    zmq_ctx_term(w.ctx);
fail_alloc:
    zp_plugins_destroy(&w.plugins);
    zp_arena_destroy(&w.arena);
    zp_buf_free(&w.scratch);
    zp_buf_free(&w.out);
    zp_buf_free(&w.err);
    free(w.done);
    free(w.done_job);
    free(w.pb_results);
    free(w.pb_ptrs);
    free(w.id);
    return rc;
}
