/* Tests for zp_codec: round trips, size caps, malformed frames, arena. */
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

static const test_case_t tests[] = {
    {"test_task_batch_round_trips", test_task_batch_round_trips},
    {"test_decode_rejects_garbage", test_decode_rejects_garbage},
    {"test_decode_rejects_empty_kind", test_decode_rejects_empty_kind},
    {"test_decode_enforces_max_len", test_decode_enforces_max_len},
    {"test_arena_reset_keeps_one_block", test_arena_reset_keeps_one_block},
    {NULL, NULL},
};
TEST_MAIN(tests)
