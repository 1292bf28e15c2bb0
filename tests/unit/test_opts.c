/* Tests for zp_opts: command line, environment, precedence, errors. */
#include "test.h"
#include "zp_opts.h"

#include <stdlib.h>

typedef struct {
    const char *name, *mode;
    uint64_t count;
    bool flag;
    zp_strlist_t list;
} s_cfg_t;

static s_cfg_t cfg;
static zp_opt_t opts[6];

static void s_setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.mode = "credit";
    cfg.count = 7;
    zp_opt_t o[] = {
        {"name", 'n', ZP_OPT_STR, "ZPT_NAME", "S", "a name", &cfg.name, 0, 0,
         NULL},
        {"count", 'c', ZP_OPT_UINT, "ZPT_COUNT", "N", "a count", &cfg.count, 1,
         100, NULL},
        {"flag", 0, ZP_OPT_FLAG, "ZPT_FLAG", NULL, "a flag", &cfg.flag, 0, 0,
         NULL},
        {"item", 'p', ZP_OPT_LIST, "ZPT_ITEMS", "X", "items", &cfg.list, 0, 0,
         NULL},
        {"mode", 0, ZP_OPT_CHOICE, "ZPT_MODE", "M", "mode", &cfg.mode, 0, 0,
         "credit|push"},
        {0},
    };
    memcpy(opts, o, sizeof o);
    unsetenv("ZPT_NAME");
    unsetenv("ZPT_COUNT");
    unsetenv("ZPT_FLAG");
    unsetenv("ZPT_ITEMS");
    unsetenv("ZPT_MODE");
}

static zp_opts_result_t s_parse(int argc, const char **argv, char *err)
{
    int first;
    return zp_opts_parse(opts, argc, (char **)argv, &first, err, 256);
}

static void test_defaults_survive_empty_command_line(void)
{
    s_setup();
    char err[256];
    const char *argv[] = {"prog", NULL};
    TEST_EQ_INT(s_parse(1, argv, err), ZP_OPTS_OK);
    TEST_EQ_INT(cfg.count, 7);
    TEST_EQ_STR(cfg.mode, "credit");
}

static void test_long_short_and_repeated_options(void)
{
    s_setup();
    char err[256];
    const char *argv[] = {"prog",     "--name", "x",    "-c",
                          "9",        "--flag", "-p",   "a",
                          "--item=b", "--mode", "push", NULL};
    TEST_EQ_INT(s_parse(11, argv, err), ZP_OPTS_OK);
    TEST_EQ_STR(cfg.name, "x");
    TEST_EQ_INT(cfg.count, 9);
    TEST_CHECK(cfg.flag);
    TEST_EQ_INT(cfg.list.count, 2);
    TEST_EQ_STR(cfg.list.items[1], "b");
    TEST_EQ_STR(cfg.mode, "push");
    zp_strlist_free(&cfg.list);
}

static void test_environment_applies_and_command_line_wins(void)
{
    s_setup();
    setenv("ZPT_COUNT", "11", 1);
    setenv("ZPT_NAME", "fromenv", 1);
    setenv("ZPT_ITEMS", "a,b,,c", 1);
    setenv("ZPT_FLAG", "yes", 1);
    char err[256];
    const char *argv[] = {"prog", "--count", "12", NULL};
    TEST_EQ_INT(s_parse(3, argv, err), ZP_OPTS_OK);
    TEST_EQ_INT(cfg.count, 12);
    TEST_EQ_STR(cfg.name, "fromenv");
    TEST_EQ_INT(cfg.list.count, 3);
    TEST_EQ_STR(cfg.list.items[2], "c");
    TEST_CHECK(cfg.flag);
    zp_strlist_free(&cfg.list);
}

