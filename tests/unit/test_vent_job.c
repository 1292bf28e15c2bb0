/* Tests for vent_job: the job lifecycle (legal transitions taken, illegal
 * ones refused), the job list, the finished ids, the failure records. */
#include "failalloc.h"
#include "test.h"
#include "vent_job.h"

#include <stdlib.h>

static void test_lifecycle_walks_open_close_done(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    TEST_CHECK(j);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPENING);
    TEST_CHECK(!zp_vent_job_live(j));
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    TEST_CHECK(zp_vent_job_live(j));
    j->input_closed = true; /* closing needs the input done */
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSING), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSED), 0);
    TEST_CHECK(zp_vent_job_live(j));
    TEST_CHECK(!zp_vent_job_finished(j));
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_DONE), 0);
    TEST_CHECK(zp_vent_job_finished(j));
    TEST_CHECK(!zp_vent_job_live(j));
    TEST_EQ_STR(zp_vent_job_state_name(j->state), "done");
    zp_vent_jobs_destroy(&jobs);
    TEST_CHECK(jobs == NULL);
}

static void test_illegal_transitions_are_refused(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    /* Nothing skips the sink's acknowledgements. */
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSING), -1);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSED), -1);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_DONE), -1);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPENING);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPENING), -1);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_DONE), -1);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), -1); /* no self-loop */
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPEN);
    /* Refused is final. */
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_REFUSED), 0);
    for (int s = 0; s < ZP_VENT_JOB_STATES; s++)
        TEST_EQ_INT(zp_vent_job_to(j, (zp_vent_job_state_t)s), -1);
    TEST_CHECK(!zp_vent_job_can(ZP_VENT_JOB_STATES, ZP_VENT_JOB_OPEN));
    TEST_CHECK(!zp_vent_job_can(ZP_VENT_JOB_OPEN, ZP_VENT_JOB_STATES));
    zp_vent_jobs_destroy(&jobs);
}

/* The whole table, spelled out: from each state, where it may go. */
static void test_transition_table(void)
{
    static const char *const legal[ZP_VENT_JOB_STATES] = {
        [ZP_VENT_JOB_OPENING] = "open refused",
        [ZP_VENT_JOB_OPEN] = "closing refused",
        [ZP_VENT_JOB_CLOSING] = "open closed refused",
        [ZP_VENT_JOB_CLOSED] = "open done refused",
        [ZP_VENT_JOB_DONE] = "refused",
        [ZP_VENT_JOB_REFUSED] = "",
    };
    for (int f = 0; f < ZP_VENT_JOB_STATES; f++) {
        char got[128] = "";
        for (int t = 0; t < ZP_VENT_JOB_STATES; t++)
            if (zp_vent_job_can((zp_vent_job_state_t)f, (zp_vent_job_state_t)t))
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s",
                         *got ? " " : "",
                         zp_vent_job_state_name((zp_vent_job_state_t)t));
        TEST_EQ_STR(got, legal[f]);
    }
}

static void test_sink_restart_reopens_a_closing_job(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    j->input_closed = true;
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSING), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSING), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSED), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    zp_vent_jobs_destroy(&jobs);
}

static void test_input_done_by_source(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *p = zp_vent_jobs_add(jobs, "producer", "echo");
    TEST_CHECK(!zp_vent_job_input_done(p));
    p->input_closed = true;
    TEST_CHECK(zp_vent_job_input_done(p));
    zp_vent_job_t *f = zp_vent_jobs_add(jobs, "file", "echo");
    f->has_input = true;
    TEST_CHECK(!zp_vent_job_input_done(f));
    f->in.eof = true; /* nothing buffered, end of file */
    TEST_CHECK(zp_vent_job_input_done(f));
    zp_vent_jobs_destroy(&jobs);
}

