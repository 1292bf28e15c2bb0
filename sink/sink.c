/* sink: deduplicates results, writes one record per task, tracks jobs. */
#define _GNU_SOURCE
#include "sink.h"
#include "sink_web.h"
#include "zp_codec.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_events.h"
#include "zp_metrics.h"
#include "zp_net.h"
#include "zp_plugin.h"
#include "zp_trace.h"
#include "zp_util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Highest task id accepted before a job is closed; guards the bitmap
 * against a hostile id. */
#define S_MAX_OPEN_TASK_ID (1ull << 34)
#define S_MAX_WAITERS      64

typedef struct {
    char *id;
    uint64_t tasks;
    uint32_t window, max_held;
} s_wstat_t;

typedef struct {
    char rid[256];
    size_t rid_len;
} s_peer_t;

/* A consumer's ResultsRequest waiting for records past its cursor. */
typedef struct {
    s_peer_t peer;
    uint64_t cursor;
    uint32_t max_bytes;
} s_fetch_t;

typedef struct s_job {
    char *id;
    int state; /* Zpipe__V1__JobState */
    uint64_t total, done, succeeded, failed, duplicates;
    uint64_t first_us, last_us;
    uint64_t *bits; /* done bitmap, freed once the job is done */
    size_t n_words;
    /* Ordered output: records not yet writable, in a ring indexed by
     * task id relative to next. */
    uint64_t next;
    zp_buf_t **ring;
    size_t ring_cap;
    s_wstat_t *workers;
    size_t n_workers;
    s_peer_t waiters[S_MAX_WAITERS];
    size_t n_waiters;
    /* Whoever opened the job is told what is committed and what to retry. */
    s_peer_t opener;
    uint32_t max_attempts;
    uint64_t retries;
    uint64_t *commit_ids, *retry_ids;
    uint32_t *retry_attempts;
    size_t n_commit, cap_commit, n_retry, cap_retry;
    /* --spool: the job's records as JSON Lines; consumers see what has
     * been flushed (whole records, and never ahead of the commits). */
    FILE *spool;
    uint64_t spool_len, spool_flushed;
    s_fetch_t fetchers[S_MAX_WAITERS];
    size_t n_fetchers;
    /* --reduce: the plugin's reducer and this job's accumulator. */
    const zp_plugin_t *reducer;
    void *acc;
    char *reduce_error; /* the first failure of reduce, if any */
    struct s_job *link;
} s_job_t;

typedef struct {
    const zp_sink_config_t *cfg;
    void *ctx, *results, *control, *pub;
    zp_curve_t *curve;
    void *mon_results, *mon_control; /* dropped connections */
    uint64_t dropped;
    FILE *out;
    bool lines;
    s_job_t *jobs;
    zp_arena_t *arena;
    zp_result_view_t view; /* results decoded without copies */
    zp_buf_t rec, scratch;
    zp_buf_t spool_rec, chunk; /* a JSON record for the spool; a reply */
    uint64_t bad_messages;
    uint64_t bad_results;  /* of bad_messages, those on the results socket */
    zp_metrics_t *metrics; /* NULL unless --metrics */
    zp_events_t *events;   /* NULL unless --events */
    zp_sink_web_t *web;    /* the web view, on the metrics server */
    bool write_failed;
    zp_journal_t *journal;
    uint64_t out_offset; /* bytes in the output file */
    char *instance;      /* changes on every start */
    zp_plugins_t *reducers;
    zpipe_host_t host; /* for reducers: append to reduced */
    zp_buf_t reduced;
    bool reduced_too_big;
    zp_trace_log_t *trace; /* --trace, else NULL */
} s_sink_t;

