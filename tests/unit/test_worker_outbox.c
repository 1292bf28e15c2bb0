/* Tests for wk_outbox: an executor's result frames in its results region:
 * a single result written around its output where the plugin put it,
 * many results encoded, an output that outgrew its room, a full region,
 * and the references in the order the worker counts them. */
#include "failalloc.h"
#include "test.h"
#include "wk_outbox.h"
#include "zp_codec.h"

#include <zpipe/plugin.h>

#include <stdlib.h>
#include <string.h>

static const zp_wk_batch_info_t s_info = {
    .worker_id = "w-1", .window = 64, .max_held = 3, .tasks_done = 12};

/* A result of job with n bytes of output (byte fill), appended as the
 * runner does, through the results' output buffer. */
static void s_result(zp_wk_results_t *r, uint64_t id, size_t n, int fill)
{
    zp_wk_done_t *d = zp_wk_results_push(r, "job-7", 1000);
    d->task_id = id;
    d->attempt = 1;
    d->status = ZPIPE_OK;
    d->elapsed_us = 42 + id;
    d->start_us = 1700000000000000ull;
    d->lease = 0x1234567890abcdefull;
    char *chunk = malloc(n ? n : 1);
    memset(chunk, fill, n);
    zp_buf_append(zp_wk_results_out(r), chunk, n);
    free(chunk);
    zp_wk_results_finish(r, d);
}

/* Places the pending results; true when it placed them (*ref) and the
 * frame holds what the codec's encoder writes for their batch. */
static bool s_place(zp_wk_outbox_t *ob, zp_wk_results_t *r, const uint8_t *base,
                    uint64_t released, zp_wk_ref_t *ref)
{
    zp_buf_t want = {0};
    Zpipe__V1__ResultBatch rb;
    bool same = zp_wk_results_batch(r, &s_info, &rb) == 0 &&
                zp_encode_result_batch(&rb, &want) == 0 &&
                zp_wk_outbox_place(ob, r, &s_info, released, ref) == 0 &&
                want.len == ref->len &&
                memcmp(want.data, base + ref->off, want.len) == 0;
    zp_buf_free(&want);
    return same;
}

static void test_one_result_is_framed_where_it_lies(void)
{
    size_t size = 8u << 20;
    uint8_t *base = calloc(1, size);
    zp_wk_outbox_t *ob = zp_wk_outbox_new(base, size);
    zp_wk_results_t *r = zp_wk_results_new();
    zp_wk_outbox_arm(ob, r, 0);
    TEST_CHECK(zp_wk_results_out(r)->borrowed);
    const char *room = zp_wk_results_out(r)->data;
    TEST_CHECK((const uint8_t *)room > base &&
               (const uint8_t *)room < base + size);
    s_result(r, 5, 1 << 20, 'x');
    TEST_CHECK(zp_wk_results_out(r)->data == room); /* appended in place */
    zp_wk_ref_t ref;
    TEST_CHECK(s_place(ob, r, base, 0, &ref));
    TEST_EQ_INT(ref.kind, ZP_WK_REF_RESULTS);
    TEST_EQ_INT(ref.seq, 1);
    /* The frame holds the output where the plugin put it. */
    TEST_CHECK((const uint8_t *)room > base + ref.off &&
               (const uint8_t *)room < base + ref.off + ref.len);
    TEST_CHECK(!zp_wk_results_out(r)->borrowed); /* let go of it */
    size_t n;
    uint64_t el;
    TEST_CHECK(zp_scan_result_batch(base + ref.off, ref.len, size, &n, &el,
                                    NULL, NULL) == 0);
    TEST_EQ_INT(n, 1);
    zp_wk_outbox_stats_t st = zp_wk_outbox_stats(ob);
    TEST_EQ_INT(st.in_place, 1);
    TEST_EQ_INT(st.encoded, 0);
    zp_wk_results_destroy(&r);
    zp_wk_outbox_destroy(&ob);
    free(base);
}

static void test_many_results_are_encoded_in_order(void)
{
    size_t size = 8u << 20;
    uint8_t *base = calloc(1, size);
    zp_wk_outbox_t *ob = zp_wk_outbox_new(base, size);
    zp_wk_results_t *r = zp_wk_results_new();
    zp_wk_ref_t ref;
    for (uint64_t round = 1; round <= 3; round++) {
        zp_wk_outbox_arm(ob, r, 0);
        s_result(r, 10 * round, 7, 'a');
        if (round != 2) /* one of the three rounds is a single result */
            s_result(r, 10 * round + 1, 0, 'b');
        TEST_CHECK(s_place(ob, r, base, 0, &ref));
        TEST_EQ_INT(ref.seq, round); /* consecutive, whichever way made */
        zp_wk_results_clear(r);
    }
    zp_wk_outbox_stats_t st = zp_wk_outbox_stats(ob);
    TEST_EQ_INT(st.in_place, 1);
    TEST_EQ_INT(st.encoded, 2);
    zp_wk_results_destroy(&r);
    zp_wk_outbox_destroy(&ob);
    free(base);
}

