/* Tests for zp_codec: round trips, size caps, malformed frames, arena. */
#include "failalloc.h"
#include "test.h"
#include "zp_codec.h"

static void test_task_batch_round_trips(void)
{
    Zpipe__V1__Task t[3], *tp[3];
    for (int i = 0; i < 3; i++) {
        zpipe__v1__task__init(&t[i]);
        t[i].task_id = 10 + (uint64_t)i;
        t[i].payload.data = (uint8_t *)"abc";
        t[i].payload.len = (size_t)i;
        t[i].attempt = 1;
        tp[i] = &t[i];
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = "job-1";
    b.plugin = "echo";
    b.tasks = tp;
    b.n_tasks = 3;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    zp_arena_t *a = zp_arena_new();
    zp_message_t *d = zp_decode(a, buf.data, buf.len, 1 << 20);
    TEST_CHECK(d != NULL);
    TEST_EQ_INT(d->kind_case, ZPIPE__V1__MESSAGE__KIND_TASK_BATCH);
    TEST_EQ_STR(d->task_batch->job_id, "job-1");
    TEST_EQ_STR(d->task_batch->plugin, "echo");
    TEST_EQ_INT(d->task_batch->n_tasks, 3);
    TEST_EQ_INT(d->task_batch->tasks[2]->task_id, 12);
    TEST_EQ_INT(d->task_batch->tasks[2]->payload.len, 2);
    TEST_CHECK(memcmp(d->task_batch->tasks[2]->payload.data, "ab", 2) == 0);
    TEST_EQ_STR(zp_kind_name(d), "task_batch");
    zp_arena_destroy(&a);
    TEST_CHECK(a == NULL);
    zp_buf_free(&buf);
}

static void test_decode_rejects_garbage(void)
{
    zp_arena_t *a = zp_arena_new();
    const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    TEST_CHECK(zp_decode(a, junk, sizeof junk - 1, 1 << 20) == NULL);
    /* A length prefix that runs past the end of the frame. */
    const char trunc[] = "\x0a\x7f\x0a";
    TEST_CHECK(zp_decode(a, trunc, 3, 1 << 20) == NULL);
    zp_arena_destroy(&a);
}

static void test_decode_rejects_empty_kind(void)
{
    zp_arena_t *a = zp_arena_new();
    TEST_CHECK(zp_decode(a, "", 0, 1 << 20) == NULL);
    zp_arena_destroy(&a);
}

static void test_decode_enforces_max_len(void)
{
    Zpipe__V1__Credit c = ZPIPE__V1__CREDIT__INIT;
    c.credit = 5;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_CREDIT;
    m.credit = &c;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    zp_arena_t *a = zp_arena_new();
    TEST_CHECK(zp_decode(a, buf.data, buf.len, buf.len) != NULL);
    TEST_CHECK(zp_decode(a, buf.data, buf.len, buf.len - 1) == NULL);
    zp_arena_destroy(&a);
    zp_buf_free(&buf);
}

static void test_arena_reset_keeps_one_block(void)
{
    zp_arena_t *a = zp_arena_new();
    /* A big payload forces a dedicated block; reset returns to one. */
    static uint8_t big[300000];
    Zpipe__V1__Task t = ZPIPE__V1__TASK__INIT, *tp = &t;
    t.payload.data = big;
    t.payload.len = sizeof big;
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.tasks = &tp;
    b.n_tasks = 1;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    for (int i = 0; i < 100; i++) {
        zp_arena_reset(a);
        TEST_CHECK(zp_decode(a, buf.data, buf.len, 1 << 20) != NULL);
    }
    TEST_CHECK(zp_arena_held(a) >= sizeof big);
    zp_arena_reset(a);
    TEST_CHECK(zp_arena_held(a) <= 64 * 1024);
    zp_arena_destroy(&a);
    zp_buf_free(&buf);
}

/* Encodes a result batch of n results with elapsed_us 1..n. */
static void s_result_frame(zp_buf_t *buf, size_t n)
{
    Zpipe__V1__Result r[8], *rp[8];
    for (size_t i = 0; i < n; i++) {
        zpipe__v1__result__init(&r[i]);
        r[i].task_id = i;
        r[i].output.data = (uint8_t *)"xyz";
        r[i].output.len = 3;
        r[i].elapsed_us = i + 1;
        r[i].cause = i % 2 ? "plugin_error" : NULL;
        r[i].queued_us = i % 3 ? 0 : 1700000000000000ull + i; /* traced */
        r[i].dispatch_us = r[i].queued_us ? r[i].queued_us + 5 : 0;
        rp[i] = &r[i];
    }
    Zpipe__V1__ResultBatch b = ZPIPE__V1__RESULT_BATCH__INIT;
    b.job_id = "job-1";
    b.worker_id = "w";
    b.results = rp;
    b.n_results = n;
    b.window = 64;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &b;
    TEST_CHECK(zp_encode(&m, buf) == 0);
}

typedef struct {
    size_t n;
    uint64_t v[16];
} s_elapsed_t;

static void s_collect_elapsed(void *arg, uint64_t elapsed_us)
{
    s_elapsed_t *e = arg;
    if (e->n < 16)
        e->v[e->n] = elapsed_us;
    e->n++;
}

static void test_scans_count_what_decode_sees(void)
{
    Zpipe__V1__Task t[5], *tp[5];
    for (int i = 0; i < 5; i++) {
        zpipe__v1__task__init(&t[i]);
        t[i].task_id = 1000000 + (uint64_t)i;
        t[i].payload.data = (uint8_t *)"payload";
        t[i].payload.len = 7;
        t[i].attempt = 2;
        t[i].deadline_ms = 300;
        tp[i] = &t[i];
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = "job-1";
    b.plugin = "echo";
    b.tasks = tp;
    b.n_tasks = 5;
    b.dispatch_us = 1234567;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    size_t n = 0;
    uint64_t sum = 0;
    TEST_EQ_INT(zp_scan_task_batch(buf.data, buf.len, 1 << 20, &n, NULL, NULL),
                0);
    TEST_EQ_INT(n, 5);
    /* The deadlines the worker sleeps by: all 300, then one without and
     * one shorter. */
    uint64_t min_ms = 1;
    bool without = true;
    zp_task_batch_deadlines(buf.data, buf.len, &min_ms, &without);
    TEST_EQ_INT(min_ms, 300);
    TEST_CHECK(!without);
    t[1].deadline_ms = 0;
    t[3].deadline_ms = 40;
    zp_buf_t mixed = {0};
    TEST_CHECK(zp_encode(&m, &mixed) == 0);
    zp_task_batch_deadlines(mixed.data, mixed.len, &min_ms, &without);
    TEST_EQ_INT(min_ms, 40);
    TEST_CHECK(without);
    /* The same from the arrival scan, in its one pass. */
    min_ms = 1;
    without = false;
    TEST_EQ_INT(zp_scan_task_batch(mixed.data, mixed.len, 1 << 20, &n, &min_ms,
                                   &without),
                0);
    TEST_EQ_INT(n, 5);
    TEST_EQ_INT(min_ms, 40);
    TEST_CHECK(without);
    for (size_t i = 0; i < 5; i++)
        t[i].deadline_ms = 0;
    TEST_CHECK(zp_encode(&m, &mixed) == 0);
    zp_task_batch_deadlines(mixed.data, mixed.len, &min_ms, &without);
    TEST_EQ_INT(min_ms, 0);
    TEST_CHECK(without);
    zp_buf_free(&mixed);
    /* Not a result batch; over the size cap; truncated anywhere. */
    TEST_EQ_INT(
        zp_scan_result_batch(buf.data, buf.len, 1 << 20, &n, &sum, NULL, NULL),
        -1);
    TEST_EQ_INT(
        zp_scan_task_batch(buf.data, buf.len, buf.len - 1, &n, NULL, NULL), -1);
    for (size_t cut = 1; cut < buf.len; cut++)
        TEST_EQ_INT(zp_scan_task_batch(buf.data, cut, 1 << 20, &n, NULL, NULL),
                    -1);
    /* Two batches in one frame: protobuf-c keeps the last, so no count. */
    size_t one = buf.len;
    TEST_CHECK(zp_buf_append(&buf, buf.data, one) == 0);
    TEST_EQ_INT(zp_scan_task_batch(buf.data, buf.len, 1 << 20, &n, NULL, NULL),
                -1);
    /* An empty batch counts zero. */
    b.n_tasks = 0;
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    TEST_EQ_INT(zp_scan_task_batch(buf.data, buf.len, 1 << 20, &n, NULL, NULL),
                0);
    TEST_EQ_INT(n, 0);

    s_result_frame(&buf, 8);
    /* Each result's own time, in order (the worker's histogram). */
    s_elapsed_t seen = {0};
    TEST_EQ_INT(zp_scan_result_batch(buf.data, buf.len, 1 << 20, &n, &sum,
                                     s_collect_elapsed, &seen),
                0);
    TEST_EQ_INT(n, 8);
    TEST_EQ_INT(sum, 36);
    TEST_EQ_INT(seen.n, 8);
    for (size_t i = 0; i < 8; i++)
        TEST_EQ_INT(seen.v[i], i + 1);
    TEST_EQ_INT(zp_scan_task_batch(buf.data, buf.len, 1 << 20, &n, NULL, NULL),
                -1);
    /* A known field with the wrong wire type: the first result's task_id
     * (tag 0x08) made a fixed64 (0x09). decode refuses; so must the scan. */
    unsigned char *p = memchr(buf.data, 0x08, buf.len);
    TEST_CHECK(p != NULL);
    *p = 0x09;
    zp_arena_t *a = zp_arena_new();
    TEST_CHECK(zp_decode(a, buf.data, buf.len, 1 << 20) == NULL);
    TEST_EQ_INT(
        zp_scan_result_batch(buf.data, buf.len, 1 << 20, &n, &sum, NULL, NULL),
        -1);
    /* Other kinds are not batches. */
    Zpipe__V1__Heartbeat hb = ZPIPE__V1__HEARTBEAT__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    TEST_EQ_INT(zp_scan_task_batch(buf.data, buf.len, 1 << 20, &n, NULL, NULL),
                -1);
    TEST_EQ_INT(zp_scan_task_batch("", 0, 1 << 20, &n, NULL, NULL), -1);
    zp_arena_destroy(&a);
    zp_buf_free(&buf);
}

static void test_views_see_what_decode_sees(void)
{
    Zpipe__V1__Task t[3], *tp[3];
    for (int i = 0; i < 3; i++) {
        zpipe__v1__task__init(&t[i]);
        t[i].task_id = 7 + (uint64_t)i;
        t[i].payload.data = (uint8_t *)"a\0b";
        t[i].payload.len = (size_t)i + 1;
        t[i].attempt = (uint32_t)i;
        t[i].queued_us = i == 1 ? 1700000000000001ull : 0;
        tp[i] = &t[i];
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = "job-9";
    b.plugin = "echo";
    b.tasks = tp;
    b.n_tasks = 3;
    b.seq = 300; /* a producer's batch number (two-byte varint) */
    b.lines.data = (uint8_t *)"x\n\nyz\n";
    b.lines.len = 6;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    zp_task_view_t tv = {0};
    for (int round = 0; round < 2; round++) { /* arrays are reused */
        TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, 1 << 20), 0);
        TEST_EQ_STR(tv.batch.job_id, "job-9");
        TEST_EQ_STR(tv.batch.plugin, "echo");
        TEST_EQ_INT(tv.batch.n_tasks, 3);
        TEST_EQ_INT(tv.batch.seq, 300);
        TEST_EQ_INT(tv.batch.tasks[2]->task_id, 9);
        TEST_EQ_INT(tv.batch.tasks[2]->attempt, 2);
        TEST_EQ_INT(tv.batch.tasks[2]->payload.len, 3);
        TEST_EQ_INT(tv.batch.tasks[1]->queued_us, 1700000000000001ull);
        TEST_EQ_INT(tv.batch.tasks[2]->queued_us, 0);
        TEST_CHECK(memcmp(tv.batch.tasks[2]->payload.data, "a\0b", 3) == 0);
        TEST_EQ_INT(tv.batch.lines.len, 6);
        TEST_CHECK(memcmp(tv.batch.lines.data, "x\n\nyz\n", 6) == 0);
        /* zero copy: the payload is in the frame */
        TEST_CHECK((char *)tv.batch.tasks[2]->payload.data >= buf.data &&
                   (char *)tv.batch.tasks[2]->payload.data <
                       buf.data + buf.len);
    }
    zp_result_view_t rv = {0};
    TEST_EQ_INT(zp_view_result_batch(&rv, buf.data, buf.len, 1 << 20), -1);
    s_result_frame(&buf, 8);
    TEST_EQ_INT(zp_view_result_batch(&rv, buf.data, buf.len, 1 << 20), 0);
    TEST_EQ_STR(rv.batch.job_id, "job-1");
    TEST_EQ_STR(rv.batch.worker_id, "w");
    TEST_EQ_INT(rv.batch.window, 64);
    TEST_EQ_INT(rv.batch.n_results, 8);
    TEST_EQ_INT(rv.batch.results[3]->elapsed_us, 4);
    TEST_EQ_STR(rv.batch.results[3]->cause, "plugin_error");
    TEST_EQ_STR(rv.batch.results[2]->cause, ""); /* unset: empty, as decoded */
    TEST_EQ_INT(rv.batch.results[3]->output.len, 3);
    TEST_EQ_INT(rv.batch.results[3]->queued_us, 1700000000000003ull);
    TEST_EQ_INT(rv.batch.results[3]->dispatch_us, 1700000000000008ull);
    TEST_EQ_INT(rv.batch.results[4]->queued_us, 0);
    TEST_EQ_INT(rv.batch.results[4]->dispatch_us, 0);
    TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, 1 << 20), -1);
    zp_task_view_free(&tv);
    zp_result_view_free(&rv);
    zp_buf_free(&buf);
}

