/* Tests for wk_death: an executor's death charged to the right task. */
#define _GNU_SOURCE
#include "test.h"
#include "wk_death.h"

#include <signal.h>
#include <sys/wait.h>

/* waitpid statuses, built as the kernel reports them. */
#define S_SIGNALED(sig) ((sig)&0x7f)
#define S_EXITED(code)  (((code)&0xff) << 8)

/* A batch of 10 sent whole, the executor in task index (running). */
static zp_wk_inflight_t s_midbatch(size_t index)
{
    return (zp_wk_inflight_t){
        .busy = true,
        .running = true,
        .page_seq = 1,
        .cur_seq = 1,
        .sent_base = 0,
        .index = index,
        .cur_done = 0,
        .cur_n = 10,
    };
}

static void test_crash_mid_batch_charges_the_running_task(void)
{
    char how[96];
    zp_wk_exit_t e = {.wait_status = S_SIGNALED(SIGSEGV)};
    zp_cause_t cause = zp_wk_death_cause(&e, how, sizeof how);
    TEST_EQ_STR(zp_cause_name(cause), "SIGSEGV");
    TEST_CONTAINS(how, "executor killed by ");
    zp_wk_inflight_t f = s_midbatch(4);
    TEST_EQ_INT(zp_wk_death_culprit(&f), 4);
    zp_wk_charge_t c = zp_wk_death_charge(cause, 0);
    TEST_EQ_INT(c.attempt, 1);
    TEST_CHECK(c.retryable);
    TEST_CHECK(!c.quarantined);
}

static void test_a_write_to_the_inputs_is_said(void)
{
    char how[96];
    zp_wk_exit_t e = {.wait_status = S_SIGNALED(SIGSEGV), .input_write = true};
    zp_cause_t cause = zp_wk_death_cause(&e, how, sizeof how);
    TEST_EQ_STR(zp_cause_name(cause), "SIGSEGV"); /* the same cause */
    TEST_CONTAINS(how, "the plugin wrote to its read-only input");
    e.input_write = false;
    zp_wk_death_cause(&e, how, sizeof how);
    TEST_CHECK(strstr(how, "read-only") == NULL);
}

static void test_tasks_before_the_culprit_run_again(void)
{
    /* Results for 0 and 1 arrived; it died in 4, so 2 and 3 ran but their
     * results died with it. */
    Zpipe__V1__Task t[10];
    Zpipe__V1__Task *tasks[10];
    for (int i = 0; i < 10; i++) {
        t[i].task_id = (uint64_t)i;
        tasks[i] = &t[i];
    }
    zp_wk_inflight_t f = s_midbatch(4);
    f.cur_done = 2;
    size_t culprit = zp_wk_death_culprit(&f);
    TEST_EQ_INT(culprit, 4);
    size_t done = zp_wk_death_rotate(tasks, 2, culprit);
    TEST_EQ_INT(done, 3);
    /* Charged: 0, 1 (results), 4 (the culprit); to run again, in order:
     * 2, 3, 5 ... 9. */
    const int want[10] = {0, 1, 4, 2, 3, 5, 6, 7, 8, 9};
    for (int i = 0; i < 10; i++)
        TEST_EQ_INT(tasks[i]->task_id, want[i]);
}

static void test_crash_of_a_resent_batch_counts_from_what_was_sent(void)
{
    /* A fresh executor was sent tasks 3.. of the batch; it died in its
     * second task: task 4 of the batch. */
    zp_wk_inflight_t f = s_midbatch(1);
    f.sent_base = 3;
    f.cur_done = 3;
    TEST_EQ_INT(zp_wk_death_culprit(&f), 4);
}

static void test_crash_before_the_first_task_charges_nobody(void)
{
    /* Died before taking the current batch's frame. */
    zp_wk_inflight_t f = s_midbatch(0);
    f.page_seq = 0;
    TEST_EQ_INT(zp_wk_death_culprit(&f), ZP_WK_NO_CULPRIT);
    /* Took it, but no call was running. */
    f = s_midbatch(0);
    f.running = false;
    TEST_EQ_INT(zp_wk_death_culprit(&f), ZP_WK_NO_CULPRIT);
    /* Idle. */
    f = s_midbatch(0);
    f.busy = false;
    TEST_EQ_INT(zp_wk_death_culprit(&f), ZP_WK_NO_CULPRIT);
    /* The page names a task that already has its result. */
    f = s_midbatch(1);
    f.cur_done = 5;
    TEST_EQ_INT(zp_wk_death_culprit(&f), ZP_WK_NO_CULPRIT);
    f = s_midbatch(10);
    TEST_EQ_INT(zp_wk_death_culprit(&f), ZP_WK_NO_CULPRIT);
}

