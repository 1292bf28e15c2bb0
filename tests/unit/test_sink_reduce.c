/* Tests for sink_reduce: reducer plugins (the wordcount example) and a
 * job's accumulation, failures and the size cap of the reduced value. */
#include "failalloc.h"
#include "sink_reduce.h"
#include "test.h"
#include "zp_log.h"

#include <string.h>

static const char *s_wordcount = ZP_PLUGIN_DIR "/wordcount.so";

static zp_reduce_t *s_new(const char *spec, uint64_t max_value)
{
    const char *items[] = {spec};
    zp_strlist_t plugins = {.items = items, .count = 1};
    zp_strlist_t config = {0};
    return zp_reduce_new(&plugins, &config, max_value);
}

/* value holds exactly want. */
static bool s_is(const zp_buf_t *value, const char *want)
{
    return value->len == strlen(want) &&
           memcmp(value->data, want, value->len) == 0;
}

static void test_a_plugin_without_a_reducer_is_refused(void)
{
    TEST_CHECK(s_new(ZP_PLUGIN_DIR "/echo.so", 1024) == NULL);
    TEST_CHECK(s_new(ZP_PLUGIN_DIR "/nonexistent.so", 1024) == NULL);
}

static void test_jobs_of_the_plugin_are_folded(void)
{
    zp_reduce_t *r = s_new(s_wordcount, 1024);
    TEST_CHECK(r);
    zp_reduce_job_t other = {0}, none = {0}, job = {0};
    zp_reduce_open(r, &other, "j0", "echo");
    TEST_CHECK(other.reducer == NULL);
    zp_reduce_open(r, &none, "j0", NULL);
    TEST_CHECK(none.reducer == NULL);
    zp_reduce_open(NULL, &none, "j0", "wordcount"); /* no --reduce */
    TEST_CHECK(none.reducer == NULL);
    zp_reduce_open(r, &job, "j1", "wordcount");
    TEST_CHECK(job.reducer && job.acc && !job.error);
    void *acc = job.acc;
    zp_reduce_open(r, &job, "j1", "wordcount"); /* opened again: kept */
    TEST_CHECK(job.acc == acc);
    zp_reduce_fold(&job, "b 1\na 2\n", 8, 0);
    zp_reduce_fold(&job, "a 1\n", 4, 1);
    const zp_buf_t *v = NULL;
    TEST_CHECK(zp_reduce_final(r, &job, "j1", 2, &v));
    TEST_CHECK(s_is(v, "a 3\nb 1\n"));
    TEST_CHECK(!job.error);
    zp_reduce_job_fini(&job);
    TEST_CHECK(job.acc == NULL);
    zp_reduce_destroy(&r);
    TEST_CHECK(r == NULL);
}

static void test_the_first_failure_is_kept(void)
{
    zp_reduce_t *r = s_new(s_wordcount, 1024);
    TEST_CHECK(r);
    zp_reduce_job_t job = {0};
    zp_reduce_open(r, &job, "j", "wordcount");
    zp_reduce_fold(&job, "not a count line", 16, 7);
    TEST_CHECK(job.error != NULL);
    TEST_CONTAINS(job.error, "on task 7");
    zp_reduce_fold(&job, "x 1\n", 4, 8);
    TEST_CONTAINS(job.error, "on task 7");
    const zp_buf_t *v = NULL;
    TEST_CHECK(!zp_reduce_final(r, &job, "j", 9, &v));
    TEST_CONTAINS(job.error, "on task 7");
    TEST_EQ_INT(v->len, 0);
    zp_reduce_job_fini(&job);
    zp_reduce_destroy(&r);
}

static void test_a_value_over_the_cap_fails(void)
{
    zp_reduce_t *r = s_new(s_wordcount, 4);
    TEST_CHECK(r);
    zp_reduce_job_t job = {0};
    zp_reduce_open(r, &job, "j", "wordcount");
    zp_reduce_fold(&job, "longword 1\n", 11, 0);
    const zp_buf_t *v = NULL;
    TEST_CHECK(!zp_reduce_final(r, &job, "j", 1, &v));
    TEST_EQ_STR(job.error, "the reduced value is too large");
    zp_reduce_job_fini(&job);
    zp_reduce_destroy(&r);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_reduce_t *r = s_new(s_wordcount, 1024);
    if (!r)
        return;
    zp_reduce_job_t job = {0}, bad = {0};
    zp_reduce_open(r, &job, "j", "wordcount");
    zp_reduce_open(r, &bad, "k", "wordcount");
    if (job.reducer) {
        zp_reduce_fold(&job, "a 1\n", 4, 0);
        const zp_buf_t *v;
        zp_reduce_final(r, &job, "j", 1, &v);
    }
    if (bad.reducer)
        zp_reduce_fold(&bad, "?", 1, 3); /* its error text allocates */
    zp_reduce_job_fini(&job);
    zp_reduce_job_fini(&bad);
    zp_reduce_destroy(&r);
}

static void test_alloc_failures(void)
{
    zp_log_set_level("error");
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 3);
    zp_log_set_level("info");
}

static const test_case_t tests[] = {
    {"test_a_plugin_without_a_reducer_is_refused",
     test_a_plugin_without_a_reducer_is_refused},
    {"test_jobs_of_the_plugin_are_folded", test_jobs_of_the_plugin_are_folded},
    {"test_the_first_failure_is_kept", test_the_first_failure_is_kept},
    {"test_a_value_over_the_cap_fails", test_a_value_over_the_cap_fails},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
