/* Tests for sink_control (JobOpen, JobClose, StatusRequest answers) and
 * the job table it works on. */
#include "failalloc.h"
#include "sink_control.h"
#include "test.h"

#include <string.h>

static zp_control_answer_t s_open(zp_jobs_t *jobs, const char *id,
                                  uint32_t max_attempts, const char *rid)
{
    Zpipe__V1__JobOpen m = ZPIPE__V1__JOB_OPEN__INIT;
    m.job_id = (char *)id;
    m.plugin = "echo";
    m.max_attempts = max_attempts;
    return zp_control_job_open(jobs, &m, rid, strlen(rid));
}

static zp_control_answer_t s_close(zp_jobs_t *jobs, const char *id,
                                   uint64_t total, const char *rid)
{
    Zpipe__V1__JobClose m = ZPIPE__V1__JOB_CLOSE__INIT;
    m.job_id = (char *)id;
    m.total = total;
    return zp_control_job_close(jobs, &m, rid, strlen(rid));
}

static void test_open_new_and_again(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open(&jobs, "job-1", 5, "vent");
    TEST_CHECK(a.ok && a.is_new && !a.bad && !a.error);
    TEST_EQ_STR(a.ack_id, "job-1");
    TEST_CHECK(a.job == zp_jobs_find(&jobs, "job-1"));
    TEST_EQ_INT(a.job->ledger.max_attempts, 5);
    TEST_CHECK(a.job->opener.rid_len == 4 &&
               memcmp(a.job->opener.rid, "vent", 4) == 0);
    TEST_EQ_INT(a.job->waiters.n, 1);
    /* Again, from another peer, without max_attempts: the same job. */
    zp_control_answer_t b = s_open(&jobs, "job-1", 0, "vent2");
    TEST_CHECK(b.ok && !b.is_new && b.job == a.job);
    TEST_EQ_INT(b.job->ledger.max_attempts, 5);
    TEST_CHECK(memcmp(b.job->opener.rid, "vent2", 5) == 0);
    TEST_EQ_INT(b.job->waiters.n, 2);
    zp_jobs_fini(&jobs);
    TEST_CHECK(jobs.head == NULL);
}

static void test_open_refuses_a_bad_id(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open(&jobs, "bad id!", 0, "p");
    TEST_CHECK(!a.ok && a.bad && a.error && !a.job);
    TEST_EQ_STR(a.error, "job id must be 1 to 128 of [A-Za-z0-9_.:-]");
    a = s_open(&jobs, NULL, 0, "p");
    TEST_CHECK(!a.ok && a.bad);
    TEST_EQ_STR(a.ack_id, "");
    TEST_CHECK(jobs.head == NULL);
}

static void test_close_then_again(void)
{
    zp_jobs_t jobs = {0};
    s_open(&jobs, "j", 0, "v");
    zp_control_answer_t a = s_close(&jobs, "j", 3, "v");
    TEST_CHECK(a.ok && a.closed && !a.error);
    TEST_EQ_INT(a.job->ledger.state, ZP_JOB_CLOSED);
    TEST_EQ_INT(a.job->ledger.total, 3);
    a = s_close(&jobs, "j", 3, "v");
    TEST_CHECK(a.ok && !a.closed && !a.error);
    a = s_close(&jobs, "j", 4, "v");
    TEST_CHECK(!a.ok && !a.closed && !a.bad);
    TEST_EQ_STR(a.error, "job already closed with another total");
    /* Closing a job never opened makes it. */
    a = s_close(&jobs, "k", 0, "v");
    TEST_CHECK(a.ok && a.closed && zp_jobs_find(&jobs, "k"));
    a = s_close(&jobs, "", 1, "v");
    TEST_CHECK(!a.ok && a.bad);
    TEST_EQ_STR(a.error, "job_close without job_id");
    zp_jobs_fini(&jobs);
}

static void test_close_below_the_records_is_refused(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open(&jobs, "j", 0, "v");
    for (uint64_t t = 0; t < 4; t++)
        zp_ledger_result(&a.job->ledger, t, true, false, 1);
    a = s_close(&jobs, "j", 3, "v");
    TEST_CHECK(!a.ok && !a.closed);
    TEST_EQ_STR(a.error, "more results than the total");
    TEST_EQ_INT(a.job->ledger.state, ZP_JOB_OPEN);
    zp_jobs_fini(&jobs);
}

static void test_status_of_a_job(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open(&jobs, "j", 0, "v");
    zp_ledger_result(&a.job->ledger, 0, true, false, 1);
    zp_ledger_result(&a.job->ledger, 1, false, false, 1);
    zp_ledger_result(&a.job->ledger, 1, false, false, 1);
    zp_sink_job_worker(a.job, "w1", 2, 64, 8);
    zp_sink_job_worker(a.job, "w1", 1, 32, 4);
    zp_sink_job_worker(a.job, NULL, 0, 0, 0);
    s_close(&jobs, "j", 2, "v");
    Zpipe__V1__JobStatus st = ZPIPE__V1__JOB_STATUS__INIT;
    zp_control_workers_t w;
    zp_control_status(&st, a.job, "j", 7, &w);
    TEST_EQ_INT(st.state, ZPIPE__V1__JOB_STATE__JOB_CLOSED);
    TEST_EQ_INT(st.total, 2);
    TEST_EQ_INT(st.done, 2);
    TEST_EQ_INT(st.succeeded, 1);
    TEST_EQ_INT(st.failed, 1);
    TEST_EQ_INT(st.duplicates, 1);
    TEST_EQ_INT(st.bad_messages, 7);
    TEST_EQ_INT(st.n_workers, 2);
    TEST_EQ_STR(st.workers[0]->worker_id, "w1");
    TEST_EQ_INT(st.workers[0]->tasks_done, 3);
    TEST_EQ_INT(st.workers[0]->window, 32);
    TEST_EQ_INT(st.workers[0]->max_held, 8);
    TEST_EQ_STR(st.workers[1]->worker_id, "");
    /* An unknown job: only its id. */
    Zpipe__V1__JobStatus none = ZPIPE__V1__JOB_STATUS__INIT;
    zp_control_status(&none, NULL, "x", 7, &w);
    TEST_EQ_STR(none.job_id, "x");
    TEST_EQ_INT(none.state, 0);
    TEST_EQ_INT(none.n_workers, 0);
    zp_jobs_fini(&jobs);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_jobs_t jobs = {0};
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "j%d", i);
        zp_control_answer_t a = s_open(&jobs, id, 0, "v");
        if (a.job) {
            zp_ledger_result(&a.job->ledger, 0, true, false, 1);
            zp_sink_job_worker(a.job, "w", 1, 1, 1);
            zp_sink_job_worker(a.job, "w2", 1, 1, 1);
        }
        s_close(&jobs, id, 1, "v");
    }
    zp_jobs_fini(&jobs);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 6);
}

static const test_case_t tests[] = {
    {"test_open_new_and_again", test_open_new_and_again},
    {"test_open_refuses_a_bad_id", test_open_refuses_a_bad_id},
    {"test_close_then_again", test_close_then_again},
    {"test_close_below_the_records_is_refused",
     test_close_below_the_records_is_refused},
    {"test_status_of_a_job", test_status_of_a_job},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