/* The views check as they fill, in one walk: a batch of many tasks grows
 * the arrays (kept for the next call), and a frame cut anywhere or with a
 * known field of the wrong wire type is refused, as decode refuses it. */
static void test_views_check_as_they_fill(void)
{
    enum { N = 1000 };
    static Zpipe__V1__Task t[N], *tp[N];
    for (size_t i = 0; i < N; i++) {
        zpipe__v1__task__init(&t[i]);
        t[i].task_id = 1 + i * 1000003u; /* varints of 1 to 4 bytes */
        t[i].payload.data = (uint8_t *)"xyz";
        t[i].payload.len = i % 4;
        t[i].deadline_ms = i % 3 ? 0 : 50 + i;
        t[i].lease = i % 5 ? 0 : 0x0102030405060708ull + i;
        tp[i] = &t[i];
    }
    Zpipe__V1__TaskBatch b = ZPIPE__V1__TASK_BATCH__INIT;
    b.job_id = "job-many";
    b.plugin = "echo";
    b.config = "k=v";
    b.tasks = tp;
    b.n_tasks = N;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
    m.task_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    zp_task_view_t tv = {0};
    zp_arena_t *a = zp_arena_new();
    TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, 1 << 20), 0);
    TEST_EQ_INT(tv.batch.n_tasks, N);
    TEST_CHECK(tv.cap >= N);
    zp_message_t *d = zp_decode(a, buf.data, buf.len, 1 << 20);
    TEST_CHECK(d != NULL);
    size_t same = 0;
    for (size_t i = 0; d && i < N; i++) {
        const Zpipe__V1__Task *x = tv.batch.tasks[i];
        const Zpipe__V1__Task *y = d->task_batch->tasks[i];
        same += x->task_id == y->task_id && x->deadline_ms == y->deadline_ms &&
                x->lease == y->lease && x->payload.len == y->payload.len &&
                (x->payload.len == 0 || /* then data is NULL */
                 memcmp(x->payload.data, y->payload.data, x->payload.len) == 0);
    }
    TEST_EQ_INT(same, N);
    TEST_EQ_STR(tv.batch.config, "k=v");
    /* Cut anywhere: refused, and so is it by decode. */
    size_t refused = 0, decoded = 0;
    for (size_t cut = 0; cut < buf.len; cut += 7) {
        refused += zp_view_task_batch(&tv, buf.data, cut, 1 << 20) < 0;
        zp_arena_reset(a);
        decoded += zp_decode(a, buf.data, cut, 1 << 20) != NULL;
    }
    TEST_EQ_INT(refused, (buf.len + 6) / 7);
    TEST_EQ_INT(decoded, 0);
    /* Over the size cap. */
    TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, buf.len - 1), -1);
    /* The last task's payload (tag 0x12: field 2, bytes) put in field 1,
     * task_id, a varint (0x0a): still well-formed bytes, so only the
     * field's wire type refuses it. */
    unsigned char *p = NULL;
    for (size_t i = buf.len - 5; i-- > 0 && !p;)
        if (memcmp(buf.data + i, "\x12\x03xyz", 5) == 0)
            p = (unsigned char *)buf.data + i;
    TEST_CHECK(p != NULL);
    if (p)
        *p = 0x0a;
    zp_arena_reset(a);
    TEST_CHECK(zp_decode(a, buf.data, buf.len, 1 << 20) == NULL);
    TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, 1 << 20), -1);
    /* A smaller batch in the same view afterwards. */
    b.n_tasks = 2;
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    TEST_EQ_INT(zp_view_task_batch(&tv, buf.data, buf.len, 1 << 20), 0);
    TEST_EQ_INT(tv.batch.n_tasks, 2);
    TEST_EQ_INT(tv.batch.tasks[1]->task_id, t[1].task_id);
    zp_arena_destroy(&a);
    zp_task_view_free(&tv);
    zp_buf_free(&buf);
}

