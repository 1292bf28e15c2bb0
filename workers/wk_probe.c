/* wk_probe: plugins outside a job: their descriptors (zpipe-worker
 * --describe) and one plugin called on given inputs (zpipe plugin check),
 * through the runner a worker uses: the same loader, host table, settings,
 * output limit and rules for status, cause and error text. */
#include "wk_inputs.h"
#include "wk_results.h"
#include "wk_runner.h"
#include "worker.h"
#include "zp_util.h"

#include <stdio.h>
#include <stdlib.h>

int zp_worker_describe(const zp_worker_config_t *cfg)
{
    zp_wk_runner_t *runner = zp_wk_runner_new(cfg, "describe");
    int rc = 3;
    if (runner && zp_wk_runner_load(runner, true) == 0) {
        zp_plugins_t *plugins = zp_wk_runner_plugins(runner);
        for (size_t i = 0; i < zp_plugins_count(plugins); i++) {
            const zp_plugin_t *p = zp_plugins_at(plugins, i);
            printf("%s\t%s\t%u.%u\t%s\t%s\t%s\n", p->desc.name,
                   p->desc.version ? p->desc.version : "", p->desc.abi_major,
                   p->desc.abi_minor, p->path,
                   p->desc.description ? p->desc.description : "",
                   p->desc.reduce ? "reducer" : "");
        }
        rc = 0;
    }
    zp_wk_runner_destroy(&runner);
    return rc;
}

struct zp_worker_probe {
    zp_wk_runner_t *runner;
    zp_wk_inputs_t *inputs;    /* the input, read-only during the call */
    const zp_plugin_t *plugin; /* borrowed from the runner's set */
    zp_buf_t out, err;         /* the last call's */
};

zp_worker_probe_t *zp_worker_probe_new(const zp_worker_config_t *cfg, char *err,
                                       size_t errlen)
{
    zp_worker_probe_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->runner = zp_wk_runner_new(cfg, "probe");
    self->inputs = zp_wk_inputs_new();
    if (!self->runner || !self->inputs || cfg->plugins.count != 1) {
        snprintf(err, errlen, "%s",
                 self->runner && self->inputs ? "give exactly one plugin"
                                              : "out of memory");
        goto fail_probe;
    }
    zp_plugins_t *plugins = zp_wk_runner_plugins(self->runner);
    if (zp_plugins_configure(plugins, cfg->plugin_config.items,
                             cfg->plugin_config.count, err, errlen) < 0)
        goto fail_probe;
    self->plugin = zp_plugins_load(plugins, cfg->plugins.items[0], err, errlen);
    if (!self->plugin)
        goto fail_probe;
    return self;

fail_probe:
    zp_wk_inputs_destroy(&self->inputs);
    zp_wk_runner_destroy(&self->runner);
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
    /* As in an executor: the input read-only, so a plugin that writes to
     * it (or past its end) crashes here too, on this input. */
    const uint8_t *copy = NULL;
    bool sealed = false;
    if (zp_wk_inputs_load(self->inputs, input, len, &copy) == 0) {
        input = copy;
        sealed = zp_wk_inputs_seal(self->inputs) == 0;
    }
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT;
    t.task_id = task_id;
    t.payload.data = (uint8_t *)input;
    t.payload.len = len;
    t.attempt = 1;
    zp_wk_done_t d = {0};
    self->out.len = 0;
    self->err.len = 0;
    uint64_t t0 = zp_mono_us();
    zp_wk_runner_run_task(self->runner, self->plugin, self->plugin->desc.name,
                          "check", &t, &d, &self->out, &self->err, t0,
                          zp_now_us(), NULL);
    if (sealed)
        zp_wk_inputs_unseal(self->inputs);
    /* NUL-terminate the error text without counting it. */
    if (zp_buf_append(&self->err, "", 1) == 0)
        self->err.len--;
    *outcome = (zp_worker_outcome_t){
        .status = d.status,
        .cause = zp_cause_name(d.cause),
        .output = (const uint8_t *)self->out.data,
        .output_len = self->out.len,
        .error = self->err.data ? self->err.data : "",
        .error_len = self->err.len,
        .elapsed_us = d.elapsed_us,
    };
}

void zp_worker_probe_destroy(zp_worker_probe_t **self_p)
{
    zp_worker_probe_t *self = *self_p;
    if (!self)
        return;
    zp_wk_runner_destroy(&self->runner);
    zp_wk_inputs_destroy(&self->inputs);
    zp_buf_free(&self->out);
    zp_buf_free(&self->err);
    free(self);
    *self_p = NULL;
}
