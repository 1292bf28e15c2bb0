/* vent_shell_journal: the ventilator's journal in the shell (--journal).
 * Replays it at start-up into the job list and the task table; appends
 * what producers are told is taken; sends the intake's answers once a
 * sync covers them (group commit); compacts the file as jobs finish. */
#define _GNU_SOURCE
#include "vent_intake.h"
#include "vent_shell.h"
#include "zp_log.h"
#include "zp_net.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Compaction: checked every few seconds, once the file is this big. */
#define S_COMPACT_MIN_BYTES (64ull << 20)
#define S_COMPACT_EVERY_US  5000000u

/* ---- replay ---------------------------------------------------------- */

static int s_on_open(void *ctx, const zp_vjournal_job_t *o, const char **why)
{
    zp_vent_shell_t *v = ctx;
    if (zp_vent_jobs_find(v->jobs, o->id)) {
        *why = "a job opened twice";
        return -1;
    }
    zp_vent_job_t *j = zp_vent_jobs_add(v->jobs, o->id, o->plugin);
    if (!j || zp_vent_job_set_token(j, o->token) < 0 ||
        (*o->config && !(j->config = strdup(o->config)))) {
        *why = "out of memory";
        return -1;
    }
    j->deadline_ms = o->deadline_ms;
    j->max_attempts = o->max_attempts;
    j->priority = o->priority;
    zp_lease_key_t key;
    if (zp_lease_key_from(&key, o->key, sizeof o->key) == 0 &&
        zp_lease_key_set(&key))
        j->key = key; /* else the new one: told to the sink in JobOpen */
    return 0;
}

static int s_on_tasks(void *ctx, const char *job, uint64_t seq, uint64_t first,
                      size_t n, const uint8_t *const *data,
                      const uint32_t *lens, const char **why)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_job_t *j = zp_vent_jobs_find(v->jobs, job);
    if (!j || first < j->next_task_id || (seq && first != j->next_task_id) ||
        first + n >= ZP_VENT_MAX_TASK_ID) {
        *why = "tasks that do not follow their job's";
        return -1;
    }
    /* Ids between were committed before a compaction left them out. */
    j->next_task_id = first;
    uint64_t stamp = v->cfg->trace ? zp_now_us() : 0;
    for (size_t i = 0; i < n; i++)
        if (!zp_vent_tasks_add(v->tasks, j, data[i], lens[i], stamp)) {
            *why = "out of memory";
            return -1;
        }
    if (seq && (seq != j->n_batches + 1 ||
                zp_vent_job_batch_add(j, first, (uint32_t)n) < 0)) {
        *why =
            seq != j->n_batches + 1 ? "batches out of order" : "out of memory";
        return -1;
    }
    return 0;
}

static int s_on_seqs(void *ctx, const char *job, const zp_vjournal_seq_t *seqs,
                     size_t n, const char **why)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_job_t *j = zp_vent_jobs_find(v->jobs, job);
    if (!j || j->n_batches) {
        *why = "batch numbers for a job that has them";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (zp_vent_job_batch_add(j, seqs[i].first, seqs[i].n) < 0) {
            *why = "out of memory";
            return -1;
        }
    return 0;
}

static int s_on_close(void *ctx, const char *job, uint64_t total,
                      const char **why)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_job_t *j = zp_vent_jobs_find(v->jobs, job);
    if (!j || total != j->next_task_id) {
        *why = "a close that does not match its job";
        return -1;
    }
    j->input_closed = true;
    return 0;
}

static int s_on_committed(void *ctx, const char *job, const uint64_t *ids,
                          size_t n, const char **why)
{
    (void)why;
    zp_vent_shell_t *v = ctx;
    zp_vent_job_t *j = zp_vent_jobs_find(v->jobs, job);
    for (size_t i = 0; j && i < n; i++) {
        zp_vent_task_t *t =
            ids[i] < ZP_VENT_MAX_TASK_ID
                ? zp_vent_tasks_get(v->tasks, ZP_VENT_KEY(j, ids[i]))
                : NULL;
        if (t)
            zp_vent_tasks_done(v->tasks, t);
    }
    return 0;
}

