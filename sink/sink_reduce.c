/* sink_reduce: reducer plugins and per-job accumulation (see
 * sink_reduce.h). */
#define _GNU_SOURCE
#include "sink_reduce.h"
#include "zp_log.h"
#include "zp_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zp_reduce {
    zpipe_host_t host; /* the plugins' table: append to reduced */
    zp_plugins_t *plugins;
    uint64_t max_value;
    zp_buf_t reduced;
    bool too_big;
};

static int s_append(zpipe_call_t *call, const void *data, size_t len)
{
    zp_reduce_t *self = call->host_private;
    if (self->reduced.len + len > self->max_value) {
        self->too_big = true;
        return -1;
    }
    return zp_buf_append(&self->reduced, data, len);
}

static void s_set_error(zpipe_call_t *call, const char *message)
{
    (void)call;
    zp_warn("reducer: %s", message ? message : "");
}

static void s_log(int level, const char *plugin, const char *message)
{
    if (level <= ZPIPE_LOG_ERROR)
        zp_error("reducer %s: %s", plugin, message);
    else if (level == ZPIPE_LOG_WARN)
        zp_warn("reducer %s: %s", plugin, message);
    else
        zp_info("reducer %s: %s", plugin, message);
}

static int s_load(zp_reduce_t *self, const zp_strlist_t *plugins,
                  const zp_strlist_t *config)
{
    char err[1024] = "out of memory"; /* not all refusals fill it */
    self->plugins = zp_plugins_new(&self->host);
    if (!self->plugins ||
        zp_plugins_configure(self->plugins, config->items, config->count, err,
                             sizeof err) < 0) {
        zp_error("%s", self->plugins ? err : "out of memory");
        return -1;
    }
    for (size_t i = 0; i < plugins->count; i++) {
        const zp_plugin_t *p =
            zp_plugins_load(self->plugins, plugins->items[i], err, sizeof err);
        if (!p) {
            zp_error("reducer refused: %s", err);
            return -1;
        }
        if (!p->desc.reduce) {
            zp_error("reducer refused: %s: plugin '%s' has no reducer", p->path,
                     p->desc.name);
            return -1;
        }
        zp_info("jobs of plugin %s are reduced here", p->desc.name);
    }
    return 0;
}

zp_reduce_t *zp_reduce_new(const zp_strlist_t *plugins,
                           const zp_strlist_t *config, uint64_t max_value)
{
    zp_reduce_t *self = calloc(1, sizeof *self);
    if (!self) {
        zp_error("out of memory");
        return NULL;
    }
    self->host.struct_size = sizeof self->host;
    self->host.abi_major = ZPIPE_ABI_MAJOR;
    self->host.abi_minor = ZPIPE_ABI_MINOR;
    self->host.append = s_append;
    self->host.set_error = s_set_error;
    self->host.log = s_log;
    self->max_value = max_value;
    if (s_load(self, plugins, config) < 0)
        zp_reduce_destroy(&self);
    return self;
}

void zp_reduce_destroy(zp_reduce_t **self_p)
{
    zp_reduce_t *self = *self_p;
    if (!self)
        return;
    zp_plugins_destroy(&self->plugins);
    zp_buf_free(&self->reduced);
    free(self);
    *self_p = NULL;
}

void zp_reduce_open(zp_reduce_t *self, zp_reduce_job_t *job, const char *job_id,
                    const char *plugin)
{
    if (!self || job->reducer || !plugin)
        return;
    const zp_plugin_t *p = zp_plugins_find(self->plugins, plugin);
    if (!p)
        return;
    void *acc = NULL;
    int rc =
        p->desc.reduce_init ? p->desc.reduce_init(p->host, &acc) : ZPIPE_OK;
    if (rc != ZPIPE_OK) {
        const char *why = zp_plugin_init_error(p);
        if (asprintf(&job->error, "reduce_init failed: %s",
                     *why ? why : "no reason given") < 0)
            job->error = strdup("reduce_init failed");
        zp_error("job %s: reducer %s: %s", job_id, plugin,
                 job->error ? job->error : "reduce_init failed");
    }
    job->reducer = p;
    job->acc = acc;
}

void zp_reduce_fold(zp_reduce_job_t *job, const void *data, size_t len,
                    uint64_t task)
{
    if (job->error)
        return;
    int rs = job->reducer->desc.reduce(job->acc, data, len);
    if (rs != ZPIPE_OK &&
        asprintf(&job->error, "reduce returned status %d on task %llu", rs,
                 (unsigned long long)task) < 0)
        job->error = NULL;
}

bool zp_reduce_final(zp_reduce_t *self, zp_reduce_job_t *job,
                     const char *job_id, uint64_t total, const zp_buf_t **value)
{
    self->reduced.len = 0;
    self->too_big = false;
    zpipe_call_t call = {
        .struct_size = sizeof call,
        .host = job->reducer->host,
        .input = (const uint8_t *)"",
        .task_id = total,
        .attempt = 1,
        .job_id = job_id,
        .host_private = self,
    };
    /* The plugin's host table appends through the sink's template. */
    int rc = job->error ? ZPIPE_ERROR
                        : job->reducer->desc.reduce_final(job->acc, &call);
    if (rc != ZPIPE_OK && !job->error &&
        asprintf(&job->error, "%s",
                 self->too_big ? "the reduced value is too large"
                               : "reduce_final failed") < 0)
        job->error = NULL;
    bool ok = rc == ZPIPE_OK;
    if (!ok && !job->error)
        job->error = strdup("reduce failed"); /* told to the opener */
    *value = &self->reduced;
    return ok;
}

void zp_reduce_job_release(zp_reduce_job_t *job)
{
    if (job->acc && job->reducer->desc.reduce_fini)
        job->reducer->desc.reduce_fini(job->acc);
    job->acc = NULL;
}

void zp_reduce_job_fini(zp_reduce_job_t *job)
{
    zp_reduce_job_release(job);
    free(job->error);
    job->error = NULL;
}
