/* Tests for sink_snapshot: a job table dumped into a compacted journal
 * and replayed comes back the same: forgotten ids, finished jobs in the
 * order they finished with their counters and tokens, live jobs with
 * their counters and exactly the tasks that have records. */
#include "failalloc.h"
#include "sink_control.h"
#include "sink_snapshot.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A job with records for tasks [0, n) but a few (every 7th below 50,
 * and 150,000), failed when i % 5 == 0, closed with total when total >
 * 0. */
static zp_sink_job_t *s_job(zp_jobs_t *jobs, const char *id, const char *tok,
                            uint64_t n, uint64_t total)
{
    zp_sink_job_t *j = zp_control_restore_open(jobs, id, 4, tok);
    for (uint64_t i = 0; i < n; i++)
        if (i < 50 ? i % 7 != 3 : i != 150000)
            zp_ledger_result(&j->ledger, i, i % 5 != 0, false, 1);
    if (total)
        zp_ledger_close(&j->ledger, total);
    return j;
}

/* The table the tests dump: 3 finished (one forgotten), one live closed,
 * one live open. */
static void s_table(zp_jobs_t *jobs)
{
    zp_jobs_set_retain(jobs, 2, 100);
    for (int i = 0; i < 3; i++) {
        char id[16], tok[16];
        snprintf(id, sizeof id, "done-%d", i);
        snprintf(tok, sizeof tok, "tok-%d", i);
        zp_sink_job_t *j = zp_control_restore_open(jobs, id, 2, tok);
        for (uint64_t t = 0; t < 10; t++)
            zp_ledger_result(&j->ledger, t, t != 4, false, 1);
        zp_ledger_result(&j->ledger, 2, true, false, 1); /* a duplicate */
        zp_ledger_close(&j->ledger, 10);
        zp_ledger_finish(&j->ledger);
        j->first_us = 1000 + (uint64_t)i;
        j->last_us = 2000 + (uint64_t)i;
        if (i != 1) /* their reductions failed */
            j->reduce.error = strdup("reduce failed");
        zp_jobs_release(jobs, j);
        zp_sink_job_t *old = zp_jobs_forgettable(jobs);
        if (old)
            zp_jobs_forget(jobs, &old);
    }
    s_job(jobs, "live-closed", "tok-c", 50, 60);
    s_job(jobs, "live-open", NULL, 200000, 0);
}

static void s_open(void *ctx, const char *job, uint32_t m, const char *t)
{
    zp_control_restore_open(ctx, job, m, t);
}
static void s_close(void *ctx, const char *job, uint64_t total)
{
    zp_sink_job_t *j = zp_jobs_find(ctx, job);
    if (j)
        zp_ledger_restore_close(&j->ledger, total);
}
static void s_forgotten(void *ctx, const zp_journal_forgotten_t *f)
{
    zp_snapshot_forgotten(ctx, f);
}
static void s_done(void *ctx, const char *job, const char *token,
                   const zp_journal_summary_t *m)
{
    zp_sink_job_t *j = zp_snapshot_done(ctx, job, token, m);
    if (j)
        zp_jobs_release(ctx, j);
}
static void s_counts(void *ctx, const char *job, const zp_journal_summary_t *m)
{
    zp_snapshot_counts(ctx, job, m);
}
static void s_have(void *ctx, const char *job, uint64_t first, uint64_t n)
{
    zp_snapshot_have(ctx, job, first, n);
}
static const zp_journal_visitor_t s_visitor = {
    .on_open = s_open,
    .on_close = s_close,
    .on_forgotten = s_forgotten,
    .on_done = s_done,
    .on_counts = s_counts,
    .on_have = s_have,
};

