/* worker: runs plugin calls on task batches and returns result batches,
 * in process or through a supervised executor process. */
#define _GNU_SOURCE
#include "worker.h"
#include "zp_codec.h"
#include "zp_log.h"
#include "zp_metrics.h"
#include "zp_net.h"
#include "zp_plugin.h"
#include "zp_spawn.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_ERROR       4096
#define S_FLUSH_BYTES     (1u << 20)
#define S_FLUSH_US        20000u
#define S_MIN_CREDIT      2u
#define S_POISON_LIMIT    3u  /* executor kills before a task is quarantined */
#define S_EXEC_FD         3   /* executor side of the socket pair */
#define S_SHM_FD          4   /* executor progress page */
#define S_MAX_START_FAILS 3   /* executors dying before ready, in a row */
#define S_EXEC_ARGS       520 /* executor argv: 256 plugins and dirs */
#define S_DRAIN_US        3000000u /* time a stopping worker gives its batch */

/* Progress the executor publishes before and after each plugin call. */
typedef struct {
    _Atomic uint64_t busy;        /* 1 while a plugin call runs */
    _Atomic uint64_t index;       /* position of that task in the batch */
    _Atomic uint64_t start_us;    /* monotonic clock when it began */
    _Atomic uint64_t vm_bytes;    /* address space in use when it crashed */
    _Atomic uint64_t deadline_ms; /* the running task's own deadline, or 0 */
    _Atomic uint64_t seq;         /* frames taken; the last is running */
    /* Written by the worker for the executor's result batches, which go
     * to the sink as they are: */
    _Atomic uint64_t window, max_held, completed;
} s_progress_t;

/* One finished task waiting to be sent; output and error live in the
 * worker's shared buffers at these offsets. */
typedef struct {
    uint64_t task_id;
    uint32_t attempt;
    int status;
    bool retryable;
    bool quarantined; /* a poison task, given up for good */
    const char *cause;
    size_t out_off, out_len;
    size_t err_off, err_len;
    uint64_t start_us, elapsed_us;
    uint64_t queued_us, dispatch_us; /* echoed for traced tasks, else 0 */
} s_done_t;

/* A task batch waiting for the executor, with its task count. */
typedef struct {
    zmq_msg_t frame;
    size_t n;
} s_queued_t;

/* The executor process as its worker sees it. */
typedef struct {
    pid_t pid;
    int fd;
    s_progress_t *progress;
    bool ready, busy, killed_for_timeout;
    bool resend;      /* a new executor owes the rest of the batch */
    size_t sent_base; /* cur index of the first task it was sent */
    unsigned start_fails;
    zp_buf_t rbuf; /* bytes read, not yet a whole frame */
    /* Frames for it, written as its socket takes them: a blocking write
     * could wait on an executor itself blocked writing results to us. */
    zp_buf_t wbuf;
    size_t woff;
    /* The batch it is running: the ventilator's frame, decoded into
     * cur_arena only when an executor dies in it (cur is NULL until). */
    zmq_msg_t cur_frame;
    zp_arena_t *cur_arena;
    char *cur_job, *cur_plugin;
    uint64_t cur_dispatch_us; /* the batch's, for traced tasks' results */
    Zpipe__V1__Task **cur;
    size_t cur_n, cur_done, cur_bytes; /* cur_bytes: payload per task */
    /* One more batch written behind it, so the executor goes from batch
     * to batch without waiting for this process to be scheduled. */
    zmq_msg_t next_frame;
    size_t next_n;
    bool has_next;
    uint64_t sent_seq, cur_seq, next_seq; /* frames written to it */
    uint64_t restarts;
} s_exec_t;

typedef struct {
    const zp_worker_config_t *cfg;
    char *id;
    void *ctx, *tasks, *results;
    zp_curve_t *curve;
    bool credit_mode, isolated;
    int out_fd; /* executor child: results go here instead of the sink */
    zp_plugins_t *plugins;
    zpipe_host_t host;
    zp_arena_t *arena;
    zp_task_view_t view; /* in process: batches decoded without copies */
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

    /* Batches received and not yet given to the executor. */
    s_queued_t *queue;
    size_t q_head, q_len, q_cap;
    s_exec_t ex;

    /* Credit accounting (tasks). granted - completed is what the
     * ventilator may have sent us and we have not finished. */
    uint64_t granted, received, completed;
    uint64_t max_held;
    uint64_t violations;
    double ewma_task_us, ewma_bytes;
    uint64_t target;
    uint64_t last_sent_us;
    uint64_t bad_messages;
    zp_metrics_t *metrics;    /* NULL unless --metrics */
    zp_histogram_t call_hist; /* plugin call times, seconds */
    bool fatal;
    bool hit_limit; /* executor: a task ended in resource_limit */
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

/* scan_dirs: also load every plugin in the plugin directories (the worker
 * does; an executor loads exactly the files its worker names). */
static int s_load_plugins(s_worker_t *w, bool scan_dirs)
{
    const zp_strlist_t *dirs = &w->cfg->plugin_dirs;
    char err[1024];
    if (w->cfg->plugins.count == 0 && dirs->count == 0) {
        zp_error("no plugin given (--plugin NAME or path, or --plugin-dir)");
        return -1;
    }
    if (zp_plugins_configure(w->plugins, w->cfg->plugin_config.items,
                             w->cfg->plugin_config.count, err,
                             sizeof err) < 0) {
        zp_error("%s", err);
        return -1;
    }
    if (dirs->count && zp_plugins_restrict(w->plugins, dirs->items, dirs->count,
                                           err, sizeof err) < 0) {
        zp_error("%s", err);
        return -1;
    }
    for (size_t i = 0; i < w->cfg->plugins.count; i++) {
        if (!zp_plugins_load(w->plugins, w->cfg->plugins.items[i], err,
                             sizeof err)) {
            zp_error("plugin refused: %s", err);
            return -1;
        }
    }
    for (size_t i = 0; scan_dirs && i < dirs->count; i++)
        if (zp_plugins_load_dir(w->plugins, dirs->items[i], err, sizeof err) <
            0) {
            zp_error("%s", err);
            return -1;
        }
    if (zp_plugins_count(w->plugins) == 0) {
        zp_error("no usable plugin in %s%s", dirs->items[0],
                 dirs->count > 1 ? " or the other plugin directories" : "");
        return -1;
    }
    return 0;
}

int zp_worker_describe(const zp_worker_config_t *cfg)
{
    s_worker_t w = {.cfg = cfg};
    s_host_init(&w.host);
    w.plugins = zp_plugins_new(&w.host);
    int rc = 3;
    if (w.plugins && s_load_plugins(&w, true) == 0) {
        for (size_t i = 0; i < zp_plugins_count(w.plugins); i++) {
            const zp_plugin_t *p = zp_plugins_at(w.plugins, i);
            printf("%s\t%s\t%u.%u\t%s\t%s\t%s\n", p->desc.name,
                   p->desc.version ? p->desc.version : "", p->desc.abi_major,
                   p->desc.abi_minor, p->path,
                   p->desc.description ? p->desc.description : "",
                   p->desc.reduce ? "reducer" : "");
        }
        rc = 0;
    }
    zp_plugins_destroy(&w.plugins);
    return rc;
}

/* Causes are a closed vocabulary; map a decoded one to our static copy. */
static const char *s_intern_cause(const char *c)
{
    static const char *known[] = {
        "plugin_error", "plugin_retry",   "no_such_plugin", "output_too_large",
        "plugin_init",  "resource_limit", "timeout",        "executor_exit",
        "SIGSEGV",      "SIGABRT",        "SIGBUS",         "SIGFPE",
        "SIGILL",       "SIGKILL",        "SIGTERM",        "SIGSYS",
        "SIGTRAP",      "SIGXCPU",        "SIGXFSZ",
    };
    for (size_t i = 0; c && i < sizeof known / sizeof *known; i++)
        if (strcmp(c, known[i]) == 0)
            return known[i];
    return c && *c ? "plugin_error" : NULL;
}

static const char *s_signal_cause(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGSYS:
        return "SIGSYS";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGXCPU:
        return "SIGXCPU";
    case SIGXFSZ:
        return "SIGXFSZ";
    default:
        return "executor_exit";
    }
}

