/* Tests for wk_credit: sizing a worker's credit from measured task times
 * and granting it as tasks finish. */
#include "test.h"
#include "wk_credit.h"

static void test_starts_at_eight_within_the_window(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    TEST_EQ_INT(c.target, 8);
    zp_wk_credit_init(&c, 3, 20);
    TEST_EQ_INT(c.target, 3);
    zp_wk_credit_init(&c, 0, 20);
    TEST_EQ_INT(c.target, 1);
}

static void test_fast_tasks_get_a_bigger_window(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    /* 100 µs tasks: 20 ms of work is about 200 of them. */
    zp_wk_credit_observe(&c, 100, 10, 50);
    TEST_CHECK(c.target >= 195 && c.target <= 200);
    /* Faster still: 10 µs, measured for a while: about 2,000. */
    zp_wk_credit_observe(&c, 10, 10, 500);
    TEST_CHECK(c.target >= 1900 && c.target <= 2000);
}

static void test_slow_tasks_get_a_smaller_window(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    zp_wk_credit_observe(&c, 100, 10, 100);
    uint64_t fast = c.target;
    /* 5 ms tasks after them: the average moves, the target shrinks. */
    zp_wk_credit_observe(&c, 5000, 10, 200);
    TEST_CHECK(c.target < fast);
    TEST_CHECK(c.target <= 5);
    /* 1 s tasks: never below two (one running, one on the wire). */
    zp_wk_credit_observe(&c, 1000000, 10, 200);
    TEST_EQ_INT(c.target, ZP_WK_MIN_CREDIT);
}

static void test_never_over_the_window(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 100, 20);
    zp_wk_credit_observe(&c, 0, 0, 1000); /* empty tasks */
    TEST_EQ_INT(c.target, 100);
}

static void test_large_payloads_cap_the_target(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    /* Fast, but 16 MiB each: at most about 64 MiB held. */
    zp_wk_credit_observe(&c, 1, 16u << 20, 1);
    TEST_CHECK(c.target <= 4);
    TEST_CHECK(c.target >= ZP_WK_MIN_CREDIT);
}

static void test_grants_as_tasks_finish(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    zp_wk_credit_observe(&c, 199, 10, 1); /* target 100 */
    TEST_EQ_INT(c.target, 100);
    /* Nothing outstanding: the whole target at once. */
    TEST_EQ_INT(zp_wk_credit_due(&c), 100);
    zp_wk_credit_granted(&c, 100);
    TEST_EQ_INT(zp_wk_credit_due(&c), 0);
    zp_wk_credit_received(&c, 100, true);
    /* A few finish: below a quarter of the target, wait. */
    zp_wk_credit_done(&c, 24);
    TEST_EQ_INT(zp_wk_credit_due(&c), 0);
    /* A quarter: top up to the target, never beyond. */
    zp_wk_credit_done(&c, 1);
    TEST_EQ_INT(zp_wk_credit_due(&c), 25);
    zp_wk_credit_granted(&c, 25);
    TEST_EQ_INT(c.granted - c.completed, c.target);
    TEST_EQ_INT(zp_wk_credit_due(&c), 0);
}

static void test_tops_up_when_nothing_is_outstanding(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    zp_wk_credit_observe(&c, 1000000, 10, 1); /* target 2 */
    zp_wk_credit_granted(&c, 1);
    TEST_EQ_INT(zp_wk_credit_due(&c), 1); /* deficit 1 >= threshold 1 */
    zp_wk_credit_done(&c, 1);
    TEST_EQ_INT(zp_wk_credit_due(&c), 2);
}

static void test_hello_credit_is_the_target_less_what_is_held(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    TEST_EQ_INT(zp_wk_credit_hello(&c), 8);
    zp_wk_credit_received(&c, 5, true);
    TEST_EQ_INT(zp_wk_credit_hello(&c), 3);
    zp_wk_credit_hello_sent(&c, 3);
    TEST_EQ_INT(c.granted, 8);
    zp_wk_credit_received(&c, 10, true);
    TEST_EQ_INT(zp_wk_credit_hello(&c), 0);
}

static void test_a_second_hello_never_stops_the_grants(void)
{
    /* Two hellos heard by a restarted ventilator: it sent tasks against
     * the first's credit and then the second's. More arrive than this
     * worker counts as granted; once they are done it must grant again
     * (outstanding used to wrap below zero and stop every grant). */
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 100, 20);
    zp_wk_credit_hello_sent(&c, zp_wk_credit_hello(&c)); /* 8 */
    zp_wk_credit_hello_sent(&c, zp_wk_credit_hello(&c)); /* 8 again */
    zp_wk_credit_received(&c, 16, true);                 /* 8 for each hello */
    zp_wk_credit_done(&c, 16);
    TEST_EQ_INT(zp_wk_credit_held(&c), 0);
    TEST_CHECK(zp_wk_credit_due(&c) > 0);
    TEST_CHECK(zp_wk_credit_due(&c) <= c.target);
}

