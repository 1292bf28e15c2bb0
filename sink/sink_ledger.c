/* sink_ledger: dedup, the retry decision, completion and counters for one
 * job (see sink_ledger.h). */
#include "sink_ledger.h"
#include "zp_cause.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void zp_ledger_init(zp_ledger_t *self)
{
    memset(self, 0, sizeof *self);
    self->state = ZP_JOB_OPEN;
    self->max_attempts = 3;
}

void zp_ledger_fini(zp_ledger_t *self)
{
    zp_bitset_free(&self->has);
    free(self->commit_ids);
    free(self->retry_ids);
    free(self->retry_attempts);
    self->commit_ids = self->retry_ids = NULL;
    self->retry_attempts = NULL;
    self->n_commit = self->cap_commit = self->n_retry = self->cap_retry = 0;
}

void zp_ledger_release(zp_ledger_t *self)
{
    zp_bitset_free(&self->has);
    if (self->n_commit == 0) {
        free(self->commit_ids);
        self->commit_ids = NULL;
        self->cap_commit = 0;
    }
    if (self->n_retry == 0) {
        free(self->retry_ids);
        free(self->retry_attempts);
        self->retry_ids = NULL;
        self->retry_attempts = NULL;
        self->cap_retry = 0;
    }
}

void zp_ledger_set_max_attempts(zp_ledger_t *self, uint32_t max_attempts)
{
    if (max_attempts)
        self->max_attempts = max_attempts;
}

/* The legal moves: OPEN -> CLOSED -> DONE. Refuses any other. */
static int s_transition(zp_ledger_t *self, zp_job_state_t to)
{
    bool legal = (self->state == ZP_JOB_OPEN && to == ZP_JOB_CLOSED) ||
                 (self->state == ZP_JOB_CLOSED && to == ZP_JOB_DONE);
    if (!legal)
        return -1;
    self->state = to;
    return 0;
}

/* Debug builds: the counters agree with each other. */
static void s_check(const zp_ledger_t *self)
{
    assert(self->done == self->succeeded + self->failed);
    assert(self->n_retry <= self->cap_retry);
    (void)self;
}

static int s_push_u64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
    if (*n >= ZP_LEDGER_MAX_PENDING)
        return -1;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        uint64_t *a = realloc(*arr, c * sizeof *a);
        if (!a)
            return -1;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* What a count is of. */
typedef enum { S_SUCCEEDED, S_FAILED, S_DUPLICATE, S_RETRY } s_count_t;

/* Counts one result here and in the sums the ledger feeds. */
static void s_count(zp_ledger_t *self, s_count_t what)
{
    zp_ledger_sums_t none, *sum = self->sums ? self->sums : &none;
    switch (what) {
    case S_SUCCEEDED:
        self->succeeded++;
        sum->succeeded++;
        break;
    case S_FAILED:
        self->failed++;
        sum->failed++;
        break;
    case S_DUPLICATE:
        self->duplicates++;
        sum->duplicates++;
        return;
    case S_RETRY:
        self->retries++;
        sum->retries++;
        return;
    }
    self->done++;
    sum->done++;
}

/* Lists task for another attempt; -1 when out of memory (not listed). */
static int s_list_retry(zp_ledger_t *self, uint64_t task, uint32_t attempt)
{
    if (s_push_u64(&self->retry_ids, &self->n_retry, &self->cap_retry, task) <
        0)
        return -1;
    uint32_t *a = realloc(self->retry_attempts, self->cap_retry * sizeof *a);
    if (!a) {
        self->n_retry--;
        return -1;
    }
    self->retry_attempts = a;
    a[self->n_retry - 1] = attempt ? attempt : 1;
    s_count(self, S_RETRY);
    return 0;
}

/* Marks task done: 1 new, 0 it had a record, -1 out of memory. */
static int s_mark(zp_ledger_t *self, uint64_t task)
{
    if (self->state == ZP_JOB_DONE)
        return 0;
    return zp_bitset_set(&self->has, task);
}

/* Once the total is known (CLOSED, DONE) only ids below it exist. */
static bool s_out_of_range(const zp_ledger_t *self, uint64_t task)
{
    if (self->state == ZP_JOB_OPEN)
        return task >= ZP_LEDGER_MAX_OPEN_TASK_ID;
    return task >= self->total;
}

