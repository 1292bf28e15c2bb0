/* Tests for sink_job: the job table (found by id among many, newest
 * first), its dirty list, the counters summed over every job, and a
 * finished job released to its summary. */
#include "failalloc.h"
#include "sink_job.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

static zp_sink_job_t *s_get(zp_jobs_t *jobs, int i)
{
    char id[32];
    snprintf(id, sizeof id, "job-%d", i);
    return zp_jobs_get(jobs, id, NULL);
}

/* Thousands of jobs: each found by its id, once, the newest first. */
static void test_find_among_many(void)
{
    zp_jobs_t jobs = {0};
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        bool is_new = false;
        char id[32];
        snprintf(id, sizeof id, "job-%d", i);
        zp_sink_job_t *j = zp_jobs_get(&jobs, id, &is_new);
        TEST_CHECK(j && is_new);
        TEST_EQ_STR(j->id, id);
    }
    TEST_EQ_INT(jobs.count, N);
    TEST_CHECK(jobs.n_buckets >= N);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "job-%d", i);
        zp_sink_job_t *j = zp_jobs_find(&jobs, id);
        TEST_CHECK(j && strcmp(j->id, id) == 0);
        bool is_new = true;
        TEST_CHECK(zp_jobs_get(&jobs, id, &is_new) == j && !is_new);
    }
    TEST_CHECK(zp_jobs_find(&jobs, "job-5000") == NULL);
    TEST_CHECK(zp_jobs_find(&jobs, "") == NULL);
    TEST_EQ_STR(jobs.head->id, "job-4999");
    TEST_EQ_STR(jobs.head->link->id, "job-4998");
    TEST_EQ_INT(jobs.count, N);
    zp_jobs_fini(&jobs);
    TEST_CHECK(jobs.head == NULL && jobs.buckets == NULL && jobs.count == 0);
    TEST_CHECK(zp_jobs_find(&jobs, "job-1") == NULL);
}

/* A job is on the dirty list once however often it is touched; taking
 * the list empties it and the jobs can be touched again. */
static void test_dirty_list(void)
{
    zp_jobs_t jobs = {0};
    zp_sink_job_t *a = s_get(&jobs, 1), *b = s_get(&jobs, 2);
    s_get(&jobs, 3); /* never touched */
    TEST_CHECK(zp_jobs_take_dirty(&jobs) == NULL);
    zp_jobs_touch(&jobs, a);
    zp_jobs_touch(&jobs, b);
    zp_jobs_touch(&jobs, a);
    zp_sink_job_t *l = zp_jobs_take_dirty(&jobs);
    int n = 0;
    bool saw_a = false, saw_b = false;
    for (zp_sink_job_t *j = l; j; j = j->next_dirty, n++) {
        saw_a |= j == a;
        saw_b |= j == b;
        TEST_CHECK(!j->dirty);
    }
    TEST_EQ_INT(n, 2);
    TEST_CHECK(saw_a && saw_b);
    TEST_CHECK(jobs.dirty == NULL);
    zp_jobs_touch(&jobs, b);
    TEST_CHECK(zp_jobs_take_dirty(&jobs) == b && b->next_dirty == NULL);
    zp_jobs_fini(&jobs);
}

/* Every count of every ledger is in the table's sums too. */
static void test_sums_follow_every_ledger(void)
{
    zp_jobs_t jobs = {0};
    zp_sink_job_t *a = s_get(&jobs, 1), *b = s_get(&jobs, 2);
    zp_ledger_result(&a->ledger, 0, true, false, 1);
    zp_ledger_result(&a->ledger, 1, false, false, 1);
    zp_ledger_result(&a->ledger, 0, true, false, 2); /* duplicate */
    zp_ledger_result(&b->ledger, 5, false, true, 1); /* retry */
    zp_ledger_restore(&b->ledger, 7, true);          /* journal replay */
    const zp_ledger_sums_t *t = &jobs.sums;
    TEST_EQ_INT(t->done, 3);
    TEST_EQ_INT(t->succeeded, 2);
    TEST_EQ_INT(t->failed, 1);
    TEST_EQ_INT(t->duplicates, 1);
    TEST_EQ_INT(t->retries, 1);
    zp_jobs_fini(&jobs);
}

