/* wk_runner: plugin calls in this process and their classification (see
 * wk_runner.h). */
#include "wk_runner.h"
#include "zp_log.h"
#include "zp_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The call this thread is running process for, NULL outside one. The
 * host table's callbacks accept only that call, from that thread: a
 * call struct kept past its return (by a plugin's thread) may lie where
 * the running call's struct is now, so the pointer alone proves nothing,
 * and nothing read through it is trusted before this check. */
static _Thread_local const zpipe_call_t *s_active_call;
/* Output and error text refused for that, in this process, and where
 * the count is also kept (the executor's progress page), if anywhere. */
static _Atomic uint64_t s_refused;
static _Atomic(_Atomic uint64_t *) s_refused_mirror;

struct zp_wk_runner {
    const zp_worker_config_t *cfg; /* borrowed */
    const char *id;                /* borrowed */
    zpipe_host_t host;             /* host_private of each call: self */
    zp_plugins_t *plugins;
    /* The call under way: where its output goes, from which offset the
     * output limit counts, whether it overflowed, its error text. */
    zp_buf_t *out;
    size_t call_out_off;
    bool out_overflow;
    zp_buf_t call_err;
    zp_cause_t call_cause; /* named by the plugin (set_cause), or NONE */
    bool hit_limit;        /* a task ended in resource_limit */
};

zp_wk_verdict_t zp_wk_classify_claimed(int st, bool overflow,
                                       bool memory_limited, zp_cause_t claimed)
{
    zp_wk_verdict_t v = zp_wk_classify(st, overflow, memory_limited);
    if (claimed != ZP_CAUSE_NONE &&
        (v.cause == ZP_CAUSE_PLUGIN_ERROR || v.cause == ZP_CAUSE_PLUGIN_RETRY))
        v.cause = claimed;
    return v;
}

zp_wk_verdict_t zp_wk_classify(int st, bool overflow, bool memory_limited)
{
    zp_wk_verdict_t v = {.status = st};
    if (st == ZPIPE_OK && overflow) {
        v.status = ZPIPE_ERROR;
        v.cause = ZP_CAUSE_OUTPUT_TOO_LARGE;
        v.replace_text = true;
    }
    if (v.status == ZPIPE_OK)
        return v;
    v.retryable = ZPIPE_STATUS_IS_RETRYABLE(v.status);
    if (v.cause == ZP_CAUSE_NONE && v.status == ZPIPE_NOMEM && memory_limited) {
        v.cause = ZP_CAUSE_RESOURCE_LIMIT;
        v.retryable = false;
        v.hit_limit = true;
    }
    if (v.cause == ZP_CAUSE_NONE)
        v.cause = v.retryable ? ZP_CAUSE_PLUGIN_RETRY : ZP_CAUSE_PLUGIN_ERROR;
    return v;
}

/* Whether call is the one this thread is running; else counts and logs
 * (rate-limited) the refusal of what. */
static bool s_call_open(const zpipe_call_t *call, const char *what)
{
    if (call && call == s_active_call)
        return true;
    uint64_t n = atomic_fetch_add(&s_refused, 1) + 1;
    _Atomic uint64_t *mirror = atomic_load(&s_refused_mirror);
    if (mirror)
        atomic_store(mirror, n);
    if (zp_log_sampled(n))
        zp_warn("a plugin's %s came outside its process call (after it "
                "returned, or from another thread): refused (%llu so far)",
                what, (unsigned long long)n);
    return false;
}

uint64_t zp_wk_runner_refused(void)
{
    return atomic_load(&s_refused);
}

void zp_wk_runner_mirror_refused(_Atomic uint64_t *to)
{
    if (to)
        atomic_store(to, atomic_load(&s_refused));
    atomic_store(&s_refused_mirror, to);
}

/* The host table's callbacks reach the runner through host_private. */
static int s_host_append(zpipe_call_t *call, const void *data, size_t len)
{
    if (!s_call_open(call, "output"))
        return -1;
    zp_wk_runner_t *self = call->host_private;
    if (self->out_overflow ||
        self->out->len - self->call_out_off + len > self->cfg->max_output) {
        self->out_overflow = true;
        return -1;
    }
    return zp_buf_append(self->out, data, len);
}

static void s_host_set_error(zpipe_call_t *call, const char *message)
{
    if (!s_call_open(call, "error text"))
        return;
    zp_wk_runner_t *self = call->host_private;
    size_t n = strnlen(message ? message : "", ZP_WK_MAX_ERROR);
    self->call_err.len = 0;
    zp_buf_append(&self->call_err, message ? message : "", n);
}

static int s_host_set_cause(zpipe_call_t *call, const char *cause)
{
    if (!s_call_open(call, "cause"))
        return -1;
    zp_wk_runner_t *self = call->host_private;
    zp_cause_t c = zp_cause_claimable(cause);
    if (c == ZP_CAUSE_NONE)
        return -1;
    self->call_cause = c;
    return 0;
}

static void s_host_log(int level, const char *plugin, const char *message)
{
    zp_log_level_t l = level <= ZPIPE_LOG_ERROR  ? ZP_LOG_ERROR
                       : level == ZPIPE_LOG_WARN ? ZP_LOG_WARN
                       : level == ZPIPE_LOG_INFO ? ZP_LOG_INFO
                                                 : ZP_LOG_DEBUG;
    zp_log(l, "plugin %s: %s", plugin ? plugin : "?", message ? message : "");
}

zp_wk_runner_t *zp_wk_runner_new(const zp_worker_config_t *cfg, const char *id)
{
    zp_wk_runner_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->id = id;
    zpipe_host_t *host = &self->host;
    host->struct_size = sizeof *host;
    host->abi_major = ZPIPE_ABI_MAJOR;
    host->abi_minor = ZPIPE_ABI_MINOR;
    host->append = s_host_append;
    host->set_error = s_host_set_error;
    host->log = s_host_log;
    host->set_cause = s_host_set_cause;
    self->plugins = zp_plugins_new(&self->host);
    if (!self->plugins) {
        free(self);
        return NULL;
    }
    return self;
}

void zp_wk_runner_destroy(zp_wk_runner_t **self_p)
{
    zp_wk_runner_t *self = *self_p;
    if (!self)
        return;
    zp_plugins_destroy(&self->plugins);
    zp_buf_free(&self->call_err);
    free(self);
    *self_p = NULL;
}

zp_plugins_t *zp_wk_runner_plugins(zp_wk_runner_t *self)
{
    return self->plugins;
}

bool zp_wk_runner_hit_limit(const zp_wk_runner_t *self)
{
    return self->hit_limit;
}

char **zp_wk_runner_locate(const zp_wk_runner_t *self, size_t *n)
{
    const zp_worker_config_t *cfg = self->cfg;
    *n = 0;
    if (cfg->plugin_dirs.count || !cfg->plugins.count)
        return NULL;
    char **files = calloc(cfg->plugins.count, sizeof *files);
    char err[512];
    for (size_t i = 0; files && i < cfg->plugins.count; i++) {
        files[i] = zp_plugin_resolve(cfg->plugins.items[i], err, sizeof err);
        if (!files[i]) {
            for (size_t j = 0; j < i; j++)
                free(files[j]);
            free(files);
            return NULL;
        }
    }
    if (files)
        *n = cfg->plugins.count;
    return files;
}

int zp_wk_runner_load(zp_wk_runner_t *self, bool scan_dirs)
{
    const zp_worker_config_t *cfg = self->cfg;
    const zp_strlist_t *dirs = &cfg->plugin_dirs;
    char err[1024] = ""; /* zp_plugins_load may fail without a reason */
    if (cfg->plugins.count == 0 && dirs->count == 0) {
        zp_error("no plugin given (--plugin NAME or path, or --plugin-dir)");
        return -1;
    }
    if (zp_plugins_configure(self->plugins, cfg->plugin_config.items,
                             cfg->plugin_config.count, err, sizeof err) < 0) {
        zp_error("%s", err);
        return -1;
    }
    if (dirs->count && zp_plugins_restrict(self->plugins, dirs->items,
                                           dirs->count, err, sizeof err) < 0) {
        zp_error("%s", err);
        return -1;
    }
    for (size_t i = 0; i < cfg->plugins.count; i++) {
        if (!zp_plugins_load(self->plugins, cfg->plugins.items[i], err,
                             sizeof err)) {
            zp_error("plugin refused: %s", err);
            return -1;
        }
    }
    for (size_t i = 0; scan_dirs && i < dirs->count; i++)
        if (zp_plugins_load_dir(self->plugins, dirs->items[i], err,
                                sizeof err) < 0) {
            zp_error("%s", err);
            return -1;
        }
    if (zp_plugins_count(self->plugins) == 0) {
        zp_error("no usable plugin in %s%s", dirs->items[0],
                 dirs->count > 1 ? " or the other plugin directories" : "");
        return -1;
    }
    return 0;
}

/* Calls plugin's process on t and records the outcome in d. */
static void s_call(zp_wk_runner_t *self, const zp_plugin_t *plugin,
                   const char *job_id, const Zpipe__V1__Task *t,
                   zp_wk_done_t *d, zp_buf_t *out, zp_buf_t *err)
{
    /* Error text for this call goes to a side buffer, then is moved
     * behind the previous errors. */
    self->call_err.len = 0;
    self->call_cause = ZP_CAUSE_NONE;
    self->out = out;
    self->out_overflow = false;
    self->call_out_off = out->len;
    zpipe_call_t call = {
        .struct_size = sizeof call,
        .host = &self->host,
        .input = t->payload.data,
        .input_len = t->payload.len,
        .task_id = t->task_id,
        .attempt = d->attempt,
        .deadline_ms = t->deadline_ms ? t->deadline_ms : self->cfg->deadline_ms,
        .job_id = job_id,
        .host_private = self,
    };
    const zpipe_call_t *outer = s_active_call; /* NULL but when nested */
    s_active_call = &call;
    int st = plugin->desc.process(plugin->state, &call);
    s_active_call = outer;
    zp_wk_verdict_t v = zp_wk_classify_claimed(
        st, self->out_overflow, self->cfg->memory_limit != 0, self->call_cause);
    d->status = v.status;
    if (v.status == ZPIPE_OK)
        return;
    d->cause = v.cause;
    d->retryable = v.retryable;
    if (v.hit_limit)
        self->hit_limit = true;
    if (v.replace_text) {
        self->call_err.len = 0;
        zp_buf_printf(&self->call_err, "output exceeds %llu bytes",
                      (unsigned long long)self->cfg->max_output);
    }
    if (self->call_err.len == 0)
        zp_buf_printf(&self->call_err, "plugin %s returned status %d",
                      plugin->desc.name, v.status);
    zp_buf_append(err, self->call_err.data, self->call_err.len);
    /* A failed task outputs nothing. */
    out->len = d->out_off;
}

uint64_t zp_wk_runner_run_task(zp_wk_runner_t *self, const zp_plugin_t *plugin,
                               const char *plugin_name, const char *job_id,
                               const Zpipe__V1__Task *t, zp_wk_done_t *d,
                               zp_buf_t *out, zp_buf_t *err, uint64_t t0,
                               uint64_t start_us, const char *init_error)
{
    d->task_id = t->task_id;
    d->attempt = t->attempt ? t->attempt : 1;
    d->start_us = start_us;
    if (init_error) {
        /* The job's settings were refused: every task says why. */
        zp_buf_printf(err, "%s", init_error);
        d->status = ZPIPE_ERROR;
        d->cause = ZP_CAUSE_PLUGIN_INIT;
    } else if (!plugin) {
        zp_buf_printf(err, "worker %s has no plugin '%s'", self->id,
                      plugin_name);
        d->status = ZPIPE_ERROR;
        d->cause = ZP_CAUSE_NO_SUCH_PLUGIN;
    } else
        s_call(self, plugin, job_id, t, d, out, err);
    uint64_t end = zp_mono_us();
    d->elapsed_us = end - t0;
    return end;
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

/* Task timelines: a task the ventilator stamped (queued_us != 0) has its
 * queue and dispatch times carried into its result, so the sink sees the
 * attempt's whole life; an untraced task's result stays as it was. */
static void s_trace_echo(zp_wk_done_t *d, const Zpipe__V1__Task *t,
                         uint64_t dispatch_us)
{
    if (t->queued_us) {
        d->queued_us = t->queued_us;
        d->dispatch_us = dispatch_us;
    } else
        d->start_us = 0; /* only a trace reads it */
}

/* The plugin a batch runs on: a job with settings of its own runs on an
 * instance made for them. NULL when this worker lacks it; *refused when
 * the settings were refused (init_error says why). */
static const zp_plugin_t *s_batch_plugin(zp_wk_runner_t *self,
                                         const Zpipe__V1__TaskBatch *b,
                                         const char *job, const char *name,
                                         char *init_error, size_t errlen,
                                         bool *refused)
{
    const zp_plugin_t *plugin = zp_plugins_find(self->plugins, name);
    if (!plugin)
        zp_warn("job %s: %zu tasks for plugin '%s', which this worker lacks",
                job, b->n_tasks, name);
    *refused = false;
    if (plugin && b->config && *b->config) {
        const zp_plugin_t *inst = zp_plugins_instance(
            self->plugins, plugin, b->config, init_error, errlen);
        if (inst)
            plugin = inst;
        else {
            *refused = true;
            zp_warn("job %s: %s", job, init_error);
        }
    }
    return plugin;
}

void zp_wk_runner_run_batch(zp_wk_runner_t *self, zp_wk_results_t *results,
                            const Zpipe__V1__TaskBatch *b,
                            zp_wk_progress_t *progress,
                            const zp_wk_hooks_t *hooks)
{
    const char *job = b->job_id ? b->job_id : "";
    const char *name = b->plugin ? b->plugin : "";
    const char *pending = zp_wk_results_job(results);
    if (pending && strcmp(pending, job) != 0)
        hooks->flush(hooks->arg);
    char init_error[1024];
    bool refused;
    const zp_plugin_t *plugin = s_batch_plugin(self, b, job, name, init_error,
                                               sizeof init_error, &refused);
    zp_buf_t *out = zp_wk_results_out(results);
    zp_buf_t *err = zp_wk_results_err(results);
    /* One clock read per task: a task starts when the one before ended;
     * wall times are derived from one reading per batch. */
    uint64_t mono0 = 0, wall0 = 0;
    s_clock_pair(&mono0, &wall0);
    uint64_t t = mono0;
    for (size_t i = 0; i < b->n_tasks; i++) {
        const Zpipe__V1__Task *task = b->tasks[i];
        zp_wk_done_t *d = zp_wk_results_push(results, job, t);
        if (!d) {
            zp_error("out of memory holding results; task %s/%llu dropped", job,
                     (unsigned long long)task->task_id);
            continue;
        }
        /* Release stores, plain moves on x86: the worker reads these
         * while the call runs (its deadline) or once the executor died,
         * and never needs them ordered against its own stores; a
         * sequentially consistent store is a locked exchange, five of
         * which were most of this loop's time on empty tasks. */
        if (progress) {
            atomic_store_explicit(&progress->index, i, memory_order_release);
            atomic_store_explicit(&progress->start_us, t, memory_order_release);
            atomic_store_explicit(&progress->deadline_ms, task->deadline_ms,
                                  memory_order_release);
            atomic_store_explicit(&progress->busy, 1, memory_order_release);
        }
        uint64_t end = zp_wk_runner_run_task(self, plugin, name, job, task, d,
                                             out, err, t, wall0 + (t - mono0),
                                             refused ? init_error : NULL);
        if (progress)
            atomic_store_explicit(&progress->busy, 0, memory_order_release);
        s_trace_echo(d, task, b->dispatch_us);
        d->lease = task->lease;
        zp_wk_results_finish(results, d);
        bool slow = hooks->task_done(hooks->arg, d, task->payload.len, end);
        t = slow ? zp_mono_us() : end;
    }
}
