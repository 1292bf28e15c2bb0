/* Tests for zp_cause: cause names both ways and the retry rule. */
#include "test.h"
#include "zp_cause.h"

#include <signal.h>

static void test_every_cause_round_trips_by_name(void)
{
    TEST_CHECK(zp_cause_name(ZP_CAUSE_NONE) == NULL);
    TEST_CHECK(zp_cause_name(ZP_CAUSE_COUNT) == NULL);
    TEST_CHECK(zp_cause_name((zp_cause_t)-1) == NULL);
    for (int c = 1; c < ZP_CAUSE_COUNT; c++) {
        const char *name = zp_cause_name((zp_cause_t)c);
        TEST_CHECK(name && *name);
        TEST_EQ_INT(zp_cause_parse(name), c);
    }
}

static void test_wire_names_are_the_documented_ones(void)
{
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_PLUGIN_ERROR), "plugin_error");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_PLUGIN_RETRY), "plugin_retry");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_NO_SUCH_PLUGIN), "no_such_plugin");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_OUTPUT_TOO_LARGE), "output_too_large");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_PLUGIN_INIT), "plugin_init");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_RESOURCE_LIMIT), "resource_limit");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_TIMEOUT), "timeout");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_EXECUTOR_EXIT), "executor_exit");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_WORKER_LOST), "worker_lost");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_LEASE_EXPIRED), "lease_expired");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_SIGXFSZ), "SIGXFSZ");
    TEST_EQ_STR(zp_cause_name(ZP_CAUSE_PYTHON_EXCEPTION), "python_exception");
}

static void test_plugins_claim_only_listed_causes(void)
{
    TEST_EQ_INT(zp_cause_claimable("python_exception"),
                ZP_CAUSE_PYTHON_EXCEPTION);
    /* what the host finds itself is never a plugin's to claim */
    TEST_EQ_INT(zp_cause_claimable("SIGSEGV"), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable("timeout"), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable("resource_limit"), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable("plugin_error"), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable("Python_Exception"), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable(""), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_claimable(NULL), ZP_CAUSE_NONE);
}

static void test_unknown_names_are_plugin_errors(void)
{
    TEST_EQ_INT(zp_cause_parse(NULL), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_parse(""), ZP_CAUSE_NONE);
    TEST_EQ_INT(zp_cause_parse("made up"), ZP_CAUSE_PLUGIN_ERROR);
    TEST_EQ_INT(zp_cause_parse("sigsegv"), ZP_CAUSE_PLUGIN_ERROR);
}

static void test_signals_map_to_their_causes(void)
{
    TEST_EQ_INT(zp_cause_of_signal(SIGSEGV), ZP_CAUSE_SIGSEGV);
    TEST_EQ_INT(zp_cause_of_signal(SIGABRT), ZP_CAUSE_SIGABRT);
    TEST_EQ_INT(zp_cause_of_signal(SIGKILL), ZP_CAUSE_SIGKILL);
    TEST_EQ_INT(zp_cause_of_signal(SIGXCPU), ZP_CAUSE_SIGXCPU);
    TEST_EQ_INT(zp_cause_of_signal(SIGUSR1), ZP_CAUSE_EXECUTOR_EXIT);
    TEST_EQ_INT(zp_cause_of_signal(0), ZP_CAUSE_EXECUTOR_EXIT);
}

static void test_retry_stops_at_max_attempts(void)
{
    TEST_CHECK(zp_retry_again(true, 1, 3));
    TEST_CHECK(zp_retry_again(true, 2, 3));
    TEST_CHECK(!zp_retry_again(true, 3, 3)); /* the last attempt is final */
    TEST_CHECK(!zp_retry_again(true, 4, 3));
    TEST_CHECK(!zp_retry_again(false, 1, 3));
    TEST_CHECK(!zp_retry_again(true, 1, 1)); /* one attempt: no retry */
}

static void test_which_causes_are_worth_another_attempt(void)
{
    TEST_CHECK(zp_cause_retryable(ZP_CAUSE_PLUGIN_RETRY));
    TEST_CHECK(zp_cause_retryable(ZP_CAUSE_TIMEOUT));
    TEST_CHECK(zp_cause_retryable(ZP_CAUSE_EXECUTOR_EXIT));
    TEST_CHECK(zp_cause_retryable(ZP_CAUSE_SIGSEGV));
    TEST_CHECK(zp_cause_retryable(ZP_CAUSE_SIGXFSZ));
    TEST_CHECK(!zp_cause_retryable(ZP_CAUSE_PLUGIN_ERROR));
    TEST_CHECK(!zp_cause_retryable(ZP_CAUSE_RESOURCE_LIMIT));
    TEST_CHECK(!zp_cause_retryable(ZP_CAUSE_NO_SUCH_PLUGIN));
    TEST_CHECK(!zp_cause_retryable(ZP_CAUSE_OUTPUT_TOO_LARGE));
    TEST_CHECK(!zp_cause_retryable(ZP_CAUSE_NONE));
}

static const test_case_t tests[] = {
    {"test_every_cause_round_trips_by_name",
     test_every_cause_round_trips_by_name},
    {"test_wire_names_are_the_documented_ones",
     test_wire_names_are_the_documented_ones},
    {"test_unknown_names_are_plugin_errors",
     test_unknown_names_are_plugin_errors},
    {"test_plugins_claim_only_listed_causes",
     test_plugins_claim_only_listed_causes},
    {"test_signals_map_to_their_causes", test_signals_map_to_their_causes},
    {"test_retry_stops_at_max_attempts", test_retry_stops_at_max_attempts},
    {"test_which_causes_are_worth_another_attempt",
     test_which_causes_are_worth_another_attempt},
    {NULL, NULL},
};
TEST_MAIN(tests)