static void test_list_on_the_command_line_replaces_the_environments(void)
{
    s_setup();
    setenv("ZPT_ITEMS", "a,b", 1);
    char err[256];
    const char *argv[] = {"prog", "--item", "x", "--item", "y", NULL};
    TEST_EQ_INT(s_parse(5, argv, err), ZP_OPTS_OK);
    TEST_EQ_INT(cfg.list.count, 2);
    TEST_EQ_STR(cfg.list.items[0], "x");
    TEST_EQ_STR(cfg.list.items[1], "y");
    zp_strlist_free(&cfg.list);
}

static void test_out_of_range_number_is_refused(void)
{
    s_setup();
    char err[256];
    const char *argv[] = {"prog", "--count", "101", NULL};
    TEST_EQ_INT(s_parse(3, argv, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "--count");
    TEST_CONTAINS(err, "101");
}

static void test_bad_environment_value_names_the_variable(void)
{
    s_setup();
    setenv("ZPT_COUNT", "lots", 1);
    char err[256];
    const char *argv[] = {"prog", NULL};
    TEST_EQ_INT(s_parse(1, argv, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "ZPT_COUNT");
}

static void test_unknown_option_and_missing_value(void)
{
    s_setup();
    char err[256];
    const char *a1[] = {"prog", "--bogus", NULL};
    TEST_EQ_INT(s_parse(2, a1, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "--bogus");
    const char *a2[] = {"prog", "--name", NULL};
    TEST_EQ_INT(s_parse(2, a2, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "--name");
}

static void test_bad_choice_lists_the_choices(void)
{
    s_setup();
    char err[256];
    const char *argv[] = {"prog", "--mode", "pull", NULL};
    TEST_EQ_INT(s_parse(3, argv, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "credit|push");
}

static void test_help_and_version(void)
{
    s_setup();
    char err[256];
    const char *a1[] = {"prog", "--help", NULL};
    TEST_EQ_INT(s_parse(2, a1, err), ZP_OPTS_HELP);
    const char *a2[] = {"prog", "-h", NULL};
    TEST_EQ_INT(s_parse(2, a2, err), ZP_OPTS_HELP);
    const char *a3[] = {"prog", "--version", NULL};
    TEST_EQ_INT(s_parse(2, a3, err), ZP_OPTS_VERSION);
    const char *a4[] = {"prog", "--log-level", "loud", NULL};
    TEST_EQ_INT(s_parse(3, a4, err), ZP_OPTS_BAD);
    TEST_CONTAINS(err, "--log-level");
}

static void test_parse_twice_after_a_stop_inside_a_short_cluster(void)
{
    /* getopt kept a pointer into the first argv when it stopped inside
     * "-hc" (found by fuzz_opts); the second parse must not touch it. */
    s_setup();
    char err[256];
    char *first = strdup("-hc");
    const char *a1[] = {"prog", first, NULL};
    TEST_EQ_INT(s_parse(2, a1, err), ZP_OPTS_HELP);
    free(first);
    const char *a2[] = {"prog", "-c", "5", NULL};
    TEST_EQ_INT(s_parse(3, a2, err), ZP_OPTS_OK);
    TEST_EQ_INT(cfg.count, 5);
}

static const test_case_t tests[] = {
    {"test_parse_twice_after_a_stop_inside_a_short_cluster",
     test_parse_twice_after_a_stop_inside_a_short_cluster},
    {"test_defaults_survive_empty_command_line",
     test_defaults_survive_empty_command_line},
    {"test_long_short_and_repeated_options",
     test_long_short_and_repeated_options},
    {"test_environment_applies_and_command_line_wins",
     test_environment_applies_and_command_line_wins},
    {"test_out_of_range_number_is_refused",
     test_out_of_range_number_is_refused},
    {"test_list_on_the_command_line_replaces_the_environments",
     test_list_on_the_command_line_replaces_the_environments},
    {"test_bad_environment_value_names_the_variable",
     test_bad_environment_value_names_the_variable},
    {"test_unknown_option_and_missing_value",
     test_unknown_option_and_missing_value},
    {"test_bad_choice_lists_the_choices", test_bad_choice_lists_the_choices},
    {"test_help_and_version", test_help_and_version},
    {NULL, NULL},
};
TEST_MAIN(tests)
