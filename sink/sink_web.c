/* sink_web: what the sink's web view shows, and the page itself (built
 * from sink/web/index.html into the binary by sink/web/embed.cmake). */
#include "sink_web.h"
#include "zp_log.h"
#include "zp_util.h"

#include <stdlib.h>
#include <string.h>

/* The page, generated at build time. */
extern const unsigned char zp_sink_web_page[];
extern const size_t zp_sink_web_page_len;

#define S_ID_MAX    128 /* bytes of a job or worker id kept */
#define S_CAUSE_MAX 64

typedef struct {
    uint64_t time_us, task;
    uint32_t attempt;
    char job[S_ID_MAX + 1];
    char worker[S_ID_MAX + 1];
    char cause[S_CAUSE_MAX + 1];
    char error[ZP_SINK_WEB_ERROR_MAX + 1];
} s_failure_t;

typedef struct {
    char *id;
    uint64_t tasks;      /* records committed from this worker */
    uint64_t tasks_mark; /* tasks at the last history sample */
    double rate;         /* tasks/s between the last two samples */
    uint64_t last_us;    /* Unix µs of its last batch */
} s_worker_t;

typedef struct {
    uint64_t time_us;
    double rate;
} s_sample_t;

struct zp_sink_web {
    zp_metrics_t *metrics; /* borrowed */
    int state_doc;
    char *instance;
    s_failure_t failures[ZP_SINK_WEB_FAILURES]; /* a ring */
    size_t failure_next, failure_count;
    uint64_t failures_seen;
    s_worker_t *workers;
    size_t n_workers, cap_workers, last_worker;
    uint64_t untracked; /* batches from workers past the cap */
    s_sample_t history[ZP_SINK_WEB_HISTORY]; /* a ring */
    size_t history_next, history_count;
    uint64_t mark_mono_us, mark_done; /* the last sample */
    double rate;
    /* The render in progress. */
    uint64_t mono_us, now_us;
    zp_buf_t jobs;
    size_t n_jobs;
    uint64_t done, succeeded, failed, retries, duplicates;
    bool oom;
};

zp_sink_web_t *zp_sink_web_new(zp_metrics_t *metrics, const char *instance)
{
    zp_sink_web_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->metrics = metrics;
    self->instance = strdup(instance ? instance : "");
    if (!self->instance)
        goto fail_alloc;
    if (zp_metrics_serve(metrics, "/", "text/html; charset=utf-8",
                         zp_sink_web_page, zp_sink_web_page_len) < 0)
        goto fail_instance;
    self->state_doc =
        zp_metrics_serve(metrics, "/api/state", "application/json", NULL, 0);
    if (self->state_doc < 0)
        goto fail_instance;
    zp_info("web view: serving http://%s:%u/ (state at /api/state)",
            zp_metrics_host(metrics), zp_metrics_port(metrics));
    return self;

fail_instance:
    free(self->instance);
fail_alloc:
    free(self);
    return NULL;
}

void zp_sink_web_destroy(zp_sink_web_t **self_p)
{
    zp_sink_web_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n_workers; i++)
        free(self->workers[i].id);
    free(self->workers);
    zp_buf_free(&self->jobs);
    free(self->instance);
    free(self);
    *self_p = NULL;
}

/* True when kept, an id cut to S_ID_MAX bytes, is id's entry (ids that
 * share their first S_ID_MAX bytes share it). */
static bool s_id_is(const char *kept, const char *id)
{
    size_t n = strnlen(id, S_ID_MAX);
    return strncmp(kept, id, n) == 0 && kept[n] == 0;
}

/* The worker's entry, added when new; NULL past the cap or out of memory.
 * Batches come in runs from the same few workers: the last one found is
 * tried first. */
