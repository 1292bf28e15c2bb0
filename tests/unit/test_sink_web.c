/* test_sink_web: the state the sink's web view serves at /api/state, read
 * as an example of how the sink feeds it: hooks as results are committed,
 * then one render per metrics period. */
#include "sink_web.h"
#include "test.h"
#include "zp_metrics.h"

#include <stdio.h>

#define S_SEC 1000000ull
#define S_T0  1700000000000000ull /* a Unix time, µs */

/* The state served now; caller frees. */
static char *s_state(zp_metrics_t *m)
{
    size_t len = 0;
    char *text = zp_metrics_doc_snapshot(m, "/api/state", &len);
    return text && len == strlen(text) ? text : strdup("(no state)");
}

/* One render of the given jobs at mono_us (and Unix S_T0 + mono_us). */
static void s_render(zp_sink_web_t *w, uint64_t mono_us,
                     const zp_sink_web_job_t *jobs, size_t n)
{
    zp_sink_web_begin(w, mono_us, S_T0 + mono_us);
    for (size_t i = 0; i < n; i++)
        zp_sink_web_job(w, &jobs[i]);
    TEST_EQ_INT(zp_sink_web_publish(w, 3), 0);
}

static void test_renders_jobs_workers_failures_and_rates(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    zp_sink_web_t *w = zp_sink_web_new(m, "sink-1");
    TEST_CHECK(m && w);
    size_t len = 0;
    char *page = zp_metrics_doc_snapshot(m, "/", &len);
    TEST_CONTAINS(page, "<!doctype html>");
    TEST_CONTAINS(page, "api/state");
    free(page);

    zp_sink_web_job_t jobs[] = {
        {.id = "j2", .state = "open", .done = 4, .succeeded = 4},
        {.id = "j1",
         .state = "done",
         .total = 10,
         .done = 10,
         .succeeded = 9,
         .failed = 1,
         .retries = 2,
         .first_us = S_T0 + S_SEC,
         .last_us = S_T0 + 2 * S_SEC},
    };
    s_render(w, 1 * S_SEC, jobs, 0); /* the first sample's baseline: 0 */
    zp_sink_web_batch(w, "alpha", 10, S_T0 + S_SEC);
    zp_sink_web_batch(w, "beta", 4, S_T0 + 2 * S_SEC);
    zp_sink_web_failure(w, "j1", 7, "alpha", 2, "plugin_error",
                        "bad \"input\"\n\xff", S_T0 + S_SEC);
    s_render(w, 3 * S_SEC, jobs, 2); /* 14 records in 2 s */
    char *st = s_state(m);
    TEST_CONTAINS(st, "{\"sink\":\"sink-1\",\"now_ms\":1700000003000,");
    TEST_CONTAINS(st, "\"totals\":{\"jobs\":2,\"completed\":14,\"succeeded\":"
                      "13,\"failed\":1,\"retries\":2,\"duplicates\":0,"
                      "\"bad_messages\":3,\"tasks_per_s\":7.0}");
    TEST_CONTAINS(st, "\"jobs\":[{\"id\":\"j2\",\"state\":\"open\",\"total\":"
                      "null,\"done\":4,");
    TEST_CONTAINS(st, "{\"id\":\"j1\",\"state\":\"done\",\"total\":10,\"done\":"
                      "10,\"succeeded\":9,\"failed\":1,\"retries\":2,"
                      "\"duplicates\":0,\"first_ms\":1700000001000,"
                      "\"last_ms\":1700000002000}]");
    TEST_CONTAINS(st, "{\"id\":\"alpha\",\"tasks\":10,\"tasks_per_s\":5.0,"
                      "\"last_seen_ms\":1700000001000}");
    TEST_CONTAINS(st, "{\"id\":\"beta\",\"tasks\":4,\"tasks_per_s\":2.0,");
    TEST_CONTAINS(st, "\"failures\":[{\"time_ms\":1700000001000,\"job\":\"j1\","
                      "\"task\":7,\"worker\":\"alpha\",\"attempt\":2,"
                      "\"cause\":\"plugin_error\",\"error\":\"bad "
                      "\\\"input\\\"\\n\\ufffd\"}],\"failures_seen\":1");
    TEST_CONTAINS(st, "\"history\":[[1700000003000,7.0]]}\n");
    free(st);

    /* Less than a second later: no new sample; a second on, rates fall. */
    s_render(w, 3 * S_SEC + 500000, jobs, 2);
    st = s_state(m);
    TEST_CONTAINS(st, "\"history\":[[1700000003000,7.0]]}");
    free(st);
    s_render(w, 4 * S_SEC, jobs, 2);
    st = s_state(m);
    TEST_CONTAINS(st, "\"tasks_per_s\":0.0}");
    TEST_CONTAINS(st, "\"history\":[[1700000003000,7.0],[1700000004000,0.0]]}");
    free(st);
    zp_sink_web_destroy(&w);
    TEST_CHECK(w == NULL);
    zp_metrics_destroy(&m);
}

