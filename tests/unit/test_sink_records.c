/* Tests for sink_records: the exact bytes of each record format. */
#define _GNU_SOURCE /* memmem */
#include "failalloc.h"
#include "sink_records.h"
#include "test.h"

#include <string.h>

static Zpipe__V1__Result s_result(uint64_t task, bool ok, const char *out,
                                  size_t len)
{
    Zpipe__V1__Result r = ZPIPE__V1__RESULT__INIT;
    r.task_id = task;
    r.status =
        ok ? ZPIPE__V1__STATUS__STATUS_OK : ZPIPE__V1__STATUS__STATUS_FAILED;
    r.output.data = (uint8_t *)out;
    r.output.len = len;
    r.elapsed_us = 42;
    return r;
}

/* b holds exactly want. */
static bool s_is(const zp_buf_t *b, const char *want)
{
    if (b->len == strlen(want) && memcmp(b->data, want, b->len) == 0)
        return true;
    fprintf(stderr, "  got:  %.*s\n  want: %s\n", (int)b->len, b->data, want);
    return false;
}

static void test_json_ok_record(void)
{
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(7, true, "hello", 5);
    zp_records_json(&b, "job-1", "w1", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"job-1\",\"task\":7,\"status\":\"ok\","
                        "\"output\":\"hello\",\"attempts\":1,"
                        "\"worker\":\"w1\",\"elapsed_us\":42}\n"));
    /* The buffer is reused: replaced, not appended to. */
    r.attempt = 2;
    r.output.len = 0;
    zp_records_json(&b, "job-1", "", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"job-1\",\"task\":7,\"status\":\"ok\","
                        "\"output\":\"\",\"attempts\":2,"
                        "\"worker\":\"\",\"elapsed_us\":42}\n"));
    zp_buf_free(&b);
}

static void test_json_escapes_and_keeps_utf8(void)
{
    zp_buf_t b = {0};
    const char out[] = "a\"b\\c\nd\xc3\xa9";
    Zpipe__V1__Result r = s_result(0, true, out, sizeof out - 1);
    zp_records_json(&b, "j", "w", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"task\":0,\"status\":\"ok\","
                        "\"output\":\"a\\\"b\\\\c\\nd\xc3\xa9\",\"attempts\":1,"
                        "\"worker\":\"w\",\"elapsed_us\":42}\n"));
    zp_buf_free(&b);
}

static void test_json_invalid_utf8_is_base64(void)
{
    zp_buf_t b = {0};
    const char out[] = {'\xff', '\x00', 'a'};
    Zpipe__V1__Result r = s_result(3, true, out, sizeof out);
    zp_records_json(&b, "j", "w", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"task\":3,\"status\":\"ok\","
                        "\"output_b64\":\"/wBh\",\"attempts\":1,"
                        "\"worker\":\"w\",\"elapsed_us\":42}\n"));
    zp_buf_free(&b);
}

static void test_json_failure_record(void)
{
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(9, false, "", 0);
    r.cause = "SIGSEGV";
    r.error = "executor died \"hard\"";
    r.retryable = true;
    r.attempt = 3;
    zp_records_json(&b, "j", "w", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"task\":9,\"status\":\"failed\","
                        "\"output\":\"\",\"cause\":\"SIGSEGV\","
                        "\"error\":\"executor died \\\"hard\\\"\","
                        "\"retryable\":true,\"attempts\":3,"
                        "\"worker\":\"w\",\"elapsed_us\":42}\n"));
    /* No cause: plugin_error; no error text: "". */
    r.cause = "";
    r.error = NULL;
    r.retryable = false;
    zp_records_json(&b, "j", "ventilator", &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"task\":9,\"status\":\"failed\","
                        "\"output\":\"\",\"cause\":\"plugin_error\","
                        "\"error\":\"\",\"retryable\":false,\"attempts\":3,"
                        "\"worker\":\"ventilator\",\"elapsed_us\":42}\n"));
    zp_buf_free(&b);
}