/* ---- credit ------------------------------------------------------------ */

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

/* Grants credit so that granted - completed tracks the adaptive target. */
static void s_maybe_grant(s_worker_t *w)
{
    if (!w->credit_mode || zp_stopping())
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

/* Re-sizes the target from what tasks cost (n of them, alike): enough for
 * target_ms of work, at least S_MIN_CREDIT (to overlap a round trip), at most
 * the window, and no more than about 64 MiB of payload. */
static void s_adapt(s_worker_t *w, uint64_t elapsed_us, size_t bytes, size_t n)
{
    const double a = 0.05;
    for (size_t i = 0; i < n; i++) /* n tasks that took elapsed_us each */
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

/* ---- results ----------------------------------------------------------- */

static s_done_t *s_done_push(s_worker_t *w, const char *job)
{
    if (w->n_done && strcmp(w->done_job, job) != 0)
        return NULL; /* caller flushes first */
    if (!w->done_job || strcmp(w->done_job, job) != 0) {
        free(w->done_job);
        w->done_job = strdup(job);
        if (!w->done_job)
            return NULL;
    }
    if (w->n_done == w->cap_done) {
        size_t cap = w->cap_done ? 2 * w->cap_done : 256;
        s_done_t *d = realloc(w->done, cap * sizeof *d);
        if (!d)
            return NULL;
        w->done = d;
        w->cap_done = cap;
    }
    if (w->n_done == 0)
        w->first_done_us = zp_mono_us();
    s_done_t *d = &w->done[w->n_done++];
    memset(d, 0, sizeof *d);
    d->out_off = w->out.len;
    d->err_off = w->err.len;
    return d;
}

/* Task timelines: a task the ventilator stamped (queued_us != 0) has its
 * queue and dispatch times carried into its result, so the sink sees the
 * attempt's whole life; an untraced task's result stays as it was. */
static void s_trace_echo(s_done_t *d, const Zpipe__V1__Task *t,
                         uint64_t dispatch_us)
{
    if (t->queued_us) {
        d->queued_us = t->queued_us;
        d->dispatch_us = dispatch_us;
    }
}

/* Closes d: lengths, the NUL after its error text, the counters. */
static void s_done_finish(s_worker_t *w, s_done_t *d, size_t payload_len)
{
    d->out_len = w->out.len - d->out_off;
    d->err_len = w->err.len - d->err_off;
    zp_buf_append(&w->err, "", 1); /* NUL between error texts */
    w->completed++;
    s_adapt(w, d->elapsed_us, payload_len, 1);
    zp_histogram_observe(&w->call_hist, (double)d->elapsed_us / 1e6, 1);
}

static bool s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Writes one length-prefixed frame to an executor socket (blocking), in
 * one system call when the socket takes it all. */
static bool s_write_frame(int fd, const void *data, size_t len)
{
    uint32_t n = (uint32_t)len;
    unsigned char hdr[4] = {(unsigned char)n, (unsigned char)(n >> 8),
                            (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
    struct iovec iov[2] = {{hdr, 4}, {(void *)data, len}};
    ssize_t w;
    while ((w = writev(fd, iov, 2)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return false;
    if ((size_t)w < 4)
        return s_write_all(fd, hdr + w, 4 - (size_t)w) &&
               s_write_all(fd, data, len);
    return s_write_all(fd, (const char *)data + (w - 4), len - (size_t)(w - 4));
}

/* Sends the pending results as one ResultBatch (to the sink, or from an
 * executor to its worker). */
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
            r->retryable = d->retryable;
            r->quarantined = d->quarantined;
        }
        r->start_us = d->start_us;
        r->elapsed_us = d->elapsed_us;
        r->queued_us = d->queued_us;
        r->dispatch_us = d->dispatch_us;
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
    if (w->out_fd >= 0 && w->ex.progress) {
        /* An executor speaks for its worker: the sink gets this frame as
         * it is. */
        rb.window = (uint32_t)atomic_load(&w->ex.progress->window);
        rb.max_held = (uint32_t)atomic_load(&w->ex.progress->max_held);
        rb.tasks_done = atomic_load(&w->ex.progress->completed) + w->n_done;
    }
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    int rc = 0;
    if (w->out_fd >= 0) {
        if (zp_encode(&m, &w->scratch) < 0 ||
            !s_write_frame(w->out_fd, w->scratch.data, w->scratch.len))
            rc = -1;
    } else
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

/* ---- running a task in this process ------------------------------------- */

/* Runs t, which starts at monotonic time t0 (wall time start_us); returns
 * the monotonic time it ended. */
static uint64_t s_run_task(s_worker_t *w, const zp_plugin_t *plugin,
                           const char *plugin_name, const char *job_id,
                           const Zpipe__V1__Task *t, s_done_t *d, uint64_t t0,
                           uint64_t start_us, const char *init_error)
{
    d->task_id = t->task_id;
    d->attempt = t->attempt ? t->attempt : 1;
    d->start_us = start_us;

    if (init_error) {
        /* The job's settings were refused: every task says why. */
        zp_buf_printf(&w->err, "%s", init_error);
        d->status = ZPIPE_ERROR;
        d->cause = "plugin_init";
    } else if (!plugin) {
        zp_buf_printf(&w->err, "worker %s has no plugin '%s'", w->id,
                      plugin_name);
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
            .deadline_ms =
                t->deadline_ms ? t->deadline_ms : w->cfg->deadline_ms,
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
            d->retryable = ZPIPE_STATUS_IS_RETRYABLE(st);
            if (!d->cause && st == ZPIPE_NOMEM && w->cfg->memory_limit) {
                d->cause = "resource_limit";
                d->retryable = false;
                w->hit_limit = true;
            }
            if (!d->cause)
                d->cause = d->retryable ? "plugin_retry" : "plugin_error";
            if (call_err.len == 0)
                zp_buf_printf(&call_err, "plugin %s returned status %d",
                              plugin->desc.name, st);
            zp_buf_append(&w->err, call_err.data, call_err.len);
            /* A failed task outputs nothing. */
            w->out.len = d->out_off;
        }
        zp_buf_free(&call_err);
    }
    uint64_t end = zp_mono_us();
    d->elapsed_us = end - t0;
    return end;
}

/* ---- a probe: one plugin called outside a job ---------------------------- */

struct zp_worker_probe {
    s_worker_t w;
    const zp_plugin_t *plugin;
};

zp_worker_probe_t *zp_worker_probe_new(const zp_worker_config_t *cfg, char *err,
                                       size_t errlen)
{
    zp_worker_probe_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->w.cfg = cfg;
    self->w.id = "probe";
    s_host_init(&self->w.host);
    self->w.plugins = zp_plugins_new(&self->w.host);
    if (!self->w.plugins || cfg->plugins.count != 1) {
        snprintf(err, errlen, "%s",
                 self->w.plugins ? "give exactly one plugin" : "out of memory");
        goto fail_probe;
    }
    if (zp_plugins_configure(self->w.plugins, cfg->plugin_config.items,
                             cfg->plugin_config.count, err, errlen) < 0)
        goto fail_probe;
    self->plugin =
        zp_plugins_load(self->w.plugins, cfg->plugins.items[0], err, errlen);
    if (!self->plugin)
        goto fail_probe;
    return self;

fail_probe:
    zp_plugins_destroy(&self->w.plugins);
    free(self);
    return NULL;
}

const zp_plugin_t *zp_worker_probe_plugin(const zp_worker_probe_t *self)
{
    return self->plugin;
}

void zp_worker_probe_call(zp_worker_probe_t *self, const uint8_t *input,
                          size_t len, uint64_t task_id,
                          zp_worker_outcome_t *outcome)
{
    s_worker_t *w = &self->w;
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT;
    t.task_id = task_id;
    t.payload.data = (uint8_t *)input;
    t.payload.len = len;
    t.attempt = 1;
    s_done_t d = {0};
    w->out.len = 0;
    w->err.len = 0;
    uint64_t t0 = zp_mono_us();
    s_run_task(w, self->plugin, self->plugin->desc.name, "check", &t, &d, t0,
               zp_now_us(), NULL);
    /* NUL-terminate the error text without counting it. */
    if (zp_buf_append(&w->err, "", 1) == 0)
        w->err.len--;
    *outcome = (zp_worker_outcome_t){
        .status = d.status,
        .cause = d.cause,
        .output = (const uint8_t *)w->out.data,
        .output_len = w->out.len,
        .error = w->err.data ? w->err.data : "",
        .error_len = w->err.len,
        .elapsed_us = d.elapsed_us,
    };
}

void zp_worker_probe_destroy(zp_worker_probe_t **self_p)
{
    zp_worker_probe_t *self = *self_p;
    if (!self)
        return;
    zp_plugins_destroy(&self->w.plugins);
    zp_buf_free(&self->w.out);
    zp_buf_free(&self->w.err);
    free(self);
    *self_p = NULL;
}

/* A monotonic and a wall clock reading of the same moment. The wall
 * clock is read between two monotonic readings, again (at most thrice)
 * when this process was preempted in between: results' start times are
 * derived from the pair, and task timelines compare them with other
 * processes' clocks. */
static void s_clock_pair(uint64_t *mono, uint64_t *wall)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3 && best > 20; i++) {
        uint64_t m0 = zp_mono_us(), w = zp_now_us(), m1 = zp_mono_us();
        if (m1 - m0 < best) {
            best = m1 - m0;
            *mono = m0 + (m1 - m0) / 2;
            *wall = w;
        }
    }
}

/* Runs a batch here (in process, or in the executor child). */
static void s_run_batch(s_worker_t *w, const Zpipe__V1__TaskBatch *b,
                        s_progress_t *progress)
{
    const char *job = b->job_id ? b->job_id : "";
    const char *name = b->plugin ? b->plugin : "";
    if (w->n_done && strcmp(w->done_job, job) != 0)
        s_flush_results(w);
    const zp_plugin_t *plugin = zp_plugins_find(w->plugins, name);
    if (!plugin)
        zp_warn("job %s: %zu tasks for plugin '%s', which this worker lacks",
                job, b->n_tasks, name);
    /* A job with settings of its own runs on an instance made for them. */
    char init_error[1024];
    bool refused = false;
    if (plugin && b->config && *b->config) {
        const zp_plugin_t *inst = zp_plugins_instance(
            w->plugins, plugin, b->config, init_error, sizeof init_error);
        if (inst)
            plugin = inst;
        else {
            refused = true;
            zp_warn("job %s: %s", job, init_error);
        }
    }
    /* One clock read per task: a task starts when the one before ended;
     * wall times are derived from one reading per batch. */
    uint64_t mono0 = 0, wall0 = 0;
    s_clock_pair(&mono0, &wall0);
    uint64_t t = mono0;
    for (size_t i = 0; i < b->n_tasks; i++) {
        s_done_t *d = s_done_push(w, job);
        if (!d) {
            zp_error("out of memory holding results; task %s/%llu dropped", job,
                     (unsigned long long)b->tasks[i]->task_id);
            continue;
        }
        if (progress) {
            atomic_store(&progress->index, i);
            atomic_store(&progress->start_us, t);
            atomic_store(&progress->deadline_ms, b->tasks[i]->deadline_ms);
            atomic_store(&progress->busy, 1);
        }
        uint64_t end =
            s_run_task(w, plugin, name, job, b->tasks[i], d, t,
                       wall0 + (t - mono0), refused ? init_error : NULL);
        if (progress)
            atomic_store(&progress->busy, 0);
        s_trace_echo(d, b->tasks[i], b->dispatch_us);
        s_done_finish(w, d, b->tasks[i]->payload.len);
        bool slow = false;
        if (w->out.len >= S_FLUSH_BYTES ||
            end - w->first_done_us >= S_FLUSH_US) {
            s_flush_results(w);
            s_maybe_grant(w);
            slow = true;
        }
        if (w->credit_mode &&
            end - w->last_sent_us >= w->cfg->heartbeat_ms * 1000) {
            s_send_heartbeat(w);
            slow = true;
        }
        t = slow ? zp_mono_us() : end;
    }
    s_flush_results(w);
    s_maybe_grant(w);
}

/* ---- the executor child ------------------------------------------------- */

static s_progress_t *s_crash_progress;

/* On a fatal signal, note how much address space was in use (so the worker
 * can tell a memory-limit crash from a bug), then die of the same signal.
 * Only async-signal-safe calls. */
static void s_on_fatal_signal(int sig)
{
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd >= 0) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        uint64_t pages = 0;
        for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
            pages = pages * 10 + (uint64_t)(buf[i] - '0');
        if (s_crash_progress)
            atomic_store(&s_crash_progress->vm_bytes,
                         pages * (uint64_t)sysconf(_SC_PAGESIZE));
    }
    signal(sig, SIG_DFL);
    raise(sig); /* pending until we return, then fatal */
}

