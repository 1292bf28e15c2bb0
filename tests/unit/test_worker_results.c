/* Tests for wk_results: finished tasks held, then encoded as one
 * ResultBatch that the sink's readers accept. */
#include "failalloc.h"
#include "test.h"
#include "wk_results.h"
#include "zp_codec.h"

#include <zpipe/plugin.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Adds a record of job with output and error text. */
static zp_wk_done_t *s_add(zp_wk_results_t *r, const char *job, uint64_t id,
                           int status, zp_cause_t cause, const char *out,
                           const char *err, uint64_t elapsed)
{
    zp_wk_done_t *d = zp_wk_results_push(r, job, 1000);
    if (!d)
        return NULL;
    d->task_id = id;
    d->attempt = 1;
    d->status = status;
    d->cause = cause;
    d->retryable = cause == ZP_CAUSE_PLUGIN_RETRY;
    d->elapsed_us = elapsed;
    zp_buf_append_str(zp_wk_results_out(r), out);
    zp_buf_append_str(zp_wk_results_err(r), err);
    zp_wk_results_finish(r, d);
    return d;
}

static void test_a_batch_encodes_to_what_the_sink_reads(void)
{
    zp_wk_results_t *r = zp_wk_results_new();
    TEST_CHECK(s_add(r, "job1", 1, ZPIPE_OK, ZP_CAUSE_NONE, "out-1", "", 10));
    TEST_CHECK(s_add(r, "job1", 2, ZPIPE_ERROR, ZP_CAUSE_PLUGIN_ERROR, "",
                     "boom", 20));
    zp_wk_done_t *d =
        s_add(r, "job1", 3, ZPIPE_ERROR, ZP_CAUSE_SIGSEGV, "", "crashed", 30);
    TEST_CHECK(d);
    d->quarantined = true;
    TEST_CHECK(s_add(r, "job1", 4, ZPIPE_RETRY, ZP_CAUSE_PLUGIN_RETRY, "",
                     "later", 40));
    TEST_EQ_INT(zp_wk_results_count(r), 4);
    TEST_EQ_STR(zp_wk_results_job(r), "job1");

    zp_buf_t buf = {0};
    zp_wk_batch_info_t info = {
        .worker_id = "w1", .window = 64, .max_held = 9, .tasks_done = 4};
    TEST_CHECK(zp_wk_results_encode(r, &info, &buf) == 0);
    size_t n = 0;
    uint64_t elapsed = 0;
    TEST_CHECK(zp_scan_result_batch(buf.data, buf.len, 1 << 20, &n, &elapsed,
                                    NULL, NULL) == 0);
    TEST_EQ_INT(n, 4);
    TEST_EQ_INT(elapsed, 100);
    zp_result_view_t v = {0};
    TEST_CHECK(zp_view_result_batch(&v, buf.data, buf.len, 1 << 20) == 0);
    const Zpipe__V1__ResultBatch *b = &v.batch;
    TEST_EQ_STR(b->job_id, "job1");
    TEST_EQ_STR(b->worker_id, "w1");
    TEST_EQ_INT(b->window, 64);
    TEST_EQ_INT(b->max_held, 9);
    TEST_EQ_INT(b->tasks_done, 4);
    TEST_EQ_INT(b->n_results, 4);
    const Zpipe__V1__Result *ok = b->results[0];
    TEST_EQ_INT(ok->status, ZPIPE__V1__STATUS__STATUS_OK);
    TEST_CHECK(ok->output.len == 5 && memcmp(ok->output.data, "out-1", 5) == 0);
    TEST_CHECK(!ok->cause || !*ok->cause);
    const Zpipe__V1__Result *bad = b->results[1];
    TEST_EQ_INT(bad->status, ZPIPE__V1__STATUS__STATUS_FAILED);
    TEST_EQ_STR(bad->cause, "plugin_error");
    TEST_EQ_STR(bad->error, "boom");
    TEST_CHECK(!bad->retryable);
    TEST_EQ_STR(b->results[2]->cause, "SIGSEGV");
    TEST_EQ_STR(b->results[2]->error, "crashed");
    TEST_CHECK(b->results[2]->quarantined);
    TEST_EQ_STR(b->results[3]->cause, "plugin_retry");
    TEST_CHECK(b->results[3]->retryable);
    TEST_EQ_INT(b->results[3]->elapsed_us, 40);
    zp_result_view_free(&v);
    zp_buf_free(&buf);

    zp_wk_results_clear(r);
    TEST_EQ_INT(zp_wk_results_count(r), 0);
    TEST_CHECK(zp_wk_results_job(r) == NULL);
    zp_wk_results_destroy(&r);
    TEST_CHECK(r == NULL);
}