static s_worker_t *s_worker(zp_sink_web_t *self, const char *id)
{
    if (self->last_worker < self->n_workers &&
        s_id_is(self->workers[self->last_worker].id, id))
        return &self->workers[self->last_worker];
    for (size_t i = 0; i < self->n_workers; i++)
        if (s_id_is(self->workers[i].id, id)) {
            self->last_worker = i;
            return &self->workers[i];
        }
    if (self->n_workers == ZP_SINK_WEB_MAX_WORKERS)
        return NULL;
    if (self->n_workers == self->cap_workers) {
        size_t cap = self->cap_workers ? 2 * self->cap_workers : 16;
        s_worker_t *w = realloc(self->workers, cap * sizeof *w);
        if (!w)
            return NULL;
        self->workers = w;
        self->cap_workers = cap;
    }
    s_worker_t *w = &self->workers[self->n_workers];
    memset(w, 0, sizeof *w);
    w->id = strndup(id, S_ID_MAX);
    if (!w->id)
        return NULL;
    self->last_worker = self->n_workers++;
    return w;
}

void zp_sink_web_batch(zp_sink_web_t *self, const char *worker, uint64_t fresh,
                       uint64_t now_us)
{
    s_worker_t *w = s_worker(self, worker ? worker : "");
    if (!w) {
        self->untracked++;
        return;
    }
    w->tasks += fresh;
    w->last_us = now_us;
}

/* Copies at most max bytes of src into dst (max + 1 bytes) and ends it. */
static void s_copy(char *dst, const char *src, size_t max)
{
    size_t n = src ? strnlen(src, max) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = 0;
}

void zp_sink_web_failure(zp_sink_web_t *self, const char *job, uint64_t task,
                         const char *worker, uint32_t attempt,
                         const char *cause, const char *error, uint64_t now_us)
{
    s_failure_t *f = &self->failures[self->failure_next];
    self->failure_next = (self->failure_next + 1) % ZP_SINK_WEB_FAILURES;
    if (self->failure_count < ZP_SINK_WEB_FAILURES)
        self->failure_count++;
    self->failures_seen++;
    f->time_us = now_us;
    f->task = task;
    f->attempt = attempt;
    s_copy(f->job, job, S_ID_MAX);
    s_copy(f->worker, worker, S_ID_MAX);
    s_copy(f->cause, cause, S_CAUSE_MAX);
    s_copy(f->error, error, ZP_SINK_WEB_ERROR_MAX);
}

/* ---- rendering ---- */

static void s_put(zp_sink_web_t *self, zp_buf_t *b, const char *s)
{
    if (zp_buf_append_str(b, s) < 0)
        self->oom = true;
}

/* "key":"VALUE", escaped; VALUE may hold any bytes. */
static void s_put_str(zp_sink_web_t *self, zp_buf_t *b, const char *key,
                      const char *value)
{
    if (zp_buf_printf(b, "\"%s\":\"", key) < 0 ||
        zp_buf_append_json(b, value, strlen(value)) < 0 ||
        zp_buf_append(b, "\"", 1) < 0)
        self->oom = true;
}

static void s_put_u64(zp_sink_web_t *self, zp_buf_t *b, const char *key,
                      uint64_t v)
{
    if (zp_buf_printf(b, "\"%s\":%llu", key, (unsigned long long)v) < 0)
        self->oom = true;
}

/* Unix µs as JSON milliseconds (0 stays 0: never). */
static void s_put_ms(zp_sink_web_t *self, zp_buf_t *b, const char *key,
                     uint64_t us)
{
    s_put_u64(self, b, key, us / 1000);
}

static void s_put_rate(zp_sink_web_t *self, zp_buf_t *b, const char *key,
                       double rate)
{
    if (zp_buf_printf(b, "\"%s\":%.1f", key, rate) < 0)
        self->oom = true;
}

/* Takes a throughput sample when a second has passed since the last. */
static void s_sample(zp_sink_web_t *self, uint64_t mono_us)
{
    if (self->mark_mono_us == 0) {
        self->mark_mono_us = mono_us;
        self->mark_done = self->done;
        for (size_t i = 0; i < self->n_workers; i++)
            self->workers[i].tasks_mark = self->workers[i].tasks;
        return;
    }
    uint64_t dt = mono_us - self->mark_mono_us;
    if (dt < 1000000)
        return;
    double secs = (double)dt / 1e6;
    uint64_t d =
        self->done >= self->mark_done ? self->done - self->mark_done : 0;
    self->rate = (double)d / secs;
    self->mark_mono_us = mono_us;
    self->mark_done = self->done;
    for (size_t i = 0; i < self->n_workers; i++) {
        s_worker_t *w = &self->workers[i];
        w->rate = (double)(w->tasks - w->tasks_mark) / secs;
        w->tasks_mark = w->tasks;
    }
    s_sample_t *p = &self->history[self->history_next];
    p->time_us = self->now_us;
    p->rate = self->rate;
    self->history_next = (self->history_next + 1) % ZP_SINK_WEB_HISTORY;
    if (self->history_count < ZP_SINK_WEB_HISTORY)
        self->history_count++;
}

