/* sink_reduce: --reduce. Loads the reducer plugins, gives each job of a
 * reduced plugin its accumulator, folds its successful results into it
 * and computes the job's one reduced value when it is complete. */
#ifndef ZP_SINK_REDUCE_H
#define ZP_SINK_REDUCE_H

#include "sink_foldlog.h"
#include "zp_opts.h"
#include "zp_plugin.h"
#include "zp_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct zp_reduce zp_reduce_t;

/* One job's reduction; zero-initialise, zp_reduce_job_fini releases. */
typedef struct {
    const zp_plugin_t *reducer; /* NULL: the job is not reduced */
    void *acc;                  /* the reducer's accumulator */
    char *error;                /* the first failure of reduce, if any */
    zp_foldlog_t *fold;         /* what it folded, on disk (a journaled sink);
                                   borrowed from the store's fold logs */
    bool final_written; /* journal replay: its final record is written */
} zp_reduce_job_t;

/* Loads each of plugins (borrowed for the call), with its settings
 * config ("PLUGIN.KEY=VALUE"); each must have a reducer. A reduced value
 * may be at most max_value bytes. Logs why and returns NULL when one
 * cannot be loaded. Caller owns the result. */
zp_reduce_t *zp_reduce_new(const zp_strlist_t *plugins,
                           const zp_strlist_t *config, uint64_t max_value);
/* Unloads the reducers; nulls the caller's pointer. Every job's
 * accumulator must have been released first. */
void zp_reduce_destroy(zp_reduce_t **self_p);

/* On JobOpen of job_id for plugin (NULL = unknown): when the plugin is
 * reduced here and the job has no reducer yet, gives the job its
 * accumulator (a failing reduce_init is logged and kept as the job's
 * error). */
void zp_reduce_open(zp_reduce_t *self, zp_reduce_job_t *job, const char *job_id,
                    const char *plugin);
/* Folds task's output into the job's accumulator (nothing once reduce has
 * failed; its first failure is kept). */
void zp_reduce_fold(zp_reduce_job_t *job, const void *data, size_t len,
                    uint64_t task);
/* The job is complete (total tasks): computes its reduced value into
 * *value (borrowed from self until the next call). Returns true when it
 * succeeded; else job->error says why. */
bool zp_reduce_final(zp_reduce_t *self, zp_reduce_job_t *job,
                     const char *job_id, uint64_t total,
                     const zp_buf_t **value);
/* A finished job: releases its accumulator, keeps its error. */
void zp_reduce_job_release(zp_reduce_job_t *job);
/* Releases the job's accumulator and error. */
void zp_reduce_job_fini(zp_reduce_job_t *job);

#endif
