/* Tests for vent_quarantine: the strike rule (two expiries in a row, a
 * commit between starts again, one stall is one strike), and the refused
 * workers: matched by id or by host and pid, backoff doubling, answered
 * at most every few seconds, forgotten when the time is up. */
#include "failalloc.h"
#include "test.h"
#include "vent_quarantine.h"

#define S 1000000u /* one second in µs */

static void test_two_strikes_in_a_row_drain(void)
{
    zp_vent_strikes_t s = {0};
    /* Tasks sent at 1 s expire at 6 s: strike 1. */
    TEST_CHECK(!zp_vent_strike(&s, 6 * S, 1 * S, 0));
    TEST_EQ_INT(s.strikes, 1);
    /* More of the same stall (sent before the strike was seen): the same
     * strike, however many scans find them. */
    TEST_CHECK(!zp_vent_strike(&s, 6 * S + 100000, 2 * S, 0));
    TEST_CHECK(!zp_vent_strike(&s, 7 * S, 6 * S, 0));
    TEST_EQ_INT(s.strikes, 1);
    /* Tasks it was given after: strike 2, drained. */
    TEST_CHECK(zp_vent_strike(&s, 12 * S, 6 * S + 1, 0));
    TEST_EQ_INT(s.strikes, 2);
}

static void test_a_commit_between_starts_again(void)
{
    zp_vent_strikes_t s = {0};
    TEST_CHECK(!zp_vent_strike(&s, 6 * S, 1 * S, 10));
    /* It delivered 5 results since: a slow worker, not a guilty one. */
    TEST_CHECK(!zp_vent_strike(&s, 12 * S, 7 * S, 15));
    TEST_EQ_INT(s.strikes, 1);
    TEST_CHECK(zp_vent_strike(&s, 18 * S, 13 * S, 15));
}

static void test_refused_by_id_or_by_host_and_pid(void)
{
    zp_vent_quarantine_t *q = zp_vent_quarantine_new(30 * S, 3600ull * S);
    TEST_CHECK(zp_vent_quarantine_enabled(q));
    TEST_EQ_INT(zp_vent_quarantine_add(q, "w1", "hostA", 100, "r1", 2, S),
                30 * S);
    TEST_EQ_INT(zp_vent_quarantine_total(q), 1);
    TEST_EQ_INT(zp_vent_quarantine_active(q, 2 * S), 1);
    uint64_t left = 0;
    bool answer = false;
    /* Its restart: same id, new pid. */
    TEST_CHECK(zp_vent_quarantine_refused(q, "w1", "hostA", 101, "r2", 2,
                                          11 * S, &left, &answer));
    TEST_EQ_INT(left, 20 * S);
    TEST_CHECK(answer);
    /* Again on that connection 1 s later: not answered (bye for bye
     * would loop). */
    TEST_CHECK(zp_vent_quarantine_refused(q, "w1", "hostA", 101, "r2", 2,
                                          12 * S, &left, &answer));
    TEST_CHECK(!answer);
    /* The same process under a new id, a new connection: told at once. */
    TEST_CHECK(zp_vent_quarantine_refused(q, "w9", "hostA", 100, "r3", 2,
                                          12 * S, &left, &answer));
    TEST_CHECK(answer);
    TEST_EQ_INT(zp_vent_quarantine_refusals(q), 3);
    /* The connection refused last is known; its heartbeats are dropped. */
    TEST_CHECK(zp_vent_quarantine_has_rid(q, "r3", 2, 12 * S));
    TEST_CHECK(!zp_vent_quarantine_has_rid(q, "r4", 2, 12 * S));
    /* Another worker on the same host, and an unnamed one, get in. */
    TEST_CHECK(!zp_vent_quarantine_refused(q, "w2", "hostA", 200, "r5", 2,
                                           12 * S, &left, &answer));
    TEST_CHECK(!zp_vent_quarantine_refused(q, "?", "", 0, "r6", 2, 12 * S,
                                           &left, &answer));
    /* Answered again once ZP_VENT_REFUSE_ANSWER_US passed. */
    TEST_CHECK(zp_vent_quarantine_refused(q, "w1", "", 0, "r3", 2,
                                          12 * S + ZP_VENT_REFUSE_ANSWER_US - 1,
                                          &left, &answer));
    TEST_CHECK(!answer);
    TEST_CHECK(zp_vent_quarantine_refused(q, "w1", "", 0, "r3", 2,
                                          12 * S + ZP_VENT_REFUSE_ANSWER_US,
                                          &left, &answer));
    TEST_CHECK(answer);
    /* Time is up: welcome back, and nothing is in force. */
    TEST_CHECK(!zp_vent_quarantine_refused(q, "w1", "hostA", 101, "r2", 2,
                                           31 * S, &left, &answer));
    TEST_EQ_INT(zp_vent_quarantine_active(q, 31 * S), 0);
    TEST_CHECK(!zp_vent_quarantine_has_rid(q, "r2", 2, 31 * S));
    zp_vent_quarantine_destroy(&q);
    TEST_CHECK(q == NULL);
}