static void test_keeps_the_latest_failures_newest_first(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    zp_sink_web_t *w = zp_sink_web_new(m, "s");
    char long_error[1000];
    memset(long_error, 'e', sizeof long_error - 1);
    long_error[sizeof long_error - 1] = 0;
    for (int i = 0; i < ZP_SINK_WEB_FAILURES + 10; i++)
        zp_sink_web_failure(w, "j", (uint64_t)i, "w", 1, "c", long_error, S_T0);
    s_render(w, S_SEC, NULL, 0);
    char *st = s_state(m);
    char first[64], last[64], after[64];
    snprintf(first, sizeof first,
             "\"failures\":[{\"time_ms\":%llu,\"job\":"
             "\"j\",\"task\":%d,",
             S_T0 / 1000, ZP_SINK_WEB_FAILURES + 9);
    snprintf(last, sizeof last, "\"task\":10,");
    snprintf(after, sizeof after, "\"task\":9,");
    TEST_CONTAINS(st, first);
    TEST_CONTAINS(st, last);
    TEST_CHECK(strstr(st, after) == NULL);
    TEST_CONTAINS(st, "\"failures_seen\":60");
    /* Error text is cut to ZP_SINK_WEB_ERROR_MAX bytes. */
    char cut[ZP_SINK_WEB_ERROR_MAX + 16];
    snprintf(cut, sizeof cut, "\"error\":\"%.*s\"}", ZP_SINK_WEB_ERROR_MAX,
             long_error);
    TEST_CONTAINS(st, cut);
    free(st);
    zp_sink_web_destroy(&w);
    zp_metrics_destroy(&m);
}

static void test_caps_jobs_and_worker_ids(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    zp_sink_web_t *w = zp_sink_web_new(m, "s");
    /* An id past 128 bytes is kept cut, and still finds its entry. */
    char id[300];
    memset(id, 'w', sizeof id - 1);
    id[sizeof id - 1] = 0;
    zp_sink_web_batch(w, id, 1, S_T0);
    zp_sink_web_batch(w, id, 2, S_T0);
    zp_sink_web_batch(w, "", 1, S_T0);
    zp_sink_web_job_t jobs[ZP_METRICS_MAX_SERIES + 5];
    char ids[ZP_METRICS_MAX_SERIES + 5][16];
    for (size_t i = 0; i < ZP_METRICS_MAX_SERIES + 5; i++) {
        snprintf(ids[i], sizeof ids[i], "job-%zu", i);
        jobs[i] = (zp_sink_web_job_t){.id = ids[i], .state = "done", .done = 1};
    }
    s_render(w, S_SEC, jobs, ZP_METRICS_MAX_SERIES + 5);
    char *st = s_state(m);
    char want[200];
    snprintf(want, sizeof want, "{\"id\":\"%.128s\",\"tasks\":3,", id);
    TEST_CONTAINS(st, want);
    TEST_CONTAINS(st, "{\"id\":\"\",\"tasks\":1,");
    TEST_CONTAINS(st, "\"workers_omitted\":0");
    TEST_CONTAINS(st, "\"totals\":{\"jobs\":105,\"completed\":105,");
    TEST_CONTAINS(st, "\"id\":\"job-99\"");
    TEST_CHECK(strstr(st, "\"id\":\"job-100\"") == NULL);
    TEST_CONTAINS(st, "\"jobs_omitted\":5");
    free(st);
    zp_sink_web_destroy(&w);
    zp_metrics_destroy(&m);
}

/* A caller that keeps its own totals passes only the newest jobs, and
 * the totals count every job (the sink does: no walk of 100,000 jobs). */
static void test_totals_from_the_caller(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    zp_sink_web_t *w = zp_sink_web_new(m, "s");
    zp_sink_web_job_t job = {.id = "newest", .state = "open", .done = 2};
    zp_sink_web_begin(w, S_SEC, S_T0 + S_SEC);
    zp_sink_web_job(w, &job);
    zp_sink_web_totals(w, 100000, 700, 650, 50, 9, 4);
    TEST_EQ_INT(zp_sink_web_publish(w, 0), 0);
    char *st = s_state(m);
    TEST_CONTAINS(st, "\"totals\":{\"jobs\":100000,\"completed\":700,"
                      "\"succeeded\":650,\"failed\":50,\"retries\":9,"
                      "\"duplicates\":4,");
    TEST_CONTAINS(st, "\"id\":\"newest\"");
    TEST_CONTAINS(st, "\"jobs_omitted\":99900");
    free(st);
    zp_sink_web_destroy(&w);
    zp_metrics_destroy(&m);
}

static const test_case_t tests[] = {
    {"test_renders_jobs_workers_failures_and_rates",
     test_renders_jobs_workers_failures_and_rates},
    {"test_keeps_the_latest_failures_newest_first",
     test_keeps_the_latest_failures_newest_first},
    {"test_caps_jobs_and_worker_ids", test_caps_jobs_and_worker_ids},
    {"test_totals_from_the_caller", test_totals_from_the_caller},
    {NULL, NULL},
};
TEST_MAIN(tests)
