/* Tests for zp_trace: the sink's trace log and its reader. */
#include "test.h"
#include "zp_trace.h"

#include <stdlib.h>
#include <unistd.h>

typedef struct {
    zp_trace_entry_t e[8];
    char job[8][64], worker[8][64];
    size_t n;
} s_lines_t;

/* Reads every line of path back. */
static void s_read(const char *path, s_lines_t *out)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    out->n = 0;
    while (f && out->n < 8 && fgets(line, sizeof line, f)) {
        size_t i = out->n;
        if (zp_trace_parse(line, strlen(line), &out->e[i], out->job[i], 64,
                           out->worker[i], 64) == 0)
            out->n++;
    }
    if (f)
        fclose(f);
}

static zp_trace_entry_t s_entry(uint64_t task, zp_trace_outcome_t outcome)
{
    zp_trace_entry_t e = {
        .job = "job-1",
        .worker = "w \"one\"",
        .task = task,
        .attempt = 2,
        .ok = task % 2 == 0,
        .outcome = outcome,
        .bytes = 12,
        .queued_us = 1700000000000001ull,
        .dispatch_us = 1700000000000002ull,
        .start_us = 1700000000000003ull,
        .elapsed_us = 4,
        .received_us = 1700000000000009ull,
    };
    return e;
}

/* An ordered sink writes task 0 now and holds task 1 back. */
static bool s_only_task_0(void *ctx, const void *job, uint64_t task)
{
    (void)ctx;
    (void)job;
    return task == 0;
}

static void test_committed_lines_wait_for_their_commit_time(void)
{
    char path[] = "/tmp/zpipe-trace-test-XXXXXX";
    int fd = mkstemp(path);
    TEST_CHECK(fd >= 0);
    close(fd);
    char err[256];
    zp_trace_log_t *log = zp_trace_log_new(path, err, sizeof err);
    TEST_CHECK(log != NULL);
    int job;
    zp_trace_entry_t a = s_entry(0, ZP_TRACE_COMMITTED);
    zp_trace_entry_t b = s_entry(1, ZP_TRACE_COMMITTED);
    zp_trace_entry_t c = s_entry(2, ZP_TRACE_DUPLICATE);
    TEST_EQ_INT(zp_trace_log_add(log, &a, &job), 0);
    TEST_EQ_INT(zp_trace_log_add(log, &b, &job), 0);
    TEST_EQ_INT(zp_trace_log_add(log, &c, &job), 0);
    zp_trace_log_commit(log, 1700000000000020ull, s_only_task_0, NULL);
    zp_trace_log_commit(log, 1700000000000030ull, NULL, NULL); /* flushes */
    zp_trace_entry_t d = s_entry(3, ZP_TRACE_COMMITTED);
    TEST_EQ_INT(zp_trace_log_add(log, &d, &job), 0);
    /* never committed: written at destroy with commit_us 0 */
    TEST_EQ_INT(zp_trace_log_destroy(&log), 0);
    TEST_CHECK(log == NULL);

    s_lines_t got;
    s_read(path, &got);
    unlink(path);
    TEST_EQ_INT(got.n, 4);
    /* The duplicate at once; task 0 at the first commit; task 1 when it
     * was written; task 3 never. */
    TEST_EQ_INT(got.e[0].task, 2);
    TEST_EQ_INT(got.e[0].outcome, ZP_TRACE_DUPLICATE);
    TEST_EQ_INT(got.e[0].commit_us, 0);
    TEST_EQ_INT(got.e[1].task, 0);
    TEST_EQ_INT(got.e[1].commit_us, 1700000000000020ull);
    TEST_EQ_INT(got.e[2].task, 1);
    TEST_EQ_INT(got.e[2].commit_us, 1700000000000030ull);
    TEST_EQ_INT(got.e[3].task, 3);
    TEST_EQ_INT(got.e[3].commit_us, 0);
    /* Every field comes back. */
    TEST_EQ_STR(got.e[1].job, "job-1");
    TEST_EQ_STR(got.e[1].worker, "w \"one\"");
    TEST_EQ_INT(got.e[1].attempt, 2);
    TEST_CHECK(got.e[1].ok && !got.e[2].ok);
    TEST_EQ_INT(got.e[1].outcome, ZP_TRACE_COMMITTED);
    TEST_EQ_INT(got.e[1].bytes, 12);
    TEST_EQ_INT(got.e[1].queued_us, 1700000000000001ull);
    TEST_EQ_INT(got.e[1].dispatch_us, 1700000000000002ull);
    TEST_EQ_INT(got.e[1].start_us, 1700000000000003ull);
    TEST_EQ_INT(got.e[1].elapsed_us, 4);
    TEST_EQ_INT(got.e[1].received_us, 1700000000000009ull);
}