static int s_on_finished(void *ctx, const char *job, const char *token,
                         uint64_t total, uint64_t when_us, const char **why)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_job_t *j = zp_vent_jobs_find(v->jobs, job);
    if (j)
        zp_vent_shell_remove_job(v, j); /* not DONE here: not remembered */
    if (when_us == 0) /* removed unfinished (refused): forgotten */
        return 0;
    if (zp_vent_finished_add(zp_vent_jobs_finished(v->jobs), job, token, total,
                             when_us) < 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

int zp_vent_shell_journal_open(zp_vent_shell_t *v)
{
    static const zp_vjournal_visitor_t visitor = {
        s_on_open,  s_on_tasks,     s_on_seqs,
        s_on_close, s_on_committed, s_on_finished,
    };
    if (!v->cfg->journal)
        return 0;
    char err[512];
    zp_vjournal_info_t info = {0};
    v->journal =
        zp_vjournal_open(v->cfg->journal, &visitor, v, &info, err, sizeof err);
    if (!v->journal) {
        zp_error("ventilator journal: %s", err);
        return -1;
    }
    zp_vent_finished_expire(zp_vent_jobs_finished(v->jobs), zp_now_us());
    if (info.created)
        zp_info("journal %s: new", v->cfg->journal);
    else
        zp_info("journal %s: %llu records; %zu jobs to resume with %zu tasks "
                "not yet committed; %zu finished job ids remembered%s",
                v->cfg->journal, (unsigned long long)info.records,
                zp_vent_jobs_count(v->jobs), zp_vent_tasks_size(v->tasks),
                zp_vent_finished_count(zp_vent_jobs_finished(v->jobs)),
                info.torn ? "; a torn last record was cut off" : "");
    return 0;
}

void zp_vent_shell_journal_close(zp_vent_shell_t *v)
{
    if (v->journal && zp_vjournal_flush(v->journal) < 0)
        zp_warn("journal %s: %s", v->cfg->journal, strerror(errno));
    zp_vjournal_destroy(&v->journal);
    zp_vent_acks_free(&v->acks);
}

/* ---- appends ----------------------------------------------------------- */

/* j as its JOB record has it. */
static zp_vjournal_job_t s_job_record(const zp_vent_job_t *j)
{
    zp_vjournal_job_t o = {
        .id = j->id,
        .token = j->token,
        .plugin = j->plugin,
        .config = j->config ? j->config : "",
        .deadline_ms = j->deadline_ms,
        .max_attempts = j->max_attempts,
        .priority = j->priority,
    };
    memcpy(o.key, j->key.b, sizeof o.key);
    return o;
}

int zp_vent_shell_journal_job(zp_vent_shell_t *v, const zp_vent_job_t *j)
{
    if (!v->journal)
        return 0;
    zp_vjournal_job_t o = s_job_record(j);
    return zp_vjournal_job(v->journal, &o);
}

int zp_vent_shell_journal_tasks(zp_vent_shell_t *v, const zp_vent_job_t *j,
                                uint64_t seq, uint64_t first,
                                const Zpipe__V1__TaskBatch *b, size_t n)
{
    if (!v->journal)
        return 0;
    const uint8_t **data = malloc((n + 1) * sizeof *data);
    uint32_t *lens = malloc((n + 1) * sizeof *lens);
    int rc = -1;
    if (data && lens) {
        size_t i = 0;
        for (; i < b->n_tasks && i < n; i++) {
            data[i] = b->tasks[i]->payload.data;
            lens[i] = (uint32_t)b->tasks[i]->payload.len;
        }
        const uint8_t *p = b->lines.data, *end = p + b->lines.len, *line;
        size_t len;
        for (; i < n && (line = zp_vent_line_next(&p, end, &len)); i++) {
            data[i] = line;
            lens[i] = (uint32_t)len;
        }
        rc = zp_vjournal_tasks(v->journal, j->id, seq, first, n, data, lens);
    }
    free(data);
    free(lens);
    return rc;
}

int zp_vent_shell_take_batch(zp_vent_shell_t *v, zp_vent_job_t *j,
                             const Zpipe__V1__TaskBatch *b, uint64_t n,
                             uint64_t *first)
{
    /* Tasks given whole come after every line taken before: those
     * become tasks first, so that a job's lines always have the last ids
     * (its compaction writes tasks, then lines, in id order). */
    if (b->n_tasks && j->lines.n &&
        zp_vent_tasks_from_lines(v->tasks, j, j->ready.len + j->lines.n) < 0)
        return -1;
    uint64_t start = j->next_task_id;
    uint64_t stamp = v->cfg->trace ? zp_now_us() : 0;
    for (size_t i = 0; i < b->n_tasks; i++)
        if (!zp_vent_tasks_add(v->tasks, j, b->tasks[i]->payload.data,
                               b->tasks[i]->payload.len, stamp))
            goto fail_tasks;
    /* Lines, checked whole: each ends with '\n' (vent_intake). They
     * become tasks when dispatch needs them (vent_lines). */
    uint64_t lines = n - b->n_tasks;
    if (zp_vent_tasks_take_lines(v->tasks, j, b->lines.data, b->lines.len,
                                 lines, stamp) < 0)
        goto fail_tasks;
    if (b->seq && zp_vent_job_batch_add(j, start, (uint32_t)n) < 0)
        goto fail_lines;
    if (zp_vent_shell_journal_tasks(v, j, b->seq, start, b, n) < 0)
        goto fail_number;
    *first = start;
    return 0;
fail_number:
    if (b->seq)
        j->n_batches--;
fail_lines:
    zp_vent_tasks_untake_lines(v->tasks, j, lines);
fail_tasks:
    zp_vent_tasks_give_back(v->tasks, j, start);
    return -1;
}

int zp_vent_shell_journal_close_job(zp_vent_shell_t *v, const zp_vent_job_t *j)
{
    return v->journal ? zp_vjournal_close(v->journal, j->id, j->next_task_id)
                      : 0;
}

void zp_vent_shell_journal_committed(zp_vent_shell_t *v, const zp_vent_job_t *j,
                                     const uint64_t *ids, size_t n)
{
    /* Lost (out of memory): the tasks run again after a restart and the
     * sink drops the duplicates. */
    if (v->journal && n && !j->has_input)
        zp_vjournal_committed(v->journal, j->id, ids, n);
}

void zp_vent_shell_journal_finished(zp_vent_shell_t *v, const zp_vent_job_t *j)
{
    /* A job removed unfinished (refused by the sink, or its set-up
     * failed) is written as finished at time 0: the replay drops it and
     * does not remember its id, as this process did. Without it the
     * replay would resume it, and an open of its id taken again later
     * would stop the replay ("a job opened twice"). Lost (out of memory):
     * the replay resumes the job and the sink refuses it again. */
    if (v->journal && !j->has_input)
        zp_vjournal_finished(v->journal, j->id, j->token, j->next_task_id,
                             j->state == ZP_VENT_JOB_DONE ? zp_now_us() : 0);
}

/* ---- answers: group commit ------------------------------------------- */

static void s_send_ack(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                       const char *job, bool ok, const char *error,
                       uint64_t first, uint64_t accepted, uint64_t seq,
                       bool finished)
{
    Zpipe__V1__Ack a = ZPIPE__V1__ACK__INIT;
    a.job_id = (char *)(job ? job : "");
    a.ok = ok;
    a.finished = finished;
    a.error = (char *)(error ? error : "");
    a.first_task_id = first;
    a.accepted = accepted;
    a.seq = seq;
    a.sink_instance = v->link.sink_instance ? v->link.sink_instance : "";
    a.ventilator_instance = v->instance ? v->instance : "";
    a.max_task_bytes = v->cfg->max_task_bytes;
    a.takes_lines = true;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_ACK;
    m.ack = &a;
    if (zp_send(v->intake, rid, rid_len, &m, &v->scratch, ZMQ_DONTWAIT) < 0)
        zp_debug("ack to a producer: %s", zmq_strerror(errno));
}

void zp_vent_shell_answer(zp_vent_shell_t *v, const char *rid, size_t rid_len,
                          const char *job, bool ok, const char *error,
                          uint64_t first, uint64_t accepted, uint64_t seq)
{
    if (!v->journal) {
        s_send_ack(v, rid, rid_len, job, ok, error, first, accepted, seq,
                   false);
        return;
    }
    /* Dropped when out of memory: the producer sends again. */
    zp_vent_acks_push(&v->acks, rid, rid_len, job, ok, error, first, accepted,
                      seq);
}

void zp_vent_shell_answer_finished(zp_vent_shell_t *v, const char *rid,
                                   size_t rid_len, const char *job,
                                   uint64_t total)
{
    if (!v->journal) {
        s_send_ack(v, rid, rid_len, job, true, NULL, 0, total, 0, true);
        return;
    }
    /* Queued like any answer: it goes out once the journal has synced the
     * job's end. Dropped when out of memory: the producer sends again. */
    if (zp_vent_acks_push(&v->acks, rid, rid_len, job, true, NULL, 0, total,
                          0) == 0)
        v->acks.items[v->acks.n - 1].finished = true;
}

void zp_vent_shell_answers_flush(zp_vent_shell_t *v)
{
    if (!v->journal)
        return;
    if (zp_vjournal_needs_sync(v->journal)) {
        if (zp_vjournal_sync(v->journal) < 0) {
            /* Nothing is answered until the journal takes it: producers
             * wait, and their tasks are not lost. */
            v->n.journal_errors++;
            if (zp_log_sampled(v->n.journal_errors))
                zp_error("journal %s: %s; producers wait until it can be "
                         "written (%llu failures so far)",
                         v->cfg->journal, strerror(errno),
                         (unsigned long long)v->n.journal_errors);
            return;
        }
        v->n.journal_syncs++;
    }
    for (size_t i = 0; i < v->acks.n; i++) {
        zp_vent_ack_item_t *a = &v->acks.items[i];
        s_send_ack(v, a->rid, a->rid_len, a->job, a->ok, a->error, a->first,
                   a->accepted, a->seq, a->finished);
    }
    zp_vent_acks_clear(&v->acks);
}

/* ---- compaction -------------------------------------------------------- */

/* Orders held tasks by job slot, then id. */
static int s_task_cmp(const void *a, const void *b)
{
    const zp_vent_task_t *x = *(zp_vent_task_t *const *)a;
    const zp_vent_task_t *y = *(zp_vent_task_t *const *)b;
    uint64_t kx = ZP_VENT_KEY(x->job, x->id), ky = ZP_VENT_KEY(y->job, y->id);
    return kx < ky ? -1 : kx > ky;
}

/* Writes runs of consecutive ids of one job's sorted tasks t[0..n). */
static int s_dump_tasks(zp_vjournal_t *jr, zp_vent_task_t **t, size_t n)
{
    const uint8_t **data = malloc((n + 1) * sizeof *data);
    uint32_t *lens = malloc((n + 1) * sizeof *lens);
    int rc = data && lens ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t k = i;
        while (k < n && t[k]->id == t[i]->id + (k - i)) {
            data[k - i] = t[k]->data;
            lens[k - i] = (uint32_t)t[k]->len;
            k++;
        }
        rc = zp_vjournal_tasks(jr, t[i]->job->id, 0, t[i]->id, k - i, data,
                               lens);
        i = k;
    }
    free(data);
    free(lens);
    return rc;
}