/* Results as workers send them take a shorter walk (their usual fields
 * by tag); what it fills and what it refuses is still what decode does:
 * every field of many results of every shape, the frame cut anywhere, a
 * usual field with another wire type, and fields in another order. */
static void test_result_views_see_what_decode_sees(void)
{
    enum { N = 600 };
    static Zpipe__V1__Result r[N], *rp[N];
    static const char *causes[] = {"", "plugin_error", "timeout"};
    for (size_t i = 0; i < N; i++) {
        zpipe__v1__result__init(&r[i]);
        r[i].task_id = 1 + i * 1000003u;
        r[i].status = i % 7 == 3 ? ZPIPE__V1__STATUS__STATUS_FAILED
                                 : ZPIPE__V1__STATUS__STATUS_OK;
        r[i].output.data = (uint8_t *)"out\0put";
        r[i].output.len = i % 8;
        r[i].error = i % 7 == 3 ? "it broke" : "";
        r[i].cause = (char *)causes[i % 3];
        r[i].attempt = (uint32_t)(i % 4);
        r[i].start_us = i % 11 ? 0 : 1700000000000000ull + i;
        r[i].elapsed_us = i % 5 ? i * 37 : 0;
        r[i].retryable = i % 6 == 1;
        r[i].queued_us = i % 13 ? 0 : 1700000000000000ull + 2 * i;
        r[i].dispatch_us = i % 13 ? 0 : 1700000000000000ull + 3 * i;
        r[i].quarantined = i % 17 == 2;
        r[i].lease = i % 2 ? 0x0102030405060708ull * i : 0;
        rp[i] = &r[i];
    }
    Zpipe__V1__ResultBatch b = ZPIPE__V1__RESULT_BATCH__INIT;
    b.job_id = "job-r";
    b.worker_id = "w-1";
    b.results = rp;
    b.n_results = N;
    b.window = 4096;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &b;
    zp_buf_t buf = {0};
    TEST_CHECK(zp_encode(&m, &buf) == 0);
    zp_result_view_t rv = {0};
    zp_arena_t *a = zp_arena_new();
    TEST_EQ_INT(zp_view_result_batch(&rv, buf.data, buf.len, 1 << 24), 0);
    zp_message_t *d = zp_decode(a, buf.data, buf.len, 1 << 24);
    TEST_CHECK(d != NULL);
    TEST_EQ_INT(rv.batch.n_results, N);
    size_t same = 0;
    for (size_t i = 0; d && i < N && i < rv.batch.n_results; i++) {
        const Zpipe__V1__Result *x = rv.batch.results[i];
        const Zpipe__V1__Result *y = d->result_batch->results[i];
        same +=
            x->task_id == y->task_id && x->status == y->status &&
            x->attempt == y->attempt && x->start_us == y->start_us &&
            x->elapsed_us == y->elapsed_us && x->retryable == y->retryable &&
            x->queued_us == y->queued_us && x->dispatch_us == y->dispatch_us &&
            x->quarantined == y->quarantined && x->lease == y->lease &&
            strcmp(x->error, y->error) == 0 &&
            strcmp(x->cause, y->cause) == 0 && x->output.len == y->output.len &&
            (!x->output.len ||
             memcmp(x->output.data, y->output.data, x->output.len) == 0);
    }
    TEST_EQ_INT(same, N);
    /* Cut anywhere: refused by both (cuts inside the usual fields too). */
    size_t refused = 0, decoded = 0;
    for (size_t cut = 0; cut < buf.len; cut += 3) {
        refused += zp_view_result_batch(&rv, buf.data, cut, 1 << 24) < 0;
        zp_arena_reset(a);
        decoded += zp_decode(a, buf.data, cut, 1 << 24) != NULL;
    }
    TEST_EQ_INT(refused, (buf.len + 2) / 3);
    TEST_EQ_INT(decoded, 0);
    /* One result by hand: its lease (fixed64) first, an unknown field
     * (14, a varint), then task_id, output and elapsed_us; then the same
     * with the output's tag turned into a varint's (field 3, wire type
     * 0), and the lease's (field 13, wire type 0). */
    static const unsigned char one[] = {0x69, 1,    2,    3,   4,
                                        5,    6,    7,    8, /* lease */
                                        0x70, 0x05, /* field 14 = 5, unknown */
                                        0x08, 0x96, 0x01,      /* task_id 150 */
                                        0x1a, 0x02, 'o',  'k', /* output "ok" */
                                        0x40, 0x07}; /* elapsed_us 7 */
    unsigned char frame[64];
    for (int k = 0; k < 3; k++) {
        unsigned char item[sizeof one];
        memcpy(item, one, sizeof one);
        if (k == 1)
            item[14] = 0x18;
        if (k == 2)
            item[0] = 0x68;
        size_t n = 0;
        frame[n++] = 0x12; /* Message.result_batch: field 2, bytes */
        frame[n++] = (unsigned char)(2 + sizeof item);
        frame[n++] = 0x1a; /* ResultBatch.results: field 3, bytes */
        frame[n++] = (unsigned char)sizeof item;
        memcpy(frame + n, item, sizeof item);
        n += sizeof item;
        zp_arena_reset(a);
        d = zp_decode(a, frame, n, 1 << 20);
        int v = zp_view_result_batch(&rv, frame, n, 1 << 20);
        TEST_EQ_INT(v, d ? 0 : -1);
        TEST_EQ_INT(v, k == 0 ? 0 : -1);
        if (k == 0 && d && v == 0) {
            const Zpipe__V1__Result *x = rv.batch.results[0];
            TEST_EQ_INT(x->lease, 0x0807060504030201ull);
            TEST_EQ_INT(x->lease, d->result_batch->results[0]->lease);
            TEST_EQ_INT(x->task_id, 150);
            TEST_EQ_INT(x->elapsed_us, 7);
            TEST_CHECK(x->output.len == 2 &&
                       memcmp(x->output.data, "ok", 2) == 0);
        }
    }
    /* A lease cut short inside its result: seven of its eight bytes. */
    static const unsigned char short_lease[] = {0x08, 0x01, 0x69, 1, 2,
                                                3,    4,    5,    6, 7};
    size_t n = 0;
    frame[n++] = 0x12;
    frame[n++] = (unsigned char)(2 + sizeof short_lease);
    frame[n++] = 0x1a;
    frame[n++] = (unsigned char)sizeof short_lease;
    memcpy(frame + n, short_lease, sizeof short_lease);
    n += sizeof short_lease;
    zp_arena_reset(a);
    TEST_CHECK(zp_decode(a, frame, n, 1 << 20) == NULL);
    TEST_EQ_INT(zp_view_result_batch(&rv, frame, n, 1 << 20), -1);
    zp_arena_destroy(&a);
    zp_result_view_free(&rv);
    zp_buf_free(&buf);
}