static void test_parse_takes_any_order_and_escapes(void)
{
    const char *line = " {\"commit_us\":9, \"worker\":\"a\\u0041\\\\\\n\","
                       "\"extra\":[1],\"task\":18446744073709551615,"
                       "\"status\":\"failed\",\"outcome\":\"retry\"}\n";
    zp_trace_entry_t e;
    char job[8], worker[8];
    /* An unknown key whose value is not a scalar is refused, not skipped
     * past blindly. */
    TEST_EQ_INT(zp_trace_parse(line, strlen(line), &e, job, sizeof job, worker,
                               sizeof worker),
                -1);
    line = " {\"commit_us\":9, \"worker\":\"a\\u0041\\\\\\n\",\"task\":"
           "18446744073709551615,\"status\":\"failed\",\"outcome\":\"retry\"}";
    TEST_EQ_INT(zp_trace_parse(line, strlen(line), &e, job, sizeof job, worker,
                               sizeof worker),
                0);
    TEST_EQ_STR(e.worker, "aA\\\n");
    TEST_EQ_STR(e.job, "");
    TEST_CHECK(e.task == UINT64_MAX);
    TEST_CHECK(!e.ok);
    TEST_EQ_INT(e.outcome, ZP_TRACE_RETRY);
    TEST_EQ_INT(e.commit_us, 9);
    /* Long strings are cut to the buffer. */
    line = "{\"task\":1,\"worker\":\"0123456789\"}";
    TEST_EQ_INT(zp_trace_parse(line, strlen(line), &e, job, sizeof job, worker,
                               sizeof worker),
                0);
    TEST_EQ_STR(e.worker, "0123456");
}

static void test_parse_rejects_what_is_not_an_entry(void)
{
    const char *bad[] = {
        "",
        "{}",
        "[1]",
        "{\"task\":1}",                                     /* no worker */
        "{\"worker\":\"w\"}",                               /* no task */
        "{\"task\":1,\"worker\":\"w\"",                     /* cut */
        "{\"task\":-1,\"worker\":\"w\"}",                   /* not a count */
        "{\"task\":99999999999999999999,\"worker\":\"w\"}", /* past 64 bits */
        "{\"task\":1,\"worker\":\"w}",                      /* open string */
        "{\"task\":1 \"worker\":\"w\"}",                    /* no comma */
    };
    zp_trace_entry_t e;
    char job[8], worker[8];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        TEST_EQ_INT(zp_trace_parse(bad[i], strlen(bad[i]), &e, job, sizeof job,
                                   worker, sizeof worker),
                    -1);
}

static void test_log_refuses_a_path_it_cannot_open(void)
{
    char err[256] = "";
    zp_trace_log_t *log = zp_trace_log_new("/", err, sizeof err);
    TEST_CHECK(log == NULL);
    TEST_CHECK(strstr(err, "cannot open trace /") != NULL);
}

static const test_case_t tests[] = {
    {"test_committed_lines_wait_for_their_commit_time",
     test_committed_lines_wait_for_their_commit_time},
    {"test_parse_takes_any_order_and_escapes",
     test_parse_takes_any_order_and_escapes},
    {"test_parse_rejects_what_is_not_an_entry",
     test_parse_rejects_what_is_not_an_entry},
    {"test_log_refuses_a_path_it_cannot_open",
     test_log_refuses_a_path_it_cannot_open},
    {NULL, NULL},
};
TEST_MAIN(tests)