#define S_DUMP_RUN 8192 /* lines per task record of a compaction */

/* Writes j's lines not yet tasks, after its tasks (their ids come after
 * every task's: zp_vent_shell_take_batch keeps it so), in runs. */
static int s_dump_lines(zp_vjournal_t *jr, const zp_vent_job_t *j)
{
    if (!j->lines.n)
        return 0;
    const uint8_t **data = malloc(S_DUMP_RUN * sizeof *data);
    uint32_t *lens = malloc(S_DUMP_RUN * sizeof *lens);
    int rc = data && lens ? 0 : -1;
    zp_vent_lines_cursor_t c = {0};
    uint64_t id, first = 0;
    const uint8_t *line;
    size_t len, k = 0;
    while (rc == 0 && zp_vent_lines_next(&j->lines, &c, &id, &line, &len)) {
        if (k && (k == S_DUMP_RUN || id != first + k)) {
            rc = zp_vjournal_tasks(jr, j->id, 0, first, k, data, lens);
            k = 0;
        }
        if (k == 0)
            first = id;
        data[k] = line;
        lens[k++] = (uint32_t)len;
    }
    if (rc == 0 && k)
        rc = zp_vjournal_tasks(jr, j->id, 0, first, k, data, lens);
    free(data);
    free(lens);
    return rc;
}