static void s_path(char *path, size_t len)
{
    snprintf(path, len, "/tmp/zpipe-snapshot-XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
}

static void s_same_ledger(const zp_sink_job_t *a, const zp_sink_job_t *b)
{
    TEST_EQ_STR(a->id, b->id);
    TEST_EQ_STR(a->token ? a->token : "", b->token ? b->token : "");
    TEST_EQ_INT(a->ledger.state, b->ledger.state);
    TEST_EQ_INT(a->ledger.total, b->ledger.total);
    TEST_EQ_INT(a->ledger.done, b->ledger.done);
    TEST_EQ_INT(a->ledger.succeeded, b->ledger.succeeded);
    TEST_EQ_INT(a->ledger.failed, b->ledger.failed);
    TEST_EQ_INT(a->ledger.duplicates, b->ledger.duplicates);
    TEST_EQ_INT(a->ledger.retries, b->ledger.retries);
    TEST_EQ_INT(a->ledger.max_attempts, b->ledger.max_attempts);
}

static void test_dump_and_replay_give_the_same_table(void)
{
    zp_jobs_t a = {0}, b = {0};
    s_table(&a);
    TEST_EQ_INT(a.forgotten.n, 1);
    TEST_EQ_INT(a.n_released, 2);
    char path[64], err[256];
    s_path(path, sizeof path);
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    TEST_CHECK(j != NULL);
    TEST_EQ_INT(zp_journal_compact(j, zp_snapshot_dump, &a), 0);
    /* 200,000 records in a few lines: runs, not one line a task. */
    TEST_CHECK(zp_journal_size(j) < 4096);
    zp_journal_destroy(&j);
    zp_jobs_set_retain(&b, 2, 100);
    j = zp_journal_open(path, &s_visitor, &b, err, sizeof err);
    TEST_CHECK(j != NULL);
    zp_journal_destroy(&j);
    TEST_EQ_INT(b.count, a.count);
    TEST_EQ_INT(b.forgotten.n, 1);
    TEST_EQ_INT(zp_retain_match(&b.forgotten, "done-0", "tok-0"),
                ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&b.forgotten, "done-0", "other"),
                ZP_RETAIN_OTHER);
    const zp_retain_entry_t *f = zp_retain_find(&b.forgotten, "done-0");
    TEST_CHECK(f && f->total == 10 && f->succeeded == 9 && f->reduce_failed);
    TEST_CHECK(zp_jobs_find(&b, "done-2")->reduce.error != NULL);
    TEST_CHECK(zp_jobs_find(&b, "done-1")->reduce.error == NULL);
    TEST_EQ_INT(b.n_released, 2);
    TEST_EQ_STR(b.done_oldest->id, "done-1"); /* the order they finished */
    TEST_EQ_STR(b.done_newest->id, "done-2");
    TEST_EQ_INT(b.done_oldest->first_us, 1001);
    TEST_EQ_INT(b.done_newest->last_us, 2002);
    const char *ids[] = {"done-1", "done-2", "live-closed", "live-open"};
    for (size_t i = 0; i < 4; i++) {
        zp_sink_job_t *x = zp_jobs_find(&a, ids[i]),
                      *y = zp_jobs_find(&b, ids[i]);
        TEST_CHECK(x && y);
        if (!x || !y)
            continue;
        s_same_ledger(x, y);
        for (uint64_t t = 0; t < 200010; t++)
            if (zp_ledger_has(&x->ledger, t) != zp_ledger_has(&y->ledger, t)) {
                TEST_CHECK(!"the same tasks have records");
                break;
            }
    }
    TEST_EQ_INT(b.sums.done, a.sums.done - 10); /* the forgotten job's */
    TEST_EQ_INT(b.sums.duplicates, a.sums.duplicates - 1);
    /* A live job's new record after the replay is new; an old one is a
     * duplicate. */
    zp_sink_job_t *lo = zp_jobs_find(&b, "live-open");
    TEST_EQ_INT(zp_ledger_result(&lo->ledger, 3, true, false, 1),
                ZP_LEDGER_COMMIT);
    TEST_EQ_INT(zp_ledger_result(&lo->ledger, 4, true, false, 1),
                ZP_LEDGER_DUPLICATE);
    zp_jobs_fini(&a);
    zp_jobs_fini(&b);
    unlink(path);
}

/* --ordered: records parked behind a missing task are not in the
 * journal yet, so not in the snapshot (neither counted nor listed). */
static void test_parked_records_are_left_out(void)
{
    zp_jobs_t a = {0}, b = {0};
    zp_sink_job_t *j = zp_control_restore_open(&a, "ord", 3, "t");
    for (uint64_t t = 0; t < 10; t++) {
        if (t == 3)
            continue;
        zp_ledger_result(&j->ledger, t, t != 5, false, 1);
        if (t < 3)
            zp_order_advance(&j->order); /* written in order */
        else
            TEST_EQ_INT(zp_order_park(&j->order, t, t != 5, "r", 1, NULL, 0),
                        0);
    }
    zp_ledger_result(&j->ledger, 20000, true, false, 1); /* past the ring */
    TEST_EQ_INT(zp_order_parked(&j->order), 6);
    char path[64], err[256];
    s_path(path, sizeof path);
    zp_journal_t *jl = zp_journal_open(path, NULL, NULL, err, sizeof err);
    TEST_EQ_INT(zp_journal_compact(jl, zp_snapshot_dump, &a), 0);
    zp_journal_destroy(&jl);
    jl = zp_journal_open(path, &s_visitor, &b, err, sizeof err);
    zp_journal_destroy(&jl);
    zp_sink_job_t *k = zp_jobs_find(&b, "ord");
    TEST_CHECK(k != NULL);
    if (k) {
        TEST_EQ_INT(k->ledger.done, 4);
        TEST_EQ_INT(k->ledger.succeeded, 4);
        TEST_EQ_INT(k->ledger.failed, 0);
        for (uint64_t t = 0; t < 10; t++)
            TEST_EQ_INT(zp_ledger_has(&k->ledger, t), t < 3);
        TEST_CHECK(zp_ledger_has(&k->ledger, 20000));
    }
    zp_jobs_fini(&a);
    zp_jobs_fini(&b);
    unlink(path);
}

static zp_jobs_t s_jobs;

/* Out of memory anywhere in a dump: the compaction is given up and the
 * old journal stays whole; nothing leaks. */
static void s_dump_scenario(void *arg)
{
    int *bad = arg;
    char path[64], err[256];
    s_path(path, sizeof path);
    zp_journal_t *j = zp_journal_open(path, NULL, NULL, err, sizeof err);
    if (!j)
        return;
    zp_journal_open_job(j, "before", 3, NULL);
    zp_journal_sync(j);
    uint64_t before = zp_journal_size(j);
    if (zp_journal_compact(j, zp_snapshot_dump, &s_jobs) < 0 &&
        zp_journal_size(j) != before)
        *bad = 1;
    zp_journal_destroy(&j);
    unlink(path);
}

static void test_alloc_failures_give_the_compaction_up(void)
{
    int bad = 0;
    s_table(&s_jobs);
    long runs = failalloc_sweep(s_dump_scenario, &bad);
    zp_jobs_fini(&s_jobs);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 2);
}

static const test_case_t tests[] = {
    {"test_dump_and_replay_give_the_same_table",
     test_dump_and_replay_give_the_same_table},
    {"test_parked_records_are_left_out", test_parked_records_are_left_out},
    {"test_alloc_failures_give_the_compaction_up",
     test_alloc_failures_give_the_compaction_up},
    {NULL, NULL},
};
TEST_MAIN(tests)