static void test_jsonl_context_is_made_once_per_job_and_worker(void)
{
    zp_records_jsonl_t c = {0};
    zp_buf_t b = {0}, one = {0};
    Zpipe__V1__Result r = s_result(5, true, "x", 1);
    /* Records appended one after another into one buffer, as the sink's
     * batches do; each the same bytes as a record made on its own. The
     * second worker's id is the first's escaped: it must not be taken
     * for it. */
    const char *workers[] = {"w\"1", "w\\\"1", "w\"1", "", "\xff\x01"};
    for (size_t i = 0; i < 5; i++) {
        TEST_CHECK(zp_records_jsonl_prepare(&c, i < 3 ? "job-a" : "job-b",
                                            workers[i]) == 0);
        size_t at = b.len;
        r.task_id = i;
        TEST_CHECK(zp_records_jsonl_append(&c, &b, &r) == 0);
        zp_records_json(&one, i < 3 ? "job-a" : "job-b", workers[i], &r);
        TEST_EQ_INT(b.len - at, one.len);
        TEST_CHECK(memcmp(b.data + at, one.data, one.len) == 0);
    }
    static const char want[] = "{\"job\":\"job-b\",\"task\":4,\"status\":"
                               "\"ok\",\"output\":\"x\",\"attempts\":1,"
                               "\"worker\":\"\\ufffd\\u0001\",\"elapsed_us\":"
                               "42}\n";
    TEST_CHECK(s_is(&one, want));
    zp_records_jsonl_free(&c);
    zp_buf_free(&b);
    zp_buf_free(&one);
}

static void s_jsonl_scenario(void *arg)
{
    bool *ok = arg;
    zp_records_jsonl_t c = {0};
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(1, true, "out", 3);
    /* A failed prepare leaves nothing half made: the next one makes all. */
    for (int i = 0; i < 2; i++) {
        if (zp_records_jsonl_prepare(&c, "job", "worker") < 0)
            continue;
        b.len = 0;
        if (zp_records_jsonl_append(&c, &b, &r) == 0)
            *ok = *ok && s_is(&b, "{\"job\":\"job\",\"task\":1,\"status\":"
                                  "\"ok\",\"output\":\"out\",\"attempts\":1,"
                                  "\"worker\":\"worker\",\"elapsed_us\":42}\n");
        else
            *ok = *ok && b.len == 0;
    }
    zp_records_jsonl_free(&c);
    zp_buf_free(&b);
}

static void test_jsonl_alloc_failures(void)
{
    bool ok = true;
    TEST_CHECK(failalloc_sweep(s_jsonl_scenario, &ok) >= 4);
    TEST_CHECK(ok);
}

static void test_lines(void)
{
    zp_buf_t b = {0};
    zp_records_line(&b, "abc", 3);
    TEST_CHECK(s_is(&b, "abc\n"));
    zp_records_line(&b, "abc\n", 4); /* its own newline is not doubled */
    TEST_CHECK(s_is(&b, "abc\n"));
    zp_records_line(&b, "a\n\n", 3); /* only one is dropped */
    TEST_CHECK(s_is(&b, "a\n\n"));
    zp_records_line(&b, NULL, 0);
    TEST_CHECK(s_is(&b, "\n"));
    zp_records_line(&b, "\xff", 1); /* bytes as they are */
    TEST_CHECK(s_is(&b, "\xff\n"));
    zp_buf_free(&b);
}

static void test_reduced_records(void)
{
    zp_buf_t b = {0};
    zp_records_reduced_t r = {
        .job = "j",
        .plugin = "count",
        .ok = true,
        .tasks = 10,
        .succeeded = 9,
        .failed = 1,
        .data = "{\"n\":9}",
        .len = 7,
    };
    zp_records_reduced_json(&b, &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"reduced\":true,\"plugin\":\"count\","
                        "\"status\":\"ok\",\"tasks\":10,\"succeeded\":9,"
                        "\"failed\":1,\"output\":\"{\\\"n\\\":9}\"}\n"));
    r.ok = false;
    r.error = "reduce_final failed";
    r.len = 0;
    zp_records_reduced_json(&b, &r);
    TEST_CHECK(s_is(&b, "{\"job\":\"j\",\"reduced\":true,\"plugin\":\"count\","
                        "\"status\":\"failed\",\"tasks\":10,\"succeeded\":9,"
                        "\"failed\":1,\"error\":\"reduce_final failed\","
                        "\"output\":\"\"}\n"));
    r.error = NULL;
    zp_records_reduced_json(&b, &r);
    static const char want[] = "\"error\":\"failed\",";
    TEST_CHECK(memmem(b.data, b.len, want, sizeof want - 1) != NULL);
    zp_buf_free(&b);
}