static void s_install_crash_handlers(s_progress_t *progress)
{
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    s_crash_progress = progress;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_fatal_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
}

int zp_worker_executor_main(const zp_worker_config_t *cfg)
{
    s_worker_t w = {.cfg = cfg, .out_fd = S_EXEC_FD};
    char name[64];
    snprintf(name, sizeof name, "%s", cfg->id ? cfg->id : "executor");
    w.id = name;
    s_host_init(&w.host);
    signal(SIGPIPE, SIG_IGN);
    /* Die with the worker: a killed worker must not leave us running. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* The worker may have died before the line above; it names itself, as
     * it may be pid 1 (in a container) and getppid() == 1 proves nothing. */
    if (cfg->parent_pid > 0 && getppid() != (pid_t)cfg->parent_pid)
        return 3;
    s_progress_t *progress =
        mmap(NULL, sizeof *progress, PROT_READ | PROT_WRITE, MAP_SHARED,
             S_SHM_FD, 0);
    if (progress == MAP_FAILED) {
        zp_error("executor: cannot map the progress page: %s", strerror(errno));
        return 3;
    }
    w.plugins = zp_plugins_new(&w.host);
    w.arena = zp_arena_new();
    if (!w.plugins || !w.arena || s_load_plugins(&w, false) < 0)
        return 3;
    w.ex.progress = progress;
    s_install_crash_handlers(progress);
    if (cfg->memory_limit) {
        struct rlimit rl = {cfg->memory_limit, cfg->memory_limit};
        if (setrlimit(RLIMIT_AS, &rl) != 0) {
            zp_error("executor: memory limit %llu: %s",
                     (unsigned long long)cfg->memory_limit, strerror(errno));
            return 3;
        }
    }
    /* Ready: a hello naming the plugins. */
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.worker_id = w.id;
    h.pid = (uint32_t)getpid();
    zp_message_t hm = ZPIPE__V1__MESSAGE__INIT;
    hm.kind_case = ZPIPE__V1__MESSAGE__KIND_HELLO;
    hm.hello = &h;
    if (zp_encode(&hm, &w.scratch) < 0 ||
        !s_write_frame(S_EXEC_FD, w.scratch.data, w.scratch.len))
        return 3;
    zp_buf_t in = {0};
    zp_task_view_t view = {0};
    size_t used = 0; /* bytes of in already taken */
    for (;;) {
        /* One read takes a whole frame (and more) when the worker has
         * written it. */
        size_t len = 0;
        bool whole = false;
        for (;;) {
            size_t have = in.len - used;
            if (have >= 4) {
                const unsigned char *p = (const unsigned char *)in.data + used;
                len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
                      (size_t)p[3] << 24;
                if (len > cfg->max_frame)
                    break;
                if (have - 4 >= len) {
                    whole = true;
                    break;
                }
            }
            if (used) { /* keep the partial frame at the front */
                memmove(in.data, in.data + used, have);
                in.len = have;
                used = 0;
            }
            if (zp_buf_reserve(&in, (have >= 4 ? len + 4 - have : 4) + 65536) <
                0)
                break;
            ssize_t n = read(S_EXEC_FD, in.data + in.len, in.cap - in.len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            in.len += (size_t)n;
        }
        if (!whole) {
            if (in.len == used)
                break; /* the worker closed us between frames: done */
            zp_error("executor: bad frame of %zu bytes from the worker", len);
            return 3;
        }
        const char *frame = in.data + used + 4;
        used += 4 + len;
        atomic_store(&progress->seq, atomic_load(&progress->seq) + 1);
        /* Zero-copy: payloads are handed to the plugin from the frame. */
        const Zpipe__V1__TaskBatch *b = &view.batch;
        if (zp_view_task_batch(&view, frame, len, cfg->max_frame) < 0) {
            zp_arena_reset(w.arena);
            zp_message_t *m = zp_decode(w.arena, frame, len, cfg->max_frame);
            if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH) {
                zp_error("executor: the worker sent something not a task "
                         "batch");
                return 3;
            }
            b = m->task_batch;
        }
        s_run_batch(&w, b, progress);
        if (w.hit_limit) {
            /* A plugin ran out of memory under the limit: its heap may be
             * spent. Leave; the worker starts a fresh executor. */
            zp_info("executor: leaving after a task hit the memory limit");
            break;
        }
    }
    zp_buf_free(&in);
    zp_task_view_free(&view);
    zp_plugins_destroy(&w.plugins);
    zp_arena_destroy(&w.arena);
    zp_buf_free(&w.scratch);
    zp_buf_free(&w.out);
    zp_buf_free(&w.err);
    free(w.done);
    free(w.done_job);
    free(w.pb_results);
    free(w.pb_ptrs);
    return 0;
}

