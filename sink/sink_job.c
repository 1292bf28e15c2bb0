/* sink_job: the job table (see sink_job.h). */
#include "sink_job.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

zp_sink_job_t *zp_jobs_find(const zp_jobs_t *self, const char *id)
{
    for (zp_sink_job_t *j = self->head; j; j = j->link)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

zp_sink_job_t *zp_jobs_get(zp_jobs_t *self, const char *id, bool *is_new)
{
    zp_sink_job_t *j = zp_jobs_find(self, id);
    if (is_new)
        *is_new = j == NULL;
    if (j)
        return j;
    j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = strdup(id);
    if (!j->id) {
        free(j);
        return NULL;
    }
    zp_ledger_init(&j->ledger);
    j->link = self->head;
    self->head = j;
    return j;
}

static void s_job_free(zp_sink_job_t *j)
{
    zp_reduce_job_fini(&j->reduce);
    zp_order_fini(&j->order);
    for (size_t i = 0; i < j->n_workers; i++)
        free(j->workers[i].id);
    free(j->workers);
    zp_ledger_fini(&j->ledger);
    free(j->id);
    free(j);
}

void zp_jobs_fini(zp_jobs_t *self)
{
    while (self->head) {
        zp_sink_job_t *next = self->head->link;
        s_job_free(self->head);
        self->head = next;
    }
}

void zp_sink_job_worker(zp_sink_job_t *job, const char *worker, size_t fresh,
                        uint32_t window, uint32_t max_held)
{
    const char *wid = worker ? worker : "";
    zp_wstat_t *w = NULL;
    for (size_t i = 0; i < job->n_workers; i++)
        if (strcmp(job->workers[i].id, wid) == 0)
            w = &job->workers[i];
    if (!w) {
        zp_wstat_t *ws =
            realloc(job->workers, (job->n_workers + 1) * sizeof *ws);
        if (!ws)
            return;
        job->workers = ws;
        w = &ws[job->n_workers];
        memset(w, 0, sizeof *w);
        w->id = strdup(wid);
        if (!w->id)
            return;
        job->n_workers++;
    }
    w->tasks += fresh;
    w->window = window;
    if (max_held > w->max_held)
        w->max_held = max_held;
}

zp_sink_job_t *zp_sink_job_of_spool(zp_spool_t *spool)
{
    return (zp_sink_job_t *)(void *)((char *)spool -
                                     offsetof(zp_sink_job_t, spool));
}

zp_fetch_source_t zp_sink_job_source(zp_sink_job_t *job, zp_store_t *store)
{
    return (zp_fetch_source_t){
        .fd = job->spool.flushed
                  ? zp_store_spool_fd(store, &job->spool, job->id)
                  : -1,
        .flushed = job->spool.flushed,
        .done = job->ledger.state == ZP_JOB_DONE,
    };
}

bool zp_sink_job_has(void *job, uint64_t id)
{
    const zp_sink_job_t *j = job;
    return j->ledger.state != ZP_JOB_DONE && zp_ledger_has(&j->ledger, id);
}