static uint64_t s_rand(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t x = *seed >> 11;
    /* Mostly small values, some at every width, some zero (left out). */
    switch (x % 4) {
    case 0:
        return 0;
    case 1:
        return x % 200;
    case 2:
        return x >> (x % 64);
    default:
        return *seed;
    }
}

static void s_pack(const zp_message_t *m, zp_buf_t *out)
{
    out->len = 0;
    TEST_CHECK(zp_buf_reserve(out, zpipe__v1__message__get_packed_size(m)) ==
               0);
    out->len = zpipe__v1__message__pack(m, (uint8_t *)out->data);
}

static void test_batch_encoders_write_what_protobuf_c_writes(void)
{
    static uint8_t bytes[4096];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 7);
    const char *strs[] = {NULL, "", "job-1", "a much longer string than most"};
    uint64_t seed = 99;
    zp_buf_t a = {0}, b = {0};
    for (int round = 0; round < 2000; round++) {
        Zpipe__V1__Task t[9], *tp[9];
        Zpipe__V1__Result r[9], *rp[9];
        size_t n = (size_t)(s_rand(&seed) % 10);
        for (size_t i = 0; i < n; i++) {
            zpipe__v1__task__init(&t[i]);
            t[i].task_id = s_rand(&seed);
            t[i].payload.len = (size_t)(s_rand(&seed) % sizeof bytes);
            t[i].payload.data = t[i].payload.len ? bytes : NULL;
            t[i].attempt = (uint32_t)s_rand(&seed);
            t[i].deadline_ms = s_rand(&seed);
            t[i].queued_us = s_rand(&seed);
            tp[i] = &t[i];
            zpipe__v1__result__init(&r[i]);
            r[i].task_id = s_rand(&seed);
            r[i].status = (Zpipe__V1__Status)(int32_t)(s_rand(&seed) % 3 - 1);
            r[i].output = t[i].payload;
            r[i].error = (char *)strs[s_rand(&seed) % 4];
            r[i].cause = (char *)strs[s_rand(&seed) % 4];
            r[i].attempt = (uint32_t)s_rand(&seed);
            r[i].start_us = s_rand(&seed);
            r[i].elapsed_us = s_rand(&seed);
            r[i].retryable = s_rand(&seed) % 2;
            r[i].queued_us = s_rand(&seed);
            r[i].dispatch_us = s_rand(&seed);
            rp[i] = &r[i];
        }
        Zpipe__V1__TaskBatch tb = ZPIPE__V1__TASK_BATCH__INIT;
        tb.job_id = (char *)strs[s_rand(&seed) % 4];
        tb.plugin = (char *)strs[s_rand(&seed) % 4];
        tb.tasks = tp;
        tb.n_tasks = n;
        tb.dispatch_us = s_rand(&seed);
        tb.config = (char *)strs[s_rand(&seed) % 4];
        tb.seq = s_rand(&seed) % 3 ? s_rand(&seed) : 0;
        tb.lines.len = s_rand(&seed) % 3 ? 0 : (size_t)(s_rand(&seed) % 300);
        tb.lines.data = tb.lines.len ? bytes : NULL;
        zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_TASK_BATCH;
        m.task_batch = &tb;
        s_pack(&m, &a); /* protobuf-c itself */
        TEST_CHECK(zp_encode_task_batch(&tb, &b) == 0);
        TEST_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);

        Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
        rb.job_id = (char *)strs[s_rand(&seed) % 4];
        rb.worker_id = (char *)strs[s_rand(&seed) % 4];
        rb.results = rp;
        rb.n_results = n;
        rb.window = (uint32_t)s_rand(&seed);
        rb.max_held = (uint32_t)s_rand(&seed);
        rb.tasks_done = s_rand(&seed);
        m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
        m.result_batch = &rb;
        s_pack(&m, &a);
        TEST_CHECK(zp_encode_result_batch(&rb, &b) == 0);
        TEST_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    }
    zp_buf_free(&a);
    zp_buf_free(&b);
}

