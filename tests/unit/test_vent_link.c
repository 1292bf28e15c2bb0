/* Tests for vent_link: what the ventilator sends the sink about a job and
 * when, what a bare Ack means in each state, the JobStatus that ends a
 * job, and a restarted sink. */
#include "failalloc.h"
#include "test.h"
#include "vent_link.h"

#define S_SEC 1000000ull

static zp_vent_job_t *s_job(zp_vent_jobs_t *jobs, bool input_done)
{
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    j->input_closed = input_done;
    return j;
}

static void test_open_is_resent_until_acknowledged(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = s_job(jobs, false);
    uint64_t t0 = 100 * S_SEC;
    zp_vent_link_sent(j, ZP_VENT_SEND_OPEN, t0);
    TEST_EQ_INT(zp_vent_link_due(j, t0 + S_SEC - 1, true), 0);
    TEST_EQ_INT(zp_vent_link_due(j, t0 + S_SEC, true), ZP_VENT_SEND_OPEN);
    /* Opened: then a keepalive every 2 s, nothing else while input goes
     * on. */
    TEST_EQ_INT(zp_vent_link_on_ack(j, true, t0), ZP_VENT_ACK_OPENED);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPEN);
    TEST_EQ_INT(zp_vent_link_due(j, t0 + S_SEC, true), 0);
    TEST_EQ_INT(zp_vent_link_due(j, t0 + 2 * S_SEC, true), ZP_VENT_SEND_OPEN);
    /* A second ack (a keepalive's) means nothing. */
    TEST_EQ_INT(zp_vent_link_on_ack(j, true, t0), ZP_VENT_ACK_NOTHING);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPEN);
    zp_vent_jobs_destroy(&jobs);
}

static void test_close_then_status_until_done(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = s_job(jobs, false);
    uint64_t t = 100 * S_SEC;
    zp_vent_link_sent(j, ZP_VENT_SEND_OPEN, t);
    zp_vent_link_on_ack(j, true, t);
    j->has_input = false;
    j->input_closed = true; /* the producer closed it */
    unsigned what = zp_vent_link_due(j, t, true);
    TEST_EQ_INT(what, ZP_VENT_SEND_CLOSE); /* no "input ended" for a producer */
    zp_vent_link_sent(j, what, t);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_CLOSING);
    TEST_EQ_INT(zp_vent_link_due(j, t + S_SEC - 1, true), 0);
    TEST_EQ_INT(zp_vent_link_due(j, t + S_SEC, true), ZP_VENT_SEND_CLOSE);
    /* A JobStatus before the close is acknowledged changes nothing. */
    TEST_CHECK(!zp_vent_link_on_status(j, true, 0));
    /* The ack in CLOSING is the close's. */
    TEST_EQ_INT(zp_vent_link_on_ack(j, true, t + 10), ZP_VENT_ACK_CLOSED);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_CLOSED);
    TEST_EQ_INT(zp_vent_link_due(j, t + 10 + S_SEC, true), 0);
    TEST_EQ_INT(zp_vent_link_due(j, t + 10 + 2 * S_SEC, true),
                ZP_VENT_SEND_OPEN | ZP_VENT_SEND_STATUS);
    TEST_CHECK(!zp_vent_link_on_status(j, false, 0)); /* still running */
    TEST_CHECK(zp_vent_link_on_status(j, true, 4));
    TEST_EQ_INT(j->state, ZP_VENT_JOB_DONE);
    TEST_EQ_INT(j->failed, 4);
    TEST_EQ_INT(zp_vent_link_due(j, t + 100 * S_SEC, true), 0); /* over */
    TEST_EQ_INT(zp_vent_link_on_ack(j, true, t), ZP_VENT_ACK_NOTHING);
    zp_vent_jobs_destroy(&jobs);
}

static void test_file_job_says_its_input_ended(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = s_job(jobs, false);
    j->has_input = true;
    j->in.eof = true;
    zp_vent_link_on_ack(j, true, 0);
    uint64_t now = 10 * S_SEC;
    j->last_open_us = now;
    TEST_EQ_INT(zp_vent_link_due(j, now, true),
                ZP_VENT_SEND_CLOSE | ZP_VENT_SAY_CLOSING);
    zp_vent_link_sent(j, ZP_VENT_SEND_CLOSE, now);
    TEST_EQ_INT(zp_vent_link_due(j, now + S_SEC, true), ZP_VENT_SEND_CLOSE);
    zp_vent_jobs_destroy(&jobs);
}

