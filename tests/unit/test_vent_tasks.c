/* Tests for vent_tasks: the held-task table, hold limits, collecting a
 * batch, and lease expiry (the long lease; deadline + 5 s with and
 * without the worker's progress). */
#include "failalloc.h"
#include "test.h"
#include "vent_tasks.h"

#include <stdlib.h>
#include <string.h>

#define S_SEC 1000000ull

static void test_add_get_done_counts_bytes(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    zp_vent_task_t *a = zp_vent_tasks_add(ts, j, "hello", 5, 0);
    zp_vent_task_t *b = zp_vent_tasks_add(ts, j, NULL, 0, 77);
    TEST_CHECK(a && b);
    TEST_EQ_INT(a->id, 0);
    TEST_EQ_INT(b->id, 1);
    TEST_EQ_INT(a->attempt, 1);
    TEST_EQ_INT(a->state, ZP_VENT_QUEUED);
    TEST_EQ_INT(b->queued_us, 77);
    TEST_CHECK(memcmp(a->data, "hello", 5) == 0);
    TEST_EQ_INT(j->held, 2);
    TEST_EQ_INT(j->ready.len, 2);
    TEST_EQ_INT(j->next_task_id, 2);
    TEST_EQ_INT(zp_vent_tasks_size(ts), 2);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 5);
    TEST_CHECK(zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 1)) == b);
    zp_vent_tasks_done(ts, a);
    TEST_CHECK(zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 0)) == NULL);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 0);
    TEST_EQ_INT(j->held, 1);
    TEST_EQ_INT(zp_vent_tasks_max_held(ts), 2);
    TEST_EQ_INT(zp_vent_tasks_read(ts), 2);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

/* Small tasks' blocks are kept when done and given to the next small
 * tasks (payload and fields set afresh); a big payload's is malloc'd and
 * freed; the pool keeps at most ZP_VENT_POOL_MAX. */
static void test_small_task_blocks_are_reused(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(1 << 20, 1 << 30, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    zp_vent_task_t *a = zp_vent_tasks_add(ts, j, "first", 5, 0);
    a->attempt = 3;
    void *block = a;
    zp_vent_tasks_done(ts, a);
    TEST_EQ_INT(zp_vent_tasks_pooled(ts), 1);
    zp_vent_task_t *b = zp_vent_tasks_add(ts, j, "second", 6, 0);
    TEST_CHECK((void *)b == block);
    TEST_EQ_INT(zp_vent_tasks_pooled(ts), 0);
    TEST_EQ_INT(b->id, 1);
    TEST_EQ_INT(b->attempt, 1);
    TEST_EQ_INT(b->len, 6);
    TEST_CHECK(memcmp(b->data, "second", 6) == 0);
    static char big[ZP_VENT_TASK_SMALL];
    zp_vent_task_t *c = zp_vent_tasks_add(ts, j, big, sizeof big, 0);
    TEST_CHECK(c && !c->pooled);
    zp_vent_tasks_done(ts, c);
    TEST_EQ_INT(zp_vent_tasks_pooled(ts), 0);
    zp_vent_tasks_done(ts, b);
    /* A burst: the pool keeps its bound. */
    enum { N = ZP_VENT_POOL_MAX + 100 };
    zp_vent_task_t **all = malloc(N * sizeof *all);
    for (int i = 0; i < N; i++)
        all[i] = zp_vent_tasks_add(ts, j, "x", 1, 0);
    for (int i = 0; i < N; i++)
        zp_vent_tasks_done(ts, all[i]);
    TEST_EQ_INT(zp_vent_tasks_pooled(ts), ZP_VENT_POOL_MAX);
    TEST_EQ_INT(zp_vent_tasks_size(ts), 0);
    free(all);
    zp_vent_tasks_destroy(&ts); /* and the pool (valgrind: no leak) */
    zp_vent_jobs_destroy(&jobs);
}

/* A task may point into the reader's block instead of copying: the
 * block is held (and counted whole in the held bytes) while any task
 * points into it. */
static void test_tasks_pointing_into_a_block(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 30, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    zp_vent_chunk_t *c = malloc(sizeof *c + 100);
    atomic_init(&c->refs, 1);
    c->tasks = 0;
    c->cap = 100;
    c->len = 10;
    memcpy(c->data, "hello world", 11);
    zp_vent_task_t *a = zp_vent_tasks_add_ref(ts, j, c, c->data, 5, 0);
    zp_vent_task_t *b = zp_vent_tasks_add_ref(ts, j, c, c->data + 6, 5, 0);
    zp_vent_task_t *x = zp_vent_tasks_add(ts, j, "copy", 4, 0);
    TEST_CHECK(a && b && x);
    TEST_CHECK(a->data == (const uint8_t *)c->data); /* not copied */
    TEST_CHECK(memcmp(b->data, "world", 5) == 0);
    TEST_CHECK(memcmp(x->data, "copy", 4) == 0);
    TEST_EQ_INT(atomic_load(&c->refs), 3);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 100 + 4); /* the block, once */
    zp_vent_chunk_unref(&c);                       /* the reader moves on */
    zp_vent_tasks_done(ts, a);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 104);
    TEST_CHECK(memcmp(b->data, "world", 5) == 0);
    zp_vent_tasks_done(ts, b); /* the block is freed with it */
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 4);
    zp_vent_tasks_done(ts, x);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 0);
    /* Tasks still pointing into a block when the table goes. */
    c = malloc(sizeof *c + 8);
    atomic_init(&c->refs, 1);
    c->tasks = 0;
    c->cap = 8;
    c->len = 8;
    TEST_CHECK(zp_vent_tasks_add_ref(ts, j, c, c->data, 8, 0));
    zp_vent_tasks_destroy(&ts);
    TEST_EQ_INT(atomic_load(&c->refs), 1);
    zp_vent_chunk_unref(&c);
    zp_vent_jobs_destroy(&jobs);
}