/* The fields of a frame record's header. */
typedef struct {
    uint64_t task;
    unsigned flags, cause_len, zero;
    uint32_t out_len, err_len, attempts;
} s_hdr_t;

static uint64_t s_be(const zp_buf_t *b, size_t at, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | (unsigned char)b->data[at + (size_t)i];
    return v;
}

/* Parses b as one frame record: true when its lengths add up to b's. */
static bool s_parse(const zp_buf_t *b, s_hdr_t *h)
{
    if (b->len < ZP_RECORDS_FRAME_HEADER)
        return false;
    h->task = s_be(b, 0, 8);
    h->flags = (unsigned)s_be(b, 8, 1);
    h->cause_len = (unsigned)s_be(b, 9, 1);
    h->zero = (unsigned)s_be(b, 10, 2);
    h->out_len = (uint32_t)s_be(b, 12, 4);
    h->err_len = (uint32_t)s_be(b, 16, 4);
    h->attempts = (uint32_t)s_be(b, 20, 4);
    return b->len == ZP_RECORDS_FRAME_HEADER + (size_t)h->out_len +
                         h->cause_len + h->err_len;
}

/* The body's part at off of len bytes is want. */
static bool s_part(const zp_buf_t *b, size_t off, const void *want, size_t len)
{
    return memcmp(b->data + ZP_RECORDS_FRAME_HEADER + off, want, len) == 0;
}

static void test_frame_ok_record(void)
{
    zp_buf_t b = {0};
    const char out[] = "a\0b\nc\r\xff";
    Zpipe__V1__Result r =
        s_result(0x0102030405060708ull, true, out, sizeof out - 1);
    r.cause = "ignored"; /* not a failure: no cause */
    r.retryable = true;  /* nor retryable */
    zp_records_frame(&b, &r);
    s_hdr_t h;
    TEST_CHECK(s_parse(&b, &h));
    TEST_CHECK(memcmp(b.data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    TEST_EQ_INT(h.task, 0x0102030405060708ull);
    TEST_EQ_INT(h.flags, 0);
    TEST_EQ_INT(h.cause_len, 0);
    TEST_EQ_INT(h.zero, 0);
    TEST_EQ_INT(h.out_len, 7); /* no newline added or removed */
    TEST_EQ_INT(h.err_len, 0);
    TEST_EQ_INT(h.attempts, 1);
    TEST_CHECK(s_part(&b, 0, out, 7));
    r.attempt = 0x01020304;
    zp_records_frame(&b, &r); /* replaced, not appended to */
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.attempts, 0x01020304);
    TEST_CHECK(memcmp(b.data + 20, "\x01\x02\x03\x04", 4) == 0);
    zp_buf_free(&b);
}

static void test_frame_empty_output(void)
{
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(5, true, NULL, 0);
    zp_records_frame(&b, &r);
    s_hdr_t h;
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(b.len, ZP_RECORDS_FRAME_HEADER);
    TEST_EQ_INT(h.task, 5);
    TEST_EQ_INT(h.flags, 0);
    TEST_EQ_INT(h.out_len, 0);
    TEST_EQ_INT(h.attempts, 1);
    zp_buf_free(&b);
}

static void test_frame_failed_records(void)
{
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(9, false, "part", 4);
    r.cause = "SIGSEGV";
    r.error = "executor died";
    r.attempt = 3;
    zp_records_frame(&b, &r);
    s_hdr_t h;
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.task, 9);
    TEST_EQ_INT(h.flags, ZP_RECORDS_FRAME_FAILED);
    TEST_EQ_INT(h.cause_len, 7);
    TEST_EQ_INT(h.zero, 0);
    TEST_EQ_INT(h.out_len, 4);
    TEST_EQ_INT(h.err_len, 13);
    TEST_EQ_INT(h.attempts, 3);
    TEST_CHECK(s_part(&b, 0, "part", 4));
    TEST_CHECK(s_part(&b, 4, "SIGSEGV", 7));
    TEST_CHECK(s_part(&b, 11, "executor died", 13));
    /* Retryable; no cause: plugin_error; no error text: none. */
    r.retryable = true;
    r.cause = "";
    r.error = NULL;
    r.output.len = 0;
    zp_records_frame(&b, &r);
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.flags, ZP_RECORDS_FRAME_FAILED | ZP_RECORDS_FRAME_RETRY);
    TEST_EQ_INT(h.cause_len, 12);
    TEST_EQ_INT(h.out_len, 0);
    TEST_EQ_INT(h.err_len, 0);
    TEST_CHECK(s_part(&b, 0, "plugin_error", 12));
    /* A cause longer than its byte of length is cut at 255. */
    char cause[300];
    memset(cause, 'c', sizeof cause - 1);
    cause[sizeof cause - 1] = '\0';
    r.cause = cause;
    zp_records_frame(&b, &r);
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.cause_len, 255);
    zp_buf_free(&b);
}