static void test_backoff_doubles_up_to_the_cap(void)
{
    zp_vent_quarantine_t *q = zp_vent_quarantine_new(30 * S, 100 * S);
    TEST_EQ_INT(zp_vent_quarantine_add(q, "w1", "h", 1, "r", 1, 0), 30 * S);
    /* Back after its time, guilty again (a new pid: it restarted). */
    TEST_EQ_INT(zp_vent_quarantine_add(q, "w1", "h", 2, "r", 1, 40 * S),
                60 * S);
    TEST_EQ_INT(zp_vent_quarantine_add(q, "w1", "h", 3, "r", 1, 200 * S),
                100 * S);
    TEST_EQ_INT(zp_vent_quarantine_total(q), 3);
    TEST_EQ_INT(zp_vent_quarantine_active(q, 250 * S), 1);
    uint64_t left;
    bool answer;
    /* The entry follows the newest process's pid. */
    TEST_CHECK(zp_vent_quarantine_refused(q, "x", "h", 3, "r", 1, 250 * S,
                                          &left, &answer));
    zp_vent_quarantine_destroy(&q);
}

static void test_off_never_refuses(void)
{
    zp_vent_quarantine_t *q = zp_vent_quarantine_new(0, 0);
    TEST_CHECK(!zp_vent_quarantine_enabled(q));
    TEST_EQ_INT(zp_vent_quarantine_add(q, "w1", "h", 1, "r", 1, 0), 0);
    uint64_t left;
    bool answer;
    TEST_CHECK(!zp_vent_quarantine_refused(q, "w1", "h", 1, "r", 1, 1, &left,
                                           &answer));
    TEST_EQ_INT(zp_vent_quarantine_total(q), 0);
    zp_vent_quarantine_destroy(&q);
    zp_vent_quarantine_destroy(&q); /* NULL-safe */
}

static void test_full_list_forgets_the_oldest(void)
{
    zp_vent_quarantine_t *q = zp_vent_quarantine_new(S, S);
    char id[32];
    for (int i = 0; i <= ZP_VENT_QUARANTINE_MAX; i++) {
        snprintf(id, sizeof id, "w%d", i);
        TEST_CHECK(zp_vent_quarantine_add(q, id, "h", 1000 + i, "r", 1, 0));
    }
    TEST_EQ_INT(zp_vent_quarantine_active(q, 0), ZP_VENT_QUARANTINE_MAX);
    uint64_t left;
    bool answer;
    TEST_CHECK(
        !zp_vent_quarantine_refused(q, "w0", "", 0, "r", 1, 0, &left, &answer));
    TEST_CHECK(
        zp_vent_quarantine_refused(q, "w1", "", 0, "r", 1, 0, &left, &answer));
    zp_vent_quarantine_destroy(&q);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_vent_quarantine_t *q = zp_vent_quarantine_new(S, 4 * S);
    if (!q)
        return;
    zp_vent_quarantine_add(q, "w1", "h", 1, "r", 1, 0);
    zp_vent_quarantine_add(q, "w1", "h2", 2, "r", 1, 2 * S);
    zp_vent_quarantine_add(q, "w2", "h", 3, "r", 1, 2 * S);
    uint64_t left;
    bool answer;
    zp_vent_quarantine_refused(q, "w2", "h", 3, "r", 1, 2 * S, &left, &answer);
    zp_vent_quarantine_destroy(&q);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 5);
}

static const test_case_t tests[] = {
    {"test_two_strikes_in_a_row_drain", test_two_strikes_in_a_row_drain},
    {"test_a_commit_between_starts_again", test_a_commit_between_starts_again},
    {"test_refused_by_id_or_by_host_and_pid",
     test_refused_by_id_or_by_host_and_pid},
    {"test_backoff_doubles_up_to_the_cap", test_backoff_doubles_up_to_the_cap},
    {"test_off_never_refuses", test_off_never_refuses},
    {"test_full_list_forgets_the_oldest", test_full_list_forgets_the_oldest},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};
TEST_MAIN(tests)