static void test_one_job_at_a_time(void)
{
    zp_wk_results_t *r = zp_wk_results_new();
    TEST_CHECK(s_add(r, "a", 1, ZPIPE_OK, ZP_CAUSE_NONE, "x", "", 1));
    TEST_CHECK(zp_wk_results_push(r, "b", 0) == NULL); /* flush first */
    TEST_EQ_INT(zp_wk_results_count(r), 1);
    zp_wk_results_clear(r);
    TEST_CHECK(s_add(r, "b", 2, ZPIPE_OK, ZP_CAUSE_NONE, "y", "", 1));
    TEST_EQ_STR(zp_wk_results_job(r), "b");
    zp_wk_results_destroy(&r);
}

static void test_due_by_output_size_or_age(void)
{
    zp_wk_results_t *r = zp_wk_results_new();
    zp_wk_done_t *d = zp_wk_results_push(r, "j", 5000);
    zp_wk_results_finish(r, d);
    TEST_CHECK(!zp_wk_results_due(r, 5000, 0));
    TEST_CHECK(!zp_wk_results_due(r, 5000 + ZP_WK_FLUSH_US - 1, 0));
    TEST_CHECK(zp_wk_results_due(r, 5000 + ZP_WK_FLUSH_US, 0));
    /* Time spent waiting for a CPU does not count, up to a limit. */
    TEST_CHECK(!zp_wk_results_due(r, 5000 + ZP_WK_FLUSH_US, 1));
    TEST_CHECK(!zp_wk_results_due(r, 5000 + 10 * ZP_WK_FLUSH_US,
                                  9 * ZP_WK_FLUSH_US + 1));
    TEST_CHECK(
        zp_wk_results_due(r, 5000 + 10 * ZP_WK_FLUSH_US, 9 * ZP_WK_FLUSH_US));
    TEST_CHECK(
        zp_wk_results_due(r, 5000 + ZP_WK_FLUSH_MAX_US, ZP_WK_FLUSH_MAX_US));
    TEST_CHECK(
        !zp_wk_results_due(r, 4999 + ZP_WK_FLUSH_MAX_US, ZP_WK_FLUSH_MAX_US));
    /* Later pushes do not restart the clock. */
    d = zp_wk_results_push(r, "j", 9000);
    TEST_CHECK(zp_buf_reserve(zp_wk_results_out(r), ZP_WK_FLUSH_BYTES) == 0);
    zp_wk_results_out(r)->len += ZP_WK_FLUSH_BYTES;
    zp_wk_results_finish(r, d);
    TEST_CHECK(zp_wk_results_due(r, 5001, 0));
    zp_wk_results_destroy(&r);
}

