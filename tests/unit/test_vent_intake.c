/* Tests for vent_intake: settings text and key validation, plugin names,
 * and what a producer's JobOpen, TaskBatch and JobClose must be. */
#include "failalloc.h"
#include "test.h"
#include "vent_intake.h"

#include <stdlib.h>

static void test_settings_from_pairs_and_from_a_job_open(void)
{
    char *pairs[] = {"level=9", "name=a=b", "empty="};
    char *out = NULL;
    const char *why = NULL;
    TEST_EQ_INT(zp_vent_settings_text(pairs, NULL, 3, &out, &why), 0);
    TEST_EQ_STR(out, "level=9\nname=a=b\nempty=");
    free(out);
    Zpipe__V1__Setting a = ZPIPE__V1__SETTING__INIT, b = a;
    a.key = "k.1";
    a.value = "v";
    b.key = "K_2-x";
    b.value = NULL;
    const Zpipe__V1__Setting *kv[] = {&a, &b};
    TEST_EQ_INT(zp_vent_settings_text(NULL, kv, 2, &out, &why), 0);
    TEST_EQ_STR(out, "k.1=v\nK_2-x=");
    free(out);
    TEST_EQ_INT(zp_vent_settings_text(NULL, kv, 0, &out, &why), 0);
    TEST_CHECK(out == NULL); /* none */
}

static void test_settings_refused(void)
{
    char *out = NULL;
    const char *why = NULL;
    char *no_eq[] = {"level"};
    TEST_EQ_INT(zp_vent_settings_text(no_eq, NULL, 1, &out, &why), -1);
    TEST_CONTAINS(why, "a setting needs a key of 1 to 64");
    char *empty_key[] = {"=1"};
    TEST_EQ_INT(zp_vent_settings_text(empty_key, NULL, 1, &out, &why), -1);
    char *bad_char[] = {"a b=1"};
    TEST_EQ_INT(zp_vent_settings_text(bad_char, NULL, 1, &out, &why), -1);
    char *newline[] = {"a=1\n2"};
    TEST_EQ_INT(zp_vent_settings_text(newline, NULL, 1, &out, &why), -1);
    char key65[80];
    memset(key65, 'k', 65);
    strcpy(key65 + 65, "=1");
    char *long_key[] = {key65};
    TEST_EQ_INT(zp_vent_settings_text(long_key, NULL, 1, &out, &why), -1);
    key65[64] = '=';
    TEST_EQ_INT(zp_vent_settings_text(long_key, NULL, 1, &out, &why), 0);
    free(out);
    char *big = malloc(65536 + 3);
    memcpy(big, "a=", 2);
    memset(big + 2, 'v', 65537);
    big[65539 - 1] = '\0'; /* value of 65,536 bytes: allowed */
    char *pairs[] = {big};
    TEST_EQ_INT(zp_vent_settings_text(pairs, NULL, 1, &out, &why), 0);
    free(out);
    free(big);
    Zpipe__V1__Setting s = ZPIPE__V1__SETTING__INIT;
    s.key = NULL;
    const Zpipe__V1__Setting *kv[] = {&s};
    TEST_EQ_INT(zp_vent_settings_text(NULL, kv, 1, &out, &why), -1);
    TEST_CHECK(out == NULL);
}

/* check_open with the usual out-parameters. */
static zp_vent_open_t s_open(const Zpipe__V1__JobOpen *o,
                             const zp_vent_job_t *existing,
                             const zp_vent_finished_job_t *finished,
                             const char *rid, const char **why, const char **id)
{
    static char buf[200];
    return zp_vent_intake_check_open(o, existing, finished, rid, strlen(rid),
                                     why, buf, sizeof buf, id);
}