/* ---- supervising the executor -------------------------------------------- */

static int s_exec_spawn(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        zp_error("socketpair: %s", strerror(errno));
        return -1;
    }
    int shm = memfd_create("zpipe-progress", MFD_CLOEXEC);
    if (shm < 0 || ftruncate(shm, sizeof(s_progress_t)) < 0) {
        zp_error("memfd: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        if (shm >= 0)
            close(shm);
        return -1;
    }
    if (ex->progress)
        munmap(ex->progress, sizeof(s_progress_t));
    ex->progress = mmap(NULL, sizeof(s_progress_t), PROT_READ | PROT_WRITE,
                        MAP_SHARED, shm, 0);
    if (ex->progress == MAP_FAILED) {
        ex->progress = NULL;
        close(sv[0]);
        close(sv[1]);
        close(shm);
        return -1;
    }
    char *self = zp_sibling("zpipe-worker");
    char smax_out[32], smax_frame[32], smem[32], sparent[32];
    snprintf(smax_out, sizeof smax_out, "%llu",
             (unsigned long long)w->cfg->max_output);
    snprintf(smax_frame, sizeof smax_frame, "%llu",
             (unsigned long long)w->cfg->max_frame);
    snprintf(smem, sizeof smem, "%llu",
             (unsigned long long)w->cfg->memory_limit);
    const char *argv[S_EXEC_ARGS];
    size_t n = 0;
    argv[n++] = self;
    argv[n++] = "--executor";
    argv[n++] = "--id";
    argv[n++] = w->id;
    argv[n++] = "--max-output";
    argv[n++] = smax_out;
    argv[n++] = "--max-frame";
    argv[n++] = smax_frame;
    argv[n++] = "--memory-limit";
    argv[n++] = smem;
    snprintf(sparent, sizeof sparent, "%ld", (long)getpid());
    argv[n++] = "--parent-pid";
    argv[n++] = sparent;
    argv[n++] = "--log-level";
    argv[n++] = zp_log_level_name();
    argv[n++] = "--log-format";
    argv[n++] = zp_log_format_name();
    for (size_t i = 0; i < w->cfg->plugin_config.count && n < S_EXEC_ARGS - 3;
         i++) {
        argv[n++] = "--plugin-config";
        argv[n++] = w->cfg->plugin_config.items[i];
    }
    /* The very files this worker loaded and announced, under the same
     * directory restriction. */
    for (size_t i = 0; i < w->cfg->plugin_dirs.count && n < S_EXEC_ARGS - 3;
         i++) {
        argv[n++] = "--plugin-dir";
        argv[n++] = w->cfg->plugin_dirs.items[i];
    }
    for (size_t i = 0; i < zp_plugins_count(w->plugins) && n < S_EXEC_ARGS - 3;
         i++) {
        argv[n++] = "--plugin";
        argv[n++] = zp_plugins_at(w->plugins, i)->path;
    }
    argv[n] = NULL;

    /* Its own process group: a terminal's Ctrl-C reaches the worker, which
     * decides when the executor stops. */
    int from[2] = {sv[1], shm}, to[2] = {S_EXEC_FD, S_SHM_FD};
    ex->pid = self ? zp_spawn_fds((char **)argv, from, to, 2, true) : -1;
    int rc = ex->pid < 0 ? (self ? errno : ENOMEM) : 0;
    free(self);
    close(sv[1]);
    close(shm);
    if (rc != 0) {
        zp_error("cannot start an executor: %s", strerror(rc));
        close(sv[0]);
        return -1;
    }
    ex->fd = sv[0]; /* blocking: reads say MSG_DONTWAIT */
    ex->ready = false;
    ex->busy = false;
    ex->killed_for_timeout = false;
    ex->rbuf.len = 0;
    ex->wbuf.len = ex->woff = 0;
    atomic_store(&ex->progress->busy, 0);
    atomic_store(&ex->progress->vm_bytes, 0);
    atomic_store(&ex->progress->seq, 0);
    ex->sent_seq = 0;
    atomic_store(&ex->progress->window, w->credit_mode ? w->cfg->window : 0);
    atomic_store(&ex->progress->max_held, w->max_held);
    atomic_store(&ex->progress->completed, w->completed);
    return 0;
}