static void test_error_texts_are_separate_strings(void)
{
    zp_wk_results_t *r = zp_wk_results_new();
    s_add(r, "j", 1, ZPIPE_ERROR, ZP_CAUSE_PLUGIN_ERROR, "", "first", 1);
    s_add(r, "j", 2, ZPIPE_ERROR, ZP_CAUSE_PLUGIN_ERROR, "", "", 1);
    s_add(r, "j", 3, ZPIPE_ERROR, ZP_CAUSE_PLUGIN_ERROR, "", "third", 1);
    zp_buf_t buf = {0};
    zp_wk_batch_info_t info = {.worker_id = "w"};
    TEST_CHECK(zp_wk_results_encode(r, &info, &buf) == 0);
    zp_result_view_t v = {0};
    TEST_CHECK(zp_view_result_batch(&v, buf.data, buf.len, 1 << 20) == 0);
    TEST_EQ_STR(v.batch.results[0]->error, "first");
    TEST_CHECK(!v.batch.results[1]->error || !*v.batch.results[1]->error);
    TEST_EQ_STR(v.batch.results[2]->error, "third");
    zp_result_view_free(&v);
    zp_buf_free(&buf);
    zp_wk_results_destroy(&r);
}

/* A small PRNG (xorshift64), so a failure repeats. */
static uint64_t s_rand(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

/* A value of every size a varint takes: 0, small, 1-10 bytes. */
static uint64_t s_any(uint64_t *st)
{
    uint64_t v = s_rand(st);
    switch (v % 5) {
    case 0:
        return 0;
    case 1:
        return v >> 59;
    default:
        return v >> (v >> 58); /* 0..63 bits */
    }
}

/* The direct encoder (zp_wk_results_size/_write, from the records) writes
 * the bytes protobuf-c packs for the batch zp_wk_results_batch fills:
 * 400 batches of 1-40 records of every shape (ok, failed with and without
 * error text, retryable and quarantined flags set on ok records too, which
 * an ok Result leaves out; outputs around the varint length steps; traced
 * and leased), job and worker ids empty or long. */
static void test_the_direct_encoder_writes_what_protobuf_c_packs(void)
{
    static const size_t out_lens[] = {0, 1, 9, 127, 128, 300, 16384, 20000};
    static char text[20000];
    memset(text, 'x', sizeof text);
    static const char *const jobs[] = {"", "j",
                                       "job-0123456789abcdef-long-"
                                       "enough-to-see-its-length"};
    static const char *const workers[] = {NULL, "", "vm-2440-ceef3f"};
    uint64_t st = 0x9e3779b97f4a7c15u;
    int differ = 0, batches = 0;
    for (int b = 0; b < 400; b++) {
        zp_wk_results_t *r = zp_wk_results_new();
        if (!r)
            break;
        const char *job = jobs[s_rand(&st) % 3];
        size_t n = 1 + s_rand(&st) % 40;
        for (size_t i = 0; i < n; i++) {
            zp_wk_done_t *d = zp_wk_results_push(r, job, 1);
            if (!d)
                break;
            uint64_t k = s_rand(&st);
            d->task_id = s_any(&st);
            d->attempt = (uint32_t)s_any(&st);
            d->status = k % 3 == 0   ? ZPIPE_OK
                        : k % 3 == 1 ? ZPIPE_ERROR
                                     : ZPIPE_RETRY;
            d->cause = (zp_cause_t)(s_rand(&st) % 4);
            d->retryable = s_rand(&st) & 1;
            d->quarantined = s_rand(&st) & 1;
            d->start_us = s_any(&st);
            d->elapsed_us = s_any(&st);
            d->queued_us = s_any(&st);
            d->dispatch_us = s_any(&st);
            d->lease = s_rand(&st) & 1 ? s_rand(&st) : 0;
            size_t ol = out_lens[s_rand(&st) % 8];
            zp_buf_append(zp_wk_results_out(r), text, ol);
            if (d->status != ZPIPE_OK)
                zp_buf_append(zp_wk_results_err(r), text,
                              out_lens[s_rand(&st) % 5]);
            zp_wk_results_finish(r, d);
        }
        zp_wk_batch_info_t info = {
            .worker_id = workers[s_rand(&st) % 3],
            .window = (uint32_t)s_any(&st),
            .max_held = (uint32_t)s_any(&st),
            .tasks_done = s_any(&st),
        };
        zp_buf_t got = {0};
        Zpipe__V1__ResultBatch rb;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        if (zp_wk_results_encode(r, &info, &got) == 0 &&
            zp_wk_results_batch(r, &info, &rb) == 0) {
            m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
            m.result_batch = &rb;
            size_t len = zpipe__v1__message__get_packed_size(&m);
            uint8_t *want = malloc(len);
            if (want && zpipe__v1__message__pack(&m, want) == len) {
                batches++;
                if (len != got.len || memcmp(want, got.data, len) != 0)
                    differ++;
            }
            free(want);
        }
        zp_buf_free(&got);
        zp_wk_results_destroy(&r);
    }
    TEST_EQ_INT(batches, 400);
    TEST_EQ_INT(differ, 0);
}

/* The write needs the size counted for these records and this info. */
static void test_a_write_needs_its_size(void)
{
    zp_wk_results_t *r = zp_wk_results_new();
    s_add(r, "j", 1, ZPIPE_OK, ZP_CAUSE_NONE, "out", "", 1);
    zp_wk_batch_info_t info = {.worker_id = "w"};
    uint8_t dst[256];
    TEST_EQ_INT(zp_wk_results_write(r, &info, dst), 0); /* not sized */
    size_t n = zp_wk_results_size(r, &info);
    TEST_CHECK(n > 0 && n <= sizeof dst);
    TEST_EQ_INT(zp_wk_results_write(r, &info, dst), n);
    s_add(r, "j", 2, ZPIPE_OK, ZP_CAUSE_NONE, "out", "", 1);
    TEST_EQ_INT(zp_wk_results_write(r, &info, dst), 0); /* pushed since */
    zp_wk_results_clear(r);
    s_add(r, "j", 3, ZPIPE_OK, ZP_CAUSE_NONE, "out", "", 1);
    TEST_EQ_INT(zp_wk_results_write(r, &info, dst), 0); /* cleared since */
    zp_wk_results_destroy(&r);
}

/* Holds 300 results (past the first growth) and encodes them, under
 * allocation failure: no leak, and a full run encodes them all. */
static void s_results_scenario(void *arg)
{
    int *bad = arg;
    zp_buf_t buf = {0};
    zp_wk_results_t *r = zp_wk_results_new();
    if (!r)
        return;
    bool failed = false;
    for (uint64_t i = 0; i < 300 && !failed; i++)
        failed = !s_add(r, "job", i, ZPIPE_OK, ZP_CAUSE_NONE, "o", "", 1);
    zp_wk_batch_info_t info = {.worker_id = "w"};
    if (!failed && zp_wk_results_encode(r, &info, &buf) < 0)
        failed = true;
    size_t n = 0;
    uint64_t el;
    if (!failed && (zp_scan_result_batch(buf.data, buf.len, 1 << 20, &n, &el,
                                         NULL, NULL) < 0 ||
                    n != 300))
        (*bad)++;
    zp_buf_free(&buf);
    zp_wk_results_destroy(&r);
}

static void test_alloc_failures_in_the_results(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_results_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 4);
}

static const test_case_t tests[] = {
    {"test_a_batch_encodes_to_what_the_sink_reads",
     test_a_batch_encodes_to_what_the_sink_reads},
    {"test_one_job_at_a_time", test_one_job_at_a_time},
    {"test_due_by_output_size_or_age", test_due_by_output_size_or_age},
    {"test_error_texts_are_separate_strings",
     test_error_texts_are_separate_strings},
    {"test_alloc_failures_in_the_results", test_alloc_failures_in_the_results},
    {"test_the_direct_encoder_writes_what_protobuf_c_packs",
     test_the_direct_encoder_writes_what_protobuf_c_packs},
    {"test_a_write_needs_its_size", test_a_write_needs_its_size},
    {NULL, NULL},
};

TEST_MAIN(tests)