static void test_open_checks(void)
{
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    const char *id, *why;
    o.plugin = "echo";
    o.job_id = "";
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_NEW);
    TEST_EQ_STR(id, ""); /* the ventilator makes one */
    o.plugin = "bad/name";
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    TEST_CONTAINS(why, "JobOpen needs a plugin name");
    o.plugin = NULL;
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    o.plugin = "echo";
    o.job_id = "no spaces";
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    TEST_CONTAINS(why, "job id must be");
    TEST_EQ_STR(id, ""); /* the answer does not repeat a bad id */
    o.job_id = "job-1";
    o.token = "bad token";
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    TEST_CONTAINS(why, "job token must be");
    o.token = "t1";
    TEST_EQ_INT(s_open(&o, NULL, NULL, "p", &why, &id), ZP_VENT_OPEN_NEW);
    TEST_EQ_STR(id, "job-1");
}

static void test_open_again_is_the_same_token_or_connection(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    memcpy(j->prid, "prod", 4);
    j->prid_len = 4;
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    o.plugin = "echo";
    o.job_id = "job-1";
    const char *id, *why;
    /* No token: only its own connection opens it again. */
    TEST_EQ_INT(s_open(&o, j, NULL, "prod", &why, &id), ZP_VENT_OPEN_AGAIN);
    TEST_EQ_INT(s_open(&o, j, NULL, "other", &why, &id), ZP_VENT_OPEN_REFUSE);
    TEST_CONTAINS(why, "job id job-1 is in use by another job");
    o.plugin = "sha256";
    TEST_EQ_INT(s_open(&o, j, NULL, "prod", &why, &id), ZP_VENT_OPEN_REFUSE);
    /* With a token: any connection holding it (a reconnect, a restart). */
    o.plugin = "echo";
    TEST_EQ_INT(zp_vent_job_set_token(j, "tok"), 0);
    o.token = "tok";
    TEST_EQ_INT(s_open(&o, j, NULL, "other", &why, &id), ZP_VENT_OPEN_AGAIN);
    o.token = "another";
    TEST_EQ_INT(s_open(&o, j, NULL, "prod", &why, &id), ZP_VENT_OPEN_REFUSE);
    zp_vent_jobs_destroy(&jobs);
}