static void test_arrivals_beyond_the_window_are_violations(void)
{
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 10, 20);
    zp_wk_arrival_t a = zp_wk_credit_received(&c, 6, true);
    TEST_CHECK(a.new_max);
    TEST_EQ_INT(a.held, 6);
    TEST_EQ_INT(a.over, 0);
    a = zp_wk_credit_received(&c, 6, true);
    TEST_EQ_INT(a.over, 2);
    TEST_EQ_INT(c.violations, 1);
    TEST_EQ_INT(c.max_held, 12);
    zp_wk_credit_done(&c, 12);
    a = zp_wk_credit_received(&c, 1, true);
    TEST_CHECK(!a.new_max);
    TEST_EQ_INT(zp_wk_credit_held(&c), 1);
    /* Push dispatch has no window to break. */
    a = zp_wk_credit_received(&c, 50, false);
    TEST_EQ_INT(a.over, 0);
    TEST_EQ_INT(c.violations, 1);
}

/* Heartbeats one interval after the last message, whenever the worker
 * happens to wake between; a heartbeat that could not be sent is tried
 * again half an interval later, not in a loop. */
static void test_heartbeat_due_one_interval_after_the_last_message(void)
{
    uint64_t sent = 5000000;
    /* Woken 999 ms after the last: due 1 ms later, not 500 ms later. */
    TEST_EQ_INT(zp_wk_heartbeat_due_us(sent, 1000, sent + 999000),
                sent + 1000000);
    TEST_EQ_INT(zp_wk_heartbeat_due_us(sent, 1000, sent + 1000),
                sent + 1000000);
    /* Overdue (the send failed): half an interval from now. */
    TEST_EQ_INT(zp_wk_heartbeat_due_us(sent, 1000, sent + 1000000),
                sent + 1000000 + 501000);
    TEST_EQ_INT(zp_wk_heartbeat_due_us(sent, 1000, sent + 7000000),
                sent + 7000000 + 501000);
    TEST_EQ_INT(zp_wk_heartbeat_due_us(0, 10, 0), 10000);
}

/* 32 executors on 2 cores: a 1 ms task takes 16 ms, 15 of them waiting.
 * Sized by the 16 ms it would hold 2 tasks and ask for more after each. */
static void test_busy_time_leaves_out_the_wait_for_a_cpu(void)
{
    TEST_EQ_INT(zp_wk_credit_busy_us(16000, 15000), 1000);
    TEST_EQ_INT(zp_wk_credit_busy_us(16000, 0), 16000);
    /* A wait longer than the tasks: never below a sixteenth. */
    TEST_EQ_INT(zp_wk_credit_busy_us(16000, 99000), 1000);
    TEST_EQ_INT(zp_wk_credit_busy_us(0, 5), 0);
    zp_wk_credit_t c;
    zp_wk_credit_init(&c, 4096, 20);
    zp_wk_credit_observe(&c, zp_wk_credit_busy_us(16000, 15000), 8, 1);
    TEST_EQ_INT(c.target, 19); /* 20 ms of 1 ms tasks, not 2 */
}

static const test_case_t tests[] = {
    {"test_busy_time_leaves_out_the_wait_for_a_cpu",
     test_busy_time_leaves_out_the_wait_for_a_cpu},
    {"test_heartbeat_due_one_interval_after_the_last_message",
     test_heartbeat_due_one_interval_after_the_last_message},
    {"test_a_second_hello_never_stops_the_grants",
     test_a_second_hello_never_stops_the_grants},
    {"test_starts_at_eight_within_the_window",
     test_starts_at_eight_within_the_window},
    {"test_fast_tasks_get_a_bigger_window",
     test_fast_tasks_get_a_bigger_window},
    {"test_slow_tasks_get_a_smaller_window",
     test_slow_tasks_get_a_smaller_window},
    {"test_never_over_the_window", test_never_over_the_window},
    {"test_large_payloads_cap_the_target", test_large_payloads_cap_the_target},
    {"test_grants_as_tasks_finish", test_grants_as_tasks_finish},
    {"test_tops_up_when_nothing_is_outstanding",
     test_tops_up_when_nothing_is_outstanding},
    {"test_hello_credit_is_the_target_less_what_is_held",
     test_hello_credit_is_the_target_less_what_is_held},
    {"test_arrivals_beyond_the_window_are_violations",
     test_arrivals_beyond_the_window_are_violations},
    {NULL, NULL},
};

TEST_MAIN(tests)