/* One pass over every allocating path of the codec: encode, decode into an
 * arena, the zero-copy views, the batch encoders. Under allocation
 * failure each call reports it; a call that succeeds gives what it
 * should (*bad otherwise). No TEST_CHECK here: failures are expected. */
static void s_codec_scenario(void *arg)
{
    int *bad = arg;
    Zpipe__V1__Task t[4], *tp[4];
    Zpipe__V1__Result r[4], *rp[4];
    for (int i = 0; i < 4; i++) {
        zpipe__v1__task__init(&t[i]);
        t[i].task_id = (uint64_t)i;
        t[i].payload.data = (uint8_t *)"payload";
        t[i].payload.len = 7;
        tp[i] = &t[i];
        zpipe__v1__result__init(&r[i]);
        r[i].task_id = (uint64_t)i;
        r[i].output.data = (uint8_t *)"out";
        r[i].output.len = 3;
        r[i].cause = i % 2 ? "plugin_error" : NULL;
        r[i].error = i % 2 ? "failed" : NULL;
        rp[i] = &r[i];
    }
    Zpipe__V1__TaskBatch tb = ZPIPE__V1__TASK_BATCH__INIT;
    tb.job_id = "job-1";
    tb.plugin = "echo";
    tb.config = "a=1";
    tb.tasks = tp;
    tb.n_tasks = 4;
    Zpipe__V1__ResultBatch rb = ZPIPE__V1__RESULT_BATCH__INIT;
    rb.job_id = "job-1";
    rb.worker_id = "w1";
    rb.results = rp;
    rb.n_results = 4;
    zp_message_t m = ZPIPE__V1__MESSAGE__INIT;
    m.kind_case = ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH;
    m.result_batch = &rb;
    zp_buf_t enc = {0}, tenc = {0}, renc = {0};
    zp_task_view_t tv = {0};
    zp_result_view_t rv = {0};
    zp_arena_t *a = zp_arena_new();
    if (!a)
        goto done;
    bool encoded = zp_encode(&m, &enc) == 0;
    if (encoded) {
        zp_message_t *d = zp_decode(a, enc.data, enc.len, 1 << 20);
        if (d && (d->kind_case != ZPIPE__V1__MESSAGE__KIND_RESULT_BATCH ||
                  d->result_batch->n_results != 4))
            *bad = 1;
        if (zp_view_result_batch(&rv, enc.data, enc.len, 1 << 20) == 0 &&
            (rv.batch.n_results != 4 || strcmp(rv.batch.worker_id, "w1")))
            *bad = 1;
    }
    if (zp_encode_result_batch(&rb, &renc) == 0 && encoded &&
        (renc.len != enc.len || memcmp(renc.data, enc.data, enc.len) != 0))
        *bad = 1;
    if (zp_encode_task_batch(&tb, &tenc) == 0 &&
        zp_view_task_batch(&tv, tenc.data, tenc.len, 1 << 20) == 0 &&
        (tv.batch.n_tasks != 4 || strcmp(tv.batch.plugin, "echo")))
        *bad = 1;
    zp_arena_reset(a);
done:
    zp_arena_destroy(&a);
    zp_task_view_free(&tv);
    zp_result_view_free(&rv);
    zp_buf_free(&enc);
    zp_buf_free(&tenc);
    zp_buf_free(&renc);
}