/* A job run to the end: closed, complete, DONE. */
static zp_sink_job_t *s_done_job(zp_jobs_t *jobs, int i, const char *worker)
{
    zp_sink_job_t *j = s_get(jobs, i);
    if (!j)
        return NULL;
    for (uint64_t t = 0; t < 3; t++) {
        zp_ledger_result(&j->ledger, t, true, false, 1);
        zp_ledger_committed(&j->ledger, t);
    }
    if (worker)
        zp_sink_job_worker(j, worker, 3, 8, 4);
    zp_ledger_close(&j->ledger, 3);
    zp_ledger_pending_clear(&j->ledger);
    zp_ledger_finish(&j->ledger);
    return j;
}

/* Released: the counters, id and token stay; the done set, id lists,
 * ordered ring, waiters and parked requests are freed. */
static void test_release_keeps_a_summary(void)
{
    zp_jobs_t jobs = {0};
    zp_sink_job_t *open = s_get(&jobs, 9);
    zp_ledger_result(&open->ledger, 0, true, false, 1);
    zp_jobs_release(&jobs, open); /* not done: nothing happens */
    TEST_CHECK(!open->released && zp_ledger_has(&open->ledger, 0));

    zp_sink_job_t *j = s_get(&jobs, 1);
    j->token = strdup("tok");
    TEST_CHECK(j->token);
    TEST_EQ_INT(zp_order_park(&j->order, 5, true, "r\n", 2, NULL, 0), 0);
    TEST_EQ_INT(zp_waiters_add(&j->waiters, "peer", 4), 0);
    zp_waiters_clear(&j->waiters); /* told */
    zp_ledger_result(&j->ledger, 0, true, false, 1);
    zp_ledger_committed(&j->ledger, 0);
    zp_ledger_pending_clear(&j->ledger);
    zp_ledger_close(&j->ledger, 1);
    zp_ledger_finish(&j->ledger);
    zp_sink_job_worker(j, "w1", 1, 8, 2);
    zp_jobs_release(&jobs, j);
    TEST_CHECK(j->released);
    TEST_CHECK(j->ledger.commit_ids == NULL && j->ledger.has.words == NULL);
    TEST_EQ_INT(zp_order_parked(&j->order), 0);
    TEST_CHECK(j->waiters.peer == NULL && j->fetch.req == NULL);
    TEST_EQ_INT(j->ledger.done, 1);
    TEST_EQ_INT(j->ledger.succeeded, 1);
    TEST_EQ_STR(j->token, "tok");
    TEST_EQ_INT(j->n_workers, 1);
    TEST_CHECK(zp_ledger_has(&j->ledger, 0)); /* DONE has them all */
    /* A duplicate after the end: counted, not a worker's share. */
    TEST_EQ_INT(zp_ledger_result(&j->ledger, 0, true, false, 2),
                ZP_LEDGER_DUPLICATE);
    zp_sink_job_worker(j, "w2", 0, 8, 2);
    TEST_EQ_INT(j->n_workers, 1);
    zp_jobs_release(&jobs, j); /* again: nothing more */
    zp_jobs_fini(&jobs);
}

/* A job finished with one record, released. */
static zp_sink_job_t *s_finish(zp_jobs_t *jobs, int i, const char *token)
{
    zp_sink_job_t *j = s_get(jobs, i);
    if (!j)
        return NULL;
    if (token && !j->token && !(j->token = strdup(token)))
        return NULL;
    zp_ledger_result(&j->ledger, 0, true, false, 1);
    zp_ledger_pending_clear(&j->ledger);
    zp_ledger_close(&j->ledger, 1);
    zp_ledger_finish(&j->ledger);
    zp_sink_job_worker(j, "w", 1, 8, 2);
    zp_jobs_release(jobs, j);
    return j;
}

/* Past the retention the oldest released jobs are forgotten, oldest
 * first, kept only as ids; live jobs and the newest released stay. A job
 * with something left to do waits its turn. */