static void test_list_find_and_slots(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(250, 4, 0);
    zp_vent_job_t *a = zp_vent_jobs_add(jobs, "a", "echo");
    zp_vent_job_t *b = zp_vent_jobs_add(jobs, "b", "sha256");
    zp_vent_job_t *c = zp_vent_jobs_add(jobs, "c", "echo");
    TEST_EQ_INT(zp_vent_jobs_count(jobs), 3);
    TEST_CHECK(zp_vent_jobs_first(jobs) == a && a->next == b && b->next == c);
    TEST_EQ_INT(a->slot, 0);
    TEST_EQ_INT(c->slot, 2);
    TEST_EQ_INT(b->deadline_ms, 250);
    TEST_EQ_INT(b->max_attempts, 4);
    TEST_CHECK(zp_vent_jobs_find(jobs, "b") == b);
    TEST_CHECK(zp_vent_jobs_find(jobs, "d") == NULL);
    zp_vent_jobs_remove(jobs, b, 0);
    TEST_EQ_INT(zp_vent_jobs_count(jobs), 2);
    TEST_CHECK(a->next == c);
    TEST_CHECK(!zp_vent_finished_find(zp_vent_jobs_finished(jobs), "b"));
    zp_vent_job_t *d = zp_vent_jobs_add(jobs, "d", "echo");
    TEST_EQ_INT(d->slot, 3); /* slots are never reused */
    zp_vent_jobs_destroy(&jobs);
}

/* Walks a producer's job through its whole life to DONE. */
static void s_to_done(zp_vent_job_t *j)
{
    j->input_closed = true;
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_OPEN), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSING), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_CLOSED), 0);
    TEST_EQ_INT(zp_vent_job_to(j, ZP_VENT_JOB_DONE), 0);
}

static void test_done_jobs_are_remembered_refused_ones_are_not(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *a = zp_vent_jobs_add(jobs, "a", "echo");
    zp_vent_job_t *b = zp_vent_jobs_add(jobs, "b", "echo");
    TEST_EQ_INT(zp_vent_job_set_token(a, "tok-a"), 0);
    a->next_task_id = 12;
    s_to_done(a);
    TEST_EQ_INT(zp_vent_job_to(b, ZP_VENT_JOB_REFUSED), 0);
    zp_vent_jobs_remove(jobs, a, 777);
    zp_vent_jobs_remove(jobs, b, 778);
    const zp_vent_finished_job_t *f =
        zp_vent_finished_find(zp_vent_jobs_finished(jobs), "a");
    TEST_CHECK(f != NULL);
    if (f) {
        TEST_EQ_STR(f->token, "tok-a");
        TEST_EQ_INT(f->total, 12);
        TEST_EQ_INT(f->when_us, 777);
    }
    /* The sink refused b: its id may be tried again. */
    TEST_CHECK(!zp_vent_finished_find(zp_vent_jobs_finished(jobs), "b"));
    TEST_EQ_INT(zp_vent_jobs_count(jobs), 0);
    TEST_CHECK(zp_vent_jobs_first(jobs) == NULL);
    /* The list still takes jobs at its tail after the tail was removed. */
    zp_vent_job_t *c = zp_vent_jobs_add(jobs, "c", "echo");
    zp_vent_job_t *d = zp_vent_jobs_add(jobs, "d", "echo");
    TEST_CHECK(zp_vent_jobs_first(jobs) == c && c->next == d);
    zp_vent_jobs_remove(jobs, d, 0);
    zp_vent_job_t *e = zp_vent_jobs_add(jobs, "e", "echo");
    TEST_CHECK(c->next == e && zp_vent_jobs_find(jobs, "e") == e);
    zp_vent_jobs_destroy(&jobs);
}

static void test_many_jobs_are_found_by_id(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "job-%d", i);
        TEST_CHECK(zp_vent_jobs_add(jobs, id, "echo") != NULL);
    }
    for (int i = 0; i < 20000; i += 7) {
        snprintf(id, sizeof id, "job-%d", i);
        zp_vent_job_t *j = zp_vent_jobs_find(jobs, id);
        TEST_CHECK(j && strcmp(j->id, id) == 0);
        if (j && i % 2)
            zp_vent_jobs_remove(jobs, j, 0);
    }
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-7") == NULL);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-14") != NULL);
    zp_vent_jobs_destroy(&jobs);
}

