/* sink_refold: the reduced jobs across a restart of the sink. Carries out
 * what the fold logs (sink_foldlog.h) and the journal's ledger say: a
 * reduced job gets its reducer back and folds again, once each, the
 * results the journal has (a task's output folded but never acknowledged
 * is skipped: it is sent again). */
#define _GNU_SOURCE
#include "sink_shell.h"
#include "zp_bitset.h"
#include "zp_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zp_sink_t *s;
    zp_sink_job_t *j;
    zp_bitset_t seen; /* tasks folded again */
    uint64_t folded, skipped;
    bool nomem;
} s_refold_t;

static bool s_on_plugin(void *ctx, const char *plugin)
{
    s_refold_t *r = ctx;
    zp_reduce_open(r->s->reduce, &r->j->reduce, r->j->id, plugin);
    if (r->j->reduce.reducer)
        return true;
    zp_error("job %s: its fold log names the reducer %s, which this sink "
             "does not have (restart it with the same --reduce); the job "
             "cannot be reduced",
             r->j->id, plugin);
    return false;
}

static bool s_on_entry(void *ctx, uint64_t task, const void *data, size_t len)
{
    s_refold_t *r = ctx;
    if (!zp_sink_job_has(r->j, task)) {
        r->skipped++; /* never acknowledged: cut here, the task comes again */
        return false;
    }
    int fresh = zp_bitset_set(&r->seen, task);
    if (fresh <= 0) {
        r->nomem |= fresh < 0;
        r->skipped += fresh == 0; /* folded, lost its ack, sent again */
        return true;
    }
    zp_reduce_fold(&r->j->reduce, data, len, task);
    r->folded++;
    return true;
}

/* Keeps why job j's reduction is wrong (its first failure stays). */
static void s_fail(zp_sink_job_t *j, const char *why)
{
    zp_error("job %s: %s", j->id, why);
    if (!j->reduce.error)
        j->reduce.error = strdup(why);
}

/* One fold log in the directory. */
static void s_resume_one(void *ctx, const char *job)
{
    zp_sink_t *s = ctx;
    zp_foldlogs_t *folds = zp_store_folds(s->store);
    zp_sink_job_t *j = zp_jobs_find(&s->jobs, job);
    if (!j || j->ledger.state == ZP_JOB_DONE || j->reduce.final_written) {
        /* Its final record is durable, or its open never was. */
        if (zp_foldlogs_remove(folds, job) < 0)
            zp_warn("fold log of job %s: cannot remove it", job);
        return;
    }
    static const zp_foldlog_visitor_t v = {s_on_plugin, s_on_entry};
    s_refold_t r = {.s = s, .j = j};
    uint64_t torn = 0;
    j->reduce.fold = zp_foldlogs_resume(folds, job, &v, &r, &torn);
    zp_bitset_free(&r.seen);
    if (!j->reduce.reducer)
        return; /* logged */
    char why[200];
    if (!j->reduce.fold || r.nomem)
        s_fail(j, "its fold log could not be read (out of memory?): the "
                  "reduction misses results");
    else if (r.folded < j->ledger.succeeded) {
        snprintf(why, sizeof why,
                 "its fold log lacks %llu of the %llu results the journal "
                 "has (lost with a power loss and --journal-sync no?)",
                 (unsigned long long)(j->ledger.succeeded - r.folded),
                 (unsigned long long)j->ledger.succeeded);
        s_fail(j, why);
    }
    zp_info("job %s: reducer %s folded again %llu results from its fold log "
            "(%llu skipped, %llu torn bytes cut)",
            j->id, j->reduce.reducer->desc.name, (unsigned long long)r.folded,
            (unsigned long long)r.skipped, (unsigned long long)torn);
}

void zp_sink_folds_resume(zp_sink_t *s)
{
    zp_foldlogs_scan(zp_store_folds(s->store), s_resume_one, s);
}

/* The first reduced job that is complete and not done yet, or NULL. */
static zp_sink_job_t *s_complete(zp_sink_t *s)
{
    for (zp_sink_job_t *j = s->jobs.head; j; j = j->link)
        if (j->reduce.fold && j->ledger.state != ZP_JOB_DONE &&
            zp_ledger_complete(&j->ledger))
            return j;
    return NULL;
}

void zp_sink_folds_finish(zp_sink_t *s)
{
    zp_sink_job_t *j;
    /* One at a time: completing a job may forget older ones. */
    while ((j = s_complete(s))) {
        zp_sink_check_done(s, j); /* DONE, unless the barrier failed */
        if (zp_store_failed(s->store))
            return; /* logged */
    }
}

bool zp_sink_fold_open(zp_sink_t *s, zp_sink_job_t *j)
{
    zp_foldlogs_t *folds = zp_store_folds(s->store);
    if (!folds || !j->reduce.reducer || j->reduce.fold)
        return false;
    /* A job with successes but no fold log (lost with an unsynced
     * directory, or never made): a fresh log would reduce only what comes
     * now, silently leaving out what came before. */
    if (j->ledger.succeeded > 0) {
        s_fail(j, "its fold log is missing: the results it folded before "
                  "a restart are lost");
        return false;
    }
    j->reduce.fold =
        zp_foldlogs_create(folds, j->id, j->reduce.reducer->desc.name);
    if (!j->reduce.fold) {
        s_fail(j, "out of memory making its fold log: a restarted sink "
                  "could not reduce it");
        return false;
    }
    return true;
}