static s_job_t *s_job_find(s_sink_t *s, const char *id)
{
    for (s_job_t *j = s->jobs; j; j = j->link)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static s_job_t *s_job_get(s_sink_t *s, const char *id)
{
    s_job_t *j = s_job_find(s, id);
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
    j->state = ZPIPE__V1__JOB_STATE__JOB_OPEN;
    j->max_attempts = 3;
    j->link = s->jobs;
    s->jobs = j;
    return j;
}

static void s_job_free(s_job_t *j)
{
    if (j->acc && j->reducer->desc.reduce_fini)
        j->reducer->desc.reduce_fini(j->acc);
    free(j->reduce_error);
    for (size_t i = 0; i < j->ring_cap; i++)
        if (j->ring[i]) {
            zp_buf_free(j->ring[i]);
            free(j->ring[i]);
        }
    free(j->ring);
    for (size_t i = 0; i < j->n_workers; i++)
        free(j->workers[i].id);
    free(j->workers);
    free(j->bits);
    free(j->commit_ids);
    free(j->retry_ids);
    free(j->retry_attempts);
    if (j->spool)
        fclose(j->spool);
    free(j->id);
    free(j);
}

static int s_push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        uint64_t *a = realloc(*arr, c * sizeof *a);
        if (!a)
            return -1;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* Marks id done; returns 1 if it was new, 0 if a duplicate, -1 on OOM. */
static int s_job_mark(s_job_t *j, uint64_t id)
{
    if (j->state == ZPIPE__V1__JOB_STATE__JOB_DONE)
        return 0;
    size_t word = (size_t)(id / 64);
    if (word >= j->n_words) {
        size_t n = j->n_words ? j->n_words : 1024;
        while (n <= word)
            n *= 2;
        uint64_t *bits = realloc(j->bits, n * sizeof *bits);
        if (!bits)
            return -1;
        memset(bits + j->n_words, 0, (n - j->n_words) * sizeof *bits);
        j->bits = bits;
        j->n_words = n;
    }
    uint64_t mask = 1ull << (id % 64);
    if (j->bits[word] & mask)
        return 0;
    j->bits[word] |= mask;
    return 1;
}

static bool s_job_has(const s_job_t *j, uint64_t id)
{
    if (j->state == ZPIPE__V1__JOB_STATE__JOB_DONE)
        return true;
    size_t word = (size_t)(id / 64);
    return word < j->n_words && (j->bits[word] >> (id % 64)) & 1;
}

static void s_write(s_sink_t *s, const void *data, size_t len)
{
    if (len && fwrite(data, 1, len, s->out) != len && !s->write_failed) {
        s->write_failed = true;
        zp_error("writing %s: %s", s->cfg->output, strerror(errno));
    }
}

/* Writes one record: output, journal, and the opener's commit list. */
static void s_spool_write(s_sink_t *s, s_job_t *j, const char *json,
                          size_t len);

/* json: the record as a JSON line for the spool (NULL: data is one). */
static void s_emit(s_sink_t *s, s_job_t *j, uint64_t task, bool ok,
                   const char *data, size_t len, const char *json,
                   size_t json_len)
{
    s_write(s, data, len);
    if (s->cfg->spool)
        s_spool_write(s, j, json ? json : data, json ? json_len : len);
    s->out_offset += len;
    if (s->journal &&
        zp_journal_record(s->journal, j->id, task, ok, s->out_offset) < 0)
        zp_error("journal: out of memory");
    s_push_u64(&j->commit_ids, &j->n_commit, &j->cap_commit, task);
}

/* "output":"TEXT" for UTF-8, else "output_b64":"BASE64". */
static void s_json_output(zp_buf_t *b, const void *data, size_t len)
{
    if (zp_utf8_valid(data, len)) {
        zp_buf_append_str(b, "\"output\":\"");
        zp_buf_append_json_utf8(b, data, len);
    } else {
        zp_buf_append_str(b, "\"output_b64\":\"");
        zp_buf_append_base64(b, data, len);
    }
    zp_buf_append_str(b, "\"");
}

/* Formats one record as a JSON line into b. */
static void s_format_json(zp_buf_t *b, const s_job_t *j, const char *worker,
                          const Zpipe__V1__Result *r)
{
    b->len = 0;
    bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
    zp_buf_append_str(b, "{\"job\":\"");
    zp_buf_append_json(b, j->id, strlen(j->id));
    zp_buf_printf(b, "\",\"task\":%llu,\"status\":\"%s\",",
                  (unsigned long long)r->task_id, ok ? "ok" : "failed");
    s_json_output(b, r->output.data, r->output.len);
    zp_buf_append_str(b, ",");
    if (!ok) {
        const char *cause = r->cause && *r->cause ? r->cause : "plugin_error";
        const char *err = r->error ? r->error : "";
        zp_buf_append_str(b, "\"cause\":\"");
        zp_buf_append_json(b, cause, strlen(cause));
        zp_buf_append_str(b, "\",\"error\":\"");
        zp_buf_append_json(b, err, strlen(err));
        zp_buf_printf(b, "\",\"retryable\":%s,",
                      r->retryable ? "true" : "false");
    }
    zp_buf_printf(b, "\"attempts\":%u,\"worker\":\"",
                  r->attempt ? r->attempt : 1);
    zp_buf_append_json(b, worker, strlen(worker));
    zp_buf_printf(b, "\",\"elapsed_us\":%llu}\n",
                  (unsigned long long)r->elapsed_us);
}

/* Formats one record into s->rec, in the output's format. */
static void s_format(s_sink_t *s, const s_job_t *j, const char *worker,
                     const Zpipe__V1__Result *r)
{
    zp_buf_t *b = &s->rec;
    if (!s->lines) {
        s_format_json(b, j, worker, r);
        return;
    }
    b->len = 0;
    size_t n = r->output.len;
    if (n && r->output.data[n - 1] == '\n')
        n--;
    zp_buf_append(b, r->output.data, n);
    zp_buf_append(b, "\n", 1);
}

/* The job's spool file: DIR/JOB.jsonl, created (w+) or, after a restart,
 * as restored by s_spool_restore. */
static FILE *s_spool_file(s_sink_t *s, s_job_t *j)
{
    if (j->spool)
        return j->spool;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.jsonl", s->cfg->spool, j->id);
    j->spool = fopen(path, "w+");
    if (!j->spool) {
        if (!s->write_failed)
            zp_error("spool %s: %s", path, strerror(errno));
        s->write_failed = true;
    }
    return j->spool;
}

/* Appends one record to the job's spool, in the journal's order (records
 * are spooled when they are emitted). */
static void s_spool_write(s_sink_t *s, s_job_t *j, const char *json, size_t len)
{
    FILE *f = s_spool_file(s, j);
    if (!f)
        return;
    if (fwrite(json, 1, len, f) != len) {
        if (!s->write_failed)
            zp_error("spool for job %s: %s", j->id, strerror(errno));
        s->write_failed = true;
        return;
    }
    j->spool_len += len;
}

/* Ordered mode: park the record until every lower id is written. */
/* Parks the record (and its JSON for the spool, when it differs). */
static int s_park(s_job_t *j, uint64_t id, bool ok, const zp_buf_t *rec,
                  const zp_buf_t *json)
{
    uint64_t off = id - j->next;
    if (off >= j->ring_cap) {
        size_t cap = j->ring_cap ? j->ring_cap : 1024;
        while (cap <= off)
            cap *= 2;
        zp_buf_t **ring = calloc(cap, sizeof *ring);
        if (!ring)
            return -1;
        for (size_t i = 0; i < j->ring_cap; i++) {
            uint64_t tid = j->next + i;
            zp_buf_t *p = j->ring[tid % j->ring_cap];
            ring[tid % cap] = p;
        }
        free(j->ring);
        j->ring = ring;
        j->ring_cap = cap;
    }
    zp_buf_t *copy = calloc(1, sizeof *copy);
    /* The status (for the journal when it is written), the record's
     * length, the record, then its JSON when that differs. */
    uint64_t n = rec->len;
    if (!copy || zp_buf_append(copy, ok ? "o" : "f", 1) < 0 ||
        zp_buf_append(copy, &n, sizeof n) < 0 ||
        zp_buf_append(copy, rec->data, rec->len) < 0 ||
        (json && zp_buf_append(copy, json->data, json->len) < 0)) {
        if (copy)
            zp_buf_free(copy);
        free(copy);
        return -1;
    }
    j->ring[id % j->ring_cap] = copy;
    return 0;
}

static void s_drain_ordered(s_sink_t *s, s_job_t *j)
{
    while (j->ring_cap) {
        zp_buf_t **slot = &j->ring[j->next % j->ring_cap];
        if (!*slot)
            break;
        const char *d = (*slot)->data;
        uint64_t n;
        memcpy(&n, d + 1, sizeof n);
        const char *rec = d + 1 + sizeof n, *json = rec + n;
        size_t json_len = (*slot)->len - 1 - sizeof n - n;
        s_emit(s, j, j->next, d[0] == 'o', rec, n, json_len ? json : NULL,
               json_len);
        zp_buf_free(*slot);
        free(*slot);
        *slot = NULL;
        j->next++;
    }
}

static void s_wstat(s_job_t *j, const Zpipe__V1__ResultBatch *b, size_t fresh)
{
    const char *wid = b->worker_id ? b->worker_id : "";
    s_wstat_t *w = NULL;
    for (size_t i = 0; i < j->n_workers; i++)
        if (strcmp(j->workers[i].id, wid) == 0)
            w = &j->workers[i];
    if (!w) {
        s_wstat_t *ws = realloc(j->workers, (j->n_workers + 1) * sizeof *ws);
        if (!ws)
            return;
        j->workers = ws;
        w = &ws[j->n_workers];
        memset(w, 0, sizeof *w);
        w->id = strdup(wid);
        if (!w->id)
            return;
        j->n_workers++;
    }
    w->tasks += fresh;
    w->window = b->window;
    if (b->max_held > w->max_held)
        w->max_held = b->max_held;
}

static void s_send_status(s_sink_t *s, const s_job_t *j, const char *job_id,
                          const char *rid, size_t rid_len)
{
    Zpipe__V1__JobStatus st = ZPIPE__V1__JOB_STATUS__INIT;
    Zpipe__V1__WorkerStats ws[64], *wp[64];
    st.job_id = (char *)job_id;
    if (j) {
        st.state = j->state;
        st.total = j->total;
        st.done = j->done;
        st.succeeded = j->succeeded;
        st.failed = j->failed;
        st.duplicates = j->duplicates;
        st.retries = j->retries;
        st.bad_messages = s->bad_messages;
        st.first_result_us = j->first_us;
        st.last_result_us = j->last_us;
        st.reduce_error = j->reduce_error;
        size_t n = j->n_workers < 64 ? j->n_workers : 64;
        for (size_t i = 0; i < n; i++) {
            zpipe__v1__worker_stats__init(&ws[i]);
            ws[i].worker_id = j->workers[i].id;
            ws[i].tasks_done = j->workers[i].tasks;
            ws[i].window = j->workers[i].window;
            ws[i].max_held = j->workers[i].max_held;
            wp[i] = &ws[i];
        }
        st.workers = wp;
        st.n_workers = n;
    }
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_JOB_STATUS;
    m.job_status = &st;
    if (zp_send(s->control, rid, rid_len, &m, &s->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("status for job %s: peer gone (%s)", job_id,
                 zmq_strerror(errno));
}

/* Tells the opener what was committed and what to retry. */
static void s_flush_commits(s_sink_t *s, s_job_t *j)
{
    if (!j->n_commit && !j->n_retry)
        return;
    if (j->opener.rid_len) {
        Zpipe__V1__Committed c = ZPIPE__V1__COMMITTED__INIT;
        c.job_id = j->id;
        c.task_ids = j->commit_ids;
        c.n_task_ids = j->n_commit;
        c.retry_task_ids = j->retry_ids;
        c.n_retry_task_ids = j->n_retry;
        c.retry_attempts = j->retry_attempts;
        c.n_retry_attempts = j->n_retry;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_COMMITTED;
        m.committed = &c;
        if (zp_send(s->control, j->opener.rid, j->opener.rid_len, &m,
                    &s->scratch, ZMQ_DONTWAIT) < 0)
            zp_debug("committed for job %s: opener gone (%s)", j->id,
                     zmq_strerror(errno));
    }
    /* Lost acknowledgements only cost a redelivery and a dropped duplicate;
     * lost retry requests are covered by the ventilator's lease. */
    j->n_commit = 0;
    j->n_retry = 0;
}

/* Makes what was written durable: output flushed and, with a journal,
 * output and journal synced. Only then may commits be acknowledged. */
static void s_serve_fetchers(s_sink_t *s, s_job_t *j);

/* Task timelines: is the record of job's task in the output yet? Only an
 * ordered sink holds records back, until every lower id has one. */
static bool s_trace_written(void *ctx, const void *job, uint64_t task)
{
    const s_sink_t *s = ctx;
    const s_job_t *j = job;
    return !s->cfg->ordered || j->reducer || task < j->next;
}

/* Task timelines: one line for what became of result r. */
static void s_trace(s_sink_t *s, s_job_t *j, const char *worker,
                    const Zpipe__V1__Result *r, zp_trace_outcome_t outcome,
                    uint64_t received_us)
{
    zp_trace_entry_t e = {
        .job = j->id,
        .worker = worker,
        .task = r->task_id,
        .attempt = r->attempt ? r->attempt : 1,
        .ok = r->status == ZPIPE__V1__STATUS__STATUS_OK,
        .outcome = outcome,
        .bytes = r->output.len,
        .queued_us = r->queued_us,
        .dispatch_us = r->dispatch_us,
        .start_us = r->start_us,
        .elapsed_us = r->elapsed_us,
        .received_us = received_us,
    };
    if (zp_trace_log_add(s->trace, &e, j) < 0 &&
        zp_trace_log_lost(s->trace) == 1)
        zp_warn("trace %s: out of memory; some lines are lost", s->cfg->trace);
}

static bool s_durable(s_sink_t *s)
{
    for (s_job_t *j = s->jobs; j; j = j->link) {
        if (!j->spool || j->spool_flushed == j->spool_len)
            continue;
        if (fflush(j->spool) != 0 ||
            (s->journal && fdatasync(fileno(j->spool)) != 0)) {
            if (!s->write_failed)
                zp_error("spool for job %s: %s", j->id, strerror(errno));
            s->write_failed = true;
            return false;
        }
    }
    if (fflush(s->out) != 0 ||
        (s->journal && (fdatasync(fileno(s->out)) != 0 ||
                        zp_journal_sync(s->journal) != 0))) {
        if (!s->write_failed)
            zp_error("writing %s%s: %s", s->cfg->output,
                     s->journal ? " or its journal" : "", strerror(errno));
        s->write_failed = true;
        return false;
    }
    if (s->trace)
        zp_trace_log_commit(s->trace, zp_now_us(), s_trace_written, s);
    /* Consumers see a record once the journal has it too: a restarted
     * sink keeps exactly the spool records its journal has. */
    for (s_job_t *j = s->jobs; j; j = j->link)
        if (j->spool && j->spool_flushed != j->spool_len) {
            j->spool_flushed = j->spool_len;
            s_serve_fetchers(s, j);
        }
    return true;
}

/* After a journal replay: keeps the first `done` records of the job's
 * spool (the ones the journal has, in the same order) and cuts the rest,
 * written before a crash that came before the journal's sync. */
static void s_spool_restore(s_sink_t *s, s_job_t *j)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.jsonl", s->cfg->spool, j->id);
    FILE *f = fopen(path, "r+");
    if (!f) {
        if (j->done)
            zp_warn("spool %s: %s; the job's %llu earlier records cannot be "
                    "fetched",
                    path, strerror(errno), (unsigned long long)j->done);
        return;
    }
    uint64_t lines = 0, off = 0;
    int c;
    while (lines < j->done && (c = getc(f)) != EOF) {
        off++;
        if (c == '\n')
            lines++;
    }
    if (lines < j->done)
        zp_warn("spool %s has %llu of the job's %llu journaled records", path,
                (unsigned long long)lines, (unsigned long long)j->done);
    if (fflush(f) != 0 || ftruncate(fileno(f), (off_t)off) != 0 ||
        fseeko(f, (off_t)off, SEEK_SET) != 0) {
        zp_error("spool %s: %s", path, strerror(errno));
        fclose(f);
        return;
    }
    j->spool = f;
    j->spool_len = j->spool_flushed = off;
}

static void s_commit_all(s_sink_t *s)
{
    if (!s_durable(s))
        return;
    for (s_job_t *j = s->jobs; j; j = j->link)
        s_flush_commits(s, j);
}

/* ---- reducers (--reduce) ---- */

static int s_reduce_append(zpipe_call_t *call, const void *data, size_t len)
{
    s_sink_t *s = call->host_private;
    if (s->reduced.len + len > s->cfg->max_frame) {
        s->reduced_too_big = true;
        return -1;
    }
    return zp_buf_append(&s->reduced, data, len);
}

static void s_reduce_set_error(zpipe_call_t *call, const char *message)
{
    s_sink_t *s = call->host_private;
    (void)s;
    zp_warn("reducer: %s", message ? message : "");
}

static void s_reduce_log(int level, const char *plugin, const char *message)
{
    if (level <= ZPIPE_LOG_ERROR)
        zp_error("reducer %s: %s", plugin, message);
    else if (level == ZPIPE_LOG_WARN)
        zp_warn("reducer %s: %s", plugin, message);
    else
        zp_info("reducer %s: %s", plugin, message);
}

/* Loads the --reduce plugins; each must have a reducer. */
static int s_load_reducers(s_sink_t *s)
{
    if (!s->cfg->reduce.count)
        return 0;
    s->host.struct_size = sizeof s->host;
    s->host.abi_major = ZPIPE_ABI_MAJOR;
    s->host.abi_minor = ZPIPE_ABI_MINOR;
    s->host.append = s_reduce_append;
    s->host.set_error = s_reduce_set_error;
    s->host.log = s_reduce_log;
    char err[1024];
    s->reducers = zp_plugins_new(&s->host);
    if (!s->reducers || zp_plugins_configure(
                            s->reducers, s->cfg->plugin_config.items,
                            s->cfg->plugin_config.count, err, sizeof err) < 0) {
        zp_error("%s", s->reducers ? err : "out of memory");
        return -1;
    }
    for (size_t i = 0; i < s->cfg->reduce.count; i++) {
        const zp_plugin_t *p = zp_plugins_load(
            s->reducers, s->cfg->reduce.items[i], err, sizeof err);
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

/* On JobOpen: a job of a plugin with a reducer gets its accumulator. */
static void s_reduce_open(s_sink_t *s, s_job_t *j, const char *plugin)
{
    if (!s->reducers || j->reducer || !plugin)
        return;
    const zp_plugin_t *p = zp_plugins_find(s->reducers, plugin);
    if (!p)
        return;
    void *acc = NULL;
    int rc =
        p->desc.reduce_init ? p->desc.reduce_init(p->host, &acc) : ZPIPE_OK;
    if (rc != ZPIPE_OK) {
        const char *why = zp_plugin_init_error(p);
        if (asprintf(&j->reduce_error, "reduce_init failed: %s",
                     *why ? why : "no reason given") < 0)
            j->reduce_error = strdup("reduce_init failed");
        zp_error("job %s: reducer %s: %s", j->id, plugin,
                 j->reduce_error ? j->reduce_error : "reduce_init failed");
    }
    j->reducer = p;
    j->acc = acc;
}

/* The job is complete: its one reduced record. */
static void s_reduce_final(s_sink_t *s, s_job_t *j)
{
    s->reduced.len = 0;
    s->reduced_too_big = false;
    zpipe_call_t call = {
        .struct_size = sizeof call,
        .host = j->reducer->host,
        .input = (const uint8_t *)"",
        .task_id = j->total,
        .attempt = 1,
        .job_id = j->id,
        .host_private = s,
    };
    /* The plugin's host table appends through the sink's template. */
    int rc = j->reduce_error ? ZPIPE_ERROR
                             : j->reducer->desc.reduce_final(j->acc, &call);
    if (rc != ZPIPE_OK && !j->reduce_error &&
        asprintf(&j->reduce_error, "%s",
                 s->reduced_too_big ? "the reduced value is too large"
                                    : "reduce_final failed") < 0)
        j->reduce_error = NULL;
    bool ok = rc == ZPIPE_OK;
    if (!ok && !j->reduce_error)
        j->reduce_error = strdup("reduce failed"); /* told to the opener */
    zp_buf_t *b = &s->rec;
    for (int pass = 0; pass < 1 + (s->cfg->spool && s->lines); pass++) {
        bool json = !s->lines || pass == 1;
        zp_buf_t *out = pass == 0 ? b : &s->spool_rec;
        out->len = 0;
        if (!json) {
            size_t n = s->reduced.len;
            if (n && s->reduced.data[n - 1] == '\n')
                n--;
            zp_buf_append(out, s->reduced.data, n);
            zp_buf_append(out, "\n", 1);
            continue;
        }
        zp_buf_append_str(out, "{\"job\":\"");
        zp_buf_append_json(out, j->id, strlen(j->id));
        zp_buf_printf(out,
                      "\",\"reduced\":true,\"plugin\":\"%s\",\"status\":\"%s\","
                      "\"tasks\":%llu,\"succeeded\":%llu,\"failed\":%llu,",
                      j->reducer->desc.name, ok ? "ok" : "failed",
                      (unsigned long long)j->total,
                      (unsigned long long)j->succeeded,
                      (unsigned long long)j->failed);
        if (!ok) {
            const char *e = j->reduce_error ? j->reduce_error : "failed";
            zp_buf_append_str(out, "\"error\":\"");
            zp_buf_append_json(out, e, strlen(e));
            zp_buf_append_str(out, "\",");
        }
        s_json_output(out, s->reduced.data, s->reduced.len);
        zp_buf_append_str(out, "}\n");
    }
    s_write(s, b->data, b->len);
    if (s->cfg->spool) {
        const zp_buf_t *sj = s->lines ? &s->spool_rec : b;
        s_spool_write(s, j, sj->data, sj->len);
    }
    s->out_offset += b->len;
    fflush(s->out);
    zp_info("job %s reduced by %s: %zu bytes%s%s", j->id, j->reducer->desc.name,
            s->reduced.len, ok ? "" : "; failed: ",
            ok ? "" : (j->reduce_error ? j->reduce_error : "?"));
}

static void s_check_done(s_sink_t *s, s_job_t *j)
{
    if (j->state != ZPIPE__V1__JOB_STATE__JOB_CLOSED || j->done < j->total)
        return;
    if (s->cfg->ordered)
        s_drain_ordered(s, j);
    if (!s_durable(s))
        return;
    s_flush_commits(s, j);
    if (j->reducer)
        s_reduce_final(s, j);
    j->state = ZPIPE__V1__JOB_STATE__JOB_DONE;
    free(j->bits);
    j->bits = NULL;
    j->n_words = 0;
    zp_info("job %s done: %llu tasks, %llu succeeded, %llu failed, "
            "%llu duplicates dropped, %llu bad messages",
            j->id, (unsigned long long)j->total,
            (unsigned long long)j->succeeded, (unsigned long long)j->failed,
            (unsigned long long)j->duplicates,
            (unsigned long long)s->bad_messages);
    if (s->events) {
        Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
        ev.kind = ZPIPE__V1__EVENT_KIND__EVENT_JOB_DONE;
        ev.job_id = j->id;
        ev.count = j->total;
        ev.succeeded = j->succeeded;
        ev.failed = j->failed;
        ev.detail = j->reduce_error; /* a reduced job whose reduction failed */
        zp_events_emit(s->events, &ev);
    }
    for (size_t i = 0; i < j->n_waiters; i++)
        s_send_status(s, j, j->id, j->waiters[i].rid, j->waiters[i].rid_len);
    j->n_waiters = 0;
    s_serve_fetchers(s, j);
}

/* ---- results by cursor (--spool) ---- */

static void s_send_chunk_msg(s_sink_t *s, const char *rid, size_t rid_len,
                             const Zpipe__V1__ResultsChunk *c)
{
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULTS_CHUNK;
    m.results_chunk = (Zpipe__V1__ResultsChunk *)c;
    if (zp_send(s->control, rid, rid_len, &m, &s->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("results for job %s: peer gone (%s)", c->job_id,
                 zmq_strerror(errno));
}

static void s_fetch_error(s_sink_t *s, const char *rid, size_t rid_len,
                          const char *job, uint64_t cursor, const char *why)
{
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    c.job_id = (char *)job;
    c.cursor = cursor;
    c.next_cursor = cursor;
    c.error = (char *)why;
    s_send_chunk_msg(s, rid, rid_len, &c);
}

/* Reads whole records from cursor (at most about max bytes, but at least
 * one record) out of the flushed part of the job's spool and sends them. */
static void s_send_chunk(s_sink_t *s, s_job_t *j, const char *rid,
                         size_t rid_len, uint64_t cursor, uint32_t max)
{
    uint64_t end = j->spool_flushed;
    size_t want = max ? max : 1u << 20;
    zp_buf_t *b = &s->chunk;
    b->len = 0;
    int fd = j->spool ? fileno(j->spool) : -1;
    size_t keep = 0; /* bytes of b up to the last whole record */
    while (fd >= 0 && cursor + b->len < end) {
        size_t n = (size_t)(end - cursor - b->len);
        size_t room = want > b->len ? want - b->len : 65536;
        if (n > room)
            n = room;
        if (zp_buf_reserve(b, n) < 0)
            break;
        ssize_t got = pread(fd, b->data + b->len, n, (off_t)(cursor + b->len));
        if (got <= 0)
            break;
        b->len += (size_t)got;
        const char *nl = memrchr(b->data, '\n', b->len);
        keep = nl ? (size_t)(nl - b->data) + 1 : 0;
        if (keep && b->len >= want)
            break; /* enough, and at least one whole record */
    }
    Zpipe__V1__ResultsChunk c = ZPIPE__V1__RESULTS_CHUNK__INIT;
    c.job_id = j->id;
    c.cursor = cursor;
    c.next_cursor = cursor + keep;
    c.records.data = (uint8_t *)b->data;
    c.records.len = keep;
    c.done = j->state == ZPIPE__V1__JOB_STATE__JOB_DONE &&
             c.next_cursor == j->spool_flushed;
    s_send_chunk_msg(s, rid, rid_len, &c);
}

/* Answers the parked requests that now have records, or an end. */
static void s_serve_fetchers(s_sink_t *s, s_job_t *j)
{
    bool done = j->state == ZPIPE__V1__JOB_STATE__JOB_DONE;
    size_t k = 0;
    for (size_t i = 0; i < j->n_fetchers; i++) {
        s_fetch_t *f = &j->fetchers[i];
        if (f->cursor < j->spool_flushed || done)
            s_send_chunk(s, j, f->peer.rid, f->peer.rid_len, f->cursor,
                         f->max_bytes);
        else
            j->fetchers[k++] = *f;
    }
    j->n_fetchers = k;
}

static void s_on_results_request(s_sink_t *s, const char *rid, size_t rid_len,
                                 const Zpipe__V1__ResultsRequest *rq)
{
    const char *id = rq->job_id ? rq->job_id : "";
    if (!s->cfg->spool) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor,
                      "this sink keeps no records to fetch (start it with "
                      "--spool DIR)");
        return;
    }
    s_job_t *j = s_job_find(s, id);
    if (!j) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor, "unknown job");
        return;
    }
    char before = '\n';
    if (rq->cursor > j->spool_flushed ||
        (rq->cursor > 0 &&
         (pread(fileno(j->spool), &before, 1, (off_t)rq->cursor - 1) != 1 ||
          before != '\n'))) {
        s_fetch_error(s, rid, rid_len, id, rq->cursor,
                      "cursor is not at a record boundary");
        return;
    }
    bool done = j->state == ZPIPE__V1__JOB_STATE__JOB_DONE;
    if (rq->wait && !done && rq->cursor == j->spool_flushed &&
        j->n_fetchers < S_MAX_WAITERS) {
        s_fetch_t *f = &j->fetchers[j->n_fetchers++];
        memcpy(f->peer.rid, rid, rid_len);
        f->peer.rid_len = rid_len;
        f->cursor = rq->cursor;
        f->max_bytes = rq->max_bytes;
        return;
    }
    s_send_chunk(s, j, rid, rid_len, rq->cursor, rq->max_bytes);
}

static void s_add_waiter(s_job_t *j, const char *rid, size_t rid_len)
{
    for (size_t i = 0; i < j->n_waiters; i++)
        if (j->waiters[i].rid_len == rid_len &&
            memcmp(j->waiters[i].rid, rid, rid_len) == 0)
            return;
    if (j->n_waiters == S_MAX_WAITERS) {
        zp_warn("job %s: more than %d waiters; dropping the oldest", j->id,
                S_MAX_WAITERS);
        memmove(j->waiters, j->waiters + 1,
                (S_MAX_WAITERS - 1) * sizeof j->waiters[0]);
        j->n_waiters--;
    }
    memcpy(j->waiters[j->n_waiters].rid, rid, rid_len);
    j->waiters[j->n_waiters].rid_len = rid_len;
    j->n_waiters++;
}

static void s_bad(s_sink_t *s, const char *socket, const char *why, size_t len)
{
    s->bad_messages++;
    if (socket == s->cfg->results)
        s->bad_results++;
    /* Rate-limit: the first ten, then every 1000th. */
    if (s->bad_messages <= 10 || s->bad_messages % 1000 == 0)
        zp_warn("dropped %s on %s (%zu bytes); %llu bad messages so far", why,
                socket, len, (unsigned long long)s->bad_messages);
}

/* Publishes what happened to r, a failed attempt of a task of j. */
static void s_event_task(s_sink_t *s, const s_job_t *j, const char *worker,
                         const Zpipe__V1__Result *r, Zpipe__V1__EventKind kind)
{
    if (!s->events)
        return;
    Zpipe__V1__Event ev = ZPIPE__V1__EVENT__INIT;
    ev.kind = kind;
    ev.job_id = j->id;
    ev.worker_id = (char *)worker;
    ev.task_id = r->task_id;
    ev.attempt = r->attempt ? r->attempt : 1;
    ev.cause = r->cause;
    ev.detail = r->error;
    zp_events_emit(s->events, &ev);
}

static void s_on_results(s_sink_t *s, zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    Zpipe__V1__ResultBatch *b = &s->view.batch;
    /* Zero-copy for what workers send; anything else is decoded. */
    if (zp_view_result_batch(&s->view, zmq_msg_data(frame), len,
                             s->cfg->max_frame) < 0) {
        zp_arena_reset(s->arena);
        zp_message_t *m =
            zp_decode(s->arena, zmq_msg_data(frame), len, s->cfg->max_frame);
        if (!m || m->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH) {
            s_bad(s, s->cfg->results,
                  m ? "a non-result message" : "a malformed frame", len);
            return;
        }
        b = m->result_batch;
    }
    if (!zp_job_id_valid(b->job_id)) {
        s_bad(s, s->cfg->results, "a result batch without a valid job id", len);
        return;
    }
    s_job_t *j = s_job_get(s, b->job_id);
    if (!j) {
        zp_error("out of memory tracking job %s", b->job_id);
        return;
    }
    uint64_t now = zp_now_us();
    if (!j->first_us)
        j->first_us = now;
    j->last_us = now;
    size_t fresh = 0;
    const char *worker = b->worker_id ? b->worker_id : "";
    for (size_t i = 0; i < b->n_results; i++) {
        Zpipe__V1__Result *r = b->results[i];
        bool closed = j->state != ZPIPE__V1__JOB_STATE__JOB_OPEN;
        if ((closed && r->task_id >= j->total &&
             j->state != ZPIPE__V1__JOB_STATE__JOB_DONE) ||
            (!closed && r->task_id >= S_MAX_OPEN_TASK_ID)) {
            s_bad(s, s->cfg->results, "a result with a task id out of range",
                  len);
            continue;
        }
        bool ok = r->status == ZPIPE__V1__STATUS__STATUS_OK;
        if (!ok && r->retryable && j->state != ZPIPE__V1__JOB_STATE__JOB_DONE &&
            r->attempt < j->max_attempts && !s_job_has(j, r->task_id)) {
            /* Not final yet: ask the opener for another attempt. */
            if (s_push_u64(&j->retry_ids, &j->n_retry, &j->cap_retry,
                           r->task_id) == 0) {
                uint32_t *a =
                    realloc(j->retry_attempts, j->cap_retry * sizeof *a);
                if (a) {
                    j->retry_attempts = a;
                    a[j->n_retry - 1] = r->attempt ? r->attempt : 1;
                    j->retries++;
                    s_event_task(s, j, worker, r,
                                 ZPIPE__V1__EVENT_KIND__EVENT_TASK_RETRIED);
                    if (s->trace)
                        s_trace(s, j, worker, r, ZP_TRACE_RETRY, now);
                    continue;
                }
                j->n_retry--;
            }
        }
        int mark = s_job_mark(j, r->task_id);
        if (mark < 0) {
            zp_error("out of memory marking job %s task %llu", j->id,
                     (unsigned long long)r->task_id);
            continue;
        }
        if (mark == 0) {
            j->duplicates++;
            if (s->trace)
                s_trace(s, j, worker, r, ZP_TRACE_DUPLICATE, now);
            continue;
        }
        if (s->trace)
            s_trace(s, j, worker, r, ZP_TRACE_COMMITTED, now);
        fresh++;
        j->done++;
        if (ok)
            j->succeeded++;
        else {
            j->failed++;
            s_event_task(s, j, worker, r,
                         r->quarantined
                             ? ZPIPE__V1__EVENT_KIND__EVENT_TASK_QUARANTINED
                             : ZPIPE__V1__EVENT_KIND__EVENT_TASK_FAILED);
        }
        if (!ok && s->web)
            zp_sink_web_failure(
                s->web, j->id, r->task_id, worker, r->attempt ? r->attempt : 1,
                r->cause && *r->cause ? r->cause : "plugin_error",
                r->error ? r->error : "", now);
        if (ok && j->reducer) {
            /* Folded, not written; committed like any record. */
            int rs = j->reduce_error
                         ? ZPIPE_OK
                         : j->reducer->desc.reduce(j->acc, r->output.data,
                                                   r->output.len);
            if (rs != ZPIPE_OK && !j->reduce_error &&
                asprintf(&j->reduce_error,
                         "reduce returned status %d on task %llu", rs,
                         (unsigned long long)r->task_id) < 0)
                j->reduce_error = NULL;
            s_push_u64(&j->commit_ids, &j->n_commit, &j->cap_commit,
                       r->task_id);
            continue;
        }
        s_format(s, j, worker, r);
        /* The spool is always JSON Lines: a second rendering for lines. */
        const zp_buf_t *json = NULL;
        if (s->cfg->spool && s->lines) {
            s_format_json(&s->spool_rec, j, worker, r);
            json = &s->spool_rec;
        }
        const char *jd = json ? json->data : NULL;
        size_t jl = json ? json->len : 0;
        if (!s->cfg->ordered)
            s_emit(s, j, r->task_id, ok, s->rec.data, s->rec.len, jd, jl);
        else if (r->task_id == j->next) {
            s_emit(s, j, r->task_id, ok, s->rec.data, s->rec.len, jd, jl);
            j->next++;
            s_drain_ordered(s, j);
        } else if (s_park(j, r->task_id, ok, &s->rec, json) < 0)
            zp_error("out of memory holding job %s task %llu for ordering",
                     j->id, (unsigned long long)r->task_id);
    }
    s_wstat(j, b, fresh);
    /* The ventilator's own give-up records are not a worker's work. */
    if (s->web && strcmp(worker, "ventilator") != 0)
        zp_sink_web_batch(s->web, worker, fresh, now);
    if (j->n_commit >= 4096 || j->n_retry >= 4096)
        s_commit_all(s);
    if (s->pub) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, frame);
        if (zmq_send(s->pub, b->job_id, strlen(b->job_id),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
            zmq_msg_send(&copy, s->pub, ZMQ_DONTWAIT);
        zmq_msg_close(&copy);
    }
    s_check_done(s, j);
}

static void s_ack(s_sink_t *s, const char *rid, size_t rid_len, const char *job,
                  bool ok, const char *error)
{
    Zpipe__V1__Ack a = ZPIPE__V1__ACK__INIT;
    a.job_id = (char *)job;
    a.ok = ok;
    a.error = (char *)(error ? error : "");
    a.sink_instance = s->instance;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_ACK;
    m.ack = &a;
    if (zp_send(s->control, rid, rid_len, &m, &s->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("ack for job %s: peer gone (%s)", job, zmq_strerror(errno));
}

static void s_on_control(s_sink_t *s, const char *rid, size_t rid_len,
                         zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    zp_arena_reset(s->arena);
    zp_message_t *m =
        zp_decode(s->arena, zmq_msg_data(frame), len, s->cfg->max_frame);
    if (!m) {
        s_bad(s, s->cfg->control, "a malformed frame", len);
        return;
    }
    switch (m->kind_case) {
    case ZPIPE__V1__MESSAGE__KIND_JOB_OPEN: {
        const char *id = m->job_open->job_id;
        if (!zp_job_id_valid(id)) {
            s_ack(s, rid, rid_len, id ? id : "", false,
                  "job id must be 1 to 128 of [A-Za-z0-9_.:-]");
            s_bad(s, s->cfg->control, "a job_open without a valid job id", len);
            return;
        }
        bool is_new = s_job_find(s, id) == NULL;
        s_job_t *j = s_job_get(s, id);
        if (!j) {
            s_ack(s, rid, rid_len, id, false, "out of memory");
            return;
        }
        s_add_waiter(j, rid, rid_len);
        memcpy(j->opener.rid, rid, rid_len);
        j->opener.rid_len = rid_len;
        if (m->job_open->max_attempts)
            j->max_attempts = m->job_open->max_attempts;
        if (is_new && s->journal)
            zp_journal_open_job(s->journal, id, j->max_attempts);
        if (is_new)
            zp_info("job %s opened (plugin %s)", id,
                    m->job_open->plugin ? m->job_open->plugin : "?");
        s_reduce_open(s, j, m->job_open->plugin);
        s_ack(s, rid, rid_len, id, true, NULL);
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_JOB_CLOSE: {
        const char *id = m->job_close->job_id;
        s_job_t *j = zp_job_id_valid(id) ? s_job_get(s, id) : NULL;
        if (!j) {
            s_ack(s, rid, rid_len, id ? id : "", false,
                  "job_close without job_id");
            s_bad(s, s->cfg->control, "a job_close without job id", len);
            return;
        }
        uint64_t total = m->job_close->total;
        if (j->state != ZPIPE__V1__JOB_STATE__JOB_OPEN) {
            bool same = j->total == total;
            s_ack(s, rid, rid_len, id, same,
                  same ? NULL : "job already closed with another total");
            return;
        }
        if (j->done > total) {
            s_ack(s, rid, rid_len, id, false, "more results than the total");
            return;
        }
        j->total = total;
        j->state = ZPIPE__V1__JOB_STATE__JOB_CLOSED;
        if (s->journal)
            zp_journal_close_job(s->journal, id, total);
        zp_info("job %s closed with %llu tasks", id, (unsigned long long)total);
        s_add_waiter(j, rid, rid_len);
        s_ack(s, rid, rid_len, id, true, NULL);
        s_check_done(s, j);
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_STATUS_REQUEST: {
        const char *id =
            m->status_request->job_id ? m->status_request->job_id : "";
        s_job_t *j = s_job_find(s, id);
        s_send_status(s, j, id, rid, rid_len);
        if (j && m->status_request->wait &&
            j->state != ZPIPE__V1__JOB_STATE__JOB_DONE)
            s_add_waiter(j, rid, rid_len);
        return;
    }
    case ZPIPE__V1__MESSAGE__KIND_RESULTS_REQUEST:
        s_on_results_request(s, rid, rid_len, m->results_request);
        return;
    case ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH:
        /* Failure records the ventilator writes for tasks it gave up on. */
        s_on_results(s, frame);
        return;
    default:
        s_bad(s, s->cfg->control, "an unexpected message kind", len);
    }
}

/* ---- journal replay ---- */

typedef struct {
    s_sink_t *s;
    uint64_t offset;
    uint64_t records;
} s_replay_t;

static void s_replay_open(void *ctx, const char *job, uint32_t max_attempts)
{
    s_replay_t *r = ctx;
    s_job_t *j = s_job_get(r->s, job);
    if (j && max_attempts)
        j->max_attempts = max_attempts;
}

static void s_replay_close(void *ctx, const char *job, uint64_t total)
{
    s_replay_t *r = ctx;
    s_job_t *j = s_job_get(r->s, job);
    if (j) {
        j->total = total;
        j->state = ZPIPE__V1__JOB_STATE__JOB_CLOSED;
    }
}

static void s_replay_record(void *ctx, const char *job, uint64_t task, bool ok,
                            uint64_t offset)
{
    s_replay_t *r = ctx;
    s_job_t *j = s_job_get(r->s, job);
    if (!j || task >= S_MAX_OPEN_TASK_ID || s_job_mark(j, task) != 1)
        return;
    j->done++;
    j->next = j->done; /* ordered output is always a prefix */
    if (ok)
        j->succeeded++;
    else
        j->failed++;
    if (offset > r->offset)
        r->offset = offset;
    r->records++;
}

/* Opens the output: truncated, or with a journal, cut back to what the
 * journal says was committed and appended to. */
static int s_open_output(s_sink_t *s)
{
    const zp_sink_config_t *cfg = s->cfg;
    if (cfg->spool && access(cfg->spool, W_OK | X_OK) != 0) {
        zp_error("spool directory %s: %s", cfg->spool, strerror(errno));
        return -1;
    }
    if (!s->cfg->journal) {
        s->out =
            strcmp(cfg->output, "-") == 0 ? stdout : fopen(cfg->output, "w");
        if (!s->out) {
            zp_error("cannot open output %s: %s", cfg->output, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (strcmp(cfg->output, "-") == 0) {
        zp_error("--journal needs --output FILE: stdout cannot be rewound "
                 "after a crash");
        return -1;
    }
    s_replay_t r = {.s = s};
    zp_journal_visitor_t v = {s_replay_open, s_replay_close, s_replay_record};
    char err[512];
    s->journal = zp_journal_open(cfg->journal, &v, &r, err, sizeof err);
    if (!s->journal) {
        zp_error("journal: %s", err);
        return -1;
    }
    int fd = open(cfg->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)r.offset) != 0) {
        zp_error("cannot open output %s: %s", cfg->output, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    s->out = fdopen(fd, "a");
    if (!s->out) {
        close(fd);
        return -1;
    }
    s->out_offset = r.offset;
    for (s_job_t *j = s->jobs; j; j = j->link)
        if (cfg->spool)
            s_spool_restore(s, j);
    for (s_job_t *j = s->jobs; j; j = j->link)
        if (j->state == ZPIPE__V1__JOB_STATE__JOB_CLOSED &&
            j->done >= j->total) {
            j->state = ZPIPE__V1__JOB_STATE__JOB_DONE;
            free(j->bits);
            j->bits = NULL;
            j->n_words = 0;
        }
    zp_info("journal %s: resumed %llu committed records; output %s cut to "
            "%llu bytes",
            cfg->journal, (unsigned long long)r.records, cfg->output,
            (unsigned long long)r.offset);
    return 0;
}

static void *s_bind(s_sink_t *s, int type, const char *endpoint)
{
    return zp_socket(s->ctx, type, endpoint, true,
                     type == ZMQ_PUB ? 0 : s->cfg->max_frame, s->curve, NULL);
}

/* Renders the snapshot served at /metrics. Jobs are newest first; past
 * the ZP_METRICS_MAX_SERIES newest, the completion counters of older jobs
 * are summed under job_id="(older)", never a job id, (so sums never go down)
 * and their gauges are left out. */
static void s_metrics_render(s_sink_t *s, uint64_t now)
{
    zp_metrics_t *m = s->metrics;
    zp_metrics_begin(m);
    uint64_t njobs = 0, dups = 0, retries = 0, old_ok = 0, old_failed = 0;
    for (s_job_t *j = s->jobs; j; j = j->link, njobs++) {
        dups += j->duplicates;
        retries += j->retries;
        if (njobs >= ZP_METRICS_MAX_SERIES) {
            old_ok += j->succeeded;
            old_failed += j->failed;
        }
    }
    const char *name = "zpipe_tasks_completed_total";
    zp_metrics_family(m, name, ZP_METRIC_COUNTER,
                      "Task records written, by job and final status.");
    size_t k = 0;
    for (s_job_t *j = s->jobs; j && k < ZP_METRICS_MAX_SERIES;
         j = j->link, k++) {
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", j->id, "status", "ok", NULL},
            j->succeeded);
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", j->id, "status", "failed", NULL},
            j->failed);
    }
    if (njobs > ZP_METRICS_MAX_SERIES) {
        zp_metrics_u64(
            m, name,
            (const char *const[]){"job_id", "(older)", "status", "ok", NULL},
            old_ok);
        zp_metrics_u64(m, name,
                       (const char *const[]){"job_id", "(older)", "status",
                                             "failed", NULL},
                       old_failed);
    }
    zp_metrics_family(m, "zpipe_tasks_duplicates_total", ZP_METRIC_COUNTER,
                      "Results dropped as duplicates of a committed task.");
    zp_metrics_u64(m, "zpipe_tasks_duplicates_total", NULL, dups);
    zp_metrics_family(m, "zpipe_tasks_retry_requests_total", ZP_METRIC_COUNTER,
                      "Retryable failures sent back to the ventilator.");
    zp_metrics_u64(m, "zpipe_tasks_retry_requests_total", NULL, retries);
    zp_metrics_family(m, "zpipe_jobs", ZP_METRIC_GAUGE,
                      "Jobs known to the sink since it started.");
    zp_metrics_u64(m, "zpipe_jobs", NULL, njobs);
    for (int pass = 0; pass < 2; pass++) {
        name = pass ? "zpipe_job_done_tasks" : "zpipe_job_tasks";
        zp_metrics_family(m, name, ZP_METRIC_GAUGE,
                          pass ? "A job's tasks with a record written."
                               : "A job's task count, once it is closed.");
        k = 0;
        for (s_job_t *j = s->jobs; j && k < ZP_METRICS_MAX_SERIES;
             j = j->link, k++) {
            if (!pass && j->state != ZPIPE__V1__JOB_STATE__JOB_CLOSED &&
                j->state != ZPIPE__V1__JOB_STATE__JOB_DONE)
                continue;
            zp_metrics_u64(m, name,
                           (const char *const[]){"job_id", j->id, NULL},
                           pass ? j->done : j->total);
        }
    }
    zp_metrics_family(m, "zpipe_bad_messages_total", ZP_METRIC_COUNTER,
                      "Malformed or unexpected messages dropped, by socket.");
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "results", NULL},
                   s->bad_results);
    zp_metrics_u64(m, "zpipe_bad_messages_total",
                   (const char *const[]){"socket", "control", NULL},
                   s->bad_messages - s->bad_results);
    zp_metrics_family(m, "zpipe_connections_dropped_total", ZP_METRIC_COUNTER,
                      "Connections dropped: oversized messages, peers gone.");
    zp_metrics_u64(m, "zpipe_connections_dropped_total", NULL, s->dropped);
    zp_metrics_family(m, "zpipe_events_published_total", ZP_METRIC_COUNTER,
                      "Events published on --events.");
    zp_metrics_u64(m, "zpipe_events_published_total", NULL,
                   zp_events_sent(s->events));
    if (zp_metrics_publish(m, now) < 0)
        zp_warn("metrics: out of memory rendering; serving the last snapshot");
}

static const char *s_state_name(int state)
{
    switch (state) {
    case ZPIPE__V1__JOB_STATE__JOB_CLOSED:
        return "closed";
    case ZPIPE__V1__JOB_STATE__JOB_DONE:
        return "done";
    default:
        return "open";
    }
}

/* Renders the web view's state (jobs newest first, as for /metrics). */
static void s_web_render(s_sink_t *s, uint64_t now)
{
    zp_sink_web_begin(s->web, now, zp_now_us());
    for (s_job_t *j = s->jobs; j; j = j->link) {
        zp_sink_web_job_t v = {
            .id = j->id,
            .state = s_state_name(j->state),
            .total = j->total,
            .done = j->done,
            .succeeded = j->succeeded,
            .failed = j->failed,
            .retries = j->retries,
            .duplicates = j->duplicates,
            .first_us = j->first_us,
            .last_us = j->last_us,
        };
        zp_sink_web_job(s->web, &v);
    }
    if (zp_sink_web_publish(s->web, s->bad_messages) < 0)
        zp_warn("web view: out of memory rendering; serving the last state");
}

int zp_sink_run(const zp_sink_config_t *cfg)
{
    s_sink_t s = {.cfg = cfg};
    int rc = 3;
    s.lines = strcmp(cfg->format, "lines") == 0;
    s.arena = zp_arena_new();
    if (!s.arena)
        return 3;
    s.instance = zp_random_id("sink-", 6);
    if (!s.instance || s_load_reducers(&s) < 0 || s_open_output(&s) < 0)
        goto fail_arena;
    setvbuf(s.out, NULL, _IOFBF, 1 << 20);
    if (cfg->trace && *cfg->trace) {
        char err[512];
        s.trace = zp_trace_log_new(cfg->trace, err, sizeof err);
        if (!s.trace) {
            zp_error("sink: %s", err);
            goto fail_out;
        }
    }

    if (cfg->metrics && *cfg->metrics) {
        char err[512];
        s.metrics = zp_metrics_new(cfg->metrics, err, sizeof err);
        if (!s.metrics) {
            zp_error("sink: %s", err);
            goto fail_out;
        }
        s.web = zp_sink_web_new(s.metrics, s.instance);
        if (!s.web) {
            zp_error("sink: cannot start the web view: out of memory");
            goto fail_out;
        }
    }
    s.ctx = zmq_ctx_new();
    if (!s.ctx)
        goto fail_out;
    {
        char err[1024];
        s.curve = zp_curve_new(s.ctx, &cfg->curve, err, sizeof err);
        if (!s.curve) {
            zp_error("sink: %s", err);
            goto fail_ctx;
        }
    }
    s.results = s_bind(&s, ZMQ_PULL, cfg->results);
    s.control = s.results ? s_bind(&s, ZMQ_ROUTER, cfg->control) : NULL;
    if (!s.results || !s.control)
        goto fail_ctx;
    if (cfg->publish && *cfg->publish) {
        s.pub = s_bind(&s, ZMQ_PUB, cfg->publish);
        if (!s.pub || zp_curve_watch(s.curve, s.pub, "publish") < 0)
            goto fail_ctx;
    }
    if (cfg->events && *cfg->events) {
        s.events = zp_events_new(s.ctx, cfg->events, "sink", s.curve);
        if (!s.events)
            goto fail_ctx;
    }
    zp_info("sink ready: results %s, control %s, publish %s, output %s (%s%s)",
            cfg->results, cfg->control,
            cfg->publish && *cfg->publish ? cfg->publish : "off", cfg->output,
            cfg->format, cfg->ordered ? ", ordered" : "");

    /* A peer that sends past ZMQ_MAXMSGSIZE is cut off before its frame is
     * whole: count those drops (with peers that just went away). */
    s.mon_results =
        zp_curve_monitor(s.curve, s.results, ZMQ_EVENT_DISCONNECTED, "results");
    s.mon_control =
        zp_curve_monitor(s.curve, s.control, ZMQ_EVENT_DISCONNECTED, "control");
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    char rid[256];
    size_t rid_len = 0;
    uint64_t last_flush = zp_mono_us();
    while (!zp_stopping() && !s.write_failed) {
        uint64_t now = zp_mono_us();
        if (now - last_flush >= 20000) {
            /* Records are durable before their tasks are acknowledged. */
            s_commit_all(&s);
            last_flush = now;
        }
        if (zp_metrics_due(s.metrics, now)) {
            s_web_render(&s, now);
            s_metrics_render(&s, now);
        }
        zmq_pollitem_t items[] = {
            {s.results, 0, ZMQ_POLLIN, 0},
            {s.control, 0, ZMQ_POLLIN, 0},
            {s.mon_results, 0, (short)(s.mon_results ? ZMQ_POLLIN : 0), 0},
            {s.mon_control, 0, (short)(s.mon_control ? ZMQ_POLLIN : 0), 0}};
        int n = zmq_poll(items, 4, 20);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            zp_error("poll: %s", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            for (int k = 0; k < 256; k++) {
                int r =
                    zp_recv(s.results, false, NULL, NULL, &frame, ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r > 0)
                    s_bad(&s, cfg->results, "a multi-frame message",
                          zmq_msg_size(&frame));
                else
                    s_on_results(&s, &frame);
            }
        for (int m = 2; m < 4; m++) {
            if (!(items[m].revents & ZMQ_POLLIN))
                continue;
            int d = zp_monitor_drain(m == 2 ? s.mon_results : s.mon_control);
            for (int i = 0; i < d; i++) {
                s.dropped++;
                if (s.dropped <= 10 || s.dropped % 1000 == 0)
                    zp_info("a connection on %s was dropped (an oversized "
                            "message, or the peer left); %llu so far",
                            m == 2 ? cfg->results : cfg->control,
                            (unsigned long long)s.dropped);
            }
        }
        if (items[1].revents & ZMQ_POLLIN)
            for (int k = 0; k < 64; k++) {
                int r = zp_recv(s.control, true, rid, &rid_len, &frame,
                                ZMQ_DONTWAIT);
                if (r < 0)
                    break;
                if (r > 0)
                    s_bad(&s, cfg->control, "a message of the wrong shape", 0);
                else
                    s_on_control(&s, rid, rid_len, &frame);
            }
    }
    zmq_msg_close(&frame);
    if (fflush(s.out) != 0)
        s.write_failed = true;
    rc = s.write_failed ? 3 : 0;
    zp_info("sink stopping: %llu bad messages, %llu connections dropped",
            (unsigned long long)s.bad_messages, (unsigned long long)s.dropped);

fail_ctx:
    zp_monitor_close(s.results, &s.mon_results);
    zp_monitor_close(s.control, &s.mon_control);
    /* Replies and live results still queued are not worth waiting for. */
    void *socks[] = {s.results, s.control, s.pub};
    for (int i = 0; i < 3; i++) {
        if (!socks[i])
            continue;
        int zero = 0;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(socks[i]);
    }
    zp_events_destroy(&s.events); /* its last events get the linger */
    zp_curve_log_counts(s.curve, "sink");
    zp_curve_destroy(&s.curve);
    zmq_ctx_term(s.ctx);
fail_out:
    if (zp_trace_log_destroy(&s.trace) < 0)
        zp_warn("trace %s: some lines could not be written", cfg->trace);
    zp_sink_web_destroy(&s.web);
    zp_metrics_destroy(&s.metrics);
    if (s.out && s.out != stdout)
        fclose(s.out);
    zp_journal_destroy(&s.journal);
fail_arena:
    while (s.jobs) {
        s_job_t *next = s.jobs->link;
        s_job_free(s.jobs);
        s.jobs = next;
    }
    zp_plugins_destroy(&s.reducers);
    zp_buf_free(&s.reduced);
    zp_arena_destroy(&s.arena);
    zp_result_view_free(&s.view);
    zp_buf_free(&s.spool_rec);
    zp_buf_free(&s.chunk);
    free(s.instance);
    zp_buf_free(&s.rec);
    zp_buf_free(&s.scratch);
    return rc;
}
