/* Tests for zp_name (names that cross a boundary) and zp_log_sampled (the
 * one rate limit for repeated warnings). */
#include "test.h"
#include "zp_journal.h"
#include "zp_log.h"
#include "zp_name.h"

static void test_name_length_bounds(void)
{
    TEST_CHECK(!zp_name_valid(NULL, 0, 64, NULL));
    TEST_CHECK(!zp_name_valid("", 0, 64, NULL));
    TEST_CHECK(zp_name_valid("a", 1, 64, NULL));
    char long_name[66];
    memset(long_name, 'x', sizeof long_name);
    TEST_CHECK(zp_name_valid(long_name, 64, 64, NULL));
    TEST_CHECK(!zp_name_valid(long_name, 65, 64, NULL));
}

static void test_name_characters_are_alnum_plus_extra(void)
{
    TEST_CHECK(zp_name_valid("Az09", 4, 64, NULL));
    TEST_CHECK(!zp_name_valid("a_b", 3, 64, NULL));
    TEST_CHECK(zp_name_valid("a_b", 3, 64, "_"));
    TEST_CHECK(!zp_name_valid("a.b", 3, 64, "_"));
    TEST_CHECK(!zp_name_valid("a b", 3, 64, "_-."));
    TEST_CHECK(!zp_name_valid("a/b", 3, 64, "_-."));
    TEST_CHECK(!zp_name_valid("a\nb", 3, 64, "_-."));
    /* an embedded NUL is not in any set, even though strchr finds it */
    TEST_CHECK(!zp_name_valid("a\0b", 3, 64, "_-."));
    TEST_CHECK(!zp_name_valid("\xc3\xa9", 2, 64, "_-."));
}

static void test_plugin_names(void)
{
    TEST_CHECK(zp_plugin_name_valid("sha256"));
    TEST_CHECK(zp_plugin_name_valid("my-plugin_2.0"));
    TEST_CHECK(!zp_plugin_name_valid(NULL));
    TEST_CHECK(!zp_plugin_name_valid(""));
    TEST_CHECK(!zp_plugin_name_valid("a:b"));
    TEST_CHECK(!zp_plugin_name_valid("../x"));
    char n[80];
    memset(n, 'p', sizeof n);
    n[64] = '\0';
    TEST_CHECK(zp_plugin_name_valid(n));
    n[64] = 'p';
    n[65] = '\0';
    TEST_CHECK(!zp_plugin_name_valid(n));
}

static void test_job_ids(void)
{
    TEST_CHECK(zp_job_id_valid("job-1"));
    TEST_CHECK(zp_job_id_valid("a.b:c_d-e"));
    TEST_CHECK(!zp_job_id_valid(NULL));
    TEST_CHECK(!zp_job_id_valid(""));
    TEST_CHECK(!zp_job_id_valid("a b"));
    TEST_CHECK(!zp_job_id_valid("a/b"));
    char id[140];
    memset(id, 'j', sizeof id);
    id[128] = '\0';
    TEST_CHECK(zp_job_id_valid(id));
    id[128] = 'j';
    id[129] = '\0';
    TEST_CHECK(!zp_job_id_valid(id));
}

static void test_log_sampled_first_ten_then_every_thousandth(void)
{
    int n = 0;
    for (uint64_t i = 1; i <= 100000; i++)
        n += zp_log_sampled(i);
    TEST_EQ_INT(n, 10 + 100);
    TEST_CHECK(zp_log_sampled(1) && zp_log_sampled(10));
    TEST_CHECK(!zp_log_sampled(11) && !zp_log_sampled(999));
    TEST_CHECK(zp_log_sampled(1000) && zp_log_sampled(2000));
}

static const test_case_t tests[] = {
    {"test_name_length_bounds", test_name_length_bounds},
    {"test_name_characters_are_alnum_plus_extra",
     test_name_characters_are_alnum_plus_extra},
    {"test_plugin_names", test_plugin_names},
    {"test_job_ids", test_job_ids},
    {"test_log_sampled_first_ten_then_every_thousandth",
     test_log_sampled_first_ten_then_every_thousandth},
    {NULL, NULL},
};
TEST_MAIN(tests)