static void test_alloc_failures_are_reported_not_fatal(void)
{
    int bad = 0;
    long runs = failalloc_sweep(s_codec_scenario, &bad);
    TEST_EQ_INT(bad, 0);
    TEST_CHECK(runs >= 6);
}

static const test_case_t tests[] = {
    {"test_alloc_failures_are_reported_not_fatal",
     test_alloc_failures_are_reported_not_fatal},
    {"test_batch_encoders_write_what_protobuf_c_writes",
     test_batch_encoders_write_what_protobuf_c_writes},
    {"test_views_see_what_decode_sees", test_views_see_what_decode_sees},
    {"test_views_check_as_they_fill", test_views_check_as_they_fill},
    {"test_result_views_see_what_decode_sees",
     test_result_views_see_what_decode_sees},
    {"test_scans_count_what_decode_sees", test_scans_count_what_decode_sees},
    {"test_task_batch_round_trips", test_task_batch_round_trips},
    {"test_decode_rejects_garbage", test_decode_rejects_garbage},
    {"test_decode_rejects_empty_kind", test_decode_rejects_empty_kind},
    {"test_decode_enforces_max_len", test_decode_enforces_max_len},
    {"test_arena_reset_keeps_one_block", test_arena_reset_keeps_one_block},
    {NULL, NULL},
};
TEST_MAIN(tests)