static void test_timeout_is_the_cause_when_killed_for_it(void)
{
    /* Overdue on a fake clock: its own deadline, else the default. */
    TEST_CHECK(!zp_wk_death_overdue(0, 0, 1000, 1u << 30));
    TEST_CHECK(!zp_wk_death_overdue(50, 0, 1000, 51000));
    TEST_CHECK(zp_wk_death_overdue(50, 0, 1000, 51001));
    TEST_CHECK(zp_wk_death_overdue(0, 50, 1000, 51001));
    TEST_CHECK(!zp_wk_death_overdue(100, 50, 1000, 51001));
    char how[96];
    zp_wk_exit_t e = {.killed_for_timeout = true,
                      .wait_status = S_SIGNALED(SIGKILL)};
    zp_cause_t cause = zp_wk_death_cause(&e, how, sizeof how);
    TEST_EQ_STR(zp_cause_name(cause), "timeout");
    TEST_EQ_STR(how, "ran past its deadline; executor killed");
    zp_wk_charge_t c = zp_wk_death_charge(cause, 1);
    TEST_CHECK(c.retryable);
}

static void test_the_worker_sleeps_until_a_deadline_can_pass(void)
{
    const uint64_t never = UINT64_MAX, now = 10000000;
    zp_wk_horizon_t none = {0, false}, free_ = {0, true};
    /* Nothing with a deadline and no stall check: nothing is due. */
    TEST_CHECK(zp_wk_death_next_due(true, now - 5, 0, 0, 0, 0, free_, now) ==
               never);
    TEST_CHECK(zp_wk_death_next_due(false, 0, 0, 0, 0, 0, none, now) == never);
    /* The running task's own deadline, else the default: one µs past. */
    TEST_EQ_INT(zp_wk_death_next_due(true, now - 1000, 50, 0, 0, 0, none, now),
                now - 1000 + 50000 + 1);
    TEST_EQ_INT(zp_wk_death_next_due(true, now - 1000, 0, 70, 0, 0, none, now),
                now - 1000 + 70000 + 1);
    /* A task yet to start with a shorter deadline wakes it sooner: it
     * starts at now at the earliest. */
    zp_wk_horizon_t short_ = {5, false};
    TEST_EQ_INT(
        zp_wk_death_next_due(true, now - 1000, 50, 0, 0, 0, short_, now),
        now + 5000 + 1);
    /* One without a deadline takes the default. */
    TEST_EQ_INT(zp_wk_death_next_due(false, 0, 0, 30, 0, 0, free_, now),
                now + 30000 + 1);
    /* No deadline anywhere: the stall limit of the running task, and the
     * floor for one yet to start. */
    TEST_EQ_INT(zp_wk_death_next_due(true, now - 100, 0, 0, 5000000, 2000000,
                                     none, now),
                now - 100 + 5000000 + 1);
    TEST_EQ_INT(zp_wk_death_next_due(true, now - 100, 0, 0, 5000000, 2000000,
                                     free_, now),
                now + 2000000 + 1);
    /* Huge deadlines saturate rather than wrap. */
    TEST_CHECK(zp_wk_death_next_due(true, now, UINT64_MAX, 0, 0, 0, none, now) >
               now);
    zp_wk_horizon_t huge = {UINT64_MAX, false};
    TEST_CHECK(zp_wk_death_next_due(false, 0, 0, 0, 0, 0, huge, now) > now);
}

static void test_a_stop_signal_while_the_worker_stops_is_no_crash(void)
{
    TEST_CHECK(zp_wk_death_with_worker(S_SIGNALED(SIGTERM), true));
    TEST_CHECK(zp_wk_death_with_worker(S_SIGNALED(SIGINT), true));
    /* Not stopping: a SIGTERM from someone else is a death like any. */
    TEST_CHECK(!zp_wk_death_with_worker(S_SIGNALED(SIGTERM), false));
    /* Stopping, but a crash is still a crash. */
    TEST_CHECK(!zp_wk_death_with_worker(S_SIGNALED(SIGSEGV), true));
    TEST_CHECK(!zp_wk_death_with_worker(S_SIGNALED(SIGKILL), true));
    TEST_CHECK(!zp_wk_death_with_worker(0, true)); /* exit 0 */
}

