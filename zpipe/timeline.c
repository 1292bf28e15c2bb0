/* timeline: the sink's trace log as Chrome trace-event JSON and a summary.
 *
 * Layout of the trace: pid 1 is the pipeline (ventilator and sink): a
 * counter of the tasks in each stage (queued at the ventilator, on their
 * way to or waiting at a worker, running, on their way to the sink and
 * being committed), an instant per dispatched batch and one per commit.
 * Each worker is a process of its own (pid 2, 3, ... in the order of
 * their ids) with one thread on which every attempt it ran is an "X"
 * complete event from start to finish; its args say how long the task
 * waited in each stage. Timestamps are µs from the earliest time in the
 * log. */
#define _GNU_SOURCE
#include "timeline.h"
#include "zp_idmap.h"
#include "zp_trace.h"
#include "zp_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX     "zpipe run: timeline: "
#define S_ID_CAP     256
#define S_SUB_BITS   6 /* histogram: 64 sub-buckets per power of two */
#define S_HIST_SIZE  (64 << S_SUB_BITS)
#define S_MAX_BUCKET 2000 /* counter samples */

enum { S_QUEUE, S_TO_WORKER, S_RUN, S_TO_SINK, S_STAGES };
static const char *s_stage_label[S_STAGES] = {
    "queued->dispatched", "dispatched->started", "started->finished",
    "finished->committed"};
static const char *s_stage_key[S_STAGES] = {"queued", "to_worker", "running",
                                            "to_sink"};

/* A log-linear histogram of µs: about 1.6% precision, fixed size. */
typedef struct {
    uint64_t count, sum, max;
    uint32_t bins[S_HIST_SIZE];
} s_hist_t;

typedef struct {
    char id[S_ID_CAP];
    uint64_t attempts, committed, busy_us;
    int pid;
} s_worker_t;

typedef struct {
    uint64_t tasks;
    int pid;
} s_batch_t;

typedef struct {
    FILE *out;
    const char *out_name;
    FILE *sum;
    s_worker_t *workers;
    size_t n_workers;
    uint64_t t0, t_end; /* earliest and latest time in the log */
    uint64_t first_dispatch, last_commit;
    uint64_t records, skew; /* skew: stage ends before it starts */
    s_hist_t *hist;         /* S_STAGES of them */
    uint64_t stage_sum[S_STAGES];
    zp_idmap_t *batches;      /* dispatch_us -> s_batch_t*, then reused */
    zp_idmap_t *commits;      /* commit_us -> count */
    int64_t *level[S_STAGES]; /* counter deltas per bucket */
    uint64_t bucket_us;
    size_t n_buckets;
    uint64_t events;
    bool first_event;
} s_tl_t;

static unsigned s_bin(uint64_t v)
{
    if (v < (1u << S_SUB_BITS))
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v); /* >= S_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - S_SUB_BITS)) & ((1u << S_SUB_BITS) - 1);
    unsigned b = ((e - S_SUB_BITS + 1) << S_SUB_BITS) + sub;
    return b < S_HIST_SIZE ? b : S_HIST_SIZE - 1;
}

/* The smallest value of bin b (what a percentile reports). */
static uint64_t s_bin_value(unsigned b)
{
    if (b < (1u << S_SUB_BITS))
        return b;
    unsigned e = (b >> S_SUB_BITS) + S_SUB_BITS - 1;
    uint64_t sub = b & ((1u << S_SUB_BITS) - 1);
    return ((uint64_t)1 << e) | (sub << (e - S_SUB_BITS));
}

static void s_hist_add(s_hist_t *h, uint64_t v)
{
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    h->bins[s_bin(v)]++;
}

static double s_hist_pct(const s_hist_t *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < S_HIST_SIZE; b++) {
        seen += h->bins[b];
        if (seen >= rank) {
            uint64_t v = s_bin_value(b);
            return (double)(v < h->max ? v : h->max);
        }
    }
    return (double)h->max;
}