void zp_sink_web_begin(zp_sink_web_t *self, uint64_t mono_us, uint64_t now_us)
{
    self->mono_us = mono_us;
    self->now_us = now_us;
    self->jobs.len = 0;
    self->n_jobs = 0;
    self->done = self->succeeded = self->failed = 0;
    self->retries = self->duplicates = 0;
    self->oom = false;
}

void zp_sink_web_totals(zp_sink_web_t *self, uint64_t jobs, uint64_t done,
                        uint64_t succeeded, uint64_t failed, uint64_t retries,
                        uint64_t duplicates)
{
    self->n_jobs = jobs;
    self->done = done;
    self->succeeded = succeeded;
    self->failed = failed;
    self->retries = retries;
    self->duplicates = duplicates;
}

void zp_sink_web_job(zp_sink_web_t *self, const zp_sink_web_job_t *job)
{
    self->done += job->done;
    self->succeeded += job->succeeded;
    self->failed += job->failed;
    self->retries += job->retries;
    self->duplicates += job->duplicates;
    if (self->n_jobs++ >= ZP_METRICS_MAX_SERIES)
        return;
    zp_buf_t *b = &self->jobs;
    s_put(self, b, self->n_jobs > 1 ? ",{" : "{");
    s_put_str(self, b, "id", job->id);
    s_put(self, b, ",");
    s_put_str(self, b, "state", job->state);
    bool closed = strcmp(job->state, "open") != 0;
    if (closed) {
        s_put(self, b, ",");
        s_put_u64(self, b, "total", job->total);
    } else {
        s_put(self, b, ",\"total\":null");
    }
    const struct {
        const char *key;
        uint64_t v;
    } nums[] = {{"done", job->done},
                {"succeeded", job->succeeded},
                {"failed", job->failed},
                {"retries", job->retries},
                {"duplicates", job->duplicates}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        s_put(self, b, ",");
        s_put_u64(self, b, nums[i].key, nums[i].v);
    }
    s_put(self, b, ",");
    s_put_ms(self, b, "first_ms", job->first_us);
    s_put(self, b, ",");
    s_put_ms(self, b, "last_ms", job->last_us);
    s_put(self, b, "}");
}

/* Orders workers by their last batch, latest first. */
static int s_by_last_seen(const void *a, const void *b)
{
    const s_worker_t *x = *(const s_worker_t *const *)a;
    const s_worker_t *y = *(const s_worker_t *const *)b;
    return x->last_us < y->last_us ? 1 : x->last_us > y->last_us ? -1 : 0;
}

