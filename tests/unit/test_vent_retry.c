/* Tests for vent_retry: requeue with the attempt raised, give-up at max
 * attempts, lost workers not charged until ZP_MAX_LOSSES, and the failure
 * records queued on the job. */
#include "failalloc.h"
#include "test.h"
#include "vent_retry.h"

typedef struct {
    zp_vent_jobs_t *jobs;
    zp_vent_tasks_t *tasks;
    zp_vent_job_t *job;
} s_fix_t;

static zp_vent_task_t *s_fix(s_fix_t *f, uint32_t max_attempts)
{
    f->jobs = zp_vent_jobs_new(0, max_attempts, 0);
    f->tasks = zp_vent_tasks_new(0, 1 << 20, false);
    f->job = f->jobs ? zp_vent_jobs_add(f->jobs, "job-1", "echo") : NULL;
    zp_vent_task_t *t = f->tasks && f->job
                            ? zp_vent_tasks_add(f->tasks, f->job, "x", 1, 0)
                            : NULL;
    zp_vent_task_t *out[1];
    if (t && zp_vent_tasks_collect(f->tasks, f->job, 1, 1 << 20, out) == 1)
        t->state = ZP_VENT_INFLIGHT; /* sent */
    return t;
}

static void s_fix_free(s_fix_t *f)
{
    zp_vent_tasks_destroy(&f->tasks);
    zp_vent_jobs_destroy(&f->jobs);
}

static void test_decisions(void)
{
    TEST_EQ_INT(zp_vent_retry_decide(1, 3), ZP_VENT_REQUEUE);
    TEST_EQ_INT(zp_vent_retry_decide(2, 3), ZP_VENT_REQUEUE);
    TEST_EQ_INT(zp_vent_retry_decide(3, 3), ZP_VENT_GIVE_UP);
    TEST_EQ_INT(zp_vent_retry_decide(1, 1), ZP_VENT_GIVE_UP);
    TEST_EQ_INT(zp_vent_lost_decide(1), ZP_VENT_REQUEUE);
    TEST_EQ_INT(zp_vent_lost_decide(ZP_MAX_LOSSES - 1), ZP_VENT_REQUEUE);
    TEST_EQ_INT(zp_vent_lost_decide(ZP_MAX_LOSSES), ZP_VENT_GIVE_UP);
}

static void test_requeue_raises_the_attempt_until_max(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 3);
    zp_vent_retry_result_t r =
        zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, "not completed");
    TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
    TEST_EQ_INT(r.attempt, 1); /* the event names the attempt that failed */
    TEST_EQ_INT(t->attempt, 2);
    TEST_EQ_INT(t->state, ZP_VENT_QUEUED);
    TEST_EQ_INT(f.job->ready.len, 1); /* at the front of its job */
    r = zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, "not completed");
    TEST_EQ_INT(t->attempt, 3);
    /* Attempt 3 of 3 fails: given up, with a record for the sink. */
    r = zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, "not completed");
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_CHECK(r.recorded);
    TEST_EQ_INT(t->state, ZP_VENT_FAILING);
    TEST_EQ_INT(f.job->fails.n, 1);
    Zpipe__V1__Result *rec = &f.job->fails.items[0];
    TEST_EQ_STR(rec->cause, "lease_expired");
    TEST_EQ_STR(rec->error, "not completed on attempt 3 of 3; giving up");
    TEST_EQ_INT(rec->attempt, 3);
    TEST_EQ_INT(rec->quarantined, 0);
    s_fix_free(&f);
}

static void test_lost_worker_is_not_charged_until_max_losses(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 3);
    for (int i = 1; i < ZP_MAX_LOSSES; i++) {
        zp_vent_retry_result_t r = zp_vent_requeue_lost(t, "worker w lost");
        TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
        TEST_EQ_INT(t->attempt, 1);
        TEST_EQ_INT(t->losses, i);
        t->state = ZP_VENT_INFLIGHT;
    }
    zp_vent_retry_result_t r = zp_vent_requeue_lost(t, "worker w lost");
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_CHECK(r.recorded);
    Zpipe__V1__Result *rec = &f.job->fails.items[0];
    TEST_EQ_STR(rec->cause, "worker_lost");
    TEST_EQ_INT(rec->quarantined, 1); /* a poison task */
    TEST_EQ_STR(rec->error,
                "worker w lost, for the 10. time on attempt 1 of 3; giving up");
    s_fix_free(&f);
}

/* t (queued or just made) is sent to the worker with this serial. */
static void s_sent_to(s_fix_t *f, zp_vent_task_t *t, uint64_t worker)
{
    zp_vent_task_t *out[1];
    if (t->state == ZP_VENT_QUEUED)
        TEST_EQ_INT(zp_vent_tasks_collect(f->tasks, t->job, 1, 1 << 20, out),
                    1);
    t->state = ZP_VENT_INFLIGHT;
    t->worker = worker;
}

