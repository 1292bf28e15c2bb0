/* wk_runner: calls plugins: the loaded plugins and the host table they
 * call back through, one task's call with its outcome classified, and a
 * batch of them run in this process (the worker with isolation none, the
 * executor child, the probe). */
#ifndef ZP_WK_RUNNER_H
#define ZP_WK_RUNNER_H

#include "wk_progress.h"
#include "wk_results.h"
#include "worker.h"
#include "zp_codec.h"
#include "zp_plugin.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest error text kept from a plugin. */
#define ZP_WK_MAX_ERROR 4096

/* How a call's return is recorded. */
typedef struct {
    int status;        /* ZPIPE_OK, or the failure status */
    zp_cause_t cause;  /* ZP_CAUSE_NONE on success */
    bool retryable;    /* worth another attempt */
    bool hit_limit;    /* ran out of memory under --memory-limit */
    bool replace_text; /* the error text is the output limit's, not the
                          plugin's */
} zp_wk_verdict_t;

/* Pure: the record for a call that returned st, had overflowed the output
 * limit (overflow) or not, under a memory limit (memory_limited) or not. */
zp_wk_verdict_t zp_wk_classify(int st, bool overflow, bool memory_limited);
/* Pure: zp_wk_classify, then the cause the plugin claimed through
 * host->set_cause (ZP_CAUSE_NONE: none) in place of plugin_error or
 * plugin_retry; a cause the host found (output_too_large,
 * resource_limit) stands. The status alone decides retryable. */
zp_wk_verdict_t zp_wk_classify_claimed(int st, bool overflow,
                                       bool memory_limited, zp_cause_t claimed);

/* What a batch's caller does between tasks. */
typedef struct {
    /* Results of another job are pending before the batch: send them. */
    void (*flush)(void *arg);
    /* d was finished (pushed to the results and closed) with payload_len
     * bytes of input, at monotonic time end. Returns true when it did
     * something slow (sent results), so the next task's start is read
     * from the clock again. */
    bool (*task_done)(void *arg, const zp_wk_done_t *d, size_t payload_len,
                      uint64_t end);
    void *arg;
} zp_wk_hooks_t;

typedef struct zp_wk_runner zp_wk_runner_t;

/* A runner with the host table and an empty plugin set. cfg (its limits,
 * plugin options) and id (named in errors) are borrowed, valid until the
 * runner is destroyed. Caller owns the result; NULL on allocation
 * failure. */
zp_wk_runner_t *zp_wk_runner_new(const zp_worker_config_t *cfg, const char *id);
/* Runs the plugins' fini, unloads them, frees; nulls the caller's
 * pointer. */
void zp_wk_runner_destroy(zp_wk_runner_t **self_p);

/* Loads cfg's plugins with its settings and directory restriction; with
 * scan_dirs, also every plugin in the directories (the worker does; an
 * executor loads exactly the files its worker names). Returns 0, or -1
 * having logged why. */
int zp_wk_runner_load(zp_wk_runner_t *self, bool scan_dirs);
/* The files cfg's plugins are, found without loading them (so a worker
 * starts its executor while it loads its own copy): an array of n owned
 * paths (free each and the array), or NULL when that cannot be known
 * before loading (plugin directories, whose files are scanned and named
 * by their descriptors) or a name does not resolve (loading says why). */
char **zp_wk_runner_locate(const zp_wk_runner_t *self, size_t *n);
/* The plugin set; borrowed until the runner is destroyed. */
zp_plugins_t *zp_wk_runner_plugins(zp_wk_runner_t *self);

/* Runs task t of job on plugin (NULL: this worker lacks plugin_name;
 * init_error non-NULL: the job's settings were refused, every task says
 * why) and fills d, whose out_off was set (zp_wk_results_push): output is
 * appended to out, error text to err (not NUL-terminated). The task
 * started at monotonic time t0 (wall time start_us); returns the
 * monotonic time it ended. */
uint64_t zp_wk_runner_run_task(zp_wk_runner_t *self, const zp_plugin_t *plugin,
                               const char *plugin_name, const char *job_id,
                               const Zpipe__V1__Task *t, zp_wk_done_t *d,
                               zp_buf_t *out, zp_buf_t *err, uint64_t t0,
                               uint64_t start_us, const char *init_error);

/* Runs batch b here into results, calling hooks between tasks; with
 * progress, publishes the running task in it (the executor child). */
void zp_wk_runner_run_batch(zp_wk_runner_t *self, zp_wk_results_t *results,
                            const Zpipe__V1__TaskBatch *b,
                            zp_wk_progress_t *progress,
                            const zp_wk_hooks_t *hooks);

/* Output or error text a plugin gave outside its process call (after it
 * returned, or from another thread), refused, in this process so far. */
uint64_t zp_wk_runner_refused(void);
/* Keeps that count in *to as well from now on (NULL: nowhere), as it
 * grows: also between batches. to is borrowed until replaced. */
void zp_wk_runner_mirror_refused(_Atomic uint64_t *to);

/* Whether a task ended in resource_limit since the runner was made. */
bool zp_wk_runner_hit_limit(const zp_wk_runner_t *self);

#endif
