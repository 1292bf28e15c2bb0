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

static zp_control_answer_t s_open_token(zp_jobs_t *jobs, const char *id,
                                        const char *token, const char *rid)
{
    Zpipe__V1__JobOpen m = ZPIPE__V1__JOB_OPEN__INIT;
    m.job_id = (char *)id;
    m.plugin = "echo";
    m.token = (char *)token;
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
    /* A forgotten job: done, with its counts. */
    zp_retain_entry_t e = {.total = 10, .succeeded = 7, .spooled = 99};
    Zpipe__V1__JobStatus old = ZPIPE__V1__JOB_STATUS__INIT;
    zp_control_status_forgotten(&old, &e, "y", 3);
    TEST_EQ_STR(old.job_id, "y");
    TEST_EQ_INT(old.state, ZPIPE__V1__JOB_STATE__JOB_DONE);
    TEST_EQ_INT(old.total, 10);
    TEST_EQ_INT(old.done, 10);
    TEST_EQ_INT(old.succeeded, 7);
    TEST_EQ_INT(old.failed, 3);
    TEST_EQ_INT(old.bad_messages, 3);
    TEST_EQ_INT(old.n_workers, 0);
    TEST_CHECK(old.reduce_error == NULL || !*old.reduce_error);
    /* A failed reduction is still told; a stray success past the total
     * (counted while the job was open) does not make failed wrap. */
    zp_retain_entry_t r = {.total = 4, .succeeded = 5, .reduce_failed = true};
    Zpipe__V1__JobStatus red = ZPIPE__V1__JOB_STATUS__INIT;
    zp_control_status_forgotten(&red, &r, "z", 0);
    TEST_EQ_INT(red.failed, 0);
    TEST_CHECK(red.reduce_error && strstr(red.reduce_error, "failed"));
    zp_jobs_fini(&jobs);
}

/* The same id with the same token is the same job, from any peer; with
 * another token it is another job, refused. */
static void test_tokens_tell_jobs_apart(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open_token(&jobs, "j", "tok-a", "v1");
    TEST_CHECK(a.ok && a.is_new && !a.reused && !a.adopted);
    TEST_EQ_STR(a.job->token, "tok-a");
    a = s_open_token(&jobs, "j", "tok-a", "v2"); /* idempotent */
    TEST_CHECK(a.ok && !a.is_new && !a.adopted);
    TEST_CHECK(memcmp(a.job->opener.rid, "v2", 2) == 0);
    a.job->acks_wait_open = true;
    a = s_open_token(&jobs, "j", "tok-b", "v3"); /* another job */
    TEST_CHECK(!a.ok && a.reused && !a.job && !a.bad && !a.error);
    zp_sink_job_t *j = zp_jobs_find(&jobs, "j");
    TEST_CHECK(memcmp(j->opener.rid, "v2", 2) == 0); /* unchanged */
    TEST_CHECK(j->acks_wait_open); /* a refused open changes nothing */
    TEST_EQ_STR(j->token, "tok-a");
    a = s_open_token(&jobs, "j", "", "v4"); /* legacy: matches */
    TEST_CHECK(a.ok && !a.reused && a.job == j);
    TEST_CHECK(!j->acks_wait_open); /* a new opener is told at once */
    a = s_open_token(&jobs, "j", NULL, "v4");
    TEST_CHECK(a.ok);
    /* A bad token is refused like a bad id. */
    a = s_open_token(&jobs, "j", "bad token", "v");
    TEST_CHECK(!a.ok && a.bad && !a.reused);
    TEST_EQ_STR(a.error, "token must be up to 128 of [A-Za-z0-9_.:-]");
    zp_jobs_fini(&jobs);
}

/* A job opened without a token takes the first one while unfinished;
 * once DONE it cannot become another job. */
static void test_legacy_job_and_tokens(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open_token(&jobs, "k", "", "v");
    TEST_CHECK(a.ok && a.is_new && !a.job->token);
    a = s_open_token(&jobs, "k", "t1", "v");
    TEST_CHECK(a.ok && a.adopted && !a.is_new);
    TEST_EQ_STR(a.job->token, "t1");
    a = s_open_token(&jobs, "k", "t2", "v");
    TEST_CHECK(!a.ok && a.reused);
    /* Done without a token: any token is another job; none is legacy. */
    a = s_open_token(&jobs, "d", NULL, "v");
    s_close(&jobs, "d", 0, "v");
    TEST_EQ_INT(zp_ledger_finish(&a.job->ledger), 0);
    a = s_open_token(&jobs, "d", "t", "v");
    TEST_CHECK(!a.ok && a.reused);
    a = s_open_token(&jobs, "d", "", "v");
    TEST_CHECK(a.ok && !a.adopted);
    /* A done job with a token is still that job to its token. */
    a = s_open_token(&jobs, "e", "te", "v");
    s_close(&jobs, "e", 0, "v");
    TEST_EQ_INT(zp_ledger_finish(&a.job->ledger), 0);
    TEST_CHECK(s_open_token(&jobs, "e", "te", "v").ok);
    TEST_CHECK(s_open_token(&jobs, "e", "tf", "v").reused);
    zp_jobs_fini(&jobs);
}