static void test_forget_past_retention(void)
{
    zp_jobs_t jobs = {0};
    zp_jobs_set_retain(&jobs, 3, 100);
    zp_sink_job_t *live = s_get(&jobs, 0);
    for (int i = 1; i <= 10; i++) {
        TEST_CHECK(s_finish(&jobs, i, "tok") != NULL);
        zp_sink_job_t *old;
        while ((old = zp_jobs_forgettable(&jobs)))
            zp_jobs_forget(&jobs, &old);
    }
    TEST_EQ_INT(jobs.count, 4); /* the live one and the last 3 */
    TEST_EQ_INT(jobs.n_released, 3);
    TEST_EQ_INT(jobs.n_forgotten, 7);
    TEST_CHECK(zp_jobs_find(&jobs, "job-0") == live);
    TEST_CHECK(zp_jobs_find(&jobs, "job-7") == NULL);
    TEST_CHECK(zp_jobs_find(&jobs, "job-8") != NULL);
    TEST_EQ_INT(zp_retain_match(&jobs.forgotten, "job-7", "tok"),
                ZP_RETAIN_SAME);
    TEST_EQ_INT(zp_retain_match(&jobs.forgotten, "job-1", "x"),
                ZP_RETAIN_OTHER);
    TEST_EQ_INT(jobs.sums.succeeded, 10); /* the sums count every job */
    /* The list, both ways. */
    size_t n = 0;
    for (zp_sink_job_t *j = jobs.tail; j; j = j->newer)
        n++;
    TEST_EQ_INT(n, 4);
    TEST_CHECK(jobs.tail == live && jobs.head == zp_jobs_find(&jobs, "job-10"));
    /* A dirty one is not forgotten until it is told. */
    zp_jobs_touch(&jobs, zp_jobs_find(&jobs, "job-8"));
    TEST_CHECK(s_finish(&jobs, 11, "tok") != NULL);
    TEST_CHECK(zp_jobs_forgettable(&jobs) == NULL);
    zp_jobs_take_dirty(&jobs);
    zp_sink_job_t *old = zp_jobs_forgettable(&jobs);
    TEST_CHECK(old && strcmp(old->id, "job-8") == 0);
    zp_jobs_forget(&jobs, &old);
    TEST_CHECK(old == NULL && zp_jobs_forgettable(&jobs) == NULL);
    zp_jobs_fini(&jobs);
    TEST_EQ_INT(jobs.retain, 3); /* kept across fini */
}

/* Only the last ZP_JOBS_KEEP_WORKERS released jobs list their workers. */
static void test_workers_kept_for_the_last_released(void)
{
    zp_jobs_t jobs = {0};
    enum { N = ZP_JOBS_KEEP_WORKERS + 5 };
    zp_sink_job_t *js[N];
    for (int i = 0; i < N; i++) {
        js[i] = s_done_job(&jobs, i, "w");
        TEST_CHECK(js[i]);
        zp_jobs_release(&jobs, js[i]);
    }
    for (int i = 0; i < N; i++)
        TEST_EQ_INT(js[i]->n_workers, i < 5 ? 0 : 1);
    TEST_EQ_INT(jobs.n_done_workers, ZP_JOBS_KEEP_WORKERS);
    zp_jobs_fini(&jobs);
}

static void test_job_of_its_spool(void)
{
    zp_jobs_t jobs = {0};
    zp_sink_job_t *j = s_get(&jobs, 1);
    TEST_CHECK(zp_sink_job_of_spool(&j->spool) == j);
    zp_jobs_fini(&jobs);
}

/* Out of memory while the table grows, jobs are touched and released:
 * a job that cannot be added is NULL, the others stay found. */
static void s_scenario(void *arg)
{
    (void)arg;
    zp_jobs_t jobs = {0};
    zp_jobs_set_retain(&jobs, 20, 30);
    int added = 0;
    for (int i = 0; i < 70; i++) {
        zp_sink_job_t *j = s_done_job(&jobs, i, i % 2 ? "w" : NULL);
        if (!j)
            continue;
        added++;
        zp_jobs_touch(&jobs, j);
        zp_jobs_release(&jobs, j);
    }
    for (zp_sink_job_t *j = jobs.head; j; j = j->link)
        if (zp_jobs_find(&jobs, j->id) != j)
            abort();
    if (jobs.count != (size_t)added)
        abort();
    zp_jobs_take_dirty(&jobs);
    /* Forgetting past the retention: the set may fail to grow. */
    zp_sink_job_t *old;
    while ((old = zp_jobs_forgettable(&jobs)))
        zp_jobs_forget(&jobs, &old);
    if (jobs.n_released > 20 || jobs.forgotten.n > 30)
        abort();
    for (zp_sink_job_t *j = jobs.tail; j; j = j->newer)
        if (zp_jobs_find(&jobs, j->id) != j)
            abort();
    zp_jobs_fini(&jobs);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 140);
}

static const test_case_t tests[] = {
    {"test_find_among_many", test_find_among_many},
    {"test_dirty_list", test_dirty_list},
    {"test_sums_follow_every_ledger", test_sums_follow_every_ledger},
    {"test_release_keeps_a_summary", test_release_keeps_a_summary},
    {"test_workers_kept_for_the_last_released",
     test_workers_kept_for_the_last_released},
    {"test_job_of_its_spool", test_job_of_its_spool},
    {"test_forget_past_retention", test_forget_past_retention},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