static void test_output_that_outgrows_its_room_is_encoded(void)
{
    /* The open frame takes 1 MiB of the 1.5 MiB; the output 1.1 MiB. */
    size_t size = 3u << 19;
    uint8_t *base = calloc(1, size);
    zp_wk_outbox_t *ob = zp_wk_outbox_new(base, size);
    zp_wk_results_t *r = zp_wk_results_new();
    zp_wk_outbox_arm(ob, r, 0);
    s_result(r, 1, 1100u << 10, 'z');
    TEST_CHECK(!zp_wk_results_out(r)->borrowed); /* moved to its own */
    zp_wk_ref_t ref;
    TEST_CHECK(s_place(ob, r, base, 0, &ref));
    zp_wk_results_clear(r);
    zp_wk_outbox_arm(ob, r, 0); /* the unused open frame is given back */
    TEST_CHECK(zp_wk_results_out(r)->borrowed);
    zp_wk_outbox_stats_t st = zp_wk_outbox_stats(ob);
    TEST_EQ_INT(st.encoded, 1);
    zp_wk_results_destroy(&r);
    zp_wk_outbox_destroy(&ob);
    free(base);
}

static void test_a_full_region_refuses_until_the_worker_releases(void)
{
    size_t size = 1u << 20; /* open frames of 1 MiB, then 512 KiB... */
    uint8_t *base = calloc(1, size);
    zp_wk_outbox_t *ob = zp_wk_outbox_new(base, size);
    zp_wk_results_t *r = zp_wk_results_new();
    zp_wk_ref_t ref;
    uint64_t placed = 0;
    for (int i = 0; i < 30; i++) {
        zp_wk_outbox_arm(ob, r, 0);
        s_result(r, (uint64_t)i, 60000, 'q');
        if (zp_wk_outbox_place(ob, r, &s_info, 0, &ref) == 0)
            placed = ref.seq;
        zp_wk_results_clear(r);
    }
    zp_wk_outbox_stats_t st = zp_wk_outbox_stats(ob);
    TEST_CHECK(st.no_room > 0); /* the worker released nothing */
    TEST_EQ_INT(st.in_place + st.encoded, placed);
    /* Released: room again, and the next frame goes on in order. */
    zp_wk_outbox_arm(ob, r, placed);
    s_result(r, 99, 60000, 'q');
    TEST_CHECK(s_place(ob, r, base, placed, &ref));
    TEST_EQ_INT(ref.seq, placed + 1);
    TEST_EQ_INT(zp_wk_outbox_stats(ob).in_place, st.in_place + 1);
    zp_wk_results_destroy(&r);
    zp_wk_outbox_destroy(&ob);
    free(base);
}

static void s_scenario(void *arg)
{
    (void)arg;
    size_t size = 1u << 20;
    uint8_t *base = calloc(1, size);
    zp_wk_outbox_t *ob = base ? zp_wk_outbox_new(base, size) : NULL;
    zp_wk_results_t *r = zp_wk_results_new();
    if (ob && r) {
        zp_wk_outbox_arm(ob, r, 0);
        zp_wk_done_t *d = zp_wk_results_push(r, "j", 1);
        if (d) {
            zp_buf_append(zp_wk_results_out(r), "output", 6);
            zp_wk_results_finish(r, d);
            zp_wk_ref_t ref;
            zp_wk_outbox_place(ob, r, &s_info, 0, &ref);
        }
    }
    zp_wk_results_destroy(&r);
    zp_wk_outbox_destroy(&ob);
    free(base);
}

static void test_alloc_failures(void)
{
    TEST_CHECK(failalloc_sweep(s_scenario, NULL) >= 3);
}

static const test_case_t tests[] = {
    {"test_one_result_is_framed_where_it_lies",
     test_one_result_is_framed_where_it_lies},
    {"test_many_results_are_encoded_in_order",
     test_many_results_are_encoded_in_order},
    {"test_output_that_outgrows_its_room_is_encoded",
     test_output_that_outgrows_its_room_is_encoded},
    {"test_a_full_region_refuses_until_the_worker_releases",
     test_a_full_region_refuses_until_the_worker_releases},
    {"test_alloc_failures", test_alloc_failures},
    {NULL, NULL},
};

TEST_MAIN(tests)