static uint64_t s_one_hash(const char *id)
{
    (void)id;
    return 42;
}

/* Every id has one hash: the index holds one job, the rest are found by
 * a scan, whichever leaves first. Before the fix, once the indexed job
 * was removed the others were not found (a reused id accepted). */
static void test_colliding_ids_are_found_whatever_leaves_first(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_jobs_set_hash(jobs, s_one_hash);
    zp_vent_job_t *a = zp_vent_jobs_add(jobs, "job-a", "echo");
    zp_vent_job_t *b = zp_vent_jobs_add(jobs, "job-b", "echo");
    zp_vent_job_t *c = zp_vent_jobs_add(jobs, "job-c", "echo");
    TEST_CHECK(a && b && c);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-a") == a &&
               zp_vent_jobs_find(jobs, "job-b") == b &&
               zp_vent_jobs_find(jobs, "job-c") == c);
    zp_vent_jobs_remove(jobs, a, 0); /* the indexed one */
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-a") == NULL);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-b") == b);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-c") == c);
    zp_vent_job_t *d = zp_vent_jobs_add(jobs, "job-d", "echo");
    zp_vent_jobs_remove(jobs, c, 0);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-b") == b);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-d") == d);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-c") == NULL);
    zp_vent_jobs_remove(jobs, b, 0);
    zp_vent_jobs_remove(jobs, d, 0);
    TEST_CHECK(zp_vent_jobs_find(jobs, "job-d") == NULL);
    TEST_EQ_INT(zp_vent_jobs_count(jobs), 0);
    zp_vent_jobs_destroy(&jobs);
}

static void test_jobs_are_counted_per_producer_connection(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *a = zp_vent_jobs_add(jobs, "a", "echo");
    zp_vent_job_t *b = zp_vent_jobs_add(jobs, "b", "echo");
    zp_vent_job_t *c = zp_vent_jobs_add(jobs, "c", "echo");
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p1", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_set_producer(jobs, a, "p1", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_set_producer(jobs, b, "p1", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_set_producer(jobs, c, "p2", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p1", 2), 2);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p2", 2), 1);
    /* Its producer back on another connection: the job moves. */
    TEST_EQ_INT(zp_vent_jobs_set_producer(jobs, b, "p2", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p1", 2), 1);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p2", 2), 2);
    TEST_CHECK(b->prid_len == 2 && memcmp(b->prid, "p2", 2) == 0);
    zp_vent_jobs_remove(jobs, c, 0);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p2", 2), 1);
    zp_vent_jobs_remove(jobs, b, 0);
    zp_vent_jobs_remove(jobs, a, 0);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p1", 2), 0);
    TEST_EQ_INT(zp_vent_jobs_of(jobs, "p2", 2), 0);
    char big[300] = {0};
    zp_vent_job_t *d = zp_vent_jobs_add(jobs, "d", "echo");
    TEST_EQ_INT(zp_vent_jobs_set_producer(jobs, d, big, sizeof big), -1);
    zp_vent_jobs_destroy(&jobs);
}

static void test_numbered_batches(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "a", "echo");
    TEST_CHECK(zp_vent_job_batch(j, 1) == NULL);
    for (uint32_t k = 0; k < 100; k++)
        TEST_EQ_INT(zp_vent_job_batch_add(j, k * 10, 10), 0);
    TEST_CHECK(zp_vent_job_batch(j, 0) == NULL);
    TEST_EQ_INT(zp_vent_job_batch(j, 1)->first, 0);
    TEST_EQ_INT(zp_vent_job_batch(j, 100)->first, 990);
    TEST_EQ_INT(zp_vent_job_batch(j, 100)->n, 10);
    TEST_CHECK(zp_vent_job_batch(j, 101) == NULL);
    zp_vent_jobs_destroy(&jobs);
}

