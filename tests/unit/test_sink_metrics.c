/* Tests for sink_metrics: the families the sink serves at /metrics, their
 * values from the job table, and older jobs summed under "(older)". */
#include "failalloc.h"
#include "sink_metrics.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

/* A job with ok successes and failed failures, closed at total when
 * total is not 0. */
static zp_sink_job_t *s_job(zp_jobs_t *jobs, const char *id, uint64_t ok,
                            uint64_t failed, uint64_t total)
{
    zp_sink_job_t *j = zp_jobs_get(jobs, id, NULL);
    if (!j)
        return NULL;
    uint64_t t = 0;
    for (uint64_t i = 0; i < ok; i++)
        zp_ledger_result(&j->ledger, t++, true, false, 1);
    for (uint64_t i = 0; i < failed; i++)
        zp_ledger_result(&j->ledger, t++, false, false, 1);
    if (total)
        zp_ledger_close(&j->ledger, total);
    return j;
}

static void test_renders_counters_and_jobs(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    zp_jobs_t jobs = {0};
    zp_sink_job_t *a = s_job(&jobs, "job-a", 7, 2, 10);
    TEST_CHECK(a);
    zp_ledger_result(&a->ledger, 0, true, false, 1); /* a duplicate */
    zp_ledger_result(&a->ledger, 9, false, true, 1); /* a retry request */
    TEST_CHECK(s_job(&jobs, "job-b", 3, 0, 0));      /* open: no total yet */
    zp_sink_counters_t c = {.bad_messages = 5,
                            .bad_results = 3,
                            .dropped = 2,
                            .events_sent = 11,
                            .refused_unknown_job = 12,
                            .refused_out_of_range = 4,
                            .jobs_reused = 6,
                            .acks_dropped = 8};
    zp_sink_metrics_render(m, &jobs, &c, 1);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text);
    TEST_CHECK(test_has_line(
        text, "zpipe_tasks_completed_total{job_id=\"job-a\",status=\"ok\"} 7"));
    TEST_CHECK(test_has_line(
        text,
        "zpipe_tasks_completed_total{job_id=\"job-a\",status=\"failed\"} 2"));
    TEST_CHECK(test_has_line(
        text, "zpipe_tasks_completed_total{job_id=\"job-b\",status=\"ok\"} 3"));
    TEST_CHECK(test_has_line(text, "zpipe_job_tasks{job_id=\"job-a\"} 10"));
    TEST_CHECK(!strstr(text, "zpipe_job_tasks{job_id=\"job-b\"}"));
    TEST_CHECK(test_has_line(text, "zpipe_job_done_tasks{job_id=\"job-a\"} 9"));
    TEST_CHECK(test_has_line(text, "zpipe_job_done_tasks{job_id=\"job-b\"} 3"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_duplicates_total 1"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_retry_requests_total 1"));
    TEST_CHECK(test_has_line(text, "zpipe_jobs 2"));
    TEST_CHECK(
        test_has_line(text, "zpipe_bad_messages_total{socket=\"results\"} 3"));
    TEST_CHECK(
        test_has_line(text, "zpipe_bad_messages_total{socket=\"control\"} 2"));
    TEST_CHECK(test_has_line(text, "zpipe_connections_dropped_total 2"));
    TEST_CHECK(test_has_line(text, "zpipe_events_published_total 11"));
    TEST_CHECK(test_has_line(
        text, "zpipe_sink_results_refused_total{cause=\"unknown_job\"} 12"));
    TEST_CHECK(test_has_line(
        text, "zpipe_sink_results_refused_total{cause=\"out_of_range\"} 4"));
    TEST_CHECK(test_has_line(
        text, "zpipe_sink_jobs_refused_total{cause=\"id_reused\"} 6"));
    TEST_CHECK(test_has_line(text, "zpipe_sink_commit_acks_dropped_total 8"));
    free(text);
    zp_jobs_fini(&jobs);
    zp_metrics_destroy(&m);
}

/* Past the newest ZP_METRICS_MAX_SERIES jobs, completions are summed
 * under job_id="(older)", so the family's sum never goes down as jobs
 * come and go, and the gauges leave the older jobs out. */
