/* Tests for vent_acks: the queue of Acks waiting for the journal's sync. */
#include "failalloc.h"
#include "test.h"
#include "vent_acks.h"

#include <string.h>

static void test_queue_keeps_each_answer_in_order(void)
{
    zp_vent_acks_t q = {0};
    TEST_EQ_INT(zp_vent_acks_push(&q, "p1", 2, "job-1", true, NULL, 0, 10, 1),
                0);
    TEST_EQ_INT(zp_vent_acks_push(&q, "p2", 2, "job-2", false, "why", 0, 0, 4),
                0);
    for (int i = 0; i < 100; i++)
        TEST_EQ_INT(zp_vent_acks_push(&q, "p1", 2, "job-1", true, NULL,
                                      (uint64_t)i * 10, 10, (uint64_t)i + 2),
                    0);
    TEST_EQ_INT(q.n, 102);
    TEST_EQ_STR(q.items[0].job, "job-1");
    TEST_CHECK(q.items[0].error == NULL && q.items[0].ok);
    TEST_EQ_INT(q.items[0].accepted, 10);
    TEST_EQ_STR(q.items[1].error, "why");
    TEST_EQ_INT(q.items[1].seq, 4);
    TEST_CHECK(memcmp(q.items[1].rid, "p2", 2) == 0 && q.items[1].rid_len == 2);
    TEST_EQ_INT(q.items[101].first, 990);
    zp_vent_acks_clear(&q);
    TEST_EQ_INT(q.n, 0);
    TEST_EQ_INT(zp_vent_acks_push(&q, "p", 1, NULL, true, NULL, 0, 0, 0), 0);
    TEST_EQ_STR(q.items[0].job, "");
    zp_vent_acks_free(&q);
    TEST_CHECK(q.items == NULL && q.n == 0);
}

static void test_a_routing_id_too_long_is_refused(void)
{
    zp_vent_acks_t q = {0};
    char rid[300] = {0};
    TEST_EQ_INT(
        zp_vent_acks_push(&q, rid, sizeof rid, "j", true, NULL, 0, 0, 0), -1);
    TEST_EQ_INT(q.n, 0);
    zp_vent_acks_free(&q);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_vent_acks_t q = {0};
    for (int i = 0; i < 40; i++)
        zp_vent_acks_push(&q, "p", 1, "job", i % 2, i % 2 ? NULL : "no", 0, 1,
                          (uint64_t)i);
    zp_vent_acks_free(&q);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 3);
}

static const test_case_t tests[] = {
    {"test_queue_keeps_each_answer_in_order",
     test_queue_keeps_each_answer_in_order},
    {"test_a_routing_id_too_long_is_refused",
     test_a_routing_id_too_long_is_refused},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
TEST_MAIN(tests)