static void test_hold_limits(void)
{
    /* Automatic: the workers' windows plus 8,192. */
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 100, false);
    TEST_EQ_INT(zp_vent_tasks_limit(ts, 0), 8192);
    TEST_EQ_INT(zp_vent_tasks_limit(ts, 300), 8492);
    zp_vent_tasks_destroy(&ts);
    /* Bytes, automatic: 16 MiB a worker, within 32 and 256 MiB. */
    ts = zp_vent_tasks_new(0, 100, false);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 1), 100); /* explicit */
    zp_vent_tasks_destroy(&ts);
    ts = zp_vent_tasks_new(0, 0, false);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 0), 32 << 20);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 2), 32 << 20);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 5), 80 << 20);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 16), 256 << 20);
    TEST_EQ_INT(zp_vent_tasks_bytes_limit(ts, 1000), 256 << 20);
    zp_vent_tasks_destroy(&ts);
    ts = zp_vent_tasks_new(0, 100, true); /* push: a fixed bound */
    TEST_EQ_INT(zp_vent_tasks_limit(ts, 300), 65536);
    zp_vent_tasks_destroy(&ts);

    /* Explicit: that many; and the bytes bound allows one task always. */
    ts = zp_vent_tasks_new(3, 100, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    TEST_EQ_INT(zp_vent_tasks_limit(ts, 1000), 3);
    char big[150] = {0};
    TEST_CHECK(zp_vent_tasks_can_hold(ts, 0, 0));
    TEST_CHECK(zp_vent_tasks_add(ts, j, big, sizeof big, 0));
    TEST_CHECK(!zp_vent_tasks_can_hold(ts, 0, 0)); /* 150 bytes >= 100 */
    zp_vent_tasks_done(ts, zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 0)));
    for (int i = 0; i < 3; i++) {
        TEST_CHECK(zp_vent_tasks_can_hold(ts, 0, 0));
        TEST_CHECK(zp_vent_tasks_add(ts, j, "x", 1, 0));
    }
    TEST_CHECK(!zp_vent_tasks_can_hold(ts, 0, 0)); /* 3 of 3 */
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static void test_collect_takes_queued_tasks_within_bounds(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    for (int i = 0; i < 10; i++)
        TEST_CHECK(zp_vent_tasks_add(ts, j, "abcd", 4, 0));
    zp_vent_tasks_done(ts, zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 0)));
    zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 1))->state = ZP_VENT_FAILING;
    zp_vent_task_t *out[10];
    /* Committed and given-up tasks are passed over. */
    TEST_EQ_INT(zp_vent_tasks_collect(ts, j, 3, 1 << 20, out), 3);
    TEST_EQ_INT(out[0]->id, 2);
    TEST_EQ_INT(out[2]->id, 4);
    /* Bytes: stop once 6 bytes are reached (so 2 tasks of 4). */
    TEST_EQ_INT(zp_vent_tasks_collect(ts, j, 10, 6, out), 2);
    TEST_EQ_INT(out[0]->id, 5);
    /* One task always, even over the bytes. */
    TEST_EQ_INT(zp_vent_tasks_collect(ts, j, 10, 1, out), 1);
    TEST_EQ_INT(out[0]->id, 7);
    /* Requeued at the front: first out again. */
    out[0]->state = ZP_VENT_INFLIGHT;
    out[0]->worker = 9;
    TEST_EQ_INT(zp_vent_tasks_requeue_front(out[0]), 0);
    TEST_EQ_INT(out[0]->state, ZP_VENT_QUEUED);
    TEST_EQ_INT(out[0]->worker, 0);
    TEST_EQ_INT(zp_vent_tasks_collect(ts, j, 10, 1 << 20, out), 3);
    TEST_EQ_INT(out[0]->id, 7);
    TEST_EQ_INT(out[1]->id, 8);
    TEST_EQ_INT(j->ready.len, 0);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static void test_drop_job_frees_only_its_tasks(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *a = zp_vent_jobs_add(jobs, "a", "echo");
    zp_vent_job_t *b = zp_vent_jobs_add(jobs, "b", "echo");
    for (int i = 0; i < 100; i++) {
        TEST_CHECK(zp_vent_tasks_add(ts, a, "1", 1, 0));
        TEST_CHECK(zp_vent_tasks_add(ts, b, "22", 2, 0));
    }
    zp_vent_tasks_drop_job(ts, a);
    TEST_EQ_INT(a->held, 0);
    TEST_EQ_INT(zp_vent_tasks_size(ts), 100);
    TEST_EQ_INT(zp_vent_tasks_bytes(ts), 200);
    size_t cursor = 0, n = 0;
    zp_vent_task_t *t;
    while (zp_vent_tasks_next(ts, &cursor, &t)) {
        TEST_CHECK(t->job == b);
        n++;
    }
    TEST_EQ_INT(n, 100);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static void test_long_lease(void)
{
    uint64_t now = 1000 * S_SEC;
    /* No deadline: only the long lease. */
    TEST_CHECK(
        !zp_vent_lease_expired(now, now - 600 * S_SEC, 600 * S_SEC, 0, 0));
    TEST_CHECK(
        zp_vent_lease_expired(now, now - 600 * S_SEC - 1, 600 * S_SEC, 0, now));
    /* Lease off: never. */
    TEST_CHECK(!zp_vent_lease_expired(now, 0, 0, 0, 0));
    /* The long lease holds even for a worker that makes progress. */
    TEST_CHECK(
        zp_vent_lease_expired(now, now - 20 * S_SEC, 10 * S_SEC, 1000, now));
}

static void test_short_lease_with_and_without_progress(void)
{
    uint64_t now = 1000 * S_SEC, dl = 2000; /* 2 s: short lease 7 s */
    uint64_t sent = now - 8 * S_SEC;
    /* Within deadline + 5 s: not expired, whatever the worker did. */
    TEST_CHECK(!zp_vent_lease_expired(now, now - 7 * S_SEC, 0, dl, 0));
    /* Past it, the worker silent since before: expired. */
    TEST_CHECK(zp_vent_lease_expired(now, sent, 0, dl, now - 9 * S_SEC));
    /* Past it, but the worker finished something 1 s ago: it is working
     * through the tasks queued ahead of this one. */
    TEST_CHECK(!zp_vent_lease_expired(now, sent, 0, dl, now - S_SEC));
    /* The worker is gone: expired. */
    TEST_CHECK(zp_vent_lease_expired(now, sent, 0, dl, 0));
    /* The long lease still applies under it. */
    TEST_CHECK(zp_vent_lease_expired(now, sent, 3 * S_SEC, dl, now));
}

static uint64_t s_progress_of[4];
static int s_progress_calls;

static uint64_t s_progress(void *ctx, uint64_t worker)
{
    (void)ctx;
    s_progress_calls++;
    return worker < 4 ? s_progress_of[worker] : 0;
}

static void test_lease_scan_returns_the_expired(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(1000, 3, 0); /* short lease 6 s */
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    uint64_t now = 1000 * S_SEC;
    s_progress_of[1] = now - 10 * S_SEC; /* worker 1: stuck */
    s_progress_of[2] = now - S_SEC;      /* worker 2: busy */
    for (int i = 0; i < 6; i++) {
        zp_vent_task_t *t = zp_vent_tasks_add(ts, j, "x", 1, 0);
        t->state = ZP_VENT_INFLIGHT;
        t->sent_us = now - 8 * S_SEC;
        t->worker = (uint64_t)(i % 3) + 1; /* 1, 2, 3 (3 is gone) */
    }
    zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 0))->sent_us = now - S_SEC;
    zp_vent_tasks_get(ts, ZP_VENT_KEY(j, 5))->state = ZP_VENT_QUEUED;
    zp_vent_task_t **out;
    s_progress_calls = 0;
    size_t n =
        zp_vent_tasks_expired(ts, now, 600 * S_SEC, s_progress, NULL, &out);
    /* 0: too recent; 1, 4: busy worker 2; 5: queued. 2 (gone) and 3
     * (stuck) expire. */
    TEST_EQ_INT(n, 2);
    uint64_t ids = 0;
    for (size_t i = 0; i < n; i++)
        ids |= 1ull << out[i]->id;
    TEST_EQ_INT(ids, (1u << 2) | (1u << 3));
    TEST_CHECK(s_progress_calls <= 4); /* looked up only when past it */
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static void s_tasks_scenario(void *arg)
{
    (void)arg;
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(100, 3, 0);
    zp_vent_job_t *j = jobs ? zp_vent_jobs_add(jobs, "j", "echo") : NULL;
    if (ts && j) {
        for (int i = 0; i < 200; i++) {
            zp_vent_task_t *t = zp_vent_tasks_add(ts, j, "payload", 7, 0);
            if (t && i % 3 == 0) {
                t->state = ZP_VENT_INFLIGHT;
                t->worker = 1;
            }
        }
        zp_vent_task_t **out;
        size_t n =
            zp_vent_tasks_expired(ts, 100 * S_SEC, 1, s_progress, NULL, &out);
        for (size_t i = 0; i < n; i++)
            zp_vent_tasks_requeue_front(out[i]);
        zp_vent_task_t *batch[64];
        n = zp_vent_tasks_collect(ts, j, 64, 1 << 20, batch);
        for (size_t i = 0; i < n; i++)
            zp_vent_tasks_done(ts, batch[i]);
        zp_vent_tasks_drop_job(ts, j);
    }
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static void test_alloc_failures_in_the_table(void)
{
    TEST_CHECK(failalloc_sweep(s_tasks_scenario, NULL) >= 10);
}

/* A requeue that cannot grow the queue leaves the task in flight, where
 * the lease scan finds it; QUEUED outside the queue it would never run. */
static void test_requeue_out_of_memory_leaves_the_task_in_flight(void)
{
    zp_vent_tasks_t *ts = zp_vent_tasks_new(0, 1 << 20, false);
    zp_vent_jobs_t *jobs = zp_vent_jobs_new(0, 3, 0);
    zp_vent_job_t *j = zp_vent_jobs_add(jobs, "j", "echo");
    zp_vent_task_t *t = zp_vent_tasks_add(ts, j, "x", 1, 0);
    TEST_CHECK(t);
    while (j->ready.len < j->ready.cap) /* the next push must grow it */
        TEST_CHECK(zp_vent_tasks_add(ts, j, "x", 1, 0));
    t->state = ZP_VENT_INFLIGHT;
    t->worker = 4;
    failalloc_arm(1);
    int r = zp_vent_tasks_requeue_front(t);
    failalloc_disarm();
    TEST_EQ_INT(r, -1);
    TEST_EQ_INT(t->state, ZP_VENT_INFLIGHT);
    zp_vent_task_t **out;
    TEST_EQ_INT(
        zp_vent_tasks_expired(ts, 100 * S_SEC, 1, s_progress, NULL, &out), 1);
    TEST_CHECK(out[0] == t);
    zp_vent_tasks_destroy(&ts);
    zp_vent_jobs_destroy(&jobs);
}

static const test_case_t tests[] = {
    {"test_requeue_out_of_memory_leaves_the_task_in_flight",
     test_requeue_out_of_memory_leaves_the_task_in_flight},
    {"test_add_get_done_counts_bytes", test_add_get_done_counts_bytes},
    {"test_hold_limits", test_hold_limits},
    {"test_small_task_blocks_are_reused", test_small_task_blocks_are_reused},
    {"test_tasks_pointing_into_a_block", test_tasks_pointing_into_a_block},
    {"test_collect_takes_queued_tasks_within_bounds",
     test_collect_takes_queued_tasks_within_bounds},
    {"test_drop_job_frees_only_its_tasks", test_drop_job_frees_only_its_tasks},
    {"test_long_lease", test_long_lease},
    {"test_short_lease_with_and_without_progress",
     test_short_lease_with_and_without_progress},
    {"test_lease_scan_returns_the_expired",
     test_lease_scan_returns_the_expired},
    {"test_alloc_failures_in_the_table", test_alloc_failures_in_the_table},
    {NULL, NULL},
};
TEST_MAIN(tests)