/* One live job: open, batch numbers, held tasks and lines, its next id,
 * close. */
static int s_dump_job(zp_vjournal_t *jr, const zp_vent_job_t *j,
                      zp_vent_task_t **t, size_t n)
{
    zp_vjournal_job_t o = s_job_record(j);
    if (zp_vjournal_job(jr, &o) < 0)
        return -1;
    if (j->n_batches) {
        zp_vjournal_seq_t *s = malloc(j->n_batches * sizeof *s);
        if (!s)
            return -1;
        for (size_t i = 0; i < j->n_batches; i++)
            s[i] = (zp_vjournal_seq_t){i + 1, j->batches[i].first,
                                       j->batches[i].n};
        int rc = zp_vjournal_seqs(jr, j->id, s, j->n_batches);
        free(s);
        if (rc < 0)
            return -1;
    }
    if (s_dump_tasks(jr, t, n) < 0 || s_dump_lines(jr, j) < 0 ||
        zp_vjournal_tasks(jr, j->id, 0, j->next_task_id, 0, NULL, NULL) < 0)
        return -1;
    return j->input_closed ? zp_vjournal_close(jr, j->id, j->next_task_id) : 0;
}

zp_vent_task_t **zp_vent_shell_held_sorted(zp_vent_shell_t *v, bool with_input,
                                           size_t *count)
{
    size_t n = zp_vent_tasks_size(v->tasks), k = 0, cursor = 0;
    zp_vent_task_t **all = malloc((n + 1) * sizeof *all), *t;
    if (!all)
        return NULL;
    while (zp_vent_tasks_next(v->tasks, &cursor, &t))
        if (with_input || !t->job->has_input)
            all[k++] = t;
    qsort(all, k, sizeof *all, s_task_cmp);
    *count = k;
    return all;
}

