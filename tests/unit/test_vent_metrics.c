/* Tests for vent_metrics: the families the ventilator serves at /metrics,
 * their values, and the cap on per-worker and per-job series. */
#include "test.h"
#include "vent_metrics.h"

#include <stdio.h>
#include <stdlib.h>

static void s_hello(zp_vent_workers_t *ws, const char *id, uint64_t window,
                    uint64_t credit)
{
    Zpipe__V1__Hello h = ZPIPE__V1__HELLO__INIT;
    h.worker_id = (char *)id;
    h.window = window;
    h.credit = credit;
    zp_vent_workers_add(ws, id, strlen(id), &h, 0);
}

static void test_renders_counters_workers_and_jobs(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    zp_vent_counters_t c = {.dispatched = 12,
                            .redelivered = 3,
                            .retried = 2,
                            .gave_up = 1,
                            .intake_bad = 4,
                            .bad_messages = 7,
                            .bad_control = 5};
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "job-1", "echo");
    for (int i = 0; i < 5; i++)
        zp_vent_tasks_add(ts, j, "abc", 3, 0);
    zp_vent_task_t *out[2];
    zp_vent_tasks_collect(ts, j, 2, 1 << 20, out); /* 2 sent, 3 queued */
    s_hello(ws, "w1", 10, 4);
    zp_vent_metrics_render(m, &c, ts, ws, NULL, jobs, NULL, 1);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text);
    TEST_CHECK(test_has_line(text, "zpipe_tasks_read_total 5"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_dispatched_total 12"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_given_up_total 1"));
    TEST_CHECK(test_has_line(text, "zpipe_intake_refused_total 4"));
    TEST_CHECK(
        test_has_line(text, "zpipe_bad_messages_total{socket=\"dispatch\"} 2"));
    TEST_CHECK(
        test_has_line(text, "zpipe_bad_messages_total{socket=\"control\"} 5"));
    TEST_CHECK(test_has_line(text, "zpipe_events_published_total 0"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_held 5"));
    TEST_CHECK(test_has_line(text, "zpipe_tasks_held_bytes 15"));
    TEST_CHECK(test_has_line(text, "zpipe_workers 1"));
    TEST_CHECK(test_has_line(text, "zpipe_worker_inflight{worker=\"w1\"} 6"));
    TEST_CHECK(test_has_line(text, "zpipe_worker_credit{worker=\"w1\"} 4"));
    TEST_CHECK(test_has_line(text, "zpipe_jobs 1"));
    TEST_CHECK(
        test_has_line(text, "zpipe_job_queued_tasks{job_id=\"job-1\"} 3"));
    TEST_CHECK(
        test_has_line(text, "zpipe_job_inflight_tasks{job_id=\"job-1\"} 2"));
    free(text);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
    zp_vent_workers_destroy(&ws);
    zp_metrics_destroy(&m);
}

/* Only the most recent ZP_METRICS_MAX_SERIES workers and jobs. */
static void test_series_are_capped_to_the_most_recent(void)
{
    char err[256];
    zp_metrics_t *m = zp_metrics_new("127.0.0.1:0", err, sizeof err);
    TEST_CHECK(m);
    zp_vent_counters_t c = {0};
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_workers_t *ws = zp_vent_workers_new(0);
    int n = ZP_METRICS_MAX_SERIES + 5;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d", i);
        s_hello(ws, id, 1, 1);
        snprintf(id, sizeof id, "job-%d", i);
        zp_vent_jobs_add(jobs, id, "echo");
    }
    zp_vent_metrics_render(m, &c, ts, ws, NULL, jobs, NULL, 1);
    size_t len;
    char *text = zp_metrics_snapshot(m, &len);
    TEST_CHECK(text);
    char line[96];
    snprintf(line, sizeof line, "zpipe_workers %d", n);
    TEST_CHECK(test_has_line(text, line));
    TEST_CHECK(!strstr(text, "worker=\"w4\""));
    TEST_CHECK(strstr(text, "zpipe_worker_credit{worker=\"w5\"} 1"));
    TEST_CHECK(!strstr(text, "job_id=\"job-4\""));
    TEST_CHECK(strstr(text, "job_id=\"job-5\""));
    free(text);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
    zp_vent_workers_destroy(&ws);
    zp_metrics_destroy(&m);
}

static const test_case_t tests[] = {
    {"test_renders_counters_workers_and_jobs",
     test_renders_counters_workers_and_jobs},
    {"test_series_are_capped_to_the_most_recent",
     test_series_are_capped_to_the_most_recent},
    {NULL, NULL},
};
TEST_MAIN(tests)