static void test_older_jobs_are_summed(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    zp_jobs_t jobs = {0};
    int n = ZP_METRICS_MAX_SERIES + 5;
    for (int i = 0; i < n; i++) { /* job-0 is the oldest */
        char id[32];
        snprintf(id, sizeof id, "job-%d", i);
        TEST_CHECK(s_job(&jobs, id, 2, 1, 3));
    }
    zp_sink_counters_t c = {0};
    zp_sink_metrics_render(m, &jobs, &c, 1);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text);
    TEST_CHECK(test_has_line(
        text,
        "zpipe_tasks_completed_total{job_id=\"(older)\",status=\"ok\"} 10"));
    TEST_CHECK(test_has_line(
        text,
        "zpipe_tasks_completed_total{job_id=\"(older)\",status=\"failed\"} 5"));
    TEST_CHECK(!strstr(text, "job_id=\"job-4\""));
    TEST_CHECK(strstr(text, "zpipe_job_tasks{job_id=\"job-5\"} 3"));
    char line[64];
    snprintf(line, sizeof line, "zpipe_jobs %d", n);
    TEST_CHECK(test_has_line(text, line));
    free(text);
    zp_jobs_fini(&jobs);
    zp_metrics_destroy(&m);
}

/* Building the job table and rendering under allocation failure: each
 * step fails alone, nothing leaks, a later render still works. */
static void s_render_scenario(void *arg)
{
    zp_metrics_t *m = arg;
    zp_jobs_t jobs = {0};
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "job-%d", i);
        s_job(&jobs, id, 40, 2, 42);
    }
    zp_sink_counters_t c = {.bad_messages = 1};
    zp_sink_metrics_render(m, &jobs, &c, 1);
    zp_jobs_fini(&jobs);
}

static void test_alloc_failures_in_rendering(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    TEST_CHECK(failalloc_sweep(s_render_scenario, m) >= 3);
    zp_jobs_t jobs = {0};
    TEST_CHECK(s_job(&jobs, "after", 1, 0, 1));
    zp_sink_counters_t c = {0};
    zp_sink_metrics_render(m, &jobs, &c, 2);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text && strstr(text, "zpipe_job_tasks{job_id=\"after\"} 1"));
    free(text);
    zp_jobs_fini(&jobs);
    zp_metrics_destroy(&m);
}

/* Commits since the start: successes, and final failures by cause, every
 * cause on the list a series from the start; a failure naming no cause,
 * or one not on the list, is counted as plugin_error, as its record
 * says. */
static void test_failures_by_cause(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    zp_jobs_t jobs = {0};
    zp_sink_counters_t c = {0};
    zp_sink_count_failure(&c, "SIGSEGV");
    zp_sink_count_failure(&c, "SIGSEGV");
    zp_sink_count_failure(&c, "timeout");
    zp_sink_count_failure(&c, NULL);
    zp_sink_count_failure(&c, "");
    zp_sink_count_failure(&c, "no such cause");
    zp_sink_count_failure(&c, "plugin_error");
    TEST_CHECK(c.failed[ZP_CAUSE_NONE] == 0);
    c.succeeded = 93;
    zp_sink_metrics_render(m, &jobs, &c, 1);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text);
    TEST_CHECK(test_has_line(text, "zpipe_tasks_succeeded_total 93"));
    TEST_CHECK(
        test_has_line(text, "zpipe_tasks_failed_total{cause=\"SIGSEGV\"} 2"));
    TEST_CHECK(
        test_has_line(text, "zpipe_tasks_failed_total{cause=\"timeout\"} 1"));
    TEST_CHECK(test_has_line(
        text, "zpipe_tasks_failed_total{cause=\"plugin_error\"} 4"));
    TEST_CHECK(test_has_line(
        text, "zpipe_tasks_failed_total{cause=\"worker_lost\"} 0"));
    TEST_CHECK(test_has_line(
        text, "zpipe_tasks_failed_total{cause=\"python_exception\"} 0"));
    /* One series per cause on the list, none for "no cause". */
    int series = 0;
    for (const char *p = text; (p = strstr(p, "\nzpipe_tasks_failed_total{"));
         p++)
        series++;
    TEST_CHECK(series == ZP_CAUSE_COUNT - 1);
    free(text);
    zp_metrics_destroy(&m);
}

static const test_case_t tests[] = {
    {"test_failures_by_cause", test_failures_by_cause},
    {"test_alloc_failures_in_rendering", test_alloc_failures_in_rendering},
    {"test_renders_counters_and_jobs", test_renders_counters_and_jobs},
    {"test_older_jobs_are_summed", test_older_jobs_are_summed},
    {NULL, NULL},
};
TEST_MAIN(tests)