static int s_dump(void *ctx, zp_vjournal_t *jr)
{
    zp_vent_shell_t *v = ctx;
    zp_vent_finished_t *f = zp_vent_jobs_finished(v->jobs);
    for (size_t i = 0; i < zp_vent_finished_count(f); i++) {
        const zp_vent_finished_job_t *e = zp_vent_finished_at(f, i);
        if (e &&
            zp_vjournal_finished(jr, e->id, e->token, e->total, e->when_us) < 0)
            return -1;
    }
    size_t k = 0;
    zp_vent_task_t **all = zp_vent_shell_held_sorted(v, false, &k);
    if (!all)
        return -1;
    int rc = 0;
    size_t i = 0;
    for (zp_vent_job_t *j = zp_vent_jobs_first(v->jobs); rc == 0 && j;
         j = j->next) {
        if (j->has_input || j->state == ZP_VENT_JOB_REFUSED)
            continue;
        if (j->state == ZP_VENT_JOB_DONE) { /* not removed yet: remembered */
            rc = zp_vjournal_finished(jr, j->id, j->token, j->next_task_id,
                                      zp_now_us());
            continue;
        }
        while (i < k && all[i]->job->slot < j->slot)
            i++;
        size_t e = i;
        while (e < k && all[e]->job == j)
            e++;
        rc = s_dump_job(jr, j, all + i, e - i);
        i = e;
    }
    free(all);
    return rc;
}

int zp_vent_shell_journal_compact(zp_vent_shell_t *v, char *err, size_t len)
{
    return zp_vjournal_compact(v->journal, s_dump, v, err, len);
}

void zp_vent_shell_journal_tend(zp_vent_shell_t *v, uint64_t now)
{
    if (!v->journal)
        return;
    /* Commits and finished jobs: written each turn, synced with the next
     * Ack (or never: losing them costs only a task run twice). */
    if (zp_vjournal_flush(v->journal) < 0 &&
        zp_log_sampled(++v->n.journal_errors))
        zp_error("journal %s: %s", v->cfg->journal, strerror(errno));
    if (now - v->last_compact_us < S_COMPACT_EVERY_US)
        return;
    v->last_compact_us = now;
    zp_vent_finished_expire(zp_vent_jobs_finished(v->jobs), zp_now_us());
    uint64_t live =
        zp_vent_tasks_bytes(v->tasks) +
        32 * (uint64_t)zp_vent_tasks_size(v->tasks) +
        256 * (uint64_t)zp_vent_jobs_count(v->jobs) +
        64 * (uint64_t)zp_vent_finished_count(zp_vent_jobs_finished(v->jobs));
    if (!zp_vjournal_compact_due(v->journal, live, S_COMPACT_MIN_BYTES))
        return;
    uint64_t before = zp_vjournal_size(v->journal), t0 = zp_mono_us();
    char err[512];
    if (zp_vent_shell_journal_compact(v, err, sizeof err) < 0) {
        zp_warn("journal compaction: %s (the journal goes on as it was)", err);
        return;
    }
    zp_info("journal %s compacted: %llu -> %llu bytes in %llu ms",
            v->cfg->journal, (unsigned long long)before,
            (unsigned long long)zp_vjournal_size(v->journal),
            (unsigned long long)(zp_mono_us() - t0) / 1000);
}
