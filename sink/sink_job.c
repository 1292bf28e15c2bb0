/* sink_job: the job table (see sink_job.h). */
#include "sink_job.h"
#include "zp_util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Buckets of a new index; it doubles when there are more jobs. */
#define S_FIRST_BUCKETS 64

zp_sink_job_t *zp_jobs_find(const zp_jobs_t *self, const char *id)
{
    if (!self->buckets)
        return NULL;
    zp_sink_job_t *j = self->buckets[zp_hash_str(id) & (self->n_buckets - 1)];
    for (; j; j = j->hnext)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void s_index(zp_jobs_t *self, zp_sink_job_t *j)
{
    zp_sink_job_t **b =
        &self->buckets[zp_hash_str(j->id) & (self->n_buckets - 1)];
    j->hnext = *b;
    *b = j;
}

/* Room in the index for one more job: the first buckets, or twice as
 * many once there are as many jobs as buckets (when that allocation
 * fails the chains only grow longer). Returns -1 when there is no index
 * at all. */
static int s_index_room(zp_jobs_t *self)
{
    if (self->buckets && self->count < self->n_buckets)
        return 0;
    size_t n = self->buckets ? 2 * self->n_buckets : S_FIRST_BUCKETS;
    zp_sink_job_t **b = calloc(n, sizeof *b);
    if (!b)
        return self->buckets ? 0 : -1;
    free(self->buckets);
    self->buckets = b;
    self->n_buckets = n;
    for (zp_sink_job_t *j = self->head; j; j = j->link)
        s_index(self, j);
    return 0;
}

zp_sink_job_t *zp_jobs_get(zp_jobs_t *self, const char *id, bool *is_new)
{
    zp_sink_job_t *j = zp_jobs_find(self, id);
    if (is_new)
        *is_new = j == NULL;
    if (j)
        return j;
    if (s_index_room(self) < 0)
        return NULL;
    j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = strdup(id);
    if (!j->id) {
        free(j);
        return NULL;
    }
    zp_ledger_init(&j->ledger);
    j->ledger.sums = &self->sums;
    j->link = self->head;
    if (self->head)
        self->head->newer = j;
    else
        self->tail = j;
    self->head = j;
    s_index(self, j);
    self->count++;
    return j;
}

static void s_free_workers(zp_sink_job_t *j)
{
    for (size_t i = 0; i < j->n_workers; i++)
        free(j->workers[i].id);
    free(j->workers);
    j->workers = NULL;
    j->n_workers = 0;
}

static void s_job_free(zp_sink_job_t *j)
{
    zp_reduce_job_fini(&j->reduce);
    zp_order_fini(&j->order);
    s_free_workers(j);
    zp_ledger_fini(&j->ledger);
    zp_fetch_fini(&j->fetch);
    zp_waiters_fini(&j->waiters);
    free(j->token);
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
    free(self->buckets);
    zp_retain_fini(&self->forgotten);
    size_t retain = self->retain, ids = self->forgotten.cap;
    *self = (zp_jobs_t){0};
    zp_jobs_set_retain(self, retain, ids);
}

void zp_jobs_set_retain(zp_jobs_t *self, size_t jobs, size_t ids)
{
    self->retain = jobs;
    self->forgotten.cap = ids;
}

void zp_jobs_touch(zp_jobs_t *self, zp_sink_job_t *job)
{
    if (job->dirty)
        return;
    job->dirty = true;
    job->next_dirty = self->dirty;
    self->dirty = job;
}

zp_sink_job_t *zp_jobs_take_dirty(zp_jobs_t *self)
{
    zp_sink_job_t *list = self->dirty;
    self->dirty = NULL;
    for (zp_sink_job_t *j = list; j; j = j->next_dirty)
        j->dirty = false;
    return list;
}

/* Puts job last on the released list; the workers of the last
 * ZP_JOBS_KEEP_WORKERS released are kept, older ones freed. */
static void s_keep_workers(zp_jobs_t *self, zp_sink_job_t *job)
{
    job->next_done = NULL;
    if (self->done_newest)
        self->done_newest->next_done = job;
    else
        self->done_oldest = job;
    self->done_newest = job;
    self->n_released++;
    if (!self->workers_from)
        self->workers_from = job;
    if (++self->n_done_workers <= ZP_JOBS_KEEP_WORKERS)
        return;
    s_free_workers(self->workers_from);
    self->workers_from = self->workers_from->next_done;
    self->n_done_workers--;
}

void zp_jobs_release(zp_jobs_t *self, zp_sink_job_t *job)
{
    if (job->released || job->ledger.state != ZP_JOB_DONE)
        return;
    zp_ledger_release(&job->ledger);
    zp_order_fini(&job->order);
    zp_reduce_job_release(&job->reduce);
    if (!job->fetch.n)
        zp_fetch_fini(&job->fetch);
    if (!job->waiters.n)
        zp_waiters_fini(&job->waiters);
    job->released = true;
    s_keep_workers(self, job);
}

zp_sink_job_t *zp_jobs_forgettable(const zp_jobs_t *self)
{
    zp_sink_job_t *j = self->done_oldest;
    if (!self->retain || self->n_released <= self->retain || !j)
        return NULL;
    if (j->dirty || j->fetch.n || j->waiters.n || j->spool.pending)
        return NULL; /* tried again at the next release */
    return j;
}

/* Takes j out of its hash bucket and the list of jobs. */
static void s_unlink(zp_jobs_t *self, zp_sink_job_t *j)
{
    zp_sink_job_t **b =
        &self->buckets[zp_hash_str(j->id) & (self->n_buckets - 1)];
    while (*b != j)
        b = &(*b)->hnext;
    *b = j->hnext;
    if (j->newer)
        j->newer->link = j->link;
    else
        self->head = j->link;
    if (j->link)
        j->link->newer = j->newer;
    else
        self->tail = j->newer;
    self->count--;
}

void zp_jobs_forget(zp_jobs_t *self, zp_sink_job_t **job_p)
{
    zp_sink_job_t *j = *job_p;
    *job_p = NULL;
    /* Only the oldest released job is forgotten (zp_jobs_forgettable). */
    if (j != self->done_oldest)
        return;
    zp_retain_entry_t e = {.total = j->ledger.total,
                           .succeeded = j->ledger.succeeded,
                           .spooled = j->spool.gone ? ZP_RETAIN_SPOOL_GONE
                                                    : j->spool.flushed,
                           .reduce_failed = j->reduce.error != NULL};
    zp_retain_add(&self->forgotten, j->id, j->token, e);
    self->done_oldest = j->next_done;
    if (!self->done_oldest)
        self->done_newest = NULL;
    if (self->workers_from == j) {
        self->workers_from = j->next_done;
        self->n_done_workers--;
    }
    self->n_released--;
    self->n_forgotten++;
    s_unlink(self, j);
    /* Its counters stay in the sums: they count the sink's whole life. */
    j->ledger.sums = NULL;
    s_job_free(j);
}

zp_sink_job_t *zp_sink_job_of_spool(zp_spool_t *spool)
{
    return (zp_sink_job_t *)(void *)((char *)spool -
                                     offsetof(zp_sink_job_t, spool));
}

void zp_sink_job_worker(zp_sink_job_t *job, const char *worker, size_t fresh,
                        uint32_t window, uint32_t max_held)
{
    if (job->ledger.state == ZP_JOB_DONE && !fresh)
        return; /* duplicates after the end: not the job's work */
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

zp_fetch_source_t zp_sink_job_source(zp_sink_job_t *job, zp_store_t *store)
{
    return (zp_fetch_source_t){
        .fd = job->spool.flushed && !job->spool.gone
                  ? zp_store_spool_fd(store, &job->spool, job->id)
                  : -1,
        .flushed = job->spool.flushed,
        .done = job->ledger.state == ZP_JOB_DONE,
        .gone = job->spool.gone,
    };
}

bool zp_sink_job_has(void *job, uint64_t id)
{
    const zp_sink_job_t *j = job;
    return j->ledger.state != ZP_JOB_DONE && zp_ledger_has(&j->ledger, id);
}

bool zp_sink_job_written(const zp_sink_job_t *job, bool ordered, uint64_t task)
{
    if (!zp_ledger_has(&job->ledger, task))
        return false;
    return !ordered || job->ledger.state == ZP_JOB_DONE ||
           job->reduce.reducer || task < zp_order_next(&job->order);
}