static void test_refusal_ends_the_job_from_any_state(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = s_job(jobs, true);
    TEST_EQ_INT(zp_vent_link_on_ack(j, false, 0), ZP_VENT_ACK_REFUSED);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_REFUSED);
    TEST_CHECK(zp_vent_job_finished(j));
    TEST_EQ_INT(zp_vent_link_on_ack(j, false, 0), ZP_VENT_ACK_NOTHING);
    /* An ok after a refusal does not reopen it. */
    TEST_EQ_INT(zp_vent_link_on_ack(j, true, 0), ZP_VENT_ACK_NOTHING);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_REFUSED);
    zp_vent_job_t *k = zp_vent_jobs_add(jobs, "job-2", "echo");
    k->input_closed = true;
    zp_vent_link_on_ack(k, true, 0);
    zp_vent_link_sent(k, ZP_VENT_SEND_CLOSE, 0);
    TEST_EQ_INT(zp_vent_link_on_ack(k, false, 0), ZP_VENT_ACK_REFUSED);
    zp_vent_jobs_destroy(&jobs);
}

static void test_sink_restart_closes_again(void)
{
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = s_job(jobs, true);
    zp_vent_link_on_ack(j, true, 0);
    zp_vent_link_sent(j, ZP_VENT_SEND_CLOSE, 5 * S_SEC);
    zp_vent_link_on_ack(j, true, 5 * S_SEC);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_CLOSED);
    zp_vent_link_restarted(j);
    TEST_EQ_INT(j->state, ZP_VENT_JOB_OPEN);
    TEST_CHECK(zp_vent_link_due(j, 5 * S_SEC, true) & ZP_VENT_SEND_CLOSE);
    /* Its JobOpen goes once, keepalive turn or not, so that the new sink
     * learns who opened it; then only on a keepalive turn. */
    TEST_CHECK(zp_vent_link_due(j, 5 * S_SEC, false) & ZP_VENT_SEND_OPEN);
    zp_vent_link_sent(j, ZP_VENT_SEND_OPEN, 5 * S_SEC);
    TEST_CHECK(!(zp_vent_link_due(j, 20 * S_SEC, false) & ZP_VENT_SEND_OPEN));
    TEST_CHECK(zp_vent_link_due(j, 20 * S_SEC, true) & ZP_VENT_SEND_OPEN);
    /* An opening job stays opening. */
    zp_vent_job_t *k = zp_vent_jobs_add(jobs, "job-2", "echo");
    zp_vent_link_restarted(k);
    TEST_EQ_INT(k->state, ZP_VENT_JOB_OPENING);
    zp_vent_jobs_destroy(&jobs);
}

static void test_sink_instance_change_is_a_restart(void)
{
    zp_vent_link_t l = {0};
    TEST_CHECK(!zp_vent_link_instance(&l, NULL));
    TEST_CHECK(!zp_vent_link_instance(&l, ""));
    TEST_CHECK(!zp_vent_link_instance(&l, "a")); /* the first one learnt */
    TEST_CHECK(!zp_vent_link_instance(&l, "a"));
    TEST_CHECK(!zp_vent_link_instance(&l, ""));
    TEST_CHECK(zp_vent_link_instance(&l, "b"));
    TEST_EQ_STR(l.sink_instance, "b");
    TEST_CHECK(!zp_vent_link_instance(&l, "b"));
    zp_vent_link_free(&l);
    TEST_CHECK(l.sink_instance == NULL);
}

/* Out of memory learning a new instance: the restart is still reported,
 * and again at the next Ack (sending everything twice is safe; missing a
 * restart would leave tasks the new sink never had). */
static void test_instance_change_out_of_memory_is_not_forgotten(void)
{
    zp_vent_link_t l = {0};
    TEST_CHECK(!zp_vent_link_instance(&l, "a"));
    failalloc_arm(1);
    bool r = zp_vent_link_instance(&l, "b");
    TEST_CHECK(failalloc_disarm());
    TEST_CHECK(r);
    TEST_EQ_STR(l.sink_instance, "a");
    TEST_CHECK(zp_vent_link_instance(&l, "b"));
    TEST_EQ_STR(l.sink_instance, "b");
    TEST_CHECK(!zp_vent_link_instance(&l, "b"));
    zp_vent_link_free(&l);
}

static const test_case_t tests[] = {
    {"test_instance_change_out_of_memory_is_not_forgotten",
     test_instance_change_out_of_memory_is_not_forgotten},
    {"test_open_is_resent_until_acknowledged",
     test_open_is_resent_until_acknowledged},
    {"test_close_then_status_until_done", test_close_then_status_until_done},
    {"test_file_job_says_its_input_ended", test_file_job_says_its_input_ended},
    {"test_refusal_ends_the_job_from_any_state",
     test_refusal_ends_the_job_from_any_state},
    {"test_sink_restart_closes_again", test_sink_restart_closes_again},
    {"test_sink_instance_change_is_a_restart",
     test_sink_instance_change_is_a_restart},
    {NULL, NULL},
};
TEST_MAIN(tests)