static void test_frame_reduced_records(void)
{
    zp_buf_t b = {0};
    zp_records_reduced_t r = {
        .job = "j",
        .plugin = "count",
        .ok = true,
        .tasks = 10,
        .succeeded = 9,
        .failed = 1,
        .data = "{\"n\":9}",
        .len = 7,
    };
    zp_records_reduced_frame(&b, &r);
    s_hdr_t h;
    TEST_CHECK(s_parse(&b, &h));
    TEST_CHECK(memcmp(b.data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8) == 0);
    TEST_EQ_INT(h.flags, ZP_RECORDS_FRAME_REDUCED);
    TEST_EQ_INT(h.cause_len, 0);
    TEST_EQ_INT(h.zero, 0);
    TEST_EQ_INT(h.out_len, 7);
    TEST_EQ_INT(h.err_len, 0);
    TEST_EQ_INT(h.attempts, 1);
    TEST_CHECK(s_part(&b, 0, "{\"n\":9}", 7));
    r.ok = false;
    r.error = "reduce_final failed";
    r.len = 0;
    zp_records_reduced_frame(&b, &r);
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.flags, ZP_RECORDS_FRAME_REDUCED | ZP_RECORDS_FRAME_FAILED);
    TEST_EQ_INT(h.out_len, 0);
    TEST_EQ_INT(h.err_len, 19);
    TEST_CHECK(s_part(&b, 0, "reduce_final failed", 19));
    r.error = NULL;
    zp_records_reduced_frame(&b, &r);
    TEST_CHECK(s_parse(&b, &h));
    TEST_EQ_INT(h.err_len, 6);
    TEST_CHECK(s_part(&b, 0, "failed", 6));
    zp_buf_free(&b);
}

static void test_format_names(void)
{
    TEST_EQ_INT(zp_records_format("jsonl"), ZP_RECORDS_JSONL);
    TEST_EQ_INT(zp_records_format("lines"), ZP_RECORDS_LINES);
    TEST_EQ_INT(zp_records_format("frames"), ZP_RECORDS_FRAMES);
}

static void s_scenario(void *arg)
{
    (void)arg;
    zp_buf_t b = {0};
    Zpipe__V1__Result r = s_result(1, false, "\xfe\xfe", 2);
    r.cause = "timeout";
    r.error = "late";
    zp_records_json(&b, "job", "worker", &r);
    zp_records_line(&b, "x", 1);
    zp_records_reduced_t rr = {
        .job = "j", .plugin = "p", .data = "v", .len = 1};
    zp_records_reduced_json(&b, &rr);
    zp_records_frame(&b, &r);
    zp_records_reduced_frame(&b, &rr);
    zp_buf_free(&b);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 1);
}

static const test_case_t tests[] = {
    {"test_json_ok_record", test_json_ok_record},
    {"test_json_escapes_and_keeps_utf8", test_json_escapes_and_keeps_utf8},
    {"test_json_invalid_utf8_is_base64", test_json_invalid_utf8_is_base64},
    {"test_json_failure_record", test_json_failure_record},
    {"test_jsonl_context_is_made_once_per_job_and_worker",
     test_jsonl_context_is_made_once_per_job_and_worker},
    {"test_jsonl_alloc_failures", test_jsonl_alloc_failures},
    {"test_lines", test_lines},
    {"test_reduced_records", test_reduced_records},
    {"test_frame_ok_record", test_frame_ok_record},
    {"test_frame_empty_output", test_frame_empty_output},
    {"test_frame_failed_records", test_frame_failed_records},
    {"test_frame_reduced_records", test_frame_reduced_records},
    {"test_format_names", test_format_names},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