/* Writes what the executor's socket takes now; false on an error (its
 * death then shows as the end of its output). */
static bool s_exec_flush(s_exec_t *ex)
{
    while (ex->woff < ex->wbuf.len) {
        ssize_t n = send(ex->fd, ex->wbuf.data + ex->woff,
                         ex->wbuf.len - ex->woff, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        ex->woff += (size_t)n;
    }
    ex->wbuf.len = ex->woff = 0;
    return true;
}

/* Queues one length-prefixed frame for the executor and writes what it can. */
static bool s_exec_write(s_exec_t *ex, const void *data, size_t len)
{
    uint32_t n = (uint32_t)len;
    unsigned char hdr[4] = {(unsigned char)n, (unsigned char)(n >> 8),
                            (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
    if (zp_buf_append(&ex->wbuf, hdr, 4) < 0 ||
        zp_buf_append(&ex->wbuf, data, len) < 0)
        return false;
    return s_exec_flush(ex);
}

/* Sends the current batch (cur[cur_done..]) to the executor: the frame as
 * the ventilator sent it when given (no re-encoding on the common path),
 * else encoded afresh (what a dead executor left undone). */
static int s_exec_send_current(s_worker_t *w, const void *raw, size_t raw_len)
{
    s_exec_t *ex = &w->ex;
    if (!raw) {
        Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
        b.job_id = ex->cur_job;
        b.plugin = ex->cur_plugin;
        b.dispatch_us = ex->cur_dispatch_us;
        b.tasks = ex->cur + ex->cur_done;
        b.n_tasks = ex->cur_n - ex->cur_done;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
        m.task_batch = &b;
        if (zp_encode(&m, &w->scratch) < 0)
            return -1;
        raw = w->scratch.data;
        raw_len = w->scratch.len;
    }
    /* Blocking write: the executor reads a whole batch before running it. */
    ex->busy = true;
    ex->sent_base = ex->cur_done;
    ex->cur_seq = ++ex->sent_seq;
    return s_exec_write(ex, raw, raw_len) ? 0 : -1;
}

/* Decodes the current batch's frame, which only a dead executor needs:
 * which task it was running, what is left to send again. */
static int s_exec_decode_current(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    if (ex->cur)
        return 0;
    zp_arena_reset(ex->cur_arena);
    zp_message_t *m =
        zp_decode(ex->cur_arena, zmq_msg_data(&ex->cur_frame),
                  zmq_msg_size(&ex->cur_frame), w->cfg->max_frame);
    if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_TASK_BATCH ||
        m->task_batch->n_tasks != ex->cur_n)
        return -1; /* scanned on arrival: cannot happen */
    Zpipe__V1__TaskBatch *b = m->task_batch;
    free(ex->cur_job);
    free(ex->cur_plugin);
    ex->cur_job = strdup(b->job_id ? b->job_id : "");
    ex->cur_plugin = strdup(b->plugin ? b->plugin : "");
    if (!ex->cur_job || !ex->cur_plugin)
        return -1;
    ex->cur_dispatch_us = b->dispatch_us;
    ex->cur = b->tasks;
    return 0;
}

/* Sends the executor's result frame to the sink as it is. */
static int s_send_raw(s_worker_t *w, const void *data, size_t len, size_t n)
{
    while (zmq_send(w->results, data, len, 0) < 0) {
        if (errno == EINTR && !zp_stopping())
            continue;
        zp_error("results to %s: %s (%zu results not sent)", w->cfg->sink,
                 zmq_strerror(errno), n);
        return -1;
    }
    return 0;
}

/* Makes frame (n tasks) the current batch; it has not run yet. */
static void s_exec_take(s_exec_t *ex, zmq_msg_t *frame, size_t n)
{
    zmq_msg_close(&ex->cur_frame);
    zmq_msg_init(&ex->cur_frame);
    zmq_msg_move(&ex->cur_frame, frame);
    ex->cur = NULL;
    ex->cur_n = n;
    ex->cur_done = 0;
    ex->sent_base = 0;
    ex->cur_bytes = n ? zmq_msg_size(&ex->cur_frame) / n : 0;
}

/* The current batch has all its results: the one written behind it (if
 * any) is now running. */
static void s_exec_advance(s_exec_t *ex)
{
    if (ex->cur_done < ex->cur_n)
        return;
    if (!ex->has_next) {
        ex->busy = false;
        return;
    }
    s_exec_take(ex, &ex->next_frame, ex->next_n);
    ex->cur_seq = ex->next_seq;
    ex->has_next = false;
}

/* Hands queued batches to the executor: a current one, and one behind it. */
static void s_exec_next(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    while (ex->ready && !ex->resend && !ex->has_next && w->q_len) {
        s_queued_t *q = &w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % w->q_cap;
        w->q_len--;
        size_t n = q->n;
        zmq_msg_t *frame;
        if (n == 0) {
            zmq_msg_close(&q->frame);
            continue;
        }
        if (!ex->busy) {
            s_exec_take(ex, &q->frame, n);
            frame = &ex->cur_frame;
        } else {
            zmq_msg_init(&ex->next_frame);
            zmq_msg_move(&ex->next_frame, &q->frame);
            ex->next_n = n;
            ex->has_next = true;
            ex->next_seq = ex->sent_seq + 1;
            frame = &ex->next_frame;
        }
        zmq_msg_close(&q->frame);
        bool ok = frame == &ex->cur_frame
                      ? s_exec_send_current(w, zmq_msg_data(frame),
                                            zmq_msg_size(frame)) == 0
                      : (++ex->sent_seq, s_exec_write(ex, zmq_msg_data(frame),
                                                      zmq_msg_size(frame)));
        if (!ok) { /* shows up as the executor's death */
            zp_warn("executor pid %d did not take a batch; restarting it",
                    (int)ex->pid);
            return;
        }
    }
}

static void s_observe_call(void *arg, uint64_t elapsed_us)
{
    s_worker_t *w = arg;
    zp_histogram_observe(&w->call_hist, (double)elapsed_us / 1e6, 1);
}

/* Takes results from one executor frame into the outgoing batch. */
static void s_exec_on_frame(s_worker_t *w, const char *data, size_t len)
{
    s_exec_t *ex = &w->ex;
    size_t n;
    uint64_t elapsed;
    if (zp_scan_result_batch(data, len, w->cfg->max_frame + 65536, &n,
                             &elapsed) == 0) {
        /* The common case: forward it untouched, keep the books. */
        s_flush_results(w);
        s_send_raw(w, data, len, n);
        w->completed += n;
        if (n) {
            s_adapt(w, elapsed / n, ex->cur_bytes, n);
            zp_each_result_elapsed(data, len, s_observe_call, w);
        }
        atomic_store(&ex->progress->completed, w->completed);
        ex->cur_done =
            ex->cur_done + n < ex->cur_n ? ex->cur_done + n : ex->cur_n;
        s_exec_advance(ex);
        s_maybe_grant(w);
        return;
    }
    zp_arena_reset(w->arena);
    zp_message_t *m = zp_decode(w->arena, data, len, w->cfg->max_frame + 65536);
    if (!m) {
        zp_error("executor pid %d sent a malformed frame; restarting it",
                 (int)ex->pid);
        kill(ex->pid, SIGKILL);
        return;
    }
    if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HELLO) {
        ex->ready = true;
        ex->start_fails = 0;
        zp_debug("executor pid %d ready", (int)ex->pid);
        if (ex->resend) {
            ex->resend = false;
            s_exec_send_current(w, NULL, 0);
        }
        return;
    }
    if (m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH)
        return;
    Zpipe__V1__ResultBatch *rb = m->result_batch;
    const char *job = rb->job_id ? rb->job_id : "";
    for (size_t i = 0; i < rb->n_results; i++) {
        Zpipe__V1__Result *r = rb->results[i];
        s_done_t *d = s_done_push(w, job);
        if (!d) {
            s_flush_results(w);
            d = s_done_push(w, job);
            if (!d)
                continue;
        }
        d->task_id = r->task_id;
        d->attempt = r->attempt;
        d->status =
            r->status == ZPIPE__V1__STATUS__STATUS_OK ? ZPIPE_OK : ZPIPE_ERROR;
        d->retryable = r->retryable;
        d->cause = s_intern_cause(r->cause);
        d->start_us = r->start_us;
        d->elapsed_us = r->elapsed_us;
        d->queued_us = r->queued_us;
        d->dispatch_us = r->dispatch_us;
        zp_buf_append(&w->out, r->output.data, r->output.len);
        if (r->error)
            zp_buf_append(&w->err, r->error, strlen(r->error));
        s_done_finish(w, d, ex->cur_bytes);
        if (ex->cur_done < ex->cur_n)
            ex->cur_done++;
    }
    s_flush_results(w);
    atomic_store(&ex->progress->completed, w->completed);
    s_exec_advance(ex);
    s_maybe_grant(w);
}

/* Reads what the executor wrote; false when it has closed (died). */
static bool s_exec_read(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    bool open = true;
    for (;;) {
        if (zp_buf_reserve(&ex->rbuf, 1 << 16) < 0)
            return false;
        ssize_t n = recv(ex->fd, ex->rbuf.data + ex->rbuf.len,
                         ex->rbuf.cap - ex->rbuf.len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            /* Closed: still take the results it wrote before dying, so
             * its last batch's culprit is known. */
            open = false;
            break;
        }
        ex->rbuf.len += (size_t)n;
    }
    size_t off = 0;
    while (ex->rbuf.len - off >= 4) {
        const unsigned char *h = (const unsigned char *)ex->rbuf.data + off;
        size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
                     (size_t)h[3] << 24;
        if (ex->rbuf.len - off - 4 < len)
            break;
        s_exec_on_frame(w, ex->rbuf.data + off + 4, len);
        off += 4 + len;
    }
    memmove(ex->rbuf.data, ex->rbuf.data + off, ex->rbuf.len - off);
    ex->rbuf.len -= off;
    return open;
}

static int s_queue_push_front(s_worker_t *w, zmq_msg_t *frame, size_t n);

/* The executor died: fail the task it was running, start a new one, and
 * give it what the old one left undone. */
static void s_exec_died(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    int status = 0;
    close(ex->fd);
    ex->fd = -1;
    while (waitpid(ex->pid, &status, 0) < 0 && errno == EINTR)
        ;
    bool was_ready = ex->ready;
    bool running = atomic_load(&ex->progress->busy) != 0;
    uint64_t index = atomic_load(&ex->progress->index);
    ex->restarts++;

    char how[96];
    const char *cause;
    if (ex->killed_for_timeout) {
        cause = "timeout";
        snprintf(how, sizeof how, "ran past its deadline; executor killed");
    } else if (WIFSIGNALED(status)) {
        cause = s_signal_cause(WTERMSIG(status));
        /* Near the limit when it died: the limit, not the plugin, is why. */
        uint64_t vm = atomic_load(&ex->progress->vm_bytes);
        if (w->cfg->memory_limit && vm >= w->cfg->memory_limit / 10 * 9)
            cause = "resource_limit";
        snprintf(how, sizeof how, "executor killed by %s",
                 strsignal(WTERMSIG(status)));
    } else {
        cause = "executor_exit";
        snprintf(how, sizeof how, "executor exited with status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }

    if (ex->has_next) { /* never started: it goes back to the queue */
        s_queue_push_front(w, &ex->next_frame, ex->next_n);
        ex->has_next = false;
    }
    if (atomic_load(&ex->progress->seq) != ex->cur_seq)
        running = false; /* it died before taking the current batch */
    if (ex->busy && s_exec_decode_current(w) < 0) {
        zp_error("cannot decode the batch executor pid %d was running; its "
                 "%zu tasks are left to the ventilator's lease",
                 (int)ex->pid, ex->cur_n - ex->cur_done);
        ex->cur_done = ex->cur_n;
        ex->busy = false;
    }
    size_t culprit = ex->sent_base + (size_t)index;
    if (ex->busy && running && culprit >= ex->cur_done && culprit < ex->cur_n) {
        /* Tasks before the culprit ran but their results died with the
         * executor: they run again. The culprit gets its record. */
        Zpipe__V1__Task *t = ex->cur[culprit];
        uint32_t attempt = t->attempt ? t->attempt : 1;
        bool poison = attempt >= S_POISON_LIMIT;
        zp_warn("task %s/%llu: %s (attempt %u)%s", ex->cur_job,
                (unsigned long long)t->task_id, how, attempt,
                poison ? "; quarantined as poison" : "");
        s_done_t *d = s_done_push(w, ex->cur_job);
        if (!d) {
            s_flush_results(w);
            d = s_done_push(w, ex->cur_job);
        }
        if (d) {
            d->task_id = t->task_id;
            d->attempt = attempt;
            d->status = ZPIPE_ERROR;
            d->cause = cause;
            d->retryable = !poison && strcmp(cause, "resource_limit") != 0;
            d->quarantined = poison;
            d->start_us = zp_now_us();
            s_trace_echo(d, t, ex->cur_dispatch_us);
            zp_buf_printf(&w->err, "%s on attempt %u%s", how, attempt,
                          poison ? "; quarantined as a poison task after "
                                   "3 attempts"
                                 : "");
            s_done_finish(w, d, t->payload.len);
            s_flush_results(w);
            atomic_store(&ex->progress->completed, w->completed);
        }
        /* Rotate the culprit to the front of the undone part and count it
         * done; the others keep their order. */
        for (size_t k = culprit; k > ex->cur_done; k--) {
            Zpipe__V1__Task *x = ex->cur[k];
            ex->cur[k] = ex->cur[k - 1];
            ex->cur[k - 1] = x;
        }
        ex->cur_done++;
    } else {
        zp_warn("executor pid %d: %s between tasks (%s)", (int)ex->pid, how,
                was_ready ? "after it was ready" : "before it was ready");
        if (!was_ready)
            ex->start_fails++;
    }
    if (ex->start_fails >= S_MAX_START_FAILS) {
        zp_error("executors keep dying before they are ready (%u in a row); "
                 "this worker cannot serve",
                 ex->start_fails);
        w->fatal = true;
        return;
    }
    if (s_exec_spawn(w) < 0) {
        w->fatal = true;
        return;
    }
    /* The rest of the batch is sent once the new executor is ready. */
    ex->busy = ex->cur_done < ex->cur_n;
    ex->resend = ex->busy;
    ex->ready = false;
}

/* Kills an executor whose current task is past its deadline. */
static void s_exec_check_deadline(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    if (!ex->busy || ex->killed_for_timeout ||
        !atomic_load(&ex->progress->busy))
        return;
    uint64_t deadline = atomic_load(&ex->progress->deadline_ms);
    if (!deadline)
        deadline = w->cfg->deadline_ms;
    if (!deadline)
        return;
    uint64_t started = atomic_load(&ex->progress->start_us);
    if (zp_mono_us() - started > deadline * 1000) {
        ex->killed_for_timeout = true;
        kill(ex->pid, SIGKILL);
    }
}

static void s_exec_stop(s_worker_t *w)
{
    s_exec_t *ex = &w->ex;
    if (ex->fd >= 0) {
        close(ex->fd);
        ex->fd = -1;
    }
    if (ex->pid > 0) {
        /* Closing its socket ends an idle executor; a busy one is killed. */
        uint64_t until = zp_mono_us() + 200000;
        int status;
        while (waitpid(ex->pid, &status, WNOHANG) == 0) {
            if (zp_mono_us() > until) {
                kill(ex->pid, SIGKILL);
                waitpid(ex->pid, &status, 0);
                break;
            }
            usleep(2000);
        }
        ex->pid = 0;
    }
    if (ex->progress)
        munmap(ex->progress, sizeof(s_progress_t));
    ex->progress = NULL;
}

/* ---- the worker loop ---------------------------------------------------- */

static int s_queue_push(s_worker_t *w, zmq_msg_t *frame, size_t n)
{
    if (w->q_len == w->q_cap) {
        size_t cap = w->q_cap ? 2 * w->q_cap : 16;
        s_queued_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < w->q_len; i++)
            memcpy(&q[i], &w->queue[(w->q_head + i) % w->q_cap], sizeof *q);
        free(w->queue);
        w->queue = q;
        w->q_cap = cap;
        w->q_head = 0;
    }
    s_queued_t *slot = &w->queue[(w->q_head + w->q_len) % w->q_cap];
    zmq_msg_init(&slot->frame);
    zmq_msg_move(&slot->frame, frame);
    slot->n = n;
    w->q_len++;
    return 0;
}

/* Puts a batch back at the head of the queue (an executor died before
 * taking it). */
static int s_queue_push_front(s_worker_t *w, zmq_msg_t *frame, size_t n)
{
    if (s_queue_push(w, frame, n) < 0)
        return -1;
    /* Rotate the new tail to the head. */
    size_t tail = (w->q_head + w->q_len - 1) % w->q_cap;
    s_queued_t t = w->queue[tail];
    for (size_t k = w->q_len - 1; k > 0; k--) {
        size_t to = (w->q_head + k) % w->q_cap;
        size_t from = (w->q_head + k - 1) % w->q_cap;
        w->queue[to] = w->queue[from];
    }
    w->queue[w->q_head] = t;
    return 0;
}

static void s_note_received(s_worker_t *w, size_t n)
{
    w->received += n;
    uint64_t held = w->received - w->completed;
    if (held > w->max_held) {
        w->max_held = held;
        if (w->ex.progress)
            atomic_store(&w->ex.progress->max_held, held);
    }
    if (w->credit_mode && held > w->cfg->window) {
        w->violations++;
        zp_error("ventilator sent %llu tasks beyond the window of %llu",
                 (unsigned long long)(held - w->cfg->window),
                 (unsigned long long)w->cfg->window);
    }
}

static void s_handle_frame(s_worker_t *w, zmq_msg_t *frame)
{
    size_t n;
    if (w->isolated &&
        zp_scan_task_batch(zmq_msg_data(frame), zmq_msg_size(frame),
                           w->cfg->max_frame, &n) == 0) {
        /* The executor decodes it; this process only counts it. */
        s_note_received(w, n);
        if (s_queue_push(w, frame, n) < 0)
            zp_error("out of memory queueing a batch of %zu tasks", n);
        return;
    }
    if (!w->isolated &&
        zp_view_task_batch(&w->view, zmq_msg_data(frame), zmq_msg_size(frame),
                           w->cfg->max_frame) == 0) {
        s_note_received(w, w->view.batch.n_tasks);
        s_run_batch(w, &w->view.batch, NULL);
        return;
    }
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
            s_run_batch(w, m->task_batch, NULL);
        else if (s_queue_push(w, frame, m->task_batch->n_tasks) < 0)
            zp_error("out of memory queueing a batch of %zu tasks",
                     m->task_batch->n_tasks);
    } else if (m->kind_case == ZPIPE__V1__MESSAGE__KIND_HEARTBEAT)
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

/* Renders the snapshot served at /metrics. */
static void s_metrics_render(s_worker_t *w, uint64_t now)
{
    zp_metrics_t *m = w->metrics;
    zp_metrics_begin(m);
    zp_metrics_family(m, "zpipe_worker_tasks_total", ZP_METRIC_COUNTER,
                      "Tasks this worker finished (any status).");
    zp_metrics_u64(m, "zpipe_worker_tasks_total", NULL, w->completed);
    zp_metrics_family(m, "zpipe_executor_restarts_total", ZP_METRIC_COUNTER,
                      "Executor processes started again after one died.");
    zp_metrics_u64(m, "zpipe_executor_restarts_total", NULL, w->ex.restarts);
    zp_metrics_family(m, "zpipe_worker_window_violations_total",
                      ZP_METRIC_COUNTER,
                      "Tasks received beyond the credit granted.");
    zp_metrics_u64(m, "zpipe_worker_window_violations_total", NULL,
                   w->violations);
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "tasks", NULL},
                   w->bad_messages);
    zp_metrics_family(m, "zpipe_worker_held_tasks", ZP_METRIC_GAUGE,
                      "Tasks received and not finished.");
    zp_metrics_u64(m, "zpipe_worker_held_tasks", NULL,
                   w->received - w->completed);
    zp_metrics_family(m, "zpipe_plugin_call_seconds", ZP_METRIC_HISTOGRAM,
                      "Time of each plugin call (with an executor: each "
                      "batch's mean, once per task).");
    zp_metrics_histogram(m, "zpipe_plugin_call_seconds", NULL, &w->call_hist);
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}