static void s_put_workers(zp_sink_web_t *self, zp_buf_t *b)
{
    /* The ZP_METRICS_MAX_SERIES seen last (the page sorts them by id). */
    size_t n = self->n_workers;
    s_worker_t **order = n ? malloc(n * sizeof *order) : NULL;
    if (n && !order) {
        self->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &self->workers[i];
    if (n > ZP_METRICS_MAX_SERIES) {
        qsort(order, n, sizeof *order, s_by_last_seen);
        n = ZP_METRICS_MAX_SERIES;
    }
    s_put(self, b, "\"workers\":[");
    for (size_t i = 0; i < n; i++) {
        const s_worker_t *w = order[i];
        s_put(self, b, i ? ",{" : "{");
        s_put_str(self, b, "id", w->id);
        s_put(self, b, ",");
        s_put_u64(self, b, "tasks", w->tasks);
        s_put(self, b, ",");
        s_put_rate(self, b, "tasks_per_s", w->rate);
        s_put(self, b, ",");
        s_put_ms(self, b, "last_seen_ms", w->last_us);
        s_put(self, b, "}");
    }
    s_put(self, b, "],");
    s_put_u64(self, b, "workers_omitted", self->n_workers - n);
    s_put(self, b, ",");
    s_put_u64(self, b, "batches_untracked", self->untracked);
    free(order);
}

static void s_put_failures(zp_sink_web_t *self, zp_buf_t *b)
{
    s_put(self, b, "\"failures\":[");
    for (size_t k = 0; k < self->failure_count; k++) {
        /* Newest first. */
        size_t i = (self->failure_next + ZP_SINK_WEB_FAILURES - 1 - k) %
                   ZP_SINK_WEB_FAILURES;
        const s_failure_t *f = &self->failures[i];
        s_put(self, b, k ? ",{" : "{");
        s_put_ms(self, b, "time_ms", f->time_us);
        s_put(self, b, ",");
        s_put_str(self, b, "job", f->job);
        s_put(self, b, ",");
        s_put_u64(self, b, "task", f->task);
        s_put(self, b, ",");
        s_put_str(self, b, "worker", f->worker);
        s_put(self, b, ",");
        s_put_u64(self, b, "attempt", f->attempt);
        s_put(self, b, ",");
        s_put_str(self, b, "cause", f->cause);
        s_put(self, b, ",");
        s_put_str(self, b, "error", f->error);
        s_put(self, b, "}");
    }
    s_put(self, b, "],");
    s_put_u64(self, b, "failures_seen", self->failures_seen);
}

static void s_put_history(zp_sink_web_t *self, zp_buf_t *b)
{
    s_put(self, b, "\"history\":[");
    size_t first =
        (self->history_next + ZP_SINK_WEB_HISTORY - self->history_count) %
        ZP_SINK_WEB_HISTORY;
    for (size_t k = 0; k < self->history_count; k++) {
        const s_sample_t *p = &self->history[(first + k) % ZP_SINK_WEB_HISTORY];
        if (zp_buf_printf(b, "%s[%llu,%.1f]", k ? "," : "",
                          (unsigned long long)(p->time_us / 1000), p->rate) < 0)
            self->oom = true;
    }
    s_put(self, b, "]");
}

int zp_sink_web_publish(zp_sink_web_t *self, uint64_t bad_messages)
{
    s_sample(self, self->mono_us);
    zp_buf_t *b = zp_metrics_doc_begin(self->metrics, self->state_doc);
    s_put(self, b, "{");
    s_put_str(self, b, "sink", self->instance);
    s_put(self, b, ",");
    s_put_ms(self, b, "now_ms", self->now_us);
    s_put(self, b, ",");
    s_put_u64(self, b, "period_ms", ZP_METRICS_PERIOD_US / 1000);
    s_put(self, b, ",\"totals\":{");
    s_put_u64(self, b, "jobs", self->n_jobs);
    const struct {
        const char *key;
        uint64_t v;
    } nums[] = {
        {"completed", self->done},        {"succeeded", self->succeeded},
        {"failed", self->failed},         {"retries", self->retries},
        {"duplicates", self->duplicates}, {"bad_messages", bad_messages}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        s_put(self, b, ",");
        s_put_u64(self, b, nums[i].key, nums[i].v);
    }
    s_put(self, b, ",");
    s_put_rate(self, b, "tasks_per_s", self->rate);
    s_put(self, b, "},\"jobs\":[");
    if (zp_buf_append(b, self->jobs.data, self->jobs.len) < 0)
        self->oom = true;
    s_put(self, b, "],");
    s_put_u64(self, b, "jobs_omitted",
              self->n_jobs > ZP_METRICS_MAX_SERIES
                  ? self->n_jobs - ZP_METRICS_MAX_SERIES
                  : 0);
    s_put(self, b, ",");
    s_put_workers(self, b);
    s_put(self, b, ",");
    s_put_failures(self, b);
    s_put(self, b, ",");
    s_put_history(self, b);
    s_put(self, b, "}\n");
    return zp_metrics_doc_publish(self->metrics, self->state_doc, !self->oom);
}