static void test_memory_limit_is_the_cause_near_the_limit(void)
{
    char how[96];
    zp_wk_exit_t e = {.wait_status = S_SIGNALED(SIGSEGV),
                      .vm_bytes = 95u << 20,
                      .memory_limit = 100u << 20};
    zp_cause_t cause = zp_wk_death_cause(&e, how, sizeof how);
    TEST_EQ_STR(zp_cause_name(cause), "resource_limit");
    zp_wk_charge_t c = zp_wk_death_charge(cause, 1);
    TEST_CHECK(!c.retryable); /* it would only hit the limit again */
    TEST_CHECK(!c.quarantined);
    /* Far from the limit: a bug of the plugin's. */
    e.vm_bytes = 10u << 20;
    TEST_EQ_STR(zp_cause_name(zp_wk_death_cause(&e, how, sizeof how)),
                "SIGSEGV");
    /* No limit at all. */
    e.memory_limit = 0;
    e.vm_bytes = 95u << 20;
    TEST_EQ_STR(zp_cause_name(zp_wk_death_cause(&e, how, sizeof how)),
                "SIGSEGV");
}

static void test_third_death_quarantines_the_task(void)
{
    zp_cause_t cause = ZP_CAUSE_SIGABRT;
    zp_wk_charge_t c = zp_wk_death_charge(cause, 2);
    TEST_CHECK(c.retryable && !c.quarantined);
    c = zp_wk_death_charge(cause, ZP_POISON_DEATHS);
    TEST_EQ_INT(c.attempt, 3);
    TEST_CHECK(c.quarantined);
    TEST_CHECK(!c.retryable);
    c = zp_wk_death_charge(ZP_CAUSE_TIMEOUT, 7);
    TEST_CHECK(c.quarantined && !c.retryable);
}

static void test_exit_without_a_signal_is_executor_exit(void)
{
    char how[96];
    zp_wk_exit_t e = {.wait_status = S_EXITED(3)};
    TEST_EQ_STR(zp_cause_name(zp_wk_death_cause(&e, how, sizeof how)),
                "executor_exit");
    TEST_EQ_STR(how, "executor exited with status 3");
    e.wait_status = S_SIGNALED(SIGUSR1); /* not on the list */
    TEST_EQ_STR(zp_cause_name(zp_wk_death_cause(&e, how, sizeof how)),
                "executor_exit");
}

static void test_three_start_failures_in_a_row_are_fatal(void)
{
    TEST_CHECK(!zp_wk_death_fatal(0));
    TEST_CHECK(!zp_wk_death_fatal(2));
    TEST_CHECK(zp_wk_death_fatal(3));
}

static const test_case_t tests[] = {
    {"test_a_write_to_the_inputs_is_said", test_a_write_to_the_inputs_is_said},
    {"test_crash_mid_batch_charges_the_running_task",
     test_crash_mid_batch_charges_the_running_task},
    {"test_tasks_before_the_culprit_run_again",
     test_tasks_before_the_culprit_run_again},
    {"test_crash_of_a_resent_batch_counts_from_what_was_sent",
     test_crash_of_a_resent_batch_counts_from_what_was_sent},
    {"test_crash_before_the_first_task_charges_nobody",
     test_crash_before_the_first_task_charges_nobody},
    {"test_timeout_is_the_cause_when_killed_for_it",
     test_timeout_is_the_cause_when_killed_for_it},
    {"test_the_worker_sleeps_until_a_deadline_can_pass",
     test_the_worker_sleeps_until_a_deadline_can_pass},
    {"test_a_stop_signal_while_the_worker_stops_is_no_crash",
     test_a_stop_signal_while_the_worker_stops_is_no_crash},
    {"test_memory_limit_is_the_cause_near_the_limit",
     test_memory_limit_is_the_cause_near_the_limit},
    {"test_third_death_quarantines_the_task",
     test_third_death_quarantines_the_task},
    {"test_exit_without_a_signal_is_executor_exit",
     test_exit_without_a_signal_is_executor_exit},
    {"test_three_start_failures_in_a_row_are_fatal",
     test_three_start_failures_in_a_row_are_fatal},
    {NULL, NULL},
};

TEST_MAIN(tests)