static void test_a_finished_id_is_never_taken_again(void)
{
    zp_vent_finished_job_t f = {.id = "job-1", .token = "tok", .total = 5};
    Zpipe__V1__JobOpen o = ZPIPE__V1__JOB_OPEN__INIT;
    o.plugin = "echo";
    o.job_id = "job-1";
    const char *id, *why;
    o.token = "tok"; /* its own open, sent again after the end */
    TEST_EQ_INT(s_open(&o, NULL, &f, "p", &why, &id), ZP_VENT_OPEN_FINISHED);
    o.token = "new";
    TEST_EQ_INT(s_open(&o, NULL, &f, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    TEST_CONTAINS(why, "job id job-1 was already used by a job that finished");
    o.token = "";
    TEST_EQ_INT(s_open(&o, NULL, &f, "p", &why, &id), ZP_VENT_OPEN_REFUSE);
    /* Closing it again is answered; with another total, refused. */
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    char buf[160];
    c.total = 5;
    TEST_CHECK(!zp_vent_intake_check_close(&c, NULL, &f, buf, sizeof buf));
    c.total = 6;
    TEST_CONTAINS(zp_vent_intake_check_close(&c, NULL, &f, buf, sizeof buf),
                  "total 6 does not match the 5 tasks");
}

/* check_tasks with the usual out-parameters. */
static zp_vent_batch_verdict_t s_tasks(const Zpipe__V1__TaskBatch *b,
                                       const zp_vent_job_t *j, uint64_t max,
                                       const char **why, zp_vent_batch_t *again,
                                       uint64_t *expected)
{
    static char buf[200];
    uint64_t count;
    return zp_vent_intake_check_tasks(b, j, max, why, buf, sizeof buf, again,
                                      expected, &count);
}

static void test_tasks_and_close_checks(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    Zpipe__V1__Task t0 = ZPIPE__V1__TASK__INIT, t1 = t0;
    t0.payload.len = 10;
    t1.payload.len = 11;
    Zpipe__V1__Task *ts[] = {&t0, &t1};
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.tasks = ts;
    b.n_tasks = 2;
    const char *why;
    zp_vent_batch_t again;
    uint64_t exp;
    TEST_EQ_INT(s_tasks(&b, NULL, 10, &why, &again, &exp),
                ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "unknown job");
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_CONTAINS(why, "task 1 of the batch is 11 bytes, over the limit of 10");
    TEST_EQ_INT(s_tasks(&b, j, 11, &why, &again, &exp), ZP_VENT_BATCH_NEW);
    j->next_task_id = ZP_VENT_MAX_TASK_ID - 2;
    TEST_EQ_INT(s_tasks(&b, j, 11, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "too many tasks in one job");
    j->next_task_id = 5;
    Zpipe__V1__JobClose c = ZPIPE__V1__JOB_CLOSE__INIT;
    char buf[160];
    c.total = 4;
    TEST_CONTAINS(zp_vent_intake_check_close(&c, j, NULL, buf, sizeof buf),
                  "total 4 does not match the 5 tasks received");
    c.total = 0; /* not given: fine */
    TEST_CHECK(!zp_vent_intake_check_close(&c, j, NULL, buf, sizeof buf));
    TEST_EQ_STR(zp_vent_intake_check_close(&c, NULL, NULL, buf, sizeof buf),
                "unknown job");
    j->input_closed = true;
    TEST_EQ_INT(s_tasks(&b, j, 11, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "job already closed");
    j->has_input = true; /* the --input job takes no producer's tasks */
    TEST_EQ_INT(s_tasks(&b, j, 11, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "unknown job");
    TEST_EQ_STR(zp_vent_intake_check_close(&c, j, NULL, buf, sizeof buf),
                "unknown job");
    zp_vent_jobs_destroy(&jobs);
}

static void test_numbered_batches_are_taken_once_in_order(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    Zpipe__V1__Task t0 = ZPIPE__V1__TASK__INIT;
    Zpipe__V1__Task *ts[] = {&t0};
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.tasks = ts;
    b.n_tasks = 1;
    const char *why;
    zp_vent_batch_t again;
    uint64_t exp;
    b.seq = 2; /* batch 1 was lost */
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_EQ_INT(exp, 1);
    TEST_CONTAINS(why, "batch 2 of job job-1 came before batch 1");
    b.seq = 1;
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_NEW);
    TEST_EQ_INT(zp_vent_job_batch_add(j, 0, 1), 0);
    j->next_task_id = 1;
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_AGAIN);
    TEST_EQ_INT(again.first, 0);
    TEST_EQ_INT(again.n, 1);
    /* Unnumbered batches are always new. */
    b.seq = 0;
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_NEW);
    /* A closed job still answers a batch it took. */
    j->input_closed = true;
    b.seq = 1;
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_AGAIN);
    b.seq = 2;
    TEST_EQ_INT(s_tasks(&b, j, 10, &why, &again, &exp), ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "job already closed");
    zp_vent_jobs_destroy(&jobs);
}

static void test_attempts_capped(void)
{
    TEST_EQ_INT(zp_vent_intake_attempts(0, 3), 3);
    TEST_EQ_INT(zp_vent_intake_attempts(7, 3), 7);
    TEST_EQ_INT(zp_vent_intake_attempts(1000, 3), 100);
}

static void s_settings_scenario(void *arg)
{
    (void)arg;
    char *pairs[] = {"a=1", "b=2", "c=3"};
    char *out = NULL;
    const char *why;
    if (zp_vent_settings_text(pairs, NULL, 3, &out, &why) == 0)
        free(out);
}

/* A batch's lines: one task per line after its tasks, counted; a batch
 * whose lines do not end with a newline, or with a line over the limit,
 * is refused whole. */
static void test_lines_are_tasks_after_the_tasks(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    Zpipe__V1__Task t0 = ZPIPE__V1__TASK__INIT;
    t0.payload.len = 3;
    Zpipe__V1__Task *ts[] = {&t0};
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    char buf[200];
    const char *why;
    zp_vent_batch_t again;
    uint64_t exp, n = 99;
    /* Lines only: empty lines are tasks too. */
    b.lines.data = (uint8_t *)"a\n\nccc\n";
    b.lines.len = 7;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 10, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_NEW);
    TEST_EQ_INT(n, 3);
    /* Tasks, then lines. */
    b.tasks = ts;
    b.n_tasks = 1;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 10, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_NEW);
    TEST_EQ_INT(n, 4);
    /* No newline at the end: refused, nothing counted. */
    b.lines.len = 6;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 10, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_REFUSE);
    TEST_CONTAINS(why, "do not end with a newline");
    TEST_EQ_INT(n, 0);
    /* A line over the limit, named by its place in the batch (the task
     * before it counts). The limit 2 is under the lines' 7 bytes, so each
     * line is measured; 3 bytes fit the limit 3 exactly. */
    b.lines.len = 7;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 3, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_NEW);
    b.n_tasks = 0;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 2, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_REFUSE);
    TEST_CONTAINS(why, "task 2 of the batch (a line) is 3 bytes, over the "
                       "limit of 2");
    /* The job's id space counts the lines. */
    j->next_task_id = ZP_VENT_MAX_TASK_ID - 3;
    TEST_EQ_INT(zp_vent_intake_check_tasks(&b, j, 10, &why, buf, sizeof buf,
                                           &again, &exp, &n),
                ZP_VENT_BATCH_REFUSE);
    TEST_EQ_STR(why, "too many tasks in one job");
    zp_vent_jobs_destroy(&jobs);
}

