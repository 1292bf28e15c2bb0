/* Tests for vent_bisect: tasks lost with a worker become suspect groups,
 * collected group by group; a task alone on a dying worker twice is
 * quarantined. */
#include "test.h"
#include "vent_bisect.h"

typedef struct {
    zp_vent_jobs_t *jobs;
    zp_vent_tasks_t *tasks;
    zp_vent_job_t *job;
    zp_vent_task_t *t[16];
} s_fix_t;

/* n tasks, all sent to worker 7. */
static void s_fix(s_fix_t *f, size_t n)
{
    f->jobs = zp_vent_jobs_new(0, 3, 0);
    f->tasks = zp_vent_tasks_new(0, 1 << 20, false);
    f->job = zp_vent_jobs_add(f->jobs, "job-1", "echo");
    TEST_CHECK(f->jobs && f->tasks && f->job);
    for (size_t i = 0; i < n; i++)
        f->t[i] = zp_vent_tasks_add(f->tasks, f->job, "x", 1, 0);
    zp_vent_task_t *out[16];
    TEST_EQ_INT(zp_vent_tasks_collect(f->tasks, f->job, n, 1 << 20, out), n);
    for (size_t i = 0; i < n; i++) {
        out[i]->state = ZP_VENT_INFLIGHT;
        out[i]->worker = 7;
    }
}

static void s_fix_free(s_fix_t *f)
{
    zp_vent_tasks_destroy(&f->tasks);
    zp_vent_jobs_destroy(&f->jobs);
}

static void test_parts_split_evenly(void)
{
    TEST_EQ_INT(zp_vent_bisect_part(0, 16, 8), 0);
    TEST_EQ_INT(zp_vent_bisect_part(1, 16, 8), 0);
    TEST_EQ_INT(zp_vent_bisect_part(2, 16, 8), 1);
    TEST_EQ_INT(zp_vent_bisect_part(15, 16, 8), 7);
    TEST_EQ_INT(zp_vent_bisect_part(2, 3, 8), 2); /* fewer tasks than ways */
}

static void test_holding_counts_a_workers_tasks(void)
{
    s_fix_t f;
    s_fix(&f, 4);
    f.t[1]->group = 5;
    zp_vent_holding_t h = zp_vent_bisect_holding(f.tasks, 7, 5);
    TEST_EQ_INT(h.inflight, 4);
    TEST_EQ_INT(h.of_group, 1);
    TEST_EQ_INT(zp_vent_bisect_holding(f.tasks, 8, 0).inflight, 0);
    s_fix_free(&f);
}

static void test_groups_are_collected_one_at_a_time(void)
{
    s_fix_t f;
    s_fix(&f, 4);
    /* Lost: tasks 0, 1 in group 1 and 2, 3 in group 2, requeued from the
     * back so group 1 is first. */
    for (size_t i = 4; i-- > 0;) {
        zp_vent_retry_result_t r =
            zp_vent_bisect_requeue(f.t[i], 1 + (uint32_t)(i / 2), false, "w");
        TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
    }
    zp_vent_tasks_add(f.tasks, f.job, "y", 1, 0); /* a fresh task behind */
    TEST_EQ_INT(zp_vent_bisect_front(f.tasks, f.job), 1);
    zp_vent_task_t *out[16];
    size_t n = zp_vent_bisect_collect(f.tasks, f.job, 1, 16, 1 << 20, out);
    TEST_EQ_INT(n, 2);
    TEST_CHECK(out[0] == f.t[0] && out[1] == f.t[1]);
    TEST_EQ_INT(zp_vent_bisect_front(f.tasks, f.job), 2);
    TEST_EQ_INT(zp_vent_bisect_collect(f.tasks, f.job, 0, 16, 1 << 20, out), 0);
    TEST_EQ_INT(zp_vent_bisect_collect(f.tasks, f.job, 2, 16, 1 << 20, out), 2);
    TEST_EQ_INT(zp_vent_bisect_front(f.tasks, f.job), 0);
    TEST_EQ_INT(zp_vent_bisect_collect(f.tasks, f.job, 0, 16, 1 << 20, out), 1);
    TEST_EQ_INT(f.t[0]->losses, 1);
    TEST_EQ_INT(f.t[0]->attempt, 1); /* not charged */
    s_fix_free(&f);
}

static void test_alone_twice_is_quarantined(void)
{
    s_fix_t f;
    s_fix(&f, 1);
    zp_vent_retry_result_t r = zp_vent_bisect_requeue(f.t[0], 3, true, "w");
    TEST_EQ_INT(r.decision, ZP_VENT_REQUEUE);
    TEST_EQ_INT(f.t[0]->alone, 1);
    f.t[0]->state = ZP_VENT_INFLIGHT;
    r = zp_vent_bisect_requeue(f.t[0], 4, true, "worker w lost");
    TEST_EQ_INT(r.decision, ZP_VENT_GIVE_UP);
    TEST_CHECK(r.recorded);
    TEST_EQ_INT(f.t[0]->state, ZP_VENT_FAILING);
    TEST_EQ_INT(f.job->fails.n, 1);
    s_fix_free(&f);
}

static const test_case_t tests[] = {
    {"test_parts_split_evenly", test_parts_split_evenly},
    {"test_holding_counts_a_workers_tasks",
     test_holding_counts_a_workers_tasks},
    {"test_groups_are_collected_one_at_a_time",
     test_groups_are_collected_one_at_a_time},
    {"test_alone_twice_is_quarantined", test_alone_twice_is_quarantined},
    {NULL, NULL},
};

TEST_MAIN(tests)