static s_worker_t *s_worker(s_tl_t *t, const char *id)
{
    for (size_t i = 0; i < t->n_workers; i++)
        if (strcmp(t->workers[i].id, id) == 0)
            return &t->workers[i];
    s_worker_t *w = realloc(t->workers, (t->n_workers + 1) * sizeof *w);
    if (!w)
        return NULL;
    t->workers = w;
    w = &w[t->n_workers++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    return w;
}

static int s_cmp_worker(const void *a, const void *b)
{
    return strcmp(((const s_worker_t *)a)->id, ((const s_worker_t *)b)->id);
}

static void s_span(s_tl_t *t, uint64_t v)
{
    if (!v)
        return;
    if (!t->t0 || v < t->t0)
        t->t0 = v;
    if (v > t->t_end)
        t->t_end = v;
}

/* A stage's length, 0 when either end is unknown; counts clock skew. */
static bool s_stage(s_tl_t *t, uint64_t from, uint64_t to, uint64_t *len)
{
    if (!from || !to)
        return false;
    if (to < from) {
        t->skew++;
        *len = 0;
    } else
        *len = to - from;
    return true;
}

/* Calls fn for each entry of the log; -1 when it cannot be read. */
static int s_each(s_tl_t *t, const char *path,
                  void (*fn)(s_tl_t *, const zp_trace_entry_t *))
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(t->sum,
                "zpipe run: trace: cannot read the sink's trace log %s: %s\n",
                path, strerror(errno));
        return -1;
    }
    char *line = NULL, job[S_ID_CAP], worker[S_ID_CAP];
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        zp_trace_entry_t e;
        if (zp_trace_parse(line, (size_t)n, &e, job, sizeof job, worker,
                           sizeof worker) == 0)
            fn(t, &e);
    }
    free(line);
    fclose(f);
    return 0;
}

/* Pass 1: the span, the workers, the stages' statistics. */
static void s_pass1(s_tl_t *t, const zp_trace_entry_t *e)
{
    t->records++;
    s_span(t, e->queued_us);
    s_span(t, e->dispatch_us);
    s_span(t, e->start_us);
    s_span(t, e->start_us ? e->start_us + e->elapsed_us : 0);
    s_span(t, e->received_us);
    s_span(t, e->commit_us);
    if (e->dispatch_us &&
        (!t->first_dispatch || e->dispatch_us < t->first_dispatch))
        t->first_dispatch = e->dispatch_us;
    if (e->commit_us > t->last_commit)
        t->last_commit = e->commit_us;
    if (e->start_us) { /* it ran somewhere (not a ventilator's record) */
        s_worker_t *w = s_worker(t, e->worker);
        if (w) {
            w->attempts++;
            w->busy_us += e->elapsed_us;
            w->committed += e->outcome == ZP_TRACE_COMMITTED;
        }
    }
    if (e->outcome != ZP_TRACE_COMMITTED)
        return;
    uint64_t len[S_STAGES] = {0};
    uint64_t finish = e->start_us ? e->start_us + e->elapsed_us : 0;
    bool have[S_STAGES] = {
        s_stage(t, e->queued_us, e->dispatch_us, &len[S_QUEUE]),
        s_stage(t, e->dispatch_us, e->start_us, &len[S_TO_WORKER]),
        e->start_us != 0,
        s_stage(t, finish, e->commit_us, &len[S_TO_SINK]),
    };
    len[S_RUN] = e->elapsed_us;
    for (int s = 0; s < S_STAGES; s++)
        if (have[s]) {
            s_hist_add(&t->hist[s], len[s]);
            t->stage_sum[s] += len[s];
        }
}

