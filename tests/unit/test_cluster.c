/* Tests for zp_cluster: valid names, and which pairs may talk. */
#include "test.h"
#include "zp_cluster.h"

static void test_names(void)
{
    TEST_CHECK(zp_cluster_valid(NULL));
    TEST_CHECK(zp_cluster_valid(""));
    TEST_CHECK(zp_cluster_valid("prod-eu.1:a_b"));
    TEST_CHECK(!zp_cluster_valid("has space"));
    TEST_CHECK(!zp_cluster_valid("slash/no"));
    char longname[66];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    TEST_CHECK(!zp_cluster_valid(longname));
    longname[64] = '\0';
    TEST_CHECK(zp_cluster_valid(longname));
}

static void test_check(void)
{
    char buf[256];
    TEST_CHECK(zp_cluster_check("a", "a", "worker", buf, sizeof buf) == NULL);
    TEST_CHECK(zp_cluster_check("", "b", "worker", buf, sizeof buf) == NULL);
    TEST_CHECK(zp_cluster_check(NULL, "b", "worker", buf, sizeof buf) == NULL);
    TEST_CHECK(zp_cluster_check("a", "", "worker", buf, sizeof buf) == NULL);
    const char *why = zp_cluster_check("a", "b", "worker", buf, sizeof buf);
    TEST_CHECK(why != NULL);
    TEST_CONTAINS(why, "this is cluster a");
    TEST_CONTAINS(why, "the worker belongs to cluster b");
}

static const test_case_t tests[] = {
    {"names", test_names},
    {"check", test_check},
    {NULL, NULL},
};
TEST_MAIN(tests)