zp_ledger_verdict_t zp_ledger_result(zp_ledger_t *self, uint64_t task, bool ok,
                                     bool retryable, uint32_t attempt)
{
    if (s_out_of_range(self, task))
        return ZP_LEDGER_OUT_OF_RANGE;
    if (!ok && zp_retry_again(retryable, attempt, self->max_attempts) &&
        self->state != ZP_JOB_DONE && !zp_ledger_has(self, task) &&
        s_list_retry(self, task, attempt) == 0)
        return ZP_LEDGER_RETRY;
    int mark = s_mark(self, task);
    if (mark < 0)
        return ZP_LEDGER_NOMEM;
    if (mark == 0) {
        s_count(self, S_DUPLICATE);
        return ZP_LEDGER_DUPLICATE;
    }
    s_count(self, ok ? S_SUCCEEDED : S_FAILED);
    s_check(self);
    return ZP_LEDGER_COMMIT;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the commit list and drops repeated ids (a duplicate listed while
 * the opener was away may repeat an id already waiting). */
static void s_unique_commits(zp_ledger_t *self)
{
    if (self->n_commit < 2)
        return;
    qsort(self->commit_ids, self->n_commit, sizeof *self->commit_ids,
          s_cmp_u64);
    size_t k = 1;
    for (size_t i = 1; i < self->n_commit; i++)
        if (self->commit_ids[i] != self->commit_ids[k - 1])
            self->commit_ids[k++] = self->commit_ids[i];
    self->n_commit = k;
}

int zp_ledger_committed(zp_ledger_t *self, uint64_t task)
{
    /* Full: made unique once (not again until an id is added). */
    if (self->n_commit >= ZP_LEDGER_MAX_PENDING && !self->commits_unique) {
        s_unique_commits(self);
        self->commits_unique = true;
    }
    if (s_push_u64(&self->commit_ids, &self->n_commit, &self->cap_commit,
                   task) < 0)
        return -1;
    self->commits_unique = false;
    return 0;
}

bool zp_ledger_has(const zp_ledger_t *self, uint64_t task)
{
    if (self->state == ZP_JOB_DONE)
        return task < self->total;
    return zp_bitset_has(&self->has, task);
}

zp_ledger_close_t zp_ledger_close(zp_ledger_t *self, uint64_t total)
{
    if (self->state != ZP_JOB_OPEN)
        return self->total == total ? ZP_LEDGER_CLOSED_SAME
                                    : ZP_LEDGER_CLOSED_OTHER_TOTAL;
    if (self->done > total)
        return ZP_LEDGER_TOO_MANY;
    self->total = total;
    int rc = s_transition(self, ZP_JOB_CLOSED);
    assert(rc == 0);
    (void)rc;
    s_check(self);
    return ZP_LEDGER_CLOSED;
}

bool zp_ledger_complete(const zp_ledger_t *self)
{
    return self->state == ZP_JOB_CLOSED && self->done >= self->total;
}

int zp_ledger_finish(zp_ledger_t *self)
{
    if (!zp_ledger_complete(self) || s_transition(self, ZP_JOB_DONE) < 0)
        return -1;
    zp_bitset_free(&self->has);
    return 0;
}

int zp_ledger_restore(zp_ledger_t *self, uint64_t task, bool ok)
{
    if (task >= ZP_LEDGER_MAX_OPEN_TASK_ID)
        return 0;
    int mark = s_mark(self, task);
    if (mark != 1)
        return mark;
    s_count(self, ok ? S_SUCCEEDED : S_FAILED);
    return 1;
}

int zp_ledger_restore_close(zp_ledger_t *self, uint64_t total)
{
    if (self->state == ZP_JOB_DONE)
        return -1;
    self->total = total;
    self->state = ZP_JOB_CLOSED; /* OPEN -> CLOSED, or a later close line */
    return 0;
}

/* Sets one counter, keeping the sums in step. */
static void s_set(uint64_t *mine, uint64_t *sum, uint64_t v)
{
    *sum += v - *mine;
    *mine = v;
}

void zp_ledger_restore_counts(zp_ledger_t *self, uint64_t succeeded,
                              uint64_t failed, uint64_t duplicates,
                              uint64_t retries)
{
    zp_ledger_sums_t none = {0}, *sum = self->sums ? self->sums : &none;
    s_set(&self->succeeded, &sum->succeeded, succeeded);
    s_set(&self->failed, &sum->failed, failed);
    s_set(&self->duplicates, &sum->duplicates, duplicates);
    s_set(&self->retries, &sum->retries, retries);
    s_set(&self->done, &sum->done, succeeded + failed);
    s_check(self);
}

int zp_ledger_restore_done(zp_ledger_t *self, uint64_t total,
                           uint64_t succeeded, uint64_t failed,
                           uint64_t duplicates, uint64_t retries)
{
    /* done may exceed total: a result for an id past it, taken while the
     * job was open (counted, as the ledger did). */
    if (self->state != ZP_JOB_OPEN || self->done || self->has.count ||
        succeeded + failed < total)
        return -1;
    zp_ledger_restore_counts(self, succeeded, failed, duplicates, retries);
    self->total = total;
    self->state = ZP_JOB_DONE;
    return 0;
}

int zp_ledger_restore_have(zp_ledger_t *self, uint64_t first, uint64_t count)
{
    if (self->state == ZP_JOB_DONE)
        return 0;
    for (uint64_t t = first; t - first < count; t++) {
        if (t >= ZP_LEDGER_MAX_OPEN_TASK_ID)
            return 0;
        if (zp_bitset_set(&self->has, t) < 0)
            return -1;
    }
    return 0;
}

bool zp_ledger_next_run(const zp_ledger_t *self, uint64_t from, uint64_t *first,
                        uint64_t *count)
{
    uint64_t a = zp_bitset_next(&self->has, from, true);
    if (a == UINT64_MAX)
        return false;
    *first = a;
    *count = zp_bitset_next(&self->has, a, false) - a;
    return true;
}

zp_ledger_pending_t zp_ledger_pending(const zp_ledger_t *self)
{
    return (zp_ledger_pending_t){
        .commit_ids = self->commit_ids,
        .n_commit = self->n_commit,
        .retry_ids = self->retry_ids,
        .retry_attempts = self->retry_attempts,
        .n_retry = self->n_retry,
    };
}

bool zp_ledger_has_pending(const zp_ledger_t *self)
{
    return self->n_commit || self->n_retry;
}

bool zp_ledger_flush_due(const zp_ledger_t *self)
{
    return self->n_commit >= ZP_LEDGER_FLUSH_IDS ||
           self->n_retry >= ZP_LEDGER_FLUSH_IDS;
}

void zp_ledger_pending_sent(zp_ledger_t *self, size_t n_commit, size_t n_retry)
{
    if (n_commit > self->n_commit)
        n_commit = self->n_commit;
    if (n_retry > self->n_retry)
        n_retry = self->n_retry;
    self->n_commit -= n_commit;
    if (n_commit && self->n_commit)
        memmove(self->commit_ids, self->commit_ids + n_commit,
                self->n_commit * sizeof *self->commit_ids);
    self->n_retry -= n_retry;
    if (n_retry && self->n_retry) {
        memmove(self->retry_ids, self->retry_ids + n_retry,
                self->n_retry * sizeof *self->retry_ids);
        memmove(self->retry_attempts, self->retry_attempts + n_retry,
                self->n_retry * sizeof *self->retry_attempts);
    }
    if (self->state == ZP_JOB_DONE && !self->n_commit && !self->n_retry) {
        /* A finished job lists nothing more but late duplicates. */
        free(self->commit_ids);
        free(self->retry_ids);
        free(self->retry_attempts);
        self->commit_ids = self->retry_ids = NULL;
        self->retry_attempts = NULL;
        self->cap_commit = self->cap_retry = 0;
    }
}

void zp_ledger_pending_clear(zp_ledger_t *self)
{
    zp_ledger_pending_sent(self, self->n_commit, self->n_retry);
}

const char *zp_job_state_name(zp_job_state_t state)
{
    switch (state) {
    case ZP_JOB_CLOSED:
        return "closed";
    case ZP_JOB_DONE:
        return "done";
    default:
        return "open";
    }
}