int zp_worker_run(const zp_worker_config_t *cfg)
{
    s_worker_t w = {.cfg = cfg, .out_fd = -1};
    int rc = 3;
    w.credit_mode = strcmp(cfg->dispatch, "push") != 0;
    w.isolated = strcmp(cfg->isolation, "none") != 0;
    w.ex.fd = -1;
    zmq_msg_init(&w.ex.cur_frame);
    zmq_msg_init(&w.ex.next_frame);
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
    w.ex.cur_arena = zp_arena_new();
    if (!w.id || !w.plugins || !w.arena || !w.ex.cur_arena)
        goto fail_alloc;
    /* Loaded here too, to check them and to announce their names; with
     * isolation they run only in executors. */
    if (s_load_plugins(&w, true) < 0)
        goto fail_alloc;
    if (cfg->metrics && *cfg->metrics) {
        char err[512];
        w.metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!w.metrics) {
            zp_error("worker %s: %s", w.id, err);
            goto fail_alloc;
        }
    }
    if (w.isolated && s_exec_spawn(&w) < 0)
        goto fail_alloc;

    w.ctx = zmq_ctx_new();
    if (!w.ctx)
        goto fail_exec;
    char vent_key[ZP_CURVE_KEY_LEN + 1], sink_key[ZP_CURVE_KEY_LEN + 1];
    {
        char err[1024];
        w.curve = zp_curve_new(w.ctx, &cfg->curve, err, sizeof err);
        if (!w.curve ||
            zp_curve_peer_key(w.curve, "ventilator-key", cfg->ventilator_key,
                              vent_key, err, sizeof err) < 0 ||
            zp_curve_peer_key(w.curve, "sink-key", cfg->sink_key, sink_key, err,
                              sizeof err) < 0) {
            zp_error("worker: %s", err);
            goto fail_ctx;
        }
    }
    w.results =
        zp_socket(w.ctx, ZMQ_PUSH, cfg->sink, false, 0, w.curve, sink_key);
    if (!w.results)
        goto fail_ctx;
    w.tasks = zmq_socket(w.ctx, w.credit_mode ? ZMQ_DEALER : ZMQ_PULL);
    if (!w.tasks)
        goto fail_ctx;
    zp_fast_reconnect(w.tasks);
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
        if (zp_curve_apply(w.curve, w.tasks, cfg->ventilator, false, vent_key) <
            0)
            goto fail_ctx;
        if (zmq_connect(w.tasks, cfg->ventilator) != 0) {
            zp_error("connect %s: %s", cfg->ventilator, zmq_strerror(errno));
            goto fail_ctx;
        }
    }
    zp_info(
        "worker %s connected to %s (%s dispatch, window %llu, %s) and %s", w.id,
        cfg->ventilator, cfg->dispatch, (unsigned long long)cfg->window,
        w.isolated ? "plugins in an executor process" : "plugins in process",
        cfg->sink);
    if (w.credit_mode && s_send_hello(&w) < 0)
        goto fail_ctx;

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    uint64_t drain_until = 0;
    while (!w.fatal) {
        if (zp_stopping()) {
            /* Drain: finish the running batch (briefly), take nothing new. */
            if (!drain_until)
                drain_until = zp_mono_us() + S_DRAIN_US;
            if (!w.isolated || !w.ex.busy || zp_mono_us() > drain_until)
                break;
        }
        bool exec_io = w.isolated && w.ex.fd >= 0;
        zmq_pollitem_t items[] = {
            {w.tasks, 0, ZMQ_POLLIN, 0},
            {NULL, w.ex.fd,
             (short)(ZMQ_POLLIN |
                     (w.ex.woff < w.ex.wbuf.len ? ZMQ_POLLOUT : 0)),
             0}};
        long timeout =
            w.isolated && w.ex.busy ? 20 : (long)(cfg->heartbeat_ms / 2 + 1);
        if (w.metrics && timeout > 250)
            timeout = 250;
        if (drain_until)
            items[0].events = 0;
        int n = zmq_poll(items, exec_io ? 2 : 1, timeout);
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
        if (exec_io && (items[1].revents & ZMQ_POLLOUT))
            s_exec_flush(&w.ex);
        if (exec_io && (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            if (!s_exec_read(&w)) {
                s_exec_died(&w);
                if (w.fatal)
                    break;
            }
        }
        if (w.isolated && w.ex.fd >= 0) {
            s_exec_check_deadline(&w);
            if (!drain_until)
                s_exec_next(&w);
        }
        if (w.credit_mode) {
            s_maybe_grant(&w);
            if (zp_mono_us() - w.last_sent_us >= cfg->heartbeat_ms * 1000)
                s_send_heartbeat(&w);
        }
        if (w.metrics) {
            uint64_t now = zp_mono_us();
            if (zp_metrics_due(w.metrics, now))
                s_metrics_render(&w, now);
        }
    }
    zmq_msg_close(&frame);
    s_flush_results(&w);
    if (w.credit_mode) {
        Zpipe__V1__Bye bye = ZPIPE__V1__BYE__INIT;
        bye.reason = w.fatal ? "cannot run plugins" : "stopping";
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_BYE;
        m.bye = &bye;
        zp_send(w.tasks, NULL, 0, &m, &w.scratch, ZMQ_DONTWAIT);
    }
    zp_info(
        "worker %s stopping: %llu tasks done, window %llu, max held %llu, "
        "window violations %llu, bad messages %llu, executor restarts "
        "%llu",
        w.id, (unsigned long long)w.completed, (unsigned long long)cfg->window,
        (unsigned long long)w.max_held, (unsigned long long)w.violations,
        (unsigned long long)w.bad_messages, (unsigned long long)w.ex.restarts);
    rc = w.fatal ? 3 : 0;

fail_ctx:
    if (w.tasks) {
        /* The bye is best effort: a short linger lets it reach the wire
         * (with none it was mostly dropped, and the ventilator took a
         * worker that said bye for dead) but never waits long on a
         * ventilator that is gone. */
        int linger = 200;
        zmq_setsockopt(w.tasks, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(w.tasks);
    }
    if (w.results)
        zmq_close(w.results);
    zp_curve_destroy(&w.curve);
    zmq_ctx_term(w.ctx);
fail_exec:
    if (w.isolated)
        s_exec_stop(&w);
fail_alloc:
    zp_metrics_destroy(&w.metrics);
    while (w.q_len) {
        zmq_msg_close(&w.queue[w.q_head].frame);
        w.q_head = (w.q_head + 1) % w.q_cap;
        w.q_len--;
    }
    free(w.queue);
    zp_plugins_destroy(&w.plugins);
    zp_arena_destroy(&w.arena);
    zp_arena_destroy(&w.ex.cur_arena);
    zmq_msg_close(&w.ex.cur_frame);
    zmq_msg_close(&w.ex.next_frame);
    zp_task_view_free(&w.view);
    zp_buf_free(&w.ex.rbuf);
    zp_buf_free(&w.ex.wbuf);
    free(w.ex.cur_job);
    free(w.ex.cur_plugin);
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
