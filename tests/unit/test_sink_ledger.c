/* Tests for sink_ledger: dedup, the retry decision, completion, counters
 * and the pending id lists of one job. */
#include "failalloc.h"
#include "sink_ledger.h"
#include "test.h"

#include <stdlib.h>

static void test_dedup_and_completion(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_EQ_INT(l.state, ZP_JOB_OPEN);
    for (uint64_t t = 0; t < 5; t++)
        TEST_EQ_INT(zp_ledger_result(&l, t, t != 3, false, 1),
                    ZP_LEDGER_COMMIT);
    TEST_EQ_INT(zp_ledger_result(&l, 2, true, false, 1), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(zp_ledger_result(&l, 3, true, false, 2), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(l.done, 5);
    TEST_EQ_INT(l.succeeded, 4);
    TEST_EQ_INT(l.failed, 1);
    TEST_EQ_INT(l.duplicates, 2);
    TEST_CHECK(zp_ledger_has(&l, 4) && !zp_ledger_has(&l, 5));
    /* Not complete while open, nor while a task is missing. */
    TEST_CHECK(!zp_ledger_complete(&l));
    TEST_EQ_INT(zp_ledger_close(&l, 6), ZP_LEDGER_CLOSED);
    TEST_EQ_INT(l.state, ZP_JOB_CLOSED);
    TEST_CHECK(!zp_ledger_complete(&l));
    TEST_EQ_INT(zp_ledger_finish(&l), -1);
    TEST_EQ_INT(l.state, ZP_JOB_CLOSED);
    TEST_EQ_INT(zp_ledger_result(&l, 5, true, false, 1), ZP_LEDGER_COMMIT);
    TEST_CHECK(zp_ledger_complete(&l));
    TEST_EQ_INT(zp_ledger_finish(&l), 0);
    TEST_EQ_INT(l.state, ZP_JOB_DONE);
    TEST_CHECK(l.has.words == NULL); /* freed once done */
    TEST_EQ_INT(zp_ledger_finish(&l), -1);
    /* Done: every id below the total has its record; late copies are
     * duplicates, ids past it out of range. */
    TEST_CHECK(zp_ledger_has(&l, 0) && zp_ledger_has(&l, 5));
    TEST_CHECK(!zp_ledger_has(&l, 6) && !zp_ledger_has(&l, 1000));
    TEST_EQ_INT(zp_ledger_result(&l, 0, true, false, 1), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(zp_ledger_result(&l, 4, false, true, 1), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(zp_ledger_result(&l, 6, true, false, 1),
                ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(l.duplicates, 4);
    TEST_EQ_INT(l.done, 6);
    zp_ledger_fini(&l);
}

static void test_empty_job_completes_at_close(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_EQ_INT(zp_ledger_close(&l, 0), ZP_LEDGER_CLOSED);
    TEST_CHECK(zp_ledger_complete(&l));
    TEST_EQ_INT(zp_ledger_finish(&l), 0);
    zp_ledger_fini(&l);
}

static void test_retry_below_max_attempts_final_at_max(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_EQ_INT(l.max_attempts, 3);
    TEST_EQ_INT(zp_ledger_result(&l, 7, false, true, 1), ZP_LEDGER_RETRY);
    TEST_EQ_INT(zp_ledger_result(&l, 7, false, true, 2), ZP_LEDGER_RETRY);
    TEST_EQ_INT(l.retries, 2);
    TEST_EQ_INT(l.done, 0);
    TEST_CHECK(!zp_ledger_has(&l, 7));
    /* At the cap the failure is the record. */
    TEST_EQ_INT(zp_ledger_result(&l, 7, false, true, 3), ZP_LEDGER_COMMIT);
    TEST_EQ_INT(l.failed, 1);
    TEST_EQ_INT(l.retries, 2);
    /* A later retryable failure of a task with its record: a duplicate. */
    TEST_EQ_INT(zp_ledger_result(&l, 7, false, true, 1), ZP_LEDGER_DUPLICATE);
    /* Not retryable: final at once. */
    TEST_EQ_INT(zp_ledger_result(&l, 8, false, false, 1), ZP_LEDGER_COMMIT);
    /* Attempt 0 counts as the first, listed as 1. */
    TEST_EQ_INT(zp_ledger_result(&l, 9, false, true, 0), ZP_LEDGER_RETRY);
    zp_ledger_pending_t p = zp_ledger_pending(&l);
    TEST_EQ_INT(p.n_retry, 3);
    TEST_EQ_INT(p.retry_ids[0], 7);
    TEST_EQ_INT(p.retry_attempts[0], 1);
    TEST_EQ_INT(p.retry_ids[1], 7);
    TEST_EQ_INT(p.retry_attempts[1], 2);
    TEST_EQ_INT(p.retry_ids[2], 9);
    TEST_EQ_INT(p.retry_attempts[2], 1);
    TEST_EQ_INT(p.n_commit, 0); /* commits are listed once written */
    zp_ledger_fini(&l);
}

static void test_max_attempts_from_the_opener(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    zp_ledger_set_max_attempts(&l, 0); /* 0 keeps the default */
    TEST_EQ_INT(l.max_attempts, 3);
    zp_ledger_set_max_attempts(&l, 1);
    TEST_EQ_INT(zp_ledger_result(&l, 0, false, true, 1), ZP_LEDGER_COMMIT);
    zp_ledger_set_max_attempts(&l, 5);
    TEST_EQ_INT(zp_ledger_result(&l, 1, false, true, 4), ZP_LEDGER_RETRY);
    TEST_EQ_INT(zp_ledger_result(&l, 1, false, true, 5), ZP_LEDGER_COMMIT);
    zp_ledger_fini(&l);
}

static void test_out_of_range_before_and_after_close(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_EQ_INT(
        zp_ledger_result(&l, ZP_LEDGER_MAX_OPEN_TASK_ID, true, false, 1),
        ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(zp_ledger_result(&l, UINT64_MAX, false, true, 1),
                ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(l.retries, 0);
    TEST_EQ_INT(zp_ledger_result(&l, 3, true, false, 1), ZP_LEDGER_COMMIT);
    TEST_EQ_INT(zp_ledger_close(&l, 4), ZP_LEDGER_CLOSED);
    TEST_EQ_INT(zp_ledger_result(&l, 4, true, false, 1),
                ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(zp_ledger_result(&l, 4, false, true, 1),
                ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(l.retries, 0);
    TEST_EQ_INT(l.duplicates, 0);
    for (uint64_t t = 0; t < 3; t++)
        TEST_EQ_INT(zp_ledger_result(&l, t, true, false, 1), ZP_LEDGER_COMMIT);
    TEST_EQ_INT(zp_ledger_finish(&l), 0);
    /* Done: still refused past the total; below it, duplicates. */
    TEST_EQ_INT(zp_ledger_result(&l, 4, true, false, 1),
                ZP_LEDGER_OUT_OF_RANGE);
    TEST_EQ_INT(zp_ledger_result(&l, 3, true, false, 1), ZP_LEDGER_DUPLICATE);
    zp_ledger_fini(&l);
}

static void test_close_twice_and_too_many(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    for (uint64_t t = 0; t < 3; t++)
        zp_ledger_result(&l, t, true, false, 1);
    TEST_EQ_INT(zp_ledger_close(&l, 2), ZP_LEDGER_TOO_MANY);
    TEST_EQ_INT(l.state, ZP_JOB_OPEN);
    TEST_EQ_INT(zp_ledger_close(&l, 5), ZP_LEDGER_CLOSED);
    TEST_EQ_INT(zp_ledger_close(&l, 5), ZP_LEDGER_CLOSED_SAME);
    TEST_EQ_INT(zp_ledger_close(&l, 6), ZP_LEDGER_CLOSED_OTHER_TOTAL);
    TEST_EQ_INT(l.total, 5);
    zp_ledger_fini(&l);
}

static void test_pending_lists_and_flush(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_CHECK(!zp_ledger_has_pending(&l));
    for (uint64_t t = 0; t < ZP_LEDGER_FLUSH_IDS; t++) {
        TEST_CHECK(!zp_ledger_flush_due(&l));
        TEST_EQ_INT(zp_ledger_result(&l, t, true, false, 1), ZP_LEDGER_COMMIT);
        TEST_EQ_INT(zp_ledger_committed(&l, t), 0);
    }
    TEST_CHECK(zp_ledger_has_pending(&l));
    TEST_CHECK(zp_ledger_flush_due(&l));
    zp_ledger_pending_t p = zp_ledger_pending(&l);
    TEST_EQ_INT(p.n_commit, ZP_LEDGER_FLUSH_IDS);
    TEST_EQ_INT(p.commit_ids[4095], 4095);
    zp_ledger_pending_clear(&l);
    TEST_CHECK(!zp_ledger_has_pending(&l));
    TEST_CHECK(!zp_ledger_flush_due(&l));
    zp_ledger_fini(&l);
}

/* What the opener has not been sent stays, in order, until it has. */
static void test_pending_kept_until_sent(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    for (uint64_t t = 0; t < 5; t++) {
        TEST_EQ_INT(zp_ledger_result(&l, t, true, false, 1), ZP_LEDGER_COMMIT);
        TEST_EQ_INT(zp_ledger_committed(&l, t), 0);
    }
    TEST_EQ_INT(zp_ledger_result(&l, 9, false, true, 1), ZP_LEDGER_RETRY);
    TEST_EQ_INT(zp_ledger_result(&l, 8, false, true, 2), ZP_LEDGER_RETRY);
    /* A duplicate is listed as committed again: the first Committed may
     * be lost. */
    TEST_EQ_INT(zp_ledger_result(&l, 1, true, false, 1), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(zp_ledger_committed(&l, 1), 0);
    zp_ledger_pending_sent(&l, 2, 1); /* one message's worth went out */
    zp_ledger_pending_t p = zp_ledger_pending(&l);
    TEST_EQ_INT(p.n_commit, 4);
    TEST_EQ_INT(p.commit_ids[0], 2);
    TEST_EQ_INT(p.commit_ids[3], 1);
    TEST_EQ_INT(p.n_retry, 1);
    TEST_EQ_INT(p.retry_ids[0], 8);
    TEST_EQ_INT(p.retry_attempts[0], 2);
    zp_ledger_pending_sent(&l, 100, 100); /* more than there is: all */
    TEST_CHECK(!zp_ledger_has_pending(&l));
    TEST_CHECK(l.commit_ids != NULL); /* an open job keeps its lists */
    /* A DONE job frees them once they are empty. */
    TEST_EQ_INT(zp_ledger_close(&l, 5), ZP_LEDGER_CLOSED);
    TEST_EQ_INT(zp_ledger_finish(&l), 0);
    TEST_EQ_INT(zp_ledger_result(&l, 4, true, false, 1), ZP_LEDGER_DUPLICATE);
    TEST_EQ_INT(zp_ledger_committed(&l, 4), 0);
    zp_ledger_pending_clear(&l);
    TEST_CHECK(l.commit_ids == NULL && l.retry_ids == NULL);
    zp_ledger_fini(&l);
}

/* The lists are bounded: repeats are squeezed out, then what does not
 * fit is refused (the caller counts it). */
static void test_pending_is_bounded(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    for (uint64_t i = 0; i < ZP_LEDGER_MAX_PENDING; i++)
        TEST_EQ_INT(zp_ledger_committed(&l, i % 1000), 0);
    /* Full of repeats: made unique, room again. */
    TEST_EQ_INT(zp_ledger_committed(&l, 5000), 0);
    TEST_EQ_INT(l.n_commit, 1001);
    TEST_EQ_INT(l.commit_ids[0], 0);
    TEST_EQ_INT(l.commit_ids[1000], 5000);
    for (uint64_t i = l.n_commit; i < ZP_LEDGER_MAX_PENDING; i++)
        TEST_EQ_INT(zp_ledger_committed(&l, 1000000 + i), 0);
    /* Full of distinct ids: refused, and not sorted again each time. */
    TEST_EQ_INT(zp_ledger_committed(&l, 7), -1);
    TEST_CHECK(l.commits_unique);
    TEST_EQ_INT(zp_ledger_committed(&l, 7), -1);
    TEST_EQ_INT(l.n_commit, ZP_LEDGER_MAX_PENDING);
    zp_ledger_pending_sent(&l, 1, 0);
    TEST_EQ_INT(zp_ledger_committed(&l, 7), 0);
    TEST_CHECK(!l.commits_unique);
    zp_ledger_fini(&l);
}

/* A compacted journal's lines: a finished job comes back DONE with its
 * counters (sums in step); a live one gets its counters and its runs of
 * tasks with records, which zp_ledger_next_run gives back. */
static void test_restore_from_a_snapshot(void)
{
    zp_ledger_sums_t sums = {0};
    zp_ledger_t d, l;
    zp_ledger_init(&d);
    d.sums = &sums;
    TEST_EQ_INT(zp_ledger_restore_done(&d, 10, 8, 1, 0, 0), -1); /* short */
    TEST_EQ_INT(zp_ledger_restore_done(&d, 10, 9, 1, 4, 5), 0);
    TEST_EQ_INT(d.state, ZP_JOB_DONE);
    TEST_EQ_INT(d.done, 10);
    TEST_CHECK(zp_ledger_has(&d, 9) && !zp_ledger_has(&d, 10));
    TEST_EQ_INT(zp_ledger_restore_done(&d, 10, 9, 1, 4, 5), -1); /* not new */
    TEST_EQ_INT(zp_ledger_restore(&d, 3, true), 0);
    TEST_EQ_INT(sums.done, 10);
    TEST_EQ_INT(sums.duplicates, 4);
    TEST_EQ_INT(sums.retries, 5);

    zp_ledger_init(&l);
    l.sums = &sums;
    TEST_EQ_INT(zp_ledger_restore(&l, 100, true), 1); /* an older line */
    zp_ledger_restore_counts(&l, 5, 1, 0, 2);
    TEST_EQ_INT(zp_ledger_restore_have(&l, 0, 4), 0);
    TEST_EQ_INT(zp_ledger_restore_have(&l, 100, 2), 0);
    TEST_EQ_INT(zp_ledger_restore_have(&l, ZP_LEDGER_MAX_OPEN_TASK_ID - 1, 5),
                0);
    TEST_EQ_INT(l.done, 6);
    TEST_EQ_INT(sums.done, 16);
    TEST_EQ_INT(sums.succeeded, 14);
    TEST_EQ_INT(zp_ledger_restore(&l, 101, true), 0);  /* has it: not counted */
    TEST_EQ_INT(zp_ledger_restore(&l, 102, false), 1); /* an appended line */
    TEST_EQ_INT(l.done, 7);
    uint64_t first, count, from = 0, runs = 0, ids = 0;
    while (zp_ledger_next_run(&l, from, &first, &count)) {
        TEST_CHECK(runs > 0 || (first == 0 && count == 4));
        runs++;
        ids += count;
        from = first + count;
    }
    TEST_EQ_INT(runs, 3); /* 0-3, 100-102, the last id below the limit */
    TEST_EQ_INT(ids, 8);
    TEST_EQ_INT(zp_ledger_restore_close(&l, 7), 0);
    zp_ledger_fini(&l);
    zp_ledger_fini(&d);
}

static void test_restore_from_a_journal(void)
{
    zp_ledger_t l;
    zp_ledger_init(&l);
    TEST_EQ_INT(zp_ledger_restore(&l, 0, true), 1);
    TEST_EQ_INT(zp_ledger_restore(&l, 1, false), 1);
    TEST_EQ_INT(zp_ledger_restore(&l, 1, true), 0);
    TEST_EQ_INT(zp_ledger_restore(&l, ZP_LEDGER_MAX_OPEN_TASK_ID, true), 0);
    TEST_EQ_INT(zp_ledger_restore_close(&l, 3), 0);
    TEST_EQ_INT(zp_ledger_restore_close(&l, 2), 0); /* the later line wins */
    TEST_EQ_INT(l.state, ZP_JOB_CLOSED);
    TEST_EQ_INT(l.done, 2);
    TEST_EQ_INT(l.succeeded, 1);
    TEST_EQ_INT(l.failed, 1);
    TEST_EQ_INT(l.duplicates, 0);
    TEST_EQ_INT(zp_ledger_finish(&l), 0);
    TEST_EQ_INT(zp_ledger_restore_close(&l, 2), -1);
    TEST_EQ_STR(zp_job_state_name(l.state), "done");
    zp_ledger_fini(&l);
}

/* Results that grow the done set and both id lists. */
static void s_scenario(void *arg)
{
    int *nomem = arg;
    zp_ledger_t l;
    zp_ledger_init(&l);
    for (uint64_t t = 0; t < 3000; t++) {
        zp_ledger_verdict_t v =
            zp_ledger_result(&l, t * 50, t % 3 != 0, true, 1);
        if (v == ZP_LEDGER_NOMEM)
            (*nomem)++;
        else if (v == ZP_LEDGER_COMMIT)
            zp_ledger_committed(&l, t * 50);
    }
    zp_ledger_pending_sent(&l, 500, 100);
    for (uint64_t t = 0; t < 100; t++)
        zp_ledger_committed(&l, t * 50); /* duplicates listed again */
    zp_ledger_close(&l, 150000);
    zp_ledger_pending_clear(&l);
    zp_ledger_fini(&l);
}

static void test_alloc_failures(void)
{
    int nomem = 0;
    long runs = failalloc_sweep(s_scenario, &nomem);
    TEST_CHECK(runs >= 4); /* done set, its growth, both lists */
    TEST_CHECK(nomem > 0);
    /* A retry that cannot be listed is final instead. */
    zp_ledger_t l;
    zp_ledger_init(&l);
    failalloc_arm(1);
    TEST_EQ_INT(zp_ledger_result(&l, 0, false, true, 1), ZP_LEDGER_COMMIT);
    TEST_CHECK(failalloc_disarm());
    TEST_EQ_INT(l.failed, 1);
    TEST_EQ_INT(l.retries, 0);
    failalloc_arm(2); /* the attempts list */
    TEST_EQ_INT(zp_ledger_result(&l, 1, false, true, 1), ZP_LEDGER_COMMIT);
    TEST_CHECK(failalloc_disarm());
    TEST_EQ_INT(zp_ledger_pending(&l).n_retry, 0);
    zp_ledger_fini(&l);
}

static const test_case_t tests[] = {
    {"test_restore_from_a_snapshot", test_restore_from_a_snapshot},
    {"test_dedup_and_completion", test_dedup_and_completion},
    {"test_empty_job_completes_at_close", test_empty_job_completes_at_close},
    {"test_retry_below_max_attempts_final_at_max",
     test_retry_below_max_attempts_final_at_max},
    {"test_max_attempts_from_the_opener", test_max_attempts_from_the_opener},
    {"test_out_of_range_before_and_after_close",
     test_out_of_range_before_and_after_close},
    {"test_close_twice_and_too_many", test_close_twice_and_too_many},
    {"test_pending_lists_and_flush", test_pending_lists_and_flush},
    {"test_pending_kept_until_sent", test_pending_kept_until_sent},
    {"test_pending_is_bounded", test_pending_is_bounded},
    {"test_restore_from_a_journal", test_restore_from_a_journal},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