static void test_expired_lease_moves_the_task_uncharged(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 3);
    s_sent_to(&f, t, 7);
    zp_vent_retry_result_t r = zp_vent_requeue_expired(t, 7, true, "late");
    TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
    TEST_EQ_INT(t->attempt, 1); /* not the task's fault */
    TEST_EQ_INT(t->state, ZP_VENT_QUEUED);
    TEST_EQ_INT(t->n_expired, 1);
    TEST_CHECK(zp_vent_expired_on(t, 7));
    TEST_CHECK(!zp_vent_expired_on(t, 8));
    /* The same worker again is still one worker, but charged: a task
     * that keeps going back to the worker it hangs on still ends. */
    s_sent_to(&f, t, 7);
    zp_vent_requeue_expired(t, 7, true, "late");
    TEST_EQ_INT(t->n_expired, 1);
    TEST_EQ_INT(t->attempt, 2);
    s_sent_to(&f, t, 8);
    zp_vent_requeue_expired(t, 8, true, "late");
    TEST_EQ_INT(t->n_expired, 2);
    TEST_EQ_INT(t->attempt, 2);
    TEST_EQ_INT(f.job->fails.n, 0);
    /* A third distinct worker: the task hangs every worker; it ends. */
    s_sent_to(&f, t, 9);
    r = zp_vent_requeue_expired(t, 9, true, "late");
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_CHECK(r.recorded);
    TEST_EQ_INT(t->state, ZP_VENT_FAILING);
    Zpipe__V1__Result *rec = &f.job->fails.items[0];
    TEST_EQ_STR(rec->cause, "lease_expired");
    TEST_EQ_STR(rec->error, "late, on 3 workers on attempt 2 of 3; giving up");
    s_fix_free(&f);
}

/* With more attempts than ZP_VENT_LEASE_WORKERS, expiries past the third
 * worker are charged until the job's max attempts, not given up. */
static void test_expired_lease_keeps_max_attempts(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 5);
    for (uint64_t w = 1; w <= 3; w++) {
        s_sent_to(&f, t, w);
        zp_vent_requeue_expired(t, w, true, "late");
    }
    TEST_EQ_INT(t->attempt, 2); /* the third worker's is charged */
    TEST_EQ_INT(f.job->fails.n, 0);
    zp_vent_retry_result_t r = {0};
    for (uint64_t w = 4; w <= 8 && r.decision != ZP_VENT_GIVE_UP; w++) {
        s_sent_to(&f, t, w);
        r = zp_vent_requeue_expired(t, w, true, "late");
    }
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_EQ_INT(t->attempt, 5);
    TEST_EQ_INT(f.job->fails.n, 1);
    s_fix_free(&f);
}

static void test_expired_lease_with_no_other_worker_is_charged(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 2);
    s_sent_to(&f, t, 7);
    zp_vent_retry_result_t r = zp_vent_requeue_expired(t, 7, false, "late");
    TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
    TEST_EQ_INT(t->attempt, 2); /* the lone worker keeps the old rule */
    s_sent_to(&f, t, 7);
    r = zp_vent_requeue_expired(t, 7, false, "late");
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_EQ_STR(f.job->fails.items[0].error,
                "late on attempt 2 of 2; giving up");
    /* Push dispatch (no worker known): charged too. */
    s_fix_free(&f);
    t = s_fix(&f, 2);
    r = zp_vent_requeue_expired(t, 0, true, "late");
    TEST_EQ_INT(t->attempt, 2);
    TEST_EQ_INT(t->n_expired, 0);
    s_fix_free(&f);
}

static void test_give_up_out_of_memory_leaves_the_task(void)
{
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 1);
    failalloc_arm(2); /* the queue (the record's text is made first) */
    zp_vent_retry_result_t r = zp_vent_requeue(t, ZP_CAUSE_WORKER_LOST, "x");
    failalloc_disarm();
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_CHECK(!r.recorded);
    TEST_EQ_INT(t->state, ZP_VENT_INFLIGHT); /* tried at the next scan */
    TEST_EQ_INT(f.job->fails.n, 0);
    s_fix_free(&f);
}

static void s_retry_scenario(void *arg)
{
    (void)arg;
    s_fix_t f;
    zp_vent_task_t *t = s_fix(&f, 2);
    if (t) {
        zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, "a");
        t->state = ZP_VENT_INFLIGHT;
        zp_vent_requeue_lost(t, "b");
        t->state = ZP_VENT_INFLIGHT;
        zp_vent_requeue(t, ZP_CAUSE_LEASE_EXPIRED, "c");
        t->state = ZP_VENT_INFLIGHT;
        zp_vent_requeue_expired(t, 5, true, "d");
    }
    s_fix_free(&f);
}

static void test_alloc_failures_in_retry(void)
{
    TEST_CHECK(failalloc_sweep(s_retry_scenario, NULL) >= 5);
}

static const test_case_t tests[] = {
    {"test_decisions", test_decisions},
    {"test_requeue_raises_the_attempt_until_max",
     test_requeue_raises_the_attempt_until_max},
    {"test_lost_worker_is_not_charged_until_max_losses",
     test_lost_worker_is_not_charged_until_max_losses},
    {"test_expired_lease_moves_the_task_uncharged",
     test_expired_lease_moves_the_task_uncharged},
    {"test_expired_lease_keeps_max_attempts",
     test_expired_lease_keeps_max_attempts},
    {"test_expired_lease_with_no_other_worker_is_charged",
     test_expired_lease_with_no_other_worker_is_charged},
    {"test_give_up_out_of_memory_leaves_the_task",
     test_give_up_out_of_memory_leaves_the_task},
    {"test_alloc_failures_in_retry", test_alloc_failures_in_retry},
    {NULL, NULL},
};
TEST_MAIN(tests)
