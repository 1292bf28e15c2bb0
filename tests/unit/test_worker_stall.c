/* Tests for wk_stall: when a running task is far beyond usual. */
#include "test.h"
#include "wk_stall.h"

static void test_floor_holds_with_no_samples(void)
{
    zp_wk_stall_t s;
    zp_wk_stall_init(&s, 2000);
    TEST_EQ_INT(zp_wk_stall_limit_us(&s), 2000000);
    TEST_CHECK(!zp_wk_stall_overdue(&s, 1000, 1000 + 2000000));
    TEST_CHECK(zp_wk_stall_overdue(&s, 1000, 1000 + 2000001));
}

static void test_ten_times_the_p99_of_slow_tasks(void)
{
    zp_wk_stall_t s;
    zp_wk_stall_init(&s, 100);
    for (int i = 0; i < 200; i++) /* 198 fast calls, two of 50 ms */
        zp_wk_stall_observe(&s, i % 100 == 99 ? 50000 : 1000);
    /* p99 of 200: the 3rd largest, 1 ms; two outliers do not lift it. */
    TEST_EQ_INT(zp_wk_stall_limit_us(&s), 100000);
    for (int i = 0; i < 200; i++)
        zp_wk_stall_observe(&s, 300000); /* the usual is now 300 ms */
    TEST_EQ_INT(zp_wk_stall_limit_us(&s), 3000000);
    TEST_CHECK(!zp_wk_stall_overdue(&s, 0, 2999999));
    TEST_CHECK(zp_wk_stall_overdue(&s, 0, 3000001));
}

static void test_zero_floor_never_stalls(void)
{
    zp_wk_stall_t s;
    zp_wk_stall_init(&s, 0);
    zp_wk_stall_observe(&s, 1);
    TEST_EQ_INT(zp_wk_stall_limit_us(&s), 0);
    TEST_CHECK(!zp_wk_stall_overdue(&s, 0, UINT64_MAX / 2));
}

static void test_ring_keeps_only_recent_calls(void)
{
    zp_wk_stall_t s;
    zp_wk_stall_init(&s, 1);
    for (unsigned i = 0; i < ZP_WK_STALL_SAMPLES; i++)
        zp_wk_stall_observe(&s, 1000000); /* old slow calls */
    for (unsigned i = 0; i < ZP_WK_STALL_SAMPLES; i++)
        zp_wk_stall_observe(&s, 10);
    TEST_EQ_INT(zp_wk_stall_limit_us(&s), 1000);
}

static const test_case_t tests[] = {
    {"test_floor_holds_with_no_samples", test_floor_holds_with_no_samples},
    {"test_ten_times_the_p99_of_slow_tasks",
     test_ten_times_the_p99_of_slow_tasks},
    {"test_zero_floor_never_stalls", test_zero_floor_never_stalls},
    {"test_ring_keeps_only_recent_calls", test_ring_keeps_only_recent_calls},
    {NULL, NULL},
};

TEST_MAIN(tests)