static void s_event(s_tl_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_event(s_tl_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(t->first_event ? "\n" : ",\n", t->out);
    vfprintf(t->out, fmt, ap);
    va_end(ap);
    t->first_event = false;
    t->events++;
}

static unsigned long long s_rel(const s_tl_t *t, uint64_t v)
{
    return (unsigned long long)(v > t->t0 ? v - t->t0 : 0);
}

static void s_level(s_tl_t *t, int stage, uint64_t from, uint64_t to)
{
    if (!from || !to || to < from)
        return;
    size_t a = (size_t)((from - t->t0) / t->bucket_us);
    size_t b = (size_t)((to - t->t0) / t->bucket_us);
    if (a >= t->n_buckets || b >= t->n_buckets || a == b)
        return;
    t->level[stage][a]++;
    t->level[stage][b]--;
}

/* A time for an event's args: µs from t0 like ts, or null when unknown. */
static const char *s_ts(const s_tl_t *t, uint64_t v, char buf[24])
{
    if (!v)
        return "null";
    snprintf(buf, 24, "%llu", s_rel(t, v));
    return buf;
}

static double s_ms(uint64_t us)
{
    return (double)us / 1000.0;
}

/* Pass 2: an event per attempt; the counters' and instants' inputs. */
static void s_pass2(s_tl_t *t, const zp_trace_entry_t *e)
{
    zp_buf_t job = {0};
    zp_buf_append_json(&job, e->job, strlen(e->job));
    zp_buf_append(&job, "", 1);
    uint64_t finish = e->start_us ? e->start_us + e->elapsed_us : 0;
    const char *status = e->ok ? "ok" : "failed";
    const char *outcome = zp_trace_outcome_name(e->outcome);
    int pid = 0;
    if (e->start_us) {
        s_worker_t key;
        snprintf(key.id, sizeof key.id, "%s", e->worker);
        s_worker_t *w =
            bsearch(&key, t->workers, t->n_workers, sizeof key, s_cmp_worker);
        pid = w ? w->pid : 0;
    }
    if (pid) {
        uint64_t q = 0, tw = 0, ts = 0;
        char tq[24], td[24], tr[24], tc[24];
        uint64_t skew = t->skew; /* counted once, in pass 1 */
        s_stage(t, e->queued_us, e->dispatch_us, &q);
        s_stage(t, e->dispatch_us, e->start_us, &tw);
        s_stage(t, finish, e->commit_us, &ts);
        t->skew = skew;
        s_event(t,
                "{\"name\":\"task %llu\",\"cat\":\"task\",\"ph\":\"X\","
                "\"ts\":%llu,\"dur\":%llu,\"pid\":%d,\"tid\":1,\"args\":{"
                "\"job\":\"%s\",\"task\":%llu,\"attempt\":%u,\"status\":\"%s\","
                "\"outcome\":\"%s\",\"bytes\":%llu,\"queued_ms\":%.3f,"
                "\"to_worker_ms\":%.3f,\"to_sink_ms\":%.3f,\"queued_ts\":%s,"
                "\"dispatched_ts\":%s,\"received_ts\":%s,\"committed_ts\":%s}}",
                (unsigned long long)e->task, s_rel(t, e->start_us),
                (unsigned long long)e->elapsed_us, pid, job.data,
                (unsigned long long)e->task, e->attempt, status, outcome,
                (unsigned long long)e->bytes, s_ms(q), s_ms(tw), s_ms(ts),
                s_ts(t, e->queued_us, tq), s_ts(t, e->dispatch_us, td),
                s_ts(t, e->received_us, tr), s_ts(t, e->commit_us, tc));
    } else if (e->received_us) {
        /* A record nobody ran: the ventilator gave up on the task. */
        s_event(t,
                "{\"name\":\"task %llu not run\",\"cat\":\"task\",\"ph\":"
                "\"i\",\"s\":\"p\",\"ts\":%llu,\"pid\":1,\"tid\":2,\"args\":{"
                "\"job\":\"%s\",\"task\":%llu,\"attempt\":%u,\"status\":\"%s\","
                "\"outcome\":\"%s\",\"from\":\"%s\"}}",
                (unsigned long long)e->task, s_rel(t, e->received_us), job.data,
                (unsigned long long)e->task, e->attempt, status, outcome,
                "ventilator");
    }
    zp_buf_free(&job);
    if (e->dispatch_us && pid) {
        s_batch_t *b = zp_idmap_get(t->batches, e->dispatch_us);
        if (!b && (b = calloc(1, sizeof *b)) != NULL &&
            zp_idmap_put(t->batches, e->dispatch_us, b) < 0) {
            free(b);
            b = NULL;
        }
        if (b) {
            b->tasks++;
            b->pid = pid;
        }
    }
    if (e->commit_us && e->outcome == ZP_TRACE_COMMITTED) {
        uintptr_t n = (uintptr_t)zp_idmap_get(t->commits, e->commit_us);
        zp_idmap_put(t->commits, e->commit_us, (void *)(n + 1));
    }
    s_level(t, S_QUEUE, e->queued_us, e->dispatch_us);
    s_level(t, S_TO_WORKER, e->dispatch_us, e->start_us);
    s_level(t, S_RUN, e->start_us, finish);
    s_level(t, S_TO_SINK, finish, e->commit_us ? e->commit_us : e->received_us);
}

static void s_meta(s_tl_t *t, int pid, const char *what, const char *name)
{
    zp_buf_t b = {0};
    zp_buf_append_json(&b, name, strlen(name));
    zp_buf_append(&b, "", 1);
    s_event(t,
            "{\"name\":\"%s\",\"ph\":\"M\",\"ts\":0,\"pid\":%d,\"tid\":%d,"
            "\"args\":{\"name\":\"%s\"}}",
            what, pid, strcmp(what, "thread_name") == 0 ? 1 : 0,
            b.data ? b.data : "");
    zp_buf_free(&b);
}

static void s_summary(s_tl_t *t, uint64_t bytes)
{
    FILE *o = t->sum;
    uint64_t wall = t->last_commit > t->first_dispatch && t->first_dispatch
                        ? t->last_commit - t->first_dispatch
                        : 0;
    fprintf(o,
            "zpipe run: trace: wrote %s: %llu events, %llu bytes, from %llu "
            "task records\n",
            t->out_name, (unsigned long long)t->events,
            (unsigned long long)bytes, (unsigned long long)t->records);
    fprintf(o, S_PREFIX "wall %.6f s from first dispatch to last commit\n",
            (double)wall / 1e6);
    for (size_t i = 0; i < t->n_workers; i++) {
        s_worker_t *w = &t->workers[i];
        fprintf(o,
                S_PREFIX "worker %s: attempts %llu, committed %llu, busy %.6f "
                         "s, utilisation %.2f%%\n",
                w->id, (unsigned long long)w->attempts,
                (unsigned long long)w->committed, (double)w->busy_us / 1e6,
                wall ? 100.0 * (double)w->busy_us / (double)wall : 0.0);
    }
    for (int s = 0; s < S_STAGES; s++) {
        const s_hist_t *h = &t->hist[s];
        fprintf(o,
                S_PREFIX "%s ms: tasks %llu, mean %.3f, p50 %.3f, p99 %.3f, "
                         "max %.3f\n",
                s_stage_label[s], (unsigned long long)h->count,
                h->count ? s_ms(h->sum) / (double)h->count : 0.0,
                s_hist_pct(h, 0.50) / 1000.0, s_hist_pct(h, 0.99) / 1000.0,
                s_ms(h->max));
    }
    uint64_t life = 0;
    for (int s = 0; s < S_STAGES; s++)
        life += t->stage_sum[s];
    double pct[S_STAGES];
    for (int s = 0; s < S_STAGES; s++)
        pct[s] = life ? 100.0 * (double)t->stage_sum[s] / (double)life : 0;
    fprintf(o,
            S_PREFIX "where the time went: queued %.1f%%, to worker %.1f%%, "
                     "running %.1f%%, to sink %.1f%% of the tasks' summed "
                     "life; pipeline overhead (to worker + to sink) %.1f%%\n",
            pct[S_QUEUE], pct[S_TO_WORKER], pct[S_RUN], pct[S_TO_SINK],
            pct[S_TO_WORKER] + pct[S_TO_SINK]);
    if (t->skew)
        fprintf(o,
                S_PREFIX "%llu stages ended before they began by the clocks "
                         "involved (hosts' clocks disagree?); counted as 0\n",
                (unsigned long long)t->skew);
}

/* After the first pass: the workers' track numbers and the buckets of
 * the stage counters. Returns 0, or -1 when out of memory. */
static int s_layout(s_tl_t *t)
{
    qsort(t->workers, t->n_workers, sizeof *t->workers, s_cmp_worker);
    for (size_t i = 0; i < t->n_workers; i++)
        t->workers[i].pid = (int)i + 2;
    uint64_t span = t->t_end > t->t0 ? t->t_end - t->t0 : 0;
    t->bucket_us = span / S_MAX_BUCKET + 1;
    if (t->bucket_us < 100)
        t->bucket_us = 100;
    t->n_buckets = (size_t)(span / t->bucket_us) + 2;
    for (int s = 0; s < S_STAGES; s++)
        if (!(t->level[s] = calloc(t->n_buckets, sizeof *t->level[s])))
            return -1;
    return 0;
}

/* The document's head and the tracks' names. */
static void s_head(s_tl_t *t)
{
    FILE *out = t->out;
    fprintf(out, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":"
                 "\"zpipe run --trace\",\"version\":\"" ZPIPE_VERSION "\",");
    fprintf(out,
            "\"t0_unix_us\":%llu,\"first_dispatch_us\":%llu,"
            "\"last_commit_us\":%llu,\"records\":%llu},\n\"traceEvents\":[",
            (unsigned long long)t->t0, s_rel(t, t->first_dispatch),
            s_rel(t, t->last_commit), (unsigned long long)t->records);
    s_meta(t, 1, "process_name", "zpipe pipeline");
    s_event(t, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"ts\":0,"
               "\"pid\":1,\"tid\":0,\"args\":{\"sort_index\":0}}");
    s_meta(t, 1, "thread_name", "dispatch (ventilator)");
    s_event(t, "{\"name\":\"thread_name\",\"ph\":\"M\",\"ts\":0,\"pid\":1,"
               "\"tid\":2,\"args\":{\"name\":\"commit (sink)\"}}");
    for (size_t i = 0; i < t->n_workers; i++) {
        char name[S_ID_CAP + 16];
        snprintf(name, sizeof name, "worker %s", t->workers[i].id);
        s_meta(t, t->workers[i].pid, "process_name", name);
        s_event(t,
                "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"ts\":0,"
                "\"pid\":%d,\"tid\":0,\"args\":{\"sort_index\":%d}}",
                t->workers[i].pid, t->workers[i].pid);
        s_meta(t, t->workers[i].pid, "thread_name", "plugin calls");
    }
}

/* The pipeline track: one instant per dispatched batch and per commit. */
static void s_pipeline_events(s_tl_t *t)
{
    size_t cur = 0;
    uint64_t key;
    void *val;
    while (zp_idmap_next(t->batches, &cur, &key, &val)) {
        s_batch_t *b = val;
        const char *to = t->workers[b->pid - 2].id;
        zp_buf_t esc = {0};
        zp_buf_append_json(&esc, to, strlen(to));
        zp_buf_append(&esc, "", 1);
        s_event(t,
                "{\"name\":\"dispatch\",\"cat\":\"pipeline\",\"ph\":\"i\","
                "\"s\":\"t\",\"ts\":%llu,\"pid\":1,\"tid\":1,\"args\":{"
                "\"tasks\":%llu,\"worker\":\"%s\"}}",
                s_rel(t, key), (unsigned long long)b->tasks,
                esc.data ? esc.data : "");
        zp_buf_free(&esc);
    }
    cur = 0;
    while (zp_idmap_next(t->commits, &cur, &key, &val))
        s_event(t,
                "{\"name\":\"commit\",\"cat\":\"pipeline\",\"ph\":\"i\","
                "\"s\":\"t\",\"ts\":%llu,\"pid\":1,\"tid\":2,\"args\":{"
                "\"tasks\":%llu}}",
                s_rel(t, key), (unsigned long long)(uintptr_t)val);
}

/* The counter of tasks by stage, one sample per bucket that changed. */
static void s_stage_counters(s_tl_t *t)
{
    int64_t lv[S_STAGES] = {0};
    for (size_t b = 0; b < t->n_buckets; b++) {
        bool changed = b == 0;
        for (int s = 0; s < S_STAGES; s++) {
            changed |= t->level[s][b] != 0;
            lv[s] += t->level[s][b];
        }
        if (!changed)
            continue;
        s_event(t,
                "{\"name\":\"tasks by stage\",\"ph\":\"C\",\"ts\":%llu,"
                "\"pid\":1,\"tid\":0,\"args\":{\"%s\":%lld,\"%s\":%lld,"
                "\"%s\":%lld,\"%s\":%lld}}",
                (unsigned long long)(b * t->bucket_us), s_stage_key[0],
                (long long)lv[0], s_stage_key[1], (long long)lv[1],
                s_stage_key[2], (long long)lv[2], s_stage_key[3],
                (long long)lv[3]);
    }
}

int zp_timeline_write(const char *log_path, FILE *out, const char *out_name,
                      FILE *summary)
{
    int rc = -1;
    s_tl_t t = {.out = out, .out_name = out_name, .sum = summary};
    t.first_event = true;
    t.hist = calloc(S_STAGES, sizeof *t.hist);
    t.batches = zp_idmap_new();
    t.commits = zp_idmap_new();
    if (!t.hist || !t.batches || !t.commits) {
        fprintf(summary, "zpipe run: trace: out of memory\n");
        goto done;
    }
    if (s_each(&t, log_path, s_pass1) < 0)
        goto done;
    if (s_layout(&t) < 0) {
        fprintf(summary, "zpipe run: trace: out of memory\n");
        goto done;
    }
    s_head(&t);
    if (s_each(&t, log_path, s_pass2) < 0)
        goto done;
    s_pipeline_events(&t);
    s_stage_counters(&t);
    fputs("\n]}\n", out);
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(summary, "zpipe run: trace: writing %s: %s\n", out_name,
                strerror(errno));
        goto done;
    }
    long bytes = ftell(out);
    s_summary(&t, bytes > 0 ? (uint64_t)bytes : 0);
    rc = 0;
done:
    if (t.batches) { /* the map is destroyed whole: no removals */
        size_t c = 0;
        uint64_t k;
        void *v;
        while (zp_idmap_next(t.batches, &c, &k, &v))
            free(v);
    }
    zp_idmap_destroy(&t.batches);
    zp_idmap_destroy(&t.commits);
    for (int s = 0; s < S_STAGES; s++)
        free(t.level[s]);
    free(t.hist);
    free(t.workers);
    return rc;
}