static void test_failure_records_queue_and_clear(void)
{
    zp_vent_fails_t f = {0};
    for (int i = 0; i < 100; i++) {
        char *msg = strdup("boom");
        TEST_EQ_INT(zp_vent_fails_push(&f, (uint64_t)i, "lease_expired", 3, 0,
                                       i % 2, &msg),
                    0);
        TEST_CHECK(msg == NULL);
    }
    TEST_EQ_INT(f.n, 100);
    TEST_EQ_INT(f.items[7].task_id, 7);
    TEST_EQ_INT(f.items[7].quarantined, 1);
    TEST_EQ_INT(f.items[7].status, ZPIPE__V1__STATUS__STATUS_FAILED);
    TEST_EQ_STR(f.items[7].cause, "lease_expired");
    TEST_EQ_STR(f.items[7].error, "boom");
    zp_vent_fails_clear(&f);
    TEST_EQ_INT(f.n, 0);
    zp_vent_fails_free(&f);
}

static void s_jobs_scenario(void *arg)
{
    (void)arg;
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    if (!jobs)
        return;
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "job-%d", i);
        zp_vent_job_t *j = zp_vent_jobs_add(jobs, id, "echo");
        if (!j)
            continue;
        char *msg = strdup("why");
        if (msg && zp_vent_fails_push(&j->fails, 1, "worker_lost", 1, 0, false,
                                      &msg) < 0)
            free(msg);
        zp_iddeque_push_back(&j->ready, 5);
        zp_vent_job_batch_add(j, 0, 3);
        zp_vent_job_set_token(j, "t");
        zp_vent_jobs_set_producer(jobs, j, i % 2 ? "p1" : "p2", 2);
        if (i % 2) {
            j->input_closed = true;
            zp_vent_job_to(j, ZP_VENT_JOB_OPEN);
            zp_vent_job_to(j, ZP_VENT_JOB_CLOSING);
            zp_vent_job_to(j, ZP_VENT_JOB_CLOSED);
            zp_vent_job_to(j, ZP_VENT_JOB_DONE);
            zp_vent_jobs_remove(jobs, j, 0);
        }
    }
    zp_vent_finished_find(zp_vent_jobs_finished(jobs), "job-1");
    zp_vent_jobs_destroy(&jobs);
}

static void test_alloc_failures_in_jobs(void)
{
    TEST_CHECK(failalloc_sweep(s_jobs_scenario, NULL) >= 10);
}

static const test_case_t tests[] = {
    {"test_lifecycle_walks_open_close_done",
     test_lifecycle_walks_open_close_done},
    {"test_illegal_transitions_are_refused",
     test_illegal_transitions_are_refused},
    {"test_transition_table", test_transition_table},
    {"test_sink_restart_reopens_a_closing_job",
     test_sink_restart_reopens_a_closing_job},
    {"test_input_done_by_source", test_input_done_by_source},
    {"test_list_find_and_slots", test_list_find_and_slots},
    {"test_done_jobs_are_remembered_refused_ones_are_not",
     test_done_jobs_are_remembered_refused_ones_are_not},
    {"test_many_jobs_are_found_by_id", test_many_jobs_are_found_by_id},
    {"test_numbered_batches", test_numbered_batches},
    {"test_jobs_are_counted_per_producer_connection",
     test_jobs_are_counted_per_producer_connection},
    {"test_failure_records_queue_and_clear",
     test_failure_records_queue_and_clear},
    {"test_colliding_ids_are_found_whatever_leaves_first",
     test_colliding_ids_are_found_whatever_leaves_first},
    {"test_alloc_failures_in_jobs", test_alloc_failures_in_jobs},
    {NULL, NULL},
};
TEST_MAIN(tests)