static void test_the_intake_takes_a_frame_for_the_longest_task(void)
{
    /* The default task limit (64 MiB) and smaller: the fixed cap. */
    TEST_CHECK(zp_vent_intake_frame_cap(1) == ZP_VENT_INTAKE_FRAME);
    TEST_CHECK(zp_vent_intake_frame_cap(ZP_VENT_INTAKE_FRAME -
                                        ZP_VENT_INTAKE_FRAMING) ==
               ZP_VENT_INTAKE_FRAME);
    /* 64 MiB tasks: a batch of one with its framing still fits. */
    TEST_CHECK(zp_vent_intake_frame_cap(64u << 20) ==
               (64u << 20) + ZP_VENT_INTAKE_FRAMING);
    TEST_CHECK(zp_vent_intake_frame_cap(1u << 30) ==
               (1u << 30) + ZP_VENT_INTAKE_FRAMING);
}

static void test_alloc_failures_in_settings(void)
{
    TEST_CHECK(failalloc_sweep(s_settings_scenario, NULL) >= 1);
}

static const test_case_t tests[] = {
    {"test_settings_from_pairs_and_from_a_job_open",
     test_settings_from_pairs_and_from_a_job_open},
    {"test_settings_refused", test_settings_refused},
    {"test_open_checks", test_open_checks},
    {"test_open_again_is_the_same_token_or_connection",
     test_open_again_is_the_same_token_or_connection},
    {"test_a_finished_id_is_never_taken_again",
     test_a_finished_id_is_never_taken_again},
    {"test_tasks_and_close_checks", test_tasks_and_close_checks},
    {"test_numbered_batches_are_taken_once_in_order",
     test_numbered_batches_are_taken_once_in_order},
    {"test_attempts_capped", test_attempts_capped},
    {"test_lines_are_tasks_after_the_tasks",
     test_lines_are_tasks_after_the_tasks},
    {"test_the_intake_takes_a_frame_for_the_longest_task",
     test_the_intake_takes_a_frame_for_the_longest_task},
    {"test_alloc_failures_in_settings", test_alloc_failures_in_settings},
    {NULL, NULL},
};
TEST_MAIN(tests)