static void test_restore_open_keeps_the_first_token(void)
{
    zp_jobs_t jobs = {0};
    zp_sink_job_t *j = zp_control_restore_open(&jobs, "r", 4, "");
    TEST_CHECK(j && !j->token);
    TEST_EQ_INT(j->ledger.max_attempts, 4);
    TEST_CHECK(zp_control_restore_open(&jobs, "r", 0, "t1") == j);
    TEST_EQ_STR(j->token, "t1");
    TEST_CHECK(zp_control_restore_open(&jobs, "r", 0, "t2") == j);
    TEST_EQ_STR(j->token, "t1");
    TEST_EQ_INT(j->ledger.max_attempts, 4);
    zp_jobs_fini(&jobs);
}

static void test_commit_query_answers_what_is_held(void)
{
    zp_jobs_t jobs = {0};
    zp_control_answer_t a = s_open(&jobs, "q", 0, "v");
    for (uint64_t t = 0; t < 10; t++)
        if (t != 5)
            zp_ledger_result(&a.job->ledger, t, true, false, 1);
    uint64_t ids[] = {9, 5, 0, 12, 3, ZP_LEDGER_MAX_OPEN_TASK_ID};
    Zpipe__V1__CommitQuery q = ZPIPE__V1__COMMIT_QUERY__INIT;
    q.job_id = "q";
    q.task_ids = ids;
    q.n_task_ids = 6;
    TEST_EQ_INT(zp_control_commit_query(&jobs, &q, false), 3);
    TEST_EQ_INT(q.n_task_ids, 3);
    TEST_EQ_INT(ids[0], 9);
    TEST_EQ_INT(ids[1], 0);
    TEST_EQ_INT(ids[2], 3);
    /* --ordered: a record parked behind a missing lower id is not
     * written yet, so not answered. */
    uint64_t ord[] = {0, 9};
    q.task_ids = ord;
    q.n_task_ids = 2;
    a.job->order.next = 5;
    TEST_EQ_INT(zp_control_commit_query(&jobs, &q, true), 1);
    TEST_EQ_INT(ord[0], 0);
    /* DONE: every id below the total, none past it. */
    zp_ledger_result(&a.job->ledger, 5, true, false, 1);
    s_close(&jobs, "q", 10, "v");
    TEST_EQ_INT(zp_ledger_finish(&a.job->ledger), 0);
    uint64_t done[] = {5, 10, 7};
    q.task_ids = done;
    q.n_task_ids = 3;
    TEST_EQ_INT(zp_control_commit_query(&jobs, &q, true), 2);
    TEST_EQ_INT(done[0], 5);
    TEST_EQ_INT(done[1], 7);
    /* Unknown job, bad id: nothing. */
    uint64_t some[] = {0};
    q.task_ids = some;
    q.n_task_ids = 1;
    q.job_id = "nope";
    TEST_EQ_INT(zp_control_commit_query(&jobs, &q, false), 0);
    q.n_task_ids = 1;
    q.job_id = NULL;
    TEST_EQ_INT(zp_control_commit_query(&jobs, &q, false), 0);
    zp_jobs_fini(&jobs);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_jobs_t jobs = {0};
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "j%d", i);
        zp_control_answer_t a = i == 1 ? s_open_token(&jobs, id, "tok", "v")
                                       : s_open(&jobs, id, 0, "v");
        if (i == 2)
            s_open_token(&jobs, id, "late", "v"); /* adopts a token */
        if (a.job) {
            zp_ledger_result(&a.job->ledger, 0, true, false, 1);
            zp_sink_job_worker(a.job, "w", 1, 1, 1);
            zp_sink_job_worker(a.job, "w2", 1, 1, 1);
        }
        s_close(&jobs, id, 1, "v");
    }
    zp_control_restore_open(&jobs, "r", 0, "tok-r");
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
    {"test_tokens_tell_jobs_apart", test_tokens_tell_jobs_apart},
    {"test_legacy_job_and_tokens", test_legacy_job_and_tokens},
    {"test_restore_open_keeps_the_first_token",
     test_restore_open_keeps_the_first_token},
    {"test_commit_query_answers_what_is_held",
     test_commit_query_answers_what_is_held},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
